/* ref_kl.c — reference kernels of the chunked KL of logits (ops.def ChunkedKL,
 * ChunkedKLGrad): all rows in one block, the plain-loop GEMM. */
#include <stdlib.h>

#include "../kl_chunked.h"
#include "ref_impl.h"

/* operands from input `first` on: h_t, h_m, W, b? */
static struct kl_chunked kl_args(const struct ir_graph *g, const struct ir_node *n,
                                 void *const *in, uint32_t first, kl_gemm_fn gemm)
{
    const struct ir_tensor *h = ref_in(g, n, first), *w = ref_in(g, n, first + 2);
    int tw = ir_attr_int(n, "trans_w", 0) != 0;
    struct kl_chunked k = {in[first], in[first + 1], in[first + 2],
                           ref_in(g, n, first + 3) ? in[first + 3] : NULL, 0,
                           h->dims[h->rank - 1], w->dims[tw ? 0 : 1], ir_attr_int(n, "chunk", 1),
                           tw, gemm};
    k.rows = k.D ? ir_numel(h) / k.D : 0;
    if (k.chunk > k.V)
        k.chunk = k.V > 0 ? k.V : 1;
    return k;
}

REF_KERNEL(ChunkedKL)
{
    struct kl_chunked k = kl_args(g, n, in, 0, kl_gemm_loops);
    float *scratch = malloc((size_t)kl_scratch_floats(&k, k.rows) * sizeof *scratch + 1);
    if (!scratch)
        return ST_ERR_NOMEM;
    kl_chunked_forward(&k, 0, k.rows, out[0], out[1], scratch);
    free(scratch);
    return ST_OK;
}

REF_KERNEL(ChunkedKLGrad)
{
    struct kl_chunked k = kl_args(g, n, in, 2, kl_gemm_loops);
    float *scratch = malloc((size_t)kl_scratch_floats(&k, k.rows) * sizeof *scratch + 1);
    if (!scratch)
        return ST_ERR_NOMEM;
    kl_chunked_backward(&k, 0, k.rows, in[0], in[1], out[0], scratch);
    free(scratch);
    return ST_OK;
}
