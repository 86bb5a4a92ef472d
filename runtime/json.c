/* json.c — JSON writer and strict reader; see json.h. */
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

/* Length of the valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF) starting at p, or 0 if the bytes there are invalid. */
static size_t json_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        if (c == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    return len;
}

/* ======================================================================== */
/* writer                                                                   */
/* ======================================================================== */

void json_w_init(struct json_w *w, int pretty)
{
    memset(w, 0, sizeof *w);
    w->pretty = pretty;
}

void json_w_free(struct json_w *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

static void w_fail(struct json_w *w, const char *why)
{
    if (!w->err)
        w->err = why;
}

static void w_raw(struct json_w *w, const char *s, size_t n)
{
    if (w->err)
        return;
    if (w->cap - w->len < n + 1) { /* +1 keeps room for the final NUL */
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n + 1)
            cap *= 2;
        char *nb = realloc(w->buf, cap);
        if (!nb) {
            w_fail(w, "out of memory");
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void w_char(struct json_w *w, char c) { w_raw(w, &c, 1); }

static void w_indent(struct json_w *w)
{
    if (!w->pretty)
        return;
    w_char(w, '\n');
    for (int i = 0; i < w->depth; i++)
        w_raw(w, "  ", 2);
}

/* separator and layout before a value; enforces key/value pairing in objects */
static void w_before_value(struct json_w *w)
{
    if (w->depth == 0) {
        if (w->top_done)
            w_fail(w, "more than one top-level value");
        return;
    }
    int top = w->depth - 1;
    if (w->kind[top] == '{') {
        if (!w->have_key)
            w_fail(w, "object member without a key");
        w->have_key = 0;
        return;
    }
    if (w->count[top]++)
        w_char(w, ',');
    w_indent(w);
}

static void w_after_value(struct json_w *w)
{
    if (w->depth == 0)
        w->top_done = 1;
}

static void w_open(struct json_w *w, char kind)
{
    w_before_value(w);
    if (w->depth >= JSON_MAX_NEST) {
        w_fail(w, "nesting deeper than JSON_MAX_NEST");
        return;
    }
    w->kind[w->depth] = kind;
    w->count[w->depth] = 0;
    w->depth++;
    w_char(w, kind);
}

static void w_close(struct json_w *w, char kind)
{
    if (w->depth == 0 || w->kind[w->depth - 1] != kind) {
        w_fail(w, kind == '{' ? "json_obj_end without an open object"
                              : "json_arr_end without an open array");
        return;
    }
    if (w->have_key)
        w_fail(w, "key without a value");
    int had = w->count[w->depth - 1];
    w->depth--;
    if (had)
        w_indent(w);
    w_char(w, kind == '{' ? '}' : ']');
    w_after_value(w);
}

void json_obj_begin(struct json_w *w) { w_open(w, '{'); }
void json_obj_end(struct json_w *w) { w_close(w, '{'); }
void json_arr_begin(struct json_w *w) { w_open(w, '['); }
void json_arr_end(struct json_w *w) { w_close(w, '['); }

/* quoted, escaped string; invalid UTF-8 becomes U+FFFD so output is always valid */
static void w_quoted(struct json_w *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    w_char(w, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t run = 0; /* copy plain bytes in runs */
        while (i + run < n && p[i + run] >= 0x20 && p[i + run] < 0x80 && p[i + run] != '"' &&
               p[i + run] != '\\')
            run++;
        if (run) {
            w_raw(w, s + i, run);
            i += run;
            continue;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            w_raw(w, e, 2);
            i++;
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
                              : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            w_raw(w, named ? named : u, named ? 2 : 6);
            i++;
        } else {
            size_t l = json_utf8_len(p + i, n - i);
            w_raw(w, l ? s + i : "\\ufffd", l ? l : 6);
            i += l ? l : 1;
        }
    }
    w_char(w, '"');
}

void json_key(struct json_w *w, const char *key)
{
    int top = w->depth - 1;
    if (!key || top < 0 || w->kind[top] != '{' || w->have_key) {
        w_fail(w, "json_key outside an object, twice in a row, or NULL");
        return;
    }
    if (w->count[top]++)
        w_char(w, ',');
    w_indent(w);
    w_quoted(w, key, strlen(key));
    w_raw(w, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
    w->have_key = 1;
}

void json_str_n(struct json_w *w, const char *s, size_t n)
{
    w_before_value(w);
    w_quoted(w, s, n);
    w_after_value(w);
}

static void w_scalar(struct json_w *w, const char *text)
{
    w_before_value(w);
    w_raw(w, text, strlen(text));
    w_after_value(w);
}

void json_str(struct json_w *w, const char *s)
{
    if (s)
        json_str_n(w, s, strlen(s));
    else
        json_null(w);
}

void json_int(struct json_w *w, int64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)v);
    w_scalar(w, t);
}

void json_double(struct json_w *w, double v)
{
    if (!isfinite(v)) { /* JSON has no NaN/Inf; null is what Python's strict mode expects */
        json_null(w);
        return;
    }
    char t[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v)
            break;
    }
    if (!strpbrk(t, ".e")) /* keep it a float for the reader: 1 -> 1.0 */
        strcat(t, ".0");
    w_scalar(w, t);
}

void json_bool(struct json_w *w, int v) { w_scalar(w, v ? "true" : "false"); }
void json_null(struct json_w *w) { w_scalar(w, "null"); }

int json_w_finish(struct json_w *w, const char *what, struct diag *d)
{
    if (!w->err && (w->depth || !w->top_done))
        w_fail(w, w->depth ? "unclosed object or array" : "no value written");
    if (w->err)
        return diag_set(d, strcmp(w->err, "out of memory") ? ST_ERR_INVALID : ST_ERR_NOMEM,
                        "%s: JSON writer: %s", what, w->err);
    w->buf[w->len] = 0; /* w_raw always leaves room */
    return ST_OK;
}

int json_w_write_file(struct json_w *w, const char *path, struct diag *d)
{
    if (w->pretty && w->top_done && !w->depth)
        w_char(w, '\n');
    int st = json_w_finish(w, path, d);
    if (st)
        return st;
    return io_write_atomic(path, w->buf, w->len, d);
}

/* ======================================================================== */
/* reader                                                                   */
/* ======================================================================== */

struct jp {
    const unsigned char *p;
    size_t len, pos;
    const char *what;
    struct diag *d;
    struct ir_arena *a;
    int depth, max_depth;
};

static int jp_err(struct jp *j, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int jp_err(struct jp *j, size_t at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    long line = 1, col = 1; /* computed only on error: the happy path stays O(n) */
    for (size_t i = 0; i < at && i < j->len; i++) {
        if (j->p[i] == '\n') {
            line++;
            col = 1;
        } else
            col++;
    }
    return diag_set(j->d, ST_ERR_PARSE, "%s: byte %zu (line %ld, col %ld): %s", j->what, at, line,
                    col, msg);
}

static void jp_ws(struct jp *j)
{
    while (j->pos < j->len) {
        unsigned char c = j->p[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        j->pos++;
    }
}

static int jp_peek(struct jp *j) { return j->pos < j->len ? j->p[j->pos] : -1; }

static int jp_value(struct jp *j, struct json_node *out);

static int jp_hex4(struct jp *j, size_t at, unsigned *v)
{
    if (at + 4 > j->len)
        return jp_err(j, at, "truncated \\u escape");
    *v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = j->p[at + k], x;
        if (c >= '0' && c <= '9')
            x = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            x = (c | 0x20) - 'a' + 10;
        else
            return jp_err(j, at + k, "bad hex digit in \\u escape");
        *v = *v << 4 | x;
    }
    return ST_OK;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* \uXXXX at j->pos (just after the backslash-u), joining surrogate pairs */
static int jp_unicode(struct jp *j, char *o, size_t *olen)
{
    size_t at = j->pos - 2;
    unsigned cp = 0, lo = 0;
    if (jp_hex4(j, j->pos, &cp))
        return ST_ERR_PARSE;
    j->pos += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return jp_err(j, at, "lone low surrogate \\u%04x", cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (j->pos + 2 > j->len || j->p[j->pos] != '\\' || j->p[j->pos + 1] != 'u')
            return jp_err(j, at, "high surrogate \\u%04x not followed by a low one", cp);
        if (jp_hex4(j, j->pos + 2, &lo))
            return ST_ERR_PARSE;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return jp_err(j, at, "high surrogate \\u%04x not followed by a low one", cp);
        j->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    *olen += put_utf8(o + *olen, cp);
    return ST_OK;
}

static int jp_escape(struct jp *j, char *o, size_t *olen)
{
    if (j->pos + 1 >= j->len)
        return jp_err(j, j->pos, "unterminated string");
    unsigned char e = j->p[j->pos + 1];
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *hit = e ? strchr(from, e) : NULL;
    j->pos += 2;
    if (hit) {
        o[(*olen)++] = to[hit - from];
        return ST_OK;
    }
    if (e == 'u')
        return jp_unicode(j, o, olen);
    return jp_err(j, j->pos - 2, "invalid escape \\%c", e >= 0x20 && e < 0x7f ? e : '?');
}

/* String at j->pos (the opening quote). The decoded form is never longer than
 * the raw text, so one arena block of the raw length is enough. */
static int jp_string(struct jp *j, const char **s, size_t *slen)
{
    size_t start = j->pos++, end = j->pos;
    while (end < j->len && j->p[end] != '"')
        end += j->p[end] == '\\' ? 2 : 1;
    if (end >= j->len)
        return jp_err(j, start, "unterminated string");
    char *o = ir_arena_alloc(j->a, end - start + 1);
    size_t olen = 0;
    while (j->pos < end) {
        unsigned char c = j->p[j->pos];
        if (c == '\\') {
            if (jp_escape(j, o, &olen))
                return ST_ERR_PARSE;
        } else if (c < 0x20) {
            return jp_err(j, j->pos, "control character 0x%02x in a string must be escaped", c);
        } else {
            size_t l = json_utf8_len(j->p + j->pos, end - j->pos);
            if (!l)
                return jp_err(j, j->pos, "invalid UTF-8 in a string");
            memcpy(o + olen, j->p + j->pos, l);
            olen += l;
            j->pos += l;
        }
    }
    j->pos = end + 1;
    o[olen] = 0;
    *s = o;
    *slen = olen;
    return ST_OK;
}

static size_t jp_digits(struct jp *j)
{
    size_t n = 0;
    while (j->pos < j->len && j->p[j->pos] >= '0' && j->p[j->pos] <= '9') {
        j->pos++;
        n++;
    }
    return n;
}

/* exact int64 of an integer token, or 0 if it overflows */
static int jp_to_int64(const unsigned char *t, size_t n, int64_t *v)
{
    int neg = t[0] == '-';
    uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t k = (size_t)neg; k < n; k++) {
        unsigned dgt = t[k] - '0';
        if (acc > (lim - dgt) / 10)
            return 0;
        acc = acc * 10 + dgt;
    }
    *v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 1;
}

static int jp_number(struct jp *j, struct json_node *out)
{
    size_t start = j->pos;
    int frac_or_exp = 0;
    if (jp_peek(j) == '-')
        j->pos++;
    if (jp_peek(j) == '0') {
        j->pos++;
        if (jp_peek(j) >= '0' && jp_peek(j) <= '9')
            return jp_err(j, start, "leading zeros are not allowed");
    } else if (!jp_digits(j))
        return jp_err(j, start, "invalid number");
    if (jp_peek(j) == '.') {
        j->pos++;
        frac_or_exp = 1;
        if (!jp_digits(j))
            return jp_err(j, j->pos, "digits expected after '.'");
    }
    if (jp_peek(j) == 'e' || jp_peek(j) == 'E') {
        j->pos++;
        frac_or_exp = 1;
        if (jp_peek(j) == '+' || jp_peek(j) == '-')
            j->pos++;
        if (!jp_digits(j))
            return jp_err(j, j->pos, "digits expected in the exponent");
    }
    size_t n = j->pos - start;
    char small[64], *tok = n < sizeof small ? small : malloc(n + 1); /* strtod needs a NUL */
    if (!tok)
        return diag_set(j->d, ST_ERR_NOMEM, "%s: out of memory", j->what);
    memcpy(tok, j->p + start, n);
    tok[n] = 0;
    out->type = JSON_NUM;
    out->num = strtod(tok, NULL);
    if (tok != small)
        free(tok);
    if (!isfinite(out->num))
        return jp_err(j, start, "number out of range of a double");
    if (!frac_or_exp)
        out->is_int = jp_to_int64(j->p + start, n, &out->i);
    return ST_OK;
}

static int jp_literal(struct jp *j, struct json_node *out)
{
    static const struct { const char *text; enum json_type t; int b; } lits[] = {
        {"true", JSON_BOOL, 1}, {"false", JSON_BOOL, 0}, {"null", JSON_NULL, 0}};
    for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
        size_t n = strlen(lits[k].text);
        if (j->len - j->pos >= n && memcmp(j->p + j->pos, lits[k].text, n) == 0) {
            out->type = lits[k].t;
            out->b = lits[k].b;
            j->pos += n;
            return ST_OK;
        }
    }
    return jp_err(j, j->pos, "invalid literal");
}

/* growable temporary member list of one container */
struct jp_vec {
    struct json_node *items;
    const char **keys;
    size_t *klen;
    size_t n, cap;
};

static int jp_vec_push(struct jp *j, struct jp_vec *v)
{
    if (v->n < v->cap)
        return ST_OK;
    size_t cap = v->cap ? v->cap * 2 : 8;
    struct json_node *it = realloc(v->items, cap * sizeof *it);
    if (it)
        v->items = it;
    const char **k = realloc(v->keys, cap * sizeof *k);
    if (k)
        v->keys = k;
    size_t *kl = realloc(v->klen, cap * sizeof *kl);
    if (kl)
        v->klen = kl;
    if (!it || !k || !kl)
        return diag_set(j->d, ST_ERR_NOMEM, "%s: out of memory", j->what);
    v->cap = cap;
    return ST_OK;
}

static void jp_vec_free(struct jp_vec *v)
{
    free(v->items);
    free(v->keys);
    free(v->klen);
}

struct jp_key {
    const char *k;
    size_t len, idx;
};

static int jp_key_cmp(const void *a, const void *b)
{
    const struct jp_key *x = a, *y = b;
    int c = memcmp(x->k, y->k, x->len < y->len ? x->len : y->len);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : 1; /* equal keys: document order, to name the later one */
}

/* Sort keys and compare neighbours: O(n log n), since safetensors headers can
 * name hundreds of thousands of tensors. */
static int jp_check_dups(struct jp *j, const struct jp_vec *v)
{
    if (v->n < 2)
        return ST_OK;
    struct jp_key *ks = malloc(v->n * sizeof *ks);
    if (!ks)
        return diag_set(j->d, ST_ERR_NOMEM, "%s: out of memory", j->what);
    for (size_t i = 0; i < v->n; i++)
        ks[i] = (struct jp_key){v->keys[i], v->klen[i], i};
    qsort(ks, v->n, sizeof *ks, jp_key_cmp);
    int st = ST_OK;
    for (size_t i = 1; i < v->n && !st; i++)
        if (ks[i].len == ks[i - 1].len && memcmp(ks[i].k, ks[i - 1].k, ks[i].len) == 0)
            st = jp_err(j, v->items[ks[i].idx].offset, "duplicate key \"%s\"", ks[i].k);
    free(ks);
    return st;
}

static int jp_member(struct jp *j, struct jp_vec *v, int is_obj)
{
    if (jp_vec_push(j, v))
        return ST_ERR_NOMEM;
    struct json_node *it = &v->items[v->n];
    memset(it, 0, sizeof *it);
    v->keys[v->n] = NULL;
    v->klen[v->n] = 0;
    if (is_obj) {
        jp_ws(j);
        if (jp_peek(j) != '"')
            return jp_err(j, j->pos, "object key (a string) expected");
        if (jp_string(j, &v->keys[v->n], &v->klen[v->n]))
            return ST_ERR_PARSE;
        jp_ws(j);
        if (jp_peek(j) != ':')
            return jp_err(j, j->pos, "':' expected after an object key");
        j->pos++;
    }
    if (jp_value(j, it))
        return ST_ERR_PARSE;
    v->n++;
    return ST_OK;
}

static int jp_container(struct jp *j, struct json_node *out, int is_obj)
{
    char close = is_obj ? '}' : ']';
    if (++j->depth > j->max_depth)
        return jp_err(j, j->pos, "nesting deeper than %d", j->max_depth);
    j->pos++;
    struct jp_vec v = {0};
    int st = ST_OK;
    jp_ws(j);
    if (jp_peek(j) == close)
        j->pos++;
    else
        for (;;) {
            if ((st = jp_member(j, &v, is_obj)))
                break;
            jp_ws(j);
            int c = jp_peek(j);
            j->pos++;
            if (c == close)
                break;
            if (c != ',') {
                st = jp_err(j, j->pos - 1, "',' or '%c' expected", close);
                break;
            }
        }
    if (!st && is_obj)
        st = jp_check_dups(j, &v);
    if (!st) {
        out->type = is_obj ? JSON_OBJ : JSON_ARR;
        out->n = v.n;
        out->items = ir_arena_alloc(j->a, v.n * sizeof *out->items);
        if (v.n)
            memcpy(out->items, v.items, v.n * sizeof *out->items);
        if (is_obj) {
            out->keys = ir_arena_alloc(j->a, v.n * sizeof *out->keys);
            if (v.n)
                memcpy(out->keys, v.keys, v.n * sizeof *out->keys);
        }
    }
    jp_vec_free(&v);
    j->depth--;
    return st;
}

static int jp_value(struct jp *j, struct json_node *out)
{
    jp_ws(j);
    out->offset = j->pos;
    int c = jp_peek(j);
    if (c < 0)
        return jp_err(j, j->pos, "unexpected end of input");
    if (c == '{' || c == '[')
        return jp_container(j, out, c == '{');
    if (c == '"') {
        out->type = JSON_STR;
        return jp_string(j, &out->s, &out->slen);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return jp_number(j, out);
    if (c == 't' || c == 'f' || c == 'n')
        return jp_literal(j, out);
    if (c >= 0x20 && c < 0x7f)
        return jp_err(j, j->pos, "unexpected character '%c'", c);
    return jp_err(j, j->pos, "unexpected byte 0x%02x", c);
}

int json_parse(const char *buf, size_t len, const char *what, const struct json_limits *limits,
               struct json_doc *doc, struct diag *d)
{
    struct json_limits lim = {128, (size_t)256 << 20};
    if (limits && limits->max_depth > 0)
        lim.max_depth = limits->max_depth;
    if (limits && limits->max_bytes > 0)
        lim.max_bytes = limits->max_bytes;
    doc->root = NULL;
    doc->arena = NULL;
    if (len > lim.max_bytes)
        return diag_set(d, ST_ERR_PARSE, "%s: %zu bytes of JSON exceeds the limit of %zu", what,
                        len, lim.max_bytes);
    struct jp j = {(const unsigned char *)buf, len, 0, what, d, ir_arena_new(), 0, lim.max_depth};
    struct json_node *root = ir_arena_alloc(j.a, sizeof *root);
    int st = jp_value(&j, root);
    if (!st) {
        jp_ws(&j);
        if (j.pos != j.len)
            st = jp_err(&j, j.pos, "unexpected data after the JSON value");
    }
    if (st) {
        ir_arena_free(j.a);
        return st;
    }
    doc->root = root;
    doc->arena = j.a;
    return ST_OK;
}

static int json_read_all(const char *path, size_t max, char **out, size_t *len, struct diag *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int st = ST_OK;
    char *buf = NULL;
    size_t got = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        st = diag_set(d, ST_ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)sb.st_size > max)
        st = diag_set(d, ST_ERR_PARSE, "%s: %lld bytes of JSON exceeds the limit of %zu", path,
                      (long long)sb.st_size, max);
    else if (!(buf = malloc((size_t)sb.st_size + 1)))
        st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
    while (!st && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            st = diag_set(d, ST_ERR_IO, "%s: read failed: %s", path,
                          r < 0 ? strerror(errno) : "file shrank while reading");
        else
            got += (size_t)r;
    }
    close(fd);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    *len = got;
    return ST_OK;
}

int json_parse_file(const char *path, const struct json_limits *limits, struct json_doc *doc,
                    struct diag *d)
{
    size_t max = limits && limits->max_bytes ? limits->max_bytes : (size_t)256 << 20;
    char *buf = NULL;
    size_t len = 0;
    doc->root = NULL;
    doc->arena = NULL;
    int st = json_read_all(path, max, &buf, &len, d);
    if (st)
        return st;
    st = json_parse(buf, len, path, limits, doc, d);
    free(buf);
    return st;
}

void json_doc_free(struct json_doc *doc)
{
    ir_arena_free(doc->arena);
    doc->arena = NULL;
    doc->root = NULL;
}

const struct json_node *json_get(const struct json_node *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

const struct json_node *json_at(const struct json_node *arr, size_t i)
{
    if (!arr || arr->type != JSON_ARR || i >= arr->n)
        return NULL;
    return &arr->items[i];
}

const char *json_type_name(enum json_type t)
{
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUM: return "number";
    case JSON_STR: return "string";
    case JSON_ARR: return "array";
    case JSON_OBJ: return "object";
    }
    return "?";
}
