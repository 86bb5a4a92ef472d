/* shape_elem.c — PENDING placeholder, replaced by the real implementation. */
#include "shape_impl.h"

SHAPE_RULE(Identity)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Neg)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Abs)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Relu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(LeakyRelu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Elu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Selu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Celu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ThresholdedRelu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Sigmoid)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(HardSigmoid)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(HardSwish)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Softplus)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Softsign)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Tanh)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Erf)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Gelu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Exp)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Log)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Sqrt)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Reciprocal)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Sin)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Cos)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Tan)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Asin)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Acos)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Atan)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Sinh)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Cosh)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Asinh)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Acosh)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Atanh)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Floor)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Ceil)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Round)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Sign)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Not)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(IsNaN)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(IsInf)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Cast)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Clip)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Dropout)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Add)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Sub)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Mul)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Div)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Pow)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Mod)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(PRelu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Equal)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Less)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(LessOrEqual)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Greater)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(GreaterOrEqual)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(And)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Or)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Xor)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Max)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Min)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Sum)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Mean)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Where)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}
