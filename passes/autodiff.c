/* autodiff.c — reverse-mode differentiation over the IR.
 *
 * needs: shapes and dtypes inferred for every tensor on a path from a wrt
 *        tensor to the loss; the loss a float tensor with one element.
 * guarantees: the gradient subgraph is appended to the same graph with the
 *        node builder (so every new node is shape-inferred); grads[i] has
 *        wrt[i]'s shape and dtype; nothing that existed before is changed.
 *
 * The sweep: (1) forward over the topological order, mark every float tensor
 * that depends on a wrt tensor ("need"); (2) seed dloss/dloss = 1; (3) walk the
 * nodes backwards and apply the node's VJP rule when an output has received a
 * gradient and an input needs one. Frozen branches (nothing needed) and dead
 * ends (no gradient arrived) cost nothing. A tensor's contributions are summed
 * with Add as they arrive; since every consumer of a tensor comes after it in
 * topological order, its gradient is complete before its producer's rule runs.
 * That is also what LowerLeakyHard's sign-gated VJP needs (METHOD §13.1): the
 * gate must see the fully accumulated upstream gradient, never one share.
 *
 * One `switch (n->op)` below lists every op (no default), so a new ops.def row
 * makes -Wswitch point here. Integer inputs (indices, axes, shapes) never get a
 * gradient; non-differentiable ops (comparisons, rounding, shape queries, ...)
 * are listed explicitly and contribute zero. Rules for the larger families live
 * in autodiff_nn.c and autodiff_tensor.c.
 *
 * Kinks and ties follow PyTorch: Relu passes 0 at x = 0, LeakyRelu/Elu/Selu
 * take the negative branch there, HardSigmoid passes strictly inside its
 * linear segment, HardSwish uses x/3 + 1/2 on [-3, 3]; Clip passes where
 * min <= x <= max (clamp: boundaries included); Max/Min, ReduceMax/Min and
 * GlobalMaxPool split the gradient evenly among tied elements (maximum, amax);
 * MaxPool sends it to the first maximum of each window (max_pool indices);
 * Pow's exponent gradient is 0 where the base is 0; ReduceL2's is 0 at a zero
 * norm. ReduceProd uses y / x and so needs nonzero inputs.
 *
 * Refused with ST_ERR_UNSUPPORTED (message names the node): Pad in reflect /
 * edge / wrap mode, an Einsum operand with a repeated index (diagonal), and
 * differentiating the internal *Grad ops (second order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff_impl.h"

/* ---- sweep helpers -------------------------------------------------------- */

struct ad_info ad_info(const struct ad *a, uint32_t t)
{
    const struct ir_tensor *x = &a->g->t[t];
    struct ad_info f = {.dt = x->dtype, .rank = x->rank, .numel = ir_numel(x), .data = x->data};
    memcpy(f.dims, x->dims, sizeof f.dims);
    return f;
}

uint32_t ad_dy(const struct ad *a, const struct ir_node *n, uint32_t k)
{
    if (k >= n->n_out || n->out[k] == IR_NONE || n->out[k] >= a->nt0)
        return IR_NONE;
    return a->grad[n->out[k]];
}

int ad_wants(const struct ad *a, const struct ir_node *n, uint32_t i)
{
    return i < n->n_in && n->in[i] != IR_NONE && n->in[i] < a->nt0 && a->need[n->in[i]];
}

int ad_fail(struct ad *a, const struct ir_node *n, enum status st, const char *fmt, ...)
{
    char buf[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!a->b.err)
        a->b.err = diag_set(a->b.d, st, "autodiff: node '%s' (%s): %s", n->name,
                            ir_ops[n->op].name, buf);
    return a->b.err;
}

/* add a contribution to input i's gradient; it must match the input exactly
 * (a mismatch is a bug in a rule, reported rather than silently broadcast) */
void ad_acc(struct ad *a, const struct ir_node *n, uint32_t i, uint32_t contrib)
{
    if (a->b.err || contrib == IR_NONE || !ad_wants(a, n, i))
        return;
    uint32_t t = n->in[i];
    struct ad_info x = ad_info(a, t), c = ad_info(a, contrib);
    if (c.dt != x.dt || c.rank != x.rank ||
        memcmp(c.dims, x.dims, (size_t)x.rank * sizeof x.dims[0]) != 0) {
        ad_fail(a, n, ST_ERR_INVALID, "internal: the gradient for input %u has the wrong type or "
                "shape", i);
        return;
    }
    a->grad[t] = a->grad[t] == IR_NONE ? contrib : bld_add(&a->b, a->grad[t], contrib);
}

/* ---- builder shortcuts ------------------------------------------------------ */

uint32_t ad_k(struct ad *a, uint32_t like, double v)
{
    if (a->b.err)
        return IR_NONE;
    return bld_scalar(&a->b, a->g->t[like].dtype, v);
}

uint32_t ad_op1(struct ad *a, enum ir_op op, uint32_t x) { return bld_op1(&a->b, op, x); }

uint32_t ad_where(struct ad *a, uint32_t c, uint32_t x, uint32_t y)
{
    uint32_t in[3] = {c, x, y};
    return bld_node(&a->b, IR_OP_Where, 3, in, 0, NULL, 1, NULL);
}

uint32_t ad_expand(struct ad *a, uint32_t x, int rank, const int64_t *dims)
{
    uint32_t in[2] = {x, bld_i64s(&a->b, rank, dims)};
    return bld_node(&a->b, IR_OP_Expand, 2, in, 0, NULL, 1, NULL);
}

uint32_t ad_reshape_to(struct ad *a, uint32_t x, uint32_t like)
{
    if (a->b.err)
        return IR_NONE;
    struct ad_info l = ad_info(a, like), s = ad_info(a, x);
    if (s.rank == l.rank && memcmp(s.dims, l.dims, (size_t)l.rank * sizeof l.dims[0]) == 0)
        return x;
    return bld_reshape(&a->b, x, l.rank, l.dims);
}

uint32_t ad_sum_to(struct ad *a, uint32_t x, uint32_t like)
{
    if (a->b.err)
        return IR_NONE;
    struct ad_info l = ad_info(a, like);
    return bld_sum_to(&a->b, x, l.rank, l.dims);
}

uint32_t ad_sum_axes(struct ad *a, uint32_t x, int naxes, const int64_t *axes, int keepdims)
{
    if (naxes == 0)
        return x;
    return bld_reduce(&a->b, IR_OP_ReduceSum, x, naxes, axes, keepdims);
}

uint32_t ad_mean_axes(struct ad *a, uint32_t x, int naxes, const int64_t *axes, int keepdims)
{
    if (naxes == 0)
        return x;
    return bld_reduce(&a->b, IR_OP_ReduceMean, x, naxes, axes, keepdims);
}

uint32_t ad_node_like(struct ad *a, enum ir_op op, const struct ir_node *n, uint32_t n_in,
                      const uint32_t *in, uint32_t n_extra, const struct ir_attr *extra)
{
    struct ir_attr at[32];
    uint32_t na = 0;
    for (uint32_t i = 0; i < n->n_attr && na < 24; i++)
        at[na++] = n->attr[i];
    for (uint32_t i = 0; i < n_extra && na < 32; i++)
        at[na++] = extra[i];
    return bld_node(&a->b, op, n_in, in, na, at, 1, NULL);
}

/* ---- elementwise unary: dx = f(x, y, dy) ---------------------------------- */

typedef uint32_t (*ad_dfn)(struct ad *a, const struct ir_node *n, uint32_t x, uint32_t y,
                           uint32_t dy);

static int unary(struct ad *a, const struct ir_node *n, ad_dfn f)
{
    uint32_t dy = ad_dy(a, n, 0);
    if (dy != IR_NONE && ad_wants(a, n, 0))
        ad_acc(a, n, 0, f(a, n, n->in[0], n->out[0], dy));
    return a->b.err;
}

#define DFN(name) \
    static uint32_t name(struct ad *a, const struct ir_node *n, uint32_t x, uint32_t y, uint32_t dy)
#define MUL(p, q) bld_mul(&a->b, (p), (q))
#define DIV(p, q) bld_div(&a->b, (p), (q))
#define ADD(p, q) bld_add(&a->b, (p), (q))
#define SUB(p, q) bld_sub(&a->b, (p), (q))
#define K(v) ad_k(a, x, (v))
#define CMP(op, p, q) bld_op2(&a->b, IR_OP_##op, (p), (q))

DFN(d_identity) { (void)n; (void)x; (void)y; return dy; }
DFN(d_neg) { (void)n; (void)x; (void)y; return ad_op1(a, IR_OP_Neg, dy); }
DFN(d_abs) { (void)n; (void)y; return MUL(dy, ad_op1(a, IR_OP_Sign, x)); }
/* kinks follow PyTorch: the gradient at x == 0 is 0 for Relu, alpha for LeakyRelu */
DFN(d_relu) { (void)n; (void)y; return ad_where(a, CMP(Greater, x, K(0)), dy, K(0)); }

DFN(d_leaky)
{
    (void)y;
    double al = ir_attr_float(n, "alpha", (double)0.01f);
    return ad_where(a, CMP(Greater, x, K(0)), dy, MUL(dy, K(al)));
}

DFN(d_elu)
{
    (void)y;
    double al = ir_attr_float(n, "alpha", 1.0);
    return ad_where(a, CMP(Greater, x, K(0)), dy, MUL(dy, MUL(K(al), ad_op1(a, IR_OP_Exp, x))));
}

DFN(d_selu)
{
    (void)y;
    double al = ir_attr_float(n, "alpha", 1.67326319217681884765625);
    double ga = ir_attr_float(n, "gamma", 1.05070102214813232421875);
    return ad_where(a, CMP(Greater, x, K(0)), MUL(dy, K(ga)),
                    MUL(dy, MUL(K(ga * al), ad_op1(a, IR_OP_Exp, x))));
}

DFN(d_celu)
{
    (void)y;
    double al = ir_attr_float(n, "alpha", 1.0);
    return ad_where(a, CMP(Greater, x, K(0)), dy,
                    MUL(dy, ad_op1(a, IR_OP_Exp, DIV(x, K(al)))));
}

DFN(d_thresh)
{
    (void)y;
    return ad_where(a, CMP(Greater, x, K(ir_attr_float(n, "alpha", 1.0))), dy, K(0));
}

DFN(d_sigmoid) { (void)n; return MUL(dy, MUL(y, SUB(K(1), y))); }

/* passes strictly inside the linear segment (PyTorch: open interval) */
DFN(d_hardsigmoid)
{
    (void)y;
    double al = ir_attr_float(n, "alpha", (double)0.2f), be = ir_attr_float(n, "beta", 0.5);
    uint32_t v = ADD(MUL(x, K(al)), K(be));
    uint32_t in = bld_op2(&a->b, IR_OP_And, CMP(Greater, v, K(0)), CMP(Less, v, K(1)));
    return ad_where(a, in, MUL(dy, K(al)), K(0));
}

/* PyTorch: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above */
DFN(d_hardswish)
{
    (void)n;
    (void)y;
    uint32_t mid = MUL(dy, ADD(DIV(x, K(3)), K(0.5)));
    return ad_where(a, CMP(Less, x, K(-3)), K(0), ad_where(a, CMP(Greater, x, K(3)), dy, mid));
}

DFN(d_softplus) { (void)n; (void)y; return MUL(dy, ad_op1(a, IR_OP_Sigmoid, x)); }

DFN(d_softsign)
{
    (void)n;
    (void)y;
    uint32_t den = ADD(K(1), ad_op1(a, IR_OP_Abs, x));
    return DIV(dy, MUL(den, den));
}

DFN(d_tanh) { (void)n; return MUL(dy, SUB(K(1), MUL(y, y))); }

DFN(d_erf)
{
    (void)n;
    (void)y;
    uint32_t e = ad_op1(a, IR_OP_Exp, ad_op1(a, IR_OP_Neg, MUL(x, x)));
    return MUL(dy, MUL(K(1.1283791670955126), e)); /* 2/sqrt(pi) */
}

/* exact: Phi(x) + x phi(x) (METHOD §13.1); tanh form: derivative of
 * 0.5x(1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715x^3) */
DFN(d_gelu)
{
    (void)y;
    if (strcmp(ir_attr_str(n, "approximate", "none"), "tanh") == 0) {
        const double c = 0.7978845608028654, k = 0.044715;
        uint32_t x2 = MUL(x, x);
        uint32_t t = ad_op1(a, IR_OP_Tanh, MUL(K(c), ADD(x, MUL(K(k), MUL(x2, x)))));
        uint32_t du = MUL(K(c), ADD(K(1), MUL(K(3 * k), x2)));
        uint32_t dt = MUL(MUL(K(0.5), x), MUL(SUB(K(1), MUL(t, t)), du));
        return MUL(dy, ADD(MUL(K(0.5), ADD(K(1), t)), dt));
    }
    uint32_t cdf = MUL(K(0.5), ADD(K(1), ad_op1(a, IR_OP_Erf, MUL(x, K(0.7071067811865476)))));
    uint32_t pdf = MUL(K(0.3989422804014327), ad_op1(a, IR_OP_Exp, MUL(K(-0.5), MUL(x, x))));
    return MUL(dy, ADD(cdf, MUL(x, pdf)));
}

DFN(d_exp) { (void)n; (void)x; return MUL(dy, y); }
DFN(d_log) { (void)n; (void)y; return DIV(dy, x); }
DFN(d_sqrt) { (void)n; return DIV(MUL(dy, K(0.5)), y); }
DFN(d_recip) { (void)n; return ad_op1(a, IR_OP_Neg, MUL(dy, MUL(y, y))); }
DFN(d_sin) { (void)n; (void)y; return MUL(dy, ad_op1(a, IR_OP_Cos, x)); }
DFN(d_cos) { (void)n; (void)y; return ad_op1(a, IR_OP_Neg, MUL(dy, ad_op1(a, IR_OP_Sin, x))); }
DFN(d_tan) { (void)n; return MUL(dy, ADD(K(1), MUL(y, y))); }
DFN(d_asin) { (void)n; (void)y; return DIV(dy, ad_op1(a, IR_OP_Sqrt, SUB(K(1), MUL(x, x)))); }

DFN(d_acos)
{
    (void)n;
    (void)y;
    return ad_op1(a, IR_OP_Neg, DIV(dy, ad_op1(a, IR_OP_Sqrt, SUB(K(1), MUL(x, x)))));
}

DFN(d_atan) { (void)n; (void)y; return DIV(dy, ADD(K(1), MUL(x, x))); }
DFN(d_sinh) { (void)n; (void)y; return MUL(dy, ad_op1(a, IR_OP_Cosh, x)); }
DFN(d_cosh) { (void)n; (void)y; return MUL(dy, ad_op1(a, IR_OP_Sinh, x)); }
DFN(d_asinh) { (void)n; (void)y; return DIV(dy, ad_op1(a, IR_OP_Sqrt, ADD(MUL(x, x), K(1)))); }
DFN(d_acosh) { (void)n; (void)y; return DIV(dy, ad_op1(a, IR_OP_Sqrt, SUB(MUL(x, x), K(1)))); }
DFN(d_atanh) { (void)n; (void)y; return DIV(dy, SUB(K(1), MUL(x, x))); }

/* Cast: the gradient goes back in the source's (float) dtype */
DFN(d_cast) { (void)n; (void)y; return bld_cast(&a->b, dy, a->g->t[x].dtype); }

/* METHOD §2.4: the internal VJP ops, with the forward node's alpha */
DFN(d_lower_leaky)
{
    (void)y;
    uint32_t in[2] = {x, dy};
    return ad_node_like(a, IR_OP_LowerLeakyHardGrad, n, 2, in, 0, NULL);
}

DFN(d_upper_leaky)
{
    (void)y;
    uint32_t in[2] = {x, dy};
    return ad_node_like(a, IR_OP_UpperLeakyHardGrad, n, 2, in, 0, NULL);
}

/* Clip(x, min?, max?): like PyTorch's clamp, x passes where min <= x <= max
 * (boundaries included); a tensor bound gets the gradient of the elements it
 * clamped. Assumes min <= max (ONNX then outputs max everywhere). */
static int vjp_clip(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0), x = n->in[0];
    uint32_t lo = n->n_in > 1 ? n->in[1] : IR_NONE, hi = n->n_in > 2 ? n->in[2] : IR_NONE;
    uint32_t pass = IR_NONE;
    if (lo != IR_NONE)
        pass = CMP(GreaterOrEqual, x, lo);
    if (hi != IR_NONE) {
        uint32_t c = CMP(LessOrEqual, x, hi);
        pass = pass == IR_NONE ? c : bld_op2(&a->b, IR_OP_And, pass, c);
    }
    if (ad_wants(a, n, 0))
        ad_acc(a, n, 0, pass == IR_NONE ? dy : ad_where(a, pass, dy, K(0)));
    if (ad_wants(a, n, 1))
        ad_acc(a, n, 1, ad_sum_to(a, ad_where(a, CMP(Less, x, lo), dy, K(0)), lo));
    if (ad_wants(a, n, 2))
        ad_acc(a, n, 2, ad_sum_to(a, ad_where(a, CMP(Greater, x, hi), dy, K(0)), hi));
    return a->b.err;
}

/* ---- binary and variadic broadcasting ops ------------------------------- */

/* dy * f summed back to the shape of input i (the adjoint of broadcasting) */
static void acc_bcast(struct ad *a, const struct ir_node *n, uint32_t i, uint32_t v)
{
    if (ad_wants(a, n, i))
        ad_acc(a, n, i, ad_sum_to(a, v, n->in[i]));
}

static int vjp_add(struct ad *a, const struct ir_node *n, int sub)
{
    uint32_t dy = ad_dy(a, n, 0);
    acc_bcast(a, n, 0, dy);
    if (ad_wants(a, n, 1))
        acc_bcast(a, n, 1, sub ? ad_op1(a, IR_OP_Neg, dy) : dy);
    return a->b.err;
}

static int vjp_mul(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0);
    if (ad_wants(a, n, 0))
        acc_bcast(a, n, 0, bld_mul(&a->b, dy, n->in[1]));
    if (ad_wants(a, n, 1))
        acc_bcast(a, n, 1, bld_mul(&a->b, dy, n->in[0]));
    return a->b.err;
}

/* y = p / q: dp = dy / q, dq = -dy y / q */
static int vjp_div(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0), q = n->in[1];
    if (ad_wants(a, n, 0))
        acc_bcast(a, n, 0, bld_div(&a->b, dy, q));
    if (ad_wants(a, n, 1))
        acc_bcast(a, n, 1, ad_op1(a, IR_OP_Neg, bld_div(&a->b, bld_mul(&a->b, dy, n->out[0]), q)));
    return a->b.err;
}

/* y = x^e: dx = e x^(e-1) dy; de = y log(x) dy, 0 where x == 0 (as PyTorch) */
static int vjp_pow(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0), x = n->in[0], e = n->in[1], y = n->out[0];
    if (ad_wants(a, n, 0)) {
        enum ir_dtype dt = a->g->t[x].dtype;
        uint32_t ef = a->g->t[e].dtype == dt ? e : bld_cast(&a->b, e, dt); /* integer exponent */
        /* a scalar constant exponent gets a constant e − 1, which kernels specialise */
        const struct ir_tensor *et = &a->g->t[ef];
        int kst = et->data && et->rank == 0 && et->dtype == IR_F32;
        uint32_t in[2] = {x, kst ? bld_f32(&a->b, (double)(*(const float *)et->data - 1.0f))
                                 : SUB(ef, ad_k(a, ef, 1))};
        uint32_t pw = bld_node(&a->b, IR_OP_Pow, 2, in, 0, NULL, 1, NULL);
        acc_bcast(a, n, 0, MUL(dy, MUL(ef, pw)));
    }
    if (ad_wants(a, n, 1)) {
        uint32_t v = MUL(MUL(dy, y), ad_op1(a, IR_OP_Log, x));
        uint32_t z = CMP(Equal, x, K(0));
        acc_bcast(a, n, 1, ad_where(a, z, ad_k(a, y, 0), v));
    }
    return a->b.err;
}

/* float Mod is fmod: y = p - trunc(p/q) q; dp = dy, dq = -trunc(p/q) dy */
static int vjp_mod(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0), x = n->in[0], q = n->in[1];
    acc_bcast(a, n, 0, dy);
    if (ad_wants(a, n, 1)) {
        uint32_t r = DIV(x, q);
        uint32_t fl = ad_op1(a, IR_OP_Floor, ad_op1(a, IR_OP_Abs, r));
        uint32_t tr = MUL(ad_op1(a, IR_OP_Sign, r), fl); /* trunc(p/q) */
        acc_bcast(a, n, 1, ad_op1(a, IR_OP_Neg, MUL(dy, tr)));
    }
    return a->b.err;
}

/* PRelu(x, s): x < 0 ? s x : x. Before opset 7 a 1-D slope of C runs along
 * axis 1; it is viewed as [C, 1, ...] so numpy broadcasting applies. */
static int vjp_prelu(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0), x = n->in[0], s = n->in[1];
    struct ad_info xi = ad_info(a, x), si = ad_info(a, s);
    uint32_t sv = s;
    if (n->opset < 7 && si.rank == 1 && xi.rank >= 2 && si.dims[0] == xi.dims[1]) {
        int64_t dims[IR_MAX_RANK];
        for (int i = 0; i < xi.rank - 1; i++)
            dims[i] = i == 0 ? si.dims[0] : 1;
        sv = bld_reshape(&a->b, s, xi.rank - 1, dims);
    }
    uint32_t neg = CMP(Less, x, K(0));
    if (ad_wants(a, n, 0))
        ad_acc(a, n, 0, ad_where(a, neg, MUL(dy, sv), dy));
    if (ad_wants(a, n, 1))
        ad_acc(a, n, 1, ad_reshape_to(a, ad_sum_to(a, ad_where(a, neg, MUL(dy, x), K(0)), sv), s));
    return a->b.err;
}

/* variadic Max/Min: the gradient goes to the inputs equal to the result,
 * split evenly among ties (PyTorch's maximum/minimum rule, generalised) */
static int vjp_maxmin(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0), y = n->out[0], m[64], cnt = IR_NONE;
    if (n->n_in > 64)
        return ad_fail(a, n, ST_ERR_UNSUPPORTED, "more than 64 inputs");
    for (uint32_t i = 0; i < n->n_in; i++) {
        m[i] = bld_cast(&a->b, CMP(Equal, n->in[i], y), a->g->t[y].dtype);
        cnt = cnt == IR_NONE ? m[i] : ADD(cnt, m[i]);
    }
    uint32_t share = DIV(dy, cnt);
    for (uint32_t i = 0; i < n->n_in; i++)
        if (ad_wants(a, n, i))
            acc_bcast(a, n, i, MUL(share, m[i]));
    return a->b.err;
}

/* Sum: dy to every input; Mean: dy / count */
static int vjp_sum(struct ad *a, const struct ir_node *n, int mean)
{
    uint32_t dy = ad_dy(a, n, 0);
    uint32_t g = mean ? MUL(dy, ad_k(a, dy, 1.0 / (double)n->n_in)) : dy;
    for (uint32_t i = 0; i < n->n_in; i++)
        acc_bcast(a, n, i, g);
    return a->b.err;
}

static int vjp_where(struct ad *a, const struct ir_node *n)
{
    uint32_t dy = ad_dy(a, n, 0), c = n->in[0], z = ad_k(a, dy, 0);
    if (ad_wants(a, n, 1))
        acc_bcast(a, n, 1, ad_where(a, c, dy, z));
    if (ad_wants(a, n, 2))
        acc_bcast(a, n, 2, ad_where(a, c, z, dy));
    return a->b.err;
}

#undef DFN
#undef MUL
#undef DIV
#undef ADD
#undef SUB
#undef K
#undef CMP

/* ---- the one switch ---------------------------------------------------------- */

static int second_order(struct ad *a, const struct ir_node *n)
{
    return ad_fail(a, n, ST_ERR_UNSUPPORTED, "differentiating a gradient op (second-order "
                   "differentiation) is not supported");
}

static int vjp(struct ad *a, const struct ir_node *n)
{
    switch (n->op) {
    /* unary elementwise */
    case IR_OP_Identity: return unary(a, n, d_identity);
    case IR_OP_Neg: return unary(a, n, d_neg);
    case IR_OP_Abs: return unary(a, n, d_abs);
    case IR_OP_Relu: return unary(a, n, d_relu);
    case IR_OP_LeakyRelu: return unary(a, n, d_leaky);
    case IR_OP_Elu: return unary(a, n, d_elu);
    case IR_OP_Selu: return unary(a, n, d_selu);
    case IR_OP_Celu: return unary(a, n, d_celu);
    case IR_OP_ThresholdedRelu: return unary(a, n, d_thresh);
    case IR_OP_Sigmoid: return unary(a, n, d_sigmoid);
    case IR_OP_HardSigmoid: return unary(a, n, d_hardsigmoid);
    case IR_OP_HardSwish: return unary(a, n, d_hardswish);
    case IR_OP_Softplus: return unary(a, n, d_softplus);
    case IR_OP_Softsign: return unary(a, n, d_softsign);
    case IR_OP_Tanh: return unary(a, n, d_tanh);
    case IR_OP_Erf: return unary(a, n, d_erf);
    case IR_OP_Gelu: return unary(a, n, d_gelu);
    case IR_OP_Exp: return unary(a, n, d_exp);
    case IR_OP_Log: return unary(a, n, d_log);
    case IR_OP_Sqrt: return unary(a, n, d_sqrt);
    case IR_OP_Reciprocal: return unary(a, n, d_recip);
    case IR_OP_Sin: return unary(a, n, d_sin);
    case IR_OP_Cos: return unary(a, n, d_cos);
    case IR_OP_Tan: return unary(a, n, d_tan);
    case IR_OP_Asin: return unary(a, n, d_asin);
    case IR_OP_Acos: return unary(a, n, d_acos);
    case IR_OP_Atan: return unary(a, n, d_atan);
    case IR_OP_Sinh: return unary(a, n, d_sinh);
    case IR_OP_Cosh: return unary(a, n, d_cosh);
    case IR_OP_Asinh: return unary(a, n, d_asinh);
    case IR_OP_Acosh: return unary(a, n, d_acosh);
    case IR_OP_Atanh: return unary(a, n, d_atanh);
    case IR_OP_Cast: return unary(a, n, d_cast);
    case IR_OP_Dropout: return unary(a, n, d_identity); /* inference form; mask is bool */
    case IR_OP_Clip: return vjp_clip(a, n);
    case IR_OP_LowerLeakyHard: return unary(a, n, d_lower_leaky);
    case IR_OP_UpperLeakyHard: return unary(a, n, d_upper_leaky);
    /* binary and variadic */
    case IR_OP_Add: return vjp_add(a, n, 0);
    case IR_OP_Sub: return vjp_add(a, n, 1);
    case IR_OP_Mul: return vjp_mul(a, n);
    case IR_OP_Div: return vjp_div(a, n);
    case IR_OP_Pow: return vjp_pow(a, n);
    case IR_OP_Mod: return vjp_mod(a, n);
    case IR_OP_PRelu: return vjp_prelu(a, n);
    case IR_OP_Max: case IR_OP_Min: return vjp_maxmin(a, n);
    case IR_OP_Sum: return vjp_sum(a, n, 0);
    case IR_OP_Mean: return vjp_sum(a, n, 1);
    case IR_OP_Where: return vjp_where(a, n);
    /* reductions, normalisations */
    case IR_OP_ReduceSum: return vjp_reduce(a, n, AD_SUM);
    case IR_OP_ReduceMean: return vjp_reduce(a, n, AD_MEAN);
    case IR_OP_ReduceMax: return vjp_reduce(a, n, AD_MAX);
    case IR_OP_ReduceMin: return vjp_reduce(a, n, AD_MIN);
    case IR_OP_ReduceProd: return vjp_reduce(a, n, AD_PROD);
    case IR_OP_ReduceL1: return vjp_reduce(a, n, AD_L1);
    case IR_OP_ReduceL2: return vjp_reduce(a, n, AD_L2);
    case IR_OP_ReduceSumSquare: return vjp_reduce(a, n, AD_SUMSQ);
    case IR_OP_ReduceLogSum: return vjp_reduce(a, n, AD_LOGSUM);
    case IR_OP_ReduceLogSumExp: return vjp_reduce(a, n, AD_LSE);
    case IR_OP_CumSum: return vjp_cumsum(a, n);
    case IR_OP_Softmax: return vjp_softmax(a, n, 0);
    case IR_OP_LogSoftmax: return vjp_softmax(a, n, 1);
    case IR_OP_LayerNormalization: return vjp_layernorm(a, n);
    case IR_OP_BatchNormalization: return vjp_batchnorm(a, n);
    case IR_OP_InstanceNormalization: return vjp_instnorm(a, n);
    /* linear algebra, convolution, pooling */
    case IR_OP_MatMul: return vjp_matmul(a, n);
    case IR_OP_Gemm: return vjp_gemm(a, n);
    case IR_OP_Einsum: return vjp_einsum(a, n);
    case IR_OP_Conv: return vjp_conv(a, n);
    case IR_OP_MaxPool: return vjp_maxpool(a, n);
    case IR_OP_AveragePool: return vjp_avgpool(a, n);
    case IR_OP_GlobalAveragePool: return vjp_global_avgpool(a, n);
    case IR_OP_GlobalMaxPool: return vjp_global_maxpool(a, n);
    /* data movement */
    case IR_OP_Reshape: case IR_OP_Flatten: case IR_OP_Squeeze: case IR_OP_Unsqueeze:
        return vjp_reshape(a, n);
    case IR_OP_Transpose: return vjp_transpose(a, n);
    case IR_OP_Concat: return vjp_concat(a, n);
    case IR_OP_Split: return vjp_split(a, n);
    case IR_OP_Slice: return vjp_slice(a, n);
    case IR_OP_Gather: return vjp_gather(a, n);
    case IR_OP_GatherElements: return vjp_gather_elements(a, n);
    case IR_OP_Expand: return vjp_expand(a, n);
    case IR_OP_Tile: return vjp_tile(a, n);
    case IR_OP_Pad: return vjp_pad(a, n);
    case IR_OP_Trilu: return vjp_trilu(a, n);
    /* zero gradient: piecewise constant, boolean or integer results */
    case IR_OP_Floor: case IR_OP_Ceil: case IR_OP_Round: case IR_OP_Sign:
    case IR_OP_Not: case IR_OP_IsNaN: case IR_OP_IsInf:
    case IR_OP_Equal: case IR_OP_Less: case IR_OP_LessOrEqual: case IR_OP_Greater:
    case IR_OP_GreaterOrEqual: case IR_OP_And: case IR_OP_Or: case IR_OP_Xor:
    case IR_OP_ArgMax: case IR_OP_ArgMin: case IR_OP_Hardmax:
    case IR_OP_Shape: case IR_OP_Size: case IR_OP_ConstantOfShape: case IR_OP_Range:
    case IR_OP_StopGradient: /* a leaf by request: values computed here are constants */
    case IR_OP_TopKMask:     /* a 0/1 selection: piecewise constant */
        return ST_OK;
    /* internal gradient ops: first-order only */
    case IR_OP_LowerLeakyHardGrad: case IR_OP_UpperLeakyHardGrad:
    case IR_OP_ConvGradInput: case IR_OP_ConvGradWeight: case IR_OP_MaxPoolGrad:
    case IR_OP_AveragePoolGrad: case IR_OP_GatherGrad: case IR_OP_GatherElementsGrad:
    case IR_OP_SliceGrad: case IR_OP_ChunkedKLGrad:
        return second_order(a, n);
    case IR_OP_ChunkedKL: return vjp_chunked_kl(a, n);
    case IR_OP_COUNT:
        break;
    }
    return ad_fail(a, n, ST_ERR_INVALID, "unknown op");
}

/* ---- the sweep ------------------------------------------------------------------ */

static int node_active(const struct ad *a, const struct ir_node *n)
{
    int has_dy = 0, has_need = 0;
    for (uint32_t k = 0; k < n->n_out; k++)
        has_dy |= ad_dy(a, n, k) != IR_NONE;
    for (uint32_t i = 0; i < n->n_in; i++)
        has_need |= ad_wants(a, n, i);
    return has_dy && has_need;
}

/* mark every float tensor downstream of a wrt tensor */
static void mark_need(struct ad *a, const uint32_t *topo, uint32_t ntopo, uint32_t n_wrt,
                      const uint32_t *wrt)
{
    struct ir_graph *g = a->g;
    for (uint32_t i = 0; i < n_wrt; i++)
        if (ir_dtype_is_float(g->t[wrt[i]].dtype))
            a->need[wrt[i]] = 1;
    for (uint32_t k = 0; k < ntopo; k++) {
        const struct ir_node *n = &g->n[topo[k]];
        int any = 0;
        for (uint32_t i = 0; i < n->n_in; i++)
            any |= n->in[i] != IR_NONE && a->need[n->in[i]];
        for (uint32_t o = 0; any && o < n->n_out; o++)
            if (n->out[o] != IR_NONE && ir_dtype_is_float(g->t[n->out[o]].dtype))
                a->need[n->out[o]] = 1;
    }
}

static int check_loss(struct ir_graph *g, uint32_t loss, uint32_t n_wrt, const uint32_t *wrt,
                      struct diag *d)
{
    if (loss >= g->nt)
        return diag_set(d, ST_ERR_INVALID, "autodiff: loss id %u is not a tensor", loss);
    const struct ir_tensor *l = &g->t[loss];
    if (!ir_dtype_is_float(l->dtype) || l->rank < 0 || ir_numel(l) != 1)
        return diag_set(d, ST_ERR_INVALID, "autodiff: loss '%s' must be a float tensor with one "
                        "element", l->name);
    for (uint32_t i = 0; i < n_wrt; i++)
        if (wrt[i] >= g->nt || g->t[wrt[i]].rank < 0)
            return diag_set(d, ST_ERR_INVALID, "autodiff: wrt[%u] is not a shaped tensor", i);
    return ST_OK;
}

static int sweep(struct ad *a, const uint32_t *topo, uint32_t ntopo, uint32_t loss)
{
    struct ad_info li = ad_info(a, loss);
    unsigned char buf[16] = {0};
    ir_store_f64(li.dt, buf, 0, 1.0);
    a->grad[loss] = bld_const(&a->b, li.dt, li.rank, li.dims, buf);
    for (uint32_t k = ntopo; k-- > 0 && !a->b.err;) {
        struct ir_node n = a->g->n[topo[k]]; /* a copy: building moves g->n */
        if (node_active(a, &n))
            vjp(a, &n);
    }
    return a->b.err;
}

int pass_autodiff(struct ir_graph *g, uint32_t loss, uint32_t n_wrt, const uint32_t *wrt,
                  uint32_t *grads, struct diag *d)
{
    int st = check_loss(g, loss, n_wrt, wrt, d);
    if (st || (st = ir_fill_topo(g, d)))
        return st;
    /* a fresh name prefix per call, so repeated differentiation stays readable */
    char prefix[32] = "grad", probe[48];
    for (int k = 1; k < 1000; k++) {
        snprintf(probe, sizeof probe, "%s/const_0", prefix);
        if (ir_tensor_find(g, probe) == IR_NONE)
            break;
        snprintf(prefix, sizeof prefix, "grad%d", k);
    }
    struct ad a = {.g = g, .b = bld_begin(g, prefix, d), .nt0 = g->nt};
    uint32_t ntopo = g->ntopo, *topo = malloc((ntopo + 1) * sizeof *topo);
    a.grad = malloc((a.nt0 + 1) * sizeof *a.grad);
    a.need = calloc(a.nt0 + 1, 1);
    if (!topo || !a.grad || !a.need) {
        st = diag_set(d, ST_ERR_NOMEM, "autodiff: out of memory");
    } else {
        memcpy(topo, g->topo, ntopo * sizeof *topo);
        for (uint32_t t = 0; t < a.nt0; t++)
            a.grad[t] = IR_NONE;
        mark_need(&a, topo, ntopo, n_wrt, wrt);
        if (a.need[loss])
            st = sweep(&a, topo, ntopo, loss);
        /* what the loss does not depend on gets an explicit zero */
        for (uint32_t i = 0; !st && i < n_wrt; i++)
            grads[i] = a.grad[wrt[i]] != IR_NONE ? a.grad[wrt[i]] : bld_zeros_like(&a.b, wrt[i]);
        if (!st)
            st = a.b.err;
    }
    free(topo);
    free(a.grad);
    free(a.need);
    ir_invalidate(g);
    return st;
}
