/* gemm_fold.c — GEMM folding: work next to a 2-D product goes into the product's own
 * Gemm attributes and operands, where the GEMM does it in its stride and write-back.
 * needs: shapes inferred. Run on built programs (dc_finish), not on imported models:
 *   site selection and `pdc export` read the model's own ops.
 * guarantees, for float32 2-D products only:
 *   transposes  MatMul(Transpose(A), B) → Gemm(A, B, transA = 1), likewise for B (a
 *               default or [1, 0] permutation): the GEMM reads the matrix as it lies;
 *   epilogue    Add(P, C) where P is such a product (a MatMul, or a Gemm without C)
 *               read by nothing but this Add and C broadcasts to P's [M, N] →
 *               Gemm(A, B, C, beta = 1) writing the Add's output: the GEMM starts
 *               from C and accumulates, instead of a separate pass reading both.
 *   batched     MatMul(Transpose(A), B) with an operand of rank > 2, the Transpose swapping
 *               the last two dims only → MatMul(A, B, transA = 1) (pdc's attribute, read
 *               through ir_matmul_view), likewise for B: autodiff's dW = Xᵀ·dY of a
 *               per-component layer transposed a [C, N, h] activation every step;
 *   outer       MatMul(A [.., M, 1], B [.., 1, N]), any float32 batch: → Mul(A, B), whose
 *               broadcast is the product's (one term per element, batch dims broadcast
 *               alike). A GEMM call per batch for M·N multiplies that fusion then
 *               joins to the elementwise work around it (a per-component CI MLP's first
 *               layer and the gradient into its hidden units: 6 % of a tms-5-2 step).
 *   Each gives the same sums (Σ_k a·b, then + C; a K = 1 sum is its one product, up to
 *   the sign of a zero product); the Transposes and Adds left without readers are for
 *   pass_dce.
 * Reverse-mode autodiff writes dA = dY·Bᵀ and dB = Aᵀ·dY for every product of a step
 * (each transpose a full copy of an activation or weight: 5-8 % of a toy SPD step on
 * the cpu target), and sums the gradient contributions of a tensor read twice with
 * Adds of products; the masked forward adds x·Δ to the components' product. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int is_2d_f32(const struct ir_graph *g, uint32_t t)
{
    return t != IR_NONE && g->t[t].rank == 2 && g->t[t].dtype == IR_F32;
}

/* n becomes Gemm with these attributes (alpha 1; beta 1 matters only with a C) */
static int make_gemm(struct ir_graph *g, struct ir_node *n, int ta, int tb, struct diag *d)
{
    struct ir_attr *at = ir_arena_alloc(g->arena, 2 * sizeof *at);
    if (!at)
        return diag_set(d, ST_ERR_NOMEM, "out of memory folding GEMMs");
    at[0] = (struct ir_attr){.name = "transA", .type = IR_ATTR_INT, .i = ta};
    at[1] = (struct ir_attr){.name = "transB", .type = IR_ATTR_INT, .i = tb};
    n->op = IR_OP_Gemm;
    n->attr = at;
    n->n_attr = 2;
    return ST_OK;
}

/* t, the output of a Transpose that swaps the last two of rank >= 2 dims and keeps the
 * rest: its input */
static uint32_t swapped_from(const struct ir_graph *g, uint32_t t)
{
    uint32_t p = g->t[t].producer;
    int r = g->t[t].rank;
    if (p == IR_NONE || g->n[p].op != IR_OP_Transpose || r < 2)
        return IR_NONE;
    const int64_t *perm;
    int64_t n = ir_attr_ints(&g->n[p], "perm", &perm);
    if (n < 0)
        return r == 2 ? g->n[p].in[0] : IR_NONE; /* the default reverses: a swap at rank 2 */
    if (n != r || perm[r - 2] != r - 1 || perm[r - 1] != r - 2)
        return IR_NONE;
    for (int i = 0; i < r - 2; i++)
        if (perm[i] != i)
            return IR_NONE;
    return g->n[p].in[0];
}

/* a batched product (an operand of rank > 2) reading a swapped operand reads it as it
 * lies instead: pdc's transA / transB on MatMul (ir_matmul_view) */
static int fold_batched_transposes(struct ir_graph *g, int *folded, struct diag *d)
{
    for (uint32_t i = 0; i < g->nn; i++) {
        struct ir_node *n = &g->n[i];
        if ((n->flags & IR_N_DEAD) || n->op != IR_OP_MatMul || n->n_in != 2 || n->n_attr)
            continue;
        const struct ir_tensor *a = &g->t[n->in[0]], *b = &g->t[n->in[1]];
        if (a->dtype != IR_F32 || b->dtype != IR_F32 || (a->rank <= 2 && b->rank <= 2))
            continue;
        uint32_t sa = swapped_from(g, n->in[0]), sb = swapped_from(g, n->in[1]);
        if (sa == IR_NONE && sb == IR_NONE)
            continue;
        struct ir_attr *at = ir_arena_alloc(g->arena, 2 * sizeof *at);
        if (!at)
            return diag_set(d, ST_ERR_NOMEM, "out of memory folding GEMMs");
        at[0] = (struct ir_attr){.name = "transA", .type = IR_ATTR_INT, .i = sa != IR_NONE};
        at[1] = (struct ir_attr){.name = "transB", .type = IR_ATTR_INT, .i = sb != IR_NONE};
        n->in[0] = sa != IR_NONE ? sa : n->in[0];
        n->in[1] = sb != IR_NONE ? sb : n->in[1];
        n->attr = at;
        n->n_attr = 2;
        ++*folded;
    }
    return ST_OK;
}

static void fold_outer(struct ir_graph *g, int *folded)
{
    for (uint32_t i = 0; i < g->nn; i++) {
        struct ir_node *n = &g->n[i];
        if ((n->flags & IR_N_DEAD) || n->op != IR_OP_MatMul || n->n_in != 2 || n->n_attr)
            continue; /* (attributes: transposed operands, whose K is elsewhere) */
        const struct ir_tensor *a = &g->t[n->in[0]], *b = &g->t[n->in[1]];
        if (a->dtype != IR_F32 || b->dtype != IR_F32 || a->rank < 2 || b->rank < 2 ||
            a->dims[a->rank - 1] != 1 || b->dims[b->rank - 2] != 1)
            continue;
        n->op = IR_OP_Mul;
        n->attr = NULL;
        n->n_attr = 0;
        ++*folded;
    }
}

static int fold_transposes(struct ir_graph *g, int *folded, struct diag *d)
{
    for (uint32_t i = 0; i < g->nn; i++) {
        struct ir_node *n = &g->n[i];
        if ((n->flags & IR_N_DEAD) || n->op != IR_OP_MatMul || n->n_in != 2 ||
            !is_2d_f32(g, n->in[0]) || !is_2d_f32(g, n->in[1]))
            continue;
        uint32_t ta = transposed_from(g, n->in[0]), tb = transposed_from(g, n->in[1]);
        if (ta == IR_NONE && tb == IR_NONE)
            continue;
        if (ta != IR_NONE)
            n->in[0] = ta;
        if (tb != IR_NONE)
            n->in[1] = tb;
        if (make_gemm(g, n, ta != IR_NONE, tb != IR_NONE, d))
            return d->status;
        ++*folded;
    }
    return ST_OK;
}

/* the product node behind t that an epilogue may take over, or NULL */
static struct ir_node *product(struct ir_graph *g, uint32_t t, const uint32_t *uses)
{
    uint32_t p = g->t[t].producer;
    if (p == IR_NONE || uses[t] != 1 || (g->t[t].flags & (IR_T_OUTPUT | IR_T_KEEP)))
        return NULL;
    struct ir_node *n = &g->n[p];
    if ((n->flags & IR_N_DEAD) || !is_2d_f32(g, t) || !is_2d_f32(g, n->in[0]) ||
        !is_2d_f32(g, n->in[1]))
        return NULL;
    if (n->op == IR_OP_MatMul)
        return n;
    if (n->op != IR_OP_Gemm || (n->n_in > 2 && n->in[2] != IR_NONE) ||
        ir_attr_float(n, "alpha", 1.0) != 1.0)
        return NULL;
    return n;
}

/* c broadcasts one way to [M, N] (Gemm's rule for C) */
static int fits_c(const struct ir_graph *g, uint32_t c, const struct ir_tensor *y)
{
    const struct ir_tensor *t = &g->t[c];
    if (t->dtype != IR_F32 || t->rank > 2)
        return 0;
    for (int k = 0; k < t->rank; k++) {
        int64_t want = y->dims[2 - t->rank + k];
        if (t->dims[k] != want && t->dims[k] != 1)
            return 0;
    }
    return 1;
}

static int fold_epilogue(struct ir_graph *g, struct ir_node *add, const uint32_t *uses,
                         int *folded, struct diag *d)
{
    for (int side = 0; side < 2; side++) {
        uint32_t c = add->in[1 - side];
        struct ir_node *p = product(g, add->in[side], uses);
        const struct ir_tensor *y = &g->t[add->out[0]], *py = &g->t[add->in[side]];
        if (!p || py->dims[0] != y->dims[0] || py->dims[1] != y->dims[1] || !fits_c(g, c, y) ||
            c == add->in[side])
            continue;
        int ta = p->op == IR_OP_Gemm && ir_attr_int(p, "transA", 0) != 0;
        int tb = p->op == IR_OP_Gemm && ir_attr_int(p, "transB", 0) != 0;
        uint32_t *in = ir_arena_alloc(g->arena, 3 * sizeof *in);
        if (!in || make_gemm(g, p, ta, tb, d))
            return diag_set(d, ST_ERR_NOMEM, "out of memory folding GEMMs");
        in[0] = p->in[0];
        in[1] = p->in[1];
        in[2] = c;
        p->in = in;
        p->n_in = 3;
        g->t[p->out[0]].producer = IR_NONE; /* the product's own tensor: read by nobody */
        p->out[0] = add->out[0];
        g->t[add->out[0]].producer = (uint32_t)(p - g->n);
        add->flags |= IR_N_DEAD;
        ++*folded;
        return ST_OK;
    }
    return ST_OK;
}

int pass_fold_gemm(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    (void)cx;
    int nt = 0, ne = 0, no = 0, nbt = 0;
    fold_outer(g, &no);
    if (fold_transposes(g, &nt, d) || fold_batched_transposes(g, &nbt, d))
        return d->status;
    uint32_t *uses = calloc((size_t)g->nt + 1, sizeof *uses);
    if (!uses)
        return diag_set(d, ST_ERR_NOMEM, "out of memory folding GEMMs");
    for (uint32_t i = 0; i < g->nn; i++)
        for (uint32_t k = 0; !(g->n[i].flags & IR_N_DEAD) && k < g->n[i].n_in; k++)
            if (g->n[i].in[k] != IR_NONE)
                uses[g->n[i].in[k]]++;
    int st = ST_OK;
    for (uint32_t i = 0; !st && i < g->nn; i++) {
        struct ir_node *n = &g->n[i];
        if (!(n->flags & IR_N_DEAD) && n->op == IR_OP_Add && n->n_in == 2 &&
            is_2d_f32(g, n->out[0]))
            st = fold_epilogue(g, n, uses, &ne, d);
    }
    free(uses);
    if (st)
        return st;
    const char *dbg = getenv("PDC_DEBUG");
    if (dbg && strstr(dbg, "gemm"))
        fprintf(stderr, "gemm: %d transposes and %d adds folded into Gemm, %d batched "
                "products read operands transposed, %d outer products made Mul\n", nt, ne, nbt,
                no);
    ir_invalidate(g);
    return ir_fill_topo(g, d);
}
