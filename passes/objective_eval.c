/* objective_eval.c — the evaluation program of a decomposition: reconstruction
 * of the target's output under every mask kind (METHOD.md §3.3, §7.5) and the
 * CI-L0 per site (§7.2), on one batch, with the trained factors and CI weights
 * as (non-trainable) states.
 * needs: a compiled inference graph and the sites of the decomposition.
 * guarantees: a finished program whose metrics are, in order, per mask kind K in
 *   {unmasked, stochastic, stochastic_no_delta, ci, rounded_0, rounded_0.1,
 *   rounded_0.5, zero}: recon/K (MSE to the target output), and when the output
 *   loss is KL (language models) kl/K (KL(target‖masked), mean per position) and,
 *   when the model maps token ids [B, T] to logits [B, T, V], ce/K (next-token
 *   cross-entropy, objective_lm.c); then ce/target for such models; then l0/<site>;
 *   and g_lo[i] = site i's CI (lower) tensor. */
#include <stdio.h>
#include <string.h>

#include "decomp_impl.h"

/* does the model read token ids and write logits for every position? */
static int has_labels(const struct dc_ctx *cx)
{
    return cx->cfg->output_loss_type == DC_OUT_KL && cx->nouts == 1 &&
           dc_lm_shapes_ok(cx->g, cx->outs[0], cx->data);
}

/* one masked forward and its metrics: recon/K, and for KL targets kl/K (and ce/K) */
static void row_metrics(struct dc_ctx *cx, const char *kind, const uint32_t *m, const uint32_t *dl)
{
    uint32_t y[64];
    char nm[128];
    if (cx->nouts > 64) {
        cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "too many model outputs");
        return;
    }
    if (dc_forward(cx, m, dl, y))
        return;
    snprintf(nm, sizeof nm, "recon/%s", kind);
    dc_metric(cx, nm, dc_mse(cx, y));
    if (cx->cfg->output_loss_type != DC_OUT_KL)
        return;
    snprintf(nm, sizeof nm, "kl/%s", kind);
    dc_metric(cx, nm, dc_kl(cx, y));
    if (has_labels(cx)) {
        snprintf(nm, sizeof nm, "ce/%s", kind);
        dc_metric(cx, nm, dc_next_token_ce(&cx->b, y[0], cx->data));
    }
}

enum mask_kind { MK_ONES, MK_STOCH, MK_STOCH_NO_DELTA, MK_CI, MK_ROUND, MK_ZERO };

static void masks(struct dc_ctx *cx, enum mask_kind k, double tau, uint32_t *m, uint32_t *dl)
{
    struct ir_builder *b = &cx->b;
    for (int i = 0; i < cx->ns; i++) {
        uint32_t g = cx->s[i].g_lo;
        int r;
        int64_t md[IR_MAX_RANK];
        dl[i] = IR_NONE; /* Δ only in the stochastic row, as the reference evaluates */
        switch (k) {
        case MK_ONES: m[i] = bld_add(b, bld_zeros_like(b, g), bld_f32(b, 1.0)); break;
        case MK_ZERO: m[i] = bld_zeros_like(b, g); break;
        case MK_CI: m[i] = g; break;
        case MK_ROUND:
            m[i] = bld_cast(b, bld_op2(b, IR_OP_Greater, g, bld_f32(b, tau)), IR_F32);
            break;
        case MK_STOCH:
        case MK_STOCH_NO_DELTA:
            dc_mask_dims(cx, i, cx->sites[i].C, &r, md);
            m[i] = bld_add(b, g, bld_mul(b, bld_sub(b, bld_f32(b, 1.0), g), dc_uniform(cx, r, md)));
            if (k == MK_STOCH && cx->cfg->use_delta_component) {
                dc_mask_dims(cx, i, 1, &r, md);
                dl[i] = dc_uniform(cx, r, md);
            }
            break;
        }
    }
}

int dc_build_eval(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                  int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                  uint32_t *g_lo, struct diag *d)
{
    static const struct {
        const char *name;
        enum mask_kind k;
        double tau;
    } rows[] = {
        {"unmasked", MK_ONES, 0}, {"stochastic", MK_STOCH, 0},
        {"stochastic_no_delta", MK_STOCH_NO_DELTA, 0}, {"ci", MK_CI, 0},
        {"rounded_0", MK_ROUND, 0.0}, {"rounded_0.1", MK_ROUND, 0.1},
        {"rounded_0.5", MK_ROUND, 0.5}, {"zero", MK_ZERO, 0},
    };
    struct dc_ctx cx;
    uint32_t m[256], dl[256];
    if (ns > 256)
        return diag_set(d, ST_ERR_UNSUPPORTED, "too many sites");
    int st = dc_ctx_init(&cx, g, c, sites, ns, fac, nf, prog, "eval", d);
    if (!st)
        st = dc_factors(&cx);
    if (!st)
        st = dc_ci_fn(&cx);
    for (size_t r = 0; !st && r < sizeof rows / sizeof *rows && !cx.b.err; r++) {
        masks(&cx, rows[r].k, rows[r].tau, m, dl);
        row_metrics(&cx, rows[r].name, m, dl);
    }
    if (!st && has_labels(&cx)) /* the target's own CE: the reference point of ce_difference */
        dc_metric(&cx, "ce/target", dc_next_token_ce(&cx.b, cx.outs[0], cx.data));
    for (int i = 0; !st && i < ns && !cx.b.err; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "l0/%s", sites[i].name);
        dc_metric(&cx, nm, dc_l0(&cx, i));
        g_lo[i] = cx.s[i].g_lo;
        cx.g->t[g_lo[i]].flags |= IR_T_KEEP; /* read back after the run */
    }
    for (int i = 0; i < prog->n_st; i++) /* evaluation trains nothing */
        prog->st[i].trainable = DC_TRAIN_NO;
    if (!st)
        st = dc_finish(&cx);
    dc_ctx_fini(&cx);
    return st ? st : cx.b.err;
}
