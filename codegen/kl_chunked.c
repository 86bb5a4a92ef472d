/* kl_chunked.c — the chunked KL of logits h W + b (see kl_chunked.h). */
#include <math.h>
#include <string.h>

#include "cpu/cpu_impl.h"
#include "cpu/cpu_math.h"
#include "kl_chunked.h"

/* The exponentials are cpu_math.h's (within a few 1e-9 relative of libm's exp: a
 * few 1e-9 absolute in the log-sum-exps and the KL, where rounding the log-sum-exps
 * to float costs ~5e-7 at a vocabulary's |lse| ~ 5), computed into a stack buffer by
 * a loop of their own (with the sums in it, GCC kept it scalar), and the row loops
 * are ISA clones with LANES partial sums and maxima (element v in lane v % LANES,
 * the lanes combined in lane order: a fixed order, the same on every target and
 * thread count). libm's scalar exp, two per logit and pass, and one long chain of
 * double adds per sum were most of a tiny-LM ChunkedKL: 745 -> 340 us forward,
 * 725 -> 330 us backward ([512, 64] rows, V = 256). */
#define LANES 8

/* zm[v] becomes dkl (q_v - p_v), q = e^(zm - lm), p = e^(zt - lt) */
CPU_CLONES static void kl_dlogits(const float *restrict zt, float *restrict zm, double lt,
                                  double lm, double dkl, int64_t n)
{
    for (int64_t v = 0; v < n; v++)
        zm[v] = (float)(dkl * (cpu_exp((double)zm[v] - lm) - cpu_exp((double)zt[v] - lt)));
}

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

/* the largest of z[0..w) in double; NaN never wins */
CPU_CLONES static double row_max(const float *restrict z, int64_t w)
{
    double m[LANES], r = -INFINITY;
    for (int l = 0; l < LANES; l++)
        m[l] = -INFINITY;
    int64_t v = 0;
    for (; v + LANES <= w; v += LANES)
        for (int l = 0; l < LANES; l++)
            m[l] = (double)z[v + l] > m[l] ? (double)z[v + l] : m[l];
    for (int l = 0; v < w; v++, l++)
        m[l] = (double)z[v] > m[l] ? (double)z[v] : m[l];
    for (int l = 0; l < LANES; l++)
        r = m[l] > r ? m[l] : r;
    return r;
}

/* e[v] = e^(z[v] - m) */
CPU_CLONES static void exp_shifted(const float *restrict z, double m, double *restrict e,
                                   int64_t n)
{
    for (int64_t v = 0; v < n; v++)
        e[v] = cpu_exp((double)z[v] - m);
}

#define EBLK 256 /* logits per stretch: their e^ live in a stack buffer */

/* one chunk of a row: Σ e^(zt - mt), Σ e^(zt - mt)(zt - zm) and Σ e^(zm - mm) */
CPU_CLONES static void chunk_sums(const float *restrict zt, const float *restrict zm, double mt,
                                  double mm, int64_t w, double sum[3])
{
    double st[LANES] = {0}, a[LANES] = {0}, sm[LANES] = {0}, et[EBLK], em[EBLK];
    for (int64_t v0 = 0; v0 < w; v0 += EBLK) {
        int64_t n = w - v0 < EBLK ? w - v0 : EBLK, v = 0;
        const float *t = zt + v0, *m = zm + v0;
        exp_shifted(t, mt, et, n);
        exp_shifted(m, mm, em, n);
        for (; v + LANES <= n; v += LANES)
            for (int l = 0; l < LANES; l++) {
                st[l] += et[v + l];
                a[l] += et[v + l] * ((double)t[v + l] - (double)m[v + l]);
                sm[l] += em[v + l];
            }
        for (int l = 0; v < n; v++, l++) {
            st[l] += et[v];
            a[l] += et[v] * ((double)t[v] - (double)m[v]);
            sm[l] += em[v];
        }
    }
    sum[0] = sum[1] = sum[2] = 0.0;
    for (int l = 0; l < LANES; l++) {
        sum[0] += st[l];
        sum[1] += a[l];
        sum[2] += sm[l];
    }
}

/* fold one chunk of a row into its statistics, rescaling to a new maximum first */
static void fold(struct run *s, const float *zt, const float *zm, int64_t w)
{
    double cmt = row_max(zt, w), cmm = row_max(zm, w), sum[3];
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
    chunk_sums(zt, zm, s->mt, s->mm, w, sum);
    s->st += sum[0];
    s->a += sum[1];
    s->sm += sum[2];
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
        for (int64_t r = 0; r < nr; r++) /* zm becomes dkl (q − p), this chunk's dlogits */
            kl_dlogits(zt + r * w, zm + r * w, lse[2 * (r0 + r)], lse[2 * (r0 + r) + 1],
                       dkl[r0 + r], w);
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
