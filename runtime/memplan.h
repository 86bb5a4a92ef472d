/* memplan.h — where each intermediate tensor of a program lives in its activation block.
 *
 * Planned: every tensor a node produces, unless it is a graph input or output or is
 * flagged IR_T_KEEP (a caller reads its buffer after the run). Graph inputs, outputs,
 * kept tensors and constants keep buffers of their own. */
#ifndef PDC_MEMPLAN_H
#define PDC_MEMPLAN_H

#include <stddef.h>
#include <stdio.h>

#include "ir.h"

#define RT_NOT_PLANNED ((size_t)-1)

struct rt_memplan_stats {
    size_t planned; /* bytes of the activation block */
    size_t naive;   /* bytes with one buffer per planned tensor */
    uint32_t n_planned;
    uint32_t n_views; /* planned tensors sharing another's bytes (memplan.c, views) */
};

int rt_memplan_planned(const struct ir_graph *g, uint32_t t);
/* n's input when n's output may be a view of its bytes (a Reshape, Flatten, Squeeze or
 * Unsqueeze between two planned tensors of one size), else IR_NONE; the
 * plan then gives both one offset unless a fused kernel keeps either in registers */
uint32_t rt_memplan_view(const struct ir_graph *g, const struct ir_node *n);
/* off[t] for every tensor of g (RT_NOT_PLANNED where it is not planned); with reuse 0
 * every planned tensor gets bytes of its own (PDC_MEMPLAN=0, to rule the planner out),
 * views included.
 * Returns -1 when out of memory. */
int rt_memplan(const struct ir_graph *g, int reuse, size_t *off, struct rt_memplan_stats *s);
/* an execution order with kernel groups (codegen/fuse.h cg_plan): order[k] the node ids,
 * group_end[k] the position of k's group's last node (NULL: every node alone), internal[t]
 * set for values that live only inside a fused kernel (NULL: none); they get no bytes */
struct rt_sched {
    const uint32_t *order;
    const uint32_t *group_end;
    const unsigned char *internal;
};
int rt_memplan_sched(const struct ir_graph *g, const struct rt_sched *sc, int reuse, size_t *off,
                     struct rt_memplan_stats *s);
size_t rt_tensor_bytes(const struct ir_tensor *t);
/* one line: nodes, planned vs one-buffer-per-tensor bytes (pdc -v) */
void rt_memplan_report(const struct ir_graph *g, const char *name, FILE *f);

#endif
