/* decomp_export_ci_tf.c — the global_shared_transformer CI function of
 * ci_fn_transformer.c written as plain ONNX ops for `pdc export --form ci`.
 * The same sums in the same order as the training graph, with two differences
 * forced by the export graph's symbolic dims:
 *  - positions stay as they are ([N, d] for one position axis, [B, T, d] for a
 *    sequence) instead of being flattened to rows; attention views them as
 *    [B, T, H, d_h] through Reshape with 0 (copy) dims;
 *  - the RoPE tables are stored for attn_config.max_len positions and cut to the
 *    input's T at run time (Shape → Slice) when T is symbolic, so one exported
 *    model serves every sequence length up to max_len (the CI function was
 *    trained for at most that many).
 * The half swap of RoPE is a Gather along the last axis (exact for every input, inf
 * and NaN included) and GELU is 0.5·x·(1 + erf(x/√2)) (ONNX Gelu needs opset 20). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_export_impl.h"

/* as ci_fn_transformer.c: torch's eps for a weightless float32 rms_norm */
#define RMS_EPS FLT_EPSILON

struct xtf {
    struct dx_builder *xb;
    const struct dx_ci *ci;
    const struct dc_ci_transformer *cfg;
    int pr;                 /* position axes: 1 (rows) or 2 ([B, T]) */
    int64_t T;              /* the sequence length when static, else -1 */
    int64_t D, H, dh;
    uint32_t cos, sin, swap; /* [T or 1, 1, d_h] tables; the half swap's indices [d_h] */
};

static uint32_t i64s(struct xtf *t, int n, const int64_t *v)
{
    int64_t dn = n;
    return dx_const(t->xb, "ci/shape", IR_I64, 1, &dn, v);
}

/* "ci.transformer.<what>" from components.safetensors, shaped dims */
static uint32_t param(struct xtf *t, const char *what, int rank, const int64_t *dims)
{
    char nm[200];
    snprintf(nm, sizeof nm, "ci.transformer.%s", what);
    return dx_ci_weight(t->xb, t->ci, nm, rank, dims);
}

static uint32_t linear(struct xtf *t, const char *what, uint32_t x, int64_t in, int64_t out)
{
    char nm[128];
    int64_t wd[2] = {in, out};
    snprintf(nm, sizeof nm, "%s.W", what);
    uint32_t W = param(t, nm, 2, wd);
    snprintf(nm, sizeof nm, "%s.b", what);
    return dx_op2(t->xb, IR_OP_Add, dx_op2(t->xb, IR_OP_MatMul, x, W), param(t, nm, 1, &out));
}

static uint32_t rms(struct xtf *t, uint32_t x)
{
    struct dx_builder *xb = t->xb;
    int64_t last = -1;
    struct ir_attr keep = {.name = "keepdims", .type = IR_ATTR_INT, .i = 1};
    uint32_t in[2] = {dx_op2(xb, IR_OP_Mul, x, x), i64s(t, 1, &last)};
    uint32_t ms = dx_node(xb, IR_OP_ReduceMean, 2, in, 1, &keep, IR_NONE);
    uint32_t den = dx_op2(xb, IR_OP_Add, ms, dx_scalar(xb, RMS_EPS));
    return dx_op2(xb, IR_OP_Div, x, dx_node(xb, IR_OP_Sqrt, 1, &den, 0, NULL, IR_NONE));
}

/* the tables of ci_fn_transformer.c's rope_tables for `rows` positions, and the
 * indices j → (j + d_h/2) mod d_h that gather [x1, x2] into [x2, x1] */
static int tables(struct xtf *t, int64_t rows)
{
    int64_t dh = t->dh, half = dh / 2, dims[3] = {rows, 1, dh};
    float *c = malloc((size_t)(rows * dh) * sizeof *c), *s = malloc((size_t)(rows * dh) * sizeof *s);
    int64_t *P = malloc((size_t)dh * sizeof *P);
    if (!c || !s || !P) {
        free(c), free(s), free(P);
        return t->xb->err = diag_set(t->xb->d, ST_ERR_NOMEM, "out of memory (RoPE tables)");
    }
    for (int64_t p = 0; p < rows; p++)
        for (int64_t j = 0; j < dh; j++) {
            int64_t i = j % half;
            double th = (double)p * pow(t->cfg->rope_base, -2.0 * (double)i / (double)dh);
            c[p * dh + j] = (float)cos(th);
            s[p * dh + j] = (float)(j < half ? -sin(th) : sin(th));
        }
    for (int64_t j = 0; j < dh; j++)
        P[j] = (j + half) % dh;
    t->cos = dx_const(t->xb, "ci/rope_cos", IR_F32, 3, dims, c);
    t->sin = dx_const(t->xb, "ci/rope_sin", IR_F32, 3, dims, s);
    t->swap = dx_const(t->xb, "ci/rope_swap", IR_I64, 1, &dh, P);
    free(c), free(s), free(P);
    return t->xb->err;
}

/* a table cut to the T of x [B, T, H, d_h] (symbolic T only) */
static uint32_t cut(struct xtf *t, uint32_t table, uint32_t x)
{
    if (t->T >= 0)
        return table;
    struct dx_builder *xb = t->xb;
    int64_t one = 1, two = 2, zero = 0;
    uint32_t shape = dx_node(xb, IR_OP_Shape, 1, &x, 0, NULL, IR_NONE);
    uint32_t in[4] = {shape, i64s(t, 1, &one), i64s(t, 1, &two), i64s(t, 1, &zero)};
    uint32_t T = dx_node(xb, IR_OP_Slice, 4, in, 0, NULL, IR_NONE);
    uint32_t tin[4] = {table, i64s(t, 1, &zero), T, i64s(t, 1, &zero)};
    return dx_node(xb, IR_OP_Slice, 4, tin, 0, NULL, IR_NONE);
}

static uint32_t rope(struct xtf *t, uint32_t x)
{
    struct dx_builder *xb = t->xb;
    uint32_t a = dx_op2(xb, IR_OP_Mul, x, cut(t, t->cos, x));
    struct ir_attr ax = {.name = "axis", .type = IR_ATTR_INT, .i = -1};
    uint32_t gin[2] = {x, t->swap};
    uint32_t sw = dx_node(xb, IR_OP_Gather, 2, gin, 1, &ax, IR_NONE);
    return dx_op2(xb, IR_OP_Add, a, dx_op2(xb, IR_OP_Mul, sw, cut(t, t->sin, x)));
}

static uint32_t proj(struct xtf *t, int blk, const char *which, uint32_t x)
{
    char nm[128];
    int64_t wd[2] = {t->D, t->D};
    snprintf(nm, sizeof nm, "block%d.attn.%s", blk, which);
    return dx_op2(t->xb, IR_OP_MatMul, x, param(t, nm, 2, wd));
}

/* h [pos.., D] → [B, T, H, d_h] ([N, 1, H, d_h] for rows) and back */
static uint32_t heads(struct xtf *t, uint32_t h)
{
    int64_t shape[4] = {0, t->pr == 2 ? 0 : 1, t->H, t->dh};
    return dx_op2(t->xb, IR_OP_Reshape, h, i64s(t, 4, shape));
}

static uint32_t attention(struct xtf *t, int blk, uint32_t h)
{
    struct dx_builder *xb = t->xb;
    int64_t bhtd[4] = {0, 2, 1, 3}, bhdt[4] = {0, 2, 3, 1}, back[3] = {0, 0, t->D};
    uint32_t q = dx_op2(xb, IR_OP_Mul, proj(t, blk, "q", h), dx_scalar(xb, (float)(1.0 / sqrt((double)t->dh))));
    q = dx_transpose(xb, rope(t, heads(t, q)), 4, bhtd);                 /* [B, H, T, dh] */
    uint32_t k = dx_transpose(xb, rope(t, heads(t, proj(t, blk, "k", h))), 4, bhdt);
    uint32_t v = dx_transpose(xb, heads(t, proj(t, blk, "v", h)), 4, bhtd);
    struct ir_attr ax = {.name = "axis", .type = IR_ATTR_INT, .i = -1};
    uint32_t s = dx_op2(xb, IR_OP_MatMul, q, k);                         /* [B, H, T, T] */
    uint32_t p = dx_node(xb, IR_OP_Softmax, 1, &s, 1, &ax, IR_NONE);
    uint32_t o = dx_transpose(xb, dx_op2(xb, IR_OP_MatMul, p, v), 4, bhtd); /* [B, T, H, dh] */
    o = dx_op2(xb, IR_OP_Reshape, o, i64s(t, t->pr + 1, t->pr == 2 ? back : back + 1));
    return proj(t, blk, "o", o);
}

static uint32_t mlp(struct xtf *t, int blk, uint32_t h)
{
    int widths[DC_MAX_HIDDEN], n = dc_ci_transformer_mlp(t->cfg, widths);
    int64_t in = t->D;
    char nm[64];
    for (int k = 0; k < n; k++) {
        snprintf(nm, sizeof nm, "block%d.mlp.%d", blk, k);
        h = dx_gelu(t->xb, linear(t, nm, h, in, widths[k]));
        in = widths[k];
    }
    snprintf(nm, sizeof nm, "block%d.mlp.%d", blk, n);
    return linear(t, nm, h, in, t->D);
}

int dx_ci_transformer(struct dx_builder *xb, const struct dx_ci *ci, const struct dx_site *sites,
                      int ns, const uint32_t *rows, uint32_t *z)
{
    struct xtf t = {.xb = xb, .ci = ci, .cfg = &ci->cfg->ci_tf, .pr = sites[0].pr};
    if (xb->err || (xb->err = dc_ci_transformer_check(t.cfg, xb->d)))
        return xb->err;
    if (t.pr < 1 || t.pr > 2)
        return xb->err = diag_set(xb->d, ST_ERR_UNSUPPORTED, "--form ci: site '%s' has %d "
                                  "position axes; the exported global_shared_transformer takes "
                                  "[N] rows or [batch, seq]", sites[0].s->name, t.pr);
    t.D = t.cfg->d_model;
    t.H = t.cfg->n_heads;
    t.dh = t.D / t.H;
    t.T = t.pr == 1 ? 1 : sites[0].pos[1];
    if (t.T > t.cfg->max_len)
        return xb->err = diag_set(xb->d, ST_ERR_INVALID, "--form ci: sequences of %lld positions "
                                  "exceed the CI transformer's max_len %lld", (long long)t.T,
                                  (long long)t.cfg->max_len);
    int order[DX_MAX_GLOBAL_SITES];
    uint32_t xs[DX_MAX_GLOBAL_SITES];
    int64_t din = 0, ctot = 0;
    if (dx_ci_global_order(xb, sites, ns, order))
        return xb->err;
    for (int k = 0; k < ns; k++) {
        xs[k] = rms(&t, rows[order[k]]);
        din += sites[order[k]].s->d_in;
        ctot += sites[order[k]].s->C;
    }
    struct ir_attr ax = {.name = "axis", .type = IR_ATTR_INT, .i = t.pr};
    uint32_t x = ns == 1 ? xs[0] : dx_node(xb, IR_OP_Concat, (uint32_t)ns, xs, 1, &ax, IR_NONE);
    x = linear(&t, "proj_in", x, din, t.D);
    if (tables(&t, t.T >= 0 ? t.T : t.cfg->max_len))
        return xb->err;
    for (int blk = 0; blk < t.cfg->n_blocks && !xb->err; blk++) {
        x = dx_op2(xb, IR_OP_Add, x, attention(&t, blk, rms(&t, x)));
        x = dx_op2(xb, IR_OP_Add, x, mlp(&t, blk, rms(&t, x)));
    }
    return dx_ci_global_split(xb, sites, ns, order, linear(&t, "proj_out", x, t.D, ctot), z);
}
