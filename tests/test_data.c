/* test_data.c — data sources (runtime/data.h): the toy generator's statistics
 * and reproducibility, rows of .npy/.npz arrays, windows of token files. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu_pool.h"
#include "data.h"
#include "harness.h"
#include "io.h"
#include "philox.h"

/* ---- scratch folder ------------------------------------------------------- */

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    if (!tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/pdc_test_data.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void put_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- helpers -------------------------------------------------------------- */

static struct ir_tensor input(const char *name, enum ir_dtype dt, int64_t d0, int64_t d1)
{
    struct ir_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = dt;
    t.rank = 2;
    t.dims[0] = d0;
    t.dims[1] = d1;
    return t;
}

static struct ds_source *open_ok(const char *spec, const struct ds_opts *o)
{
    struct ds_opts def;
    struct diag d = {0};
    struct ds_source *s = NULL;
    ds_opts_defaults(&def);
    if (ds_open(spec, o ? o : &def, &s, &d)) {
        fprintf(stderr, "  ds_open(%s): %s\n", spec, d.msg);
        test_failed_ = 1;
    }
    return s;
}

/* the error text of ds_open, or of the first fill when open succeeds */
static const char *open_fill_error(const char *spec, const struct ds_opts *o,
                                   const struct ir_tensor *in)
{
    static struct diag d;
    struct ds_source *s = NULL;
    memset(&d, 0, sizeof d);
    if (ds_open(spec, o, &s, &d) == ST_OK) {
        size_t nb = (size_t)ir_numel(in) * ir_dtype_size(in->dtype);
        void *buf = malloc(nb ? nb : 1);
        int st = ds_fill(s, buf, in, 1, 0, DS_TRAIN, &d);
        free(buf);
        ds_close(s);
        if (st == ST_OK)
            return NULL;
    }
    return d.msg;
}

static struct ir_value array_f32(const char *name, int64_t rows, int64_t cols)
{
    struct ir_value v = {0};
    v.name = (char *)name;
    v.dtype = IR_F32;
    v.rank = 2;
    v.dims[0] = rows;
    v.dims[1] = cols;
    v.nbytes = (size_t)(rows * cols) * sizeof(float);
    float *f = malloc(v.nbytes);
    for (int64_t i = 0; i < rows * cols; i++)
        f[i] = (float)i; /* row r holds r·cols … r·cols + cols − 1 */
    v.data = f;
    return v;
}

/* rows of a batch that are rows of the f32 array above: returns how many are */
static int rows_of_file(const float *x, int64_t B, int64_t cols, int64_t nrows, int *seen)
{
    int ok = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t r = (int64_t)x[b * cols] / cols;
        int good = r >= 0 && r < nrows && x[b * cols] == (float)(r * cols);
        for (int64_t k = 1; good && k < cols; k++)
            good = x[b * cols + k] == (float)(r * cols + k);
        ok += good;
        if (good && seen)
            seen[r] = 1;
    }
    return ok;
}

/* ---- toy ------------------------------------------------------------------- */

TEST(toy_statistics)
{
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.p = 0.05, o.lo = 0.2, o.hi = 0.7;
    struct ds_source *s = open_ok("toy", &o);
    struct ir_tensor in = input("x", IR_F32, 4096, 20);
    int64_t n = ir_numel(&in), active = 0, bad = 0;
    float *x = malloc((size_t)n * sizeof *x);
    struct diag d = {0};
    CHECK_EQ(ds_eval_windows(s, 16), 0); /* not a token file */
    CHECK_EQ(ds_fill(s, x, &in, 7, 3, DS_TRAIN, &d), ST_OK);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] == 0.0f)
            continue;
        active++;
        sum += (double)x[i];
        bad += x[i] < 0.2f || x[i] > 0.7f;
    }
    CHECK_NEAR((double)active / (double)n, 0.05, 0.004); /* σ ≈ 0.0008 */
    CHECK_EQ(bad, 0);
    CHECK_NEAR(sum / (double)active, 0.45, 0.01);
    free(x);
    ds_close(s);
}

/* the generator the toy targets were trained with, element by element, for a batch the
 * thread pool splits (41 000 draws: chunk edges fall inside the 1024-draw slices), on
 * 1 and 3 threads */
TEST(toy_reproducible_and_bit_exact)
{
    enum { ROWS = 4100, COLS = 10, N = ROWS * COLS };
    struct ds_source *s = open_ok("toy:p=0.3", NULL);
    struct ir_tensor in = input("x", IR_F32, ROWS, COLS);
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    struct diag d = {0};
    CHECK(a && b && c);
    for (int th = 1; a && b && c && th <= 3; th += 2) {
        cpu_set_threads(th);
        CHECK_EQ(ds_fill(s, a, &in, 5, 11, DS_TRAIN, &d), ST_OK);
        CHECK_EQ(ds_fill(s, b, &in, 5, 11, DS_TRAIN, &d), ST_OK);
        CHECK_EQ(ds_fill(s, c, &in, 5, 12, DS_TRAIN, &d), ST_OK);
        CHECK(memcmp(a, b, N * sizeof *a) == 0);
        CHECK(memcmp(a, c, N * sizeof *a) != 0);
        int same = 1;
        for (int i = 0; i < N; i++) {
            float u = philox_uniform_at(5, 11, 1, (uint64_t)i);
            float r = philox_uniform_at(5, 11, 2, (uint64_t)i);
            float want = (double)r < 0.3 ? (float)(0.0 + 1.0 * (double)u) : 0.0f;
            same &= a[i] == want;
        }
        CHECK(same);
    }
    cpu_set_threads(0);
    free(a);
    free(b);
    free(c);
    CHECK_STR_CONTAINS(ds_spec(s), "toy:p=0.3,lo=0,hi=1");
    CHECK_EQ(ds_kind(s), DS_TOY);
    ds_close(s);
}

TEST(toy_rejects_bad_specs_and_inputs)
{
    struct ds_opts o;
    ds_opts_defaults(&o);
    struct ir_tensor f = input("x", IR_F32, 4, 4), i64 = input("ids", IR_I64, 4, 4);
    CHECK_STR_CONTAINS(open_fill_error("toy:q=1", &o, &f), "q=1");
    CHECK_STR_CONTAINS(open_fill_error("toy:p=2", &o, &f), "p=2");
    CHECK_STR_CONTAINS(open_fill_error("toy:p=", &o, &f), "KEY=NUMBER");
    CHECK_STR_CONTAINS(open_fill_error("toy:lo=1,hi=0", &o, &f), "lo > hi");
    CHECK_STR_CONTAINS(open_fill_error("toy", &o, &i64), "int64");
    CHECK_STR_CONTAINS(open_fill_error("data.txt", &o, &f), "data.txt");
    CHECK(open_fill_error("toy:p=0.1,lo=-1,hi=1", &o, &f) == NULL);
}

/* ---- arrays ---------------------------------------------------------------- */

TEST(npy_rows_and_reproducibility)
{
    struct ir_value v = array_f32("x", 50, 3);
    struct diag d = {0};
    const char *path = tpath("rows.npy");
    CHECK_EQ(npy_write_file(path, &v, &d), ST_OK);
    free(v.data);
    struct ds_source *s = open_ok(path, NULL);
    CHECK_EQ(ds_kind(s), DS_ARRAY);
    struct ir_tensor in = input("x", IR_F32, 16, 3);
    float a[48], b[48], c[48];
    int seen[50] = {0}, nseen = 0;
    for (uint64_t step = 0; step < 200; step++) {
        CHECK_EQ(ds_fill(s, a, &in, 9, step, DS_TRAIN, &d), ST_OK);
        CHECK_EQ(rows_of_file(a, 16, 3, 50, seen), 16);
    }
    for (int r = 0; r < 50; r++)
        nseen += seen[r];
    CHECK_EQ(nseen, 50); /* 3200 draws with replacement reach every row */
    CHECK_EQ(ds_fill(s, a, &in, 9, 4, DS_TRAIN, &d), ST_OK);
    CHECK_EQ(ds_fill(s, b, &in, 9, 4, DS_TRAIN, &d), ST_OK);
    CHECK_EQ(ds_fill(s, c, &in, 10, 4, DS_TRAIN, &d), ST_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    /* evaluation sweeps the rows in order: batch k is rows 16k … 16k+15 (mod 50) */
    CHECK_EQ(ds_eval_batch(s, a, &in, 9, 3, &d), ST_OK);
    int sweep = 1;
    for (int b2 = 0; b2 < 16; b2++)
        sweep &= a[b2 * 3] == (float)(((48 + b2) % 50) * 3);
    CHECK(sweep);
    ds_close(s);
}

TEST(npy_mismatch_errors)
{
    struct ir_value v = array_f32("x", 20, 3);
    struct diag d = {0};
    const char *path = tpath("mis.npy");
    CHECK_EQ(npy_write_file(path, &v, &d), ST_OK);
    free(v.data);
    struct ds_opts o;
    ds_opts_defaults(&o);
    struct ir_tensor wide = input("x", IR_F32, 8, 4), ints = input("x", IR_I64, 8, 3);
    const char *e = open_fill_error(path, &o, &wide);
    CHECK_STR_CONTAINS(e, "mis.npy");
    CHECK_STR_CONTAINS(e, "float32[20,3]");
    CHECK_STR_CONTAINS(e, "float32[8,4]");
    e = open_fill_error(path, &o, &ints);
    CHECK_STR_CONTAINS(e, "mis.npy");
    CHECK_STR_CONTAINS(e, "float32[20,3]");
    CHECK_STR_CONTAINS(e, "int64[8,3]");
    CHECK_STR_CONTAINS(e, "dtypes");
    CHECK_STR_CONTAINS(open_fill_error(tpath("missing.npy"), &o, &wide), "missing.npy");
}

TEST(npy_int_and_float64)
{
    struct diag d = {0};
    int32_t iv[12];
    double fv[12];
    for (int i = 0; i < 12; i++)
        iv[i] = 100 + i, fv[i] = 0.5 * i;
    struct ir_value a = {.name = "a", .dtype = IR_I32, .rank = 2, .dims = {6, 2},
                         .data = iv, .nbytes = sizeof iv};
    struct ir_value f = {.name = "f", .dtype = IR_F64, .rank = 2, .dims = {6, 2},
                         .data = fv, .nbytes = sizeof fv};
    CHECK_EQ(npy_write_file(tpath("i32.npy"), &a, &d), ST_OK);
    CHECK_EQ(npy_write_file(tpath("f64.npy"), &f, &d), ST_OK);
    struct ir_tensor ii = input("ids", IR_I32, 4, 2), ff = input("x", IR_F32, 4, 2);
    struct ds_source *s = open_ok(tpath("i32.npy"), NULL);
    int32_t ib[8];
    CHECK_EQ(ds_fill(s, ib, &ii, 1, 1, DS_TRAIN, &d), ST_OK);
    int ok = 1;
    for (int b = 0; b < 4; b++)
        ok &= (ib[2 * b] - 100) % 2 == 0 && ib[2 * b + 1] == ib[2 * b] + 1 && ib[2 * b] < 112;
    CHECK(ok);
    ds_close(s);
    s = open_ok(tpath("f64.npy"), NULL); /* float64 → float32 for a float32 input */
    float fb[8];
    CHECK_EQ(ds_eval_batch(s, fb, &ff, 0, 0, &d), ST_OK);
    float want[8] = {0, 0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f};
    CHECK(memcmp(fb, want, sizeof fb) == 0);
    ds_close(s);
    struct ir_tensor f64in = input("x", IR_F64, 4, 2);
    CHECK_STR_CONTAINS(open_fill_error(tpath("i32.npy"), &(struct ds_opts){0}, &f64in),
                       "int32[6,2]");
}

TEST(npz_members)
{
    struct diag d = {0};
    int64_t iv[20];
    for (int i = 0; i < 20; i++)
        iv[i] = i;
    struct ir_value vals[2] = {
        {.name = "ids", .dtype = IR_I64, .rank = 2, .dims = {10, 2}, .data = iv,
         .nbytes = sizeof iv},
        array_f32("feat", 7, 4),
    };
    CHECK_EQ(npz_write_file(tpath("two.npz"), vals, 2, &d), ST_OK);
    CHECK_EQ(npz_write_file(tpath("one.npz"), &vals[1], 1, &d), ST_OK);
    free(vals[1].data);
    struct ds_opts o;
    ds_opts_defaults(&o);
    char spec[600];
    snprintf(spec, sizeof spec, "%s:ids", tpath("two.npz"));
    struct ds_source *s = open_ok(spec, NULL);
    struct ir_tensor ii = input("ids", IR_I64, 5, 2), ff = input("x", IR_F32, 3, 4);
    int64_t ib[10];
    CHECK_EQ(ds_fill(s, ib, &ii, 2, 2, DS_TRAIN, &d), ST_OK);
    int ok = 1;
    for (int b = 0; b < 5; b++)
        ok &= ib[2 * b] % 2 == 0 && ib[2 * b + 1] == ib[2 * b] + 1 && ib[2 * b] < 20;
    CHECK(ok);
    CHECK_STR_CONTAINS(ds_spec(s), "two.npz:ids");
    ds_close(s);
    s = open_ok(tpath("one.npz"), NULL); /* the only member */
    float fb[12];
    CHECK_EQ(ds_fill(s, fb, &ff, 2, 2, DS_TRAIN, &d), ST_OK);
    CHECK_EQ(rows_of_file(fb, 3, 4, 7, NULL), 3);
    CHECK_STR_CONTAINS(ds_spec(s), "one.npz:feat");
    ds_close(s);
    CHECK_STR_CONTAINS(open_fill_error(tpath("two.npz"), &o, &ff), "name one");
    snprintf(spec, sizeof spec, "%s:nope", tpath("two.npz"));
    CHECK_STR_CONTAINS(open_fill_error(spec, &o, &ff), "no member 'nope'");
    snprintf(spec, sizeof spec, "%s:feat", tpath("two.npz"));
    CHECK_STR_CONTAINS(open_fill_error(spec, &o, &ii), "int64[5,2]");
}

/* ---- tokens ---------------------------------------------------------------- */

/* n tokens of value base + i, little-endian, `width` bytes each */
static void put_tokens(const char *path, int64_t n, uint32_t base, int width)
{
    unsigned char *b = malloc((size_t)(n * width));
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = base + (uint32_t)i;
        for (int k = 0; k < width; k++)
            b[i * width + k] = (unsigned char)(v >> (8 * k));
    }
    put_file(path, b, (size_t)(n * width));
    free(b);
}

TEST(token_windows_train)
{
    put_tokens(tpath("tok.bin"), 1000, 0, 2);
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.holdout = 0.1; /* tokens 900 … 999 are for evaluation only */
    struct ds_source *s = open_ok(tpath("tok.bin"), &o);
    CHECK_EQ(ds_kind(s), DS_TOKENS);
    struct ir_tensor in = input("ids", IR_I64, 8, 16);
    int64_t x[128], y[128];
    struct diag d = {0};
    int contiguous = 1, in_train = 1;
    int64_t maxstart = 0;
    for (uint64_t step = 0; step < 500; step++) {
        CHECK_EQ(ds_fill(s, x, &in, 3, step, DS_TRAIN, &d), ST_OK);
        for (int b = 0; b < 8; b++) {
            for (int t = 1; t < 16; t++)
                contiguous &= x[b * 16 + t] == x[b * 16 + t - 1] + 1;
            in_train &= x[b * 16] >= 0 && x[b * 16 + 15] < 900;
            if (x[b * 16] > maxstart)
                maxstart = x[b * 16];
        }
    }
    CHECK(contiguous);
    CHECK(in_train);
    CHECK(maxstart > 850); /* the whole training part is reachable (last start: 884) */
    CHECK_EQ(ds_fill(s, x, &in, 3, 17, DS_TRAIN, &d), ST_OK);
    CHECK_EQ(ds_fill(s, y, &in, 3, 17, DS_TRAIN, &d), ST_OK);
    CHECK(memcmp(x, y, sizeof x) == 0);
    CHECK_EQ(ds_fill(s, y, &in, 4, 17, DS_TRAIN, &d), ST_OK);
    CHECK(memcmp(x, y, sizeof x) != 0);
    CHECK_EQ(ds_check_vocab(s, 1000, &d), ST_OK);
    CHECK(ds_check_vocab(s, 500, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "token 500 at position 500");
    CHECK_STR_CONTAINS(d.msg, "tok.bin");
    ds_close(s);
}

TEST(token_eval_windows)
{
    put_tokens(tpath("ev.bin"), 1000, 0, 2);
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.holdout = 0.1;
    struct ds_source *s = open_ok(tpath("ev.bin"), &o);
    struct ir_tensor in = input("ids", IR_I32, 8, 16);
    int32_t x[128], y[128];
    struct diag d = {0};
    CHECK_EQ(ds_eval_batch(s, x, &in, 1, 0, &d), ST_OK);
    CHECK_EQ(ds_eval_batch(s, y, &in, 99, 0, &d), ST_OK); /* the seed does not matter */
    CHECK(memcmp(x, y, sizeof x) == 0);
    int ok = 1; /* 100 held-out tokens hold 6 windows of 16: 900, 916, …, 980, then 900 again */
    for (int b = 0; b < 8; b++)
        for (int t = 0; t < 16; t++)
            ok &= x[b * 16 + t] == 900 + (b % 6) * 16 + t;
    CHECK(ok);
    CHECK_EQ(ds_eval_windows(s, 16), 6);
    CHECK_EQ(ds_eval_windows(s, 101), 0);
    CHECK_EQ(ds_eval_windows(s, 0), 0);
    CHECK_EQ(ds_eval_batch(s, y, &in, 1, 1, &d), ST_OK);
    CHECK_EQ(y[0], 900 + (8 % 6) * 16);
    o.holdout = 0;
    ds_close(s);
    s = open_ok(tpath("ev.bin"), &o);
    CHECK(ds_eval_batch(s, x, &in, 1, 0, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "no held-out part");
    ds_close(s);
}

TEST(token_u32)
{
    put_tokens(tpath("t32.bin"), 300, 70000, 4);
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.token_bytes = ds_token_bytes("u32");
    o.seq = 10;
    struct ds_source *s = open_ok(tpath("t32.bin"), &o);
    struct ir_tensor in = input("ids", IR_I64, 4, 10);
    int64_t x[40];
    struct diag d = {0};
    CHECK_EQ(ds_fill(s, x, &in, 1, 1, DS_TRAIN, &d), ST_OK);
    int ok = 1;
    for (int b = 0; b < 4; b++)
        for (int t = 0; t < 10; t++)
            ok &= x[b * 10 + t] >= 70000 && x[b * 10 + t] < 70285 &&
                  (t == 0 || x[b * 10 + t] == x[b * 10 + t - 1] + 1);
    CHECK(ok);
    ds_close(s);
    CHECK_EQ(ds_token_bytes("u16"), 2);
    CHECK_EQ(ds_token_bytes("u8"), 0);
}

TEST(token_rejections)
{
    struct ds_opts o;
    ds_opts_defaults(&o);
    unsigned char odd[1001] = {0};
    put_file(tpath("odd.bin"), odd, sizeof odd);
    struct ir_tensor in = input("ids", IR_I64, 2, 16), fin = input("x", IR_F32, 2, 16);
    const char *e = open_fill_error(tpath("odd.bin"), &o, &in);
    CHECK_STR_CONTAINS(e, "odd.bin");
    CHECK_STR_CONTAINS(e, "1001 bytes is not a whole number of u16 tokens");
    put_tokens(tpath("short.bin"), 10, 0, 2);
    e = open_fill_error(tpath("short.bin"), &o, &in);
    CHECK_STR_CONTAINS(e, "short.bin");
    CHECK_STR_CONTAINS(e, "longer than the file");
    o.seq = 16; /* rejected as soon as it is opened */
    struct ds_source *s = NULL;
    struct diag d = {0};
    CHECK(ds_open(tpath("short.bin"), &o, &s, &d) != ST_OK && s == NULL);
    CHECK_STR_CONTAINS(d.msg, "longer than the file (10 tokens)");
    put_tokens(tpath("mid.bin"), 1000, 0, 2);
    o.seq = 32; /* --seq and the model disagree */
    CHECK_STR_CONTAINS(open_fill_error(tpath("mid.bin"), &o, &in), "--seq is 32");
    o.seq = 0;
    o.holdout = 0.01; /* 10 held-out tokens: not one window */
    CHECK_STR_CONTAINS(open_fill_error(tpath("mid.bin"), &o, &in), "held-out part (10 tokens");
    o.holdout = 0.99; /* 10 training tokens */
    CHECK_STR_CONTAINS(open_fill_error(tpath("mid.bin"), &o, &in), "longer than the training part");
    o.holdout = 1;
    CHECK_STR_CONTAINS(open_fill_error(tpath("mid.bin"), &o, &in), "holdout 1 is not in [0, 1)");
    o.holdout = 0.05;
    CHECK_STR_CONTAINS(open_fill_error(tpath("mid.bin"), &o, &fin), "int64 or int32");
    put_file(tpath("empty.bin"), "", 0);
    CHECK_STR_CONTAINS(open_fill_error(tpath("empty.bin"), &o, &in), "empty");
}

static struct test_case tests[] = {
    T(toy_statistics),
    T(toy_reproducible_and_bit_exact),
    T(toy_rejects_bad_specs_and_inputs),
    T(npy_rows_and_reproducibility),
    T(npy_mismatch_errors),
    T(npy_int_and_float64),
    T(npz_members),
    T(token_windows_train),
    T(token_eval_windows),
    T(token_u32),
    T(token_rejections),
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
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
