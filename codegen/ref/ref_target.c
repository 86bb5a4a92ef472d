/* ref_target.c — the reference target: dispatch to ref_<Op> by the ops table. */
#include "../target.h"
#include "ref_impl.h"

typedef int (*ref_fn)(const struct ir_graph *, const struct ir_node *, void *const *,
                      void *const *);

static const ref_fn ref_table[IR_OP_COUNT] = {
#define OP(name, ...) [IR_OP_##name] = ref_##name,
#include "ops.def"
#undef OP
};

static int ref_supports(const struct ir_graph *g, const struct ir_node *n)
{
    (void)g;
    return n->op < IR_OP_COUNT && ref_table[n->op] != 0;
}

static int ref_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                   void *const *out)
{
    return ref_table[n->op](g, n, in, out);
}

const struct cg_target cg_ref = {
    .name = "ref",
    .supports = ref_supports,
    .run = ref_run,
};

int cg_eval_node(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                 void *const *out)
{
    return ref_run(g, n, in, out);
}
