/* cpu_target_fixture.h — shared by test_cpu_target.c and test_cpu_gemm.c: nodes built
 * on random or given constants, run on ref and on the cpu target with 1, 2 and 3
 * threads (which must agree bit for bit), compared with a tolerance per op family;
 * whole programs compared on both targets. Everything is static inline (harness.h
 * style) so each test file uses what it needs. */
#ifndef PDC_CPU_TARGET_FIXTURE_H
#define PDC_CPU_TARGET_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_impl.h"
#include "build.h"
#include "exec.h"
#include "harness.h"
#include "ir.h"
#include "node_attrs.h"
#include "onnx.h"
#include "pass.h"
#include "target.h"

enum tol { EXACT, GEMM, ULP, REDUCE, LOGSM };

/* ---- graph builder --------------------------------------------------------- */

struct ctx {
    struct ir_graph *g;
    int nt;
    uint64_t rng;
};

static inline void ctx_init(struct ctx *c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->g = ir_graph_new();
    c->g->opset = 20;
    c->rng = seed * 0x9E3779B97F4A7C15ull + 1;
}

static inline float urand(struct ctx *c, float lo, float hi) /* xorshift64* */
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    uint64_t r = c->rng * 2685821657736338717ull;
    return lo + (hi - lo) * (float)((double)(r >> 40) / (double)(1ull << 24));
}

static inline uint32_t cst(struct ctx *c, enum ir_dtype dt, int rank, const int64_t *dims,
                    const void *data)
{
    return const_build(c->g, &c->nt, dt, rank, dims, data);
}

static inline int64_t count(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    return n;
}

/* float32 constant with values uniform in [lo, hi) */
static inline uint32_t frand(struct ctx *c, int rank, const int64_t *dims, float lo, float hi)
{
    int64_t n = count(rank, dims);
    float *v = malloc((size_t)(n + 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = urand(c, lo, hi);
    uint32_t t = cst(c, IR_F32, rank, dims, v);
    free(v);
    return t;
}

static inline uint32_t brand(struct ctx *c, int rank, const int64_t *dims)
{
    int64_t n = count(rank, dims);
    uint8_t *v = malloc((size_t)(n + 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = urand(c, 0, 1) < 0.5f;
    uint32_t t = cst(c, IR_BOOL, rank, dims, v);
    free(v);
    return t;
}

/* op(in...) with n_out outputs and attrs, shapes inferred; NULL (and a message) when
 * inference refuses it */
static inline struct ir_node *node_n(struct ctx *c, enum ir_op op, int n_in, const uint32_t *in,
                                     int n_out, const struct at *attrs)
{
    uint32_t o[4];
    struct ir_node *n = node_build(c->g, &c->nt, op, n_in, in, n_out, attrs, o);
    struct diag d = {0};
    if (ir_infer_node(c->g, n, &d)) {
        fprintf(stderr, "  %s: %s\n", ir_ops[op].name, d.msg);
        return NULL;
    }
    return n;
}

static inline struct ir_node *node(struct ctx *c, enum ir_op op, int n_in, const uint32_t *in,
                                   const struct at *attrs)
{
    return node_n(c, op, n_in, in, 1, attrs);
}

/* ---- comparison ------------------------------------------------------------- */

/* distance in representable floats (0 for equal values, +0 vs -0 included) */
static inline int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t ka = ia < 0 ? (int64_t)INT32_MIN - ia : ia, kb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return ka > kb ? ka - kb : kb - ka;
}

/* cpu result `got` vs reference `want`; scale: the GEMM magnitude per element */
static inline int agree(enum tol tol, float got, float want, double scale)
{
    if (tol == EXACT) /* the bits, NaN payloads and signed zeros included */
        return memcmp(&got, &want, 4) == 0;
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    switch (tol) {
    case EXACT: return 0; /* above */
    case GEMM: return fabs((double)got - (double)want) <= 1e-5 * scale + 1e-30;
    case ULP: return ulps(got, want) <= 2;
    case REDUCE: return fabs((double)got - (double)want) <= 1e-6 * fabs((double)want) + 1e-30;
    /* x - m - log s: s's few 1e-9 relative error is an absolute one after the log */
    case LOGSM: return ulps(got, want) <= 2 || fabs((double)got - (double)want) <= 1e-7;
    }
    return 0;
}

/* max |x| over a float32 tensor (the GEMM scale) */
static inline double maxabs(const struct ir_tensor *t)
{
    double m = 0;
    for (int64_t i = 0; t && i < ir_numel(t); i++)
        m = fmax(m, fabs((double)((const float *)t->data)[i]));
    return m;
}

static int cases_run;

/* Run n on ref and on cpu with 1, 2 and 3 threads: the thread counts must agree
 * bit for bit, and cpu must agree with ref within tol. */
static inline void compare_node(struct ctx *c, const struct ir_node *n, enum tol tol, const char *what)
{
    if (!n) {
        test_failed_ = 1;
        return;
    }
    const struct ir_tensor *ty = &c->g->t[n->out[0]];
    int64_t cnt = ir_numel(ty);
    size_t nb = (size_t)(cnt + 1) * ir_dtype_size(ty->dtype);
    void *in[8] = {0}, *want = calloc(1, nb), *got[3];
    for (uint32_t i = 0; i < n->n_in; i++)
        in[i] = n->in[i] == IR_NONE ? NULL : c->g->t[n->in[i]].data;
    int st = cg_ref.run(c->g, n, in, &want);
    for (int k = 0; k < 3; k++) {
        got[k] = calloc(1, nb);
        cpu_set_threads(k + 1);
        st |= cg_cpu.run(c->g, n, in, &got[k]);
    }
    cpu_set_threads(0);
    cases_run++;
    if (st) {
        fprintf(stderr, "  %s: run failed (%d)\n", what, st);
        test_failed_ = 1;
    }
    if (memcmp(got[0], got[1], nb) || memcmp(got[0], got[2], nb)) {
        fprintf(stderr, "  %s: results differ between thread counts\n", what);
        test_failed_ = 1;
    }
    double scale = 1;
    if (tol == GEMM) { /* K max|A| max|B| bounds the product's terms; 1 for beta C */
        const struct ir_tensor *ta = &c->g->t[n->in[0]];
        int trA = ta->rank >= 2 && ir_attr_int(n, "transA", 0); /* Gemm's, or a built MatMul's */
        int64_t K = ta->rank == 1 ? ta->dims[0] : ta->dims[ta->rank - 1 - trA];
        scale = (double)(K + 1) * maxabs(ta) * maxabs(&c->g->t[n->in[1]]) + 1;
    }
    int bad = 0;
    for (int64_t i = 0; i < cnt; i++) {
        float gv, wv;
        if (ir_dtype_size(ty->dtype) != 4)
            break;
        memcpy(&gv, (char *)got[0] + i * 4, 4);
        memcpy(&wv, (char *)want + i * 4, 4);
        if (!agree(tol, gv, wv, scale) && bad++ < 3)
            fprintf(stderr, "  %s: [%lld] cpu %.9g ref %.9g (%lld ulps)\n", what, (long long)i,
                    (double)gv, (double)wv, (long long)ulps(gv, wv));
    }
    if (ir_dtype_size(ty->dtype) != 4 && memcmp(got[0], want, nb))
        bad = 1;
    if (bad) {
        fprintf(stderr, "  %s: %d of %lld elements differ\n", what, bad, (long long)cnt);
        test_failed_ = 1;
    }
    free(want);
    for (int k = 0; k < 3; k++)
        free(got[k]);
}

/* ---- whole programs ---------------------------------------------------------------------- */

static inline void free_values(struct ir_value *v, int n)
{
    for (int i = 0; v && i < n; i++)
        ir_value_free(&v[i]);
    free(v);
}

/* run g on both targets and compare every float32 output within rtol of its max */
static inline void compare_program(const struct ir_graph *g, const struct ir_value *in, int nin,
                            double rtol, const char *what)
{
    struct diag d = {0};
    struct ir_value *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    int st = rt_run(g, &cg_ref, in, nin, &a, &na, &d);
    if (!st)
        st = rt_run(g, &cg_cpu, in, nin, &b, &nb, &d);
    CHECK_EQ(st, ST_OK);
    if (st)
        fprintf(stderr, "  %s: %s\n", what, d.msg);
    CHECK_EQ(na, nb);
    for (int i = 0; !st && i < na && i < nb; i++) {
        int64_t cnt = ir_value_numel(&a[i]);
        double m = 0;
        for (int64_t k = 0; k < cnt; k++)
            m = fmax(m, fabs((double)((float *)a[i].data)[k]));
        CHECK_EQ(a[i].dtype, IR_F32);
        CHECK_TENSOR((float *)b[i].data, (float *)a[i].data, (long)cnt, rtol * m + 1e-30, 0);
    }
    free_values(a, na);
    free_values(b, nb);
}

#endif
