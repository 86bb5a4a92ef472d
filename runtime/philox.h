/* philox.h — counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror,
 * Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11), bit-compatible
 * with Random123's philox4x32_10 (the generator behind cuRAND's Philox and JAX).
 *
 * A counter-based generator is a pure function (counter, key) -> 128 random
 * bits, so every element's draw can be computed on its own: results do not
 * depend on thread count, kernel grouping, device or the order of evaluation.
 *
 * pdc's stream layout (what a generated kernel must reproduce exactly):
 *
 *   key     = { seed & 0xffffffff, seed >> 32 }
 *   counter = { block & 0xffffffff, block >> 32, stream, step & 0xffffffff }
 *   block   = index / 4,  lane = index % 4   (index: the element's flat index)
 *
 * `stream` names what is being drawn (a site's mask, an initialiser, ...);
 * `step` is the training step (only its low 32 bits enter the counter, so steps
 * repeat after 2^32: far beyond any run). The flat index of element
 * (position, component) of a [positions, n_components] draw is
 * position * n_components + component (philox_index), so one element is one
 * lane of one block and a kernel can compute any element without its
 * neighbours.
 *
 * Uniform: u = (word >> 8) * 2^-24, the top 24 bits of the lane's word, exact
 * in float32, in [0, 1 - 2^-24].
 * Normal (Box–Muller): element `index` uses block index/4; lanes (0,1) form one
 * pair and lanes (2,3) the other; lane 2p gives r*cos(2*pi*u2), lane 2p+1 gives
 * r*sin(2*pi*u2) with u1 = ((w[2p] >> 8) + 0.5) * 2^-24 in (0, 1) (never 0, so
 * r = sqrt(-2 ln u1) <= 5.9), u2 = (w[2p+1] >> 8) * 2^-24; computed in double
 * and rounded once to float. */
#ifndef PDC_PHILOX_H
#define PDC_PHILOX_H

#include <stdint.h>

/* One Philox4x32-10 block: out = philox(ctr, key). out may alias ctr. */
void philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The 128 random bits of counter block `block` of (seed, step, stream). */
void philox_block(uint64_t seed, uint64_t step, uint32_t stream, uint64_t block, uint32_t out[4]);

/* flat index of element (position, component) of a [*, n_components] draw */
uint64_t philox_index(uint64_t position, uint32_t component, uint32_t n_components);

/* element `index` of the stream, computed on its own */
uint32_t philox_u32_at(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index);
float philox_uniform_at(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index);
float philox_normal_at(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index);

/* word -> float conversions used above (for kernels that draw a whole block) */
float philox_u01(uint32_t w);                        /* [0, 1) */
void philox_normal_pair(uint32_t w1, uint32_t w2, float out[2]); /* cos, sin */

/* out[i] = element offset+i of the stream, for i in [0, n): identical to
 * philox_{uniform,normal}_at(seed, step, stream, offset + i) — element i uses
 * counter block (offset+i)/4, lane (offset+i)%4 — whatever n and offset are. */
void philox_uniform_fill(float *out, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                         uint64_t offset);
void philox_normal_fill(float *out, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                        uint64_t offset);
/* philox_uniform_fill split across the cpu target's thread pool: the same values (each
 * element is computed on its own). The training loop's host draws ran on one core
 * before: ~6 % of the CPU time of a resid-mlp-1 run, with the other core idle. */
void philox_uniform_fill_par(float *out, int64_t n, uint64_t seed, uint64_t step,
                             uint32_t stream, uint64_t offset);

#endif
