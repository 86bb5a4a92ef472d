/* onnx_export_lower.c — the inverse of onnx_canon.c. The importer turns the
 * attribute forms of old opsets into constant inputs; a node written at an
 * opset older than the one where the operand moved gets its attribute back.
 * The rule table mirrors onnx_canon.c row for row. An operand with no form at
 * the target opset (a run-time axes tensor, Slice steps other than 1, Pad axes)
 * is an error naming the node, never silently dropped.
 *
 * Only moved operands (and Softmax's pre-13 2-D coercion, which changes what
 * `axis` means) are translated; other per-version differences of an op are not
 * checked, so export at another opset than the graph's is best kept to these. */
#include <stdio.h>
#include <string.h>

#include "onnx_export_impl.h"

enum lower_to {
    TO_INTS,       /* constant integer tensor -> INTS attribute */
    TO_FLOAT,      /* constant scalar -> FLOAT attribute */
    TO_FLOAT_T,    /* same; from `since` on the scalar must have the data's type */
    MUST_BE_ONES,  /* no attribute form: dropped only when all ones (the default) */
    MUST_BE_FALSE, /* no attribute form: dropped only when false (the default) */
    ABSENT,        /* no form at all before `since` */
};

struct lower_rule {
    enum ir_op op;
    int since;         /* first opset where the operand is input `slot` */
    uint32_t slot;
    const char *attr;  /* its attribute name before `since` */
    enum lower_to to;
};

static const struct lower_rule rules[] = {
    {IR_OP_Squeeze, 13, 1, "axes", TO_INTS},
    {IR_OP_Unsqueeze, 13, 1, "axes", TO_INTS},
    {IR_OP_Split, 13, 1, "split", TO_INTS},
    {IR_OP_ReduceSum, 13, 1, "axes", TO_INTS},
    {IR_OP_ReduceMean, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceMax, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceMin, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceProd, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceL1, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceL2, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceSumSquare, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceLogSum, 18, 1, "axes", TO_INTS},
    {IR_OP_ReduceLogSumExp, 18, 1, "axes", TO_INTS},
    {IR_OP_Slice, 10, 1, "starts", TO_INTS},
    {IR_OP_Slice, 10, 2, "ends", TO_INTS},
    {IR_OP_Slice, 10, 3, "axes", TO_INTS},
    {IR_OP_Slice, 10, 4, "steps", MUST_BE_ONES},
    {IR_OP_Clip, 11, 1, "min", TO_FLOAT_T},
    {IR_OP_Clip, 11, 2, "max", TO_FLOAT_T},
    {IR_OP_Pad, 11, 1, "pads", TO_INTS},
    {IR_OP_Pad, 11, 2, "value", TO_FLOAT_T},
    {IR_OP_Pad, 18, 3, "axes", ABSENT},
    {IR_OP_Dropout, 12, 1, "ratio", TO_FLOAT},
    {IR_OP_Dropout, 12, 2, "training_mode", MUST_BE_FALSE},
};

static int lower_err(struct exporter *x, const struct ir_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lower_err(struct exporter *x, const struct ir_node *n, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return diag_set(x->d, ST_ERR_UNSUPPORTED, "%s: node '%s' (%s, opset %d) cannot be written at "
                    "opset %d: %s", x->file, n->name, ir_ops[n->op].name, n->opset, x->opset, buf);
}

static struct ir_attr *add_attr(struct ex_view *v, const char *name, enum ir_attr_type type)
{
    struct ir_attr *a = &v->add[v->n_add++];
    memset(a, 0, sizeof *a);
    a->name = name;
    a->type = type;
    return a;
}

static int to_ints(struct exporter *x, const struct ir_node *n, const struct lower_rule *r,
                   const struct ir_tensor *t, struct ex_view *v, int64_t cnt)
{
    if (!ir_dtype_is_int(t->dtype))
        return lower_err(x, n, "input '%s' (%s) must be integers to become attribute '%s'",
                         t->name, ir_dtype_name(t->dtype), r->attr);
    if (cnt == 0 && strcmp(r->attr, "axes") == 0)
        return ST_OK; /* empty axes: the attribute's default (all axes) */
    struct ir_attr *a = add_attr(v, r->attr, IR_ATTR_INTS);
    a->n = cnt;
    a->ints = ir_arena_alloc(x->arena, ((size_t)cnt + 1) * sizeof *a->ints);
    for (int64_t i = 0; i < cnt; i++)
        a->ints[i] = ir_load_i64(t->dtype, t->data, i);
    return ST_OK;
}

/* Move input r->slot of the node into its attribute form (or check it can go). */
static int apply_rule(struct exporter *x, const struct ir_node *n, const struct lower_rule *r,
                      struct ex_view *v, int64_t *n_axes)
{
    const struct ir_tensor *t = &x->g->t[v->in[r->slot]];
    if (r->to == ABSENT)
        return lower_err(x, n, "input %u ('%s', %s) exists only from opset %d", r->slot, t->name,
                         r->attr, r->since);
    if (!t->data)
        return lower_err(x, n, "input '%s' is computed at run time, but before opset %d '%s' is "
                         "a constant attribute", t->name, r->since, r->attr);
    int64_t cnt = ir_numel(t);
    if (r->to == TO_INTS) {
        int st = to_ints(x, n, r, t, v, cnt);
        if (st)
            return st;
        if (strcmp(r->attr, "axes") == 0)
            *n_axes = cnt;
    } else if (r->to == TO_FLOAT || r->to == TO_FLOAT_T) {
        if (cnt != 1)
            return lower_err(x, n, "input '%s' must be a scalar to become attribute '%s'", t->name,
                             r->attr);
        add_attr(v, r->attr, IR_ATTR_FLOAT)->f = ir_load_f64(t->dtype, t->data, 0);
    } else {
        int64_t want = r->to == MUST_BE_ONES;
        for (int64_t i = 0; i < cnt; i++)
            if (ir_load_i64(t->dtype, t->data, i) != want)
                return lower_err(x, n, "input '%s' (%s) is not the default; it needs opset %d",
                                 t->name, r->attr, r->since);
    }
    v->in[r->slot] = IR_NONE;
    return ST_OK;
}

/* onnx_canon.c makes float32 scalars of Clip/Pad attributes; from the opset
 * where they are inputs, they must have the data's type. */
static int check_scalar_type(struct exporter *x, const struct ir_node *n,
                             const struct lower_rule *r, const struct ex_view *v)
{
    if (r->to != TO_FLOAT_T || v->in[0] == IR_NONE)
        return ST_OK;
    const struct ir_tensor *s = &x->g->t[v->in[r->slot]], *data = &x->g->t[v->in[0]];
    if (data->dtype == IR_DT_UNDEF || s->dtype == data->dtype)
        return ST_OK;
    return lower_err(x, n, "input '%s' (%s) is %s but the data is %s; export at the graph's "
                     "opset instead", s->name, r->attr, ir_dtype_name(s->dtype),
                     ir_dtype_name(data->dtype));
}

static void drop_attr(struct ex_view *v, const char *name)
{
    v->drop[v->n_drop++] = name;
}

/* Reduce* noop_with_empty_axes exists from the opset where axes became an input. */
static int lower_noop(struct exporter *x, const struct ir_node *n, struct ex_view *v, int since,
                      int64_t n_axes)
{
    const struct ir_attr *a = ir_attr_get(n, "noop_with_empty_axes");
    if (!a || x->opset >= since)
        return ST_OK;
    if (a->i != 0 && n_axes == 0)
        return lower_err(x, n, "noop_with_empty_axes=1 without axes (an identity) needs opset %d",
                         since);
    drop_attr(v, "noop_with_empty_axes");
    return ST_OK;
}

/* Split-18's num_outputs: before 18 the output count says it, if the split is even. */
static int lower_num_outputs(struct exporter *x, const struct ir_node *n, struct ex_view *v)
{
    const struct ir_attr *a = ir_attr_get(n, "num_outputs");
    if (n->op != IR_OP_Split || !a || x->opset >= 18)
        return ST_OK;
    const struct ir_tensor *in = &x->g->t[n->in[0]];
    int ax = in->rank > 0 ? ir_norm_axis(ir_attr_int(n, "axis", 0), in->rank) : -1;
    int has_split = (n->n_in > 1 && n->in[1] != IR_NONE) || ir_attr_get(n, "split");
    if (!has_split && ax >= 0 && in->dims[ax] >= 0 && in->dims[ax] % (int64_t)n->n_out != 0)
        return lower_err(x, n, "an uneven split into %u parts needs opset 18", n->n_out);
    drop_attr(v, "num_outputs");
    return ST_OK;
}

/* Softmax family before 13 flattens to 2-D at `axis`: the same as 13's
 * meaning only when axis is the last dim. Crossing 13 writes it explicitly. */
static int lower_softmax(struct exporter *x, const struct ir_node *n, struct ex_view *v)
{
    if (n->op != IR_OP_Softmax && n->op != IR_OP_LogSoftmax && n->op != IR_OP_Hardmax)
        return ST_OK;
    int old_src = n->opset < 13, old_dst = x->opset < 13;
    if (old_src == old_dst)
        return ST_OK;
    int rank = x->g->t[n->in[0]].rank;
    int64_t axis = ir_attr_int(n, "axis", old_src ? 1 : -1);
    if (rank < 0)
        return lower_err(x, n, "its meaning changed at opset 13 and agrees across only when "
                         "axis is the last dim, but the input's rank is not known (infer "
                         "shapes first)");
    if (rank == 0 || ir_norm_axis(axis, rank) != rank - 1)
        return lower_err(x, n, "its meaning changed at opset 13 and agrees across only when "
                         "axis is the last dim (axis %lld, rank %d)", (long long)axis, rank);
    drop_attr(v, "axis");
    add_attr(v, "axis", IR_ATTR_INT)->i = rank - 1;
    return ST_OK;
}

int ex_lower_node(struct exporter *x, const struct ir_node *n, struct ex_view *v)
{
    memset(v, 0, sizeof *v);
    v->n_in = n->n_in;
    v->in = ir_arena_alloc(x->arena, ((size_t)n->n_in + 1) * sizeof *v->in);
    memcpy(v->in, n->in, (size_t)n->n_in * sizeof *v->in);
    int since = 0, st = ST_OK;
    int64_t n_axes = 0;
    for (size_t i = 0; i < sizeof rules / sizeof *rules && !st; i++) {
        const struct lower_rule *r = &rules[i];
        if (r->op != n->op)
            continue;
        if (r->slot == 1)
            since = r->since;
        if (r->slot >= v->n_in || v->in[r->slot] == IR_NONE)
            continue;
        st = x->opset < r->since ? apply_rule(x, n, r, v, &n_axes) : check_scalar_type(x, n, r, v);
    }
    while (v->n_in && v->in[v->n_in - 1] == IR_NONE)
        v->n_in--;
    if (!st && since && (ir_ops[n->op].flags & IR_OPF_REDUCE))
        st = lower_noop(x, n, v, since, n_axes);
    if (!st)
        st = lower_num_outputs(x, n, v);
    if (!st)
        st = lower_softmax(x, n, v);
    return st;
}
