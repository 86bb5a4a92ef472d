/* data.c — data sources (see data.h): the toy sparse-feature generator, rows of
 * .npy/.npz arrays, and windows of raw token files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "io.h"
#include "philox.h"
#include "cpu/cpu_pool.h"

/* Philox streams (data.h); the training driver's own streams start at 1000 */
#define STREAM_TOY_VALUE 1u
#define STREAM_TOY_ACTIVE 2u
#define STREAM_ARRAY_ROWS 3u
#define STREAM_TOKEN_WINDOWS 4u
#define STREAM_TOY_SIGN 5u
#define TOY_REDRAWS 64 /* nz: redraws of an all-zero row before it is left as it is */

struct ds_source {
    enum ds_kind kind;
    char *spec;              /* resolved (ds_spec) */
    char *path;              /* the file, for messages (NULL for toy) */
    double p, lo, hi;        /* toy */
    int nz, sign, group;     /* toy, L3D's generator (METHOD §8.7): rows redrawn while all
                              * zero; a random sign per value; features active in groups */
    struct ir_value arr;     /* arrays: the whole array, row-major, dim 0 = rows */
    const unsigned char *map; /* tokens: the mapped file */
    size_t map_len;
    int width;               /* tokens: bytes per token */
    int64_t ntok, ntrain;    /* tokens: all, and the training part [0, ntrain) */
    int64_t seq;             /* tokens: the window length asked for (0: the model's) */
    double holdout;
    int64_t max_token;       /* tokens: largest token, -1 until ds_check_vocab scans */
};

void ds_opts_defaults(struct ds_opts *o)
{
    o->p = 0.05;
    o->lo = 0.0;
    o->hi = 1.0;
    o->token_bytes = 2;
    o->seq = 0;
    o->holdout = 0.05;
}

int ds_token_bytes(const char *name)
{
    if (strcmp(name, "u16") == 0)
        return 2;
    if (strcmp(name, "u32") == 0)
        return 4;
    return 0;
}

enum ds_kind ds_kind(const struct ds_source *s) { return s->kind; }
const char *ds_spec(const struct ds_source *s) { return s->spec; }

int ds_toy_settings(const struct ds_source *s, double *p, double *lo, double *hi)
{
    if (s->kind != DS_TOY)
        return 0;
    *p = s->p, *lo = s->lo, *hi = s->hi;
    return 1;
}

void ds_close(struct ds_source *s)
{
    if (!s)
        return;
    if (s->map)
        munmap((void *)s->map, s->map_len);
    ir_value_free(&s->arr);
    free(s->spec);
    free(s->path);
    free(s);
}

/* ---- spec parsing ---------------------------------------------------------- */

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* the shortest text that reads back to the same double (a spec a person reads) */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static int toy_param(struct ds_source *s, const char *item, size_t len, const char *spec,
                     struct diag *d)
{
    char kv[128], *e;
    if (len == 0 || len >= sizeof kv)
        return diag_set(d, ST_ERR_INVALID, "data source '%s': bad item", spec);
    memcpy(kv, item, len);
    kv[len] = 0;
    char *eq = strchr(kv, '=');
    double v = eq ? strtod(eq + 1, &e) : 0;
    if (!eq || e == eq + 1 || *e || v != v)
        return diag_set(d, ST_ERR_INVALID, "data source '%s': '%s' is not KEY=NUMBER", spec, kv);
    *eq = 0;
    if (strcmp(kv, "p") == 0 && v >= 0 && v <= 1)
        s->p = v;
    else if (strcmp(kv, "lo") == 0)
        s->lo = v;
    else if (strcmp(kv, "hi") == 0)
        s->hi = v;
    else if (strcmp(kv, "nz") == 0 && (v == 0 || v == 1))
        s->nz = (int)v;
    else if (strcmp(kv, "sign") == 0 && (v == 0 || v == 1))
        s->sign = (int)v;
    else if (strcmp(kv, "group") == 0 && v >= 0 && v <= 1e6 && v == floor(v))
        s->group = (int)v;
    else
        return diag_set(d, ST_ERR_INVALID, "data source '%s': '%.*s' is not p (in [0, 1]), lo, "
                        "hi, nz (0/1), sign (0/1) or group (an integer)", spec, (int)len, item);
    return ST_OK;
}

/* "toy" or "toy:p=0.05,lo=0,hi=1" (any subset; the rest from the options) */
static int open_toy(struct ds_source *s, const char *spec, const struct ds_opts *o, struct diag *d)
{
    s->kind = DS_TOY;
    s->p = o->p, s->lo = o->lo, s->hi = o->hi;
    const char *q = spec && spec[3] == ':' ? spec + 4 : "";
    while (*q) {
        const char *e = strchr(q, ',');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        int st = toy_param(s, q, n, spec, d);
        if (st)
            return st;
        q += n + (e ? 1 : 0);
    }
    if (!(s->lo <= s->hi))
        return diag_set(d, ST_ERR_INVALID, "data source '%s': lo > hi", spec ? spec : "toy");
    char p[32], lo[32], hi[32], buf[128];
    fmt_double(p, sizeof p, s->p);
    fmt_double(lo, sizeof lo, s->lo);
    fmt_double(hi, sizeof hi, s->hi);
    int k = snprintf(buf, sizeof buf, "toy:p=%s,lo=%s,hi=%s", p, lo, hi);
    if (s->nz || s->sign || s->group) /* only then: older specs stay as they were */
        snprintf(buf + k, sizeof buf - (size_t)k, ",nz=%d,sign=%d,group=%d", s->nz, s->sign,
                 s->group);
    s->spec = strdup(buf);
    return s->spec ? ST_OK : diag_set(d, ST_ERR_NOMEM, "out of memory");
}

/* s->path = the file's absolute path; s->spec = it plus `suffix` */
static int set_path(struct ds_source *s, const char *file, const char *suffix, struct diag *d)
{
    char abs[PATH_MAX];
    if (!realpath(file, abs))
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", file, strerror(errno));
    size_t n = strlen(abs) + strlen(suffix) + 1;
    s->path = strdup(abs);
    s->spec = malloc(n);
    if (!s->path || !s->spec)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    snprintf(s->spec, n, "%s%s", abs, suffix);
    return ST_OK;
}

/* ---- arrays ---------------------------------------------------------------- */

static int open_npy(struct ds_source *s, const char *file, struct diag *d)
{
    s->kind = DS_ARRAY;
    int st = set_path(s, file, "", d);
    if (!st)
        st = npy_read_file(s->path, &s->arr, d);
    if (!st && s->arr.rank < 1)
        st = diag_set(d, ST_ERR_SHAPE, "%s: a scalar array has no rows to sample", s->path);
    if (!st && s->arr.dims[0] < 1)
        st = diag_set(d, ST_ERR_SHAPE, "%s: the array has no rows", s->path);
    return st;
}

/* member `name` (NULL: the only one) of the .npz `file` */
static int open_npz(struct ds_source *s, const char *file, const char *name, struct diag *d)
{
    s->kind = DS_ARRAY;
    struct ir_value *vals = NULL;
    int n = 0, pick = -1;
    char abs[PATH_MAX];
    if (!realpath(file, abs))
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", file, strerror(errno));
    int st = npz_read_file(abs, &vals, &n, d);
    if (st)
        return st;
    for (int i = 0; i < n; i++)
        if (name ? strcmp(vals[i].name, name) == 0 : n == 1)
            pick = i;
    if (pick < 0 && name)
        st = diag_set(d, ST_ERR_INVALID, "%s: no member '%s' (%d members; the first is '%s')", abs,
                      name, n, n ? vals[0].name : "");
    else if (pick < 0)
        st = diag_set(d, ST_ERR_INVALID, "%s: %d members: name one as %s:NAME (the first is '%s')",
                      abs, n, abs, n ? vals[0].name : "");
    if (!st) {
        s->arr = vals[pick];
        memset(&vals[pick], 0, sizeof vals[pick]);
        char suffix[300];
        snprintf(suffix, sizeof suffix, ":%.290s", s->arr.name);
        st = set_path(s, abs, suffix, d);
    }
    for (int i = 0; i < n; i++)
        ir_value_free(&vals[i]);
    free(vals);
    if (!st && (s->arr.rank < 1 || s->arr.dims[0] < 1))
        st = diag_set(d, ST_ERR_SHAPE, "%s: member '%s' has no rows to sample", s->path,
                      s->arr.name);
    return st;
}

static void shape_str(enum ir_dtype dt, int rank, const int64_t *dims, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s[", ir_dtype_name(dt));
    for (int i = 0; i < rank && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, "]");
}

/* float64 → float32 in place, once: numpy's default dtype meets pdc's fp32 models */
static int narrow_f64(struct ds_source *s, const struct ir_tensor *in, struct diag *d)
{
    int64_t n = ir_value_numel(&s->arr);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (!f)
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory converting to float32", s->path);
    const double *x = s->arr.data;
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)x[i];
    free(s->arr.data);
    s->arr.data = f;
    s->arr.dtype = IR_F32;
    s->arr.nbytes = (size_t)n * sizeof *f;
    fprintf(stderr, "pdc: note: %s: float64 array converted to float32 (model input '%s' is "
            "float32)\n", s->spec, in->name);
    return ST_OK;
}

static int check_array(struct ds_source *s, const struct ir_tensor *in, struct diag *d)
{
    const struct ir_value *a = &s->arr;
    int same = a->rank == in->rank;
    for (int k = 1; same && k < a->rank; k++)
        same = a->dims[k] == in->dims[k];
    if (same && a->dtype == IR_F64 && in->dtype == IR_F32)
        return narrow_f64(s, in, d);
    if (same && a->dtype == in->dtype)
        return ST_OK;
    char as[256], is[256];
    shape_str(a->dtype, a->rank, a->dims, as, sizeof as);
    shape_str(in->dtype, in->rank, in->dims, is, sizeof is);
    return diag_set(d, same ? ST_ERR_INVALID : ST_ERR_SHAPE, "%s: the array is %s, the model "
                    "input '%s' is %s: %s", s->spec, as, in->name, is, same
                    ? "the dtypes must be equal" : "the dims after the first (rows) must be equal");
}

/* a·b mod m without overflow (m < 2^63), for sweep positions k·B */
static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m)
{
    uint64_t r = 0;
    a %= m;
    for (; b; b >>= 1) {
        if (b & 1)
            r = (r + a) % m;
        a = (a + a) % m;
    }
    return r;
}

/* 64 random bits for batch row b: counter block b of (seed, step, stream) */
static uint64_t draw64(uint64_t seed, uint64_t step, uint32_t stream, uint64_t b)
{
    uint32_t w[4];
    philox_block(seed, step, stream, b, w);
    return (uint64_t)w[0] << 32 | w[1];
}

static void fill_array(const struct ds_source *s, void *buf, int64_t batch, uint64_t seed,
                       uint64_t step, enum ds_split split)
{
    uint64_t nrow = (uint64_t)s->arr.dims[0];
    size_t row = s->arr.nbytes / nrow;
    uint64_t first = split == DS_EVAL ? mulmod(step, (uint64_t)batch, nrow) : 0;
    for (int64_t b = 0; b < batch; b++) {
        uint64_t r = split == DS_EVAL ? (first + (uint64_t)b) % nrow
                                      : draw64(seed, step, STREAM_ARRAY_ROWS, (uint64_t)b) % nrow;
        memcpy((char *)buf + (size_t)b * row, (const char *)s->arr.data + r * row, row);
    }
}

/* ---- tokens ---------------------------------------------------------------- */

static int map_file(struct ds_source *s, struct diag *d)
{
    int fd = open(s->path, O_RDONLY);
    if (fd < 0)
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", s->path, strerror(errno));
    struct stat sb;
    int st = ST_OK;
    if (fstat(fd, &sb) != 0)
        st = diag_set(d, ST_ERR_IO, "%s: cannot stat: %s", s->path, strerror(errno));
    else if (sb.st_size == 0)
        st = diag_set(d, ST_ERR_INVALID, "%s: the token file is empty", s->path);
    if (!st) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            st = diag_set(d, ST_ERR_IO, "%s: cannot map: %s", s->path, strerror(errno));
        else
            s->map = m, s->map_len = (size_t)sb.st_size;
    }
    close(fd);
    return st;
}

static int open_tokens(struct ds_source *s, const char *file, const struct ds_opts *o,
                       struct diag *d)
{
    s->kind = DS_TOKENS;
    s->width = o->token_bytes;
    s->seq = o->seq;
    s->holdout = o->holdout;
    s->max_token = -1;
    if (s->width != 2 && s->width != 4)
        return diag_set(d, ST_ERR_INVALID, "%s: token width %d bytes: u16 (2) or u32 (4)", file,
                        s->width);
    if (!(o->holdout >= 0 && o->holdout < 1))
        return diag_set(d, ST_ERR_INVALID, "%s: holdout %g is not in [0, 1)", file, o->holdout);
    int st = set_path(s, file, "", d);
    if (!st)
        st = map_file(s, d);
    if (st)
        return st;
    if (s->map_len % (size_t)s->width)
        return diag_set(d, ST_ERR_INVALID, "%s: %zu bytes is not a whole number of u%d tokens "
                        "(%d bytes each)", s->path, s->map_len, 8 * s->width, s->width);
    s->ntok = (int64_t)(s->map_len / (size_t)s->width);
    s->ntrain = s->ntok - (int64_t)floor(o->holdout * (double)s->ntok);
    return ST_OK;
}

static uint32_t token_at(const struct ds_source *s, int64_t i)
{
    const unsigned char *p = s->map + (size_t)i * (size_t)s->width; /* little-endian on disk */
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    if (s->width == 4)
        v |= (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return v;
}

static int check_tokens(const struct ds_source *s, const struct ir_tensor *in, struct diag *d)
{
    char is[256];
    shape_str(in->dtype, in->rank, in->dims, is, sizeof is);
    if (in->rank != 2 || (in->dtype != IR_I64 && in->dtype != IR_I32))
        return diag_set(d, ST_ERR_SHAPE, "%s: token windows need a [batch, seq] int64 or int32 "
                        "model input; '%s' is %s", s->path, in->name, is);
    int64_t T = in->dims[1], held = s->ntok - s->ntrain;
    if (s->seq > 0 && s->seq != T)
        return diag_set(d, ST_ERR_SHAPE, "%s: --seq is %lld but the model input '%s' is %s",
                        s->path, (long long)s->seq, in->name, is);
    if (T > s->ntok)
        return diag_set(d, ST_ERR_SHAPE, "%s: a window of %lld tokens is longer than the file "
                        "(%lld tokens)", s->path, (long long)T, (long long)s->ntok);
    if (T > s->ntrain)
        return diag_set(d, ST_ERR_SHAPE, "%s: a window of %lld tokens is longer than the training "
                        "part (%lld of %lld tokens; the last %g held out)", s->path, (long long)T,
                        (long long)s->ntrain, (long long)s->ntok, s->holdout);
    if (held > 0 && held < T)
        return diag_set(d, ST_ERR_SHAPE, "%s: the held-out part (%lld tokens, holdout %g) is "
                        "shorter than one window of %lld: raise the holdout, lower --seq, or set "
                        "holdout 0", s->path, (long long)held, s->holdout, (long long)T);
    return ST_OK;
}

/* window starts: training draws uniformly over [0, ntrain − T]; evaluation tiles
 * the held-out part [ntrain, ntok) with non-overlapping windows */
static int fill_tokens(const struct ds_source *s, void *buf, const struct ir_tensor *in,
                       uint64_t seed, uint64_t step, enum ds_split split, struct diag *d)
{
    int64_t B = in->dims[0], T = in->dims[1];
    uint64_t nwin = (uint64_t)((s->ntok - s->ntrain) / T), first = 0;
    if (split == DS_EVAL && nwin == 0)
        return diag_set(d, ST_ERR_INVALID, "%s: no held-out part to evaluate on (holdout %g)",
                        s->path, s->holdout);
    if (split == DS_EVAL)
        first = mulmod(step, (uint64_t)B, nwin);
    for (int64_t b = 0; b < B; b++) {
        int64_t start = split == DS_EVAL
            ? s->ntrain + (int64_t)((first + (uint64_t)b) % nwin) * T
            : (int64_t)(draw64(seed, step, STREAM_TOKEN_WINDOWS, (uint64_t)b) %
                        (uint64_t)(s->ntrain - T + 1));
        for (int64_t t = 0; t < T; t++) {
            uint32_t v = token_at(s, start + t);
            if (in->dtype == IR_I64)
                ((int64_t *)buf)[b * T + t] = v;
            else if (v > INT32_MAX)
                return diag_set(d, ST_ERR_INVALID, "%s: token %u at position %lld does not fit "
                                "the int32 model input '%s'", s->path, v, (long long)(start + t),
                                in->name);
            else
                ((int32_t *)buf)[b * T + t] = (int32_t)v;
        }
    }
    return ST_OK;
}

int ds_check_vocab(struct ds_source *s, int64_t vocab, struct diag *d)
{
    if (s->kind != DS_TOKENS || vocab <= 0)
        return ST_OK;
    if (s->max_token < 0)
        for (int64_t i = 0; i < s->ntok; i++) {
            int64_t v = token_at(s, i);
            if (v > s->max_token)
                s->max_token = v;
        }
    if (s->max_token < vocab)
        return ST_OK;
    int64_t at = 0;
    while (token_at(s, at) < vocab)
        at++;
    return diag_set(d, ST_ERR_INVALID, "%s: token %lld at position %lld is not below the model's "
                    "vocabulary size %lld (is --tokens right?)", s->path,
                    (long long)token_at(s, at), (long long)at, (long long)vocab);
}

int64_t ds_graph_vocab(const struct ir_graph *g, uint32_t input)
{
    for (uint32_t i = 0; i < g->nn; i++) {
        const struct ir_node *n = &g->n[i];
        if ((n->flags & IR_N_DEAD) || n->op != IR_OP_Gather || n->in[1] != input)
            continue;
        const struct ir_tensor *w = &g->t[n->in[0]];
        if (w->data && w->rank >= 1 && w->dims[0] > 0 && ir_attr_int(n, "axis", 0) == 0)
            return w->dims[0];
    }
    return 0;
}

/* ---- the source ------------------------------------------------------------ */

static int open_spec(struct ds_source *s, const char *spec, const struct ds_opts *o,
                     struct diag *d)
{
    if (!spec || !*spec || strcmp(spec, "toy") == 0 || strncmp(spec, "toy:", 4) == 0)
        return open_toy(s, spec && *spec ? spec : NULL, o, d);
    if (ends_with(spec, ".npy"))
        return open_npy(s, spec, d);
    if (ends_with(spec, ".npz"))
        return open_npz(s, spec, NULL, d);
    const char *z = NULL;
    for (const char *q = strstr(spec, ".npz:"); q; q = strstr(q + 1, ".npz:"))
        z = q; /* the last one: a folder may be called x.npz: too */
    if (z) {
        char file[PATH_MAX];
        snprintf(file, sizeof file, "%.*s", (int)(z + 4 - spec), spec);
        return open_npz(s, file, z + 5, d);
    }
    if (ends_with(spec, ".bin"))
        return open_tokens(s, spec, o, d);
    return diag_set(d, ST_ERR_INVALID, "data source '%s': expected toy[:p=P,lo=L,hi=H], FILE.npy, "
                    "FILE.npz[:NAME] or FILE.bin (tokens)", spec);
}

int ds_open(const char *spec, const struct ds_opts *o, struct ds_source **out, struct diag *d)
{
    struct ds_source *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    int st = open_spec(s, spec, o, d);
    if (!st && s->kind == DS_TOKENS && s->seq > 0 && s->seq > s->ntok)
        st = diag_set(d, ST_ERR_SHAPE, "%s: a window of %lld tokens is longer than the file "
                      "(%lld tokens)", s->path, (long long)s->seq, (long long)s->ntok);
    if (st) {
        ds_close(s);
        return st;
    }
    *out = s;
    return ST_OK;
}

int ds_open_toy(double p, double lo, double hi, struct ds_source **out, struct diag *d)
{
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.p = p, o.lo = lo, o.hi = hi;
    return ds_open("toy", &o, out, d);
}

int ds_check_input(struct ds_source *s, const struct ir_tensor *in, struct diag *d)
{
    if (in->rank < 1 || ir_numel(in) < 1)
        return diag_set(d, ST_ERR_SHAPE, "data input '%s' has no batch dim or unknown dims",
                        in->name);
    switch (s->kind) {
    case DS_TOY:
        if (in->dtype != IR_F32)
            return diag_set(d, ST_ERR_UNSUPPORTED, "data input '%s' is %s; the sparse-feature "
                            "generator makes float32", in->name, ir_dtype_name(in->dtype));
        return ST_OK;
    case DS_ARRAY: return check_array(s, in, d);
    case DS_TOKENS: return check_tokens(s, in, d);
    }
    return ST_OK;
}

/* x_i = u_i · 1[r_i < p] with u from stream 1 and r from stream 2 (the generator
 * the toy targets were trained with: keep it bit for bit); elements [lo, hi) of the
 * batch, so the pool can split it */
struct toy_fill {
    const struct ds_source *s;
    float *x;
    uint64_t seed, step;
};

static void toy_range(void *ctx, int64_t lo, int64_t hi)
{
    const struct toy_fill *f = ctx;
    float active[1024]; /* stream 2 in slices: a slice of a fill is the same draws */
    philox_uniform_fill(f->x + lo, hi - lo, f->seed, f->step, STREAM_TOY_VALUE, (uint64_t)lo);
    for (int64_t i0 = lo; i0 < hi; i0 += 1024) {
        int64_t m = hi - i0 < 1024 ? hi - i0 : 1024;
        philox_uniform_fill(active, m, f->seed, f->step, STREAM_TOY_ACTIVE, (uint64_t)i0);
        for (int64_t k = 0; k < m; k++) {
            float *v = &f->x[i0 + k];
            *v = (double)active[k] < f->s->p ? (float)(f->s->lo + (f->s->hi - f->s->lo) * (double)*v)
                                             : 0.0f;
        }
    }
}

static void fill_toy(const struct ds_source *s, float *x, int64_t n, uint64_t seed, uint64_t step)
{
    struct toy_fill f = {s, x, seed, step};
    cpu_parallel(n, 8192, toy_range, &f);
}

/* L3D's generator (l3d: GenerateTMSInputs / GenerateCorrelatedData): row b of F
 * features; attempt a reads the element indices a·n + b·F + j (a = 0: fill_toy's), the
 * activity of a group from its first feature; all-zero rows are drawn again (nz) */
static void fill_toy_row(const struct ds_source *s, float *x, int64_t n, int64_t F, int64_t b,
                         uint64_t seed, uint64_t step)
{
    int64_t G = s->group > 0 ? s->group : 1;
    for (int a = 0; a < TOY_REDRAWS; a++) {
        int any = 0;
        for (int64_t j = 0; j < F; j++) {
            uint64_t i = (uint64_t)(a * n + b * F + j), gi = i - (uint64_t)(j % G);
            float u = philox_uniform_at(seed, step, STREAM_TOY_VALUE, i);
            float r = philox_uniform_at(seed, step, STREAM_TOY_ACTIVE, gi);
            double v = (double)r < s->p ? s->lo + (s->hi - s->lo) * (double)u : 0.0;
            if (v != 0.0 && s->sign && philox_uniform_at(seed, step, STREAM_TOY_SIGN, i) < 0.5f)
                v = -v;
            x[b * F + j] = (float)v;
            any |= v != 0.0;
        }
        if (any || !s->nz)
            return;
    }
}

int ds_fill(struct ds_source *s, void *buf, const struct ir_tensor *in, uint64_t seed,
            uint64_t step, enum ds_split split, struct diag *d)
{
    int st = ds_check_input(s, in, d);
    if (st)
        return st;
    switch (s->kind) {
    case DS_TOY:
        if (s->nz || s->sign || s->group)
            for (int64_t b = 0; b < in->dims[0]; b++)
                fill_toy_row(s, buf, ir_numel(in), ir_numel(in) / in->dims[0], b, seed, step);
        else
            fill_toy(s, buf, ir_numel(in), seed, step);
        break;
    case DS_ARRAY: fill_array(s, buf, in->dims[0], seed, step, split); break;
    case DS_TOKENS: return fill_tokens(s, buf, in, seed, step, split, d);
    }
    return ST_OK;
}

int64_t ds_eval_windows(const struct ds_source *s, int64_t T)
{
    return s->kind == DS_TOKENS && T >= 1 ? (s->ntok - s->ntrain) / T : 0;
}

int ds_eval_batch(struct ds_source *s, void *buf, const struct ir_tensor *in, uint64_t seed,
                  uint64_t k, struct diag *d)
{
    return ds_fill(s, buf, in, seed, k, DS_EVAL, d);
}
