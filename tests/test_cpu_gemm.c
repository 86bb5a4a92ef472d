/* test_cpu_gemm.c — the cpu target's MatMul and Gemm (codegen/cpu/cpu_gemm.c) against
 * the reference: broadcast, batched and 1-D MatMul, pdc's transA/transB, K = 1 (bit
 * for bit), every Gemm attribute combination, several blocks and K split in blocks,
 * within 1e-5 of the magnitude; on 1, 2 and 3 threads alike; and an ONNX conformance
 * Gemm model as a whole program. */
#include "cpu_target_fixture.h"

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
        struct at tr[] = {{"transA", IR_ATTR_INT, cases[i].ta, 0, NULL, 0, NULL},
                          {"transB", IR_ATTR_INT, cases[i].tb, 0, NULL, 0, NULL},
                          {0, 0, 0, 0, NULL, 0, NULL}};
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
        {"transA", IR_ATTR_INT, ta, 0, NULL, 0, NULL}, {"transB", IR_ATTR_INT, tb, 0, NULL, 0, NULL},
        {"alpha", IR_ATTR_FLOAT, 0, alpha, NULL, 0, NULL}, {"beta", IR_ATTR_FLOAT, 0, beta, NULL, 0, NULL},
        {0, 0, 0, 0, NULL, 0, NULL},
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

static const struct test_case tests[] = {
    T(matmul_shapes),
    T(matmul_transposed_operands),
    T(matmul_k1_exact),
    T(gemm_attributes),
    T(program_gemm_all_attributes),
};
TEST_MAIN(tests)
