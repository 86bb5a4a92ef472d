/* l3d_project.c — per-sample gradient projection (METHOD §8.3).
 * needs: per tensor the per-sample factors L [B, T, p], R [B, T, q] of a matrix
 *   (G_i = Σ_t L_{i,t} ⊗ R_{i,t}) or the summed δ [B, q] of a bias (l3d_impl.h).
 * guarantees: ⟨v_k, G_i⟩ for every sample and subnetwork, and ‖G_i‖², as Einsums
 *   over [B, T, ·] and the Tucker pieces: nothing of size B·p·q is built. For a
 *   rank-1 direction a ⊗ b the coefficient is Σ_t (a·L_{i,t})(b·R_{i,t}); with a
 *   Tucker core it is Σ_t (F0 L_{i,t})ᵀ K (F1 R_{i,t}). A kernel of more than two
 *   modes is built from its Tucker pieces and read as the matrix [c_out, c_in·∏k].
 *   l3d_materialize_grad builds G itself: the oracle the projection is tested
 *   against (and the `materialize` option of the L3D step). */
#include <stdio.h>

#include "l3d_impl.h"

static uint32_t einsum(struct ir_builder *b, const char *eq, uint32_t x, uint32_t y)
{
    struct ir_attr at = bld_attr_str("equation", eq);
    uint32_t in[2] = {x, y};
    return bld_node(b, IR_OP_Einsum, 2, in, 1, &at, 1, NULL);
}

uint32_t l3d_rows3(struct ir_builder *b, uint32_t t, int64_t B, int64_t d)
{
    if (b->err)
        return IR_NONE;
    int64_t n = ir_numel(&b->g->t[t]);
    int64_t dims[3] = {B, n / (B * d), d};
    return bld_reshape(b, t, 3, dims);
}

uint32_t l3d_project(struct ir_builder *b, const struct l3d_param *p, const uint32_t *piece)
{
    if (p->rank == 1) /* ⟨v_k, Σ_t δ⟩: the summed δ is already the bias's size */
        return einsum(b, "bq,kq->bk", p->R2, l3d_materialize_v(b, p, piece));
    if (p->nmode > 2) { /* a kernel: Σ_t L_tᵀ v_k R_t with v_k built (kernels are small) */
        int64_t n = b->err ? 0 : b->g->t[piece[L3D_F0]].dims[0];
        int64_t dims[3] = {n, p->dims[0], p->dims[1]};
        uint32_t v = bld_reshape(b, l3d_materialize_v(b, p, piece), 3, dims);
        return einsum(b, "btkq,btq->bk", einsum(b, "btp,kpq->btkq", p->L, v), p->R2);
    }
    uint32_t P = einsum(b, "btp,krp->btkr", p->L, piece[L3D_F0]);  /* F0 · x */
    uint32_t Q = einsum(b, "btq,ksq->btks", p->R2, piece[L3D_F1]); /* F1 · δ */
    uint32_t PK = einsum(b, "btkr,krs->btks", P, piece[L3D_CORE]);
    return einsum(b, "btks,btks->bk", PK, Q); /* Σ_t Σ_{r,s} P K Q */
}

/* a Tucker tensor of d modes: contract the core's first rank index with each factor in
 * turn, the mode's size moving to the end: [k, r_0..r_{d-1}] → .. → [k, dim_0..dim_{d-1}] */
static uint32_t tucker_v(struct ir_builder *b, const struct l3d_param *p, const uint32_t *piece)
{
    static const char rs[] = "rstuv", ds[] = "abcde";
    uint32_t t = piece[L3D_CORE];
    int d = p->nmode;
    for (int m = 0; m < d; m++) {
        char eq[64], lhs[16] = "k", out[16] = "k";
        int nl = 1, no = 1;
        for (int i = m; i < d; i++) /* remaining ranks r_m.., then sizes done so far */
            lhs[nl++] = rs[i];
        for (int i = 0; i < m; i++)
            lhs[nl++] = ds[i];
        for (int i = m + 1; i < d; i++)
            out[no++] = rs[i];
        for (int i = 0; i <= m; i++)
            out[no++] = ds[i];
        lhs[nl] = out[no] = 0;
        snprintf(eq, sizeof eq, "%s,k%c%c->%s", lhs, rs[m], ds[m], out);
        t = einsum(b, eq, t, piece[L3D_F0 + m]);
    }
    return t;
}

uint32_t l3d_materialize_v(struct ir_builder *b, const struct l3d_param *p, const uint32_t *piece)
{
    int64_t n = b->err ? 0 : b->g->t[piece[L3D_F0]].dims[0];
    if (p->nmode > 2) {
        int64_t dims[2] = {n, p->dims[0] * p->dims[1]};
        return bld_reshape(b, tucker_v(b, p, piece), 2, dims);
    }
    if (p->rank == 1)
        return einsum(b, "kr,krq->kq", piece[L3D_CORE], piece[L3D_F0]);
    uint32_t M = einsum(b, "krs,krp->ksp", piece[L3D_CORE], piece[L3D_F0]);
    uint32_t v = einsum(b, "ksp,ksq->kpq", M, piece[L3D_F1]);
    int64_t dims[2] = {n, p->dims[0] * p->dims[1]};
    return bld_reshape(b, v, 2, dims);
}

uint32_t l3d_grad_sqnorm(struct ir_builder *b, const struct l3d_param *p)
{
    static const int64_t ax1[1] = {1}, ax12[2] = {1, 2};
    if (p->rank == 1)
        return bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, p->R2, p->R2), 1, ax1, 0);
    /* ‖Σ_t L_t ⊗ R_t‖² = Σ_{t,s} (L_t·L_s)(R_t·R_s) */
    uint32_t gl = einsum(b, "btp,bsp->bts", p->L, p->L);
    uint32_t gr = einsum(b, "btq,bsq->bts", p->R2, p->R2);
    return bld_reduce(b, IR_OP_ReduceSum, bld_mul(b, gl, gr), 2, ax12, 0);
}

uint32_t l3d_materialize_grad(struct ir_builder *b, const struct l3d_param *p)
{
    if (p->rank == 1)
        return p->R2;
    int64_t B = b->err ? 0 : b->g->t[p->L].dims[0];
    int64_t dims[2] = {B, p->dims[0] * p->dims[1]};
    return bld_reshape(b, einsum(b, "btp,btq->bpq", p->L, p->R2), 2, dims);
}
