/* pdc_decomp.c — `pdc MODEL.onnx -o DIR`: compile the decomposition programs
 * for a model and run them, writing
 *   DIR/decomposition.json      model hash, sites, method, resolved config, final metrics
 *   DIR/components.safetensors  per site <site>.V [d_in,C], <site>.U [C,d_out]; CI weights
 *   DIR/metrics.jsonl           one line per logged step (a log: written as it goes)
 * The two result files are written at the end, atomically. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decomp.h"
#include "json.h"
#include "onnx.h"
#include "pdc_cli.h"
#include "safetensors.h"
#include "sha256.h"
#include "target.h"
#include "memplan.h"
#include "train.h"

/* import + bind the batch + compile: one fresh inference graph per program */
int pdc_compiled_model(const char *path, const struct dc_config *c, struct ir_graph **out,
                       struct diag *d)
{
    struct ir_graph *g;
    int st = onnx_load_file(path, &g, d);
    if (st)
        return st;
    if (g->n_inputs >= 1) {
        struct ir_tensor *x = &g->t[g->inputs[0]];
        if (x->rank >= 1 && x->sym[0] >= 0 && g->sym_val[x->sym[0]] < 0)
            st = ir_bind_sym(g, g->syms[x->sym[0]], c->batch_size, d);
        else if (x->rank >= 1 && x->dims[0] != c->batch_size)
            st = diag_set(d, ST_ERR_SHAPE,
                          "%s: input '%s' has a fixed batch dim %lld, but batch_size is %lld",
                          path, x->name, (long long)x->dims[0], (long long)c->batch_size);
        if (!st && c->data_seq > 0 && x->rank >= 2 && x->sym[1] >= 0 && g->sym_val[x->sym[1]] < 0)
            st = ir_bind_sym(g, g->syms[x->sym[1]], c->data_seq, d); /* token windows: --seq */
        else if (!st && x->rank == 2 && x->sym[1] >= 0 && g->sym_val[x->sym[1]] < 0 &&
                 ir_dtype_is_int(x->dtype)) /* shape inference would suggest --bind, which
                                             * decomposing has not got */
            st = diag_set(d, ST_ERR_SHAPE, "%s: input '%s' has a symbolic sequence dim '%s': "
                          "give the window length with --seq T (or data: {seq: T})", path,
                          x->name, g->syms[x->sym[1]]);
    }
    struct pass_ctx cx = {.eval = cg_eval_node};
    if (!st)
        st = pass_compile_inference(g, &cx, d);
    if (st) {
        ir_graph_free(g);
        return st;
    }
    *out = g;
    return ST_OK;
}

int pdc_data_option(struct dc_config *c, const char *opt, const char *v, struct diag *d)
{
    char *e = NULL;
    if (strcmp(opt, "--data") == 0) {
        if (strlen(v) >= sizeof c->data)
            return diag_set(d, ST_ERR_INVALID, "--data: the spec is longer than %zu bytes",
                            sizeof c->data - 1);
        snprintf(c->data, sizeof c->data, "%s", v);
        return ST_OK;
    }
    if (strcmp(opt, "--tokens") == 0)
        return (c->data_token_bytes = ds_token_bytes(v)) ? ST_OK
               : diag_set(d, ST_ERR_INVALID, "--tokens: '%s' is not u16 or u32", v);
    if (strcmp(opt, "--seq") == 0) {
        long long x = strtoll(v, &e, 10);
        c->data_seq = x;
        return *e || e == v || x < 1
               ? diag_set(d, ST_ERR_INVALID, "--seq: '%s' is not an integer >= 1", v) : ST_OK;
    }
    if (strcmp(opt, "--holdout") == 0) {
        c->data_holdout = strtod(v, &e);
        return *e || e == v || !(c->data_holdout >= 0 && c->data_holdout < 1)
               ? diag_set(d, ST_ERR_INVALID, "--holdout: '%s' is not a fraction in [0, 1)", v)
               : ST_OK;
    }
    return -1;
}

int pdc_open_data(const struct dc_config *c, struct ds_source **src, struct dc_config *rc,
                  struct diag *d)
{
    struct ds_opts o = {c->feature_probability, c->value_lo, c->value_hi, c->data_token_bytes,
                        c->data_seq, c->data_holdout};
    if (rc != c)
        *rc = *c;
    int st = ds_open(c->data, &o, src, d);
    if (st)
        return st;
    if (strlen(ds_spec(*src)) >= sizeof rc->data) {
        st = diag_set(d, ST_ERR_INVALID, "%s: the path is too long to record", ds_spec(*src));
        ds_close(*src);
        *src = NULL;
        return st;
    }
    snprintf(rc->data, sizeof rc->data, "%s", ds_spec(*src));
    ds_toy_settings(*src, &rc->feature_probability, &rc->value_lo, &rc->value_hi);
    return ST_OK;
}

/* every data input of p can be fed by src, and token ids fit the model's vocabulary */
static int check_data(struct ds_source *src, const struct dc_prog *p, struct diag *d)
{
    for (int i = 0; i < p->n_in; i++) {
        if (p->in[i].kind != DC_FEED_DATA)
            continue;
        int st = ds_check_input(src, &p->g->t[p->in[i].t], d);
        if (!st)
            st = ds_check_vocab(src, ds_graph_vocab(p->g, p->in[i].t), d);
        if (st)
            return st;
    }
    return ST_OK;
}

static int mkdir_p(const char *dir, struct diag *d)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return diag_set(d, ST_ERR_IO, "output path too long");
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0777) && errno != EEXIST)
            return diag_set(d, ST_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) && errno != EEXIST)
        return diag_set(d, ST_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    return ST_OK;
}

/* V and U as site i reads them: a transposed (tied) use reads V' = Uᵀ, U' = Vᵀ */
static int site_factor_values(const struct dc_site *s, const struct rt_store_item *V,
                              const struct rt_store_item *U, struct ir_value out[2])
{
    memset(out, 0, 2 * sizeof *out);
    int64_t din = s->d_in, dout = s->d_out, C = s->C;
    out[0].dtype = out[1].dtype = IR_F32;
    out[0].rank = out[1].rank = 2;
    out[0].dims[0] = din, out[0].dims[1] = C;
    out[1].dims[0] = C, out[1].dims[1] = dout;
    out[0].nbytes = (size_t)(din * C) * 4;
    out[1].nbytes = (size_t)(C * dout) * 4;
    out[0].data = malloc(out[0].nbytes);
    out[1].data = malloc(out[1].nbytes);
    if (!out[0].data || !out[1].data)
        return ST_ERR_NOMEM;
    if (!s->transposed) {
        memcpy(out[0].data, V->data, out[0].nbytes);
        memcpy(out[1].data, U->data, out[1].nbytes);
        return ST_OK;
    }
    const float *u = U->data, *v = V->data; /* U [C, din], V [dout, C] in the factor's layout */
    float *nv = out[0].data, *nu = out[1].data;
    for (int64_t i = 0; i < din; i++)
        for (int64_t c = 0; c < C; c++)
            nv[i * C + c] = u[c * din + i];
    for (int64_t c = 0; c < C; c++)
        for (int64_t o = 0; o < dout; o++)
            nu[c * dout + o] = v[o * C + c];
    return ST_OK;
}

/* copies of every store item whose name starts with prefix, appended at vals[*n] */
static int copy_items(const struct rt_store *store, const char *prefix, struct ir_value *vals,
                      int *n, struct diag *d)
{
    for (int i = 0; i < store->n; i++) {
        const struct rt_store_item *it = &store->items[i];
        if (strncmp(it->name, prefix, strlen(prefix)) != 0)
            continue;
        struct ir_value *v = &vals[(*n)++];
        v->name = strdup(it->name);
        v->dtype = it->dtype;
        v->rank = it->rank;
        memcpy(v->dims, it->dims, sizeof v->dims);
        v->nbytes = it->nbytes;
        v->data = malloc(it->nbytes ? it->nbytes : 1);
        if (!v->name || !v->data)
            return diag_set(d, ST_ERR_NOMEM, "out of memory");
        memcpy(v->data, it->data, it->nbytes);
    }
    return ST_OK;
}

static int write_components(const char *dir, const struct dc_site *sites, int ns,
                            struct rt_store *store, struct diag *d)
{
    int cap = 2 * ns + store->n + 1, n = 0, st = ST_OK;
    struct ir_value *vals = calloc((size_t)cap, sizeof *vals);
    if (!vals)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ns && !st; i++) {
        const struct dc_site *s = &sites[i];
        const char *fname = NULL; /* the factor is stored under its first site's name */
        for (int k = 0; k < ns && !fname; k++)
            if (sites[k].factor == s->factor)
                fname = sites[k].name;
        char nv[300], nu[300];
        snprintf(nv, sizeof nv, "%s.V", fname);
        snprintf(nu, sizeof nu, "%s.U", fname);
        const struct rt_store_item *V = rt_store_find(store, nv), *U = rt_store_find(store, nu);
        if (!V || !U) {
            st = diag_set(d, ST_ERR_INVALID, "internal: factors of site '%s' missing", s->name);
            break;
        }
        int fail = site_factor_values(s, V, U, &vals[n]);
        snprintf(nv, sizeof nv, "%s.V", s->name);
        snprintf(nu, sizeof nu, "%s.U", s->name);
        vals[n].name = strdup(nv);
        vals[n + 1].name = strdup(nu);
        n += 2; /* counted now, so st_free releases a partly filled pair */
        if (fail || !vals[n - 2].name || !vals[n - 1].name)
            st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    if (!st) /* the CI function's weights */
        st = copy_items(store, "ci.", vals, &n, d);
    char path[4200];
    snprintf(path, sizeof path, "%s/components.safetensors", dir);
    const char *meta[] = {"format", "pdc-decomposition-1"};
    if (!st)
        st = st_write(path, vals, n, meta, 1, d);
    st_free(vals, n);
    return st;
}

/* L3D: every "l3d.<tensor>.<in|out>.<piece>" factor (objective_l3d.c), as stored */
static int write_l3d_components(const char *dir, struct rt_store *store, struct diag *d)
{
    struct ir_value *vals = calloc((size_t)store->n + 1, sizeof *vals);
    int n = 0;
    if (!vals)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    int st = copy_items(store, "l3d.", vals, &n, d);
    char path[4200];
    snprintf(path, sizeof path, "%s/components.safetensors", dir);
    const char *meta[] = {"format", "pdc-decomposition-1", "method", "l3d"};
    if (!st)
        st = st_write(path, vals, n, meta, 2, d);
    st_free(vals, n);
    return st;
}

/* how far this invocation may go (--run-steps), counted over both phases */
struct run_budget {
    int64_t left; /* < 0: unlimited */
};

/* One train step on the first batch with throwaway states, before anything is written:
 * what only the data can reveal (a window longer than the model's positions, a token id
 * beyond its vocabulary) fails here, not after the warmup has been checkpointed. */
static int dry_step(const struct dc_prog *train, struct ds_source *src, const struct dc_config *c,
                    struct diag *d)
{
    struct rt_store scratch = {0};
    double *m = calloc((size_t)train->n_metric + 1, sizeof *m);
    struct rt_train_opts o = {c->seed, c->faithfulness_warmup_steps, "check", NULL, 0, 0, 0, 1,
                              0};
    int st = m ? rt_train(train, cg_train_target(), &scratch, src, &o, m, d)
               : diag_set(d, ST_ERR_NOMEM, "out of memory");
    rt_store_free(&scratch);
    free(m);
    return st;
}

/* Run one phase from `from` to its end in checkpointed segments. Returns ST_OK
 * with *stopped set when the budget ran out first. */
static int run_phase(struct dc_prog *p, int phase, int64_t from, struct rt_store *store,
                     struct ds_source *src,
                     const struct dc_config *c, const char *dir, int64_t step0, const char *name,
                     FILE *mf, double *last, struct run_budget *b, int *stopped, struct diag *d)
{
    int st = ST_OK;
    *stopped = 0;
    for (int64_t s = from; !st && s < p->steps;) {
        int64_t to = c->checkpoint_every > 0 ? s + c->checkpoint_every : p->steps;
        if (b->left >= 0 && to - s > b->left)
            to = s + b->left;
        if (to > p->steps)
            to = p->steps;
        if (to == s) {
            *stopped = 1;
            break;
        }
        struct rt_train_opts o = {c->seed, step0, name, mf, c->log_freq, isatty(2), s, to, 0};
        st = rt_train(p, cg_train_target(), store, src, &o, last, d);
        if (mf)
            fflush(mf);
        if (!st && c->checkpoint_every > 0)
            st = pdc_ckpt_save(dir, c, store, phase, to, d);
        if (b->left >= 0)
            b->left -= to - s;
        s = to;
    }
    return st;
}

/* keep the metrics log's lines up to a resumed checkpoint, drop what came after */
static int open_metrics(const char *dir, int resume, int phase, int64_t step, FILE **out,
                        struct diag *d)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (!resume) {
        *out = fopen(path, "w");
        return *out ? ST_OK : diag_set(d, ST_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *in = fopen(path, "r"), *o = fopen(tmp, "w");
    if (!o) {
        if (in)
            fclose(in);
        return diag_set(d, ST_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    char line[65536];
    int ph = 0;
    const char *pname[2] = {"\"phase\": \"warmup\"", NULL};
    while (in && fgets(line, sizeof line, in)) {
        long long sp = -1;
        const char *q = strstr(line, "\"step\": ");
        if (q)
            sp = strtoll(q + 8, NULL, 10);
        ph = strstr(line, pname[0]) ? 0 : 1;
        if (ph < phase || (ph == phase && sp < step))
            fputs(line, o);
    }
    if (in)
        fclose(in);
    if (fclose(o) || rename(tmp, path))
        return diag_set(d, ST_ERR_IO, "%s: cannot rewrite: %s", path, strerror(errno));
    *out = fopen(path, "a");
    return *out ? ST_OK : diag_set(d, ST_ERR_IO, "%s: cannot append: %s", path, strerror(errno));
}

static void print_summary(const struct dc_prog *p, const double *last)
{
    printf("final metrics:\n");
    for (int i = 0; i < p->n_metric; i++)
        printf("  %-40s %.6g\n", p->metric[i].name, last[i]);
}

/* a DIR that holds a decomposition (or a checkpoint of one) is not overwritten
 * unless asked: a failed or mistaken re-run must not damage earlier results */
static int refuse_existing(const char *dir, struct diag *d)
{
    static const char *const files[] = {"decomposition.json", "checkpoint.safetensors",
                                        "components.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (access(path, F_OK) == 0)
            return diag_set(d, ST_ERR_INVALID,
                            "%s already holds a decomposition (%s); continue it with --resume, "
                            "or replace it with --force", dir, files[i]);
    }
    return ST_OK;
}

/* --force: the earlier run's results go before the new run writes anything, the
 * decomposition record first, so an interrupted or failed re-run leaves its own partial
 * files (log, checkpoint) and never an older result beside them */
static int remove_results(const char *dir, struct diag *d)
{
    static const char *const files[] = {"decomposition.json", "components.safetensors",
                                        "checkpoint.safetensors", "config.yaml", "eval.json",
                                        "probe_ci.npz", "impact.npy", "metrics.jsonl"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return diag_set(d, ST_ERR_IO, "%s: cannot remove the earlier run's file: %s", path,
                            strerror(errno));
    }
    return ST_OK;
}

int pdc_decompose(const char *model, const char *dir, const struct dc_config *c, int resume,
                  unsigned flags, int64_t run_steps, struct diag *d)
{
    struct ir_graph *g = NULL, *gw = NULL;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    int ns = 0, nf = 0;
    struct dc_prog train = {0}, warm = {0};
    struct rt_store store = {0};
    double *last = NULL, *lastw = NULL;
    FILE *mf = NULL;
    char path[4200];
    struct ds_source *src = NULL;
    struct dc_config rc; /* c with the data source resolved: recorded, and checked on resume */
    int st = pdc_open_data(c, &src, &rc, d);
    c = &rc;
    if (!st && !resume && !(flags & PDC_FORCE))
        st = refuse_existing(dir, d);
    if (!st)
        st = pdc_compiled_model(model, c, &g, d);
    if (!st && rc.output_loss_type == DC_OUT_AUTO) { /* recorded resolved, as every setting */
        enum ir_dtype dt = g->n_inputs ? g->t[g->inputs[0]].dtype : IR_F32;
        rc.output_loss_type = dt == IR_I64 || dt == IR_I32 ? DC_OUT_KL : DC_OUT_MSE;
    }
    int l3d = strcmp(c->method, "l3d") == 0; /* no sites: its own init and train programs */
    int apd = strcmp(c->method, "apd") == 0;
    if (!st && l3d && !(st = pdc_compiled_model(model, c, &gw, d))) {
        st = dc_build_l3d_init(gw, c, &warm, d);
        gw = NULL;
    }
    if (!st && l3d) {
        st = dc_build_l3d_train(g, c, &train, d);
        g = NULL;
    }
    if (!st && !l3d)
        st = dc_select_sites(g, c, &sites, &ns, &fac, &nf, d);
    if (!st && apd) /* C components → C·m columns per site */
        st = dc_apd_sites(c, sites, ns, fac, nf, d);
    if (!st && !l3d && c->faithfulness_warmup_steps > 0 &&
        !(st = pdc_compiled_model(model, c, &gw, d))) {
        st = dc_build_faith_warmup(gw, c, sites, ns, fac, nf, &warm, d);
        gw = NULL; /* owned by warm now */
    }
    if (!st && !l3d) {
        st = apd ? dc_build_apd_train(g, c, sites, ns, fac, nf, &train, d)
                 : dc_build_spd_train(g, c, sites, ns, fac, nf, &train, d);
        g = NULL;
    }
    if (!st && !(st = check_data(src, &warm, d)))
        st = check_data(src, &train, d);
    if (!st && (flags & PDC_VERBOSE) && warm.g)
        rt_memplan_report(warm.g, "warmup", stdout);
    if (!st && (flags & PDC_VERBOSE))
        rt_memplan_report(train.g, c->method, stdout);
    if (!st && !resume)
        st = dry_step(&train, src, c, d);
    if (!st) /* only once the model compiled and ran on the data: no empty DIR behind */
        st = mkdir_p(dir, d);
    if (!st && !resume && (flags & PDC_FORCE))
        st = remove_results(dir, d);
    int phase = 0, stopped = 0;
    int64_t from = 0;
    struct run_budget budget = {run_steps};
    if (!st && resume)
        st = pdc_ckpt_load(dir, c, &store, &phase, &from, d);
    if (!st)
        st = open_metrics(dir, resume, phase, from, &mf, d);
    if (!st && (!(lastw = calloc((size_t)warm.n_metric + 1, sizeof *lastw)) ||
                !(last = calloc((size_t)train.n_metric + 1, sizeof *last))))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st && warm.g && phase == 0)
        st = run_phase(&warm, 0, from, &store, src, c, dir, 0, "warmup", mf, lastw, &budget,
                       &stopped, d);
    if (!st && !stopped) {
        st = run_phase(&train, 1, phase == 1 ? from : 0, &store, src, c, dir,
                       c->faithfulness_warmup_steps, c->method, mf, last, &budget, &stopped, d);
        if (!st && phase == 1 && from >= train.steps) /* resumed a finished run: recompute last */
            st = diag_set(d, ST_ERR_INVALID, "%s: this run already finished", dir);
    }
    if (mf)
        fclose(mf);
    if (!st && stopped) {
        printf("stopped after --run-steps; continue with --resume\n");
        goto done;
    }
    if (!st)
        st = l3d ? write_l3d_components(dir, &store, d) : write_components(dir, sites, ns, &store, d);
    if (!st) {
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        st = pdc_write_config_yaml(c, path, d);
    }
    if (!st)
        st = pdc_write_decomposition_json(model, dir, c, g ? g : train.g, sites, ns, &train, last, d);
    if (!st)
        print_summary(&train, last);
done:
    ds_close(src);
    free(last);
    free(lastw);
    rt_store_free(&store);
    dc_prog_free(&train);
    dc_prog_free(&warm);
    ir_graph_free(g);
    ir_graph_free(gw);
    free(sites);
    free(fac);
    return st;
}
