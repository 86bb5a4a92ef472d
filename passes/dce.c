/* dce.c — dead-code elimination.
 * needs: nothing.  guarantees: every live node feeds a graph output; topo refilled. */
#include <stdlib.h>

#include "pass.h"

int pass_dce(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    (void)cx;
    unsigned char *need = calloc((size_t)g->nt + 1, 1);
    if (!need)
        return diag_set(d, ST_ERR_NOMEM, "out of memory in dce");
    for (uint32_t i = 0; i < g->n_outputs; i++)
        need[g->outputs[i]] = 1;
    int st = ir_fill_topo(g, d);
    if (st) {
        free(need);
        return st;
    }
    /* walk backwards: a node lives if any of its outputs is needed */
    for (uint32_t k = g->ntopo; k-- > 0;) {
        struct ir_node *n = &g->n[g->topo[k]];
        int live = 0;
        for (uint32_t o = 0; o < n->n_out; o++)
            if (n->out[o] != IR_NONE && need[n->out[o]])
                live = 1;
        if (!live) {
            n->flags |= IR_N_DEAD;
            for (uint32_t o = 0; o < n->n_out; o++)
                if (n->out[o] != IR_NONE)
                    g->t[n->out[o]].producer = IR_NONE;
            continue;
        }
        for (uint32_t i = 0; i < n->n_in; i++)
            if (n->in[i] != IR_NONE)
                need[n->in[i]] = 1;
    }
    free(need);
    ir_invalidate(g);
    return ir_fill_topo(g, d);
}
