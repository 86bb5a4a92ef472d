/* pdc_config_l3d.c — the `l3d:` block of a config (METHOD §8; the code's choices are
 * the defaults, each paper choice of §11.13 one key away), read and written. */
#include <stdio.h>
#include <string.h>

#include "pdc_cli.h"
#include "yaml.h"

static const char *const div_names[] = {"code", "mse", "kl"};
static const char *const loss_names[] = {"code", "paper"};
static const char *const factor_names[] = {"tucker", "cp"};
static const char *const norm_names[] = {"code", "paper"};
static const char *const topk_names[] = {"code", "paper"};

static int choice(const struct yaml_node *v, const char *const *names, int n, int *out,
                  struct diag *d)
{
    const char *s;
    int st = yaml_as_str(v, &s, d);
    for (int i = 0; !st && i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return ST_OK;
        }
    if (st)
        return st;
    char all[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", names[i]);
    return diag_set(d, ST_ERR_INVALID, "%s:%d: %s: '%s' is not one of %s", v->file, v->line,
                    v->path, s, all);
}

static int read_int(const struct yaml_node *v, int64_t lo, int64_t hi, int64_t *out,
                    struct diag *d)
{
    int st = yaml_as_int64(v, out, d);
    if (!st && (*out < lo || *out > hi))
        st = diag_set(d, ST_ERR_INVALID, "%s:%d: %s: %lld is not in [%lld, %lld]", v->file,
                      v->line, v->path, (long long)*out, (long long)lo, (long long)hi);
    return st;
}

static int read_num(const struct yaml_node *v, double lo, double hi, double *out, struct diag *d)
{
    int st = yaml_as_double(v, out, d);
    if (!st && !(*out >= lo && *out <= hi))
        st = diag_set(d, ST_ERR_INVALID, "%s:%d: %s: %g is not in [%g, %g]", v->file, v->line,
                      v->path, *out, lo, hi);
    return st;
}

static int read_one(const char *k, const struct yaml_node *v, struct dc_l3d *o, struct diag *d)
{
    int64_t i = 0;
    int e = 0, st;
    if (!strcmp(k, "n_subnetworks") || !strcmp(k, "rank") || !strcmp(k, "bias_rank")) {
        st = read_int(v, 1, 4096, &i, d);
        *(!strcmp(k, "rank") ? &o->rank : !strcmp(k, "bias_rank") ? &o->bias_rank : &o->n_subnets) =
            (int)i;
        return st;
    }
    if (!strcmp(k, "top_k")) return read_num(v, 1e-9, 1.0, &o->top_k, d);
    /* epochs and steps per epoch at most 2^30 each: (warm_start_epochs + 1)·steps_per_epoch
     * and lr_decay_epochs·steps_per_epoch (objective_l3d.c) stay far below 2^63 */
    if (!strcmp(k, "steps_per_epoch")) return read_int(v, 1, 1 << 30, &o->steps_per_epoch, d);
    if (!strcmp(k, "warm_start_epochs")) return read_int(v, -1, 1 << 30, &o->warm_start_epochs, d);
    if (!strcmp(k, "lr_decay")) return read_num(v, 0.0, 1.0, &o->lr_decay, d);
    if (!strcmp(k, "lr_decay_epochs")) return read_int(v, 1, 1 << 30, &o->lr_decay_epochs, d);
    if (!strcmp(k, "weight_decay")) return read_num(v, 0.0, 1.0, &o->weight_decay, d);
    if (!strcmp(k, "materialize")) return yaml_as_bool(v, &o->materialize, d);
    const char *const *names = !strcmp(k, "divergence") ? div_names
                               : !strcmp(k, "loss") ? loss_names
                               : !strcmp(k, "factors") ? factor_names
                               : !strcmp(k, "normalize") ? norm_names
                               : !strcmp(k, "top_k_count") ? topk_names : NULL;
    if (!names)
        return diag_set(d, ST_ERR_INVALID, "%s:%d: unknown config key 'l3d.%s'", v->file, v->line, k);
    st = choice(v, names, names == div_names ? 3 : 2, &e, d);
    if (names == div_names) o->divergence = (enum dc_l3d_div)e;
    if (names == loss_names) o->loss = (enum dc_l3d_loss)e;
    if (names == factor_names) o->cp = e;
    if (names == norm_names) o->unit_norm = e;
    if (names == topk_names) o->topk_exact = e;
    return st;
}

/* after the whole file is read (the method may come after the l3d block): an `l3d:` block
 * only for method l3d; for l3d, an lr_schedule may give the start value only, as the learning
 * rate follows L3D's own step schedule (×lr_decay every lr_decay_epochs epochs, §8.7) */
int pdc_config_l3d_check(const struct yaml_node *root, const struct dc_config *c, struct diag *d)
{
    const struct yaml_node *n = yaml_get(root, "l3d");
    int l3d = strcmp(c->method, "l3d") == 0;
    if (n && !l3d)
        return diag_set(d, ST_ERR_INVALID, "%s:%d: l3d: an l3d block, but the method is '%s' "
                        "(the l3d keys apply to method l3d only)", n->file, n->line,
                        c->method[0] ? c->method : "(none)");
    if (!l3d || !(n = yaml_get(root, "lr_schedule")))
        return ST_OK;
    if (c->lr.fn != DC_SCHED_CONSTANT || c->lr.warmup_pct != 0.0)
        return diag_set(d, ST_ERR_INVALID, "%s:%d: lr_schedule: method l3d uses its own step "
                        "schedule (lr × l3d.lr_decay every l3d.lr_decay_epochs epochs); give "
                        "only lr or lr_schedule.start_val (fn_type constant, no warmup_pct), "
                        "and l3d.lr_decay: 1 for a constant rate", n->file, n->line);
    return ST_OK;
}

int pdc_config_l3d_read(const struct yaml_node *n, struct dc_config *c, struct diag *d)
{
    if (n->kind != YAML_MAP)
        return diag_set(d, ST_ERR_INVALID, "%s:%d: l3d: expected a mapping", n->file, n->line);
    for (int i = 0; i < n->n; i++) {
        int st = read_one(n->keys[i], n->items[i], &c->l3d, d);
        if (st)
            return st;
    }
    return ST_OK;
}

void pdc_config_l3d_json(const struct dc_config *c, struct json_w *w)
{
    const struct dc_l3d *o = &c->l3d;
    json_key(w, "l3d");
    json_obj_begin(w);
    json_key(w, "n_subnetworks"); json_int(w, o->n_subnets);
    json_key(w, "rank"); json_int(w, o->rank);
    json_key(w, "bias_rank"); json_int(w, o->bias_rank);
    json_key(w, "top_k"); json_double(w, o->top_k);
    json_key(w, "top_k_count"); json_str(w, topk_names[o->topk_exact]);
    json_key(w, "steps_per_epoch"); json_int(w, o->steps_per_epoch);
    json_key(w, "warm_start_epochs"); json_int(w, o->warm_start_epochs);
    json_key(w, "lr_decay"); json_double(w, o->lr_decay);
    json_key(w, "lr_decay_epochs"); json_int(w, o->lr_decay_epochs);
    json_key(w, "weight_decay"); json_double(w, o->weight_decay);
    json_key(w, "divergence"); json_str(w, div_names[o->divergence]);
    json_key(w, "loss"); json_str(w, loss_names[o->loss]);
    json_key(w, "factors"); json_str(w, factor_names[o->cp]);
    json_key(w, "normalize"); json_str(w, norm_names[o->unit_norm]);
    json_key(w, "materialize"); json_bool(w, o->materialize);
    json_obj_end(w);
}
