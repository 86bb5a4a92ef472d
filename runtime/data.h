/* data.h — data sources: what the training driver writes into a program's data
 * input each step. A source is named by a spec string:
 *
 *   toy[:p=P,lo=L,hi=H]   sparse features (METHOD §6.1, at_least_zero_active):
 *                         x_i = u_i · 1[r_i < p], u_i ~ U(lo, hi); float32 inputs
 *   toy:…,nz=1,sign=1,group=G   L3D's generator (METHOD §8.7): all-zero rows drawn
 *                         again, values with a random sign, features active in groups
 *                         of G (one draw per group)
 *   FILE.npy              rows of an array: each step's batch is `batch` rows
 *   FILE.npz[:NAME]       rows of one member of an .npz (NAME may be left out
 *                         when the archive has a single member)
 *   FILE.bin              raw little-endian tokens (u16 or u32, ds_opts): each
 *                         batch row is a window of `seq` consecutive tokens
 *
 * Reproducibility: every random choice comes from Philox keyed by (seed, step,
 * stream) with a fixed stream per purpose, element by element, so a batch
 * depends on neither the thread count nor the batch's neighbours.
 *   toy     streams 1 (values) and 2 (active or not), element index = flat index
 *   arrays  stream 3: batch row b is file row r mod N, r the 64 bits of counter
 *           block b (uniform with replacement; the bias of the modulo is < N/2^64)
 *   tokens  stream 4: batch row b is the window starting at r mod (train − seq + 1),
 *           r as above: uniform with replacement over the training part only
 *
 * Splits: DS_TRAIN is what training feeds. DS_EVAL is for evaluation:
 *   toy     the same generator; the caller picks a step that training never reaches
 *   arrays  a sequential sweep: batch k is rows k·B … k·B+B−1 (mod N); no seed
 *   tokens  the held-out tail (the last `holdout` fraction of the file, never
 *           sampled in training) tiled by non-overlapping windows; batch k is
 *           windows k·B … k·B+B−1 (mod their count); no seed */
#ifndef PDC_DATA_H
#define PDC_DATA_H

#include <stdint.h>

#include "ir.h"

enum ds_split { DS_TRAIN, DS_EVAL };
enum ds_kind { DS_TOY, DS_ARRAY, DS_TOKENS };

struct ds_opts {
    double p, lo, hi;   /* toy: the defaults for what the spec leaves out (the config's) */
    int token_bytes;    /* token files: 2 (u16) or 4 (u32) */
    int64_t seq;        /* token files: window length; 0 = the model input's dim 1 */
    double holdout;     /* token files: fraction of the file at its end kept for evaluation */
};

struct ds_source;

/* p 0.05, lo 0, hi 1, u16 tokens, seq from the model, holdout 0.05 */
void ds_opts_defaults(struct ds_opts *o);

/* "u16" → 2, "u32" → 4; 0 for anything else */
int ds_token_bytes(const char *name);

/* Open the source named by spec (NULL or "" = toy with o's settings). Files are
 * read (arrays) or mapped (tokens) now; errors name the file. */
int ds_open(const char *spec, const struct ds_opts *o, struct ds_source **out, struct diag *d);
void ds_close(struct ds_source *s);
/* the toy generator with these settings (ds_open("toy", …) with p, lo, hi set) */
int ds_open_toy(double p, double lo, double hi, struct ds_source **out, struct diag *d);

enum ds_kind ds_kind(const struct ds_source *s);
/* the resolved spec: toy with every value, files by absolute path (and npz member) */
const char *ds_spec(const struct ds_source *s);
/* toy: its p, lo, hi (returns 1); other kinds return 0 and leave them */
int ds_toy_settings(const struct ds_source *s, double *p, double *lo, double *hi);

/* Can s feed `input` (its dims fully known, dim 0 the batch)? Arrays: same rank,
 * same trailing dims and same dtype (float64 is converted once to float32 for a
 * float32 input, with a note on stderr); tokens: [batch, seq] int64 or int32 with
 * seq within the training part (and, when there is one, the held-out part). */
int ds_check_input(struct ds_source *s, const struct ir_tensor *input, struct diag *d);

/* Token files: every token < vocab (one pass over the file, remembered). A no-op
 * for other sources and for vocab <= 0 (unknown). */
int ds_check_vocab(struct ds_source *s, int64_t vocab, struct diag *d);

/* The vocabulary size the model reads `input` with, when it feeds it straight
 * into a Gather on a constant table (an embedding): the table's dim 0; else 0. */
int64_t ds_graph_vocab(const struct ir_graph *g, uint32_t input);

/* Write one batch for `input` into buf (input's dtype and dims). Checks the input
 * first (ds_check_input). */
int ds_fill(struct ds_source *s, void *buf, const struct ir_tensor *input, uint64_t seed,
            uint64_t step, enum ds_split split, struct diag *d);

/* Token files: the number of non-overlapping windows of T tokens in the held-out
 * part (the windows DS_EVAL tiles; batch k covers k·B … k·B+B−1 of them). 0 for
 * other sources and for T < 1. */
int64_t ds_eval_windows(const struct ds_source *s, int64_t T);

/* evaluation batch k: ds_fill(s, buf, input, seed, k, DS_EVAL, d). Files ignore
 * the seed (the batch is fixed by k); the toy generator draws at (seed, step k). */
int ds_eval_batch(struct ds_source *s, void *buf, const struct ir_tensor *input, uint64_t seed,
                  uint64_t k, struct diag *d);

#endif
