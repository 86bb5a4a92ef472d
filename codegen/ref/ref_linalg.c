/* ref_linalg.c — reference kernels for MatMul, Gemm and Einsum.
 *
 * MatMul and Gemm are built from one primitive: compute one output row,
 * acc[j] = sum_k a[k] * b[k][j], with double accumulators for floats and
 * wrapping int64 for integers. float32 is read in place; other float types
 * are widened to double first, integers to int64. */
#include <stdlib.h>
#include <string.h>

#include "einsum_parse.h"
#include "ref_impl.h"

/* acc[0..N) = sum_k a[k*as] * b[k*brs + j*bcs]. When B's rows are contiguous
 * (bcs == 1) stream over them (i-k-j order); otherwise (B transposed) take a
 * dot product along k for each j. */
static void row_f32(const float *a, int64_t as, const float *b, int64_t brs, int64_t bcs,
                    int64_t K, int64_t N, double *acc)
{
    if (bcs != 1) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)a[k * as] * (double)b[k * brs + j * bcs];
            acc[j] = s;
        }
        return;
    }
    for (int64_t j = 0; j < N; j++)
        acc[j] = 0;
    for (int64_t k = 0; k < K; k++) {
        double av = (double)a[k * as];
        const float *br = b + k * brs;
        for (int64_t j = 0; j < N; j++)
            acc[j] += av * (double)br[j];
    }
}

static void row_f64(const double *a, int64_t as, const double *b, int64_t brs, int64_t bcs,
                    int64_t K, int64_t N, double *acc)
{
    for (int64_t j = 0; j < N; j++)
        acc[j] = 0;
    for (int64_t k = 0; k < K; k++) {
        double av = a[k * as];
        for (int64_t j = 0; j < N; j++)
            acc[j] += av * b[k * brs + j * bcs];
    }
}

/* integers wrap modulo 2^64 (then to the element width when stored) */
static void row_i64(const int64_t *a, int64_t as, const int64_t *b, int64_t brs, int64_t bcs,
                    int64_t K, int64_t N, int64_t *acc)
{
    for (int64_t j = 0; j < N; j++)
        acc[j] = 0;
    for (int64_t k = 0; k < K; k++) {
        uint64_t av = (uint64_t)a[k * as];
        for (int64_t j = 0; j < N; j++)
            acc[j] = (int64_t)((uint64_t)acc[j] + av * (uint64_t)b[k * brs + j * bcs]);
    }
}

/* The two operands in the form the row primitive reads, plus a row buffer. */
struct mm_ops {
    enum { MM_F32, MM_F64, MM_I64 } cls;
    const void *a, *b;     /* what the row primitive reads (original or widened) */
    void *wa, *wb;         /* widened copies we own (NULL for float32) */
    double *accd;
    int64_t *acci;
};

static void *widen(enum ir_dtype dt, const void *p, int64_t cnt, int to_int)
{
    size_t sz = to_int ? sizeof(int64_t) : sizeof(double);
    void *w = malloc((size_t)(cnt ? cnt : 1) * sz);
    for (int64_t i = 0; w && i < cnt; i++) {
        if (to_int)
            ((int64_t *)w)[i] = ir_load_i64(dt, p, i);
        else
            ((double *)w)[i] = ir_load_f64(dt, p, i);
    }
    return w;
}

static int mm_ops_init(struct mm_ops *o, const struct ir_tensor *ta, const void *a,
                       const struct ir_tensor *tb, const void *b, int64_t N)
{
    memset(o, 0, sizeof *o);
    enum ir_dtype dt = ta->dtype;
    o->cls = dt == IR_F32 ? MM_F32 : ir_dtype_is_float(dt) ? MM_F64 : MM_I64;
    o->a = a;
    o->b = b;
    if (o->cls != MM_F32) {
        o->a = o->wa = widen(dt, a, ir_numel(ta), o->cls == MM_I64);
        o->b = o->wb = widen(dt, b, ir_numel(tb), o->cls == MM_I64);
    }
    o->accd = malloc((size_t)(N ? N : 1) * sizeof *o->accd);
    o->acci = malloc((size_t)(N ? N : 1) * sizeof *o->acci);
    return o->a && o->b && o->accd && o->acci ? ST_OK : ST_ERR_NOMEM;
}

static void mm_ops_free(struct mm_ops *o)
{
    free(o->wa);
    free(o->wb);
    free(o->accd);
    free(o->acci);
}

/* one output row into o->accd (floats) or o->acci (integers); offsets in elements */
static void mm_row(struct mm_ops *o, int64_t aoff, int64_t as, int64_t boff, int64_t brs,
                   int64_t bcs, int64_t K, int64_t N)
{
    switch (o->cls) {
    case MM_F32:
        row_f32((const float *)o->a + aoff, as, (const float *)o->b + boff, brs, bcs, K, N,
                o->accd);
        return;
    case MM_F64:
        row_f64((const double *)o->a + aoff, as, (const double *)o->b + boff, brs, bcs, K, N,
                o->accd);
        return;
    case MM_I64:
        row_i64((const int64_t *)o->a + aoff, as, (const int64_t *)o->b + boff, brs, bcs, K, N,
                o->acci);
        return;
    }
}

/* row-major index lin of the box dims[0..r) -> offset with strides str */
static int64_t box_offset(int64_t lin, int r, const int64_t *dims, const int64_t *str)
{
    int64_t off = 0;
    for (int i = r - 1; i >= 0; i--) {
        off += (lin % dims[i]) * str[i];
        lin /= dims[i];
    }
    return off;
}

/* Y (batch..., M, N) = A (batch..., M, K) @ B (batch..., K, N); batch dims
 * broadcast, 1-D operands promoted as numpy does (already reflected in Y). A built
 * program's MatMul may read A or B transposed in its last two dims (ir_matmul_trans). */
REF_KERNEL(MatMul)
{
    const struct ir_tensor *ta = ref_in(g, n, 0), *tb = ref_in(g, n, 1), *ty = ref_out(g, n, 0);
    int trA, trB;
    ir_matmul_trans(n, ta, tb, &trA, &trB);
    int64_t M = ta->rank >= 2 ? ta->dims[ta->rank - 2 + trA] : 1;
    int64_t K = ta->dims[ta->rank - 1 - trA];
    int64_t N = tb->rank >= 2 ? tb->dims[tb->rank - 1 - trB] : 1;
    /* op(A)[i][k] = a[i*ars + k*as]; op(B)[k][j] = b[k*brs + j*bcs] */
    int64_t ars = trA ? 1 : K, as = trA ? M : 1, brs = trB ? 1 : N, bcs = trB ? K : 1;
    int rb = ty->rank - (ta->rank >= 2) - (tb->rank >= 2); /* batch rank of Y */
    int64_t astr[IR_MAX_RANK], bstr[IR_MAX_RANK], nbatch = 1;
    ir_broadcast_strides(ta->rank > 2 ? ta->rank - 2 : 0, ta->dims, rb, ty->dims, astr);
    ir_broadcast_strides(tb->rank > 2 ? tb->rank - 2 : 0, tb->dims, rb, ty->dims, bstr);
    for (int i = 0; i < rb; i++)
        nbatch *= ty->dims[i];
    struct mm_ops o;
    int st = mm_ops_init(&o, ta, in[0], tb, in[1], N);
    for (int64_t bi = 0; !st && bi < nbatch; bi++) {
        int64_t aoff = box_offset(bi, rb, ty->dims, astr) * M * K;
        int64_t boff = box_offset(bi, rb, ty->dims, bstr) * K * N;
        for (int64_t i = 0; i < M; i++) {
            int64_t yoff = (bi * M + i) * N;
            mm_row(&o, aoff + i * ars, as, boff, brs, bcs, K, N);
            for (int64_t j = 0; j < N; j++) {
                if (o.cls == MM_F32)
                    ((float *)out[0])[yoff + j] = (float)o.accd[j];
                else if (o.cls == MM_F64)
                    ir_store_f64(ty->dtype, out[0], yoff + j, o.accd[j]);
                else
                    ir_store_i64(ty->dtype, out[0], yoff + j, o.acci[j]);
            }
        }
    }
    mm_ops_free(&o);
    return st;
}

/* Y (M, N) = alpha * op(A) @ op(B) + beta * C, C broadcast to (M, N) */
REF_KERNEL(Gemm)
{
    const struct ir_tensor *ta = ref_in(g, n, 0), *tb = ref_in(g, n, 1), *tc = ref_in(g, n, 2);
    const struct ir_tensor *ty = ref_out(g, n, 0);
    int trA = ir_attr_int(n, "transA", 0) != 0, trB = ir_attr_int(n, "transB", 0) != 0;
    double alpha = ir_attr_float(n, "alpha", 1.0), beta = ir_attr_float(n, "beta", 1.0);
    int64_t M = ty->dims[0], N = ty->dims[1], K = ta->dims[trA ? 0 : 1];
    /* op(A)[i][k] = a[i*ars + k*as]; op(B)[k][j] = b[k*brs + j*bcs] */
    int64_t ars = trA ? 1 : K, as = trA ? M : 1, brs = trB ? 1 : N, bcs = trB ? K : 1;
    int64_t cstr[2] = {0, 0};
    int has_c = tc && in[2] && beta != 0.0;
    if (has_c)
        ir_broadcast_strides(tc->rank, tc->dims, 2, ty->dims, cstr);
    struct mm_ops o;
    int st = mm_ops_init(&o, ta, in[0], tb, in[1], N);
    for (int64_t i = 0; !st && i < M; i++) {
        mm_row(&o, i * ars, as, 0, brs, bcs, K, N);
        for (int64_t j = 0; j < N; j++) {
            double v = o.cls == MM_I64 ? (double)o.acci[j] : o.accd[j];
            v *= alpha;
            if (has_c)
                v += beta * ir_load_f64(tc->dtype, in[2], i * cstr[0] + j * cstr[1]);
            if (o.cls == MM_F32)
                ((float *)out[0])[i * N + j] = (float)v;
            else
                ir_store_f64(ty->dtype, out[0], i * N + j, v);
        }
    }
    mm_ops_free(&o);
    return st;
}

/* ---- Einsum: one loop over every combination of index values ------------ */

/* acc (output numel) += prod over operands, for every index combination */
static void ein_run(const struct ein_loop *L, int nops, void *const *x, int is_f, void *acc)
{
    int64_t total = 1, idx[EIN_MAX_LAB] = {0}, off[EIN_MAX_OPS] = {0}, oo = 0;
    for (int i = 0; i < L->nl; i++)
        total *= L->size[i];
    for (int64_t t = 0; t < total; t++) {
        if (is_f) {
            double p = 1;
            for (int k = 0; k < nops; k++)
                p *= ((const double *)x[k])[off[k]];
            ((double *)acc)[oo] += p;
        } else {
            uint64_t p = 1;
            for (int k = 0; k < nops; k++)
                p *= (uint64_t)((const int64_t *)x[k])[off[k]];
            ((uint64_t *)acc)[oo] += p;
        }
        for (int i = L->nl - 1; i >= 0; i--) { /* odometer, last label fastest */
            oo += L->ostr[i];
            for (int k = 0; k < nops; k++)
                off[k] += L->str[k][i];
            if (++idx[i] < L->size[i])
                break;
            oo -= L->ostr[i] * L->size[i];
            for (int k = 0; k < nops; k++)
                off[k] -= L->str[k][i] * L->size[i];
            idx[i] = 0;
        }
    }
}

REF_KERNEL(Einsum)
{
    const struct ir_tensor *t[EIN_MAX_OPS], *ty = ref_out(g, n, 0);
    int ranks[EIN_MAX_OPS], nops = (int)n->n_in;
    int64_t dims[EIN_MAX_OPS][IR_MAX_RANK];
    for (int k = 0; k < nops; k++) {
        t[k] = ref_in(g, n, (uint32_t)k);
        ranks[k] = t[k]->rank;
        memcpy(dims[k], t[k]->dims, sizeof dims[k]);
    }
    struct ein_spec sp;
    char err[256];
    if (ein_parse(ir_attr_str(n, "equation", ""), nops, ranks,
                  (const int64_t(*)[IR_MAX_RANK])dims, &sp, err, sizeof err) != ST_OK)
        return ST_ERR_INVALID;
    struct ein_loop L;
    ein_loop_build(&sp, t, &L);
    int is_f = ir_dtype_is_float(ty->dtype), st = ST_OK;
    int64_t ny = ir_numel(ty);
    void *x[EIN_MAX_OPS] = {0}, *acc = calloc((size_t)(ny ? ny : 1), 8);
    for (int k = 0; k < nops; k++)
        x[k] = widen(t[k]->dtype, in[k], ir_numel(t[k]), !is_f);
    for (int k = 0; k < nops; k++)
        if (!x[k])
            st = ST_ERR_NOMEM;
    if (!acc)
        st = ST_ERR_NOMEM;
    if (!st) {
        ein_run(&L, nops, x, is_f, acc);
        for (int64_t i = 0; i < ny; i++) {
            if (is_f)
                ir_store_f64(ty->dtype, out[0], i, ((double *)acc)[i]);
            else
                ir_store_i64(ty->dtype, out[0], i, ((int64_t *)acc)[i]);
        }
    }
    for (int k = 0; k < nops; k++)
        free(x[k]);
    free(acc);
    return st;
}
