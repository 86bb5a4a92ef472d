/* build.h — appending nodes to a graph from passes (autodiff, decomposition,
 * objectives). Every node is shape-inferred as soon as it is created, so the
 * next builder call can look at its shape. Errors are sticky: after the first
 * failure every call returns IR_NONE and the diag keeps the root cause, so a
 * pass can build a whole subgraph and check `b->err` once.
 *
 *   struct ir_builder b = bld_begin(g, "spd", &d);
 *   uint32_t h = bld_matmul(&b, x, V);
 *   uint32_t m = bld_add(&b, g_lo, bld_mul(&b, bld_sub(&b, bld_f32(&b, 1), g_lo), r));
 *   if (b.err) return b.err;
 */
#ifndef PDC_BUILD_H
#define PDC_BUILD_H

#include "ir.h"

/* Builder nodes use the canonical (newest) op semantics regardless of the
 * model's opset: axes as inputs, Softmax over one axis, Gelu available. */
#define BLD_OPSET 20

struct ir_builder {
    struct ir_graph *g;
    const char *prefix; /* names: "<prefix>/<op>_<n>" */
    struct diag *d;
    int err;
    uint32_t count;
    int opset; /* opset stamped on new nodes (BLD_OPSET; clones keep their original's) */
};

struct ir_builder bld_begin(struct ir_graph *g, const char *prefix, struct diag *d);

/* attributes (the returned value is copied into the node's arena storage) */
struct ir_attr bld_attr_int(const char *name, int64_t v);
struct ir_attr bld_attr_float(const char *name, double v);
struct ir_attr bld_attr_str(const char *name, const char *v);
struct ir_attr bld_attr_ints(const char *name, int64_t n, const int64_t *v);

/* generic: one node, outputs created and inferred; returns output 0 (outs may be NULL) */
uint32_t bld_node(struct ir_builder *b, enum ir_op op, uint32_t n_in, const uint32_t *in,
                  uint32_t n_attr, const struct ir_attr *attr, uint32_t n_out, uint32_t *outs);
uint32_t bld_op1(struct ir_builder *b, enum ir_op op, uint32_t x);
uint32_t bld_op2(struct ir_builder *b, enum ir_op op, uint32_t x, uint32_t y);

/* constants */
uint32_t bld_const(struct ir_builder *b, enum ir_dtype dt, int rank, const int64_t *dims,
                   const void *data);
uint32_t bld_scalar(struct ir_builder *b, enum ir_dtype dt, double v); /* rank-0 */
uint32_t bld_f32(struct ir_builder *b, double v);
uint32_t bld_i64s(struct ir_builder *b, int64_t n, const int64_t *v); /* 1-D int64 */
uint32_t bld_zeros_like(struct ir_builder *b, uint32_t x);

/* common shapes of node */
uint32_t bld_add(struct ir_builder *b, uint32_t x, uint32_t y);
uint32_t bld_sub(struct ir_builder *b, uint32_t x, uint32_t y);
uint32_t bld_mul(struct ir_builder *b, uint32_t x, uint32_t y);
uint32_t bld_div(struct ir_builder *b, uint32_t x, uint32_t y);
uint32_t bld_matmul(struct ir_builder *b, uint32_t x, uint32_t y);
uint32_t bld_transpose(struct ir_builder *b, uint32_t x, int n, const int64_t *perm);
uint32_t bld_swap_last2(struct ir_builder *b, uint32_t x); /* transpose the last two axes */
uint32_t bld_reshape(struct ir_builder *b, uint32_t x, int rank, const int64_t *dims);
uint32_t bld_reduce(struct ir_builder *b, enum ir_op op, uint32_t x, int naxes, const int64_t *axes,
                    int keepdims);
uint32_t bld_cast(struct ir_builder *b, uint32_t x, enum ir_dtype to);
/* sum x over its broadcast dims so it has shape (rank, dims): the adjoint of broadcasting */
uint32_t bld_sum_to(struct ir_builder *b, uint32_t x, int rank, const int64_t *dims);

#endif
