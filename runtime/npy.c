/* npy.c — NumPy .npy files in and out, and the atomic file writer.
 *
 * Format (numpy/lib/format.py): "\x93NUMPY", major, minor, a little-endian
 * header length (u16 for v1.0, u32 for v2.0/3.0), then a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces to a 64-byte boundary and ended by '\n', then the raw data.
 *
 * The file is untrusted. Every number it claims (header length, rank, each dim,
 * the element count and the resulting data size) is checked against pdc's
 * limits and against the bytes actually present before anything is allocated,
 * so a 100-byte file cannot make us allocate gigabytes. The dict is parsed with
 * a small strict grammar rather than "anything that looks right": a header we
 * misread would silently reinterpret the data.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "npy_impl.h"

/* The data bytes are copied as-is into host buffers; pdc only runs on
 * little-endian hosts, which is what every '<' descr assumes. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* A rank <= 8 header is < 200 bytes; numpy itself refuses headers over 10000
 * bytes by default. 64 KiB leaves room for odd writers and stops a file from
 * making us read (and parse) megabytes of "header". */
#define NPY_MAX_HEADER ((uint32_t)65536)

struct npy_hdr {
    enum ir_dtype dtype;
    int rank;
    int64_t dims[IR_MAX_RANK];
    size_t data_off;   /* where the data starts */
    uint64_t data_len; /* numel * itemsize */
};

/* ---- descr <-> dtype ----------------------------------------------------- */

static const struct {
    const char *descr; /* as numpy writes it on a little-endian machine */
    enum ir_dtype dt;
} npy_types[] = {
    {"<f4", IR_F32}, {"<f8", IR_F64}, {"<f2", IR_F16}, {"<i8", IR_I64}, {"<i4", IR_I32},
    {"<i2", IR_I16}, {"|i1", IR_I8},  {"<u8", IR_U64}, {"<u4", IR_U32}, {"<u2", IR_U16},
    {"|u1", IR_U8},  {"|b1", IR_BOOL},
};

static const char *npy_descr_of(enum ir_dtype dt)
{
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dt == dt)
            return npy_types[i].descr;
    return NULL;
}

/* Map a descr string. Single-byte types have no byte order, so '<' and '|'
 * (and '=') are the same there; for wider types only '<' (or '=' which on a
 * little-endian writer means '<') is accepted and '>' is named explicitly,
 * because a silent byte swap would give plausible-looking garbage. */
static int npy_dtype_of(const char *s, size_t n, const char *what, enum ir_dtype *dt,
                        struct diag *d)
{
    if (n == 3 && (s[0] == '<' || s[0] == '|' || s[0] == '=' || s[0] == '>')) {
        for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
            const char *t = npy_types[i].descr;
            if (s[1] != t[1] || s[2] != t[2])
                continue;
            int one_byte = t[0] == '|';
            if (one_byte || s[0] == '<' || s[0] == '=') {
                *dt = npy_types[i].dt;
                return ST_OK;
            }
            if (s[0] == '>')
                return diag_set(d, ST_ERR_UNSUPPORTED,
                                "%s: big-endian dtype '%.*s' is not supported "
                                "(convert with arr.astype('<%c%c'))",
                                what, (int)n, s, s[1], s[2]);
            break; /* '|' on a multi-byte type: malformed */
        }
    }
    return diag_set(d, ST_ERR_UNSUPPORTED,
                    "%s: unsupported .npy dtype '%.*s' (supported: f2 f4 f8 i1 i2 i4 i8 "
                    "u1 u2 u4 u8 b1, little-endian)",
                    what, (int)(n > 40 ? 40 : n), s);
}

/* ---- header dict parser ------------------------------------------------- */

struct cur {
    const char *p, *end;
};

static void skip_ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(struct cur *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A Python string literal without escapes (numpy's repr of the keys and of a
 * simple descr never contains any). Sets *s and *n to the body. */
static int parse_str(struct cur *c, const char **s, size_t *n)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char q = *c->p++;
    const char *b = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n')
            return 0;
        c->p++;
    }
    if (c->p >= c->end)
        return 0;
    *s = b;
    *n = (size_t)(c->p - b);
    c->p++;
    return 1;
}

static int match_word(struct cur *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return 0;
    /* reject "Falsehood" and the like */
    if ((size_t)(c->end - c->p) > n) {
        char nx = c->p[n];
        if ((nx >= 'a' && nx <= 'z') || (nx >= 'A' && nx <= 'Z') || (nx >= '0' && nx <= '9') ||
            nx == '_')
            return 0;
    }
    c->p += n;
    return 1;
}

/* shape tuple: "()", "(3,)", "(2, 3)", "(2, 3,)"; Python 2 era files may carry
 * an 'L' suffix on each int. "(3)" is an int, not a tuple, so numpy rejects it
 * and so do we. */
static int parse_shape(struct cur *c, const char *what, struct npy_hdr *h, struct diag *d)
{
    if (!eat(c, '('))
        return diag_set(d, ST_ERR_PARSE, "%s: .npy header: 'shape' is not a tuple", what);
    int rank = 0, trailing_comma = 0;
    for (;;) {
        if (eat(c, ')'))
            break;
        skip_ws(c);
        if (c->p < c->end && *c->p == '-')
            return diag_set(d, ST_ERR_PARSE, "%s: .npy header: negative dimension in 'shape'",
                            what);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return diag_set(d, ST_ERR_PARSE, "%s: .npy header: bad 'shape' tuple", what);
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            v = v * 10 + (*c->p++ - '0');
            if (v > IR_MAX_ELEMS) /* checked per digit: no overflow possible */
                return diag_set(d, ST_ERR_PARSE,
                                "%s: .npy header: dimension %d exceeds the limit of %" PRId64
                                " elements",
                                what, rank, (int64_t)IR_MAX_ELEMS);
        }
        if (c->p < c->end && *c->p == 'L')
            c->p++;
        if (rank >= IR_MAX_RANK)
            return diag_set(d, ST_ERR_UNSUPPORTED,
                            "%s: .npy header: rank exceeds pdc's maximum of %d", what,
                            IR_MAX_RANK);
        h->dims[rank++] = v;
        trailing_comma = eat(c, ',');
        if (!trailing_comma) {
            if (!eat(c, ')'))
                return diag_set(d, ST_ERR_PARSE, "%s: .npy header: bad 'shape' tuple", what);
            break;
        }
    }
    if (rank == 1 && !trailing_comma)
        return diag_set(d, ST_ERR_PARSE, "%s: .npy header: 'shape' is not a tuple", what);
    h->rank = rank;
    return ST_OK;
}

static int parse_dict(const char *txt, size_t len, const char *what, struct npy_hdr *h,
                      struct diag *d)
{
    struct cur c = {txt, txt + len};
    int have_descr = 0, have_fo = 0, have_shape = 0, fortran = 0;
    const char *ds = NULL;
    size_t dn = 0;

    if (!eat(&c, '{'))
        return diag_set(d, ST_ERR_PARSE, "%s: .npy header is not a dict", what);
    for (;;) {
        if (eat(&c, '}'))
            break;
        const char *k;
        size_t kn;
        if (!parse_str(&c, &k, &kn))
            return diag_set(d, ST_ERR_PARSE, "%s: .npy header: expected a quoted key", what);
        if (!eat(&c, ':'))
            return diag_set(d, ST_ERR_PARSE, "%s: .npy header: expected ':' after key", what);
        if (kn == 5 && memcmp(k, "descr", 5) == 0 && !have_descr) {
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return diag_set(d, ST_ERR_UNSUPPORTED,
                                "%s: structured (record) .npy arrays are not supported", what);
            if (!parse_str(&c, &ds, &dn))
                return diag_set(d, ST_ERR_PARSE, "%s: .npy header: bad 'descr'", what);
            have_descr = 1;
        } else if (kn == 13 && memcmp(k, "fortran_order", 13) == 0 && !have_fo) {
            if (match_word(&c, "True"))
                fortran = 1;
            else if (!match_word(&c, "False"))
                return diag_set(d, ST_ERR_PARSE, "%s: .npy header: bad 'fortran_order'", what);
            have_fo = 1;
        } else if (kn == 5 && memcmp(k, "shape", 5) == 0 && !have_shape) {
            int st = parse_shape(&c, what, h, d);
            if (st)
                return st;
            have_shape = 1;
        } else {
            return diag_set(d, ST_ERR_PARSE, "%s: .npy header: unexpected or repeated key '%.*s'",
                            what, (int)(kn > 40 ? 40 : kn), k);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                return diag_set(d, ST_ERR_PARSE, "%s: .npy header: expected ',' or '}'", what);
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end)
        return diag_set(d, ST_ERR_PARSE, "%s: .npy header: junk after the dict", what);
    if (!have_descr || !have_fo || !have_shape)
        return diag_set(d, ST_ERR_PARSE, "%s: .npy header lacks '%s'", what,
                        !have_descr ? "descr" : !have_fo ? "fortran_order" : "shape");
    int st = npy_dtype_of(ds, dn, what, &h->dtype, d);
    if (st)
        return st;
    if (fortran) {
        /* 0-d and 1-d arrays are the same in either order, but numpy only writes
         * True for arrays that are not C-contiguous; ask for a C-order file. */
        return diag_set(d, ST_ERR_UNSUPPORTED,
                        "%s: fortran_order=True arrays are not supported "
                        "(save np.ascontiguousarray(arr) instead)",
                        what);
    }
    /* element count, checked as it grows so the product cannot overflow */
    int64_t numel = 1;
    for (int i = 0; i < h->rank; i++) {
        if (h->dims[i] == 0) {
            numel = 0;
            break;
        }
    }
    for (int i = 0; numel && i < h->rank; i++) {
        if (h->dims[i] > IR_MAX_ELEMS / numel)
            return diag_set(d, ST_ERR_PARSE,
                            "%s: .npy shape has more than %" PRId64 " elements", what,
                            (int64_t)IR_MAX_ELEMS);
        numel *= h->dims[i];
    }
    h->data_len = (uint64_t)numel * ir_dtype_size(h->dtype); /* <= 2^34 * 8: no overflow */
    return ST_OK;
}

/* Validate magic and version and find the header: needs the first 12 bytes
 * (fewer when the file is shorter — then it is an error anyway). */
static int npy_preamble(const uint8_t *p, size_t avail, uint64_t total, const char *what,
                        size_t *hoff, uint32_t *hlen, int *utf8, struct diag *d)
{
    if (total == 0)
        return diag_set(d, ST_ERR_PARSE, "%s: empty file, not a .npy array", what);
    if (avail < NPY_MAGIC_LEN + 2 || memcmp(p, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return diag_set(d, ST_ERR_PARSE, "%s: not a .npy file (bad magic)", what);
    int major = p[6], minor = p[7];
    if (minor != 0 || major < 1 || major > 3)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: unsupported .npy format version %d.%d",
                        what, major, minor);
    size_t lsz = major == 1 ? 2 : 4;
    if (avail < 8 + lsz)
        return diag_set(d, ST_ERR_PARSE, "%s: truncated .npy header (file is %" PRIu64 " bytes)",
                        what, total);
    uint32_t n = (uint32_t)p[8] | (uint32_t)p[9] << 8;
    if (lsz == 4)
        n |= (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24;
    if (n > NPY_MAX_HEADER)
        return diag_set(d, ST_ERR_PARSE, "%s: .npy header length %" PRIu32 " is implausible",
                        what, n);
    if (8 + lsz + (uint64_t)n > total)
        return diag_set(d, ST_ERR_PARSE,
                        "%s: truncated .npy header (header claims %" PRIu32
                        " bytes, file is %" PRIu64 " bytes)",
                        what, n, total);
    *hoff = 8 + lsz;
    *hlen = n;
    *utf8 = major == 3;
    return ST_OK;
}

/* Parse the header; the dict text must already be in memory. Checks that the
 * data the shape needs is exactly what follows the header. */
static int npy_parse(const uint8_t *hdr, size_t hlen, size_t hoff, int utf8, uint64_t total,
                     const char *what, struct npy_hdr *h, struct diag *d)
{
    memset(h, 0, sizeof *h);
    /* v1/v2 headers are latin-1 and v3 utf-8; the grammar accepts ASCII only
     * anyway, so any high byte is an error in either encoding. */
    for (size_t i = 0; i < hlen; i++)
        if (hdr[i] == 0 || hdr[i] >= 0x80)
            return diag_set(d, ST_ERR_PARSE, "%s: .npy header contains a non-ASCII byte%s", what,
                            utf8 ? " (v3.0 utf-8 names are not supported)" : "");
    int st = parse_dict((const char *)hdr, hlen, what, h, d);
    if (st)
        return st;
    h->data_off = hoff + hlen;
    uint64_t have = total - h->data_off;
    if (have < h->data_len)
        return diag_set(d, ST_ERR_PARSE,
                        "%s: .npy data is truncated: shape needs %" PRIu64
                        " bytes, file has %" PRIu64,
                        what, h->data_len, have);
    if (have > h->data_len)
        return diag_set(d, ST_ERR_PARSE,
                        "%s: .npy file has %" PRIu64 " bytes after the data the shape needs",
                        what, have - h->data_len);
    return ST_OK;
}

static int value_alloc(struct ir_value *v, const struct npy_hdr *h, const char *what,
                       struct diag *d)
{
    memset(v, 0, sizeof *v);
    if ((uint64_t)(size_t)h->data_len != h->data_len)
        return diag_set(d, ST_ERR_NOMEM, "%s: array too large for this machine", what);
    /* malloc(0) may return NULL; a 0-size array still gets a real pointer so
     * callers can tell "no data" from "allocation failed". */
    v->data = malloc(h->data_len ? (size_t)h->data_len : 1);
    if (!v->data)
        return diag_set(d, ST_ERR_NOMEM, "%s: cannot allocate %" PRIu64 " bytes", what,
                        h->data_len);
    v->dtype = h->dtype;
    v->rank = h->rank;
    for (int i = 0; i < h->rank; i++)
        v->dims[i] = h->dims[i];
    v->nbytes = (size_t)h->data_len;
    return ST_OK;
}

/* numpy stores bools as bytes; anything but 0/1 would make kernels that
 * compare against 1 disagree with numpy's truthiness. */
static void normalise_bool(struct ir_value *v)
{
    if (v->dtype != IR_BOOL)
        return;
    uint8_t *b = v->data;
    for (size_t i = 0; i < v->nbytes; i++)
        b[i] = b[i] != 0;
}

int npy_read_mem(const void *buf, size_t len, const char *what, struct ir_value *v,
                 struct diag *d)
{
    const uint8_t *p = buf;
    size_t hoff = 0;
    uint32_t hlen = 0;
    int utf8 = 0;
    struct npy_hdr h;
    memset(v, 0, sizeof *v);
    int st = npy_preamble(p, len, len, what, &hoff, &hlen, &utf8, d);
    if (st)
        return st;
    st = npy_parse(p + hoff, hlen, hoff, utf8, len, what, &h, d);
    if (st)
        return st;
    st = value_alloc(v, &h, what, d);
    if (st)
        return st;
    memcpy(v->data, p + h.data_off, v->nbytes);
    normalise_bool(v);
    return ST_OK;
}

/* read exactly n bytes at the current offset */
static int read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int npy_read_file(const char *path, struct ir_value *v, struct diag *d)
{
    memset(v, 0, sizeof *v);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int st = ST_OK;
    uint8_t pre[12];
    uint8_t *hdr = NULL;
    if (fstat(fd, &sb) != 0) {
        st = diag_set(d, ST_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = diag_set(d, ST_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    /* The size comes from the file system, not from the file's own claims;
     * everything below is checked against it before it is allocated or read. */
    uint64_t total = (uint64_t)sb.st_size;
    size_t avail = total < sizeof pre ? (size_t)total : sizeof pre;
    if (read_full(fd, pre, avail) != 0) {
        st = diag_set(d, ST_ERR_IO, "%s: read error: %s", path, errno ? strerror(errno) : "short read");
        goto out;
    }
    size_t hoff = 0;
    uint32_t hlen = 0;
    int utf8 = 0;
    st = npy_preamble(pre, avail, total, path, &hoff, &hlen, &utf8, d);
    if (st)
        goto out;
    hdr = malloc(hlen ? hlen : 1);
    if (!hdr) {
        st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    struct npy_hdr h;
    if (lseek(fd, (off_t)hoff, SEEK_SET) < 0 || read_full(fd, hdr, hlen) != 0) {
        st = diag_set(d, ST_ERR_IO, "%s: cannot read the .npy header", path);
        goto out;
    }
    st = npy_parse(hdr, hlen, hoff, utf8, total, path, &h, d);
    if (st)
        goto out;
    st = value_alloc(v, &h, path, d);
    if (st)
        goto out;
    if (read_full(fd, v->data, v->nbytes) != 0) {
        /* the file shrank under us since fstat */
        st = diag_set(d, ST_ERR_IO, "%s: short read of .npy data", path);
        ir_value_free(v);
        goto out;
    }
    normalise_bool(v);
out:
    free(hdr);
    close(fd);
    return st;
}

/* ---- writing -------------------------------------------------------------- */

/* Can v be written as .npy? (shared with npz.c through npy_impl.h) */
int npy_value_check(const struct ir_value *v, const char *path, struct diag *d)
{
    if (v->rank < 0 || v->rank > IR_MAX_RANK)
        return diag_set(d, ST_ERR_INVALID, "%s: cannot write an array of rank %d", path, v->rank);
    if (!npy_descr_of(v->dtype))
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: dtype %s has no .npy equivalent", path,
                        ir_dtype_name(v->dtype));
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) {
        if (v->dims[i] < 0 || (v->dims[i] && n > INT64_MAX / v->dims[i]))
            return diag_set(d, ST_ERR_INVALID, "%s: bad dimension %" PRId64, path, v->dims[i]);
        n *= v->dims[i];
    }
    if ((uint64_t)n * ir_dtype_size(v->dtype) != v->nbytes || (v->nbytes && !v->data))
        return diag_set(d, ST_ERR_INVALID, "%s: value has %zu bytes, shape needs %" PRIu64, path,
                        v->nbytes, (uint64_t)n * ir_dtype_size(v->dtype));
    return ST_OK;
}

/* The header numpy would write: dict repr, spaces, '\n', total prefix a
 * multiple of 64 so the data is aligned for mmap readers. */
size_t npy_header(const struct ir_value *v, char *out, size_t cap)
{
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     npy_descr_of(v->dtype));
    for (int i = 0; i < v->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64, i ? ", " : "", v->dims[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", v->rank == 1 ? "," : "");
    size_t pre = NPY_MAGIC_LEN + 2 + 2;
    size_t total = (pre + (size_t)n + 1 + 63) / 64 * 64;
    if (total > cap)
        return 0;
    size_t hlen = total - pre;
    memcpy(out, NPY_MAGIC, NPY_MAGIC_LEN);
    out[6] = 1;
    out[7] = 0;
    out[8] = (char)(hlen & 0xff);
    out[9] = (char)(hlen >> 8);
    memcpy(out + pre, dict, (size_t)n);
    memset(out + pre + n, ' ', total - pre - (size_t)n - 1);
    out[total - 1] = '\n';
    return total;
}

int npy_write_file(const char *path, const struct ir_value *v, struct diag *d)
{
    int st = npy_value_check(v, path, d);
    if (st)
        return st;
    char hdr[NPY_HEADER_MAX];
    size_t hl = npy_header(v, hdr, sizeof hdr);
    if (!hl || v->nbytes > SIZE_MAX - hl)
        return diag_set(d, ST_ERR_INVALID, "%s: cannot build the .npy header", path);
    uint8_t *buf = malloc(hl + v->nbytes);
    if (!buf)
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory for %zu bytes", path, hl + v->nbytes);
    memcpy(buf, hdr, hl);
    if (v->nbytes)
        memcpy(buf + hl, v->data, v->nbytes);
    st = io_write_atomic(path, buf, hl + v->nbytes, d);
    free(buf);
    return st;
}

/* ---- atomic write ---------------------------------------------------------- */

static int write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The temp file lives in the destination's folder so rename() is atomic (same
 * file system). Readers see either the old file or the complete new one, and a
 * failure at any step (disk full, bad folder, I/O error) leaves no partial
 * output and no stray temp file behind. (A process killed mid-write can leave
 * a hidden ".name.XXXXXX" temp file, but never a half-written `path`.) */
int io_write_atomic(const char *path, const void *data, size_t len, struct diag *d)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return diag_set(d, ST_ERR_IO, "%s: not a file name", path);
    size_t tn = dirlen + 1 + strlen(base) + 8 + 1; /* dir + "." + base + ".XXXXXX" */
    char *tmp = malloc(tn);
    if (!tmp)
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, tn, "%.*s.%s.XXXXXX", (int)dirlen, path, base);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return diag_set(d, ST_ERR_IO, "%s: cannot create a temporary file next to it: %s", path,
                        strerror(e));
    }
    /* mkstemp makes the file 0600; give the result the mode a plain
     * open(O_CREAT, 0666) would have had. Reading the umask means setting it,
     * which is harmless here: nothing else creates files concurrently. */
    mode_t um = umask(0);
    umask(um);
    const char *step = NULL;
    int e = 0;
    errno = 0;
    if (write_full(fd, data, len) != 0)
        step = "write";
    else if (fchmod(fd, 0666 & ~um) != 0)
        step = "chmod";
    else if (fsync(fd) != 0)
        step = "fsync";
    if (step)
        e = errno ? errno : EIO;
    if (close(fd) != 0 && !step) {
        e = errno;
        step = "close";
    }
    if (!step && rename(tmp, path) != 0) {
        e = errno;
        step = "rename";
    }
    int ok = step == NULL;
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return diag_set(d, ST_ERR_IO, "%s: %s failed: %s", path, step, strerror(e));
    }
    free(tmp);
    /* make the rename itself durable; failure here loses nothing we promised */
    char *dir = strndup(path, dirlen ? dirlen : 0);
    if (dir) {
        int dfd = open(dirlen ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return ST_OK;
}
