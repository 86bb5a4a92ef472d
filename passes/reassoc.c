/* reassoc.c — products reassociated where that does less work.
 * needs: shapes inferred, static. Run on built programs before autodiff (dc_grad, with
 *   the tensors to differentiate by as barriers) and in dc_finish; not on imported
 *   models (site selection reads the model's nodes).
 * guarantees: for Y = MatMul(X, W), W a 2-D float32 matrix [k, n], the product is pushed
 *   into X's producers when that saves at least half of the product's FLOPs:
 *     X = MatMul(A, B), B 2-D [j, k]    → A·(B·W)            (associativity)
 *     X = Add/Sub(P, Q), P, Q X's shape → P·W ± Q·W          (distributivity)
 *     X = Mul(s, Z), s constant along X's last axis (a row scale) → s ⊙ (Z·W)
 *   recursively, each step taken only where it saves. A barrier tensor is never pushed
 *   through (it stays on every path it was on: autodiff's wrt may be intermediates,
 *   which a rewrite could otherwise route the loss around). Y keeps its tensor id: its node is
 *   replaced by the new one that writes it, so whoever holds Y (outputs, taps) still
 *   reads the same value. Nodes left without readers are for pass_dce.
 *   The sums change order, not what is summed: results move by rounding only.
 * Why: a residual stream wider than the features it carries. In resid-mlp-1 every
 * product reads or writes the 1000-wide stream r = x·W_E and leaves through W_U
 * (100 wide): r·V = x·(W_E·V), (r + mlp)·W_U = x·(W_E·W_U) + mlp·W_U, and the masked
 * site's ((x·V) ⊙ m)·U·W_U = ((x·V) ⊙ m)·(U·W_U). Done before autodiff, the backward
 * follows the cheap form: the step's GEMMs go from 12.6 to about 1.5 GFLOP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "pass.h"

#define REASSOC_DEPTH 12

struct ra {
    struct ir_graph *g;
    uint32_t *nread;  /* readers among live nodes; an output or kept tensor counts one more */
    struct ir_builder b;
    const uint32_t *keep; /* barriers */
    uint32_t nkeep;
};

static int is_barrier(const struct ra *r, uint32_t t)
{
    for (uint32_t i = 0; i < r->nkeep; i++)
        if (r->keep[i] == t)
            return 1;
    return 0;
}

static int static_f32(const struct ir_graph *g, uint32_t t, int min_rank)
{
    if (t == IR_NONE || g->t[t].dtype != IR_F32 || g->t[t].rank < min_rank)
        return 0;
    for (int i = 0; i < g->t[t].rank; i++)
        if (g->t[t].dims[i] <= 0)
            return 0;
    return 1;
}

static double last_dim(const struct ir_graph *g, uint32_t t)
{
    return (double)g->t[t].dims[g->t[t].rank - 1];
}

static double rows(const struct ir_graph *g, uint32_t t)
{
    return (double)ir_numel(&g->t[t]) / last_dim(g, t);
}

static int same_shape(const struct ir_graph *g, uint32_t a, uint32_t b)
{
    const struct ir_tensor *x = &g->t[a], *y = &g->t[b];
    return x->rank == y->rank && memcmp(x->dims, y->dims, (size_t)x->rank * sizeof *x->dims) == 0;
}

/* s broadcasts into z without growing it and is constant along z's last axis */
static int row_scale(const struct ir_graph *g, uint32_t s, uint32_t z)
{
    const struct ir_tensor *a = &g->t[s], *b = &g->t[z];
    if (a->dtype != IR_F32 || a->rank < 0 || a->rank > b->rank)
        return 0;
    for (int i = 1; i <= a->rank; i++) {
        int64_t da = a->dims[a->rank - i], db = b->dims[b->rank - i];
        if (da != 1 && (i == 1 || da != db))
            return 0;
    }
    return 1;
}

static void count_readers(struct ra *r)
{
    struct ir_graph *g = r->g;
    memset(r->nread, 0, (size_t)g->nt * sizeof *r->nread);
    for (uint32_t i = 0; i < g->nn; i++)
        for (uint32_t k = 0; !(g->n[i].flags & IR_N_DEAD) && k < g->n[i].n_in; k++)
            if (g->n[i].in[k] != IR_NONE)
                r->nread[g->n[i].in[k]]++;
    for (uint32_t t = 0; t < g->nt; t++)
        if (g->t[t].flags & (IR_T_OUTPUT | IR_T_KEEP))
            r->nread[t]++;
}

/* t's live producer when it is one of the forms a product can be pushed into */
static const struct ir_node *pushable(const struct ra *r, uint32_t t)
{
    const struct ir_graph *g = r->g;
    uint32_t p = g->t[t].producer;
    if (p == IR_NONE || (g->n[p].flags & IR_N_DEAD) || g->n[p].n_in != 2 || g->n[p].n_attr ||
        is_barrier(r, t))
        return NULL;
    const struct ir_node *n = &g->n[p];
    switch (n->op) {
    case IR_OP_MatMul:
        return static_f32(g, n->in[0], 2) && static_f32(g, n->in[1], 2) &&
                       g->t[n->in[1]].rank == 2 ? n : NULL;
    case IR_OP_Add:
    case IR_OP_Sub:
        return static_f32(g, n->in[0], 2) && static_f32(g, n->in[1], 2) &&
                       same_shape(g, n->in[0], t) && same_shape(g, n->in[1], t) ? n : NULL;
    case IR_OP_Mul:
        for (int z = 0; z < 2; z++)
            if (static_f32(g, n->in[z], 2) && same_shape(g, n->in[z], t) &&
                row_scale(g, n->in[1 - z], t))
                return n;
        return NULL;
    default:
        return NULL;
    }
}

/* the operand of a row-scaling Mul that has the product's shape */
static int scaled_operand(const struct ir_graph *g, const struct ir_node *n, uint32_t t)
{
    return same_shape(g, n->in[0], t) && row_scale(g, n->in[1], t) ? 0 : 1;
}

/* whether t is computed anyway once the product stops reading it: it has other readers,
 * or what reads it stays */
static int sunk(const struct ra *r, uint32_t t, int parent_sunk)
{
    return parent_sunk || r->nread[t] != 1;
}

static double best(const struct ra *r, uint32_t t, double n, int is_sunk, int depth);

/* FLOPs saved by computing t·W (W [k, n]) through t's producer rather than as one
 * product; negative when that costs more. is_sunk: t's producer runs regardless. */
static double gain(const struct ra *r, uint32_t t, double n, int is_sunk, int depth)
{
    const struct ir_node *p = depth < REASSOC_DEPTH ? pushable(r, t) : NULL;
    if (!p)
        return -1.0;
    const struct ir_graph *g = r->g;
    double R = rows(g, t), k = last_dim(g, t), own = is_sunk ? 0.0 : 1.0;
    if (p->op == IR_OP_MatMul) { /* t = A·B: 2Rjk + 2Rkn → 2jkn + 2Rjn */
        uint32_t A = p->in[0];
        double j = (double)g->t[p->in[1]].dims[0];
        return 2 * R * k * n + own * 2 * R * j * k - 2 * j * k * n - 2 * R * j * n +
               best(r, A, n, sunk(r, A, is_sunk), depth + 1);
    }
    if (p->op == IR_OP_Mul) { /* the elementwise pass moves from k columns to n */
        uint32_t z = p->in[scaled_operand(g, p, t)];
        return own * R * k - R * n + best(r, z, n, sunk(r, z, is_sunk), depth + 1);
    }
    /* Add, Sub: one product becomes two */
    uint32_t a = p->in[0], c = p->in[1];
    return own * R * k - R * n - 2 * R * k * n + best(r, a, n, sunk(r, a, is_sunk), depth + 1) +
           best(r, c, n, sunk(r, c, is_sunk), depth + 1);
}

static double best(const struct ra *r, uint32_t t, double n, int is_sunk, int depth)
{
    double s = gain(r, t, n, is_sunk, depth);
    return s > 0 ? s : 0;
}

/* a tensor equal to t·W, built the way gain() found cheapest */
static uint32_t emit(struct ra *r, uint32_t t, uint32_t W, int is_sunk, int depth)
{
    struct ir_graph *g = r->g;
    double n = (double)g->t[W].dims[1];
    if (gain(r, t, n, is_sunk, depth) <= 0)
        return bld_matmul(&r->b, t, W);
    const struct ir_node *p = pushable(r, t);
    enum ir_op op = p->op;
    uint32_t a = p->in[0], c = p->in[1]; /* copied: building nodes may move the node array */
    if (op == IR_OP_MatMul)
        return emit(r, a, bld_matmul(&r->b, c, W), sunk(r, a, is_sunk), depth + 1);
    if (op == IR_OP_Mul) {
        if (scaled_operand(g, p, t) == 0)
            return bld_mul(&r->b, emit(r, a, W, sunk(r, a, is_sunk), depth + 1), c);
        return bld_mul(&r->b, a, emit(r, c, W, sunk(r, c, is_sunk), depth + 1));
    }
    uint32_t ea = emit(r, a, W, sunk(r, a, is_sunk), depth + 1);
    return bld_op2(&r->b, op, ea, emit(r, c, W, sunk(r, c, is_sunk), depth + 1));
}

/* node y = MatMul(X, W) rewritten when that saves half of its FLOPs; 1 if it was */
static int try_product(struct ra *r, uint32_t y, struct diag *d)
{
    struct ir_graph *g = r->g;
    const struct ir_node *n = &g->n[y];
    if ((n->flags & IR_N_DEAD) || n->op != IR_OP_MatMul || n->n_in != 2 || n->n_attr ||
        n->out[0] == IR_NONE || r->nread[n->out[0]] == 0)
        return 0;
    uint32_t X = n->in[0], W = n->in[1], Y = n->out[0];
    if (!static_f32(g, X, 2) || !static_f32(g, W, 2) || g->t[W].rank != 2 || !static_f32(g, Y, 2))
        return 0;
    double kn2 = 2 * last_dim(g, X) * (double)g->t[W].dims[1];
    int is_sunk = sunk(r, X, 0);
    if (gain(r, X, (double)g->t[W].dims[1], is_sunk, 0) < 0.5 * rows(g, X) * kn2)
        return 0;
    uint32_t T = emit(r, X, W, is_sunk, 0);
    if (r->b.err)
        return -1;
    uint32_t p = g->t[T].producer;
    if (p == IR_NONE || !same_shape(g, T, Y) || g->t[T].dtype != g->t[Y].dtype) {
        diag_set(d, ST_ERR_INVALID, "reassociating '%s' built a %s of another shape",
                 g->n[y].name, g->t[T].name);
        return -1;
    }
    /* the new root writes Y; the old node and the scratch tensor T go */
    g->n[p].out[0] = Y;
    g->t[Y].producer = p;
    g->t[T].producer = IR_NONE;
    g->n[y].flags |= IR_N_DEAD;
    return 1;
}

int pass_reassoc(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    (void)cx;
    return pass_reassoc_keep(g, NULL, 0, d);
}

int pass_reassoc_keep(struct ir_graph *g, const uint32_t *keep, uint32_t nkeep, struct diag *d)
{
    int st = ir_fill_topo(g, d);
    if (st)
        return st;
    char prefix[32]; /* node names stay unique when a program runs the pass twice */
    snprintf(prefix, sizeof prefix, "reassoc%u", g->nn);
    struct ra r = {g, calloc((size_t)g->nt + 1, sizeof(uint32_t)), bld_begin(g, prefix, d), keep,
                   nkeep};
    uint32_t *order = malloc(((size_t)g->ntopo + 1) * sizeof *order);
    if (!r.nread || !order) {
        free(r.nread);
        free(order);
        return diag_set(d, ST_ERR_NOMEM, "out of memory reassociating products");
    }
    uint32_t no = g->ntopo;
    memcpy(order, g->topo, (size_t)no * sizeof *order);
    count_readers(&r);
    int done = 0;
    /* consumers first: an outer product takes the inner ones along */
    for (uint32_t k = no; k-- > 0;) {
        int rc = try_product(&r, order[k], d);
        if (rc < 0) {
            st = r.b.err ? r.b.err : (int)d->status;
            break;
        }
        if (rc) {
            done++;
            uint32_t *grown = realloc(r.nread, ((size_t)g->nt + 1) * sizeof *grown);
            if (!grown) {
                st = diag_set(d, ST_ERR_NOMEM, "out of memory reassociating products");
                break;
            }
            r.nread = grown;
            count_readers(&r);
        }
    }
    free(r.nread);
    free(order);
    if (st)
        return st;
    const char *dbg = getenv("PDC_DEBUG");
    if (dbg && strstr(dbg, "gemm") && done)
        fprintf(stderr, "gemm: %d products reassociated\n", done);
    ir_invalidate(g);
    return ir_fill_topo(g, d);
}
