/* llvm_emit.c — a fused elementwise group (fuse.h) as LLVM IR: one element's values,
 * every shape and broadcast stride a constant, in a host loop or one PTX thread.
 *
 * Numerics follow the reference kernels (codegen/ref) operation by operation: float32
 * arithmetic where ref does float32 (Add..Min, comparisons, Relu, Sqrt, Reciprocal:
 * the latter two are correctly rounded either way), and where ref computes in double
 * and rounds once (the transcendentals, the squashing functions with their alpha)
 * the same double operations. Those give the reference's bits, except Exp, Erf,
 * Sigmoid, exact GELU and Pow: they use the cpu target's vectorisable exp/erf/erfc/pow
 * (cpu_math.h; within one ulp of ref, and the cpu target's bits). Tanh, Log and
 * Softplus call libm like ref (libdevice's __nv_* on the GPU, whose last double bit
 * can differ from glibc's). No fast-math flags and no contraction: a vectorised and a
 * scalar iteration compute the same bits, whatever the thread split. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_impl.h"

struct emit {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    const struct ir_graph *g;
    const struct cg_group *grp;
    enum lk_kind kind;
    LLVMTypeRef f32, f64, i1, i8, i32, i64, ptr;
    LLVMValueRef *bufp; /* per buffer of the group: its pointer */
    LLVMValueRef *val;  /* per tensor: its value for the current element */
    LLVMValueRef idx;   /* the element index (i64) */
    const struct ir_tensor *shape; /* the group's output shape */
    /* host row loops (host_loop): per tensor, its offset at the row's first element and
     * whether it steps along the row (else it is the same value all along it) */
    LLVMValueRef *row_base, j;
    unsigned char *row_step;
};

/* ---- helpers ---------------------------------------------------------------- */

static LLVMValueRef cf(struct emit *e, double v) { return LLVMConstReal(e->f32, v); }
static LLVMValueRef cd(struct emit *e, double v) { return LLVMConstReal(e->f64, v); }
static LLVMValueRef ci64(struct emit *e, int64_t v)
{
    return LLVMConstInt(e->i64, (unsigned long long)v, 1);
}

static LLVMValueRef ext(struct emit *e, LLVMValueRef x) { return LLVMBuildFPExt(e->b, x, e->f64, ""); }
static LLVMValueRef trunc32(struct emit *e, LLVMValueRef x)
{
    return LLVMBuildFPTrunc(e->b, x, e->f32, "");
}

static LLVMValueRef sel(struct emit *e, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(e->b, c, a, b, "");
}

static LLVMValueRef fcmp(struct emit *e, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFCmp(e->b, p, a, b, "");
}

static void add_fn_attr(struct emit *e, LLVMValueRef fn, const char *name, uint64_t v)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(e->ctx, kind, v));
}

/* a double libm function of n arguments (glibc's on the host, libdevice's __nv_*
 * on the GPU), declared without side effects: errno is nobody's business here, and
 * a call that could write memory would keep the loop from being vectorised */
static LLVMValueRef libm(struct emit *e, const char *name, LLVMValueRef *args, unsigned n)
{
    char full[64];
    snprintf(full, sizeof full, "%s%s", e->kind == LK_NVPTX ? "__nv_" : "", name);
    LLVMTypeRef params[2] = {e->f64, e->f64};
    LLVMTypeRef fty = LLVMFunctionType(e->f64, params, n, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, full);
    if (!fn) {
        fn = LLVMAddFunction(e->mod, full, fty);
        add_fn_attr(e, fn, "memory", 0); /* memory(none) */
        add_fn_attr(e, fn, "nounwind", 0);
        add_fn_attr(e, fn, "willreturn", 0);
    }
    return LLVMBuildCall2(e->b, fty, fn, args, n, "");
}

static LLVMValueRef libm1(struct emit *e, const char *name, LLVMValueRef x)
{
    return libm(e, name, &x, 1);
}

static LLVMValueRef intrinsic1(struct emit *e, const char *name, LLVMValueRef x)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->mod, id, &t, 1);
    return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, &t, 1), fn, &x, 1, "");
}

/* ---- loads and stores ------------------------------------------------------- */

/* element offset of an input broadcast to the group's shape at flat index i:
 * sum over runs of dims it steps through contiguously of ((i / inner) % len) * stride */
static LLVMValueRef input_offset(struct emit *e, const struct ir_tensor *t)
{
    const struct ir_tensor *o = e->shape;
    int64_t st[IR_MAX_RANK], numel = ir_numel(o);
    if (ir_numel(t) == numel)
        return e->idx; /* same element count and broadcastable: the same shape */
    ir_broadcast_strides(t->rank, t->dims, o->rank, o->dims, st);
    LLVMValueRef off = ci64(e, 0);
    int64_t inner = 1;
    for (int d = o->rank - 1; d >= 0;) {
        int64_t len = o->dims[d], stride = st[d];
        for (d--; d >= 0 && st[d] == stride * len; d--)
            len *= o->dims[d];
        if (stride != 0 && len > 1) {
            LLVMValueRef q = inner > 1 ? LLVMBuildUDiv(e->b, e->idx, ci64(e, inner), "") : e->idx;
            if (inner * len < numel)
                q = LLVMBuildURem(e->b, q, ci64(e, len), "");
            off = LLVMBuildAdd(e->b, off, LLVMBuildMul(e->b, q, ci64(e, stride), ""), "");
        }
        inner *= len;
    }
    return off;
}

static uint32_t buf_slot(const struct cg_group *gr, uint32_t t, int out)
{
    const uint32_t *list = out ? gr->out : gr->in;
    uint32_t n = out ? gr->n_out : gr->n_in;
    for (uint32_t i = 0; i < n; i++)
        if (list[i] == t)
            return (out ? gr->n_in : 0) + i;
    return UINT32_MAX;
}

/* bool in memory is a byte, 0 or 1; in registers an i1 */
static LLVMValueRef load_input(struct emit *e, uint32_t t)
{
    const struct ir_tensor *x = &e->g->t[t];
    int isb = x->dtype == IR_BOOL;
    if (x->data && ir_numel(x) == 1) /* a scalar constant becomes an immediate */
        return isb ? LLVMConstInt(e->i1, *(const uint8_t *)x->data != 0, 0)
                   : cf(e, (double)*(const float *)x->data);
    LLVMTypeRef ty = isb ? e->i8 : e->f32;
    LLVMValueRef off = !e->row_base   ? input_offset(e, x)
                       : e->row_step[t] ? LLVMBuildAdd(e->b, e->row_base[t], e->j, "")
                                        : e->row_base[t];
    LLVMValueRef p = LLVMBuildInBoundsGEP2(e->b, ty, e->bufp[buf_slot(e->grp, t, 0)], &off, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(e->b, ty, p, "");
    LLVMSetAlignment(v, isb ? 1 : 4);
    return isb ? LLVMBuildICmp(e->b, LLVMIntNE, v, LLVMConstInt(e->i8, 0, 0), "") : v;
}

static LLVMValueRef operand(struct emit *e, const struct ir_node *n, uint32_t i)
{
    uint32_t t = n->in[i];
    if (!e->val[t])
        e->val[t] = load_input(e, t);
    return e->val[t];
}

static void store_output(struct emit *e, uint32_t t, LLVMValueRef v)
{
    uint32_t slot = buf_slot(e->grp, t, 1);
    if (slot == UINT32_MAX)
        return; /* internal to the group */
    int isb = LLVMTypeOf(v) == e->i1;
    LLVMTypeRef ty = isb ? e->i8 : e->f32;
    LLVMValueRef p = LLVMBuildInBoundsGEP2(e->b, ty, e->bufp[slot], &e->idx, 1, "");
    LLVMValueRef s = LLVMBuildStore(e->b, isb ? LLVMBuildZExt(e->b, v, e->i8, "") : v, p);
    LLVMSetAlignment(s, isb ? 1 : 4);
}

/* ---- exp, erf, erfc: codegen/cpu/cpu_math.h, operation for operation -------------
 * glibc's exp/erf/erfc are scalar calls of 10-60 ns that stop a loop from vectorising
 * (a GELU-MLP CI function spends most of a train step in them). These are the cpu
 * target's branch-free double formulas, emitted op by op in the same order (the
 * Horner steps as fused multiply-adds, like cpu_math.h), so results are the cpu
 * target's bits: within one float ulp of the reference. */

/* c[0] x^(n-1) + ... + c[n-1], one llvm.fma per step as cpu_math.h's fma() */
static LLVMValueRef horner(struct emit *e, LLVMValueRef x, const double *c, int n)
{
    LLVMValueRef p = cd(e, c[0]);
    unsigned id = LLVMLookupIntrinsicID("llvm.fma", 8);
    LLVMTypeRef t = e->f64;
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->mod, id, &t, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(e->ctx, id, &t, 1);
    for (int i = 1; i < n; i++) {
        LLVMValueRef a[3] = {p, x, cd(e, c[i])};
        p = LLVMBuildCall2(e->b, fty, fn, a, 3, "");
    }
    return p;
}

/* cpu_exp: clamp to [-700, 700], a = k ln2 + r, 2^k from the exponent bits, degree 6 */
static LLVMValueRef m_exp(struct emit *e, LLVMValueRef a)
{
    static const double c[7] = {0.0013941108433972674, 0.008375126398153335,
                                0.04166635289677516, 0.16666415514653277, 0.5000000047117757,
                                1.000000037716214, 1.0};
    const double shifter = 0x1.8p52;
    a = sel(e, fcmp(e, LLVMRealOLT, a, cd(e, -700.0)), cd(e, -700.0),
            sel(e, fcmp(e, LLVMRealOGT, a, cd(e, 700.0)), cd(e, 700.0), a));
    LLVMValueRef y = LLVMBuildFAdd(e->b, LLVMBuildFMul(e->b, a, cd(e, 1.4426950408889634), ""),
                                   cd(e, shifter), "");
    LLVMValueRef kd = LLVMBuildFSub(e->b, y, cd(e, shifter), "");
    LLVMValueRef r = LLVMBuildFSub(e->b, a, LLVMBuildFMul(e->b, kd, cd(e, 0.6931471805599453), ""), "");
    uint64_t sbits;
    memcpy(&sbits, &shifter, 8);
    LLVMValueRef yb = LLVMBuildBitCast(e->b, y, e->i64, "");
    LLVMValueRef kb = LLVMBuildSub(e->b, yb, LLVMConstInt(e->i64, sbits, 0), "");
    kb = LLVMBuildShl(e->b, LLVMBuildAdd(e->b, kb, LLVMConstInt(e->i64, 1023, 0), ""),
                      LLVMConstInt(e->i64, 52, 0), "");
    LLVMValueRef scale = LLVMBuildBitCast(e->b, kb, e->f64, "");
    return LLVMBuildFMul(e->b, horner(e, r, c, 7), scale, "");
}

/* cpu_erfc_pos: erfc(z) = T exp(-z^2 + g(T)), T = 1 / (1 + z/2), z >= 0 */
static LLVMValueRef m_erfc_pos(struct emit *e, LLVMValueRef z)
{
    static const double c[13] = {0.06308584359433057, -0.5567954856692163, 1.9822865480879337,
                                 -3.696915255871211, 3.8225773902430333, -2.1227180445386407,
                                 0.7125918327995515, -0.3379492491978383, -0.05647743427273634,
                                 0.08070750305818251, 0.37512063167248894, 0.9999978343568101,
                                 -1.2655121170707262};
    LLVMValueRef t = LLVMBuildFDiv(e->b, cd(e, 1.0),
                                   LLVMBuildFAdd(e->b, cd(e, 1.0), LLVMBuildFMul(e->b, cd(e, 0.5), z, ""), ""), "");
    LLVMValueRef g = horner(e, t, c, 13);
    return LLVMBuildFMul(e->b, t, m_exp(e, LLVMBuildFSub(e->b, g, LLVMBuildFMul(e->b, z, z, ""), "")), "");
}

static LLVMValueRef m_abs(struct emit *e, LLVMValueRef x) /* x < 0 ? -x : x */
{
    return sel(e, fcmp(e, LLVMRealOLT, x, cd(e, 0.0)), LLVMBuildFNeg(e->b, x, ""), x);
}

/* cpu_erf: x P(x^2) for |x| <= 1/2, else +-(1 - erfc(|x|)) */
static LLVMValueRef m_erf(struct emit *e, LLVMValueRef x)
{
    static const double c[6] = {-0.0007694534279142308, 0.005200413724335493,
                                -0.026863143032249386, 0.11283774013179539,
                                -0.37612638525650693, 1.1283791670824095};
    LLVMValueRef z = m_abs(e, x);
    LLVMValueRef big = LLVMBuildFSub(e->b, cd(e, 1.0), m_erfc_pos(e, z), "");
    LLVMValueRef small = LLVMBuildFMul(e->b, x, horner(e, LLVMBuildFMul(e->b, x, x, ""), c, 6), "");
    LLVMValueRef neg = fcmp(e, LLVMRealOLT, x, cd(e, 0.0));
    return sel(e, fcmp(e, LLVMRealOLE, z, cd(e, 0.5)), small,
               sel(e, neg, LLVMBuildFNeg(e->b, big, ""), big));
}

/* cpu_erfc: 2 - erfc(-t) below 0 */
static LLVMValueRef m_erfc(struct emit *e, LLVMValueRef t)
{
    LLVMValueRef v = m_erfc_pos(e, m_abs(e, t));
    return sel(e, fcmp(e, LLVMRealOLT, t, cd(e, 0.0)), LLVMBuildFSub(e->b, cd(e, 2.0), v, ""), v);
}

/* cpu_log_pos: a = 2^e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m-1)/(m+1)) */
static LLVMValueRef m_log_pos(struct emit *e, LLVMValueRef a)
{
    static const double c[9] = {1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9,
                                1.0 / 7,  1.0 / 5,  1.0 / 3,  1.0};
    LLVMValueRef bits = LLVMBuildBitCast(e->b, a, e->i64, "");
    LLVMValueRef ex = LLVMBuildSIToFP(e->b, LLVMBuildLShr(e->b, bits, LLVMConstInt(e->i64, 52, 0), ""),
                                      e->f64, "");
    ex = LLVMBuildFSub(e->b, ex, cd(e, 1023.0), "");
    LLVMValueRef mb = LLVMBuildOr(e->b, LLVMBuildAnd(e->b, bits, LLVMConstInt(e->i64, 0x000fffffffffffffull, 0), ""),
                                  LLVMConstInt(e->i64, 0x3ff0000000000000ull, 0), "");
    LLVMValueRef m = LLVMBuildBitCast(e->b, mb, e->f64, "");
    LLVMValueRef big = fcmp(e, LLVMRealOGT, m, cd(e, 1.4142135623730951));
    m = sel(e, big, LLVMBuildFMul(e->b, m, cd(e, 0.5), ""), m);
    ex = sel(e, big, LLVMBuildFAdd(e->b, ex, cd(e, 1.0), ""), ex);
    LLVMValueRef s = LLVMBuildFDiv(e->b, LLVMBuildFSub(e->b, m, cd(e, 1.0), ""),
                                   LLVMBuildFAdd(e->b, m, cd(e, 1.0), ""), "");
    LLVMValueRef p = horner(e, LLVMBuildFMul(e->b, s, s, ""), c, 9);
    return LLVMBuildFAdd(e->b, LLVMBuildFMul(e->b, ex, cd(e, 0.6931471805599453), ""),
                         LLVMBuildFMul(e->b, LLVMBuildFMul(e->b, cd(e, 2.0), s, ""), p, ""), "");
}

static LLVMValueRef f_or(struct emit *e, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildOr(e->b, a, b, "");
}

static LLVMValueRef f_and(struct emit *e, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildAnd(e->b, a, b, "");
}

/* cpu_pow: the exact exponents, else e^(p log|x|), C11 pow's special cases as selects */
static LLVMValueRef m_pow(struct emit *e, LLVMValueRef xf, LLVMValueRef pf)
{
    LLVMValueRef x = ext(e, xf), p = ext(e, pf), ax = intrinsic1(e, "llvm.fabs", x);
    LLVMValueRef inf = cd(e, HUGE_VAL), zero = cd(e, 0.0), one = cd(e, 1.0);
    LLVMValueRef fin = sel(e, f_and(e, fcmp(e, LLVMRealOGT, ax, zero), fcmp(e, LLVMRealOLT, ax, inf)),
                           ax, one);
    LLVMValueRef r = m_exp(e, LLVMBuildFMul(e->b, p, m_log_pos(e, fin), ""));
    LLVMValueRef az = fcmp(e, LLVMRealOEQ, ax, zero);
    LLVMValueRef zoi = f_or(e, az, fcmp(e, LLVMRealOEQ, ax, inf));
    LLVMValueRef big = LLVMBuildICmp(e->b, LLVMIntEQ, az, fcmp(e, LLVMRealOLT, p, zero), "");
    r = sel(e, zoi, sel(e, big, inf, zero), r);
    LLVMValueRef hp = LLVMBuildFMul(e->b, cd(e, 0.5), p, "");
    LLVMValueRef pint = fcmp(e, LLVMRealOEQ, p, intrinsic1(e, "llvm.floor", p));
    LLVMValueRef podd = f_and(e, pint, fcmp(e, LLVMRealUNE, hp, intrinsic1(e, "llvm.floor", hp)));
    LLVMValueRef sgn = LLVMBuildICmp(e->b, LLVMIntSLT, LLVMBuildBitCast(e->b, x, e->i64, ""),
                                     LLVMConstInt(e->i64, 0, 0), "");
    r = sel(e, f_and(e, podd, sgn), LLVMBuildFNeg(e->b, r, ""), r);
    LLVMValueRef t = LLVMBuildNot(e->b, zoi, "");
    t = f_and(e, f_and(e, fcmp(e, LLVMRealOLT, x, zero), t), LLVMBuildNot(e->b, pint, ""));
    LLVMValueRef nan = cd(e, (double)NAN);
    r = sel(e, t, nan, r);
    r = sel(e, f_or(e, fcmp(e, LLVMRealUNE, x, x), fcmp(e, LLVMRealUNE, p, p)), nan, r);
    LLVMValueRef ones = f_or(e, f_or(e, fcmp(e, LLVMRealOEQ, x, one), fcmp(e, LLVMRealOEQ, p, zero)),
                             f_and(e, fcmp(e, LLVMRealOEQ, x, cd(e, -1.0)),
                                   fcmp(e, LLVMRealOEQ, intrinsic1(e, "llvm.fabs", p), inf)));
    r = sel(e, ones, one, r);
    LLVMValueRef fr = trunc32(e, r);
    LLVMValueRef exact = sel(e, fcmp(e, LLVMRealOEQ, pf, cf(e, -1.0)),
                             LLVMBuildFDiv(e->b, cf(e, 1.0), xf, ""), fr);
    exact = sel(e, fcmp(e, LLVMRealOEQ, pf, cf(e, 1.0)), xf, exact);
    fr = sel(e, fcmp(e, LLVMRealOEQ, pf, cf(e, 2.0)), LLVMBuildFMul(e->b, xf, xf, ""), exact);
    LLVMValueRef sq = sel(e, fcmp(e, LLVMRealOEQ, xf, cf(e, -HUGE_VAL)), cf(e, HUGE_VAL),
                          LLVMBuildFAdd(e->b, intrinsic1(e, "llvm.sqrt", xf), cf(e, 0.0), ""));
    fr = sel(e, fcmp(e, LLVMRealOEQ, pf, cf(e, 0.5)), sq, fr);
    return sel(e, fcmp(e, LLVMRealOEQ, pf, cf(e, 0.0)), cf(e, 1.0), fr);
}

/* ---- the ops, as codegen/ref computes them ----------------------------------- */

#define SQUASH_ALPHA 0.01 /* the default, as in ref_grad.c */

static LLVMValueRef unary_double(struct emit *e, enum ir_op op, const struct ir_node *n,
                                 LLVMValueRef x)
{
    LLVMValueRef v = ext(e, x), r;
    switch (op) {
    case IR_OP_Sigmoid:
        r = LLVMBuildFDiv(e->b, cd(e, 1.0),
                          LLVMBuildFAdd(e->b, cd(e, 1.0), m_exp(e, LLVMBuildFNeg(e->b, v, "")), ""), "");
        break;
    case IR_OP_Tanh: r = libm1(e, "tanh", v); break;
    case IR_OP_Erf: r = m_erf(e, v); break;
    case IR_OP_Exp: r = m_exp(e, v); break;
    case IR_OP_Log: r = libm1(e, "log", v); break;
    case IR_OP_Softplus: { /* x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) */
        LLVMValueRef pos = fcmp(e, LLVMRealOGT, v, cd(e, 0.0));
        LLVMValueRef a = libm1(e, "exp", sel(e, pos, LLVMBuildFNeg(e->b, v, ""), v));
        LLVMValueRef l = libm1(e, "log1p", a);
        r = sel(e, pos, LLVMBuildFAdd(e->b, v, l, ""), l);
        break;
    }
    case IR_OP_LeakyRelu: {
        LLVMValueRef al = cd(e, ir_attr_float(n, "alpha", (double)0.01f));
        r = sel(e, fcmp(e, LLVMRealOLT, v, cd(e, 0.0)), LLVMBuildFMul(e->b, al, v, ""), v);
        break;
    }
    default: return NULL;
    }
    return trunc32(e, r);
}

/* GELU as ref_unary.c gelu_f, in double (the exact form through cpu_math's erfc, as
 * the cpu target computes it) */
static LLVMValueRef gelu(struct emit *e, const struct ir_node *n, LLVMValueRef x)
{
    LLVMValueRef v = ext(e, x), hx = LLVMBuildFMul(e->b, cd(e, 0.5), v, ""), r;
    if (strcmp(ir_attr_str(n, "approximate", "none"), "tanh") == 0) {
        LLVMValueRef c = LLVMBuildFMul(e->b, cd(e, 0.044715), v, "");
        c = LLVMBuildFMul(e->b, LLVMBuildFMul(e->b, c, v, ""), v, "");
        LLVMValueRef in = LLVMBuildFMul(e->b, cd(e, 0.7978845608028654),
                                        LLVMBuildFAdd(e->b, v, c, ""), "");
        r = LLVMBuildFMul(e->b, hx, LLVMBuildFAdd(e->b, cd(e, 1.0), libm1(e, "tanh", in), ""), "");
    } else {
        LLVMValueRef a = LLVMBuildFMul(e->b, v, cd(e, -0.70710678118654752), "");
        r = LLVMBuildFMul(e->b, hx, m_erfc(e, a), "");
    }
    return trunc32(e, r);
}

/* the squashing functions and their straight-through VJPs (ref_grad.c), in double */
static LLVMValueRef squash(struct emit *e, const struct ir_node *n, LLVMValueRef x,
                           LLVMValueRef dy)
{
    LLVMValueRef v = ext(e, x), al = cd(e, ir_attr_float(n, "alpha", SQUASH_ALPHA));
    LLVMValueRef zero = cd(e, 0.0), one = cd(e, 1.0), r;
    switch (n->op) {
    case IR_OP_LowerLeakyHard:
        r = sel(e, fcmp(e, LLVMRealOLT, v, zero), zero, sel(e, fcmp(e, LLVMRealOGT, v, one), one, v));
        break;
    case IR_OP_UpperLeakyHard: {
        LLVMValueRef up = LLVMBuildFAdd(e->b, one, LLVMBuildFMul(e->b, al, LLVMBuildFSub(e->b, v, one, ""), ""), "");
        r = sel(e, fcmp(e, LLVMRealOGT, v, one), up, sel(e, fcmp(e, LLVMRealOLT, v, zero), zero, v));
        break;
    }
    case IR_OP_LowerLeakyHardGrad: {
        LLVMValueRef d = ext(e, dy), ad = LLVMBuildFMul(e->b, al, d, "");
        LLVMValueRef dead = sel(e, fcmp(e, LLVMRealOLT, d, zero), ad, zero);
        r = sel(e, fcmp(e, LLVMRealOLE, v, zero), dead, sel(e, fcmp(e, LLVMRealOLE, v, one), d, zero));
        break;
    }
    default: { /* UpperLeakyHardGrad */
        LLVMValueRef d = ext(e, dy), ad = LLVMBuildFMul(e->b, al, d, "");
        r = sel(e, fcmp(e, LLVMRealOLT, v, zero), zero, sel(e, fcmp(e, LLVMRealOLE, v, one), d, ad));
        break;
    }
    }
    return trunc32(e, r);
}

/* float32 binary ops as ref_binary.c row_f32; Pow as cpu_math.h's cpu_pow */
static LLVMValueRef binary(struct emit *e, enum ir_op op, LLVMValueRef a, LLVMValueRef b)
{
    switch (op) {
    case IR_OP_Add: case IR_OP_Sum: return LLVMBuildFAdd(e->b, a, b, "");
    case IR_OP_Sub: return LLVMBuildFSub(e->b, a, b, "");
    case IR_OP_Mul: return LLVMBuildFMul(e->b, a, b, "");
    case IR_OP_Div: return LLVMBuildFDiv(e->b, a, b, "");
    case IR_OP_Pow: return m_pow(e, a, b);
    case IR_OP_Max: case IR_OP_Min: { /* isnan(a) || a > b ? a : b: NaN propagates */
        LLVMValueRef nan = fcmp(e, LLVMRealUNO, a, a);
        LLVMValueRef gt = fcmp(e, op == IR_OP_Max ? LLVMRealOGT : LLVMRealOLT, a, b);
        return sel(e, LLVMBuildOr(e->b, nan, gt, ""), a, b);
    }
    case IR_OP_Equal: return fcmp(e, LLVMRealOEQ, a, b);
    case IR_OP_Less: return fcmp(e, LLVMRealOLT, a, b);
    case IR_OP_LessOrEqual: return fcmp(e, LLVMRealOLE, a, b);
    case IR_OP_Greater: return fcmp(e, LLVMRealOGT, a, b);
    case IR_OP_GreaterOrEqual: return fcmp(e, LLVMRealOGE, a, b);
    default: return NULL;
    }
}

/* Cast between float32 and bool: nonzero is true (NaN too), true is 1.0f */
static LLVMValueRef cast(struct emit *e, const struct ir_node *n, LLVMValueRef x)
{
    enum ir_dtype to = e->g->t[n->out[0]].dtype;
    int from_bool = LLVMTypeOf(x) == e->i1;
    if (to == IR_BOOL)
        return from_bool ? x : fcmp(e, LLVMRealUNE, x, cf(e, 0.0));
    return from_bool ? LLVMBuildUIToFP(e->b, x, e->f32, "") : x;
}

static LLVMValueRef node_value(struct emit *e, const struct ir_node *n)
{
    LLVMValueRef x = operand(e, n, 0);
    switch (n->op) {
    case IR_OP_Identity: case IR_OP_StopGradient: return x;
    case IR_OP_Neg: return LLVMBuildFNeg(e->b, x, "");
    case IR_OP_Abs: return intrinsic1(e, "llvm.fabs", x);
    case IR_OP_Sqrt: return intrinsic1(e, "llvm.sqrt", x);
    case IR_OP_Reciprocal: return LLVMBuildFDiv(e->b, cf(e, 1.0), x, "");
    case IR_OP_Relu: return sel(e, fcmp(e, LLVMRealOLT, x, cf(e, 0.0)), cf(e, 0.0), x);
    case IR_OP_Gelu: return gelu(e, n, x);
    case IR_OP_Cast: return cast(e, n, x);
    case IR_OP_Where: return sel(e, x, operand(e, n, 1), operand(e, n, 2));
    case IR_OP_Clip: /* x < min -> min, then > max -> max: ref_unary.c's order, NaN passes */
        for (uint32_t i = 1; i < n->n_in; i++) {
            LLVMValueRef bound = operand(e, n, i);
            x = sel(e, fcmp(e, i == 1 ? LLVMRealOLT : LLVMRealOGT, x, bound), bound, x);
        }
        return x;
    case IR_OP_LowerLeakyHard: case IR_OP_UpperLeakyHard: return squash(e, n, x, NULL);
    case IR_OP_LowerLeakyHardGrad: case IR_OP_UpperLeakyHardGrad:
        return squash(e, n, x, operand(e, n, 1));
    default: break;
    }
    if (n->op == IR_OP_Pow && n->n_in == 2) {
        /* x^1 and x^2 of a float are exact in double: pow rounds them as these do;
         * pow(x, 0) is 1 for every x, NaN included (C11 F.10.4.4) */
        const struct ir_tensor *pe = &e->g->t[n->in[1]];
        int k = pe->data && pe->dtype == IR_F32 && ir_numel(pe) == 1;
        float pv = k ? *(const float *)pe->data : -1.5f; /* none of the cases below */
        if (k && pv == 0.0f)
            return cf(e, 1.0);
        if (pv == 1.0f)
            return x;
        if (pv == 2.0f)
            return LLVMBuildFMul(e->b, x, x, "");
    }
    LLVMValueRef r = unary_double(e, n->op, n, x);
    for (uint32_t i = 1; !r && i < n->n_in; i++) /* binary, and variadic folds left */
        x = binary(e, n->op, x, operand(e, n, i));
    return r ? r : x;
}

/* the group's values for element e->idx; results someone outside needs are stored */
static void emit_element(struct emit *e)
{
    for (uint32_t k = 0; k < e->grp->n_nodes; k++) {
        const struct ir_node *n = &e->g->n[e->grp->nodes[k]];
        LLVMValueRef v = node_value(e, n);
        e->val[n->out[0]] = v;
        store_output(e, n->out[0], v);
    }
}

/* ---- wrappers ----------------------------------------------------------------- */

static uint32_t n_bufs(const struct emit *e) { return e->grp->n_in + e->grp->n_out; }

/* fn(ptr noalias b0, ..., i64 lo, i64 hi): the buffers never overlap (the memory
 * planner places a group's outputs apart from all it reads), and saying so lets the
 * vectoriser go without run-time overlap checks */
static LLVMValueRef body_function(struct emit *e, const char *name)
{
    uint32_t nb = n_bufs(e);
    LLVMTypeRef *pt = malloc((nb + 2) * sizeof *pt);
    for (uint32_t i = 0; i < nb; i++)
        pt[i] = e->ptr;
    pt[nb] = pt[nb + 1] = e->i64;
    LLVMValueRef fn = LLVMAddFunction(e->mod, name, LLVMFunctionType(LLVMVoidTypeInContext(e->ctx), pt, nb + 2, 0));
    free(pt);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (uint32_t i = 0; i < nb; i++) {
        LLVMAddAttributeAtIndex(fn, i + 1, LLVMCreateEnumAttribute(e->ctx, noalias, 0));
        e->bufp[i] = LLVMGetParam(fn, i);
    }
    add_fn_attr(e, fn, "nounwind", 0);
    return fn;
}

/* for (v = lo; v < hi; v++) whatever body() emits; the builder is left after the loop */
static void range_loop(struct emit *e, LLVMValueRef fn, LLVMValueRef lo, LLVMValueRef hi,
                       const char *nm,
                       void (*body)(struct emit *, LLVMValueRef fn, LLVMValueRef v, void *),
                       void *arg)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(e->b);
    LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(e->ctx, fn, nm);
    LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(e->ctx, fn, "after");
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, lo, hi, ""), loop, after);
    LLVMPositionBuilderAtEnd(e->b, loop);
    LLVMValueRef v = LLVMBuildPhi(e->b, e->i64, nm);
    body(e, fn, v, arg);
    LLVMValueRef next = LLVMBuildNSWAdd(e->b, v, ci64(e, 1), "");
    LLVMBasicBlockRef from[2] = {pre, LLVMGetInsertBlock(e->b)};
    LLVMValueRef in[2] = {lo, next};
    LLVMAddIncoming(v, in, from, 2);
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, next, hi, ""), loop, after);
    LLVMPositionBuilderAtEnd(e->b, after);
}

static void element_at(struct emit *e, LLVMValueRef fn, LLVMValueRef i, void *arg)
{
    (void)fn, (void)arg;
    e->idx = i;
    emit_element(e);
}

/* ---- host row loops ----------------------------------------------------------
 * Over a flat index, an input broadcast along some dims is read at ((i / a) % b) * c
 * offsets, which vectorise as gathers: on the AMD EPYC here a GELU kernel of a CI
 * MLP ([C, N, h] from [C, N, 1] and [C, 1, h]) ran 1.7x slower than the same loop
 * with plain loads. So the host loop runs rows: the longest run of trailing dims along
 * which every input either steps contiguously with the output or stays put. Each
 * row's offsets are computed once; inside it, loads are contiguous or invariant. */

/* does t move over output dims d.. (else it is broadcast along all of them)? */
static int steps_along(const struct emit *e, const struct ir_tensor *t, int d)
{
    const struct ir_tensor *o = e->shape;
    int64_t st[IR_MAX_RANK];
    ir_broadcast_strides(t->rank, t->dims, o->rank, o->dims, st);
    for (int k = d; k < o->rank; k++)
        if (o->dims[k] > 1 && st[k] != 0)
            return 1;
    return 0;
}

/* elements per row (1 when no trailing dim qualifies); *first: the row's first dim */
static int64_t row_length(const struct emit *e, int *first)
{
    const struct ir_tensor *o = e->shape;
    int64_t len = 1;
    *first = o->rank;
    for (int d = o->rank - 1; d >= 0; d--) {
        int64_t next = len * o->dims[d];
        for (uint32_t i = 0; i < e->grp->n_in && o->dims[d] > 1; i++) {
            const struct ir_tensor *t = &e->g->t[e->grp->in[i]];
            int64_t st[IR_MAX_RANK];
            ir_broadcast_strides(t->rank, t->dims, o->rank, o->dims, st);
            int step = 0, stay = 0, other = 0; /* over dims d.., those of size 1 aside */
            int64_t inner = 1; /* the output's stride of dim k: contiguous */
            for (int k = o->rank - 1; k >= d; inner *= o->dims[k], k--) {
                if (o->dims[k] == 1)
                    continue;
                if (st[k] == 0)
                    stay++;
                else if (st[k] == inner)
                    step++;
                else
                    other++;
            }
            if (other || (step && stay))
                return len;
        }
        len = next;
        *first = d;
    }
    return len;
}

static void row_element(struct emit *e, LLVMValueRef fn, LLVMValueRef j, void *row0)
{
    (void)fn;
    e->j = j;
    e->idx = LLVMBuildAdd(e->b, (LLVMValueRef)row0, j, "");
    emit_element(e);
}

struct row_ctx {
    LLVMValueRef lo, hi;
    int64_t len;
    int first; /* the row's first dim */
};

/* row r: its elements max(lo - r0, 0) .. min(hi - r0, len), r0 = r len */
static void row_at(struct emit *e, LLVMValueRef fn, LLVMValueRef r, void *arg)
{
    const struct row_ctx *rc = arg;
    LLVMValueRef r0 = LLVMBuildMul(e->b, r, ci64(e, rc->len), "");
    LLVMValueRef jlo = LLVMBuildSub(e->b, rc->lo, r0, ""), jhi = LLVMBuildSub(e->b, rc->hi, r0, "");
    jlo = sel(e, LLVMBuildICmp(e->b, LLVMIntSLT, jlo, ci64(e, 0), ""), ci64(e, 0), jlo);
    jhi = sel(e, LLVMBuildICmp(e->b, LLVMIntSGT, jhi, ci64(e, rc->len), ""), ci64(e, rc->len), jhi);
    e->idx = r0;
    for (uint32_t i = 0; i < e->grp->n_in; i++) {
        uint32_t t = e->grp->in[i];
        e->row_base[t] = input_offset(e, &e->g->t[t]);
        e->row_step[t] = (unsigned char)steps_along(e, &e->g->t[t], rc->first);
    }
    range_loop(e, fn, jlo, jhi, "j", row_element, r0);
}

/* for (i = lo; i < hi; i++) element(i), by rows when rows are long enough to pay */
static void host_loop(struct emit *e, LLVMValueRef fn)
{
    uint32_t nb = n_bufs(e);
    LLVMValueRef lo = LLVMGetParam(fn, nb), hi = LLVMGetParam(fn, nb + 1);
    LLVMPositionBuilderAtEnd(e->b, LLVMAppendBasicBlockInContext(e->ctx, fn, "entry"));
    int first;
    int64_t len = row_length(e, &first);
    if (len < 8 || len == ir_numel(e->shape)) {
        range_loop(e, fn, lo, hi, "i", element_at, NULL);
        LLVMBuildRetVoid(e->b);
        return;
    }
    struct row_ctx rc = {lo, hi, len, first};
    LLVMValueRef r_lo = LLVMBuildSDiv(e->b, lo, ci64(e, len), "");
    LLVMValueRef r_hi = LLVMBuildAdd(e->b, hi, ci64(e, len - 1), "");
    r_hi = LLVMBuildSDiv(e->b, r_hi, ci64(e, len), "");
    e->row_base = calloc((size_t)e->g->nt + 1, sizeof *e->row_base);
    e->row_step = calloc((size_t)e->g->nt + 1, 1);
    if (e->row_base && e->row_step)
        range_loop(e, fn, r_lo, r_hi, "r", row_at, &rc);
    else /* out of memory: the flat loop is as right, only slower */
        range_loop(e, fn, lo, hi, "i", element_at, NULL);
    free(e->row_base);
    free(e->row_step);
    e->row_base = NULL;
    e->row_step = NULL;
    LLVMBuildRetVoid(e->b);
}

/* an entry void name(void **bufs, i64 x n_i64) with its block started and the
 * buffer pointers loaded into args[0, nb) */
static LLVMValueRef entry_fn(struct emit *e, const char *name, unsigned n_i64,
                             LLVMValueRef *args)
{
    LLVMTypeRef pt[8] = {e->ptr, e->i64, e->i64, e->i64, e->i64, e->i64, e->i64, e->i64};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(e->ctx), pt, 1 + n_i64, 0);
    LLVMValueRef fn = LLVMAddFunction(e->mod, name, fty);
    LLVMPositionBuilderAtEnd(e->b, LLVMAppendBasicBlockInContext(e->ctx, fn, "entry"));
    for (uint32_t i = 0; i < n_bufs(e); i++) {
        LLVMValueRef at = ci64(e, i);
        LLVMValueRef p = LLVMBuildInBoundsGEP2(e->b, e->ptr, LLVMGetParam(fn, 0), &at, 1, "");
        args[i] = LLVMBuildLoad2(e->b, e->ptr, p, "");
    }
    return fn;
}

/* void name(void **bufs, i64 lo, i64 hi): unpack the buffer list, call the loop */
static void host_entry(struct emit *e, const char *name, LLVMValueRef body)
{
    uint32_t nb = n_bufs(e);
    LLVMValueRef *args = malloc((nb + 2) * sizeof *args);
    LLVMValueRef fn = entry_fn(e, name, 2, args);
    args[nb] = LLVMGetParam(fn, 1);
    args[nb + 1] = LLVMGetParam(fn, 2);
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(body), body, args, nb + 2, "");
    LLVMBuildRetVoid(e->b);
    free(args);
    LLVMSetLinkage(body, LLVMInternalLinkage);
    add_fn_attr(e, body, "alwaysinline", 0);
}

static LLVMValueRef sreg(struct emit *e, const char *name)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->mod, id, NULL, 0);
    LLVMValueRef v = LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, NULL, 0), fn, NULL, 0, "");
    return LLVMBuildZExt(e->b, v, e->i64, "");
}

/* the kernel: i = lo + ctaid.x * ntid.x + tid.x; if (i < hi) element(i). For PTX the
 * three come from the special registers; the emulation kind (LK_EMU) takes them as
 * its last three parameters, so the host runs this very index and bounds logic */
static void gpu_kernel(struct emit *e, LLVMValueRef fn)
{
    uint32_t nb = n_bufs(e);
    int emu = e->kind == LK_EMU;
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(e->ctx, fn, "entry");
    LLVMBasicBlockRef work = LLVMAppendBasicBlockInContext(e->ctx, fn, "work");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(e->ctx, fn, "done");
    LLVMPositionBuilderAtEnd(e->b, entry);
    LLVMValueRef ctaid = emu ? LLVMGetParam(fn, nb + 2) : sreg(e, "llvm.nvvm.read.ptx.sreg.ctaid.x");
    LLVMValueRef ntid = emu ? LLVMGetParam(fn, nb + 3) : sreg(e, "llvm.nvvm.read.ptx.sreg.ntid.x");
    LLVMValueRef tid = emu ? LLVMGetParam(fn, nb + 4) : sreg(e, "llvm.nvvm.read.ptx.sreg.tid.x");
    LLVMValueRef blk = LLVMBuildMul(e->b, ctaid, ntid, "");
    LLVMValueRef i = LLVMBuildAdd(e->b, LLVMGetParam(fn, nb), LLVMBuildAdd(e->b, blk, tid, ""), "");
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, i, LLVMGetParam(fn, nb + 1), ""), work, done);
    LLVMPositionBuilderAtEnd(e->b, work);
    e->idx = i;
    emit_element(e);
    LLVMBuildBr(e->b, done);
    LLVMPositionBuilderAtEnd(e->b, done);
    LLVMBuildRetVoid(e->b);
    if (emu)
        return;
    LLVMSetFunctionCallConv(fn, 71); /* PTX_Kernel */
    LLVMMetadataRef md[3] = {LLVMValueAsMetadata(fn), LLVMMDStringInContext2(e->ctx, "kernel", 6),
                             LLVMValueAsMetadata(LLVMConstInt(e->i32, 1, 0))};
    LLVMAddNamedMetadataOperand(e->mod, "nvvm.annotations",
                                LLVMMetadataAsValue(e->ctx, LLVMMDNodeInContext2(e->ctx, md, 3)));
}

struct emu_call {
    LLVMValueRef kernel, *args; /* b0..bN, lo, hi, ctaid, ntid, tid */
    uint32_t nb;
};

static void emu_thread(struct emit *e, LLVMValueRef fn, LLVMValueRef tid, void *arg)
{
    struct emu_call *c = arg;
    (void)fn;
    c->args[c->nb + 4] = tid;
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(c->kernel), c->kernel, c->args, c->nb + 5, "");
}

static void emu_block(struct emit *e, LLVMValueRef fn, LLVMValueRef ctaid, void *arg)
{
    struct emu_call *c = arg;
    c->args[c->nb + 2] = ctaid;
    range_loop(e, fn, ci64(e, 0), c->args[c->nb + 3], "thread", emu_thread, arg);
}

/* void name(void **bufs, i64 lo, i64 hi, i64 grid, i64 block): the launch of a grid of
 * `grid` blocks of `block` threads, as loops over ctaid and tid */
static void emu_entry(struct emit *e, const char *name, LLVMValueRef kernel)
{
    uint32_t nb = n_bufs(e);
    LLVMValueRef *args = malloc((nb + 5) * sizeof *args);
    LLVMValueRef fn = entry_fn(e, name, 4, args);
    args[nb] = LLVMGetParam(fn, 1);
    args[nb + 1] = LLVMGetParam(fn, 2);
    args[nb + 3] = LLVMGetParam(fn, 4);
    struct emu_call c = {kernel, args, nb};
    range_loop(e, fn, ci64(e, 0), LLVMGetParam(fn, 3), "block", emu_block, &c);
    LLVMBuildRetVoid(e->b);
    free(args);
    LLVMSetLinkage(kernel, LLVMInternalLinkage);
}

/* fn(ptr noalias b0, ..., i64 lo, i64 hi, i64 ctaid, i64 ntid, i64 tid) */
static LLVMValueRef emu_function(struct emit *e)
{
    uint32_t nb = n_bufs(e);
    LLVMTypeRef *pt = malloc((nb + 5) * sizeof *pt);
    for (uint32_t i = 0; i < nb; i++)
        pt[i] = e->ptr;
    for (uint32_t i = nb; i < nb + 5; i++)
        pt[i] = e->i64;
    LLVMValueRef fn = LLVMAddFunction(e->mod, "gpu_kernel", LLVMFunctionType(LLVMVoidTypeInContext(e->ctx), pt, nb + 5, 0));
    free(pt);
    for (uint32_t i = 0; i < nb; i++)
        e->bufp[i] = LLVMGetParam(fn, i);
    add_fn_attr(e, fn, "nounwind", 0);
    return fn;
}

static void emit_init(struct emit *e, LLVMContextRef ctx, const struct ir_graph *g,
                      const struct cg_group *grp, enum lk_kind kind)
{
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    e->g = g;
    e->grp = grp;
    e->kind = kind;
    e->f32 = LLVMFloatTypeInContext(ctx);
    e->f64 = LLVMDoubleTypeInContext(ctx);
    e->i1 = LLVMInt1TypeInContext(ctx);
    e->i8 = LLVMInt8TypeInContext(ctx);
    e->i32 = LLVMInt32TypeInContext(ctx);
    e->i64 = LLVMInt64TypeInContext(ctx);
    e->ptr = LLVMPointerTypeInContext(ctx, 0);
    e->shape = &g->t[g->n[grp->nodes[0]].out[0]];
}

int lk_emit(LLVMContextRef ctx, const struct ir_graph *g, const struct cg_group *grp,
            enum lk_kind kind, const char *name, LLVMModuleRef *out, struct diag *d)
{
    struct emit e;
    emit_init(&e, ctx, g, grp, kind);
    e.val = calloc((size_t)g->nt + 1, sizeof *e.val);
    e.bufp = calloc((size_t)n_bufs(&e) + 1, sizeof *e.bufp);
    if (!e.val || !e.bufp) {
        free(e.val);
        free(e.bufp);
        return diag_set(d, ST_ERR_NOMEM, "out of memory emitting a kernel");
    }
    e.mod = LLVMModuleCreateWithNameInContext("pdc_group", ctx);
    e.b = LLVMCreateBuilderInContext(ctx);
    if (kind == LK_HOST) {
        LLVMValueRef body = body_function(&e, "body");
        host_loop(&e, body);
        host_entry(&e, name, body);
    } else if (kind == LK_EMU) {
        LLVMValueRef k = emu_function(&e);
        gpu_kernel(&e, k);
        emu_entry(&e, name, k);
    } else {
        gpu_kernel(&e, body_function(&e, name));
    }
    LLVMDisposeBuilder(e.b);
    free(e.val);
    free(e.bufp);
    *out = e.mod;
    return ST_OK;
}
