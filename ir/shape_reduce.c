/* shape_reduce.c — PENDING placeholder, replaced by the real implementation. */
#include "shape_impl.h"

SHAPE_RULE(ReduceMean)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceSum)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceMax)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceMin)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceProd)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceL1)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceL2)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceSumSquare)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceLogSum)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ReduceLogSumExp)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ArgMax)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ArgMin)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(CumSum)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Softmax)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(LogSoftmax)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Hardmax)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(LayerNormalization)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(BatchNormalization)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(InstanceNormalization)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}
