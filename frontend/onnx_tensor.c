/* onnx_tensor.c — TensorProto → tensor data: raw bytes, typed fields, or
 * external data confined to the model's folder. Every size the file claims is
 * checked against what is really there before anything is allocated. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_internal.h"

static void *pb_alloc(void *ud, size_t n)
{
    (void)ud;
    return malloc(n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

ProtobufCAllocator onnx_pb_alloc = {pb_alloc, pb_free, NULL};

/* protobuf-c allocates a whole struct for every message however few bytes encode it, so a
 * file of empty nodes expands ~100x when unpacked: the budget refuses that before it
 * happens instead of after our own limits (node counts, ...) could see it */
static void *pb_alloc_budget(void *ud, size_t n)
{
    struct onnx_pb_budget *b = ud;
    if (n > b->left) {
        b->over = 1;
        return NULL;
    }
    b->left -= n;
    return malloc(n);
}

ProtobufCAllocator onnx_pb_budgeted(struct onnx_pb_budget *b)
{
    return (ProtobufCAllocator){pb_alloc_budget, pb_free, b};
}

void onnx_data_release(struct onnx_data *od)
{
    if (od->mapped)
        munmap(od->base, od->len);
    else
        free(od->base);
    od->base = od->data = NULL;
}

int onnx_read_file(const char *path, size_t max, void **buf, size_t *len, struct diag *d)
{
    /* O_NONBLOCK: a FIFO must not hang the open; the regular-file check follows */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return diag_set(d, ST_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        close(fd);
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: %lld bytes is larger than the %zu-byte limit",
                        path, (long long)sb.st_size, max);
    }
    size_t n = (size_t)sb.st_size;
    char *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(p);
            close(fd);
            return diag_set(d, ST_ERR_IO, "%s: read failed after %zu of %zu bytes", path, got, n);
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = p;
    *len = n;
    return ST_OK;
}

static int check_shape(const Onnx__TensorProto *tp, const char *what, struct onnx_data *out,
                       int64_t *numel, struct diag *d)
{
    if (!tp->has_data_type || !ir_dtype_valid(tp->data_type))
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: data type %d is not supported", what,
                        tp->has_data_type ? tp->data_type : 0);
    if (tp->n_dims > IR_MAX_RANK)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: rank %zu exceeds the maximum of %d", what,
                        tp->n_dims, IR_MAX_RANK);
    int64_t n = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        int64_t v = tp->dims[i];
        if (v < 0 || v > IR_MAX_ELEMS || (v && n > IR_MAX_ELEMS / v))
            return diag_set(d, ST_ERR_INVALID,
                            "%s: dim %zu = %lld gives an implausible size (limit 2^34 elements)",
                            what, i, (long long)v);
        n *= v;
        out->dims[i] = v;
    }
    out->dtype = (enum ir_dtype)tp->data_type;
    out->rank = (int)tp->n_dims;
    *numel = n;
    return ST_OK;
}

/* The typed repeated fields: which one holds a dtype, and how elements convert. */
static int decode_typed(const Onnx__TensorProto *tp, const char *what, int64_t numel,
                        struct onnx_data *out, struct diag *d)
{
    enum ir_dtype dt = out->dtype;
    size_t have;
    switch (dt) {
    case IR_F32: have = tp->n_float_data; break;
    case IR_F64: have = tp->n_double_data; break;
    case IR_I64: have = tp->n_int64_data; break;
    case IR_U32: case IR_U64: have = tp->n_uint64_data; break;
    case IR_I32: case IR_I16: case IR_I8: case IR_U16: case IR_U8: case IR_BOOL:
    case IR_F16: case IR_BF16: have = tp->n_int32_data; break;
    case IR_STRING: case IR_DT_UNDEF: default:
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: data type %d is not supported", what, dt);
    }
    if ((int64_t)have != numel)
        return diag_set(d, ST_ERR_INVALID, "%s: holds %zu values but its shape needs %lld", what,
                        have, (long long)numel);
    size_t esz = ir_dtype_size(dt);
    out->nbytes = (size_t)numel * esz;
    out->base = out->data = malloc(out->nbytes ? out->nbytes : 1);
    if (!out->base)
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory (%zu bytes)", what, out->nbytes);
    for (int64_t i = 0; i < numel; i++) {
        switch (dt) {
        case IR_F32: ((float *)out->data)[i] = tp->float_data[i]; break;
        case IR_F64: ((double *)out->data)[i] = tp->double_data[i]; break;
        case IR_I64: ((int64_t *)out->data)[i] = tp->int64_data[i]; break;
        case IR_U32: ((uint32_t *)out->data)[i] = (uint32_t)tp->uint64_data[i]; break;
        case IR_U64: ((uint64_t *)out->data)[i] = tp->uint64_data[i]; break;
        case IR_F16: case IR_BF16: /* stored as the 16-bit pattern in an int32 */
            ((uint16_t *)out->data)[i] = (uint16_t)tp->int32_data[i];
            break;
        default: ir_store_i64(dt, out->data, i, tp->int32_data[i]); break;
        }
    }
    return ST_OK;
}

/* A relative path with no ".." component, no absolute prefix, resolving (after
 * symlinks) to a regular file inside `dir`. */
static int resolve_external(const char *dir, const char *loc, const char *what, char *full,
                            size_t fulln, struct diag *d)
{
    if (!loc || !*loc)
        return diag_set(d, ST_ERR_INVALID, "%s: external data has no location", what);
    if (loc[0] == '/' || strchr(loc, '\\') || strchr(loc, ':'))
        return diag_set(d, ST_ERR_INVALID,
                        "%s: external data path '%s' is absolute; only paths inside the model's "
                        "folder are allowed", what, loc);
    for (const char *p = loc; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return diag_set(d, ST_ERR_INVALID,
                            "%s: external data path '%s' leaves the model's folder", what, loc);
        p += n + (e ? 1 : 0);
    }
    char rdir[PATH_MAX], rfile[PATH_MAX];
    if (snprintf(full, fulln, "%s/%s", dir, loc) >= (int)fulln)
        return diag_set(d, ST_ERR_INVALID, "%s: external data path too long", what);
    if (!realpath(dir, rdir) || !realpath(full, rfile))
        return diag_set(d, ST_ERR_IO, "%s: external data file '%s' not found: %s", what, full,
                        strerror(errno));
    size_t nd = strlen(rdir);
    if (strncmp(rfile, rdir, nd) != 0 || (rfile[nd] != '/' && !(nd == 1 && rdir[0] == '/')))
        return diag_set(d, ST_ERR_INVALID,
                        "%s: external data path '%s' resolves outside the model's folder", what, loc);
    return ST_OK;
}

/* The file an fd has open is inside dir: checked on the descriptor, after open, so a
 * symlink swapped in between resolve_external's realpath and the open cannot take the
 * read elsewhere. */
static int fd_inside(int fd, const char *dir)
{
    char link[64], got[PATH_MAX], rdir[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, got, sizeof got - 1);
    if (n <= 0 || !realpath(dir, rdir))
        return 0;
    got[n] = '\0';
    size_t nd = strlen(rdir);
    return strncmp(got, rdir, nd) == 0 && (got[nd] == '/' || (nd == 1 && rdir[0] == '/'));
}

static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s)
        return -1;
    char *e;
    errno = 0;
    unsigned long long x = strtoull(s, &e, 10);
    if (errno || *e || s[0] == '-')
        return -1;
    *v = x;
    return 0;
}

static int decode_external(const Onnx__TensorProto *tp, const char *dir, const char *what,
                           int64_t numel, struct onnx_data *out, struct diag *d)
{
    if (!dir)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: external data is not allowed here", what);
    const char *loc = NULL;
    uint64_t off = 0, len = 0;
    int has_len = 0;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = tp->external_data[i];
        if (!kv->key)
            continue;
        if (strcmp(kv->key, "location") == 0)
            loc = kv->value;
        else if (strcmp(kv->key, "offset") == 0 && parse_u64(kv->value, &off))
            return diag_set(d, ST_ERR_INVALID, "%s: bad external data offset '%s'", what, kv->value);
        else if (strcmp(kv->key, "length") == 0) {
            if (parse_u64(kv->value, &len))
                return diag_set(d, ST_ERR_INVALID, "%s: bad external data length '%s'", what,
                                kv->value);
            has_len = 1;
        }
    }
    char full[PATH_MAX];
    int st = resolve_external(dir, loc, what, full, sizeof full, d);
    if (st)
        return st;
    uint64_t need = (uint64_t)numel * ir_dtype_size(out->dtype);
    if (has_len && len != need)
        return diag_set(d, ST_ERR_INVALID, "%s: external data length %llu, but the shape needs %llu bytes",
                        what, (unsigned long long)len, (unsigned long long)need);
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        return diag_set(d, ST_ERR_IO, "%s: cannot open external data '%s'", what, loc);
    }
    if (!fd_inside(fd, dir)) {
        close(fd);
        return diag_set(d, ST_ERR_INVALID, "%s: external data '%s' opened outside the model's "
                        "folder (did it change while being read?)", what, loc);
    }
    if (off > (uint64_t)sb.st_size || need > (uint64_t)sb.st_size - off) {
        close(fd);
        return diag_set(d, ST_ERR_INVALID,
                        "%s: external data '%s' bytes [%llu, %llu) run past its end (%lld bytes)",
                        what, loc, (unsigned long long)off, (unsigned long long)(off + need),
                        (long long)sb.st_size);
    }
    out->nbytes = (size_t)need;
    long page = sysconf(_SC_PAGESIZE);
    if (need > 0 && off % 16 == 0) {
        /* map, don't copy: a multi-GB weight file costs no second copy in memory.
         * MAP_PRIVATE so that nothing pdc does can ever write back to the file. */
        uint64_t start = off - off % (uint64_t)page;
        size_t maplen = (size_t)(off + need - start);
        void *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)start);
        close(fd);
        if (m == MAP_FAILED)
            return diag_set(d, ST_ERR_IO, "%s: mmap of '%s' failed: %s", what, loc, strerror(errno));
        out->base = m;
        out->len = maplen;
        out->mapped = 1;
        out->data = (char *)m + (off - start);
        return ST_OK;
    }
    /* unaligned or empty: read straight into the tensor's own buffer */
    out->base = out->data = malloc(need ? (size_t)need : 1);
    if (!out->base) {
        close(fd);
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory (%llu bytes)", what,
                        (unsigned long long)need);
    }
    size_t got = 0;
    while (got < need) {
        ssize_t r = pread(fd, (char *)out->data + got, (size_t)need - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            free(out->base);
            out->base = NULL;
            return diag_set(d, ST_ERR_IO, "%s: short read of external data '%s'", what, loc);
        }
        got += (size_t)r;
    }
    close(fd);
    return ST_OK;
}

int onnx_tensor_decode(Onnx__TensorProto *tp, const char *dir, const char *what,
                       struct onnx_data *out, struct diag *d)
{
    memset(out, 0, sizeof *out);
    int64_t numel = 0;
    int st = check_shape(tp, what, out, &numel, d);
    if (st)
        return st;
    if (tp->segment)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return decode_external(tp, dir, what, numel, out, d);
    if (tp->has_raw_data) {
        size_t need = (size_t)numel * ir_dtype_size(out->dtype);
        if (tp->raw_data.len != need)
            return diag_set(d, ST_ERR_INVALID,
                            "%s: raw_data has %zu bytes but shape and type need %zu", what,
                            tp->raw_data.len, need);
        out->nbytes = need;
        if (need == 0) {
            out->base = out->data = malloc(1);
            return out->base ? ST_OK : diag_set(d, ST_ERR_NOMEM, "out of memory");
        }
        /* steal the bytes protobuf-c already copied (onnx_pb_alloc is malloc) */
        out->base = out->data = tp->raw_data.data;
        tp->raw_data.data = NULL;
        tp->raw_data.len = 0;
        tp->has_raw_data = 0;
        return ST_OK;
    }
    return decode_typed(tp, what, numel, out, d);
}

int onnx_read_tensor_file(const char *path, struct ir_value *v, struct diag *d)
{
    void *buf;
    size_t len;
    memset(v, 0, sizeof *v);
    int st = onnx_read_file(path, ONNX_MAX_FILE_BYTES, &buf, &len, d);
    if (st)
        return st;
    if (onnx_check_depth(buf, len, &onnx__tensor_proto__descriptor)) {
        free(buf);
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: messages nested too deep", path);
    }
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&onnx_pb_alloc, len, buf);
    free(buf);
    if (!tp)
        return diag_set(d, ST_ERR_PARSE, "%s: not a valid serialized TensorProto", path);
    struct onnx_data od;
    char what[512];
    snprintf(what, sizeof what, "%s: tensor '%s'", path, tp->name ? tp->name : "");
    /* test data never uses external files; refuse rather than resolve paths */
    st = onnx_tensor_decode(tp, NULL, what, &od, d);
    if (!st) {
        v->name = strdup(tp->name ? tp->name : "");
        v->dtype = od.dtype;
        v->rank = od.rank;
        memcpy(v->dims, od.dims, sizeof v->dims);
        v->nbytes = od.nbytes;
        if (od.mapped || od.data != od.base) { /* cannot happen with dir=NULL; keep free() valid */
            v->data = malloc(od.nbytes ? od.nbytes : 1);
            if (v->data)
                memcpy(v->data, od.data, od.nbytes);
            onnx_data_release(&od);
        } else {
            v->data = od.base;
        }
        if (!v->name || !v->data) {
            ir_value_free(v);
            st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    onnx__tensor_proto__free_unpacked(tp, &onnx_pb_alloc);
    return st;
}
