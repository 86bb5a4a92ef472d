/* decomp_export_weights.c — plain-weight exports: masks folded back into the
 * weight (--bake) and the subcomponent edit (--edit). Both change one
 * initializer by rank-1 updates in the factor layout Wr [d_in, d_out]
 * (decomp.h: Wr = W2 or W2ᵀ, W2 the initializer as 2-D), so the model keeps its
 * structure and size. The initializer's bytes may be a read-only mapping of
 * external data: the update goes to a fresh copy owned by the graph. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_export.h"

/* the initializer of f as a writable f32 copy */
static float *writable(struct ir_graph *g, const struct dc_factor *f, struct diag *d)
{
    struct ir_tensor *W = &g->t[f->weight];
    if (W->dtype != IR_F32 || !W->data) {
        diag_set(d, ST_ERR_UNSUPPORTED, "weight '%s' is %s; export writes float32 weights only",
                 W->name, ir_dtype_name(W->dtype));
        return NULL;
    }
    float *p = ir_graph_buf(g, W->nbytes);
    if (!p) {
        diag_set(d, ST_ERR_NOMEM, "out of memory copying weight '%s'", W->name);
        return NULL;
    }
    memcpy(p, W->data, W->nbytes);
    W->data = p;
    return p;
}

/* Wr += a bᵀ (a: d_in, b: d_out of the factor layout), written in W2's layout */
static void add_outer(float *w, const struct dc_factor *f, const double *a, const double *b)
{
    int64_t din = f->d_in, dout = f->d_out;
    for (int64_t i = 0; i < din; i++)
        for (int64_t o = 0; o < dout; o++) {
            float *p = f->tr ? &w[o * din + i] : &w[i * dout + o];
            *p = (float)((double)*p + a[i] * b[o]);
        }
}

int dx_bake(struct ir_graph *g, const struct dc_factor *f, const float *V, const float *U,
            const float *m, struct diag *d)
{
    if (!m)
        return ST_OK;
    float *w = writable(g, f, d);
    double *a = w ? malloc((size_t)(f->d_in + f->d_out + 1) * sizeof *a) : NULL;
    if (!a) {
        if (w)
            diag_set(d, ST_ERR_NOMEM, "out of memory");
        return d->status;
    }
    double *b = a + f->d_in;
    for (int c = 0; c < f->C; c++) {
        double k = (double)m[c] - 1.0; /* V·diag(m)·U + Δ = W + V·diag(m − 1)·U */
        if (k == 0.0)
            continue;
        for (int64_t i = 0; i < f->d_in; i++)
            a[i] = k * (double)V[i * f->C + c];
        for (int64_t o = 0; o < f->d_out; o++)
            b[o] = (double)U[c * f->d_out + o];
        add_outer(w, f, a, b);
    }
    free(a);
    return ST_OK;
}

int dx_edit(struct ir_graph *g, const struct dc_site *s, const struct dc_factor *f,
            const float *V, const float *U, int c, const float *w, double scale,
            struct diag *d)
{
    double nrm = 0;
    for (int64_t o = 0; o < s->d_out; o++)
        nrm += (double)w[o] * (double)w[o];
    nrm = sqrt(nrm);
    if (!(nrm > 0) || !isfinite(nrm))
        return diag_set(d, ST_ERR_INVALID, "--write-vector: the vector has no direction "
                        "(norm %g)", nrm);
    float *wt = writable(g, f, d);
    double *a = wt ? malloc((size_t)(f->d_in + f->d_out + 1) * sizeof *a) : NULL;
    if (!a) {
        if (wt)
            diag_set(d, ST_ERR_NOMEM, "out of memory");
        return d->status;
    }
    double *b = a + f->d_in;
    /* the write vector is the output side of the site's view: U[c,:] in the factor
     * layout, V[:,c] when the site reads the factor transposed */
    for (int64_t i = 0; i < f->d_in; i++)
        a[i] = s->transposed ? scale * (double)w[i] / nrm - (double)V[i * f->C + c]
                             : (double)V[i * f->C + c];
    for (int64_t o = 0; o < f->d_out; o++)
        b[o] = s->transposed ? (double)U[c * f->d_out + o]
                             : scale * (double)w[o] / nrm - (double)U[c * f->d_out + o];
    add_outer(wt, f, a, b);
    free(a);
    return ST_OK;
}
