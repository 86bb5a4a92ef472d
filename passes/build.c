/* build.c — node builder for passes (see build.h). */
#include <stdio.h>
#include <string.h>

#include "build.h"

struct ir_builder bld_begin(struct ir_graph *g, const char *prefix, struct diag *d)
{
    struct ir_builder b = {g, prefix ? prefix : "pdc", d, ST_OK, 0, BLD_OPSET};
    return b;
}

struct ir_attr bld_attr_int(const char *name, int64_t v)
{
    return (struct ir_attr){.name = name, .type = IR_ATTR_INT, .i = v};
}

struct ir_attr bld_attr_float(const char *name, double v)
{
    return (struct ir_attr){.name = name, .type = IR_ATTR_FLOAT, .f = v};
}

struct ir_attr bld_attr_str(const char *name, const char *v)
{
    return (struct ir_attr){.name = name, .type = IR_ATTR_STRING, .s = v, .s_len = strlen(v)};
}

struct ir_attr bld_attr_ints(const char *name, int64_t n, const int64_t *v)
{
    return (struct ir_attr){.name = name, .type = IR_ATTR_INTS, .n = n, .ints = (int64_t *)v};
}

/* deep-copy attributes into the graph's arena */
static struct ir_attr *copy_attrs(struct ir_graph *g, uint32_t n, const struct ir_attr *a)
{
    struct ir_attr *c = ir_arena_alloc(g->arena, (n + 1) * sizeof *c);
    for (uint32_t i = 0; i < n; i++) {
        c[i] = a[i];
        c[i].name = ir_arena_strdup(g->arena, a[i].name);
        if (a[i].s)
            c[i].s = ir_arena_strdup(g->arena, a[i].s);
        if (a[i].ints) {
            c[i].ints = ir_arena_alloc(g->arena, (size_t)(a[i].n + 1) * sizeof *c[i].ints);
            memcpy(c[i].ints, a[i].ints, (size_t)a[i].n * sizeof *c[i].ints);
        }
        if (a[i].floats) {
            c[i].floats = ir_arena_alloc(g->arena, (size_t)(a[i].n + 1) * sizeof *c[i].floats);
            memcpy(c[i].floats, a[i].floats, (size_t)a[i].n * sizeof *c[i].floats);
        }
        if (a[i].tensors) {
            c[i].tensors = ir_arena_alloc(g->arena, (size_t)(a[i].n + 1) * sizeof *c[i].tensors);
            memcpy(c[i].tensors, a[i].tensors, (size_t)a[i].n * sizeof *c[i].tensors);
        }
    }
    return c;
}

uint32_t bld_node(struct ir_builder *b, enum ir_op op, uint32_t n_in, const uint32_t *in,
                  uint32_t n_attr, const struct ir_attr *attr, uint32_t n_out, uint32_t *outs)
{
    if (b->err)
        return IR_NONE;
    for (uint32_t i = 0; i < n_in; i++)
        if (in[i] == IR_NONE && i < (uint32_t)ir_ops[op].min_in) {
            b->err = diag_set(b->d, ST_ERR_INVALID, "%s: building %s with a missing input %u",
                              b->prefix, ir_ops[op].name, i);
            return IR_NONE;
        }
    uint32_t tmp[16];
    if (n_out > 16) {
        b->err = diag_set(b->d, ST_ERR_INVALID, "%s: too many outputs", b->prefix);
        return IR_NONE;
    }
    char name[256];
    snprintf(name, sizeof name, "%s/%s_%u", b->prefix, ir_ops[op].name, b->count++);
    for (uint32_t k = 0; k < n_out; k++) {
        char tn[300];
        snprintf(tn, sizeof tn, "%s:%u", name, k);
        tmp[k] = ir_tensor_new_unique(b->g, tn);
    }
    uint32_t nid = ir_node_new(b->g, op, name, n_in, in, n_out, tmp);
    struct ir_node *n = &b->g->n[nid];
    n->opset = b->opset;
    if (n_attr) {
        n->n_attr = n_attr;
        n->attr = copy_attrs(b->g, n_attr, attr);
    }
    int st = ir_infer_node(b->g, n, b->d);
    if (st) {
        b->err = st;
        return IR_NONE;
    }
    if (outs)
        memcpy(outs, tmp, n_out * sizeof *outs);
    return tmp[0];
}

uint32_t bld_op1(struct ir_builder *b, enum ir_op op, uint32_t x)
{
    return bld_node(b, op, 1, &x, 0, NULL, 1, NULL);
}

uint32_t bld_op2(struct ir_builder *b, enum ir_op op, uint32_t x, uint32_t y)
{
    uint32_t in[2] = {x, y};
    return bld_node(b, op, 2, in, 0, NULL, 1, NULL);
}

uint32_t bld_add(struct ir_builder *b, uint32_t x, uint32_t y) { return bld_op2(b, IR_OP_Add, x, y); }
uint32_t bld_sub(struct ir_builder *b, uint32_t x, uint32_t y) { return bld_op2(b, IR_OP_Sub, x, y); }
uint32_t bld_mul(struct ir_builder *b, uint32_t x, uint32_t y) { return bld_op2(b, IR_OP_Mul, x, y); }
uint32_t bld_div(struct ir_builder *b, uint32_t x, uint32_t y) { return bld_op2(b, IR_OP_Div, x, y); }
uint32_t bld_matmul(struct ir_builder *b, uint32_t x, uint32_t y)
{
    return bld_op2(b, IR_OP_MatMul, x, y);
}

uint32_t bld_const(struct ir_builder *b, enum ir_dtype dt, int rank, const int64_t *dims,
                   const void *data)
{
    if (b->err)
        return IR_NONE;
    char name[256];
    snprintf(name, sizeof name, "%s/const_%u", b->prefix, b->count++);
    uint32_t t = ir_tensor_new_unique(b->g, name);
    int st = ir_tensor_set_const(b->g, t, dt, rank, dims, data);
    if (st) {
        b->err = diag_set(b->d, st, "%s: out of memory for a constant", b->prefix);
        return IR_NONE;
    }
    return t;
}

uint32_t bld_scalar(struct ir_builder *b, enum ir_dtype dt, double v)
{
    unsigned char buf[16] = {0};
    ir_store_f64(dt, buf, 0, v);
    return bld_const(b, dt, 0, NULL, buf);
}

uint32_t bld_f32(struct ir_builder *b, double v) { return bld_scalar(b, IR_F32, v); }

uint32_t bld_i64s(struct ir_builder *b, int64_t n, const int64_t *v)
{
    return bld_const(b, IR_I64, 1, &n, v);
}

uint32_t bld_zeros_like(struct ir_builder *b, uint32_t x)
{
    if (b->err)
        return IR_NONE;
    const struct ir_tensor *t = &b->g->t[x];
    int64_t dims[IR_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    return bld_const(b, t->dtype, t->rank, dims, NULL);
}

uint32_t bld_transpose(struct ir_builder *b, uint32_t x, int n, const int64_t *perm)
{
    struct ir_attr a = bld_attr_ints("perm", n, perm);
    return bld_node(b, IR_OP_Transpose, 1, &x, 1, &a, 1, NULL);
}

uint32_t bld_swap_last2(struct ir_builder *b, uint32_t x)
{
    if (b->err)
        return IR_NONE;
    int r = b->g->t[x].rank;
    int64_t perm[IR_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = i;
    if (r >= 2) {
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 2;
    }
    return bld_transpose(b, x, r, perm);
}

uint32_t bld_reshape(struct ir_builder *b, uint32_t x, int rank, const int64_t *dims)
{
    uint32_t in[2] = {x, bld_i64s(b, rank, dims)};
    return bld_node(b, IR_OP_Reshape, 2, in, 0, NULL, 1, NULL);
}

uint32_t bld_reduce(struct ir_builder *b, enum ir_op op, uint32_t x, int naxes, const int64_t *axes,
                    int keepdims)
{
    struct ir_attr a = bld_attr_int("keepdims", keepdims);
    uint32_t in[2] = {x, naxes ? bld_i64s(b, naxes, axes) : IR_NONE};
    return bld_node(b, op, naxes ? 2 : 1, in, 1, &a, 1, NULL);
}

uint32_t bld_cast(struct ir_builder *b, uint32_t x, enum ir_dtype to)
{
    struct ir_attr a = bld_attr_int("to", to);
    return bld_node(b, IR_OP_Cast, 1, &x, 1, &a, 1, NULL);
}

uint32_t bld_sum_to(struct ir_builder *b, uint32_t x, int rank, const int64_t *dims)
{
    if (b->err)
        return IR_NONE;
    const struct ir_tensor *t = &b->g->t[x];
    int r = t->rank, lead = r - rank;
    if (lead < 0) {
        b->err = diag_set(b->d, ST_ERR_SHAPE, "%s: cannot sum rank %d down to rank %d", b->prefix,
                          r, rank);
        return IR_NONE;
    }
    int64_t axes[IR_MAX_RANK];
    int na = 0;
    for (int i = 0; i < r; i++)
        if (i < lead || (dims[i - lead] == 1 && t->dims[i] != 1))
            axes[na++] = i;
    if (na == 0)
        return x;
    uint32_t s = bld_reduce(b, IR_OP_ReduceSum, x, na, axes, 1);
    return bld_reshape(b, s, rank, dims);
}
