/* toy_metrics.h — ground-truth metrics for decompositions of the toy targets
 * (METHOD §7.1–§7.3): MMCS / ML2R for TMS, the target-CI pattern errors
 * (identity and dense), and the small counts `pdc eval` prints (CI-L0, firing
 * density, alive components, rank-1 piece norms).
 *
 * Pure functions on row-major float32 arrays; nothing is kept between calls.
 * Sums and norms are accumulated in double. Functions that return an int or
 * int64_t return -1 for invalid arguments (NULL inputs, non-positive sizes)
 * or an allocation failure.
 *
 * Thresholds. The reference compares float32 tensors with Python floats, which
 * PyTorch rounds to float32 first. Every threshold here is therefore taken as a
 * double and compared, as a float, against float CI values: `tol` becomes
 * (float)tol and `1 − tol` becomes (float)(1.0 − tol) (difference in double,
 * then one rounding). Comparing a float with the double threshold instead
 * flips the reference test vectors that sit exactly on a threshold (§7.3). */
#ifndef PDC_TOY_METRICS_H
#define PDC_TOY_METRICS_H

#include <stdint.h>

/* ---- MMCS and ML2R (METHOD §7.1) ---------------------------------------------
 * Layout: pdc's site stores Wr [d_in, d_out] ≈ V [d_in, C] · U [C, d_out]
 * (right-multiply, Wr = PyTorch weight transposed). For TMS linear1 the paper's
 * W [m1 = hidden, m2 = features] is linear1.weight, so Wr = Wᵀ: d_in = features,
 * d_out = hidden, and feature j's column W[:, j] is the row Wr[j, :].
 *
 * Subcomponent c's contribution to feature j is P_{c,:,j} = U[c,:] · V[j,c], so
 *   cos_c(j) = sign(V[j,c]) · <U[c,:], Wr[j,:]> / (‖U[c,:]‖ ‖Wr[j,:]‖)   (signed)
 *   MMCS = mean_j max_c cos_c(j)
 *   ML2R = mean_j |V[j,m]| ‖U[m,:]‖ / ‖Wr[j,:]‖,  m = argmax_c cos_c(j)
 * Conventions where the papers are silent:
 *   - a zero piece (V[j,c] = 0 or U[c,:] = 0) has cosine 0 (the reference's
 *     plain division would give NaN); so a feature whose only non-zero piece
 *     points away (cosine < 0) scores max-cos 0, from a zero piece, and ML2R 0;
 *   - argmax ties go to the lowest c (torch.max's first index);
 *   - *mmcs_std is the sample standard deviation (n − 1, torch.std's default,
 *     as APD's spd_interp.py) of max_c cos_c(j) over the features used; NaN
 *     when fewer than 2 are used;
 *   - features whose target row Wr[j,:] has zero norm are skipped (no cosine is
 *     defined) and counted.
 * Returns the number of skipped features (0..d_in); the means are NaN when all
 * are skipped. mmcs, ml2r and mmcs_std may each be NULL. */
int tm_mmcs_ml2r(const float *Wr, const float *V, const float *U, int64_t d_in, int64_t d_out,
                 int C, double *mmcs, double *ml2r, double *mmcs_std);

/* ---- Target-CI pattern errors (METHOD §7.3) -----------------------------------
 * Input: ci [n, C] row-major, CI of each component (column) for the one-hot
 * probe of each feature (row). Success = 0. Reported at tol 0.1 and 0.2. */

enum tm_perm_method {
    TM_PERM_AUTO = 0,  /* Hungarian if min(n, C) < 500, else greedy (the reference) */
    TM_PERM_HUNGARIAN, /* optimal assignment, O(min(n,C)² · C) */
    TM_PERM_GREEDY,    /* row by row, each row takes its largest unused column */
};

/* Identity pattern: one feature ↔ one component.
 * Columns are permuted to best match the identity, then
 *   error = #(off-diagonal entries > tol) + #(diagonal entries < 1 − tol)
 * over the whole permuted [n, C] matrix, where the diagonal is (i, i) for
 * i < r = min(n, C).
 * "Best match" = the assignment of the first r rows to distinct columns that
 * maximises the sum of the diagonal CI, as the reference (it minimises −CI with
 * linear_sum_assignment). That is the natural reading and keeps the metric
 * continuous in the CI values; it is not the permutation minimising the error
 * count, which can differ only when distinct assignments tie on the sum. The
 * Hungarian variant is a shortest-augmenting-path solver (Jonker–Volgenant /
 * Crouse 2016, the algorithm SciPy uses), processing rows in order and
 * preferring unassigned columns among equal path costs, so ties resolve as in
 * SciPy. The greedy variant breaks ties between equal CI values by the lower
 * column index (torch.argsort's order on ties is unspecified).
 * Column order of the permuted matrix: the r assigned columns in row order,
 * then the unassigned columns ascending; perm_out (length C, may be NULL)
 * receives it. Returns the error, or -1 (bad arguments, NaN CI, no memory). */
int64_t tm_identity_ci_error(const float *ci, int64_t n, int C, double tol,
                             enum tm_perm_method method, int *perm_out);

/* Dense pattern(k): exactly k always-on components.
 * Columns are sorted by column sum, descending (ties: lower index first; the
 * sums are taken in double), then
 *   error = Σ_{first k columns} max(0, min_entries − #(entries ≥ 1 − tol))
 *         + #(entries > tol in the other columns).
 * The reference's min_entries is 1. perm_out (length C, may be NULL) receives
 * the sorted column order. Returns -1 for bad arguments (k > C included). */
int64_t tm_dense_ci_error(const float *ci, int64_t n, int C, int k, int min_entries, double tol,
                          int *perm_out);

/* ---- Small counts used by `pdc eval` (METHOD §7.2) ----------------------------
 * ci is [N, C] row-major; an entry "fires" when ci > (float)thr. */

/* CI-L0: mean over the N rows of the number of firing entries (NaN if N = 0). */
double tm_l0(const float *ci, int64_t N, int C, double thr);

/* density[c] = fraction of rows where component c fires. Returns 0, -1 on bad args. */
int tm_firing_density(const float *ci, int64_t N, int C, double thr, double *density);

/* Components whose mean CI over the N rows exceeds thr (mean taken in double,
 * rounded to float, then compared as above). mean_out (length C) may be NULL. */
int tm_alive_count(const float *ci, int64_t N, int C, double thr, double *mean_out);

/* norms[c] = ‖V[:,c]‖ · ‖U[c,:]‖, the Frobenius norm of the rank-1 piece
 * V[:,c] U[c,:] (V [d_in, C], U [C, d_out]). Returns 0, -1 on bad args. */
int tm_component_norms(const float *V, const float *U, int64_t d_in, int64_t d_out, int C,
                       double *norms);

/* How many pieces have norm > rel × the largest norm (0 when all are 0; -1 on
 * bad args). */
int tm_count_above(const double *norms, int C, double rel);

#endif
