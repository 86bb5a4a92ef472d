/* fuse.c — the fusion pass: partition a program's nodes into kernel groups (fuse.h).
 *
 * Needs: g shape-inferred with an execution order (IR_VALID_TOPO). Guarantees: every
 * node is in exactly one group; running the groups in plan order, each group's nodes
 * in its order, computes what the topological order computes; a fused group's
 * internal tensors are read by nobody outside it and are not graph outputs or kept.
 *
 * Greedy, in topological order: a fusible node joins the group of one of its
 * producers when the shapes agree and the group stays runnable as a unit. The group
 * runs at its newest node's position, so every node outside it that reads one of its
 * results must come later than that; joining is refused when such a reader comes
 * before the candidate (it would then run before the value exists). */
#include <stdlib.h>
#include <string.h>

#include "fuse.h"

#define NO_GROUP UINT32_MAX

static int is_f32(const struct ir_graph *g, uint32_t t) { return g->t[t].dtype == IR_F32; }

/* the ops whose kernels codegen/llvm emits, by operand kinds */
static int unary_f32(enum ir_op op)
{
    switch (op) {
    case IR_OP_Identity: case IR_OP_StopGradient: case IR_OP_Neg: case IR_OP_Abs:
    case IR_OP_Relu: case IR_OP_LeakyRelu: case IR_OP_Sigmoid: case IR_OP_Tanh:
    case IR_OP_Erf: case IR_OP_Exp: case IR_OP_Log: case IR_OP_Sqrt: case IR_OP_Reciprocal:
    case IR_OP_Softplus: case IR_OP_Gelu: case IR_OP_LowerLeakyHard: case IR_OP_UpperLeakyHard:
    case IR_OP_LowerLeakyHardGrad: case IR_OP_UpperLeakyHardGrad:
    case IR_OP_Add: case IR_OP_Sub: case IR_OP_Mul: case IR_OP_Div: case IR_OP_Pow:
    case IR_OP_Max: case IR_OP_Min: case IR_OP_Sum: case IR_OP_Clip:
        return 1;
    default:
        return 0;
    }
}

static int compare_op(enum ir_op op)
{
    return op == IR_OP_Equal || op == IR_OP_Less || op == IR_OP_LessOrEqual ||
           op == IR_OP_Greater || op == IR_OP_GreaterOrEqual;
}

/* operand dtypes: all float32 but Where's condition, comparison results and Casts
 * between float32 and bool */
static int operand_types_ok(const struct ir_graph *g, const struct ir_node *n)
{
    enum ir_dtype yt = g->t[n->out[0]].dtype;
    if (n->op == IR_OP_Cast) {
        enum ir_dtype xt = g->t[n->in[0]].dtype;
        return (xt == IR_F32 || xt == IR_BOOL) && (yt == IR_F32 || yt == IR_BOOL);
    }
    if (n->op == IR_OP_Where)
        return g->t[n->in[0]].dtype == IR_BOOL && is_f32(g, n->in[1]) && is_f32(g, n->in[2]) &&
               yt == IR_F32;
    if (!unary_f32(n->op) && !compare_op(n->op))
        return 0;
    for (uint32_t i = 0; i < n->n_in; i++)
        if (!is_f32(g, n->in[i]))
            return 0;
    return yt == (compare_op(n->op) ? IR_BOOL : IR_F32);
}

int cg_fusible(const struct ir_graph *g, const struct ir_node *n)
{
    if (n->n_out != 1 || n->out[0] == IR_NONE || n->n_in == 0 || n->n_in > 8)
        return 0; /* (a long variadic Sum would not fit a kernel's buffer list) */
    const struct ir_tensor *y = &g->t[n->out[0]];
    if (ir_numel(y) <= 0)
        return 0;
    for (uint32_t i = 0; i < n->n_in; i++)
        if (n->in[i] == IR_NONE || g->t[n->in[i]].rank > y->rank || ir_numel(&g->t[n->in[i]]) <= 0)
            return 0;
    for (uint32_t i = 1; n->op == IR_OP_Clip && i < n->n_in; i++)
        if (ir_numel(&g->t[n->in[i]]) != 1)
            return 0; /* ONNX's bounds are scalars; anything else is ref's to reject */
    if (n->op == IR_OP_Gelu) {
        const char *a = ir_attr_str(n, "approximate", "none");
        if (strcmp(a, "none") != 0 && strcmp(a, "tanh") != 0)
            return 0;
    }
    return operand_types_ok(g, n);
}

/* ---- grouping ------------------------------------------------------------- */

struct fstate {
    const struct ir_graph *g;
    uint32_t *pos;            /* node id -> topological position */
    uint32_t *gid;            /* topological position -> group */
    uint32_t *next;           /* topological position -> next member of its group */
    uint32_t *head, *tail, *count; /* per group: member positions, size */
    uint32_t *cons_at, *cons; /* tensor -> its readers (node ids), CSR */
    uint32_t ngroups;
};

static int consumers(struct fstate *s)
{
    const struct ir_graph *g = s->g;
    s->cons_at = calloc((size_t)g->nt + 2, sizeof *s->cons_at);
    if (!s->cons_at)
        return -1;
    size_t total = 0;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        for (uint32_t i = 0; i < n->n_in; i++)
            if (n->in[i] != IR_NONE)
                s->cons_at[n->in[i] + 1]++, total++;
    }
    for (uint32_t t = 0; t < g->nt; t++)
        s->cons_at[t + 1] += s->cons_at[t];
    s->cons = malloc((total + 1) * sizeof *s->cons);
    uint32_t *fill = calloc((size_t)g->nt + 1, sizeof *fill);
    if (!s->cons || !fill) {
        free(fill);
        return -1;
    }
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        for (uint32_t i = 0; i < n->n_in; i++)
            if (n->in[i] != IR_NONE)
                s->cons[s->cons_at[n->in[i]] + fill[n->in[i]]++] = g->topo[k];
    }
    free(fill);
    return 0;
}

static int in_group(const struct fstate *s, uint32_t node, uint32_t gr)
{
    uint32_t p = s->pos[node];
    return p != NO_GROUP && s->gid[p] == gr;
}

/* does group gr (plus the node at position k, not yet a member) produce tensor t? */
static int made_inside(const struct fstate *s, uint32_t t, uint32_t gr, uint32_t k)
{
    uint32_t pr = s->g->t[t].producer;
    return pr != IR_NONE && pr < s->g->nn &&
           (in_group(s, pr, gr) || (k != NO_GROUP && s->pos[pr] == k));
}

static int needed_outside(const struct fstate *s, uint32_t t, uint32_t gr, uint32_t k)
{
    if (s->g->t[t].flags & (IR_T_OUTPUT | IR_T_KEEP))
        return 1;
    for (uint32_t c = s->cons_at[t]; c < s->cons_at[t + 1]; c++)
        if (!in_group(s, s->cons[c], gr) && s->pos[s->cons[c]] != k)
            return 1;
    return 0;
}

static int same_shape(const struct ir_tensor *a, const struct ir_tensor *b)
{
    if (a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

/* can the node at position k join group gr? Shapes agree, no outside reader of the
 * group's results runs before k, and the kernel's buffers stay bounded. */
static int can_join(const struct fstate *s, uint32_t gr, uint32_t k)
{
    const struct ir_graph *g = s->g;
    const struct ir_node *n = &g->n[g->topo[k]];
    const struct ir_node *h = &g->n[g->topo[s->head[gr]]];
    if (s->count[gr] >= CG_GROUP_MAX_NODES || !same_shape(&g->t[n->out[0]], &g->t[h->out[0]]))
        return 0;
    uint32_t bufs = 0;
    for (uint32_t p = s->head[gr]; p != NO_GROUP; p = s->next[p]) {
        const struct ir_node *m = &g->n[g->topo[p]];
        uint32_t t = m->out[0];
        for (uint32_t c = s->cons_at[t]; c < s->cons_at[t + 1]; c++)
            if (!in_group(s, s->cons[c], gr) && s->pos[s->cons[c]] < k)
                return 0;
        bufs += needed_outside(s, t, gr, k);
        for (uint32_t i = 0; i < m->n_in; i++) /* duplicates over-count: a safe bound */
            bufs += !made_inside(s, m->in[i], gr, k);
    }
    for (uint32_t i = 0; i < n->n_in; i++)
        bufs += !made_inside(s, n->in[i], gr, k);
    return bufs + 1 <= CG_GROUP_MAX_BUFS;
}

static void add_member(struct fstate *s, uint32_t gr, uint32_t k)
{
    s->gid[k] = gr;
    s->next[k] = NO_GROUP;
    if (s->count[gr]++ == 0)
        s->head[gr] = k;
    else
        s->next[s->tail[gr]] = k;
    s->tail[gr] = k;
}

/* the largest group of n's producers that n can join, else a new group (the largest:
 * a smaller one left behind can still sink into it, sink_groups) */
static void place_node(struct fstate *s, uint32_t k, int fusible)
{
    const struct ir_graph *g = s->g;
    const struct ir_node *n = &g->n[g->topo[k]];
    uint32_t best = NO_GROUP;
    for (uint32_t i = 0; fusible && i < n->n_in; i++) {
        uint32_t pr = g->t[n->in[i]].producer;
        if (pr == IR_NONE || pr >= g->nn || s->pos[pr] == NO_GROUP)
            continue;
        uint32_t gr = s->gid[s->pos[pr]];
        if (gr != NO_GROUP && gr != best && cg_fusible(g, &g->n[pr]) &&
            (best == NO_GROUP || s->count[gr] > s->count[best]) && can_join(s, gr, k))
            best = gr;
    }
    add_member(s, best != NO_GROUP ? best : s->ngroups++, k);
}

/* A fused group whose results only one other fused group reads joins it: that group
 * runs later (it reads them), so the joiner's inputs exist by then, and its values
 * never go to memory. The greedy pass cannot do this, since a group grows only by
 * readers of its members: a lone node behind a GEMM (the VJP of a per-component MLP's
 * hidden layer, dh = dy·W2ᵀ, an outer product made Mul, times GELU'(x)), or a whole
 * chain beside another (GELU's VJP: its erf half and its exp half, both read by one
 * Add), wrote [C, N, h] for the next kernel. Latest first, so chains merge in turn. */
static uint32_t sole_reader_group(const struct fstate *s, uint32_t gr)
{
    const struct ir_graph *g = s->g;
    uint32_t to = NO_GROUP;
    for (uint32_t p = s->head[gr]; p != NO_GROUP; p = s->next[p]) {
        const struct ir_node *m = &g->n[g->topo[p]];
        uint32_t t = m->out[0];
        if (!cg_fusible(g, m) || (g->t[t].flags & (IR_T_OUTPUT | IR_T_KEEP)))
            return NO_GROUP;
        for (uint32_t c = s->cons_at[t]; c < s->cons_at[t + 1]; c++) {
            uint32_t q = s->gid[s->pos[s->cons[c]]];
            if (q == gr)
                continue;
            if ((to != NO_GROUP && q != to) || !cg_fusible(g, &g->n[s->cons[c]]))
                return NO_GROUP;
            to = q;
        }
    }
    return to;
}

static int in_either(const struct fstate *s, uint32_t t, uint32_t a, uint32_t b)
{
    uint32_t pr = s->g->t[t].producer;
    return pr != IR_NONE && pr < s->g->nn && (in_group(s, pr, a) || in_group(s, pr, b));
}

/* would groups a and b together stay within a kernel's bounds? */
static int merge_fits(const struct fstate *s, uint32_t a, uint32_t b)
{
    const struct ir_graph *g = s->g;
    const struct ir_node *ha = &g->n[g->topo[s->head[a]]], *hb = &g->n[g->topo[s->head[b]]];
    if (s->count[a] + s->count[b] > CG_GROUP_MAX_NODES ||
        !same_shape(&g->t[ha->out[0]], &g->t[hb->out[0]]))
        return 0;
    uint32_t bufs = 0; /* duplicates over-count: a safe bound, as can_join's */
    for (int side = 0; side < 2; side++)
        for (uint32_t p = s->head[side ? b : a]; p != NO_GROUP; p = s->next[p]) {
            const struct ir_node *m = &g->n[g->topo[p]];
            for (uint32_t i = 0; i < m->n_in; i++)
                bufs += !in_either(s, m->in[i], a, b);
            uint32_t t = m->out[0];
            int outside = (g->t[t].flags & (IR_T_OUTPUT | IR_T_KEEP)) != 0;
            for (uint32_t c = s->cons_at[t]; !outside && c < s->cons_at[t + 1]; c++) {
                uint32_t q = s->gid[s->pos[s->cons[c]]];
                outside = q != a && q != b;
            }
            bufs += (uint32_t)outside;
        }
    return bufs <= CG_GROUP_MAX_BUFS;
}

/* group a's members into group b, both lists kept in position order */
static void merge_into(struct fstate *s, uint32_t a, uint32_t b)
{
    uint32_t pa = s->head[a], pb = s->head[b], head = NO_GROUP, last = NO_GROUP;
    while (pa != NO_GROUP || pb != NO_GROUP) {
        uint32_t *take = pb == NO_GROUP || (pa != NO_GROUP && pa < pb) ? &pa : &pb, q = *take;
        *take = s->next[q];
        s->gid[q] = b;
        if (last == NO_GROUP)
            head = q;
        else
            s->next[last] = q;
        last = q;
    }
    s->next[last] = NO_GROUP;
    s->head[b] = head;
    s->tail[b] = last;
    s->count[b] += s->count[a];
    s->count[a] = 0;
}

static void sink_groups(struct fstate *s)
{
    for (uint32_t k = s->g->ntopo; k-- > 0;) {
        uint32_t gr = s->gid[k];
        if (gr == NO_GROUP || s->count[gr] == 0 || s->tail[gr] != k)
            continue; /* each group once, at its last member */
        uint32_t to = sole_reader_group(s, gr);
        if (to != NO_GROUP && merge_fits(s, gr, to))
            merge_into(s, gr, to);
    }
}

/* ---- the plan ------------------------------------------------------------- */

static int add_unique(uint32_t *list, uint32_t *n, uint32_t t)
{
    for (uint32_t i = 0; i < *n; i++)
        if (list[i] == t)
            return 0;
    list[(*n)++] = t;
    return 1;
}

/* a fused group's buffers: what it reads from outside, what outside needs from it */
static int group_io(struct fstate *s, uint32_t gr, struct cg_group *out, unsigned char *internal)
{
    const struct ir_graph *g = s->g;
    out->in = malloc(CG_GROUP_MAX_BUFS * sizeof *out->in);
    out->out = malloc(CG_GROUP_MAX_BUFS * sizeof *out->out);
    if (!out->in || !out->out)
        return -1;
    for (uint32_t p = s->head[gr]; p != NO_GROUP; p = s->next[p]) {
        const struct ir_node *m = &g->n[g->topo[p]];
        for (uint32_t i = 0; i < m->n_in; i++)
            if (!made_inside(s, m->in[i], gr, NO_GROUP))
                add_unique(out->in, &out->n_in, m->in[i]);
        if (needed_outside(s, m->out[0], gr, NO_GROUP))
            add_unique(out->out, &out->n_out, m->out[0]);
        else
            internal[m->out[0]] = 1;
    }
    return 0;
}

static int alloc_plan(const struct ir_graph *g, struct cg_plan *p)
{
    memset(p, 0, sizeof *p);
    p->groups = calloc((size_t)g->ntopo + 1, sizeof *p->groups);
    p->order = malloc(((size_t)g->ntopo + 1) * sizeof *p->order);
    p->group_end = malloc(((size_t)g->ntopo + 1) * sizeof *p->group_end);
    p->internal = calloc((size_t)g->nt + 1, 1);
    return p->groups && p->order && p->group_end && p->internal ? 0 : -1;
}

/* append group gr (or, when it stays unfused, the node at position k alone) */
static int emit_group(struct fstate *s, struct cg_plan *p, uint32_t *at, uint32_t gr, int fused,
                      uint32_t k)
{
    struct cg_group *cg = &p->groups[p->n_groups++];
    cg->nodes = p->order + *at;
    cg->fused = fused;
    if (!fused) {
        p->order[*at] = s->g->topo[k];
        p->group_end[*at] = *at;
        cg->n_nodes = 1;
        (*at)++;
        return 0;
    }
    uint32_t first = *at;
    for (uint32_t q = s->head[gr]; q != NO_GROUP; q = s->next[q])
        p->order[(*at)++] = s->g->topo[q];
    cg->n_nodes = *at - first;
    for (uint32_t i = first; i < *at; i++)
        p->group_end[i] = *at - 1;
    return group_io(s, gr, cg, p->internal);
}

static int build_plan(struct fstate *s, uint32_t min_nodes, struct cg_plan *p)
{
    const struct ir_graph *g = s->g;
    if (alloc_plan(g, p))
        return -1;
    uint32_t at = 0;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        uint32_t gr = s->gid[k];
        int fused = s->count[gr] >= min_nodes && cg_fusible(g, &g->n[g->topo[k]]);
        if (fused && k != s->tail[gr])
            continue; /* the group runs at its last node */
        if (emit_group(s, p, &at, gr, fused, k))
            return -1;
    }
    return 0;
}

static int fstate_init(struct fstate *s, const struct ir_graph *g)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    size_t nk = (size_t)g->ntopo + 1;
    s->pos = malloc(((size_t)g->nn + 1) * sizeof *s->pos);
    s->gid = malloc(nk * sizeof *s->gid);
    s->next = malloc(nk * sizeof *s->next);
    s->head = malloc(nk * sizeof *s->head);
    s->tail = malloc(nk * sizeof *s->tail);
    s->count = calloc(nk, sizeof *s->count);
    if (!s->pos || !s->gid || !s->next || !s->head || !s->tail || !s->count || consumers(s))
        return -1;
    for (uint32_t i = 0; i < g->nn; i++)
        s->pos[i] = NO_GROUP;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        s->pos[g->topo[k]] = k;
        s->gid[k] = NO_GROUP;
    }
    return 0;
}

static void fstate_free(struct fstate *s)
{
    free(s->pos);
    free(s->gid);
    free(s->next);
    free(s->head);
    free(s->tail);
    free(s->count);
    free(s->cons_at);
    free(s->cons);
}

int cg_fuse(const struct ir_graph *g, uint32_t min_nodes, struct cg_plan *p)
{
    struct fstate s;
    memset(p, 0, sizeof *p);
    int err = fstate_init(&s, g);
    for (uint32_t k = 0; !err && k < g->ntopo; k++)
        place_node(&s, k, cg_fusible(g, &g->n[g->topo[k]]));
    if (!err)
        sink_groups(&s);
    if (!err)
        err = build_plan(&s, min_nodes ? min_nodes : 1, p);
    fstate_free(&s);
    if (err) {
        cg_plan_free(p);
        return ST_ERR_NOMEM;
    }
    return ST_OK;
}

int cg_plan_trivial(const struct ir_graph *g, struct cg_plan *p)
{
    return cg_fuse(g, UINT32_MAX, p);
}

void cg_plan_free(struct cg_plan *p)
{
    for (uint32_t i = 0; p->groups && i < p->n_groups; i++) {
        free(p->groups[i].in);
        free(p->groups[i].out);
    }
    free(p->groups);
    free(p->order);
    free(p->group_end);
    free(p->internal);
    memset(p, 0, sizeof *p);
}
