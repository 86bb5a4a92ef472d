/* toy_l3d.c — the L3D toy targets (METHOD §8.8) as IR programs; see toy.h.
 * needs: a spec of an L3D family.
 * guarantees: like toy_models.c — a training program (weights as states, the
 *   spec's data source, MSE, AdamW) and an inference graph with the trained
 *   weights as initializers. The written models use only MatMul, Add, Relu, Mul,
 *   Div and Erf (opset 17), every tensor L3D decomposes read as x·W or added as a
 *   bias, and TMS untied: the code trains it tied and decomposes an untied copy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toy.h"
#include "toy_impl.h"

#define L3D_MAX_W 12

int toy_is_l3d(const struct toy_spec *s)
{
    return s->family == TOY_L3D_TMS || s->family == TOY_L3D_CIRCUIT ||
           s->family == TOY_L3D_SQUARE;
}

static struct wdesc wd(const char *name, int64_t r, int64_t c, enum dc_init init, double a,
                       int trainable)
{
    struct wdesc w = {.rank = c ? 2 : 1, .dims = {r, c}, .init = init, .a = a,
                      .trainable = trainable};
    snprintf(w.name, sizeof w.name, "%s", name);
    return w;
}

/* The trained weights in a fixed order (the forwards index them):
 *   TMS      W [F, H] xavier-normal, b [F] zero (l3d: AutoencoderSymmetric)
 *   circuit  W_in [F, H], W_out [H, O] N(0, 1), b [O] zero, then A (frozen; labels only)
 *   square   fc.<l>.weight He-normal, fc.<l>.bias U(±1/√fan_in), l = 0..n_layers */
static int weight_list(const struct toy_spec *s, struct wdesc *w)
{
    int64_t F = s->n_features, H = s->n_hidden, O = s->n_out;
    if (s->family == TOY_L3D_TMS) {
        w[0] = wd("W", F, H, DC_INIT_NORMAL, sqrt(2.0 / (double)(F + H)), DC_TRAIN_COMPONENT);
        w[1] = wd("b", F, 0, DC_INIT_ZERO, 0.0, DC_TRAIN_COMPONENT);
        return 2;
    }
    if (s->family == TOY_L3D_CIRCUIT) {
        w[0] = wd("W_in", F, H, DC_INIT_NORMAL, 1.0, DC_TRAIN_COMPONENT);
        w[1] = wd("W_out", H, O, DC_INIT_NORMAL, 1.0, DC_TRAIN_COMPONENT);
        w[2] = wd("b", O, 0, DC_INIT_ZERO, 0.0, DC_TRAIN_COMPONENT);
        w[3] = wd("A", F, O, DC_INIT_UNIFORM, 1.5, DC_TRAIN_NO); /* + 1.5: U(0, 3) */
        return 4;
    }
    int n = 0;
    for (int l = 0; l <= s->n_layers; l++) {
        char nm[64];
        int64_t in = l ? H : F, out = l == s->n_layers ? O : H;
        snprintf(nm, sizeof nm, "fc.%d.weight", l);
        w[n++] = wd(nm, in, out, DC_INIT_NORMAL, sqrt(2.0 / (double)in), DC_TRAIN_COMPONENT);
        snprintf(nm, sizeof nm, "fc.%d.bias", l);
        w[n++] = wd(nm, out, 0, DC_INIT_UNIFORM, 1.0 / sqrt((double)in), DC_TRAIN_COMPONENT);
    }
    return n;
}

/* exported weights (TMS: W_in = W, W_out = Wᵀ, b; circuits: without A) */
static int export_count(const struct toy_spec *s, int nw)
{
    return s->family == TOY_L3D_CIRCUIT ? nw - 1 : s->family == TOY_L3D_TMS ? 3 : nw;
}

/* GELU as 0.5·x·(1 + erf(x/√2)): opset 17 has no Gelu */
static uint32_t gelu(struct ir_builder *b, uint32_t x)
{
    uint32_t e = bld_op1(b, IR_OP_Erf, bld_div(b, x, bld_f32(b, sqrt(2.0))));
    return bld_mul(b, bld_mul(b, x, bld_f32(b, 0.5)), bld_add(b, e, bld_f32(b, 1.0)));
}

static uint32_t named_relu(struct ir_builder *b, uint32_t z, int named)
{
    return named ? toy_named_node(b, IR_OP_Relu, 1, &z, "y") : bld_op1(b, IR_OP_Relu, z);
}

/* w: the weights as the forward reads them (TMS: W_in, W_out, b) */
static uint32_t forward(struct ir_builder *b, const struct toy_spec *s, uint32_t x,
                        const uint32_t *w, int named)
{
    if (s->family != TOY_L3D_SQUARE)
        return named_relu(b, bld_add(b, bld_matmul(b, bld_matmul(b, x, w[0]), w[1]), w[2]),
                          named);
    uint32_t h = x;
    for (int l = 0; l < s->n_layers; l++)
        h = gelu(b, bld_add(b, bld_matmul(b, h, w[2 * l]), w[2 * l + 1]));
    uint32_t in[2] = {bld_matmul(b, h, w[2 * s->n_layers]), w[2 * s->n_layers + 1]};
    return named ? toy_named_node(b, IR_OP_Add, 2, in, "y") : bld_add(b, in[0], in[1]);
}

static uint32_t labels(struct ir_builder *b, const struct toy_spec *s, uint32_t x,
                       const uint32_t *w)
{
    if (s->family == TOY_L3D_CIRCUIT)
        return bld_matmul(b, x, bld_add(b, w[3], bld_f32(b, 1.5)));
    return s->family == TOY_L3D_SQUARE ? bld_mul(b, x, x) : x;
}

int toy_l3d_train(const struct toy_spec *s, int64_t batch, int64_t steps, struct dc_prog *p,
                  struct diag *d)
{
    struct dc_ctx cx;
    int st = toy_ctx_begin(&cx, p, "toy", d);
    if (st)
        return st;
    p->steps = steps > 0 ? steps : s->steps;
    p->lr = (struct dc_schedule_cfg){s->lr, 0.0, 0.0, s->schedule};
    struct wdesc w[L3D_MAX_W];
    uint32_t ids[L3D_MAX_W];
    int nw = weight_list(s, w);
    struct ir_builder *b = &cx.b;
    int64_t xd[2] = {batch > 0 ? batch : s->batch, s->n_features};
    uint32_t x = toy_data_input(&cx, "x", IR_F32, 2, xd);
    toy_declare_states(&cx, w, nw, ids);
    uint32_t fw[L3D_MAX_W];
    memcpy(fw, ids, sizeof fw);
    if (s->family == TOY_L3D_TMS) { /* tied: ReLU(x·W·Wᵀ + b) */
        static const int64_t swap[2] = {1, 0};
        fw[1] = bld_transpose(b, ids[0], 2, swap);
        fw[2] = ids[1];
    }
    uint32_t e = bld_sub(b, forward(b, s, x, fw, 0), labels(b, s, x, ids));
    uint32_t loss = bld_reduce(b, IR_OP_ReduceMean, bld_mul(b, e, e), 0, NULL, 0);
    p->loss = loss;
    dc_metric(&cx, "loss", loss);
    st = dc_adamw(&cx, loss, s->weight_decay, 0.0, "adam");
    return toy_ctx_end(&cx, p, st ? st : b->err);
}

/* TMS: the untied copy's W_in = W and W_out = Wᵀ from the trained W */
static const void *tms_weight(void *ctx, const char *name, size_t nbytes, toy_weight_fn get,
                              const struct toy_spec *s, float *buf)
{
    int64_t F = s->n_features, H = s->n_hidden;
    if (strcmp(name, "b") == 0)
        return get(ctx, "b", nbytes);
    const float *W = get(ctx, "W", (size_t)(F * H) * sizeof(float));
    if (!W || strcmp(name, "W_in") == 0)
        return W;
    for (int64_t i = 0; i < F; i++)
        for (int64_t j = 0; j < H; j++)
            buf[j * F + i] = W[i * H + j];
    return buf;
}

static int load_weights(struct ir_builder *b, const struct toy_spec *s, toy_weight_fn get,
                        void *ctx, uint32_t *ids, struct diag *d)
{
    struct wdesc w[L3D_MAX_W];
    int nw = export_count(s, weight_list(s, w));
    char who[96];
    snprintf(who, sizeof who, "toy %s", s->name);
    if (s->family != TOY_L3D_TMS)
        return toy_load_weights(b, w, nw, get, ctx, who, ids, d);
    int64_t F = s->n_features, H = s->n_hidden;
    struct wdesc u[3] = {wd("W_in", F, H, DC_INIT_ZERO, 0, 0), wd("W_out", H, F, DC_INIT_ZERO, 0, 0),
                         wd("b", F, 0, DC_INIT_ZERO, 0, 0)};
    float *buf = calloc((size_t)(F * H), sizeof *buf);
    for (int i = 0; i < 3 && buf && !b->err; i++) {
        size_t nb = (size_t)(u[i].dims[0] * (u[i].rank == 2 ? u[i].dims[1] : 1)) * sizeof(float);
        const void *v = tms_weight(ctx, u[i].name, nb, get, s, buf);
        if (!v)
            b->err = diag_set(d, ST_ERR_INVALID, "%s: no trained value for '%s'", who, u[i].name);
        ids[i] = toy_named_init(b, u[i].name, u[i].rank, u[i].dims, v);
    }
    free(buf);
    return buf ? b->err : diag_set(d, ST_ERR_NOMEM, "out of memory");
}

int toy_l3d_infer(const struct toy_spec *s, int64_t batch, toy_weight_fn get, void *ctx,
                  struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    uint32_t x, ids[L3D_MAX_W];
    int bsym, st = toy_infer_begin(s, batch, &b, &x, &bsym, out, d);
    if (st)
        return st;
    load_weights(&b, s, get, ctx, ids, d);
    return toy_infer_end(&b, forward(&b, s, x, ids, 1), bsym, out);
}
