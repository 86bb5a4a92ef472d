/* test_llvm_ptx.c — every fused kernel group of an SPD and a VPD train step, and a
 * group using every fusible op, emitted as PTX for sm_80 and sm_90 by codegen/llvm
 * (one module per program and architecture) and assembled by ptxas. Exit 77 (skipped) when ptxas is missing. PDC_PTXAS names
 * another ptxas. */
#include <unistd.h>

#include "program_fixture.h"

#ifdef PDC_HAVE_LLVM
#include "llvm/llvm_impl.h"

static const char *ptxas(void)
{
    const char *p = getenv("PDC_PTXAS");
    return p && *p ? p : "/usr/local/cuda/bin/ptxas";
}

static char tmpdir[] = "/tmp/pdc_ptx_XXXXXX";
static int assembled, groups_seen;

/* one PTX module with the kernels of groups gr[] for sm, then ptxas on it */
static void assemble(const struct ir_graph *g, const struct cg_group *const *gr, int n, int sm,
                     const char *what)
{
    struct diag d = {0};
    char *ptx = NULL, path[256], cmd[700];
    int st = lk_ptx(g, gr, n, sm, &ptx, &d);
    if (st) {
        fprintf(stderr, "  %s sm_%d: %s\n", what, sm, d.msg);
        test_failed_ = 1;
        return;
    }
    snprintf(path, sizeof path, "%s/k.ptx", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(ptx, f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "'%s' -arch=sm_%d -o %s/k.cubin %s", ptxas(), sm, tmpdir, path);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "  %s sm_%d: ptxas failed (%d) on %s\n", what, sm, rc, path);
        test_failed_ = 1;
        snprintf(cmd, sizeof cmd, "cp %s /tmp/pdc_failed_sm%d.ptx", path, sm);
        if (system(cmd) != 0)
            fprintf(stderr, "  (could not keep the PTX)\n");
    } else {
        assembled += n;
    }
    free(ptx);
}

static void program_groups(const char *method, build_fn bf)
{
    struct dc_prog p;
    struct cg_plan plan;
    if (step_plan(method, bf, &p, &plan))
        return;
    int before = assembled, n = 0;
    const struct cg_group **grs = malloc((plan.n_groups + 1) * sizeof *grs);
    for (uint32_t i = 0; grs && i < plan.n_groups; i++)
        if (plan.groups[i].fused)
            grs[n++] = &plan.groups[i];
    assemble(p.g, grs, n, 80, method);
    assemble(p.g, grs, n, 90, method);
    free(grs);
    printf("  %s: %d fused groups, %d kernels assembled (sm_80 and sm_90)\n", method, n,
           assembled - before);
    CHECK(n > 5);
    groups_seen += n;
    cg_plan_free(&plan);
    dc_prog_free(&p);
}

TEST(spd_step_groups) { program_groups("spd", build_batched); }
TEST(vpd_step_groups) { program_groups("vpd", build_qkv); }

TEST(every_op_in_one_group)
{
    struct cg_plan plan;
    struct ir_graph *g = every_op_plan(&plan);
    if (!g)
        return;
    const struct cg_group *gr = &plan.groups[0];
    assemble(g, &gr, 1, 80, "every op");
    assemble(g, &gr, 1, 90, "every op");
    cg_plan_free(&plan);
    ir_graph_free(g);
}

static const struct test_case tests[] = {
    T(every_op_in_one_group),
    T(spd_step_groups),
    T(vpd_step_groups),
};

int main(int argc, char **argv)
{
    if (access(ptxas(), X_OK) != 0) {
        printf("no ptxas at %s: skipped\n", ptxas());
        return 77;
    }
    if (!mkdtemp(tmpdir))
        return 1;
    int nfail = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            want |= strcmp(argv[a], tests[i].name) == 0;
        if (!want)
            continue;
        test_failed_ = 0;
        tests[i].fn();
        printf("%-40s %s\n", tests[i].name, test_failed_ ? "FAIL" : "ok");
        nfail += test_failed_;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        nfail++;
    printf("%d kernels assembled, %d failed tests\n", assembled, nfail);
    return nfail ? 1 : 0;
}

#else
int main(void)
{
    puts("built without LLVM: nothing to test");
    return 77;
}
#endif
