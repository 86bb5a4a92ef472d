/* objective_spd.c — the SPD train step (METHOD.md §4, §5.4, lineage 1) and the
 * faithfulness warmup, assembled from the decomposition pieces.
 * needs: a compiled inference graph and selected sites.
 * guarantees: a finished program (dc_finish): loss, metrics, next states. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_impl.h"

/* Σ over the model's float outputs of mean((y − t)²) (reference: sum / numel) */
uint32_t dc_mse(struct dc_ctx *cx, const uint32_t *y)
{
    struct ir_builder *b = &cx->b;
    uint32_t tot = IR_NONE;
    for (uint32_t k = 0; k < cx->nouts; k++) {
        uint32_t dlt = bld_sub(b, y[k], cx->outs[k]);
        uint32_t l = bld_reduce(b, IR_OP_ReduceMean, bld_mul(b, dlt, dlt), 0, NULL, 0);
        tot = tot == IR_NONE ? l : bld_add(b, tot, l);
    }
    return tot;
}

/* An LM's logits are usually MatMul(h, W) (+ b) with W a constant unembedding, W or
 * Transpose(W). When the target's and a masked forward's logits both are, with the same
 * W and b, the KL is one ChunkedKL node on the hidden states, and no forward's [.., V]
 * logits are ever held (a decomposed unembedding has no such form and keeps the plain
 * path). */
struct lm_head {
    uint32_t h, w, b;
    int trans;
};

static int const_of_rank(const struct ir_graph *g, uint32_t t, int rank)
{
    return t != IR_NONE && g->t[t].data && g->t[t].rank == rank && g->t[t].dtype == IR_F32;
}

static int lm_head_of(const struct ir_graph *g, uint32_t y, struct lm_head *hd)
{
    const struct ir_node *n = g->t[y].producer == IR_NONE ? NULL : &g->n[g->t[y].producer];
    hd->b = IR_NONE;
    if (n && n->op == IR_OP_Add && n->n_in == 2) {
        int bi = const_of_rank(g, n->in[1], 1) ? 1 : const_of_rank(g, n->in[0], 1) ? 0 : -1;
        uint32_t o = bi < 0 ? IR_NONE : n->in[1 - bi];
        hd->b = bi < 0 ? IR_NONE : n->in[bi];
        n = o == IR_NONE || g->t[o].producer == IR_NONE ? NULL : &g->n[g->t[o].producer];
    }
    if (!n || n->op != IR_OP_MatMul || g->t[n->in[0]].rank < 2)
        return 0;
    hd->h = n->in[0];
    hd->w = n->in[1];
    hd->trans = 0;
    const struct ir_node *tp =
        g->t[hd->w].producer == IR_NONE ? NULL : &g->n[g->t[hd->w].producer];
    if (tp && tp->op == IR_OP_Transpose && const_of_rank(g, tp->in[0], 2)) {
        const int64_t *perm;
        int64_t np = ir_attr_ints(tp, "perm", &perm);
        if (np < 0 || (np == 2 && perm[0] == 1 && perm[1] == 0)) {
            hd->w = tp->in[0];
            hd->trans = 1;
        }
    }
    int64_t V = g->t[y].dims[g->t[y].rank - 1];
    return const_of_rank(g, hd->w, 2) && g->t[hd->w].dims[hd->trans ? 0 : 1] == V &&
           (hd->b == IR_NONE || g->t[hd->b].dims[0] == V); /* a broadcast [1] bias: plain path */
}

static uint32_t chunked_kl(struct dc_ctx *cx, uint32_t target, uint32_t masked)
{
    struct lm_head t, m;
    if (cx->cfg->kl_chunk <= 0 || !lm_head_of(cx->g, target, &t) ||
        !lm_head_of(cx->g, masked, &m) || t.w != m.w || t.b != m.b || t.trans != m.trans)
        return IR_NONE;
    struct ir_attr at[2] = {bld_attr_int("chunk", cx->cfg->kl_chunk),
                            bld_attr_int("trans_w", t.trans)};
    uint32_t in[4] = {t.h, m.h, t.w, t.b}, out[2];
    bld_node(&cx->b, IR_OP_ChunkedKL, t.b == IR_NONE ? 3 : 4, in, 2, at, 2, out);
    return bld_reduce(&cx->b, IR_OP_ReduceMean, out[0], 0, NULL, 0);
}

/* Σ over outputs of the mean over positions of KL(P‖Q), P = softmax(target logits),
 * Q = softmax(predicted logits) over the last axis (METHOD §4.1); the target is a constant */
uint32_t dc_kl(struct dc_ctx *cx, const uint32_t *y)
{
    struct ir_builder *b = &cx->b;
    struct ir_attr ax = bld_attr_int("axis", -1);
    int64_t last = -1;
    uint32_t tot = IR_NONE;
    for (uint32_t k = 0; k < cx->nouts; k++) {
        uint32_t l = chunked_kl(cx, cx->outs[k], y[k]);
        if (l == IR_NONE) {
            uint32_t lp = bld_node(b, IR_OP_LogSoftmax, 1, &cx->outs[k], 1, &ax, 1, NULL);
            uint32_t lq = bld_node(b, IR_OP_LogSoftmax, 1, &y[k], 1, &ax, 1, NULL);
            uint32_t t = bld_mul(b, bld_op1(b, IR_OP_Exp, lp), bld_sub(b, lp, lq));
            uint32_t per_pos = bld_reduce(b, IR_OP_ReduceSum, t, 1, &last, 0);
            l = bld_reduce(b, IR_OP_ReduceMean, per_pos, 0, NULL, 0);
        }
        tot = tot == IR_NONE ? l : bld_add(b, tot, l);
    }
    return tot;
}

uint32_t dc_divergence(struct dc_ctx *cx, const uint32_t *y)
{
    return cx->cfg->output_loss_type == DC_OUT_KL ? dc_kl(cx, y) : dc_mse(cx, y);
}

/* m = g + (1 − g) ⊙ r with fresh uniform r; δ ~ U(0,1) per position when Δ is on */
static void stochastic_masks(struct dc_ctx *cx, int i, uint32_t *m, uint32_t *delta)
{
    struct ir_builder *b = &cx->b;
    int r;
    int64_t md[IR_MAX_RANK];
    dc_mask_dims(cx, i, cx->sites[i].C, &r, md);
    uint32_t g = cx->s[i].g_lo;
    uint32_t u = dc_uniform(cx, r, md);
    *m = bld_add(b, g, bld_mul(b, bld_sub(b, bld_f32(b, 1.0), g), u));
    *delta = IR_NONE;
    if (cx->cfg->use_delta_component) {
        dc_mask_dims(cx, i, 1, &r, md);
        *delta = dc_uniform(cx, r, md);
    }
}

/* one masked forward; `only` < 0: every site masked, else only that site */
static uint32_t stochastic_recon(struct dc_ctx *cx, int only)
{
    uint32_t m[256], dl[256], y[64];
    if (cx->ns > 256 || cx->nouts > 64)
        return cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "too many sites/outputs"), IR_NONE;
    for (int i = 0; i < cx->ns; i++) {
        m[i] = dl[i] = IR_NONE;
        if (only < 0 || only == i)
            stochastic_masks(cx, i, &m[i], &dl[i]);
    }
    if (dc_forward(cx, m, dl, y))
        return IR_NONE;
    return dc_divergence(cx, y);
}

/* every site masked, but each position uses the components of only a random
 * subset of sites (UniformKSubset routing, METHOD §3.2, §4.4) */
static uint32_t subset_recon(struct dc_ctx *cx)
{
    uint32_t m[256], dl[256], rho[256], y[64];
    if (cx->ns > 256 || cx->nouts > 64)
        return cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "too many sites/outputs"), IR_NONE;
    for (int i = 0; i < cx->ns; i++)
        stochastic_masks(cx, i, &m[i], &dl[i]);
    dc_routes(cx, rho);
    if (dc_forward_routed(cx, m, dl, rho, y))
        return IR_NONE;
    return dc_divergence(cx, y);
}

static uint32_t layerwise_recon(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    uint32_t tot = IR_NONE;
    for (int i = 0; i < cx->ns; i++) {
        uint32_t l = stochastic_recon(cx, i);
        tot = tot == IR_NONE ? l : bld_add(b, tot, l);
    }
    return bld_div(b, tot, bld_f32(b, cx->ns)); /* mean over sites (S = 1 draw) */
}

/* masks = g_lo, Δ off (a monitor; METHOD §4.5) */
static uint32_t ci_masked_recon(struct dc_ctx *cx)
{
    uint32_t m[256], dl[256], y[64];
    for (int i = 0; i < cx->ns && i < 256; i++) {
        m[i] = cx->s[i].g_lo;
        dl[i] = IR_NONE;
    }
    if (dc_forward(cx, m, dl, y))
        return IR_NONE;
    return dc_divergence(cx, y);
}

/* Σ_sites Σ_c [M + β·M·log2(1 + S)], S = Σ_n (g_up + eps)^p, M = S / N  (METHOD §4.3) */
static uint32_t importance_minimality(struct dc_ctx *cx, const struct dc_loss *l)
{
    struct ir_builder *b = &cx->b;
    /* p is a run-time scalar only while it anneals: a constant lets the kernels take
     * x^1 as x and x^2 as x·x (and the VJP's x^0 as 1) instead of calling pow */
    int anneals = l->p_anneal_final_p >= 0 && l->p_anneal_start_frac < 1.0;
    uint32_t p = anneals ? dc_scalar(cx, DC_SC_P) : bld_f32(b, l->pnorm), tot = IR_NONE;
    for (int i = 0; i < cx->ns; i++) {
        uint32_t g = cx->s[i].g_up;
        /* copy the shape: building nodes may move the tensor array */
        const struct ir_tensor *t = &cx->g->t[g];
        int rank = t->rank;
        int64_t axes[IR_MAX_RANK], N = 1;
        for (int k = 0; k < rank - 1; k++) {
            axes[k] = k;
            N *= t->dims[k];
        }
        uint32_t pw = bld_op2(b, IR_OP_Pow, bld_add(b, g, bld_f32(b, l->eps)), p);
        uint32_t S = bld_reduce(b, IR_OP_ReduceSum, pw, rank - 1, axes, 0); /* [C] */
        uint32_t M = bld_div(b, S, bld_f32(b, (double)N));
        if (l->beta != 0.0) {
            uint32_t lg = bld_div(b, bld_op1(b, IR_OP_Log, bld_add(b, S, bld_f32(b, 1.0))),
                                  bld_f32(b, log(2.0)));
            M = bld_add(b, M, bld_mul(b, bld_mul(b, M, lg), bld_f32(b, l->beta)));
        }
        uint32_t s = bld_reduce(b, IR_OP_ReduceSum, M, 0, NULL, 0);
        tot = tot == IR_NONE ? s : bld_add(b, tot, s);
    }
    return tot;
}

/* Σ_sites ‖Δ‖² / Σ_sites d_in·d_out (METHOD §4.2: the code's normalisation) */
static uint32_t faithfulness(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    uint32_t tot = IR_NONE;
    double count = 0;
    for (int i = 0; i < cx->ns; i++) {
        uint32_t dl = cx->f[cx->sites[i].factor].delta;
        uint32_t s = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, dl, dl), 0, NULL, 0);
        tot = tot == IR_NONE ? s : bld_add(b, tot, s);
        count += (double)cx->sites[i].d_in * (double)cx->sites[i].d_out;
    }
    return bld_div(b, tot, bld_f32(b, count));
}

/* mean over positions of Σ_c 1[g_lo > threshold] for site i */
uint32_t dc_l0(struct dc_ctx *cx, int i)
{
    struct ir_builder *b = &cx->b;
    uint32_t g = cx->s[i].g_lo;
    const struct ir_tensor *t = &cx->g->t[g];
    int64_t N = ir_numel(t) / t->dims[t->rank - 1];
    uint32_t on = bld_cast(b, bld_op2(b, IR_OP_Greater, g, bld_f32(b, cx->cfg->ci_alive_threshold)),
                           IR_F32);
    return bld_div(b, bld_reduce(b, IR_OP_ReduceSum, on, 0, NULL, 0), bld_f32(b, (double)N));
}

static void l0_metrics(struct dc_ctx *cx)
{
    for (int i = 0; i < cx->ns; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "l0/%s", cx->sites[i].name);
        dc_metric(cx, nm, dc_l0(cx, i));
    }
}

static uint32_t loss_term(struct dc_ctx *cx, const struct dc_loss *l, struct dc_ppgd *pp)
{
    switch (l->kind) {
    case DC_LOSS_IMPORTANCE_MINIMALITY: return importance_minimality(cx, l);
    case DC_LOSS_STOCHASTIC_RECON: return stochastic_recon(cx, -1);
    case DC_LOSS_STOCHASTIC_RECON_LAYERWISE: return layerwise_recon(cx);
    case DC_LOSS_CI_MASKED_RECON: return ci_masked_recon(cx);
    case DC_LOSS_FAITHFULNESS: return faithfulness(cx);
    case DC_LOSS_STOCHASTIC_RECON_SUBSET: return subset_recon(cx);
    case DC_LOSS_PGD_RECON: return dc_pgd_recon(cx, l, 0);
    case DC_LOSS_PGD_RECON_SUBSET: return dc_pgd_recon(cx, l, 1);
    case DC_LOSS_PERSISTENT_PGD_RECON:
        if (pp->loss || l->coeff <= 0) /* one adversary; its gradient is recovered from coeff */
            break;
        return dc_ppgd_recon(cx, l, pp);
    case DC_LOSS_KIND_COUNT: break;
    }
    cx->b.err = diag_set(cx->b.d, ST_ERR_INVALID, "%s: %s", dc_loss_classname(l->kind),
                         l->kind == DC_LOSS_PERSISTENT_PGD_RECON
                             ? "at most one persistent adversary, with a coeff > 0"
                             : "unknown loss kind");
    return IR_NONE;
}

int dc_build_spd_train(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                       int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                       struct diag *d)
{
    struct dc_ctx cx;
    int st = dc_ctx_init(&cx, g, c, sites, ns, fac, nf, prog, "spd", d);
    if (!st)
        st = dc_factors(&cx);
    if (!st)
        st = dc_ci_fn(&cx);
    struct ir_builder *b = &cx.b;
    uint32_t total = IR_NONE;
    struct dc_ppgd *pp = calloc(1, sizeof *pp);
    if (!pp)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < c->n_losses && !b->err; i++) {
        const struct dc_loss *l = &c->losses[i];
        uint32_t v = loss_term(&cx, l, pp);
        char nm[160];
        snprintf(nm, sizeof nm, "loss/%s", dc_loss_classname(l->kind));
        dc_metric(&cx, nm, v);
        if (l->kind == DC_LOSS_IMPORTANCE_MINIMALITY)
            prog->p = (struct dc_anneal){l->pnorm, l->p_anneal_final_p, l->p_anneal_start_frac,
                                         l->p_anneal_end_frac};
        uint32_t w = bld_mul(b, v, bld_f32(b, l->coeff));
        total = total == IR_NONE ? w : bld_add(b, total, w);
    }
    if (!st && total == IR_NONE && !b->err)
        b->err = diag_set(d, ST_ERR_INVALID, "the config lists no losses");
    if (!st && !b->err) {
        prog->loss = total;
        dc_metric(&cx, "loss/total", total);
        l0_metrics(&cx);
        prog->lr = c->lr;
        prog->steps = c->steps;
        uint32_t gs[256];
        int na = pp->loss ? ns : 0;
        st = dc_adamw_with(&cx, total, 0.0, c->grad_clip_norm, "adam", na, pp->s, gs);
        if (!st && na)
            st = dc_ppgd_finish(&cx, pp, gs);
    }
    free(pp);
    if (!st)
        st = dc_finish(&cx);
    dc_ctx_fini(&cx);
    return st ? st : b->err;
}

int dc_build_faith_warmup(struct ir_graph *g, const struct dc_config *c,
                          const struct dc_site *sites, int ns, const struct dc_factor *fac, int nf,
                          struct dc_prog *prog, struct diag *d)
{
    struct dc_ctx cx;
    int st = dc_ctx_init(&cx, g, c, sites, ns, fac, nf, prog, "warmup", d);
    if (!st)
        st = dc_factors(&cx);
    if (!st) {
        uint32_t l = faithfulness(&cx);
        prog->loss = l;
        dc_metric(&cx, "loss/FaithfulnessLoss", l);
        prog->lr = (struct dc_schedule_cfg){c->faithfulness_warmup_lr, 0, 1, DC_SCHED_CONSTANT};
        prog->steps = c->faithfulness_warmup_steps;
        st = dc_adamw(&cx, l, c->faithfulness_warmup_weight_decay, 0.0, "warmup");
    }
    if (!st)
        st = dc_finish(&cx);
    dc_ctx_fini(&cx);
    return st;
}
