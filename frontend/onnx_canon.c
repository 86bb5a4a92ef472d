/* onnx_canon.c — one form per op. ONNX moved several operands from attributes
 * to inputs over the opsets (Squeeze-13, Slice-10, Clip-11, Reduce*-13/18, ...).
 * Here the attribute forms become constant inputs, so shape rules and kernels
 * handle only the newest form. Legacy semantics that are not just a moved
 * operand (Softmax < 13 coercing to 2-D) stay keyed on node->opset. */
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

/* Remove attribute `name` from n (if present), returning a copy of it. */
static int take_attr(struct ir_node *n, const char *name, struct ir_attr *a)
{
    for (uint32_t i = 0; i < n->n_attr; i++) {
        if (strcmp(n->attr[i].name, name) != 0)
            continue;
        *a = n->attr[i];
        memmove(&n->attr[i], &n->attr[i + 1], (n->n_attr - i - 1) * sizeof *n->attr);
        n->n_attr--;
        return 1;
    }
    return 0;
}

/* Put tensor t at input slot k (growing the input list with omitted slots). */
static void set_input(struct ir_graph *g, uint32_t nid, uint32_t k, uint32_t t)
{
    struct ir_node *n = &g->n[nid];
    if (k >= n->n_in) {
        uint32_t *in = ir_arena_alloc(g->arena, (k + 2) * sizeof *in);
        for (uint32_t i = 0; i <= k; i++)
            in[i] = i < n->n_in ? n->in[i] : IR_NONE;
        n->in = in;
        n->n_in = k + 1;
    }
    n->in[k] = t;
}

static int ints_input(struct ir_graph *g, uint32_t nid, uint32_t k, const struct ir_attr *a,
                      const char *what, struct diag *d)
{
    if (a->type != IR_ATTR_INTS)
        return diag_set(d, ST_ERR_INVALID, "node '%s': attribute '%s' must be a list of ints",
                        g->n[nid].name, what);
    char stem[512];
    snprintf(stem, sizeof stem, "%s.%s", g->n[nid].name, what);
    uint32_t t = ir_tensor_new_unique(g, stem);
    int64_t n = a->n;
    int st = ir_tensor_set_const(g, t, IR_I64, 1, &n, a->ints);
    if (st)
        return diag_set(d, st, "out of memory");
    set_input(g, nid, k, t);
    return ST_OK;
}

/* A scalar float operand (Clip min/max, Pad value). Its dtype is float32 here;
 * the kernels read such scalars through their own dtype, not the data input's. */
static int float_input(struct ir_graph *g, uint32_t nid, uint32_t k, double v, const char *what,
                       struct diag *d)
{
    char stem[512];
    snprintf(stem, sizeof stem, "%s.%s", g->n[nid].name, what);
    uint32_t t = ir_tensor_new_unique(g, stem);
    float f = (float)v;
    int64_t one = 1;
    int st = ir_tensor_set_const(g, t, IR_F32, 0, &one, &f);
    if (st)
        return diag_set(d, st, "out of memory");
    set_input(g, nid, k, t);
    return ST_OK;
}

static int is_reduce(enum ir_op op)
{
    return op == IR_OP_ReduceMean || op == IR_OP_ReduceSum || op == IR_OP_ReduceMax ||
           op == IR_OP_ReduceMin || op == IR_OP_ReduceProd || op == IR_OP_ReduceL1 ||
           op == IR_OP_ReduceL2 || op == IR_OP_ReduceSumSquare || op == IR_OP_ReduceLogSum ||
           op == IR_OP_ReduceLogSumExp;
}

/* opset at which the op's attribute moved to an input */
static int axes_moved_at(enum ir_op op)
{
    if (op == IR_OP_ReduceSum || op == IR_OP_Squeeze || op == IR_OP_Unsqueeze || op == IR_OP_Split)
        return 13;
    return 18; /* the other reductions */
}

int onnx_canonicalize_node(struct ir_graph *g, uint32_t nid, struct diag *d)
{
    struct ir_node *n = &g->n[nid];
    struct ir_attr a;
    int v = n->opset, st = ST_OK;
    enum ir_op op = n->op;
    if ((is_reduce(op) || op == IR_OP_Squeeze || op == IR_OP_Unsqueeze) && v < axes_moved_at(op)) {
        if (take_attr(n, "axes", &a))
            st = ints_input(g, nid, 1, &a, "axes", d);
    } else if (op == IR_OP_Split && v < 13) {
        if (take_attr(n, "split", &a))
            st = ints_input(g, nid, 1, &a, "split", d);
    } else if (op == IR_OP_Slice && v < 10) {
        static const char *names[] = {"starts", "ends", "axes"};
        for (uint32_t k = 0; k < 3 && !st; k++)
            if (take_attr(&g->n[nid], names[k], &a))
                st = ints_input(g, nid, k + 1, &a, names[k], d);
    } else if (op == IR_OP_Clip && v < 11) {
        if (take_attr(n, "min", &a))
            st = float_input(g, nid, 1, a.f, "min", d);
        if (!st && take_attr(&g->n[nid], "max", &a))
            st = float_input(g, nid, 2, a.f, "max", d);
    } else if (op == IR_OP_Pad && v < 11) {
        if (take_attr(n, "pads", &a))
            st = ints_input(g, nid, 1, &a, "pads", d);
        if (!st && take_attr(&g->n[nid], "value", &a))
            st = float_input(g, nid, 2, a.f, "value", d);
    } else if (op == IR_OP_Dropout && v < 12) {
        take_attr(n, "ratio", &a); /* irrelevant at inference */
        take_attr(&g->n[nid], "is_test", &a);
    }
    return st;
}
