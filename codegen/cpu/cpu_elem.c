/* cpu_elem.c — float32 broadcasting binary ops (Add Sub Mul Div Pow Max Min
 * Sum), the comparisons of float32 (bool out), and Where.
 *
 * The output is walked as rows: adjacent dims merge when every operand steps
 * through them as through one (as in ref_binary.c), so a same-shape op is one
 * long row, a bias add is [rows, len] with the bias row repeated, and the
 * innermost loop sees stride 1 or 0 for each operand. Those cases get their own
 * loops so the compiler vectorises them. The pool splits the flat output range;
 * every element is computed the same way wherever a split falls, so results do
 * not depend on the thread count. Arithmetic is float32 exactly as the
 * reference's float32 paths, so Add..Min, the comparisons and Where are
 * bit-identical to cg_ref; Pow uses cpu_math.h's cpu_pow (within an ulp of the
 * reference's rounded double pow, exact for the exponents 2, 1, 0, -1 and 1/2). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu_impl.h"
#include "cpu_math.h"

#define NOP_MAX 3
#define GRAIN_CHEAP 32768 /* elements per thread below which waking the pool costs more */

/* ---- broadcast walk ------------------------------------------------------ */

struct walk {
    int rank, nop;       /* after merging; rank >= 1 */
    int64_t dims[IR_MAX_RANK];
    int64_t st[NOP_MAX][IR_MAX_RANK]; /* operand strides in elements, 0 where broadcast */
    int64_t len, numel;  /* row length (innermost merged dim), output elements */
};

/* position of a row: outer-dim indices and the operands' offsets of its first element */
struct pos {
    int64_t idx[IR_MAX_RANK];
    int64_t off[NOP_MAX];
};

static void walk_init(struct walk *w, const struct ir_tensor *o, int nop,
                      const struct ir_tensor *const *ops)
{
    int ro = o->rank > 0 ? o->rank : 1; /* a scalar is walked as shape [1] */
    int64_t dims[IR_MAX_RANK], st[NOP_MAX][IR_MAX_RANK];
    for (int i = 0; i < ro; i++)
        dims[i] = o->rank > 0 ? o->dims[i] : 1;
    for (int k = 0; k < nop; k++)
        ir_broadcast_strides(ops[k]->rank, ops[k]->dims, ro, dims, st[k]);
    memset(w, 0, sizeof *w);
    w->nop = nop;
    for (int i = 0; i < ro; i++) {
        int r = w->rank, merge = r > 0;
        for (int k = 0; k < nop && merge; k++)
            merge = w->st[k][r - 1] == st[k][i] * dims[i];
        if (!merge)
            w->rank++;
        w->dims[w->rank - 1] = merge ? w->dims[r - 1] * dims[i] : dims[i];
        for (int k = 0; k < nop; k++)
            w->st[k][w->rank - 1] = st[k][i];
    }
    w->numel = 1;
    for (int i = 0; i < w->rank; i++)
        w->numel *= w->dims[i];
    w->len = w->dims[w->rank - 1];
}

static void walk_seek(const struct walk *w, int64_t row, struct pos *p)
{
    memset(p, 0, sizeof *p);
    for (int i = w->rank - 2; i >= 0; i--) {
        p->idx[i] = row % w->dims[i];
        row /= w->dims[i];
        for (int k = 0; k < w->nop; k++)
            p->off[k] += p->idx[i] * w->st[k][i];
    }
}

/* advance to the next row: odometer over the outer dims */
static void walk_next(const struct walk *w, struct pos *p)
{
    for (int i = w->rank - 2; i >= 0; i--) {
        for (int k = 0; k < w->nop; k++)
            p->off[k] += w->st[k][i];
        if (++p->idx[i] < w->dims[i])
            return;
        for (int k = 0; k < w->nop; k++)
            p->off[k] -= w->st[k][i] * w->dims[i];
        p->idx[i] = 0;
    }
}

/* ---- binary rows --------------------------------------------------------- */

/* arithmetic (float32 out), then the comparisons (bool out) */
enum bop { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_LT, B_LE, B_GT, B_GE };

/* o[j] = EXPR(x = a[j*sa], z = b[j*sb]) with the stride-0/1 cases spelled out */
#define ROW_LOOPS(EXPR)                                                    \
    do {                                                                   \
        if (sa == 1 && sb == 1) {                                          \
            for (int64_t j = 0; j < cnt; j++) {                            \
                float x = a[j], z = b[j];                                  \
                o[j] = (EXPR);                                             \
            }                                                              \
        } else if (sa == 0 && sb == 1) {                                   \
            float x = a[0];                                                \
            for (int64_t j = 0; j < cnt; j++) {                            \
                float z = b[j];                                            \
                o[j] = (EXPR);                                             \
            }                                                              \
        } else if (sa == 1 && sb == 0) {                                   \
            float z = b[0];                                                \
            for (int64_t j = 0; j < cnt; j++) {                            \
                float x = a[j];                                            \
                o[j] = (EXPR);                                             \
            }                                                              \
        } else {                                                           \
            for (int64_t j = 0; j < cnt; j++) {                            \
                float x = a[j * sa], z = b[j * sb];                        \
                o[j] = (EXPR);                                             \
            }                                                              \
        }                                                                  \
    } while (0)

/* x^z through cpu_math.h's cpu_pow, whose selects vectorise in the ISA clones */
CPU_CLONES static void pow_loop(const float *a, int64_t sa, const float *b, int64_t sb,
                                float *restrict o, int64_t cnt)
{
    ROW_LOOPS(cpu_pow(x, z));
}

/* Pow with one exponent for the whole tensor.
 * The exponents autodiff and the minimality loss produce (p and p - 1 with
 * p = 1 or 2, and 1/2) get their own loops; these give exactly what the reference's
 * double pow rounds to, including pow(x, 0) = 1 for NaN and pow(-0, 1/2) = +0,
 * pow(-inf, 1/2) = +inf (sqrt would give -0 and NaN). */
static void row_pow(const float *a, int64_t sa, float e, float *restrict o, int64_t cnt)
{
    if (e == 2.0f) {
        for (int64_t j = 0; j < cnt; j++)
            o[j] = a[j * sa] * a[j * sa];
    } else if (e == 1.0f) {
        for (int64_t j = 0; j < cnt; j++)
            o[j] = a[j * sa];
    } else if (e == 0.0f) {
        for (int64_t j = 0; j < cnt; j++)
            o[j] = 1.0f;
    } else if (e == -1.0f) {
        for (int64_t j = 0; j < cnt; j++)
            o[j] = 1.0f / a[j * sa];
    } else if (e == 0.5f) {
        for (int64_t j = 0; j < cnt; j++) {
            float x = a[j * sa];
            o[j] = x == -INFINITY ? INFINITY : sqrtf(x) + 0.0f;
        }
    } else {
        pow_loop(a, sa, &e, 0, o, cnt);
    }
}

/* NaN propagates from either side, as in ref_binary.c (x != x: x is NaN) */
static void row_bin(enum bop op, const float *a, int64_t sa, const float *b, int64_t sb,
                    float *restrict o, int64_t cnt)
{
    switch (op) {
    case B_ADD: ROW_LOOPS(x + z); return;
    case B_SUB: ROW_LOOPS(x - z); return;
    case B_MUL: ROW_LOOPS(x * z); return;
    case B_DIV: ROW_LOOPS(x / z); return;
    case B_MAX: ROW_LOOPS(x != x || x > z ? x : z); return;
    case B_MIN: ROW_LOOPS(x != x || x < z ? x : z); return;
    case B_POW:
        if (sb == 0)
            row_pow(a, sa, b[0], o, cnt);
        else
            pow_loop(a, sa, b, sb, o, cnt);
        return;
    case B_EQ: case B_LT: case B_LE: case B_GT: case B_GE: return; /* row_cmp */
    }
}

/* NaN compares false, as in C and the reference */
static void row_cmp(enum bop op, const float *a, int64_t sa, const float *b, int64_t sb,
                    uint8_t *restrict o, int64_t cnt)
{
    switch (op) {
    case B_EQ: ROW_LOOPS(x == z); return;
    case B_LT: ROW_LOOPS(x < z); return;
    case B_LE: ROW_LOOPS(x <= z); return;
    case B_GT: ROW_LOOPS(x > z); return;
    case B_GE: ROW_LOOPS(x >= z); return;
    case B_ADD: case B_SUB: case B_MUL: case B_DIV: case B_POW: case B_MAX: case B_MIN:
        return; /* row_bin */
    }
}

struct bin_job {
    enum bop op;
    struct walk w;
    const float *a, *b;
    void *y; /* float, or bool for the comparisons */
};

static void bin_range(void *ctx, int64_t lo, int64_t hi)
{
    const struct bin_job *jb = ctx;
    const struct walk *w = &jb->w;
    int last = w->rank - 1;
    int64_t j = lo % w->len;
    struct pos p;
    walk_seek(w, lo / w->len, &p);
    while (lo < hi) {
        int64_t cnt = w->len - j < hi - lo ? w->len - j : hi - lo;
        int64_t sa = w->st[0][last], sb = w->st[1][last];
        const float *a = jb->a + p.off[0] + j * sa, *b = jb->b + p.off[1] + j * sb;
        if (jb->op >= B_EQ)
            row_cmp(jb->op, a, sa, b, sb, (uint8_t *)jb->y + lo, cnt);
        else
            row_bin(jb->op, a, sa, b, sb, (float *)jb->y + lo, cnt);
        lo += cnt;
        j = 0;
        walk_next(w, &p);
    }
}

/* float32 inputs; a float32 output, or bool for a comparison */
static int f32_operands(const struct ir_graph *g, const struct ir_node *n, enum bop op)
{
    for (uint32_t i = 0; i < n->n_in; i++)
        if (!cpu_in(g, n, i) || cpu_in(g, n, i)->dtype != IR_F32)
            return 0;
    return cpu_out(g, n, 0) && cpu_out(g, n, 0)->dtype == (op >= B_EQ ? IR_BOOL : IR_F32);
}

static int binary(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                  void *const *out, enum bop op)
{
    if (n->n_in != 2 || !f32_operands(g, n, op))
        return CPU_DELEGATE;
    if (!out[0])
        return ST_OK;
    const struct ir_tensor *ops[2] = {cpu_in(g, n, 0), cpu_in(g, n, 1)};
    struct bin_job jb = {.op = op, .a = in[0], .b = in[1], .y = out[0]};
    walk_init(&jb.w, cpu_out(g, n, 0), 2, ops);
    if (jb.w.numel > 0)
        cpu_parallel(jb.w.numel, op == B_POW ? GRAIN_CHEAP / 8 : GRAIN_CHEAP, bin_range, &jb);
    return ST_OK;
}

CPU_KERNEL(Add) { return binary(g, n, in, out, B_ADD); }
CPU_KERNEL(Sub) { return binary(g, n, in, out, B_SUB); }
CPU_KERNEL(Mul) { return binary(g, n, in, out, B_MUL); }
CPU_KERNEL(Div) { return binary(g, n, in, out, B_DIV); }
CPU_KERNEL(Pow) { return binary(g, n, in, out, B_POW); }
/* the variadic ops with exactly two inputs: the reference folds left to right,
 * which for two inputs is the binary op */
CPU_KERNEL(Max) { return binary(g, n, in, out, B_MAX); }
CPU_KERNEL(Min) { return binary(g, n, in, out, B_MIN); }
CPU_KERNEL(Sum) { return binary(g, n, in, out, B_ADD); }
CPU_KERNEL(Equal) { return binary(g, n, in, out, B_EQ); }
CPU_KERNEL(Less) { return binary(g, n, in, out, B_LT); }
CPU_KERNEL(LessOrEqual) { return binary(g, n, in, out, B_LE); }
CPU_KERNEL(Greater) { return binary(g, n, in, out, B_GT); }
CPU_KERNEL(GreaterOrEqual) { return binary(g, n, in, out, B_GE); }

/* ---- Where ------------------------------------------------------------------ */

struct where_job {
    struct walk w;
    const uint8_t *c;
    const uint32_t *x, *y; /* any 4-byte element: copied as bits */
    uint32_t *o;
};

/* both sides are loaded before the select, so the loops have no branches */
static void where_row(const uint8_t *c, int64_t sc, const uint32_t *x, int64_t sx,
                      const uint32_t *y, int64_t sy, uint32_t *restrict o, int64_t cnt)
{
    if (sc == 1 && sx == 1 && sy == 1) {
        for (int64_t j = 0; j < cnt; j++) {
            uint32_t xv = x[j], yv = y[j];
            o[j] = c[j] ? xv : yv;
        }
    } else if (sc == 1 && sx == 1 && sy == 0) {
        uint32_t yv = y[0];
        for (int64_t j = 0; j < cnt; j++) {
            uint32_t xv = x[j];
            o[j] = c[j] ? xv : yv;
        }
    } else if (sc == 1 && sx == 0 && sy == 1) {
        uint32_t xv = x[0];
        for (int64_t j = 0; j < cnt; j++) {
            uint32_t yv = y[j];
            o[j] = c[j] ? xv : yv;
        }
    } else {
        for (int64_t j = 0; j < cnt; j++) {
            uint32_t xv = x[j * sx], yv = y[j * sy];
            o[j] = c[j * sc] ? xv : yv;
        }
    }
}

static void where_range(void *ctx, int64_t lo, int64_t hi)
{
    const struct where_job *jb = ctx;
    const struct walk *w = &jb->w;
    int last = w->rank - 1;
    int64_t j = lo % w->len, sc = w->st[0][last], sx = w->st[1][last], sy = w->st[2][last];
    struct pos p;
    walk_seek(w, lo / w->len, &p);
    while (lo < hi) {
        int64_t cnt = w->len - j < hi - lo ? w->len - j : hi - lo;
        where_row(jb->c + p.off[0] + j * sc, sc, jb->x + p.off[1] + j * sx, sx,
                  jb->y + p.off[2] + j * sy, sy, jb->o + lo, cnt);
        lo += cnt;
        j = 0;
        walk_next(w, &p);
    }
}

/* out = cond ? x : y, all three broadcast; 4-byte element types only */
CPU_KERNEL(Where)
{
    const struct ir_tensor *ops[3] = {cpu_in(g, n, 0), cpu_in(g, n, 1), cpu_in(g, n, 2)};
    const struct ir_tensor *ty = cpu_out(g, n, 0);
    if (!ty || ops[0]->dtype != IR_BOOL || ir_dtype_size(ty->dtype) != 4)
        return CPU_DELEGATE;
    if (!out[0])
        return ST_OK;
    struct where_job jb = {.c = in[0], .x = in[1], .y = in[2], .o = out[0]};
    walk_init(&jb.w, ty, 3, ops);
    if (jb.w.numel > 0)
        cpu_parallel(jb.w.numel, GRAIN_CHEAP, where_range, &jb);
    return ST_OK;
}
