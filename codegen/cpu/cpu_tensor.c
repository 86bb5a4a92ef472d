/* cpu_tensor.c — Transpose of 4-byte elements, Cast between float32 and bool, and
 * SliceGrad: pure data movement, bit-identical to the reference.
 *
 * Autodiff transposes every MatMul operand it differentiates through, e.g.
 * [C, N, 16] -> [C, 16, N] in a CI function's backward pass. After merging
 * output dims that the input walks as one, such a transpose is a batch of 2-D
 * transposes (the output's second-to-last dim is the input's contiguous one);
 * those are copied in 32 x 32 tiles, so both the reads and the writes of a tile
 * stay within a few dozen cache lines. Other permutations copy row by row
 * (whole rows when the innermost dim stays innermost). */
#include <string.h>

#include "cpu_impl.h"

#define TILE 32
#define GRAIN_COPY 65536 /* elements per thread below which waking the pool costs more */

struct tr_job {
    const uint32_t *x;
    uint32_t *y;
    int rank;                  /* merged output dims; the input stride of each */
    int64_t dims[IR_MAX_RANK], st[IR_MAX_RANK];
    int64_t R, C, cs;          /* tiled case: rows (input stride 1), columns (stride cs) */
};

/* merge adjacent output dims the input also walks as one; drop size-1 dims */
static void tr_merge(struct tr_job *jb, int r, const int64_t *dims, const int64_t *st)
{
    jb->rank = 0;
    for (int i = 0; i < r; i++) {
        if (dims[i] == 1)
            continue;
        int k = jb->rank;
        if (k > 0 && jb->st[k - 1] == st[i] * dims[i]) {
            jb->dims[k - 1] *= dims[i];
            jb->st[k - 1] = st[i];
            continue;
        }
        jb->dims[k] = dims[i];
        jb->st[k] = st[i];
        jb->rank++;
    }
}

/* input offset of the first element of outer index o (over dims [0, upto)) */
static int64_t tr_offset(const struct tr_job *jb, int64_t o, int upto)
{
    int64_t off = 0;
    for (int i = upto - 1; i >= 0; i--) {
        off += (o % jb->dims[i]) * jb->st[i];
        o /= jb->dims[i];
    }
    return off;
}

/* items: (batch, row tile) pairs; a tile is TILE output rows by all columns,
 * walked TILE columns at a time */
static void tr_tiles(void *ctx, int64_t lo, int64_t hi)
{
    const struct tr_job *jb = ctx;
    int64_t ntr = (jb->R + TILE - 1) / TILE, R = jb->R, C = jb->C, cs = jb->cs;
    for (int64_t it = lo; it < hi; it++) {
        int64_t b = it / ntr, r0 = (it % ntr) * TILE, r1 = r0 + TILE < R ? r0 + TILE : R;
        const uint32_t *x = jb->x + tr_offset(jb, b, jb->rank - 2);
        uint32_t *y = jb->y + b * R * C;
        for (int64_t c0 = 0; c0 < C; c0 += TILE) {
            int64_t c1 = c0 + TILE < C ? c0 + TILE : C;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    y[r * C + c] = x[r + c * cs];
        }
    }
}

/* output rows [lo, hi) of length dims[rank-1], gathered with the last stride */
static void tr_rows(void *ctx, int64_t lo, int64_t hi)
{
    const struct tr_job *jb = ctx;
    int64_t len = jb->dims[jb->rank - 1], s = jb->st[jb->rank - 1];
    for (int64_t r = lo; r < hi; r++) {
        const uint32_t *x = jb->x + tr_offset(jb, r, jb->rank - 1);
        uint32_t *restrict y = jb->y + r * len;
        if (s == 1) {
            memcpy(y, x, (size_t)len * 4);
            continue;
        }
        for (int64_t j = 0; j < len; j++)
            y[j] = x[j * s];
    }
}

CPU_KERNEL(Transpose)
{
    const struct ir_tensor *x = cpu_in(g, n, 0), *y = cpu_out(g, n, 0);
    const int64_t *perm;
    int64_t np = ir_attr_ints(n, "perm", &perm), xs[IR_MAX_RANK], st[IR_MAX_RANK];
    if (!y || ir_dtype_size(x->dtype) != 4)
        return CPU_DELEGATE;
    if (!out[0] || ir_numel(y) == 0)
        return ST_OK;
    ir_contig_strides(x->rank, x->dims, xs);
    for (int i = 0; i < x->rank; i++) { /* output axis i walks input axis perm[i] */
        int64_t p = np == x->rank ? perm[i] : x->rank - 1 - i;
        if (p < 0 || p >= x->rank)
            return CPU_DELEGATE;
        st[i] = xs[p];
    }
    struct tr_job jb = {.x = in[0], .y = out[0]};
    tr_merge(&jb, y->rank, y->dims, st);
    int64_t numel = ir_numel(y);
    if (jb.rank == 0 || (jb.rank == 1 && jb.st[0] == 1)) { /* the order is unchanged */
        memcpy(out[0], in[0], (size_t)numel * 4);
        return ST_OK;
    }
    if (jb.rank >= 2 && jb.st[jb.rank - 2] == 1) {
        jb.R = jb.dims[jb.rank - 2];
        jb.C = jb.dims[jb.rank - 1];
        jb.cs = jb.st[jb.rank - 1];
        int64_t items = numel / (jb.R * jb.C) * ((jb.R + TILE - 1) / TILE);
        cpu_parallel(items, 1 + GRAIN_COPY / (TILE * jb.C), tr_tiles, &jb);
        return ST_OK;
    }
    int64_t len = jb.dims[jb.rank - 1];
    cpu_parallel(numel / len, 1 + GRAIN_COPY / len, tr_rows, &jb);
    return ST_OK;
}

/* ---- Cast ------------------------------------------------------------------ */

struct cast_job {
    const void *x;
    void *y;
    int to_bool;
};

static void cast_range(void *ctx, int64_t lo, int64_t hi)
{
    const struct cast_job *jb = ctx;
    if (jb->to_bool) { /* nonzero, NaN included, as the reference */
        const float *x = jb->x;
        uint8_t *restrict y = jb->y;
        for (int64_t i = lo; i < hi; i++)
            y[i] = x[i] != 0.0f;
        return;
    }
    const uint8_t *x = jb->x;
    float *restrict y = jb->y;
    for (int64_t i = lo; i < hi; i++)
        y[i] = x[i] ? 1.0f : 0.0f;
}

/* float32 <-> bool; every other pair is the reference's */
CPU_KERNEL(Cast)
{
    const struct ir_tensor *x = cpu_in(g, n, 0), *y = cpu_out(g, n, 0);
    if (!y || !((x->dtype == IR_F32 && y->dtype == IR_BOOL) ||
                (x->dtype == IR_BOOL && y->dtype == IR_F32)))
        return CPU_DELEGATE;
    if (!out[0])
        return ST_OK;
    struct cast_job jb = {in[0], out[0], y->dtype == IR_BOOL};
    cpu_parallel(ir_numel(x), GRAIN_COPY, cast_range, &jb);
    return ST_OK;
}

/* ---- SliceGrad ------------------------------------------------------------------ */

/* The VJP of a Slice: dX all zeros but the sliced positions, which get dY. The
 * reference moves one element at a time through an index odometer; an adversary's
 * sources [pos, C + 1] split into masks and δ take 72 of these a tiny-LM step
 * (4.4 ms there). Here: one memset, then dY's rows copied whole (or element by
 * element along a stepped last axis), the rows split across the pool. */
struct sg_job {
    const char *dy;
    char *dx;
    size_t es;
    int rank;
    int64_t dims[IR_MAX_RANK], dst[IR_MAX_RANK]; /* dY's dims; dX strides per dY index */
    int64_t base;                               /* dX offset of dY's first element */
};

static void sg_rows(void *ctx, int64_t lo, int64_t hi)
{
    const struct sg_job *jb = ctx;
    int last = jb->rank - 1;
    int64_t len = jb->dims[last], step = jb->dst[last];
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = jb->base, q = r;
        for (int k = last - 1; k >= 0; k--) {
            off += (q % jb->dims[k]) * jb->dst[k];
            q /= jb->dims[k];
        }
        const char *src = jb->dy + r * len * (int64_t)jb->es;
        if (step == 1) {
            memcpy(jb->dx + off * (int64_t)jb->es, src, (size_t)len * jb->es);
            continue;
        }
        for (int64_t i = 0; i < len; i++)
            memcpy(jb->dx + (off + i * step) * (int64_t)jb->es, src + i * (int64_t)jb->es, jb->es);
    }
}

/* integer element k of input i */
static int64_t ld_int(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                      uint32_t i, int64_t k)
{
    return ir_load_i64(cpu_in(g, n, i)->dtype, in[i], k);
}

/* SliceGrad(dY, starts, ends, axes?, steps?) with dX's shape as the attribute; what
 * does not add up (lengths, axes, counts) is the reference's to report */
CPU_KERNEL(SliceGrad)
{
    const struct ir_tensor *dy = cpu_in(g, n, 0), *dx = cpu_out(g, n, 0);
    const struct ir_tensor *ts = n->n_in > 1 ? cpu_in(g, n, 1) : NULL;
    const struct ir_tensor *te = n->n_in > 2 ? cpu_in(g, n, 2) : NULL;
    const struct ir_tensor *ta = n->n_in > 3 ? cpu_in(g, n, 3) : NULL;
    const struct ir_tensor *tp = n->n_in > 4 ? cpu_in(g, n, 4) : NULL;
    if (!dx || !ts || !te || dy->rank != dx->rank || dx->rank < 1)
        return CPU_DELEGATE;
    int64_t ns = ir_numel(ts), xs[IR_MAX_RANK], first[IR_MAX_RANK] = {0}, step[IR_MAX_RANK];
    if (ir_numel(te) != ns || (ta && ir_numel(ta) != ns) || (tp && ir_numel(tp) != ns))
        return CPU_DELEGATE;
    if (!out[0] || ir_numel(dx) == 0)
        return ST_OK;
    int r = dx->rank;
    int64_t cnt[IR_MAX_RANK];
    for (int k = 0; k < r; k++) {
        step[k] = 1;
        cnt[k] = dx->dims[k];
    }
    for (int64_t k = 0; k < ns; k++) {
        int a = ir_norm_axis(ta ? ld_int(g, n, in, 3, k) : k, r);
        int64_t sp = tp ? ld_int(g, n, in, 4, k) : 1, f;
        if (a < 0 || sp == 0)
            return CPU_DELEGATE;
        cnt[a] = ir_slice_axis(dx->dims[a], ld_int(g, n, in, 1, k), ld_int(g, n, in, 2, k), sp,
                               &f);
        first[a] = f;
        step[a] = sp;
    }
    struct sg_job jb = {.dy = in[0], .dx = out[0], .es = ir_dtype_size(dx->dtype), .rank = r};
    ir_contig_strides(r, dx->dims, xs);
    for (int k = 0; k < r; k++) {
        if (dy->dims[k] != cnt[k])
            return CPU_DELEGATE;
        jb.dims[k] = dy->dims[k];
        jb.dst[k] = xs[k] * step[k];
        jb.base += first[k] * xs[k];
    }
    memset(out[0], 0, (size_t)ir_numel(dx) * jb.es);
    int64_t m = ir_numel(dy);
    if (m > 0)
        cpu_parallel(m / jb.dims[r - 1], 1 + GRAIN_COPY / jb.dims[r - 1], sg_rows, &jb);
    return ST_OK;
}
