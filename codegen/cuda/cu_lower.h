/* cu_lower.h — private to codegen/cuda: a node as the generic GPU launches that
 * compute it (cu_ops.h). Shared by the CUDA target and its host emulation.
 *
 * Everything a launch needs is read from the graph at lowering time: shapes,
 * attributes, and the values of constant operands (Slice's starts, a reduction's
 * axes), which on a GPU live in device memory the host does not read. A node
 * whose operands are not constants where that matters, or an op without a GPU
 * kernel, is ST_ERR_UNSUPPORTED. */
#ifndef PDC_CU_LOWER_H
#define PDC_CU_LOWER_H

#include "ir.h"
#include "cu_ops.h"

/* n as launches, in order; ST_ERR_UNSUPPORTED (nothing else is wrong) when the
 * GPU has no way to run it */
int cu_lower(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *out);

/* does anyone read what launch l writes (out: the node's output buffers, NULL for an
 * unused output)? */
static inline int cu_launch_wanted(const struct cu_launch *l, void *const *out)
{
    for (int k = 0; k < 3; k++)
        if (l->dst[k] >= 0 && out[l->dst[k]])
            return 1;
    return l->dst[0] < 0;
}

/* Run node n as its launches: fn(l, src, dst, in, out) for each one someone reads,
 * src/dst its operands resolved from the node's in[] and out[] buffers (NULL: none).
 * The GPU target and its emulation differ only in fn. */
typedef int (*cu_exec_fn)(const struct cu_launch *l, void *const *src, void *const *dst,
                          void *const *in, void *const *out);
int cu_run_node(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                void *const *out, cu_exec_fn fn);
/* can a GPU run n alone (outside a fused group)? */
int cu_supports(const struct ir_graph *g, const struct ir_node *n);
/* n lowered once, when a program is built (target.h prepare), so a step only
 * launches: *state (malloc'd, freed with free) for cu_run_prepared */
int cu_prepare(const struct ir_graph *g, const struct ir_node *n, void **state);
int cu_run_prepared(const void *state, void *const *in, void *const *out, cu_exec_fn fn);

/* the cuBLAS calls of a GEMM launch, in order (at most max of them): what the GPU
 * issues and the emulation replays. Returns how many, -1 when more than max. */
int cu_gemm_calls(const struct cu_gemm *m, struct cu_sgemm_call *calls, int max);

#endif
