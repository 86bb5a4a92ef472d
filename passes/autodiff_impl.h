/* autodiff_impl.h — private to passes/autodiff*.c: the state of one reverse
 * sweep and the helpers the per-family VJP rules share.
 *
 * Rules never hold a `struct ir_tensor *` or `struct ir_node *` into the graph
 * across a builder call: building appends to g->t / g->n, which may move them.
 * The sweep hands each rule a copy of its node (whose in/out/attr arrays live in
 * the arena and stay put) and rules copy the tensor facts they need (ad_info). */
#ifndef PDC_AUTODIFF_IMPL_H
#define PDC_AUTODIFF_IMPL_H

#include "build.h"
#include "pass.h"

struct ad {
    struct ir_graph *g;
    struct ir_builder b;
    uint32_t nt0;        /* tensors that existed before differentiation */
    uint32_t *grad;      /* [nt0] accumulated dloss/dt, IR_NONE while nothing flowed in */
    unsigned char *need; /* [nt0] float tensor that depends on some wrt tensor */
};

/* the facts about a tensor a rule needs, copied out of the graph */
struct ad_info {
    enum ir_dtype dt;
    int rank;
    int64_t dims[IR_MAX_RANK];
    int64_t numel;
    const void *data; /* constant data or NULL (graph buffers never move) */
};

/* autodiff.c: sweep helpers */
struct ad_info ad_info(const struct ad *a, uint32_t t);
uint32_t ad_dy(const struct ad *a, const struct ir_node *n, uint32_t k); /* grad of output k */
int ad_wants(const struct ad *a, const struct ir_node *n, uint32_t i);   /* input i needs a grad */
void ad_acc(struct ad *a, const struct ir_node *n, uint32_t i, uint32_t contrib);
int ad_fail(struct ad *a, const struct ir_node *n, enum status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* autodiff.c: builder shortcuts (all sticky-error like the builder) */
uint32_t ad_k(struct ad *a, uint32_t like, double v); /* rank-0 constant of like's dtype */
uint32_t ad_op1(struct ad *a, enum ir_op op, uint32_t x);
uint32_t ad_where(struct ad *a, uint32_t c, uint32_t x, uint32_t y);
uint32_t ad_expand(struct ad *a, uint32_t x, int rank, const int64_t *dims);
uint32_t ad_reshape_to(struct ad *a, uint32_t x, uint32_t like);
uint32_t ad_sum_to(struct ad *a, uint32_t x, uint32_t like); /* adjoint of broadcasting x to like */
uint32_t ad_sum_axes(struct ad *a, uint32_t x, int naxes, const int64_t *axes, int keepdims);
uint32_t ad_mean_axes(struct ad *a, uint32_t x, int naxes, const int64_t *axes, int keepdims);
/* a node like n (same attributes, plus `extra`), output 0 returned */
uint32_t ad_node_like(struct ad *a, enum ir_op op, const struct ir_node *n, uint32_t n_in,
                      const uint32_t *in, uint32_t n_extra, const struct ir_attr *extra);

/* autodiff_tensor.c: reductions, CumSum, data movement */
enum ad_red { AD_SUM, AD_MEAN, AD_MAX, AD_MIN, AD_PROD, AD_L1, AD_L2, AD_SUMSQ, AD_LOGSUM, AD_LSE };
int vjp_reduce(struct ad *a, const struct ir_node *n, enum ad_red k);
int vjp_cumsum(struct ad *a, const struct ir_node *n);
int vjp_reshape(struct ad *a, const struct ir_node *n); /* Reshape/Flatten/Squeeze/Unsqueeze */
int vjp_transpose(struct ad *a, const struct ir_node *n);
int vjp_concat(struct ad *a, const struct ir_node *n);
int vjp_split(struct ad *a, const struct ir_node *n);
int vjp_slice(struct ad *a, const struct ir_node *n);
int vjp_gather(struct ad *a, const struct ir_node *n);
int vjp_gather_elements(struct ad *a, const struct ir_node *n);
int vjp_expand(struct ad *a, const struct ir_node *n);
int vjp_tile(struct ad *a, const struct ir_node *n);
int vjp_pad(struct ad *a, const struct ir_node *n);
int vjp_trilu(struct ad *a, const struct ir_node *n);
/* ties-split mask of a max/min over axes (yk keepdims): (x == yk) / tie count */
uint32_t ad_argext_share(struct ad *a, uint32_t x, uint32_t yk, int naxes, const int64_t *axes);

/* autodiff_nn.c: linear algebra, convolution, pooling, softmax, normalisation */
int vjp_matmul(struct ad *a, const struct ir_node *n);
int vjp_gemm(struct ad *a, const struct ir_node *n);
int vjp_einsum(struct ad *a, const struct ir_node *n);
int vjp_conv(struct ad *a, const struct ir_node *n);
int vjp_maxpool(struct ad *a, const struct ir_node *n);
int vjp_avgpool(struct ad *a, const struct ir_node *n);
int vjp_global_avgpool(struct ad *a, const struct ir_node *n);
int vjp_global_maxpool(struct ad *a, const struct ir_node *n);
int vjp_softmax(struct ad *a, const struct ir_node *n, int log_form);
int vjp_chunked_kl(struct ad *a, const struct ir_node *n);
int vjp_layernorm(struct ad *a, const struct ir_node *n);
int vjp_batchnorm(struct ad *a, const struct ir_node *n);
int vjp_instnorm(struct ad *a, const struct ir_node *n);

#endif
