/* ref_norm.c — reference kernels for Softmax, LogSoftmax, Hardmax and the
 * normalisations (LayerNormalization, BatchNormalization, InstanceNormalization).
 * Each works on one row / plane at a time: load it into doubles (float32 read
 * directly), compute in double, store back in the tensor's dtype. */
#include <math.h>
#include <stdlib.h>

#include "ref_impl.h"

/* dst[j] = p[base + j*stride], widened to double */
static void load_row(enum ir_dtype dt, const void *p, int64_t base, int64_t stride, int64_t len,
                     double *dst)
{
    if (dt == IR_F32) {
        const float *f = p;
        for (int64_t j = 0; j < len; j++)
            dst[j] = (double)f[base + j * stride];
        return;
    }
    for (int64_t j = 0; j < len; j++)
        dst[j] = ir_load_f64(dt, p, base + j * stride);
}

static void store_row(enum ir_dtype dt, void *p, int64_t base, int64_t stride, int64_t len,
                      const double *src)
{
    if (dt == IR_F32) {
        float *f = p;
        for (int64_t j = 0; j < len; j++)
            f[base + j * stride] = (float)src[j];
        return;
    }
    for (int64_t j = 0; j < len; j++)
        ir_store_f64(dt, p, base + j * stride, src[j]);
}

static int64_t prod_dims(const int64_t *dims, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= dims[i];
    return p;
}

/* ---- Softmax family ------------------------------------------------------ */

enum sm_kind { SM_SOFT, SM_LOG, SM_HARD };

static void softmax_row(enum sm_kind k, double *v, int64_t len)
{
    int64_t arg = 0;
    for (int64_t j = 1; j < len; j++)
        if (v[j] > v[arg])
            arg = j;
    double m = v[arg], s = 0;
    if (k == SM_HARD) { /* one-hot at the first maximum */
        for (int64_t j = 0; j < len; j++)
            v[j] = j == arg ? 1.0 : 0.0;
        return;
    }
    if (k == SM_LOG) {
        for (int64_t j = 0; j < len; j++)
            s += exp(v[j] - m);
        double ls = log(s);
        for (int64_t j = 0; j < len; j++)
            v[j] = v[j] - m - ls;
        return;
    }
    for (int64_t j = 0; j < len; j++) {
        v[j] = exp(v[j] - m);
        s += v[j];
    }
    for (int64_t j = 0; j < len; j++)
        v[j] /= s;
}

/* x viewed as (outer, len, inner), normalised along len. Opset < 13 coerces
 * to 2-D at axis: len is everything from axis on and inner is 1. */
static int softmax_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                       void *const *out, enum sm_kind k)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int legacy = n->opset < 13;
    int64_t axis = ir_attr_int(n, "axis", legacy ? 1 : -1);
    int a = (int)(axis < 0 ? axis + x->rank : axis);
    int64_t outer = prod_dims(x->dims, 0, a);
    int64_t len = legacy ? prod_dims(x->dims, a, x->rank) : x->dims[a];
    int64_t inner = legacy ? 1 : prod_dims(x->dims, a + 1, x->rank);
    if (len == 0)
        return ST_OK;
    double *row = malloc((size_t)len * sizeof *row);
    if (!row)
        return ST_ERR_NOMEM;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t q = 0; q < inner; q++) {
            int64_t base = o * len * inner + q;
            load_row(x->dtype, in[0], base, inner, len, row);
            softmax_row(k, row, len);
            store_row(x->dtype, out[0], base, inner, len, row);
        }
    }
    free(row);
    return ST_OK;
}

REF_KERNEL(Softmax) { return softmax_run(g, n, in, out, SM_SOFT); }
REF_KERNEL(LogSoftmax) { return softmax_run(g, n, in, out, SM_LOG); }
REF_KERNEL(Hardmax) { return softmax_run(g, n, in, out, SM_HARD); }

/* ---- LayerNormalization -------------------------------------------------- */

/* offset, in a tensor broadcast into x's shape with strides str, of the
 * element at row-major index lin of the sub-box dims[from..to) */
static int64_t bcast_offset(int64_t lin, const int64_t *dims, const int64_t *str, int from, int to)
{
    int64_t off = 0;
    for (int i = to - 1; i >= from; i--) {
        off += (lin % dims[i]) * str[i];
        lin /= dims[i];
    }
    return off;
}

/* a parameter (Scale or B) as doubles plus its broadcast strides into x */
struct ln_param {
    double *v;
    int64_t str[IR_MAX_RANK];
    int64_t *inner_off; /* offset for each position inside a normalised block */
};

static int ln_param_load(const struct ir_tensor *t, const void *data, const struct ir_tensor *x,
                         int a, int64_t len, struct ln_param *p)
{
    int64_t cnt = ir_numel(t);
    p->v = malloc((size_t)(cnt ? cnt : 1) * sizeof *p->v);
    p->inner_off = malloc((size_t)(len ? len : 1) * sizeof *p->inner_off);
    if (!p->v || !p->inner_off)
        return ST_ERR_NOMEM;
    load_row(t->dtype, data, 0, 1, cnt, p->v);
    ir_broadcast_strides(t->rank, t->dims, x->rank, x->dims, p->str);
    for (int64_t j = 0; j < len; j++)
        p->inner_off[j] = bcast_offset(j, x->dims, p->str, a, x->rank);
    return ST_OK;
}

/* Normalise each row over dims[axis..]: y = (x - mean) / sqrt(var + eps)
 * * scale + B. x is (outer, len); Mean/InvStdDev are (outer). */
static void ln_rows(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                    void *const *out, const struct ln_param *sc, const struct ln_param *b,
                    double *row)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *tm = ref_out(g, n, 1), *ti = ref_out(g, n, 2);
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    int64_t outer = prod_dims(x->dims, 0, a), len = prod_dims(x->dims, a, x->rank);
    double eps = ir_attr_float(n, "epsilon", 1e-5);
    for (int64_t r = 0; r < outer; r++) {
        load_row(x->dtype, in[0], r * len, 1, len, row);
        double mean = 0, var = 0;
        for (int64_t j = 0; j < len; j++)
            mean += row[j];
        mean /= (double)len;
        for (int64_t j = 0; j < len; j++)
            var += (row[j] - mean) * (row[j] - mean);
        double inv = 1.0 / sqrt(var / (double)len + eps);
        int64_t so = bcast_offset(r, x->dims, sc->str, 0, a);
        int64_t bo = b->v ? bcast_offset(r, x->dims, b->str, 0, a) : 0;
        for (int64_t j = 0; j < len; j++) {
            double y = (row[j] - mean) * inv * sc->v[so + sc->inner_off[j]];
            row[j] = b->v ? y + b->v[bo + b->inner_off[j]] : y;
        }
        store_row(x->dtype, out[0], r * len, 1, len, row);
        if (tm && out[1])
            ir_store_f64(tm->dtype, out[1], r, mean);
        if (ti && out[2])
            ir_store_f64(ti->dtype, out[2], r, inv);
    }
}

REF_KERNEL(LayerNormalization)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *ts = ref_in(g, n, 1), *tb = ref_in(g, n, 2);
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    int64_t len = prod_dims(x->dims, a, x->rank);
    struct ln_param sc = {0}, b = {0};
    double *row = malloc((size_t)(len ? len : 1) * sizeof *row);
    int st = row ? ln_param_load(ts, in[1], x, a, len, &sc) : ST_ERR_NOMEM;
    if (!st && tb && in[2])
        st = ln_param_load(tb, in[2], x, a, len, &b);
    if (!st && len > 0)
        ln_rows(g, n, in, out, &sc, &b, row);
    free(row);
    free(sc.v);
    free(sc.inner_off);
    free(b.v);
    free(b.inner_off);
    return st;
}

/* ---- BatchNormalization / InstanceNormalization -------------------------- */

/* y = (x - mean) * scale / sqrt(var + eps) + B, per channel; x is
 * (N, C, plane) with plane = the product of the spatial dims */
REF_KERNEL(BatchNormalization)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int64_t nb = x->dims[0], c = x->dims[1], plane = prod_dims(x->dims, 2, x->rank);
    double eps = ir_attr_float(n, "epsilon", 1e-5);
    double *row = malloc((size_t)(plane ? plane : 1) * sizeof *row);
    if (!row)
        return ST_ERR_NOMEM;
    for (int64_t ch = 0; ch < c; ch++) {
        double sc = ir_load_f64(ref_in(g, n, 1)->dtype, in[1], ch);
        double bias = ir_load_f64(ref_in(g, n, 2)->dtype, in[2], ch);
        double mean = ir_load_f64(ref_in(g, n, 3)->dtype, in[3], ch);
        double var = ir_load_f64(ref_in(g, n, 4)->dtype, in[4], ch);
        double mul = sc / sqrt(var + eps);
        for (int64_t b = 0; b < nb; b++) {
            int64_t base = (b * c + ch) * plane;
            load_row(x->dtype, in[0], base, 1, plane, row);
            for (int64_t j = 0; j < plane; j++)
                row[j] = (row[j] - mean) * mul + bias;
            store_row(x->dtype, out[0], base, 1, plane, row);
        }
    }
    free(row);
    return ST_OK;
}

/* statistics over each (n, c) plane: x is (N, C, plane) */
REF_KERNEL(InstanceNormalization)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int64_t nb = x->dims[0], c = x->dims[1], plane = prod_dims(x->dims, 2, x->rank);
    double eps = ir_attr_float(n, "epsilon", 1e-5);
    double *row = malloc((size_t)(plane ? plane : 1) * sizeof *row);
    if (!row)
        return ST_ERR_NOMEM;
    for (int64_t b = 0; b < nb && plane > 0; b++) {
        for (int64_t ch = 0; ch < c; ch++) {
            int64_t base = (b * c + ch) * plane;
            double sc = ir_load_f64(ref_in(g, n, 1)->dtype, in[1], ch);
            double bias = ir_load_f64(ref_in(g, n, 2)->dtype, in[2], ch);
            double mean = 0, var = 0;
            load_row(x->dtype, in[0], base, 1, plane, row);
            for (int64_t j = 0; j < plane; j++)
                mean += row[j];
            mean /= (double)plane;
            for (int64_t j = 0; j < plane; j++)
                var += (row[j] - mean) * (row[j] - mean);
            double mul = sc / sqrt(var / (double)plane + eps);
            for (int64_t j = 0; j < plane; j++)
                row[j] = (row[j] - mean) * mul + bias;
            store_row(x->dtype, out[0], base, 1, plane, row);
        }
    }
    free(row);
    return ST_OK;
}
