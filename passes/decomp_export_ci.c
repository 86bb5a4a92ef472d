/* decomp_export_ci.c — the causal-importance function of ci_fn.c written as
 * plain ONNX ops for `pdc export --form ci`, on tensors of unknown (symbolic)
 * leading dims. ci_fn.c flattens positions to N rows and runs per-component
 * layers as [C, N, h] batched matmuls; here positions stay as they are and the
 * per-component layers are broadcasting MatMuls on [pos.., C, 1, h] against the
 * weights [C, h_in, h_out] (the same sums, so the same values up to rounding).
 * GELU is written as 0.5·x·(1 + erf(x/√2)) (the op's exact form; ONNX Gelu
 * needs opset 20). Kinds: mlp, vector_mlp, shared_mlp, global_shared_mlp here,
 * global_shared_transformer in decomp_export_ci_tf.c. */
#include <stdio.h>
#include <string.h>

#include "decomp_export_impl.h"

uint32_t dx_ci_weight(struct dx_builder *xb, const struct dx_ci *ci, const char *name, int rank,
                      const int64_t *dims)
{
    if (xb->err)
        return IR_NONE;
    int64_t want = 1;
    for (int k = 0; k < rank; k++)
        want *= dims[k];
    for (int i = 0; i < ci->nvals; i++) {
        const struct ir_value *v = &ci->vals[i];
        if (strcmp(v->name, name) != 0)
            continue;
        if (v->dtype != IR_F32 || ir_value_numel(v) != want)
            break;
        return dx_const(xb, name, IR_F32, rank, dims, v->data);
    }
    return xb->err = diag_set(xb->d, ST_ERR_INVALID, "components.safetensors: CI weight '%s' is "
                              "missing or not float32 with %lld elements", name, (long long)want),
           IR_NONE;
}

uint32_t dx_gelu(struct dx_builder *xb, uint32_t x)
{
    uint32_t e = dx_op2(xb, IR_OP_Mul, x, dx_scalar(xb, 0.70710678118654752f));
    uint32_t one = dx_op2(xb, IR_OP_Add, dx_node(xb, IR_OP_Erf, 1, &e, 0, NULL, IR_NONE),
                          dx_scalar(xb, 1.0f));
    return dx_op2(xb, IR_OP_Mul, dx_op2(xb, IR_OP_Mul, x, dx_scalar(xb, 0.5f)), one);
}

/* the MLP "ci.<who>.W<k>/b<k>" on a: per component ([.., C, 1, h] against
 * [C, h_in, h_out]) or shared ([.., h] against [h_in, h_out]) */
static uint32_t mlp(struct dx_builder *xb, const struct dx_ci *ci, const char *who, uint32_t a,
                    int percomp, int64_t C, int64_t in_dim, int64_t out_dim)
{
    const struct dc_config *c = ci->cfg;
    int64_t hin = in_dim;
    for (int k = 0; k <= c->n_ci_hidden; k++) {
        int last = k == c->n_ci_hidden;
        int64_t hout = last ? out_dim : c->ci_fn_hidden_dims[k];
        char nw[320], nb[320];
        snprintf(nw, sizeof nw, "ci.%s.W%d", who, k);
        snprintf(nb, sizeof nb, "ci.%s.b%d", who, k);
        int64_t wd[3] = {C, hin, hout}, bd[3] = {C, 1, hout};
        /* a per-component bias [C, h] is stored so; [C, 1, h] broadcasts over a row */
        uint32_t W = percomp ? dx_ci_weight(xb, ci, nw, 3, wd) : dx_ci_weight(xb, ci, nw, 2, wd + 1);
        uint32_t B = percomp ? dx_ci_weight(xb, ci, nb, 3, bd) : dx_ci_weight(xb, ci, nb, 1, bd + 2);
        a = dx_op2(xb, IR_OP_Add, dx_op2(xb, IR_OP_MatMul, a, W), B);
        if (!last)
            a = dx_gelu(xb, a);
        hin = hout;
    }
    return a;
}

static uint32_t layerwise(struct dx_builder *xb, const struct dx_ci *ci, const struct dx_site *xs,
                          uint32_t rows, uint32_t h)
{
    const struct dc_site *s = xs->s;
    int64_t C = s->C, two[2] = {xs->pr + 1, xs->pr + 2};
    switch (ci->cfg->ci_fn_type) {
    case DC_CI_MLP: { /* h [pos.., C] → [pos.., C, 1, 1] → per-component MLP → [pos.., C] */
        uint32_t a = dx_axes(xb, IR_OP_Unsqueeze, h, 2, two);
        return dx_axes(xb, IR_OP_Squeeze, mlp(xb, ci, s->name, a, 1, C, 1, 1), 2, two);
    }
    case DC_CI_VECTOR_MLP: { /* rows [pos.., d] → [pos.., 1, 1, d]; broadcasts against [C, d, h] */
        int64_t ax[2] = {xs->pr, xs->pr + 1};
        uint32_t a = dx_axes(xb, IR_OP_Unsqueeze, rows, 2, ax);
        return dx_axes(xb, IR_OP_Squeeze, mlp(xb, ci, s->name, a, 1, C, s->d_in, 1), 2, two);
    }
    case DC_CI_SHARED_MLP:
        return mlp(xb, ci, s->name, rows, 0, C, s->d_in, C);
    default:
        return IR_NONE;
    }
}

int dx_ci_global_order(struct dx_builder *xb, const struct dx_site *sites, int ns, int *order)
{
    if (ns > DX_MAX_GLOBAL_SITES)
        return xb->err = diag_set(xb->d, ST_ERR_UNSUPPORTED, "%d sites: a global CI function "
                                  "takes at most %d", ns, DX_MAX_GLOBAL_SITES);
    const char *names[DX_MAX_GLOBAL_SITES] = {0};
    for (int i = 0; i < ns; i++)
        names[i] = sites[i].s->name;
    dc_name_order(names, ns, order);
    return xb->err;
}

int dx_ci_global_split(struct dx_builder *xb, const struct dx_site *sites, int ns,
                       const int *order, uint32_t all, uint32_t *z)
{
    int64_t at = 0, axis = sites[0].pr;
    if (ns == 1) {
        z[order[0]] = all;
        return xb->err;
    }
    for (int k = 0; k < ns; k++) {
        int64_t lo = at, hi = at + sites[order[k]].s->C;
        uint32_t in[4] = {all, dx_const(xb, "ci/starts", IR_I64, 1, (int64_t[]){1}, &lo),
                          dx_const(xb, "ci/ends", IR_I64, 1, (int64_t[]){1}, &hi),
                          dx_const(xb, "ci/axes", IR_I64, 1, (int64_t[]){1}, &axis)};
        z[order[k]] = dx_node(xb, IR_OP_Slice, 4, in, 0, NULL, IR_NONE);
        at = hi;
    }
    return xb->err;
}

/* one MLP over the concatenated site inputs (sites in name order: the
 * reference's), sliced back per site along the last axis */
static int global_mlp(struct dx_builder *xb, const struct dx_ci *ci, const struct dx_site *sites,
                      int ns, const uint32_t *rows, uint32_t *z)
{
    int order[DX_MAX_GLOBAL_SITES];
    uint32_t xs[DX_MAX_GLOBAL_SITES];
    if (dx_ci_global_order(xb, sites, ns, order))
        return xb->err;
    int64_t din = 0, ctot = 0;
    for (int k = 0; k < ns; k++) {
        xs[k] = rows[order[k]];
        din += sites[order[k]].s->d_in;
        ctot += sites[order[k]].s->C;
    }
    struct ir_attr ax = {.name = "axis", .type = IR_ATTR_INT, .i = sites[0].pr};
    uint32_t cat = ns == 1 ? xs[0] : dx_node(xb, IR_OP_Concat, (uint32_t)ns, xs, 1, &ax, IR_NONE);
    return dx_ci_global_split(xb, sites, ns, order, mlp(xb, ci, "global", cat, 0, ctot, din, ctot), z);
}

int dx_ci_build(struct dx_builder *xb, const struct dx_ci *ci, const struct dx_site *sites,
                int ns, const uint32_t *rows, const uint32_t *h, uint32_t *z)
{
    enum dc_ci_fn k = ci->cfg->ci_fn_type;
    int global = k == DC_CI_GLOBAL_SHARED_MLP || k == DC_CI_GLOBAL_SHARED_TRANSFORMER;
    for (int i = 0; i < ns; i++) {
        int rows_needed = k != DC_CI_MLP;
        if (rows_needed && rows[i] == IR_NONE)
            return xb->err = diag_set(xb->d, ST_ERR_UNSUPPORTED, "site '%s' (%s): its CI "
                                      "function reads input rows, which only matmul sites have",
                                      sites[i].s->name, pass_site_kind_name(sites[i].s->kind));
        if (global && sites[i].pr != sites[0].pr)
            return xb->err = diag_set(xb->d, ST_ERR_UNSUPPORTED, "global CI function: sites "
                                      "'%s' and '%s' have different positions", sites[0].s->name,
                                      sites[i].s->name);
    }
    if (k == DC_CI_GLOBAL_SHARED_MLP)
        return global_mlp(xb, ci, sites, ns, rows, z);
    if (k == DC_CI_GLOBAL_SHARED_TRANSFORMER)
        return dx_ci_transformer(xb, ci, sites, ns, rows, z);
    for (int i = 0; i < ns && !xb->err; i++)
        z[i] = layerwise(xb, ci, &sites[i], rows[i], h[i]);
    return xb->err;
}
