/* selfcheck.h - launchers of emu/selfcheck.cu (emulator build only). */
#ifndef INFEMU_SELFCHECK_H
#define INFEMU_SELFCHECK_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[b * threads + t] = sum of the x[i] that block b's threads visit. */
cudaError_t infemu_selfcheck_sum(const float *x, int n, int blocks, int threads, float *out,
                                 cudaStream_t st);
/* A kernel whose barriers can never complete (the emulator must abort). */
cudaError_t infemu_selfcheck_deadlock(float *out);
/* A kernel that writes out[n] (ASan must abort). */
cudaError_t infemu_selfcheck_oob(float *out, int n);
/* out[t] = a shared value thread 0 sets to v without a barrier (a race). */
cudaError_t infemu_selfcheck_racy(int *out, int v, int threads);
/* x[i] += 1 for i < n; threads may exceed 1024 to test the launch check. */
cudaError_t infemu_selfcheck_inc(int *x, int n, int threads, cudaStream_t st);

#ifdef __cplusplus
}
#endif

#endif
