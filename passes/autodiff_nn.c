/* autodiff_nn.c — VJP rules for linear algebra (MatMul, Gemm, Einsum),
 * convolution and pooling, softmax and the normalisations (see autodiff.c for
 * the sweep). Products get the usual transposed products; Conv and the
 * windowed pools use the internal adjoint ops (codegen/ref/ref_grad.c);
 * normalisations recompute their statistics in the data's dtype. */
#include <stdlib.h>
#include <string.h>

#include "autodiff_impl.h"
#include "einsum_parse.h" /* the parser the Einsum shape rule and kernel use */

/* ---- MatMul ------------------------------------------------------------------ */

/* numpy matmul: a 1-D A is [1, K], a 1-D B is [K, 1], and the output lacks
 * that dim. dA = dY B^T and dB = A^T dY on the promoted forms, summed over
 * broadcast batch dims, then reshaped back. */
int vjp_matmul(struct ad *a, const struct ir_node *n)
{
    uint32_t A = n->in[0], B = n->in[1], dy = ad_dy(a, n, 0);
    struct ad_info ai = ad_info(a, A), bi = ad_info(a, B), yi = ad_info(a, dy);
    int64_t d2[IR_MAX_RANK];
    int ra = ai.rank >= 2, rb = bi.rank >= 2, r2 = yi.rank - ra - rb;
    memcpy(d2, yi.dims, (size_t)r2 * sizeof *d2);
    d2[r2] = ra ? yi.dims[r2] : 1;
    d2[r2 + 1] = rb ? yi.dims[r2 + ra] : 1;
    uint32_t dy2 = bld_reshape(&a->b, dy, r2 + 2, d2);
    int64_t row[2] = {1, ai.dims[0]}, col[2] = {bi.dims[0], 1};
    uint32_t A2 = ra ? A : bld_reshape(&a->b, A, 2, row);
    uint32_t B2 = rb ? B : bld_reshape(&a->b, B, 2, col);
    if (ad_wants(a, n, 0)) {
        uint32_t g = bld_matmul(&a->b, dy2, bld_swap_last2(&a->b, B2));
        ad_acc(a, n, 0, ad_reshape_to(a, ad_sum_to(a, g, A2), A));
    }
    if (ad_wants(a, n, 1) && bi.rank == 2 && ai.rank > 2) {
        /* a weight applied to batched rows (x [B, T, K]·W): one [K, N] product over all
         * rows, not a [B, K, N] batch of them summed afterwards */
        int64_t ka[2] = {ai.numel / ai.dims[ai.rank - 1], ai.dims[ai.rank - 1]};
        int64_t ky[2] = {ka[0], bi.dims[1]};
        uint32_t Af = bld_reshape(&a->b, A, 2, ka), dyf = bld_reshape(&a->b, dy, 2, ky);
        ad_acc(a, n, 1, bld_matmul(&a->b, bld_swap_last2(&a->b, Af), dyf));
    } else if (ad_wants(a, n, 1)) {
        uint32_t g = bld_matmul(&a->b, bld_swap_last2(&a->b, A2), dy2);
        ad_acc(a, n, 1, ad_reshape_to(a, ad_sum_to(a, g, B2), B));
    }
    return a->b.err;
}

/* ---- Gemm -------------------------------------------------------------------- */

static uint32_t gemm(struct ad *a, uint32_t p, uint32_t q, int ta, int tb, double alpha)
{
    struct ir_attr at[3] = {bld_attr_int("transA", ta), bld_attr_int("transB", tb),
                            bld_attr_float("alpha", alpha)};
    uint32_t in[2] = {p, q};
    return bld_node(&a->b, IR_OP_Gemm, 2, in, 3, at, 1, NULL);
}

/* Y = alpha op(A) op(B) + beta C. With G = dY: d op(A) = alpha G op(B)^T and
 * d op(B) = alpha op(A)^T G, each written as one Gemm with the transposes
 * folded into its flags; C gets beta G summed to its broadcast shape. */
int vjp_gemm(struct ad *a, const struct ir_node *n)
{
    uint32_t A = n->in[0], B = n->in[1], dy = ad_dy(a, n, 0);
    int ta = ir_attr_int(n, "transA", 0) != 0, tb = ir_attr_int(n, "transB", 0) != 0;
    double alpha = ir_attr_float(n, "alpha", 1.0), beta = ir_attr_float(n, "beta", 1.0);
    if (ad_wants(a, n, 0))
        ad_acc(a, n, 0, ta ? gemm(a, B, dy, tb, 1, alpha) : gemm(a, dy, B, 0, !tb, alpha));
    if (ad_wants(a, n, 1))
        ad_acc(a, n, 1, tb ? gemm(a, dy, A, 1, ta, alpha) : gemm(a, A, dy, !ta, 0, alpha));
    if (ad_wants(a, n, 2)) {
        uint32_t C = n->in[2], g = bld_mul(&a->b, dy, ad_k(a, dy, beta));
        ad_acc(a, n, 2, ad_reshape_to(a, ad_sum_to(a, g, C), C));
    }
    return a->b.err;
}

/* ---- Einsum ------------------------------------------------------------------ */

static char ein_letter(int label) { return (char)(label < 26 ? 'a' + label : 'A' + label - 26); }

/* I(n) laid out along axes a and b of a rank-r tensor (1 elsewhere): the
 * mask that puts a repeated index's gradient back on its diagonal */
static uint32_t ein_eye(struct ad *a, const struct ir_node *node, enum ir_dtype dt, int r,
                        int ax, int bx, int64_t n)
{
    int64_t dims[IR_MAX_RANK];
    for (int i = 0; i < r; i++)
        dims[i] = i == ax || i == bx ? n : 1;
    size_t es = ir_dtype_size(dt);
    void *buf = calloc((size_t)(n * n), es);
    if (!buf)
        return ad_fail(a, node, ST_ERR_NOMEM, "out of memory for an Einsum diagonal mask"), IR_NONE;
    for (int64_t i = 0; i < n; i++)
        ir_store_f64(dt, buf, i * n + i, 1.0);
    uint32_t t = bld_const(&a->b, dt, r, dims, buf);
    free(buf);
    return t;
}

/* the gradient of operand t: einsum of dY (output labels) with the other
 * operand, producing t's distinct labels that occur in dY or the other
 * operand; labels only t has (summed in the forward pass) come back by
 * broadcasting, and broadcast ellipsis dims (size 1 in t) are summed. A label
 * repeated within t (a diagonal or trace, "ii->i") reads only the diagonal,
 * so its gradient is the distinct-label gradient broadcast over the repeated
 * axes and multiplied by an identity mask per repeat. */
static uint32_t ein_grad(struct ad *a, const struct ir_node *n, const struct ein_spec *sp, int t)
{
    char eq[3 * IR_MAX_RANK + 8];
    int len = 0, o = 1 - t, seen[EIN_MAX_LAB] = {0}, present[EIN_MAX_LAB] = {0};
    int first[IR_MAX_RANK], rep = 0; /* axis i holds the first use of its label */
    for (int i = 0; i < sp->rank[t]; i++) {
        first[i] = !seen[sp->lab[t][i]]++;
        rep |= !first[i];
    }
    for (int i = 0; i < sp->out_rank; i++) {
        present[sp->out_lab[i]] = 1;
        eq[len++] = ein_letter(sp->out_lab[i]);
    }
    if (sp->nops == 2) {
        eq[len++] = ',';
        for (int i = 0; i < sp->rank[o]; i++) {
            present[sp->lab[o][i]] = 1;
            eq[len++] = ein_letter(sp->lab[o][i]);
        }
    }
    eq[len++] = '-';
    eq[len++] = '>';
    struct ad_info ti = ad_info(a, n->in[t]);
    int64_t red[IR_MAX_RANK], full[IR_MAX_RANK];
    for (int i = 0; i < sp->rank[t]; i++) {
        int l = sp->lab[t][i], keep = present[l] && first[i];
        if (keep)
            eq[len++] = ein_letter(l);
        red[i] = keep ? ti.dims[i] : 1;
        full[i] = keep ? sp->size[l] : 1;
    }
    eq[len] = '\0';
    struct ir_attr at = bld_attr_str("equation", eq);
    uint32_t in[2] = {ad_dy(a, n, 0), sp->nops == 2 ? n->in[o] : IR_NONE};
    if (sp->nops == 2) { /* letters do not broadcast: stretch the other's size-1 ellipsis dims */
        struct ad_info oi = ad_info(a, in[1]);
        int64_t od[IR_MAX_RANK];
        int stretch = 0;
        for (int i = 0; i < oi.rank; i++) {
            od[i] = sp->size[sp->lab[o][i]];
            stretch |= od[i] != oi.dims[i];
        }
        if (stretch)
            in[1] = ad_expand(a, in[1], oi.rank, od);
    }
    uint32_t g = bld_node(&a->b, IR_OP_Einsum, (uint32_t)sp->nops, in, 1, &at, 1, NULL);
    if (a->b.err)
        return IR_NONE;
    /* to t's rank with 1 for the missing and repeated labels, sum broadcast dims, expand */
    g = bld_reshape(&a->b, g, sp->rank[t], full);
    g = bld_sum_to(&a->b, g, sp->rank[t], red);
    g = ad_expand(a, g, ti.rank, ti.dims);
    for (int j = 0; rep && j < sp->rank[t]; j++) {
        if (first[j])
            continue;
        int i = 0;
        while (sp->lab[t][i] != sp->lab[t][j])
            i++;
        g = bld_mul(&a->b, g, ein_eye(a, n, ti.dt, ti.rank, i, j, ti.dims[j]));
    }
    return ad_reshape_to(a, g, n->in[t]);
}

int vjp_einsum(struct ad *a, const struct ir_node *n)
{
    const char *eq = ir_attr_str(n, "equation", "");
    int ranks[EIN_MAX_OPS];
    int64_t dims[EIN_MAX_OPS][IR_MAX_RANK];
    if (n->n_in > EIN_MAX_OPS)
        return ad_fail(a, n, ST_ERR_UNSUPPORTED, "more than %d operands", EIN_MAX_OPS);
    for (uint32_t i = 0; i < n->n_in; i++) {
        struct ad_info ti = ad_info(a, n->in[i]);
        ranks[i] = ti.rank;
        memcpy(dims[i], ti.dims, sizeof dims[i]);
    }
    struct ein_spec sp;
    char err[256];
    int st = ein_parse(eq, (int)n->n_in, ranks, (const int64_t(*)[IR_MAX_RANK])dims, &sp, err,
                       sizeof err);
    if (st)
        return ad_fail(a, n, st, "equation '%s': %s", eq, err);
    if (sp.nlab > 52)
        return ad_fail(a, n, ST_ERR_UNSUPPORTED, "too many indices");
    for (uint32_t t = 0; t < n->n_in; t++)
        if (ad_wants(a, n, t))
            ad_acc(a, n, t, ein_grad(a, n, &sp, (int)t));
    return a->b.err;
}

/* ---- Conv and pooling ---------------------------------------------------------- */

static struct ir_attr shape_attr(const struct ad_info *x)
{
    return bld_attr_ints("shape", x->rank, x->dims);
}

/* dX and dW through the internal adjoints; dB sums dY over batch and space */
int vjp_conv(struct ad *a, const struct ir_node *n)
{
    uint32_t X = n->in[0], W = n->in[1], dy = ad_dy(a, n, 0);
    struct ad_info xi = ad_info(a, X), wi = ad_info(a, W);
    if (ad_wants(a, n, 0)) {
        struct ir_attr sh = shape_attr(&xi);
        uint32_t in[2] = {dy, W};
        ad_acc(a, n, 0, ad_node_like(a, IR_OP_ConvGradInput, n, 2, in, 1, &sh));
    }
    if (ad_wants(a, n, 1)) {
        struct ir_attr sh = shape_attr(&wi);
        uint32_t in[2] = {X, dy};
        ad_acc(a, n, 1, ad_node_like(a, IR_OP_ConvGradWeight, n, 2, in, 1, &sh));
    }
    if (ad_wants(a, n, 2)) {
        int64_t axes[IR_MAX_RANK];
        int na = 0;
        for (int i = 0; i < xi.rank; i++)
            if (i != 1)
                axes[na++] = i;
        ad_acc(a, n, 2, ad_sum_axes(a, dy, na, axes, 0));
    }
    return a->b.err;
}

/* the first maximum of each window gets the gradient (ties: first in scan order) */
int vjp_maxpool(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    uint32_t in[2] = {n->in[0], ad_dy(a, n, 0)};
    ad_acc(a, n, 0, ad_node_like(a, IR_OP_MaxPoolGrad, n, 2, in, 0, NULL));
    return a->b.err;
}

int vjp_avgpool(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    struct ad_info xi = ad_info(a, n->in[0]);
    struct ir_attr sh = shape_attr(&xi);
    uint32_t dy = ad_dy(a, n, 0);
    ad_acc(a, n, 0, ad_node_like(a, IR_OP_AveragePoolGrad, n, 1, &dy, 1, &sh));
    return a->b.err;
}

/* spatial axes 2..rank-1 */
static int spatial_axes(int rank, int64_t *axes)
{
    for (int i = 2; i < rank; i++)
        axes[i - 2] = i;
    return rank - 2;
}

int vjp_global_avgpool(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    struct ad_info xi = ad_info(a, n->in[0]);
    int64_t plane = 1;
    for (int i = 2; i < xi.rank; i++)
        plane *= xi.dims[i];
    uint32_t dy = ad_dy(a, n, 0);
    uint32_t g = bld_mul(&a->b, dy, ad_k(a, dy, 1.0 / (double)plane));
    ad_acc(a, n, 0, ad_expand(a, g, xi.rank, xi.dims));
    return a->b.err;
}

/* like ReduceMax over the spatial axes: ties share the gradient evenly */
int vjp_global_maxpool(struct ad *a, const struct ir_node *n)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    int64_t axes[IR_MAX_RANK];
    int na = spatial_axes(ad_info(a, n->in[0]).rank, axes);
    uint32_t share = ad_argext_share(a, n->in[0], n->out[0], na, axes);
    ad_acc(a, n, 0, bld_mul(&a->b, ad_dy(a, n, 0), share));
    return a->b.err;
}

/* ---- Softmax / LogSoftmax -------------------------------------------------------- */

/* opset >= 13 normalises along one axis; older opsets coerce to 2-D at axis,
 * i.e. normalise over all axes from `axis` on: the same formulas, reduced over
 * those axes together.
 *   softmax:     dx = y (dy - sum(dy y))
 *   log-softmax: dx = dy - exp(y) sum(dy) */
int vjp_softmax(struct ad *a, const struct ir_node *n, int log_form)
{
    if (!ad_wants(a, n, 0))
        return ST_OK;
    uint32_t dy = ad_dy(a, n, 0), y = n->out[0];
    int r = ad_info(a, y).rank, legacy = n->opset < 13, na = 0;
    int64_t axis = ir_attr_int(n, "axis", legacy ? 1 : -1), axes[IR_MAX_RANK];
    int ax = (int)(axis < 0 ? axis + r : axis);
    for (int i = ax; i < r && (legacy || i == ax); i++)
        axes[na++] = i;
    uint32_t g;
    if (log_form) {
        uint32_t s = ad_sum_axes(a, dy, na, axes, 1);
        g = bld_sub(&a->b, dy, bld_mul(&a->b, ad_op1(a, IR_OP_Exp, y), s));
    } else {
        uint32_t s = ad_sum_axes(a, bld_mul(&a->b, dy, y), na, axes, 1);
        g = bld_mul(&a->b, y, bld_sub(&a->b, dy, s));
    }
    ad_acc(a, n, 0, g);
    return a->b.err;
}

/* ChunkedKL(h_t, h_m, W, b?): the masked side only. The target's logits and the
 * unembedding are constants of a decomposition (a decomposed unembedding never takes
 * this path: its logits are not one MatMul of a constant), so asking for their
 * gradient is a bug upstream, not something to differentiate silently. */
int vjp_chunked_kl(struct ad *a, const struct ir_node *n)
{
    for (uint32_t i = 0; i < n->n_in; i++)
        if (i != 1 && ad_wants(a, n, i))
            return ad_fail(a, n, ST_ERR_UNSUPPORTED, "no gradient w.r.t. the target hidden "
                           "state, the unembedding or its bias");
    if (ad_dy(a, n, 1) != IR_NONE)
        return ad_fail(a, n, ST_ERR_UNSUPPORTED, "no gradient through the log-sum-exps");
    uint32_t dy = ad_dy(a, n, 0);
    if (dy == IR_NONE || !ad_wants(a, n, 1))
        return ST_OK;
    uint32_t in[6] = {dy, n->out[1], n->in[0], n->in[1], n->in[2],
                      n->n_in > 3 ? n->in[3] : IR_NONE};
    ad_acc(a, n, 1, ad_node_like(a, IR_OP_ChunkedKLGrad, n, n->n_in > 3 ? 6 : 5, in, 0, NULL));
    return a->b.err;
}

/* ---- normalisations ----------------------------------------------------------------- */

/* statistics of x over axes (keepdims), in x's dtype */
struct ad_norm {
    uint32_t xc;   /* x - mean */
    uint32_t inv;  /* 1 / sqrt(var + eps) */
    uint32_t xhat; /* xc * inv */
};

static struct ad_norm norm_stats(struct ad *a, uint32_t x, int na, const int64_t *axes, double eps)
{
    struct ad_norm s;
    s.xc = bld_sub(&a->b, x, ad_mean_axes(a, x, na, axes, 1));
    uint32_t var = ad_mean_axes(a, bld_mul(&a->b, s.xc, s.xc), na, axes, 1);
    uint32_t sd = ad_op1(a, IR_OP_Sqrt, bld_add(&a->b, var, ad_k(a, x, eps)));
    s.inv = ad_op1(a, IR_OP_Reciprocal, sd);
    s.xhat = bld_mul(&a->b, s.xc, s.inv);
    return s;
}

/* dx of xhat = (x - mean) * inv given dxhat: inv (g - mean(g) - xhat mean(g xhat)) */
static uint32_t norm_dx(struct ad *a, const struct ad_norm *s, uint32_t g, int na,
                        const int64_t *axes)
{
    uint32_t m1 = ad_mean_axes(a, g, na, axes, 1);
    uint32_t m2 = ad_mean_axes(a, bld_mul(&a->b, g, s->xhat), na, axes, 1);
    uint32_t c = bld_sub(&a->b, bld_sub(&a->b, g, m1), bld_mul(&a->b, s->xhat, m2));
    return bld_mul(&a->b, s->inv, c);
}

/* gradients arriving at LayerNormalization's Mean / InvStdDev outputs:
 * dmean/dx = 1/len; dinv/dx = -inv^3 (x - mean) / len */
static uint32_t ln_stat_grads(struct ad *a, const struct ir_node *n, const struct ad_norm *s,
                              uint32_t x, int64_t len)
{
    struct ad_info xi = ad_info(a, x);
    uint32_t acc = IR_NONE, dm = ad_dy(a, n, 1), di = ad_dy(a, n, 2);
    if (dm != IR_NONE) {
        uint32_t g = bld_mul(&a->b, bld_cast(&a->b, dm, xi.dt), ad_k(a, x, 1.0 / (double)len));
        acc = ad_expand(a, g, xi.rank, xi.dims);
    }
    if (di != IR_NONE) {
        uint32_t inv3 = bld_mul(&a->b, s->inv, bld_mul(&a->b, s->inv, s->inv));
        uint32_t f = bld_mul(&a->b, bld_cast(&a->b, di, xi.dt), inv3);
        uint32_t g = bld_mul(&a->b, bld_mul(&a->b, f, ad_k(a, x, -1.0 / (double)len)), s->xc);
        acc = acc == IR_NONE ? g : bld_add(&a->b, acc, g);
    }
    return acc;
}

/* y = xhat * scale + B over the axes from `axis` on */
int vjp_layernorm(struct ad *a, const struct ir_node *n)
{
    uint32_t x = n->in[0], sc = n->in[1], dy = ad_dy(a, n, 0);
    struct ad_info xi = ad_info(a, x);
    int ax = ir_norm_axis(ir_attr_int(n, "axis", -1), xi.rank), na = 0;
    int64_t axes[IR_MAX_RANK], len = 1;
    for (int i = ax; i < xi.rank; i++) {
        axes[na++] = i;
        len *= xi.dims[i];
    }
    struct ad_norm s = norm_stats(a, x, na, axes, ir_attr_float(n, "epsilon", 1e-5));
    if (ad_wants(a, n, 0)) {
        uint32_t gx = dy == IR_NONE ? IR_NONE : norm_dx(a, &s, bld_mul(&a->b, dy, sc), na, axes);
        uint32_t gs = ln_stat_grads(a, n, &s, x, len);
        if (gx == IR_NONE || gs == IR_NONE)
            ad_acc(a, n, 0, gx == IR_NONE ? gs : gx);
        else
            ad_acc(a, n, 0, bld_add(&a->b, gx, gs));
    }
    if (dy != IR_NONE && ad_wants(a, n, 1))
        ad_acc(a, n, 1, ad_reshape_to(a, ad_sum_to(a, bld_mul(&a->b, dy, s.xhat), sc), sc));
    if (dy != IR_NONE && ad_wants(a, n, 2))
        ad_acc(a, n, 2, ad_reshape_to(a, ad_sum_to(a, dy, n->in[2]), n->in[2]));
    return a->b.err;
}

/* [C] viewed as [C, 1, ...] against (N, C, spatial...) */
static uint32_t chan_view(struct ad *a, uint32_t v, int xrank)
{
    int64_t dims[IR_MAX_RANK];
    dims[0] = ad_info(a, v).dims[0];
    for (int i = 1; i < xrank - 1; i++)
        dims[i] = 1;
    return bld_reshape(&a->b, v, xrank - 1, dims);
}

/* axes 0, 2, 3, ...: everything but the channel */
static int nonchan_axes(int rank, int64_t *axes)
{
    int na = 0;
    for (int i = 0; i < rank; i++)
        if (i != 1)
            axes[na++] = i;
    return na;
}

/* inference form, linear in X: y = (x - mean) * scale * inv + B, inv = (var + eps)^-1/2 */
int vjp_batchnorm(struct ad *a, const struct ir_node *n)
{
    uint32_t x = n->in[0], sc = n->in[1], mn = n->in[3], var = n->in[4], dy = ad_dy(a, n, 0);
    int r = ad_info(a, x).rank;
    int64_t axes[IR_MAX_RANK];
    int na = nonchan_axes(r, axes);
    double eps = ir_attr_float(n, "epsilon", 1e-5);
    uint32_t invc = ad_op1(a, IR_OP_Reciprocal,
                           ad_op1(a, IR_OP_Sqrt, bld_add(&a->b, var, ad_k(a, var, eps))));
    uint32_t xc = bld_sub(&a->b, x, chan_view(a, mn, r));
    uint32_t sum_dy = IR_NONE;
    if (ad_wants(a, n, 2) || ad_wants(a, n, 3))
        sum_dy = ad_sum_axes(a, dy, na, axes, 0);
    if (ad_wants(a, n, 0))
        ad_acc(a, n, 0, bld_mul(&a->b, dy, chan_view(a, bld_mul(&a->b, sc, invc), r)));
    if (ad_wants(a, n, 1)) {
        uint32_t s = ad_sum_axes(a, bld_mul(&a->b, dy, xc), na, axes, 0);
        ad_acc(a, n, 1, bld_mul(&a->b, s, invc));
    }
    ad_acc(a, n, 2, sum_dy);
    if (ad_wants(a, n, 3))
        ad_acc(a, n, 3, ad_op1(a, IR_OP_Neg, bld_mul(&a->b, sum_dy, bld_mul(&a->b, sc, invc))));
    if (ad_wants(a, n, 4)) { /* d inv / d var = -inv^3 / 2 */
        uint32_t s = ad_sum_axes(a, bld_mul(&a->b, dy, xc), na, axes, 0);
        uint32_t inv3 = bld_mul(&a->b, invc, bld_mul(&a->b, invc, invc));
        uint32_t f = bld_mul(&a->b, bld_mul(&a->b, sc, inv3), ad_k(a, var, -0.5));
        ad_acc(a, n, 4, bld_mul(&a->b, s, f));
    }
    return a->b.err;
}

/* per (n, c) plane statistics over the spatial axes; scale and B per channel */
int vjp_instnorm(struct ad *a, const struct ir_node *n)
{
    uint32_t x = n->in[0], sc = n->in[1], dy = ad_dy(a, n, 0);
    int r = ad_info(a, x).rank;
    int64_t sp[IR_MAX_RANK], nc[IR_MAX_RANK];
    int nsp = spatial_axes(r, sp), nnc = nonchan_axes(r, nc);
    struct ad_norm s = norm_stats(a, x, nsp, sp, ir_attr_float(n, "epsilon", 1e-5));
    if (ad_wants(a, n, 0))
        ad_acc(a, n, 0, norm_dx(a, &s, bld_mul(&a->b, dy, chan_view(a, sc, r)), nsp, sp));
    if (ad_wants(a, n, 1))
        ad_acc(a, n, 1, ad_sum_axes(a, bld_mul(&a->b, dy, s.xhat), nnc, nc, 0));
    if (ad_wants(a, n, 2))
        ad_acc(a, n, 2, ad_sum_axes(a, dy, nnc, nc, 0));
    return a->b.err;
}
