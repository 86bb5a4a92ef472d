/* toy.h — the toy targets of METHOD §6 (TMS §6.2, residual MLP §6.3) as IR
 * programs: built here with the node builder, trained by the runtime
 * (runtime/train.c: data from the §6.1 sparse-feature generator, AdamW from
 * passes/optimizer.c, gradients from pass_autodiff), written as ONNX by the
 * `pdc toy` command (tools/pdc_toy.c).
 *
 * One forward definition serves both graphs: in the training program the
 * weights are persistent states (initialised by the runtime from the seed), in
 * the inference graph they are named initializers holding the trained values.
 * The initializer names are the decomposition sites of METHOD §1.5:
 *   TMS:      linear1 [n_features, n_hidden]   (the MatMul's right operand;
 *                                               linear2 is the same tensor read
 *                                               through a Transpose: tied)
 *             linear2.bias [n_features]
 *             hidden_layers.0 [n_hidden, n_hidden]  (+id variants: frozen identity)
 *   ResidMLP: W_E [n_features, d_embed]  (frozen, unit-norm rows)
 *             layers.<i>.mlp_in [d_embed, d_mlp], layers.<i>.mlp_out [d_mlp, d_embed]
 *             W_U [d_embed, n_features]  (= W_Eᵀ, frozen, its own initializer)
 * Graph input `x` [batch, n_features], output `y` [batch, n_features]. */
#ifndef PDC_TOY_H
#define PDC_TOY_H

#include <stddef.h>

#include "ir.h"
#include "program.h"

#define TOY_MAX_LAYERS 4
#define TOY_OPSET 17 /* what the exported model declares: MatMul/Transpose/Add/Relu only */

/* L3D toys (METHOD §8.8, passes/toy_l3d.c): TMS trained tied and written untied (W_in,
 * W_out, b); the circuit MLPs ReLU(x·W_in·W_out + b) with labels x·A (A [n_features,
 * n_out] ~ U(0, 3), written next to the model); X → X² as a GELU chain fc.<l>.{weight,bias}.
 * l3d-square and l3d-highrank follow the paper's form (S-L3D), not the public code's
 * (METHOD §8.8, §11.13i): l3d-square is GELU, width 5, biases U(±1/√fan_in), no output
 * activation (the code: ELU on every layer, width 10, biases U(0.01, 1)); l3d-highrank
 * has 25 inputs in 5 groups (the code: 30 inputs in 6 groups). */
enum toy_family { TOY_TMS, TOY_RESID_MLP, TOY_L3D_TMS, TOY_L3D_CIRCUIT, TOY_L3D_SQUARE };

struct toy_spec {
    const char *name;           /* "tms-5-2", "resid-mlp-1", ... */
    enum toy_family family;
    int64_t n_features;
    int64_t n_hidden;           /* TMS */
    int identity_layer;         /* TMS +id: frozen identity hidden layer */
    int bias_zero;              /* TMS 40-10: linear2.bias starts at 0 */
    int64_t d_embed, d_mlp;     /* ResidMLP (d_mlp per layer) */
    int n_layers;
    int64_t batch, steps;       /* training defaults */
    double lr;
    enum dc_schedule schedule;  /* to 0 when cosine */
    double weight_decay;
    double p, lo, hi;           /* sparse features: x_i = U(lo, hi) · 1[r_i < p] */
    int64_t n_out;              /* L3D circuits: outputs */
    const char *data;           /* L3D toys: the data source spec (runtime/data.h) */
};

const struct toy_spec *toy_find(const char *name);  /* NULL if unknown */
const struct toy_spec *toy_specs(int *n);           /* the whole table */

/* One-step program that fixes the frozen tensors that need computing
 * (ResidMLP: W_E's rows normalised, W_U = W_Eᵀ). Run it with rt_train before
 * the training program, on the same store. For TMS there is nothing to do:
 * returns ST_OK with p->g == NULL. */
int toy_build_setup(const struct toy_spec *s, struct dc_prog *p, struct diag *d);

/* The training program: data input x, weights as states, labels from x, MSE
 * loss (metric "loss"), gradients, AdamW. batch/steps 0 take the spec's. */
int toy_build_train(const struct toy_spec *s, int64_t batch, int64_t steps, struct dc_prog *p,
                    struct diag *d);

/* The trained value of weight `name` (nbytes of float32, row-major), or NULL. */
typedef const void *(*toy_weight_fn)(void *ctx, const char *name, size_t nbytes);

/* The inference graph x → y with the weights as initializers, shapes inferred
 * at the given batch, x's dim 0 marked symbolic ("batch") for export, opset
 * TOY_OPSET, topological order filled. The caller frees *out. */
int toy_build_infer(const struct toy_spec *s, int64_t batch, toy_weight_fn get, void *ctx,
                    struct ir_graph **out, struct diag *d);

/* toy_l3d.c: the L3D families' programs (toy_build_train / _infer dispatch here) */
int toy_l3d_train(const struct toy_spec *s, int64_t batch, int64_t steps, struct dc_prog *p,
                  struct diag *d);
int toy_l3d_infer(const struct toy_spec *s, int64_t batch, toy_weight_fn get, void *ctx,
                  struct ir_graph **out, struct diag *d);
int toy_is_l3d(const struct toy_spec *s);

#endif
