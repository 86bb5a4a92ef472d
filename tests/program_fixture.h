/* program_fixture.h — whole training programs for the codegen and planner tests (test_llvm.c,
 * test_llvm_ptx.c): an SPD and a VPD train step (forward, backward, adversary, AdamW)
 * on the targets of decompose_fixture.h (test_memplan.c uses them too), and
 * every input filled from a fixed stream. */
#ifndef PDC_PROGRAM_FIXTURE_H
#define PDC_PROGRAM_FIXTURE_H

#include "decompose_fixture.h"
#include "fuse.h"
#include "memplan.h"

/* the train step of `method` on the target bf builds; *p owns the program */
static inline int build_step(const char *method, build_fn bf, struct dc_prog *p, struct diag *d)
{
    struct ir_graph *g = NULL;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    int ns = 0, nf = 0;
    struct dc_config c;
    memset(p, 0, sizeof *p);
    rng_state = 2024; /* the same weights whichever test builds first */
    dc_config_defaults(&c, method);
    select_all(&c);
    c.steps = 10;
    int st = bf(&g, d);
    if (!st)
        st = dc_select_sites(g, &c, &sites, &ns, &fac, &nf, d);
    if (!st) {
        st = dc_build_spd_train(g, &c, sites, ns, fac, nf, p, d);
        g = NULL;
    }
    ir_graph_free(g);
    free(sites);
    free(fac);
    return st;
}

/* every graph input from a fixed stream: floats in (0.1, 0.9) fit every kind of
 * input (sources, learning rates, bias corrections, data); integers 0 */
static inline void fill_step_inputs(const struct ir_graph *g, struct rt_prog *rp)
{
    rng_state = 12345;
    for (uint32_t k = 0; k < g->n_inputs; k++) {
        const struct ir_tensor *t = &g->t[g->inputs[k]];
        void *b = rt_prog_buf(rp, g->inputs[k]);
        if (t->dtype == IR_F32)
            for (int64_t i = 0; i < ir_numel(t); i++)
                ((float *)b)[i] = (float)rng_unif(0.1, 0.9);
        else
            memset(b, 0, rt_tensor_bytes(t));
    }
}

/* one group using every op kind at once: unary (each libdevice function), binary with
 * a broadcast row, comparisons, Where, Casts, squash and VJPs */
static inline uint32_t un(struct ir_graph *g, enum ir_op op, uint32_t x)
{
    uint32_t y = ir_tensor_new_unique(g, "v");
    ir_node_new(g, op, NULL, 1, &x, 1, &y);
    return y;
}

static inline uint32_t bin(struct ir_graph *g, enum ir_op op, uint32_t a, uint32_t b)
{
    uint32_t in[2] = {a, b}, y = ir_tensor_new_unique(g, "v");
    ir_node_new(g, op, NULL, 2, in, 1, &y);
    return y;
}

static inline struct ir_graph *every_op_graph(void)
{
    struct ir_graph *g = ir_graph_new();
    int64_t xd[2] = {32, 40}, rd[1] = {40};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd), r = g_input(g, "r", IR_F32, 1, rd);
    static const enum ir_op unary[] = {
        IR_OP_Neg, IR_OP_Abs, IR_OP_Relu, IR_OP_LeakyRelu, IR_OP_Sigmoid, IR_OP_Tanh,
        IR_OP_Erf, IR_OP_Exp, IR_OP_Log, IR_OP_Sqrt, IR_OP_Reciprocal, IR_OP_Softplus,
        IR_OP_Gelu, IR_OP_LowerLeakyHard, IR_OP_UpperLeakyHard, IR_OP_StopGradient};
    static const enum ir_op binary[] = {IR_OP_Add, IR_OP_Sub, IR_OP_Mul, IR_OP_Div,
                                        IR_OP_Pow, IR_OP_Max, IR_OP_Min,
                                        IR_OP_LowerLeakyHardGrad, IR_OP_UpperLeakyHardGrad};
    uint32_t v = x;
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
        v = bin(g, IR_OP_Add, un(g, unary[i], v), x);
    for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++)
        v = bin(g, binary[i], v, i < 7 ? r : x);
    uint32_t c = bin(g, IR_OP_Greater, v, r), in3[3] = {c, v, x}, w = ir_tensor_new(g, "w");
    ir_node_new(g, IR_OP_Where, NULL, 3, in3, 1, &w);
    ir_graph_add_output(g, w);
    return g;
}

/* the step of `method` partitioned into kernel groups (fused groups of >= 2 nodes, as
 * the executor does); on failure the message is printed and the test marked failed */
static inline int step_plan(const char *method, build_fn bf, struct dc_prog *p,
                            struct cg_plan *plan)
{
    struct diag d = {0};
    if (build_step(method, bf, p, &d) != ST_OK || cg_fuse(p->g, 2, plan) != ST_OK) {
        fprintf(stderr, "  %s: %s\n", method, d.msg);
        test_failed_ = 1;
        dc_prog_free(p);
        return -1;
    }
    return 0;
}

/* every_op_graph() with its one fused group in *plan (NULL graph on failure) */
static inline struct ir_graph *every_op_plan(struct cg_plan *plan)
{
    struct ir_graph *g = every_op_graph();
    struct diag d = {0};
    CHECK_EQ(ir_infer_shapes(g, &d), ST_OK);
    CHECK_EQ(ir_fill_topo(g, &d), ST_OK);
    CHECK_EQ(cg_fuse(g, 2, plan), ST_OK);
    CHECK_EQ(plan->n_groups, 1);
    if (plan->n_groups != 1) {
        cg_plan_free(plan);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

/* A plan's views, recomputed for the plan checkers: the output of a Reshape, Flatten,
 * Squeeze or Unsqueeze holds its input's bytes, so the planner may give it
 * the input's offset. root[t] is the tensor whose bytes t then shares (t itself
 * otherwise); the root's lifetime is stretched to its views' (last[], in the order's
 * positions), and only tensors of one root may overlap. */
static inline void plan_view_roots(const struct ir_graph *g, const uint32_t *order,
                                   const size_t *off, uint32_t *root, int64_t *last)
{
    for (uint32_t t = 0; t < g->nt; t++)
        root[t] = t;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[order[k]];
        int view = n->op == IR_OP_Reshape || n->op == IR_OP_Flatten || n->op == IR_OP_Squeeze ||
                   n->op == IR_OP_Unsqueeze;
        if (!view || n->n_in < 1 || n->in[0] == IR_NONE || n->out[0] == IR_NONE)
            continue;
        uint32_t x = n->in[0], y = n->out[0];
        if (off[x] != RT_NOT_PLANNED && off[x] == off[y] &&
            rt_tensor_bytes(&g->t[x]) == rt_tensor_bytes(&g->t[y]))
            root[y] = root[x];
    }
    for (uint32_t t = 0; t < g->nt; t++)
        if (last[root[t]] < last[t])
            last[root[t]] = last[t];
}

#endif
