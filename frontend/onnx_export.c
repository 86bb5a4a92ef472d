/* onnx_export.c — IR graph → ModelProto.
 * Order: opset and target checks, then the graph: nodes in topological order
 * (lowered to the target opset's forms, onnx_export_lower.c), graph inputs and
 * outputs as ValueInfos, and initializers for exactly the constants the written
 * nodes read (or that are graph outputs). Message structs live in one arena
 * that dies after writing; tensor bytes are borrowed from the graph, never
 * copied (onnx_export_io.c streams them out). Errors name the file and the
 * node/tensor/attribute at fault. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_export_impl.h"

#define EXPORT_MIN_OPSET 1
#define EXPORT_MAX_OPSET 22 /* what the importer reads back */

/* The lowest IR version that allows the opset, and never below 8. */
static int64_t ir_version_for(int opset)
{
    return opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
}

/* ---- graph inputs and outputs ------------------------------------------------ */

static Onnx__TensorShapeProto *shape_proto(struct exporter *x, const struct ir_tensor *t)
{
    Onnx__TensorShapeProto *sp = ir_arena_alloc(x->arena, sizeof *sp);
    Onnx__TensorShapeProto init = ONNX__TENSOR_SHAPE_PROTO__INIT;
    *sp = init;
    sp->n_dim = (size_t)t->rank;
    sp->dim = ir_arena_alloc(x->arena, ((size_t)t->rank + 1) * sizeof *sp->dim);
    for (int k = 0; k < t->rank; k++) {
        Onnx__TensorShapeProto__Dimension *dm = ir_arena_alloc(x->arena, sizeof *dm);
        Onnx__TensorShapeProto__Dimension dinit = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        *dm = dinit;
        if (t->sym[k] >= 0 && t->sym[k] < x->g->nsyms) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = (char *)x->g->syms[t->sym[k]];
        } else if (t->dims[k] >= 0) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = t->dims[k];
        } /* else: an unknown dim, neither value nor name */
        sp->dim[k] = dm;
    }
    return sp;
}

static int value_info(struct exporter *x, uint32_t tid, const char *role,
                      Onnx__ValueInfoProto **out)
{
    const struct ir_tensor *t = &x->g->t[tid];
    if (!ir_dtype_size(t->dtype))
        return diag_set(x->d, ST_ERR_INVALID,
                        "%s: graph %s '%s' has no known element type (%s); run shape inference "
                        "before exporting", x->file, role, t->name, ir_dtype_name(t->dtype));
    Onnx__TypeProto__Tensor *tt = ir_arena_alloc(x->arena, sizeof *tt);
    Onnx__TypeProto__Tensor tinit = ONNX__TYPE_PROTO__TENSOR__INIT;
    *tt = tinit;
    tt->has_elem_type = 1;
    tt->elem_type = (int32_t)t->dtype;
    if (t->rank >= 0)
        tt->shape = shape_proto(x, t);
    Onnx__TypeProto *tp = ir_arena_alloc(x->arena, sizeof *tp);
    Onnx__TypeProto pinit = ONNX__TYPE_PROTO__INIT;
    *tp = pinit;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    Onnx__ValueInfoProto *vi = ir_arena_alloc(x->arena, sizeof *vi);
    Onnx__ValueInfoProto vinit = ONNX__VALUE_INFO_PROTO__INIT;
    *vi = vinit;
    vi->name = (char *)t->name;
    vi->type = tp;
    *out = vi;
    return ST_OK;
}

static int build_io(struct exporter *x, Onnx__GraphProto *gp)
{
    const struct ir_graph *g = x->g;
    gp->n_input = g->n_inputs;
    gp->input = ir_arena_alloc(x->arena, ((size_t)g->n_inputs + 1) * sizeof *gp->input);
    for (uint32_t i = 0; i < g->n_inputs; i++) {
        int st = value_info(x, g->inputs[i], "input", &gp->input[i]);
        if (st)
            return st;
    }
    if (!g->n_outputs)
        return diag_set(x->d, ST_ERR_INVALID, "%s: the graph has no outputs", x->file);
    gp->n_output = g->n_outputs;
    gp->output = ir_arena_alloc(x->arena, ((size_t)g->n_outputs + 1) * sizeof *gp->output);
    for (uint32_t i = 0; i < g->n_outputs; i++) {
        int st = value_info(x, g->outputs[i], "output", &gp->output[i]);
        if (st)
            return st;
    }
    return ST_OK;
}

/* ---- attributes -------------------------------------------------------------- */

static const char *attr_kind_name(enum ir_attr_type t)
{
    switch (t) {
    case IR_ATTR_GRAPH: return "GRAPH";
    case IR_ATTR_GRAPHS: return "GRAPHS";
    case IR_ATTR_SPARSE_TENSOR: return "SPARSE_TENSOR";
    case IR_ATTR_SPARSE_TENSORS: return "SPARSE_TENSORS";
    case IR_ATTR_TYPE_PROTO: return "TYPE_PROTO";
    case IR_ATTR_TYPE_PROTOS: return "TYPE_PROTOS";
    default: return "unknown kind";
    }
}

static int attr_tensors(struct exporter *x, const struct ir_node *n, const struct ir_attr *a,
                        Onnx__AttributeProto *ap)
{
    if (!a->tensors || a->n < 1 || (a->type == IR_ATTR_TENSOR && a->n != 1))
        return diag_set(x->d, ST_ERR_INVALID, "%s: node '%s' attribute '%s' has %lld tensors",
                        x->file, n->name, a->name, (long long)a->n);
    for (int64_t i = 0; i < a->n; i++)
        if (a->tensors[i] >= x->g->nt)
            return diag_set(x->d, ST_ERR_INVALID, "%s: node '%s' attribute '%s': dangling tensor",
                            x->file, n->name, a->name);
    if (a->type == IR_ATTR_TENSOR)
        return ex_tensor_proto(x, a->tensors[0], 0, &ap->t);
    ap->n_tensors = (size_t)a->n;
    ap->tensors = ir_arena_alloc(x->arena, (size_t)a->n * sizeof *ap->tensors);
    for (int64_t i = 0; i < a->n; i++) {
        int st = ex_tensor_proto(x, a->tensors[i], 0, &ap->tensors[i]);
        if (st)
            return st;
    }
    return ST_OK;
}

static void attr_lists(struct exporter *x, const struct ir_attr *a, Onnx__AttributeProto *ap)
{
    size_t cnt = a->n > 0 ? (size_t)a->n : 0;
    if (a->type == IR_ATTR_INTS) {
        ap->n_ints = cnt;
        ap->ints = a->ints;
    } else if (a->type == IR_ATTR_FLOATS) {
        ap->n_floats = cnt;
        ap->floats = ir_arena_alloc(x->arena, (cnt + 1) * sizeof *ap->floats);
        for (size_t i = 0; i < cnt; i++)
            ap->floats[i] = (float)a->floats[i];
    } else { /* STRINGS */
        ap->n_strings = cnt;
        ap->strings = ir_arena_alloc(x->arena, (cnt + 1) * sizeof *ap->strings);
        for (size_t i = 0; i < cnt; i++) {
            const char *s = a->strs[i] ? a->strs[i] : "";
            ap->strings[i].data = (uint8_t *)s;
            ap->strings[i].len = strlen(s);
        }
    }
}

static int attr_proto(struct exporter *x, const struct ir_node *n, const struct ir_attr *a,
                      Onnx__AttributeProto **out)
{
    Onnx__AttributeProto *ap = ir_arena_alloc(x->arena, sizeof *ap);
    Onnx__AttributeProto init = ONNX__ATTRIBUTE_PROTO__INIT;
    *ap = init;
    ap->name = (char *)a->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    *out = ap;
    switch (a->type) {
    case IR_ATTR_FLOAT: ap->has_f = 1; ap->f = (float)a->f; return ST_OK;
    case IR_ATTR_INT: ap->has_i = 1; ap->i = a->i; return ST_OK;
    case IR_ATTR_STRING:
        ap->has_s = 1;
        ap->s.data = (uint8_t *)(a->s ? a->s : "");
        ap->s.len = !a->s ? 0 : a->s_len ? a->s_len : strlen(a->s); /* s_len unset: C string */
        return ST_OK;
    case IR_ATTR_INTS: case IR_ATTR_FLOATS: case IR_ATTR_STRINGS:
        attr_lists(x, a, ap);
        return ST_OK;
    case IR_ATTR_TENSOR: case IR_ATTR_TENSORS:
        return attr_tensors(x, n, a, ap);
    case IR_ATTR_GRAPH: case IR_ATTR_GRAPHS: case IR_ATTR_SPARSE_TENSOR:
    case IR_ATTR_SPARSE_TENSORS: case IR_ATTR_TYPE_PROTO: case IR_ATTR_TYPE_PROTOS:
    default:
        return diag_set(x->d, ST_ERR_UNSUPPORTED,
                        "%s: node '%s' (%s): attribute '%s' is a %s, which pdc keeps only as a "
                        "count and cannot write", x->file, n->name, ir_ops[n->op].name, a->name,
                        attr_kind_name(a->type));
    }
}

static int dropped(const struct ex_view *v, const char *name)
{
    for (uint32_t i = 0; i < v->n_drop; i++)
        if (strcmp(v->drop[i], name) == 0)
            return 1;
    return 0;
}

static int node_attrs(struct exporter *x, const struct ir_node *n, const struct ex_view *v,
                      Onnx__NodeProto *np)
{
    np->attribute = ir_arena_alloc(x->arena,
                                   ((size_t)n->n_attr + v->n_add + 1) * sizeof *np->attribute);
    for (uint32_t i = 0; i < n->n_attr; i++) {
        if (dropped(v, n->attr[i].name))
            continue;
        int st = attr_proto(x, n, &n->attr[i], &np->attribute[np->n_attribute]);
        if (st)
            return st;
        np->n_attribute++;
    }
    for (uint32_t i = 0; i < v->n_add; i++) {
        int st = attr_proto(x, n, &v->add[i], &np->attribute[np->n_attribute]);
        if (st)
            return st;
        np->n_attribute++;
    }
    return ST_OK;
}

/* ---- nodes --------------------------------------------------------------------- */

/* Tensor names for a node's inputs, marking what it reads. */
static int node_inputs(struct exporter *x, const struct ir_node *n, const struct ex_view *v,
                       uint8_t *read, Onnx__NodeProto *np)
{
    const struct ir_graph *g = x->g;
    np->n_input = v->n_in;
    np->input = ir_arena_alloc(x->arena, ((size_t)v->n_in + 1) * sizeof *np->input);
    for (uint32_t i = 0; i < v->n_in; i++) {
        uint32_t t = v->in[i];
        if (t == IR_NONE) {
            np->input[i] = (char *)"";
            continue;
        }
        const struct ir_tensor *ti = &g->t[t];
        int live = ti->producer != IR_NONE && !(g->n[ti->producer].flags & IR_N_DEAD);
        if (!live && !ti->data && !(ti->flags & IR_T_INPUT))
            return diag_set(x->d, ST_ERR_INVALID,
                            "%s: node '%s' (%s) reads '%s', which nothing defines (no live "
                            "producer, constant data or graph input)", x->file, n->name,
                            ir_ops[n->op].name, ti->name);
        read[t] = 1;
        np->input[i] = (char *)ti->name;
    }
    return ST_OK;
}

static int node_proto(struct exporter *x, uint32_t nid, uint8_t *read, Onnx__NodeProto **out)
{
    const struct ir_node *n = &x->g->n[nid];
    if (ir_ops[n->op].flags & IR_OPF_INTERNAL)
        return diag_set(x->d, ST_ERR_UNSUPPORTED,
                        "%s: node '%s' (%s) is a pdc-internal op (made by a pass) and has no "
                        "ONNX form", x->file, n->name, ir_ops[n->op].name);
    struct ex_view v;
    int st = ex_lower_node(x, n, &v);
    if (st)
        return st;
    Onnx__NodeProto *np = ir_arena_alloc(x->arena, sizeof *np);
    Onnx__NodeProto init = ONNX__NODE_PROTO__INIT;
    *np = init;
    np->name = (char *)n->name;
    np->op_type = (char *)ir_ops[n->op].name;
    *out = np;
    if ((st = node_inputs(x, n, &v, read, np)) != ST_OK)
        return st;
    uint32_t nout = n->n_out;
    while (nout && n->out[nout - 1] == IR_NONE)
        nout--;
    np->n_output = nout;
    np->output = ir_arena_alloc(x->arena, ((size_t)nout + 1) * sizeof *np->output);
    for (uint32_t k = 0; k < nout; k++)
        np->output[k] = (char *)(n->out[k] == IR_NONE ? "" : x->g->t[n->out[k]].name);
    return node_attrs(x, n, &v, np);
}

static int build_nodes(struct exporter *x, Onnx__GraphProto *gp, uint8_t *read)
{
    const struct ir_graph *g = x->g;
    gp->node = ir_arena_alloc(x->arena, ((size_t)g->ntopo + 1) * sizeof *gp->node);
    for (uint32_t k = 0; k < g->ntopo; k++) {
        if (g->n[g->topo[k]].flags & IR_N_DEAD)
            continue;
        int st = node_proto(x, g->topo[k], read, &gp->node[gp->n_node]);
        if (st)
            return st;
        gp->n_node++;
    }
    return ST_OK;
}

/* Initializer-backed inputs: the default value of input i is constant
 * input_defaults[i], written under the input's name */
static int build_defaults(struct exporter *x, Onnx__GraphProto *gp)
{
    const struct ir_graph *g = x->g;
    if (!x->defaults)
        return ST_OK;
    Onnx__TensorProto **all = ir_arena_alloc(x->arena, (gp->n_initializer + g->n_inputs + 1) *
                                             sizeof *all);
    memcpy(all, gp->initializer, gp->n_initializer * sizeof *all);
    gp->initializer = all;
    for (uint32_t i = 0; i < g->n_inputs; i++) {
        uint32_t t = x->defaults[i];
        if (t == IR_NONE)
            continue;
        if (t >= g->nt || !g->t[t].data)
            return diag_set(x->d, ST_ERR_INVALID, "%s: input '%s': its default is no constant",
                            x->file, g->t[g->inputs[i]].name);
        int st = ex_tensor_proto(x, t, 1, &all[gp->n_initializer]);
        if (st)
            return st;
        all[gp->n_initializer++]->name = (char *)g->t[g->inputs[i]].name;
    }
    return ST_OK;
}

/* Constants the written nodes read, and constant graph outputs; graph inputs
 * stay inputs even when a pass bound a value to them. */
static int build_inits(struct exporter *x, Onnx__GraphProto *gp, uint8_t *read)
{
    const struct ir_graph *g = x->g;
    for (uint32_t i = 0; i < g->n_outputs; i++)
        read[g->outputs[i]] = 1;
    size_t cnt = 0;
    for (uint32_t t = 0; t < g->nt; t++)
        cnt += read[t] && g->t[t].data && !(g->t[t].flags & IR_T_INPUT);
    gp->initializer = ir_arena_alloc(x->arena, (cnt + 1) * sizeof *gp->initializer);
    for (uint32_t t = 0; t < g->nt; t++) {
        if (!read[t] || !g->t[t].data || (g->t[t].flags & IR_T_INPUT))
            continue;
        int st = ex_tensor_proto(x, t, 1, &gp->initializer[gp->n_initializer]);
        if (st)
            return st;
        gp->n_initializer++;
    }
    return build_defaults(x, gp);
}

static int build_graph(struct exporter *x, Onnx__GraphProto **out)
{
    Onnx__GraphProto *gp = ir_arena_alloc(x->arena, sizeof *gp);
    Onnx__GraphProto init = ONNX__GRAPH_PROTO__INIT;
    *gp = init;
    gp->name = (char *)"pdc";
    *out = gp;
    uint8_t *read = calloc((size_t)x->g->nt + 1, 1);
    if (!read)
        return diag_set(x->d, ST_ERR_NOMEM, "%s: out of memory", x->file);
    int st = build_nodes(x, gp, read);
    if (!st)
        st = build_io(x, gp);
    if (!st)
        st = build_inits(x, gp, read);
    free(read);
    return st;
}

static int build_model(struct exporter *x, const char *producer, Onnx__ModelProto **out)
{
    Onnx__ModelProto *m = ir_arena_alloc(x->arena, sizeof *m);
    Onnx__ModelProto init = ONNX__MODEL_PROTO__INIT;
    *m = init;
    m->has_ir_version = 1;
    m->ir_version = ir_version_for(x->opset);
    m->producer_name = ir_arena_strdup(x->arena, producer);
    Onnx__OperatorSetIdProto *os = ir_arena_alloc(x->arena, sizeof *os);
    Onnx__OperatorSetIdProto oinit = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    *os = oinit;
    os->domain = (char *)"";
    os->has_version = 1;
    os->version = x->opset;
    m->n_opset_import = 1;
    m->opset_import = ir_arena_alloc(x->arena, sizeof *m->opset_import);
    m->opset_import[0] = os;
    *out = m;
    return build_graph(x, &m->graph);
}

/* ---- entry point ------------------------------------------------------------------ */

static int check_opts(struct exporter *x, const struct onnx_export_opts *o, const char *path,
                      char *ext, size_t extn)
{
    if (x->opset < EXPORT_MIN_OPSET || x->opset > EXPORT_MAX_OPSET)
        return diag_set(x->d, ST_ERR_UNSUPPORTED,
                        "%s: cannot write default-domain opset %d (pdc writes %d..%d%s)", path,
                        x->opset, EXPORT_MIN_OPSET, EXPORT_MAX_OPSET,
                        x->opset ? "" : "; the graph has no opset, so give one");
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return diag_set(x->d, ST_ERR_INVALID, "%s: the model path names a folder", path);
    if (o->external_name)
        snprintf(ext, extn, "%s", o->external_name);
    else if (snprintf(ext, extn, "%s.data", base) >= (int)extn)
        return diag_set(x->d, ST_ERR_INVALID, "%s: file name too long", path);
    if (!*ext || strchr(ext, '/') || strcmp(ext, ".") == 0 || strcmp(ext, "..") == 0 ||
        strlen(ext) >= extn - 1)
        return diag_set(x->d, ST_ERR_INVALID,
                        "%s: external data name '%s' must be a plain file name (it is written "
                        "next to the model)", path, ext);
    x->ext_name = ext;
    return ST_OK;
}

int onnx_save_file(const struct ir_graph *g, const char *path, const struct onnx_export_opts *o,
                   struct diag *d)
{
    static const struct onnx_export_opts defaults = {NULL, 0, 0, NULL, NULL};
    if (!o)
        o = &defaults;
    if (!path || !*path)
        return diag_set(d, ST_ERR_INVALID, "export: no output path");
    struct exporter x = {.g = g, .file = path, .opset = o->opset ? o->opset : g->opset,
                         .ext_threshold = o->external_threshold,
                         .defaults = o->input_defaults, .d = d};
    char ext[512];
    int st = check_opts(&x, o, path, ext, sizeof ext);
    if (st)
        return st;
    /* the order is an analysis of g, not part of it: refresh it if stale */
    if (!(g->valid & IR_VALID_TOPO) && (st = ir_fill_topo((struct ir_graph *)g, d)) != ST_OK)
        return st;
    x.arena = ir_arena_new();
    Onnx__ModelProto *m = NULL;
    st = build_model(&x, o->producer ? o->producer : "pdc", &m);
    if (!st)
        st = ex_write_files(&x, m, path);
    ir_arena_free(x.arena);
    free(x.ext);
    return st;
}
