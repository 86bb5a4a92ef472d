/* decompose_fixture.h — shared by test_decompose.c and test_decompose_ci.c: the
 * targets (built with the node builder, or imported), and one decomposition
 * program on a target run on the reference target with random V, U, data and
 * CI weights. Everything is static inline (harness.h style) so each test file
 * uses what it needs. */
#ifndef PDC_DECOMPOSE_FIXTURE_H
#define PDC_DECOMPOSE_FIXTURE_H

#include <stdint.h>

#include "decomp_impl.h"
#include "exec.h"
#include "harness.h"
#include "onnx.h"
#include "pass.h"
#include "target.h"

#define MAXS 8

/* ---- deterministic random numbers ---------------------------------------------- */

static uint64_t rng_state;

static inline uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double rng_unif(double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next() >> 11) / 9007199254740992.0;
}

static inline double rng_normal(double std)
{
    double u = rng_unif(1e-12, 1.0), v = rng_unif(0.0, 1.0);
    return std * sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- targets, built with the node builder ----------------------------------------- */

static inline struct ir_graph *new_graph(struct ir_builder *b, struct diag *d)
{
    struct ir_graph *g = ir_graph_new();
    g->opset = 17;
    *b = bld_begin(g, "m", d);
    b->opset = 17;
    return g;
}

static inline uint32_t g_input(struct ir_graph *g, const char *name, enum ir_dtype dt, int rank,
                               const int64_t *dims)
{
    uint32_t t = ir_tensor_new(g, name);
    g->t[t].dtype = dt;
    g->t[t].rank = rank;
    for (int i = 0; i < rank; i++)
        g->t[t].dims[i] = dims[i];
    ir_graph_add_input(g, t);
    return t;
}

/* a named float initializer, U(±scale), flagged like an imported weight */
static inline uint32_t g_param(struct ir_builder *b, const char *name, int rank,
                               const int64_t *dims, double scale)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)rng_unif(-scale, scale);
    uint32_t t = ir_tensor_new(b->g, name);
    ir_tensor_set_const(b->g, t, IR_F32, rank, dims, v);
    b->g->t[t].flags |= IR_T_INIT | IR_T_PARAM;
    free(v);
    return t;
}

static inline int finish_graph(struct ir_graph *g, const struct ir_builder *b, uint32_t y,
                               struct diag *d)
{
    if (b->err)
        return b->err;
    ir_graph_add_output(g, y);
    struct pass_ctx pc = {.eval = cg_eval_node};
    int st = pass_compile_inference(g, &pc, d);
    return st ? st : ir_fill_topo(g, d);
}

typedef int (*build_fn)(struct ir_graph **g, struct diag *d);

/* every site kind (no patterns would select only the MatMul/Gemm weights) */
static inline void select_all(struct dc_config *c)
{
    c->n_sites = 1;
    snprintf(c->sites[0].pattern, sizeof c->sites[0].pattern, "*");
    c->sites[0].C = 0;
}

/* 2-layer MLP as PyTorch exports it: Gemm(x, W[out,in], b, transB=1); the second
 * layer also scales (alpha 0.5, beta 2) to cover Gemm's epilogue */
static inline int build_gemm(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[2] = {3, 4}, w1[2] = {5, 4}, b1[1] = {5}, w2[2] = {3, 5}, b2[1] = {3};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd);
    struct ir_attr a1[1] = {bld_attr_int("transB", 1)};
    struct ir_attr a2[3] = {bld_attr_int("transB", 1), bld_attr_float("alpha", 0.5),
                            bld_attr_float("beta", 2.0)};
    uint32_t in1[3] = {x, g_param(&b, "fc1.weight", 2, w1, 0.5),
                       g_param(&b, "fc1.bias", 1, b1, 0.5)};
    uint32_t h = bld_op1(&b, IR_OP_Relu, bld_node(&b, IR_OP_Gemm, 3, in1, 1, a1, 1, NULL));
    uint32_t in2[3] = {h, g_param(&b, "fc2.weight", 2, w2, 0.5),
                       g_param(&b, "fc2.bias", 1, b2, 0.5)};
    return finish_graph(g, &b, bld_node(&b, IR_OP_Gemm, 3, in2, 3, a2, 1, NULL), d);
}

/* MatMul on [B, T, d] activations: ReLU(x·W1)·W2 + b */
static inline int build_batched(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[3] = {2, 3, 4}, w1[2] = {4, 6}, w2[2] = {6, 5}, bd[1] = {5};
    uint32_t x = g_input(g, "x", IR_F32, 3, xd);
    uint32_t h = bld_op1(&b, IR_OP_Relu, bld_matmul(&b, x, g_param(&b, "mlp_in", 2, w1, 0.5)));
    uint32_t y = bld_add(&b, bld_matmul(&b, h, g_param(&b, "mlp_out", 2, w2, 0.4)),
                         g_param(&b, "bias", 1, bd, 0.5));
    return finish_graph(g, &b, y, d);
}

/* models/default.onnx: TMS 5-2, W used as x·W and (through a Transpose) h·Wᵀ */
static inline int build_tms(struct ir_graph **out, struct diag *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0),
             "../models/default.onnx");
    int st = onnx_load_file(path, out, d);
    if (st)
        return st;
    struct ir_graph *g = *out;
    struct ir_tensor *x = &g->t[g->inputs[0]];
    if (x->sym[0] >= 0 && (st = ir_bind_sym(g, g->syms[x->sym[0]], 4, d)))
        return st;
    struct pass_ctx pc = {.eval = cg_eval_node};
    st = pass_compile_inference(g, &pc, d);
    return st ? st : ir_fill_topo(g, d);
}

/* Gather embedding [vocab 7, d 4] on int64 tokens [2, 3], then MatMul */
static inline int build_embed(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[2] = {2, 3}, ed[2] = {7, 4}, wd[2] = {4, 5};
    uint32_t idx = g_input(g, "tokens", IR_I64, 2, xd);
    uint32_t e = bld_op2(&b, IR_OP_Gather, g_param(&b, "wte", 2, ed, 1.0), idx);
    return finish_graph(g, &b, bld_matmul(&b, e, g_param(&b, "proj", 2, wd, 0.5)), d);
}

/* x [2, 3, 7, 6] → Conv 3×3 (pads [1, 0, 1, 1], stride 2) + bias → ReLU →
 * Conv 2×2 (dilations [2, 1]) + bias: [2, 4, 4, 3] then [2, 5, 2, 2] */
static inline int build_conv_g(struct ir_graph **out, struct diag *d, int64_t group)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t co = group == 1 ? 5 : 4; /* group must divide C_out too */
    int64_t xd[4] = {2, 3, 7, 6}, w1[4] = {4, 3, 3, 3}, b1[1] = {4}, w2[4] = {co, 4 / group, 2, 2},
            b2[1] = {co};
    static const int64_t pads[4] = {1, 0, 1, 1}, s2[2] = {2, 2}, dil[2] = {2, 1};
    uint32_t x = g_input(g, "x", IR_F32, 4, xd);
    struct ir_attr a1[2] = {bld_attr_ints("pads", 4, pads), bld_attr_ints("strides", 2, s2)};
    struct ir_attr a2[2] = {bld_attr_ints("dilations", 2, dil), bld_attr_int("group", group)};
    uint32_t in1[3] = {x, g_param(&b, "conv1.weight", 4, w1, 0.3),
                       g_param(&b, "conv1.bias", 1, b1, 0.5)};
    uint32_t h = bld_op1(&b, IR_OP_Relu, bld_node(&b, IR_OP_Conv, 3, in1, 2, a1, 1, NULL));
    uint32_t in2[3] = {h, g_param(&b, "conv2.weight", 4, w2, 0.3),
                       g_param(&b, "conv2.bias", 1, b2, 0.5)};
    return finish_graph(g, &b, bld_node(&b, IR_OP_Conv, 3, in2, 2, a2, 1, NULL), d);
}

static inline int build_conv(struct ir_graph **out, struct diag *d)
{
    return build_conv_g(out, d, 1);
}

/* self-attention with a fused QKV weight, as decoder LMs export it: x [2, 3, 4] →
 * x·Wqkv [4, 12] → Split into q, k, v → softmax(q·kᵀ / 2)·v → ·Wo [4, 4] */
static inline int build_qkv(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[3] = {2, 3, 4}, wq[2] = {4, 12}, wo[2] = {4, 4}, parts[3] = {4, 4, 4};
    int64_t perm[3] = {0, 2, 1};
    uint32_t x = g_input(g, "x", IR_F32, 3, xd), qkv[3];
    uint32_t y = bld_matmul(&b, x, g_param(&b, "attn.qkv", 2, wq, 0.5));
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t in[2] = {y, bld_i64s(&b, 3, parts)};
    bld_node(&b, IR_OP_Split, 2, in, 1, &ax, 3, qkv);
    uint32_t s = bld_mul(&b, bld_matmul(&b, qkv[0], bld_transpose(&b, qkv[1], 3, perm)),
                         bld_f32(&b, 0.5));
    uint32_t p = bld_node(&b, IR_OP_Softmax, 1, &s, 1, &ax, 1, NULL);
    uint32_t h = bld_matmul(&b, p, qkv[2]);
    return finish_graph(g, &b, bld_matmul(&b, h, g_param(&b, "attn.o", 2, wo, 0.5)), d);
}

/* weights on the left: y1 = W1·x (MatMul), y2 = Gemm(y1, W2, transA=1),
 * y = Gemm(W3, y2, transB=1) = W3·y2ᵀ; x [4, 3]: positions are x's 3 columns */
static inline int build_left(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[2] = {4, 3}, w1[2] = {5, 4}, w2[2] = {5, 6}, w3[2] = {2, 6};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd);
    uint32_t h = bld_op1(&b, IR_OP_Relu, bld_matmul(&b, g_param(&b, "W1", 2, w1, 0.5), x));
    struct ir_attr ta[1] = {bld_attr_int("transA", 1)}, tb[1] = {bld_attr_int("transB", 1)};
    uint32_t in2[2] = {h, g_param(&b, "W2", 2, w2, 0.5)};
    uint32_t s = bld_node(&b, IR_OP_Gemm, 2, in2, 1, ta, 1, NULL); /* [3, 6] */
    uint32_t in3[2] = {g_param(&b, "W3", 2, w3, 0.5), s};
    return finish_graph(g, &b, bld_node(&b, IR_OP_Gemm, 2, in3, 1, tb, 1, NULL), d);
}

/* ---- one masked forward on the reference target ------------------------------------ */

enum mode { M_ONES, M_RANDOM, M_ROUTED };

struct run {
    struct dc_prog prog;
    struct dc_site *sites;
    struct dc_factor *fac;
    int ns, nf;
    float *V[MAXS], *U[MAXS];              /* per factor, as written into the states */
    float *m[MAXS], *dl[MAXS], *rho[MAXS]; /* per site: [pos, C], [pos], [pos] (NULL: none) */
    int64_t npos[MAXS];
    void *x;                               /* the data input */
    struct rt_prog *rp;                    /* the program, kept for its buffers */
    float *y, *y0;                         /* masked forward, target output (in rp) */
    int64_t ny;
};

static inline float *rand_vec(int64_t n, enum mode md, int bernoulli)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = md == M_ONES  ? 1.0f
               : bernoulli   ? (float)(rng_unif(0, 1) < 0.5)
                             : (float)rng_unif(0, 1);
    return v;
}

/* masks (and δ, ρ by mode) as constants shaped by dc_mask_dims */
static inline void make_masks(struct dc_ctx *cx, struct run *r, enum mode md, uint32_t *m,
                              uint32_t *dl, uint32_t *rho)
{
    for (int i = 0; i < r->ns; i++) {
        int rk;
        int64_t dims[IR_MAX_RANK], C = r->sites[i].C;
        dc_mask_dims(cx, i, C, &rk, dims);
        r->npos[i] = 1;
        for (int k = 0; k < rk - 1; k++)
            r->npos[i] *= dims[k];
        r->m[i] = rand_vec(r->npos[i] * C, md, 0);
        m[i] = bld_const(&cx->b, IR_F32, rk, dims, r->m[i]);
        dims[rk - 1] = 1;
        dl[i] = rho[i] = IR_NONE;
        if (md != M_ROUTED) {
            r->dl[i] = rand_vec(r->npos[i], md, 0);
            dl[i] = bld_const(&cx->b, IR_F32, rk, dims, r->dl[i]);
        } else {
            r->rho[i] = rand_vec(r->npos[i], md, 1);
            rho[i] = bld_const(&cx->b, IR_F32, rk, dims, r->rho[i]);
        }
    }
}

static inline const char *factor_site(const struct run *r, int f)
{
    for (int i = 0; i < r->ns; i++)
        if (r->sites[i].factor == f)
            return r->sites[i].name;
    return "?";
}

/* random values for every state: factors kept in r (V ~ N(0, 1/d_in), U ~ N(0, 1/C)),
 * CI weights N(0, 0.5) so the CI checks do not see zero biases */
static inline void fill_states(struct rt_prog *rp, struct run *r)
{
    for (int k = 0; k < r->prog.n_st; k++) {
        const struct dc_state *s = &r->prog.st[k];
        const struct ir_tensor *t = &r->prog.g->t[s->t];
        float *v = rt_prog_buf(rp, s->t);
        int64_t n = ir_numel(t);
        for (int64_t j = 0; j < n; j++)
            v[j] = (float)rng_normal(s->std > 0 ? s->std : 0.5);
        for (int f = 0; f < r->nf; f++) {
            char nv[300], nu[300];
            snprintf(nv, sizeof nv, "%s.V", factor_site(r, f));
            snprintf(nu, sizeof nu, "%s.U", factor_site(r, f));
            if (strcmp(s->name, nv) == 0)
                r->V[f] = v;
            if (strcmp(s->name, nu) == 0)
                r->U[f] = v;
        }
    }
}

static inline void *rand_input(const struct ir_tensor *t, int64_t vocab)
{
    int64_t n = ir_numel(t);
    if (t->dtype == IR_I64) {
        int64_t *v = malloc((size_t)n * sizeof *v);
        for (int64_t i = 0; i < n; i++)
            v[i] = (int64_t)(rng_next() % (uint64_t)vocab);
        return v;
    }
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)rng_unif(-1, 1);
    return v;
}

/* what a run builds on top of the factors: a masked forward (mode) or the CI */
struct what {
    enum mode md;
    int ci;              /* build dc_ci_fn with this kind instead of a forward */
    enum dc_ci_fn kind;
};

static inline int build_forward(struct dc_ctx *cx, struct run *r, enum mode md)
{
    uint32_t m[MAXS], dl[MAXS], rho[MAXS], y[4];
    make_masks(cx, r, md, m, dl, rho);
    if (dc_forward_routed(cx, m, dl, md == M_ROUTED ? rho : NULL, y))
        return cx->b.err;
    dc_metric(cx, "y", y[0]);
    dc_metric(cx, "y0", cx->outs[0]);
    return ST_OK;
}

/* CI pre-activations z of every site as metrics "z" (hidden layer of 3) */
static inline int build_ci(struct dc_ctx *cx, struct run *r)
{
    if (dc_ci_fn(cx))
        return cx->b.err;
    for (int i = 0; i < r->ns; i++)
        dc_metric(cx, "z", cx->s[i].z);
    return ST_OK;
}

static inline int build_program(struct ir_graph *g, const struct dc_config *c, const struct what *w,
                                struct run *r, uint32_t *data, struct diag *d)
{
    struct dc_ctx cx;
    int st = dc_ctx_init(&cx, g, c, r->sites, r->ns, r->fac, r->nf, &r->prog, "t", d);
    if (!st)
        st = dc_factors(&cx);
    if (!st)
        st = w->ci ? build_ci(&cx, r) : build_forward(&cx, r, w->md);
    if (!st)
        st = dc_finish(&cx);
    *data = cx.data;
    dc_ctx_fini(&cx);
    return st;
}

/* build, run and keep (r->rp) one program on target `bf` */
static inline int run_what(build_fn bf, const struct what *w, struct run *r, struct diag *d)
{
    memset(r, 0, sizeof *r);
    struct ir_graph *g;
    struct dc_config c;
    dc_config_defaults(&c, "spd");
    select_all(&c);
    c.ci_fn_type = w->kind;
    c.ci_fn_hidden_dims[0] = 3;
    c.n_ci_hidden = 1;
    int st = bf(&g, d);
    if (!st)
        st = dc_select_sites(g, &c, &r->sites, &r->ns, &r->fac, &r->nf, d);
    if (st || r->ns > MAXS) {
        ir_graph_free(g);
        return st ? st : ST_ERR_INVALID;
    }
    uint32_t data;
    if ((st = build_program(g, &c, w, r, &data, d)) ||
        (st = rt_prog_new(r->prog.g, &cg_ref, &r->rp, d)))
        return st;
    const struct ir_tensor *xt = &r->prog.g->t[data];
    r->x = rand_input(xt, r->sites[0].kind == PASS_SITE_GATHER ? r->sites[0].d_in : 0);
    memcpy(rt_prog_buf(r->rp, data), r->x, rt_tensor_bytes(xt));
    fill_states(r->rp, r);
    if ((st = rt_prog_run(r->rp, d)))
        return st;
    if (!w->ci) {
        r->ny = ir_numel(&r->prog.g->t[r->prog.metric[0].t]);
        r->y = rt_prog_buf(r->rp, r->prog.metric[0].t);
        r->y0 = rt_prog_buf(r->rp, r->prog.metric[1].t);
    }
    return ST_OK;
}

static inline int run_case(build_fn bf, enum mode md, struct run *r, struct diag *d)
{
    struct what w = {md, 0, DC_CI_MLP};
    return run_what(bf, &w, r, d);
}

static inline void run_free(struct run *r)
{
    for (int i = 0; i < MAXS; i++) {
        free(r->m[i]);
        free(r->dl[i]);
        free(r->rho[i]);
    }
    rt_prog_free(r->rp);
    free(r->x);
    dc_prog_free(&r->prog);
    free(r->sites);
    free(r->fac);
}

/* a target weight (initializer) of the program, by name */
static inline const float *weight(const struct run *r, const char *name)
{
    uint32_t t = ir_tensor_find(r->prog.g, name);
    return t == IR_NONE ? NULL : r->prog.g->t[t].data;
}

/* a state's buffer (V, U, CI weights) by name */
static inline float *state(const struct run *r, const char *name)
{
    for (int k = 0; k < r->prog.n_st; k++)
        if (strcmp(r->prog.st[k].name, name) == 0)
            return rt_prog_buf(r->rp, r->prog.st[k].t);
    return NULL;
}

/* a Conv's geometry: input [N, Ci, H, W], kernel [Co, Ci, KH, KW], pads top/left,
 * strides, dilations, output [N, Co, Ho, Wo] */
struct conv_geo {
    int64_t N, Ci, H, W, Co, KH, KW, pt, pl, sh, sw, dh, dw, Ho, Wo;
};

/* the patch of x at (n, oh, ow), in W's [C_in, KH, KW] order (zeros in the padding) */
static inline void patch(const struct conv_geo *q, const double *x, int64_t n, int64_t oh,
                         int64_t ow, double *pt)
{
    for (int64_t ci = 0; ci < q->Ci; ci++)
        for (int64_t kh = 0; kh < q->KH; kh++)
            for (int64_t kw = 0; kw < q->KW; kw++) {
                int64_t ih = oh * q->sh - q->pt + kh * q->dh, iw = ow * q->sw - q->pl + kw * q->dw;
                int in = ih >= 0 && ih < q->H && iw >= 0 && iw < q->W;
                pt[(ci * q->KH + kh) * q->KW + kw] =
                    in ? x[((n * q->Ci + ci) * q->H + ih) * q->W + iw] : 0;
            }
}

/* conv1 of the Conv target (build_conv) */
static const struct conv_geo CONV1 = {2, 3, 7, 6, 4, 3, 3, 1, 0, 2, 2, 1, 1, 4, 3};

#endif
