/* target.h — the interface every code generation target implements.
 * A target runs one node at a time; a target with generated kernels (llvm) also
 * compiles fused kernel groups (fuse.h) and launches them as one unit. */
#ifndef PDC_TARGET_H
#define PDC_TARGET_H

#include "ir.h"

struct cg_group;  /* fuse.h */
struct cg_kernel; /* a compiled group, owned by its target */

struct cg_target {
    const char *name;
    /* can this target run node n (shapes and dtypes already inferred)? */
    int (*supports)(const struct ir_graph *g, const struct ir_node *n);
    /* run n: in[i]/out[k] point at row-major buffers shaped like g->t[n->in[i]] etc.;
     * in[i] is NULL for an omitted optional input, out[k] NULL for an unused output */
    int (*run)(const struct ir_graph *g, const struct ir_node *n, void *const *in, void *const *out);
    /* optional (NULL: no kernel groups, every node runs alone). compile: one kernel
     * for a fused group; launch: run it on bufs = the group's in[] then out[] buffers */
    int (*compile)(const struct ir_graph *g, const struct cg_group *grp, struct cg_kernel **k,
                   struct diag *d);
    int (*launch)(struct cg_kernel *k, void *const *bufs);
    void (*release)(struct cg_kernel *k);
};

extern const struct cg_target cg_ref;
/* OpenBLAS GEMMs and threaded float32 kernels for the hot ops; every other node
 * runs on cg_ref (codegen/cpu/cpu_target.c) */
extern const struct cg_target cg_cpu;

#ifdef PDC_HAVE_LLVM
/* fused elementwise groups as LLVM-JIT kernels; every node alone runs on cg_cpu
 * (codegen/llvm/llvm_target.c) */
extern const struct cg_target cg_llvm;
#endif

/* the target the tools run on: cg_llvm when built with LLVM, else cg_cpu; or what
 * the environment names with PDC_TARGET=ref|cpu|llvm (to compare against the
 * oracle, or to rule a target out) */
const struct cg_target *cg_default(void);

/* evaluate one node on the reference target (constant folding uses this) */
int cg_eval_node(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                 void *const *out);

#endif
