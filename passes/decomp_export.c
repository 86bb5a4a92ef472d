/* decomp_export.c — the site rewrite of `pdc export` on the imported graph.
 * needs: the model as imported (no passes run: symbolic dims, original nodes),
 *   sites matched to their nodes by the caller (decomp_export.h).
 * guarantees: each site node is replaced by the nodes of decompose.c's masked
 *   forward, with the same ONNX ops, writing the node's own output tensor, so
 *   every other node, name and attribute is untouched; factors and Δ are
 *   constants; masks are graph inputs with a default value, baked constants or
 *   the in-model CI function's output. Nothing here infers shapes: ranks come
 *   from the compiled copy the sites were selected on (struct dx_site). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_export_impl.h"
#include "pass.h"

/* ---- the builder (no shape inference) --------------------------------------- */

uint32_t dx_node(struct dx_builder *xb, enum ir_op op, uint32_t n_in, const uint32_t *in,
                 uint32_t n_attr, const struct ir_attr *attr, uint32_t out)
{
    if (xb->err)
        return IR_NONE;
    for (uint32_t i = 0; i < n_in; i++)
        if (in[i] == IR_NONE && i < (uint32_t)ir_ops[op].min_in) {
            xb->err = diag_set(xb->d, ST_ERR_INVALID, "%s: building %s with a missing input",
                               xb->prefix, ir_ops[op].name);
            return IR_NONE;
        }
    char name[400];
    snprintf(name, sizeof name, "%s/%s_%u", xb->prefix, ir_ops[op].name, xb->count++);
    if (out == IR_NONE)
        out = ir_tensor_new_unique(xb->g, name);
    uint32_t nid = ir_node_new(xb->g, op, name, n_in, in, 1, &out);
    if (n_attr) {
        struct ir_attr *a = ir_arena_alloc(xb->g->arena, n_attr * sizeof *a);
        memcpy(a, attr, n_attr * sizeof *a); /* list payloads are arena- or statically owned */
        xb->g->n[nid].n_attr = n_attr;
        xb->g->n[nid].attr = a;
    }
    return out;
}

uint32_t dx_op2(struct dx_builder *xb, enum ir_op op, uint32_t a, uint32_t b)
{
    uint32_t in[2] = {a, b};
    return dx_node(xb, op, 2, in, 0, NULL, IR_NONE);
}

uint32_t dx_const(struct dx_builder *xb, const char *name, enum ir_dtype dt, int rank,
                  const int64_t *dims, const void *data)
{
    if (xb->err)
        return IR_NONE;
    uint32_t t = ir_tensor_new_unique(xb->g, name);
    if (ir_tensor_set_const(xb->g, t, dt, rank, dims, data) != ST_OK) {
        xb->err = diag_set(xb->d, ST_ERR_NOMEM, "out of memory for constant '%s'", name);
        return IR_NONE;
    }
    return t;
}

uint32_t dx_scalar(struct dx_builder *xb, float v)
{
    char nm[340];
    snprintf(nm, sizeof nm, "%s/const", xb->prefix);
    return dx_const(xb, nm, IR_F32, 0, NULL, &v);
}

uint32_t dx_axes(struct dx_builder *xb, enum ir_op op, uint32_t x, int n, const int64_t *axes)
{
    char nm[340];
    snprintf(nm, sizeof nm, "%s/axes", xb->prefix);
    int64_t dn = n;
    uint32_t in[2] = {x, dx_const(xb, nm, IR_I64, 1, &dn, axes)};
    return dx_node(xb, op, 2, in, 0, NULL, IR_NONE);
}

uint32_t dx_transpose(struct dx_builder *xb, uint32_t x, int rank, const int64_t *perm)
{
    if (xb->err)
        return IR_NONE;
    int64_t *p = ir_arena_alloc(xb->g->arena, ((size_t)rank + 1) * sizeof *p);
    memcpy(p, perm, (size_t)rank * sizeof *p);
    struct ir_attr a = {.name = "perm", .type = IR_ATTR_INTS, .n = rank, .ints = p};
    return dx_node(xb, IR_OP_Transpose, 1, &x, 1, &a, IR_NONE);
}

uint32_t dx_swap_last2(struct dx_builder *xb, uint32_t x, int rank)
{
    int64_t perm[IR_MAX_RANK];
    for (int k = 0; k < rank; k++)
        perm[k] = k;
    perm[rank - 2] = rank - 1;
    perm[rank - 1] = rank - 2;
    return dx_transpose(xb, x, rank, perm);
}

/* ---- factor constants ----------------------------------------------------------- */

enum { LAY_PLAIN, LAY_TR, LAY_KERNEL, LAY_COUNT };

struct dx_ctx {
    struct dx_builder xb;
    struct dx_site *sites;
    int ns;
    const struct dc_factor *fac;
    uint32_t (*ft)[LAY_COUNT][3]; /* per factor and layout: V, U, Δ constants (lazy) */
    float **delta;                /* per factor: Δ = Wr − V·U [d_in, d_out] */
    uint32_t *def_in, *def_val;   /* inputs added with a default value */
    int n_def;
};

static float *transposed(const float *a, int64_t r, int64_t c)
{
    float *t = malloc((size_t)(r * c + 1) * sizeof *t);
    for (int64_t i = 0; t && i < r; i++)
        for (int64_t j = 0; j < c; j++)
            t[j * r + i] = a[i * c + j];
    return t;
}

/* Δ = Wr − V·U in the factor layout, Wr read from the f32 initializer */
static float *factor_delta(struct dx_ctx *cx, int fi, const float *V, const float *U)
{
    const struct dc_factor *F = &cx->fac[fi];
    const struct ir_tensor *W = &cx->xb.g->t[F->weight];
    if (W->dtype != IR_F32 || !W->data) {
        cx->xb.err = diag_set(cx->xb.d, ST_ERR_UNSUPPORTED, "weight '%s' is %s; export writes "
                              "float32 weights only", W->name, ir_dtype_name(W->dtype));
        return NULL;
    }
    int64_t din = F->d_in, dout = F->d_out, C = F->C;
    const float *w = W->data;
    float *D = malloc((size_t)(din * dout + 1) * sizeof *D);
    for (int64_t i = 0; D && i < din; i++)
        for (int64_t o = 0; o < dout; o++) {
            double acc = F->tr ? w[o * din + i] : w[i * dout + o];
            for (int64_t c = 0; c < C; c++)
                acc -= (double)V[i * C + c] * (double)U[c * dout + o];
            D[i * dout + o] = (float)acc;
        }
    return D;
}

/* the three constants of factor fi in layout `lay`: [V, U, Δ] as the site reads
 * them (LAY_TR: Uᵀ, Vᵀ, Δᵀ; LAY_KERNEL: Conv kernels [C, C_in, k..],
 * [C_out, C, 1..], [C_out, C_in, k..]) */
static const uint32_t *factor_consts(struct dx_ctx *cx, const struct dx_site *xs, int lay)
{
    int fi = xs->s->factor;
    uint32_t *t = cx->ft[fi][lay];
    if (t[0] != IR_NONE || cx->xb.err)
        return t;
    const struct dc_factor *F = &cx->fac[fi];
    if (!cx->delta[fi] && !(cx->delta[fi] = factor_delta(cx, fi, xs->V, xs->U))) {
        if (!cx->xb.err)
            cx->xb.err = diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory");
        return t;
    }
    int64_t din = F->d_in, dout = F->d_out, C = F->C;
    float *m[3] = {NULL, NULL, NULL};
    const float *src[3] = {xs->V, xs->U, cx->delta[fi]};
    int64_t dims[3][IR_MAX_RANK] = {{din, C}, {C, dout}, {din, dout}};
    int rank[3] = {2, 2, 2};
    if (lay != LAY_PLAIN) { /* both transposed layouts store Uᵀ/Vᵀ/Δᵀ data */
        m[0] = transposed(xs->U, C, dout);
        m[1] = transposed(xs->V, din, C);
        m[2] = transposed(cx->delta[fi], din, dout);
        src[0] = m[0], src[1] = m[1], src[2] = m[2];
        int64_t td[3][2] = {{dout, C}, {C, din}, {dout, din}};
        for (int k = 0; k < 3; k++)
            dims[k][0] = td[k][0], dims[k][1] = td[k][1];
    }
    if (lay == LAY_KERNEL) { /* V slot: Vᵀ as [C, C_in, k..]; U slot: Uᵀ as [C_out, C, 1..] */
        const struct ir_tensor *W = &cx->xb.g->t[F->weight];
        const float *v = src[1], *u = src[0];
        src[0] = v, src[1] = u;
        rank[0] = rank[1] = rank[2] = W->rank;
        dims[0][0] = C, dims[1][0] = dout, dims[1][1] = C, dims[2][0] = dout;
        for (int k = 1; k < W->rank; k++) {
            dims[0][k] = dims[2][k] = W->dims[k];
            if (k >= 2)
                dims[1][k] = 1;
        }
    }
    static const char *suffix[3] = {"V", "U", "delta"};
    for (int k = 0; k < 3; k++) {
        char nm[340];
        snprintf(nm, sizeof nm, "%s.%s%s", xs->s->name, suffix[k],
                 lay == LAY_TR ? "T" : lay == LAY_KERNEL ? "k" : "");
        if (!src[k] && !cx->xb.err)
            cx->xb.err = diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory");
        else
            t[k] = dx_const(&cx->xb, nm, IR_F32, rank[k], dims[k], src[k]);
    }
    for (int k = 0; k < 3; k++) /* after the loop: the kernel layout swaps the sources */
        free(m[k]);
    return t;
}

static int is_matmul_kind(enum pass_site_kind k)
{
    return k == PASS_SITE_MATMUL || k == PASS_SITE_GEMM || k == PASS_SITE_MATMUL_LEFT;
}

static const uint32_t *site_consts(struct dx_ctx *cx, const struct dx_site *xs)
{
    int lay = xs->s->kind == PASS_SITE_CONV ? LAY_KERNEL : xs->s->transposed ? LAY_TR : LAY_PLAIN;
    return factor_consts(cx, xs, lay);
}

/* ---- masks ------------------------------------------------------------------------ */

/* [1, .., 1, C] (rank pr + 1): broadcasts against [pos.., C]. A default value
 * (`fixed`) keeps the concrete position dims instead of 1: onnxruntime requires
 * an input's initializer to agree with every dim the input declares (a symbolic
 * dim accepts the 1). m NULL: all ones. */
static uint32_t mask_const(struct dx_ctx *cx, const struct dx_site *xs, const float *m,
                           const char *stem, int fixed, int64_t C)
{
    int64_t dims[IR_MAX_RANK], n = C;
    for (int k = 0; k < xs->pr; k++) {
        dims[k] = fixed && xs->pos[k] > 0 ? xs->pos[k] : 1;
        n *= dims[k];
    }
    dims[xs->pr] = C;
    float *ones = NULL;
    if (!m && !(m = ones = malloc((size_t)n * sizeof *ones)))
        return cx->xb.err = diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory"), IR_NONE;
    for (int64_t c = 0; ones && c < n; c++)
        ones[c] = 1.0f;
    char nm[340];
    snprintf(nm, sizeof nm, "%s%s", stem, xs->s->name);
    uint32_t t = dx_const(&cx->xb, nm, IR_F32, xs->pr + 1, dims, m);
    free(ones);
    return t;
}

/* a per-component mask [pos.., C/group] repeated over each component's group
 * columns: MatMul with the constant 0/1 [C/group, C] */
static uint32_t mask_expand(struct dx_ctx *cx, const struct dx_site *xs, uint32_t mask)
{
    int64_t C = xs->s->C, k = C / xs->group, dims[2] = {k, C};
    float *e = calloc((size_t)(k * C), sizeof *e);
    if (!e)
        return cx->xb.err = diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory"), IR_NONE;
    for (int64_t c = 0; c < C; c++)
        e[(c / xs->group) * C + c] = 1.0f;
    char nm[340];
    snprintf(nm, sizeof nm, "mask.expand.%s", xs->s->name);
    uint32_t t = dx_const(&cx->xb, nm, IR_F32, 2, dims, e);
    free(e);
    return dx_op2(&cx->xb, IR_OP_MatMul, mask, t);
}

/* graph input "mask.<site>" [pos.., C] whose default (an initializer of the same
 * name, [1, .., 1, C]) is all ones: an ONNX initializer-backed input needs a
 * concrete shape, and a broadcasting one serves every batch and length. With
 * group > 1 the input is per component ([pos.., C/group]) and expanded here. */
static uint32_t mask_input(struct dx_ctx *cx, const struct dx_site *xs)
{
    struct ir_graph *g = cx->xb.g;
    int64_t C = xs->group > 1 ? xs->s->C / xs->group : xs->s->C;
    char nm[300];
    snprintf(nm, sizeof nm, "mask.%s", xs->s->name);
    uint32_t t = ir_tensor_new_unique(g, nm);
    struct ir_tensor *x = &g->t[t];
    x->dtype = IR_F32;
    x->rank = xs->pr + 1;
    for (int k = 0; k < xs->pr; k++) {
        x->dims[k] = xs->pos[k];
        x->sym[k] = xs->sym[k];
    }
    x->dims[xs->pr] = C;
    x->sym[xs->pr] = -1;
    ir_graph_add_input(g, t);
    uint32_t *ni = realloc(cx->def_in, (size_t)(cx->n_def + 1) * sizeof *ni);
    uint32_t *nv = ni ? realloc(cx->def_val, (size_t)(cx->n_def + 1) * sizeof *nv) : NULL;
    if (ni)
        cx->def_in = ni;
    if (!nv)
        return cx->xb.err = diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory"), IR_NONE;
    cx->def_val = nv;
    cx->def_in[cx->n_def] = t;
    cx->def_val[cx->n_def++] = mask_const(cx, xs, NULL, "mask.default.", 1, C);
    return xs->group > 1 ? mask_expand(cx, xs, t) : t;
}

/* ---- the site rewrite -------------------------------------------------------------- */

/* make the node producing y write o instead (the site node's own output) */
static void adopt_output(struct dx_ctx *cx, uint32_t y, uint32_t o)
{
    if (cx->xb.err)
        return;
    struct ir_graph *g = cx->xb.g;
    uint32_t p = g->t[y].producer;
    g->n[p].out[0] = o;
    g->t[o].producer = p;
    g->t[y].producer = IR_NONE;
}

/* Gemm's epilogue alpha·y + beta·C */
static uint32_t gemm_epilogue(struct dx_ctx *cx, const struct ir_node *n, uint32_t y)
{
    if (n->op != IR_OP_Gemm)
        return y;
    double alpha = ir_attr_float(n, "alpha", 1.0), beta = ir_attr_float(n, "beta", 1.0);
    uint32_t c = n->n_in > 2 ? n->in[2] : IR_NONE;
    struct dx_builder *xb = &cx->xb;
    if (alpha != 1.0)
        y = dx_op2(xb, IR_OP_Mul, y, dx_scalar(xb, (float)alpha));
    if (c != IR_NONE && beta != 0.0)
        y = dx_op2(xb, IR_OP_Add, y, beta == 1.0 ? c : dx_op2(xb, IR_OP_Mul, c,
                                                                dx_scalar(xb, (float)beta)));
    return y;
}

/* rows of activation x: [pos.., d_in] */
static uint32_t site_rows(struct dx_ctx *cx, const struct dx_site *xs, uint32_t x)
{
    return xs->s->act_tr ? dx_swap_last2(&cx->xb, x, xs->act_rank) : x;
}

/* Conv(x, k) with the site node's own attributes (pads, strides, dilations, ..) */
static uint32_t site_conv(struct dx_ctx *cx, const struct dx_site *xs, uint32_t x, uint32_t k)
{
    const struct ir_node *n = &cx->xb.g->n[xs->node];
    uint32_t in[2] = {x, k};
    return dx_node(&cx->xb, IR_OP_Conv, 2, in, n->n_attr, n->attr, IR_NONE);
}

/* a Conv's [N, C, sp..] as [N, sp.., C] (back = 0) or the reverse */
static uint32_t channels_last(struct dx_ctx *cx, uint32_t t, int r, int back)
{
    int64_t perm[IR_MAX_RANK];
    perm[0] = 0;
    for (int k = 1; k < r; k++)
        perm[k] = back ? (k == 1 ? r - 1 : k - 1) : (k == r - 1 ? 1 : k + 1);
    return dx_transpose(&cx->xb, t, r, perm);
}

/* inner activations x·V in the node's layout (Conv: channels first) */
static uint32_t site_h(struct dx_ctx *cx, const struct dx_site *xs, uint32_t x, uint32_t rows)
{
    const uint32_t *f = site_consts(cx, xs);
    switch (xs->s->kind) {
    case PASS_SITE_GATHER: return dx_op2(&cx->xb, IR_OP_Gather, f[0], x);
    case PASS_SITE_CONV: return site_conv(cx, xs, x, f[0]);
    default: return dx_op2(&cx->xb, IR_OP_MatMul, rows, f[0]);
    }
}

static void rewrite_site(struct dx_ctx *cx, const struct dx_site *xs, uint32_t m)
{
    struct dx_builder *xb = &cx->xb;
    struct ir_node n = cx->xb.g->n[xs->node]; /* a copy: adding nodes moves the array */
    uint32_t x = n.in[xs->s->act], o = n.out[0], y;
    snprintf(xb->prefix, sizeof xb->prefix, "%s/factorised", xs->s->name);
    const uint32_t *f = site_consts(cx, xs);
    uint32_t fV = f[0], fU = f[1], fD = f[2]; /* f may move when constants are added */
    (void)fV;
    if (xs->s->kind == PASS_SITE_CONV) { /* Conv1×1(Conv(x, V) ⊙ m, U) + bias + Conv(x, Δ) */
        uint32_t a = dx_op2(xb, IR_OP_Mul, site_h(cx, xs, x, IR_NONE),
                            channels_last(cx, m, xs->pr + 1, 1));
        uint32_t in[3] = {a, fU, n.n_in > 2 ? n.in[2] : IR_NONE};
        y = dx_node(xb, IR_OP_Conv, in[2] != IR_NONE ? 3 : 2, in, 0, NULL, IR_NONE);
        y = dx_op2(xb, IR_OP_Add, y, site_conv(cx, xs, x, fD));
    } else if (xs->s->kind == PASS_SITE_GATHER) { /* (V[idx] ⊙ m)·U + Δ[idx] */
        uint32_t h = dx_op2(xb, IR_OP_Mul, site_h(cx, xs, x, IR_NONE), m);
        y = dx_op2(xb, IR_OP_Add, dx_op2(xb, IR_OP_MatMul, h, fU),
                   dx_op2(xb, IR_OP_Gather, fD, x));
    } else { /* ((rows·V) ⊙ m)·U + rows·Δ, transposed back for W·x, Gemm's epilogue */
        uint32_t rows = site_rows(cx, xs, x);
        uint32_t h = dx_op2(xb, IR_OP_Mul, site_h(cx, xs, x, rows), m);
        y = dx_op2(xb, IR_OP_Add, dx_op2(xb, IR_OP_MatMul, h, fU),
                   dx_op2(xb, IR_OP_MatMul, rows, fD));
        if (xs->s->out_tr)
            y = dx_swap_last2(xb, y, xs->act_rank);
        y = gemm_epilogue(cx, &n, y);
    }
    cx->xb.g->n[xs->node].flags |= IR_N_DEAD;
    adopt_output(cx, y, o);
}

/* ---- the clean forward and the CI function ------------------------------------------- */

static int site_of_node(const struct dx_ctx *cx, uint32_t node)
{
    for (int i = 0; i < cx->ns; i++)
        if (cx->sites[i].node == node)
            return i;
    return -1;
}

/* map[t]: a copy of tensor t computed with every site unmasked, for the t that
 * depend on a site node's output and feed some site's input (others: t itself) */
static int clean_forward(struct dx_ctx *cx, uint32_t *map)
{
    struct ir_graph *g = cx->xb.g;
    uint8_t *need = calloc((size_t)g->nt + 1, 1);
    if (!need)
        return cx->xb.err = diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory");
    for (uint32_t t = 0; t < g->nt; t++)
        map[t] = t;
    for (int i = 0; i < cx->ns; i++)
        need[g->n[cx->sites[i].node].in[cx->sites[i].s->act]] = 1;
    uint32_t nt = g->ntopo, *order = malloc(((size_t)nt + 1) * sizeof *order);
    if (!order) {
        free(need);
        return cx->xb.err = diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory");
    }
    memcpy(order, g->topo, (size_t)nt * sizeof *order);
    for (uint32_t k = nt; k-- > 0;) { /* ancestors of the site inputs, through any output */
        const struct ir_node *n = &g->n[order[k]];
        int any = 0;
        for (uint32_t o = 0; o < n->n_out; o++)
            any |= n->out[o] != IR_NONE && need[n->out[o]];
        if (any)
            for (uint32_t i = 0; i < n->n_in; i++)
                if (n->in[i] != IR_NONE)
                    need[n->in[i]] = 1;
    }
    for (uint32_t k = 0; k < nt && !cx->xb.err; k++) {
        uint32_t id = order[k];
        struct ir_node n = g->n[id];
        int dep = site_of_node(cx, id) >= 0, needed = 0;
        for (uint32_t i = 0; i < n.n_in; i++)
            dep |= n.in[i] != IR_NONE && map[n.in[i]] != n.in[i];
        for (uint32_t o = 0; o < n.n_out; o++)
            needed |= n.out[o] != IR_NONE && need[n.out[o]];
        if (!dep || !needed)
            continue;
        uint32_t in[64], out[16];
        if (n.n_in > 64 || n.n_out > 16)
            return cx->xb.err = diag_set(cx->xb.d, ST_ERR_UNSUPPORTED, "node '%s' has too many "
                                         "operands to copy", n.name);
        for (uint32_t i = 0; i < n.n_in; i++)
            in[i] = n.in[i] == IR_NONE ? IR_NONE : map[n.in[i]];
        for (uint32_t o = 0; o < n.n_out; o++) {
            char nm[400];
            snprintf(nm, sizeof nm, "%s.clean", n.out[o] == IR_NONE ? "unused" : g->t[n.out[o]].name);
            out[o] = n.out[o] == IR_NONE ? IR_NONE : ir_tensor_new_unique(g, nm);
        }
        char nn[400];
        snprintf(nn, sizeof nn, "%s.clean", n.name);
        uint32_t c = ir_node_new(g, n.op, nn, n.n_in, in, n.n_out, out);
        g->n[c].opset = n.opset;
        g->n[c].n_attr = n.n_attr;
        g->n[c].attr = n.attr; /* arena storage, shared read-only */
        for (uint32_t o = 0; o < n.n_out; o++)
            if (n.out[o] != IR_NONE)
                map[n.out[o]] = out[o];
    }
    free(order);
    free(need);
    return cx->xb.err;
}

/* CI values as the output "ci.<site>" and the masks they give */
static int ci_masks(struct dx_ctx *cx, const struct dx_ci *ci, uint32_t *m)
{
    struct ir_graph *g = cx->xb.g;
    struct dx_builder *xb = &cx->xb;
    int ns = cx->ns;
    uint32_t *map = malloc(((size_t)g->nt + 1) * sizeof *map);
    uint32_t *rows = calloc((size_t)ns * 3 + 1, sizeof *rows), *h = rows + ns, *z = h + ns;
    if (!map || !rows) {
        free(map);
        free(rows);
        return xb->err = diag_set(xb->d, ST_ERR_NOMEM, "out of memory");
    }
    clean_forward(cx, map);
    snprintf(xb->prefix, sizeof xb->prefix, "ci");
    for (int i = 0; i < ns && !xb->err; i++) {
        const struct dx_site *xs = &cx->sites[i];
        uint32_t x = map[g->n[xs->node].in[xs->s->act]];
        rows[i] = is_matmul_kind(xs->s->kind) ? site_rows(cx, xs, x) : IR_NONE;
        h[i] = site_h(cx, xs, x, rows[i]);
        if (xs->s->kind == PASS_SITE_CONV)
            h[i] = channels_last(cx, h[i], xs->pr + 1, 0);
    }
    free(map);
    if (!xb->err)
        dx_ci_build(xb, ci, cx->sites, ns, rows, h, z);
    for (int i = 0; i < ns && !xb->err; i++) {
        const struct dx_site *xs = &cx->sites[i];
        char nm[300];
        snprintf(nm, sizeof nm, "ci.%s", xs->s->name);
        uint32_t o = ir_tensor_new_unique(g, nm);
        struct ir_tensor *t = &g->t[o];
        t->dtype = IR_F32;
        t->rank = xs->pr + 1;
        for (int k = 0; k < xs->pr; k++)
            t->dims[k] = xs->pos[k], t->sym[k] = xs->sym[k];
        t->dims[xs->pr] = xs->s->C;
        /* g_lo = clamp(z, 0, 1) (LowerLeakyHard's forward; also the hard sigmoid) */
        uint32_t lo = dx_op2(xb, IR_OP_Max, dx_op2(xb, IR_OP_Min, z[i], dx_scalar(xb, 1.0f)),
                             dx_scalar(xb, 0.0f));
        adopt_output(cx, lo, o);
        ir_graph_add_output(g, o);
        m[i] = o;
        if (ci->threshold >= 0) {
            struct ir_attr to = {.name = "to", .type = IR_ATTR_INT, .i = IR_F32};
            uint32_t gt = dx_op2(xb, IR_OP_Greater, o, dx_scalar(xb, (float)ci->threshold));
            m[i] = dx_node(xb, IR_OP_Cast, 1, &gt, 1, &to, IR_NONE);
        }
    }
    free(rows);
    return xb->err;
}

/* ---- entry ------------------------------------------------------------------------ */

static int finish(struct dx_ctx *cx, uint32_t **defaults)
{
    struct ir_graph *g = cx->xb.g;
    uint32_t *def = malloc(((size_t)g->n_inputs + 1) * sizeof *def);
    if (!def)
        return diag_set(cx->xb.d, ST_ERR_NOMEM, "out of memory");
    for (uint32_t k = 0; k < g->n_inputs; k++) {
        def[k] = IR_NONE;
        for (int j = 0; j < cx->n_def; j++)
            if (cx->def_in[j] == g->inputs[k])
                def[k] = cx->def_val[j];
    }
    *defaults = def;
    struct pass_ctx pc = {0};
    return pass_dce(g, &pc, cx->xb.d); /* a Transpose that fed a weight is dead now */
}

int dx_factorise(struct ir_graph *g, struct dx_site *sites, int ns, const struct dc_factor *fac,
                 const struct dx_ci *ci, uint32_t **defaults, struct diag *d)
{
    int nf = 0;
    for (int i = 0; i < ns; i++)
        nf = sites[i].s->factor + 1 > nf ? sites[i].s->factor + 1 : nf;
    struct dx_ctx cx = {.xb = {.g = g, .d = d}, .sites = sites, .ns = ns, .fac = fac};
    cx.ft = malloc(((size_t)nf + 1) * sizeof *cx.ft);
    cx.delta = calloc((size_t)nf + 1, sizeof *cx.delta);
    uint32_t *m = malloc(((size_t)ns + 1) * sizeof *m);
    *defaults = NULL;
    int st = !cx.ft || !cx.delta || !m ? diag_set(d, ST_ERR_NOMEM, "out of memory") : ST_OK;
    for (int f = 0; !st && f < nf; f++)
        for (int l = 0; l < LAY_COUNT; l++)
            cx.ft[f][l][0] = cx.ft[f][l][1] = cx.ft[f][l][2] = IR_NONE;
    if (!st && !(g->valid & IR_VALID_TOPO))
        st = ir_fill_topo(g, d);
    if (!st && ci)
        st = ci_masks(&cx, ci, m);
    for (int i = 0; !st && i < ns; i++) {
        snprintf(cx.xb.prefix, sizeof cx.xb.prefix, "%s/factorised", sites[i].s->name);
        if (sites[i].mode == DX_MASK_INPUT)
            m[i] = mask_input(&cx, &sites[i]);
        else if (sites[i].mode == DX_MASK_CONST)
            m[i] = mask_const(&cx, &sites[i], sites[i].mask, "mask.", 0, sites[i].s->C);
        else if (!ci)
            st = diag_set(d, ST_ERR_INVALID, "site '%s': CI masks without a CI function",
                          sites[i].s->name);
        if (!st)
            rewrite_site(&cx, &sites[i], m[i]);
        st = cx.xb.err ? cx.xb.err : st;
    }
    if (!st)
        st = finish(&cx, defaults);
    for (int f = 0; cx.delta && f < nf; f++)
        free(cx.delta[f]);
    free(cx.delta);
    free(cx.ft);
    free(cx.def_in);
    free(cx.def_val);
    free(m);
    return st;
}
