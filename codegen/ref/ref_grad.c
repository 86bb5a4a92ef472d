/* ref_grad.c — reference kernels for the internal gradient and decomposition
 * ops (ops.def group "internal"): the squashing functions and their VJPs
 * (METHOD §2.4), and the adjoints of Conv, MaxPool/AveragePool, Gather,
 * GatherElements and Slice that passes/autodiff builds.
 *
 * Every kernel is dtype-generic (float types through ir_load_f64/ir_store_f64,
 * accumulation in double); shapes were validated by ir/shape_grad.c. Window
 * geometry comes from nn_geom.h, the same code the forward Conv/pool kernels and
 * shape rules use, so forward and adjoint agree on pads and output sizes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_geom.h"
#include "ref_impl.h"

#define SQUASH_ALPHA 0.01 /* METHOD §2.4: alpha = 0.01 everywhere */

/* cnt elements of p (dtype dt) widened into a fresh double array; NULL on OOM */
static double *load_all(enum ir_dtype dt, const void *p, int64_t cnt)
{
    double *v = malloc((size_t)(cnt ? cnt : 1) * sizeof *v);
    for (int64_t i = 0; v && i < cnt; i++)
        v[i] = ir_load_f64(dt, p, i);
    return v;
}

static void store_all(enum ir_dtype dt, void *p, int64_t cnt, const double *v)
{
    for (int64_t i = 0; i < cnt; i++)
        ir_store_f64(dt, p, i, v[i]);
}

/* ---- squashing functions ------------------------------------------------- */

/* clamp(x, 0, 1); NaN stays NaN */
static double lower_f(double x, double alpha)
{
    (void)alpha;
    return x < 0 ? 0.0 : x > 1 ? 1.0 : x;
}

static double upper_f(double x, double alpha)
{
    return x > 1 ? 1.0 + alpha * (x - 1.0) : x < 0 ? 0.0 : x;
}

/* the straight-through VJP with the sign exception: a dead (x <= 0) input only
 * receives alpha*dy when dy < 0, i.e. when the loss wants the value to rise.
 * dy must be the fully accumulated upstream gradient (autodiff guarantees it). */
static double lower_grad_f(double x, double dy, double alpha)
{
    if (x <= 0)
        return dy < 0 ? alpha * dy : 0.0;
    return x <= 1 ? dy : 0.0;
}

static double upper_grad_f(double x, double dy, double alpha)
{
    return x < 0 ? 0.0 : x <= 1 ? dy : alpha * dy;
}

static int squash(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                  void *const *out, double (*f)(double, double))
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    double alpha = ir_attr_float(n, "alpha", SQUASH_ALPHA);
    int64_t cnt = ir_numel(x);
    for (int64_t i = 0; out[0] && i < cnt; i++)
        ir_store_f64(x->dtype, out[0], i, f(ir_load_f64(x->dtype, in[0], i), alpha));
    return ST_OK;
}

static int squash_grad(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                       void *const *out, double (*f)(double, double, double))
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    double alpha = ir_attr_float(n, "alpha", SQUASH_ALPHA);
    int64_t cnt = ir_numel(x);
    for (int64_t i = 0; out[0] && i < cnt; i++)
        ir_store_f64(x->dtype, out[0], i,
                     f(ir_load_f64(x->dtype, in[0], i), ir_load_f64(x->dtype, in[1], i), alpha));
    return ST_OK;
}

REF_KERNEL(LowerLeakyHard) { return squash(g, n, in, out, lower_f); }
REF_KERNEL(UpperLeakyHard) { return squash(g, n, in, out, upper_f); }
REF_KERNEL(LowerLeakyHardGrad) { return squash_grad(g, n, in, out, lower_grad_f); }

REF_KERNEL(StopGradient)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    if (out[0])
        memcpy(out[0], in[0], (size_t)ir_numel(x) * ir_dtype_size(x->dtype));
    return ST_OK;
}
REF_KERNEL(UpperLeakyHardGrad) { return squash_grad(g, n, in, out, upper_grad_f); }

/* TopKMask: 1 at the k largest entries of x over all its elements, 0 elsewhere.
 * Ties go to the lower flat index, so the mask is deterministic (torch.topk leaves
 * their order unspecified); NaN ranks below everything. O(n log n) per call. */
struct topk_item {
    double v;
    int64_t i;
};

static int topk_cmp(const void *pa, const void *pb)
{
    const struct topk_item *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

REF_KERNEL(TopKMask)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int64_t cnt = ir_numel(x), k = ir_attr_int(n, "k", 0);
    if (!out[0])
        return ST_OK;
    struct topk_item *it = malloc((size_t)(cnt ? cnt : 1) * sizeof *it);
    if (!it)
        return ST_ERR_NOMEM;
    for (int64_t i = 0; i < cnt; i++) {
        double v = ir_load_f64(x->dtype, in[0], i);
        it[i] = (struct topk_item){isnan(v) ? -HUGE_VAL : v, i};
        ir_store_f64(x->dtype, out[0], i, 0.0);
    }
    qsort(it, (size_t)cnt, sizeof *it, topk_cmp);
    for (int64_t j = 0; j < k && j < cnt; j++)
        ir_store_f64(x->dtype, out[0], it[j].i, 1.0);
    free(it);
    return ST_OK;
}

/* ---- window geometry, padded to three spatial dims ---------------------- */

/* input offset within a plane of output position o (3 coords) and tap t (3
 * coords), or -1 when the tap falls in the padding */
static int64_t win_tap(const struct nn_geom3 *w, const int64_t *o, const int64_t *t)
{
    int64_t off = 0;
    for (int i = 0; i < 3; i++) {
        int64_t p = o[i] * w->s[i] - w->pb[i] + t[i] * w->dl[i];
        if (p < 0 || p >= w->in[i])
            return -1;
        off = off * w->in[i] + p;
    }
    return off;
}

/* advance a 3-D odometer over box dims; 0 when it wraps around */
static int odo3(int64_t *c, const int64_t *dims)
{
    for (int i = 2; i >= 0; i--) {
        if (++c[i] < dims[i])
            return 1;
        c[i] = 0;
    }
    return 0;
}

/* ---- Conv adjoints ------------------------------------------------------- */

/* dX (N, C, in...) = sum over m, out, taps of W[m, c, tap] * dY[n, m, out],
 * scattered to the input position each tap read in the forward pass */
REF_KERNEL(ConvGradInput)
{
    const struct ir_tensor *dy = ref_in(g, n, 0), *wt = ref_in(g, n, 1), *dx = ref_out(g, n, 0);
    struct nn_geom3 w;
    if (nn_geom3_fill(n, dx->rank, dx->dims, wt->dims + 2, 0, &w))
        return ST_ERR_INVALID;
    int64_t N = dx->dims[0], C = dx->dims[1], M = wt->dims[0], group = ir_attr_int(n, "group", 1);
    int64_t cg = C / group, mg = M / group, xsz = C * w.in_plane, ysz = M * w.out_plane;
    double *wd = load_all(wt->dtype, in[1], ir_numel(wt));
    double *acc = malloc((size_t)(xsz ? xsz : 1) * sizeof *acc);
    int st = wd && acc ? ST_OK : ST_ERR_NOMEM;
    for (int64_t nb = 0; !st && nb < N; nb++) {
        memset(acc, 0, (size_t)xsz * sizeof *acc);
        for (int64_t m = 0; m < M; m++) {
            int64_t c0 = (m / mg) * cg, o[3] = {0, 0, 0};
            do {
                int64_t oi = (o[0] * w.out[1] + o[1]) * w.out[2] + o[2];
                double gy = ir_load_f64(dy->dtype, in[0], nb * ysz + m * w.out_plane + oi);
                int64_t t[3] = {0, 0, 0}, ti = 0;
                do {
                    int64_t p = win_tap(&w, o, t);
                    for (int64_t c = 0; p >= 0 && c < cg; c++)
                        acc[(c0 + c) * w.in_plane + p] += gy * wd[(m * cg + c) * w.kvol + ti];
                    ti++;
                } while (odo3(t, w.k));
            } while (odo3(o, w.out));
        }
        for (int64_t i = 0; i < xsz; i++)
            ir_store_f64(dx->dtype, out[0], nb * xsz + i, acc[i]);
    }
    free(wd);
    free(acc);
    return st;
}

/* dW (M, C/group, k...) = sum over n and out of dY[n, m, out] * X[n, c, tap position] */
REF_KERNEL(ConvGradWeight)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *dy = ref_in(g, n, 1), *dw = ref_out(g, n, 0);
    struct nn_geom3 w;
    if (nn_geom3_fill(n, x->rank, x->dims, dw->dims + 2, 0, &w))
        return ST_ERR_INVALID;
    int64_t N = x->dims[0], C = x->dims[1], M = dw->dims[0], group = ir_attr_int(n, "group", 1);
    int64_t cg = C / group, mg = M / group, xsz = C * w.in_plane, ysz = M * w.out_plane;
    int64_t wsz = ir_numel(dw);
    double *acc = calloc((size_t)(wsz ? wsz : 1), sizeof *acc);
    double *xd = malloc((size_t)(xsz ? xsz : 1) * sizeof *xd);
    int st = acc && xd ? ST_OK : ST_ERR_NOMEM;
    for (int64_t nb = 0; !st && nb < N; nb++) {
        for (int64_t i = 0; i < xsz; i++)
            xd[i] = ir_load_f64(x->dtype, in[0], nb * xsz + i);
        for (int64_t m = 0; m < M; m++) {
            int64_t c0 = (m / mg) * cg, o[3] = {0, 0, 0};
            do {
                int64_t oi = (o[0] * w.out[1] + o[1]) * w.out[2] + o[2];
                double gy = ir_load_f64(dy->dtype, in[1], nb * ysz + m * w.out_plane + oi);
                int64_t t[3] = {0, 0, 0}, ti = 0;
                do {
                    int64_t p = win_tap(&w, o, t);
                    for (int64_t c = 0; p >= 0 && c < cg; c++)
                        acc[(m * cg + c) * w.kvol + ti] += gy * xd[(c0 + c) * w.in_plane + p];
                    ti++;
                } while (odo3(t, w.k));
            } while (odo3(o, w.out));
        }
    }
    if (!st)
        store_all(dw->dtype, out[0], wsz, acc);
    free(acc);
    free(xd);
    return st;
}

/* ---- pooling adjoints ---------------------------------------------------- */

/* MaxPoolGrad(X, dY): each output's gradient goes to the element the forward
 * kernel picked: the first maximum in window scan order (NaN wins, as there).
 * Ties therefore send everything to the first tied element, like PyTorch's
 * max_pool indices. */
REF_KERNEL(MaxPoolGrad)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *dy = ref_in(g, n, 1);
    const int64_t *ks;
    ir_attr_ints(n, "kernel_shape", &ks);
    struct nn_geom3 w;
    if (nn_geom3_fill(n, x->rank, x->dims, ks, ir_attr_int(n, "ceil_mode", 0) != 0, &w))
        return ST_ERR_INVALID;
    int64_t planes = x->dims[0] * x->dims[1];
    double *xd = malloc((size_t)(w.in_plane ? w.in_plane : 1) * sizeof *xd);
    double *acc = malloc((size_t)(w.in_plane ? w.in_plane : 1) * sizeof *acc);
    int st = xd && acc ? ST_OK : ST_ERR_NOMEM;
    for (int64_t p = 0; !st && p < planes; p++) {
        for (int64_t i = 0; i < w.in_plane; i++) {
            xd[i] = ir_load_f64(x->dtype, in[0], p * w.in_plane + i);
            acc[i] = 0;
        }
        int64_t o[3] = {0, 0, 0}, oi = 0;
        do {
            int64_t t[3] = {0, 0, 0}, best = -1;
            double m = -HUGE_VAL;
            do {
                int64_t q = win_tap(&w, o, t);
                if (q >= 0 && (best < 0 || xd[q] > m || isnan(xd[q]))) {
                    best = q;
                    m = xd[q];
                }
            } while (odo3(t, w.k));
            if (best >= 0)
                acc[best] += ir_load_f64(dy->dtype, in[1], p * w.out_plane + oi);
            oi++;
        } while (odo3(o, w.out));
        for (int64_t i = 0; i < w.in_plane; i++)
            ir_store_f64(x->dtype, out[0], p * w.in_plane + i, acc[i]);
    }
    free(xd);
    free(acc);
    return st;
}

/* taps of dim i at output coordinate o landing in [lo, hi) */
static int64_t tap_count(const struct nn_geom3 *w, int i, int64_t o, int64_t lo, int64_t hi)
{
    int64_t cnt = 0;
    for (int64_t kk = 0; kk < w->k[i]; kk++) {
        int64_t p = o * w->s[i] - w->pb[i] + kk * w->dl[i];
        cnt += p >= lo && p < hi;
    }
    return cnt;
}

/* AveragePoolGrad(dY): each output spreads dY / count over the input taps it
 * summed; count as the forward kernel computes it (count_include_pad counts
 * taps inside the padded extent) */
REF_KERNEL(AveragePoolGrad)
{
    const struct ir_tensor *dy = ref_in(g, n, 0), *dx = ref_out(g, n, 0);
    const int64_t *ks;
    ir_attr_ints(n, "kernel_shape", &ks);
    struct nn_geom3 w;
    if (nn_geom3_fill(n, dx->rank, dx->dims, ks, ir_attr_int(n, "ceil_mode", 0) != 0, &w))
        return ST_ERR_INVALID;
    int inc = ir_attr_int(n, "count_include_pad", 0) != 0;
    int64_t planes = dx->dims[0] * dx->dims[1];
    double *acc = malloc((size_t)(w.in_plane ? w.in_plane : 1) * sizeof *acc);
    if (!acc)
        return ST_ERR_NOMEM;
    for (int64_t p = 0; p < planes; p++) {
        memset(acc, 0, (size_t)w.in_plane * sizeof *acc);
        int64_t o[3] = {0, 0, 0}, oi = 0;
        do {
            double cnt = 1;
            for (int i = 0; i < 3; i++)
                cnt *= (double)tap_count(&w, i, o[i], inc ? -w.pb[i] : 0,
                                         inc ? w.in[i] + w.pe[i] : w.in[i]);
            double gy = ir_load_f64(dy->dtype, in[0], p * w.out_plane + oi) / cnt;
            int64_t t[3] = {0, 0, 0};
            do {
                int64_t q = win_tap(&w, o, t);
                if (q >= 0)
                    acc[q] += gy;
            } while (odo3(t, w.k));
            oi++;
        } while (odo3(o, w.out));
        for (int64_t i = 0; i < w.in_plane; i++)
            ir_store_f64(dx->dtype, out[0], p * w.in_plane + i, acc[i]);
    }
    free(acc);
    return ST_OK;
}

/* ---- Gather / GatherElements / Slice adjoints ---------------------------- */

/* index i of an index tensor wrapped into [0, size); -1 when out of range */
static int64_t wrap_index(const struct ir_tensor *t, const void *p, int64_t i, int64_t size)
{
    int64_t v = ir_load_i64(t->dtype, p, i);
    if (v < -size || v >= size)
        return -1;
    return v < 0 ? v + size : v;
}

static int64_t prod(const int64_t *dims, int lo, int hi)
{
    int64_t p = 1;
    for (int i = lo; i < hi; i++)
        p *= dims[i];
    return p;
}

/* GatherGrad(dY, indices): dX [outer, big, inner] += dY [outer, m, inner] rows
 * at the indexed positions; repeated indices accumulate */
REF_KERNEL(GatherGrad)
{
    const struct ir_tensor *dy = ref_in(g, n, 0), *ti = ref_in(g, n, 1), *dx = ref_out(g, n, 0);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), dx->rank);
    if (a < 0)
        return ST_ERR_INVALID;
    int64_t m = ir_numel(ti), big = dx->dims[a], outer = prod(dx->dims, 0, a);
    int64_t inner = prod(dx->dims, a + 1, dx->rank), xsz = ir_numel(dx);
    for (int64_t j = 0; j < m; j++)
        if (wrap_index(ti, in[1], j, big) < 0)
            return ST_ERR_INVALID;
    double *acc = calloc((size_t)(xsz ? xsz : 1), sizeof *acc);
    if (!acc)
        return ST_ERR_NOMEM;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) {
            int64_t dst = (o * big + wrap_index(ti, in[1], j, big)) * inner;
            int64_t src = (o * m + j) * inner;
            for (int64_t i = 0; i < inner; i++)
                acc[dst + i] += ir_load_f64(dy->dtype, in[0], src + i);
        }
    store_all(dx->dtype, out[0], xsz, acc);
    free(acc);
    return ST_OK;
}

/* GatherElementsGrad(dY, indices): dX[.., idx[i], ..] += dY[i] */
REF_KERNEL(GatherElementsGrad)
{
    const struct ir_tensor *dy = ref_in(g, n, 0), *ti = ref_in(g, n, 1), *dx = ref_out(g, n, 0);
    int r = dx->rank, a = ir_norm_axis(ir_attr_int(n, "axis", 0), r);
    int64_t xs[IR_MAX_RANK], c[IR_MAX_RANK] = {0}, m = ir_numel(ti), base = 0, xsz = ir_numel(dx);
    if (a < 0 || ti->rank != r)
        return ST_ERR_INVALID;
    for (int64_t i = 0; i < m; i++)
        if (wrap_index(ti, in[1], i, dx->dims[a]) < 0)
            return ST_ERR_INVALID;
    double *acc = calloc((size_t)(xsz ? xsz : 1), sizeof *acc);
    if (!acc)
        return ST_ERR_NOMEM;
    ir_contig_strides(r, dx->dims, xs);
    /* walk indices (= dY) in order; base is the data offset of every
     * coordinate but the gather axis */
    for (int64_t i = 0; i < m; i++) {
        int64_t v = wrap_index(ti, in[1], i, dx->dims[a]);
        acc[base + v * xs[a]] += ir_load_f64(dy->dtype, in[0], i);
        for (int k = r - 1; k >= 0; k--) {
            int64_t s = k == a ? 0 : xs[k];
            base += s;
            if (++c[k] < ti->dims[k])
                break;
            base -= s * ti->dims[k];
            c[k] = 0;
        }
    }
    store_all(dx->dtype, out[0], xsz, acc);
    free(acc);
    return ST_OK;
}

/* SliceGrad(dY, starts, ends, axes?, steps?): zeros, then dY element i on axis a
 * goes to index first[a] + i*step[a] (the positions are distinct: a copy) */
REF_KERNEL(SliceGrad)
{
    const struct ir_tensor *dy = ref_in(g, n, 0), *dx = ref_out(g, n, 0);
    const struct ir_tensor *ta = ref_in(g, n, 3), *tp = ref_in(g, n, 4), *ts = ref_in(g, n, 1);
    int r = dx->rank;
    int64_t first[IR_MAX_RANK] = {0}, step[IR_MAX_RANK], xs[IR_MAX_RANK], ns = ir_numel(ts);
    size_t es = ir_dtype_size(dx->dtype);
    if (!out[0] || ir_numel(dx) == 0)
        return ST_OK;
    memset(out[0], 0, (size_t)ir_numel(dx) * es);
    for (int k = 0; k < r; k++)
        step[k] = 1;
    for (int64_t k = 0; k < ns; k++) {
        int a = ir_norm_axis(ta ? ir_load_i64(ta->dtype, in[3], k) : k, r);
        int64_t sp = tp ? ir_load_i64(tp->dtype, in[4], k) : 1, f;
        if (a < 0 || sp == 0)
            return ST_ERR_INVALID;
        int64_t cnt = ir_slice_axis(dx->dims[a], ir_load_i64(ts->dtype, in[1], k),
                                 ir_load_i64(ref_in(g, n, 2)->dtype, in[2], k), sp, &f);
        if (cnt != dy->dims[a])
            return ST_ERR_INVALID;
        first[a] = f;
        step[a] = sp;
    }
    int64_t m = ir_numel(dy), c[IR_MAX_RANK] = {0}, off = 0;
    if (m == 0)
        return ST_OK;
    ir_contig_strides(r, dx->dims, xs);
    for (int k = 0; k < r; k++)
        off += first[k] * xs[k];
    for (int64_t i = 0; i < m; i++) {
        memcpy((char *)out[0] + off * (int64_t)es, (const char *)in[0] + i * (int64_t)es, es);
        for (int k = r - 1; k >= 0; k--) {
            off += step[k] * xs[k];
            if (++c[k] < dy->dims[k])
                break;
            off -= step[k] * xs[k] * dy->dims[k];
            c[k] = 0;
        }
    }
    return ST_OK;
}
