/* adversary.c — adversarial reconstruction (METHOD.md §3.4, §4.6, §4.7).
 *
 * A source s ∈ [0,1] per site, shaped [pos.., C+1] or broadcast over some of
 * those dims, gives the masks m = g + (1 − g) ⊙ s[.., :C] and δ = s[.., C]: the
 * adversary can only turn unimportant components on, never important ones off.
 * An ascent on s maximises the output divergence D of the masked forward.
 *
 * The inner ascents are part of the one static step graph: each is a forward,
 * an autodiff of its loss w.r.t. the sources only (so the components and CI are
 * constants to it, as in the reference), and an update. The loss that trains the
 * decomposition reads the final sources through StopGradient, so no gradient
 * reaches V, U or the CI function through the adversary's own optimisation.
 *
 * Persistent PGD (VPD) keeps the sources and their Adam moments as program
 * states bound to batch slots; after the main backward the final ascent reuses
 * the main gradient w.r.t. the sources (∂L_total/∂s = coeff · ∂L_ppgd/∂s). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decomp_impl.h"

#define MAX_SITES 256

/* x[.., lo:hi] along the last axis */
static uint32_t last_slice(struct dc_ctx *cx, uint32_t x, int64_t lo, int64_t hi)
{
    struct ir_builder *b = &cx->b;
    int64_t ax = -1;
    uint32_t in[4] = {x, bld_i64s(b, 1, &lo), bld_i64s(b, 1, &hi), bld_i64s(b, 1, &ax)};
    return bld_node(b, IR_OP_Slice, 4, in, 0, NULL, 1, NULL);
}

static uint32_t clamp01(struct dc_ctx *cx, uint32_t x)
{
    struct ir_builder *b = &cx->b;
    uint32_t in[3] = {x, bld_f32(b, 0.0), bld_f32(b, 1.0)};
    return bld_node(b, IR_OP_Clip, 3, in, 0, NULL, 1, NULL);
}

/* the dims of site i's source under a scope: [pos.., C+1] with the batch axis
 * (broadcast_across_batch) or every position axis (single) set to 1 */
static void source_dims(struct dc_ctx *cx, int i, enum dc_pgd_scope sc, int *r, int64_t *dims)
{
    dc_mask_dims(cx, i, cx->sites[i].C + 1, r, dims);
    for (int k = 0; k < *r - 1; k++)
        if (sc == DC_SCOPE_SINGLE || (sc == DC_SCOPE_BROADCAST_BATCH && k == 0))
            dims[k] = 1;
}

/* site i's masks from its source (broadcast to [pos.., C+1] first: a shared
 * source's gradient is then the sum over the positions it stands for) */
static void source_masks(struct dc_ctx *cx, int i, uint32_t s, uint32_t *m, uint32_t *dl)
{
    struct ir_builder *b = &cx->b;
    int r;
    int64_t md[IR_MAX_RANK], C = cx->sites[i].C;
    dc_mask_dims(cx, i, C + 1, &r, md);
    uint32_t in[2] = {s, bld_i64s(b, r, md)};
    uint32_t full = bld_node(b, IR_OP_Expand, 2, in, 0, NULL, 1, NULL);
    uint32_t g = cx->s[i].g_lo;
    *m = bld_add(b, g, bld_mul(b, bld_sub(b, bld_f32(b, 1.0), g), last_slice(cx, full, 0, C)));
    *dl = cx->cfg->use_delta_component ? last_slice(cx, full, C, C + 1) : IR_NONE;
}

/* D(model(x; masks from s), target), every site masked; rho: routing or NULL */
static uint32_t adv_loss(struct dc_ctx *cx, const uint32_t *s, const uint32_t *rho)
{
    uint32_t m[MAX_SITES], dl[MAX_SITES], y[64];
    if (cx->ns > MAX_SITES || cx->nouts > 64) {
        cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "too many sites/outputs");
        return IR_NONE;
    }
    for (int i = 0; i < cx->ns; i++)
        source_masks(cx, i, s[i], &m[i], &dl[i]);
    int st = rho ? dc_forward_routed(cx, m, dl, rho, y) : dc_forward(cx, m, dl, y);
    return st ? IR_NONE : dc_divergence(cx, y);
}

/* ∂loss/∂s for every site's source, the rest of the graph held constant */
static int source_grads(struct dc_ctx *cx, uint32_t loss, const uint32_t *s, uint32_t *gs)
{
    if (cx->b.err)
        return cx->b.err;
    return dc_grad(cx, loss, (uint32_t)cx->ns, s, gs);
}

/* one projected ascent step: sign (lr·sign(g)) or Adam (lr·m̂/(√v̂ + eps) with the
 * bias corrections given as tensors); *m, *v are updated in place (Adam) */
static uint32_t ascend(struct dc_ctx *cx, const struct dc_src_opt *o, uint32_t s, uint32_t g,
                       uint32_t lr, uint32_t *m, uint32_t *v, uint32_t bc1, uint32_t bc2)
{
    struct ir_builder *b = &cx->b;
    if (!o->adam)
        return clamp01(cx, bld_add(b, s, bld_mul(b, lr, bld_op1(b, IR_OP_Sign, g))));
    *m = bld_add(b, bld_mul(b, *m, bld_f32(b, o->beta1)), bld_mul(b, g, bld_f32(b, 1 - o->beta1)));
    *v = bld_add(b, bld_mul(b, *v, bld_f32(b, o->beta2)),
                 bld_mul(b, bld_mul(b, g, g), bld_f32(b, 1 - o->beta2)));
    uint32_t den = bld_add(b, bld_div(b, bld_op1(b, IR_OP_Sqrt, *v), bc2), bld_f32(b, o->eps));
    uint32_t step = bld_mul(b, bld_div(b, lr, bc1), bld_div(b, *m, den));
    return clamp01(cx, bld_add(b, s, step));
}

static void tap(struct dc_ctx *cx, const char *what, int j, int i, uint32_t t)
{
    char nm[400];
    snprintf(nm, sizeof nm, "%s.%d.%s", what, j, cx->sites[i].name);
    dc_tap(cx, nm, t);
}

/* ---- fresh PGD (METHOD §4.6) ----------------------------------------------------- */

static uint32_t pgd_init(struct dc_ctx *cx, const struct dc_loss *l, int i)
{
    struct ir_builder *b = &cx->b;
    int r;
    int64_t dims[IR_MAX_RANK];
    source_dims(cx, i, l->scope, &r, dims);
    if (l->init == DC_PGD_INIT_RANDOM)
        return dc_uniform(cx, r, dims);
    uint32_t in[2] = {bld_f32(b, l->init == DC_PGD_INIT_ONES ? 1.0 : 0.0), bld_i64s(b, r, dims)};
    return bld_node(b, IR_OP_Expand, 2, in, 0, NULL, 1, NULL);
}

uint32_t dc_pgd_recon(struct dc_ctx *cx, const struct dc_loss *l, int subset)
{
    struct ir_builder *b = &cx->b;
    uint32_t s[MAX_SITES], gs[MAX_SITES], m[MAX_SITES], v[MAX_SITES], rho[MAX_SITES];
    if (cx->ns > MAX_SITES)
        return b->err = diag_set(b->d, ST_ERR_UNSUPPORTED, "too many sites"), IR_NONE;
    if (subset) /* drawn once per PGD call and held over its inner steps (METHOD §3.2) */
        dc_routes(cx, rho);
    for (int i = 0; i < cx->ns; i++) {
        s[i] = pgd_init(cx, l, i);
        m[i] = v[i] = bld_f32(b, 0.0); /* fresh Adam moments broadcast on first use */
    }
    uint32_t lr = bld_f32(b, l->opt.lr.start_val);
    for (int j = 0; j < l->n_steps && !b->err; j++) {
        uint32_t L = adv_loss(cx, s, subset ? rho : NULL);
        if (source_grads(cx, L, s, gs))
            break;
        char nm[64];
        snprintf(nm, sizeof nm, "pgd.loss.%d", j);
        dc_tap(cx, nm, L);
        for (int i = 0; i < cx->ns; i++)
            tap(cx, "pgd.grad", j, i, gs[i]);
        double t = j + 1;
        uint32_t bc1 = bld_f32(b, 1.0 - pow(l->opt.beta1, t));
        uint32_t bc2 = bld_f32(b, sqrt(1.0 - pow(l->opt.beta2, t)));
        for (int i = 0; i < cx->ns; i++)
            s[i] = ascend(cx, &l->opt, s[i], gs[i], lr, &m[i], &v[i], bc1, bc2);
    }
    for (int i = 0; i < cx->ns; i++)
        s[i] = bld_op1(b, IR_OP_StopGradient, s[i]);
    return adv_loss(cx, s, subset ? rho : NULL);
}

/* ---- persistent PGD (METHOD §4.7) ------------------------------------------------- */

uint32_t dc_ppgd_recon(struct dc_ctx *cx, const struct dc_loss *l, struct dc_ppgd *pp)
{
    struct ir_builder *b = &cx->b;
    uint32_t s[MAX_SITES], gs[MAX_SITES];
    if (cx->ns > MAX_SITES)
        return b->err = diag_set(b->d, ST_ERR_UNSUPPORTED, "too many sites"), IR_NONE;
    memset(pp, 0, sizeof *pp);
    pp->loss = l;
    for (int i = 0; i < cx->ns; i++) {
        int r;
        int64_t dims[IR_MAX_RANK];
        char nm[400];
        source_dims(cx, i, l->scope, &r, dims);
        snprintf(nm, sizeof nm, "ppgd.%s.source", cx->sites[i].name);
        s[i] = pp->state[i] = dc_state(cx, nm, IR_F32, r, dims, DC_INIT_UNIT, 0, DC_TRAIN_NO);
        pp->m[i] = pp->v[i] = IR_NONE;
        if (l->opt.adam) {
            snprintf(nm, sizeof nm, "ppgd.%s.m", cx->sites[i].name);
            pp->m[i] = pp->m0[i] = dc_state(cx, nm, IR_F32, r, dims, DC_INIT_ZERO, 0, DC_TRAIN_NO);
            snprintf(nm, sizeof nm, "ppgd.%s.v", cx->sites[i].name);
            pp->v[i] = pp->v0[i] = dc_state(cx, nm, IR_F32, r, dims, DC_INIT_ZERO, 0, DC_TRAIN_NO);
        }
    }
    struct dc_prog *p = cx->prog;
    p->src.lr = l->opt.lr;
    p->src.beta1 = l->opt.beta1;
    p->src.beta2 = l->opt.beta2;
    p->src.per_step = l->n_steps + 1;
    uint32_t lr = dc_scalar(cx, DC_SC_SRC_LR);
    for (int j = 0; j < l->n_steps && !b->err; j++) { /* warmup ascents on this batch */
        uint32_t L = adv_loss(cx, s, NULL);
        if (source_grads(cx, L, s, gs))
            break;
        char nm[64];
        snprintf(nm, sizeof nm, "ppgd.loss.%d", j);
        dc_tap(cx, nm, L);
        for (int i = 0; i < cx->ns; i++) {
            tap(cx, "ppgd.grad", j, i, gs[i]);
            s[i] = ascend(cx, &l->opt, s[i], gs[i], lr, &pp->m[i], &pp->v[i],
                          dc_scalar_sub(cx, DC_SC_SRC_BC1, j), dc_scalar_sub(cx, DC_SC_SRC_BC2, j));
        }
    }
    for (int i = 0; i < cx->ns; i++)
        pp->s[i] = bld_op1(b, IR_OP_StopGradient, s[i]);
    return adv_loss(cx, pp->s, NULL);
}

int dc_ppgd_finish(struct dc_ctx *cx, struct dc_ppgd *pp, const uint32_t *grad_total)
{
    struct ir_builder *b = &cx->b;
    const struct dc_loss *l = pp->loss;
    int j = l->n_steps;
    uint32_t lr = dc_scalar(cx, DC_SC_SRC_LR), k = bld_f32(b, 1.0 / l->coeff);
    for (int i = 0; i < cx->ns && !b->err; i++) {
        uint32_t g = bld_mul(b, grad_total[i], k); /* ∂L_ppgd/∂s itself */
        tap(cx, "ppgd.grad", j, i, g);
        uint32_t s1 = ascend(cx, &l->opt, pp->s[i], g, lr, &pp->m[i], &pp->v[i],
                             dc_scalar_sub(cx, DC_SC_SRC_BC1, j),
                             dc_scalar_sub(cx, DC_SC_SRC_BC2, j));
        dc_state_next(cx, pp->state[i], s1);
        if (l->opt.adam) {
            dc_state_next(cx, pp->m0[i], pp->m[i]);
            dc_state_next(cx, pp->v0[i], pp->v[i]);
        }
    }
    return b->err;
}

/* ---- the evaluation adversary --------------------------------------------------- */

int dc_build_pgd_eval(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                      int ns, const struct dc_factor *fac, int nf, double step_size,
                      struct dc_prog *prog, struct diag *d)
{
    struct dc_ctx cx;
    uint32_t s[MAX_SITES], gs[MAX_SITES];
    if (ns > MAX_SITES)
        return diag_set(d, ST_ERR_UNSUPPORTED, "too many sites");
    int st = dc_ctx_init(&cx, g, c, sites, ns, fac, nf, prog, "pgd_eval", d);
    if (!st)
        st = dc_factors(&cx);
    if (!st)
        st = dc_ci_fn(&cx);
    struct ir_builder *b = &cx.b;
    for (int i = 0; !st && i < ns && !b->err; i++) {
        int r;
        int64_t dims[IR_MAX_RANK];
        char nm[400];
        source_dims(&cx, i, DC_SCOPE_SINGLE, &r, dims);
        snprintf(nm, sizeof nm, "pgd_eval.%s", sites[i].name);
        s[i] = dc_state(&cx, nm, IR_F32, r, dims, DC_INIT_UNIT, 0, DC_TRAIN_NO);
    }
    if (!st && !b->err) {
        uint32_t L = adv_loss(&cx, s, NULL);
        prog->loss = L;
        dc_metric(&cx, c->output_loss_type == DC_OUT_KL ? "pgd/kl" : "pgd/mse", L);
        struct dc_src_opt sign = {0};
        uint32_t lr = bld_f32(b, step_size);
        if (!source_grads(&cx, L, s, gs))
            for (int i = 0; i < ns; i++)
                dc_state_next(&cx, s[i], ascend(&cx, &sign, s[i], gs[i], lr, NULL, NULL,
                                                IR_NONE, IR_NONE));
    }
    for (int i = 0; i < prog->n_st; i++) /* the decomposition itself stays fixed */
        prog->st[i].trainable = DC_TRAIN_NO;
    prog->steps = 1;
    if (!st)
        st = dc_finish(&cx);
    dc_ctx_fini(&cx);
    return st ? st : b->err;
}
