/* cpu_target.c — the cpu target, first piece: hand-written float32 kernels for
 * the ops that dominate training (GEMMs through OpenBLAS, broadcasting
 * elementwise ops and comparisons, the unary activations, the squashing
 * functions and their VJPs, ReduceSum/ReduceMean, Transpose, Cast to and from
 * bool), threaded by a small pool (cpu_pool.c).
 *
 * Every other node, and every case a kernel declines (CPU_DELEGATE: another
 * dtype, an attribute it does not cover), runs on cg_ref's kernel. This is a
 * per-node fallback inside run(), not a selector: choosing a target per kernel
 * group comes with fusion (ARCHITECTURE.md, codegen selection), and the LLVM
 * fused kernels will replace most of what is here.
 *
 * Built without OpenBLAS (PDC_WITH_BLAS=OFF) the target still exists and
 * delegates everything to the reference, so callers need not care. */
#include <stdlib.h>
#include <string.h>

#include "../target.h"
#include "cpu_impl.h"

typedef int (*cpu_fn)(const struct ir_graph *, const struct ir_node *, void *const *,
                      void *const *);

static const cpu_fn cpu_table[IR_OP_COUNT] = {
#ifdef PDC_HAVE_BLAS
    [IR_OP_MatMul] = cpu_MatMul,
    [IR_OP_Gemm] = cpu_Gemm,
    [IR_OP_Add] = cpu_Add,
    [IR_OP_Sub] = cpu_Sub,
    [IR_OP_Mul] = cpu_Mul,
    [IR_OP_Div] = cpu_Div,
    [IR_OP_Pow] = cpu_Pow,
    [IR_OP_Max] = cpu_Max,
    [IR_OP_Min] = cpu_Min,
    [IR_OP_Sum] = cpu_Sum,
    [IR_OP_Equal] = cpu_Equal,
    [IR_OP_Less] = cpu_Less,
    [IR_OP_LessOrEqual] = cpu_LessOrEqual,
    [IR_OP_Greater] = cpu_Greater,
    [IR_OP_GreaterOrEqual] = cpu_GreaterOrEqual,
    [IR_OP_Where] = cpu_Where,
    [IR_OP_Transpose] = cpu_Transpose,
    [IR_OP_Cast] = cpu_Cast,
    [IR_OP_SliceGrad] = cpu_SliceGrad,
    [IR_OP_Relu] = cpu_Relu,
    [IR_OP_Gelu] = cpu_Gelu,
    [IR_OP_Erf] = cpu_Erf,
    [IR_OP_Exp] = cpu_Exp,
    [IR_OP_Log] = cpu_Log,
    [IR_OP_Sqrt] = cpu_Sqrt,
    [IR_OP_Sigmoid] = cpu_Sigmoid,
    [IR_OP_Tanh] = cpu_Tanh,
    [IR_OP_Neg] = cpu_Neg,
    [IR_OP_Reciprocal] = cpu_Reciprocal,
    [IR_OP_LowerLeakyHard] = cpu_LowerLeakyHard,
    [IR_OP_UpperLeakyHard] = cpu_UpperLeakyHard,
    [IR_OP_LowerLeakyHardGrad] = cpu_LowerLeakyHardGrad,
    [IR_OP_UpperLeakyHardGrad] = cpu_UpperLeakyHardGrad,
    [IR_OP_ReduceSum] = cpu_ReduceSum,
    [IR_OP_ReduceMean] = cpu_ReduceMean,
    [IR_OP_Softmax] = cpu_Softmax,
    [IR_OP_LogSoftmax] = cpu_LogSoftmax,
    [IR_OP_LayerNormalization] = cpu_LayerNormalization,
    [IR_OP_ChunkedKL] = cpu_ChunkedKL,
    [IR_OP_ChunkedKLGrad] = cpu_ChunkedKLGrad,
#endif
};

/* everything the reference runs: the rest is delegated to it */
static int cpu_supports(const struct ir_graph *g, const struct ir_node *n)
{
    return cg_ref.supports(g, n);
}

static int cpu_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                   void *const *out)
{
    if (n->op < IR_OP_COUNT && cpu_table[n->op]) {
        int st = cpu_table[n->op](g, n, in, out);
        if (st != CPU_DELEGATE)
            return st;
    }
    return cg_ref.run(g, n, in, out);
}

const struct cg_target cg_cpu = {
    .name = "cpu",
    .supports = cpu_supports,
    .run = cpu_run,
};

const struct cg_target *cg_default(void)
{
    const char *t = getenv("PDC_TARGET");
    if (t && strcmp(t, "ref") == 0)
        return &cg_ref;
    if (t && strcmp(t, "cpu") == 0)
        return &cg_cpu;
#ifdef PDC_HAVE_LLVM
    return &cg_llvm; /* the cpu target plus fused kernels, same results up to the last bit */
#else
    return &cg_cpu;
#endif
}
