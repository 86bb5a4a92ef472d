/* exec_impl.h — private to runtime/exec*.c: the program object. */
#ifndef PDC_EXEC_IMPL_H
#define PDC_EXEC_IMPL_H

#include "exec.h"
#include "fuse.h"
#include "memplan.h"

struct rt_prog {
    const struct ir_graph *g;
    const struct cg_target *tgt;
    void **buf;
    unsigned char *owned;
    unsigned char *block; /* the planned intermediates */
    unsigned char *state; /* a device target's other tensors (exec.c own_device_block) */
    struct rt_memplan_stats mem;
    struct cg_plan plan;     /* the groups, in execution order */
    struct cg_kernel **kern; /* per group: its compiled kernel, or NULL (node by node) */
    void **prep;             /* per node id: the target's prepared state (target.h), or NULL */
    unsigned char *view;     /* per node id: a view node whose output shares its input's bytes */
    int check;               /* PDC_CHECK=ref: every unit rerun on cg_ref (exec_check.c) */
    unsigned char early[64]; /* rt_prog_read_start's bytes on a host target */
    double *prof;            /* PDC_DEBUG=prof: seconds per group (exec_prof.c), or NULL */
    unsigned long long prof_runs;
};

/* run one unit (a fused kernel, or one node) on the program's target */
int rt_run_kernel(struct rt_prog *p, uint32_t gi, struct diag *d);
int rt_run_node(struct rt_prog *p, const struct ir_node *n, struct diag *d);

/* exec_check.c: run the unit as above, then rerun it on cg_ref from copies of its
 * inputs and compare what it wrote (kernel: gi's group; node: n, gi unused) */
int rt_check_unit(struct rt_prog *p, uint32_t gi, const struct ir_node *n, struct diag *d);

/* exec_prof.c: PDC_DEBUG=prof, the time of every unit */
int rt_prof_enabled(void);
int rt_prof_unit(struct rt_prog *p, uint32_t gi, const struct ir_node *n, struct diag *d);
void rt_prof_report(const struct rt_prog *p);

#endif
