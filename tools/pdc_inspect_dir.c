/* pdc_inspect_dir.c — `pdc inspect DIR`: what a decomposition found. For every
 * site, the rank-1 subcomponents that carry weight (norm above 10% of the site's
 * largest), each with its norm, the input direction it reads most (argmax |V[:,c]|)
 * and the output direction it writes most (argmax |U[c,:]|), and its firing density
 * from DIR/eval.json when `pdc eval` has run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdc_cli.h"
#include "safetensors.h"

static const struct ir_value *find(const struct ir_value *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static const struct json_node *member(const struct json_node *o, const char *key)
{
    for (size_t i = 0; o && o->type == JSON_OBJ && i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

static int64_t argmax_abs(const float *x, int64_t n, int64_t stride, double *best)
{
    int64_t a = 0;
    *best = -1;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)x[i * stride]) > *best) {
            *best = fabs((double)x[i * stride]);
            a = i;
        }
    return a;
}

static void print_site(const char *name, const struct ir_value *V, const struct ir_value *U)
{
    int64_t din = V->dims[0], C = V->dims[1], dout = U->dims[1];
    const float *v = V->data, *u = U->data;
    double *norm = malloc((size_t)C * sizeof *norm), mx = 0;
    if (!norm)
        return;
    for (int64_t c = 0; c < C; c++) {
        double a = 0, b = 0;
        for (int64_t i = 0; i < din; i++)
            a += (double)v[i * C + c] * (double)v[i * C + c];
        for (int64_t o = 0; o < dout; o++)
            b += (double)u[c * dout + o] * (double)u[c * dout + o];
        norm[c] = sqrt(a * b); /* ‖v_c‖·‖u_c‖ = Frobenius norm of the rank-1 piece */
        mx = norm[c] > mx ? norm[c] : mx;
    }
    int live = 0;
    for (int64_t c = 0; c < C; c++)
        live += norm[c] > 0.1 * mx;
    printf("site %s: [%lld, %lld], C = %lld, %d subcomponents above 10%% of the largest norm\n",
           name, (long long)din, (long long)dout, (long long)C, live);
    printf("  %4s %10s %10s %10s %10s %10s\n", "c", "norm", "reads in", "|v| share", "writes out",
           "|u| share");
    for (int64_t c = 0; c < C; c++) {
        if (norm[c] <= 0.1 * mx)
            continue;
        double bv, bu, sv = 0, su = 0;
        int64_t i = argmax_abs(v + c, din, C, &bv), o = argmax_abs(u + c * dout, dout, 1, &bu);
        for (int64_t k = 0; k < din; k++)
            sv += fabs((double)v[k * C + c]);
        for (int64_t k = 0; k < dout; k++)
            su += fabs((double)u[c * dout + k]);
        printf("  %4lld %10.4f %10lld %10.2f %10lld %10.2f\n", (long long)c, norm[c], (long long)i,
               sv > 0 ? bv / sv : 0.0, (long long)o, su > 0 ? bu / su : 0.0);
    }
    free(norm);
}

/* APD (method apd): columns c·m .. c·m+m−1 of V and U form component c, P_c = A_c·B_c
 * (passes/objective_apd.c); its Frobenius norm per component */
static void print_apd_components(const struct ir_value *V, const struct ir_value *U,
                                 const struct json_node *cfg)
{
    const struct json_node *mj = member(cfg, "m");
    int64_t din = V->dims[0], cm = V->dims[1], dout = U->dims[1];
    int64_t m = mj && mj->type == JSON_NUM ? (int64_t)mj->num : (din < dout ? din : dout);
    if (m < 1 || cm % m)
        return;
    const float *v = V->data, *u = U->data;
    printf("  APD components (m = %lld columns each), Frobenius norms:", (long long)m);
    for (int64_t c = 0; c < cm / m; c++) {
        double sq = 0;
        for (int64_t i = 0; i < din; i++)
            for (int64_t o = 0; o < dout; o++) {
                double p = 0;
                for (int64_t k = c * m; k < (c + 1) * m; k++)
                    p += (double)v[i * cm + k] * (double)u[k * dout + o];
                sq += p * p;
            }
        printf(" %lld:%.4f", (long long)c, sqrt(sq));
    }
    printf("\n");
}

int pdc_inspect_dir(const char *dir, struct diag *d)
{
    char path[4200];
    struct json_doc doc;
    snprintf(path, sizeof path, "%s/decomposition.json", dir);
    int st = json_parse_file(path, NULL, &doc, d);
    if (st)
        return st;
    struct ir_value *vals = NULL;
    int n = 0;
    snprintf(path, sizeof path, "%s/components.safetensors", dir);
    st = st_read(path, &vals, &n, d);
    const struct json_node *model = member(doc.root, "model"), *sites = member(doc.root, "sites");
    const struct json_node *method = member(doc.root, "method");
    if (!st && (!model || !sites || sites->type != JSON_ARR))
        st = diag_set(d, ST_ERR_INVALID, "%s/decomposition.json: no model/sites", dir);
    if (!st) {
        const struct json_node *p = member(model, "path");
        printf("decomposition of %s (method %s)\n", p && p->type == JSON_STR ? p->s : "?",
               method && method->type == JSON_STR ? method->s : "?");
    }
    for (size_t i = 0; !st && i < sites->n; i++) {
        const struct json_node *nm = member(&sites->items[i], "name");
        if (!nm || nm->type != JSON_STR)
            continue;
        char nv[300], nu[300];
        snprintf(nv, sizeof nv, "%s.V", nm->s);
        snprintf(nu, sizeof nu, "%s.U", nm->s);
        const struct ir_value *V = find(vals, n, nv), *U = find(vals, n, nu);
        if (!V || !U || V->rank != 2 || U->rank != 2 || V->dtype != IR_F32 || U->dtype != IR_F32 ||
            V->dims[1] != U->dims[0])
            st = diag_set(d, ST_ERR_INVALID, "%s: factors of site '%s' missing or malformed", path,
                          nm->s);
        else
            print_site(nm->s, V, U);
        if (!st && method && method->type == JSON_STR && strcmp(method->s, "apd") == 0)
            print_apd_components(V, U, member(doc.root, "config"));
    }
    if (vals)
        st_free(vals, n);
    json_doc_free(&doc);
    return st;
}
