/* broadcast.c — numpy broadcasting and stride helpers shared by shape
 * inference and the kernels. */
#include <string.h>

#include "ir.h"

int ir_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db, int *rout,
                       int64_t *dout)
{
    int r = ra > rb ? ra : rb;
    for (int i = 0; i < r; i++) {
        int64_t a = i < r - ra ? 1 : da[i - (r - ra)];
        int64_t b = i < r - rb ? 1 : db[i - (r - rb)];
        if (a != b && a != 1 && b != 1)
            return -1;
        dout[i] = a == 1 ? b : a;
    }
    *rout = r;
    return 0;
}

void ir_broadcast_strides(int r, const int64_t *dims, int ro, const int64_t *dout, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ro - 1; i >= 0; i--) {
        int k = i - (ro - r);
        if (k < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = (dims[k] == 1 && dout[i] != 1) ? 0 : s;
        s *= dims[k];
    }
}

void ir_contig_strides(int r, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

int ir_norm_axis(int64_t axis, int rank)
{
    if (axis < 0)
        axis += rank;
    if (axis < 0 || axis >= rank)
        return -1;
    return (int)axis;
}

void ir_matmul_trans(const struct ir_node *n, const struct ir_tensor *a,
                     const struct ir_tensor *b, int *ta, int *tb)
{
    *ta = a->rank >= 2 && ir_attr_int(n, "transA", 0) != 0;
    *tb = b->rank >= 2 && ir_attr_int(n, "transB", 0) != 0;
}

void ir_matmul_view(const struct ir_node *n, const struct ir_tensor *a, const struct ir_tensor *b,
                    const struct ir_tensor *y, struct ir_matmul_view *v)
{
    memset(v, 0, sizeof *v);
    v->nb = 1;
    ir_matmul_trans(n, a, b, &v->ta, &v->tb);
    v->M = a->rank >= 2 ? a->dims[a->rank - 2 + v->ta] : 1;
    v->K = a->dims[a->rank - 1 - v->ta];
    v->N = b->rank >= 2 ? b->dims[b->rank - 1 - v->tb] : 1;
    v->rb = y->rank - (a->rank >= 2) - (b->rank >= 2);
    ir_broadcast_strides(a->rank > 2 ? a->rank - 2 : 0, a->dims, v->rb, y->dims, v->astr);
    ir_broadcast_strides(b->rank > 2 ? b->rank - 2 : 0, b->dims, v->rb, y->dims, v->bstr);
    for (int i = 0; i < v->rb; i++) {
        v->dims[i] = y->dims[i];
        v->astr[i] *= v->M * v->K;
        v->bstr[i] *= v->K * v->N;
        v->nb *= y->dims[i];
    }
}

void ir_gemm_view(const struct ir_node *n, const struct ir_tensor *a, const struct ir_tensor *y,
                  struct ir_gemm_view *v)
{
    v->ta = ir_attr_int(n, "transA", 0) != 0;
    v->tb = ir_attr_int(n, "transB", 0) != 0;
    v->alpha = (float)ir_attr_float(n, "alpha", 1.0);
    v->beta = (float)ir_attr_float(n, "beta", 1.0);
    v->M = y->dims[0];
    v->N = y->dims[1];
    v->K = a->dims[v->ta ? 0 : 1];
}
