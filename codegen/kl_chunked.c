/* kl_chunked.c — the chunked KL of logits h W + b (see kl_chunked.h). */
#include <math.h>
#include <string.h>

#include "kl_chunked.h"

int64_t kl_scratch_floats(const struct kl_chunked *k, int64_t nr)
{
    return 10 * nr + 2 * nr * k->chunk; /* five doubles per row, two logit blocks */
}

/* logits of rows [r0, r0 + nr) for vocabulary columns [c0, c0 + w) into z [nr, w] */
static void chunk_logits(const struct kl_chunked *k, const float *h, int64_t r0, int64_t nr,
                         int64_t c0, int64_t w, float *z)
{
    const float *hb = h + r0 * k->D;
    if (k->trans_w)
        k->gemm(1, nr, w, k->D, hb, k->D, k->w + c0 * k->D, k->D, 0.0f, z, w);
    else
        k->gemm(0, nr, w, k->D, hb, k->D, k->w + c0, k->V, 0.0f, z, w);
    if (k->b)
        for (int64_t r = 0; r < nr; r++)
            for (int64_t v = 0; v < w; v++)
                z[r * w + v] += k->b[c0 + v];
}

struct run { /* one row's running softmax statistics */
    double mt, st, mm, sm, a;
};

static double row_max(const float *z, int64_t w)
{
    double m = -INFINITY;
    for (int64_t v = 0; v < w; v++)
        m = (double)z[v] > m ? (double)z[v] : m;
    return m;
}

/* fold one chunk of a row into its statistics, rescaling to a new maximum first */
static void fold(struct run *s, const float *zt, const float *zm, int64_t w)
{
    double cmt = row_max(zt, w), cmm = row_max(zm, w);
    if (cmt > s->mt) {
        double f = s->st > 0 ? exp(s->mt - cmt) : 0.0;
        s->st *= f;
        s->a *= f;
        s->mt = cmt;
    }
    if (cmm > s->mm) {
        s->sm *= s->sm > 0 ? exp(s->mm - cmm) : 0.0;
        s->mm = cmm;
    }
    for (int64_t v = 0; v < w; v++) {
        double et = exp((double)zt[v] - s->mt);
        s->st += et;
        s->a += et * ((double)zt[v] - (double)zm[v]);
        s->sm += exp((double)zm[v] - s->mm);
    }
}

void kl_chunked_forward(const struct kl_chunked *k, int64_t r0, int64_t r1, float *kl, float *lse,
                        float *scratch)
{
    int64_t nr = r1 - r0;
    struct run *run = (struct run *)(void *)scratch;
    float *zt = scratch + 10 * nr, *zm = zt + nr * k->chunk;
    for (int64_t r = 0; r < nr; r++)
        run[r] = (struct run){-INFINITY, 0.0, -INFINITY, 0.0, 0.0};
    for (int64_t c0 = 0; c0 < k->V; c0 += k->chunk) {
        int64_t w = k->V - c0 < k->chunk ? k->V - c0 : k->chunk;
        chunk_logits(k, k->ht, r0, nr, c0, w, zt);
        chunk_logits(k, k->hm, r0, nr, c0, w, zm);
        for (int64_t r = 0; r < nr; r++)
            fold(&run[r], zt + r * w, zm + r * w, w);
    }
    for (int64_t r = 0; r < nr; r++) {
        double lt = run[r].mt + log(run[r].st), lm = run[r].mm + log(run[r].sm);
        kl[r0 + r] = (float)(run[r].a / run[r].st - lt + lm);
        lse[2 * (r0 + r)] = (float)lt;
        lse[2 * (r0 + r) + 1] = (float)lm;
    }
}

void kl_chunked_backward(const struct kl_chunked *k, int64_t r0, int64_t r1, const float *dkl,
                         const float *lse, float *dhm, float *scratch)
{
    int64_t nr = r1 - r0;
    float *zt = scratch + 10 * nr, *zm = zt + nr * k->chunk;
    float *dh = dhm + r0 * k->D;
    memset(dh, 0, (size_t)(nr * k->D) * sizeof *dh);
    for (int64_t c0 = 0; c0 < k->V; c0 += k->chunk) {
        int64_t w = k->V - c0 < k->chunk ? k->V - c0 : k->chunk;
        chunk_logits(k, k->ht, r0, nr, c0, w, zt);
        chunk_logits(k, k->hm, r0, nr, c0, w, zm);
        for (int64_t r = 0; r < nr; r++) { /* zm becomes dkl (q − p), this chunk's dlogits */
            double lt = lse[2 * (r0 + r)], lm = lse[2 * (r0 + r) + 1], g = dkl[r0 + r];
            for (int64_t v = 0; v < w; v++) {
                double q = exp((double)zm[r * w + v] - lm), p = exp((double)zt[r * w + v] - lt);
                zm[r * w + v] = (float)(g * (q - p));
            }
        }
        if (k->trans_w) /* dh += G · W[c0:c0+w, :] */
            k->gemm(0, nr, k->D, w, zm, w, k->w + c0 * k->D, k->D, 1.0f, dh, k->D);
        else /* dh += G · W[:, c0:c0+w]ᵀ */
            k->gemm(1, nr, k->D, w, zm, w, k->w + c0, k->V, 1.0f, dh, k->D);
    }
}

void kl_gemm_loops(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int64_t p = 0; p < K; p++)
                acc += A[i * lda + p] * (tb ? B[j * ldb + p] : B[p * ldb + j]);
            C[i * ldc + j] = beta == 0.0f ? acc : beta * C[i * ldc + j] + acc;
        }
}
