/* npz.c — NumPy .npz archives (a zip of .npy members) in and out.
 *
 * Reading follows the zip format the way numpy.savez / savez_compressed write
 * it (Python's zipfile): the central directory at the end is the authority for
 * member names, sizes, CRCs and local header offsets; local headers are read
 * only for the length of their name and extra field. That matters because
 * numpy opens members with force_zip64=True, so every local header carries
 * 0xFFFFFFFF sizes and a ZIP64 extra field even for tiny arrays, while the
 * central directory holds the real 32-bit sizes. Archives that need ZIP64 in
 * the central directory (>= 4 GiB or >= 65535 members) are rejected clearly.
 *
 * The archive is untrusted: every offset and size is checked against the file
 * size before use, a deflated member's claimed size must be reachable from its
 * compressed size, output buffers grow only as inflate actually produces bytes,
 * and every member's CRC-32 is verified.
 *
 * Writing produces a stored (method 0) archive with correct CRCs through the
 * same atomic temp-file-and-rename as .npy.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io.h"
#include "npy_impl.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_Z64_LOCATOR 0x07064b50u
#define LOCAL_LEN 30
#define CENTRAL_LEN 46
#define EOCD_LEN 22
/* deflate cannot expand data by more than ~1032:1 (a 258-byte match costs at
 * least 2 bits); a larger claim is a lie we need not allocate for. */
#define DEFLATE_MAX_RATIO 1032u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, v & 0xffff);
    wr16(p + 2, v >> 16);
}

/* zlib's length arguments are uInt; feed big buffers in pieces */
static uint32_t crc_of(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n) {
        uInt k = n > 0x40000000u ? 0x40000000u : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

/* ---- reading -------------------------------------------------------------- */

/* Inflate a raw deflate stream that claims to expand to exactly ulen bytes.
 * The buffer starts small and doubles as output actually arrives, so memory
 * use follows the real data, not the header's claim. */
static int inflate_member(const uint8_t *src, uint64_t clen, uint64_t ulen, const char *what,
                          uint8_t **out, struct diag *d)
{
    *out = NULL;
    if (ulen > clen * DEFLATE_MAX_RATIO + 1024)
        return diag_set(d, ST_ERR_PARSE,
                        "%s: claims %" PRIu64 " bytes from %" PRIu64
                        " compressed bytes, more than deflate can produce",
                        what, ulen, clen);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return diag_set(d, ST_ERR_NOMEM, "%s: cannot start inflate", what);
    /* one spare byte beyond the claim lets us notice a stream that is longer */
    uint64_t limit = ulen + 1, cap = clen * 4 < 65536 ? 65536 : clen * 4;
    if (cap > limit)
        cap = limit;
    uint8_t *buf = malloc((size_t)cap);
    uint64_t got = 0, fed = 0;
    int st = ST_OK, ret = Z_OK;
    if (!buf) {
        st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", what);
        goto done;
    }
    while (ret != Z_STREAM_END) {
        if (got == cap) {
            if (cap == limit)
                break; /* produced more than claimed */
            uint64_t nc = cap * 2 > limit ? limit : cap * 2;
            uint8_t *nb = realloc(buf, (size_t)nc);
            if (!nb) {
                st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory inflating", what);
                goto done;
            }
            buf = nb;
            cap = nc;
        }
        uint64_t in_left = clen - fed, out_left = cap - got;
        zs.next_in = (Bytef *)(uintptr_t)(src + fed);
        zs.avail_in = (uInt)(in_left > 0x40000000u ? 0x40000000u : in_left);
        zs.next_out = buf + got;
        zs.avail_out = (uInt)(out_left > 0x40000000u ? 0x40000000u : out_left);
        uInt ai = zs.avail_in, ao = zs.avail_out;
        ret = inflate(&zs, Z_NO_FLUSH);
        fed += ai - zs.avail_in;
        got += ao - zs.avail_out;
        if (ret == Z_STREAM_END)
            break;
        if (ret == Z_BUF_ERROR && fed == clen && got < cap) {
            st = diag_set(d, ST_ERR_PARSE, "%s: deflate stream is truncated", what);
            goto done;
        }
        if (ret != Z_OK && ret != Z_BUF_ERROR) {
            st = diag_set(d, ST_ERR_PARSE, "%s: corrupt deflate stream (%s)", what,
                          zs.msg ? zs.msg : "inflate error");
            goto done;
        }
    }
    if (got != ulen) {
        st = diag_set(d, ST_ERR_PARSE,
                      "%s: inflated to %s%" PRIu64 " bytes but the archive says %" PRIu64, what,
                      got > ulen ? "more than " : "", got > ulen ? ulen : got, ulen);
        goto done;
    }
    *out = buf;
    buf = NULL;
done:
    inflateEnd(&zs);
    free(buf);
    return st;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ir_value *)a)->name, ((const struct ir_value *)b)->name);
}

/* Parse a whole archive held in memory (the mmap of the file). */
static int npz_parse(const uint8_t *z, size_t size, const char *path, struct ir_value **vals,
                     int *nvals, struct diag *d)
{
    if (size >= 6 && memcmp(z, "\x93NUMPY", 6) == 0)
        return diag_set(d, ST_ERR_PARSE, "%s: this is a .npy file, not a .npz archive", path);
    /* The end-of-central-directory record is the last thing in the file,
     * followed only by a comment of at most 65535 bytes. Taking the last
     * signature whose comment length reaches exactly the end of the file avoids
     * being fooled by the signature's bytes inside a comment. */
    size_t eocd = SIZE_MAX;
    if (size >= EOCD_LEN) {
        size_t lo = size - EOCD_LEN > 65535 ? size - EOCD_LEN - 65535 : 0;
        for (size_t p = size - EOCD_LEN + 1; p-- > lo;) {
            if (rd32(z + p) == SIG_EOCD && p + EOCD_LEN + rd16(z + p + 20) == size) {
                eocd = p;
                break;
            }
        }
    }
    if (eocd == SIZE_MAX) {
        if (size >= 4 && rd32(z) == SIG_LOCAL)
            return diag_set(d, ST_ERR_PARSE,
                            "%s: truncated zip archive (no end-of-central-directory record)", path);
        return diag_set(d, ST_ERR_PARSE, "%s: not a .npz file (no zip end-of-central-directory)",
                        path);
    }
    const uint8_t *e = z + eocd;
    uint32_t entries = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if ((eocd >= 20 && rd32(z + eocd - 20) == SIG_Z64_LOCATOR) || entries == 0xffff ||
        cd_size == 0xffffffffu || cd_off == 0xffffffffu)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: ZIP64 archives are not supported", path);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != entries)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: multi-part zip archives are not supported",
                        path);
    if ((uint64_t)cd_off + cd_size > eocd)
        return diag_set(d, ST_ERR_PARSE, "%s: zip central directory lies outside the file", path);
    /* bound the allocation by bytes that exist: each entry is >= 46 bytes */
    if ((uint64_t)entries * CENTRAL_LEN > cd_size)
        return diag_set(d, ST_ERR_PARSE,
                        "%s: zip claims %" PRIu32 " members in a %" PRIu32
                        "-byte central directory",
                        path, entries, cd_size);

    struct ir_value *v = calloc(entries ? entries : 1, sizeof *v);
    if (!v)
        return diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
    int st = ST_OK;
    uint32_t done = 0;
    size_t q = cd_off, cd_end = (size_t)cd_off + cd_size;
    char what[512];
    for (; done < entries; done++) {
        if (q + CENTRAL_LEN > cd_end || rd32(z + q) != SIG_CENTRAL) {
            st = diag_set(d, ST_ERR_PARSE, "%s: bad zip central directory entry %" PRIu32, path,
                          done);
            break;
        }
        const uint8_t *c = z + q;
        uint32_t flags = rd16(c + 8), method = rd16(c + 10), crc = rd32(c + 16);
        uint32_t csize = rd32(c + 20), usize = rd32(c + 24), lho = rd32(c + 42);
        size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (q + CENTRAL_LEN + nlen + xlen + clen > cd_end) {
            st = diag_set(d, ST_ERR_PARSE, "%s: zip central directory entry %" PRIu32
                          " runs past the directory", path, done);
            break;
        }
        const char *name = (const char *)c + CENTRAL_LEN;
        snprintf(what, sizeof what, "%s: member '%.*s'", path, (int)(nlen > 200 ? 200 : nlen),
                 name);
        q += CENTRAL_LEN + nlen + xlen + clen;

        if (memchr(name, 0, nlen)) {
            st = diag_set(d, ST_ERR_PARSE, "%s has a NUL byte in its name", what);
            break;
        }
        if (nlen <= 4 || memcmp(name + nlen - 4, ".npy", 4) != 0) {
            st = diag_set(d, ST_ERR_PARSE, "%s is not a named .npy array", what);
            break;
        }
        if (flags & 0x41) {
            st = diag_set(d, ST_ERR_UNSUPPORTED, "%s is encrypted", what);
            break;
        }
        if (csize == 0xffffffffu || usize == 0xffffffffu || lho == 0xffffffffu) {
            st = diag_set(d, ST_ERR_UNSUPPORTED, "%s needs ZIP64, which is not supported", what);
            break;
        }
        /* the local header and the data it introduces must precede the
         * central directory (that is also where numpy and zipfile put them) */
        if ((uint64_t)lho + LOCAL_LEN > cd_off || rd32(z + lho) != SIG_LOCAL) {
            st = diag_set(d, ST_ERR_PARSE, "%s: bad local header offset %" PRIu32, what, lho);
            break;
        }
        size_t lnlen = rd16(z + lho + 26), lxlen = rd16(z + lho + 28);
        uint64_t data = (uint64_t)lho + LOCAL_LEN + lnlen + lxlen;
        if (data + csize > cd_off) {
            st = diag_set(d, ST_ERR_PARSE, "%s: data runs past the end of the archive", what);
            break;
        }
        if (lnlen != nlen || memcmp(z + lho + LOCAL_LEN, name, nlen) != 0) {
            st = diag_set(d, ST_ERR_PARSE, "%s: local header names a different file", what);
            break;
        }
        const uint8_t *raw = z + data;
        uint8_t *inflated = NULL;
        if (method == 0) {
            if (csize != usize) {
                st = diag_set(d, ST_ERR_PARSE, "%s: stored sizes disagree (%" PRIu32 " vs %" PRIu32
                              ")", what, csize, usize);
                break;
            }
        } else if (method == 8) {
            st = inflate_member(raw, csize, usize, what, &inflated, d);
            if (st)
                break;
            raw = inflated;
        } else {
            st = diag_set(d, ST_ERR_UNSUPPORTED,
                          "%s uses zip compression method %" PRIu32 " (only stored and deflate)",
                          what, method);
            break;
        }
        if (crc_of(0, raw, usize) != crc) {
            free(inflated);
            st = diag_set(d, ST_ERR_PARSE, "%s: CRC-32 mismatch (corrupt archive)", what);
            break;
        }
        st = npy_read_mem(raw, usize, what, &v[done], d);
        free(inflated);
        if (st)
            break;
        v[done].name = strndup(name, nlen - 4);
        if (!v[done].name) {
            ir_value_free(&v[done]);
            st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
    }
    if (!st && entries > 1) {
        /* duplicate names would make "which x?" depend on member order */
        struct ir_value *s = malloc(entries * sizeof *s);
        if (!s) {
            st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
        } else {
            memcpy(s, v, entries * sizeof *s);
            qsort(s, entries, sizeof *s, name_cmp);
            for (uint32_t i = 1; i < entries && !st; i++)
                if (strcmp(s[i - 1].name, s[i].name) == 0)
                    st = diag_set(d, ST_ERR_PARSE, "%s: member '%s.npy' appears twice", path,
                                  s[i].name);
            free(s);
        }
    }
    if (st) {
        for (uint32_t i = 0; i < done; i++)
            ir_value_free(&v[i]);
        free(v);
        return st;
    }
    *vals = v;
    *nvals = (int)entries;
    return ST_OK;
}

int npz_read_file(const char *path, struct ir_value **vals, int *n, struct diag *d)
{
    *vals = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return diag_set(d, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return diag_set(d, ST_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return diag_set(d, ST_ERR_PARSE, "%s: empty file, not a .npz archive", path);
    }
    /* Map rather than read: members are copied straight from the mapping into
     * their arrays, so a big archive costs one copy, not two. */
    size_t size = (size_t)sb.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return diag_set(d, ST_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    int st = npz_parse(m, size, path, vals, n, d);
    munmap(m, size);
    return st;
}

/* ---- writing -------------------------------------------------------------- */

/* Members are named "<name>.npy". Names are written as given (ONNX output
 * names like "/model/Add_output_0" included: numpy.load looks members up by
 * exact name); bit 11 marks them UTF-8 so readers do not decode them as cp437. */
int npz_write_file(const char *path, const struct ir_value *vals, int n, struct diag *d)
{
    if (n < 0 || n >= 0xffff)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: cannot write %d arrays to one .npz", path, n);
    size_t *hl = calloc((size_t)n + 1, sizeof *hl);
    char (*hdr)[NPY_HEADER_MAX] = calloc((size_t)n + 1, sizeof *hdr);
    uint8_t *buf = NULL;
    int st = ST_OK;
    if (!hl || !hdr) {
        st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    uint64_t total = EOCD_LEN;
    for (int i = 0; i < n; i++) {
        const struct ir_value *v = &vals[i];
        if (!v->name || !*v->name) {
            st = diag_set(d, ST_ERR_INVALID, "%s: array %d has no name", path, i);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(vals[j].name, v->name) == 0) {
                st = diag_set(d, ST_ERR_INVALID, "%s: two arrays are named '%s'", path, v->name);
                goto out;
            }
        size_t nl = strlen(v->name) + 4;
        if (nl > 0xffff) {
            st = diag_set(d, ST_ERR_UNSUPPORTED, "%s: array name '%.40s...' is too long", path,
                          v->name);
            goto out;
        }
        st = npy_value_check(v, path, d);
        if (st)
            goto out;
        hl[i] = npy_header(v, hdr[i], NPY_HEADER_MAX);
        uint64_t member = hl[i] + (uint64_t)v->nbytes;
        total += LOCAL_LEN + nl + member + CENTRAL_LEN + nl;
        /* every size and offset must fit the 32-bit fields (no ZIP64 writer) */
        if (member >= 0xffffffffu || total >= 0xffffffffu) {
            st = diag_set(d, ST_ERR_UNSUPPORTED,
                          "%s: outputs exceed 4 GiB, which needs ZIP64 (not supported); "
                          "write fewer or smaller outputs",
                          path);
            goto out;
        }
    }
    if ((uint64_t)(size_t)total != total || !(buf = malloc((size_t)total))) {
        st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory for %" PRIu64 " bytes", path, total);
        goto out;
    }
    /* pass 1: local headers + data; pass 2: central directory; then EOCD.
     * Fixed timestamp (1980-01-01 00:00, the DOS epoch) keeps output
     * byte-for-byte reproducible. */
    const uint32_t dos_time = 0, dos_date = (0u << 9) | (1u << 5) | 1u;
    size_t off = 0;
    /* lho[n] records where the central directory starts */
    uint32_t *lho = calloc((size_t)n + 1, sizeof *lho), *crc = calloc((size_t)n + 1, sizeof *crc);
    if (!lho || !crc) {
        free(lho);
        free(crc);
        st = diag_set(d, ST_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            const struct ir_value *v = &vals[i];
            size_t nl = strlen(v->name);
            uint32_t flags = 0;
            for (size_t k = 0; k < nl; k++)
                if ((unsigned char)v->name[k] >= 0x80)
                    flags = 1u << 11;
            uint32_t msize = (uint32_t)(hl[i] + v->nbytes);
            uint8_t *p = buf + off;
            if (pass == 0) {
                crc[i] = crc_of(crc_of(0, (const uint8_t *)hdr[i], hl[i]), v->data, v->nbytes);
                lho[i] = (uint32_t)off;
                wr32(p, SIG_LOCAL);
                wr16(p + 4, 20);     /* version needed: 2.0 */
                wr16(p + 6, flags);
                wr16(p + 8, 0);      /* stored */
                wr16(p + 10, dos_time);
                wr16(p + 12, dos_date);
                wr32(p + 14, crc[i]);
                wr32(p + 18, msize); /* compressed */
                wr32(p + 22, msize); /* uncompressed */
                wr16(p + 26, (uint32_t)(nl + 4));
                wr16(p + 28, 0);     /* no extra field */
                p += LOCAL_LEN;
            } else {
                wr32(p, SIG_CENTRAL);
                wr16(p + 4, 3u << 8 | 20); /* made by: unix, 2.0 */
                wr16(p + 6, 20);
                wr16(p + 8, flags);
                wr16(p + 10, 0);
                wr16(p + 12, dos_time);
                wr16(p + 14, dos_date);
                wr32(p + 16, crc[i]);
                wr32(p + 20, msize);
                wr32(p + 24, msize);
                wr16(p + 28, (uint32_t)(nl + 4));
                wr16(p + 30, 0);  /* extra */
                wr16(p + 32, 0);  /* comment */
                wr16(p + 34, 0);  /* disk */
                wr16(p + 36, 0);  /* internal attrs */
                wr32(p + 38, 0644u << 16); /* unix mode rw-r--r-- */
                wr32(p + 42, lho[i]);
                p += CENTRAL_LEN;
            }
            memcpy(p, v->name, nl);
            memcpy(p + nl, ".npy", 4);
            p += nl + 4;
            if (pass == 0) {
                memcpy(p, hdr[i], hl[i]);
                if (v->nbytes)
                    memcpy(p + hl[i], v->data, v->nbytes);
                p += hl[i] + v->nbytes;
            }
            off = (size_t)(p - buf);
        }
        if (pass == 0)
            lho[n] = (uint32_t)off; /* central directory starts here */
    }
    uint8_t *e = buf + off;
    wr32(e, SIG_EOCD);
    wr16(e + 4, 0);
    wr16(e + 6, 0);
    wr16(e + 8, (uint32_t)n);
    wr16(e + 10, (uint32_t)n);
    wr32(e + 12, (uint32_t)(off - lho[n]));
    wr32(e + 16, lho[n]);
    wr16(e + 20, 0);
    free(lho);
    free(crc);
    st = io_write_atomic(path, buf, (size_t)total, d);
out:
    free(buf);
    free(hdr);
    free(hl);
    return st;
}
