/* test_vpd_golden.c — one VPD training step of pdc against golden values from an
 * independent PyTorch implementation (tests/gen/vpd_golden.py, which writes
 * tests/data/vpd_golden.safetensors).
 *
 * The target is models/default.onnx (W tied through a Transpose: sites "W" and
 * "W@1" share one factor pair). The objective is VPD's (METHOD §4.9): importance
 * minimality with the frequency term and annealed p, subset-routed stochastic
 * reconstruction, persistent PGD (two warmup ascents, the final ascent from the
 * main backward, METHOD §4.7), faithfulness; a global shared MLP CI function;
 * AdamW with the component-gradient clip (METHOD §5.2). Two cases: leaky_hard
 * with a clip that clips at step 7 of 20, hard without clipping at step 1.
 *
 * The step is built with dc_build_spd_train as the CLI builds it; every input is
 * written from the golden file: the states by name (parameters, AdamW moments,
 * sources and source moments, all nonzero), the data, the uniform draws in the
 * program's input order, the routing bits of the subset-routed forward, and the
 * scalars of the case's step (cross-checked against pdc's own schedule, p
 * annealing and bias-correction formulas, as runtime/train.c evaluates them).
 * One run; then every loss metric, the component-gradient norm, every trainable
 * state's gradient (before clipping), every state's next value, and the
 * adversary's taps (the warmup losses, the source gradient of every ascent) are
 * compared. */
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

struct step {
    struct dc_prog prog;
    struct rt_prog *rp;
    struct dc_site *sites;
    struct dc_factor *fac;
};

/* the golden file next to this file's folder, or $PDC_VPD_GOLDEN (to check a
 * freshly generated or deliberately altered file before committing it) */
static int load_golden(struct golden *gd)
{
    char path[4200], dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    snprintf(path, sizeof path, "%s/data/vpd_golden.safetensors", dir);
    const char *env = getenv("PDC_VPD_GOLDEN");
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

/* a float64 vector from the file (configs, scalars), NULL when absent or too short */
static const double *gvec(const struct golden *gd, const char *name, int64_t n)
{
    const struct ir_value *v = gfind(gd, name);
    if (!v || v->dtype != IR_F64 || ir_value_numel(v) < n)
        return NULL;
    return v->data;
}

/* the fields of a case config (tests/gen/vpd_golden.py case_config writes them) */
enum {
    CF_HARD, CF_STEP, CF_STEPS, CF_CLIP,
    CF_IMP, CF_P0, CF_PFINAL, CF_PSTART, CF_PEND, CF_BETA, CF_EPS, /* importance minimality */
    CF_SUBSET,                                                     /* stochastic subset */
    CF_PPGD, CF_NWARM, CF_SRC_LR, CF_SRC_WARM, CF_SRC_FINAL, CF_SRC_FN, CF_SRC_B1, CF_SRC_B2,
    CF_SRC_EPS,                                                    /* persistent PGD */
    CF_FAITH,
    CF_LR, CF_LR_WARM, CF_LR_FINAL, CF_LR_FN,                      /* main AdamW lr */
    CF_C, CF_HIDDEN, CF_ALIVE, CF_BATCH, CF_N
};

static enum dc_schedule sched_fn(double code)
{
    return code == 2.0 ? DC_SCHED_COSINE : code == 1.0 ? DC_SCHED_LINEAR : DC_SCHED_CONSTANT;
}

/* The VPD config of a golden case, every field the step reads set explicitly
 * (not left to the vpd defaults): site "W" (and its tied use), global shared
 * MLP CI, losses in the VPD order (the order fixes which draw is which). */
static void case_config(struct dc_config *c, const double *cf)
{
    dc_config_defaults(c, "vpd");
    c->batch_size = BATCH;
    c->steps = (int64_t)cf[CF_STEPS];
    c->lr = (struct dc_schedule_cfg){cf[CF_LR], cf[CF_LR_WARM], cf[CF_LR_FINAL],
                                     sched_fn(cf[CF_LR_FN])};
    c->grad_clip_norm = cf[CF_CLIP];
    snprintf(c->sites[0].pattern, sizeof c->sites[0].pattern, "W");
    c->sites[0].C = (int)cf[CF_C];
    c->n_sites = 1;
    c->ci_fn_type = DC_CI_GLOBAL_SHARED_MLP;
    c->ci_fn_hidden_dims[0] = (int)cf[CF_HIDDEN];
    c->n_ci_hidden = 1;
    c->sigmoid_type = cf[CF_HARD] != 0.0 ? DC_SIG_HARD : DC_SIG_LEAKY_HARD;
    c->use_delta_component = 1;
    c->output_loss_type = DC_OUT_MSE;
    c->ci_alive_threshold = cf[CF_ALIVE];
    c->losses[0] = (struct dc_loss){.kind = DC_LOSS_IMPORTANCE_MINIMALITY, .coeff = cf[CF_IMP],
                                    .pnorm = cf[CF_P0], .eps = cf[CF_EPS], .beta = cf[CF_BETA],
                                    .p_anneal_start_frac = cf[CF_PSTART],
                                    .p_anneal_final_p = cf[CF_PFINAL],
                                    .p_anneal_end_frac = cf[CF_PEND]};
    c->losses[1] = (struct dc_loss){.kind = DC_LOSS_STOCHASTIC_RECON_SUBSET, .coeff = cf[CF_SUBSET]};
    c->losses[2] = (struct dc_loss){
        .kind = DC_LOSS_PERSISTENT_PGD_RECON, .coeff = cf[CF_PPGD], .n_steps = (int)cf[CF_NWARM],
        .scope = DC_SCOPE_PER_POSITION,
        .opt = {1, {cf[CF_SRC_LR], cf[CF_SRC_WARM], cf[CF_SRC_FINAL], sched_fn(cf[CF_SRC_FN])},
                cf[CF_SRC_B1], cf[CF_SRC_B2], cf[CF_SRC_EPS]}};
    c->losses[3] = (struct dc_loss){.kind = DC_LOSS_FAITHFULNESS, .coeff = cf[CF_FAITH]};
    c->n_losses = 4;
}

/* import, bind the batch symbol, compile with constant folding (as the CLI does) */
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
        fprintf(stderr, "  building the VPD step: %s\n", d.msg);
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

/* every state from the file: parameters, AdamW moments, sources, source moments */
static int feed_states(struct step *s, const struct golden *gd)
{
    for (int i = 0; i < s->prog.n_st; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "state/%s", s->prog.st[i].name);
        if (put(s, s->prog.st[i].t, gfind(gd, nm), nm))
            return -1;
    }
    return 0;
}

/* the scalar's name as pdc names its input (passes/decompose.c scalar_input) */
static void scalar_name(const struct dc_input *in, char *buf, size_t n)
{
    static const char *names[] = {"lr", "p", "bias_correction1", "bias_correction2", "src_lr",
                                  "src_bias_correction1", "src_bias_correction2"};
    const char *base = (unsigned)in->scalar < DC_SC_COUNT ? names[in->scalar] : "?";
    if (in->sub)
        snprintf(buf, n, "%s.%u", base, in->sub);
    else
        snprintf(buf, n, "%s", base);
}

/* what pdc's runtime feeds at 0-based step `step` (runtime/train.c scalar_value,
 * from the program's own schedules, betas and ascents per step) */
static double pdc_scalar(const struct dc_prog *p, const struct dc_input *in, int64_t step)
{
    double t = (double)(step + 1), ts = (double)step * p->src.per_step + in->sub + 1;
    switch (in->scalar) {
    case DC_SC_LR: return dc_schedule_value(&p->lr, step, p->steps);
    case DC_SC_P: return dc_anneal_p(&p->p, (double)step / (double)p->steps);
    case DC_SC_BC1: return 1.0 - pow(p->beta1, t);
    case DC_SC_BC2: return sqrt(1.0 - pow(p->beta2, t));
    case DC_SC_SRC_LR: return dc_schedule_value(&p->src.lr, step, p->steps);
    case DC_SC_SRC_BC1: return 1.0 - pow(p->src.beta1, ts);
    case DC_SC_SRC_BC2: return sqrt(1.0 - pow(p->src.beta2, ts));
    case DC_SC_COUNT: break;
    }
    return NAN;
}

/* data; the k-th uniform input ← "draw.k"; the routing inputs of the f-th routed
 * forward ← "route.f.<site>"; scalars ← "<case>/scalar/<name>" */
static int feed_inputs(struct step *s, const struct golden *gd, const char *cs, const double *cf,
                       int *n_scalars)
{
    int k = 0, nroute = 0, nsc = 0;
    uint32_t route_stream = UINT32_MAX;
    char nm[400];
    for (int i = 0; i < s->prog.n_in; i++) {
        const struct dc_input *in = &s->prog.in[i];
        switch (in->kind) {
        case DC_FEED_DATA:
            if (put(s, in->t, gfind(gd, "x"), "x"))
                return -1;
            break;
        case DC_FEED_UNIFORM:
            snprintf(nm, sizeof nm, "draw.%d", k++);
            if (put(s, in->t, gfind(gd, nm), nm))
                return -1;
            break;
        case DC_FEED_ROUTE:
            if (in->stream != route_stream) { /* a new routed forward */
                route_stream = in->stream;
                nroute++;
            }
            CHECK_EQ(in->route_n, 2u);
            snprintf(nm, sizeof nm, "route.%d.%u", nroute - 1, in->route_site);
            if (put(s, in->t, gfind(gd, nm), nm))
                return -1;
            break;
        case DC_FEED_SCALAR: {
            char sn[64];
            scalar_name(in, sn, sizeof sn);
            snprintf(nm, sizeof nm, "%s/scalar/%s", cs, sn);
            const double *want = gvec(gd, nm, 1);
            if (!want) {
                fprintf(stderr, "  no golden scalar '%s'\n", nm);
                test_failed_ = 1;
                return -1;
            }
            double mine = pdc_scalar(&s->prog, in, (int64_t)cf[CF_STEP]);
            if (!(fabs(mine - *want) <= 1e-12 * fmax(1.0, fabs(*want)))) {
                fprintf(stderr, "  scalar %s at step %g: pdc's runtime formula gives %.15g, "
                        "METHOD's %.15g NOT OK\n", sn, cf[CF_STEP], mine, *want);
                test_failed_ = 1;
            }
            *(float *)rt_prog_buf(s->rp, in->t) = (float)*want;
            nsc++;
            break;
        }
        }
    }
    /* the program consumes every golden draw and routing array */
    snprintf(nm, sizeof nm, "draw.%d", k);
    CHECK(k > 0 && gfind(gd, nm) == NULL);
    snprintf(nm, sizeof nm, "route.%d.0", nroute);
    CHECK(nroute == 1 && gfind(gd, nm) == NULL);
    CHECK_EQ(s->prog.src.per_step, (int)cf[CF_NWARM] + 1);
    *n_scalars = nsc;
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

enum { K_METRIC, K_GRAD, K_NEXT, K_TAP, K_N };
static const char *const kind_name[K_N] = {"metrics", "grads", "next", "taps"};

/* per kind, for the summary: tensors and values compared, the largest relative
 * error above the floor, the largest share of the tolerance used */
static double max_rel[K_N], max_used[K_N];
static long n_tensors[K_N], n_values[K_N];

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
    n_tensors[kind]++;
    n_values[kind] += n;
    return 1;
}

/* every metric, every trainable state's gradient, every state's next value, every tap */
static int compare_case(struct step *s, const struct golden *gd, const char *cs, struct tol tl)
{
    char nm[400];
    int used = 0, n_train = 0;
    for (int i = 0; i < s->prog.n_metric; i++) {
        snprintf(nm, sizeof nm, "%s/metric/%s", cs, s->prog.metric[i].name);
        used += compare(s, s->prog.metric[i].t, gd, nm, tl, K_METRIC);
    }
    for (int i = 0; i < s->prog.n_st; i++) {
        const struct dc_state *st = &s->prog.st[i];
        if (st->trainable != DC_TRAIN_NO) {
            n_train++;
            CHECK(st->grad != IR_NONE);
            snprintf(nm, sizeof nm, "%s/grad/%s", cs, st->name);
            if (st->grad != IR_NONE)
                used += compare(s, st->grad, gd, nm, tl, K_GRAD);
        }
        CHECK(st->next != IR_NONE);
        snprintf(nm, sizeof nm, "%s/next/%s", cs, st->name);
        if (st->next != IR_NONE)
            used += compare(s, st->next, gd, nm, tl, K_NEXT);
    }
    CHECK_EQ(n_train, 6); /* V, U and the global CI MLP's W0, b0, W1, b1 */
    for (int i = 0; i < s->prog.n_tap; i++) {
        snprintf(nm, sizeof nm, "%s/tap/%s", cs, s->prog.tap[i].name);
        used += compare(s, s->prog.tap[i].t, gd, nm, tl, K_TAP);
    }
    return used;
}

/* golden entries of a case under a prefix ("" = all but config and scalars) */
static int golden_entries(const struct golden *gd, const char *cs, const char *sub)
{
    size_t len = strlen(cs), sl = strlen(sub);
    int n = 0;
    for (int i = 0; i < gd->n; i++) {
        const char *nm = gd->v[i].name;
        if (strncmp(nm, cs, len) != 0 || nm[len] != '/')
            continue;
        nm += len + 1;
        if (sl ? strncmp(nm, sub, sl) == 0
               : strcmp(nm, "config") != 0 && strncmp(nm, "scalar/", 7) != 0)
            n++;
    }
    return n;
}

static long golden_case(const struct golden *gd, const char *cs, struct tol tl)
{
    char nm[300];
    snprintf(nm, sizeof nm, "%s/config", cs);
    const double *cf = gvec(gd, nm, CF_N);
    CHECK(cf != NULL);
    if (!cf)
        return 0;
    CHECK_EQ((int)cf[CF_BATCH], BATCH);
    struct dc_config c;
    case_config(&c, cf);
    struct step s;
    if (step_build(&c, &s))
        return 0;
    int nsc = 0;
    long total = 0;
    if (!feed_states(&s, gd) && !feed_inputs(&s, gd, cs, cf, &nsc) && !run(&s)) {
        CHECK_EQ(nsc, golden_entries(gd, cs, "scalar/")); /* every step scalar is an input */
        int used = compare_case(&s, gd, cs, tl);
        CHECK_EQ(used, golden_entries(gd, cs, "")); /* nothing golden left unchecked */
        /* the clip did (lh) or did not (hard) act, as the case intends */
        const struct ir_value *gn = NULL;
        snprintf(nm, sizeof nm, "%s/metric/grad_norm/components", cs);
        gn = gfind(gd, nm);
        CHECK(gn != NULL);
        if (gn)
            CHECK((cf[CF_HARD] == 0.0) == ((double)*(const float *)gn->data > cf[CF_CLIP]));
        for (int k = 0; k < K_N; k++)
            total += n_values[k];
    }
    step_free(&s);
    return total;
}

/* ---- tests -------------------------------------------------------------------- */

TEST(golden_vpd_step)
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
        long all = 0;
        int ncase = 0;
        snprintf(list, sizeof list, "%s", cases);
        for (char *save = NULL, *cs = strtok_r(list, ",", &save); cs;
             cs = strtok_r(NULL, ",", &save)) {
            memset(max_rel, 0, sizeof max_rel);
            memset(max_used, 0, sizeof max_used);
            memset(n_tensors, 0, sizeof n_tensors);
            memset(n_values, 0, sizeof n_values);
            long n = golden_case(&gd, cs, tl);
            all += n;
            ncase++;
            printf("  %-12s %ld values compared:", cs, n);
            for (int k = 0; k < K_N; k++)
                printf(" %s %ld/%ld", kind_name[k], n_tensors[k], n_values[k]);
            printf("\n  %-12s max rel err (share of tolerance used):", "");
            for (int k = 0; k < K_N; k++)
                printf(" %s %.2g (%.2f)", kind_name[k], max_rel[k], max_used[k]);
            printf("\n");
        }
        CHECK_EQ(ncase, 2);
        printf("  %d cases, %ld values compared (rtol %g, floor %g of each tensor's max); "
               "golden from torch %s\n", ncase, all, tl.rtol, tl.atol_rel,
               gmeta(&gd, "torch") ? gmeta(&gd, "torch") : "?");
    }
    free_golden(&gd);
}

static const struct test_case tests[] = {
    T(golden_vpd_step),
};

TEST_MAIN(tests)
