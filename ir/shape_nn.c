/* shape_nn.c — shape rules for linear algebra, convolution and pooling:
 * MatMul, Gemm, Einsum, Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
 * Kernels: codegen/ref/ref_linalg.c, codegen/ref/ref_conv.c. */
#include <string.h>

#include "einsum_parse.h"
#include "nn_geom.h"
#include "shape_impl.h"

/* the first `cnt` inputs are required: an empty name there is an error */
static int want_inputs(const struct ir_node *n, uint32_t cnt, struct diag *d)
{
    for (uint32_t i = 0; i < cnt; i++)
        if (i >= n->n_in || n->in[i] == IR_NONE)
            return shp_err(d, n, ST_ERR_INVALID, "required input %u is missing", i);
    return ST_OK;
}

/* the dtypes ONNX allows for MatMul/Gemm/Einsum: floats and 32/64-bit ints */
static int linalg_dtype_ok(enum ir_dtype dt)
{
    return ir_dtype_is_float(dt) || dt == IR_I32 || dt == IR_I64 || dt == IR_U32 ||
           dt == IR_U64;
}

static int want_linalg_dtype(const struct ir_node *n, const struct ir_tensor *t, struct diag *d)
{
    if (linalg_dtype_ok(t->dtype))
        return ST_OK;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "input '%s' has type %s; this op takes float, "
                   "int32, int64, uint32 or uint64", t->name, ir_dtype_name(t->dtype));
}

static int want_same_dtype(const struct ir_node *n, const struct ir_tensor *a,
                           const struct ir_tensor *b, struct diag *d)
{
    if (a->dtype == b->dtype)
        return ST_OK;
    return shp_err(d, n, ST_ERR_INVALID, "inputs '%s' (%s) and '%s' (%s) must have the same type",
                   a->name, ir_dtype_name(a->dtype), b->name, ir_dtype_name(b->dtype));
}

/* numpy matmul: 1-D operands are promoted (A to [1,K], B to [K,1]) and the
 * promoted dim dropped again; leading (batch) dims broadcast */
SHAPE_RULE(MatMul)
{
    const struct ir_tensor *a = shp_in(g, n, 0), *b = shp_in(g, n, 1);
    int st;
    if ((st = want_inputs(n, 2, d)) || (st = want_linalg_dtype(n, a, d)) ||
        (st = want_same_dtype(n, a, b, d)))
        return st;
    if (a->rank < 1 || b->rank < 1)
        return shp_err(d, n, ST_ERR_SHAPE, "MatMul operands must have rank >= 1 (got %d and %d)",
                       a->rank, b->rank);
    int ta, tb; /* pdc's own, on built programs (ir_matmul_view) */
    ir_matmul_trans(n, a, b, &ta, &tb);
    int64_t ka = a->dims[a->rank - 1 - ta];
    int64_t kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2 + tb];
    if (ka != kb)
        return shp_err(d, n, ST_ERR_SHAPE, "inner dims differ: '%s' has K=%lld, '%s' has K=%lld",
                       a->name, (long long)ka, b->name, (long long)kb);
    int ra = a->rank > 2 ? a->rank - 2 : 0, rb = b->rank > 2 ? b->rank - 2 : 0, rank;
    int64_t dims[IR_MAX_RANK + 2];
    if (ir_broadcast_shape(ra, a->dims, rb, b->dims, &rank, dims) < 0)
        return shp_err(d, n, ST_ERR_SHAPE, "batch dims of '%s' and '%s' do not broadcast",
                       a->name, b->name);
    if (a->rank >= 2)
        dims[rank++] = a->dims[a->rank - 2 + ta];
    if (b->rank >= 2)
        dims[rank++] = b->dims[b->rank - 1 - tb];
    return shp_set(g, n, 0, a->dtype, rank, dims, d);
}

/* C must broadcast unidirectionally to [M, N] */
static int gemm_check_c(const struct ir_node *n, const struct ir_tensor *c, int64_t m, int64_t nn,
                        struct diag *d)
{
    int64_t want[2] = {m, nn};
    if (c->rank > 2)
        return shp_err(d, n, ST_ERR_SHAPE, "C ('%s') has rank %d; at most 2", c->name, c->rank);
    for (int i = 0; i < c->rank; i++) {
        int64_t cd = c->dims[i], wd = want[2 - c->rank + i];
        if (cd != 1 && cd != wd)
            return shp_err(d, n, ST_ERR_SHAPE, "C ('%s') dim %d is %lld; it must be 1 or %lld",
                           c->name, i, (long long)cd, (long long)wd);
    }
    return ST_OK;
}

SHAPE_RULE(Gemm)
{
    const struct ir_tensor *a = shp_in(g, n, 0), *b = shp_in(g, n, 1), *c = shp_in(g, n, 2);
    int st;
    if ((st = want_inputs(n, 2, d)) || (st = want_linalg_dtype(n, a, d)) ||
        (st = want_same_dtype(n, a, b, d)) || (c && (st = want_same_dtype(n, a, c, d))))
        return st;
    if (a->rank != 2 || b->rank != 2)
        return shp_err(d, n, ST_ERR_SHAPE, "Gemm needs 2-D A and B (got rank %d and %d)", a->rank,
                       b->rank);
    int ta = ir_attr_int(n, "transA", 0) != 0, tb = ir_attr_int(n, "transB", 0) != 0;
    int64_t m = a->dims[ta ? 1 : 0], ka = a->dims[ta ? 0 : 1];
    int64_t kb = b->dims[tb ? 1 : 0], nn = b->dims[tb ? 0 : 1];
    if (ka != kb)
        return shp_err(d, n, ST_ERR_SHAPE, "inner dims differ: op(A) is %lldx%lld, op(B) is "
                       "%lldx%lld", (long long)m, (long long)ka, (long long)kb, (long long)nn);
    if (c && (st = gemm_check_c(n, c, m, nn, d)))
        return st;
    int64_t dims[2] = {m, nn};
    return shp_set(g, n, 0, a->dtype, 2, dims, d);
}

SHAPE_RULE(Einsum)
{
    const struct ir_attr *eq = ir_attr_get(n, "equation");
    if (!eq || eq->type != IR_ATTR_STRING)
        return shp_err(d, n, ST_ERR_INVALID, "missing string attribute 'equation'");
    int ranks[EIN_MAX_OPS];
    int64_t dims[EIN_MAX_OPS][IR_MAX_RANK];
    const struct ir_tensor *t0 = shp_in(g, n, 0);
    int st;
    for (uint32_t i = 0; i < n->n_in; i++) {
        const struct ir_tensor *t = shp_in(g, n, i);
        if (!t)
            return shp_err(d, n, ST_ERR_INVALID, "input %u is missing", i);
        if ((st = want_linalg_dtype(n, t, d)) || (st = want_same_dtype(n, t0, t, d)))
            return st;
        ranks[i] = t->rank;
        memcpy(dims[i], t->dims, sizeof dims[i]);
    }
    struct ein_spec sp;
    char err[256];
    if ((st = ein_parse(eq->s, (int)n->n_in, ranks, (const int64_t(*)[IR_MAX_RANK])dims, &sp, err,
                        sizeof err)) != ST_OK)
        return shp_err(d, n, st, "equation '%s': %s", eq->s, err);
    int64_t odims[IR_MAX_RANK];
    for (int i = 0; i < sp.out_rank; i++)
        odims[i] = sp.size[sp.out_lab[i]];
    return shp_set(g, n, 0, t0->dtype, sp.out_rank, odims, d);
}

/* X is (N, C, spatial...) with 1..3 spatial dims */
static int want_spatial(const struct ir_node *n, const struct ir_tensor *x, struct diag *d)
{
    if (x->rank < 3)
        return shp_err(d, n, ST_ERR_SHAPE, "input '%s' has rank %d; expected (N, C, spatial...)",
                       x->name, x->rank);
    if (x->rank - 2 > NN_MAX_SP)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "%d spatial dims; pdc supports 1 to %d",
                       x->rank - 2, NN_MAX_SP);
    return ST_OK;
}

/* output (N, channels, gm.out...) */
static int set_spatial_out(struct ir_graph *g, struct ir_node *n, enum ir_dtype dt, int64_t batch,
                           int64_t channels, const struct nn_geom *gm, struct diag *d)
{
    int64_t dims[2 + NN_MAX_SP] = {batch, channels};
    for (int i = 0; i < gm->nsp; i++)
        dims[2 + i] = gm->out[i];
    return shp_set(g, n, 0, dt, 2 + gm->nsp, dims, d);
}

/* kernel_shape, when given, must match W's spatial dims */
static int conv_kernel_attr(const struct ir_node *n, const struct ir_tensor *w, struct diag *d)
{
    const int64_t *ks;
    int64_t nk = ir_attr_ints(n, "kernel_shape", &ks);
    if (nk < 0)
        return ST_OK;
    if (nk != w->rank - 2)
        return shp_err(d, n, ST_ERR_INVALID, "kernel_shape has %lld entries for %d spatial dims",
                       (long long)nk, w->rank - 2);
    for (int i = 0; i < w->rank - 2; i++)
        if (ks[i] != w->dims[2 + i])
            return shp_err(d, n, ST_ERR_SHAPE, "kernel_shape[%d] = %lld but W ('%s') has %lld", i,
                           (long long)ks[i], w->name, (long long)w->dims[2 + i]);
    return ST_OK;
}

/* W is (M, C/group, k...), B is (M) */
static int conv_check_w(const struct ir_node *n, const struct ir_tensor *x,
                        const struct ir_tensor *w, const struct ir_tensor *b, struct diag *d)
{
    int64_t group = ir_attr_int(n, "group", 1);
    if (w->rank != x->rank)
        return shp_err(d, n, ST_ERR_SHAPE, "W ('%s') has rank %d, X has rank %d", w->name, w->rank,
                       x->rank);
    if (group < 1 || x->dims[1] % group != 0 || w->dims[0] % group != 0)
        return shp_err(d, n, ST_ERR_SHAPE, "group %lld must divide C=%lld and M=%lld",
                       (long long)group, (long long)x->dims[1], (long long)w->dims[0]);
    if (w->dims[1] * group != x->dims[1])
        return shp_err(d, n, ST_ERR_SHAPE, "W ('%s') has %lld input channels per group; X has "
                       "C=%lld with group=%lld", w->name, (long long)w->dims[1],
                       (long long)x->dims[1], (long long)group);
    if (b && (b->rank != 1 || b->dims[0] != w->dims[0]))
        return shp_err(d, n, ST_ERR_SHAPE, "bias ('%s') must have shape (%lld)", b->name,
                       (long long)w->dims[0]);
    return conv_kernel_attr(n, w, d);
}

SHAPE_RULE(Conv)
{
    const struct ir_tensor *x = shp_in(g, n, 0), *w = shp_in(g, n, 1), *b = shp_in(g, n, 2);
    int st;
    if ((st = want_inputs(n, 2, d)) || (st = shp_want_float(n, x, d)) ||
        (st = want_same_dtype(n, x, w, d)) ||
        (b && (st = want_same_dtype(n, x, b, d))) || (st = want_spatial(n, x, d)) ||
        (st = conv_check_w(n, x, w, b, d)))
        return st;
    struct nn_geom gm;
    char err[256];
    if ((st = nn_geom_fill(n, x->rank - 2, x->dims + 2, w->dims + 2, 0, &gm, err, sizeof err)))
        return shp_err(d, n, st, "%s", err);
    return set_spatial_out(g, n, x->dtype, x->dims[0], w->dims[0], &gm, d);
}

/* shared by MaxPool and AveragePool: kernel_shape is required */
static int pool_rule(struct ir_graph *g, struct ir_node *n, struct diag *d)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int st;
    if ((st = want_spatial(n, x, d)))
        return st;
    if (n->n_out > 1 && n->out[1] != IR_NONE)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "the Indices output of MaxPool is not supported");
    const int64_t *ks;
    int64_t nk = ir_attr_ints(n, "kernel_shape", &ks);
    if (nk != x->rank - 2)
        return shp_err(d, n, ST_ERR_INVALID, "kernel_shape must have %d entries (has %lld)",
                       x->rank - 2, (long long)nk);
    struct nn_geom gm;
    char err[256];
    int ceil_mode = ir_attr_int(n, "ceil_mode", 0) != 0;
    if ((st = nn_geom_fill(n, x->rank - 2, x->dims + 2, ks, ceil_mode, &gm, err, sizeof err)))
        return shp_err(d, n, st, "%s", err);
    return set_spatial_out(g, n, x->dtype, x->dims[0], x->dims[1], &gm, d);
}

/* storage_order only affects the Indices output, which pdc rejects */
SHAPE_RULE(MaxPool)
{
    if (want_inputs(n, 1, d))
        return d->status;
    const struct ir_tensor *x = shp_in(g, n, 0);
    if (!ir_dtype_is_float(x->dtype) && x->dtype != IR_I8 && x->dtype != IR_U8)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "input '%s' has type %s; MaxPool takes float, "
                       "int8 or uint8", x->name, ir_dtype_name(x->dtype));
    return pool_rule(g, n, d);
}

SHAPE_RULE(AveragePool)
{
    if (want_inputs(n, 1, d))
        return d->status;
    int st = shp_want_float(n, shp_in(g, n, 0), d);
    return st ? st : pool_rule(g, n, d);
}

/* (N, C, spatial...) -> (N, C, 1, ...) */
static int global_pool_rule(struct ir_graph *g, struct ir_node *n, struct diag *d)
{
    if (want_inputs(n, 1, d))
        return d->status;
    const struct ir_tensor *x = shp_in(g, n, 0);
    int st = shp_want_float(n, x, d);
    if (st)
        return st;
    if (x->rank < 2)
        return shp_err(d, n, ST_ERR_SHAPE, "input '%s' has rank %d; expected (N, C, spatial...)",
                       x->name, x->rank);
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = i < 2 ? x->dims[i] : 1;
    return shp_set(g, n, 0, x->dtype, x->rank, dims, d);
}

SHAPE_RULE(GlobalAveragePool)
{
    return global_pool_rule(g, n, d);
}

SHAPE_RULE(GlobalMaxPool)
{
    return global_pool_rule(g, n, d);
}
