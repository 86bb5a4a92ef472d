/* node_attrs.h — a node built from a test's input ids and attribute list, its outputs
 * new tensors o<N>, and constants named t<N>; shared by the op tests (test_ops_elem.c, test_ops_nn.c) and the
 * cpu-target fixture. */
#ifndef PDC_TEST_NODE_ATTRS_H
#define PDC_TEST_NODE_ATTRS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

/* {name, type, i, f, s, n, ints}; a zero type ends a list */
struct at {
    const char *name;
    int type; /* IR_ATTR_INT / FLOAT / STRING / INTS ... */
    int64_t i;
    double f;
    const char *s;
    int64_t n;            /* element count of a list attribute */
    const int64_t *ints;
};

static inline void node_set_attrs(struct ir_graph *g, struct ir_node *n, const struct at *attrs)
{
    int na = 0;
    while (attrs && attrs[na].type)
        na++;
    n->attr = ir_arena_alloc(g->arena, (size_t)(na + 1) * sizeof *n->attr);
    n->n_attr = (uint32_t)na;
    for (int k = 0; k < na; k++) {
        struct ir_attr *a = &n->attr[k];
        a->name = attrs[k].name;
        a->type = (enum ir_attr_type)attrs[k].type;
        a->i = attrs[k].i;
        a->f = attrs[k].f;
        a->s = attrs[k].s;
        a->s_len = attrs[k].s ? strlen(attrs[k].s) : 0;
        a->n = attrs[k].n;
        a->ints = (int64_t *)attrs[k].ints;
    }
}

/* a new constant tensor t<*nt> holding a copy of data */
static inline uint32_t const_build(struct ir_graph *g, int *nt, enum ir_dtype dt, int rank,
                                   const int64_t *dims, const void *data)
{
    char name[32];
    snprintf(name, sizeof name, "t%d", (*nt)++);
    uint32_t t = ir_tensor_new(g, name);
    ir_tensor_set_const(g, t, dt, rank, dims, data);
    return t;
}

/* op(in...) with n_out (<= 4) new output tensors named o<*nt>, o<*nt + 1>, ... and the
 * attributes; shapes are not inferred */
static inline struct ir_node *node_build(struct ir_graph *g, int *nt, enum ir_op op, int n_in,
                                         const uint32_t *in, int n_out, const struct at *attrs,
                                         uint32_t *out)
{
    for (int k = 0; k < n_out; k++) {
        char name[32];
        snprintf(name, sizeof name, "o%d", (*nt)++);
        out[k] = ir_tensor_new(g, name);
    }
    uint32_t id = ir_node_new(g, op, NULL, (uint32_t)n_in, in, (uint32_t)n_out, out);
    node_set_attrs(g, &g->n[id], attrs);
    return &g->n[id];
}

#endif
