/* pdc_eval_apd.c — `pdc eval DIR` for an APD decomposition (METHOD §9): APD has no
 * CI function, so the suite is its own:
 *   reconstruction MSE to the target with all components, under the batch top-k mask
 *   of gradient attributions, and with none; the param_match and Schatten losses;
 *   how often each component is selected by top-k (density, alive, per sample);
 *   per site the components' Frobenius norms and, grouping each component's m
 *   columns into P_c = A_c·B_c, MMCS/ML2R (METHOD §7.1) next to the APD paper's
 *   numbers when the target is a TMS shape the paper reports.
 * Components are stored per site with C·m columns (passes/objective_apd.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "pdc_cli.h"
#include "safetensors.h"
#include "target.h"
#include "train.h"

#define EVAL_STEP 0x7fffffff /* the evaluation batch: the key pdc_eval.c uses */

/* what the numbers were produced with (printed and written into eval.json) */
static const char loss_definition[] =
    "APD code form (apd:spd/run_spd.py): param_match = sum_l |W_l - sum_c P_cl|^2 / n_params; "
    "topk_recon = mean((f_topk - f)^2); schatten = sum_l,n,c,k (mask_nc |A_cl[:,k]|^2 "
    "|B_cl[k,:]|^2 + 1e-16)^(p/2) / n_params / N; attributions = sum_o (sum_l <df_o/dy_l, "
    "x_l P_cl>)^2 on the target's forward (f its output, y_l/x_l a site's output/input; "
    "apd:spd/utils.py calc_grad_attributions: no sqrt, no 1/d_L); batch top-k int(topk*N)";

struct paper_row { /* S-APDmd table (METHOD §7.6): TMS shapes [features, hidden] */
    int64_t d_in, d_out;
    const char *name;
    double mmcs, mmcs_pm, ml2r, ml2r_pm;
};
static const struct paper_row paper[] = {
    {5, 2, "TMS 5-2", 0.998, 0.000, 0.893, 0.004},
    {40, 10, "TMS 40-10", 0.996, 0.003, 0.935, 0.001},
};

struct apd_site_eval {
    double mmcs, ml2r, mmcs_std;
    int pieces;       /* components with ‖P_c‖_F above 0.1 of the largest */
    double *norm;     /* ‖P_c‖_F per component */
};

/* P_c = Σ_k V[:, c·m+k] U[c·m+k, :] into p [d_in, d_out] */
static void component(const float *V, const float *U, int64_t din, int64_t dout, int cm, int c,
                      int m, double *p)
{
    for (int64_t i = 0; i < din; i++)
        for (int64_t o = 0; o < dout; o++) {
            double s = 0;
            for (int k = c * m; k < (c + 1) * m; k++)
                s += (double)V[i * cm + k] * (double)U[(int64_t)k * dout + o];
            p[i * dout + o] = s;
        }
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* MMCS / ML2R over the rows j of Wr (TMS linear1: rows = features), signed cosine,
 * ties to the lowest c, zero pieces cosine 0, zero rows skipped (as tm_mmcs_ml2r) */
static void mmcs_ml2r(const double *Wr, const double *P, int64_t din, int64_t dout, int C,
                      struct apd_site_eval *e)
{
    double sum = 0, sum2 = 0, sumr = 0;
    int64_t used = 0;
    for (int64_t j = 0; j < din; j++) {
        const double *w = Wr + j * dout;
        double nw = sqrt(dot(w, w, dout)), best = -2, ratio = 0;
        if (nw == 0)
            continue;
        for (int c = 0; c < C; c++) {
            const double *p = P + ((int64_t)c * din + j) * dout;
            double np = sqrt(dot(p, p, dout));
            double cs = np > 0 ? dot(p, w, dout) / (np * nw) : 0.0;
            if (cs > best) {
                best = cs;
                ratio = np / nw;
            }
        }
        sum += best;
        sum2 += best * best;
        sumr += ratio;
        used++;
    }
    e->mmcs = used ? sum / (double)used : (double)NAN;
    e->ml2r = used ? sumr / (double)used : (double)NAN;
    e->mmcs_std = used > 1 ? sqrt(fmax(0.0, (sum2 - sum * sum / (double)used) / (double)(used - 1)))
                           : (double)NAN;
}

static int site_eval(const char *dir, const struct dc_config *c, const struct dc_site *s,
                     const struct ir_graph *g, struct rt_store *store, struct apd_site_eval *e,
                     struct diag *d)
{
    const float *Vd, *Ud;
    int m = dc_apd_rank(c, s), C = s->C / m;
    int64_t din = s->d_in, dout = s->d_out;
    int st = pdc_eval_site_factors(dir, store, s, &Vd, &Ud, d);
    if (st)
        return st;
    float *Wf = pdc_eval_site_weight(s, g, d);
    double *Wr = malloc((size_t)(din * dout) * sizeof *Wr);
    double *P = malloc((size_t)(C * din * dout) * sizeof *P);
    e->norm = calloc((size_t)C, sizeof *e->norm);
    if (!Wf || !Wr || !P || !e->norm) {
        if (Wf)
            diag_set(d, ST_ERR_NOMEM, "out of memory");
        free(Wf);
        free(Wr);
        free(P);
        return d->status;
    }
    for (int64_t i = 0; i < din * dout; i++)
        Wr[i] = Wf[i];
    free(Wf);
    double mx = 0;
    for (int k = 0; k < C; k++) {
        double *p = P + (int64_t)k * din * dout;
        component(Vd, Ud, din, dout, s->C, k, m, p);
        e->norm[k] = sqrt(dot(p, p, din * dout));
        mx = fmax(mx, e->norm[k]);
    }
    for (int k = 0; k < C; k++)
        e->pieces += e->norm[k] > 0.1 * mx;
    mmcs_ml2r(Wr, P, din, dout, C, e);
    free(Wr);
    free(P);
    return ST_OK;
}

struct apd_eval {
    const struct dc_config *c;
    struct dc_prog p;
    struct dc_site *sites;
    int ns;
    uint32_t mask;
    double *met;
    double *density;  /* per component: fraction of positions where top-k selects it */
    int C, alive;
    int64_t N;
    double per_sample;
    struct apd_site_eval *es;
};

static int build(const char *model, const struct dc_config *c, struct apd_eval *x,
                 struct diag *d)
{
    struct ir_graph *g;
    struct dc_factor *fac = NULL;
    int nf = 0;
    int st = pdc_compiled_model(model, c, &g, d);
    if (st)
        return st;
    st = dc_select_sites(g, c, &x->sites, &x->ns, &fac, &nf, d);
    if (!st)
        st = dc_apd_sites(c, x->sites, x->ns, fac, nf, d);
    if (!st)
        st = dc_build_apd_eval(g, c, x->sites, x->ns, fac, nf, &x->p, &x->mask, d);
    if (!x->p.g)
        ir_graph_free(g);
    free(fac);
    return st;
}

/* selection statistics of the top-k mask [N, C] */
static int mask_stats(struct rt_prog *rp, struct apd_eval *x)
{
    const float *mk = rt_prog_buf(rp, x->mask);
    x->C = x->sites[0].C / dc_apd_rank(x->c, &x->sites[0]);
    x->N = ir_numel(&x->p.g->t[x->mask]) / x->C;
    if (!mk || !(x->density = calloc((size_t)x->C, sizeof *x->density)))
        return ST_ERR_NOMEM;
    double tot = 0;
    for (int64_t n = 0; n < x->N; n++)
        for (int k = 0; k < x->C; k++)
            x->density[k] += (double)mk[n * x->C + k];
    for (int k = 0; k < x->C; k++) {
        tot += x->density[k];
        x->density[k] /= (double)x->N;
        x->alive += x->density[k] > 0;
    }
    x->per_sample = tot / (double)x->N;
    return ST_OK;
}

static double metric(const struct apd_eval *x, const char *name)
{
    for (int i = 0; i < x->p.n_metric; i++)
        if (strcmp(x->p.metric[i].name, name) == 0)
            return x->met[i];
    return (double)NAN;
}

/* the paper's row for this target: the first site's [d_in, d_out] is a TMS shape */
static const struct paper_row *paper_for(const struct apd_eval *x)
{
    for (size_t i = 0; i < sizeof paper / sizeof *paper; i++)
        if (x->sites[0].d_in == paper[i].d_in && x->sites[0].d_out == paper[i].d_out)
            return &paper[i];
    return NULL;
}

static void print_report(const struct apd_eval *x)
{
    const struct dc_config *c = x->c;
    printf("APD: C = %d components spanning %d sites, batch top-k %g (%lld of %lld x %d kept)\n",
           x->C, x->ns, c->apd.topk, (long long)dc_apd_topk_count(c->apd.topk, x->N, x->N * x->C), (long long)x->N,
           x->C);
    printf("loss definition: %s\n", loss_definition);
    printf("reconstruction (MSE to the target output):\n");
    for (int i = 0; i < x->p.n_metric; i++)
        if (strncmp(x->p.metric[i].name, "recon/", 6) == 0)
            printf("  %-28s %.6g\n", x->p.metric[i].name + 6, x->met[i]);
    printf("losses: param_match %.6g, schatten %.6g\n", metric(x, "loss/param_match"),
           metric(x, "loss/schatten"));
    printf("top-k selection: %.4f components per sample; %d of %d selected at least once\n",
           x->per_sample, x->alive, x->C);
    printf("%-24s %6s %6s %8s %8s %8s\n", "site", "m", "pieces", "MMCS", "+-", "ML2R");
    for (int i = 0; i < x->ns; i++)
        printf("%-24s %6d %6d %8.4f %8.4f %8.4f\n", x->sites[i].name,
               dc_apd_rank(c, &x->sites[i]), x->es[i].pieces, x->es[i].mmcs, x->es[i].mmcs_std,
               x->es[i].ml2r);
    const struct paper_row *pr = paper_for(x);
    if (pr)
        printf("%s, site %s: measured MMCS %.4f, ML2R %.4f; APD paper (S-APDmd) MMCS %.3f +- "
               "%.3f, ML2R %.3f +- %.3f\n", pr->name, x->sites[0].name, x->es[0].mmcs,
               x->es[0].ml2r, pr->mmcs, pr->mmcs_pm, pr->ml2r, pr->ml2r_pm);
}

static void write_sites(struct json_w *w, const struct apd_eval *x)
{
    json_key(w, "sites");
    json_obj_begin(w);
    for (int i = 0; i < x->ns; i++) {
        json_key(w, x->sites[i].name);
        json_obj_begin(w);
        json_key(w, "m");
        json_int(w, dc_apd_rank(x->c, &x->sites[i]));
        json_key(w, "component_norms");
        json_arr_begin(w);
        for (int k = 0; k < x->C; k++)
            json_double(w, x->es[i].norm[k]);
        json_arr_end(w);
        json_key(w, "pieces_above_0.1_of_max_norm");
        json_int(w, x->es[i].pieces);
        json_key(w, "mmcs");
        json_double(w, x->es[i].mmcs);
        json_key(w, "mmcs_std");
        json_double(w, x->es[i].mmcs_std);
        json_key(w, "ml2r");
        json_double(w, x->es[i].ml2r);
        json_obj_end(w);
    }
    json_obj_end(w);
}

static void write_json(struct json_w *w, const struct apd_eval *x)
{
    json_obj_begin(w);
    json_key(w, "format");
    json_str(w, "pdc-eval-1");
    json_key(w, "method");
    json_str(w, "apd");
    json_key(w, "loss_definition");
    json_str(w, loss_definition);
    json_key(w, "metrics");
    json_obj_begin(w);
    for (int i = 0; i < x->p.n_metric; i++) {
        json_key(w, x->p.metric[i].name);
        json_double(w, x->met[i]);
    }
    json_obj_end(w);
    json_key(w, "components_per_sample");
    json_double(w, x->per_sample);
    json_key(w, "alive_total");
    json_int(w, x->alive);
    json_key(w, "selection_density");
    json_arr_begin(w);
    for (int k = 0; k < x->C; k++)
        json_double(w, x->density[k]);
    json_arr_end(w);
    write_sites(w, x);
    const struct paper_row *pr = paper_for(x);
    json_key(w, "paper");
    if (pr) {
        json_obj_begin(w);
        json_key(w, "setting");
        json_str(w, pr->name);
        json_key(w, "source");
        json_str(w, "S-APDmd (METHOD.md 7.6)");
        json_key(w, "mmcs");
        json_double(w, pr->mmcs);
        json_key(w, "ml2r");
        json_double(w, pr->ml2r);
        json_obj_end(w);
    } else {
        json_null(w);
    }
    json_obj_end(w);
}

static void apd_eval_free(struct apd_eval *x)
{
    dc_prog_free(&x->p);
    for (int i = 0; x->es && i < x->ns; i++)
        free(x->es[i].norm);
    free(x->es);
    free(x->sites);
    free(x->met);
    free(x->density);
}

int pdc_eval_apd(const char *dir, const char *model, const struct dc_config *c,
                 struct ds_source *src, struct diag *d)
{
    struct apd_eval x = {.c = c};
    struct rt_store store = {0};
    struct rt_prog *rp = NULL;
    char path[4200];
    int st = pdc_eval_load_store(dir, &store, d);
    if (!st)
        st = build(model, c, &x, d);
    if (!st && (!(x.met = calloc((size_t)x.p.n_metric + 1, sizeof *x.met)) ||
                !(x.es = calloc((size_t)x.ns, sizeof *x.es))))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = rt_run_once(&x.p, cg_default(), &store, src, NULL, c->seed, EVAL_STEP, x.met, &rp, d);
    if (!st && mask_stats(rp, &x))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < x.ns; i++)
        st = site_eval(dir, c, &x.sites[i], x.p.g, &store, &x.es[i], d);
    if (!st) {
        print_report(&x);
        struct json_w w;
        json_w_init(&w, 1);
        write_json(&w, &x);
        snprintf(path, sizeof path, "%s/eval.json", dir);
        st = json_w_write_file(&w, path, d);
        json_w_free(&w);
    }
    rt_prog_free(rp);
    rt_store_free(&store);
    apd_eval_free(&x);
    return st;
}
