/* shape_tensor.c — shape rules for the data movement and shape ops (ops.def group
 * "data movement and shape ops"). Value inputs (shapes, axes, pads, slice bounds)
 * are constants by the time these run; they come from untrusted model files, so
 * every value is range-checked here before a kernel trusts it. The kernels in
 * codegen/ref/ref_tensor.c recompute a few of these parameters (Slice, Split,
 * Shape) and must agree with the formulas below. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shape_impl.h"

/* ---- small helpers --------------------------------------------------------- */

/* required inputs (ops.def min_in) may still be omitted ("" in ONNX) */
static int need_inputs(struct ir_graph *g, const struct ir_node *n, struct diag *d)
{
    for (uint32_t i = 0; i < (uint32_t)ir_ops[n->op].min_in; i++)
        if (!shp_in(g, n, i))
            return shp_err(d, n, ST_ERR_INVALID, "required input %u is missing", i);
    return ST_OK;
}

/* required inputs present, and the data input (0) holds fixed-size elements
 * (strings are rejected at import, but a hand-built graph could carry one) */
static int want_bytes(struct ir_graph *g, const struct ir_node *n, struct diag *d)
{
    int st = need_inputs(g, n, d);
    if (st)
        return st;
    const struct ir_tensor *t = shp_in(g, n, 0);
    if (ir_dtype_size(t->dtype) == 0)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "input '%s' has unsupported type %s", t->name,
                       ir_dtype_name(t->dtype));
    return ST_OK;
}

/* Gather/GatherElements indices: int32 or int64 only (the ONNX type constraint) */
static int want_index(const struct ir_node *n, const struct ir_tensor *t, struct diag *d)
{
    if (t->dtype == IR_I32 || t->dtype == IR_I64)
        return ST_OK;
    return shp_err(d, n, ST_ERR_INVALID, "indices '%s' must be int32 or int64, got %s", t->name,
                   ir_dtype_name(t->dtype));
}

/* shp_const_ints as a status: *cnt gets the count */
static int const_ints(struct ir_graph *g, const struct ir_node *n, uint32_t i, int64_t *v,
                      int64_t max, int64_t *cnt, struct diag *d)
{
    *cnt = shp_const_ints(g, n, i, v, max, d);
    if (*cnt >= 0)
        return ST_OK;
    return d && d->status ? d->status : ST_ERR_INVALID;
}

/* an optional value input counts as absent when omitted or empty */
static int has_values(struct ir_graph *g, const struct ir_node *n, uint32_t i)
{
    const struct ir_tensor *t = shp_in(g, n, i);
    return t && ir_numel(t) > 0;
}

static int64_t prod(const int64_t *dims, int lo, int hi)
{
    int64_t p = 1;
    for (int i = lo; i < hi; i++)
        p *= dims[i];
    return p;
}

/* normalise axis against rank, with an error naming what it is */
static int axis_of(const struct ir_node *n, int64_t axis, int rank, const char *what, int *out,
                   struct diag *d)
{
    *out = ir_norm_axis(axis, rank);
    if (*out < 0)
        return shp_err(d, n, ST_ERR_INVALID, "%s %lld is out of range for rank %d", what,
                       (long long)axis, rank);
    return ST_OK;
}

/* ---- reshaping without data movement ---------------------------------------- */

/* fill out[] from the requested shape: 0 copies the input dim (unless allowzero),
 * one -1 takes whatever is left */
static int reshape_dims(const struct ir_node *n, const struct ir_tensor *x, const int64_t *sh,
                        int64_t cnt, int64_t *out, struct diag *d)
{
    int allowzero = ir_attr_int(n, "allowzero", 0) != 0;
    int64_t known = 1, numel = ir_numel(x);
    int neg = -1, zero = 0;
    for (int i = 0; i < cnt; i++) {
        int64_t v = sh[i];
        if (v == -1) {
            if (neg >= 0)
                return shp_err(d, n, ST_ERR_INVALID, "shape has more than one -1");
            neg = i;
            out[i] = 1;
            continue;
        }
        if (v < -1)
            return shp_err(d, n, ST_ERR_INVALID, "shape value %lld is negative", (long long)v);
        if (v == 0 && !allowzero) {
            if (i >= x->rank)
                return shp_err(d, n, ST_ERR_INVALID,
                               "shape[%d] = 0 copies input dim %d, but the input has rank %d", i,
                               i, x->rank);
            v = x->dims[i];
        }
        zero |= sh[i] == 0;
        if (v > 0 && known > IR_MAX_ELEMS / v)
            return shp_err(d, n, ST_ERR_SHAPE, "shape has more than 2^34 elements");
        known *= v;
        out[i] = v;
    }
    if (neg >= 0 && allowzero && zero)
        return shp_err(d, n, ST_ERR_INVALID, "allowzero=1 forbids mixing 0 and -1 in the shape");
    if (neg >= 0) {
        if (known == 0 || numel % known != 0)
            return shp_err(d, n, ST_ERR_SHAPE, "cannot infer -1: %lld elements into groups of %lld",
                           (long long)numel, (long long)known);
        out[neg] = numel / known;
    } else if (known != numel) {
        return shp_err(d, n, ST_ERR_SHAPE, "input has %lld elements but the shape asks for %lld",
                       (long long)numel, (long long)known);
    }
    return ST_OK;
}

SHAPE_RULE(Reshape)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t sh[IR_MAX_RANK], out[IR_MAX_RANK], cnt;
    int st = want_bytes(g, n, d);
    if (!st)
        st = const_ints(g, n, 1, sh, IR_MAX_RANK, &cnt, d);
    if (!st)
        st = reshape_dims(n, x, sh, cnt, out, d);
    if (st)
        return st;
    return shp_set(g, n, 0, x->dtype, (int)cnt, out, d);
}

SHAPE_RULE(Flatten)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t axis = ir_attr_int(n, "axis", 1);
    int st = want_bytes(g, n, d);
    if (st)
        return st;
    if (axis < -x->rank || axis > x->rank) /* axis == rank is allowed: [numel, 1] */
        return shp_err(d, n, ST_ERR_INVALID, "axis %lld is out of range for rank %d",
                       (long long)axis, x->rank);
    int a = (int)(axis < 0 ? axis + x->rank : axis);
    int64_t out[2] = {prod(x->dims, 0, a), prod(x->dims, a, x->rank)};
    return shp_set(g, n, 0, x->dtype, 2, out, d);
}

SHAPE_RULE(Squeeze)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t ax[IR_MAX_RANK], cnt = 0, out[IR_MAX_RANK];
    unsigned char drop[IR_MAX_RANK] = {0};
    int st = want_bytes(g, n, d);
    if (!st && has_values(g, n, 1))
        st = const_ints(g, n, 1, ax, IR_MAX_RANK, &cnt, d);
    if (st)
        return st;
    for (int i = 0; i < x->rank && cnt == 0; i++) /* no axes: every 1 goes */
        drop[i] = x->dims[i] == 1;
    for (int k = 0; k < cnt; k++) {
        int a;
        if ((st = axis_of(n, ax[k], x->rank, "axis", &a, d)))
            return st;
        if (drop[a])
            return shp_err(d, n, ST_ERR_INVALID, "axis %d is listed twice", a);
        if (x->dims[a] != 1)
            return shp_err(d, n, ST_ERR_SHAPE, "cannot squeeze axis %d of size %lld", a,
                           (long long)x->dims[a]);
        drop[a] = 1;
    }
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!drop[i])
            out[r++] = x->dims[i];
    return shp_set(g, n, 0, x->dtype, r, out, d);
}

SHAPE_RULE(Unsqueeze)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t ax[IR_MAX_RANK], cnt, out[IR_MAX_RANK];
    unsigned char ins[IR_MAX_RANK] = {0};
    int st = want_bytes(g, n, d);
    if (st)
        return st;
    if (!shp_in(g, n, 1))
        return shp_err(d, n, ST_ERR_INVALID, "the axes input is missing");
    if ((st = const_ints(g, n, 1, ax, IR_MAX_RANK, &cnt, d)))
        return st;
    int r = x->rank + (int)cnt;
    if (r > IR_MAX_RANK)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "output rank %d exceeds the maximum of %d", r,
                       IR_MAX_RANK);
    for (int k = 0; k < cnt; k++) {
        int a;
        if ((st = axis_of(n, ax[k], r, "axis", &a, d)))
            return st;
        if (ins[a])
            return shp_err(d, n, ST_ERR_INVALID, "axis %d is listed twice", a);
        ins[a] = 1;
    }
    for (int i = 0, j = 0; i < r; i++)
        out[i] = ins[i] ? 1 : x->dims[j++];
    return shp_set(g, n, 0, x->dtype, r, out, d);
}

SHAPE_RULE(Transpose)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    const int64_t *perm;
    int64_t np = ir_attr_ints(n, "perm", &perm), out[IR_MAX_RANK];
    unsigned char seen[IR_MAX_RANK] = {0};
    int st = want_bytes(g, n, d);
    if (st)
        return st;
    if (np >= 0 && np != x->rank)
        return shp_err(d, n, ST_ERR_INVALID, "perm has %lld entries for rank %d", (long long)np,
                       x->rank);
    for (int i = 0; i < x->rank; i++) {
        int64_t p = np >= 0 ? perm[i] : x->rank - 1 - i; /* default: reverse */
        if (p < 0 || p >= x->rank || seen[p])
            return shp_err(d, n, ST_ERR_INVALID, "perm is not a permutation of 0..%d",
                           x->rank - 1);
        seen[p] = 1;
        out[i] = x->dims[p];
    }
    return shp_set(g, n, 0, x->dtype, x->rank, out, d);
}

/* ---- joining and splitting ---------------------------------------------------- */

SHAPE_RULE(Concat)
{
    const struct ir_tensor *x0 = shp_in(g, n, 0);
    const struct ir_attr *at = ir_attr_get(n, "axis");
    int64_t out[IR_MAX_RANK];
    int a, st;
    if (!x0)
        return shp_err(d, n, ST_ERR_INVALID, "input 0 is missing");
    if ((st = want_bytes(g, n, d)))
        return st;
    if (!at || at->type != IR_ATTR_INT)
        return shp_err(d, n, ST_ERR_INVALID, "the axis attribute is required");
    if (x0->rank < 1)
        return shp_err(d, n, ST_ERR_INVALID, "cannot concatenate scalars");
    if ((st = axis_of(n, at->i, x0->rank, "axis", &a, d)))
        return st;
    memcpy(out, x0->dims, sizeof out);
    out[a] = 0;
    for (uint32_t i = 0; i < n->n_in; i++) {
        const struct ir_tensor *x = shp_in(g, n, i);
        if (!x)
            return shp_err(d, n, ST_ERR_INVALID, "input %u is missing", i);
        if (x->dtype != x0->dtype || x->rank != x0->rank)
            return shp_err(d, n, ST_ERR_SHAPE, "input '%s' differs from input 0 in type or rank",
                           x->name);
        for (int k = 0; k < x->rank; k++)
            if (k != a && x->dims[k] != x0->dims[k])
                return shp_err(d, n, ST_ERR_SHAPE, "input '%s' has dim %d = %lld, input 0 has %lld",
                               x->name, k, (long long)x->dims[k], (long long)x0->dims[k]);
        out[a] += x->dims[a]; /* each <= 2^34: no overflow; shp_set caps the total */
    }
    return shp_set(g, n, 0, x0->dtype, x0->rank, out, d);
}

/* chunk sizes without a split input: num_outputs (opset 18, ceil chunks with a
 * smaller last one) or an even split by output count */
static int split_even(const struct ir_node *n, int64_t dim, int64_t *sizes, struct diag *d)
{
    const struct ir_attr *no = ir_attr_get(n, "num_outputs");
    int64_t k = n->n_out;
    if (no && no->i != k)
        return shp_err(d, n, ST_ERR_INVALID, "num_outputs = %lld but the node has %u outputs",
                       (long long)no->i, n->n_out);
    if (!no && dim % k != 0)
        return shp_err(d, n, ST_ERR_SHAPE, "dim %lld does not split evenly into %lld parts",
                       (long long)dim, (long long)k);
    int64_t chunk = (dim + k - 1) / k, last = dim - chunk * (k - 1);
    if (last < 0)
        return shp_err(d, n, ST_ERR_SHAPE, "dim %lld cannot make %lld chunks of %lld",
                       (long long)dim, (long long)k, (long long)chunk);
    for (int64_t i = 0; i < k; i++)
        sizes[i] = i == k - 1 ? last : chunk;
    return ST_OK;
}

static int split_sizes(struct ir_graph *g, const struct ir_node *n, int64_t dim, int64_t *sizes,
                       struct diag *d)
{
    int64_t cnt, sum = 0;
    int st;
    if (!has_values(g, n, 1))
        return split_even(n, dim, sizes, d);
    if (ir_attr_get(n, "num_outputs"))
        return shp_err(d, n, ST_ERR_INVALID, "both the split input and num_outputs are given");
    cnt = ir_numel(shp_in(g, n, 1));
    if (cnt != n->n_out)
        return shp_err(d, n, ST_ERR_INVALID, "split has %lld sizes for %u outputs",
                       (long long)cnt, n->n_out);
    if ((st = const_ints(g, n, 1, sizes, n->n_out, &cnt, d)))
        return st;
    for (int64_t i = 0; i < cnt; i++) {
        if (sizes[i] < 0 || sizes[i] > dim)
            return shp_err(d, n, ST_ERR_INVALID, "split size %lld is out of range",
                           (long long)sizes[i]);
        sum += sizes[i];
    }
    if (sum != dim)
        return shp_err(d, n, ST_ERR_SHAPE, "split sizes add up to %lld, the axis has %lld",
                       (long long)sum, (long long)dim);
    return ST_OK;
}

SHAPE_RULE(Split)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t out[IR_MAX_RANK];
    int a, st = want_bytes(g, n, d);
    if (!st && x->rank < 1)
        st = shp_err(d, n, ST_ERR_INVALID, "cannot split a scalar");
    if (!st)
        st = axis_of(n, ir_attr_int(n, "axis", 0), x->rank, "axis", &a, d);
    if (st)
        return st;
    int64_t *sizes = malloc(n->n_out * sizeof *sizes);
    if (!sizes)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    st = split_sizes(g, n, x->dims[a], sizes, d);
    memcpy(out, x->dims, sizeof out);
    for (uint32_t k = 0; k < n->n_out && !st; k++) {
        out[a] = sizes[k];
        st = shp_set(g, n, k, x->dtype, x->rank, out, d);
    }
    free(sizes);
    return st;
}

/* ---- Slice ------------------------------------------------------------------------ */

/* ONNX Slice clamping for one axis of size dim: first index and element count.
 * The one copy (ir.h): Slice's and SliceGrad's shapes, their reference kernels and
 * the CUDA lowering all use it. The arithmetic stays in range for the INT64_MIN/MAX
 * sentinels: after clamping every operand is within [-1, dim]. */
int64_t ir_slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first)
{
    /* an INT_MAX end means "to the end in the direction of travel" (numpy None),
     * which for a negative step is past index 0; onnxruntime reads it so */
    if (end == INT64_MAX || end == INT32_MAX)
        end = step > 0 ? dim : -1;
    else if (end < 0)
        end += dim;
    if (start < 0)
        start += dim;
    int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? dim : dim - 1;
    start = start < 0 ? 0 : start > hi ? hi : start;
    end = end < lo ? lo : end > hi ? hi : end;
    *first = start;
    if (dim == 0)
        return 0;
    if (step > 0)
        return end > start ? (end - start - 1) / step + 1 : 0;
    return start > end ? 1 - (start - end - 1) / step : 0; /* step < 0: division negates */
}

/* starts, ends, axes (default 0..n-1), steps (default 1): equal lengths */
static int slice_inputs(struct ir_graph *g, const struct ir_node *n, int64_t (*v)[IR_MAX_RANK],
                        int64_t *ns, struct diag *d)
{
    int64_t cnt[4] = {0};
    /* ops.def lets Slice-1 have one input; the frontend moves its attributes in */
    if (!shp_in(g, n, 1) || !shp_in(g, n, 2))
        return shp_err(d, n, ST_ERR_INVALID, "starts and ends are required");
    for (uint32_t i = 0; i < 4; i++) {
        int st = ST_OK;
        if (shp_in(g, n, i + 1))
            st = const_ints(g, n, i + 1, v[i], IR_MAX_RANK, &cnt[i], d);
        else
            for (int64_t k = 0; k < cnt[0]; k++)
                v[i][k] = i == 2 ? k : 1;
        if (st)
            return st;
        if (!shp_in(g, n, i + 1))
            cnt[i] = cnt[0];
    }
    if (cnt[1] != cnt[0] || cnt[2] != cnt[0] || cnt[3] != cnt[0])
        return shp_err(d, n, ST_ERR_INVALID, "starts/ends/axes/steps lengths differ");
    *ns = cnt[0];
    return ST_OK;
}

SHAPE_RULE(Slice)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t v[4][IR_MAX_RANK], ns = 0, out[IR_MAX_RANK]; /* starts, ends, axes, steps */
    unsigned char seen[IR_MAX_RANK] = {0};
    int st = want_bytes(g, n, d);
    if (!st)
        st = slice_inputs(g, n, v, &ns, d);
    if (st)
        return st;
    memcpy(out, x->dims, sizeof out);
    for (int k = 0; k < ns; k++) {
        int a;
        int64_t first;
        if ((st = axis_of(n, v[2][k], x->rank, "axis", &a, d)))
            return st;
        if (seen[a])
            return shp_err(d, n, ST_ERR_INVALID, "axis %d is listed twice", a);
        if (v[3][k] == 0)
            return shp_err(d, n, ST_ERR_INVALID, "step 0 on axis %d", a);
        seen[a] = 1;
        out[a] = ir_slice_axis(x->dims[a], v[0][k], v[1][k], v[3][k], &first);
    }
    return shp_set(g, n, 0, x->dtype, x->rank, out, d);
}

/* ---- gathering --------------------------------------------------------------------- */

/* constant indices are checked now so the error names the bad value; run-time
 * indices are checked by the kernel */
static int check_indices(const struct ir_node *n, const struct ir_tensor *idx, int64_t size,
                         struct diag *d)
{
    if (!idx->data)
        return ST_OK;
    for (int64_t i = 0, m = ir_numel(idx); i < m; i++) {
        int64_t v = ir_load_i64(idx->dtype, idx->data, i);
        if (v < -size || v >= size)
            return shp_err(d, n, ST_ERR_INVALID, "index %lld is out of range for size %lld",
                           (long long)v, (long long)size);
    }
    return ST_OK;
}

SHAPE_RULE(Gather)
{
    const struct ir_tensor *x = shp_in(g, n, 0), *idx = shp_in(g, n, 1);
    int64_t out[IR_MAX_RANK];
    int a, st = want_bytes(g, n, d);
    if (!st)
        st = want_index(n, idx, d);
    if (!st && x->rank < 1)
        st = shp_err(d, n, ST_ERR_INVALID, "cannot gather from a scalar");
    if (!st)
        st = axis_of(n, ir_attr_int(n, "axis", 0), x->rank, "axis", &a, d);
    if (!st)
        st = check_indices(n, idx, x->dims[a], d);
    if (st)
        return st;
    int r = x->rank - 1 + idx->rank;
    if (r > IR_MAX_RANK)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "output rank %d exceeds the maximum of %d", r,
                       IR_MAX_RANK);
    /* out = data[:axis] + indices.shape + data[axis+1:] */
    memcpy(out, x->dims, (size_t)a * sizeof *out);
    memcpy(out + a, idx->dims, (size_t)idx->rank * sizeof *out);
    memcpy(out + a + idx->rank, x->dims + a + 1, (size_t)(x->rank - a - 1) * sizeof *out);
    return shp_set(g, n, 0, x->dtype, r, out, d);
}

SHAPE_RULE(GatherElements)
{
    const struct ir_tensor *x = shp_in(g, n, 0), *idx = shp_in(g, n, 1);
    int a, st = want_bytes(g, n, d);
    if (!st)
        st = want_index(n, idx, d);
    if (!st && (x->rank < 1 || idx->rank != x->rank))
        st = shp_err(d, n, ST_ERR_SHAPE, "data (rank %d) and indices (rank %d) need the same "
                     "rank >= 1", x->rank, idx->rank);
    if (!st)
        st = axis_of(n, ir_attr_int(n, "axis", 0), x->rank, "axis", &a, d);
    if (st)
        return st;
    /* off the gather axis an index position addresses data directly */
    for (int k = 0; k < x->rank; k++)
        if (k != a && idx->dims[k] > x->dims[k])
            return shp_err(d, n, ST_ERR_SHAPE, "indices dim %d (%lld) exceeds data dim (%lld)", k,
                           (long long)idx->dims[k], (long long)x->dims[k]);
    if ((st = check_indices(n, idx, x->dims[a], d)))
        return st;
    return shp_set(g, n, 0, x->dtype, idx->rank, idx->dims, d);
}

/* ---- replicating ----------------------------------------------------------------------- */

SHAPE_RULE(Expand)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t sh[IR_MAX_RANK], cnt, out[IR_MAX_RANK];
    int r, st = want_bytes(g, n, d);
    if (!st)
        st = const_ints(g, n, 1, sh, IR_MAX_RANK, &cnt, d);
    if (st)
        return st;
    for (int k = 0; k < cnt; k++)
        if (sh[k] < 0)
            return shp_err(d, n, ST_ERR_INVALID, "shape value %lld is negative", (long long)sh[k]);
    if (ir_broadcast_shape(x->rank, x->dims, (int)cnt, sh, &r, out) < 0)
        return shp_err(d, n, ST_ERR_SHAPE, "input '%s' does not broadcast to the requested shape",
                       x->name);
    return shp_set(g, n, 0, x->dtype, r, out, d);
}

SHAPE_RULE(Tile)
{
    const struct ir_tensor *x = shp_in(g, n, 0);
    int64_t rep[IR_MAX_RANK], cnt, out[IR_MAX_RANK];
    int st = want_bytes(g, n, d);
    if (!st)
        st = const_ints(g, n, 1, rep, IR_MAX_RANK, &cnt, d);
    if (st)
        return st;
    if (cnt != x->rank)
        return shp_err(d, n, ST_ERR_INVALID, "repeats has %lld entries for rank %d",
                       (long long)cnt, x->rank);
    for (int k = 0; k < x->rank; k++) {
        if (rep[k] < 0)
            return shp_err(d, n, ST_ERR_INVALID, "repeat %lld is negative", (long long)rep[k]);
        if (x->dims[k] && rep[k] > IR_MAX_ELEMS / x->dims[k])
            return shp_err(d, n, ST_ERR_SHAPE, "repeat %lld makes the output too large",
                           (long long)rep[k]);
        out[k] = x->dims[k] * rep[k];
    }
    return shp_set(g, n, 0, x->dtype, x->rank, out, d);
}

/* ---- Pad ----------------------------------------------------------------------------------- */

/* pads (input 1) become per-axis begin/end, spread over axes (input 3, default all) */
static int pad_amounts(struct ir_graph *g, const struct ir_node *n, int rank, int64_t *beg,
                       int64_t *end, struct diag *d)
{
    int64_t pads[2 * IR_MAX_RANK], ax[IR_MAX_RANK], np, na = rank;
    unsigned char seen[IR_MAX_RANK] = {0};
    int st = const_ints(g, n, 1, pads, 2 * IR_MAX_RANK, &np, d);
    if (!st && shp_in(g, n, 3))
        st = const_ints(g, n, 3, ax, IR_MAX_RANK, &na, d);
    else
        for (int k = 0; k < rank; k++)
            ax[k] = k;
    if (st)
        return st;
    if (np != 2 * na)
        return shp_err(d, n, ST_ERR_INVALID, "pads has %lld values for %lld axes", (long long)np,
                       (long long)na);
    for (int k = 0; k < rank; k++)
        beg[k] = end[k] = 0;
    for (int k = 0; k < na; k++) {
        int a;
        if ((st = axis_of(n, ax[k], rank, "axis", &a, d)))
            return st;
        if (seen[a])
            return shp_err(d, n, ST_ERR_INVALID, "axis %d is listed twice", a);
        seen[a] = 1;
        beg[a] = pads[k];
        end[a] = pads[na + k];
        if (beg[a] < -IR_MAX_ELEMS || beg[a] > IR_MAX_ELEMS || end[a] < -IR_MAX_ELEMS ||
            end[a] > IR_MAX_ELEMS)
            return shp_err(d, n, ST_ERR_SHAPE, "pad on axis %d is too large", a);
    }
    return ST_OK;
}

static int pad_mode_ok(const struct ir_node *n, struct diag *d)
{
    const char *m = ir_attr_str(n, "mode", "constant");
    if (strcmp(m, "constant") && strcmp(m, "reflect") && strcmp(m, "edge") && strcmp(m, "wrap"))
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "pad mode '%s' is not supported", m);
    return ST_OK;
}

SHAPE_RULE(Pad)
{
    const struct ir_tensor *x = shp_in(g, n, 0), *cv = shp_in(g, n, 2);
    int64_t beg[IR_MAX_RANK], end[IR_MAX_RANK], out[IR_MAX_RANK];
    int constant = strcmp(ir_attr_str(n, "mode", "constant"), "constant") == 0;
    int st = want_bytes(g, n, d);
    if (!st)
        st = pad_mode_ok(n, d);
    if (!st)
        st = pad_amounts(g, n, x->rank, beg, end, d);
    if (st)
        return st;
    /* the legacy value attribute arrives as a float32 scalar whatever the data
     * type, so any dtype is accepted and converted by the kernel */
    if (cv && (ir_numel(cv) > 1 || ir_dtype_size(cv->dtype) == 0))
        return shp_err(d, n, ST_ERR_INVALID, "constant_value must be a single value");
    int empty = 0;
    for (int k = 0; k < x->rank; k++) {
        out[k] = x->dims[k] + beg[k] + end[k];
        if (out[k] < 0)
            return shp_err(d, n, ST_ERR_SHAPE, "pads remove more than axis %d holds", k);
        empty |= out[k] == 0;
    }
    /* Outside constant mode negative pads crop before the others pad (see
     * ref_tensor.c): they cannot remove more than the axis holds, and what is
     * left must not be empty when padding reads from it. An empty output reads
     * nothing, so anything goes. */
    for (int k = 0; k < x->rank && !constant && !empty; k++) {
        int64_t kept = x->dims[k] + (beg[k] < 0 ? beg[k] : 0) + (end[k] < 0 ? end[k] : 0);
        if (kept < 0)
            return shp_err(d, n, ST_ERR_SHAPE, "pads remove more than axis %d holds", k);
        if (kept == 0 && out[k] > 0)
            return shp_err(d, n, ST_ERR_INVALID, "cannot pad empty axis %d in mode '%s'", k,
                           ir_attr_str(n, "mode", "constant"));
    }
    return shp_set(g, n, 0, x->dtype, x->rank, out, d);
}

SHAPE_RULE(Trilu)
{
    const struct ir_tensor *x = shp_in(g, n, 0), *k = shp_in(g, n, 1);
    int st = want_bytes(g, n, d);
    if (st)
        return st;
    if (x->rank < 2)
        return shp_err(d, n, ST_ERR_INVALID, "input rank %d < 2", x->rank);
    if (k && (!ir_dtype_is_int(k->dtype) || ir_numel(k) != 1))
        return shp_err(d, n, ST_ERR_INVALID, "k must be one integer");
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

/* ---- shape queries and generators ---------------------------------------------------------- */

SHAPE_RULE(Shape)
{
    int st = need_inputs(g, n, d);
    if (st)
        return st;
    int64_t r = shp_in(g, n, 0)->rank;
    int64_t s = ir_attr_int(n, "start", 0), e = ir_attr_int(n, "end", r);
    /* opset 15 start/end: negative counts from the back, then clamp to [0, rank]
     * (mirrored in ref_tensor.c) */
    s = s < 0 ? s + r : s;
    e = e < 0 ? e + r : e;
    s = s < 0 ? 0 : s > r ? r : s;
    e = e < 0 ? 0 : e > r ? r : e;
    int64_t len = e > s ? e - s : 0;
    return shp_set(g, n, 0, IR_I64, 1, &len, d);
}

SHAPE_RULE(Size)
{
    int st = need_inputs(g, n, d);
    return st ? st : shp_set(g, n, 0, IR_I64, 0, NULL, d);
}

/* the value attribute: a one-element constant whose dtype becomes the output's */
static int cos_value(struct ir_graph *g, const struct ir_node *n, enum ir_dtype *dt,
                     struct diag *d)
{
    const struct ir_attr *a = ir_attr_get(n, "value");
    *dt = IR_F32;
    if (!a)
        return ST_OK;
    if (a->type != IR_ATTR_TENSOR || !a->tensors || a->n < 1 || a->tensors[0] >= g->nt)
        return shp_err(d, n, ST_ERR_INVALID, "value must be a tensor attribute");
    const struct ir_tensor *v = &g->t[a->tensors[0]];
    if (!v->data || ir_numel(v) != 1 || ir_dtype_size(v->dtype) == 0)
        return shp_err(d, n, ST_ERR_INVALID, "value must be a constant with one element");
    *dt = v->dtype;
    return ST_OK;
}

SHAPE_RULE(ConstantOfShape)
{
    int64_t sh[IR_MAX_RANK], cnt;
    enum ir_dtype dt;
    int st = need_inputs(g, n, d);
    if (!st)
        st = cos_value(g, n, &dt, d);
    if (!st)
        st = const_ints(g, n, 0, sh, IR_MAX_RANK, &cnt, d);
    if (st)
        return st;
    for (int k = 0; k < cnt; k++)
        if (sh[k] < 0)
            return shp_err(d, n, ST_ERR_INVALID, "shape value %lld is negative", (long long)sh[k]);
    return shp_set(g, n, 0, dt, (int)cnt, sh, d);
}

/* ceil((limit - start) / delta) computed exactly in 64-bit integers */
static int64_t range_count_int(int64_t s, int64_t l, int64_t dl)
{
    if (dl > 0 && l > s) {
        uint64_t span = (uint64_t)l - (uint64_t)s;
        return (int64_t)(span / (uint64_t)dl + (span % (uint64_t)dl != 0));
    }
    if (dl < 0 && s > l) {
        uint64_t span = (uint64_t)s - (uint64_t)l, step = (uint64_t)0 - (uint64_t)dl;
        return (int64_t)(span / step + (span % step != 0));
    }
    return 0;
}

/* the count in the input's own float type, as ONNX's Range function body does */
static double range_count_float(enum ir_dtype dt, double s, double l, double dl)
{
    if (dt == IR_F32)
        return (double)ceilf(((float)l - (float)s) / (float)dl);
    return ceil((l - s) / dl);
}

SHAPE_RULE(Range)
{
    const struct ir_tensor *t[3];
    int64_t cnt;
    int st = need_inputs(g, n, d);
    if (st)
        return st;
    enum ir_dtype dt = shp_in(g, n, 0)->dtype;
    if (dt != IR_F32 && dt != IR_F64 && dt != IR_I16 && dt != IR_I32 && dt != IR_I64)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "type %s is not supported", ir_dtype_name(dt));
    for (uint32_t i = 0; i < 3; i++) {
        t[i] = shp_in(g, n, i);
        if (t[i]->dtype != dt || ir_numel(t[i]) != 1)
            return shp_err(d, n, ST_ERR_INVALID, "start, limit, delta must be %s scalars",
                           ir_dtype_name(dt));
        if (!t[i]->data)
            return shp_err(d, n, ST_ERR_UNSUPPORTED, "input %u ('%s') determines the output "
                           "shape but is not a compile-time constant", i, t[i]->name);
    }
    if (ir_dtype_is_int(dt)) {
        int64_t dl = ir_load_i64(dt, t[2]->data, 0);
        if (dl == 0)
            return shp_err(d, n, ST_ERR_INVALID, "delta is 0");
        cnt = range_count_int(ir_load_i64(dt, t[0]->data, 0), ir_load_i64(dt, t[1]->data, 0), dl);
    } else {
        double dl = ir_load_f64(dt, t[2]->data, 0);
        if (dl == 0)
            return shp_err(d, n, ST_ERR_INVALID, "delta is 0");
        double c = range_count_float(dt, ir_load_f64(dt, t[0]->data, 0),
                                     ir_load_f64(dt, t[1]->data, 0), dl);
        if (isnan(c) || c > (double)IR_MAX_ELEMS) /* inf or nan bounds */
            return shp_err(d, n, ST_ERR_INVALID, "start/limit/delta give no finite range");
        cnt = c > 0 ? (int64_t)c : 0;
    }
    return shp_set(g, n, 0, dt, 1, &cnt, d);
}
