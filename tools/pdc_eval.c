/* pdc_eval.c — `pdc eval DIR`: the evaluation suite of a decomposition.
 *   reconstruction MSE to the target under unmasked, stochastic (with and without
 *   Δ), CI, rounded (CI > 0, 0.1, 0.5) and zero masks (for KL targets, language
 *   models, the KL and next-token CE under the same masks: pdc_eval_lm.c); L0 per
 *   site; alive components; and for toy targets the ground-truth metrics of METHOD.md §7:
 *   MMCS/ML2R per site and the CI pattern errors on the one-hot probe (0.75·I);
 *   the divergence under fresh PGD adversaries of 20..320 steps (pdc_eval_adv.c).
 * Prints a table and writes DIR/eval.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "io.h"
#include "onnx.h"
#include "pdc_cli.h"
#include "safetensors.h"
#include "sha256.h"
#include "toy_metrics.h"
#include "train.h"

#define EVAL_STEP 0x7fffffff /* draws of the evaluation batch: a step no training run reaches */

/* alive: components that fire (CI > ci_alive_threshold) at least once on the
 * evaluation batch (a language model: on any held-out batch); density[c]: the fraction
 * of its positions where c fires */
struct eval_site {
    double l0, mmcs, ml2r, mmcs_std, probe_l0;
    int alive, big_pieces, C;
    int64_t identity_err, identity_err_0p2, dense_err;
    double *density;
};

int pdc_dir_model(const char *dir, char *model, size_t n, struct diag *d)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/decomposition.json", dir);
    struct json_doc doc;
    int st = json_parse_file(path, NULL, &doc, d);
    if (st)
        return st;
    const struct json_node *r = doc.root, *m = NULL, *p = NULL, *h = NULL;
    for (size_t i = 0; r->type == JSON_OBJ && i < r->n; i++)
        if (strcmp(r->keys[i], "model") == 0)
            m = &r->items[i];
    for (size_t i = 0; m && m->type == JSON_OBJ && i < m->n; i++) {
        if (strcmp(m->keys[i], "path") == 0)
            p = &m->items[i];
        if (strcmp(m->keys[i], "sha256") == 0)
            h = &m->items[i];
    }
    if (!p || !h || p->type != JSON_STR || h->type != JSON_STR) {
        json_doc_free(&doc);
        return diag_set(d, ST_ERR_INVALID, "%s: no model.path / model.sha256", path);
    }
    snprintf(model, n, "%s", p->s);
    uint8_t dig[SHA256_DIGEST_LEN];
    char hex[SHA256_HEX_LEN];
    st = sha256_file(model, dig, d);
    if (!st) {
        sha256_hex(dig, hex);
        if (strcmp(hex, h->s) != 0)
            st = diag_set(d, ST_ERR_INVALID, "%s: the model file changed since the decomposition "
                          "(sha256 %s, recorded %s)", model, hex, h->s);
    }
    json_doc_free(&doc);
    return st;
}

int pdc_eval_load_store(const char *dir, struct rt_store *store, struct diag *d)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/components.safetensors", dir);
    struct ir_value *vals;
    int n;
    int st = st_read(path, &vals, &n, d);
    if (st)
        return st;
    for (int i = 0; !st && i < n; i++)
        st = rt_store_put(store, &vals[i], d); /* fails on a name given twice */
    st_free(vals, n);
    return st;
}

static int build(const char *model, const struct dc_config *c, int64_t batch, struct dc_prog *p,
                 struct dc_site **sites, int *ns, uint32_t **g_lo, struct diag *d)
{
    struct dc_config cb = *c;
    cb.batch_size = batch;
    struct ir_graph *g;
    struct dc_factor *fac = NULL;
    int nf;
    int st = pdc_compiled_model(model, &cb, &g, d);
    if (st)
        return st;
    if ((st = dc_select_sites(g, &cb, sites, ns, &fac, &nf, d))) {
        ir_graph_free(g);
        return st;
    }
    *g_lo = calloc((size_t)*ns + 1, sizeof **g_lo);
    st = *g_lo ? dc_build_eval(g, &cb, *sites, *ns, fac, nf, p, *g_lo, d)
               : diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (st && !p->g)
        ir_graph_free(g);
    free(fac);
    return st;
}

/* n_features of the data input [batch, F], or 0 when the model is not toy-shaped */
static int64_t probe_width(const struct dc_prog *p)
{
    const struct ir_tensor *x = &p->g->t[p->in[0].t];
    return x->rank == 2 && x->dtype == IR_F32 ? x->dims[1] : 0;
}

/* one factor item of DIR's store: F32 [rows, cols] (tied uses' items are no program
 * states, so nothing else has checked them) */
static int factor_item(const char *dir, struct rt_store *store, const char *name, int64_t rows,
                       int64_t cols, const float **out, struct diag *d)
{
    const struct rt_store_item *t = rt_store_find(store, name);
    if (!t)
        return diag_set(d, ST_ERR_INVALID, "%s/components.safetensors: '%s' is missing", dir,
                        name);
    if (t->dtype != IR_F32 || t->rank != 2 || t->dims[0] != rows || t->dims[1] != cols ||
        t->nbytes != (size_t)(rows * cols) * sizeof(float))
        return diag_set(d, ST_ERR_SHAPE, "%s/components.safetensors: '%s' is %s rank %d, the "
                        "site needs float32 [%lld, %lld]", dir, name, ir_dtype_name(t->dtype),
                        t->rank, (long long)rows, (long long)cols);
    *out = t->data;
    return ST_OK;
}

int pdc_eval_site_factors(const char *dir, struct rt_store *store, const struct dc_site *s,
                          const float **V, const float **U, struct diag *d)
{
    char nv[300], nu[300];
    snprintf(nv, sizeof nv, "%s.V", s->name);
    snprintf(nu, sizeof nu, "%s.U", s->name);
    int st = factor_item(dir, store, nv, s->d_in, s->C, V, d);
    return st ? st : factor_item(dir, store, nu, s->C, s->d_out, U, d);
}

float *pdc_eval_site_weight(const struct dc_site *s, const struct ir_graph *g, struct diag *d)
{
    const struct ir_tensor *W = &g->t[s->weight];
    if (W->dtype != IR_F32 || !W->data || ir_numel(W) != s->d_in * s->d_out) {
        diag_set(d, ST_ERR_UNSUPPORTED, "site '%s': weight '%s' is not a float32 constant of "
                 "%lld elements", s->name, W->name, (long long)(s->d_in * s->d_out));
        return NULL;
    }
    float *Wr = malloc((size_t)(s->d_in * s->d_out) * sizeof *Wr);
    if (!Wr) {
        diag_set(d, ST_ERR_NOMEM, "out of memory");
        return NULL;
    }
    const float *w = W->data;
    for (int64_t i = 0; i < s->d_in; i++)
        for (int64_t o = 0; o < s->d_out; o++)
            Wr[i * s->d_out + o] = s->use_tr ? w[o * s->d_in + i] : w[i * s->d_out + o];
    return Wr;
}

static int site_ground_truth(const char *dir, const struct dc_site *s, const struct ir_graph *g,
                             struct rt_store *store, struct eval_site *e, struct diag *d)
{
    const float *V, *U;
    int st = pdc_eval_site_factors(dir, store, s, &V, &U, d);
    if (st)
        return st;
    if (g->t[s->weight].dtype != IR_F32 || !g->t[s->weight].data)
        return ST_OK; /* no ground truth to compare with */
    float *Wr = pdc_eval_site_weight(s, g, d);
    if (!Wr)
        return d->status;
    tm_mmcs_ml2r(Wr, V, U, s->d_in, s->d_out, s->C, &e->mmcs, &e->ml2r, &e->mmcs_std);
    double *norms = malloc((size_t)s->C * sizeof *norms);
    if (norms && tm_component_norms(V, U, s->d_in, s->d_out, s->C, norms) == 0)
        e->big_pieces = tm_count_above(norms, s->C, 0.1);
    free(norms);
    free(Wr);
    return ST_OK;
}

static int probe(const char *model, const struct dc_config *c, struct rt_store *store, int64_t F,
                 const struct dc_site *sites, int ns, struct eval_site *es,
                 const char *probe_path, struct diag *d)
{
    struct dc_prog p = {0};
    struct dc_site *ps = NULL;
    uint32_t *glo = NULL;
    int pns = 0;
    struct rt_prog *rp = NULL;
    float *x = calloc((size_t)(F * F), sizeof *x);
    double *met = NULL;
    int st = x ? build(model, c, F, &p, &ps, &pns, &glo, d) : diag_set(d, ST_ERR_NOMEM, "oom");
    if (!st && pns != ns)
        st = diag_set(d, ST_ERR_INVALID, "probe program has different sites");
    if (!st && !(met = calloc((size_t)p.n_metric + 1, sizeof *met)))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < F; i++)
        x[i * F + i] = 0.75f; /* one-hot inputs of magnitude 0.75 (METHOD §7.3) */
    if (!st)
        st = rt_run_once(&p, cg_default(), store, NULL, x, c->seed, EVAL_STEP, met, &rp, d);
    struct ir_value *dump = st ? NULL : calloc((size_t)ns + 1, sizeof *dump);
    for (int i = 0; !st && i < ns; i++) {
        const float *ci = rt_prog_buf(rp, glo[i]);
        int C = sites[i].C;
        int64_t k = sites[i].d_in < sites[i].d_out ? sites[i].d_in : sites[i].d_out;
        es[i].identity_err = tm_identity_ci_error(ci, F, C, 0.1, TM_PERM_AUTO, NULL);
        es[i].identity_err_0p2 = tm_identity_ci_error(ci, F, C, 0.2, TM_PERM_AUTO, NULL);
        /* dense pattern with k = the matrix's rank (e.g. W_out's one rank-50 component) */
        es[i].dense_err = tm_dense_ci_error(ci, F, C, (int)(k < C ? k : C), 1, 0.1, NULL);
        es[i].probe_l0 = tm_l0(ci, F, C, c->ci_alive_threshold);
        if (dump) { /* the probe's CI matrices, for plots and closer looks */
            dump[i] = (struct ir_value){strdup(sites[i].name), IR_F32, 2, {F, C}, NULL,
                                        (size_t)(F * C) * sizeof(float)};
            dump[i].data = malloc(dump[i].nbytes);
            if (dump[i].data)
                memcpy(dump[i].data, ci, dump[i].nbytes);
            if (!dump[i].name || !dump[i].data)
                st = diag_set(d, ST_ERR_NOMEM, "out of memory");
        }
    }
    if (!st && dump)
        st = npz_write_file(probe_path, dump, ns, d);
    for (int i = 0; dump && i < ns; i++)
        ir_value_free(&dump[i]);
    free(dump);
    rt_prog_free(rp);
    dc_prog_free(&p);
    free(ps);
    free(glo);
    free(x);
    free(met);
    return st;
}

static const char *divergence_name(const struct dc_config *c)
{
    return c->output_loss_type == DC_OUT_KL ? "kl" : "mse";
}

/* {"divergence": "mse", "step_size": 0.1, "steps": {"20": v, ...}} */
static void adversary_json(struct json_w *w, const struct dc_config *c, const double *adv)
{
    json_key(w, "adversarial");
    json_obj_begin(w);
    json_key(w, "divergence");
    json_str(w, divergence_name(c));
    json_key(w, "step_size");
    json_double(w, PDC_PGD_EVAL_STEP_SIZE);
    json_key(w, "init");
    json_str(w, "random, shared across the batch");
    json_key(w, "steps");
    json_obj_begin(w);
    for (int r = 0; r < PDC_PGD_EVAL_ROWS; r++) {
        char k[16];
        snprintf(k, sizeof k, "%d", pdc_pgd_eval_steps[r]);
        json_key(w, k);
        json_double(w, adv[r]);
    }
    json_obj_end(w);
    json_obj_end(w);
}

static void write_json(struct json_w *w, const struct dc_prog *p, const double *met,
                       const struct dc_site *sites, int ns, const struct eval_site *es, int64_t F,
                       const struct pdc_lm_eval *lm, const struct dc_config *c,
                       const double *adv)
{
    json_obj_begin(w);
    json_key(w, "format");
    json_str(w, "pdc-eval-1");
    json_key(w, "metrics");
    json_obj_begin(w);
    for (int i = 0; i < p->n_metric; i++) {
        json_key(w, p->metric[i].name);
        json_double(w, met[i]);
    }
    json_obj_end(w);
    adversary_json(w, c, adv);
    double l0 = 0;
    int64_t alive = 0;
    for (int i = 0; i < ns; i++) {
        l0 += es[i].l0;
        alive += es[i].alive;
    }
    json_key(w, "L0_total");
    json_double(w, l0);
    json_key(w, "alive_total");
    json_int(w, alive);
    json_key(w, "alive_threshold");
    json_double(w, c->ci_alive_threshold);
    json_key(w, "sites");
    json_obj_begin(w);
    for (int i = 0; i < ns; i++) {
        json_key(w, sites[i].name);
        json_obj_begin(w);
        json_key(w, "L0");
        json_double(w, es[i].l0);
        json_key(w, "alive");
        json_int(w, es[i].alive);
        json_key(w, "firing_density");
        json_arr_begin(w);
        for (int k = 0; es[i].density && k < es[i].C; k++)
            json_double(w, es[i].density[k]);
        json_arr_end(w);
        json_key(w, "pieces_above_0.1_of_max_norm");
        json_int(w, es[i].big_pieces);
        json_key(w, "mmcs");
        json_double(w, es[i].mmcs);
        json_key(w, "ml2r");
        json_double(w, es[i].ml2r);
        if (F > 0) {
            json_key(w, "identity_ci_error");
            json_int(w, es[i].identity_err);
            json_key(w, "identity_ci_error_tol0.2");
            json_int(w, es[i].identity_err_0p2);
            json_key(w, "dense_ci_error_k_d_in");
            json_int(w, es[i].dense_err);
            json_key(w, "probe_L0");
            json_double(w, es[i].probe_l0);
        }
        json_obj_end(w);
    }
    json_obj_end(w);
    if (lm)
        pdc_eval_lm_json(w, p, met, lm);
    json_obj_end(w);
}

/* the value of metric "l0/<site>" (for a language model: the mean over every held-out
 * batch), or fallback when the program has none */
static double site_l0(const struct dc_prog *p, const double *met, const char *site,
                      double fallback)
{
    char nm[300];
    snprintf(nm, sizeof nm, "l0/%s", site);
    for (int k = 0; k < p->n_metric; k++)
        if (strcmp(p->metric[k].name, nm) == 0)
            return met[k];
    return fallback;
}

/* L0, alive and the firing densities over every held-out batch */
static void print_lm_sites(const struct dc_site *sites, int ns, const struct eval_site *es,
                           const struct dc_config *c)
{
    double l0 = 0;
    int alive = 0;
    printf("%-32s %9s %6s %6s\n", "site", "L0", "alive", "C");
    for (int i = 0; i < ns; i++) {
        printf("%-32s %9.4f %6d %6d\n", sites[i].name, es[i].l0, es[i].alive, sites[i].C);
        l0 += es[i].l0;
        alive += es[i].alive;
    }
    printf("%-32s %9.4f %6d   (over every held-out batch; alive: fires above CI %g at least "
           "once)\n", "total", l0, alive, c->ci_alive_threshold);
}

static void print_table(const struct dc_prog *p, const double *met, const struct dc_site *sites,
                        int ns, const struct eval_site *es, int64_t F,
                        const struct dc_config *c, const double *adv)
{
    int lm = pdc_eval_lm_active(p); /* language models: the KL/CE table instead */
    if (!lm)
        printf("reconstruction (MSE to the target output):\n");
    for (int i = 0; i < p->n_metric && !lm; i++)
        if (strncmp(p->metric[i].name, "recon/", 6) == 0)
            printf("  %-28s %.6g\n", p->metric[i].name + 6, met[i]);
    printf("adversarial (%s to the target under fresh PGD: shared source, sign steps of %g):\n",
           divergence_name(c), PDC_PGD_EVAL_STEP_SIZE);
    for (int r = 0; r < PDC_PGD_EVAL_ROWS; r++)
        printf("  %3d steps                    %.6g\n", pdc_pgd_eval_steps[r], adv[r]);
    if (lm) { /* ground-truth columns mean nothing for a language model */
        print_lm_sites(sites, ns, es, c);
        return;
    }
    printf("%-24s %8s %6s %7s %8s %8s", "site", "L0", "alive", "pieces", "MMCS", "ML2R");
    if (F > 0)
        printf(" %8s %8s %8s", "id-err", "id@0.2", "dense-k");
    printf("\n");
    double l0 = 0;
    int alive = 0;
    for (int i = 0; i < ns; i++) {
        printf("%-24s %8.4f %6d %7d %8.4f %8.4f", sites[i].name, es[i].l0, es[i].alive,
               es[i].big_pieces, es[i].mmcs, es[i].ml2r);
        if (F > 0)
            printf(" %8lld %8lld %8lld", (long long)es[i].identity_err,
                   (long long)es[i].identity_err_0p2, (long long)es[i].dense_err);
        printf("\n");
        l0 += es[i].l0;
        alive += es[i].alive;
    }
    printf("%-24s %8.4f %6d   (alive: fires above CI %g on the evaluation batch)\n", "total", l0,
           alive, c->ci_alive_threshold);
}

/* firing densities summed over the evaluation batches (divided by their number after) */
struct density_acc {
    const struct dc_prog *p;
    const struct dc_site *sites;
    int ns;
    const uint32_t *glo;
    struct eval_site *es;
    double threshold;
    int64_t batches;
    int oom;
};

static void add_densities(void *ctx, struct rt_prog *rp)
{
    struct density_acc *a = ctx;
    for (int i = 0; i < a->ns; i++) {
        int C = a->sites[i].C;
        int64_t N = ir_numel(&a->p->g->t[a->glo[i]]) / C;
        double *one = malloc((size_t)C * sizeof *one);
        a->oom |= !one;
        if (one)
            tm_firing_density(rt_prog_buf(rp, a->glo[i]), N, C, a->threshold, one);
        for (int k = 0; one && k < C; k++)
            a->es[i].density[k] += one[k];
        free(one);
    }
    a->batches++;
}

/* opt: --data SPEC, --seq T, --tokens u16|u32, --holdout F pairs overriding the run's */
static int evaluate(const char *dir, int nopt, char **opt, struct diag *d)
{
    char model[4096], path[4200];
    struct dc_config c;
    struct rt_store store = {0};
    struct dc_prog p = {0};
    struct dc_site *sites = NULL;
    uint32_t *glo = NULL;
    struct rt_prog *rp = NULL;
    double *met = NULL;
    struct eval_site *es = NULL;
    int ns = 0;
    dc_config_defaults(&c, "spd");
    c.method[0] = '\0'; /* the saved, fully resolved config names its method */
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    int st = pdc_dir_model(dir, model, sizeof model, d);
    if (!st)
        st = pdc_config_load(path, &c, d);
    for (int i = 0; !st && i + 1 < nopt; i += 2)
        if ((st = pdc_data_option(&c, opt[i], opt[i + 1], d)) < 0)
            st = diag_set(d, ST_ERR_INVALID, "eval: unknown option '%s'", opt[i]);
    struct ds_source *src = NULL;
    if (!st)
        st = pdc_open_data(&c, &src, &c, d);
    if (!st && strcmp(c.method, "apd") == 0) { /* no CI function: its own suite */
        st = pdc_eval_apd(dir, model, &c, src, d);
        ds_close(src);
        return st;
    }
    if (!st)
        st = pdc_eval_load_store(dir, &store, d);
    if (!st)
        st = build(model, &c, c.batch_size, &p, &sites, &ns, &glo, d);
    if (!st && (!(met = calloc((size_t)p.n_metric + 1, sizeof *met)) ||
                !(es = calloc((size_t)ns + 1, sizeof *es))))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = rt_run_once(&p, cg_default(), &store, src, NULL, c.seed, EVAL_STEP, met, &rp, d);
    struct pdc_lm_eval lm = {0}; /* language models: every held-out batch, averaged */
    int is_lm = !st && pdc_eval_lm_active(&p);
    struct density_acc acc = {&p, sites, ns, glo, es, c.ci_alive_threshold, 0, 0};
    for (int i = 0; !st && i < ns; i++) {
        const struct ir_tensor *t = &p.g->t[glo[i]];
        int64_t N = ir_numel(t) / sites[i].C;
        es[i].l0 = tm_l0(rt_prog_buf(rp, glo[i]), N, sites[i].C, c.ci_alive_threshold);
        es[i].C = sites[i].C;
        if (!(es[i].density = calloc((size_t)sites[i].C, sizeof *es[i].density)))
            st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    if (!st)
        add_densities(&acc, rp);
    if (is_lm && !st)
        st = pdc_eval_lm_batches(&p, &store, src, c.seed, EVAL_STEP, met, &lm, add_densities,
                                 &acc, d);
    if (!st && acc.oom)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < ns; i++) {
        if (is_lm) /* every held-out batch, as the LM table */
            es[i].l0 = site_l0(&p, met, sites[i].name, es[i].l0);
        for (int k = 0; k < sites[i].C; k++) {
            es[i].density[k] /= (double)acc.batches;
            es[i].alive += es[i].density[k] > 0;
        }
        st = site_ground_truth(dir, &sites[i], p.g, &store, &es[i], d);
    }
    int64_t F = st ? 0 : probe_width(&p);
    if (!st && F > 0 && F <= 4096) {
        snprintf(path, sizeof path, "%s/probe_ci.npz", dir);
        st = probe(model, &c, &store, F, sites, ns, es, path, d);
    } else {
        F = 0;
    }
    double adv[PDC_PGD_EVAL_ROWS] = {0};
    if (!st)
        st = pdc_eval_adversary(model, &c, &store, src, EVAL_STEP, adv, d);
    if (!st) {
        if (is_lm)
            pdc_eval_lm_print(&p, met, &lm);
        print_table(&p, met, sites, ns, es, F, &c, adv);
        struct json_w w;
        json_w_init(&w, 1);
        write_json(&w, &p, met, sites, ns, es, F, is_lm ? &lm : NULL, &c, adv);
        snprintf(path, sizeof path, "%s/eval.json", dir);
        st = json_w_write_file(&w, path, d);
        json_w_free(&w);
    }
    ds_close(src);
    rt_prog_free(rp);
    dc_prog_free(&p);
    rt_store_free(&store);
    free(sites);
    free(glo);
    free(met);
    for (int i = 0; es && i < ns; i++)
        free(es[i].density);
    free(es);
    return st;
}

int pdc_eval_main(int argc, char **argv)
{
    struct diag d = {0};
    char method[32] = "", cfg[4200];
    if (argc >= 1 && argv[0][0] != '-') { /* an L3D decomposition has its own suite */
        snprintf(cfg, sizeof cfg, "%s/config.yaml", argv[0]);
        if (access(cfg, R_OK) == 0 && pdc_config_method(cfg, method, sizeof method, &d) == ST_OK &&
            strcmp(method, "l3d") == 0)
            return pdc_eval_l3d_main(argc, argv);
    }
    if (argc < 1 || argv[0][0] == '-' || argc % 2 == 0) {
        fprintf(stderr, "usage: pdc eval DIR [--data SPEC] [--seq T] [--tokens u16|u32] "
                "[--holdout F]\n");
        return 2;
    }
    if (evaluate(argv[0], argc - 1, argv + 1, &d)) {
        fprintf(stderr, "pdc: %s\n", d.msg);
        return 1;
    }
    return 0;
}
