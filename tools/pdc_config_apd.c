/* pdc_config_apd.c — the APD settings of a config, in the APD reference's flat
 * spelling (apd:spd/configs.py Config; METHOD §9.5):
 *   C: 5                  components (every site; read by pdc_config_load)
 *   m: 3 | null           inner rank per site (null: min(d_in, d_out) of each site)
 *   topk: 0.211           components kept per sample on average
 *   batch_topk: true      the top int(topk·batch) over the whole batch (only mode)
 *   attribution_type: gradient
 *   param_match_coeff, topk_recon_coeff, schatten_coeff, schatten_pnorm
 *   lr_warmup_pct: 0.05   the warmup fraction of lr_schedule
 * Reference keys for parts pdc does not implement (act_recon_coeff, lp_sparsity_coeff
 * with pnorm, out_recon_coeff, unit_norm_matrices, distil_from_target) are accepted
 * only when they switch the part off, and refused by name otherwise. */
#include <stdio.h>
#include <string.h>

#include "pdc_cli.h"
#include "yaml.h"

static int is_apd(const struct dc_config *c)
{
    return c->method[0] == '\0' || strcmp(c->method, "apd") == 0; /* '': the file decides */
}

static int coeff(const struct yaml_node *v, double *out, struct diag *d)
{
    if (yaml_is_null(v)) { /* the reference's None: the loss is off */
        *out = 0.0;
        return ST_OK;
    }
    int st = yaml_as_double(v, out, d);
    if (!st && !(*out >= 0.0 && *out < 1e300))
        return diag_set(d, ST_ERR_INVALID, "%s:%d: %s: %g is not a coefficient >= 0", v->file,
                        v->line, v->path, *out);
    return st;
}

static int positive(const struct yaml_node *v, double *out, struct diag *d)
{
    int st = yaml_as_double(v, out, d);
    if (!st && !(*out > 0.0 && *out < 1e300))
        return diag_set(d, ST_ERR_INVALID, "%s:%d: %s: %g is not a number > 0", v->file, v->line,
                        v->path, *out);
    return st;
}

/* topk: components kept per sample on average, so in (0, C] (C <= 10^6 here; the
 * objective checks it against the run's C) */
static int topk_value(const struct yaml_node *v, double *out, struct diag *d)
{
    int st = yaml_as_double(v, out, d);
    if (!st && !(*out > 0.0 && *out <= 1e6))
        return diag_set(d, ST_ERR_INVALID, "%s:%d: %s: %g is not a top-k in (0, C] (C at most "
                        "10^6)", v->file, v->line, v->path, *out);
    return st;
}

/* lr_warmup_pct: a fraction of the steps in [0, 1) */
static int warmup_frac(const struct yaml_node *v, double *out, struct diag *d)
{
    int st = yaml_as_double(v, out, d);
    if (!st && !(*out >= 0.0 && *out < 1.0))
        return diag_set(d, ST_ERR_INVALID, "%s:%d: %s: %g is not a warmup fraction in [0, 1)",
                        v->file, v->line, v->path, *out);
    return st;
}

static int inner_rank(const struct yaml_node *v, int *m, struct diag *d)
{
    int64_t x = 0;
    if (yaml_is_null(v)) {
        *m = 0;
        return ST_OK;
    }
    int st = yaml_as_int64(v, &x, d);
    if (!st && (x < 1 || x > 100000))
        return diag_set(d, ST_ERR_INVALID, "%s:%d: m: %lld is not an inner rank in [1, 10^5]",
                        v->file, v->line, (long long)x);
    *m = (int)x;
    return st;
}

/* a reference key whose part pdc lacks: null / false / 0 only */
static int off_only(const char *k, const struct yaml_node *v, struct diag *d)
{
    int b = 0;
    double x = 0;
    if (yaml_is_null(v))
        return ST_OK;
    if (v->kind == YAML_SCALAR && (strcmp(v->str, "true") == 0 || strcmp(v->str, "false") == 0)) {
        yaml_as_bool(v, &b, d);
        x = b;
    } else if (yaml_as_double(v, &x, d)) {
        return d->status;
    }
    return x == 0 ? ST_OK
           : diag_set(d, ST_ERR_UNSUPPORTED, "%s:%d: %s: pdc's APD does not implement this part "
                      "(only null/false/0 is accepted)", v->file, v->line, k);
}

static int apd_value(const char *k, const struct yaml_node *v, struct dc_config *c,
                     struct diag *d)
{
    struct dc_apd *a = &c->apd;
    const char *s;
    int st;
    if (strcmp(k, "m") == 0) return inner_rank(v, &a->m, d);
    if (strcmp(k, "topk") == 0) return topk_value(v, &a->topk, d);
    if (strcmp(k, "schatten_pnorm") == 0) return positive(v, &a->schatten_pnorm, d);
    if (strcmp(k, "param_match_coeff") == 0) return coeff(v, &a->param_match_coeff, d);
    if (strcmp(k, "topk_recon_coeff") == 0) return coeff(v, &a->topk_recon_coeff, d);
    if (strcmp(k, "schatten_coeff") == 0) return coeff(v, &a->schatten_coeff, d);
    if (strcmp(k, "lr_warmup_pct") == 0) return warmup_frac(v, &c->lr.warmup_pct, d);
    if (strcmp(k, "batch_topk") == 0) {
        if ((st = yaml_as_bool(v, &a->batch_topk, d)) == ST_OK && !a->batch_topk)
            return diag_set(d, ST_ERR_UNSUPPORTED, "%s:%d: batch_topk: false (per-sample top-k) "
                            "is not implemented; use true", v->file, v->line);
        return st;
    }
    if (strcmp(k, "attribution_type") == 0) {
        if ((st = yaml_as_str(v, &s, d)) == ST_OK && strcmp(s, "gradient") != 0)
            return diag_set(d, ST_ERR_UNSUPPORTED, "%s:%d: attribution_type '%s': only "
                            "'gradient' is implemented", v->file, v->line, s);
        return st;
    }
    return off_only(k, v, d);
}

int pdc_config_apd_key(const char *k, const struct yaml_node *v, struct dc_config *c,
                       struct diag *d)
{
    static const char *const keys[] = {
        "m", "topk", "batch_topk", "attribution_type", "param_match_coeff", "topk_recon_coeff",
        "schatten_coeff", "schatten_pnorm", "lr_warmup_pct", "act_recon_coeff",
        "lp_sparsity_coeff", "pnorm", "out_recon_coeff", "unit_norm_matrices",
        "distil_from_target", NULL,
    };
    int known = 0;
    for (int i = 0; keys[i] && !known; i++)
        known = strcmp(keys[i], k) == 0;
    if (!known)
        return -1;
    if (!is_apd(c))
        return diag_set(d, ST_ERR_INVALID, "%s:%d: '%s' is an APD setting, but the method is "
                        "'%s' (use --method apd or method: apd)", v->file, v->line, k, c->method);
    return apd_value(k, v, c, d);
}

void pdc_config_apd_json(const struct dc_config *c, struct json_w *w)
{
    json_key(w, "m");
    if (c->apd.m > 0)
        json_int(w, c->apd.m);
    else
        json_null(w);
    json_key(w, "topk");
    json_double(w, c->apd.topk);
    json_key(w, "batch_topk");
    json_bool(w, c->apd.batch_topk);
    json_key(w, "attribution_type");
    json_str(w, "gradient");
    json_key(w, "param_match_coeff");
    json_double(w, c->apd.param_match_coeff);
    json_key(w, "topk_recon_coeff");
    json_double(w, c->apd.topk_recon_coeff);
    json_key(w, "schatten_coeff");
    json_double(w, c->apd.schatten_coeff);
    json_key(w, "schatten_pnorm");
    json_double(w, c->apd.schatten_pnorm);
}
