/* test_llvm.c — the llvm target (codegen/llvm) and the fusion pass (codegen/fuse.c)
 * against the reference:
 *   - every fusible op as a one-node kernel, on random inputs with broadcasting and
 *     with NaN, infinities, signed zeros and the squashing boundaries mixed in:
 *     bit-identical to cg_ref (the kernels do ref's float32 or double operations and
 *     call the same libm), except Exp, Erf, Sigmoid, Pow and exact GELU: bit-identical to
 *     the cpu target (the same vectorisable formulas) and within one ulp of ref; on 1
 *     and 3 threads alike;
 *   - a fused chain with outputs read outside it, through rt_run: the cpu target's
 *     bits (node by node), and ref's within 1e-6;
 *   - whole SPD and VPD train steps on llvm vs ref (GEMMs run on OpenBLAS there, so
 *     within 1e-4 relative), identical on 1 and 3 threads, fusing a good share;
 *   - the kernel disk cache: a second process loads what the first compiled, a
 *     corrupt entry is rebuilt. */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu_impl.h"
#include "fuse.h"
#include "memplan.h"
#include "pow_pairs.h"
#include "program_fixture.h"

#ifdef PDC_HAVE_LLVM
#include "llvm/llvm_impl.h"

/* ---- one-node kernels ---------------------------------------------------------- */

static uint64_t xs = 88172645463325252ull;

static float frand(float lo, float hi)
{
    xs ^= xs << 13, xs ^= xs >> 7, xs ^= xs << 17;
    return lo + (hi - lo) * (float)((double)(xs >> 40) / (double)(1ull << 24));
}

static const float specials[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1.0f, -1.0f, 0.5f};

static uint32_t const_input(struct ir_graph *g, enum ir_dtype dt, int rank, const int64_t *dims,
                            float lo, float hi, int with_specials)
{
    static int nt;
    char name[32];
    snprintf(name, sizeof name, "c%d", nt++);
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    float *v = malloc((size_t)(n + 1) * sizeof *v);
    uint8_t *b = (uint8_t *)v;
    for (int64_t i = 0; i < n; i++) {
        if (dt == IR_BOOL)
            b[i] = frand(0, 1) < 0.5f;
        else
            v[i] = with_specials && i < 8 && n > 16 ? specials[i] : frand(lo, hi);
    }
    uint32_t t = ir_tensor_new(g, name);
    ir_tensor_set_const(g, t, dt, rank, dims, v);
    free(v);
    return t;
}

struct opcase {
    enum ir_op op;
    int nin;
    enum ir_dtype in_dt[3], out_dt;
    float lo, hi;   /* input range */
    const char *attr_s; /* Gelu's approximate */
};

#define F IR_F32
#define B IR_BOOL
static const struct opcase ops[] = {
    {IR_OP_Identity, 1, {F}, F, -3, 3, NULL}, {IR_OP_Neg, 1, {F}, F, -3, 3, NULL},
    {IR_OP_Abs, 1, {F}, F, -3, 3, NULL}, {IR_OP_Relu, 1, {F}, F, -3, 3, NULL},
    {IR_OP_LeakyRelu, 1, {F}, F, -3, 3, NULL}, {IR_OP_Sigmoid, 1, {F}, F, -20, 20, NULL},
    {IR_OP_Tanh, 1, {F}, F, -5, 5, NULL}, {IR_OP_Erf, 1, {F}, F, -4, 4, NULL},
    {IR_OP_Exp, 1, {F}, F, -30, 30, NULL}, {IR_OP_Log, 1, {F}, F, 1e-3f, 50, NULL},
    {IR_OP_Sqrt, 1, {F}, F, 0, 50, NULL}, {IR_OP_Reciprocal, 1, {F}, F, 0.1f, 5, NULL},
    {IR_OP_Softplus, 1, {F}, F, -30, 30, NULL}, {IR_OP_Gelu, 1, {F}, F, -8, 8, "none"},
    {IR_OP_Gelu, 1, {F}, F, -8, 8, "tanh"}, {IR_OP_StopGradient, 1, {F}, F, -3, 3, NULL},
    {IR_OP_LowerLeakyHard, 1, {F}, F, -1, 2, NULL}, {IR_OP_UpperLeakyHard, 1, {F}, F, -1, 2, NULL},
    {IR_OP_LowerLeakyHardGrad, 2, {F, F}, F, -1, 2, NULL},
    {IR_OP_UpperLeakyHardGrad, 2, {F, F}, F, -1, 2, NULL},
    {IR_OP_Add, 2, {F, F}, F, -3, 3, NULL}, {IR_OP_Sub, 2, {F, F}, F, -3, 3, NULL},
    {IR_OP_Mul, 2, {F, F}, F, -3, 3, NULL}, {IR_OP_Div, 2, {F, F}, F, 0.2f, 3, NULL},
    {IR_OP_Pow, 2, {F, F}, F, 0.1f, 3, NULL}, {IR_OP_Max, 2, {F, F}, F, -3, 3, NULL},
    {IR_OP_Min, 2, {F, F}, F, -3, 3, NULL}, {IR_OP_Sum, 3, {F, F, F}, F, -3, 3, NULL},
    {IR_OP_Max, 3, {F, F, F}, F, -3, 3, NULL},
    {IR_OP_Equal, 2, {F, F}, B, -1, 1, NULL}, {IR_OP_Less, 2, {F, F}, B, -3, 3, NULL},
    {IR_OP_LessOrEqual, 2, {F, F}, B, -3, 3, NULL}, {IR_OP_Greater, 2, {F, F}, B, -3, 3, NULL},
    {IR_OP_GreaterOrEqual, 2, {F, F}, B, -3, 3, NULL},
    {IR_OP_Where, 3, {B, F, F}, F, -3, 3, NULL},
    {IR_OP_Cast, 1, {F}, B, -1, 1, NULL}, {IR_OP_Cast, 1, {B}, F, 0, 1, NULL},
};
#undef F
#undef B

/* operand shapes: same shape, a bias row, a column, a scalar constant (immediate), a
 * matrix broadcast over the batch */
struct shapes {
    int r[3];
    int64_t d[3][3];
};
static const struct shapes shape_sets[] = {
    {{3, 3, 3}, {{4, 50, 233}, {4, 50, 233}, {4, 50, 233}}},
    {{3, 1, 2}, {{4, 50, 233}, {233}, {50, 1}}},
    {{2, 3, 0}, {{50, 1}, {4, 50, 233}, {0}}},
    {{1, 3, 3}, {{233}, {4, 1, 233}, {4, 50, 233}}},
    {{3, 2, 1}, {{4, 50, 233}, {50, 233}, {1}}}, /* host rows of two dims (50 x 233) */
};

static int same_bits(const void *a, const void *b, enum ir_dtype dt, int64_t i)
{
    if (dt == IR_BOOL)
        return ((const uint8_t *)a)[i] == ((const uint8_t *)b)[i];
    float x = ((const float *)a)[i], y = ((const float *)b)[i];
    return (isnan(x) && isnan(y)) || memcmp(&x, &y, 4) == 0;
}

static int64_t count_diff(const void *a, const void *b, enum ir_dtype dt, int64_t n, int64_t *first)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!same_bits(a, b, dt, i) && bad++ == 0)
            *first = i;
    return bad;
}

/* operand i of case oc in shape set s; the squashing VJPs take x and dy of one shape */
static uint32_t case_input(struct ir_graph *g, const struct opcase *oc, const struct shapes *s, int i)
{
    int grad = oc->op == IR_OP_LowerLeakyHardGrad || oc->op == IR_OP_UpperLeakyHardGrad;
    const struct shapes *use = grad || oc->nin == 1 ? &shape_sets[0] : s;
    int k = oc->nin == 1 ? 0 : i;
    int r = use->r[k];
    int64_t one = 1;
    if (r == 0) /* a scalar */
        return const_input(g, oc->in_dt[i], 1, &one, oc->lo, oc->hi, 0);
    return const_input(g, oc->in_dt[i], r, use->d[k], oc->lo, oc->hi, 1);
}

static struct ir_node *case_node(struct ir_graph *g, const struct opcase *oc, const struct shapes *s)
{
    uint32_t in[3];
    for (int i = 0; i < oc->nin; i++)
        in[i] = case_input(g, oc, s, i);
    uint32_t o = ir_tensor_new(g, "y");
    uint32_t id = ir_node_new(g, oc->op, NULL, (uint32_t)oc->nin, in, 1, &o);
    struct ir_node *n = &g->n[id];
    if (oc->attr_s || oc->op == IR_OP_Cast) {
        n->attr = ir_arena_alloc(g->arena, sizeof *n->attr);
        n->n_attr = 1;
        n->attr[0].name = oc->attr_s ? "approximate" : "to";
        n->attr[0].type = oc->attr_s ? IR_ATTR_STRING : IR_ATTR_INT;
        n->attr[0].s = oc->attr_s;
        n->attr[0].i = oc->out_dt;
    }
    struct diag d = {0};
    ir_graph_add_output(g, o);
    if (ir_infer_node(g, n, &d) || ir_fill_topo(g, &d)) {
        fprintf(stderr, "  %s: %s\n", ir_ops[oc->op].name, d.msg);
        return NULL;
    }
    return n;
}

/* Exp, Erf, Sigmoid and exact GELU use the cpu target's exp/erf/erfc formulas */
static int cpu_math_op(const struct ir_node *n)
{
    return n->op == IR_OP_Exp || n->op == IR_OP_Erf || n->op == IR_OP_Sigmoid || n->op == IR_OP_Pow ||
           (n->op == IR_OP_Gelu && strcmp(ir_attr_str(n, "approximate", "none"), "none") == 0);
}

/* elements more than one float ulp from ref (NaN matches NaN) */
static int64_t count_far(const float *a, const float *b, int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i]))
            continue;
        int32_t ia, ib;
        memcpy(&ia, &a[i], 4);
        memcpy(&ib, &b[i], 4);
        int64_t ka = ia < 0 ? (int64_t)INT32_MIN - ia : ia, kb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
        bad += (ka > kb ? ka - kb : kb - ka) > 1;
    }
    return bad;
}

/* got against the oracle: ref's bits, or for the cpu_math ops the cpu target's
 * bits (when it has its own kernels) and one ulp of ref */
static int64_t mismatches(const struct ir_graph *g, const struct ir_node *n, const void *got,
                          const void *want, const void *want_cpu)
{
    const struct ir_tensor *y = &g->t[n->out[0]];
    int64_t first = 0, cnt = ir_numel(y);
    if (!cpu_math_op(n))
        return count_diff(got, want, y->dtype, cnt, &first);
    int64_t far = count_far(got, want, cnt);
#ifdef PDC_HAVE_BLAS
    far += count_diff(got, want_cpu, y->dtype, cnt, &first);
#endif
    return far;
}

/* the one-node kernel on 1 and 3 threads against the reference */
static void op_case(const struct opcase *oc, const struct shapes *s)
{
    struct ir_graph *g = ir_graph_new();
    struct ir_node *n = case_node(g, oc, s);
    struct cg_plan plan = {0};
    struct diag d = {0};
    CHECK(n != NULL);
    if (!n || cg_fuse(g, 1, &plan) != ST_OK || plan.n_groups != 1 || !plan.groups[0].fused) {
        fprintf(stderr, "  %s: not one fused group\n", ir_ops[oc->op].name);
        test_failed_ = 1;
        goto out;
    }
    const struct ir_tensor *y = &g->t[n->out[0]];
    size_t nb = (size_t)ir_numel(y) * ir_dtype_size(y->dtype);
    void *want = malloc(nb), *want_cpu = malloc(nb), *got = malloc(nb), *in[3], *bufs[4];
    for (uint32_t i = 0; i < n->n_in; i++)
        in[i] = g->t[n->in[i]].data;
    CHECK_EQ(cg_ref.run(g, n, in, &want), ST_OK);
    CHECK_EQ(cg_cpu.run(g, n, in, &want_cpu), ST_OK);
    const struct cg_group *gr = &plan.groups[0];
    for (uint32_t i = 0; i < gr->n_in; i++)
        bufs[i] = g->t[gr->in[i]].data;
    bufs[gr->n_in] = got;
    struct cg_kernel *k = NULL;
    int st = cg_llvm.compile(g, gr, &k, &d);
    CHECK_EQ(st, ST_OK);
    for (int threads = 1; !st && threads <= 3; threads += 2) {
        cpu_set_threads(threads);
        memset(got, 0x5a, nb);
        cg_llvm.launch(k, bufs);
        int64_t bad = mismatches(g, n, got, want, want_cpu);
        if (bad)
            fprintf(stderr, "  %s (%d inputs, %d threads): %lld of %lld differ\n",
                    ir_ops[oc->op].name, oc->nin, threads, (long long)bad,
                    (long long)ir_numel(y));
        CHECK_EQ(bad, 0);
    }
    cpu_set_threads(0);
    if (k)
        cg_llvm.release(k);
    free(want);
    free(want_cpu);
    free(got);
out:
    cg_plan_free(&plan);
    ir_graph_free(g);
}

/* y = op(in[0..nin)) over constant [40, 50] and scalar operands, as one fused kernel,
 * bit for bit against ref */
static void const_node_vs_ref(struct ir_graph *g, enum ir_op op, const uint32_t *in, uint32_t nin)
{
    uint32_t o = ir_tensor_new(g, "y");
    uint32_t id = ir_node_new(g, op, NULL, nin, in, 1, &o);
    struct ir_node *n = &g->n[id]; /* (after the call: it may move g->n) */
    struct diag d = {0};
    struct cg_plan plan;
    ir_graph_add_output(g, o);
    CHECK(!ir_infer_node(g, n, &d) && !ir_fill_topo(g, &d) && !cg_fuse(g, 1, &plan));
    CHECK(plan.n_groups == 1 && plan.groups[0].fused);
    float want[2000], want_cpu[2000], got[2000];
    void *ins[3] = {NULL, NULL, NULL}, *w = want, *wc = want_cpu, *bufs[4];
    for (uint32_t i = 0; i < nin; i++)
        ins[i] = g->t[in[i]].data;
    for (uint32_t i = 0; i < plan.groups[0].n_in; i++)
        bufs[i] = g->t[plan.groups[0].in[i]].data;
    bufs[plan.groups[0].n_in] = got;
    struct cg_kernel *k = NULL;
    CHECK_EQ(cg_ref.run(g, n, ins, &w), ST_OK);
    CHECK_EQ(cg_cpu.run(g, n, ins, &wc), ST_OK);
    CHECK_EQ(cg_llvm.compile(g, &plan.groups[0], &k, &d), ST_OK);
    if (k) {
        cg_llvm.launch(k, bufs);
        CHECK_EQ(mismatches(g, &g->n[id], got, want, want_cpu), 0);
        cg_llvm.release(k);
    }
    cg_plan_free(&plan);
    ir_graph_free(g);
}

/* Pow by a scalar constant exponent: 0, 1 and 2 are emitted as 1, a copy and a product
 * (ref's bits); the rest go through cpu_pow (the cpu target's bits, an ulp of ref) */
TEST(pow_constant_exponents)
{
    static const float ex[] = {0.0f, 1.0f, 2.0f, 3.0f, 0.5f, -1.0f};
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        struct ir_graph *g = ir_graph_new();
        int64_t dims[2] = {40, 50}, one = 1;
        uint32_t in[2] = {const_input(g, IR_F32, 2, dims, -3, 3, 1), ir_tensor_new(g, "e")};
        ir_tensor_set_const(g, in[1], IR_F32, 1, &one, &ex[i]);
        const_node_vs_ref(g, IR_OP_Pow, in, 2);
    }
}

/* Pow of every pair of C11 pow's special values (pow_pairs.h): the cpu target's bits
 * and within an ulp of ref */
TEST(pow_special_pairs)
{
    float bx[POW_PAIRS], bp[POW_PAIRS];
    pow_pairs(bx, bp);
    struct ir_graph *g = ir_graph_new();
    int64_t d = POW_PAIRS;
    uint32_t in[2] = {ir_tensor_new(g, "x"), ir_tensor_new(g, "p")};
    ir_tensor_set_const(g, in[0], IR_F32, 1, &d, bx);
    ir_tensor_set_const(g, in[1], IR_F32, 1, &d, bp);
    const_node_vs_ref(g, IR_OP_Pow, in, 2);
}

/* Clip by scalar bounds, alone and as min only: NaN, infinities, signed zeros and
 * bounds crossed (min > max gives max, as ONNX says) keep ref's bits */
TEST(clip_scalar_bounds)
{
    static const float b[][2] = {{-1.0f, 2.0f}, {0.0f, 0.0f}, {3.0f, -3.0f}, {-INFINITY, INFINITY}};
    float x[2000];
    for (int i = 0; i < 2000; i++)
        x[i] = (float)(i % 97) * 0.1f - 4.8f;
    x[0] = NAN, x[1] = INFINITY, x[2] = -INFINITY, x[3] = -0.0f, x[4] = 0.0f;
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        for (uint32_t nin = 2; nin <= 3; nin++) {
            struct ir_graph *g = ir_graph_new();
            int64_t dims[2] = {40, 50};
            uint32_t in[3] = {ir_tensor_new(g, "x"), ir_tensor_new(g, "lo"),
                              ir_tensor_new(g, "hi")};
            ir_tensor_set_const(g, in[0], IR_F32, 2, dims, x);
            ir_tensor_set_const(g, in[1], IR_F32, 0, NULL, &b[i][0]);
            ir_tensor_set_const(g, in[2], IR_F32, 0, NULL, &b[i][1]);
            const_node_vs_ref(g, IR_OP_Clip, in, nin);
        }
}

TEST(each_op_against_ref)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        for (size_t s = 0; s < sizeof shape_sets / sizeof shape_sets[0]; s++) {
            if (ops[i].nin == 1 && s > 0)
                break; /* unary: one shape */
            if (ops[i].op == IR_OP_LowerLeakyHardGrad || ops[i].op == IR_OP_UpperLeakyHardGrad) {
                if (s > 0)
                    break;
            }
            op_case(&ops[i], &shape_sets[s]);
        }
}

/* ---- a fused chain through the executor ---------------------------------------- */

static uint32_t op(struct ir_graph *g, enum ir_op o, uint32_t a, uint32_t b, const char *name)
{
    uint32_t in[2] = {a, b}, out = ir_tensor_new(g, name);
    ir_node_new(g, o, NULL, b == IR_NONE ? 1 : 2, in, 1, &out);
    return out;
}

/* the outputs rt_run returned (v may be NULL) */
static void free_values(struct ir_value *v, int n)
{
    for (int i = 0; v && i < n; i++)
        ir_value_free(&v[i]);
    free(v);
}

/* y = sigmoid(x m + b) (an output), z = clamp(y), w = where(y > h, z, y y) - m */
static struct ir_graph *chain_graph(void)
{
    struct ir_graph *g = ir_graph_new();
    int64_t xd[2] = {64, 96}, bd[1] = {96}, hd[2] = {64, 1};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd), m = g_input(g, "m", IR_F32, 2, xd);
    uint32_t b = g_input(g, "b", IR_F32, 1, bd), h = g_input(g, "h", IR_F32, 2, hd);
    uint32_t y = op(g, IR_OP_Sigmoid, op(g, IR_OP_Add, op(g, IR_OP_Mul, x, m, "xm"), b, "pre"),
                    IR_NONE, "y");
    uint32_t z = op(g, IR_OP_LowerLeakyHard, y, IR_NONE, "z");
    uint32_t c = op(g, IR_OP_Greater, y, h, "c");
    uint32_t in3[3] = {c, z, op(g, IR_OP_Mul, y, y, "yy")}, w0 = ir_tensor_new(g, "w0");
    ir_node_new(g, IR_OP_Where, NULL, 3, in3, 1, &w0);
    uint32_t w = op(g, IR_OP_Sub, w0, m, "w");
    ir_graph_add_output(g, y);
    ir_graph_add_output(g, w);
    return g;
}

static void chain_values(struct ir_value *v)
{
    const char *names[4] = {"x", "m", "b", "h"};
    int64_t n[4] = {64 * 96, 64 * 96, 96, 64};
    for (int i = 0; i < 4; i++) {
        v[i] = (struct ir_value){.name = (char *)names[i], .dtype = IR_F32};
        v[i].nbytes = (size_t)n[i] * 4;
        v[i].data = malloc(v[i].nbytes);
        for (int64_t j = 0; j < n[i]; j++)
            ((float *)v[i].data)[j] = frand(-2, 2);
    }
    v[0].rank = v[1].rank = 2, v[0].dims[0] = v[1].dims[0] = 64, v[0].dims[1] = v[1].dims[1] = 96;
    v[2].rank = 1, v[2].dims[0] = 96;
    v[3].rank = 2, v[3].dims[0] = 64, v[3].dims[1] = 1;
}

TEST(fused_chain_through_executor)
{
    struct ir_graph *g = chain_graph();
    struct diag d = {0};
    int st = ir_infer_shapes(g, &d);
    if (!st)
        st = ir_fill_topo(g, &d);
    CHECK_EQ(st, ST_OK);
    struct cg_plan plan;
    CHECK_EQ(cg_fuse(g, 2, &plan), ST_OK);
    CHECK_EQ(plan.n_groups, 1); /* all eight nodes in one kernel */
    CHECK_EQ(plan.groups[0].n_nodes, 8);
    CHECK_EQ(plan.groups[0].n_out, 2);
    cg_plan_free(&plan);
    /* Sigmoid is the cpu target's (one ulp of ref): the rest is exact */
    struct ir_value in[4], *a = NULL, *b = NULL, *c = NULL;
    int na = 0, nb = 0, nc = 0;
    chain_values(in);
    CHECK_EQ(rt_run(g, &cg_ref, in, 4, &a, &na, &d), ST_OK);
    CHECK_EQ(rt_run(g, &cg_llvm, in, 4, &b, &nb, &d), ST_OK);
    CHECK_EQ(rt_run(g, &cg_cpu, in, 4, &c, &nc, &d), ST_OK);
    CHECK(na == 2 && nb == 2 && nc == 2);
    for (int i = 0; a && b && c && i < 2; i++) {
        int64_t first = 0;
#ifdef PDC_HAVE_BLAS
        CHECK_EQ(count_diff(c[i].data, b[i].data, IR_F32, 64 * 96, &first), 0);
#endif
        CHECK_TENSOR((float *)b[i].data, (float *)a[i].data, 64 * 96, 1e-6, 1e-6);
    }
    free_values(c, nc);
    for (int i = 0; i < 4; i++)
        free(in[i].data);
    free_values(a, na);
    free_values(b, nb);
    ir_graph_free(g);
}

/* y = (e^x + m) · (P Q · w): the product's lone Mul has no fused producer, so it starts
 * a group of its own; its only reader joins the larger group (Exp, Add), and the lone
 * Mul then sinks into it: one kernel of four nodes, nothing but y written. Then two
 * chains of two, both read by one Add: one kernel of five. */
TEST(smaller_groups_sink_into_their_reader)
{
    struct ir_graph *g = ir_graph_new();
    int64_t xd[2] = {64, 96}, pd[2] = {64, 8}, qd[2] = {8, 96}, wd[1] = {96};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd), m = g_input(g, "m", IR_F32, 2, xd);
    uint32_t P = g_input(g, "P", IR_F32, 2, pd), Q = g_input(g, "Q", IR_F32, 2, qd);
    uint32_t w = g_input(g, "w", IR_F32, 1, wd);
    uint32_t lone = op(g, IR_OP_Mul, op(g, IR_OP_MatMul, P, Q, "pq"), w, "lone");
    uint32_t k = op(g, IR_OP_Add, op(g, IR_OP_Exp, x, IR_NONE, "ex"), m, "k");
    ir_graph_add_output(g, op(g, IR_OP_Mul, k, lone, "y"));
    struct diag d = {0};
    CHECK(!ir_infer_shapes(g, &d) && !ir_fill_topo(g, &d));
    struct cg_plan plan;
    CHECK_EQ(cg_fuse(g, 1, &plan), ST_OK);
    CHECK_EQ(plan.n_groups, 2);
    const struct cg_group *gr = &plan.groups[plan.n_groups - 1];
    CHECK(gr->fused && gr->n_nodes == 4 && gr->n_out == 1);
    for (uint32_t i = 1; i < gr->n_nodes; i++) /* members in execution order */
        CHECK(g->n[gr->nodes[i - 1]].out[0] < g->n[gr->nodes[i]].out[0]);
    cg_plan_free(&plan);
    /* two chains beside each other, both read by one Add: z = e^x m + e^(x x) */
    uint32_t z = op(g, IR_OP_Add, op(g, IR_OP_Mul, op(g, IR_OP_Exp, x, IR_NONE, "e1"), m, "a"),
                    op(g, IR_OP_Exp, op(g, IR_OP_Mul, x, x, "xx"), IR_NONE, "e2"), "z");
    ir_graph_add_output(g, z);
    CHECK(!ir_infer_shapes(g, &d) && !ir_fill_topo(g, &d));
    CHECK_EQ(cg_fuse(g, 1, &plan), ST_OK);
    int five = 0;
    for (uint32_t i = 0; i < plan.n_groups; i++)
        five += plan.groups[i].fused && plan.groups[i].n_nodes == 5 && plan.groups[i].n_out == 1;
    CHECK_EQ(plan.n_groups, 3);
    CHECK_EQ(five, 1);
    cg_plan_free(&plan);
    struct ir_value in[5], *a = NULL, *b = NULL;
    const char *names[5] = {"x", "m", "P", "Q", "w"};
    const int64_t *dims[5] = {xd, xd, pd, qd, wd};
    for (int i = 0; i < 5; i++) {
        in[i] = (struct ir_value){.name = (char *)names[i], .dtype = IR_F32, .rank = i < 4 ? 2 : 1};
        memcpy(in[i].dims, dims[i], (size_t)in[i].rank * sizeof *dims[i]);
        in[i].nbytes = (size_t)(in[i].rank == 2 ? dims[i][0] * dims[i][1] : dims[i][0]) * 4;
        in[i].data = malloc(in[i].nbytes);
        for (size_t j = 0; j < in[i].nbytes / 4; j++)
            ((float *)in[i].data)[j] = frand(-2, 2);
    }
    int na = 0, nb = 0;
    CHECK_EQ(rt_run(g, &cg_ref, in, 5, &a, &na, &d), ST_OK);
    CHECK_EQ(rt_run(g, &cg_llvm, in, 5, &b, &nb, &d), ST_OK);
    for (int i = 0; a && b && na == 2 && nb == 2 && i < 2; i++) /* a GEMM: not bit for bit */
        CHECK_TENSOR((float *)b[i].data, (float *)a[i].data, 64 * 96, 1e-5, 1e-5);
    CHECK(na == 2 && nb == 2);
    for (int i = 0; i < 5; i++)
        free(in[i].data);
    free_values(a, na);
    free_values(b, nb);
    ir_graph_free(g);
}

/* ---- whole train steps ------------------------------------------------------------ */

static float *step_outputs(const struct ir_graph *g, const struct cg_target *tgt, int threads,
                           size_t *n, double *secs)
{
    struct diag d = {0};
    struct rt_prog *rp = NULL;
    cpu_set_threads(threads);
    size_t total = 0;
    for (uint32_t k = 0; k < g->n_outputs; k++)
        total += (size_t)ir_numel(&g->t[g->outputs[k]]);
    float *all = malloc((total + 1) * sizeof *all);
    if (rt_prog_new(g, tgt, &rp, &d) != ST_OK) {
        fprintf(stderr, "  %s: %s\n", tgt->name, d.msg);
        free(all);
        return NULL;
    }
    fill_step_inputs(g, rp);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = rt_prog_run(rp, &d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    size_t at = 0;
    for (uint32_t k = 0; !st && k < g->n_outputs; k++) {
        const struct ir_tensor *t = &g->t[g->outputs[k]];
        if (t->dtype == IR_F32)
            memcpy(all + at, rt_prog_buf(rp, g->outputs[k]), rt_tensor_bytes(t));
        else
            memset(all + at, 0, (size_t)ir_numel(t) * sizeof *all);
        at += (size_t)ir_numel(t);
    }
    if (st)
        fprintf(stderr, "  run on %s: %s\n", tgt->name, d.msg);
    rt_prog_free(rp);
    cpu_set_threads(0);
    *n = total;
    if (st) {
        free(all);
        return NULL;
    }
    return all;
}

static void fusion_summary(const struct ir_graph *g, const char *what)
{
    struct cg_plan p;
    if (cg_fuse(g, 2, &p))
        return;
    uint32_t fused = 0, nodes = 0, internal = 0;
    for (uint32_t i = 0; i < p.n_groups; i++)
        if (p.groups[i].fused)
            fused++, nodes += p.groups[i].n_nodes;
    for (uint32_t t = 0; t < g->nt; t++)
        internal += p.internal[t];
    printf("  %s: %u nodes, %u fused kernels covering %u nodes, %u values kept in registers\n",
           what, g->ntopo, fused, nodes, internal);
    CHECK(fused > 5);
    cg_plan_free(&p);
}

/* elements off the reference by more than 1e-5 + 1e-4 |ref|; the cpu target's GEMMs
 * sum in another order, and a few values of a train step (Adam's quotients of tiny
 * moments) amplify that */
static size_t off_ref(const float *x, const float *ref, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !(fabs((double)x[i] - (double)ref[i]) <= 1e-5 + 1e-4 * fabs((double)ref[i]));
    return bad;
}

static void step_case(const char *method, build_fn bf)
{
    struct diag d = {0};
    struct dc_prog p;
    int st = build_step(method, bf, &p, &d);
    if (st) {
        fprintf(stderr, "  %s: %s\n", method, d.msg);
        test_failed_ = 1;
        dc_prog_free(&p);
        return;
    }
    fusion_summary(p.g, method);
    size_t n0 = 0, n1 = 0, n3 = 0;
    double s0, s1, s3;
    float *want = step_outputs(p.g, &cg_ref, 1, &n0, &s0);
    float *got1 = step_outputs(p.g, &cg_llvm, 1, &n1, &s1);
    float *got3 = step_outputs(p.g, &cg_llvm, 3, &n3, &s3);
    size_t nc = 0;
    double sc;
    float *cpu = step_outputs(p.g, &cg_cpu, 1, &nc, &sc);
    CHECK(want && got1 && got3 && cpu && n0 == n1 && n1 == n3 && nc == n0);
    if (want && got1 && got3 && cpu && n0 == n1 && n1 == n3 && nc == n0) {
        /* outside its kernels llvm runs the cpu target: same results up to the
         * kernels' last bit; against ref, no element farther off than cpu's */
        CHECK_TENSOR(got1, cpu, (long)n0, 1e-5, 1e-4);
        CHECK(off_ref(got1, want, n0) <= off_ref(cpu, want, n0));
        CHECK(memcmp(got1, got3, n1 * sizeof *got1) == 0); /* thread count changes nothing */
        printf("  %s: %zu output values, %zu off ref by > 1e-4 (cpu: %zu); step %.2f ms on "
               "ref, %.2f on cpu, %.2f on llvm (1 thread)\n", method, n0,
               off_ref(got1, want, n0), off_ref(cpu, want, n0), 1e3 * s0, 1e3 * sc, 1e3 * s1);
    }
    free(cpu);
    free(want);
    free(got1);
    free(got3);
    dc_prog_free(&p);
}

TEST(spd_step_llvm_vs_ref) { step_case("spd", build_batched); }
TEST(vpd_step_llvm_vs_ref) { step_case("vpd", build_qkv); }

/* ---- the memory plan of a fused schedule ------------------------------------------ */

/* no two planned tensors whose lives meet share a byte, with lives counted in schedule
 * positions: from the producing node's position to the end of the last reader's group
 * (a group's outputs are written while all it reads is still live) */
static void check_sched_plan(const struct ir_graph *g, const struct cg_plan *p)
{
    size_t *off = malloc(((size_t)g->nt + 1) * sizeof *off);
    int64_t *born = malloc(((size_t)g->nt + 1) * sizeof *born);
    int64_t *dies = malloc(((size_t)g->nt + 1) * sizeof *dies);
    struct rt_sched sc = {p->order, p->group_end, p->internal};
    struct rt_memplan_stats s;
    CHECK(off && born && dies && rt_memplan_sched(g, &sc, 1, off, &s) == 0);
    for (uint32_t t = 0; t < g->nt; t++)
        born[t] = dies[t] = -1;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[p->order[k]];
        for (uint32_t i = 0; i < n->n_in; i++)
            if (n->in[i] != IR_NONE)
                dies[n->in[i]] = p->group_end[k];
        for (uint32_t o = 0; o < n->n_out; o++) {
            uint32_t t = n->out[o];
            if (t == IR_NONE)
                continue;
            born[t] = k;
            if (dies[t] < (int64_t)p->group_end[k])
                dies[t] = p->group_end[k];
        }
    }
    uint32_t *root = malloc(((size_t)g->nt + 1) * sizeof *root);
    CHECK(root != NULL);
    if (root)
        plan_view_roots(g, p->order, off, root, dies);
    long clashes = 0, internal_placed = 0;
    for (uint32_t a = 0; root && a < g->nt; a++) {
        internal_placed += p->internal[a] && off[a] != RT_NOT_PLANNED;
        if (off[a] == RT_NOT_PLANNED)
            continue;
        size_t ea = off[a] + rt_tensor_bytes(&g->t[a]);
        for (uint32_t b = a + 1; b < g->nt; b++) {
            if (off[b] == RT_NOT_PLANNED || dies[a] < born[b] || dies[b] < born[a] ||
                root[a] == root[b])
                continue;
            size_t eb = off[b] + rt_tensor_bytes(&g->t[b]);
            clashes += off[a] < eb && off[b] < ea && ea > off[a] && eb > off[b];
        }
    }
    CHECK_EQ(clashes, 0);
    CHECK_EQ(internal_placed, 0);
    free(root);
    free(off);
    free(born);
    free(dies);
}

TEST(memplan_of_fused_schedules)
{
    build_fn bf[2] = {build_batched, build_qkv};
    const char *m[2] = {"spd", "vpd"};
    for (int i = 0; i < 2; i++) {
        struct diag d = {0};
        struct dc_prog p;
        struct cg_plan plan;
        CHECK_EQ(build_step(m[i], bf[i], &p, &d), ST_OK);
        CHECK_EQ(cg_fuse(p.g, 2, &plan), ST_OK);
        check_sched_plan(p.g, &plan);
        cg_plan_free(&plan);
        dc_prog_free(&p);
    }
}

/* ---- the disk cache ----------------------------------------------------------------- */

/* a kernel no other test compiles: its constant differs per run of this test */
static struct ir_graph *unique_graph(float salt)
{
    struct ir_graph *g = ir_graph_new();
    int64_t dims[1] = {1000}, one = 1;
    uint32_t x = g_input(g, "x", IR_F32, 1, dims), c = ir_tensor_new(g, "salt");
    ir_tensor_set_const(g, c, IR_F32, 1, &one, &salt);
    uint32_t y = op(g, IR_OP_Sqrt, op(g, IR_OP_Mul, x, c, "xs"), IR_NONE, "y");
    ir_graph_add_output(g, y);
    struct diag d = {0};
    if (ir_infer_shapes(g, &d) || ir_fill_topo(g, &d))
        fprintf(stderr, "  %s\n", d.msg);
    return g;
}

/* compile the group, check what the cache did and that the kernel computes sqrt(x salt) */
static void compile_and_check(const struct ir_graph *g, const struct cg_group *gr, float salt,
                              int want_hit, double *secs)
{
    struct diag d = {0};
    struct lk_stats s0, s1;
    lk_fn fn = NULL;
    struct timespec t0, t1;
    lk_stats_get(&s0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = lk_host_compile(g, gr, &fn, &d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    lk_stats_get(&s1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK_EQ(st, ST_OK);
    CHECK_EQ(s1.disk_hits - s0.disk_hits, want_hit);
    CHECK_EQ(s1.compiled - s0.compiled, !want_hit);
    if (st)
        return;
    float x[1000], y[1000];
    void *bufs[4] = {x, &salt, &salt}; /* in: x and the salt (an immediate); out: y */
    bufs[gr->n_in] = y;
    for (int i = 0; i < 1000; i++)
        x[i] = (float)i / 500.0f;
    fn(bufs, 0, 1000);
    int bad = 0;
    for (int i = 0; i < 1000; i++)
        bad += y[i] != sqrtf(x[i] * salt);
    CHECK_EQ(bad, 0);
}

/* run by disk_cache_hit_and_corrupt_entry in a new process (a fresh JIT, nothing
 * loaded yet); a no-op otherwise */
TEST(cache_child)
{
    const char *w = getenv("PDC_TEST_CACHE_CHILD"), *sl = getenv("PDC_TEST_SALT");
    if (!w || !sl)
        return;
    float salt = strtof(sl, NULL);
    struct ir_graph *g = unique_graph(salt);
    struct cg_plan p;
    double secs = 0;
    CHECK_EQ(cg_fuse(g, 2, &p), ST_OK);
    compile_and_check(g, &p.groups[0], salt, atoi(w), &secs);
    printf("  cache %s: %.2f ms\n", atoi(w) ? "hit" : "miss, rebuilt", 1e3 * secs);
    cg_plan_free(&p);
    ir_graph_free(g);
}

static int child(float salt, int want_hit)
{
    char self[1024], cmd[1300];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = 0;
    snprintf(cmd, sizeof cmd, "PDC_TEST_CACHE_CHILD=%d PDC_TEST_SALT=%a '%s' cache_child",
             want_hit, (double)salt, self);
    return system(cmd);
}

TEST(disk_cache_hit_and_corrupt_entry)
{
    if (getenv("PDC_TEST_CACHE_CHILD"))
        return;
    char dir[] = "/tmp/pdc_cache_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    setenv("PDC_CACHE_DIR", dir, 1);
    float salt = 1.0f + (float)(getpid() % 1000) / 4096.0f;
    struct ir_graph *g = unique_graph(salt);
    struct cg_plan p;
    double secs = 0;
    CHECK_EQ(cg_fuse(g, 2, &p), ST_OK);
    CHECK(p.n_groups == 1 && p.groups[0].fused);
    compile_and_check(g, &p.groups[0], salt, 0, &secs);
    printf("  first compile: %.2f ms\n", 1e3 * secs);
    CHECK_EQ(child(salt, 1), 0); /* a second process: from disk */
    /* corrupt the entry: the object's bytes no longer match their checksum */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "for f in %s/k-*.bin; do printf 'garbage' | dd of=$f bs=1 "
             "seek=$(( $(stat -c %%s $f) - 40 )) conv=notrunc status=none; done", dir);
    CHECK_EQ(system(cmd), 0);
    CHECK_EQ(child(salt, 0), 0); /* ignored, rebuilt, rewritten */
    CHECK_EQ(child(salt, 1), 0); /* and read again */
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    unsetenv("PDC_CACHE_DIR");
    cg_plan_free(&p);
    ir_graph_free(g);
}

static const struct test_case tests[] = {
    T(each_op_against_ref),
    T(pow_constant_exponents), T(pow_special_pairs), T(clip_scalar_bounds), T(smaller_groups_sink_into_their_reader),
    T(fused_chain_through_executor),
    T(memplan_of_fused_schedules),
    T(spd_step_llvm_vs_ref),
    T(vpd_step_llvm_vs_ref),
    T(disk_cache_hit_and_corrupt_entry),
    T(cache_child),
};

TEST_MAIN(tests)

#else
int main(void)
{
    puts("built without LLVM: nothing to test");
    return 77;
}
#endif
