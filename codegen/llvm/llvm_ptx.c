/* llvm_ptx.c — the same kernel groups as PTX for NVIDIA GPUs (sm_80, sm_90) through
 * LLVM's NVPTX backend. Nothing here runs them yet (the cuda target will load them
 * through the driver API); the tests assemble every group with ptxas.
 *
 * The math functions a group calls (exp, erf, ...) come from CUDA's libdevice: its
 * bitcode is linked into the module, everything but the kernel made internal so the
 * optimiser keeps only what is called, and NVVMReflect (in NVPTX's O3 pipeline)
 * settles its __nvvm_reflect branches (no flush-to-zero). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "llvm_impl.h"

#define PTX_TRIPLE "nvptx64-nvidia-cuda"
#define LIBDEVICE "/usr/local/cuda/nvvm/libdevice/libdevice.10.bc"

static pthread_once_t nvptx_once = PTHREAD_ONCE_INIT;

static void nvptx_init(void)
{
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
}

static int needs_libdevice(LLVMModuleRef mod)
{
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
        size_t n;
        const char *name = LLVMGetValueName2(f, &n);
        if (LLVMIsDeclaration(f) && strncmp(name, "__nv_", 5) == 0)
            return 1;
    }
    return 0;
}

/* link libdevice in; afterwards only the kernels stay visible */
static int link_libdevice(LLVMContextRef ctx, LLVMModuleRef mod, struct diag *d)
{
    const char *path = getenv("PDC_LIBDEVICE");
    path = path && *path ? path : LIBDEVICE;
    if (access(path, R_OK) != 0)
        return diag_set(d, ST_ERR_UNSUPPORTED, "no CUDA libdevice at %s", path);
    LLVMMemoryBufferRef mb;
    LLVMModuleRef lib;
    char *msg = NULL;
    if (LLVMCreateMemoryBufferWithContentsOfFile(path, &mb, &msg)) {
        diag_set(d, ST_ERR_IO, "%s: %s", path, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return ST_ERR_IO;
    }
    int bad = LLVMParseBitcodeInContext2(ctx, mb, &lib);
    LLVMDisposeMemoryBuffer(mb);
    if (bad)
        return diag_set(d, ST_ERR_PARSE, "%s: not LLVM bitcode", path);
    LLVMSetTarget(lib, LLVMGetTarget(mod));
    LLVMSetDataLayout(lib, LLVMGetDataLayoutStr(mod));
    if (LLVMLinkModules2(mod, lib)) /* consumes lib */
        return diag_set(d, ST_ERR_DEVICE, "linking libdevice failed");
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
        size_t n;
        if (!LLVMIsDeclaration(f) && strncmp(LLVMGetValueName2(f, &n), "pdc_k", 5) != 0)
            LLVMSetLinkage(f, LLVMInternalLinkage);
    }
    return ST_OK;
}

static int emit_ptx(LLVMTargetMachineRef tm, LLVMModuleRef mod, char **ptx, struct diag *d)
{
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O3>", tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (err) {
        char *m = LLVMGetErrorMessage(err);
        diag_set(d, ST_ERR_DEVICE, "optimising a PTX kernel: %s", m);
        LLVMDisposeErrorMessage(m);
        return ST_ERR_DEVICE;
    }
    char *msg = NULL;
    LLVMMemoryBufferRef mb;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMAssemblyFile, &msg, &mb)) {
        diag_set(d, ST_ERR_DEVICE, "PTX emission: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return ST_ERR_DEVICE;
    }
    size_t n = LLVMGetBufferSize(mb);
    *ptx = malloc(n + 1);
    if (*ptx) {
        memcpy(*ptx, LLVMGetBufferStart(mb), n);
        (*ptx)[n] = 0;
    }
    LLVMDisposeMemoryBuffer(mb);
    return *ptx ? ST_OK : diag_set(d, ST_ERR_NOMEM, "out of memory");
}

static LLVMTargetMachineRef ptx_machine(int sm, struct diag *d)
{
    LLVMTargetRef t;
    char *msg = NULL, cpu[16];
    if (LLVMGetTargetFromTriple(PTX_TRIPLE, &t, &msg)) {
        diag_set(d, ST_ERR_UNSUPPORTED, "LLVM has no NVPTX target: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    snprintf(cpu, sizeof cpu, "sm_%d", sm);
    /* PTX ISA 7.8 is the first with sm_90; CUDA 12 and later ptxas read it */
    return LLVMCreateTargetMachine(t, PTX_TRIPLE, cpu, "+ptx78", LLVMCodeGenLevelAggressive,
                                   LLVMRelocDefault, LLVMCodeModelDefault);
}

/* the groups' kernels (pdc_k0, pdc_k1, ...) in one module of ctx */
static int emit_all(LLVMContextRef ctx, LLVMTargetMachineRef tm, const struct ir_graph *g,
                    const struct cg_group *const *grp, int n, LLVMModuleRef *out,
                    struct diag *d)
{
    LLVMModuleRef mod = NULL;
    int st = ST_OK;
    for (int i = 0; !st && i < n; i++) {
        char name[32];
        LLVMModuleRef m;
        snprintf(name, sizeof name, "pdc_k%d", i);
        st = lk_emit(ctx, g, grp[i], LK_NVPTX, name, &m, d);
        if (!st && !mod)
            mod = m;
        else if (!st && LLVMLinkModules2(mod, m)) /* consumes m */
            st = diag_set(d, ST_ERR_DEVICE, "linking kernel %d failed", i);
    }
    if (mod) {
        LLVMSetTarget(mod, PTX_TRIPLE);
        LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
        LLVMSetModuleDataLayout(mod, td);
        LLVMDisposeTargetData(td);
    }
    *out = mod;
    return st;
}

int lk_ptx(const struct ir_graph *g, const struct cg_group *const *grp, int n, int sm,
           char **ptx, struct diag *d)
{
    *ptx = NULL;
    pthread_once(&nvptx_once, nvptx_init);
    LLVMTargetMachineRef tm = ptx_machine(sm, d);
    if (!tm)
        return d->status ? (int)d->status : ST_ERR_UNSUPPORTED;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = NULL;
    int st = emit_all(ctx, tm, g, grp, n, &mod, d);
    if (!st && needs_libdevice(mod))
        st = link_libdevice(ctx, mod, d);
    if (!st)
        st = emit_ptx(tm, mod, ptx, d);
    if (mod)
        LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return st;
}
