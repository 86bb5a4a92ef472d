/* test_ops_tensor.c — the data movement and shape ops, node by node: shape rules
 * (ir_infer_node) and reference kernels (cg_eval_node) on hand-checked cases the
 * conformance data does not reach: Slice sentinels and negative steps, Pad modes
 * with pads larger than the axis, uneven Split, run-time index errors, bad
 * constant values from a model file, and non-float dtypes. */
#include "harness.h"
#include "ir.h"
#include "target.h"

/* A one-node graph. Constant inputs are graph constants (the shape rule sees
 * them); run-time inputs have only a type, their data is handed to the kernel. */
struct tg {
    struct ir_graph *g;
    void *rt[64]; /* run-time data by tensor id */
    uint32_t node;
    void *out[8];
    struct diag d;
};

static uint32_t mk(struct tg *t, enum ir_dtype dt, int rank, const int64_t *dims, const void *data,
                   int is_const)
{
    char name[32];
    snprintf(name, sizeof name, "t%u", t->g->nt);
    uint32_t id = ir_tensor_new(t->g, name);
    if (is_const) {
        ir_tensor_set_const(t->g, id, dt, rank, dims, data);
        return id;
    }
    struct ir_tensor *x = &t->g->t[id];
    x->dtype = dt;
    x->rank = rank;
    for (int i = 0; i < rank; i++)
        x->dims[i] = dims[i];
    x->flags |= IR_T_INPUT;
    t->rt[id] = (void *)data;
    return id;
}

/* shorthands: constant int64 vector, run-time float tensor, constant float tensor */
static uint32_t ci64(struct tg *t, int64_t cnt, const int64_t *v)
{
    return mk(t, IR_I64, 1, &cnt, v, 1);
}

static uint32_t rtf(struct tg *t, int rank, const int64_t *dims, const float *v)
{
    return mk(t, IR_F32, rank, dims, v, 0);
}

static void tg_init(struct tg *t)
{
    memset(t, 0, sizeof *t);
    t->g = ir_graph_new();
    t->g->opset = 18;
}

static void tg_free(struct tg *t)
{
    for (int k = 0; k < 8; k++)
        free(t->out[k]);
    ir_graph_free(t->g);
}

static void node(struct tg *t, enum ir_op op, uint32_t n_in, const uint32_t *in, uint32_t n_out)
{
    uint32_t outs[8];
    for (uint32_t k = 0; k < n_out; k++) {
        char name[32];
        snprintf(name, sizeof name, "y%u", k);
        outs[k] = ir_tensor_new(t->g, name);
    }
    t->node = ir_node_new(t->g, op, "n", n_in, in, n_out, outs);
}

static struct ir_attr *add_attr(struct tg *t, const char *name, enum ir_attr_type type)
{
    struct ir_node *n = &t->g->n[t->node];
    struct ir_attr *a = ir_arena_alloc(t->g->arena, (n->n_attr + 1) * sizeof *a);
    if (n->n_attr)
        memcpy(a, n->attr, n->n_attr * sizeof *a);
    n->attr = a;
    a += n->n_attr++;
    a->name = ir_arena_strdup(t->g->arena, name);
    a->type = type;
    return a;
}

static void attr_i(struct tg *t, const char *name, int64_t v)
{
    add_attr(t, name, IR_ATTR_INT)->i = v;
}

static void attr_is(struct tg *t, const char *name, int64_t cnt, const int64_t *v)
{
    struct ir_attr *a = add_attr(t, name, IR_ATTR_INTS);
    a->n = cnt;
    a->ints = ir_arena_alloc(t->g->arena, (size_t)cnt * sizeof *v);
    memcpy(a->ints, v, (size_t)cnt * sizeof *v);
}

static void attr_s(struct tg *t, const char *name, const char *s)
{
    struct ir_attr *a = add_attr(t, name, IR_ATTR_STRING);
    a->s = ir_arena_strdup(t->g->arena, s);
    a->s_len = strlen(s);
}

/* infer, then evaluate; returns the first failing status (message in t->d) */
static int run(struct tg *t)
{
    struct ir_node *n = &t->g->n[t->node];
    void *in[8] = {0};
    int st = ir_infer_node(t->g, n, &t->d);
    if (st)
        return st;
    for (uint32_t i = 0; i < n->n_in; i++)
        if (n->in[i] != IR_NONE)
            in[i] = t->g->t[n->in[i]].data ? t->g->t[n->in[i]].data : t->rt[n->in[i]];
    for (uint32_t k = 0; k < n->n_out; k++) {
        const struct ir_tensor *y = &t->g->t[n->out[k]];
        t->out[k] = calloc(1, (size_t)ir_numel(y) * ir_dtype_size(y->dtype) + 1);
    }
    return cg_eval_node(t->g, n, in, t->out);
}

static const struct ir_tensor *yt(struct tg *t, uint32_t k)
{
    return &t->g->t[t->g->n[t->node].out[k]];
}

#define CHECK_DIMS(t, k, ...)                                               \
    do {                                                                    \
        const int64_t want_[] = {__VA_ARGS__};                              \
        int r_ = (int)(sizeof want_ / sizeof want_[0]);                     \
        CHECK_EQ(yt(t, k)->rank, r_);                                       \
        for (int i_ = 0; i_ < r_ && i_ < yt(t, k)->rank; i_++)              \
            CHECK_EQ(yt(t, k)->dims[i_], want_[i_]);                        \
    } while (0)

#define CHECK_F32(t, k, ...)                                                \
    do {                                                                    \
        const float want_[] = {__VA_ARGS__};                                \
        long n_ = (long)(sizeof want_ / sizeof want_[0]);                   \
        CHECK_EQ(ir_numel(yt(t, k)), n_);                                   \
        if (ir_numel(yt(t, k)) == n_)                                       \
            CHECK_TENSOR((const float *)(t)->out[k], want_, n_, 0, 0);      \
    } while (0)

#define CHECK_I64(t, k, ...)                                                \
    do {                                                                    \
        const int64_t want_[] = {__VA_ARGS__};                              \
        long n_ = (long)(sizeof want_ / sizeof want_[0]);                   \
        CHECK_EQ(ir_numel(yt(t, k)), n_);                                   \
        for (long i_ = 0; i_ < n_ && ir_numel(yt(t, k)) == n_; i_++)        \
            CHECK_EQ(((const int64_t *)(t)->out[k])[i_], want_[i_]);        \
    } while (0)

static const float iota24[24] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};

/* ---- reshaping ----------------------------------------------------------------------- */

TEST(reshape_zero_and_infer)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[3] = {2, 3, 4}, sh[2] = {0, -1};
    uint32_t in[2] = {rtf(&t, 3, xd, iota24), ci64(&t, 2, sh)};
    node(&t, IR_OP_Reshape, 2, in, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 2, 12);
    CHECK_NEAR(((float *)t.out[0])[23], 23, 0);
    tg_free(&t);
}

TEST(reshape_rejects_bad_shapes)
{
    const int64_t xd[3] = {2, 3, 4};
    const int64_t bad[4][3] = {{-1, -1, 6}, {5, -1, 0}, {7, 0, 0}, {0, -1, 0}};
    for (int c = 0; c < 4; c++) {
        struct tg t;
        tg_init(&t);
        uint32_t in[2] = {rtf(&t, 3, xd, iota24), ci64(&t, 3, bad[c])};
        node(&t, IR_OP_Reshape, 2, in, 1);
        if (c == 3)
            attr_i(&t, "allowzero", 1); /* 0 with -1 under allowzero */
        CHECK(run(&t) != ST_OK);
        CHECK(t.d.msg[0] != 0);
        tg_free(&t);
    }
}

TEST(flatten_axis_0_and_negative)
{
    const int64_t xd[3] = {2, 3, 4};
    const int64_t axes[3] = {0, -1, 3};
    const int64_t want[3][2] = {{1, 24}, {6, 4}, {24, 1}};
    for (int c = 0; c < 3; c++) {
        struct tg t;
        tg_init(&t);
        uint32_t x = rtf(&t, 3, xd, iota24);
        node(&t, IR_OP_Flatten, 1, &x, 1);
        attr_i(&t, "axis", axes[c]);
        CHECK_EQ(run(&t), ST_OK);
        CHECK_DIMS(&t, 0, want[c][0], want[c][1]);
        tg_free(&t);
    }
}

TEST(squeeze_unsqueeze)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[4] = {1, 3, 1, 2};
    uint32_t x = rtf(&t, 4, xd, iota24);
    node(&t, IR_OP_Squeeze, 1, &x, 1); /* no axes: every 1 goes */
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 3, 2);
    tg_free(&t);

    tg_init(&t);
    const int64_t ax[1] = {1};
    uint32_t in[2] = {rtf(&t, 4, xd, iota24), ci64(&t, 1, ax)};
    node(&t, IR_OP_Squeeze, 2, in, 1); /* axis 1 has size 3 */
    CHECK_EQ(run(&t), ST_ERR_SHAPE);
    tg_free(&t);

    tg_init(&t);
    const int64_t ua[2] = {-1, 0}, xd2[2] = {3, 2};
    uint32_t in2[2] = {rtf(&t, 2, xd2, iota24), ci64(&t, 2, ua)};
    node(&t, IR_OP_Unsqueeze, 2, in2, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 1, 3, 2, 1);
    tg_free(&t);
}

TEST(transpose_perm_and_default)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[3] = {2, 3, 4}, perm[3] = {2, 0, 1};
    uint32_t x = rtf(&t, 3, xd, iota24);
    node(&t, IR_OP_Transpose, 1, &x, 1);
    attr_is(&t, "perm", 3, perm);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 4, 2, 3);
    /* y[k][i][j] = x[i][j][k] */
    CHECK_F32(&t, 0, 0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11,
              15, 19, 23);
    tg_free(&t);

    tg_init(&t);
    const int64_t xd2[2] = {2, 3};
    const int8_t v8[6] = {1, 2, 3, 4, 5, 6};
    x = mk(&t, IR_I8, 2, xd2, v8, 0);
    node(&t, IR_OP_Transpose, 1, &x, 1);
    CHECK_EQ(run(&t), ST_OK);
    const int8_t *y8 = t.out[0];
    CHECK(y8[0] == 1 && y8[1] == 4 && y8[2] == 2 && y8[3] == 5 && y8[4] == 3 && y8[5] == 6);
    tg_free(&t);
}

/* ---- joining and splitting -------------------------------------------------------------- */

TEST(concat_with_empty_input)
{
    struct tg t;
    tg_init(&t);
    const int64_t a[2] = {2, 1}, b[2] = {2, 0}, c[2] = {2, 2};
    const float av[2] = {1, 2}, cv[4] = {3, 4, 5, 6};
    uint32_t in[3] = {rtf(&t, 2, a, av), rtf(&t, 2, b, NULL), rtf(&t, 2, c, cv)};
    node(&t, IR_OP_Concat, 3, in, 1);
    attr_i(&t, "axis", -1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 2, 3);
    CHECK_F32(&t, 0, 1, 3, 4, 2, 5, 6);
    tg_free(&t);
}

TEST(split_num_outputs_uneven)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[1] = {7};
    uint32_t x = rtf(&t, 1, xd, iota24);
    node(&t, IR_OP_Split, 1, &x, 3);
    attr_i(&t, "num_outputs", 3);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_F32(&t, 0, 0, 1, 2);
    CHECK_F32(&t, 1, 3, 4, 5);
    CHECK_F32(&t, 2, 6);
    tg_free(&t);

    tg_init(&t); /* an even split by output count needs a multiple */
    x = rtf(&t, 1, xd, iota24);
    node(&t, IR_OP_Split, 1, &x, 3);
    CHECK_EQ(run(&t), ST_ERR_SHAPE);
    tg_free(&t);

    tg_init(&t);
    const int64_t xd2[2] = {2, 3}, sz[2] = {1, 2};
    uint32_t in[2] = {rtf(&t, 2, xd2, iota24), ci64(&t, 2, sz)};
    node(&t, IR_OP_Split, 2, in, 2);
    attr_i(&t, "axis", 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_F32(&t, 0, 0, 3);
    CHECK_F32(&t, 1, 1, 2, 4, 5);
    tg_free(&t);
}

/* ---- Slice -------------------------------------------------------------------------------- */

static int slice1(struct tg *t, int64_t s, int64_t e, int64_t step)
{
    tg_init(t);
    const int64_t xd[1] = {10};
    uint32_t in[5] = {rtf(t, 1, xd, iota24), ci64(t, 1, &s), ci64(t, 1, &e), IR_NONE,
                      ci64(t, 1, &step)};
    node(t, IR_OP_Slice, 5, in, 1);
    return run(t);
}

TEST(slice_sentinels_and_negative_steps)
{
    struct tg t;
    CHECK_EQ(slice1(&t, -1, INT64_MIN, -1), ST_OK);
    CHECK_F32(&t, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    tg_free(&t);
    CHECK_EQ(slice1(&t, INT64_MAX, 0, -2), ST_OK);
    CHECK_F32(&t, 0, 9, 7, 5, 3, 1);
    tg_free(&t);
    CHECK_EQ(slice1(&t, 2, INT64_MAX, 3), ST_OK);
    CHECK_F32(&t, 0, 2, 5, 8);
    tg_free(&t);
    CHECK_EQ(slice1(&t, 20, 30, 1), ST_OK); /* start past the end: empty */
    CHECK_EQ(ir_numel(yt(&t, 0)), 0);
    tg_free(&t);
    CHECK_EQ(slice1(&t, 0, INT64_MAX, INT64_MAX), ST_OK);
    CHECK_F32(&t, 0, 0);
    tg_free(&t);
    CHECK_EQ(slice1(&t, 9, -20, INT64_MIN), ST_OK);
    CHECK_F32(&t, 0, 9);
    tg_free(&t);
    CHECK_EQ(slice1(&t, 7, INT64_MAX, -3), ST_OK); /* INT_MAX end: numpy None (onnxruntime) */
    CHECK_F32(&t, 0, 7, 4, 1);
    tg_free(&t);
    CHECK_EQ(slice1(&t, -20, INT64_MIN, -1), ST_OK); /* start clamps to 0 going backwards */
    CHECK_F32(&t, 0, 0);
    tg_free(&t);
    CHECK_EQ(slice1(&t, 0, 5, 0), ST_ERR_INVALID);
    tg_free(&t);
}

TEST(slice_2d_negative_axis)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[2] = {4, 6}, s[2] = {1, 3}, e[2] = {-1, 0}, ax[2] = {-1, 0}, sp[2] = {2, -1};
    uint32_t in[5] = {rtf(&t, 2, xd, iota24), ci64(&t, 2, s), ci64(&t, 2, e), ci64(&t, 2, ax),
                      ci64(&t, 2, sp)};
    node(&t, IR_OP_Slice, 5, in, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 3, 2); /* rows 3,2,1; cols 1,3 */
    CHECK_F32(&t, 0, 19, 21, 13, 15, 7, 9);
    tg_free(&t);
}

/* ---- gathering ------------------------------------------------------------------------------- */

TEST(gather_negative_and_bad_indices)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[2] = {3, 2}, id[2] = {2, 2};
    const int32_t idx[4] = {-1, 0, 1, -3};
    uint32_t in[2] = {rtf(&t, 2, xd, iota24), mk(&t, IR_I32, 2, id, idx, 0)};
    node(&t, IR_OP_Gather, 2, in, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 2, 2, 2);
    CHECK_F32(&t, 0, 4, 5, 0, 1, 2, 3, 0, 1);
    tg_free(&t);

    tg_init(&t); /* run-time index out of range: the kernel refuses */
    const int64_t bad[2] = {1, 3}, one = 2;
    in[0] = rtf(&t, 2, xd, iota24);
    in[1] = mk(&t, IR_I64, 1, &one, bad, 0);
    node(&t, IR_OP_Gather, 2, in, 1);
    CHECK_EQ(run(&t), ST_ERR_INVALID);
    tg_free(&t);

    tg_init(&t); /* constant index out of range: the shape rule names it */
    in[0] = rtf(&t, 2, xd, iota24);
    in[1] = mk(&t, IR_I64, 1, &one, bad, 1);
    node(&t, IR_OP_Gather, 2, in, 1);
    CHECK_EQ(run(&t), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(t.d.msg, "index 3");
    tg_free(&t);
}

TEST(gather_elements_axis1)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[2] = {3, 3}, id[2] = {2, 2};
    const int64_t idx[4] = {2, -3, 1, 1};
    uint32_t in[2] = {rtf(&t, 2, xd, iota24), mk(&t, IR_I64, 2, id, idx, 0)};
    node(&t, IR_OP_GatherElements, 2, in, 1);
    attr_i(&t, "axis", 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_F32(&t, 0, 2, 0, 4, 4);
    tg_free(&t);
}

/* ---- replicating -------------------------------------------------------------------------------- */

TEST(expand_bidirectional)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[2] = {3, 1}, sh[3] = {2, 1, 2};
    const float v[3] = {1, 2, 3};
    uint32_t in[2] = {rtf(&t, 2, xd, v), ci64(&t, 3, sh)};
    node(&t, IR_OP_Expand, 2, in, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 2, 3, 2);
    CHECK_F32(&t, 0, 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3);
    tg_free(&t);
}

TEST(tile_repeats)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[2] = {2, 2}, rep[2] = {2, 3};
    const float v[4] = {1, 2, 3, 4};
    uint32_t in[2] = {rtf(&t, 2, xd, v), ci64(&t, 2, rep)};
    node(&t, IR_OP_Tile, 2, in, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 4, 6);
    CHECK_F32(&t, 0, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4);
    tg_free(&t);
}

/* ---- Pad ---------------------------------------------------------------------------------------- */

static int pad1(struct tg *t, const char *mode, int64_t b, int64_t e, const float *cval)
{
    tg_init(t);
    const int64_t xd[1] = {4}, pads[2] = {b, e};
    const float v[4] = {1, 2, 3, 4};
    uint32_t in[3] = {rtf(t, 1, xd, v), ci64(t, 2, pads),
                      cval ? mk(t, IR_F32, 0, NULL, cval, 0) : IR_NONE};
    node(t, IR_OP_Pad, 3, in, 1);
    attr_s(t, "mode", mode);
    return run(t);
}

TEST(pad_modes_1d)
{
    struct tg t;
    const float nine = 9;
    CHECK_EQ(pad1(&t, "constant", 2, 3, &nine), ST_OK);
    CHECK_F32(&t, 0, 9, 9, 1, 2, 3, 4, 9, 9, 9);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "constant", -1, 1, NULL), ST_OK);
    CHECK_F32(&t, 0, 2, 3, 4, 0);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "reflect", 2, 3, NULL), ST_OK);
    CHECK_F32(&t, 0, 3, 2, 1, 2, 3, 4, 3, 2, 1);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "reflect", 7, 6, NULL), ST_OK); /* pads beyond the axis (numpy) */
    CHECK_F32(&t, 0, 2, 1, 2, 3, 4, 3, 2, 1, 2, 3, 4, 3, 2, 1, 2, 3, 4);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "edge", 2, 3, NULL), ST_OK);
    CHECK_F32(&t, 0, 1, 1, 1, 2, 3, 4, 4, 4, 4);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "wrap", 7, 6, NULL), ST_OK);
    CHECK_F32(&t, 0, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2);
    tg_free(&t);
    /* negative pads: outside constant mode the crop comes first (onnxruntime) */
    CHECK_EQ(pad1(&t, "edge", -1, 2, NULL), ST_OK);
    CHECK_F32(&t, 0, 2, 3, 4, 4, 4);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "reflect", 2, -1, NULL), ST_OK);
    CHECK_F32(&t, 0, 3, 2, 1, 2, 3);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "constant", -5, 3, NULL), ST_OK); /* constant: pad, then crop */
    CHECK_F32(&t, 0, 0, 0);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "edge", -5, 3, NULL), ST_ERR_SHAPE);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "circular", 1, 1, NULL), ST_ERR_UNSUPPORTED);
    tg_free(&t);
    CHECK_EQ(pad1(&t, "constant", -3, -2, NULL), ST_ERR_SHAPE);
    tg_free(&t);
}

TEST(pad_2d_axes_int_data_float_value)
{
    struct tg t;
    tg_init(&t);
    /* legacy Pad: the value arrives as float32 while the data is int32 */
    const int64_t xd[2] = {2, 2}, pads[2] = {1, 1}, ax[1] = {0};
    const int32_t v[4] = {1, 2, 3, 4};
    const float seven = 7;
    uint32_t in[4] = {mk(&t, IR_I32, 2, xd, v, 0), ci64(&t, 2, pads),
                      mk(&t, IR_F32, 0, NULL, &seven, 1), ci64(&t, 1, ax)};
    node(&t, IR_OP_Pad, 4, in, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_DIMS(&t, 0, 4, 2);
    const int32_t want[8] = {7, 7, 1, 2, 3, 4, 7, 7};
    for (int i = 0; i < 8; i++)
        CHECK_EQ(((int32_t *)t.out[0])[i], want[i]);
    tg_free(&t);
}

TEST(trilu_runtime_k)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[2] = {3, 4}, k = 1;
    uint32_t in[2] = {rtf(&t, 2, xd, iota24), mk(&t, IR_I64, 0, NULL, &k, 0)};
    node(&t, IR_OP_Trilu, 2, in, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_F32(&t, 0, 0, 1, 2, 3, 0, 0, 6, 7, 0, 0, 0, 11);
    tg_free(&t);

    tg_init(&t);
    const int64_t huge = INT64_MIN;
    in[0] = rtf(&t, 2, xd, iota24);
    in[1] = mk(&t, IR_I64, 0, NULL, &huge, 0);
    node(&t, IR_OP_Trilu, 2, in, 1);
    attr_i(&t, "upper", 0);
    CHECK_EQ(run(&t), ST_OK); /* lower with k far below: all zero */
    CHECK_F32(&t, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    tg_free(&t);
}

/* ---- shape queries and generators -------------------------------------------------------------- */

TEST(shape_start_end_and_size)
{
    struct tg t;
    tg_init(&t);
    const int64_t xd[4] = {2, 3, 4, 5};
    uint32_t x = rtf(&t, 4, xd, NULL);
    node(&t, IR_OP_Shape, 1, &x, 1);
    attr_i(&t, "start", -3);
    attr_i(&t, "end", -1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_I64(&t, 0, 3, 4);
    tg_free(&t);

    tg_init(&t);
    x = rtf(&t, 4, xd, NULL);
    node(&t, IR_OP_Shape, 1, &x, 1);
    attr_i(&t, "start", 10);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_EQ(ir_numel(yt(&t, 0)), 0);
    tg_free(&t);

    tg_init(&t);
    x = rtf(&t, 4, xd, NULL);
    node(&t, IR_OP_Size, 1, &x, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_EQ(yt(&t, 0)->rank, 0);
    CHECK_I64(&t, 0, 120);
    tg_free(&t);
}

TEST(constant_of_shape_value)
{
    struct tg t;
    tg_init(&t);
    const int64_t sh[2] = {2, 2}, seven = 7, one = 1;
    uint32_t s = ci64(&t, 2, sh);
    uint32_t v = mk(&t, IR_I64, 1, &one, &seven, 1);
    node(&t, IR_OP_ConstantOfShape, 1, &s, 1);
    struct ir_attr *a = add_attr(&t, "value", IR_ATTR_TENSOR);
    a->n = 1;
    a->tensors = ir_arena_alloc(t.g->arena, sizeof *a->tensors);
    a->tensors[0] = v;
    CHECK_EQ(run(&t), ST_OK);
    CHECK_EQ(yt(&t, 0)->dtype, IR_I64);
    CHECK_I64(&t, 0, 7, 7, 7, 7);
    tg_free(&t);

    tg_init(&t); /* empty shape: a float32 zero scalar */
    s = mk(&t, IR_I64, 1, (const int64_t[]){0}, NULL, 1);
    node(&t, IR_OP_ConstantOfShape, 1, &s, 1);
    CHECK_EQ(run(&t), ST_OK);
    CHECK_EQ(yt(&t, 0)->rank, 0);
    CHECK_F32(&t, 0, 0);
    tg_free(&t);

    tg_init(&t);
    const int64_t neg[1] = {-2};
    s = ci64(&t, 1, neg);
    node(&t, IR_OP_ConstantOfShape, 1, &s, 1);
    CHECK_EQ(run(&t), ST_ERR_INVALID);
    tg_free(&t);
}

static int range3(struct tg *t, enum ir_dtype dt, const void *s, const void *l, const void *dl)
{
    tg_init(t);
    uint32_t in[3] = {mk(t, dt, 0, NULL, s, 1), mk(t, dt, 0, NULL, l, 1),
                      mk(t, dt, 0, NULL, dl, 1)};
    node(t, IR_OP_Range, 3, in, 1);
    return run(t);
}

TEST(range_types)
{
    struct tg t;
    const int32_t s = 10, l = 3, dl = -3;
    CHECK_EQ(range3(&t, IR_I32, &s, &l, &dl), ST_OK);
    CHECK_EQ(ir_numel(yt(&t, 0)), 3);
    CHECK(((int32_t *)t.out[0])[2] == 4);
    tg_free(&t);

    const int64_t s64 = INT64_MIN, l64 = INT64_MAX, d64 = INT64_MAX;
    CHECK_EQ(range3(&t, IR_I64, &s64, &l64, &d64), ST_OK); /* span 2^64-1: 3 values */
    CHECK_I64(&t, 0, INT64_MIN, -1, INT64_MAX - 1);
    tg_free(&t);

    const float fs = 1, fl = 2, fd = 0.25f;
    CHECK_EQ(range3(&t, IR_F32, &fs, &fl, &fd), ST_OK);
    CHECK_F32(&t, 0, 1, 1.25f, 1.5f, 1.75f);
    tg_free(&t);

    const float zero = 0;
    CHECK_EQ(range3(&t, IR_F32, &fs, &fl, &zero), ST_ERR_INVALID);
    tg_free(&t);
}

static const struct test_case tests[] = {
    T(reshape_zero_and_infer),
    T(reshape_rejects_bad_shapes),
    T(flatten_axis_0_and_negative),
    T(squeeze_unsqueeze),
    T(transpose_perm_and_default),
    T(concat_with_empty_input),
    T(split_num_outputs_uneven),
    T(slice_sentinels_and_negative_steps),
    T(slice_2d_negative_axis),
    T(gather_negative_and_bad_indices),
    T(gather_elements_axis1),
    T(expand_bidirectional),
    T(tile_repeats),
    T(pad_modes_1d),
    T(pad_2d_axes_int_data_float_value),
    T(trilu_runtime_k),
    T(shape_start_end_and_size),
    T(constant_of_shape_value),
    T(range_types),
};

TEST_MAIN(tests)
