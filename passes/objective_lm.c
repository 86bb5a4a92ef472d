/* objective_lm.c — next-token cross-entropy of a language model's logits
 * against its own input tokens (METHOD §7.5, `ce_*` of CEandKLLosses): shared by
 * the tiny-LM target's training program and the evaluation program.
 * needs: logits [B, T, V] float and the token ids [B, T] they were computed from.
 * guarantees: one scalar, the mean over B·(T−1) positions of −log softmax(logits
 *   at t)[token at t+1]; the last position of every sequence has no label and
 *   position 0 is never a label (the reference's flattened logits[:-1] against
 *   labels[1:], taken within each sequence). */
#include "decomp_impl.h"

static uint32_t slice_dim1(struct ir_builder *b, uint32_t x, int64_t from, int64_t to)
{
    int64_t ax = 1;
    uint32_t in[4] = {x, bld_i64s(b, 1, &from), bld_i64s(b, 1, &to), bld_i64s(b, 1, &ax)};
    return bld_node(b, IR_OP_Slice, 4, in, 0, NULL, 1, NULL);
}

int dc_lm_shapes_ok(const struct ir_graph *g, uint32_t logits, uint32_t tokens)
{
    const struct ir_tensor *y = &g->t[logits], *x = &g->t[tokens];
    return y->rank == 3 && x->rank == 2 && ir_dtype_is_float(y->dtype) &&
           (x->dtype == IR_I64 || x->dtype == IR_I32) && y->dims[0] == x->dims[0] &&
           y->dims[1] == x->dims[1] && x->dims[1] >= 2 && y->dims[2] >= 1;
}

uint32_t dc_next_token_ce(struct ir_builder *b, uint32_t logits, uint32_t tokens)
{
    if (b->err)
        return IR_NONE;
    if (!dc_lm_shapes_ok(b->g, logits, tokens)) {
        b->err = diag_set(b->d, ST_ERR_SHAPE, "next-token cross-entropy needs logits [B, T, V] "
                          "for token ids [B, T] (T >= 2): '%s' and '%s' do not fit",
                          b->g->t[logits].name, b->g->t[tokens].name);
        return IR_NONE;
    }
    int64_t T = b->g->t[tokens].dims[1], last = 2;
    uint32_t labels = slice_dim1(b, tokens, 1, T);
    if (b->g->t[tokens].dtype != IR_I64)
        labels = bld_cast(b, labels, IR_I64);
    struct ir_attr ax = bld_attr_int("axis", -1), gax = bld_attr_int("axis", 2);
    uint32_t lg = slice_dim1(b, logits, 0, T - 1);
    uint32_t lp = bld_node(b, IR_OP_LogSoftmax, 1, &lg, 1, &ax, 1, NULL);
    uint32_t un[2] = {labels, bld_i64s(b, 1, &last)};
    uint32_t in[2] = {lp, bld_node(b, IR_OP_Unsqueeze, 2, un, 0, NULL, 1, NULL)}; /* [B,T-1,1] */
    uint32_t picked = bld_node(b, IR_OP_GatherElements, 2, in, 1, &gax, 1, NULL);
    return bld_op1(b, IR_OP_Neg, bld_reduce(b, IR_OP_ReduceMean, picked, 0, NULL, 0));
}
