/* decomp_export.h — a decomposition written back into the model it came from
 * (`pdc export`): the imported, uncompiled graph (symbolic dims kept, every node
 * as the file has it) with each site node replaced by its factorised form, and
 * optionally the causal-importance function computing the masks in the model.
 *
 * Sites are selected on a compiled copy of the model (dc_select_sites: the same
 * sites, in the same order, as the decomposition run) and found in the export
 * graph by node name; the compiled copy also supplies ranks and the position
 * dims, which the export graph (never shape-inferred: its dims stay symbolic)
 * does not know. Factors are in the factor layout of decomp.h. */
#ifndef PDC_DECOMP_EXPORT_H
#define PDC_DECOMP_EXPORT_H

#include "decomp.h"

enum dx_mask {
    DX_MASK_INPUT, /* a graph input "mask.<site>" [pos.., C], default value 1 */
    DX_MASK_CONST, /* a baked [C] vector (ablations) */
    DX_MASK_CI,    /* the CI function's value (or its rounding at the threshold) */
};

struct dx_site {
    const struct dc_site *s;  /* from the compiled copy (its node id is the copy's) */
    uint32_t node;            /* the site node in the export graph */
    int act_rank;             /* rank of the node's activation operand */
    int pr;                   /* positions: rank, dims (-1 where symbolic) and symbol ids */
    int64_t pos[IR_MAX_RANK];
    int32_t sym[IR_MAX_RANK];
    const float *V, *U;       /* the factor, [d_in, C] and [C, d_out] (factor layout) */
    enum dx_mask mode;
    const float *mask;        /* DX_MASK_CONST: [C] */
    int group;                /* > 1 (APD): DX_MASK_INPUT masks are per component,
                               * [pos.., C/group], each repeated over its group columns */
};

struct dx_ci {               /* the CI function (DX_MASK_CI sites) */
    const struct dc_config *cfg;
    const struct ir_value *vals; /* components.safetensors: "ci.<site>.W<k>", ... */
    int nvals;
    double threshold;        /* < 0: masks are the CI values; else 1[CI > threshold] */
};

/* Replace every site node of g by its factorised form (decompose.c's masked
 * forward: ((x·V) ⊙ m)·U + x·Δ, Δ = W − V·U, the Δ path always on; Gather and
 * Conv sites as there). With ci (every site DX_MASK_CI), the CI function reads
 * a clean copy of the forward up to the site inputs and each site's CI values
 * become graph outputs "ci.<site>". Dead nodes (a Transpose that fed a weight)
 * are removed. `defaults` receives, per graph input added, the constant holding
 * its default value (graph inputs in order; IR_NONE for the model's own). */
int dx_factorise(struct ir_graph *g, struct dx_site *sites, int ns, const struct dc_factor *fac,
                 const struct dx_ci *ci, uint32_t **defaults, struct diag *d);

/* decomp_export_weights.c: plain weights (--bake, --edit), in place on the
 * initializer of factor f (f32). W' = W + V·diag(m − 1)·U: with every mask 1 the
 * weight is unchanged; m NULL: all ones. */
int dx_bake(struct ir_graph *g, const struct dc_factor *f, const float *V, const float *U,
            const float *m, struct diag *d);
/* replace subcomponent c's write vector by scale·w/‖w‖ (the VPD report's §6 edit):
 * W' = W − v_c u_cᵀ + v_c (scale·w/‖w‖)ᵀ in the site's [d_in, d_out] view, where the
 * write vector is the output-side factor (U[c,:], or V[:,c] for a site reading the
 * factor transposed); w has the site's d_out elements */
int dx_edit(struct ir_graph *g, const struct dc_site *s, const struct dc_factor *f,
            const float *V, const float *U, int c, const float *w, double scale,
            struct diag *d);

#endif
