/* shape.c — shape/dtype inference driver: dispatch to the per-op rules in
 * ir/shape_*.c, walking the graph in topological order. */
#include <stdio.h>
#include <string.h>

#include "shape_impl.h"

typedef int (*shape_fn)(struct ir_graph *, struct ir_node *, struct diag *);

static const shape_fn shape_table[IR_OP_COUNT] = {
#define OP(name, ...) [IR_OP_##name] = shape_##name,
#include "ops.def"
#undef OP
};

int shp_err(struct diag *d, const struct ir_node *n, enum status st, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return diag_set(d, st, "node '%s' (%s, opset %d): %s", n->name, ir_ops[n->op].name, n->opset,
                    buf);
}

int shp_set(struct ir_graph *g, struct ir_node *n, uint32_t k, enum ir_dtype dt, int rank,
            const int64_t *dims, struct diag *d)
{
    if (k >= n->n_out || n->out[k] == IR_NONE)
        return ST_OK;
    if (rank < 0 || rank > IR_MAX_RANK)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "output rank %d exceeds the maximum of %d", rank,
                       IR_MAX_RANK);
    struct ir_tensor *t = &g->t[n->out[k]];
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return shp_err(d, n, ST_ERR_SHAPE, "output '%s' gets negative dim %lld", t->name,
                           (long long)dims[i]);
        if (dims[i] > IR_MAX_ELEMS || (dims[i] && numel > IR_MAX_ELEMS / dims[i]))
            return shp_err(d, n, ST_ERR_SHAPE, "output '%s' would have more than 2^34 elements",
                           t->name);
        numel *= dims[i];
    }
    t->dtype = dt;
    t->rank = rank;
    for (int i = 0; i < IR_MAX_RANK; i++) {
        t->dims[i] = i < rank ? dims[i] : -1;
        t->sym[i] = -1;
    }
    return ST_OK;
}

int64_t shp_const_ints(struct ir_graph *g, const struct ir_node *n, uint32_t i, int64_t *v,
                       int64_t max, struct diag *d)
{
    const struct ir_tensor *t = shp_in(g, n, i);
    if (!t)
        return shp_err(d, n, ST_ERR_INVALID, "input %u is missing", i), -1;
    if (!t->data)
        return shp_err(d, n, ST_ERR_UNSUPPORTED,
                       "input %u ('%s') determines an output shape but is not a compile-time "
                       "constant", i, t->name), -1;
    if (!ir_dtype_is_int(t->dtype))
        return shp_err(d, n, ST_ERR_INVALID, "input %u ('%s') must be an integer tensor, got %s", i,
                       t->name, ir_dtype_name(t->dtype)), -1;
    int64_t cnt = ir_numel(t);
    if (cnt > max)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "input %u ('%s') has %lld values (max %lld)", i,
                       t->name, (long long)cnt, (long long)max), -1;
    for (int64_t k = 0; k < cnt; k++)
        v[k] = ir_load_i64(t->dtype, t->data, k);
    return cnt;
}

int shp_want_float(const struct ir_node *n, const struct ir_tensor *t, struct diag *d)
{
    if (ir_dtype_is_float(t->dtype))
        return ST_OK;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "input '%s' has type %s; this op needs a float type",
                   t->name, ir_dtype_name(t->dtype));
}

int ir_infer_node(struct ir_graph *g, struct ir_node *n, struct diag *d)
{
    for (uint32_t i = 0; i < n->n_in; i++) {
        if (n->in[i] == IR_NONE)
            continue;
        const struct ir_tensor *t = &g->t[n->in[i]];
        if (t->rank < 0 || t->dtype == IR_DT_UNDEF)
            return shp_err(d, n, ST_ERR_SHAPE, "input '%s' has no known shape", t->name);
        for (int k = 0; k < t->rank; k++)
            if (t->dims[k] < 0)
                return shp_err(d, n, ST_ERR_SHAPE,
                               "input '%s' has an unbound dim %d (%s); bind it with --bind NAME=N",
                               t->name, k, t->sym[k] >= 0 ? g->syms[t->sym[k]] : "unnamed");
    }
    return shape_table[n->op](g, n, d);
}

int ir_infer_shapes(struct ir_graph *g, struct diag *d)
{
    if (!(g->valid & IR_VALID_TOPO)) {
        int st = ir_fill_topo(g, d);
        if (st)
            return st;
    }
    for (uint32_t k = 0; k < g->ntopo; k++) {
        int st = ir_infer_node(g, &g->n[g->topo[k]], d);
        if (st)
            return st;
    }
    return ST_OK;
}
