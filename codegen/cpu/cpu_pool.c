/* cpu_pool.c — the cpu target's thread pool (see cpu_impl.h).
 *
 * One job at a time. The caller publishes (fn, ctx, n) cut into a few chunks
 * per thread, bumps a generation counter, wakes the workers and starts taking
 * chunks itself; whoever is running takes the next chunk under the mutex, and
 * the caller returns once every chunk is done. Taking chunks instead of owning
 * a fixed part matters on a loaded machine: a worker the kernel does not
 * schedule in time leaves its chunks to the others instead of stalling the job.
 * Chunk bounds depend only on (n, grain, pool size), and kernels compute every
 * element the same way whichever chunk it falls in, so results never depend on
 * which thread ran what. A worker that wakes after its job is over finds no
 * chunk left (or joins the next job, whose parameters it reads under the
 * mutex). Between jobs a worker first spins for a short while (SPIN_NS) watching
 * the generation counter, then sleeps on a condition variable, and the caller
 * waiting for the last chunk does the same: a step of the tiny LM posts ~2 000
 * jobs of 10-100 us, and a futex sleep and wake-up per job (tens of us on this
 * VM) made a 20 us chunk of the worker finish long after the caller's, or run on
 * the caller after all (perf: 14 % of the step in futex wake/switch). The spin is
 * bounded (SPIN_NS of wall time), so a worker holds no core while the caller runs
 * long serial code (a ref kernel, host work between steps). It spins on
 * sched_yield, not pause: with another busy process on the cores (ctest -j2, two
 * runs side by side) a pause loop took the time slices that process needed, where
 * a yield hands them over: two tiny-LM runs side by side took 18.9 s spinning on
 * pause and 13.0 s on sched_yield (alone: 8.1-10.3 and 8.5-9.9 s). OpenBLAS is
 * kept to one thread: its own pool would compete with this one for the cores,
 * and its results depend on its thread count; cpu_gemm.c instead splits GEMMs
 * into fixed blocks run on this pool. A job posted from inside a job runs inline. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cpu_impl.h"

#ifdef PDC_HAVE_BLAS
#include <cblas.h>
#endif

#define CHUNKS_PER_THREAD 4
#define SPIN_NS 100000 /* spin this long for the next job (or the last chunk) before sleeping */

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pthread_t th[CPU_MAX_THREADS];
    int size;            /* threads including the caller; 0: not started */
    int quit;
    unsigned long gen;   /* bumped once per job; read without the mutex by spinners */
    unsigned long gen0;  /* gen when the workers were started */
    cpu_range_fn fn;     /* the current job: chunk c covers [n*c/nchunks, n*(c+1)/nchunks) */
    void *ctx;
    int64_t n, nchunks;
    int64_t next;        /* chunks handed out */
    int64_t finished;    /* chunks completed; read without the mutex by the caller */
};

static struct pool P = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .go = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};
static int requested;             /* cpu_set_threads; 0: default */
static _Thread_local int in_job;  /* this thread is running a chunk */

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

/* Run chunks of the current job until none is left; called and returns with
 * the mutex held. */
static void take_chunks(void)
{
    while (P.next < P.nchunks) {
        int64_t c = P.next++, n = P.n, nc = P.nchunks;
        cpu_range_fn fn = P.fn;
        void *ctx = P.ctx;
        pthread_mutex_unlock(&P.mu);
        in_job = 1;
        fn(ctx, n * c / nc, n * (c + 1) / nc);
        in_job = 0;
        pthread_mutex_lock(&P.mu);
        int64_t f = P.finished + 1;
        __atomic_store_n(&P.finished, f, __ATOMIC_RELEASE);
        if (f == P.nchunks)
            pthread_cond_signal(&P.done);
    }
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spin without the mutex until ready() or SPIN_NS has passed; 1 when ready */
static int spin_until(int (*ready)(const void *), const void *arg)
{
    int64_t t0 = now_ns();
    for (unsigned i = 1;; i++) {
        if (ready(arg))
            return 1;
        sched_yield();
        if (i % 8 == 0 && now_ns() - t0 > SPIN_NS) /* the clock: a vDSO call */
            return 0;
    }
}

static int new_job(const void *seen)
{
    return __atomic_load_n(&P.gen, __ATOMIC_ACQUIRE) != *(const unsigned long *)seen;
}

static int job_done(const void *unused)
{
    (void)unused;
    return __atomic_load_n(&P.finished, __ATOMIC_ACQUIRE) == P.nchunks;
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&P.mu);
    unsigned long seen = P.gen0;
    for (;;) {
        if (P.gen == seen && !P.quit) {
            pthread_mutex_unlock(&P.mu);
            spin_until(new_job, &seen);
            pthread_mutex_lock(&P.mu);
        }
        while (P.gen == seen && !P.quit)
            pthread_cond_wait(&P.go, &P.mu);
        if (P.quit)
            break;
        seen = P.gen;
        take_chunks();
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
        if (pthread_create(&P.th[i], NULL, worker, NULL) != 0)
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
    __atomic_store_n(&P.gen, P.gen + 1, __ATOMIC_RELEASE); /* ends the spinners' wait */
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
    int64_t size = cpu_threads(), chunks = n / (grain > 0 ? grain : 1);
    if (chunks > size * CHUNKS_PER_THREAD)
        chunks = size * CHUNKS_PER_THREAD;
    if (size == 1 || chunks <= 1 || in_job) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&P.mu);
    P.fn = fn;
    P.ctx = ctx;
    P.n = n;
    P.nchunks = chunks;
    P.next = 0;
    __atomic_store_n(&P.finished, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&P.gen, P.gen + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&P.go); /* no syscall while no worker sleeps */
    take_chunks();
    if (P.finished < P.nchunks) {
        pthread_mutex_unlock(&P.mu);
        spin_until(job_done, NULL);
        pthread_mutex_lock(&P.mu);
    }
    while (P.finished < P.nchunks)
        pthread_cond_wait(&P.done, &P.mu);
    pthread_mutex_unlock(&P.mu);
}
