/* cu_lower.c — nodes as the CUDA target's generic launches (cu_lower.h).
 *
 * Shape ops become strided copies (one per input of a Concat, one per output of a
 * Split), reductions a block-per-output reduce over the reduced box, Softmax and
 * LayerNormalization a block-per-row kernel, MatMul and Gemm cuBLAS calls (Gemm's C
 * copied into Y first, scaled by beta). Elementwise ops never reach this file: the
 * target runs them as the emitter's kernels (min_fuse 1). */
#include <stdlib.h>
#include <string.h>

#include "cu_lower.h"
#include "einsum_parse.h"
#include "nn_geom.h"

#define UNSUPPORTED ST_ERR_UNSUPPORTED

static const struct ir_tensor *tin(const struct ir_graph *g, const struct ir_node *n, uint32_t i)
{
    return i < n->n_in && n->in[i] != IR_NONE ? &g->t[n->in[i]] : NULL;
}

static const struct ir_tensor *tout(const struct ir_graph *g, const struct ir_node *n, uint32_t i)
{
    return i < n->n_out && n->out[i] != IR_NONE ? &g->t[n->out[i]] : NULL;
}

static struct cu_launch *add(struct cu_lowered *L, int kind, int src0, int dst0)
{
    if (L->n == CU_MAX_LAUNCHES)
        return NULL;
    struct cu_launch *l = &L->l[L->n++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->src[0] = src0;
    l->src[1] = l->src[2] = -1;
    l->dst[0] = dst0;
    l->dst[1] = l->dst[2] = -1;
    return l;
}

/* a constant integer operand's values (a GPU reads nothing back mid-step) */
static int const_ints(const struct ir_tensor *t, int64_t *v, int64_t max, int64_t *cnt)
{
    if (!t || !t->data || !ir_dtype_is_int(t->dtype) || ir_numel(t) > max)
        return UNSUPPORTED;
    *cnt = ir_numel(t);
    for (int64_t i = 0; i < *cnt; i++)
        v[i] = ir_load_i64(t->dtype, t->data, i);
    return ST_OK;
}

/* a map over y's box: y contiguous, x at strides xs from xoff */
static int map(struct cu_lowered *L, int src, int dst, const struct ir_tensor *y,
               const int64_t *xs, int64_t xoff, const int64_t *ys, int64_t yoff, int esize)
{
    struct cu_launch *l = add(L, CU_K_MAP, src, dst);
    if (!l)
        return UNSUPPORTED;
    struct cu_map *m = &l->u.map;
    m->r = y->rank;
    m->esize = esize;
    m->n = ir_numel(y);
    m->xoff = xoff;
    m->yoff = yoff;
    m->scale = 1.0f;
    memcpy(m->dims, y->dims, sizeof m->dims);
    if (ys)
        memcpy(m->ys, ys, sizeof m->ys);
    else
        ir_contig_strides(y->rank, y->dims, m->ys);
    memcpy(m->xs, xs, sizeof m->xs);
    return ST_OK;
}

static int copy(struct cu_lowered *L, const struct ir_tensor *y)
{
    int64_t one[CU_RANK] = {1};
    struct ir_tensor flat = *y;
    flat.rank = 1;
    flat.dims[0] = ir_numel(y);
    return map(L, 0, 0, &flat, one, 0, NULL, 0, (int)ir_dtype_size(y->dtype));
}

static int transpose(const struct ir_node *n, const struct ir_tensor *x,
                     const struct ir_tensor *y, struct cu_lowered *L)
{
    const int64_t *perm;
    int64_t np = ir_attr_ints(n, "perm", &perm), xs[CU_RANK], s[CU_RANK] = {0};
    ir_contig_strides(x->rank, x->dims, xs);
    for (int i = 0; i < x->rank; i++) {
        int64_t p = np == x->rank ? perm[i] : x->rank - 1 - i;
        if (p < 0 || p >= x->rank)
            return UNSUPPORTED;
        s[i] = xs[p];
    }
    return map(L, 0, 0, y, s, 0, NULL, 0, (int)ir_dtype_size(x->dtype));
}

static int expand(const struct ir_tensor *x, const struct ir_tensor *y, struct cu_lowered *L)
{
    int64_t s[CU_RANK] = {0};
    ir_broadcast_strides(x->rank, x->dims, y->rank, y->dims, s);
    return map(L, 0, 0, y, s, 0, NULL, 0, (int)ir_dtype_size(x->dtype));
}

/* Slice's (or SliceGrad's) first index and step per axis of the big tensor */
static int slice_params(const struct ir_graph *g, const struct ir_node *n, uint32_t base,
                        const struct ir_tensor *big, const struct ir_tensor *small,
                        int64_t *first, int64_t *step)
{
    int64_t v[4][CU_RANK], cnt[4] = {0, 0, -1, -1};
    for (int k = 0; k < 4; k++) {
        const struct ir_tensor *t = tin(g, n, base + (uint32_t)k);
        if (t && const_ints(t, v[k], CU_RANK, &cnt[k]))
            return UNSUPPORTED;
    }
    if (cnt[1] != cnt[0] || (cnt[2] >= 0 && cnt[2] != cnt[0]) || (cnt[3] >= 0 && cnt[3] != cnt[0]))
        return UNSUPPORTED;
    for (int a = 0; a < big->rank; a++) {
        first[a] = 0;
        step[a] = 1;
    }
    for (int64_t k = 0; k < cnt[0]; k++) {
        int a = ir_norm_axis(cnt[2] >= 0 ? v[2][k] : k, big->rank);
        int64_t sp = cnt[3] >= 0 ? v[3][k] : 1;
        if (a < 0 || sp == 0)
            return UNSUPPORTED;
        step[a] = sp;
        if (ir_slice_axis(big->dims[a], v[0][k], v[1][k], sp, &first[a]) != small->dims[a])
            return UNSUPPORTED;
    }
    return ST_OK;
}

/* Slice: y's box read from x at first + i·step; SliceGrad: zeros, then dY written
 * there */
static int slice(const struct ir_graph *g, const struct ir_node *n, int grad,
                 struct cu_lowered *L)
{
    const struct ir_tensor *big = grad ? tout(g, n, 0) : tin(g, n, 0);
    const struct ir_tensor *small = grad ? tin(g, n, 0) : tout(g, n, 0);
    int64_t first[CU_RANK], step[CU_RANK], bs[CU_RANK], s[CU_RANK] = {0}, off = 0;
    if (big->rank != small->rank || slice_params(g, n, 1, big, small, first, step))
        return UNSUPPORTED;
    ir_contig_strides(big->rank, big->dims, bs);
    for (int a = 0; a < big->rank; a++) {
        s[a] = bs[a] * step[a];
        off += first[a] * bs[a];
    }
    int es = (int)ir_dtype_size(big->dtype);
    if (!grad)
        return map(L, 0, 0, small, s, off, NULL, 0, es);
    struct cu_launch *z = add(L, CU_K_ZERO, -1, 0);
    if (!z)
        return UNSUPPORTED;
    z->bytes = ir_numel(big) * es;
    int64_t cs[CU_RANK];
    ir_contig_strides(small->rank, small->dims, cs);
    return map(L, 0, 0, small, cs, 0, s, off, es);
}

/* Concat (inputs into blocks of y) and Split (blocks of x into outputs) */
static int join(const struct ir_graph *g, const struct ir_node *n, int split,
                struct cu_lowered *L)
{
    const struct ir_tensor *whole = split ? tin(g, n, 0) : tout(g, n, 0);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), whole->rank);
    if (a < 0)
        return UNSUPPORTED;
    int64_t ws[CU_RANK], off = 0;
    ir_contig_strides(whole->rank, whole->dims, ws);
    uint32_t parts = split ? n->n_out : n->n_in;
    for (uint32_t k = 0; k < parts; k++) {
        const struct ir_tensor *p = split ? tout(g, n, k) : tin(g, n, k);
        if (!p)
            return UNSUPPORTED; /* an unused Split output: its size is not at hand */
        int64_t ps[CU_RANK];
        ir_contig_strides(p->rank, p->dims, ps);
        int es = (int)ir_dtype_size(p->dtype);
        if (ir_numel(p) > 0 &&
            (split ? map(L, 0, (int)k, p, ws, off * ws[a], NULL, 0, es)
                   : map(L, (int)k, 0, p, ps, 0, ws, off * ws[a], es)))
            return UNSUPPORTED;
        off += p->dims[a];
    }
    return ST_OK;
}

/* ReduceSum/Mean/Max/Min over the constant axes input (or attribute) */
static int reduce(const struct ir_graph *g, const struct ir_node *n, int kind,
                  struct cu_lowered *L)
{
    const struct ir_tensor *x = tin(g, n, 0), *at = tin(g, n, 1);
    int64_t ax[CU_RANK], na = 0, xs[CU_RANK];
    const int64_t *attr;
    if (at) {
        if (const_ints(at, ax, CU_RANK, &na))
            return UNSUPPORTED;
    } else if ((na = ir_attr_ints(n, "axes", &attr)) > 0) {
        if (na > CU_RANK)
            return UNSUPPORTED;
        memcpy(ax, attr, (size_t)na * sizeof *ax);
    } else
        na = 0;
    if (x->dtype != IR_F32)
        return UNSUPPORTED;
    int noop = na == 0 && ir_attr_int(n, "noop_with_empty_axes", 0) != 0;
    if (noop)
        return copy(L, x);
    int mask[CU_RANK] = {0};
    for (int i = 0; i < x->rank; i++)
        mask[i] = na == 0;
    for (int64_t i = 0; i < na; i++) {
        int a = ir_norm_axis(ax[i], x->rank);
        if (a < 0)
            return UNSUPPORTED;
        mask[a] = 1;
    }
    struct cu_launch *l = add(L, CU_K_REDUCE, 0, 0);
    if (!l)
        return UNSUPPORTED;
    struct cu_reduce *r = &l->u.red;
    r->kind = kind;
    r->n_out = r->n_red = 1;
    ir_contig_strides(x->rank, x->dims, xs);
    for (int i = 0; i < x->rank; i++) {
        int64_t *dims = mask[i] ? r->dims_r : r->dims_o, *str = mask[i] ? r->xs_r : r->xs_o;
        int *cnt = mask[i] ? &r->rr : &r->ro;
        dims[*cnt] = x->dims[i];
        str[(*cnt)++] = xs[i];
        *(mask[i] ? &r->n_red : &r->n_out) *= x->dims[i];
    }
    return ST_OK;
}

static int softmax(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *x = tin(g, n, 0);
    int legacy = n->opset < 13;
    int a = ir_norm_axis(ir_attr_int(n, "axis", legacy ? 1 : -1), x->rank);
    struct cu_launch *l = a < 0 || x->dtype != IR_F32 ? NULL : add(L, CU_K_ROWS, 0, 0);
    if (!l)
        return UNSUPPORTED;
    struct cu_rows *r = &l->u.rows;
    r->kind = CU_ROW_SOFTMAX;
    r->outer = r->inner = 1;
    for (int i = 0; i < a; i++)
        r->outer *= x->dims[i];
    r->len = legacy ? ir_numel(x) / (r->outer ? r->outer : 1) : x->dims[a];
    for (int i = a + 1; !legacy && i < x->rank; i++)
        r->inner *= x->dims[i];
    return ST_OK;
}

/* LayerNormalization with a Scale (and B) of exactly the normalised block */
static int layernorm(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *x = tin(g, n, 0), *s = tin(g, n, 1), *b = tin(g, n, 2);
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), x->rank);
    if (a < 0 || x->dtype != IR_F32 || !s || s->dtype != IR_F32 || (b && b->dtype != IR_F32))
        return UNSUPPORTED;
    int64_t len = 1;
    for (int i = a; i < x->rank; i++)
        len *= x->dims[i];
    if (ir_numel(s) != len || (b && ir_numel(b) != len))
        return UNSUPPORTED;
    for (uint32_t k = 1; k < n->n_out; k++)
        if (tout(g, n, k) && tout(g, n, k)->dtype != IR_F32)
            return UNSUPPORTED;
    struct cu_launch *l = add(L, CU_K_ROWS, 0, 0);
    if (!l)
        return UNSUPPORTED;
    l->src[1] = 1;
    l->src[2] = b ? 2 : -1;
    l->dst[1] = tout(g, n, 1) ? 1 : -1;
    l->dst[2] = tout(g, n, 2) ? 2 : -1;
    struct cu_rows *r = &l->u.rows;
    r->kind = CU_ROW_LAYERNORM;
    r->len = len;
    r->outer = len ? ir_numel(x) / len : 0;
    r->inner = 1;
    r->eps = (float)ir_attr_float(n, "epsilon", 1e-5);
    return ST_OK;
}

static int cumsum(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *x = tin(g, n, 0);
    int64_t ax, cnt;
    if ((x->dtype != IR_F32 && x->dtype != IR_I64) || const_ints(tin(g, n, 1), &ax, 1, &cnt) ||
        cnt != 1)
        return UNSUPPORTED;
    int a = ir_norm_axis(ax, x->rank);
    struct cu_launch *l = a < 0 ? NULL : add(L, CU_K_SCAN, 0, 0);
    if (!l)
        return UNSUPPORTED;
    struct cu_scan *s = &l->u.scan;
    s->outer = s->inner = 1;
    s->len = x->dims[a];
    for (int i = 0; i < a; i++)
        s->outer *= x->dims[i];
    for (int i = a + 1; i < x->rank; i++)
        s->inner *= x->dims[i];
    s->exclusive = ir_attr_int(n, "exclusive", 0) != 0;
    s->reverse = ir_attr_int(n, "reverse", 0) != 0;
    s->i64 = x->dtype == IR_I64;
    return ST_OK;
}

static int gather(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *x = tin(g, n, 0), *ti = tin(g, n, 1);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    if (a < 0 || (ti->dtype != IR_I64 && ti->dtype != IR_I32))
        return UNSUPPORTED;
    struct cu_launch *l = add(L, CU_K_GATHER, 0, 0);
    if (!l)
        return UNSUPPORTED;
    l->src[1] = 1;
    struct cu_gather *gt = &l->u.gat;
    gt->outer = gt->inner = 1;
    for (int i = 0; i < a; i++)
        gt->outer *= x->dims[i];
    for (int i = a + 1; i < x->rank; i++)
        gt->inner *= x->dims[i];
    gt->big = x->dims[a];
    gt->m = ir_numel(ti);
    gt->esize = (int)ir_dtype_size(x->dtype);
    gt->idx64 = ti->dtype == IR_I64;
    return ST_OK;
}

static int clip(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *x = tin(g, n, 0), *lo = tin(g, n, 1), *hi = tin(g, n, 2);
    if (x->dtype != IR_F32 || (lo && lo->dtype != IR_F32) || (hi && hi->dtype != IR_F32))
        return UNSUPPORTED;
    struct cu_launch *l = add(L, CU_K_CLIP, 0, 0);
    if (!l)
        return UNSUPPORTED;
    l->src[1] = lo ? 1 : -1;
    l->src[2] = hi ? 2 : -1;
    l->n = ir_numel(x);
    return ST_OK;
}

/* ---- GEMMs ------------------------------------------------------------------- */

static int gemm_launch(struct cu_lowered *L, const struct cu_gemm *m)
{
    if (m->K == 0) { /* op(A)op(B) is all zeros: Y is beta·C (copied already) or zero */
        struct cu_launch *z = m->accumulate ? NULL : add(L, CU_K_ZERO, -1, 0);
        if (z)
            z->bytes = m->nb * m->M * m->N * 4;
        return m->accumulate || z ? ST_OK : UNSUPPORTED;
    }
    struct cu_launch *l = add(L, CU_K_GEMM, 0, 0);
    if (!l)
        return UNSUPPORTED;
    l->src[1] = 1;
    l->u.gemm = *m;
    return cu_gemm_calls(m, NULL, 0) < 0 ? UNSUPPORTED : ST_OK;
}

static int matmul(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *ta = tin(g, n, 0), *tb = tin(g, n, 1), *ty = tout(g, n, 0);
    if (ta->dtype != IR_F32 || tb->dtype != IR_F32 || ty->dtype != IR_F32)
        return UNSUPPORTED;
    struct ir_matmul_view v;
    ir_matmul_view(n, ta, tb, ty, &v);
    struct cu_gemm m = {.alpha = 1.0f, .nb = v.nb, .M = v.M, .N = v.N, .K = v.K, .rb = v.rb,
                        .ta = v.ta, .tb = v.tb};
    memcpy(m.dims, v.dims, sizeof m.dims);
    memcpy(m.astr, v.astr, sizeof m.astr);
    memcpy(m.bstr, v.bstr, sizeof m.bstr);
    return gemm_launch(L, &m);
}

/* Y = alpha·op(A)op(B) + beta·C: C broadcast into Y (scaled), then accumulated onto */
static int gemm(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *ta = tin(g, n, 0), *tb = tin(g, n, 1), *tc = tin(g, n, 2);
    const struct ir_tensor *ty = tout(g, n, 0);
    if (ta->dtype != IR_F32 || tb->dtype != IR_F32 || ty->dtype != IR_F32 ||
        (tc && tc->dtype != IR_F32))
        return UNSUPPORTED;
    struct ir_gemm_view v;
    ir_gemm_view(n, ta, ty, &v);
    struct cu_gemm m = {.nb = 1, .ta = v.ta, .tb = v.tb, .alpha = v.alpha, .M = v.M, .N = v.N,
                        .K = v.K};
    float beta = v.beta;
    m.accumulate = tc && beta != 0.0f;
    if (m.accumulate) {
        int64_t cs[CU_RANK] = {0};
        ir_broadcast_strides(tc->rank, tc->dims, 2, ty->dims, cs);
        if (map(L, 2, 0, ty, cs, 0, NULL, 0, 4))
            return UNSUPPORTED;
        L->l[L->n - 1].u.map.scale = beta;
    }
    return gemm_launch(L, &m);
}

/* batch dims merged where both operands' strides allow, innermost first */
static int merged_batch(const struct cu_gemm *m, int64_t *dims, int64_t *as, int64_t *bs)
{
    int r = 0;
    for (int i = 0; i < m->rb; i++) {
        if (m->dims[i] == 1)
            continue;
        if (r > 0 && as[r - 1] == m->astr[i] * m->dims[i] && bs[r - 1] == m->bstr[i] * m->dims[i]) {
            dims[r - 1] *= m->dims[i];
            as[r - 1] = m->astr[i];
            bs[r - 1] = m->bstr[i];
            continue;
        }
        dims[r] = m->dims[i];
        as[r] = m->astr[i];
        bs[r++] = m->bstr[i];
    }
    return r;
}

/* Row-major Y (M×N) = op(A) op(B) is column-major Yᵀ (N×M) = op(B)ᵀ op(A)ᵀ: cuBLAS
 * gets B as its first operand. A row-major matrix is its own transpose read
 * column-major, so B untransposed (K×N row-major) is op(B)ᵀ as stored, with
 * leading dimension N; transposed (N×K stored) it needs cuBLAS's transpose, with
 * leading dimension K. The same for A with M and K. The innermost batch dim is
 * the strided batch; outer ones are separate calls. */
int cu_gemm_calls(const struct cu_gemm *m, struct cu_sgemm_call *calls, int max)
{
    int64_t dims[CU_RANK], as[CU_RANK], bs[CU_RANK];
    int r = merged_batch(m, dims, as, bs);
    int64_t inner = r ? dims[r - 1] : 1, outer = m->nb / (inner ? inner : 1);
    if (m->M == 0 || m->N == 0 || m->nb == 0)
        return 0;
    if (outer > 4096)
        return -1;
    if (!calls)
        return (int)outer;
    if (outer > max)
        return -1;
    for (int64_t o = 0; o < outer; o++) {
        struct cu_sgemm_call *c = &calls[o];
        c->transa = m->tb;
        c->transb = m->ta;
        c->m = m->N;
        c->n = m->M;
        c->k = m->K;
        c->lda = m->tb ? m->K : m->N;
        c->ldb = m->ta ? m->M : m->K;
        c->ldc = m->N;
        c->lda = c->lda > 0 ? c->lda : 1;
        c->ldb = c->ldb > 0 ? c->ldb : 1;
        c->alpha = m->alpha;
        c->beta = m->accumulate ? 1.0f : 0.0f;
        c->count = inner;
        c->sa = r ? bs[r - 1] : 0;
        c->sb = r ? as[r - 1] : 0;
        c->sc = m->M * m->N;
        c->a_off = r > 1 ? cu_box_at(r - 1, dims, bs, o) : 0;
        c->b_off = r > 1 ? cu_box_at(r - 1, dims, as, o) : 0;
        c->c_off = o * inner * m->M * m->N;
    }
    return (int)outer;
}

/* ---- elementwise ops the emitter does not cover ------------------------------- */

static int dtype_code(enum ir_dtype t)
{
    switch (t) {
    case IR_F32: return CU_F32;
    case IR_I64: return CU_I64;
    case IR_I32: return CU_I32;
    case IR_BOOL: return CU_BOOL;
    default: return -1;
    }
}

static int ew_op(enum ir_op op)
{
    switch (op) {
    case IR_OP_Add: return CU_EW_ADD;
    case IR_OP_Sub: return CU_EW_SUB;
    case IR_OP_Mul: return CU_EW_MUL;
    case IR_OP_Div: return CU_EW_DIV;
    case IR_OP_Neg: return CU_EW_NEG;
    case IR_OP_Equal: return CU_EW_EQ;
    case IR_OP_Less: return CU_EW_LT;
    case IR_OP_LessOrEqual: return CU_EW_LE;
    case IR_OP_Greater: return CU_EW_GT;
    case IR_OP_GreaterOrEqual: return CU_EW_GE;
    case IR_OP_Cast: return CU_EW_CAST;
    case IR_OP_Where: return CU_EW_WHERE;
    case IR_OP_Not: return CU_EW_NOT;
    case IR_OP_And: return CU_EW_AND;
    case IR_OP_Or: return CU_EW_OR;
    case IR_OP_Floor: return CU_EW_FLOOR;
    case IR_OP_Ceil: return CU_EW_CEIL;
    default: return -1;
    }
}

/* Integer arithmetic needs integer operands (a float one is the emitter's, or
 * mixed, which ONNX does not allow); Div of integers truncates like C. */
static int elementwise(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *y = tout(g, n, 0);
    int op = ew_op(n->op), arith = op <= CU_EW_DIV || op == CU_EW_NEG;
    if (op < 0 || n->n_in > 3 || dtype_code(y->dtype) < 0 || y->rank > CU_RANK)
        return UNSUPPORTED;
    struct cu_launch *l = add(L, CU_K_EW, 0, 0);
    if (!l)
        return UNSUPPORTED;
    struct cu_ew *e = &l->u.ew;
    e->op = op;
    e->nin = (int)n->n_in;
    e->r = y->rank;
    e->n = ir_numel(y);
    e->dty = dtype_code(y->dtype);
    memcpy(e->dims, y->dims, sizeof e->dims);
    for (uint32_t i = 0; i < n->n_in; i++) {
        const struct ir_tensor *x = tin(g, n, i);
        if (!x || dtype_code(x->dtype) < 0 || x->rank > y->rank ||
            (arith && (x->dtype == IR_F32 || x->dtype == IR_BOOL)))
            return UNSUPPORTED;
        e->dt[i] = dtype_code(x->dtype);
        l->src[i] = (int)i;
        ir_broadcast_strides(x->rank, x->dims, y->rank, y->dims, e->str[i]);
    }
    return ST_OK;
}

/* ChunkedKL (h_t, h_m, W, b?) and ChunkedKLGrad (dkl, lse, h_t, h_m, W, b?) */
static int chunked_kl(const struct ir_graph *g, const struct ir_node *n, int grad,
                      struct cu_lowered *L)
{
    uint32_t f = grad ? 2 : 0;
    const struct ir_tensor *h = tin(g, n, f), *w = tin(g, n, f + 2);
    int tw = ir_attr_int(n, "trans_w", 0) != 0;
    if (!h || !w || w->rank != 2)
        return UNSUPPORTED;
    struct cu_kl k = {0, h->dims[h->rank - 1], w->dims[tw ? 0 : 1], tw, tin(g, n, f + 3) != NULL};
    k.rows = k.D ? ir_numel(h) / k.D : 0;
    if (grad && k.D > CU_KL_DPT * CU_BLOCK)
        return UNSUPPORTED;
    struct cu_launch *l = add(L, grad ? CU_K_KLGRAD : CU_K_KL, 0, 0);
    if (!l)
        return UNSUPPORTED;
    l->u.kl = k;
    for (int i = 0; i < 3; i++)
        l->src[i] = -1;
    l->dst[1] = grad ? -1 : 1; /* the forward's lse */
    return ST_OK; /* operands by position: cu_emu.c and cu_target.c read in[] directly */
}

/* Einsum as output box × summed box (einsum_parse.h's loop, split in two) */
static int einsum(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    const struct ir_tensor *t[EIN_MAX_OPS] = {0};
    int ranks[EIN_MAX_OPS], nops = (int)n->n_in;
    int64_t dims[EIN_MAX_OPS][IR_MAX_RANK];
    if (nops < 1 || nops > EIN_MAX_OPS || tout(g, n, 0)->dtype != IR_F32)
        return UNSUPPORTED;
    for (int k = 0; k < nops; k++) {
        t[k] = tin(g, n, (uint32_t)k);
        if (!t[k] || t[k]->dtype != IR_F32)
            return UNSUPPORTED;
        ranks[k] = t[k]->rank;
        memcpy(dims[k], t[k]->dims, sizeof dims[k]);
    }
    struct ein_spec sp;
    struct ein_loop el;
    char err[128];
    if (ein_parse(ir_attr_str(n, "equation", ""), nops, ranks,
                  (const int64_t(*)[IR_MAX_RANK])dims, &sp, err, sizeof err) != ST_OK)
        return UNSUPPORTED;
    ein_loop_build(&sp, t, &el);
    if (el.nl - sp.out_rank > CU_RANK)
        return UNSUPPORTED;
    struct cu_launch *l = add(L, CU_K_EIN, 0, 0);
    if (!l)
        return UNSUPPORTED;
    struct cu_ein *e = &l->u.ein;
    l->src[1] = nops > 1 ? 1 : -1;
    e->nops = nops;
    e->ro = sp.out_rank;
    e->rr = el.nl - sp.out_rank;
    e->n_out = e->n_red = 1;
    for (int i = 0; i < el.nl; i++) {
        int o = i < e->ro;
        (o ? e->dims_o : e->dims_r)[o ? i : i - e->ro] = el.size[i];
        *(o ? &e->n_out : &e->n_red) *= el.size[i];
        for (int k = 0; k < nops; k++)
            (o ? e->so[k] : e->sr[k])[o ? i : i - e->ro] = el.str[k][i];
    }
    return ST_OK;
}

static int topk_mask(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    if (tin(g, n, 0)->dtype != IR_F32 || tout(g, n, 0)->dtype != IR_F32)
        return UNSUPPORTED;
    struct cu_launch *l = add(L, CU_K_TOPK, 0, 0);
    if (!l)
        return UNSUPPORTED;
    l->n = ir_numel(tin(g, n, 0));
    l->bytes = ir_attr_int(n, "k", 0);
    return ST_OK;
}

/* The windowed ops (enum cu_win): X's shape (and W's for Conv) from whichever
 * operands carry them, the geometry from the node's attributes */
static int window(const struct ir_graph *g, const struct ir_node *n, int which,
                  struct cu_lowered *L)
{
    int grad_in = which == CU_W_CONV_DX || which == CU_W_AVGPOOL_DX;
    int is_conv = which <= CU_W_CONV_DW;
    const struct ir_tensor *x = grad_in ? tout(g, n, 0) : tin(g, n, 0);
    const struct ir_tensor *w = !is_conv ? NULL : which == CU_W_CONV_DW ? tout(g, n, 0) : tin(g, n, 1);
    const int64_t *ks = NULL;
    if (!is_conv && ir_attr_ints(n, "kernel_shape", &ks) != (x ? x->rank - 2 : -1))
        return UNSUPPORTED;
    struct nn_geom3 q;
    if (!x || x->dtype != IR_F32 || (is_conv && (!w || w->dtype != IR_F32)) ||
        tout(g, n, 0)->dtype != IR_F32 ||
        (which == CU_W_CONV && tin(g, n, 2) && tin(g, n, 2)->dtype != IR_F32) ||
        nn_geom3_fill(n, x->rank, x->dims, is_conv ? w->dims + 2 : ks,
                      !is_conv && ir_attr_int(n, "ceil_mode", 0) != 0, &q) != ST_OK)
        return UNSUPPORTED;
    struct cu_launch *l = add(L, CU_K_CONV, 0, 0);
    if (!l)
        return UNSUPPORTED;
    l->src[1] = n->n_in > 1 ? 1 : -1;
    l->src[2] = which == CU_W_CONV && tin(g, n, 2) ? 2 : -1;
    l->bytes = which;
    l->n = ir_numel(tout(g, n, 0));
    struct cu_conv *c = &l->u.conv;
    for (int i = 0; i < 3; i++) {
        c->in[i] = q.in[i];
        c->k[i] = q.k[i];
        c->s[i] = q.s[i];
        c->dl[i] = q.dl[i];
        c->pb[i] = q.pb[i];
        c->pe[i] = q.pe[i];
        c->out[i] = q.out[i];
    }
    c->N = x->dims[0];
    c->C = x->dims[1];
    c->M = is_conv ? w->dims[0] : c->C;
    c->group = is_conv ? ir_attr_int(n, "group", 1) : 1;
    c->in_plane = q.in_plane;
    c->out_plane = q.out_plane;
    c->kvol = q.kvol;
    c->include_pad = ir_attr_int(n, "count_include_pad", 0) != 0;
    return c->group > 0 && c->C % c->group == 0 && c->M % c->group == 0 ? ST_OK : UNSUPPORTED;
}

/* GlobalAveragePool / GlobalMaxPool: a mean or max over each (n, c) plane */
static int global_pool(const struct ir_graph *g, const struct ir_node *n, int kind,
                       struct cu_lowered *L)
{
    const struct ir_tensor *x = tin(g, n, 0);
    struct cu_launch *l = x->rank < 2 || x->dtype != IR_F32 ? NULL : add(L, CU_K_REDUCE, 0, 0);
    if (!l)
        return UNSUPPORTED;
    struct cu_reduce *r = &l->u.red;
    r->kind = kind;
    r->ro = r->rr = 1;
    r->n_out = r->dims_o[0] = x->dims[0] * x->dims[1];
    r->n_red = r->dims_r[0] = ir_numel(x) / (r->n_out ? r->n_out : 1);
    r->xs_o[0] = r->n_red;
    r->xs_r[0] = 1;
    return r->n_out ? ST_OK : UNSUPPORTED;
}

/* ---- running -------------------------------------------------------------------- */

int cu_supports(const struct ir_graph *g, const struct ir_node *n)
{
    static _Thread_local struct cu_lowered L; /* a few kB: off the stack */
    return cu_lower(g, n, &L) == ST_OK;
}

static int run_launches(const struct cu_launch *ls, int nl, void *const *in, void *const *out,
                        cu_exec_fn fn)
{
    int st = ST_OK;
    for (int i = 0; !st && i < nl; i++) {
        const struct cu_launch *l = &ls[i];
        void *src[3], *dst[3];
        for (int k = 0; k < 3; k++) {
            src[k] = l->src[k] >= 0 ? in[l->src[k]] : NULL;
            dst[k] = l->dst[k] >= 0 ? out[l->dst[k]] : NULL;
        }
        if (cu_launch_wanted(l, out))
            st = fn(l, src, dst, in, out);
    }
    return st;
}

int cu_run_node(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                void *const *out, cu_exec_fn fn)
{
    static _Thread_local struct cu_lowered L;
    int st = cu_lower(g, n, &L);
    return st ? st : run_launches(L.l, L.n, in, out, fn);
}

struct cu_prepared {
    int n;
    struct cu_launch l[];
};

int cu_prepare(const struct ir_graph *g, const struct ir_node *n, void **state)
{
    static _Thread_local struct cu_lowered L;
    *state = NULL;
    int st = cu_lower(g, n, &L);
    if (st)
        return st;
    struct cu_prepared *p = malloc(sizeof *p + (size_t)L.n * sizeof p->l[0]);
    if (!p)
        return ST_ERR_NOMEM;
    p->n = L.n;
    memcpy(p->l, L.l, (size_t)L.n * sizeof p->l[0]);
    *state = p;
    return ST_OK;
}

int cu_run_prepared(const void *state, void *const *in, void *const *out, cu_exec_fn fn)
{
    const struct cu_prepared *p = state;
    return run_launches(p->l, p->n, in, out, fn);
}

/* ---- the table ------------------------------------------------------------------ */

int cu_lower(const struct ir_graph *g, const struct ir_node *n, struct cu_lowered *L)
{
    L->n = 0;
    const struct ir_tensor *x = tin(g, n, 0), *y = tout(g, n, 0);
    if (!x || (n->op != IR_OP_Split && !y))
        return UNSUPPORTED;
    switch (n->op) {
    case IR_OP_Reshape: case IR_OP_Flatten: case IR_OP_Squeeze: case IR_OP_Unsqueeze:
    case IR_OP_Identity: case IR_OP_StopGradient:
        return copy(L, y);
    case IR_OP_Transpose: return transpose(n, x, y, L);
    case IR_OP_Expand: return expand(x, y, L);
    case IR_OP_Slice: return slice(g, n, 0, L);
    case IR_OP_SliceGrad: return slice(g, n, 1, L);
    case IR_OP_Concat: return join(g, n, 0, L);
    case IR_OP_Split: return join(g, n, 1, L);
    case IR_OP_ReduceSum: return reduce(g, n, CU_RED_SUM, L);
    case IR_OP_ReduceMean: return reduce(g, n, CU_RED_MEAN, L);
    case IR_OP_ReduceMax: return reduce(g, n, CU_RED_MAX, L);
    case IR_OP_ReduceMin: return reduce(g, n, CU_RED_MIN, L);
    case IR_OP_Softmax: return softmax(g, n, L);
    case IR_OP_LayerNormalization: return layernorm(g, n, L);
    case IR_OP_CumSum: return cumsum(g, n, L);
    case IR_OP_Gather: return gather(g, n, L);
    case IR_OP_Clip: return clip(g, n, L);
    case IR_OP_MatMul: return matmul(g, n, L);
    case IR_OP_Gemm: return gemm(g, n, L);
    case IR_OP_Einsum: return einsum(g, n, L);
    case IR_OP_Conv: return window(g, n, CU_W_CONV, L);
    case IR_OP_ConvGradInput: return window(g, n, CU_W_CONV_DX, L);
    case IR_OP_ConvGradWeight: return window(g, n, CU_W_CONV_DW, L);
    case IR_OP_MaxPool: return n->n_out > 1 ? UNSUPPORTED : window(g, n, CU_W_MAXPOOL, L);
    case IR_OP_AveragePool: return window(g, n, CU_W_AVGPOOL, L);
    case IR_OP_MaxPoolGrad: return window(g, n, CU_W_MAXPOOL_DX, L);
    case IR_OP_AveragePoolGrad: return window(g, n, CU_W_AVGPOOL_DX, L);
    case IR_OP_GlobalAveragePool: return global_pool(g, n, CU_RED_MEAN, L);
    case IR_OP_GlobalMaxPool: return global_pool(g, n, CU_RED_MAX, L);
    case IR_OP_TopKMask: return topk_mask(g, n, L);
    case IR_OP_ChunkedKL: return chunked_kl(g, n, 0, L);
    case IR_OP_ChunkedKLGrad: return chunked_kl(g, n, 1, L);
    default: return elementwise(g, n, L);
    }
}
