/* cpu_softmax.c — Softmax and LogSoftmax along the last axis (or, below opset 13,
 * everything from the axis on), rows split across the pool.
 *
 * The reference's arithmetic row by row (ref_norm.c): the row's maximum m, the sum
 * s of e^(x - m) in double in index order, then e^(x - m) / s (or x - m - log s)
 * rounded once. e^ is cpu_math.h's vectorisable exp (within an ulp of the
 * reference's). Rows up to BUF_LEN long go LANES at a time with their e^ in a stack
 * buffer (sm_lanes); longer rows, and a chunk's last few, evaluate e^ twice per
 * element (sm_row), which costs less than a heap buffer's traffic for long rows.
 * An attention's softmax over [B, H, T, T] spent 12 % of a tiny-LM VPD step in the
 * reference's scalar loop. Strided rows (an axis before the last) are delegated. */
#include <math.h>

#include "cpu_impl.h"
#include "cpu_math.h"

struct sm_job {
    const float *x;
    float *y;
    int64_t len;
    int log;
};

CPU_CLONES static void sm_row(const float *restrict x, float *restrict y, int64_t len, int lg)
{
    float m = x[0];
    for (int64_t j = 1; j < len; j++)
        m = x[j] > m ? x[j] : m; /* NaN never wins: as the reference's first-max scan */
    double s = 0, md = (double)m;
    for (int64_t j = 0; j < len; j++)
        s += cpu_exp((double)x[j] - md);
    if (lg) {
        double ls = log(s);
        for (int64_t j = 0; j < len; j++)
            y[j] = (float)((double)x[j] - md - ls);
        return;
    }
    for (int64_t j = 0; j < len; j++)
        y[j] = (float)(cpu_exp((double)x[j] - md) / s);
}

#define LANES 8     /* rows whose sums run side by side */
#define BUF_LEN 512 /* rows up to this long keep their e^ in a stack buffer */

/* The max and the exponentials of a row vectorise; its sum in index order is one
 * chain of dependent double adds, which took most of the time of short rows
 * ([B, H, T, T] attention, T = 64). LANES rows are summed side by side, each in
 * index order as before (the same bits), so the chains overlap. */
CPU_CLONES static void sm_lanes(const float *restrict x, float *restrict y, int64_t len, int lg)
{
    double e[LANES][BUF_LEN], md[LANES], s[LANES];
    for (int l = 0; l < LANES; l++) {
        const float *xl = x + l * len;
        float m = xl[0];
        for (int64_t j = 1; j < len; j++)
            m = xl[j] > m ? xl[j] : m;
        md[l] = (double)m;
        for (int64_t j = 0; j < len; j++)
            e[l][j] = cpu_exp((double)xl[j] - md[l]);
        s[l] = 0;
    }
    for (int64_t j = 0; j < len; j++)
        for (int l = 0; l < LANES; l++)
            s[l] += e[l][j];
    for (int l = 0; l < LANES; l++) {
        const float *xl = x + l * len;
        float *yl = y + l * len;
        if (lg) {
            double ls = log(s[l]);
            for (int64_t j = 0; j < len; j++)
                yl[j] = (float)((double)xl[j] - md[l] - ls);
        } else {
            for (int64_t j = 0; j < len; j++)
                yl[j] = (float)(e[l][j] / s[l]);
        }
    }
}

static void sm_rows(void *ctx, int64_t lo, int64_t hi)
{
    const struct sm_job *jb = ctx;
    int64_t r = lo;
    if (jb->len <= BUF_LEN)
        for (; r + LANES <= hi; r += LANES)
            sm_lanes(jb->x + r * jb->len, jb->y + r * jb->len, jb->len, jb->log);
    for (; r < hi; r++)
        sm_row(jb->x + r * jb->len, jb->y + r * jb->len, jb->len, jb->log);
}

static int softmax(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                   void *const *out, int lg)
{
    const struct ir_tensor *x = cpu_in(g, n, 0);
    if (!x || x->dtype != IR_F32 || x->rank < 1)
        return CPU_DELEGATE;
    int legacy = n->opset < 13;
    int64_t axis = ir_attr_int(n, "axis", legacy ? 1 : -1);
    int a = (int)(axis < 0 ? axis + x->rank : axis);
    if (a < 0 || a >= x->rank || (!legacy && a != x->rank - 1))
        return CPU_DELEGATE;
    int64_t numel = ir_numel(x), len = 1;
    for (int k = a; k < x->rank; k++)
        len *= x->dims[k];
    if (len == 0 || numel == 0)
        return ST_OK;
    struct sm_job jb = {in[0], out[0], len, lg};
    cpu_parallel(numel / len, 1 + 16384 / len, sm_rows, &jb);
    return ST_OK;
}

CPU_KERNEL(Softmax) { return softmax(g, n, in, out, 0); }
CPU_KERNEL(LogSoftmax) { return softmax(g, n, in, out, 1); }
