/* fuse.h — kernel groups: a program's nodes partitioned into the units a target runs.
 *
 * A fused group is a piece of the dataflow made of float32 elementwise ops (unary,
 * broadcasting binary, Where, comparisons, simple Casts, the squashing functions and
 * their VJPs) whose outputs all have one shape. Its kernel walks the output elements
 * once, reads the group's inputs from memory and writes only the results someone
 * outside the group needs; the rest live in registers. Every other node (GEMMs,
 * reductions, shape ops) is a group of its own, run node by node as before.
 *
 * The plan is a new execution order: a group runs where its last node stood in the
 * topological order, its nodes listed together. This is the order the executor and
 * the memory planner follow (runtime/exec.c, runtime/memplan.c). */
#ifndef PDC_FUSE_H
#define PDC_FUSE_H

#include "ir.h"

#define CG_GROUP_MAX_NODES 64 /* a bound on one kernel's size (and its compile time) */
#define CG_GROUP_MAX_BUFS 48  /* inputs + outputs of one fused kernel */

struct cg_group {
    const uint32_t *nodes; /* node ids in topological order (into cg_plan.order) */
    uint32_t n_nodes;
    int fused;             /* run as one kernel; else its single node runs alone */
    /* fused groups: the tensors the kernel reads (in) and writes (out); the
     * kernel's buffer list is in[] then out[] */
    uint32_t n_in, n_out;
    uint32_t *in, *out;
};

struct cg_plan {
    uint32_t n_groups;
    struct cg_group *groups;  /* in execution order */
    uint32_t *order;          /* every node id, groups contiguous */
    uint32_t *group_end;      /* per position in order: position of its group's last node */
    unsigned char *internal;  /* per tensor: lives only inside a fused kernel (no buffer) */
};

/* can node n be part of a fused group (op, dtypes, attributes the kernels cover)? */
int cg_fusible(const struct ir_graph *g, const struct ir_node *n);

/* partition g (IR_VALID_TOPO) into groups; fused groups have at least min_nodes
 * nodes (1 makes even a single elementwise node a kernel, as the kernel tests
 * do). Returns ST_OK or ST_ERR_NOMEM. */
int cg_fuse(const struct ir_graph *g, uint32_t min_nodes, struct cg_plan *p);
/* one group per node, in topological order: the plan of a target without kernels */
int cg_plan_trivial(const struct ir_graph *g, struct cg_plan *p);
void cg_plan_free(struct cg_plan *p);

#endif
