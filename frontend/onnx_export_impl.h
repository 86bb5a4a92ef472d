/* onnx_export_impl.h — shared between the exporter's files (onnx_export.c,
 * onnx_export_lower.c, onnx_export_io.c); not a public API. */
#ifndef PDC_ONNX_EXPORT_IMPL_H
#define PDC_ONNX_EXPORT_IMPL_H

#include "onnx_internal.h"

#define EX_ALIGN 4096u /* external data offsets */
#define EX_MAX_ADD 8   /* attributes one node may gain from lowering */

/* A tensor whose bytes go to the external data file. */
struct ex_ext {
    const void *data;
    size_t nbytes;
    uint64_t offset;
};

struct exporter {
    const struct ir_graph *g;
    const char *file;          /* the model path, for messages */
    int opset;                 /* target default-domain opset */
    size_t ext_threshold;      /* 0: never external */
    const char *ext_name;      /* location written into the model */
    const uint32_t *defaults;  /* per graph input: constant holding its default, or IR_NONE */
    struct ir_arena *arena;    /* every message struct; freed after writing */
    struct ex_ext *ext;        /* in file order */
    size_t n_ext, c_ext;
    uint64_t ext_end;          /* bytes of external data planned so far */
    struct diag *d;
};

/* A node as it will be written: its inputs after lowering (IR_NONE = omitted),
 * attributes of the node left out, and attributes added by lowering. */
struct ex_view {
    uint32_t n_in;
    uint32_t *in;
    const char *drop[EX_MAX_ADD];
    uint32_t n_drop;
    struct ir_attr add[EX_MAX_ADD];
    uint32_t n_add;
};

/* onnx_export_lower.c: the inverse of onnx_canon.c for the target opset */
int ex_lower_node(struct exporter *x, const struct ir_node *n, struct ex_view *v);

/* onnx_export_io.c */
/* TensorProto for tensor t (its bytes referenced, not copied); `may_extern`:
 * large enough tensors are planned into the external data file. */
int ex_tensor_proto(struct exporter *x, uint32_t t, int may_extern, Onnx__TensorProto **out);
/* Serialize m (streamed) and the planned external data to temporary files and
 * rename them into place, the model last. */
int ex_write_files(struct exporter *x, const Onnx__ModelProto *m, const char *path);

#endif
