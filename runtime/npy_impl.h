/* npy_impl.h — private to npy.c and npz.c: the pieces of the .npy writer that
 * the .npz writer reuses to build its members. Not part of the runtime API. */
#ifndef PDC_NPY_IMPL_H
#define PDC_NPY_IMPL_H

#include "ir.h"

/* the longest header npy_header writes (rank 8, 20-digit dims), rounded to 64 */
#define NPY_HEADER_MAX 320

/* ST_OK if v can be written as .npy (dtype has a descr, nbytes matches shape);
 * otherwise sets d, naming `path`. */
int npy_value_check(const struct ir_value *v, const char *path, struct diag *d);

/* Write the v1.0 header numpy would write for v into out; returns its length
 * (a multiple of 64), or 0 if cap is too small. */
size_t npy_header(const struct ir_value *v, char *out, size_t cap);

#endif
