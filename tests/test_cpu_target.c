/* test_cpu_target.c — the cpu target (codegen/cpu/) against the reference.
 *
 * Every op the cpu target implements runs on random inputs of several shapes
 * (broadcasting, batched and 1-D MatMul, every Gemm attribute combination, K=1,
 * empty dims) on both targets. Tolerance per family: bit-identical where the
 * cpu kernel does the reference's float32 arithmetic (elementwise arithmetic,
 * selection, squashing, single-block reductions, K=1 products); 1e-5 of the
 * magnitude for GEMMs; 2 ulps for the transcendental functions (the cpu
 * target's exp/erf/GELU/sigmoid are within 1, logf and tanhf within 2). Each
 * case also runs on 1, 2 and 3 threads, which must agree bit for bit. Two
 * whole programs (an ONNX conformance model and a small MLP with its
 * gradients) run on both targets. Built without OpenBLAS the cpu target
 * delegates everything, and the same checks hold trivially. */
#include <stdint.h>

#include "cpu/cpu_impl.h"
#include "build.h"
#include "exec.h"
#include "harness.h"
#include "ir.h"
#include "onnx.h"
#include "pass.h"
#include "pow_pairs.h"
#include "target.h"

enum tol { EXACT, GEMM, ULP, REDUCE, LOGSM };

/* ---- graph builder --------------------------------------------------------- */

struct ctx {
    struct ir_graph *g;
    int nt;
    uint64_t rng;
};

static void ctx_init(struct ctx *c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->g = ir_graph_new();
    c->g->opset = 20;
    c->rng = seed * 0x9E3779B97F4A7C15ull + 1;
}

static float urand(struct ctx *c, float lo, float hi) /* xorshift64* */
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    uint64_t r = c->rng * 2685821657736338717ull;
    return lo + (hi - lo) * (float)((double)(r >> 40) / (double)(1ull << 24));
}

static uint32_t cst(struct ctx *c, enum ir_dtype dt, int rank, const int64_t *dims,
                    const void *data)
{
    char name[32];
    snprintf(name, sizeof name, "t%d", c->nt++);
    uint32_t t = ir_tensor_new(c->g, name);
    ir_tensor_set_const(c->g, t, dt, rank, dims, data);
    return t;
}

static int64_t count(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    return n;
}

/* float32 constant with values uniform in [lo, hi) */
static uint32_t frand(struct ctx *c, int rank, const int64_t *dims, float lo, float hi)
{
    int64_t n = count(rank, dims);
    float *v = malloc((size_t)(n + 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = urand(c, lo, hi);
    uint32_t t = cst(c, IR_F32, rank, dims, v);
    free(v);
    return t;
}

static uint32_t brand(struct ctx *c, int rank, const int64_t *dims)
{
    int64_t n = count(rank, dims);
    uint8_t *v = malloc((size_t)(n + 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = urand(c, 0, 1) < 0.5f;
    uint32_t t = cst(c, IR_BOOL, rank, dims, v);
    free(v);
    return t;
}

struct at {
    const char *name;
    int type; /* IR_ATTR_INT / FLOAT / STRING; 0 ends the list */
    int64_t i;
    double f;
    const char *s;
};

static struct ir_node *node(struct ctx *c, enum ir_op op, int n_in, const uint32_t *in,
                            const struct at *attrs)
{
    char name[32];
    snprintf(name, sizeof name, "o%d", c->nt++);
    uint32_t o = ir_tensor_new(c->g, name);
    uint32_t id = ir_node_new(c->g, op, NULL, (uint32_t)n_in, in, 1, &o);
    struct ir_node *n = &c->g->n[id];
    int na = 0;
    while (attrs && attrs[na].type)
        na++;
    n->attr = ir_arena_alloc(c->g->arena, (size_t)(na + 1) * sizeof *n->attr);
    n->n_attr = (uint32_t)na;
    for (int k = 0; k < na; k++) {
        n->attr[k].name = attrs[k].name;
        n->attr[k].type = (enum ir_attr_type)attrs[k].type;
        n->attr[k].i = attrs[k].i;
        n->attr[k].f = attrs[k].f;
        n->attr[k].s = attrs[k].s;
    }
    struct diag d = {0};
    if (ir_infer_node(c->g, n, &d)) {
        fprintf(stderr, "  %s: %s\n", ir_ops[op].name, d.msg);
        return NULL;
    }
    return n;
}

/* ---- comparison ------------------------------------------------------------- */

/* distance in representable floats (0 for equal values, +0 vs -0 included) */
static int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t ka = ia < 0 ? (int64_t)INT32_MIN - ia : ia, kb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return ka > kb ? ka - kb : kb - ka;
}

/* cpu result `got` vs reference `want`; scale: the GEMM magnitude per element */
static int agree(enum tol tol, float got, float want, double scale)
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
static double maxabs(const struct ir_tensor *t)
{
    double m = 0;
    for (int64_t i = 0; t && i < ir_numel(t); i++)
        m = fmax(m, fabs((double)((const float *)t->data)[i]));
    return m;
}

static int cases_run;

/* Run n on ref and on cpu with 1, 2 and 3 threads: the thread counts must agree
 * bit for bit, and cpu must agree with ref within tol. */
static void compare_node(struct ctx *c, const struct ir_node *n, enum tol tol, const char *what)
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

/* ---- MatMul and Gemm ---------------------------------------------------------- */

struct mm_case {
    int ra, rb;
    int64_t da[4], db[4];
};

TEST(matmul_shapes)
{
    static const struct mm_case cases[] = {
        {2, 2, {2, 3}, {3, 4}},                 /* tiny: direct loop */
        {2, 2, {64, 40}, {40, 33}},             /* sgemm */
        {3, 2, {5, 64, 40}, {40, 33}},          /* B shared: batch folds into M */
        {3, 3, {5, 64, 40}, {5, 40, 33}},       /* batched sgemm */
        {4, 3, {2, 1, 16, 40}, {3, 40, 20}},    /* broadcast batch on both sides */
        {3, 3, {1, 64, 40}, {6, 40, 8}},        /* A broadcast over B's batch */
        {3, 3, {20, 300, 1}, {20, 1, 16}},      /* K = 1: the CI functions' outer products */
        {3, 3, {20, 1, 300}, {20, 300, 16}},    /* M = 1 */
        {3, 3, {20, 300, 16}, {20, 16, 1}},     /* N = 1 */
        {3, 3, {20, 4000, 1}, {1, 1, 16}},      /* K = 1, big enough to thread */
        {3, 3, {7, 5, 3}, {7, 3, 2}},           /* tiny batched */
        {1, 2, {40}, {40, 7}},                  /* 1-D operands */
        {2, 1, {3, 40}, {40}},
        {1, 1, {40}, {40}},
        {3, 1, {4, 5, 40}, {40}},
        {1, 3, {40}, {2, 40, 6}},
        {2, 2, {0, 5}, {5, 3}},                 /* empty dims */
        {2, 2, {3, 0}, {0, 4}},                 /* K = 0: zeros */
        {3, 2, {2, 0, 4}, {4, 3}},
        {2, 2, {4, 5}, {5, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct mm_case *m = &cases[i];
        struct ctx c;
        ctx_init(&c, i);
        uint32_t in[2] = {frand(&c, m->ra, m->da, -1, 1), frand(&c, m->rb, m->db, -1, 1)};
        char what[64];
        snprintf(what, sizeof what, "MatMul case %zu", i);
        compare_node(&c, node(&c, IR_OP_MatMul, 2, in, NULL), GEMM, what);
        ir_graph_free(c.g);
    }
}

/* a built program's MatMul reading A and/or B transposed in their last two dims
 * (pdc's transA / transB, gemm_fold.c): every path of the cpu kernel, against ref */
TEST(matmul_transposed_operands)
{
    static const struct { struct mm_case m; int ta, tb; } cases[] = {
        {{3, 3, {5, 40, 64}, {5, 40, 33}}, 1, 0},    /* batched sgemm, Aᵀ */
        {{3, 3, {5, 64, 40}, {5, 33, 40}}, 0, 1},    /* Bᵀ */
        {{3, 2, {4, 40, 64}, {33, 40}}, 1, 1},       /* both, B 2-D */
        {{4, 3, {2, 1, 40, 16}, {3, 40, 20}}, 1, 0}, /* broadcast batch */
        {{3, 3, {20, 300, 16}, {20, 300, 1}}, 1, 0}, /* N = 1: a CI layer's dW2 = hᵀ dy */
        {{3, 3, {20, 300, 1}, {20, 300, 16}}, 1, 0}, /* M = 1: its dW1 = xᵀ dpre */
        {{3, 3, {7, 3, 5}, {7, 2, 3}}, 1, 1},        /* tiny: the direct loop */
        {{3, 3, {6, 1, 9}, {6, 4, 1}}, 1, 1},        /* K = 1 */
        {{2, 2, {1300, 100}, {1300, 70}}, 1, 0},     /* dW = Xᵀ·dY: K in 3 blocks */
        {{2, 2, {1300, 100}, {70, 1300}}, 1, 1},
        {{3, 2, {1, 9000, 40}, {9000, 30}}, 1, 0},   /* 16 blocks of 563 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct mm_case *m = &cases[i].m;
        struct ctx c;
        ctx_init(&c, 200 + i);
        uint32_t in[2] = {frand(&c, m->ra, m->da, -1, 1), frand(&c, m->rb, m->db, -1, 1)};
        struct at tr[] = {{"transA", IR_ATTR_INT, cases[i].ta, 0, NULL},
                          {"transB", IR_ATTR_INT, cases[i].tb, 0, NULL},
                          {0, 0, 0, 0, NULL}};
        char what[64];
        snprintf(what, sizeof what, "MatMul transposed case %zu", i);
        compare_node(&c, node(&c, IR_OP_MatMul, 2, in, tr), GEMM, what);
        ir_graph_free(c.g);
    }
}

/* K = 1 products are one rounding, as in the reference: bit-identical */
TEST(matmul_k1_exact)
{
    struct ctx c;
    ctx_init(&c, 99);
    int64_t da[3] = {20, 512, 1}, db[3] = {20, 1, 16};
    uint32_t in[2] = {frand(&c, 3, da, -3, 3), frand(&c, 3, db, -3, 3)};
    compare_node(&c, node(&c, IR_OP_MatMul, 2, in, NULL), EXACT, "MatMul K=1");
    ir_graph_free(c.g);
}

/* one Gemm: (M, N, K), transposes, alpha and beta from the lists below, and C
 * absent (ck 0) or shaped [N], [M, N], [M, 1] or scalar (ck 1..4) */
static void gemm_case(const int64_t *mnk, int ta, int tb, double alpha, double beta, int ck,
                      uint64_t seed)
{
    int64_t M = mnk[0], N = mnk[1], K = mnk[2];
    struct ctx c;
    ctx_init(&c, seed);
    int64_t da[2] = {ta ? K : M, ta ? M : K}, db[2] = {tb ? N : K, tb ? K : N};
    int64_t dcs[4][2] = {{N}, {M, N}, {M, 1}, {0}};
    int crank[4] = {1, 2, 2, 0};
    uint32_t in[3] = {frand(&c, 2, da, -1, 1), frand(&c, 2, db, -1, 1)};
    if (ck)
        in[2] = frand(&c, crank[ck - 1], dcs[ck - 1], -1, 1);
    struct at attrs[] = {
        {"transA", IR_ATTR_INT, ta, 0, NULL}, {"transB", IR_ATTR_INT, tb, 0, NULL},
        {"alpha", IR_ATTR_FLOAT, 0, alpha, NULL}, {"beta", IR_ATTR_FLOAT, 0, beta, NULL},
        {0, 0, 0, 0, NULL},
    };
    char what[96];
    snprintf(what, sizeof what, "Gemm %lldx%lldx%lld tA%d tB%d a%g b%g C%d", (long long)M,
             (long long)N, (long long)K, ta, tb, alpha, beta, ck);
    compare_node(&c, node(&c, IR_OP_Gemm, ck ? 3 : 2, in, attrs), GEMM, what);
    ir_graph_free(c.g);
}

TEST(gemm_attributes)
{
    static const int64_t mnk[][3] = {
        {3, 5, 1},    {7, 4, 6},    {33, 17, 70}, {0, 4, 3},     {5, 3, 0},
        {1, 700, 30}, {700, 1, 30},                /* matrix-vector: sgemv */
        {520, 40, 30}, {20, 600, 9},               /* several blocks */
        {30, 20, 1100},                            /* K in blocks, summed into C */
    };
    static const double alphas[] = {1.0, 0.5}, betas[] = {1.0, 0.0, 2.5};
    for (size_t s = 0; s < sizeof mnk / sizeof mnk[0]; s++)
        for (int k = 0; k < 2 * 2 * 2 * 3 * 5; k++) /* transA, transB, alpha, beta, C */
            gemm_case(mnk[s], k & 1, (k >> 1) & 1, alphas[(k >> 2) & 1], betas[(k >> 3) % 3],
                      (k >> 3) / 3, s * 1000 + (uint64_t)k);
}

/* ---- broadcasting binary ops and Where -------------------------------------------- */

struct bshape {
    int ra, rb;
    int64_t da[3], db[3];
};

static const struct bshape bshapes[] = {
    {2, 2, {37, 29}, {37, 29}},  /* same shape */
    {0, 1, {0}, {100}},          /* scalar on the left */
    {2, 0, {30, 20}, {0}},       /* scalar on the right */
    {2, 1, {300, 20}, {20}},     /* row broadcast (bias) */
    {2, 2, {300, 1}, {300, 20}}, /* column broadcast */
    {3, 3, {7, 1, 5}, {1, 6, 1}},/* both sides */
    {0, 0, {0}, {0}},            /* rank 0 */
    {2, 1, {0, 3}, {3}},         /* empty */
    {2, 1, {512, 300}, {300}},   /* big enough to thread */
    {1, 1, {150001}, {150001}},  /* one long row, odd length */
    {3, 2, {40, 3, 900}, {3, 1}},/* strided inner operand after merging */
};

TEST(binary_ops)
{
    static const enum ir_op ops[] = {IR_OP_Add, IR_OP_Sub, IR_OP_Mul, IR_OP_Div,
                                     IR_OP_Max, IR_OP_Min, IR_OP_Sum};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t s = 0; s < sizeof bshapes / sizeof bshapes[0]; s++) {
            const struct bshape *b = &bshapes[s];
            struct ctx c;
            ctx_init(&c, o * 100 + s);
            uint32_t in[2] = {frand(&c, b->ra, b->da, -2, 2), frand(&c, b->rb, b->db, 0.5f, 2)};
            char what[64];
            snprintf(what, sizeof what, "%s shape %zu", ir_ops[ops[o]].name, s);
            compare_node(&c, node(&c, ops[o], 2, in, NULL), EXACT, what);
            uint32_t sw[2] = {in[1], in[0]};
            compare_node(&c, node(&c, ops[o], 2, sw, NULL), EXACT, what);
            ir_graph_free(c.g);
        }
}

TEST(comparisons)
{
    static const enum ir_op ops[] = {IR_OP_Equal, IR_OP_Less, IR_OP_LessOrEqual, IR_OP_Greater,
                                     IR_OP_GreaterOrEqual};
    float a[8] = {NAN, 1, -0.0f, 0.0f, INFINITY, -INFINITY, NAN, 3};
    float b[8] = {1, NAN, 0.0f, -0.0f, -INFINITY, 2, NAN, 3};
    int64_t d[1] = {8};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t s = 0; s < sizeof bshapes / sizeof bshapes[0]; s++) {
            const struct bshape *b2 = &bshapes[s];
            struct ctx c;
            ctx_init(&c, o * 100 + s);
            /* values on a coarse grid, so that equal pairs occur */
            uint32_t in[2] = {frand(&c, b2->ra, b2->da, -2, 2), frand(&c, b2->rb, b2->db, -2, 2)};
            float *va = c.g->t[in[0]].data, *vb = c.g->t[in[1]].data;
            for (int64_t i = 0; i < ir_numel(&c.g->t[in[0]]); i++)
                va[i] = roundf(va[i] * 2);
            for (int64_t i = 0; i < ir_numel(&c.g->t[in[1]]); i++)
                vb[i] = roundf(vb[i] * 2);
            char what[64];
            snprintf(what, sizeof what, "%s shape %zu", ir_ops[ops[o]].name, s);
            compare_node(&c, node(&c, ops[o], 2, in, NULL), EXACT, what);
            uint32_t sp[2] = {cst(&c, IR_F32, 1, d, a), cst(&c, IR_F32, 1, d, b)};
            compare_node(&c, node(&c, ops[o], 2, sp, NULL), EXACT, what);
            ir_graph_free(c.g);
        }
}

/* NaN, infinities and signed zeros take the reference's path through Max/Min */
TEST(binary_specials)
{
    float a[8] = {NAN, 1, -0.0f, 0.0f, INFINITY, -INFINITY, NAN, 3};
    float b[8] = {1, NAN, 0.0f, -0.0f, -INFINITY, 2, NAN, 3};
    int64_t d[1] = {8};
    static const enum ir_op ops[] = {IR_OP_Add, IR_OP_Sub, IR_OP_Mul,
                                     IR_OP_Div, IR_OP_Max, IR_OP_Min};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        struct ctx c;
        ctx_init(&c, o);
        uint32_t in[2] = {cst(&c, IR_F32, 1, d, a), cst(&c, IR_F32, 1, d, b)};
        compare_node(&c, node(&c, ops[o], 2, in, NULL), EXACT, ir_ops[ops[o]].name);
        ir_graph_free(c.g);
    }
}

TEST(pow_scalar_exponent)
{
    static const float exps[] = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 3.0f, -1.5f};
    for (size_t e = 0; e < sizeof exps / sizeof exps[0]; e++) {
        struct ctx c;
        ctx_init(&c, e);
        int64_t dx[2] = {300, 200}, d1[1] = {1};
        uint32_t in[2] = {frand(&c, 2, dx, 0.01f, 4), cst(&c, IR_F32, 0, NULL, &exps[e])};
        char what[32];
        snprintf(what, sizeof what, "Pow %g", (double)exps[e]);
        enum tol tol = e < 4 ? EXACT : ULP;
        compare_node(&c, node(&c, IR_OP_Pow, 2, in, NULL), tol, what);
        in[1] = cst(&c, IR_F32, 1, d1, &exps[e]); /* a one-element 1-D exponent */
        compare_node(&c, node(&c, IR_OP_Pow, 2, in, NULL), tol, what);
        float sp[8] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, -2, 1e-40f, 3e38f};
        int64_t d8[1] = {8};
        uint32_t si[2] = {cst(&c, IR_F32, 1, d8, sp), in[1]};
        compare_node(&c, node(&c, IR_OP_Pow, 2, si, NULL), tol, what);
        ir_graph_free(c.g);
    }
}

/* an exponent per element (an annealed p broadcast against a tensor of them, the
 * minimality VJP's p - 1): cpu_pow on every row layout, and on every pair of C11
 * pow's special values (pow_pairs.h), against the reference */
TEST(pow_tensor_exponent)
{
    float xs[POW_PAIRS], ps[POW_PAIRS];
    pow_pairs(xs, ps);
    struct ctx c;
    ctx_init(&c, 77);
    int64_t d[1] = {POW_PAIRS}, dr[2] = {300, 200}, dc[2] = {300, 1}, dw[2] = {1, 200};
    uint32_t in[2] = {cst(&c, IR_F32, 1, d, xs), cst(&c, IR_F32, 1, d, ps)};
    struct ir_node *n = node(&c, IR_OP_Pow, 2, in, NULL);
    compare_node(&c, n, ULP, "Pow special pairs");
    /* the ulp measure takes -0 for +0: the zeros and infinities C11 gives a sign (pow(-0, 3),
     * pow(-inf, -3), ...) are compared bit for bit, NaN as NaN */
    float want[POW_PAIRS], got[POW_PAIRS];
    void *ins[2] = {xs, ps}, *w = want, *o = got;
    CHECK_EQ(cg_ref.run(c.g, n, ins, &w), ST_OK);
    CHECK_EQ(cg_cpu.run(c.g, n, ins, &o), ST_OK);
    int special = 0, same = 0;
    for (int i = 0; i < POW_PAIRS; i++) {
        if (!(want[i] == 0.0f || isinf(want[i]) || isnan(want[i])))
            continue;
        special++;
        same += isnan(want[i]) ? isnan(got[i]) != 0 : memcmp(&want[i], &got[i], 4) == 0;
    }
    CHECK(special > 100);
    CHECK_EQ(same, special);
    uint32_t x = frand(&c, 2, dr, 0.0f, 4), p[3] = {frand(&c, 2, dr, -3, 3),
                                                     frand(&c, 2, dc, -3, 3),
                                                     frand(&c, 2, dw, 0.1f, 2)};
    for (int k = 0; k < 3; k++) {
        uint32_t xi[2] = {x, p[k]}, px[2] = {p[k], x};
        compare_node(&c, node(&c, IR_OP_Pow, 2, xi, NULL), ULP, "Pow by a tensor");
        compare_node(&c, node(&c, IR_OP_Pow, 2, px, NULL), ULP, "Pow of a tensor");
    }
    ir_graph_free(c.g);
}

/* the VJP of Slice: dY into zeros at the sliced positions, bit for bit as ref (whole
 * rows, a stepped last axis, negative steps, axes given or implied, clamped ends,
 * 8-byte elements); every case is one the cpu kernel takes (it declines only
 * inconsistent operands) */
TEST(slice_grad)
{
    static const struct {
        int rank, ns, no_axes; /* no_axes: the axes input absent, so the first ns axes */
        int64_t x[3], st[3], en[3], ax[3], sp[3];
        enum ir_dtype dt;
    } cases[] = {
        {3, 1, 0, {8, 64, 129}, {0}, {128}, {2}, {1}, IR_F32},        /* the adversary's masks */
        {3, 1, 0, {8, 64, 129}, {128}, {129}, {-1}, {1}, IR_F32},     /* and its δ */
        {2, 2, 0, {50, 40}, {3, 1}, {47, 40}, {0, 1}, {2, 3}, IR_F32}, /* stepped rows */
        {2, 1, 0, {50, 40}, {-2}, {-60}, {1}, {-3}, IR_F32},          /* negative step, clamped */
        {3, 2, 1, {4, 5, 6}, {1, 2}, {3, 1000}, {0}, {1, 1}, IR_F32},
        {3, 1, 0, {300, 40, 20}, {2}, {18}, {2}, {1}, IR_F32},       /* 12000 rows: split */
        {2, 1, 0, {30, 70}, {5}, {65}, {1}, {2}, IR_F64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ctx c;
        ctx_init(&c, 500 + i);
        int r = cases[i].rank, ns = cases[i].ns;
        int64_t cnt[3], dn[1] = {ns}, first;
        for (int k = 0; k < r; k++)
            cnt[k] = cases[i].x[k];
        for (int k = 0; k < ns; k++) {
            int64_t a = cases[i].no_axes ? k : cases[i].ax[k] < 0 ? cases[i].ax[k] + r : cases[i].ax[k];
            cnt[a] = ir_slice_axis(cases[i].x[a], cases[i].st[k], cases[i].en[k], cases[i].sp[k],
                                   &first);
        }
        size_t es = ir_dtype_size(cases[i].dt);
        int64_t m = count(r, cnt);
        unsigned char *buf = malloc((size_t)m * es);
        for (int64_t j = 0; j < m * (int64_t)es; j++)
            buf[j] = (unsigned char)(j * 37 % 251 + 1);
        uint32_t in[5] = {cst(&c, cases[i].dt, r, cnt, buf), cst(&c, IR_I64, 1, dn, cases[i].st),
                          cst(&c, IR_I64, 1, dn, cases[i].en),
                          cases[i].no_axes ? IR_NONE : cst(&c, IR_I64, 1, dn, cases[i].ax),
                          cst(&c, IR_I64, 1, dn, cases[i].sp)};
        free(buf);
        uint32_t o = ir_tensor_new(c.g, "dx");
        uint32_t id = ir_node_new(c.g, IR_OP_SliceGrad, NULL, 5, in, 1, &o);
        struct ir_node *n = &c.g->n[id]; /* after the call: it may move the node array */
        struct diag d = {0};
        n->attr = ir_arena_alloc(c.g->arena, sizeof *n->attr);
        n->attr[0] = (struct ir_attr){.name = "shape", .type = IR_ATTR_INTS, .n = r,
                                      .ints = (int64_t *)cases[i].x};
        n->n_attr = 1;
        CHECK_EQ(ir_infer_node(c.g, n, &d), ST_OK);
        char what[48];
        snprintf(what, sizeof what, "SliceGrad case %zu", i);
        compare_node(&c, n, EXACT, what);
        ir_graph_free(c.g);
    }
}

TEST(where_broadcast)
{
    struct { int rc, rx, ry; int64_t dc[2], dx[2], dy[2]; } cases[] = {
        {2, 2, 0, {300, 20}, {300, 20}, {0}},  /* Where(mask, x, 0) */
        {2, 0, 2, {300, 20}, {0}, {300, 20}},
        {2, 2, 2, {300, 20}, {300, 20}, {300, 20}},
        {2, 1, 2, {1, 20}, {20}, {300, 1}},
        {2, 2, 2, {600, 200}, {600, 200}, {600, 200}}, /* threaded */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ctx c;
        ctx_init(&c, i);
        uint32_t in[3] = {brand(&c, cases[i].rc, cases[i].dc),
                          frand(&c, cases[i].rx, cases[i].dx, -1, 1),
                          frand(&c, cases[i].ry, cases[i].dy, -1, 1)};
        char what[32];
        snprintf(what, sizeof what, "Where case %zu", i);
        compare_node(&c, node(&c, IR_OP_Where, 3, in, NULL), EXACT, what);
        ir_graph_free(c.g);
    }
}

/* ---- unary ops ---------------------------------------------------------------------- */

struct ucase {
    enum ir_op op;
    float lo, hi;
    enum tol tol;
};

TEST(unary_ops)
{
    static const struct ucase ops[] = {
        {IR_OP_Relu, -2, 2, EXACT},      {IR_OP_Neg, -2, 2, EXACT},
        {IR_OP_Reciprocal, 0.1f, 9, EXACT}, {IR_OP_Sqrt, 0, 100, EXACT},
        {IR_OP_Gelu, -6, 6, ULP},        {IR_OP_Erf, -4, 4, ULP},
        {IR_OP_Exp, -20, 20, ULP},       {IR_OP_Log, 1e-3f, 1e3f, ULP},
        {IR_OP_Sigmoid, -20, 20, ULP},   {IR_OP_Tanh, -5, 5, ULP},
        {IR_OP_LowerLeakyHard, -0.5f, 1.5f, EXACT},
        {IR_OP_UpperLeakyHard, -0.5f, 3.0f, EXACT},
    };
    static const int64_t shapes[][2] = {{1000, 1}, {513, 300}, {0, 5}, {1, 1}};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            struct ctx c;
            ctx_init(&c, o * 10 + s);
            uint32_t x = frand(&c, s == 3 ? 0 : 2, shapes[s], ops[o].lo, ops[o].hi);
            char what[64];
            snprintf(what, sizeof what, "%s shape %zu", ir_ops[ops[o].op].name, s);
            compare_node(&c, node(&c, ops[o].op, 1, &x, NULL), ops[o].tol, what);
            ir_graph_free(c.g);
        }
}

/* infinities, NaN, signed zeros, subnormal inputs and results, overflow */
TEST(unary_specials)
{
    float x[16] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-40f, -1e-40f, 1e-30f,
                   -100, 100, 88.8f, -103, -87, 14, -14, -9.5f};
    static const enum ir_op ops[] = {IR_OP_Exp, IR_OP_Erf, IR_OP_Sigmoid, IR_OP_Tanh,
                                     IR_OP_Log, IR_OP_Sqrt, IR_OP_Reciprocal, IR_OP_Relu,
                                     IR_OP_Neg};
    int64_t d[1] = {16};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        struct ctx c;
        ctx_init(&c, o);
        uint32_t in = cst(&c, IR_F32, 1, d, x);
        compare_node(&c, node(&c, ops[o], 1, &in, NULL), o >= 5 ? EXACT : ULP,
                     ir_ops[ops[o]].name);
        ir_graph_free(c.g);
    }
}

/* The reference's GELU, 0.5 x (1 + erf(x / sqrt 2)) in double, cancels below
 * x = -5 (it returns -0 at -9.5, where GELU is -1e-20); the cpu target's erfc
 * form keeps relative accuracy down to the float underflow, so the left tail is
 * checked against libm's double erfc instead. */
TEST(gelu_left_tail)
{
#ifndef PDC_HAVE_BLAS
    printf("  (skipped: without OpenBLAS the cpu target runs the reference's GELU)\n");
    return;
#endif
    struct ctx c;
    ctx_init(&c, 3);
    enum { NX = 1500 };
    float x[NX], got[NX];
    for (int i = 0; i < NX; i++)
        x[i] = -15.0f + 15.0f * (float)i / NX;
    x[0] = -INFINITY;
    int64_t d[1] = {NX};
    uint32_t in = cst(&c, IR_F32, 1, d, x);
    const struct ir_node *n = node(&c, IR_OP_Gelu, 1, &in, NULL);
    void *ip[1] = {c.g->t[in].data}, *op[1] = {got};
    CHECK(n && cg_cpu.run(c.g, n, ip, op) == ST_OK);
    int bad = 0;
    for (int i = 0; n && i < NX; i++) {
        double v = (double)x[i];
        float want = (float)(0.5 * v * erfc(-v * 0.70710678118654752));
        if (!agree(ULP, got[i], want, 1) && bad++ < 3)
            fprintf(stderr, "  Gelu(%.9g) = %.9g, want %.9g\n", v, (double)got[i], (double)want);
    }
    CHECK_EQ(bad, 0);
    ir_graph_free(c.g);
}

/* Softmax and LogSoftmax: rows short and long, threaded, a row with a 160-wide range
 * (underflowing terms), infinities and NaN, the legacy axis (everything from it on
 * is one row) and an inner axis (delegated to the reference: exact) */
TEST(softmax)
{
    static const int64_t shapes[][4] = {{3, 7, 1, 1}, {2, 3, 5, 17}, {8, 4, 64, 64}, {1, 1, 1, 1},
                                        {700, 300, 1, 1}};
    static const int ranks[] = {2, 4, 4, 1, 2};
    for (int lg = 0; lg < 2; lg++) {
        enum ir_op op = lg ? IR_OP_LogSoftmax : IR_OP_Softmax;
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
            struct ctx c;
            ctx_init(&c, 40 + s);
            uint32_t x = frand(&c, ranks[s], shapes[s], s == 1 ? -80 : -4, s == 1 ? 80 : 4);
            char what[64];
            snprintf(what, sizeof what, "%s shape %zu", ir_ops[op].name, s);
            compare_node(&c, node(&c, op, 1, &x, NULL), lg ? LOGSM : ULP, what);
            struct at ax0[] = {{"axis", IR_ATTR_INT, 0, 0, NULL}, {0, 0, 0, 0, NULL}};
            if (ranks[s] > 1) /* the cpu kernel must hand it to ref, not do its last axis */
                compare_node(&c, node(&c, op, 1, &x, ax0), EXACT, "axis 0 (delegated)");
            struct ir_node *n = node(&c, op, 1, &x, ax0);
            if (n && ranks[s] > 1) {
                n->opset = 11; /* axis 0 of opset 11: the whole tensor is one row */
                compare_node(&c, n, lg ? LOGSM : ULP, "opset 11 axis 0");
            }
            ir_graph_free(c.g);
        }
        float sp[4][4] = {{INFINITY, 0, 1, 2}, {-INFINITY, 0, 1, 2},
                          {NAN, 0, 1, 2},      {-INFINITY, -INFINITY, -INFINITY, -INFINITY}};
        int64_t d[2] = {4, 4};
        struct ctx c;
        ctx_init(&c, 50);
        uint32_t in = cst(&c, IR_F32, 2, d, sp);
        compare_node(&c, node(&c, op, 1, &in, NULL), lg ? LOGSM : ULP, "specials");
        ir_graph_free(c.g);
    }
}

/* the squashing functions and their VJPs at the kinks, and with alpha set */
TEST(squash_and_grads)
{
    float x[10] = {-1, -0.0f, 0, 1e-8f, 0.5f, 1, 1.0000001f, 2, NAN, INFINITY};
    float dy[10] = {-1, -2, 3, -4, 5, -6, 7, -8, 9, -10};
    int64_t d[1] = {10};
    static const enum ir_op ops[] = {IR_OP_LowerLeakyHard, IR_OP_UpperLeakyHard,
                                     IR_OP_LowerLeakyHardGrad, IR_OP_UpperLeakyHardGrad};
    struct at alpha[] = {{"alpha", IR_ATTR_FLOAT, 0, 0.3, NULL}, {0, 0, 0, 0, NULL}};
    for (size_t o = 0; o < 4; o++)
        for (int a = 0; a < 2; a++) {
            struct ctx c;
            ctx_init(&c, o);
            uint32_t in[2] = {cst(&c, IR_F32, 1, d, x), cst(&c, IR_F32, 1, d, dy)};
            compare_node(&c, node(&c, ops[o], o >= 2 ? 2 : 1, in, a ? alpha : NULL), EXACT,
                         ir_ops[ops[o]].name);
            int64_t big[2] = {700, 300}; /* random and threaded */
            uint32_t rin[2] = {frand(&c, 2, big, -1, 2), frand(&c, 2, big, -1, 1)};
            compare_node(&c, node(&c, ops[o], o >= 2 ? 2 : 1, rin, a ? alpha : NULL), EXACT,
                         ir_ops[ops[o]].name);
            ir_graph_free(c.g);
        }
}

/* ---- data movement --------------------------------------------------------------------- */

struct tcase {
    int rank;
    int64_t dims[4];
    int64_t perm[4]; /* perm[0] < 0: no attribute (reverse) */
};

TEST(transpose_perms)
{
    static const struct tcase cases[] = {
        {3, {20, 300, 16}, {0, 2, 1}},    /* tiled: a batch of 2-D transposes */
        {2, {4096, 20}, {1, 0}},
        {2, {20, 4096}, {-1}},            /* default: reversed */
        {3, {7, 33, 65}, {2, 0, 1}},
        {3, {7, 33, 65}, {1, 0, 2}},      /* rows stay contiguous */
        {4, {3, 1, 5, 7}, {2, 1, 3, 0}},  /* size-1 dims */
        {3, {4, 5, 6}, {0, 1, 2}},        /* identity: a copy */
        {1, {17}, {0}},
        {3, {2, 0, 3}, {2, 1, 0}},        /* empty */
        {3, {64, 300, 70}, {0, 2, 1}},    /* threaded, partial tiles */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tcase *t = &cases[i];
        struct ctx c;
        ctx_init(&c, i);
        uint32_t x = frand(&c, t->rank, t->dims, -1, 1);
        struct ir_attr perm = {.name = "perm", .type = IR_ATTR_INTS, .n = t->rank,
                               .ints = (int64_t *)t->perm};
        struct ir_node *n = node(&c, IR_OP_Transpose, 1, &x, NULL);
        if (n && t->perm[0] >= 0) { /* set perm and infer again */
            n->attr = &perm;
            n->n_attr = 1;
            struct diag d = {0};
            CHECK_EQ(ir_infer_node(c.g, n, &d), ST_OK);
        }
        char what[32];
        snprintf(what, sizeof what, "Transpose case %zu", i);
        compare_node(&c, n, EXACT, what);
        if (n)
            n->n_attr = 0; /* perm lives on this stack frame */
        ir_graph_free(c.g);
    }
    struct ctx c; /* any 4-byte dtype */
    ctx_init(&c, 77);
    int64_t d[2] = {40, 50};
    int32_t v[2000];
    for (int i = 0; i < 2000; i++)
        v[i] = i * 7919;
    uint32_t x = cst(&c, IR_I32, 2, d, v);
    compare_node(&c, node(&c, IR_OP_Transpose, 1, &x, NULL), EXACT, "Transpose int32");
    ir_graph_free(c.g);
}

TEST(cast_bool)
{
    struct ctx c;
    ctx_init(&c, 8);
    float x[8] = {0, -0.0f, 1, -2, NAN, INFINITY, 1e-40f, 0.5f};
    int64_t d[1] = {8}, big[2] = {600, 300};
    uint32_t in[3] = {cst(&c, IR_F32, 1, d, x), brand(&c, 2, big), frand(&c, 2, big, -1, 1)};
    for (int i = 0; i < 3; i++) {
        int to = c.g->t[in[i]].dtype == IR_F32 ? IR_BOOL : IR_F32;
        struct at attrs[] = {{"to", IR_ATTR_INT, to, 0, NULL}, {0, 0, 0, 0, NULL}};
        compare_node(&c, node(&c, IR_OP_Cast, 1, &in[i], attrs), EXACT, "Cast");
    }
    ir_graph_free(c.g);
}

/* ---- reductions ------------------------------------------------------------------------ */

struct rcase {
    int rank;
    int64_t dims[3];
    int naxes;
    int64_t axes[3];
    enum tol tol;
};

TEST(reduce_sum_mean)
{
    static const struct rcase cases[] = {
        {3, {64, 20, 30}, 1, {2}, EXACT},     /* trailing */
        {3, {64, 20, 30}, 1, {0}, EXACT},     /* leading */
        {3, {64, 20, 30}, 1, {1}, EXACT},     /* middle */
        {3, {64, 20, 30}, 2, {0, 1}, EXACT},
        {3, {64, 20, 30}, 2, {-1, 1}, EXACT},
        {3, {64, 20, 30}, 2, {0, 2}, EXACT},  /* two runs: the reference's kernel */
        {3, {64, 20, 30}, 0, {0}, EXACT},     /* all axes */
        {3, {64, 1, 30}, 1, {1}, EXACT},      /* a size-1 axis: a copy */
        {2, {4096, 20}, 1, {0}, REDUCE},      /* several blocks: order differs */
        {1, {200001}, 1, {0}, REDUCE},        /* one long run, threaded blocks */
        {2, {100000, 3}, 1, {1}, EXACT},      /* many short rows, threaded */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int mean = 0; mean < 2; mean++)
            for (int keep = 0; keep < 2; keep++) {
                const struct rcase *r = &cases[i];
                struct ctx c;
                ctx_init(&c, i);
                int64_t na = r->naxes;
                uint32_t in[2] = {frand(&c, r->rank, r->dims, -1, 1),
                                  cst(&c, IR_I64, 1, &na, r->axes)};
                struct at attrs[] = {{"keepdims", IR_ATTR_INT, keep, 0, NULL}, {0, 0, 0, 0, NULL}};
                enum ir_op op = mean ? IR_OP_ReduceMean : IR_OP_ReduceSum;
                char what[64];
                snprintf(what, sizeof what, "%s case %zu keepdims %d", ir_ops[op].name, i, keep);
                compare_node(&c, node(&c, op, r->naxes ? 2 : 1, in, attrs), r->tol, what);
                ir_graph_free(c.g);
            }
}

TEST(reduce_noop_empty_axes)
{
    struct ctx c;
    ctx_init(&c, 5);
    int64_t d[2] = {30, 40}, zero = 0;
    uint32_t in[2] = {frand(&c, 2, d, -1, 1), cst(&c, IR_I64, 1, &zero, NULL)};
    struct at attrs[] = {{"noop_with_empty_axes", IR_ATTR_INT, 1, 0, NULL}, {0, 0, 0, 0, NULL}};
    compare_node(&c, node(&c, IR_OP_ReduceSum, 2, in, attrs), EXACT, "ReduceSum noop");
    ir_graph_free(c.g);
}

/* ---- delegation ------------------------------------------------------------------------- */

/* ops and dtypes the cpu target does not cover run on the reference kernel */
TEST(delegates_other_dtypes)
{
    struct ctx c;
    ctx_init(&c, 1);
    int64_t d[1] = {5};
    double a[5] = {1, 2, 3, 4, 5};
    int64_t ia[5] = {1, -2, 3, -4, 5};
    uint32_t fd[2] = {cst(&c, IR_F64, 1, d, a), cst(&c, IR_F64, 1, d, a)};
    compare_node(&c, node(&c, IR_OP_Add, 2, fd, NULL), EXACT, "Add f64");
    compare_node(&c, node(&c, IR_OP_Exp, 1, fd, NULL), EXACT, "Exp f64");
    uint32_t id[2] = {cst(&c, IR_I64, 1, d, ia), cst(&c, IR_I64, 1, d, ia)};
    compare_node(&c, node(&c, IR_OP_Mul, 2, id, NULL), EXACT, "Mul i64");
    struct at tanh_attr[] = {{"approximate", IR_ATTR_STRING, 0, 0, "tanh"}, {0, 0, 0, 0, NULL}};
    int64_t dx[1] = {100};
    uint32_t x = frand(&c, 1, dx, -3, 3);
    compare_node(&c, node(&c, IR_OP_Gelu, 1, &x, tanh_attr), EXACT, "Gelu tanh");
    ir_graph_free(c.g);
    CHECK(cases_run > 0);
}

/* ---- whole programs ---------------------------------------------------------------------- */

static void free_values(struct ir_value *v, int n)
{
    for (int i = 0; v && i < n; i++)
        ir_value_free(&v[i]);
    free(v);
}

/* run g on both targets and compare every float32 output within rtol of its max */
static void compare_program(const struct ir_graph *g, const struct ir_value *in, int nin,
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

TEST(program_gemm_all_attributes)
{
    const char *dir = "/usr/share/libonnx-testdata/data/node/test_gemm_all_attributes";
    char p[512];
    struct ir_graph *g = NULL;
    struct diag d = {0};
    struct ir_value in[3] = {{0}};
    snprintf(p, sizeof p, "%s/model.onnx", dir);
    if (onnx_load_file(p, &g, &d)) {
        printf("  (skipped: %s)\n", d.msg);
        return;
    }
    int nin = 0, st = ST_OK;
    for (; nin < 3 && !st; nin++) {
        snprintf(p, sizeof p, "%s/test_data_set_0/input_%d.pb", dir, nin);
        st = onnx_read_tensor_file(p, &in[nin], &d);
        if (!st) {
            free(in[nin].name);
            in[nin].name = strdup(g->t[g->inputs[nin]].name);
        }
    }
    struct pass_ctx cx = {.eval = cg_eval_node};
    if (!st)
        st = pass_bind_inputs(g, in, nin, &d);
    if (!st)
        st = pass_compile_inference(g, &cx, &d);
    CHECK_EQ(st, ST_OK);
    if (!st)
        compare_program(g, in, nin, 1e-6, "test_gemm_all_attributes");
    for (int i = 0; i < nin; i++)
        ir_value_free(&in[i]);
    ir_graph_free(g);
}

static uint32_t f32_input(struct ir_graph *g, const char *name, int rank, const int64_t *dims)
{
    uint32_t t = ir_tensor_new(g, name);
    g->t[t].dtype = IR_F32;
    g->t[t].rank = rank;
    memcpy(g->t[t].dims, dims, (size_t)rank * sizeof *dims);
    ir_graph_add_input(g, t);
    return t;
}

/* x[256,8] -> Gelu(x W1 + b1) -> Sigmoid(. W2 + b2) -> squash -> mean square, plus a
 * CI-style K=1 batched product, with the gradients of the loss w.r.t. every input */
static uint32_t mlp_loss(struct ir_builder *b, struct ctx *c, const uint32_t *x)
{
    int64_t d16[1] = {16}, d4[1] = {4};
    uint32_t h = bld_op1(b, IR_OP_Gelu, bld_add(b, bld_matmul(b, x[0], x[1]),
                                               frand(c, 1, d16, -0.1f, 0.1f)));
    uint32_t y = bld_op1(b, IR_OP_Sigmoid, bld_add(b, bld_matmul(b, h, x[2]),
                                                  frand(c, 1, d4, -0.1f, 0.1f)));
    uint32_t m = bld_op1(b, IR_OP_LowerLeakyHard, bld_mul(b, y, bld_f32(b, 1.5)));
    uint32_t e = bld_sub(b, m, bld_f32(b, 0.5));
    uint32_t sq = bld_op2(b, IR_OP_Pow, e, bld_f32(b, 2));
    uint32_t l1 = bld_reduce(b, IR_OP_ReduceMean, sq, 0, NULL, 0);
    uint32_t u = bld_op1(b, IR_OP_Relu, bld_matmul(b, x[3], x[4])); /* [20,256,1]@[20,1,16] */
    uint32_t l2 = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, u, u), 0, NULL, 0);
    return bld_add(b, l1, bld_mul(b, l2, bld_f32(b, 1e-4)));
}

TEST(program_mlp_with_gradients)
{
    struct ctx c;
    ctx_init(&c, 7);
    struct ir_graph *g = c.g;
    struct diag d = {0};
    static const int64_t dims[5][3] = {{256, 8}, {8, 16}, {16, 4}, {20, 256, 1}, {20, 1, 16}};
    static const int ranks[5] = {2, 2, 2, 3, 3};
    static const char *const names[5] = {"x", "w1", "w2", "u", "v"};
    uint32_t x[5], grads[5];
    struct ir_value in[5];
    for (int i = 0; i < 5; i++) {
        x[i] = f32_input(g, names[i], ranks[i], dims[i]);
        int64_t cnt = count(ranks[i], dims[i]);
        in[i] = (struct ir_value){.name = (char *)names[i], .dtype = IR_F32, .rank = ranks[i],
                                  .nbytes = (size_t)cnt * 4};
        memcpy(in[i].dims, dims[i], sizeof dims[i]);
        in[i].data = malloc(in[i].nbytes);
        for (int64_t k = 0; k < cnt; k++)
            ((float *)in[i].data)[k] = urand(&c, -1, 1);
    }
    struct ir_builder b = bld_begin(g, "mlp", &d);
    uint32_t loss = mlp_loss(&b, &c, x);
    int st = b.err;
    if (!st)
        st = pass_autodiff(g, loss, 5, x, grads, &d);
    if (!st) {
        ir_graph_add_output(g, loss);
        for (int i = 0; i < 5; i++)
            ir_graph_add_output(g, grads[i]);
        struct pass_ctx cx = {.eval = cg_eval_node, .verify = 1};
        st = pass_compile_inference(g, &cx, &d);
    }
    CHECK_EQ(st, ST_OK);
    if (st)
        fprintf(stderr, "  %s\n", d.msg);
    else
        compare_program(g, in, 5, 1e-5, "mlp");
    for (int i = 0; i < 5; i++)
        free(in[i].data);
    ir_graph_free(g);
}

TEST(default_target_env)
{
    setenv("PDC_TARGET", "ref", 1);
    CHECK(cg_default() == &cg_ref);
    setenv("PDC_TARGET", "cpu", 1);
    CHECK(cg_default() == &cg_cpu);
    unsetenv("PDC_TARGET");
#ifdef PDC_HAVE_LLVM
    CHECK(cg_default() == &cg_llvm); /* fused kernels on top of cpu */
#else
    CHECK(cg_default() == &cg_cpu);
#endif
    CHECK(cpu_threads() >= 1);
}

static const struct test_case tests[] = {
    T(matmul_shapes),      T(matmul_k1_exact),      T(gemm_attributes),
    T(binary_ops),         T(comparisons),          T(binary_specials),
    T(pow_scalar_exponent), T(pow_tensor_exponent), T(slice_grad), T(where_broadcast),     T(unary_ops),
    T(unary_specials),     T(gelu_left_tail),       T(softmax), T(matmul_transposed_operands),
    T(squash_and_grads),
    T(transpose_perms),    T(cast_bool),            T(reduce_sum_mean),
    T(reduce_noop_empty_axes), T(delegates_other_dtypes), T(program_gemm_all_attributes),
    T(program_mlp_with_gradients), T(default_target_env),
};
TEST_MAIN(tests)
