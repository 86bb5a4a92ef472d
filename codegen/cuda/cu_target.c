/* cu_target.c — the CUDA target (target.h cg_cuda): one GPU, one stream.
 *
 * Buffers are device memory (the program's activation block is one allocation);
 * every node runs as the launches cu_lower.c makes of it (cu_kernels.cu, cuBLAS for
 * GEMMs), every fused group as the emitter's PTX, loaded with cudaLibraryLoadData
 * (the driver is reached through cudart, which loads it at run time: nothing here
 * links libcuda). Work is queued on one stream; only reads back to the host wait,
 * so a training step runs without a host round trip until its loss is read.
 *
 * COMPILED AND LINKED HERE, NEVER RUN HERE: no GPU was available where this was
 * written. Its lowering is what cg_cuda_emu runs on the host; what only a device
 * can check is this file's CUDA calls and cu_kernels.cu's synchronisation. */
#if defined PDC_HAVE_CUDA && defined PDC_HAVE_LLVM

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "../fuse.h"
#include "../llvm/llvm_impl.h"
#include "../target.h"
#include "cu_lower.h"

int cu_dev_launch(const struct cu_launch *l, void *const *src, void *const *dst, cudaStream_t st);
int cu_dev_uniform(float *y, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                   uint64_t offset, cudaStream_t st);
int cu_dev_take_error(cudaStream_t st);
int cu_dev_error_async(int *flag, cudaStream_t st);
int cu_dev_kl(const struct cu_launch *l, void *const *in, void *const *out, cudaStream_t st);
const char *cu_probe(void);

#define MAX_CALLS 4096

static struct {
    pthread_once_t once;
    const char *why; /* NULL: usable */
    char msg[512];
    int sm;          /* 90 on compute capability 9.x and later, else 80 */
    cudaStream_t stream;
    cublasHandle_t blas;
} cu = {PTHREAD_ONCE_INIT, NULL, {0}, 80, NULL, NULL};

/* cuBLAS is opened when a device is set up, not linked: loading libcublas and
 * libcublasLt costs ~210 MiB of resident memory in every process (their relocations),
 * which every CPU run of a CUDA-enabled build paid for nothing. Three entry points. */
static struct {
    __typeof__(cublasCreate_v2) *create;
    __typeof__(cublasSetStream_v2) *set_stream;
    __typeof__(cublasSgemmStridedBatched_64) *sgemm;
} blas;

static int load_cublas(char *msg, size_t cap)
{
    char name[64];
    snprintf(name, sizeof name, "libcublas.so.%d", CUBLAS_VER_MAJOR);
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
#ifdef PDC_CUBLAS_DIR /* the toolkit's, found at configure time: often not on the path */
    if (!h) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", PDC_CUBLAS_DIR, name);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
#endif
    if (!h) {
        const char *e = dlerror();
        snprintf(msg, cap, "cuBLAS could not be loaded (%s): %s", name, e ? e : "?");
        return -1;
    }
    blas.create = (__typeof__(blas.create))dlsym(h, "cublasCreate_v2");
    blas.set_stream = (__typeof__(blas.set_stream))dlsym(h, "cublasSetStream_v2");
    blas.sgemm = (__typeof__(blas.sgemm))dlsym(h, "cublasSgemmStridedBatched_64");
    if (blas.create && blas.set_stream && blas.sgemm)
        return 0;
    snprintf(msg, cap, "%s lacks cublasCreate_v2, cublasSetStream_v2 or "
             "cublasSgemmStridedBatched_64: a cuBLAS older than this build's", name);
    return -1;
}

/* what is missing, in the words a user can act on */
static void probe_once(void)
{
    int drv = 0, rt = 0, count = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    cudaError_t e = cudaGetDeviceCount(&count);
    if (drv == 0)
        snprintf(cu.msg, sizeof cu.msg, "no NVIDIA driver is installed (libcuda.so.1 was not "
                 "found)");
    else if (e == cudaErrorInsufficientDriver || drv / 1000 < rt / 1000)
        snprintf(cu.msg, sizeof cu.msg, "the NVIDIA driver supports CUDA %d.%d, and this pdc "
                 "was built with CUDA %d.%d: update the driver", drv / 1000, drv % 1000 / 10,
                 rt / 1000, rt % 1000 / 10);
    else if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0))
        snprintf(cu.msg, sizeof cu.msg, "no CUDA device was found (driver CUDA %d.%d)",
                 drv / 1000, drv % 1000 / 10);
    else if (e != cudaSuccess)
        snprintf(cu.msg, sizeof cu.msg, "CUDA could not start: %s", cudaGetErrorString(e));
    if (cu.msg[0]) {
        cu.why = cu.msg;
        return;
    }
    struct cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess) {
        snprintf(cu.msg, sizeof cu.msg, "device 0 could not be queried: %s", cudaGetErrorString(e));
        cu.why = cu.msg;
        return;
    }
    if (p.major < 8) {
        snprintf(cu.msg, sizeof cu.msg, "device 0 (%.200s) has compute capability %d.%d; pdc's "
                 "kernels need 8.0 or newer", p.name, p.major, p.minor);
        cu.why = cu.msg;
        return;
    }
    cu.sm = p.major >= 9 ? 90 : 80;
    if (load_cublas(cu.msg, sizeof cu.msg)) {
        cu.why = cu.msg;
        return;
    }
    if (cudaSetDevice(0) != cudaSuccess || cudaStreamCreate(&cu.stream) != cudaSuccess ||
        blas.create(&cu.blas) != CUBLAS_STATUS_SUCCESS ||
        blas.set_stream(cu.blas, cu.stream) != CUBLAS_STATUS_SUCCESS) {
        snprintf(cu.msg, sizeof cu.msg, "device 0 (%.200s) could not be set up for pdc (a stream "
                 "and a cuBLAS handle)", p.name);
        cu.why = cu.msg;
    }
}

const char *cu_probe(void)
{
    pthread_once(&cu.once, probe_once);
    return cu.why;
}

/* ---- memory ------------------------------------------------------------------ */

static void *m_alloc(size_t n)
{
    void *p = NULL;
    return cudaMalloc(&p, n) == cudaSuccess ? p : NULL;
}

static void m_release(void *p)
{
    cudaStreamSynchronize(cu.stream); /* queued work may still use it */
    cudaFree(p);
}

/* Uploads go through a ring of pinned staging buffers, so put returns at once and
 * the host prepares the next batch while the device computes; a slot is reused
 * when its copy is done. Big ones (constants, once) are copied synchronously. */
#define RING 8
#define RING_MAX (1u << 20)

static struct slot {
    void *p;
    size_t cap;
    cudaEvent_t ev;
    int busy;
} ring[RING];
static unsigned ring_next;

static int m_put(void *dst, const void *src, size_t n)
{
    if (n > RING_MAX)
        return cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cu.stream) != cudaSuccess ||
               cudaStreamSynchronize(cu.stream) != cudaSuccess;
    struct slot *s = &ring[ring_next++ % RING];
    if (s->busy && cudaEventSynchronize(s->ev) != cudaSuccess)
        return 1;
    if (!s->ev && cudaEventCreateWithFlags(&s->ev, cudaEventDisableTiming) != cudaSuccess)
        return 1;
    if (s->cap < n) {
        cudaFreeHost(s->p);
        s->p = NULL;
        s->cap = 0;
        if (cudaMallocHost(&s->p, RING_MAX) != cudaSuccess)
            return 1;
        s->cap = RING_MAX;
    }
    memcpy(s->p, src, n);
    s->busy = 1;
    return cudaMemcpyAsync(dst, s->p, n, cudaMemcpyHostToDevice, cu.stream) != cudaSuccess ||
           cudaEventRecord(s->ev, cu.stream) != cudaSuccess;
}

/* the one early read in flight (rt_train's loss): pinned bytes, the Gather flag
 * copied behind them, and the event after both */
static unsigned char *early;
static cudaEvent_t early_ev;

static const char gather_msg[] = "pdc: cuda: a Gather met an index outside its table (a sequence "
                                 "longer than the model's positions, or an id beyond its "
                                 "vocabulary?)\n";

static int m_read_start(const void *src, size_t n)
{
    if (!early && cudaMallocHost((void **)&early, 64 + sizeof(int)) != cudaSuccess)
        return 1;
    if (!early_ev && cudaEventCreateWithFlags(&early_ev, cudaEventDisableTiming) != cudaSuccess)
        return 1;
    return cudaMemcpyAsync(early, src, n, cudaMemcpyDeviceToHost, cu.stream) != cudaSuccess ||
           cu_dev_error_async((int *)(void *)(early + 64), cu.stream) ||
           cudaEventRecord(early_ev, cu.stream) != cudaSuccess;
}

static int m_read_finish(void *dst, size_t n)
{
    int flag;
    if (cudaEventSynchronize(early_ev) != cudaSuccess)
        return 1;
    memcpy(dst, early, n);
    memcpy(&flag, early + 64, sizeof flag);
    if (flag)
        fputs(gather_msg, stderr);
    return flag != 0;
}

/* a read waits for the stream; a Gather that met a bad index fails it */
static int m_get(void *dst, const void *src, size_t n)
{
    if (cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cu.stream) != cudaSuccess)
        return 1;
    int bad = cu_dev_take_error(cu.stream);
    if (bad > 0)
        fputs(gather_msg, stderr);
    return bad != 0;
}

static int m_copy(void *dst, const void *src, size_t n)
{
    return cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, cu.stream) != cudaSuccess;
}

static int m_fill(void *dst, int byte, size_t n)
{
    return cudaMemsetAsync(dst, byte, n, cu.stream) != cudaSuccess;
}

static int m_uniform(float *dst, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                     uint64_t offset)
{
    return cu_dev_uniform(dst, n, seed, step, stream, offset, cu.stream);
}

static const struct cg_mem cuda_mem = {
    .host_addressable = 0,
    .alloc = m_alloc,
    .release = m_release,
    .put = m_put,
    .get = m_get,
    .copy = m_copy,
    .fill = m_fill,
    .read_start = m_read_start,
    .read_finish = m_read_finish,
    .uniform = m_uniform,
};

/* ---- nodes ------------------------------------------------------------------- */

static int gemm(const struct cu_gemm *m, const float *a, const float *b, float *y)
{
    static struct cu_sgemm_call calls[MAX_CALLS]; /* one stream, one node at a time */
    int nc = cu_gemm_calls(m, calls, MAX_CALLS);
    if (nc < 0)
        return ST_ERR_UNSUPPORTED;
    for (int i = 0; i < nc; i++) {
        const struct cu_sgemm_call *c = &calls[i];
        /* cuBLAS's first operand is B (cu_gemm_calls) */
        cublasStatus_t s = blas.sgemm(
            cu.blas, c->transa ? CUBLAS_OP_T : CUBLAS_OP_N, c->transb ? CUBLAS_OP_T : CUBLAS_OP_N,
            c->m, c->n, c->k, &c->alpha, b + c->a_off, c->lda, c->sa, a + c->b_off, c->ldb, c->sb,
            &c->beta, y + c->c_off, c->ldc, c->sc, c->count);
        if (s != CUBLAS_STATUS_SUCCESS)
            return ST_ERR_DEVICE;
    }
    return ST_OK;
}

static int cuda_launch_one(const struct cu_launch *l, void *const *src, void *const *dst,
                           void *const *in, void *const *out)
{
    if (l->kind == CU_K_GEMM)
        return gemm(&l->u.gemm, src[0], src[1], dst[0]);
    if (l->kind == CU_K_KL || l->kind == CU_K_KLGRAD)
        return cu_dev_kl(l, in, out, cu.stream) ? ST_ERR_DEVICE : ST_OK;
    return cu_dev_launch(l, src, dst, cu.stream) ? ST_ERR_DEVICE : ST_OK;
}

static int cuda_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                    void *const *out)
{
    return cu_run_node(g, n, in, out, cuda_launch_one);
}

static int cuda_run_prepared(const void *state, void *const *in, void *const *out)
{
    return cu_run_prepared(state, in, out, cuda_launch_one);
}

/* ---- fused groups: the emitter's PTX ------------------------------------------ */

/* A program's fused groups are one PTX module (kernels pdc_k0, pdc_k1, ...): one
 * LLVM run and one load instead of one per group; its kernels share it. */
struct module {
    cudaLibrary_t lib;
    uint32_t refs;
};

struct cg_kernel {
    struct module *mod;
    cudaKernel_t fn;
    int64_t numel;
    uint32_t nbufs;
};

static void module_unref(struct module *m)
{
    if (m && --m->refs == 0) {
        cudaStreamSynchronize(cu.stream);
        cudaLibraryUnload(m->lib);
        free(m);
    }
}

static int cuda_compile_many(const struct ir_graph *g, const struct cg_group *const *grp,
                             uint32_t n, struct cg_kernel **k, struct diag *d)
{
    char *ptx = NULL, name[32];
    int st = lk_ptx(g, grp, (int)n, cu.sm, &ptx, d);
    struct module *m = st ? NULL : calloc(1, sizeof *m);
    if (!st && !m)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    cudaError_t e = st ? cudaSuccess : cudaLibraryLoadData(&m->lib, ptx, NULL, NULL, 0, NULL,
                                                           NULL, 0);
    free(ptx);
    if (!st && e != cudaSuccess)
        st = diag_set(d, ST_ERR_DEVICE, "loading the program's PTX (%u kernels) failed: %s", n,
                      cudaGetErrorString(e));
    if (st) {
        free(m);
        return st;
    }
    m->refs = 1; /* ours until every kernel holds it */
    uint32_t i = 0;
    for (; !st && i < n; i++) {
        snprintf(name, sizeof name, "pdc_k%u", i);
        k[i] = calloc(1, sizeof *k[i]);
        if (!k[i] || (e = cudaLibraryGetKernel(&k[i]->fn, m->lib, name)) != cudaSuccess) {
            st = k[i] ? diag_set(d, ST_ERR_DEVICE, "kernel %s of the program's PTX: %s", name,
                                 cudaGetErrorString(e))
                      : diag_set(d, ST_ERR_NOMEM, "out of memory");
            free(k[i]);
            break;
        }
        k[i]->mod = m;
        m->refs++;
        k[i]->numel = ir_numel(&g->t[g->n[grp[i]->nodes[0]].out[0]]);
        k[i]->nbufs = grp[i]->n_in + grp[i]->n_out;
    }
    for (uint32_t j = 0; st && j < i; j++) { /* all or nothing */
        module_unref(k[j]->mod);
        free(k[j]);
    }
    module_unref(m);
    return st;
}

static int cuda_compile(const struct ir_graph *g, const struct cg_group *grp, struct cg_kernel **k,
                        struct diag *d)
{
    return cuda_compile_many(g, &grp, 1, k, d);
}

/* the PTX kernel's parameters: its buffers, then lo and hi (llvm_impl.h) */
static int cuda_launch(struct cg_kernel *k, void *const *bufs)
{
    void *args[CG_GROUP_MAX_BUFS + 2];
    int64_t lo = 0, hi = k->numel;
    for (uint32_t i = 0; i < k->nbufs; i++)
        args[i] = (void *)&bufs[i];
    args[k->nbufs] = &lo;
    args[k->nbufs + 1] = &hi;
    int64_t blocks = (k->numel + CU_BLOCK - 1) / CU_BLOCK;
    if (blocks > 0x7fffffff)
        return ST_ERR_UNSUPPORTED;
    dim3 grid = {(unsigned)(blocks ? blocks : 1), 1, 1}, block = {CU_BLOCK, 1, 1};
    return cudaLaunchKernel((const void *)k->fn, grid, block, args, 0, cu.stream) == cudaSuccess
               ? ST_OK
               : ST_ERR_DEVICE;
}

static void cuda_release(struct cg_kernel *k)
{
    module_unref(k->mod);
    free(k);
}

const struct cg_target cg_cuda = {
    .name = "cuda",
    .supports = cu_supports,
    .run = cuda_run,
    .prepare = cu_prepare,
    .run_prepared = cuda_run_prepared,
    .compile = cuda_compile,
    .compile_many = cuda_compile_many,
    .launch = cuda_launch,
    .release = cuda_release,
    .mem = &cuda_mem,
    .min_fuse = 1,
};

#endif /* PDC_HAVE_CUDA && PDC_HAVE_LLVM */
