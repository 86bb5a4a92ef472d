/* test_ci_transformer.c — the global_shared_transformer CI function
 * (passes/ci_fn_transformer.c) against an oracle written here from METHOD.md §2.3:
 * plain loops in double over the definition (per-site weightless RMS norm with
 * torch's ε, sites in name order, proj_in, pre-norm blocks of RoPE multi-head
 * attention and a GELU MLP, proj_out, split), reading the program's own parameter
 * values. Cases: two sites on [B, T] = [2, 3] positions and a toy [4] (T = 1),
 * d_model 8, 2 heads, 2 blocks, MLP 16, on the reference and the default target.
 * The targets name their sites so that name order is the reverse of graph order.
 * Gradients of Σ w⊙z through the autodiff pass against central differences of the
 * oracle (double) and of the program itself (float). Errors: sites with different
 * positions, a sequence longer than max_len, inconsistent sizes, a Gather site. */
#include <float.h>

#include "decompose_fixture.h"

#define D_MODEL 8
#define N_HEADS 2
#define N_BLOCKS 2
#define MAXP 64 /* parameter tensors */

/* x [2, 3, 4] → MatMul z_in [4, 6] → Relu → MatMul a_out [6, 5] */
static int build_seq(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[3] = {2, 3, 4}, w1[2] = {4, 6}, w2[2] = {6, 5};
    uint32_t x = g_input(g, "x", IR_F32, 3, xd);
    uint32_t h = bld_op1(&b, IR_OP_Relu, bld_matmul(&b, x, g_param(&b, "z_in", 2, w1, 0.8)));
    return finish_graph(g, &b, bld_matmul(&b, h, g_param(&b, "a_out", 2, w2, 0.5)), d);
}

/* x [4, 5] → MatMul z_in [5, 3] → Relu → MatMul a_out [3, 5] */
static int build_toy(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[2] = {4, 5}, w1[2] = {5, 3}, w2[2] = {3, 5};
    uint32_t x = g_input(g, "x", IR_F32, 2, xd);
    uint32_t h = bld_op1(&b, IR_OP_Relu, bld_matmul(&b, x, g_param(&b, "z_in", 2, w1, 0.8)));
    return finish_graph(g, &b, bld_matmul(&b, h, g_param(&b, "a_out", 2, w2, 0.5)), d);
}

/* the same six rows seen as [2, 3] by one site and as [6] by the next */
static int build_mixed(struct ir_graph **out, struct diag *d)
{
    struct ir_builder b;
    struct ir_graph *g = *out = new_graph(&b, d);
    int64_t xd[3] = {2, 3, 4}, w1[2] = {4, 6}, w2[2] = {6, 5}, flat[2] = {6, 6};
    uint32_t x = g_input(g, "x", IR_F32, 3, xd);
    uint32_t h = bld_matmul(&b, x, g_param(&b, "z_in", 2, w1, 0.8));
    h = bld_reshape(&b, h, 2, flat);
    return finish_graph(g, &b, bld_matmul(&b, h, g_param(&b, "a_out", 2, w2, 0.5)), d);
}

struct tcase {
    const char *name;
    build_fn bf;
    int64_t B, T;
    int n_mlp, mlp[2];
    double rope_base;
    double x_scale; /* of the data (U(−1, 1) · x_scale): tiny inputs make the RMS ε matter */
};

static const struct tcase SEQ = {"seq [2,3]", build_seq, 2, 3, 1, {16, 0}, 10000.0, 1.0};
static const struct tcase TOY = {"toy [4]", build_toy, 4, 1, 1, {16, 0}, 10000.0, 1.0};
/* a small base turns the higher RoPE frequencies up; two hidden MLP layers */
static const struct tcase SEQ2 = {"seq, base 3, mlp [16,12]", build_seq, 2, 3, 2, {16, 12}, 3.0,
                                  1.0};
/* mean(x²) ≈ 3e-9, well below ε ≈ 1.2e-7: the site norms then depend on ε's value */
static const struct tcase TINY = {"seq, tiny inputs", build_seq, 2, 3, 1, {16, 0}, 10000.0, 1e-4};

static void tf_config(struct dc_config *c, const struct tcase *tc)
{
    dc_config_defaults(c, "spd");
    c->ci_fn_type = DC_CI_GLOBAL_SHARED_TRANSFORMER;
    c->ci_tf.d_model = D_MODEL;
    c->ci_tf.n_blocks = N_BLOCKS;
    c->ci_tf.n_heads = N_HEADS;
    c->ci_tf.n_mlp_hidden = tc->n_mlp;
    for (int i = 0; i < tc->n_mlp; i++)
        c->ci_tf.mlp_hidden_dim[i] = tc->mlp[i];
    c->ci_tf.rope_base = tc->rope_base;
    c->n_sites = 2;
    c->sites[0] = (struct dc_site_spec){"z_in", 5};
    c->sites[1] = (struct dc_site_spec){"a_out", 3};
}

/* ---- the program: z of every site (metrics 0, 1); with grad, the loss Σ w⊙z and
 * the gradient of every CI state (metrics 2..) ------------------------------------ */

struct tf_run {
    struct run r;
    float *w[2];     /* the loss weights, shaped like z */
    int ngrad;
    int gstate[MAXP]; /* state index of each gradient metric */
};

static uint32_t weighted_sum(struct dc_ctx *cx, struct tf_run *t)
{
    struct ir_builder *b = &cx->b;
    uint32_t loss = IR_NONE;
    for (int i = 0; i < 2; i++) {
        const struct ir_tensor *z = &cx->g->t[cx->s[i].z];
        int64_t dims[IR_MAX_RANK], n = ir_numel(z);
        memcpy(dims, z->dims, sizeof dims);
        t->w[i] = rand_vec(n, M_RANDOM, 0);
        for (int64_t k = 0; k < n; k++)
            t->w[i][k] = 2 * t->w[i][k] - 1;
        uint32_t wk = bld_const(b, IR_F32, z->rank, dims, t->w[i]);
        uint32_t s = bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, cx->s[i].z, wk), 0, NULL, 0);
        loss = loss == IR_NONE ? s : bld_add(b, loss, s);
    }
    return loss;
}

static int add_grads(struct dc_ctx *cx, struct tf_run *t)
{
    uint32_t loss = weighted_sum(cx, t), wrt[MAXP], grads[MAXP];
    struct dc_prog *p = cx->prog;
    t->ngrad = 0;
    for (int k = 0; k < p->n_st && t->ngrad < MAXP; k++)
        if (p->st[k].trainable == DC_TRAIN_CI) {
            t->gstate[t->ngrad] = k;
            wrt[t->ngrad++] = p->st[k].t;
        }
    if (cx->b.err || pass_autodiff(cx->g, loss, (uint32_t)t->ngrad, wrt, grads, cx->b.d))
        return cx->b.err ? cx->b.err : (int)cx->b.d->status;
    p->loss = loss;
    for (int k = 0; k < t->ngrad; k++)
        dc_metric(cx, "grad", grads[k]);
    return ST_OK;
}

/* build and run; r->x, the states' values (random), the buffers stay in t->r.rp */
static int tf_run(const struct tcase *tc, const struct dc_config *c, const struct cg_target *tgt,
                  int grad, struct tf_run *t, struct diag *d)
{
    struct run *r = &t->r;
    struct ir_graph *g;
    struct dc_ctx cx;
    memset(t, 0, sizeof *t);
    int st = tc->bf(&g, d);
    if (!st)
        st = dc_select_sites(g, c, &r->sites, &r->ns, &r->fac, &r->nf, d);
    if (st || r->ns != 2) {
        ir_graph_free(g);
        return st ? st : ST_ERR_INVALID;
    }
    st = dc_ctx_init(&cx, g, c, r->sites, r->ns, r->fac, r->nf, &r->prog, "t", d);
    if (!st)
        st = dc_factors(&cx);
    if (!st)
        st = dc_ci_fn(&cx);
    for (int i = 0; !st && i < 2; i++)
        dc_metric(&cx, "z", cx.s[i].z);
    if (!st && grad)
        st = add_grads(&cx, t);
    if (!st)
        st = dc_finish(&cx);
    uint32_t data = cx.data;
    dc_ctx_fini(&cx);
    if (!r->prog.g)
        ir_graph_free(g);
    if (st || (st = rt_prog_new(r->prog.g, tgt, &r->rp, d)))
        return st;
    const struct ir_tensor *xt = &r->prog.g->t[data];
    r->x = rand_input(xt, 0);
    for (int64_t k = 0; k < ir_numel(xt); k++)
        ((float *)r->x)[k] *= (float)tc->x_scale;
    memcpy(rt_prog_buf(r->rp, data), r->x, rt_tensor_bytes(xt));
    fill_states(r->rp, r);
    return rt_prog_run(r->rp, d);
}

static void tf_free(struct tf_run *t)
{
    free(t->w[0]);
    free(t->w[1]);
    run_free(&t->r);
}

/* ---- the oracle ------------------------------------------------------------------ */

struct params { /* the CI states in double, by name */
    int n;
    char name[MAXP][256];
    double *v[MAXP];
    long numel[MAXP];
};

static void params_load(struct params *P, const struct tf_run *t)
{
    const struct dc_prog *p = &t->r.prog;
    P->n = 0;
    for (int k = 0; k < p->n_st && P->n < MAXP; k++) {
        if (strncmp(p->st[k].name, "ci.", 3) != 0)
            continue;
        long n = (long)ir_numel(&p->g->t[p->st[k].t]);
        const float *f = rt_prog_buf(t->r.rp, p->st[k].t);
        snprintf(P->name[P->n], sizeof P->name[0], "%s", p->st[k].name);
        P->v[P->n] = malloc((size_t)n * sizeof(double));
        P->numel[P->n] = n;
        for (long i = 0; i < n; i++)
            P->v[P->n][i] = (double)f[i];
        P->n++;
    }
}

static void params_free(struct params *P)
{
    for (int i = 0; i < P->n; i++)
        free(P->v[i]);
}

static const double *pv(const struct params *P, const char *fmt, int a)
{
    char nm[160], full[200];
    snprintf(nm, sizeof nm, fmt, a);
    snprintf(full, sizeof full, "ci.transformer.%s", nm);
    for (int i = 0; i < P->n; i++)
        if (strcmp(P->name[i], full) == 0)
            return P->v[i];
    fprintf(stderr, "  oracle: no parameter %s\n", full);
    abort();
}

/* y [out] = x [in] · W [in, out] (+ b) */
static void lin(const double *x, const double *W, const double *b, int in, int out, double *y)
{
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < in; i++)
            s += x[i] * W[i * out + o];
        y[o] = s;
    }
}

static void rmsnorm(const double *x, int n, double *y)
{
    double ms = 0;
    for (int i = 0; i < n; i++)
        ms += x[i] * x[i];
    double r = sqrt(ms / n + (double)FLT_EPSILON); /* torch: finfo(float32).eps */
    for (int i = 0; i < n; i++)
        y[i] = x[i] / r;
}

static double gelu(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

/* rotate the pairs (j, j + dh/2) of one head's vector at position t */
static void rope1(double *v, int dh, int64_t t, double base)
{
    for (int j = 0; j < dh / 2; j++) {
        double th = (double)t * pow(base, -2.0 * j / dh), x1 = v[j], x2 = v[j + dh / 2];
        v[j] = x1 * cos(th) - x2 * sin(th);
        v[j + dh / 2] = x2 * cos(th) + x1 * sin(th);
    }
}

#define MAXN 8
#define MAXW 32

/* x [N, D] += Attn(rms(x)) for block blk; rows n = b·T + t */
static void attn_block(const struct params *P, const struct tcase *tc, int blk,
                       double (*x)[D_MODEL])
{
    int N = (int)(tc->B * tc->T), T = (int)tc->T, dh = D_MODEL / N_HEADS;
    double q[MAXN][D_MODEL], k[MAXN][D_MODEL], v[MAXN][D_MODEL], o[MAXN][D_MODEL], a[D_MODEL];
    for (int n = 0; n < N; n++) {
        rmsnorm(x[n], D_MODEL, a);
        lin(a, pv(P, "block%d.attn.q", blk), NULL, D_MODEL, D_MODEL, q[n]);
        lin(a, pv(P, "block%d.attn.k", blk), NULL, D_MODEL, D_MODEL, k[n]);
        lin(a, pv(P, "block%d.attn.v", blk), NULL, D_MODEL, D_MODEL, v[n]);
        for (int h = 0; h < N_HEADS; h++) {
            rope1(q[n] + h * dh, dh, n % T, tc->rope_base);
            rope1(k[n] + h * dh, dh, n % T, tc->rope_base);
        }
    }
    for (int n = 0; n < N; n++) {
        int row0 = n - n % T; /* attention stays inside the batch row */
        for (int h = 0; h < N_HEADS; h++) {
            double s[MAXN], mx = -1e300, sum = 0;
            for (int u = 0; u < T; u++) {
                s[u] = 0;
                for (int j = 0; j < dh; j++)
                    s[u] += q[n][h * dh + j] * k[row0 + u][h * dh + j];
                s[u] /= sqrt((double)dh);
                mx = fmax(mx, s[u]);
            }
            for (int u = 0; u < T; u++)
                sum += (s[u] = exp(s[u] - mx));
            for (int j = 0; j < dh; j++) {
                o[n][h * dh + j] = 0;
                for (int u = 0; u < T; u++)
                    o[n][h * dh + j] += s[u] / sum * v[row0 + u][h * dh + j];
            }
        }
    }
    for (int n = 0; n < N; n++) {
        double y[D_MODEL];
        lin(o[n], pv(P, "block%d.attn.o", blk), NULL, D_MODEL, D_MODEL, y);
        for (int j = 0; j < D_MODEL; j++)
            x[n][j] += y[j];
    }
}

static void mlp_block(const struct params *P, const struct tcase *tc, int blk, double *x)
{
    double a[MAXW], h[MAXW], y[D_MODEL];
    char nw[64], nb[64];
    int in = D_MODEL;
    rmsnorm(x, D_MODEL, a);
    for (int l = 0; l <= tc->n_mlp; l++) {
        int out = l < tc->n_mlp ? tc->mlp[l] : D_MODEL;
        snprintf(nw, sizeof nw, "block%%d.mlp.%d.W", l);
        snprintf(nb, sizeof nb, "block%%d.mlp.%d.b", l);
        lin(a, pv(P, nw, blk), pv(P, nb, blk), in, out, l < tc->n_mlp ? h : y);
        for (int j = 0; l < tc->n_mlp && j < out; j++)
            a[j] = gelu(h[j]);
        in = out;
    }
    for (int j = 0; j < D_MODEL; j++)
        x[j] += y[j];
}

/* z of each site (graph order, [N, C_i]) from the site rows (graph order, [N, d_i]) */
static void oracle(const struct params *P, const struct tcase *tc, const struct run *r,
                   double *const *rows, double **z)
{
    int N = (int)(tc->B * tc->T), ord[2] = {0, 1}, din = 0, ctot = 0;
    if (strcmp(r->sites[0].name, r->sites[1].name) > 0) { /* concatenation in name order */
        ord[0] = 1;
        ord[1] = 0;
    }
    for (int i = 0; i < 2; i++) {
        din += (int)r->sites[i].d_in;
        ctot += r->sites[i].C;
    }
    double x[MAXN][D_MODEL];
    for (int n = 0; n < N; n++) {
        double u[64];
        int off = 0;
        for (int k = 0; k < 2; k++) {
            int i = ord[k], di = (int)r->sites[i].d_in;
            rmsnorm(rows[i] + n * di, di, u + off);
            off += di;
        }
        lin(u, pv(P, "proj_in.W", 0), pv(P, "proj_in.b", 0), din, D_MODEL, x[n]);
    }
    for (int blk = 0; blk < N_BLOCKS; blk++) {
        attn_block(P, tc, blk, x);
        for (int n = 0; n < N; n++)
            mlp_block(P, tc, blk, x[n]);
    }
    for (int n = 0; n < N; n++) {
        double zc[64];
        lin(x[n], pv(P, "proj_out.W", 0), pv(P, "proj_out.b", 0), D_MODEL, ctot, zc);
        for (int k = 0, off = 0; k < 2; k++) {
            int i = ord[k], C = r->sites[i].C;
            for (int c = 0; c < C; c++)
                z[i][n * C + c] = zc[off + c];
            off += C;
        }
    }
}

/* the sites' clean input rows, from the definition of the targets: z_in reads x,
 * a_out reads relu(x · W_z_in) */
static void site_rows(const struct run *r, int N, double **rows)
{
    const float *x = r->x, *W = weight(r, "z_in");
    int64_t din = 0, dh = 0;
    for (int i = 0; i < 2; i++) {
        if (strcmp(r->sites[i].name, "z_in") == 0)
            din = r->sites[i].d_in, dh = r->sites[i ^ 1].d_in;
    }
    for (int i = 0; i < 2; i++) {
        int is_z = strcmp(r->sites[i].name, "z_in") == 0;
        rows[i] = malloc((size_t)(N * r->sites[i].d_in) * sizeof(double));
        for (int n = 0; n < N; n++)
            for (int64_t o = 0; o < r->sites[i].d_in; o++) {
                double s = 0;
                if (is_z) {
                    s = (double)x[n * din + o];
                } else {
                    for (int64_t a = 0; a < din; a++)
                        s += (double)x[n * din + a] * (double)W[a * dh + o];
                    s = s > 0 ? s : 0;
                }
                rows[i][n * r->sites[i].d_in + o] = s;
            }
    }
}

static double oracle_loss(const struct params *P, const struct tcase *tc, const struct tf_run *t,
                          double *const *rows)
{
    int N = (int)(tc->B * tc->T);
    double *z[2], L = 0;
    for (int i = 0; i < 2; i++)
        z[i] = malloc((size_t)(N * t->r.sites[i].C) * sizeof(double));
    oracle(P, tc, &t->r, rows, z);
    for (int i = 0; i < 2; i++) {
        for (long k = 0; k < N * t->r.sites[i].C; k++)
            L += (double)t->w[i][k] * z[i][k];
        free(z[i]);
    }
    return L;
}

/* ---- tests ---------------------------------------------------------------------- */

static void check_forward(const struct tcase *tc, const struct cg_target *tgt)
{
    struct dc_config c;
    struct tf_run t;
    struct diag d = {0};
    tf_config(&c, tc);
    rng_state = 4242;
    int st = tf_run(tc, &c, tgt, 0, &t, &d);
    if (st)
        fprintf(stderr, "  %s: %s\n", tc->name, d.msg);
    CHECK(st == 0);
    if (!st) {
        int N = (int)(tc->B * tc->T);
        struct params P;
        double *rows[2], *z[2];
        params_load(&P, &t);
        CHECK_EQ(P.n, 4 + N_BLOCKS * (4 + 2 * (tc->n_mlp + 1))); /* nothing but ci.transformer */
        site_rows(&t.r, N, rows);
        for (int i = 0; i < 2; i++)
            z[i] = malloc((size_t)(N * t.r.sites[i].C) * sizeof(double));
        oracle(&P, tc, &t.r, rows, z);
        for (int i = 0; i < 2; i++) {
            const struct ir_tensor *zt = &t.r.prog.g->t[t.r.prog.metric[i].t];
            long n = (long)(N * t.r.sites[i].C);
            float *want = malloc((size_t)n * sizeof *want);
            for (long k = 0; k < n; k++)
                want[k] = (float)z[i][k];
            CHECK_EQ(ir_numel(zt), n);
            CHECK_EQ(zt->dims[zt->rank - 1], t.r.sites[i].C);
            CHECK_EQ(zt->dims[0], tc->T > 1 ? tc->B : N); /* z keeps the site's positions */
            const float *got = rt_prog_buf(t.r.rp, t.r.prog.metric[i].t);
            if (!CHECK_TENSOR(got, want, n, 1e-5, 1e-5))
                fprintf(stderr, "  (%s, site %s, target %s)\n", tc->name, t.r.sites[i].name,
                        tgt == &cg_ref ? "ref" : "default");
            free(want);
            free(z[i]);
            free(rows[i]);
        }
        params_free(&P);
    }
    tf_free(&t);
}

TEST(oracle_seq)
{
    check_forward(&SEQ, &cg_ref);
    check_forward(&SEQ, cg_default());
}

TEST(oracle_toy)
{
    check_forward(&TOY, &cg_ref);
    check_forward(&TOY, cg_default());
}

TEST(oracle_small_rope_base_two_hidden)
{
    check_forward(&SEQ2, &cg_ref);
}

TEST(oracle_rms_eps)
{
    check_forward(&TINY, &cg_ref);
}

/* the program's d(Σ w⊙z)/dθ against central differences of the oracle in double */
static int fd_oracle(const struct tcase *tc, struct tf_run *t, struct params *P, double **rows,
                     int pi, const float *g, double *worst)
{
    int bad = 0;
    for (long e = 0; e < P->numel[pi]; e++) {
        double keep = P->v[pi][e], h = 1e-5;
        P->v[pi][e] = keep + h;
        double up = oracle_loss(P, tc, t, rows);
        P->v[pi][e] = keep - h;
        double dn = oracle_loss(P, tc, t, rows);
        P->v[pi][e] = keep;
        double fd = (up - dn) / (2 * h), a = (double)g[e], dl = fabs(fd - a);
        *worst = fmax(*worst, dl / (fmax(fabs(fd), fabs(a)) + 1e-3));
        if (dl <= 1e-4 * fmax(fabs(fd), fabs(a)) + 2e-5)
            continue;
        if (bad++ < 3)
            fprintf(stderr, "  d/d %s[%ld]: program %.8g, central difference %.8g NOT OK\n",
                    P->name[pi], e, a, fd);
        test_failed_ = 1;
    }
    return bad;
}

/* the same through the program in float: a few entries, a coarse step */
static void fd_program(struct tf_run *t, int k, const float *g)
{
    const struct dc_state *s = &t->r.prog.st[t->gstate[k]];
    float *p = rt_prog_buf(t->r.rp, s->t);
    const float *loss = rt_prog_buf(t->r.rp, t->r.prog.loss);
    long n = (long)ir_numel(&t->r.prog.g->t[s->t]);
    struct diag d = {0};
    for (long e = 0; e < n; e += n / 3 + 1) {
        float keep = p[e];
        double hs[2] = {1e-2, -1e-2}, L[2];
        for (int j = 0; j < 2; j++) {
            p[e] = (float)((double)keep + hs[j]);
            CHECK(rt_prog_run(t->r.rp, &d) == 0);
            L[j] = (double)*loss;
        }
        double dx = (double)(float)((double)keep + 1e-2) - (double)(float)((double)keep - 1e-2);
        p[e] = keep;
        CHECK(rt_prog_run(t->r.rp, &d) == 0); /* every buffer back at the unperturbed point */
        double fd = (L[0] - L[1]) / dx;
        if (fabs(fd - (double)g[e]) > 2e-2 * fmax(fabs(fd), fabs((double)g[e])) + 2e-3) {
            fprintf(stderr, "  d/d %s[%ld]: program %.6g, float central difference %.6g NOT OK\n",
                    s->name, e, (double)g[e], fd);
            test_failed_ = 1;
        }
    }
}

static void check_grads(const struct tcase *tc)
{
    struct dc_config c;
    struct tf_run t;
    struct diag d = {0};
    tf_config(&c, tc);
    rng_state = 777;
    int st = tf_run(tc, &c, &cg_ref, 1, &t, &d);
    if (st)
        fprintf(stderr, "  %s: %s\n", tc->name, d.msg);
    CHECK(st == 0);
    if (st) {
        tf_free(&t);
        return;
    }
    int N = (int)(tc->B * tc->T), checked = 0, bad = 0;
    struct params P;
    double *rows[2], worst = 0;
    params_load(&P, &t);
    site_rows(&t.r, N, rows);
    for (int k = 0; k < t.ngrad; k++) { /* the gradients were computed at the values run */
        const char *nm = t.r.prog.st[t.gstate[k]].name;
        long n = (long)ir_numel(&t.r.prog.g->t[t.r.prog.st[t.gstate[k]].t]);
        float *g = malloc((size_t)n * sizeof *g);
        memcpy(g, rt_prog_buf(t.r.rp, t.r.prog.metric[2 + k].t), (size_t)n * sizeof *g);
        for (int pi = 0; pi < P.n; pi++)
            if (strcmp(P.name[pi], nm) == 0) {
                bad += fd_oracle(tc, &t, &P, rows, pi, g, &worst);
                checked++;
            }
        if (strstr(nm, "proj_in.W") || strstr(nm, "block1.attn.q") || strstr(nm, "block0.mlp.0.b"))
            fd_program(&t, k, g);
        free(g);
    }
    CHECK_EQ(checked, P.n);
    printf("  %s: %d tensors, max relative |grad - fd| %.2g, %d entries off\n", tc->name, checked,
           worst, bad);
    for (int i = 0; i < 2; i++)
        free(rows[i]);
    params_free(&P);
    tf_free(&t);
}

TEST(gradients_seq)
{
    check_grads(&SEQ);
}

TEST(gradients_toy)
{
    check_grads(&TOY);
}

static int build_expect_error(build_fn bf, const struct dc_config *c, struct diag *d)
{
    struct tcase tc = {"error", bf, 0, 0, 0, {0, 0}, 1e4, 1.0};
    struct tf_run t;
    int st = tf_run(&tc, c, &cg_ref, 0, &t, d);
    tf_free(&t);
    return st;
}

TEST(refusals)
{
    struct dc_config c;
    struct diag d = {0};
    tf_config(&c, &SEQ);
    CHECK_EQ(build_expect_error(build_mixed, &c, &d), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d.msg, "different positions");
    c.ci_tf.max_len = 2;
    memset(&d, 0, sizeof d);
    CHECK_EQ(build_expect_error(build_seq, &c, &d), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(d.msg, "attn_config.max_len");
    tf_config(&c, &SEQ);
    c.ci_tf.n_heads = 3;
    memset(&d, 0, sizeof d);
    CHECK_EQ(build_expect_error(build_seq, &c, &d), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(d.msg, "n_heads: 3 does not divide d_model 8");
    c.ci_tf.n_heads = 8; /* d_head 1: RoPE needs pairs */
    memset(&d, 0, sizeof d);
    CHECK_EQ(build_expect_error(build_seq, &c, &d), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(d.msg, "must be even for RoPE");
    c.ci_tf.n_heads = N_HEADS;
    c.ci_tf.d_model = 0;
    memset(&d, 0, sizeof d);
    CHECK_EQ(build_expect_error(build_seq, &c, &d), ST_ERR_INVALID);
    CHECK_STR_CONTAINS(d.msg, "d_model: 0 is not in [1, 65536] (it is required");
    /* an embedding's rows are one-hot: only the per-component mlp CI takes it */
    tf_config(&c, &SEQ);
    select_all(&c);
    memset(&d, 0, sizeof d);
    CHECK_EQ(build_expect_error(build_embed, &c, &d), ST_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(d.msg, "'wte' (Gather)");
}

static const struct test_case tests[] = {
    T(oracle_seq),    T(oracle_toy),    T(oracle_small_rope_base_two_hidden),
    T(oracle_rms_eps), T(gradients_seq), T(gradients_toy), T(refusals),
};

TEST_MAIN(tests)
