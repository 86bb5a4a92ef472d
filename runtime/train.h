/* train.h — the training driver: runs a program (program.h) step after step,
 * feeding data, counter-based random draws and scheduled scalars, carrying the
 * persistent state in a named store shared between programs (the warmup and
 * the main loop update the same V and U). */
#ifndef PDC_TRAIN_H
#define PDC_TRAIN_H

#include <stdio.h>

#include "data.h"
#include "program.h"
#include "target.h"

/* named persistent tensors (parameters, optimizer moments) */
struct rt_store_item {
    char *name;
    enum ir_dtype dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
    void *data;
    size_t nbytes;
};

struct rt_store {
    struct rt_store_item *items;
    int n, cap;
};

void rt_store_free(struct rt_store *s);
struct rt_store_item *rt_store_find(struct rt_store *s, const char *name);

struct rt_train_opts {
    uint64_t seed;
    int64_t step0;       /* global step of this phase's first step (keys the random draws) */
    const char *phase;   /* "warmup", "spd": names metrics lines and the progress line */
    FILE *metrics;       /* JSON lines, or NULL */
    int64_t log_every;   /* metrics every N steps (and the last step) */
    int progress;        /* draw a progress line (a TTY) */
    int64_t from, to;    /* run steps [from, to) of the phase (to = 0: to p->steps); a
                          * resumed run continues exactly where a checkpoint stopped */
    int fixed_data;      /* every step reads the same evaluation batch (keyed by step0): an
                          * optimisation over one batch, like an adversary's evaluation */
};

struct rt_prog;

/* UniformKSubset routing (METHOD §3.2) at one position: per position M + 1 Philox
 * draws — k ~ U{1..M} from the first, the sites' random order from the other M
 * (rank by value, ties by index) — so each site's bit is computed on its own yet all
 * sites agree on k and the order. Returns whether `site` is routed (rank < k). */
int rt_route_bit(uint64_t seed, uint64_t step, uint32_t stream, uint64_t pos, uint32_t M,
                 uint32_t site);
/* what the runtime feeds a DC_FEED_SCALAR input at the phase's 0-based step (learning
 * rates from their schedules, annealed p, bias corrections) */
double rt_scalar_value(const struct dc_prog *p, const struct dc_input *in, int64_t step);
/* add a copy of v to the store (the name must be new) */
int rt_store_put(struct rt_store *s, const struct ir_value *v, struct diag *d);

/* Run p once with every state taken from the store (an error names a missing
 * one): the data input from `given` (float32) when not NULL, else the source's
 * evaluation split (data.h; `data` may be NULL when given), draws keyed by (seed,
 * step). Metric values go to metrics[]; *out keeps the program's buffers for
 * reading (rt_prog_buf), freed by the caller with rt_prog_free. */
int rt_run_once(const struct dc_prog *p, const struct cg_target *tgt, struct rt_store *store,
                struct ds_source *data, const float *given, uint64_t seed, int64_t step,
                double *metrics, struct rt_prog **out, struct diag *d);

/* run the phase's steps [o->from, o->to); on success last[] holds the metric values of the
 * last step run (p->n_metric) */
int rt_train(const struct dc_prog *p, const struct cg_target *tgt, struct rt_store *store,
             struct ds_source *data, const struct rt_train_opts *o, double *last,
             struct diag *d);

#endif
