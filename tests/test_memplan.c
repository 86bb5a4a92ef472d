/* test_memplan.c — the activation-block planner (runtime/memplan.c) on full training
 * programs (SPD and VPD steps with backward, adversary and AdamW):
 *   - no two planned tensors whose lifetimes meet share a byte, checked pair by pair
 *     against lifetimes recomputed here from the node order;
 *   - graph inputs, outputs and IR_T_KEEP tensors are never planned;
 *   - the program's outputs are bit-identical with the planner and with one buffer
 *     per tensor (PDC_MEMPLAN=0), from the same states and inputs;
 *   - the block is smaller than one buffer per tensor (the planner reuses). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "program_fixture.h"
#include "memplan.h"

/* [first node, last node] of every planned tensor, by a plain scan */
static void lifetimes(const struct ir_graph *g, int64_t *first, int64_t *last)
{
    for (uint32_t t = 0; t < g->nt; t++)
        first[t] = last[t] = -1;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        for (uint32_t o = 0; o < n->n_out; o++)
            if (n->out[o] != IR_NONE) {
                first[n->out[o]] = k;
                if (last[n->out[o]] < (int64_t)k)
                    last[n->out[o]] = k;
            }
        for (uint32_t i = 0; i < n->n_in; i++)
            if (n->in[i] != IR_NONE)
                last[n->in[i]] = k;
    }
}

static void check_plan(const struct ir_graph *g, const char *what)
{
    size_t *off = malloc(((size_t)g->nt + 1) * sizeof *off);
    int64_t *first = malloc(((size_t)g->nt + 1) * sizeof *first);
    int64_t *last = malloc(((size_t)g->nt + 1) * sizeof *last);
    struct rt_memplan_stats s;
    CHECK(off && first && last);
    if (!off || !first || !last || rt_memplan(g, 1, off, &s) != 0) {
        test_failed_ = 1;
        goto out;
    }
    lifetimes(g, first, last);
    uint32_t *root = malloc(((size_t)g->nt + 1) * sizeof *root);
    if (!root) {
        test_failed_ = 1;
        goto out;
    }
    plan_view_roots(g, g->topo, off, root, last);
    long pairs = 0, clashes = 0, wrongly = 0, views = 0;
    for (uint32_t a = 0; a < g->nt; a++) {
        const struct ir_tensor *t = &g->t[a];
        int must_own = t->data || (t->flags & (IR_T_INPUT | IR_T_OUTPUT | IR_T_KEEP));
        wrongly += must_own && off[a] != RT_NOT_PLANNED;
        if (off[a] == RT_NOT_PLANNED)
            continue;
        CHECK(off[a] % 64 == 0 && off[a] + rt_tensor_bytes(t) <= s.planned);
        views += root[a] != a;
        for (uint32_t b = a + 1; b < g->nt; b++) {
            if (off[b] == RT_NOT_PLANNED || last[a] < first[b] || last[b] < first[a] ||
                root[a] == root[b])
                continue;
            pairs++;
            size_t ea = off[a] + rt_tensor_bytes(t), eb = off[b] + rt_tensor_bytes(&g->t[b]);
            if (off[a] < eb && off[b] < ea && ea > off[a] && eb > off[b]) {
                if (clashes++ < 5)
                    fprintf(stderr, "  '%s' and '%s' are live together and overlap\n", t->name,
                            g->t[b].name);
            }
        }
    }
    printf("  %-4s %u nodes, %u planned tensors, %ld live-together pairs checked; block "
           "%.2f MiB vs %.2f MiB one buffer each\n", what, g->ntopo, s.n_planned, pairs,
           (double)s.planned / 1048576.0, (double)s.naive / 1048576.0);
    CHECK_EQ(clashes, 0);
    CHECK_EQ(wrongly, 0);
    CHECK_EQ(views, (long)s.n_views);
    CHECK(pairs > 100);
    CHECK(s.planned * 2 < s.naive); /* training programs free most temporaries early */
    free(root);
out:
    free(off);
    free(first);
    free(last);
}

/* the outputs of one run (concatenated), with or without the planner */
static unsigned char *run_outputs(const struct ir_graph *g, int plan, size_t *nbytes)
{
    struct diag d = {0};
    struct rt_prog *rp = NULL;
    if (plan)
        unsetenv("PDC_MEMPLAN");
    else
        setenv("PDC_MEMPLAN", "0", 1);
    size_t total = 0;
    for (uint32_t k = 0; k < g->n_outputs; k++)
        total += rt_tensor_bytes(&g->t[g->outputs[k]]);
    unsigned char *all = malloc(total + 1);
    if (!all || rt_prog_new(g, &cg_ref, &rp, &d) != ST_OK) {
        fprintf(stderr, "  %s\n", d.msg);
        free(all);
        return NULL;
    }
    fill_step_inputs(g, rp);
    if (rt_prog_run(rp, &d) == ST_OK) {
        size_t at = 0;
        for (uint32_t k = 0; k < g->n_outputs; k++) {
            size_t nb = rt_tensor_bytes(&g->t[g->outputs[k]]);
            memcpy(all + at, rt_prog_buf(rp, g->outputs[k]), nb);
            at += nb;
        }
    } else {
        fprintf(stderr, "  run: %s\n", d.msg);
        free(all);
        all = NULL;
    }
    rt_prog_free(rp);
    unsetenv("PDC_MEMPLAN");
    *nbytes = total;
    return all;
}

static void program_case(const char *method, build_fn bf)
{
    struct diag d = {0};
    struct dc_prog p = {0};
    if (build_step(method, bf, &p, &d)) {
        fprintf(stderr, "  %s: %s\n", method, d.msg);
        test_failed_ = 1;
    } else {
        check_plan(p.g, method);
        size_t n0 = 0, n1 = 0;
        unsigned char *a = run_outputs(p.g, 0, &n0), *b = run_outputs(p.g, 1, &n1);
        CHECK(a && b && n0 == n1 && n0 > 0);
        if (a && b && n0 == n1)
            CHECK(memcmp(a, b, n0) == 0);
        free(a);
        free(b);
    }
    dc_prog_free(&p);
}

TEST(spd_step_on_batched_matmul) { program_case("spd", build_batched); }
TEST(vpd_step_on_fused_qkv) { program_case("vpd", build_qkv); }

/* x → Relu → Reshape → Unsqueeze (views of the Relu's bytes, read again after other
 * tensors were placed) and an Identity (fusible: a kernel on llvm, so never a view);
 * every target gives ref's values with one buffer per tensor */
TEST(views_share_bytes_and_keep_them_alive)
{
    struct diag d = {0};
    struct ir_graph *g = ir_graph_new();
    g->opset = 20;
    int64_t xd[2] = {8, 12}, rd[2] = {4, 24}, zero = 0;
    uint32_t x = g_input(g, "x", IR_F32, 2, xd);
    struct ir_builder b = bld_begin(g, "v", &d);
    uint32_t r = bld_op1(&b, IR_OP_Relu, x), s = bld_reshape(&b, r, 2, rd);
    uint32_t uin[2] = {s, bld_i64s(&b, 1, &zero)};
    uint32_t u = bld_node(&b, IR_OP_Unsqueeze, 2, uin, 0, NULL, 1, NULL); /* [1, 4, 24] */
    uint32_t e = bld_op1(&b, IR_OP_Exp, bld_op1(&b, IR_OP_Neg, bld_op1(&b, IR_OP_Exp, u)));
    uint32_t id = bld_op1(&b, IR_OP_Identity, bld_op1(&b, IR_OP_Sigmoid, e));
    uint32_t y = bld_add(&b, bld_add(&b, id, u), s); /* u and s read last */
    ir_graph_add_output(g, y);
    CHECK_EQ(b.err, ST_OK);
    CHECK(!ir_infer_shapes(g, &d) && !ir_fill_topo(g, &d));
    float xin[96], want[96], got[96];
    for (int i = 0; i < 96; i++)
        xin[i] = (float)((i * 37) % 19) * 0.25f - 2.0f;
    const struct cg_target *tg[3] = {&cg_ref, &cg_cpu, cg_default()};
    for (int k = -1; k < 3; k++) {
        struct rt_prog *rp = NULL;
        k < 0 ? setenv("PDC_MEMPLAN", "0", 1) : unsetenv("PDC_MEMPLAN");
        CHECK_EQ(rt_prog_new(g, tg[k < 0 ? 0 : k], &rp, &d), ST_OK);
        if (!rp)
            continue;
        CHECK_EQ(rt_prog_write(rp, x, xin, sizeof xin, &d), ST_OK);
        CHECK_EQ(rt_prog_run(rp, &d), ST_OK);
        CHECK_EQ(rt_prog_read(rp, y, k < 0 ? want : got, sizeof got, &d), ST_OK);
        if (k < 0) {
            CHECK(rt_prog_buf(rp, s) != rt_prog_buf(rp, r)); /* no views without the planner */
        } else { /* ref: bit for bit; cpu and llvm: exp and sigmoid within an ulp */
            if (k == 0)
                CHECK(memcmp(got, want, sizeof got) == 0);
            CHECK_TENSOR(got, want, 96, 1e-6, 1e-6);
            CHECK(rt_prog_buf(rp, s) == rt_prog_buf(rp, r));
            CHECK(rt_prog_buf(rp, u) == rt_prog_buf(rp, r));
        }
        rt_prog_free(rp);
    }
    unsetenv("PDC_MEMPLAN");
    ir_graph_free(g);
}

static const struct test_case tests[] = {
    T(views_share_bytes_and_keep_them_alive),
    T(spd_step_on_batched_matmul),
    T(vpd_step_on_fused_qkv),
};

TEST_MAIN(tests)
