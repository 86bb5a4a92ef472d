/* safetensors.h — the safetensors file format (huggingface/safetensors):
 *
 *   [8 bytes: N, little-endian u64][N bytes: JSON header][data section]
 *
 * The header maps each tensor name to {"dtype":"F32","shape":[..],
 * "data_offsets":[begin,end]} (byte offsets into the data section, end
 * exclusive) plus an optional "__metadata__" map of string to string.
 *
 * The writer emits what the reference (Rust) implementation emits: compact
 * JSON, "__metadata__" first, tensors in the caller's order and laid out in that
 * order with no gaps, header padded with spaces so the data starts on an
 * 8-byte boundary. The reader treats the file as untrusted: header length
 * <= 100 MB and within the file, strict JSON, known keys only, offsets inside
 * the data section, end - begin == numel * dtype size, no two tensors
 * overlapping. Gaps between tensors are tolerated (the format does not forbid
 * them). Data is stored little-endian; pdc only builds on little-endian hosts. */
#ifndef PDC_SAFETENSORS_H
#define PDC_SAFETENSORS_H

#include "ir.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* "F32", ... for dtypes safetensors can hold; NULL otherwise */
const char *st_dtype_name(enum ir_dtype dt);
/* IR_DT_UNDEF for names pdc cannot hold (F8_*, C64, ...) */
enum ir_dtype st_dtype_parse(const char *name);

/* meta_kv holds n_meta (key, value) pairs: meta_kv[2i] = key, meta_kv[2i+1] =
 * value. Written atomically (io_write_atomic). */
int st_write(const char *path, const struct ir_value *vals, int n, const char *const *meta_kv,
             int n_meta, struct diag *d);

/* Reads every tensor, in header order, into fresh values the caller frees with
 * st_free. */
int st_read(const char *path, struct ir_value **vals, int *n, struct diag *d);
/* Same, also returning the metadata pairs (same layout as st_write's; NULL and
 * 0 when absent), freed with st_meta_free. meta_kv/n_meta may be NULL. */
int st_read_meta(const char *path, struct ir_value **vals, int *n, char ***meta_kv, int *n_meta,
                 struct diag *d);
void st_free(struct ir_value *vals, int n);
void st_meta_free(char **meta_kv, int n_meta);

#endif
