/* einsum_parse.h — Einsum equation parsing shared by the shape rule
 * (ir/shape_nn.c), the reference kernel (codegen/ref/ref_linalg.c) and the CUDA
 * lowering (codegen/cuda/cu_lower.c).
 * Private to those files: everything here is static inline.
 *
 * Every distinct index ("label") gets an id: the dims an ellipsis stands for
 * come first (ids 0..E-1, right-aligned across operands and broadcast like
 * numpy), then letters in order of first appearance. */
#ifndef PDC_EINSUM_PARSE_H
#define PDC_EINSUM_PARSE_H

#include <stdio.h>
#include <string.h>

#include "ir.h"

#define EIN_MAX_OPS 2
#define EIN_MAX_LAB (IR_MAX_RANK + 52) /* ellipsis dims + a-z A-Z */
#define EIN_MAX_EQ 256

struct ein_spec {
    int nops;
    int rank[EIN_MAX_OPS];
    int lab[EIN_MAX_OPS][IR_MAX_RANK]; /* label id of each operand axis */
    int out_rank;
    int out_lab[IR_MAX_RANK];          /* label id of each output axis */
    int nlab;
    int64_t size[EIN_MAX_LAB];         /* extent of each label */
};

static inline int ein_is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* One term ("ij", "...ii") -> symbol list: letters, '.' for the ellipsis. */
static inline int ein_term(const char *p, const char *end, char *sym, int *nsym, int *nletters,
                           char *err, size_t errlen)
{
    int ell = 0;
    *nsym = *nletters = 0;
    while (p < end) {
        if (ein_is_letter(*p)) {
            if (*nletters >= IR_MAX_RANK)
                break;
            sym[(*nsym)++] = *p++;
            (*nletters)++;
        } else if (end - p >= 3 && memcmp(p, "...", 3) == 0 && !ell) {
            ell = 1;
            sym[(*nsym)++] = '.';
            p += 3;
        } else {
            snprintf(err, errlen, "unexpected '%c' in einsum term", *p);
            return ST_ERR_INVALID;
        }
    }
    if (p < end) {
        snprintf(err, errlen, "einsum term has more than %d indices", IR_MAX_RANK);
        return ST_ERR_UNSUPPORTED;
    }
    return ST_OK;
}

/* label sizes: letters must agree exactly; ellipsis dims broadcast (1 stretches) */
static inline int ein_sizes(struct ein_spec *sp, const int64_t (*dims)[IR_MAX_RANK], int nell,
                            char *err, size_t errlen)
{
    for (int l = 0; l < EIN_MAX_LAB; l++)
        sp->size[l] = -1;
    for (int t = 0; t < sp->nops; t++) {
        for (int a = 0; a < sp->rank[t]; a++) {
            int l = sp->lab[t][a];
            int64_t d = dims[t][a];
            if (sp->size[l] < 0 || (l < nell && sp->size[l] == 1))
                sp->size[l] = d;
            else if (d != sp->size[l] && !(l < nell && d == 1)) {
                snprintf(err, errlen, "einsum index of operand %d axis %d has size %lld, "
                         "elsewhere %lld", t, a, (long long)d, (long long)sp->size[l]);
                return ST_ERR_SHAPE;
            }
        }
    }
    return ST_OK;
}

/* output labels: explicit after "->", else numpy's implicit rule (ellipsis
 * dims, then letters seen exactly once, in character order) */
static inline int ein_output(struct ein_spec *sp, const char *rhs, const int *letter_id,
                             const int *letter_cnt, int nell, char *err, size_t errlen)
{
    sp->out_rank = 0;
    if (!rhs) {
        for (int l = 0; l < nell; l++)
            sp->out_lab[sp->out_rank++] = l;
        for (int c = 0; c < 128; c++)
            if (letter_cnt[c] == 1) {
                if (sp->out_rank >= IR_MAX_RANK)
                    goto too_big;
                sp->out_lab[sp->out_rank++] = letter_id[c];
            }
        return ST_OK;
    }
    char sym[IR_MAX_RANK + 1];
    int nsym, nlet, st = ein_term(rhs, rhs + strlen(rhs), sym, &nsym, &nlet, err, errlen);
    if (st)
        return st;
    for (int i = 0; i < nsym; i++) {
        if (sym[i] == '.') {
            for (int l = 0; l < nell; l++) {
                if (sp->out_rank >= IR_MAX_RANK)
                    goto too_big;
                sp->out_lab[sp->out_rank++] = l;
            }
            continue;
        }
        int c = (unsigned char)sym[i];
        if (letter_id[c] < 0) {
            snprintf(err, errlen, "einsum output index '%c' appears in no input", sym[i]);
            return ST_ERR_INVALID;
        }
        for (int j = 0; j < i; j++)
            if (sym[j] == sym[i]) {
                snprintf(err, errlen, "einsum output index '%c' repeats", sym[i]);
                return ST_ERR_INVALID;
            }
        if (sp->out_rank >= IR_MAX_RANK)
            goto too_big;
        sp->out_lab[sp->out_rank++] = letter_id[c];
    }
    return ST_OK;
too_big:
    snprintf(err, errlen, "einsum output would exceed rank %d", IR_MAX_RANK);
    return ST_ERR_UNSUPPORTED;
}

/* Parse `equation` for operands of the given ranks and dims. */
static inline int ein_parse(const char *equation, int nops, const int *ranks,
                            const int64_t (*dims)[IR_MAX_RANK], struct ein_spec *sp, char *err,
                            size_t errlen)
{
    char eq[EIN_MAX_EQ];
    size_t len = 0;
    for (const char *p = equation; *p; p++) /* spaces carry no meaning */
        if (*p != ' ') {
            if (len + 1 >= sizeof eq) {
                snprintf(err, errlen, "einsum equation is too long");
                return ST_ERR_UNSUPPORTED;
            }
            eq[len++] = *p;
        }
    eq[len] = '\0';
    memset(sp, 0, sizeof *sp);
    sp->nops = nops;
    char *arrow = strstr(eq, "->");
    const char *rhs = arrow ? arrow + 2 : NULL;
    if (arrow)
        *arrow = '\0';

    char sym[EIN_MAX_OPS][IR_MAX_RANK + 1];
    int nsym[EIN_MAX_OPS], nell_t[EIN_MAX_OPS], nell = 0, t = 0, st;
    for (const char *p = eq;; t++) {
        const char *q = strchr(p, ',');
        const char *end = q ? q : p + strlen(p);
        if (t >= nops) {
            snprintf(err, errlen, "einsum equation has more terms than the %d inputs", nops);
            return ST_ERR_INVALID;
        }
        int nlet;
        if ((st = ein_term(p, end, sym[t], &nsym[t], &nlet, err, errlen)) != ST_OK)
            return st;
        int has_ell = nsym[t] != nlet;
        nell_t[t] = ranks[t] - nlet;
        if (nell_t[t] < 0 || (!has_ell && nell_t[t] != 0)) {
            snprintf(err, errlen, "einsum term %d has %d indices for a rank-%d input", t, nlet,
                     ranks[t]);
            return ST_ERR_SHAPE;
        }
        if (nell_t[t] > nell)
            nell = nell_t[t];
        if (!q)
            break;
        p = q + 1;
    }
    if (t + 1 != nops) {
        snprintf(err, errlen, "einsum equation has %d terms for %d inputs", t + 1, nops);
        return ST_ERR_INVALID;
    }

    int letter_id[128], letter_cnt[128] = {0};
    for (int c = 0; c < 128; c++)
        letter_id[c] = -1;
    sp->nlab = nell;
    for (t = 0; t < nops; t++) {
        int ax = 0;
        sp->rank[t] = ranks[t];
        for (int i = 0; i < nsym[t]; i++) {
            if (sym[t][i] == '.') { /* right-aligned ellipsis dims */
                for (int j = 0; j < nell_t[t]; j++)
                    sp->lab[t][ax++] = nell - nell_t[t] + j;
                continue;
            }
            int c = (unsigned char)sym[t][i];
            if (letter_id[c] < 0)
                letter_id[c] = sp->nlab++;
            letter_cnt[c]++;
            sp->lab[t][ax++] = letter_id[c];
        }
    }
    if ((st = ein_sizes(sp, dims, nell, err, errlen)) != ST_OK)
        return st;
    return ein_output(sp, rhs, letter_id, letter_cnt, nell, err, errlen);
}

/* one loop over every combination of index values: output labels first, then the
 * summed ones, each with its extent and every operand's stride (the reference
 * kernel runs it as an odometer; the CUDA lowering splits it into two boxes) */
struct ein_loop {
    int nl;                           /* labels, output ones first */
    int64_t size[EIN_MAX_LAB];
    int64_t str[EIN_MAX_OPS][EIN_MAX_LAB]; /* operand stride per label (sums for diagonals) */
    int64_t ostr[EIN_MAX_LAB];        /* output stride; 0 for summed labels */
};

static inline void ein_loop_build(const struct ein_spec *sp, const struct ir_tensor *const *t,
                                  struct ein_loop *L)
{
    int order[EIN_MAX_LAB], pos[EIN_MAX_LAB], used[EIN_MAX_LAB] = {0};
    int nl = 0;
    for (int i = 0; i < sp->out_rank; i++)
        used[sp->out_lab[i]] = 1, order[nl++] = sp->out_lab[i];
    for (int l = 0; l < sp->nlab; l++)
        if (!used[l])
            order[nl++] = l;
    memset(L, 0, sizeof *L);
    L->nl = nl;
    for (int i = 0; i < nl; i++) {
        pos[order[i]] = i;
        L->size[i] = sp->size[order[i]];
    }
    int64_t s = 1;
    for (int i = sp->out_rank - 1; i >= 0; i--) {
        L->ostr[pos[sp->out_lab[i]]] = s;
        s *= sp->size[sp->out_lab[i]];
    }
    for (int k = 0; k < sp->nops; k++) {
        int64_t cs[IR_MAX_RANK];
        ir_contig_strides(t[k]->rank, t[k]->dims, cs);
        for (int a = 0; a < t[k]->rank; a++) {
            int l = sp->lab[k][a];
            if (t[k]->dims[a] == sp->size[l]) /* size-1 ellipsis dims broadcast: stride 0 */
                L->str[k][pos[l]] += cs[a];
        }
    }
}

#endif
