/* ref_impl.h — private to the reference target: one plain-C kernel per op.
 * Each kernel is `int ref_<Op>(g, n, in, out)`; shapes and dtypes come from the
 * graph (already inferred and validated by the matching shape rule), data
 * pointers from the runtime. Kernels are the oracle: clear loops over clever ones. */
#ifndef PDC_REF_IMPL_H
#define PDC_REF_IMPL_H

#include "ir.h"

#define REF_KERNEL(name) \
    int ref_##name(const struct ir_graph *g, const struct ir_node *n, void *const *in, \
                   void *const *out)
#define OP(name, ...) REF_KERNEL(name);
#include "ops.def"
#undef OP

static inline const struct ir_tensor *ref_in(const struct ir_graph *g, const struct ir_node *n,
                                             uint32_t i)
{
    return i < n->n_in && n->in[i] != IR_NONE ? &g->t[n->in[i]] : NULL;
}

static inline const struct ir_tensor *ref_out(const struct ir_graph *g, const struct ir_node *n,
                                              uint32_t k)
{
    return k < n->n_out && n->out[k] != IR_NONE ? &g->t[n->out[k]] : NULL;
}

#endif
