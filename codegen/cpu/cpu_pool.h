/* cpu_pool.h — the host thread pool (cpu_pool.c): the cpu and llvm targets' kernels
 * and the runtime's host-side draws (philox_uniform_fill_par) share it, so the cores are
 * never oversubscribed. */
#ifndef PDC_CPU_POOL_H
#define PDC_CPU_POOL_H

#include <stdint.h>

/* ---- thread pool (cpu_pool.c) --------------------------------------------
 * Persistent pthreads, started on first use. Size: PDC_THREADS if set, else the
 * number of online CPUs. Calls come from one thread at a time (the executor),
 * and the caller blocks until the job is done. OpenBLAS runs single-threaded
 * inside the pool's jobs (cpu_gemm.c), so only one pool ever runs. */

/* fn(ctx, lo, hi) over a split of [0, n) into contiguous ranges of at least
 * `grain` (a few per thread; none when n < 2 grain, which runs inline). The
 * split depends on the pool size, so fn must compute every element the same
 * way wherever the range boundaries fall. */
typedef void (*cpu_range_fn)(void *ctx, int64_t lo, int64_t hi);
void cpu_parallel(int64_t n, int64_t grain, cpu_range_fn fn, void *ctx);
int cpu_threads(void);
/* resize the pool; n <= 0 restores the default (PDC_THREADS or the CPU count).
 * Not thread-safe: call it while no kernel runs (tests, start-up). */
void cpu_set_threads(int n);

#endif
