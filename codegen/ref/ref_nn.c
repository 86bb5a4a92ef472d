/* ref_nn.c — PENDING placeholder, replaced by the real implementation. */
#include "ref_impl.h"

REF_KERNEL(MatMul)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Gemm)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Einsum)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Conv)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(MaxPool)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(AveragePool)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(GlobalAveragePool)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(GlobalMaxPool)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}
