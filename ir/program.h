/* program.h — a program: a static IR graph plus what the runtime does around
 * it each step. The runtime writes every input (data, uniform draws, scalars),
 * runs the graph, copies each state's `next` value into the state, and logs the
 * metric outputs. Built by passes (passes/decomp.h), run by runtime/train.c. */
#ifndef PDC_PROGRAM_H
#define PDC_PROGRAM_H

#include "ir.h"

/* STEP (L3D, METHOD §8.7): start_val · final_val_frac^⌊step / period⌋ (torch StepLR), the
 * period in steps held in warmup_pct (a step schedule has no warmup; a new field would
 * break every positional initializer of this struct) */
/* QCOSINE (APD, METHOD §9.4): after the warmup, start_val · cos(½π·t/(T−1)), a quarter
 * cosine to 0 (apd:spd/utils.py get_lr_schedule_fn); final_val_frac does not apply. APD's
 * programs use it where the config says cosine (pdc's half cosine to final_val_frac). */
enum dc_schedule { DC_SCHED_CONSTANT, DC_SCHED_LINEAR, DC_SCHED_COSINE, DC_SCHED_STEP,
                   DC_SCHED_QCOSINE };

struct dc_schedule_cfg {
    double start_val, warmup_pct, final_val_frac;
    enum dc_schedule fn;
};

/* p annealing (METHOD §4.3): constant p0 unless final_p >= 0 and start_frac < 1 */
struct dc_anneal {
    double p0, final_p, start_frac, end_frac;
};

/* DC_FEED_ROUTE: UniformKSubset routing (METHOD §3.2) — per position draw k ~ U{1..M} and a
 * random order of the M sites; site `route_site` is routed (1) when its rank is < k. All
 * route inputs of one forward share a stream, so they see the same k and order. */
enum dc_feed { DC_FEED_DATA, DC_FEED_UNIFORM, DC_FEED_SCALAR, DC_FEED_ROUTE };
/* BC1 = 1 − β1^t, BC2 = √(1 − β2^t) at the 1-based optimizer step t (PyTorch's AdamW form).
 * SRC_*: the same for the persistent adversarial sources (METHOD §4.7), whose Adam counts
 * `src.per_step` ascents per training step: ascent `sub` of step k has t = k·per_step + sub + 1 */
/* TOPK (L3D batch top-k, METHOD §8.4): the largest rank (0-based count of strictly larger
 * entries) an entry of |A| may have and be kept; see dc_prog.topk */
enum dc_scalar { DC_SC_LR, DC_SC_P, DC_SC_BC1, DC_SC_BC2, DC_SC_SRC_LR, DC_SC_SRC_BC1,
                 DC_SC_SRC_BC2, DC_SC_TOPK, DC_SC_COUNT };

struct dc_input {          /* what the runtime writes into a program input each step */
    uint32_t t;
    enum dc_feed kind;
    uint32_t stream;       /* DC_FEED_UNIFORM: Philox stream id (unique per input) */
    enum dc_scalar scalar; /* DC_FEED_SCALAR */
    uint32_t route_site, route_n; /* DC_FEED_ROUTE: this site's index among route_n sites */
    uint32_t sub;          /* DC_SC_SRC_BC1/BC2: the ascent's index within the step */
};

/* UNIFORM: U(−a, a) with a in `std` (PyTorch's default Linear init, METHOD §6.2);
 * UNIT: U(0, 1) (adversarial sources, METHOD §4.7) */
enum dc_init { DC_INIT_ZERO, DC_INIT_NORMAL, DC_INIT_UNIFORM, DC_INIT_UNIT };
enum { DC_TRAIN_NO, DC_TRAIN_COMPONENT, DC_TRAIN_CI }; /* the clip applies to components only */

struct dc_state {          /* persistent tensor: parameter or optimizer moment */
    uint32_t t, next;      /* next: the tensor holding its value after the step (or IR_NONE) */
    uint32_t grad;         /* trainable states: d loss / d state (before clipping), or IR_NONE */
    enum dc_init init;
    double std;            /* DC_INIT_NORMAL: the std; DC_INIT_UNIFORM: the half-width a */
    int trainable;         /* DC_TRAIN_* */
    char name[256];        /* saved as this name ("<site>.V", "ci.<site>.W1", ...) */
};

struct dc_metric {         /* scalar outputs logged to metrics.jsonl (and taps, below) */
    uint32_t t;
    char name[128];
};

struct dc_prog {
    struct ir_graph *g;
    struct dc_schedule_cfg lr;      /* how the runtime computes DC_SC_LR per step */
    double beta1, beta2;            /* for the DC_SC_BC1/BC2 bias corrections */
    struct dc_anneal p;             /* importance-minimality p per step (DC_SC_P) */
    struct {                        /* the persistent adversary's Adam (DC_SC_SRC_*) */
        struct dc_schedule_cfg lr;
        double beta1, beta2;
        int per_step;
    } src;
    struct {                        /* L3D batch top-k (DC_SC_TOPK) over n = samples × subnets:
                                     * steps < warm_steps keep all; else the code's ⌊frac·n⌋
                                     * (⌊frac·n⌋ + 1 entries kept) or, exact, ⌈frac·n⌉ − 1 */
        double frac;
        int64_t n, warm_steps;
        int exact;
    } topk;
    int64_t steps;                  /* the program's own step count (fractions, schedules) */
    struct dc_input *in;
    int n_in;
    struct dc_state *st;
    int n_st;
    struct dc_metric *metric;
    int n_metric;
    struct dc_metric *tap;          /* non-scalar tensors kept alive by name (tests, debugging) */
    int n_tap;
    uint32_t loss;
};

void dc_prog_free(struct dc_prog *p);
/* flag every trainable state's gradient IR_T_KEEP, so its buffer still holds it after
 * a run (tests and debugging read gradients; the optimiser alone needs none of them) */
void dc_prog_keep_grads(struct dc_prog *p);

/* schedule value at step (METHOD §5.1) and annealed p at a training fraction */
double dc_schedule_value(const struct dc_schedule_cfg *s, int64_t step, int64_t total);
double dc_anneal_p(const struct dc_anneal *a, double frac);
/* the DC_SC_TOPK value at a step (see dc_prog.topk) */
double dc_topk_rank(const struct dc_prog *p, int64_t step);

#endif
