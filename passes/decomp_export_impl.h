/* decomp_export_impl.h — private to decomp_export*.c: appending nodes to a graph
 * that has no inferred shapes (the export graph keeps its symbolic dims), so
 * unlike build.h nothing is inferred; ranks come from the compiled copy. Errors
 * are sticky as in build.h. */
#ifndef PDC_DECOMP_EXPORT_IMPL_H
#define PDC_DECOMP_EXPORT_IMPL_H

#include "decomp_export.h"

struct dx_builder {
    struct ir_graph *g;
    char prefix[300]; /* node and tensor names: "<prefix>/<op>_<n>" */
    uint32_t count;
    struct diag *d;
    int err;
};

/* one node; its single output is `out` when not IR_NONE, else a fresh tensor */
uint32_t dx_node(struct dx_builder *xb, enum ir_op op, uint32_t n_in, const uint32_t *in,
                 uint32_t n_attr, const struct ir_attr *attr, uint32_t out);
uint32_t dx_op2(struct dx_builder *xb, enum ir_op op, uint32_t a, uint32_t b);
/* a constant named `name` (made unique) holding a copy of data */
uint32_t dx_const(struct dx_builder *xb, const char *name, enum ir_dtype dt, int rank,
                  const int64_t *dims, const void *data);
uint32_t dx_scalar(struct dx_builder *xb, float v);
/* x with axes inserted (Unsqueeze) or removed (Squeeze); axes are constants */
uint32_t dx_axes(struct dx_builder *xb, enum ir_op op, uint32_t x, int n, const int64_t *axes);
uint32_t dx_transpose(struct dx_builder *xb, uint32_t x, int rank, const int64_t *perm);
uint32_t dx_swap_last2(struct dx_builder *xb, uint32_t x, int rank);

/* decomp_export_ci.c: CI values [pos.., C] per site into z[] from the clean site
 * inputs: rows[i] (matmul kinds, [pos.., d_in]) and h[i] (x·V, [pos.., C]) */
int dx_ci_build(struct dx_builder *xb, const struct dx_ci *ci, const struct dx_site *sites,
                int ns, const uint32_t *rows, const uint32_t *h, uint32_t *z);

#define DX_MAX_GLOBAL_SITES 256 /* as ci_fn.c: DC_MAX_GLOBAL_SITES */
/* the CI weight `name` from components.safetensors as a constant shaped dims
 * (the stored element count must match) */
uint32_t dx_ci_weight(struct dx_builder *xb, const struct dx_ci *ci, const char *name, int rank,
                      const int64_t *dims);
uint32_t dx_gelu(struct dx_builder *xb, uint32_t x); /* exact, through Erf */
/* a global CI function's site order (by name, the reference's) and its output
 * [pos.., ΣC] sliced back per site along the last axis */
int dx_ci_global_order(struct dx_builder *xb, const struct dx_site *sites, int ns, int *order);
int dx_ci_global_split(struct dx_builder *xb, const struct dx_site *sites, int ns,
                       const int *order, uint32_t all, uint32_t *z);
/* decomp_export_ci_tf.c: the global_shared_transformer on rows [pos.., d_in] */
int dx_ci_transformer(struct dx_builder *xb, const struct dx_ci *ci, const struct dx_site *sites,
                      int ns, const uint32_t *rows, uint32_t *z);

#endif
