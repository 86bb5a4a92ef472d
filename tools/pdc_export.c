/* pdc_export.c — `pdc export DIR -o OUT.onnx`: a decomposition written back as
 * an ONNX model built on the original file (imported without passes, so its
 * nodes, names, attributes, symbolic dims and opset stay as they were):
 *   --form factorised (default)  every site as MatMul(x, V) → Mul(mask) → MatMul(·, U)
 *                                plus x·Δ; masks are inputs "mask.<site>" defaulting to 1
 *   --form ci                    the CI function inside: masks = CI values (or
 *                                1[CI > --threshold]); outputs "ci.<site>" added
 *   --ablate/--keep SITE:c,..    those sites' masks baked as constants
 *   --bake                       masks folded into plain weights W' = V·diag(m)·U + Δ
 *   --edit SITE:c --write-vector FILE.npy [--scale A]   the VPD §6 edit, baked
 *   --intervene K:D[,K:D..]      an L3D folder (its only form): every decomposed tensor
 *                                baked as W + Σ D·v_K, what `pdc intervene` runs
 * An APD folder's masks are per component (C of them, each over its m columns):
 * --form ci and --edit do not apply to it (no CI function, no single write vector).
 * The sites are selected on a compiled copy (batch 11, sequence 13: values no
 * model dim is likely to share, so a position dim equal to one of them is the
 * symbol it was bound from) and found in the export graph by node name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "onnx.h"
#include "pdc_cli.h"
#include "decomp_export.h"

#define PROBE_BATCH 11
#define PROBE_SEQ 13
#define MAX_SPECS 64
#define EXTERNAL_AT (((size_t)2 << 30) - ((size_t)64 << 20)) /* protobuf's 2 GiB, less slack */

struct export_args {
    const char *dir, *out, *form, *edit, *vector;
    const char *ablate[MAX_SPECS], *keep[MAX_SPECS], *intervene[MAX_SPECS];
    int n_ablate, n_keep, n_intervene, bake, form_set;
    double threshold, scale;
    long long ext_threshold; /* < 0: automatic */
};

static int parse_double(const char *opt, const char *v, double *out, struct diag *d)
{
    char *e;
    *out = strtod(v, &e);
    if (*e || e == v || *out != *out)
        return diag_set(d, ST_ERR_INVALID, "%s: '%s' is not a number", opt, v);
    return ST_OK;
}

static int parse_args(int argc, char **argv, struct export_args *a, struct diag *d)
{
    memset(a, 0, sizeof *a);
    a->form = "factorised";
    a->threshold = -1;
    a->scale = 1;
    a->ext_threshold = -1;
    for (int i = 0; i < argc && !d->status; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (strcmp(o, "--bake") == 0)
            a->bake = 1, used = 0;
        else if (!v && o[0] == '-')
            return diag_set(d, ST_ERR_INVALID, "export: %s needs a value", o);
        else if (strcmp(o, "-o") == 0)
            a->out = v;
        else if (strcmp(o, "--form") == 0)
            a->form = v, a->form_set = 1;
        else if (strcmp(o, "--threshold") == 0)
            parse_double(o, v, &a->threshold, d);
        else if (strcmp(o, "--scale") == 0)
            parse_double(o, v, &a->scale, d);
        else if (strcmp(o, "--edit") == 0)
            a->edit = v;
        else if (strcmp(o, "--write-vector") == 0)
            a->vector = v;
        else if (strcmp(o, "--external-threshold") == 0) {
            char *e;
            a->ext_threshold = strtoll(v, &e, 10);
            if (*e || e == v || a->ext_threshold < 0)
                diag_set(d, ST_ERR_INVALID, "--external-threshold %s: a byte count", v);
        }
        else if ((strcmp(o, "--ablate") == 0 && a->n_ablate < MAX_SPECS))
            a->ablate[a->n_ablate++] = v;
        else if ((strcmp(o, "--keep") == 0 && a->n_keep < MAX_SPECS))
            a->keep[a->n_keep++] = v;
        else if ((strcmp(o, "--intervene") == 0 && a->n_intervene < MAX_SPECS))
            a->intervene[a->n_intervene++] = v;
        else if (o[0] != '-' && !a->dir)
            a->dir = o, used = 0;
        else
            return diag_set(d, ST_ERR_INVALID, "export: unexpected argument '%s' (see pdc --help)",
                            o);
        i += used;
    }
    if (d->status)
        return d->status;
    if (!a->dir || !a->out)
        return diag_set(d, ST_ERR_INVALID, "usage: pdc export DIR -o OUT.onnx [--form "
                        "factorised|ci] [--threshold T] [--ablate SITE:c,..] [--keep SITE:c,..] "
                        "[--bake] [--edit SITE:c --write-vector FILE.npy [--scale A]] "
                        "[--intervene K:D[,K:D..] (an L3D folder)]");
    if (strcmp(a->form, "factorised") != 0 && strcmp(a->form, "ci") != 0)
        return diag_set(d, ST_ERR_INVALID, "--form %s: factorised or ci", a->form);
    if (!!a->edit != !!a->vector)
        return diag_set(d, ST_ERR_INVALID, "--edit and --write-vector go together");
    if ((a->bake || a->edit) && strcmp(a->form, "ci") == 0)
        return diag_set(d, ST_ERR_INVALID, "--form ci computes masks from the input; --bake "
                        "and --edit write fixed weights");
    if (a->threshold >= 0 && strcmp(a->form, "ci") != 0)
        return diag_set(d, ST_ERR_INVALID, "--threshold rounds CI masks: it needs --form ci");
    return ST_OK;
}

/* ---- masks from --ablate / --keep ------------------------------------------------- */

/* "SITE:c[,c..]": the site (the text before the last ':') and its components */
static int parse_spec(const struct pdc_dir *x, const char *opt, const char *spec, int *site,
                      uint8_t *sel, struct diag *d)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        return diag_set(d, ST_ERR_INVALID, "%s %s: expected SITE:c[,c...]", opt, spec);
    char name[300];
    snprintf(name, sizeof name, "%.*s", (int)(colon - spec), spec);
    int st = pdc_dir_site(x, name, site, d);
    int C = st ? 0 : x->sites[*site].C / pdc_dir_rank(x, *site); /* APD: components */
    for (const char *p = colon + 1; !st && *p;) {
        char *e;
        long c = strtol(p, &e, 10);
        if (e == p || (*e && *e != ','))
            return diag_set(d, ST_ERR_INVALID, "%s %s: '%s' is not a component index", opt, spec, p);
        if (c < 0 || c >= C)
            return diag_set(d, ST_ERR_INVALID, "%s %s: component %ld is out of range (site '%s' "
                            "has C = %d: 0..%d)", opt, spec, c, name, C, C - 1);
        sel[c] = 1;
        p = *e ? e + 1 : e;
    }
    return st;
}

/* the largest C of any site: parse_spec's selection array */
static int max_C(const struct pdc_dir *x)
{
    int m = 1;
    for (int j = 0; j < x->ns; j++)
        m = x->sites[j].C > m ? x->sites[j].C : m;
    return m;
}

/* masks[i]: NULL (all ones, not named) or a [C] vector; --keep c keeps only the
 * listed components of that site, --ablate c zeroes them (both may name a site
 * several times) */
static int build_masks(const struct pdc_dir *x, const struct export_args *a, float **masks,
                       struct diag *d)
{
    int st = ST_OK;
    for (int k = 0; !st && k < a->n_ablate + a->n_keep; k++) {
        int keep = k < a->n_keep, i = -1; /* keeps first: an ablation then removes from them */
        const char *spec = keep ? a->keep[k] : a->ablate[k - a->n_keep];
        uint8_t *sel = calloc((size_t)max_C(x), 1);
        if (!sel)
            return diag_set(d, ST_ERR_NOMEM, "out of memory");
        st = parse_spec(x, keep ? "--keep" : "--ablate", spec, &i, sel, d);
        int C = st ? 0 : x->sites[i].C / pdc_dir_rank(x, i);
        if (!st && !masks[i]) {
            if (!(masks[i] = malloc((size_t)C * sizeof **masks)))
                st = diag_set(d, ST_ERR_NOMEM, "out of memory");
            for (int c = 0; !st && c < C; c++)
                masks[i][c] = keep ? 0.0f : 1.0f;
        }
        for (int c = 0; !st && c < C; c++)
            if (sel[c])
                masks[i][c] = keep ? 1.0f : 0.0f;
        free(sel);
    }
    for (int i = 0; !st && i < x->ns; i++) { /* APD: component c's mask on its m columns */
        int m = pdc_dir_rank(x, i), C = x->sites[i].C;
        float *e = m > 1 && masks[i] ? malloc((size_t)C * sizeof *e) : NULL;
        if (m > 1 && masks[i] && !e)
            return diag_set(d, ST_ERR_NOMEM, "out of memory");
        for (int c = 0; e && c < C; c++)
            e[c] = masks[i][c / m];
        if (e) {
            free(masks[i]);
            masks[i] = e;
        }
    }
    return st;
}

/* ---- positions and output types in the export graph's symbols ---------------- */

struct symmap {
    int64_t val[IR_MAX_RANK * 8];
    int32_t sym[IR_MAX_RANK * 8]; /* -2: two symbols had this value (an unnamed dim) */
    int n;
};

/* which value each of g's symbolic input dims got in the compiled copy h */
static void sym_values(const struct ir_graph *g, const struct ir_graph *h, struct symmap *m)
{
    m->n = 0;
    for (uint32_t i = 0; i < g->n_inputs && i < h->n_inputs; i++) {
        const struct ir_tensor *t = &g->t[g->inputs[i]], *u = &h->t[h->inputs[i]];
        for (int k = 0; k < t->rank && k < u->rank; k++) {
            if (t->sym[k] < 0 || m->n == IR_MAX_RANK * 8)
                continue;
            int j = 0;
            while (j < m->n && m->val[j] != u->dims[k])
                j++;
            if (j == m->n) {
                m->val[m->n] = u->dims[k];
                m->sym[m->n++] = t->sym[k];
            } else if (m->sym[j] != t->sym[k]) {
                m->sym[j] = -2;
            }
        }
    }
}

/* a concrete dim of h as g has it: (-1, symbol), (-1, -1) unnamed, or (v, -1) */
static void map_dim(const struct symmap *m, int64_t v, int64_t *dim, int32_t *sym)
{
    *dim = v;
    *sym = -1;
    for (int j = 0; j < m->n; j++)
        if (m->val[j] == v) {
            *dim = -1;
            *sym = m->sym[j] >= 0 ? m->sym[j] : -1;
        }
}

/* decompose.c's site positions: rows of a matmul, a Gather's indices, [N, sp..] of a Conv */
static void site_positions(const struct ir_graph *h, const struct dc_site *s,
                           const struct symmap *m, struct dx_site *xs)
{
    const struct ir_node *n = &h->n[s->node];
    const struct ir_tensor *x = &h->t[n->in[s->act]], *y = &h->t[n->out[0]];
    int64_t pos[IR_MAX_RANK];
    int r = 0;
    if (s->kind == PASS_SITE_GATHER) {
        for (int k = 0; k < x->rank; k++)
            pos[r++] = x->dims[k];
    } else if (s->kind == PASS_SITE_CONV) {
        pos[r++] = y->dims[0];
        for (int k = 2; k < y->rank; k++)
            pos[r++] = y->dims[k];
    } else {
        for (int k = 0; k < x->rank - 1; k++)
            pos[r++] = x->dims[k];
        if (s->act_tr)
            pos[r - 1] = x->dims[x->rank - 1];
    }
    xs->act_rank = x->rank;
    xs->pr = r;
    for (int k = 0; k < r; k++)
        map_dim(m, pos[k], &xs->pos[k], &xs->sym[k]);
}

/* the importer keeps no declared output types; take them from the copy */
static void output_types(struct ir_graph *g, const struct ir_graph *h, const struct symmap *m)
{
    for (uint32_t i = 0; i < g->n_outputs && i < h->n_outputs; i++) {
        struct ir_tensor *t = &g->t[g->outputs[i]];
        const struct ir_tensor *u = &h->t[h->outputs[i]];
        if (t->dtype != IR_DT_UNDEF && t->rank >= 0)
            continue;
        t->dtype = u->dtype;
        t->rank = u->rank;
        for (int k = 0; k < u->rank; k++)
            map_dim(m, u->dims[k], &t->dims[k], &t->sym[k]);
    }
}

/* the node named `name`; IR_NONE when absent, and an error when the name is not
 * unique (sites are matched to the compiled copy's nodes by name) */
static uint32_t find_node(const struct ir_graph *g, const char *name, struct diag *d)
{
    uint32_t found = IR_NONE;
    for (uint32_t i = 0; i < g->nn; i++)
        if (!(g->n[i].flags & IR_N_DEAD) && strcmp(g->n[i].name, name) == 0) {
            if (found != IR_NONE) {
                diag_set(d, ST_ERR_UNSUPPORTED, "%s: two nodes are named '%s'; export finds "
                         "site nodes by name", g->path ? g->path : "model", name);
                return IR_NONE;
            }
            found = i;
        }
    return found;
}

/* the graph's tensor for site s's weight, or an error naming model, site and weight */
static int find_weight(const struct ir_graph *g, const struct pdc_dir *x, const struct dc_site *s,
                       uint32_t *t, struct diag *d)
{
    const char *w = x->h->t[s->weight].name;
    *t = ir_tensor_find(g, w);
    if (*t == IR_NONE)
        return diag_set(d, ST_ERR_INVALID, "%s: site '%s': weight '%s' not found", x->model,
                        s->name, w);
    return ST_OK;
}

/* ---- the plain-weight forms ----------------------------------------------------------- */

static int edit_weights(struct ir_graph *g, const struct pdc_dir *x, const struct export_args *a,
                        struct diag *d)
{
    int site = -1, c = -1;
    const char *colon = strrchr(a->edit, ':');
    if (colon && strchr(colon, ','))
        return diag_set(d, ST_ERR_INVALID, "--edit %s: one component (SITE:c)", a->edit);
    uint8_t *sel = calloc((size_t)max_C(x), 1);
    int st = sel ? parse_spec(x, "--edit", a->edit, &site, sel, d)
                 : diag_set(d, ST_ERR_NOMEM, "out of memory");
    free(sel);
    if (st)
        return st;
    c = (int)strtol(colon + 1, NULL, 10);
    const struct dc_site *s = &x->sites[site];
    struct ir_value v = {0};
    if ((st = npy_read_file(a->vector, &v, d)))
        return st;
    int64_t n = ir_value_numel(&v);
    float *w = n == s->d_out && (v.dtype == IR_F32 || v.dtype == IR_F64) && v.rank == 1
                   ? malloc((size_t)n * sizeof *w) : NULL;
    if (!w)
        st = diag_set(d, ST_ERR_SHAPE, "%s: the write vector must be a float32/float64 vector of "
                      "%lld elements (site '%s' writes [%lld]); got %s rank %d with %lld",
                      a->vector, (long long)s->d_out, s->name, (long long)s->d_out,
                      ir_dtype_name(v.dtype), v.rank, (long long)n);
    for (int64_t k = 0; w && k < n; k++)
        w[k] = (float)ir_load_f64(v.dtype, v.data, k);
    const float *V, *U;
    pdc_dir_factor(x, site, &V, &U);
    struct dc_factor F = x->fac[s->factor];
    if (!st)
        st = find_weight(g, x, s, &F.weight, d);
    if (!st)
        st = dx_edit(g, s, &F, V, U, c, w, a->scale, d);
    free(w);
    ir_value_free(&v);
    return st;
}

/* W' = V·diag(m)·U + Δ per factor; tied uses must ask for the same mask */
static int bake_weights(struct ir_graph *g, const struct pdc_dir *x, float **masks,
                        struct diag *d)
{
    for (int i = 0; i < x->ns; i++) {
        const struct dc_site *s = &x->sites[i];
        for (int k = 0; k < i; k++)
            if (x->sites[k].factor == s->factor && (masks[k] || masks[i]) &&
                (!masks[k] || !masks[i] ||
                 memcmp(masks[k], masks[i], (size_t)s->C * sizeof **masks) != 0))
                return diag_set(d, ST_ERR_INVALID, "--bake: sites '%s' and '%s' share one weight "
                                "but ask for different masks", x->sites[k].name, s->name);
        int first = 1;
        for (int k = 0; k < i; k++)
            first &= x->sites[k].factor != s->factor;
        if (!first || !masks[i])
            continue;
        const float *V, *U;
        pdc_dir_factor(x, i, &V, &U);
        struct dc_factor F = x->fac[s->factor];
        int st = find_weight(g, x, s, &F.weight, d);
        if (!st)
            st = dx_bake(g, &F, V, U, masks[i], d);
        if (st)
            return st;
    }
    return ST_OK;
}

/* ---- the factorised forms ------------------------------------------------------------- */

static int factorise(struct ir_graph *g, const struct pdc_dir *x, const struct export_args *a,
                     float **masks, uint32_t **defaults, struct diag *d)
{
    struct symmap m;
    sym_values(g, x->h, &m);
    output_types(g, x->h, &m);
    struct dx_site *xs = calloc((size_t)x->ns + 1, sizeof *xs);
    struct dc_factor *fac = malloc(((size_t)x->nf + 1) * sizeof *fac);
    if (!xs || !fac) {
        free(xs);
        free(fac);
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    int st = ST_OK, ci = strcmp(a->form, "ci") == 0;
    for (int f = 0; f < x->nf; f++) { /* the same factors, their weights in g */
        fac[f] = x->fac[f];
        fac[f].weight = ir_tensor_find(g, x->h->t[x->fac[f].weight].name);
    }
    for (int i = 0; !st && i < x->ns; i++) {
        const struct dc_site *s = &x->sites[i];
        xs[i].s = s;
        xs[i].node = find_node(g, x->h->n[s->node].name, d);
        if (d->status)
            st = d->status;
        else if (xs[i].node == IR_NONE || fac[s->factor].weight == IR_NONE)
            st = diag_set(d, ST_ERR_INVALID, "%s: site '%s': node '%s' not found in the model",
                          x->model, s->name, x->h->n[s->node].name);
        site_positions(x->h, s, &m, &xs[i]);
        pdc_dir_factor(x, i, &xs[i].V, &xs[i].U);
        xs[i].mode = masks[i] ? DX_MASK_CONST : ci ? DX_MASK_CI : DX_MASK_INPUT;
        xs[i].mask = masks[i];
        xs[i].group = pdc_dir_rank(x, i);
    }
    struct dx_ci cf = {&x->c, x->vals, x->nvals, a->threshold};
    if (!st)
        st = dx_factorise(g, xs, x->ns, fac, ci ? &cf : NULL, defaults, d);
    free(xs);
    free(fac);
    return st;
}

/* ---- entry ------------------------------------------------------------------------------ */

static size_t constant_bytes(const struct ir_graph *g)
{
    size_t n = 0;
    for (uint32_t t = 0; t < g->nt; t++)
        n += g->t[t].data ? g->t[t].nbytes : 0;
    return n;
}

/* ---- an L3D folder: a baked intervention ------------------------------------------------ */

/* "K:D[,K:D..]" (each --intervene may list several) into k[], delta[] */
static int parse_intervene(const struct export_args *a, const struct dc_config *c, long *k,
                           double *delta, int *n, struct diag *d)
{
    *n = 0;
    for (int i = 0; i < a->n_intervene; i++)
        for (const char *p = a->intervene[i]; *p;) {
            char *e, *f;
            long kk = strtol(p, &e, 10);
            double dd = e != p && *e == ':' ? strtod(e + 1, &f) : 0;
            if (e == p || *e != ':' || f == e + 1 || (*f && *f != ',') || !(dd - dd == 0))
                return diag_set(d, ST_ERR_INVALID, "--intervene %s: expected K:D[,K:D...] "
                                "(subnetwork index : finite delta)", a->intervene[i]);
            if (kk < 0 || kk >= c->l3d.n_subnets)
                return diag_set(d, ST_ERR_INVALID, "--intervene %s: subnetwork %ld is not in "
                                "[0, %d)", a->intervene[i], kk, c->l3d.n_subnets);
            if (*n == MAX_SPECS)
                return diag_set(d, ST_ERR_INVALID, "--intervene: more than %d terms", MAX_SPECS);
            k[*n] = kk, delta[(*n)++] = dd;
            p = *f ? f + 1 : f;
        }
    return ST_OK;
}

/* the compiled copy whose output types the plain import takes (as pdc_dir.c's copy:
 * the probe batch where the batch dim is symbolic, the probe sequence, else the run's) */
static int l3d_copy(const struct ir_graph *g, const char *model, const struct dc_config *c,
                    struct ir_graph **h, struct diag *d)
{
    struct dc_config cb = *c;
    const struct ir_tensor *t = g->n_inputs ? &g->t[g->inputs[0]] : NULL;
    cb.batch_size = t && t->rank >= 1 && t->sym[0] < 0 && t->dims[0] > 0 ? t->dims[0]
                                                                          : PROBE_BATCH;
    cb.data_seq = PROBE_SEQ;
    int st = pdc_compiled_model(model, &cb, h, d);
    if ((st == ST_ERR_SHAPE || st == ST_ERR_INVALID) && c->data_seq > 0 &&
        c->data_seq != PROBE_SEQ) {
        struct diag first = *d;
        *d = (struct diag){0};
        cb.data_seq = c->data_seq;
        if ((st = pdc_compiled_model(model, &cb, h, d)))
            *d = first;
    }
    return st;
}

static int export_l3d(const struct export_args *a, const char *model, const struct dc_config *c,
                      struct diag *d)
{
    const char *other = a->form_set ? "--form" : a->n_ablate ? "--ablate" : a->n_keep ? "--keep"
                        : a->bake ? "--bake" : a->edit ? "--edit" : NULL;
    if (other)
        return diag_set(d, ST_ERR_UNSUPPORTED, "%s: an L3D decomposition (method l3d) has no "
                        "per-site masks or CI function: %s does not apply; it exports as a baked "
                        "intervention, --intervene K:D[,K:D...]", a->dir, other);
    if (!a->n_intervene)
        return diag_set(d, ST_ERR_INVALID, "%s: an L3D decomposition (method l3d) exports as a "
                        "baked intervention: give --intervene K:D[,K:D...] (W + D·v_K in every "
                        "decomposed tensor)", a->dir);
    long k[MAX_SPECS];
    double delta[MAX_SPECS];
    int n = 0;
    struct ir_graph *g = NULL, *h = NULL;
    int st = parse_intervene(a, c, k, delta, &n, d);
    if (!st)
        st = onnx_load_file(model, &g, d);
    if (!st)
        st = l3d_copy(g, model, c, &h, d);
    if (!st) {
        struct symmap m;
        sym_values(g, h, &m);
        output_types(g, h, &m);
        st = pdc_l3d_move(a->dir, model, c, g, k, delta, n, d);
    }
    struct onnx_export_opts o = {.producer = "pdc export"};
    if (!st) {
        o.external_threshold = a->ext_threshold >= 0 ? (size_t)a->ext_threshold
                               : constant_bytes(g) > EXTERNAL_AT ? 1024 : 0;
        st = onnx_save_file(g, a->out, &o, d);
    }
    if (!st) {
        printf("wrote %s: %s with every decomposed tensor moved to W +", a->out, model);
        for (int i = 0; i < n; i++)
            printf("%s %g·v_%ld", i ? " +" : "", delta[i], k[i]);
        printf("%s\n", o.external_threshold ? ", external data" : "");
    }
    ir_graph_free(h);
    ir_graph_free(g);
    return st;
}

/* the folder's method from its resolved config: an L3D folder goes to export_l3d */
static int export_dir(const struct export_args *a, struct diag *d);

static int export_any(const struct export_args *a, struct diag *d)
{
    char model[4096], path[4200];
    struct dc_config *c = malloc(sizeof *c);
    if (!c)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    dc_config_defaults(c, "spd");
    c->method[0] = '\0'; /* the saved, fully resolved config names its method */
    snprintf(path, sizeof path, "%s/config.yaml", a->dir);
    int st = pdc_dir_model(a->dir, model, sizeof model, d);
    if (!st)
        st = pdc_config_load(path, c, d);
    if (!st && strcmp(c->method, "l3d") == 0)
        st = export_l3d(a, model, c, d);
    else if (!st && a->n_intervene)
        st = diag_set(d, ST_ERR_UNSUPPORTED, "--intervene: %s is a '%s' decomposition; "
                      "--intervene bakes an L3D (method l3d) subnetwork intervention (use "
                      "--ablate/--keep/--bake/--edit for it)", a->dir, c->method);
    else if (!st)
        st = export_dir(a, d);
    free(c);
    return st;
}

static int export_dir(const struct export_args *a, struct diag *d)
{
    struct pdc_dir x;
    struct ir_graph *g = NULL;
    float **masks = NULL;
    uint32_t *defaults = NULL;
    int st = pdc_dir_open(a->dir, -PROBE_BATCH, PROBE_SEQ, &x, d);
    if (st)
        return st;
    if (pdc_dir_apd(&x) && (strcmp(a->form, "ci") == 0 || a->edit))
        st = diag_set(d, ST_ERR_UNSUPPORTED, "%s: an APD decomposition (method apd) has %s",
                      a->dir, a->edit ? "rank-m components with no single write vector: --edit "
                      "does not apply" : "no CI function: --form ci does not apply (use the "
                      "factorised form with masks as inputs, --ablate/--keep or --bake)");
    if (!st && !(masks = calloc((size_t)x.ns + 1, sizeof *masks)))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = build_masks(&x, a, masks, d);
    if (!st)
        st = onnx_load_file(x.model, &g, d);
    if (!st && (a->bake || a->edit)) {
        struct symmap m;
        sym_values(g, x.h, &m);
        output_types(g, x.h, &m);
        st = bake_weights(g, &x, masks, d);
        if (!st && a->edit)
            st = edit_weights(g, &x, a, d);
    } else if (!st) {
        st = factorise(g, &x, a, masks, &defaults, d);
    }
    struct onnx_export_opts o = {.producer = "pdc export", .input_defaults = defaults};
    if (!st) {
        o.external_threshold = a->ext_threshold >= 0 ? (size_t)a->ext_threshold
                               : constant_bytes(g) > EXTERNAL_AT ? 1024 : 0;
        st = onnx_save_file(g, a->out, &o, d);
    }
    if (!st)
        printf("wrote %s: %s form of %s, %d sites%s%s\n", a->out,
               a->bake || a->edit ? "plain-weight" : a->form, x.model, x.ns,
               a->edit ? ", edited" : "", o.external_threshold ? ", external data" : "");
    for (int i = 0; masks && i < x.ns; i++)
        free(masks[i]);
    free(masks);
    free(defaults);
    ir_graph_free(g);
    pdc_dir_close(&x);
    return st;
}

int pdc_export_main(int argc, char **argv)
{
    struct export_args a;
    struct diag d = {0};
    if (parse_args(argc, argv, &a, &d) || export_any(&a, &d)) {
        fprintf(stderr, "pdc: %s\n", d.msg);
        return 1;
    }
    return 0;
}
