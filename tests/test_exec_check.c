/* test_exec_check.c — PDC_CHECK=ref (runtime/exec_check.c), the mode the suite's
 * programs run under in the check_* CTest entries:
 *   - whole SPD and VPD train steps pass it on the cpu and llvm targets;
 *   - it catches a target whose MatMul is off by 1e-3 of the output's magnitude and
 *     one whose fused kernel writes a wrong element, naming the node or kernel, and
 *     the same broken targets run without complaint when the mode is off (so the
 *     check, not something else, caught them);
 *   - one ulp on a GEMM output is within its tolerance.
 * And PDC_DEBUG=prof (runtime/exec_prof.c), its neighbour in the executor: a program run
 * three times reports three runs, its units and the time summed by op. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "exec.h"
#include "program_fixture.h"

#ifdef PDC_HAVE_LLVM
#include "fuse.h"
#endif

enum fault { FAULT_NONE, FAULT_MATMUL, FAULT_MATMUL_ULP, FAULT_KERNEL };
static enum fault fault;
static const struct cg_target *inner;

/* the inner target's result with one element of the first MatMul output moved */
static int faulty_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                      void *const *out)
{
    int st = inner->run(g, n, in, out);
    if (st || n->op != IR_OP_MatMul || g->t[n->out[0]].dtype != IR_F32)
        return st;
    float *y = out[0];
    int64_t len = ir_numel(&g->t[n->out[0]]);
    float mx = 0;
    for (int64_t i = 0; i < len; i++)
        mx = fmaxf(mx, fabsf(y[i]));
    if (fault == FAULT_MATMUL)
        y[len / 2] += 1e-3f * mx + 1e-3f;
    else if (fault == FAULT_MATMUL_ULP)
        y[len / 2] = nextafterf(y[len / 2], INFINITY);
    return ST_OK;
}

#ifdef PDC_HAVE_LLVM
/* kernels remember their group's input count so the fault can find the first output */
static struct { struct cg_kernel *k; uint32_t n_in; } seen[4096];
static int n_seen;

static int faulty_compile(const struct ir_graph *g, const struct cg_group *grp,
                          struct cg_kernel **k, struct diag *d)
{
    int st = inner->compile(g, grp, k, d);
    if (!st && n_seen < 4096)
        seen[n_seen].k = *k, seen[n_seen++].n_in = grp->n_in;
    return st;
}

static int faulty_launch(struct cg_kernel *k, void *const *bufs)
{
    int st = inner->launch(k, bufs);
    for (int i = 0; !st && fault == FAULT_KERNEL && i < n_seen; i++)
        if (seen[i].k == k)
            ((float *)bufs[seen[i].n_in])[0] += 0.25f;
    return st;
}
#endif

/* one train step of `method` on tgt; returns rt_prog_run's status, message in d */
static int run_step(const char *method, build_fn bf, const struct cg_target *tgt, struct diag *d)
{
    struct dc_prog p;
    struct rt_prog *rp = NULL;
    int st = build_step(method, bf, &p, d);
    if (!st)
        st = rt_prog_new(p.g, tgt, &rp, d);
    if (!st) {
        fill_step_inputs(p.g, rp);
        st = rt_prog_run(rp, d);
    }
    rt_prog_free(rp);
    dc_prog_free(&p);
    return st;
}

static void expect_pass(const char *method, build_fn bf, const struct cg_target *tgt)
{
    struct diag d = {0};
    int st = run_step(method, bf, tgt, &d);
    if (st)
        fprintf(stderr, "  %s on %s: %s\n", method, tgt->name, d.msg);
    CHECK_EQ(st, ST_OK);
}

TEST(train_steps_pass_on_generated_targets)
{
    setenv("PDC_CHECK", "ref", 1);
    expect_pass("spd", build_batched, &cg_cpu);
    expect_pass("vpd", build_qkv, &cg_cpu);
#ifdef PDC_HAVE_LLVM
    expect_pass("spd", build_batched, &cg_llvm);
    expect_pass("vpd", build_qkv, &cg_llvm);
#endif
    unsetenv("PDC_CHECK");
}

TEST(a_wrong_matmul_is_caught_and_named)
{
    struct cg_target bad = cg_cpu;
    bad.name = "faulty";
    bad.run = faulty_run;
    inner = &cg_cpu;
    struct diag d = {0};
    fault = FAULT_MATMUL;
    CHECK_EQ(run_step("spd", build_tms, &bad, &d), ST_OK); /* unchecked: nobody notices */
    setenv("PDC_CHECK", "ref", 1);
    d = (struct diag){0};
    CHECK(run_step("spd", build_tms, &bad, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "PDC_CHECK=ref: node '");
    CHECK_STR_CONTAINS(d.msg, "(MatMul) on target faulty");
    CHECK_STR_CONTAINS(d.msg, "the reference target gives");
    fault = FAULT_MATMUL_ULP;
    d = (struct diag){0};
    CHECK_EQ(run_step("spd", build_tms, &bad, &d), ST_OK);
    fault = FAULT_NONE;
    unsetenv("PDC_CHECK");
}

TEST(a_wrong_fused_kernel_is_caught_and_named)
{
#ifdef PDC_HAVE_LLVM
    struct cg_target bad = cg_llvm;
    bad.name = "faulty";
    bad.compile = faulty_compile;
    bad.launch = faulty_launch;
    inner = &cg_llvm;
    struct diag d = {0};
    fault = FAULT_KERNEL;
    n_seen = 0;
    CHECK_EQ(run_step("vpd", build_qkv, &bad, &d), ST_OK);
    CHECK(n_seen > 0); /* the step has fused kernels to break */
    setenv("PDC_CHECK", "ref", 1);
    n_seen = 0;
    d = (struct diag){0};
    CHECK(run_step("vpd", build_qkv, &bad, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "PDC_CHECK=ref: fused kernel of ");
    CHECK_STR_CONTAINS(d.msg, "on target faulty");
    fault = FAULT_NONE;
    unsetenv("PDC_CHECK");
#else
    puts("  built without LLVM: no fused kernels to check");
#endif
}

TEST(prof_reports_units_and_ops)
{
    struct dc_prog p;
    struct rt_prog *rp = NULL;
    struct diag d = {0};
    char path[] = "/tmp/pdc_prof_XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    CHECK(fd >= 0 && saved >= 0);
    setenv("PDC_DEBUG", "prof", 1);
    int st = build_step("spd", build_tms, &p, &d);
    if (!st)
        st = rt_prog_new(p.g, &cg_cpu, &rp, &d);
    fflush(stderr);
    dup2(fd, 2); /* the report goes to stderr when the program is freed */
    for (int i = 0; !st && i < 3; i++) {
        fill_step_inputs(p.g, rp);
        st = rt_prog_run(rp, &d);
    }
    rt_prog_free(rp);
    fflush(stderr);
    dup2(saved, 2);
    unsetenv("PDC_DEBUG");
    CHECK_EQ(st, ST_OK);
    char buf[8192] = "";
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    remove(path);
    close(fd);
    close(saved);
    char want[64];
    snprintf(want, sizeof want, "prof: %u units, 3 runs, ", p.g->ntopo);
    CHECK_STR_CONTAINS(buf, want); /* cpu: every node its own unit */
    CHECK_STR_CONTAINS(buf, "node  [");
    CHECK_STR_CONTAINS(buf, "prof: by op ");
    CHECK_STR_CONTAINS(buf, "MatMul");
    dc_prog_free(&p);
}

static const struct test_case tests[] = {
    T(train_steps_pass_on_generated_targets),
    T(prof_reports_units_and_ops),
    T(a_wrong_matmul_is_caught_and_named),
    T(a_wrong_fused_kernel_is_caught_and_named),
};

TEST_MAIN(tests)
