/* cpu_norm.c — float32 LayerNormalization over trailing axes, rows split across the pool.
 *
 * The reference's arithmetic (ref_norm.c) element for element: per row, in double,
 * the mean as the index-order sum over len, the variance as the index-order sum of
 * squared deviations over len, inv = 1 / sqrt(var + eps), then (x - mean) inv scale
 * (+ B) rounded once. So the results are the reference's bits. A row's sums are
 * chains of dependent adds; LANES rows run side by side so the chains overlap. A
 * transformer normalises every [B, T, d] activation of every forward: the tiny
 * LM's 21 per step took 80 us each on the reference's single thread.
 *
 * Scale and B must be float32 and vary along the normalised axes only (the usual
 * [d] vectors); Mean and InvStdDev, when asked for, float32. Anything else goes to
 * the reference. */
#include <math.h>

#include "cpu_impl.h"

#define LANES 8

struct ln_job {
    const float *x, *scale, *bias;
    float *y, *mean, *inv; /* mean, inv: NULL when not wanted */
    int64_t len;
    double eps;
};

/* rows [r0, r0 + nr) of x (nr <= LANES) */
CPU_CLONES static void ln_block(const struct ln_job *jb, int64_t r0, int nr)
{
    int64_t len = jb->len;
    const float *x = jb->x + r0 * len;
    double mean[LANES] = {0}, var[LANES] = {0}, inv[LANES];
    for (int64_t j = 0; j < len; j++)
        for (int l = 0; l < nr; l++)
            mean[l] += (double)x[l * len + j];
    for (int l = 0; l < nr; l++)
        mean[l] /= (double)len;
    for (int64_t j = 0; j < len; j++)
        for (int l = 0; l < nr; l++) {
            double d = (double)x[l * len + j] - mean[l];
            var[l] += d * d;
        }
    for (int l = 0; l < nr; l++) {
        inv[l] = 1.0 / sqrt(var[l] / (double)len + jb->eps);
        const float *xl = x + l * len;
        float *yl = jb->y + (r0 + l) * len;
        double m = mean[l], iv = inv[l];
        if (jb->bias)
            for (int64_t j = 0; j < len; j++)
                yl[j] = (float)(((double)xl[j] - m) * iv * (double)jb->scale[j] +
                                (double)jb->bias[j]);
        else
            for (int64_t j = 0; j < len; j++)
                yl[j] = (float)(((double)xl[j] - m) * iv * (double)jb->scale[j]);
        if (jb->mean)
            jb->mean[r0 + l] = (float)m;
        if (jb->inv)
            jb->inv[r0 + l] = (float)iv;
    }
}

static void ln_rows(void *ctx, int64_t lo, int64_t hi)
{
    for (int64_t r = lo; r < hi; r += LANES)
        ln_block(ctx, r, hi - r < LANES ? (int)(hi - r) : LANES);
}

/* t is float32 and broadcasts into x as one [len] block per row: strides 0 before
 * axis a and contiguous from it */
static int per_row_vector(const struct ir_tensor *t, const struct ir_tensor *x, int a)
{
    if (!t || t->dtype != IR_F32 || t->rank > x->rank)
        return 0;
    int64_t str[IR_MAX_RANK], step = 1;
    ir_broadcast_strides(t->rank, t->dims, x->rank, x->dims, str);
    for (int i = x->rank - 1; i >= 0; i--) {
        if (i >= a && x->dims[i] != 1 && str[i] != step)
            return 0;
        if (i < a && x->dims[i] != 1 && str[i] != 0)
            return 0;
        if (i >= a)
            step *= x->dims[i];
    }
    return 1;
}

CPU_KERNEL(LayerNormalization)
{
    const struct ir_tensor *x = cpu_in(g, n, 0), *b = cpu_in(g, n, 2);
    const struct ir_tensor *tm = cpu_out(g, n, 1), *ti = cpu_out(g, n, 2);
    if (!x || x->dtype != IR_F32 || x->rank < 1)
        return CPU_DELEGATE;
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    if (a < 0 || !per_row_vector(cpu_in(g, n, 1), x, a) || (b && !per_row_vector(b, x, a)) ||
        (tm && tm->dtype != IR_F32) || (ti && ti->dtype != IR_F32))
        return CPU_DELEGATE;
    int64_t rows = 1, len = 1;
    for (int i = 0; i < x->rank; i++)
        *(i < a ? &rows : &len) *= x->dims[i];
    if (rows == 0 || len == 0)
        return ST_OK;
    struct ln_job jb = {in[0], in[1], b ? in[2] : NULL, out[0], tm ? out[1] : NULL,
                        ti ? out[2] : NULL, len, ir_attr_float(n, "epsilon", 1e-5)};
    /* each row's arithmetic is the same whichever rows share its block */
    cpu_parallel(rows, 1 + 16384 / len, ln_rows, &jb);
    return ST_OK;
}
