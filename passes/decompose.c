/* decompose.c — the site rewrite: W → V·U + Δ, masked forwards as clones of the
 * target forward, and the bookkeeping every decomposition program shares
 * (states, random inputs, scalars, metrics).
 * needs: a compiled inference graph (shapes bound, folded, topo order).
 * guarantees: the target forward is kept once and reused by every masked forward
 *   wherever a node does not depend on a masked site (shared activations are
 *   computed once); no per-example weight is ever materialised:
 *   y = ((x·V) ⊙ m)·U + δ ⊙ (x·Δ), with Δ = W − V·U recomputed from the factors;
 *   for a Gather h = V[idx] and Δ[idx]; for a Conv x·V and x·Δ are Convs with
 *   the node's own geometry (V, Δ as kernels), ·U a 1×1 Conv. Masks, δ and
 *   routing are [positions.., k] for every kind (dc_mask_dims). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_impl.h"

static void *grow(void *p, int n, size_t elem)
{
    void *q = realloc(p, (size_t)(n + 1) * elem);
    if (!q) {
        fprintf(stderr, "pdc: out of memory building a program\n");
        abort();
    }
    return q;
}

static uint32_t new_input(struct dc_ctx *cx, const char *name, enum ir_dtype dt, int rank,
                          const int64_t *dims)
{
    if (cx->b.err)
        return IR_NONE;
    uint32_t t = ir_tensor_new_unique(cx->g, name);
    struct ir_tensor *x = &cx->g->t[t];
    x->dtype = dt;
    x->rank = rank;
    for (int i = 0; i < rank; i++)
        x->dims[i] = dims[i];
    ir_graph_add_input(cx->g, t);
    return t;
}

uint32_t dc_state(struct dc_ctx *cx, const char *name, enum ir_dtype dt, int rank,
                  const int64_t *dims, enum dc_init init, double std, int trainable)
{
    uint32_t t = new_input(cx, name, dt, rank, dims);
    if (t == IR_NONE)
        return t;
    struct dc_prog *p = cx->prog;
    p->st = grow(p->st, p->n_st, sizeof *p->st);
    struct dc_state *s = &p->st[p->n_st++];
    memset(s, 0, sizeof *s);
    s->t = t;
    s->next = IR_NONE;
    s->grad = IR_NONE;
    s->init = init;
    s->std = std;
    s->trainable = trainable;
    snprintf(s->name, sizeof s->name, "%s", name);
    return t;
}

void dc_state_next(struct dc_ctx *cx, uint32_t state, uint32_t next)
{
    for (int i = 0; i < cx->prog->n_st; i++)
        if (cx->prog->st[i].t == state)
            cx->prog->st[i].next = next;
}

uint32_t dc_uniform(struct dc_ctx *cx, int rank, const int64_t *dims)
{
    char name[64];
    snprintf(name, sizeof name, "draw.%u", cx->next_stream);
    uint32_t t = new_input(cx, name, IR_F32, rank, dims);
    if (t == IR_NONE)
        return t;
    struct dc_prog *p = cx->prog;
    p->in = grow(p->in, p->n_in, sizeof *p->in);
    p->in[p->n_in++] = (struct dc_input){t, DC_FEED_UNIFORM, cx->next_stream++, DC_SC_LR, 0, 0, 0};
    return t;
}

void dc_routes(struct dc_ctx *cx, uint32_t *rho)
{
    uint32_t stream = cx->next_stream++;
    for (int i = 0; i < cx->ns; i++) {
        int r;
        int64_t md[IR_MAX_RANK];
        char name[64];
        dc_mask_dims(cx, i, 1, &r, md);
        snprintf(name, sizeof name, "route.%u.%d", stream, i);
        rho[i] = new_input(cx, name, IR_F32, r, md);
        if (rho[i] == IR_NONE)
            return;
        struct dc_prog *p = cx->prog;
        p->in = grow(p->in, p->n_in, sizeof *p->in);
        p->in[p->n_in++] = (struct dc_input){rho[i], DC_FEED_ROUTE, stream, DC_SC_LR,
                                             (uint32_t)i, (uint32_t)cx->ns, 0};
    }
}

static uint32_t scalar_input(struct dc_ctx *cx, enum dc_scalar which, int sub)
{
    static const char *names[] = {"lr", "p", "bias_correction1", "bias_correction2", "src_lr",
                                  "src_bias_correction1", "src_bias_correction2", "topk_rank"};
    char nm[64];
    snprintf(nm, sizeof nm, "%s%s%.0d", names[which], sub ? "." : "", sub);
    uint32_t t = new_input(cx, nm, IR_F32, 0, NULL);
    if (t == IR_NONE)
        return t;
    struct dc_prog *p = cx->prog;
    p->in = grow(p->in, p->n_in, sizeof *p->in);
    p->in[p->n_in++] = (struct dc_input){t, DC_FEED_SCALAR, 0, which, 0, 0, (uint32_t)sub};
    return t;
}

uint32_t dc_scalar(struct dc_ctx *cx, enum dc_scalar which)
{
    if (cx->scalar[which] == IR_NONE)
        cx->scalar[which] = scalar_input(cx, which, 0);
    return cx->scalar[which];
}

uint32_t dc_scalar_sub(struct dc_ctx *cx, enum dc_scalar which, int sub)
{
    uint32_t *slot = &cx->src_bc[which == DC_SC_SRC_BC2][sub];
    if (*slot == IR_NONE)
        *slot = scalar_input(cx, which, sub);
    return *slot;
}

void dc_tap(struct dc_ctx *cx, const char *name, uint32_t t)
{
    if (cx->b.err)
        return;
    struct dc_prog *p = cx->prog;
    p->tap = grow(p->tap, p->n_tap, sizeof *p->tap);
    p->tap[p->n_tap].t = t;
    snprintf(p->tap[p->n_tap].name, sizeof p->tap[p->n_tap].name, "%s", name);
    p->n_tap++;
}

void dc_metric(struct dc_ctx *cx, const char *name, uint32_t t)
{
    if (cx->b.err)
        return;
    struct dc_prog *p = cx->prog;
    p->metric = grow(p->metric, p->n_metric, sizeof *p->metric);
    p->metric[p->n_metric].t = t;
    snprintf(p->metric[p->n_metric].name, sizeof p->metric[p->n_metric].name, "%s", name);
    p->n_metric++;
}

/* ---- per-site geometry ---------------------------------------------------------
 * A site's positions are what one mask row belongs to: the rows [pos.., d_in]
 * of a matmul (after Gemm's transA, or the columns of x for W·x), the indices
 * of a Gather, [N, spatial out..] of a Conv. */
static void site_positions(struct dc_ctx *cx, int i)
{
    const struct dc_site *s = &cx->sites[i];
    const struct ir_node *n = &cx->g->n[s->node];
    struct dc_site_t *st = &cx->s[i];
    st->x = n->in[s->act];
    st->rows = st->h = IR_NONE;
    const struct ir_tensor *x = &cx->g->t[st->x], *y = &cx->g->t[n->out[0]];
    int r = 0;
    switch (s->kind) {
    case PASS_SITE_GATHER:
        for (int k = 0; k < x->rank; k++)
            st->pos[r++] = x->dims[k];
        break;
    case PASS_SITE_CONV: /* y [N, C_out, spatial..] */
        st->pos[r++] = y->dims[0];
        for (int k = 2; k < y->rank; k++)
            st->pos[r++] = y->dims[k];
        break;
    default: /* rows: x, or x with its last two axes swapped; positions drop d_in */
        for (int k = 0; k < x->rank - 1; k++)
            st->pos[r++] = x->dims[k];
        if (s->act_tr)
            st->pos[r - 1] = x->dims[x->rank - 1];
        break;
    }
    st->pr = r;
}

int dc_ctx_init(struct dc_ctx *cx, struct ir_graph *g, const struct dc_config *cfg,
                const struct dc_site *sites, int ns, const struct dc_factor *fac, int nf,
                struct dc_prog *prog, const char *prefix, struct diag *d)
{
    memset(cx, 0, sizeof *cx);
    cx->b = bld_begin(g, prefix, d);
    cx->g = g;
    cx->cfg = cfg;
    cx->sites = sites;
    cx->ns = ns;
    cx->fac = fac;
    cx->nf = nf;
    cx->prog = prog;
    for (int i = 0; i < DC_SC_COUNT; i++)
        cx->scalar[i] = IR_NONE;
    for (int i = 0; i < DC_MAX_ASCENTS; i++)
        cx->src_bc[0][i] = cx->src_bc[1][i] = IR_NONE;
    prog->g = g;
    prog->loss = IR_NONE;
    if (!(g->valid & IR_VALID_TOPO) && ir_fill_topo(g, d))
        return d->status;
    /* snapshot the target forward before anything is added */
    cx->nt0 = g->nt;
    cx->nfwd = g->ntopo;
    cx->fwd = malloc((g->ntopo + 1) * sizeof *cx->fwd);
    cx->outs = malloc((g->n_outputs + 1) * sizeof *cx->outs);
    cx->f = calloc((size_t)nf + 1, sizeof *cx->f);
    cx->s = calloc((size_t)ns + 1, sizeof *cx->s);
    if (!cx->fwd || !cx->outs || !cx->f || !cx->s)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    memcpy(cx->fwd, g->topo, g->ntopo * sizeof *cx->fwd);
    for (uint32_t i = 0; i < g->n_outputs; i++)
        if (ir_dtype_is_float(g->t[g->outputs[i]].dtype))
            cx->outs[cx->nouts++] = g->outputs[i];
    if (cx->nouts == 0)
        return diag_set(d, ST_ERR_UNSUPPORTED, "the model has no floating-point output to reconstruct");
    if (g->n_inputs != 1)
        return diag_set(d, ST_ERR_UNSUPPORTED,
                        "the model has %u inputs; decomposition feeds exactly one data input for now",
                        g->n_inputs);
    cx->data = g->inputs[0];
    prog->in = grow(prog->in, prog->n_in, sizeof *prog->in);
    prog->in[prog->n_in++] = (struct dc_input){cx->data, DC_FEED_DATA, 0, DC_SC_LR, 0, 0, 0};
    for (int i = 0; i < ns; i++)
        site_positions(cx, i);
    return ST_OK;
}

void dc_ctx_fini(struct dc_ctx *cx)
{
    free(cx->fwd);
    free(cx->outs);
    free(cx->f);
    free(cx->s);
}

/* the target weight in the factor's [d_in, d_out] layout: W as 2-D [dims0, ∏ rest]
 * (a Conv kernel [C_out, C_in·∏k]), transposed when the first use reads it so */
static uint32_t factor_layout(struct dc_ctx *cx, const struct dc_factor *F)
{
    static const int64_t swap[2] = {1, 0};
    uint32_t w = F->weight;
    if (cx->g->t[w].rank != 2) {
        int64_t d2[2] = {F->tr ? F->d_out : F->d_in, F->tr ? F->d_in : F->d_out};
        w = bld_reshape(&cx->b, w, 2, d2);
    }
    return F->tr ? bld_transpose(&cx->b, w, 2, swap) : w;
}

int dc_factors(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    for (int i = 0; i < cx->nf; i++) {
        const struct dc_factor *F = &cx->fac[i];
        const char *site = NULL;
        for (int k = 0; k < cx->ns && !site; k++)
            if (cx->sites[k].factor == i)
                site = cx->sites[k].name;
        char nm[300];
        int64_t vd[2] = {F->d_in, F->C}, ud[2] = {F->C, F->d_out};
        snprintf(nm, sizeof nm, "%s.V", site);
        cx->f[i].V = dc_state(cx, nm, IR_F32, 2, vd, DC_INIT_NORMAL, 1.0 / sqrt((double)F->d_in),
                              DC_TRAIN_COMPONENT);
        snprintf(nm, sizeof nm, "%s.U", site);
        cx->f[i].U = dc_state(cx, nm, IR_F32, 2, ud, DC_INIT_NORMAL, 1.0 / sqrt((double)F->C),
                              DC_TRAIN_COMPONENT);
        cx->f[i].Wr = factor_layout(cx, F);
        cx->f[i].delta = bld_sub(b, cx->f[i].Wr, bld_matmul(b, cx->f[i].V, cx->f[i].U));
        cx->f[i].Vt = cx->f[i].Ut = cx->f[i].deltat = IR_NONE;
        cx->f[i].Vk = cx->f[i].Uk = cx->f[i].deltak = IR_NONE;
    }
    return b->err;
}

void dc_mask_dims(const struct dc_ctx *cx, int i, int64_t k, int *rank, int64_t *dims)
{
    const struct dc_site_t *st = &cx->s[i];
    for (int j = 0; j < st->pr; j++)
        dims[j] = st->pos[j];
    dims[st->pr] = k;
    *rank = st->pr + 1;
}

static int is_matmul_kind(enum pass_site_kind k)
{
    return k == PASS_SITE_MATMUL || k == PASS_SITE_GEMM || k == PASS_SITE_MATMUL_LEFT;
}

/* the factor tensors as this site reads them: transposed sites read Wrᵀ = Uᵀ·Vᵀ */
static void site_factors(struct dc_ctx *cx, int i, uint32_t *V, uint32_t *U, uint32_t *D)
{
    struct dc_factor_t *f = &cx->f[cx->sites[i].factor];
    if (!cx->sites[i].transposed) {
        *V = f->V, *U = f->U, *D = f->delta;
        return;
    }
    static const int64_t swap[2] = {1, 0};
    if (f->Vt == IR_NONE) {
        f->Vt = bld_transpose(&cx->b, f->V, 2, swap);
        f->Ut = bld_transpose(&cx->b, f->U, 2, swap);
        f->deltat = bld_transpose(&cx->b, f->delta, 2, swap);
    }
    *V = f->Ut, *U = f->Vt, *D = f->deltat;
}

/* a [d, C]-shaped factor read as a Conv kernel [C, rest..] (rest: the kernel's
 * dims after the first, or all ones for a 1×1 kernel of `nsp` spatial dims) */
static uint32_t as_kernel(struct dc_ctx *cx, uint32_t t, int64_t C, const struct ir_tensor *W,
                          int nsp)
{
    static const int64_t swap[2] = {1, 0};
    int64_t dims[IR_MAX_RANK];
    int r = 0;
    dims[r++] = C;
    if (W) {
        for (int k = 1; k < W->rank; k++)
            dims[r++] = W->dims[k];
    } else {
        dims[r++] = cx->g->t[t].dims[0];
        for (int k = 0; k < nsp; k++)
            dims[r++] = 1;
    }
    return bld_reshape(&cx->b, bld_transpose(&cx->b, t, 2, swap), r, dims);
}

/* Conv sites: V as [C, C_in, k..] (Vᵀ reshaped), U as a 1×1 kernel [C_out, C, 1..],
 * Δ as [C_out, C_in, k..]; a Conv weight is never read transposed (all its uses
 * are Convs with the same view) */
static void conv_kernels(struct dc_ctx *cx, int i)
{
    const struct dc_site *s = &cx->sites[i];
    struct dc_factor_t *f = &cx->f[s->factor];
    if (f->Vk != IR_NONE)
        return;
    struct ir_tensor W = cx->g->t[s->weight]; /* a copy: building moves the array */
    int nsp = W.rank - 2;
    f->Vk = as_kernel(cx, f->V, s->C, &W, nsp);
    f->Uk = as_kernel(cx, f->U, s->d_out, NULL, nsp);
    f->deltak = as_kernel(cx, f->delta, s->d_out, &W, nsp);
}

/* Conv(x, k) with the site node's own attributes (pads, strides, dilations, ..) */
static uint32_t site_conv(struct dc_ctx *cx, int i, uint32_t x, uint32_t k)
{
    const struct ir_node *n = &cx->g->n[cx->sites[i].node];
    uint32_t na = n->n_attr, in[2] = {x, k};
    const struct ir_attr *at = n->attr; /* arena storage: stays put while nodes are added */
    return bld_node(&cx->b, IR_OP_Conv, 2, in, na, at, 1, NULL);
}

/* the node's activation as rows [pos.., d_in] (matmul kinds) */
static uint32_t rows_of(struct dc_ctx *cx, int i, uint32_t x)
{
    if (x == cx->s[i].x && cx->s[i].rows != IR_NONE)
        return cx->s[i].rows;
    uint32_t r = cx->sites[i].act_tr ? bld_swap_last2(&cx->b, x) : x;
    if (x == cx->s[i].x)
        cx->s[i].rows = r;
    return r;
}

/* inner activations for activation x in the node's layout: rows·V [pos.., C],
 * V[idx] [idx.., C], or Conv(x, V kernel) [N, C, spatial..]. The clean
 * forward's are built once and shared by the CI function and every masked
 * forward whose site input is still the clean one. */
static uint32_t site_h(struct dc_ctx *cx, int i, uint32_t x)
{
    if (x == cx->s[i].x && cx->s[i].h != IR_NONE)
        return cx->s[i].h;
    struct ir_builder *b = &cx->b;
    uint32_t V, U, D, h;
    site_factors(cx, i, &V, &U, &D);
    switch (cx->sites[i].kind) {
    case PASS_SITE_GATHER:
        h = bld_op2(b, IR_OP_Gather, V, x);
        break;
    case PASS_SITE_CONV:
        conv_kernels(cx, i);
        h = site_conv(cx, i, x, cx->f[cx->sites[i].factor].Vk);
        break;
    default:
        h = bld_matmul(b, rows_of(cx, i, x), V);
        break;
    }
    if (x == cx->s[i].x)
        cx->s[i].h = h;
    return h;
}

/* a Conv's [N, C, spatial..] as [N, spatial.., C] and back */
static uint32_t channels_last(struct dc_ctx *cx, uint32_t t, int back)
{
    int r = cx->g->t[t].rank;
    int64_t perm[IR_MAX_RANK];
    perm[0] = 0;
    for (int k = 1; k < r; k++)
        perm[k] = back ? (k == 1 ? r - 1 : k - 1) : (k == r - 1 ? 1 : k + 1);
    return bld_transpose(&cx->b, t, r, perm);
}

uint32_t dc_site_acts(struct dc_ctx *cx, int i)
{
    uint32_t h = site_h(cx, i, cx->s[i].x);
    return cx->sites[i].kind == PASS_SITE_CONV ? channels_last(cx, h, 0) : h;
}

uint32_t dc_site_rows(struct dc_ctx *cx, int i)
{
    const struct dc_site *s = &cx->sites[i];
    if (is_matmul_kind(s->kind))
        return rows_of(cx, i, cx->s[i].x);
    cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED,
                         "site '%s' (%s) has no per-position input rows", s->name,
                         pass_site_kind_name(s->kind));
    return IR_NONE;
}

/* a per-position [pos.., 1] tensor (δ, routing) in a layout that broadcasts
 * against the site node's output */
static uint32_t pos_to_out(struct dc_ctx *cx, int i, uint32_t t)
{
    const struct dc_site *s = &cx->sites[i];
    if (s->kind == PASS_SITE_CONV) { /* [N, sp.., 1] → [N, 1, sp..]: moving a 1 is a reshape */
        const struct dc_site_t *st = &cx->s[i];
        int64_t dims[IR_MAX_RANK];
        dims[0] = st->pos[0];
        dims[1] = 1;
        for (int k = 1; k < st->pr; k++)
            dims[k + 1] = st->pos[k];
        return bld_reshape(&cx->b, t, st->pr + 1, dims);
    }
    return s->out_tr ? bld_swap_last2(&cx->b, t) : t;
}

static uint32_t mapped(const struct dc_ctx *cx, const uint32_t *map, uint32_t t)
{
    return t != IR_NONE && t < cx->nt0 && map[t] != IR_NONE ? map[t] : t;
}

/* ---- masked forwards of one site (METHOD §1.2, §1.4) ----------------------------- */

/* Gemm's epilogue: alpha·y + beta·C */
static uint32_t gemm_epilogue(struct dc_ctx *cx, int i, uint32_t y, const uint32_t *map)
{
    struct ir_builder *b = &cx->b;
    const struct ir_node *n = &cx->g->n[cx->sites[i].node];
    if (n->op != IR_OP_Gemm)
        return y;
    /* copy what is needed: building nodes may move the node array */
    double alpha = ir_attr_float(n, "alpha", 1.0), beta = ir_attr_float(n, "beta", 1.0);
    uint32_t c = n->n_in > 2 ? mapped(cx, map, n->in[2]) : IR_NONE;
    if (alpha != 1.0)
        y = bld_mul(b, y, bld_f32(b, alpha));
    if (c != IR_NONE && beta != 0.0)
        y = bld_add(b, y, beta == 1.0 ? c : bld_mul(b, c, bld_f32(b, beta)));
    return y;
}

/* rows: y = ((x·V) ⊙ m)·U + δ ⊙ (x·Δ), transposed back for W·x, then Gemm's epilogue */
static uint32_t matmul_masked(struct dc_ctx *cx, int i, uint32_t x, uint32_t m, uint32_t delta,
                              const uint32_t *map)
{
    struct ir_builder *b = &cx->b;
    uint32_t V, U, D;
    site_factors(cx, i, &V, &U, &D);
    uint32_t y = bld_matmul(b, bld_mul(b, site_h(cx, i, x), m), U);
    if (delta != IR_NONE)
        y = bld_add(b, y, bld_mul(b, bld_matmul(b, rows_of(cx, i, x), D), delta));
    if (cx->sites[i].out_tr)
        y = bld_swap_last2(b, y);
    return gemm_epilogue(cx, i, y, map);
}

/* embedding: y = (V[idx] ⊙ m)·U + δ ⊙ Δ[idx]  (reference EmbeddingComponents) */
static uint32_t gather_masked(struct dc_ctx *cx, int i, uint32_t idx, uint32_t m, uint32_t delta)
{
    struct ir_builder *b = &cx->b;
    uint32_t V, U, D;
    site_factors(cx, i, &V, &U, &D);
    uint32_t y = bld_matmul(b, bld_mul(b, site_h(cx, i, idx), m), U);
    if (delta != IR_NONE)
        y = bld_add(b, y, bld_mul(b, bld_op2(b, IR_OP_Gather, D, idx), delta));
    return y;
}

/* y = Conv1×1(Conv(x, V) ⊙ m, U) + bias + δ ⊙ Conv(x, Δ): the per-position
 * W_eff = V·diag(m)·U + δΔ applied to every patch, without im2col */
static uint32_t conv_masked(struct dc_ctx *cx, int i, uint32_t x, uint32_t m, uint32_t delta,
                            const uint32_t *map)
{
    struct ir_builder *b = &cx->b;
    const struct ir_node *n = &cx->g->n[cx->sites[i].node];
    uint32_t bias = n->n_in > 2 ? mapped(cx, map, n->in[2]) : IR_NONE;
    uint32_t a = bld_mul(b, site_h(cx, i, x), channels_last(cx, m, 1));
    const struct dc_factor_t *f = &cx->f[cx->sites[i].factor];
    uint32_t in[3] = {a, f->Uk, bias};
    uint32_t y = bld_node(b, IR_OP_Conv, bias != IR_NONE ? 3 : 2, in, 0, NULL, 1, NULL);
    if (delta != IR_NONE)
        y = bld_add(b, y, bld_mul(b, site_conv(cx, i, x, f->deltak), pos_to_out(cx, i, delta)));
    return y;
}

static uint32_t site_masked(struct dc_ctx *cx, int i, uint32_t x, uint32_t m, uint32_t delta,
                            const uint32_t *map)
{
    switch (cx->sites[i].kind) {
    case PASS_SITE_GATHER: return gather_masked(cx, i, x, m, delta);
    case PASS_SITE_CONV: return conv_masked(cx, i, x, m, delta, map);
    default: return matmul_masked(cx, i, x, m, delta, map);
    }
}

static int site_of_node(const struct dc_ctx *cx, uint32_t node)
{
    for (int i = 0; i < cx->ns; i++)
        if (cx->sites[i].node == node)
            return i;
    return -1;
}

/* copy node n with mapped inputs; its outputs get new tensors recorded in map */
static void clone_node(struct dc_ctx *cx, const struct ir_node *n, uint32_t *map)
{
    uint32_t in[64], out[64];
    if (n->n_in > 64 || n->n_out > 64) {
        cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "node '%s' has too many operands", n->name);
        return;
    }
    for (uint32_t k = 0; k < n->n_in; k++)
        in[k] = mapped(cx, map, n->in[k]);
    int saved = cx->b.opset;
    cx->b.opset = n->opset; /* keep legacy semantics (e.g. Softmax < 13) of the original */
    struct ir_node copy = *n; /* n may move when the node array grows */
    bld_node(&cx->b, copy.op, copy.n_in, in, copy.n_attr, copy.attr, copy.n_out, out);
    cx->b.opset = saved;
    for (uint32_t k = 0; k < copy.n_out && !cx->b.err; k++)
        if (copy.out[k] != IR_NONE)
            map[copy.out[k]] = out[k];
}

int dc_forward(struct dc_ctx *cx, const uint32_t *m, const uint32_t *delta, uint32_t *out)
{
    return dc_forward_routed(cx, m, delta, NULL, out);
}

int dc_forward_routed(struct dc_ctx *cx, const uint32_t *m, const uint32_t *delta,
                      const uint32_t *rho, uint32_t *out)
{
    uint32_t *map = malloc((size_t)cx->nt0 * sizeof *map);
    if (!map)
        return cx->b.err = diag_set(cx->b.d, ST_ERR_NOMEM, "out of memory");
    for (uint32_t t = 0; t < cx->nt0; t++)
        map[t] = IR_NONE;
    for (uint32_t k = 0; k < cx->nfwd && !cx->b.err; k++) {
        uint32_t id = cx->fwd[k];
        const struct ir_node *n = &cx->g->n[id];
        int si = site_of_node(cx, id);
        if (si >= 0 && m[si] != IR_NONE) {
            uint32_t o = n->out[0], x = mapped(cx, map, n->in[cx->sites[si].act]);
            uint32_t y = site_masked(cx, si, x, m[si], delta[si], map);
            if (rho && rho[si] != IR_NONE) { /* unrouted positions: the target weight, on x */
                clone_node(cx, &cx->g->n[id], map);
                struct ir_builder *b = &cx->b;
                uint32_t plain = map[o], r = pos_to_out(cx, si, rho[si]);
                y = bld_add(b, bld_mul(b, r, y),
                            bld_mul(b, bld_sub(b, bld_f32(b, 1.0), r), plain));
            }
            map[o] = y;
            continue;
        }
        int touched = 0;
        for (uint32_t i = 0; i < n->n_in; i++)
            touched |= mapped(cx, map, n->in[i]) != n->in[i];
        if (touched) /* otherwise the target forward's own value is reused */
            clone_node(cx, n, map);
    }
    for (uint32_t k = 0; k < cx->nouts; k++)
        out[k] = mapped(cx, map, cx->outs[k]);
    free(map);
    return cx->b.err;
}

int dc_grad(struct dc_ctx *cx, uint32_t loss, uint32_t n, const uint32_t *wrt, uint32_t *grads)
{
    if (cx->b.err)
        return cx->b.err;
    int st = pass_reassoc_keep(cx->g, wrt, n, cx->b.d);
    if (!st)
        st = pass_autodiff(cx->g, loss, n, wrt, grads, cx->b.d);
    return cx->b.err = st;
}

int dc_finish(struct dc_ctx *cx)
{
    if (cx->b.err)
        return cx->b.err;
    struct ir_graph *g = cx->g;
    struct dc_prog *p = cx->prog;
    /* the program's results: the loss, the metrics, the next value of every state */
    for (uint32_t i = 0; i < g->n_outputs; i++)
        g->t[g->outputs[i]].flags &= ~IR_T_OUTPUT;
    g->n_outputs = 0;
    if (p->loss != IR_NONE)
        ir_graph_add_output(g, p->loss);
    for (int i = 0; i < p->n_metric; i++)
        if (!(g->t[p->metric[i].t].flags & IR_T_OUTPUT))
            ir_graph_add_output(g, p->metric[i].t);
    for (int i = 0; i < p->n_st; i++)
        if (p->st[i].next != IR_NONE && !(g->t[p->st[i].next].flags & IR_T_OUTPUT))
            ir_graph_add_output(g, p->st[i].next);
    for (int i = 0; i < p->n_tap; i++)
        if (!(g->t[p->tap[i].t].flags & IR_T_OUTPUT))
            ir_graph_add_output(g, p->tap[i].t);
    struct pass_ctx pc = {0};
    int st = pass_reassoc(g, &pc, cx->b.d); /* programs without autodiff; backward chains */
    if (!st)
        st = pass_fold_gemm(g, &pc, cx->b.d); /* autodiff's Aᵀ·dY, dY·Bᵀ and sums */
    /* CSE keeps output and kept tensors; the gradients dc_prog names (read through
     * dc_prog_keep_grads) must keep their producers too, so they are kept meanwhile */
    unsigned char *pinned = calloc((size_t)p->n_st + 1, 1);
    if (!pinned)
        st = diag_set(cx->b.d, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < p->n_st; i++)
        if (p->st[i].grad != IR_NONE && !(g->t[p->st[i].grad].flags & IR_T_KEEP)) {
            g->t[p->st[i].grad].flags |= IR_T_KEEP;
            pinned[i] = 1;
        }
    if (!st)
        st = pass_cse(g, &pc, cx->b.d); /* the forwards of one step share much */
    for (int i = 0; pinned && i < p->n_st; i++)
        if (pinned[i])
            g->t[p->st[i].grad].flags &= ~IR_T_KEEP;
    free(pinned);
    if (!st)
        st = pass_dce(g, &pc, cx->b.d);
    if (!st)
        st = ir_verify(g, cx->b.d);
    return st;
}
