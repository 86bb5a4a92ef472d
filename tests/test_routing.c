/* test_routing.c — UniformKSubset routing (METHOD §3.2, §13.3): every position
 * routes at least one site, the number of routed sites is uniform on {1..M}, the
 * routed subset is a uniformly random one of that size, and draws are reproducible. */
#include "harness.h"
#include "train.h"

#define NPOS 40000

TEST(every_position_routes_and_k_is_uniform)
{
    const uint32_t M = 5;
    long count[6] = {0}, per_site[5] = {0};
    for (uint64_t pos = 0; pos < NPOS; pos++) {
        uint32_t k = 0;
        for (uint32_t s = 0; s < M; s++) {
            int b = rt_route_bit(7, 3, 11, pos, M, s);
            k += (uint32_t)b;
            per_site[s] += b;
        }
        CHECK(k >= 1 && k <= M);
        count[k]++;
    }
    /* k uniform on 1..M: each bin NPOS/M ± 5 sigma (binomial) */
    double e = (double)NPOS / M, sd = sqrt(e * (1.0 - 1.0 / M));
    for (uint32_t k = 1; k <= M; k++)
        CHECK_NEAR(count[k], e, 5 * sd);
    /* a site is routed with probability E[k]/M = (M+1)/(2M) */
    double ps = (double)(M + 1) / (2.0 * M), sds = sqrt(NPOS * ps * (1 - ps));
    for (uint32_t s = 0; s < M; s++)
        CHECK_NEAR(per_site[s], NPOS * ps, 5 * sds);
}

TEST(reproducible_and_stream_dependent)
{
    int same = 1, differ = 0;
    for (uint64_t pos = 0; pos < 2000; pos++)
        for (uint32_t s = 0; s < 4; s++) {
            int a = rt_route_bit(1, 9, 2, pos, 4, s), b = rt_route_bit(1, 9, 2, pos, 4, s);
            same &= a == b;
            differ |= a != rt_route_bit(1, 10, 2, pos, 4, s);
        }
    CHECK(same);
    CHECK(differ); /* a new step draws new routes */
}

TEST(single_site_always_routed)
{
    for (uint64_t pos = 0; pos < 1000; pos++)
        CHECK(rt_route_bit(0, 0, 0, pos, 1, 0));
}

static const struct test_case tests[] = {
    T(every_position_routes_and_k_is_uniform),
    T(reproducible_and_stream_dependent),
    T(single_site_always_routed),
};
TEST_MAIN(tests)
