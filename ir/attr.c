/* attr.c — attribute lookup with defaults. */
#include <string.h>

#include "ir.h"

const struct ir_attr *ir_attr_get(const struct ir_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->n_attr; i++)
        if (strcmp(n->attr[i].name, name) == 0)
            return &n->attr[i];
    return NULL;
}

int64_t ir_attr_int(const struct ir_node *n, const char *name, int64_t def)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    return a && a->type == IR_ATTR_INT ? a->i : def;
}

double ir_attr_float(const struct ir_node *n, const char *name, double def)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    if (!a)
        return def;
    if (a->type == IR_ATTR_FLOAT)
        return a->f;
    if (a->type == IR_ATTR_INT)
        return (double)a->i;
    return def;
}

const char *ir_attr_str(const struct ir_node *n, const char *name, const char *def)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    return a && a->type == IR_ATTR_STRING ? a->s : def;
}

int64_t ir_attr_ints(const struct ir_node *n, const char *name, const int64_t **v)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    if (!a || a->type != IR_ATTR_INTS) {
        *v = NULL;
        return -1;
    }
    *v = a->ints;
    return a->n;
}

int64_t ir_attr_floats(const struct ir_node *n, const char *name, const double **v)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    if (!a || a->type != IR_ATTR_FLOATS) {
        *v = NULL;
        return -1;
    }
    *v = a->floats;
    return a->n;
}
