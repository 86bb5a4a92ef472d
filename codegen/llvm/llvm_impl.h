/* llvm_impl.h — private to codegen/llvm: a fused kernel group (fuse.h) as LLVM IR, its
 * host JIT with an on-disk object cache, and its PTX.
 *
 * One emitter (llvm_emit.c) writes the element computation of a group with every
 * shape and stride baked in; two wrappers put a loop or a thread index around it:
 *   host:  void k(void **bufs, int64_t lo, int64_t hi)  elements [lo, hi), the cpu
 *          pool splits the range (llvm_target.c); bufs = the group's in[] then out[]
 *   nvptx: kernel k(ptr b0, ..., ptr bN, i64 lo, i64 hi)  one element per thread,
 *          i = lo + ctaid.x * ntid.x + tid.x, nothing when i >= hi
 *   emu:   void k(void **bufs, i64 lo, i64 hi, i64 grid, i64 block)  the nvptx kernel's
 *          body and index logic with ctaid, ntid and tid as parameters, called for
 *          every block and thread of the launch by loops around it, compiled for the
 *          host (host math, not libdevice): the GPU kernels' indexing tested here */
#ifndef PDC_LLVM_IMPL_H
#define PDC_LLVM_IMPL_H

#include <llvm-c/Core.h>

#include "../fuse.h"

enum lk_kind { LK_HOST, LK_NVPTX, LK_EMU };

/* the kernel of group grp as function `name` in a new module of ctx (no triple or
 * data layout set yet: the caller's target machine gives them) */
int lk_emit(LLVMContextRef ctx, const struct ir_graph *g, const struct cg_group *grp,
            enum lk_kind kind, const char *name, LLVMModuleRef *out, struct diag *d);

/* host kernels (llvm_jit.c) */
typedef void (*lk_fn)(void *const *bufs, int64_t lo, int64_t hi);
int lk_host_compile(const struct ir_graph *g, const struct cg_group *grp, lk_fn *fn,
                    struct diag *d);

/* the emulated GPU kernel of grp (LK_EMU above), through the same JIT and cache */
typedef void (*lk_emu_fn)(void *const *bufs, int64_t lo, int64_t hi, int64_t grid,
                          int64_t block);
int lk_emu_compile(const struct ir_graph *g, const struct cg_group *grp, lk_emu_fn *fn,
                   struct diag *d);

/* what lk_host_compile did in this process: kernels optimised and compiled, loaded
 * from the disk cache, found already loaded; seconds spent compiling */
struct lk_stats {
    int compiled, disk_hits, mem_hits;
    double compile_s;
};
void lk_stats_get(struct lk_stats *s);
/* the cache folder: $PDC_CACHE_DIR, else $XDG_CACHE_HOME/pdc, else ~/.cache/pdc
 * (NULL: no cache; kernels are then compiled every time) */
const char *lk_cache_dir(char *buf, size_t n);

/* FNV-1a of n bytes, from seed h (LK_FNV_SEED to start): the kernel cache's keys */
#define LK_FNV_SEED 0xcbf29ce484222325ull
uint64_t lk_fnv1a(const void *p, size_t n, uint64_t h);

/* one PTX module for sm (80, 90) holding the kernels of the n groups grp[], named
 * pdc_k0, pdc_k1, ... (llvm_ptx.c); *ptx is malloc'd text. Math functions come from
 * CUDA's libdevice ($PDC_LIBDEVICE or the toolkit's): ST_ERR_UNSUPPORTED when a
 * group needs it and it is missing. */
int lk_ptx(const struct ir_graph *g, const struct cg_group *const *grp, int n, int sm,
           char **ptx, struct diag *d);

#endif
