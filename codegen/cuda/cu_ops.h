/* cu_ops.h — the CUDA target's kernels as data: every node a GPU runs outside the
 * emitter's elementwise kernels is lowered (cu_lower.c) to a few launches of a
 * handful of generic kernels, each described by one of the structs below.
 *
 * This header is C and CUDA at once: the per-element work (where element i of a
 * strided copy reads and writes, where a reduction's j-th input lies) is written
 * once, here, and called both by the device kernels (cu_kernels.cu) and by their
 * host emulation (cu_emu.c), so what the tests run on the host is the index
 * logic the GPU runs. The launch shapes are fixed (CU_BLOCK threads; a block per
 * output of a reduction or per row of a softmax), and the emulation walks the
 * same threads and the same tree of partial results. */
#ifndef PDC_CU_OPS_H
#define PDC_CU_OPS_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define CU_HD __host__ __device__ static inline
#else
#define CU_HD static inline
#endif

#define CU_BLOCK 256 /* threads per block of every generic kernel */
#define CU_RANK 8    /* IR_MAX_RANK */

/* y[yoff + Σ c_k·ys_k] = scale · x[xoff + Σ c_k·xs_k] for every index c of the box
 * dims: a transpose, a broadcast (stride 0), a slice (strides times steps), one
 * input of a concat, a reshape (contiguous both sides). Element size esize bytes;
 * scale applies to float32 only (1: a plain copy). */
struct cu_map {
    int r, esize;
    int64_t n; /* elements in the box */
    int64_t dims[CU_RANK], xs[CU_RANK], ys[CU_RANK];
    int64_t xoff, yoff;
    float scale;
};

CU_HD void cu_map_at(const struct cu_map *m, int64_t i, int64_t *xo, int64_t *yo)
{
    int64_t x = m->xoff, y = m->yoff;
    for (int k = m->r - 1; k >= 0; k--) {
        int64_t c = i % m->dims[k];
        i /= m->dims[k];
        x += c * m->xs[k];
        y += c * m->ys[k];
    }
    *xo = x;
    *yo = y;
}

/* y[o] (contiguous, n_out of them) = op over j < n_red of x[at(o) + at(j)]: the kept
 * box (dims_o, strides xs_o) and the reduced box (dims_r, xs_r); mean divides the
 * sum by n_red. One block per output: thread t folds j = t, t + CU_BLOCK, ... in
 * order, then the CU_BLOCK partials meet in a fixed tree. */
enum cu_red_kind { CU_RED_SUM, CU_RED_MEAN, CU_RED_MAX, CU_RED_MIN };

struct cu_reduce {
    int kind, ro, rr;
    int64_t n_out, n_red;
    int64_t dims_o[CU_RANK], xs_o[CU_RANK], dims_r[CU_RANK], xs_r[CU_RANK];
};

CU_HD int64_t cu_box_at(int r, const int64_t *dims, const int64_t *str, int64_t i)
{
    int64_t off = 0;
    for (int k = r - 1; k >= 0; k--) {
        off += (i % dims[k]) * str[k];
        i /= dims[k];
    }
    return off;
}

CU_HD float cu_red_init(int kind)
{
    return kind == CU_RED_MAX ? -INFINITY : kind == CU_RED_MIN ? INFINITY : 0.0f;
}

/* NaN wins a max or min, as in the reference */
CU_HD float cu_red_step(int kind, float a, float v)
{
    if (kind == CU_RED_SUM || kind == CU_RED_MEAN)
        return a + v;
    if (v != v || a != a)
        return v != v ? v : a;
    return kind == CU_RED_MAX ? (v > a ? v : a) : (v < a ? v : a);
}

CU_HD float cu_red_partial(const struct cu_reduce *r, const float *x, int64_t o, int t)
{
    int64_t base = cu_box_at(r->ro, r->dims_o, r->xs_o, o);
    float a = cu_red_init(r->kind);
    for (int64_t j = t; j < r->n_red; j += CU_BLOCK)
        a = cu_red_step(r->kind, a, x[base + cu_box_at(r->rr, r->dims_r, r->xs_r, j)]);
    return a;
}

/* a reduction shorter than a block: one thread per output folds it in order */
CU_HD float cu_red_serial(const struct cu_reduce *r, const float *x, int64_t o)
{
    int64_t base = cu_box_at(r->ro, r->dims_o, r->xs_o, o);
    float a = cu_red_init(r->kind);
    for (int64_t j = 0; j < r->n_red; j++)
        a = cu_red_step(r->kind, a, x[base + cu_box_at(r->rr, r->dims_r, r->xs_r, j)]);
    return a;
}

CU_HD float cu_red_final(const struct cu_reduce *r, float total)
{
    return r->kind == CU_RED_MEAN ? total / (float)r->n_red : total;
}

/* Row ops: x viewed as (outer, len, inner), a row is one (outer, inner) pair, its
 * element j at row_base + j·inner. Softmax along len; LayerNormalization (inner 1)
 * with a scale and optional bias of len elements and optional per-row mean and
 * 1/σ outputs. One block per row. */
enum cu_row_kind { CU_ROW_SOFTMAX, CU_ROW_LAYERNORM };

struct cu_rows {
    int kind;
    int64_t outer, len, inner;
    float eps;
};

CU_HD int64_t cu_row_base(const struct cu_rows *r, int64_t row)
{
    return (row / r->inner) * r->len * r->inner + row % r->inner;
}

/* thread t's share of a row statistic: the max of x, the sum of e^(x − c), the
 * sum of x, the sum of (x − c)² (the kinds below) over j = t, t + CU_BLOCK, ... */
enum cu_row_stat { CU_ST_MAX, CU_ST_SUMEXP, CU_ST_SUM, CU_ST_SUMSQ };

CU_HD float cu_row_partial(const struct cu_rows *r, const float *x, int64_t row, int t,
                           int stat, float c)
{
    const float *v = x + cu_row_base(r, row);
    float a = stat == CU_ST_MAX ? -INFINITY : 0.0f;
    for (int64_t j = t; j < r->len; j += CU_BLOCK) {
        float e = v[j * r->inner];
        if (stat == CU_ST_MAX)
            a = cu_red_step(CU_RED_MAX, a, e);
        else if (stat == CU_ST_SUMEXP)
            a += expf(e - c);
        else if (stat == CU_ST_SUM)
            a += e;
        else
            a += (e - c) * (e - c);
    }
    return a;
}

/* element j of a row from its statistics: softmax e^(x − max) / sum (a = max,
 * b = sum); layernorm (x − mean)·inv·scale_j + bias_j (a = mean, b = inv) */
CU_HD void cu_row_write(const struct cu_rows *r, const float *x, float *y, const float *scale,
                        const float *bias, int64_t row, int64_t j, float a, float b)
{
    int64_t at = cu_row_base(r, row) + j * r->inner;
    if (r->kind == CU_ROW_SOFTMAX) {
        y[at] = expf(x[at] - a) / b;
        return;
    }
    float v = (x[at] - a) * b * scale[j];
    y[at] = bias ? v + bias[j] : v;
}

/* a tree sum of CU_BLOCK partials in place, the order the device kernel uses:
 * s[t] += s[t + h] for h = CU_BLOCK/2, ..., 1 */
CU_HD float cu_tree_host(float *s, int kind)
{
    for (int h = CU_BLOCK / 2; h > 0; h >>= 1)
        for (int t = 0; t < h; t++)
            s[t] = cu_red_step(kind, s[t], s[t + h]);
    return s[0];
}

/* CumSum along len of (outer, len, inner), one thread per line, in float */
struct cu_scan {
    int64_t outer, len, inner;
    int exclusive, reverse;
};

CU_HD void cu_scan_line(const struct cu_scan *s, const float *x, float *y, int64_t line)
{
    int64_t base = (line / s->inner) * s->len * s->inner + line % s->inner;
    float acc = 0.0f;
    for (int64_t t = 0; t < s->len; t++) {
        int64_t at = base + (s->reverse ? s->len - 1 - t : t) * s->inner;
        float v = x[at];
        if (!s->exclusive)
            acc += v;
        y[at] = acc;
        if (s->exclusive)
            acc += v;
    }
}

/* Gather along an axis: x as (outer, big, inner) elements of esize bytes, m
 * indices (int64 or int32) -> y as (outer, m, inner). An index outside
 * [-big, big) sets *bad and writes nothing for that element. */
struct cu_gather {
    int64_t outer, big, inner, m;
    int esize, idx64;
};

CU_HD int cu_gather_at(const struct cu_gather *g, const void *idx, int64_t i, int64_t *src)
{
    int64_t q = i % g->inner, j = (i / g->inner) % g->m, o = i / (g->inner * g->m);
    int64_t v = g->idx64 ? ((const int64_t *)idx)[j] : ((const int32_t *)idx)[j];
    if (v < -g->big || v >= g->big)
        return 0;
    if (v < 0)
        v += g->big;
    *src = (o * g->big + v) * g->inner + q;
    return 1;
}

/* Clip(x, lo, hi) for float32: x < lo -> lo, then > hi -> hi; NaN passes */
CU_HD float cu_clip(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* A batched GEMM in row-major terms: Y[b] (M, N) = alpha·op(A[b])·op(B[b]) (+ Y[b]
 * when accumulate: C was copied there first), b over the batch box dims with A and
 * B strides astr, bstr (0: broadcast) and Y contiguous. cu_gemm_calls turns it into
 * cuBLAS's column-major strided-batched calls (the host emulation runs the same
 * calls through a plain column-major sgemm). */
struct cu_gemm {
    int ta, tb, accumulate, rb;
    int64_t M, N, K, nb;
    float alpha;
    int64_t dims[CU_RANK], astr[CU_RANK], bstr[CU_RANK];
};

/* one cublasSgemmStridedBatched call: C(m×n, col-major) = alpha·op(A)op(B) + beta·C */
struct cu_sgemm_call {
    int transa, transb;
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc, count;
    float alpha, beta;
    int64_t a_off, b_off, c_off; /* elements from the operands' start */
};

/* ---- a node's launches (cu_lower.c) ---- */

enum cu_kind {
    CU_K_ZERO,   /* dst[0] = 0 (bytes) */
    CU_K_MAP,    /* dst[0] from src[0] (struct cu_map) */
    CU_K_REDUCE, /* dst[0] from src[0] */
    CU_K_ROWS,   /* softmax: src[0] -> dst[0]; layernorm: x, scale, bias? -> y, mean?, inv? */
    CU_K_SCAN,   /* dst[0] from src[0] */
    CU_K_GATHER, /* dst[0] from src[0] at the indices src[1] */
    CU_K_CLIP,   /* dst[0] from src[0], bounds src[1]?, src[2]? (one float each) */
    CU_K_GEMM,   /* dst[0] (+)= op(src[0]) op(src[1]) */
};

#define CU_MAX_LAUNCHES 32

struct cu_launch {
    int kind;
    int src[3], dst[3]; /* the node's input / output positions, -1: none */
    int64_t bytes;      /* CU_K_ZERO */
    int64_t n;          /* CU_K_CLIP: elements */
    union {
        struct cu_map map;
        struct cu_reduce red;
        struct cu_rows rows;
        struct cu_scan scan;
        struct cu_gather gat;
        struct cu_gemm gemm;
    } u;
};

struct cu_lowered {
    int n;
    struct cu_launch l[CU_MAX_LAUNCHES];
};

#endif
