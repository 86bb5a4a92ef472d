/* ref_binary.c — PENDING placeholder, replaced by the real implementation. */
#include "ref_impl.h"

REF_KERNEL(Add)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Sub)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Mul)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Div)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Pow)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Mod)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(PRelu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Equal)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Less)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(LessOrEqual)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Greater)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(GreaterOrEqual)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(And)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Or)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Xor)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Max)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Min)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Sum)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Mean)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Where)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}
