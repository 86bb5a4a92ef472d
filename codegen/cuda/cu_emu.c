/* cu_emu.c — the CUDA target run on the host (target.h cg_cuda_emu): HOST
 * EMULATION, no GPU involved. Each node is lowered exactly as the GPU target
 * lowers it (cu_lower.c), and each launch is executed by walking the blocks and
 * threads the device kernel would run, calling the same per-element code
 * (cu_ops.h); fused groups run as the emitter's emulated PTX kernels; GEMMs as the
 * cuBLAS calls the GPU target issues, through a plain column-major sgemm; random
 * draws through the device's Philox code. Memory goes through cg_mem, as a GPU's
 * does. What it cannot check: the CUDA C kernel bodies' synchronisation, the
 * driver, cuBLAS itself. */
#ifdef PDC_HAVE_LLVM

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fuse.h"
#include "../llvm/llvm_impl.h"
#include "../target.h"
#include "cu_lower.h"
#include "cu_philox.h"

#define MAX_CALLS 4096

/* ---- the generic kernels, block by block ------------------------------------ */

static void emu_map(const struct cu_map *m, const char *x, char *y)
{
    for (int64_t i = 0; i < m->n; i++) {
        int64_t xo, yo;
        cu_map_at(m, i, &xo, &yo);
        if (m->esize == 4 && m->scale != 1.0f)
            ((float *)y)[yo] = m->scale * ((const float *)x)[xo];
        else
            memcpy(y + yo * m->esize, x + xo * m->esize, (size_t)m->esize);
    }
}

static void emu_reduce(const struct cu_reduce *r, const float *x, float *y)
{
    float part[CU_BLOCK];
    for (int64_t o = 0; o < r->n_out; o++) {
        if (r->n_red < CU_BLOCK) {
            y[o] = cu_red_final(r, cu_red_serial(r, x, o));
            continue;
        }
        for (int t = 0; t < CU_BLOCK; t++)
            part[t] = cu_red_partial(r, x, o, t);
        y[o] = cu_red_final(r, cu_tree_host(part, r->kind));
    }
}

/* a row statistic the way a block computes it: partials, then the tree */
static float row_stat(const struct cu_rows *r, const float *x, int64_t row, int stat, float c)
{
    float part[CU_BLOCK];
    for (int t = 0; t < CU_BLOCK; t++)
        part[t] = cu_row_partial(r, x, row, t, stat, c);
    return cu_tree_host(part, stat == CU_ST_MAX ? CU_RED_MAX : CU_RED_SUM);
}

static void emu_rows(const struct cu_rows *r, void *const *src, void *const *dst)
{
    const float *x = src[0];
    for (int64_t row = 0; row < r->outer * r->inner; row++) {
        float a, b;
        if (r->kind == CU_ROW_SOFTMAX) {
            a = row_stat(r, x, row, CU_ST_MAX, 0);
            b = row_stat(r, x, row, CU_ST_SUMEXP, a);
        } else {
            a = row_stat(r, x, row, CU_ST_SUM, 0) / (float)r->len;
            b = 1.0f / sqrtf(row_stat(r, x, row, CU_ST_SUMSQ, a) / (float)r->len + r->eps);
            if (dst[1])
                ((float *)dst[1])[row] = a;
            if (dst[2])
                ((float *)dst[2])[row] = b;
        }
        for (int64_t j = 0; j < r->len; j++)
            cu_row_write(r, x, dst[0], src[1], src[2], row, j, a, b);
    }
}

static int emu_gather(const struct cu_gather *gt, const char *x, const void *idx, char *y)
{
    int64_t n = gt->outer * gt->m * gt->inner;
    for (int64_t i = 0; i < n; i++) {
        int64_t s;
        if (!cu_gather_at(gt, idx, i, &s))
            return ST_ERR_INVALID;
        memcpy(y + i * gt->esize, x + s * gt->esize, (size_t)gt->esize);
    }
    return ST_OK;
}

/* cublasSgemmStridedBatched's definition, column-major, in plain loops */
static void emu_sgemm(const struct cu_sgemm_call *c, const float *A, const float *B, float *C)
{
    for (int64_t p = 0; p < c->count; p++) {
        const float *a = A + c->a_off + p * c->sa, *b = B + c->b_off + p * c->sb;
        float *cc = C + c->c_off + p * c->sc;
        for (int64_t j = 0; j < c->n; j++)
            for (int64_t i = 0; i < c->m; i++) {
                float s = 0.0f;
                for (int64_t l = 0; l < c->k; l++)
                    s += (c->transa ? a[l + i * c->lda] : a[i + l * c->lda]) *
                         (c->transb ? b[j + l * c->ldb] : b[l + j * c->ldb]);
                float *o = &cc[i + j * c->ldc];
                *o = c->alpha * s + (c->beta != 0.0f ? c->beta * *o : 0.0f);
            }
    }
}

static int emu_gemm(const struct cu_gemm *m, const float *a, const float *b, float *y)
{
    static struct cu_sgemm_call calls[MAX_CALLS]; /* the emulation runs one node at a time */
    int nc = cu_gemm_calls(m, calls, MAX_CALLS);
    if (nc < 0)
        return ST_ERR_UNSUPPORTED;
    for (int i = 0; i < nc; i++)
        emu_sgemm(&calls[i], b, a, y); /* cuBLAS's first operand is B (cu_gemm_calls) */
    return ST_OK;
}

/* a block per row, its threads' partials meeting in the tree */
static void emu_kl(const struct cu_kl *k, void *const *in, void *const *out)
{
    const float *w = in[2], *b = k->has_b ? in[3] : NULL;
    float part[3][CU_BLOCK], st[3];
    for (int64_t r = 0; r < k->rows; r++) {
        const float *ht = (const float *)in[0] + r * k->D, *hm = (const float *)in[1] + r * k->D;
        float m[2] = {0.0f, 0.0f}, s[3];
        for (int pass = 0; pass < 2; pass++) {
            for (int t = 0; t < CU_BLOCK; t++) {
                cu_kl_partial(k, ht, hm, w, b, pass, m, t, st);
                for (int q = 0; q < 3; q++)
                    part[q][t] = st[q];
            }
            for (int q = 0; q < 3; q++)
                s[q] = cu_tree_host(part[q], pass ? CU_RED_SUM : CU_RED_MAX);
            m[0] = pass ? m[0] : s[0];
            m[1] = pass ? m[1] : s[1];
        }
        float lt = m[0] + logf(s[0]), lm = m[1] + logf(s[1]);
        ((float *)out[0])[r] = s[2] / s[0] - lt + lm;
        if (out[1]) {
            ((float *)out[1])[2 * r] = lt;
            ((float *)out[1])[2 * r + 1] = lm;
        }
    }
}

/* per row: CU_BLOCK coefficients at a time, then every thread's dimensions */
static void emu_klgrad(const struct cu_kl *k, void *const *in, void *const *out)
{
    const float *dkl = in[0], *lse = in[1], *w = in[4], *b = k->has_b ? in[5] : NULL;
    float cs[CU_BLOCK];
    for (int64_t r = 0; r < k->rows; r++) {
        const float *ht = (const float *)in[2] + r * k->D, *hm = (const float *)in[3] + r * k->D;
        float *dh = (float *)out[0] + r * k->D;
        for (int64_t d = 0; d < k->D; d++)
            dh[d] = 0.0f;
        for (int64_t c0 = 0; c0 < k->V; c0 += CU_BLOCK) {
            for (int t = 0; t < CU_BLOCK; t++)
                cs[t] = c0 + t < k->V ? cu_kl_coef(k, ht, hm, w, b, lse + 2 * r, dkl[r], c0 + t)
                                      : 0.0f;
            for (int64_t d = 0; d < k->D; d++)
                for (int64_t j = 0; j < CU_BLOCK && c0 + j < k->V; j++)
                    dh[d] += cs[j] * cu_kl_w(k, w, d, c0 + j);
        }
    }
}

static int emu_launch(const struct cu_launch *l, void *const *src, void *const *dst,
                      void *const *in, void *const *out)
{
    switch (l->kind) {
    case CU_K_ZERO: memset(dst[0], 0, (size_t)l->bytes); return ST_OK;
    case CU_K_MAP: emu_map(&l->u.map, src[0], dst[0]); return ST_OK;
    case CU_K_REDUCE: emu_reduce(&l->u.red, src[0], dst[0]); return ST_OK;
    case CU_K_ROWS: emu_rows(&l->u.rows, src, dst); return ST_OK;
    case CU_K_SCAN:
        for (int64_t i = 0; i < l->u.scan.outer * l->u.scan.inner; i++)
            cu_scan_line(&l->u.scan, src[0], dst[0], i);
        return ST_OK;
    case CU_K_GATHER: return emu_gather(&l->u.gat, src[0], src[1], dst[0]);
    case CU_K_CLIP: {
        float lo = src[1] ? *(const float *)src[1] : -INFINITY;
        float hi = src[2] ? *(const float *)src[2] : INFINITY;
        for (int64_t i = 0; i < l->n; i++)
            ((float *)dst[0])[i] = cu_clip(((const float *)src[0])[i], lo, hi);
        return ST_OK;
    }
    case CU_K_GEMM: return emu_gemm(&l->u.gemm, src[0], src[1], dst[0]);
    case CU_K_EW:
        for (int64_t i = 0; i < l->u.ew.n; i++)
            cu_ew_at(&l->u.ew, (const void *const *)src, dst[0], i);
        return ST_OK;
    case CU_K_EIN:
        for (int64_t o = 0; o < l->u.ein.n_out; o++)
            ((float *)dst[0])[o] = cu_ein_at(&l->u.ein, src[0], src[1], o);
        return ST_OK;
    case CU_K_TOPK:
        for (int64_t i = 0; i < l->n; i++)
            ((float *)dst[0])[i] = cu_topk_at(src[0], l->n, l->bytes, i);
        return ST_OK;
    case CU_K_CONV:
        for (int64_t i = 0; i < l->n; i++)
            ((float *)dst[0])[i] = cu_win_at(&l->u.conv, (int)l->bytes, src[0], src[1], src[2], i);
        return ST_OK;
    case CU_K_KL: emu_kl(&l->u.kl, in, out); return ST_OK;
    case CU_K_KLGRAD: emu_klgrad(&l->u.kl, in, out); return ST_OK;
    }
    return ST_ERR_UNSUPPORTED;
}

/* ---- the target --------------------------------------------------------------- */

static int emu_run(const struct ir_graph *g, const struct ir_node *n, void *const *in,
                   void *const *out)
{
    return cu_run_node(g, n, in, out, emu_launch);
}

static int emu_run_prepared(const void *state, void *const *in, void *const *out)
{
    return cu_run_prepared(state, in, out, emu_launch);
}

struct cg_kernel {
    lk_emu_fn fn;
    int64_t numel;
};

/* PDC_PTX_DIR=DIR: each program's kernels are also written there as the GPU
 * target's module (cu_target.c), for sm_80 and sm_90, one file per distinct module
 * (named by its hash), for the tests to assemble with ptxas: every kernel of every
 * program they run */
static int dump_ptx(const struct ir_graph *g, const struct cg_group *const *grp, uint32_t n,
                    struct diag *d)
{
    const char *dir = getenv("PDC_PTX_DIR");
    for (int sm = 80; dir && *dir && sm <= 90; sm += 10) {
        char *ptx = NULL, path[4096], tmp[4200];
        int st = lk_ptx(g, grp, (int)n, sm, &ptx, d);
        if (st)
            return st;
        uint64_t h = lk_fnv1a(ptx, strlen(ptx), LK_FNV_SEED);
        snprintf(path, sizeof path, "%s/m-%016llx-sm%d.ptx", dir, (unsigned long long)h, sm);
        snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
        int have = access(path, F_OK) == 0;
        FILE *f = have ? NULL : fopen(tmp, "w");
        int bad = !have && (!f || fputs(ptx, f) < 0);
        bad |= f && fclose(f) != 0;
        if (!have && (bad || rename(tmp, path) != 0)) {
            remove(tmp);
            free(ptx);
            return diag_set(d, ST_ERR_IO, "PDC_PTX_DIR: cannot write %s", path);
        }
        free(ptx);
    }
    return ST_OK;
}

static int emu_compile(const struct ir_graph *g, const struct cg_group *grp, struct cg_kernel **k,
                       struct diag *d)
{
    *k = calloc(1, sizeof **k);
    if (!*k)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    int st = lk_emu_compile(g, grp, &(*k)->fn, d);
    if (st) {
        free(*k);
        *k = NULL;
        return st;
    }
    (*k)->numel = ir_numel(&g->t[g->n[grp->nodes[0]].out[0]]);
    return ST_OK;
}

/* as the GPU target: all of a program's groups at once (and its module, on request) */
static int emu_compile_many(const struct ir_graph *g, const struct cg_group *const *grp,
                            uint32_t n, struct cg_kernel **k, struct diag *d)
{
    int st = dump_ptx(g, grp, n, d);
    uint32_t i = 0;
    for (; !st && i < n; i++)
        st = emu_compile(g, grp[i], &k[i], d);
    for (uint32_t j = 0; st && j + 1 < i; j++) /* all or nothing */
        free(k[j]);
    return st == ST_ERR_UNSUPPORTED ? ST_ERR_DEVICE : st; /* no host to fall back on */
}

static int emu_kernel(struct cg_kernel *k, void *const *bufs)
{
    k->fn(bufs, 0, k->numel, (k->numel + CU_BLOCK - 1) / CU_BLOCK, CU_BLOCK);
    return ST_OK;
}

static void emu_release(struct cg_kernel *k) { free(k); }

/* memory: the host's, reached only through these (as a GPU's would be) */
static void *m_alloc(size_t n) { return aligned_alloc(256, (n + 255) / 256 * 256); }
static void m_release(void *p) { free(p); }

static int m_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    return 0;
}

static unsigned char early[64];

static int m_read_start(const void *src, size_t n)
{
    memcpy(early, src, n);
    return 0;
}

static int m_read_finish(void *dst, size_t n)
{
    memcpy(dst, early, n);
    return 0;
}

static int m_fill(void *dst, int byte, size_t n)
{
    memset(dst, byte, n);
    return 0;
}

static int m_uniform(float *dst, int64_t n, uint64_t seed, uint64_t step, uint32_t stream,
                     uint64_t offset)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = cu_philox_uniform(seed, step, stream, offset + (uint64_t)i);
    return 0;
}

static const struct cg_mem emu_mem = {
    .host_addressable = 1,
    .alloc = m_alloc,
    .release = m_release,
    .put = m_copy,
    .get = m_copy,
    .copy = m_copy,
    .fill = m_fill,
    .read_start = m_read_start,
    .read_finish = m_read_finish,
    .uniform = m_uniform,
};

const struct cg_target cg_cuda_emu = {
    .name = "cuda-emu",
    .supports = cu_supports,
    .run = emu_run,
    .prepare = cu_prepare,
    .run_prepared = emu_run_prepared,
    .compile = emu_compile,
    .compile_many = emu_compile_many,
    .launch = emu_kernel,
    .release = emu_release,
    .mem = &emu_mem,
    .min_fuse = 1,
};

#endif /* PDC_HAVE_LLVM */
