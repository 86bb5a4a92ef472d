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

__global__ void k_scan(struct cu_scan s, const float *x, float *y)
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
            l->u.scan, (const float *)src[0], (float *)dst[0]);
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
    default:
        return 1; /* GEMMs go to cuBLAS (cu_target.c) */
    }
    return cudaGetLastError() != cudaSuccess;
}

extern "C" int cu_dev_uniform(float *y, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                              uint64_t offset, cudaStream_t st)
{
    if (n > 0)
        k_uniform<<<grid_for(n), CU_BLOCK, 0, st>>>(y, n, seed, step, stream, offset);
    return cudaGetLastError() != cudaSuccess;
}

/* the Gather flag since the last call, cleared (after the stream's work) */
extern "C" int cu_dev_take_error(cudaStream_t st)
{
    int flag = 0, zero = 0;
    if (cudaMemcpyFromSymbolAsync(&flag, cu_error_flag, sizeof flag, 0, cudaMemcpyDeviceToHost,
                                  st) != cudaSuccess ||
        cudaMemcpyToSymbolAsync(cu_error_flag, &zero, sizeof zero, 0, cudaMemcpyHostToDevice,
                                st) != cudaSuccess ||
        cudaStreamSynchronize(st) != cudaSuccess)
        return -1;
    return flag;
}
