/* test_ops_elem.c — the elementwise families (ir/shape_elem.c, codegen/ref/ref_unary.c,
 * codegen/ref/ref_binary.c) on small hand-built graphs: broadcasting, integer
 * semantics, rounding, Cast corner cases, and the errors the shape rules give. */
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
};

static void ctx_init(struct ctx *c)
{
    memset(c, 0, sizeof *c);
    c->g = ir_graph_new();
    c->g->opset = 18;
}

static uint32_t cst(struct ctx *c, enum ir_dtype dt, int rank, const int64_t *dims,
                    const void *data)
{
    return const_build(c->g, &c->nt, dt, rank, dims, data);
}

/* Build node op(in...) with n_out outputs, infer it, and run it. Returns the
 * shape rule's status (the kernel's when inference passed); outs[k] receive
 * malloc'd output buffers and *ot the output tensor ids. */
static int run(struct ctx *c, enum ir_op op, int n_in, const uint32_t *in, int n_out,
               const struct at *attrs, void **outs, uint32_t *ot)
{
    uint32_t o[4];
    struct ir_node *n = node_build(c->g, &c->nt, op, n_in, in, n_out, attrs, o);
    memset(&c->d, 0, sizeof c->d);
    int st = ir_infer_node(c->g, n, &c->d);
    if (st)
        return st;
    void *inb[8] = {0}, *outb[4] = {0};
    for (int i = 0; i < n_in; i++)
        inb[i] = in[i] == IR_NONE ? NULL : c->g->t[in[i]].data;
    for (int k = 0; k < n_out; k++) {
        const struct ir_tensor *t = &c->g->t[o[k]];
        outb[k] = calloc((size_t)ir_numel(t) + 1, ir_dtype_size(t->dtype));
        outs[k] = outb[k];
        if (ot)
            ot[k] = o[k];
    }
    return cg_eval_node(c->g, n, inb, outb);
}

static void ctx_free(struct ctx *c, void **outs, int n)
{
    for (int k = 0; k < n; k++)
        free(outs[k]);
    ir_graph_free(c->g);
}

/* ---- broadcasting -------------------------------------------------------- */

TEST(add_broadcast_both_sides)
{
    struct ctx c;
    ctx_init(&c);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {10, 20, 30, 40};
    int64_t da[3] = {2, 1, 3}, db[2] = {4, 1};
    uint32_t in[2] = {cst(&c, IR_F32, 3, da, a), cst(&c, IR_F32, 2, db, b)}, ot;
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Add, 2, in, 1, NULL, o, &ot), ST_OK);
    const struct ir_tensor *t = &c.g->t[ot];
    CHECK_EQ(t->rank, 3);
    CHECK_EQ(t->dims[0], 2);
    CHECK_EQ(t->dims[1], 4);
    CHECK_EQ(t->dims[2], 3);
    float want[24];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                want[(i * 4 + j) * 3 + k] = a[i * 3 + k] + b[j];
    CHECK_TENSOR((float *)o[0], want, 24, 0, 0);
    ctx_free(&c, o, 1);
}

TEST(scalar_and_incompatible)
{
    struct ctx c;
    ctx_init(&c);
    float a = 2, b = 3;
    uint32_t in[2] = {cst(&c, IR_F32, 0, NULL, &a), cst(&c, IR_F32, 0, NULL, &b)}, ot;
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Mul, 2, in, 1, NULL, o, &ot), ST_OK);
    CHECK_EQ(c.g->t[ot].rank, 0);
    CHECK_NEAR(*(float *)o[0], 6, 0);
    free(o[0]);
    float x[6] = {0}, y[4] = {0};
    int64_t dx[2] = {2, 3}, dy[1] = {4};
    uint32_t in2[2] = {cst(&c, IR_F32, 2, dx, x), cst(&c, IR_F32, 1, dy, y)};
    CHECK_EQ(run(&c, IR_OP_Add, 2, in2, 1, NULL, o, NULL), ST_ERR_SHAPE);
    int32_t yi[3] = {0};
    int64_t dyi[1] = {3};
    uint32_t in3[2] = {in2[0], cst(&c, IR_I32, 1, dyi, yi)};
    CHECK_EQ(run(&c, IR_OP_Add, 2, in3, 1, NULL, o, NULL), ST_ERR_INVALID);
    ir_graph_free(c.g);
}

TEST(where_three_way)
{
    struct ctx c;
    ctx_init(&c);
    uint8_t cond[2] = {1, 0};
    int64_t x[3] = {1, 2, 3}, y = -1;
    int64_t dc[2] = {2, 1}, dx[2] = {1, 3};
    uint32_t in[3] = {cst(&c, IR_BOOL, 2, dc, cond), cst(&c, IR_I64, 2, dx, x),
                      cst(&c, IR_I64, 0, NULL, &y)};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Where, 3, in, 1, NULL, o, NULL), ST_OK);
    int64_t want[6] = {1, 2, 3, -1, -1, -1};
    for (int i = 0; i < 6; i++)
        CHECK_EQ(((int64_t *)o[0])[i], want[i]);
    ctx_free(&c, o, 1);
}

TEST(variadic_sum_mean_max)
{
    struct ctx c;
    ctx_init(&c);
    float a[3] = {1, 2, 3}, b[2] = {10, 20}, s = 100;
    int64_t da[2] = {1, 3}, db[2] = {2, 1};
    uint32_t in[3] = {cst(&c, IR_F32, 2, da, a), cst(&c, IR_F32, 2, db, b),
                      cst(&c, IR_F32, 0, NULL, &s)};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Sum, 3, in, 1, NULL, o, NULL), ST_OK);
    float want[6] = {111, 112, 113, 121, 122, 123};
    CHECK_TENSOR((float *)o[0], want, 6, 0, 0);
    free(o[0]);
    CHECK_EQ(run(&c, IR_OP_Mean, 3, in, 1, NULL, o, NULL), ST_OK);
    for (int i = 0; i < 6; i++)
        want[i] /= 3;
    CHECK_TENSOR((float *)o[0], want, 6, 0, 1e-7);
    free(o[0]);
    uint64_t u[2] = {(1ull << 63) + 1, 5}, v[2] = {1, 7};
    int64_t d2[1] = {2};
    uint32_t inu[2] = {cst(&c, IR_U64, 1, d2, u), cst(&c, IR_U64, 1, d2, v)};
    CHECK_EQ(run(&c, IR_OP_Max, 2, inu, 1, NULL, o, NULL), ST_OK);
    CHECK(((uint64_t *)o[0])[0] == (1ull << 63) + 1);
    CHECK(((uint64_t *)o[0])[1] == 7);
    ctx_free(&c, o, 1);
}

TEST(prelu_unidirectional)
{
    struct ctx c;
    ctx_init(&c);
    float x[6] = {-1, 2, -3, 4, -5, 6}, s[3] = {0.5f, 2, 3};
    int64_t dx[2] = {2, 3}, ds[1] = {3}, ds_bad[3] = {2, 1, 3};
    uint32_t in[2] = {cst(&c, IR_F32, 2, dx, x), cst(&c, IR_F32, 1, ds, s)};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_PRelu, 2, in, 1, NULL, o, NULL), ST_OK);
    float want[6] = {-0.5f, 2, -9, 4, -10, 6};
    CHECK_TENSOR((float *)o[0], want, 6, 0, 0);
    free(o[0]);
    float sb[6] = {0};
    uint32_t in2[2] = {in[0], cst(&c, IR_F32, 3, ds_bad, sb)};
    CHECK_EQ(run(&c, IR_OP_PRelu, 2, in2, 1, NULL, o, NULL), ST_ERR_SHAPE);
    ir_graph_free(c.g);
}

/* ---- integer semantics --------------------------------------------------- */

TEST(int_div_mod_pow)
{
    struct ctx c;
    ctx_init(&c);
    int32_t a[5] = {-7, 7, -7, -4, 5}, b[5] = {2, -2, 0, 3, -3};
    int64_t d[1] = {5};
    uint32_t in[2] = {cst(&c, IR_I32, 1, d, a), cst(&c, IR_I32, 1, d, b)};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Div, 2, in, 1, NULL, o, NULL), ST_OK);
    int32_t div_want[5] = {-3, -3, 0, -1, -1};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(((int32_t *)o[0])[i], div_want[i]);
    free(o[0]);
    CHECK_EQ(run(&c, IR_OP_Mod, 2, in, 1, NULL, o, NULL), ST_OK); /* Python-style */
    int32_t mod_want[5] = {1, -1, 0, 2, -1};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(((int32_t *)o[0])[i], mod_want[i]);
    free(o[0]);
    struct at fm[] = {{"fmod", IR_ATTR_INT, 1, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Mod, 2, in, 1, fm, o, NULL), ST_OK); /* C-style */
    int32_t fmod_want[5] = {-1, 1, 0, -1, 2};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(((int32_t *)o[0])[i], fmod_want[i]);
    free(o[0]);
    int64_t pa[4] = {2, -3, 2, -1}, pb[4] = {10, 3, -1, -3};
    int64_t d4[1] = {4};
    uint32_t inp[2] = {cst(&c, IR_I64, 1, d4, pa), cst(&c, IR_I64, 1, d4, pb)};
    CHECK_EQ(run(&c, IR_OP_Pow, 2, inp, 1, NULL, o, NULL), ST_OK);
    int64_t pow_want[4] = {1024, -27, 0, -1};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(((int64_t *)o[0])[i], pow_want[i]);
    free(o[0]);
    uint64_t ua = UINT64_MAX, ub = 10;
    uint32_t inu[2] = {cst(&c, IR_U64, 0, NULL, &ua), cst(&c, IR_U64, 0, NULL, &ub)};
    CHECK_EQ(run(&c, IR_OP_Mod, 2, inu, 1, NULL, o, NULL), ST_OK);
    CHECK(*(uint64_t *)o[0] == 5);
    free(o[0]);
    int8_t ia = 100, ib = 100;
    uint32_t in8[2] = {cst(&c, IR_I8, 0, NULL, &ia), cst(&c, IR_I8, 0, NULL, &ib)};
    CHECK_EQ(run(&c, IR_OP_Add, 2, in8, 1, NULL, o, NULL), ST_OK);
    CHECK_EQ(*(int8_t *)o[0], -56);
    ctx_free(&c, o, 1);
}

TEST(pow_mixed_types)
{
    struct ctx c;
    ctx_init(&c);
    float x[2] = {2, -1.5f};
    int64_t e[2] = {3, 2}, d[1] = {2};
    uint32_t in[2] = {cst(&c, IR_F32, 1, d, x), cst(&c, IR_I64, 1, d, e)}, ot;
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Pow, 2, in, 1, NULL, o, &ot), ST_OK);
    CHECK_EQ(c.g->t[ot].dtype, IR_F32);
    float want[2] = {8, 2.25f};
    CHECK_TENSOR((float *)o[0], want, 2, 0, 0);
    free(o[0]);
    int32_t xi[2] = {3, 2};
    float ef[2] = {2.5f, 0.5f};
    uint32_t in2[2] = {cst(&c, IR_I32, 1, d, xi), cst(&c, IR_F32, 1, d, ef)};
    CHECK_EQ(run(&c, IR_OP_Pow, 2, in2, 1, NULL, o, &ot), ST_OK);
    CHECK_EQ(c.g->t[ot].dtype, IR_I32);
    CHECK_EQ(((int32_t *)o[0])[0], 15); /* trunc(15.588) */
    CHECK_EQ(((int32_t *)o[0])[1], 1);
    ctx_free(&c, o, 1);
}

TEST(compare_and_logic)
{
    struct ctx c;
    ctx_init(&c);
    uint64_t a[3] = {UINT64_MAX, 1, 5}, b[3] = {1, 1, 6};
    int64_t d[1] = {3};
    uint32_t in[2] = {cst(&c, IR_U64, 1, d, a), cst(&c, IR_U64, 1, d, b)}, ot;
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Greater, 2, in, 1, NULL, o, &ot), ST_OK);
    CHECK_EQ(c.g->t[ot].dtype, IR_BOOL);
    uint8_t *r = o[0];
    CHECK(r[0] == 1 && r[1] == 0 && r[2] == 0);
    free(o[0]);
    uint8_t p[4] = {0, 0, 1, 1}, q[4] = {0, 1, 0, 1};
    int64_t d4[1] = {4};
    uint32_t inb[2] = {cst(&c, IR_BOOL, 1, d4, p), cst(&c, IR_BOOL, 1, d4, q)};
    CHECK_EQ(run(&c, IR_OP_Xor, 2, inb, 1, NULL, o, NULL), ST_OK);
    r = o[0];
    CHECK(r[0] == 0 && r[1] == 1 && r[2] == 1 && r[3] == 0);
    free(o[0]);
    CHECK_EQ(run(&c, IR_OP_Equal, 2, inb, 1, NULL, o, NULL), ST_OK);
    r = o[0];
    CHECK(r[0] == 1 && r[1] == 0 && r[2] == 0 && r[3] == 1);
    free(o[0]);
    float f[2] = {1, 2};
    int64_t d2[1] = {2};
    uint32_t inf[2] = {cst(&c, IR_F32, 1, d2, f), cst(&c, IR_F32, 1, d2, f)};
    CHECK_EQ(run(&c, IR_OP_And, 2, inf, 1, NULL, o, NULL), ST_ERR_INVALID);
    ir_graph_free(c.g);
}

/* ---- unary --------------------------------------------------------------- */

TEST(round_half_even_and_sign)
{
    struct ctx c;
    ctx_init(&c);
    float x[7] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f, -2.6f};
    int64_t d[1] = {7};
    uint32_t in[1] = {cst(&c, IR_F32, 1, d, x)};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Round, 1, in, 1, NULL, o, NULL), ST_OK);
    float want[7] = {0, 2, 2, -0.0f, -2, 2, -3};
    CHECK_TENSOR((float *)o[0], want, 7, 0, 0);
    free(o[0]);
    int16_t s[3] = {-7, 0, 9};
    int64_t d3[1] = {3};
    uint32_t ins[1] = {cst(&c, IR_I16, 1, d3, s)};
    CHECK_EQ(run(&c, IR_OP_Sign, 1, ins, 1, NULL, o, NULL), ST_OK);
    CHECK(((int16_t *)o[0])[0] == -1 && ((int16_t *)o[0])[1] == 0 && ((int16_t *)o[0])[2] == 1);
    ctx_free(&c, o, 1);
}

TEST(activations)
{
    struct ctx c;
    ctx_init(&c);
    float x[3] = {-1, 0, 1};
    int64_t d[1] = {3};
    uint32_t in[1] = {cst(&c, IR_F32, 1, d, x)};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Gelu, 1, in, 1, NULL, o, NULL), ST_OK);
    float gelu[3] = {-0.15865525393145707f, 0, 0.8413447460685429f};
    CHECK_TENSOR((float *)o[0], gelu, 3, 0, 1e-6);
    free(o[0]);
    struct at tanh_at[] = {{"approximate", IR_ATTR_STRING, 0, 0, "tanh", 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Gelu, 1, in, 1, tanh_at, o, NULL), ST_OK);
    float gelu_t[3] = {-0.15880800939172324f, 0, 0.8411919906082768f};
    CHECK_TENSOR((float *)o[0], gelu_t, 3, 0, 1e-6);
    free(o[0]);
    struct at bad[] = {{"approximate", IR_ATTR_STRING, 0, 0, "fast", 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Gelu, 1, in, 1, bad, o, NULL), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(c.d.msg, "fast");
    CHECK_EQ(run(&c, IR_OP_HardSigmoid, 1, in, 1, NULL, o, NULL), ST_OK);
    float hs[3] = {0.3f, 0.5f, 0.7f}; /* alpha 0.2, beta 0.5 */
    CHECK_TENSOR((float *)o[0], hs, 3, 0, 1e-6);
    free(o[0]);
    CHECK_EQ(run(&c, IR_OP_Selu, 1, in, 1, NULL, o, NULL), ST_OK);
    float selu[3] = {-1.1113307f, 0, 1.050701f};
    CHECK_TENSOR((float *)o[0], selu, 3, 0, 1e-6);
    free(o[0]);
    CHECK_EQ(run(&c, IR_OP_HardSwish, 1, in, 1, NULL, o, NULL), ST_OK);
    float hsw[3] = {-1.0f / 3, 0, 2.0f / 3};
    CHECK_TENSOR((float *)o[0], hsw, 3, 0, 1e-6);
    free(o[0]);
    float big[2] = {100, -100};
    int64_t d2[1] = {2};
    uint32_t inb[1] = {cst(&c, IR_F32, 1, d2, big)};
    CHECK_EQ(run(&c, IR_OP_Softplus, 1, inb, 1, NULL, o, NULL), ST_OK);
    float sp[2] = {100, 3.7200760e-44f};
    CHECK_TENSOR((float *)o[0], sp, 2, 1e-45, 1e-6);
    ctx_free(&c, o, 1);
}

TEST(isinf_isnan)
{
    struct ctx c;
    ctx_init(&c);
    double x[4] = {INFINITY, -INFINITY, NAN, 1};
    int64_t d[1] = {4};
    uint32_t in[1] = {cst(&c, IR_F64, 1, d, x)};
    void *o[1];
    struct at neg_off[] = {{"detect_negative", IR_ATTR_INT, 0, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_IsInf, 1, in, 1, neg_off, o, NULL), ST_OK);
    uint8_t *r = o[0];
    CHECK(r[0] == 1 && r[1] == 0 && r[2] == 0 && r[3] == 0);
    free(o[0]);
    CHECK_EQ(run(&c, IR_OP_IsNaN, 1, in, 1, NULL, o, NULL), ST_OK);
    r = o[0];
    CHECK(r[0] == 0 && r[1] == 0 && r[2] == 1 && r[3] == 0);
    ctx_free(&c, o, 1);
}

TEST(cast_corners)
{
    struct ctx c;
    ctx_init(&c);
    /* just above the tie between 1 and 1+2^-10: via float it would round to 1 */
    double x[3] = {1 + 0x1p-11 + 0x1p-40, 65519.0, -2.7};
    int64_t d[1] = {3};
    uint32_t in[1] = {cst(&c, IR_F64, 1, d, x)};
    void *o[1];
    struct at to_f16[] = {{"to", IR_ATTR_INT, IR_F16, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Cast, 1, in, 1, to_f16, o, NULL), ST_OK);
    uint16_t *h = o[0];
    CHECK_EQ(h[0], 0x3C01);
    CHECK_EQ(h[1], 0x7BFF); /* 65519 rounds down to 65504 */
    free(o[0]);
    struct at to_i32[] = {{"to", IR_ATTR_INT, IR_I32, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Cast, 1, in, 1, to_i32, o, NULL), ST_OK);
    CHECK_EQ(((int32_t *)o[0])[2], -2);
    free(o[0]);
    uint64_t u = UINT64_MAX;
    uint32_t inu[1] = {cst(&c, IR_U64, 0, NULL, &u)};
    struct at to_f32[] = {{"to", IR_ATTR_INT, IR_F32, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Cast, 1, inu, 1, to_f32, o, NULL), ST_OK);
    CHECK_NEAR(*(float *)o[0], 18446744073709551616.0, 0);
    free(o[0]);
    struct at to_str[] = {{"to", IR_ATTR_INT, IR_STRING, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Cast, 1, in, 1, to_str, o, NULL), ST_ERR_UNSUPPORTED);
    struct at to_f8[] = {{"to", IR_ATTR_INT, 17, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Cast, 1, in, 1, to_f8, o, NULL), ST_ERR_UNSUPPORTED);
    ir_graph_free(c.g);
}

TEST(clip_bounds)
{
    struct ctx c;
    ctx_init(&c);
    int8_t x[4] = {-128, -3, 0, 127}, lo = -2;
    int64_t d[1] = {4};
    uint32_t in[3] = {cst(&c, IR_I8, 1, d, x), cst(&c, IR_I8, 0, NULL, &lo), IR_NONE};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Clip, 3, in, 1, NULL, o, NULL), ST_OK);
    int8_t want[4] = {-2, -2, 0, 127};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(((int8_t *)o[0])[i], want[i]);
    free(o[0]);
    float xf[3] = {-5, 0.5f, 5}, a = 1, b = 0;
    int64_t d3[1] = {3};
    uint32_t inf[3] = {cst(&c, IR_F32, 1, d3, xf), cst(&c, IR_F32, 0, NULL, &a),
                       cst(&c, IR_F32, 0, NULL, &b)};
    CHECK_EQ(run(&c, IR_OP_Clip, 3, inf, 1, NULL, o, NULL), ST_OK);
    float wantf[3] = {0, 0, 0}; /* min > max: everything becomes max */
    CHECK_TENSOR((float *)o[0], wantf, 3, 0, 0);
    ctx_free(&c, o, 1);
}

TEST(dropout_inference)
{
    struct ctx c;
    ctx_init(&c);
    float x[3] = {1, 2, 3}, r = 0.5f;
    uint8_t train = 0, train_on = 1;
    int64_t d[1] = {3};
    uint32_t in[3] = {cst(&c, IR_F32, 1, d, x), cst(&c, IR_F32, 0, NULL, &r),
                      cst(&c, IR_BOOL, 0, NULL, &train)}, ot[2];
    void *o[2];
    CHECK_EQ(run(&c, IR_OP_Dropout, 3, in, 2, NULL, o, ot), ST_OK);
    CHECK_TENSOR((float *)o[0], x, 3, 0, 0);
    CHECK_EQ(c.g->t[ot[1]].dtype, IR_BOOL);
    uint8_t *m = o[1];
    CHECK(m[0] == 1 && m[1] == 1 && m[2] == 1);
    free(o[0]);
    free(o[1]);
    uint32_t in2[3] = {in[0], in[1], cst(&c, IR_BOOL, 0, NULL, &train_on)};
    CHECK_EQ(run(&c, IR_OP_Dropout, 3, in2, 2, NULL, o, NULL), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(c.d.msg, "training_mode");
    ir_graph_free(c.g);
}

TEST(mod_float_needs_fmod)
{
    struct ctx c;
    ctx_init(&c);
    float a[2] = {-4.5f, 7}, b[2] = {2, -3};
    int64_t d[1] = {2};
    uint32_t in[2] = {cst(&c, IR_F32, 1, d, a), cst(&c, IR_F32, 1, d, b)};
    void *o[1];
    CHECK_EQ(run(&c, IR_OP_Mod, 2, in, 1, NULL, o, NULL), ST_ERR_INVALID);
    struct at fm[] = {{"fmod", IR_ATTR_INT, 1, 0, NULL, 0, NULL}, {0}};
    CHECK_EQ(run(&c, IR_OP_Mod, 2, in, 1, fm, o, NULL), ST_OK);
    float want[2] = {-0.5f, 1};
    CHECK_TENSOR((float *)o[0], want, 2, 0, 0);
    ctx_free(&c, o, 1);
}

static struct test_case tests[] = {
    T(add_broadcast_both_sides), T(scalar_and_incompatible), T(where_three_way),
    T(variadic_sum_mean_max), T(prelu_unidirectional), T(int_div_mod_pow), T(pow_mixed_types),
    T(compare_and_logic), T(round_half_even_and_sign), T(activations), T(isinf_isnan),
    T(cast_corners), T(clip_bounds), T(dropout_inference), T(mod_float_needs_fmod),
};
TEST_MAIN(tests)
