/* cpu_impl.h — private to the cpu target (codegen/cpu/), and to kl_chunked.c, the row
 * arithmetic the cpu ChunkedKL shares with the reference (for CPU_CLONES).
 *
 * The cpu target runs the hot float32 ops with its own kernels (OpenBLAS GEMMs,
 * elementwise loops the compiler vectorises, split across a small thread pool)
 * and hands every other node to cg_ref. A kernel that meets a case it does not
 * cover (another dtype, an odd attribute) returns CPU_DELEGATE and the target
 * runs cg_ref's kernel instead, so coverage can grow one case at a time. */
#ifndef PDC_CPU_IMPL_H
#define PDC_CPU_IMPL_H

#include "ir.h"

#define CPU_DELEGATE (-1) /* "not mine": run the node on the reference target */

/* Compute-bound loops get AVX-512 and AVX2 clones besides the baseline (SSE2),
 * chosen once at load time by the dynamic linker (ifunc); the transcendental
 * loops run 2.5x (AVX2) to 5x (AVX-512) faster than on SSE2. The cpu files are built
 * with -ffp-contract=off, so every clone does the same IEEE operations in the
 * same order and the results do not depend on which one runs. */
#if defined(__SANITIZE_THREAD__) /* GCC */
#define CPU_TSAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(thread_sanitizer)
#define CPU_TSAN 1
#endif
#endif
/* (ThreadSanitizer's runtime is not up yet when the loader runs ifunc resolvers;
 * x86-64-v3, AVX2 with FMA, is picked by the CPU's features, where an arch=<cpu> clone
 * would be picked by its model only) */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(CPU_TSAN)
#define CPU_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define CPU_CLONES
#endif
#define CPU_MAX_THREADS 256

#define CPU_KERNEL(name) \
    int cpu_##name(const struct ir_graph *g, const struct ir_node *n, void *const *in, \
                   void *const *out)

#include "cpu_pool.h" /* the thread pool */

/* ---- kernels --------------------------------------------------------------- */

/* cpu_gemm.c (only with OpenBLAS) */
CPU_KERNEL(MatMul);
CPU_KERNEL(Gemm);

/* cpu_elem.c: broadcasting binary ops and comparisons, Where */
CPU_KERNEL(Add);
CPU_KERNEL(Sub);
CPU_KERNEL(Mul);
CPU_KERNEL(Div);
CPU_KERNEL(Pow);
CPU_KERNEL(Max);
CPU_KERNEL(Min);
CPU_KERNEL(Sum);
CPU_KERNEL(Equal);
CPU_KERNEL(Less);
CPU_KERNEL(LessOrEqual);
CPU_KERNEL(Greater);
CPU_KERNEL(GreaterOrEqual);
CPU_KERNEL(Where);

/* cpu_unary.c: unary float32 ops and the squashing functions with their VJPs */
CPU_KERNEL(Relu);
CPU_KERNEL(Gelu);
CPU_KERNEL(Erf);
CPU_KERNEL(Exp);
CPU_KERNEL(Log);
CPU_KERNEL(Sqrt);
CPU_KERNEL(Sigmoid);
CPU_KERNEL(Tanh);
CPU_KERNEL(Neg);
CPU_KERNEL(Reciprocal);
CPU_KERNEL(LowerLeakyHard);
CPU_KERNEL(UpperLeakyHard);
CPU_KERNEL(LowerLeakyHardGrad);
CPU_KERNEL(UpperLeakyHardGrad);

/* cpu_tensor.c: data movement */
CPU_KERNEL(Transpose);
CPU_KERNEL(SliceGrad);
CPU_KERNEL(Cast);

/* cpu_reduce.c */
CPU_KERNEL(ReduceSum);
CPU_KERNEL(ReduceMean);

/* cpu_softmax.c */
CPU_KERNEL(Softmax);
CPU_KERNEL(LogSoftmax);

/* cpu_norm.c */
CPU_KERNEL(LayerNormalization);

/* cpu_kl.c (only with OpenBLAS) */
CPU_KERNEL(ChunkedKL);
CPU_KERNEL(ChunkedKLGrad);

static inline const struct ir_tensor *cpu_in(const struct ir_graph *g, const struct ir_node *n,
                                             uint32_t i)
{
    return i < n->n_in && n->in[i] != IR_NONE ? &g->t[n->in[i]] : NULL;
}

static inline const struct ir_tensor *cpu_out(const struct ir_graph *g, const struct ir_node *n,
                                              uint32_t k)
{
    return k < n->n_out && n->out[k] != IR_NONE ? &g->t[n->out[k]] : NULL;
}

#endif
