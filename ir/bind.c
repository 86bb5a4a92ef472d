/* bind.c — give symbolic dims ("batch", "seq") concrete values. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

int ir_bind_sym(struct ir_graph *g, const char *name, int64_t v, struct diag *d)
{
    if (v < 0 || v > IR_MAX_ELEMS)
        return diag_set(d, ST_ERR_INVALID, "--bind %s=%lld: value must be in [0, 2^34]", name,
                        (long long)v);
    int s = -1;
    for (int i = 0; i < g->nsyms; i++)
        if (strcmp(g->syms[i], name) == 0)
            s = i;
    if (s < 0) {
        char known[512] = "";
        for (int i = 0; i < g->nsyms; i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, g->syms[i], sizeof known - strlen(known) - 1);
        }
        return diag_set(d, ST_ERR_INVALID, "--bind %s: the model has no symbolic dim '%s' (it has: %s)",
                        name, name, g->nsyms ? known : "none");
    }
    g->sym_val[s] = v;
    for (uint32_t t = 0; t < g->nt; t++) {
        struct ir_tensor *x = &g->t[t];
        for (int k = 0; k < x->rank; k++)
            if (x->sym[k] == s)
                x->dims[k] = v;
    }
    return ST_OK;
}

int ir_bind(struct ir_graph *g, const char *spec, struct diag *d)
{
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[256];
        if (len == 0 || len >= sizeof item)
            return diag_set(d, ST_ERR_INVALID, "--bind: bad item in '%s' (want NAME=N,...)", spec);
        memcpy(item, p, len);
        item[len] = 0;
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1])
            return diag_set(d, ST_ERR_INVALID, "--bind: '%s' is not NAME=N", item);
        *eq = 0;
        errno = 0;
        char *e;
        long long v = strtoll(eq + 1, &e, 10);
        if (errno || *e)
            return diag_set(d, ST_ERR_INVALID, "--bind: '%s' is not an integer", eq + 1);
        int st = ir_bind_sym(g, item, v, d);
        if (st)
            return st;
        p = end ? end + 1 : NULL;
    }
    return ST_OK;
}
