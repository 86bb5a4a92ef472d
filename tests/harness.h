/* harness.h — a tiny test harness. Each test file defines TEST(name) functions,
 * lists them in an array and ends with TEST_MAIN(list). `./test_x name…` runs the
 * named tests only. Checks print the expression text and both values. */
#ifndef PDC_HARNESS_H
#define PDC_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
    const char *name;
    void (*fn)(void);
};

static int test_failed_;

#define TEST(name) static void test_##name(void)
#define T(name) {#name, test_##name}

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            test_failed_ = 1;                                                        \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                       \
    do {                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                  \
        if (a_ != b_) {                                                                      \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld vs %lld\n", __FILE__, __LINE__, #a, \
                    #b, a_, b_);                                                             \
            test_failed_ = 1;                                                                \
        }                                                                                    \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                  \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b);                                             \
        if (!(fabs(a_ - b_) <= (tol))) {                                                       \
            fprintf(stderr, "  %s:%d: %s ~ %s failed: %.9g vs %.9g (tol %g)\n", __FILE__,       \
                    __LINE__, #a, #b, a_, b_, (double)(tol));                                  \
            test_failed_ = 1;                                                                  \
        }                                                                                      \
    } while (0)

#define CHECK_STR_CONTAINS(s, sub)                                                          \
    do {                                                                                    \
        const char *s_ = (s);                                                               \
        if (!s_ || !strstr(s_, (sub))) {                                                    \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
                    s_ ? s_ : "(null)", (sub));                                             \
            test_failed_ = 1;                                                               \
        }                                                                                   \
    } while (0)

/* compare float arrays; prints the first few mismatches (llm.c check_tensor style) */
static inline int check_tensor_(const float *got, const float *want, long n, double atol,
                                double rtol, const char *what, const char *file, int line)
{
    int bad = 0;
    double maxd = 0;
    for (long i = 0; i < n; i++) {
        double dlt = fabs((double)got[i] - (double)want[i]);
        if (dlt > maxd)
            maxd = dlt;
        if (!(dlt <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 5)
                fprintf(stderr, "  %s:%d: %s[%ld] = %.9g, want %.9g NOT OK\n", file, line, what, i,
                        (double)got[i], (double)want[i]);
            bad++;
        }
    }
    if (bad) {
        fprintf(stderr, "  %s:%d: %s: %d of %ld differ, max |diff| %.3g\n", file, line, what, bad,
                n, maxd);
        test_failed_ = 1;
    }
    return bad == 0;
}
#define CHECK_TENSOR(got, want, n, atol, rtol) \
    check_tensor_((got), (want), (n), (atol), (rtol), #got, __FILE__, __LINE__)

#define TEST_MAIN(list)                                                                 \
    int main(int argc, char **argv)                                                     \
    {                                                                                   \
        int nfail = 0, nrun = 0;                                                        \
        for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {                   \
            int want = argc < 2;                                                        \
            for (int a = 1; a < argc; a++)                                              \
                if (strcmp(argv[a], list[i].name) == 0)                                 \
                    want = 1;                                                           \
            if (!want)                                                                  \
                continue;                                                               \
            test_failed_ = 0;                                                           \
            list[i].fn();                                                               \
            nrun++;                                                                     \
            printf("%-40s %s\n", list[i].name, test_failed_ ? "FAIL" : "ok");           \
            nfail += test_failed_;                                                      \
        }                                                                               \
        printf("%d passed, %d failed\n", nrun - nfail, nfail);                          \
        return nfail ? 1 : 0;                                                           \
    }

#endif
