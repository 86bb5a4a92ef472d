/* ref_conv.c — reference kernels for Conv, MaxPool, AveragePool,
 * GlobalAveragePool and GlobalMaxPool.
 *
 * Windowed ops pad their geometry to three spatial dims (leading dims of size
 * 1), so one loop nest serves 1-D, 2-D and 3-D. Data is widened to double a
 * plane / image at a time (float32 read directly) and accumulated in double. */
#include <math.h>
#include <stdlib.h>

#include "nn_geom.h"
#include "ref_impl.h"

/* nn_geom with unused leading spatial dims filled in as size 1 */
/* geometry for node n, whose X is (N, C, spatial...); kernel from W or kernel_shape
 * (struct nn_geom3 is shared with the gradient kernels: ir/nn_geom.h) */
static int g3_fill(const struct ir_node *n, const struct ir_tensor *x, const int64_t *kernel,
                   int ceil_mode, struct nn_geom3 *q)
{
    return nn_geom3_fill(n, x->rank, x->dims, kernel, ceil_mode, q);
}

/* output positions o in dim i whose tap kk lands inside the input:
 * 0 <= o*s - pb + kk*dl < in, as the half-open range [*lo, *hi) */
static void tap_range(const struct nn_geom3 *q, int i, int64_t kk, int64_t *lo, int64_t *hi)
{
    int64_t off = kk * q->dl[i] - q->pb[i];
    *lo = off >= 0 ? 0 : (-off + q->s[i] - 1) / q->s[i];
    *hi = q->in[i] - 1 - off < 0 ? 0 : (q->in[i] - 1 - off) / q->s[i] + 1;
    if (*hi > q->out[i])
        *hi = q->out[i];
    if (*lo > *hi)
        *lo = *hi;
}

/* p[0..cnt) widened to double into dst */
static void load_f64(enum ir_dtype dt, const void *p, int64_t base, int64_t cnt, double *dst)
{
    if (dt == IR_F32) {
        const float *f = (const float *)p + base;
        for (int64_t i = 0; i < cnt; i++)
            dst[i] = (double)f[i];
        return;
    }
    for (int64_t i = 0; i < cnt; i++)
        dst[i] = ir_load_f64(dt, p, base + i);
}

static void store_f64(enum ir_dtype dt, void *p, int64_t base, int64_t cnt, const double *src)
{
    if (dt == IR_F32) {
        float *f = (float *)p + base;
        for (int64_t i = 0; i < cnt; i++)
            f[i] = (float)src[i];
        return;
    }
    for (int64_t i = 0; i < cnt; i++)
        ir_store_f64(dt, p, base + i, src[i]);
}

/* ---- Conv ---------------------------------------------------------------- */

/* acc (OD, OH, OW) += sum over c < cg and taps (kd, kh, kw) of
 * w[c, kd, kh, kw] * x[c, od*s - pb + kd*dl, ...]. x is (cg, D, H, W).
 * One weight at a time sweeps a contiguous output row: cache-friendly and
 * branch-free in the innermost loop. */
static void conv_acc(const struct nn_geom3 *q, const double *x, const double *w, int64_t cg, double *acc)
{
    const int64_t H = q->in[1], W = q->in[2], OH = q->out[1], OW = q->out[2];
    for (int64_t c = 0; c < cg; c++) {
        const double *xc = x + c * q->in_plane;
        for (int64_t kd = 0; kd < q->k[0]; kd++) {
            int64_t d_lo, d_hi;
            tap_range(q, 0, kd, &d_lo, &d_hi);
            for (int64_t kh = 0; kh < q->k[1]; kh++) {
                int64_t h_lo, h_hi;
                tap_range(q, 1, kh, &h_lo, &h_hi);
                for (int64_t kw = 0; kw < q->k[2]; kw++) {
                    int64_t w_lo, w_hi;
                    tap_range(q, 2, kw, &w_lo, &w_hi);
                    double wv = w[((c * q->k[0] + kd) * q->k[1] + kh) * q->k[2] + kw];
                    int64_t woff = kw * q->dl[2] - q->pb[2];
                    for (int64_t od = d_lo; od < d_hi; od++) {
                        int64_t id = od * q->s[0] - q->pb[0] + kd * q->dl[0];
                        for (int64_t oh = h_lo; oh < h_hi; oh++) {
                            int64_t ih = oh * q->s[1] - q->pb[1] + kh * q->dl[1];
                            const double *xr = xc + (id * H + ih) * W;
                            double *ar = acc + (od * OH + oh) * OW;
                            for (int64_t ow = w_lo; ow < w_hi; ow++)
                                ar[ow] += wv * xr[ow * q->s[2] + woff];
                        }
                    }
                }
            }
        }
    }
}

/* Y (N, M, out...) from X (N, C, in...), W (M, C/group, k...), B (M) */
REF_KERNEL(Conv)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *w = ref_in(g, n, 1), *b = ref_in(g, n, 2);
    const struct ir_tensor *y = ref_out(g, n, 0);
    struct nn_geom3 q;
    if (g3_fill(n, x, w->dims + 2, 0, &q) != ST_OK)
        return ST_ERR_INVALID;
    int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0], group = ir_attr_int(n, "group", 1);
    int64_t cg = C / group, mg = M / group, wsz = ir_numel(w), xsz = C * q.in_plane;
    double *xd = malloc((size_t)(xsz ? xsz : 1) * sizeof *xd);
    double *wd = malloc((size_t)(wsz ? wsz : 1) * sizeof *wd);
    double *acc = malloc((size_t)(q.out_plane ? q.out_plane : 1) * sizeof *acc);
    int st = xd && wd && acc ? ST_OK : ST_ERR_NOMEM;
    if (!st)
        load_f64(w->dtype, in[1], 0, wsz, wd);
    for (int64_t nb = 0; !st && nb < N; nb++) {
        load_f64(x->dtype, in[0], nb * xsz, xsz, xd);
        for (int64_t m = 0; m < M; m++) {
            double bias = b && in[2] ? ir_load_f64(b->dtype, in[2], m) : 0.0;
            for (int64_t i = 0; i < q.out_plane; i++)
                acc[i] = bias;
            conv_acc(&q, xd + (m / mg) * cg * q.in_plane, wd + m * cg * q.kvol, cg, acc);
            store_f64(y->dtype, out[0], (nb * M + m) * q.out_plane, q.out_plane, acc);
        }
    }
    free(xd);
    free(wd);
    free(acc);
    return st;
}

/* ---- MaxPool / AveragePool ------------------------------------------------ */

/* taps kk of dim i at output o landing in [lo_b, hi_b) (input or padded extent) */
static int64_t tap_count(const struct nn_geom3 *q, int i, int64_t o, int64_t lo_b, int64_t hi_b)
{
    int64_t cnt = 0;
    for (int64_t kk = 0; kk < q->k[i]; kk++) {
        int64_t p = o * q->s[i] - q->pb[i] + kk * q->dl[i];
        cnt += p >= lo_b && p < hi_b;
    }
    return cnt;
}

/* one window: max, or the average over valid taps (count_include_pad: over
 * taps inside the padded extent, as onnxruntime does with ceil_mode) */
static double pool_window(const struct nn_geom3 *q, const double *x, const int64_t *o, int is_max,
                          int include_pad)
{
    double m = -HUGE_VAL, s = 0;
    for (int64_t kd = 0; kd < q->k[0]; kd++) {
        int64_t id = o[0] * q->s[0] - q->pb[0] + kd * q->dl[0];
        if (id < 0 || id >= q->in[0])
            continue;
        for (int64_t kh = 0; kh < q->k[1]; kh++) {
            int64_t ih = o[1] * q->s[1] - q->pb[1] + kh * q->dl[1];
            if (ih < 0 || ih >= q->in[1])
                continue;
            for (int64_t kw = 0; kw < q->k[2]; kw++) {
                int64_t iw = o[2] * q->s[2] - q->pb[2] + kw * q->dl[2];
                if (iw < 0 || iw >= q->in[2])
                    continue;
                double v = x[(id * q->in[1] + ih) * q->in[2] + iw];
                m = v > m || isnan(v) ? v : m;
                s += v;
            }
        }
    }
    if (is_max)
        return m;
    double cnt = 1;
    for (int i = 0; i < 3; i++) {
        int64_t lo = include_pad ? -q->pb[i] : 0;
        int64_t hi = include_pad ? q->in[i] + q->pe[i] : q->in[i];
        cnt *= (double)tap_count(q, i, o[i], lo, hi);
    }
    return s / cnt;
}

/* y (N, C, out...) from x (N, C, in...), one (n, c) plane at a time */
static int pool_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                    void *const *out, int is_max)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    const int64_t *ks;
    ir_attr_ints(n, "kernel_shape", &ks);
    struct nn_geom3 q;
    if (g3_fill(n, x, ks, ir_attr_int(n, "ceil_mode", 0) != 0, &q) != ST_OK)
        return ST_ERR_INVALID;
    int include_pad = ir_attr_int(n, "count_include_pad", 0) != 0;
    int64_t planes = x->dims[0] * x->dims[1];
    double *xd = malloc((size_t)(q.in_plane ? q.in_plane : 1) * sizeof *xd);
    double *yd = malloc((size_t)(q.out_plane ? q.out_plane : 1) * sizeof *yd);
    int st = xd && yd ? ST_OK : ST_ERR_NOMEM;
    for (int64_t p = 0; !st && p < planes; p++) {
        load_f64(x->dtype, in[0], p * q.in_plane, q.in_plane, xd);
        int64_t o[3], i = 0;
        for (o[0] = 0; o[0] < q.out[0]; o[0]++)
            for (o[1] = 0; o[1] < q.out[1]; o[1]++)
                for (o[2] = 0; o[2] < q.out[2]; o[2]++)
                    yd[i++] = pool_window(&q, xd, o, is_max, include_pad);
        store_f64(y->dtype, out[0], p * q.out_plane, q.out_plane, yd);
    }
    free(xd);
    free(yd);
    return st;
}

REF_KERNEL(MaxPool) { return pool_run(g, n, in, out, 1); }
REF_KERNEL(AveragePool) { return pool_run(g, n, in, out, 0); }

/* ---- global pools: one value per (n, c) plane ----------------------------- */

static int global_pool(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                       void *const *out, int is_max)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int64_t planes = x->dims[0] * x->dims[1], plane = 1;
    for (int i = 2; i < x->rank; i++)
        plane *= x->dims[i];
    const float *xf = x->dtype == IR_F32 ? in[0] : NULL;
    for (int64_t p = 0; p < planes; p++) {
        double m = -HUGE_VAL, s = 0;
        for (int64_t i = p * plane; i < (p + 1) * plane; i++) {
            double v = xf ? (double)xf[i] : ir_load_f64(x->dtype, in[0], i);
            m = v > m || isnan(v) ? v : m;
            s += v;
        }
        ir_store_f64(x->dtype, out[0], p, is_max ? m : s / (double)plane);
    }
    return ST_OK;
}

REF_KERNEL(GlobalAveragePool) { return global_pool(g, n, in, out, 0); }
REF_KERNEL(GlobalMaxPool) { return global_pool(g, n, in, out, 1); }
