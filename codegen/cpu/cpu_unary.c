/* cpu_unary.c — float32 unary ops and the squashing functions (METHOD §2.4)
 * with their VJPs, as flat loops split across the pool.
 *
 * The reference evaluates the transcendental functions in double libm and
 * rounds once. Exp, Erf, Sigmoid and Gelu here use the vectorisable formulas of
 * cpu_math.h (within an ulp of the reference, an order of magnitude cheaper
 * than glibc's erff); Log and Tanh, rare in training, call logf/tanhf (a few
 * ulps). Relu, Neg, Reciprocal and Sqrt are correctly rounded either way, so
 * they match the reference bit for bit. The squashing functions keep the
 * reference's double arithmetic for their one multiply-add: it costs nothing
 * next to the memory traffic and keeps them bit-identical (their alpha, 0.01,
 * is not a float). */
#include <math.h>
#include <string.h>

#include "cpu_impl.h"
#include "cpu_math.h"

#define SQUASH_ALPHA 0.01 /* the default, as in ref_grad.c */
#define GRAIN_CHEAP 32768 /* elements per thread for loads and stores only */
#define GRAIN_LIBM 4096   /* ... for a transcendental function per element */

enum uop {
    U_RELU, U_GELU, U_ERF, U_EXP, U_LOG, U_SQRT, U_SIGMOID, U_TANH, U_NEG, U_RECIP,
    U_LOWER, U_UPPER, U_LOWER_GRAD, U_UPPER_GRAD,
};

struct un_job {
    enum uop op;
    const float *x, *dy; /* dy: the VJPs' second operand */
    float *y;
    double alpha;
};

/* exp, erf and GELU through cpu_math.h (double inside, one rounding at the
 * store); exact GELU is x Phi(x) = x erfc(-x / sqrt 2) / 2, where erfc keeps
 * its relative accuracy in the left tail and 1 + erf(x / sqrt 2) would cancel */
CPU_CLONES static void libm_loop(enum uop op, const float *x, float *restrict y, int64_t cnt)
{
    switch (op) {
    case U_ERF: for (int64_t i = 0; i < cnt; i++) y[i] = (float)cpu_erf((double)x[i]); return;
    case U_EXP: for (int64_t i = 0; i < cnt; i++) y[i] = (float)cpu_exp((double)x[i]); return;
    case U_LOG: for (int64_t i = 0; i < cnt; i++) y[i] = logf(x[i]); return;
    case U_TANH: for (int64_t i = 0; i < cnt; i++) y[i] = tanhf(x[i]); return;
    case U_SIGMOID:
        for (int64_t i = 0; i < cnt; i++)
            y[i] = (float)(1.0 / (1.0 + cpu_exp(-(double)x[i])));
        return;
    case U_GELU:
        for (int64_t i = 0; i < cnt; i++) {
            double v = (double)x[i];
            y[i] = (float)(0.5 * v * cpu_erfc(v * -0.70710678118654752));
        }
        return;
    default: return;
    }
}

/* NaN compares false everywhere, so NaN inputs stay NaN (as in the reference) */
static void cheap_loop(enum uop op, const float *x, float *restrict y, int64_t cnt)
{
    switch (op) {
    case U_RELU: for (int64_t i = 0; i < cnt; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i]; return;
    case U_NEG: for (int64_t i = 0; i < cnt; i++) y[i] = -x[i]; return;
    case U_RECIP: for (int64_t i = 0; i < cnt; i++) y[i] = 1.0f / x[i]; return;
    case U_SQRT: for (int64_t i = 0; i < cnt; i++) y[i] = sqrtf(x[i]); return;
    default: return;
    }
}

/* clamp(x, 0, 1) and the leaky upper clamp, as ref_grad.c lower_f/upper_f */
static void squash_loop(enum uop op, const float *x, float *restrict y, int64_t cnt, double al)
{
    if (op == U_LOWER) {
        for (int64_t i = 0; i < cnt; i++)
            y[i] = x[i] < 0.0f ? 0.0f : x[i] > 1.0f ? 1.0f : x[i];
        return;
    }
    for (int64_t i = 0; i < cnt; i++) {
        double v = (double)x[i];
        y[i] = (float)(v > 1 ? 1.0 + al * (v - 1.0) : v < 0 ? 0.0 : v);
    }
}

/* the straight-through VJPs of ref_grad.c lower_grad_f/upper_grad_f: a dead
 * (x <= 0) lower input only receives alpha*dy when dy < 0 */
static void squash_grad_loop(enum uop op, const float *x, const float *dy, float *restrict y,
                             int64_t cnt, double al)
{
    if (op == U_LOWER_GRAD) {
        for (int64_t i = 0; i < cnt; i++) {
            double d = (double)dy[i];
            y[i] = (float)(x[i] <= 0.0f ? (d < 0 ? al * d : 0.0) : x[i] <= 1.0f ? d : 0.0);
        }
        return;
    }
    for (int64_t i = 0; i < cnt; i++) {
        double d = (double)dy[i];
        y[i] = (float)(x[i] < 0.0f ? 0.0 : x[i] <= 1.0f ? d : al * d);
    }
}

static void un_range(void *ctx, int64_t lo, int64_t hi)
{
    const struct un_job *jb = ctx;
    const float *x = jb->x + lo;
    float *y = jb->y + lo;
    int64_t cnt = hi - lo;
    switch (jb->op) {
    case U_RELU: case U_NEG: case U_RECIP: case U_SQRT:
        cheap_loop(jb->op, x, y, cnt);
        return;
    case U_GELU: case U_ERF: case U_EXP: case U_LOG: case U_SIGMOID: case U_TANH:
        libm_loop(jb->op, x, y, cnt);
        return;
    case U_LOWER: case U_UPPER:
        squash_loop(jb->op, x, y, cnt, jb->alpha);
        return;
    case U_LOWER_GRAD: case U_UPPER_GRAD:
        squash_grad_loop(jb->op, x, jb->dy + lo, y, cnt, jb->alpha);
        return;
    }
}

static int unary(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                 void *const *out, enum uop op)
{
    const struct ir_tensor *tx = cpu_in(g, n, 0), *ty = cpu_out(g, n, 0);
    const struct ir_tensor *td = n->n_in > 1 ? cpu_in(g, n, 1) : NULL;
    if (tx->dtype != IR_F32 || !ty || ty->dtype != IR_F32 || (td && td->dtype != IR_F32))
        return CPU_DELEGATE;
    if (!out[0])
        return ST_OK;
    struct un_job jb = {.op = op, .x = in[0], .dy = td ? in[1] : NULL, .y = out[0]};
    int grad = op == U_LOWER_GRAD || op == U_UPPER_GRAD;
    if (op >= U_LOWER)
        jb.alpha = ir_attr_float(n, "alpha", SQUASH_ALPHA);
    if (grad && !jb.dy)
        return CPU_DELEGATE;
    int libm = op == U_GELU || op == U_ERF || op == U_EXP || op == U_LOG || op == U_SIGMOID ||
               op == U_TANH;
    cpu_parallel(ir_numel(tx), libm ? GRAIN_LIBM : GRAIN_CHEAP, un_range, &jb);
    return ST_OK;
}

CPU_KERNEL(Relu) { return unary(g, n, in, out, U_RELU); }
CPU_KERNEL(Erf) { return unary(g, n, in, out, U_ERF); }
CPU_KERNEL(Exp) { return unary(g, n, in, out, U_EXP); }
CPU_KERNEL(Log) { return unary(g, n, in, out, U_LOG); }
CPU_KERNEL(Sqrt) { return unary(g, n, in, out, U_SQRT); }
CPU_KERNEL(Sigmoid) { return unary(g, n, in, out, U_SIGMOID); }
CPU_KERNEL(Tanh) { return unary(g, n, in, out, U_TANH); }
CPU_KERNEL(Neg) { return unary(g, n, in, out, U_NEG); }
CPU_KERNEL(Reciprocal) { return unary(g, n, in, out, U_RECIP); }
CPU_KERNEL(LowerLeakyHard) { return unary(g, n, in, out, U_LOWER); }
CPU_KERNEL(UpperLeakyHard) { return unary(g, n, in, out, U_UPPER); }
CPU_KERNEL(LowerLeakyHardGrad) { return unary(g, n, in, out, U_LOWER_GRAD); }
CPU_KERNEL(UpperLeakyHardGrad) { return unary(g, n, in, out, U_UPPER_GRAD); }

/* exact GELU only; approximate="tanh" stays on the reference */
CPU_KERNEL(Gelu)
{
    if (strcmp(ir_attr_str(n, "approximate", "none"), "none") != 0)
        return CPU_DELEGATE;
    return unary(g, n, in, out, U_GELU);
}
