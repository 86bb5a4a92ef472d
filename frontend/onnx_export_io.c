/* onnx_export_io.c — tensors out, and the two files written atomically.
 * Weight bytes are never copied into the message: TensorProto.raw_data points
 * at the tensor's own buffer and the model is streamed to disk by protobuf-c,
 * so the peak extra memory is one write buffer. Initializers over the
 * threshold go to one external data file (offsets aligned to 4096 bytes, so
 * readers can map them), which keeps the model itself under protobuf's 2 GiB.
 * Each file is written under a temporary name in the target folder, synced and
 * renamed; the model is renamed last, so a reader never sees a model pointing
 * at data that is not there yet. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_export_impl.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian and the exporter writes host bytes as they are"
#endif

#define SINK_CAP ((size_t)1 << 20)
#define PROTOBUF_LIMIT ((size_t)INT32_MAX)

/* ---- TensorProto ----------------------------------------------------------- */

static Onnx__StringStringEntryProto *kv(struct exporter *x, const char *k, const char *v)
{
    Onnx__StringStringEntryProto *e = ir_arena_alloc(x->arena, sizeof *e);
    Onnx__StringStringEntryProto init = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    *e = init;
    e->key = ir_arena_strdup(x->arena, k);
    e->value = ir_arena_strdup(x->arena, v);
    return e;
}

static int plan_external(struct exporter *x, const struct ir_tensor *t, Onnx__TensorProto *tp)
{
    if (x->n_ext == x->c_ext) {
        size_t c = x->c_ext ? x->c_ext * 2 : 16;
        struct ex_ext *e = realloc(x->ext, c * sizeof *e);
        if (!e)
            return diag_set(x->d, ST_ERR_NOMEM, "%s: out of memory", x->file);
        x->ext = e;
        x->c_ext = c;
    }
    uint64_t off = (x->ext_end + EX_ALIGN - 1) / EX_ALIGN * EX_ALIGN;
    x->ext[x->n_ext++] = (struct ex_ext){t->data, t->nbytes, off};
    x->ext_end = off + t->nbytes;
    char so[32], sl[32];
    snprintf(so, sizeof so, "%llu", (unsigned long long)off);
    snprintf(sl, sizeof sl, "%zu", t->nbytes);
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    tp->n_external_data = 3;
    tp->external_data = ir_arena_alloc(x->arena, 3 * sizeof *tp->external_data);
    tp->external_data[0] = kv(x, "location", x->ext_name);
    tp->external_data[1] = kv(x, "offset", so);
    tp->external_data[2] = kv(x, "length", sl);
    return ST_OK;
}

int ex_tensor_proto(struct exporter *x, uint32_t tid, int may_extern, Onnx__TensorProto **out)
{
    const struct ir_tensor *t = &x->g->t[tid];
    size_t esz = ir_dtype_size(t->dtype);
    int64_t ne = ir_numel(t);
    if (!t->data || !esz || ne < 0 || (size_t)ne * esz != t->nbytes)
        return diag_set(x->d, ST_ERR_INVALID,
                        "%s: tensor '%s' (%s, %zu bytes) has no complete constant data to write",
                        x->file, t->name, ir_dtype_name(t->dtype), t->nbytes);
    Onnx__TensorProto *tp = ir_arena_alloc(x->arena, sizeof *tp);
    Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
    *tp = init;
    tp->name = (char *)t->name;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->n_dims = (size_t)t->rank;
    tp->dims = (int64_t *)t->dims; /* read only by pack */
    *out = tp;
    if (may_extern && x->ext_threshold && t->nbytes > x->ext_threshold)
        return plan_external(x, t, tp);
    tp->has_raw_data = 1;
    tp->raw_data.len = t->nbytes;
    tp->raw_data.data = t->data; /* borrowed: no copy of the weights */
    return ST_OK;
}

/* ---- raw writes ------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* protobuf-c output buffer that streams into a file through a 1 MiB buffer;
 * large byte fields (weights) go straight from the tensor to the file. */
struct fd_sink {
    ProtobufCBuffer base; /* first: protobuf-c calls append with &base */
    int fd, err;
    size_t used;
    uint64_t total;
    uint8_t *buf;
};

static void sink_flush(struct fd_sink *s)
{
    if (!s->err && s->used)
        s->err = write_all(s->fd, s->buf, s->used);
    s->used = 0;
}

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct fd_sink *s = (struct fd_sink *)b;
    s->total += len;
    if (s->err)
        return;
    if (s->used + len > SINK_CAP)
        sink_flush(s);
    if (len >= SINK_CAP) {
        if (!s->err)
            s->err = write_all(s->fd, data, len);
        return;
    }
    memcpy(s->buf + s->used, data, len);
    s->used += len;
}

/* ---- the two files ---------------------------------------------------------- */

typedef int (*fill_fn)(struct exporter *x, const void *arg, int fd); /* 0 or errno */

static int fill_model(struct exporter *x, const void *arg, int fd)
{
    const Onnx__ModelProto *m = arg;
    size_t size = onnx__model_proto__get_packed_size(m);
    struct fd_sink s = {.base = {sink_append}, .fd = fd, .buf = malloc(SINK_CAP)};
    if (!s.buf)
        return ENOMEM;
    onnx__model_proto__pack_to_buffer(m, &s.base);
    sink_flush(&s);
    free(s.buf);
    if (!s.err && s.total != size)
        s.err = EIO;
    (void)x;
    return s.err;
}

static int fill_data(struct exporter *x, const void *arg, int fd)
{
    (void)arg;
    for (size_t i = 0; i < x->n_ext; i++) {
        int e = pwrite_all(fd, x->ext[i].data, x->ext[i].nbytes, x->ext[i].offset);
        if (e)
            return e;
    }
    return ftruncate(fd, (off_t)x->ext_end) ? errno : 0; /* a trailing empty tensor */
}

/* "<dir>/.<base>.tmp<pid>_<k>", created exclusively (the umask applies). */
static int open_temp(const char *final, char *tmp, size_t n)
{
    const char *slash = strrchr(final, '/');
    int dirlen = slash ? (int)(slash - final + 1) : 0;
    const char *base = slash ? slash + 1 : final;
    for (unsigned k = 0; k < 1000; k++) {
        if (snprintf(tmp, n, "%.*s.%s.tmp%ld_%u", dirlen, final, base, (long)getpid(), k) >=
            (int)n) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Write `final`'s content to a fresh temporary file (name left in tmp, "" if
 * none was created) and sync it. */
static int write_temp(struct exporter *x, const char *final, char *tmp, size_t n, fill_fn fill,
                      const void *arg)
{
    tmp[0] = 0;
    int fd = open_temp(final, tmp, n);
    if (fd < 0) {
        int e = errno;
        tmp[0] = 0;
        return diag_set(x->d, ST_ERR_IO, "%s: cannot create a temporary file next to '%s': %s",
                        x->file, final, strerror(e));
    }
    int e = fill(x, arg, fd);
    if (!e && fsync(fd))
        e = errno;
    if (close(fd) && !e)
        e = errno;
    if (e)
        return diag_set(x->d, ST_ERR_IO, "%s: writing '%s' failed: %s", x->file, final,
                        strerror(e));
    return ST_OK;
}

static void sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the renames are durable once the folder is */
        close(fd);
    }
}

static int data_path_of(struct exporter *x, const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    if (snprintf(out, n, "%.*s%s", dirlen, path, x->ext_name) >= (int)n)
        return diag_set(x->d, ST_ERR_INVALID, "%s: external data path too long", x->file);
    if (strcmp(slash ? slash + 1 : path, x->ext_name) == 0)
        return diag_set(x->d, ST_ERR_INVALID,
                        "%s: the external data file cannot have the model's own name", x->file);
    return ST_OK;
}

static int rename_into(struct exporter *x, const char *tmp, const char *final)
{
    if (rename(tmp, final) == 0)
        return ST_OK;
    return diag_set(x->d, ST_ERR_IO, "%s: cannot rename '%s' to '%s': %s", x->file, tmp, final,
                    strerror(errno));
}

int ex_write_files(struct exporter *x, const Onnx__ModelProto *m, const char *path)
{
    size_t size = onnx__model_proto__get_packed_size(m);
    if (size > PROTOBUF_LIMIT)
        return diag_set(x->d, ST_ERR_UNSUPPORTED,
                        "%s: the model would be %zu bytes, over protobuf's 2 GiB limit; store "
                        "the weights as external data (an external threshold such as 1024 bytes)",
                        x->file, size);
    char dpath[PATH_MAX], dtmp[PATH_MAX] = "", mtmp[PATH_MAX] = "";
    int st = ST_OK, data_placed = 0;
    if (x->n_ext && (st = data_path_of(x, path, dpath, sizeof dpath)) == ST_OK)
        st = write_temp(x, dpath, dtmp, sizeof dtmp, fill_data, NULL);
    if (!st)
        st = write_temp(x, path, mtmp, sizeof mtmp, fill_model, m);
    if (!st && x->n_ext && (st = rename_into(x, dtmp, dpath)) == ST_OK)
        data_placed = 1;
    if (!st)
        st = rename_into(x, mtmp, path);
    if (st) { /* leave nothing behind */
        if (dtmp[0])
            unlink(data_placed ? dpath : dtmp);
        if (mtmp[0])
            unlink(mtmp);
        return st;
    }
    sync_dir(path);
    return ST_OK;
}
