/* sites.c — find decomposable weights: initializers read by MatMul or Gemm
 * (directly or through a Transpose), Gather tables and Conv kernels. Each site
 * reports its shape in pdc's [d_in, d_out] right-multiply convention.
 * needs: topo-independent; reads the graph only.  guarantees: nothing mutated. */
#include <stdlib.h>
#include <string.h>

#include "pass.h"

/* a float initializer with at least one element (an empty weight has nothing to decompose) */
static int is_param(const struct ir_graph *g, uint32_t t)
{
    return t != IR_NONE && (g->t[t].flags & IR_T_PARAM) && g->t[t].data && ir_numel(&g->t[t]) > 0;
}

/* W, or Transpose(W) with a 2-D W: returns W and sets *tr */
static uint32_t weight_of(const struct ir_graph *g, uint32_t t, int *tr)
{
    *tr = 0;
    if (is_param(g, t))
        return t;
    if (t == IR_NONE || g->t[t].producer == IR_NONE)
        return IR_NONE;
    const struct ir_node *p = &g->n[g->t[t].producer];
    if (p->op == IR_OP_Transpose && !(p->flags & IR_N_DEAD) && is_param(g, p->in[0]) &&
        g->t[p->in[0]].rank == 2) {
        *tr = 1;
        return p->in[0];
    }
    return IR_NONE;
}

static struct pass_site *site_for(struct pass_site **s, int *n, int *cap, uint32_t w)
{
    for (int i = 0; i < *n; i++)
        if ((*s)[i].weight == w)
            return &(*s)[i];
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        struct pass_site *ns = realloc(*s, (size_t)nc * sizeof *ns);
        if (!ns)
            return NULL;
        *s = ns;
        *cap = nc;
    }
    struct pass_site *x = &(*s)[(*n)++];
    memset(x, 0, sizeof *x);
    x->weight = w;
    return x;
}

static void add_use(struct pass_site *x, uint32_t node)
{
    if (x->n_uses < PASS_SITE_MAX_USES)
        x->uses[x->n_uses] = node;
    x->n_uses++;
}

/* shape in [d_in, d_out] for a use of weight w by node n; 0 if not a site */
static int use_shape(const struct ir_graph *g, const struct ir_node *n, enum pass_site_kind *kind,
                     uint32_t *w, int64_t *din, int64_t *dout)
{
    int tr;
    const struct ir_tensor *W;
    switch (n->op) {
    case IR_OP_MatMul:
    case IR_OP_Gemm: {
        int transb = n->op == IR_OP_Gemm && ir_attr_int(n, "transB", 0);
        int transa = n->op == IR_OP_Gemm && ir_attr_int(n, "transA", 0);
        if ((*w = weight_of(g, n->in[1], &tr)) != IR_NONE && g->t[*w].rank == 2) {
            W = &g->t[*w];
            int flip = tr ^ transb; /* x·W: W is [d_in, d_out] unless transposed */
            *din = W->dims[flip ? 1 : 0];
            *dout = W->dims[flip ? 0 : 1];
            *kind = n->op == IR_OP_Gemm ? PASS_SITE_GEMM : PASS_SITE_MATMUL;
            return 1;
        }
        if ((*w = weight_of(g, n->in[0], &tr)) != IR_NONE && g->t[*w].rank == 2) {
            /* W·x: as a right-multiply on xᵀ the weight is Wᵀ */
            W = &g->t[*w];
            int flip = tr ^ transa;
            *din = W->dims[flip ? 0 : 1];
            *dout = W->dims[flip ? 1 : 0];
            *kind = PASS_SITE_MATMUL_LEFT;
            return 1;
        }
        return 0;
    }
    case IR_OP_Gather:
        if (!is_param(g, n->in[0]) || g->t[n->in[0]].rank != 2 || ir_attr_int(n, "axis", 0) != 0)
            return 0;
        *w = n->in[0];
        *din = g->t[*w].dims[0]; /* one-hot rows in, embedding out */
        *dout = g->t[*w].dims[1];
        *kind = PASS_SITE_GATHER;
        return 1;
    case IR_OP_Conv:
        if (!is_param(g, n->in[1]) || g->t[n->in[1]].rank < 3)
            return 0;
        *w = n->in[1];
        W = &g->t[*w];
        *din = 1;
        for (int k = 1; k < W->rank; k++)
            *din *= W->dims[k]; /* C_in/group · k_1 · … */
        *dout = W->dims[0];
        *kind = PASS_SITE_CONV;
        return 1;
    default:
        return 0;
    }
}

int pass_find_sites(const struct ir_graph *g, struct pass_site **sites, int *n_sites)
{
    struct pass_site *s = NULL;
    int n = 0, cap = 0;
    for (uint32_t i = 0; i < g->nn; i++) {
        const struct ir_node *nd = &g->n[i];
        if (nd->flags & IR_N_DEAD)
            continue;
        enum pass_site_kind kind;
        uint32_t w;
        int64_t din, dout;
        if (!use_shape(g, nd, &kind, &w, &din, &dout))
            continue;
        struct pass_site *x = site_for(&s, &n, &cap, w);
        if (!x) {
            free(s);
            return ST_ERR_NOMEM;
        }
        if (x->n_uses == 0) {
            x->kind = kind;
            x->d_in = din;
            x->d_out = dout;
        }
        add_use(x, i);
    }
    *sites = s;
    *n_sites = n;
    return ST_OK;
}

const char *pass_site_kind_name(enum pass_site_kind k)
{
    switch (k) {
    case PASS_SITE_MATMUL: return "MatMul";
    case PASS_SITE_MATMUL_LEFT: return "MatMul(left)";
    case PASS_SITE_GEMM: return "Gemm";
    case PASS_SITE_GATHER: return "Gather";
    case PASS_SITE_CONV: return "Conv";
    }
    return "?";
}
