/* toy_lm.c — the tiny language model target as IR programs; see toy_lm.h.
 * needs: nothing but the spec; every graph is built from scratch.
 * guarantees: one forward definition serves the training program (weights are
 *   states) and the inference graph (weights are named initializers); the
 *   inference graph's only input is `tokens` and nothing in it depends on the
 *   batch or sequence length except through that input's shape. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "toy_impl.h"
#include "toy_lm.h"

/* d 64, 4 heads, 2 layers, MLP 4d, byte vocabulary, context 64. AdamW 3e-3
 * with 5 % linear warmup and cosine decay to a tenth (the usual small-GPT
 * recipe), weight decay 0.01, global-norm clip 1. */
static const struct toy_lm_spec lm_default = {
    .vocab = 256, .d_model = 64, .n_heads = 4, .n_layers = 2, .d_mlp = 256, .ctx = 64,
    .batch = 32, .seq = 64, .steps = 1500,
    .lr = 3e-3, .warmup_pct = 0.05, .final_lr_frac = 0.1, .weight_decay = 0.01, .grad_clip = 1.0,
};

const struct toy_lm_spec *toy_lm_default(void) { return &lm_default; }

/* ---- weights ---------------------------------------------------------------- */

#define LM_MAX_LAYERS 8
#define PER_LAYER 10 /* ln1 scale, bias, q, k, v, o, ln2 scale, bias, fc_in, fc_out */
#define MAX_W (2 + PER_LAYER * LM_MAX_LAYERS + 3)

/* indices into the weight list */
enum { W_EMBED, W_POS, W_LAYER0 };
enum { L_LN1_S, L_LN1_B, L_Q, L_K, L_V, L_O, L_LN2_S, L_LN2_B, L_FC_IN, L_FC_OUT };

static struct wdesc wd(const char *name, int64_t r, int64_t c, enum dc_init init, double a)
{
    struct wdesc w = {.rank = c ? 2 : 1, .dims = {r, c}, .init = init, .a = a,
                      .trainable = DC_TRAIN_COMPONENT};
    snprintf(w.name, sizeof w.name, "%s", name);
    return w;
}

/* PyTorch's defaults: nn.Embedding N(0, 1), nn.Linear U(±1/√fan_in) */
static struct wdesc linear(const char *name, int64_t din, int64_t dout)
{
    return wd(name, din, dout, DC_INIT_UNIFORM, 1.0 / sqrt((double)din));
}

static int layer_weights(const struct toy_lm_spec *s, int l, struct wdesc *w)
{
    static const char *const names[PER_LAYER] = {
        "ln1.scale", "ln1.bias", "attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj",
        "ln2.scale", "ln2.bias", "mlp.fc_in", "mlp.fc_out"};
    int64_t d = s->d_model;
    for (int k = 0; k < PER_LAYER; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "layers.%d.%s", l, names[k]);
        if (k == L_LN1_S || k == L_LN1_B || k == L_LN2_S || k == L_LN2_B) {
            w[k] = wd(nm, d, 0, DC_INIT_ZERO, 0.0);
            w[k].ln_scale = k == L_LN1_S || k == L_LN2_S;
        } else if (k == L_FC_IN) {
            w[k] = linear(nm, d, s->d_mlp);
        } else if (k == L_FC_OUT) {
            w[k] = linear(nm, s->d_mlp, d);
        } else {
            w[k] = linear(nm, d, d);
        }
    }
    return PER_LAYER;
}

/* the weights in a fixed order: embed, pos_embed, the layers, ln_f scale/bias, lm_head */
static int weight_list(const struct toy_lm_spec *s, struct wdesc *w)
{
    int n = 0;
    w[n++] = wd("embed", s->vocab, s->d_model, DC_INIT_NORMAL, 1.0);
    w[n++] = wd("pos_embed", s->ctx, s->d_model, DC_INIT_NORMAL, 1.0);
    for (int l = 0; l < s->n_layers && l < LM_MAX_LAYERS; l++)
        n += layer_weights(s, l, &w[n]);
    w[n] = wd("ln_f.scale", s->d_model, 0, DC_INIT_ZERO, 0.0);
    w[n++].ln_scale = 1;
    w[n++] = wd("ln_f.bias", s->d_model, 0, DC_INIT_ZERO, 0.0);
    w[n++] = linear("lm_head", s->d_model, s->vocab);
    return n;
}

/* ---- forward ---------------------------------------------------------------------- */

static uint32_t i64_scalar(struct ir_builder *b, int64_t v) { return bld_scalar(b, IR_I64, (double)v); }

static uint32_t unsqueeze(struct ir_builder *b, uint32_t x, int n, const int64_t *axes)
{
    uint32_t in[2] = {x, bld_i64s(b, n, axes)};
    return bld_node(b, IR_OP_Unsqueeze, 2, in, 0, NULL, 1, NULL);
}

/* 0, 1, …, T−1 along dim 1 of the token ids, as int64 [B, T]: an exclusive CumSum
 * of ones, so the graph needs no Shape/Range arithmetic on a symbolic seq */
static uint32_t positions(struct ir_builder *b, uint32_t tok)
{
    uint32_t ones = bld_add(b, bld_mul(b, tok, i64_scalar(b, 0)), i64_scalar(b, 1));
    struct ir_attr ex = bld_attr_int("exclusive", 1);
    uint32_t in[2] = {ones, i64_scalar(b, 1)};
    return bld_node(b, IR_OP_CumSum, 2, in, 1, &ex, 1, NULL);
}

/* additive causal mask [B, 1, T, T]: −1e9 where the key comes after the query */
static uint32_t causal_mask(struct ir_builder *b, uint32_t pos)
{
    static const int64_t q_ax[2] = {1, 3}, k_ax[2] = {1, 2};
    uint32_t later = bld_op2(b, IR_OP_Greater, unsqueeze(b, pos, 2, k_ax), unsqueeze(b, pos, 2, q_ax));
    return bld_mul(b, bld_cast(b, later, IR_F32), bld_f32(b, -1e9));
}

static uint32_t gather(struct ir_builder *b, uint32_t table, uint32_t idx)
{
    uint32_t in[2] = {table, idx};
    return bld_node(b, IR_OP_Gather, 2, in, 0, NULL, 1, NULL);
}

static uint32_t layernorm(struct ir_builder *b, uint32_t x, uint32_t scale, uint32_t bias)
{
    struct ir_attr a[2] = {bld_attr_int("axis", -1), bld_attr_float("epsilon", 1e-5)};
    uint32_t in[3] = {x, scale, bias};
    return bld_node(b, IR_OP_LayerNormalization, 3, in, 2, a, 1, NULL);
}

/* [B, T, d] → [B, H, T, d_head] (perm 0 2 1 3) or, for keys, [B, H, d_head, T]
 * (0 2 3 1); Reshape's 0 copies B and T, so the shape constant holds no seq */
static uint32_t split_heads(struct ir_builder *b, const struct toy_lm_spec *s, uint32_t y,
                            int keys)
{
    static const int64_t pq[4] = {0, 2, 1, 3}, pk[4] = {0, 2, 3, 1};
    int64_t shape[4] = {0, 0, s->n_heads, s->d_model / s->n_heads};
    return bld_transpose(b, bld_reshape(b, y, 4, shape), 4, keys ? pk : pq);
}

static uint32_t merge_heads(struct ir_builder *b, const struct toy_lm_spec *s, uint32_t o)
{
    static const int64_t p[4] = {0, 2, 1, 3};
    int64_t shape[3] = {0, 0, s->d_model};
    return bld_reshape(b, bld_transpose(b, o, 4, p), 3, shape);
}

static uint32_t attention(struct ir_builder *b, const struct toy_lm_spec *s, uint32_t h,
                          uint32_t mask, const uint32_t *w)
{
    uint32_t q = split_heads(b, s, bld_matmul(b, h, w[L_Q]), 0);
    uint32_t k = split_heads(b, s, bld_matmul(b, h, w[L_K]), 1);
    uint32_t v = split_heads(b, s, bld_matmul(b, h, w[L_V]), 0);
    double scale = 1.0 / sqrt((double)(s->d_model / s->n_heads));
    uint32_t sc = bld_add(b, bld_mul(b, bld_matmul(b, q, k), bld_f32(b, scale)), mask);
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t a = bld_node(b, IR_OP_Softmax, 1, &sc, 1, &ax, 1, NULL);
    return bld_matmul(b, merge_heads(b, s, bld_matmul(b, a, v)), w[L_O]);
}

static uint32_t block(struct ir_builder *b, const struct toy_lm_spec *s, uint32_t x,
                      uint32_t mask, const uint32_t *w)
{
    x = bld_add(b, x, attention(b, s, layernorm(b, x, w[L_LN1_S], w[L_LN1_B]), mask, w));
    uint32_t h = layernorm(b, x, w[L_LN2_S], w[L_LN2_B]);
    uint32_t a = bld_op1(b, IR_OP_Gelu, bld_matmul(b, h, w[L_FC_IN])); /* exact (erf) GELU */
    return bld_add(b, x, bld_matmul(b, a, w[L_FC_OUT]));
}

static uint32_t forward(struct ir_builder *b, const struct toy_lm_spec *s, uint32_t tok,
                        const uint32_t *w)
{
    uint32_t pos = positions(b, tok);
    uint32_t x = bld_add(b, gather(b, w[W_EMBED], tok), gather(b, w[W_POS], pos));
    uint32_t mask = causal_mask(b, pos);
    int n = W_LAYER0;
    for (int l = 0; l < s->n_layers && l < LM_MAX_LAYERS; l++, n += PER_LAYER)
        x = block(b, s, x, mask, &w[n]);
    uint32_t in[2] = {layernorm(b, x, w[n], w[n + 1]), w[n + 2]};
    return toy_named_node(b, IR_OP_MatMul, 2, in, "logits");
}

/* ---- programs --------------------------------------------------------------------- */

static int check_spec(const struct toy_lm_spec *s, struct diag *d)
{
    if (s->n_layers < 1 || s->n_layers > LM_MAX_LAYERS || s->n_heads < 1 ||
        s->d_model % s->n_heads || s->seq < 2 || s->seq > s->ctx || s->batch < 1)
        return diag_set(d, ST_ERR_INVALID, "tiny-lm: inconsistent settings (layers %lld, heads "
                        "%lld, d_model %lld, seq %lld, ctx %lld, batch %lld)",
                        (long long)s->n_layers, (long long)s->n_heads, (long long)s->d_model,
                        (long long)s->seq, (long long)s->ctx, (long long)s->batch);
    return ST_OK;
}

int toy_lm_build_setup(const struct toy_lm_spec *s, struct dc_prog *p, struct diag *d)
{
    struct dc_ctx cx;
    int st = check_spec(s, d);
    if (!st)
        st = toy_ctx_begin(&cx, p, "setup", d);
    if (st)
        return st;
    p->steps = 1;
    struct wdesc w[MAX_W];
    int nw = weight_list(s, w);
    struct ir_builder *b = &cx.b;
    for (int i = 0; i < nw; i++) {
        if (!w[i].ln_scale)
            continue;
        uint32_t t = dc_state(&cx, w[i].name, IR_F32, w[i].rank, w[i].dims, DC_INIT_ZERO, 0,
                              DC_TRAIN_NO);
        dc_state_next(&cx, t, bld_add(b, bld_zeros_like(b, t), bld_f32(b, 1.0)));
    }
    return toy_ctx_end(&cx, p, b->err);
}

int toy_lm_build_train(const struct toy_lm_spec *s, struct dc_prog *p, struct diag *d)
{
    struct dc_ctx cx;
    int st = check_spec(s, d);
    if (!st)
        st = toy_ctx_begin(&cx, p, "lm", d);
    if (st)
        return st;
    p->steps = s->steps;
    p->lr = (struct dc_schedule_cfg){s->lr, s->warmup_pct, s->final_lr_frac, DC_SCHED_COSINE};
    struct wdesc w[MAX_W];
    uint32_t ids[MAX_W];
    int nw = weight_list(s, w);
    struct ir_builder *b = &cx.b;
    int64_t td[2] = {s->batch, s->seq};
    uint32_t tok = toy_data_input(&cx, "tokens", IR_I64, 2, td);
    toy_declare_states(&cx, w, nw, ids);
    uint32_t loss = dc_next_token_ce(b, forward(b, s, tok, ids), tok);
    p->loss = loss;
    dc_metric(&cx, "loss", loss);
    st = b->err ? b->err : dc_adamw(&cx, loss, s->weight_decay, s->grad_clip, "adam");
    return toy_ctx_end(&cx, p, st ? st : b->err);
}

int toy_lm_build_infer(const struct toy_lm_spec *s, int64_t batch, int64_t seq, toy_weight_fn get,
                       void *ctx, struct ir_graph **out, struct diag *d)
{
    *out = NULL;
    int st = check_spec(s, d);
    if (!st && (batch < 1 || seq < 1 || seq > s->ctx))
        st = diag_set(d, ST_ERR_INVALID, "tiny-lm: cannot build for batch %lld, seq %lld "
                      "(context %lld)", (long long)batch, (long long)seq, (long long)s->ctx);
    struct ir_graph *g = st ? NULL : ir_graph_new();
    if (!st && !g)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (st)
        return st;
    g->opset = TOY_LM_OPSET;
    struct ir_builder b = bld_begin(g, "lm", d);
    b.opset = TOY_LM_OPSET;
    int bs = ir_sym_intern(g, "batch"), ss = ir_sym_intern(g, "seq");
    g->sym_val[bs] = batch;
    g->sym_val[ss] = seq;
    uint32_t tok = ir_tensor_new(g, "tokens");
    struct ir_tensor *tt = &g->t[tok];
    tt->dtype = IR_I64;
    tt->rank = 2;
    tt->dims[0] = batch, tt->dims[1] = seq;
    tt->sym[0] = bs, tt->sym[1] = ss;
    ir_graph_add_input(g, tok);
    struct wdesc w[MAX_W];
    uint32_t ids[MAX_W];
    int nw = weight_list(s, w);
    toy_load_weights(&b, w, nw, get, ctx, "tiny-lm", ids, d);
    uint32_t y = forward(&b, s, tok, ids);
    st = b.err;
    if (!st) {
        ir_graph_add_output(g, y);
        g->t[y].sym[0] = bs; /* logits [batch, seq, vocab] in the written model */
        g->t[y].sym[1] = ss;
        st = ir_fill_topo(g, d);
    }
    if (st) {
        ir_graph_free(g);
        return st;
    }
    *out = g;
    return ST_OK;
}
