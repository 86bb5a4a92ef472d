/* ref_binary.c — reference kernels for the broadcasting elementwise ops
 * (ops.def group "binary / variadic broadcasting elementwise", Add..Where).
 *
 * Every op walks the output row by row (a row = the innermost dim after
 * merging dims that all operands step through contiguously); each operand
 * keeps its own offset and stride, 0 along broadcast dims. Per row the
 * element loop picks one arithmetic class for the whole node:
 *   float32 fast loop, float (any float dtype, through double, one rounding),
 *   signed integers (int64, wrapping like C), unsigned integers and bool (uint64).
 * Variadic Max/Min/Sum/Mean fold their inputs pairwise into the output. */
#include <math.h>
#include <string.h>

#include "ref_impl.h"

/* the binary operation, independent of dtype */
enum bop {
    B_ADD, B_SUB, B_MUL, B_DIV, B_POW,
    B_MOD,  /* fmod=0: result takes the divisor's sign (integers only) */
    B_FMOD, /* fmod=1: result takes the dividend's sign, like C fmod and % */
    B_PRELU,
    B_EQ, B_LT, B_LE, B_GT, B_GE,
    B_AND, B_OR, B_XOR,
    B_MAX, B_MIN,
};

/* a tensor operand: dtype, shape and data */
struct opnd {
    enum ir_dtype dt;
    int rank;
    const int64_t *dims;
    void *p;
};

static struct opnd opnd_of(const struct ir_tensor *t, void *p)
{
    return (struct opnd){t->dtype, t->rank, t->dims, p};
}

static int dt_unsigned(enum ir_dtype dt)
{
    return dt == IR_U8 || dt == IR_U16 || dt == IR_U32 || dt == IR_U64 || dt == IR_BOOL;
}

/* ---- broadcast walk ------------------------------------------------------ */

#define MAX_OPS 3

struct walk {
    int rank, nop;                     /* after merging; rank >= 1 */
    int64_t dims[IR_MAX_RANK];
    int64_t st[MAX_OPS][IR_MAX_RANK];  /* operand strides (elements), 0 where broadcast */
    int64_t idx[IR_MAX_RANK];          /* index of the current row (last dim unused) */
    int64_t off[MAX_OPS];              /* operand offsets of the current row's first element */
    int64_t len;                       /* row length: the innermost dim */
};

/* Set up the walk of output shape o over nop operands; returns the row count. */
static int64_t walk_init(struct walk *w, const struct opnd *o, int nop, const struct opnd *ops)
{
    int ro = o->rank > 0 ? o->rank : 1; /* a scalar is walked as shape [1] */
    int64_t dims[IR_MAX_RANK], st[MAX_OPS][IR_MAX_RANK];
    for (int i = 0; i < ro; i++)
        dims[i] = o->rank > 0 ? o->dims[i] : 1;
    for (int k = 0; k < nop; k++)
        ir_broadcast_strides(ops[k].rank, ops[k].dims, ro, dims, st[k]);
    /* merge dim i into the one before it when every operand steps through both
     * as through one dim (stride_outer == stride_inner * dim_inner) */
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
    int64_t numel = 1;
    for (int i = 0; i < w->rank; i++)
        numel *= w->dims[i];
    w->len = w->dims[w->rank - 1];
    return w->len ? numel / w->len : 0;
}

/* advance to the next row: odometer over the outer dims */
static void walk_next(struct walk *w)
{
    for (int i = w->rank - 2; i >= 0; i--) {
        for (int k = 0; k < w->nop; k++)
            w->off[k] += w->st[k][i];
        if (++w->idx[i] < w->dims[i])
            return;
        for (int k = 0; k < w->nop; k++)
            w->off[k] -= w->st[k][i] * w->dims[i];
        w->idx[i] = 0;
    }
}

/* ---- scalar operations --------------------------------------------------- */

static double bin_f(enum bop op, double a, double b)
{
    switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return pow(a, b);
    case B_MOD: /* rejected for floats by the shape rule; numpy semantics anyway */
        return b == 0 ? (double)NAN : a - floor(a / b) * b;
    case B_FMOD: return fmod(a, b);
    case B_PRELU: return a < 0 ? a * b : a;
    case B_EQ: return a == b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    case B_AND: return a != 0 && b != 0;
    case B_OR: return a != 0 || b != 0;
    case B_XOR: return (a != 0) != (b != 0);
    case B_MAX: return isnan(a) || a > b ? a : b; /* NaN propagates, as in numpy */
    case B_MIN: return isnan(a) || a < b ? a : b;
    }
    return 0;
}

/* a^e for integers, wrapping; a negative e gives trunc(1 / a^|e|) */
static int64_t ipow(int64_t a, int64_t e)
{
    if (e < 0)
        return a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)a;
    for (uint64_t k = (uint64_t)e; k; k >>= 1, base *= base)
        if (k & 1)
            r *= base;
    return (int64_t)r;
}

/* Signed integers. Sums and products wrap (computed unsigned: no UB); division
 * by zero gives 0 (ONNX leaves it undefined) and INT64_MIN / -1 wraps. */
static int64_t bin_s(enum bop op, int64_t a, int64_t b)
{
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    switch (op) {
    case B_ADD: return (int64_t)(ua + ub);
    case B_SUB: return (int64_t)(ua - ub);
    case B_MUL: return (int64_t)(ua * ub);
    case B_DIV: return b == 0 ? 0 : b == -1 ? (int64_t)(0 - ua) : a / b;
    case B_POW: return ipow(a, b);
    case B_MOD: {
        int64_t r = b == 0 || b == -1 ? 0 : a % b;
        return r != 0 && (r < 0) != (b < 0) ? r + b : r;
    }
    case B_FMOD: return b == 0 || b == -1 ? 0 : a % b;
    case B_PRELU: return a < 0 ? (int64_t)(ua * ub) : a;
    case B_EQ: return a == b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    case B_AND: return a && b;
    case B_OR: return a || b;
    case B_XOR: return !a != !b;
    case B_MAX: return a > b ? a : b;
    case B_MIN: return a < b ? a : b;
    }
    return 0;
}

/* unsigned integers and bool */
static uint64_t bin_u(enum bop op, uint64_t a, uint64_t b)
{
    switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return b ? a / b : 0;
    case B_POW: return (uint64_t)ipow((int64_t)a, (int64_t)b);
    case B_MOD: case B_FMOD: return b ? a % b : 0;
    case B_PRELU: return a; /* never negative */
    case B_EQ: return a == b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    case B_AND: return a && b;
    case B_OR: return a || b;
    case B_XOR: return !a != !b;
    case B_MAX: return a > b ? a : b;
    case B_MIN: return a < b ? a : b;
    }
    return 0;
}

/* ---- row loops ----------------------------------------------------------- */

enum cls { C_F32, C_FLOAT, C_SINT, C_UINT };

/* one row: out[o + j] = a[ia + j*sa] op b[ib + j*sb], j < n */
struct row {
    int64_t n, o, ia, sa, ib, sb;
};

/* float32 in, float32 out, for the ops that have a direct loop */
static int f32_direct(enum bop op)
{
    return op == B_ADD || op == B_SUB || op == B_MUL || op == B_DIV || op == B_MAX ||
           op == B_MIN || op == B_PRELU;
}

static enum cls pick_class(enum bop op, const struct opnd *a, const struct opnd *b,
                           const struct opnd *o)
{
    if (a->dt == IR_F32 && b->dt == IR_F32 && o->dt == IR_F32 && f32_direct(op))
        return C_F32;
    if (ir_dtype_is_float(a->dt) || ir_dtype_is_float(b->dt)) /* b alone: Pow(int, float) */
        return C_FLOAT;
    if (op == B_POW || !dt_unsigned(a->dt)) /* integer Pow wraps the same either way */
        return C_SINT;
    return C_UINT;
}

static void row_f32(enum bop op, const float *a, const float *b, float *o, const struct row *r)
{
    int64_t n = r->n, sa = r->sa, sb = r->sb;
    a += r->ia, b += r->ib, o += r->o;
    switch (op) {
    case B_ADD: for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] + b[j * sb]; return;
    case B_SUB: for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] - b[j * sb]; return;
    case B_MUL: for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] * b[j * sb]; return;
    case B_DIV: for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] / b[j * sb]; return;
    case B_PRELU:
        for (int64_t j = 0; j < n; j++)
            o[j] = a[j * sa] < 0.0f ? a[j * sa] * b[j * sb] : a[j * sa];
        return;
    case B_MAX:
        for (int64_t j = 0; j < n; j++)
            o[j] = isnan(a[j * sa]) || a[j * sa] > b[j * sb] ? a[j * sa] : b[j * sb];
        return;
    case B_MIN:
        for (int64_t j = 0; j < n; j++)
            o[j] = isnan(a[j * sa]) || a[j * sa] < b[j * sb] ? a[j * sa] : b[j * sb];
        return;
    case B_POW: case B_MOD: case B_FMOD: case B_EQ: case B_LT: case B_LE: case B_GT: case B_GE:
    case B_AND: case B_OR: case B_XOR:
        return; /* never picked: f32_direct() */
    }
}

static void row_any(enum cls c, enum bop op, const struct opnd *a, const struct opnd *b,
                    const struct opnd *o, const struct row *r)
{
    int64_t ia = r->ia, ib = r->ib;
    for (int64_t j = 0; j < r->n; j++, ia += r->sa, ib += r->sb) {
        switch (c) {
        case C_F32: case C_FLOAT:
            ir_store_f64(o->dt, o->p, r->o + j,
                         bin_f(op, ir_load_f64(a->dt, a->p, ia), ir_load_f64(b->dt, b->p, ib)));
            break;
        case C_SINT:
            ir_store_i64(o->dt, o->p, r->o + j,
                         bin_s(op, ir_load_i64(a->dt, a->p, ia), ir_load_i64(b->dt, b->p, ib)));
            break;
        case C_UINT:
            ir_store_i64(o->dt, o->p, r->o + j,
                         (int64_t)bin_u(op, (uint64_t)ir_load_i64(a->dt, a->p, ia),
                                        (uint64_t)ir_load_i64(b->dt, b->p, ib)));
            break;
        }
    }
}

/* o = a op b with broadcasting; a may alias o when it has o's shape */
static void apply(enum bop op, const struct opnd *a, const struct opnd *b, const struct opnd *o)
{
    struct walk w;
    const struct opnd ops[2] = {*a, *b};
    int64_t rows = walk_init(&w, o, 2, ops);
    enum cls c = pick_class(op, a, b, o);
    /* rows x len output elements, row-major */
    for (int64_t r = 0; r < rows; r++, walk_next(&w)) {
        struct row rw = {w.len, r * w.len, w.off[0], w.st[0][w.rank - 1], w.off[1],
                         w.st[1][w.rank - 1]};
        if (c == C_F32)
            row_f32(op, a->p, b->p, o->p, &rw);
        else
            row_any(c, op, a, b, o, &rw);
    }
}

/* the two-input kernels */
static int binary(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                  void *const *out, enum bop op)
{
    const struct ir_tensor *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    struct opnd a = opnd_of(ref_in(g, n, 0), in[0]), b = opnd_of(ref_in(g, n, 1), in[1]);
    struct opnd o = opnd_of(y, out[0]);
    apply(op, &a, &b, &o);
    return ST_OK;
}

REF_KERNEL(Add) { return binary(g, n, in, out, B_ADD); }
REF_KERNEL(Sub) { return binary(g, n, in, out, B_SUB); }
REF_KERNEL(Mul) { return binary(g, n, in, out, B_MUL); }
REF_KERNEL(Div) { return binary(g, n, in, out, B_DIV); }
REF_KERNEL(Pow) { return binary(g, n, in, out, B_POW); }

REF_KERNEL(Mod)
{
    return binary(g, n, in, out, ir_attr_int(n, "fmod", 0) ? B_FMOD : B_MOD);
}

/* before opset 7 a 1-D slope of C values runs along axis 1: view it as [C, 1, ..., 1] */
REF_KERNEL(PRelu)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *s = ref_in(g, n, 1), *y = ref_out(g, n, 0);
    if (!(n->opset < 7 && s->rank == 1 && x->rank >= 2 && s->dims[0] == x->dims[1]))
        return binary(g, n, in, out, B_PRELU);
    if (!y || !out[0])
        return ST_OK;
    int64_t dims[IR_MAX_RANK];
    for (int i = 1; i < x->rank; i++)
        dims[i - 1] = i == 1 ? s->dims[0] : 1;
    struct opnd a = opnd_of(x, in[0]), o = opnd_of(y, out[0]);
    struct opnd b = {s->dtype, x->rank - 1, dims, in[1]};
    apply(B_PRELU, &a, &b, &o);
    return ST_OK;
}
REF_KERNEL(Equal) { return binary(g, n, in, out, B_EQ); }
REF_KERNEL(Less) { return binary(g, n, in, out, B_LT); }
REF_KERNEL(LessOrEqual) { return binary(g, n, in, out, B_LE); }
REF_KERNEL(Greater) { return binary(g, n, in, out, B_GT); }
REF_KERNEL(GreaterOrEqual) { return binary(g, n, in, out, B_GE); }
REF_KERNEL(And) { return binary(g, n, in, out, B_AND); }
REF_KERNEL(Or) { return binary(g, n, in, out, B_OR); }
REF_KERNEL(Xor) { return binary(g, n, in, out, B_XOR); }

/* ---- variadic ------------------------------------------------------------ */

/* o = a broadcast to o's shape (same dtype): element copies */
static void bcast_copy(const struct opnd *a, const struct opnd *o)
{
    struct walk w;
    size_t sz = ir_dtype_size(o->dt);
    int64_t rows = walk_init(&w, o, 1, a);
    char *dst = o->p;
    const char *src = a->p;
    for (int64_t r = 0; r < rows; r++, walk_next(&w)) /* rows x len elements */
        for (int64_t j = 0; j < w.len; j++)
            memcpy(dst + (size_t)(r * w.len + j) * sz,
                   src + (size_t)(w.off[0] + j * w.st[0][w.rank - 1]) * sz, sz);
}

/* out = in0 op in1 op ... (left to right, rounding to the output dtype at each
 * step as a sequential implementation does); returns the number of inputs */
static int64_t fold_inputs(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                           void *const *out, enum bop op)
{
    struct opnd o = opnd_of(ref_out(g, n, 0), out[0]);
    int64_t k = 0;
    for (uint32_t i = 0; i < n->n_in; i++) {
        const struct ir_tensor *t = ref_in(g, n, i);
        if (!t)
            continue;
        struct opnd a = opnd_of(t, in[i]);
        if (k++ == 0)
            bcast_copy(&a, &o);
        else
            apply(op, &o, &a, &o);
    }
    return k;
}

static int variadic(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                    void *const *out, enum bop op)
{
    if (ref_out(g, n, 0) && out[0])
        fold_inputs(g, n, in, out, op);
    return ST_OK;
}

REF_KERNEL(Max) { return variadic(g, n, in, out, B_MAX); }
REF_KERNEL(Min) { return variadic(g, n, in, out, B_MIN); }
REF_KERNEL(Sum) { return variadic(g, n, in, out, B_ADD); }

/* Sum, then divide by the input count (float types only) */
REF_KERNEL(Mean)
{
    const struct ir_tensor *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    double k = (double)fold_inputs(g, n, in, out, B_ADD);
    int64_t cnt = ir_numel(y);
    for (int64_t i = 0; i < cnt; i++)
        ir_store_f64(y->dtype, out[0], i, ir_load_f64(y->dtype, out[0], i) / k);
    return ST_OK;
}

/* ---- Where --------------------------------------------------------------- */

/* out = cond ? x : y, all three broadcast; elements are copied as bytes */
REF_KERNEL(Where)
{
    const struct ir_tensor *y = ref_out(g, n, 0);
    if (!y || !out[0])
        return ST_OK;
    struct opnd ops[3] = {opnd_of(ref_in(g, n, 0), in[0]), opnd_of(ref_in(g, n, 1), in[1]),
                          opnd_of(ref_in(g, n, 2), in[2])};
    struct opnd o = opnd_of(y, out[0]);
    struct walk w;
    int64_t rows = walk_init(&w, &o, 3, ops);
    size_t sz = ir_dtype_size(o.dt);
    const uint8_t *c = in[0];
    int last = w.rank - 1;
    /* rows x len output elements */
    for (int64_t r = 0; r < rows; r++, walk_next(&w)) {
        int64_t ic = w.off[0], ix = w.off[1], iy = w.off[2];
        for (int64_t j = 0; j < w.len; j++) {
            int pick = c[ic] ? 1 : 2;
            int64_t src = pick == 1 ? ix : iy, io = r * w.len + j;
            if (sz == 4) /* float32 and the other 4-byte types */
                ((uint32_t *)out[0])[io] = ((const uint32_t *)in[pick])[src];
            else
                memcpy((char *)out[0] + (size_t)io * sz,
                       (const char *)in[pick] + (size_t)src * sz, sz);
            ic += w.st[0][last], ix += w.st[1][last], iy += w.st[2][last];
        }
    }
    return ST_OK;
}
