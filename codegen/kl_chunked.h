/* kl_chunked.h — KL(softmax(h_t W + b) ‖ softmax(h_m W + b)) per row, without the
 * logits: the vocabulary is walked in column chunks of W, so a row block holds
 * rows × chunk logits at a time instead of rows × V (a language model's [B, T, V]
 * logits of every masked forward would otherwise all live until the backward).
 *
 * Forward, one pass: per row the running maxima and sums of both softmaxes and
 * a = Σ_v e^{zt_v − mt}(zt_v − zm_v), rescaled whenever a chunk raises a maximum;
 * then KL = a / St − lse_t + lse_m (Σ p (zt − zm) − lse_t + lse_m), and lse_t, lse_m
 * are kept for the backward. Backward: dh_m = Σ_chunks dkl · (q − p)_chunk W_chunkᵀ,
 * the chunk logits recomputed from h_t, h_m.
 *
 * Shared by the reference kernel (plain loops) and the cpu target (sgemm over fixed
 * row blocks): the GEMM is a parameter, the rest of the arithmetic is this file's. */
#ifndef PDC_KL_CHUNKED_H
#define PDC_KL_CHUNKED_H

#include <stdint.h>

/* C[M, N] = A[M, K] · op(B) + beta · C; op(B) = B stored [K, N] (tb 0) or Bᵀ with B
 * stored [N, K] (tb 1); lda, ldb, ldc are row strides */
typedef void (*kl_gemm_fn)(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                           const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

struct kl_chunked {
    const float *ht, *hm; /* [rows, D] */
    const float *w;       /* [D, V], or [V, D] when trans_w */
    const float *b;       /* [V] or NULL */
    int64_t rows, D, V, chunk;
    int trans_w;
    kl_gemm_fn gemm;
};

/* scratch floats a row block of nr rows needs */
int64_t kl_scratch_floats(const struct kl_chunked *k, int64_t nr);
/* rows [r0, r1): kl[r] and lse[r] = {lse_t, lse_m} */
void kl_chunked_forward(const struct kl_chunked *k, int64_t r0, int64_t r1, float *kl, float *lse,
                        float *scratch);
/* rows [r0, r1): dhm[r] = dkl[r] · Σ_v (q_v − p_v) W[:, v] */
void kl_chunked_backward(const struct kl_chunked *k, int64_t r0, int64_t r1, const float *dkl,
                         const float *lse, float *dhm, float *scratch);
/* the reference GEMM: plain loops, float accumulation in K order */
void kl_gemm_loops(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

#endif
