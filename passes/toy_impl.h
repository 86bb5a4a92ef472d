/* toy_impl.h — private to the toy targets (toy_models.c, toy_lm.c): the
 * builder helpers both build their training and inference graphs with. */
#ifndef PDC_TOY_IMPL_H
#define PDC_TOY_IMPL_H

#include "decomp_impl.h"
#include "toy.h" /* toy_weight_fn */

/* A training program's context for a graph built from nothing (dc_ctx_init wants
 * an imported forward): builder, graph and program only. That is all dc_state,
 * dc_metric, dc_adamw and dc_finish use. */
int toy_ctx_begin(struct dc_ctx *cx, struct dc_prog *p, const char *prefix, struct diag *d);
/* dc_finish when st is ST_OK, then free the context (and the program on failure) */
int toy_ctx_end(struct dc_ctx *cx, struct dc_prog *p, int st);

/* the program's data input (fed by the training driver's source each step) */
uint32_t toy_data_input(struct dc_ctx *cx, const char *name, enum ir_dtype dt, int rank,
                        const int64_t *dims);

/* one node whose single output gets a chosen name ("y", "logits": what users and
 * the importer see; the builder's own names are "<prefix>/<op>_<n>:0") */
uint32_t toy_named_node(struct ir_builder *b, enum ir_op op, uint32_t n_in, const uint32_t *in,
                        const char *name);
/* a toy's weight: its name, shape and initialisation */
struct wdesc {
    char name[64];
    int rank;
    int64_t dims[2];
    enum dc_init init;
    double a;       /* std (normal) or half-width (uniform) */
    int trainable;  /* DC_TRAIN_* */
    int ln_scale;   /* a LayerNorm scale: set to 1 by the setup program */
};

/* every weight as a program state (ids[i]) */
void toy_declare_states(struct dc_ctx *cx, const struct wdesc *w, int n, uint32_t *ids);
/* every weight as an initializer holding its trained value from get(ctx, ...); an
 * error names `who` and the missing weight */
int toy_load_weights(struct ir_builder *b, const struct wdesc *w, int n, toy_weight_fn get,
                     void *ctx, const char *who, uint32_t *ids, struct diag *d);

/* an inference graph begun (*out, builder b, input x [batch, n_features] with dim 0 the
 * symbol "batch", *bsym) and ended (y its output; *out freed and NULL on an error):
 * toy_build_infer and toy_l3d_infer */
int toy_infer_begin(const struct toy_spec *s, int64_t batch, struct ir_builder *b, uint32_t *x,
                    int *bsym, struct ir_graph **out, struct diag *d);
int toy_infer_end(struct ir_builder *b, uint32_t y, int bsym, struct ir_graph **out);

/* a named float32 initializer marked as a weight (zeros when data is NULL) */
uint32_t toy_named_init(struct ir_builder *b, const char *name, int rank, const int64_t *dims,
                        const void *data);

#endif
