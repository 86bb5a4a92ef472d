/* ci_fn_transformer.c — the global_shared_transformer CI function (METHOD.md §2.3)
 * as an IR subgraph: one small transformer reads every site's clean input and
 * writes every site's CI pre-activations. Not the squashing (ci_fn.c does that).
 * needs: a dc_ctx with the target forward; every site a matmul kind (rows), all
 *   sites with the same positions.
 * guarantees: every site's z [pos.., C]; trainable states "ci.transformer.*".
 *
 * Shapes. Sites in name order (the reference's), site k's rows [N, d_k]; the
 * positions [.., T] give N = B·T rows, B the product of the leading dims, and the
 * attention runs over T within one batch row. Positions of one axis (toys, [N])
 * are sequences of length 1, as the reference adds a singleton sequence axis.
 * D = d_model, H heads of d_h = D / H.
 *   x = concat_k rms(x_k) · W_in + b_in              [N, Σd_k] → [N, D]
 *   n_blocks times (pre-norm):  x += Attn(rms(x));  x += MLP(rms(x))
 *   z = x · W_out + b_out                            [N, Σ C_k], split per site
 * The residual stream stays 2-D rows [N, D] and only attention views it as
 * [B, T, H, d_h]: every weight then meets a 2-D operand, so its gradient is one
 * [in, N]·[N, out] product (a [B, T, in] operand would make autodiff build the
 * per-row [B, in, out] products and sum them).
 * rms(v) = v / √(mean(v²) + ε) over the last axis, no learned scale.
 * Attn(h) = softmax(rope(h W_q) rope(h W_k)ᵀ / √d_h) (h W_v) per head, W_o after;
 *   bidirectional, no biases. MLP: Linear + exact GELU per hidden width, then a
 *   Linear back to D; biases on.
 * Weights are stored right-multiply [d_in, d_out] like every CI weight in pdc (the
 * reference's q/k/v/o are torch nn.Linear, which stores the transpose).
 *
 * Init follows the `pd` library (param_decomp/ci_fns.py, ci_nn_blocks.py; METHOD
 * §2.3 and §11.10; `nano` uses torch defaults everywhere instead): W_in and the
 * MLP's hidden layers N(0, 2/fan_in) (its "relu" gain), W_out and the MLP's last
 * layer N(0, 1/fan_in), all biases zero; q/k/v/o keep torch's nn.Linear default,
 * kaiming_uniform(a = √5) = U(−1/√fan_in, 1/√fan_in), since the reference builds
 * them as plain nn.Linear. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_impl.h"

/* ε of the reference's weightless F.rms_norm(x, (d,)) with eps=None: torch then uses
 * torch.finfo(x.dtype).eps, for float32 FLT_EPSILON = 2^-23 = 1.1920929e-07 */
#define RMS_EPS ((double)FLT_EPSILON)

struct tf {
    struct dc_ctx *cx;
    const struct dc_ci_transformer *cfg;
    int64_t B, T, D, H, dh;
    uint32_t cos, sin; /* RoPE tables [T, 1, d_h]; sin carries the rotation's signs */
};

static uint32_t param(struct tf *t, const char *what, int rank, const int64_t *dims,
                      enum dc_init init, double scale)
{
    char nm[160];
    snprintf(nm, sizeof nm, "ci.transformer.%s", what);
    return dc_state(t->cx, nm, IR_F32, rank, dims, init, scale, DC_TRAIN_CI);
}

/* x [.., in] · W [in, out] + b: W ~ N(0, gain²/in), b zero */
static uint32_t linear(struct tf *t, const char *what, uint32_t x, int64_t in, int64_t out,
                       double gain)
{
    char nm[128];
    int64_t wd[2] = {in, out};
    snprintf(nm, sizeof nm, "%s.W", what);
    uint32_t W = param(t, nm, 2, wd, DC_INIT_NORMAL, gain / sqrt((double)in));
    snprintf(nm, sizeof nm, "%s.b", what);
    uint32_t b = param(t, nm, 1, &out, DC_INIT_ZERO, 0);
    return bld_add(&t->cx->b, bld_matmul(&t->cx->b, x, W), b);
}

/* an attention projection [D, D] without bias, torch's default nn.Linear init */
static uint32_t proj(struct tf *t, int blk, const char *which, uint32_t x)
{
    char nm[128];
    int64_t wd[2] = {t->D, t->D};
    snprintf(nm, sizeof nm, "block%d.attn.%s", blk, which);
    uint32_t W = param(t, nm, 2, wd, DC_INIT_UNIFORM, 1.0 / sqrt((double)t->D));
    return bld_matmul(&t->cx->b, x, W);
}

static uint32_t rms(struct tf *t, uint32_t x)
{
    struct ir_builder *b = &t->cx->b;
    int64_t last = -1;
    uint32_t ms = bld_reduce(b, IR_OP_ReduceMean, bld_mul(b, x, x), 1, &last, 1);
    return bld_div(b, x, bld_op1(b, IR_OP_Sqrt, bld_add(b, ms, bld_f32(b, RMS_EPS))));
}

/* Split-half RoPE, θ_{t,i} = t · base^(−2i/d_h), i < d_h/2:
 *   [x1, x2] → [x1 cos θ − x2 sin θ, x2 cos θ + x1 sin θ]
 * = x ⊙ [cos, cos] + [x2, x1] ⊙ [−sin, sin]. The tables are build-time constants,
 * computed in double (the reference's are float32: angles differ by ~t·2^-24). */
static void rope_tables(struct tf *t)
{
    int64_t T = t->T, dh = t->dh, half = dh / 2, dims[3] = {T, 1, dh};
    float *c = malloc((size_t)(T * dh) * sizeof *c), *s = malloc((size_t)(T * dh) * sizeof *s);
    if (!c || !s) {
        free(c);
        free(s);
        t->cx->b.err = diag_set(t->cx->b.d, ST_ERR_NOMEM, "out of memory (RoPE tables)");
        return;
    }
    for (int64_t p = 0; p < T; p++)
        for (int64_t j = 0; j < dh; j++) {
            int64_t i = j % half;
            double th = (double)p * pow(t->cfg->rope_base, -2.0 * (double)i / (double)dh);
            c[p * dh + j] = (float)cos(th);
            s[p * dh + j] = (float)(j < half ? -sin(th) : sin(th));
        }
    t->cos = bld_const(&t->cx->b, IR_F32, 3, dims, c);
    t->sin = bld_const(&t->cx->b, IR_F32, 3, dims, s);
    free(c);
    free(s);
}

/* x [B, T, H, d_h] rotated per head and position */
static uint32_t rope(struct tf *t, uint32_t x)
{
    struct ir_builder *b = &t->cx->b;
    int64_t halves[2] = {t->dh / 2, t->dh / 2};
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t in[2] = {x, bld_i64s(b, 2, halves)}, xs[2];
    bld_node(b, IR_OP_Split, 2, in, 1, &ax, 2, xs);
    uint32_t swapped[2] = {xs[1], xs[0]};
    uint32_t sw = bld_node(b, IR_OP_Concat, 2, swapped, 1, &ax, 1, NULL);
    return bld_add(b, bld_mul(b, x, t->cos), bld_mul(b, sw, t->sin));
}

/* bidirectional multi-head self-attention on rows h [N = B·T, D] */
static uint32_t attention(struct tf *t, int blk, uint32_t h)
{
    struct ir_builder *b = &t->cx->b;
    int64_t heads[4] = {t->B, t->T, t->H, t->dh}, bhtd[4] = {0, 2, 1, 3}, bhdt[4] = {0, 2, 3, 1};
    int64_t nd[2] = {t->B * t->T, t->D};
    /* 1/√d_h on q before the product: the same scores, one multiply per q entry */
    uint32_t q = bld_mul(b, proj(t, blk, "q", h), bld_f32(b, 1.0 / sqrt((double)t->dh)));
    q = bld_transpose(b, rope(t, bld_reshape(b, q, 4, heads)), 4, bhtd);    /* [B, H, T, dh] */
    uint32_t k = bld_reshape(b, proj(t, blk, "k", h), 4, heads);
    k = bld_transpose(b, rope(t, k), 4, bhdt);                               /* [B, H, dh, T] */
    uint32_t v = bld_transpose(b, bld_reshape(b, proj(t, blk, "v", h), 4, heads), 4, bhtd);
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t s = bld_matmul(b, q, k);                                        /* [B, H, T, T] */
    uint32_t p = bld_node(b, IR_OP_Softmax, 1, &s, 1, &ax, 1, NULL);
    uint32_t o = bld_transpose(b, bld_matmul(b, p, v), 4, bhtd);             /* [B, T, H, dh] */
    return proj(t, blk, "o", bld_reshape(b, o, 2, nd));
}

static uint32_t mlp(struct tf *t, int blk, uint32_t h)
{
    int widths[DC_MAX_HIDDEN], n = dc_ci_transformer_mlp(t->cfg, widths);
    int64_t in = t->D;
    char nm[64];
    for (int k = 0; k < n; k++) {
        snprintf(nm, sizeof nm, "block%d.mlp.%d", blk, k);
        h = bld_op1(&t->cx->b, IR_OP_Gelu, linear(t, nm, h, in, widths[k], sqrt(2.0)));
        in = widths[k];
    }
    snprintf(nm, sizeof nm, "block%d.mlp.%d", blk, n);
    return linear(t, nm, h, in, t->D, 1.0);
}

/* B and T from the first site's positions; every site must have the same ones */
static int geometry(struct tf *t, const int *order)
{
    struct dc_ctx *cx = t->cx;
    const struct dc_site_t *s0 = &cx->s[order[0]];
    for (int k = 1; k < cx->ns; k++) {
        const struct dc_site_t *s = &cx->s[order[k]];
        int same = s->pr == s0->pr;
        for (int j = 0; same && j < s->pr; j++)
            same = s->pos[j] == s0->pos[j];
        if (!same)
            return cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED,
                                        "global_shared_transformer: sites '%s' and '%s' have "
                                        "different positions (the sequence axis must agree)",
                                        cx->sites[order[0]].name, cx->sites[order[k]].name);
    }
    t->T = s0->pr >= 2 ? s0->pos[s0->pr - 1] : 1;
    t->B = 1;
    for (int j = 0; j < s0->pr - (s0->pr >= 2); j++)
        t->B *= s0->pos[j];
    if (t->T > t->cfg->max_len)
        return cx->b.err = diag_set(cx->b.d, ST_ERR_INVALID,
                                    "global_shared_transformer: sequences of %lld positions exceed "
                                    "simple_transformer_ci_cfg.attn_config.max_len %lld",
                                    (long long)t->T, (long long)t->cfg->max_len);
    return ST_OK;
}

int dc_ci_transformer(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    struct tf t = {.cx = cx, .cfg = &cx->cfg->ci_tf};
    int order[DC_MAX_GLOBAL_SITES], n = cx->ns;
    uint32_t xs[DC_MAX_GLOBAL_SITES];
    if (b->err || (b->err = dc_ci_transformer_check(t.cfg, b->d)))
        return b->err;
    if (n < 1)
        return b->err = diag_set(b->d, ST_ERR_INVALID, "global_shared_transformer: no sites");
    if (dc_ci_global_rows(cx, order, xs) || geometry(&t, order))
        return b->err;
    t.D = t.cfg->d_model;
    t.H = t.cfg->n_heads;
    t.dh = t.D / t.H;
    int64_t din = 0, ctot = 0;
    for (int k = 0; k < n; k++) {
        xs[k] = rms(&t, xs[k]);
        din += cx->sites[order[k]].d_in;
        ctot += cx->sites[order[k]].C;
    }
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t x = n == 1 ? xs[0] : bld_node(b, IR_OP_Concat, (uint32_t)n, xs, 1, &ax, 1, NULL);
    x = linear(&t, "proj_in", x, din, t.D, sqrt(2.0));
    rope_tables(&t);
    for (int blk = 0; blk < t.cfg->n_blocks && !b->err; blk++) {
        x = bld_add(b, x, attention(&t, blk, rms(&t, x)));
        x = bld_add(b, x, mlp(&t, blk, rms(&t, x)));
    }
    uint32_t z = linear(&t, "proj_out", x, t.D, ctot, 1.0);
    return dc_ci_global_split(cx, order, z);
}
