/* exec.h — run a compiled (shape-inferred, folded) graph on a target.
 *
 * A program allocates its memory once, so a training loop runs the same program many
 * times without allocating: write the inputs into rt_prog_buf(), rt_prog_run(), read
 * outputs from rt_prog_buf(). Only graph inputs, outputs and tensors flagged IR_T_KEEP
 * before rt_prog_new keep their values after a run; other intermediates share one
 * activation block (memplan.h) and are overwritten by later nodes. */
#ifndef PDC_EXEC_H
#define PDC_EXEC_H

#include "ir.h"
#include "target.h"

struct rt_prog;

int rt_prog_new(const struct ir_graph *g, const struct cg_target *tgt, struct rt_prog **out,
                struct diag *d);
void rt_prog_free(struct rt_prog *p);
/* the buffer holding tensor t (constants: their data, read-only); NULL on a target
 * whose memory the host cannot read (a GPU): use the calls below, which work on
 * every target */
void *rt_prog_buf(struct rt_prog *p, uint32_t t);
/* n bytes into / out of tensor t's buffer, or from tensor src's to dst's */
int rt_prog_write(struct rt_prog *p, uint32_t t, const void *src, size_t n, struct diag *d);
int rt_prog_read(struct rt_prog *p, uint32_t t, void *dst, size_t n, struct diag *d);
int rt_prog_copy(struct rt_prog *p, uint32_t dst, uint32_t src, size_t n, struct diag *d);
/* read n <= 64 bytes of t without waiting for work queued later: start, run more,
 * finish (one such read in flight per process: rt_train's; on the host a plain read) */
int rt_prog_read_start(struct rt_prog *p, uint32_t t, size_t n, struct diag *d);
int rt_prog_read_finish(struct rt_prog *p, void *dst, size_t n, struct diag *d);
/* float32 tensor t = philox_uniform_fill(seed, step, stream, offset 0), drawn where
 * the buffer lives */
int rt_prog_uniform(struct rt_prog *p, uint32_t t, uint64_t seed, uint64_t step, uint32_t stream,
                    struct diag *d);
size_t rt_tensor_bytes(const struct ir_tensor *t);
/* bytes of the activation block, and what one buffer per intermediate would take */
void rt_prog_memory(const struct rt_prog *p, size_t *planned, size_t *naive);
int rt_prog_run(struct rt_prog *p, struct diag *d);

/* One-shot convenience: feed `inputs` (matched to graph inputs by name; every
 * graph input needs one with exactly the inferred dtype and shape) and return the
 * graph outputs in order, as fresh values the caller frees (ir_value_free + free). */
int rt_run(const struct ir_graph *g, const struct cg_target *tgt, const struct ir_value *inputs,
           int n_inputs, struct ir_value **outputs, int *n_outputs, struct diag *d);

#endif
