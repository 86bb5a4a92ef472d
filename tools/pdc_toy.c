/* pdc_toy.c — `pdc toy NAME -o MODEL.onnx [--seed S] [--steps N] [--batch B]`:
 * train a toy target (METHOD §6) with pdc's own IR, autodiff and runtime, and
 * write it as ONNX. The programs come from passes/toy_models.c; the training
 * runs on the reference target through rt_train; the written model is read
 * back and run on one-hot rows of value 0.75 (METHOD §6.2's sanity print), so
 * the summary line describes the file the user gets. Reproducible from --seed:
 * initial weights and data are Philox draws keyed by the seed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "io.h"
#include "onnx.h"
#include "pass.h"
#include "pdc_cli.h"
#include "target.h"
#include "toy.h"
#include "train.h"

#define ONEHOT_VALUE 0.75 /* METHOD §6.2, spd's train_tms.py */

struct toy_args {
    const char *name, *out;
    uint64_t seed;
    int64_t steps, batch; /* 0: the target's own */
    int64_t restarts;     /* TMS: retrain with derived seeds while features are missing */
};

static int toy_usage(void)
{
    int n;
    const struct toy_spec *s = toy_specs(&n);
    fprintf(stderr, "usage: pdc toy NAME -o MODEL.onnx [--seed S] [--steps N] [--batch B] "
                    "[--restarts N]\n"
                    "targets (METHOD §6):\n");
    for (int i = 0; i < n; i++)
        fprintf(stderr, "  %-14s %lld steps, batch %lld\n", s[i].name, (long long)s[i].steps,
                (long long)s[i].batch);
    fprintf(stderr, "  %-14s a byte-level transformer LM (pdc toy tiny-lm --help)\n", "tiny-lm");
    return 2;
}

static int parse_count(const char *opt, const char *v, int64_t lo, int64_t *out, struct diag *d)
{
    char *e;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    if (e == v || *e || errno || x < lo)
        return diag_set(d, ST_ERR_INVALID, "toy: %s '%s' is not an integer >= %lld", opt, v,
                        (long long)lo);
    *out = x;
    return ST_OK;
}

/* returns -1 for a usage error (printed by the caller), else a status */
static int parse_args(int argc, char **argv, struct toy_args *a, struct diag *d)
{
    memset(a, 0, sizeof *a);
    a->restarts = 16;
    int64_t seed = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int st = ST_OK;
        if (strcmp(o, "-o") == 0 && v)
            a->out = v;
        else if (strcmp(o, "--seed") == 0 && v)
            st = parse_count(o, v, 0, &seed, d);
        else if (strcmp(o, "--steps") == 0 && v)
            st = parse_count(o, v, 1, &a->steps, d);
        else if (strcmp(o, "--batch") == 0 && v)
            st = parse_count(o, v, 1, &a->batch, d);
        else if (strcmp(o, "--restarts") == 0 && v)
            st = parse_count(o, v, 0, &a->restarts, d);
        else if (o[0] != '-' && !a->name) {
            a->name = o;
            continue;
        } else
            return -1;
        if (st)
            return st;
        i++;
    }
    a->seed = (uint64_t)seed;
    return a->name && a->out ? ST_OK : -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the trained weights by name, straight from the runtime's store */
static const void *store_weight(void *ctx, const char *name, size_t nbytes)
{
    struct rt_store_item *it = rt_store_find(ctx, name);
    return it && it->dtype == IR_F32 && it->nbytes == nbytes ? it->data : NULL;
}

/* run a program to the end; *loss gets its final "loss" metric (NAN if none) */
static int run_prog(const struct dc_prog *p, struct rt_store *store, const struct toy_spec *s,
                    uint64_t seed, const char *phase, double *loss, struct diag *d)
{
    struct rt_train_opts o = {.seed = seed, .phase = phase, .progress = p->steps > 1 && isatty(2)};
    struct ds_source *data = NULL;
    double *last = calloc((size_t)p->n_metric + 1, sizeof *last);
    struct ds_opts dopt;
    ds_opts_defaults(&dopt);
    int st = !last ? diag_set(d, ST_ERR_NOMEM, "out of memory")
             : s->data ? ds_open(s->data, &dopt, &data, d) /* L3D toys: their own generator */
                       : ds_open_toy(s->p, s->lo, s->hi, &data, d);
    if (!st)
        st = rt_train(p, cg_default(), store, data, &o, last, d);
    *loss = NAN;
    for (int i = 0; !st && i < p->n_metric; i++)
        if (strcmp(p->metric[i].name, "loss") == 0)
            *loss = last[i];
    ds_close(data);
    free(last);
    return st;
}

/* what y[i][i] should be for a one-hot input v at i: TMS reproduces a lone
 * feature; ResidMLP's label is x + ReLU(x) = 2v */
static double onehot_want(const struct toy_spec *s)
{
    return s->family == TOY_TMS || s->family == TOY_L3D_TMS ? ONEHOT_VALUE : 2 * ONEHOT_VALUE;
}

/* the targets whose one-hot response is y[i][i] = onehot_want (the L3D circuits and
 * X → X² have other ground truths) */
static int onehot_applies(const struct toy_spec *s)
{
    return s->family == TOY_TMS || s->family == TOY_RESID_MLP || s->family == TOY_L3D_TMS;
}

/* L3D circuits: their coefficients A (U(0, 3)) next to the model as MODEL.coeffs.npy,
 * the ground truth `pdc eval` compares the recovered coefficients with (METHOD §8.9) */
static int write_coeffs(const char *out, const struct toy_spec *s, struct rt_store *store,
                        struct diag *d)
{
    if (s->family != TOY_L3D_CIRCUIT)
        return ST_OK;
    struct rt_store_item *A = rt_store_find(store, "A");
    if (!A)
        return diag_set(d, ST_ERR_INVALID, "toy %s: no coefficients in the store", s->name);
    struct ir_value v = {.dtype = IR_F32, .rank = 2, .dims = {A->dims[0], A->dims[1]},
                         .nbytes = A->nbytes};
    float *a = malloc(A->nbytes);
    if (!a)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < A->nbytes / sizeof *a; i++)
        a[i] = ((const float *)A->data)[i] + 1.5f;
    v.data = a;
    char path[4200];
    snprintf(path, sizeof path, "%s.coeffs.npy", out);
    int st = npy_write_file(path, &v, d);
    free(a);
    return st;
}

/* read the written model back, run it on 0.75·I, average y[i][i] and count
 * the features it misses by more than half the wanted value */
static int onehot_check(const char *path, const struct toy_spec *s, double *mean, int *missed,
                        struct diag *d)
{
    struct ir_graph *g;
    int st = onnx_load_file(path, &g, d);
    if (st)
        return st;
    int64_t n = s->n_features;
    struct ir_value x = {.name = (char *)"x", .dtype = IR_F32, .rank = 2, .dims = {n, n},
                         .nbytes = (size_t)(n * n) * sizeof(float)};
    float *xv = calloc((size_t)(n * n), sizeof *xv);
    struct ir_value *outs = NULL;
    int nout = 0;
    struct pass_ctx cx = {.eval = cg_eval_node};
    x.data = xv;
    if (!xv)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < n; i++)
        xv[i * n + i] = (float)ONEHOT_VALUE;
    if (!st && !(st = ir_bind_sym(g, "batch", n, d)) && !(st = pass_compile_inference(g, &cx, d)))
        st = rt_run(g, cg_default(), &x, 1, &outs, &nout, d);
    if (!st && (nout != 1 || ir_value_numel(&outs[0]) != n * n || outs[0].dtype != IR_F32))
        st = diag_set(d, ST_ERR_INVALID, "%s: expected one float output [%lld, %lld]", path,
                      (long long)n, (long long)n);
    double sum = 0, want = onehot_want(s);
    *missed = 0;
    for (int64_t i = 0; !st && i < n; i++) {
        double y = (double)((const float *)outs[0].data)[i * n + i];
        sum += y;
        *missed += fabs(y - want) > 0.5 * want;
    }
    *mean = sum / (double)n;
    for (int i = 0; i < nout; i++)
        ir_value_free(&outs[i]);
    free(outs);
    free(xv);
    ir_graph_free(g);
    return st;
}

/* setup (frozen tensors), training, inference graph from the store, export */
static int train_and_export(const struct toy_args *a, const struct toy_spec *s, double *loss,
                            int64_t *steps, struct diag *d)
{
    struct rt_store store = {0};
    struct dc_prog setup = {0}, train = {0};
    double unused;
    int st = toy_build_setup(s, &setup, d);
    if (!st && setup.g)
        st = run_prog(&setup, &store, s, a->seed, "setup", &unused, d);
    dc_prog_free(&setup);
    if (!st)
        st = toy_build_train(s, a->batch, a->steps, &train, d);
    if (!st)
        st = run_prog(&train, &store, s, a->seed, s->name, loss, d);
    *steps = train.steps;
    dc_prog_free(&train);
    struct ir_graph *g = NULL;
    struct onnx_export_opts o = {.producer = "pdc toy"};
    if (!st)
        st = toy_build_infer(s, 1, store_weight, &store, &g, d);
    if (!st)
        st = onnx_save_file(g, a->out, &o, d);
    if (!st)
        st = write_coeffs(a->out, s, &store, d);
    ir_graph_free(g);
    rt_store_free(&store);
    return st;
}

int pdc_toy_main(int argc, char **argv)
{
    struct toy_args a;
    struct diag d = {0};
    if (argc >= 1 && strcmp(argv[0], "tiny-lm") == 0) /* its own options: tools/pdc_toy_lm.c */
        return pdc_toy_lm_main(argc, argv);
    int st = parse_args(argc, argv, &a, &d);
    if (st < 0)
        return toy_usage();
    const struct toy_spec *s = st ? NULL : toy_find(a.name);
    if (!st && !s) {
        fprintf(stderr, "pdc: toy: unknown target '%s'\n", a.name);
        return toy_usage();
    }
    double t0 = now(), loss = NAN, diag_mean = NAN;
    int64_t steps = 0;
    int missed = 0;
    /* TMS 5-2's recipe ends in a local minimum (2 or 4 of 5 features kept) for most
     * seeds, the reference's too (about 1 in 3 finds the pentagon). A target whose
     * ground truth is not the one decompositions are checked against is no use, so
     * retrain with derived seeds, deterministically, and report the seed that worked. */
    for (int64_t r = 0; !st && (r == 0 || (missed && onehot_want(s) == ONEHOT_VALUE && r <= a.restarts));
         r++) {
        if (r) {
            fprintf(stderr, "pdc: toy %s: seed %llu kept %lld of %lld features; retraining\n",
                    s->name, (unsigned long long)a.seed, (long long)(s->n_features - missed),
                    (long long)s->n_features);
            a.seed += 1000003;
        }
        st = train_and_export(&a, s, &loss, &steps, &d);
        if (!st && onehot_applies(s))
            st = onehot_check(a.out, s, &diag_mean, &missed, &d);
    }
    if (st) {
        fprintf(stderr, "pdc: %s\n", d.msg[0] ? d.msg : status_name(d.status));
        return 1;
    }
    if (missed && onehot_want(s) == ONEHOT_VALUE)
        fprintf(stderr, "pdc: toy %s: warning: %d of %lld features are not reproduced (a local "
                "minimum of this recipe) after %lld restarts; try another --seed\n", s->name,
                missed, (long long)s->n_features, (long long)a.restarts);
    printf("pdc toy %s: seed %llu, %lld steps, final loss %.6g, one-hot %.2f -> mean y[i][i] "
           "%.4f (want %.2f, %lld/%lld features within half), wrote %s in %.1f s\n", s->name,
           (unsigned long long)a.seed, (long long)steps, loss, ONEHOT_VALUE, diag_mean,
           onehot_want(s), (long long)(s->n_features - missed), (long long)s->n_features, a.out,
           now() - t0);
    return 0;
}
