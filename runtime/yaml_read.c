/* yaml_read.c — lookups and typed reads on a parsed YAML tree (yaml.h); errors
 * name the key path and the file position. */
#include "yaml.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- lookups and typed reads --------------------------------------------- */

const struct yaml_node *yaml_get(const struct yaml_node *map, const char *key)
{
    if (!map || map->kind != YAML_MAP)
        return NULL;
    for (int i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return map->items[i];
    return NULL;
}

const struct yaml_node *yaml_at(const struct yaml_node *list, int i)
{
    if (!list || list->kind != YAML_LIST || i < 0 || i >= list->n)
        return NULL;
    return list->items[i];
}

const char *yaml_kind_name(enum yaml_kind k)
{
    return k == YAML_MAP ? "a mapping" : k == YAML_LIST ? "a sequence" : "a scalar";
}

static int yn_err(const struct yaml_node *n, struct diag *d, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "FILE:LINE:COL: PATH: message" */
static int yn_err(const struct yaml_node *n, struct diag *d, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return diag_set(d, ST_ERR_INVALID, "%s:%d:%d: %s%s%s", n->file, n->line, n->col, n->path,
                    *n->path ? ": " : "", msg);
}

const struct yaml_node *yaml_need(const struct yaml_node *map, const char *key, struct diag *d)
{
    if (!map) {
        diag_set(d, ST_ERR_INVALID, "missing mapping (looking for \"%s\")", key);
        return NULL;
    }
    if (map->kind != YAML_MAP) {
        yn_err(map, d, "expected a mapping with key \"%s\", found %s", key, yaml_kind_name(map->kind));
        return NULL;
    }
    const struct yaml_node *v = yaml_get(map, key);
    if (!v)
        yn_err(map, d, "missing key \"%s\"", key);
    return v;
}

int yaml_is_null(const struct yaml_node *n)
{
    if (!n || n->kind != YAML_SCALAR || n->quoted)
        return 0;
    const char *s = n->str;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* a scalar to convert, or an error naming what was found instead */
static int yn_scalar(const struct yaml_node *n, const char *want, struct diag *d)
{
    if (!n)
        return diag_set(d, ST_ERR_INVALID, "missing value (expected %s)", want);
    if (n->kind != YAML_SCALAR)
        return yn_err(n, d, "expected %s, found %s", want, yaml_kind_name(n->kind));
    if (yaml_is_null(n))
        return yn_err(n, d, "expected %s, found null", want);
    return ST_OK;
}

static int yn_digits(const char **p, int base)
{
    int n = 0;
    for (;; (*p)++, n++) {
        int c = **p, v = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : 99;
        if (v >= base)
            return n;
    }
}

/* YAML 1.2 core float syntax (strtod alone would take "nan", "0x1p3", " 1") */
static int yn_parse_double(const char *s, double *out)
{
    const char *p = s + (*s == '-' || *s == '+');
    static const char *const inf[] = {".inf", ".Inf", ".INF"}, *const nan[] = {".nan", ".NaN", ".NAN"};
    for (int i = 0; i < 3; i++) {
        if (!strcmp(p, inf[i])) {
            *out = *s == '-' ? -HUGE_VAL : HUGE_VAL;
            return 1;
        }
        if (!strcmp(s, nan[i])) {
            *out = (double)NAN;
            return 1;
        }
    }
    int nd = yn_digits(&p, 10);
    if (*p == '.') {
        p++;
        nd += yn_digits(&p, 10);
    }
    if (!nd)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '-' || *p == '+';
        if (!yn_digits(&p, 10))
            return 0;
    }
    if (*p)
        return 0;
    errno = 0;
    *out = strtod(s, NULL);
    return !(errno == ERANGE && isinf(*out)); /* 1e999: out of range, not infinity */
}

int yaml_as_double(const struct yaml_node *n, double *out, struct diag *d)
{
    int st = yn_scalar(n, "a number", d);
    if (st)
        return st;
    int64_t i;
    const char *p = n->str;
    if ((p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) && !yaml_as_int64(n, &i, NULL)) {
        *out = (double)i;
        return ST_OK;
    }
    if (!yn_parse_double(n->str, out))
        return yn_err(n, d, "\"%s\" is not a number", n->str);
    return ST_OK;
}

/* decimal with sign, 0x hex, 0o octal; 0 if not one of those or out of range */
static int yn_parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    int neg = *p == '-', base = 10;
    p += *p == '-' || *p == '+';
    if (p == s && p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
        base = p[1] == 'x' ? 16 : 8;
        p += 2;
    }
    const char *q = p;
    if (!yn_digits(&q, base) || *q)
        return 0;
    uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        int c = *p;
        unsigned v = (unsigned)(c >= '0' && c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        if (acc > (lim - v) / (uint64_t)base)
            return 0;
        acc = acc * (uint64_t)base + v;
    }
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 1;
}

int yaml_as_int64(const struct yaml_node *n, int64_t *out, struct diag *d)
{
    int st = yn_scalar(n, "an integer", d);
    if (st)
        return st;
    if (yn_parse_int(n->str, out))
        return ST_OK;
    double v;
    /* 1e4, 4096.0: integral floats are fine; the bound keeps the cast defined */
    if (yn_parse_double(n->str, &v) && v == floor(v) && fabs(v) < 0x1p63) {
        *out = (int64_t)v;
        return ST_OK;
    }
    return yn_err(n, d, "\"%s\" is not an integer%s", n->str,
                  yn_parse_double(n->str, &v) && isfinite(v) ? " (or out of range)" : "");
}

int yaml_as_bool(const struct yaml_node *n, int *out, struct diag *d)
{
    int st = yn_scalar(n, "a boolean", d);
    if (st)
        return st;
    static const char *const t[] = {"true", "True", "TRUE"}, *const f[] = {"false", "False", "FALSE"};
    for (int i = 0; i < 3; i++) {
        if (!strcmp(n->str, t[i]) || !strcmp(n->str, f[i])) {
            *out = !strcmp(n->str, t[i]);
            return ST_OK;
        }
    }
    return yn_err(n, d, "\"%s\" is not a boolean (use true or false)", n->str);
}

int yaml_as_str(const struct yaml_node *n, const char **out, struct diag *d)
{
    if (!n)
        return diag_set(d, ST_ERR_INVALID, "missing value (expected a string)");
    if (n->kind != YAML_SCALAR)
        return yn_err(n, d, "expected a string, found %s", yaml_kind_name(n->kind));
    *out = n->str;
    return ST_OK;
}
