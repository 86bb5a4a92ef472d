/* sgemm.c — the OpenBLAS sgemm roof for bench/train_step: GFLOP/s of
 * C[M,N] = A[M,K]·B[K,N] (row-major, float32), median of REPS timed calls after
 * one warmup call. Threads: OPENBLAS_NUM_THREADS (set by the caller).
 *   usage: sgemm M N K [REPS]      prints: gflops <median> */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sgemm M N K [REPS]\n");
        return 2;
    }
    int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
    int reps = argc > 4 ? atoi(argv[4]) : 20;
    if (M < 1 || N < 1 || K < 1 || reps < 1 || reps > 10000)
        return 2;
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C = malloc(sizeof(float) * (size_t)M * N);
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!A || !B || !C || !t)
        return 1;
    for (size_t i = 0; i < (size_t)M * K; i++)
        A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        B[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f,
                    C, N);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    printf("gflops %.3f\n", 2.0 * M * N * K / t[reps / 2] * 1e-9);
    free(A), free(B), free(C), free(t);
    return 0;
}
