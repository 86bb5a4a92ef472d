/* l3d_impl.h — private to the L3D passes (objective_l3d.c, l3d_project.c).
 *
 * L3D (METHOD §8) decomposes per-sample gradients G_i = ∇_W D(f(x_i, W), f(x_r)) of
 * every selected parameter tensor. For the uses pdc differentiates per sample a
 * tensor's gradient is a sum of outer products over the positions t of sample i:
 *   matrix W [p, q] read as y = x·W:  G_i = Σ_t x_{i,t} ⊗ δ_{i,t}   (δ = ∂D/∂y)
 *   Gemm y = α x·W (+ β c):           G_i = α x_i ⊗ δ_i; with transB (W [q', p'] read as
 *                                     x·Wᵀ) the factors swap: G_i = α δ_i ⊗ x_i
 *   bias b [q] read as y = z + b:     G_i = Σ_t δ_{i,t} (Gemm's C: β Σ δ)
 *   Conv kernel W [c_out, c_in, k..]:  G_i = Σ_t δ_{i,t} ⊗ patch_{i,t} over the output
 *                                     positions t, W read as the matrix [c_out, c_in·∏k]
 *                                     (the patches come from a Conv with a one-hot kernel)
 *   Conv bias [c_out]:                 G_i = Σ_t δ_{i,t}
 * so a tensor keeps the two factors L [B, T, p], R [B, T, q] (a bias: the summed
 * δ [B, q]) and never the [B, p, q] gradient itself (l3d_project).
 *
 * Subnetwork k of tensor j (V_in and V_out alike) is a Tucker tensor (METHOD §8.3):
 *   matrix  v = Σ_{r,s} K[k,r,s] F0[k,r,:] ⊗ F1[k,s,:]   K [n,R,R], F0 [n,R,p], F1 [n,R,q]
 *   bias    v = Σ_r K[k,r] F0[k,r,:]                      K [n,Rb],  F0 [n,Rb,q]
 *   kernel  one factor per mode, K [n,R,..,R] (§8.3's code form for > 2 modes)
 * The CP form is the same with K fixed (superdiagonal ones) instead of trained. */
#ifndef PDC_L3D_IMPL_H
#define PDC_L3D_IMPL_H

#include "decomp_impl.h"

#define L3D_MAX_PARAMS 64
#define L3D_MAX_USES 8

enum { L3D_IN, L3D_OUT };                    /* V_in, V_out */
#define L3D_MAX_MODES 5 /* a 3-d convolution's kernel */
/* piece slots of one role: the core, then the factor of mode m at L3D_F0 + m */
enum { L3D_CORE, L3D_F0, L3D_F1, L3D_NPIECE = L3D_F0 + L3D_MAX_MODES };

struct l3d_use {
    uint32_t act, out; /* matrix: the MatMul's x and y; bias: the Add's output (act unused) */
    int swap;          /* Gemm transB, Conv: δ is the factor along W's first mode, x the second */
    double scale;      /* Gemm's alpha (matrix) or beta (bias); 1 otherwise */
    uint32_t conv;     /* a Conv node (+1; 0: none): channels-first output, patches as x */
};

struct l3d_param {
    uint32_t w;                      /* the initializer */
    char name[256];
    int rank;                        /* 1 (bias) or 2 (a matrix, or a kernel read as one) */
    int64_t dims[2];                 /* [q] or [p, q] (a kernel: [c_out, c_in·∏k]) */
    int nmode;                       /* the tensor's own modes: 1, 2, or 3..5 (kernel) */
    int64_t kdims[L3D_MAX_MODES];    /* their sizes */
    int R[L3D_MAX_MODES];            /* Tucker ranks per mode */
    int nuses;
    struct l3d_use use[L3D_MAX_USES];
    uint32_t piece[2][L3D_NPIECE];   /* per role: states, or a constant core (CP) */
    int trained[L3D_NPIECE];         /* which slots are states (the rest constant or absent) */
    uint32_t L, R2;                  /* per-sample factors: [B, T, p], [B, T, q]; bias: R2 [B, q] */
};

struct l3d {
    struct dc_ctx cx;
    const struct dc_l3d *o;
    struct l3d_param *p;
    int np, nv;
    int64_t B;
};

/* l3d_project.c: the per-sample gradient projection pass and what goes with it.
 * piece[] holds one role's K, F0, F1 (as states, next values or constants). */
uint32_t l3d_project(struct ir_builder *b, const struct l3d_param *p, const uint32_t *piece);
/* subnetwork tensors [n, numel] (row-major in the tensor's own layout) */
uint32_t l3d_materialize_v(struct ir_builder *b, const struct l3d_param *p, const uint32_t *piece);
/* ‖G_i‖² [B] without materialising G (Gram matrices over positions) */
uint32_t l3d_grad_sqnorm(struct ir_builder *b, const struct l3d_param *p);
/* the test oracle: G_i materialised [B, numel] */
uint32_t l3d_materialize_grad(struct ir_builder *b, const struct l3d_param *p);
/* reshape a [B, .., d] activation to [B, T, d] */
uint32_t l3d_rows3(struct ir_builder *b, uint32_t t, int64_t B, int64_t d);

#endif
