/* memplan.c — liveness-based offsets of a program's intermediate tensors in one block.
 *
 * A training step holds every forward activation until its backward reads it, but
 * most tensors (the products inside a loss, a softmax's pieces, the several masked
 * forwards' temporaries) die a few nodes after they are made. Walking the topological
 * order once, a tensor is placed when its node runs and its bytes go back to a free
 * list after its last reader; best fit over the free blocks keeps the block small.
 * A node's outputs are placed before its inputs are released, so no kernel ever
 * writes over something it reads. A schedule with kernel groups (codegen/fuse.h) treats
 * each group as one step: all its outputs are placed before any of its inputs goes.
 *
 * Views: the output of a Reshape, Flatten, Squeeze or Unsqueeze has its input's bytes,
 * so when both are planned it gets the input's offset instead of a copy
 * (rt_memplan_view; the executor skips such a node). Tensors are written once, by
 * their producer, so sharing bytes is safe while the root (the first tensor of a chain
 * of views) lives as long as its last view's last reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memplan.h"

#define ALIGN 64u

struct blk {
    size_t off, size;
};

struct freelist {
    struct blk *b; /* sorted by offset, never adjacent (merged) */
    int n, cap;
    size_t end; /* the block's high-water mark */
};

static size_t align_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

static int fl_insert(struct freelist *f, int at, struct blk x)
{
    if (f->n == f->cap) {
        int nc = f->cap ? 2 * f->cap : 64;
        struct blk *nb = realloc(f->b, (size_t)nc * sizeof *nb);
        if (!nb)
            return -1;
        f->b = nb;
        f->cap = nc;
    }
    memmove(&f->b[at + 1], &f->b[at], (size_t)(f->n - at) * sizeof *f->b);
    f->b[at] = x;
    f->n++;
    return 0;
}

static void fl_remove(struct freelist *f, int at)
{
    memmove(&f->b[at], &f->b[at + 1], (size_t)(f->n - at - 1) * sizeof *f->b);
    f->n--;
}

/* best fit; a free tail ending at the high-water mark grows instead of a new block */
static size_t fl_alloc(struct freelist *f, size_t size)
{
    int best = -1;
    for (int i = 0; i < f->n; i++)
        if (f->b[i].size >= size && (best < 0 || f->b[i].size < f->b[best].size))
            best = i;
    if (best >= 0) {
        size_t off = f->b[best].off;
        f->b[best].off += size;
        f->b[best].size -= size;
        if (!f->b[best].size)
            fl_remove(f, best);
        return off;
    }
    if (f->n && f->b[f->n - 1].off + f->b[f->n - 1].size == f->end) {
        size_t off = f->b[f->n - 1].off;
        fl_remove(f, f->n - 1);
        f->end = off + size;
        return off;
    }
    size_t off = f->end;
    f->end += size;
    return off;
}

static int fl_free(struct freelist *f, size_t off, size_t size)
{
    int at = 0;
    while (at < f->n && f->b[at].off < off)
        at++;
    int left = at > 0 && f->b[at - 1].off + f->b[at - 1].size == off;
    int right = at < f->n && off + size == f->b[at].off;
    if (left && right) {
        f->b[at - 1].size += size + f->b[at].size;
        fl_remove(f, at);
    } else if (left)
        f->b[at - 1].size += size;
    else if (right) {
        f->b[at].off = off;
        f->b[at].size += size;
    } else
        return fl_insert(f, at, (struct blk){off, size});
    return 0;
}

int rt_memplan_planned(const struct ir_graph *g, uint32_t t)
{
    const struct ir_tensor *x = &g->t[t];
    return !x->data && !(x->flags & (IR_T_INPUT | IR_T_OUTPUT | IR_T_KEEP));
}

uint32_t rt_memplan_view(const struct ir_graph *g, const struct ir_node *n)
{
    switch (n->op) { /* not Identity: it is fusible, and a kernel runs (codegen/fuse.c) */
    case IR_OP_Reshape: case IR_OP_Flatten: case IR_OP_Squeeze: case IR_OP_Unsqueeze: break;
    default: return IR_NONE;
    }
    if (n->n_in < 1 || n->n_out != 1 || n->in[0] == IR_NONE || n->out[0] == IR_NONE)
        return IR_NONE;
    const struct ir_tensor *x = &g->t[n->in[0]], *y = &g->t[n->out[0]];
    if (x->dtype != y->dtype || rt_tensor_bytes(x) != rt_tensor_bytes(y) ||
        !rt_memplan_planned(g, n->in[0]) || !rt_memplan_planned(g, n->out[0]))
        return IR_NONE;
    return n->in[0];
}

/* root[t]: the tensor whose bytes t uses (t itself unless t is a planned view; with
 * reuse off, PDC_MEMPLAN=0, every tensor has bytes of its own) */
static void view_roots(const struct ir_graph *g, const struct rt_sched *sc, int reuse,
                       uint32_t *root)
{
    for (uint32_t t = 0; t < g->nt; t++)
        root[t] = t;
    for (uint32_t k = 0; reuse && k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[sc->order[k]];
        uint32_t src = rt_memplan_view(g, n);
        if (src != IR_NONE && !(sc->internal && (sc->internal[src] || sc->internal[n->out[0]])))
            root[n->out[0]] = root[src];
    }
}

/* position (in the schedule) of each tensor's last reader (its producer's when nothing
 * reads it); a node inside a group counts at its group's end */
static void last_uses(const struct ir_graph *g, const struct rt_sched *sc, uint32_t *last)
{
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[sc->order[k]];
        uint32_t at = sc->group_end ? sc->group_end[k] : k;
        for (uint32_t i = 0; i < n->n_in; i++)
            if (n->in[i] != IR_NONE)
                last[n->in[i]] = at;
        for (uint32_t o = 0; o < n->n_out; o++)
            if (n->out[o] != IR_NONE && last[n->out[o]] < at)
                last[n->out[o]] = at;
    }
}

static int release(const struct ir_graph *g, struct freelist *f, const uint32_t *last,
                   const uint32_t *root, const size_t *off, uint32_t t, uint32_t k,
                   unsigned char *done)
{
    t = t == IR_NONE ? t : root[t]; /* a view's bytes are its root's */
    if (t == IR_NONE || done[t] || last[t] != k || off[t] == RT_NOT_PLANNED)
        return 0;
    done[t] = 1;
    return fl_free(f, off[t], align_up(rt_tensor_bytes(&g->t[t])));
}

/* the tensors of one node get offsets (not an internal value of a fused kernel) */
static void place_outputs(const struct ir_graph *g, const struct rt_sched *sc,
                          const struct ir_node *n, struct freelist *f, const uint32_t *root,
                          size_t *off, struct rt_memplan_stats *s)
{
    for (uint32_t o = 0; o < n->n_out; o++) {
        uint32_t t = n->out[o];
        if (t == IR_NONE || !rt_memplan_planned(g, t) || off[t] != RT_NOT_PLANNED ||
            (sc->internal && sc->internal[t]))
            continue;
        size_t nb = align_up(rt_tensor_bytes(&g->t[t]));
        off[t] = root[t] != t ? off[root[t]] : fl_alloc(f, nb);
        s->n_views += root[t] != t;
        s->naive += nb;
        s->n_planned++;
    }
}

/* release what the nodes at positions [from, to] read or made for the last time */
static int release_step(const struct ir_graph *g, const struct rt_sched *sc, struct freelist *f,
                        const uint32_t *last, const uint32_t *root, const size_t *off,
                        uint32_t from, uint32_t to, unsigned char *done)
{
    int err = 0;
    for (uint32_t j = from; !err && j <= to; j++) {
        const struct ir_node *n = &g->n[sc->order[j]];
        for (uint32_t i = 0; !err && i < n->n_in; i++)
            err = release(g, f, last, root, off, n->in[i], to, done);
        for (uint32_t o = 0; !err && o < n->n_out; o++)
            err = release(g, f, last, root, off, n->out[o], to, done);
    }
    return err;
}

int rt_memplan_sched(const struct ir_graph *g, const struct rt_sched *sc, int reuse, size_t *off,
                     struct rt_memplan_stats *s)
{
    uint32_t *last = malloc(((size_t)g->nt + 1) * sizeof *last);
    uint32_t *root = malloc(((size_t)g->nt + 1) * sizeof *root);
    unsigned char *done = calloc((size_t)g->nt + 1, 1);
    struct freelist f = {0};
    int err = !last || !root || !done;
    memset(s, 0, sizeof *s);
    for (uint32_t t = 0; !err && t < g->nt; t++) {
        off[t] = RT_NOT_PLANNED;
        last[t] = 0;
    }
    if (!err) {
        last_uses(g, sc, last);
        view_roots(g, sc, reuse, root);
        for (uint32_t t = 0; t < g->nt; t++) /* a root lives as long as its views */
            if (last[root[t]] < last[t])
                last[root[t]] = last[t];
    }
    /* a group's outputs all get bytes before anything it reads is released */
    for (uint32_t k = 0, from = 0; !err && k < g->ntopo; k++) {
        place_outputs(g, sc, &g->n[sc->order[k]], &f, root, off, s);
        if (sc->group_end && sc->group_end[k] != k)
            continue;
        if (reuse)
            err = release_step(g, sc, &f, last, root, off, from, k, done);
        from = k + 1;
    }
    s->planned = f.end;
    free(f.b);
    free(last);
    free(root);
    free(done);
    return err ? -1 : 0;
}

int rt_memplan(const struct ir_graph *g, int reuse, size_t *off, struct rt_memplan_stats *s)
{
    struct rt_sched sc = {.order = g->topo};
    return rt_memplan_sched(g, &sc, reuse, off, s);
}

static double mib(size_t n) { return (double)n / (1024.0 * 1024.0); }

void rt_memplan_report(const struct ir_graph *g, const char *name, FILE *f)
{
    size_t *off = malloc(((size_t)g->nt + 1) * sizeof *off);
    struct rt_memplan_stats s;
    if (!off || rt_memplan(g, 1, off, &s)) {
        free(off);
        return;
    }
    size_t own = 0;
    for (uint32_t t = 0; t < g->nt; t++)
        if (off[t] == RT_NOT_PLANNED && !g->t[t].data)
            own += rt_tensor_bytes(&g->t[t]);
    fprintf(f, "%s program: %u nodes, %u intermediates (%u of them views of another's "
            "bytes) in a %.2f MiB activation block (%.2f MiB with one buffer each, %.1fx), "
            "%.2f MiB of inputs, outputs and kept tensors\n", name, g->ntopo, s.n_planned,
            s.n_views, mib(s.planned), mib(s.naive),
            s.planned ? (double)s.naive / (double)s.planned : 1.0, mib(own));
    free(off);
}
