/* test_sha256.c — FIPS 180-2 appendix B vectors, chunking independence, files. */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "io.h"
#include "sha256.h"

static void check_hex(const uint8_t dig[32], const char *want)
{
    char hex[SHA256_HEX_LEN];
    sha256_hex(dig, hex);
    if (strcmp(hex, want) != 0) {
        fprintf(stderr, "  got  %s\n  want %s\n", hex, want);
        test_failed_ = 1;
    }
}

#define MSG448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

TEST(fips_abc)
{
    uint8_t dig[32];
    sha256("abc", 3, dig);
    check_hex(dig, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(fips_448bit)
{
    uint8_t dig[32];
    CHECK_EQ(strlen(MSG448), 56);
    sha256(MSG448, 56, dig);
    check_hex(dig, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(empty)
{
    uint8_t dig[32];
    sha256("", 0, dig);
    check_hex(dig, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(fips_million_a)
{
    /* fed in uneven pieces so the partial-block path is exercised */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    uint8_t dig[32];
    sha256(a, 1000000, dig);
    check_hex(dig, want);
    struct sha256_ctx c;
    sha256_init(&c);
    size_t done = 0, piece = 1;
    while (done < 1000000) {
        size_t n = piece < 1000000 - done ? piece : 1000000 - done;
        sha256_update(&c, a + done, n);
        done += n;
        piece = piece * 7 % 1000 + 1;
    }
    sha256_final(&c, dig);
    check_hex(dig, want);
    free(a);
}

TEST(file)
{
    char path[] = "/tmp/pdc_test_sha256_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    size_t n = 3u << 20; /* > one read chunk */
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(i * 131 + 7);
    struct diag d = {0};
    CHECK_EQ(io_write_atomic(path, buf, n, &d), ST_OK);
    uint8_t want[32], got[32];
    sha256(buf, n, want);
    CHECK_EQ(sha256_file(path, got, &d), ST_OK);
    CHECK(memcmp(want, got, 32) == 0);
    unlink(path);
    free(buf);

    struct diag d2 = {0};
    CHECK(sha256_file("/nonexistent/pdc/model.onnx", got, &d2) != ST_OK);
    CHECK_STR_CONTAINS(d2.msg, "/nonexistent/pdc/model.onnx");
    struct diag d3 = {0};
    CHECK(sha256_file("/tmp", got, &d3) != ST_OK); /* a folder: read fails */
    CHECK_STR_CONTAINS(d3.msg, "/tmp");
}

static const struct test_case tests[] = {
    T(fips_abc), T(fips_448bit), T(empty), T(fips_million_a), T(file),
};
TEST_MAIN(tests)
