/* pdc_eval_l3d.c — evaluating and using an L3D decomposition (METHOD §8.5, §8.8–8.10).
 *   pdc eval DIR [--batches N] [--impact] [--coeffs A.npy] [--data SPEC]
 *     reconstruction error in both loss definitions over N evaluation batches (each
 *     with its top-k mask, as the code logs it), P_act per subnetwork, the norm of every
 *     subnetwork in every tensor, the impact on the one-hot probe 0.75·I (which feature
 *     each subnetwork serves), for circuit toys the coefficient recovery against A
 *     (MODEL.coeffs.npy, METHOD §8.9), and the paper's numbers next to them; --impact
 *     writes DIR/impact.npy, I(x_i, v_k) on the first evaluation batch. DIR/eval.json.
 *   pdc intervene DIR --subnet K --delta D --data X.npy [-o OUT.npz]
 *     the model with every decomposed tensor moved to W + D·v_K (V_out's unit direction),
 *     run on X; prints the mean |Δy| per output against the unmodified model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "io.h"
#include "pdc_cli.h"
#include "target.h"
#include "train.h"

#define EVAL_STEP 0x7fffffffll /* as pdc_eval.c: a step no training run reaches */
#define IMPACT_RUNS 32       /* references averaged per impact (§8.9's n_j) */
#define MAX_T 64

#define MAX_MODES 5

/* one decomposed tensor's V_out pieces in the store: the Tucker core (absent for CP) and
 * one factor [n, R_m, dim_m] per mode of the tensor (l3d.<name>.out.f<m>) */
struct l3d_t {
    char name[256];
    const struct rt_store_item *core, *f[MAX_MODES];
    int nmode;
    int64_t nv, R[MAX_MODES], numel, dims[MAX_MODES];
};

static int find_tensors(struct rt_store *s, struct l3d_t *t, int *n, struct diag *d)
{
    *n = 0;
    for (int i = 0; i < s->n && *n < MAX_T; i++) {
        const char *nm = s->items[i].name;
        size_t len = strlen(nm);
        if (strncmp(nm, "l3d.", 4) != 0 || len < 12 || strcmp(nm + len - 7, ".out.f0") != 0)
            continue;
        struct l3d_t *x = &t[(*n)++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%.*s", (int)(len - 11), nm + 4);
        char k[300];
        snprintf(k, sizeof k, "l3d.%s.out.core", x->name);
        x->core = rt_store_find(s, k);
        x->numel = 1;
        for (int m = 0; m < MAX_MODES; m++) {
            snprintf(k, sizeof k, "l3d.%s.out.f%d", x->name, m);
            if (!(x->f[m] = rt_store_find(s, k)))
                break;
            x->nmode = m + 1;
            x->R[m] = x->f[m]->dims[1];
            x->dims[m] = x->f[m]->dims[2];
            x->numel *= x->dims[m];
        }
        x->nv = x->f[0]->dims[0];
    }
    return *n ? ST_OK : diag_set(d, ST_ERR_INVALID, "no L3D factors in components.safetensors");
}

/* "[5, 1, 2]" into buf */
static const char *dims_str(int rank, const int64_t *dims, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

/* item it (NULL: missing) must be float32 of the given dims */
static int check_item(const char *dir, const char *name, const struct rt_store_item *it, int rank,
                      const int64_t *dims, struct diag *d)
{
    char want[160], have[160];
    dims_str(rank, dims, want, sizeof want);
    if (!it)
        return diag_set(d, ST_ERR_SHAPE, "%s/components.safetensors: no '%s' (expected float32 %s)",
                        dir, name, want);
    int ok = it->dtype == IR_F32 && it->rank == rank;
    for (int i = 0; ok && i < rank; i++)
        ok = it->dims[i] == dims[i];
    if (ok)
        return ST_OK;
    return diag_set(d, ST_ERR_SHAPE, "%s/components.safetensors: '%s' is %s %s, expected float32 %s",
                    dir, name, ir_dtype_name(it->dtype), dims_str(it->rank, it->dims, have, sizeof have),
                    want);
}

/* The V_out pieces of every tensor against the model tensor it decomposes and the DIR's
 * config (an untrusted file: subnet_tensor indexes the items by these dims): per mode m
 * of the model tensor, f<m> float32 [n_subnetworks, R, dim_m] with R = rank (bias_rank
 * for a vector), no further factor; the Tucker core float32 [n_subnetworks, R, .., R],
 * none for CP (its core is the fixed superdiagonal of ones). */
static int check_tensors(const char *dir, const char *model, const struct dc_config *c,
                         struct rt_store *s, const struct l3d_t *t, int nt, struct diag *d)
{
    struct dc_config cb = *c;
    struct ir_graph *g;
    int st = pdc_compiled_model(model, &cb, &g, d);
    if (st)
        return st;
    for (int j = 0; !st && j < nt; j++) {
        const struct l3d_t *x = &t[j];
        uint32_t w = ir_tensor_find(g, x->name);
        const struct ir_tensor *W = w == IR_NONE ? NULL : &g->t[w];
        char k[300];
        if (!W || !W->data || W->dtype != IR_F32 || W->rank < 1 || W->rank > MAX_MODES) {
            st = diag_set(d, ST_ERR_SHAPE, "%s/components.safetensors: 'l3d.%s.out.f0' names "
                          "no float initializer of %s with 1 to %d dims", dir, x->name, model,
                          MAX_MODES);
            break;
        }
        int64_t R = W->rank == 1 ? c->l3d.bias_rank : c->l3d.rank, nv = c->l3d.n_subnets;
        int64_t core[1 + MAX_MODES] = {nv};
        for (int m = 0; !st && m < W->rank; m++) {
            int64_t fd[3] = {nv, R, W->dims[m]};
            snprintf(k, sizeof k, "l3d.%s.out.f%d", x->name, m);
            st = check_item(dir, k, x->f[m], 3, fd, d);
            core[1 + m] = R;
        }
        snprintf(k, sizeof k, "l3d.%s.out.f%d", x->name, W->rank);
        if (!st && rt_store_find(s, k))
            st = diag_set(d, ST_ERR_SHAPE, "%s/components.safetensors: '%s': '%s' in %s has "
                          "only %d dims", dir, k, x->name, model, W->rank);
        snprintf(k, sizeof k, "l3d.%s.out.core", x->name);
        if (!st && c->l3d.cp && x->core)
            st = diag_set(d, ST_ERR_SHAPE, "%s/components.safetensors: '%s', but the config "
                          "says factors: cp (no trained core)", dir, k);
        if (!st && !c->l3d.cp)
            st = check_item(dir, k, x->core, 1 + W->rank, core, d);
    }
    ir_graph_free(g);
    return st;
}

/* v_k of tensor t into out[numel] in the tensor's row-major layout: Σ over core entries
 * (r_0..r_{d-1}) of K[k, r..] Π_m F_m[k, r_m, i_m] (CP: K the superdiagonal ones) */
static void subnet_tensor(const struct l3d_t *t, int64_t k, float *out)
{
    int d = t->nmode;
    int64_t ncore = 1;
    for (int m = 0; m < d; m++)
        ncore *= t->R[m];
    memset(out, 0, (size_t)t->numel * sizeof *out);
    for (int64_t c = 0; c < ncore; c++) {
        int64_t r[MAX_MODES], rest = c;
        int diag = 1;
        for (int m = d - 1; m >= 0; m--)
            r[m] = rest % t->R[m], rest /= t->R[m];
        for (int m = 1; m < d; m++)
            diag &= r[m] == r[0];
        double kc = t->core ? (double)((const float *)t->core->data)[k * ncore + c] : diag;
        for (int64_t e = 0; kc != 0.0 && e < t->numel; e++) {
            int64_t i = e;
            double prod = kc;
            for (int m = d - 1; m >= 0; m--) {
                int64_t dim = t->f[m]->dims[2];
                prod *= (double)((const float *)t->f[m]->data)[(k * t->R[m] + r[m]) * dim + i % dim];
                i /= dim;
            }
            out[e] += (float)prod;
        }
    }
}

static double frob(const float *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)v[i] * (double)v[i];
    return sqrt(s);
}

struct l3d_eval {
    struct dc_config c;
    char model[4096], dir[4096], coeffs[4200];
    struct rt_store store;
    struct ds_source *src;
    struct l3d_t t[MAX_T];
    int nt, impact;
    int64_t batches;
    double recon_sq, recon_rel, kept, *p_act;
    double *probe;           /* [F, nv] mean impact on the one-hot probe, or NULL */
    int64_t F;
    double coef_r;           /* Pearson r of the recovered coefficients (NAN: not a circuit toy) */
    double coef_r_target;    /* the same r with the target's own rows of W_in·W_out: the ceiling */
};

static int build_eval(struct l3d_eval *e, int64_t batch, struct dc_prog *p, struct diag *d)
{
    struct dc_config cb = e->c;
    cb.batch_size = batch;
    struct ir_graph *g;
    int st = pdc_compiled_model(e->model, &cb, &g, d);
    if (!st && (st = dc_build_l3d_eval(g, &cb, p, d)) && !p->g)
        ir_graph_free(g);
    return st;
}

static uint32_t tap(const struct dc_prog *p, const char *name)
{
    for (int i = 0; i < p->n_tap; i++)
        if (strcmp(p->tap[i].name, name) == 0)
            return p->tap[i].t;
    return IR_NONE;
}

static double metric(const struct dc_prog *p, const double *m, const char *name)
{
    for (int i = 0; i < p->n_metric; i++)
        if (strcmp(p->metric[i].name, name) == 0)
            return m[i];
    return NAN;
}

/* the mean over evaluation batches of each batch's ratio (the code's logged form) */
static int recon_batches(struct l3d_eval *e, struct diag *d)
{
    struct dc_prog p = {0};
    int st = build_eval(e, e->c.batch_size, &p, d);
    double *m = calloc((size_t)p.n_metric + 1, sizeof *m);
    int nv = e->c.l3d.n_subnets;
    e->p_act = calloc((size_t)nv, sizeof *e->p_act);
    if (!st && (!m || !e->p_act))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; !st && k < e->batches; k++) {
        struct rt_prog *rp;
        st = rt_run_once(&p, cg_default(), &e->store, e->src, NULL, e->c.seed,
                         EVAL_STEP + k, m, &rp, d);
        if (st)
            break;
        e->recon_sq += metric(&p, m, "l3d/recon_sq") / (double)e->batches;
        e->recon_rel += metric(&p, m, "l3d/recon_rel") / (double)e->batches;
        e->kept += metric(&p, m, "l3d/kept") / (double)e->batches;
        const float *keep = rt_prog_buf(rp, tap(&p, "l3d.keep"));
        int64_t B = e->c.batch_size;
        for (int64_t i = 0; i < B * nv; i++)
            e->p_act[i % nv] += (double)keep[i] / (double)(B * e->batches);
        rt_prog_free(rp);
    }
    free(m);
    dc_prog_free(&p);
    return st;
}

/* I(x_i, v_k) = mean over IMPACT_RUNS reference draws of |A_ik| for the given rows x */
static int impact(struct l3d_eval *e, const float *x, int64_t B, double *out, struct diag *d)
{
    struct dc_prog p = {0};
    int st = build_eval(e, B, &p, d);
    double *m = calloc((size_t)p.n_metric + 1, sizeof *m);
    int64_t n = B * e->c.l3d.n_subnets;
    if (!st && !m)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    memset(out, 0, (size_t)n * sizeof *out);
    for (int r = 0; !st && r < IMPACT_RUNS; r++) {
        struct rt_prog *rp;
        if ((st = rt_run_once(&p, cg_default(), &e->store, NULL, x, e->c.seed, EVAL_STEP + r, m,
                              &rp, d)))
            break;
        const float *A = rt_prog_buf(rp, tap(&p, "l3d.A"));
        for (int64_t i = 0; i < n; i++)
            out[i] += fabs((double)A[i]) / IMPACT_RUNS;
        rt_prog_free(rp);
    }
    free(m);
    dc_prog_free(&p);
    return st;
}

/* the one-hot probe 0.75·I (toy-shaped models: one input [batch, F]), tiled over the
 * evaluation batch (row i is feature i mod F; references come from the same rows) */
static int probe(struct l3d_eval *e, struct diag *d)
{
    struct ir_graph *g;
    int st = pdc_compiled_model(e->model, &e->c, &g, d);
    if (st)
        return st;
    const struct ir_tensor *x = &g->t[g->inputs[0]];
    e->F = x->rank == 2 && x->dtype == IR_F32 ? x->dims[1] : 0;
    ir_graph_free(g);
    int64_t B = e->c.batch_size, nv = e->c.l3d.n_subnets;
    if (e->F < 2 || e->F > B)
        return ST_OK;
    float *xv = calloc((size_t)(B * e->F), sizeof *xv);
    double *I = calloc((size_t)(B * nv), sizeof *I);
    e->probe = calloc((size_t)(e->F * nv), sizeof *e->probe);
    if (!xv || !I || !e->probe)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < B; i++)
        xv[i * e->F + i % e->F] = 0.75f;
    if (!st)
        st = impact(e, xv, B, I, d);
    for (int64_t i = 0; !st && i < B; i++)
        for (int64_t k = 0; k < nv; k++)
            e->probe[(i % e->F) * nv + k] += I[i * nv + k];
    free(xv);
    free(I);
    return st;
}

static const struct l3d_t *tensor_named(const struct l3d_eval *e, const char *name)
{
    for (int i = 0; i < e->nt; i++)
        if (strcmp(e->t[i].name, name) == 0)
            return &e->t[i];
    return NULL;
}

static double pearson(const double *x, const double *y, int64_t n)
{
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++)
        mx += x[i] / (double)n, my += y[i] / (double)n;
    for (int64_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy + 1e-300);
}

/* the target's W_in·W_out [F, O] into T (NaN when the model has no such pair) */
static void target_product(const struct l3d_eval *e, int64_t F, int64_t H, int64_t O, double *T)
{
    struct ir_graph *g;
    struct diag d = {0};
    T[0] = NAN;
    if (pdc_compiled_model(e->model, &e->c, &g, &d))
        return;
    uint32_t wi = ir_tensor_find(g, "W_in"), wo = ir_tensor_find(g, "W_out");
    if (wi != IR_NONE && wo != IR_NONE && g->t[wi].data && g->t[wo].data &&
        ir_numel(&g->t[wi]) == F * H && ir_numel(&g->t[wo]) == H * O) {
        const float *a = g->t[wi].data, *b = g->t[wo].data;
        for (int64_t i = 0; i < F; i++)
            for (int64_t j = 0; j < O; j++) {
                double s = 0;
                for (int64_t h = 0; h < H; h++)
                    s += (double)a[i * H + h] * (double)b[h * O + j];
                T[i * O + j] = s;
            }
    }
    ir_graph_free(g);
}

/* METHOD §8.9, the notebook's recovery: M_k = W_in^(k)·W_out^(k); its row i* of largest
 * |row sum| against row i* of A, pooled over subnetworks: Pearson r. Next to it the same
 * r for the target's own rows i* of W_in·W_out: a target with H < F hidden units holds
 * only a rank-H approximation of A, so how well it does depends on the draw of A, and a
 * decomposition can recover only what the target holds. */
static int coefficients(struct l3d_eval *e, struct diag *d)
{
    e->coef_r = e->coef_r_target = NAN;
    const struct l3d_t *wi = tensor_named(e, "W_in"), *wo = tensor_named(e, "W_out");
    if (!e->coeffs[0] || access(e->coeffs, R_OK) != 0 || !wi || !wo)
        return ST_OK;
    struct ir_value A;
    int st = npy_read_file(e->coeffs, &A, d);
    int64_t F = wi->dims[0], H = wi->dims[1], O = wo->dims[1];
    if (!st && (A.dtype != IR_F32 || A.rank != 2 || A.dims[0] != F || A.dims[1] != O ||
                wo->dims[0] != H))
        st = diag_set(d, ST_ERR_SHAPE, "%s: expected float32 [%lld, %lld]", e->coeffs,
                      (long long)F, (long long)O);
    int64_t nv = wi->nv, n = 0;
    float *a = malloc((size_t)(F * H) * sizeof *a), *b = malloc((size_t)(H * O) * sizeof *b);
    double *xs = malloc((size_t)(nv * O) * sizeof *xs), *ys = malloc((size_t)(nv * O) * sizeof *ys);
    double *M = malloc((size_t)(F * O) * sizeof *M), *T = calloc((size_t)(F * O), sizeof *T);
    double *ts = malloc((size_t)(nv * O) * sizeof *ts);
    if (!st && (!a || !b || !xs || !ys || !M || !T || !ts))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        target_product(e, F, H, O, T);
    for (int64_t k = 0; !st && k < nv; k++) {
        subnet_tensor(wi, k, a);
        subnet_tensor(wo, k, b);
        int64_t best = 0;
        double bs = -1;
        for (int64_t i = 0; i < F; i++) {
            double rs = 0;
            for (int64_t j = 0; j < O; j++) {
                double s = 0;
                for (int64_t h = 0; h < H; h++)
                    s += (double)a[i * H + h] * (double)b[h * O + j];
                M[i * O + j] = s;
                rs += s;
            }
            if (fabs(rs) > bs)
                bs = fabs(rs), best = i;
        }
        for (int64_t j = 0; j < O; j++, n++) {
            xs[n] = M[best * O + j];
            ys[n] = ((const float *)A.data)[best * O + j];
            ts[n] = T[best * O + j];
        }
    }
    if (!st) {
        e->coef_r = pearson(xs, ys, n);
        if (!isnan(T[0]))
            e->coef_r_target = pearson(ts, ys, n);
    }
    free(a), free(b), free(xs), free(ys), free(M), free(T), free(ts);
    if (A.data)
        ir_value_free(&A);
    return st;
}

/* --impact: I(x_i, v_k) on the first evaluation batch, into DIR/impact.npy [B, nv] */
static int impact_file(struct l3d_eval *e, struct diag *d)
{
    struct ir_graph *g;
    int st = pdc_compiled_model(e->model, &e->c, &g, d);
    if (st)
        return st;
    struct ir_tensor x = g->t[g->inputs[0]];
    ir_graph_free(g);
    int64_t B = x.dims[0], nv = e->c.l3d.n_subnets;
    float *xv = malloc((size_t)ir_numel(&x) * sizeof *xv);
    double *I = malloc((size_t)(B * nv) * sizeof *I);
    float *If = malloc((size_t)(B * nv) * sizeof *If);
    if (!xv || !I || !If)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = ds_eval_batch(e->src, xv, &x, e->c.seed, EVAL_STEP, d);
    if (!st)
        st = impact(e, xv, B, I, d);
    for (int64_t i = 0; !st && i < B * nv; i++)
        If[i] = (float)I[i];
    struct ir_value v = {.dtype = IR_F32, .rank = 2, .dims = {B, nv}, .data = If,
                         .nbytes = (size_t)(B * nv) * sizeof(float)};
    char path[4200];
    snprintf(path, sizeof path, "%s/impact.npy", e->dir);
    if (!st && !(st = npy_write_file(path, &v, d))) {
        printf("impact I(x, v_k) (|V_in·∇D| over %d references) on %lld samples -> %s\n"
               "  mean per subnetwork:", IMPACT_RUNS, (long long)B, path);
        for (int64_t k = 0; k < nv; k++) {
            double s = 0;
            for (int64_t i = 0; i < B; i++)
                s += I[i * nv + k] / (double)B;
            printf(" %.4g", s);
        }
        printf("\n");
    }
    free(xv), free(I), free(If);
    return st;
}

/* which subnetwork serves each probe feature (largest impact) and how many distinct */
static int feature_map(const struct l3d_eval *e, int *best)
{
    int nv = e->c.l3d.n_subnets, distinct = 0;
    for (int64_t f = 0; f < e->F; f++) {
        best[f] = 0;
        for (int k = 1; k < nv; k++)
            if (e->probe[f * nv + k] > e->probe[f * nv + best[f]])
                best[f] = k;
        int seen = 0;
        for (int64_t g = 0; g < f; g++)
            seen |= best[g] == best[f];
        distinct += !seen;
    }
    return distinct;
}

static void print_report(const struct l3d_eval *e, const int *best, int distinct)
{
    const struct dc_l3d *o = &e->c.l3d;
    printf("L3D decomposition: %d subnetworks, rank %d (bias %d), %s factors, top-k %.3g (%s)\n",
           o->n_subnets, o->rank, o->bias_rank, o->cp ? "CP" : "Tucker", o->top_k,
           o->topk_exact ? "paper: ceil(k n)" : "code: floor(k n) + 1");
    printf("reconstruction error over %lld evaluation batches of %lld (trained on the %s loss):\n"
           "  code  sum_i |G_i - G^_i|^2 / sum_i |G_i|^2   %.4f   (paper: TMS 0.19, TMCS 0.064, "
           "X->X^2 0.32; METHOD §8.10, most likely this metric)\n"
           "  paper mean_i |G_i - G^_i| / |G_i|            %.4f\n"
           "  entries kept by top-k: %.4f of samples x subnetworks\n",
           (long long)e->batches, (long long)e->c.batch_size, o->loss ? "paper" : "code",
           e->recon_sq, e->recon_rel, e->kept);
    printf("%-4s %-8s", "k", "P_act");
    for (int j = 0; j < e->nt; j++)
        printf(" %12.12s", e->t[j].name);
    printf("\n");
    float *v = malloc(4096 * 64 * sizeof *v);
    for (int k = 0; v && k < o->n_subnets; k++) {
        printf("%-4d %-8.4f", k, e->p_act[k]);
        for (int j = 0; j < e->nt; j++) {
            if (e->t[j].numel > 4096 * 64)
                continue;
            subnet_tensor(&e->t[j], k, v);
            printf(" %12.4f", frob(v, e->t[j].numel));
        }
        printf("\n");
    }
    free(v);
    if (e->probe) {
        printf("one-hot probe 0.75·I: feature -> subnetwork of largest impact:");
        for (int64_t f = 0; f < e->F; f++)
            printf(" %lld->%d", (long long)f, best[f]);
        printf("\n  %d distinct subnetworks for %lld features\n", distinct, (long long)e->F);
    }
    if (!isnan(e->coef_r))
        printf("coefficient recovery vs A (%s): Pearson r %.4f, r^2 %.4f   (paper: 0.92, "
               "which the notebook computes as r; METHOD §8.9)\n", e->coeffs, e->coef_r,
               e->coef_r * e->coef_r);
    if (!isnan(e->coef_r_target))
        printf("  the target's own rows of W_in·W_out vs A, same rows: r %.4f (what the "
               "rank-limited target holds of this draw of A)\n", e->coef_r_target);
}

static void json_num(struct json_w *w, const char *k, double v)
{
    json_key(w, k);
    if (isnan(v))
        json_null(w);
    else
        json_double(w, v);
}

static int write_json(const struct l3d_eval *e, const int *best, int distinct, struct diag *d)
{
    struct json_w w;
    json_w_init(&w, 1);
    json_obj_begin(&w);
    json_key(&w, "method");
    json_str(&w, "l3d");
    json_key(&w, "loss_definition");
    json_str(&w, e->c.l3d.loss ? "paper: mean_i |G_i - G^_i| / |G_i|"
                               : "code: sum_i |G_i - G^_i|^2 / sum_i |G_i|^2");
    json_key(&w, "metrics");
    json_obj_begin(&w);
    json_num(&w, "l3d/recon_sq", e->recon_sq);
    json_num(&w, "l3d/recon_rel", e->recon_rel);
    json_num(&w, "l3d/kept", e->kept);
    json_num(&w, "l3d/coef_pearson_r", e->coef_r);
    json_num(&w, "l3d/coef_r2", e->coef_r * e->coef_r);
    json_num(&w, "l3d/coef_pearson_r_target", e->coef_r_target);
    json_key(&w, "l3d/probe_distinct_subnetworks");
    json_int(&w, e->probe ? distinct : -1);
    json_obj_end(&w);
    json_key(&w, "paper");
    json_obj_begin(&w);
    json_num(&w, "tms_recon", 0.19);
    json_num(&w, "tmcs_recon", 0.064);
    json_num(&w, "tmcs_coef_r", 0.92);
    json_num(&w, "square_recon", 0.32);
    json_obj_end(&w);
    json_key(&w, "p_act");
    json_arr_begin(&w);
    for (int k = 0; k < e->c.l3d.n_subnets; k++)
        json_double(&w, e->p_act[k]);
    json_arr_end(&w);
    json_key(&w, "probe_feature_subnetwork");
    json_arr_begin(&w);
    for (int64_t f = 0; e->probe && f < e->F; f++)
        json_int(&w, best[f]);
    json_arr_end(&w);
    json_obj_end(&w);
    int st = json_w_finish(&w, "eval.json", d);
    char path[4200];
    snprintf(path, sizeof path, "%s/eval.json", e->dir);
    if (!st)
        st = io_write_atomic(path, w.buf, w.len, d);
    json_w_free(&w);
    return st;
}

static int parse_eval_args(struct l3d_eval *e, int argc, char **argv, struct diag *d)
{
    snprintf(e->dir, sizeof e->dir, "%s", argv[0]);
    e->batches = 32; /* one epoch of the code's 1000 points */
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--impact") == 0) {
            e->impact = 1;
            continue;
        }
        if (!v)
            return diag_set(d, ST_ERR_INVALID, "eval: %s needs a value", o);
        i++;
        if (strcmp(o, "--coeffs") == 0)
            snprintf(e->coeffs, sizeof e->coeffs, "%s", v);
        else if (strcmp(o, "--batches") == 0) {
            char *end;
            e->batches = strtoll(v, &end, 10);
            if (*end || e->batches < 1)
                return diag_set(d, ST_ERR_INVALID, "eval: --batches '%s' is not an integer >= 1", v);
        } else if (pdc_data_option(&e->c, o, v, d) < 0)
            return diag_set(d, ST_ERR_INVALID, "eval: unknown option '%s'", o);
        else if (d->status)
            return d->status;
    }
    return ST_OK;
}

int pdc_eval_l3d_main(int argc, char **argv)
{
    struct diag d = {0};
    struct l3d_eval *e = calloc(1, sizeof *e);
    int best[4096], distinct = 0;
    char path[4200];
    if (!e)
        return fprintf(stderr, "pdc: out of memory\n"), 1;
    dc_config_defaults(&e->c, "l3d");
    e->c.method[0] = '\0';
    snprintf(path, sizeof path, "%s/config.yaml", argv[0]);
    int st = pdc_dir_model(argv[0], e->model, sizeof e->model, &d);
    if (!st)
        st = pdc_config_load(path, &e->c, &d);
    if (!st)
        st = parse_eval_args(e, argc, argv, &d);
    if (!st && !e->coeffs[0])
        snprintf(e->coeffs, sizeof e->coeffs, "%s.coeffs.npy", e->model);
    if (!st)
        st = pdc_open_data(&e->c, &e->src, &e->c, &d);
    if (!st)
        st = pdc_eval_load_store(argv[0], &e->store, &d);
    if (!st)
        st = find_tensors(&e->store, e->t, &e->nt, &d);
    if (!st)
        st = check_tensors(argv[0], e->model, &e->c, &e->store, e->t, e->nt, &d);
    if (!st)
        st = recon_batches(e, &d);
    if (!st)
        st = probe(e, &d);
    if (!st && e->F > 4096)
        e->probe = (free(e->probe), NULL);
    if (!st && e->probe)
        distinct = feature_map(e, best);
    if (!st)
        st = coefficients(e, &d);
    if (!st) {
        print_report(e, best, distinct);
        st = write_json(e, best, distinct, &d);
    }
    if (!st && e->impact)
        st = impact_file(e, &d);
    if (st)
        fprintf(stderr, "pdc: %s\n", d.msg[0] ? d.msg : status_name(d.status));
    ds_close(e->src);
    rt_store_free(&e->store);
    free(e->p_act);
    free(e->probe);
    free(e);
    return st ? 1 : 0;
}

/* ---- pdc intervene ------------------------------------------------------------------ */

struct intervene_args {
    const char *dir, *data, *out;
    long k;
    double delta;
};

/* every decomposed tensor of g moved to W + Σ_j delta[j]·v_{k[j]} (summed in double, one
 * rounding to float), each into a writable copy of its data: g is a compiled model
 * (pdc intervene) or the plain import of it (pdc export --intervene) */
static int move_tensors(struct ir_graph *g, const char *model, const struct l3d_t *t, int nt,
                        const long *k, const double *delta, int n, struct diag *d)
{
    int st = ST_OK;
    float *v = NULL;
    double *acc = NULL;
    for (int j = 0; !st && j < nt; j++) {
        uint32_t w = ir_tensor_find(g, t[j].name);
        struct ir_tensor *W = w == IR_NONE ? NULL : &g->t[w];
        if (!W || !W->data || W->dtype != IR_F32 || ir_numel(W) != t[j].numel) {
            st = diag_set(d, ST_ERR_INVALID, "%s: no float32 initializer '%s' of %lld elements",
                          model, t[j].name, (long long)t[j].numel);
            break;
        }
        float *wd = ir_graph_buf(g, W->nbytes);
        v = realloc(v, (size_t)t[j].numel * sizeof *v);
        acc = realloc(acc, (size_t)t[j].numel * sizeof *acc);
        if (!wd || !v || !acc) {
            st = diag_set(d, ST_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(wd, W->data, W->nbytes);
        W->data = wd;
        for (int64_t i = 0; i < t[j].numel; i++)
            acc[i] = (double)wd[i];
        for (int s = 0; s < n; s++) {
            subnet_tensor(&t[j], k[s], v);
            for (int64_t i = 0; i < t[j].numel; i++)
                acc[i] += delta[s] * (double)v[i];
        }
        for (int64_t i = 0; i < t[j].numel; i++)
            wd[i] = (float)acc[i];
    }
    free(v);
    free(acc);
    return st;
}

/* the DIR's L3D factors, found and checked against its model and config */
static int open_l3d(const char *dir, const char *model, const struct dc_config *c,
                    struct rt_store *store, struct l3d_t *t, int *nt, struct diag *d)
{
    int st = pdc_eval_load_store(dir, store, d);
    if (!st)
        st = find_tensors(store, t, nt, d);
    if (!st)
        st = check_tensors(dir, model, c, store, t, *nt, d);
    return st;
}

int pdc_l3d_move(const char *dir, const char *model, const struct dc_config *c,
                 struct ir_graph *g, const long *k, const double *delta, int n, struct diag *d)
{
    struct rt_store store = {0};
    struct l3d_t *t = malloc(MAX_T * sizeof *t);
    int nt = 0;
    int st = t ? open_l3d(dir, model, c, &store, t, &nt, d)
               : diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int s = 0; !st && s < n; s++)
        if (k[s] < 0 || k[s] >= c->l3d.n_subnets)
            st = diag_set(d, ST_ERR_INVALID, "subnetwork %ld is not in [0, %d)", k[s],
                          c->l3d.n_subnets);
    if (!st)
        st = move_tensors(g, model, t, nt, k, delta, n, d);
    rt_store_free(&store);
    free(t);
    return st;
}

/* run the DIR's model on x with W + delta·v_k in every decomposed tensor (delta 0: as is) */
static int run_moved(const char *model, struct l3d_t *t, int nt, const struct intervene_args *a,
                     double delta, const struct ir_value *x, struct ir_value **outs, int *nout,
                     struct diag *d)
{
    struct dc_config c;
    dc_config_defaults(&c, "l3d");
    c.batch_size = x->dims[0];
    struct ir_graph *g = NULL;
    int st = pdc_compiled_model(model, &c, &g, d);
    if (!st)
        st = move_tensors(g, model, t, nt, &a->k, &delta, 1, d);
    struct ir_value in = *x;
    if (!st) {
        in.name = (char *)g->t[g->inputs[0]].name;
        st = rt_run(g, cg_default(), &in, 1, outs, nout, d);
    }
    if (g)
        ir_graph_free(g);
    return st;
}

static int intervene(const struct intervene_args *a, struct diag *d)
{
    char model[4096], path[4200];
    struct rt_store store = {0};
    struct l3d_t t[MAX_T];
    struct dc_config c;
    int nt = 0, n0 = 0, n1 = 0;
    struct ir_value x = {0}, *y0 = NULL, *y1 = NULL;
    dc_config_defaults(&c, "l3d");
    c.method[0] = '\0'; /* the saved, fully resolved config names its method */
    snprintf(path, sizeof path, "%s/config.yaml", a->dir);
    int st = pdc_dir_model(a->dir, model, sizeof model, d);
    if (!st)
        st = pdc_config_load(path, &c, d);
    if (!st && strcmp(c.method, "l3d") != 0)
        st = diag_set(d, ST_ERR_INVALID, "intervene: %s is a '%s' decomposition, not l3d",
                      a->dir, c.method);
    if (!st)
        st = open_l3d(a->dir, model, &c, &store, t, &nt, d);
    if (!st && (a->k < 0 || a->k >= c.l3d.n_subnets))
        st = diag_set(d, ST_ERR_INVALID, "intervene: --subnet %ld is not in [0, %d)", a->k,
                      c.l3d.n_subnets);
    if (!st)
        st = npy_read_file(a->data, &x, d);
    if (!st && (x.dtype != IR_F32 || x.rank < 1))
        st = diag_set(d, ST_ERR_INVALID, "%s: expected a float32 array with a batch dim", a->data);
    if (!st)
        st = run_moved(model, t, nt, a, 0.0, &x, &y0, &n0, d);
    if (!st)
        st = run_moved(model, t, nt, a, a->delta, &x, &y1, &n1, d);
    for (int i = 0; !st && i < n1 && i < n0; i++) {
        double s = 0;
        int64_t n = ir_value_numel(&y1[i]);
        for (int64_t e = 0; e < n; e++)
            s += fabs((double)((float *)y1[i].data)[e] - (double)((float *)y0[i].data)[e]);
        printf("subnetwork %ld, delta %g: output '%s' mean |change| %.6g over %lld values\n",
               a->k, a->delta, y1[i].name, s / (double)(n ? n : 1), (long long)n);
    }
    if (!st && a->out)
        st = npz_write_file(a->out, y1, n1, d);
    for (int i = 0; i < n0; i++)
        ir_value_free(&y0[i]);
    for (int i = 0; i < n1; i++)
        ir_value_free(&y1[i]);
    free(y0), free(y1);
    if (x.data)
        ir_value_free(&x);
    rt_store_free(&store);
    return st;
}

int pdc_intervene_main(int argc, char **argv)
{
    struct intervene_args a = {0};
    struct diag d = {0};
    int have_k = 0, have_delta = 0;
    a.k = -1;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *e = NULL;
        if (o[0] != '-' && !a.dir) {
            a.dir = o;
            continue;
        }
        if (!v)
            break;
        i++;
        if (!strcmp(o, "--subnet"))
            a.k = strtol(v, &e, 10), have_k = !*e;
        else if (!strcmp(o, "--delta"))
            a.delta = strtod(v, &e), have_delta = !*e && isfinite(a.delta);
        else if (!strcmp(o, "--data"))
            a.data = v;
        else if (!strcmp(o, "-o"))
            a.out = v;
        else
            return fprintf(stderr, "pdc: intervene: unknown option '%s'\n", o), 2;
    }
    if (!a.dir || !a.data || !have_k || !have_delta) {
        fprintf(stderr, "usage: pdc intervene DIR --subnet K --delta D --data X.npy [-o OUT.npz]\n");
        return 2;
    }
    if (intervene(&a, &d)) {
        fprintf(stderr, "pdc: %s\n", d.msg[0] ? d.msg : status_name(d.status));
        return 1;
    }
    return 0;
}
