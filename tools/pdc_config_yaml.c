/* pdc_config_yaml.c — read a YAML config with the reference implementations'
 * field names into a struct dc_config. Unknown keys are errors naming the key;
 * keys of the reference configs that only concern its own infrastructure
 * (logging services, plotting cadence, ...) are accepted and listed on stderr.
 *
 * The CI function comes in either of the reference's two spellings: spd's flat
 * `ci_fn_type` + `ci_fn_hidden_dims` (+ `simple_transformer_ci_cfg` beside them),
 * or the later `ci_config: {mode, fn_type, hidden_dims, simple_transformer_ci_cfg}`
 * (spd HEAD and param-decomp). The transformer's settings use the reference's
 * names and nesting (pd GlobalSharedTransformerCiConfig and AttnConfig):
 *   simple_transformer_ci_cfg: {d_model, n_blocks, mlp_hidden_dim: [..] | null,
 *                               attn_config: {n_heads, max_len, rope_base}}
 * The resolved config (pdc_config.c) is written in the flat spelling. */
#include <stdio.h>
#include <string.h>

#include "data.h"
#include "pdc_cli.h"
#include "yaml.h"

/* reference keys pdc accepts but has no use for */
static const char *const ignored_keys[] = {
    "wandb_project", "wandb_run_name", "wandb_run_name_prefix", "out_dir", "eval_freq",
    "slow_eval_freq", "slow_eval_on_first_step", "n_eval_steps", "eval_batch_size", "save_freq",
    "image_freq", "image_on_first_step", "print_freq", "n_examples_until_dead", "autocast_bf16",
    "pretrained_model_class", "pretrained_model_path", "pretrained_model_name",
    "pretrained_model_output_attr", "tokenizer_name", "eval_metric_configs", "dist_backend",
    "identity_module_info", "tied_weights", "task_name", "gradient_accumulation_steps",
    NULL,
};

static int is_ignored(const char *k)
{
    for (int i = 0; ignored_keys[i]; i++)
        if (strcmp(ignored_keys[i], k) == 0)
            return 1;
    return 0;
}

static int unknown(const struct yaml_node *n, const char *key, struct diag *d)
{
    return diag_set(d, ST_ERR_INVALID, "%s:%d: unknown config key '%s%s%s'", n->file, n->line,
                    n->path[0] ? n->path : "", n->path[0] ? "." : "", key);
}

static int bad_value(const struct yaml_node *n, const char *what, struct diag *d)
{
    const char *v = n->kind == YAML_SCALAR ? n->str : yaml_kind_name(n->kind);
    return diag_set(d, ST_ERR_INVALID, "%s:%d: %s: '%s' is not %s", n->file, n->line, n->path, v,
                    what);
}

static int enum_value(const struct yaml_node *n, const char *const *names, int count, int *out,
                      struct diag *d)
{
    const char *s;
    int st = yaml_as_str(n, &s, d);
    if (st)
        return st;
    for (int i = 0; i < count; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return ST_OK;
        }
    return bad_value(n, "a known value", d);
}

static int read_schedule(const struct yaml_node *n, struct dc_schedule_cfg *s, struct diag *d)
{
    static const char *const fns[] = {"constant", "linear", "cosine"};
    int e = 0;
    if (n->kind == YAML_SCALAR) { /* the APD code's flat spelling: lr_schedule: cosine */
        for (e = 0; e < 3; e++)
            if (strcmp(n->str, fns[e]) == 0) {
                s->fn = (enum dc_schedule)e;
                return ST_OK;
            }
        return diag_set(d, ST_ERR_INVALID, "%s:%d: %s: '%s' is not a schedule pdc implements "
                        "(constant, linear, cosine)", n->file, n->line, n->path, n->str);
    }
    if (n->kind != YAML_MAP)
        return bad_value(n, "a mapping or a schedule name", d);
    for (int i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct yaml_node *v = n->items[i];
        int st;
        if (strcmp(k, "start_val") == 0)
            st = yaml_as_double(v, &s->start_val, d);
        else if (strcmp(k, "warmup_pct") == 0)
            st = yaml_as_double(v, &s->warmup_pct, d);
        else if (strcmp(k, "final_val_frac") == 0)
            st = yaml_as_double(v, &s->final_val_frac, d);
        else if (strcmp(k, "fn_type") == 0) {
            st = enum_value(v, fns, 3, &e, d);
            s->fn = (enum dc_schedule)e;
        } else
            st = unknown(n, k, d);
        if (st)
            return st;
    }
    return ST_OK;
}

static int read_sites(const struct yaml_node *n, struct dc_config *c, struct diag *d)
{
    if (n->kind != YAML_LIST)
        return bad_value(n, "a list", d);
    if (n->n > DC_MAX_SITE_SPECS)
        return bad_value(n, "a list of at most 64 patterns", d);
    int default_C = 0;
    for (int i = 0; i < c->n_sites; i++) /* a top-level C: given before module_info */
        default_C = c->sites[i].C;
    c->n_sites = 0;
    for (int i = 0; i < n->n; i++) {
        const struct yaml_node *e = n->items[i], *p = yaml_need(e, "module_pattern", d);
        const char *pat;
        if (!p || yaml_as_str(p, &pat, d))
            return d->status;
        struct dc_site_spec *s = &c->sites[c->n_sites++];
        snprintf(s->pattern, sizeof s->pattern, "%s", pat);
        s->C = default_C;
        for (int k = 0; k < e->n; k++) {
            int64_t C;
            if (strcmp(e->keys[k], "module_pattern") == 0)
                continue;
            if (strcmp(e->keys[k], "C") != 0)
                return unknown(e, e->keys[k], d);
            if (yaml_as_int64(e->items[k], &C, d))
                return d->status;
            if (C < 1 || C > 1000000)
                return bad_value(e->items[k], "a component count in [1, 10^6]", d);
            s->C = (int)C;
        }
    }
    return ST_OK;
}

static int loss_kind(const struct yaml_node *n, enum dc_loss_kind *k, struct diag *d)
{
    const char *names[DC_LOSS_KIND_COUNT];
    for (int i = 0; i < DC_LOSS_KIND_COUNT; i++)
        names[i] = dc_loss_classname((enum dc_loss_kind)i);
    int e = 0;
    int st = enum_value(n, names, DC_LOSS_KIND_COUNT, &e, d);
    *k = (enum dc_loss_kind)e;
    return st;
}

/* optimizer: {type: sign|adam, lr_schedule: {..} (persistent only), beta1, beta2, eps} */
static int read_src_opt(const struct yaml_node *n, struct dc_src_opt *o, int persistent,
                        struct diag *d)
{
    static const char *const types[] = {"sign", "adam"};
    if (n->kind != YAML_MAP)
        return bad_value(n, "a mapping", d);
    for (int i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct yaml_node *v = n->items[i];
        int st;
        if (strcmp(k, "type") == 0)
            st = enum_value(v, types, 2, &o->adam, d);
        else if (persistent && strcmp(k, "lr_schedule") == 0)
            st = read_schedule(v, &o->lr, d);
        else if (strcmp(k, "beta1") == 0)
            st = yaml_as_double(v, &o->beta1, d);
        else if (strcmp(k, "beta2") == 0)
            st = yaml_as_double(v, &o->beta2, d);
        else if (strcmp(k, "eps") == 0)
            st = yaml_as_double(v, &o->eps, d);
        else
            st = unknown(n, k, d);
        if (st)
            return st;
    }
    if (!(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 && o->eps > 0))
        return bad_value(n, "an optimizer with beta1, beta2 in [0, 1) and eps > 0", d);
    return ST_OK;
}

/* the adversarial losses' own keys (METHOD §4.6 PGDConfig, §4.7); 0: not one of them */
static int adversary_key(const char *key, const struct yaml_node *v, struct dc_loss *l,
                         int *handled, struct diag *d)
{
    static const char *const inits[] = {"random", "ones", "zeroes"};
    static const char *const scopes[] = {"per_batch_per_position", "broadcast_across_batch",
                                         "single_source"};
    static const char *const mask_scopes[] = {"unique_per_datapoint", "shared_across_batch"};
    int persistent = l->kind == DC_LOSS_PERSISTENT_PGD_RECON, ev = 0, st = ST_OK;
    int64_t n = 0;
    *handled = 1;
    if (strcmp(key, "optimizer") == 0)
        return read_src_opt(v, &l->opt, persistent, d);
    if (!persistent && strcmp(key, "init") == 0) {
        st = enum_value(v, inits, 3, &ev, d);
        l->init = (enum dc_pgd_init)ev;
    } else if (!persistent && strcmp(key, "step_size") == 0) {
        st = yaml_as_double(v, &l->opt.lr.start_val, d);
        if (!st && !(l->opt.lr.start_val > 0))
            st = bad_value(v, "a step size > 0", d);
    } else if (!persistent && strcmp(key, "mask_scope") == 0) {
        st = enum_value(v, mask_scopes, 2, &ev, d);
        l->scope = ev ? DC_SCOPE_SINGLE : DC_SCOPE_PER_POSITION;
    } else if (persistent && strcmp(key, "scope") == 0) {
        st = enum_value(v, scopes, 3, &ev, d);
        l->scope = (enum dc_pgd_scope)ev;
    } else if (strcmp(key, persistent ? "n_warmup_steps" : "n_steps") == 0) {
        int64_t lo = persistent ? 0 : 1, hi = persistent ? DC_MAX_ASCENTS - 1 : DC_MAX_PGD_STEPS;
        st = yaml_as_int64(v, &n, d);
        if (!st && (n < lo || n > hi))
            st = diag_set(d, ST_ERR_INVALID, "%s:%d: %s: %lld is not in [%lld, %lld] (each "
                          "step is a forward and backward in the step graph)", v->file, v->line,
                          v->path, (long long)n, (long long)lo, (long long)hi);
        l->n_steps = (int)n;
    } else
        *handled = 0;
    return st;
}

/* the reference's defaults: PGDConfig as the configs use it for evaluation (§4.6,
 * §13.5), persistent PGD as the VPD run (§4.7) */
static void adversary_defaults(struct dc_loss *l)
{
    if (l->kind == DC_LOSS_PERSISTENT_PGD_RECON) {
        l->n_steps = 2;
        l->scope = DC_SCOPE_PER_POSITION;
        l->opt = (struct dc_src_opt){1, {0.01, 0.025, 1.0, DC_SCHED_CONSTANT}, 0.5, 0.99, 1e-8};
    } else {
        l->init = DC_PGD_INIT_RANDOM;
        l->n_steps = 20;
        l->scope = DC_SCOPE_SINGLE;
        l->opt = (struct dc_src_opt){0, {0.1, 0.0, 1.0, DC_SCHED_CONSTANT}, 0.9, 0.999, 1e-8};
    }
}

static int read_loss(const struct yaml_node *e, struct dc_loss *l, struct diag *d)
{
    const struct yaml_node *cn = yaml_need(e, "classname", d);
    if (!cn || loss_kind(cn, &l->kind, d))
        return d->status;
    *l = (struct dc_loss){.kind = l->kind, .coeff = 1.0, .pnorm = 1.0, .eps = 1e-12,
                          .p_anneal_start_frac = 1.0, .p_anneal_final_p = -1.0,
                          .p_anneal_end_frac = 1.0};
    int adv = l->kind == DC_LOSS_PGD_RECON || l->kind == DC_LOSS_PGD_RECON_SUBSET ||
              l->kind == DC_LOSS_PERSISTENT_PGD_RECON;
    if (adv)
        adversary_defaults(l);
    for (int k = 0; k < e->n; k++) {
        const char *key = e->keys[k];
        const struct yaml_node *v = e->items[k];
        int st = ST_OK, imp = l->kind == DC_LOSS_IMPORTANCE_MINIMALITY, handled = 0;
        if (strcmp(key, "classname") == 0)
            continue;
        if (adv && (st = adversary_key(key, v, l, &handled, d)) != ST_OK)
            return st;
        if (handled)
            continue;
        if (strcmp(key, "coeff") == 0)
            st = yaml_as_double(v, &l->coeff, d);
        else if (imp && strcmp(key, "pnorm") == 0)
            st = yaml_as_double(v, &l->pnorm, d);
        else if (imp && strcmp(key, "eps") == 0)
            st = yaml_as_double(v, &l->eps, d);
        else if (imp && strcmp(key, "beta") == 0)
            st = yaml_as_double(v, &l->beta, d);
        else if (imp && strcmp(key, "p_anneal_start_frac") == 0)
            st = yaml_as_double(v, &l->p_anneal_start_frac, d);
        else if (imp && strcmp(key, "p_anneal_end_frac") == 0)
            st = yaml_as_double(v, &l->p_anneal_end_frac, d);
        else if (imp && strcmp(key, "p_anneal_final_p") == 0) {
            if (!yaml_is_null(v))
                st = yaml_as_double(v, &l->p_anneal_final_p, d);
        } else
            st = unknown(e, key, d);
        if (st)
            return st;
    }
    if (l->kind == DC_LOSS_PERSISTENT_PGD_RECON && !(l->coeff > 0))
        return bad_value(e, "a PersistentPGDReconLoss with coeff > 0 (remove the entry to "
                         "turn the adversary off)", d);
    return ST_OK;
}

static int read_losses(const struct yaml_node *n, struct dc_config *c, struct diag *d)
{
    if (n->kind != YAML_LIST || n->n > DC_MAX_LOSSES)
        return bad_value(n, "a list of at most 16 losses", d);
    c->n_losses = 0;
    for (int i = 0; i < n->n; i++)
        if (read_loss(n->items[i], &c->losses[c->n_losses++], d))
            return d->status;
    return ST_OK;
}

static int read_task(const struct yaml_node *n, struct dc_config *c, struct diag *d)
{
    if (n->kind != YAML_MAP)
        return bad_value(n, "a mapping", d);
    for (int i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct yaml_node *v = n->items[i];
        int st = ST_OK;
        if (strcmp(k, "feature_probability") == 0)
            st = yaml_as_double(v, &c->feature_probability, d);
        else if (strcmp(k, "value_range") == 0) {
            if (v->kind != YAML_LIST || v->n != 2)
                return bad_value(v, "a [low, high] pair", d);
            st = yaml_as_double(v->items[0], &c->value_lo, d);
            if (!st)
                st = yaml_as_double(v->items[1], &c->value_hi, d);
        } else if (strcmp(k, "data_generation_type") == 0) {
            const char *s;
            if (!(st = yaml_as_str(v, &s, d)) && strcmp(s, "at_least_zero_active") != 0)
                return diag_set(d, ST_ERR_UNSUPPORTED, "%s:%d: %s '%s' is not supported yet "
                                "(at_least_zero_active is)", v->file, v->line, v->path, s);
        } else if (!is_ignored(k) && strcmp(k, "n_features") && strcmp(k, "buffer_ratio"))
            st = unknown(n, k, d);
        if (st)
            return st;
    }
    return ST_OK;
}

/* data: {source: SPEC, tokens: u16|u32, seq: T, holdout: F} (runtime/data.h) */
static int read_data(const struct yaml_node *n, struct dc_config *c, struct diag *d)
{
    if (n->kind != YAML_MAP)
        return bad_value(n, "a mapping", d);
    for (int i = 0; i < n->n; i++) {
        const char *k = n->keys[i], *s;
        const struct yaml_node *v = n->items[i];
        int st;
        if (strcmp(k, "source") == 0) {
            if (!(st = yaml_as_str(v, &s, d)) && strlen(s) >= sizeof c->data)
                return bad_value(v, "a data source spec shorter than 1024 bytes", d);
            if (!st)
                snprintf(c->data, sizeof c->data, "%s", s);
        } else if (strcmp(k, "tokens") == 0) {
            if (!(st = yaml_as_str(v, &s, d)) && !(c->data_token_bytes = ds_token_bytes(s)))
                return bad_value(v, "u16 or u32", d);
        } else if (strcmp(k, "seq") == 0) {
            if (!(st = yaml_as_int64(v, &c->data_seq, d)) && c->data_seq < 0)
                return bad_value(v, "a window length >= 0", d);
        } else if (strcmp(k, "holdout") == 0) {
            if (!(st = yaml_as_double(v, &c->data_holdout, d)) &&
                !(c->data_holdout >= 0 && c->data_holdout < 1))
                return bad_value(v, "a fraction in [0, 1)", d);
        } else
            st = unknown(n, k, d);
        if (st)
            return st;
    }
    return ST_OK;
}

static int read_hidden(const struct yaml_node *v, struct dc_config *c, struct diag *d)
{
    if (v->kind != YAML_LIST || v->n > DC_MAX_HIDDEN)
        return bad_value(v, "a list of at most 8 widths", d);
    c->n_ci_hidden = v->n;
    for (int i = 0; i < v->n; i++) {
        int64_t h;
        if (yaml_as_int64(v->items[i], &h, d))
            return d->status;
        if (h < 1 || h > 1 << 20)
            return bad_value(v->items[i], "a width in [1, 2^20]", d);
        c->ci_fn_hidden_dims[i] = (int)h;
    }
    return ST_OK;
}

/* enum dc_ci_fn order */
static const char *const ci_names[] = {"mlp", "vector_mlp", "shared_mlp", "global_shared_mlp",
                                       "global_shared_transformer"};

static int read_int(const struct yaml_node *v, int64_t lo, int64_t hi, int64_t *out,
                    struct diag *d)
{
    char what[80];
    if (yaml_as_int64(v, out, d))
        return d->status;
    snprintf(what, sizeof what, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
    return *out < lo || *out > hi ? bad_value(v, what, d) : ST_OK;
}

/* attn_config (reference AttnConfig): n_heads, max_len, rope_base */
static int read_attn(const struct yaml_node *n, struct dc_ci_transformer *t, struct diag *d)
{
    if (n->kind != YAML_MAP)
        return bad_value(n, "a mapping", d);
    for (int i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct yaml_node *v = n->items[i];
        int64_t x;
        int st;
        if (strcmp(k, "n_heads") == 0) {
            if (!(st = read_int(v, 1, 1 << 16, &x, d)))
                t->n_heads = (int)x;
        } else if (strcmp(k, "max_len") == 0) {
            st = read_int(v, 1, INT64_C(1) << 40, &t->max_len, d);
        } else if (strcmp(k, "rope_base") == 0) {
            st = yaml_as_double(v, &t->rope_base, d);
        } else {
            st = unknown(n, k, d);
        }
        if (st)
            return st;
    }
    return ST_OK;
}

/* simple_transformer_ci_cfg (reference GlobalSharedTransformerCiConfig); null: none.
 * Completeness and consistency are checked once the whole file is read. */
static int read_transformer(const struct yaml_node *n, struct dc_config *c, struct diag *d)
{
    struct dc_ci_transformer *t = &c->ci_tf;
    if (yaml_is_null(n))
        return ST_OK;
    if (n->kind != YAML_MAP)
        return bad_value(n, "a mapping", d);
    for (int i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct yaml_node *v = n->items[i];
        int64_t x;
        int st;
        if (strcmp(k, "d_model") == 0) {
            if (!(st = read_int(v, 1, 1 << 16, &x, d)))
                t->d_model = (int)x;
        } else if (strcmp(k, "n_blocks") == 0) {
            if (!(st = read_int(v, 1, 1024, &x, d)))
                t->n_blocks = (int)x;
        } else if (strcmp(k, "mlp_hidden_dim") == 0) {
            t->n_mlp_hidden = 0; /* null: the reference's default [4·d_model] */
            if (!yaml_is_null(v) && (v->kind != YAML_LIST || v->n < 1 || v->n > DC_MAX_HIDDEN))
                return bad_value(v, "null or a list of 1 to 8 widths", d);
            for (int j = 0, st2; !yaml_is_null(v) && j < v->n; j++) {
                if ((st2 = read_int(v->items[j], 1, 1 << 20, &x, d)))
                    return st2;
                t->mlp_hidden_dim[t->n_mlp_hidden++] = (int)x;
            }
            st = ST_OK;
        } else if (strcmp(k, "attn_config") == 0) {
            st = read_attn(v, t, d);
        } else {
            st = unknown(n, k, d);
        }
        if (st)
            return st;
    }
    return ST_OK;
}

/* ci_config: {mode, fn_type, hidden_dims, simple_transformer_ci_cfg}. The keys of the
 * reference's removed reverse-residual CI fn appear as null in its saved configs:
 * accepted as null only. */
static int read_ci_config(const struct yaml_node *n, struct dc_config *c, struct diag *d)
{
    static const char *const gone[] = {"reader_hidden_dims", "d_resid_ci_fn", "block_groups",
                                       "transition_attn_config", "transition_hidden_dim", NULL};
    static const char *const modes[] = {"layerwise", "global"};
    const struct yaml_node *ft = n->kind == YAML_MAP ? yaml_need(n, "fn_type", d) : NULL;
    int e = 0, mode = -1, st;
    if (n->kind != YAML_MAP)
        return bad_value(n, "a mapping", d);
    if (!ft || (st = enum_value(ft, ci_names, 5, &e, d)))
        return d->status;
    c->ci_fn_type = (enum dc_ci_fn)e;
    for (int i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct yaml_node *v = n->items[i];
        int is_gone = 0;
        for (int j = 0; gone[j]; j++)
            is_gone |= strcmp(k, gone[j]) == 0;
        st = ST_OK;
        if (strcmp(k, "mode") == 0)
            st = enum_value(v, modes, 2, &mode, d);
        else if (strcmp(k, "hidden_dims") == 0)
            st = yaml_is_null(v) ? ST_OK : read_hidden(v, c, d);
        else if (strcmp(k, "simple_transformer_ci_cfg") == 0)
            st = read_transformer(v, c, d);
        else if (is_gone && !yaml_is_null(v))
            st = diag_set(d, ST_ERR_UNSUPPORTED, "%s:%d: %s: only null is supported (pdc has "
                          "no reverse-residual CI function)", v->file, v->line, v->path);
        else if (!is_gone && strcmp(k, "fn_type") != 0)
            st = unknown(n, k, d);
        if (st)
            return st;
    }
    if (mode >= 0 && mode != (c->ci_fn_type >= DC_CI_GLOBAL_SHARED_MLP))
        return diag_set(d, ST_ERR_INVALID, "%s:%d: ci_config: mode %s does not go with fn_type %s",
                        n->file, n->line, modes[mode], ci_names[c->ci_fn_type]);
    return ST_OK;
}

static int read_key(const struct yaml_node *root, const char *k, const struct yaml_node *v,
                    struct dc_config *c, struct diag *d)
{
    static const char *const sig[] = {"leaky_hard", "hard"};
    static const char *const out[] = {"mse", "kl"};
    int64_t i64;
    int e = 0, st;
    if (strcmp(k, "seed") == 0) {
        st = yaml_as_int64(v, &i64, d);
        c->seed = (uint64_t)i64;
        return st;
    }
    if (strcmp(k, "steps") == 0) return yaml_as_int64(v, &c->steps, d);
    if (strcmp(k, "batch_size") == 0) return yaml_as_int64(v, &c->batch_size, d);
    if (strcmp(k, "lr") == 0) return yaml_as_double(v, &c->lr.start_val, d);
    if (strcmp(k, "lr_schedule") == 0) return read_schedule(v, &c->lr, d);
    if (strcmp(k, "grad_clip_norm") == 0 || strcmp(k, "grad_clip_norm_components") == 0)
        return yaml_is_null(v) ? (c->grad_clip_norm = 0, ST_OK) : yaml_as_double(v, &c->grad_clip_norm, d);
    if (strcmp(k, "ci_fn_hidden_dims") == 0) return read_hidden(v, c, d);
    if (strcmp(k, "use_delta_component") == 0) return yaml_as_bool(v, &c->use_delta_component, d);
    if (strcmp(k, "faithfulness_warmup_steps") == 0) return yaml_as_int64(v, &c->faithfulness_warmup_steps, d);
    if (strcmp(k, "faithfulness_warmup_lr") == 0) return yaml_as_double(v, &c->faithfulness_warmup_lr, d);
    if (strcmp(k, "faithfulness_warmup_weight_decay") == 0)
        return yaml_as_double(v, &c->faithfulness_warmup_weight_decay, d);
    if (strcmp(k, "ci_alive_threshold") == 0) return yaml_as_double(v, &c->ci_alive_threshold, d);
    if (strcmp(k, "kl_chunk") == 0) {
        if ((st = yaml_as_int64(v, &c->kl_chunk, d)) == ST_OK && c->kl_chunk < 0)
            return diag_set(d, ST_ERR_INVALID, "%s:%d: kl_chunk %lld: want 0 (full logits) or a "
                            "positive number of vocabulary columns", v->file, v->line,
                            (long long)c->kl_chunk);
        return st;
    }
    if (strcmp(k, "log_freq") == 0 || strcmp(k, "train_log_freq") == 0)
        return yaml_as_int64(v, &c->log_freq, d);
    if (strcmp(k, "checkpoint_every") == 0) return yaml_as_int64(v, &c->checkpoint_every, d);
    if (strcmp(k, "module_info") == 0) return read_sites(v, c, d);
    if (strcmp(k, "loss_metric_configs") == 0) return read_losses(v, c, d);
    if (strcmp(k, "task_config") == 0) return read_task(v, c, d);
    if (strcmp(k, "data") == 0) return read_data(v, c, d);
    if (strcmp(k, "l3d") == 0) return pdc_config_l3d_read(v, c, d);
    if (strcmp(k, "simple_transformer_ci_cfg") == 0) return read_transformer(v, c, d);
    if (strcmp(k, "ci_config") == 0) return read_ci_config(v, c, d);
    if (strcmp(k, "ci_fn_type") == 0) {
        st = enum_value(v, ci_names, 5, &e, d);
        c->ci_fn_type = (enum dc_ci_fn)e;
        return st;
    }
    if (strcmp(k, "sigmoid_type") == 0) {
        st = enum_value(v, sig, 2, &e, d);
        c->sigmoid_type = (enum dc_sigmoid)e;
        return st;
    }
    if (strcmp(k, "output_loss_type") == 0) {
        st = enum_value(v, out, 2, &e, d);
        c->output_loss_type = (enum dc_output_loss)e;
        return st;
    }
    if (strcmp(k, "n_mask_samples") == 0) {
        if ((st = yaml_as_int64(v, &i64, d)) == ST_OK && i64 != 1)
            return diag_set(d, ST_ERR_UNSUPPORTED, "%s:%d: n_mask_samples %lld: only 1 is supported",
                            v->file, v->line, (long long)i64);
        return st;
    }
    if (strcmp(k, "sampling") == 0) {
        const char *s;
        if ((st = yaml_as_str(v, &s, d)) == ST_OK && strcmp(s, "continuous") != 0)
            return diag_set(d, ST_ERR_UNSUPPORTED, "%s:%d: sampling '%s': only continuous is supported",
                            v->file, v->line, s);
        return st;
    }
    if (strcmp(k, "method") == 0) {
        const char *s;
        if ((st = yaml_as_str(v, &s, d)) == ST_OK && !c->method[0]) { /* the file decides */
            if (strcmp(s, "spd") != 0 && strcmp(s, "vpd") != 0 && strcmp(s, "l3d") != 0 &&
                strcmp(s, "apd") != 0)
                return bad_value(v, "a method pdc implements (spd, vpd, l3d, apd)", d);
            snprintf(c->method, sizeof c->method, "%s", s);
        } else if (!st && strcmp(s, c->method) != 0)
            return diag_set(d, ST_ERR_INVALID, "%s:%d: config is for method '%s', the run uses '%s'",
                            v->file, v->line, s, c->method);
        return st;
    }
    if ((st = pdc_config_apd_key(k, v, c, d)) >= 0) /* APD's flat keys (pdc_config_apd.c) */
        return st;
    if (is_ignored(k)) {
        fprintf(stderr, "pdc: note: %s: ignoring '%s' (not used by pdc)\n", root->file, k);
        return ST_OK;
    }
    return unknown(root, k, d);
}

int pdc_config_method(const char *path, char *out, size_t n, struct diag *d)
{
    struct yaml_doc doc;
    int st = yaml_parse_file(path, &doc, d);
    if (st)
        return st;
    const struct yaml_node *m = doc.root->kind == YAML_MAP ? yaml_get(doc.root, "method") : NULL;
    const char *s = NULL;
    if (m && !(st = yaml_as_str(m, &s, d)))
        snprintf(out, n, "%s", s);
    yaml_doc_free(&doc);
    return st;
}

/* the transformer's settings, once all are read: an error names the file and line of
 * the settings (or of the CI choice when they are missing) and the offending key */
static int check_transformer(const struct yaml_node *root, const struct dc_config *c,
                             struct diag *d)
{
    if (c->ci_fn_type != DC_CI_GLOBAL_SHARED_TRANSFORMER)
        return ST_OK;
    const struct yaml_node *at = yaml_get(root, "simple_transformer_ci_cfg"), *cc;
    if (!at && (cc = yaml_get(root, "ci_config")))
        at = yaml_get(cc, "simple_transformer_ci_cfg") ? yaml_get(cc, "simple_transformer_ci_cfg")
                                                        : cc;
    if (!at && !(at = yaml_get(root, "ci_fn_type")))
        at = root;
    struct diag dd = {0};
    if (!dc_ci_transformer_check(&c->ci_tf, &dd))
        return ST_OK;
    return diag_set(d, dd.status, "%s:%d: %s", at->file, at->line, dd.msg);
}

int pdc_config_load(const char *path, struct dc_config *c, struct diag *d)
{
    struct yaml_doc doc;
    int st = yaml_parse_file(path, &doc, d);
    if (st)
        return st;
    const struct yaml_node *root = doc.root;
    if (root->kind != YAML_MAP) {
        st = diag_set(d, ST_ERR_INVALID, "%s: a config must be a mapping of keys", path);
    } else {
        const struct yaml_node *C = yaml_get(root, "C"); /* default C, read first */
        int64_t dc = 0;
        if (C && !(st = yaml_as_int64(C, &dc, d)) && (dc < 1 || dc > 1000000))
            st = bad_value(C, "a component count in [1, 10^6]", d);
        if (C && !st) { /* every site, unless module_info says otherwise per pattern */
            c->n_sites = 1;
            snprintf(c->sites[0].pattern, sizeof c->sites[0].pattern, "*");
            c->sites[0].C = (int)dc;
        }
        for (int i = 0; i < root->n && !st; i++)
            if (strcmp(root->keys[i], "C") != 0)
                st = read_key(root, root->keys[i], root->items[i], c, d);
        if (!st)
            st = check_transformer(root, c, d);
        if (!st)
            st = pdc_config_l3d_check(root, c, d);
    }
    yaml_doc_free(&doc);
    return st;
}
