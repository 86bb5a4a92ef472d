/* objective_l3d.c — the L3D programs (METHOD §8; the code's choices by default,
 * the paper's behind the config's l3d keys, §11.13).
 * needs: a compiled inference graph whose samples do not interact (row i of every
 *   output depends on row i of the input only) and whose selected float
 *   initializers are read as x·W by MatMul, as Gemm's B or C, added as a bias by Add,
 *   or are the kernel or bias of a Conv with one group.
 * guarantees: a finished program (dc_finish).
 *   init   V_out normalised (§8.5), V_in := V_out (§8.6); one step
 *   train  r_i ~ U{0..B−1}; D = Σ_i D(f(x_i), sg(f(x_{r_i}))); δ = ∂D/∂(each use's
 *          output) by autodiff; A = V_in·G by projection (l3d_project.c); batch
 *          top-k mask (constant); loss; Adam(W) on every piece; V_out renormalised
 *   eval   the train step without the update, with A and the mask as taps */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l3d_impl.h"

#define L3D_EPS_DEN 1e-10 /* the code's Σ_i (‖G_i‖² + 1e-10) */
#define L3D_EPS_NORM 1e-10
/* the batch top-k compares every pair of the n = batch × subnetworks entries ([n, n]
 * floats): at most 8192 entries (about 0.3 GB for the comparison) */
#define L3D_MAX_TOPK_N 8192

static int fail(struct l3d *l, enum status st, const char *fmt, const char *a, const char *b)
{
    return l->cx.b.err = diag_set(l->cx.b.d, st, fmt, a, b);
}

/* ---- which tensors, read how ----------------------------------------------------- */

static int selected(const struct dc_config *c, const struct ir_graph *g, uint32_t t)
{
    const struct ir_tensor *x = &g->t[t];
    if (!(x->flags & IR_T_PARAM) || !x->data || x->dtype != IR_F32 || ir_numel(x) < 1)
        return 0;
    /* without patterns: every weight tensor, but not the scalars a graph keeps as
     * initializers (GELU's √2 and ½ in the X → X² toy): constants, not parameters */
    if (c->n_sites == 0)
        return x->rank > 0;
    for (int i = 0; i < c->n_sites; i++)
        if (fnmatch(c->sites[i].pattern, x->name, 0) == 0)
            return 1;
    return 0;
}

static struct l3d_param *param_of(struct l3d *l, uint32_t w)
{
    for (int i = 0; i < l->np; i++)
        if (l->p[i].w == w)
            return &l->p[i];
    if (l->np == L3D_MAX_PARAMS) {
        fail(l, ST_ERR_UNSUPPORTED, "l3d: more than %s parameter tensors%s", "64", "");
        return NULL;
    }
    const struct ir_tensor *x = &l->cx.g->t[w];
    struct l3d_param *p = &l->p[l->np++];
    memset(p, 0, sizeof *p);
    p->w = w;
    snprintf(p->name, sizeof p->name, "%s", x->name);
    p->rank = x->rank == 1 ? 1 : 2;
    p->nmode = x->rank;
    p->dims[0] = x->dims[0];
    p->dims[1] = x->rank == 1 ? 0 : ir_numel(x) / x->dims[0];
    for (int m = 0; m < x->rank; m++) {
        p->kdims[m] = x->dims[m];
        p->R[m] = x->rank == 1 ? l->o->bias_rank : l->o->rank;
    }
    return p;
}

/* does node n read its input k (tensor W) in a way with a per-sample rule?
 *   MatMul  y = x·W, W second and 2-D, the batch leading
 *   Gemm    y = α x·op(W) + β C: W as B (either transB) or a 1-D C; not transA (the
 *           samples would be A's columns)
 *   Add     y = z + b, b 1-D along the sum's last dim and only broadcast by the Add */
static int readable(const struct l3d *l, const struct ir_node *n, int k)
{
    const struct ir_graph *g = l->cx.g;
    const struct ir_tensor *W = &g->t[n->in[k]], *y = &g->t[n->out[0]];
    if (y->rank < 2 || y->dims[0] != l->B)
        return 0;
    if (n->op == IR_OP_MatMul)
        return k == 1 && W->rank == 2 && g->t[n->in[0]].rank >= 2;
    if (n->op == IR_OP_Gemm && ir_attr_int(n, "transA", 0) == 0)
        return (k == 1 && W->rank == 2) ||
               (k == 2 && W->rank == 1 && y->dims[y->rank - 1] == W->dims[0]);
    if (n->op == IR_OP_Add)
        return W->rank == 1 && y->dims[y->rank - 1] == W->dims[0] &&
               ir_numel(y) == ir_numel(&g->t[n->in[1 - k]]);
    if (n->op == IR_OP_Conv && ir_attr_int(n, "group", 1) == 1) /* groups: no matrix view */
        return (k == 1 && W->rank >= 3 && W->rank <= L3D_MAX_MODES && W->rank == y->rank) ||
               (k == 2 && W->rank == 1 && W->dims[0] == y->dims[1]);
    return 0;
}

/* one read of a selected tensor (readable above); anything else: an error naming it */
static int add_use(struct l3d *l, const struct ir_node *n, int k)
{
    const struct ir_tensor *W = &l->cx.g->t[n->in[k]];
    if (!readable(l, n, k))
        return fail(l, ST_ERR_UNSUPPORTED, "l3d: parameter '%s' is read by a %s node in a way "
                    "pdc has no per-sample gradient rule for (it covers x·W MatMuls, Gemm "
                    "weights and biases, bias Adds, and ungrouped Conv kernels and biases over "
                    "a batch; select tensors with --sites)", W->name, ir_ops[n->op].name);
    /* transB swaps the factors (a Conv's kernel is [c_out, ..]: δ first); alpha scales a
     * matrix's gradient, beta the bias's */
    int gemm = n->op == IR_OP_Gemm, conv = n->op == IR_OP_Conv;
    struct l3d_use u = {n->op == IR_OP_Add ? IR_NONE : n->in[0], n->out[0],
                        conv || (gemm && k == 1 && ir_attr_int(n, "transB", 0) != 0),
                        !gemm ? 1.0 : ir_attr_float(n, k == 1 ? "alpha" : "beta", 1.0),
                        conv ? (uint32_t)(n - l->cx.g->n) + 1 : 0};
    struct l3d_param *p = param_of(l, n->in[k]);
    if (!p)
        return l->cx.b.err;
    if (p->nuses == L3D_MAX_USES)
        return fail(l, ST_ERR_UNSUPPORTED, "l3d: parameter '%s' has more than 8 uses%s", W->name,
                    "");
    p->use[p->nuses++] = u;
    return ST_OK;
}

static int find_params(struct l3d *l)
{
    const struct ir_graph *g = l->cx.g;
    for (uint32_t i = 0; i < l->cx.nfwd && !l->cx.b.err; i++) {
        const struct ir_node *n = &g->n[l->cx.fwd[i]];
        for (uint32_t k = 0; k < n->n_in && !l->cx.b.err; k++)
            if (n->in[k] != IR_NONE && selected(l->cx.cfg, g, n->in[k]))
                add_use(l, n, (int)k);
    }
    if (!l->cx.b.err && l->np == 0)
        fail(l, ST_ERR_INVALID, "l3d: no float initializer of the model matches the site "
             "patterns%s%s", "", "");
    return l->cx.b.err;
}

/* ---- the subnetwork pieces ------------------------------------------------------- */

/* the CP form's fixed core: ones on the superdiagonal of [n, R, .., R] */
static uint32_t cp_core(struct l3d *l, const struct l3d_param *p)
{
    int R = p->R[0], d = p->nmode;
    int64_t dims[1 + L3D_MAX_MODES] = {l->nv}, per = 1, diag = 0;
    for (int m = 0; m < d; m++)
        dims[1 + m] = R, per *= R, diag = diag * R + 1; /* stride of (r, r, .., r) */
    float *v = calloc((size_t)(l->nv * per), sizeof *v);
    if (!v)
        return fail(l, ST_ERR_NOMEM, "out of memory%s%s", "", ""), IR_NONE;
    for (int k = 0; k < l->nv; k++)
        for (int r = 0; r < R; r++)
            v[k * per + r * diag] = 1.0f;
    uint32_t t = bld_const(&l->cx.b, IR_F32, 1 + d, dims, v);
    free(v);
    return t;
}

/* "l3d.<tensor>.<in|out>.<core|f0|f1|..>": V_out ~ N(0, 1)/n_v (§8.6), V_in from the
 * init step. The core [n, R_0, .., R_{d-1}], the factor of mode m [n, R_m, dim_m]. */
static void declare_pieces(struct l3d *l, struct l3d_param *p)
{
    static const char *const role[2] = {"in", "out"};
    int64_t nv = l->nv;
    for (int s = 0; s < L3D_NPIECE; s++)
        p->trained[s] = s == L3D_CORE ? !l->o->cp : s - L3D_F0 < p->nmode;
    for (int r = 0; r < 2; r++)
        for (int s = 0; s < L3D_NPIECE; s++) {
            p->piece[r][s] = IR_NONE;
            if (!p->trained[s]) {
                if (s == L3D_CORE)
                    p->piece[r][s] = cp_core(l, p);
                continue;
            }
            int64_t dims[1 + L3D_MAX_MODES] = {nv};
            int rk = 3, m = s - L3D_F0;
            if (s == L3D_CORE) {
                for (int i = 0; i < p->nmode; i++)
                    dims[1 + i] = p->R[i];
                rk = 1 + p->nmode;
            } else {
                dims[1] = p->R[m];
                dims[2] = p->kdims[m];
            }
            char nm[300];
            if (s == L3D_CORE)
                snprintf(nm, sizeof nm, "l3d.%s.%s.core", p->name, role[r]);
            else
                snprintf(nm, sizeof nm, "l3d.%s.%s.f%d", p->name, role[r], m);
            p->piece[r][s] = dc_state(&l->cx, nm, IR_F32, rk, dims,
                                      r == L3D_OUT ? DC_INIT_NORMAL : DC_INIT_ZERO, 1.0 / nv,
                                      DC_TRAIN_COMPONENT);
        }
}

static int l3d_begin(struct l3d *l, struct ir_graph *g, const struct dc_config *c,
                     struct dc_prog *prog, const char *prefix, struct diag *d)
{
    memset(l, 0, sizeof *l);
    int st = dc_ctx_init(&l->cx, g, c, NULL, 0, NULL, 0, prog, prefix, d);
    if (st)
        return st;
    l->o = &c->l3d;
    l->nv = c->l3d.n_subnets;
    l->B = g->t[l->cx.data].dims[0];
    if (l->B > L3D_MAX_TOPK_N / l->nv) /* B·n_v > the cap, without overflow */
        return l->cx.b.err = diag_set(d, ST_ERR_UNSUPPORTED, "l3d: batch_size %lld × "
                                      "l3d.n_subnetworks %d = %.0f entries; the batch top-k "
                                      "compares every pair of them, and pdc allows at most %d: "
                                      "lower batch_size or n_subnetworks", (long long)l->B,
                                      l->nv, (double)l->B * l->nv, L3D_MAX_TOPK_N);
    l->p = calloc(L3D_MAX_PARAMS, sizeof *l->p);
    if (!l->p)
        return l->cx.b.err = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if ((st = find_params(l)))
        return st;
    for (int i = 0; i < l->np; i++)
        declare_pieces(l, &l->p[i]);
    prog->steps = c->steps;
    return l->cx.b.err;
}

static int l3d_end(struct l3d *l, int st)
{
    if (!st)
        st = l->cx.b.err;
    if (!st)
        st = dc_finish(&l->cx);
    dc_ctx_fini(&l->cx);
    free(l->p);
    return st;
}

/* ---- normalisation of V_out (§8.5) ----------------------------------------------- */

/* pieces[j] = tensor j's V_out pieces; out[j] the normalised ones. Code: s_k = Σ_j ‖v_kj‖_F
 * and every v_kj divided by √s_k; paper: ‖v_k‖ over all tensors divided out. Each of a
 * tensor's np trained pieces takes the factor's 1/np-th power (the tensor is multilinear
 * in them), as the code divides core and factors alike. */
static void normalise(struct l3d *l, uint32_t (*pieces)[L3D_NPIECE], uint32_t (*out)[L3D_NPIECE])
{
    struct ir_builder *b = &l->cx.b;
    static const int64_t ax1[1] = {1};
    uint32_t tot = IR_NONE;
    for (int j = 0; j < l->np; j++) {
        uint32_t v = l3d_materialize_v(b, &l->p[j], pieces[j]);
        uint32_t sq = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, v, v), 1, ax1, 0); /* [n] */
        uint32_t t = l->o->unit_norm ? sq : bld_op1(b, IR_OP_Sqrt, sq);
        tot = tot == IR_NONE ? t : bld_add(b, tot, t);
    }
    uint32_t c = bld_op1(b, IR_OP_Sqrt, tot); /* code: √s_k; paper: ‖v_k‖ */
    for (int j = 0; j < l->np; j++) {
        const struct l3d_param *p = &l->p[j];
        int np = 0;
        for (int s = 0; s < L3D_NPIECE; s++)
            np += p->trained[s];
        uint32_t f = bld_add(b, bld_op2(b, IR_OP_Pow, c, bld_f32(b, 1.0 / np)),
                             bld_f32(b, L3D_EPS_NORM));
        for (int s = 0; s < L3D_NPIECE; s++) {
            out[j][s] = pieces[j][s];
            if (!p->trained[s] || b->err)
                continue;
            int r = b->g->t[pieces[j][s]].rank;
            int64_t dims[1 + L3D_MAX_MODES] = {l->nv, 1, 1, 1, 1, 1};
            out[j][s] = bld_div(b, pieces[j][s], bld_reshape(b, f, r, dims));
        }
    }
}

int dc_build_l3d_init(struct ir_graph *g, const struct dc_config *c, struct dc_prog *prog,
                      struct diag *d)
{
    struct l3d l;
    int st = l3d_begin(&l, g, c, prog, "l3d_init", d);
    prog->steps = 1;
    uint32_t(*pc)[L3D_NPIECE] = calloc(2 * L3D_MAX_PARAMS, sizeof *pc);
    if (!st && !pc)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st) {
        uint32_t(*nx)[L3D_NPIECE] = pc + L3D_MAX_PARAMS;
        for (int j = 0; j < l.np; j++)
            memcpy(pc[j], l.p[j].piece[L3D_OUT], sizeof pc[j]);
        normalise(&l, pc, nx);
        for (int j = 0; j < l.np; j++)
            for (int s = 0; s < L3D_NPIECE; s++)
                if (l.p[j].trained[s]) { /* V_in an exact copy of the normalised V_out */
                    dc_state_next(&l.cx, l.p[j].piece[L3D_OUT][s], nx[j][s]);
                    dc_state_next(&l.cx, l.p[j].piece[L3D_IN][s], nx[j][s]);
                }
    }
    free(pc);
    return l3d_end(&l, st);
}

/* ---- per-sample divergence gradients (§8.2) -------------------------------------- */

/* reference rows r_i = ⌊u_i·B⌋ from a fresh uniform draw, with replacement (r = i occurs) */
static uint32_t reference_index(struct l3d *l)
{
    struct ir_builder *b = &l->cx.b;
    int64_t dims[1] = {l->B};
    uint32_t u = dc_uniform(&l->cx, 1, dims);
    uint32_t r = bld_op1(b, IR_OP_Floor, bld_mul(b, u, bld_f32(b, (double)l->B)));
    uint32_t in[2] = {r, bld_f32(b, (double)(l->B - 1))}; /* u·B may round up to B */
    r = bld_node(b, IR_OP_Min, 2, in, 0, NULL, 1, NULL);
    return bld_cast(b, r, IR_I64);
}

/* Σ_i D(f(x_i), y_{r_i}) over the model's float outputs; y_r constant */
static uint32_t divergence(struct l3d *l, uint32_t idx)
{
    struct ir_builder *b = &l->cx.b;
    struct ir_attr ax = bld_attr_int("axis", -1), ax0 = bld_attr_int("axis", 0);
    uint32_t tot = IR_NONE;
    for (uint32_t k = 0; k < l->cx.nouts && !b->err; k++) {
        uint32_t y = l->cx.outs[k], in[2] = {y, idx}, t;
        uint32_t yr = bld_op1(b, IR_OP_StopGradient, bld_node(b, IR_OP_Gather, 2, in, 1, &ax0, 1, NULL));
        double per = (double)ir_numel(&b->g->t[y]) / (double)l->B; /* n_o */
        if (l->o->divergence == DC_L3D_DIV_CODE) /* MSEVectorLoss: y·(y − y_r)/n_o */
            t = bld_div(b, bld_mul(b, y, bld_sub(b, y, yr)), bld_f32(b, per));
        else if (l->o->divergence == DC_L3D_DIV_MSE) {
            uint32_t e = bld_sub(b, y, yr);
            t = bld_mul(b, e, e);
        } else { /* KL(softmax(y_r) ‖ softmax(y)) over the last axis */
            uint32_t lp = bld_node(b, IR_OP_LogSoftmax, 1, &yr, 1, &ax, 1, NULL);
            uint32_t lq = bld_node(b, IR_OP_LogSoftmax, 1, &y, 1, &ax, 1, NULL);
            t = bld_mul(b, bld_op1(b, IR_OP_Exp, lp), bld_sub(b, lp, lq));
        }
        uint32_t s = bld_reduce(b, IR_OP_ReduceSum, t, 0, NULL, 0);
        tot = tot == IR_NONE ? s : bld_add(b, tot, s);
    }
    return tot;
}

static uint32_t concat1(struct ir_builder *b, int n, const uint32_t *t)
{
    if (n == 1)
        return t[0];
    struct ir_attr ax = bld_attr_int("axis", 1);
    return bld_node(b, IR_OP_Concat, (uint32_t)n, t, 1, &ax, 1, NULL);
}

/* a Conv's [B, C, spatial..] as [B, spatial.., C] */
static uint32_t channels_last(struct ir_builder *b, uint32_t t)
{
    int r = b->err ? 0 : b->g->t[t].rank;
    int64_t perm[IR_MAX_RANK] = {0};
    for (int i = 1; i < r; i++)
        perm[i] = i + 1 < r ? i + 1 : 1;
    return r ? bld_transpose(b, t, r, perm) : IR_NONE;
}

/* the patches a Conv kernel W [c_out, c_in, k..] meets, [B, spatial.., c_in·∏k]: the
 * node's own Conv (pads, strides, dilations) with a one-hot kernel E [c_in·∏k, c_in, k..],
 * E[e, e] = 1 in W's row-major order of (c_in, k..), so patch element e is what weight
 * (c_out, e) multiplies. */
static uint32_t conv_patches(struct l3d *l, const struct l3d_param *p, const struct l3d_use *u)
{
    struct ir_builder *b = &l->cx.b;
    int64_t q = p->dims[1], dims[L3D_MAX_MODES] = {q};
    for (int m = 1; m < p->nmode; m++)
        dims[m] = p->kdims[m];
    float *e = calloc((size_t)(q * q), sizeof *e);
    if (!e)
        return fail(l, ST_ERR_NOMEM, "out of memory%s%s", "", ""), IR_NONE;
    for (int64_t i = 0; i < q; i++)
        e[i * q + i] = 1.0f;
    uint32_t E = bld_const(b, IR_F32, p->nmode, dims, e);
    free(e);
    const struct ir_node *n = &b->g->n[u->conv - 1];
    uint32_t na = n->n_attr, in[2] = {u->act, E};
    const struct ir_attr *at = n->attr; /* arena storage: stays put while nodes are added */
    return channels_last(b, bld_node(b, IR_OP_Conv, 2, in, na, at, 1, NULL));
}

/* L, R2 per tensor from δ of each use (the samples do not mix, so ∂ΣD/∂y_i = ∂D_i/∂y_i) */
static int per_sample_factors(struct l3d *l)
{
    struct ir_builder *b = &l->cx.b;
    uint32_t D = divergence(l, reference_index(l));
    uint32_t wrt[L3D_MAX_PARAMS * L3D_MAX_USES], grad[L3D_MAX_PARAMS * L3D_MAX_USES];
    uint32_t n = 0;
    for (int j = 0; j < l->np; j++)
        for (int u = 0; u < l->p[j].nuses; u++)
            wrt[n++] = l->p[j].use[u].out;
    if (b->err || (b->err = pass_autodiff(b->g, D, n, wrt, grad, b->d)))
        return b->err;
    n = 0;
    for (int j = 0; j < l->np; j++) {
        struct l3d_param *p = &l->p[j];
        uint32_t Ls[L3D_MAX_USES], Rs[L3D_MAX_USES];
        int64_t q = p->rank == 2 ? p->dims[1] : p->dims[0];
        static const int64_t ax1[1] = {1};
        for (int u = 0; u < p->nuses; u++, n++) {
            const struct l3d_use *us = &p->use[u];
            uint32_t dl = us->scale == 1.0 ? grad[n] : bld_mul(b, grad[n], bld_f32(b, us->scale));
            if (us->conv)
                dl = channels_last(b, dl);
            if (p->rank == 1) {
                Rs[u] = bld_reduce(b, IR_OP_ReduceSum, l3d_rows3(b, dl, l->B, q), 1, ax1, 0);
                continue;
            }
            uint32_t x = us->conv ? conv_patches(l, p, us) : us->act;
            uint32_t first = us->swap ? dl : x, second = us->swap ? x : dl;
            Ls[u] = l3d_rows3(b, first, l->B, p->dims[0]);
            Rs[u] = l3d_rows3(b, second, l->B, p->dims[1]);
        }
        if (p->rank == 2) {
            p->L = concat1(b, p->nuses, Ls);
            p->R2 = concat1(b, p->nuses, Rs);
        } else {
            p->R2 = Rs[0];
            for (int u = 1; u < p->nuses; u++)
                p->R2 = bld_add(b, p->R2, Rs[u]);
        }
    }
    return b->err;
}

/* ---- batch top-k and the reconstruction loss (§8.4, §8.5) ------------------------ */

/* keep entry e of |A| when at most K entries are strictly larger (K = DC_SC_TOPK):
 * the code's "τ = sorted_desc(|A|)[K], keep |A| ≥ τ" without a sort. A constant. */
static uint32_t topk_mask(struct l3d *l, uint32_t A)
{
    struct ir_builder *b = &l->cx.b;
    int64_t n = l->B * l->nv, col[2] = {n, 1}, row[2] = {1, n}, ad[2] = {l->B, l->nv};
    static const int64_t ax1[1] = {1};
    uint32_t a = bld_op1(b, IR_OP_StopGradient, bld_op1(b, IR_OP_Abs, A));
    uint32_t gt = bld_cast(b, bld_op2(b, IR_OP_Greater, bld_reshape(b, a, 2, row),
                                      bld_reshape(b, a, 2, col)), IR_F32);
    uint32_t cnt = bld_reduce(b, IR_OP_ReduceSum, gt, 1, ax1, 0);
    uint32_t keep = bld_cast(b, bld_op2(b, IR_OP_LessOrEqual, cnt, dc_scalar(&l->cx, DC_SC_TOPK)),
                             IR_F32);
    return bld_reshape(b, keep, 2, ad);
}

struct l3d_terms {
    uint32_t A, keep, num, g2; /* [B, n], [B, n], ‖G_i − Ĝ_i‖² [B], ‖G_i‖² [B] */
};

static uint32_t sum_terms(struct ir_builder *b, uint32_t acc, uint32_t t)
{
    return acc == IR_NONE ? t : bld_add(b, acc, t);
}

/* ‖G − Ĝ‖² = ‖G‖² − 2 Σ_k Ã_k ⟨G, v_k⟩ + Ãᵀ Gram Ã, every piece by projection */
static void terms_projected(struct l3d *l, struct l3d_terms *t)
{
    struct ir_builder *b = &l->cx.b;
    static const int64_t ax1[1] = {1}, sw[2] = {1, 0};
    uint32_t A = IR_NONE, P = IR_NONE, g2 = IR_NONE, gram = IR_NONE;
    for (int j = 0; j < l->np; j++) {
        const struct l3d_param *p = &l->p[j];
        A = sum_terms(b, A, l3d_project(b, p, p->piece[L3D_IN]));
        P = sum_terms(b, P, l3d_project(b, p, p->piece[L3D_OUT]));
        g2 = sum_terms(b, g2, l3d_grad_sqnorm(b, p));
        uint32_t v = l3d_materialize_v(b, p, p->piece[L3D_OUT]);
        gram = sum_terms(b, gram, bld_matmul(b, v, bld_transpose(b, v, 2, sw)));
    }
    t->A = A;
    t->keep = topk_mask(l, A);
    uint32_t At = bld_mul(b, A, t->keep);
    uint32_t cross = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, At, P), 1, ax1, 0);
    uint32_t quad = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, bld_matmul(b, At, gram), At), 1,
                               ax1, 0);
    t->g2 = g2;
    t->num = bld_add(b, bld_sub(b, g2, bld_mul(b, cross, bld_f32(b, 2.0))), quad);
}

/* the oracle: G [B, n_w] and Ĝ = Ã·V_out built and subtracted */
static void terms_materialized(struct l3d *l, struct l3d_terms *t)
{
    struct ir_builder *b = &l->cx.b;
    static const int64_t ax1[1] = {1}, sw[2] = {1, 0};
    uint32_t G[L3D_MAX_PARAMS], Vi[L3D_MAX_PARAMS], Vo[L3D_MAX_PARAMS];
    for (int j = 0; j < l->np; j++) {
        G[j] = l3d_materialize_grad(b, &l->p[j]);
        Vi[j] = l3d_materialize_v(b, &l->p[j], l->p[j].piece[L3D_IN]);
        Vo[j] = l3d_materialize_v(b, &l->p[j], l->p[j].piece[L3D_OUT]);
    }
    uint32_t g = concat1(b, l->np, G), vi = concat1(b, l->np, Vi), vo = concat1(b, l->np, Vo);
    t->A = bld_matmul(b, g, bld_transpose(b, vi, 2, sw));
    t->keep = topk_mask(l, t->A);
    uint32_t e = bld_sub(b, g, bld_matmul(b, bld_mul(b, t->A, t->keep), vo));
    t->num = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, e, e), 1, ax1, 0);
    t->g2 = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, g, g), 1, ax1, 0);
}

/* metrics: both loss definitions; returns the one the config trains on */
static uint32_t l3d_loss(struct l3d *l, const struct l3d_terms *t)
{
    struct ir_builder *b = &l->cx.b;
    uint32_t sq = bld_div(b, bld_reduce(b, IR_OP_ReduceSum, t->num, 0, NULL, 0),
                          bld_add(b, bld_reduce(b, IR_OP_ReduceSum, t->g2, 0, NULL, 0),
                                  bld_f32(b, L3D_EPS_DEN * (double)l->B)));
    /* per sample ‖G−Ĝ‖/‖G‖; the projected ‖·‖² may dip below 0 by rounding. The epsilons
     * make a zero gradient (r_i = i under the MSE divergence) count as reconstructed. */
    uint32_t in[2] = {t->num, bld_f32(b, 0.0)};
    uint32_t num = bld_node(b, IR_OP_Max, 2, in, 0, NULL, 1, NULL);
    uint32_t rel = bld_div(b, bld_op1(b, IR_OP_Sqrt, bld_add(b, num, bld_f32(b, 1e-20))),
                           bld_add(b, bld_op1(b, IR_OP_Sqrt, t->g2), bld_f32(b, 1e-6)));
    rel = bld_reduce(b, IR_OP_ReduceMean, rel, 0, NULL, 0);
    uint32_t loss = l->o->loss == DC_L3D_LOSS_PAPER ? rel : sq;
    dc_metric(&l->cx, "loss/L3DReconLoss", loss);
    dc_metric(&l->cx, "l3d/recon_sq", sq);
    dc_metric(&l->cx, "l3d/recon_rel", rel);
    dc_metric(&l->cx, "l3d/kept", bld_reduce(b, IR_OP_ReduceMean, t->keep, 0, NULL, 0));
    return loss;
}

static int build_step(struct l3d *l, struct dc_prog *prog, int update)
{
    const struct dc_l3d *o = l->o;
    struct l3d_terms t;
    if (per_sample_factors(l))
        return l->cx.b.err;
    if (o->materialize)
        terms_materialized(l, &t);
    else
        terms_projected(l, &t);
    prog->loss = l3d_loss(l, &t);
    dc_tap(&l->cx, "l3d.A", t.A);
    dc_tap(&l->cx, "l3d.keep", t.keep);
    prog->topk.frac = o->top_k;
    prog->topk.n = l->B * l->nv;
    prog->topk.exact = o->topk_exact;
    if (!update)
        return l->cx.b.err;
    prog->topk.warm_steps = o->warm_start_epochs >= 0
                                ? (o->warm_start_epochs + 1) * o->steps_per_epoch : 0;
    /* lr × decay every lr_decay_epochs epochs (torch StepLR stepped per epoch) */
    prog->lr = (struct dc_schedule_cfg){l->cx.cfg->lr.start_val,
                                        (double)(o->lr_decay_epochs * o->steps_per_epoch),
                                        o->lr_decay, DC_SCHED_STEP};
    if (dc_adamw(&l->cx, prog->loss, o->weight_decay, 0.0, "adam"))
        return l->cx.b.err;
    uint32_t(*pc)[L3D_NPIECE] = calloc(2 * L3D_MAX_PARAMS, sizeof *pc);
    if (!pc)
        return l->cx.b.err = diag_set(l->cx.b.d, ST_ERR_NOMEM, "out of memory");
    for (int j = 0; j < l->np; j++) /* renormalise the updated V_out */
        for (int s = 0; s < L3D_NPIECE; s++) {
            pc[j][s] = l->p[j].piece[L3D_OUT][s];
            for (int i = 0; l->p[j].trained[s] && i < prog->n_st; i++)
                if (prog->st[i].t == pc[j][s])
                    pc[j][s] = prog->st[i].next;
        }
    normalise(l, pc, pc + L3D_MAX_PARAMS);
    for (int j = 0; j < l->np; j++)
        for (int s = 0; s < L3D_NPIECE; s++)
            if (l->p[j].trained[s])
                dc_state_next(&l->cx, l->p[j].piece[L3D_OUT][s], pc[L3D_MAX_PARAMS + j][s]);
    free(pc);
    return l->cx.b.err;
}

int dc_build_l3d_train(struct ir_graph *g, const struct dc_config *c, struct dc_prog *prog,
                       struct diag *d)
{
    struct l3d l;
    int st = l3d_begin(&l, g, c, prog, "l3d", d);
    if (!st)
        st = build_step(&l, prog, 1);
    return l3d_end(&l, st);
}

int dc_build_l3d_eval(struct ir_graph *g, const struct dc_config *c, struct dc_prog *prog,
                      struct diag *d)
{
    struct l3d l;
    int st = l3d_begin(&l, g, c, prog, "l3d_eval", d);
    if (!st)
        st = build_step(&l, prog, 0);
    return l3d_end(&l, st);
}
