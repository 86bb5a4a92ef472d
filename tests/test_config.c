/* test_config.c — the YAML config reader and the resolved-config writer of the
 * pdc command (tools/pdc_config_yaml.c, tools/pdc_config.c, compiled into this
 * test): the global_shared_transformer settings in both of the reference's
 * spellings (flat `simple_transformer_ci_cfg` beside `ci_fn_type`, and
 * `ci_config: {mode, fn_type, ..}`), errors naming the offending key, and round
 * trips: the resolved config written as YAML and read back gives the same
 * resolved config (compared as the JSON that decomposition.json records). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decomp.h"
#include "harness.h"
#include "pdc_cli.h"

static char tmpdir[256];

static void cleanup(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/c.yaml", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/resolved.yaml", tmpdir);
    unlink(path);
    rmdir(tmpdir);
}

/* text written to a file in a fresh temporary folder; returns its path */
static const char *put(const char *name, const char *text)
{
    static char path[512];
    if (!tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/pdc_test_config.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(cleanup);
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        perror(path);
        exit(1);
    }
    return path;
}

static int load(const char *text, struct dc_config *c, struct diag *d)
{
    memset(d, 0, sizeof *d);
    dc_config_defaults(c, "spd");
    return pdc_config_load(put("c.yaml", text), c, d);
}

/* the resolved config as decomposition.json records it (malloc'd) */
static char *resolved(const struct dc_config *c)
{
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 0);
    pdc_config_json(c, &w);
    char *s = json_w_finish(&w, "config", &d) ? NULL : strdup(w.buf);
    json_w_free(&w);
    return s;
}

#define TF_FLAT                                                                            \
    "ci_fn_type: global_shared_transformer\n"                                              \
    "simple_transformer_ci_cfg:\n"                                                         \
    "  d_model: 16\n"                                                                      \
    "  n_blocks: 3\n"                                                                      \
    "  mlp_hidden_dim: [40, 24]\n"                                                         \
    "  attn_config:\n"                                                                     \
    "    n_heads: 4\n"                                                                     \
    "    max_len: 64\n"                                                                    \
    "    rope_base: 500.0\n"

/* the spd-HEAD / param-decomp form of the same (as in pile_llama_simple_mlp-4L.yaml) */
#define TF_NESTED                                                                          \
    "ci_config:\n"                                                                         \
    "  mode: global\n"                                                                     \
    "  fn_type: global_shared_transformer\n"                                               \
    "  hidden_dims: null\n"                                                                \
    "  reader_hidden_dims: null\n"                                                         \
    "  d_resid_ci_fn: null\n"                                                              \
    "  block_groups: null\n"                                                               \
    "  transition_attn_config: null\n"                                                     \
    "  transition_hidden_dim: null\n"                                                      \
    "  simple_transformer_ci_cfg:\n"                                                       \
    "    d_model: 16\n"                                                                    \
    "    n_blocks: 3\n"                                                                    \
    "    mlp_hidden_dim:\n"                                                                \
    "    - 40\n"                                                                           \
    "    - 24\n"                                                                           \
    "    attn_config: {n_heads: 4, max_len: 64, rope_base: 500.0}\n"

TEST(transformer_fields)
{
    struct dc_config c;
    struct diag d;
    CHECK_EQ(load(TF_FLAT, &c, &d), ST_OK);
    CHECK_EQ(c.ci_fn_type, DC_CI_GLOBAL_SHARED_TRANSFORMER);
    CHECK_EQ(c.ci_tf.d_model, 16);
    CHECK_EQ(c.ci_tf.n_blocks, 3);
    CHECK_EQ(c.ci_tf.n_mlp_hidden, 2);
    CHECK_EQ(c.ci_tf.mlp_hidden_dim[0], 40);
    CHECK_EQ(c.ci_tf.mlp_hidden_dim[1], 24);
    CHECK_EQ(c.ci_tf.n_heads, 4);
    CHECK_EQ(c.ci_tf.max_len, 64);
    CHECK_NEAR(c.ci_tf.rope_base, 500.0, 0);
    char *flat = resolved(&c);
    CHECK_EQ(load(TF_NESTED, &c, &d), ST_OK);
    if (d.status)
        fprintf(stderr, "  %s\n", d.msg);
    char *nested = resolved(&c);
    CHECK(flat && nested && strcmp(flat, nested) == 0); /* the two spellings read the same */
    free(flat);
    free(nested);
}

TEST(transformer_defaults)
{
    struct dc_config c;
    struct diag d;
    int w[DC_MAX_HIDDEN];
    CHECK_EQ(load("ci_fn_type: global_shared_transformer\n"
                  "simple_transformer_ci_cfg: {d_model: 12, n_blocks: 1,\n"
                  "                            attn_config: {n_heads: 3}}\n",
                  &c, &d), ST_OK);
    CHECK_EQ(c.ci_tf.max_len, 2048);        /* AttnConfig defaults */
    CHECK_NEAR(c.ci_tf.rope_base, 10000.0, 0);
    CHECK_EQ(c.ci_tf.n_mlp_hidden, 0);     /* mlp_hidden_dim None: [4·d_model] */
    CHECK_EQ(dc_ci_transformer_mlp(&c.ci_tf, w), 1);
    CHECK_EQ(w[0], 48);
}

static void expect_error(const char *text, const char *want1, const char *want2)
{
    struct dc_config c;
    struct diag d;
    int st = load(text, &c, &d);
    CHECK(st != ST_OK);
    CHECK_STR_CONTAINS(d.msg, want1);
    if (want2)
        CHECK_STR_CONTAINS(d.msg, want2);
}

TEST(transformer_errors)
{
    /* unknown keys are named with their full path */
    expect_error("ci_fn_type: global_shared_transformer\n"
                 "simple_transformer_ci_cfg: {d_model: 16, n_blocks: 2, n_layers: 2,\n"
                 "                            attn_config: {n_heads: 2}}\n",
                 "unknown config key 'simple_transformer_ci_cfg.n_layers'", "c.yaml:2");
    expect_error("ci_fn_type: global_shared_transformer\n"
                 "simple_transformer_ci_cfg: {d_model: 16, n_blocks: 2,\n"
                 "                            attn_config: {n_heads: 2, head_dim: 8}}\n",
                 "unknown config key 'simple_transformer_ci_cfg.attn_config.head_dim'", NULL);
    expect_error("ci_config: {fn_type: global_shared_transformer, mlp_width: 3}\n",
                 "unknown config key 'ci_config.mlp_width'", NULL);
    /* sizes that do not fit together, reported where the settings are */
    expect_error("ci_fn_type: global_shared_transformer\n"
                 "simple_transformer_ci_cfg: {d_model: 16, n_blocks: 2,\n"
                 "                            attn_config: {n_heads: 3}}\n",
                 "c.yaml:2: simple_transformer_ci_cfg.attn_config.n_heads: 3 does not divide "
                 "d_model 16", NULL);
    expect_error("ci_fn_type: global_shared_transformer\n"
                 "simple_transformer_ci_cfg: {d_model: 6, n_blocks: 2,\n"
                 "                            attn_config: {n_heads: 2}}\n",
                 "attn_config.n_heads: d_head = d_model / n_heads = 6 / 2 = 3 must be even", NULL);
    expect_error("ci_fn_type: global_shared_transformer\n"
                 "simple_transformer_ci_cfg: {d_model: 16, attn_config: {n_heads: 2}}\n",
                 "simple_transformer_ci_cfg.n_blocks", "required");
    expect_error("ci_fn_type: global_shared_transformer\n", "simple_transformer_ci_cfg.d_model",
                 "required");
    expect_error("ci_fn_type: global_shared_transformer\n"
                 "simple_transformer_ci_cfg: {d_model: 16, n_blocks: 2, mlp_hidden_dim: [0],\n"
                 "                            attn_config: {n_heads: 2}}\n",
                 "simple_transformer_ci_cfg.mlp_hidden_dim[0]", "not an integer in [1, 1048576]");
    expect_error("ci_config: {mode: layerwise, fn_type: global_shared_transformer}\n",
                 "mode layerwise does not go with fn_type global_shared_transformer", NULL);
    expect_error("ci_config: {fn_type: global_shared_transformer, block_groups: [a]}\n",
                 "ci_config.block_groups: only null is supported", NULL);
}

/* write the resolved config as YAML, read it back: the same resolved config */
static void round_trip(const char *text)
{
    struct dc_config c, back;
    struct diag d;
    CHECK_EQ(load(text, &c, &d), ST_OK);
    if (d.status)
        fprintf(stderr, "  %s\n", d.msg);
    const char *path = put("resolved.yaml", "");
    memset(&d, 0, sizeof d);
    CHECK_EQ(pdc_write_config_yaml(&c, path, &d), ST_OK);
    dc_config_defaults(&back, "spd");
    CHECK_EQ(pdc_config_load(path, &back, &d), ST_OK);
    if (d.status)
        fprintf(stderr, "  %s\n", d.msg);
    /* field by field too: a key the writer left out reads back as its default, and the
     * JSON of both sides would then agree */
    const struct dc_ci_transformer *x = &c.ci_tf, *y = &back.ci_tf;
    CHECK_EQ(back.ci_fn_type, c.ci_fn_type);
    CHECK_EQ(back.n_ci_hidden, c.n_ci_hidden);
    CHECK(memcmp(back.ci_fn_hidden_dims, c.ci_fn_hidden_dims, sizeof c.ci_fn_hidden_dims) == 0);
    if (c.ci_fn_type == DC_CI_GLOBAL_SHARED_TRANSFORMER) {
        CHECK_EQ(y->d_model, x->d_model);
        CHECK_EQ(y->n_blocks, x->n_blocks);
        CHECK_EQ(y->n_heads, x->n_heads);
        CHECK_EQ(y->max_len, x->max_len);
        CHECK_NEAR(y->rope_base, x->rope_base, 0);
        CHECK_EQ(y->n_mlp_hidden, x->n_mlp_hidden);
        CHECK(memcmp(y->mlp_hidden_dim, x->mlp_hidden_dim, sizeof x->mlp_hidden_dim) == 0);
    }
    char *a = resolved(&c), *b = resolved(&back);
    CHECK(a && b && strcmp(a, b) == 0);
    if (a && b && strcmp(a, b))
        fprintf(stderr, "  written: %s\n  read back: %s\n", a, b);
    free(a);
    free(b);
}

TEST(round_trips)
{
    round_trip(TF_FLAT);
    round_trip(TF_NESTED);
    round_trip("ci_fn_type: global_shared_transformer\n" /* mlp_hidden_dim stays the default */
               "simple_transformer_ci_cfg: {d_model: 8, n_blocks: 1, attn_config: {n_heads: 2}}\n");
    round_trip("ci_fn_type: global_shared_mlp\nci_fn_hidden_dims: [12, 7]\nseed: 5\n");
    round_trip("ci_fn_type: mlp\nci_fn_hidden_dims: [16]\nC: 20\n");
}

/* the transformer's section is written only for the transformer */
TEST(resolved_has_transformer_section)
{
    struct dc_config c;
    struct diag d;
    CHECK_EQ(load(TF_FLAT, &c, &d), ST_OK);
    char *s = resolved(&c);
    CHECK_STR_CONTAINS(s, "\"simple_transformer_ci_cfg\":{\"d_model\":16,\"n_blocks\":3,"
                          "\"mlp_hidden_dim\":[40,24],\"attn_config\":{\"n_heads\":4,"
                          "\"max_len\":64,\"rope_base\":500");
    free(s);
    CHECK_EQ(load("ci_fn_type: shared_mlp\n", &c, &d), ST_OK);
    s = resolved(&c);
    CHECK(s && !strstr(s, "simple_transformer_ci_cfg"));
    free(s);
}

/* kl_chunk: the default, a value read and written back, 0 (full logits), no negatives */
TEST(kl_chunk)
{
    struct dc_config c;
    struct diag d;
    CHECK_EQ(load("seed: 1\n", &c, &d), ST_OK);
    CHECK_EQ(c.kl_chunk, 4096);
    CHECK_EQ(load("kl_chunk: 512\n", &c, &d), ST_OK);
    CHECK_EQ(c.kl_chunk, 512);
    char *s = resolved(&c);
    CHECK_STR_CONTAINS(s, "\"kl_chunk\":512");
    free(s);
    CHECK_EQ(load("kl_chunk: 0\n", &c, &d), ST_OK);
    CHECK_EQ(c.kl_chunk, 0);
    round_trip("kl_chunk: 77\n");
    expect_error("kl_chunk: -3\n", "kl_chunk -3", "positive");
}

static const struct test_case tests[] = {
    T(transformer_fields), T(transformer_defaults), T(transformer_errors),
    T(round_trips),        T(resolved_has_transformer_section), T(kl_chunk),
};

TEST_MAIN(tests)
