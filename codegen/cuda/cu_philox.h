/* cu_philox.h — the GPU's Philox (runtime/philox.h's generator and stream layout),
 * written once for the device kernel and its host emulation: element `index` of
 * stream (seed, step, stream) as a uniform float, on its own. The tests hold it
 * to philox_uniform_fill bit for bit. */
#ifndef PDC_CU_PHILOX_H
#define PDC_CU_PHILOX_H

#include "cu_ops.h"

CU_HD uint32_t cu_philox_word(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index)
{
    uint32_t x[4] = {(uint32_t)(index / 4), (uint32_t)(index / 4 >> 32), stream, (uint32_t)step};
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r) { /* the key moves between rounds, not before the first */
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * x[0], p1 = (uint64_t)0xCD9E8D57u * x[2];
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x[1] ^ k0, y2 = (uint32_t)(p0 >> 32) ^ x[3] ^ k1;
        x[0] = y0;
        x[1] = (uint32_t)p1;
        x[2] = y2;
        x[3] = (uint32_t)p0;
    }
    return x[index % 4];
}

CU_HD float cu_philox_uniform(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index)
{
    return (float)(cu_philox_word(seed, step, stream, index) >> 8) * 0x1p-24f;
}

#endif
