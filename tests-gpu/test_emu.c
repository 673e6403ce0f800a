/* test_emu.c - suite "emu_selfcheck": checks of the CUDA emulator (emu/)
 * itself, and the CUDA backend's memory behaviour that only the emulator can
 * provoke (a device that is too small). Registered only in emulator builds;
 * on a real GPU there is nothing to register.
 *
 * The emulator is only worth its green runs if it computes what a GPU would
 * and stops where a GPU would fault, so both are tested: results through
 * barriers, shuffles and graph replay against host sums, and deliberately
 * broken kernels (deadlock, out-of-bounds write, host pointer argument,
 * wrong copy direction) run in a child process that must die with the
 * emulator's or ASan's message. */
#include "gpu_test.h"

#ifdef INFEMU

#include <CUnit/CUnit.h>
#include <cuda_runtime.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "cuda_backend.h"
#include "emu/selfcheck.h"
#include "model_random.h"
#include "tests/testutil.h"

/* Runs fn in a child with stderr captured into buf; returns 1 if the child
 * failed (nonzero exit or a signal), 0 if it exited 0. */
static int child_fails(void (*fn)(void), char *buf, size_t cap) {
    int fd[2];
    if (pipe(fd)) return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        alarm(120); /* an undetected deadlock must not hang the suite */
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t k;
    while ((k = read(fd[0], buf + len, cap - 1 - len)) > 0 && len + 1 < cap) len += (size_t)k;
    buf[len] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_sum_through_barriers(void) {
    int n = 10007;
    float *h = malloc((size_t)n * 4);
    uint64_t rng = 3;
    for (int i = 0; i < n; i++) h[i] = (float)((double)(tu_rand_u64(&rng) % 2001) / 1000.0 - 1.0);
    static const int shapes[][2] = {{3, 96}, {2, 1024}, {5, 32}};
    float *dx = NULL, *dout = NULL;
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&dx, (size_t)n * 4), cudaSuccess);
    CU_ASSERT_EQUAL(cudaMemcpy(dx, h, (size_t)n * 4, cudaMemcpyHostToDevice), cudaSuccess);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int B = shapes[s][0], T = shapes[s][1];
        float *out = malloc((size_t)B * T * 4);
        CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&dout, (size_t)B * T * 4), cudaSuccess);
        CU_ASSERT_EQUAL(infemu_selfcheck_sum(dx, n, B, T, dout, NULL), cudaSuccess);
        CU_ASSERT_EQUAL(cudaMemcpy(out, dout, (size_t)B * T * 4, cudaMemcpyDeviceToHost), cudaSuccess);
        for (int b = 0; b < B; b++) {
            double ref = 0;
            for (int t = 0; t < T; t++)
                for (int i = b * T + t; i < n; i += B * T) ref += h[i];
            for (int t = 0; t < T; t++) CU_ASSERT(fabs(out[b * T + t] - ref) < 1e-3);
        }
        cudaFree(dout);
        free(out);
    }
    cudaFree(dx);
    free(h);
}

static void test_graph_replay_and_capture_rules(void) {
    int n = 1000, *dx = NULL, h[1000];
    cudaStream_t st;
    CU_ASSERT_EQUAL_FATAL(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&dx, sizeof h), cudaSuccess);
    CU_ASSERT_EQUAL(cudaMemset(dx, 0, sizeof h), cudaSuccess);
    CU_ASSERT_EQUAL(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    CU_ASSERT_EQUAL(infemu_selfcheck_inc(dx, n, 128, st), cudaSuccess);
    CU_ASSERT_EQUAL(infemu_selfcheck_inc(dx, n, 256, st), cudaSuccess);
    void *p = NULL;
    CU_ASSERT_EQUAL(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
    cudaGetLastError();
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CU_ASSERT_EQUAL(cudaStreamEndCapture(st, &g), cudaSuccess);
    CU_ASSERT_EQUAL(cudaGraphInstantiate(&ge, g, 0), cudaSuccess);
    CU_ASSERT_EQUAL(cudaMemcpy(h, dx, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CU_ASSERT_EQUAL(h[0] + h[n - 1], 0); /* capturing ran nothing */
    for (int r = 0; r < 3; r++) CU_ASSERT_EQUAL(cudaGraphLaunch(ge, st), cudaSuccess);
    CU_ASSERT_EQUAL(cudaStreamSynchronize(st), cudaSuccess);
    CU_ASSERT_EQUAL(cudaMemcpy(h, dx, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= h[i] == 6;
    CU_ASSERT(ok);
    /* A block of 2048 threads is a configuration error, reported, not run. */
    CU_ASSERT_EQUAL(infemu_selfcheck_inc(dx, n, 2048, st), cudaErrorInvalidConfiguration);
    CU_ASSERT_EQUAL(cudaMemcpy(h, dx, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CU_ASSERT_EQUAL(h[0], 6);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(st);
    cudaFree(dx);
}

static void test_memory_accounting_and_poison(void) {
    setenv("INFEMU_DEVICE_MB", "64", 1);
    size_t fr = 0, tot = 0;
    CU_ASSERT_EQUAL(cudaMemGetInfo(&fr, &tot), cudaSuccess);
    CU_ASSERT_EQUAL(tot, (size_t)64 << 20);
    void *big = NULL;
    CU_ASSERT_EQUAL(cudaMalloc(&big, (size_t)100 << 20), cudaErrorMemoryAllocation);
    CU_ASSERT_EQUAL(cudaGetLastError(), cudaErrorMemoryAllocation);
    float *d = NULL, h[8];
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&d, sizeof h), cudaSuccess);
    size_t fr2 = 0;
    cudaMemGetInfo(&fr2, &tot);
    CU_ASSERT_EQUAL(fr - fr2, sizeof h);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    CU_ASSERT(isnan(h[0]) && isnan(h[7])); /* never written: NaN, not zero */
    cudaFree(d);
    unsetenv("INFEMU_DEVICE_MB");
}

/* The FIFO schedule hides a missing __syncthreads (thread 0 runs first);
 * LIFO and random orders are also legal schedules and must expose it. */
static void test_schedules_expose_a_missing_barrier(void) {
    int *d = NULL, h[64];
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&d, sizeof h), cudaSuccess);
    for (int order = 0; order < 3; order++) {
        infemu_set_schedule(order, 12345);
        CU_ASSERT_EQUAL(infemu_selfcheck_racy(d, 10 + order, 64), cudaSuccess);
        CU_ASSERT_EQUAL(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
        int saw = 0;
        for (int t = 0; t < 64; t++) saw += h[t] == 10 + order;
        if (order == 0) CU_ASSERT_EQUAL(saw, 64);
        if (order > 0) CU_ASSERT(saw < 64);
    }
    infemu_set_schedule(-1, 0);
    cudaFree(d);
}

static void do_deadlock(void) {
    float *d = NULL;
    cudaMalloc((void **)&d, 64 * 4);
    infemu_selfcheck_deadlock(d);
}
static void do_oob(void) {
    float *d = NULL;
    cudaMalloc((void **)&d, 10 * 4);
    infemu_selfcheck_oob(d, 10);
}
static void do_host_pointer(void) {
    static int host[64];
    infemu_selfcheck_inc(host, 64, 64, NULL);
}
static void do_wrong_direction(void) {
    float *d = NULL, h[4] = {0};
    cudaMalloc((void **)&d, sizeof h);
    cudaMemcpy(d, h, sizeof h, cudaMemcpyDeviceToHost);
}

static void test_broken_kernels_are_stopped(void) {
    static const struct {
        void (*fn)(void);
        const char *expect;
    } c[] = {
        {do_deadlock, "can never finish"},
        {do_oob, "heap-buffer-overflow"},
        {do_host_pointer, "is not device memory"},
        {do_wrong_direction, "cudaMemcpyDeviceToHost of 16 bytes"},
    };
    char *buf = malloc(1 << 16);
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
#ifndef __SANITIZE_ADDRESS__
        if (c[i].fn == do_oob) continue; /* needs ASan (make test-cuda-emu has it) */
#endif
        int failed = child_fails(c[i].fn, buf, 1 << 16);
        CU_ASSERT(failed);
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, c[i].expect));
        if (!failed || !strstr(buf, c[i].expect))
            fprintf(stderr, "\n  case %zu: expected '%s', child said:\n%s\n", i, c[i].expect, buf);
    }
    free(buf);
}

/* A device too small for the weights: INF_ENOMEM naming the tensor. A
 * larger one: the KV cache takes gpu_memory_fraction of what weights and
 * workspace left free. */
static void test_backend_memory(void) {
    model_random_opts o;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(model_random_preset(&o, "small", &err), 0);
    const char *path = tu_tmpfile("emu_small.gguf");
    CU_ASSERT_EQUAL_FATAL(model_random_write(path, &o, &err), 0);
    gguf_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, &err), 0);
    backend_config bc = backend_config_default();
    bc.max_batch_tokens = 64;
    bc.gpu_memory_fraction = 0.5;
    backend *b = NULL;
    size_t base = infemu_device_bytes_in_use(); /* what earlier tests still hold */

    setenv("INFEMU_DEVICE_MB", "4", 1);
    int rc = backend_cuda_create(&b, f, &bc, &err);
    CU_ASSERT_EQUAL(rc, INF_ENOMEM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "out of GPU memory"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tensor '"));
    fprintf(stderr, "\n  4 MiB device: %s", err.msg);
    CU_ASSERT_EQUAL(infemu_device_bytes_in_use(), base); /* nothing leaked on failure */
    if (!rc) backend_free(b);

    setenv("INFEMU_DEVICE_MB", "256", 1);
    err = (inf_error){0};
    rc = backend_cuda_create(&b, f, &bc, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    backend_cuda_stats st;
    CU_ASSERT_EQUAL(backend_cuda_stats_get(b, &st, &err), 0);
    double in_use = (double)infemu_device_bytes_in_use();
    double free_before_kv = 256.0 * 1048576.0 - (in_use - st.kv_bytes);
    fprintf(stderr, "\n  256 MiB device: weights %.1f MiB, KV %.1f MiB = %.3f of the %.1f MiB left",
            st.weight_bytes / 1048576.0, st.kv_bytes / 1048576.0, st.kv_bytes / free_before_kv,
            free_before_kv / 1048576.0);
    /* The fraction buys whole blocks, plus the hidden padding block. */
    CU_ASSERT(st.kv_bytes <= 0.5 * free_before_kv * 1.01);
    CU_ASSERT(st.kv_bytes >= 0.45 * free_before_kv);
    backend_free(b);
    CU_ASSERT_EQUAL(infemu_device_bytes_in_use(), base);
    unsetenv("INFEMU_DEVICE_MB");
    gguf_close(f);
}

void gpu_register_emu_tests(void) {
    CU_pSuite s = CU_add_suite("emu_selfcheck", NULL, NULL);
    CU_add_test(s, "emulator: sums through shuffles and barriers", test_sum_through_barriers);
    CU_add_test(s, "emulator: graph capture and replay, capture rules, launch checks",
                test_graph_replay_and_capture_rules);
    CU_add_test(s, "emulator: memory limit, accounting, NaN poison", test_memory_accounting_and_poison);
    CU_add_test(s, "emulator: LIFO and random schedules expose a missing barrier",
                test_schedules_expose_a_missing_barrier);
    CU_add_test(s, "emulator: broken kernels and calls are stopped with a message",
                test_broken_kernels_are_stopped);
    CU_add_test(s, "cuda backend: out of memory names the tensor; KV takes the fraction",
                test_backend_memory);
}

#else

/* Real CUDA or no CUDA: the emulator's checks do not apply. */
void gpu_register_emu_tests(void) {}

#endif
