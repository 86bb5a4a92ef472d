/* pdc_eval_lm.c — the language-model part of `pdc eval DIR` (METHOD §7.5; the
 * VPD report's Table 3): for a decomposition whose output loss is KL, the KL to
 * the target (mean per position) and the next-token cross-entropy under every
 * mask kind, with ce_difference = CE − CE_target and ce_unrecovered =
 * (CE − CE_target) / (CE_zero − CE_target), so the target row is 0 and the zero
 * row 1 by construction.
 *
 * Data: a token file's held-out tail, tiled by non-overlapping windows; the
 * evaluation program (passes/objective_eval.c) runs once per batch of windows and
 * the metrics are averaged over batches (equal sizes, so this is the mean per
 * position). The differences and ratios are formed from those averages, as the
 * reference forms them from its averaged CEs. Not here: the MSE rows of toy
 * targets and the per-site tables (pdc_eval.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "pdc_cli.h"
#include "target.h"
#include "train.h"

#define MAX_BATCHES 256 /* a bound on the run time; the tiny LM's tail needs about 25 */

/* mask kinds in table order, with the metric suffix objective_eval.c uses */
static const struct {
    const char *key, *label;
} rows[] = {
    {"target", "target"},
    {"unmasked", "unmasked"},
    {"stochastic", "stochastic (with delta)"},
    {"stochastic_no_delta", "stochastic, no delta"},
    {"rounded_0", "rounded, CI > 0"},
    {"rounded_0.1", "rounded, CI > 0.1"},
    {"rounded_0.5", "rounded, CI > 0.5"},
    {"ci", "CI as masks"},
    {"zero", "zero"},
};
#define NROWS (sizeof rows / sizeof rows[0])

static int metric_index(const struct dc_prog *p, const char *prefix, const char *key)
{
    char nm[128];
    snprintf(nm, sizeof nm, "%s/%s", prefix, key);
    for (int i = 0; i < p->n_metric; i++)
        if (strcmp(p->metric[i].name, nm) == 0)
            return i;
    return -1;
}

/* KL of row r (the target row: 0 by definition), NAN when absent */
static double row_kl(const struct dc_prog *p, const double *met, size_t r)
{
    int i = metric_index(p, "kl", rows[r].key);
    return r == 0 ? 0.0 : i >= 0 ? met[i] : (double)NAN;
}

static double row_ce(const struct dc_prog *p, const double *met, size_t r)
{
    int i = metric_index(p, "ce", rows[r].key);
    return i >= 0 ? met[i] : (double)NAN;
}

int pdc_eval_lm_active(const struct dc_prog *p)
{
    return metric_index(p, "kl", "unmasked") >= 0;
}

int pdc_eval_lm_batches(const struct dc_prog *p, struct rt_store *store, struct ds_source *src,
                        uint64_t seed, int64_t step0, double *met, struct pdc_lm_eval *lm,
                        pdc_batch_fn each, void *ctx, struct diag *d)
{
    const struct ir_tensor *x = &p->g->t[p->in[0].t];
    memset(lm, 0, sizeof *lm);
    lm->batch = x->dims[0];
    lm->seq = x->rank == 2 ? x->dims[1] : 0;
    lm->batches = 1;
    if (src && ds_kind(src) == DS_TOKENS) {
        lm->windows = ds_eval_windows(src, lm->seq);
        lm->batches = lm->windows / lm->batch;
        lm->batches = lm->batches < 1 ? 1 : lm->batches > MAX_BATCHES ? MAX_BATCHES : lm->batches;
    }
    double *sum = calloc((size_t)p->n_metric + 1, sizeof *sum);
    double *one = calloc((size_t)p->n_metric + 1, sizeof *one);
    int st = sum && one ? ST_OK : diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < p->n_metric; i++)
        sum[i] = met[i]; /* batch 0: the caller's run */
    /* batch k reads held-out windows k·B … (data.h) and draws its stochastic masks at
     * step0 + k, a step no training run reaches */
    for (int64_t k = 1; !st && k < lm->batches; k++) {
        struct rt_prog *rp = NULL;
        st = rt_run_once(p, cg_default(), store, src, NULL, seed, step0 + k, one, &rp, d);
        if (!st && each)
            each(ctx, rp);
        rt_prog_free(rp);
        for (int i = 0; !st && i < p->n_metric; i++)
            sum[i] += one[i];
    }
    for (int i = 0; !st && i < p->n_metric; i++)
        met[i] = sum[i] / (double)lm->batches;
    free(sum);
    free(one);
    return st;
}

static double unrecovered(double ce, double ce_t, double ce_z)
{
    return ce_z != ce_t ? (ce - ce_t) / (ce_z - ce_t) : (double)NAN;
}

void pdc_eval_lm_print(const struct dc_prog *p, const double *met, const struct pdc_lm_eval *lm)
{
    double ce_t = row_ce(p, met, 0), ce_z = row_ce(p, met, NROWS - 1);
    int has_ce = !isnan(ce_t);
    printf("language model, held-out tokens (%lld batch%s of %lld x %lld; KL mean per position, "
           "CE in nats per predicted token):\n", (long long)lm->batches,
           lm->batches == 1 ? "" : "es", (long long)lm->batch, (long long)lm->seq);
    printf("  %-23s %11s", "mask", "KL");
    if (has_ce)
        printf(" %10s %10s %12s", "CE", "CE - CE_t", "unrecovered");
    printf("\n");
    for (size_t r = 0; r < NROWS; r++) {
        printf("  %-23s %11.4g", rows[r].label, row_kl(p, met, r)); /* small near 0: %g */
        double ce = row_ce(p, met, r);
        if (has_ce)
            printf(" %10.5f %10.5f %12.5f", ce, ce - ce_t, unrecovered(ce, ce_t, ce_z));
        printf("\n");
    }
}

void pdc_eval_lm_json(struct json_w *w, const struct dc_prog *p, const double *met,
                      const struct pdc_lm_eval *lm)
{
    double ce_t = row_ce(p, met, 0), ce_z = row_ce(p, met, NROWS - 1);
    json_key(w, "lm");
    json_obj_begin(w);
    json_key(w, "held_out_batches");
    json_int(w, lm->batches);
    json_key(w, "batch_size");
    json_int(w, lm->batch);
    json_key(w, "seq");
    json_int(w, lm->seq);
    json_key(w, "held_out_windows");
    json_int(w, lm->windows);
    json_key(w, "masks");
    json_obj_begin(w);
    for (size_t r = 0; r < NROWS; r++) {
        double ce = row_ce(p, met, r);
        json_key(w, rows[r].key);
        json_obj_begin(w);
        json_key(w, "kl");
        json_double(w, row_kl(p, met, r));
        if (!isnan(ce_t)) {
            json_key(w, "ce");
            json_double(w, ce);
            json_key(w, "ce_difference");
            json_double(w, ce - ce_t);
            json_key(w, "ce_unrecovered");
            json_double(w, unrecovered(ce, ce_t, ce_z));
        }
        json_obj_end(w);
    }
    json_obj_end(w);
    json_obj_end(w);
}
