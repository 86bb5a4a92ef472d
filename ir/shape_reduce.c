/* shape_reduce.c — shape rules for reductions and normalisations:
 * Reduce*, ArgMax/ArgMin, CumSum, Softmax/LogSoftmax/Hardmax,
 * LayerNormalization, BatchNormalization, InstanceNormalization.
 * Kernels: codegen/ref/ref_reduce.c, codegen/ref/ref_norm.c. */
#include "shape_impl.h"

/* the first `cnt` inputs are required: an empty name there is an error */
static int want_inputs(const struct ir_node *n, uint32_t cnt, struct diag *d)
{
    for (uint32_t i = 0; i < cnt; i++)
        if (i >= n->n_in || n->in[i] == IR_NONE)
            return shp_err(d, n, ST_ERR_INVALID, "required input %u is missing", i);
    return ST_OK;
}

/* numeric dtypes the Reduce ops take; bool only where ONNX allows it (Max/Min) */
static int want_numeric(const struct ir_node *n, const struct ir_tensor *t, int allow_bool,
                        struct diag *d)
{
    if (ir_dtype_is_float(t->dtype) || ir_dtype_is_int(t->dtype) ||
        (allow_bool && t->dtype == IR_BOOL))
        return ST_OK;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "input '%s' has type %s; this op needs a numeric type",
                   t->name, ir_dtype_name(t->dtype));
}

/* Which axes a Reduce* node reduces. Canonical form: axes is the optional
 * constant input 1; an `axes` attribute (older opsets, if the frontend left
 * it) is honoured too. Empty axes: all axes, or none (*noop) when
 * noop_with_empty_axes is set. */
static int reduce_mask(struct ir_graph *g, const struct ir_node *n, int rank, int *mask,
                       int *noop, struct diag *d)
{
    int64_t ax[IR_MAX_RANK];
    int64_t na = 0;
    if (shp_in(g, n, 1)) {
        na = shp_const_ints(g, n, 1, ax, IR_MAX_RANK, d);
        if (na < 0)
            return d->status;
    } else {
        const int64_t *v;
        int64_t cnt = ir_attr_ints(n, "axes", &v);
        if (cnt > IR_MAX_RANK)
            return shp_err(d, n, ST_ERR_INVALID, "%lld axes for a rank-%d input", (long long)cnt,
                           rank);
        for (int64_t i = 0; i < cnt; i++)
            ax[na++] = v[i];
    }
    *noop = na == 0 && ir_attr_int(n, "noop_with_empty_axes", 0) != 0;
    for (int i = 0; i < rank; i++)
        mask[i] = na == 0 && !*noop;
    for (int64_t i = 0; i < na; i++) {
        int a = ir_norm_axis(ax[i], rank);
        if (a < 0)
            return shp_err(d, n, ST_ERR_INVALID, "axis %lld is out of range for rank %d",
                           (long long)ax[i], rank);
        if (mask[a])
            return shp_err(d, n, ST_ERR_INVALID, "axis %lld is listed twice", (long long)ax[i]);
        mask[a] = 1;
    }
    return ST_OK;
}

static int reduce_rule(struct ir_graph *g, struct ir_node *n, int allow_bool, struct diag *d)
{
    if (want_inputs(n, 1, d))
        return d->status;
    const struct ir_tensor *x = shp_in(g, n, 0);
    int mask[IR_MAX_RANK], noop, st;
    if ((st = want_numeric(n, x, allow_bool, d)) ||
        (st = reduce_mask(g, n, x->rank, mask, &noop, d)))
        return st;
    int keep = ir_attr_int(n, "keepdims", 1) != 0, rank = 0;
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        if (!mask[i])
            dims[rank++] = x->dims[i];
        else if (keep)
            dims[rank++] = 1;
    }
    return shp_set(g, n, 0, x->dtype, rank, dims, d);
}

SHAPE_RULE(ReduceMean) { return reduce_rule(g, n, 0, d); }
SHAPE_RULE(ReduceSum) { return reduce_rule(g, n, 0, d); }
SHAPE_RULE(ReduceMax) { return reduce_rule(g, n, 1, d); }
SHAPE_RULE(ReduceMin) { return reduce_rule(g, n, 1, d); }
SHAPE_RULE(ReduceProd) { return reduce_rule(g, n, 0, d); }
SHAPE_RULE(ReduceL1) { return reduce_rule(g, n, 0, d); }
SHAPE_RULE(ReduceL2) { return reduce_rule(g, n, 0, d); }
SHAPE_RULE(ReduceSumSquare) { return reduce_rule(g, n, 0, d); }
SHAPE_RULE(ReduceLogSum) { return reduce_rule(g, n, 0, d); }
SHAPE_RULE(ReduceLogSumExp) { return reduce_rule(g, n, 0, d); }

/* ArgMax/ArgMin: int64 indices along `axis` */
static int arg_rule(struct ir_graph *g, struct ir_node *n, struct diag *d)
{
    if (want_inputs(n, 1, d))
        return d->status;
    const struct ir_tensor *x = shp_in(g, n, 0);
    int st = want_numeric(n, x, 0, d);
    if (st)
        return st;
    int64_t axis = ir_attr_int(n, "axis", 0);
    int a = ir_norm_axis(axis, x->rank);
    if (a < 0)
        return shp_err(d, n, ST_ERR_INVALID, "axis %lld is out of range for rank %d",
                       (long long)axis, x->rank);
    int keep = ir_attr_int(n, "keepdims", 1) != 0, rank = 0;
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        if (i != a)
            dims[rank++] = x->dims[i];
        else if (keep)
            dims[rank++] = 1;
    }
    return shp_set(g, n, 0, IR_I64, rank, dims, d);
}

SHAPE_RULE(ArgMax) { return arg_rule(g, n, d); }
SHAPE_RULE(ArgMin) { return arg_rule(g, n, d); }

/* The axis is a run-time scalar; it is checked here only when constant. */
SHAPE_RULE(CumSum)
{
    const struct ir_tensor *x = shp_in(g, n, 0), *ax = shp_in(g, n, 1);
    if (want_inputs(n, 2, d))
        return d->status;
    if (!ir_dtype_is_float(x->dtype) && x->dtype != IR_I32 && x->dtype != IR_I64 &&
        x->dtype != IR_U32 && x->dtype != IR_U64)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "input '%s' has type %s; CumSum takes float, "
                       "int32, int64, uint32 or uint64", x->name, ir_dtype_name(x->dtype));
    if (x->rank < 1)
        return shp_err(d, n, ST_ERR_SHAPE, "input '%s' must have rank >= 1", x->name);
    if ((ax->dtype != IR_I32 && ax->dtype != IR_I64) || ax->rank > 1 || ir_numel(ax) != 1)
        return shp_err(d, n, ST_ERR_INVALID, "axis ('%s') must be an int32/int64 scalar",
                       ax->name);
    if (ax->data) {
        int64_t a = ir_load_i64(ax->dtype, ax->data, 0);
        if (ir_norm_axis(a, x->rank) < 0)
            return shp_err(d, n, ST_ERR_INVALID, "axis %lld is out of range for rank %d",
                           (long long)a, x->rank);
    }
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

/* Softmax family: opset < 13 flattens to 2-D at axis (default 1); later
 * opsets work along one axis (default -1). */
static int softmax_rule(struct ir_graph *g, struct ir_node *n, struct diag *d)
{
    if (want_inputs(n, 1, d))
        return d->status;
    const struct ir_tensor *x = shp_in(g, n, 0);
    int st = shp_want_float(n, x, d);
    if (st)
        return st;
    int legacy = n->opset < 13;
    int64_t axis = ir_attr_int(n, "axis", legacy ? 1 : -1);
    /* legacy axis may equal rank (everything in the outer factor) */
    int ok = legacy ? axis >= -x->rank && axis <= x->rank : ir_norm_axis(axis, x->rank) >= 0;
    if (!ok)
        return shp_err(d, n, ST_ERR_INVALID, "axis %lld is out of range for rank %d",
                       (long long)axis, x->rank);
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

SHAPE_RULE(Softmax) { return softmax_rule(g, n, d); }
SHAPE_RULE(LogSoftmax) { return softmax_rule(g, n, d); }
SHAPE_RULE(Hardmax) { return softmax_rule(g, n, d); }

/* t must broadcast unidirectionally to x (numpy rules, t's dims 1 or equal) */
static int want_unidir(const struct ir_node *n, const struct ir_tensor *t,
                       const struct ir_tensor *x, struct diag *d)
{
    int ok = t->rank <= x->rank;
    for (int i = 0; ok && i < t->rank; i++) {
        int64_t td = t->dims[i], xd = x->dims[x->rank - t->rank + i];
        ok = td == 1 || td == xd;
    }
    if (ok)
        return ST_OK;
    return shp_err(d, n, ST_ERR_SHAPE, "'%s' does not broadcast to the shape of '%s'", t->name,
                   x->name);
}

/* Y like X; Mean and InvStdDev (optional) keep X's dims before axis, 1 after,
 * in the stash type */
SHAPE_RULE(LayerNormalization)
{
    const struct ir_tensor *x = shp_in(g, n, 0), *sc = shp_in(g, n, 1), *b = shp_in(g, n, 2);
    int st;
    if ((st = want_inputs(n, 2, d)) || (st = shp_want_float(n, x, d)) ||
        (st = shp_want_float(n, sc, d)) ||
        (b && (st = shp_want_float(n, b, d))) || (st = want_unidir(n, sc, x, d)) ||
        (b && (st = want_unidir(n, b, x, d))))
        return st;
    int64_t axis = ir_attr_int(n, "axis", -1);
    int a = ir_norm_axis(axis, x->rank);
    if (a < 0)
        return shp_err(d, n, ST_ERR_INVALID, "axis %lld is out of range for rank %d",
                       (long long)axis, x->rank);
    int64_t stash = ir_attr_int(n, "stash_type", IR_F32);
    if (!ir_dtype_valid((int)stash) || !ir_dtype_is_float((enum ir_dtype)stash))
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "stash_type %lld is not a float type",
                       (long long)stash);
    int64_t sdims[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        sdims[i] = i < a ? x->dims[i] : 1;
    if ((st = shp_set(g, n, 0, x->dtype, x->rank, x->dims, d)) ||
        (st = shp_set(g, n, 1, (enum ir_dtype)stash, x->rank, sdims, d)))
        return st;
    return shp_set(g, n, 2, (enum ir_dtype)stash, x->rank, sdims, d);
}

/* per-channel parameters: float vectors of length C */
static int want_channel_vec(const struct ir_node *n, const struct ir_tensor *t, int64_t c,
                            struct diag *d)
{
    int st = shp_want_float(n, t, d);
    if (st)
        return st;
    if (t->rank != 1 || t->dims[0] != c)
        return shp_err(d, n, ST_ERR_SHAPE, "'%s' must have shape (%lld)", t->name, (long long)c);
    return ST_OK;
}

static int want_nc(const struct ir_node *n, const struct ir_tensor *x, struct diag *d)
{
    int st = shp_want_float(n, x, d);
    if (st)
        return st;
    if (x->rank < 2)
        return shp_err(d, n, ST_ERR_SHAPE, "input '%s' has rank %d; expected (N, C, ...)",
                       x->name, x->rank);
    return ST_OK;
}

/* inference form only: Y = (X - mean) / sqrt(var + eps) * scale + B */
SHAPE_RULE(BatchNormalization)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int st;
    if (ir_attr_int(n, "training_mode", 0) != 0)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "training_mode=1 is not supported (inference "
                       "only)");
    if (ir_attr_get(n, "spatial") && ir_attr_int(n, "spatial", 1) == 0)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "spatial=0 (per-element statistics) is not "
                       "supported");
    if ((st = want_inputs(n, 5, d)) || (st = want_nc(n, x, d)))
        return st;
    for (uint32_t i = 1; i < 5; i++)
        if ((st = want_channel_vec(n, shp_in(g, n, i), x->dims[1], d)))
            return st;
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

SHAPE_RULE(InstanceNormalization)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int st;
    if ((st = want_inputs(n, 3, d)) || (st = want_nc(n, x, d)) ||
        (st = want_channel_vec(n, shp_in(g, n, 1), x->dims[1], d)) ||
        (st = want_channel_vec(n, shp_in(g, n, 2), x->dims[1], d)))
        return st;
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}
