/* test_io.c — .npy/.npz readers and writers, and the atomic writer.
 *
 * Round trips cover every dtype pdc maps, 0-d, zero-size and rank-8 arrays;
 * compatibility is pinned by the exact header numpy writes and by two archives
 * numpy itself wrote (np.savez and np.savez_compressed, embedded below). The
 * rejection tests feed malformed files and check that each fails cleanly with a
 * message naming the file; the truncation/corruption sweeps exist to be run
 * under ASan (PDC_SANITIZE=ON), where any out-of-bounds read would abort. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "io.h"

/* np.savez(f, a=np.arange(6, dtype='<i4').reshape(2, 3), s=np.float32(2.5)),
 * and the same through np.savez_compressed (numpy 2.4; its local headers carry
 * ZIP64 extra fields because numpy opens members with force_zip64=True). */
static const unsigned char npz_stored[518] = {
    0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x50, 0xb4,
    0x4d, 0x84, 0x98, 0x00, 0x00, 0x00, 0x98, 0x00, 0x00, 0x00, 0x05, 0x00, 0x14, 0x00, 0x61, 0x2e,
    0x6e, 0x70, 0x79, 0x01, 0x00, 0x10, 0x00, 0x98, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x98,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76,
    0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x69, 0x34, 0x27,
    0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72,
    0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65,
    0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x20, 0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x50,
    0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x64, 0x8c, 0x22,
    0xc3, 0x84, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x05, 0x00, 0x14, 0x00, 0x73, 0x2e, 0x6e,
    0x70, 0x79, 0x01, 0x00, 0x10, 0x00, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x84, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00,
    0x7b, 0x27, 0x64, 0x65, 0x73, 0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c,
    0x20, 0x27, 0x66, 0x6f, 0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27,
    0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27,
    0x3a, 0x20, 0x28, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x0a, 0x00, 0x00, 0x20, 0x40, 0x50, 0x4b, 0x01, 0x02, 0x14, 0x03,
    0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x50, 0xb4, 0x4d, 0x84, 0x98, 0x00,
    0x00, 0x00, 0x98, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61, 0x2e, 0x6e, 0x70, 0x79, 0x50, 0x4b, 0x01,
    0x02, 0x14, 0x03, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x64, 0x8c, 0x22,
    0xc3, 0x84, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x01, 0xcf, 0x00, 0x00, 0x00, 0x73, 0x2e, 0x6e, 0x70, 0x79,
    0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x66, 0x00, 0x00, 0x00,
    0x8a, 0x01, 0x00, 0x00, 0x00, 0x00,
};
static const unsigned char npz_deflated[389] = {
    0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0x50, 0xb4,
    0x4d, 0x84, 0x55, 0x00, 0x00, 0x00, 0x98, 0x00, 0x00, 0x00, 0x05, 0x00, 0x14, 0x00, 0x61, 0x2e,
    0x6e, 0x70, 0x79, 0x01, 0x00, 0x10, 0x00, 0x98, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x55,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9b, 0xec, 0x17, 0xea, 0x1b, 0x10, 0xc9, 0xc8, 0x50,
    0xc6, 0x50, 0xad, 0x9e, 0x92, 0x5a, 0x9c, 0x5c, 0xa4, 0x6e, 0xa5, 0xa0, 0x6e, 0x93, 0x69, 0xa2,
    0xae, 0xa3, 0xa0, 0x9e, 0x96, 0x5f, 0x54, 0x52, 0x94, 0x98, 0x17, 0x9f, 0x5f, 0x94, 0x92, 0x0a,
    0x12, 0x77, 0x4b, 0xcc, 0x29, 0x4e, 0x05, 0x8a, 0x17, 0x67, 0x24, 0x16, 0xa4, 0x02, 0xf9, 0x1a,
    0x46, 0x3a, 0x0a, 0xc6, 0x9a, 0x3a, 0x0a, 0xb5, 0x0a, 0x64, 0x03, 0x2e, 0x06, 0x20, 0x60, 0x04,
    0x62, 0x26, 0x20, 0x66, 0x06, 0x62, 0x16, 0x20, 0x66, 0x05, 0x62, 0x00, 0x50, 0x4b, 0x03, 0x04,
    0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0x64, 0x8c, 0x22, 0xc3, 0x46, 0x00,
    0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x05, 0x00, 0x14, 0x00, 0x73, 0x2e, 0x6e, 0x70, 0x79, 0x01,
    0x00, 0x10, 0x00, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x9b, 0xec, 0x17, 0xea, 0x1b, 0x10, 0xc9, 0xc8, 0x50, 0xc6, 0x50, 0xad, 0x9e,
    0x92, 0x5a, 0x9c, 0x5c, 0xa4, 0x6e, 0xa5, 0xa0, 0x6e, 0x93, 0x66, 0xa2, 0xae, 0xa3, 0xa0, 0x9e,
    0x96, 0x5f, 0x54, 0x52, 0x94, 0x98, 0x17, 0x9f, 0x5f, 0x94, 0x92, 0x0a, 0x12, 0x77, 0x4b, 0xcc,
    0x29, 0x4e, 0x05, 0x8a, 0x17, 0x67, 0x24, 0x16, 0xa4, 0x02, 0xf9, 0x1a, 0x9a, 0x3a, 0x0a, 0xb5,
    0x0a, 0x14, 0x01, 0x2e, 0x06, 0x06, 0x05, 0x07, 0x00, 0x50, 0x4b, 0x01, 0x02, 0x14, 0x03, 0x14,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0x50, 0xb4, 0x4d, 0x84, 0x55, 0x00, 0x00,
    0x00, 0x98, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61, 0x2e, 0x6e, 0x70, 0x79, 0x50, 0x4b, 0x01, 0x02,
    0x14, 0x03, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0x64, 0x8c, 0x22, 0xc3,
    0x46, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x80, 0x01, 0x8c, 0x00, 0x00, 0x00, 0x73, 0x2e, 0x6e, 0x70, 0x79, 0x50,
    0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x66, 0x00, 0x00, 0x00, 0x09,
    0x01, 0x00, 0x00, 0x00, 0x00,
};

/* ---- scratch folder ------------------------------------------------------- */

static char tmpdir[256];

static const char *scratch(void)
{
    if (!tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/pdc_test_io.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return tmpdir;
}

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", scratch(), name);
    return buf[k];
}

static void put_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static unsigned char *get_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* remove everything in the scratch folder (one level of subfolders) */
static void rm_tree(const char *dir)
{
    DIR *dd = opendir(dir);
    if (!dd)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(dd))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(dd);
    rmdir(dir);
}

/* number of entries in a folder whose name starts with prefix */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *dd = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    if (dd)
        closedir(dd);
    return n;
}

/* ---- values --------------------------------------------------------------- */

static struct ir_value make_value(enum ir_dtype dt, int rank, const int64_t *dims, int seed)
{
    struct ir_value v;
    memset(&v, 0, sizeof v);
    v.dtype = dt;
    v.rank = rank;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        v.dims[i] = dims[i];
        n *= dims[i];
    }
    v.nbytes = (size_t)n * ir_dtype_size(dt);
    v.data = malloc(v.nbytes ? v.nbytes : 1);
    unsigned char *b = v.data;
    for (size_t i = 0; i < v.nbytes; i++) /* bools must stay 0/1 to round-trip */
        b[i] = dt == IR_BOOL ? (unsigned char)((i + (size_t)seed) % 3 == 0)
                             : (unsigned char)(i * 37u + (unsigned)seed * 11u + 1u);
    return v;
}

static int same_value(const struct ir_value *a, const struct ir_value *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank || a->nbytes != b->nbytes)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

/* ---- round trips ------------------------------------------------------------ */

TEST(npy_roundtrip_dtypes)
{
    static const enum ir_dtype dts[] = {IR_F32, IR_F64, IR_F16, IR_I64, IR_I32, IR_I16,
                                        IR_I8,  IR_U64, IR_U32, IR_U16, IR_U8,  IR_BOOL};
    static const int64_t shapes[][IR_MAX_RANK] = {
        {0}, {7}, {2, 3}, {0, 3}, {2, 0, 4}, {1, 2, 1, 2, 1, 2, 1, 2}, {3, 1, 5}};
    static const int ranks[] = {0, 1, 2, 2, 3, 8, 3};
    int seed = 0;
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
            struct ir_value v = make_value(dts[i], ranks[s], shapes[s], seed++), r;
            struct diag d = {0};
            const char *p = tpath("rt.npy");
            CHECK_EQ(npy_write_file(p, &v, &d), ST_OK);
            CHECK_EQ(npy_read_file(p, &r, &d), ST_OK);
            if (d.status)
                fprintf(stderr, "  %s\n", d.msg);
            CHECK(same_value(&v, &r));
            ir_value_free(&r);
            /* the in-memory reader agrees with the file reader */
            size_t n;
            unsigned char *raw = get_file(p, &n);
            CHECK(raw != NULL);
            CHECK_EQ(npy_read_mem(raw, n, "mem.npy", &r, &d), ST_OK);
            CHECK(same_value(&v, &r));
            ir_value_free(&r);
            free(raw);
            ir_value_free(&v);
        }
    }
    CHECK_EQ(count_entries(scratch(), ".rt.npy"), 0); /* no temp files left */
}

static int has(const unsigned char *hdr, const char *s)
{
    return memmem(hdr, 128, s, strlen(s)) != NULL;
}

/* byte-for-byte what np.save writes, so other tools (and eyes) see the same */
TEST(npy_header_matches_numpy)
{
    static const char want23[] = "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "
                                 "'shape': (2, 3), }";
    struct ir_value v = make_value(IR_F32, 2, (const int64_t[]){2, 3}, 1);
    struct diag d = {0};
    const char *p = tpath("h.npy");
    CHECK_EQ(npy_write_file(p, &v, &d), ST_OK);
    size_t n;
    unsigned char *raw = get_file(p, &n);
    CHECK_EQ(n, 128 + 24);
    CHECK(memcmp(raw, want23, sizeof want23 - 1) == 0);
    for (size_t i = sizeof want23 - 1; i < 127; i++)
        CHECK_EQ(raw[i], ' ');
    CHECK_EQ(raw[127], '\n');
    CHECK(memcmp(raw + 128, v.data, 24) == 0);
    free(raw);
    ir_value_free(&v);

    /* 1-d needs the trailing comma, 0-d the empty tuple */
    v = make_value(IR_I64, 1, (const int64_t[]){3}, 2);
    CHECK_EQ(npy_write_file(p, &v, &d), ST_OK);
    raw = get_file(p, &n);
    CHECK(has(raw, "'shape': (3,), }"));
    CHECK(has(raw, "'descr': '<i8'"));
    free(raw);
    ir_value_free(&v);
    v = make_value(IR_BOOL, 0, NULL, 3);
    CHECK_EQ(npy_write_file(p, &v, &d), ST_OK);
    raw = get_file(p, &n);
    CHECK_EQ(n, 129);
    CHECK(has(raw, "'descr': '|b1', 'fortran_order': False, 'shape': (), }"));
    free(raw);
    ir_value_free(&v);
}

TEST(npz_roundtrip)
{
    struct ir_value in[4];
    in[0] = make_value(IR_F32, 2, (const int64_t[]){4, 5}, 1);
    in[1] = make_value(IR_I64, 0, NULL, 2);
    in[2] = make_value(IR_F16, 2, (const int64_t[]){0, 7}, 3);
    in[3] = make_value(IR_U8, 3, (const int64_t[]){2, 3, 4}, 4);
    const char *names[4] = {"logits", "/model/layers.0/Add_output_0", "empty", "bytes"};
    for (int i = 0; i < 4; i++)
        in[i].name = strdup(names[i]);
    struct diag d = {0};
    const char *p = tpath("rt.npz");
    CHECK_EQ(npz_write_file(p, in, 4, &d), ST_OK);
    struct ir_value *out = NULL;
    int n = 0;
    CHECK_EQ(npz_read_file(p, &out, &n, &d), ST_OK);
    if (d.status)
        fprintf(stderr, "  %s\n", d.msg);
    CHECK_EQ(n, 4);
    for (int i = 0; i < n && i < 4; i++) {
        CHECK(strcmp(out[i].name, names[i]) == 0);
        CHECK(same_value(&in[i], &out[i]));
        ir_value_free(&out[i]);
    }
    free(out);

    /* an archive with no arrays is valid (np.savez with no arguments) */
    CHECK_EQ(npz_write_file(p, in, 0, &d), ST_OK);
    CHECK_EQ(npz_read_file(p, &out, &n, &d), ST_OK);
    CHECK_EQ(n, 0);
    free(out);

    /* duplicate or missing names are refused before anything is written */
    const char *p2 = tpath("dup.npz");
    free(in[1].name);
    in[1].name = strdup("logits");
    struct diag d2 = {0};
    CHECK(npz_write_file(p2, in, 2, &d2) != ST_OK);
    CHECK_STR_CONTAINS(d2.msg, "logits");
    CHECK(access(p2, F_OK) != 0);
    for (int i = 0; i < 4; i++)
        ir_value_free(&in[i]);
    CHECK_EQ(count_entries(scratch(), ".dup.npz"), 0);
}

static void check_numpy_archive(const unsigned char *bytes, size_t len, const char *name)
{
    const char *p = tpath(name);
    put_file(p, bytes, len);
    struct diag d = {0};
    struct ir_value *v = NULL;
    int n = 0;
    CHECK_EQ(npz_read_file(p, &v, &n, &d), ST_OK);
    if (d.status)
        fprintf(stderr, "  %s\n", d.msg);
    CHECK_EQ(n, 2);
    if (n != 2)
        return;
    CHECK(strcmp(v[0].name, "a") == 0);
    CHECK_EQ(v[0].dtype, IR_I32);
    CHECK_EQ(v[0].rank, 2);
    CHECK_EQ(v[0].dims[0], 2);
    CHECK_EQ(v[0].dims[1], 3);
    for (int i = 0; i < 6 && v[0].nbytes == 24; i++)
        CHECK_EQ(((const int32_t *)v[0].data)[i], i);
    CHECK(strcmp(v[1].name, "s") == 0);
    CHECK_EQ(v[1].dtype, IR_F32);
    CHECK_EQ(v[1].rank, 0);
    CHECK_EQ(v[1].nbytes, 4);
    CHECK_NEAR(*(const float *)v[1].data, 2.5, 0);
    for (int i = 0; i < n; i++)
        ir_value_free(&v[i]);
    free(v);
}

TEST(npz_reads_numpy_archives)
{
    check_numpy_archive(npz_stored, sizeof npz_stored, "np_stored.npz");
    check_numpy_archive(npz_deflated, sizeof npz_deflated, "np_deflated.npz");
}

/* ---- rejection ---------------------------------------------------------------- */

/* Write `bytes` to a file called `name`, read it as .npy, and expect a failure
 * whose message names the file and contains `why`. */
static void expect_npy_reject(const char *name, const void *bytes, size_t n, const char *why)
{
    const char *p = tpath(name);
    put_file(p, bytes, n);
    struct diag d = {0};
    struct ir_value v;
    int st = npy_read_file(p, &v, &d);
    CHECK(st != ST_OK);
    if (st == ST_OK) {
        fprintf(stderr, "  %s was accepted\n", name);
        ir_value_free(&v);
        return;
    }
    CHECK_STR_CONTAINS(d.msg, name);
    CHECK_STR_CONTAINS(d.msg, why);
    CHECK(v.data == NULL);
    /* the in-memory reader gives the same verdict */
    struct diag d2 = {0};
    CHECK(npy_read_mem(bytes, n, name, &v, &d2) != ST_OK);
    CHECK_STR_CONTAINS(d2.msg, name);
    CHECK_STR_CONTAINS(d2.msg, why);
}

/* a v1.0 .npy with the given dict text (padded the way numpy pads) and data */
static size_t mk_npy(unsigned char *out, const char *dict, const void *data, size_t dn)
{
    size_t dl = strlen(dict), total = (10 + dl + 1 + 63) / 64 * 64, hl = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)(hl & 0xff);
    out[9] = (unsigned char)(hl >> 8);
    memcpy(out + 10, dict, dl);
    memset(out + 10 + dl, ' ', hl - dl - 1);
    out[total - 1] = '\n';
    if (dn)
        memcpy(out + total, data, dn);
    return total + dn;
}

TEST(npy_rejects_malformed)
{
    unsigned char b[1024];
    float f[16] = {0};
    size_t n;

    expect_npy_reject("empty.npy", "", 0, "empty");
    expect_npy_reject("png.npy", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, "magic");
    expect_npy_reject("short.npy", "\x93NUM", 4, "magic");

    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, 24);
    expect_npy_reject("trunc_header.npy", b, 40, "truncated");
    expect_npy_reject("trunc_prefix.npy", b, 9, "truncated");
    expect_npy_reject("short_data.npy", b, n - 4, "truncated");
    memcpy(b + n, f, 4);
    expect_npy_reject("long_data.npy", b, n + 4, "after the data");

    /* header length field pointing past the end of the file */
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f, 8);
    b[8] = 0xff;
    b[9] = 0x7f;
    expect_npy_reject("hlen.npy", b, n, "truncated");
    /* v2.0 with a 4 GiB header length */
    memcpy(b, "\x93NUMPY\x02\x00\xff\xff\xff\xff", 12);
    expect_npy_reject("hlen2.npy", b, 64, "implausible");
    memcpy(b, "\x93NUMPY\x04\x00", 8);
    expect_npy_reject("v4.npy", b, 64, "version");

    /* shapes that claim far more data than is there */
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
               f, 16);
    expect_npy_reject("huge_numel.npy", b, n, "more than");
    n = mk_npy(b, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
               f, 16);
    expect_npy_reject("huge_dim.npy", b, n, "exceeds");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000,), }", f, 16);
    expect_npy_reject("claims_4mb.npy", b, n, "truncated");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", f, 4);
    expect_npy_reject("rank9.npy", b, n, "rank");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", f, 4);
    expect_npy_reject("negdim.npy", b, n, "negative");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", f, 16);
    expect_npy_reject("notuple.npy", b, n, "tuple");

    /* dtypes and orders pdc does not take */
    n = mk_npy(b, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f, 8);
    expect_npy_reject("bigendian.npy", b, n, "big-endian");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f, 16);
    expect_npy_reject("fortran.npy", b, n, "fortran_order");
    n = mk_npy(b, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", f, 16);
    expect_npy_reject("complex.npy", b, n, "unsupported");
    n = mk_npy(b, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f, 8);
    expect_npy_reject("record.npy", b, n, "structured");

    /* dicts that are not exactly numpy's three keys */
    n = mk_npy(b, "{'descr': '<f4', 'shape': (2,), }", f, 8);
    expect_npy_reject("nofo.npy", b, n, "fortran_order");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", f, 8);
    expect_npy_reject("extrakey.npy", b, n, "'x'");
    n = mk_npy(b, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", f, 8);
    expect_npy_reject("twice.npy", b, n, "repeated");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}", f, 8);
    expect_npy_reject("falsey.npy", b, n, "fortran_order");
    n = mk_npy(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", f, 8);
    expect_npy_reject("junk.npy", b, n, "junk");
    n = mk_npy(b, "[1, 2]", f, 8);
    expect_npy_reject("list.npy", b, n, "not a dict");

    /* a file that is not there */
    struct diag d = {0};
    struct ir_value v;
    CHECK(npy_read_file(tpath("missing.npy"), &v, &d) == ST_ERR_IO);
    CHECK_STR_CONTAINS(d.msg, "missing.npy");
}

/* Every prefix of a valid file, and every single-byte corruption of its header,
 * must either load or fail with the file named: never crash (ASan watches). */
TEST(npy_truncation_and_corruption_sweep)
{
    struct ir_value v = make_value(IR_F32, 2, (const int64_t[]){3, 4}, 5), r;
    struct diag d = {0};
    const char *p = tpath("sweep.npy");
    CHECK_EQ(npy_write_file(p, &v, &d), ST_OK);
    size_t n;
    unsigned char *raw = get_file(p, &n);
    for (size_t cut = 0; cut < n; cut++) {
        struct diag e = {0};
        CHECK(npy_read_mem(raw, cut, "sweep.npy", &r, &e) != ST_OK);
        CHECK_STR_CONTAINS(e.msg, "sweep.npy");
    }
    static const unsigned char junk[] = {0, 0xff, '(', ')', ',', '9', '\'', '}', ' ', 'L', '-'};
    for (size_t pos = 0; pos < 128; pos++) {
        unsigned char saved = raw[pos];
        for (size_t j = 0; j < sizeof junk; j++) {
            raw[pos] = junk[j];
            struct diag e = {0};
            if (npy_read_mem(raw, n, "sweep.npy", &r, &e) == ST_OK)
                ir_value_free(&r);
            else
                CHECK_STR_CONTAINS(e.msg, "sweep.npy");
        }
        raw[pos] = saved;
    }
    free(raw);
    ir_value_free(&v);
}

static void expect_npz_reject(const char *name, const void *bytes, size_t n, const char *why)
{
    const char *p = tpath(name);
    put_file(p, bytes, n);
    struct diag d = {0};
    struct ir_value *v = NULL;
    int nv = -1;
    int st = npz_read_file(p, &v, &nv, &d);
    CHECK(st != ST_OK);
    if (st == ST_OK) {
        fprintf(stderr, "  %s was accepted\n", name);
        for (int i = 0; i < nv; i++)
            ir_value_free(&v[i]);
        free(v);
        return;
    }
    CHECK_STR_CONTAINS(d.msg, name);
    CHECK_STR_CONTAINS(d.msg, why);
    CHECK(v == NULL);
    CHECK_EQ(nv, 0);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

TEST(npz_rejects_malformed)
{
    unsigned char b[1024];
    size_t ns = sizeof npz_stored, nd = sizeof npz_deflated;
    size_t eocd_s = ns - 22, eocd_d = nd - 22;
    uint32_t cd_s = le32(npz_stored + eocd_s + 16), cd_d = le32(npz_deflated + eocd_d + 16);

    expect_npz_reject("empty.npz", "", 0, "empty");
    expect_npz_reject("png.npz", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR and some more bytes", 30,
                      "not a .npz");
    expect_npz_reject("half.npz", npz_stored, ns / 2, "truncated");

    unsigned char npy[256];
    size_t nn = mk_npy(npy, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                       "\0\0\0\0", 4);
    expect_npz_reject("array.npz", npy, nn, ".npy file");

    /* a flipped data byte is caught by the CRC */
    memcpy(b, npz_stored, ns);
    b[30 + 5 + 20 + 130] ^= 0x40;
    expect_npz_reject("crc.npz", b, ns, "CRC");

    /* central directory claims more members than it has room for */
    memcpy(b, npz_stored, ns);
    b[eocd_s + 8] = b[eocd_s + 10] = 0xf0;
    expect_npz_reject("entries.npz", b, ns, "members");
    memcpy(b, npz_stored, ns);
    b[eocd_s + 8] = b[eocd_s + 9] = b[eocd_s + 10] = b[eocd_s + 11] = 0xff;
    expect_npz_reject("zip64.npz", b, ns, "ZIP64");

    /* central directory offset beyond the file */
    memcpy(b, npz_stored, ns);
    put32(b + eocd_s + 16, 0x7fffffff);
    expect_npz_reject("cdoff.npz", b, ns, "outside");

    /* first member's local header offset pointing into the central directory */
    memcpy(b, npz_stored, ns);
    put32(b + cd_s + 42, cd_s);
    expect_npz_reject("lho.npz", b, ns, "local header");

    /* first member renamed so it is not .npy (both headers, so only the name is wrong) */
    memcpy(b, npz_stored, ns);
    b[30 + 2] = b[cd_s + 46 + 2] = 'x';
    expect_npz_reject("notnpy.npz", b, ns, "not a named .npy");

    /* deflated member claiming a huge uncompressed size (a "zip bomb" header) */
    memcpy(b, npz_deflated, nd);
    put32(b + cd_d + 24, 0x7ffffff0);
    expect_npz_reject("bomb.npz", b, nd, "more than deflate");
    /* ... or a slightly wrong one */
    memcpy(b, npz_deflated, nd);
    put32(b + cd_d + 24, le32(b + cd_d + 24) + 8);
    expect_npz_reject("usize.npz", b, nd, "inflated");
    /* unknown compression method */
    memcpy(b, npz_deflated, nd);
    b[cd_d + 10] = 12;
    expect_npz_reject("bzip2.npz", b, nd, "method 12");
}

TEST(npz_truncation_and_corruption_sweep)
{
    const unsigned char *srcs[2] = {npz_stored, npz_deflated};
    size_t lens[2] = {sizeof npz_stored, sizeof npz_deflated};
    unsigned char b[1024];
    const char *p = tpath("sweep.npz");
    for (int s = 0; s < 2; s++) {
        for (size_t cut = 0; cut < lens[s]; cut += 3) {
            put_file(p, srcs[s], cut);
            struct diag d = {0};
            struct ir_value *v;
            int n;
            CHECK(npz_read_file(p, &v, &n, &d) != ST_OK);
            CHECK_STR_CONTAINS(d.msg, "sweep.npz");
        }
        for (size_t pos = 0; pos < lens[s]; pos++) {
            memcpy(b, srcs[s], lens[s]);
            b[pos] ^= 0xa5;
            put_file(p, b, lens[s]);
            struct diag d = {0};
            struct ir_value *v;
            int n;
            if (npz_read_file(p, &v, &n, &d) == ST_OK) {
                for (int i = 0; i < n; i++)
                    ir_value_free(&v[i]);
                free(v);
            } else {
                CHECK_STR_CONTAINS(d.msg, "sweep.npz");
            }
        }
    }
}

/* ---- atomic writes --------------------------------------------------------------- */

TEST(write_atomic)
{
    struct diag d = {0};
    const char *p = tpath("atomic.bin");
    CHECK_EQ(io_write_atomic(p, "hello", 5, &d), ST_OK);
    CHECK_EQ(io_write_atomic(p, "bye", 3, &d), ST_OK); /* replaces, never appends */
    size_t n;
    unsigned char *raw = get_file(p, &n);
    CHECK_EQ(n, 3);
    CHECK(raw && memcmp(raw, "bye", 3) == 0);
    free(raw);
    /* the result gets the umask-derived mode, not mkstemp's 0600 */
    mode_t um = umask(022);
    CHECK_EQ(io_write_atomic(p, "x", 1, &d), ST_OK);
    umask(um);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0644);
    CHECK_EQ(count_entries(scratch(), ".atomic.bin"), 0);

    /* missing folder: fails naming the path, creates nothing */
    struct diag d2 = {0};
    const char *bad = tpath("no_such_dir/out.npz");
    CHECK(io_write_atomic(bad, "x", 1, &d2) == ST_ERR_IO);
    CHECK_STR_CONTAINS(d2.msg, "no_such_dir/out.npz");

    /* destination is a folder: the rename fails and the temp file is removed */
    const char *dir = tpath("a_folder");
    CHECK(mkdir(dir, 0755) == 0);
    struct diag d3 = {0};
    CHECK(io_write_atomic(dir, "x", 1, &d3) == ST_ERR_IO);
    CHECK_STR_CONTAINS(d3.msg, "a_folder");
    CHECK_EQ(count_entries(scratch(), ".a_folder"), 0);

    /* an invalid value is refused before anything touches the disk */
    struct ir_value v = make_value(IR_F32, 1, (const int64_t[]){4}, 1);
    v.nbytes = 12;
    struct diag d4 = {0};
    const char *p4 = tpath("bad_value.npy");
    CHECK(npy_write_file(p4, &v, &d4) != ST_OK);
    CHECK_STR_CONTAINS(d4.msg, "bad_value.npy");
    CHECK(access(p4, F_OK) != 0);
    v.nbytes = 16;
    v.dtype = IR_BF16; /* numpy has no bfloat16 */
    struct diag d5 = {0};
    CHECK(npy_write_file(p4, &v, &d5) == ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d5.msg, "bfloat16");
    CHECK(access(p4, F_OK) != 0);
    ir_value_free(&v);
}

static const struct test_case tests[] = {
    T(npy_roundtrip_dtypes),
    T(npy_header_matches_numpy),
    T(npz_roundtrip),
    T(npz_reads_numpy_archives),
    T(npy_rejects_malformed),
    T(npy_truncation_and_corruption_sweep),
    T(npz_rejects_malformed),
    T(npz_truncation_and_corruption_sweep),
    T(write_atomic),
};

/* TEST_MAIN plus removal of the scratch folder */
static int run_all(int argc, char **argv);
#define main run_all
TEST_MAIN(tests)
#undef main

int main(int argc, char **argv)
{
    int rc = run_all(argc, argv);
    if (tmpdir[0])
        rm_tree(tmpdir);
    return rc;
}
