/* pdc_dir.c — a decomposition folder opened for `pdc export` and `pdc run DIR`:
 * the model it was made from (its SHA-256 checked), the resolved config.yaml,
 * components.safetensors, and the sites selected again on a compiled copy of
 * the model with the run's own patterns, so they match the run's one for one
 * (an APD folder's sites with C·m columns each: dc_apd_sites, as the run had them).
 * Every factor is checked against the stored tensors before anything uses it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"
#include "pdc_cli.h"
#include "safetensors.h"

const struct ir_value *pdc_dir_find(const struct pdc_dir *x, const char *name)
{
    for (int i = 0; i < x->nvals; i++)
        if (strcmp(x->vals[i].name, name) == 0)
            return &x->vals[i];
    return NULL;
}

/* the name the factor of site i is stored under: its first site's */
static const char *factor_name(const struct pdc_dir *x, int i)
{
    for (int k = 0; k < x->ns; k++)
        if (x->sites[k].factor == x->sites[i].factor)
            return x->sites[k].name;
    return x->sites[i].name;
}

static int check_factor(const struct pdc_dir *x, int i, struct diag *d)
{
    const struct dc_factor *F = &x->fac[x->sites[i].factor];
    int64_t want[2][2] = {{F->d_in, F->C}, {F->C, F->d_out}};
    for (int k = 0; k < 2; k++) {
        char nm[300];
        snprintf(nm, sizeof nm, "%s.%s", factor_name(x, i), k ? "U" : "V");
        const struct ir_value *v = pdc_dir_find(x, nm);
        if (!v || v->dtype != IR_F32 || v->rank != 2 || v->dims[0] != want[k][0] ||
            v->dims[1] != want[k][1])
            return diag_set(d, ST_ERR_INVALID, "%s/components.safetensors: '%s' is %s; expected "
                            "float32 [%lld, %lld]", x->dir, nm, v ? "of another type or shape"
                            : "missing", (long long)want[k][0], (long long)want[k][1]);
    }
    return ST_OK;
}

int pdc_dir_apd(const struct pdc_dir *x)
{
    return strcmp(x->c.method, "apd") == 0;
}

int pdc_dir_rank(const struct pdc_dir *x, int i)
{
    return pdc_dir_apd(x) ? dc_apd_rank(&x->c, &x->sites[i]) : 1;
}

void pdc_dir_factor(const struct pdc_dir *x, int i, const float **V, const float **U)
{
    char nv[300], nu[300];
    snprintf(nv, sizeof nv, "%s.V", factor_name(x, i));
    snprintf(nu, sizeof nu, "%s.U", factor_name(x, i));
    *V = pdc_dir_find(x, nv)->data; /* present: checked when the folder was opened */
    *U = pdc_dir_find(x, nu)->data;
}

int pdc_dir_site(const struct pdc_dir *x, const char *name, int *idx, struct diag *d)
{
    for (int i = 0; i < x->ns; i++)
        if (strcmp(x->sites[i].name, name) == 0) {
            *idx = i;
            return ST_OK;
        }
    char list[1024] = "";
    size_t at = 0;
    for (int i = 0; i < x->ns && at + 1 < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "",
                               x->sites[i].name);
    return diag_set(d, ST_ERR_INVALID, "%s: no site '%s' (the sites are: %.900s)", x->dir, name,
                    list);
}

/* batch (and seq, where the model has a symbolic sequence dim) for the copy; a
 * negative batch: -batch where the batch dim is symbolic, else the model's own */
static int compile_copy(struct pdc_dir *x, int64_t batch, int64_t seq, struct diag *d)
{
    struct dc_config cb = x->c;
    if (batch < 0) {
        struct ir_graph *g;
        int st = onnx_load_file(x->model, &g, d);
        if (st)
            return st;
        const struct ir_tensor *t = g->n_inputs ? &g->t[g->inputs[0]] : NULL;
        batch = t && t->rank >= 1 && t->sym[0] < 0 && t->dims[0] > 0 ? t->dims[0] : -batch;
        ir_graph_free(g);
    }
    cb.batch_size = batch;
    cb.data_seq = seq;
    int st = pdc_compiled_model(x->model, &cb, &x->h, d);
    if ((st == ST_ERR_SHAPE || st == ST_ERR_INVALID) && seq > 0 && x->c.data_seq > 0 &&
        x->c.data_seq != seq) {
        /* a model with fewer positions than the probe length (a shape mismatch, a constant
         * position index out of range): the run's own window. Not after an I/O, parse or
         * memory failure; when the retry fails too, the first diagnostic is the one shown */
        struct diag first = *d;
        *d = (struct diag){0};
        cb.data_seq = x->c.data_seq;
        if ((st = pdc_compiled_model(x->model, &cb, &x->h, d)))
            *d = first;
    }
    if (!st)
        st = dc_select_sites(x->h, &x->c, &x->sites, &x->ns, &x->fac, &x->nf, d);
    if (!st && pdc_dir_apd(x)) /* C·m columns per site, as the run stored them */
        st = dc_apd_sites(&x->c, x->sites, x->ns, x->fac, x->nf, d);
    for (int i = 0; !st && i < x->ns; i++)
        st = check_factor(x, i, d);
    return st;
}

int pdc_dir_open(const char *dir, int64_t batch, int64_t seq, struct pdc_dir *x, struct diag *d)
{
    memset(x, 0, sizeof *x);
    snprintf(x->dir, sizeof x->dir, "%s", dir);
    char path[4200];
    dc_config_defaults(&x->c, "spd");
    x->c.method[0] = '\0'; /* the saved, fully resolved config names its method */
    int st = pdc_dir_model(dir, x->model, sizeof x->model, d);
    if (!st) {
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        st = pdc_config_load(path, &x->c, d);
    }
    if (!st && strcmp(x->c.method, "l3d") == 0) /* its own parametrisation, no V/U per site */
        st = diag_set(d, ST_ERR_UNSUPPORTED, "%s: an L3D decomposition (method l3d) has no "
                      "per-site masks to run with: use `pdc intervene DIR --subnet K --delta D "
                      "--data X.npy` (or `pdc export DIR -o OUT.onnx --intervene K:D`)", dir);
    if (!st) {
        snprintf(path, sizeof path, "%s/components.safetensors", dir);
        st = st_read(path, &x->vals, &x->nvals, d);
    }
    if (!st)
        st = compile_copy(x, batch, seq, d);
    if (st)
        pdc_dir_close(x);
    return st;
}

void pdc_dir_close(struct pdc_dir *x)
{
    if (x->vals)
        st_free(x->vals, x->nvals);
    ir_graph_free(x->h);
    free(x->sites);
    free(x->fac);
    memset(x, 0, sizeof *x);
}
