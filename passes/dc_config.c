/* dc_config.c — default decomposition settings. The values are the reference
 * implementations' where they exist (METHOD.md §2, §4.9, §5: the SPD toy
 * configs); the shipped configs/ files override them per target. */
#include <stdio.h>
#include <string.h>

#include "decomp.h"

const char *dc_loss_classname(enum dc_loss_kind k)
{
    static const char *const names[DC_LOSS_KIND_COUNT] = {
        [DC_LOSS_IMPORTANCE_MINIMALITY] = "ImportanceMinimalityLoss",
        [DC_LOSS_STOCHASTIC_RECON] = "StochasticReconLoss",
        [DC_LOSS_STOCHASTIC_RECON_LAYERWISE] = "StochasticReconLayerwiseLoss",
        [DC_LOSS_STOCHASTIC_RECON_SUBSET] = "StochasticReconSubsetLoss",
        [DC_LOSS_CI_MASKED_RECON] = "CIMaskedReconLoss",
        [DC_LOSS_FAITHFULNESS] = "FaithfulnessLoss",
        [DC_LOSS_PGD_RECON] = "PGDReconLoss",
        [DC_LOSS_PGD_RECON_SUBSET] = "PGDReconSubsetLoss",
        [DC_LOSS_PERSISTENT_PGD_RECON] = "PersistentPGDReconLoss",
    };
    return (unsigned)k < DC_LOSS_KIND_COUNT ? names[k] : "?";
}

/* The VPD run's objective and optimisation (METHOD §4.9 "VPD Pile 4L", §4.7, §5.2,
 * §5.3, §13.5): importance 2e-4 with p 2 → 0.4 over training and the frequency term
 * β 0.5, subset-routed stochastic reconstruction 0.5, persistent PGD 0.5, faithfulness
 * 1e7; AdamW 5e-5 cosine to 0.1×, component gradients clipped at 0.01; warmup 400
 * steps at 1e-3; the global CI transformer (§2.3). Two sizes are scaled down: the
 * step count stays pdc's default, and the transformer is 128 wide with 2 blocks of 4
 * heads and an MLP of 512 — the paper's 400k steps and 2048/8/16/8192 transformer fit
 * its 4-layer LM on GPUs, not a first run on a laptop. */
static void vpd_defaults(struct dc_config *c)
{
    c->lr = (struct dc_schedule_cfg){5e-5, 0.0, 0.1, DC_SCHED_COSINE};
    c->batch_size = 64; /* sequences (64 × 512 tokens in the VPD run) */
    c->grad_clip_norm = 0.01;
    c->ci_fn_type = DC_CI_GLOBAL_SHARED_TRANSFORMER;
    c->ci_tf.d_model = 128;
    c->ci_tf.n_blocks = 2;
    c->ci_tf.n_heads = 4;
    c->ci_tf.mlp_hidden_dim[0] = 512;
    c->ci_tf.n_mlp_hidden = 1;
    c->faithfulness_warmup_steps = 400;
    c->faithfulness_warmup_lr = 1e-3;
    c->faithfulness_warmup_weight_decay = 0.0;
    c->ci_alive_threshold = 0.0;
    c->output_loss_type = DC_OUT_AUTO; /* the VPD run's KL on a language model */
    c->losses[0] = (struct dc_loss){.kind = DC_LOSS_IMPORTANCE_MINIMALITY, .coeff = 2e-4,
                                    .pnorm = 2.0, .eps = 1e-12, .beta = 0.5,
                                    .p_anneal_start_frac = 0.0, .p_anneal_final_p = 0.4,
                                    .p_anneal_end_frac = 1.0};
    c->losses[1] = (struct dc_loss){.kind = DC_LOSS_STOCHASTIC_RECON_SUBSET, .coeff = 0.5};
    c->losses[2] = (struct dc_loss){
        .kind = DC_LOSS_PERSISTENT_PGD_RECON, .coeff = 0.5, .n_steps = 2,
        .scope = DC_SCOPE_PER_POSITION,
        .opt = {1, {0.01, 0.025, 1.0, DC_SCHED_CONSTANT}, 0.5, 0.99, 1e-8}};
    c->losses[3] = (struct dc_loss){.kind = DC_LOSS_FAITHFULNESS, .coeff = 1e7};
    c->n_losses = 4;
}

/* METHOD §8.6–8.7, the code's values: TMS 5-2 sizes; 1000 epochs of 32 batches of 32 */
static void l3d_defaults(struct dc_config *c)
{
    c->steps = 32000;
    c->batch_size = 32;
    c->lr = (struct dc_schedule_cfg){0.01, 0.0, 1.0, DC_SCHED_CONSTANT};
    c->faithfulness_warmup_steps = 0;
    c->n_losses = 0;
    c->log_freq = 320;
    c->l3d = (struct dc_l3d){.n_subnets = 5, .rank = 1, .bias_rank = 1, .top_k = 0.1,
                             .steps_per_epoch = 32, .warm_start_epochs = 0, .lr_decay = 0.8,
                             .lr_decay_epochs = 100, .divergence = DC_L3D_DIV_CODE};
}

/* APD's TMS 5-2 run (METHOD §9.5, S-APDmd "Training details"): Adam(W, wd 0) lr 0.03
 * constant after a 5 % warmup, 20k steps of 2048, batch top-k 0.211, coefficients
 * param_match 1, topk_recon 1, schatten 0.7 with p = 1; no CI function, no Δ, no
 * faithfulness warmup (APD has none) and no SPD losses */
static void apd_defaults(struct dc_config *c)
{
    c->steps = 20000;
    c->batch_size = 2048;
    c->lr = (struct dc_schedule_cfg){0.03, 0.05, 1.0, DC_SCHED_CONSTANT};
    c->use_delta_component = 0;
    c->faithfulness_warmup_steps = 0;
    c->n_losses = 0;
    c->apd = (struct dc_apd){0, 0.211, 1, 1.0, 1.0, 0.7, 1.0};
}

void dc_config_defaults(struct dc_config *c, const char *method)
{
    memset(c, 0, sizeof *c);
    snprintf(c->method, sizeof c->method, "%s", method ? method : "spd");
    c->seed = 0;
    c->steps = 10000;
    c->batch_size = 4096;
    c->lr = (struct dc_schedule_cfg){1e-3, 0.0, 0.0, DC_SCHED_COSINE};
    c->grad_clip_norm = 0.0;
    c->ci_fn_type = DC_CI_VECTOR_MLP; /* spd Config default; every toy config says mlp [16] */
    c->ci_fn_hidden_dims[0] = 8;
    c->n_ci_hidden = 1;
    /* the transformer has no usable defaults for its sizes (the reference requires d_model,
     * n_blocks and attn_config.n_heads); these two are AttnConfig's defaults */
    c->ci_tf.max_len = 2048;
    c->ci_tf.rope_base = 10000.0;
    c->sigmoid_type = DC_SIG_LEAKY_HARD;
    c->use_delta_component = 1;
    c->output_loss_type = DC_OUT_MSE;
    c->faithfulness_warmup_steps = 200;
    c->faithfulness_warmup_lr = 0.01;
    c->faithfulness_warmup_weight_decay = 0.1;
    c->ci_alive_threshold = 0.1;
    c->kl_chunk = 4096;
    c->feature_probability = 0.05;
    c->value_lo = 0.0;
    c->value_hi = 1.0;
    c->log_freq = 100;
    c->checkpoint_every = 1000;
    c->data_token_bytes = 2;
    c->data_holdout = 0.05;
    c->losses[0] = (struct dc_loss){.kind = DC_LOSS_IMPORTANCE_MINIMALITY, .coeff = 3e-3,
                                    .pnorm = 1.0, .eps = 1e-12, .beta = 0.0,
                                    .p_anneal_start_frac = 1.0, .p_anneal_final_p = -1.0,
                                    .p_anneal_end_frac = 1.0};
    c->losses[1] = (struct dc_loss){.kind = DC_LOSS_STOCHASTIC_RECON, .coeff = 1.0};
    c->losses[2] = (struct dc_loss){.kind = DC_LOSS_STOCHASTIC_RECON_LAYERWISE, .coeff = 1.0};
    c->n_losses = 3;
    if (strcmp(c->method, "vpd") == 0)
        vpd_defaults(c);
    if (strcmp(c->method, "l3d") == 0)
        l3d_defaults(c);
    if (strcmp(c->method, "apd") == 0)
        apd_defaults(c);
}

#define TF "simple_transformer_ci_cfg."

int dc_ci_transformer_check(const struct dc_ci_transformer *t, struct diag *d)
{
    if (t->d_model < 1 || t->d_model > 1 << 16)
        return diag_set(d, ST_ERR_INVALID, TF "d_model: %d is not in [1, 65536]%s", t->d_model,
                        t->d_model ? "" : " (it is required for global_shared_transformer)");
    if (t->n_blocks < 1 || t->n_blocks > 1024)
        return diag_set(d, ST_ERR_INVALID, TF "n_blocks: %d is not in [1, 1024]%s", t->n_blocks,
                        t->n_blocks ? "" : " (it is required for global_shared_transformer)");
    if (t->n_heads < 1 || t->n_heads > t->d_model)
        return diag_set(d, ST_ERR_INVALID,
                        TF "attn_config.n_heads: %d is not in [1, d_model = %d]%s", t->n_heads,
                        t->d_model,
                        t->n_heads ? "" : " (it is required for global_shared_transformer)");
    if (t->d_model % t->n_heads)
        return diag_set(d, ST_ERR_INVALID, TF "attn_config.n_heads: %d does not divide d_model %d",
                        t->n_heads, t->d_model);
    if ((t->d_model / t->n_heads) % 2) /* RoPE rotates pairs (first half, second half) */
        return diag_set(d, ST_ERR_INVALID, TF "attn_config.n_heads: d_head = d_model / n_heads = "
                        "%d / %d = %d must be even for RoPE", t->d_model, t->n_heads,
                        t->d_model / t->n_heads);
    if (t->max_len < 1)
        return diag_set(d, ST_ERR_INVALID, TF "attn_config.max_len: %lld is not positive",
                        (long long)t->max_len);
    if (!(t->rope_base > 0.0 && t->rope_base < 1e300)) /* NaN fails too */
        return diag_set(d, ST_ERR_INVALID,
                        TF "attn_config.rope_base: %g is not a finite number > 0", t->rope_base);
    if (t->n_mlp_hidden < 0 || t->n_mlp_hidden > DC_MAX_HIDDEN)
        return diag_set(d, ST_ERR_INVALID, TF "mlp_hidden_dim: more than %d widths", DC_MAX_HIDDEN);
    for (int i = 0; i < t->n_mlp_hidden; i++)
        if (t->mlp_hidden_dim[i] < 1 || t->mlp_hidden_dim[i] > 1 << 20)
            return diag_set(d, ST_ERR_INVALID, TF "mlp_hidden_dim[%d]: %d is not in [1, 2^20]", i,
                            t->mlp_hidden_dim[i]);
    return ST_OK;
}

int dc_ci_transformer_mlp(const struct dc_ci_transformer *t, int *widths)
{
    if (t->n_mlp_hidden == 0) { /* the reference's default when mlp_hidden_dim is None */
        widths[0] = 4 * t->d_model;
        return 1;
    }
    for (int i = 0; i < t->n_mlp_hidden; i++)
        widths[i] = t->mlp_hidden_dim[i];
    return t->n_mlp_hidden;
}
