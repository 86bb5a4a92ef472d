/* objective_apd.c — APD, attribution-based parameter decomposition (METHOD.md §9):
 * the train step and the evaluation program.
 *
 * Components. C parameter components span every site; component c at site l is
 * P_{c,l} = A_{c,l}·B_{c,l} of inner rank m (A [d_in, m], B [m, d_out]). They are
 * stored in SPD's per-site layout with C·m columns: V = [A_0 | A_1 | ..] [d_in, C·m]
 * and U = [B_0; B_1; ..] [C·m, d_out], so component c owns columns c·m .. c·m+m−1,
 * W ≈ V·U = Σ_c P_c, and a masked forward is SPD's ((x·V) ⊙ m)·U with the
 * component mask repeated m times. There is no Δ component and no CI function.
 *
 * Attributions (code form, apd:spd/utils.py calc_grad_attributions; METHOD §9.2):
 *   attr[n, c] = Σ_o ( Σ_l ⟨∂f_o/∂y_l[n], x_l[n]·P_{c,l}⟩ )²
 * f the target's output at position n (o over its last axis, every float output),
 * y_l the target's site output (post-weight activation), x_l its input. The paper's
 * A_c = sqrt(attr/d_L) ranks the same. One reverse sweep per output dimension, built
 * by passes/autodiff on the target forward; ⟨g, x·A·B⟩ = Σ_k (x·A)_k (g·Bᵀ)_k.
 *
 * Batch top-k (METHOD §9.3): the int(topk·N) largest attributions over all
 * positions × components are 1, the rest 0 (TopKMask; no gradient flows through it).
 *
 * Losses (apd:spd/run_spd.py, METHOD §9.4), each summed over sites:
 *   param_match = Σ_l ‖W_l − V_l U_l‖² / n_params,   n_params = Σ_l d_in·d_out
 *   topk_recon  = mean((f_topk − f)²)               (the top-k masked forward)
 *   schatten    = Σ_l Σ_n Σ_c Σ_k (mask[n,c]·‖A_{c,l}[:,k]‖²·‖B_{c,l}[k,:]‖² + 1e-16)^{p/2}
 *                 / n_params / N
 * needs: a compiled inference graph; matmul sites on plain rows [N, d] (positions of
 *   rank <= 1: the per-row gradients above are only right where rows do not mix), one
 *   positions shape shared by all sites, and dc_apd_sites applied to the selection.
 * guarantees: a finished program (dc_finish). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_impl.h"

#define APD_MAX_SITES 256
#define APD_MAX_OUT_DIMS 4096 /* one reverse sweep each: beyond this the graph explodes */
#define SCHATTEN_EPS 1e-16

int dc_apd_rank(const struct dc_config *c, const struct dc_site *s)
{
    if (c->apd.m > 0)
        return c->apd.m;
    return (int)(s->d_in < s->d_out ? s->d_in : s->d_out); /* a bare LinearComponent's m */
}

int64_t dc_apd_topk_count(double topk, int64_t N, int64_t total)
{
    double k = topk * (double)N;
    if (!(k > 0)) /* NaN too */
        return 0;
    return k >= (double)total ? total : (int64_t)k; /* int(): truncation, as the code */
}

int dc_apd_sites(const struct dc_config *c, struct dc_site *sites, int ns, struct dc_factor *fac,
                 int nf, struct diag *d)
{
    if (ns < 1 || ns > APD_MAX_SITES)
        return diag_set(d, ST_ERR_UNSUPPORTED, "method apd: %d sites (1 to %d supported)", ns,
                        APD_MAX_SITES);
    for (int i = 1; i < ns; i++) /* a component spans every site */
        if (sites[i].C != sites[0].C)
            return diag_set(d, ST_ERR_INVALID,
                            "method apd: components span all sites, so every site needs the same "
                            "C; site '%s' has %d, site '%s' has %d", sites[0].name, sites[0].C,
                            sites[i].name, sites[i].C);
    for (int i = 0; i < ns; i++) {
        int64_t cm = (int64_t)sites[i].C * dc_apd_rank(c, &sites[i]);
        if (cm > 1000000)
            return diag_set(d, ST_ERR_INVALID, "method apd: site '%s': C·m = %lld columns is too "
                            "many (at most 10^6)", sites[i].name, (long long)cm);
        sites[i].C = (int)cm;
    }
    for (int f = 0; f < nf; f++)
        for (int i = 0; i < ns; i++)
            if (sites[i].factor == f)
                fac[f].C = sites[i].C; /* tied uses have the same min(d_in, d_out) */
    return ST_OK;
}

/* every site is a matmul on plain rows [N, d] (rank-1 positions, which cannot mix) and all
 * share one positions shape */
static int check_sites(struct dc_ctx *cx)
{
    for (int i = 0; i < cx->ns; i++) {
        const struct dc_site *s = &cx->sites[i];
        const struct dc_site_t *a = &cx->s[i], *z = &cx->s[0];
        int same = a->pr == z->pr && memcmp(a->pos, z->pos, sizeof a->pos[0] * (size_t)a->pr) == 0;
        if ((s->kind != PASS_SITE_MATMUL && s->kind != PASS_SITE_GEMM) || s->act_tr || s->out_tr)
            return cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "method apd: site '%s' (%s) "
                                        "is not x·W on rows; APD supports MatMul/Gemm sites only",
                                        s->name, pass_site_kind_name(s->kind));
        if (a->pr > 1) /* attributions differentiate Σ_n f_o[n] (output_grads) */
            return cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "method apd: site '%s' has "
                                        "positions of rank %d (a sequence?); APD's attributions "
                                        "differentiate the output summed over positions, which "
                                        "is row n's own gradient only when positions do not "
                                        "interact, so pdc takes plain [batch, features] rows "
                                        "only", s->name, a->pr);
        if (!same)
            return cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "method apd: sites '%s' and "
                                        "'%s' have different positions; a component's mask is "
                                        "shared by all sites", cx->sites[0].name, s->name);
    }
    return ST_OK;
}

static int64_t n_positions(const struct dc_ctx *cx)
{
    int64_t n = 1;
    for (int k = 0; k < cx->s[0].pr; k++)
        n *= cx->s[0].pos[k];
    return n;
}

/* xavier_normal (gain 1) of the reference's A [C, d_in, m] and B [C, m, d_out]
 * (METHOD §9.1; torch's fans of a 3-D tensor: fan_in = dims1·dims2, fan_out =
 * dims0·dims2) instead of SPD's factor init */
static void init_factors(struct dc_ctx *cx)
{
    for (int f = 0; f < cx->nf; f++) {
        const struct dc_factor *F = &cx->fac[f];
        int m = 1;
        for (int i = 0; i < cx->ns; i++)
            if (cx->sites[i].factor == f)
                m = dc_apd_rank(cx->cfg, &cx->sites[i]);
        double C = (double)(F->C / m);
        double sa = sqrt(2.0 / ((double)m * ((double)F->d_in + C)));
        double sb = sqrt(2.0 / ((double)F->d_out * ((double)m + C)));
        for (int k = 0; k < cx->prog->n_st; k++) {
            if (cx->prog->st[k].t == cx->f[f].V)
                cx->prog->st[k].std = sa;
            if (cx->prog->st[k].t == cx->f[f].U)
                cx->prog->st[k].std = sb;
        }
    }
}

/* x [pos.., C·m] summed over each component's m columns → [pos.., C] */
static uint32_t group_sum(struct dc_ctx *cx, int i, uint32_t x, int m)
{
    int r;
    int64_t dims[IR_MAX_RANK + 1];
    dc_mask_dims(cx, i, cx->sites[i].C / m, &r, dims);
    dims[r] = m;
    int64_t last = r;
    return bld_reduce(&cx->b, IR_OP_ReduceSum, bld_reshape(&cx->b, x, r + 1, dims), 1, &last, 0);
}

/* mask [pos.., C] repeated over each component's m columns → [pos.., C·m] */
uint32_t dc_apd_expand_mask(struct dc_ctx *cx, int i, uint32_t mask)
{
    struct ir_builder *b = &cx->b;
    int m = dc_apd_rank(cx->cfg, &cx->sites[i]), r;
    int64_t dims[IR_MAX_RANK + 1], one[1] = {m};
    float *ones = malloc((size_t)m * sizeof *ones);
    if (!ones)
        return b->err = diag_set(b->d, ST_ERR_NOMEM, "out of memory"), IR_NONE;
    for (int k = 0; k < m; k++)
        ones[k] = 1.0f;
    dc_mask_dims(cx, i, cx->sites[i].C / m, &r, dims);
    dims[r] = 1;
    uint32_t col = bld_reshape(b, mask, r + 1, dims);
    uint32_t rep = bld_mul(b, col, bld_const(b, IR_F32, 1, one, ones));
    free(ones);
    dc_mask_dims(cx, i, cx->sites[i].C, &r, dims);
    return bld_reshape(b, rep, r, dims);
}

/* Uᵀ as site i reads it [d_out, C·m]: a transposed (tied) use reads U' = Vᵀ, so U'ᵀ = V */
static uint32_t site_ut(struct dc_ctx *cx, int i)
{
    const struct dc_factor_t *f = &cx->f[cx->sites[i].factor];
    return cx->sites[i].transposed ? f->V : bld_swap_last2(&cx->b, f->U);
}

/* Σ_l ⟨g_l, x_l·P_{c,l}⟩ per component for the gradients g_l = ∂f_o/∂y_l */
static uint32_t component_dots(struct dc_ctx *cx, const uint32_t *grads, const uint32_t *h,
                               const uint32_t *ut)
{
    struct ir_builder *b = &cx->b;
    uint32_t a = IR_NONE;
    for (int i = 0; i < cx->ns; i++) {
        uint32_t t = bld_mul(b, h[i], bld_matmul(b, grads[i], ut[i]));
        t = group_sum(cx, i, t, dc_apd_rank(cx->cfg, &cx->sites[i]));
        a = a == IR_NONE ? t : bld_add(b, a, t);
    }
    return a;
}

/* ∂f_o/∂y_l for output k's last-axis index o, every site l, summed over positions
 * (which the toys' rows do not mix, so row n holds sample n's own gradient) */
static int output_grads(struct dc_ctx *cx, uint32_t out, int64_t o, const uint32_t *y,
                        uint32_t *grads)
{
    struct ir_builder *b = &cx->b;
    const struct ir_tensor *t = &cx->g->t[out];
    int64_t last = t->dims[t->rank - 1];
    float *e = calloc((size_t)last, sizeof *e);
    if (!e)
        return b->err = diag_set(b->d, ST_ERR_NOMEM, "out of memory");
    e[o] = 1.0f;
    uint32_t onehot = bld_const(b, IR_F32, 1, &last, e);
    free(e);
    uint32_t fo = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, out, onehot), 0, NULL, 0);
    if (b->err)
        return b->err;
    int st = pass_autodiff(cx->g, fo, (uint32_t)cx->ns, y, grads, b->d);
    return st ? (b->err = st) : ST_OK;
}

/* attr [pos.., C] (the file comment's formula) */
static uint32_t attributions(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    uint32_t y[APD_MAX_SITES], h[APD_MAX_SITES], ut[APD_MAX_SITES], grads[APD_MAX_SITES];
    int64_t n_out = 0;
    for (uint32_t k = 0; k < cx->nouts; k++) {
        const struct ir_tensor *t = &cx->g->t[cx->outs[k]];
        n_out += t->rank ? t->dims[t->rank - 1] : 1;
    }
    if (n_out > APD_MAX_OUT_DIMS)
        return b->err = diag_set(b->d, ST_ERR_UNSUPPORTED, "method apd: gradient attributions "
                                 "take one backward per output dimension; the model has %lld "
                                 "(at most %d)", (long long)n_out, APD_MAX_OUT_DIMS), IR_NONE;
    for (int i = 0; i < cx->ns; i++) {
        y[i] = cx->g->n[cx->sites[i].node].out[0];
        h[i] = dc_site_acts(cx, i);
        ut[i] = site_ut(cx, i);
    }
    uint32_t attr = IR_NONE;
    for (uint32_t k = 0; k < cx->nouts && !b->err; k++) {
        const struct ir_tensor *t = &cx->g->t[cx->outs[k]];
        int64_t last = t->rank ? t->dims[t->rank - 1] : 1;
        if (t->rank < 1)
            return b->err = diag_set(b->d, ST_ERR_UNSUPPORTED, "method apd: output '%s' is a "
                                     "scalar; attributions need per-position outputs", t->name),
                   IR_NONE;
        for (int64_t o = 0; o < last && !b->err; o++) {
            if (output_grads(cx, cx->outs[k], o, y, grads))
                break;
            uint32_t a = component_dots(cx, grads, h, ut);
            uint32_t sq = bld_mul(b, a, a);
            attr = attr == IR_NONE ? sq : bld_add(b, attr, sq);
        }
    }
    return b->err ? IR_NONE : attr;
}

/* batch top-k: 1 at the int(topk·N) largest attributions over positions × components */
static uint32_t topk_mask(struct dc_ctx *cx, uint32_t attr)
{
    int64_t N = n_positions(cx), total = ir_numel(&cx->g->t[attr]);
    int64_t k = dc_apd_topk_count(cx->cfg->apd.topk, N, total);
    struct ir_attr at = bld_attr_int("k", k);
    return bld_node(&cx->b, IR_OP_TopKMask, 1, &attr, 1, &at, 1, NULL);
}

static double n_params(const struct dc_ctx *cx)
{
    double n = 0;
    for (int i = 0; i < cx->ns; i++)
        n += (double)cx->sites[i].d_in * (double)cx->sites[i].d_out;
    return n;
}

static uint32_t param_match(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    uint32_t tot = IR_NONE;
    for (int i = 0; i < cx->ns; i++) {
        uint32_t dl = cx->f[cx->sites[i].factor].delta;
        uint32_t s = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, dl, dl), 0, NULL, 0);
        tot = tot == IR_NONE ? s : bld_add(b, tot, s);
    }
    return bld_div(b, tot, bld_f32(b, n_params(cx)));
}

/* forward with every site masked by mexp[i] (no Δ): Σ_outputs mean((y − f)²) */
static uint32_t masked_mse(struct dc_ctx *cx, const uint32_t *mexp)
{
    uint32_t none[APD_MAX_SITES], y[64];
    if (cx->nouts > 64)
        return cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "more than 64 outputs"), IR_NONE;
    for (int i = 0; i < cx->ns; i++)
        none[i] = IR_NONE;
    if (dc_forward(cx, mexp, none, y))
        return IR_NONE;
    return dc_mse(cx, y);
}

/* ‖A_c[:,k]‖²·‖B_c[k,:]‖² per column [C·m]; the same for a transposed use */
static uint32_t column_norms(struct dc_ctx *cx, int i)
{
    struct ir_builder *b = &cx->b;
    const struct dc_factor_t *f = &cx->f[cx->sites[i].factor];
    int64_t a0 = 0, a1 = 1;
    uint32_t sv = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, f->V, f->V), 1, &a0, 0);
    uint32_t su = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, f->U, f->U), 1, &a1, 0);
    return bld_mul(b, sv, su);
}

static uint32_t schatten(struct dc_ctx *cx, const uint32_t *mexp)
{
    struct ir_builder *b = &cx->b;
    uint32_t tot = IR_NONE, half_p = bld_f32(b, 0.5 * cx->cfg->apd.schatten_pnorm);
    for (int i = 0; i < cx->ns; i++) {
        uint32_t s = bld_add(b, bld_mul(b, mexp[i], column_norms(cx, i)), bld_f32(b, SCHATTEN_EPS));
        uint32_t t = bld_reduce(b, IR_OP_ReduceSum, bld_op2(b, IR_OP_Pow, s, half_p), 0, NULL, 0);
        tot = tot == IR_NONE ? t : bld_add(b, tot, t);
    }
    return bld_div(b, tot, bld_f32(b, n_params(cx) * (double)n_positions(cx)));
}

/* context, factors, attributions and the mask: what both programs start with */
static int apd_begin(struct dc_ctx *cx, struct ir_graph *g, const struct dc_config *c,
                     const struct dc_site *sites, int ns, const struct dc_factor *fac, int nf,
                     struct dc_prog *prog, uint32_t *mask, uint32_t *mexp, struct diag *d)
{
    int st = dc_ctx_init(cx, g, c, sites, ns, fac, nf, prog, "apd", d);
    if (!st && (ns > APD_MAX_SITES || c->n_losses > 0))
        st = diag_set(d, ST_ERR_INVALID, ns > APD_MAX_SITES ? "method apd: too many sites"
                      : "method apd takes its losses from param_match_coeff, topk_recon_coeff "
                        "and schatten_coeff, not from loss_metric_configs");
    if (!st && !(c->apd.topk > 0))
        st = diag_set(d, ST_ERR_INVALID, "method apd: topk %g must be > 0", c->apd.topk);
    if (!st && !(c->apd.schatten_pnorm > 0))
        st = diag_set(d, ST_ERR_INVALID, "method apd: schatten_pnorm %g must be > 0",
                      c->apd.schatten_pnorm);
    if (!st)
        st = check_sites(cx);
    if (!st)
        st = dc_factors(cx);
    int C = st ? 0 : cx->sites[0].C / dc_apd_rank(c, &cx->sites[0]);
    if (!st && !(c->apd.topk <= C))
        st = diag_set(d, ST_ERR_INVALID, "method apd: topk %g is more than C = %d (top-k keeps "
                      "topk of the C components per sample on average)", c->apd.topk, C);
    if (st)
        return st;
    init_factors(cx);
    uint32_t attr = attributions(cx);
    if (!cx->b.err && attr == IR_NONE)
        cx->b.err = diag_set(d, ST_ERR_UNSUPPORTED, "method apd: the model has no output to "
                             "attribute");
    if (cx->b.err)
        return cx->b.err; /* too many output dimensions, a scalar output, autodiff */
    dc_tap(cx, "apd.attr", attr); /* [N, C]: tests and closer looks */
    *mask = topk_mask(cx, attr);
    dc_tap(cx, "apd.mask", *mask);
    for (int i = 0; i < ns && !cx->b.err; i++)
        mexp[i] = dc_apd_expand_mask(cx, i, *mask);
    return cx->b.err;
}

int dc_build_apd_train(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                       int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                       struct diag *d)
{
    struct dc_ctx cx;
    uint32_t mask, mexp[APD_MAX_SITES];
    int st = apd_begin(&cx, g, c, sites, ns, fac, nf, prog, &mask, mexp, d);
    struct ir_builder *b = &cx.b;
    if (!st) {
        uint32_t pm = param_match(&cx), tr = masked_mse(&cx, mexp), sc = schatten(&cx, mexp);
        uint32_t total = bld_add(b, bld_mul(b, pm, bld_f32(b, c->apd.param_match_coeff)),
                                 bld_mul(b, tr, bld_f32(b, c->apd.topk_recon_coeff)));
        total = bld_add(b, total, bld_mul(b, sc, bld_f32(b, c->apd.schatten_coeff)));
        dc_metric(&cx, "loss/param_match", pm);
        dc_metric(&cx, "loss/topk_recon", tr);
        dc_metric(&cx, "loss/schatten", sc);
        dc_metric(&cx, "loss/total", total);
        prog->loss = total;
        prog->lr = c->lr;
        if (prog->lr.fn == DC_SCHED_COSINE) /* APD's cosine: a quarter cosine to 0 */
            prog->lr.fn = DC_SCHED_QCOSINE;
        prog->steps = c->steps;
        st = dc_adamw(&cx, total, 0.0, c->grad_clip_norm, "adam"); /* APD: AdamW, wd 0 */
    }
    if (!st)
        st = dc_finish(&cx);
    dc_ctx_fini(&cx);
    return st ? st : b->err;
}

/* constant per-site masks of one value (1: all components, 0: none) */
static uint32_t recon_with(struct dc_ctx *cx, double v)
{
    uint32_t m[APD_MAX_SITES];
    for (int i = 0; i < cx->ns; i++)
        m[i] = bld_f32(&cx->b, v);
    return masked_mse(cx, m);
}

int dc_build_apd_eval(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                      int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                      uint32_t *mask, struct diag *d)
{
    struct dc_ctx cx;
    uint32_t mexp[APD_MAX_SITES];
    int st = apd_begin(&cx, g, c, sites, ns, fac, nf, prog, mask, mexp, d);
    if (!st) {
        dc_metric(&cx, "recon/all_components", recon_with(&cx, 1.0));
        dc_metric(&cx, "recon/topk", masked_mse(&cx, mexp));
        dc_metric(&cx, "recon/zero", recon_with(&cx, 0.0));
        dc_metric(&cx, "loss/param_match", param_match(&cx));
        dc_metric(&cx, "loss/schatten", schatten(&cx, mexp));
        prog->steps = 1;
    }
    if (!st)
        st = dc_finish(&cx);
    dc_ctx_fini(&cx);
    return st ? st : cx.b.err;
}
