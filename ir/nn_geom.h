/* nn_geom.h — window geometry shared by the Conv/pool shape rules (ir/shape_nn.c)
 * and their reference kernels (codegen/ref/ref_conv.c), so both derive the same
 * pads and output sizes from the same attributes. Private to those two files:
 * everything here is static inline. */
#ifndef PDC_NN_GEOM_H
#define PDC_NN_GEOM_H

#include <stdio.h>
#include <string.h>

#include "ir.h"

#define NN_MAX_SP 3 /* spatial dims supported: 1-D, 2-D and 3-D windows */

struct nn_geom {
    int nsp;                 /* spatial rank */
    int64_t in[NN_MAX_SP];   /* input spatial size */
    int64_t k[NN_MAX_SP];    /* kernel size (undilated) */
    int64_t s[NN_MAX_SP];    /* stride */
    int64_t dl[NN_MAX_SP];   /* dilation */
    int64_t pb[NN_MAX_SP];   /* pad before (may be implied by auto_pad) */
    int64_t pe[NN_MAX_SP];   /* pad after */
    int64_t out[NN_MAX_SP];  /* output spatial size */
};

static inline int64_t nn_div_floor(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b) != 0 && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* read an optional ints attribute of exactly `want` entries, else fill with def */
static inline int nn_attr_vec(const struct ir_node *n, const char *name, int want, int64_t def,
                              int64_t *v, char *err, size_t errlen)
{
    const int64_t *a;
    int64_t cnt = ir_attr_ints(n, name, &a);
    for (int i = 0; i < want; i++)
        v[i] = def;
    if (cnt < 0)
        return ST_OK;
    if (cnt != want) {
        snprintf(err, errlen, "attribute %s has %lld entries, expected %d", name, (long long)cnt,
                 want);
        return ST_ERR_INVALID;
    }
    memcpy(v, a, (size_t)want * sizeof *v);
    return ST_OK;
}

/* Fill gm from the node's attributes (auto_pad, pads, strides, dilations),
 * the input's spatial dims and the kernel size. ceil_mode applies to explicit
 * pads and VALID, as onnxruntime does; SAME_* always gives ceil(in / stride).
 * Returns ST_OK or a status with a message in err. */
static inline int nn_geom_fill(const struct ir_node *n, int nsp, const int64_t *in_sp,
                               const int64_t *kernel, int ceil_mode, struct nn_geom *gm,
                               char *err, size_t errlen)
{
    int64_t pads[2 * NN_MAX_SP];
    int st;
    memset(gm, 0, sizeof *gm);
    gm->nsp = nsp;
    if ((st = nn_attr_vec(n, "strides", nsp, 1, gm->s, err, errlen)) != ST_OK ||
        (st = nn_attr_vec(n, "dilations", nsp, 1, gm->dl, err, errlen)) != ST_OK ||
        (st = nn_attr_vec(n, "pads", 2 * nsp, 0, pads, err, errlen)) != ST_OK)
        return st;
    const char *ap = ir_attr_str(n, "auto_pad", "NOTSET");
    int same_upper = strcmp(ap, "SAME_UPPER") == 0, same_lower = strcmp(ap, "SAME_LOWER") == 0;
    int valid = strcmp(ap, "VALID") == 0;
    if (!same_upper && !same_lower && !valid && strcmp(ap, "NOTSET") != 0 && ap[0] != '\0') {
        snprintf(err, errlen, "auto_pad '%s' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER",
                 ap);
        return ST_ERR_INVALID;
    }
    for (int i = 0; i < nsp; i++) {
        gm->in[i] = in_sp[i];
        gm->k[i] = kernel[i];
        if (gm->k[i] < 1 || gm->s[i] < 1 || gm->dl[i] < 1 || pads[i] < 0 || pads[nsp + i] < 0) {
            snprintf(err, errlen, "spatial dim %d: kernel %lld, stride %lld, dilation %lld and "
                     "pads %lld/%lld must be positive (pads non-negative)", i,
                     (long long)gm->k[i], (long long)gm->s[i], (long long)gm->dl[i],
                     (long long)pads[i], (long long)pads[nsp + i]);
            return ST_ERR_INVALID;
        }
        /* every quantity below must stay far from int64 overflow: a model file may
         * claim dilation 2^62 so that the extent wraps to a small, "valid" value */
        if (gm->k[i] > IR_MAX_ELEMS || gm->s[i] > IR_MAX_ELEMS || gm->dl[i] > IR_MAX_ELEMS ||
            pads[i] > IR_MAX_ELEMS || pads[nsp + i] > IR_MAX_ELEMS ||
            (gm->k[i] - 1) > IR_MAX_ELEMS / gm->dl[i]) {
            snprintf(err, errlen, "spatial dim %d: kernel %lld, stride %lld, dilation %lld or "
                     "pads %lld/%lld are implausibly large (limit 2^34)", i, (long long)gm->k[i],
                     (long long)gm->s[i], (long long)gm->dl[i], (long long)pads[i],
                     (long long)pads[nsp + i]);
            return ST_ERR_INVALID;
        }
        int64_t dk = (gm->k[i] - 1) * gm->dl[i] + 1; /* dilated kernel extent */
        if (same_upper || same_lower) {
            gm->out[i] = (gm->in[i] + gm->s[i] - 1) / gm->s[i];
            int64_t need = (gm->out[i] - 1) * gm->s[i] + dk - gm->in[i];
            if (need < 0)
                need = 0;
            /* SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning */
            gm->pb[i] = same_upper ? need / 2 : (need + 1) / 2;
            gm->pe[i] = need - gm->pb[i];
            continue;
        }
        gm->pb[i] = valid ? 0 : pads[i];
        gm->pe[i] = valid ? 0 : pads[nsp + i];
        int64_t span = gm->in[i] + gm->pb[i] + gm->pe[i] - dk;
        if (span < 0) {
            snprintf(err, errlen, "spatial dim %d: dilated kernel (%lld) is larger than the padded "
                     "input (%lld)", i, (long long)dk,
                     (long long)(gm->in[i] + gm->pb[i] + gm->pe[i]));
            return ST_ERR_SHAPE;
        }
        gm->out[i] = (ceil_mode ? (span + gm->s[i] - 1) / gm->s[i] : span / gm->s[i]) + 1;
        /* ceil_mode: the last window must start inside the input or its leading pad */
        if (ceil_mode && (gm->out[i] - 1) * gm->s[i] >= gm->in[i] + gm->pb[i])
            gm->out[i]--;
    }
    return ST_OK;
}

/* The same geometry padded to 3 spatial dims (leading dims of size 1), with plane
 * sizes: what the reference conv/pool kernels and their gradients loop over.
 * xd: the (N, C, spatial...) input dims of rank `rank`; k: the kernel dims. */
struct nn_geom3 {
    int64_t in[3], k[3], s[3], dl[3], pb[3], pe[3], out[3];
    int64_t in_plane, out_plane, kvol;
};

static inline int nn_geom3_fill(const struct ir_node *n, int rank, const int64_t *xd,
                                const int64_t *k, int ceil_mode, struct nn_geom3 *w)
{
    struct nn_geom gm;
    char err[256];
    int nsp = rank - 2, off = 3 - nsp;
    if (nsp < 1 || nsp > 3 || nn_geom_fill(n, nsp, xd + 2, k, ceil_mode, &gm, err, sizeof err))
        return ST_ERR_INVALID;
    w->in_plane = w->out_plane = w->kvol = 1;
    for (int i = 0; i < 3; i++) {
        int j = i - off;
        w->in[i] = j < 0 ? 1 : gm.in[j];
        w->k[i] = j < 0 ? 1 : gm.k[j];
        w->s[i] = j < 0 ? 1 : gm.s[j];
        w->dl[i] = j < 0 ? 1 : gm.dl[j];
        w->pb[i] = j < 0 ? 0 : gm.pb[j];
        w->pe[i] = j < 0 ? 0 : gm.pe[j];
        w->out[i] = j < 0 ? 1 : gm.out[j];
        w->in_plane *= w->in[i];
        w->out_plane *= w->out[i];
        w->kvol *= w->k[i];
    }
    return ST_OK;
}

#endif
