/* test_vpd.c — the VPD pieces of the train step (passes/adversary.c) on a
 * MatMul target with [B, T] positions, against independent checks:
 *   - the persistent adversary's source gradients (the warmup ascent's own
 *     autodiff and the one recovered from the main backward) against central
 *     differences of the losses they differentiate;
 *   - the source Adam ascent against the formula of METHOD §4.7 evaluated here;
 *   - the frequency-minimality term (β ≠ 0, METHOD §4.3) against central
 *     differences w.r.t. every CI weight;
 *   - the config checks (one adversary, coeff > 0).
 * Hard sigmoids and ReLU: the losses are piecewise smooth in every input. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decompose_fixture.h"

struct vstep {
    struct dc_prog prog;
    struct dc_site *sites;
    struct dc_factor *fac;
    int ns, nf;
    struct rt_prog *rp;
};

/* scalar values: distinct and nontrivial (the runtime's own are tested elsewhere) */
static float scalar_of(const struct dc_input *in)
{
    switch (in->scalar) {
    case DC_SC_LR: return 1e-3f;
    case DC_SC_P: return 2.0f;
    case DC_SC_BC1: return 0.3f;
    case DC_SC_BC2: return 0.05f;
    case DC_SC_SRC_LR: return 0.02f;
    case DC_SC_SRC_BC1: return 0.4f + 0.1f * (float)in->sub;
    case DC_SC_SRC_BC2: return 0.1f + 0.05f * (float)in->sub;
    default: return 0.0f;
    }
}

/* random states: sources in (0.1, 0.9), second moments positive, the rest N(0, ·) */
static void vstep_fill(struct vstep *s)
{
    for (int k = 0; k < s->prog.n_st; k++) {
        const struct dc_state *st = &s->prog.st[k];
        float *v = rt_prog_buf(s->rp, st->t);
        int64_t n = ir_numel(&s->prog.g->t[st->t]);
        int src = strstr(st->name, ".source") != NULL;
        int second = strncmp(st->name, "ppgd.", 5) == 0 && strstr(st->name, ".v") != NULL;
        for (int64_t j = 0; j < n; j++)
            v[j] = src      ? (float)rng_unif(0.1, 0.9)
                   : second ? (float)rng_unif(1e-4, 1e-2)
                            : (float)rng_normal(st->std > 0 ? st->std : 0.5);
    }
    for (int i = 0; i < s->prog.n_in; i++) {
        const struct dc_input *in = &s->prog.in[i];
        const struct ir_tensor *t = &s->prog.g->t[in->t];
        float *b = rt_prog_buf(s->rp, in->t);
        if (in->kind == DC_FEED_SCALAR) {
            b[0] = scalar_of(in);
        } else {
            void *x = in->kind == DC_FEED_DATA
                          ? rand_input(t, 0)
                          : rand_vec(ir_numel(t), M_RANDOM, in->kind == DC_FEED_ROUTE);
            memcpy(b, x, rt_tensor_bytes(t));
            free(x);
        }
    }
}

static int vstep_build(const struct dc_config *c, struct vstep *s)
{
    struct diag d = {0};
    struct ir_graph *g = NULL;
    memset(s, 0, sizeof *s);
    int st = build_batched(&g, &d);
    if (!st)
        st = dc_select_sites(g, c, &s->sites, &s->ns, &s->fac, &s->nf, &d);
    if (!st) {
        st = dc_build_spd_train(g, c, s->sites, s->ns, s->fac, s->nf, &s->prog, &d);
        g = NULL;
        if (!st)
            dc_prog_keep_grads(&s->prog); /* compared after the run */
    }
    if (!st)
        st = rt_prog_new(s->prog.g, &cg_ref, &s->rp, &d);
    ir_graph_free(g);
    if (st) {
        fprintf(stderr, "  building the step: %s\n", d.msg);
        test_failed_ = 1;
        return st;
    }
    vstep_fill(s);
    struct diag d2 = {0};
    return rt_prog_run(s->rp, &d2);
}

static void vstep_free(struct vstep *s)
{
    rt_prog_free(s->rp);
    dc_prog_free(&s->prog);
    free(s->sites);
    free(s->fac);
}

static uint32_t find_tap(const struct vstep *s, const char *name)
{
    for (int i = 0; i < s->prog.n_tap; i++)
        if (strcmp(s->prog.tap[i].name, name) == 0)
            return s->prog.tap[i].t;
    fprintf(stderr, "  no tap '%s'\n", name);
    test_failed_ = 1;
    return IR_NONE;
}

static uint32_t find_metric(const struct vstep *s, const char *name)
{
    for (int i = 0; i < s->prog.n_metric; i++)
        if (strcmp(s->prog.metric[i].name, name) == 0)
            return s->prog.metric[i].t;
    fprintf(stderr, "  no metric '%s'\n", name);
    test_failed_ = 1;
    return IR_NONE;
}

static const struct dc_state *find_state(const struct vstep *s, const char *name)
{
    for (int i = 0; i < s->prog.n_st; i++)
        if (strcmp(s->prog.st[i].name, name) == 0)
            return &s->prog.st[i];
    fprintf(stderr, "  no state '%s'\n", name);
    test_failed_ = 1;
    return NULL;
}

/* central difference of scalar tensor f w.r.t. entry i of tensor x (a state or input) */
static double fd(struct vstep *s, uint32_t x, long i, uint32_t f, double h)
{
    float *p = rt_prog_buf(s->rp, x);
    const float *y = rt_prog_buf(s->rp, f);
    struct diag d = {0};
    float saved = p[i];
    p[i] = (float)((double)saved + h);
    rt_prog_run(s->rp, &d);
    double up = (double)*y;
    p[i] = (float)((double)saved - h);
    rt_prog_run(s->rp, &d);
    double dn = (double)*y;
    double dx = (double)(float)((double)saved + h) - (double)(float)((double)saved - h);
    p[i] = saved;
    rt_prog_run(s->rp, &d);
    return (up - dn) / dx;
}

static double gmax_of(struct vstep *s, uint32_t grad, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fmax(m, fabs((double)((const float *)rt_prog_buf(s->rp, grad))[i]));
    return m;
}

/* grad (a tensor of the program) against central differences of f w.r.t. x: within 1 %
 * or 0.1 % of the largest entry (float32 differences of a piecewise-smooth loss) */
static void check_grad(struct vstep *s, uint32_t x, uint32_t grad, uint32_t f, const char *what)
{
    if (x == IR_NONE || grad == IR_NONE || f == IR_NONE)
        return;
    long n = (long)ir_numel(&s->prog.g->t[x]), bad = 0;
    double worst = 0, gmax = 0;
    for (long i = 0; i < n; i++) {
        double a = (double)((const float *)rt_prog_buf(s->rp, grad))[i];
        double b = fd(s, x, i, f, 3e-3);
        double err = fabs(a - b);
        worst = fmax(worst, err);
        gmax = fmax(gmax, fabs(a));
        if (err > 1e-2 * fmax(fabs(a), fabs(b)) + 1e-3 * gmax_of(s, grad, n)) {
            if (bad++ < 4)
                fprintf(stderr, "  %s[%ld]: program %.7g, central difference %.7g\n", what, i,
                        a, b);
            test_failed_ = 1;
        }
    }
    printf("  %-34s %4ld entries, max |grad| %.3g, max |fd - grad| %.2g\n", what, n, gmax, worst);
    CHECK(gmax > 1e-6); /* a gradient that is identically zero checks nothing */
}

static void vpd_config(struct dc_config *c, int n_warmup, double coeff)
{
    dc_config_defaults(c, "vpd");
    c->sigmoid_type = DC_SIG_HARD;
    c->ci_fn_type = DC_CI_MLP;
    c->ci_fn_hidden_dims[0] = 3;
    c->n_ci_hidden = 1;
    c->steps = 10;
    c->losses[0] = (struct dc_loss){.kind = DC_LOSS_PERSISTENT_PGD_RECON, .coeff = coeff,
                                    .n_steps = n_warmup, .scope = DC_SCOPE_PER_POSITION,
                                    .opt = {1, {0.01, 0.0, 1.0, DC_SCHED_CONSTANT}, 0.5, 0.99, 1e-8}};
    c->losses[1] = (struct dc_loss){.kind = DC_LOSS_STOCHASTIC_RECON_SUBSET, .coeff = 0.5};
    c->n_losses = 2;
}

/* every site's source gradient tap "ppgd.grad.0.<site>" against central differences of
 * f (a tap, or a metric when f_is_metric) w.r.t. the persistent source state */
static void source_gradients(int n_warmup, double coeff, const char *f, int f_is_metric)
{
    struct dc_config c;
    struct vstep s;
    vpd_config(&c, n_warmup, coeff);
    if (vstep_build(&c, &s) == ST_OK) {
        uint32_t ft = f_is_metric ? find_metric(&s, f) : find_tap(&s, f);
        for (int i = 0; i < s.ns; i++) {
            char nm[300], gn[300];
            snprintf(nm, sizeof nm, "ppgd.%s.source", s.sites[i].name);
            snprintf(gn, sizeof gn, "ppgd.grad.0.%s", s.sites[i].name);
            const struct dc_state *src = find_state(&s, nm);
            check_grad(&s, src ? src->t : IR_NONE, find_tap(&s, gn), ft, gn);
        }
    }
    vstep_free(&s);
}

/* the warmup ascent differentiates its own loss w.r.t. the persistent source */
TEST(warmup_source_gradient) { source_gradients(2, 0.5, "ppgd.loss.0", 0); }

/* with no warmup the loss reads the state through StopGradient: the gradient the final
 * ascent uses, recovered from the main backward as ∂L_total/∂s / coeff, is ∂L_ppgd/∂s */
TEST(final_source_gradient_from_main_backward)
{
    source_gradients(0, 0.7, "loss/PersistentPGDReconLoss", 1);
}

/* the fresh adversary's first ascent: its source gradient (per position, and shared
 * across the batch, where it sums over the positions) against central differences of
 * its loss w.r.t. the random initial source, a program input */
static void pgd_gradient(int shared)
{
    struct dc_config c;
    struct vstep s;
    vpd_config(&c, 0, 0.7);
    c.losses[0] = (struct dc_loss){.kind = DC_LOSS_PGD_RECON, .coeff = 1.0, .n_steps = 2,
                                   .init = DC_PGD_INIT_RANDOM,
                                   .scope = shared ? DC_SCOPE_SINGLE : DC_SCOPE_PER_POSITION,
                                   .opt = {0, {0.1, 0.0, 1.0, DC_SCHED_CONSTANT}, 0.9, 0.999,
                                           1e-8}};
    c.n_losses = 1;
    if (vstep_build(&c, &s) == ST_OK) {
        int site = 0;
        for (int k = 0; k < s.prog.n_in && site < s.ns; k++) {
            if (s.prog.in[k].kind != DC_FEED_UNIFORM) /* the sources' inits, in site order */
                continue;
            char gn[300];
            snprintf(gn, sizeof gn, "pgd.grad.0.%s", s.sites[site].name);
            const struct ir_tensor *t = &s.prog.g->t[s.prog.in[k].t];
            CHECK_EQ(t->dims[0], shared ? 1 : 2);
            check_grad(&s, s.prog.in[k].t, find_tap(&s, gn), find_tap(&s, "pgd.loss.0"), gn);
            site++;
        }
        CHECK_EQ(site, s.ns);
    }
    vstep_free(&s);
}

TEST(fresh_pgd_gradient) { pgd_gradient(0); }
TEST(fresh_pgd_shared_source_gradient) { pgd_gradient(1); }

/* next source, m, v = the Adam ascent of METHOD §4.7, evaluated here in double */
TEST(source_adam_ascent)
{
    struct dc_config c;
    struct vstep s;
    vpd_config(&c, 0, 0.7);
    if (vstep_build(&c, &s) != ST_OK) {
        vstep_free(&s);
        return;
    }
    const double b1 = 0.5, b2 = 0.99, eps = 1e-8, lr = 0.02, bc1 = 0.4, bc2 = 0.1;
    int clamped = 0, checked = 0;
    for (int i = 0; i < s.ns; i++) {
        char ns_[300], nm[300], nv[300], gn[300];
        snprintf(ns_, sizeof ns_, "ppgd.%s.source", s.sites[i].name);
        snprintf(nm, sizeof nm, "ppgd.%s.m", s.sites[i].name);
        snprintf(nv, sizeof nv, "ppgd.%s.v", s.sites[i].name);
        snprintf(gn, sizeof gn, "ppgd.grad.0.%s", s.sites[i].name);
        const struct dc_state *S = find_state(&s, ns_), *M = find_state(&s, nm),
                              *V = find_state(&s, nv);
        uint32_t G = find_tap(&s, gn);
        if (!S || !M || !V || G == IR_NONE)
            continue;
        long n = (long)ir_numel(&s.prog.g->t[S->t]);
        const float *s0 = rt_prog_buf(s.rp, S->t), *m0 = rt_prog_buf(s.rp, M->t),
                    *v0 = rt_prog_buf(s.rp, V->t), *g = rt_prog_buf(s.rp, G),
                    *s1 = rt_prog_buf(s.rp, S->next), *m1 = rt_prog_buf(s.rp, M->next),
                    *v1 = rt_prog_buf(s.rp, V->next);
        for (long k = 0; k < n; k++) {
            double gk = (double)g[k];
            double m = b1 * (double)m0[k] + (1 - b1) * gk, v = b2 * (double)v0[k] + (1 - b2) * gk * gk;
            double want = (double)s0[k] + lr / bc1 * m / (sqrt(v) / bc2 + eps);
            clamped += want < 0 || want > 1;
            want = fmin(1.0, fmax(0.0, want));
            CHECK_NEAR(m1[k], m, 1e-6 * (1 + fabs(m)));
            CHECK_NEAR(v1[k], v, 1e-6 * (1 + fabs(v)));
            CHECK_NEAR(s1[k], want, 2e-6);
            checked++;
        }
    }
    printf("  %d source entries checked, %d of them clamped to [0, 1]\n", checked, clamped);
    CHECK(checked > 0);
    vstep_free(&s);
}

/* the importance term with the frequency part (β = 0.5) against central differences
 * w.r.t. every CI weight and V (the mlp CI fn reads x·V) */
TEST(frequency_minimality_gradient)
{
    struct dc_config c;
    struct vstep s;
    dc_config_defaults(&c, "vpd");
    c.sigmoid_type = DC_SIG_HARD;
    c.ci_fn_type = DC_CI_MLP;
    c.ci_fn_hidden_dims[0] = 3;
    c.n_ci_hidden = 1;
    c.losses[0] = (struct dc_loss){.kind = DC_LOSS_IMPORTANCE_MINIMALITY, .coeff = 1.0,
                                   .pnorm = 2.0, .eps = 1e-12, .beta = 0.5,
                                   .p_anneal_start_frac = 1.0, .p_anneal_final_p = -1.0,
                                   .p_anneal_end_frac = 1.0};
    c.n_losses = 1;
    int checked = 0;
    if (vstep_build(&c, &s) == ST_OK)
        for (int k = 0; k < s.prog.n_st; k++) {
            const struct dc_state *st = &s.prog.st[k];
            if (st->trainable == DC_TRAIN_NO || st->grad == IR_NONE ||
                strstr(st->name, ".U") != NULL) /* U does not reach the CI */
                continue;
            check_grad(&s, st->t, st->grad, s.prog.loss, st->name);
            checked++;
        }
    CHECK(checked >= 6); /* V and W0, b0, W1, b1 per site; b1 of the output layer too */
    vstep_free(&s);
}

/* a second persistent adversary, or one with coeff 0, is refused by name */
TEST(one_persistent_adversary)
{
    struct dc_config c;
    vpd_config(&c, 1, 0.5);
    c.losses[2] = c.losses[0];
    c.n_losses = 3;
    struct diag d = {0};
    struct ir_graph *g = NULL;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    struct dc_prog p = {0};
    int ns, nf;
    CHECK_EQ(build_batched(&g, &d), ST_OK);
    CHECK_EQ(dc_select_sites(g, &c, &sites, &ns, &fac, &nf, &d), ST_OK);
    CHECK(dc_build_spd_train(g, &c, sites, ns, fac, nf, &p, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "PersistentPGDReconLoss");
    if (!p.g)
        ir_graph_free(g);
    dc_prog_free(&p);
    free(sites);
    free(fac);
}

static const struct test_case tests[] = {
    T(warmup_source_gradient),
    T(final_source_gradient_from_main_backward),
    T(source_adam_ascent),
    T(fresh_pgd_gradient),
    T(fresh_pgd_shared_source_gradient),
    T(frequency_minimality_gradient),
    T(one_persistent_adversary),
};

TEST_MAIN(tests)
