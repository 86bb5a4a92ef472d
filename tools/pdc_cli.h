/* pdc_cli.h — what the command-line files share (tools/ only). */
#ifndef PDC_CLI_H
#define PDC_CLI_H

#include "decomp.h"
#include "json.h"
#include "program.h"

/* pdc_decomp.c: the decomposition run; a model imported, its batch dim bound to
 * c->batch_size and compiled (one fresh graph per program) */
int pdc_compiled_model(const char *path, const struct dc_config *c, struct ir_graph **out,
                       struct diag *d);
/* resume: continue from DIR/checkpoint.safetensors; flags: PDC_FORCE overwrites a DIR
 * that already holds a decomposition (refused otherwise), PDC_VERBOSE prints each
 * program's size and memory plan; run_steps >= 0: stop (checkpointed) after that many
 * steps of this invocation */
#define PDC_FORCE   1u
#define PDC_VERBOSE 2u
int pdc_decompose(const char *model, const char *dir, const struct dc_config *c, int resume,
                  unsigned flags, int64_t run_steps, struct diag *d);

/* pdc_config.c: the resolved config as JSON (reference field names), written into
 * decomposition.json and, as YAML, into DIR/config.yaml */
void pdc_config_json(const struct dc_config *c, struct json_w *w);
int pdc_write_decomposition_json(const char *model, const char *dir, const struct dc_config *c,
                                 const struct ir_graph *g, const struct dc_site *sites, int ns,
                                 const struct dc_prog *train, const double *last, struct diag *d);
int pdc_write_config_yaml(const struct dc_config *c, const char *path, struct diag *d);
/* YAML config file (reference field names); unknown keys are rejected by name */
int pdc_config_load(const char *path, struct dc_config *c, struct diag *d);
/* the config's `method` into out, left unchanged when the file names none */
int pdc_config_method(const char *path, char *out, size_t n, struct diag *d);
/* pdc_config_apd.c: an APD key of the config (-1: not one), and the resolved APD keys */
struct yaml_node;
int pdc_config_apd_key(const char *k, const struct yaml_node *v, struct dc_config *c,
                       struct diag *d);
void pdc_config_apd_json(const struct dc_config *c, struct json_w *w);
/* "--sites 'layers.*.mlp_in:100,*mlp_out:100'" */
int pdc_parse_sites(struct dc_config *c, const char *spec, struct diag *d);

/* pdc_config_l3d.c: the config's `l3d:` block */
struct yaml_node;
int pdc_config_l3d_read(const struct yaml_node *n, struct dc_config *c, struct diag *d);
void pdc_config_l3d_json(const struct dc_config *c, struct json_w *w);
/* after the whole config is read: an l3d block only for method l3d, and no lr_schedule
 * function for l3d (its own step schedule sets the rate); an error names the key */
int pdc_config_l3d_check(const struct yaml_node *root, const struct dc_config *c, struct diag *d);

/* pdc_eval_l3d.c: `pdc eval DIR` of an L3D decomposition (its metrics, --impact), and
 * `pdc intervene DIR --subnet k --delta D --data X.npy [-o OUT.npz]` */
int pdc_eval_l3d_main(int argc, char **argv);
int pdc_intervene_main(int argc, char **argv);
/* every tensor the L3D decomposition in dir (of model, its resolved config c) decomposes,
 * moved in g to W + Σ_j delta[j]·v_{k[j]} (v_k: the out-side factors, as pdc intervene
 * rebuilds them), after its factors are checked against the model and config; g holds
 * the model's tensors by name (a plain import or a compiled copy) */
int pdc_l3d_move(const char *dir, const char *model, const struct dc_config *c,
                 struct ir_graph *g, const long *k, const double *delta, int n, struct diag *d);

/* pdc_ckpt.c */
struct rt_store;
int pdc_ckpt_save(const char *dir, const struct dc_config *c, const struct rt_store *store,
                  int phase, int64_t step, struct diag *d);
int pdc_ckpt_load(const char *dir, const struct dc_config *c, struct rt_store *store, int *phase,
                  int64_t *step, struct diag *d);

/* pdc_decomp.c: the data source. --data SPEC, --seq T, --tokens u16|u32, --holdout F
 * into c (returns -1 when opt is none of them); open c's source, *rc = c with the
 * spec resolved (rc may be c): what is recorded and checked on --resume */
struct ds_source;
int pdc_data_option(struct dc_config *c, const char *opt, const char *v, struct diag *d);
int pdc_open_data(const struct dc_config *c, struct ds_source **src, struct dc_config *rc,
                  struct diag *d);

/* pdc_inspect_dir.c: `pdc inspect DIR` */
int pdc_inspect_dir(const char *dir, struct diag *d);

/* pdc_toy.c; pdc_toy_lm.c: `pdc toy tiny-lm` (argv[0] = "tiny-lm") */
int pdc_toy_main(int argc, char **argv);
int pdc_toy_lm_main(int argc, char **argv);

/* pdc_eval.c; the model a decomposition DIR was made from (its hash checked), and its
 * components.safetensors into a store */
int pdc_eval_main(int argc, char **argv);
/* the model DIR/decomposition.json names, into model; fails when its SHA-256 changed */
int pdc_dir_model(const char *dir, char *model, size_t n, struct diag *d);
struct rt_store;
int pdc_eval_load_store(const char *dir, struct rt_store *store, struct diag *d);
/* site s's stored V [d_in, C] and U [C, d_out], checked (float32, rank 2, those dims), or an
 * error naming the item and DIR */
int pdc_eval_site_factors(const char *dir, struct rt_store *store, const struct dc_site *s,
                          const float **V, const float **U, struct diag *d);
/* the target weight in site s's [d_in, d_out] view (malloc'd), or NULL with d set */
float *pdc_eval_site_weight(const struct dc_site *s, const struct ir_graph *g, struct diag *d);

/* pdc_dir.c: a decomposition folder opened for export and masked runs: the model
 * (checked), the resolved config, the components, and the sites selected again on
 * a compiled copy of the model (batch and sequence bound as given) */
struct pdc_dir {
    char dir[4096], model[4096];
    struct dc_config c;
    struct ir_value *vals;     /* components.safetensors */
    int nvals;
    struct ir_graph *h;        /* the compiled copy */
    struct dc_site *sites;
    int ns;
    struct dc_factor *fac;
    int nf;
};
int pdc_dir_open(const char *dir, int64_t batch, int64_t seq, struct pdc_dir *x, struct diag *d);
void pdc_dir_close(struct pdc_dir *x);
const struct ir_value *pdc_dir_find(const struct pdc_dir *x, const char *name);
/* the index of site `name`, or an error naming it and the sites there are */
int pdc_dir_site(const struct pdc_dir *x, const char *name, int *idx, struct diag *d);
/* the factor of site i as stored (V [d_in, C], U [C, d_out] under the name of the
 * factor's first site) */
void pdc_dir_factor(const struct pdc_dir *x, int i, const float **V, const float **U);
/* an APD folder (method apd): site i's C columns are C/m components of m columns
 * each, m = pdc_dir_rank (1 for every other method) */
int pdc_dir_apd(const struct pdc_dir *x);
int pdc_dir_rank(const struct pdc_dir *x, int i);

/* pdc_export.c: `pdc export DIR -o OUT.onnx ...`; pdc_run_dir.c: `pdc run DIR ...` */
int pdc_export_main(int argc, char **argv);
int pdc_run_dir_main(const char *dir, int argc, char **argv);

/* pdc_eval_apd.c: `pdc eval DIR` of an APD decomposition (c resolved, src open) */
int pdc_eval_apd(const char *dir, const char *model, const struct dc_config *c,
                 struct ds_source *src, struct diag *d);

/* pdc_eval_adv.c: the divergence after pdc_pgd_eval_steps[r] steps of a fresh
 * shared-source sign-PGD adversary (step 0.1) into out[r], on the evaluation batch
 * keyed by data_step; the components and CI weights come from the store */
#define PDC_PGD_EVAL_ROWS 6 /* step 0: the random source itself, a baseline */
#define PDC_PGD_EVAL_STEP_SIZE 0.1
extern const int pdc_pgd_eval_steps[PDC_PGD_EVAL_ROWS];
struct rt_store;
int pdc_eval_adversary(const char *model, const struct dc_config *c, struct rt_store *store,
                       struct ds_source *src, int64_t data_step, double *out, struct diag *d);

/* pdc_eval_lm.c: the language-model table of `pdc eval` (KL to the target and
 * next-token CE per mask kind, METHOD §7.5), for evaluation programs with kl/
 * metrics (pdc_eval_lm_active). _batches runs the held-out batches after the
 * first (met holds batch 0's metrics, from a run at step0) and averages them into
 * met. */
struct pdc_lm_eval {
    int64_t batches, batch, seq; /* batches of batch × seq tokens */
    int64_t windows;             /* held-out windows of seq tokens in the token file */
};
int pdc_eval_lm_active(const struct dc_prog *p);
/* called with the program of every held-out batch after the first (the caller's own
 * run), before its buffers go */
struct rt_prog;
typedef void (*pdc_batch_fn)(void *ctx, struct rt_prog *rp);
/* met: the first batch's metrics in, the mean over every held-out batch out */
int pdc_eval_lm_batches(const struct dc_prog *p, struct rt_store *store, struct ds_source *src,
                        uint64_t seed, int64_t step0, double *met, struct pdc_lm_eval *lm,
                        pdc_batch_fn each, void *ctx, struct diag *d);
void pdc_eval_lm_print(const struct dc_prog *p, const double *met, const struct pdc_lm_eval *lm);
void pdc_eval_lm_json(struct json_w *w, const struct dc_prog *p, const double *met,
                      const struct pdc_lm_eval *lm);

#endif
