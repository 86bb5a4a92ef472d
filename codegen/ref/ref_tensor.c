/* ref_tensor.c — reference kernels for the data movement and shape ops.
 *
 * These are dtype-agnostic byte movers: elements are copied ir_dtype_size bytes
 * at a time, so every dtype works. Most of them describe their work as one
 * strided copy (struct view) and share its loop. They also run during constant
 * folding on values from untrusted files: shapes and value inputs were checked
 * by ir/shape_tensor.c, and whatever a kernel re-reads at run time (indices,
 * pads, slice bounds) is checked again here before it is used as an offset.
 * Buffers of zero-element tensors may be NULL, so nothing touches them. */
#include <stdlib.h>
#include <string.h>

#include "ref_impl.h"

#define VMAX (2 * IR_MAX_RANK) /* Tile views a rank-r tensor as rank 2r */

static int64_t esize(const struct ir_tensor *t)
{
    return (int64_t)ir_dtype_size(t->dtype);
}

static int64_t prod(const int64_t *dims, int lo, int hi)
{
    int64_t p = 1;
    for (int i = lo; i < hi; i++)
        p *= dims[i];
    return p;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* integer element k of input i, in that input's dtype */
static int64_t ld(const struct ir_graph *g, const struct ir_node *n, void *const *in, uint32_t i,
                  int64_t k)
{
    return ir_load_i64(ref_in(g, n, i)->dtype, in[i], k);
}

/* ---- the shared strided copy ---------------------------------------------- */

/* dst[sum i_k*dst_k] = src[sum i_k*src_k] over the index box dims; strides are in
 * elements and may be 0 (broadcast) or negative (reversed slice) */
struct view {
    int rank;
    int64_t dims[VMAX];
    int64_t src[VMAX];
    int64_t dst[VMAX];
};

/* drop unit dims and merge neighbours contiguous in both source and destination,
 * so the innermost loop (often a memcpy) is as long as possible */
static void view_simplify(struct view *v)
{
    int r = 0;
    for (int i = 0; i < v->rank; i++) {
        if (v->dims[i] == 1)
            continue;
        if (r > 0 && v->src[r - 1] == v->src[i] * v->dims[i] &&
            v->dst[r - 1] == v->dst[i] * v->dims[i]) {
            v->dims[r - 1] *= v->dims[i];
            v->src[r - 1] = v->src[i];
            v->dst[r - 1] = v->dst[i];
            continue;
        }
        v->dims[r] = v->dims[i];
        v->src[r] = v->src[i];
        v->dst[r] = v->dst[i];
        r++;
    }
    v->rank = r;
}

/* one row of cnt elements; fixed-size memcpy so the compiler emits plain moves */
#define COPY_ROW(W)                                                 \
    for (int64_t i = 0; i < cnt; i++)                               \
        memcpy(dst + i * ds * (W), src + i * ss * (W), (size_t)(W)); \
    return

static void copy_row(char *dst, int64_t ds, const char *src, int64_t ss, int64_t cnt, int64_t es)
{
    if (ss == 1 && ds == 1) {
        memcpy(dst, src, (size_t)(cnt * es));
        return;
    }
    switch (es) {
    case 1: COPY_ROW(1);
    case 2: COPY_ROW(2);
    case 4: COPY_ROW(4);
    case 8: COPY_ROW(8);
    }
    COPY_ROW(es);
}

static void view_copy(struct view v, const char *src, char *dst, int64_t es)
{
    for (int i = 0; i < v.rank; i++)
        if (v.dims[i] == 0)
            return;
    view_simplify(&v);
    if (v.rank == 0) {
        memcpy(dst, src, (size_t)es);
        return;
    }
    int last = v.rank - 1;
    int64_t idx[VMAX] = {0}, so = 0, dof = 0;
    /* odometer over dims[0..last), one copy_row per step */
    for (;;) {
        copy_row(dst + dof * es, v.dst[last], src + so * es, v.src[last], v.dims[last], es);
        int a = last - 1;
        for (; a >= 0; a--) {
            so += v.src[a];
            dof += v.dst[a];
            if (++idx[a] < v.dims[a])
                break;
            so -= v.src[a] * v.dims[a];
            dof -= v.dst[a] * v.dims[a];
            idx[a] = 0;
        }
        if (a < 0)
            return;
    }
}

/* ---- reshaping: the bytes do not move ---------------------------------------- */

static int copy_through(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                        void *const *out)
{
    const struct ir_tensor *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    size_t nb = (size_t)(ir_numel(y) * esize(y));
    if (nb && out[0] != in[0])
        memmove(out[0], in[0], nb);
    return ST_OK;
}

REF_KERNEL(Reshape) { return copy_through(g, n, in, out); }
REF_KERNEL(Flatten) { return copy_through(g, n, in, out); }
REF_KERNEL(Squeeze) { return copy_through(g, n, in, out); }
REF_KERNEL(Unsqueeze) { return copy_through(g, n, in, out); }

REF_KERNEL(Transpose)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    const int64_t *perm;
    int64_t np = ir_attr_ints(n, "perm", &perm), xs[IR_MAX_RANK];
    struct view v = {.rank = x->rank};
    if (!y || !out[0])
        return ST_OK;
    ir_contig_strides(x->rank, x->dims, xs);
    ir_contig_strides(y->rank, y->dims, v.dst);
    /* output axis i walks input axis perm[i] */
    for (int i = 0; i < x->rank; i++) {
        int64_t p = np == x->rank ? perm[i] : x->rank - 1 - i;
        if (p < 0 || p >= x->rank)
            return ST_ERR_INVALID;
        v.dims[i] = y->dims[i];
        v.src[i] = xs[p];
    }
    view_copy(v, in[0], out[0], esize(x));
    return ST_OK;
}

/* ---- joining and splitting ------------------------------------------------------- */

REF_KERNEL(Concat)
{
    const struct ir_tensor *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), y->rank);
    if (a < 0)
        return ST_ERR_INVALID;
    int64_t es = esize(y), outer = prod(y->dims, 0, a), inner = prod(y->dims, a + 1, y->rank);
    int64_t row = y->dims[a] * inner * es, off = 0;
    /* y viewed as [outer, row bytes]; input i fills a [outer, chunk] column block */
    for (uint32_t i = 0; i < n->n_in; i++) {
        const struct ir_tensor *x = ref_in(g, n, i);
        int64_t chunk = x->dims[a] * inner * es;
        if (off + chunk > row)
            return ST_ERR_INVALID;
        for (int64_t o = 0; o < outer && chunk; o++)
            memcpy((char *)out[0] + o * row + off, (const char *)in[i] + o * chunk, (size_t)chunk);
        off += chunk;
    }
    return off == row ? ST_OK : ST_ERR_INVALID;
}

/* the chunk sizes, as ir/shape_tensor.c computes them */
static int split_sizes(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                       int64_t dim, int64_t *sizes)
{
    const struct ir_tensor *s = ref_in(g, n, 1);
    int64_t k = n->n_out, sum = 0;
    if (s && ir_numel(s) > 0) {
        if (ir_numel(s) != k)
            return ST_ERR_INVALID;
        for (int64_t i = 0; i < k; i++)
            sizes[i] = ld(g, n, in, 1, i);
    } else {
        /* num_outputs: ceil-sized chunks, the last one smaller; else an even split */
        if (!ir_attr_get(n, "num_outputs") && dim % k != 0)
            return ST_ERR_INVALID;
        int64_t chunk = (dim + k - 1) / k;
        for (int64_t i = 0; i < k; i++)
            sizes[i] = i == k - 1 ? dim - chunk * (k - 1) : chunk;
    }
    for (int64_t i = 0; i < k; i++) {
        if (sizes[i] < 0 || sizes[i] > dim)
            return ST_ERR_INVALID;
        sum += sizes[i];
    }
    return sum == dim ? ST_OK : ST_ERR_INVALID;
}

REF_KERNEL(Split)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    if (a < 0)
        return ST_ERR_INVALID;
    int64_t es = esize(x), dim = x->dims[a], off = 0;
    int64_t outer = prod(x->dims, 0, a), inner = prod(x->dims, a + 1, x->rank) * es;
    int64_t *sizes = malloc(n->n_out * sizeof *sizes);
    if (!sizes)
        return ST_ERR_NOMEM;
    int st = split_sizes(g, n, in, dim, sizes);
    /* x viewed as [outer, dim, inner bytes]; output k takes rows [off, off+size) */
    for (uint32_t k = 0; k < n->n_out && !st; k++) {
        const struct ir_tensor *y = ref_out(g, n, k);
        int64_t chunk = sizes[k] * inner;
        if (y && y->dims[a] != sizes[k])
            st = ST_ERR_INVALID;
        for (int64_t o = 0; !st && y && out[k] && chunk && o < outer; o++)
            memcpy((char *)out[k] + o * chunk, (const char *)in[0] + (o * dim + off) * inner,
                   (size_t)chunk);
        off += sizes[k];
    }
    free(sizes);
    return st;
}

/* ---- Slice --------------------------------------------------------------------------- */

REF_KERNEL(Slice)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    const struct ir_tensor *ts = ref_in(g, n, 1), *te = ref_in(g, n, 2);
    const struct ir_tensor *ta = ref_in(g, n, 3), *tp = ref_in(g, n, 4);
    int64_t xs[IR_MAX_RANK], first[IR_MAX_RANK] = {0}, step[IR_MAX_RANK], cnt[IR_MAX_RANK];
    int64_t ns = ts ? ir_numel(ts) : -1, base = 0;
    struct view v = {.rank = x->rank};
    if (!y || !out[0] || ir_numel(y) == 0)
        return ST_OK;
    if (!ts || !te || ir_numel(te) != ns || (ta && ir_numel(ta) != ns) ||
        (tp && ir_numel(tp) != ns))
        return ST_ERR_INVALID;
    for (int a = 0; a < x->rank; a++) {
        step[a] = 1;
        cnt[a] = x->dims[a];
    }
    for (int64_t k = 0; k < ns; k++) {
        int a = ir_norm_axis(ta ? ld(g, n, in, 3, k) : k, x->rank);
        int64_t sp = tp ? ld(g, n, in, 4, k) : 1;
        if (a < 0 || sp == 0)
            return ST_ERR_INVALID;
        step[a] = sp;
        cnt[a] = ir_slice_axis(x->dims[a], ld(g, n, in, 1, k), ld(g, n, in, 2, k), sp, &first[a]);
    }
    ir_contig_strides(x->rank, x->dims, xs);
    ir_contig_strides(y->rank, y->dims, v.dst);
    /* output index i on axis a reads input index first[a] + i*step[a] */
    for (int a = 0; a < x->rank; a++) {
        if (cnt[a] != y->dims[a])
            return ST_ERR_INVALID;
        v.dims[a] = cnt[a];
        v.src[a] = xs[a] * step[a];
        base += first[a] * xs[a];
    }
    view_copy(v, (const char *)in[0] + base * esize(x), out[0], esize(x));
    return ST_OK;
}

/* ---- gathering ------------------------------------------------------------------------ */

/* index i of a tensor of indices, wrapped into [0, size); -1 when out of range */
static int64_t wrap_index(const struct ir_tensor *t, const void *p, int64_t i, int64_t size)
{
    int64_t v = ir_load_i64(t->dtype, p, i);
    if (v < -size || v >= size)
        return -1;
    return v < 0 ? v + size : v;
}

REF_KERNEL(Gather)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *ti = ref_in(g, n, 1), *y = ref_out(g, n, 0);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    if (a < 0)
        return ST_ERR_INVALID;
    int64_t es = esize(x), m = ir_numel(ti), big = x->dims[a];
    int64_t outer = prod(x->dims, 0, a), inner = prod(x->dims, a + 1, x->rank) * es;
    /* check every index first so a bad one leaves no partial output */
    for (int64_t j = 0; j < m; j++)
        if (wrap_index(ti, in[1], j, big) < 0)
            return ST_ERR_INVALID;
    if (!y || !out[0] || ir_numel(y) == 0)
        return ST_OK;
    /* x as [outer, big, inner bytes] -> y as [outer, m, inner bytes] */
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++)
            memcpy((char *)out[0] + (o * m + j) * inner,
                   (const char *)in[0] + (o * big + wrap_index(ti, in[1], j, big)) * inner,
                   (size_t)inner);
    return ST_OK;
}

REF_KERNEL(GatherElements)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *ti = ref_in(g, n, 1), *y = ref_out(g, n, 0);
    int r = ti->rank, a = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    int64_t xs[IR_MAX_RANK], c[IR_MAX_RANK] = {0}, es = esize(x), m = ir_numel(ti), base = 0;
    if (a < 0 || r != x->rank)
        return ST_ERR_INVALID;
    for (int k = 0; k < r; k++)
        if (k != a && ti->dims[k] > x->dims[k])
            return ST_ERR_INVALID;
    for (int64_t i = 0; i < m; i++)
        if (wrap_index(ti, in[1], i, x->dims[a]) < 0)
            return ST_ERR_INVALID;
    if (!y || !out[0])
        return ST_OK;
    ir_contig_strides(x->rank, x->dims, xs);
    /* walk indices (= output) in order; base is the data offset of every
     * coordinate but the gather axis, whose value comes from the index */
    for (int64_t i = 0; i < m; i++) {
        int64_t v = wrap_index(ti, in[1], i, x->dims[a]);
        memcpy((char *)out[0] + i * es, (const char *)in[0] + (base + v * xs[a]) * es, (size_t)es);
        for (int k = r - 1; k >= 0; k--) {
            int64_t s = k == a ? 0 : xs[k];
            base += s;
            if (++c[k] < ti->dims[k])
                break;
            base -= s * ti->dims[k];
            c[k] = 0;
        }
    }
    return ST_OK;
}

/* ---- replicating ---------------------------------------------------------------------- */

REF_KERNEL(Expand)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    struct view v = {.rank = y ? y->rank : 0};
    if (!y || !out[0] || ir_numel(y) == 0)
        return ST_OK;
    /* y[i] = x[i broadcast]: stride 0 on broadcast axes */
    memcpy(v.dims, y->dims, sizeof y->dims);
    ir_broadcast_strides(x->rank, x->dims, y->rank, y->dims, v.src);
    ir_contig_strides(y->rank, y->dims, v.dst);
    view_copy(v, in[0], out[0], esize(x));
    return ST_OK;
}

REF_KERNEL(Tile)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    int64_t xs[IR_MAX_RANK], ys[IR_MAX_RANK];
    struct view v = {.rank = 2 * x->rank};
    if (!y || !out[0] || ir_numel(y) == 0)
        return ST_OK;
    ir_contig_strides(x->rank, x->dims, xs);
    ir_contig_strides(y->rank, y->dims, ys);
    /* output axis k of size rep*d is the pair [rep, d]: the rep index skips whole
     * copies of the d-block in y and stays put in x */
    for (int k = 0; k < x->rank; k++) {
        int64_t d = x->dims[k];
        if (y->dims[k] % d != 0)
            return ST_ERR_INVALID;
        v.dims[2 * k] = y->dims[k] / d;
        v.dims[2 * k + 1] = d;
        v.src[2 * k] = 0;
        v.src[2 * k + 1] = xs[k];
        v.dst[2 * k] = d * ys[k];
        v.dst[2 * k + 1] = ys[k];
    }
    view_copy(v, in[0], out[0], esize(x));
    return ST_OK;
}

/* ---- Pad --------------------------------------------------------------------------------- */

/* Negative pads (onnxruntime's reading; numpy.pad, the ONNX reference, has
 * none): in constant mode the axis is padded, then cropped, so a crop may eat
 * into padding; in the other modes the axis is cropped first and edge, reflect
 * and wrap read what is left. */

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

/* one axis: skip crop input elements, keep d of them, put beg pad elements in
 * front (beg < 0 in constant mode: the front of the kept run is cut off) */
struct pad_axis {
    int64_t crop, d, beg;
};

/* input index read by output index o on one axis; -1 means the constant */
static int64_t pad_src(enum pad_mode mode, int64_t o, const struct pad_axis *ax)
{
    int64_t i = o - ax->beg, d = ax->d, p = 2 * (d - 1);
    if (i >= 0 && i < d)
        return ax->crop + i;
    if (mode == PAD_CONSTANT || d == 0)
        return -1;
    if (mode == PAD_EDGE)
        i = i < 0 ? 0 : d - 1;
    else if (mode == PAD_WRAP)
        i = (i % d + d) % d;
    else if (p == 0) /* reflecting one element repeats it (numpy) */
        i = 0;
    else { /* reflect: period 2(d-1), the second half mirrored; numpy repeats it */
        i = (i % p + p) % p;
        i = i < d ? i : p - i;
    }
    return ax->crop + i;
}

static enum pad_mode pad_mode_of(const struct ir_node *n)
{
    const char *m = ir_attr_str(n, "mode", "constant");
    return !strcmp(m, "reflect") ? PAD_REFLECT
           : !strcmp(m, "edge")  ? PAD_EDGE
           : !strcmp(m, "wrap")  ? PAD_WRAP
                                 : PAD_CONSTANT;
}

/* per-axis crop/keep/front pad from the pads (1) and axes (3) inputs, checked against y */
static int pad_axes(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                    struct pad_axis *ax)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0), *ta = ref_in(g, n, 3);
    int64_t np = ir_numel(ref_in(g, n, 1)), na = ta ? ir_numel(ta) : x->rank;
    int64_t beg[IR_MAX_RANK] = {0}, end[IR_MAX_RANK] = {0};
    if (np != 2 * na)
        return ST_ERR_INVALID;
    for (int64_t k = 0; k < na; k++) {
        int a = ir_norm_axis(ta ? ld(g, n, in, 3, k) : k, x->rank);
        if (a < 0)
            return ST_ERR_INVALID;
        beg[a] = ld(g, n, in, 1, k);
        end[a] = ld(g, n, in, 1, na + k);
    }
    for (int a = 0; a < x->rank; a++) {
        if (beg[a] < -IR_MAX_ELEMS || beg[a] > IR_MAX_ELEMS || end[a] < -IR_MAX_ELEMS ||
            end[a] > IR_MAX_ELEMS || x->dims[a] + beg[a] + end[a] != y->dims[a])
            return ST_ERR_INVALID;
        ax[a] = (struct pad_axis){0, x->dims[a], beg[a]};
        if (pad_mode_of(n) == PAD_CONSTANT)
            continue;
        ax[a].crop = beg[a] < 0 ? -beg[a] : 0;
        ax[a].d -= ax[a].crop + (end[a] < 0 ? -end[a] : 0);
        ax[a].beg = beg[a] > 0 ? beg[a] : 0;
        if (ax[a].d < 0)
            return ST_ERR_INVALID;
    }
    return ST_OK;
}

/* the fill value from input 2 (0 when absent), in the data dtype: the legacy
 * value attribute arrives as a float32 scalar whatever the data type */
static void pad_value(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                      unsigned char *cv)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *tc = ref_in(g, n, 2);
    memset(cv, 0, 16);
    if (!tc || !in[2] || ir_numel(tc) != 1)
        return;
    if (tc->dtype == x->dtype)
        memcpy(cv, in[2], (size_t)esize(x));
    else if (ir_dtype_is_float(tc->dtype) || ir_dtype_is_float(x->dtype))
        ir_store_f64(x->dtype, cv, 0, ir_load_f64(tc->dtype, in[2], 0));
    else
        ir_store_i64(x->dtype, cv, 0, ir_load_i64(tc->dtype, in[2], 0));
}

struct pad_job {
    enum pad_mode mode;
    int64_t es, len; /* innermost axis: element size, output length */
    struct pad_axis ax; /* innermost axis */
    const unsigned char *cv;
};

/* one output row of the innermost axis; src is the input row, NULL if the row
 * itself lies in constant padding */
static void pad_row(const struct pad_job *j, char *dst, const char *src)
{
    /* output [lo, hi) is the kept input in one piece */
    int64_t lo = clamp64(j->ax.beg, 0, j->len), hi = clamp64(j->ax.beg + j->ax.d, lo, j->len);
    for (int64_t o = 0; o < j->len; o++) {
        if (src && o == lo && hi > lo) {
            memcpy(dst + o * j->es, src + (j->ax.crop + lo - j->ax.beg) * j->es,
                   (size_t)((hi - lo) * j->es));
            o = hi - 1;
            continue;
        }
        int64_t i = src ? pad_src(j->mode, o, &j->ax) : -1;
        memcpy(dst + o * j->es, i < 0 ? (const char *)j->cv : src + i * j->es, (size_t)j->es);
    }
}

REF_KERNEL(Pad)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    struct pad_axis ax[IR_MAX_RANK];
    int64_t xs[IR_MAX_RANK], c[IR_MAX_RANK] = {0};
    unsigned char cv[16];
    int r = x->rank, st;
    if (!y || !out[0] || ir_numel(y) == 0)
        return ST_OK;
    if ((st = pad_axes(g, n, in, ax)))
        return st;
    pad_value(g, n, in, cv);
    if (r == 0) {
        memcpy(out[0], in[0], (size_t)esize(x));
        return ST_OK;
    }
    struct pad_job j = {pad_mode_of(n), esize(x), y->dims[r - 1], ax[r - 1], cv};
    ir_contig_strides(r, x->dims, xs);
    /* odometer over the output's outer axes; each row's source row is found
     * axis by axis, or is absent when some outer coordinate is padding */
    for (int64_t row = 0, rows = ir_numel(y) / j.len; row < rows; row++) {
        int64_t off = 0, ok = 1;
        for (int a = 0; a < r - 1; a++) {
            int64_t i = pad_src(j.mode, c[a], &ax[a]);
            ok &= i >= 0;
            off += i * xs[a];
        }
        pad_row(&j, (char *)out[0] + row * j.len * j.es,
                ok ? (const char *)in[0] + off * j.es : NULL);
        for (int a = r - 2; a >= 0 && ++c[a] == y->dims[a]; a--)
            c[a] = 0;
    }
    return ST_OK;
}

REF_KERNEL(Trilu)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0), *tk = ref_in(g, n, 1);
    int r = x->rank, upper = ir_attr_int(n, "upper", 1) != 0;
    if (!y || !out[0] || ir_numel(y) == 0)
        return ST_OK;
    int64_t rows = x->dims[r - 2], cols = x->dims[r - 1], es = esize(x);
    int64_t k = tk && in[1] && ir_numel(tk) == 1 ? ld(g, n, in, 1, 0) : 0;
    /* beyond [-rows, cols] k changes nothing; clamping keeps i + k from overflowing */
    k = k < -rows ? -rows : k > cols ? cols : k;
    /* every matrix row i: upper keeps j >= i + k, lower keeps j <= i + k */
    for (int64_t row = 0, nrows = ir_numel(y) / cols; row < nrows; row++) {
        int64_t i = row % rows, cut = upper ? i + k : i + k + 1;
        cut = cut < 0 ? 0 : cut > cols ? cols : cut;
        char *dst = (char *)out[0] + row * cols * es;
        const char *src = (const char *)in[0] + row * cols * es;
        int64_t keep0 = upper ? cut : 0, keep1 = upper ? cols : cut;
        memmove(dst + keep0 * es, src + keep0 * es, (size_t)((keep1 - keep0) * es));
        memset(dst + (upper ? 0 : cut) * es, 0, (size_t)((upper ? cut : cols - cut) * es));
    }
    return ST_OK;
}

/* ---- shape queries and generators ---------------------------------------------------------- */

REF_KERNEL(Shape)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    int64_t r = x->rank, s = ir_attr_int(n, "start", 0);
    if (!y || !out[0])
        return ST_OK;
    /* start clamped as in ir/shape_tensor.c; the length is the output's */
    s = s < 0 ? s + r : s;
    s = s < 0 ? 0 : s > r ? r : s;
    if (s + y->dims[0] > r)
        return ST_ERR_INVALID;
    for (int64_t i = 0; i < y->dims[0]; i++)
        ((int64_t *)out[0])[i] = x->dims[s + i];
    return ST_OK;
}

REF_KERNEL(Size)
{
    if (out[0])
        *(int64_t *)out[0] = ir_numel(ref_in(g, n, 0));
    return ST_OK;
}

REF_KERNEL(ConstantOfShape)
{
    const struct ir_tensor *y = ref_out(g, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "value");
    unsigned char v[16] = {0}; /* all-zero bytes are 0 in every dtype */
    if (!y || !out[0])
        return ST_OK;
    int64_t es = esize(y), m = ir_numel(y);
    if (a) {
        if (a->type != IR_ATTR_TENSOR || !a->tensors || a->n < 1 || a->tensors[0] >= g->nt)
            return ST_ERR_INVALID;
        const struct ir_tensor *t = &g->t[a->tensors[0]];
        if (!t->data || t->dtype != y->dtype || ir_numel(t) != 1)
            return ST_ERR_INVALID;
        memcpy(v, t->data, (size_t)es);
    }
    for (int64_t i = 0; i < m; i++)
        memcpy((char *)out[0] + i * es, v, (size_t)es);
    return ST_OK;
}

/* Range: output[i] = start + i * delta, in the input dtype */
REF_KERNEL(Range)
{
    const struct ir_tensor *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    int64_t m = ir_numel(y);
    switch (y->dtype) {
    case IR_F32: {
        float s = *(const float *)in[0], dl = *(const float *)in[2];
        for (int64_t i = 0; i < m; i++)
            ((float *)out[0])[i] = s + (float)i * dl;
        return ST_OK;
    }
    case IR_F64: {
        double s = *(const double *)in[0], dl = *(const double *)in[2];
        for (int64_t i = 0; i < m; i++)
            ((double *)out[0])[i] = s + (double)i * dl;
        return ST_OK;
    }
    case IR_I16: case IR_I32: case IR_I64: {
        /* unsigned arithmetic: wraps instead of overflowing (values stay in range anyway) */
        uint64_t s = (uint64_t)ld(g, n, in, 0, 0), dl = (uint64_t)ld(g, n, in, 2, 0);
        for (int64_t i = 0; i < m; i++)
            ir_store_i64(y->dtype, out[0], i, (int64_t)(s + (uint64_t)i * dl));
        return ST_OK;
    }
    case IR_DT_UNDEF: case IR_U8: case IR_I8: case IR_U16: case IR_STRING: case IR_BOOL:
    case IR_F16: case IR_U32: case IR_U64: case IR_BF16:
        break;
    }
    return ST_ERR_UNSUPPORTED;
}
