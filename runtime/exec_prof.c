/* exec_prof.c — PDC_DEBUG=prof: wall time per unit (a fused kernel or one node),
 * summed over every run of the program and printed, largest first, when it is freed
 * (the top 40; PDC_DEBUG=prof-all: all), then summed by op.
 * A tool for finding where a step goes; it times the host's view, so on a device
 * target it measures launches, not kernels. */
#include "exec_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int rt_prof_enabled(void)
{
    const char *dbg = getenv("PDC_DEBUG");
    return dbg && strstr(dbg, "prof") != NULL;
}

int rt_prof_unit(struct rt_prog *p, uint32_t gi, const struct ir_node *n, struct diag *d)
{
    double t0 = now_s();
    int st = n ? rt_run_node(p, n, d) : rt_run_kernel(p, gi, d);
    p->prof[gi] += now_s() - t0;
    return st;
}

static void put_shape(char *s, size_t cap, const struct ir_tensor *t)
{
    size_t len = 0;
    s[0] = 0;
    for (int k = 0; k < (int)t->rank && len + 24 < cap; k++)
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", k ? "x" : "", (long long)t->dims[k]);
}

/* a unit: its share, time per run, output shape, a lone node's input shapes, ops */
static void print_unit(const struct rt_prog *p, uint32_t gi, double total)
{
    const struct cg_group *gr = &p->plan.groups[gi];
    const struct ir_graph *g = p->g;
    const struct ir_node *last = &g->n[gr->nodes[gr->n_nodes - 1]];
    char shape[64] = "-", ins[200] = "";
    if (last->n_out && last->out[0] != IR_NONE)
        put_shape(shape, sizeof shape, &g->t[last->out[0]]);
    for (uint32_t i = 0, len = 0; !gr->fused && i < last->n_in && i < 3 && len < 128; i++) {
        char one[64] = "-";
        if (last->in[i] != IR_NONE)
            put_shape(one, sizeof one, &g->t[last->in[i]]);
        len += (uint32_t)snprintf(ins + len, sizeof ins - len, "%s%s", i ? ", " : " <- ", one);
    }
    fprintf(stderr, "prof: %6.2f%% %9.1f us  group %4u %-5s [%s%s]", 100.0 * p->prof[gi] / total,
            1e6 * p->prof[gi] / (double)(p->prof_runs ? p->prof_runs : 1), gi,
            gr->fused ? "fused" : "node", shape, ins);
    for (uint32_t i = 0; i < gr->n_nodes && i < 8; i++)
        fprintf(stderr, " %s", ir_ops[g->n[gr->nodes[i]].op].name);
    fprintf(stderr, gr->n_nodes > 8 ? " … (%u nodes)\n" : "\n", gr->n_nodes);
}

/* the same time by op: a node's op, or "fused" for every fused kernel */
static void print_ops(const struct rt_prog *p, double total)
{
    double by[IR_OP_COUNT + 1] = {0};
    for (uint32_t i = 0; i < p->plan.n_groups; i++) {
        const struct cg_group *gr = &p->plan.groups[i];
        by[gr->fused ? IR_OP_COUNT : p->g->n[gr->nodes[0]].op] += p->prof[i];
    }
    for (;;) {
        int best = -1;
        for (int o = 0; o <= IR_OP_COUNT; o++)
            if (by[o] > 0 && (best < 0 || by[o] > by[best]))
                best = o;
        if (best < 0 || by[best] < 0.005 * total)
            return;
        fprintf(stderr, "prof: by op %6.2f%% %9.1f us  %s\n", 100.0 * by[best] / total,
                1e6 * by[best] / (double)p->prof_runs,
                best == IR_OP_COUNT ? "(fused kernels)" : ir_ops[best].name);
        by[best] = 0;
    }
}

void rt_prof_report(const struct rt_prog *p)
{
    uint32_t n = p->plan.n_groups, *ord = malloc(((size_t)n + 1) * sizeof *ord);
    double total = 0;
    if (!ord || !p->prof_runs)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        ord[i] = i;
        total += p->prof[i];
    }
    for (uint32_t i = 1; i < n; i++) /* insertion sort, largest first: a debug path */
        for (uint32_t j = i; j > 0 && p->prof[ord[j]] > p->prof[ord[j - 1]]; j--) {
            uint32_t tmp = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = tmp;
        }
    fprintf(stderr, "prof: %u units, %llu runs, %.3f ms per run\n", n,
            (unsigned long long)p->prof_runs, 1e3 * total / (double)p->prof_runs);
    const char *dbg = getenv("PDC_DEBUG");
    uint32_t top = dbg && strstr(dbg, "prof-all") ? n : 40; /* prof-all: every unit */
    for (uint32_t i = 0; i < n && i < top && total > 0; i++)
        print_unit(p, ord[i], total);
    if (total > 0)
        print_ops(p, total);
out:
    free(ord);
}
