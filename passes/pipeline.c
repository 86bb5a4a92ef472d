/* pipeline.c — THE pipelines, as arrays read top to bottom, and the runner that
 * verifies between passes and dumps the graph after the one named by -d. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pass.h"

int pass_verify(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    (void)cx;
    return ir_verify(g, d);
}

static const struct pass inference_pipeline[] = {
    {"verify", pass_verify},       /* structure as imported: defined inputs, no cycles */
    {"infer", pass_infer_fold},    /* shapes + dtypes; shape subgraphs folded to constants */
    {"dce", pass_dce},             /* what no output needs is gone */
};

int pass_run_pipeline(struct ir_graph *g, const struct pass *p, int np, struct pass_ctx *cx,
                      struct diag *d)
{
    FILE *df = cx->dump_file ? cx->dump_file : stderr;
    int verify = cx->verify || getenv("IR_VERIFY");
    for (int i = 0; i < np; i++) {
        int st = p[i].run(g, cx, d);
        if (st)
            return st;
        if (verify && (st = ir_verify(g, d)) != ST_OK)
            return diag_set(d, st, "after pass %s: %s", p[i].name, d->msg);
        if (cx->dump && (strcmp(cx->dump, "all") == 0 || strcmp(cx->dump, p[i].name) == 0)) {
            if (!(g->valid & IR_VALID_TOPO) && (st = ir_fill_topo(g, d)) != ST_OK)
                return st;
            fprintf(df, "# after %s\n", p[i].name);
            ir_print(g, df);
        }
    }
    return ST_OK;
}

int pass_compile_inference(struct ir_graph *g, struct pass_ctx *cx, struct diag *d)
{
    return pass_run_pipeline(g, inference_pipeline,
                             (int)(sizeof inference_pipeline / sizeof *inference_pipeline), cx, d);
}

void pass_list(void *file)
{
    for (size_t i = 0; i < sizeof inference_pipeline / sizeof *inference_pipeline; i++)
        fprintf(file, "  %s\n", inference_pipeline[i].name);
}
