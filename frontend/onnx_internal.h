/* onnx_internal.h — shared between the frontend's files; not a public API. */
#ifndef PDC_ONNX_INTERNAL_H
#define PDC_ONNX_INTERNAL_H

#include "onnx.h"
#include "onnx.pb-c.h"

/* Decoded tensor data. `base`/`len` describe what must be released: a heap
 * block (mapped=0, free) or a file mapping (mapped=1, munmap); `data` points
 * into it (a mapping starts at a page boundary before the tensor). */
struct onnx_data {
    enum ir_dtype dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
    void *data;
    size_t nbytes;
    void *base;
    size_t len;
    int mapped;
};

/* Decode a TensorProto: raw_data (stolen from the message, not copied), the
 * typed repeated fields, or external data resolved inside `dir` (NULL: external
 * data not allowed). `what` names the tensor in messages ("model.onnx: initializer 'W'"). */
int onnx_tensor_decode(Onnx__TensorProto *tp, const char *dir, const char *what,
                       struct onnx_data *out, struct diag *d);
void onnx_data_release(struct onnx_data *od);

/* messages nested deeper than this are refused before unpacking (onnx_depth.c):
 * protobuf-c recurses without a limit; ONNX's own parser stops at 100 */
#define ONNX_MAX_DEPTH 100
int onnx_check_depth(const void *buf, size_t len, const ProtobufCMessageDescriptor *desc);

/* protobuf-c allocator on malloc/free, so stolen bytes can be free()d later */
extern ProtobufCAllocator onnx_pb_alloc;
/* an allocator that refuses to go past b->left bytes in all (b->over set when it did) */
struct onnx_pb_budget {
    size_t left;
    int over;
};
ProtobufCAllocator onnx_pb_budgeted(struct onnx_pb_budget *b);
/* what unpacking a model file of len bytes may allocate: its bytes twice (tensor data is
 * copied) plus 256 MiB for the message structs of a real model */
#define ONNX_PB_BUDGET(len) ((len) * 2 + ((size_t)256 << 20))

/* onnx_canon.c: rewrite opset-versioned attribute forms into input forms */
int onnx_canonicalize_node(struct ir_graph *g, uint32_t node, struct diag *d);

/* read a whole file (bounded by `max` bytes) into a malloc'd buffer */
int onnx_read_file(const char *path, size_t max, void **buf, size_t *len, struct diag *d);

#endif
