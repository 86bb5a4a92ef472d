/* shape_grad.c — shape rules for the internal gradient and decomposition ops
 * (ops.def group "internal"): the squashing functions of the causal-importance
 * function and their VJPs, and the adjoints of Conv, pooling, Gather,
 * GatherElements and Slice that passes/autodiff builds. Kernels:
 * codegen/ref/ref_grad.c.
 *
 * The adjoints carry the forward node's attributes plus `shape`: the dims of
 * the tensor whose gradient they produce (the forward input), since it cannot
 * always be recovered from the output gradient (strided windows, Gather). Each
 * rule recomputes the forward output shape from `shape` and checks the incoming
 * gradient against it, so a kernel never sees an inconsistent pair. */
#include <string.h>

#include "nn_geom.h"
#include "shape_impl.h"

/* the first cnt inputs are present and input fl is float */
static int want_float_in(struct ir_graph *g, struct ir_node *n, uint32_t cnt, uint32_t fl,
                         struct diag *d)
{
    for (uint32_t i = 0; i < cnt; i++)
        if (!shp_in(g, n, i))
            return shp_err(d, n, ST_ERR_INVALID, "required input %u is missing", i);
    return shp_want_float(n, shp_in(g, n, fl), d);
}

static int same_shape(const struct ir_tensor *a, const struct ir_tensor *b)
{
    return a->rank == b->rank && memcmp(a->dims, b->dims, (size_t)a->rank * sizeof a->dims[0]) == 0;
}

/* the `shape` attribute: the dims of the gradient being produced */
static int grad_shape(const struct ir_node *n, int64_t *dims, int *rank, struct diag *d)
{
    const int64_t *v;
    int64_t cnt = ir_attr_ints(n, "shape", &v);
    if (cnt < 0)
        return shp_err(d, n, ST_ERR_INVALID, "missing ints attribute 'shape'");
    if (cnt > IR_MAX_RANK)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "shape has rank %lld (max %d)", (long long)cnt,
                       IR_MAX_RANK);
    for (int64_t i = 0; i < cnt; i++) {
        if (v[i] < 0)
            return shp_err(d, n, ST_ERR_INVALID, "shape[%lld] = %lld is negative", (long long)i,
                           (long long)v[i]);
        dims[i] = v[i];
    }
    *rank = (int)cnt;
    return ST_OK;
}

/* the incoming gradient must have exactly the forward output's dims */
static int want_dims(const struct ir_node *n, const struct ir_tensor *dy, int rank,
                     const int64_t *dims, struct diag *d)
{
    int ok = dy->rank == rank;
    for (int i = 0; ok && i < rank; i++)
        ok = dy->dims[i] == dims[i];
    if (ok)
        return ST_OK;
    return shp_err(d, n, ST_ERR_SHAPE, "gradient '%s' does not have the forward output's shape",
                   dy->name);
}

/* ---- squashing functions (METHOD §2.4) ---------------------------------- */

static int squash_rule(struct ir_graph *g, struct ir_node *n, struct diag *d)
{
    int st = want_float_in(g, n, 1, 0, d);
    if (st)
        return st;
    const struct ir_tensor *x = shp_in(g, n, 0);
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

/* (x, dy): same dtype and shape */
static int squash_grad_rule(struct ir_graph *g, struct ir_node *n, struct diag *d)
{
    int st = want_float_in(g, n, 2, 0, d);
    if (st)
        return st;
    const struct ir_tensor *x = shp_in(g, n, 0), *dy = shp_in(g, n, 1);
    if (dy->dtype != x->dtype || !same_shape(x, dy))
        return shp_err(d, n, ST_ERR_SHAPE, "dy ('%s') must have the type and shape of x ('%s')",
                       dy->name, x->name);
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

SHAPE_RULE(LowerLeakyHard) { return squash_rule(g, n, d); }
SHAPE_RULE(UpperLeakyHard) { return squash_rule(g, n, d); }
SHAPE_RULE(LowerLeakyHardGrad) { return squash_grad_rule(g, n, d); }
/* the value passes unchanged; only autodiff treats it differently (a leaf) */
SHAPE_RULE(StopGradient) { return squash_rule(g, n, d); }
SHAPE_RULE(UpperLeakyHardGrad) { return squash_grad_rule(g, n, d); }

/* APD's batch top-k (METHOD §9.3): a 0/1 mask shaped like x, attribute k in [0, numel(x)] */
SHAPE_RULE(TopKMask)
{
    int st = squash_rule(g, n, d);
    if (st)
        return st;
    int64_t k = ir_attr_int(n, "k", -1);
    if (k < 0 || k > ir_numel(shp_in(g, n, 0)))
        return shp_err(d, n, ST_ERR_INVALID, "attribute k = %lld is not in [0, %lld]",
                       (long long)k, (long long)ir_numel(shp_in(g, n, 0)));
    return ST_OK;
}

/* ---- Conv and pooling adjoints ------------------------------------------ */

/* forward output dims (N, ch, out...) of a window op over input dims xd with kernel k */
static int window_out(const struct ir_node *n, const int64_t *xd, int rank, const int64_t *k,
                      int ceil_mode, int64_t ch, int64_t *out, struct diag *d)
{
    if (rank < 3 || rank - 2 > NN_MAX_SP)
        return shp_err(d, n, ST_ERR_SHAPE, "rank %d; expected (N, C, 1 to %d spatial dims)", rank,
                       NN_MAX_SP);
    struct nn_geom gm;
    char err[256];
    int st = nn_geom_fill(n, rank - 2, xd + 2, k, ceil_mode, &gm, err, sizeof err);
    if (st)
        return shp_err(d, n, st, "%s", err);
    out[0] = xd[0];
    out[1] = ch;
    for (int i = 0; i < gm.nsp; i++)
        out[2 + i] = gm.out[i];
    return ST_OK;
}

/* X (N, C, ...) and W (M, C/group, k...) agree with `group` */
static int conv_channels(const struct ir_node *n, const int64_t *xd, const int64_t *wd,
                         struct diag *d)
{
    int64_t group = ir_attr_int(n, "group", 1);
    if (group < 1 || xd[1] % group != 0 || wd[0] % group != 0 || wd[1] * group != xd[1])
        return shp_err(d, n, ST_ERR_SHAPE, "group %lld does not fit C=%lld, M=%lld, W's C/group="
                       "%lld", (long long)group, (long long)xd[1], (long long)wd[0],
                       (long long)wd[1]);
    return ST_OK;
}

/* ConvGradInput(dY, W), shape = X's dims: dX of Y = Conv(X, W) */
SHAPE_RULE(ConvGradInput)
{
    int64_t xd[IR_MAX_RANK], yd[IR_MAX_RANK];
    int xr, st;
    if ((st = want_float_in(g, n, 2, 0, d)) || (st = grad_shape(n, xd, &xr, d)))
        return st;
    const struct ir_tensor *dy = shp_in(g, n, 0), *w = shp_in(g, n, 1);
    if (w->dtype != dy->dtype || w->rank != xr)
        return shp_err(d, n, ST_ERR_SHAPE, "W ('%s') must have dY's type and rank %d", w->name,
                       xr);
    if ((st = conv_channels(n, xd, w->dims, d)) ||
        (st = window_out(n, xd, xr, w->dims + 2, 0, w->dims[0], yd, d)) ||
        (st = want_dims(n, dy, xr, yd, d)))
        return st;
    return shp_set(g, n, 0, dy->dtype, xr, xd, d);
}

/* ConvGradWeight(X, dY), shape = W's dims */
SHAPE_RULE(ConvGradWeight)
{
    int64_t wd[IR_MAX_RANK], yd[IR_MAX_RANK];
    int wr, st;
    if ((st = want_float_in(g, n, 2, 0, d)) || (st = grad_shape(n, wd, &wr, d)))
        return st;
    const struct ir_tensor *x = shp_in(g, n, 0), *dy = shp_in(g, n, 1);
    if (dy->dtype != x->dtype || x->rank != wr)
        return shp_err(d, n, ST_ERR_SHAPE, "X ('%s') must have dY's type and rank %d", x->name,
                       wr);
    if ((st = conv_channels(n, x->dims, wd, d)) ||
        (st = window_out(n, x->dims, wr, wd + 2, 0, wd[0], yd, d)) ||
        (st = want_dims(n, dy, wr, yd, d)))
        return st;
    return shp_set(g, n, 0, x->dtype, wr, wd, d);
}

/* pooled output of input dims xd under the node's kernel_shape / ceil_mode */
static int pool_out(const struct ir_node *n, const int64_t *xd, int rank, int64_t *yd,
                    struct diag *d)
{
    const int64_t *ks;
    int64_t nk = ir_attr_ints(n, "kernel_shape", &ks);
    if (nk != rank - 2)
        return shp_err(d, n, ST_ERR_INVALID, "kernel_shape must have %d entries (has %lld)",
                       rank - 2, (long long)nk);
    return window_out(n, xd, rank, ks, ir_attr_int(n, "ceil_mode", 0) != 0, rank ? xd[1] : 0, yd,
                      d);
}

/* MaxPoolGrad(X, dY): the max is located again in X */
SHAPE_RULE(MaxPoolGrad)
{
    int64_t yd[IR_MAX_RANK];
    int st = want_float_in(g, n, 2, 0, d);
    if (st)
        return st;
    const struct ir_tensor *x = shp_in(g, n, 0), *dy = shp_in(g, n, 1);
    if (dy->dtype != x->dtype)
        return shp_err(d, n, ST_ERR_INVALID, "dY ('%s') must have X's type", dy->name);
    if ((st = pool_out(n, x->dims, x->rank, yd, d)) || (st = want_dims(n, dy, x->rank, yd, d)))
        return st;
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

/* AveragePoolGrad(dY), shape = X's dims */
SHAPE_RULE(AveragePoolGrad)
{
    int64_t xd[IR_MAX_RANK], yd[IR_MAX_RANK];
    int xr, st;
    if ((st = want_float_in(g, n, 1, 0, d)) || (st = grad_shape(n, xd, &xr, d)) ||
        (st = pool_out(n, xd, xr, yd, d)) || (st = want_dims(n, shp_in(g, n, 0), xr, yd, d)))
        return st;
    return shp_set(g, n, 0, shp_in(g, n, 0)->dtype, xr, xd, d);
}

/* ---- Gather, GatherElements, Slice adjoints ------------------------------ */

static int want_index(const struct ir_node *n, const struct ir_tensor *t, struct diag *d)
{
    if (t->dtype == IR_I32 || t->dtype == IR_I64)
        return ST_OK;
    return shp_err(d, n, ST_ERR_INVALID, "indices '%s' must be int32 or int64, got %s", t->name,
                   ir_dtype_name(t->dtype));
}

/* GatherGrad(dY, indices), axis, shape = data's dims: scatter-add */
SHAPE_RULE(GatherGrad)
{
    int64_t xd[IR_MAX_RANK], yd[2 * IR_MAX_RANK];
    int xr, st;
    if ((st = want_float_in(g, n, 2, 0, d)) || (st = grad_shape(n, xd, &xr, d)) ||
        (st = want_index(n, shp_in(g, n, 1), d)))
        return st;
    const struct ir_tensor *dy = shp_in(g, n, 0), *idx = shp_in(g, n, 1);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), xr);
    if (a < 0)
        return shp_err(d, n, ST_ERR_INVALID, "axis is out of range for rank %d", xr);
    int yr = xr - 1 + idx->rank;
    memcpy(yd, xd, (size_t)a * sizeof *yd);
    memcpy(yd + a, idx->dims, (size_t)idx->rank * sizeof *yd);
    memcpy(yd + a + idx->rank, xd + a + 1, (size_t)(xr - a - 1) * sizeof *yd);
    if ((st = want_dims(n, dy, yr, yd, d)))
        return st;
    return shp_set(g, n, 0, dy->dtype, xr, xd, d);
}

/* GatherElementsGrad(dY, indices), axis, shape = data's dims */
SHAPE_RULE(GatherElementsGrad)
{
    int64_t xd[IR_MAX_RANK];
    int xr, st;
    if ((st = want_float_in(g, n, 2, 0, d)) || (st = grad_shape(n, xd, &xr, d)) ||
        (st = want_index(n, shp_in(g, n, 1), d)))
        return st;
    const struct ir_tensor *dy = shp_in(g, n, 0), *idx = shp_in(g, n, 1);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), xr);
    if (a < 0 || idx->rank != xr)
        return shp_err(d, n, ST_ERR_INVALID, "axis or indices rank does not fit rank %d", xr);
    if ((st = want_dims(n, dy, idx->rank, idx->dims, d)))
        return st;
    for (int k = 0; k < xr; k++)
        if (k != a && idx->dims[k] > xd[k])
            return shp_err(d, n, ST_ERR_SHAPE, "indices dim %d exceeds the data dim", k);
    return shp_set(g, n, 0, dy->dtype, xr, xd, d);
}

/* SliceGrad(dY, starts, ends, axes?, steps?), shape = data's dims: dY scattered
 * into zeros at the sliced positions */
SHAPE_RULE(SliceGrad)
{
    int64_t xd[IR_MAX_RANK], yd[IR_MAX_RANK], v[4][IR_MAX_RANK], cnt[4];
    int xr, st;
    if ((st = want_float_in(g, n, 3, 0, d)) || (st = grad_shape(n, xd, &xr, d)))
        return st;
    for (uint32_t i = 0; i < 4; i++) {
        cnt[i] = -1;
        if (shp_in(g, n, i + 1) && (cnt[i] = shp_const_ints(g, n, i + 1, v[i], IR_MAX_RANK, d)) < 0)
            return d->status;
    }
    if (cnt[1] != cnt[0] || (cnt[2] >= 0 && cnt[2] != cnt[0]) || (cnt[3] >= 0 && cnt[3] != cnt[0]))
        return shp_err(d, n, ST_ERR_INVALID, "starts/ends/axes/steps lengths differ");
    memcpy(yd, xd, sizeof yd);
    for (int64_t k = 0; k < cnt[0]; k++) {
        int a = ir_norm_axis(cnt[2] >= 0 ? v[2][k] : k, xr);
        int64_t step = cnt[3] >= 0 ? v[3][k] : 1, first;
        if (a < 0 || step == 0)
            return shp_err(d, n, ST_ERR_INVALID, "bad axis or zero step at position %lld",
                           (long long)k);
        yd[a] = ir_slice_axis(xd[a], v[0][k], v[1][k], step, &first);
    }
    if ((st = want_dims(n, shp_in(g, n, 0), xr, yd, d)))
        return st;
    return shp_set(g, n, 0, shp_in(g, n, 0)->dtype, xr, xd, d);
}

/* ---- chunked KL of logits ------------------------------------------------------ */

/* h_t, h_m [..., D] float32 of one shape; W [D, V] ([V, D] with trans_w); b? [V] */
static int kl_operands(struct ir_graph *g, const struct ir_node *n, uint32_t first,
                       struct diag *d)
{
    const struct ir_tensor *ht = shp_in(g, n, first), *hm = shp_in(g, n, first + 1),
                           *w = shp_in(g, n, first + 2), *b = shp_in(g, n, first + 3);
    if (!ht || !hm || !w)
        return shp_err(d, n, ST_ERR_INVALID, "h_t, h_m and W are required");
    if (ht->dtype != IR_F32 || hm->dtype != IR_F32 || w->dtype != IR_F32 ||
        (b && b->dtype != IR_F32))
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "float32 operands only");
    int tw = ir_attr_int(n, "trans_w", 0) != 0;
    int64_t D = ht->rank >= 1 ? ht->dims[ht->rank - 1] : -1;
    if (ht->rank < 1 || !same_shape(ht, hm) || w->rank != 2 || w->dims[tw ? 1 : 0] != D)
        return shp_err(d, n, ST_ERR_SHAPE, "h_t '%s' and h_m '%s' must be [..., D] alike and W "
                       "'%s' [D, V] (trans_w: [V, D])", ht->name, hm->name, w->name);
    int64_t V = w->dims[tw ? 0 : 1];
    if (b && (b->rank != 1 || b->dims[0] != V))
        return shp_err(d, n, ST_ERR_SHAPE, "bias '%s' must be [%lld]", b->name, (long long)V);
    if (ir_attr_int(n, "chunk", 0) < 1)
        return shp_err(d, n, ST_ERR_INVALID, "attribute chunk must be >= 1");
    return ST_OK;
}

/* ChunkedKL(h_t, h_m, W, b?) -> kl [...], lse [..., 2] */
SHAPE_RULE(ChunkedKL)
{
    int st = kl_operands(g, n, 0, d);
    if (st)
        return st;
    const struct ir_tensor *h = shp_in(g, n, 0);
    int64_t dims[IR_MAX_RANK];
    if (!h)
        return shp_err(d, n, ST_ERR_INVALID, "h_t is required");
    memcpy(dims, h->dims, sizeof dims);
    dims[h->rank - 1] = 2;
    if ((st = shp_set(g, n, 0, IR_F32, h->rank - 1, h->dims, d)))
        return st;
    return shp_set(g, n, 1, IR_F32, h->rank, dims, d);
}

/* ChunkedKLGrad(dkl, lse, h_t, h_m, W, b?) -> dh_m */
SHAPE_RULE(ChunkedKLGrad)
{
    int st = kl_operands(g, n, 2, d);
    if (st)
        return st;
    const struct ir_tensor *h = shp_in(g, n, 2), *dk = shp_in(g, n, 0), *ls = shp_in(g, n, 1);
    int64_t dims[IR_MAX_RANK];
    if (!h || !dk || !ls)
        return shp_err(d, n, ST_ERR_INVALID, "dkl, lse and h_t are required");
    memcpy(dims, h->dims, sizeof dims);
    dims[h->rank - 1] = 2;
    if (dk->dtype != IR_F32 || ls->dtype != IR_F32)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "float32 dkl and lse only");
    if ((st = want_dims(n, dk, h->rank - 1, h->dims, d)) ||
        (st = want_dims(n, ls, h->rank, dims, d)))
        return st;
    return shp_set(g, n, 0, IR_F32, h->rank, h->dims, d);
}
