/* test_toy_metrics.c — MMCS/ML2R, target-CI pattern errors (the reference's
 * spd:tests/test_target_ci_solutions.py vectors, METHOD §7.3) and the eval counts. */
#include <stdint.h>

#include "harness.h"
#include "toy_metrics.h"

/* ---- helpers ---------------------------------------------------------------------- */

static uint64_t rng_state_ = 0x9e3779b97f4a7c15ull;
static float frand(void) /* [0, 1), deterministic */
{
    rng_state_ = rng_state_ * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(rng_state_ >> 40) * (1.0f / 16777216.0f);
}

/* TMS 5-2 target in pdc layout: Wr [5 features, 2 hidden], row j at angle 2πj/5
 * with norm 0.5 + 0.25 j (so norms differ and ratios are not trivially 1). */
enum { NF = 5, NH = 2 };
static void tms_target(float Wr[NF * NH])
{
    for (int j = 0; j < NF; j++) {
        double th = 2 * M_PI * j / NF, s = 0.5 + 0.25 * j;
        Wr[j * NH + 0] = (float)(s * cos(th));
        Wr[j * NH + 1] = (float)(s * sin(th));
    }
}

/* Exact decomposition with C components (C ≥ NF; extra ones zero): V[j,c] = a_c δ_jc,
 * U[c,:] = scale · R(phi_c) Wr[c,:] / a_c, with a_c = 1 + c (any non-zero scale). */
static void tms_decomp(const float *Wr, int C, double scale, const double *phi, float *V,
                       float *U)
{
    memset(V, 0, sizeof(float) * NF * (size_t)C);
    memset(U, 0, sizeof(float) * NH * (size_t)C);
    for (int c = 0; c < NF; c++) {
        double a = 1.0 + c, p = phi ? phi[c] : 0.0;
        double x = Wr[c * NH], y = Wr[c * NH + 1];
        V[c * C + c] = (float)a;
        U[c * NH + 0] = (float)(scale * (cos(p) * x - sin(p) * y) / a);
        U[c * NH + 1] = (float)(scale * (sin(p) * x + cos(p) * y) / a);
    }
}

/* ---- MMCS / ML2R -------------------------------------------------------------------- */

TEST(mmcs_exact_decomposition)
{
    float Wr[NF * NH], V[NF * 7], U[7 * NH];
    tms_target(Wr);
    for (int C = NF; C <= 7; C += 2) { /* C = 7: two dead components */
        double mmcs, ml2r, sd;
        tms_decomp(Wr, C, 1.0, NULL, V, U);
        CHECK_EQ(tm_mmcs_ml2r(Wr, V, U, NF, NH, C, &mmcs, &ml2r, &sd), 0);
        CHECK_NEAR(mmcs, 1.0, 1e-6);
        CHECK_NEAR(ml2r, 1.0, 1e-6);
        CHECK_NEAR(sd, 0.0, 1e-6);
    }
}

TEST(ml2r_half_norm)
{
    float Wr[NF * NH], V[NF * NF], U[NF * NH];
    double mmcs, ml2r;
    tms_target(Wr);
    tms_decomp(Wr, NF, 0.5, NULL, V, U);
    CHECK_EQ(tm_mmcs_ml2r(Wr, V, U, NF, NH, NF, &mmcs, &ml2r, NULL), 0);
    CHECK_NEAR(mmcs, 1.0, 1e-6);
    CHECK_NEAR(ml2r, 0.5, 1e-6);
}

TEST(mmcs_rotated)
{
    float Wr[NF * NH], V[NF * NF], U[NF * NH];
    double phi[NF] = {0.1, 0.2, 0.3, 0.4, 0.5}, mmcs, ml2r, sd;
    tms_target(Wr);
    tms_decomp(Wr, NF, 1.0, phi, V, U);
    CHECK_EQ(tm_mmcs_ml2r(Wr, V, U, NF, NH, NF, &mmcs, &ml2r, &sd), 0);
    double want = 0, var = 0;
    for (int c = 0; c < NF; c++)
        want += cos(phi[c]) / NF;
    for (int c = 0; c < NF; c++)
        var += (cos(phi[c]) - want) * (cos(phi[c]) - want) / (NF - 1); /* sample std */
    CHECK_NEAR(mmcs, want, 1e-6);
    CHECK_NEAR(ml2r, 1.0, 1e-6); /* rotation keeps the norm */
    CHECK_NEAR(sd, sqrt(var), 1e-6);
}

/* The cosine is signed: a piece pointing away loses to a weaker aligned piece. */
TEST(mmcs_signed)
{
    float Wr[2] = {3, 4};                          /* one feature, ‖W‖ = 5 */
    float V[2] = {-1, 0.5f};                       /* [1 feature, C = 2] */
    float U[4] = {3, 4, 0, 2};                     /* c0 = −W (via V), c1 along y */
    double mmcs, ml2r;
    CHECK_EQ(tm_mmcs_ml2r(Wr, V, U, 1, 2, 2, &mmcs, &ml2r, NULL), 0);
    CHECK_NEAR(mmcs, 0.8, 1e-7);                   /* cos((0,1), (3,4)/5) */
    CHECK_NEAR(ml2r, 0.5 * 2 / 5.0, 1e-7);         /* ‖0.5·(0,2)‖ / 5 */
    float V1[1] = {-2}, U1[2] = {3, 4};
    CHECK_EQ(tm_mmcs_ml2r(Wr, V1, U1, 1, 2, 1, &mmcs, &ml2r, NULL), 0);
    CHECK_NEAR(mmcs, -1.0, 1e-7);
    CHECK_NEAR(ml2r, 2.0, 1e-7);
}

TEST(mmcs_skips_zero_features)
{
    float Wr[NF * NH], V[NF * NF], U[NF * NH];
    double mmcs, ml2r, sd;
    tms_target(Wr);
    tms_decomp(Wr, NF, 0.5, NULL, V, U);
    Wr[2 * NH] = Wr[2 * NH + 1] = 0; /* feature 2 has no direction */
    CHECK_EQ(tm_mmcs_ml2r(Wr, V, U, NF, NH, NF, &mmcs, &ml2r, &sd), 1);
    CHECK_NEAR(mmcs, 1.0, 1e-6);
    CHECK_NEAR(ml2r, 0.5, 1e-6);
    memset(Wr, 0, sizeof Wr);
    CHECK_EQ(tm_mmcs_ml2r(Wr, V, U, NF, NH, NF, &mmcs, &ml2r, &sd), NF);
    CHECK(isnan(mmcs) && isnan(ml2r) && isnan(sd));
    CHECK_EQ(tm_mmcs_ml2r(NULL, V, U, NF, NH, NF, &mmcs, &ml2r, &sd), -1);
}

/* Cross-check the layout against the definition: materialise P_{c,:,j} = U[c,:]·V[j,c]
 * and W[:,j] = Wr[j,:] for random factors, compute the metrics the long way. */
TEST(mmcs_matches_definition)
{
    enum { DI = 7, DO = 4, CC = 6 };
    float Wr[DI * DO], V[DI * CC], U[CC * DO];
    for (int i = 0; i < DI * DO; i++)
        Wr[i] = frand() - 0.5f;
    for (int i = 0; i < DI * CC; i++)
        V[i] = frand() - 0.5f;
    for (int i = 0; i < CC * DO; i++)
        U[i] = frand() - 0.5f;
    double sum_cos = 0, sum_ratio = 0;
    for (int j = 0; j < DI; j++) {
        double best = -2, ratio = 0, wn = 0;
        for (int h = 0; h < DO; h++)
            wn += (double)Wr[j * DO + h] * (double)Wr[j * DO + h];
        for (int c = 0; c < CC; c++) {
            double P[DO], dot = 0, pn = 0;
            for (int h = 0; h < DO; h++) {
                P[h] = (double)U[c * DO + h] * (double)V[j * CC + c];
                dot += P[h] * (double)Wr[j * DO + h];
                pn += P[h] * P[h];
            }
            double cs = dot / sqrt(pn * wn);
            if (cs > best) {
                best = cs;
                ratio = sqrt(pn / wn);
            }
        }
        sum_cos += best;
        sum_ratio += ratio;
    }
    double mmcs, ml2r;
    CHECK_EQ(tm_mmcs_ml2r(Wr, V, U, DI, DO, CC, &mmcs, &ml2r, NULL), 0);
    CHECK_NEAR(mmcs, sum_cos / DI, 1e-9);
    CHECK_NEAR(ml2r, sum_ratio / DI, 1e-9);
}

/* ---- identity pattern (spd:tests/test_target_ci_solutions.py) ------------------------ */

static int64_t ident(const float *ci, int64_t n, int C, double tol)
{
    return tm_identity_ci_error(ci, n, C, tol, TM_PERM_AUTO, NULL);
}

TEST(identity_reference_vectors)
{
    const float perfect[] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK_EQ(ident(perfect, 3, 5, 0.1), 0);
    const float within[] = {0.95f, 0.01f, 0, 0, 0, 1, 0, 0.05f, 0, 0, 0.99f, 0};
    CHECK_EQ(ident(within, 3, 4, 0.1), 0);
    const float one_off[] = {1, 0.2f, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    CHECK_EQ(ident(one_off, 3, 4, 0.1), 1);
    const float multi[] = {0.7f, 0.3f, 0, 0.2f, 0.2f, 0.95f, 0, 0, 0, 0, 1, 0};
    CHECK_EQ(ident(multi, 3, 4, 0.1), 4);
}

/* needs permutation; perm = assigned columns in row order, then the rest */
TEST(identity_permutation)
{
    const float ci[] = {0.1f, 0.9f, 0, 0.8f, 0.2f, 0};
    int perm[3];
    CHECK_EQ(tm_identity_ci_error(ci, 2, 3, 0.1, TM_PERM_AUTO, perm), 2); /* 0.8 < 0.9, 0.2 > 0.1 */
    CHECK_EQ(perm[0], 1);
    CHECK_EQ(perm[1], 0);
    CHECK_EQ(perm[2], 2);
    CHECK_EQ(tm_identity_ci_error(ci, 2, 3, 0.2, TM_PERM_AUTO, perm), 0); /* all on thresholds */
}

/* the diagonal-sum optimum, checked against every injective row → column map */
static double best_sum_brute(const float *ci, int n, int C, int row, unsigned used)
{
    if (row == n)
        return 0;
    double best = -1e300;
    for (int j = 0; j < C; j++)
        if (!(used & (1u << j))) {
            double s = (double)ci[row * C + j] + best_sum_brute(ci, n, C, row + 1, used | (1u << j));
            if (s > best)
                best = s;
        }
    return best;
}

TEST(hungarian_is_optimal)
{
    float ci[6 * 7];
    int perm[7];
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + trial % 6, C = n + trial % 3;
        if (C > 7)
            C = 7;
        for (int i = 0; i < n * C; i++) /* coarse values make ties common */
            ci[i] = trial % 2 ? frand() : (float)(int)(frand() * 4) / 4;
        CHECK(tm_identity_ci_error(ci, n, C, 0.1, TM_PERM_HUNGARIAN, perm) >= 0);
        double got = 0;
        for (int i = 0; i < n; i++)
            got += (double)ci[i * C + perm[i]];
        CHECK_NEAR(got, best_sum_brute(ci, n, C, 0, 0), 1e-9);
        unsigned seen = 0; /* perm is a permutation of 0..C-1 */
        for (int j = 0; j < C; j++)
            seen |= 1u << perm[j];
        CHECK_EQ(seen, (1u << C) - 1);
    }
}

/* More features than components: the first C rows are matched, the rest are all
 * off-diagonal (reference: effective rows = min(n, C)). */
TEST(identity_more_rows_than_columns)
{
    const float ci[] = {0, 1, 1, 0, 0.5f, 0.05f};
    CHECK_EQ(ident(ci, 3, 2, 0.1), 1);
}

/* Greedy lets row 0 take its best column; Hungarian maximises the diagonal sum.
 * AUTO switches to greedy at min(n, C) = 500, as the reference. */
static float *embed_trap(int n)
{
    float *ci = calloc((size_t)n * n, sizeof *ci);
    for (int i = 2; i < n; i++)
        ci[(size_t)i * n + i] = 1;
    ci[0] = 1.0f;     /* [[1.0, 0.95], */
    ci[1] = 0.95f;    /*  [0.95, 0  ]] */
    ci[n] = 0.95f;
    return ci;
}

TEST(identity_greedy_vs_hungarian)
{
    float *small = embed_trap(4), *big = embed_trap(500), *edge = embed_trap(499);
    CHECK_EQ(tm_identity_ci_error(small, 4, 4, 0.1, TM_PERM_GREEDY, NULL), 3);
    CHECK_EQ(tm_identity_ci_error(small, 4, 4, 0.1, TM_PERM_HUNGARIAN, NULL), 1);
    CHECK_EQ(tm_identity_ci_error(small, 4, 4, 0.1, TM_PERM_AUTO, NULL), 1);
    CHECK_EQ(tm_identity_ci_error(edge, 499, 499, 0.1, TM_PERM_AUTO, NULL), 1);
    CHECK_EQ(tm_identity_ci_error(big, 500, 500, 0.1, TM_PERM_AUTO, NULL), 3);
    CHECK_EQ(tm_identity_ci_error(big, 500, 500, 0.1, TM_PERM_HUNGARIAN, NULL), 1);
    free(small);
    free(big);
    free(edge);
}

TEST(identity_bad_input)
{
    const float nan_ci[] = {1, NAN};
    CHECK_EQ(ident(nan_ci, 1, 2, 0.1), -1);
    CHECK_EQ(ident(NULL, 1, 2, 0.1), -1);
    CHECK_EQ(ident(nan_ci, 0, 2, 0.1), -1);
}

/* ---- dense pattern ------------------------------------------------------------------------ */

static int64_t dense(const float *ci, int64_t n, int C, int k, double tol)
{
    return tm_dense_ci_error(ci, n, C, k, 1, tol, NULL);
}

TEST(dense_reference_vectors)
{
    const float exact_k[] = {0.9f, 0, 0.3f, 0, 0.6f, 0, 0.4f, 0, 0.7f, 0, 1, 0};
    CHECK_EQ(dense(exact_k, 3, 4, 2, 0.1), 0);
    /* 0.9 ≥ (float)(1 − 0.1) must hold: a double threshold would give 3 */
    const float excess[] = {0.9f, 0.2f, 0, 0, 0.6f, 0.95f, 0, 0};
    CHECK_EQ(dense(excess, 2, 4, 1, 0.1), 2);
    /* 0.1 > (float)0.1 must be false (col 4); the 1.9/1.9 sum tie does not matter */
    const float multi[] = {.5f, .4f, 1, .2f, .1f, .6f, .9f, .4f, .3f, .2f, .9f, .6f, .5f, .4f, .3f};
    CHECK_EQ(dense(multi, 3, 5, 2, 0.1), 8);
    const float none[] = {0.5f, 0.5f, 0, 0.7f, 0.8f, 0};
    CHECK_EQ(dense(none, 2, 3, 2, 0.1), 2);
    const float mixed[] = {0.95f, 0.05f, 0.15f, 0, 0.05f, 0.5f, 0.05f, 0};
    CHECK_EQ(dense(mixed, 2, 4, 2, 0.1), 2);
}

TEST(dense_permutation)
{
    const float ci[] = {0.3f, 0, 0.8f, 0.2f, 0, 0.9f, 0.1f, 0, 0.7f};
    int perm[3];
    CHECK_EQ(tm_dense_ci_error(ci, 3, 3, 1, 1, 0.1, perm), 2); /* col 0: 0.3, 0.2 > 0.1 */
    CHECK_EQ(perm[0], 2);
    CHECK_EQ(perm[1], 0);
    CHECK_EQ(perm[2], 1);
    CHECK_EQ(tm_dense_ci_error(ci, 3, 3, 5, 1, 0.1, NULL), -1); /* k > C */
}

/* TargetCISolution tests: per-module errors summed */
TEST(combined_solution)
{
    const float id1[] = {0.8f, 0.2f, 0, 0, 1, 0};
    const float de1[] = {0.9f, 0.3f, 0, 0, 0, 0.1f, 0, 0};
    /* tol 0.1: identity 2 (0.8 < 0.9, 0.2 > 0.1) + dense 1 (0.3; 0.1 is not > 0.1) */
    CHECK_EQ(ident(id1, 2, 3, 0.1) + dense(de1, 2, 4, 1, 0.1), 3);
    /* tol 0.2: 0.8 ≥ (float)0.8 and 0.2 ≤ (float)0.2, so only the 0.3 remains */
    CHECK_EQ(ident(id1, 2, 3, 0.2) + dense(de1, 2, 4, 1, 0.2), 1);

    const float in0[] = {0.8f, 0.2f, 0, 0, 1, 0}, out0[] = {0.5f, 0.3f, 0, 0, 0.9f, 0};
    const float in1[] = {1, 0, 0, 1}, out1[] = {0.9f, 0, 0.7f, 0};
    CHECK_EQ(ident(in0, 2, 3, 0.1), 2);
    CHECK_EQ(dense(out0, 2, 3, 1, 0.1), 1);
    CHECK_EQ(ident(in1, 2, 2, 0.1), 0);
    CHECK_EQ(dense(out1, 2, 2, 1, 0.1), 0);
}

/* ---- small counts -------------------------------------------------------------------------- */

TEST(l0_density_alive)
{
    /* [N = 4, C = 3]; 0.1 sits on the threshold and does not fire at thr 0.1 */
    const float ci[] = {1, 0.1f, 0, 0.5f, 0.2f, 0, 1, 0, 0, 0.05f, 0.3f, 0};
    CHECK_NEAR(tm_l0(ci, 4, 3, 0.1), (1 + 2 + 1 + 1) / 4.0, 1e-12);
    double dens[3], mean[3];
    CHECK_EQ(tm_firing_density(ci, 4, 3, 0.1, dens), 0);
    CHECK_NEAR(dens[0], 0.75, 1e-12);
    CHECK_NEAR(dens[1], 0.5, 1e-12);
    CHECK_NEAR(dens[2], 0.0, 1e-12);
    CHECK_EQ(tm_alive_count(ci, 4, 3, 0.1, mean), 2);
    CHECK_NEAR(mean[0], 2.55 / 4, 1e-7);
    CHECK_NEAR(mean[1], 0.6 / 4, 1e-7);
    CHECK_EQ(tm_alive_count(ci, 4, 3, 0.2, NULL), 1);
    CHECK_EQ(tm_alive_count(ci, 4, 3, 0.0, NULL), 2);
    CHECK(isnan(tm_l0(ci, 0, 3, 0.1)));
}

TEST(component_norms)
{
    /* V [2, 3], U [3, 2]: piece c = V[:,c] U[c,:] */
    const float V[] = {3, 0, 1, 4, 0, 1};
    const float U[] = {1, 0, 5, 5, 0.6f, 0.8f};
    double norms[3];
    CHECK_EQ(tm_component_norms(V, U, 2, 2, 3, norms), 0);
    CHECK_NEAR(norms[0], 5.0, 1e-12);
    CHECK_NEAR(norms[1], 0.0, 1e-12);
    CHECK_NEAR(norms[2], sqrt(2.0), 1e-6);
    /* Frobenius norm of the explicit outer product agrees */
    double f = 0;
    for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++)
            f += pow((double)V[i * 3 + 2] * (double)U[2 * 2 + h], 2);
    CHECK_NEAR(norms[2], sqrt(f), 1e-12);
    CHECK_EQ(tm_count_above(norms, 3, 0.1), 2);
    CHECK_EQ(tm_count_above(norms, 3, 0.3), 1);
    const double zeros[2] = {0, 0};
    CHECK_EQ(tm_count_above(zeros, 2, 0.1), 0);
}

static const struct test_case tests[] = {
    T(mmcs_exact_decomposition),
    T(ml2r_half_norm),
    T(mmcs_rotated),
    T(mmcs_signed),
    T(mmcs_skips_zero_features),
    T(mmcs_matches_definition),
    T(identity_reference_vectors),
    T(identity_permutation),
    T(hungarian_is_optimal),
    T(identity_more_rows_than_columns),
    T(identity_greedy_vs_hungarian),
    T(identity_bad_input),
    T(dense_reference_vectors),
    T(dense_permutation),
    T(combined_solution),
    T(l0_density_alive),
    T(component_norms),
};

TEST_MAIN(tests)
