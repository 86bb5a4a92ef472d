/* exec.h — run a compiled (shape-inferred, folded) graph on a target.
 *
 * A program owns one buffer per live tensor, allocated once, so a training loop
 * runs the same program many times without allocating: write the inputs into
 * rt_prog_buf(), rt_prog_run(), read outputs from rt_prog_buf(). */
#ifndef PDC_EXEC_H
#define PDC_EXEC_H

#include "ir.h"
#include "target.h"

struct rt_prog;

int rt_prog_new(const struct ir_graph *g, const struct cg_target *tgt, struct rt_prog **out,
                struct diag *d);
void rt_prog_free(struct rt_prog *p);
/* the buffer holding tensor t (constants: their data, read-only) */
void *rt_prog_buf(struct rt_prog *p, uint32_t t);
size_t rt_tensor_bytes(const struct ir_tensor *t);
int rt_prog_run(struct rt_prog *p, struct diag *d);

/* One-shot convenience: feed `inputs` (matched to graph inputs by name; every
 * graph input needs one with exactly the inferred dtype and shape) and return the
 * graph outputs in order, as fresh values the caller frees (ir_value_free + free). */
int rt_run(const struct ir_graph *g, const struct cg_target *tgt, const struct ir_value *inputs,
           int n_inputs, struct ir_value **outputs, int *n_outputs, struct diag *d);

#endif
