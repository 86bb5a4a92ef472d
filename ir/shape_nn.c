/* shape_nn.c — PENDING placeholder, replaced by the real implementation. */
#include "shape_impl.h"

SHAPE_RULE(MatMul)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Gemm)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Einsum)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Conv)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(MaxPool)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(AveragePool)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(GlobalAveragePool)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(GlobalMaxPool)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}
