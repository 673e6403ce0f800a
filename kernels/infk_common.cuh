/* infk_common.cuh - shared by the kernel sources (kernels/ .cu): error checks, dtype
 * load/store helpers, warp reductions. Not for C code. */
#ifndef INF_INFK_COMMON_CUH
#define INF_INFK_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "infk.h"

/* cudaCheck: returns INF_E* (with the CUDA error string) from the enclosing
 * launcher if the call failed. */
static inline int infk_cuda_fail(cudaError_t e, const char *what, inf_error *err) {
    return inf_error_set(err, e == cudaErrorMemoryAllocation ? INF_ENOMEM : INF_EIO,
                         "CUDA %s failed: %s (%s)", what, cudaGetErrorString(e),
                         cudaGetErrorName(e));
}
#define cudaCheck(call, err)                                                          \
    do {                                                                              \
        cudaError_t e_ = (call);                                                      \
        if (e_ != cudaSuccess) return infk_cuda_fail(e_, #call, err);                 \
    } while (0)

/* After every launch: a bad configuration shows up here; in debug builds also
 * the kernel's own faults, by synchronizing. */
#ifdef INF_CUDA_DEBUG
#define INFK_LAUNCH_CHECK(name, st, err)                                              \
    do {                                                                              \
        cudaError_t e_ = cudaGetLastError();                                          \
        if (e_ == cudaSuccess) e_ = cudaStreamSynchronize(st);                        \
        if (e_ != cudaSuccess) return infk_cuda_fail(e_, "kernel " name, err);        \
    } while (0)
#else
#define INFK_LAUNCH_CHECK(name, st, err)                                              \
    do {                                                                              \
        cudaError_t e_ = cudaGetLastError();                                          \
        if (e_ != cudaSuccess) return infk_cuda_fail(e_, "kernel " name, err);        \
    } while (0)
#endif

/* Dynamic shared memory of a kernel (the emulator, emu/, has no extern
 * __shared__ arrays). */
#ifdef INFEMU
#define INFK_DYN_SHARED(type, name) type *name = (type *)infemu_dyn_smem()
#else
#define INFK_DYN_SHARED(type, name) extern __shared__ type name[]
#endif

static inline int infk_cdiv(long a, long b) { return (int)((a + b - 1) / b); }

/* Element load / store by runtime dtype for the float types. */
__device__ __forceinline__ float infk_ld(const void *p, long i, int dt) {
    if (dt == INFK_F16) return __half2float(((const __half *)p)[i]);
    if (dt == INFK_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}
__device__ __forceinline__ void infk_st(void *p, long i, int dt, float v) {
    if (dt == INFK_F16) ((__half *)p)[i] = __float2half_rn(v);
    else if (dt == INFK_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((float *)p)[i] = v;
}

__device__ __forceinline__ float infk_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float infk_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum for blockDim.x a multiple of 32 (<= 1024); every thread gets
 * the result. red: 32 floats of shared memory. */
__device__ __forceinline__ float infk_block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = infk_warp_sum(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return infk_warp_sum(v);
}

/* One weight element W[r][c] as f32, any infk_dt (slow path: gathers,
 * dequantization; the GEMV has its own vectorized loads). */
__device__ __forceinline__ float infk_w_elem(const void *data, const void *scales, int dt,
                                             int64_t cols, int64_t r, int64_t c) {
    if (dt == INFK_Q8_0) {
        float d = __half2float(((const __half *)scales)[r * (cols / 32) + c / 32]);
        return (float)((const int8_t *)data)[r * cols + c] * d;
    }
    if (dt == INFK_Q4_0) {
        float d = __half2float(((const __half *)scales)[r * (cols / 32) + c / 32]);
        int j = (int)(c & 31);
        uint8_t b = ((const uint8_t *)data)[r * (cols / 2) + (c / 32) * 16 + (j & 15)];
        int q = j < 16 ? (b & 15) : (b >> 4);
        return (float)(q - 8) * d;
    }
    return infk_ld(data, r * cols + c, dt);
}

#endif
