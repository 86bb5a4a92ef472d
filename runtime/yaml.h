/* yaml.h — the YAML subset pdc's config files use.
 *
 * Supported: block mappings and sequences by indentation (a sequence may sit at
 * its parent key's indentation), flow mappings/sequences ({} / [], may span
 * lines), plain / 'single' / "double"-quoted scalars (one line each), comments,
 * an optional leading "---".
 * Rejected with FILE:LINE:COL: tabs in indentation, anchors/aliases/tags,
 * block scalars (| >), explicit keys (?), complex keys, directives, multiple
 * documents, duplicate keys, multi-line plain or quoted scalars.
 *
 * The tree keeps scalars as text; typing happens when a value is read
 * (yaml_as_*), so an error can name the key path (`loss_metric_configs[0].coeff:
 * "abc" is not a number`). Scalars are YAML 1.2 core schema: null is ~, null,
 * Null, NULL or empty; booleans are true/false (True, TRUE, ...), never yes/no;
 * numbers are decimal, 0x/0o integers, .inf/.nan floats. Quoted scalars also
 * convert ("1e-3" reads as a number), as pydantic's lax mode does for the
 * reference implementations' configs. */
#ifndef PDC_YAML_H
#define PDC_YAML_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"

enum yaml_kind { YAML_MAP, YAML_LIST, YAML_SCALAR };

struct yaml_node {
    enum yaml_kind kind;
    const char *str;           /* SCALAR: text with escapes resolved */
    int quoted;                /* SCALAR: 0 plain, '\'' or '"' */
    int n;                     /* MAP/LIST: entry count */
    const char **keys;         /* MAP: keys in document order */
    struct yaml_node **items;  /* MAP: items[i] is the value of keys[i]; LIST: elements */
    const char *path;          /* "module_info[1].C"; "" for the root */
    const char *file;          /* document name, for messages */
    int line, col;             /* 1-based start of the node */
};

struct yaml_doc {
    struct yaml_node *root;    /* an empty document is a null scalar */
    struct ir_arena *arena;    /* owns every node and string */
};

int yaml_parse(const char *text, size_t len, const char *what, struct yaml_doc *doc,
               struct diag *d);
int yaml_parse_file(const char *path, struct yaml_doc *doc, struct diag *d);
void yaml_doc_free(struct yaml_doc *doc);

/* NULL when absent or node is not a map/list (so lookups chain safely) */
const struct yaml_node *yaml_get(const struct yaml_node *map, const char *key);
const struct yaml_node *yaml_at(const struct yaml_node *list, int i);
/* like yaml_get, but a missing key (or a non-map) is an error naming the path */
const struct yaml_node *yaml_need(const struct yaml_node *map, const char *key, struct diag *d);
const char *yaml_kind_name(enum yaml_kind k);

int yaml_is_null(const struct yaml_node *n); /* plain ~, null, Null, NULL or empty */
int yaml_as_double(const struct yaml_node *n, double *out, struct diag *d);
/* integers; also float syntax with an integral value (steps: 1e4) */
int yaml_as_int64(const struct yaml_node *n, int64_t *out, struct diag *d);
int yaml_as_bool(const struct yaml_node *n, int *out, struct diag *d);
int yaml_as_str(const struct yaml_node *n, const char **out, struct diag *d); /* any scalar */

#endif
