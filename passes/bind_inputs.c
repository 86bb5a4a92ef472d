/* bind_inputs.c — bind run-time values to graph inputs (see pass.h). */
#include <stdlib.h>
#include <string.h>

#include "pass.h"

static int used_as_value_input(const struct ir_graph *g, uint32_t t)
{
    for (uint32_t i = 0; i < g->nn; i++) {
        const struct ir_node *n = &g->n[i];
        if (n->flags & IR_N_DEAD)
            continue;
        for (uint32_t k = 0; k < n->n_in && k < 32; k++)
            if (n->in[k] == t && (ir_ops[n->op].value_in >> k & 1u))
                return 1;
    }
    return 0;
}

static int bind_one(struct ir_graph *g, uint32_t tid, const struct ir_value *v, struct diag *d)
{
    struct ir_tensor *t = &g->t[tid];
    if (t->dtype != IR_DT_UNDEF && t->dtype != v->dtype)
        return diag_set(d, ST_ERR_INVALID, "input '%s': model expects %s, got %s", t->name,
                        ir_dtype_name(t->dtype), ir_dtype_name(v->dtype));
    if (t->rank >= 0 && t->rank != v->rank)
        return diag_set(d, ST_ERR_SHAPE, "input '%s': model expects rank %d, got rank %d", t->name,
                        t->rank, v->rank);
    for (int k = 0; k < v->rank; k++) {
        if (t->rank < 0)
            break;
        if (t->sym[k] >= 0) {
            int64_t cur = g->sym_val[t->sym[k]];
            if (cur >= 0 && cur != v->dims[k])
                return diag_set(d, ST_ERR_SHAPE,
                                "input '%s': dim %d ('%s') is %lld but another input bound it to %lld",
                                t->name, k, g->syms[t->sym[k]], (long long)v->dims[k],
                                (long long)cur);
            int st = ir_bind_sym(g, g->syms[t->sym[k]], v->dims[k], d);
            if (st)
                return st;
        } else if (t->dims[k] >= 0 && t->dims[k] != v->dims[k]) {
            return diag_set(d, ST_ERR_SHAPE, "input '%s': dim %d must be %lld, got %lld", t->name, k,
                            (long long)t->dims[k], (long long)v->dims[k]);
        }
    }
    t->dtype = v->dtype;
    t->rank = v->rank;
    for (int k = 0; k < v->rank; k++)
        t->dims[k] = v->dims[k];
    if (used_as_value_input(g, tid)) {
        t->data = ir_graph_buf(g, v->nbytes);
        if (!t->data)
            return diag_set(d, ST_ERR_NOMEM, "out of memory binding input '%s'", t->name);
        memcpy(t->data, v->data, v->nbytes);
        t->nbytes = v->nbytes;
        t->flags |= IR_T_CONST;
    }
    return ST_OK;
}

int pass_bind_inputs(struct ir_graph *g, const struct ir_value *vals, int n, struct diag *d)
{
    for (int i = 0; i < n; i++)
        if (ir_tensor_find(g, vals[i].name) == IR_NONE ||
            !(g->t[ir_tensor_find(g, vals[i].name)].flags & IR_T_INPUT))
            return diag_set(d, ST_ERR_INVALID, "'%s' is not an input of the model", vals[i].name);
    for (uint32_t k = 0; k < g->n_inputs; k++) {
        uint32_t tid = g->inputs[k];
        const struct ir_value *v = NULL;
        for (int i = 0; i < n; i++)
            if (strcmp(vals[i].name, g->t[tid].name) == 0)
                v = &vals[i];
        if (!v)
            return diag_set(d, ST_ERR_INVALID, "no value given for model input '%s'", g->t[tid].name);
        int st = bind_one(g, tid, v, d);
        if (st)
            return st;
    }
    return ST_OK;
}
