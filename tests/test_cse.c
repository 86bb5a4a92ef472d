/* test_cse.c — the clean-up passes dc_finish runs on a built program.
 * gemm_fold.c: MatMul(Aᵀ, B), MatMul(A, Bᵀ) and MatMul(Aᵀ, Bᵀ) of 2-D matrices
 * become Gemm with transA/transB, and Add(product, C) a Gemm with C, giving the same
 * values on ref; a batched (3-D) product, a non-swapping permutation, a product read
 * twice and an Add that broadcasts the product stay as they are.
 * cse.c — common-subexpression elimination: equal nodes on equal
 * inputs are computed once, equal small constants count as one, different attributes
 * or inputs keep nodes apart, nodes writing graph outputs stay, and the program's
 * outputs are bit-identical on ref before and after. (Train steps go through the
 * pass in dc_finish; the golden-step tests check their values.) */
#include <stdint.h>

#include "decompose_fixture.h"

static void free_values(struct ir_value *v, int n)
{
    for (int k = 0; k < n; k++)
        ir_value_free(&v[k]);
    free(v);
}

static int count_ops(const struct ir_graph *g, enum ir_op op)
{
    int n = 0;
    for (uint32_t k = 0; k < g->ntopo; k++)
        n += g->n[g->topo[k]].op == op;
    return n;
}

static void fill(struct ir_value *v, char *name, int64_t r, int64_t c, float *buf)
{
    for (int64_t i = 0; i < r * c; i++)
        buf[i] = (float)((i * 7) % 11) * 0.25f - 1.0f;
    *v = (struct ir_value){.name = name, .dtype = IR_F32, .rank = 2, .dims = {r, c},
                           .nbytes = (size_t)(r * c) * sizeof(float), .data = buf};
}

/* g's outputs on ref before and after `pass` and DCE, equal within tol of each
 * element (0: bit for bit); g stays as the passes left it, for the caller's counts */
static void pass_keeps_values(struct ir_graph *g, int (*pass)(struct ir_graph *,
                              struct pass_ctx *, struct diag *),
                              const struct ir_value *in, int n_in, int n_out, double tol)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    struct ir_value *before = NULL, *after = NULL;
    int n0 = 0, n1 = 0;
    CHECK_EQ(rt_run(g, &cg_ref, in, n_in, &before, &n0, &d), ST_OK);
    CHECK_EQ(pass(g, &pc, &d), ST_OK);
    CHECK_EQ(pass_dce(g, &pc, &d), ST_OK);
    CHECK_EQ(ir_verify(g, &d), ST_OK);
    CHECK_EQ(rt_run(g, &cg_ref, in, n_in, &after, &n1, &d), ST_OK);
    CHECK(before && after && n0 == n_out && n1 == n_out);
    for (int k = 0; before && after && k < n0 && k < n1; k++) {
        CHECK_EQ(before[k].nbytes, after[k].nbytes);
        if (tol == 0)
            CHECK(memcmp(before[k].data, after[k].data, before[k].nbytes) == 0);
        else
            CHECK_TENSOR((const float *)after[k].data, (const float *)before[k].data,
                         (long)(before[k].nbytes / sizeof(float)), tol, tol);
    }
    free_values(before, n0);
    free_values(after, n1);
}

/* x[4,3], W[5,3]:
 *   a  = x·0.5 (constant A)      b  = x·0.5 (constant B, equal bytes)   → one Mul
 *   t1 = Wᵀ, t2 = Wᵀ (same perm) → one Transpose;  y1 = a·t1, y2 = b·t2 → one MatMul
 *   c  = x·0.25                  → stays (other constant)
 *   s1 = Softmax(y1, axis 1), s2 = Softmax(y1, axis 0) → both stay (attributes differ)
 *   p  = x·0.5 written to a graph output → stays (pinned)
 * outputs: y1 + y2 + s1 + s2, c, p */
static struct ir_graph *build(struct diag *d)
{
    struct ir_graph *g = ir_graph_new();
    g->opset = 20;
    int64_t xd[2] = {4, 3}, wd[2] = {5, 3}, perm[2] = {1, 0};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd), W = g_input(g, "W", IR_F32, 2, wd);
    struct ir_builder b = bld_begin(g, "t", d);
    uint32_t a = bld_mul(&b, x, bld_f32(&b, 0.5)), bb = bld_mul(&b, x, bld_f32(&b, 0.5));
    uint32_t y1 = bld_matmul(&b, a, bld_transpose(&b, W, 2, perm));
    uint32_t y2 = bld_matmul(&b, bb, bld_transpose(&b, W, 2, perm));
    uint32_t c = bld_mul(&b, x, bld_f32(&b, 0.25));
    struct ir_attr ax1 = bld_attr_int("axis", 1), ax0 = bld_attr_int("axis", 0);
    uint32_t s1 = bld_node(&b, IR_OP_Softmax, 1, &y1, 1, &ax1, 1, NULL);
    uint32_t s2 = bld_node(&b, IR_OP_Softmax, 1, &y1, 1, &ax0, 1, NULL);
    uint32_t sum = bld_add(&b, bld_add(&b, y1, y2), bld_add(&b, s1, s2));
    uint32_t p = bld_mul(&b, x, bld_f32(&b, 0.5));
    ir_graph_add_output(g, sum);
    ir_graph_add_output(g, c);
    ir_graph_add_output(g, p);
    if (b.err) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

TEST(merges_equal_nodes_only)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    struct ir_graph *g = build(&d);
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK_EQ(pass_infer_fold(g, &pc, &d), ST_OK);
    CHECK_EQ(pass_dce(g, &pc, &d), ST_OK);
    CHECK_EQ(count_ops(g, IR_OP_Mul), 4);
    CHECK_EQ(count_ops(g, IR_OP_Transpose), 2);
    CHECK_EQ(count_ops(g, IR_OP_MatMul), 2);
    float x[12], W[15];
    struct ir_value in[2];
    fill(&in[0], "x", 4, 3, x);
    fill(&in[1], "W", 5, 3, W);
    pass_keeps_values(g, pass_cse, in, 2, 3, 0);
    CHECK_EQ(count_ops(g, IR_OP_Mul), 3); /* a (= b), c, and the pinned p */
    CHECK_EQ(count_ops(g, IR_OP_Transpose), 1);
    CHECK_EQ(count_ops(g, IR_OP_MatMul), 1);
    CHECK_EQ(count_ops(g, IR_OP_Softmax), 2);
    ir_graph_free(g);
}

TEST(transposed_operands_become_gemm_flags)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    struct ir_graph *g = ir_graph_new();
    g->opset = 20;
    int64_t ad[2] = {4, 3}, bd[2] = {4, 5}, cd[2] = {5, 3}, sd[3] = {2, 3, 3}, p3[3] = {0, 2, 1};
    uint32_t A = g_input(g, "A", IR_F32, 2, ad), B = g_input(g, "B", IR_F32, 2, bd);
    uint32_t Cm = g_input(g, "C", IR_F32, 2, cd);
    uint32_t S = g_input(g, "S", IR_F32, 3, sd);
    struct ir_builder b = bld_begin(g, "t", &d);
    int64_t sw[2] = {1, 0};
    uint32_t y1 = bld_matmul(&b, bld_transpose(&b, A, 2, sw), B);           /* Aᵀ·B [3,5] */
    uint32_t y2 = bld_matmul(&b, y1, bld_transpose(&b, y1, 2, sw));         /* [3,3] */
    uint32_t y3 = bld_matmul(&b, bld_transpose(&b, Cm, 2, sw), bld_transpose(&b, B, 2, sw));
    uint32_t y4 = bld_matmul(&b, S, bld_transpose(&b, S, 3, p3));           /* batched: transB */
    int64_t same[2] = {0, 1};
    uint32_t y5 = bld_matmul(&b, bld_transpose(&b, y2, 2, same), y2);       /* no swap: stays */
    ir_graph_add_output(g, y1);
    ir_graph_add_output(g, y5);
    ir_graph_add_output(g, y2);
    ir_graph_add_output(g, y3);
    ir_graph_add_output(g, y4);
    CHECK_EQ(b.err, ST_OK);
    CHECK_EQ(pass_infer_fold(g, &pc, &d), ST_OK);
    float a[12], bb[20], c[15], s[18];
    struct ir_value in[4];
    fill(&in[0], "A", 4, 3, a);
    fill(&in[1], "B", 4, 5, bb);
    fill(&in[2], "C", 5, 3, c);
    fill(&in[3], "S", 2, 9, s);
    in[3].rank = 3, in[3].dims[0] = 2, in[3].dims[1] = 3, in[3].dims[2] = 3;
    pass_keeps_values(g, pass_fold_gemm, in, 4, 5, 1e-6);
    CHECK_EQ(count_ops(g, IR_OP_Gemm), 3);
    CHECK_EQ(count_ops(g, IR_OP_MatMul), 2);
    CHECK_EQ(count_ops(g, IR_OP_Transpose), 1); /* the identity's */
    ir_graph_free(g);
}

/* Add(product, C) takes the product over as Gemm(A, B, C) only where that is the same
 * thing: one reader, C broadcasting to the product's shape */
TEST(adds_become_gemm_epilogues)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    struct ir_graph *g = ir_graph_new();
    g->opset = 20;
    int64_t ad[2] = {4, 3}, bd[2] = {4, 5}, vd[1] = {5}, rd[2] = {1, 4};
    uint32_t A = g_input(g, "A", IR_F32, 2, ad), B = g_input(g, "B", IR_F32, 2, bd);
    uint32_t v = g_input(g, "v", IR_F32, 1, vd), r = g_input(g, "r", IR_F32, 2, rd);
    struct ir_builder b = bld_begin(g, "t", &d);
    int64_t sw[2] = {1, 0};
    uint32_t At = bld_transpose(&b, A, 2, sw);
    uint32_t e1 = bld_add(&b, bld_matmul(&b, At, B), v);                  /* Aᵀ·B + bias */
    uint32_t e2 = bld_add(&b, bld_matmul(&b, At, B), bld_matmul(&b, At, B)); /* P + Q */
    uint32_t t = bld_matmul(&b, At, B), e3 = bld_add(&b, t, v), e4 = bld_mul(&b, t, v);
    uint32_t e5 = bld_add(&b, bld_matmul(&b, r, B), bld_matmul(&b, At, B)); /* [1,5] + [3,5] */
    uint32_t e6 = bld_add(&b, bld_matmul(&b, r, B), e1);                  /* [1,5] + [3,5] */
    uint32_t outs[6] = {e1, e2, e3, e4, e5, e6};
    for (int k = 0; k < 6; k++)
        ir_graph_add_output(g, outs[k]);
    CHECK_EQ(b.err, ST_OK);
    CHECK_EQ(pass_infer_fold(g, &pc, &d), ST_OK);
    float a[12], bb[20], vv[5], rr[4];
    struct ir_value in[4];
    fill(&in[0], "A", 4, 3, a);
    fill(&in[1], "B", 4, 5, bb);
    fill(&in[2], "v", 1, 5, vv);
    in[2].rank = 1, in[2].dims[0] = 5;
    fill(&in[3], "r", 1, 4, rr);
    pass_keeps_values(g, pass_fold_gemm, in, 4, 6, 1e-6);
    /* e1, e2 (one product into the other's C) and e5 (its [3,5] product takes the
     * [1,5] one as C) fold; e3's product has two readers and e6's only product would
     * have to broadcast to the sum's shape: those Adds stay */
    CHECK_EQ(count_ops(g, IR_OP_Add), 2);
    int with_c = 0;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        with_c += n->op == IR_OP_Gemm && n->n_in == 3 && n->in[2] != IR_NONE;
    }
    CHECK_EQ(with_c, 3);
    ir_graph_free(g);
}

/* K = 1 products become Mul, 2-D and batched with broadcast batch dims, with the same
 * values (the one product per element; only a zero's sign may differ, ref's sum
 * starting from +0); a K = 2 product and a vector operand stay */
TEST(outer_products_become_mul)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    struct ir_graph *g = ir_graph_new();
    g->opset = 20;
    int64_t cd[2] = {4, 1}, rd[2] = {1, 5}, bcd[3] = {3, 4, 1}, brd[4] = {2, 1, 1, 5}, vd[1] = {1};
    int64_t kd[2] = {4, 2}, k2d[2] = {2, 5};
    uint32_t c = g_input(g, "c", IR_F32, 2, cd), r = g_input(g, "r", IR_F32, 2, rd);
    uint32_t bc = g_input(g, "bc", IR_F32, 3, bcd), br = g_input(g, "br", IR_F32, 4, brd);
    uint32_t v = g_input(g, "v", IR_F32, 1, vd), k = g_input(g, "k", IR_F32, 2, kd);
    uint32_t k2 = g_input(g, "k2", IR_F32, 2, k2d);
    struct ir_builder b = bld_begin(g, "t", &d);
    uint32_t outs[4] = {bld_matmul(&b, c, r),  /* [4,1]·[1,5] */
                        bld_matmul(&b, bc, br), /* [3,4,1]·[2,1,1,5] → [2,3,4,5] */
                        bld_matmul(&b, c, v),   /* [4,1]·[1]: a vector, stays */
                        bld_matmul(&b, k, k2)}; /* K = 2: stays */
    for (int i = 0; i < 4; i++)
        ir_graph_add_output(g, outs[i]);
    CHECK_EQ(b.err, ST_OK);
    CHECK_EQ(pass_infer_fold(g, &pc, &d), ST_OK);
    float bufs[7][40];
    struct ir_value in[7];
    fill(&in[0], "c", 4, 1, bufs[0]);
    fill(&in[1], "r", 1, 5, bufs[1]);
    fill(&in[2], "bc", 12, 1, bufs[2]);
    in[2].rank = 3, in[2].dims[0] = 3, in[2].dims[1] = 4, in[2].dims[2] = 1;
    fill(&in[3], "br", 10, 1, bufs[3]);
    in[3].rank = 4, in[3].dims[0] = 2, in[3].dims[1] = 1, in[3].dims[2] = 1, in[3].dims[3] = 5;
    fill(&in[4], "v", 1, 1, bufs[4]);
    in[4].rank = 1;
    fill(&in[5], "k", 4, 2, bufs[5]);
    fill(&in[6], "k2", 2, 5, bufs[6]);
    pass_keeps_values(g, pass_fold_gemm, in, 7, 4, 1e-30);
    CHECK_EQ(count_ops(g, IR_OP_Mul), 2);
    CHECK_EQ(count_ops(g, IR_OP_MatMul) + count_ops(g, IR_OP_Gemm), 2);
    ir_graph_free(g);
}

/* batched products read swapped operands as they lie (pdc's transA / transB on MatMul)
 * with ref's values: A, B or both swapped, a 2-D B under a batched A, broadcast batch
 * dims; a Transpose that moves a batch dim stays */
TEST(batched_transposes_become_matmul_flags)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    struct ir_graph *g = ir_graph_new();
    g->opset = 20;
    int64_t xd[3] = {3, 5, 4}, wd[2] = {6, 5}, vd[4] = {2, 1, 5, 4}, sw[3] = {0, 2, 1};
    int64_t sw2[2] = {1, 0}, sw4[4] = {0, 1, 3, 2}, mv[3] = {1, 0, 2};
    uint32_t X = g_input(g, "X", IR_F32, 3, xd), W = g_input(g, "W", IR_F32, 2, wd);
    uint32_t V = g_input(g, "V", IR_F32, 4, vd);
    struct ir_builder b = bld_begin(g, "t", &d);
    uint32_t Xt = bld_transpose(&b, X, 3, sw); /* [3, 4, 5] */
    int64_t wd2[2] = {4, 6};
    uint32_t W2 = g_input(g, "W2", IR_F32, 2, wd2);
    uint32_t outs[5] = {
        bld_matmul(&b, Xt, X),                            /* Xᵀ X: transA [3,4,4] */
        bld_matmul(&b, X, Xt),                            /* X Xᵀ: transB [3,5,5] */
        bld_matmul(&b, Xt, bld_transpose(&b, W, 2, sw2)), /* both, B 2-D: [3,4,6] */
        bld_matmul(&b, bld_transpose(&b, V, 4, sw4), X),  /* [2,1,4,5]·[3,5,4] → [2,3,4,4] */
        bld_matmul(&b, bld_transpose(&b, X, 3, mv), W2),  /* [5,3,4]·[4,6]: not a swap */
    };
    for (int i = 0; i < 5; i++)
        ir_graph_add_output(g, outs[i]);
    CHECK_EQ(b.err, ST_OK);
    CHECK_EQ(pass_infer_fold(g, &pc, &d), ST_OK);
    float xb[60], wb[30], vb[40], w2b[24];
    struct ir_value in[4];
    fill(&in[0], "X", 15, 4, xb);
    in[0].rank = 3, in[0].dims[0] = 3, in[0].dims[1] = 5, in[0].dims[2] = 4;
    fill(&in[1], "W", 6, 5, wb);
    fill(&in[2], "V", 10, 4, vb);
    in[2].rank = 4, in[2].dims[0] = 2, in[2].dims[1] = 1, in[2].dims[2] = 5, in[2].dims[3] = 4;
    fill(&in[3], "W2", 4, 6, w2b);
    pass_keeps_values(g, pass_fold_gemm, in, 4, 5, 0);
    int with_flags = 0;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        with_flags += n->op == IR_OP_MatMul && n->n_attr == 2;
    }
    CHECK_EQ(with_flags, 4);
    CHECK_EQ(count_ops(g, IR_OP_Transpose), 1); /* the batch-moving one */
    ir_graph_free(g);
}

/* FLOPs of g's live products (2·M·N·K each) */
static double product_flops(const struct ir_graph *g)
{
    double f = 0;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        const struct ir_tensor *a = &g->t[n->in[0]];
        if (n->op == IR_OP_MatMul)
            f += 2.0 * (double)ir_numel(&g->t[n->out[0]]) * (double)a->dims[a->rank - 1];
    }
    return f;
}

/* live tensors with these two trailing dims */
static int count_shaped(const struct ir_graph *g, int64_t r, int64_t c)
{
    int n = 0;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_tensor *t = &g->t[g->n[g->topo[k]].out[0]];
        n += t->rank == 2 && t->dims[0] == r && t->dims[1] == c;
    }
    return n;
}

/* A residual MLP the width of resid-mlp-1's stream over fewer features (METHOD §6.3)
 * with one masked site, as decompose.c builds it:
 *   r  = x·W_E [64, 200]           a = Relu(r·W_in)
 *   mo = ((a·V) ⊙ m)·U + (a·W_out) ⊙ δ     (δ [64, 1]: a row scale; m [64, 12]: not)
 *   y  = (r + mo)·W_U [64, 10],    h = r·V2 (the CI input: r read twice)
 * Every product into or out of the 200-wide stream moves to the 10-wide side:
 * x·(W_E·W_in), x·(W_E·W_U), ((a·V) ⊙ m)·(U·W_U), (a·(W_out·W_U)) ⊙ δ, x·(W_E·V2). */
/* the graph with shapes inferred (NULL on failure); *r_out: r's tensor */
static struct ir_graph *residual(int keep_r, uint32_t *r_out, struct diag *d)
{
    struct ir_graph *g = ir_graph_new();
    g->opset = 20;
    int64_t B = 64, F = 10, D = 200, H = 5, C = 12;
    int64_t xd[2] = {B, F}, ed[2] = {F, D}, ud[2] = {D, F}, id[2] = {D, H}, od[2] = {H, D};
    int64_t vd[2] = {H, C}, Ud[2] = {C, D}, md[2] = {B, C}, dd[2] = {B, 1}, v2d[2] = {D, C};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd), WE = g_input(g, "WE", IR_F32, 2, ed);
    uint32_t WU = g_input(g, "WU", IR_F32, 2, ud), Win = g_input(g, "Win", IR_F32, 2, id);
    uint32_t Wout = g_input(g, "Wout", IR_F32, 2, od), V = g_input(g, "V", IR_F32, 2, vd);
    uint32_t U = g_input(g, "U", IR_F32, 2, Ud), m = g_input(g, "m", IR_F32, 2, md);
    uint32_t dl = g_input(g, "dl", IR_F32, 2, dd), V2 = g_input(g, "V2", IR_F32, 2, v2d);
    struct ir_builder b = bld_begin(g, "t", d);
    uint32_t r = bld_matmul(&b, x, WE);
    uint32_t a = bld_op1(&b, IR_OP_Relu, bld_matmul(&b, r, Win));
    uint32_t mo = bld_add(&b, bld_matmul(&b, bld_mul(&b, bld_matmul(&b, a, V), m), U),
                          bld_mul(&b, bld_matmul(&b, a, Wout), dl));
    ir_graph_add_output(g, bld_matmul(&b, bld_add(&b, r, mo), WU));
    ir_graph_add_output(g, bld_matmul(&b, r, V2));
    if (keep_r)
        ir_graph_add_output(g, r);
    struct pass_ctx pc = {0};
    if (b.err || pass_infer_fold(g, &pc, d)) {
        ir_graph_free(g);
        return NULL;
    }
    *r_out = r;
    return g;
}

static void residual_inputs(struct ir_value *in, float *buf)
{
    static char *names[10] = {"x", "WE", "WU", "Win", "Wout", "V", "U", "m", "dl", "V2"};
    static const int64_t dims[10][2] = {{64, 10}, {10, 200}, {200, 10}, {200, 5}, {5, 200},
                                        {5, 12}, {12, 200}, {64, 12}, {64, 1}, {200, 12}};
    for (int k = 0; k < 10; k++) {
        fill(&in[k], names[k], dims[k][0], dims[k][1], buf);
        buf += dims[k][0] * dims[k][1];
    }
}

TEST(products_move_to_the_narrow_side)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    uint32_t r;
    struct ir_graph *g = residual(0, &r, &d);
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK_EQ(count_shaped(g, 64, 200), 6); /* r, the two site terms, δ ⊙ ·, mo, r + mo */
    double before = product_flops(g);
    static float buf[20000];
    struct ir_value in[10];
    residual_inputs(in, buf);
    pass_keeps_values(g, pass_reassoc, in, 10, 2, 2e-5);
    double after = product_flops(g);
    CHECK(after < 0.25 * before);
    CHECK_EQ(count_shaped(g, 64, 200), 0); /* the stream is never formed */
    CHECK_EQ(count_shaped(g, 64, 12), 3);  /* a·V, its masked copy, and r·V2 as x·(W_E·V2) */
    int mul_by_m = 0;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        mul_by_m += n->op == IR_OP_Mul && (n->in[0] == ir_tensor_find(g, "m") ||
                                           n->in[1] == ir_tensor_find(g, "m"));
    }
    CHECK_EQ(mul_by_m, 1); /* a per-column mask is not crossed: it stays where it was */
    /* run again: nothing left that pays */
    double once = product_flops(g);
    CHECK_EQ(pass_reassoc(g, &pc, &d), ST_OK);
    CHECK_EQ(pass_dce(g, &pc, &d), ST_OK);
    CHECK(product_flops(g) == once);
    ir_graph_free(g);
}

/* r written to an output stays computed (its id is held), and the rest still moves; r
 * as a barrier stays on its paths; a chain that gets dearer reassociated (2 → 5 wide,
 * TMS's shape) and a batched right operand stay as they are */
TEST(reassociation_keeps_what_is_held_or_dearer)
{
    struct diag d = {0};
    struct pass_ctx pc = {0};
    uint32_t r;
    struct ir_graph *g = residual(1, &r, &d);
    CHECK(g != NULL);
    if (!g)
        return;
    static float buf[20000];
    struct ir_value in[10];
    residual_inputs(in, buf);
    pass_keeps_values(g, pass_reassoc, in, 10, 3, 2e-5);
    CHECK_EQ(count_shaped(g, 64, 200), 1); /* r alone */
    ir_graph_free(g);

    /* r a barrier (a tensor autodiff differentiates by): every product that read r still
     * does, so the loss's path runs through it; the rest still moves */
    g = residual(0, &r, &d);
    CHECK(g != NULL);
    if (!g)
        return;
    int readers_before = 0, readers_after = 0;
    for (uint32_t k = 0; k < g->nn; k++)
        readers_before += g->n[k].op == IR_OP_MatMul && g->n[k].in[0] == r;
    double unbarred = product_flops(g);
    CHECK_EQ(pass_reassoc_keep(g, &r, 1, &d), ST_OK);
    CHECK_EQ(pass_dce(g, &pc, &d), ST_OK);
    for (uint32_t k = 0; k < g->ntopo; k++)
        readers_after += g->n[g->topo[k]].op == IR_OP_MatMul && g->n[g->topo[k]].in[0] == r;
    CHECK_EQ(readers_before, 2); /* r·W_in, r·V2 */
    CHECK_EQ(readers_after, 3);  /* and r·W_U, of (r + mo)·W_U = r·W_U + mo·W_U */
    CHECK(product_flops(g) < unbarred); /* mo's products still moved */
    ir_graph_free(g);

    g = ir_graph_new();
    g->opset = 20;
    int64_t xd[2] = {64, 5}, w1d[2] = {5, 2}, w2d[2] = {2, 5}, bd[3] = {3, 5, 4};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd), W1 = g_input(g, "W1", IR_F32, 2, w1d);
    uint32_t W2 = g_input(g, "W2", IR_F32, 2, w2d), Bt = g_input(g, "Bt", IR_F32, 3, bd);
    struct ir_builder b = bld_begin(g, "t", &d);
    uint32_t h = bld_matmul(&b, x, W1);
    ir_graph_add_output(g, bld_matmul(&b, h, W2));
    ir_graph_add_output(g, bld_matmul(&b, bld_matmul(&b, h, W2), Bt)); /* [3, 64, 4] */
    CHECK_EQ(b.err, ST_OK);
    CHECK_EQ(pass_infer_fold(g, &pc, &d), ST_OK);
    double before = product_flops(g);
    float xb[320], w1b[10], w2b[10], btb[60];
    struct ir_value vin[4];
    fill(&vin[0], "x", 64, 5, xb);
    fill(&vin[1], "W1", 5, 2, w1b);
    fill(&vin[2], "W2", 2, 5, w2b);
    fill(&vin[3], "Bt", 15, 4, btb);
    vin[3].rank = 3, vin[3].dims[0] = 3, vin[3].dims[1] = 5, vin[3].dims[2] = 4;
    pass_keeps_values(g, pass_reassoc, vin, 4, 2, 0);
    CHECK(product_flops(g) == before);
    ir_graph_free(g);
}

static const struct test_case tests[] = {
    T(merges_equal_nodes_only),
    T(batched_transposes_become_matmul_flags),
    T(outer_products_become_mul),
    T(transposed_operands_become_gemm_flags),
    T(adds_become_gemm_epilogues),
    T(products_move_to_the_narrow_side),
    T(reassociation_keeps_what_is_held_or_dearer),
};

TEST_MAIN(tests)
