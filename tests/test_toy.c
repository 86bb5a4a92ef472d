/* test_toy.c — the toy targets (passes/toy_models.c): their training programs
 * learn, the same seed gives the same weights, and the exported models read
 * back with the sites decomposition expects (TMS: one tied initializer) and
 * compute what the in-memory forward computes. Small batches and few steps:
 * the full trainings are `pdc toy` runs (slow). */
#include <stdint.h>
#include <unistd.h>

#include "decomp.h"
#include "exec.h"
#include "harness.h"
#include "onnx.h"
#include "pass.h"
#include "target.h"
#include "toy.h"
#include "train.h"

#define MAX_LOG 4096

static const void *store_weight(void *ctx, const char *name, size_t nbytes)
{
    struct rt_store_item *it = rt_store_find(ctx, name);
    return it && it->dtype == IR_F32 && it->nbytes == nbytes ? it->data : NULL;
}

/* the "loss" values of every logged step, in order */
static int read_losses(FILE *f, double *loss, int max)
{
    char line[4096];
    int n = 0;
    rewind(f);
    while (n < max && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"loss\": ");
        if (p)
            loss[n++] = strtod(p + 8, NULL);
    }
    return n;
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : (double)NAN;
}

/* setup + training on `store`; losses (one per step) into loss[], count returned (<0: failed) */
static int train(const struct toy_spec *s, int64_t batch, int64_t steps, uint64_t seed,
                 struct rt_store *store, double *loss)
{
    struct diag d = {0};
    struct dc_prog setup = {0}, prog;
    struct ds_source *data = NULL;
    FILE *mf = tmpfile();
    struct rt_train_opts os = {.seed = seed, .phase = "setup"},
                         o = {.seed = seed, .phase = "test", .metrics = mf, .log_every = 1};
    double last[8];
    int st = ds_open_toy(s->p, s->lo, s->hi, &data, &d);
    if (!st && !(st = toy_build_setup(s, &setup, &d)) && setup.g)
        st = rt_train(&setup, &cg_ref, store, data, &os, last, &d);
    dc_prog_free(&setup);
    if (!st && !(st = toy_build_train(s, batch, steps, &prog, &d))) {
        CHECK_EQ(prog.n_metric, 1);
        st = rt_train(&prog, &cg_ref, store, data, &o, last, &d);
        dc_prog_free(&prog);
    }
    ds_close(data);
    if (st)
        fprintf(stderr, "  %s: %s\n", s->name, d.msg);
    int n = !st && mf ? read_losses(mf, loss, MAX_LOG) : -1;
    if (mf)
        fclose(mf);
    return n;
}

/* the loss falls: the last tenth of the steps averages well below the first */
static void check_learns(const char *name, int64_t batch, int64_t steps, double ratio)
{
    const struct toy_spec *s = toy_find(name);
    CHECK(s != NULL);
    if (!s)
        return;
    static double loss[MAX_LOG];
    struct rt_store store = {0};
    int n = train(s, batch, steps, 1, &store, loss);
    CHECK_EQ(n, steps);
    if (n == steps) {
        int k = (int)(steps / 10);
        double a = mean(loss, k), b = mean(loss + n - k, k);
        if (!(b < ratio * a))
            fprintf(stderr, "  %s: loss %.6g over the first %d steps, %.6g over the last\n", name,
                    a, k, b);
        CHECK(b < ratio * a);
    }
    rt_store_free(&store);
}

TEST(tms_5_2_learns) { check_learns("tms-5-2", 256, 300, 0.5); }
TEST(resid_mlp_1_learns) { check_learns("resid-mlp-1", 64, 100, 0.8); }

TEST(same_seed_same_weights)
{
    const struct toy_spec *s = toy_find("tms-5-2-id");
    static double loss[MAX_LOG];
    struct rt_store a = {0}, b = {0}, c = {0};
    CHECK_EQ(train(s, 64, 20, 7, &a, loss), 20);
    CHECK_EQ(train(s, 64, 20, 7, &b, loss), 20);
    CHECK_EQ(train(s, 64, 20, 8, &c, loss), 20);
    const struct rt_store_item *wa = rt_store_find(&a, "linear1");
    const struct rt_store_item *wb = rt_store_find(&b, "linear1");
    const struct rt_store_item *wc = rt_store_find(&c, "linear1");
    CHECK(wa && wb && wc);
    if (wa && wb && wc) {
        CHECK(memcmp(wa->data, wb->data, wa->nbytes) == 0);
        CHECK(memcmp(wa->data, wc->data, wa->nbytes) != 0);
    }
    /* the identity layer is a constant, never trained */
    CHECK(rt_store_find(&a, "hidden_layers.0") == NULL);
    rt_store_free(&a);
    rt_store_free(&b);
    rt_store_free(&c);
}

/* ---- export ----------------------------------------------------------------- */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char path[128];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/pdc_test_toy_XXXXXX");
        if (!mkdtemp(tmpdir))
            return NULL;
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static void tmp_done(const char *path)
{
    unlink(path);
    rmdir(tmpdir);
    tmpdir[0] = 0;
}

/* train briefly and write the model; returns the store (caller frees) */
static int export_model(const struct toy_spec *s, const char *path, struct rt_store *store)
{
    static double loss[MAX_LOG];
    struct diag d = {0};
    struct ir_graph *g = NULL;
    if (train(s, 64, 30, 3, store, loss) != 30)
        return 1;
    int st = toy_build_infer(s, 1, store_weight, store, &g, &d);
    if (!st)
        st = onnx_save_file(g, path, NULL, &d);
    if (st)
        fprintf(stderr, "  export %s: %s\n", s->name, d.msg);
    ir_graph_free(g);
    return st;
}

/* import, bind the batch, compile */
static struct ir_graph *load_compiled(const char *path, int64_t batch)
{
    struct diag d = {0};
    struct ir_graph *g = NULL;
    struct pass_ctx cx = {.eval = cg_eval_node};
    int st = onnx_load_file(path, &g, &d);
    if (!st && !(st = ir_bind_sym(g, "batch", batch, &d)))
        st = pass_compile_inference(g, &cx, &d);
    if (st) {
        fprintf(stderr, "  %s: %s\n", path, d.msg);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

/* y of graph g on x [n, n] = v·I; NULL on failure (caller frees) */
static float *run_onehot(const struct ir_graph *g, int64_t n, float v)
{
    struct diag d = {0};
    float *x = calloc((size_t)(n * n), sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i * n + i] = v;
    struct ir_value in = {.name = (char *)"x", .dtype = IR_F32, .rank = 2, .dims = {n, n},
                          .data = x, .nbytes = (size_t)(n * n) * sizeof(float)};
    struct ir_value *outs = NULL;
    int nout = 0;
    float *y = NULL;
    if (rt_run(g, &cg_ref, &in, 1, &outs, &nout, &d) == ST_OK && nout == 1 &&
        ir_value_numel(&outs[0]) == n * n) {
        y = outs[0].data;
        outs[0].data = NULL;
    } else {
        fprintf(stderr, "  run: %s\n", d.msg);
    }
    for (int i = 0; i < nout; i++)
        ir_value_free(&outs[i]);
    free(outs);
    free(x);
    return y;
}

static void check_tms_sites(const struct ir_graph *g)
{
    struct pass_site *ps = NULL;
    int n = 0;
    CHECK_EQ(pass_find_sites(g, &ps, &n), ST_OK);
    CHECK_EQ(n, 1); /* linear2.bias is read by an Add: not a site */
    if (n == 1) {
        CHECK(strcmp(g->t[ps[0].weight].name, "linear1") == 0);
        CHECK_EQ(ps[0].n_uses, 2); /* directly and through the Transpose: tied */
        CHECK_EQ(ps[0].d_in, 5);
        CHECK_EQ(ps[0].d_out, 2);
    }
    free(ps);
    /* what decomposition selects by default: two sites sharing one factor */
    struct dc_config c;
    dc_config_defaults(&c, "spd");
    c.n_sites = 0;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    int ns = 0, nf = 0;
    struct diag d = {0};
    CHECK_EQ(dc_select_sites(g, &c, &sites, &ns, &fac, &nf, &d), ST_OK);
    CHECK_EQ(ns, 2);
    CHECK_EQ(nf, 1);
    if (ns == 2 && nf == 1) {
        CHECK_EQ(fac[0].d_in, 5);
        CHECK_EQ(fac[0].d_out, 2);
        CHECK_EQ(sites[0].transposed + sites[1].transposed, 1);
    }
    free(sites);
    free(fac);
}

/* y = ReLU(x·W·Wᵀ + b) by hand, for the one-hot rows of value v */
static void tms_by_hand(const struct rt_store *store, float v, float *y)
{
    const float *W = rt_store_find((struct rt_store *)store, "linear1")->data;
    const float *b = rt_store_find((struct rt_store *)store, "linear2.bias")->data;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            double z = b[j];
            for (int k = 0; k < 2; k++)
                z += (double)v * (double)W[i * 2 + k] * (double)W[j * 2 + k];
            y[i * 5 + j] = (float)(z > 0 ? z : 0);
        }
}

TEST(tms_export_tied)
{
    const struct toy_spec *s = toy_find("tms-5-2");
    const char *path = tmp_path("tms-5-2.onnx");
    struct rt_store store = {0};
    CHECK(path != NULL);
    if (!path || export_model(s, path, &store)) {
        CHECK(0);
        rt_store_free(&store);
        return;
    }
    struct ir_graph *g = load_compiled(path, 5);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ(g->n_inputs, 1);
        CHECK(strcmp(g->t[g->inputs[0]].name, "x") == 0);
        CHECK(strcmp(g->t[g->outputs[0]].name, "y") == 0);
        check_tms_sites(g);
    }
    /* the written model against the in-memory forward and against arithmetic */
    struct ir_graph *mem = NULL;
    struct diag d = {0};
    CHECK_EQ(toy_build_infer(s, 5, store_weight, &store, &mem, &d), ST_OK);
    float *got = g ? run_onehot(g, 5, 0.75f) : NULL, *want = mem ? run_onehot(mem, 5, 0.75f) : NULL;
    float hand[25];
    tms_by_hand(&store, 0.75f, hand);
    CHECK(got && want);
    if (got && want) {
        CHECK_TENSOR(got, want, 25, 0.0, 0.0);
        CHECK_TENSOR(got, hand, 25, 1e-6, 1e-5);
    }
    free(got);
    free(want);
    ir_graph_free(mem);
    ir_graph_free(g);
    rt_store_free(&store);
    tmp_done(path);
}

static int count_sites(const struct ir_graph *g, const char *pattern)
{
    struct dc_config c;
    dc_config_defaults(&c, "spd");
    c.n_sites = 1;
    snprintf(c.sites[0].pattern, sizeof c.sites[0].pattern, "%s", pattern);
    c.sites[0].C = 10;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    int ns = 0, nf = 0;
    struct diag d = {0};
    if (dc_select_sites(g, &c, &sites, &ns, &fac, &nf, &d))
        ns = -1;
    free(sites);
    free(fac);
    return ns;
}

/* W_E has unit-norm rows and W_U = W_Eᵀ (the setup program); the sites the
 * §1.5 patterns select are the MLP matrices only */
TEST(resid_export_sites)
{
    const struct toy_spec *s = toy_find("resid-mlp-2");
    const char *path = tmp_path("resid-mlp-2.onnx");
    struct rt_store store = {0};
    if (!path || export_model(s, path, &store)) {
        CHECK(0);
        rt_store_free(&store);
        return;
    }
    const struct rt_store_item *E = rt_store_find(&store, "W_E"), *U = rt_store_find(&store, "W_U");
    CHECK(E && U);
    int64_t nf = s->n_features, de = s->d_embed;
    for (int64_t i = 0; E && U && i < nf; i++) {
        const float *e = E->data, *u = U->data;
        double sq = 0, tr = 0;
        for (int64_t k = 0; k < de; k++) {
            sq += (double)e[i * de + k] * (double)e[i * de + k];
            tr = fmax(tr, fabs((double)e[i * de + k] - (double)u[k * nf + i]));
        }
        CHECK_NEAR(sq, 1.0, 1e-5);
        CHECK(tr == 0);
    }
    struct ir_graph *g = load_compiled(path, 4);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ(count_sites(g, "layers.*.mlp_in"), 2);
        CHECK_EQ(count_sites(g, "layers.*.mlp_out"), 2);
        CHECK_EQ(count_sites(g, "layers.*"), 4);
        CHECK_EQ(count_sites(g, "*"), 6); /* + W_E and W_U, each its own initializer */
    }
    ir_graph_free(g);
    rt_store_free(&store);
    tmp_done(path);
}

static struct test_case tests[] = {
    T(tms_5_2_learns),
    T(resid_mlp_1_learns),
    T(same_seed_same_weights),
    T(tms_export_tied),
    T(resid_export_sites),
};

TEST_MAIN(tests)
