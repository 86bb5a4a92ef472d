/* ci_fn.c — causal-importance functions as IR subgraphs (METHOD.md §2).
 * needs: dc_factors (the mlp kind reads h = x·V).  guarantees: every site has
 * z [pos.., C] (dc_mask_dims) and its two squashings: g_lo = σ_lower(z) (masks,
 * L0) and g_up = σ_upper(z) (importance minimality). Every kind sees one row per
 * position (flattened: [B, T, d] → [B·T, d]); Gather and Conv sites take only
 * the per-component mlp, on their inner activations h (V[idx]; Conv(x, V)).
 *
 * Per-component MLPs run as batched matmuls in a [C, N, h] layout: one matmul
 * per layer for all components, weights [C, h_in, h_out], biases [C, h_out].
 * Init (reference ParallelLinear / Linear): N(0, gain²/h_in), gain √2 for hidden
 * layers (GELU follows) and 1 for the output layer; biases zero.
 *
 * The global kinds read all sites at once, concatenated in site-name order (the
 * reference's): global_shared_mlp here, global_shared_transformer in
 * ci_fn_transformer.c; both use dc_ci_global_rows / dc_ci_global_split. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decomp_impl.h"

/* one layer on a [C, N, h_in] (per-component) or [N, h_in] (shared) activation */
static uint32_t layer(struct dc_ctx *cx, const char *who, int k, uint32_t a, int percomp,
                      int64_t C, int64_t hin, int64_t hout, int last)
{
    struct ir_builder *b = &cx->b;
    char nm[320];
    double std = (last ? 1.0 : sqrt(2.0)) / sqrt((double)hin);
    snprintf(nm, sizeof nm, "ci.%s.W%d", who, k);
    int64_t wd[3] = {C, hin, hout}, bd[2] = {C, hout};
    uint32_t W = percomp ? dc_state(cx, nm, IR_F32, 3, wd, DC_INIT_NORMAL, std, DC_TRAIN_CI)
                         : dc_state(cx, nm, IR_F32, 2, wd + 1, DC_INIT_NORMAL, std, DC_TRAIN_CI);
    snprintf(nm, sizeof nm, "ci.%s.b%d", who, k);
    uint32_t B = percomp ? dc_state(cx, nm, IR_F32, 2, bd, DC_INIT_ZERO, 0, DC_TRAIN_CI)
                         : dc_state(cx, nm, IR_F32, 1, bd + 1, DC_INIT_ZERO, 0, DC_TRAIN_CI);
    if (percomp) { /* bias [C, h] broadcasts over N as [C, 1, h] */
        int64_t one = 1;
        uint32_t in[2] = {B, bld_i64s(b, 1, &one)};
        B = bld_node(b, IR_OP_Unsqueeze, 2, in, 0, NULL, 1, NULL);
    }
    uint32_t y = bld_add(b, bld_matmul(b, a, W), B);
    return last ? y : bld_op1(b, IR_OP_Gelu, y);
}

/* hidden stack after the first layer; returns the [.., 1] or [.., C] output */
static uint32_t mlp_stack(struct dc_ctx *cx, const char *who, uint32_t a, int percomp, int64_t C,
                          int64_t in_dim, int64_t out_dim)
{
    const struct dc_config *c = cx->cfg;
    int64_t hin = in_dim;
    for (int k = 0; k <= c->n_ci_hidden; k++) {
        int last = k == c->n_ci_hidden;
        int64_t hout = last ? out_dim : c->ci_fn_hidden_dims[k];
        a = layer(cx, who, k, a, percomp, C, hin, hout, last);
        hin = hout;
    }
    return a;
}

static uint32_t flatten_rows(struct dc_ctx *cx, uint32_t x, int64_t *N)
{
    *N = 0;
    if (x == IR_NONE || cx->b.err)
        return IR_NONE;
    const struct ir_tensor *t = &cx->g->t[x];
    int64_t n = 1, last = t->dims[t->rank - 1];
    for (int i = 0; i < t->rank - 1; i++)
        n *= t->dims[i];
    *N = n;
    int64_t dims[2] = {n, last};
    return t->rank == 2 ? x : bld_reshape(&cx->b, x, 2, dims);
}

/* [C, N, 1] → [.., C] shaped like the site's masks */
static uint32_t from_percomp(struct dc_ctx *cx, int i, uint32_t a, int64_t C, int64_t N)
{
    struct ir_builder *b = &cx->b;
    int64_t cn[2] = {C, N}, swap[2] = {1, 0}, md[IR_MAX_RANK];
    int r;
    uint32_t z = bld_transpose(b, bld_reshape(b, a, 2, cn), 2, swap); /* [N, C] */
    dc_mask_dims(cx, i, C, &r, md);
    return r == 2 ? z : bld_reshape(b, z, r, md);
}

static const char *ci_name(enum dc_ci_fn k)
{
    switch (k) {
    case DC_CI_MLP: return "mlp";
    case DC_CI_VECTOR_MLP: return "vector_mlp";
    case DC_CI_SHARED_MLP: return "shared_mlp";
    case DC_CI_GLOBAL_SHARED_MLP: return "global_shared_mlp";
    case DC_CI_GLOBAL_SHARED_TRANSFORMER: return "global_shared_transformer";
    }
    return "?";
}

/* Only matmul sites have per-position input rows. An embedding's rows are
 * one-hot (the reference allows only the per-component mlp CI for embeddings)
 * and a Conv's are its input patches (im2col, not built): both take `mlp`. */
static int ci_kind_ok(struct dc_ctx *cx, int i)
{
    const struct dc_site *s = &cx->sites[i];
    if (cx->cfg->ci_fn_type == DC_CI_MLP ||
        (s->kind != PASS_SITE_GATHER && s->kind != PASS_SITE_CONV))
        return 1;
    cx->b.err = diag_set(cx->b.d, ST_ERR_UNSUPPORTED,
                         "site '%s' (%s): ci_fn_type %s is not supported for %s sites, only mlp "
                         "(%s); use ci_fn_type mlp or leave the site out with the site patterns",
                         s->name, pass_site_kind_name(s->kind), ci_name(cx->cfg->ci_fn_type),
                         s->kind == PASS_SITE_GATHER ? "embedding" : "Conv",
                         s->kind == PASS_SITE_GATHER
                             ? "its input rows are one-hot; the reference allows only mlp"
                             : "its per-position input is a patch that would need im2col");
    return 0;
}

static uint32_t ci_layerwise(struct dc_ctx *cx, int i)
{
    struct ir_builder *b = &cx->b;
    const struct dc_site *s = &cx->sites[i];
    int64_t C = s->C, N, md[IR_MAX_RANK];
    int r;
    if (!ci_kind_ok(cx, i))
        return IR_NONE;
    if (cx->cfg->ci_fn_type == DC_CI_MLP) { /* scalar MLP per component on h_c = x·v_c */
        int64_t perm[2] = {1, 0}, cn1[3] = {C, 0, 1};
        uint32_t h = flatten_rows(cx, dc_site_acts(cx, i), &N); /* [N, C] */
        cn1[1] = N;
        h = bld_reshape(b, bld_transpose(b, h, 2, perm), 3, cn1); /* [C, N, 1] */
        return from_percomp(cx, i, mlp_stack(cx, s->name, h, 1, C, 1, 1), C, N);
    }
    uint32_t x = flatten_rows(cx, dc_site_rows(cx, i), &N); /* [N, d_in] */
    switch (cx->cfg->ci_fn_type) {
    case DC_CI_VECTOR_MLP: /* per-component MLP on the full input: [N,d] @ [C,d,h] → [C,N,h] */
        return from_percomp(cx, i, mlp_stack(cx, s->name, x, 1, C, s->d_in, 1), C, N);
    case DC_CI_SHARED_MLP: {
        uint32_t z = mlp_stack(cx, s->name, x, 0, C, s->d_in, C); /* [N, C] */
        dc_mask_dims(cx, i, C, &r, md);
        return r == 2 ? z : bld_reshape(b, z, r, md);
    }
    case DC_CI_MLP:
    case DC_CI_GLOBAL_SHARED_MLP:
    case DC_CI_GLOBAL_SHARED_TRANSFORMER:
        break;
    }
    b->err = diag_set(b->d, ST_ERR_INVALID, "internal: layerwise CI for a global CI type");
    return IR_NONE;
}


void dc_name_order(const char *const *names, int n, int *order)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: stable, and n is small */
        for (int k = i; k > 0 && strcmp(names[order[k - 1]], names[order[k]]) > 0; k--) {
            int t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
}
int dc_ci_global_rows(struct dc_ctx *cx, int *order, uint32_t *rows)
{
    struct ir_builder *b = &cx->b;
    int n = cx->ns;
    if (n > DC_MAX_GLOBAL_SITES)
        return b->err = diag_set(b->d, ST_ERR_UNSUPPORTED,
                                 "%d sites: a global CI function takes at most %d", n,
                                 DC_MAX_GLOBAL_SITES);
    const char *names[DC_MAX_GLOBAL_SITES] = {0};
    for (int i = 0; i < n; i++) {
        if (!ci_kind_ok(cx, i))
            return b->err;
        names[i] = cx->sites[i].name;
    }
    dc_name_order(names, n, order);
    int64_t N = -1;
    for (int k = 0; k < n && !b->err; k++) {
        int64_t Nk;
        rows[k] = flatten_rows(cx, dc_site_rows(cx, order[k]), &Nk);
        if (N >= 0 && Nk != N)
            return b->err = diag_set(b->d, ST_ERR_UNSUPPORTED, "global CI function: sites see "
                                     "different numbers of positions");
        N = Nk;
    }
    return b->err;
}

int dc_ci_global_split(struct dc_ctx *cx, const int *order, uint32_t z)
{
    struct ir_builder *b = &cx->b;
    int n = cx->ns;
    int64_t split[DC_MAX_GLOBAL_SITES];
    uint32_t parts[DC_MAX_GLOBAL_SITES];
    for (int k = 0; k < n; k++)
        split[k] = cx->sites[order[k]].C;
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t in[2] = {z, bld_i64s(b, n, split)};
    if (n == 1)
        parts[0] = z;
    else
        bld_node(b, IR_OP_Split, 2, in, 1, &ax, (uint32_t)n, parts);
    for (int k = 0; k < n && !b->err; k++) {
        int i = order[k], r;
        int64_t md[IR_MAX_RANK];
        dc_mask_dims(cx, i, cx->sites[i].C, &r, md);
        cx->s[i].z = r == 2 ? parts[k] : bld_reshape(b, parts[k], r, md);
    }
    return b->err;
}

/* one MLP over the concatenated site inputs (sites in name order), split back */
static int ci_global(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    int order[DC_MAX_GLOBAL_SITES], n = cx->ns;
    uint32_t xs[DC_MAX_GLOBAL_SITES];
    if (dc_ci_global_rows(cx, order, xs))
        return b->err;
    int64_t din = 0, ctot = 0;
    for (int k = 0; k < n; k++) {
        din += cx->sites[order[k]].d_in;
        ctot += cx->sites[order[k]].C;
    }
    struct ir_attr ax = bld_attr_int("axis", -1);
    uint32_t cat = n == 1 ? xs[0] : bld_node(b, IR_OP_Concat, (uint32_t)n, xs, 1, &ax, 1, NULL);
    return dc_ci_global_split(cx, order, mlp_stack(cx, "global", cat, 0, ctot, din, ctot));
}

int dc_ci_fn(struct dc_ctx *cx)
{
    struct ir_builder *b = &cx->b;
    if (cx->cfg->ci_fn_type == DC_CI_GLOBAL_SHARED_MLP) {
        if (ci_global(cx))
            return b->err;
    } else if (cx->cfg->ci_fn_type == DC_CI_GLOBAL_SHARED_TRANSFORMER) {
        if (dc_ci_transformer(cx))
            return b->err;
    } else {
        for (int i = 0; i < cx->ns && !b->err; i++)
            cx->s[i].z = ci_layerwise(cx, i);
    }
    for (int i = 0; i < cx->ns && !b->err; i++) {
        uint32_t z = cx->s[i].z;
        if (cx->cfg->sigmoid_type == DC_SIG_LEAKY_HARD) {
            cx->s[i].g_lo = bld_op1(b, IR_OP_LowerLeakyHard, z);
            cx->s[i].g_up = bld_op1(b, IR_OP_UpperLeakyHard, z);
        } else {
            uint32_t in[3] = {z, bld_f32(b, 0), bld_f32(b, 1)};
            cx->s[i].g_lo = cx->s[i].g_up = bld_node(b, IR_OP_Clip, 3, in, 0, NULL, 1, NULL);
        }
    }
    return b->err;
}
