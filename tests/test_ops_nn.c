/* test_ops_nn.c — reductions, normalisations, linear algebra, convolution and
 * pooling (ir/shape_reduce.c, ir/shape_nn.c, codegen/ref/ref_reduce.c,
 * ref_norm.c, ref_linalg.c, ref_conv.c) on small hand-built graphs: the
 * corner cases (1-D MatMul promotion, Einsum diagonals and ellipsis, SAME_LOWER,
 * ceil_mode, count_include_pad, legacy Softmax, select_last_index, ...) checked
 * against hand-computed values, and the attributes pdc rejects. */
#include <stdint.h>

#include "harness.h"
#include "ir.h"
#include "node_attrs.h"
#include "target.h"

/* ---- tiny graph builder ------------------------------------------------- */

struct ctx {
    struct ir_graph *g;
    struct diag d;
    int nt;
    void *outs[4];
    uint32_t ot[4];
};

static void ctx_init(struct ctx *c, int opset)
{
    memset(c, 0, sizeof *c);
    c->g = ir_graph_new();
    c->g->opset = opset;
}

static void ctx_free(struct ctx *c)
{
    for (int k = 0; k < 4; k++)
        free(c->outs[k]);
    ir_graph_free(c->g);
}

static uint32_t cst(struct ctx *c, enum ir_dtype dt, int rank, const int64_t *dims,
                    const void *data)
{
    return const_build(c->g, &c->nt, dt, rank, dims, data);
}

static uint32_t f32(struct ctx *c, int rank, const int64_t *dims, const float *data)
{
    return cst(c, IR_F32, rank, dims, data);
}

/* attribute list entries (struct at, node_attrs.h) */

#define AI(nm, v) {nm, IR_ATTR_INT, v, 0, NULL, 0, NULL}
#define AF(nm, v) {nm, IR_ATTR_FLOAT, 0, v, NULL, 0, NULL}
#define AS(nm, v) {nm, IR_ATTR_STRING, 0, 0, v, 0, NULL}
#define AV(nm, arr) {nm, IR_ATTR_INTS, 0, 0, NULL, (int)(sizeof(arr) / sizeof(arr[0])), arr}
#define AEND {NULL, 0, 0, 0, NULL, 0, NULL}

/* Build op(in...) with n_out outputs, infer and run it on the reference
 * target. Returns the shape rule's status, else the kernel's; c->outs[k] get
 * the output buffers, c->ot[k] the output tensor ids. */
static int run(struct ctx *c, enum ir_op op, int n_in, const uint32_t *in, int n_out,
               const struct at *attrs)
{
    uint32_t o[4];
    struct ir_node *n = node_build(c->g, &c->nt, op, n_in, in, n_out, attrs, o);
    memset(&c->d, 0, sizeof c->d);
    int st = ir_infer_node(c->g, n, &c->d);
    if (st)
        return st;
    void *inb[8] = {0};
    for (int i = 0; i < n_in; i++)
        inb[i] = in[i] == IR_NONE ? NULL : c->g->t[in[i]].data;
    for (int k = 0; k < n_out; k++) {
        const struct ir_tensor *t = &c->g->t[o[k]];
        c->outs[k] = calloc((size_t)ir_numel(t) + 1, ir_dtype_size(t->dtype));
        c->ot[k] = o[k];
    }
    return cg_eval_node(c->g, n, inb, c->outs);
}

static void check_dims(const struct ir_tensor *t, int rank, const int64_t *dims, int line)
{
    int ok = t->rank == rank;
    for (int i = 0; ok && i < rank; i++)
        ok = t->dims[i] == dims[i];
    if (!ok) {
        fprintf(stderr, "  %s:%d: output shape differs (rank %d, first dim %lld)\n", __FILE__,
                line, t->rank, (long long)(t->rank > 0 ? t->dims[0] : -1));
        test_failed_ = 1;
    }
}
#define CHECK_DIMS(c, k, rank, ...)                                            \
    do {                                                                       \
        int64_t want_[] = {__VA_ARGS__};                                       \
        check_dims(&(c)->g->t[(c)->ot[k]], rank, want_, __LINE__);             \
    } while (0)

static void iota(float *v, int n, float start)
{
    for (int i = 0; i < n; i++)
        v[i] = start + (float)i;
}

/* ---- linear algebra ------------------------------------------------------- */

/* A (3) @ B (2, 3, 2): A is promoted to (1, 3), the 1 dropped again -> (2, 2) */
TEST(matmul_1d_promotion_and_batch)
{
    struct ctx c;
    ctx_init(&c, 13);
    float a[3] = {1, 2, 3}, b[12];
    iota(b, 12, 0);
    int64_t da[1] = {3}, db[3] = {2, 3, 2};
    uint32_t in[2] = {f32(&c, 1, da, a), f32(&c, 3, db, b)};
    CHECK_EQ(run(&c, IR_OP_MatMul, 2, in, 1, NULL), ST_OK);
    CHECK_DIMS(&c, 0, 2, 2, 2);
    float want[4] = {0 + 4 + 12, 1 + 6 + 15, 6 + 16 + 30, 7 + 18 + 33};
    CHECK_TENSOR((float *)c.outs[0], want, 4, 0, 0);
    ctx_free(&c);
}

/* int64 products past 2^53 stay exact (no double round trip) */
TEST(matmul_int64_exact)
{
    struct ctx c;
    ctx_init(&c, 13);
    int64_t a[2] = {(int64_t)1 << 40, 3}, b[2] = {(1 << 20) + 1, 5};
    int64_t da[2] = {1, 2}, db[2] = {2, 1};
    uint32_t in[2] = {cst(&c, IR_I64, 2, da, a), cst(&c, IR_I64, 2, db, b)};
    CHECK_EQ(run(&c, IR_OP_MatMul, 2, in, 1, NULL), ST_OK);
    CHECK(((int64_t *)c.outs[0])[0] == ((int64_t)1 << 60) + ((int64_t)1 << 40) + 15);
    ctx_free(&c);
}

/* Y = 0.5 * A^T @ B^T + 2 * C with C (N) broadcast over rows */
TEST(gemm_transposes_and_vector_bias)
{
    struct ctx c;
    ctx_init(&c, 13);
    float a[6], b[6], cv[2] = {1, 2};
    iota(a, 6, 1); /* A stored (K=3, M=2) */
    iota(b, 6, 1); /* B stored (N=2, K=3) */
    int64_t da[2] = {3, 2}, db[2] = {2, 3}, dc[1] = {2};
    uint32_t in[3] = {f32(&c, 2, da, a), f32(&c, 2, db, b), f32(&c, 1, dc, cv)};
    struct at at[] = {AI("transA", 1), AI("transB", 1), AF("alpha", 0.5), AF("beta", 2.0), AEND};
    CHECK_EQ(run(&c, IR_OP_Gemm, 3, in, 1, at), ST_OK);
    CHECK_DIMS(&c, 0, 2, 2, 2);
    /* op(A) = [[1,3,5],[2,4,6]], op(B) = [[1,4],[2,5],[3,6]] */
    float want[4] = {0.5f * 22 + 2, 0.5f * 49 + 4, 0.5f * 28 + 2, 0.5f * 64 + 4};
    CHECK_TENSOR((float *)c.outs[0], want, 4, 0, 1e-6);
    ctx_free(&c);
}

TEST(einsum_trace_diagonal_implicit)
{
    struct ctx c;
    ctx_init(&c, 12);
    float m[18];
    iota(m, 18, 0);
    int64_t d2[2] = {3, 3}, d3[3] = {2, 3, 3};
    uint32_t t2 = f32(&c, 2, d2, m), t3 = f32(&c, 3, d3, m);
    struct at tr[] = {AS("equation", "ii"), AEND};
    CHECK_EQ(run(&c, IR_OP_Einsum, 1, &t2, 1, tr), ST_OK);
    CHECK_EQ(c.g->t[c.ot[0]].rank, 0);
    CHECK_NEAR(((float *)c.outs[0])[0], 0 + 4 + 8, 0);
    free(c.outs[0]);
    c.outs[0] = NULL;

    struct at dg[] = {AS("equation", "... i i -> ... i"), AEND};
    CHECK_EQ(run(&c, IR_OP_Einsum, 1, &t3, 1, dg), ST_OK);
    CHECK_DIMS(&c, 0, 2, 2, 3);
    float want[6] = {0, 4, 8, 9, 13, 17};
    CHECK_TENSOR((float *)c.outs[0], want, 6, 0, 0);
    free(c.outs[0]);
    c.outs[0] = NULL;

    /* implicit output of "ji,jk" is "ik" (letters seen once, sorted) */
    uint32_t two[2] = {t2, t2};
    struct at mm[] = {AS("equation", "ji,jk"), AEND};
    CHECK_EQ(run(&c, IR_OP_Einsum, 2, two, 1, mm), ST_OK);
    CHECK_DIMS(&c, 0, 2, 3, 3);
    CHECK_NEAR(((float *)c.outs[0])[1], 0 * 1 + 3 * 4 + 6 * 7, 0); /* (M^T M)[0][1] */
    ctx_free(&c);
}

TEST(einsum_rejects_bad_equations)
{
    struct ctx c;
    ctx_init(&c, 12);
    float m[6] = {0};
    int64_t d[2] = {2, 3};
    uint32_t t = f32(&c, 2, d, m), two[2] = {t, t};
    struct at e1[] = {AS("equation", "ijk->i"), AEND}; /* 3 indices, rank 2 */
    CHECK_EQ(run(&c, IR_OP_Einsum, 1, &t, 1, e1), ST_ERR_SHAPE);
    struct at e2[] = {AS("equation", "ij,ij->iz"), AEND}; /* z appears in no input */
    CHECK_EQ(run(&c, IR_OP_Einsum, 2, two, 1, e2), ST_ERR_INVALID);
    struct at e3[] = {AS("equation", "ij,ji->i"), AEND}; /* j is 3 and 2 */
    CHECK_EQ(run(&c, IR_OP_Einsum, 2, two, 1, e3), ST_ERR_SHAPE);
    ctx_free(&c);
}

/* ---- convolution and pooling ---------------------------------------------- */

/* the ONNX test_conv_with_autopad_same case: the odd pad goes first */
TEST(conv_same_lower_strided)
{
    struct ctx c;
    ctx_init(&c, 11);
    float x[25], w[9];
    iota(x, 25, 0);
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    int64_t dx[4] = {1, 1, 5, 5}, dw[4] = {1, 1, 3, 3}, st[2] = {2, 2};
    uint32_t in[2] = {f32(&c, 4, dx, x), f32(&c, 4, dw, w)};
    struct at at[] = {AS("auto_pad", "SAME_LOWER"), AV("strides", st), AEND};
    CHECK_EQ(run(&c, IR_OP_Conv, 2, in, 1, at), ST_OK);
    CHECK_DIMS(&c, 0, 4, 1, 1, 3, 3);
    float want[9] = {12, 27, 24, 63, 108, 81, 72, 117, 84};
    CHECK_TENSOR((float *)c.outs[0], want, 9, 0, 0);
    ctx_free(&c);
}

/* depthwise 1-D (group = C) with bias and asymmetric pads */
TEST(conv_grouped_1d_bias)
{
    struct ctx c;
    ctx_init(&c, 11);
    float x[8] = {1, 2, 3, 4, 10, 20, 30, 40}, w[4] = {1, -1, 2, 1}, b[2] = {100, 0};
    int64_t dx[3] = {1, 2, 4}, dw[3] = {2, 1, 2}, db[1] = {2}, pads[2] = {1, 0};
    uint32_t in[3] = {f32(&c, 3, dx, x), f32(&c, 3, dw, w), f32(&c, 1, db, b)};
    struct at at[] = {AI("group", 2), AV("pads", pads), AEND};
    CHECK_EQ(run(&c, IR_OP_Conv, 3, in, 1, at), ST_OK);
    CHECK_DIMS(&c, 0, 3, 1, 2, 4);
    /* ch0: y[o] = x[o-1] - x[o] + 100; ch1: y[o] = 2 x[o-1] + x[o] */
    float want[8] = {99, 99, 99, 99, 10, 40, 70, 100};
    CHECK_TENSOR((float *)c.outs[0], want, 8, 0, 0);
    ctx_free(&c);
}

TEST(maxpool_ceil_mode)
{
    struct ctx c;
    ctx_init(&c, 12);
    float x[16];
    iota(x, 16, 1);
    int64_t dx[4] = {1, 1, 4, 4}, k[2] = {3, 3}, s[2] = {2, 2};
    uint32_t in = f32(&c, 4, dx, x);
    struct at at[] = {AV("kernel_shape", k), AV("strides", s), AI("ceil_mode", 1), AEND};
    CHECK_EQ(run(&c, IR_OP_MaxPool, 1, &in, 1, at), ST_OK);
    CHECK_DIMS(&c, 0, 4, 1, 1, 2, 2);
    float want[4] = {11, 12, 15, 16};
    CHECK_TENSOR((float *)c.outs[0], want, 4, 0, 0);
    ctx_free(&c);
}

/* 1-D average over pads: count_include_pad divides by the padded window */
TEST(averagepool_count_include_pad)
{
    float x[3] = {3, 6, 9};
    int64_t dx[3] = {1, 1, 3}, k[1] = {2}, pads[2] = {1, 1};
    for (int inc = 0; inc <= 1; inc++) {
        struct ctx c;
        ctx_init(&c, 11);
        uint32_t in = f32(&c, 3, dx, x);
        struct at at[] = {AV("kernel_shape", k), AV("pads", pads), AI("count_include_pad", inc),
                          AEND};
        CHECK_EQ(run(&c, IR_OP_AveragePool, 1, &in, 1, at), ST_OK);
        CHECK_DIMS(&c, 0, 3, 1, 1, 4);
        float excl[4] = {3, 4.5f, 7.5f, 9}, incl[4] = {1.5f, 4.5f, 7.5f, 4.5f};
        CHECK_TENSOR((float *)c.outs[0], inc ? incl : excl, 4, 0, 1e-6);
        ctx_free(&c);
    }
}

TEST(nn_rejections)
{
    struct ctx c;
    ctx_init(&c, 11);
    float x[32] = {0};
    int64_t d6[6] = {1, 1, 2, 2, 2, 2}, d4[4] = {1, 2, 2, 2}, k4[4] = {1, 1, 1, 1};
    uint32_t x6 = f32(&c, 6, d6, x), x4 = f32(&c, 4, d4, x);
    uint32_t cin[2] = {x6, x6};
    CHECK_EQ(run(&c, IR_OP_Conv, 2, cin, 1, NULL), ST_ERR_UNSUPPORTED); /* 4 spatial dims */
    CHECK_STR_CONTAINS(c.d.msg, "spatial");
    int64_t k2[2] = {2, 2};
    struct at bad[] = {AV("kernel_shape", k2), AS("auto_pad", "SAME_MIDDLE"), AEND};
    CHECK_EQ(run(&c, IR_OP_MaxPool, 1, &x4, 1, bad), ST_ERR_INVALID);
    struct at big[] = {AV("kernel_shape", k2), AV("strides", k4), AEND}; /* 4 strides for 2-D */
    CHECK_EQ(run(&c, IR_OP_AveragePool, 1, &x4, 1, big), ST_ERR_INVALID);
    ctx_free(&c);
}

/* ---- reductions ------------------------------------------------------------ */

TEST(reduce_int_sum_and_noop)
{
    struct ctx c;
    ctx_init(&c, 18);
    int32_t x[6] = {1, 2, 3, 4, 5, 6};
    int64_t dx[2] = {2, 3}, ax[1] = {-1}, dax[1] = {1}, d0[1] = {0};
    uint32_t in[2] = {cst(&c, IR_I32, 2, dx, x), cst(&c, IR_I64, 1, dax, ax)};
    struct at keep0[] = {AI("keepdims", 0), AEND};
    CHECK_EQ(run(&c, IR_OP_ReduceSum, 2, in, 1, keep0), ST_OK);
    CHECK_DIMS(&c, 0, 1, 2);
    CHECK_EQ(((int32_t *)c.outs[0])[0], 6);
    CHECK_EQ(((int32_t *)c.outs[0])[1], 15);
    free(c.outs[0]);
    c.outs[0] = NULL;
    /* empty axes + noop_with_empty_axes: identity */
    in[1] = cst(&c, IR_I64, 1, d0, NULL);
    struct at noop[] = {AI("noop_with_empty_axes", 1), AEND};
    CHECK_EQ(run(&c, IR_OP_ReduceMean, 2, in, 1, noop), ST_OK);
    CHECK_DIMS(&c, 0, 2, 2, 3);
    CHECK_EQ(((int32_t *)c.outs[0])[5], 6);
    ctx_free(&c);
}

/* LogSumExp of huge values must not overflow; repeated axes are an error */
TEST(reduce_logsumexp_stable_and_dup_axes)
{
    struct ctx c;
    ctx_init(&c, 18);
    float x[2] = {1000, 1000};
    int64_t dx[1] = {2}, ax[2] = {0, -1}, dax[1] = {2};
    uint32_t in = f32(&c, 1, dx, x);
    CHECK_EQ(run(&c, IR_OP_ReduceLogSumExp, 1, &in, 1, NULL), ST_OK);
    CHECK_NEAR(((float *)c.outs[0])[0], 1000.0 + log(2.0), 1e-3);
    uint32_t in2[2] = {in, cst(&c, IR_I64, 1, dax, ax)};
    CHECK_EQ(run(&c, IR_OP_ReduceSum, 2, in2, 1, NULL), ST_ERR_INVALID);
    ctx_free(&c);
}

TEST(argmax_select_last_index)
{
    struct ctx c;
    ctx_init(&c, 13);
    float x[6] = {2, 7, 7, 0, 1, 0}; /* ties: 7s in row 0, 0s in row 1 */
    int64_t dx[2] = {2, 3};
    uint32_t in = f32(&c, 2, dx, x);
    struct at first[] = {AI("axis", 1), AI("keepdims", 0), AEND};
    CHECK_EQ(run(&c, IR_OP_ArgMax, 1, &in, 1, first), ST_OK);
    CHECK_EQ(((int64_t *)c.outs[0])[0], 1);
    CHECK_EQ(((int64_t *)c.outs[0])[1], 1);
    free(c.outs[0]);
    c.outs[0] = NULL;
    struct at last[] = {AI("axis", 1), AI("select_last_index", 1), AEND};
    CHECK_EQ(run(&c, IR_OP_ArgMin, 1, &in, 1, last), ST_OK);
    CHECK_DIMS(&c, 0, 2, 2, 1);
    CHECK_EQ(((int64_t *)c.outs[0])[0], 0);
    CHECK_EQ(((int64_t *)c.outs[0])[1], 2);
    ctx_free(&c);
}

TEST(cumsum_exclusive_reverse)
{
    struct ctx c;
    ctx_init(&c, 14);
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t dx[2] = {2, 3};
    int32_t ax = -1;
    uint32_t in[2] = {f32(&c, 2, dx, x), cst(&c, IR_I32, 0, NULL, &ax)};
    struct at at[] = {AI("exclusive", 1), AI("reverse", 1), AEND};
    CHECK_EQ(run(&c, IR_OP_CumSum, 2, in, 1, at), ST_OK);
    float want[6] = {5, 3, 0, 11, 6, 0};
    CHECK_TENSOR((float *)c.outs[0], want, 6, 0, 0);
    ctx_free(&c);
}

/* ---- softmax and normalisations -------------------------------------------- */

/* opset 11 flattens from axis 1 (one softmax over 2x2 per batch); opset 13
 * normalises along axis 1 only */
TEST(softmax_legacy_vs_13)
{
    float x[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    int64_t dx[3] = {2, 2, 2};
    struct at ax1[] = {AI("axis", 1), AEND};
    struct ctx c;
    ctx_init(&c, 11);
    uint32_t in = f32(&c, 3, dx, x);
    CHECK_EQ(run(&c, IR_OP_Softmax, 1, &in, 1, ax1), ST_OK);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(((float *)c.outs[0])[i], 0.25, 1e-7);
    ctx_free(&c);
    ctx_init(&c, 13);
    in = f32(&c, 3, dx, x);
    CHECK_EQ(run(&c, IR_OP_Softmax, 1, &in, 1, ax1), ST_OK);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(((float *)c.outs[0])[i], 0.5, 1e-7);
    ctx_free(&c);
}

TEST(layernorm_mean_invstd_outputs)
{
    struct ctx c;
    ctx_init(&c, 17);
    float x[4] = {1, 3, 10, 14}, sc[2] = {1, 2}, b[2] = {0, 1};
    int64_t dx[2] = {2, 2}, ds[1] = {2};
    uint32_t in[3] = {f32(&c, 2, dx, x), f32(&c, 1, ds, sc), f32(&c, 1, ds, b)};
    struct at at[] = {AF("epsilon", 0.0), AEND};
    CHECK_EQ(run(&c, IR_OP_LayerNormalization, 3, in, 3, at), ST_OK);
    CHECK_DIMS(&c, 1, 2, 2, 1);
    float y[4] = {-1, 3, -1, 3}, mean[2] = {2, 12}, inv[2] = {1, 0.5f};
    CHECK_TENSOR((float *)c.outs[0], y, 4, 1e-6, 0);
    CHECK_TENSOR((float *)c.outs[1], mean, 2, 0, 0);
    CHECK_TENSOR((float *)c.outs[2], inv, 2, 0, 1e-7);
    ctx_free(&c);
}

TEST(batchnorm_inference_and_rejections)
{
    struct ctx c;
    ctx_init(&c, 15);
    float x[4] = {1, 2, 3, 4}, sc[2] = {2, 1}, b[2] = {1, 0}, m[2] = {1, 3}, v[2] = {4, 1};
    int64_t dx[3] = {1, 2, 2}, dc[1] = {2};
    uint32_t in[5] = {f32(&c, 3, dx, x), f32(&c, 1, dc, sc), f32(&c, 1, dc, b),
                      f32(&c, 1, dc, m), f32(&c, 1, dc, v)};
    struct at eps0[] = {AF("epsilon", 0.0), AEND};
    CHECK_EQ(run(&c, IR_OP_BatchNormalization, 5, in, 1, eps0), ST_OK);
    float want[4] = {1, 2, 0, 1};
    CHECK_TENSOR((float *)c.outs[0], want, 4, 0, 0);
    struct at train[] = {AI("training_mode", 1), AEND};
    CHECK_EQ(run(&c, IR_OP_BatchNormalization, 5, in, 1, train), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(c.d.msg, "training_mode");
    struct at spatial0[] = {AI("spatial", 0), AEND};
    CHECK_EQ(run(&c, IR_OP_BatchNormalization, 5, in, 1, spatial0), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(c.d.msg, "spatial");
    ctx_free(&c);
}

static const struct test_case tests[] = {
    T(matmul_1d_promotion_and_batch),
    T(matmul_int64_exact),
    T(gemm_transposes_and_vector_bias),
    T(einsum_trace_diagonal_implicit),
    T(einsum_rejects_bad_equations),
    T(conv_same_lower_strided),
    T(conv_grouped_1d_bias),
    T(maxpool_ceil_mode),
    T(averagepool_count_include_pad),
    T(nn_rejections),
    T(reduce_int_sum_and_noop),
    T(reduce_logsumexp_stable_and_dup_axes),
    T(argmax_select_last_index),
    T(cumsum_exclusive_reverse),
    T(softmax_legacy_vs_13),
    T(layernorm_mean_invstd_outputs),
    T(batchnorm_inference_and_rejections),
};

TEST_MAIN(tests)
