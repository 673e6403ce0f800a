/* selfcheck.cu - kernels that check the emulator itself (built only by the
 * emulator build; tests-gpu/test_emu.c drives them). Some compute a known
 * result through barriers and shuffles; the others are deliberately wrong in
 * ways a GPU punishes, and the emulator must stop them with a message. */
#include <cuda_runtime.h>

#include "selfcheck.h"

/* Block sum through warp shuffles and shared memory; every thread also
 * writes its block's result, so a thread that ran ahead of a barrier shows. */
__global__ void sum_kernel(const float *x, int n, float *out) {
    __shared__ float part[32];
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    float s = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) s += part[w];
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

/* Half of each warp waits at __syncthreads, the other half in a full-warp
 * shuffle: neither can ever complete. */
__global__ void deadlock_kernel(float *out) {
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) __syncthreads();
    else v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

/* Writes one element past the end. */
__global__ void oob_kernel(float *out, int n) { out[n + threadIdx.x * 0] = 1.0f; }

/* Thread 0 writes a shared value that every thread then reads, with the
 * __syncthreads between them missing: whether a thread sees it depends on
 * the schedule. */
__global__ void racy_kernel(int *out, int v) {
    __shared__ int x;
    if (threadIdx.x == 0) x = v;
    out[threadIdx.x] = x;
}

/* Adds 1 to every element (for graph replay). */
__global__ void inc_kernel(int *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1;
}

extern "C" {

cudaError_t infemu_selfcheck_sum(const float *x, int n, int blocks, int threads, float *out,
                                 cudaStream_t st) {
    sum_kernel<<<blocks, threads, 0, st>>>(x, n, out);
    return cudaGetLastError();
}

cudaError_t infemu_selfcheck_deadlock(float *out) {
    deadlock_kernel<<<1, 64>>>(out);
    return cudaGetLastError();
}

cudaError_t infemu_selfcheck_oob(float *out, int n) {
    oob_kernel<<<1, 1>>>(out, n);
    return cudaGetLastError();
}

cudaError_t infemu_selfcheck_racy(int *out, int v, int threads) {
    racy_kernel<<<1, threads>>>(out, v);
    return cudaGetLastError();
}

cudaError_t infemu_selfcheck_inc(int *x, int n, int threads, cudaStream_t st) {
    inc_kernel<<<(n + threads - 1) / threads, threads, 0, st>>>(x, n);
    return cudaGetLastError();
}

} /* extern "C" */
