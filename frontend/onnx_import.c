/* onnx_import.c — ModelProto → IR graph.
 * Order: opsets, initializers, graph inputs, node outputs (so nodes may appear
 * in any order; the verifier orders them and rejects cycles), node inputs and
 * attributes, graph outputs. Each failure names the file and the node/tensor. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

#define MIN_OPSET 1
#define MAX_OPSET 22

struct importer {
    struct ir_graph *g;
    const char *file; /* for messages */
    const char *dir;  /* external data root, or NULL */
    struct diag *d;
};

static int set_opset(struct importer *im, const Onnx__ModelProto *m)
{
    int found = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *dom = o->domain ? o->domain : "";
        if (strcmp(dom, "") != 0 && strcmp(dom, "ai.onnx") != 0)
            continue; /* other domains matter only if a node uses them (rejected there) */
        if (!o->has_version || o->version < MIN_OPSET || o->version > MAX_OPSET)
            return diag_set(im->d, ST_ERR_UNSUPPORTED,
                            "%s: default-domain opset %lld is not supported (pdc handles %d..%d)",
                            im->file, (long long)o->version, MIN_OPSET, MAX_OPSET);
        im->g->opset = (int)o->version;
        found = 1;
    }
    if (!found) {
        const char *other = m->n_opset_import && m->opset_import[0]->domain
                                ? m->opset_import[0]->domain : "";
        if (*other) /* e.g. only ai.onnx.preview.training: ops pdc does not have */
            return diag_set(im->d, ST_ERR_UNSUPPORTED,
                            "%s: model imports only domain '%s' (and no default ONNX opset); "
                            "pdc supports the default domain", im->file, other);
        return diag_set(im->d, ST_ERR_INVALID, "%s: model imports no default-domain opset",
                        im->file);
    }
    return ST_OK;
}

static int add_initializer(struct importer *im, Onnx__TensorProto *tp)
{
    struct ir_graph *g = im->g;
    const char *name = tp->name ? tp->name : "";
    if (!*name)
        return diag_set(im->d, ST_ERR_INVALID, "%s: an initializer has no name", im->file);
    char what[512];
    snprintf(what, sizeof what, "%s: initializer '%s'", im->file, name);
    uint32_t t = ir_tensor_new(g, name);
    if (t == IR_NONE)
        return diag_set(im->d, ST_ERR_INVALID, "%s is defined twice", what);
    struct onnx_data od;
    int st = onnx_tensor_decode(tp, im->dir, what, &od, im->d);
    if (st)
        return st;
    ir_graph_adopt(g, od.base, od.mapped ? od.len : od.nbytes, od.mapped);
    struct ir_tensor *x = &g->t[t];
    x->dtype = od.dtype;
    x->rank = od.rank;
    for (int i = 0; i < od.rank; i++)
        x->dims[i] = od.dims[i];
    x->data = od.data;
    x->nbytes = od.nbytes;
    x->flags |= IR_T_INIT | (ir_dtype_is_float(od.dtype) ? IR_T_PARAM : 0);
    return ST_OK;
}

/* Type and shape of a graph input/output from its ValueInfoProto. */
static int read_value_info(struct importer *im, const Onnx__ValueInfoProto *vi, uint32_t t,
                           const char *role)
{
    struct ir_tensor *x = &im->g->t[t];
    const Onnx__TypeProto *tp = vi->type;
    if (!tp)
        return ST_OK; /* outputs may omit their type; inference supplies it */
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return diag_set(im->d, ST_ERR_UNSUPPORTED,
                        "%s: %s '%s' is not a tensor (sequences, maps, optionals and sparse "
                        "tensors are not supported)", im->file, role, x->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != 0) {
        if (!ir_dtype_valid(tt->elem_type))
            return diag_set(im->d, ST_ERR_UNSUPPORTED, "%s: %s '%s' has unsupported element type %d",
                            im->file, role, x->name, tt->elem_type);
        x->dtype = (enum ir_dtype)tt->elem_type;
    }
    if (!tt->shape)
        return ST_OK;
    if (tt->shape->n_dim > IR_MAX_RANK)
        return diag_set(im->d, ST_ERR_UNSUPPORTED, "%s: %s '%s' has rank %zu (max %d)", im->file,
                        role, x->name, tt->shape->n_dim, IR_MAX_RANK);
    x->rank = (int)tt->shape->n_dim;
    int64_t numel = 1;
    for (size_t k = 0; k < tt->shape->n_dim; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[k];
        x->dims[k] = -1;
        x->sym[k] = -1;
        if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            int64_t v = dm->dim_value;
            if (v < 0 || v > IR_MAX_ELEMS || (v && numel > IR_MAX_ELEMS / v))
                return diag_set(im->d, ST_ERR_INVALID,
                                "%s: %s '%s' dim %zu = %lld is implausible (limit 2^34 elements)",
                                im->file, role, x->name, k, (long long)v);
            numel *= v;
            x->dims[k] = v;
        } else if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   dm->dim_param && *dm->dim_param) {
            x->sym[k] = ir_sym_intern(im->g, dm->dim_param);
        }
    }
    return ST_OK;
}

static int add_inputs(struct importer *im, const Onnx__GraphProto *gp)
{
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const char *name = vi->name ? vi->name : "";
        if (!*name)
            return diag_set(im->d, ST_ERR_INVALID, "%s: graph input %zu has no name", im->file, i);
        if (ir_tensor_find(im->g, name) != IR_NONE)
            continue; /* ir_version < 4 lists initializers as inputs too: keep the constant */
        uint32_t t = ir_tensor_new(im->g, name);
        int st = read_value_info(im, vi, t, "graph input");
        if (st)
            return st;
        if (im->g->t[t].dtype == IR_DT_UNDEF)
            return diag_set(im->d, ST_ERR_INVALID, "%s: graph input '%s' has no element type",
                            im->file, name);
        ir_graph_add_input(im->g, t);
    }
    return ST_OK;
}

static int attr_tensor(struct importer *im, const char *node, const char *attr,
                       Onnx__TensorProto *tp, uint32_t *id)
{
    char stem[512], what[768];
    snprintf(stem, sizeof stem, "%s.%s", node, attr);
    snprintf(what, sizeof what, "%s: node '%s' attribute '%s'", im->file, node, attr);
    struct onnx_data od;
    int st = onnx_tensor_decode(tp, im->dir, what, &od, im->d);
    if (st)
        return st;
    ir_graph_adopt(im->g, od.base, od.mapped ? od.len : od.nbytes, od.mapped);
    uint32_t t = ir_tensor_new_unique(im->g, stem);
    struct ir_tensor *x = &im->g->t[t];
    x->dtype = od.dtype;
    x->rank = od.rank;
    for (int i = 0; i < od.rank; i++)
        x->dims[i] = od.dims[i];
    x->data = od.data;
    x->nbytes = od.nbytes;
    x->flags |= IR_T_CONST;
    *id = t;
    return ST_OK;
}

static int convert_attr(struct importer *im, const char *node, Onnx__AttributeProto *ap,
                        struct ir_attr *a)
{
    struct ir_arena *ar = im->g->arena;
    a->name = ir_arena_strdup(ar, ap->name ? ap->name : "");
    if (!ap->has_type)
        return diag_set(im->d, ST_ERR_INVALID, "%s: node '%s' attribute '%s' has no type",
                        im->file, node, a->name);
    if (ap->ref_attr_name && *ap->ref_attr_name)
        return diag_set(im->d, ST_ERR_UNSUPPORTED,
                        "%s: node '%s' attribute '%s' refers to a function attribute", im->file,
                        node, a->name);
    a->type = (enum ir_attr_type)ap->type;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: a->f = ap->f; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: a->i = ap->i; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->s = ir_arena_strndup(ar, (const char *)ap->s.data, ap->s.len);
        a->s_len = ap->s.len;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->n = (int64_t)ap->n_floats;
        a->floats = ir_arena_alloc(ar, (ap->n_floats + 1) * sizeof *a->floats);
        for (size_t i = 0; i < ap->n_floats; i++)
            a->floats[i] = ap->floats[i];
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->n = (int64_t)ap->n_ints;
        a->ints = ir_arena_alloc(ar, (ap->n_ints + 1) * sizeof *a->ints);
        if (ap->n_ints) /* an empty list comes with a NULL pointer */
            memcpy(a->ints, ap->ints, ap->n_ints * sizeof *a->ints);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        a->n = (int64_t)ap->n_strings;
        a->strs = ir_arena_alloc(ar, (ap->n_strings + 1) * sizeof *a->strs);
        for (size_t i = 0; i < ap->n_strings; i++)
            a->strs[i] = ir_arena_strndup(ar, (const char *)ap->strings[i].data, ap->strings[i].len);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
        if (!ap->t)
            return diag_set(im->d, ST_ERR_INVALID, "%s: node '%s' attribute '%s' has no tensor",
                            im->file, node, a->name);
        a->n = 1;
        a->tensors = ir_arena_alloc(ar, sizeof *a->tensors);
        return attr_tensor(im, node, a->name, ap->t, &a->tensors[0]);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
        a->n = (int64_t)ap->n_tensors;
        a->tensors = ir_arena_alloc(ar, (ap->n_tensors + 1) * sizeof *a->tensors);
        for (size_t i = 0; i < ap->n_tensors; i++) {
            int st = attr_tensor(im, node, a->name, ap->tensors[i], &a->tensors[i]);
            if (st)
                return st;
        }
        break;
    /* kinds no supported op reads: keep kind and count (see ir.h) */
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: a->n = ap->g != NULL; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: a->n = (int64_t)ap->n_graphs; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: a->n = ap->sparse_tensor != NULL; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS: a->n = (int64_t)ap->n_sparse_tensors; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: a->n = ap->tp != NULL; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS: a->n = (int64_t)ap->n_type_protos; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED:
    default:
        return diag_set(im->d, ST_ERR_INVALID, "%s: node '%s' attribute '%s' has unknown type %d",
                        im->file, node, a->name, (int)ap->type);
    }
    return ST_OK;
}

/* A Constant node becomes a constant tensor named by its output. */
static int import_constant(struct importer *im, Onnx__NodeProto *np, const char *nname)
{
    if (np->n_output != 1 || np->n_attribute != 1)
        return diag_set(im->d, ST_ERR_INVALID,
                        "%s: node '%s' (Constant) needs one output and one value attribute",
                        im->file, nname);
    const char *oname = np->output[0];
    struct ir_attr a;
    memset(&a, 0, sizeof a);
    int st = convert_attr(im, nname, np->attribute[0], &a);
    if (st)
        return st;
    uint32_t t = ir_tensor_new(im->g, oname);
    if (t == IR_NONE)
        return diag_set(im->d, ST_ERR_INVALID, "%s: node '%s' (Constant): tensor '%s' is defined twice",
                        im->file, nname, oname);
    if (strcmp(a.name, "value") == 0 && a.type == IR_ATTR_TENSOR) {
        const struct ir_tensor *src = &im->g->t[a.tensors[0]];
        return ir_tensor_set_const(im->g, t, src->dtype, src->rank, src->dims, src->data);
    }
    int64_t one = 1;
    if (strcmp(a.name, "value_float") == 0 && a.type == IR_ATTR_FLOAT) {
        float f = (float)a.f;
        return ir_tensor_set_const(im->g, t, IR_F32, 0, &one, &f);
    }
    if (strcmp(a.name, "value_int") == 0 && a.type == IR_ATTR_INT)
        return ir_tensor_set_const(im->g, t, IR_I64, 0, &one, &a.i);
    if (strcmp(a.name, "value_ints") == 0 && a.type == IR_ATTR_INTS)
        return ir_tensor_set_const(im->g, t, IR_I64, 1, &a.n, a.ints);
    if (strcmp(a.name, "value_floats") == 0 && a.type == IR_ATTR_FLOATS) {
        int64_t n = a.n;
        if ((st = ir_tensor_set_const(im->g, t, IR_F32, 1, &n, NULL)) != ST_OK)
            return st;
        for (int64_t i = 0; i < n; i++)
            ((float *)im->g->t[t].data)[i] = (float)a.floats[i];
        return ST_OK;
    }
    return diag_set(im->d, ST_ERR_UNSUPPORTED, "%s: node '%s' (Constant): attribute '%s' is not supported",
                    im->file, nname, a.name);
}

static int check_op(struct importer *im, const Onnx__NodeProto *np, const char *nname,
                    enum ir_op *op)
{
    const char *dom = np->domain ? np->domain : "";
    const char *type = np->op_type ? np->op_type : "";
    if (strcmp(dom, "") != 0 && strcmp(dom, "ai.onnx") != 0)
        return diag_set(im->d, ST_ERR_UNSUPPORTED,
                        "%s: node '%s': op '%s' from domain '%s' is not supported", im->file, nname,
                        type, dom);
    *op = ir_op_lookup(type);
    if (*op == IR_OP_COUNT)
        return diag_set(im->d, ST_ERR_UNSUPPORTED,
                        "%s: node '%s': op '%s' (opset %d) is not supported", im->file, nname,
                        type, im->g->opset);
    const struct ir_op_info *oi = &ir_ops[*op];
    /* trailing empty names are omitted optionals: count what is really there */
    size_t nin = np->n_input, nout = np->n_output;
    while (nin && (!np->input[nin - 1] || !*np->input[nin - 1]))
        nin--;
    while (nout && (!np->output[nout - 1] || !*np->output[nout - 1]))
        nout--;
    if ((int)nin < oi->min_in || (oi->max_in >= 0 && (int)nin > oi->max_in))
        return diag_set(im->d, oi->max_in >= 0 && (int)nin > oi->max_in ? ST_ERR_UNSUPPORTED
                                                                         : ST_ERR_INVALID,
                        "%s: node '%s' (%s, opset %d): %zu inputs, pdc supports %d..%d", im->file,
                        nname, type, im->g->opset, nin, oi->min_in, oi->max_in);
    if ((int)nout < oi->min_out || (oi->max_out >= 0 && (int)nout > oi->max_out))
        return diag_set(im->d, ST_ERR_UNSUPPORTED,
                        "%s: node '%s' (%s, opset %d): %zu outputs, pdc supports %d..%d", im->file,
                        nname, type, im->g->opset, nout, oi->min_out, oi->max_out);
    return ST_OK;
}

/* Pass 1 for one node: its outputs become tensors produced by a new node. */
static int declare_node(struct importer *im, Onnx__NodeProto *np, size_t idx, uint32_t *nid)
{
    char gen[64];
    snprintf(gen, sizeof gen, "%s_%zu", np->op_type ? np->op_type : "node", idx);
    const char *nname = np->name && *np->name ? np->name : gen;
    *nid = IR_NONE;
    if (np->op_type && strcmp(np->op_type, "Constant") == 0 &&
        (!np->domain || !*np->domain || strcmp(np->domain, "ai.onnx") == 0))
        return import_constant(im, np, nname);
    enum ir_op op = IR_OP_COUNT;
    int st = check_op(im, np, nname, &op);
    if (st)
        return st;
    size_t nout = np->n_output;
    while (nout && (!np->output[nout - 1] || !*np->output[nout - 1]))
        nout--;
    uint32_t outs[64];
    if (nout > 64)
        return diag_set(im->d, ST_ERR_UNSUPPORTED, "%s: node '%s' has %zu outputs", im->file, nname, nout);
    for (size_t k = 0; k < nout; k++) {
        const char *o = np->output[k];
        if (!o || !*o) {
            outs[k] = IR_NONE;
            continue;
        }
        outs[k] = ir_tensor_new(im->g, o);
        if (outs[k] == IR_NONE)
            return diag_set(im->d, ST_ERR_INVALID,
                            "%s: node '%s' (%s): output '%s' is already defined elsewhere",
                            im->file, nname, np->op_type, o);
    }
    *nid = ir_node_new(im->g, op, nname, 0, NULL, (uint32_t)nout, outs);
    return ST_OK;
}

/* what the ONNX schemas (every opset) say each op's attributes are */
static const struct {
    enum ir_op op;
    const char *name;
    enum ir_attr_type type;
} attr_types[] = {
#define ATTR(o, n, t) {IR_OP_##o, n, t},
#include "onnx_attr_types.def"
#undef ATTR
};

static const char *attr_type_name(enum ir_attr_type t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR",
                                        "GRAPH", "FLOATS", "INTS", "STRINGS", "TENSORS",
                                        "GRAPHS", "SPARSE_TENSOR", "SPARSE_TENSORS"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "unknown";
}

/* An attribute the op's schema does not define, or of another type, is an error (as in
 * onnxruntime): read as absent, a misspelt `transB` or an INTS `axis` would silently
 * compute something else. */
static int check_attr(const struct importer *im, const struct ir_node *n, const struct ir_attr *a)
{
    int known = 0;
    const char *want = NULL;
    for (size_t k = 0; k < sizeof attr_types / sizeof *attr_types; k++) {
        if (attr_types[k].op != n->op || strcmp(attr_types[k].name, a->name) != 0)
            continue;
        known = 1;
        if (attr_types[k].type == a->type)
            return ST_OK;
        want = attr_type_name(attr_types[k].type);
    }
    if (!known)
        return diag_set(im->d, ST_ERR_INVALID, "%s: node '%s' (%s) has attribute '%s', which "
                        "the ONNX %s operator does not define", im->file, n->name,
                        ir_ops[n->op].name, a->name, ir_ops[n->op].name);
    return diag_set(im->d, ST_ERR_INVALID, "%s: node '%s' (%s): attribute '%s' is %s; the ONNX "
                    "schema says %s", im->file, n->name, ir_ops[n->op].name, a->name,
                    attr_type_name(a->type), want);
}

/* Pass 2 for one node: resolve input names, convert attributes, canonicalise. */
static int connect_node(struct importer *im, Onnx__NodeProto *np, uint32_t nid)
{
    struct ir_graph *g = im->g;
    struct ir_node *n = &g->n[nid];
    size_t nin = np->n_input;
    while (nin && (!np->input[nin - 1] || !*np->input[nin - 1]))
        nin--;
    n->n_in = (uint32_t)nin;
    n->in = ir_arena_alloc(g->arena, (nin + 1) * sizeof *n->in);
    for (size_t i = 0; i < nin; i++) {
        const char *s = np->input[i];
        if (!s || !*s) {
            n->in[i] = IR_NONE;
            continue;
        }
        uint32_t t = ir_tensor_find(g, s);
        if (t == IR_NONE)
            return diag_set(im->d, ST_ERR_INVALID,
                            "%s: node '%s' (%s) reads tensor '%s', which is not defined (not an "
                            "input, initializer or node output)", im->file, n->name,
                            ir_ops[n->op].name, s);
        n->in[i] = t;
    }
    if (np->n_attribute > ONNX_MAX_ATTR_LIST)
        return diag_set(im->d, ST_ERR_INVALID, "%s: node '%s' has too many attributes", im->file, n->name);
    n->n_attr = (uint32_t)np->n_attribute;
    n->attr = ir_arena_alloc(g->arena, (np->n_attribute + 1) * sizeof *n->attr);
    for (size_t a = 0; a < np->n_attribute; a++) {
        int st = convert_attr(im, n->name, np->attribute[a], &g->n[nid].attr[a]);
        if (!st)
            st = check_attr(im, n, &g->n[nid].attr[a]);
        if (st)
            return st;
    }
    return onnx_canonicalize_node(g, nid, im->d);
}

static int add_nodes(struct importer *im, Onnx__GraphProto *gp)
{
    if (gp->n_node > ONNX_MAX_NODES)
        return diag_set(im->d, ST_ERR_UNSUPPORTED, "%s: %zu nodes (limit %d)", im->file, gp->n_node,
                        ONNX_MAX_NODES);
    uint32_t *ids = malloc((gp->n_node + 1) * sizeof *ids);
    if (!ids)
        return diag_set(im->d, ST_ERR_NOMEM, "out of memory");
    int st = ST_OK;
    for (size_t i = 0; i < gp->n_node && !st; i++)
        st = declare_node(im, gp->node[i], i, &ids[i]);
    for (size_t i = 0; i < gp->n_node && !st; i++)
        if (ids[i] != IR_NONE)
            st = connect_node(im, gp->node[i], ids[i]);
    free(ids);
    return st;
}

static int add_outputs(struct importer *im, const Onnx__GraphProto *gp)
{
    if (gp->n_output == 0)
        return diag_set(im->d, ST_ERR_INVALID, "%s: graph has no outputs", im->file);
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name ? gp->output[i]->name : "";
        uint32_t t = ir_tensor_find(im->g, name);
        if (t == IR_NONE)
            return diag_set(im->d, ST_ERR_INVALID,
                            "%s: graph output '%s' is not produced by any node", im->file, name);
        /* the declared type is informative (inspect shows it); inference replaces it */
        if (!im->g->t[t].data && !(im->g->t[t].flags & IR_T_INPUT)) {
            int st = read_value_info(im, gp->output[i], t, "graph output");
            if (st)
                return st;
        }
        ir_graph_add_output(im->g, t);
    }
    return ST_OK;
}

static int import_model(struct importer *im, Onnx__ModelProto *m)
{
    int st = set_opset(im, m);
    if (st)
        return st;
    im->g->ir_version = m->has_ir_version ? m->ir_version : 0;
    im->g->producer = ir_arena_strdup(im->g->arena, m->producer_name ? m->producer_name : "");
    if (!m->graph)
        return diag_set(im->d, ST_ERR_INVALID, "%s: model has no graph", im->file);
    Onnx__GraphProto *gp = m->graph;
    if (gp->n_sparse_initializer)
        return diag_set(im->d, ST_ERR_UNSUPPORTED, "%s: sparse initializers are not supported",
                        im->file);
    for (size_t i = 0; i < gp->n_initializer; i++)
        if ((st = add_initializer(im, gp->initializer[i])) != ST_OK)
            return st;
    if ((st = add_inputs(im, gp)) != ST_OK)
        return st;
    if ((st = add_nodes(im, gp)) != ST_OK)
        return st;
    if ((st = add_outputs(im, gp)) != ST_OK)
        return st;
    return ir_fill_topo(im->g, im->d); /* rejects cycles, naming a node on one */
}

int onnx_load_mem(const void *buf, size_t len, const char *dir, const char *name,
                  struct ir_graph **out, struct diag *d)
{
    *out = NULL;
    const char *file = name ? name : "<memory>";
    if (len == 0)
        return diag_set(d, ST_ERR_PARSE, "%s: empty file, not an ONNX model", file);
    if (onnx_check_depth(buf, len, &onnx__model_proto__descriptor))
        return diag_set(d, ST_ERR_UNSUPPORTED,
                        "%s: messages nested more than %d deep (a graph or type inside a graph or "
                        "type ...); refused", file, ONNX_MAX_DEPTH);
    struct onnx_pb_budget budget = {ONNX_PB_BUDGET(len), 0};
    ProtobufCAllocator alloc = onnx_pb_budgeted(&budget);
    Onnx__ModelProto *m = onnx__model_proto__unpack(&alloc, len, buf);
    if (!m && budget.over)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: unpacking its %zu bytes would take more than "
                        "%zu MiB (a flood of tiny messages?); refused", file, len,
                        ONNX_PB_BUDGET(len) >> 20);
    if (!m)
        return diag_set(d, ST_ERR_PARSE,
                        "%s: not a valid ONNX model (protobuf parse failed: truncated or not a "
                        "ModelProto)", file);
    struct ir_graph *g = ir_graph_new();
    if (!g) {
        onnx__model_proto__free_unpacked(m, &onnx_pb_alloc);
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    g->path = ir_arena_strdup(g->arena, file);
    struct importer im = {g, g->path, dir, d};
    int st = import_model(&im, m);
    /* weights were stolen or mapped: the message is small now, drop it at once */
    onnx__model_proto__free_unpacked(m, &onnx_pb_alloc);
    if (st) {
        ir_graph_free(g);
        return st;
    }
    *out = g;
    return ST_OK;
}

int onnx_load_file(const char *path, struct ir_graph **out, struct diag *d)
{
    void *buf;
    size_t len;
    *out = NULL;
    int st = onnx_read_file(path, ONNX_MAX_FILE_BYTES, &buf, &len, d);
    if (st)
        return st;
    char *tmp = strdup(path);
    if (!tmp) {
        free(buf);
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    st = onnx_load_mem(buf, len, dirname(tmp), path, out, d);
    free(tmp);
    free(buf);
    return st;
}
