/* target.h — the interface every code generation target implements.
 * A target runs one node at a time; a target with generated kernels (llvm) also
 * compiles fused kernel groups (fuse.h) and launches them as one unit. */
#ifndef PDC_TARGET_H
#define PDC_TARGET_H

#include "ir.h"

struct cg_group;  /* fuse.h */
struct cg_kernel; /* a compiled group, owned by its target */

/* A target whose buffers live in a memory of its own (a GPU's): the program
 * allocates and fills them through these, and every pointer the target's run and
 * launch receive is one of its own. NULL in cg_target: plain host memory. */
struct cg_mem {
    int host_addressable;             /* the host may read its pointers (an emulation) */
    void *(*alloc)(size_t n);         /* NULL when out of memory */
    void (*release)(void *p);
    int (*put)(void *dst, const void *src, size_t n);  /* host -> target; src may change
                                                        * as soon as put returns */
    int (*get)(void *dst, const void *src, size_t n);  /* target -> host; waits for the work */
    int (*copy)(void *dst, const void *src, size_t n); /* within the target */
    int (*fill)(void *dst, int byte, size_t n);
    /* one read that need not wait: start queues the copy of n <= 64 bytes behind the
     * work queued so far, finish waits for that copy only (work queued after start
     * may still run) and stores the bytes at dst */
    int (*read_start)(const void *src, size_t n);
    int (*read_finish)(void *dst, size_t n);
    /* philox_uniform_fill (runtime/philox.h) into target memory, the same bits */
    int (*uniform)(float *dst, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                   uint64_t offset);
};

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
    /* optional: every fused group of a program at once (one GPU module), k[i] for
     * grp[i]; when set it is used instead of compile */
    int (*compile_many)(const struct ir_graph *g, const struct cg_group *const *grp, uint32_t n,
                        struct cg_kernel **k, struct diag *d);
    void (*release)(struct cg_kernel *k);
    /* optional: what running node n alone needs, decided once when a program is
     * built (a GPU target lowers it to its launches there, not at every step);
     * ST_ERR_UNSUPPORTED: the target cannot run n. The program then runs n with
     * run_prepared and frees the state with free(). */
    int (*prepare)(const struct ir_graph *g, const struct ir_node *n, void **state);
    int (*run_prepared)(const void *state, void *const *in, void *const *out);
    const struct cg_mem *mem; /* NULL: host memory */
    uint32_t min_fuse;        /* fused groups have at least this many nodes (0: 2) */
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

/* the CUDA target's logic on the host (codegen/cuda/cu_emu.c): every node lowered as
 * for the GPU and run by a host emulation of its kernel, fused groups as the emulated
 * PTX kernels, GEMMs as the cuBLAS calls the GPU would make, in memory reached only
 * through cg_mem. It checks the GPU target's lowering where no GPU is. */
#ifdef PDC_HAVE_LLVM
extern const struct cg_target cg_cuda_emu;
#endif
#if defined PDC_HAVE_CUDA && defined PDC_HAVE_LLVM
/* the GPU itself (codegen/cuda/cu_target.c): buffers in device memory, PTX kernels,
 * cuBLAS; select it through cg_select_device, which checks it is usable */
extern const struct cg_target cg_cuda;
#endif

/* the target the tools run on: cg_llvm when built with LLVM, else cg_cpu; or what
 * the environment names with PDC_TARGET=ref|cpu|llvm (to compare against the
 * oracle, or to rule a target out) */
const struct cg_target *cg_default(void);

/* the device the training loops run on (codegen/cuda/cu_device.c): "cpu" (cg_default),
 * "cuda" (an error says what is missing: a build without CUDA, no driver, an old
 * driver, no device), "auto" (cuda when usable, else cpu), or "cuda-emu" (cg_cuda_emu,
 * a testing aid). cg_train_target is
 * what was selected (cg_default before any selection). */
int cg_select_device(const char *name, struct diag *d);
const struct cg_target *cg_train_target(void);
/* why CUDA is not usable here, or NULL when it is (a build with CUDA and a device) */
const char *cg_cuda_unusable(void);

/* evaluate one node on the reference target (constant folding uses this) */
int cg_eval_node(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                 void *const *out);

#endif
