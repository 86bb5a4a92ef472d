/* pass.h — passes over the IR and the pipelines that run them.
 * A pass is a plain function; its file opens with what it needs and guarantees.
 * pipeline.c holds the pipelines as arrays read top to bottom. */
#ifndef PDC_PASS_H
#define PDC_PASS_H

#include "ir.h"

/* Evaluates one node on concrete buffers (the reference target's kernels);
 * passes never link a target themselves, the caller hands this in. */
typedef int (*pass_eval_fn)(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                            void *const *out);

struct pass_ctx {
    pass_eval_fn eval;   /* for constant folding; NULL disables folding */
    const char *dump;    /* "-d NAME": print the graph after that pass ("all": every pass) */
    int verify;          /* run ir_verify after every pass */
    void *dump_file;     /* FILE*, stderr if NULL */
};

struct pass {
    const char *name;
    int (*run)(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);
};

/* infer.c: shape inference in topological order, folding constant subgraphs
 * (Shape/Gather/Concat/Unsqueeze chains) as soon as their inputs are known */
int pass_infer_fold(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);
/* dce.c: drop nodes no graph output depends on */
int pass_dce(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);
/* gemm_fold.c (built programs): MatMul(Transpose(A), B) → Gemm(A, B, transA), and
 * Add(product, C) → Gemm(A, B, C), for 2-D float32 products */
int pass_fold_gemm(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);
/* reassoc.c (built programs): MatMul(X, W) pushed into X's producers (A·B, P ± Q, a row
 * scale) where that saves at least half of its FLOPs: A·(B·W), P·W ± Q·W, s ⊙ (Z·W) */
int pass_reassoc(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);
/* the same, never pushing through the nkeep tensors of keep (they stay on their paths) */
int pass_reassoc_keep(struct ir_graph *g, const uint32_t *keep, uint32_t nkeep, struct diag *d);
/* cse.c: equal nodes on equal inputs computed once (small constants by content) */
int pass_cse(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);
int pass_verify(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);

/* bind_inputs.c: match run-time values to graph inputs by name, binding symbolic
 * dims from their shapes and checking dtypes and static dims. Inputs that some
 * node reads as a shape operand become constants (their values fix shapes). */
int pass_bind_inputs(struct ir_graph *g, const struct ir_value *vals, int n, struct diag *d);

/* sites.c: decomposable weights (see the file for what counts as a site) */
enum pass_site_kind { PASS_SITE_MATMUL, PASS_SITE_MATMUL_LEFT, PASS_SITE_GEMM, PASS_SITE_GATHER,
                      PASS_SITE_CONV };
#define PASS_SITE_MAX_USES 8
struct pass_site {
    uint32_t weight;               /* the initializer tensor */
    enum pass_site_kind kind;      /* of its first use */
    int64_t d_in, d_out;           /* [d_in, d_out] right-multiply convention */
    int n_uses;                    /* nodes reading it (tied weights: more than one) */
    uint32_t uses[PASS_SITE_MAX_USES];
};
int pass_find_sites(const struct ir_graph *g, struct pass_site **sites, int *n_sites);
const char *pass_site_kind_name(enum pass_site_kind k);

/* autodiff.c: reverse-mode differentiation. `loss` is a float scalar (rank 0 or one
 * element) with shapes inferred; for each wrt[i] (input, constant, parameter or
 * intermediate) appends the gradient subgraph and sets grads[i] to dloss/dwrt[i]
 * (wrt[i]'s shape and dtype; a zero constant if the loss does not depend on it). */
int pass_autodiff(struct ir_graph *g, uint32_t loss, uint32_t n_wrt, const uint32_t *wrt,
                  uint32_t *grads, struct diag *d);

/* pipeline.c */
int pass_run_pipeline(struct ir_graph *g, const struct pass *p, int np, struct pass_ctx *cx,
                      struct diag *d);
/* the inference pipeline: verify, infer+fold, dce, verify */
int pass_compile_inference(struct ir_graph *g, struct pass_ctx *cx, struct diag *d);
/* names of all passes (for -d help) */
void pass_list(void *file);

#endif
