/* pdc.c — the command line driver.
 *   pdc inspect MODEL.onnx                 graph summary and decomposable sites
 *   pdc run MODEL.onnx --input NAME=X.npy  run the model on the reference target
 *   pdc convert IN.onnx -o OUT.onnx        import and re-export (pdc's canonical form)
 * Every error prints one line "pdc: <file>: <what is wrong>" and exits non-zero. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exec.h"
#include "pdc_cli.h"
#include "io.h"
#include "onnx.h"
#include "pass.h"
#include "target.h"

#ifdef PDC_HAVE_LLVM
#include <llvm-c/Core.h>
#endif

#define MAX_INPUTS 64

static int fail(const struct diag *d)
{
    fprintf(stderr, "pdc: %s\n", d->msg[0] ? d->msg : status_name(d->status));
    return 1;
}

static int usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  pdc MODEL.onnx -o DIR [--method spd|vpd|l3d|apd] [--config FILE.yaml] [--sites 'PAT[:C],...']\n"
            "          [--steps N] [--batch B] [--seed S] [--lr LR] [--warmup-steps N] [--log-every N]\n"
            "          [--checkpoint-every N] [--resume] [--run-steps N] [--force] [-v]\n"
            "          [--device auto|cpu|cuda]\n"
            "          [--data toy[:p=P,lo=L,hi=H]|FILE.npy|FILE.npz[:NAME]|FILE.bin]\n"
            "          [--seq T] [--tokens u16|u32] [--holdout F]\n"
            "      decompose the model's weights; writes DIR/decomposition.json,\n"
            "      DIR/components.safetensors and DIR/metrics.jsonl\n"
            "  pdc eval DIR [--data SPEC] [--seq T] [--tokens u16|u32] [--holdout F]\n"
            "      evaluate a decomposition: reconstruction under every mask kind, L0, alive,\n"
            "      toy ground-truth metrics; writes DIR/eval.json (L3D: [--impact] [--coeffs A.npy])\n"
            "  pdc intervene DIR --subnet K --delta D --data X.npy [-o OUT.npz]\n"
            "      run an L3D decomposition's model with W + D·v_K\n"
            "  pdc toy NAME -o MODEL.onnx [--seed S] [--steps N]\n"
            "      train a toy target with known ground truth (tms-5-2, tms-40-10, tms-5-2-id,\n"
            "      tms-40-10-id, resid-mlp-1, resid-mlp-2, resid-mlp-3, l3d-tms, l3d-tmcs,\n"
            "      l3d-highrank, l3d-square)\n"
            "  pdc toy tiny-lm -o MODEL.onnx [--seed S] [--steps N] [--batch B] [--seq T]\n"
            "          [--text FILE|DIR] [--tokens-out FILE.bin]\n"
            "      train a byte-level transformer LM on text found on the machine\n"
            "  pdc inspect MODEL.onnx [--bind NAME=N,...] | pdc inspect DIR\n"
            "      inputs, outputs, op histogram, parameter count, decomposable sites;\n"
            "      for a decomposition folder: the subcomponents each site carries\n"
            "  pdc run MODEL.onnx --input NAME=FILE.npy [--input ...] [--input FILE.npz]\n"
            "          [--bind NAME=N,...] [-o OUT.npz] [-d PASS|all|select]\n"
            "      run the model; outputs go to OUT.npz (a summary is printed without -o)\n"
            "  pdc run DIR --input NAME=FILE.npy [--masks MASKS.npz] [-o OUT.npz]\n"
            "      the decomposition's forward under given masks (default 1) and its CI values\n"
            "  pdc export DIR -o OUT.onnx [--form factorised|ci] [--threshold T]\n"
            "          [--ablate SITE:c,...] [--keep SITE:c,...] [--bake]\n"
            "          [--edit SITE:c --write-vector FILE.npy [--scale A]] [--external-threshold BYTES]\n"
            "      write the decomposition as ONNX: factorised sites with mask inputs, the CI\n"
            "      function inside, baked ablations, or plain (edited) weights\n"
            "  pdc export DIR -o OUT.onnx --intervene K:D[,K:D...]   (an L3D folder)\n"
            "      the model with every decomposed tensor moved to W + sum D*v_K\n"
            "  pdc convert IN.onnx -o OUT.onnx [--external-threshold BYTES] [--opset N]\n"
            "      re-export through pdc's IR; initializers over BYTES go to OUT.onnx.data\n"
            "  pdc devices\n"
            "      where training can run: the CPU, and the GPU or what keeps it from being used\n"
            "  pdc --version\n");
    return f == stderr ? 2 : 0;
}

/* ---- inspect ------------------------------------------------------------ */

static void print_values(const struct ir_graph *g, const uint32_t *ids, uint32_t n,
                         const char *title)
{
    char ty[256];
    printf("%s:\n", title);
    for (uint32_t i = 0; i < n; i++) {
        ir_tensor_type_str(&g->t[ids[i]], g, ty, sizeof ty);
        printf("  %-24s %s\n", g->t[ids[i]].name, ty);
    }
}

static void print_histogram(const struct ir_graph *g)
{
    uint32_t count[IR_OP_COUNT] = {0};
    for (uint32_t i = 0; i < g->nn; i++)
        if (!(g->n[i].flags & IR_N_DEAD))
            count[g->n[i].op]++;
    printf("ops (%u nodes):\n", g->nn);
    for (int op = 0; op < IR_OP_COUNT; op++)
        if (count[op])
            printf("  %-24s %u\n", ir_ops[op].name, count[op]);
}

static void print_params(const struct ir_graph *g)
{
    int64_t nparam = 0, nconst = 0;
    size_t bytes = 0;
    int ninit = 0;
    for (uint32_t t = 0; t < g->nt; t++) {
        const struct ir_tensor *x = &g->t[t];
        if (!(x->flags & IR_T_INIT))
            continue;
        ninit++;
        bytes += x->nbytes;
        if (x->flags & IR_T_PARAM)
            nparam += ir_numel(x);
        else
            nconst += ir_numel(x);
    }
    printf("parameters: %lld floating-point (%d initializers, %zu bytes; %lld other constant "
           "elements)\n", (long long)nparam, ninit, bytes, (long long)nconst);
}

static int print_sites(const struct ir_graph *g)
{
    struct pass_site *s;
    int n;
    if (pass_find_sites(g, &s, &n))
        return -1;
    printf("decomposable sites (%d), shapes as [d_in, d_out]:\n", n);
    for (int i = 0; i < n; i++) {
        printf("  %-24s %-13s [%lld, %lld]", g->t[s[i].weight].name, pass_site_kind_name(s[i].kind),
               (long long)s[i].d_in, (long long)s[i].d_out);
        if (s[i].n_uses > 1)
            printf("  (%d uses: tied)", s[i].n_uses);
        printf("  node %s\n", g->n[s[i].uses[0]].name);
    }
    free(s);
    return 0;
}

static int cmd_inspect(int argc, char **argv)
{
    const char *model = NULL, *bind = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (argv[i][0] != '-' && !model)
            model = argv[i];
        else
            return usage(stderr);
    }
    if (!model)
        return usage(stderr);
    struct diag d = {0};
    struct stat sb;
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) /* a decomposition's folder */
        return pdc_inspect_dir(model, &d) ? fail(&d) : 0;
    struct ir_graph *g;
    if (onnx_load_file(model, &g, &d))
        return fail(&d);
    if (bind && ir_bind(g, bind, &d)) {
        ir_graph_free(g);
        return fail(&d);
    }
    printf("model: %s (ir_version %lld, opset %d, producer '%s')\n", model,
           (long long)g->ir_version, g->opset, g->producer);
    print_values(g, g->inputs, g->n_inputs, "inputs");
    print_values(g, g->outputs, g->n_outputs, "outputs");
    print_histogram(g);
    print_params(g);
    int rc = print_sites(g) ? 1 : 0;
    ir_graph_free(g);
    return rc;
}

/* ---- run ----------------------------------------------------------------- */

struct inputs {
    struct ir_value v[MAX_INPUTS];
    int n;
};

static int add_input_arg(struct inputs *in, const char *arg, struct diag *d)
{
    const char *eq = strchr(arg, '=');
    if (!eq) { /* a bare .npz: every member is an input */
        struct ir_value *vals;
        int n;
        int st = npz_read_file(arg, &vals, &n, d);
        if (st)
            return st;
        for (int i = 0; i < n; i++) {
            if (in->n == MAX_INPUTS) {
                ir_value_free(&vals[i]);
                continue;
            }
            in->v[in->n++] = vals[i];
        }
        free(vals);
        return in->n == MAX_INPUTS ? diag_set(d, ST_ERR_INVALID, "too many inputs") : ST_OK;
    }
    if (in->n == MAX_INPUTS)
        return diag_set(d, ST_ERR_INVALID, "too many inputs (max %d)", MAX_INPUTS);
    struct ir_value *v = &in->v[in->n];
    const char *file = eq + 1;
    size_t fl = strlen(file);
    int st = fl > 3 && strcmp(file + fl - 3, ".pb") == 0 ? onnx_read_tensor_file(file, v, d)
                                                         : npy_read_file(file, v, d);
    if (st)
        return st;
    free(v->name);
    v->name = strndup(arg, (size_t)(eq - arg));
    if (!v->name)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    in->n++;
    return ST_OK;
}

static void print_outputs(const struct ir_value *vals, int n)
{
    for (int i = 0; i < n; i++) {
        const struct ir_value *v = &vals[i];
        printf("%s: %s[", v->name, ir_dtype_name(v->dtype));
        for (int k = 0; k < v->rank; k++)
            printf("%s%lld", k ? "," : "", (long long)v->dims[k]);
        printf("]");
        int64_t ne = ir_value_numel(v);
        for (int64_t k = 0; k < ne && k < 8; k++)
            printf(" %.6g", ir_load_f64(v->dtype, v->data, k));
        printf(ne > 8 ? " ...\n" : "\n");
    }
}

static int run_model(const char *model, struct inputs *in, const char *bind, const char *outp,
                     const char *dump, struct diag *d)
{
    struct ir_graph *g;
    int st = onnx_load_file(model, &g, d);
    if (st)
        return st;
    struct pass_ctx cx = {.eval = cg_eval_node, .dump = dump};
    struct ir_value *outs = NULL;
    int nout = 0;
    if ((bind && (st = ir_bind(g, bind, d))) || (st = pass_bind_inputs(g, in->v, in->n, d)) ||
        (st = pass_compile_inference(g, &cx, d)) ||
        (st = rt_run(g, cg_default(), in->v, in->n, &outs, &nout, d))) {
        if (!strstr(d->msg, model)) { /* make sure the message names the model */
            char tmp[sizeof d->msg + 4096];
            snprintf(tmp, sizeof tmp, "%s: %s", model, d->msg);
            snprintf(d->msg, sizeof d->msg, "%.1000s", tmp); /* keeps the head if too long */
        }
        ir_graph_free(g);
        return st;
    }
    if (outp)
        st = npz_write_file(outp, outs, nout, d);
    else
        print_outputs(outs, nout);
    for (int i = 0; i < nout; i++)
        ir_value_free(&outs[i]);
    free(outs);
    ir_graph_free(g);
    return st;
}

static int cmd_run(int argc, char **argv)
{
    struct stat sb; /* a decomposition folder: its masked forward (pdc_run_dir.c) */
    if (argc >= 1 && stat(argv[0], &sb) == 0 && S_ISDIR(sb.st_mode))
        return pdc_run_dir_main(argv[0], argc - 1, argv + 1);
    const char *model = NULL, *bind = NULL, *outp = NULL, *dump = NULL;
    struct inputs in = {.n = 0};
    struct diag d = {0};
    int st = ST_OK;
    for (int i = 0; i < argc && !st; i++) {
        if (strcmp(argv[i], "--input") == 0 && i + 1 < argc)
            st = add_input_arg(&in, argv[++i], &d);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            outp = argv[++i];
        else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
            dump = argv[++i];
            if (strcmp(dump, "select") == 0) /* the executor prints each group's target */
                setenv("PDC_DEBUG", "select", 1);
        } else if (argv[i][0] != '-' && !model)
            model = argv[i];
        else {
            for (int k = 0; k < in.n; k++)
                ir_value_free(&in.v[k]);
            return usage(stderr);
        }
    }
    if (!st && !model)
        st = diag_set(&d, ST_ERR_INVALID, "run: no model given (pdc run MODEL.onnx ...)");

    if (!st)
        st = run_model(model, &in, bind, outp, dump, &d);
    for (int k = 0; k < in.n; k++)
        ir_value_free(&in.v[k]);
    return st ? fail(&d) : 0;
}

/* ---- convert -------------------------------------------------------------- */

/* The importer keeps no declared output types, and a written model needs them.
 * Infer them on a second copy with every unknown input dim set to 1: dtype and
 * rank carry over, dims only where the model has no symbolic or unknown dims. */
static int convert_output_types(const char *model, struct ir_graph *g, struct diag *d)
{
    int need = 0;
    for (uint32_t i = 0; i < g->n_outputs; i++)
        need |= g->t[g->outputs[i]].dtype == IR_DT_UNDEF || g->t[g->outputs[i]].rank < 0;
    struct ir_graph *h = NULL;
    int st = need ? onnx_load_file(model, &h, d) : ST_OK, guessed = 0;
    for (uint32_t i = 0; h && !st && i < h->n_inputs; i++) {
        struct ir_tensor *t = &h->t[h->inputs[i]];
        for (int k = 0; k < t->rank; k++)
            if (t->dims[k] < 0)
                t->dims[k] = 1, guessed = 1;
    }
    struct pass_ctx cx = {.eval = cg_eval_node};
    if (h && !st)
        st = pass_infer_fold(h, &cx, d);
    for (uint32_t i = 0; h && !st && i < g->n_outputs; i++) {
        struct ir_tensor *t = &g->t[g->outputs[i]];
        const struct ir_tensor *u = &h->t[h->outputs[i]];
        if (t->dtype == IR_DT_UNDEF)
            t->dtype = u->dtype;
        if (t->rank < 0) {
            t->rank = u->rank;
            for (int k = 0; k < u->rank; k++)
                t->dims[k] = guessed ? -1 : u->dims[k];
        }
    }
    ir_graph_free(h);
    return st;
}

static int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *outp = NULL;
    struct onnx_export_opts o = {.producer = "pdc"};
    for (int i = 0; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            outp = argv[++i];
        else if (strcmp(argv[i], "--external-threshold") == 0 && i + 1 < argc)
            o.external_threshold = (size_t)strtoull(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--opset") == 0 && i + 1 < argc)
            o.opset = (int)strtol(argv[++i], &end, 10);
        else if (argv[i][0] != '-' && !in)
            in = argv[i];
        else
            return usage(stderr);
        if (end && (*end || end == argv[i] || argv[i][0] == '-'))
            return usage(stderr);
    }
    if (!in || !outp)
        return usage(stderr);
    struct diag d = {0};
    struct ir_graph *g;
    if (onnx_load_file(in, &g, &d))
        return fail(&d);
    int st = convert_output_types(in, g, &d);
    if (!st)
        st = onnx_save_file(g, outp, &o, &d);
    ir_graph_free(g);
    return st ? fail(&d) : 0;
}

/* ---- decompose ------------------------------------------------------------ */

static int parse_i64(const char *opt, const char *v, int64_t lo, int64_t *out, struct diag *d)
{
    char *e;
    long long x = strtoll(v, &e, 10);
    if (*e || x < lo)
        return diag_set(d, ST_ERR_INVALID, "%s: '%s' is not an integer >= %lld", opt, v, (long long)lo);
    *out = x;
    return ST_OK;
}

static int parse_f64(const char *opt, const char *v, double *out, struct diag *d)
{
    char *e;
    double x = strtod(v, &e);
    if (*e || !(x == x))
        return diag_set(d, ST_ERR_INVALID, "%s: '%s' is not a number", opt, v);
    *out = x;
    return ST_OK;
}

/* command-line settings override the config file, which overrides the defaults */
static int decompose_option(struct dc_config *c, const char *opt, const char *v, struct diag *d)
{
    int64_t i = 0;
    if (strcmp(opt, "--steps") == 0)
        return parse_i64(opt, v, 1, &c->steps, d);
    if (strcmp(opt, "--batch") == 0)
        return parse_i64(opt, v, 1, &c->batch_size, d);
    if (strcmp(opt, "--seed") == 0) {
        int st = parse_i64(opt, v, 0, &i, d);
        c->seed = (uint64_t)i;
        return st;
    }
    if (strcmp(opt, "--warmup-steps") == 0)
        return parse_i64(opt, v, 0, &c->faithfulness_warmup_steps, d);
    if (strcmp(opt, "--log-every") == 0)
        return parse_i64(opt, v, 1, &c->log_freq, d);
    if (strcmp(opt, "--checkpoint-every") == 0)
        return parse_i64(opt, v, 0, &c->checkpoint_every, d);
    if (strcmp(opt, "--lr") == 0) {
        int st = parse_f64(opt, v, &c->lr.start_val, d);
        if (!st && !(c->lr.start_val > 0 && isfinite(c->lr.start_val)))
            st = diag_set(d, ST_ERR_INVALID, "--lr %s: must be a finite positive number", v);
        return st;
    }
    if (strcmp(opt, "--sites") == 0)
        return pdc_parse_sites(c, v, d);
    int ds = pdc_data_option(c, opt, v, d); /* --data, --seq, --tokens, --holdout */
    if (ds >= 0)
        return ds;
    return diag_set(d, ST_ERR_INVALID, "unknown option '%s' (see pdc --help)", opt);
}

static int cmd_decompose(int argc, char **argv)
{
    const char *model = NULL, *dir = NULL, *method = NULL, *config = NULL;
    char from_config[32] = "spd";
    struct diag d = {0};
    for (int i = 0; i + 1 < argc; i++) { /* method and config first: they set the base */
        if (strcmp(argv[i], "--method") == 0)
            method = argv[i + 1];
        else if (strcmp(argv[i], "--config") == 0)
            config = argv[i + 1];
    }
    /* no --method: the config's own `method` key, else spd (a --method that contradicts
     * the config's is refused when the config is read) */
    if (!method && config && pdc_config_method(config, from_config, sizeof from_config, &d))
        return fail(&d);
    if (!method)
        method = from_config;
    if (strcmp(method, "spd") != 0 && strcmp(method, "vpd") != 0 && strcmp(method, "l3d") != 0 &&
        strcmp(method, "apd") != 0) {
        diag_set(&d, ST_ERR_UNSUPPORTED, "--method %s: spd, vpd, l3d and apd are implemented so far",
                 method);
        return fail(&d);
    }
    struct dc_config c;
    dc_config_defaults(&c, method);
    if (config && pdc_config_load(config, &c, &d))
        return fail(&d);
    int resume = 0;
    unsigned flags = 0;
    int64_t run_steps = -1;
    for (int i = 0; i < argc && !d.status; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--resume") == 0)
            resume = 1;
        else if (strcmp(argv[i], "--force") == 0)
            flags |= PDC_FORCE;
        else if (strcmp(argv[i], "-v") == 0)
            flags |= PDC_VERBOSE;
        else if (strcmp(argv[i], "--run-steps") == 0 && i + 1 < argc) {
            parse_i64(argv[i], argv[i + 1], 0, &run_steps, &d);
            i++;
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            cg_select_device(argv[++i], &d);
        else if (strcmp(argv[i], "--method") == 0 || strcmp(argv[i], "--config") == 0)
            i++;
        else if (argv[i][0] == '-' && i + 1 < argc) {
            decompose_option(&c, argv[i], argv[i + 1], &d);
            i++;
        } else if (argv[i][0] != '-' && !model)
            model = argv[i];
        else
            diag_set(&d, ST_ERR_INVALID, "unexpected argument '%s' (see pdc --help)", argv[i]);
    }
    if (!d.status && (!model || !dir))
        diag_set(&d, ST_ERR_INVALID, "usage: pdc MODEL.onnx -o DIR [options] (see pdc --help)");
    if (!d.status && pdc_decompose(model, dir, &c, resume, flags, run_steps, &d) && !strstr(d.msg, model)) {
        char tmp[sizeof d.msg + 4096]; /* every message names the model it is about */
        snprintf(tmp, sizeof tmp, "%s: %s", model, d.msg);
        snprintf(d.msg, sizeof d.msg, "%.1000s", tmp);
    }
    return d.status ? fail(&d) : 0;
}

static void print_version(void)
{
    printf("pdc 0.1 (ops: %d", IR_OP_COUNT);
#ifdef PDC_HAVE_LLVM
    unsigned maj, min, pat;
    LLVMGetVersion(&maj, &min, &pat);
    printf(", LLVM %u.%u.%u", maj, min, pat);
#endif
    printf(")\n");
}

/* exit 0 when a GPU is usable, 1 when not (scripts and the gpu tests ask this) */
static int cmd_devices(void)
{
    const char *why = cg_cuda_unusable();
    printf("cpu: %s target\n", cg_default()->name);
    if (why)
        printf("cuda: not usable: %s\n", why);
    else
        printf("cuda: usable (--device cuda; auto picks it)\n");
    return why ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (strcmp(cmd, "inspect") == 0)
        return cmd_inspect(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return pdc_eval_main(argc - 2, argv + 2);
    if (strcmp(cmd, "toy") == 0)
        return pdc_toy_main(argc - 2, argv + 2);
    if (strcmp(cmd, "intervene") == 0)
        return pdc_intervene_main(argc - 2, argv + 2);
    if (strcmp(cmd, "convert") == 0)
        return cmd_convert(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0)
        return pdc_export_main(argc - 2, argv + 2);
    if (strcmp(cmd, "devices") == 0)
        return cmd_devices();
    if (strcmp(cmd, "--version") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
        return usage(stdout);
    if (cmd[0] != '-')
        return cmd_decompose(argc - 1, argv + 1);
    fprintf(stderr, "pdc: unknown command '%s'\n", cmd);
    return usage(stderr);
}
