/* infer.c — shape inference with constant folding.
 * needs: every graph input's dims bound; value inputs (ops.def) constant or
 *        computable from constants and shapes.
 * guarantees: every live tensor has a dtype and concrete dims; nodes whose
 *        inputs are all constants (or, for Shape/Size, whose input shape is known)
 *        are evaluated and removed, their outputs becoming constants. Nodes that
 *        read a float weight (IR_T_PARAM) are never folded: sites are found on
 *        the weights as the model states them. */
#include <stdlib.h>

#include "pass.h"

#define FOLD_MAX_BYTES ((size_t)16 << 20)

static int foldable(const struct ir_graph *g, const struct ir_node *n)
{
    if (ir_ops[n->op].flags & IR_OPF_NOFOLD)
        return 0;
    if (n->op == IR_OP_Shape || n->op == IR_OP_Size)
        return 1; /* depends only on the (now known) input shape */
    for (uint32_t i = 0; i < n->n_in; i++) {
        if (n->in[i] == IR_NONE)
            continue;
        const struct ir_tensor *t = &g->t[n->in[i]];
        if (!t->data || (t->flags & IR_T_PARAM))
            return 0;
    }
    for (uint32_t o = 0; o < n->n_out; o++) {
        if (n->out[o] == IR_NONE)
            continue;
        const struct ir_tensor *t = &g->t[n->out[o]];
        if ((size_t)ir_numel(t) * ir_dtype_size(t->dtype) > FOLD_MAX_BYTES)
            return 0;
    }
    return 1;
}

static int fold(struct ir_graph *g, struct ir_node *n, pass_eval_fn eval, struct diag *d)
{
    void *in[64] = {0}, *out[64] = {0};
    if (n->n_in > 64 || n->n_out > 64)
        return ST_OK; /* not worth folding; runs at run time */
    for (uint32_t i = 0; i < n->n_in; i++)
        in[i] = n->in[i] == IR_NONE ? NULL : g->t[n->in[i]].data;
    for (uint32_t o = 0; o < n->n_out; o++) {
        if (n->out[o] == IR_NONE)
            continue;
        struct ir_tensor *t = &g->t[n->out[o]];
        size_t nb = (size_t)ir_numel(t) * ir_dtype_size(t->dtype);
        out[o] = ir_graph_buf(g, nb);
        if (!out[o])
            return diag_set(d, ST_ERR_NOMEM, "out of memory folding node '%s'", n->name);
    }
    int st = eval(g, n, in, out);
    if (st)
        return diag_set(d, st, "node '%s' (%s): evaluation failed while folding constants", n->name,
                        ir_ops[n->op].name);
    for (uint32_t o = 0; o < n->n_out; o++) {
        if (n->out[o] == IR_NONE)
            continue;
        struct ir_tensor *t = &g->t[n->out[o]];
        t->data = out[o];
        t->nbytes = (size_t)ir_numel(t) * ir_dtype_size(t->dtype);
        t->flags |= IR_T_CONST;
        t->producer = IR_NONE;
    }
    n->flags |= IR_N_DEAD;
    return ST_OK;
}

int pass_infer_fold(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    int st = ir_fill_topo(g, d);
    if (st)
        return st;
    /* iterate over a copy: folding invalidates nothing in the order itself */
    for (uint32_t k = 0; k < g->ntopo; k++) {
        struct ir_node *n = &g->n[g->topo[k]];
        if ((st = ir_infer_node(g, n, d)) != ST_OK)
            return st;
        if (cx->eval && foldable(g, n) && (st = fold(g, n, cx->eval, d)) != ST_OK)
            return st;
    }
    ir_invalidate(g);
    return ir_fill_topo(g, d);
}
