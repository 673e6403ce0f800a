/* gpu_test.h - shared helpers of the GPU test program (tests-gpu/). */
#ifndef INF_GPU_TEST_H
#define INF_GPU_TEST_H

#include <stddef.h>
#include <stdint.h>

/* Registers the kernel-vs-CPU suite "gpu_kernels" (gpu_kernel_tests.c). */
void gpu_register_kernel_tests(void);

/* Registers "gpu_arch" (test_gpu_arch.c): the architectures beyond llama/qwen2. */
void gpu_register_arch_tests(void);

/* Registers "emu_selfcheck" in emulator builds (test_emu.c); no-op otherwise. */
void gpu_register_emu_tests(void);

/* max |a - b| / max(|b|, floor) over n values; +inf if a has a NaN. */
double gpu_rel_err(const float *a, const float *b, size_t n, double floor);

#endif
