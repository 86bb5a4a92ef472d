/* exec.h — run a compiled (shape-inferred, folded) graph on a target. */
#ifndef PDC_EXEC_H
#define PDC_EXEC_H

#include "ir.h"
#include "target.h"

/* Feed `inputs` (matched to graph inputs by name; every graph input needs one,
 * with exactly the inferred dtype and shape) and return the graph outputs in
 * order, as freshly allocated values the caller frees (ir_value_free + free). */
int rt_run(const struct ir_graph *g, const struct cg_target *tgt, const struct ir_value *inputs,
           int n_inputs, struct ir_value **outputs, int *n_outputs, struct diag *d);

#endif
