/* objective_eval.c — the evaluation program of a decomposition: reconstruction
 * of the target's output under every mask kind (METHOD.md §3.3, §7.5) and the
 * CI-L0 per site (§7.2), on one batch, with the trained factors and CI weights
 * as (non-trainable) states.
 * needs: a compiled inference graph and the sites of the decomposition.
 * guarantees: a finished program whose metrics are, in order,
 *   recon/{unmasked, stochastic, stochastic_no_delta, ci, rounded_0, rounded_0.1,
 *   rounded_0.5, zero}, then l0/<site>; and g_lo[i] = site i's CI (lower) tensor. */
#include <stdio.h>
#include <string.h>

#include "decomp_impl.h"

static uint32_t mse_to_target(struct dc_ctx *cx, const uint32_t *m, const uint32_t *dl)
{
    uint32_t y[64];
    if (cx->nouts > 64) {
        cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED, "too many model outputs");
        return IR_NONE;
    }
    return dc_forward(cx, m, dl, y) ? IR_NONE : dc_mse(cx, y);
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
        {"recon/unmasked", MK_ONES, 0}, {"recon/stochastic", MK_STOCH, 0},
        {"recon/stochastic_no_delta", MK_STOCH_NO_DELTA, 0}, {"recon/ci", MK_CI, 0},
        {"recon/rounded_0", MK_ROUND, 0.0}, {"recon/rounded_0.1", MK_ROUND, 0.1},
        {"recon/rounded_0.5", MK_ROUND, 0.5}, {"recon/zero", MK_ZERO, 0},
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
        dc_metric(&cx, rows[r].name, mse_to_target(&cx, m, dl));
    }
    for (int i = 0; !st && i < ns && !cx.b.err; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "l0/%s", sites[i].name);
        dc_metric(&cx, nm, dc_l0(&cx, i));
        g_lo[i] = cx.s[i].g_lo; /* live (the CI-masked row reads it): its buffer survives */
    }
    for (int i = 0; i < prog->n_st; i++) /* evaluation trains nothing */
        prog->st[i].trainable = DC_TRAIN_NO;
    if (!st)
        st = dc_finish(&cx);
    dc_ctx_fini(&cx);
    return st ? st : cx.b.err;
}
