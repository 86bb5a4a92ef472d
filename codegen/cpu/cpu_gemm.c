/* cpu_gemm.c — float32 MatMul and Gemm: OpenBLAS for real GEMMs, a direct
 * loop for the tiny ones.
 *
 * Both ops become one batched problem (struct mm): nb GEMMs of the same shape
 * and transposes, batch i reading A and B at broadcast offsets and writing the
 * i-th (M, N) block of Y. The CI functions are full of GEMMs too small for
 * sgemm's packing and call overhead to pay off, e.g. [C, N, 1] @ [C, 1, 16]
 * (an outer product per component): those run as an i-k-j loop over all rows
 * of all batches, split across the pool. Everything else goes to OpenBLAS
 * (0.3.21 has no sgemm_batch) in fixed blocks of rows or columns, split across
 * the pool, after merging the batch into M when B is shared: sgemv when M or N
 * is 1 (the VJPs of those products), sgemm otherwise. */
#ifdef PDC_HAVE_BLAS

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

/* a GEMM whose M·N·K is below this runs as a direct loop: sgemm packs its
 * operands and splits the work, which costs more than the arithmetic here */
#define DIRECT_MAX_MNK 4096
#define DIRECT_MAX_K 4
#define JBLOCK 256 /* columns per pass of the direct loop (a stack row buffer) */
#define PACK_MAX 1024 /* a transposed op(B) up to this many elements is copied to [K][N]
                       * first: the strided dot products ran one multiply at a time (a
                       * [4096, 2]·[20, 2]ᵀ layer of TMS's masked forward took 100 us) */
#define BLOCK 256  /* rows (or columns) of Y per sgemm call */
#define GRAIN_FLOPS 16384 /* multiply-adds per thread below which waking the pool costs more */
#define KBLOCK 512    /* K per partial product when Y is one block (below) */
#define KSPLIT_MAX 16 /* partial products at most: K blocks grow past 16·KBLOCK */

struct mm {
    int ta, tb;             /* op(A) = A^T, op(B) = B^T */
    int64_t M, N, K, nb;
    float alpha;
    int accumulate;         /* Y already holds beta*C: add alpha*op(A)op(B) to it */
    const float *a, *b;
    float *y;
    int rb;                 /* batch rank; Y's batch dims and A/B batch strides in elements */
    int64_t dims[IR_MAX_RANK], astr[IR_MAX_RANK], bstr[IR_MAX_RANK];
};

/* row-major index lin of the box dims[0..r) -> offset with strides str */
static int64_t box_offset(int64_t lin, int r, const int64_t *dims, const int64_t *str)
{
    int64_t off = 0;
    for (int i = r - 1; i >= 0; i--) {
        off += (lin % dims[i]) * str[i];
        lin /= dims[i];
    }
    return off;
}

/* ---- direct loop ------------------------------------------------------------ */

/* t[0..jn) = sum_k op(A)[i][k] * op(B)[k][j0 + j] for one row i: a points at
 * op(A)[i][0] with stride as along k; b at op(B)[0][j0] with strides brs (k)
 * and bcs (j). The first k assigns, so t needs no clearing. */
static void direct_row(const float *a, int64_t as, const float *b, int64_t brs, int64_t bcs,
                       int64_t K, int64_t jn, float *restrict t)
{
    float a0 = a[0];
    if (bcs == 1) {
        for (int64_t j = 0; j < jn; j++)
            t[j] = a0 * b[j];
        for (int64_t k = 1; k < K; k++) {
            float ak = a[k * as];
            const float *bk = b + k * brs;
            for (int64_t j = 0; j < jn; j++)
                t[j] += ak * bk[j];
        }
        return;
    }
    for (int64_t j = 0; j < jn; j++) {
        float s = a0 * b[j * bcs];
        for (int64_t k = 1; k < K; k++)
            s += a[k * as] * b[k * brs + j * bcs];
        t[j] = s;
    }
}

/* Y row i of one batch = op(A) row i times op(B), for i in [i0, i1) */
static void direct_batch(const struct mm *m, const float *a, const float *b, float *y,
                         int64_t i0, int64_t i1)
{
    int64_t M = m->M, N = m->N, K = m->K;
    int64_t ars = m->ta ? 1 : K, as = m->ta ? M : 1;  /* op(A)[i][k] = a[i*ars + k*as] */
    int64_t brs = m->tb ? 1 : N, bcs = m->tb ? K : 1; /* op(B)[k][j] = b[k*brs + j*bcs] */
    int plain = !m->accumulate && m->alpha == 1.0f;   /* write the sums straight into Y */
    if (plain && K == 1 && bcs == 1) { /* an outer product: one rounding per element */
        for (int64_t i = i0; i < i1; i++) {
            float ai = a[i * ars], *restrict yi = y + i * N;
            for (int64_t j = 0; j < N; j++)
                yi[j] = ai * b[j];
        }
        return;
    }
    float bpack[PACK_MAX];
    if (bcs != 1 && K * N <= PACK_MAX) { /* op(B) laid out [K][N] so rows vectorise */
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++)
                bpack[k * N + j] = b[k * brs + j * bcs];
        b = bpack, brs = N, bcs = 1;
    }
    float tmp[JBLOCK];
    for (int64_t i = i0; i < i1; i++) {
        float *yi = y + i * N;
        for (int64_t j0 = 0; j0 < N; j0 += JBLOCK) {
            int64_t jn = N - j0 < JBLOCK ? N - j0 : JBLOCK;
            float *t = plain ? yi + j0 : tmp;
            direct_row(a + i * ars, as, b + j0 * bcs, brs, bcs, K, jn, t);
            if (plain)
                continue;
            for (int64_t j = 0; j < jn; j++)
                yi[j0 + j] = m->alpha * tmp[j] + (m->accumulate ? yi[j0 + j] : 0.0f);
        }
    }
}

/* rows [lo, hi) of all batches stacked: row r is row r % M of batch r / M */
static void direct_rows(void *ctx, int64_t lo, int64_t hi)
{
    const struct mm *m = ctx;
    for (int64_t r = lo; r < hi;) {
        int64_t bi = r / m->M, i0 = r % m->M;
        int64_t i1 = hi - r < m->M - i0 ? i0 + (hi - r) : m->M;
        direct_batch(m, m->a + box_offset(bi, m->rb, m->dims, m->astr),
                     m->b + box_offset(bi, m->rb, m->dims, m->bstr), m->y + bi * m->M * m->N, i0,
                     i1);
        r += i1 - i0;
    }
}

/* ---- OpenBLAS ------------------------------------------------------------------- */

/* Y (M, 1) = op(A) x, rows [q0, q0 + qn): a matrix-vector product needs no
 * packing, which sgemm would do */
static void gemv_rows(const struct mm *m, const float *a, const float *x, float *y, int64_t q0,
                      int64_t qn)
{
    float beta = m->accumulate ? 1.0f : 0.0f;
    if (m->ta) /* A is (K, M): rows of op(A) are columns of A */
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)m->K, (blasint)qn, m->alpha, a + q0,
                    (blasint)m->M, x, 1, beta, y + q0, 1);
    else
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)qn, (blasint)m->K, m->alpha,
                    a + q0 * m->K, (blasint)m->K, x, 1, beta, y + q0, 1);
}

/* Y (1, N) = x op(B), columns [q0, q0 + qn) */
static void gemv_cols(const struct mm *m, const float *x, const float *b, float *y, int64_t q0,
                      int64_t qn)
{
    float beta = m->accumulate ? 1.0f : 0.0f;
    if (m->tb) /* B is (N, K) */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)qn, (blasint)m->K, m->alpha,
                    b + q0 * m->K, (blasint)m->K, x, 1, beta, y + q0, 1);
    else
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)m->K, (blasint)qn, m->alpha, b + q0,
                    (blasint)m->N, x, 1, beta, y + q0, 1);
}

/* rows (by_rows) or columns q0.. of Y through sgemm */
static void gemm_block(const struct mm *m, const float *a, const float *b, float *y, int by_rows,
                       int64_t q0, int64_t qn)
{
    int64_t M = m->M, N = m->N, lda = m->ta ? M : m->K, ldb = m->tb ? m->K : N;
    if (by_rows) {
        a += m->ta ? q0 : q0 * lda;
        y += q0 * N;
    } else {
        b += m->tb ? q0 * ldb : q0;
        y += q0;
    }
    cblas_sgemm(CblasRowMajor, m->ta ? CblasTrans : CblasNoTrans,
                m->tb ? CblasTrans : CblasNoTrans, (blasint)(by_rows ? qn : M),
                (blasint)(by_rows ? N : qn), (blasint)m->K, m->alpha, a,
                (blasint)(lda > 1 ? lda : 1), b, (blasint)(ldb > 1 ? ldb : 1),
                m->accumulate ? 1.0f : 0.0f, y, (blasint)(N > 1 ? N : 1));
}

/* One OpenBLAS call per work item: batch bi, and block q of the longer of M
 * and N. The blocks have a fixed size, so the calls (and their results) are
 * the same whatever the thread count; OpenBLAS's own threads would split each
 * call by the thread count, and its edge tiles round differently, so it runs
 * single-threaded and the pool runs the items. */
static void blas_items(void *ctx, int64_t lo, int64_t hi)
{
    const struct mm *m = ctx;
    int by_rows = m->M >= m->N;
    int64_t len = by_rows ? m->M : m->N, nblk = (len + BLOCK - 1) / BLOCK;
    for (int64_t it = lo; it < hi; it++) {
        int64_t bi = it / nblk, q0 = (it % nblk) * BLOCK;
        int64_t qn = len - q0 < BLOCK ? len - q0 : BLOCK;
        const float *a = m->a + box_offset(bi, m->rb, m->dims, m->astr);
        const float *b = m->b + box_offset(bi, m->rb, m->dims, m->bstr);
        float *y = m->y + bi * m->M * m->N;
        if (m->N == 1)
            gemv_rows(m, a, b, y, q0, qn);
        else if (m->M == 1)
            gemv_cols(m, a, b, y, q0, qn);
        else
            gemm_block(m, a, b, y, by_rows, q0, qn);
    }
}

/* Y small enough to be one block, K long: a weight gradient Xᵀ·dY over a batch
 * ([100, 100] from [2048, 100]ᵀ·[2048, 100] in resid-mlp-1) would run as one sgemm
 * on one core. K is cut into fixed blocks instead, one sgemm each across the pool,
 * block 0 into Y and the rest into scratch, then summed into Y in block order. The
 * blocks depend on K only, so results do not depend on the thread count. */
struct ksplit {
    const struct mm *m;
    float *part;      /* (nk - 1) · M · N: blocks 1.. */
    int64_t kb, nk;   /* K per block, blocks */
};

static void k_items(void *ctx, int64_t lo, int64_t hi)
{
    const struct ksplit *s = ctx;
    const struct mm *m = s->m;
    int64_t M = m->M, N = m->N, K = m->K, lda = m->ta ? M : K, ldb = m->tb ? K : N;
    for (int64_t c = lo; c < hi; c++) {
        int64_t k0 = c * s->kb, kn = K - k0 < s->kb ? K - k0 : s->kb;
        const float *a = m->a + (m->ta ? k0 * lda : k0), *b = m->b + (m->tb ? k0 : k0 * ldb);
        float *y = c ? s->part + (c - 1) * M * N : m->y;
        cblas_sgemm(CblasRowMajor, m->ta ? CblasTrans : CblasNoTrans,
                    m->tb ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)kn,
                    m->alpha, a, (blasint)lda, b, (blasint)ldb,
                    c == 0 && m->accumulate ? 1.0f : 0.0f, y, (blasint)N);
    }
}

/* 1 when it ran Y that way; 0 when the shape is not one for it (or no scratch) */
static int mm_ksplit(const struct mm *m)
{
    if (m->nb != 1 || m->M < 2 || m->N < 2 || m->M > BLOCK || m->N > BLOCK ||
        m->K < 2 * KBLOCK)
        return 0;
    struct ksplit s = {m, NULL, KBLOCK, 0};
    if (m->K > KSPLIT_MAX * KBLOCK)
        s.kb = (m->K + KSPLIT_MAX - 1) / KSPLIT_MAX;
    s.nk = (m->K + s.kb - 1) / s.kb;
    int64_t mn = m->M * m->N;
    s.part = malloc((size_t)((s.nk - 1) * mn) * sizeof *s.part);
    if (!s.part)
        return 0;
    cpu_parallel(s.nk, 1, k_items, &s);
    for (int64_t c = 1; c < s.nk; c++) {
        const float *p = s.part + (c - 1) * mn;
        for (int64_t i = 0; i < mn; i++)
            m->y[i] += p[i];
    }
    free(s.part);
    return 1;
}

static void mm_run(const struct mm *m)
{
    int64_t rows = m->nb * m->M, N = m->N, K = m->K;
    if (rows == 0 || N == 0)
        return;
    if (K == 0) { /* op(A)op(B) is all zeros */
        if (!m->accumulate)
            memset(m->y, 0, (size_t)(rows * N) * sizeof *m->y);
        return;
    }
    if (K <= DIRECT_MAX_K || m->M * N * K <= DIRECT_MAX_MNK) {
        cpu_parallel(rows, 1 + GRAIN_FLOPS / (N * K), direct_rows, (void *)m);
        return;
    }
    if (mm_ksplit(m))
        return;
    int64_t len = m->M >= N ? m->M : N, nblk = (len + BLOCK - 1) / BLOCK;
    int64_t per_item = (len < BLOCK ? len : BLOCK) * (m->M >= N ? N : m->M) * K;
    cpu_parallel(m->nb * nblk, 1 + 8 * GRAIN_FLOPS / per_item, blas_items, (void *)m);
}

/* OpenBLAS takes 32-bit sizes and leading dimensions (M·N is never one) */
static int blas_sized(const struct mm *m)
{
    return m->M <= INT32_MAX && m->N <= INT32_MAX && m->K <= INT32_MAX;
}

/* A's batch strides equal the contiguous strides of Y's batch box and B is the
 * same matrix for every batch: the batch folds into M (one bigger GEMM) */
static void fold_batch(struct mm *m)
{
    int64_t cs[IR_MAX_RANK];
    ir_contig_strides(m->rb, m->dims, cs);
    if (m->ta || m->rb == 0)
        return;
    for (int i = 0; i < m->rb; i++)
        if (m->dims[i] != 1 && (m->bstr[i] != 0 || m->astr[i] != cs[i] * m->M * m->K))
            return;
    m->M *= m->nb;
    m->nb = 1;
    m->rb = 0;
}

/* Y (batch..., M, N) = A (batch..., M, K) @ B (batch..., K, N); batch dims
 * broadcast, 1-D operands promoted as numpy does (already reflected in Y) */
CPU_KERNEL(MatMul)
{
    const struct ir_tensor *ta = cpu_in(g, n, 0), *tb = cpu_in(g, n, 1), *ty = cpu_out(g, n, 0);
    if (ta->dtype != IR_F32 || tb->dtype != IR_F32 || !ty || ty->dtype != IR_F32)
        return CPU_DELEGATE;
    if (!out[0])
        return ST_OK;
    struct ir_matmul_view v;
    ir_matmul_view(n, ta, tb, ty, &v);
    struct mm m = {.alpha = 1.0f, .a = in[0], .b = in[1], .y = out[0], .nb = v.nb, .M = v.M,
                   .N = v.N, .K = v.K, .rb = v.rb, .ta = v.ta, .tb = v.tb};
    memcpy(m.dims, v.dims, sizeof m.dims);
    memcpy(m.astr, v.astr, sizeof m.astr);
    memcpy(m.bstr, v.bstr, sizeof m.bstr);
    fold_batch(&m);
    if (!blas_sized(&m))
        return CPU_DELEGATE;
    mm_run(&m);
    return ST_OK;
}

/* Y = beta * C broadcast to (M, N); float32 like the rest of the target */
static void fill_c(float *y, int64_t M, int64_t N, const struct ir_tensor *tc, const float *c,
                   float beta)
{
    int64_t cs[2] = {0, 0};
    int64_t two[2] = {M, N};
    ir_broadcast_strides(tc->rank, tc->dims, 2, two, cs);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            y[i * N + j] = beta * c[i * cs[0] + j * cs[1]];
}

/* Y (M, N) = alpha * op(A) @ op(B) + beta * C, C broadcast to (M, N) */
CPU_KERNEL(Gemm)
{
    const struct ir_tensor *ta = cpu_in(g, n, 0), *tb = cpu_in(g, n, 1), *tc = cpu_in(g, n, 2);
    const struct ir_tensor *ty = cpu_out(g, n, 0);
    if (ta->dtype != IR_F32 || tb->dtype != IR_F32 || !ty || ty->dtype != IR_F32 ||
        (tc && tc->dtype != IR_F32))
        return CPU_DELEGATE;
    if (!out[0])
        return ST_OK;
    struct ir_gemm_view v;
    ir_gemm_view(n, ta, ty, &v);
    struct mm m = {.a = in[0], .b = in[1], .y = out[0], .nb = 1, .ta = v.ta, .tb = v.tb,
                   .alpha = v.alpha, .M = v.M, .N = v.N, .K = v.K};
    float beta = v.beta;
    m.accumulate = tc && in[2] && beta != 0.0f;
    if (!blas_sized(&m))
        return CPU_DELEGATE;
    if (m.accumulate)
        fill_c(m.y, m.M, m.N, tc, in[2], beta);
    mm_run(&m);
    return ST_OK;
}

#endif /* PDC_HAVE_BLAS */
