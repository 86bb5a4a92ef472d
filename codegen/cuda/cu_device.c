/* cu_device.c — which target the training loops run on (target.h
 * cg_select_device): the CPU, the GPU when this build has CUDA and the machine a
 * usable device, or the GPU target's host emulation (a testing aid). */
#include <stdio.h>
#include <string.h>

#include "../target.h"

#if defined PDC_HAVE_CUDA && defined PDC_HAVE_LLVM
const char *cu_probe(void); /* cu_target.c */
#endif

static const struct cg_target *selected;

const char *cg_cuda_unusable(void)
{
#if defined PDC_HAVE_CUDA && defined PDC_HAVE_LLVM
    return cu_probe();
#else
    return "this pdc was built without CUDA (configure it with -DPDC_WITH_CUDA=ON on a "
           "machine with the CUDA toolkit, and LLVM)";
#endif
}

int cg_select_device(const char *name, struct diag *d)
{
    if (strcmp(name, "cpu") == 0) {
        selected = cg_default();
        return ST_OK;
    }
#ifdef PDC_HAVE_LLVM
    if (strcmp(name, "cuda-emu") == 0) {
        selected = &cg_cuda_emu;
        return ST_OK;
    }
#endif
    if (strcmp(name, "cuda") != 0 && strcmp(name, "auto") != 0)
        return diag_set(d, ST_ERR_INVALID, "--device '%s': expected auto, cpu or cuda", name);
    const char *why = cg_cuda_unusable();
    if (why && strcmp(name, "cuda") == 0)
        return diag_set(d, ST_ERR_DEVICE, "--device cuda: %s", why);
#if defined PDC_HAVE_CUDA && defined PDC_HAVE_LLVM
    selected = why ? cg_default() : &cg_cuda;
#else
    selected = cg_default();
#endif
    return ST_OK;
}

const struct cg_target *cg_train_target(void) { return selected ? selected : cg_default(); }
