/* objective_masked.c — the decomposition's forward under given masks, for
 * `pdc run DIR` (the reference `pdc export` is checked against): no loss, no
 * update. needs: a compiled inference graph and its sites.
 * guarantees: graph inputs are the data, the states (the factors "<site>.V/U"
 * and the CI weights "ci.*") and one "mask.<site>" [pos.., C] per site; the
 * outputs (taps) are each floating-point model output under the masks, with
 * the Δ path on (y = ((x·V) ⊙ m)·U + x·Δ), named as the model's, then each site's
 * CI values "ci.<site>" (σ_lower of the CI function on the clean forward).
 * APD (method apd, sites after dc_apd_sites): no CI function and no "ci.*" taps;
 * "mask.<site>" is per component [pos.., C] and repeated over each component's m
 * columns inside the graph. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_impl.h"

/* δ = 1 at every position of site i: the Δ path unmasked */
static uint32_t delta_ones(struct dc_ctx *cx, int i)
{
    int r;
    int64_t dims[IR_MAX_RANK], n = 1;
    dc_mask_dims(cx, i, 1, &r, dims);
    for (int k = 0; k < r; k++)
        n *= dims[k];
    float *one = malloc((size_t)(n + 1) * sizeof *one);
    if (!one) {
        cx->b.err = diag_set(cx->b.d, ST_ERR_NOMEM, "out of memory");
        return IR_NONE;
    }
    for (int64_t k = 0; k < n; k++)
        one[k] = 1.0f;
    uint32_t t = bld_const(&cx->b, IR_F32, r, dims, one);
    free(one);
    return t;
}

int dc_build_masked(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                    int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                    struct diag *d)
{
    struct dc_ctx cx;
    int st = dc_ctx_init(&cx, g, c, sites, ns, fac, nf, prog, "masked", d);
    uint32_t *m = st ? NULL : calloc((size_t)(2 * ns + cx.nouts) + 1, sizeof *m);
    if (!st && !m)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = dc_factors(&cx);
    int apd = strcmp(c->method, "apd") == 0;
    if (!st && !apd)
        st = dc_ci_fn(&cx);
    uint32_t *delta = m ? m + ns : NULL, *out = m ? m + 2 * ns : NULL;
    for (int i = 0; !st && i < ns; i++) {
        int r;
        int64_t dims[IR_MAX_RANK];
        char nm[300];
        dc_mask_dims(&cx, i, apd ? sites[i].C / dc_apd_rank(c, &sites[i]) : sites[i].C, &r,
                     dims);
        snprintf(nm, sizeof nm, "mask.%s", sites[i].name);
        m[i] = dc_state(&cx, nm, IR_F32, r, dims, DC_INIT_UNIT, 0, DC_TRAIN_NO);
        if (apd)
            m[i] = dc_apd_expand_mask(&cx, i, m[i]);
        delta[i] = delta_ones(&cx, i);
        st = cx.b.err;
    }
    if (!st)
        st = dc_forward(&cx, m, delta, out);
    for (uint32_t k = 0; !st && k < cx.nouts; k++)
        dc_tap(&cx, g->t[cx.outs[k]].name, out[k]);
    for (int i = 0; !st && !apd && i < ns; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "ci.%s", sites[i].name);
        dc_tap(&cx, nm, cx.s[i].g_lo);
    }
    if (!st)
        st = dc_finish(&cx);
    free(m);
    dc_ctx_fini(&cx);
    return st;
}
