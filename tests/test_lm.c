/* test_lm.c — the language-model pieces: the next-token cross-entropy builder
 * (passes/objective_lm.c) against a double-precision computation written out
 * here, on the reference and the default target; and the tiny-LM target
 * (passes/toy_lm.c): its training program learns a periodic byte stream, is
 * reproducible from the seed, and its inference graph gives the training
 * program's loss on the same windows. Small sizes: the full training is
 * `pdc toy tiny-lm` (tests/py/test_tiny_lm.py compares it with onnxruntime). */
#include <stdint.h>
#include <unistd.h>

#include "decomp_impl.h"
#include "exec.h"
#include "harness.h"
#include "pass.h"
#include "target.h"
#include "toy_lm.h"
#include "train.h"

#define NB 2 /* the CE tests: logits [NB, NT, NV] */
#define NT 5
#define NV 7

static uint32_t graph_input(struct ir_graph *g, const char *name, enum ir_dtype dt, int rank,
                            const int64_t *dims)
{
    uint32_t t = ir_tensor_new(g, name);
    g->t[t].dtype = dt;
    g->t[t].rank = rank;
    for (int k = 0; k < rank; k++)
        g->t[t].dims[k] = dims[k];
    ir_graph_add_input(g, t);
    return t;
}

/* mean over b and t < NT−1 of logsumexp(z[b,t]) − z[b,t][tok[b,t+1]] */
static double manual_ce(const float *z, const int64_t *tok)
{
    double s = 0;
    for (int b = 0; b < NB; b++)
        for (int t = 0; t + 1 < NT; t++) {
            const float *r = z + (b * NT + t) * NV;
            double se = 0;
            for (int v = 0; v < NV; v++)
                se += exp((double)r[v]);
            s += log(se) - (double)r[tok[b * NT + t + 1]];
        }
    return s / (NB * (NT - 1));
}

static void ce_on(const struct cg_target *tgt)
{
    struct diag d = {0};
    struct ir_graph *g = ir_graph_new();
    struct ir_builder b = bld_begin(g, "t", &d);
    int64_t zd[3] = {NB, NT, NV}, td[2] = {NB, NT};
    uint32_t z = graph_input(g, "z", IR_F32, 3, zd), tok = graph_input(g, "tok", IR_I64, 2, td);
    uint32_t ce = dc_next_token_ce(&b, z, tok);
    CHECK_EQ(b.err, ST_OK);
    ir_graph_add_output(g, ce);
    struct pass_ctx cx = {.eval = cg_eval_node};
    CHECK_EQ(pass_compile_inference(g, &cx, &d), ST_OK);
    float zv[NB * NT * NV];
    int64_t tv[NB * NT];
    for (int i = 0; i < NB * NT * NV; i++)
        zv[i] = (float)sin(1.7 * i) * 3.0f;
    for (int i = 0; i < NB * NT; i++)
        tv[i] = (i * 5 + 3) % NV;
    tv[0] = NV - 1; /* position 0 is never a label: a change there must not matter */
    struct ir_value in[2] = {
        {.name = (char *)"z", .dtype = IR_F32, .rank = 3, .dims = {NB, NT, NV}, .data = zv,
         .nbytes = sizeof zv},
        {.name = (char *)"tok", .dtype = IR_I64, .rank = 2, .dims = {NB, NT}, .data = tv,
         .nbytes = sizeof tv}};
    struct ir_value *out = NULL;
    int nout = 0;
    int st = rt_run(g, tgt, in, 2, &out, &nout, &d);
    CHECK_EQ(st, ST_OK);
    if (!st && nout == 1) {
        CHECK_NEAR(*(float *)out[0].data, manual_ce(zv, tv), 1e-5);
        ir_value_free(&out[0]);
    } else {
        fprintf(stderr, "  %s\n", d.msg);
    }
    free(out);
    ir_graph_free(g);
}

TEST(next_token_ce_ref) { ce_on(&cg_ref); }
TEST(next_token_ce_default_target) { ce_on(cg_default()); }

TEST(next_token_ce_rejects_mismatched_shapes)
{
    struct diag d = {0};
    struct ir_graph *g = ir_graph_new();
    struct ir_builder b = bld_begin(g, "t", &d);
    int64_t zd[3] = {NB, NT, NV}, td[2] = {NB, NT - 1};
    uint32_t z = graph_input(g, "logits", IR_F32, 3, zd);
    uint32_t tok = graph_input(g, "ids", IR_I64, 2, td);
    CHECK(dc_next_token_ce(&b, z, tok) == IR_NONE);
    CHECK_EQ(b.err, ST_ERR_SHAPE);
    CHECK_STR_CONTAINS(d.msg, "'logits' and 'ids'");
    ir_graph_free(g);
}

/* ---- the tiny LM -------------------------------------------------------------- */

static char tok_path[64];

/* "abcdefg" repeated as u16 tokens: a stream a 2-layer transformer learns at once */
static const char *token_file(void)
{
    snprintf(tok_path, sizeof tok_path, "/tmp/pdc_test_lm_%ld.bin", (long)getpid());
    FILE *f = fopen(tok_path, "wb");
    for (int i = 0; f && i < 4000; i++) {
        unsigned char le[2] = {(unsigned char)('a' + i % 7), 0};
        fwrite(le, 1, 2, f);
    }
    if (f)
        fclose(f);
    return tok_path;
}

static struct toy_lm_spec small_spec(void)
{
    struct toy_lm_spec s = *toy_lm_default();
    s.batch = 4, s.seq = 16, s.ctx = 16, s.steps = 60;
    return s;
}

/* setup + training; the loss of every step into loss[]; returns the step count run */
static int train(const struct toy_lm_spec *s, uint64_t seed, struct rt_store *store, double *loss)
{
    struct diag d = {0};
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.seq = s->seq;
    struct ds_source *src = NULL;
    struct dc_prog setup = {0}, prog = {0};
    struct rt_train_opts os = {.seed = seed, .phase = "setup"};
    double last[8];
    int st = ds_open(tok_path, &o, &src, &d), n = 0;
    if (!st && !(st = toy_lm_build_setup(s, &setup, &d)))
        st = rt_train(&setup, cg_default(), store, src, &os, last, &d);
    if (!st)
        st = toy_lm_build_train(s, &prog, &d);
    for (int64_t k = 0; !st && k < s->steps; k++) { /* one step per call: every loss */
        struct rt_train_opts o1 = {.seed = seed, .phase = "test", .from = k, .to = k + 1};
        st = rt_train(&prog, cg_default(), store, src, &o1, last, &d);
        loss[n++] = last[0];
    }
    if (st)
        fprintf(stderr, "  tiny-lm: %s\n", d.msg);
    dc_prog_free(&setup);
    dc_prog_free(&prog);
    ds_close(src);
    return st ? -1 : n;
}

TEST(tiny_lm_learns_reproducibly)
{
    token_file();
    struct toy_lm_spec s = small_spec();
    double la[64], lb[64];
    struct rt_store a = {0}, b = {0};
    CHECK_EQ(train(&s, 5, &a, la), s.steps);
    CHECK_EQ(train(&s, 5, &b, lb), s.steps);
    /* from about ln 256 (uniform over bytes) to far below ln 7 (uniform over the cycle) */
    CHECK(la[0] > 4.5 && la[0] < 7.0);
    CHECK(la[s.steps - 1] < 0.5 * log(7.0));
    const struct rt_store_item *qa = rt_store_find(&a, "layers.1.attn.q_proj");
    const struct rt_store_item *qb = rt_store_find(&b, "layers.1.attn.q_proj");
    CHECK(qa && qb && qa->nbytes == 64 * 64 * sizeof(float));
    if (qa && qb)
        CHECK(memcmp(qa->data, qb->data, qa->nbytes) == 0);
    const struct rt_store_item *ln = rt_store_find(&a, "ln_f.scale");
    CHECK(ln && fabs((double)((const float *)ln->data)[0] - 1.0) < 0.2); /* set to 1, then trained */
    rt_store_free(&a);
    rt_store_free(&b);
    unlink(tok_path);
}

static const void *store_weight(void *ctx, const char *name, size_t nbytes)
{
    struct rt_store_item *it = rt_store_find(ctx, name);
    return it && it->dtype == IR_F32 && it->nbytes == nbytes ? it->data : NULL;
}

/* the inference graph's logits give the training program's loss on the same
 * windows (one forward definition for both) */
TEST(tiny_lm_infer_matches_training_loss)
{
    token_file();
    struct toy_lm_spec s = small_spec();
    s.steps = 3;
    double loss[8];
    struct rt_store st_ = {0};
    CHECK_EQ(train(&s, 9, &st_, loss), 3);
    s.steps = 1; /* a program whose loss is read before its one update */
    struct diag d = {0};
    struct dc_prog p = {0};
    struct ir_graph *g = NULL;
    struct rt_prog *rp = NULL;
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.seq = s.seq;
    struct ds_source *src = NULL;
    double met[4];
    int st = ds_open(tok_path, &o, &src, &d);
    if (!st)
        st = toy_lm_build_train(&s, &p, &d);
    if (!st) /* the held-out batch 0 through the training program */
        st = rt_run_once(&p, cg_default(), &st_, src, NULL, 1, 0, met, &rp, &d);
    int64_t *x = NULL;
    if (!st) {
        x = malloc(sizeof(int64_t) * (size_t)(s.batch * s.seq));
        memcpy(x, rt_prog_buf(rp, p.in[0].t), sizeof(int64_t) * (size_t)(s.batch * s.seq));
    }
    struct pass_ctx cx = {.eval = cg_eval_node};
    if (!st && !(st = toy_lm_build_infer(&s, s.batch, s.seq, store_weight, &st_, &g, &d)))
        st = pass_compile_inference(g, &cx, &d);
    struct ir_value in = {.name = (char *)"tokens", .dtype = IR_I64, .rank = 2,
                          .dims = {s.batch, s.seq}, .data = x,
                          .nbytes = sizeof(int64_t) * (size_t)(s.batch * s.seq)};
    struct ir_value *out = NULL;
    int nout = 0;
    if (!st)
        st = rt_run(g, cg_default(), &in, 1, &out, &nout, &d);
    CHECK_EQ(st, ST_OK);
    if (!st && nout == 1) {
        const float *z = out[0].data;
        double ce = 0;
        for (int64_t b = 0; b < s.batch; b++)
            for (int64_t t = 0; t + 1 < s.seq; t++) {
                const float *r = z + (b * s.seq + t) * 256;
                double se = 0;
                for (int v = 0; v < 256; v++)
                    se += exp((double)r[v]);
                ce += log(se) - (double)r[x[b * s.seq + t + 1]];
            }
        CHECK_NEAR(ce / (double)(s.batch * (s.seq - 1)), met[0], 1e-4);
        ir_value_free(&out[0]);
    } else if (st) {
        fprintf(stderr, "  %s\n", d.msg);
    }
    free(out);
    free(x);
    rt_prog_free(rp);
    ir_graph_free(g);
    dc_prog_free(&p);
    ds_close(src);
    rt_store_free(&st_);
    unlink(tok_path);
}

static const struct test_case tests[] = {
    T(next_token_ce_ref),
    T(next_token_ce_default_target),
    T(next_token_ce_rejects_mismatched_shapes),
    T(tiny_lm_learns_reproducibly),
    T(tiny_lm_infer_matches_training_loss),
};

TEST_MAIN(tests)
