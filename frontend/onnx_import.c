/* onnx_import.c — PENDING: being written. */
#include "onnx.h"

int onnx_load_file(const char *path, struct ir_graph **out, struct diag *d)
{
    (void)out;
    return diag_set(d, ST_ERR_UNSUPPORTED, "%s: PENDING importer", path);
}
