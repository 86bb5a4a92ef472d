/* cpu_kl.c — the chunked KL of logits (ChunkedKL, ChunkedKLGrad) on the cpu target:
 * kl_chunked.c's arithmetic with sgemm, over fixed blocks of rows split across the
 * pool. The block size does not depend on the thread count, so neither do results. */
#ifdef PDC_HAVE_BLAS

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "../kl_chunked.h"
#include "cpu_impl.h"

#define ROWS 64 /* rows per block: a block holds 2 · ROWS · chunk logits */

static void gemm_blas(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
}

struct job {
    struct kl_chunked k;
    const float *dkl, *lse_in; /* backward */
    float *kl, *lse, *dhm;
    atomic_int failed; /* a worker could not get its scratch */
};

static void blocks(void *ctx, int64_t lo, int64_t hi)
{
    struct job *j = ctx;
    float *scratch = malloc((size_t)kl_scratch_floats(&j->k, ROWS) * sizeof *scratch);
    if (!scratch) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (int64_t b = lo; b < hi; b++) {
        int64_t r0 = b * ROWS, r1 = r0 + ROWS < j->k.rows ? r0 + ROWS : j->k.rows;
        if (j->dhm)
            kl_chunked_backward(&j->k, r0, r1, j->dkl, j->lse_in, j->dhm, scratch);
        else
            kl_chunked_forward(&j->k, r0, r1, j->kl, j->lse, scratch);
    }
    free(scratch);
}

static int run(struct job *j)
{
    cpu_parallel((j->k.rows + ROWS - 1) / ROWS, 1, blocks, j);
    return atomic_load(&j->failed) ? ST_ERR_NOMEM : ST_OK;
}

static struct kl_chunked args(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                              uint32_t first)
{
    const struct ir_tensor *h = &g->t[n->in[first]], *w = &g->t[n->in[first + 2]];
    int tw = ir_attr_int(n, "trans_w", 0) != 0;
    int has_b = n->n_in > first + 3 && n->in[first + 3] != IR_NONE;
    struct kl_chunked k = {in[first], in[first + 1], in[first + 2], has_b ? in[first + 3] : NULL,
                           0, h->dims[h->rank - 1], w->dims[tw ? 0 : 1],
                           ir_attr_int(n, "chunk", 1), tw, gemm_blas};
    k.rows = k.D ? ir_numel(h) / k.D : 0;
    if (k.chunk > k.V)
        k.chunk = k.V > 0 ? k.V : 1;
    return k;
}

CPU_KERNEL(ChunkedKL)
{
    struct job j = {args(g, n, in, 0), NULL, NULL, out[0], out[1], NULL, 0};
    return run(&j);
}

CPU_KERNEL(ChunkedKLGrad)
{
    struct job j = {args(g, n, in, 2), in[0], in[1], NULL, NULL, out[0], 0};
    return run(&j);
}

#endif
