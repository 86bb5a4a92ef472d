/* target.h — the interface every code generation target implements.
 * For now a target runs one node at a time; kernel groups come with fusion. */
#ifndef PDC_TARGET_H
#define PDC_TARGET_H

#include "ir.h"

struct cg_target {
    const char *name;
    /* can this target run node n (shapes and dtypes already inferred)? */
    int (*supports)(const struct ir_graph *g, const struct ir_node *n);
    /* run n: in[i]/out[k] point at row-major buffers shaped like g->t[n->in[i]] etc.;
     * in[i] is NULL for an omitted optional input, out[k] NULL for an unused output */
    int (*run)(const struct ir_graph *g, const struct ir_node *n, void *const *in, void *const *out);
};

extern const struct cg_target cg_ref;
/* OpenBLAS GEMMs and threaded float32 kernels for the hot ops; every other node
 * runs on cg_ref (codegen/cpu/cpu_target.c) */
extern const struct cg_target cg_cpu;

/* the target the tools run on: cg_cpu, or cg_ref when the environment says
 * PDC_TARGET=ref (to compare against the oracle, or to rule the cpu target out) */
const struct cg_target *cg_default(void);

/* evaluate one node on the reference target (constant folding uses this) */
int cg_eval_node(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                 void *const *out);

#endif
