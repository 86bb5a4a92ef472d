/* cpu_reduce.c — float32 ReduceSum and ReduceMean.
 *
 * After merging adjacent dims that are both reduced or both kept (and dropping
 * size-1 dims), the reductions training uses are (outer, red, inner) with one
 * reduced run: trailing axes (inner = 1), leading axes (outer = 1) or one run
 * in the middle. Other patterns go to the reference.
 *
 * Sums accumulate in double. The reduced run is cut into blocks of a fixed
 * size (a constant, not a function of the thread count); each (output row,
 * block) is summed in order by one thread, and the block sums are then added in
 * block order. So results never depend on the thread count, and whenever the
 * run fits one block (all but the largest reductions) the order is the
 * reference's and the result is bit-identical to it. */
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

#define BLOCK_ELEMS 8192 /* elements of x per (output row, block) work item */

struct red_job {
    const float *x;
    int64_t outer, red, inner;
    int64_t rb, nblk; /* reduced rows per block, blocks per output row */
    double *part;     /* [outer][nblk][inner] block sums */
};

/* Reduced axes from the axes input (or legacy attribute); 1 when the node is a
 * no-op (empty axes with noop_with_empty_axes). Mirrors ref_reduce.c. */
static int red_mask(const struct ir_graph *g, const struct ir_node *n, const void *axes, int *mask)
{
    const struct ir_tensor *x = cpu_in(g, n, 0), *at = cpu_in(g, n, 1);
    const int64_t *attr = NULL;
    int64_t na = 0;
    if (at && axes)
        na = ir_numel(at);
    else if ((na = ir_attr_ints(n, "axes", &attr)) < 0)
        na = 0;
    int noop = na == 0 && ir_attr_int(n, "noop_with_empty_axes", 0) != 0;
    for (int i = 0; i < x->rank; i++)
        mask[i] = na == 0 && !noop;
    for (int64_t i = 0; i < na; i++) {
        int64_t a = attr ? attr[i] : ir_load_i64(at->dtype, axes, i);
        int k = ir_norm_axis(a, x->rank);
        if (k < 0)
            return -1;
        mask[k] = 1;
    }
    return noop;
}

/* (outer, red, inner) of x under mask; 0 when it is not of that form */
static int red_shape(const struct ir_tensor *x, const int *mask, int64_t *outer, int64_t *red,
                     int64_t *inner)
{
    int64_t dims[IR_MAX_RANK];
    int kind[IR_MAX_RANK], r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (x->dims[i] == 1)
            continue;
        if (r > 0 && kind[r - 1] == mask[i]) {
            dims[r - 1] *= x->dims[i];
            continue;
        }
        kind[r] = mask[i];
        dims[r++] = x->dims[i];
    }
    int first_red = r > 0 && kind[0];
    *outer = *red = *inner = 1;
    if (r > 3 || (r == 3 && first_red)) /* two reduced runs */
        return 0;
    int k = 0;
    if (k < r && !kind[k])
        *outer = dims[k++];
    if (k < r && kind[k])
        *red = dims[k++];
    if (k < r && !kind[k])
        *inner = dims[k++];
    return k == r;
}

static void add_row(double *restrict acc, const float *restrict x, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        acc[j] += (double)x[j];
}

#define LANES 8 /* rows summed side by side */

/* acc[o] = the sum of row o of x [n, red] in index order, for LANES rows at a time:
 * each row's sum is one chain of dependent double adds, and side by side the chains
 * overlap (the same bits as one row at a time). [512, 64] -> [512, 1] took 17 us. */
CPU_CLONES static void row_sums(const float *restrict x, int64_t red, int64_t n,
                                double *restrict acc)
{
    int64_t o = 0;
    for (; o + LANES <= n; o += LANES) {
        double s[LANES] = {0};
        for (int64_t r = 0; r < red; r++)
            for (int l = 0; l < LANES; l++)
                s[l] += (double)x[(o + l) * red + r];
        for (int l = 0; l < LANES; l++)
            acc[o + l] = s[l];
    }
    for (; o < n; o++) {
        double s = 0;
        for (int64_t r = 0; r < red; r++)
            s += (double)x[o * red + r];
        acc[o] = s;
    }
}

static void red_items(void *ctx, int64_t lo, int64_t hi)
{
    const struct red_job *jb = ctx;
    int64_t inner = jb->inner;
    if (inner == 1 && jb->nblk == 1) { /* item o is row o */
        row_sums(jb->x + lo * jb->red, jb->red, hi - lo, jb->part + lo);
        return;
    }
    for (int64_t it = lo; it < hi; it++) {
        int64_t o = it / jb->nblk, r0 = (it % jb->nblk) * jb->rb;
        int64_t rn = jb->red - r0 < jb->rb ? jb->red - r0 : jb->rb;
        const float *x = jb->x + (o * jb->red + r0) * inner;
        double *acc = jb->part + it * inner;
        if (inner == 1) {
            double s = 0;
            for (int64_t r = 0; r < rn; r++)
                s += (double)x[r];
            acc[0] = s;
            continue;
        }
        for (int64_t j = 0; j < inner; j++)
            acc[j] = 0;
        for (int64_t r = 0; r < rn; r++)
            add_row(acc, x + r * inner, inner);
    }
}

/* y[o][j] = sum over blocks in order, divided by the count for the mean */
static void red_finish(const struct red_job *jb, float *y, int mean)
{
    for (int64_t o = 0; o < jb->outer; o++)
        for (int64_t j = 0; j < jb->inner; j++) {
            const double *p = jb->part + o * jb->nblk * jb->inner + j;
            double s = p[0];
            for (int64_t b = 1; b < jb->nblk; b++)
                s += p[b * jb->inner];
            y[o * jb->inner + j] = (float)(mean ? s / (double)jb->red : s);
        }
}

static int reduce(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                  void *const *out, int mean)
{
    const struct ir_tensor *x = cpu_in(g, n, 0), *y = cpu_out(g, n, 0);
    int mask[IR_MAX_RANK];
    if (x->dtype != IR_F32 || !y || y->dtype != IR_F32 || ir_numel(x) == 0)
        return CPU_DELEGATE;
    int noop = red_mask(g, n, n->n_in > 1 ? in[1] : NULL, mask);
    if (noop < 0)
        return CPU_DELEGATE;
    if (!out[0])
        return ST_OK;
    if (noop) {
        memcpy(out[0], in[0], (size_t)ir_numel(x) * sizeof(float));
        return ST_OK;
    }
    struct red_job jb = {.x = in[0]};
    if (!red_shape(x, mask, &jb.outer, &jb.red, &jb.inner))
        return CPU_DELEGATE;
    jb.rb = BLOCK_ELEMS / jb.inner > 0 ? BLOCK_ELEMS / jb.inner : 1;
    jb.nblk = (jb.red + jb.rb - 1) / jb.rb;
    int64_t items = jb.outer * jb.nblk, per_item = (jb.red < jb.rb ? jb.red : jb.rb) * jb.inner;
    jb.part = malloc((size_t)(items * jb.inner) * sizeof *jb.part);
    if (!jb.part)
        return ST_ERR_NOMEM;
    cpu_parallel(items, 1 + 32768 / per_item, red_items, &jb);
    red_finish(&jb, out[0], mean);
    free(jb.part);
    return ST_OK;
}

CPU_KERNEL(ReduceSum) { return reduce(g, n, in, out, 0); }
CPU_KERNEL(ReduceMean) { return reduce(g, n, in, out, 1); }
