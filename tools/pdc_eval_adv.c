/* pdc_eval_adv.c — the adversarial table of `pdc eval` (METHOD.md §4.6, §7.6 Table 4):
 * the output divergence after 20, 40, 80, 160 and 320 steps (and, as a baseline,
 * 0: the random source) of a fresh PGD
 * adversary (random U(0,1) init, sign steps of 0.1, one source shared across the
 * batch, every site masked, Δ included), on the same evaluation batch as the
 * masking table.
 *
 * One run of 320 steps gives every row: with a fixed init and sign steps, the
 * first 20 steps of a 40-step run are a 20-step run. The program is one ascent
 * step (passes/adversary.c) run repeatedly on a fixed batch; the value it reports
 * at step k is the divergence under the source after k ascents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdc_cli.h"
#include "train.h"

const int pdc_pgd_eval_steps[PDC_PGD_EVAL_ROWS] = {0, 20, 40, 80, 160, 320};

static int build(const char *model, const struct dc_config *c, struct dc_prog *p, struct diag *d)
{
    struct ir_graph *g;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    int ns, nf;
    int st = pdc_compiled_model(model, c, &g, d);
    if (st)
        return st;
    st = dc_select_sites(g, c, &sites, &ns, &fac, &nf, d);
    if (!st)
        st = dc_build_pgd_eval(g, c, sites, ns, fac, nf, PDC_PGD_EVAL_STEP_SIZE, p, d);
    if (st && !p->g)
        ir_graph_free(g);
    free(sites);
    free(fac);
    return st;
}

int pdc_eval_adversary(const char *model, const struct dc_config *c, struct rt_store *store,
                       struct ds_source *src, int64_t data_step, double *out, struct diag *d)
{
    struct dc_prog p = {0};
    int st = build(model, c, &p, d);
    int last_step = pdc_pgd_eval_steps[PDC_PGD_EVAL_ROWS - 1];
    p.steps = last_step + 1;
    double v = 0;
    int64_t from = 0;
    for (int r = 0; !st && r < PDC_PGD_EVAL_ROWS; r++) {
        /* steps [from, k]: the value at step k is the divergence after k ascents */
        int64_t k = pdc_pgd_eval_steps[r];
        struct rt_train_opts o = {c->seed, data_step, "pgd-eval", NULL, 0, isatty(2), from, k + 1,
                                  1};
        st = rt_train(&p, cg_default(), store, src, &o, &v, d);
        out[r] = v;
        from = k + 1;
    }
    dc_prog_free(&p);
    return st;
}
