/* test_apd.c — the APD train step (passes/objective_apd.c) against computations
 * written here, in double, from the program's own states and data:
 *   - gradient attributions attr[n,c] = Σ_o (Σ_l ⟨∂f_o/∂y_l, x_l·P_{c,l}⟩)², with the
 *     target's Jacobians derived by hand for each target (METHOD §9.2);
 *   - the batch top-k mask: int(topk·N) ones, every selected attribution ≥ every
 *     unselected one (METHOD §9.3), and TopKMask's tie rule on a hand-made vector;
 *   - param_match, topk_recon (the masked forward recomputed here) and the
 *     Schatten-p loss (METHOD §9.4);
 *   - ∂loss/∂V and ∂loss/∂U against central differences (entries whose
 *     perturbation changes the top-k selection are skipped: the loss jumps there).
 * Targets: a 2-layer MatMul MLP on [6, 4] rows (different m per site) and the
 * tied TMS 5-2 (a transposed use of one factor pair). Refused: sites on [B, T]
 * positions (rows that may mix), outputs too wide to attribute. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decompose_fixture.h"

struct astep {
    struct dc_prog prog;
    struct dc_site *sites;
    struct dc_factor *fac;
    int ns, nf;
    struct rt_prog *rp;
    int64_t N, C; /* positions, components */
};

static const float *buf(const struct astep *s, uint32_t t)
{
    return rt_prog_buf(s->rp, t);
}

static uint32_t named(const struct dc_metric *m, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(m[i].name, name) == 0)
            return m[i].t;
    fprintf(stderr, "  no '%s'\n", name);
    test_failed_ = 1;
    return IR_NONE;
}

static const struct dc_state *state_of(const struct astep *s, const char *name)
{
    for (int i = 0; i < s->prog.n_st; i++)
        if (strcmp(s->prog.st[i].name, name) == 0)
            return &s->prog.st[i];
    fprintf(stderr, "  no state '%s'\n", name);
    test_failed_ = 1;
    return NULL;
}

static void fill(struct astep *s)
{
    for (int k = 0; k < s->prog.n_st; k++) {
        const struct dc_state *st = &s->prog.st[k];
        float *v = rt_prog_buf(s->rp, st->t);
        int64_t n = ir_numel(&s->prog.g->t[st->t]);
        for (int64_t j = 0; j < n; j++)
            v[j] = st->trainable ? (float)rng_normal(st->std) : 0.0f;
    }
    for (int i = 0; i < s->prog.n_in; i++) {
        const struct dc_input *in = &s->prog.in[i];
        const struct ir_tensor *t = &s->prog.g->t[in->t];
        float *b = rt_prog_buf(s->rp, in->t);
        if (in->kind == DC_FEED_SCALAR) {
            b[0] = 0.5f;
        } else {
            void *x = rand_input(t, 0);
            memcpy(b, x, rt_tensor_bytes(t));
            free(x);
        }
    }
}

static int astep_build(build_fn bf, const struct dc_config *c, struct astep *s)
{
    struct diag d = {0};
    struct ir_graph *g = NULL;
    memset(s, 0, sizeof *s);
    int st = bf(&g, &d);
    if (!st)
        st = dc_select_sites(g, c, &s->sites, &s->ns, &s->fac, &s->nf, &d);
    if (!st)
        st = dc_apd_sites(c, s->sites, s->ns, s->fac, s->nf, &d);
    if (!st) {
        st = dc_build_apd_train(g, c, s->sites, s->ns, s->fac, s->nf, &s->prog, &d);
        g = NULL;
        if (!st)
            dc_prog_keep_grads(&s->prog);
    }
    if (!st)
        st = rt_prog_new(s->prog.g, &cg_ref, &s->rp, &d);
    ir_graph_free(g);
    if (st) {
        fprintf(stderr, "  building the APD step: %s\n", d.msg);
        test_failed_ = 1;
        return st;
    }
    const struct ir_tensor *a = &s->prog.g->t[named(s->prog.tap, s->prog.n_tap, "apd.attr")];
    s->C = a->dims[a->rank - 1];
    s->N = ir_numel(a) / s->C;
    fill(s);
    return rt_prog_run(s->rp, &d);
}

static void astep_free(struct astep *s)
{
    rt_prog_free(s->rp);
    dc_prog_free(&s->prog);
    free(s->sites);
    free(s->fac);
}

/* ---- the independent side ---------------------------------------------------------- */

#define MAXD 16
struct layer {            /* one site as the test sees it, in its own [d_in, d_out] view */
    int64_t din, dout;
    int m;
    int64_t cm;
    double V[MAXD][MAXD * 8], U[MAXD * 8][MAXD]; /* [d_in, C·m], [C·m, d_out] */
    const float *W;       /* the target weight as stored (initializer) */
    int tr;               /* the site's view is the stored weight transposed */
};

/* site i's factors as the site reads them (a transposed use: V' = Uᵀ, U' = Vᵀ) */
static void layer_of(const struct astep *s, const struct dc_config *c, int i, struct layer *L)
{
    const struct dc_site *st = &s->sites[i];
    char nv[300], nu[300];
    const char *fname = NULL;
    for (int k = 0; k < s->ns && !fname; k++)
        if (s->sites[k].factor == st->factor)
            fname = s->sites[k].name;
    snprintf(nv, sizeof nv, "%s.V", fname);
    snprintf(nu, sizeof nu, "%s.U", fname);
    const float *V = buf(s, state_of(s, nv)->t), *U = buf(s, state_of(s, nu)->t);
    L->din = st->d_in, L->dout = st->d_out, L->m = dc_apd_rank(c, st);
    int64_t cm = L->cm = st->C;
    L->W = s->prog.g->t[st->weight].data;
    L->tr = st->use_tr;
    for (int64_t a = 0; a < L->din; a++)
        for (int64_t j = 0; j < cm; j++) {
            L->V[a][j] = st->transposed ? U[j * L->din + a] : V[a * cm + j];
        }
    for (int64_t j = 0; j < cm; j++)
        for (int64_t o = 0; o < L->dout; o++)
            L->U[j][o] = st->transposed ? V[o * cm + j] : U[j * L->dout + o];
}

/* x·P_c at one position: out[o] = Σ_a x[a] Σ_k V[a][cm+k] U[cm+k][o] */
static void comp_out(const struct layer *L, int c, const double *x, double *out)
{
    for (int64_t o = 0; o < L->dout; o++)
        out[o] = 0;
    for (int k = c * L->m; k < (c + 1) * L->m; k++) {
        double h = 0;
        for (int64_t a = 0; a < L->din; a++)
            h += x[a] * L->V[a][k];
        for (int64_t o = 0; o < L->dout; o++)
            out[o] += h * L->U[k][o];
    }
}

/* masked forward of one site at one position: Σ_c mask_c x·P_c */
static void masked_site(const struct layer *L, int64_t C, const float *mask, const double *x,
                        double *y)
{
    double t[MAXD];
    for (int64_t o = 0; o < L->dout; o++)
        y[o] = 0;
    for (int c = 0; c < C; c++) {
        comp_out(L, c, x, t);
        for (int64_t o = 0; o < L->dout; o++)
            y[o] += (double)mask[c] * t[o];
    }
}

/* Σ_l Σ_n Σ_c Σ_k (mask·‖A_c[:,k]‖²·‖B_c[k,:]‖² + 1e-16)^{p/2} / n_params / N */
static double schatten_here(const struct layer *L, int nl, const float *mask, int64_t N,
                            int64_t C, double p)
{
    double tot = 0, np = 0;
    for (int l = 0; l < nl; l++) {
        np += (double)(L[l].din * L[l].dout);
        for (int64_t j = 0; j < C * L[l].m; j++) {
            double a = 0, b = 0;
            for (int64_t i = 0; i < L[l].din; i++)
                a += L[l].V[i][j] * L[l].V[i][j];
            for (int64_t o = 0; o < L[l].dout; o++)
                b += L[l].U[j][o] * L[l].U[j][o];
            for (int64_t n = 0; n < N; n++)
                tot += pow((double)mask[n * C + j / L[l].m] * a * b + 1e-16, 0.5 * p);
        }
    }
    return tot / np / (double)N;
}

/* the target weight in the site's view */
static double wr(const struct layer *L, int64_t a, int64_t o)
{
    return (double)(L->tr ? L->W[o * L->din + a] : L->W[a * L->dout + o]);
}

/* Σ_l ‖W_l − V_l U_l‖² / n_params */
static double param_match_here(const struct layer *L, int nl)
{
    double tot = 0, np = 0;
    for (int l = 0; l < nl; l++) {
        np += (double)(L[l].din * L[l].dout);
        for (int64_t a = 0; a < L[l].din; a++)
            for (int64_t o = 0; o < L[l].dout; o++) {
                double vu = 0;
                for (int64_t j = 0; j < L[l].cm; j++)
                    vu += L[l].V[a][j] * L[l].U[j][o];
                tot += (wr(&L[l], a, o) - vu) * (wr(&L[l], a, o) - vu);
            }
    }
    return tot / np;
}

/* Per target: at position n, the sites' inputs x_l, the Jacobian rows g[o][l] =
 * ∂f_o/∂y_l, the clean output f, and the output of the forward masked by mask[C]. */
struct target {
    int nl;                       /* sites */
    int64_t dx, df;               /* input width, output width */
    const float *bias;
    void (*clean)(const struct target *t, const struct layer *L, const double *x,
                  double xs[][MAXD], double g[][2][MAXD], double *f);
    void (*masked)(const struct target *t, const struct layer *L, int64_t C, const float *mask,
                   const double *x, double *f);
};

/* MLP: y1 = x·W1, r = ReLU(y1), f = r·W2 + b */
static void mlp_clean(const struct target *t, const struct layer *L, const double *x,
                      double xs[][MAXD], double g[][2][MAXD], double *f)
{
    double y1[MAXD];
    for (int64_t j = 0; j < L[0].dout; j++) {
        y1[j] = 0;
        for (int64_t a = 0; a < L[0].din; a++)
            y1[j] += x[a] * wr(&L[0], a, j);
        xs[0][j] = x[j < L[0].din ? j : 0];
        xs[1][j] = y1[j] > 0 ? y1[j] : 0;
    }
    for (int64_t a = 0; a < L[0].din; a++)
        xs[0][a] = x[a];
    for (int64_t o = 0; o < t->df; o++) {
        f[o] = (double)t->bias[o];
        for (int64_t j = 0; j < L[1].din; j++)
            f[o] += xs[1][j] * wr(&L[1], j, o);
        for (int64_t j = 0; j < L[0].dout; j++)
            g[o][0][j] = y1[j] > 0 ? wr(&L[1], j, o) : 0.0;
        for (int64_t k = 0; k < t->df; k++)
            g[o][1][k] = k == o;
    }
}

static void mlp_masked(const struct target *t, const struct layer *L, int64_t C,
                       const float *mask, const double *x, double *f)
{
    double y1[MAXD];
    masked_site(&L[0], C, mask, x, y1);
    for (int64_t j = 0; j < L[0].dout; j++)
        y1[j] = y1[j] > 0 ? y1[j] : 0;
    masked_site(&L[1], C, mask, y1, f);
    for (int64_t o = 0; o < t->df; o++)
        f[o] += (double)t->bias[o];
}

/* TMS (tied): y1 = x·W, y2 = y1·Wᵀ, f = ReLU(y2 + b) */
static void tms_clean(const struct target *t, const struct layer *L, const double *x,
                      double xs[][MAXD], double g[][2][MAXD], double *f)
{
    double y1[MAXD], z[MAXD];
    for (int64_t j = 0; j < L[0].dout; j++) {
        y1[j] = 0;
        for (int64_t a = 0; a < L[0].din; a++)
            y1[j] += x[a] * wr(&L[0], a, j);
        xs[1][j] = y1[j];
    }
    for (int64_t a = 0; a < L[0].din; a++)
        xs[0][a] = x[a];
    for (int64_t o = 0; o < t->df; o++) {
        z[o] = (double)t->bias[o];
        for (int64_t j = 0; j < L[1].din; j++)
            z[o] += y1[j] * wr(&L[1], j, o);
        f[o] = z[o] > 0 ? z[o] : 0;
    }
    for (int64_t o = 0; o < t->df; o++) {
        double on = z[o] > 0;
        for (int64_t j = 0; j < L[0].dout; j++)
            g[o][0][j] = on * wr(&L[1], j, o); /* ∂y2_o/∂y1_j = W[o][j] */
        for (int64_t k = 0; k < t->df; k++)
            g[o][1][k] = k == o ? on : 0.0;
    }
}

static void tms_masked(const struct target *t, const struct layer *L, int64_t C,
                       const float *mask, const double *x, double *f)
{
    double y1[MAXD];
    masked_site(&L[0], C, mask, x, y1);
    masked_site(&L[1], C, mask, y1, f);
    for (int64_t o = 0; o < t->df; o++) {
        f[o] += (double)t->bias[o];
        f[o] = f[o] > 0 ? f[o] : 0;
    }
}

static const float *data_of(const struct astep *s)
{
    for (int i = 0; i < s->prog.n_in; i++)
        if (s->prog.in[i].kind == DC_FEED_DATA)
            return buf(s, s->prog.in[i].t);
    return NULL;
}

/* attributions, mask, losses: program against the computations above */
static void check_values(struct astep *s, const struct dc_config *c, const struct target *t)
{
    struct layer *L = calloc(2, sizeof *L);
    for (int l = 0; l < t->nl; l++)
        layer_of(s, c, l, &L[l]);
    const float *x = data_of(s), *attr = buf(s, named(s->prog.tap, s->prog.n_tap, "apd.attr"));
    const float *mask = buf(s, named(s->prog.tap, s->prog.n_tap, "apd.mask"));
    double worst = 0, amax = 0, recon = 0;
    for (int64_t n = 0; n < s->N; n++) {
        double xn[MAXD], xs[2][MAXD], g[MAXD][2][MAXD], f[MAXD], fm[MAXD], p[MAXD];
        for (int64_t a = 0; a < t->dx; a++)
            xn[a] = (double)x[n * t->dx + a];
        t->clean(t, L, xn, xs, g, f);
        for (int c2 = 0; c2 < s->C; c2++) {
            double want = 0;
            for (int64_t o = 0; o < t->df; o++) {
                double a = 0;
                for (int l = 0; l < t->nl; l++) {
                    comp_out(&L[l], c2, xs[l], p);
                    for (int64_t k = 0; k < L[l].dout; k++)
                        a += g[o][l][k] * p[k];
                }
                want += a * a;
            }
            worst = fmax(worst, fabs(want - (double)attr[n * s->C + c2]));
            amax = fmax(amax, fabs(want));
        }
        t->masked(t, L, s->C, mask + n * s->C, xn, fm);
        for (int64_t o = 0; o < t->df; o++)
            recon += (fm[o] - f[o]) * (fm[o] - f[o]);
    }
    printf("  attributions: max %.4g, max |program - here| %.3g\n", amax, worst);
    CHECK(amax > 1e-3);
    CHECK(worst <= 1e-4 * amax + 1e-6);
    /* batch top-k: int(topk·N) ones, and no unselected attribution above a selected one */
    int64_t ones = 0, k = (int64_t)(c->apd.topk * (double)s->N);
    double lo_sel = INFINITY, hi_un = -INFINITY;
    for (int64_t i = 0; i < s->N * s->C; i++) {
        CHECK(mask[i] == 0.0f || mask[i] == 1.0f);
        ones += mask[i] == 1.0f;
        if (mask[i] == 1.0f)
            lo_sel = fmin(lo_sel, (double)attr[i]);
        else
            hi_un = fmax(hi_un, (double)attr[i]);
    }
    CHECK_EQ(ones, k);
    CHECK(lo_sel >= hi_un);
    double pm = param_match_here(L, t->nl);
    double sc = schatten_here(L, t->nl, mask, s->N, s->C, c->apd.schatten_pnorm);
    recon /= (double)(s->N * t->df);
    double got_pm = (double)*buf(s, named(s->prog.metric, s->prog.n_metric, "loss/param_match"));
    double got_tr = (double)*buf(s, named(s->prog.metric, s->prog.n_metric, "loss/topk_recon"));
    double got_sc = (double)*buf(s, named(s->prog.metric, s->prog.n_metric, "loss/schatten"));
    printf("  param_match %.6g / %.6g, topk_recon %.6g / %.6g, schatten %.6g / %.6g\n", got_pm,
           pm, got_tr, recon, got_sc, sc);
    CHECK_NEAR(got_pm, pm, 1e-5 * pm + 1e-9);
    CHECK_NEAR(got_tr, recon, 1e-4 * recon + 1e-9);
    CHECK_NEAR(got_sc, sc, 1e-5 * sc + 1e-9);
    free(L);
}

/* loss/total's central difference w.r.t. entry i of state x; *moved when the top-k
 * selection differs at either side (the loss is discontinuous there) */
static double fd(struct astep *s, uint32_t x, long i, uint32_t f, uint32_t mask, double h,
                 int *moved)
{
    float *p = rt_prog_buf(s->rp, x);
    const float *y = buf(s, f), *mk = buf(s, mask);
    int64_t nm = s->N * s->C;
    float *m0 = malloc((size_t)nm * sizeof *m0);
    memcpy(m0, mk, (size_t)nm * sizeof *m0);
    struct diag d = {0};
    float saved = p[i];
    p[i] = (float)((double)saved + h);
    rt_prog_run(s->rp, &d);
    double up = (double)*y;
    *moved = memcmp(m0, mk, (size_t)nm * sizeof *m0) != 0;
    p[i] = (float)((double)saved - h);
    rt_prog_run(s->rp, &d);
    double dn = (double)*y;
    *moved |= memcmp(m0, mk, (size_t)nm * sizeof *m0) != 0;
    double dx = (double)(float)((double)saved + h) - (double)(float)((double)saved - h);
    p[i] = saved;
    rt_prog_run(s->rp, &d);
    free(m0);
    return (up - dn) / dx;
}

/* the gradient the step computes for every trainable state against central
 * differences of loss/total: within 1 % or 0.1 % of the largest entry */
static void check_grads(struct astep *s)
{
    uint32_t f = named(s->prog.metric, s->prog.n_metric, "loss/total");
    uint32_t mask = named(s->prog.tap, s->prog.n_tap, "apd.mask");
    for (int k = 0; k < s->prog.n_st; k++) {
        const struct dc_state st = s->prog.st[k];
        if (!st.trainable || st.grad == IR_NONE)
            continue;
        long n = (long)ir_numel(&s->prog.g->t[st.t]), bad = 0, skipped = 0;
        float *gcopy = malloc((size_t)n * sizeof *gcopy);
        memcpy(gcopy, buf(s, st.grad), (size_t)n * sizeof *gcopy);
        double gmax = 0, worst = 0;
        for (long i = 0; i < n; i++)
            gmax = fmax(gmax, fabs((double)gcopy[i]));
        for (long i = 0; i < n; i++) {
            int moved;
            double b = fd(s, st.t, i, f, mask, 1e-3, &moved), a = (double)gcopy[i];
            if (moved) {
                skipped++;
                continue;
            }
            double err = fabs(a - b);
            worst = fmax(worst, err);
            if (err > 1e-2 * fmax(fabs(a), fabs(b)) + 1e-3 * gmax) {
                if (bad++ < 4)
                    fprintf(stderr, "  %s[%ld]: program %.7g, central difference %.7g\n",
                            st.name, i, a, b);
                test_failed_ = 1;
            }
        }
        printf("  d total/d %-20s %4ld entries (%ld skipped), max |grad| %.3g, max err %.2g\n",
               st.name, n, skipped, gmax, worst);
        CHECK(gmax > 1e-6);
        CHECK(skipped < n / 2);
        free(gcopy);
    }
}

/* the MLP of build_batched on plain rows: ReLU(x·W1)·W2 + b, x [6, 4] */
static int build_rows(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[2] = {6, 4}, w1[2] = {4, 6}, w2[2] = {6, 5}, bd[1] = {5};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd);
    uint32_t h = bld_op1(&b, IR_OP_Relu, bld_matmul(&b, x, g_param(&b, "mlp_in", 2, w1, 0.5)));
    uint32_t y = bld_add(&b, bld_matmul(&b, h, g_param(&b, "mlp_out", 2, w2, 0.4)),
                         g_param(&b, "bias", 1, bd, 0.5));
    return finish_graph(g, &b, y, d);
}

/* x [3, 2] · W [2, 5000]: more output dimensions than attributions take */
static int build_wide(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[2] = {3, 2}, wd[2] = {2, 5000};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd);
    return finish_graph(g, &b, bld_matmul(&b, x, g_param(&b, "W", 2, wd, 0.5)), d);
}

static void apd_config(struct dc_config *c, const char *pattern, int C, double topk, double p)
{
    dc_config_defaults(c, "apd");
    c->n_sites = 1;
    snprintf(c->sites[0].pattern, sizeof c->sites[0].pattern, "%s", pattern);
    c->sites[0].C = C;
    c->apd.topk = topk;
    c->apd.schatten_pnorm = p;
    c->apd.schatten_coeff = 0.3; /* distinct weights, so a swapped term shows */
    c->apd.topk_recon_coeff = 1.5;
}

static int bias_of(struct astep *s, const char *name, struct target *t)
{
    uint32_t b = ir_tensor_find(s->prog.g, name);
    t->bias = b == IR_NONE ? NULL : s->prog.g->t[b].data;
    CHECK(t->bias != NULL);
    return t->bias != NULL;
}

/* two sites with their own m (min(4,6) = 4, min(6,5) = 5), 6 rows */
TEST(mlp_values_and_gradients)
{
    struct dc_config c;
    struct astep s;
    rng_state = 11;
    apd_config(&c, "mlp_*", 3, 1.2, 0.9);
    if (astep_build(build_rows, &c, &s) == ST_OK) {
        struct target t = {2, 4, 5, NULL, mlp_clean, mlp_masked};
        CHECK_EQ(s.ns, 2);
        CHECK_EQ(s.C, 3);
        CHECK_EQ(s.sites[0].C, 12);
        CHECK_EQ(s.sites[1].C, 15);
        if (bias_of(&s, "bias", &t)) {
            check_values(&s, &c, &t);
            check_grads(&s);
        }
    }
    astep_free(&s);
}

/* TMS 5-2: one factor pair read as x·W and (transposed) h·Wᵀ, m = 3 */
TEST(tms_tied_values_and_gradients)
{
    struct dc_config c;
    struct astep s;
    rng_state = 5;
    apd_config(&c, "W", 4, 1.5, 1.0);
    c.apd.m = 3;
    c.lr.fn = DC_SCHED_COSINE;
    if (astep_build(build_tms, &c, &s) == ST_OK) {
        CHECK(s.prog.lr.fn == DC_SCHED_QCOSINE); /* APD's cosine */
        struct target t = {2, 5, 5, NULL, tms_clean, tms_masked};
        CHECK_EQ(s.ns, 2);
        CHECK_EQ(s.nf, 1);
        CHECK(s.sites[1].transposed);
        if (bias_of(&s, "b", &t)) {
            check_values(&s, &c, &t);
            check_grads(&s);
        }
    }
    astep_free(&s);
}

/* TopKMask on its own: the k largest, ties to the lower flat index, k = 0 and all */
TEST(topk_mask_kernel)
{
    static const float x[8] = {0.5f, 2.0f, -1.0f, 2.0f, 0.5f, 3.0f, 0.5f, -4.0f};
    static const float want3[8] = {0, 1, 0, 1, 0, 1, 0, 0};
    static const float want5[8] = {1, 1, 0, 1, 1, 1, 0, 0};
    int64_t ks[4] = {3, 5, 0, 8};
    for (int r = 0; r < 4; r++) {
        struct diag d = {0};
        struct ir_builder b;
        struct ir_graph *g = new_graph(&b, &d);
        int64_t dims[2] = {2, 4};
        uint32_t in = g_input(g, "x", IR_F32, 2, dims);
        struct ir_attr at = bld_attr_int("k", ks[r]);
        uint32_t y = bld_node(&b, IR_OP_TopKMask, 1, &in, 1, &at, 1, NULL);
        struct rt_prog *rp = NULL;
        ir_graph_add_output(g, y);
        int st = b.err ? b.err : ir_fill_topo(g, &d);
        if (!st)
            st = rt_prog_new(g, &cg_ref, &rp, &d);
        if (!st) {
            memcpy(rt_prog_buf(rp, in), x, sizeof x);
            st = rt_prog_run(rp, &d);
        }
        if (st)
            fprintf(stderr, "  TopKMask k=%lld: %s\n", (long long)ks[r], d.msg);
        CHECK_EQ(st, ST_OK);
        const float *m = st ? NULL : rt_prog_buf(rp, y);
        for (int i = 0; m && i < 8; i++) {
            float w = r == 0 ? want3[i] : r == 1 ? want5[i] : r == 2 ? 0.0f : 1.0f;
            CHECK(m[i] == w);
        }
        rt_prog_free(rp);
        ir_graph_free(g);
    }
    struct diag d = {0}; /* k beyond the element count is a shape error naming k */
    struct ir_builder b;
    struct ir_graph *g = new_graph(&b, &d);
    int64_t dims[1] = {3};
    uint32_t in = g_input(g, "x", IR_F32, 1, dims);
    struct ir_attr at = bld_attr_int("k", 4);
    bld_node(&b, IR_OP_TopKMask, 1, &in, 1, &at, 1, NULL);
    CHECK(b.err != ST_OK && strstr(d.msg, "k = 4") != NULL);
    ir_graph_free(g);
}

/* sites with different C, and SPD losses in an APD config, are refused by name */
TEST(config_errors)
{
    struct dc_config c;
    struct diag d = {0};
    struct ir_graph *g = NULL;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    int ns = 0, nf = 0;
    apd_config(&c, "mlp_in", 3, 1.0, 1.0);
    c.sites[1] = c.sites[0];
    snprintf(c.sites[1].pattern, sizeof c.sites[1].pattern, "mlp_out");
    c.sites[1].C = 4;
    c.n_sites = 2;
    int st = build_rows(&g, &d);
    if (!st)
        st = dc_select_sites(g, &c, &sites, &ns, &fac, &nf, &d);
    CHECK_EQ(st, ST_OK);
    CHECK(dc_apd_sites(&c, sites, ns, fac, nf, &d) != ST_OK);
    CHECK(strstr(d.msg, "same C") != NULL);
    free(sites);
    free(fac);
    sites = NULL;
    fac = NULL;
    c.sites[1].C = 3;
    c.n_losses = 1; /* an SPD loss list */
    struct dc_prog p = {0};
    d = (struct diag){0};
    st = dc_select_sites(g, &c, &sites, &ns, &fac, &nf, &d);
    if (!st)
        st = dc_apd_sites(&c, sites, ns, fac, nf, &d);
    CHECK_EQ(st, ST_OK);
    CHECK(dc_build_apd_train(g, &c, sites, ns, fac, nf, &p, &d) != ST_OK);
    CHECK(strstr(d.msg, "loss_metric_configs") != NULL);
    if (p.g == g)
        g = NULL;
    dc_prog_free(&p);
    ir_graph_free(g);
    free(sites);
    free(fac);
}

/* the train step's build refused with an error containing want (and no crash) */
static void refused(build_fn bf, const char *pattern, const char *want)
{
    struct dc_config c;
    struct diag d = {0};
    struct ir_graph *g = NULL;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    struct dc_prog p = {0};
    int ns = 0, nf = 0;
    apd_config(&c, pattern, 2, 1.0, 1.0);
    int st = bf(&g, &d);
    if (!st)
        st = dc_select_sites(g, &c, &sites, &ns, &fac, &nf, &d);
    if (!st)
        st = dc_apd_sites(&c, sites, ns, fac, nf, &d);
    CHECK_EQ(st, ST_OK);
    if (!st) {
        st = dc_build_apd_train(g, &c, sites, ns, fac, nf, &p, &d);
        if (p.g == g)
            g = NULL;
        if (!st || !strstr(d.msg, want))
            fprintf(stderr, "  %s: want an error with '%s', got %d '%s'\n", pattern, want, st,
                    d.msg);
        CHECK(st != ST_OK && strstr(d.msg, want) != NULL);
    }
    dc_prog_free(&p);
    ir_graph_free(g);
    free(sites);
    free(fac);
}

/* APD's cosine (METHOD §9.4): lr·step/w in the warmup, then lr·cos(½π·t/(T−1)) */
TEST(apd_cosine_schedule)
{
    struct dc_schedule_cfg q = {0.03, 0.1, 1.0, DC_SCHED_QCOSINE}; /* 101 steps: w 10, T 91 */
    CHECK(fabs(dc_schedule_value(&q, 5, 101) - 0.015) < 1e-12);
    CHECK(fabs(dc_schedule_value(&q, 10, 101) - 0.03) < 1e-12);
    CHECK(fabs(dc_schedule_value(&q, 55, 101) - 0.03 * cos(M_PI / 4)) < 1e-12);
    CHECK(fabs(dc_schedule_value(&q, 100, 101)) < 1e-12);
    q.final_val_frac = 0.5; /* not a parameter of APD's cosine */
    CHECK(fabs(dc_schedule_value(&q, 55, 101) - 0.03 * cos(M_PI / 4)) < 1e-12);
}

/* positions that may mix ([B, T]) and outputs too wide: errors, not wrong results or a crash */
TEST(refused_targets)
{
    rng_state = 3;
    refused(build_batched, "mlp_*", "positions of rank 2");
    refused(build_wide, "W", "the model has 5000");
}

static const struct test_case tests[] = {
    T(mlp_values_and_gradients),
    T(tms_tied_values_and_gradients),
    T(topk_mask_kernel),
    T(config_errors),
    T(refused_targets),
    T(apd_cosine_schedule),
};
TEST_MAIN(tests)
