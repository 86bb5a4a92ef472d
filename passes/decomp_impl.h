/* decomp_impl.h — private to the decomposition passes (decompose.c, ci_fn.c,
 * objective_spd.c, optimizer.c): the context a program is built in. */
#ifndef PDC_DECOMP_IMPL_H
#define PDC_DECOMP_IMPL_H

#include "build.h"
#include "decomp.h"

struct dc_factor_t {   /* per factor: state tensors and derived tensors of this program */
    uint32_t V, U;     /* states [d_in, C], [C, d_out] */
    uint32_t Wr;       /* target weight in the factor layout (constant or Transpose(W)) */
    uint32_t delta;    /* Wr − V·U */
    uint32_t Vt, Ut, deltat; /* transposes, built on first use by a transposed site */
    uint32_t Vk, Uk, deltak; /* Conv: the factors as kernels, built on first use */
};

/* Per site, from the clean (target) forward. Every per-position tensor of a site
 * (CI z/g_lo/g_up, masks, δ, routing) is [pos.., k] with the component axis
 * last, whatever the site kind (dc_mask_dims); the masked forward moves it into
 * the node's own layout (a Conv's channels-first output) where needed. */
struct dc_site_t {
    uint32_t x;        /* the node's activation operand (Gather: the indices) */
    uint32_t rows, h;  /* x as rows [pos.., d_in] (matmul kinds) and its inner
                        * activations in the node's layout; built on first use */
    int pr;            /* the positions: rank and dims */
    int64_t pos[IR_MAX_RANK];
    uint32_t z, g_lo, g_up;
};

struct dc_ctx {
    struct ir_builder b;
    struct ir_graph *g;
    const struct dc_config *cfg;
    const struct dc_site *sites;
    int ns;
    const struct dc_factor *fac;
    int nf;
    struct dc_prog *prog;
    uint32_t *fwd, nfwd;       /* target forward: live node ids in topo order */
    uint32_t *outs, nouts;     /* target outputs (float ones) */
    uint32_t nt0;              /* tensor count before building: clone maps cover these */
    uint32_t data;             /* the model's data input */
    struct dc_factor_t *f;
    struct dc_site_t *s;
    uint32_t scalar[DC_SC_COUNT]; /* per enum dc_scalar, created on demand */
    uint32_t src_bc[2][DC_MAX_ASCENTS]; /* DC_SC_SRC_BC1/2 per ascent of a step */
    uint32_t next_stream;
};

/* decompose.c */
int dc_ctx_init(struct dc_ctx *cx, struct ir_graph *g, const struct dc_config *cfg,
                const struct dc_site *sites, int ns, const struct dc_factor *fac, int nf,
                struct dc_prog *prog, const char *prefix, struct diag *d);
void dc_ctx_fini(struct dc_ctx *cx);
uint32_t dc_state(struct dc_ctx *cx, const char *name, enum ir_dtype dt, int rank,
                  const int64_t *dims, enum dc_init init, double std, int trainable);
void dc_state_next(struct dc_ctx *cx, uint32_t state, uint32_t next);
uint32_t dc_uniform(struct dc_ctx *cx, int rank, const int64_t *dims);
uint32_t dc_scalar(struct dc_ctx *cx, enum dc_scalar which);
/* DC_SC_SRC_BC1/BC2 of ascent `sub` (< DC_MAX_ASCENTS) of the step */
uint32_t dc_scalar_sub(struct dc_ctx *cx, enum dc_scalar which, int sub);
void dc_metric(struct dc_ctx *cx, const char *name, uint32_t t);
void dc_tap(struct dc_ctx *cx, const char *name, uint32_t t); /* keep t alive, by name */
int dc_factors(struct dc_ctx *cx);  /* V, U states and Δ for every factor */
/* site i's positions followed by k: masks (k = C), δ and routing (k = 1) */
void dc_mask_dims(const struct dc_ctx *cx, int i, int64_t k, int *rank, int64_t *dims);
/* site i's inner activations h = x·V on the clean forward, as [pos.., C] (the
 * `mlp` CI function's input; for a Gather h = V[idx], for a Conv the per-position
 * rows of Conv(x, V as a kernel)) */
uint32_t dc_site_acts(struct dc_ctx *cx, int i);
/* site i's clean input as rows [pos.., d_in]: matmul kinds only (a Gather or Conv
 * site has no rows without a one-hot or im2col expansion: an error naming it) */
uint32_t dc_site_rows(struct dc_ctx *cx, int i);
/* re-emit the target forward with site i masked by (m[i], delta[i]) where m[i] is
 * not IR_NONE; out[k] receives the k-th target output of this forward */
int dc_forward(struct dc_ctx *cx, const uint32_t *m, const uint32_t *delta, uint32_t *out);
/* same, with per-site routing tensors rho[i] (1: masked path, 0: the target weight) */
int dc_forward_routed(struct dc_ctx *cx, const uint32_t *m, const uint32_t *delta,
                      const uint32_t *rho, uint32_t *out);
/* one routing input per site for one UniformKSubset-routed forward (METHOD §3.2) */
void dc_routes(struct dc_ctx *cx, uint32_t *rho);
/* make the program's graph outputs the loss, metrics and next states; DCE; verify */
int dc_finish(struct dc_ctx *cx);
/* dloss/dwrt[i] (pass_autodiff), products reassociated first (pass_reassoc_keep, the wrt
 * as barriers: a rewrite may not route the loss around one) so the backward follows the
 * cheaper forward */
int dc_grad(struct dc_ctx *cx, uint32_t loss, uint32_t n, const uint32_t *wrt, uint32_t *grads);

/* ci_fn.c: z, g_lo, g_up for every site from the clean forward's site inputs */
int dc_ci_fn(struct dc_ctx *cx);
/* objective_apd.c: an APD component mask [pos.., C] repeated over each component's m
 * columns → [pos.., C·m] (site i's C is C·m after dc_apd_sites) */
uint32_t dc_apd_expand_mask(struct dc_ctx *cx, int i, uint32_t mask);
#define DC_MAX_GLOBAL_SITES 256
/* global CI kinds (METHOD §2.3): the site indices in name order (the reference's
 * concatenation order) and each one's clean input rows [N, d_in], N the same for all */
int dc_ci_global_rows(struct dc_ctx *cx, int *order, uint32_t *rows);
/* z [N, Σ C] over the sites in `order`, split back into every site's z [pos.., C] */
int dc_ci_global_split(struct dc_ctx *cx, const int *order, uint32_t z);
/* ci_fn_transformer.c: global_shared_transformer; sets every site's z */
int dc_ci_transformer(struct dc_ctx *cx);

/* objective_spd.c: shared loss pieces */
uint32_t dc_divergence(struct dc_ctx *cx, const uint32_t *y); /* the config's output loss */
uint32_t dc_mse(struct dc_ctx *cx, const uint32_t *y); /* Σ_outputs mean((y − target)²) */
uint32_t dc_kl(struct dc_ctx *cx, const uint32_t *y);  /* Σ_outputs mean_pos KL(target‖y) */
uint32_t dc_l0(struct dc_ctx *cx, int i);              /* mean_n Σ_c 1[g_lo > threshold] */

/* objective_lm.c: next-token cross-entropy, mean over B·(T−1) positions (see the
 * file); dc_lm_shapes_ok says whether logits [B, T, V] and tokens [B, T] fit it */
int dc_lm_shapes_ok(const struct ir_graph *g, uint32_t logits, uint32_t tokens);
uint32_t dc_next_token_ce(struct ir_builder *b, uint32_t logits, uint32_t tokens);

/* optimizer.c: AdamW on the trainable states with gradients from autodiff;
 * optional global-norm clip (<= 0: none); moment states named "<prefix>.m.<param>" */
int dc_adamw(struct dc_ctx *cx, uint32_t loss, double wd, double clip, const char *prefix);
/* the same, also returning ∂loss/∂extra[k] in extra_grad[k] from the same backward */
int dc_adamw_with(struct dc_ctx *cx, uint32_t loss, double wd, double clip, const char *prefix,
                  int n_extra, const uint32_t *extra, uint32_t *extra_grad);

/* adversary.c: adversarial reconstruction losses (METHOD §4.6, §4.7) */
struct dc_ppgd {           /* a persistent PGD term between its loss and its final ascent */
    const struct dc_loss *loss;
    uint32_t state[256], m0[256], v0[256]; /* the persistent states per site */
    uint32_t s[256];       /* sources after the warmup ascents (StopGradient: leaves) */
    uint32_t m[256], v[256]; /* Adam moments after the warmup ascents */
};
uint32_t dc_pgd_recon(struct dc_ctx *cx, const struct dc_loss *l, int subset);
uint32_t dc_ppgd_recon(struct dc_ctx *cx, const struct dc_loss *l, struct dc_ppgd *pp);
/* the step's last ascent from grad_total[i] = ∂L_total/∂pp->s[i] */
int dc_ppgd_finish(struct dc_ctx *cx, struct dc_ppgd *pp, const uint32_t *grad_total);

#endif
