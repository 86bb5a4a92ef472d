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
 * gradient and every state's next value are compared. The golden file, the
 * step and the comparison are shared with test_vpd_golden.c (golden_step.h). */
#include "golden_step.h"

/* tests/data/spd_golden.safetensors, or $PDC_SPD_GOLDEN */
static int load(struct golden *gd)
{
    return golden_load(gd, "spd_golden.safetensors", "PDC_SPD_GOLDEN");
}

/* index of a case config's fields (tests/gen/spd_golden.py writes them) */
enum { CF_HARD, CF_P, CF_BETA, CF_EPS, CF_IMP, CF_STOCH, CF_LAYERWISE, CF_FAITH, CF_LR, CF_N };

/* The SPD config of a golden case: sites "W" with C = 4, CI mlp hidden [3],
 * losses in the generator's order (the order fixes which draw is which). */
static void case_config(struct dc_config *c, const double *cf)
{
    dc_config_defaults(c, "spd");
    c->batch_size = GOLDEN_BATCH;
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
        switch (in->kind) {
        case DC_FEED_UNIFORM:
            CHECK_EQ(in->stream, k); /* streams are numbered in creation order */
            /* fall through */
        case DC_FEED_DATA:
            if (feed_data_or_draw(s, gd, in, &k))
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

/* the case's step, built and fed (states, data, draws, the scalars of step 1);
 * -1 when that failed, the step freed */
static int spd_step(const struct golden *gd, const double *cf, struct step *s)
{
    struct dc_config c;
    case_config(&c, cf);
    if (step_build(&c, s))
        return -1;
    if (feed_states(s, gd, 1) || feed_inputs(s, gd, cf)) {
        step_free(s);
        return -1;
    }
    return 0;
}

/* one case: run the step, compare everything, print the summary line */
static void spd_case(struct golden_cmp *cx, void *arg)
{
    (void)arg;
    const double *cf = golden_config(cx->gd, cx->cs, CF_N);
    struct step s;
    if (cf && !spd_step(cx->gd, cf, &s)) {
        if (!step_run(&s))
            CHECK_EQ(compare_case(cx, &s), golden_entries(cx->gd, cx->cs, ""));
        step_free(&s);
    }
    printf("  %-13s max rel err (share of tolerance used): metrics %.2g (%.2f), "
           "grads %.2g (%.2f), next %.2g (%.2f)\n", cx->cs, cx->max_rel[K_METRIC],
           cx->max_used[K_METRIC], cx->max_rel[K_GRAD], cx->max_used[K_GRAD],
           cx->max_rel[K_NEXT], cx->max_used[K_NEXT]);
}

/* ---- tests -------------------------------------------------------------------- */

TEST(golden_spd_step)
{
    struct golden gd;
    if (load(&gd))
        return;
    if (golden_cases(&gd, spd_case, NULL) >= 0)
        printf("  (golden from torch %s)\n", golden_torch(&gd));
    golden_free(&gd);
}

/* central difference of loss/total w.r.t. one entry of state st */
static double fd_entry(struct step *s, const struct dc_state *st, long i, double h)
{
    float *p = rt_prog_buf(s->rp, st->t);
    const float *loss = rt_prog_buf(s->rp, s->prog.loss);
    float saved = p[i];
    p[i] = (float)((double)saved + h);
    step_run(s);
    double up = (double)*loss;
    p[i] = (float)((double)saved - h);
    step_run(s);
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
    step_run(s); /* the gradient at the golden point (earlier differences left buffers elsewhere) */
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
    if (load(&gd))
        return;
    const char *cs = gmeta(&gd, "fd_case");
    const double *cf = golden_config(&gd, cs ? cs : "?", CF_N), *fc = gvec(&gd, "fd/config", 3);
    int usable = cf && fc && cf[CF_HARD] != 0.0;
    CHECK(usable);
    struct step s;
    if (usable && !spd_step(&gd, cf, &s)) {
        fd_all(&s, fc);
        step_free(&s);
    }
    golden_free(&gd);
}

static const struct test_case tests[] = {
    T(golden_spd_step),
    T(finite_differences),
};

TEST_MAIN(tests)
