/* toy_models.c — the toy targets (METHOD §6) as IR programs; see toy.h.
 * needs: nothing but the spec; every graph is built from scratch.
 * guarantees: the training program is a dc_prog like the decomposition's
 *   (states with next values, the data input fed by the §6.1 generator, AdamW
 *   from passes/optimizer.c); the inference graph reads the weights under
 *   their site names (METHOD §1.5), tied TMS weights as one initializer used
 *   directly and through a Transpose. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toy.h"
#include "toy_impl.h"

/* ---- the targets ------------------------------------------------------------ */

/* METHOD §6.2: AdamW lr 5e-3 constant, wd 0.01 (PyTorch's default), 10 000
 * steps, p = 0.05, values U(0, 1); batch 1024 (5-2) / 8192 (40-10); the 40-10
 * bias starts at zero. */
#define TMS(nm, nf, nh, id, b0, bs)                                                           \
    {.name = nm, .family = TOY_TMS, .n_features = nf, .n_hidden = nh, .identity_layer = id,   \
     .bias_zero = b0, .batch = bs, .steps = 10000, .lr = 5e-3, .schedule = DC_SCHED_CONSTANT, \
     .weight_decay = 0.01, .p = 0.05, .lo = 0.0, .hi = 1.0}
/* METHOD §6.3: AdamW wd 0.01, lr 3e-3 cosine → 0, batch 2048, p = 0.01,
 * values U(−1, 1); 1000 steps (1L, 2L), 10 000 (3L). */
#define RESID(nm, nf, de, dm, nl, st)                                                       \
    {.name = nm, .family = TOY_RESID_MLP, .n_features = nf, .d_embed = de, .d_mlp = dm,     \
     .n_layers = nl, .batch = 2048, .steps = st, .lr = 3e-3, .schedule = DC_SCHED_COSINE,   \
     .weight_decay = 0.01, .p = 0.01, .lo = -1.0, .hi = 1.0}

static const struct toy_spec specs[] = {
    TMS("tms-5-2", 5, 2, 0, 0, 1024),
    TMS("tms-5-2-id", 5, 2, 1, 0, 1024),
    TMS("tms-40-10", 40, 10, 0, 1, 8192),
    TMS("tms-40-10-id", 40, 10, 1, 1, 8192),
    RESID("resid-mlp-1", 100, 1000, 50, 1, 1000),
    RESID("resid-mlp-2", 100, 1000, 25, 2, 1000),
    RESID("resid-mlp-3", 102, 1000, 17, 3, 10000),
    /* METHOD §8.7–8.8: AdamW lr 1e-3, wd 1e-3, p = 0.05, all-zero rows redrawn; batch 128
     * (the code's 4 processes × 32); steps fewer than the code's 1000 epochs of 10 000 */
    {.name = "l3d-tms", .family = TOY_L3D_TMS, .n_features = 5, .n_hidden = 2, .n_out = 5,
     .batch = 128, .steps = 20000, .lr = 1e-3, .schedule = DC_SCHED_CONSTANT,
     .weight_decay = 1e-3, .p = 0.05, .lo = 0.0, .hi = 1.0, .data = "toy:p=0.05,nz=1"},
    {.name = "l3d-tmcs", .family = TOY_L3D_CIRCUIT, .n_features = 10, .n_hidden = 5,
     .n_out = 10, .batch = 128, .steps = 20000, .lr = 1e-3, .schedule = DC_SCHED_CONSTANT,
     .weight_decay = 1e-3, .p = 0.05, .lo = 0.0, .hi = 1.0, .data = "toy:p=0.05,nz=1"},
    {.name = "l3d-highrank", .family = TOY_L3D_CIRCUIT, .n_features = 25, .n_hidden = 10,
     .n_out = 25, .batch = 128, .steps = 20000, .lr = 1e-3, .schedule = DC_SCHED_CONSTANT,
     .weight_decay = 1e-3, .p = 0.05, .lo = 0.0, .hi = 1.0,
     .data = "toy:p=0.05,nz=1,group=5"},
    {.name = "l3d-square", .family = TOY_L3D_SQUARE, .n_features = 5, .n_hidden = 5,
     .n_layers = 4, .n_out = 5, .batch = 128, .steps = 20000, .lr = 1e-3,
     .schedule = DC_SCHED_CONSTANT, .weight_decay = 1e-3, .p = 0.05, .lo = 0.0, .hi = 1.0,
     .data = "toy:p=0.05,nz=1,sign=1"},
};

const struct toy_spec *toy_specs(int *n)
{
    *n = (int)(sizeof specs / sizeof specs[0]);
    return specs;
}

const struct toy_spec *toy_find(const char *name)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (strcmp(specs[i].name, name) == 0)
            return &specs[i];
    return NULL;
}

/* ---- weights ---------------------------------------------------------------- */

#define MAX_W (2 + 2 * TOY_MAX_LAYERS)

static struct wdesc wd2(const char *name, int64_t r, int64_t c, enum dc_init init, double a,
                        int trainable)
{
    struct wdesc w = {.rank = c ? 2 : 1, .dims = {r, c}, .init = init, .a = a,
                      .trainable = trainable};
    snprintf(w.name, sizeof w.name, "%s", name);
    return w;
}

/* PyTorch's default nn.Linear init: weight and bias U(±1/√fan_in) */
static double torch_bound(int64_t fan_in) { return 1.0 / sqrt((double)fan_in); }

/* The weights of a target in a fixed order (the forwards index them):
 *   TMS   0 linear1 [n_features, n_hidden], 1 linear2.bias
 *   Resid 0 W_E, 1 W_U, then mlp_in, mlp_out per layer
 * linear1 is stored as the MatMul reads it (PyTorch's weight transposed); its
 * init U(±1/√n_features) is PyTorch's for linear1.weight (fan_in = n_features),
 * which linear2 then shares (tied, §6.2). W_E/W_U are frozen and set by the
 * setup program; their inits here only make the store's first item. */
static int weight_list(const struct toy_spec *s, struct wdesc *w)
{
    if (s->family == TOY_TMS) {
        w[0] = wd2("linear1", s->n_features, s->n_hidden, DC_INIT_UNIFORM,
                   torch_bound(s->n_features), DC_TRAIN_COMPONENT);
        w[1] = wd2("linear2.bias", s->n_features, 0, s->bias_zero ? DC_INIT_ZERO : DC_INIT_UNIFORM,
                   s->bias_zero ? 0.0 : torch_bound(s->n_hidden), DC_TRAIN_COMPONENT);
        return 2;
    }
    w[0] = wd2("W_E", s->n_features, s->d_embed, DC_INIT_NORMAL, 1.0, DC_TRAIN_NO);
    w[1] = wd2("W_U", s->d_embed, s->n_features, DC_INIT_ZERO, 0.0, DC_TRAIN_NO);
    int n = 2;
    for (int l = 0; l < s->n_layers && l < TOY_MAX_LAYERS; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "layers.%d.mlp_in", l);
        w[n++] = wd2(nm, s->d_embed, s->d_mlp, DC_INIT_UNIFORM, torch_bound(s->d_embed),
                     DC_TRAIN_COMPONENT);
        snprintf(nm, sizeof nm, "layers.%d.mlp_out", l);
        w[n++] = wd2(nm, s->d_mlp, s->d_embed, DC_INIT_UNIFORM, torch_bound(s->d_mlp),
                     DC_TRAIN_COMPONENT);
    }
    return n;
}

/* ---- builder helpers ----------------------------------------------------------- */

/* toy_impl.h */
uint32_t toy_named_node(struct ir_builder *b, enum ir_op op, uint32_t n_in, const uint32_t *in,
                        const char *name)
{
    if (b->err)
        return IR_NONE;
    uint32_t y = ir_tensor_new(b->g, name);
    if (y == IR_NONE) {
        b->err = diag_set(b->d, ST_ERR_INVALID, "%s: tensor name '%s' is taken", b->prefix, name);
        return IR_NONE;
    }
    uint32_t id = ir_node_new(b->g, op, name, n_in, in, 1, &y);
    b->g->n[id].opset = b->opset;
    int st = ir_infer_node(b->g, &b->g->n[id], b->d);
    if (st)
        b->err = st;
    return st ? IR_NONE : y;
}

uint32_t toy_named_init(struct ir_builder *b, const char *name, int rank, const int64_t *dims,
                        const void *data)
{
    if (b->err)
        return IR_NONE;
    uint32_t t = ir_tensor_new(b->g, name);
    if (t == IR_NONE) {
        b->err = diag_set(b->d, ST_ERR_INVALID, "%s: tensor name '%s' is taken", b->prefix, name);
        return IR_NONE;
    }
    if (ir_tensor_set_const(b->g, t, IR_F32, rank, dims, data)) {
        b->err = diag_set(b->d, ST_ERR_NOMEM, "%s: out of memory for '%s'", b->prefix, name);
        return IR_NONE;
    }
    b->g->t[t].flags |= IR_T_INIT | IR_T_PARAM; /* a weight, like an imported initializer */
    return t;
}

/* the +id variants' frozen hidden layer (METHOD §6.2 fixed_identity_hidden_layers):
 * a constant in training too, so it never enters the optimizer */
static uint32_t identity(struct ir_builder *b, const char *name, int64_t n)
{
    int64_t dims[2] = {n, n};
    uint32_t t = toy_named_init(b, name, 2, dims, NULL);
    if (t == IR_NONE)
        return t;
    float *e = b->g->t[t].data;
    for (int64_t i = 0; i < n; i++)
        e[i * n + i] = 1.0f;
    return t;
}

/* ---- forwards ------------------------------------------------------------------- */

/* METHOD §6.2: y = ReLU(h·W2ᵀ + b), h = x·W1ᵀ (then ·I for +id), W2 = W1ᵀ.
 * In the right-multiply layout: h = x·linear1, y = ReLU(h·linear1ᵀ + b); the
 * Transpose node is what site detection reads as the tied second use. */
static uint32_t tms_forward(struct ir_builder *b, const struct toy_spec *s, uint32_t x,
                            const uint32_t *w)
{
    static const int64_t swap[2] = {1, 0};
    uint32_t h = bld_matmul(b, x, w[0]);
    if (s->identity_layer)
        h = bld_matmul(b, h, identity(b, "hidden_layers.0", s->n_hidden));
    uint32_t z = bld_add(b, bld_matmul(b, h, bld_transpose(b, w[0], 2, swap)), w[1]);
    return toy_named_node(b, IR_OP_Relu, 1, &z, "y");
}

/* METHOD §6.3: r = x·W_E; per layer r += ReLU(r·mlp_in)·mlp_out (no biases);
 * y = r·W_U */
static uint32_t resid_forward(struct ir_builder *b, const struct toy_spec *s, uint32_t x,
                              const uint32_t *w)
{
    uint32_t r = bld_matmul(b, x, w[0]);
    for (int l = 0; l < s->n_layers && l < TOY_MAX_LAYERS; l++) {
        uint32_t a = bld_op1(b, IR_OP_Relu, bld_matmul(b, r, w[2 + 2 * l]));
        r = bld_add(b, r, bld_matmul(b, a, w[3 + 2 * l]));
    }
    uint32_t in[2] = {r, w[1]};
    return toy_named_node(b, IR_OP_MatMul, 2, in, "y");
}

static uint32_t forward(struct ir_builder *b, const struct toy_spec *s, uint32_t x,
                        const uint32_t *w)
{
    return s->family == TOY_TMS ? tms_forward(b, s, x, w) : resid_forward(b, s, x, w);
}

/* TMS labels are |x| = x (the generator's values are in [0, 1]); ResidMLP's are
 * y_i = x_i + ReLU(c_i·x_i) with the trivial coefficients c_i = 1 (§6.3) */
static uint32_t labels(struct ir_builder *b, const struct toy_spec *s, uint32_t x)
{
    return s->family == TOY_TMS ? x : bld_add(b, x, bld_op1(b, IR_OP_Relu, x));
}

/* mean((y − t)²) over batch and features */
static uint32_t mse(struct ir_builder *b, uint32_t y, uint32_t t)
{
    uint32_t e = bld_sub(b, y, t);
    return bld_reduce(b, IR_OP_ReduceMean, bld_mul(b, e, e), 0, NULL, 0);
}

/* ---- programs ------------------------------------------------------------------- */

/* dc_ctx_init compiles around an imported target forward (it snapshots that
 * forward and wants exactly one input and a float output); a toy is built from
 * nothing, so only the bookkeeping half of the context is set: builder, graph,
 * program and the lazily created scalar inputs. */
int toy_ctx_begin(struct dc_ctx *cx, struct dc_prog *p, const char *prefix, struct diag *d)
{
    memset(p, 0, sizeof *p);
    memset(cx, 0, sizeof *cx);
    struct ir_graph *g = ir_graph_new();
    if (!g)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    cx->b = bld_begin(g, prefix, d);
    cx->g = g;
    cx->prog = p;
    for (size_t i = 0; i < sizeof cx->scalar / sizeof cx->scalar[0]; i++)
        cx->scalar[i] = IR_NONE;
    p->g = g;
    p->loss = IR_NONE;
    p->p = (struct dc_anneal){0.0, -1.0, 1.0, 1.0}; /* no importance p in a toy */
    return ST_OK;
}

uint32_t toy_data_input(struct dc_ctx *cx, const char *name, enum ir_dtype dt, int rank,
                        const int64_t *dims)
{
    if (cx->b.err)
        return IR_NONE;
    uint32_t t = ir_tensor_new(cx->g, name);
    struct ir_tensor *x = &cx->g->t[t];
    x->dtype = dt;
    x->rank = rank;
    for (int k = 0; k < rank; k++)
        x->dims[k] = dims[k];
    ir_graph_add_input(cx->g, t);
    struct dc_prog *p = cx->prog;
    struct dc_input *in = realloc(p->in, (size_t)(p->n_in + 1) * sizeof *in);
    if (!in) {
        cx->b.err = diag_set(cx->b.d, ST_ERR_NOMEM, "out of memory");
        return IR_NONE;
    }
    p->in = in;
    p->in[p->n_in++] = (struct dc_input){.t = t, .kind = DC_FEED_DATA};
    return t;
}

void toy_declare_states(struct dc_ctx *cx, const struct wdesc *w, int n, uint32_t *ids)
{
    for (int i = 0; i < n; i++)
        ids[i] = dc_state(cx, w[i].name, IR_F32, w[i].rank, w[i].dims, w[i].init, w[i].a,
                          w[i].trainable);
}

int toy_load_weights(struct ir_builder *b, const struct wdesc *w, int n, toy_weight_fn get,
                     void *ctx, const char *who, uint32_t *ids, struct diag *d)
{
    for (int i = 0; i < n && !b->err; i++) {
        int64_t k = w[i].dims[0] * (w[i].rank == 2 ? w[i].dims[1] : 1);
        const void *v = get(ctx, w[i].name, (size_t)k * sizeof(float));
        if (!v)
            b->err = diag_set(d, ST_ERR_INVALID, "%s: no trained value for '%s'", who,
                              w[i].name);
        ids[i] = toy_named_init(b, w[i].name, w[i].rank, w[i].dims, v);
    }
    return b->err;
}

int toy_ctx_end(struct dc_ctx *cx, struct dc_prog *p, int st)
{
    if (!st)
        st = dc_finish(cx);
    dc_ctx_fini(cx);
    if (st)
        dc_prog_free(p);
    return st;
}

int toy_build_setup(const struct toy_spec *s, struct dc_prog *p, struct diag *d)
{
    memset(p, 0, sizeof *p);
    if (s->family != TOY_RESID_MLP)
        return ST_OK;
    struct dc_ctx cx;
    int st = toy_ctx_begin(&cx, p, "setup", d);
    if (st)
        return st;
    p->steps = 1;
    struct wdesc w[MAX_W];
    uint32_t ids[MAX_W];
    weight_list(s, w);
    toy_declare_states(&cx, w, 2, ids); /* W_E, W_U */
    /* fixed_random_embedding: Gaussian rows scaled to unit L2 norm; W_U = W_Eᵀ */
    struct ir_builder *b = &cx.b;
    static const int64_t ax1[1] = {1}, swap[2] = {1, 0};
    uint32_t norm = bld_op1(b, IR_OP_Sqrt,
                            bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, ids[0], ids[0]), 1, ax1, 1));
    uint32_t we = bld_div(b, ids[0], norm);
    dc_state_next(&cx, ids[0], we);
    dc_state_next(&cx, ids[1], bld_transpose(b, we, 2, swap));
    return toy_ctx_end(&cx, p, b->err);
}

int toy_build_train(const struct toy_spec *s, int64_t batch, int64_t steps, struct dc_prog *p,
                    struct diag *d)
{
    if (toy_is_l3d(s))
        return toy_l3d_train(s, batch, steps, p, d);
    struct dc_ctx cx;
    int st = toy_ctx_begin(&cx, p, "toy", d);
    if (st)
        return st;
    p->steps = steps > 0 ? steps : s->steps;
    p->lr = (struct dc_schedule_cfg){s->lr, 0.0, 0.0, s->schedule}; /* cosine decays to 0 */
    struct wdesc w[MAX_W];
    uint32_t ids[MAX_W];
    int nw = weight_list(s, w);
    struct ir_builder *b = &cx.b;
    int64_t xd[2] = {batch > 0 ? batch : s->batch, s->n_features};
    uint32_t x = toy_data_input(&cx, "x", IR_F32, 2, xd); /* the sparse-feature generator's */
    toy_declare_states(&cx, w, nw, ids);
    uint32_t y = forward(b, s, x, ids);
    uint32_t loss = mse(b, y, labels(b, s, x));
    p->loss = loss;
    dc_metric(&cx, "loss", loss);
    /* one AdamW for toys and decompositions; the tied TMS weight is one state,
     * so its two uses' gradients are summed and it has one Adam state (§1.6) */
    st = dc_adamw(&cx, loss, s->weight_decay, 0.0, "adam");
    return toy_ctx_end(&cx, p, st ? st : b->err);
}

/* the start of an inference graph: a new graph (*out) and its builder, the float input
 * x [batch, n_features] with dim 0 the symbol "batch" (*bsym) */
int toy_infer_begin(const struct toy_spec *s, int64_t batch, struct ir_builder *b, uint32_t *x,
                    int *bsym, struct ir_graph **out, struct diag *d)
{
    struct ir_graph *g = *out = ir_graph_new();
    if (!g)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    g->opset = TOY_OPSET;
    *b = bld_begin(g, "toy", d);
    b->opset = TOY_OPSET;
    *x = ir_tensor_new(g, "x");
    *bsym = ir_sym_intern(g, "batch");
    g->sym_val[*bsym] = batch;
    struct ir_tensor *xt = &g->t[*x];
    xt->dtype = IR_F32;
    xt->rank = 2;
    xt->dims[0] = batch;
    xt->dims[1] = s->n_features;
    xt->sym[0] = *bsym;
    ir_graph_add_input(g, *x);
    return ST_OK;
}

/* its end: y the output, batch-symbolic in dim 0; the graph in topological order into
 * *out, or freed (and *out NULL) on an error of the builder or here */
int toy_infer_end(struct ir_builder *b, uint32_t y, int bsym, struct ir_graph **out)
{
    struct ir_graph *g = b->g;
    int st = b->err;
    if (!st) {
        ir_graph_add_output(g, y);
        g->t[y].sym[0] = bsym; /* y [batch, outputs] in the written model */
        st = ir_fill_topo(g, b->d);
    }
    if (st) {
        ir_graph_free(g);
        *out = NULL;
    }
    return st;
}

int toy_build_infer(const struct toy_spec *s, int64_t batch, toy_weight_fn get, void *ctx,
                    struct ir_graph **out, struct diag *d)
{
    if (toy_is_l3d(s))
        return toy_l3d_infer(s, batch, get, ctx, out, d);
    struct ir_builder b;
    uint32_t x;
    int bsym, st = toy_infer_begin(s, batch, &b, &x, &bsym, out, d);
    if (st)
        return st;
    struct wdesc w[MAX_W];
    uint32_t ids[MAX_W];
    int nw = weight_list(s, w);
    char who[96];
    snprintf(who, sizeof who, "toy %s", s->name);
    toy_load_weights(&b, w, nw, get, ctx, who, ids, d);
    return toy_infer_end(&b, forward(&b, s, x, ids), bsym, out);
}
