/* ref_unary.c — reference kernels for the unary elementwise ops (ops.def group
 * "unary elementwise", Identity..Dropout).
 *
 * Most ops are a scalar function mapped over the buffer by unary(): float
 * dtypes are widened to double, computed, and rounded once at the store;
 * integer dtypes go through int64 (exact, wrapping like C) when the op has an
 * integer form. The hot float32 activations have a direct float32 loop first.
 * Shapes and dtypes were validated by the rules in ir/shape_elem.c. */
#include <math.h>
#include <string.h>

#include "ref_impl.h"

/* attribute values a scalar function reads, fetched once per node */
struct upar {
    double alpha, beta, gamma;
    int uns;       /* integer dtype is unsigned (set by unary()) */
    int tanh_gelu; /* Gelu approximate="tanh" */
};

typedef double (*ufn_f)(double x, const struct upar *p);
typedef int64_t (*ufn_i)(int64_t x, const struct upar *p);

static int dt_unsigned(enum ir_dtype dt)
{
    return dt == IR_U8 || dt == IR_U16 || dt == IR_U32 || dt == IR_U64;
}

/* y = f(x) over the whole tensor. ff handles float dtypes (and integer ones
 * when fi is NULL, e.g. Erf); fi handles integer dtypes exactly. */
static int unary(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                 void *const *out, ufn_f ff, ufn_i fi, const struct upar *p)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    struct upar q = p ? *p : (struct upar){0};
    enum ir_dtype dt = x->dtype, ot = y->dtype;
    int64_t cnt = ir_numel(x);
    q.uns = dt_unsigned(dt);
    if (dt == IR_F32 && ot == IR_F32) {
        const float *a = in[0];
        float *o = out[0];
        for (int64_t i = 0; i < cnt; i++)
            o[i] = (float)ff((double)a[i], &q);
    } else if (ir_dtype_is_float(dt) || !fi) {
        for (int64_t i = 0; i < cnt; i++)
            ir_store_f64(ot, out[0], i, ff(ir_load_f64(dt, in[0], i), &q));
    } else {
        for (int64_t i = 0; i < cnt; i++)
            ir_store_i64(ot, out[0], i, fi(ir_load_i64(dt, in[0], i), &q));
    }
    return ST_OK;
}

/* float32 in and out: set the buffers and return the element count, else -1
 * (the caller then falls back to the dtype-generic unary()) */
static int64_t f32_args(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                        void *const *out, const float **x, float **y)
{
    const struct ir_tensor *tx = ref_in(g, n, 0), *ty = ref_out(g, n, 0);
    if (!ty || !out[0] || tx->dtype != IR_F32 || ty->dtype != IR_F32)
        return -1;
    *x = in[0];
    *y = out[0];
    return ir_numel(tx);
}

/* ---- scalar functions ---------------------------------------------------- */

/* a libm function of one double as a scalar function */
#define LIBM_FN(name, fn) \
    static double name(double x, const struct upar *p) { (void)p; return fn(x); }

LIBM_FN(abs_f, fabs)
LIBM_FN(tanh_f, tanh)
LIBM_FN(erf_f, erf)
LIBM_FN(exp_f, exp)
LIBM_FN(log_f, log)
LIBM_FN(sqrt_f, sqrt)
LIBM_FN(sin_f, sin)
LIBM_FN(cos_f, cos)
LIBM_FN(tan_f, tan)
LIBM_FN(asin_f, asin)
LIBM_FN(acos_f, acos)
LIBM_FN(atan_f, atan)
LIBM_FN(sinh_f, sinh)
LIBM_FN(cosh_f, cosh)
LIBM_FN(asinh_f, asinh)
LIBM_FN(acosh_f, acosh)
LIBM_FN(atanh_f, atanh)
LIBM_FN(floor_f, floor)
LIBM_FN(ceil_f, ceil)
LIBM_FN(round_f, nearbyint) /* default rounding mode: half to even */

static double neg_f(double x, const struct upar *p) { (void)p; return -x; }
static double recip_f(double x, const struct upar *p) { (void)p; return 1.0 / x; }
/* NaN compares false everywhere below, so NaN inputs stay NaN */
static double relu_f(double x, const struct upar *p) { (void)p; return x < 0 ? 0.0 : x; }
static double leaky_f(double x, const struct upar *p) { return x < 0 ? p->alpha * x : x; }
static double elu_f(double x, const struct upar *p) { return x < 0 ? p->alpha * expm1(x) : x; }
static double thresh_f(double x, const struct upar *p) { return x > p->alpha ? x : 0.0; }
static double softsign_f(double x, const struct upar *p) { (void)p; return x / (1.0 + fabs(x)); }
static double sigmoid_f(double x, const struct upar *p) { (void)p; return 1.0 / (1.0 + exp(-x)); }

static double selu_f(double x, const struct upar *p)
{
    return x > 0 ? p->gamma * x : p->gamma * p->alpha * expm1(x);
}

static double celu_f(double x, const struct upar *p)
{
    return x > 0 ? x : p->alpha * expm1(x / p->alpha);
}

/* clamp(alpha*x + beta, 0, 1) */
static double hardsigmoid_f(double x, const struct upar *p)
{
    double v = p->alpha * x + p->beta;
    return v < 0 ? 0.0 : v > 1 ? 1.0 : v;
}

static double hardswish_f(double x, const struct upar *p)
{
    struct upar hs = {.alpha = 1.0 / 6.0, .beta = 0.5};
    (void)p;
    return x * hardsigmoid_f(x, &hs);
}

/* log(1 + e^x) without overflow for large x */
static double softplus_f(double x, const struct upar *p)
{
    (void)p;
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double gelu_f(double x, const struct upar *p)
{
    if (p->tanh_gelu) /* 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))) */
        return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    /* x * Phi(x); Phi via erfc, since 1 + erf(x/√2) cancels in the left tail (x < −5) */
    return 0.5 * x * erfc(-x * 0.7071067811865476);
}

static double sign_f(double x, const struct upar *p)
{
    (void)p;
    return x > 0 ? 1.0 : x < 0 ? -1.0 : x; /* keeps 0 and NaN */
}

/* integer forms: wrap like C unsigned arithmetic instead of overflowing */
static int64_t neg_i(int64_t x, const struct upar *p)
{
    (void)p;
    return (int64_t)(0 - (uint64_t)x);
}

static int64_t abs_i(int64_t x, const struct upar *p)
{
    return p->uns || x >= 0 ? x : (int64_t)(0 - (uint64_t)x);
}

static int64_t relu_i(int64_t x, const struct upar *p) { (void)p; return x < 0 ? 0 : x; }

static int64_t sign_i(int64_t x, const struct upar *p)
{
    if (p->uns)
        return x != 0;
    return (x > 0) - (x < 0);
}

/* ---- kernels ------------------------------------------------------------- */

REF_KERNEL(Identity)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    if (out[0])
        memcpy(out[0], in[0], (size_t)ir_numel(x) * ir_dtype_size(x->dtype));
    return ST_OK;
}

REF_KERNEL(Neg)
{
    const float *x;
    float *y;
    int64_t cnt = f32_args(g, n, in, out, &x, &y);
    if (cnt < 0)
        return unary(g, n, in, out, neg_f, neg_i, NULL);
    for (int64_t i = 0; i < cnt; i++)
        y[i] = -x[i];
    return ST_OK;
}

REF_KERNEL(Abs) { return unary(g, n, in, out, abs_f, abs_i, NULL); }

REF_KERNEL(Relu)
{
    const float *x;
    float *y;
    int64_t cnt = f32_args(g, n, in, out, &x, &y);
    if (cnt < 0)
        return unary(g, n, in, out, relu_f, relu_i, NULL);
    for (int64_t i = 0; i < cnt; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
    return ST_OK;
}

/* float attribute defaults are float32 values, as ONNX stores them */
REF_KERNEL(LeakyRelu)
{
    struct upar p = {.alpha = ir_attr_float(n, "alpha", (double)0.01f)};
    return unary(g, n, in, out, leaky_f, NULL, &p);
}

REF_KERNEL(Elu)
{
    struct upar p = {.alpha = ir_attr_float(n, "alpha", 1.0)};
    return unary(g, n, in, out, elu_f, NULL, &p);
}

REF_KERNEL(Selu)
{
    struct upar p = {
        .alpha = ir_attr_float(n, "alpha", 1.67326319217681884765625),
        .gamma = ir_attr_float(n, "gamma", 1.05070102214813232421875),
    };
    return unary(g, n, in, out, selu_f, NULL, &p);
}

REF_KERNEL(Celu)
{
    struct upar p = {.alpha = ir_attr_float(n, "alpha", 1.0)};
    return unary(g, n, in, out, celu_f, NULL, &p);
}

REF_KERNEL(ThresholdedRelu)
{
    struct upar p = {.alpha = ir_attr_float(n, "alpha", 1.0)};
    return unary(g, n, in, out, thresh_f, NULL, &p);
}

REF_KERNEL(Sigmoid)
{
    const float *x;
    float *y;
    int64_t cnt = f32_args(g, n, in, out, &x, &y);
    if (cnt < 0)
        return unary(g, n, in, out, sigmoid_f, NULL, NULL);
    for (int64_t i = 0; i < cnt; i++)
        y[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
    return ST_OK;
}

REF_KERNEL(HardSigmoid)
{
    struct upar p = {
        .alpha = ir_attr_float(n, "alpha", (double)0.2f),
        .beta = ir_attr_float(n, "beta", 0.5),
    };
    return unary(g, n, in, out, hardsigmoid_f, NULL, &p);
}

REF_KERNEL(HardSwish) { return unary(g, n, in, out, hardswish_f, NULL, NULL); }
REF_KERNEL(Softplus) { return unary(g, n, in, out, softplus_f, NULL, NULL); }
REF_KERNEL(Softsign) { return unary(g, n, in, out, softsign_f, NULL, NULL); }

REF_KERNEL(Tanh)
{
    const float *x;
    float *y;
    int64_t cnt = f32_args(g, n, in, out, &x, &y);
    if (cnt < 0)
        return unary(g, n, in, out, tanh_f, NULL, NULL);
    for (int64_t i = 0; i < cnt; i++)
        y[i] = (float)tanh((double)x[i]);
    return ST_OK;
}

REF_KERNEL(Erf)
{
    const float *x;
    float *y;
    int64_t cnt = f32_args(g, n, in, out, &x, &y);
    if (cnt < 0)
        return unary(g, n, in, out, erf_f, NULL, NULL); /* integer inputs via double too */
    for (int64_t i = 0; i < cnt; i++)
        y[i] = (float)erf((double)x[i]);
    return ST_OK;
}

REF_KERNEL(Gelu)
{
    struct upar p = {.tanh_gelu = strcmp(ir_attr_str(n, "approximate", "none"), "tanh") == 0};
    const float *x;
    float *y;
    int64_t cnt = f32_args(g, n, in, out, &x, &y);
    if (cnt < 0)
        return unary(g, n, in, out, gelu_f, NULL, &p);
    for (int64_t i = 0; i < cnt; i++)
        y[i] = (float)gelu_f((double)x[i], &p);
    return ST_OK;
}

REF_KERNEL(Exp)
{
    const float *x;
    float *y;
    int64_t cnt = f32_args(g, n, in, out, &x, &y);
    if (cnt < 0)
        return unary(g, n, in, out, exp_f, NULL, NULL);
    for (int64_t i = 0; i < cnt; i++)
        y[i] = (float)exp((double)x[i]);
    return ST_OK;
}

REF_KERNEL(Log) { return unary(g, n, in, out, log_f, NULL, NULL); }
REF_KERNEL(Sqrt) { return unary(g, n, in, out, sqrt_f, NULL, NULL); }
REF_KERNEL(Reciprocal) { return unary(g, n, in, out, recip_f, NULL, NULL); }
REF_KERNEL(Sin) { return unary(g, n, in, out, sin_f, NULL, NULL); }
REF_KERNEL(Cos) { return unary(g, n, in, out, cos_f, NULL, NULL); }
REF_KERNEL(Tan) { return unary(g, n, in, out, tan_f, NULL, NULL); }
REF_KERNEL(Asin) { return unary(g, n, in, out, asin_f, NULL, NULL); }
REF_KERNEL(Acos) { return unary(g, n, in, out, acos_f, NULL, NULL); }
REF_KERNEL(Atan) { return unary(g, n, in, out, atan_f, NULL, NULL); }
REF_KERNEL(Sinh) { return unary(g, n, in, out, sinh_f, NULL, NULL); }
REF_KERNEL(Cosh) { return unary(g, n, in, out, cosh_f, NULL, NULL); }
REF_KERNEL(Asinh) { return unary(g, n, in, out, asinh_f, NULL, NULL); }
REF_KERNEL(Acosh) { return unary(g, n, in, out, acosh_f, NULL, NULL); }
REF_KERNEL(Atanh) { return unary(g, n, in, out, atanh_f, NULL, NULL); }
REF_KERNEL(Floor) { return unary(g, n, in, out, floor_f, NULL, NULL); }
REF_KERNEL(Ceil) { return unary(g, n, in, out, ceil_f, NULL, NULL); }
REF_KERNEL(Round) { return unary(g, n, in, out, round_f, NULL, NULL); }
REF_KERNEL(Sign) { return unary(g, n, in, out, sign_f, sign_i, NULL); }

REF_KERNEL(Not)
{
    const uint8_t *x = in[0];
    uint8_t *y = out[0];
    int64_t cnt = ir_numel(ref_in(g, n, 0));
    for (int64_t i = 0; y && i < cnt; i++)
        y[i] = !x[i];
    return ST_OK;
}

REF_KERNEL(IsNaN)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    uint8_t *y = out[0];
    int64_t cnt = ir_numel(x);
    for (int64_t i = 0; y && i < cnt; i++)
        y[i] = isnan(ir_load_f64(x->dtype, in[0], i)) != 0;
    return ST_OK;
}

REF_KERNEL(IsInf)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int pos = ir_attr_int(n, "detect_positive", 1) != 0;
    int neg = ir_attr_int(n, "detect_negative", 1) != 0;
    uint8_t *y = out[0];
    int64_t cnt = ir_numel(x);
    for (int64_t i = 0; y && i < cnt; i++) {
        double v = ir_load_f64(x->dtype, in[0], i);
        y[i] = isinf(v) && (v > 0 ? pos : neg);
    }
    return ST_OK;
}

/* ---- Cast ---------------------------------------------------------------- */

/* Round v to the nearest (ties to even) float representable in a binary
 * format with `bits` significand bits and minimum normal exponent emin, so a
 * double reaches float16/bfloat16 with one rounding instead of two (via float). */
static float round_to_format(double v, int bits, int emin)
{
    if (!isfinite(v) || v == 0)
        return (float)v;
    int e = ilogb(v);
    if (e < emin)
        e = emin; /* subnormal range: fixed quantum */
    double q = nearbyint(ldexp(v, bits - 1 - e));
    return (float)ldexp(q, e - (bits - 1)); /* exact, or inf beyond float range */
}

/* store a double into float dtype dt with a single rounding */
static void store_float_once(enum ir_dtype dt, void *p, int64_t i, double v)
{
    if (dt == IR_F16)
        ((uint16_t *)p)[i] = ir_f32_to_f16(round_to_format(v, 11, -14));
    else if (dt == IR_BF16)
        ((uint16_t *)p)[i] = ir_f32_to_bf16(round_to_format(v, 8, -126));
    else
        ir_store_f64(dt, p, i, v);
}

/* float32 destination from a 64-bit integer: one rounding, not two via double */
static float i64_to_f32(enum ir_dtype st, const void *p, int64_t i)
{
    if (st == IR_U64)
        return (float)((const uint64_t *)p)[i];
    return (float)ir_load_i64(st, p, i);
}

/* Cast between any two held dtypes. Float -> integer truncates toward zero
 * (saturating, NaN -> 0; ONNX leaves out-of-range undefined); integer ->
 * integer wraps; anything -> bool is "nonzero" (NaN is true, as in numpy). */
REF_KERNEL(Cast)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    enum ir_dtype st = x->dtype, dt = y->dtype;
    int64_t cnt = ir_numel(x);
    int from_float = ir_dtype_is_float(st), to_float = ir_dtype_is_float(dt);
    if (st == dt) {
        memcpy(out[0], in[0], (size_t)cnt * ir_dtype_size(st));
    } else if (st == IR_F32 && dt == IR_F16) { /* fast paths around float32 */
        for (int64_t i = 0; i < cnt; i++)
            ((uint16_t *)out[0])[i] = ir_f32_to_f16(((const float *)in[0])[i]);
    } else if (st == IR_F16 && dt == IR_F32) {
        for (int64_t i = 0; i < cnt; i++)
            ((float *)out[0])[i] = ir_f16_to_f32(((const uint16_t *)in[0])[i]);
    } else if (st == IR_F32 && dt == IR_BF16) {
        for (int64_t i = 0; i < cnt; i++)
            ((uint16_t *)out[0])[i] = ir_f32_to_bf16(((const float *)in[0])[i]);
    } else if (st == IR_BF16 && dt == IR_F32) {
        for (int64_t i = 0; i < cnt; i++)
            ((float *)out[0])[i] = ir_bf16_to_f32(((const uint16_t *)in[0])[i]);
    } else if (from_float || to_float) {
        int wide_int = st == IR_I64 || st == IR_U64;
        for (int64_t i = 0; i < cnt; i++) {
            if (wide_int && dt == IR_F32)
                ((float *)out[0])[i] = i64_to_f32(st, in[0], i);
            else if (to_float)
                store_float_once(dt, out[0], i, ir_load_f64(st, in[0], i));
            else
                ir_store_f64(dt, out[0], i, ir_load_f64(st, in[0], i));
        }
    } else { /* integer/bool -> integer/bool */
        for (int64_t i = 0; i < cnt; i++)
            ir_store_i64(dt, out[0], i, ir_load_i64(st, in[0], i));
    }
    return ST_OK;
}

/* ---- Clip, Dropout ------------------------------------------------------- */

/* Clip(x, min?, max?): x < min -> min, then x > max -> max (so min > max gives
 * max everywhere, as ONNX specifies); NaN passes through. */
REF_KERNEL(Clip)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    enum ir_dtype dt = x->dtype;
    const void *lo = n->n_in > 1 ? in[1] : NULL, *hi = n->n_in > 2 ? in[2] : NULL;
    int64_t cnt = ir_numel(x);
    if (!out[0])
        return ST_OK;
    if (ir_dtype_is_float(dt)) {
        double l = lo ? ir_load_f64(dt, lo, 0) : -HUGE_VAL;
        double h = hi ? ir_load_f64(dt, hi, 0) : HUGE_VAL;
        for (int64_t i = 0; i < cnt; i++) {
            double v = ir_load_f64(dt, in[0], i);
            v = v < l ? l : v;
            ir_store_f64(dt, out[0], i, v > h ? h : v);
        }
    } else if (dt_unsigned(dt)) {
        uint64_t l = lo ? (uint64_t)ir_load_i64(dt, lo, 0) : 0;
        uint64_t h = hi ? (uint64_t)ir_load_i64(dt, hi, 0) : UINT64_MAX;
        for (int64_t i = 0; i < cnt; i++) {
            uint64_t v = (uint64_t)ir_load_i64(dt, in[0], i);
            v = v < l ? l : v;
            ir_store_i64(dt, out[0], i, (int64_t)(v > h ? h : v));
        }
    } else {
        int64_t l = lo ? ir_load_i64(dt, lo, 0) : INT64_MIN;
        int64_t h = hi ? ir_load_i64(dt, hi, 0) : INT64_MAX;
        for (int64_t i = 0; i < cnt; i++) {
            int64_t v = ir_load_i64(dt, in[0], i);
            v = v < l ? l : v;
            ir_store_i64(dt, out[0], i, v > h ? h : v);
        }
    }
    return ST_OK;
}

/* inference-mode Dropout (the shape rule rejected training_mode=true):
 * y = x, and the optional mask keeps everything */
REF_KERNEL(Dropout)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *m = ref_out(g, n, 1);
    int64_t cnt = ir_numel(x);
    if (out[0])
        memcpy(out[0], in[0], (size_t)cnt * ir_dtype_size(x->dtype));
    if (m && n->n_out > 1 && out[1])
        for (int64_t i = 0; i < cnt; i++)
            ir_store_i64(m->dtype, out[1], i, 1);
    return ST_OK;
}
