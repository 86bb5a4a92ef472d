/* test_decompose.c — the site rewrite (passes/dc_sites.c, decompose.c) on every
 * site kind: Gemm (transB, alpha/beta, biases), MatMul on [B, T, d] activations,
 * the tied TMS weight of models/default.onnx (directly and through a Transpose),
 * a Gather embedding, Convs (pads, strides, dilations) and the left-operand forms
 * (W·x, Gemm transA). Targets and the program runner: decompose_fixture.h.
 *
 * Each target is compiled, its sites selected, and one masked forward built
 * with dc_forward_routed on random V, U:
 *   ones:   masks 1, δ 1            → must equal the target's own output (1e-5)
 *   random: masks, δ ~ U(0, 1)      → must equal the C oracle below
 *   routed: masks ~ U(0, 1), no δ, routing ρ ∈ {0, 1} per position → oracle
 * The oracle follows the definition (METHOD §1.2-§1.4): per position it
 * materialises W_eff = V'·diag(m)·U' + δ·(W − V'·U') (W itself where ρ = 0) in
 * double and runs the model's forward with it, V' = Uᵀ, U' = Vᵀ for a use that
 * reads the factor transposed. Tolerance: |got − want| ≤ 1e-5·(max|want| + |want|).
 * Also: mask dims per kind, grouped Convs refused, and dc_select_sites agrees
 * with pdc inspect's site list. */
#include "decompose_fixture.h"

#define TOL 1e-5
/* ---- the oracle ----------------------------------------------------------------------- */

static double *view(const float *w, int64_t din, int64_t dout, int tr)
{
    double *v = malloc((size_t)(din * dout) * sizeof *v);
    for (int64_t i = 0; i < din; i++)
        for (int64_t o = 0; o < dout; o++)
            v[i * dout + o] = tr ? w[o * din + i] : w[i * dout + o];
    return v;
}

/* W_eff of site i at position p (METHOD §1.2): Wv where ρ = 0, else
 * V'·diag(m)·U' + δ·(Wv − V'·U'); `tr`: the site reads factor f transposed */
static void weff(const struct run *r, int i, int f, int tr, const double *Wv, int64_t p,
                 double *out)
{
    int64_t din = r->sites[i].d_in, dout = r->sites[i].d_out, C = r->sites[i].C;
    const float *V = r->V[f], *U = r->U[f], *m = r->m[i] + p * C;
    double dl = r->dl[i] ? (double)r->dl[i][p] : 0.0, rho = r->rho[i] ? (double)r->rho[i][p] : 1.0;
    for (int64_t a = 0; a < din; a++)
        for (int64_t o = 0; o < dout; o++) {
            double vu = 0, vmu = 0;
            for (int64_t c = 0; c < C; c++) {
                double v = tr ? U[c * din + a] : V[a * C + c];
                double u = tr ? V[o * C + c] : U[c * dout + o];
                vu += v * u;
                vmu += v * (double)m[c] * u;
            }
            double w = Wv[a * dout + o];
            out[a * dout + o] = rho == 0.0 ? w : vmu + dl * (w - vu);
        }
}

/* y[o] = Σ_a x[a]·W[a, o] (+ b[o]) */
static void row_mul(const double *x, const double *W, int64_t din, int64_t dout, const float *b,
                    double *y)
{
    for (int64_t o = 0; o < dout; o++) {
        double s = b ? (double)b[o] : 0.0;
        for (int64_t a = 0; a < din; a++)
            s += x[a] * W[a * dout + o];
        y[o] = s;
    }
}

static double relu(double v) { return v > 0 ? v : 0; }

static void check_vs(const struct run *r, const double *want, const char *what)
{
    float *w = malloc((size_t)r->ny * sizeof *w);
    double mx = 0;
    for (int64_t i = 0; i < r->ny; i++) {
        w[i] = (float)want[i];
        mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
    }
    if (!check_tensor_(r->y, w, r->ny, TOL * mx, TOL, what, __FILE__, __LINE__))
        fprintf(stderr, "  (%s)\n", what);
    free(w);
}

static void check_ones(const struct run *r)
{
    double mx = 0;
    for (int64_t i = 0; i < r->ny; i++)
        mx = fabs(r->y0[i]) > mx ? fabs(r->y0[i]) : mx;
    CHECK(mx > 0);
    CHECK_TENSOR(r->y, r->y0, r->ny, TOL * mx, TOL);
}

/* what a target's sites must look like */
struct want_site {
    const char *name;
    enum pass_site_kind kind;
    int64_t din, dout;
    int transposed;
};

static void check_sites(const struct run *r, const struct want_site *w, int n)
{
    CHECK_EQ(r->ns, n);
    for (int i = 0; i < n && i < r->ns; i++) {
        CHECK(strcmp(r->sites[i].name, w[i].name) == 0);
        CHECK_EQ(r->sites[i].kind, w[i].kind);
        CHECK_EQ(r->sites[i].d_in, w[i].din);
        CHECK_EQ(r->sites[i].d_out, w[i].dout);
        CHECK_EQ(r->sites[i].transposed, w[i].transposed);
        CHECK_EQ(r->sites[i].C, w[i].din > w[i].dout ? w[i].din : w[i].dout);
    }
}

/* ---- per-target oracles (the forward, position by position) ---------------------------- */

static void oracle_gemm(const struct run *r, double *y)
{
    double *W1 = view(weight(r, "fc1.weight"), 4, 5, 1);
    double *W2 = view(weight(r, "fc2.weight"), 5, 3, 1);
    const float *b1 = weight(r, "fc1.bias"), *b2 = weight(r, "fc2.bias"), *x = r->x;
    double e1[20], e2[15], xr[4], h[5], o[3];
    for (int64_t n = 0; n < 3; n++) {
        weff(r, 0, 0, 0, W1, n, e1);
        weff(r, 1, 1, 0, W2, n, e2);
        for (int a = 0; a < 4; a++)
            xr[a] = x[n * 4 + a];
        row_mul(xr, e1, 4, 5, b1, h);
        for (int a = 0; a < 5; a++)
            h[a] = relu(h[a]);
        row_mul(h, e2, 5, 3, NULL, o);
        for (int k = 0; k < 3; k++)
            y[n * 3 + k] = 0.5 * o[k] + 2.0 * (double)b2[k];
    }
    free(W1);
    free(W2);
}

static void oracle_batched(const struct run *r, double *y)
{
    double *W1 = view(weight(r, "mlp_in"), 4, 6, 0), *W2 = view(weight(r, "mlp_out"), 6, 5, 0);
    const float *bias = weight(r, "bias"), *x = r->x;
    double e1[24], e2[30], xr[4], h[6];
    for (int64_t p = 0; p < 6; p++) { /* positions (b, t) flattened */
        weff(r, 0, 0, 0, W1, p, e1);
        weff(r, 1, 1, 0, W2, p, e2);
        for (int a = 0; a < 4; a++)
            xr[a] = x[p * 4 + a];
        row_mul(xr, e1, 4, 6, NULL, h);
        for (int a = 0; a < 6; a++)
            h[a] = relu(h[a]);
        row_mul(h, e2, 6, 5, bias, y + p * 5);
    }
    free(W1);
    free(W2);
}

/* attention mixes positions: q, k, v of every position first, then softmax per row */
static void oracle_qkv(const struct run *r, double *y)
{
    double *Wq = view(weight(r, "attn.qkv"), 4, 12, 0), *Wo = view(weight(r, "attn.o"), 4, 4, 0);
    const float *x = r->x;
    double e1[48], e2[16], xr[4], qkv[6][12], h[4];
    for (int64_t p = 0; p < 6; p++) {
        weff(r, 0, 0, 0, Wq, p, e1);
        for (int a = 0; a < 4; a++)
            xr[a] = x[p * 4 + a];
        row_mul(xr, e1, 4, 12, NULL, qkv[p]);
    }
    for (int64_t p = 0; p < 6; p++) {
        int64_t b0 = p / 3 * 3;
        double sc[3], mx = -1e300, z = 0;
        for (int u = 0; u < 3; u++) {
            sc[u] = 0;
            for (int a = 0; a < 4; a++)
                sc[u] += 0.5 * qkv[p][a] * qkv[b0 + u][4 + a];
            mx = fmax(mx, sc[u]);
        }
        for (int u = 0; u < 3; u++)
            z += (sc[u] = exp(sc[u] - mx));
        for (int a = 0; a < 4; a++) {
            h[a] = 0;
            for (int u = 0; u < 3; u++)
                h[a] += sc[u] / z * qkv[b0 + u][8 + a];
        }
        weff(r, 1, 1, 0, Wo, p, e2);
        row_mul(h, e2, 4, 4, NULL, y + p * 4);
    }
    free(Wq);
    free(Wo);
}

static void oracle_tms(const struct run *r, double *y)
{
    double *W = view(weight(r, "W"), 5, 2, 0), *Wt = view(weight(r, "W"), 2, 5, 1);
    const float *b = weight(r, "b"), *x = r->x;
    double e1[10], e2[10], xr[5], h[2];
    for (int64_t n = 0; n < 4; n++) {
        weff(r, 0, 0, 0, W, n, e1);
        weff(r, 1, 0, 1, Wt, n, e2); /* tied: V' = Uᵀ, U' = Vᵀ */
        for (int a = 0; a < 5; a++)
            xr[a] = x[n * 5 + a];
        row_mul(xr, e1, 5, 2, NULL, h);
        row_mul(h, e2, 2, 5, b, y + n * 5);
        for (int a = 0; a < 5; a++)
            y[n * 5 + a] = relu(y[n * 5 + a]);
    }
    free(W);
    free(Wt);
}

static void oracle_embed(const struct run *r, double *y)
{
    double *E = view(weight(r, "wte"), 7, 4, 0), *P = view(weight(r, "proj"), 4, 5, 0);
    const int64_t *tok = r->x;
    double e1[28], e2[20], onehot[7], h[4];
    for (int64_t p = 0; p < 6; p++) { /* a lookup is a one-hot row times W_eff */
        weff(r, 0, 0, 0, E, p, e1);
        weff(r, 1, 1, 0, P, p, e2);
        for (int v = 0; v < 7; v++)
            onehot[v] = v == tok[p];
        row_mul(onehot, e1, 7, 4, NULL, h);
        row_mul(h, e2, 4, 5, NULL, y + p * 5);
    }
    free(E);
    free(P);
}

/* a Conv site position by position: y[n, o, oh, ow] = patch·W_eff(n, oh, ow) + b */
static void conv_site(const struct run *r, int i, const struct conv_geo *q, const char *w,
                      const float *b, const double *x, double *y)
{
    int64_t din = q->Ci * q->KH * q->KW;
    double *Wv = view(weight(r, w), din, q->Co, 1);
    double *e = malloc((size_t)(din * q->Co) * sizeof *e), *pt = malloc((size_t)din * sizeof *pt);
    double o[64];
    for (int64_t n = 0; n < q->N; n++)
        for (int64_t oh = 0; oh < q->Ho; oh++)
            for (int64_t ow = 0; ow < q->Wo; ow++) {
                weff(r, i, i, 0, Wv, (n * q->Ho + oh) * q->Wo + ow, e);
                patch(q, x, n, oh, ow, pt);
                row_mul(pt, e, din, q->Co, b, o);
                for (int64_t c = 0; c < q->Co; c++)
                    y[((n * q->Co + c) * q->Ho + oh) * q->Wo + ow] = o[c];
            }
    free(Wv);
    free(e);
    free(pt);
}

/* conv2 of the Conv target */
static const struct conv_geo CONV2 = {2, 4, 4, 3, 5, 2, 2, 0, 0, 1, 1, 2, 1, 2, 2};

static void oracle_conv(const struct run *r, double *y)
{
    const float *xf = r->x;
    double x[2 * 3 * 7 * 6], h[2 * 4 * 4 * 3];
    for (int i = 0; i < 2 * 3 * 7 * 6; i++)
        x[i] = xf[i];
    conv_site(r, 0, &CONV1, "conv1.weight", weight(r, "conv1.bias"), x, h);
    for (int i = 0; i < 2 * 4 * 4 * 3; i++)
        h[i] = relu(h[i]);
    conv_site(r, 1, &CONV2, "conv2.weight", weight(r, "conv2.bias"), h, y);
}

static void oracle_left(const struct run *r, double *y)
{
    double *W1 = view(weight(r, "W1"), 4, 5, 1), *W2 = view(weight(r, "W2"), 5, 6, 0),
           *W3 = view(weight(r, "W3"), 6, 2, 1);
    const float *x = r->x;
    double e1[20], e2[30], e3[12], xc[4], h[5], s[6], o[2];
    for (int64_t n = 0; n < 3; n++) { /* position n: column n of x */
        weff(r, 0, 0, 0, W1, n, e1);
        weff(r, 1, 1, 0, W2, n, e2);
        weff(r, 2, 2, 0, W3, n, e3);
        for (int a = 0; a < 4; a++)
            xc[a] = x[a * 3 + n];
        row_mul(xc, e1, 4, 5, NULL, h);
        for (int a = 0; a < 5; a++)
            h[a] = relu(h[a]);
        row_mul(h, e2, 5, 6, NULL, s);
        row_mul(s, e3, 6, 2, NULL, o);
        y[0 * 3 + n] = o[0];
        y[1 * 3 + n] = o[1];
    }
    free(W1);
    free(W2);
    free(W3);
}

/* ---- the cases ---------------------------------------------------------------------- */

typedef void (*oracle_fn)(const struct run *r, double *y);

/* all three modes on one target: sites as expected, ones = target, random/routed = oracle */
static void masked_case(const char *seed, build_fn bf, oracle_fn of, const struct want_site *w,
                        int nw)
{
    static const enum mode modes[3] = {M_ONES, M_RANDOM, M_ROUTED};
    static const char *names[3] = {"ones", "random", "routed"};
    rng_state = (uint64_t)strlen(seed) * 0x51ED27ull + (uint64_t)seed[0];
    for (int k = 0; k < 3; k++) {
        struct run r;
        struct diag d = {0};
        int st = run_case(bf, modes[k], &r, &d);
        if (st) {
            fprintf(stderr, "  %s/%s: %s\n", seed, names[k], d.msg);
            CHECK(st == 0);
            run_free(&r);
            continue;
        }
        check_sites(&r, w, nw);
        if (modes[k] == M_ONES)
            check_ones(&r);
        double *want = malloc((size_t)r.ny * sizeof *want);
        of(&r, want);
        check_vs(&r, want, names[k]);
        free(want);
        run_free(&r);
    }
}

TEST(gemm_transb_bias)
{
    static const struct want_site w[] = {{"fc1.weight", PASS_SITE_GEMM, 4, 5, 0},
                                         {"fc2.weight", PASS_SITE_GEMM, 5, 3, 0}};
    masked_case("gemm", build_gemm, oracle_gemm, w, 2);
}

TEST(matmul_batched_positions)
{
    static const struct want_site w[] = {{"mlp_in", PASS_SITE_MATMUL, 4, 6, 0},
                                         {"mlp_out", PASS_SITE_MATMUL, 6, 5, 0}};
    masked_case("batched", build_batched, oracle_batched, w, 2);
}

TEST(fused_qkv_attention)
{
    static const struct want_site w[] = {{"attn.qkv", PASS_SITE_MATMUL, 4, 12, 0},
                                         {"attn.o", PASS_SITE_MATMUL, 4, 4, 0}};
    masked_case("qkv", build_qkv, oracle_qkv, w, 2);
}

TEST(tms_tied_transpose)
{
    static const struct want_site w[] = {{"W", PASS_SITE_MATMUL, 5, 2, 0},
                                         {"W@1", PASS_SITE_MATMUL, 2, 5, 1}};
    masked_case("tms", build_tms, oracle_tms, w, 2);
}

TEST(gather_embedding)
{
    static const struct want_site w[] = {{"wte", PASS_SITE_GATHER, 7, 4, 0},
                                         {"proj", PASS_SITE_MATMUL, 4, 5, 0}};
    masked_case("embed", build_embed, oracle_embed, w, 2);
}

TEST(conv_pads_stride)
{
    static const struct want_site w[] = {{"conv1.weight", PASS_SITE_CONV, 27, 4, 0},
                                         {"conv2.weight", PASS_SITE_CONV, 16, 5, 0}};
    masked_case("conv", build_conv, oracle_conv, w, 2);
}

TEST(left_weight_and_transa)
{
    static const struct want_site w[] = {{"W1", PASS_SITE_MATMUL_LEFT, 4, 5, 0},
                                         {"W2", PASS_SITE_GEMM, 5, 6, 0},
                                         {"W3", PASS_SITE_MATMUL_LEFT, 6, 2, 0}};
    masked_case("left", build_left, oracle_left, w, 3);
}

/* mask dims: positions then k, for every kind (the indices' dims for a Gather,
 * [N, spatial out..] for a Conv, x's columns for W·x) */
TEST(mask_dims)
{
    static const struct {
        build_fn bf;
        int site, rank;
        int64_t dims[4];
    } want[] = {
        {build_batched, 0, 3, {2, 3, 9}}, {build_embed, 0, 3, {2, 3, 9}},
        {build_conv, 0, 4, {2, 4, 3, 9}}, {build_conv, 1, 4, {2, 2, 2, 9}},
        {build_left, 0, 2, {3, 9}},       {build_left, 1, 2, {3, 9}},
        {build_gemm, 1, 2, {3, 9}},
    };
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        struct ir_graph *g;
        struct diag d = {0};
        struct dc_config c;
        dc_config_defaults(&c, "spd");
        select_all(&c);
        struct dc_site *s = NULL;
        struct dc_factor *f = NULL;
        struct dc_prog p = {0};
        int ns, nf, r;
        int64_t dims[IR_MAX_RANK];
        struct dc_ctx cx;
        int st = want[k].bf(&g, &d);
        CHECK(st == 0 && dc_select_sites(g, &c, &s, &ns, &f, &nf, &d) == 0);
        CHECK(dc_ctx_init(&cx, g, &c, s, ns, f, nf, &p, "t", &d) == 0);
        dc_mask_dims(&cx, want[k].site, 9, &r, dims);
        CHECK_EQ(r, want[k].rank);
        for (int j = 0; j < r && j < 4; j++)
            CHECK_EQ(dims[j], want[k].dims[j]);
        dc_ctx_fini(&cx);
        dc_prog_free(&p);
        free(s);
        free(f);
    }
}

/* ---- site selection -------------------------------------------------------------------- */

static int build_conv_grouped(struct ir_graph **out, struct diag *d)
{
    return build_conv_g(out, d, 2);
}

TEST(conv_group_refused)
{
    struct ir_graph *g;
    struct diag d = {0};
    struct dc_config c;
    struct dc_site *s = NULL;
    struct dc_factor *f = NULL;
    int ns = 0, nf = 0;
    dc_config_defaults(&c, "spd");
    select_all(&c);
    CHECK(build_conv_grouped(&g, &d) == 0);
    CHECK_EQ(dc_select_sites(g, &c, &s, &ns, &f, &nf, &d), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d.msg, "'conv2.weight'");
    CHECK_STR_CONTAINS(d.msg, "group=2");
    /* a pattern that leaves it out selects the rest */
    c.n_sites = 1;
    snprintf(c.sites[0].pattern, sizeof c.sites[0].pattern, "conv1.*");
    d = (struct diag){0};
    CHECK_EQ(dc_select_sites(g, &c, &s, &ns, &f, &nf, &d), ST_OK);
    CHECK_EQ(ns, 1);
    free(s);
    free(f);
    ir_graph_free(g);
}

/* dc_select_sites with "*" decomposes exactly what pdc inspect lists; with no patterns,
 * only the MatMul/Gemm weights */
TEST(sites_match_inspect)
{
    static const build_fn bfs[] = {build_gemm, build_batched, build_tms, build_embed, build_conv,
                                   build_left};
    for (size_t k = 0; k < sizeof bfs / sizeof *bfs; k++) {
        struct ir_graph *g;
        struct diag d = {0};
        struct dc_config c;
        struct dc_site *s = NULL;
        struct dc_factor *f = NULL;
        struct pass_site *ps = NULL;
        int ns = 0, nf = 0, nps = 0, uses = 0;
        dc_config_defaults(&c, "spd");
        CHECK(bfs[k](&g, &d) == 0);
        /* no patterns: the convolution target has no MatMul/Gemm weight at all */
        int st0 = dc_select_sites(g, &c, &s, &ns, &f, &nf, &d);
        CHECK(st0 == 0 || (bfs[k] == build_conv && strstr(d.msg, "no decomposable site")));
        for (int j = 0; !st0 && j < ns; j++)
            CHECK(s[j].kind != PASS_SITE_GATHER && s[j].kind != PASS_SITE_CONV);
        free(s);
        free(f);
        s = NULL;
        f = NULL;
        select_all(&c);
        CHECK(dc_select_sites(g, &c, &s, &ns, &f, &nf, &d) == 0);
        CHECK(pass_find_sites(g, &ps, &nps) == 0);
        CHECK_EQ(nps, nf);
        for (int i = 0; i < nps; i++) {
            int first = -1, n = 0;
            for (int j = 0; j < ns; j++)
                if (s[j].weight == ps[i].weight) {
                    first = first < 0 ? j : first;
                    n++;
                }
            CHECK_EQ(n, ps[i].n_uses);
            uses += n;
            if (first >= 0) {
                CHECK_EQ(s[first].kind, ps[i].kind);
                CHECK_EQ(s[first].d_in, ps[i].d_in);
                CHECK_EQ(s[first].d_out, ps[i].d_out);
            }
        }
        CHECK_EQ(uses, ns);
        free(ps);
        free(s);
        free(f);
        ir_graph_free(g);
    }
}

static const struct test_case tests[] = {
    T(gemm_transb_bias), T(matmul_batched_positions), T(tms_tied_transpose),
    T(fused_qkv_attention),
    T(gather_embedding), T(conv_pads_stride),         T(left_weight_and_transa),
    T(mask_dims),        T(conv_group_refused),       T(sites_match_inspect),
};

TEST_MAIN(tests)
