/* pdc_config.c — the resolved configuration in the reference implementations'
 * field names (so a researcher's config translates line by line), and the
 * decomposition.json record of a run. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "pdc_cli.h"
#include "sha256.h"

static const char *ci_fn_name(enum dc_ci_fn t)
{
    switch (t) {
    case DC_CI_MLP: return "mlp";
    case DC_CI_VECTOR_MLP: return "vector_mlp";
    case DC_CI_SHARED_MLP: return "shared_mlp";
    case DC_CI_GLOBAL_SHARED_MLP: return "global_shared_mlp";
    case DC_CI_GLOBAL_SHARED_TRANSFORMER: return "global_shared_transformer";
    }
    return "?";
}

static const char *sched_name(enum dc_schedule s)
{
    switch (s) {
    case DC_SCHED_CONSTANT: return "constant";
    case DC_SCHED_LINEAR: return "linear";
    case DC_SCHED_COSINE: return "cosine";
    case DC_SCHED_STEP: return "step";
    case DC_SCHED_QCOSINE: return "cosine"; /* APD's reading of cosine */
    }
    return "?";
}

static void kv_num(struct json_w *w, const char *k, double v)
{
    json_key(w, k);
    json_double(w, v);
}

static void kv_int(struct json_w *w, const char *k, int64_t v)
{
    json_key(w, k);
    json_int(w, v);
}

static void kv_str(struct json_w *w, const char *k, const char *v)
{
    json_key(w, k);
    json_str(w, v);
}

static void schedule_json(struct json_w *w, const char *key, const struct dc_schedule_cfg *s)
{
    json_key(w, key);
    json_obj_begin(w);
    kv_num(w, "start_val", s->start_val);
    kv_str(w, "fn_type", sched_name(s->fn));
    kv_num(w, "warmup_pct", s->warmup_pct);
    kv_num(w, "final_val_frac", s->final_val_frac);
    json_obj_end(w);
}

/* the adversary's settings under the names pdc_config_yaml.c reads */
static void adversary_json(struct json_w *w, const struct dc_loss *l)
{
    static const char *const inits[] = {"random", "ones", "zeroes"};
    static const char *const scopes[] = {"per_batch_per_position", "broadcast_across_batch",
                                         "single_source"};
    int persistent = l->kind == DC_LOSS_PERSISTENT_PGD_RECON;
    if (persistent) {
        kv_int(w, "n_warmup_steps", l->n_steps);
        kv_str(w, "scope", scopes[l->scope]);
    } else {
        kv_str(w, "init", inits[l->init]);
        kv_num(w, "step_size", l->opt.lr.start_val);
        kv_int(w, "n_steps", l->n_steps);
        kv_str(w, "mask_scope", l->scope == DC_SCOPE_SINGLE ? "shared_across_batch"
                                                           : "unique_per_datapoint");
    }
    json_key(w, "optimizer");
    json_obj_begin(w);
    kv_str(w, "type", l->opt.adam ? "adam" : "sign");
    if (persistent)
        schedule_json(w, "lr_schedule", &l->opt.lr);
    kv_num(w, "beta1", l->opt.beta1);
    kv_num(w, "beta2", l->opt.beta2);
    kv_num(w, "eps", l->opt.eps);
    json_obj_end(w);
}

static void losses_json(const struct dc_config *c, struct json_w *w)
{
    json_key(w, "loss_metric_configs");
    json_arr_begin(w);
    for (int i = 0; i < c->n_losses; i++) {
        const struct dc_loss *l = &c->losses[i];
        json_obj_begin(w);
        kv_str(w, "classname", dc_loss_classname(l->kind));
        kv_num(w, "coeff", l->coeff);
        if (l->kind == DC_LOSS_IMPORTANCE_MINIMALITY) {
            kv_num(w, "pnorm", l->pnorm);
            kv_num(w, "eps", l->eps);
            kv_num(w, "beta", l->beta);
            kv_num(w, "p_anneal_start_frac", l->p_anneal_start_frac);
            json_key(w, "p_anneal_final_p");
            if (l->p_anneal_final_p < 0)
                json_null(w);
            else
                json_double(w, l->p_anneal_final_p);
            kv_num(w, "p_anneal_end_frac", l->p_anneal_end_frac);
        }
        if (l->kind == DC_LOSS_PGD_RECON || l->kind == DC_LOSS_PGD_RECON_SUBSET ||
            l->kind == DC_LOSS_PERSISTENT_PGD_RECON)
            adversary_json(w, l);
        json_obj_end(w);
    }
    json_arr_end(w);
}

/* the reference's simple_transformer_ci_cfg with its attn_config (pd
 * GlobalSharedTransformerCiConfig); mlp_hidden_dim null = the default [4·d_model] */
static void transformer_json(const struct dc_ci_transformer *t, struct json_w *w)
{
    json_key(w, "simple_transformer_ci_cfg");
    json_obj_begin(w);
    kv_int(w, "d_model", t->d_model);
    kv_int(w, "n_blocks", t->n_blocks);
    json_key(w, "mlp_hidden_dim");
    if (t->n_mlp_hidden == 0) {
        json_null(w);
    } else {
        json_arr_begin(w);
        for (int i = 0; i < t->n_mlp_hidden; i++)
            json_int(w, t->mlp_hidden_dim[i]);
        json_arr_end(w);
    }
    json_key(w, "attn_config");
    json_obj_begin(w);
    kv_int(w, "n_heads", t->n_heads);
    kv_int(w, "max_len", t->max_len);
    kv_num(w, "rope_base", t->rope_base);
    json_obj_end(w);
    json_obj_end(w);
}

void pdc_config_json(const struct dc_config *c, struct json_w *w)
{
    json_obj_begin(w);
    kv_str(w, "method", c->method);
    kv_int(w, "seed", (int64_t)c->seed);
    kv_int(w, "steps", c->steps);
    kv_int(w, "batch_size", c->batch_size);
    schedule_json(w, "lr_schedule", &c->lr);
    json_key(w, "grad_clip_norm");
    if (c->grad_clip_norm > 0)
        json_double(w, c->grad_clip_norm);
    else
        json_null(w);
    kv_str(w, "ci_fn_type", ci_fn_name(c->ci_fn_type));
    json_key(w, "ci_fn_hidden_dims");
    json_arr_begin(w);
    for (int i = 0; i < c->n_ci_hidden; i++)
        json_int(w, c->ci_fn_hidden_dims[i]);
    json_arr_end(w);
    if (c->ci_fn_type == DC_CI_GLOBAL_SHARED_TRANSFORMER)
        transformer_json(&c->ci_tf, w);
    kv_str(w, "sigmoid_type", c->sigmoid_type == DC_SIG_LEAKY_HARD ? "leaky_hard" : "hard");
    json_key(w, "use_delta_component");
    json_bool(w, c->use_delta_component);
    kv_str(w, "output_loss_type", c->output_loss_type == DC_OUT_MSE ? "mse" : "kl");
    kv_int(w, "faithfulness_warmup_steps", c->faithfulness_warmup_steps);
    kv_num(w, "faithfulness_warmup_lr", c->faithfulness_warmup_lr);
    kv_num(w, "faithfulness_warmup_weight_decay", c->faithfulness_warmup_weight_decay);
    kv_num(w, "ci_alive_threshold", c->ci_alive_threshold);
    kv_int(w, "kl_chunk", c->kl_chunk);
    json_key(w, "module_info");
    json_arr_begin(w);
    for (int i = 0; i < c->n_sites; i++) {
        json_obj_begin(w);
        kv_str(w, "module_pattern", c->sites[i].pattern);
        json_key(w, "C");
        if (c->sites[i].C > 0)
            json_int(w, c->sites[i].C);
        else
            json_null(w);
        json_obj_end(w);
    }
    json_arr_end(w);
    losses_json(c, w);
    if (strcmp(c->method, "l3d") == 0)
        pdc_config_l3d_json(c, w);
    if (strcmp(c->method, "apd") == 0)
        pdc_config_apd_json(c, w);
    json_key(w, "task_config");
    json_obj_begin(w);
    kv_str(w, "data_generation_type", "at_least_zero_active");
    kv_num(w, "feature_probability", c->feature_probability);
    json_key(w, "value_range");
    json_arr_begin(w);
    json_double(w, c->value_lo);
    json_double(w, c->value_hi);
    json_arr_end(w);
    json_obj_end(w);
    json_key(w, "data"); /* the source (runtime/data.h) as the run resolved it: eval reuses it */
    json_obj_begin(w);
    kv_str(w, "source", c->data[0] ? c->data : "toy");
    kv_str(w, "tokens", c->data_token_bytes == 4 ? "u32" : "u16");
    kv_int(w, "seq", c->data_seq);
    kv_num(w, "holdout", c->data_holdout);
    json_obj_end(w);
    kv_int(w, "log_freq", c->log_freq);
    kv_int(w, "checkpoint_every", c->checkpoint_every);
    json_obj_end(w);
}

static void sites_json(const struct ir_graph *g, const struct dc_site *sites, int ns,
                       struct json_w *w)
{
    json_key(w, "sites");
    json_arr_begin(w);
    for (int i = 0; i < ns; i++) {
        const struct dc_site *s = &sites[i];
        json_obj_begin(w);
        kv_str(w, "name", s->name);
        kv_str(w, "initializer", g->t[s->weight].name);
        kv_str(w, "node", g->n[s->node].name);
        kv_str(w, "op", ir_ops[g->n[s->node].op].name);
        json_key(w, "shape");
        json_arr_begin(w);
        json_int(w, s->d_in);
        json_int(w, s->d_out);
        json_arr_end(w);
        kv_int(w, "C", s->C);
        json_key(w, "transposed");
        json_bool(w, s->transposed);
        const char *tied = NULL;
        for (int k = 0; k < i && !tied; k++)
            if (sites[k].factor == s->factor)
                tied = sites[k].name;
        json_key(w, "tied_to");
        json_str(w, tied);
        json_obj_end(w);
    }
    json_arr_end(w);
}

int pdc_write_decomposition_json(const char *model, const char *dir, const struct dc_config *c,
                                 const struct ir_graph *g, const struct dc_site *sites, int ns,
                                 const struct dc_prog *train, const double *last, struct diag *d)
{
    uint8_t dig[SHA256_DIGEST_LEN];
    char hex[SHA256_HEX_LEN], abspath[PATH_MAX];
    int st = sha256_file(model, dig, d);
    if (st)
        return st;
    sha256_hex(dig, hex);
    if (!realpath(model, abspath))
        snprintf(abspath, sizeof abspath, "%s", model);
    struct json_w w;
    json_w_init(&w, 1);
    json_obj_begin(&w);
    kv_str(&w, "format", "pdc-decomposition-1");
    json_key(&w, "model");
    json_obj_begin(&w);
    kv_str(&w, "path", abspath);
    kv_str(&w, "sha256", hex);
    json_obj_end(&w);
    kv_str(&w, "method", c->method);
    sites_json(g, sites, ns, &w);
    json_key(&w, "config");
    pdc_config_json(c, &w);
    json_key(&w, "final_metrics");
    json_obj_begin(&w);
    for (int i = 0; i < train->n_metric; i++)
        kv_num(&w, train->metric[i].name, last[i]);
    json_obj_end(&w);
    json_obj_end(&w);
    char path[4200];
    snprintf(path, sizeof path, "%s/decomposition.json", dir);
    st = json_w_write_file(&w, path, d);
    json_w_free(&w);
    return st;
}

int pdc_parse_sites(struct dc_config *c, const char *spec, struct diag *d)
{
    c->n_sites = 0;
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (c->n_sites == DC_MAX_SITE_SPECS)
            return diag_set(d, ST_ERR_INVALID, "--sites: more than %d patterns", DC_MAX_SITE_SPECS);
        struct dc_site_spec *s = &c->sites[c->n_sites];
        if (n == 0 || n >= sizeof s->pattern)
            return diag_set(d, ST_ERR_INVALID, "--sites: bad item in '%s'", spec);
        memcpy(s->pattern, p, n);
        s->pattern[n] = 0;
        s->C = 0;
        char *colon = strrchr(s->pattern, ':');
        if (colon) {
            char *end;
            long v = strtol(colon + 1, &end, 10);
            if (*end || v <= 0 || v > 1000000)
                return diag_set(d, ST_ERR_INVALID, "--sites: '%s' has a bad component count", s->pattern);
            s->C = (int)v;
            *colon = 0;
        }
        c->n_sites++;
        p += n + (e ? 1 : 0);
    }
    return ST_OK;
}

/* ---- the resolved config as YAML (block style), from the same JSON record ---- */

static void yaml_scalar(FILE *f, const struct json_node *n)
{
    switch (n->type) {
    case JSON_NULL: fputs("null", f); break;
    case JSON_BOOL: fputs(n->b ? "true" : "false", f); break;
    case JSON_NUM:
        if (n->is_int) {
            fprintf(f, "%lld", (long long)n->i);
        } else { /* shortest text that reads back to the same double */
            char buf[40];
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, sizeof buf, "%.*g", prec, n->num);
                if (strtod(buf, NULL) == n->num)
                    break;
            }
            fputs(buf, f);
        }
        break;
    case JSON_STR: /* double-quoted; the JSON writer's escapes are valid YAML escapes */
        fputc('"', f);
        for (const char *p = n->s; *p; p++) {
            if (*p == '"' || *p == '\\')
                fputc('\\', f);
            fputc(*p, f);
        }
        fputc('"', f);
        break;
    case JSON_ARR: case JSON_OBJ: break;
    }
}

static int is_flat_list(const struct json_node *n)
{
    for (size_t i = 0; i < n->n; i++)
        if (n->items[i].type == JSON_ARR || n->items[i].type == JSON_OBJ)
            return 0;
    return 1;
}

static void yaml_value(FILE *f, const struct json_node *n, int indent);

static void yaml_map(FILE *f, const struct json_node *n, int indent, int first_inline)
{
    for (size_t i = 0; i < n->n; i++) {
        if (!(first_inline && i == 0))
            fprintf(f, "%*s", indent, "");
        fprintf(f, "%s:", n->keys[i]);
        yaml_value(f, &n->items[i], indent + 2);
    }
}

static void yaml_value(FILE *f, const struct json_node *n, int indent)
{
    if (n->type == JSON_OBJ && n->n) {
        fputc('\n', f);
        yaml_map(f, n, indent, 0);
    } else if (n->type == JSON_ARR && n->n && !is_flat_list(n)) {
        fputc('\n', f);
        for (size_t i = 0; i < n->n; i++) {
            fprintf(f, "%*s- ", indent, "");
            if (n->items[i].type == JSON_OBJ)
                yaml_map(f, &n->items[i], indent + 2, 1);
            else {
                yaml_scalar(f, &n->items[i]);
                fputc('\n', f);
            }
        }
    } else if (n->type == JSON_ARR) {
        fputs(" [", f);
        for (size_t i = 0; i < n->n; i++) {
            if (i)
                fputs(", ", f);
            yaml_scalar(f, &n->items[i]);
        }
        fputs("]\n", f);
    } else if (n->type == JSON_OBJ) {
        fputs(" {}\n", f);
    } else {
        fputc(' ', f);
        yaml_scalar(f, n);
        fputc('\n', f);
    }
}

int pdc_write_config_yaml(const struct dc_config *c, const char *path, struct diag *d)
{
    struct json_w w;
    struct json_doc doc;
    json_w_init(&w, 0);
    pdc_config_json(c, &w);
    int st = json_w_finish(&w, "config", d);
    if (!st)
        st = json_parse(w.buf, w.len, "config", NULL, &doc, d);
    json_w_free(&w);
    if (st)
        return st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        json_doc_free(&doc);
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    fprintf(f, "# pdc: the fully resolved configuration of this run (reference field names)\n");
    yaml_map(f, doc.root, 0, 0);
    fclose(f);
    json_doc_free(&doc);
    st = io_write_atomic(path, buf, len, d);
    free(buf);
    return st;
}
