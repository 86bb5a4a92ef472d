/* verify.c — structural invariants of a graph. Cheap enough to run between
 * passes in debug builds (IR_VERIFY=1 forces it). Names what is wrong. */
#include "ir.h"

static int check_node(const struct ir_graph *g, uint32_t id, struct diag *d)
{
    const struct ir_node *n = &g->n[id];
    const struct ir_op_info *oi = &ir_ops[n->op];
    if ((int)n->n_in < oi->min_in || (oi->max_in >= 0 && (int)n->n_in > oi->max_in))
        return diag_set(d, ST_ERR_INVALID, "node '%s' (%s): %u inputs, op takes %d..%d", n->name,
                        oi->name, n->n_in, oi->min_in, oi->max_in);
    if ((int)n->n_out < oi->min_out || (oi->max_out >= 0 && (int)n->n_out > oi->max_out))
        return diag_set(d, ST_ERR_INVALID, "node '%s' (%s): %u outputs, op gives %d..%d", n->name,
                        oi->name, n->n_out, oi->min_out, oi->max_out);
    for (uint32_t i = 0; i < n->n_in; i++) {
        uint32_t t = n->in[i];
        if (t == IR_NONE)
            continue;
        if (t >= g->nt)
            return diag_set(d, ST_ERR_INVALID, "node '%s': input %u has dangling id %u", n->name, i, t);
        const struct ir_tensor *x = &g->t[t];
        if (x->producer == IR_NONE && !x->data && !(x->flags & IR_T_INPUT))
            return diag_set(d, ST_ERR_INVALID, "node '%s' (%s) reads '%s', which nothing defines",
                            n->name, oi->name, x->name);
        if (x->producer != IR_NONE && (g->n[x->producer].flags & IR_N_DEAD))
            return diag_set(d, ST_ERR_INVALID, "node '%s' reads '%s' from a removed node", n->name,
                            x->name);
    }
    for (uint32_t k = 0; k < n->n_out; k++) {
        uint32_t t = n->out[k];
        if (t == IR_NONE)
            continue;
        if (t >= g->nt)
            return diag_set(d, ST_ERR_INVALID, "node '%s': output %u has dangling id %u", n->name, k, t);
        if (g->t[t].producer != id)
            return diag_set(d, ST_ERR_INVALID, "tensor '%s' has two producers ('%s' and node %u)",
                            g->t[t].name, n->name, g->t[t].producer);
        if (g->t[t].data)
            return diag_set(d, ST_ERR_INVALID, "tensor '%s' is both a constant and produced by '%s'",
                            g->t[t].name, n->name);
    }
    return ST_OK;
}

int ir_verify(struct ir_graph *g, struct diag *d)
{
    for (uint32_t i = 0; i < g->nn; i++) {
        if (g->n[i].flags & IR_N_DEAD)
            continue;
        int st = check_node(g, i, d);
        if (st)
            return st;
    }
    for (uint32_t t = 0; t < g->nt; t++) {
        const struct ir_tensor *x = &g->t[t];
        if (x->producer != IR_NONE && x->producer >= g->nn)
            return diag_set(d, ST_ERR_INVALID, "tensor '%s': dangling producer id", x->name);
        if (x->data) {
            int64_t ne = ir_numel(x);
            if (ne < 0 || (size_t)ne * ir_dtype_size(x->dtype) != x->nbytes)
                return diag_set(d, ST_ERR_INVALID, "constant '%s': %zu bytes do not match its shape",
                                x->name, x->nbytes);
        }
    }
    for (uint32_t i = 0; i < g->n_outputs; i++) {
        const struct ir_tensor *x = &g->t[g->outputs[i]];
        int defined = x->data || (x->flags & IR_T_INPUT) ||
                      (x->producer != IR_NONE && !(g->n[x->producer].flags & IR_N_DEAD));
        if (!defined)
            return diag_set(d, ST_ERR_INVALID, "graph output '%s' is never computed", x->name);
    }
    return ir_fill_topo(g, d);
}
