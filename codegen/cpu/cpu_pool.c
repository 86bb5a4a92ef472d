/* cpu_pool.c — the cpu target's thread pool (see cpu_impl.h).
 *
 * One job at a time: the caller publishes (fn, ctx, n, parts), bumps a
 * generation counter and wakes the workers; worker i runs part i, the caller
 * runs part 0 and then waits for the others. Workers sleep on a condition
 * variable between jobs instead of spinning, so they hold no core while the
 * caller runs serial code. OpenBLAS is kept to one thread: its own pool would
 * compete with this one for the cores, and its results depend on its thread
 * count; cpu_gemm.c instead splits GEMMs into fixed blocks run on this pool.
 * A job posted from inside a job runs inline. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpu_impl.h"

#ifdef PDC_HAVE_BLAS
#include <cblas.h>
#endif

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pthread_t th[CPU_MAX_THREADS];
    int size;            /* threads including the caller; 0: not started */
    int quit;
    unsigned long gen;   /* bumped once per job */
    unsigned long gen0;  /* gen when the workers were started */
    int pending;         /* workers still running the current job */
    cpu_range_fn fn;     /* the current job */
    void *ctx;
    int64_t n;
    int parts;
};

static struct pool P = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .go = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};
static int requested;             /* cpu_set_threads; 0: default */
static _Thread_local int in_job;  /* this thread is running a part of a job */

static int clamp_threads(long v)
{
    return v < 1 ? 1 : v > CPU_MAX_THREADS ? CPU_MAX_THREADS : (int)v;
}

static int default_threads(void)
{
    const char *e = getenv("PDC_THREADS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v >= 1)
            return clamp_threads(v);
    }
    return clamp_threads(sysconf(_SC_NPROCESSORS_ONLN));
}

static void run_part(int i)
{
    int64_t lo = P.n * i / P.parts, hi = P.n * (i + 1) / P.parts;
    in_job = 1;
    P.fn(P.ctx, lo, hi);
    in_job = 0;
}

/* workers 1..size-1; a worker whose index is past the job's part count skips it */
static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&P.mu);
    unsigned long seen = P.gen0;
    for (;;) {
        while (P.gen == seen && !P.quit)
            pthread_cond_wait(&P.go, &P.mu);
        if (P.quit)
            break;
        seen = P.gen;
        if (id >= P.parts)
            continue;
        pthread_mutex_unlock(&P.mu);
        run_part(id);
        pthread_mutex_lock(&P.mu);
        if (--P.pending == 0)
            pthread_cond_signal(&P.done);
    }
    pthread_mutex_unlock(&P.mu);
    return NULL;
}

static void pool_start(void)
{
    int size = requested > 0 ? requested : default_threads();
    P.quit = 0;
    P.gen0 = P.gen;
    P.size = 1;
    for (int i = 1; i < size; i++) {
        if (pthread_create(&P.th[i], NULL, worker, (void *)(intptr_t)i) != 0)
            break; /* run with the threads we got */
        P.size = i + 1;
    }
#ifdef PDC_HAVE_BLAS
    openblas_set_num_threads(1); /* cpu_gemm.c splits GEMMs itself: see there */
#endif
}

static void pool_stop(void)
{
    if (!P.size)
        return;
    pthread_mutex_lock(&P.mu);
    P.quit = 1;
    pthread_cond_broadcast(&P.go);
    pthread_mutex_unlock(&P.mu);
    for (int i = 1; i < P.size; i++)
        pthread_join(P.th[i], NULL);
    P.size = 0;
}

int cpu_threads(void)
{
    if (!P.size)
        pool_start();
    return P.size;
}

void cpu_set_threads(int n)
{
    pool_stop();
    requested = n > 0 ? clamp_threads(n) : 0;
    pool_start();
}

void cpu_parallel(int64_t n, int64_t grain, cpu_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    int64_t parts = cpu_threads(), most = n / (grain > 0 ? grain : 1);
    if (parts > most)
        parts = most;
    if (parts <= 1 || in_job) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&P.mu);
    P.fn = fn;
    P.ctx = ctx;
    P.n = n;
    P.parts = (int)parts;
    P.pending = (int)parts - 1;
    P.gen++;
    pthread_cond_broadcast(&P.go);
    pthread_mutex_unlock(&P.mu);
    run_part(0);
    pthread_mutex_lock(&P.mu);
    while (P.pending > 0)
        pthread_cond_wait(&P.done, &P.mu);
    pthread_mutex_unlock(&P.mu);
}
