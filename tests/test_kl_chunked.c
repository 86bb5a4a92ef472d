/* test_kl_chunked.c — the KL of logits computed in vocabulary chunks (ChunkedKL,
 * ChunkedKLGrad; codegen/kl_chunked.c) against independent oracles:
 *   - per-row KL(softmax(h_t W + b) ‖ softmax(h_m W + b)) and both log-sum-exps, in
 *     double precision from the full logits, for chunk sizes 1, 3, V and above V, W
 *     stored [D, V] or [V, D], with and without a bias, on the reference and the
 *     default target;
 *   - the gradient w.r.t. h_m against central differences of that double oracle;
 *   - a whole decomposition step on a model whose logits are MatMul(h, W) + b: the
 *     fused form (kl_chunk 2) against the LogSoftmax form on full logits (kl_chunk 0):
 *     the same loss, metrics and next states, and only the fused one free of
 *     [.., V] logits of the masked forwards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_impl.h"
#include "decompose_fixture.h"

#define D 5
#define V 300 /* past the 256-logit stretches of kl_chunked.c, and not a multiple of their 8 lanes */

struct kcase {
    int64_t b0, b1, rows; /* h is [b0, b1, D] */
    float *ht, *hm, w[D * V], b[V];
};

static void kcase_fill(struct kcase *k, int64_t b0, int64_t b1)
{
    rng_state = 99;
    k->b0 = b0;
    k->b1 = b1;
    k->rows = b0 * b1;
    k->ht = malloc((size_t)(k->rows * D) * sizeof *k->ht);
    k->hm = malloc((size_t)(k->rows * D) * sizeof *k->hm);
    for (int64_t i = 0; i < k->rows * D; i++) {
        k->ht[i] = (float)rng_normal(1.0);
        k->hm[i] = (float)rng_normal(1.0);
    }
    for (int i = 0; i < D * V; i++)
        k->w[i] = (float)rng_normal(1.5); /* sharp softmaxes: the rescaling matters */
    for (int i = 0; i < V; i++)
        k->b[i] = (float)rng_normal(1.0);
}

/* logits of row r from h (double), W [D, V] */
static void logits(const struct kcase *k, const double *h, int bias, double *z)
{
    for (int v = 0; v < V; v++) {
        double s = bias ? (double)k->b[v] : 0.0;
        for (int i = 0; i < D; i++)
            s += h[i] * (double)k->w[i * V + v];
        z[v] = s;
    }
}

static double lse(const double *z)
{
    double m = z[0], s = 0;
    for (int v = 1; v < V; v++)
        m = fmax(m, z[v]);
    for (int v = 0; v < V; v++)
        s += exp(z[v] - m);
    return m + log(s);
}

/* KL of one row in double; lse_t, lse_m out when not NULL */
static double kl_row(const struct kcase *k, const double *ht, const double *hm, int bias,
                     double *lt_out, double *lm_out)
{
    double zt[V], zm[V];
    logits(k, ht, bias, zt);
    logits(k, hm, bias, zm);
    double lt = lse(zt), lm = lse(zm), s = 0;
    for (int v = 0; v < V; v++)
        s += exp(zt[v] - lt) * ((zt[v] - lt) - (zm[v] - lm));
    if (lt_out) {
        *lt_out = lt;
        *lm_out = lm;
    }
    return s;
}

static void row_d(const float *f, int r, double *out)
{
    for (int i = 0; i < D; i++)
        out[i] = f[r * D + i];
}

/* a graph holding one ChunkedKL (and, with grad, its ChunkedKLGrad with dkl an input) */
static void kcase_free(struct kcase *k)
{
    free(k->ht);
    free(k->hm);
}

static struct ir_graph *op_graph(const struct kcase *k, int trans, int bias, int64_t chunk,
                                 int grad, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = new_graph(&b, d);
    int64_t hd[3] = {k->b0, k->b1, D}, wd[2] = {trans ? V : D, trans ? D : V}, bd[1] = {V},
            kd[2] = {k->b0, k->b1};
    uint32_t in[4] = {g_input(g, "ht", IR_F32, 3, hd), g_input(g, "hm", IR_F32, 3, hd),
                      g_input(g, "w", IR_F32, 2, wd), bias ? g_input(g, "b", IR_F32, 1, bd) : IR_NONE};
    struct ir_attr at[2] = {bld_attr_int("chunk", chunk), bld_attr_int("trans_w", trans)};
    uint32_t out[2];
    bld_node(&b, IR_OP_ChunkedKL, bias ? 4 : 3, in, 2, at, 2, out);
    ir_graph_add_output(g, out[0]);
    ir_graph_add_output(g, out[1]);
    if (grad) {
        uint32_t gi[6] = {g_input(g, "dkl", IR_F32, 2, kd), out[1], in[0], in[1], in[2], in[3]};
        ir_graph_add_output(g, bld_node(&b, IR_OP_ChunkedKLGrad, bias ? 6 : 5, gi, 2, at, 1, NULL));
    }
    struct pass_ctx pc = {.eval = cg_eval_node};
    if (b.err || pass_compile_inference(g, &pc, d) || ir_fill_topo(g, d)) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

static int run_op(const struct kcase *k, int trans, int bias, int64_t chunk, const float *dkl,
                  const struct cg_target *tgt, struct ir_value **outs, int *nout)
{
    struct diag d = {0};
    struct ir_graph *g = op_graph(k, trans, bias, chunk, dkl != NULL, &d);
    if (!g) {
        fprintf(stderr, "  graph: %s\n", d.msg);
        return -1;
    }
    float wt[D * V];
    for (int i = 0; i < D; i++)
        for (int v = 0; v < V; v++)
            wt[v * D + i] = k->w[i * V + v];
    struct ir_value in[5] = {
        {"ht", IR_F32, 3, {k->b0, k->b1, D}, k->ht, (size_t)(k->rows * D) * sizeof(float)},
        {"hm", IR_F32, 3, {k->b0, k->b1, D}, k->hm, (size_t)(k->rows * D) * sizeof(float)},
        {"w", IR_F32, 2, {trans ? V : D, trans ? D : V}, trans ? wt : (void *)k->w, sizeof wt},
        {"b", IR_F32, 1, {V}, (void *)k->b, sizeof k->b},
        {"dkl", IR_F32, 2, {k->b0, k->b1}, (void *)dkl, (size_t)k->rows * sizeof(float)},
    };
    int st = rt_run(g, tgt, in, 5, outs, nout, &d);
    if (st)
        fprintf(stderr, "  run: %s\n", d.msg);
    ir_graph_free(g);
    return st;
}

static void free_outs(struct ir_value *o, int n)
{
    for (int i = 0; i < n; i++)
        ir_value_free(&o[i]);
    free(o);
}

static void forward_on(const struct cg_target *tgt, int64_t b0, int64_t b1)
{
    struct kcase k;
    kcase_fill(&k, b0, b1);
    static const int64_t chunks[] = {1, 3, V, 64};
    double worst = 0;
    int n = 0;
    for (int trans = 0; trans < 2; trans++)
        for (int bias = 0; bias < 2; bias++)
            for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
                struct ir_value *o = NULL;
                int no = 0;
                if (run_op(&k, trans, bias, chunks[c], NULL, tgt, &o, &no)) {
                    test_failed_ = 1;
                    continue;
                }
                for (int64_t r = 0; r < k.rows; r++) {
                    double ht[D], hm[D], lt, lm;
                    row_d(k.ht, r, ht);
                    row_d(k.hm, r, hm);
                    double want = kl_row(&k, ht, hm, bias, &lt, &lm);
                    const float *kl = o[0].data, *ls = o[1].data;
                    CHECK_NEAR(kl[r], want, 1e-5 + 1e-5 * want);
                    CHECK_NEAR(ls[2 * r], lt, 1e-5 * (1 + fabs(lt)));
                    CHECK_NEAR(ls[2 * r + 1], lm, 1e-5 * (1 + fabs(lm)));
                    worst = fmax(worst, fabs((double)kl[r] - want) / (1e-5 + want));
                    CHECK(want > 1e-2); /* rows far apart: a KL of 0 would test little */
                }
                n++;
                free_outs(o, no);
            }
    printf("  %s, %lld rows: %d cases (chunk 1/3/V/64, W [D,V] and [V,D], with and without "
           "bias), worst KL error %.2g relative\n", tgt->name, (long long)k.rows, n, worst);
    kcase_free(&k);
}

TEST(forward_matches_full_logits_ref) { forward_on(&cg_ref, 2, 3); }
TEST(forward_matches_full_logits_default_target) { forward_on(cg_default(), 2, 3); }
/* 202 rows: the cpu kernel's blocks of 64 rows, the last one partial */
TEST(forward_matches_full_logits_many_rows) { forward_on(cg_default(), 2, 101); }

/* d/dh_m Σ_r c_r KL_r against central differences of the double oracle */
static void gradient_on(const struct cg_target *tgt, int64_t b0, int64_t b1)
{
    struct kcase k;
    kcase_fill(&k, b0, b1);
    float *c = malloc((size_t)k.rows * sizeof *c);
    for (int64_t r = 0; r < k.rows; r++)
        c[r] = (float)(0.5 + 0.25 * (double)(r % 7));
    for (int trans = 0; trans < 2; trans++) {
        struct ir_value *o = NULL;
        int no = 0;
        if (run_op(&k, trans, 1, 3, c, tgt, &o, &no) || no != 3) {
            test_failed_ = 1;
            continue;
        }
        const float *g = o[2].data;
        double worst = 0, gmax = 0;
        for (int64_t r = 0; r < k.rows; r++)
            for (int i = 0; i < D; i++) {
                double ht[D], hm[D], h = 1e-5;
                row_d(k.ht, r, ht);
                row_d(k.hm, r, hm);
                hm[i] += h;
                double up = kl_row(&k, ht, hm, 1, NULL, NULL);
                hm[i] -= 2 * h;
                double dn = kl_row(&k, ht, hm, 1, NULL, NULL);
                double fd = (double)c[r] * (up - dn) / (2 * h);
                worst = fmax(worst, fabs(fd - (double)g[r * D + i]));
                gmax = fmax(gmax, fabs(fd));
            }
        printf("  %s trans_w %d: max |grad| %.3g, max |fd - grad| %.2g\n", tgt->name, trans, gmax,
               worst);
        CHECK(gmax > 1e-2);
        CHECK(worst <= 1e-4 * gmax);
        free_outs(o, no);
    }
    free(c);
    kcase_free(&k);
}

TEST(gradient_matches_central_differences_ref) { gradient_on(&cg_ref, 2, 3); }
TEST(gradient_matches_central_differences_default_target) { gradient_on(cg_default(), 2, 3); }
TEST(gradient_matches_central_differences_many_rows) { gradient_on(cg_default(), 2, 101); }

/* the cpu kernel on 1 and 2 threads: the same bits (fixed row blocks, whatever the split) */
TEST(cpu_kernel_independent_of_threads)
{
    struct kcase k;
    kcase_fill(&k, 3, 97);
    float *c = malloc((size_t)k.rows * sizeof *c);
    for (int64_t r = 0; r < k.rows; r++)
        c[r] = (float)(1.0 + 0.1 * (double)(r % 5));
    struct ir_value *o[2] = {NULL, NULL};
    int no[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        cpu_set_threads(t + 1);
        CHECK_EQ(run_op(&k, 1, 1, 4, c, &cg_cpu, &o[t], &no[t]), ST_OK);
    }
    cpu_set_threads(0);
    CHECK(no[0] == 3 && no[1] == 3);
    for (int i = 0; no[0] == 3 && no[1] == 3 && i < 3; i++)
        CHECK(o[0][i].nbytes == o[1][i].nbytes &&
              memcmp(o[0][i].data, o[1][i].data, o[0][i].nbytes) == 0);
    free_outs(o[0], no[0]);
    free_outs(o[1], no[1]);
    free(c);
    kcase_free(&k);
}

/* ---- a decomposition step: fused against full logits ---------------------------- */

static int count_op(const struct ir_graph *g, enum ir_op op)
{
    int n = 0;
    for (uint32_t k = 0; k < g->ntopo; k++)
        n += g->n[g->topo[k]].op == op;
    return n;
}

/* one VPD step on build_batched (logits = MatMul(h, mlp_out) + bias, only mlp_in a
 * site, KL as the output loss); the outputs concatenated */
static float *step_outputs(int64_t chunk, int *n_chunked, int *n_logsoftmax, size_t *count)
{
    struct diag d = {0};
    struct ir_graph *g = NULL;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    struct dc_prog p = {0};
    int ns = 0, nf = 0;
    struct dc_config c;
    dc_config_defaults(&c, "vpd");
    c.output_loss_type = DC_OUT_KL;
    c.kl_chunk = chunk;
    c.steps = 10;
    c.n_sites = 1;
    snprintf(c.sites[0].pattern, sizeof c.sites[0].pattern, "mlp_in");
    c.sites[0].C = 3;
    float *all = NULL;
    rng_state = 5; /* the same target weights in both programs */
    int st = build_batched(&g, &d);
    if (!st && !(st = dc_select_sites(g, &c, &sites, &ns, &fac, &nf, &d))) {
        st = dc_build_spd_train(g, &c, sites, ns, fac, nf, &p, &d);
        g = NULL;
    }
    struct rt_prog *rp = NULL;
    if (!st && !(st = rt_prog_new(p.g, &cg_ref, &rp, &d))) {
        *n_chunked = count_op(p.g, IR_OP_ChunkedKL);
        *n_logsoftmax = count_op(p.g, IR_OP_LogSoftmax);
        rng_state = 7;
        for (uint32_t k = 0; k < p.g->n_inputs; k++) {
            const struct ir_tensor *t = &p.g->t[p.g->inputs[k]];
            float *b = rt_prog_buf(rp, p.g->inputs[k]);
            for (int64_t i = 0; t->dtype == IR_F32 && i < ir_numel(t); i++)
                b[i] = (float)rng_unif(0.1, 0.9);
        }
        size_t total = 0;
        for (uint32_t k = 0; k < p.g->n_outputs; k++)
            total += (size_t)ir_numel(&p.g->t[p.g->outputs[k]]);
        all = malloc(total * sizeof *all + 1);
        if (all && !(st = rt_prog_run(rp, &d))) {
            size_t at = 0;
            for (uint32_t k = 0; k < p.g->n_outputs; k++) {
                size_t n = (size_t)ir_numel(&p.g->t[p.g->outputs[k]]);
                memcpy(all + at, rt_prog_buf(rp, p.g->outputs[k]), n * sizeof *all);
                at += n;
            }
            *count = total;
        }
    }
    if (st) {
        fprintf(stderr, "  kl_chunk %lld: %s\n", (long long)chunk, d.msg);
        free(all);
        all = NULL;
    }
    rt_prog_free(rp);
    ir_graph_free(g);
    dc_prog_free(&p);
    free(sites);
    free(fac);
    return all;
}

TEST(decomposition_step_fused_equals_full_logits)
{
    int fc = 0, fl = 0, pc = 0, pl = 0;
    size_t nf = 0, np = 0;
    float *fused = step_outputs(2, &fc, &fl, &nf), *plain = step_outputs(0, &pc, &pl, &np);
    CHECK(fused && plain && nf == np && nf > 0);
    printf("  fused: %d ChunkedKL, %d LogSoftmax; full logits: %d ChunkedKL, %d LogSoftmax\n", fc,
           fl, pc, pl);
    CHECK(fc > 0 && fl == 0);
    CHECK(pc == 0 && pl > 0);
    double worst = 0;
    for (size_t i = 0; fused && plain && nf == np && i < nf; i++) {
        double a = fused[i], b = plain[i];
        worst = fmax(worst, fabs(a - b) / (1e-6 + fabs(b)));
        CHECK_NEAR(a, b, 1e-6 + 1e-4 * fabs(b));
    }
    printf("  %zu output values (loss, metrics, next states), worst relative difference %.2g\n",
           nf, worst);
    free(fused);
    free(plain);
}

static const struct test_case tests[] = {
    T(forward_matches_full_logits_ref),
    T(forward_matches_full_logits_default_target),
    T(forward_matches_full_logits_many_rows),
    T(gradient_matches_central_differences_ref),
    T(gradient_matches_central_differences_default_target),
    T(gradient_matches_central_differences_many_rows),
    T(cpu_kernel_independent_of_threads),
    T(decomposition_step_fused_equals_full_logits),
};

TEST_MAIN(tests)
