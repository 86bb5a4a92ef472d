/* onnx.h — ONNX in and out of pdc's IR.
 *
 * The model file is untrusted: every length, offset, dim and count read from it
 * is checked before use; external data must stay inside the model's folder;
 * nothing is allocated merely because the file claims a size. Errors name the
 * file and the node/tensor/attribute at fault. */
#ifndef PDC_ONNX_H
#define PDC_ONNX_H

#include "ir.h"

/* Hard limits on what a file may claim (on top of IR_MAX_ELEMS per tensor). */
#define ONNX_MAX_FILE_BYTES ((size_t)4 << 30)   /* the protobuf itself (weights go external past 2 GB) */
#define ONNX_MAX_NODES 1000000
#define ONNX_MAX_ATTR_LIST 1000000

/* Import a model. Initializers become constant tensors (IR_T_INIT, and
 * IR_T_PARAM when floating point), Constant nodes become constant tensors,
 * graph inputs keep their (possibly symbolic) dims. Opset-versioned forms are
 * canonicalised to the newest input-based form (e.g. Squeeze-11's `axes`
 * attribute becomes a constant input), so shape rules and kernels see one form. */
int onnx_load_file(const char *path, struct ir_graph **out, struct diag *d);

/* Same, from memory. `dir` is the folder external data is resolved against
 * (NULL: a model using external data is rejected); `name` is used in messages. */
int onnx_load_mem(const void *buf, size_t len, const char *dir, const char *name,
                  struct ir_graph **out, struct diag *d);

/* A serialized TensorProto (the ONNX test-data format input_0.pb / output_0.pb). */
int onnx_read_tensor_file(const char *path, struct ir_value *v, struct diag *d);

/* ---- export (onnx_export.c, onnx_export_lower.c, onnx_export_io.c) -------- */

/* How onnx_save_file writes. A NULL opts pointer means all defaults. */
struct onnx_export_opts {
    const char *producer;      /* producer_name; NULL: "pdc" */
    int opset;                 /* default-domain opset to write; 0: the graph's own (g->opset) */
    size_t external_threshold; /* initializers larger than this many bytes go to external data;
                                * 0: never (the model must then stay under protobuf's 2 GiB) */
    const char *external_name; /* external data file, a plain name in the model's folder;
                                * NULL: "<model file name>.data" */
    const uint32_t *input_defaults; /* NULL, or per graph input a constant tensor whose data is
                                * written as an initializer under the input's name (the input's
                                * default value; it may have another, broadcasting shape), or
                                * IR_NONE */
};

/* Write g as an ONNX model: every live node in topological order, initializers
 * for the constants live nodes read (raw little-endian data, or external data
 * aligned to 4096 bytes), graph inputs with (symbolic) dims, graph outputs with
 * their inferred types. Input forms that onnx_canon.c made of old attribute
 * forms are moved back to attributes where the target opset wants them.
 * Both files are written to temporary names in the model's folder and renamed
 * into place (the model last); on failure neither is left behind. Internal ops
 * and attribute kinds pdc only counts (graphs, sparse tensors, type protos) are
 * rejected, naming the node and attribute. */
int onnx_save_file(const struct ir_graph *g, const char *path, const struct onnx_export_opts *o,
                   struct diag *d);

#endif
