/* exec.c — run a compiled graph node by node on one target. Every non-constant
 * tensor gets its own buffer for now; liveness-based planning comes with memplan. */
#include <stdlib.h>
#include <string.h>

#include "exec.h"

static size_t tensor_bytes(const struct ir_tensor *t)
{
    int64_t n = ir_numel(t);
    return n < 0 ? 0 : (size_t)n * ir_dtype_size(t->dtype);
}

static int feed_inputs(const struct ir_graph *g, const struct ir_value *inputs, int n_inputs,
                       void **buf, struct diag *d)
{
    for (uint32_t k = 0; k < g->n_inputs; k++) {
        const struct ir_tensor *t = &g->t[g->inputs[k]];
        if (t->data)
            continue; /* bound as a constant at compile time */
        const struct ir_value *v = NULL;
        for (int i = 0; i < n_inputs; i++)
            if (strcmp(inputs[i].name, t->name) == 0)
                v = &inputs[i];
        if (!v)
            return diag_set(d, ST_ERR_INVALID, "no value given for model input '%s'", t->name);
        if (v->dtype != t->dtype || v->nbytes != tensor_bytes(t))
            return diag_set(d, ST_ERR_SHAPE, "input '%s' does not match the compiled type/shape",
                            t->name);
        buf[g->inputs[k]] = v->data; /* borrowed; never written by kernels */
    }
    return ST_OK;
}

static int alloc_outputs(const struct ir_graph *g, const struct ir_node *n, void **buf,
                         unsigned char *owned, struct diag *d)
{
    for (uint32_t o = 0; o < n->n_out; o++) {
        uint32_t t = n->out[o];
        if (t == IR_NONE)
            continue;
        size_t nb = tensor_bytes(&g->t[t]);
        buf[t] = calloc(1, nb ? nb : 1);
        if (!buf[t])
            return diag_set(d, ST_ERR_NOMEM, "out of memory for '%s' (%zu bytes)", g->t[t].name, nb);
        owned[t] = 1;
    }
    return ST_OK;
}

static int collect_outputs(const struct ir_graph *g, void **buf, struct ir_value **outputs,
                           int *n_outputs, struct diag *d)
{
    struct ir_value *vals = calloc(g->n_outputs + 1, sizeof *vals);
    if (!vals)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (uint32_t k = 0; k < g->n_outputs; k++) {
        const struct ir_tensor *t = &g->t[g->outputs[k]];
        struct ir_value *v = &vals[k];
        v->name = strdup(t->name);
        v->dtype = t->dtype;
        v->rank = t->rank;
        memcpy(v->dims, t->dims, sizeof v->dims);
        v->nbytes = tensor_bytes(t);
        v->data = malloc(v->nbytes ? v->nbytes : 1);
        const void *src = t->data ? t->data : buf[g->outputs[k]];
        if (!v->name || !v->data || !src) {
            for (uint32_t j = 0; j <= k; j++)
                ir_value_free(&vals[j]);
            free(vals);
            return diag_set(d, src ? ST_ERR_NOMEM : ST_ERR_INVALID,
                            "output '%s' could not be produced", t->name);
        }
        memcpy(v->data, src, v->nbytes);
    }
    *outputs = vals;
    *n_outputs = (int)g->n_outputs;
    return ST_OK;
}

int rt_run(const struct ir_graph *g, const struct cg_target *tgt, const struct ir_value *inputs,
           int n_inputs, struct ir_value **outputs, int *n_outputs, struct diag *d)
{
    void **buf = calloc((size_t)g->nt + 1, sizeof *buf);
    unsigned char *owned = calloc((size_t)g->nt + 1, 1);
    int st = (!buf || !owned) ? diag_set(d, ST_ERR_NOMEM, "out of memory") : ST_OK;
    for (uint32_t t = 0; !st && t < g->nt; t++)
        buf[t] = g->t[t].data;
    if (!st)
        st = feed_inputs(g, inputs, n_inputs, buf, d);
    void *in[256], *out[256];
    for (uint32_t k = 0; !st && k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        if (n->n_in > 256 || n->n_out > 256) {
            st = diag_set(d, ST_ERR_UNSUPPORTED, "node '%s' has too many operands", n->name);
            break;
        }
        if ((st = alloc_outputs(g, n, buf, owned, d)) != ST_OK)
            break;
        for (uint32_t i = 0; i < n->n_in; i++)
            in[i] = n->in[i] == IR_NONE ? NULL : buf[n->in[i]];
        for (uint32_t o = 0; o < n->n_out; o++)
            out[o] = n->out[o] == IR_NONE ? NULL : buf[n->out[o]];
        if ((st = tgt->run(g, n, in, out)) != ST_OK)
            st = diag_set(d, st, "node '%s' (%s) failed on target %s", n->name, ir_ops[n->op].name,
                          tgt->name);
    }
    if (!st)
        st = collect_outputs(g, buf, outputs, n_outputs, d);
    for (uint32_t t = 0; buf && owned && t < g->nt; t++)
        if (owned[t])
            free(buf[t]);
    free(buf);
    free(owned);
    return st;
}
