/* safetensors.c — safetensors writer and untrusting reader; see safetensors.h. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format stores little-endian data)"
#endif

#define ST_META_KEY "__metadata__"

static const struct { enum ir_dtype dt; const char *name; } st_dtypes[] = {
    {IR_F64, "F64"}, {IR_F32, "F32"}, {IR_F16, "F16"}, {IR_BF16, "BF16"},
    {IR_I64, "I64"}, {IR_I32, "I32"}, {IR_I16, "I16"}, {IR_I8, "I8"},
    {IR_U64, "U64"}, {IR_U32, "U32"}, {IR_U16, "U16"}, {IR_U8, "U8"},
    {IR_BOOL, "BOOL"},
};

const char *st_dtype_name(enum ir_dtype dt)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dt == dt)
            return st_dtypes[i].name;
    return NULL;
}

enum ir_dtype st_dtype_parse(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return st_dtypes[i].dt;
    return IR_DT_UNDEF;
}

/* numel * elem, or -1 on a negative dim or overflow past IR_MAX_ELEMS */
static int64_t st_nbytes(int rank, const int64_t *dims, size_t elem)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || (dims[i] && n > IR_MAX_ELEMS / dims[i]))
            return -1;
        n *= dims[i];
    }
    return n * (int64_t)elem;
}

/* ======================================================================== */
/* writer                                                                   */
/* ======================================================================== */

static int st_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int st_check_names(const char *path, const struct ir_value *vals, int n, struct diag *d)
{
    const char **names = malloc((size_t)(n > 0 ? n : 1) * sizeof *names);
    if (!names)
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++)
        names[i] = vals[i].name;
    qsort(names, (size_t)n, sizeof *names, st_name_cmp);
    int st = ST_OK;
    for (int i = 1; i < n && !st; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = diag_set(d, ST_ERR_INVALID, "%s: two tensors named \"%s\"", path, names[i]);
    free(names);
    return st;
}

static int st_check_value(const char *path, const struct ir_value *v, int i, struct diag *d)
{
    if (!v->name || strcmp(v->name, ST_META_KEY) == 0)
        return diag_set(d, ST_ERR_INVALID, "%s: tensor %d has %s name", path, i,
                        v->name ? "the reserved \"" ST_META_KEY "\"" : "no");
    const char *dn = st_dtype_name(v->dtype);
    if (!dn)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: tensor \"%s\": dtype %s has no safetensors name",
                        path, v->name, ir_dtype_name(v->dtype));
    if (v->rank < 0 || v->rank > IR_MAX_RANK)
        return diag_set(d, ST_ERR_INVALID, "%s: tensor \"%s\": rank %d", path, v->name, v->rank);
    int64_t nb = st_nbytes(v->rank, v->dims, ir_dtype_size(v->dtype));
    if (nb < 0 || (uint64_t)nb != v->nbytes || (nb && !v->data))
        return diag_set(d, ST_ERR_INVALID, "%s: tensor \"%s\": %zu data bytes for a shape that needs %lld",
                        path, v->name, v->nbytes, (long long)nb);
    return ST_OK;
}

static void st_header_json(struct json_w *w, const struct ir_value *vals, int n,
                           const char *const *meta_kv, int n_meta)
{
    json_obj_begin(w);
    if (n_meta > 0) { /* first, as the reference implementation writes it */
        json_key(w, ST_META_KEY);
        json_obj_begin(w);
        for (int i = 0; i < n_meta; i++) {
            json_key(w, meta_kv[2 * i]);
            json_str(w, meta_kv[2 * i + 1]);
        }
        json_obj_end(w);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        json_key(w, vals[i].name);
        json_obj_begin(w);
        json_key(w, "dtype");
        json_str(w, st_dtype_name(vals[i].dtype));
        json_key(w, "shape");
        json_arr_begin(w);
        for (int k = 0; k < vals[i].rank; k++)
            json_int(w, vals[i].dims[k]);
        json_arr_end(w);
        json_key(w, "data_offsets");
        json_arr_begin(w);
        json_int(w, (int64_t)off);
        off += vals[i].nbytes;
        json_int(w, (int64_t)off);
        json_arr_end(w);
        json_obj_end(w);
    }
    json_obj_end(w);
}

static int st_check_meta(const char *path, const char *const *meta_kv, int n_meta, struct diag *d)
{
    for (int i = 0; i < n_meta; i++) {
        if (!meta_kv[2 * i] || !meta_kv[2 * i + 1])
            return diag_set(d, ST_ERR_INVALID, "%s: metadata pair %d has a NULL key or value", path, i);
        for (int k = 0; k < i; k++)
            if (strcmp(meta_kv[2 * k], meta_kv[2 * i]) == 0)
                return diag_set(d, ST_ERR_INVALID, "%s: metadata key \"%s\" given twice", path,
                                meta_kv[2 * i]);
    }
    return ST_OK;
}

int st_write(const char *path, const struct ir_value *vals, int n, const char *const *meta_kv,
             int n_meta, struct diag *d)
{
    if (n < 0 || n_meta < 0 || (n_meta && !meta_kv))
        return diag_set(d, ST_ERR_INVALID, "%s: bad tensor or metadata count", path);
    int st = ST_OK;
    for (int i = 0; i < n && !st; i++)
        st = st_check_value(path, &vals[i], i, d);
    if (!st)
        st = st_check_names(path, vals, n, d);
    if (!st)
        st = st_check_meta(path, meta_kv, n_meta, d);
    if (st)
        return st;
    struct json_w w;
    json_w_init(&w, 0);
    st_header_json(&w, vals, n, meta_kv, n_meta);
    if ((st = json_w_finish(&w, path, d))) {
        json_w_free(&w);
        return st;
    }
    size_t hlen = (w.len + 7) & ~(size_t)7; /* spaces pad the data start to 8 bytes */
    size_t total = 8 + hlen;
    for (int i = 0; i < n; i++)
        total += vals[i].nbytes;
    uint8_t *buf = malloc(total);
    if (!buf) {
        json_w_free(&w);
        return diag_set(d, ST_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, total);
    }
    for (int k = 0; k < 8; k++)
        buf[k] = (uint8_t)((uint64_t)hlen >> (8 * k));
    memcpy(buf + 8, w.buf, w.len);
    memset(buf + 8 + w.len, ' ', hlen - w.len);
    size_t off = 8 + hlen;
    for (int i = 0; i < n; i++) {
        if (vals[i].nbytes)
            memcpy(buf + off, vals[i].data, vals[i].nbytes);
        off += vals[i].nbytes;
    }
    json_w_free(&w);
    st = io_write_atomic(path, buf, total, d);
    free(buf);
    return st;
}

/* ======================================================================== */
/* reader                                                                   */
/* ======================================================================== */

/* one tensor entry of the header, checked */
struct st_ent {
    const char *name;
    enum ir_dtype dt;
    int rank;
    int64_t dims[IR_MAX_RANK];
    uint64_t begin, end;
};

struct st_rd {
    const char *path;
    int fd;
    uint64_t data_off, data_len; /* data section: file offset and length */
    struct diag *d;
};

static int st_pread(struct st_rd *r, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    while (n) {
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t got = pread(r->fd, p, chunk, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return diag_set(r->d, ST_ERR_IO, "%s: read failed: %s", r->path,
                            got < 0 ? strerror(errno) : "unexpected end of file");
        p += got;
        off += (uint64_t)got;
        n -= (size_t)got;
    }
    return ST_OK;
}

static int st_uint(const struct json_node *v, uint64_t *out)
{
    if (!v || v->type != JSON_NUM || !v->is_int || v->i < 0)
        return -1;
    *out = (uint64_t)v->i;
    return 0;
}

static int st_ent_shape(struct st_rd *r, struct st_ent *e, const struct json_node *shape)
{
    if (!shape || shape->type != JSON_ARR)
        return diag_set(r->d, ST_ERR_PARSE, "%s: tensor \"%s\": \"shape\" must be an array",
                        r->path, e->name);
    if (shape->n > IR_MAX_RANK)
        return diag_set(r->d, ST_ERR_UNSUPPORTED, "%s: tensor \"%s\": rank %zu exceeds %d",
                        r->path, e->name, shape->n, IR_MAX_RANK);
    e->rank = (int)shape->n;
    for (int k = 0; k < e->rank; k++) {
        uint64_t v;
        if (st_uint(&shape->items[k], &v) || v > (uint64_t)IR_MAX_ELEMS)
            return diag_set(r->d, ST_ERR_PARSE, "%s: tensor \"%s\": shape[%d] is not a valid dimension",
                            r->path, e->name, k);
        e->dims[k] = (int64_t)v;
    }
    return ST_OK;
}

static int st_ent_offsets(struct st_rd *r, struct st_ent *e, const struct json_node *offs)
{
    if (!offs || offs->type != JSON_ARR || offs->n != 2 || st_uint(&offs->items[0], &e->begin) ||
        st_uint(&offs->items[1], &e->end))
        return diag_set(r->d, ST_ERR_PARSE,
                        "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] integers >= 0",
                        r->path, e->name);
    if (e->begin > e->end || e->end > r->data_len)
        return diag_set(r->d, ST_ERR_PARSE,
                        "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                        "] outside the %" PRIu64 "-byte data section",
                        r->path, e->name, e->begin, e->end, r->data_len);
    int64_t nb = st_nbytes(e->rank, e->dims, ir_dtype_size(e->dt));
    if (nb < 0)
        return diag_set(r->d, ST_ERR_PARSE, "%s: tensor \"%s\": shape too large", r->path, e->name);
    if ((uint64_t)nb != e->end - e->begin)
        return diag_set(r->d, ST_ERR_PARSE,
                        "%s: tensor \"%s\": %s shape needs %" PRId64 " bytes, data_offsets span %" PRIu64,
                        r->path, e->name, st_dtype_name(e->dt), nb, e->end - e->begin);
    return ST_OK;
}

static int st_ent_parse(struct st_rd *r, const char *name, const struct json_node *v,
                        struct st_ent *e)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    if (v->type != JSON_OBJ)
        return diag_set(r->d, ST_ERR_PARSE, "%s: tensor \"%s\": entry must be an object", r->path,
                        name);
    for (size_t k = 0; k < v->n; k++)
        if (strcmp(v->keys[k], "dtype") && strcmp(v->keys[k], "shape") &&
            strcmp(v->keys[k], "data_offsets"))
            return diag_set(r->d, ST_ERR_PARSE, "%s: tensor \"%s\": unknown key \"%s\"", r->path,
                            name, v->keys[k]);
    const struct json_node *dt = json_get(v, "dtype");
    if (!dt || dt->type != JSON_STR)
        return diag_set(r->d, ST_ERR_PARSE, "%s: tensor \"%s\": \"dtype\" must be a string",
                        r->path, name);
    if ((e->dt = st_dtype_parse(dt->s)) == IR_DT_UNDEF)
        return diag_set(r->d, ST_ERR_UNSUPPORTED, "%s: tensor \"%s\": unsupported dtype \"%s\"",
                        r->path, name, dt->s);
    int st = st_ent_shape(r, e, json_get(v, "shape"));
    return st ? st : st_ent_offsets(r, e, json_get(v, "data_offsets"));
}

static int st_ent_cmp(const void *a, const void *b)
{
    const struct st_ent *x = *(const struct st_ent *const *)a, *y = *(const struct st_ent *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* sort by begin; each non-empty tensor must start at or after the previous end */
static int st_check_overlap(struct st_rd *r, struct st_ent *ents, int n)
{
    struct st_ent **by = malloc((size_t)(n > 0 ? n : 1) * sizeof *by);
    if (!by)
        return diag_set(r->d, ST_ERR_NOMEM, "%s: out of memory", r->path);
    for (int i = 0; i < n; i++)
        by[i] = &ents[i];
    qsort(by, (size_t)n, sizeof *by, st_ent_cmp);
    int st = ST_OK;
    const struct st_ent *prev = NULL;
    for (int i = 0; i < n && !st; i++) {
        if (by[i]->begin == by[i]->end)
            continue;
        if (prev && by[i]->begin < prev->end)
            st = diag_set(r->d, ST_ERR_PARSE, "%s: tensors \"%s\" and \"%s\" overlap in the data section",
                          r->path, prev->name, by[i]->name);
        prev = by[i];
    }
    free(by);
    return st;
}

static int st_meta_parse(struct st_rd *r, const struct json_node *m, char ***kv, int *n_kv)
{
    if (m->type != JSON_OBJ)
        return diag_set(r->d, ST_ERR_PARSE, "%s: \"" ST_META_KEY "\" must be an object", r->path);
    for (size_t k = 0; k < m->n; k++)
        if (m->items[k].type != JSON_STR)
            return diag_set(r->d, ST_ERR_PARSE, "%s: " ST_META_KEY "[\"%s\"] must be a string",
                            r->path, m->keys[k]);
    if (!kv)
        return ST_OK;
    *kv = calloc(2 * m->n + 1, sizeof **kv);
    if (!*kv)
        return diag_set(r->d, ST_ERR_NOMEM, "%s: out of memory", r->path);
    *n_kv = (int)m->n;
    for (size_t k = 0; k < m->n; k++) {
        (*kv)[2 * k] = strdup(m->keys[k]);
        (*kv)[2 * k + 1] = strdup(m->items[k].s);
        if (!(*kv)[2 * k] || !(*kv)[2 * k + 1])
            return diag_set(r->d, ST_ERR_NOMEM, "%s: out of memory", r->path);
    }
    return ST_OK;
}

static int st_load_values(struct st_rd *r, const struct st_ent *ents, int n, struct ir_value *vals)
{
    for (int i = 0; i < n; i++) {
        struct ir_value *v = &vals[i];
        const struct st_ent *e = &ents[i];
        size_t nb = (size_t)(e->end - e->begin);
        v->name = strdup(e->name);
        v->data = malloc(nb ? nb : 1); /* a real pointer even for 0 bytes, as npy does */
        if (!v->name || !v->data)
            return diag_set(r->d, ST_ERR_NOMEM, "%s: tensor \"%s\": cannot allocate %zu bytes",
                            r->path, e->name, nb);
        v->dtype = e->dt;
        v->rank = e->rank;
        memcpy(v->dims, e->dims, sizeof v->dims);
        v->nbytes = nb;
        int st = st_pread(r, v->data, nb, r->data_off + e->begin);
        if (st)
            return st;
    }
    return ST_OK;
}

/* header checks and entries; ents[] point into doc */
static int st_parse_header(struct st_rd *r, const struct json_doc *doc, struct st_ent **ents,
                           int *n, char ***meta_kv, int *n_meta)
{
    const struct json_node *root = doc->root;
    if (root->type != JSON_OBJ)
        return diag_set(r->d, ST_ERR_PARSE, "%s: header must be a JSON object", r->path);
    if (root->n > (size_t)INT32_MAX)
        return diag_set(r->d, ST_ERR_PARSE, "%s: too many tensors", r->path);
    *ents = calloc(root->n + 1, sizeof **ents);
    if (!*ents)
        return diag_set(r->d, ST_ERR_NOMEM, "%s: out of memory", r->path);
    int st = ST_OK, m = 0;
    for (size_t k = 0; k < root->n && !st; k++) {
        if (strcmp(root->keys[k], ST_META_KEY) == 0)
            st = st_meta_parse(r, &root->items[k], meta_kv, n_meta);
        else
            st = st_ent_parse(r, root->keys[k], &root->items[k], &(*ents)[m++]);
    }
    *n = m;
    return st ? st : st_check_overlap(r, *ents, m);
}

static int st_open(struct st_rd *r, char **hdr, uint64_t *hlen)
{
    struct stat sb;
    uint8_t le[8];
    if (fstat(r->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return diag_set(r->d, ST_ERR_IO, "%s: not a regular file", r->path);
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8)
        return diag_set(r->d, ST_ERR_PARSE, "%s: %" PRIu64 " bytes is too short for safetensors",
                        r->path, size);
    int st = st_pread(r, le, 8, 0);
    if (st)
        return st;
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)le[k] << (8 * k);
    if (n > ST_MAX_HEADER || n > size - 8)
        return diag_set(r->d, ST_ERR_PARSE,
                        "%s: header length %" PRIu64 " exceeds %s (%" PRIu64 " bytes)", r->path, n,
                        n > ST_MAX_HEADER ? "the 100 MB limit" : "the file", n > ST_MAX_HEADER ? ST_MAX_HEADER : size - 8);
    if (!(*hdr = malloc(n ? n : 1)))
        return diag_set(r->d, ST_ERR_NOMEM, "%s: out of memory", r->path);
    *hlen = n;
    r->data_off = 8 + n;
    r->data_len = size - 8 - n;
    return st_pread(r, *hdr, n, 8);
}

static int st_read_fd(struct st_rd *r, struct ir_value **vals, int *n, char ***meta_kv,
                      int *n_meta)
{
    char *hdr = NULL;
    uint64_t hlen = 0;
    struct json_doc doc = {0};
    struct st_ent *ents = NULL;
    int ne = 0;
    int st = st_open(r, &hdr, &hlen);
    if (!st) {
        struct json_limits lim = {8, (size_t)ST_MAX_HEADER};
        st = json_parse(hdr, (size_t)hlen, r->path, &lim, &doc, r->d);
    }
    if (!st)
        st = st_parse_header(r, &doc, &ents, &ne, meta_kv, n_meta);
    if (!st && !(*vals = calloc((size_t)ne + 1, sizeof **vals)))
        st = diag_set(r->d, ST_ERR_NOMEM, "%s: out of memory", r->path);
    if (!st) {
        *n = ne;
        st = st_load_values(r, ents, ne, *vals);
    }
    free(ents);
    json_doc_free(&doc);
    free(hdr);
    return st;
}

int st_read_meta(const char *path, struct ir_value **vals, int *n, char ***meta_kv, int *n_meta,
                 struct diag *d)
{
    *vals = NULL;
    *n = 0;
    if (meta_kv) {
        *meta_kv = NULL;
        *n_meta = 0;
    }
    struct st_rd r = {path, open(path, O_RDONLY | O_CLOEXEC), 0, 0, d};
    if (r.fd < 0)
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int st = st_read_fd(&r, vals, n, meta_kv, n_meta);
    close(r.fd);
    if (st) { /* nothing half-read reaches the caller */
        st_free(*vals, *n);
        *vals = NULL;
        *n = 0;
        if (meta_kv) {
            st_meta_free(*meta_kv, *n_meta);
            *meta_kv = NULL;
            *n_meta = 0;
        }
    }
    return st;
}

int st_read(const char *path, struct ir_value **vals, int *n, struct diag *d)
{
    return st_read_meta(path, vals, n, NULL, NULL, d);
}

void st_free(struct ir_value *vals, int n)
{
    if (!vals)
        return;
    for (int i = 0; i < n; i++)
        ir_value_free(&vals[i]);
    free(vals);
}

void st_meta_free(char **meta_kv, int n_meta)
{
    if (!meta_kv)
        return;
    for (int i = 0; i < 2 * n_meta; i++)
        free(meta_kv[i]);
    free(meta_kv);
}
