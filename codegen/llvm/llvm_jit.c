/* llvm_jit.c — host kernels: optimise a group's module for this CPU (O3 through the
 * new pass manager, the host's name and features, so AVX-512 where there is one),
 * compile it to an object file, keep that on disk, and load it with ORC's LLJIT.
 *
 * The cache key is the module's IR text (before optimisation: it is what the emitter
 * decided) plus the triple, CPU and features of the target machine and a format
 * version. An entry holds the whole key and a checksum of the object, so a hash
 * collision, a truncated write or a stray edit is seen and the kernel rebuilt; entries
 * are written to a temporary name and renamed, so readers never see half a file.
 * The LLJIT instance lives as long as the process (kernels are never unloaded), and
 * a kernel already loaded in this process is reused, not loaded twice. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "llvm_impl.h"

#define CACHE_MAGIC "pdc-kernel-1\n" /* bump when the emitter's meaning of IR changes */

struct loaded {
    uint64_t hash;
    char *key;
    lk_fn fn;
};

static struct {
    pthread_mutex_t lock;
    int ready; /* 1 up, -1 failed */
    char err[256];
    LLVMTargetMachineRef tm;
    char *triple, *cpu, *features;
    LLVMOrcLLJITRef jit;
    struct loaded *tab;
    int ntab, ctab;
    struct lk_stats stats;
} J = {.lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t lk_fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- set-up ------------------------------------------------------------------ */

static int fail_llvm(LLVMErrorRef err, const char *what)
{
    char *m = LLVMGetErrorMessage(err);
    snprintf(J.err, sizeof J.err, "%s: %s", what, m);
    LLVMDisposeErrorMessage(m);
    return -1;
}

static int make_jit(void)
{
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&J.jit, NULL);
    if (err)
        return fail_llvm(err, "LLJIT");
    /* kernels call libm: resolve undefined symbols against the process */
    LLVMOrcDefinitionGeneratorRef gen;
    err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(J.jit), NULL, NULL);
    if (err)
        return fail_llvm(err, "LLJIT process symbols");
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(J.jit), gen);
    return 0;
}

static int host_init(void)
{
    if (J.ready)
        return J.ready > 0 ? 0 : -1;
    J.ready = -1;
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
        snprintf(J.err, sizeof J.err, "LLVM has no native target");
        return -1;
    }
    char *msg = NULL;
    LLVMTargetRef t;
    J.triple = LLVMGetDefaultTargetTriple();
    J.cpu = LLVMGetHostCPUName();
    J.features = LLVMGetHostCPUFeatures();
    if (LLVMGetTargetFromTriple(J.triple, &t, &msg)) {
        snprintf(J.err, sizeof J.err, "target %s: %s", J.triple, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return -1;
    }
    J.tm = LLVMCreateTargetMachine(t, J.triple, J.cpu, J.features, LLVMCodeGenLevelAggressive,
                                   LLVMRelocPIC, LLVMCodeModelSmall);
    if (!J.tm || make_jit())
        return -1;
    J.ready = 1;
    return 0;
}

/* ---- the disk cache ------------------------------------------------------------ */

const char *lk_cache_dir(char *buf, size_t n)
{
    const char *env = getenv("PDC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (env && *env)
        snprintf(buf, n, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, n, "%s/pdc", xdg);
    else if (home && *home)
        snprintf(buf, n, "%s/.cache/pdc", home);
    else
        return NULL;
    return buf;
}

/* mkdir -p */
static int make_dirs(char *path)
{
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        int r = mkdir(path, 0755);
        *s = '/';
        if (r && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0755) && errno != EEXIST ? -1 : 0;
}

static int entry_path(char *buf, size_t n, uint64_t hash)
{
    char dir[4096];
    if (!lk_cache_dir(dir, sizeof dir) || make_dirs(dir))
        return -1;
    int w = snprintf(buf, n, "%s/k-%016llx.bin", dir, (unsigned long long)hash);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* entry: magic, key length, key, object length, object checksum, object */
static char *cache_read(uint64_t hash, const char *key, size_t *objlen)
{
    char path[4200];
    if (entry_path(path, sizeof path, hash))
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char magic[sizeof CACHE_MAGIC];
    uint64_t klen = 0, olen = 0, sum = 0;
    size_t keylen = strlen(key);
    char *kbuf = NULL, *obj = NULL;
    int ok = fread(magic, 1, sizeof CACHE_MAGIC - 1, f) == sizeof CACHE_MAGIC - 1 &&
             memcmp(magic, CACHE_MAGIC, sizeof CACHE_MAGIC - 1) == 0 &&
             fread(&klen, 8, 1, f) == 1 && klen == keylen && (kbuf = malloc(keylen + 1)) &&
             fread(kbuf, 1, keylen, f) == keylen && memcmp(kbuf, key, keylen) == 0 &&
             fread(&olen, 8, 1, f) == 1 && fread(&sum, 8, 1, f) == 1 && olen > 0 &&
             olen < (1u << 30) && (obj = malloc(olen)) && fread(obj, 1, olen, f) == olen &&
             lk_fnv1a(obj, olen, LK_FNV_SEED) == sum;
    fclose(f);
    free(kbuf);
    if (!ok) {
        free(obj);
        return NULL;
    }
    *objlen = olen;
    return obj;
}

/* best effort: a kernel that cannot be cached is still used */
static void cache_write(uint64_t hash, const char *key, const char *obj, size_t olen)
{
    char path[4200], tmp[4300];
    if (entry_path(path, sizeof path, hash))
        return;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return;
    uint64_t klen = strlen(key), ol = olen, sum = lk_fnv1a(obj, olen, LK_FNV_SEED);
    int ok = fwrite(CACHE_MAGIC, 1, sizeof CACHE_MAGIC - 1, f) == sizeof CACHE_MAGIC - 1 &&
             fwrite(&klen, 8, 1, f) == 1 && fwrite(key, 1, klen, f) == klen &&
             fwrite(&ol, 8, 1, f) == 1 && fwrite(&sum, 8, 1, f) == 1 &&
             fwrite(obj, 1, olen, f) == olen;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path))
        remove(tmp);
}

/* ---- compile and load ------------------------------------------------------------ */

/* optimise for the host and emit an object file (malloc'd) */
static char *compile_object(LLVMModuleRef mod, const char *name, size_t *olen, struct diag *d)
{
    LLVMValueRef fn = LLVMGetNamedFunction(mod, "pdc_kernel");
    LLVMSetValueName2(fn, name, strlen(name));
    LLVMSetTarget(mod, J.triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(J.tm);
    LLVMSetModuleDataLayout(mod, td);
    LLVMDisposeTargetData(td);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O3>", J.tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (err) {
        fail_llvm(err, "optimising a kernel");
        diag_set(d, ST_ERR_DEVICE, "%s", J.err);
        return NULL;
    }
    char *msg = NULL;
    LLVMMemoryBufferRef mb;
    if (LLVMTargetMachineEmitToMemoryBuffer(J.tm, mod, LLVMObjectFile, &msg, &mb)) {
        diag_set(d, ST_ERR_DEVICE, "compiling a kernel: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    *olen = LLVMGetBufferSize(mb);
    char *obj = malloc(*olen);
    if (obj)
        memcpy(obj, LLVMGetBufferStart(mb), *olen);
    LLVMDisposeMemoryBuffer(mb);
    if (!obj)
        diag_set(d, ST_ERR_NOMEM, "out of memory");
    return obj;
}

static int load_object(const char *obj, size_t olen, const char *name, lk_fn *fn, struct diag *d)
{
    LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, olen, name);
    LLVMErrorRef err = LLVMOrcLLJITAddObjectFile(J.jit, LLVMOrcLLJITGetMainJITDylib(J.jit), mb);
    LLVMOrcExecutorAddress addr = 0;
    if (!err)
        err = LLVMOrcLLJITLookup(J.jit, &addr, name);
    if (err) {
        fail_llvm(err, "loading a kernel");
        return diag_set(d, ST_ERR_DEVICE, "%s", J.err);
    }
    /* an address from the JIT is a function: the cast is the point of a JIT */
    union { LLVMOrcExecutorAddress a; lk_fn f; } u = {.a = addr};
    *fn = u.f;
    return ST_OK;
}

static lk_fn find_loaded(uint64_t hash, const char *key)
{
    for (int i = 0; i < J.ntab; i++)
        if (J.tab[i].hash == hash && strcmp(J.tab[i].key, key) == 0)
            return J.tab[i].fn;
    return NULL;
}

static void remember(uint64_t hash, const char *key, lk_fn fn)
{
    if (J.ntab == J.ctab) {
        int nc = J.ctab ? 2 * J.ctab : 64;
        struct loaded *t = realloc(J.tab, (size_t)nc * sizeof *t);
        if (!t)
            return;
        J.tab = t;
        J.ctab = nc;
    }
    char *k = strdup(key);
    if (k)
        J.tab[J.ntab++] = (struct loaded){hash, k, fn};
}

/* the key: the unoptimised IR and everything about the machine code it becomes */
static char *cache_key(LLVMModuleRef mod)
{
    char *ir = LLVMPrintModuleToString(mod);
    size_t n = strlen(ir) + strlen(J.triple) + strlen(J.cpu) + strlen(J.features) + 64;
    char *key = malloc(n);
    if (key)
        snprintf(key, n, "%s\ntarget %s %s %s\n", ir, J.triple, J.cpu, J.features);
    LLVMDisposeMessage(ir);
    return key;
}

static int compile_locked(const struct ir_graph *g, const struct cg_group *grp,
                          enum lk_kind kind, lk_fn *fn, struct diag *d)
{
    if (host_init())
        return diag_set(d, ST_ERR_UNSUPPORTED, "LLVM host JIT: %s", J.err);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = NULL;
    int st = lk_emit(ctx, g, grp, kind, "pdc_kernel", &mod, d);
    char *key = st ? NULL : cache_key(mod), *obj = NULL, name[64];
    if (!st && !key)
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    uint64_t hash = key ? lk_fnv1a(key, strlen(key), LK_FNV_SEED) : 0;
    snprintf(name, sizeof name, "pdc_k_%016llx", (unsigned long long)hash);
    size_t olen = 0;
    if (!st && (*fn = find_loaded(hash, key)) != NULL) {
        J.stats.mem_hits++;
    } else if (!st && (obj = cache_read(hash, key, &olen)) != NULL) {
        J.stats.disk_hits++;
        st = load_object(obj, olen, name, fn, d);
    } else if (!st) {
        double t0 = now();
        obj = compile_object(mod, name, &olen, d);
        st = obj ? load_object(obj, olen, name, fn, d) : ST_ERR_DEVICE;
        if (!st)
            cache_write(hash, key, obj, olen);
        J.stats.compiled++;
        J.stats.compile_s += now() - t0;
    }
    if (!st && !find_loaded(hash, key))
        remember(hash, key, *fn);
    free(obj);
    free(key);
    if (mod)
        LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    return st;
}

int lk_host_compile(const struct ir_graph *g, const struct cg_group *grp, lk_fn *fn,
                    struct diag *d)
{
    pthread_mutex_lock(&J.lock);
    int st = compile_locked(g, grp, LK_HOST, fn, d);
    pthread_mutex_unlock(&J.lock);
    return st;
}

int lk_emu_compile(const struct ir_graph *g, const struct cg_group *grp, lk_emu_fn *fn,
                   struct diag *d)
{
    lk_fn f = NULL;
    pthread_mutex_lock(&J.lock);
    int st = compile_locked(g, grp, LK_EMU, &f, d);
    pthread_mutex_unlock(&J.lock);
    /* the entry has the emulation's signature (lk_emit made it so) */
    union { lk_fn h; lk_emu_fn e; } u = {.h = f};
    *fn = st ? NULL : u.e;
    return st;
}

void lk_stats_get(struct lk_stats *s)
{
    pthread_mutex_lock(&J.lock);
    *s = J.stats;
    pthread_mutex_unlock(&J.lock);
}
