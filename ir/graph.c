/* graph.c — creating tensors and nodes, the name index, owned data buffers,
 * and the topological-order analysis. All graph mutation goes through here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ir.h"

/* ---- name -> tensor id (open addressing, power-of-two table) ------------ */

struct ir_strmap {
    const char **key;
    uint32_t *val;
    uint32_t cap, count;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void map_grow(struct ir_strmap *m)
{
    uint32_t ncap = m->cap ? m->cap * 2 : 64;
    const char **nk = calloc(ncap, sizeof *nk);
    uint32_t *nv = calloc(ncap, sizeof *nv);
    if (!nk || !nv) {
        fprintf(stderr, "pdc: out of memory (name index)\n");
        abort();
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->key[i])
            continue;
        uint32_t j = (uint32_t)hash_str(m->key[i]) & (ncap - 1);
        while (nk[j])
            j = (j + 1) & (ncap - 1);
        nk[j] = m->key[i];
        nv[j] = m->val[i];
    }
    free(m->key);
    free(m->val);
    m->key = nk;
    m->val = nv;
    m->cap = ncap;
}

static uint32_t map_get(const struct ir_strmap *m, const char *k)
{
    if (!m->cap)
        return IR_NONE;
    for (uint32_t j = (uint32_t)hash_str(k) & (m->cap - 1); m->key[j]; j = (j + 1) & (m->cap - 1))
        if (strcmp(m->key[j], k) == 0)
            return m->val[j];
    return IR_NONE;
}

static void map_put(struct ir_strmap *m, const char *k, uint32_t v)
{
    if ((m->count + 1) * 2 > m->cap)
        map_grow(m);
    uint32_t j = (uint32_t)hash_str(k) & (m->cap - 1);
    while (m->key[j])
        j = (j + 1) & (m->cap - 1);
    m->key[j] = k;
    m->val[j] = v;
    m->count++;
}

/* ---- growable arrays ---------------------------------------------------- */

static void *grow(void *p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    uint32_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(p, (size_t)nc * elem);
    if (!q) {
        fprintf(stderr, "pdc: out of memory (graph arrays)\n");
        abort();
    }
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *cap = nc;
    return q;
}

struct ir_graph *ir_graph_new(void)
{
    struct ir_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->arena = ir_arena_new();
    g->names = calloc(1, sizeof *g->names);
    if (!g->names) {
        ir_arena_free(g->arena);
        free(g);
        return NULL;
    }
    g->opset = 0;
    return g;
}

void ir_graph_free(struct ir_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nbufs; i++) {
        if (g->bufs[i].mapped)
            munmap(g->bufs[i].base, g->bufs[i].len);
        else
            free(g->bufs[i].base);
    }
    free(g->bufs);
    free(g->t);
    free(g->n);
    free(g->inputs);
    free(g->outputs);
    free(g->syms);
    free(g->sym_val);
    free(g->topo);
    if (g->names) {
        free(g->names->key);
        free(g->names->val);
        free(g->names);
    }
    ir_arena_free(g->arena);
    free(g);
}

void ir_invalidate(struct ir_graph *g) { g->valid = 0; }

uint32_t ir_tensor_find(const struct ir_graph *g, const char *name)
{
    return map_get(g->names, name);
}

uint32_t ir_tensor_new(struct ir_graph *g, const char *name)
{
    if (map_get(g->names, name) != IR_NONE)
        return IR_NONE;
    g->t = grow(g->t, &g->ct, g->nt + 1, sizeof *g->t);
    uint32_t id = g->nt++;
    struct ir_tensor *t = &g->t[id];
    memset(t, 0, sizeof *t);
    t->name = ir_arena_strdup(g->arena, name);
    t->rank = -1;
    for (int i = 0; i < IR_MAX_RANK; i++) {
        t->dims[i] = -1;
        t->sym[i] = -1;
    }
    t->producer = IR_NONE;
    map_put(g->names, t->name, id);
    return id;
}

uint32_t ir_tensor_new_unique(struct ir_graph *g, const char *stem)
{
    if (map_get(g->names, stem) == IR_NONE)
        return ir_tensor_new(g, stem);
    char buf[512];
    for (unsigned k = 1;; k++) {
        snprintf(buf, sizeof buf, "%.480s_%u", stem, k);
        if (map_get(g->names, buf) == IR_NONE)
            return ir_tensor_new(g, buf);
    }
}

uint32_t ir_node_new(struct ir_graph *g, enum ir_op op, const char *name, uint32_t n_in,
                     const uint32_t *in, uint32_t n_out, const uint32_t *out)
{
    g->n = grow(g->n, &g->cn, g->nn + 1, sizeof *g->n);
    uint32_t id = g->nn++;
    struct ir_node *n = &g->n[id];
    memset(n, 0, sizeof *n);
    n->op = op;
    if (name && *name) {
        n->name = ir_arena_strdup(g->arena, name);
    } else {
        char buf[64];
        snprintf(buf, sizeof buf, "%s_%u", ir_ops[op].name, id);
        n->name = ir_arena_strdup(g->arena, buf);
    }
    n->opset = g->opset;
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = ir_arena_alloc(g->arena, (n_in + 1) * sizeof *n->in);
    n->out = ir_arena_alloc(g->arena, (n_out + 1) * sizeof *n->out);
    for (uint32_t i = 0; i < n_in; i++)
        n->in[i] = in ? in[i] : IR_NONE;
    for (uint32_t i = 0; i < n_out; i++) {
        n->out[i] = out ? out[i] : IR_NONE;
        if (n->out[i] != IR_NONE)
            g->t[n->out[i]].producer = id;
    }
    g->valid = 0;
    return id;
}

void ir_graph_add_input(struct ir_graph *g, uint32_t t)
{
    g->inputs = grow(g->inputs, &g->c_inputs, g->n_inputs + 1, sizeof *g->inputs);
    g->inputs[g->n_inputs++] = t;
    g->t[t].flags |= IR_T_INPUT;
}

void ir_graph_add_output(struct ir_graph *g, uint32_t t)
{
    g->outputs = grow(g->outputs, &g->c_outputs, g->n_outputs + 1, sizeof *g->outputs);
    g->outputs[g->n_outputs++] = t;
    g->t[t].flags |= IR_T_OUTPUT;
}

int ir_sym_intern(struct ir_graph *g, const char *name)
{
    for (int i = 0; i < g->nsyms; i++)
        if (strcmp(g->syms[i], name) == 0)
            return i;
    if (g->nsyms == g->csyms) {
        uint32_t c = (uint32_t)g->csyms, c2 = c;
        g->syms = grow(g->syms, &c, (uint32_t)g->nsyms + 1, sizeof *g->syms);
        g->sym_val = grow(g->sym_val, &c2, (uint32_t)g->nsyms + 1, sizeof *g->sym_val);
        g->csyms = (int)c;
    }
    g->syms[g->nsyms] = ir_arena_strdup(g->arena, name);
    g->sym_val[g->nsyms] = -1;
    return g->nsyms++;
}

void ir_graph_adopt(struct ir_graph *g, void *base, size_t len, int mapped)
{
    uint32_t c = (uint32_t)g->cbufs;
    g->bufs = grow(g->bufs, &c, (uint32_t)g->nbufs + 1, sizeof *g->bufs);
    g->cbufs = (int)c;
    g->bufs[g->nbufs++] = (struct ir_buf){base, len, mapped};
}

void *ir_graph_buf(struct ir_graph *g, size_t len)
{
    void *p = calloc(1, len ? len : 1);
    if (!p)
        return NULL;
    ir_graph_adopt(g, p, len, 0);
    return p;
}

int64_t ir_numel(const struct ir_tensor *t)
{
    if (t->rank < 0)
        return -1;
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0)
            return -1;
        n *= t->dims[i];
    }
    return n;
}

int ir_tensor_set_const(struct ir_graph *g, uint32_t id, enum ir_dtype dt, int rank,
                        const int64_t *dims, const void *data)
{
    struct ir_tensor *t = &g->t[id];
    t->dtype = dt;
    t->rank = rank;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        t->dims[i] = dims[i];
        t->sym[i] = -1;
        n *= dims[i];
    }
    size_t nb = (size_t)n * ir_dtype_size(dt);
    void *p = ir_graph_buf(g, nb);
    if (!p)
        return ST_ERR_NOMEM;
    if (data && nb)
        memcpy(p, data, nb);
    t->data = p;
    t->nbytes = nb;
    t->flags |= IR_T_CONST;
    return ST_OK;
}

/* Kahn's algorithm over live nodes; nodes keep their import order where the
 * dependencies allow it, so printing and execution order are stable. */
int ir_fill_topo(struct ir_graph *g, struct diag *d)
{
    uint32_t nn = g->nn;
    uint32_t *indeg = calloc(nn + 1, sizeof *indeg);
    uint32_t *order = calloc(nn + 1, sizeof *order);
    /* consumers as CSR: for each tensor, the nodes reading it */
    uint32_t *cnt = calloc((size_t)g->nt + 1, sizeof *cnt);
    if (!indeg || !order || !cnt) {
        free(indeg); free(order); free(cnt);
        return diag_set(d, ST_ERR_NOMEM, "out of memory ordering %u nodes", nn);
    }
    uint64_t nedge = 0;
    for (uint32_t i = 0; i < nn; i++) {
        const struct ir_node *n = &g->n[i];
        if (n->flags & IR_N_DEAD)
            continue;
        for (uint32_t k = 0; k < n->n_in; k++) {
            uint32_t t = n->in[k];
            if (t == IR_NONE || g->t[t].producer == IR_NONE)
                continue;
            indeg[i]++;
            cnt[t]++;
            nedge++;
        }
    }
    uint32_t *start = calloc((size_t)g->nt + 1, sizeof *start);
    uint32_t *adj = calloc(nedge + 1, sizeof *adj);
    uint32_t *heap = calloc(nn + 1, sizeof *heap);
    if (!start || !adj || !heap) {
        free(indeg); free(order); free(cnt); free(start); free(adj); free(heap);
        return diag_set(d, ST_ERR_NOMEM, "out of memory ordering %u nodes", nn);
    }
    for (uint32_t t = 0; t < g->nt; t++)
        start[t + 1] = start[t] + cnt[t];
    memset(cnt, 0, (size_t)g->nt * sizeof *cnt);
    for (uint32_t i = 0; i < nn; i++) {
        const struct ir_node *n = &g->n[i];
        if (n->flags & IR_N_DEAD)
            continue;
        for (uint32_t k = 0; k < n->n_in; k++) {
            uint32_t t = n->in[k];
            if (t == IR_NONE || g->t[t].producer == IR_NONE)
                continue;
            adj[start[t] + cnt[t]++] = i;
        }
    }
    /* min-heap of ready node ids keeps the original order as a tie-break */
    uint32_t nh = 0, no = 0, nlive = 0;
#define HPUSH(x) do { uint32_t _i = nh++; heap[_i] = (x); \
        while (_i && heap[(_i - 1) / 2] > heap[_i]) { uint32_t _p = (_i - 1) / 2, _s = heap[_p]; \
            heap[_p] = heap[_i]; heap[_i] = _s; _i = _p; } } while (0)
    for (uint32_t i = 0; i < nn; i++) {
        if (g->n[i].flags & IR_N_DEAD)
            continue;
        nlive++;
        if (indeg[i] == 0)
            HPUSH(i);
    }
    while (nh) {
        uint32_t v = heap[0];
        heap[0] = heap[--nh];
        for (uint32_t i = 0;;) {
            uint32_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < nh && heap[l] < heap[m]) m = l;
            if (r < nh && heap[r] < heap[m]) m = r;
            if (m == i) break;
            uint32_t s = heap[m]; heap[m] = heap[i]; heap[i] = s; i = m;
        }
        order[no++] = v;
        const struct ir_node *n = &g->n[v];
        for (uint32_t k = 0; k < n->n_out; k++) {
            uint32_t t = n->out[k];
            if (t == IR_NONE)
                continue;
            for (uint32_t e = start[t]; e < start[t + 1]; e++)
                if (--indeg[adj[e]] == 0)
                    HPUSH(adj[e]);
        }
    }
#undef HPUSH
    int st = ST_OK;
    if (no != nlive) {
        const char *who = "?";
        for (uint32_t i = 0; i < nn; i++)
            if (!(g->n[i].flags & IR_N_DEAD) && indeg[i]) {
                who = g->n[i].name;
                break;
            }
        st = diag_set(d, ST_ERR_INVALID, "%s: graph has a cycle (node '%s' depends on its own output)",
                      g->path ? g->path : "graph", who);
    }
    free(indeg); free(cnt); free(start); free(adj); free(heap);
    if (st) {
        free(order);
        return st;
    }
    free(g->topo);
    g->topo = order;
    g->ntopo = no;
    g->valid |= IR_VALID_TOPO;
    return ST_OK;
}

void ir_value_free(struct ir_value *v)
{
    if (!v)
        return;
    free(v->name);
    free(v->data);
    v->name = NULL;
    v->data = NULL;
}

int64_t ir_value_numel(const struct ir_value *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++)
        n *= v->dims[i];
    return n;
}
