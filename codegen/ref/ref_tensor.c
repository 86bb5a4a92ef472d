/* ref_tensor.c — PENDING placeholder, replaced by the real implementation. */
#include "ref_impl.h"

REF_KERNEL(Reshape)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Flatten)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Squeeze)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Unsqueeze)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Transpose)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Concat)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Split)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Slice)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Gather)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(GatherElements)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Expand)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Tile)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Pad)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Trilu)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Shape)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Size)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(ConstantOfShape)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}

REF_KERNEL(Range)
{
    (void)g; (void)n; (void)in; (void)out;
    return ST_ERR_UNSUPPORTED; /* PENDING: kernel not written yet */
}
