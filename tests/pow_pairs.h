/* pow_pairs.h — every (x, p) pair of C11 pow's special values, for the Pow tests of
 * test_cpu_target.c and test_llvm.c: zeros and infinities of either sign, negative
 * bases with integer and fractional exponents, +-1 against infinite exponents, NaN,
 * a subnormal, the largest odd float integer and an even one past it, and values near 1. */
#ifndef PDC_POW_PAIRS_H
#define PDC_POW_PAIRS_H

#include <math.h>

static const float pow_special_values[] = {
    0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, 2.0f, -2.0f, 0.5f, -0.5f, 3.0f,
    -3.0f, 1.5f, -1.5f, 1e-40f, 0.4f, 7e-3f, 16777216.0f, -16777215.0f, 0.99999994f,
    1.0000001f, 90.0f};

enum {
    POW_NV = sizeof pow_special_values / sizeof pow_special_values[0],
    POW_PAIRS = POW_NV * POW_NV
};

/* x[i], p[i]: pair i (x by row, p by column) */
static inline void pow_pairs(float *x, float *p)
{
    for (int i = 0; i < POW_PAIRS; i++)
        x[i] = pow_special_values[i / POW_NV], p[i] = pow_special_values[i % POW_NV];
}

#endif
