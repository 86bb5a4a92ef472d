/* ref_reduce.c — PENDING placeholder, replaced by the real implementation. */
#include "ref_impl.h"

REF_KERNEL(ReduceMean)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceSum)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceMax)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceMin)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceProd)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceL1)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceL2)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceSumSquare)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceLogSum)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ReduceLogSumExp)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ArgMax)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ArgMin)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(CumSum)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Softmax)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(LogSoftmax)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Hardmax)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(LayerNormalization)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(BatchNormalization)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(InstanceNormalization)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}
