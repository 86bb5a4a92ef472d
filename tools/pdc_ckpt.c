/* pdc_ckpt.c — checkpoints: the whole state store (parameters, optimizer moments,
 * CI weights) plus where the run stands (phase index, step), written atomically to
 * DIR/checkpoint.safetensors. Random draws are keyed by (seed, step), so a resumed
 * run recomputes exactly the draws an uninterrupted one would have: resuming ends
 * bit-identical. The config is stored too, and a resume under another config is
 * refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdc_cli.h"
#include "safetensors.h"
#include "train.h"

static char *config_text(const struct dc_config *c, struct diag *d)
{
    struct json_w w;
    json_w_init(&w, 0);
    pdc_config_json(c, &w);
    char *s = NULL;
    if (!json_w_finish(&w, "config", d))
        s = strndup(w.buf, w.len);
    json_w_free(&w);
    return s;
}

int pdc_ckpt_save(const char *dir, const struct dc_config *c, const struct rt_store *store,
                  int phase, int64_t step, struct diag *d)
{
    struct ir_value *vals = calloc((size_t)store->n + 1, sizeof *vals);
    char *cfg = config_text(c, d);
    if (!vals || !cfg) {
        free(vals);
        free(cfg);
        return d->status ? (int)d->status : diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < store->n; i++) { /* borrowed views: st_write only reads them */
        const struct rt_store_item *it = &store->items[i];
        vals[i] = (struct ir_value){it->name, it->dtype, it->rank, {0}, it->data, it->nbytes};
        memcpy(vals[i].dims, it->dims, sizeof vals[i].dims);
    }
    char ph[32], sp[32], path[4200];
    snprintf(ph, sizeof ph, "%d", phase);
    snprintf(sp, sizeof sp, "%lld", (long long)step);
    const char *meta[] = {"format", "pdc-checkpoint-1", "phase", ph, "step", sp, "config", cfg};
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    int st = st_write(path, vals, store->n, meta, 4, d);
    free(vals);
    free(cfg);
    return st;
}

static const char *meta_get(char **kv, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[2 * i], key) == 0)
            return kv[2 * i + 1];
    return NULL;
}

int pdc_ckpt_load(const char *dir, const struct dc_config *c, struct rt_store *store, int *phase,
                  int64_t *step, struct diag *d)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    struct ir_value *vals = NULL;
    char **kv = NULL;
    int n = 0, nkv = 0;
    int st = st_read_meta(path, &vals, &n, &kv, &nkv, d);
    if (st)
        return st;
    char *cfg = config_text(c, d);
    const char *fmt = meta_get(kv, nkv, "format"), *ph = meta_get(kv, nkv, "phase");
    const char *sp = meta_get(kv, nkv, "step"), *saved = meta_get(kv, nkv, "config");
    if (!cfg)
        st = d->status;
    else if (!fmt || strcmp(fmt, "pdc-checkpoint-1") != 0 || !ph || !sp || !saved)
        st = diag_set(d, ST_ERR_INVALID, "%s: not a pdc checkpoint", path);
    else if (strcmp(saved, cfg) != 0)
        st = diag_set(d, ST_ERR_INVALID, "%s: the checkpoint was written under a different "
                      "config; --resume needs the same settings", path);
    if (!st) {
        *phase = atoi(ph);
        *step = strtoll(sp, NULL, 10);
        for (int i = 0; i < n && !st; i++)
            st = rt_store_put(store, &vals[i], d);
    }
    free(cfg);
    st_free(vals, n);
    st_meta_free(kv, nkv);
    return st;
}
