/* test_philox.c — Philox4x32-10 against Random123's published known-answer
 * vectors (tests/kat_vectors, "philox4x32 10" lines), pdc's stream layout
 * (per-element draws equal bulk fills at any offset), and distribution sanity. */
#include <stdint.h>

#include "harness.h"
#include "cpu/cpu_pool.h"
#include "philox.h"

static void check_kat(const uint32_t ctr[4], const uint32_t key[2], const uint32_t want[4])
{
    uint32_t out[4];
    philox4x32(ctr, key, out);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(out[i], want[i]);
}

TEST(kat_zero)
{
    const uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0};
    const uint32_t want[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
    check_kat(ctr, key, want);
}

TEST(kat_ones)
{
    const uint32_t ctr[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
    const uint32_t key[2] = {0xffffffff, 0xffffffff};
    const uint32_t want[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
    check_kat(ctr, key, want);
}

TEST(kat_pi)
{
    const uint32_t ctr[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
    const uint32_t key[2] = {0xa4093822, 0x299f31d0};
    const uint32_t want[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
    check_kat(ctr, key, want);
}

TEST(stream_layout)
{
    /* the documented counter/key packing, checked through the raw block (block <
     * 2^62: a block index comes from a 64-bit element index / 4) */
    uint64_t seed = 0x0123456789abcdefull, step = 0x1111222233334444ull, block = 0x25a5a5a55a5a5a5aull;
    uint32_t stream = 77, got[4], want[4];
    const uint32_t key[2] = {0x89abcdef, 0x01234567};
    const uint32_t ctr[4] = {0x5a5a5a5a, 0x25a5a5a5, 77, 0x33334444};
    philox_block(seed, step, stream, block, got);
    philox4x32(ctr, key, want);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(got[i], want[i]);
    CHECK_EQ(philox_u32_at(seed, step, stream, block * 4 + 2), want[2]);
    CHECK_EQ(philox_index(3, 5, 40), 125);
    CHECK(philox_u01(0xffffffffu) < 1.0f);
    CHECK(philox_u01(0xffffffffu) == 1.0f - 0x1p-24f);
    CHECK(philox_u01(0xffu) == 0.0f);
}

TEST(fill_matches_elementwise)
{
    /* any (offset, n) slice of a fill equals per-element draws: what makes a
     * kernel's output independent of how work is split across threads */
    enum { N = 301 }; /* several of the 16-block batches a long fill takes, and tails */
    float u[N], z[N];
    for (uint64_t off = 0; off < 9; off++) {
        philox_uniform_fill(u, N, 42, 7, 3, off);
        philox_normal_fill(z, N, 42, 7, 3, off);
        for (int i = 0; i < N; i++) {
            CHECK(u[i] == philox_uniform_at(42, 7, 3, off + (uint64_t)i));
            CHECK(z[i] == philox_normal_at(42, 7, 3, off + (uint64_t)i));
        }
    }
    float a[1], b[1];
    philox_uniform_fill(a, 1, 42, 7, 3, 5);
    philox_uniform_fill(b, 1, 42, 8, 3, 5);
    CHECK(a[0] != b[0]); /* step changes the stream */
    philox_uniform_fill(b, 1, 42, 7, 4, 5);
    CHECK(a[0] != b[0]); /* so does the stream id */
    philox_uniform_fill(b, 1, 43, 7, 3, 5);
    CHECK(a[0] != b[0]); /* and the seed */
}

TEST(uniform_stats)
{
    enum { N = 1000000 };
    float *u = malloc(N * sizeof *u);
    philox_uniform_fill(u, N, 1234, 0, 0, 0);
    double s = 0, s2 = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        s += (double)u[i];
        s2 += (double)u[i] * (double)u[i];
        lo = u[i] < lo ? u[i] : lo;
        hi = u[i] > hi ? u[i] : hi;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK_NEAR(mean, 0.5, 0.002);      /* sd of the mean ~ 0.00029 */
    CHECK_NEAR(var, 1.0 / 12, 0.0005); /* sd ~ 0.00007 */
    CHECK(lo >= 0.0f && hi < 1.0f);
    free(u);
}

TEST(normal_stats)
{
    enum { N = 1000000 };
    float *z = malloc(N * sizeof *z);
    philox_normal_fill(z, N, 99, 3, 1, 0);
    double s = 0, s2 = 0, s4 = 0;
    int finite = 1;
    for (int i = 0; i < N; i++) {
        double x = (double)z[i];
        finite &= isfinite(x) && fabs(x) < 6.0;
        s += x;
        s2 += x * x;
        s4 += x * x * x * x;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK(finite);
    CHECK_NEAR(mean, 0.0, 0.006);
    CHECK_NEAR(var, 1.0, 0.01);
    CHECK_NEAR(s4 / N, 3.0, 0.05); /* kurtosis of a normal */
    free(z);
}

TEST(normal_pair_bounds)
{
    float z[2];
    philox_normal_pair(0, 0, z); /* u1 smallest: r = sqrt(50 ln 2), angle 0 */
    CHECK_NEAR(z[0], sqrt(-2.0 * log(0.5 * 0x1p-24)), 1e-5);
    CHECK(z[1] == 0.0f);
    philox_normal_pair(0xffffffffu, 0x40000000u, z); /* u1 ~ 1: r ~ 0 */
    CHECK(fabsf(z[0]) < 1e-3f && fabsf(z[1]) < 1e-3f);
}

TEST(pool_split_fill_is_the_serial_fill)
{
    /* the training loop's draws split across the thread pool: the same bits for any
     * pool size, length (chunk tails) and offset */
    enum { N = 100003 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    CHECK(a && b);
    for (int th = 1; a && b && th <= 3; th++) {
        cpu_set_threads(th);
        for (uint64_t off = 0; off < 3; off++) {
            int64_t n = N - (int64_t)off * 40000;
            philox_uniform_fill(a, n, 9, 11, 5, off);
            philox_uniform_fill_par(b, n, 9, 11, 5, off);
            CHECK(memcmp(a, b, (size_t)n * sizeof *a) == 0);
        }
    }
    cpu_set_threads(0);
    free(a);
    free(b);
}

static const struct test_case tests[] = {
    T(kat_zero),         T(kat_ones),     T(kat_pi),       T(stream_layout),
    T(fill_matches_elementwise), T(uniform_stats), T(normal_stats), T(normal_pair_bounds),
    T(pool_split_fill_is_the_serial_fill),
};
TEST_MAIN(tests)
