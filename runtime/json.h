/* json.h — a JSON writer into a growable buffer, and a small strict reader.
 *
 * The writer is what pdc uses for decomposition.json, metrics.jsonl and the
 * safetensors header; the reader reads those back (and untrusted safetensors
 * headers), so it is strict RFC 8259: no comments, trailing commas, NaN, leading
 * zeros or invalid UTF-8; duplicate object keys are rejected (they are always a
 * bug in a file pdc wrote, and an ambiguity in one it did not). */
#ifndef PDC_JSON_H
#define PDC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"

/* ---- writer -------------------------------------------------------------- */

#define JSON_MAX_NEST 64

/* Call json_w_init, then values in document order: inside an object every value
 * is preceded by json_key. Misuse (a value without a key, unbalanced ends) and
 * out-of-memory are remembered and reported once by json_w_finish. */
struct json_w {
    char *buf;
    size_t len, cap;
    int pretty;                      /* 2-space indent, one member per line */
    int depth;
    char kind[JSON_MAX_NEST];        /* '{' or '[' per open container */
    int count[JSON_MAX_NEST];        /* members written so far */
    int have_key;                    /* a key was written, its value not yet */
    int top_done;                    /* the top-level value is complete */
    const char *err;                 /* first misuse, or NULL */
};

void json_w_init(struct json_w *w, int pretty);
void json_w_free(struct json_w *w);
void json_obj_begin(struct json_w *w);
void json_obj_end(struct json_w *w);
void json_arr_begin(struct json_w *w);
void json_arr_end(struct json_w *w);
void json_key(struct json_w *w, const char *key);
void json_str(struct json_w *w, const char *s);             /* NULL writes null */
void json_str_n(struct json_w *w, const char *s, size_t n); /* may hold NUL bytes */
void json_int(struct json_w *w, int64_t v);
/* shortest of %.15g/%.16g/%.17g that reads back to the same double; integral
 * values get ".0" so readers keep them floats; NaN and +-Inf are written null */
void json_double(struct json_w *w, double v);
void json_bool(struct json_w *w, int v);
void json_null(struct json_w *w);
/* Checks the document is complete and well-formed; buf then holds it,
 * NUL-terminated (len excludes the NUL). `what` names the document in errors. */
int json_w_finish(struct json_w *w, const char *what, struct diag *d);
/* finish + io_write_atomic (pretty documents end with a newline) */
int json_w_write_file(struct json_w *w, const char *path, struct diag *d);

/* ---- reader -------------------------------------------------------------- */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json_node {
    enum json_type type;
    int b;              /* BOOL */
    double num;         /* NUM: always set (nearest double) */
    int64_t i;          /* NUM: set when is_int */
    int is_int;         /* NUM written without fraction/exponent and fits int64 */
    const char *s;      /* STR: NUL-terminated (may contain NULs: use slen) */
    size_t slen;
    size_t n;           /* ARR/OBJ member count */
    struct json_node *items; /* ARR/OBJ members, in document order */
    const char **keys;  /* OBJ: keys[i] names items[i] */
    size_t offset;      /* byte offset of the value in the input, for messages */
};

struct json_limits {
    int max_depth;      /* nesting; default 128 */
    size_t max_bytes;   /* input size; default 256 MiB */
};

struct json_doc {
    struct json_node *root;
    struct ir_arena *arena; /* owns every node and string */
};

/* Parse buf[0..len) (need not be NUL-terminated). Errors read
 * "WHAT: byte N (line L, col C): message". limits may be NULL. */
int json_parse(const char *buf, size_t len, const char *what, const struct json_limits *limits,
               struct json_doc *doc, struct diag *d);
int json_parse_file(const char *path, const struct json_limits *limits, struct json_doc *doc,
                    struct diag *d);
void json_doc_free(struct json_doc *doc);

/* lookups: NULL when absent or of another type */
const struct json_node *json_get(const struct json_node *obj, const char *key);
const struct json_node *json_at(const struct json_node *arr, size_t i);
const char *json_type_name(enum json_type t);

#endif
