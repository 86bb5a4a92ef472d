/* cse.c — common-subexpression elimination.
 * needs: nothing (fills the topological order itself).
 * guarantees: two live nodes with the same op, the same inputs and equal attributes
 *   compute the same values (every op is a pure function of its operands), so the
 *   later one's consumers read the earlier one's outputs and the later one is left
 *   for pass_dce. Small constants with equal type and bytes count as one tensor, so
 *   `Mul(x, 0.5)` built twice with two scalar constants is one node. A node whose
 *   output is a graph output or kept (IR_T_OUTPUT, IR_T_KEEP) stays: callers hold
 *   those tensor ids.
 * Run on built programs (dc_finish), not on imported models: site selection and
 * `pdc export` find sites by the model's own nodes, and merging two uses of one
 * weight would hide one of them.
 * A decomposition step builds the model's forward several times (target, stochastic,
 * layerwise, adversarial); whatever those share beyond what the builder already
 * reuses (x·Δ of the first site, the embedding of a batch, casts and shape constants)
 * and the matching pieces of their backward passes are computed once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pass.h"

#define CSE_CONST_BYTES 64 /* constants up to this size are compared by content */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0xFF51AFD7ED558CCDull;
}

static int attr_eq(const struct ir_attr *a, const struct ir_attr *b)
{
    if (strcmp(a->name, b->name) != 0 || a->type != b->type)
        return 0;
    switch (a->type) {
    case IR_ATTR_INT: return a->i == b->i;
    case IR_ATTR_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case IR_ATTR_STRING: return a->s_len == b->s_len && memcmp(a->s, b->s, a->s_len) == 0;
    case IR_ATTR_INTS:
        return a->n == b->n && (!a->n || memcmp(a->ints, b->ints, (size_t)a->n * 8) == 0);
    case IR_ATTR_FLOATS:
        return a->n == b->n && (!a->n || memcmp(a->floats, b->floats, (size_t)a->n * 8) == 0);
    default: return 0; /* strings lists, tensors, graphs: never merged */
    }
}

static int node_eq(const struct ir_node *a, const struct ir_node *b)
{
    if (a->op != b->op || a->n_in != b->n_in || a->n_out != b->n_out || a->n_attr != b->n_attr)
        return 0;
    for (uint32_t i = 0; i < a->n_in; i++)
        if (a->in[i] != b->in[i])
            return 0;
    for (uint32_t o = 0; o < a->n_out; o++)
        if ((a->out[o] == IR_NONE) != (b->out[o] == IR_NONE))
            return 0;
    for (uint32_t k = 0; k < a->n_attr; k++) /* attributes in the same order: built alike */
        if (!attr_eq(&a->attr[k], &b->attr[k]))
            return 0;
    return 1;
}

static uint64_t node_hash(const struct ir_node *n)
{
    uint64_t h = mix((uint64_t)n->op, n->n_in);
    for (uint32_t i = 0; i < n->n_in; i++)
        h = mix(h, n->in[i]);
    for (uint32_t k = 0; k < n->n_attr; k++)
        h = mix(h, n->attr[k].type == IR_ATTR_INT ? (uint64_t)n->attr[k].i : n->attr[k].type);
    return h;
}

static uint64_t const_hash(const struct ir_tensor *t, size_t nb)
{
    uint64_t h = mix(t->dtype, (uint64_t)t->rank);
    for (int k = 0; k < t->rank; k++)
        h = mix(h, (uint64_t)t->dims[k]);
    for (size_t i = 0; i < nb; i++)
        h = mix(h, ((const unsigned char *)t->data)[i]);
    return h;
}

static int const_eq(const struct ir_tensor *a, const struct ir_tensor *b, size_t nb)
{
    return a->dtype == b->dtype && a->rank == b->rank &&
           memcmp(a->dims, b->dims, (size_t)a->rank * sizeof a->dims[0]) == 0 &&
           memcmp(a->data, b->data, nb) == 0;
}

struct table {
    uint32_t *slot; /* node or tensor id + 1; 0 empty */
    uint64_t mask;
};

/* small constants fed to nodes: each mapped to the first one with equal content */
static int canon_consts(struct ir_graph *g, uint32_t *map, struct table *tb)
{
    for (uint32_t t = 0; t < g->nt; t++) {
        const struct ir_tensor *x = &g->t[t];
        size_t nb = x->data && !(x->flags & (IR_T_INPUT | IR_T_OUTPUT | IR_T_PARAM | IR_T_KEEP))
                        ? (size_t)ir_numel(x) * ir_dtype_size(x->dtype) : SIZE_MAX;
        if (nb > CSE_CONST_BYTES)
            continue;
        for (uint64_t h = const_hash(x, nb) & tb->mask;; h = (h + 1) & tb->mask) {
            uint32_t s = tb->slot[h];
            if (!s) {
                tb->slot[h] = t + 1;
                break;
            }
            if (const_eq(&g->t[s - 1], x, nb)) {
                map[t] = s - 1;
                break;
            }
        }
    }
    return ST_OK;
}

static int pinned(const struct ir_graph *g, const struct ir_node *n)
{
    for (uint32_t o = 0; o < n->n_out; o++)
        if (n->out[o] != IR_NONE && (g->t[n->out[o]].flags & (IR_T_OUTPUT | IR_T_KEEP)))
            return 1;
    return 0;
}

int pass_cse(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    (void)cx;
    int st = ir_fill_topo(g, d);
    if (st)
        return st;
    uint64_t cap = 16;
    while (cap < 2 * ((uint64_t)g->nn + g->nt))
        cap *= 2;
    struct table tb = {calloc(cap, sizeof *tb.slot), cap - 1};
    uint32_t *map = malloc(((size_t)g->nt + 1) * sizeof *map);
    if (!tb.slot || !map) {
        free(tb.slot);
        free(map);
        return diag_set(d, ST_ERR_NOMEM, "out of memory in cse");
    }
    for (uint32_t t = 0; t < g->nt; t++)
        map[t] = t;
    canon_consts(g, map, &tb);
    uint32_t merged = 0;
    memset(tb.slot, 0, cap * sizeof *tb.slot);
    for (uint32_t k = 0; k < g->ntopo; k++) {
        struct ir_node *n = &g->n[g->topo[k]];
        for (uint32_t i = 0; i < n->n_in; i++)
            if (n->in[i] != IR_NONE)
                n->in[i] = map[n->in[i]];
        for (uint64_t h = node_hash(n) & tb.mask;; h = (h + 1) & tb.mask) {
            uint32_t s = tb.slot[h];
            if (!s) {
                tb.slot[h] = g->topo[k] + 1;
                break;
            }
            const struct ir_node *m = &g->n[s - 1];
            if (node_eq(m, n) && !pinned(g, n)) {
                for (uint32_t o = 0; o < n->n_out; o++)
                    if (n->out[o] != IR_NONE)
                        map[n->out[o]] = m->out[o];
                merged++;
                break;
            }
        }
    }
    const char *dbg = getenv("PDC_DEBUG");
    if (dbg && strstr(dbg, "cse"))
        fprintf(stderr, "cse: %u of %u nodes computed elsewhere already\n", merged, g->ntopo);
    free(tb.slot);
    free(map);
    ir_invalidate(g);
    return ir_fill_topo(g, d);
}
