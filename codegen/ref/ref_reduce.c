/* ref_reduce.c — reference kernels for Reduce*, ArgMax/ArgMin and CumSum.
 * Softmax and the normalisations live in ref_norm.c.
 *
 * Reduce* share one engine: adjacent input dims that are both reduced (or both
 * kept) are merged, then the input is walked once in memory order, one
 * contiguous innermost row at a time, folding each element into its output
 * slot. Floats accumulate in double; integers in int64 (wrapping like the
 * integer types themselves), so integer sums are exact. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_impl.h"

enum red_kind { RK_SUM, RK_MEAN, RK_MAX, RK_MIN, RK_PROD, RK_L1, RK_L2, RK_SUMSQ, RK_LOGSUM, RK_LSE };

struct red_plan {
    int rank;                    /* after merging; the last dim is the row */
    int64_t dims[IR_MAX_RANK];
    int64_t ostr[IR_MAX_RANK];   /* output stride per merged input dim; 0 if reduced */
    int64_t n_in, n_out, count;  /* count: input elements per output element */
};

/* Reduced axes from the constant axes input (or legacy attribute); returns 1
 * when the node is a no-op (empty axes with noop_with_empty_axes). The shape
 * rule has validated everything. */
static int red_mask(const struct ir_graph *g, const struct ir_node *n, const void *axes, int *mask)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *at = ref_in(g, n, 1);
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
        mask[ir_norm_axis(a, x->rank)] = 1;
    }
    return noop;
}

/* drop size-1 dims (reduced or not, they change nothing), merge runs */
static void red_plan_build(const struct ir_tensor *x, const int *mask, struct red_plan *p)
{
    int red[IR_MAX_RANK];
    p->rank = 0;
    p->n_in = ir_numel(x);
    for (int i = 0; i < x->rank; i++) {
        if (x->dims[i] == 1)
            continue;
        if (p->rank > 0 && red[p->rank - 1] == mask[i]) {
            p->dims[p->rank - 1] *= x->dims[i];
            continue;
        }
        red[p->rank] = mask[i];
        p->dims[p->rank++] = x->dims[i];
    }
    if (p->rank == 0) { /* all dims 1: a single element that maps to itself */
        red[0] = 0;
        p->dims[p->rank++] = 1;
    }
    int64_t s = 1;
    p->count = 1;
    for (int i = p->rank - 1; i >= 0; i--) {
        p->ostr[i] = red[i] ? 0 : s;
        if (red[i])
            p->count *= p->dims[i];
        else
            s *= p->dims[i];
    }
    p->n_out = s;
}

static double red_init_f(enum red_kind k)
{
    return k == RK_MAX ? -HUGE_VAL : k == RK_MIN ? HUGE_VAL : k == RK_PROD ? 1.0 : 0.0;
}

/* element transform before folding; m is the per-output max (LogSumExp only) */
static inline double red_map_f(enum red_kind k, double v, double m)
{
    switch (k) {
    case RK_L1: return fabs(v);
    case RK_L2: case RK_SUMSQ: return v * v;
    case RK_LSE: return exp(v - m);
    case RK_SUM: case RK_MEAN: case RK_MAX: case RK_MIN: case RK_PROD: case RK_LOGSUM: break;
    }
    return v;
}

/* fold v into a; max/min propagate NaN like numpy */
static inline double red_comb_f(enum red_kind k, double a, double v)
{
    switch (k) {
    case RK_MAX: return (v > a || isnan(v)) ? v : a;
    case RK_MIN: return (v < a || isnan(v)) ? v : a;
    case RK_PROD: return a * v;
    case RK_SUM: case RK_MEAN: case RK_L1: case RK_L2: case RK_SUMSQ: case RK_LOGSUM: case RK_LSE:
        break;
    }
    return a + v;
}

static double red_final_f(enum red_kind k, double a, int64_t count, double m)
{
    switch (k) {
    case RK_MEAN: return a / (double)count; /* empty: 0/0 = NaN */
    case RK_L2: return sqrt(a);
    case RK_LOGSUM: return log(a);
    case RK_LSE: return isinf(m) ? m : log(a) + m;
    case RK_SUM: case RK_MAX: case RK_MIN: case RK_PROD: case RK_L1: case RK_SUMSQ: break;
    }
    return a;
}

/* Walk the input row by row: a row is the last merged dim, contiguous in the
 * input; in the output it is one slot (reduced) or a contiguous run (kept).
 * acc has n_out slots; m (LogSumExp) holds the per-output max. */
static void red_walk_f(const struct red_plan *p, enum red_kind k, enum ir_dtype dt, const void *x,
                       double *acc, const double *m)
{
    int last = p->rank - 1;
    int64_t len = p->dims[last], ostep = p->ostr[last], nrows = len ? p->n_in / len : 0;
    int64_t idx[IR_MAX_RANK] = {0}, ob = 0;
    const float *xf = dt == IR_F32 ? (const float *)x : NULL;
    for (int64_t r = 0; r < nrows; r++) {
        int64_t ib = r * len;
        if (xf && (k == RK_SUM || k == RK_MEAN) && ostep == 0) {
            double s = 0; /* float32 fast path: sum a contiguous row */
            for (int64_t j = 0; j < len; j++)
                s += (double)xf[ib + j];
            acc[ob] += s;
        } else {
            for (int64_t j = 0; j < len; j++) {
                int64_t o = ob + j * ostep;
                double v = xf ? (double)xf[ib + j] : ir_load_f64(dt, x, ib + j);
                acc[o] = red_comb_f(k, acc[o], red_map_f(k, v, m ? m[o] : 0.0));
            }
        }
        /* odometer over the outer merged dims (row r+1's output base) */
        for (int i = last - 1; i >= 0; i--) {
            ob += p->ostr[i];
            if (++idx[i] < p->dims[i])
                break;
            ob -= p->ostr[i] * p->dims[i];
            idx[i] = 0;
        }
    }
}

static int red_float(const struct red_plan *p, enum red_kind k, enum ir_dtype dt, const void *x,
                     enum ir_dtype odt, void *y)
{
    double *acc = malloc((size_t)(p->n_out ? p->n_out : 1) * sizeof *acc);
    double *m = k == RK_LSE ? malloc((size_t)(p->n_out ? p->n_out : 1) * sizeof *m) : NULL;
    if (!acc || (k == RK_LSE && !m)) {
        free(acc);
        free(m);
        return ST_ERR_NOMEM;
    }
    if (m) { /* LogSumExp: subtract the max first so exp cannot overflow */
        for (int64_t o = 0; o < p->n_out; o++)
            m[o] = -HUGE_VAL;
        red_walk_f(p, RK_MAX, dt, x, m, NULL);
    }
    for (int64_t o = 0; o < p->n_out; o++)
        acc[o] = red_init_f(k);
    red_walk_f(p, k, dt, x, acc, m);
    for (int64_t o = 0; o < p->n_out; o++)
        ir_store_f64(odt, y, o, red_final_f(k, acc[o], p->count, m ? m[o] : 0.0));
    free(acc);
    free(m);
    return ST_OK;
}

/* ---- integer path: exact int64 accumulation, wrapping on overflow ------- */

static inline int64_t red_comb_i(enum red_kind k, int64_t a, int64_t v)
{
    switch (k) {
    case RK_MAX: return v > a ? v : a;
    case RK_MIN: return v < a ? v : a;
    case RK_PROD: return (int64_t)((uint64_t)a * (uint64_t)v);
    case RK_L1: return (int64_t)((uint64_t)a + (uint64_t)(v < 0 ? -(uint64_t)v : (uint64_t)v));
    case RK_SUMSQ: return (int64_t)((uint64_t)a + (uint64_t)v * (uint64_t)v);
    case RK_SUM: case RK_MEAN: case RK_L2: case RK_LOGSUM: case RK_LSE: break;
    }
    return (int64_t)((uint64_t)a + (uint64_t)v);
}

/* out is (n_out): every input element i folds into acc[out offset of i] */
static int red_int(const struct red_plan *p, enum red_kind k, enum ir_dtype dt, const void *x,
                   void *y)
{
    int64_t *acc = malloc((size_t)(p->n_out ? p->n_out : 1) * sizeof *acc);
    if (!acc)
        return ST_ERR_NOMEM;
    int64_t init = k == RK_MAX ? INT64_MIN : k == RK_MIN ? INT64_MAX : k == RK_PROD ? 1 : 0;
    for (int64_t o = 0; o < p->n_out; o++)
        acc[o] = init;
    int64_t idx[IR_MAX_RANK] = {0}, o = 0;
    for (int64_t i = 0; i < p->n_in; i++) {
        acc[o] = red_comb_i(k, acc[o], ir_load_i64(dt, x, i));
        for (int d = p->rank - 1; d >= 0; d--) {
            o += p->ostr[d];
            if (++idx[d] < p->dims[d])
                break;
            o -= p->ostr[d] * p->dims[d];
            idx[d] = 0;
        }
    }
    for (int64_t j = 0; j < p->n_out; j++) {
        if (p->count == 0 && (k == RK_MAX || k == RK_MIN)) /* empty: the type's lowest/highest */
            ir_store_f64(dt, y, j, k == RK_MAX ? -HUGE_VAL : HUGE_VAL);
        else if (k == RK_MEAN)
            ir_store_i64(dt, y, j, p->count ? acc[j] / p->count : 0);
        else
            ir_store_i64(dt, y, j, acc[j]);
    }
    free(acc);
    return ST_OK;
}

static int reduce_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                      void *const *out, enum red_kind k)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *y = ref_out(g, n, 0);
    int mask[IR_MAX_RANK];
    if (red_mask(g, n, n->n_in > 1 ? in[1] : NULL, mask)) {
        memcpy(out[0], in[0], (size_t)ir_numel(x) * ir_dtype_size(x->dtype));
        return ST_OK;
    }
    struct red_plan p;
    red_plan_build(x, mask, &p);
    int int_path = !ir_dtype_is_float(x->dtype) && k != RK_L2 && k != RK_LOGSUM && k != RK_LSE;
    if (int_path)
        return red_int(&p, k, x->dtype, in[0], out[0]);
    return red_float(&p, k, x->dtype, in[0], y->dtype, out[0]);
}

REF_KERNEL(ReduceMean) { return reduce_run(g, n, in, out, RK_MEAN); }
REF_KERNEL(ReduceSum) { return reduce_run(g, n, in, out, RK_SUM); }
REF_KERNEL(ReduceMax) { return reduce_run(g, n, in, out, RK_MAX); }
REF_KERNEL(ReduceMin) { return reduce_run(g, n, in, out, RK_MIN); }
REF_KERNEL(ReduceProd) { return reduce_run(g, n, in, out, RK_PROD); }
REF_KERNEL(ReduceL1) { return reduce_run(g, n, in, out, RK_L1); }
REF_KERNEL(ReduceL2) { return reduce_run(g, n, in, out, RK_L2); }
REF_KERNEL(ReduceSumSquare) { return reduce_run(g, n, in, out, RK_SUMSQ); }
REF_KERNEL(ReduceLogSum) { return reduce_run(g, n, in, out, RK_LOGSUM); }
REF_KERNEL(ReduceLogSumExp) { return reduce_run(g, n, in, out, RK_LSE); }

/* ---- ArgMax / ArgMin ---------------------------------------------------- */

/* x viewed as (outer, len, inner); out is (outer, inner) int64. Ties keep the
 * first index, or the last with select_last_index. Integers compare exactly. */
static int arg_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                   void *const *out, int want_max)
{
    const struct ir_tensor *x = ref_in(g, n, 0);
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), x->rank);
    int last = ir_attr_int(n, "select_last_index", 0) != 0, is_f = ir_dtype_is_float(x->dtype);
    int64_t outer = 1, len = x->dims[a], inner = 1;
    for (int i = 0; i < a; i++)
        outer *= x->dims[i];
    for (int i = a + 1; i < x->rank; i++)
        inner *= x->dims[i];
    int64_t *y = out[0];
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t q = 0; q < inner; q++) {
            int64_t base = o * len * inner + q, best = 0;
            double bf = 0;
            int64_t bi = 0;
            for (int64_t j = 0; j < len; j++) {
                int64_t at = base + j * inner;
                double vf = is_f ? ir_load_f64(x->dtype, in[0], at) : 0;
                int64_t vi = is_f ? 0 : ir_load_i64(x->dtype, in[0], at);
                int gt = is_f ? vf > bf : vi > bi, eq = is_f ? vf == bf : vi == bi;
                int better = want_max ? gt : (!gt && !eq);
                if (j == 0 || better || (last && eq)) {
                    best = j;
                    bf = vf;
                    bi = vi;
                }
            }
            y[o * inner + q] = best;
        }
    }
    return ST_OK;
}

REF_KERNEL(ArgMax) { return arg_run(g, n, in, out, 1); }
REF_KERNEL(ArgMin) { return arg_run(g, n, in, out, 0); }

/* ---- CumSum ------------------------------------------------------------- */

/* x viewed as (outer, len, inner); the axis is read from input 1 at run time.
 * exclusive: element j gets the sum before it; reverse: sums run backwards. */
REF_KERNEL(CumSum)
{
    const struct ir_tensor *x = ref_in(g, n, 0), *at = ref_in(g, n, 1);
    int a = ir_norm_axis(ir_load_i64(at->dtype, in[1], 0), x->rank);
    if (a < 0)
        return ST_ERR_INVALID;
    int excl = ir_attr_int(n, "exclusive", 0) != 0, rev = ir_attr_int(n, "reverse", 0) != 0;
    int is_f = ir_dtype_is_float(x->dtype);
    int64_t outer = 1, len = x->dims[a], inner = 1;
    for (int i = 0; i < a; i++)
        outer *= x->dims[i];
    for (int i = a + 1; i < x->rank; i++)
        inner *= x->dims[i];
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t q = 0; q < inner; q++) {
            double sf = 0;
            uint64_t si = 0; /* integers wrap like the element type */
            for (int64_t t = 0; t < len; t++) {
                int64_t j = rev ? len - 1 - t : t, at_ = (o * len + j) * inner + q;
                double vf = is_f ? ir_load_f64(x->dtype, in[0], at_) : 0;
                uint64_t vi = is_f ? 0 : (uint64_t)ir_load_i64(x->dtype, in[0], at_);
                if (!excl) {
                    sf += vf;
                    si += vi;
                }
                if (is_f)
                    ir_store_f64(x->dtype, out[0], at_, sf);
                else
                    ir_store_i64(x->dtype, out[0], at_, (int64_t)si);
                if (excl) {
                    sf += vf;
                    si += vi;
                }
            }
        }
    }
    return ST_OK;
}
