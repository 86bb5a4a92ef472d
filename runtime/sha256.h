/* sha256.h — SHA-256 (FIPS 180-4) of a buffer, incrementally, or of a file.
 * pdc records the hash of the model a decomposition was made from; models can
 * be many GB, so files are hashed in fixed-size chunks, never loaded whole. */
#ifndef PDC_SHA256_H
#define PDC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

struct sha256_ctx {
    uint32_t h[8];
    uint64_t nbytes;     /* message length so far */
    uint8_t buf[64];     /* partial block */
    size_t nbuf;
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t n);
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);

/* one-shot */
void sha256(const void *data, size_t n, uint8_t out[SHA256_DIGEST_LEN]);
/* hash a file streamed in 1 MiB chunks; errors name the file */
int sha256_file(const char *path, uint8_t out[SHA256_DIGEST_LEN], struct diag *d);
/* lower-case hex, NUL-terminated */
void sha256_hex(const uint8_t dig[SHA256_DIGEST_LEN], char hex[SHA256_HEX_LEN]);

#endif
