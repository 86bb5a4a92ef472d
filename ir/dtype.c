/* dtype.c — element types: sizes, names, half-precision conversion, and the
 * widening load / narrowing store every dtype-generic reference kernel uses. */
#include <math.h>
#include <string.h>

#include "ir.h"

size_t ir_dtype_size(enum ir_dtype dt)
{
    switch (dt) {
    case IR_F32: case IR_I32: case IR_U32: return 4;
    case IR_F64: case IR_I64: case IR_U64: return 8;
    case IR_F16: case IR_BF16: case IR_I16: case IR_U16: return 2;
    case IR_I8: case IR_U8: case IR_BOOL: return 1;
    case IR_DT_UNDEF: case IR_STRING: return 0;
    }
    return 0;
}

const char *ir_dtype_name(enum ir_dtype dt)
{
    switch (dt) {
    case IR_F32: return "float32";
    case IR_F64: return "float64";
    case IR_F16: return "float16";
    case IR_BF16: return "bfloat16";
    case IR_I64: return "int64";
    case IR_I32: return "int32";
    case IR_I16: return "int16";
    case IR_I8: return "int8";
    case IR_U64: return "uint64";
    case IR_U32: return "uint32";
    case IR_U16: return "uint16";
    case IR_U8: return "uint8";
    case IR_BOOL: return "bool";
    case IR_STRING: return "string";
    case IR_DT_UNDEF: return "undef";
    }
    return "?";
}

int ir_dtype_is_float(enum ir_dtype dt)
{
    return dt == IR_F32 || dt == IR_F64 || dt == IR_F16 || dt == IR_BF16;
}

int ir_dtype_is_int(enum ir_dtype dt)
{
    return dt == IR_I64 || dt == IR_I32 || dt == IR_I16 || dt == IR_I8 || dt == IR_U64 ||
           dt == IR_U32 || dt == IR_U16 || dt == IR_U8;
}

int ir_dtype_valid(int v)
{
    return v > 0 && v != IR_STRING && ir_dtype_size((enum ir_dtype)v) != 0;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ir_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) /* inf / nan */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { /* zero / subnormal: value = man * 2^-24 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ir_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) /* inf or nan (keep nan quiet) */
        return sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0);
    if (au >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (au < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float a = bits_f32(au);
        /* round a / 2^-24 to nearest even integer in float arithmetic */
        float q = a * 0x1p24f;
        float r = nearbyintf(q);
        return sign | (uint16_t)r;
    }
    uint32_t man = au & 0x7fffff, exp = (au >> 23) - 112;
    uint32_t half = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
        half++;
    return sign | (uint16_t)half;
}

float ir_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t ir_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

double ir_load_f64(enum ir_dtype dt, const void *p, int64_t i)
{
    switch (dt) {
    case IR_F32: return ((const float *)p)[i];
    case IR_F64: return ((const double *)p)[i];
    case IR_F16: return ir_f16_to_f32(((const uint16_t *)p)[i]);
    case IR_BF16: return ir_bf16_to_f32(((const uint16_t *)p)[i]);
    case IR_I64: return (double)((const int64_t *)p)[i];
    case IR_I32: return ((const int32_t *)p)[i];
    case IR_I16: return ((const int16_t *)p)[i];
    case IR_I8: return ((const int8_t *)p)[i];
    case IR_U64: return (double)((const uint64_t *)p)[i];
    case IR_U32: return ((const uint32_t *)p)[i];
    case IR_U16: return ((const uint16_t *)p)[i];
    case IR_U8: return ((const uint8_t *)p)[i];
    case IR_BOOL: return ((const uint8_t *)p)[i] != 0;
    case IR_DT_UNDEF: case IR_STRING: break;
    }
    return 0;
}

static int64_t sat_i64(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    v = trunc(v);
    if (v <= lo)
        return (int64_t)lo;
    if (v >= hi)
        return (int64_t)hi;
    return (int64_t)v;
}

static uint64_t sat_u64(double v, double hi)
{
    if (isnan(v) || v <= 0)
        return 0;
    if (v >= hi)
        return (uint64_t)hi;
    return (uint64_t)trunc(v);
}

void ir_store_f64(enum ir_dtype dt, void *p, int64_t i, double v)
{
    switch (dt) {
    case IR_F32: ((float *)p)[i] = (float)v; return;
    case IR_F64: ((double *)p)[i] = v; return;
    case IR_F16: ((uint16_t *)p)[i] = ir_f32_to_f16((float)v); return;
    case IR_BF16: ((uint16_t *)p)[i] = ir_f32_to_bf16((float)v); return;
    case IR_I64: ((int64_t *)p)[i] = sat_i64(v, -0x1p63, 0x1p63 - 1024.0); return;
    case IR_I32: ((int32_t *)p)[i] = (int32_t)sat_i64(v, INT32_MIN, INT32_MAX); return;
    case IR_I16: ((int16_t *)p)[i] = (int16_t)sat_i64(v, INT16_MIN, INT16_MAX); return;
    case IR_I8: ((int8_t *)p)[i] = (int8_t)sat_i64(v, INT8_MIN, INT8_MAX); return;
    case IR_U64: ((uint64_t *)p)[i] = sat_u64(v, 0x1p64 - 2048.0); return;
    case IR_U32: ((uint32_t *)p)[i] = (uint32_t)sat_u64(v, UINT32_MAX); return;
    case IR_U16: ((uint16_t *)p)[i] = (uint16_t)sat_u64(v, UINT16_MAX); return;
    case IR_U8: ((uint8_t *)p)[i] = (uint8_t)sat_u64(v, UINT8_MAX); return;
    case IR_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    case IR_DT_UNDEF: case IR_STRING: return;
    }
}

int64_t ir_load_i64(enum ir_dtype dt, const void *p, int64_t i)
{
    switch (dt) {
    case IR_I64: return ((const int64_t *)p)[i];
    case IR_I32: return ((const int32_t *)p)[i];
    case IR_I16: return ((const int16_t *)p)[i];
    case IR_I8: return ((const int8_t *)p)[i];
    case IR_U64: return (int64_t)((const uint64_t *)p)[i];
    case IR_U32: return ((const uint32_t *)p)[i];
    case IR_U16: return ((const uint16_t *)p)[i];
    case IR_U8: return ((const uint8_t *)p)[i];
    case IR_BOOL: return ((const uint8_t *)p)[i] != 0;
    case IR_F32: case IR_F64: case IR_F16: case IR_BF16:
        return sat_i64(ir_load_f64(dt, p, i), -0x1p63, 0x1p63 - 1024.0);
    case IR_DT_UNDEF: case IR_STRING: break;
    }
    return 0;
}

void ir_store_i64(enum ir_dtype dt, void *p, int64_t i, int64_t v)
{
    switch (dt) {
    /* integer stores wrap (two's complement), matching C/numpy integer casts */
    case IR_I64: ((int64_t *)p)[i] = v; return;
    case IR_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)v; return;
    case IR_I16: ((int16_t *)p)[i] = (int16_t)(uint16_t)v; return;
    case IR_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)v; return;
    case IR_U64: ((uint64_t *)p)[i] = (uint64_t)v; return;
    case IR_U32: ((uint32_t *)p)[i] = (uint32_t)v; return;
    case IR_U16: ((uint16_t *)p)[i] = (uint16_t)v; return;
    case IR_U8: ((uint8_t *)p)[i] = (uint8_t)v; return;
    case IR_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    case IR_F32: case IR_F64: case IR_F16: case IR_BF16:
        ir_store_f64(dt, p, i, (double)v);
        return;
    case IR_DT_UNDEF: case IR_STRING: return;
    }
}
