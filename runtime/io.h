/* io.h — arrays in and out: NumPy .npy and .npz files.
 * Readers treat the file as untrusted (header length, shape, dtype and data size
 * are checked against the file size); writers write to a temporary name in the
 * same folder and rename, so a failed write leaves nothing half-written. */
#ifndef PDC_IO_H
#define PDC_IO_H

#include "ir.h"

int npy_read_file(const char *path, struct ir_value *v, struct diag *d);
int npy_read_mem(const void *buf, size_t len, const char *what, struct ir_value *v, struct diag *d);
int npy_write_file(const char *path, const struct ir_value *v, struct diag *d);

/* .npz: a zip of .npy members (stored or deflated); member "x.npy" -> value named "x" */
int npz_read_file(const char *path, struct ir_value **vals, int *n, struct diag *d);
int npz_write_file(const char *path, const struct ir_value *vals, int n, struct diag *d);

/* write `len` bytes to `path` atomically (temp file in the same folder + rename) */
int io_write_atomic(const char *path, const void *data, size_t len, struct diag *d);

#endif
