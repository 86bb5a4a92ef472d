/* test_json.c — JSON writer layout and escaping, double round trips, the strict
 * reader on valid and malformed input (each error names the byte offset). */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "json.h"

static void write_sample(struct json_w *w)
{
    json_obj_begin(w);
    json_key(w, "name");
    json_str(w, "tms");
    json_key(w, "n");
    json_int(w, -42);
    json_key(w, "x");
    json_double(w, 0.1);
    json_key(w, "list");
    json_arr_begin(w);
    json_bool(w, 1);
    json_bool(w, 0);
    json_null(w);
    json_double(w, 2.0);
    json_arr_end(w);
    json_key(w, "empty");
    json_obj_begin(w);
    json_obj_end(w);
    json_key(w, "e2");
    json_arr_begin(w);
    json_arr_end(w);
    json_obj_end(w);
}

TEST(write_compact)
{
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 0);
    write_sample(&w);
    CHECK_EQ(json_w_finish(&w, "t", &d), ST_OK);
    CHECK(strcmp(w.buf, "{\"name\":\"tms\",\"n\":-42,\"x\":0.1,\"list\":[true,false,null,2.0],"
                        "\"empty\":{},\"e2\":[]}") == 0);
    json_w_free(&w);
}

TEST(write_pretty)
{
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 1);
    write_sample(&w);
    CHECK_EQ(json_w_finish(&w, "t", &d), ST_OK);
    const char *want = "{\n  \"name\": \"tms\",\n  \"n\": -42,\n  \"x\": 0.1,\n  \"list\": [\n"
                       "    true,\n    false,\n    null,\n    2.0\n  ],\n  \"empty\": {},\n"
                       "  \"e2\": []\n}";
    if (strcmp(w.buf, want) != 0) {
        fprintf(stderr, "got:\n%s\n", w.buf);
        test_failed_ = 1;
    }
    json_w_free(&w);
}

TEST(write_escapes)
{
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 0);
    json_arr_begin(&w);
    json_str(&w, "q\"b\\s/\n\t\r\b\f\x01\x1f\x7f");
    json_str(&w, "caf\xc3\xa9 \xf0\x9f\x98\x80");            /* UTF-8 passes through */
    json_str(&w, "bad\xff\xc3(\xed\xa0\x80!");               /* invalid: U+FFFD each byte */
    json_str_n(&w, "a\0b", 3);
    json_arr_end(&w);
    CHECK_EQ(json_w_finish(&w, "t", &d), ST_OK);
    const char *want = "[\"q\\\"b\\\\s/\\n\\t\\r\\b\\f\\u0001\\u001f\x7f\","
                       "\"caf\xc3\xa9 \xf0\x9f\x98\x80\","
                       "\"bad\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd!\",\"a\\u0000b\"]";
    if (strcmp(w.buf, want) != 0) {
        fprintf(stderr, "got:  %s\nwant: %s\n", w.buf, want);
        test_failed_ = 1;
    }
    /* and the reader gets the original bytes back */
    struct json_doc doc;
    CHECK_EQ(json_parse(w.buf, w.len, "t", NULL, &doc, &d), ST_OK);
    CHECK(strcmp(doc.root->items[0].s, "q\"b\\s/\n\t\r\b\f\x01\x1f\x7f") == 0);
    CHECK(strcmp(doc.root->items[1].s, "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0);
    CHECK_EQ(doc.root->items[3].slen, 3);
    CHECK(memcmp(doc.root->items[3].s, "a\0b", 4) == 0);
    json_doc_free(&doc);
    json_w_free(&w);
}

static const char *fmt_double(double v, char *buf, size_t n)
{
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 0);
    json_double(&w, v);
    json_w_finish(&w, "t", &d);
    snprintf(buf, n, "%s", w.buf);
    json_w_free(&w);
    return buf;
}

TEST(doubles)
{
    char b[64];
    CHECK(strcmp(fmt_double(0.1, b, sizeof b), "0.1") == 0);
    CHECK(strcmp(fmt_double(1.0, b, sizeof b), "1.0") == 0);
    CHECK(strcmp(fmt_double(-0.0, b, sizeof b), "-0.0") == 0);
    CHECK(strcmp(fmt_double(1e300, b, sizeof b), "1e+300") == 0);
    CHECK(strcmp(fmt_double(1.0 / 3, b, sizeof b), "0.3333333333333333") == 0);
    CHECK(strcmp(fmt_double(NAN, b, sizeof b), "null") == 0);
    CHECK(strcmp(fmt_double(INFINITY, b, sizeof b), "null") == 0);
    CHECK(strcmp(fmt_double(-INFINITY, b, sizeof b), "null") == 0);
    CHECK(strcmp(fmt_double(5e-324, b, sizeof b), "4.94065645841247e-324") == 0); /* shortest that reads back */
    /* random bit patterns survive write -> read exactly */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v))
            continue;
        struct json_doc doc;
        struct diag d = {0};
        fmt_double(v, b, sizeof b);
        if (json_parse(b, strlen(b), "t", NULL, &doc, &d) != ST_OK ||
            memcmp(&doc.root->num, &v, sizeof v) != 0)
            bad++;
        json_doc_free(&doc);
    }
    CHECK_EQ(bad, 0);
}

TEST(ints)
{
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 0);
    json_arr_begin(&w);
    json_int(&w, INT64_MIN);
    json_int(&w, INT64_MAX);
    json_int(&w, 0);
    json_arr_end(&w);
    CHECK_EQ(json_w_finish(&w, "t", &d), ST_OK);
    CHECK(strcmp(w.buf, "[-9223372036854775808,9223372036854775807,0]") == 0);
    struct json_doc doc;
    CHECK_EQ(json_parse(w.buf, w.len, "t", NULL, &doc, &d), ST_OK);
    CHECK(doc.root->items[0].is_int && doc.root->items[0].i == INT64_MIN);
    CHECK(doc.root->items[1].is_int && doc.root->items[1].i == INT64_MAX);
    json_doc_free(&doc);
    json_w_free(&w);
    /* one past the range: still a number, no longer an exact int */
    const char *big = "[9223372036854775808, -9223372036854775809, 1.5, 2e3]";
    CHECK_EQ(json_parse(big, strlen(big), "t", NULL, &doc, &d), ST_OK);
    CHECK(!doc.root->items[0].is_int && doc.root->items[0].num == 9223372036854775808.0);
    CHECK(!doc.root->items[1].is_int);
    CHECK(!doc.root->items[2].is_int && doc.root->items[2].num == 1.5);
    CHECK(!doc.root->items[3].is_int && doc.root->items[3].num == 2000.0);
    json_doc_free(&doc);
}

static int misuse(void (*f)(struct json_w *), const char *want)
{
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 0);
    f(&w);
    int st = json_w_finish(&w, "doc.json", &d);
    json_w_free(&w);
    CHECK_STR_CONTAINS(d.msg, "doc.json");
    CHECK_STR_CONTAINS(d.msg, want);
    return st;
}

static void m_nokey(struct json_w *w) { json_obj_begin(w); json_int(w, 1); json_obj_end(w); }
static void m_open(struct json_w *w) { json_arr_begin(w); json_int(w, 1); }
static void m_twotop(struct json_w *w) { json_int(w, 1); json_int(w, 2); }
static void m_dangling(struct json_w *w) { json_obj_begin(w); json_key(w, "a"); json_obj_end(w); }
static void m_mismatch(struct json_w *w) { json_obj_begin(w); json_arr_end(w); }
static void m_empty(struct json_w *w) { (void)w; }

TEST(writer_misuse)
{
    CHECK(misuse(m_nokey, "without a key") != ST_OK);
    CHECK(misuse(m_open, "unclosed") != ST_OK);
    CHECK(misuse(m_twotop, "more than one top-level") != ST_OK);
    CHECK(misuse(m_dangling, "key without a value") != ST_OK);
    CHECK(misuse(m_mismatch, "json_arr_end") != ST_OK);
    CHECK(misuse(m_empty, "no value") != ST_OK);
}

TEST(read_dom)
{
    const char *s = " {\"a\": [1, 2.5, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {\"c\": null, \"d\": true},"
                    " \"\": false}\n";
    struct json_doc doc;
    struct diag d = {0};
    CHECK_EQ(json_parse(s, strlen(s), "t", NULL, &doc, &d), ST_OK);
    const struct json_node *r = doc.root;
    CHECK(r->type == JSON_OBJ && r->n == 3);
    const struct json_node *a = json_get(r, "a");
    CHECK(a && a->type == JSON_ARR && a->n == 3);
    CHECK(json_at(a, 0)->is_int && json_at(a, 0)->i == 1);
    CHECK(json_at(a, 1)->num == 2.5);
    CHECK(strcmp(json_at(a, 2)->s, "x\xc3\xa9\xf0\x9f\x98\x80") == 0);
    CHECK(json_at(a, 3) == NULL);
    CHECK(json_get(json_get(r, "b"), "c")->type == JSON_NULL);
    CHECK(json_get(json_get(r, "b"), "d")->b == 1);
    CHECK(json_get(r, "")->type == JSON_BOOL);
    CHECK(json_get(r, "zz") == NULL);
    CHECK(json_get(a, "a") == NULL);
    CHECK_EQ(json_get(r, "b")->offset, 45);
    json_doc_free(&doc);
}

struct bad_case {
    const char *text;
    const char *msg;
    const char *where;
};

TEST(read_malformed)
{
    static const struct bad_case cases[] = {
        {"", "unexpected end", "byte 0 "},
        {"   ", "unexpected end", "byte 3 "},
        {"[1,2,]", "unexpected character ']'", "byte 5 "},
        {"{\"a\":1,}", "object key", "byte 7 "},
        {"{'a':1}", "object key", "byte 1 "},
        {"{\"a\" 1}", "':' expected", "byte 5 "},
        {"[1 2]", "',' or ']'", "byte 3 "},
        {"[01]", "leading zeros", "byte 1 "},
        {"[-]", "invalid number", "byte 1 "},
        {"[1.]", "after '.'", "byte 3 "},
        {"[.5]", "unexpected character '.'", "byte 1 "},
        {"[1e]", "exponent", "byte 3 "},
        {"[1e999]", "out of range", "byte 1 "},
        {"NaN", "unexpected character 'N'", "byte 0 "},
        {"[Infinity]", "unexpected character 'I'", "byte 1 "},
        {"tru", "invalid literal", "byte 0 "},
        {"nul", "invalid literal", "byte 0 "},
        {"\"abc", "unterminated string", "byte 0 "},
        {"\"abc\\", "unterminated string", "byte 0 "},
        {"\"a\\x\"", "invalid escape \\x", "byte 2 "},
        {"\"a\nb\"", "control character 0x0a", "byte 2 "},
        {"\"\\u12g4\"", "bad hex digit", "byte 5 "},
        {"\"\\udc00\"", "lone low surrogate", "byte 1 "},
        {"\"\\ud800x\"", "high surrogate", "byte 1 "},
        {"\"\\ud800\\u0041\"", "high surrogate", "byte 1 "},
        {"\"\xff\"", "invalid UTF-8", "byte 1 "},
        {"\"\xc0\xaf\"", "invalid UTF-8", "byte 1 "},       /* overlong '/' */
        {"\"\xed\xa0\x80\"", "invalid UTF-8", "byte 1 "},   /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8", "byte 1 "}, /* > U+10FFFF */
        {"{\"a\":1,\"b\":2,\"a\":3}", "duplicate key \"a\"", "byte 17 "},
        {"[1] x", "unexpected data after", "byte 4 "},
        {"[1]\n// c", "unexpected data after", "line 2, col 1"},
        {"\xef\xbb\xbf[1]", "unexpected byte 0xef", "byte 0 "},
        {"[\n  1,\n  ?]", "unexpected character '?'", "line 3, col 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_doc doc;
        struct diag d = {0};
        int st = json_parse(cases[i].text, strlen(cases[i].text), "in.json", NULL, &doc, &d);
        if (st == ST_OK) {
            fprintf(stderr, "  case %zu accepted: %s\n", i, cases[i].text);
            test_failed_ = 1;
            json_doc_free(&doc);
            continue;
        }
        CHECK(doc.root == NULL);
        CHECK_STR_CONTAINS(d.msg, "in.json: ");
        CHECK_STR_CONTAINS(d.msg, cases[i].msg);
        CHECK_STR_CONTAINS(d.msg, cases[i].where);
    }
}

TEST(read_limits)
{
    char deep[300];
    for (int i = 0; i < 150; i++) {
        deep[i] = '[';
        deep[299 - i] = ']';
    }
    struct json_doc doc;
    struct diag d = {0};
    CHECK(json_parse(deep, 300, "deep", NULL, &doc, &d) != ST_OK);
    CHECK_STR_CONTAINS(d.msg, "nesting deeper than 128");
    struct json_limits lim = {200, 0};
    struct diag d2 = {0};
    CHECK_EQ(json_parse(deep, 300, "deep", &lim, &doc, &d2), ST_OK);
    json_doc_free(&doc);
    struct json_limits small = {0, 10};
    struct diag d3 = {0};
    CHECK(json_parse("[1,2,3,4,5,6]", 13, "big", &small, &doc, &d3) != ST_OK);
    CHECK_STR_CONTAINS(d3.msg, "exceeds the limit");
    /* input need not be NUL-terminated: the length bounds every read */
    struct diag d4 = {0};
    CHECK(json_parse("[123", 3, "cut", NULL, &doc, &d4) != ST_OK);
    CHECK_STR_CONTAINS(d4.msg, "byte 3 ");
}

TEST(big_object)
{
    /* many keys: the duplicate check is a sort, not n^2 */
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 0);
    json_obj_begin(&w);
    char k[32];
    for (int i = 0; i < 200000; i++) {
        snprintf(k, sizeof k, "t%d", (i * 7919) % 200000);
        json_key(&w, k);
        json_int(&w, i);
    }
    json_obj_end(&w);
    CHECK_EQ(json_w_finish(&w, "t", &d), ST_OK);
    struct json_doc doc;
    CHECK_EQ(json_parse(w.buf, w.len, "t", NULL, &doc, &d), ST_OK);
    CHECK_EQ(doc.root->n, 200000);
    json_doc_free(&doc);
    json_w_free(&w);
}

TEST(file_round_trip)
{
    char dir[] = "/tmp/pdc_test_json_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/decomposition.json", dir);
    struct json_w w;
    struct diag d = {0};
    json_w_init(&w, 1);
    write_sample(&w);
    CHECK_EQ(json_w_write_file(&w, path, &d), ST_OK);
    CHECK(w.buf[w.len - 1] == '\n');
    json_w_free(&w);
    struct json_doc doc;
    CHECK_EQ(json_parse_file(path, NULL, &doc, &d), ST_OK);
    CHECK(strcmp(json_get(doc.root, "name")->s, "tms") == 0);
    CHECK(json_get(doc.root, "x")->num == 0.1);
    CHECK(json_get(doc.root, "list")->items[3].num == 2.0);
    CHECK(!json_get(doc.root, "list")->items[3].is_int);
    json_doc_free(&doc);
    unlink(path);
    struct diag d2 = {0};
    CHECK(json_parse_file(path, NULL, &doc, &d2) != ST_OK);
    CHECK_STR_CONTAINS(d2.msg, path);
    rmdir(dir);
}

static const struct test_case tests[] = {
    T(write_compact), T(write_pretty),   T(write_escapes), T(doubles),
    T(ints),          T(writer_misuse),  T(read_dom),      T(read_malformed),
    T(read_limits),   T(big_object),     T(file_round_trip),
};
TEST_MAIN(tests)
