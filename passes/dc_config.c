/* dc_config.c — default decomposition settings. The values are the reference
 * implementations' where they exist (METHOD.md §2, §4.9, §5: the SPD toy
 * configs); the shipped configs/ files override them per target. */
#include <stdio.h>
#include <string.h>

#include "decomp.h"

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
    c->sigmoid_type = DC_SIG_LEAKY_HARD;
    c->use_delta_component = 1;
    c->output_loss_type = DC_OUT_MSE;
    c->faithfulness_warmup_steps = 200;
    c->faithfulness_warmup_lr = 0.01;
    c->faithfulness_warmup_weight_decay = 0.1;
    c->ci_alive_threshold = 0.1;
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
}
