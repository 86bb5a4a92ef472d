/* ops.c — the ops table built from ops.def, and lookup by ONNX name. */
#include <string.h>

#include "ir.h"

const struct ir_op_info ir_ops[IR_OP_COUNT] = {
#define OP(name, min_in, max_in, min_out, max_out, flags, value_in) \
    [IR_OP_##name] = {#name, min_in, max_in, min_out, max_out, flags, value_in},
#include "ops.def"
#undef OP
};

enum ir_op ir_op_lookup(const char *onnx_name)
{
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (!(ir_ops[i].flags & IR_OPF_INTERNAL) && strcmp(ir_ops[i].name, onnx_name) == 0)
            return (enum ir_op)i;
    return IR_OP_COUNT;
}
