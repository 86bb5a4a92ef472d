/* test_ir.c — the IR core: graph building, topological order and cycle
 * detection, verifier, symbolic binding, shape inference with constant folding
 * of exporter-style shape chains, dead-code elimination, the printer's exact
 * text, dtype conversions and broadcasting. */
#include "harness.h"
#include "ir.h"
#include "pass.h"
#include "target.h"

static uint32_t input(struct ir_graph *g, const char *name, enum ir_dtype dt, int rank,
                      const int64_t *dims, const char *const *syms)
{
    uint32_t t = ir_tensor_new(g, name);
    g->t[t].dtype = dt;
    g->t[t].rank = rank;
    for (int i = 0; i < rank; i++) {
        g->t[t].dims[i] = dims[i];
        if (syms && syms[i])
            g->t[t].sym[i] = ir_sym_intern(g, syms[i]);
    }
    ir_graph_add_input(g, t);
    return t;
}

static uint32_t node1(struct ir_graph *g, enum ir_op op, const char *out, uint32_t a, uint32_t b)
{
    uint32_t o = ir_tensor_new(g, out);
    uint32_t in[2] = {a, b};
    ir_node_new(g, op, out, b == IR_NONE ? 1 : 2, in, 1, &o);
    return o;
}

TEST(arena_strings)
{
    struct ir_arena *a = ir_arena_new();
    char *s = ir_arena_strdup(a, "hello");
    CHECK(strcmp(s, "hello") == 0);
    for (int i = 0; i < 10000; i++) /* forces several chunks */
        CHECK(ir_arena_alloc(a, 100) != NULL);
    void *big = ir_arena_alloc(a, 1 << 20);
    CHECK(((uintptr_t)big & 15) == 0);
    ir_arena_free(a);
}

TEST(names_unique)
{
    struct ir_graph *g = ir_graph_new();
    uint32_t a = ir_tensor_new(g, "x");
    CHECK(a != IR_NONE);
    CHECK_EQ(ir_tensor_new(g, "x"), IR_NONE);
    CHECK_EQ(ir_tensor_find(g, "x"), a);
    uint32_t b = ir_tensor_new_unique(g, "x");
    CHECK(strcmp(g->t[b].name, "x_1") == 0);
    for (int i = 0; i < 1000; i++) { /* grows the hash map */
        char nm[32];
        snprintf(nm, sizeof nm, "t%d", i);
        ir_tensor_new(g, nm);
    }
    CHECK_EQ(ir_tensor_find(g, "t999"), g->nt - 1);
    ir_graph_free(g);
}

TEST(cycle_detected)
{
    struct ir_graph *g = ir_graph_new();
    uint32_t a = ir_tensor_new(g, "a"), b = ir_tensor_new(g, "b");
    ir_node_new(g, IR_OP_Relu, "n1", 1, &a, 1, &b);
    ir_node_new(g, IR_OP_Relu, "n2", 1, &b, 1, &a);
    ir_graph_add_output(g, b);
    struct diag d = {0};
    CHECK_EQ(ir_fill_topo(g, &d), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(d.msg, "cycle");
    ir_graph_free(g);
}

TEST(verify_undefined_input)
{
    struct ir_graph *g = ir_graph_new();
    uint32_t a = ir_tensor_new(g, "ghost");
    uint32_t y = node1(g, IR_OP_Relu, "y", a, IR_NONE);
    ir_graph_add_output(g, y);
    struct diag d = {0};
    CHECK_EQ(ir_verify(g, &d), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(d.msg, "ghost");
    ir_graph_free(g);
}

/* x[batch,4] -> Shape -> Gather(0) -> Unsqueeze -> Concat([-1? no: b, 2, 2]) -> Reshape */
static struct ir_graph *shape_chain_graph(void)
{
    struct ir_graph *g = ir_graph_new();
    g->opset = 17;
    int64_t dims[2] = {-1, 4};
    const char *syms[2] = {"batch", NULL};
    uint32_t x = input(g, "x", IR_F32, 2, dims, syms);
    uint32_t shp = node1(g, IR_OP_Shape, "shp", x, IR_NONE);
    uint32_t idx = ir_tensor_new(g, "zero");
    int64_t zero = 0, one = 1, two[1] = {2};
    ir_tensor_set_const(g, idx, IR_I64, 0, &one, &zero);
    uint32_t b = node1(g, IR_OP_Gather, "b", shp, idx);
    uint32_t ax = ir_tensor_new(g, "ax");
    ir_tensor_set_const(g, ax, IR_I64, 1, &one, &zero);
    uint32_t bu = node1(g, IR_OP_Unsqueeze, "bu", b, ax);
    uint32_t c2 = ir_tensor_new(g, "c2");
    int64_t v2[2] = {2, 2};
    ir_tensor_set_const(g, c2, IR_I64, 1, two, v2);
    uint32_t cat_in[2] = {bu, c2}, cat = ir_tensor_new(g, "newshape");
    uint32_t cn = ir_node_new(g, IR_OP_Concat, "cat", 2, cat_in, 1, &cat);
    g->n[cn].n_attr = 1;
    g->n[cn].attr = ir_arena_alloc(g->arena, sizeof(struct ir_attr));
    g->n[cn].attr[0] = (struct ir_attr){.name = "axis", .type = IR_ATTR_INT, .i = 0};
    uint32_t y = node1(g, IR_OP_Reshape, "y", x, cat);
    uint32_t unused = node1(g, IR_OP_Neg, "unused", x, IR_NONE);
    (void)unused;
    ir_graph_add_output(g, y);
    return g;
}

TEST(fold_shape_chain_and_dce)
{
    struct ir_graph *g = shape_chain_graph();
    struct diag d = {0};
    CHECK_EQ(ir_bind(g, "batch=3", &d), ST_OK);
    struct pass_ctx cx = {.eval = cg_eval_node};
    int st = pass_compile_inference(g, &cx, &d);
    if (st)
        fprintf(stderr, "  %s\n", d.msg);
    CHECK_EQ(st, ST_OK);
    /* only the Reshape survives: the shape chain folded, the Neg is dead */
    CHECK_EQ(g->ntopo, 1);
    const struct ir_tensor *y = &g->t[ir_tensor_find(g, "y")];
    CHECK_EQ(y->rank, 3);
    CHECK_EQ(y->dims[0], 3);
    CHECK_EQ(y->dims[2], 2);
    const struct ir_tensor *ns = &g->t[ir_tensor_find(g, "newshape")];
    CHECK(ns->data != NULL);
    ir_graph_free(g);
}

TEST(printer_is_stable)
{
    struct ir_graph *g = shape_chain_graph();
    struct diag d = {0};
    ir_bind(g, "batch=3", &d);
    struct pass_ctx cx = {.eval = cg_eval_node};
    CHECK_EQ(pass_compile_inference(g, &cx, &d), ST_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print(g, f);
    fclose(f);
    const char *want = "graph opset=17\n"
                       "input  x : float32[batch=3,4]\n"
                       "const  newshape : int64[3]\n"
                       "%y : float32[3,2,2] = Reshape(x, newshape)  # y\n"
                       "output y\n";
    if (strcmp(buf, want) != 0)
        fprintf(stderr, "  got:\n%s  want:\n%s", buf, want);
    CHECK(strcmp(buf, want) == 0);
    free(buf);
    ir_graph_free(g);
}

TEST(bind_errors_name_the_symbol)
{
    struct ir_graph *g = shape_chain_graph();
    struct diag d = {0};
    CHECK_EQ(ir_bind(g, "seq=4", &d), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(d.msg, "batch");
    struct diag d2 = {0};
    CHECK_EQ(ir_bind(g, "batch", &d2), ST_ERR_INVALID);
    struct pass_ctx cx = {.eval = cg_eval_node};
    struct diag d3 = {0};
    CHECK_EQ(pass_compile_inference(g, &cx, &d3), ST_ERR_SHAPE); /* batch unbound */
    CHECK_STR_CONTAINS(d3.msg, "--bind");
    ir_graph_free(g);
}

TEST(half_precision)
{
    CHECK_EQ(ir_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ(ir_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ(ir_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ(ir_f32_to_f16(1e6f), 0x7c00);
    CHECK_EQ(ir_f32_to_f16(5.9604645e-08f), 0x0001); /* smallest subnormal */
    CHECK_NEAR(ir_f16_to_f32(0x3555), 0.33325195f, 1e-8);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite positive half round-trips */
        if (ir_f32_to_f16(ir_f16_to_f32((uint16_t)h)) != h) {
            CHECK_EQ(ir_f32_to_f16(ir_f16_to_f32((uint16_t)h)), h);
            break;
        }
    CHECK_EQ(ir_f32_to_bf16(1.0f), 0x3f80);
    CHECK_NEAR(ir_bf16_to_f32(ir_f32_to_bf16(3.14159f)), 3.140625, 1e-9);
}

TEST(store_saturates_and_wraps)
{
    int8_t i8[2];
    ir_store_f64(IR_I8, i8, 0, 300.7);
    CHECK_EQ(i8[0], 127);
    ir_store_i64(IR_I8, i8, 1, 300); /* integer casts wrap */
    CHECK_EQ(i8[1], 44);
    uint8_t b;
    ir_store_f64(IR_BOOL, &b, 0, -0.5);
    CHECK_EQ(b, 1);
}

TEST(broadcast)
{
    int64_t a[3] = {4, 1, 3}, b[2] = {5, 1}, out[IR_MAX_RANK], st[3];
    int r;
    CHECK_EQ(ir_broadcast_shape(3, a, 2, b, &r, out), 0);
    CHECK_EQ(r, 3);
    CHECK_EQ(out[0], 4);
    CHECK_EQ(out[1], 5);
    CHECK_EQ(out[2], 3);
    ir_broadcast_strides(2, b, 3, out, st);
    CHECK_EQ(st[0], 0);
    CHECK_EQ(st[1], 1);
    CHECK_EQ(st[2], 0);
    int64_t c[1] = {2};
    CHECK_EQ(ir_broadcast_shape(3, a, 1, c, &r, out), -1);
}

static const struct test_case tests[] = {
    T(arena_strings), T(names_unique), T(cycle_detected), T(verify_undefined_input),
    T(fold_shape_chain_and_dce), T(printer_is_stable), T(bind_errors_name_the_symbol),
    T(half_precision), T(store_saturates_and_wraps), T(broadcast),
};
TEST_MAIN(tests)
