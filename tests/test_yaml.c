/* test_yaml.c — the config-file YAML subset: the reference-style example, block
 * and flow mixes, every rejection (with its line:col), and typed reads whose
 * errors name the key path. */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "io.h"
#include "yaml.h"

static const char *example =
    "seed: 0\n"
    "C: 40\n"
    "batch_size: 4096\n"
    "steps: 10000\n"
    "lr_schedule: {start_val: 1.0e-3, fn_type: cosine, warmup_pct: 0.0, final_val_frac: 0.0}\n"
    "module_info:\n"
    "  - module_pattern: \"linear1\"\n"
    "    C: 20\n"
    "  - {module_pattern: \"linear2\", C: 20}\n"
    "loss_metric_configs:\n"
    "  - classname: \"ImportanceMinimalityLoss\"\n"
    "    coeff: 3e-3\n"
    "    pnorm: 1.0\n"
    "    eps: 1.0e-12\n"
    "ci_fn_hidden_dims: [16]\n"
    "sigmoid_type: \"leaky_hard\"\n"
    "faithfulness_warmup_steps: 200\n"
    "# comments\n";

static int parse(const char *text, struct yaml_doc *doc, struct diag *d)
{
    memset(d, 0, sizeof *d);
    int st = yaml_parse(text, strlen(text), "cfg.yaml", doc, d);
    if (st)
        fprintf(stderr, "  parse failed: %s\n", d->msg);
    return st;
}

static double num(const struct yaml_node *n)
{
    double v = NAN;
    struct diag d = {0};
    if (yaml_as_double(n, &v, &d))
        fprintf(stderr, "  %s\n", d.msg);
    return v;
}

static int64_t inum(const struct yaml_node *n)
{
    int64_t v = -999;
    struct diag d = {0};
    if (yaml_as_int64(n, &v, &d))
        fprintf(stderr, "  %s\n", d.msg);
    return v;
}

static const char *str(const struct yaml_node *n)
{
    return n && n->kind == YAML_SCALAR ? n->str : "(not a scalar)";
}

TEST(reference_example)
{
    struct yaml_doc doc;
    struct diag d;
    CHECK_EQ(parse(example, &doc, &d), ST_OK);
    const struct yaml_node *r = doc.root;
    CHECK(r && r->kind == YAML_MAP);
    CHECK_EQ(r->n, 10);
    CHECK(strcmp(r->keys[0], "seed") == 0 && strcmp(r->keys[9], "faithfulness_warmup_steps") == 0);
    CHECK_EQ(inum(yaml_get(r, "seed")), 0);
    CHECK_EQ(inum(yaml_get(r, "C")), 40);
    CHECK_EQ(inum(yaml_get(r, "batch_size")), 4096);
    CHECK_EQ(inum(yaml_get(r, "steps")), 10000);
    const struct yaml_node *lr = yaml_get(r, "lr_schedule");
    CHECK(lr && lr->kind == YAML_MAP && lr->n == 4);
    CHECK(num(yaml_get(lr, "start_val")) == 1.0e-3);
    CHECK(strcmp(str(yaml_get(lr, "fn_type")), "cosine") == 0);
    CHECK(num(yaml_get(lr, "final_val_frac")) == 0.0);
    CHECK(strcmp(yaml_get(lr, "warmup_pct")->path, "lr_schedule.warmup_pct") == 0);
    const struct yaml_node *mi = yaml_get(r, "module_info");
    CHECK(mi && mi->kind == YAML_LIST && mi->n == 2);
    CHECK(strcmp(str(yaml_get(yaml_at(mi, 0), "module_pattern")), "linear1") == 0);
    CHECK(yaml_get(yaml_at(mi, 0), "module_pattern")->quoted == '"');
    CHECK_EQ(inum(yaml_get(yaml_at(mi, 0), "C")), 20);
    CHECK(strcmp(str(yaml_get(yaml_at(mi, 1), "module_pattern")), "linear2") == 0);
    CHECK_EQ(inum(yaml_get(yaml_at(mi, 1), "C")), 20);
    CHECK(strcmp(yaml_get(yaml_at(mi, 1), "C")->path, "module_info[1].C") == 0);
    const struct yaml_node *l0 = yaml_at(yaml_get(r, "loss_metric_configs"), 0);
    CHECK(strcmp(str(yaml_get(l0, "classname")), "ImportanceMinimalityLoss") == 0);
    CHECK(num(yaml_get(l0, "coeff")) == 3e-3); /* YAML 1.2: 3e-3 is a float (PyYAML: a string) */
    CHECK(num(yaml_get(l0, "pnorm")) == 1.0);
    CHECK(num(yaml_get(l0, "eps")) == 1.0e-12);
    CHECK_EQ(yaml_get(l0, "eps")->line, 14);
    CHECK_EQ(yaml_get(l0, "eps")->col, 10);
    const struct yaml_node *h = yaml_get(r, "ci_fn_hidden_dims");
    CHECK(h && h->kind == YAML_LIST && h->n == 1 && inum(yaml_at(h, 0)) == 16);
    CHECK(strcmp(str(yaml_get(r, "sigmoid_type")), "leaky_hard") == 0);
    CHECK_EQ(inum(yaml_get(r, "faithfulness_warmup_steps")), 200);
    CHECK(yaml_get(r, "nope") == NULL);
    CHECK(yaml_get(NULL, "x") == NULL && yaml_at(r, 0) == NULL);
    yaml_doc_free(&doc);
}

TEST(block_flow_mixes)
{
    const char *text =
        "---   # explicit start\r\n"
        "top:\n"
        "- a\n"                       /* sequence at its key's indentation */
        "- - n1\n"                    /* compact nested sequence */
        "  - n2\n"
        "-\n"
        "  k: v\n"
        "- [1, [2, 3], {x: y},]\n"    /* trailing comma */
        "multi: {a: [1,\n"
        "    2],   # comment inside flow\n"
        "  b: 'it''s', \"c\": \"t\\tq\\\"\\u00e9\\x41\"}\n"
        "empty:\n"
        "tilde: ~\n"
        "nulls: {p, q: }\n"
        "'quoted key': x#not-a-comment\n"
        "url: http://example.com/a:b\n"
        "e1: []\n"
        "e2: {}\n"
        "neg: -5\n"
        "deep:\n"
        "    a:\n"
        "        b: [c]\n"
        "    d: 1\n"
        "last: \"\"\n";
    struct yaml_doc doc;
    struct diag d;
    CHECK_EQ(parse(text, &doc, &d), ST_OK);
    const struct yaml_node *r = doc.root, *top = yaml_get(r, "top");
    CHECK(top && top->kind == YAML_LIST && top->n == 4);
    CHECK(strcmp(str(yaml_at(top, 0)), "a") == 0);
    CHECK(yaml_at(top, 1)->kind == YAML_LIST && yaml_at(top, 1)->n == 2);
    CHECK(strcmp(str(yaml_at(yaml_at(top, 1), 1)), "n2") == 0);
    CHECK(strcmp(str(yaml_get(yaml_at(top, 2), "k")), "v") == 0);
    const struct yaml_node *f = yaml_at(top, 3);
    CHECK(f->kind == YAML_LIST && f->n == 3);
    CHECK(yaml_at(f, 1)->kind == YAML_LIST && inum(yaml_at(yaml_at(f, 1), 1)) == 3);
    CHECK(strcmp(str(yaml_get(yaml_at(f, 2), "x")), "y") == 0);
    CHECK(strcmp(yaml_at(yaml_at(f, 1), 0)->path, "top[3][1][0]") == 0);
    const struct yaml_node *m = yaml_get(r, "multi");
    CHECK(m && m->n == 3 && yaml_get(m, "a")->n == 2);
    CHECK(strcmp(str(yaml_get(m, "b")), "it's") == 0 && yaml_get(m, "b")->quoted == '\'');
    CHECK(strcmp(str(yaml_get(m, "c")), "t\tq\"\xc3\xa9" "A") == 0);
    CHECK(yaml_is_null(yaml_get(r, "empty")));
    CHECK(yaml_is_null(yaml_get(r, "tilde")));
    const struct yaml_node *nl = yaml_get(r, "nulls");
    CHECK(nl && nl->n == 2 && yaml_is_null(yaml_get(nl, "p")) && yaml_is_null(yaml_get(nl, "q")));
    CHECK(strcmp(str(yaml_get(r, "quoted key")), "x#not-a-comment") == 0);
    CHECK(strcmp(str(yaml_get(r, "url")), "http://example.com/a:b") == 0);
    CHECK(yaml_get(r, "e1")->kind == YAML_LIST && yaml_get(r, "e1")->n == 0);
    CHECK(yaml_get(r, "e2")->kind == YAML_MAP && yaml_get(r, "e2")->n == 0);
    CHECK_EQ(inum(yaml_get(r, "neg")), -5);
    CHECK(strcmp(str(yaml_at(yaml_get(yaml_get(yaml_get(r, "deep"), "a"), "b"), 0)), "c") == 0);
    CHECK_EQ(inum(yaml_get(yaml_get(r, "deep"), "d")), 1);
    const struct yaml_node *last = yaml_get(r, "last");
    CHECK(last && last->quoted == '"' && !yaml_is_null(last) && last->str[0] == 0);
    yaml_doc_free(&doc);

    /* top-level sequence, top-level scalar, empty document */
    CHECK_EQ(parse("- 1\n- 2\n", &doc, &d), ST_OK);
    CHECK(doc.root->kind == YAML_LIST && doc.root->n == 2);
    CHECK(strcmp(yaml_at(doc.root, 1)->path, "[1]") == 0);
    yaml_doc_free(&doc);
    CHECK_EQ(parse("  # only a comment\n\n", &doc, &d), ST_OK);
    CHECK(yaml_is_null(doc.root));
    yaml_doc_free(&doc);
    CHECK_EQ(parse("hello", &doc, &d), ST_OK);
    CHECK(strcmp(str(doc.root), "hello") == 0);
    yaml_doc_free(&doc);
}

struct bad { const char *text; const char *want; const char *where; };

TEST(rejections)
{
    static const struct bad cases[] = {
        {"a:\n\tb: 1\n", "tab character in indentation", "cfg.yaml:2:1:"},
        {"a:\n  \tb: 1\n", "tab character in indentation", "cfg.yaml:2:3:"},
        {"a: &x 1\n", "anchors", "cfg.yaml:1:4:"},
        {"a: 1\nb: *x\n", "aliases", "cfg.yaml:2:4:"},
        {"a: !!str 1\n", "tags", "cfg.yaml:1:4:"},
        {"- !foo x\n", "tags", "cfg.yaml:1:3:"},
        {"&a k: v\n", "anchors", "cfg.yaml:1:1:"},
        {"a: 1\n---\nb: 2\n", "multiple documents", "cfg.yaml:2:1:"},
        {"a: 1\n...\n", "multiple documents", "cfg.yaml:2:1:"},
        {"%YAML 1.2\n---\na: 1\n", "directives", "cfg.yaml:1:1:"},
        {"a: 1\nb: 2\na: 3\n", "duplicate key \"a\" (first at line 1)", "cfg.yaml:3:1:"},
        {"m:\n  x: 1\n  x: 2\n", "duplicate key \"x\"", "cfg.yaml:3:3:"},
        {"a: {x: 1, x: 2}\n", "duplicate key \"x\"", "cfg.yaml:1:11:"},
        {"a: |\n  text\n", "block scalars", "cfg.yaml:1:4:"},
        {"a: >\n  text\n", "block scalars", "cfg.yaml:1:4:"},
        {"? a\n: b\n", "explicit keys", "cfg.yaml:1:1:"},
        {"a: b: c\n", "mapping values are not allowed", "cfg.yaml:1:4:"},
        {"a: - b\n", "block sequence cannot start", "cfg.yaml:1:4:"},
        {"a: 1\n  b: 2\n", "bad indentation", "cfg.yaml:2:3:"},
        {"a:\n    b: 1\n  c: 2\n", "bad indentation", "cfg.yaml:3:3:"},
        {"a: hello\n  world\n", "multi-line scalars", "cfg.yaml:2:3:"},
        {"a: 1\n- b\n", "sequence item where a mapping key", "cfg.yaml:2:1:"},
        {"- a\nb: 1\n", "unexpected content after", "cfg.yaml:2:1:"},
        {"a: 1\nb\n", "expected \"key: value\"", "cfg.yaml:2:1:"},
        {"a: \"abc\n", "unterminated quoted scalar", "cfg.yaml:1:4:"},
        {"a: 'x\n  y'\n", "unterminated quoted scalar", "cfg.yaml:1:4:"},
        {"a: [1, 2\n", "unterminated flow collection", "cfg.yaml:1:4:"},
        {"a: [1 2]x\n", "unexpected text after a value", "cfg.yaml:1:9:"},
        {"a: {b: 1} c\n", "unexpected text after a value", "cfg.yaml:1:11:"},
        {"a: [x: 1]\n", "key: value pairs inside [ ]", "cfg.yaml:1:6:"},
        {"a: [1, , 2]\n", "unexpected ','", "cfg.yaml:1:8:"},
        {"a: {[1]: 2}\n", "collections as mapping keys", "cfg.yaml:1:5:"},
        {"a: \"\\q\"\n", "unknown escape \\q", "cfg.yaml:1:5:"},
        {"a: \"\\ud800\"\n", "not a Unicode scalar value", "cfg.yaml:1:5:"},
        {"a: @x\n", "'@' cannot start", "cfg.yaml:1:4:"},
        {"a: 1 # ok\nb: \"x\" y\n", "unexpected text after a value", "cfg.yaml:2:8:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct yaml_doc doc;
        struct diag d = {0};
        int st = yaml_parse(cases[i].text, strlen(cases[i].text), "cfg.yaml", &doc, &d);
        if (st == ST_OK) {
            fprintf(stderr, "  case %zu accepted: %s\n", i, cases[i].text);
            test_failed_ = 1;
            yaml_doc_free(&doc);
            continue;
        }
        CHECK(doc.root == NULL);
        if (!strstr(d.msg, cases[i].want) || !strstr(d.msg, cases[i].where)) {
            fprintf(stderr, "  case %zu: got \"%s\", want \"%s\" at \"%s\"\n", i, d.msg,
                    cases[i].want, cases[i].where);
            test_failed_ = 1;
        }
    }
    struct yaml_doc doc;
    struct diag d = {0};
    CHECK(yaml_parse("a: 1\nb: \0x\n", 11, "cfg.yaml", &doc, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "cfg.yaml:2:4: NUL byte");
    /* nesting is bounded, flow and block alike */
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    struct diag d2 = {0};
    CHECK(yaml_parse(deep, sizeof deep, "deep.yaml", &doc, &d2) != ST_OK);
    CHECK_STR_CONTAINS(d2.msg, "nesting deeper than 64");
}

TEST(typed_reads)
{
    const char *text = "loss_metric_configs:\n"
                       "  - coeff: \"abc\"\n"
                       "    q: \"2.5\"\n"
                       "    hex: 0x1F\n"
                       "    oct: 0o17\n"
                       "    steps: 1e4\n"
                       "    half: 1.5\n"
                       "    big: 9223372036854775808\n"
                       "    inf: -.inf\n"
                       "    nan: .nan\n"
                       "    word: nan\n"
                       "    huge: 1e999\n"
                       "    t: true\n"
                       "    F: False\n"
                       "    yes: yes\n"
                       "    nothing:\n"
                       "    lst: [1]\n";
    struct yaml_doc doc;
    struct diag d;
    CHECK_EQ(parse(text, &doc, &d), ST_OK);
    const struct yaml_node *c = yaml_at(yaml_get(doc.root, "loss_metric_configs"), 0);
    double v;
    int64_t i;
    int b;
    struct diag e = {0};
    CHECK(yaml_as_double(yaml_get(c, "coeff"), &v, &e) != ST_OK);
    CHECK(strcmp(e.msg, "cfg.yaml:2:12: loss_metric_configs[0].coeff: \"abc\" is not a number") == 0);
    CHECK(num(yaml_get(c, "q")) == 2.5);
    CHECK_EQ(inum(yaml_get(c, "hex")), 31);
    CHECK(num(yaml_get(c, "hex")) == 31.0);
    CHECK_EQ(inum(yaml_get(c, "oct")), 15);
    CHECK_EQ(inum(yaml_get(c, "steps")), 10000);
    struct diag e2 = {0};
    CHECK(yaml_as_int64(yaml_get(c, "half"), &i, &e2) != ST_OK);
    CHECK_STR_CONTAINS(e2.msg, "loss_metric_configs[0].half: \"1.5\" is not an integer");
    struct diag e3 = {0};
    CHECK(yaml_as_int64(yaml_get(c, "big"), &i, &e3) != ST_OK);
    CHECK_STR_CONTAINS(e3.msg, "out of range");
    CHECK(isinf(num(yaml_get(c, "inf"))) && num(yaml_get(c, "inf")) < 0);
    CHECK(isnan(num(yaml_get(c, "nan"))));
    struct diag e4 = {0};
    CHECK(yaml_as_double(yaml_get(c, "word"), &v, &e4) != ST_OK); /* strtod would say NaN */
    struct diag e5 = {0};
    CHECK(yaml_as_double(yaml_get(c, "huge"), &v, &e5) != ST_OK);
    CHECK(yaml_as_bool(yaml_get(c, "t"), &b, &e) == ST_OK && b == 1);
    CHECK(yaml_as_bool(yaml_get(c, "F"), &b, &e) == ST_OK && b == 0);
    struct diag e6 = {0};
    CHECK(yaml_as_bool(yaml_get(c, "yes"), &b, &e6) != ST_OK);
    CHECK_STR_CONTAINS(e6.msg, "loss_metric_configs[0].yes: \"yes\" is not a boolean");
    struct diag e7 = {0};
    CHECK(yaml_as_double(yaml_get(c, "nothing"), &v, &e7) != ST_OK);
    CHECK_STR_CONTAINS(e7.msg, "loss_metric_configs[0].nothing: expected a number, found null");
    struct diag e8 = {0};
    CHECK(yaml_as_int64(yaml_get(c, "lst"), &i, &e8) != ST_OK);
    CHECK_STR_CONTAINS(e8.msg, "cfg.yaml:17:10: loss_metric_configs[0].lst: expected an integer, found a sequence");
    const char *s;
    CHECK(yaml_as_str(yaml_get(c, "coeff"), &s, &e) == ST_OK && strcmp(s, "abc") == 0);
    struct diag e9 = {0};
    CHECK(yaml_need(c, "pnorm", &e9) == NULL);
    CHECK_STR_CONTAINS(e9.msg, "cfg.yaml:2:5: loss_metric_configs[0]: missing key \"pnorm\"");
    CHECK(yaml_need(c, "coeff", &e9) == yaml_get(c, "coeff"));
    struct diag e10 = {0};
    CHECK(yaml_as_double(NULL, &v, &e10) != ST_OK);
    yaml_doc_free(&doc);
}

TEST(file)
{
    char path[] = "/tmp/pdc_test_yaml_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    struct diag d = {0};
    CHECK_EQ(io_write_atomic(path, example, strlen(example), &d), ST_OK);
    struct yaml_doc doc;
    CHECK_EQ(yaml_parse_file(path, &doc, &d), ST_OK);
    const struct yaml_node *seed = yaml_get(doc.root, "seed");
    CHECK(seed && strcmp(seed->file, path) == 0);
    yaml_doc_free(&doc);
    unlink(path);
    struct diag d2 = {0};
    CHECK(yaml_parse_file(path, &doc, &d2) != ST_OK);
    CHECK_STR_CONTAINS(d2.msg, path);
}

static const struct test_case tests[] = {
    T(reference_example), T(block_flow_mixes), T(rejections), T(typed_reads), T(file),
};
TEST_MAIN(tests)
