/* shape_impl.h — private helpers for the per-family shape rules (ir/shape_*.c).
 * Each rule is `int shape_<Op>(struct ir_graph *, struct ir_node *, struct diag *)`:
 * it validates attributes and input types/shapes, then sets every output's
 * dtype and dims. Errors name the node and op. */
#ifndef PDC_SHAPE_IMPL_H
#define PDC_SHAPE_IMPL_H

#include "ir.h"

#define SHAPE_RULE(name) int shape_##name(struct ir_graph *g, struct ir_node *n, struct diag *d)
#define OP(name, ...) SHAPE_RULE(name);
#include "ops.def"
#undef OP

/* input i of n (NULL when omitted) */
static inline struct ir_tensor *shp_in(struct ir_graph *g, const struct ir_node *n, uint32_t i)
{
    return i < n->n_in && n->in[i] != IR_NONE ? &g->t[n->in[i]] : NULL;
}

/* error naming the node: "node 'X' (Op): ..." */
int shp_err(struct diag *d, const struct ir_node *n, enum status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* set output k's type and shape (k may be an omitted output: then a no-op) */
int shp_set(struct ir_graph *g, struct ir_node *n, uint32_t k, enum ir_dtype dt, int rank,
            const int64_t *dims, struct diag *d);
/* read a constant integer tensor (value input i) into v[0..max); returns the count
 * or -1 after setting an error (not constant, not integer, too many values) */
int64_t shp_const_ints(struct ir_graph *g, const struct ir_node *n, uint32_t i, int64_t *v,
                       int64_t max, struct diag *d);
/* same as output-dtype check: input must be one of the float types */
int shp_want_float(const struct ir_node *n, const struct ir_tensor *t, struct diag *d);

#endif
