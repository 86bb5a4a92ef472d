/* print.c — stable, diffable text form of a graph:
 *   input  x : float32[batch=4,5]
 *   const  W : float32[5,2]
 *   %y : float32[4,2] = MatMul(x, W)  # node 'mm0'
 *   output y
 * Nodes print in topological order (import order where dependencies allow). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

void ir_tensor_type_str(const struct ir_tensor *t, const struct ir_graph *g, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "%s", ir_dtype_name(t->dtype));
    if (t->rank < 0) {
        snprintf(buf + (o < n ? o : n), o < n ? n - o : 0, "[?]");
        return;
    }
    o += (size_t)snprintf(buf + (o < n ? o : n), o < n ? n - o : 0, "[");
    for (int i = 0; i < t->rank; i++) {
        const char *sep = i ? "," : "";
        if (t->sym[i] >= 0 && t->dims[i] >= 0)
            o += (size_t)snprintf(buf + (o < n ? o : n), o < n ? n - o : 0, "%s%s=%lld", sep,
                                  g->syms[t->sym[i]], (long long)t->dims[i]);
        else if (t->sym[i] >= 0)
            o += (size_t)snprintf(buf + (o < n ? o : n), o < n ? n - o : 0, "%s%s", sep,
                                  g->syms[t->sym[i]]);
        else if (t->dims[i] < 0)
            o += (size_t)snprintf(buf + (o < n ? o : n), o < n ? n - o : 0, "%s?", sep);
        else
            o += (size_t)snprintf(buf + (o < n ? o : n), o < n ? n - o : 0, "%s%lld", sep,
                                  (long long)t->dims[i]);
    }
    snprintf(buf + (o < n ? o : n), o < n ? n - o : 0, "]");
}

static void print_attr(FILE *f, const struct ir_attr *a)
{
    fprintf(f, "%s=", a->name);
    switch (a->type) {
    case IR_ATTR_INT: fprintf(f, "%lld", (long long)a->i); break;
    case IR_ATTR_FLOAT: fprintf(f, "%.9g", a->f); break;
    case IR_ATTR_STRING: fprintf(f, "\"%s\"", a->s); break;
    case IR_ATTR_INTS:
        fputc('[', f);
        for (int64_t i = 0; i < a->n; i++)
            fprintf(f, "%s%lld", i ? "," : "", (long long)a->ints[i]);
        fputc(']', f);
        break;
    case IR_ATTR_FLOATS:
        fputc('[', f);
        for (int64_t i = 0; i < a->n; i++)
            fprintf(f, "%s%.9g", i ? "," : "", a->floats[i]);
        fputc(']', f);
        break;
    case IR_ATTR_STRINGS:
        fputc('[', f);
        for (int64_t i = 0; i < a->n; i++)
            fprintf(f, "%s\"%s\"", i ? "," : "", a->strs[i]);
        fputc(']', f);
        break;
    case IR_ATTR_TENSOR: fprintf(f, "<tensor>"); break;
    case IR_ATTR_TENSORS: fprintf(f, "<%lld tensors>", (long long)a->n); break;
    case IR_ATTR_GRAPH: fprintf(f, "<graph>"); break;
    case IR_ATTR_GRAPHS: fprintf(f, "<%lld graphs>", (long long)a->n); break;
    case IR_ATTR_SPARSE_TENSOR: fprintf(f, "<sparse tensor>"); break;
    case IR_ATTR_SPARSE_TENSORS: fprintf(f, "<%lld sparse tensors>", (long long)a->n); break;
    case IR_ATTR_TYPE_PROTO: fprintf(f, "<type>"); break;
    case IR_ATTR_TYPE_PROTOS: fprintf(f, "<%lld types>", (long long)a->n); break;
    }
}

void ir_print(const struct ir_graph *g, void *file)
{
    FILE *f = file;
    char ty[256];
    fprintf(f, "graph opset=%d\n", g->opset);
    for (uint32_t i = 0; i < g->n_inputs; i++) {
        const struct ir_tensor *t = &g->t[g->inputs[i]];
        ir_tensor_type_str(t, g, ty, sizeof ty);
        fprintf(f, "input  %s : %s\n", t->name, ty);
    }
    /* constants no live node reads (folded intermediates) are not part of the program */
    unsigned char *used = calloc((size_t)g->nt + 1, 1);
    for (uint32_t i = 0; used && i < g->nn; i++)
        for (uint32_t k = 0; !(g->n[i].flags & IR_N_DEAD) && k < g->n[i].n_in; k++)
            if (g->n[i].in[k] != IR_NONE)
                used[g->n[i].in[k]] = 1;
    for (uint32_t i = 0; used && i < g->n_outputs; i++)
        used[g->outputs[i]] = 1;
    for (uint32_t i = 0; i < g->nt; i++) {
        const struct ir_tensor *t = &g->t[i];
        if (!t->data || t->producer != IR_NONE || (t->flags & IR_T_INPUT) || (used && !used[i]))
            continue;
        ir_tensor_type_str(t, g, ty, sizeof ty);
        fprintf(f, "%s %s : %s\n", (t->flags & IR_T_PARAM) ? "param " : "const ", t->name, ty);
    }
    free(used);
    const uint32_t *order = g->topo;
    uint32_t cnt = g->ntopo;
    int use_topo = (g->valid & IR_VALID_TOPO) != 0;
    for (uint32_t k = 0; k < (use_topo ? cnt : g->nn); k++) {
        uint32_t id = use_topo ? order[k] : k;
        const struct ir_node *n = &g->n[id];
        if (n->flags & IR_N_DEAD)
            continue;
        for (uint32_t o = 0; o < n->n_out; o++) {
            if (n->out[o] == IR_NONE) {
                fprintf(f, "%s_", o ? ", " : "");
                continue;
            }
            const struct ir_tensor *t = &g->t[n->out[o]];
            ir_tensor_type_str(t, g, ty, sizeof ty);
            fprintf(f, "%s%%%s : %s", o ? ", " : "", t->name, ty);
        }
        fprintf(f, " = %s(", ir_ops[n->op].name);
        for (uint32_t i = 0; i < n->n_in; i++)
            fprintf(f, "%s%s", i ? ", " : "", n->in[i] == IR_NONE ? "_" : g->t[n->in[i]].name);
        fputc(')', f);
        if (n->n_attr) {
            fputs(" {", f);
            for (uint32_t a = 0; a < n->n_attr; a++) {
                if (a)
                    fputs(", ", f);
                print_attr(f, &n->attr[a]);
            }
            fputc('}', f);
        }
        fprintf(f, "  # %s\n", n->name);
    }
    for (uint32_t i = 0; i < g->n_outputs; i++)
        fprintf(f, "output %s\n", g->t[g->outputs[i]].name);
}
