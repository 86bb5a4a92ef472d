/* test_gpu_emu.c — HOST EMULATION of the GPU kernels (no GPU is used or needed).
 *
 * codegen/llvm emits each fused group's GPU kernel once more in the emulation form
 * (LK_EMU): the PTX kernel's body and its index and bounds logic,
 * i = lo + ctaid·ntid + tid and nothing when i >= hi, with ctaid/ntid/tid turned into
 * parameters and a grid of blocks of threads turned into loops, compiled for the host
 * with the host's math functions instead of CUDA's libdevice. For every fused group of
 * an SPD and a VPD train step and a group using every fusible op, on random inputs:
 *   - a launch of ⌈n/128⌉ + 1 blocks of 128 threads (the last block entirely past the
 *     end, and the one before partly) writes exactly the host kernel's bits: every
 *     element once, none past the end (outputs start as NaN bit patterns, and a
 *     guard word after each buffer must stay untouched);
 *   - the same range launched as two halves (lo = 0 and lo = n/2, blocks of 96) too.
 * The host kernels themselves are checked against the reference target in
 * test_llvm.c. What this leaves to a real GPU: libdevice's math, the launch itself,
 * memory and the PTX the NVPTX backend writes (test_llvm_ptx.c assembles it). */
#include <stdint.h>

#include "program_fixture.h"

#ifdef PDC_HAVE_LLVM
#include "llvm/llvm_impl.h"

#define GUARD 0x5au    /* bytes after each output buffer */
#define IN_GUARD 0x3cu /* after each input: a kernel copying an input past the end must
                        * not write the output's guard pattern by chance */
#define PAD 64

static int groups_checked;

static size_t tensor_bytes(const struct ir_graph *g, uint32_t t)
{
    return (size_t)ir_numel(&g->t[t]) * ir_dtype_size(g->t[t].dtype);
}

static void fill_input(const struct ir_graph *g, uint32_t t, unsigned char *b)
{
    int64_t n = ir_numel(&g->t[t]);
    for (int64_t i = 0; i < n; i++) {
        if (g->t[t].dtype == IR_F32)
            ((float *)b)[i] = (float)rng_unif(-0.9, 0.9);
        else if (g->t[t].dtype == IR_BOOL)
            b[i] = rng_unif(0, 1) < 0.5;
        else
            memset(b, 0, tensor_bytes(g, t));
    }
}

/* fresh buffers for the group: inputs filled, outputs NaN-patterned, a guard after each */
static unsigned char **buffers(const struct ir_graph *g, const struct cg_group *gr,
                               const unsigned char *const *src)
{
    uint32_t nb = gr->n_in + gr->n_out;
    unsigned char **b = calloc(nb + 1, sizeof *b);
    for (uint32_t i = 0; b && i < nb; i++) {
        uint32_t t = i < gr->n_in ? gr->in[i] : gr->out[i - gr->n_in];
        size_t bytes = tensor_bytes(g, t);
        b[i] = malloc(bytes + PAD);
        if (!b[i])
            continue;
        if (i < gr->n_in)
            memcpy(b[i], src[i], bytes);
        else
            memset(b[i], 0xff, bytes);
        memset(b[i] + bytes, i < gr->n_in ? IN_GUARD : GUARD, PAD);
    }
    return b;
}

static void free_buffers(unsigned char **b, uint32_t nb)
{
    for (uint32_t i = 0; b && i < nb; i++)
        free(b[i]);
    free(b);
}

/* the emulated launches write the host kernel's bits, and nothing past any buffer */
static int same_outputs(const struct ir_graph *g, const struct cg_group *gr,
                        unsigned char *const *want, unsigned char *const *got)
{
    for (uint32_t o = 0; o < gr->n_out; o++) {
        size_t bytes = tensor_bytes(g, gr->out[o]);
        const unsigned char *w = want[gr->n_in + o], *x = got[gr->n_in + o];
        if (memcmp(w, x, bytes) != 0)
            return 0;
        for (int k = 0; k < PAD; k++)
            if (x[bytes + k] != GUARD)
                return 0;
    }
    return 1;
}

static void check_group(const struct ir_graph *g, const struct cg_group *gr, const char *what)
{
    struct diag d = {0};
    lk_fn host = NULL;
    lk_emu_fn emu = NULL;
    if (lk_host_compile(g, gr, &host, &d) || lk_emu_compile(g, gr, &emu, &d)) {
        fprintf(stderr, "  %s: %s\n", what, d.msg);
        test_failed_ = 1;
        return;
    }
    uint32_t nb = gr->n_in + gr->n_out;
    unsigned char **src = calloc(gr->n_in + 1, sizeof *src);
    for (uint32_t i = 0; src && i < gr->n_in; i++) {
        src[i] = malloc(tensor_bytes(g, gr->in[i]) + 1);
        if (src[i])
            fill_input(g, gr->in[i], src[i]);
    }
    int64_t n = ir_numel(&g->t[g->n[gr->nodes[0]].out[0]]);
    unsigned char **want = buffers(g, gr, (const unsigned char *const *)src);
    unsigned char **one = buffers(g, gr, (const unsigned char *const *)src);
    unsigned char **two = buffers(g, gr, (const unsigned char *const *)src);
    host((void *const *)want, 0, n);
    emu((void *const *)one, 0, n, (n + 127) / 128 + 1, 128);
    int64_t half = n / 2;
    emu((void *const *)two, 0, half, (half + 95) / 96, 96);
    emu((void *const *)two, half, n, (n - half + 95) / 96, 96);
    int ok1 = same_outputs(g, gr, want, one), ok2 = same_outputs(g, gr, want, two);
    if (!ok1 || !ok2)
        fprintf(stderr, "  %s: group from '%s' (%u nodes, %lld elements): emulated launch %s "
                "differs from the host kernel\n", what, g->n[gr->nodes[0]].name, gr->n_nodes,
                (long long)n, ok1 ? "in two halves" : "of one grid");
    CHECK(ok1 && ok2);
    groups_checked++;
    free_buffers(want, nb);
    free_buffers(one, nb);
    free_buffers(two, nb);
    free_buffers(src, gr->n_in);
}

static void program_groups(const char *method, build_fn bf)
{
    struct dc_prog p;
    struct cg_plan plan;
    if (step_plan(method, bf, &p, &plan))
        return;
    int before = groups_checked;
    rng_state = 99;
    for (uint32_t i = 0; i < plan.n_groups; i++)
        if (plan.groups[i].fused)
            check_group(p.g, &plan.groups[i], method);
    printf("  %s step: %d fused groups run as emulated GPU launches (host emulation, not a "
           "GPU)\n", method, groups_checked - before);
    CHECK(groups_checked - before > 5);
    cg_plan_free(&plan);
    dc_prog_free(&p);
}

TEST(spd_step_kernels_emulated) { program_groups("spd", build_batched); }
TEST(vpd_step_kernels_emulated) { program_groups("vpd", build_qkv); }

TEST(every_op_kernel_emulated)
{
    struct cg_plan plan;
    struct ir_graph *g = every_op_plan(&plan);
    if (!g)
        return;
    check_group(g, &plan.groups[0], "every op");
    cg_plan_free(&plan);
    ir_graph_free(g);
}

static const struct test_case tests[] = {
    T(every_op_kernel_emulated),
    T(spd_step_kernels_emulated),
    T(vpd_step_kernels_emulated),
};

TEST_MAIN(tests)

#else
int main(void)
{
    puts("built without LLVM: no GPU kernels to emulate");
    return 77;
}
#endif
