/* golden_step.h — shared by test_spd_golden.c and test_vpd_golden.c: one
 * training step of pdc on models/default.onnx, built as the CLI builds it, fed
 * from a golden file that an independent PyTorch implementation wrote
 * (tests/gen/spd_golden.py, tests/gen/vpd_golden.py), and compared with it
 * under one tolerance rule. The test files keep what differs between the
 * methods: the case config, how the inputs and scalars are fed, the extra
 * checks and the summary they print. Everything is static inline (harness.h
 * style) so each test file uses what it needs. */
#ifndef PDC_GOLDEN_STEP_H
#define PDC_GOLDEN_STEP_H

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

/* the batch both generators use (tests/gen/golden_common.py B) */
#define GOLDEN_BATCH 6

/* ---- the golden file ----------------------------------------------------------- */

struct golden {
    struct ir_value *v;
    int n;
    char **meta;
    int n_meta;
};

/* room for a folder path of 4096 bytes and a relative name of 256 */
#define GOLDEN_PATH_MAX 4400

/* `rel` relative to this file's folder (tests/), so the tests find the model
 * and their data wherever the build tree is */
static inline void golden_path(char *buf, size_t n, const char *rel)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    snprintf(buf, n, "%s/%s", dir, rel);
}

/* tests/data/<file>, or $<env> (to check a freshly generated or deliberately
 * altered file before committing it); a failure to read fails the test */
static inline int golden_load(struct golden *gd, const char *file, const char *env)
{
    char path[GOLDEN_PATH_MAX], rel[256];
    snprintf(rel, sizeof rel, "data/%s", file);
    golden_path(path, sizeof path, rel);
    const char *e = getenv(env);
    if (e && *e)
        snprintf(path, sizeof path, "%s", e);
    struct diag d = {0};
    memset(gd, 0, sizeof *gd);
    if (st_read_meta(path, &gd->v, &gd->n, &gd->meta, &gd->n_meta, &d)) {
        fprintf(stderr, "  %s: %s\n", path, d.msg);
        test_failed_ = 1;
        return -1;
    }
    return 0;
}

static inline void golden_free(struct golden *gd)
{
    st_free(gd->v, gd->n);
    st_meta_free(gd->meta, gd->n_meta);
}

static inline const struct ir_value *gfind(const struct golden *gd, const char *name)
{
    for (int i = 0; i < gd->n; i++)
        if (strcmp(gd->v[i].name, name) == 0)
            return &gd->v[i];
    return NULL;
}

static inline const char *gmeta(const struct golden *gd, const char *key)
{
    for (int i = 0; i < gd->n_meta; i++)
        if (strcmp(gd->meta[2 * i], key) == 0)
            return gd->meta[2 * i + 1];
    return NULL;
}

/* a float64 vector from the file (configs, scalars), NULL when absent or too short */
static inline const double *gvec(const struct golden *gd, const char *name, int64_t n)
{
    const struct ir_value *v = gfind(gd, name);
    if (!v || v->dtype != IR_F64 || ir_value_numel(v) < n)
        return NULL;
    return v->data;
}

/* the n fields of case cs's config ("<case>/config"); a missing one fails the test */
static inline const double *golden_config(const struct golden *gd, const char *cs, int64_t n)
{
    char nm[300];
    snprintf(nm, sizeof nm, "%s/config", cs);
    const double *cf = gvec(gd, nm, n);
    CHECK(cf != NULL);
    return cf;
}

static inline const char *golden_torch(const struct golden *gd)
{
    return gmeta(gd, "torch") ? gmeta(gd, "torch") : "?";
}

/* ---- the step ------------------------------------------------------------------ */

/* one built and allocated train-step program */
struct step {
    struct dc_prog prog;
    struct rt_prog *rp;
    struct dc_site *sites;
    struct dc_factor *fac;
};

/* pdc_compiled_model's few lines (tools/pdc_decomp.c): import model `rel`
 * (relative to tests/), bind the batch symbol to `batch`, compile with constant
 * folding (the Transpose of W folds; site selection sees through it) */
static inline struct ir_graph *compiled_model(struct diag *d, const char *rel, int64_t batch)
{
    char path[GOLDEN_PATH_MAX];
    golden_path(path, sizeof path, rel);
    struct ir_graph *g = NULL;
    if (onnx_load_file(path, &g, d))
        return NULL;
    struct ir_tensor *x = &g->t[g->inputs[0]];
    struct pass_ctx cx = {.eval = cg_eval_node};
    if ((x->sym[0] >= 0 && ir_bind_sym(g, g->syms[x->sym[0]], batch, d)) ||
        pass_compile_inference(g, &cx, d)) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

static inline void step_free(struct step *s)
{
    rt_prog_free(s->rp);
    dc_prog_free(&s->prog);
    free(s->sites);
    free(s->fac);
    memset(s, 0, sizeof *s);
}

/* the train step of config c (its method picks SPD or VPD), as the CLI builds
 * it, on model `rel` (relative to tests/; a variant of models/default.onnx with
 * the same sites) with its batch symbol bound to `batch` */
static inline int step_build_model(const struct dc_config *c, struct step *s, const char *rel,
                                   int64_t batch)
{
    struct diag d = {0};
    int ns = 0, nf = 0;
    memset(s, 0, sizeof *s);
    struct ir_graph *g = compiled_model(&d, rel, batch);
    int st = g ? ST_OK : d.status;
    if (!st)
        st = dc_select_sites(g, c, &s->sites, &ns, &s->fac, &nf, &d);
    if (!st) {
        CHECK_EQ(ns, 2); /* "W" and its tied second use "W@1", one factor pair */
        CHECK_EQ(nf, 1);
        st = dc_build_spd_train(g, c, s->sites, ns, s->fac, nf, &s->prog, &d);
        g = NULL; /* owned by the program now */
        if (!st)
            dc_prog_keep_grads(&s->prog); /* compared after the run */
    }
    if (!st)
        st = rt_prog_new(s->prog.g, &cg_ref, &s->rp, &d);
    ir_graph_free(g);
    if (st) {
        fprintf(stderr, "  building the %s step: %s\n", c->method, d.msg);
        test_failed_ = 1;
        step_free(s);
    }
    return st;
}

/* the train step of config c on models/default.onnx, batch GOLDEN_BATCH */
static inline int step_build(const struct dc_config *c, struct step *s)
{
    return step_build_model(c, s, "../models/default.onnx", GOLDEN_BATCH);
}

/* copy a golden tensor into a program buffer, checking its size */
static inline int put(struct step *s, uint32_t t, const struct ir_value *v, const char *what)
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

/* every state from "state/<name>"; with zero_adam the AdamW moments start at
 * zero instead (optimizer step 1: the SPD file stores no moments) */
static inline int feed_states(struct step *s, const struct golden *gd, int zero_adam)
{
    for (int i = 0; i < s->prog.n_st; i++) {
        const struct dc_state *st = &s->prog.st[i];
        char nm[300];
        snprintf(nm, sizeof nm, "state/%s", st->name);
        if (zero_adam && strncmp(st->name, "adam.", 5) == 0)
            memset(rt_prog_buf(s->rp, st->t), 0, rt_tensor_bytes(&s->prog.g->t[st->t]));
        else if (put(s, st->t, gfind(gd, nm), nm))
            return -1;
    }
    return 0;
}

/* the inputs both methods feed alike: the data ← "x", the k-th uniform input ←
 * "draw.k" (*k counts the uniform inputs met so far, in the program's order) */
static inline int feed_data_or_draw(struct step *s, const struct golden *gd,
                                    const struct dc_input *in, int *k)
{
    char nm[64];
    if (in->kind == DC_FEED_DATA)
        return put(s, in->t, gfind(gd, "x"), "x");
    snprintf(nm, sizeof nm, "draw.%d", (*k)++);
    return put(s, in->t, gfind(gd, nm), nm);
}

static inline int step_run(struct step *s)
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

/* one case's comparison: the file, the case, the tolerance, and per kind, for
 * the summary, the tensors and values compared, the largest relative error
 * above the floor and the largest share of the tolerance used */
struct golden_cmp {
    const struct golden *gd;
    const char *cs;
    struct tol tl;
    double max_rel[K_N], max_used[K_N];
    long n_tensors[K_N], n_values[K_N];
};

/* the summary statistics of one tensor; returns its scale max|want|. The
 * absolute floor is relative to that scale: the float32 rounding of a sum of
 * terms of that size, which a correct float32 implementation cannot beat. */
static inline double compare_stats(struct golden_cmp *cx, const float *got, const float *want,
                                   long n, int kind)
{
    double scale = 0;
    for (long i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)want[i]));
    for (long i = 0; i < n; i++) {
        double w = fabs((double)want[i]), dl = fabs((double)got[i] - (double)want[i]);
        if (w > cx->tl.atol_rel * scale)
            cx->max_rel[kind] = fmax(cx->max_rel[kind], dl / w);
        if (scale > 0)
            cx->max_used[kind] =
                fmax(cx->max_used[kind], dl / (cx->tl.rtol * w + cx->tl.atol_rel * scale));
    }
    return scale;
}

/* compare program tensor t with golden `name`; returns 1 when it was found */
static inline int compare(struct golden_cmp *cx, struct step *s, uint32_t t, const char *name,
                          int kind)
{
    const struct ir_value *v = gfind(cx->gd, name);
    const struct ir_tensor *x = &s->prog.g->t[t];
    if (!v || v->dtype != IR_F32 || v->nbytes != rt_tensor_bytes(x)) {
        fprintf(stderr, "  %s: no golden value of the program's size\n", name);
        test_failed_ = 1;
        return 0;
    }
    const float *got = rt_prog_buf(s->rp, t), *want = v->data;
    long n = (long)ir_value_numel(v);
    double scale = compare_stats(cx, got, want, n, kind);
    check_tensor_(got, want, n, cx->tl.atol_rel * scale, cx->tl.rtol, name, __FILE__, __LINE__);
    cx->n_tensors[kind]++;
    cx->n_values[kind] += n;
    return 1;
}

/* a named program tensor against "<case>/<kind>/<name>" */
static inline int compare_named(struct golden_cmp *cx, struct step *s, uint32_t t,
                                const char *dir, const char *name, int kind)
{
    char nm[400];
    snprintf(nm, sizeof nm, "%s/%s/%s", cx->cs, dir, name);
    return compare(cx, s, t, nm, kind);
}

/* every metric, every trainable state's gradient, every state's next value,
 * every tap (the SPD step has none); returns how many golden entries were compared */
static inline int compare_case(struct golden_cmp *cx, struct step *s)
{
    int used = 0;
    for (int i = 0; i < s->prog.n_metric; i++)
        used += compare_named(cx, s, s->prog.metric[i].t, "metric", s->prog.metric[i].name,
                              K_METRIC);
    for (int i = 0; i < s->prog.n_st; i++) {
        const struct dc_state *st = &s->prog.st[i];
        if (st->trainable != DC_TRAIN_NO) {
            CHECK(st->grad != IR_NONE);
            if (st->grad != IR_NONE)
                used += compare_named(cx, s, st->grad, "grad", st->name, K_GRAD);
        }
        CHECK(st->next != IR_NONE);
        if (st->next != IR_NONE)
            used += compare_named(cx, s, st->next, "next", st->name, K_NEXT);
    }
    for (int i = 0; i < s->prog.n_tap; i++)
        used += compare_named(cx, s, s->prog.tap[i].t, "tap", s->prog.tap[i].name, K_TAP);
    return used;
}

/* golden entries of case cs under a prefix ("" = all but the config): a value
 * the program has nothing to compare with is a missing output (a metric the
 * program lost, a state it no longer has) */
static inline int golden_entries(const struct golden *gd, const char *cs, const char *sub)
{
    size_t len = strlen(cs), sl = strlen(sub);
    int n = 0;
    for (int i = 0; i < gd->n; i++) {
        const char *nm = gd->v[i].name;
        if (strncmp(nm, cs, len) != 0 || nm[len] != '/')
            continue;
        nm += len + 1;
        if (sl ? strncmp(nm, sub, sl) == 0 : strcmp(nm, "config") != 0)
            n++;
    }
    return n;
}

/* ---- the cases ----------------------------------------------------------------- */

typedef void golden_case_fn(struct golden_cmp *cx, void *arg);

/* fn on every case the file lists (metadata "cases"), each with fresh
 * statistics and the file's tolerance ("check/config"); returns the number of
 * cases, -1 (a failure) when the file lacks either */
static inline int golden_cases(const struct golden *gd, golden_case_fn *fn, void *arg)
{
    const double *ck = gvec(gd, "check/config", 2);
    const char *cases = gmeta(gd, "cases");
    CHECK(ck && cases);
    if (!ck || !cases)
        return -1;
    char list[512];
    int n = 0;
    snprintf(list, sizeof list, "%s", cases);
    for (char *save = NULL, *cs = strtok_r(list, ",", &save); cs;
         cs = strtok_r(NULL, ",", &save), n++) {
        struct golden_cmp cx = {.gd = gd, .cs = cs, .tl = {ck[0], ck[1]}};
        fn(&cx, arg);
    }
    return n;
}

#endif
