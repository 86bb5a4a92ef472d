/* ir.h — pdc's intermediate representation: the one header every stage includes.
 *
 * A graph is a static dataflow program. Tensors (values) and nodes (ops) live in
 * growable arrays addressed by 32-bit ids; ids never change once handed out, so
 * passes can keep them across edits and the printer is deterministic. Strings and
 * small per-node arrays live in the graph's arena and die with it. Big tensor data
 * (initializers, folded constants) lives in separately owned buffers (heap or mmap)
 * that the graph also frees.
 *
 *   model.onnx --onnx_import--> graph (dims may be symbolic: "batch", "seq")
 *   ir_bind("batch=64")      --> every symbolic dim concrete
 *   pass pipeline            --> shapes inferred, shape subgraphs folded, dead code gone
 *   runtime                  --> executes nodes in order on a codegen target
 *
 * The op list is ops.def (one row per op); every consumer switches over it or
 * builds a table from it, so a new row makes the compiler point at what is missing.
 */
#ifndef PDC_IR_H
#define PDC_IR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define IR_MAX_RANK 8
#define IR_NONE UINT32_MAX
#define IR_MAX_ELEMS ((int64_t)1 << 34) /* sanity cap on any tensor's element count */

/* ---- status and diagnostics (status.c) --------------------------------- */

enum status {
    ST_OK = 0,
    ST_ERR_IO,
    ST_ERR_PARSE,
    ST_ERR_UNSUPPORTED,
    ST_ERR_SHAPE,
    ST_ERR_NOMEM,
    ST_ERR_INVALID, /* well-formed but inconsistent input (dangling name, cycle, ...) */
    ST_ERR_DEVICE,
};

/* Caller-owned; the first error wins so the message points at the root cause. */
struct diag {
    enum status status;
    char msg[1024];
};

int diag_set(struct diag *d, enum status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *status_name(enum status st);

/* ---- dtypes (dtype.c); values are ONNX TensorProto.DataType numbers ------ */

enum ir_dtype {
    IR_DT_UNDEF = 0,
    IR_F32 = 1,
    IR_U8 = 2,
    IR_I8 = 3,
    IR_U16 = 4,
    IR_I16 = 5,
    IR_I32 = 6,
    IR_I64 = 7,
    IR_STRING = 8, /* recognised only to be rejected */
    IR_BOOL = 9,
    IR_F16 = 10,
    IR_F64 = 11,
    IR_U32 = 12,
    IR_U64 = 13,
    IR_BF16 = 16,
};

size_t ir_dtype_size(enum ir_dtype dt);       /* 0 for unsupported */
const char *ir_dtype_name(enum ir_dtype dt);  /* "float32", ... */
int ir_dtype_is_float(enum ir_dtype dt);      /* f16 bf16 f32 f64 */
int ir_dtype_is_int(enum ir_dtype dt);        /* signed/unsigned ints (not bool) */
int ir_dtype_valid(int v);                    /* a dtype pdc can hold */
float ir_f16_to_f32(uint16_t h);
uint16_t ir_f32_to_f16(float f);              /* round to nearest even */
float ir_bf16_to_f32(uint16_t h);
uint16_t ir_f32_to_bf16(float f);             /* round to nearest even */
/* Element i of a buffer of dtype dt, widened; and the narrowing store. Float
 * stores round to nearest; integer stores from double truncate toward zero and
 * saturate like C casts would not (out-of-range is clamped, NaN -> 0). */
double ir_load_f64(enum ir_dtype dt, const void *p, int64_t i);
void ir_store_f64(enum ir_dtype dt, void *p, int64_t i, double v);
int64_t ir_load_i64(enum ir_dtype dt, const void *p, int64_t i);
void ir_store_i64(enum ir_dtype dt, void *p, int64_t i, int64_t v);

/* ---- ops table --------------------------------------------------------- */

enum ir_op {
#define OP(name, min_in, max_in, min_out, max_out, flags, value_in) IR_OP_##name,
#include "ops.def"
#undef OP
    IR_OP_COUNT
};

/* op flags */
#define IR_OPF_ELEMWISE 0x1u  /* output element i depends on input element i (after broadcast) */
#define IR_OPF_BCAST    0x2u  /* numpy-style multidirectional broadcast of inputs */
#define IR_OPF_REDUCE   0x4u
#define IR_OPF_SHAPE    0x8u  /* moves/reshapes data without arithmetic */
#define IR_OPF_INTERNAL 0x10u /* created by passes, never imported from ONNX */
#define IR_OPF_NOFOLD   0x20u /* never constant-fold (random, huge outputs) */

struct ir_op_info {
    const char *name; /* ONNX op_type spelling */
    int min_in, max_in, min_out, max_out; /* max -1: variadic */
    unsigned flags;
    unsigned value_in; /* bit i: input i is read at compile time (a shape operand) */
};
extern const struct ir_op_info ir_ops[IR_OP_COUNT];
enum ir_op ir_op_lookup(const char *onnx_name); /* IR_OP_COUNT if unknown */

/* ---- attributes -------------------------------------------------------- */

enum ir_attr_type {
    IR_ATTR_FLOAT = 1,
    IR_ATTR_INT = 2,
    IR_ATTR_STRING = 3,
    IR_ATTR_TENSOR = 4,
    IR_ATTR_GRAPH = 5,
    IR_ATTR_FLOATS = 6,
    IR_ATTR_INTS = 7,
    IR_ATTR_STRINGS = 8,
    IR_ATTR_TENSORS = 9,
    IR_ATTR_GRAPHS = 10,
    IR_ATTR_SPARSE_TENSOR = 11,
    IR_ATTR_SPARSE_TENSORS = 12,
    IR_ATTR_TYPE_PROTO = 13,
    IR_ATTR_TYPE_PROTOS = 14,
};

/* One attribute. Kinds no supported op consumes (graphs, sparse tensors, type
 * protos) keep their kind and element count only; an op that needed them would
 * be rejected at import anyway. */
struct ir_attr {
    const char *name;
    enum ir_attr_type type;
    int64_t i;
    double f;
    const char *s;        /* STRING (NUL-terminated; ONNX strings are bytes, see s_len) */
    size_t s_len;
    int64_t n;            /* element count of list kinds */
    int64_t *ints;
    double *floats;
    const char **strs;
    uint32_t *tensors;    /* TENSOR (n=1) / TENSORS: ids of constant tensors in the graph */
};

/* ---- tensors, nodes, graph -------------------------------------------- */

/* tensor flags */
#define IR_T_INPUT  0x1u  /* graph input fed at run time */
#define IR_T_OUTPUT 0x2u  /* graph output */
#define IR_T_INIT   0x4u  /* ONNX initializer (data set) */
#define IR_T_CONST  0x8u  /* compile-time constant (Constant node, folded value, attribute) */
#define IR_T_PARAM  0x10u /* floating-point weight: kept as is by folding (sites live on these) */
#define IR_T_KEEP   0x20u /* its buffer is read after a run: the memory planner leaves it alone */

struct ir_tensor {
    const char *name;            /* unique within the graph ("" never used) */
    enum ir_dtype dtype;         /* IR_DT_UNDEF until inferred */
    int rank;                    /* -1 until inferred */
    int64_t dims[IR_MAX_RANK];   /* -1 where unknown */
    int32_t sym[IR_MAX_RANK];    /* symbolic dim id (graph->syms) or -1 */
    uint32_t producer;           /* node id or IR_NONE */
    unsigned flags;
    void *data;                  /* constant data (row-major), borrowed from a graph buffer */
    size_t nbytes;
};

#define IR_N_DEAD 0x1u

struct ir_node {
    enum ir_op op;
    const char *name;     /* ONNX node name, or a generated "<op>_<id>" when empty */
    int opset;            /* version of the default domain the model imports */
    unsigned flags;
    uint32_t n_in, n_out;
    uint32_t *in;         /* tensor ids; IR_NONE for an omitted optional input */
    uint32_t *out;
    uint32_t n_attr;
    struct ir_attr *attr;
};

struct ir_arena; /* arena.c */
struct ir_strmap; /* name -> id hash map (graph.c) */

struct ir_buf { /* owned storage for constant data */
    void *base;
    size_t len;
    int mapped; /* munmap instead of free */
};

struct ir_graph {
    struct ir_arena *arena;
    struct ir_tensor *t;
    uint32_t nt, ct;
    struct ir_node *n;
    uint32_t nn, cn;
    uint32_t *inputs, n_inputs, c_inputs;   /* graph inputs in ONNX order (no initializers) */
    uint32_t *outputs, n_outputs, c_outputs;
    const char **syms;    /* symbolic dim names */
    int64_t *sym_val;     /* bound value or -1 */
    int nsyms, csyms;
    struct ir_buf *bufs;
    int nbufs, cbufs;
    struct ir_strmap *names;
    int opset;            /* default-domain opset */
    int64_t ir_version;
    const char *producer; /* producer_name from the model */
    const char *path;     /* file it came from, for messages */
    unsigned valid;       /* analyses that are current (IR_VALID_*) */
    uint32_t *topo; uint32_t ntopo; /* node ids in execution order (ir_fill_topo) */
};

#define IR_VALID_TOPO 0x1u

/* arena.c: bump allocator. Aborts on OOM only for tiny internal allocations;
 * graph-level calls check and report ST_ERR_NOMEM. */
struct ir_arena *ir_arena_new(void);
void ir_arena_free(struct ir_arena *a);
void *ir_arena_alloc(struct ir_arena *a, size_t n); /* zeroed, 16-byte aligned */
char *ir_arena_strdup(struct ir_arena *a, const char *s);
char *ir_arena_strndup(struct ir_arena *a, const char *s, size_t n);

/* graph.c */
struct ir_graph *ir_graph_new(void);
void ir_graph_free(struct ir_graph *g);
uint32_t ir_tensor_new(struct ir_graph *g, const char *name);    /* IR_NONE if name taken */
uint32_t ir_tensor_find(const struct ir_graph *g, const char *name); /* IR_NONE if absent */
uint32_t ir_tensor_new_unique(struct ir_graph *g, const char *stem); /* stem, stem_1, ... */
uint32_t ir_node_new(struct ir_graph *g, enum ir_op op, const char *name,
                     uint32_t n_in, const uint32_t *in, uint32_t n_out, const uint32_t *out);
void ir_graph_add_input(struct ir_graph *g, uint32_t t);
void ir_graph_add_output(struct ir_graph *g, uint32_t t);
int ir_sym_intern(struct ir_graph *g, const char *name);
void *ir_graph_buf(struct ir_graph *g, size_t len);  /* zeroed heap buffer owned by g; NULL on OOM */
void ir_graph_adopt(struct ir_graph *g, void *base, size_t len, int mapped);
/* make tensor t a constant with the given dtype/shape, copying data in */
int ir_tensor_set_const(struct ir_graph *g, uint32_t t, enum ir_dtype dt, int rank,
                        const int64_t *dims, const void *data);
int64_t ir_numel(const struct ir_tensor *t); /* -1 if rank/dims unknown */
int ir_fill_topo(struct ir_graph *g, struct diag *d); /* fails on a cycle, naming a node */
void ir_invalidate(struct ir_graph *g);

/* attribute lookup (attr.c): defaults when absent */
const struct ir_attr *ir_attr_get(const struct ir_node *n, const char *name);
int64_t ir_attr_int(const struct ir_node *n, const char *name, int64_t def);
double ir_attr_float(const struct ir_node *n, const char *name, double def);
const char *ir_attr_str(const struct ir_node *n, const char *name, const char *def);
/* list attribute; returns its count and sets *v, or -1 (and *v=NULL) if absent */
int64_t ir_attr_ints(const struct ir_node *n, const char *name, const int64_t **v);
int64_t ir_attr_floats(const struct ir_node *n, const char *name, const double **v);

/* Standalone host tensor used for I/O (npy, .pb test data, run inputs/outputs). */
struct ir_value {
    char *name;
    enum ir_dtype dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
    void *data; /* malloc'd, row-major */
    size_t nbytes;
};
void ir_value_free(struct ir_value *v); /* frees name and data, not v */
int64_t ir_value_numel(const struct ir_value *v);

/* bind.c: "batch=64,seq=128" -> symbolic dims of graph inputs */
int ir_bind(struct ir_graph *g, const char *spec, struct diag *d);
int ir_bind_sym(struct ir_graph *g, const char *name, int64_t v, struct diag *d);

/* shape.c: infer dtype/shape of every node's outputs in topo order. Needs every
 * graph input's dims concrete and every value input (ops.def value_in) constant. */
int ir_infer_node(struct ir_graph *g, struct ir_node *n, struct diag *d);
int ir_infer_shapes(struct ir_graph *g, struct diag *d);

/* verify.c: structural invariants; names the offending node/tensor */
int ir_verify(struct ir_graph *g, struct diag *d);

/* print.c: stable text form */
void ir_print(const struct ir_graph *g, void *file /* FILE* */);
void ir_tensor_type_str(const struct ir_tensor *t, const struct ir_graph *g, char *buf, size_t n);

/* broadcast.c: numpy broadcasting helpers shared by shape inference and kernels */
int ir_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db,
                       int *rout, int64_t *dout); /* -1 if incompatible */
/* strides of a tensor of rank r broadcast into rank ro (0 stride on broadcast dims) */
void ir_broadcast_strides(int r, const int64_t *dims, int ro, const int64_t *dout,
                          int64_t *strides);
/* MatMul as a batch of products: Y (batch..., M, N) = op(A) (batch..., M, K) @ op(B)
 * (batch..., K, N), 1-D operands promoted as numpy does (already reflected in Y's shape);
 * rb batch dims (Y's), A's and B's element offsets per batch index (0 where broadcast),
 * nb products in all. op() is the transpose of the last two dims where the node has
 * pdc's own transA / transB (ir_matmul_trans; ONNX's MatMul has no attributes: built
 * programs only, gemm_fold.c). Shared by the cpu target and the CUDA lowering; ref, the
 * oracle, reads only the flags (ir_matmul_trans) and walks the batch its own way. */
struct ir_matmul_view {
    int64_t M, N, K, nb;
    int rb, ta, tb;
    int64_t dims[IR_MAX_RANK], astr[IR_MAX_RANK], bstr[IR_MAX_RANK];
};
void ir_matmul_view(const struct ir_node *n, const struct ir_tensor *a, const struct ir_tensor *b,
                    const struct ir_tensor *y, struct ir_matmul_view *v);
/* a MatMul's transA / transB (only on operands of rank >= 2) */
void ir_matmul_trans(const struct ir_node *n, const struct ir_tensor *a,
                     const struct ir_tensor *b, int *ta, int *tb);
/* Gemm's attributes and sizes: Y (M, N) = alpha·op(A)·op(B) + beta·C */
struct ir_gemm_view {
    int ta, tb;
    float alpha, beta;
    int64_t M, N, K;
};
void ir_gemm_view(const struct ir_node *n, const struct ir_tensor *a, const struct ir_tensor *y,
                  struct ir_gemm_view *v);
void ir_contig_strides(int r, const int64_t *dims, int64_t *strides);
/* normalise a possibly-negative axis; -1 if out of range */
int ir_norm_axis(int64_t axis, int rank);
/* ONNX Slice on one axis of size dim: its element count and *first index, after
 * the clamping and the INT_MAX "to the end" reading of ir/shape_tensor.c */
int64_t ir_slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first);

#endif
