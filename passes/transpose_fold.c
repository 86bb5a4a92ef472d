/* transpose_fold.c — a 2-D MatMul reading a transposed matrix becomes a Gemm with
 * transA/transB, so the GEMM reads the matrix as it lies instead of a copy.
 * needs: shapes inferred. guarantees: every float32 MatMul whose operands are both
 *   2-D and one or both of them the output of a 2-D Transpose reads the
 *   Transpose's input instead, as Gemm(A, B, transA, transB) (alpha 1, no C: the
 *   same product); the Transpose stays for its other readers, or for pass_dce.
 * Reverse-mode autodiff writes dA = dY·Bᵀ and dB = Aᵀ·dY for every product of a
 * step, and each of those transposes was a full copy of an activation or weight
 * (5-8 % of a toy SPD step on the cpu target). Run on built programs (dc_finish),
 * not on imported models: site selection reads the model's own ops. */
#include "pass.h"

/* t, the output of a 2-D Transpose (default or [1, 0] permutation): its input */
static uint32_t transposed_from(const struct ir_graph *g, uint32_t t)
{
    uint32_t p = g->t[t].producer;
    if (p == IR_NONE || g->n[p].op != IR_OP_Transpose || g->t[t].rank != 2)
        return IR_NONE;
    const int64_t *perm;
    int64_t n = ir_attr_ints(&g->n[p], "perm", &perm);
    if (n >= 0 && !(n == 2 && perm[0] == 1 && perm[1] == 0))
        return IR_NONE;
    return g->n[p].in[0];
}

int pass_fold_transpose(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    (void)cx;
    for (uint32_t i = 0; i < g->nn; i++) {
        struct ir_node *n = &g->n[i];
        if ((n->flags & IR_N_DEAD) || n->op != IR_OP_MatMul || n->n_in != 2)
            continue;
        const struct ir_tensor *a = &g->t[n->in[0]], *b = &g->t[n->in[1]];
        if (a->rank != 2 || b->rank != 2 || a->dtype != IR_F32 || b->dtype != IR_F32)
            continue;
        uint32_t ta = transposed_from(g, n->in[0]), tb = transposed_from(g, n->in[1]);
        if (ta == IR_NONE && tb == IR_NONE)
            continue;
        struct ir_attr *at = ir_arena_alloc(g->arena, 2 * sizeof *at);
        if (!at)
            return diag_set(d, ST_ERR_NOMEM, "out of memory folding transposes");
        at[0] = (struct ir_attr){.name = "transA", .type = IR_ATTR_INT, .i = ta != IR_NONE};
        at[1] = (struct ir_attr){.name = "transB", .type = IR_ATTR_INT, .i = tb != IR_NONE};
        if (ta != IR_NONE)
            n->in[0] = ta;
        if (tb != IR_NONE)
            n->in[1] = tb;
        n->op = IR_OP_Gemm;
        n->attr = at;
        n->n_attr = 2;
    }
    ir_invalidate(g);
    return ir_fill_topo(g, d);
}
