/* test_vpd_golden.c — one VPD training step of pdc against golden values from an
 * independent PyTorch implementation (tests/gen/vpd_golden.py, which writes
 * tests/data/vpd_golden.safetensors).
 *
 * The target is models/default.onnx (W tied through a Transpose: sites "W" and
 * "W@1" share one factor pair). The objective is VPD's (METHOD §4.9): importance
 * minimality with the frequency term and annealed p, subset-routed stochastic
 * reconstruction, persistent PGD (two warmup ascents, the final ascent from the
 * main backward, METHOD §4.7), faithfulness; a global shared MLP CI function;
 * AdamW with the component-gradient clip (METHOD §5.2). Three cases: leaky_hard
 * with a clip that clips at step 7 of 20, hard without clipping at step 1, and
 * tf_seq: like the first, with the global shared transformer CI function (METHOD
 * §2.3, d_model 8, 2 blocks, 2 heads, RoPE) instead of the MLP, on
 * tests/data/vpd_golden_seq.onnx (the same target on x [2, 3, 5]: sequences of 3,
 * so RoPE and the attention's mixing matter); every transformer weight's gradient
 * and next value is compared.
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
 * compared. The golden file, the step and the comparison are shared with
 * test_spd_golden.c (golden_step.h). */
#include "golden_step.h"
#include "train.h"

/* tests/data/vpd_golden.safetensors, or $PDC_VPD_GOLDEN */
static int load(struct golden *gd)
{
    return golden_load(gd, "vpd_golden.safetensors", "PDC_VPD_GOLDEN");
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
    CF_C, CF_HIDDEN, CF_ALIVE, CF_BATCH,
    CF_TF, CF_SEQ, CF_TF_D, CF_TF_BLOCKS, CF_TF_HEADS, CF_TF_MLP, CF_TF_ROPE, CF_TF_MAXLEN,
    CF_N /* global shared transformer (CF_TF 1) on sequences of CF_SEQ (1: default.onnx) */
};

/* the model of a case: default.onnx, or its sequence variant (the generator writes it) */
#define SEQ_MODEL "data/vpd_golden_seq.onnx"

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
    c->batch_size = GOLDEN_BATCH;
    c->steps = (int64_t)cf[CF_STEPS];
    c->lr = (struct dc_schedule_cfg){cf[CF_LR], cf[CF_LR_WARM], cf[CF_LR_FINAL],
                                     sched_fn(cf[CF_LR_FN])};
    c->grad_clip_norm = cf[CF_CLIP];
    snprintf(c->sites[0].pattern, sizeof c->sites[0].pattern, "W");
    c->sites[0].C = (int)cf[CF_C];
    c->n_sites = 1;
    if (cf[CF_TF] != 0.0) {
        c->batch_size = GOLDEN_BATCH / (int64_t)cf[CF_SEQ];
        c->ci_fn_type = DC_CI_GLOBAL_SHARED_TRANSFORMER;
        c->ci_tf = (struct dc_ci_transformer){
            .d_model = (int)cf[CF_TF_D], .n_blocks = (int)cf[CF_TF_BLOCKS],
            .mlp_hidden_dim = {(int)cf[CF_TF_MLP]}, .n_mlp_hidden = 1,
            .n_heads = (int)cf[CF_TF_HEADS], .max_len = (int64_t)cf[CF_TF_MAXLEN],
            .rope_base = cf[CF_TF_ROPE]};
    } else {
        c->ci_fn_type = DC_CI_GLOBAL_SHARED_MLP;
        c->ci_fn_hidden_dims[0] = (int)cf[CF_HIDDEN];
        c->n_ci_hidden = 1;
    }
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

/* scalar input `in` ← "<case>/scalar/<name>", the value METHOD's formulas give,
 * which must also be what pdc's runtime would feed at the case's step */
static int feed_scalar(struct step *s, const struct golden *gd, const char *cs,
                       const struct dc_input *in, double step)
{
    char sn[64], nm[400];
    scalar_name(in, sn, sizeof sn);
    snprintf(nm, sizeof nm, "%s/scalar/%s", cs, sn);
    const double *want = gvec(gd, nm, 1);
    if (!want) {
        fprintf(stderr, "  no golden scalar '%s'\n", nm);
        test_failed_ = 1;
        return -1;
    }
    double mine = rt_scalar_value(&s->prog, in, (int64_t)step); /* the runtime itself */
    if (!(fabs(mine - *want) <= 1e-12 * fmax(1.0, fabs(*want)))) {
        fprintf(stderr, "  scalar %s at step %g: pdc's runtime formula gives %.15g, "
                "METHOD's %.15g NOT OK\n", sn, step, mine, *want);
        test_failed_ = 1;
    }
    *(float *)rt_prog_buf(s->rp, in->t) = (float)*want;
    return 0;
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
        case DC_FEED_UNIFORM:
            if (feed_data_or_draw(s, gd, in, &k))
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
        case DC_FEED_SCALAR:
            if (feed_scalar(s, gd, cs, in, cf[CF_STEP]))
                return -1;
            nsc++;
            break;
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

/* ---- one case ----------------------------------------------------------------- */

static int n_trainable(const struct dc_prog *p)
{
    int n = 0;
    for (int i = 0; i < p->n_st; i++)
        n += p->st[i].trainable != DC_TRAIN_NO;
    return n;
}

/* the clip did (lh) or did not (hard) act, as the case intends */
static void check_clip(const struct golden_cmp *cx, const double *cf)
{
    char nm[300];
    snprintf(nm, sizeof nm, "%s/metric/grad_norm/components", cx->cs);
    const struct ir_value *gn = gfind(cx->gd, nm);
    CHECK(gn != NULL);
    if (gn)
        CHECK((cf[CF_HARD] == 0.0) == ((double)*(const float *)gn->data > cf[CF_CLIP]));
}

/* feed and run the built step, compare everything; returns the values compared */
static long run_and_compare(struct golden_cmp *cx, struct step *s, const double *cf)
{
    int nsc = 0;
    if (feed_states(s, cx->gd, 0) || feed_inputs(s, cx->gd, cx->cs, cf, &nsc) || step_run(s))
        return 0;
    int n_sc = golden_entries(cx->gd, cx->cs, "scalar/");
    CHECK_EQ(nsc, n_sc); /* every step scalar is an input */
    /* nothing golden left unchecked: all but the scalars (fed, not compared) */
    CHECK_EQ(compare_case(cx, s), golden_entries(cx->gd, cx->cs, "") - n_sc);
    /* V, U and the global CI MLP's W0, b0, W1, b1; or the transformer's proj_in,
     * proj_out (W, b) and per block q, k, v, o and two MLP layers (W, b) */
    CHECK_EQ(n_trainable(&s->prog),
             cf[CF_TF] != 0.0 ? 2 + 4 + (int)cf[CF_TF_BLOCKS] * (4 + 4) : 6);
    check_clip(cx, cf);
    long total = 0;
    for (int k = 0; k < K_N; k++)
        total += cx->n_values[k];
    return total;
}

static const char *const kind_name[K_N] = {"metrics", "grads", "next", "taps"};

static void print_case(const struct golden_cmp *cx, long n)
{
    printf("  %-12s %ld values compared:", cx->cs, n);
    for (int k = 0; k < K_N; k++)
        printf(" %s %ld/%ld", kind_name[k], cx->n_tensors[k], cx->n_values[k]);
    printf("\n  %-12s max rel err (share of tolerance used):", "");
    for (int k = 0; k < K_N; k++)
        printf(" %s %.2g (%.2f)", kind_name[k], cx->max_rel[k], cx->max_used[k]);
    printf("\n");
}

/* one case: the step, the comparison, the case's lines of the summary; adds
 * the values compared to *(long *)arg */
static void vpd_case(struct golden_cmp *cx, void *arg)
{
    long *all = arg;
    const double *cf = golden_config(cx->gd, cx->cs, CF_N);
    long n = 0;
    if (cf) {
        CHECK_EQ((int)cf[CF_BATCH], GOLDEN_BATCH);
        struct dc_config c;
        struct step s;
        case_config(&c, cf);
        int tf = cf[CF_TF] != 0.0;
        if (tf) /* the sequence model: [B/T, T] positions, the same B rows */
            CHECK_EQ(GOLDEN_BATCH % (int)cf[CF_SEQ], 0);
        if (!(tf ? step_build_model(&c, &s, SEQ_MODEL, GOLDEN_BATCH / (int64_t)cf[CF_SEQ])
                 : step_build(&c, &s))) {
            n = run_and_compare(cx, &s, cf);
            step_free(&s);
        }
    }
    *all += n;
    print_case(cx, n);
}

/* ---- tests -------------------------------------------------------------------- */

TEST(golden_vpd_step)
{
    struct golden gd;
    if (load(&gd))
        return;
    long all = 0;
    int ncase = golden_cases(&gd, vpd_case, &all);
    if (ncase >= 0) { /* the file has its tolerance ("check/config"), golden_cases checked */
        const double *ck = gvec(&gd, "check/config", 2);
        CHECK_EQ(ncase, 3);
        printf("  %d cases, %ld values compared (rtol %g, floor %g of each tensor's max); "
               "golden from torch %s\n", ncase, all, ck[0], ck[1], golden_torch(&gd));
    }
    golden_free(&gd);
}

static const struct test_case tests[] = {
    T(golden_vpd_step),
};

TEST_MAIN(tests)
