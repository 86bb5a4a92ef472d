/* shape_tensor.c — PENDING placeholder, replaced by the real implementation. */
#include "shape_impl.h"

SHAPE_RULE(Reshape)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Flatten)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Squeeze)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Unsqueeze)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Transpose)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Concat)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Split)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Slice)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Gather)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(GatherElements)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Expand)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Tile)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Pad)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Trilu)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Shape)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Size)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(ConstantOfShape)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}

SHAPE_RULE(Range)
{
    (void)g;
    return shp_err(d, n, ST_ERR_UNSUPPORTED, "PENDING: shape rule not written yet");
}
