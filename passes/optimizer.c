/* optimizer.c — AdamW as graph ops (METHOD.md §5.2), with an optional
 * global-norm clip of the component gradients.
 * needs: a scalar loss; trainable states registered with dc_state.
 * guarantees: every trainable state, and its two moment states, has a `next`.
 * Update (PyTorch AdamW, t the 1-based step, bc1 = 1 − β1^t, bc2 = √(1 − β2^t)):
 *   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p·(1 − lr·wd) − (lr / bc1) · m / (√v / bc2 + ε)                        */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "decomp_impl.h"

#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8

/* scale = min(1, clip / (‖g‖ + 1e-6)) over the component gradients (torch's clip_grad_norm_) */
static uint32_t clip_scale(struct dc_ctx *cx, const uint32_t *grads, const int *which, int n,
                           double clip)
{
    struct ir_builder *b = &cx->b;
    uint32_t sq = IR_NONE;
    for (int i = 0; i < n; i++) {
        if (cx->prog->st[which[i]].trainable != DC_TRAIN_COMPONENT)
            continue;
        uint32_t s = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, grads[i], grads[i]), 0, NULL, 0);
        sq = sq == IR_NONE ? s : bld_add(b, sq, s);
    }
    if (sq == IR_NONE)
        return IR_NONE;
    uint32_t norm = bld_op1(b, IR_OP_Sqrt, sq);
    dc_metric(cx, "grad_norm/components", norm);
    uint32_t r = bld_div(b, bld_f32(b, clip), bld_add(b, norm, bld_f32(b, 1e-6)));
    uint32_t in[2] = {r, bld_f32(b, 1.0)};
    return bld_node(b, IR_OP_Min, 2, in, 0, NULL, 1, NULL);
}

static void adamw_one(struct dc_ctx *cx, const char *prefix, int si, uint32_t g, double wd)
{
    struct ir_builder *b = &cx->b;
    const struct dc_state *s = &cx->prog->st[si];
    uint32_t p = s->t;
    const struct ir_tensor *pt = &cx->g->t[p];
    int64_t dims[IR_MAX_RANK];
    for (int k = 0; k < pt->rank; k++)
        dims[k] = pt->dims[k];
    int rank = pt->rank;
    char nm[300];
    char pname[256];
    snprintf(pname, sizeof pname, "%s", s->name); /* s moves when states are added */
    snprintf(nm, sizeof nm, "%s.m.%s", prefix, pname);
    uint32_t m = dc_state(cx, nm, IR_F32, rank, dims, DC_INIT_ZERO, 0, DC_TRAIN_NO);
    snprintf(nm, sizeof nm, "%s.v.%s", prefix, pname);
    uint32_t v = dc_state(cx, nm, IR_F32, rank, dims, DC_INIT_ZERO, 0, DC_TRAIN_NO);
    uint32_t m1 = bld_add(b, bld_mul(b, m, bld_f32(b, ADAM_BETA1)), bld_mul(b, g, bld_f32(b, 1 - ADAM_BETA1)));
    uint32_t v1 = bld_add(b, bld_mul(b, v, bld_f32(b, ADAM_BETA2)),
                          bld_mul(b, bld_mul(b, g, g), bld_f32(b, 1 - ADAM_BETA2)));
    uint32_t lr = dc_scalar(cx, DC_SC_LR);
    uint32_t denom = bld_add(b, bld_div(b, bld_op1(b, IR_OP_Sqrt, v1), dc_scalar(cx, DC_SC_BC2)),
                             bld_f32(b, ADAM_EPS));
    uint32_t step = bld_div(b, lr, dc_scalar(cx, DC_SC_BC1));
    uint32_t p1 = p;
    if (wd != 0.0) /* decoupled weight decay, applied before the Adam step as torch does */
        p1 = bld_mul(b, p, bld_sub(b, bld_f32(b, 1.0), bld_mul(b, lr, bld_f32(b, wd))));
    p1 = bld_sub(b, p1, bld_mul(b, step, bld_div(b, m1, denom)));
    dc_state_next(cx, p, p1);
    dc_state_next(cx, m, m1);
    dc_state_next(cx, v, v1);
}

int dc_adamw(struct dc_ctx *cx, uint32_t loss, double wd, double clip, const char *prefix)
{
    return dc_adamw_with(cx, loss, wd, clip, prefix, 0, NULL, NULL);
}

int dc_adamw_with(struct dc_ctx *cx, uint32_t loss, double wd, double clip, const char *prefix,
                  int n_extra, const uint32_t *extra, uint32_t *extra_grad)
{
    struct ir_builder *b = &cx->b;
    if (b->err)
        return b->err;
    struct dc_prog *p = cx->prog;
    int n = 0;
    size_t cap = (size_t)p->n_st + (size_t)n_extra + 1;
    int *which = malloc(cap * sizeof *which);
    uint32_t *params = malloc(cap * sizeof *params);
    uint32_t *grads = malloc(cap * sizeof *grads);
    if (!which || !params || !grads) {
        free(which); free(params); free(grads);
        return b->err = diag_set(b->d, ST_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < p->n_st; i++)
        if (p->st[i].trainable != DC_TRAIN_NO) {
            which[n] = i;
            params[n++] = p->st[i].t;
        }
    for (int k = 0; k < n_extra; k++) /* after the parameters: `which` indexes those only */
        params[n + k] = extra[k];
    int st = dc_grad(cx, loss, (uint32_t)(n + n_extra), params, grads);
    for (int k = 0; k < n_extra && !st; k++)
        extra_grad[k] = grads[n + k];
    p->beta1 = ADAM_BETA1;
    p->beta2 = ADAM_BETA2;
    uint32_t scale = clip > 0 && !b->err ? clip_scale(cx, grads, which, n, clip) : IR_NONE;
    for (int i = 0; i < n && !b->err; i++) {
        uint32_t g = grads[i];
        p->st[which[i]].grad = g; /* exposed for golden-value tests */
        if (scale != IR_NONE && p->st[which[i]].trainable == DC_TRAIN_COMPONENT)
            g = bld_mul(b, g, scale);
        adamw_one(cx, prefix, which[i], g, wd);
    }
    free(which);
    free(params);
    free(grads);
    return b->err;
}
