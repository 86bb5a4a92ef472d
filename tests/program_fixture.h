/* program_fixture.h — whole training programs for the codegen and planner tests (test_llvm.c,
 * test_llvm_ptx.c): an SPD and a VPD train step (forward, backward, adversary, AdamW)
 * on the targets of decompose_fixture.h (test_memplan.c uses them too), and
 * every input filled from a fixed stream. */
#ifndef PDC_PROGRAM_FIXTURE_H
#define PDC_PROGRAM_FIXTURE_H

#include "decompose_fixture.h"

/* the train step of `method` on the target bf builds; *p owns the program */
static inline int build_step(const char *method, build_fn bf, struct dc_prog *p, struct diag *d)
{
    struct ir_graph *g = NULL;
    struct dc_site *sites = NULL;
    struct dc_factor *fac = NULL;
    int ns = 0, nf = 0;
    struct dc_config c;
    memset(p, 0, sizeof *p);
    rng_state = 2024; /* the same weights whichever test builds first */
    dc_config_defaults(&c, method);
    select_all(&c);
    c.steps = 10;
    int st = bf(&g, d);
    if (!st)
        st = dc_select_sites(g, &c, &sites, &ns, &fac, &nf, d);
    if (!st) {
        st = dc_build_spd_train(g, &c, sites, ns, fac, nf, p, d);
        g = NULL;
    }
    ir_graph_free(g);
    free(sites);
    free(fac);
    return st;
}

/* every graph input from a fixed stream: floats in (0.1, 0.9) fit every kind of
 * input (sources, learning rates, bias corrections, data); integers 0 */
static inline void fill_step_inputs(const struct ir_graph *g, struct rt_prog *rp)
{
    rng_state = 12345;
    for (uint32_t k = 0; k < g->n_inputs; k++) {
        const struct ir_tensor *t = &g->t[g->inputs[k]];
        void *b = rt_prog_buf(rp, g->inputs[k]);
        if (t->dtype == IR_F32)
            for (int64_t i = 0; i < ir_numel(t); i++)
                ((float *)b)[i] = (float)rng_unif(0.1, 0.9);
        else
            memset(b, 0, rt_tensor_bytes(t));
    }
}

#endif
