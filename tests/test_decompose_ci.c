/* test_decompose_ci.c — CI functions on every site kind (passes/ci_fn.c): one row
 * per position ([B, T, d] flattened; a Conv's (n, h, w); a Gather's tokens), z
 * shaped [pos.., C]; the mlp kind's values against the per-component scalar
 * MLPs on h computed here from the definition (x·V; V[token]; patch·V; the
 * tied transposed use's x·Uᵀ); shared_mlp's values on [B, T, d]; kinds other
 * than mlp refused for Gather and Conv sites, naming the site. */
#include "decompose_fixture.h"

static double gelu(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

/* z of site i (hidden 3) against the per-component scalar MLPs on h_ref [npos, C] */
static void check_ci_mlp(const struct run *r, int i, const double *h, int64_t npos)
{
    const char *nm = r->sites[i].name;
    char n0[300], n1[300], n2[300], n3[300];
    snprintf(n0, sizeof n0, "ci.%s.W0", nm);
    snprintf(n1, sizeof n1, "ci.%s.b0", nm);
    snprintf(n2, sizeof n2, "ci.%s.W1", nm);
    snprintf(n3, sizeof n3, "ci.%s.b1", nm);
    const float *W0 = state(r, n0), *b0 = state(r, n1), *W1 = state(r, n2), *b1 = state(r, n3);
    CHECK(W0 && b0 && W1 && b1);
    if (!W0 || !b0 || !W1 || !b1)
        return;
    int64_t C = r->sites[i].C;
    float *want = malloc((size_t)(npos * C) * sizeof *want);
    for (int64_t p = 0; p < npos; p++)
        for (int64_t c = 0; c < C; c++) {
            double z = (double)b1[c];
            for (int j = 0; j < 3; j++)
                z += gelu(h[p * C + c] * (double)W0[c * 3 + j] + (double)b0[c * 3 + j]) *
                     (double)W1[c * 3 + j];
            want[p * C + c] = (float)z;
        }
    const float *got = rt_prog_buf(r->rp, r->prog.metric[i].t);
    CHECK_EQ(ir_numel(&r->prog.g->t[r->prog.metric[i].t]), npos * C);
    CHECK_TENSOR(got, want, npos * C, 1e-5, 1e-5);
    free(want);
}

/* z [pos.., C] for site i */
static void check_z_shape(const struct run *r, int i, int rank, const int64_t *pos)
{
    const struct ir_tensor *z = &r->prog.g->t[r->prog.metric[i].t];
    CHECK_EQ(z->rank, rank + 1);
    for (int k = 0; k < rank && k < z->rank; k++)
        CHECK_EQ(z->dims[k], pos[k]);
    CHECK_EQ(z->dims[z->rank - 1], r->sites[i].C);
}

/* every CI kind on [B, T, d] activations: z [B, T, C]; mlp and shared_mlp values */
TEST(ci_batched_positions)
{
    static const enum dc_ci_fn kinds[4] = {DC_CI_MLP, DC_CI_VECTOR_MLP, DC_CI_SHARED_MLP,
                                           DC_CI_GLOBAL_SHARED_MLP};
    static const int64_t pos[2] = {2, 3};
    rng_state = 77;
    for (int k = 0; k < 4; k++) {
        struct what w = {M_ONES, 1, kinds[k]};
        struct run r;
        struct diag d = {0};
        int st = run_what(build_batched, &w, &r, &d);
        if (st)
            fprintf(stderr, "  kind %d: %s\n", (int)kinds[k], d.msg);
        CHECK(st == 0);
        for (int i = 0; !st && i < 2; i++)
            check_z_shape(&r, i, 2, pos);
        if (!st && kinds[k] == DC_CI_MLP) { /* h = x·V per position */
            const float *x = r.x, *V = r.V[0];
            double h[6 * 6];
            for (int p = 0; p < 6; p++)
                for (int c = 0; c < 6; c++) {
                    h[p * 6 + c] = 0;
                    for (int a = 0; a < 4; a++)
                        h[p * 6 + c] += (double)x[p * 4 + a] * (double)V[a * 6 + c];
                }
            check_ci_mlp(&r, 0, h, 6);
        }
        if (!st && kinds[k] == DC_CI_SHARED_MLP) { /* x [6, 4] → 3 → C = 6 */
            const float *x = r.x, *W0 = state(&r, "ci.mlp_in.W0"), *b0 = state(&r, "ci.mlp_in.b0"),
                        *W1 = state(&r, "ci.mlp_in.W1"), *b1 = state(&r, "ci.mlp_in.b1");
            float want[36];
            for (int p = 0; p < 6; p++)
                for (int c = 0; c < 6; c++) {
                    double z = b1[c];
                    for (int j = 0; j < 3; j++) {
                        double a = b0[j];
                        for (int q = 0; q < 4; q++)
                            a += (double)x[p * 4 + q] * (double)W0[q * 3 + j];
                        z += gelu(a) * (double)W1[j * 6 + c];
                    }
                    want[p * 6 + c] = (float)z;
                }
            const float *got = rt_prog_buf(r.rp, r.prog.metric[0].t);
            CHECK_TENSOR(got, want, 36, 1e-5, 1e-5);
        }
        run_free(&r);
    }
}

/* the tied second use reads h = x₂·Uᵀ (V' = Uᵀ) */
TEST(ci_tied_transposed)
{
    struct what w = {M_ONES, 1, DC_CI_MLP};
    struct run r;
    struct diag d = {0};
    rng_state = 78;
    int st = run_what(build_tms, &w, &r, &d);
    CHECK(st == 0);
    if (!st) {
        const float *x = r.x, *W = weight(&r, "W"), *U = r.U[0];
        double hid[4 * 2], h[4 * 5];
        for (int n = 0; n < 4; n++)
            for (int a = 0; a < 2; a++) {
                hid[n * 2 + a] = 0;
                for (int q = 0; q < 5; q++)
                    hid[n * 2 + a] += (double)x[n * 5 + q] * (double)W[q * 2 + a];
            }
        for (int n = 0; n < 4; n++)
            for (int c = 0; c < 5; c++) {
                h[n * 5 + c] = 0;
                for (int a = 0; a < 2; a++)
                    h[n * 5 + c] += hid[n * 2 + a] * (double)U[c * 2 + a];
            }
        check_ci_mlp(&r, 1, h, 4);
    }
    run_free(&r);
}

/* embedding CI: h = V[token], z [B, T, C] */
TEST(ci_gather_mlp)
{
    struct what w = {M_ONES, 1, DC_CI_MLP};
    struct run r;
    struct diag d = {0};
    static const int64_t pos[2] = {2, 3};
    rng_state = 79;
    int st = run_what(build_embed, &w, &r, &d);
    CHECK(st == 0);
    if (!st) {
        const int64_t *tok = r.x;
        double h[6 * 7];
        for (int p = 0; p < 6; p++)
            for (int c = 0; c < 7; c++)
                h[p * 7 + c] = r.V[0][tok[p] * 7 + c];
        check_z_shape(&r, 0, 2, pos);
        check_ci_mlp(&r, 0, h, 6);
    }
    run_free(&r);
}

/* Conv CI: one row per (n, oh, ow): h = patch·V, z [N, H_out, W_out, C] */
TEST(ci_conv_mlp)
{
    struct what w = {M_ONES, 1, DC_CI_MLP};
    struct run r;
    struct diag d = {0};
    static const int64_t pos[3] = {2, 4, 3};
    rng_state = 80;
    int st = run_what(build_conv, &w, &r, &d);
    CHECK(st == 0);
    if (!st) {
        const struct conv_geo *q = &CONV1;
        const float *xf = r.x;
        double x[2 * 3 * 7 * 6], pt[27], *h = malloc(24 * 27 * sizeof *h);
        for (int i = 0; i < 2 * 3 * 7 * 6; i++)
            x[i] = xf[i];
        for (int64_t n = 0; n < 2; n++)
            for (int64_t oh = 0; oh < 4; oh++)
                for (int64_t ow = 0; ow < 3; ow++) {
                    int64_t p = (n * 4 + oh) * 3 + ow;
                    patch(q, x, n, oh, ow, pt);
                    for (int c = 0; c < 27; c++) {
                        h[p * 27 + c] = 0;
                        for (int j = 0; j < 27; j++)
                            h[p * 27 + c] += pt[j] * (double)r.V[0][j * 27 + c];
                    }
                }
        check_z_shape(&r, 0, 3, pos);
        check_ci_mlp(&r, 0, h, 24);
        free(h);
    }
    run_free(&r);
}

/* CI kinds that need input rows are refused for Gather / Conv sites, naming the site */
TEST(ci_kind_refused)
{
    static const struct {
        build_fn bf;
        enum dc_ci_fn kind;
        const char *site;
    } cases[] = {
        {build_embed, DC_CI_VECTOR_MLP, "'wte' (Gather)"},
        {build_embed, DC_CI_SHARED_MLP, "'wte' (Gather)"},
        {build_embed, DC_CI_GLOBAL_SHARED_MLP, "'wte' (Gather)"},
        {build_conv, DC_CI_VECTOR_MLP, "'conv1.weight' (Conv)"},
        {build_conv, DC_CI_GLOBAL_SHARED_MLP, "'conv1.weight' (Conv)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        struct what w = {M_ONES, 1, cases[k].kind};
        struct run r;
        struct diag d = {0};
        int st = run_what(cases[k].bf, &w, &r, &d);
        CHECK_EQ(st, ST_ERR_UNSUPPORTED);
        CHECK_STR_CONTAINS(d.msg, cases[k].site);
        CHECK_STR_CONTAINS(d.msg, "only mlp");
        run_free(&r);
    }
}

static const struct test_case tests[] = {
    T(ci_batched_positions), T(ci_tied_transposed), T(ci_gather_mlp),
    T(ci_conv_mlp),          T(ci_kind_refused),
};

TEST_MAIN(tests)
