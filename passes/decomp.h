/* decomp.h — the decomposition compiler: configuration, sites, and the
 * programs built from a model (train step, faithfulness warmup, evaluation).
 *
 * A program is an ordinary IR graph plus a descriptor saying what the runtime
 * feeds into each input every step (data, uniform draws, scalars) and which
 * tensors are persistent state (parameters, optimizer moments) with the tensor
 * holding their next value. The runtime owns control flow; the graph is static.
 *
 * Names follow the reference implementation: per site V [d_in, C], U [C, d_out]
 * (W ≈ V·U in the right-multiply layout), Δ = W − V·U, CI pre-activations z,
 * g_lower = σ_lower(z) for masks, g_upper = σ_upper(z) for importance minimality. */
#ifndef PDC_DECOMP_H
#define PDC_DECOMP_H

#include "ir.h"
#include "pass.h"
#include "program.h"

#define DC_MAX_HIDDEN 8
#define DC_MAX_SITE_SPECS 64
#define DC_MAX_LOSSES 16
#define DC_MAX_ASCENTS 16   /* persistent-PGD ascents per training step (warmup + final) */
#define DC_MAX_PGD_STEPS 64 /* inner steps of a non-persistent PGD loss (each a forward and
                             * backward in the one step graph) */

enum dc_ci_fn {
    DC_CI_MLP,
    DC_CI_VECTOR_MLP,
    DC_CI_SHARED_MLP,
    DC_CI_GLOBAL_SHARED_MLP,
    DC_CI_GLOBAL_SHARED_TRANSFORMER,
};
enum dc_sigmoid { DC_SIG_LEAKY_HARD, DC_SIG_HARD };
/* AUTO (the vpd default): KL for a model fed token ids (an integer data input: a
 * language model's logits), MSE otherwise; resolved once the model is loaded */
enum dc_output_loss { DC_OUT_MSE, DC_OUT_KL, DC_OUT_AUTO };

enum dc_loss_kind {
    DC_LOSS_IMPORTANCE_MINIMALITY,
    DC_LOSS_STOCHASTIC_RECON,
    DC_LOSS_STOCHASTIC_RECON_LAYERWISE,
    DC_LOSS_STOCHASTIC_RECON_SUBSET,
    DC_LOSS_CI_MASKED_RECON,
    DC_LOSS_FAITHFULNESS,
    DC_LOSS_PGD_RECON,            /* fresh adversary each step (METHOD §4.6) */
    DC_LOSS_PGD_RECON_SUBSET,     /* the same under UniformKSubset routing */
    DC_LOSS_PERSISTENT_PGD_RECON, /* VPD: sources persist across steps (METHOD §4.7) */
    DC_LOSS_KIND_COUNT
};

const char *dc_loss_classname(enum dc_loss_kind k); /* the reference's classname */

enum dc_pgd_init { DC_PGD_INIT_RANDOM, DC_PGD_INIT_ONES, DC_PGD_INIT_ZEROES };
/* which dims of [pos.., C+1] a source has its own values for: all (per position),
 * all but the batch axis (broadcast_across_batch) or none (one source for every
 * position; `shared_across_batch` of the fresh PGD on data without positions) */
enum dc_pgd_scope { DC_SCOPE_PER_POSITION, DC_SCOPE_BROADCAST_BATCH, DC_SCOPE_SINGLE };

/* the ascent on adversarial sources: sign steps, or Adam with bias correction */
struct dc_src_opt {
    int adam;                 /* 0: s += lr·sign(g); 1: s += lr·m̂/(√v̂ + eps) */
    struct dc_schedule_cfg lr; /* PGD: constant step_size; PPGD: lr with warmup (§4.7) */
    double beta1, beta2, eps;
};

struct dc_loss {
    enum dc_loss_kind kind;
    double coeff;
    /* importance minimality */
    double pnorm, eps, beta;
    double p_anneal_start_frac, p_anneal_final_p, p_anneal_end_frac; /* final_p < 0: none */
    /* adversarial losses: PGD (init, n_steps, scope, opt with lr = step_size) and
     * persistent PGD (n_warmup_steps ascents before the loss, scope, opt) */
    enum dc_pgd_init init;
    int n_steps;
    enum dc_pgd_scope scope;
    struct dc_src_opt opt;
};


/* global_shared_transformer (METHOD §2.3): the reference's simple_transformer_ci_cfg
 * (pd GlobalSharedTransformerCiConfig) with its nested attn_config (AttnConfig) */
struct dc_ci_transformer {
    int d_model, n_blocks;           /* required: 0 means not given */
    int mlp_hidden_dim[DC_MAX_HIDDEN], n_mlp_hidden; /* n_mlp_hidden 0: [4·d_model] */
    int n_heads;                     /* attn_config.n_heads, required */
    int64_t max_len;                 /* attn_config.max_len: longest sequence allowed */
    double rope_base;                /* attn_config.rope_base */
};

/* APD (METHOD §9): C components spanning every site, each of inner rank m per site;
 * batch top-k of gradient attributions; the code's three losses (apd:spd/run_spd.py) */
struct dc_apd {
    int m;                   /* inner rank per site; 0: min(d_in, d_out) of each site */
    double topk;             /* components kept per sample on average (batch top-k) */
    int batch_topk;          /* 1: top int(topk·N) over the batch (the only mode) */
    double param_match_coeff, topk_recon_coeff, schatten_coeff, schatten_pnorm;
};

struct dc_site_spec {
    char pattern[256];
    int C; /* 0: default max(d_in, d_out) */
};

/* L3D (METHOD §8): the code's choices are the defaults, the paper's the options (§11.13) */
enum dc_l3d_div { DC_L3D_DIV_CODE, DC_L3D_DIV_MSE, DC_L3D_DIV_KL }; /* MSEVectorLoss, MSE, KL */
enum dc_l3d_loss { DC_L3D_LOSS_CODE, DC_L3D_LOSS_PAPER }; /* Σ‖G−Ĝ‖²/Σ‖G‖², mean ‖G−Ĝ‖/‖G‖ */
struct dc_l3d {
    int n_subnets, rank, bias_rank;  /* rank of matrix modes; of a bias (1-D) tensor */
    double top_k;                    /* fraction kept over samples × subnetworks */
    int topk_exact;                  /* 0: ⌊k·n⌋ + 1 kept (code); 1: ⌈k·n⌉ (paper) */
    int64_t steps_per_epoch;         /* epochs count the decay and the warm start */
    int64_t warm_start_epochs;       /* epochs 0..this keep every entry (code; -1: none) */
    double lr_decay;                 /* lr × lr_decay every lr_decay_epochs epochs */
    int64_t lr_decay_epochs;
    double weight_decay;             /* 0: Adam (code); 0.01: the paper's AdamW */
    enum dc_l3d_div divergence;
    enum dc_l3d_loss loss;
    int cp;                          /* 0: Tucker cores (code); 1: CP factors (paper) */
    int unit_norm;                   /* 0: s_i → √s_i per step (code); 1: unit L2 (paper) */
    int materialize;                 /* build per-sample gradients (the test oracle) */
};

struct dc_config {
    char method[16];        /* "spd", "vpd", "apd" */
    uint64_t seed;
    int64_t steps, batch_size;
    struct dc_schedule_cfg lr;
    double grad_clip_norm;  /* <= 0: none */
    enum dc_ci_fn ci_fn_type;
    int ci_fn_hidden_dims[DC_MAX_HIDDEN], n_ci_hidden;
    struct dc_ci_transformer ci_tf; /* read only for DC_CI_GLOBAL_SHARED_TRANSFORMER */
    enum dc_sigmoid sigmoid_type;
    int use_delta_component;
    enum dc_output_loss output_loss_type;
    int64_t faithfulness_warmup_steps;
    double faithfulness_warmup_lr, faithfulness_warmup_weight_decay;
    double ci_alive_threshold;
    /* KL on logits that are one MatMul (+ bias) of a constant unembedding: vocabulary
     * columns per chunk of the fused op that never holds a forward's [.., V] logits
     * (codegen/kl_chunked.h); 0 builds the plain LogSoftmax form on full logits */
    int64_t kl_chunk;
    struct dc_site_spec sites[DC_MAX_SITE_SPECS];
    int n_sites;
    struct dc_loss losses[DC_MAX_LOSSES];
    int n_losses;
    struct dc_apd apd;      /* read only when method is "apd" */
    /* data: built-in sparse features (toys) */
    double feature_probability, value_lo, value_hi;
    int64_t log_freq;
    int64_t checkpoint_every; /* steps between checkpoints (0: none) */
    /* data source (runtime/data.h): the spec ("": toy with the task settings above);
     * token files: bytes per token (2, 4), window length (0: the model's), held-out fraction */
    char data[1024];
    int data_token_bytes;
    int64_t data_seq;
    double data_holdout;
    struct dc_l3d l3d;      /* method l3d only */
};

void dc_config_defaults(struct dc_config *c, const char *method);
/* order[0..n) = the indices of names[] sorted by name: the reference's concatenation
 * order of a global CI function's sites (stable, so equal names keep their order) */
void dc_name_order(const char *const *names, int n, int *order);
/* the transformer settings are complete and consistent (n_heads divides d_model, d_head
 * even for RoPE, ...); the error names the offending key by its reference path */
int dc_ci_transformer_check(const struct dc_ci_transformer *t, struct diag *d);
/* its MLP widths: the given list, or [4·d_model] when none was given; returns the count */
int dc_ci_transformer_mlp(const struct dc_ci_transformer *t, int *widths);

/* ---- sites (dc_sites.c) ---------------------------------------------------- */

/* One decomposed use of a weight. Tied weights (one initializer used by several
 * nodes, e.g. directly and through a Transpose) give several sites sharing one
 * factor pair; each site has its own CI function and masks.
 *
 * The uses are the ones `pdc inspect` lists (pass_find_sites, same kinds):
 *   MatMul/Gemm  x·W (or W·x, "left"): rows [pos.., d_in] → [pos.., d_out]
 *   Gather       table [vocab, d] read by row (axis 0): d_in = vocab, d_out = d
 *   Conv         W [C_out, C_in, k..] (group 1) as [d_in = C_in·∏k, d_out = C_out]
 * Every site has "positions" (dc_mask_dims): the dims its masks, δ and CI
 * outputs share, component axis last — rows of a matmul, the indices' dims of a
 * Gather, [N, spatial out..] of a Conv. */
struct dc_site {
    char name[256];        /* "<initializer>" or "<initializer>@<use>" for later uses */
    uint32_t weight;       /* initializer tensor */
    uint32_t node;         /* the MatMul/Gemm/Gather/Conv using it */
    enum pass_site_kind kind; /* as pdc inspect names it (MatMul(left) covers Gemm's too) */
    int act;               /* the node input carrying the activation (Gather: the indices) */
    int act_tr;            /* matmul kinds: rows = that input with its last two axes swapped */
    int out_tr;            /* matmul kinds: the node's output = rows' result, last two swapped */
    int factor;            /* index into the factor list (shared by tied uses) */
    int transposed;        /* this use reads Wᵀ relative to the factor's layout */
    int use_tr;            /* this use's [d_in, d_out] view is the stored initializer, as 2-D
                            * [dims0, ∏ rest], transposed (Conv: always; Gather: never) */
    int64_t d_in, d_out;
    int C;
};

struct dc_factor {         /* V [d_in, C], U [C, d_out] of one initializer */
    uint32_t weight;
    int64_t d_in, d_out;
    int C;
    int tr;                /* factor layout Wr = tr ? W2ᵀ : W2 (the first use's view), W2 the
                            * initializer as 2-D [dims0, ∏ rest] (itself when 2-D) */
};

/* select sites from a compiled inference graph by the config's glob patterns */
int dc_select_sites(const struct ir_graph *g, const struct dc_config *c, struct dc_site **sites,
                    int *n_sites, struct dc_factor **factors, int *n_factors, struct diag *d);

/* ---- programs (decompose.c, ci_fn.c, objective_spd.c, optimizer.c) -------- */


/* objective_spd.c: the SPD train step and the faithfulness warmup, each built in
 * its own compiled inference graph g (which the program then owns) */
int dc_build_spd_train(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                       int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                       struct diag *d);
int dc_build_faith_warmup(struct ir_graph *g, const struct dc_config *c,
                          const struct dc_site *sites, int ns, const struct dc_factor *fac, int nf,
                          struct dc_prog *prog, struct diag *d);
/* objective_eval.c: reconstruction under every mask kind and L0 (see the file);
 * g_lo[i] receives site i's CI tensor */
int dc_build_eval(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                  int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                  uint32_t *g_lo, struct diag *d);
/* objective_masked.c: the forward under given masks (inputs "mask.<site>"), the
 * model's float outputs and every site's CI values "ci.<site>" as taps (see the file) */
int dc_build_masked(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                    int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                    struct diag *d);
/* adversary.c: one step of the evaluation adversary (METHOD §4.6, §7.6 Table 4): a
 * source shared across the batch (state "pgd_eval.<site>", U(0,1)), metric
 * "pgd/<divergence>" = the output divergence under the current source, next source
 * = clamp(s + step·sign(∂/∂s), 0, 1). Run it n + 1 times on one fixed batch: the
 * metric of the last run is the divergence after n steps. */
int dc_build_pgd_eval(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                      int ns, const struct dc_factor *fac, int nf, double step_size,
                      struct dc_prog *prog, struct diag *d);

/* objective_l3d.c: L3D (METHOD §8). The parameter tensors are the float initializers
 * matching the config's site patterns (every one without patterns), biases included.
 * _init: one step that normalises the randomly initialised V_out and copies it into
 * V_in (§8.6); _train: one L3D step on a batch. Factors are states "l3d.<tensor>.<role>.
 * <piece>" (role in|out, piece core|f0|f1..). */
int dc_build_l3d_init(struct ir_graph *g, const struct dc_config *c, struct dc_prog *prog,
                      struct diag *d);
int dc_build_l3d_train(struct ir_graph *g, const struct dc_config *c, struct dc_prog *prog,
                       struct diag *d);
/* _eval: the train step without the update (top-k without warm start), with taps "l3d.A"
 * = V_in·G [batch, n_subnets] and "l3d.keep" (the top-k mask); each run draws new
 * references (the impact of §8.9 averages |A| over runs) */
int dc_build_l3d_eval(struct ir_graph *g, const struct dc_config *c, struct dc_prog *prog,
                        struct diag *d);
/* objective_apd.c: APD (METHOD §9). dc_apd_sites turns every site's component count C
 * into C·m subcomponent columns (V [d_in, C·m], U [C·m, d_out]: component c owns
 * columns c·m .. c·m + m − 1) and checks that all sites share C; call it after
 * dc_select_sites. The train step: attributions, batch top-k, the three losses, AdamW.
 * The eval program: metrics recon/{all,topk,zero} and losses; *mask receives the
 * top-k mask [N, C] */
int dc_apd_sites(const struct dc_config *c, struct dc_site *sites, int ns, struct dc_factor *fac,
                 int nf, struct diag *d);
int dc_apd_rank(const struct dc_config *c, const struct dc_site *s); /* m of site s */
/* the batch top-k count int(topk·N), clamped in double to [0, total] before converting */
int64_t dc_apd_topk_count(double topk, int64_t N, int64_t total);
int dc_build_apd_train(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                       int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                       struct diag *d);
int dc_build_apd_eval(struct ir_graph *g, const struct dc_config *c, const struct dc_site *sites,
                      int ns, const struct dc_factor *fac, int nf, struct dc_prog *prog,
                      uint32_t *mask, struct diag *d);

#endif
