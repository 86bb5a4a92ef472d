/* toy_metrics.c — toy ground-truth metrics; see toy_metrics.h. */
#include "toy_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- MMCS / ML2R ----------------------------------------------------------------- */

static double row_norm(const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return sqrt(s);
}

static double row_dot(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

/* Max signed cosine over components for feature j, and the norm ratio of the
 * argmax piece. unorm[c] = ‖U[c,:]‖. A zero piece has cosine 0 (see header). */
static void feature_best(const float *wj, double wnorm, const float *Vj, const float *U,
                         const double *unorm, int64_t d_out, int C, double *cos_out,
                         double *ratio_out)
{
    double best = -(double)INFINITY, ratio = 0;
    for (int c = 0; c < C; c++) {
        double v = (double)Vj[c], pnorm = fabs(v) * unorm[c], cs = 0;
        if (pnorm > 0)
            cs = (v > 0 ? 1 : -1) * row_dot(U + (int64_t)c * d_out, wj, d_out) / (unorm[c] * wnorm);
        if (cs > best) { /* strict: ties keep the first component */
            best = cs;
            ratio = pnorm / wnorm;
        }
    }
    *cos_out = best;
    *ratio_out = ratio;
}

int tm_mmcs_ml2r(const float *Wr, const float *V, const float *U, int64_t d_in, int64_t d_out,
                 int C, double *mmcs, double *ml2r, double *mmcs_std)
{
    if (!Wr || !V || !U || d_in <= 0 || d_out <= 0 || C <= 0)
        return -1;
    double *unorm = malloc((size_t)C * sizeof *unorm);
    double *best = malloc((size_t)d_in * sizeof *best);
    if (!unorm || !best) {
        free(unorm);
        free(best);
        return -1;
    }
    for (int c = 0; c < C; c++)
        unorm[c] = row_norm(U + (int64_t)c * d_out, d_out);

    int64_t used = 0;
    double sum_cos = 0, sum_ratio = 0;
    for (int64_t j = 0; j < d_in; j++) {
        double wnorm = row_norm(Wr + j * d_out, d_out), cs, ratio;
        if (!(wnorm > 0))
            continue; /* no direction to compare with: skipped, counted below */
        feature_best(Wr + j * d_out, wnorm, V + j * C, U, unorm, d_out, C, &cs, &ratio);
        best[used++] = cs;
        sum_cos += cs;
        sum_ratio += ratio;
    }
    double mean = used ? sum_cos / (double)used : (double)NAN;
    double var = 0;
    for (int64_t i = 0; i < used; i++)
        var += (best[i] - mean) * (best[i] - mean);
    if (mmcs)
        *mmcs = mean;
    if (ml2r)
        *ml2r = used ? sum_ratio / (double)used : (double)NAN;
    if (mmcs_std)
        *mmcs_std = used >= 2 ? sqrt(var / (double)(used - 1)) : (double)NAN;
    free(unorm);
    free(best);
    return (int)(d_in - used);
}

/* ---- thresholds ---------------------------------------------------------------------- */

/* (float)tol and (float)(1 − tol): the float32 thresholds PyTorch compares with. */
static float thr_low(double tol) { return (float)tol; }
static float thr_high(double tol) { return (float)(1.0 - tol); }

/* ---- optimal assignment (rows → distinct columns, minimum total cost) ---------------
 * Shortest augmenting path with dual variables (Jonker–Volgenant; the rectangular
 * form of Crouse 2016 that SciPy's linear_sum_assignment implements). One row is
 * added per outer step; a Dijkstra-like search over reduced costs finds the
 * cheapest path to a free column and the assignment is flipped along it. Among
 * equal path costs a free column is preferred, which ends the search early and
 * fixes how ties resolve. Cost(i, j) = −ci[i, j]: maximise the diagonal sum. */
struct lsap {
    const float *ci;
    int64_t nr, nc;
    double *u, *v, *spc;                     /* row/column duals, path costs [nc] */
    int64_t *path, *col4row, *row4col, *rem; /* rem: columns not yet reached */
    unsigned char *sr, *sc;                  /* rows / columns on the search tree */
};

static double lsap_cost(const struct lsap *w, int64_t i, int64_t j)
{
    return -(double)w->ci[i * w->nc + j];
}

/* one relaxation sweep from row i; returns the position in rem of the cheapest column */
static int64_t lsap_sweep(struct lsap *w, int64_t i, double minval, int64_t nrem, double *lowest)
{
    int64_t index = -1;
    *lowest = (double)INFINITY;
    for (int64_t it = 0; it < nrem; it++) {
        int64_t j = w->rem[it];
        double r = minval + lsap_cost(w, i, j) - w->u[i] - w->v[j];
        if (r < w->spc[j]) {
            w->path[j] = i;
            w->spc[j] = r;
        }
        if (w->spc[j] < *lowest || (w->spc[j] == *lowest && w->row4col[j] == -1)) {
            *lowest = w->spc[j];
            index = it;
        }
    }
    return index;
}

/* shortest path from row i to a free column; returns that column (-1: none) */
static int64_t lsap_augment(struct lsap *w, int64_t i, double *min_out)
{
    int64_t nrem = w->nc, sink = -1;
    double minval = 0;
    for (int64_t it = 0; it < w->nc; it++) {
        w->rem[it] = w->nc - it - 1;
        w->spc[it] = (double)INFINITY;
        w->sc[it] = 0;
    }
    memset(w->sr, 0, (size_t)w->nr);
    while (sink == -1) {
        double lowest;
        w->sr[i] = 1;
        int64_t index = lsap_sweep(w, i, minval, nrem, &lowest);
        if (index < 0 || lowest == (double)INFINITY)
            return -1;
        minval = lowest;
        int64_t j = w->rem[index];
        if (w->row4col[j] == -1)
            sink = j;
        else
            i = w->row4col[j];
        w->sc[j] = 1;
        w->rem[index] = w->rem[--nrem];
    }
    *min_out = minval;
    return sink;
}

/* update the duals after adding row cur, then flip the assignment along the path */
static void lsap_commit(struct lsap *w, int64_t cur, int64_t sink, double minval)
{
    w->u[cur] += minval;
    for (int64_t i = 0; i < w->nr; i++)
        if (w->sr[i] && i != cur)
            w->u[i] += minval - w->spc[w->col4row[i]];
    for (int64_t j = 0; j < w->nc; j++)
        if (w->sc[j])
            w->v[j] -= minval - w->spc[j];
    for (int64_t j = sink;;) {
        int64_t i = w->path[j], prev = w->col4row[i];
        w->row4col[j] = i;
        w->col4row[i] = j;
        j = prev;
        if (i == cur)
            break;
    }
}

static void lsap_free(struct lsap *w)
{
    free(w->u);
    free(w->v);
    free(w->spc);
    free(w->path);
    free(w->col4row);
    free(w->row4col);
    free(w->rem);
    free(w->sr);
    free(w->sc);
}

static int lsap_alloc(struct lsap *w, const float *ci, int64_t nr, int64_t nc)
{
    memset(w, 0, sizeof *w);
    w->ci = ci;
    w->nr = nr;
    w->nc = nc;
    w->u = calloc((size_t)nr, sizeof *w->u);
    w->v = calloc((size_t)nc, sizeof *w->v);
    w->spc = calloc((size_t)nc, sizeof *w->spc);
    w->path = malloc((size_t)nc * sizeof *w->path);
    w->col4row = malloc((size_t)nr * sizeof *w->col4row);
    w->row4col = malloc((size_t)nc * sizeof *w->row4col);
    w->rem = malloc((size_t)nc * sizeof *w->rem);
    w->sr = malloc((size_t)nr);
    w->sc = malloc((size_t)nc);
    if (!w->u || !w->v || !w->spc || !w->path || !w->col4row || !w->row4col || !w->rem ||
        !w->sr || !w->sc) {
        lsap_free(w);
        return -1;
    }
    for (int64_t i = 0; i < nr; i++)
        w->col4row[i] = -1;
    for (int64_t j = 0; j < nc; j++)
        w->path[j] = w->row4col[j] = -1;
    return 0;
}

/* Assign the first nr rows of ci [*, nc] (nr ≤ nc) to distinct columns maximising
 * Σ ci[i, col[i]]; col has nr entries. */
static int assign_hungarian(const float *ci, int64_t nr, int64_t nc, int64_t *col)
{
    struct lsap w;
    if (lsap_alloc(&w, ci, nr, nc))
        return -1;
    int rc = 0;
    for (int64_t cur = 0; cur < nr && rc == 0; cur++) {
        double minval;
        int64_t sink = lsap_augment(&w, cur, &minval);
        if (sink < 0)
            rc = -1; /* cannot happen for finite costs with nr ≤ nc */
        else
            lsap_commit(&w, cur, sink, minval);
    }
    if (rc == 0)
        memcpy(col, w.col4row, (size_t)nr * sizeof *col);
    lsap_free(&w);
    return rc;
}

/* Row by row, each row takes its largest column not yet taken (ties: lower index). */
static int assign_greedy(const float *ci, int64_t nr, int64_t nc, int64_t *col)
{
    unsigned char *used = calloc((size_t)nc, 1);
    if (!used)
        return -1;
    for (int64_t i = 0; i < nr; i++) {
        int64_t pick = -1;
        for (int64_t j = 0; j < nc; j++)
            if (!used[j] && (pick < 0 || ci[i * nc + j] > ci[i * nc + pick]))
                pick = j;
        used[pick] = 1; /* pick ≥ 0: row i < nr ≤ nc leaves a free column */
        col[i] = pick;
    }
    free(used);
    return 0;
}

/* ---- identity pattern ---------------------------------------------------------------- */

static int all_finite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* Count the errors of ci against the identity, row i's diagonal being column col[i]
 * for i < r. Off-diagonal = every other entry, so only the diagonal choice matters. */
static int64_t identity_errors(const float *ci, int64_t n, int64_t C, int64_t r,
                               const int64_t *col, double tol)
{
    const float lo = thr_low(tol), hi = thr_high(tol);
    int64_t err = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < C; j++) {
            float x = ci[i * C + j];
            if (i < r && j == col[i])
                err += x < hi;
            else
                err += x > lo;
        }
    return err;
}

/* full column order: assigned columns in row order, then the rest ascending */
static int fill_perm(const int64_t *col, int64_t r, int64_t C, int *perm)
{
    unsigned char *taken = calloc((size_t)C, 1);
    if (!taken)
        return -1;
    int64_t k = 0;
    for (int64_t i = 0; i < r; i++) {
        perm[k++] = (int)col[i];
        taken[col[i]] = 1;
    }
    for (int64_t j = 0; j < C; j++)
        if (!taken[j])
            perm[k++] = (int)j;
    free(taken);
    return 0;
}

int64_t tm_identity_ci_error(const float *ci, int64_t n, int C, double tol,
                             enum tm_perm_method method, int *perm_out)
{
    if (!ci || n <= 0 || C <= 0 || !all_finite(ci, n * C))
        return -1;
    int64_t r = n < C ? n : C;
    int64_t *col = malloc((size_t)r * sizeof *col);
    if (!col)
        return -1;
    int greedy = method == TM_PERM_GREEDY || (method == TM_PERM_AUTO && r >= 500);
    int rc = greedy ? assign_greedy(ci, r, C, col) : assign_hungarian(ci, r, C, col);
    if (rc == 0 && perm_out)
        rc = fill_perm(col, r, C, perm_out);
    int64_t err = rc ? -1 : identity_errors(ci, n, C, r, col, tol);
    free(col);
    return err;
}

/* ---- dense pattern --------------------------------------------------------------------- */

struct colsum {
    double sum;
    int idx;
};

/* descending sum, then ascending index: a total order, so qsort is deterministic */
static int colsum_cmp(const void *a, const void *b)
{
    const struct colsum *x = a, *y = b;
    if (x->sum != y->sum)
        return x->sum < y->sum ? 1 : -1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* errors contributed by column j when it is kept (dense) or not */
static int64_t dense_column_error(const float *ci, int64_t n, int C, int j, int kept,
                                  int min_entries, double tol)
{
    const float lo = thr_low(tol), hi = thr_high(tol);
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        float x = ci[i * C + j];
        count += kept ? x >= hi : x > lo;
    }
    if (!kept)
        return count;
    return count < min_entries ? min_entries - count : 0;
}

int64_t tm_dense_ci_error(const float *ci, int64_t n, int C, int k, int min_entries, double tol,
                          int *perm_out)
{
    if (!ci || n <= 0 || C <= 0 || k < 0 || k > C || min_entries < 0)
        return -1;
    struct colsum *cs = malloc((size_t)C * sizeof *cs);
    if (!cs)
        return -1;
    for (int j = 0; j < C; j++) {
        cs[j].idx = j;
        cs[j].sum = 0;
        for (int64_t i = 0; i < n; i++)
            cs[j].sum += (double)ci[i * C + j];
    }
    qsort(cs, (size_t)C, sizeof *cs, colsum_cmp);
    int64_t err = 0;
    for (int p = 0; p < C; p++) {
        err += dense_column_error(ci, n, C, cs[p].idx, p < k, min_entries, tol);
        if (perm_out)
            perm_out[p] = cs[p].idx;
    }
    free(cs);
    return err;
}

/* ---- small counts ------------------------------------------------------------------------ */

double tm_l0(const float *ci, int64_t N, int C, double thr)
{
    if (!ci || N <= 0 || C <= 0)
        return (double)NAN;
    const float t = thr_low(thr);
    int64_t fired = 0;
    for (int64_t i = 0; i < N * C; i++)
        fired += ci[i] > t;
    return (double)fired / (double)N;
}

int tm_firing_density(const float *ci, int64_t N, int C, double thr, double *density)
{
    if (!ci || !density || N <= 0 || C <= 0)
        return -1;
    const float t = thr_low(thr);
    for (int c = 0; c < C; c++) {
        int64_t fired = 0;
        for (int64_t i = 0; i < N; i++)
            fired += ci[i * C + c] > t;
        density[c] = (double)fired / (double)N;
    }
    return 0;
}

int tm_alive_count(const float *ci, int64_t N, int C, double thr, double *mean_out)
{
    if (!ci || N <= 0 || C <= 0)
        return -1;
    const float t = thr_low(thr);
    int alive = 0;
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int64_t i = 0; i < N; i++)
            s += (double)ci[i * C + c];
        double mean = s / (double)N;
        alive += (float)mean > t; /* the reference's mean is a float32 tensor */
        if (mean_out)
            mean_out[c] = mean;
    }
    return alive;
}

int tm_component_norms(const float *V, const float *U, int64_t d_in, int64_t d_out, int C,
                       double *norms)
{
    if (!V || !U || !norms || d_in <= 0 || d_out <= 0 || C <= 0)
        return -1;
    for (int c = 0; c < C; c++) {
        double sv = 0;
        for (int64_t i = 0; i < d_in; i++)
            sv += (double)V[i * C + c] * (double)V[i * C + c];
        /* ‖v uᵀ‖_F = ‖v‖ ‖u‖ for a rank-1 matrix */
        norms[c] = sqrt(sv) * row_norm(U + (int64_t)c * d_out, d_out);
    }
    return 0;
}

int tm_count_above(const double *norms, int C, double rel)
{
    if (!norms || C <= 0)
        return -1;
    double mx = 0;
    for (int c = 0; c < C; c++)
        if (norms[c] > mx)
            mx = norms[c];
    if (!(mx > 0))
        return 0;
    int count = 0;
    for (int c = 0; c < C; c++)
        count += norms[c] > rel * mx;
    return count;
}
