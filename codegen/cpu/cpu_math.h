/* cpu_math.h — exp, erf, erfc and pow for the cpu target's elementwise loops.
 *
 * glibc's erff/erfcf take 20-60 ns an element (a branch per interval, no
 * vector form), and the GELU of a CI function and its VJP evaluate them on
 * every hidden unit of every component. These versions are branch-free
 * double-precision formulas, inline, so a loop over them vectorises; they are
 * accurate to a few 1e-9 relative, so after the final rounding to float the
 * results are within one ulp of the reference's double libm (and usually equal).
 *
 * The polynomials are near-minimax fits (mpmath.chebyfit, 40 digits), with the
 * fit's worst relative error, checked in double on a fine grid, given for each.
 * Each Horner step is one fused multiply-add: exactly rounded, so every ISA clone
 * (cpu_impl.h; the default one calls libm's fma) and the llvm target's kernels, on
 * the host and as PTX (llvm.fma), compute the same bits; with FMA units it takes
 * half the instructions of a multiply and an add. */
#ifndef PDC_CPU_MATH_H
#define PDC_CPU_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^a for a double a, |a| clamped to 700 so that 2^k below is a normal double
 * (NaN passes through); meant for float results, where that clamp is far past
 * overflow and underflow. a = k ln2 + r with |r| <= ln2/2; e^r by a degree-6
 * fit (worst relative error 2.5e-9). */
static inline double cpu_exp(double a)
{
    const double shifter = 0x1.8p52; /* adding it rounds to an integer, kept in the low bits */
    a = a < -700.0 ? -700.0 : a > 700.0 ? 700.0 : a;
    double y = a * 1.4426950408889634 + shifter, kd = y - shifter, r = a - kd * 0.6931471805599453;
    uint64_t ybits, sbits, kbits;
    memcpy(&ybits, &y, 8);
    memcpy(&sbits, &shifter, 8);
    kbits = (ybits - sbits + 1023u) << 52; /* the double 2^k */
    double scale;
    memcpy(&scale, &kbits, 8);
    double p = 0.0013941108433972674;
    p = fma(p, r, 0.008375126398153335);
    p = fma(p, r, 0.04166635289677516);
    p = fma(p, r, 0.16666415514653277);
    p = fma(p, r, 0.5000000047117757);
    p = fma(p, r, 1.000000037716214);
    p = fma(p, r, 1.0);
    return p * scale;
}

/* erfc(z) for z >= 0 (inf and NaN pass through): with T = 1 / (1 + z/2),
 * erfc(z) = T exp(-z^2 + g(T)), g smooth on T in (0, 1]; degree-12 fit of g
 * (worst relative error of erfc on [0, 10]: 9.1e-9) */
static inline double cpu_erfc_pos(double z)
{
    double t = 1.0 / (1.0 + 0.5 * z), g = 0.06308584359433057;
    g = fma(g, t, -0.5567954856692163);
    g = fma(g, t, 1.9822865480879337);
    g = fma(g, t, -3.696915255871211);
    g = fma(g, t, 3.8225773902430333);
    g = fma(g, t, -2.1227180445386407);
    g = fma(g, t, 0.7125918327995515);
    g = fma(g, t, -0.3379492491978383);
    g = fma(g, t, -0.05647743427273634);
    g = fma(g, t, 0.08070750305818251);
    g = fma(g, t, 0.37512063167248894);
    g = fma(g, t, 0.9999978343568101);
    g = fma(g, t, -1.2655121170707262);
    return t * cpu_exp(g - z * z);
}

/* erf(x) for |x| <= 1/2: x P(x^2), degree 5 (worst relative error 1.2e-11) */
static inline double cpu_erf_small(double x)
{
    double s = x * x, p = -0.0007694534279142308;
    p = fma(p, s, 0.005200413724335493);
    p = fma(p, s, -0.026863143032249386);
    p = fma(p, s, 0.11283774013179539);
    p = fma(p, s, -0.37612638525650693);
    p = fma(p, s, 1.1283791670824095);
    return x * p;
}

/* erf(x): the small-x series, else 1 - erfc(|x|) with x's sign (erfc <= 0.48
 * there, so the subtraction loses nothing). Both sides are computed and one
 * is picked, which is what lets a loop over it vectorise. */
static inline double cpu_erf(double x)
{
    double z = x < 0 ? -x : x, big = 1.0 - cpu_erfc_pos(z), small = cpu_erf_small(x);
    return z <= 0.5 ? small : x < 0 ? -big : big;
}

/* erfc(t) for any t: erfc(t) = 2 - erfc(-t) below 0 (no cancellation: >= 1) */
static inline double cpu_erfc(double t)
{
    double e = cpu_erfc_pos(t < 0 ? -t : t);
    return t < 0 ? 2.0 - e : e;
}

/* log(a) for a finite a > 0 that is a float widened to double (so never subnormal
 * as a double): a = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s) with
 * s = (m - 1)/(m + 1), |s| <= 0.1716: the series to s^17 (truncation below 4e-14
 * relative). m - 1 is exact, so the relative error stays small near a = 1. */
static inline double cpu_log_pos(double a)
{
    uint64_t bits, mbits;
    memcpy(&bits, &a, 8);
    double e = (double)(int64_t)(bits >> 52) - 1023.0;
    mbits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &mbits, 8);
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    e = big ? e + 1.0 : e;
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = 1.0 / 17;
    p = fma(p, s2, 1.0 / 15);
    p = fma(p, s2, 1.0 / 13);
    p = fma(p, s2, 1.0 / 11);
    p = fma(p, s2, 1.0 / 9);
    p = fma(p, s2, 1.0 / 7);
    p = fma(p, s2, 1.0 / 5);
    p = fma(p, s2, 1.0 / 3);
    p = fma(p, s2, 1.0);
    return e * 0.6931471805599453 + 2.0 * s * p;
}

/* x^p as the reference's double pow rounded to float: within one ulp, with C11
 * F.10.4.4's special cases, branch-free so a loop vectorises (glibc's pow is a
 * scalar call of ~20 ns: an annealed p makes every importance term one). The
 * exponents autodiff and the losses produce most (2, 1, 0, -1, 1/2) give exactly
 * what the reference rounds to: x·x, x, 1, 1/x (double rounding of a division is
 * innocuous from 53 to 24 bits), sqrt (+0 for -0, +inf for -inf). Else
 * e^(p log|x|): p log|x| is within ~1e-14 relative, e^ within 2.5e-9. */
static inline float cpu_pow(float xf, float pf)
{
    double x = xf, p = pf, ax = fabs(x);
    double fin = ax > 0.0 && ax < HUGE_VAL ? ax : 1.0; /* keeps the log's input in range */
    double r = cpu_exp(p * cpu_log_pos(fin));
    int zero_or_inf = ax == 0.0 || ax == HUGE_VAL;
    r = zero_or_inf ? ((ax == 0.0) == (p < 0.0) ? HUGE_VAL : 0.0) : r;
    int pint = p == floor(p), podd = pint && 0.5 * p != floor(0.5 * p);
    r = podd && signbit(x) ? -r : r;
    r = x < 0.0 && !zero_or_inf && !pint ? (double)NAN : r;
    r = x != x || p != p ? (double)NAN : r;
    r = x == 1.0 || p == 0.0 || (x == -1.0 && fabs(p) == HUGE_VAL) ? 1.0 : r;
    float fr = (float)r;
    fr = pf == 2.0f ? xf * xf : pf == 1.0f ? xf : pf == -1.0f ? 1.0f / xf : fr;
    fr = pf == 0.5f ? (xf == -INFINITY ? INFINITY : sqrtf(xf) + 0.0f) : fr;
    return pf == 0.0f ? 1.0f : fr;
}

#endif
