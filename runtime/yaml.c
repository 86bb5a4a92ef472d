/* yaml.c — recursive-descent parser for the YAML subset in yaml.h.
 *
 * Block structure is decided by columns: a block collection owns every
 * following line whose content starts at its column; content further left ends
 * it, content further right that no inline "key:" or "- " opened is an error.
 * Flow collections ignore line structure. */
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

#define YAML_MAX_DEPTH 64
#define YAML_MAX_BYTES ((size_t)16 << 20) /* configs are small; anything bigger is a mistake */

struct yp {
    const char *s; /* NUL-terminated copy, CRLF folded to LF */
    size_t len, pos;
    const char *what;
    struct diag *d;
    struct ir_arena *a;
    int depth;
    int seen_content; /* a leading "---" is allowed only before any content */
};

/* ---- positions and errors ------------------------------------------------ */

static void yp_linecol(const struct yp *y, size_t at, int *line, int *col)
{
    *line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < at && i < y->len; i++)
        if (y->s[i] == '\n') {
            (*line)++;
            ls = i + 1;
        }
    *col = (int)(at - ls) + 1;
}

static int yp_err(struct yp *y, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int yp_err(struct yp *y, size_t at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    yp_linecol(y, at, &line, &col);
    return diag_set(y->d, ST_ERR_PARSE, "%s:%d:%d: %s", y->what, line, col, msg);
}

static size_t yp_line_start(const struct yp *y, size_t at)
{
    while (at > 0 && y->s[at - 1] != '\n')
        at--;
    return at;
}

static int yp_column(const struct yp *y, size_t at) { return (int)(at - yp_line_start(y, at)); }

static int is_blank(char c) { return c == ' ' || c == '\t'; }
static int is_break(char c) { return c == '\n' || c == 0; }
static int is_ws(char c) { return is_blank(c) || is_break(c); }
static int is_flow_ind(char c) { return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'; }

static char yp_ch(const struct yp *y, size_t at) { return at < y->len ? y->s[at] : 0; }

static void yp_skip_blanks(struct yp *y)
{
    while (is_blank(yp_ch(y, y->pos)))
        y->pos++;
}

/* '#' starts a comment only at line start or after whitespace ("a#b" is text) */
static int yp_is_comment(const struct yp *y, size_t at)
{
    return yp_ch(y, at) == '#' && (at == 0 || is_ws(y->s[at - 1]));
}

static void yp_skip_line(struct yp *y)
{
    while (!is_break(yp_ch(y, y->pos)))
        y->pos++;
}

/* after a value: only blanks and a comment may remain on the line */
static int yp_expect_eol(struct yp *y)
{
    yp_skip_blanks(y);
    if (yp_is_comment(y, y->pos))
        yp_skip_line(y);
    if (!is_break(yp_ch(y, y->pos)))
        return yp_err(y, y->pos, "unexpected text after a value");
    return ST_OK;
}

static int yp_at_eol(struct yp *y)
{
    return is_break(yp_ch(y, y->pos)) || yp_is_comment(y, y->pos);
}

/* "---" / "..." at column 0 followed by whitespace */
static int yp_is_marker(const struct yp *y, size_t at)
{
    return (strncmp(y->s + at, "---", 3) == 0 || strncmp(y->s + at, "...", 3) == 0) &&
           is_ws(yp_ch(y, at + 3));
}

static int yp_check_line_start(struct yp *y, size_t ls)
{
    for (size_t i = ls; i < y->pos; i++)
        if (y->s[i] == '\t')
            return yp_err(y, i, "tab character in indentation (indent with spaces)");
    if (y->pos != ls)
        return ST_OK;
    if (yp_ch(y, y->pos) == '%')
        return yp_err(y, y->pos, "directives (%%...) are not supported");
    if (!yp_is_marker(y, y->pos))
        return ST_OK;
    if (y->s[y->pos] == '-' && !y->seen_content) { /* a leading "---" opens the one document */
        y->pos += 3;
        yp_skip_blanks(y);
        if (!yp_at_eol(y))
            return yp_err(y, y->pos, "content on the \"---\" line is not supported");
        return ST_OK;
    }
    return yp_err(y, y->pos, "multiple documents (\"---\" / \"...\") are not supported");
}

/* Move to the first content character of the current or a following line,
 * skipping blank and comment lines. Returns its 0-based column, -1 at end of
 * input, -2 on error. Idempotent when already on content. */
static int yp_next_content(struct yp *y)
{
    for (;;) {
        yp_skip_blanks(y);
        if (yp_is_comment(y, y->pos))
            yp_skip_line(y);
        char c = yp_ch(y, y->pos);
        if (c == 0)
            return -1;
        if (c == '\n') {
            y->pos++;
            continue;
        }
        size_t ls = yp_line_start(y, y->pos), before = y->pos;
        if (yp_check_line_start(y, ls))
            return -2;
        if (y->pos != before) /* consumed a leading "---" */
            continue;
        y->seen_content = 1;
        return (int)(y->pos - ls);
    }
}

/* ---- nodes --------------------------------------------------------------- */

static struct yaml_node *yp_node(struct yp *y, enum yaml_kind k, const char *path, size_t at)
{
    struct yaml_node *n = ir_arena_alloc(y->a, sizeof *n);
    n->kind = k;
    n->path = path;
    n->file = y->what;
    yp_linecol(y, at, &n->line, &n->col);
    return n;
}

static struct yaml_node *yp_null(struct yp *y, const char *path, size_t at)
{
    struct yaml_node *n = yp_node(y, YAML_SCALAR, path, at);
    n->str = "";
    return n;
}

static const char *yp_path_key(struct yp *y, const char *parent, const char *key)
{
    size_t n = strlen(parent) + strlen(key) + 2;
    char *p = ir_arena_alloc(y->a, n);
    snprintf(p, n, "%s%s%s", parent, *parent ? "." : "", key);
    return p;
}

static const char *yp_path_idx(struct yp *y, const char *parent, int i)
{
    size_t n = strlen(parent) + 16;
    char *p = ir_arena_alloc(y->a, n);
    snprintf(p, n, "%s[%d]", parent, i);
    return p;
}

/* growable entry list of one collection, copied into the arena when complete */
struct yvec {
    const char **keys;
    struct yaml_node **items;
    size_t *kpos; /* where each key starts, for duplicate messages */
    int n, cap;
};

static int yv_push(struct yp *y, struct yvec *v, const char *key, size_t kpos, struct yaml_node *it)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 8;
        const char **k = realloc(v->keys, (size_t)cap * sizeof *k);
        if (k)
            v->keys = k;
        struct yaml_node **i = realloc(v->items, (size_t)cap * sizeof *i);
        if (i)
            v->items = i;
        size_t *p = realloc(v->kpos, (size_t)cap * sizeof *p);
        if (p)
            v->kpos = p;
        if (!k || !i || !p)
            return diag_set(y->d, ST_ERR_NOMEM, "%s: out of memory", y->what);
        v->cap = cap;
    }
    v->keys[v->n] = key;
    v->kpos[v->n] = kpos;
    v->items[v->n++] = it;
    return ST_OK;
}

static void yv_free(struct yvec *v)
{
    free(v->keys);
    free(v->items);
    free(v->kpos);
}

static int yv_check_dup(struct yp *y, const struct yvec *v, const char *key, size_t kpos)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], key) == 0) {
            int line, col;
            yp_linecol(y, v->kpos[i], &line, &col);
            return yp_err(y, kpos, "duplicate key \"%s\" (first at line %d)", key, line);
        }
    return ST_OK;
}

static void yv_finish(struct yp *y, struct yvec *v, struct yaml_node *n)
{
    n->n = v->n;
    n->items = ir_arena_alloc(y->a, (size_t)v->n * sizeof *n->items);
    if (v->n)
        memcpy(n->items, v->items, (size_t)v->n * sizeof *n->items);
    if (n->kind == YAML_MAP) {
        n->keys = ir_arena_alloc(y->a, (size_t)v->n * sizeof *n->keys);
        if (v->n)
            memcpy(n->keys, v->keys, (size_t)v->n * sizeof *n->keys);
    }
    yv_free(v);
}

static int yp_enter(struct yp *y)
{
    if (++y->depth > YAML_MAX_DEPTH)
        return yp_err(y, y->pos, "nesting deeper than %d", YAML_MAX_DEPTH);
    return ST_OK;
}

/* ---- scalars ------------------------------------------------------------- */

/* characters that cannot start a plain scalar get a specific message */
static int yp_check_start(struct yp *y)
{
    char c = yp_ch(y, y->pos);
    switch (c) {
    case '&': return yp_err(y, y->pos, "anchors (&) are not supported");
    case '*': return yp_err(y, y->pos, "aliases (*) are not supported");
    case '!': return yp_err(y, y->pos, "tags (!) are not supported");
    case '|':
    case '>': return yp_err(y, y->pos, "block scalars (%c) are not supported", c);
    case '%':
    case '@':
    case '`': return yp_err(y, y->pos, "'%c' cannot start a plain scalar", c);
    case '?':
        if (is_ws(yp_ch(y, y->pos + 1)))
            return yp_err(y, y->pos, "explicit keys (?) are not supported");
        return ST_OK;
    default: return ST_OK;
    }
}

static size_t put_utf8(char *o, unsigned long cp)
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

static int yp_hex_escape(struct yp *y, size_t at, int ndig, char *o, size_t *olen)
{
    unsigned long cp = 0;
    for (int k = 0; k < ndig; k++) {
        char c = yp_ch(y, at + 2 + (size_t)k);
        int v = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
        if (v < 0)
            return yp_err(y, at, "bad escape: %d hex digits expected", ndig);
        cp = cp << 4 | (unsigned long)v;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return yp_err(y, at, "escape is not a Unicode scalar value");
    *olen += put_utf8(o + *olen, cp);
    y->pos = at + 2 + (size_t)ndig;
    return ST_OK;
}

/* one escape at y->pos (the backslash) of a double-quoted scalar */
static int yp_escape(struct yp *y, char *o, size_t *olen)
{
    static const char from[] = "0abtnvfre \"/\\", to[] = "\0\a\b\t\n\v\f\r\x1b \"/\\";
    size_t at = y->pos;
    char e = yp_ch(y, at + 1);
    const char *hit = e ? memchr(from, e, sizeof from - 1) : NULL;
    if (hit) {
        o[(*olen)++] = to[hit - from];
        y->pos += 2;
        return ST_OK;
    }
    switch (e) {
    case 'x': return yp_hex_escape(y, at, 2, o, olen);
    case 'u': return yp_hex_escape(y, at, 4, o, olen);
    case 'U': return yp_hex_escape(y, at, 8, o, olen);
    case 'N': *olen += put_utf8(o + *olen, 0x85); break;
    case '_': *olen += put_utf8(o + *olen, 0xA0); break;
    case 'L': *olen += put_utf8(o + *olen, 0x2028); break;
    case 'P': *olen += put_utf8(o + *olen, 0x2029); break;
    default:
        return yp_err(y, at, "unknown escape \\%c", e >= 0x20 && e < 0x7f ? e : '?');
    }
    y->pos += 2;
    return ST_OK;
}

/* Quoted scalar at y->pos, on one line. An escape decodes to at most 1.5x its
 * raw length (\L: 2 bytes -> 3), so twice the line's remaining length is enough. */
static int yp_quoted(struct yp *y, const char **out)
{
    size_t start = y->pos, eol = y->pos;
    char q = y->s[y->pos++];
    while (!is_break(yp_ch(y, eol)))
        eol++;
    char *o = ir_arena_alloc(y->a, 2 * (eol - start) + 1);
    size_t olen = 0;
    for (;;) {
        char c = yp_ch(y, y->pos);
        if (is_break(c))
            return yp_err(y, start, "unterminated quoted scalar (multi-line quoted scalars "
                                    "are not supported)");
        if (c == q && q == '\'' && yp_ch(y, y->pos + 1) == '\'') { /* '' is a quote */
            o[olen++] = '\'';
            y->pos += 2;
        } else if (c == q) {
            y->pos++;
            break;
        } else if (c == '\\' && q == '"') {
            if (yp_escape(y, o, &olen))
                return ST_ERR_PARSE;
        } else {
            o[olen++] = c;
            y->pos++;
        }
    }
    o[olen] = 0;
    *out = o;
    return ST_OK;
}

/* end of a plain scalar starting at `at` (not included), before trailing blanks */
static size_t yp_plain_end(const struct yp *y, size_t at, int flow)
{
    size_t i = at, end = at;
    for (;; i++) {
        char c = yp_ch(y, i);
        if (is_break(c))
            break;
        if (c == ':' && (is_ws(yp_ch(y, i + 1)) || (flow && is_flow_ind(yp_ch(y, i + 1)))))
            break;
        if (flow && is_flow_ind(c))
            break;
        if (c == '#' && i > at && is_blank(y->s[i - 1]))
            break;
        if (!is_blank(c))
            end = i + 1;
    }
    return end;
}

static int yp_plain(struct yp *y, int flow, const char **out)
{
    if (yp_check_start(y))
        return ST_ERR_PARSE;
    char c = yp_ch(y, y->pos);
    if (c == '#' || c == '\'' || c == '"' || is_flow_ind(c) ||
        ((c == '-' || c == ':') && is_ws(yp_ch(y, y->pos + 1))))
        return yp_err(y, y->pos, "unexpected '%c'", c);
    size_t end = yp_plain_end(y, y->pos, flow);
    *out = ir_arena_strndup(y->a, y->s + y->pos, end - y->pos);
    y->pos = end;
    return ST_OK;
}

/* a scalar (plain or quoted) at y->pos */
static int yp_scalar(struct yp *y, int flow, const char *path, struct yaml_node **out)
{
    struct yaml_node *n = yp_node(y, YAML_SCALAR, path, y->pos);
    char c = yp_ch(y, y->pos);
    n->quoted = c == '\'' || c == '"' ? c : 0;
    int st = n->quoted ? yp_quoted(y, &n->str) : yp_plain(y, flow, &n->str);
    *out = n;
    return st;
}

/* Does a block mapping key ("key:" + blank/break) start at y->pos? */
static int yp_is_key(const struct yp *y)
{
    size_t i = y->pos;
    char c = yp_ch(y, i);
    if (c == '\'' || c == '"') {
        for (i++; !is_break(yp_ch(y, i)); i++) {
            if (y->s[i] == '\\' && c == '"' && !is_break(yp_ch(y, i + 1)))
                i++;
            else if (y->s[i] == c && c == '\'' && yp_ch(y, i + 1) == '\'')
                i++;
            else if (y->s[i] == c)
                break;
        }
        if (is_break(yp_ch(y, i)))
            return 0;
        for (i++; is_blank(yp_ch(y, i)); i++) {
        }
    } else {
        if (c == '#' || is_flow_ind(c) || is_break(c) || ((c == '-' || c == '?' || c == ':') &&
                                                          is_ws(yp_ch(y, i + 1))))
            return 0;
        i = yp_plain_end(y, i, 0);
        while (is_blank(yp_ch(y, i)))
            i++;
    }
    return yp_ch(y, i) == ':' && is_ws(yp_ch(y, i + 1));
}

/* ---- flow collections ---------------------------------------------------- */

static int yp_flow_node(struct yp *y, const char *path, struct yaml_node **out);

/* whitespace, line breaks and comments inside a flow collection */
static int yp_flow_ws(struct yp *y, size_t open)
{
    for (;;) {
        char c = yp_ch(y, y->pos);
        if (is_blank(c) || c == '\n')
            y->pos++;
        else if (yp_is_comment(y, y->pos))
            yp_skip_line(y);
        else if (c == 0)
            return yp_err(y, open, "unterminated flow collection");
        else
            return ST_OK;
    }
}

static int yp_flow_key(struct yp *y, const char **key)
{
    char c = yp_ch(y, y->pos);
    if (c == '{' || c == '[')
        return yp_err(y, y->pos, "collections as mapping keys are not supported");
    if (c == '\'' || c == '"')
        return yp_quoted(y, key);
    return yp_plain(y, 1, key);
}

/* separator after a flow entry: ',' continues (1), the closer ends (0) */
static int yp_flow_sep(struct yp *y, size_t open, char close, int *more)
{
    if (yp_flow_ws(y, open))
        return ST_ERR_PARSE;
    char c = y->s[y->pos];
    if (c != ',' && c != close)
        return yp_err(y, y->pos, "expected ',' or '%c'", close);
    y->pos++;
    *more = c == ',';
    return ST_OK;
}

static int yp_flow_map_entry(struct yp *y, size_t open, struct yvec *v, const char *path)
{
    size_t kpos = y->pos;
    const char *key;
    struct yaml_node *val;
    if (yp_flow_key(y, &key) || yv_check_dup(y, v, key, kpos) || yp_flow_ws(y, open))
        return ST_ERR_PARSE;
    const char *cpath = yp_path_key(y, path, key);
    if (y->s[y->pos] != ':') { /* {a, b}: keys with null values */
        val = yp_null(y, cpath, y->pos);
    } else {
        y->pos++;
        if (yp_flow_ws(y, open))
            return ST_ERR_PARSE;
        char c = y->s[y->pos];
        if (c == ',' || c == '}')
            val = yp_null(y, cpath, y->pos);
        else if (yp_flow_node(y, cpath, &val))
            return ST_ERR_PARSE;
    }
    return yv_push(y, v, key, kpos, val);
}

static int yp_flow_coll(struct yp *y, const char *path, struct yaml_node **out)
{
    size_t open = y->pos;
    int is_map = y->s[y->pos] == '{', more = 1;
    char close = is_map ? '}' : ']';
    struct yaml_node *n = yp_node(y, is_map ? YAML_MAP : YAML_LIST, path, open);
    struct yvec v = {0};
    int st = yp_enter(y);
    y->pos++;
    while (!st && more) {
        if ((st = yp_flow_ws(y, open)))
            break;
        if (y->s[y->pos] == close) { /* empty, or a trailing comma */
            y->pos++;
            break;
        }
        if (is_map) {
            st = yp_flow_map_entry(y, open, &v, path);
        } else {
            struct yaml_node *it;
            size_t at = y->pos;
            if (!(st = yp_flow_node(y, yp_path_idx(y, path, v.n), &it)))
                st = yv_push(y, &v, NULL, at, it);
            if (!st && !yp_flow_ws(y, open) && y->s[y->pos] == ':')
                st = yp_err(y, y->pos, "key: value pairs inside [ ] are not supported");
        }
        if (!st)
            st = yp_flow_sep(y, open, close, &more);
    }
    y->depth--;
    if (st) {
        yv_free(&v);
        return st;
    }
    yv_finish(y, &v, n);
    *out = n;
    return ST_OK;
}

static int yp_flow_node(struct yp *y, const char *path, struct yaml_node **out)
{
    char c = y->s[y->pos];
    if (c == '{' || c == '[')
        return yp_flow_coll(y, path, out);
    return yp_scalar(y, 1, path, out);
}

/* ---- block collections --------------------------------------------------- */

static int yp_block_value(struct yp *y, int parent_col, int seq_at_parent, const char *path,
                          size_t at, struct yaml_node **out);
static int yp_node_here(struct yp *y, int col, int allow_block, const char *path,
                        struct yaml_node **out);

static int yp_is_seq_item(const struct yp *y)
{
    return yp_ch(y, y->pos) == '-' && is_ws(yp_ch(y, y->pos + 1));
}

/* After the last entry: 1 if the next line continues this collection at
 * column c, 0 if it ends, -1 on error (deeper content no entry opened). */
static int yp_block_next(struct yp *y, int c)
{
    int nc = yp_next_content(y);
    if (nc == -2)
        return -1;
    if (nc < c)
        return 0;
    if (nc > c) {
        yp_err(y, y->pos, "bad indentation: column %d, the enclosing block is at column %d "
               "(multi-line scalars are not supported)", nc + 1, c + 1);
        return -1;
    }
    return 1;
}

static int yp_map_entry(struct yp *y, int c, struct yvec *v, const char *path)
{
    size_t kpos = y->pos;
    const char *key;
    if (yp_is_seq_item(y))
        return yp_err(y, y->pos, "sequence item where a mapping key was expected");
    if (!yp_is_key(y)) {
        if (yp_check_start(y))
            return ST_ERR_PARSE;
        return yp_err(y, y->pos, "expected \"key: value\"");
    }
    char q = y->s[y->pos];
    if ((q == '\'' || q == '"') ? yp_quoted(y, &key) : yp_plain(y, 0, &key))
        return ST_ERR_PARSE;
    if (yv_check_dup(y, v, key, kpos))
        return ST_ERR_PARSE;
    yp_skip_blanks(y);
    y->pos++; /* the ':' yp_is_key found */
    yp_skip_blanks(y);
    const char *cpath = yp_path_key(y, path, key);
    struct yaml_node *val;
    int st = yp_at_eol(y) ? yp_block_value(y, c, 1, cpath, y->pos, &val)
                          : yp_node_here(y, yp_column(y, y->pos), 0, cpath, &val);
    return st ? st : yv_push(y, v, key, kpos, val);
}

static int yp_block_map(struct yp *y, int c, const char *path, struct yaml_node **out)
{
    struct yaml_node *n = yp_node(y, YAML_MAP, path, y->pos);
    struct yvec v = {0};
    int st = yp_enter(y), more = 1;
    while (!st && more) {
        if ((st = yp_map_entry(y, c, &v, path)))
            break;
        more = yp_block_next(y, c);
        if (more < 0)
            st = ST_ERR_PARSE;
    }
    y->depth--;
    if (st) {
        yv_free(&v);
        return st;
    }
    yv_finish(y, &v, n);
    *out = n;
    return ST_OK;
}

static int yp_block_seq(struct yp *y, int c, const char *path, struct yaml_node **out)
{
    struct yaml_node *n = yp_node(y, YAML_LIST, path, y->pos);
    struct yvec v = {0};
    int st = yp_enter(y), more = 1;
    while (!st && more) {
        if (!yp_is_seq_item(y)) /* same column, not "- ": the parent map's next key */
            break;
        size_t at = y->pos++;
        yp_skip_blanks(y);
        const char *cpath = yp_path_idx(y, path, v.n);
        struct yaml_node *it;
        st = yp_at_eol(y) ? yp_block_value(y, c, 0, cpath, at, &it)
                          : yp_node_here(y, yp_column(y, y->pos), 1, cpath, &it);
        if (!st)
            st = yv_push(y, &v, NULL, at, it);
        if (!st && (more = yp_block_next(y, c)) < 0)
            st = ST_ERR_PARSE;
    }
    y->depth--;
    if (st) {
        yv_free(&v);
        return st;
    }
    yv_finish(y, &v, n);
    *out = n;
    return ST_OK;
}

/* Value on the lines after "key:" or "-": deeper content is the value; under a
 * key, a "- " sequence may also sit at the key's own column. Otherwise null. */
static int yp_block_value(struct yp *y, int parent_col, int seq_at_parent, const char *path,
                          size_t at, struct yaml_node **out)
{
    yp_skip_line(y); /* the rest is blank or a comment */
    int col = yp_next_content(y);
    if (col == -2)
        return ST_ERR_PARSE;
    if (col > parent_col)
        return yp_node_here(y, col, 1, path, out);
    if (col == parent_col && seq_at_parent && yp_is_seq_item(y))
        return yp_block_seq(y, col, path, out);
    *out = yp_null(y, path, at);
    return ST_OK;
}

/* a node starting at y->pos (column col) */
static int yp_node_here(struct yp *y, int col, int allow_block, const char *path,
                        struct yaml_node **out)
{
    if (yp_is_seq_item(y)) {
        if (!allow_block)
            return yp_err(y, y->pos, "a block sequence cannot start on a key's line");
        return yp_block_seq(y, col, path, out);
    }
    if (yp_is_key(y)) {
        if (!allow_block)
            return yp_err(y, y->pos, "mapping values are not allowed here (nested \"key: value\" "
                                     "on one line)");
        return yp_block_map(y, col, path, out);
    }
    char c = y->s[y->pos];
    int st = c == '{' || c == '[' ? yp_flow_coll(y, path, out) : yp_scalar(y, 0, path, out);
    return st ? st : yp_expect_eol(y);
}

/* ---- documents ----------------------------------------------------------- */

static int yp_document(struct yp *y, struct yaml_node **root)
{
    int col = yp_next_content(y);
    if (col == -2)
        return ST_ERR_PARSE;
    if (col == -1) {
        *root = yp_null(y, "", y->pos);
        return ST_OK;
    }
    if (yp_node_here(y, col, 1, "", root))
        return ST_ERR_PARSE;
    col = yp_next_content(y);
    if (col == -2)
        return ST_ERR_PARSE;
    if (col != -1)
        return yp_err(y, y->pos, "unexpected content after the document's top-level node");
    return ST_OK;
}

/* NUL-terminated copy with CRLF folded to LF; NUL bytes are rejected */
static char *yp_copy(const char *text, size_t len, size_t *olen)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    size_t o = 0, i = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        i = 3; /* UTF-8 byte order mark */
    for (; i < len; i++)
        if (!(text[i] == '\r' && i + 1 < len && text[i + 1] == '\n'))
            s[o++] = text[i];
    s[o] = 0;
    *olen = o;
    return s;
}

int yaml_parse(const char *text, size_t len, const char *what, struct yaml_doc *doc,
               struct diag *d)
{
    doc->root = NULL;
    doc->arena = NULL;
    if (len > YAML_MAX_BYTES)
        return diag_set(d, ST_ERR_PARSE, "%s: %zu bytes is too large for a config file", what, len);
    struct yp y = {0};
    y.what = what;
    y.d = d;
    char *s = yp_copy(text, len, &y.len);
    if (!s)
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory", what);
    y.s = s;
    const char *nul = memchr(s, 0, y.len);
    y.a = ir_arena_new();
    y.what = ir_arena_strdup(y.a, what); /* nodes keep it; it must outlive the caller's */
    int st = nul ? yp_err(&y, (size_t)(nul - s), "NUL byte in a text file")
                 : yp_document(&y, &doc->root);
    free(s);
    if (st) {
        ir_arena_free(y.a);
        doc->root = NULL;
        return st;
    }
    doc->arena = y.a;
    return ST_OK;
}

int yaml_parse_file(const char *path, struct yaml_doc *doc, struct diag *d)
{
    doc->root = NULL;
    doc->arena = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb = {0};
    size_t size = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0;
    /* one byte more than the limit lets yaml_parse report an oversized file */
    size_t cap = (size < YAML_MAX_BYTES ? size : YAML_MAX_BYTES) + 1;
    char *buf = malloc(cap);
    size_t n = buf ? fread(buf, 1, cap, f) : 0;
    int bad = ferror(f);
    fclose(f);
    int st;
    if (!buf)
        st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
    else if (bad || !S_ISREG(sb.st_mode))
        st = diag_set(d, ST_ERR_IO, "%s: read failed (not a regular file?)", path);
    else
        st = yaml_parse(buf, n, path, doc, d);
    free(buf);
    return st;
}

void yaml_doc_free(struct yaml_doc *doc)
{
    ir_arena_free(doc->arena);
    doc->arena = NULL;
    doc->root = NULL;
}
