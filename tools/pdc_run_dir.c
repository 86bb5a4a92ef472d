/* pdc_run_dir.c — `pdc run DIR --input NAME=X.npy [--masks M.npz] [-o OUT.npz]`:
 * the decomposition's own forward (decompose.c's masked forward, Δ path on)
 * under given masks, and every site's CI values, on pdc's runtime. It is what
 * `pdc export` is checked against. M.npz holds one array per site, named by the
 * site (or "mask.<site>"), shaped like the site's masks [pos.., C] or [C] (the
 * same mask at every position); sites it leaves out get masks of 1. OUT.npz
 * holds the model's float outputs by name and "ci.<site>" per site (none for APD,
 * whose masks are per component [pos.., C], repeated over its m columns). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "io.h"
#include "pdc_cli.h"
#include "target.h"

struct run_args {
    const char *input, *masks, *out;
};

static int parse(int argc, char **argv, struct run_args *a, struct diag *d)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return diag_set(d, ST_ERR_INVALID, "run DIR: unexpected '%s'", argv[i]);
        if (strcmp(argv[i], "--input") == 0)
            a->input = v;
        else if (strcmp(argv[i], "--masks") == 0)
            a->masks = v;
        else if (strcmp(argv[i], "-o") == 0)
            a->out = v;
        else
            return diag_set(d, ST_ERR_INVALID, "run DIR: unknown option '%s'", argv[i]);
        i++;
    }
    if (!a->input)
        return diag_set(d, ST_ERR_INVALID, "usage: pdc run DIR --input NAME=X.npy [--masks "
                        "M.npz] [-o OUT.npz]");
    return ST_OK;
}

/* the mask of site `site` from the npz (exact shape, or [C] repeated), or ones */
static int mask_value(const struct ir_value *mv, int nm, const char *path, const char *site,
                      const struct ir_tensor *t, float *buf, struct diag *d)
{
    int64_t n = ir_numel(t), C = t->dims[t->rank - 1];
    const struct ir_value *v = NULL;
    char alt[300];
    snprintf(alt, sizeof alt, "mask.%s", site);
    for (int i = 0; i < nm; i++)
        if (strcmp(mv[i].name, site) == 0 || strcmp(mv[i].name, alt) == 0)
            v = &mv[i];
    if (!v) {
        for (int64_t k = 0; k < n; k++)
            buf[k] = 1.0f;
        return ST_OK;
    }
    int exact = v->rank == t->rank && ir_value_numel(v) == n;
    for (int k = 0; exact && k < t->rank; k++)
        exact = v->dims[k] == t->dims[k];
    int vec = v->rank == 1 && v->dims[0] == C;
    if ((!exact && !vec) || (v->dtype != IR_F32 && v->dtype != IR_F64)) {
        char want[256];
        ir_tensor_type_str(t, NULL, want, sizeof want);
        return diag_set(d, ST_ERR_SHAPE, "%s: mask '%s' must be float with shape %s or [%lld]",
                        path, v->name, want, (long long)C);
    }
    for (int64_t k = 0; k < n; k++)
        buf[k] = (float)ir_load_f64(v->dtype, v->data, exact ? k : k % C);
    return ST_OK;
}

/* every site in the npz is a site of the decomposition */
static int check_mask_names(const struct pdc_dir *x, const struct ir_value *mv, int nm,
                            struct diag *d)
{
    for (int i = 0; i < nm; i++) {
        const char *s = strncmp(mv[i].name, "mask.", 5) == 0 ? mv[i].name + 5 : mv[i].name;
        int idx;
        if (pdc_dir_site(x, s, &idx, d))
            return d->status;
    }
    return ST_OK;
}

/* graph inputs by name: the data, the stored states, the masks */
static int feed_values(const struct dc_prog *p, const struct pdc_dir *x, const struct ir_value *in,
                       const struct run_args *a, const struct ir_value *mv, int nm,
                       struct ir_value *vals, float **bufs, struct diag *d)
{
    vals[0] = *in;
    vals[0].name = (char *)p->g->t[p->in[0].t].name;
    for (int i = 0; i < p->n_st; i++) {
        const struct ir_tensor *t = &p->g->t[p->st[i].t];
        struct ir_value *v = &vals[i + 1];
        v->name = (char *)t->name;
        if (strncmp(p->st[i].name, "mask.", 5) == 0) {
            int64_t n = ir_numel(t);
            if (!(bufs[i] = malloc((size_t)n * sizeof **bufs)))
                return diag_set(d, ST_ERR_NOMEM, "out of memory");
            int st = mask_value(mv, nm, a->masks, p->st[i].name + 5, t, bufs[i], d);
            if (st)
                return st;
            *v = (struct ir_value){(char *)t->name, IR_F32, t->rank, {0}, bufs[i],
                                   (size_t)n * sizeof(float)};
            memcpy(v->dims, t->dims, sizeof v->dims);
            continue;
        }
        const struct ir_value *s = pdc_dir_find(x, p->st[i].name);
        if (!s)
            return diag_set(d, ST_ERR_INVALID, "%s/components.safetensors: no '%s'", x->dir,
                            p->st[i].name);
        *v = *s;
        v->name = (char *)t->name;
    }
    return ST_OK;
}

/* outputs named as the program's taps (the model's output names, "ci.<site>") */
static int name_outputs(const struct dc_prog *p, struct ir_value *outs, int n, struct diag *d)
{
    for (int k = 0; k < n; k++)
        for (int j = 0; j < p->n_tap; j++)
            if (p->tap[j].t == p->g->outputs[k]) {
                free(outs[k].name);
                if (!(outs[k].name = strdup(p->tap[j].name)))
                    return diag_set(d, ST_ERR_NOMEM, "out of memory");
                break;
            }
    return ST_OK;
}

/* --input NAME=FILE: NAME is the model's data input (the one a decomposition feeds) */
static int check_input_name(const struct dc_prog *p, const char *arg, struct diag *d)
{
    const char *eq = strchr(arg, '=');
    const char *want = p->g->t[p->in[0].t].name;
    if (!eq || ((size_t)(eq - arg) == strlen(want) && strncmp(arg, want, (size_t)(eq - arg)) == 0))
        return ST_OK;
    char names[1024] = "";
    size_t len = 0;
    for (uint32_t k = 0; k < p->g->n_inputs && len < sizeof names; k++) {
        int data = 0;
        for (int i = 0; i < p->n_in; i++)
            data |= p->in[i].t == p->g->inputs[k] && p->in[i].kind == DC_FEED_DATA;
        if (data)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s'%s'", len ? ", " : "",
                                    p->g->t[p->g->inputs[k]].name);
    }
    return diag_set(d, ST_ERR_INVALID, "--input %.*s: the model has no such input (its input: %s)",
                    (int)(eq - arg), arg, names);
}

static int run_dir(const char *dir, const struct run_args *a, struct diag *d)
{
    struct ir_value in = {0}, *mv = NULL, *outs = NULL, *vals = NULL;
    struct pdc_dir x = {0};
    struct dc_prog p = {0};
    float **bufs = NULL;
    int nm = 0, nout = 0;
    const char *eq = strchr(a->input, '=');
    int st = npy_read_file(eq ? eq + 1 : a->input, &in, d);
    if (!st && a->masks)
        st = npz_read_file(a->masks, &mv, &nm, d);
    if (!st && in.rank < 1)
        st = diag_set(d, ST_ERR_SHAPE, "%s: the input needs a batch dim", a->input);
    if (!st)
        st = pdc_dir_open(dir, in.dims[0], in.rank >= 2 ? in.dims[1] : 0, &x, d);
    if (!st)
        st = check_mask_names(&x, mv, nm, d);
    if (!st) {
        st = dc_build_masked(x.h, &x.c, x.sites, x.ns, x.fac, x.nf, &p, d);
        x.h = NULL; /* the program owns the graph now */
    }
    if (!st)
        st = check_input_name(&p, a->input, d);
    if (!st && (!(vals = calloc((size_t)p.n_st + 2, sizeof *vals)) ||
                !(bufs = calloc((size_t)p.n_st + 1, sizeof *bufs))))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = feed_values(&p, &x, &in, a, mv, nm, vals, bufs, d);
    if (!st)
        st = rt_run(p.g, cg_default(), vals, p.n_st + 1, &outs, &nout, d);
    if (!st)
        st = name_outputs(&p, outs, nout, d);
    if (!st && a->out)
        st = npz_write_file(a->out, outs, nout, d);
    for (int i = 0; !st && !a->out && i < nout; i++)
        printf("%s: float32, %lld values\n", outs[i].name, (long long)ir_value_numel(&outs[i]));
    for (int i = 0; i < nout; i++)
        ir_value_free(&outs[i]);
    free(outs);
    for (int i = 0; bufs && i < p.n_st; i++)
        free(bufs[i]);
    free(bufs);
    free(vals);
    dc_prog_free(&p);
    pdc_dir_close(&x);
    for (int i = 0; i < nm; i++)
        ir_value_free(&mv[i]);
    free(mv);
    ir_value_free(&in);
    return st;
}

int pdc_run_dir_main(const char *dir, int argc, char **argv)
{
    struct run_args a;
    struct diag d = {0};
    if (parse(argc, argv, &a, &d) || run_dir(dir, &a, &d)) {
        fprintf(stderr, "pdc: %s\n", d.msg);
        return 1;
    }
    return 0;
}
