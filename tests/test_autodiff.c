/* test_autodiff.c — passes/autodiff: every VJP rule against central finite
 * differences, in float64.
 *
 * Each case builds a tiny graph with the node builder: float64 graph inputs with
 * values from a fixed seed (kept away from kinks where the op has them),
 * forward op(s), then loss = sum_k ReduceSum(y_k * w_k) with fixed random w_k
 * (every output of a multi-output op). pass_autodiff adds dloss/dx for every
 * input; the graph is compiled (no folding) and run on the reference target,
 * and each gradient element is compared with (L(x+h) - L(x-h)) / 2h.
 * A coverage test fails when a differentiable op in ops.def has no case.
 * LowerLeakyHard's sign-gated VJP is invisible to finite differences and is
 * checked directly, including that the gate sees the accumulated gradient. */
#include <stdint.h>

#include "exec.h"
#include "harness.h"
#include "ir.h"
#include "pass.h"
#include "build.h"

#define MAXIN 6
#define FD_H 1e-6
#define FD_RTOL 1e-6

/* ---- deterministic random numbers ------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unif(double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next() >> 11) / 9007199254740992.0;
}

static void rng_seed(const char *s)
{
    rng_state = 1469598103934665603ull;
    for (; *s; s++)
        rng_state = (rng_state ^ (uint8_t)*s) * 1099511628211ull;
}

/* ---- cases -------------------------------------------------------------------- */

enum gen {
    G_U,    /* uniform in [lo, hi] */
    G_AWAY, /* uniform, nudged off the kinks of the tested ops (-3, -2.5, 0, 1, 2.5, 3) */
    G_DIST, /* distinct values 0.13 apart, shuffled, shifted by lo (max/min ties avoided) */
};

struct in_spec {
    int rank;
    int64_t dims[IR_MAX_RANK];
    enum gen gen;
    double lo, hi;
};

struct fd_case;
typedef int (*build_fn)(struct ir_builder *b, const struct fd_case *c, const uint32_t *x,
                        uint32_t *y);

struct fd_case {
    const char *name;
    enum ir_op op; /* the op under test (IR_OP_COUNT: composite) */
    build_fn build;
    int nin;
    struct in_spec in[MAXIN];
    int nattr;
    struct ir_attr attr[4];
};

#define IN(gen, lo, hi, r, ...) {r, {__VA_ARGS__}, gen, lo, hi}
#define AI(nm, v) {.name = nm, .type = IR_ATTR_INT, .i = v}
#define AF(nm, v) {.name = nm, .type = IR_ATTR_FLOAT, .f = v}
#define AS(nm, v) {.name = nm, .type = IR_ATTR_STRING, .s = v, .s_len = sizeof(v) - 1}
#define AIS(nm, ...) \
    {.name = nm, .type = IR_ATTR_INTS, .n = sizeof((int64_t[]){__VA_ARGS__}) / 8, \
     .ints = (int64_t[]){__VA_ARGS__}}

/* attribute of the case by name (builders read their parameters from it) */
static const struct ir_attr *cattr(const struct fd_case *c, const char *name)
{
    for (int i = 0; i < c->nattr; i++)
        if (strcmp(c->attr[i].name, name) == 0)
            return &c->attr[i];
    return NULL;
}

static uint32_t i64s(struct ir_builder *b, const struct ir_attr *a)
{
    return bld_i64s(b, a->n, a->ints);
}

/* the op on all inputs, the case's attributes as its attributes */
static int b_op(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    y[0] = bld_node(b, c->op, (uint32_t)c->nin, x, (uint32_t)c->nattr, c->attr, 1, NULL);
    return 1;
}

/* Reduce*(x, axes) with keepdims / noop_with_empty_axes from the case */
static int b_reduce(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    const struct ir_attr *ax = cattr(c, "axes"), *kd = cattr(c, "keepdims"),
                         *noop = cattr(c, "noop_with_empty_axes");
    struct ir_attr at[2] = {bld_attr_int("keepdims", kd ? kd->i : 1),
                            bld_attr_int("noop_with_empty_axes", noop ? noop->i : 0)};
    uint32_t in[2] = {x[0], ax ? i64s(b, ax) : IR_NONE};
    y[0] = bld_node(b, c->op, ax ? 2 : 1, in, 2, at, 1, NULL);
    return 1;
}

/* op(x, const ints "v") with the remaining attributes: Reshape, Unsqueeze, ... */
static int b_intarg(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    struct ir_attr at[4];
    uint32_t na = 0, in[2] = {x[0], IR_NONE};
    for (int i = 0; i < c->nattr; i++) {
        if (strcmp(c->attr[i].name, "v") == 0)
            in[1] = i64s(b, &c->attr[i]);
        else
            at[na++] = c->attr[i];
    }
    y[0] = bld_node(b, c->op, 2, in, na, at, 1, NULL);
    return 1;
}

/* CumSum(x, axis scalar) */
static int b_cumsum(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    struct ir_attr at[2] = {*cattr(c, "exclusive"), *cattr(c, "reverse")};
    uint32_t in[2] = {x[0], bld_scalar(b, IR_I64, (double)cattr(c, "axis")->i)};
    y[0] = bld_node(b, IR_OP_CumSum, 2, in, 2, at, 1, NULL);
    return 1;
}

/* a Softmax-family node at opset 11 (2-D coercion) */
static int b_legacy(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    b_op(b, c, x, y);
    if (!b->err)
        b->g->n[b->g->t[y[0]].producer].opset = 11;
    return 1;
}

static int b_where(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    (void)c;
    int64_t dims[2] = {2, 3};
    uint8_t cond[6] = {1, 0, 0, 1, 1, 0};
    uint32_t in[3] = {bld_const(b, IR_BOOL, 2, dims, cond), x[0], x[1]};
    y[0] = bld_node(b, IR_OP_Where, 3, in, 0, NULL, 1, NULL);
    return 1;
}

/* x ^ 3 with an int64 exponent: only the base gets a gradient */
static int b_powi(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    (void)c;
    y[0] = bld_op2(b, IR_OP_Pow, x[0], bld_scalar(b, IR_I64, 3));
    return 1;
}

/* multi-output ops: every output goes into the loss */
static int b_multi(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    uint32_t nout = (uint32_t)cattr(c, "nout")->i, in[4] = {IR_NONE, IR_NONE, IR_NONE, IR_NONE};
    uint32_t na = 0, nsplit = 0;
    struct ir_attr at[4];
    for (int i = 0; i < c->nattr; i++) {
        if (strcmp(c->attr[i].name, "nout") == 0 || strcmp(c->attr[i].name, "use") == 0)
            continue;
        if (strcmp(c->attr[i].name, "split") == 0) {
            in[1] = i64s(b, &c->attr[i]);
            nsplit = 1;
            continue;
        }
        at[na++] = c->attr[i];
    }
    for (int i = 0; i < c->nin; i++)
        in[i] = x[i];
    uint32_t nin = (uint32_t)c->nin + nsplit;
    bld_node(b, c->op, nin, in, na, at, nout, y);
    const struct ir_attr *use = cattr(c, "use"); /* only these outputs reach the loss */
    if (!use)
        return (int)nout;
    for (int64_t k = 0; k < use->n; k++)
        y[k] = y[use->ints[k]];
    return (int)use->n;
}

static int b_slice(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    uint32_t in[5] = {x[0], i64s(b, cattr(c, "starts")), i64s(b, cattr(c, "ends")),
                      i64s(b, cattr(c, "axes")), i64s(b, cattr(c, "steps"))};
    y[0] = bld_node(b, IR_OP_Slice, 5, in, 0, NULL, 1, NULL);
    return 1;
}

/* Gather / GatherElements with constant indices "idx" of shape "idx_shape" */
static int b_gather(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    const struct ir_attr *idx = cattr(c, "idx"), *sh = cattr(c, "idx_shape");
    struct ir_attr at = *cattr(c, "axis");
    uint32_t in[2] = {x[0], bld_const(b, IR_I64, (int)sh->n, sh->ints, idx->ints)};
    y[0] = bld_node(b, c->op, 2, in, 1, &at, 1, NULL);
    return 1;
}

/* Pad(x, pads, constant_value = x[1]) */
static int b_pad(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    uint32_t in[3] = {x[0], i64s(b, cattr(c, "pads")), c->nin > 1 ? x[1] : IR_NONE};
    y[0] = bld_node(b, IR_OP_Pad, c->nin > 1 ? 3 : 2, in, 0, NULL, 1, NULL);
    return 1;
}

static int b_trilu(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    const struct ir_attr *k = cattr(c, "k");
    struct ir_attr at = *cattr(c, "upper");
    uint32_t in[2] = {x[0], k ? bld_scalar(b, IR_I64, (double)k->i) : IR_NONE};
    y[0] = bld_node(b, IR_OP_Trilu, k ? 2 : 1, in, 1, &at, 1, NULL);
    return 1;
}

/* 2-layer MLP, GELU, softmax cross-entropy against fixed one-hot targets */
static int b_mlp(struct ir_builder *b, const struct fd_case *c, const uint32_t *x, uint32_t *y)
{
    (void)c;
    uint32_t h = bld_add(b, bld_matmul(b, x[0], x[1]), x[2]);
    h = bld_op1(b, IR_OP_Gelu, h);
    uint32_t logits = bld_add(b, bld_matmul(b, h, x[3]), x[4]);
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t lp = bld_node(b, IR_OP_LogSoftmax, 1, &logits, 1, &ax, 1, NULL);
    int64_t dims[2] = {4, 3}, one = 1;
    float oh32[12] = {1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0};
    double oh[12];
    for (int i = 0; i < 12; i++)
        oh[i] = (double)oh32[i];
    enum ir_dtype dt = b->g->t[x[0]].dtype;
    uint32_t t = dt == IR_F32 ? bld_const(b, dt, 2, dims, oh32) : bld_const(b, dt, 2, dims, oh);
    uint32_t nll = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, lp, t), 1, &one, 0);
    y[0] = bld_op1(b, IR_OP_Neg, bld_reduce(b, IR_OP_ReduceMean, nll, 0, NULL, 0));
    return 1;
}

#define U(...) IN(G_U, -2, 2, __VA_ARGS__)
#define AW(...) IN(G_AWAY, -2, 2, __VA_ARGS__)
#define POS(...) IN(G_U, 0.4, 2, __VA_ARGS__)
#define DIST(...) IN(G_DIST, 0, 0, __VA_ARGS__)
#define UNARY(nm, o, spec) {nm, IR_OP_##o, b_op, 1, {spec}, 0, {{0}}}

static const struct fd_case cases[] = {
    /* unary elementwise */
    UNARY("identity", Identity, U(2, 2, 3)),
    UNARY("neg", Neg, U(2, 2, 3)),
    UNARY("abs", Abs, AW(2, 2, 3)),
    UNARY("relu", Relu, AW(2, 2, 3)),
    {"leakyrelu", IR_OP_LeakyRelu, b_op, 1, {AW(2, 2, 3)}, 1, {AF("alpha", 0.1)}},
    {"elu", IR_OP_Elu, b_op, 1, {AW(2, 2, 3)}, 1, {AF("alpha", 0.7)}},
    UNARY("selu", Selu, AW(2, 2, 3)),
    {"celu", IR_OP_Celu, b_op, 1, {AW(2, 2, 3)}, 1, {AF("alpha", 1.3)}},
    UNARY("thresholdedrelu", ThresholdedRelu, AW(2, 2, 3)),
    UNARY("sigmoid", Sigmoid, U(2, 2, 3)),
    UNARY("hardsigmoid", HardSigmoid, IN(G_AWAY, -4, 4, 2, 3, 4)),
    UNARY("hardswish", HardSwish, IN(G_AWAY, -5, 5, 2, 3, 4)),
    UNARY("softplus", Softplus, U(2, 2, 3)),
    UNARY("softsign", Softsign, AW(2, 2, 3)),
    UNARY("tanh", Tanh, U(2, 2, 3)),
    UNARY("erf", Erf, U(2, 2, 3)),
    UNARY("gelu", Gelu, U(2, 2, 3)),
    {"gelu_tanh", IR_OP_Gelu, b_op, 1, {U(2, 2, 3)}, 1, {AS("approximate", "tanh")}},
    UNARY("exp", Exp, U(2, 2, 3)),
    UNARY("log", Log, POS(2, 2, 3)),
    UNARY("sqrt", Sqrt, POS(2, 2, 3)),
    UNARY("reciprocal", Reciprocal, POS(2, 2, 3)),
    UNARY("sin", Sin, U(2, 2, 3)),
    UNARY("cos", Cos, U(2, 2, 3)),
    UNARY("tan", Tan, IN(G_U, -1, 1, 2, 2, 3)),
    UNARY("asin", Asin, IN(G_U, -0.9, 0.9, 2, 2, 3)),
    UNARY("acos", Acos, IN(G_U, -0.9, 0.9, 2, 2, 3)),
    UNARY("atan", Atan, U(2, 2, 3)),
    UNARY("sinh", Sinh, U(2, 2, 3)),
    UNARY("cosh", Cosh, U(2, 2, 3)),
    UNARY("asinh", Asinh, U(2, 2, 3)),
    UNARY("acosh", Acosh, IN(G_U, 1.2, 3, 2, 2, 3)),
    UNARY("atanh", Atanh, IN(G_U, -0.9, 0.9, 2, 2, 3)),
    {"cast", IR_OP_Cast, b_op, 1, {U(2, 2, 3)}, 1, {AI("to", IR_F64)}},
    {"clip", IR_OP_Clip, b_op, 3, {U(2, 3, 4), IN(G_U, -0.8, -0.6, 0, 0), IN(G_U, 0.6, 0.8, 0, 0)},
      0, {{0}}},
    {"clip_min_only", IR_OP_Clip, b_op, 2, {U(2, 3, 4), IN(G_U, -0.5, 0.5, 0, 0)}, 0, {{0}}},
    UNARY("dropout", Dropout, U(2, 2, 3)),
    UNARY("lower_leaky_hard_mid", LowerLeakyHard, IN(G_U, 0.05, 0.95, 2, 2, 3)),
    UNARY("lower_leaky_hard_top", LowerLeakyHard, IN(G_U, 1.05, 2, 2, 2, 3)),
    UNARY("upper_leaky_hard", UpperLeakyHard, IN(G_AWAY, -1, 2.4, 2, 3, 4)),
    /* binary and variadic, with broadcasting */
    {"add_bcast", IR_OP_Add, b_op, 2, {U(2, 2, 3), U(1, 3)}, 0, {{0}}},
    {"sub_bcast", IR_OP_Sub, b_op, 2, {U(3, 2, 1, 3), U(2, 4, 1)}, 0, {{0}}},
    {"mul_bcast", IR_OP_Mul, b_op, 2, {U(2, 2, 3), U(2, 2, 1)}, 0, {{0}}},
    {"div_bcast", IR_OP_Div, b_op, 2, {U(2, 2, 3), POS(1, 3)}, 0, {{0}}},
    {"pow", IR_OP_Pow, b_op, 2, {POS(2, 2, 3), IN(G_U, -1.5, 1.5, 1, 3)}, 0, {{0}}},
    {"pow_int_exponent", IR_OP_Pow, b_powi, 1, {IN(G_U, -2, 2, 2, 2, 3)}, 0, {{0}}},
    {"mod_fmod", IR_OP_Mod, b_op, 2, {IN(G_U, -3, 3, 2, 2, 3), IN(G_U, 0.7, 1.3, 1, 3)}, 1,
     {AI("fmod", 1)}},
    {"prelu", IR_OP_PRelu, b_op, 2, {AW(3, 2, 3, 4), U(1, 4)}, 0, {{0}}},
    {"max3", IR_OP_Max, b_op, 3, {U(2, 2, 3), U(1, 3), U(2, 2, 1)}, 0, {{0}}},
    {"min2", IR_OP_Min, b_op, 2, {U(2, 2, 3), U(1, 3)}, 0, {{0}}},
    {"sum3", IR_OP_Sum, b_op, 3, {U(2, 2, 3), U(1, 3), U(0, 0)}, 0, {{0}}},
    {"mean2", IR_OP_Mean, b_op, 2, {U(2, 2, 3), U(2, 1, 3)}, 0, {{0}}},
    {"where", IR_OP_Where, b_where, 2, {U(2, 2, 3), U(1, 3)}, 0, {{0}}},
    /* reductions */
    {"reducesum", IR_OP_ReduceSum, b_reduce, 1, {U(3, 2, 3, 4)},
      2, {AIS("axes", 1), AI("keepdims", 0)}},
    {"reducesum_noop", IR_OP_ReduceSum, b_reduce, 1, {U(2, 2, 3)},
      1, {AI("noop_with_empty_axes", 1)}},
    {"reducemean", IR_OP_ReduceMean, b_reduce, 1, {U(3, 2, 3, 4)},
      2, {AIS("axes", 0, 2), AI("keepdims", 1)}},
    {"reducemax", IR_OP_ReduceMax, b_reduce, 1, {DIST(3, 2, 3, 4)},
      2, {AIS("axes", 1), AI("keepdims", 0)}},
    {"reducemin_all", IR_OP_ReduceMin, b_reduce, 1, {DIST(2, 3, 4)}, 1, {AI("keepdims", 0)}},
    {"reduceprod", IR_OP_ReduceProd, b_reduce, 1, {IN(G_U, 0.5, 1.5, 3, 2, 3, 4)},
      1, {AIS("axes", 2)}},
    {"reducel1", IR_OP_ReduceL1, b_reduce, 1, {AW(3, 2, 3, 4)}, 1, {AIS("axes", 1)}},
    {"reducel2", IR_OP_ReduceL2, b_reduce, 1, {U(3, 2, 3, 4)},
      2, {AIS("axes", 0), AI("keepdims", 0)}},
    {"reducesumsquare", IR_OP_ReduceSumSquare, b_reduce, 1, {U(3, 2, 3, 4)},
      1, {AIS("axes", 1, 2)}},
    {"reducelogsum", IR_OP_ReduceLogSum, b_reduce, 1, {POS(3, 2, 3, 4)}, 1, {AIS("axes", 1)}},
    {"reducelogsumexp", IR_OP_ReduceLogSumExp, b_reduce, 1, {U(3, 2, 3, 4)},
      2, {AIS("axes", 2), AI("keepdims", 0)}},
    {"cumsum", IR_OP_CumSum, b_cumsum, 1, {U(2, 3, 4)},
      3, {AI("axis", 1), AI("exclusive", 0), AI("reverse", 0)}},
    {"cumsum_excl_rev", IR_OP_CumSum, b_cumsum, 1, {U(2, 3, 4)},
      3, {AI("axis", 0), AI("exclusive", 1), AI("reverse", 1)}},
    {"softmax_mid_axis", IR_OP_Softmax, b_op, 1, {U(3, 2, 3, 4)}, 1, {AI("axis", 1)}},
    {"softmax_legacy", IR_OP_Softmax, b_legacy, 1, {U(3, 2, 3, 4)}, 1, {AI("axis", 1)}},
    {"logsoftmax", IR_OP_LogSoftmax, b_op, 1, {U(3, 2, 3, 4)}, 1, {AI("axis", -1)}},
    {"logsoftmax_legacy", IR_OP_LogSoftmax, b_legacy, 1, {U(3, 2, 3, 4)}, 1, {AI("axis", 1)}},
    {"layernorm_last2", IR_OP_LayerNormalization, b_multi, 3,
     {U(3, 2, 3, 4), U(2, 3, 4), U(1, 4)}, 4,
     {AI("axis", -2), AF("epsilon", 1e-3), AI("stash_type", IR_F64), AI("nout", 3)}},
    {"batchnorm", IR_OP_BatchNormalization, b_op, 5,
     {U(4, 2, 3, 2, 2), U(1, 3), U(1, 3), U(1, 3), IN(G_U, 0.5, 1.5, 1, 3)}, 1,
     {AF("epsilon", 1e-3)}},
    {"instancenorm", IR_OP_InstanceNormalization, b_op, 3, {U(3, 2, 3, 4), U(1, 3), U(1, 3)}, 1,
     {AF("epsilon", 1e-3)}},
    /* linear algebra */
    {"matmul", IR_OP_MatMul, b_op, 2, {U(3, 2, 3, 4), U(2, 4, 5)}, 0, {{0}}},
    {"matmul_batch_bcast", IR_OP_MatMul, b_op, 2, {U(4, 2, 1, 3, 4), U(3, 3, 4, 2)}, 0, {{0}}},
    {"matmul_1d_left", IR_OP_MatMul, b_op, 2, {U(1, 4), U(3, 2, 4, 3)}, 0, {{0}}},
    {"matmul_1d_right", IR_OP_MatMul, b_op, 2, {U(3, 2, 3, 4), U(1, 4)}, 0, {{0}}},
    {"matmul_1d_both", IR_OP_MatMul, b_op, 2, {U(1, 4), U(1, 4)}, 0, {{0}}},
    {"gemm", IR_OP_Gemm, b_op, 3, {U(2, 3, 4), U(2, 4, 5), U(1, 5)},
      2, {AF("alpha", 0.7), AF("beta", 1.3)}},
    {"gemm_trans", IR_OP_Gemm, b_op, 3, {U(2, 4, 3), U(2, 5, 4), U(2, 3, 1)}, 4,
     {AI("transA", 1), AI("transB", 1), AF("alpha", -0.6), AF("beta", 0.4)}},
    {"gemm_transA_noC", IR_OP_Gemm, b_op, 2, {U(2, 4, 3), U(2, 4, 5)}, 1, {AI("transA", 1)}},
    {"gemm_transB", IR_OP_Gemm, b_op, 3, {U(2, 3, 4), U(2, 5, 4), U(0, 0)}, 1, {AI("transB", 1)}},
    {"einsum_bij_jk", IR_OP_Einsum, b_op, 2, {U(3, 2, 3, 4), U(2, 4, 5)},
      1, {AS("equation", "bij,jk->bik")}},
    {"einsum_ij_ij_i", IR_OP_Einsum, b_op, 2, {U(2, 3, 4), U(2, 3, 4)},
      1, {AS("equation", "ij,ij->i")}},
    {"einsum_summed_label", IR_OP_Einsum, b_op, 2, {U(2, 3, 4), U(2, 4, 5)},
      1, {AS("equation", "ij,jk->k")}},
    {"einsum_ellipsis_bcast", IR_OP_Einsum, b_op, 2, {U(4, 2, 1, 3, 4), U(3, 3, 4, 2)},
     1, {AS("equation", "...ij,...jk->...ik")}},
    {"einsum_unary", IR_OP_Einsum, b_op, 1, {U(3, 2, 3, 4)}, 1, {AS("equation", "bij->jb")}},
    {"einsum_diagonal", IR_OP_Einsum, b_op, 1, {U(2, 4, 4)}, 1, {AS("equation", "ii->i")}},
    {"einsum_trace", IR_OP_Einsum, b_op, 1, {U(2, 3, 3)}, 1, {AS("equation", "ii->")}},
    {"einsum_batch_diag_times", IR_OP_Einsum, b_op, 2, {U(3, 2, 3, 3), U(2, 2, 3)},
     1, {AS("equation", "bii,bi->bi")}},
    {"einsum_triple_repeat", IR_OP_Einsum, b_op, 2, {U(4, 3, 2, 3, 3), U(1, 2)},
     1, {AS("equation", "ijii,j->ij")}},
    /* convolution and pooling */
    {"conv_groups_stride_pad_dil", IR_OP_Conv, b_op, 3,
     {U(4, 2, 4, 5, 5), U(4, 6, 2, 3, 3), U(1, 6)}, 4,
     {AI("group", 2), AIS("strides", 2, 1), AIS("pads", 1, 0, 1, 1), AIS("dilations", 1, 2)}},
    {"conv1d", IR_OP_Conv, b_op, 2, {U(3, 1, 2, 7), U(3, 3, 2, 3)}, 1, {AIS("strides", 2)}},
    {"conv_same_upper", IR_OP_Conv, b_op, 2, {U(4, 1, 1, 4, 4), U(4, 2, 1, 2, 2)}, 1,
     {AS("auto_pad", "SAME_UPPER")}},
    {"maxpool", IR_OP_MaxPool, b_op, 1, {DIST(4, 1, 2, 5, 5)}, 3,
     {AIS("kernel_shape", 2, 2), AIS("strides", 2, 2), AIS("pads", 1, 1, 0, 0)}},
    {"maxpool_overlap", IR_OP_MaxPool, b_op, 1, {DIST(3, 2, 2, 6)}, 2,
     {AIS("kernel_shape", 3), AIS("strides", 1)}},
    {"averagepool", IR_OP_AveragePool, b_op, 1, {U(4, 1, 2, 5, 5)}, 3,
     {AIS("kernel_shape", 3, 3), AIS("strides", 2, 2), AIS("pads", 1, 1, 1, 1)}},
    {"averagepool_incl_pad", IR_OP_AveragePool, b_op, 1, {U(4, 1, 2, 5, 5)}, 4,
     {AIS("kernel_shape", 3, 2), AIS("strides", 2, 2), AIS("pads", 1, 0, 1, 1),
      AI("count_include_pad", 1)}},
    UNARY("globalaveragepool", GlobalAveragePool, U(4, 2, 3, 2, 2)),
    UNARY("globalmaxpool", GlobalMaxPool, DIST(4, 2, 3, 2, 2)),
    /* data movement */
    {"reshape", IR_OP_Reshape, b_intarg, 1, {U(3, 2, 3, 4)}, 1, {AIS("v", 4, -1)}},
    {"flatten", IR_OP_Flatten, b_op, 1, {U(3, 2, 3, 4)}, 1, {AI("axis", 2)}},
    {"squeeze", IR_OP_Squeeze, b_intarg, 1, {U(3, 2, 1, 3)}, 1, {AIS("v", 1)}},
    {"unsqueeze", IR_OP_Unsqueeze, b_intarg, 1, {U(2, 2, 3)}, 1, {AIS("v", 0, 3)}},
    {"transpose", IR_OP_Transpose, b_op, 1, {U(3, 2, 3, 4)}, 1, {AIS("perm", 2, 0, 1)}},
    {"transpose_default", IR_OP_Transpose, b_op, 1, {U(3, 2, 3, 4)}, 0, {{0}}},
    {"concat", IR_OP_Concat, b_op, 3, {U(3, 2, 1, 3), U(3, 2, 2, 3), U(3, 2, 3, 3)},
      1, {AI("axis", 1)}},
    {"split", IR_OP_Split, b_multi, 1, {U(2, 2, 6)},
      3, {AI("axis", 1), AIS("split", 1, 2, 3), AI("nout", 3)}},
    {"split_one_unused", IR_OP_Split, b_multi, 1, {U(2, 2, 6)}, 3,
     {AI("axis", -1), AI("nout", 3), AIS("use", 0, 2)}},
    {"slice_neg_step", IR_OP_Slice, b_slice, 1, {U(2, 4, 5)}, 4,
     {AIS("starts", 3, -1), AIS("ends", 0, -100), AIS("axes", 0, 1), AIS("steps", -1, -2)}},
    {"slice_pos_step", IR_OP_Slice, b_slice, 1, {U(3, 3, 4, 5)}, 4,
     {AIS("starts", 1, 0), AIS("ends", 100, 5), AIS("axes", 2, 1), AIS("steps", 1, 3)}},
    {"gather_repeat", IR_OP_Gather, b_gather, 1, {U(2, 5, 3)}, 3,
     {AI("axis", 0), AIS("idx", 1, 3, 1, -1), AIS("idx_shape", 2, 2)}},
    {"gather_axis1", IR_OP_Gather, b_gather, 1, {U(3, 2, 4, 3)}, 3,
     {AI("axis", 1), AIS("idx", 2, 2, 0), AIS("idx_shape", 3)}},
    {"gatherelements", IR_OP_GatherElements, b_gather, 1, {U(2, 3, 4)}, 3,
     {AI("axis", 0), AIS("idx", 0, 2, 2, 1, 0, 0, 1, 2), AIS("idx_shape", 2, 4)}},
    {"expand", IR_OP_Expand, b_intarg, 1, {U(2, 3, 1)}, 1, {AIS("v", 2, 3, 4)}},
    {"tile", IR_OP_Tile, b_intarg, 1, {U(2, 2, 3)}, 1, {AIS("v", 3, 2)}},
    {"pad_value", IR_OP_Pad, b_pad, 2, {U(2, 2, 3), U(0, 0)}, 1, {AIS("pads", 1, 0, 2, 1)}},
    {"pad_negative", IR_OP_Pad, b_pad, 1, {U(2, 3, 4)}, 1, {AIS("pads", 1, -1, 0, 1)}},
    {"trilu_upper_k", IR_OP_Trilu, b_trilu, 1, {U(2, 3, 4)}, 2, {AI("upper", 1), AI("k", 1)}},
    {"trilu_lower", IR_OP_Trilu, b_trilu, 1, {U(3, 2, 3, 4)}, 1, {AI("upper", 0)}},
    /* composite */
    {"mlp_gelu_xent", IR_OP_COUNT, b_mlp, 5, {U(2, 4, 5), U(2, 5, 6), U(1, 6), U(2, 6, 3), U(1, 3)},
      0, {{0}}},
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ---- running a case ------------------------------------------------------------ */

static const double kinks[] = {-3, -2.5, 0, 1, 2.5, 3};

static void fill(const struct in_spec *s, double *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        v[i] = rng_unif(s->lo, s->hi);
        for (size_t k = 0; s->gen == G_AWAY && k < sizeof kinks / sizeof kinks[0]; k++)
            if (fabs(v[i] - kinks[k]) < 0.08)
                v[i] = kinks[k] + (v[i] < kinks[k] ? -0.08 : 0.08);
        if (s->gen == G_DIST)
            v[i] = s->lo + 0.13 * (double)i - 0.065 * (double)n;
    }
    for (int64_t i = n - 1; s->gen == G_DIST && i > 0; i--) { /* shuffle */
        int64_t j = (int64_t)(rng_next() % (uint64_t)(i + 1));
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

struct fd_run {
    struct ir_graph *g;
    struct ir_value in[MAXIN];
    int nin;
};

static int64_t spec_numel(const struct in_spec *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dims[i];
    return n;
}

/* the loss and (when grads is non-NULL) every input's gradient, widened */
static int run_graph(struct fd_run *r, double *loss, double **grads)
{
    struct diag d = {0};
    struct ir_value *out = NULL;
    int nout = 0;
    int st = rt_run(r->g, &cg_ref, r->in, r->nin, &out, &nout, &d);
    if (st) {
        fprintf(stderr, "  run: %s\n", d.msg);
        return st;
    }
    *loss = ir_load_f64(out[0].dtype, out[0].data, 0);
    for (int i = 0; grads && i < r->nin; i++)
        for (int64_t j = 0; j < ir_value_numel(&out[1 + i]); j++)
            grads[i][j] = ir_load_f64(out[1 + i].dtype, out[1 + i].data, j);
    for (int i = 0; i < nout; i++)
        ir_value_free(&out[i]);
    free(out);
    return ST_OK;
}

/* loss = sum_k ReduceSum(y_k * w_k), w_k in y_k's dtype */
static uint32_t weighted_loss(struct ir_builder *b, const uint32_t *y, int ny)
{
    uint32_t loss = IR_NONE;
    for (int k = 0; k < ny && !b->err; k++) {
        const struct ir_tensor *t = &b->g->t[y[k]];
        int64_t n = ir_numel(t), dims[IR_MAX_RANK];
        int rank = t->rank;
        enum ir_dtype dt = t->dtype;
        memcpy(dims, t->dims, sizeof dims);
        double *w = malloc((size_t)(n ? n : 1) * sizeof *w);
        for (int64_t i = 0; i < n; i++)
            ir_store_f64(dt, w, i, rng_unif(-1, 1));
        uint32_t s = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, y[k], bld_const(b, dt, rank, dims,
                                w)), 0, NULL, 0);
        free(w);
        if (loss != IR_NONE && b->g->t[s].dtype != b->g->t[loss].dtype)
            s = bld_cast(b, s, b->g->t[loss].dtype);
        loss = loss == IR_NONE ? s : bld_add(b, loss, s);
    }
    return loss;
}

/* builds the graph (inputs of dtype dt) with its gradient outputs; NULL after a failure */
static struct ir_graph *build_case(const struct fd_case *c, enum ir_dtype dt)
{
    struct ir_graph *g = ir_graph_new();
    struct diag d = {0};
    uint32_t x[MAXIN], y[16], grads[MAXIN];
    g->opset = 20;
    for (int i = 0; i < c->nin; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        x[i] = ir_tensor_new(g, nm);
        g->t[x[i]].dtype = dt;
        g->t[x[i]].rank = c->in[i].rank;
        memcpy(g->t[x[i]].dims, c->in[i].dims, (size_t)c->in[i].rank * sizeof(int64_t));
        ir_graph_add_input(g, x[i]);
    }
    struct ir_builder b = bld_begin(g, "fwd", &d);
    int ny = c->build(&b, c, x, y);
    uint32_t loss = weighted_loss(&b, y, ny);
    int st = b.err;
    if (!st)
        st = pass_autodiff(g, loss, (uint32_t)c->nin, x, grads, &d);
    if (!st) {
        ir_graph_add_output(g, loss);
        for (int i = 0; i < c->nin; i++)
            ir_graph_add_output(g, grads[i]);
        struct pass_ctx cx = {.verify = 1};
        st = pass_compile_inference(g, &cx, &d);
    }
    if (st) {
        fprintf(stderr, "  %s (%s): %s\n", c->name, ir_dtype_name(dt), d.msg);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

/* a run of case c in dtype dt on the values v (doubles, exact in float32) */
static int make_run(const struct fd_case *c, enum ir_dtype dt, double *const *v, struct fd_run *r)
{
    rng_seed(c->name); /* the same w_k in both dtypes */
    r->nin = c->nin;
    if (!(r->g = build_case(c, dt)))
        return 0;
    for (int i = 0; i < c->nin; i++) {
        const struct in_spec *s = &c->in[i];
        int64_t n = spec_numel(s);
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        r->in[i] = (struct ir_value){.name = strdup(nm), .dtype = dt, .rank = s->rank,
                                     .nbytes = (size_t)n * ir_dtype_size(dt)};
        memcpy(r->in[i].dims, s->dims, sizeof s->dims);
        r->in[i].data = malloc(r->in[i].nbytes ? r->in[i].nbytes : 1);
        for (int64_t j = 0; j < n; j++)
            ir_store_f64(dt, r->in[i].data, j, v[i][j]);
    }
    return 1;
}

static void free_run(struct fd_run *r)
{
    for (int i = 0; i < r->nin; i++)
        ir_value_free(&r->in[i]);
    ir_graph_free(r->g);
}

static int n_elems_checked;

/* central differences against the float64 gradient gr; returns the mismatches */
static int fd_compare(const struct fd_case *c, struct fd_run *r, double *const *gr)
{
    int bad = 0;
    for (int i = 0; i < c->nin; i++) {
        double *v = r->in[i].data, lp, lm;
        for (int64_t j = 0; j < spec_numel(&c->in[i]); j++) {
            double keep = v[j];
            v[j] = keep + FD_H;
            int st = run_graph(r, &lp, NULL);
            v[j] = keep - FD_H;
            st = st ? st : run_graph(r, &lm, NULL);
            v[j] = keep;
            double fd = (lp - lm) / (2 * FD_H), ad = gr[i][j];
            n_elems_checked++;
            if (st || !(fabs(ad - fd) <= FD_RTOL * (fabs(fd) > 1 ? fabs(fd) : 1))) {
                if (bad++ < 4)
                    fprintf(stderr, "  %s: d/dx%d[%lld] autodiff %.10g, central difference %.10g\n",
                            c->name, i, (long long)j, ad, fd);
            }
        }
    }
    return bad;
}

/* the same gradients computed in float32 (the dtype models train in) */
static int f32_compare(const struct fd_case *c, double *const *v, double *const *gr)
{
    struct fd_run r;
    double *g32[MAXIN], loss;
    if (!make_run(c, IR_F32, v, &r))
        return 1;
    for (int i = 0; i < c->nin; i++)
        g32[i] = malloc((size_t)(spec_numel(&c->in[i]) + 1) * sizeof(double));
    int bad = run_graph(&r, &loss, g32) != ST_OK;
    for (int i = 0; i < c->nin; i++) {
        int64_t n = spec_numel(&c->in[i]);
        double scale = 1;
        for (int64_t j = 0; j < n; j++)
            scale = fabs(gr[i][j]) > scale ? fabs(gr[i][j]) : scale;
        for (int64_t j = 0; !bad && j < n; j++)
            if (!(fabs(g32[i][j] - gr[i][j]) <= 1e-4 * scale)) {
                fprintf(stderr, "  %s: float32 d/dx%d[%lld] = %.7g, float64 %.7g\n", c->name, i,
                        (long long)j, g32[i][j], gr[i][j]);
                bad = 1;
            }
        free(g32[i]);
    }
    free_run(&r);
    return bad;
}

/* 1 when every float64 gradient element matches its central difference and
 * the float32 gradient matches the float64 one */
static int check_case(const struct fd_case *c)
{
    double *v[MAXIN], *gr[MAXIN], l0;
    struct fd_run r;
    rng_seed(c->name);
    for (int i = 0; i < c->nin; i++) {
        int64_t n = spec_numel(&c->in[i]);
        v[i] = malloc((size_t)(n + 1) * sizeof(double));
        gr[i] = malloc((size_t)(n + 1) * sizeof(double));
        fill(&c->in[i], v[i], n);
        for (int64_t j = 0; j < n; j++)
            v[i][j] = (double)(float)v[i][j]; /* the same inputs in both dtypes */
    }
    int ok = make_run(c, IR_F64, v, &r);
    if (ok) {
        ok = run_graph(&r, &l0, gr) == ST_OK && fd_compare(c, &r, gr) == 0;
        free_run(&r);
    }
    if (ok)
        ok = f32_compare(c, v, gr) == 0;
    for (int i = 0; i < c->nin; i++) {
        free(v[i]);
        free(gr[i]);
    }
    return ok;
}

TEST(finite_differences)
{
    int fails = 0;
    for (size_t k = 0; k < NCASES; k++)
        if (!check_case(&cases[k])) {
            fprintf(stderr, "  case '%s' FAILED\n", cases[k].name);
            fails++;
        }
    printf("  %zu FD cases (float64; float32 agrees), %d gradient elements checked, %d cases "
           "failed\n", NCASES, n_elems_checked, fails);
    CHECK_EQ(fails, 0);
}

/* ops whose gradient is zero (or which are not differentiated: the internal
 * adjoints, first-order only) */
static const enum ir_op nondiff[] = {
    IR_OP_Floor, IR_OP_Ceil, IR_OP_Round, IR_OP_Sign, IR_OP_Not, IR_OP_IsNaN, IR_OP_IsInf,
    IR_OP_Equal, IR_OP_Less, IR_OP_LessOrEqual, IR_OP_Greater, IR_OP_GreaterOrEqual, IR_OP_And,
    IR_OP_Or, IR_OP_Xor, IR_OP_ArgMax, IR_OP_ArgMin, IR_OP_Hardmax, IR_OP_Shape, IR_OP_Size,
    IR_OP_ConstantOfShape, IR_OP_Range,
    IR_OP_LowerLeakyHardGrad, IR_OP_UpperLeakyHardGrad, IR_OP_ConvGradInput,
    IR_OP_ConvGradWeight, IR_OP_MaxPoolGrad, IR_OP_AveragePoolGrad, IR_OP_GatherGrad,
    IR_OP_GatherElementsGrad, IR_OP_SliceGrad, IR_OP_StopGradient, IR_OP_ChunkedKLGrad,
    IR_OP_TopKMask,
};

/* float32-only ops whose gradient has its own central-difference check against a
 * float64 oracle: ChunkedKL in test_kl_chunked.c */
static const enum ir_op checked_elsewhere[] = {IR_OP_ChunkedKL};

TEST(every_differentiable_op_has_a_case)
{
    for (int op = 0; op < IR_OP_COUNT; op++) {
        int covered = 0;
        for (size_t k = 0; k < sizeof nondiff / sizeof nondiff[0]; k++)
            covered |= nondiff[k] == (enum ir_op)op;
        for (size_t k = 0; k < sizeof checked_elsewhere / sizeof checked_elsewhere[0]; k++)
            covered |= checked_elsewhere[k] == (enum ir_op)op;
        for (size_t k = 0; k < NCASES; k++)
            covered |= cases[k].op == (enum ir_op)op;
        if (!covered) {
            fprintf(stderr, "  op %s has no finite-difference case (and is not listed as "
                    "non-differentiable)\n", ir_ops[op].name);
            test_failed_ = 1;
        }
    }
}

/* ---- direct checks ------------------------------------------------------------------ */

static uint32_t f64_input(struct ir_graph *g, const char *name, int rank, const int64_t *dims)
{
    uint32_t t = ir_tensor_new(g, name);
    g->t[t].dtype = IR_F64;
    g->t[t].rank = rank;
    memcpy(g->t[t].dims, dims, (size_t)rank * sizeof *dims);
    ir_graph_add_input(g, t);
    return t;
}

/* compile g with outputs outs and run it on x; returns the outputs (caller frees) */
static struct ir_value *run_outputs(struct ir_graph *g, const uint32_t *outs, int nout,
                                    const char *xname, double *xv, int64_t n, int *nres)
{
    struct diag d = {0};
    for (int i = 0; i < nout; i++)
        ir_graph_add_output(g, outs[i]);
    struct pass_ctx cx = {.verify = 1};
    struct ir_value in = {.name = (char *)xname, .dtype = IR_F64, .rank = 1, .dims = {n},
                          .data = xv, .nbytes = (size_t)n * sizeof(double)};
    struct ir_value *res = NULL;
    int st = pass_compile_inference(g, &cx, &d);
    if (!st)
        st = rt_run(g, &cg_ref, &in, 1, &res, nres, &d);
    if (st)
        fprintf(stderr, "  %s\n", d.msg);
    return st ? NULL : res;
}

static void free_values(struct ir_value *v, int n)
{
    for (int i = 0; i < n; i++)
        ir_value_free(&v[i]);
    free(v);
}

/* METHOD §2.4: x <= 0 passes alpha*g only when the upstream g < 0; (0,1] passes
 * g; above 1 nothing. y is used twice with weights whose shares have opposite
 * signs, so the gate must see their sum (METHOD §13.1), not either share. */
TEST(lower_leaky_hard_sign_exception)
{
    struct ir_graph *g = ir_graph_new();
    struct diag d = {0};
    int64_t n = 8;
    uint32_t x = f64_input(g, "x", 1, &n);
    struct ir_builder b = bld_begin(g, "t", &d);
    uint32_t y = bld_op1(&b, IR_OP_LowerLeakyHard, x);
    /* total upstream gradient w1 + w2 per element */
    double w1[8] = {-1, 1, 2, -1, 0.5, 0.5, 1, -1}, w2[8] = {0, 0, -3, 2, 0, 0, 0, 0};
    double xv[8] = {-0.5, -0.5, -0.2, -0.2, 0.0, 0.5, 1.0, 1.5};
    double want_y[8] = {0, 0, 0, 0, 0, 0.5, 1, 1};
    double want_g[8] = {-0.01, 0, -0.01, 0, 0, 0.5, 1, 0}; /* x = 0 takes the lower branch */
    uint32_t l1 = bld_reduce(&b, IR_OP_ReduceSum, bld_mul(&b, y, bld_const(&b, IR_F64, 1, &n, w1)),
                             0, NULL, 0);
    uint32_t l2 = bld_reduce(&b, IR_OP_ReduceSum, bld_mul(&b, y, bld_const(&b, IR_F64, 1, &n, w2)),
                             0, NULL, 0);
    uint32_t loss = bld_add(&b, l1, l2), gx = IR_NONE;
    CHECK_EQ(b.err, ST_OK);
    CHECK_EQ(pass_autodiff(g, loss, 1, &x, &gx, &d), ST_OK);
    uint32_t outs[2] = {y, gx};
    int nres = 0;
    struct ir_value *res = run_outputs(g, outs, 2, "x", xv, n, &nres);
    CHECK(res != NULL);
    for (int i = 0; res && i < 8; i++) {
        CHECK_NEAR(((double *)res[0].data)[i], want_y[i], 1e-15);
        CHECK_NEAR(((double *)res[1].data)[i], want_g[i], 1e-15);
    }
    if (res)
        free_values(res, nres);
    ir_graph_free(g);
}

/* 0 below 0, 1 on [0, 1], alpha above 1 */
TEST(upper_leaky_hard_values)
{
    struct ir_graph *g = ir_graph_new();
    struct diag d = {0};
    int64_t n = 5;
    uint32_t x = f64_input(g, "x", 1, &n);
    struct ir_builder b = bld_begin(g, "t", &d);
    uint32_t y = bld_op1(&b, IR_OP_UpperLeakyHard, x);
    uint32_t loss = bld_reduce(&b, IR_OP_ReduceSum, y, 0, NULL, 0), gx = IR_NONE;
    double xv[5] = {-1, 0, 0.5, 1, 3}, want_y[5] = {0, 0, 0.5, 1, 1.02};
    double want_g[5] = {0, 1, 1, 1, 0.01};
    CHECK_EQ(pass_autodiff(g, loss, 1, &x, &gx, &d), ST_OK);
    uint32_t outs[2] = {y, gx};
    int nres = 0;
    struct ir_value *res = run_outputs(g, outs, 2, "x", xv, n, &nres);
    CHECK(res != NULL);
    for (int i = 0; res && i < 5; i++) {
        CHECK_NEAR(((double *)res[0].data)[i], want_y[i], 1e-15);
        CHECK_NEAR(((double *)res[1].data)[i], want_g[i], 1e-15);
    }
    if (res)
        free_values(res, nres);
    ir_graph_free(g);
}

/* no path: an explicit zero constant; a non-differentiable op on the path: zeros;
 * a frozen branch adds no gradient nodes */
TEST(zero_gradients_and_frozen_branches)
{
    struct ir_graph *g = ir_graph_new();
    struct diag d = {0};
    int64_t n = 3;
    uint32_t x = f64_input(g, "x", 1, &n), z = f64_input(g, "z", 1, &n);
    struct ir_builder b = bld_begin(g, "t", &d);
    uint32_t frozen = bld_op1(&b, IR_OP_Exp, bld_op1(&b, IR_OP_Sin, z)); /* no wrt upstream */
    uint32_t f = bld_op1(&b, IR_OP_Floor, x);
    uint32_t loss = bld_reduce(&b, IR_OP_ReduceSum, bld_mul(&b, f, frozen), 0, NULL, 0);
    uint32_t nn0 = g->nn, gr[1];
    CHECK_EQ(pass_autodiff(g, loss, 1, &x, gr, &d), ST_OK);
    /* Mul's VJP w.r.t. f runs (a Mul), Floor contributes nothing; nothing touches z's branch */
    for (uint32_t i = nn0; i < g->nn; i++)
        CHECK(g->n[i].op != IR_OP_Cos && g->n[i].op != IR_OP_Exp);
    CHECK(g->t[gr[0]].data != NULL); /* Floor gives no gradient: an explicit zero constant */
    for (int i = 0; i < 3 && g->t[gr[0]].data; i++)
        CHECK_EQ(((double *)g->t[gr[0]].data)[i], 0);
    ir_graph_free(g);
}

/* StopGradient passes the value but no gradient: d/dx Σ x·sg(x) = sg(x) = x, not 2x, and a
 * gradient requested at the StopGradient's output (a leaf by request) is the usual one */
TEST(stop_gradient)
{
    struct ir_graph *g = ir_graph_new();
    struct diag d = {0};
    int64_t n = 3;
    uint32_t x = f64_input(g, "x", 1, &n);
    struct ir_builder b = bld_begin(g, "t", &d);
    uint32_t sg = bld_op1(&b, IR_OP_StopGradient, bld_mul(&b, x, x));
    uint32_t loss = bld_reduce(&b, IR_OP_ReduceSum, bld_mul(&b, x, sg), 0, NULL, 0);
    uint32_t wrt[2] = {x, sg}, gr[2];
    CHECK_EQ(pass_autodiff(g, loss, 2, wrt, gr, &d), ST_OK);
    double xv[3] = {0.5, -2, 3};
    int nres = 0;
    uint32_t outs[3] = {loss, gr[0], gr[1]};
    struct ir_value *r = run_outputs(g, outs, 3, "x", xv, 3, &nres);
    CHECK(r != NULL && nres == 3);
    for (int i = 0; r && i < 3; i++) {
        CHECK_NEAR(((double *)r[1].data)[i], xv[i] * xv[i], 1e-12); /* sg(x²), not 3x² */
        CHECK_NEAR(((double *)r[2].data)[i], xv[i], 1e-12);         /* d loss / d sg = x */
    }
    free_values(r, nres);
    ir_graph_free(g);
}

/* Cast: the gradient of a float32 input through a cast to float64 is float32 */
TEST(cast_gradient_dtype)
{
    struct ir_graph *g = ir_graph_new();
    struct diag d = {0};
    int64_t n = 2;
    uint32_t x = ir_tensor_new(g, "x");
    g->t[x].dtype = IR_F32;
    g->t[x].rank = 1;
    g->t[x].dims[0] = 2;
    ir_graph_add_input(g, x);
    struct ir_builder b = bld_begin(g, "t", &d);
    double w[2] = {0.25, -2};
    uint32_t y = bld_cast(&b, x, IR_F64);
    uint32_t loss = bld_reduce(&b, IR_OP_ReduceSum, bld_mul(&b, y, bld_const(&b, IR_F64, 1, &n, w)),
                               0, NULL, 0), gx;
    CHECK_EQ(pass_autodiff(g, loss, 1, &x, &gx, &d), ST_OK);
    CHECK_EQ(g->t[gx].dtype, IR_F32);
    CHECK_EQ(g->t[gx].rank, 1);
    ir_graph_free(g);
}

/* what is not implemented fails with a message naming the node */
TEST(unsupported_fails_clearly)
{
    struct ir_graph *g = ir_graph_new();
    struct diag d = {0};
    int64_t n[2] = {3, 3};
    uint32_t x = f64_input(g, "x", 2, n);
    struct ir_builder b = bld_begin(g, "t", &d);
    int64_t pads[4] = {1, 1, 1, 1};
    struct ir_attr mode = bld_attr_str("mode", "reflect");
    uint32_t in[2] = {x, bld_i64s(&b, 4, pads)};
    uint32_t p = bld_node(&b, IR_OP_Pad, 2, in, 1, &mode, 1, NULL);
    uint32_t loss = bld_reduce(&b, IR_OP_ReduceSum, p, 0, NULL, 0), gx;
    CHECK_EQ(pass_autodiff(g, loss, 1, &x, &gx, &d), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d.msg, "reflect");
    ir_graph_free(g);

    /* a repeated Einsum index differentiates now; a non-scalar loss is still refused */
    g = ir_graph_new();
    struct diag d2 = {0};
    x = f64_input(g, "x", 2, n);
    b = bld_begin(g, "t", &d2);
    struct ir_attr eq = bld_attr_str("equation", "ii->i");
    uint32_t e = bld_node(&b, IR_OP_Einsum, 1, &x, 1, &eq, 1, NULL);
    CHECK_EQ(pass_autodiff(g, e, 1, &x, &gx, &d2), ST_ERR_INVALID); /* loss not a scalar */
    ir_graph_free(g);
}

static const struct test_case tests[] = {
    T(finite_differences),
    T(every_differentiable_op_has_a_case),
    T(lower_leaky_hard_sign_exception),
    T(upper_leaky_hard_values),
    T(zero_gradients_and_frozen_branches),
    T(stop_gradient),
    T(cast_gradient_dtype),
    T(unsupported_fails_clearly),
};
TEST_MAIN(tests)
