/* program.c — program descriptors: freeing, and the per-step schedules the
 * runtime evaluates (METHOD.md §5.1 schedules, §4.3 p annealing). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "program.h"

void dc_prog_free(struct dc_prog *p)
{
    if (!p)
        return;
    ir_graph_free(p->g);
    free(p->in);
    free(p->st);
    free(p->metric);
    free(p->tap);
    memset(p, 0, sizeof *p);
}

void dc_prog_keep_grads(struct dc_prog *p)
{
    for (int i = 0; i < p->n_st; i++)
        if (p->st[i].grad != IR_NONE)
            p->g->t[p->st[i].grad].flags |= IR_T_KEEP;
}

double dc_schedule_value(const struct dc_schedule_cfg *s, int64_t step, int64_t total)
{
    if (s->fn == DC_SCHED_STEP) {
        int64_t period = s->warmup_pct >= 1 ? (int64_t)s->warmup_pct : 1;
        return s->start_val * pow(s->final_val_frac, (double)(step / period));
    }
    int64_t w = (int64_t)((double)total * s->warmup_pct);
    if (step < w)
        return s->start_val * (double)step / (double)w;
    int64_t D = total - w;
    if (D <= 1 || s->fn == DC_SCHED_CONSTANT)
        return s->start_val;
    double prog = (double)(step - w) / (double)(D - 1);
    double f = s->final_val_frac;
    if (s->fn == DC_SCHED_LINEAR)
        return s->start_val * (f + (1 - f) * (1 - prog));
    if (s->fn == DC_SCHED_QCOSINE)
        return s->start_val * cos(0.5 * M_PI * prog);
    return s->start_val * (f + (1 - f) * 0.5 * (1 + cos(M_PI * prog)));
}

double dc_anneal_p(const struct dc_anneal *a, double frac)
{
    if (a->final_p < 0 || a->start_frac >= 1.0)
        return a->p0;
    if (frac < a->start_frac)
        return a->p0;
    if (frac >= a->end_frac)
        return a->final_p;
    return a->p0 + (a->final_p - a->p0) * (frac - a->start_frac) / (a->end_frac - a->start_frac);
}

double dc_topk_rank(const struct dc_prog *p, int64_t step)
{
    int64_t n = p->topk.n;
    if (step < p->topk.warm_steps) /* the code's warm start: fraction 0.999, every entry kept */
        return (double)n;
    if (p->topk.exact) /* exactly ⌈frac·n⌉ entries (ties aside) */
        return ceil(p->topk.frac * (double)n) - 1.0;
    return floor(p->topk.frac * (double)n); /* τ at 0-based position ⌊frac·n⌋, keep |A| ≥ τ */
}
