/* dc_sites.c — choose the sites to decompose.
 * needs: a compiled inference graph (shapes known).  guarantees: nothing mutated.
 * Each use of a selected weight becomes one site; uses of the same initializer
 * share one factor pair (tied weights), laid out for the weight's first use.
 * Patterns are shell globs over initializer names ("layers.*.mlp_in:100");
 * without patterns every MatMul/Gemm weight is a site with C = max(d_in, d_out). */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp.h"

/* the weight a MatMul/Gemm node reads as its right operand, and whether it reads
 * it transposed (Gemm transB, or through a Transpose node) */
static int matmul_weight(const struct ir_graph *g, const struct ir_node *n, uint32_t *w, int *tr,
                         struct diag *d)
{
    if (n->op != IR_OP_MatMul && n->op != IR_OP_Gemm)
        return 0;
    uint32_t b = n->in[1];
    *tr = n->op == IR_OP_Gemm && ir_attr_int(n, "transB", 0);
    const struct ir_tensor *t = &g->t[b];
    if (!(t->flags & IR_T_PARAM) || !t->data) {
        if (t->producer == IR_NONE)
            return 0;
        const struct ir_node *p = &g->n[t->producer];
        if (p->op != IR_OP_Transpose || !(g->t[p->in[0]].flags & IR_T_PARAM) ||
            !g->t[p->in[0]].data || g->t[p->in[0]].rank != 2)
            return 0;
        b = p->in[0];
        *tr ^= 1;
    }
    if (g->t[b].rank != 2)
        return 0;
    if (n->op == IR_OP_Gemm && ir_attr_int(n, "transA", 0)) {
        diag_set(d, ST_ERR_UNSUPPORTED,
                 "node '%s' (Gemm): weight '%s' is used with transA=1, which cannot be decomposed yet",
                 n->name, g->t[b].name);
        return -1;
    }
    *w = b;
    return 1;
}

static int pattern_C(const struct dc_config *c, const char *name, int *C)
{
    if (c->n_sites == 0) {
        *C = 0;
        return 1;
    }
    for (int i = 0; i < c->n_sites; i++)
        if (fnmatch(c->sites[i].pattern, name, 0) == 0) {
            *C = c->sites[i].C;
            return 1;
        }
    return 0;
}

static int add_factor(struct dc_factor **f, int *nf, uint32_t w, int64_t din, int64_t dout, int C,
                      int tr)
{
    for (int i = 0; i < *nf; i++)
        if ((*f)[i].weight == w)
            return i;
    struct dc_factor *nfp = realloc(*f, (size_t)(*nf + 1) * sizeof **f);
    if (!nfp)
        return -1;
    *f = nfp;
    (*f)[*nf] = (struct dc_factor){w, din, dout, C, tr};
    return (*nf)++;
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
        uint32_t w;
        int tr, C, r = matmul_weight(g, n, &w, &tr, d);
        if (r < 0)
            goto fail;
        if (r == 0 || !pattern_C(c, g->t[w].name, &C))
            continue;
        const struct ir_tensor *W = &g->t[w];
        int64_t din = W->dims[tr ? 1 : 0], dout = W->dims[tr ? 0 : 1];
        if (C <= 0)
            C = (int)(din > dout ? din : dout);
        int fi = add_factor(&f, &nf, w, din, dout, C, tr);
        struct dc_site *ns_p = fi < 0 ? NULL : realloc(s, (size_t)(ns + 1) * sizeof *s);
        if (!ns_p) {
            diag_set(d, ST_ERR_NOMEM, "out of memory selecting sites");
            goto fail;
        }
        s = ns_p;
        struct dc_site *x = &s[ns];
        memset(x, 0, sizeof *x);
        int uses = 0;
        for (int i = 0; i < ns; i++)
            uses += s[i].weight == w;
        if (uses)
            snprintf(x->name, sizeof x->name, "%s@%d", W->name, uses);
        else
            snprintf(x->name, sizeof x->name, "%s", W->name);
        x->weight = w;
        x->node = g->topo[k];
        x->factor = fi;
        x->d_in = din;
        x->d_out = dout;
        /* the factor is laid out for the first use; later uses may read it transposed */
        x->transposed = tr != f[fi].tr;
        x->use_tr = tr;
        x->C = f[fi].C;
        if (uses && C != f[fi].C && c->n_sites) {
            diag_set(d, ST_ERR_INVALID, "weight '%s' is tied but its uses ask for C=%d and C=%d",
                     W->name, f[fi].C, C);
            goto fail;
        }
        ns++;
    }
    if (ns == 0) {
        diag_set(d, ST_ERR_INVALID, "no decomposable site matches %s",
                 c->n_sites ? "the site patterns (module_info / --sites)" : "(the model has no MatMul/Gemm weights)");
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
