/* toy_lm.h — the tiny language model target (`pdc toy tiny-lm`): a decoder-only
 * transformer on byte tokens (vocab 256), built with the node builder, trained
 * by the runtime on windows of a token file (runtime/data.h) and written as ONNX
 * (tools/pdc_toy_lm.c). A small stand-in for METHOD §6.4's LlamaSimpleMLP: the
 * same kind of sites (q/k/v/o and the two MLP matrices per layer), small enough
 * to train in a minute or two on two cores.
 *
 * Architecture (pre-norm, GPT-2 style, no biases on the matrices):
 *   x  = embed[tokens] + pos_embed[position]          position = 0, 1, … along dim 1
 *   per layer l:  h = LayerNorm(x; layers.l.ln1.scale/bias)
 *                 x += softmax(q kᵀ/√d_head + causal mask) v · o_proj, per head,
 *                      q = h·q_proj, k = h·k_proj, v = h·v_proj
 *                 x += GELU(LayerNorm(x; ln2) · mlp.fc_in) · mlp.fc_out
 *   logits = LayerNorm(x; ln_f) · lm_head
 * Initializers (sites are chosen by glob over these names; matrices are stored as
 * the MatMul reads them, [d_in, d_out]):
 *   embed [vocab, d]  pos_embed [ctx, d]  layers.<l>.attn.{q,k,v,o}_proj [d, d]
 *   layers.<l>.mlp.fc_in [d, d_mlp]  layers.<l>.mlp.fc_out [d_mlp, d]  lm_head [d, vocab]
 *   layers.<l>.ln{1,2}.{scale,bias} [d]  ln_f.{scale,bias} [d]
 * Graph input `tokens` int64 [batch, seq] (both symbolic in the written model; seq
 * up to ctx), output `logits` float32 [batch, seq, vocab]. The positions and the
 * causal mask are computed from the input (CumSum of ones, Greater), so the graph
 * holds no shape arithmetic and runs at any batch and any seq <= ctx. */
#ifndef PDC_TOY_LM_H
#define PDC_TOY_LM_H

#include "ir.h"
#include "program.h"
#include "toy.h"

#define TOY_LM_OPSET 20 /* Gelu is opset 20; LayerNormalization 17 */

struct toy_lm_spec {
    int64_t vocab, d_model, n_heads, n_layers, d_mlp, ctx;
    int64_t batch, seq, steps;           /* training defaults (seq <= ctx) */
    double lr, warmup_pct, final_lr_frac; /* AdamW, linear warmup then cosine */
    double weight_decay, grad_clip;
};

const struct toy_lm_spec *toy_lm_default(void);

/* One-step program that sets the LayerNorm scales to 1 (the other weights start
 * from their random or zero init). Run it with rt_train before training. */
int toy_lm_build_setup(const struct toy_lm_spec *s, struct dc_prog *p, struct diag *d);

/* The training program: data input `tokens` int64 [batch, seq] (windows of a token
 * file), next-token cross-entropy (metric "loss", nats per predicted token: the
 * logits at positions 0..seq-2 against the tokens at 1..seq-1), AdamW. */
int toy_lm_build_train(const struct toy_lm_spec *s, struct dc_prog *p, struct diag *d);

/* The inference graph tokens → logits with the trained weights as initializers,
 * shapes inferred at [batch, seq] (seq <= ctx) with both dims marked symbolic for
 * export, opset TOY_LM_OPSET, topological order filled. The caller frees *out. */
int toy_lm_build_infer(const struct toy_lm_spec *s, int64_t batch, int64_t seq, toy_weight_fn get,
                       void *ctx, struct ir_graph **out, struct diag *d);

#endif
