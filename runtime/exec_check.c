/* exec_check.c — PDC_CHECK=ref: a program on a generated target (cpu, llvm) checks
 * itself against the reference target unit by unit. Before a unit (a fused kernel,
 * or one node) runs, its inputs are copied; after it ran, the same nodes run on
 * cg_ref from the copies and every buffer the unit wrote is compared. Each unit
 * starts from the target's own values, so a difference points at that unit and
 * nothing upstream, and rounding cannot pile up over a long program.
 *
 * Tolerance by what the unit computes (METHOD-independent, the test_cpu_target /
 * test_llvm families):
 *   exact     data movement, integer/bool results, and float arithmetic the
 *             targets do as ref does (add, mul, div, select, squashings, ...);
 *   ulp       transcendental functions (exp, log, erf, tanh, sigmoid, GELU, pow):
 *             the generated targets use their own vectorisable formulas, within a
 *             few ulps, which a fused chain can scale up where it cancels: |Δ| <= 1e-5 ·
 *             max|ref| over the tensor;
 *   reassoc   everything that sums (GEMMs, reductions, softmax, norms, conv, the
 *             chunked KL): OpenBLAS and the threaded kernels add in another order,
 *             and that error follows the size of what was summed, not of the result
 *             (a batch sum of gradients mostly cancels): |Δ| <= 1e-4 · the largest of
 *             max|ref| and, over the unit's float inputs, max|x| and the product of
 *             the two largest max|x|.
 * NaN must meet NaN; ±0 compare equal. A bool output of a unit that is not exact
 * (a comparison after an exp, say) may flip where its float operand sits within
 * rounding of the threshold: one flipped element is allowed there. A failure names
 * the unit, the tensor, the element and both values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_impl.h"

#define SH_MAX 512 /* tensors one unit touches: 64 nodes with their operands */

enum fam { FAM_EXACT, FAM_ULP, FAM_REASSOC };

struct shadow {
    uint32_t t[SH_MAX];
    void *buf[SH_MAX];
    int n;
};

static void *sh_get(const struct shadow *s, uint32_t t)
{
    for (int i = 0; i < s->n; i++)
        if (s->t[i] == t)
            return s->buf[i];
    return NULL;
}

/* a zeroed shadow buffer for t (a copy of src when given) */
static void *sh_add(struct shadow *s, uint32_t t, size_t nb, const void *src)
{
    if (s->n == SH_MAX)
        return NULL;
    void *b = calloc(1, nb ? nb : 1);
    if (b && src)
        memcpy(b, src, nb);
    if (b) {
        s->t[s->n] = t;
        s->buf[s->n++] = b;
    }
    return b;
}

static void sh_free(struct shadow *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->buf[i]);
    s->n = 0;
}

static enum fam op_family(enum ir_op op)
{
    switch (op) {
    case IR_OP_Sigmoid: case IR_OP_Softplus: case IR_OP_Tanh: case IR_OP_Erf:
    case IR_OP_Gelu: case IR_OP_Exp: case IR_OP_Log: case IR_OP_Pow: case IR_OP_Elu:
    case IR_OP_Selu: case IR_OP_Celu: case IR_OP_Sin: case IR_OP_Cos: case IR_OP_Tan:
    case IR_OP_Asin: case IR_OP_Acos: case IR_OP_Atan: case IR_OP_Sinh: case IR_OP_Cosh:
    case IR_OP_Asinh: case IR_OP_Acosh: case IR_OP_Atanh:
        return FAM_ULP;
    default:
        break;
    }
    unsigned f = ir_ops[op].flags;
    if (f & (IR_OPF_ELEMWISE | IR_OPF_SHAPE))
        return FAM_EXACT;
    switch (op) { /* data movement and selection without arithmetic */
    case IR_OP_Gather: case IR_OP_GatherElements: case IR_OP_Slice: case IR_OP_Concat:
    case IR_OP_Split: case IR_OP_Transpose: case IR_OP_Expand: case IR_OP_Tile: case IR_OP_Pad:
    case IR_OP_Trilu: case IR_OP_ReduceMax: case IR_OP_ReduceMin: case IR_OP_ArgMax:
    case IR_OP_ArgMin: case IR_OP_MaxPool: case IR_OP_GlobalMaxPool: case IR_OP_TopKMask:
        return FAM_EXACT;
    default:
        return FAM_REASSOC;
    }
}

/* the unit's nodes: the fused group's, or the one node */
static uint32_t unit_nodes(const struct rt_prog *p, uint32_t gi, const struct ir_node *n,
                           const uint32_t **ids, uint32_t *one)
{
    if (n) {
        *one = (uint32_t)(n - p->g->n);
        *ids = one;
        return 1;
    }
    *ids = p->plan.groups[gi].nodes;
    return p->plan.groups[gi].n_nodes;
}

/* copies of every non-constant tensor the unit reads but does not produce */
static int snapshot(struct rt_prog *p, const uint32_t *ids, uint32_t nn, struct shadow *s,
                    struct diag *d)
{
    const struct ir_graph *g = p->g;
    for (uint32_t k = 0; k < nn; k++) {
        const struct ir_node *n = &g->n[ids[k]];
        for (uint32_t i = 0; i < n->n_in; i++) {
            uint32_t t = n->in[i];
            int produced = 0;
            for (uint32_t j = 0; j < k && !produced; j++)
                for (uint32_t o = 0; o < g->n[ids[j]].n_out; o++)
                    produced |= g->n[ids[j]].out[o] == t;
            if (t == IR_NONE || produced || g->t[t].data || sh_get(s, t))
                continue;
            if (!p->buf[t])
                return diag_set(d, ST_ERR_INVALID, "PDC_CHECK: node '%s' reads '%s', which "
                                "has no buffer", n->name, g->t[t].name);
            if (!sh_add(s, t, rt_tensor_bytes(&g->t[t]), p->buf[t]))
                return diag_set(d, ST_ERR_NOMEM, "PDC_CHECK: out of memory copying '%s'",
                                g->t[t].name);
        }
    }
    return ST_OK;
}

/* the magnitude a reassociated sum's rounding scales with (see the top) */
static double input_scale(const struct rt_prog *p, const struct shadow *s)
{
    double m1 = 0, m2 = 0;
    for (int i = 0; i < s->n; i++) {
        const struct ir_tensor *t = &p->g->t[s->t[i]];
        if (t->dtype != IR_F32)
            continue;
        const float *x = s->buf[i];
        double mx = 0;
        for (int64_t k = 0; k < ir_numel(t); k++)
            if (isfinite(x[k]) && fabs(x[k]) > mx)
                mx = fabs(x[k]);
        if (mx > m1)
            m2 = m1, m1 = mx;
        else if (mx > m2)
            m2 = mx;
    }
    return m1 > m1 * m2 ? m1 : m1 * m2;
}

/* the unit's nodes on cg_ref, reading the copies, writing fresh shadow buffers */
static int shadow_run(struct rt_prog *p, const uint32_t *ids, uint32_t nn, struct shadow *s,
                      struct diag *d)
{
    const struct ir_graph *g = p->g;
    for (uint32_t k = 0; k < nn; k++) {
        const struct ir_node *n = &g->n[ids[k]];
        void *in[256], *out[256];
        if (n->n_in > 256 || n->n_out > 256)
            return diag_set(d, ST_ERR_UNSUPPORTED, "node '%s' has too many operands", n->name);
        for (uint32_t i = 0; i < n->n_in; i++) {
            uint32_t t = n->in[i];
            in[i] = t == IR_NONE ? NULL : sh_get(s, t) ? sh_get(s, t) : g->t[t].data;
        }
        for (uint32_t o = 0; o < n->n_out; o++) {
            uint32_t t = n->out[o];
            out[o] = t == IR_NONE ? NULL : sh_add(s, t, rt_tensor_bytes(&g->t[t]), NULL);
            if (t != IR_NONE && !out[o])
                return diag_set(d, ST_ERR_NOMEM, "PDC_CHECK: out of memory");
        }
        int st = cg_ref.run(g, n, in, out);
        if (st)
            return diag_set(d, st, "PDC_CHECK=ref: node '%s' (%s) failed on the reference "
                            "target (%s)", n->name, ir_ops[n->op].name,
                            status_name((enum status)st));
    }
    return ST_OK;
}

/* the largest |a − b| of float tensor t against the tolerance of fam; 0 if within */
static int compare_f32(const float *a, const float *b, int64_t n, enum fam fam, double in_scale,
                       int64_t *at, double *err, double *tol)
{
    double mx = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(b[i]) && fabs(b[i]) > mx)
            mx = fabs(b[i]);
    if (fam == FAM_REASSOC && in_scale > mx)
        mx = in_scale;
    *tol = fam == FAM_EXACT ? 0 : (fam == FAM_ULP ? 1e-5 : 1e-4) * mx;
    *err = 0;
    *at = -1;
    for (int64_t i = 0; i < n; i++) {
        double e;
        if (isnan(a[i]) || isnan(b[i]))
            e = isnan(a[i]) && isnan(b[i]) ? 0 : INFINITY;
        else if (isinf(a[i]) || isinf(b[i]))
            e = a[i] == b[i] ? 0 : INFINITY;
        else
            e = fabs((double)a[i] - (double)b[i]);
        if (e > *tol && (e > *err || *at < 0)) {
            *err = e;
            *at = i;
        }
    }
    return *at >= 0;
}

static int mismatch(struct rt_prog *p, const uint32_t *ids, uint32_t nn, int kernel, uint32_t t,
                    const void *got, const void *want, enum fam fam, double in_scale,
                    struct diag *d)
{
    const struct ir_tensor *tt = &p->g->t[t];
    const struct ir_node *n0 = &p->g->n[ids[0]];
    int64_t n = ir_numel(tt), at = -1;
    double err = 0, tol = 0;
    char what[160];
    if (kernel) /* (a target with min_fuse 1 makes kernels of lone nodes too) */
        snprintf(what, sizeof what, "fused kernel of %u node%s from '%s' (%s)", nn,
                 nn > 1 ? "s" : "", n0->name, ir_ops[n0->op].name);
    else
        snprintf(what, sizeof what, "node '%s' (%s)", n0->name, ir_ops[n0->op].name);
    if (tt->dtype == IR_F32) {
        if (!compare_f32(got, want, n, fam, in_scale, &at, &err, &tol))
            return ST_OK;
        return diag_set(d, ST_ERR_INVALID, "PDC_CHECK=ref: %s on target %s: output '%s' "
                        "element %lld is %.9g, the reference target gives %.9g (|diff| %.3g > "
                        "tolerance %.3g)", what, p->tgt->name, tt->name, (long long)at,
                        (double)((const float *)got)[at], (double)((const float *)want)[at], err,
                        tol);
    }
    if (memcmp(got, want, rt_tensor_bytes(tt)) == 0)
        return ST_OK;
    if (tt->dtype == IR_BOOL && fam != FAM_EXACT) {
        int64_t flips = 0;
        for (int64_t i = 0; i < n; i++)
            flips += ((const unsigned char *)got)[i] != ((const unsigned char *)want)[i];
        if (flips <= 1)
            return ST_OK;
    }
    return diag_set(d, ST_ERR_INVALID, "PDC_CHECK=ref: %s on target %s: output '%s' (%s) "
                    "differs from the reference target", what, p->tgt->name, tt->name,
                    ir_dtype_name(tt->dtype));
}

int rt_check_unit(struct rt_prog *p, uint32_t gi, const struct ir_node *n, struct diag *d)
{
    const struct ir_graph *g = p->g;
    const uint32_t *ids;
    uint32_t one, nn = unit_nodes(p, gi, n, &ids, &one);
    struct shadow s = {0};
    enum fam fam = FAM_EXACT;
    for (uint32_t k = 0; k < nn; k++)
        if (op_family(g->n[ids[k]].op) > fam)
            fam = op_family(g->n[ids[k]].op);
    int st = snapshot(p, ids, nn, &s, d);
    if (st) {
        sh_free(&s);
        return st;
    }
    double in_scale = fam == FAM_REASSOC ? input_scale(p, &s) : 0;
    st = n ? rt_run_node(p, n, d) : rt_run_kernel(p, gi, d);
    if (!st)
        st = shadow_run(p, ids, nn, &s, d);
    for (uint32_t k = 0; !st && k < nn; k++) {
        const struct ir_node *m = &g->n[ids[k]];
        for (uint32_t o = 0; !st && o < m->n_out; o++) {
            uint32_t t = m->out[o];
            if (t != IR_NONE && p->buf[t] && !p->plan.internal[t])
                st = mismatch(p, ids, nn, !n, t, p->buf[t], sh_get(&s, t), fam, in_scale, d);
        }
    }
    sh_free(&s);
    return st;
}
