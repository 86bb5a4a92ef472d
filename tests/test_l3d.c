/* test_l3d.c — the L3D step (passes/objective_l3d.c, l3d_project.c) on three smooth
 * two-layer targets: MatMul/Add with positions, x [B, NT, 3] → Tanh(x·W1 + b1)·W2 + b2;
 * Gemm, x [B, 3] → Gemm(Tanh(Gemm(x, W1t, b1, transB, α, β)), W2, b2, α', β'); and Conv,
 * x [B, 2, 4, 4] → Conv(Tanh(Conv(x, K1, b1, stride 2, pad 1)), K2, b2, pad 1):
 *   - the per-sample gradient projection (A = V_in·G, and the loss built from
 *     projections) against the materialising oracle (G built, Ĝ subtracted), Tucker
 *     and CP;
 *   - A against central differences of the per-sample divergence D_i w.r.t. every
 *     weight, run through the model itself with the references the program drew. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decompose_fixture.h"
#include "train.h"

#define B 4
#define NT 3
#define NV 3

enum { MODEL_MATMUL, MODEL_GEMM, MODEL_CONV };
static int model_kind; /* which target the tests build */
#define ROW (model_kind == MODEL_GEMM ? 2 : model_kind == MODEL_CONV ? 18 : NT * 2) /* per sample */
#define XN (B * 2 * 4 * 4) /* input values: the largest model's */
#define YN (B * 18)

static uint32_t gemm(struct ir_builder *b, uint32_t x, uint32_t w, uint32_t c, int tb,
                     double alpha, double beta)
{
    struct ir_attr at[3] = {bld_attr_int("transB", tb), bld_attr_float("alpha", alpha),
                            bld_attr_float("beta", beta)};
    uint32_t in[3] = {x, w, c};
    return bld_node(b, IR_OP_Gemm, 3, in, 3, at, 1, NULL);
}

/* weights as Gemm's B, transposed (W1t [4, 3]) and not (W2 [4, 2]), biases as its C, with
 * alpha and beta away from 1 so that a missing scale shows */
static int build_gemm_model(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = new_graph(&b, d);
    int64_t xd[2] = {B, 3}, w1[2] = {4, 3}, b1[1] = {4}, w2[2] = {4, 2}, b2[1] = {2};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd);
    uint32_t h = bld_op1(&b, IR_OP_Tanh, gemm(&b, x, g_param(&b, "W1", 2, w1, 0.8),
                                              g_param(&b, "b1", 1, b1, 0.5), 1, 0.7, 1.3));
    uint32_t y = gemm(&b, h, g_param(&b, "W2", 2, w2, 0.8), g_param(&b, "b2", 1, b2, 0.5), 0,
                      1.2, 0.6);
    *out = g;
    return finish_graph(g, &b, y, d);
}

static uint32_t conv(struct ir_builder *b, uint32_t x, uint32_t k, uint32_t c, int stride,
                     int pad)
{
    int64_t st[2] = {stride, stride}, pd[4] = {pad, pad, pad, pad};
    struct ir_attr at[2] = {bld_attr_ints("strides", 2, st), bld_attr_ints("pads", 4, pd)};
    uint32_t in[3] = {x, k, c};
    return bld_node(b, IR_OP_Conv, 3, in, 2, at, 1, NULL);
}

/* kernels of 4 modes (Tucker cores [n, R, R, R, R]) with stride and padding, so that the
 * patches differ from a plain reshape of x */
static int build_conv_model(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = new_graph(&b, d);
    int64_t xd[4] = {B, 2, 4, 4}, k1[4] = {3, 2, 3, 3}, b1[1] = {3}, k2[4] = {2, 3, 2, 2};
    int64_t b2[1] = {2};
    uint32_t x = g_input(g, "x", IR_F32, 4, xd);
    uint32_t h = bld_op1(&b, IR_OP_Tanh, conv(&b, x, g_param(&b, "K1", 4, k1, 0.5),
                                              g_param(&b, "b1", 1, b1, 0.5), 2, 1));
    uint32_t y = conv(&b, h, g_param(&b, "K2", 4, k2, 0.5), g_param(&b, "b2", 1, b2, 0.5), 1, 1);
    *out = g;
    return finish_graph(g, &b, y, d);
}

static int build_model(struct ir_graph **out, struct diag *d)
{
    if (model_kind == MODEL_GEMM)
        return build_gemm_model(out, d);
    if (model_kind == MODEL_CONV)
        return build_conv_model(out, d);
    struct ir_builder b;
    struct ir_graph *g = new_graph(&b, d);
    int64_t xd[3] = {B, NT, 3}, w1[2] = {3, 4}, b1[1] = {4}, w2[2] = {4, 2}, b2[1] = {2};
    uint32_t x = g_input(g, "x", IR_F32, 3, xd);
    uint32_t h = bld_op1(&b, IR_OP_Tanh, bld_add(&b, bld_matmul(&b, x, g_param(&b, "W1", 2, w1, 0.8)),
                                                 g_param(&b, "b1", 1, b1, 0.5)));
    uint32_t y = bld_add(&b, bld_matmul(&b, h, g_param(&b, "W2", 2, w2, 0.8)),
                         g_param(&b, "b2", 1, b2, 0.5));
    *out = g;
    return finish_graph(g, &b, y, d);
}

static void config(struct dc_config *c, int cp, int materialize)
{
    dc_config_defaults(c, "l3d");
    c->batch_size = B;
    c->l3d.n_subnets = NV;
    c->l3d.rank = 2;
    c->l3d.bias_rank = 2;
    c->l3d.cp = cp;
    c->l3d.materialize = materialize;
}

/* random values for every state of p (the same names get the same values) */
static void fill_store(const struct dc_prog *p, struct rt_store *s)
{
    struct diag d = {0};
    for (int i = 0; i < p->n_st; i++) {
        if (rt_store_find(s, p->st[i].name))
            continue;
        const struct ir_tensor *t = &p->g->t[p->st[i].t];
        int64_t n = ir_numel(t);
        float *v = malloc((size_t)n * sizeof *v);
        for (int64_t k = 0; k < n; k++)
            v[k] = (float)rng_normal(0.7);
        struct ir_value val = {.name = p->st[i].name, .dtype = IR_F32, .rank = t->rank,
                               .data = v, .nbytes = (size_t)n * sizeof *v};
        memcpy(val.dims, t->dims, sizeof val.dims);
        rt_store_put(s, &val, &d);
        free(v);
    }
}

static float xdata[XN];

static void run(int cp, int materialize, struct rt_store *s, struct dc_prog *p,
                struct rt_prog **rp, double *met)
{
    struct dc_config c;
    struct ir_graph *g;
    struct diag d = {0};
    config(&c, cp, materialize);
    rng_state = 11; /* the same weights every build */
    CHECK(build_model(&g, &d) == ST_OK);
    memset(p, 0, sizeof *p);
    CHECK(dc_build_l3d_eval(g, &c, p, &d) == ST_OK);
    if (d.status)
        fprintf(stderr, "%s\n", d.msg);
    fill_store(p, s);
    CHECK(rt_run_once(p, &cg_ref, s, NULL, xdata, 7, 3, met, rp, &d) == ST_OK);
}

static uint32_t tap(const struct dc_prog *p, const char *name)
{
    for (int i = 0; i < p->n_tap; i++)
        if (!strcmp(p->tap[i].name, name))
            return p->tap[i].t;
    return IR_NONE;
}

static void projection_vs_oracle(int cp)
{
    struct rt_store s = {0};
    struct dc_prog p0, p1;
    struct rt_prog *r0, *r1;
    double m0[8], m1[8];
    for (int i = 0; i < XN; i++)
        xdata[i] = (float)rng_unif(-1, 1);
    run(cp, 0, &s, &p0, &r0, m0);
    run(cp, 1, &s, &p1, &r1, m1);
    CHECK_TENSOR((const float *)rt_prog_buf(r0, tap(&p0, "l3d.A")),
                 (const float *)rt_prog_buf(r1, tap(&p1, "l3d.A")), B * NV, 1e-4, 1e-4);
    for (int i = 0; i < p0.n_metric; i++)
        CHECK_NEAR(m0[i], m1[i], 1e-4 * (1 + fabs(m1[i])));
    rt_prog_free(r0), rt_prog_free(r1);
    dc_prog_free(&p0), dc_prog_free(&p1);
    rt_store_free(&s);
}

TEST(projection_matches_materialized_tucker) { projection_vs_oracle(0); }
TEST(projection_matches_materialized_cp) { projection_vs_oracle(1); }

/* Tucker v_k of tensor t (role in, rank 2 in every mode) from the store, in t's own
 * row-major layout: Σ over core entries (r_0..r_{d-1}) of K[k, r..] Π_m F_m[k, r_m, i_m] */
static void v_in(struct rt_store *s, const struct ir_tensor *t, int k, double *out)
{
    char nm[300];
    int d = t->rank, ncore = 1 << d;
    const float *F[4];
    snprintf(nm, sizeof nm, "l3d.%s.in.core", t->name);
    const float *K = rt_store_find(s, nm)->data;
    for (int m = 0; m < d; m++) {
        snprintf(nm, sizeof nm, "l3d.%s.in.f%d", t->name, m);
        F[m] = rt_store_find(s, nm)->data;
    }
    for (int64_t e = 0; e < ir_numel(t); e++) {
        int64_t idx[4], rest = e;
        for (int m = d - 1; m >= 0; m--)
            idx[m] = rest % t->dims[m], rest /= t->dims[m];
        out[e] = 0;
        for (int c = 0; c < ncore; c++) {
            double prod = (double)K[k * ncore + c];
            for (int m = 0; m < d; m++) {
                int r = (c >> (d - 1 - m)) & 1;
                prod *= (double)F[m][(k * 2 + r) * t->dims[m] + idx[m]];
            }
            out[e] += prod;
        }
    }
}

/* y of the model with its initializers as they are now */
static void model_y(struct ir_graph *g, float *y)
{
    struct ir_value x = {.name = (char *)"x", .dtype = IR_F32, .rank = 3, .dims = {B, NT, 3},
                         .data = xdata, .nbytes = sizeof xdata};
    if (model_kind == MODEL_GEMM) { /* [B, 3]: the first B·3 values */
        x.rank = 2, x.dims[1] = 3, x.dims[2] = 0;
        x.nbytes = B * 3 * sizeof *xdata;
    } else if (model_kind == MODEL_CONV) {
        x.rank = 4, x.dims[1] = 2, x.dims[2] = x.dims[3] = 4;
    } else {
        x.nbytes = B * NT * 3 * sizeof *xdata;
    }
    struct ir_value *outs;
    int n;
    struct diag d = {0};
    CHECK(rt_run(g, &cg_ref, &x, 1, &outs, &n, &d) == ST_OK);
    memcpy(y, outs[0].data, (size_t)(B * ROW) * sizeof *y);
    for (int i = 0; i < n; i++)
        ir_value_free(&outs[i]);
    free(outs);
}

/* the code's divergence of sample i against the fixed reference row yr */
static double D_i(const float *y, const float *yr, int i)
{
    double s = 0;
    for (int e = 0; e < ROW; e++)
        s += (double)y[i * ROW + e] * ((double)y[i * ROW + e] - (double)yr[e]) / ROW;
    return s;
}

static void finite_differences(void)
{
    struct rt_store s = {0};
    struct dc_prog p;
    struct rt_prog *rp;
    double met[8];
    struct diag d = {0};
    for (int i = 0; i < XN; i++)
        xdata[i] = (float)rng_unif(-1, 1);
    run(0, 0, &s, &p, &rp, met);
    int ref[B];
    for (int i = 0; i < p.n_in; i++)
        if (p.in[i].kind == DC_FEED_UNIFORM) {
            const float *u = rt_prog_buf(rp, p.in[i].t);
            for (int k = 0; k < B; k++)
                ref[k] = (int)fmin(floor((double)u[k] * B), B - 1);
        }
    struct ir_graph *g;
    rng_state = 11;
    CHECK(build_model(&g, &d) == ST_OK);
    float y0[YN], yp[YN], ym[YN];
    model_y(g, y0);
    double A[B][NV] = {{0}}, v[NV][64];
    static const char *const mats[4] = {"W1", "b1", "W2", "b2"}, *const convs[4] = {"K1", "b1", "K2", "b2"};
    const char *const *names = model_kind == MODEL_CONV ? convs : mats;
    const double h = 1e-2;
    for (int j = 0; j < 4; j++) {
        uint32_t w = ir_tensor_find(g, names[j]);
        struct ir_tensor *t = &g->t[w];
        for (int k = 0; k < NV; k++)
            v_in(&s, t, k, v[k]);
        for (int64_t e = 0; e < ir_numel(t); e++) {
            float *wv = t->data, keep = wv[e];
            wv[e] = keep + (float)h;
            model_y(g, yp);
            wv[e] = keep - (float)h;
            model_y(g, ym);
            wv[e] = keep;
            for (int k = 0; k < NV; k++)
                for (int i = 0; i < B; i++) {
                    double gi = (D_i(yp, y0 + ref[i] * ROW, i) - D_i(ym, y0 + ref[i] * ROW, i)) /
                                (2 * h);
                    A[i][k] += v[k][e] * gi;
                }
        }
    }
    const float *At = rt_prog_buf(rp, tap(&p, "l3d.A"));
    for (int i = 0; i < B; i++)
        for (int k = 0; k < NV; k++)
            CHECK_NEAR((double)At[i * NV + k], A[i][k], 2e-3 * (1 + fabs(A[i][k])));
    ir_graph_free(g);
    rt_prog_free(rp);
    dc_prog_free(&p);
    rt_store_free(&s);
}

TEST(projection_matches_finite_differences) { finite_differences(); }

/* both checks on another target model, the MatMul one restored afterwards */
static void on_model(int kind, int fd)
{
    model_kind = kind;
    if (fd) {
        finite_differences();
    } else {
        projection_vs_oracle(0);
        projection_vs_oracle(1);
    }
    model_kind = MODEL_MATMUL;
}

/* Gemm: B with and without transB (the factors swap), C, alpha and beta */
TEST(gemm_projection_matches_materialized) { on_model(MODEL_GEMM, 0); }
TEST(gemm_projection_matches_finite_differences) { on_model(MODEL_GEMM, 1); }

/* Conv: kernels of 4 modes read through patches, and Conv biases */
TEST(conv_projection_matches_materialized) { on_model(MODEL_CONV, 0); }
TEST(conv_projection_matches_finite_differences) { on_model(MODEL_CONV, 1); }

/* ---- the top-k count (METHOD §8.4) ---------------------------------------------- */

/* DC_SC_TOPK is the largest number of strictly larger entries a kept entry may have:
 * code ⌊k·n⌋ (so ⌊k·n⌋ + 1 kept: n = 160 → 17), paper ⌈k·n⌉ − 1 (⌈k·n⌉ kept: 16);
 * during the warm start n (every entry kept) */
TEST(topk_rank_counts)
{
    struct dc_prog p = {0};
    p.topk.frac = 0.1;
    p.topk.warm_steps = 32;
    static const int64_t n[4] = {160, 320, 40, 163}, code[4] = {17, 33, 5, 17},
                         paper[4] = {16, 32, 4, 17};
    for (int i = 0; i < 4; i++) {
        p.topk.n = n[i];
        p.topk.exact = 0;
        CHECK_NEAR(dc_topk_rank(&p, 32) + 1, (double)code[i], 0);
        CHECK_NEAR(dc_topk_rank(&p, 31), (double)n[i], 0); /* warm start: all kept */
        p.topk.exact = 1;
        CHECK_NEAR(dc_topk_rank(&p, 32) + 1, (double)paper[i], 0);
    }
}

/* the mask in the program: with n = B·NV = 12 and k = 0.25 the code keeps ⌊3⌋ + 1 = 4
 * entries, the paper ⌈3⌉ = 3, the largest |A| each time (random A: no ties) */
static void topk_mask_count(int exact, int want)
{
    struct rt_store s = {0};
    struct dc_config c;
    struct ir_graph *g;
    struct dc_prog p = {0};
    struct rt_prog *rp;
    struct diag d = {0};
    double met[8];
    config(&c, 0, 0);
    c.l3d.top_k = 0.25;
    c.l3d.topk_exact = exact;
    rng_state = 11;
    for (int i = 0; i < XN; i++)
        xdata[i] = (float)rng_unif(-1, 1);
    CHECK(build_model(&g, &d) == ST_OK);
    CHECK(dc_build_l3d_eval(g, &c, &p, &d) == ST_OK);
    fill_store(&p, &s);
    CHECK(rt_run_once(&p, &cg_ref, &s, NULL, xdata, 7, 3, met, &rp, &d) == ST_OK);
    const float *A = rt_prog_buf(rp, tap(&p, "l3d.A")), *keep = rt_prog_buf(rp, tap(&p, "l3d.keep"));
    int kept = 0;
    for (int i = 0; i < B * NV; i++) {
        int larger = 0;
        for (int j = 0; j < B * NV; j++)
            larger += fabsf(A[j]) > fabsf(A[i]);
        CHECK_NEAR(keep[i], larger < want ? 1.0 : 0.0, 0);
        kept += keep[i] != 0.0f;
    }
    CHECK(kept == want);
    rt_prog_free(rp);
    dc_prog_free(&p);
    rt_store_free(&s);
}

TEST(topk_mask_code_and_paper)
{
    topk_mask_count(0, 4);
    topk_mask_count(1, 3);
}

/* ---- the learning-rate schedule (METHOD §8.7) ----------------------------------- */

/* the train program's lr: × lr_decay every lr_decay_epochs epochs of steps_per_epoch
 * steps (the code's StepLR stepped per epoch: ×0.8 every 100 epochs) */
TEST(step_lr_schedule)
{
    struct dc_config c;
    struct ir_graph *g;
    struct dc_prog p = {0};
    struct diag d = {0};
    config(&c, 0, 0);
    c.lr.start_val = 0.01;
    c.l3d.steps_per_epoch = 32;
    c.l3d.lr_decay = 0.8;
    c.l3d.lr_decay_epochs = 100;
    c.l3d.warm_start_epochs = 1;
    rng_state = 11;
    CHECK(build_model(&g, &d) == ST_OK);
    CHECK(dc_build_l3d_train(g, &c, &p, &d) == ST_OK);
    CHECK(p.lr.fn == DC_SCHED_STEP);
    static const int64_t step[6] = {0, 3199, 3200, 6399, 6400, 32000};
    for (int i = 0; i < 6; i++) {
        double want = 0.01 * pow(0.8, (double)(step[i] / 3200)); /* whole epochs / 100 */
        CHECK_NEAR(dc_schedule_value(&p.lr, step[i], c.steps), want, 1e-15);
    }
    CHECK_NEAR(dc_schedule_value(&p.lr, 3200, c.steps), 0.008, 1e-15);
    CHECK(p.topk.warm_steps == 64); /* epochs 0 and 1 dense */
    dc_prog_free(&p);
}

/* ---- V_out normalisation (METHOD §8.5) ------------------------------------------ */

/* v_k of tensor t (rank 2 in every mode) from pieces read by name through get():
 * Tucker with its core, CP with the fixed superdiagonal of ones */
static void v_of(const float *K, const float *const *F, const struct ir_tensor *t, int cp, int k,
                 double *out)
{
    int d = t->rank, ncore = 1 << d;
    for (int64_t e = 0; e < ir_numel(t); e++) {
        int64_t idx[4], rest = e;
        for (int m = d - 1; m >= 0; m--)
            idx[m] = rest % t->dims[m], rest /= t->dims[m];
        out[e] = 0;
        for (int c = 0; c < ncore; c++) {
            int diag = c == 0 || c == ncore - 1; /* (0, .., 0) or (1, .., 1) */
            double prod = cp ? diag : (double)K[k * ncore + c];
            for (int m = 0; m < d; m++) {
                int r = (c >> (d - 1 - m)) & 1;
                prod *= (double)F[m][(k * 2 + r) * t->dims[m] + idx[m]];
            }
            out[e] += prod;
        }
    }
}

/* The init program's V_out (and V_in, its copy) against values computed here from the
 * random pieces: c_k = √(Σ_j ‖v_kj‖_F) (code) or √(Σ_j ‖v_kj‖²) (paper), every trained
 * piece of tensor j divided by c_k^{1/n_pieces} + 1e-10. Afterwards Σ_j ‖v_kj‖ = √s_k
 * (code: s_k → √s_k) or ‖v_k‖ = 1 (paper). */
static void normalisation(int cp, int paper)
{
    struct rt_store s = {0};
    struct dc_config c;
    struct ir_graph *g;
    struct dc_prog p = {0};
    struct rt_prog *rp;
    struct diag d = {0};
    double met[4];
    config(&c, cp, 0);
    c.l3d.unit_norm = paper;
    rng_state = 11;
    CHECK(build_model(&g, &d) == ST_OK);
    static const char *const names[4] = {"W1", "b1", "W2", "b2"};
    struct ir_tensor wt[4];
    for (int j = 0; j < 4; j++)
        wt[j] = g->t[ir_tensor_find(g, names[j])];
    CHECK(dc_build_l3d_init(g, &c, &p, &d) == ST_OK);
    for (int i = 0; i < p.n_st; i++)
        if (p.st[i].next != IR_NONE)
            p.g->t[p.st[i].next].flags |= IR_T_KEEP;
    fill_store(&p, &s);
    CHECK(rt_run_once(&p, &cg_ref, &s, NULL, xdata, 7, 0, met, &rp, &d) == ST_OK);
    /* before (the store) and after (the next buffers) of every out piece */
    const float *K0[4] = {0}, *F0[4][2] = {{0}}, *K1[4] = {0}, *F1[4][2] = {{0}};
    const float *Kin[4] = {0}, *Fin[4][2] = {{0}};
    for (int i = 0; i < p.n_st; i++)
        for (int j = 0; j < 4; j++) {
            char nm[64];
            for (int r = 0; r < 2; r++) {
                const char *role = r ? "in" : "out";
                for (int m = -1; m < wt[j].rank; m++) {
                    if (m < 0)
                        snprintf(nm, sizeof nm, "l3d.%s.%s.core", names[j], role);
                    else
                        snprintf(nm, sizeof nm, "l3d.%s.%s.f%d", names[j], role, m);
                    if (strcmp(p.st[i].name, nm) != 0)
                        continue;
                    const float *now = rt_prog_buf(rp, p.st[i].next);
                    if (r) {
                        *(m < 0 ? &Kin[j] : &Fin[j][m]) = now;
                        continue;
                    }
                    *(m < 0 ? &K0[j] : &F0[j][m]) = rt_store_find(&s, nm)->data;
                    *(m < 0 ? &K1[j] : &F1[j][m]) = now;
                }
            }
        }
    double v[64], c_k[NV];
    for (int k = 0; k < NV; k++) {
        double tot = 0;
        for (int j = 0; j < 4; j++) {
            v_of(K0[j], F0[j], &wt[j], cp, k, v);
            double sq = 0;
            for (int64_t e = 0; e < ir_numel(&wt[j]); e++)
                sq += v[e] * v[e];
            tot += paper ? sq : sqrt(sq);
        }
        c_k[k] = sqrt(tot); /* code: √s_k; paper: ‖v_k‖ */
    }
    for (int j = 0; j < 4; j++) {
        int nmode = wt[j].rank, npieces = nmode + !cp, ncore = 1 << nmode;
        for (int k = 0; k < NV; k++) {
            double f = pow(c_k[k], 1.0 / npieces) + 1e-10;
            for (int e = 0; !cp && e < ncore; e++) {
                CHECK_NEAR(K1[j][k * ncore + e], (double)K0[j][k * ncore + e] / f, 1e-5);
                CHECK_NEAR(Kin[j][k * ncore + e], K1[j][k * ncore + e], 0);
            }
            for (int m = 0; m < nmode; m++)
                for (int64_t e = 0; e < 2 * wt[j].dims[m]; e++) {
                    int64_t at = k * 2 * wt[j].dims[m] + e;
                    CHECK_NEAR(F1[j][m][at], (double)F0[j][m][at] / f, 1e-5);
                    CHECK_NEAR(Fin[j][m][at], F1[j][m][at], 0);
                }
        }
    }
    for (int k = 0; k < NV; k++) { /* the resulting norms */
        double tot = 0;
        for (int j = 0; j < 4; j++) {
            v_of(K1[j], F1[j], &wt[j], cp, k, v);
            double sq = 0;
            for (int64_t e = 0; e < ir_numel(&wt[j]); e++)
                sq += v[e] * v[e];
            tot += paper ? sq : sqrt(sq);
        }
        double want = paper ? 1.0 : c_k[k]; /* code: Σ_j ‖v_kj‖ = √s_k = c_k */
        CHECK_NEAR(paper ? sqrt(tot) : tot, want, 1e-4 * want);
    }
    rt_prog_free(rp);
    dc_prog_free(&p);
    rt_store_free(&s);
}

TEST(vout_normalisation_code) { normalisation(0, 0); normalisation(1, 0); }
TEST(vout_normalisation_paper) { normalisation(0, 1); normalisation(1, 1); }

static const struct test_case tests[] = {
    T(topk_rank_counts),
    T(topk_mask_code_and_paper),
    T(step_lr_schedule),
    T(vout_normalisation_code),
    T(vout_normalisation_paper),
    T(projection_matches_materialized_tucker),
    T(projection_matches_materialized_cp),
    T(projection_matches_finite_differences),
    T(gemm_projection_matches_materialized),
    T(gemm_projection_matches_finite_differences),
    T(conv_projection_matches_materialized),
    T(conv_projection_matches_finite_differences),
};

TEST_MAIN(tests)
