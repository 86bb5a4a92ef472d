/* autodiff_tensor.c — VJP rules for reductions, CumSum and the data movement
 * ops (see autodiff.c for the sweep). Movement ops are linear, so each VJP is
 * the adjoint movement: reshape back, inverse transpose, slice <-> concat,
 * scatter for gathers (internal GatherGrad / GatherElementsGrad / SliceGrad),
 * sum for broadcasts and tiles, and an inverse crop for constant padding. */
#include <string.h>

#include "autodiff_impl.h"

static int64_t prod(const int64_t *dims, int lo, int hi)
{
    int64_t p = 1;
    for (int i = lo; i < hi; i++)
        p *= dims[i];
    return p;
}

/* the constant integer values of input i (value inputs are constants by now) */
static int64_t const_ints(struct ad *a, const struct ir_node *n, uint32_t i, int64_t *v,
                          int64_t max)
{
    if (i >= n->n_in || n->in[i] == IR_NONE)
        return 0;
    struct ad_info t = ad_info(a, n->in[i]);
    if (!t.data || !ir_dtype_is_int(t.dt) || t.numel > max)
        return ad_fail(a, n, ST_ERR_UNSUPPORTED, "input %u is not a small constant integer "
                       "tensor", i), -1;
    for (int64_t k = 0; k < t.numel; k++)
        v[k] = ir_load_i64(t.dt, t.data, k);
    return t.numel;
}

/* ---- reductions ------------------------------------------------------------- */

/* reduced axes of a Reduce* node (input 1 or the legacy attribute), as the
 * shape rule reads them; returns the count, or -1 for a no-op node */
static int red_axes(struct ad *a, const struct ir_node *n, int rank, int64_t *axes)
{
    int64_t v[IR_MAX_RANK], na = 0;
    const int64_t *attr;
    if (n->n_in > 1 && n->in[1] != IR_NONE) {
        if ((na = const_ints(a, n, 1, v, IR_MAX_RANK)) < 0)
            return 0;
    } else if ((na = ir_attr_ints(n, "axes", &attr)) > 0) {
        memcpy(v, attr, (size_t)(na > IR_MAX_RANK ? IR_MAX_RANK : na) * sizeof *v);
    } else {
        na = 0;
    }
    if (na == 0 && ir_attr_int(n, "noop_with_empty_axes", 0) != 0)
        return -1;
    int mask[IR_MAX_RANK] = {0}, cnt = 0;
    for (int64_t k = 0; k < na; k++)
        mask[ir_norm_axis(v[k], rank)] = 1;
    for (int i = 0; i < rank; i++)
        if (na == 0 || mask[i])
            axes[cnt++] = i;
    return cnt;
}

uint32_t ad_argext_share(struct ad *a, uint32_t x, uint32_t yk, int naxes, const int64_t *axes)
{
    uint32_t m = bld_cast(&a->b, bld_op2(&a->b, IR_OP_Equal, x, yk), a->g->t[x].dtype);
    return bld_div(&a->b, m, ad_sum_axes(a, m, naxes, axes, 1));
}

/* dx from the keepdims-shaped dy (dyk) and y (yk); x's shape */
static uint32_t red_dx(struct ad *a, enum ad_red k, uint32_t x, uint32_t dyk, uint32_t yk,
                       int naxes, const int64_t *axes)
{
    struct ad_info xi = ad_info(a, x);
    int64_t count = 1;
    for (int i = 0; i < naxes; i++)
        count *= xi.dims[axes[i]];
    switch (k) {
    case AD_SUM: return ad_expand(a, dyk, xi.rank, xi.dims);
    case AD_MEAN:
        return ad_expand(a, bld_mul(&a->b, dyk, ad_k(a, x, 1.0 / (double)count)), xi.rank, xi.dims);
    case AD_MAX: case AD_MIN: /* ties share the gradient evenly (PyTorch amax/amin) */
        return bld_mul(&a->b, dyk, ad_argext_share(a, x, yk, naxes, axes));
    case AD_PROD: /* y / x: needs x != 0 */
        return bld_mul(&a->b, dyk, bld_div(&a->b, yk, x));
    case AD_L1: return bld_mul(&a->b, dyk, ad_op1(a, IR_OP_Sign, x));
    case AD_L2: /* x / ||x||; 0 where the norm is 0 (as PyTorch) */
        return bld_mul(&a->b, dyk, ad_where(a, bld_op2(&a->b, IR_OP_Equal, yk, ad_k(a, x, 0)),
                                            ad_k(a, x, 0), bld_div(&a->b, x, yk)));
    case AD_SUMSQ: return bld_mul(&a->b, dyk, bld_mul(&a->b, x, ad_k(a, x, 2)));
    case AD_LOGSUM: /* 1 / sum x = exp(-y) */
        return ad_expand(a, bld_div(&a->b, dyk, ad_op1(a, IR_OP_Exp, yk)), xi.rank, xi.dims);
    case AD_LSE: return bld_mul(&a->b, dyk, ad_op1(a, IR_OP_Exp, bld_sub(&a->b, x, yk)));
    }
    return IR_NONE;
}

int vjp_reduce(struct ad *a, const struct ir_node *n, enum ad_red k)
{
    uint32_t x = n->in[0], dy = ad_dy(a, n, 0), y = n->out[0];
    if (!ad_wants(a, n, 0))
        return ST_OK;
    struct ad_info xi = ad_info(a, x);
    int64_t axes[IR_MAX_RANK], kdims[IR_MAX_RANK];
    int na = red_axes(a, n, xi.rank, axes);
    if (a->b.err)
        return a->b.err;
    if (na < 0) { /* noop_with_empty_axes: y = x */
        ad_acc(a, n, 0, dy);
        return a->b.err;
    }
    memcpy(kdims, xi.dims, sizeof kdims);
    for (int i = 0; i < na; i++)
        kdims[axes[i]] = 1;
    uint32_t dyk = bld_reshape(&a->b, dy, xi.rank, kdims);
    uint32_t yk = bld_reshape(&a->b, y, xi.rank, kdims);
    ad_acc(a, n, 0, red_dx(a, k, x, dyk, yk, na, axes));
    return a->b.err;
}

/* the adjoint of a (reverse) running sum is the running sum the other way */
int vjp_cumsum(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    struct ir_attr at[2] = {
        bld_attr_int("exclusive", ir_attr_int(n, "exclusive", 0) != 0),
        bld_attr_int("reverse", ir_attr_int(n, "reverse", 0) == 0),
    };
    uint32_t in[2] = {ad_dy(a, n, 0), n->in[1]};
    ad_acc(a, n, 0, bld_node(&a->b, IR_OP_CumSum, 2, in, 2, at, 1, NULL));
    return a->b.err;
}

/* ---- reshaping and permuting ---------------------------------------------------- */

int vjp_reshape(struct ad *a, const struct ir_node *n)
{
    if (ad_wants(a, n, 0))
        ad_acc(a, n, 0, ad_reshape_to(a, ad_dy(a, n, 0), n->in[0]));
    return a->b.err;
}

int vjp_transpose(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    int r = ad_info(a, n->in[0]).rank;
    const int64_t *perm;
    int64_t np = ir_attr_ints(n, "perm", &perm), inv[IR_MAX_RANK];
    for (int i = 0; i < r; i++)
        inv[np >= 0 ? perm[i] : r - 1 - i] = i;
    ad_acc(a, n, 0, bld_transpose(&a->b, ad_dy(a, n, 0), r, inv));
    return a->b.err;
}

/* ---- joining and splitting ------------------------------------------------------- */

static uint32_t slice1(struct ad *a, uint32_t x, int64_t axis, int64_t start, int64_t end)
{
    uint32_t in[4] = {x, bld_i64s(&a->b, 1, &start), bld_i64s(&a->b, 1, &end),
                      bld_i64s(&a->b, 1, &axis)};
    return bld_node(&a->b, IR_OP_Slice, 4, in, 0, NULL, 1, NULL);
}

/* each input gets its own slab of dy back */
int vjp_concat(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0);
    int r = ad_info(a, n->in[0]).rank, ax = ir_norm_axis(ir_attr_int(n, "axis", 0), r);
    int64_t off = 0;
    for (uint32_t i = 0; i < n->n_in; i++) {
        int64_t len = ad_info(a, n->in[i]).dims[ax];
        if (ad_wants(a, n, i))
            ad_acc(a, n, i, slice1(a, dy, ax, off, off + len));
        off += len;
    }
    return a->b.err;
}

/* the pieces' gradients concatenated again; pieces nobody used contribute zeros */
int vjp_split(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    uint32_t parts[256];
    if (n->n_out > 256)
        return ad_fail(a, n, ST_ERR_UNSUPPORTED, "more than 256 outputs");
    for (uint32_t k = 0; k < n->n_out; k++) {
        if (n->out[k] == IR_NONE)
            return ad_fail(a, n, ST_ERR_UNSUPPORTED, "omitted output %u", k);
        parts[k] = ad_dy(a, n, k);
        if (parts[k] == IR_NONE)
            parts[k] = bld_zeros_like(&a->b, n->out[k]);
    }
    struct ir_attr at = bld_attr_int("axis", ir_attr_int(n, "axis", 0));
    ad_acc(a, n, 0, bld_node(&a->b, IR_OP_Concat, n->n_out, parts, 1, &at, 1, NULL));
    return a->b.err;
}

/* shape attribute holding x's dims (for the internal adjoint ops) */
static struct ir_attr shape_attr(const struct ad_info *x)
{
    return bld_attr_ints("shape", x->rank, x->dims);
}

/* Slice (any steps, negative included): scatter dy into zeros */
int vjp_slice(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    struct ad_info xi = ad_info(a, n->in[0]);
    struct ir_attr sh = shape_attr(&xi);
    uint32_t in[5] = {ad_dy(a, n, 0), IR_NONE, IR_NONE, IR_NONE, IR_NONE};
    for (uint32_t i = 1; i < n->n_in && i < 5; i++)
        in[i] = n->in[i];
    uint32_t nin = n->n_in < 3 ? 3 : n->n_in > 5 ? 5 : n->n_in;
    ad_acc(a, n, 0, bld_node(&a->b, IR_OP_SliceGrad, nin, in, 1, &sh, 1, NULL));
    return a->b.err;
}

/* ---- gathering: scatter-add the gradient into the table -------------------------------- */

static int gather_like(struct ad *a, const struct ir_node *n, enum ir_op grad_op)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    struct ad_info xi = ad_info(a, n->in[0]);
    struct ir_attr sh = shape_attr(&xi);
    uint32_t in[2] = {ad_dy(a, n, 0), n->in[1]};
    ad_acc(a, n, 0, ad_node_like(a, grad_op, n, 2, in, 1, &sh));
    return a->b.err;
}

int vjp_gather(struct ad *a, const struct ir_node *n)
{
    return gather_like(a, n, IR_OP_GatherGrad);
}

int vjp_gather_elements(struct ad *a, const struct ir_node *n)
{
    return gather_like(a, n, IR_OP_GatherElementsGrad);
}

/* ---- replicating ----------------------------------------------------------------------- */

int vjp_expand(struct ad *a, const struct ir_node *n)
{
    if (ad_wants(a, n, 0))
        ad_acc(a, n, 0, ad_reshape_to(a, ad_sum_to(a, ad_dy(a, n, 0), n->in[0]), n->in[0]));
    return a->b.err;
}

/* axis k of size rep*d is viewed as [rep, d] and the rep copies summed, one
 * axis at a time so the view never exceeds rank 4 */
int vjp_tile(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    struct ad_info xi = ad_info(a, n->in[0]);
    int64_t rep[IR_MAX_RANK], cd[IR_MAX_RANK];
    if (const_ints(a, n, 1, rep, IR_MAX_RANK) != xi.rank)
        return ad_fail(a, n, ST_ERR_INVALID, "repeats do not match the rank");
    uint32_t cur = ad_dy(a, n, 0);
    memcpy(cd, ad_info(a, cur).dims, sizeof cd);
    for (int k = 0; k < xi.rank; k++) {
        if (rep[k] == 1)
            continue;
        int64_t v[4] = {prod(cd, 0, k), rep[k], xi.dims[k], prod(cd, k + 1, xi.rank)}, one = 1;
        cur = bld_reshape(&a->b, cur, 4, v);
        cur = ad_sum_axes(a, cur, 1, &one, 0);
        cd[k] = xi.dims[k];
        cur = bld_reshape(&a->b, cur, xi.rank, cd);
    }
    ad_acc(a, n, 0, ad_reshape_to(a, cur, n->in[0]));
    return a->b.err;
}

/* constant mode: Pad(dy, -pads) crops the padding off again (and pads back
 * what a negative pad cropped). The fill value gets the sum over the padded
 * positions. reflect/edge/wrap are refused. */
int vjp_pad(struct ad *a, const struct ir_node *n)
{
    const char *mode = ir_attr_str(n, "mode", "constant");
    if (strcmp(mode, "constant") != 0)
        return ad_fail(a, n, ST_ERR_UNSUPPORTED, "the gradient of Pad mode '%s' is not "
                       "implemented (constant mode only)", mode);
    int64_t pads[2 * IR_MAX_RANK];
    int64_t np = const_ints(a, n, 1, pads, 2 * IR_MAX_RANK);
    if (np < 0)
        return a->b.err;
    for (int64_t k = 0; k < np; k++)
        pads[k] = -pads[k];
    uint32_t dy = ad_dy(a, n, 0);
    uint32_t in[4] = {dy, bld_i64s(&a->b, np, pads), IR_NONE,
                      n->n_in > 3 ? n->in[3] : IR_NONE};
    uint32_t dx = bld_node(&a->b, IR_OP_Pad, in[3] == IR_NONE ? 2 : 4, in, 0, NULL, 1, NULL);
    ad_acc(a, n, 0, dx);
    if (ad_wants(a, n, 2)) {
        uint32_t cv = n->in[2];
        uint32_t s = bld_reduce(&a->b, IR_OP_ReduceSum, dy, 0, NULL, 0);
        s = bld_sub(&a->b, s, bld_reduce(&a->b, IR_OP_ReduceSum, dx, 0, NULL, 0));
        if (a->g->t[cv].dtype != a->g->t[s].dtype)
            s = bld_cast(&a->b, s, a->g->t[cv].dtype);
        ad_acc(a, n, 2, ad_reshape_to(a, s, cv));
    }
    return a->b.err;
}

/* Trilu zeroes a fixed triangle: its adjoint zeroes the same one */
int vjp_trilu(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    uint32_t in[2] = {ad_dy(a, n, 0), n->n_in > 1 ? n->in[1] : IR_NONE};
    ad_acc(a, n, 0, ad_node_like(a, IR_OP_Trilu, n, in[1] == IR_NONE ? 1 : 2, in, 0, NULL));
    return a->b.err;
}
