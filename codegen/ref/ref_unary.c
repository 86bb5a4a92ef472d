/* ref_unary.c — PENDING placeholder, replaced by the real implementation. */
#include "ref_impl.h"

REF_KERNEL(Identity)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Neg)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Abs)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Relu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(LeakyRelu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Elu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Selu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Celu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ThresholdedRelu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Sigmoid)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(HardSigmoid)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(HardSwish)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Softplus)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Softsign)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Tanh)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Erf)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Gelu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Exp)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Log)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Sqrt)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Reciprocal)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Sin)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Cos)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Tan)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Asin)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Acos)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Atan)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Sinh)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Cosh)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Asinh)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Acosh)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Atanh)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Floor)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Ceil)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Round)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Sign)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Not)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(IsNaN)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(IsInf)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Cast)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Clip)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Dropout)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}
