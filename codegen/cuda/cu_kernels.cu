/* cu_kernels.cu — the CUDA target's generic kernels (cu_ops.h): strided copies,
 * reductions and row ops with the usual block patterns (a block per output or row,
 * CU_BLOCK partials in shared memory folded by a fixed tree), scans, gathers, Clip
 * and Philox. The per-element work is cu_ops.h's, the code the host emulation runs
 * (cu_emu.c); this file adds only the thread indexing and the synchronisation.
 * COMPILED HERE, NEVER RUN HERE: no GPU was available where this was written. */
#include <cuda_runtime.h>

#include "cu_ops.h"
#include "cu_philox.h"

#define MAX_GRID (1 << 20) /* blocks per launch; grid-stride loops cover the rest */

__device__ int cu_error_flag; /* a Gather index out of range since the last check */

static unsigned grid_for(int64_t n)
{
    int64_t b = (n + CU_BLOCK - 1) / CU_BLOCK;
    return (unsigned)(b < 1 ? 1 : b > MAX_GRID ? MAX_GRID : b);
}

static __device__ int64_t first_index(void) { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
static __device__ int64_t grid_stride(void) { return (int64_t)gridDim.x * blockDim.x; }

__global__ void k_map(struct cu_map m, const char *x, char *y)
{
    for (int64_t i = first_index(); i < m.n; i += grid_stride()) {
        int64_t xo, yo;
        cu_map_at(&m, i, &xo, &yo);
        if (m.esize == 4) {
            float v = ((const float *)x)[xo];
            ((float *)y)[yo] = m.scale != 1.0f ? m.scale * v : v;
        } else if (m.esize == 8)
            ((int64_t *)y)[yo] = ((const int64_t *)x)[xo];
        else
            for (int b = 0; b < m.esize; b++)
                y[yo * m.esize + b] = x[xo * m.esize + b];
    }
}

/* the fixed tree of cu_tree_host, across the block's threads */
static __device__ float block_tree(float *s, int kind)
{
    for (int h = CU_BLOCK / 2; h > 0; h >>= 1) {
        __syncthreads();
        if ((int)threadIdx.x < h)
            s[threadIdx.x] = cu_red_step(kind, s[threadIdx.x], s[threadIdx.x + h]);
    }
    __syncthreads();
    float r = s[0];
    __syncthreads(); /* s is reused by the caller's next statistic */
    return r;
}

__global__ void k_reduce_block(struct cu_reduce r, const float *x, float *y)
{
    __shared__ float part[CU_BLOCK];
    for (int64_t o = blockIdx.x; o < r.n_out; o += gridDim.x) {
        part[threadIdx.x] = cu_red_partial(&r, x, o, (int)threadIdx.x);
        float total = block_tree(part, r.kind);
        if (threadIdx.x == 0)
            y[o] = cu_red_final(&r, total);
    }
}

__global__ void k_reduce_serial(struct cu_reduce r, const float *x, float *y)
{
    for (int64_t o = first_index(); o < r.n_out; o += grid_stride())
        y[o] = cu_red_final(&r, cu_red_serial(&r, x, o));
}

static __device__ float row_stat(const struct cu_rows *r, const float *x, int64_t row, int stat,
                                 float c, float *part)
{
    part[threadIdx.x] = cu_row_partial(r, x, row, (int)threadIdx.x, stat, c);
    return block_tree(part, stat == CU_ST_MAX ? CU_RED_MAX : CU_RED_SUM);
}

__global__ void k_rows(struct cu_rows r, const float *x, const float *scale, const float *bias,
                       float *y, float *mean, float *inv)
{
    __shared__ float part[CU_BLOCK];
    for (int64_t row = blockIdx.x; row < r.outer * r.inner; row += gridDim.x) {
        float a, b;
        if (r.kind == CU_ROW_SOFTMAX) {
            a = row_stat(&r, x, row, CU_ST_MAX, 0.0f, part);
            b = row_stat(&r, x, row, CU_ST_SUMEXP, a, part);
        } else {
            a = row_stat(&r, x, row, CU_ST_SUM, 0.0f, part) / (float)r.len;
            b = 1.0f / sqrtf(row_stat(&r, x, row, CU_ST_SUMSQ, a, part) / (float)r.len + r.eps);
            if (threadIdx.x == 0 && mean)
                mean[row] = a;
            if (threadIdx.x == 0 && inv)
                inv[row] = b;
        }
        for (int64_t j = threadIdx.x; j < r.len; j += CU_BLOCK)
            cu_row_write(&r, x, y, scale, bias, row, j, a, b);
    }
}

__global__ void k_scan(struct cu_scan s, const void *x, void *y)
{
    for (int64_t i = first_index(); i < s.outer * s.inner; i += grid_stride())
        cu_scan_line(&s, x, y, i);
}

__global__ void k_gather(struct cu_gather g, const char *x, const void *idx, char *y)
{
    int64_t n = g.outer * g.m * g.inner;
    for (int64_t i = first_index(); i < n; i += grid_stride()) {
        int64_t s;
        if (!cu_gather_at(&g, idx, i, &s)) {
            atomicOr(&cu_error_flag, 1);
            continue;
        }
        for (int b = 0; b < g.esize; b++)
            y[i * g.esize + b] = x[s * g.esize + b];
    }
}

__global__ void k_clip(int64_t n, const float *x, const float *lo, const float *hi, float *y)
{
    float l = lo ? *lo : -INFINITY, h = hi ? *hi : INFINITY;
    for (int64_t i = first_index(); i < n; i += grid_stride())
        y[i] = cu_clip(x[i], l, h);
}

__global__ void k_uniform(float *y, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                          uint64_t offset)
{
    for (int64_t i = first_index(); i < n; i += grid_stride())
        y[i] = cu_philox_uniform(seed, step, stream, offset + (uint64_t)i);
}

__global__ void k_ew(struct cu_ew e, const void *a, const void *b, const void *c, void *y)
{
    const void *x[3] = {a, b, c};
    for (int64_t i = first_index(); i < e.n; i += grid_stride())
        cu_ew_at(&e, x, y, i);
}

__global__ void k_kl(struct cu_kl k, const float *ht, const float *hm, const float *w,
                     const float *b, float *kl, float *lse)
{
    __shared__ float part[CU_BLOCK];
    for (int64_t r = blockIdx.x; r < k.rows; r += gridDim.x) {
        const float *t = ht + r * k.D, *m = hm + r * k.D;
        float mx[2] = {0.0f, 0.0f}, s[3], st[3];
        for (int pass = 0; pass < 2; pass++) {
            cu_kl_partial(&k, t, m, w, b, pass, mx, (int)threadIdx.x, st);
            for (int q = 0; q < 3; q++) {
                part[threadIdx.x] = st[q];
                s[q] = block_tree(part, pass ? CU_RED_SUM : CU_RED_MAX);
            }
            if (!pass) {
                mx[0] = s[0];
                mx[1] = s[1];
            }
        }
        if (threadIdx.x == 0) {
            float lt = mx[0] + logf(s[0]), lm = mx[1] + logf(s[1]);
            kl[r] = s[2] / s[0] - lt + lm;
            if (lse) {
                lse[2 * r] = lt;
                lse[2 * r + 1] = lm;
            }
        }
    }
}

__global__ void k_klgrad(struct cu_kl k, const float *dkl, const float *lse, const float *ht,
                         const float *hm, const float *w, const float *b, float *dhm)
{
    __shared__ float cs[CU_BLOCK];
    for (int64_t r = blockIdx.x; r < k.rows; r += gridDim.x) {
        const float *t = ht + r * k.D, *m = hm + r * k.D;
        float acc[CU_KL_DPT] = {0.0f};
        for (int64_t c0 = 0; c0 < k.V; c0 += CU_BLOCK) {
            int64_t v = c0 + threadIdx.x;
            cs[threadIdx.x] = v < k.V ? cu_kl_coef(&k, t, m, w, b, lse + 2 * r, dkl[r], v) : 0.0f;
            __syncthreads();
            for (int q = 0; q < CU_KL_DPT; q++) {
                int64_t d = threadIdx.x + (int64_t)q * CU_BLOCK;
                for (int64_t j = 0; d < k.D && j < CU_BLOCK && c0 + j < k.V; j++)
                    acc[q] += cs[j] * cu_kl_w(&k, w, d, c0 + j);
            }
            __syncthreads();
        }
        for (int q = 0; q < CU_KL_DPT; q++) {
            int64_t d = threadIdx.x + (int64_t)q * CU_BLOCK;
            if (d < k.D)
                dhm[r * k.D + d] = acc[q];
        }
    }
}

__global__ void k_ein(struct cu_ein e, const float *x0, const float *x1, float *y)
{
    for (int64_t o = first_index(); o < e.n_out; o += grid_stride())
        y[o] = cu_ein_at(&e, x0, x1, o);
}

__global__ void k_topk(const float *x, int64_t n, int64_t k, float *y)
{
    for (int64_t i = first_index(); i < n; i += grid_stride())
        y[i] = cu_topk_at(x, n, k, i);
}

__global__ void k_conv(struct cu_conv q, int which, int64_t n, const float *a, const float *b,
                       const float *c, float *y)
{
    for (int64_t i = first_index(); i < n; i += grid_stride())
        y[i] = cu_win_at(&q, which, a, b, c, i);
}

/* ---- entry points for cu_target.c (C) ---------------------------------------- */

extern "C" int cu_dev_launch(const struct cu_launch *l, void *const *src, void *const *dst,
                             cudaStream_t st)
{
    switch (l->kind) {
    case CU_K_ZERO:
        return cudaMemsetAsync(dst[0], 0, (size_t)l->bytes, st) != cudaSuccess;
    case CU_K_MAP:
        k_map<<<grid_for(l->u.map.n), CU_BLOCK, 0, st>>>(l->u.map, (const char *)src[0],
                                                          (char *)dst[0]);
        break;
    case CU_K_REDUCE:
        if (l->u.red.n_out == 0)
            return 0;
        if (l->u.red.n_red < CU_BLOCK)
            k_reduce_serial<<<grid_for(l->u.red.n_out), CU_BLOCK, 0, st>>>(
                l->u.red, (const float *)src[0], (float *)dst[0]);
        else
            k_reduce_block<<<(unsigned)(l->u.red.n_out < MAX_GRID ? l->u.red.n_out : MAX_GRID),
                             CU_BLOCK, 0, st>>>(l->u.red, (const float *)src[0], (float *)dst[0]);
        break;
    case CU_K_ROWS: {
        int64_t rows = l->u.rows.outer * l->u.rows.inner;
        if (rows == 0)
            return 0;
        k_rows<<<(unsigned)(rows < MAX_GRID ? rows : MAX_GRID), CU_BLOCK, 0, st>>>(
            l->u.rows, (const float *)src[0], (const float *)src[1], (const float *)src[2],
            (float *)dst[0], (float *)dst[1], (float *)dst[2]);
        break;
    }
    case CU_K_SCAN:
        k_scan<<<grid_for(l->u.scan.outer * l->u.scan.inner), CU_BLOCK, 0, st>>>(
            l->u.scan, src[0], dst[0]);
        break;
    case CU_K_GATHER:
        k_gather<<<grid_for(l->u.gat.outer * l->u.gat.m * l->u.gat.inner), CU_BLOCK, 0, st>>>(
            l->u.gat, (const char *)src[0], src[1], (char *)dst[0]);
        break;
    case CU_K_CLIP:
        k_clip<<<grid_for(l->n), CU_BLOCK, 0, st>>>(l->n, (const float *)src[0],
                                                    (const float *)src[1], (const float *)src[2],
                                                    (float *)dst[0]);
        break;
    case CU_K_EIN:
        k_ein<<<grid_for(l->u.ein.n_out), CU_BLOCK, 0, st>>>(l->u.ein, (const float *)src[0],
                                                             (const float *)src[1], (float *)dst[0]);
        break;
    case CU_K_TOPK:
        k_topk<<<grid_for(l->n), CU_BLOCK, 0, st>>>((const float *)src[0], l->n, l->bytes,
                                                    (float *)dst[0]);
        break;
    case CU_K_CONV:
        k_conv<<<grid_for(l->n), CU_BLOCK, 0, st>>>(l->u.conv, (int)l->bytes, l->n,
                                                    (const float *)src[0], (const float *)src[1],
                                                    (const float *)src[2], (float *)dst[0]);
        break;
    case CU_K_EW:
        k_ew<<<grid_for(l->u.ew.n), CU_BLOCK, 0, st>>>(l->u.ew, src[0], src[1], src[2], dst[0]);
        break;
    default:
        return 1; /* GEMMs go to cuBLAS, the KL kernels through cu_dev_kl (cu_target.c) */
    }
    return cudaGetLastError() != cudaSuccess;
}

/* ChunkedKL / ChunkedKLGrad with the node's own operands (cu_lower.h CU_K_KL) */
extern "C" int cu_dev_kl(const struct cu_launch *l, void *const *in, void *const *out,
                         cudaStream_t st)
{
    const struct cu_kl *k = &l->u.kl;
    unsigned grid = (unsigned)(k->rows < MAX_GRID ? k->rows : MAX_GRID);
    if (k->rows == 0)
        return 0;
    if (l->kind == CU_K_KL)
        k_kl<<<grid, CU_BLOCK, 0, st>>>(*k, (const float *)in[0], (const float *)in[1],
                                        (const float *)in[2],
                                        k->has_b ? (const float *)in[3] : NULL, (float *)out[0],
                                        (float *)out[1]);
    else
        k_klgrad<<<grid, CU_BLOCK, 0, st>>>(*k, (const float *)in[0], (const float *)in[1],
                                            (const float *)in[2], (const float *)in[3],
                                            (const float *)in[4],
                                            k->has_b ? (const float *)in[5] : NULL,
                                            (float *)out[0]);
    return cudaGetLastError() != cudaSuccess;
}

extern "C" int cu_dev_uniform(float *y, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                              uint64_t offset, cudaStream_t st)
{
    if (n > 0)
        k_uniform<<<grid_for(n), CU_BLOCK, 0, st>>>(y, n, seed, step, stream, offset);
    return cudaGetLastError() != cudaSuccess;
}

/* queue a copy of the Gather flag to host memory at *flag, and its reset, behind the
 * stream's work (flag must be pinned for the copy not to wait) */
extern "C" int cu_dev_error_async(int *flag, cudaStream_t st)
{
    void *sym;
    return cudaGetSymbolAddress(&sym, cu_error_flag) != cudaSuccess ||
           cudaMemcpyAsync(flag, sym, sizeof *flag, cudaMemcpyDeviceToHost, st) != cudaSuccess ||
           cudaMemsetAsync(sym, 0, sizeof *flag, st) != cudaSuccess;
}

/* the Gather flag since the last call, cleared (after the stream's work) */
extern "C" int cu_dev_take_error(cudaStream_t st)
{
    int flag = 0, zero = 0;
    int bad = cudaMemcpyFromSymbolAsync(&flag, cu_error_flag, sizeof flag, 0,
                                        cudaMemcpyDeviceToHost, st) != cudaSuccess;
    bad |= cudaMemcpyToSymbolAsync(cu_error_flag, &zero, sizeof zero, 0, cudaMemcpyHostToDevice,
                                   st) != cudaSuccess;
    bad |= cudaStreamSynchronize(st) != cudaSuccess; /* always: flag and zero are ours */
    return bad ? -1 : flag;
}
