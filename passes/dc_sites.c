/* dc_sites.c — choose the sites to decompose.
 * needs: a compiled inference graph (shapes known).  guarantees: nothing mutated.
 * Each use of a selected weight becomes one site; uses of the same initializer
 * share one factor pair (tied weights), laid out for the weight's first use.
 * Patterns are shell globs over initializer names ("layers.*.mlp_in:100");
 * without patterns every site is selected with C = max(d_in, d_out).
 *
 * What counts as a site is what `pdc inspect` lists (passes/sites.c): a 2-D
 * weight read by MatMul/Gemm on either side (directly or through a Transpose),
 * a 2-D Gather table (axis 0) and a Conv kernel. The uses inspect lists but the
 * masked forward cannot express (grouped convolutions, W·x with a 1-D x) are
 * rejected with an error naming the site when a pattern selects them, rather
 * than silently skipped, so the two lists never disagree quietly. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp.h"

/* one use of a weight by a node, in the site's [d_in, d_out] view */
struct use {
    uint32_t w;
    enum pass_site_kind kind;
    int act, act_tr, out_tr, use_tr;
    int64_t din, dout;
    char why[160]; /* non-empty: a site pdc inspect lists that cannot be decomposed */
};

/* a float initializer with at least one element (an empty weight has nothing to decompose) */
static int is_param(const struct ir_graph *g, uint32_t t)
{
    return t != IR_NONE && (g->t[t].flags & IR_T_PARAM) && g->t[t].data && ir_numel(&g->t[t]) > 0;
}

/* a 2-D weight read directly or through a Transpose (sets *tr); IR_NONE otherwise */
static uint32_t weight_2d(const struct ir_graph *g, uint32_t t, int *tr)
{
    *tr = 0;
    if (is_param(g, t))
        return g->t[t].rank == 2 ? t : IR_NONE;
    if (t == IR_NONE || g->t[t].producer == IR_NONE)
        return IR_NONE;
    const struct ir_node *p = &g->n[g->t[t].producer];
    if (p->op != IR_OP_Transpose || !is_param(g, p->in[0]) || g->t[p->in[0]].rank != 2)
        return IR_NONE;
    const int64_t *perm;
    *tr = !(ir_attr_ints(p, "perm", &perm) == 2 && perm[0] == 0); /* perm [0, 1] is a copy */
    return p->in[0];
}

/* [d_in, d_out] of the view: W as 2-D [dims0, ∏ rest], transposed when use_tr */
static void view_dims(const struct ir_graph *g, struct use *u)
{
    const struct ir_tensor *W = &g->t[u->w];
    int64_t rows = W->dims[0], cols = ir_numel(W) / W->dims[0];
    u->din = u->use_tr ? cols : rows;
    u->dout = u->use_tr ? rows : cols;
}

/* x·W' (weight on the right) or W'·x (left); Gemm's transA/transB say which
 * operand reads its tensor transposed. Rows are what multiplies the view Wr:
 *   right: rows = A' = (transA ? Aᵀ : A),  y = rows·Wr
 *   left:  rows = x'ᵀ = (transB ? B : Bᵀ),  y = (rows·Wr)ᵀ, Wr = W'ᵀ */
static int matmul_use(const struct ir_graph *g, const struct ir_node *n, struct use *u)
{
    int gemm = n->op == IR_OP_Gemm, tr;
    int transa = gemm && ir_attr_int(n, "transA", 0), transb = gemm && ir_attr_int(n, "transB", 0);
    if ((u->w = weight_2d(g, n->in[1], &tr)) != IR_NONE) {
        u->kind = gemm ? PASS_SITE_GEMM : PASS_SITE_MATMUL;
        u->act = 0;
        u->act_tr = transa;
        u->use_tr = tr ^ transb;
    } else if ((u->w = weight_2d(g, n->in[0], &tr)) != IR_NONE) {
        u->kind = PASS_SITE_MATMUL_LEFT;
        u->act = 1;
        u->act_tr = !transb;
        u->out_tr = 1;
        u->use_tr = !(tr ^ transa);
        if (g->t[n->in[1]].rank < 2)
            snprintf(u->why, sizeof u->why, "W·x with a 1-D x has no rows to mask");
    } else {
        return 0;
    }
    view_dims(g, u);
    return 1;
}

/* the use of a weight by node n; 0 if n reads no weight the way a site does */
static int site_use(const struct ir_graph *g, const struct ir_node *n, struct use *u)
{
    memset(u, 0, sizeof *u);
    switch (n->op) {
    case IR_OP_MatMul:
    case IR_OP_Gemm:
        return matmul_use(g, n, u);
    case IR_OP_Gather: /* embedding: one-hot rows in, table rows out */
        if (!is_param(g, n->in[0]) || g->t[n->in[0]].rank != 2 || ir_attr_int(n, "axis", 0) != 0)
            return 0;
        u->w = n->in[0];
        u->kind = PASS_SITE_GATHER;
        u->act = 1;
        break;
    case IR_OP_Conv: /* W [C_out, C_in, k..]: Wr = reshape(W, [C_out, C_in·∏k])ᵀ */
        if (!is_param(g, n->in[1]) || g->t[n->in[1]].rank < 3)
            return 0;
        u->w = n->in[1];
        u->kind = PASS_SITE_CONV;
        u->use_tr = 1;
        if (ir_attr_int(n, "group", 1) != 1)
            snprintf(u->why, sizeof u->why,
                     "grouped convolutions (group=%lld) cannot be decomposed, only group=1",
                     (long long)ir_attr_int(n, "group", 1));
        break;
    default:
        return 0;
    }
    view_dims(g, u);
    return 1;
}

/* without patterns every MatMul/Gemm weight is a site (the reference decomposes the
 * linear layers); embedding tables and Conv kernels are sites only when named */
static int pattern_C(const struct dc_config *c, const char *name, enum pass_site_kind kind,
                     int *C)
{
    if (c->n_sites == 0) {
        *C = 0;
        return kind != PASS_SITE_GATHER && kind != PASS_SITE_CONV;
    }
    for (int i = 0; i < c->n_sites; i++)
        if (fnmatch(c->sites[i].pattern, name, 0) == 0) {
            *C = c->sites[i].C;
            return 1;
        }
    return 0;
}

static int add_factor(struct dc_factor **f, int *nf, const struct use *u, int C)
{
    for (int i = 0; i < *nf; i++)
        if ((*f)[i].weight == u->w)
            return i;
    struct dc_factor *nfp = realloc(*f, (size_t)(*nf + 1) * sizeof **f);
    if (!nfp)
        return -1;
    *f = nfp;
    (*f)[*nf] = (struct dc_factor){u->w, u->din, u->dout, C, u->use_tr};
    return (*nf)++;
}

/* fill site x for use u of node `node`; `uses` earlier sites share its weight */
static void fill_site(const struct ir_graph *g, struct dc_site *x, const struct use *u,
                      uint32_t node, int uses, int fi, const struct dc_factor *F)
{
    memset(x, 0, sizeof *x);
    const char *wn = g->t[u->w].name;
    if (uses)
        snprintf(x->name, sizeof x->name, "%s@%d", wn, uses);
    else
        snprintf(x->name, sizeof x->name, "%s", wn);
    x->weight = u->w;
    x->node = node;
    x->kind = u->kind;
    x->act = u->act;
    x->act_tr = u->act_tr;
    x->out_tr = u->out_tr;
    x->factor = fi;
    x->d_in = u->din;
    x->d_out = u->dout;
    /* the factor is laid out for the first use; later uses may read it transposed */
    x->transposed = u->use_tr != F->tr;
    x->use_tr = u->use_tr;
    x->C = F->C;
}

int dc_select_sites(const struct ir_graph *g, const struct dc_config *c, struct dc_site **sites,
                    int *n_sites, struct dc_factor **factors, int *n_factors, struct diag *d)
{
    struct dc_site *s = NULL;
    struct dc_factor *f = NULL;
    int ns = 0, nf = 0;
    *sites = NULL;
    *factors = NULL;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        struct use u;
        int C;
        if (!site_use(g, n, &u) || !pattern_C(c, g->t[u.w].name, u.kind, &C))
            continue;
        if (u.why[0]) {
            diag_set(d, ST_ERR_UNSUPPORTED,
                     "site '%s' (node '%s', %s): %s; leave it out with the site patterns",
                     g->t[u.w].name, n->name, pass_site_kind_name(u.kind), u.why);
            goto fail;
        }
        if (C <= 0)
            C = (int)(u.din > u.dout ? u.din : u.dout);
        int fi = add_factor(&f, &nf, &u, C);
        struct dc_site *ns_p = fi < 0 ? NULL : realloc(s, (size_t)(ns + 1) * sizeof *s);
        if (!ns_p) {
            diag_set(d, ST_ERR_NOMEM, "out of memory selecting sites");
            goto fail;
        }
        s = ns_p;
        int uses = 0;
        for (int i = 0; i < ns; i++)
            uses += s[i].weight == u.w;
        if (uses && C != f[fi].C && c->n_sites) {
            diag_set(d, ST_ERR_INVALID, "weight '%s' is tied but its uses ask for C=%d and C=%d",
                     g->t[u.w].name, f[fi].C, C);
            goto fail;
        }
        fill_site(g, &s[ns], &u, g->topo[k], uses, fi, &f[fi]);
        ns++;
    }
    if (ns == 0) {
        diag_set(d, ST_ERR_INVALID, "no decomposable site matches %s",
                 c->n_sites ? "the site patterns (module_info / --sites)"
                            : "(the model has no MatMul/Gemm/Gather/Conv weights)");
        goto fail;
    }
    *sites = s;
    *n_sites = ns;
    *factors = f;
    *n_factors = nf;
    return ST_OK;
fail:
    free(s);
    free(f);
    return d->status ? d->status : ST_ERR_INVALID;
}
