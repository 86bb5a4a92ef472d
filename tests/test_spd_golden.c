/* test_spd_golden.c — one SPD training step of pdc against golden values from an
 * independent PyTorch implementation (tests/gen/spd_golden.py, which writes
 * tests/data/spd_golden.safetensors), plus a finite-difference check of the
 * whole SPD loss through the program itself.
 *
 * The target is models/default.onnx (TMS-like, W tied through a Transpose), so
 * the two sites "W" and "W@1" share one factor pair: the test catches
 * convention mismatches that finite differences cannot (which squashing feeds
 * which loss, reductions, Δ handling, the straight-through backward, tying).
 *
 * The program is compiled exactly as the CLI does (pdc_compiled_model in
 * tools/pdc_decomp.c), every input is written from the golden file (states by
 * name, data, the uniform draws in the program's input order, the scalars of
 * optimizer step 1), one run, then every loss metric, every trainable state's
 * gradient and every state's next value are compared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp.h"
#include "exec.h"
#include "harness.h"
#include "onnx.h"
#include "pass.h"
#include "safetensors.h"
#include "target.h"

#define BATCH 6

struct golden {
    struct ir_value *v;
    int n;
    char **meta;
    int n_meta;
};

/* one built and allocated train-step program */
struct step {
    struct dc_prog prog;
    struct rt_prog *rp;
    struct dc_site *sites;
    struct dc_factor *fac;
};

/* the golden file next to this file's folder, or $PDC_SPD_GOLDEN (to check a
 * freshly generated or deliberately altered file before committing it) */
static int load_golden(struct golden *gd)
{
    char path[4200], dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    snprintf(path, sizeof path, "%s/data/spd_golden.safetensors", dir);
    const char *env = getenv("PDC_SPD_GOLDEN");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    struct diag d = {0};
    memset(gd, 0, sizeof *gd);
    if (st_read_meta(path, &gd->v, &gd->n, &gd->meta, &gd->n_meta, &d)) {
        fprintf(stderr, "  %s: %s\n", path, d.msg);
        return -1;
    }
    return 0;
}

static void free_golden(struct golden *gd)
{
    st_free(gd->v, gd->n);
    st_meta_free(gd->meta, gd->n_meta);
}

static const struct ir_value *gfind(const struct golden *gd, const char *name)
{
    for (int i = 0; i < gd->n; i++)
        if (strcmp(gd->v[i].name, name) == 0)
            return &gd->v[i];
    return NULL;
}

static const char *gmeta(const struct golden *gd, const char *key)
{
    for (int i = 0; i < gd->n_meta; i++)
        if (strcmp(gd->meta[2 * i], key) == 0)
            return gd->meta[2 * i + 1];
    return NULL;
}

/* a float64 vector from the file (configs), NULL when absent or too short */
static const double *gvec(const struct golden *gd, const char *name, int64_t n)
{
    const struct ir_value *v = gfind(gd, name);
    if (!v || v->dtype != IR_F64 || ir_value_numel(v) < n)
        return NULL;
    return v->data;
}

/* index of a case config's fields (tests/gen/spd_golden.py writes them) */
enum { CF_HARD, CF_P, CF_BETA, CF_EPS, CF_IMP, CF_STOCH, CF_LAYERWISE, CF_FAITH, CF_LR, CF_N };

/* The SPD config of a golden case: sites "W" with C = 4, CI mlp hidden [3],
 * losses in the generator's order (the order fixes which draw is which). */
static void case_config(struct dc_config *c, const double *cf)
{
    dc_config_defaults(c, "spd");
    c->batch_size = BATCH;
    c->steps = 1;
    c->lr = (struct dc_schedule_cfg){cf[CF_LR], 0.0, 1.0, DC_SCHED_CONSTANT};
    snprintf(c->sites[0].pattern, sizeof c->sites[0].pattern, "W");
    c->sites[0].C = 4;
    c->n_sites = 1;
    c->ci_fn_type = DC_CI_MLP;
    c->ci_fn_hidden_dims[0] = 3;
    c->n_ci_hidden = 1;
    c->sigmoid_type = cf[CF_HARD] != 0.0 ? DC_SIG_HARD : DC_SIG_LEAKY_HARD;
    c->use_delta_component = 1;
    c->output_loss_type = DC_OUT_MSE;
    c->faithfulness_warmup_steps = 0;
    c->losses[0] = (struct dc_loss){.kind = DC_LOSS_IMPORTANCE_MINIMALITY, .coeff = cf[CF_IMP],
                                    .pnorm = cf[CF_P], .eps = cf[CF_EPS], .beta = cf[CF_BETA],
                                    .p_anneal_start_frac = 1.0, .p_anneal_final_p = -1.0,
                                    .p_anneal_end_frac = 1.0};
    c->losses[1] = (struct dc_loss){.kind = DC_LOSS_STOCHASTIC_RECON, .coeff = cf[CF_STOCH]};
    c->losses[2] = (struct dc_loss){.kind = DC_LOSS_STOCHASTIC_RECON_LAYERWISE,
                                    .coeff = cf[CF_LAYERWISE]};
    c->losses[3] = (struct dc_loss){.kind = DC_LOSS_FAITHFULNESS, .coeff = cf[CF_FAITH]};
    c->n_losses = 4;
}

/* pdc_compiled_model's few lines: import, bind the batch symbol, compile with
 * constant folding (the Transpose of W folds; site selection sees through it) */
static struct ir_graph *compiled_model(struct diag *d)
{
    char path[4200], dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    snprintf(path, sizeof path, "%s/../models/default.onnx", dir);
    struct ir_graph *g = NULL;
    if (onnx_load_file(path, &g, d))
        return NULL;
    struct ir_tensor *x = &g->t[g->inputs[0]];
    struct pass_ctx cx = {.eval = cg_eval_node};
    if ((x->sym[0] >= 0 && ir_bind_sym(g, g->syms[x->sym[0]], BATCH, d)) ||
        pass_compile_inference(g, &cx, d)) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

static void step_free(struct step *s)
{
    rt_prog_free(s->rp);
    dc_prog_free(&s->prog);
    free(s->sites);
    free(s->fac);
    memset(s, 0, sizeof *s);
}

static int step_build(const struct dc_config *c, struct step *s)
{
    struct diag d = {0};
    int ns = 0, nf = 0;
    memset(s, 0, sizeof *s);
    struct ir_graph *g = compiled_model(&d);
    int st = g ? ST_OK : d.status;
    if (!st)
        st = dc_select_sites(g, c, &s->sites, &ns, &s->fac, &nf, &d);
    if (!st) {
        CHECK_EQ(ns, 2); /* "W" and its tied second use "W@1", one factor pair */
        CHECK_EQ(nf, 1);
        st = dc_build_spd_train(g, c, s->sites, ns, s->fac, nf, &s->prog, &d);
        g = NULL; /* owned by the program now */
    }
    if (!st)
        st = rt_prog_new(s->prog.g, &cg_ref, &s->rp, &d);
    ir_graph_free(g);
    if (st) {
        fprintf(stderr, "  building the SPD step: %s\n", d.msg);
        test_failed_ = 1;
        step_free(s);
    }
    return st;
}

/* copy a golden tensor into a program buffer, checking its size */
static int put(struct step *s, uint32_t t, const struct ir_value *v, const char *what)
{
    const struct ir_tensor *x = &s->prog.g->t[t];
    if (!v || v->dtype != IR_F32 || v->nbytes != rt_tensor_bytes(x)) {
        fprintf(stderr, "  golden value for '%s' missing or of the wrong size\n", what);
        test_failed_ = 1;
        return -1;
    }
    memcpy(rt_prog_buf(s->rp, t), v->data, v->nbytes);
    return 0;
}

/* parameters from the file; AdamW moments start at zero (optimizer step 1) */
static int feed_states(struct step *s, const struct golden *gd)
{
    for (int i = 0; i < s->prog.n_st; i++) {
        const struct dc_state *st = &s->prog.st[i];
        char nm[300];
        snprintf(nm, sizeof nm, "state/%s", st->name);
        if (strncmp(st->name, "adam.", 5) == 0)
            memset(rt_prog_buf(s->rp, st->t), 0, rt_tensor_bytes(&s->prog.g->t[st->t]));
        else if (put(s, st->t, gfind(gd, nm), nm))
            return -1;
    }
    return 0;
}

static double scalar_value(const struct dc_prog *p, enum dc_scalar which, const double *cf)
{
    switch (which) {
    case DC_SC_LR: return cf[CF_LR];
    case DC_SC_P: return cf[CF_P];
    case DC_SC_BC1: return 1.0 - p->beta1;       /* 1 − β1^t at t = 1 */
    case DC_SC_BC2: return sqrt(1.0 - p->beta2); /* √(1 − β2^t) at t = 1 */
    default: break; /* the adversary's scalars: the SPD golden cases have none */
    }
    return 0;
}

/* data, the k-th uniform input ← golden "draw.k", scalars of step 1 */
static int feed_inputs(struct step *s, const struct golden *gd, const double *cf)
{
    int k = 0;
    for (int i = 0; i < s->prog.n_in; i++) {
        const struct dc_input *in = &s->prog.in[i];
        char nm[64];
        switch (in->kind) {
        case DC_FEED_DATA:
            if (put(s, in->t, gfind(gd, "x"), "x"))
                return -1;
            break;
        case DC_FEED_UNIFORM:
            CHECK_EQ(in->stream, k); /* streams are numbered in creation order */
            snprintf(nm, sizeof nm, "draw.%d", k++);
            if (put(s, in->t, gfind(gd, nm), nm))
                return -1;
            break;
        case DC_FEED_SCALAR:
            *(float *)rt_prog_buf(s->rp, in->t) = (float)scalar_value(&s->prog, in->scalar, cf);
            break;
        case DC_FEED_ROUTE: /* only subset-routed losses have these; the golden config has none */
            fprintf(stderr, "  unexpected routing input '%s'\n", s->prog.g->t[in->t].name);
            test_failed_ = 1;
            return -1;
        }
    }
    char nm[64];
    snprintf(nm, sizeof nm, "draw.%d", k);
    CHECK(gfind(gd, nm) == NULL); /* the program consumes every golden draw */
    return 0;
}

static int run(struct step *s)
{
    struct diag d = {0};
    int st = rt_prog_run(s->rp, &d);
    if (st) {
        fprintf(stderr, "  run: %s\n", d.msg);
        test_failed_ = 1;
    }
    return st;
}

/* ---- comparison --------------------------------------------------------------- */

struct tol {
    double rtol, atol_rel; /* |got − want| <= rtol·|want| + atol_rel·max|want| */
};

/* per kind (metrics, gradients, next states), for the summary: the largest
 * relative error above the floor, and the largest share of the tolerance used */
static double max_rel[3], max_used[3];

/* compare program tensor t with golden `name`; returns 1 when it was found */
static int compare(struct step *s, uint32_t t, const struct golden *gd, const char *name,
                   struct tol tl, int kind)
{
    const struct ir_value *v = gfind(gd, name);
    const struct ir_tensor *x = &s->prog.g->t[t];
    if (!v || v->dtype != IR_F32 || v->nbytes != rt_tensor_bytes(x)) {
        fprintf(stderr, "  %s: no golden value of the program's size\n", name);
        test_failed_ = 1;
        return 0;
    }
    const float *got = rt_prog_buf(s->rp, t), *want = v->data;
    long n = (long)ir_value_numel(v);
    double scale = 0;
    for (long i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)want[i]));
    for (long i = 0; i < n; i++) {
        double w = fabs((double)want[i]), dl = fabs((double)got[i] - (double)want[i]);
        if (w > tl.atol_rel * scale)
            max_rel[kind] = fmax(max_rel[kind], dl / w);
        if (scale > 0)
            max_used[kind] = fmax(max_used[kind], dl / (tl.rtol * w + tl.atol_rel * scale));
    }
    check_tensor_(got, want, n, tl.atol_rel * scale, tl.rtol, name, __FILE__, __LINE__);
    return 1;
}

/* every metric, every trainable state's gradient, every state's next value */
static int compare_case(struct step *s, const struct golden *gd, const char *cs, struct tol tl)
{
    char nm[400];
    int used = 0;
    for (int i = 0; i < s->prog.n_metric; i++) {
        snprintf(nm, sizeof nm, "%s/metric/%s", cs, s->prog.metric[i].name);
        used += compare(s, s->prog.metric[i].t, gd, nm, tl, 0);
    }
    for (int i = 0; i < s->prog.n_st; i++) {
        const struct dc_state *st = &s->prog.st[i];
        if (st->trainable != DC_TRAIN_NO) {
            CHECK(st->grad != IR_NONE);
            snprintf(nm, sizeof nm, "%s/grad/%s", cs, st->name);
            if (st->grad != IR_NONE)
                used += compare(s, st->grad, gd, nm, tl, 1);
        }
        CHECK(st->next != IR_NONE);
        snprintf(nm, sizeof nm, "%s/next/%s", cs, st->name);
        if (st->next != IR_NONE)
            used += compare(s, st->next, gd, nm, tl, 2);
    }
    return used;
}

/* golden values of a case that the program has nothing to compare with are a
 * missing output (a metric the program lost, a state it no longer has) */
static int golden_entries(const struct golden *gd, const char *cs)
{
    size_t len = strlen(cs);
    int n = 0;
    for (int i = 0; i < gd->n; i++)
        if (strncmp(gd->v[i].name, cs, len) == 0 && gd->v[i].name[len] == '/' &&
            strcmp(gd->v[i].name + len, "/config") != 0)
            n++;
    return n;
}

static void golden_case(const struct golden *gd, const char *cs, struct tol tl)
{
    char nm[300];
    snprintf(nm, sizeof nm, "%s/config", cs);
    const double *cf = gvec(gd, nm, CF_N);
    CHECK(cf != NULL);
    if (!cf)
        return;
    struct dc_config c;
    case_config(&c, cf);
    struct step s;
    if (step_build(&c, &s))
        return;
    if (!feed_states(&s, gd) && !feed_inputs(&s, gd, cf) && !run(&s)) {
        int used = compare_case(&s, gd, cs, tl);
        CHECK_EQ(used, golden_entries(gd, cs));
    }
    step_free(&s);
}

/* ---- tests -------------------------------------------------------------------- */

TEST(golden_spd_step)
{
    struct golden gd;
    if (load_golden(&gd)) {
        test_failed_ = 1;
        return;
    }
    const double *ck = gvec(&gd, "check/config", 2);
    const char *cases = gmeta(&gd, "cases");
    CHECK(ck && cases);
    if (ck && cases) {
        struct tol tl = {ck[0], ck[1]};
        char list[512];
        snprintf(list, sizeof list, "%s", cases);
        for (char *save = NULL, *cs = strtok_r(list, ",", &save); cs;
             cs = strtok_r(NULL, ",", &save)) {
            memset(max_rel, 0, sizeof max_rel);
            memset(max_used, 0, sizeof max_used);
            golden_case(&gd, cs, tl);
            printf("  %-13s max rel err (share of tolerance used): metrics %.2g (%.2f), "
                   "grads %.2g (%.2f), next %.2g (%.2f)\n", cs, max_rel[0], max_used[0],
                   max_rel[1], max_used[1], max_rel[2], max_used[2]);
        }
        printf("  (golden from torch %s)\n", gmeta(&gd, "torch") ? gmeta(&gd, "torch") : "?");
    }
    free_golden(&gd);
}

/* central difference of loss/total w.r.t. one entry of state st */
static double fd_entry(struct step *s, const struct dc_state *st, long i, double h)
{
    float *p = rt_prog_buf(s->rp, st->t);
    const float *loss = rt_prog_buf(s->rp, s->prog.loss);
    float saved = p[i];
    p[i] = (float)((double)saved + h);
    run(s);
    double up = (double)*loss;
    p[i] = (float)((double)saved - h);
    run(s);
    double dn = (double)*loss;
    /* the perturbation actually applied, after rounding to float32 */
    double dx = (double)(float)((double)saved + h) - (double)(float)((double)saved - h);
    p[i] = saved;
    return (up - dn) / dx;
}

/* every entry of one trainable state; returns the number of mismatches */
static int fd_state(struct step *s, const struct dc_state *st, const double *fc, double *worst)
{
    long n = (long)ir_numel(&s->prog.g->t[st->t]);
    float *an = malloc((size_t)n * sizeof *an);
    if (!an)
        return 1;
    run(s); /* the gradient at the golden point (earlier differences left buffers elsewhere) */
    memcpy(an, rt_prog_buf(s->rp, st->grad), (size_t)n * sizeof *an);
    int bad = 0;
    for (long i = 0; i < n; i++) {
        double fd = fd_entry(s, st, i, fc[0]), a = (double)an[i], dl = fabs(fd - a);
        *worst = fmax(*worst, dl);
        if (dl <= fc[1] * fmax(fabs(fd), fabs(a)) + fc[2])
            continue;
        if (bad++ < 5)
            fprintf(stderr, "  d loss/d %s[%ld]: program %.7g, central difference %.7g NOT OK\n",
                    st->name, i, a, fd);
        test_failed_ = 1;
    }
    free(an);
    return bad;
}

/* every trainable state of a fed program */
static void fd_all(struct step *s, const double *fc)
{
    double worst = 0;
    int checked = 0, bad = 0;
    for (int i = 0; i < s->prog.n_st; i++)
        if (s->prog.st[i].trainable != DC_TRAIN_NO && s->prog.st[i].grad != IR_NONE) {
            bad += fd_state(s, &s->prog.st[i], fc, &worst);
            checked++;
        }
    CHECK_EQ(checked, 10); /* V, U, and W0, b0, W1, b1 of both sites */
    printf("  %d tensors, step %g: max |fd - grad| %.2g, %d entries off\n", checked, fc[0], worst,
           bad);
}

/* The whole SPD loss against central differences of the program's own loss,
 * w.r.t. every entry of V, U and every CI weight tensor. sigmoid_type hard, so
 * no straight-through estimator is involved and the loss is differentiable at
 * the golden point; the masks are fixed by the fixed draws. The generator
 * checked in float64 that no step of this size crosses a clamp or ReLU kink,
 * and that float32 torch passes the same criterion. */
TEST(finite_differences)
{
    struct golden gd;
    if (load_golden(&gd)) {
        test_failed_ = 1;
        return;
    }
    const char *cs = gmeta(&gd, "fd_case");
    char nm[300];
    snprintf(nm, sizeof nm, "%s/config", cs ? cs : "?");
    const double *cf = gvec(&gd, nm, CF_N), *fc = gvec(&gd, "fd/config", 3);
    int usable = cf && fc && cf[CF_HARD] != 0.0;
    CHECK(usable);
    struct dc_config c;
    struct step s;
    if (usable) {
        case_config(&c, cf);
        if (!step_build(&c, &s)) {
            if (!feed_states(&s, &gd) && !feed_inputs(&s, &gd, cf))
                fd_all(&s, fc);
            step_free(&s);
        }
    }
    free_golden(&gd);
}

static const struct test_case tests[] = {
    T(golden_spd_step),
    T(finite_differences),
};

TEST_MAIN(tests)
