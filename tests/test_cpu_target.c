/* test_cpu_target.c — the cpu target (codegen/cpu/) against the reference, every op
 * but the GEMMs (test_cpu_gemm.c).
 *
 * Every op the cpu target implements runs on random inputs of several shapes
 * (broadcasting, empty dims) on both targets. Tolerance per family: bit-identical where
 * the cpu kernel does the reference's float32 arithmetic (elementwise arithmetic,
 * selection, squashing, single-block reductions, data movement); 2 ulps for the
 * transcendental functions (the cpu target's exp/erf/GELU/sigmoid/pow are within 1,
 * logf and tanhf within 2). Each case also runs on 1, 2 and 3 threads, which must
 * agree bit for bit (cpu_target_fixture.h). A small MLP with its gradients runs on
 * both targets as a whole program. Built without OpenBLAS the cpu target delegates
 * everything, and the same checks hold trivially. */
#include "cpu_target_fixture.h"
#include "pow_pairs.h"

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
            struct at ax0[] = {{"axis", IR_ATTR_INT, 0, 0, NULL, 0, NULL}, {0, 0, 0, 0, NULL, 0, NULL}};
            if (ranks[s] > 1) /* the cpu kernel must hand it to ref, not do its last axis */
                compare_node(&c, node(&c, op, 1, &x, ax0), EXACT, "axis 0 (delegated)");
            struct ir_node *n = node(&c, op, 1, &x, ax0);
            if (n && ranks[s] > 1) {
                n->opset = 11; /* axis 0 of opset 11: the whole tensor is one row */
                compare_node(&c, n, lg ? LOGSM : ULP, "opset 11 axis 0");
            }
            ir_graph_free(c.g);
        }
        float sp[12][4] = {{INFINITY, 0, 1, 2}, {-INFINITY, 0, 1, 2},
                           {NAN, 0, 1, 2},      {-INFINITY, -INFINITY, -INFINITY, -INFINITY}};
        for (int r = 4; r < 12; r++) /* 12 rows: 8 side by side (sm_lanes), 4 one at a time */
            memcpy(sp[r], sp[r % 4], sizeof sp[r]);
        int64_t d[2] = {12, 4};
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
    struct at alpha[] = {{"alpha", IR_ATTR_FLOAT, 0, 0.3, NULL, 0, NULL}, {0, 0, 0, 0, NULL, 0, NULL}};
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
        struct at attrs[] = {{"to", IR_ATTR_INT, to, 0, NULL, 0, NULL}, {0, 0, 0, 0, NULL, 0, NULL}};
        compare_node(&c, node(&c, IR_OP_Cast, 1, &in[i], attrs), EXACT, "Cast");
    }
    ir_graph_free(c.g);
}

/* ---- LayerNormalization ------------------------------------------------------------------ */

struct lncase {
    int rank;
    int64_t dims[3];
    int axis;
    int srank, brank;         /* Scale's and B's ranks (brank 0: no B) */
    int64_t sdims[3], bdims[3];
    int nout;                 /* 3: Mean and InvStdDev too */
    int native;               /* the cpu kernel takes it (else it hands it to ref) */
};

/* Y, Mean and InvStdDev on ref and on cpu with 1, 2 and 3 threads, bit for bit; the
 * cpu kernel called directly must take the case, or delegate it, as the case says */
static void ln_compare(const struct lncase *k, uint64_t seed)
{
    struct ctx c;
    ctx_init(&c, seed);
    uint32_t in[3];
    in[0] = frand(&c, k->rank, k->dims, 990, 1010); /* a large mean: the deviations matter */
    in[1] = frand(&c, k->srank, k->sdims, -2, 2);
    if (k->brank)
        in[2] = frand(&c, k->brank, k->bdims, -1, 1);
    struct at axis[] = {{"axis", IR_ATTR_INT, k->axis, 0, NULL, 0, NULL}, {0}};
    struct ir_node *n =
        node_n(&c, IR_OP_LayerNormalization, k->brank ? 3 : 2, in, k->nout, axis);
    if (!n) {
        test_failed_ = 1;
        ir_graph_free(c.g);
        return;
    }
    void *xin[3] = {0}, *want[3] = {0}, *got[3] = {0};
    size_t nb[3];
    for (int i = 0; i < (k->brank ? 3 : 2); i++)
        xin[i] = c.g->t[in[i]].data;
    for (int i = 0; i < k->nout; i++) {
        nb[i] = (size_t)ir_numel(&c.g->t[n->out[i]]) * sizeof(float);
        want[i] = calloc(1, nb[i] + 4);
        got[i] = calloc(1, nb[i] + 4);
    }
    CHECK_EQ(cg_ref.run(c.g, n, xin, want), 0);
    int st = cpu_LayerNormalization(c.g, n, xin, got);
    CHECK_EQ(st, k->native ? 0 : CPU_DELEGATE);
    for (int th = 1; th <= 3; th++) {
        cpu_set_threads(th);
        CHECK_EQ(cg_cpu.run(c.g, n, xin, got), 0);
        for (int i = 0; i < k->nout; i++)
            if (memcmp(got[i], want[i], nb[i])) {
                fprintf(stderr, "  LayerNormalization rank %d axis %d: output %d differs on %d "
                                "threads\n", k->rank, k->axis, i, th);
                test_failed_ = 1;
            }
    }
    cpu_set_threads(0);
    for (int i = 0; i < k->nout; i++) {
        free(want[i]);
        free(got[i]);
    }
    ir_graph_free(c.g);
}

/* the reference's bits: row counts not a multiple of the kernel's 8 side by side,
 * several normalised axes, Scale with leading 1s, no B, the optional outputs, 4096
 * rows split across threads (chunk edges inside a block of 8); Scale or B that vary
 * along only some normalised axes, or along a leading one, go to the reference */
TEST(layer_norm)
{
    static const struct lncase cases[] = {
        {3, {8, 64, 64}, -1, 1, 1, {64}, {64}, 1, 1},
        {2, {13, 7}, 1, 1, 0, {7}, {0}, 3, 1},
        {3, {3, 5, 7}, 1, 2, 2, {5, 7}, {5, 7}, 3, 1},
        {2, {700, 33}, -1, 1, 1, {33}, {33}, 3, 1},
        {2, {4096, 16}, -1, 1, 1, {16}, {16}, 3, 1},
        {3, {3, 5, 7}, 2, 3, 0, {1, 1, 7}, {0}, 3, 1},
        {1, {5}, 0, 1, 1, {5}, {5}, 3, 1},
        {3, {3, 5, 7}, 1, 2, 2, {5, 7}, {1, 7}, 1, 0},
        {3, {3, 5, 7}, 1, 3, 0, {3, 1, 1}, {0}, 3, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ln_compare(&cases[i], 60 + i);
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
                struct at attrs[] = {{"keepdims", IR_ATTR_INT, keep, 0, NULL, 0, NULL}, {0, 0, 0, 0, NULL, 0, NULL}};
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
    struct at attrs[] = {{"noop_with_empty_axes", IR_ATTR_INT, 1, 0, NULL, 0, NULL}, {0, 0, 0, 0, NULL, 0, NULL}};
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
    struct at tanh_attr[] = {{"approximate", IR_ATTR_STRING, 0, 0, "tanh", 0, NULL}, {0, 0, 0, 0, NULL, 0, NULL}};
    int64_t dx[1] = {100};
    uint32_t x = frand(&c, 1, dx, -3, 3);
    compare_node(&c, node(&c, IR_OP_Gelu, 1, &x, tanh_attr), EXACT, "Gelu tanh");
    ir_graph_free(c.g);
    CHECK(cases_run > 0);
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
    T(binary_ops),         T(comparisons),          T(binary_specials),
    T(pow_scalar_exponent), T(pow_tensor_exponent), T(slice_grad), T(where_broadcast),     T(unary_ops),
    T(unary_specials),     T(gelu_left_tail),       T(softmax),  T(layer_norm),
    T(squash_and_grads),
    T(transpose_perms),    T(cast_bool),            T(reduce_sum_mean),
    T(reduce_noop_empty_axes), T(delegates_other_dtypes),
    T(program_mlp_with_gradients), T(default_target_env),
};
TEST_MAIN(tests)
