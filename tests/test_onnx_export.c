/* test_onnx_export.c — the ONNX writer: graphs built through the IR API and a
 * conformance model are exported, imported again and compared (inputs,
 * outputs, op sequence, attributes, initializer bytes), and both run on the
 * reference target with bit-identical outputs. Also: external data with a low
 * threshold, attribute forms written back for old opsets, and clear errors
 * (unwritable attribute kinds, internal ops, missing output types) that leave
 * no file behind. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"
#include "harness.h"
#include "io.h"
#include "onnx.h"
#include "pass.h"
#include "target.h"

#define CONF_DIR "/usr/share/libonnx-testdata/data/node/test_gemm_all_attributes"

/* ---- scratch folders ------------------------------------------------------- */

static char *make_tmpdir(void)
{
    char *p = strdup("/tmp/pdc_export_XXXXXX");
    if (!p || !mkdtemp(p)) {
        fprintf(stderr, "  cannot create a temp dir\n");
        exit(1);
    }
    return p;
}

static int count_files(const char *dir)
{
    DIR *dp = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp)))
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    if (dp)
        closedir(dp);
    return n;
}

static void rm_tree(char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (dp)
        closedir(dp);
    rmdir(dir);
    free(dir);
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? -1 : (long long)sb.st_size;
}

/* ---- building graphs -------------------------------------------------------- */

static uint32_t tensor(struct ir_graph *g, const char *name, enum ir_dtype dt, int rank,
                       const int64_t *dims, int sym0)
{
    uint32_t t = ir_tensor_new(g, name);
    g->t[t].dtype = dt;
    g->t[t].rank = rank;
    for (int i = 0; i < rank; i++)
        g->t[t].dims[i] = dims[i];
    g->t[t].sym[0] = sym0;
    return t;
}

static uint32_t constant(struct ir_graph *g, const char *name, enum ir_dtype dt, int rank,
                         const int64_t *dims, const void *data, unsigned flags)
{
    uint32_t t = ir_tensor_new(g, name);
    ir_tensor_set_const(g, t, dt, rank, dims, data);
    g->t[t].flags |= flags;
    return t;
}

static uint32_t node(struct ir_graph *g, enum ir_op op, const char *name, uint32_t n_in,
                     const uint32_t *in, uint32_t out)
{
    return ir_node_new(g, op, name, n_in, in, 1, &out);
}

static struct ir_attr *attrs(struct ir_graph *g, uint32_t nid, uint32_t k)
{
    struct ir_node *n = &g->n[nid];
    n->attr = ir_arena_alloc(g->arena, k * sizeof *n->attr);
    n->n_attr = k;
    return n->attr;
}

static void attr_f(struct ir_attr *a, const char *name, double f)
{
    a->name = name;
    a->type = IR_ATTR_FLOAT;
    a->f = f;
}

static void attr_i(struct ir_attr *a, const char *name, int64_t i)
{
    a->name = name;
    a->type = IR_ATTR_INT;
    a->i = i;
}

/* x[batch,3] -> Gemm(W,B) -> LeakyRelu -> ReduceSum(axes input) = s
 *                                      -> Add(ConstantOfShape) -> Identity = z
 * plus a dead node; opset 13. Outputs carry types, as after inference. */
static struct ir_graph *build_api_graph(void)
{
    struct ir_graph *g = ir_graph_new();
    g->opset = 13;
    int batch = ir_sym_intern(g, "batch");
    int64_t dx[2] = {-1, 3}, dw[2] = {3, 4}, db[1] = {4}, d1[1] = {1}, d2[1] = {2};
    float w[12], b[4] = {0.5f, -1.0f, 0.25f, 2.0f}, three = 3.0f;
    for (int i = 0; i < 12; i++)
        w[i] = (float)(i - 5) * 0.37f;
    int64_t axes = 1, shape[2] = {1, 4};
    uint32_t x = tensor(g, "x", IR_F32, 2, dx, batch);
    ir_graph_add_input(g, x);
    uint32_t W = constant(g, "W", IR_F32, 2, dw, w, IR_T_INIT | IR_T_PARAM);
    uint32_t B = constant(g, "B", IR_F32, 1, db, b, IR_T_INIT | IR_T_PARAM);
    uint32_t ax = constant(g, "rs.axes", IR_I64, 1, d1, &axes, IR_T_INIT);
    uint32_t shp = constant(g, "shape", IR_I64, 1, d2, shape, IR_T_INIT);
    uint32_t val = constant(g, "cos.value", IR_F32, 1, d1, &three, 0);
    uint32_t gm = ir_tensor_new(g, "gm"), r = ir_tensor_new(g, "r"), c = ir_tensor_new(g, "c");
    uint32_t y = ir_tensor_new(g, "y"), dead = ir_tensor_new(g, "dead");
    int64_t ds[2] = {-1, 1}, dz[2] = {-1, 4};
    uint32_t s = tensor(g, "s", IR_F32, 2, ds, batch), z = tensor(g, "z", IR_F32, 2, dz, batch);
    uint32_t n = node(g, IR_OP_Gemm, "gemm", 3, (uint32_t[]){x, W, B}, gm);
    struct ir_attr *a = attrs(g, n, 3);
    attr_f(&a[0], "alpha", 0.5);
    attr_f(&a[1], "beta", 2.0);
    attr_i(&a[2], "transB", 0);
    attr_f(attrs(g, node(g, IR_OP_LeakyRelu, "lrelu", 1, &gm, r), 1), "alpha", 0.1);
    attr_i(attrs(g, node(g, IR_OP_ReduceSum, "rs", 2, (uint32_t[]){r, ax}, s), 1), "keepdims", 1);
    a = attrs(g, node(g, IR_OP_ConstantOfShape, "cos", 1, &shp, c), 1);
    a->name = "value";
    a->type = IR_ATTR_TENSOR;
    a->n = 1;
    a->tensors = ir_arena_alloc(g->arena, sizeof *a->tensors);
    a->tensors[0] = val;
    node(g, IR_OP_Add, "add", 2, (uint32_t[]){r, c}, y);
    /* (no op pdc reads has FLOATS or STRINGS attributes, and the importer refuses an
     * attribute the op's schema does not define: those kinds are not round-tripped) */
    node(g, IR_OP_Identity, "ident", 1, &y, z);
    g->n[node(g, IR_OP_Relu, "gone", 1, &r, dead)].flags |= IR_N_DEAD;
    ir_graph_add_output(g, s);
    ir_graph_add_output(g, z);
    return g;
}

/* ---- comparing ---------------------------------------------------------------- */

static int same_data(const struct ir_tensor *a, const struct ir_tensor *b)
{
    return a->dtype == b->dtype && a->rank == b->rank && a->nbytes == b->nbytes &&
           !memcmp(a->dims, b->dims, (size_t)a->rank * sizeof *a->dims) &&
           (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

static int same_attr(const struct ir_graph *ga, const struct ir_attr *a, const struct ir_graph *gb,
                     const struct ir_attr *b)
{
    if (a->type != b->type || strcmp(a->name, b->name))
        return 0;
    switch (a->type) {
    case IR_ATTR_FLOAT: return (float)a->f == (float)b->f;
    case IR_ATTR_INT: return a->i == b->i;
    case IR_ATTR_STRING: return a->s_len == b->s_len && !memcmp(a->s, b->s, a->s_len);
    default: break;
    }
    if (a->n != b->n)
        return 0;
    for (int64_t i = 0; i < a->n; i++) {
        if ((a->type == IR_ATTR_INTS && a->ints[i] != b->ints[i]) ||
            (a->type == IR_ATTR_FLOATS && (float)a->floats[i] != (float)b->floats[i]) ||
            (a->type == IR_ATTR_STRINGS && strcmp(a->strs[i], b->strs[i])) ||
            ((a->type == IR_ATTR_TENSOR || a->type == IR_ATTR_TENSORS) &&
             !same_data(&ga->t[a->tensors[i]], &gb->t[b->tensors[i]])))
            return 0;
    }
    return 1;
}

static const char *tname(const struct ir_graph *g, uint32_t t)
{
    return t == IR_NONE ? "" : g->t[t].name;
}

static void check_same_node(const struct ir_graph *ga, const struct ir_node *a,
                            const struct ir_graph *gb, const struct ir_node *b)
{
    CHECK_EQ(a->op, b->op);
    CHECK(strcmp(a->name, b->name) == 0);
    CHECK_EQ(a->n_in, b->n_in);
    CHECK_EQ(a->n_out, b->n_out);
    for (uint32_t i = 0; i < a->n_in && i < b->n_in; i++)
        CHECK(strcmp(tname(ga, a->in[i]), tname(gb, b->in[i])) == 0);
    for (uint32_t i = 0; i < a->n_out && i < b->n_out; i++)
        CHECK(strcmp(tname(ga, a->out[i]), tname(gb, b->out[i])) == 0);
    CHECK_EQ(a->n_attr, b->n_attr);
    for (uint32_t i = 0; i < a->n_attr; i++) {
        const struct ir_attr *o = ir_attr_get(b, a->attr[i].name);
        CHECK(o && same_attr(ga, &a->attr[i], gb, o));
    }
}

static void check_same_io(const struct ir_graph *ga, const struct ir_graph *gb)
{
    CHECK_EQ(ga->n_inputs, gb->n_inputs);
    for (uint32_t i = 0; i < ga->n_inputs && i < gb->n_inputs; i++) {
        const struct ir_tensor *a = &ga->t[ga->inputs[i]], *b = &gb->t[gb->inputs[i]];
        CHECK(strcmp(a->name, b->name) == 0);
        CHECK_EQ(a->dtype, b->dtype);
        CHECK_EQ(a->rank, b->rank);
        for (int k = 0; k < a->rank && k < b->rank; k++) {
            CHECK_EQ(a->dims[k], b->dims[k]);
            CHECK_EQ(a->sym[k] >= 0, b->sym[k] >= 0);
            if (a->sym[k] >= 0 && b->sym[k] >= 0)
                CHECK(strcmp(ga->syms[a->sym[k]], gb->syms[b->sym[k]]) == 0);
        }
    }
    CHECK_EQ(ga->n_outputs, gb->n_outputs);
    for (uint32_t i = 0; i < ga->n_outputs && i < gb->n_outputs; i++)
        CHECK(strcmp(tname(ga, ga->outputs[i]), tname(gb, gb->outputs[i])) == 0);
}

/* Same inputs, outputs, live op sequence, attributes and initializer bytes. */
static void check_same_graph(struct ir_graph *ga, struct ir_graph *gb)
{
    struct diag d = {0};
    CHECK(ir_fill_topo(ga, &d) == ST_OK && ir_fill_topo(gb, &d) == ST_OK);
    check_same_io(ga, gb);
    CHECK_EQ(ga->ntopo, gb->ntopo);
    for (uint32_t k = 0; k < ga->ntopo && k < gb->ntopo; k++) {
        const struct ir_node *a = &ga->n[ga->topo[k]], *b = &gb->n[gb->topo[k]];
        check_same_node(ga, a, gb, b);
        for (uint32_t i = 0; i < a->n_in; i++) {
            uint32_t t = a->in[i];
            if (t == IR_NONE || !ga->t[t].data)
                continue;
            uint32_t u = ir_tensor_find(gb, ga->t[t].name);
            CHECK(u != IR_NONE && same_data(&ga->t[t], &gb->t[u]));
        }
    }
}

/* ---- running -------------------------------------------------------------------- */

static int run(struct ir_graph *g, const struct ir_value *in, int nin, struct ir_value **out,
               int *nout)
{
    struct diag d = {0};
    struct pass_ctx cx = {.eval = cg_eval_node};
    int st = pass_bind_inputs(g, in, nin, &d);
    if (!st)
        st = pass_compile_inference(g, &cx, &d);
    if (!st)
        st = rt_run(g, &cg_ref, in, nin, out, nout, &d);
    if (st)
        fprintf(stderr, "  run failed: %s\n", d.msg);
    return st;
}

static void free_values(struct ir_value *v, int n)
{
    for (int i = 0; i < n; i++)
        ir_value_free(&v[i]);
    free(v);
}

/* Run both graphs on the same inputs; outputs must be bit-identical. */
static void check_same_run(struct ir_graph *ga, struct ir_graph *gb, const struct ir_value *in,
                           int nin)
{
    struct ir_value *oa = NULL, *ob = NULL;
    int na = 0, nb = 0;
    CHECK(run(ga, in, nin, &oa, &na) == ST_OK);
    CHECK(run(gb, in, nin, &ob, &nb) == ST_OK);
    CHECK(na > 0);
    CHECK_EQ(na, nb);
    for (int i = 0; i < na && i < nb; i++) {
        CHECK(strcmp(oa[i].name, ob[i].name) == 0);
        CHECK_EQ(oa[i].dtype, ob[i].dtype);
        CHECK_EQ(oa[i].nbytes, ob[i].nbytes);
        CHECK(oa[i].nbytes == ob[i].nbytes && !memcmp(oa[i].data, ob[i].data, oa[i].nbytes));
    }
    free_values(oa, na);
    free_values(ob, nb);
}

static struct ir_value x_value(int64_t batch)
{
    struct ir_value v = {.name = strdup("x"), .dtype = IR_F32, .rank = 2, .dims = {batch, 3}};
    v.nbytes = (size_t)batch * 3 * sizeof(float);
    v.data = malloc(v.nbytes);
    for (int64_t i = 0; i < batch * 3; i++)
        ((float *)v.data)[i] = (float)(i * 7 % 11) * 0.3f - 1.2f;
    return v;
}

/* export g to dir/name, import it back */
static struct ir_graph *round_trip(const struct ir_graph *g, const char *dir, const char *name,
                                   const struct onnx_export_opts *o)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct diag d = {0};
    struct ir_graph *back = NULL;
    int st = onnx_save_file(g, path, o, &d);
    if (!st)
        st = onnx_load_file(path, &back, &d);
    if (st)
        fprintf(stderr, "  round trip failed: %s\n", d.msg);
    CHECK_EQ(st, ST_OK);
    return back;
}

/* ---- tests ------------------------------------------------------------------------ */

TEST(api_graph_round_trip)
{
    char *dir = make_tmpdir();
    struct ir_graph *g = build_api_graph();
    struct ir_graph *back = round_trip(g, dir, "m.onnx", NULL);
    if (back) {
        CHECK_EQ(back->opset, 13);
        CHECK_EQ(back->ir_version, 8);
        CHECK(strcmp(back->producer, "pdc") == 0);
        CHECK(ir_tensor_find(back, "dead") == IR_NONE);
        check_same_graph(g, back);
        struct ir_value x = x_value(2);
        check_same_run(g, back, &x, 1);
        ir_value_free(&x);
    }
    CHECK_EQ(count_files(dir), 1);
    ir_graph_free(back);
    ir_graph_free(g);
    rm_tree(dir);
}

TEST(external_data)
{
    char *dir = make_tmpdir();
    struct ir_graph *g = build_api_graph();
    struct onnx_export_opts o = {.external_threshold = 8};
    struct ir_graph *back = round_trip(g, dir, "m.onnx", &o);
    char p[4200];
    snprintf(p, sizeof p, "%s/m.onnx.data", dir);
    /* W (48 B) at 0, B (16 B) at 4096, shape (16 B) at 8192; rs.axes (8 B) inline */
    CHECK_EQ(file_size(p), 8192 + 16);
    CHECK_EQ(count_files(dir), 2);
    if (back) {
        check_same_graph(g, back);
        struct ir_value x = x_value(3);
        check_same_run(g, back, &x, 1);
        ir_value_free(&x);
    }
    ir_graph_free(back);
    ir_graph_free(g);
    /* a chosen name, and a second export replacing the first */
    g = build_api_graph();
    o.external_name = "weights.bin";
    back = round_trip(g, dir, "m.onnx", &o);
    snprintf(p, sizeof p, "%s/weights.bin", dir);
    CHECK_EQ(file_size(p), 8192 + 16);
    CHECK_EQ(count_files(dir), 3);
    if (back)
        check_same_graph(g, back);
    ir_graph_free(back);
    ir_graph_free(g);
    rm_tree(dir);
}

TEST(unwritable_attribute)
{
    char *dir = make_tmpdir();
    struct ir_graph *g = build_api_graph();
    uint32_t r = ir_tensor_find(g, "r"), o = ir_tensor_new(g, "o");
    uint32_t n = node(g, IR_OP_Relu, "has_graph", 1, &r, o);
    struct ir_attr *a = attrs(g, n, 1);
    a->name = "body";
    a->type = IR_ATTR_GRAPH;
    a->n = 1;
    char p[4200];
    snprintf(p, sizeof p, "%s/m.onnx", dir);
    struct diag d = {0};
    struct onnx_export_opts eo = {.external_threshold = 8};
    CHECK_EQ(onnx_save_file(g, p, &eo, &d), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d.msg, "has_graph");
    CHECK_STR_CONTAINS(d.msg, "'body'");
    CHECK_STR_CONTAINS(d.msg, "GRAPH");
    CHECK_EQ(count_files(dir), 0);
    ir_graph_free(g);
    rm_tree(dir);
}

TEST(internal_op)
{
    int op = 0;
    while (op < IR_OP_COUNT && !(ir_ops[op].flags & IR_OPF_INTERNAL))
        op++;
    if (op == IR_OP_COUNT) {
        printf("  (no internal ops in ops.def yet: nothing to check)\n");
        return;
    }
    char *dir = make_tmpdir();
    struct ir_graph *g = build_api_graph();
    uint32_t r = ir_tensor_find(g, "r"), in[8], outs[8];
    for (int i = 0; i < 8; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "io%d", i);
        in[i] = r;
        outs[i] = ir_tensor_new(g, nm);
    }
    ir_node_new(g, (enum ir_op)op, "internal", (uint32_t)ir_ops[op].min_in, in,
                (uint32_t)(ir_ops[op].min_out > 0 ? ir_ops[op].min_out : 1), outs);
    char p[4200];
    snprintf(p, sizeof p, "%s/m.onnx", dir);
    struct diag d = {0};
    CHECK_EQ(onnx_save_file(g, p, NULL, &d), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d.msg, "'internal'");
    CHECK_EQ(count_files(dir), 0);
    ir_graph_free(g);
    rm_tree(dir);
}

TEST(output_type_required)
{
    char *dir = make_tmpdir();
    struct ir_graph *g = build_api_graph();
    g->t[ir_tensor_find(g, "z")].dtype = IR_DT_UNDEF;
    char p[4200];
    snprintf(p, sizeof p, "%s/m.onnx", dir);
    struct diag d = {0};
    CHECK(onnx_save_file(g, p, NULL, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "output 'z'");
    CHECK_EQ(count_files(dir), 0);
    ir_graph_free(g);
    rm_tree(dir);
}

/* x[2,1,3] -> Squeeze(axes [1]) -> ReduceMean(axes [1], keepdims 0), opset 11:
 * as onnx_canon.c leaves a Squeeze-11 / ReduceMean-11 model. */
static struct ir_graph *build_old_graph(int runtime_axes)
{
    struct ir_graph *g = ir_graph_new();
    g->opset = 11;
    int64_t dx[3] = {2, 1, 3}, d1[1] = {1}, one = 1, dm[1] = {2};
    uint32_t x = tensor(g, "x", IR_F32, 3, dx, -1);
    ir_graph_add_input(g, x);
    uint32_t ax = runtime_axes ? tensor(g, "axes_in", IR_I64, 1, d1, -1)
                               : constant(g, "sq.axes", IR_I64, 1, d1, &one, IR_T_CONST);
    if (runtime_axes)
        ir_graph_add_input(g, ax);
    uint32_t ax2 = constant(g, "rm.axes", IR_I64, 1, d1, &one, IR_T_CONST);
    uint32_t y = ir_tensor_new(g, "y"), m = tensor(g, "m", IR_F32, 1, dm, -1);
    node(g, IR_OP_Squeeze, "sq", 2, (uint32_t[]){x, ax}, y);
    attr_i(attrs(g, node(g, IR_OP_ReduceMean, "rm", 2, (uint32_t[]){y, ax2}, m), 1), "keepdims", 0);
    ir_graph_add_output(g, m);
    return g;
}

static void check_axes_input(const struct ir_graph *g, const char *node_name, int64_t want)
{
    for (uint32_t i = 0; i < g->nn; i++) {
        const struct ir_node *n = &g->n[i];
        if (strcmp(n->name, node_name))
            continue;
        CHECK_EQ(n->n_in, 2);
        CHECK_EQ(n->n_attr, n->op == IR_OP_ReduceMean ? 1 : 0); /* only keepdims */
        const struct ir_tensor *t = n->n_in == 2 ? &g->t[n->in[1]] : NULL;
        CHECK(t && t->data && t->dtype == IR_I64 && ir_numel(t) == 1);
        if (t && t->data)
            CHECK_EQ(((const int64_t *)t->data)[0], want);
        return;
    }
    CHECK(!"node not found");
}

TEST(old_opset_attribute_forms)
{
    char *dir = make_tmpdir();
    int64_t dx[3] = {2, 1, 3};
    float xv[6] = {1, -2, 3.5f, 4, 0.25f, -6};
    struct ir_value x = {.name = "x", .dtype = IR_F32, .rank = 3, .nbytes = sizeof xv, .data = xv};
    memcpy(x.dims, dx, sizeof dx);
    for (int opset = 11; opset <= 18; opset += 7) { /* 11: both lowered; 18: neither */
        struct ir_graph *g = build_old_graph(0);
        struct onnx_export_opts o = {.opset = opset};
        char name[32];
        snprintf(name, sizeof name, "old%d.onnx", opset);
        struct ir_graph *back = round_trip(g, dir, name, &o);
        if (back) { /* the importer turns the attributes back into the same inputs */
            CHECK_EQ(back->opset, opset);
            check_axes_input(back, "sq", 1);
            check_axes_input(back, "rm", 1);
            check_same_run(g, back, &x, 1);
        }
        ir_graph_free(back);
        ir_graph_free(g);
    }
    /* a run-time axes tensor has no attribute form at opset 11 */
    struct ir_graph *g = build_old_graph(1);
    char p[4200];
    snprintf(p, sizeof p, "%s/bad.onnx", dir);
    struct diag d = {0};
    CHECK_EQ(onnx_save_file(g, p, NULL, &d), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d.msg, "node 'sq'");
    CHECK_STR_CONTAINS(d.msg, "run time");
    CHECK_EQ(count_files(dir), 2);
    ir_graph_free(g);
    rm_tree(dir);
}

/* read CONF_DIR/test_data_set_0/input_*.pb, named after g's inputs */
static int read_inputs(const struct ir_graph *g, struct ir_value *in, int max)
{
    int n = 0;
    for (; n < max && (uint32_t)n < g->n_inputs; n++) {
        char p[4096];
        struct diag d = {0};
        snprintf(p, sizeof p, "%s/test_data_set_0/input_%d.pb", CONF_DIR, n);
        if (onnx_read_tensor_file(p, &in[n], &d))
            break;
        free(in[n].name);
        in[n].name = strdup(g->t[g->inputs[n]].name);
    }
    return n;
}

/* Output types as inference gives them, on a twin (the importer keeps none). */
static void fill_output_types(struct ir_graph *g, const char *model, const struct ir_value *in,
                              int nin)
{
    struct ir_graph *twin = NULL;
    struct diag d = {0};
    struct pass_ctx cx = {.eval = cg_eval_node};
    CHECK(onnx_load_file(model, &twin, &d) == ST_OK && pass_bind_inputs(twin, in, nin, &d) == ST_OK &&
          pass_compile_inference(twin, &cx, &d) == ST_OK);
    for (uint32_t i = 0; twin && i < g->n_outputs; i++) {
        struct ir_tensor *t = &g->t[g->outputs[i]];
        const struct ir_tensor *u = &twin->t[twin->outputs[i]];
        t->dtype = u->dtype;
        t->rank = u->rank;
        memcpy(t->dims, u->dims, sizeof t->dims);
    }
    ir_graph_free(twin);
}

TEST(conformance_model_round_trip)
{
    char model[4096];
    snprintf(model, sizeof model, "%s/model.onnx", CONF_DIR);
    if (access(model, R_OK)) {
        printf("  (%s not installed: skipped)\n", model);
        return;
    }
    char *dir = make_tmpdir();
    struct ir_graph *g = NULL;
    struct diag d = {0};
    CHECK(onnx_load_file(model, &g, &d) == ST_OK);
    struct ir_value in[8];
    int nin = g ? read_inputs(g, in, 8) : 0;
    CHECK(g && nin == (int)g->n_inputs);
    if (g && nin == (int)g->n_inputs) {
        fill_output_types(g, model, in, nin);
        struct ir_graph *back = round_trip(g, dir, "gemm.onnx", NULL);
        if (back) {
            check_same_graph(g, back);
            check_same_run(g, back, in, nin);
        }
        ir_graph_free(back);
    }
    for (int i = 0; i < nin; i++)
        ir_value_free(&in[i]);
    ir_graph_free(g);
    rm_tree(dir);
}

/* models/default.onnx (symbolic batch, tied weight), next to this file's folder */
TEST(default_model_round_trip)
{
    char root[4096], model[4200], npy[4200];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *slash = strrchr(root, '/');
    if (slash)
        *slash = 0;
    snprintf(model, sizeof model, "%s/../models/default.onnx", root);
    snprintf(npy, sizeof npy, "%s/../models/default_input.npy", root);
    if (access(model, R_OK) || access(npy, R_OK)) {
        printf("  (%s not found: skipped)\n", model);
        return;
    }
    char *dir = make_tmpdir();
    struct ir_graph *g = NULL;
    struct diag d = {0};
    struct ir_value x = {0};
    CHECK(onnx_load_file(model, &g, &d) == ST_OK && npy_read_file(npy, &x, &d) == ST_OK);
    if (g && x.data && g->n_inputs == 1) {
        free(x.name);
        x.name = strdup(g->t[g->inputs[0]].name);
        struct ir_graph *back = round_trip(g, dir, "default.onnx", NULL);
        if (back) {
            check_same_graph(g, back);
            check_same_run(g, back, &x, 1);
        }
        ir_graph_free(back);
    }
    ir_value_free(&x);
    ir_graph_free(g);
    rm_tree(dir);
}

static const struct test_case tests[] = {
    T(api_graph_round_trip),
    T(external_data),
    T(unwritable_attribute),
    T(internal_op),
    T(output_type_required),
    T(old_opset_attribute_forms),
    T(conformance_model_round_trip),
    T(default_model_round_trip),
};

TEST_MAIN(tests)
