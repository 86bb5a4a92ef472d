/* cu_ops.h — the CUDA target's kernels as data: every node a GPU runs outside the
 * emitter's elementwise kernels is lowered (cu_lower.c) to a few launches of a
 * handful of generic kernels, each described by one of the structs below.
 *
 * This header is C and CUDA at once: the per-element work (where element i of a
 * strided copy reads and writes, where a reduction's j-th input lies) is written
 * once, here, and called both by the device kernels (cu_kernels.cu) and by their
 * host emulation (cu_emu.c), so what the tests run on the host is the index
 * logic the GPU runs. The launch shapes are fixed (CU_BLOCK threads; a block per
 * output of a reduction or per row of a softmax), and the emulation walks the
 * same threads and the same tree of partial results. */
#ifndef PDC_CU_OPS_H
#define PDC_CU_OPS_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define CU_HD __host__ __device__ static inline
#else
#define CU_HD static inline
#endif

#define CU_BLOCK 256 /* threads per block of every generic kernel */
#define CU_RANK 8    /* IR_MAX_RANK */

/* y[yoff + Σ c_k·ys_k] = scale · x[xoff + Σ c_k·xs_k] for every index c of the box
 * dims: a transpose, a broadcast (stride 0), a slice (strides times steps), one
 * input of a concat, a reshape (contiguous both sides). Element size esize bytes;
 * scale applies to float32 only (1: a plain copy). */
struct cu_map {
    int r, esize;
    int64_t n; /* elements in the box */
    int64_t dims[CU_RANK], xs[CU_RANK], ys[CU_RANK];
    int64_t xoff, yoff;
    float scale;
};

CU_HD void cu_map_at(const struct cu_map *m, int64_t i, int64_t *xo, int64_t *yo)
{
    int64_t x = m->xoff, y = m->yoff;
    for (int k = m->r - 1; k >= 0; k--) {
        int64_t c = i % m->dims[k];
        i /= m->dims[k];
        x += c * m->xs[k];
        y += c * m->ys[k];
    }
    *xo = x;
    *yo = y;
}

/* y[o] (contiguous, n_out of them) = op over j < n_red of x[at(o) + at(j)]: the kept
 * box (dims_o, strides xs_o) and the reduced box (dims_r, xs_r); mean divides the
 * sum by n_red. One block per output: thread t folds j = t, t + CU_BLOCK, ... in
 * order, then the CU_BLOCK partials meet in a fixed tree. */
enum cu_red_kind { CU_RED_SUM, CU_RED_MEAN, CU_RED_MAX, CU_RED_MIN };

struct cu_reduce {
    int kind, ro, rr;
    int64_t n_out, n_red;
    int64_t dims_o[CU_RANK], xs_o[CU_RANK], dims_r[CU_RANK], xs_r[CU_RANK];
};

CU_HD int64_t cu_box_at(int r, const int64_t *dims, const int64_t *str, int64_t i)
{
    int64_t off = 0;
    for (int k = r - 1; k >= 0; k--) {
        off += (i % dims[k]) * str[k];
        i /= dims[k];
    }
    return off;
}

CU_HD float cu_red_init(int kind)
{
    return kind == CU_RED_MAX ? -INFINITY : kind == CU_RED_MIN ? INFINITY : 0.0f;
}

/* NaN wins a max or min, as in the reference */
CU_HD float cu_red_step(int kind, float a, float v)
{
    if (kind == CU_RED_SUM || kind == CU_RED_MEAN)
        return a + v;
    if (v != v || a != a)
        return v != v ? v : a;
    return kind == CU_RED_MAX ? (v > a ? v : a) : (v < a ? v : a);
}

CU_HD float cu_red_partial(const struct cu_reduce *r, const float *x, int64_t o, int t)
{
    int64_t base = cu_box_at(r->ro, r->dims_o, r->xs_o, o);
    float a = cu_red_init(r->kind);
    for (int64_t j = t; j < r->n_red; j += CU_BLOCK)
        a = cu_red_step(r->kind, a, x[base + cu_box_at(r->rr, r->dims_r, r->xs_r, j)]);
    return a;
}

/* a reduction shorter than a block: one thread per output folds it in order */
CU_HD float cu_red_serial(const struct cu_reduce *r, const float *x, int64_t o)
{
    int64_t base = cu_box_at(r->ro, r->dims_o, r->xs_o, o);
    float a = cu_red_init(r->kind);
    for (int64_t j = 0; j < r->n_red; j++)
        a = cu_red_step(r->kind, a, x[base + cu_box_at(r->rr, r->dims_r, r->xs_r, j)]);
    return a;
}

CU_HD float cu_red_final(const struct cu_reduce *r, float total)
{
    return r->kind == CU_RED_MEAN ? total / (float)r->n_red : total;
}

/* Row ops: x viewed as (outer, len, inner), a row is one (outer, inner) pair, its
 * element j at row_base + j·inner. Softmax along len; LayerNormalization (inner 1)
 * with a scale and optional bias of len elements and optional per-row mean and
 * 1/σ outputs. One block per row. */
enum cu_row_kind { CU_ROW_SOFTMAX, CU_ROW_LAYERNORM };

struct cu_rows {
    int kind;
    int64_t outer, len, inner;
    float eps;
};

CU_HD int64_t cu_row_base(const struct cu_rows *r, int64_t row)
{
    return (row / r->inner) * r->len * r->inner + row % r->inner;
}

/* thread t's share of a row statistic: the max of x, the sum of e^(x − c), the
 * sum of x, the sum of (x − c)² (the kinds below) over j = t, t + CU_BLOCK, ... */
enum cu_row_stat { CU_ST_MAX, CU_ST_SUMEXP, CU_ST_SUM, CU_ST_SUMSQ };

CU_HD float cu_row_partial(const struct cu_rows *r, const float *x, int64_t row, int t,
                           int stat, float c)
{
    const float *v = x + cu_row_base(r, row);
    float a = stat == CU_ST_MAX ? -INFINITY : 0.0f;
    for (int64_t j = t; j < r->len; j += CU_BLOCK) {
        float e = v[j * r->inner];
        if (stat == CU_ST_MAX)
            a = cu_red_step(CU_RED_MAX, a, e);
        else if (stat == CU_ST_SUMEXP)
            a += expf(e - c);
        else if (stat == CU_ST_SUM)
            a += e;
        else
            a += (e - c) * (e - c);
    }
    return a;
}

/* element j of a row from its statistics: softmax e^(x − max) / sum (a = max,
 * b = sum); layernorm (x − mean)·inv·scale_j + bias_j (a = mean, b = inv) */
CU_HD void cu_row_write(const struct cu_rows *r, const float *x, float *y, const float *scale,
                        const float *bias, int64_t row, int64_t j, float a, float b)
{
    int64_t at = cu_row_base(r, row) + j * r->inner;
    if (!y)
        return; /* only LayerNormalization's statistics are read */
    if (r->kind == CU_ROW_SOFTMAX) {
        y[at] = expf(x[at] - a) / b;
        return;
    }
    float v = (x[at] - a) * b * scale[j];
    y[at] = bias ? v + bias[j] : v;
}

/* a tree sum of CU_BLOCK partials in place, the order the device kernel uses:
 * s[t] += s[t + h] for h = CU_BLOCK/2, ..., 1 */
CU_HD float cu_tree_host(float *s, int kind)
{
    for (int h = CU_BLOCK / 2; h > 0; h >>= 1)
        for (int t = 0; t < h; t++)
            s[t] = cu_red_step(kind, s[t], s[t + h]);
    return s[0];
}

/* CumSum along len of (outer, len, inner), one thread per line, in float32 or
 * (i64) int64, which wraps like the reference's */
struct cu_scan {
    int64_t outer, len, inner;
    int exclusive, reverse, i64;
};

CU_HD void cu_scan_line(const struct cu_scan *s, const void *x, void *y, int64_t line)
{
    int64_t base = (line / s->inner) * s->len * s->inner + line % s->inner;
    float acc = 0.0f;
    uint64_t iacc = 0;
    for (int64_t t = 0; t < s->len; t++) {
        int64_t at = base + (s->reverse ? s->len - 1 - t : t) * s->inner;
        float v = s->i64 ? 0.0f : ((const float *)x)[at];
        uint64_t iv = s->i64 ? (uint64_t)((const int64_t *)x)[at] : 0;
        if (!s->exclusive) {
            acc += v;
            iacc += iv;
        }
        if (s->i64)
            ((int64_t *)y)[at] = (int64_t)iacc;
        else
            ((float *)y)[at] = acc;
        if (s->exclusive) {
            acc += v;
            iacc += iv;
        }
    }
}

/* Elementwise ops outside the emitter's float32 kernels: integer and bool
 * arithmetic, comparisons and casts, with broadcasting (per-operand strides over
 * y's box). Integer operands compute in int64 (wrapping), anything with a float in
 * float32. */
enum cu_dt { CU_F32, CU_I64, CU_I32, CU_BOOL };
enum cu_ew_op { CU_EW_ADD, CU_EW_SUB, CU_EW_MUL, CU_EW_DIV, CU_EW_EQ, CU_EW_LT, CU_EW_LE,
                CU_EW_GT, CU_EW_GE, CU_EW_CAST, CU_EW_WHERE, CU_EW_NOT, CU_EW_AND, CU_EW_OR,
                CU_EW_NEG, CU_EW_FLOOR, CU_EW_CEIL };

struct cu_ew {
    int op, nin, r;
    int dt[3], dty;
    int64_t n;
    int64_t dims[CU_RANK], str[3][CU_RANK];
};

CU_HD double cu_ew_load(int dt, const void *p, int64_t i)
{
    switch (dt) {
    case CU_F32: return ((const float *)p)[i];
    case CU_I64: return (double)((const int64_t *)p)[i];
    case CU_I32: return ((const int32_t *)p)[i];
    default: return ((const unsigned char *)p)[i] != 0;
    }
}

CU_HD int64_t cu_ew_load_i(int dt, const void *p, int64_t i)
{
    switch (dt) {
    case CU_F32: return (int64_t)((const float *)p)[i];
    case CU_I64: return ((const int64_t *)p)[i];
    case CU_I32: return ((const int32_t *)p)[i];
    default: return ((const unsigned char *)p)[i] != 0;
    }
}

CU_HD void cu_ew_at(const struct cu_ew *e, const void *const *x, void *y, int64_t i)
{
    int64_t off[3] = {0, 0, 0}, rest = i;
    for (int k = e->r - 1; k >= 0; k--) {
        int64_t c = rest % e->dims[k];
        rest /= e->dims[k];
        for (int j = 0; j < e->nin; j++)
            off[j] += c * e->str[j][k];
    }
    int fl = e->dt[0] == CU_F32 || (e->nin > 1 && e->dt[1] == CU_F32);
    int64_t a = cu_ew_load_i(e->dt[0], x[0], off[0]);
    int64_t b = e->nin > 1 ? cu_ew_load_i(e->dt[1], x[1], off[1]) : 0;
    double fa = cu_ew_load(e->dt[0], x[0], off[0]);
    double fb = e->nin > 1 ? cu_ew_load(e->dt[1], x[1], off[1]) : 0.0;
    double r = 0.0;
    int64_t ri = 0;
    int as_int = !fl;
    switch (e->op) {
    case CU_EW_ADD: ri = (int64_t)((uint64_t)a + (uint64_t)b); r = (float)fa + (float)fb; break;
    case CU_EW_SUB: ri = (int64_t)((uint64_t)a - (uint64_t)b); r = (float)fa - (float)fb; break;
    case CU_EW_MUL: ri = (int64_t)((uint64_t)a * (uint64_t)b); r = (float)fa * (float)fb; break;
    case CU_EW_DIV: /* INT64_MIN / -1 wraps, as in the reference; / 0 gives 0 */
        ri = b == 0 ? 0 : b == -1 ? (int64_t)(0 - (uint64_t)a) : a / b;
        r = (float)fa / (float)fb;
        break;
    case CU_EW_NEG: ri = (int64_t)(0 - (uint64_t)a); r = -(float)fa; break;
    case CU_EW_EQ: ri = fl ? (float)fa == (float)fb : a == b; as_int = 1; break;
    case CU_EW_LT: ri = fl ? (float)fa < (float)fb : a < b; as_int = 1; break;
    case CU_EW_LE: ri = fl ? (float)fa <= (float)fb : a <= b; as_int = 1; break;
    case CU_EW_GT: ri = fl ? (float)fa > (float)fb : a > b; as_int = 1; break;
    case CU_EW_GE: ri = fl ? (float)fa >= (float)fb : a >= b; as_int = 1; break;
    case CU_EW_NOT: ri = !a; as_int = 1; break;
    case CU_EW_AND: ri = a && b; as_int = 1; break;
    case CU_EW_OR: ri = a || b; as_int = 1; break;
    case CU_EW_CAST: ri = a; r = fa; as_int = e->dt[0] != CU_F32; break;
    case CU_EW_FLOOR: r = floorf((float)fa); break;
    case CU_EW_CEIL: r = ceilf((float)fa); break;
    case CU_EW_WHERE: {
        int64_t o = a ? off[1] : off[2];
        int dt = a ? e->dt[1] : e->dt[2];
        const void *src = a ? x[1] : x[2];
        ri = cu_ew_load_i(dt, src, o);
        r = cu_ew_load(dt, src, o);
        as_int = dt != CU_F32;
        break;
    }
    }
    switch (e->dty) {
    case CU_F32: ((float *)y)[i] = as_int ? (float)ri : (float)r; break;
    case CU_I64: ((int64_t *)y)[i] = as_int ? ri : (int64_t)r; break;
    case CU_I32: ((int32_t *)y)[i] = (int32_t)(as_int ? ri : (int64_t)r); break;
    default: ((unsigned char *)y)[i] = as_int ? ri != 0 : r != 0.0; break;
    }
}

/* Einsum of one or two float32 operands: y[o] (contiguous) = Σ over the summed box
 * of the operands' product, each operand at its strides for the output labels
 * (so) and the summed ones (sr); one thread per output, in float32 */
struct cu_ein {
    int nops, ro, rr;
    int64_t n_out, n_red;
    int64_t dims_o[CU_RANK], dims_r[CU_RANK], so[2][CU_RANK], sr[2][CU_RANK];
};

CU_HD float cu_ein_at(const struct cu_ein *e, const float *x0, const float *x1, int64_t o)
{
    int64_t b0 = cu_box_at(e->ro, e->dims_o, e->so[0], o);
    int64_t b1 = e->nops > 1 ? cu_box_at(e->ro, e->dims_o, e->so[1], o) : 0;
    float acc = 0.0f;
    for (int64_t j = 0; j < e->n_red; j++) {
        float p = x0[b0 + cu_box_at(e->rr, e->dims_r, e->sr[0], j)];
        if (e->nops > 1)
            p *= x1[b1 + cu_box_at(e->rr, e->dims_r, e->sr[1], j)];
        acc += p;
    }
    return acc;
}

/* TopKMask over all n elements: 1 where fewer than k elements rank above, an
 * element ranking above another when larger, or equal at a lower index (NaN
 * ranks below everything): the reference's order, counted per element */
CU_HD float cu_topk_at(const float *x, int64_t n, int64_t k, int64_t i)
{
    float v = x[i] != x[i] ? -INFINITY : x[i];
    int64_t above = 0;
    for (int64_t j = 0; j < n && above < k; j++) {
        float u = x[j] != x[j] ? -INFINITY : x[j];
        above += u > v || (u == v && j < i);
    }
    return above < k ? 1.0f : 0.0f;
}

enum cu_win { CU_W_CONV, CU_W_CONV_DX, CU_W_CONV_DW, CU_W_MAXPOOL, CU_W_AVGPOOL, CU_W_MAXPOOL_DX,
              CU_W_AVGPOOL_DX };

/* Conv and its two gradients, one thread per output element, padded to three
 * spatial dims (ir/nn_geom.h's nn_geom3): X (N, C, in), W (M, C/group, k), Y (N, M,
 * out). Y: bias + Σ over the window; dX: Σ over the (m, tap) pairs whose window
 * covers the input position; dW: Σ over images and output positions. Float32. */
struct cu_conv {
    int64_t in[3], k[3], s[3], dl[3], pb[3], pe[3], out[3];
    int64_t N, C, M, group, in_plane, out_plane, kvol;
    int include_pad; /* AveragePool's count_include_pad */
};

/* input offset in a plane of output position o (3 coords) and tap t, or -1 in the pad */
CU_HD int64_t cu_conv_tap(const struct cu_conv *q, const int64_t *o, const int64_t *t)
{
    int64_t off = 0;
    for (int i = 0; i < 3; i++) {
        int64_t p = o[i] * q->s[i] - q->pb[i] + t[i] * q->dl[i];
        if (p < 0 || p >= q->in[i])
            return -1;
        off = off * q->in[i] + p;
    }
    return off;
}

CU_HD void cu_unflat3(int64_t i, const int64_t *dims, int64_t *c)
{
    c[2] = i % dims[2];
    c[1] = (i / dims[2]) % dims[1];
    c[0] = i / (dims[2] * dims[1]);
}

CU_HD float cu_conv_y(const struct cu_conv *q, const float *x, const float *w, const float *b,
                      int64_t i)
{
    int64_t cg = q->C / q->group, mg = q->M / q->group, o[3], t[3];
    int64_t n = i / (q->M * q->out_plane), m = (i / q->out_plane) % q->M;
    cu_unflat3(i % q->out_plane, q->out, o);
    float acc = b ? b[m] : 0.0f;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t ti = 0; ti < q->kvol; ti++) {
            cu_unflat3(ti, q->k, t);
            int64_t p = cu_conv_tap(q, o, t);
            if (p >= 0)
                acc += w[(m * cg + c) * q->kvol + ti] *
                       x[(n * q->C + (m / mg) * cg + c) * q->in_plane + p];
        }
    return acc;
}

/* the output position whose tap t lands on input position ip, or 0 */
CU_HD int cu_conv_back(const struct cu_conv *q, const int64_t *ip, const int64_t *t, int64_t *o)
{
    for (int i = 0; i < 3; i++) {
        int64_t num = ip[i] + q->pb[i] - t[i] * q->dl[i];
        if (num < 0 || num % q->s[i] != 0 || num / q->s[i] >= q->out[i])
            return 0;
        o[i] = num / q->s[i];
    }
    return 1;
}

CU_HD float cu_conv_dx(const struct cu_conv *q, const float *dy, const float *w, int64_t i)
{
    int64_t cg = q->C / q->group, mg = q->M / q->group, ip[3], t[3], o[3];
    int64_t n = i / (q->C * q->in_plane), c = (i / q->in_plane) % q->C, gi = c / cg;
    cu_unflat3(i % q->in_plane, q->in, ip);
    float acc = 0.0f;
    for (int64_t m = gi * mg; m < (gi + 1) * mg; m++)
        for (int64_t ti = 0; ti < q->kvol; ti++) {
            cu_unflat3(ti, q->k, t);
            if (cu_conv_back(q, ip, t, o))
                acc += dy[(n * q->M + m) * q->out_plane + (o[0] * q->out[1] + o[1]) * q->out[2] +
                          o[2]] *
                       w[(m * cg + c % cg) * q->kvol + ti];
        }
    return acc;
}

CU_HD float cu_conv_dw(const struct cu_conv *q, const float *x, const float *dy, int64_t i)
{
    int64_t cg = q->C / q->group, mg = q->M / q->group, o[3], t[3];
    int64_t m = i / (cg * q->kvol), c = (i / q->kvol) % cg, ti = i % q->kvol;
    cu_unflat3(ti, q->k, t);
    float acc = 0.0f;
    for (int64_t n = 0; n < q->N; n++)
        for (int64_t oi = 0; oi < q->out_plane; oi++) {
            cu_unflat3(oi, q->out, o);
            int64_t p = cu_conv_tap(q, o, t);
            if (p >= 0)
                acc += dy[(n * q->M + m) * q->out_plane + oi] *
                       x[(n * q->C + (m / mg) * cg + c) * q->in_plane + p];
        }
    return acc;
}

/* MaxPool / AveragePool and their gradients on (planes, spatial) with the Conv
 * geometry above: one thread per output (forward) or per input element (backward),
 * the reference's rules: NaN wins a max and the first maximal tap takes a max's
 * gradient; an average counts the taps inside the input (or the padded extent) */
CU_HD int64_t cu_pool_count(const struct cu_conv *q, const int64_t *o)
{
    int64_t cnt = 1;
    for (int i = 0; i < 3; i++) {
        int64_t lo = q->include_pad ? -q->pb[i] : 0;
        int64_t hi = q->include_pad ? q->in[i] + q->pe[i] : q->in[i], c = 0;
        for (int64_t kk = 0; kk < q->k[i]; kk++) {
            int64_t p = o[i] * q->s[i] - q->pb[i] + kk * q->dl[i];
            c += p >= lo && p < hi;
        }
        cnt *= c;
    }
    return cnt;
}

/* the input offset the max of output o's window comes from, or -1 */
CU_HD int64_t cu_pool_argmax(const struct cu_conv *q, const float *x, const int64_t *o)
{
    int64_t best = -1, t[3];
    float m = -INFINITY;
    for (int64_t ti = 0; ti < q->kvol; ti++) {
        cu_unflat3(ti, q->k, t);
        int64_t p = cu_conv_tap(q, o, t);
        if (p >= 0 && (best < 0 || x[p] > m || x[p] != x[p])) {
            best = p;
            m = x[p];
        }
    }
    return best;
}

CU_HD float cu_pool_y(const struct cu_conv *q, int is_max, const float *x, int64_t i)
{
    int64_t o[3], t[3];
    const float *xp = x + (i / q->out_plane) * q->in_plane;
    cu_unflat3(i % q->out_plane, q->out, o);
    if (is_max) {
        int64_t b = cu_pool_argmax(q, xp, o);
        return b < 0 ? -INFINITY : xp[b];
    }
    float sum = 0.0f;
    for (int64_t ti = 0; ti < q->kvol; ti++) {
        cu_unflat3(ti, q->k, t);
        int64_t p = cu_conv_tap(q, o, t);
        if (p >= 0)
            sum += xp[p];
    }
    return sum / (float)cu_pool_count(q, o);
}

/* dx at input element i: x is the forward's input (max) or unused (average) */
CU_HD float cu_pool_dx(const struct cu_conv *q, int is_max, const float *x, const float *dy,
                       int64_t i)
{
    int64_t plane = i / q->in_plane, ip[3], t[3], o[3];
    cu_unflat3(i % q->in_plane, q->in, ip);
    const float *dyp = dy + plane * q->out_plane;
    float acc = 0.0f;
    for (int64_t ti = 0; ti < q->kvol; ti++) {
        cu_unflat3(ti, q->k, t);
        if (!cu_conv_back(q, ip, t, o))
            continue;
        int64_t oi = (o[0] * q->out[1] + o[1]) * q->out[2] + o[2];
        if (!is_max)
            acc += dyp[oi] / (float)cu_pool_count(q, o);
        else if (cu_pool_argmax(q, x + plane * q->in_plane, o) == i % q->in_plane)
            acc += dyp[oi];
    }
    return acc;
}

/* one element of any windowed op (the operands as cu_kind CU_K_CONV lists them) */
CU_HD float cu_win_at(const struct cu_conv *q, int which, const float *a, const float *b,
                      const float *c, int64_t i)
{
    switch (which) {
    case CU_W_CONV: return cu_conv_y(q, a, b, c, i);
    case CU_W_CONV_DX: return cu_conv_dx(q, a, b, i);
    case CU_W_CONV_DW: return cu_conv_dw(q, a, b, i);
    case CU_W_MAXPOOL: return cu_pool_y(q, 1, a, i);
    case CU_W_AVGPOOL: return cu_pool_y(q, 0, a, i);
    case CU_W_MAXPOOL_DX: return cu_pool_dx(q, 1, a, b, i);
    default: return cu_pool_dx(q, 0, NULL, a, i);
    }
}

/* The chunked KL of logits h·W + b (codegen/kl_chunked.h) without the logits: a
 * block per row. Forward: the maxima of both rows of logits, then Σ e^(zt−mt),
 * Σ e^(zm−mm) and Σ e^(zt−mt)(zt−zm), each logit recomputed as a dot product over
 * D; KL = a/St − lse_t + lse_m. Backward: the coefficients dkl·(q_v − p_v) of
 * CU_BLOCK vocabulary columns at a time into shared memory, then each thread adds
 * them into its dimensions d = t, t + CU_BLOCK, ... (at most CU_KL_DPT of them). */
#define CU_KL_DPT 4

struct cu_kl {
    int64_t rows, D, V;
    int trans_w, has_b;
};

CU_HD float cu_kl_logit(const struct cu_kl *k, const float *h, const float *w, const float *b,
                        int64_t v)
{
    float z = 0.0f;
    for (int64_t d = 0; d < k->D; d++)
        z += h[d] * (k->trans_w ? w[v * k->D + d] : w[d * k->V + v]);
    return b ? z + b[v] : z;
}

/* thread t's partials of a row: st[0] max zt, st[1] max zm (pass 0); with the
 * maxima m[0], m[1]: st[0] Σ e^(zt−mt), st[1] Σ e^(zm−mm), st[2] Σ e^(zt−mt)(zt−zm)
 * (pass 1) */
CU_HD void cu_kl_partial(const struct cu_kl *k, const float *ht, const float *hm, const float *w,
                         const float *b, int pass, const float *m, int t, float *st)
{
    st[0] = st[1] = pass ? 0.0f : -INFINITY;
    st[2] = 0.0f;
    for (int64_t v = t; v < k->V; v += CU_BLOCK) {
        float zt = cu_kl_logit(k, ht, w, b, v), zm = cu_kl_logit(k, hm, w, b, v);
        if (!pass) {
            st[0] = cu_red_step(CU_RED_MAX, st[0], zt);
            st[1] = cu_red_step(CU_RED_MAX, st[1], zm);
            continue;
        }
        float et = expf(zt - m[0]);
        st[0] += et;
        st[1] += expf(zm - m[1]);
        st[2] += et * (zt - zm);
    }
}

/* dkl·(q_v − p_v) from the forward's lse = {lse_t, lse_m} */
CU_HD float cu_kl_coef(const struct cu_kl *k, const float *ht, const float *hm, const float *w,
                       const float *b, const float *lse, float dkl, int64_t v)
{
    float zt = cu_kl_logit(k, ht, w, b, v), zm = cu_kl_logit(k, hm, w, b, v);
    return dkl * (expf(zm - lse[1]) - expf(zt - lse[0]));
}

/* W's element (d, v) */
CU_HD float cu_kl_w(const struct cu_kl *k, const float *w, int64_t d, int64_t v)
{
    return k->trans_w ? w[v * k->D + d] : w[d * k->V + v];
}

/* Gather along an axis: x as (outer, big, inner) elements of esize bytes, m
 * indices (int64 or int32) -> y as (outer, m, inner). An index outside
 * [-big, big) sets *bad and writes nothing for that element. */
struct cu_gather {
    int64_t outer, big, inner, m;
    int esize, idx64;
};

CU_HD int cu_gather_at(const struct cu_gather *g, const void *idx, int64_t i, int64_t *src)
{
    int64_t q = i % g->inner, j = (i / g->inner) % g->m, o = i / (g->inner * g->m);
    int64_t v = g->idx64 ? ((const int64_t *)idx)[j] : ((const int32_t *)idx)[j];
    if (v < -g->big || v >= g->big)
        return 0;
    if (v < 0)
        v += g->big;
    *src = (o * g->big + v) * g->inner + q;
    return 1;
}

/* Clip(x, lo, hi) for float32: x < lo -> lo, then > hi -> hi; NaN passes */
CU_HD float cu_clip(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* A batched GEMM in row-major terms: Y[b] (M, N) = alpha·op(A[b])·op(B[b]) (+ Y[b]
 * when accumulate: C was copied there first), b over the batch box dims with A and
 * B strides astr, bstr (0: broadcast) and Y contiguous. cu_gemm_calls turns it into
 * cuBLAS's column-major strided-batched calls (the host emulation runs the same
 * calls through a plain column-major sgemm). */
struct cu_gemm {
    int ta, tb, accumulate, rb;
    int64_t M, N, K, nb;
    float alpha;
    int64_t dims[CU_RANK], astr[CU_RANK], bstr[CU_RANK];
};

/* one cublasSgemmStridedBatched call: C(m×n, col-major) = alpha·op(A)op(B) + beta·C */
struct cu_sgemm_call {
    int transa, transb;
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc, count;
    float alpha, beta;
    int64_t a_off, b_off, c_off; /* elements from the operands' start */
};

/* ---- a node's launches (cu_lower.c) ---- */

enum cu_kind {
    CU_K_ZERO,   /* dst[0] = 0 (bytes) */
    CU_K_MAP,    /* dst[0] from src[0] (struct cu_map) */
    CU_K_REDUCE, /* dst[0] from src[0] */
    CU_K_ROWS,   /* softmax: src[0] -> dst[0]; layernorm: x, scale, bias? -> y, mean?, inv? */
    CU_K_SCAN,   /* dst[0] from src[0] */
    CU_K_GATHER, /* dst[0] from src[0] at the indices src[1] */
    CU_K_CLIP,   /* dst[0] from src[0], bounds src[1]?, src[2]? (one float each) */
    CU_K_GEMM,   /* dst[0] (+)= op(src[0]) op(src[1]) */
    CU_K_EW,     /* dst[0] from src[0..nin) */
    CU_K_KL,     /* ChunkedKL: src h_t, h_m, W, b? (from src[0] on: pos 0..3) -> kl, lse */
    CU_K_KLGRAD, /* ChunkedKLGrad: dkl, lse, h_t, h_m, W, b? -> dh_m */
    CU_K_EIN,    /* dst[0] from src[0], src[1]? */
    CU_K_TOPK,   /* dst[0] from src[0]: n elements, the k largest (cu_launch.bytes = k) */
    CU_K_CONV,   /* Conv x, w, b? -> y; ConvGradInput dy, w -> dx; ConvGradWeight x, dy -> dw;
                  * MaxPool x -> y; AveragePool x -> y; MaxPoolGrad x, dy -> dx;
                  * AveragePoolGrad dy -> dx: cu_launch.bytes says which (enum cu_win), n
                  * the output's elements */
};

#define CU_MAX_LAUNCHES 32

struct cu_launch {
    int kind;
    int src[3], dst[3]; /* the node's input / output positions, -1: none */
    int64_t bytes;      /* CU_K_ZERO */
    int64_t n;          /* CU_K_CLIP: elements */
    union {
        struct cu_map map;
        struct cu_reduce red;
        struct cu_rows rows;
        struct cu_scan scan;
        struct cu_gather gat;
        struct cu_gemm gemm;
        struct cu_ew ew;
        struct cu_kl kl;
        struct cu_ein ein;
        struct cu_conv conv;
    } u;
};

struct cu_lowered {
    int n;
    struct cu_launch l[CU_MAX_LAUNCHES];
};

#endif
