/* philox.c — Philox4x32-10 and pdc's stream layout on top of it (see philox.h). */
#include "philox.h"

#include <math.h>

#include "cpu/cpu_pool.h"

#define PAR_GRAIN 16384 /* draws per chunk: ~50 us, well above waking a worker */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */
#define PHILOX_ROUNDS 10

static void philox_round(uint32_t x[4], const uint32_t k[2])
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * x[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * x[2];
    uint32_t y0 = (uint32_t)(p1 >> 32) ^ x[1] ^ k[0];
    uint32_t y1 = (uint32_t)p1;
    uint32_t y2 = (uint32_t)(p0 >> 32) ^ x[3] ^ k[1];
    uint32_t y3 = (uint32_t)p0;
    x[0] = y0;
    x[1] = y1;
    x[2] = y2;
    x[3] = y3;
}

void philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t x[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        if (r) { /* Random123 bumps the key between rounds, not before the first */
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(x, k);
    }
    for (int i = 0; i < 4; i++)
        out[i] = x[i];
}

void philox_block(uint64_t seed, uint64_t step, uint32_t stream, uint64_t block, uint32_t out[4])
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, (uint32_t)step};
    philox4x32(ctr, key, out);
}

uint64_t philox_index(uint64_t position, uint32_t component, uint32_t n_components)
{
    return position * n_components + component;
}

float philox_u01(uint32_t w)
{
    return (float)(w >> 8) * 0x1p-24f; /* exact: a 24-bit integer times a power of two */
}

void philox_normal_pair(uint32_t w1, uint32_t w2, float out[2])
{
    /* +0.5 keeps u1 off zero so log() is finite; double so every libm rounds
     * the final float the same way (almost always) */
    double u1 = ((double)(w1 >> 8) + 0.5) * 0x1p-24;
    double u2 = (double)(w2 >> 8) * 0x1p-24;
    double r = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925286766559 * u2;
    out[0] = (float)(r * cos(th));
    out[1] = (float)(r * sin(th));
}

uint32_t philox_u32_at(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index)
{
    uint32_t w[4];
    philox_block(seed, step, stream, index / 4, w);
    return w[index % 4];
}

float philox_uniform_at(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index)
{
    return philox_u01(philox_u32_at(seed, step, stream, index));
}

float philox_normal_at(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index)
{
    uint32_t w[4];
    float z[2];
    philox_block(seed, step, stream, index / 4, w);
    unsigned lane = (unsigned)(index % 4), pair = lane / 2;
    philox_normal_pair(w[2 * pair], w[2 * pair + 1], z);
    return z[lane % 2];
}

/* Both fills walk whole blocks and skip the lanes before `offset` and after the
 * end, so a fill of any sub-range equals the same range of a bigger fill. */
static void block_to_uniform(const uint32_t w[4], float v[4])
{
    for (int l = 0; l < 4; l++)
        v[l] = philox_u01(w[l]);
}

static void block_to_normal(const uint32_t w[4], float v[4])
{
    philox_normal_pair(w[0], w[1], v);
    philox_normal_pair(w[2], w[3], v + 2);
}

/* LANES consecutive blocks at once, one lane per block (structure of arrays): the
 * rounds of philox4x32 written so that the compiler vectorises them across lanes
 * (32×32→64-bit products: vpmuludq). Integer arithmetic: the same bits as one
 * block at a time. */
#define LANES 16

static void philox_lanes(uint64_t seed, uint64_t step, uint32_t stream, uint64_t block0,
                         uint32_t w[LANES][4])
{
    uint32_t x0[LANES], x1[LANES], x2[LANES], x3[LANES];
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int l = 0; l < LANES; l++) {
        uint64_t b = block0 + (uint64_t)l;
        x0[l] = (uint32_t)b;
        x1[l] = (uint32_t)(b >> 32);
        x2[l] = stream;
        x3[l] = (uint32_t)step;
    }
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        if (r) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        for (int l = 0; l < LANES; l++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * x0[l], p1 = (uint64_t)PHILOX_M1 * x2[l];
            uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1[l] ^ k0;
            uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3[l] ^ k1;
            x0[l] = y0;
            x1[l] = (uint32_t)p1;
            x2[l] = y2;
            x3[l] = (uint32_t)p0;
        }
    }
    for (int l = 0; l < LANES; l++) {
        w[l][0] = x0[l];
        w[l][1] = x1[l];
        w[l][2] = x2[l];
        w[l][3] = x3[l];
    }
}

static void fill(float *out, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                 uint64_t offset, void (*conv)(const uint32_t[4], float[4]))
{
    int64_t i = 0;
    while (i < n) {
        uint64_t idx = offset + (uint64_t)i;
        if (idx % 4 == 0 && n - i >= 4 * LANES) { /* whole blocks, LANES at a time */
            uint32_t w[LANES][4];
            philox_lanes(seed, step, stream, idx / 4, w);
            for (int l = 0; l < LANES; l++, i += 4)
                conv(w[l], out + i);
            continue;
        }
        uint32_t w[4];
        float v[4];
        philox_block(seed, step, stream, idx / 4, w);
        conv(w, v);
        for (unsigned l = (unsigned)(idx % 4); l < 4 && i < n; l++)
            out[i++] = v[l];
    }
}

void philox_uniform_fill(float *out, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                         uint64_t offset)
{
    fill(out, n, seed, step, stream, offset, block_to_uniform);
}

void philox_normal_fill(float *out, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                        uint64_t offset)
{
    fill(out, n, seed, step, stream, offset, block_to_normal);
}

struct par_fill {
    float *out;
    uint64_t seed, step, offset;
    uint32_t stream;
};

static void par_range(void *ctx, int64_t lo, int64_t hi)
{
    const struct par_fill *f = ctx;
    philox_uniform_fill(f->out + lo, hi - lo, f->seed, f->step, f->stream,
                        f->offset + (uint64_t)lo);
}

void philox_uniform_fill_par(float *out, int64_t n, uint64_t seed, uint64_t step,
                             uint32_t stream, uint64_t offset)
{
    struct par_fill f = {out, seed, step, offset, stream};
    cpu_parallel(n, PAR_GRAIN, par_range, &f);
}
