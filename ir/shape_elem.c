/* shape_elem.c — shape rules for the elementwise families (ops.def groups
 * "unary elementwise" and "binary / variadic broadcasting elementwise").
 *
 * Unary ops keep their input's shape; broadcasting ops take the numpy
 * (multidirectional) broadcast of all their inputs. Each rule checks the input
 * dtypes against the set ONNX allows for the op (latest opset; pdc holds no
 * string / float8 / complex types) and rejects attribute values the reference
 * kernels do not implement, so a kernel never sees a case it would mis-compute. */
#include <string.h>

#include "shape_impl.h"

/* dtype classes, OR-ed into the set an input may take */
#define TC_FLOAT 0x1u
#define TC_SINT  0x2u
#define TC_UINT  0x4u
#define TC_BOOL  0x8u
#define TC_INT   (TC_SINT | TC_UINT)
#define TC_NUM   (TC_FLOAT | TC_INT)
#define TC_ALL   (TC_NUM | TC_BOOL)

static unsigned dt_class(enum ir_dtype dt)
{
    switch (dt) {
    case IR_F32: case IR_F64: case IR_F16: case IR_BF16: return TC_FLOAT;
    case IR_I64: case IR_I32: case IR_I16: case IR_I8: return TC_SINT;
    case IR_U64: case IR_U32: case IR_U16: case IR_U8: return TC_UINT;
    case IR_BOOL: return TC_BOOL;
    case IR_DT_UNDEF: case IR_STRING: return 0;
    }
    return 0;
}

static const char *class_name(unsigned tc)
{
    switch (tc) {
    case TC_FLOAT: return "a float type";
    case TC_FLOAT | TC_SINT: return "a float or signed integer type";
    case TC_NUM: return "a numeric type";
    case TC_BOOL: return "bool";
    case TC_ALL: return "a numeric or bool type";
    default: return "another type";
    }
}

/* input i must be present with a dtype in tc; *t receives it */
static int want_in(struct ir_graph *g, struct ir_node *n, uint32_t i, unsigned tc,
                   struct ir_tensor **t, struct diag *d)
{
    *t = shp_in(g, n, i);
    if (!*t)
        return shp_err(d, n, ST_ERR_INVALID, "input %u is missing", i);
    if (!(dt_class((*t)->dtype) & tc))
        return shp_err(d, n, dt_class((*t)->dtype) ? ST_ERR_INVALID : ST_ERR_UNSUPPORTED,
                       "input %u ('%s') has type %s; this op takes %s", i, (*t)->name,
                       ir_dtype_name((*t)->dtype), class_name(tc));
    return ST_OK;
}

/* optional input i, when present, must have dtype dt */
static int want_same(struct ir_graph *g, struct ir_node *n, uint32_t i, enum ir_dtype dt,
                     struct diag *d)
{
    const struct ir_tensor *t = shp_in(g, n, i);
    if (t && t->dtype != dt)
        return shp_err(d, n, ST_ERR_INVALID, "input %u ('%s') has type %s, expected %s", i,
                       t->name, ir_dtype_name(t->dtype), ir_dtype_name(dt));
    return ST_OK;
}

/* the common unary case: one input of class tc, output shaped like it with
 * dtype out_dt (IR_DT_UNDEF: same as the input) */
static int unary_rule(struct ir_graph *g, struct ir_node *n, unsigned tc, enum ir_dtype out_dt,
                      struct diag *d)
{
    struct ir_tensor *x;
    int st = want_in(g, n, 0, tc, &x, d);
    if (st)
        return st;
    return shp_set(g, n, 0, out_dt == IR_DT_UNDEF ? x->dtype : out_dt, x->rank, x->dims, d);
}

/* numpy broadcast of the shapes of all present inputs from index first on */
static int bcast_dims(struct ir_graph *g, struct ir_node *n, uint32_t first, int *rank,
                      int64_t *dims, struct diag *d)
{
    *rank = 0;
    for (uint32_t i = first; i < n->n_in; i++) {
        const struct ir_tensor *t = shp_in(g, n, i);
        if (!t)
            continue;
        int64_t prev[IR_MAX_RANK];
        memcpy(prev, dims, sizeof prev);
        if (ir_broadcast_shape(*rank, prev, t->rank, t->dims, rank, dims) < 0)
            return shp_err(d, n, ST_ERR_SHAPE,
                           "input %u ('%s') cannot be broadcast with the inputs before it", i,
                           t->name);
    }
    return ST_OK;
}

/* broadcasting op whose present inputs all share one dtype of class tc; the
 * output has that dtype, or bool for comparisons */
static int bcast_rule(struct ir_graph *g, struct ir_node *n, unsigned tc, int out_bool,
                      struct diag *d)
{
    struct ir_tensor *a;
    int st = want_in(g, n, 0, tc, &a, d);
    for (uint32_t i = 1; !st && i < n->n_in; i++) {
        if (!shp_in(g, n, i) && i < (uint32_t)ir_ops[n->op].min_in)
            st = shp_err(d, n, ST_ERR_INVALID, "input %u is missing", i);
        else
            st = want_same(g, n, i, a->dtype, d);
    }
    if (st)
        return st;
    int rank;
    int64_t dims[IR_MAX_RANK] = {0};
    if ((st = bcast_dims(g, n, 0, &rank, dims, d)))
        return st;
    return shp_set(g, n, 0, out_bool ? IR_BOOL : a->dtype, rank, dims, d);
}

/* ---- unary elementwise ------------------------------------------------- */

SHAPE_RULE(Identity) { return unary_rule(g, n, TC_ALL, IR_DT_UNDEF, d); }
SHAPE_RULE(Neg) { return unary_rule(g, n, TC_FLOAT | TC_SINT, IR_DT_UNDEF, d); }
SHAPE_RULE(Abs) { return unary_rule(g, n, TC_NUM, IR_DT_UNDEF, d); }
SHAPE_RULE(Relu) { return unary_rule(g, n, TC_FLOAT | TC_SINT, IR_DT_UNDEF, d); }
SHAPE_RULE(LeakyRelu) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Elu) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Selu) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Celu) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(ThresholdedRelu) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Sigmoid) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(HardSigmoid) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(HardSwish) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Softplus) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Softsign) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Tanh) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Erf) { return unary_rule(g, n, TC_NUM, IR_DT_UNDEF, d); }

SHAPE_RULE(Gelu)
{
    const char *ap = ir_attr_str(n, "approximate", "none");
    if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
        return shp_err(d, n, ST_ERR_INVALID, "approximate='%s' (expected 'none' or 'tanh')", ap);
    return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d);
}

SHAPE_RULE(Exp) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Log) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Sqrt) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Reciprocal) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Sin) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Cos) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Tan) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Asin) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Acos) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Atan) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Sinh) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Cosh) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Asinh) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Acosh) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Atanh) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Floor) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Ceil) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Round) { return unary_rule(g, n, TC_FLOAT, IR_DT_UNDEF, d); }
SHAPE_RULE(Sign) { return unary_rule(g, n, TC_NUM, IR_DT_UNDEF, d); }
SHAPE_RULE(Not) { return unary_rule(g, n, TC_BOOL, IR_DT_UNDEF, d); }
SHAPE_RULE(IsNaN) { return unary_rule(g, n, TC_FLOAT, IR_BOOL, d); }
SHAPE_RULE(IsInf) { return unary_rule(g, n, TC_FLOAT, IR_BOOL, d); }

SHAPE_RULE(Cast)
{
    const struct ir_attr *to = ir_attr_get(n, "to");
    if (!to || to->type != IR_ATTR_INT)
        return shp_err(d, n, ST_ERR_INVALID, "missing integer attribute 'to'");
    if (to->i == IR_STRING)
        return shp_err(d, n, ST_ERR_UNSUPPORTED, "cast to string is not supported");
    if (to->i < 0 || to->i > 64 || !ir_dtype_valid((int)to->i))
        return shp_err(d, n, ST_ERR_UNSUPPORTED,
                       "cast to TensorProto type %lld is not supported (pdc holds no float8, "
                       "4-bit or complex types)", (long long)to->i);
    return unary_rule(g, n, TC_ALL, (enum ir_dtype)to->i, d);
}

/* Clip(x, min?, max?): bounds are scalars of x's dtype; an absent one is no bound */
SHAPE_RULE(Clip)
{
    struct ir_tensor *x;
    int st = want_in(g, n, 0, TC_NUM, &x, d);
    for (uint32_t i = 1; !st && i < n->n_in; i++) {
        const struct ir_tensor *b = shp_in(g, n, i);
        if ((st = want_same(g, n, i, x->dtype, d)))
            break;
        if (b && ir_numel(b) != 1)
            st = shp_err(d, n, ST_ERR_SHAPE, "bound input %u ('%s') must be a scalar", i,
                         b->name);
    }
    if (st)
        return st;
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

/* Dropout(data, ratio?, training_mode?) at inference: y = x, mask all true.
 * training_mode is a compile-time constant (value_in); true is rejected. */
SHAPE_RULE(Dropout)
{
    struct ir_tensor *x;
    int st = want_in(g, n, 0, TC_FLOAT, &x, d);
    if (st)
        return st;
    const struct ir_tensor *r = shp_in(g, n, 1), *tm = shp_in(g, n, 2);
    if (r && (!(dt_class(r->dtype) & TC_FLOAT) || ir_numel(r) != 1))
        return shp_err(d, n, ST_ERR_INVALID, "ratio ('%s') must be a float scalar", r->name);
    if (tm) {
        if (tm->dtype != IR_BOOL || ir_numel(tm) != 1)
            return shp_err(d, n, ST_ERR_INVALID, "training_mode ('%s') must be a bool scalar",
                           tm->name);
        if (!tm->data)
            return shp_err(d, n, ST_ERR_UNSUPPORTED,
                           "training_mode ('%s') is not a compile-time constant", tm->name);
        if (ir_load_i64(IR_BOOL, tm->data, 0))
            return shp_err(d, n, ST_ERR_UNSUPPORTED,
                           "training_mode=true (random dropout) is not supported");
    }
    /* the mask is bool from opset 10 on; before, it had the data's type */
    enum ir_dtype mask_dt = n->opset > 0 && n->opset < 10 ? x->dtype : IR_BOOL;
    if ((st = shp_set(g, n, 0, x->dtype, x->rank, x->dims, d)))
        return st;
    return shp_set(g, n, 1, mask_dt, x->rank, x->dims, d);
}

/* ---- binary / variadic broadcasting ------------------------------------ */

SHAPE_RULE(Add) { return bcast_rule(g, n, TC_NUM, 0, d); }
SHAPE_RULE(Sub) { return bcast_rule(g, n, TC_NUM, 0, d); }
SHAPE_RULE(Mul) { return bcast_rule(g, n, TC_NUM, 0, d); }
SHAPE_RULE(Div) { return bcast_rule(g, n, TC_NUM, 0, d); }

/* Pow(X: T, Y: T1): base and exponent types are independent; output is T */
SHAPE_RULE(Pow)
{
    struct ir_tensor *x, *y;
    int st = want_in(g, n, 0, TC_NUM, &x, d);
    if (!st)
        st = want_in(g, n, 1, TC_NUM, &y, d);
    int rank;
    int64_t dims[IR_MAX_RANK] = {0};
    if (st || (st = bcast_dims(g, n, 0, &rank, dims, d)))
        return st;
    return shp_set(g, n, 0, x->dtype, rank, dims, d);
}

SHAPE_RULE(Mod)
{
    int64_t fm = ir_attr_int(n, "fmod", 0);
    const struct ir_tensor *x = shp_in(g, n, 0);
    if (fm != 0 && fm != 1)
        return shp_err(d, n, ST_ERR_INVALID, "fmod=%lld (expected 0 or 1)", (long long)fm);
    if (x && ir_dtype_is_float(x->dtype) && fm != 1)
        return shp_err(d, n, ST_ERR_INVALID, "fmod must be 1 for float input type %s",
                       ir_dtype_name(x->dtype));
    return bcast_rule(g, n, TC_NUM, 0, d);
}

/* PRelu(X, slope): slope broadcasts to X (unidirectionally), output is X's shape.
 * Before opset 7 a 1-D slope of C values runs along the channel axis 1; the
 * kernel (ref_binary.c) views it as [C, 1, ..., 1] then. */
SHAPE_RULE(PRelu)
{
    struct ir_tensor *x, *s;
    int st = want_in(g, n, 0, TC_NUM, &x, d);
    if (!st)
        st = want_in(g, n, 1, TC_NUM, &s, d);
    if (!st)
        st = want_same(g, n, 1, x->dtype, d);
    if (st)
        return st;
    if (n->opset < 7 && s->rank == 1 && x->rank >= 2 && s->dims[0] == x->dims[1])
        return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
    int rank;
    int64_t dims[IR_MAX_RANK];
    if (ir_broadcast_shape(x->rank, x->dims, s->rank, s->dims, &rank, dims) < 0 ||
        rank != x->rank || memcmp(dims, x->dims, (size_t)rank * sizeof dims[0]) != 0)
        return shp_err(d, n, ST_ERR_SHAPE, "slope ('%s') cannot be broadcast to X ('%s')",
                       s->name, x->name);
    return shp_set(g, n, 0, x->dtype, x->rank, x->dims, d);
}

SHAPE_RULE(Equal) { return bcast_rule(g, n, TC_ALL, 1, d); }
SHAPE_RULE(Less) { return bcast_rule(g, n, TC_NUM, 1, d); }
SHAPE_RULE(LessOrEqual) { return bcast_rule(g, n, TC_NUM, 1, d); }
SHAPE_RULE(Greater) { return bcast_rule(g, n, TC_NUM, 1, d); }
SHAPE_RULE(GreaterOrEqual) { return bcast_rule(g, n, TC_NUM, 1, d); }
SHAPE_RULE(And) { return bcast_rule(g, n, TC_BOOL, 0, d); }
SHAPE_RULE(Or) { return bcast_rule(g, n, TC_BOOL, 0, d); }
SHAPE_RULE(Xor) { return bcast_rule(g, n, TC_BOOL, 0, d); }
SHAPE_RULE(Max) { return bcast_rule(g, n, TC_NUM, 0, d); }
SHAPE_RULE(Min) { return bcast_rule(g, n, TC_NUM, 0, d); }
SHAPE_RULE(Sum) { return bcast_rule(g, n, TC_FLOAT, 0, d); }
SHAPE_RULE(Mean) { return bcast_rule(g, n, TC_FLOAT, 0, d); }

/* Where(cond: bool, X: T, Y: T): all three broadcast together */
SHAPE_RULE(Where)
{
    struct ir_tensor *c, *x, *y;
    int st = want_in(g, n, 0, TC_BOOL, &c, d);
    if (!st)
        st = want_in(g, n, 1, TC_ALL, &x, d);
    if (!st)
        st = want_in(g, n, 2, TC_ALL, &y, d);
    if (!st)
        st = want_same(g, n, 2, x->dtype, d);
    int rank;
    int64_t dims[IR_MAX_RANK] = {0};
    if (st || (st = bcast_dims(g, n, 0, &rank, dims, d)))
        return st;
    return shp_set(g, n, 0, x->dtype, rank, dims, d);
}
