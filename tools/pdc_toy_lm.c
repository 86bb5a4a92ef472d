/* pdc_toy_lm.c — `pdc toy tiny-lm -o MODEL.onnx [--seed S] [--steps N] [--batch B]
 * [--seq T] [--text PATH] [--tokens-out FILE.bin]`: train the tiny decoder-only
 * transformer of passes/toy_lm.h on the bytes of plain text found on the machine
 * and write it as ONNX, with the byte tokens as a u16 token file for
 * `pdc MODEL.onnx --data FILE.bin`.
 *
 * Text: PATH is a file or a folder (default /usr/share/common-licenses); a folder's
 * regular files are read in byte order of their names, each file once (a symlink to
 * a file already read is skipped), and concatenated. The token file's last 5 % is
 * the held-out part (runtime/data.h, the decomposition's default holdout): training
 * draws windows from the rest only. The summary compares the written model, read
 * back and run by pdc, with a unigram (byte-frequency) model of the training part,
 * on the same predicted positions, in bits per byte. Deterministic from --seed. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "onnx.h"
#include "pass.h"
#include "pdc_cli.h"
#include "target.h"
#include "toy_lm.h"
#include "train.h"

#define DEFAULT_TEXT "/usr/share/common-licenses"
#define HOLDOUT 0.05     /* data.h's default: what `pdc MODEL --data FILE.bin` holds out */
#define MAX_TEXT_FILES 4096
#define MAX_TEXT_BYTES ((size_t)64 << 20)

struct lm_args {
    const char *out, *text, *tokens_out;
    uint64_t seed;
    struct toy_lm_spec spec;
};

/* the bytes to train on, and the split the token file will have */
struct corpus {
    unsigned char *bytes;
    int64_t n, ntrain;
    int nfiles;
};

static int lm_usage(void)
{
    const struct toy_lm_spec *s = toy_lm_default();
    fprintf(stderr, "usage: pdc toy tiny-lm -o MODEL.onnx [--seed S] [--steps N] [--batch B] "
            "[--seq T] [--text FILE|DIR] [--tokens-out FILE.bin]\n"
            "  defaults: %lld steps, batch %lld, seq %lld (also the context length), text "
            "from %s\n", (long long)s->steps, (long long)s->batch, (long long)s->seq,
            DEFAULT_TEXT);
    return 2;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_int(const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out,
                     struct diag *d)
{
    char *e;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    if (e == v || *e || errno || x < lo || x > hi)
        return diag_set(d, ST_ERR_INVALID, "toy tiny-lm: %s '%s' is not an integer in [%lld, "
                        "%lld]", opt, v, (long long)lo, (long long)hi);
    *out = x;
    return ST_OK;
}

/* returns -1 for a usage error, else a status */
static int parse_args(int argc, char **argv, struct lm_args *a, struct diag *d)
{
    memset(a, 0, sizeof *a);
    a->spec = *toy_lm_default();
    a->text = DEFAULT_TEXT;
    int64_t seed = 0;
    for (int i = 1; i < argc; i++) { /* argv[0] is the target's name */
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int st = ST_OK;
        if (!v)
            return -1;
        if (strcmp(o, "-o") == 0)
            a->out = v;
        else if (strcmp(o, "--text") == 0)
            a->text = v;
        else if (strcmp(o, "--tokens-out") == 0)
            a->tokens_out = v;
        else if (strcmp(o, "--seed") == 0)
            st = parse_int(o, v, 0, INT64_MAX, &seed, d);
        else if (strcmp(o, "--steps") == 0)
            st = parse_int(o, v, 1, INT64_MAX, &a->spec.steps, d);
        else if (strcmp(o, "--batch") == 0)
            st = parse_int(o, v, 1, 1 << 16, &a->spec.batch, d);
        else if (strcmp(o, "--seq") == 0 && !(st = parse_int(o, v, 2, 4096, &a->spec.seq, d)))
            a->spec.ctx = a->spec.seq; /* the position table covers the training windows */
        else if (!st)
            return -1;
        if (st)
            return st;
        i++;
    }
    a->seed = (uint64_t)seed;
    return a->out ? ST_OK : -1;
}

/* ---- text -------------------------------------------------------------------------- */

static int append_file(struct corpus *c, const char *path, struct diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return diag_set(d, ST_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    unsigned char buf[65536];
    size_t k;
    int st = ST_OK;
    while (!st && (k = fread(buf, 1, sizeof buf, f)) > 0) {
        if ((size_t)c->n + k > MAX_TEXT_BYTES) {
            st = diag_set(d, ST_ERR_INVALID, "%s: more than %zu bytes of text; the tiny LM "
                          "needs far less (pass --text with a smaller file)", path, MAX_TEXT_BYTES);
            break;
        }
        unsigned char *nb = realloc(c->bytes, (size_t)c->n + k);
        if (!nb) {
            st = diag_set(d, ST_ERR_NOMEM, "out of memory reading %s", path);
            break;
        }
        c->bytes = nb;
        memcpy(c->bytes + c->n, buf, k);
        c->n += (int64_t)k;
    }
    if (!st && ferror(f))
        st = diag_set(d, ST_ERR_IO, "%s: read error", path);
    fclose(f);
    c->nfiles += !st;
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the regular files of dir (following symlinks) by name, each target once */
static int read_dir(struct corpus *c, const char *dir, struct diag *d)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return diag_set(d, ST_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    char *names[MAX_TEXT_FILES];
    int n = 0, st = ST_OK;
    struct dirent *e;
    while (!st && (e = readdir(dp)) && n < MAX_TEXT_FILES) {
        if (e->d_name[0] == '.')
            continue;
        if ((names[n] = strdup(e->d_name)))
            n++;
        else
            st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    closedir(dp);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    char (*seen)[PATH_MAX] = calloc((size_t)n + 1, sizeof *seen);
    int nseen = 0;
    if (!st && !seen)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < n; i++) {
        char path[PATH_MAX + 256], real[PATH_MAX];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || !realpath(path, real))
            continue;
        int dup = 0;
        for (int k = 0; k < nseen && !dup; k++)
            dup = strcmp(seen[k], real) == 0;
        if (dup) /* e.g. GPL -> GPL-3: the same text twice would leak into the held-out tail */
            continue;
        snprintf(seen[nseen++], PATH_MAX, "%s", real);
        st = append_file(c, path, d);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(seen);
    return st;
}

static int read_text(struct corpus *c, const char *path, int64_t seq, struct diag *d)
{
    struct stat sb;
    memset(c, 0, sizeof *c);
    if (stat(path, &sb) != 0)
        return diag_set(d, ST_ERR_IO, "toy tiny-lm: no text at %s (%s); pass --text FILE or "
                        "--text DIR", path, strerror(errno));
    int st = S_ISDIR(sb.st_mode) ? read_dir(c, path, d) : append_file(c, path, d);
    if (st)
        return st;
    c->ntrain = c->n - (int64_t)floor(HOLDOUT * (double)c->n); /* data.c's split */
    /* a few windows to hold out and many more to train on */
    if (c->n - c->ntrain < 4 * seq || c->ntrain < 16 * seq)
        return diag_set(d, ST_ERR_INVALID, "toy tiny-lm: %s holds %lld bytes of text (%d files); "
                        "windows of %lld need at least %lld (pass --text with more text, or a "
                        "smaller --seq)", path, (long long)c->n, c->nfiles, (long long)seq,
                        (long long)(80 * seq + 1));
    return ST_OK;
}

/* u16 little-endian tokens, one per byte, written to a temporary name and renamed */
static int write_tokens(const struct corpus *c, const char *path, struct diag *d)
{
    char tmp[PATH_MAX + 64];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return diag_set(d, ST_ERR_IO, "%s: the path is too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return diag_set(d, ST_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    int ok = 1;
    for (int64_t i = 0; ok && i < c->n; i++) {
        unsigned char le[2] = {c->bytes[i], 0};
        ok = fwrite(le, 1, 2, f) == 2;
    }
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return diag_set(d, ST_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return ST_OK;
}

/* ---- training ---------------------------------------------------------------------- */

static const void *store_weight(void *ctx, const char *name, size_t nbytes)
{
    struct rt_store_item *it = rt_store_find(ctx, name);
    return it && it->dtype == IR_F32 && it->nbytes == nbytes ? it->data : NULL;
}

static int run(const struct dc_prog *p, struct rt_store *store, struct ds_source *src,
               uint64_t seed, const char *phase, double *loss, struct diag *d)
{
    struct rt_train_opts o = {.seed = seed, .phase = phase, .progress = p->steps > 1 && isatty(2)};
    double *last = calloc((size_t)p->n_metric + 1, sizeof *last);
    int st = last ? rt_train(p, cg_default(), store, src, &o, last, d)
                  : diag_set(d, ST_ERR_NOMEM, "out of memory");
    *loss = NAN;
    for (int i = 0; !st && i < p->n_metric; i++)
        if (strcmp(p->metric[i].name, "loss") == 0)
            *loss = last[i];
    free(last);
    return st;
}

static int train_and_export(const struct lm_args *a, const char *tokens, double *loss,
                            struct diag *d)
{
    struct ds_opts o;
    ds_opts_defaults(&o);
    o.seq = a->spec.seq;
    o.holdout = HOLDOUT;
    struct ds_source *src = NULL;
    struct rt_store store = {0};
    struct dc_prog setup = {0}, train = {0};
    struct ir_graph *g = NULL;
    double unused;
    int st = ds_open(tokens, &o, &src, d);
    if (!st && !(st = toy_lm_build_setup(&a->spec, &setup, d)))
        st = run(&setup, &store, src, a->seed, "setup", &unused, d);
    if (!st && !(st = toy_lm_build_train(&a->spec, &train, d)))
        st = run(&train, &store, src, a->seed, "tiny-lm", loss, d);
    struct onnx_export_opts eo = {.producer = "pdc toy"};
    if (!st && !(st = toy_lm_build_infer(&a->spec, 1, a->spec.seq, store_weight, &store, &g, d)))
        st = onnx_save_file(g, a->out, &eo, d);
    ir_graph_free(g);
    dc_prog_free(&setup);
    dc_prog_free(&train);
    rt_store_free(&store);
    ds_close(src);
    return st;
}

/* ---- evaluation of the written model ----------------------------------------------- */

/* Σ over windows and positions t < T−1 of −log2 softmax(logits[t])[w[t+1]] */
static double window_bits(const float *lg, const unsigned char *w, int64_t T, int64_t V)
{
    double bits = 0;
    for (int64_t t = 0; t + 1 < T; t++) {
        const float *z = lg + t * V;
        double mx = z[0], s = 0;
        for (int64_t v = 1; v < V; v++)
            if ((double)z[v] > mx)
                mx = (double)z[v];
        for (int64_t v = 0; v < V; v++)
            s += exp((double)z[v] - mx);
        bits += (mx + log(s) - (double)z[w[t + 1]]) / log(2.0);
    }
    return bits;
}

/* Mean bits per predicted byte of the model in `path` on nwin windows of T bytes
 * starting at starts[] (one batch: the model's symbolic dims bound to nwin and T). */
static int model_bits(const char *path, const struct corpus *c, const int64_t *starts,
                      int64_t nwin, int64_t T, double *bpb, struct diag *d)
{
    struct ir_graph *g;
    int st = onnx_load_file(path, &g, d);
    if (st)
        return st;
    struct ir_value x = {.name = (char *)"tokens", .dtype = IR_I64, .rank = 2, .dims = {nwin, T},
                         .nbytes = (size_t)(nwin * T) * sizeof(int64_t)};
    int64_t *xv = malloc(x.nbytes);
    struct ir_value *outs = NULL;
    int nout = 0;
    struct pass_ctx cx = {.eval = cg_eval_node};
    x.data = xv;
    if (!xv)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; !st && k < nwin; k++)
        for (int64_t t = 0; t < T; t++)
            xv[k * T + t] = c->bytes[starts[k] + t];
    if (!st && !(st = ir_bind_sym(g, "batch", nwin, d)) && !(st = ir_bind_sym(g, "seq", T, d)) &&
        !(st = pass_compile_inference(g, &cx, d)))
        st = rt_run(g, cg_default(), &x, 1, &outs, &nout, d);
    int64_t V = 256;
    if (!st && (nout != 1 || outs[0].dtype != IR_F32 || ir_value_numel(&outs[0]) != nwin * T * V))
        st = diag_set(d, ST_ERR_INVALID, "%s: expected one float output [%lld, %lld, %lld]", path,
                      (long long)nwin, (long long)T, (long long)V);
    double bits = 0;
    for (int64_t k = 0; !st && k < nwin; k++)
        bits += window_bits((const float *)outs[0].data + k * T * V, c->bytes + starts[k], T, V);
    *bpb = bits / (double)(nwin * (T - 1));
    for (int i = 0; i < nout; i++)
        ir_value_free(&outs[i]);
    free(outs);
    free(xv);
    ir_graph_free(g);
    return st;
}

/* bits per byte of add-one-smoothed byte frequencies of the training part, on the
 * same predicted positions as model_bits */
static double unigram_bits(const struct corpus *c, const int64_t *starts, int64_t nwin, int64_t T)
{
    double count[256];
    for (int v = 0; v < 256; v++)
        count[v] = 1.0;
    for (int64_t i = 0; i < c->ntrain; i++)
        count[c->bytes[i]] += 1.0;
    double total = (double)c->ntrain + 256.0, bits = 0;
    for (int64_t k = 0; k < nwin; k++)
        for (int64_t t = 1; t < T; t++)
            bits -= log2(count[c->bytes[starts[k] + t]] / total);
    return bits / (double)(nwin * (T - 1));
}

/* held-out: the tail tiled by non-overlapping windows (what `pdc eval` reads);
 * train: as many windows, evenly spread over the training part */
static void eval_windows(const struct corpus *c, int64_t T, int64_t *held, int64_t *train,
                         int64_t *nwin)
{
    *nwin = (c->n - c->ntrain) / T;
    for (int64_t k = 0; k < *nwin; k++) {
        held[k] = c->ntrain + k * T;
        train[k] = (c->ntrain - T) * k / *nwin;
    }
}

int pdc_toy_lm_main(int argc, char **argv)
{
    struct lm_args a;
    struct diag d = {0};
    int st = parse_args(argc, argv, &a, &d);
    if (st < 0)
        return lm_usage();
    double t0 = now(), loss = NAN, bpb[2] = {NAN, NAN}, uni[2] = {NAN, NAN};
    struct corpus c = {0};
    char tmp[PATH_MAX] = "";
    if (!st && snprintf(tmp, sizeof tmp, "%s.tokens.tmp.%ld.bin", a.out, (long)getpid()) >=
                   (int)sizeof tmp)
        st = diag_set(&d, ST_ERR_IO, "%s: the path is too long", a.out);
    const char *tokens = a.tokens_out ? a.tokens_out : tmp; /* the driver reads a file */
    int64_t T = a.spec.seq, nwin = 0, *held = NULL, *trainw = NULL;
    if (!st)
        st = read_text(&c, a.text, T, &d);
    if (!st)
        st = write_tokens(&c, tokens, &d);
    if (!st)
        st = train_and_export(&a, tokens, &loss, &d);
    if (!a.tokens_out && tmp[0])
        unlink(tmp);
    double t_train = now() - t0;
    if (!st && (!(held = calloc((size_t)(c.n / T) + 1, sizeof *held)) ||
                !(trainw = calloc((size_t)(c.n / T) + 1, sizeof *trainw))))
        st = diag_set(&d, ST_ERR_NOMEM, "out of memory");
    if (!st) {
        eval_windows(&c, T, held, trainw, &nwin);
        st = model_bits(a.out, &c, trainw, nwin, T, &bpb[0], &d);
    }
    if (!st) {
        st = model_bits(a.out, &c, held, nwin, T, &bpb[1], &d);
        uni[0] = unigram_bits(&c, trainw, nwin, T);
        uni[1] = unigram_bits(&c, held, nwin, T);
    }
    free(held);
    free(trainw);
    free(c.bytes);
    if (st) {
        fprintf(stderr, "pdc: %s\n", d.msg[0] ? d.msg : status_name(d.status));
        return 1;
    }
    printf("pdc toy tiny-lm: seed %llu, %lld steps of %lld x %lld tokens, %lld bytes of text "
           "from %d file(s) in %s (last %lld held out)\n"
           "  last training step: loss %.4f nats = %.4f bits/byte\n"
           "  %-9s model %.4f bits/byte, unigram %.4f (%lld windows of %lld)\n"
           "  %-9s model %.4f bits/byte, unigram %.4f\n"
           "  wrote %s%s%s in %.1f s (training %.1f s)\n",
           (unsigned long long)a.seed, (long long)a.spec.steps, (long long)a.spec.batch,
           (long long)T, (long long)c.n, c.nfiles, a.text, (long long)(c.n - c.ntrain), loss,
           loss / log(2.0), "train", bpb[0], uni[0], (long long)nwin, (long long)T, "held-out",
           bpb[1], uni[1], a.out, a.tokens_out ? " and " : "", a.tokens_out ? a.tokens_out : "",
           now() - t0, t_train);
    fflush(stdout); /* the summary before the warning, in a terminal too */
    if (!(bpb[1] < uni[1]))
        fprintf(stderr, "pdc: toy tiny-lm: warning: the model does not beat the unigram baseline "
                "on held-out text (train longer: --steps)\n");
    return 0;
}
