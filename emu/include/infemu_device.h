/* infemu_device.h - the CUDA device language, emulated in C++ on the CPU.
 *
 * The kernel sources (kernels/ .cu) are compiled by the host C++ compiler
 * with this header forced in (-include) after `kernel<<<cfg>>>(args)` has
 * been rewritten to `infemu::launcher(cfg).go("kernel", kernel, args)`
 * (emu/cu2cpp.sh). Each CUDA thread runs as a fiber; blocks run one after
 * another, threads of a block interleave only at barriers (__syncthreads,
 * warp shuffles / votes, __syncwarp). That is a legal CUDA schedule, so a
 * correct kernel computes the same result; what it cannot show is a race
 * that only a real GPU's interleaving exposes. Static __shared__ arrays
 * become function statics (blocks never overlap, so that is per block).
 */
#ifndef INFEMU_DEVICE_H
#define INFEMU_DEVICE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_runtime_api.h"

/* ---- qualifiers ---------------------------------------------------------- */
#define __global__ static
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __shared__ static
#define __constant__ static
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __managed__

/* Dynamic shared memory: kernels declare it with INFK_DYN_SHARED (see
 * kernels/infk_common.cuh), which maps to this under the emulator. */
void *infemu_dyn_smem(void);

/* ---- vector types ---------------------------------------------------------- */
struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(4) char4 { signed char x, y, z, w; };
struct alignas(4) uchar4 { unsigned char x, y, z, w; };
struct alignas(16) double2 { double x, y; };

static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline int2 make_int2(int x, int y) { return int2{x, y}; }
static inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

/* ---- built-in variables (set by the scheduler before it resumes a fiber) -- */
extern uint3 infemu_thread_idx, infemu_block_idx;
extern dim3 infemu_block_dim, infemu_grid_dim;
#define threadIdx infemu_thread_idx
#define blockIdx infemu_block_idx
#define blockDim infemu_block_dim
#define gridDim infemu_grid_dim
static const int warpSize = 32;

/* ---- synchronization ------------------------------------------------------- */
void infemu_syncthreads(void);
int infemu_syncthreads_reduce(int pred, int op); /* op 0 count, 1 and, 2 or */
/* Warp exchange: every lane in mask deposits bits and gets src_lane's. */
uint64_t infemu_warp_exchange(unsigned mask, uint64_t bits, int src_lane);
unsigned infemu_warp_ballot(unsigned mask, int pred);
void infemu_syncwarp(unsigned mask);
int infemu_lane(void);

static inline void __syncthreads(void) { infemu_syncthreads(); }
static inline int __syncthreads_count(int p) { return infemu_syncthreads_reduce(p, 0); }
static inline int __syncthreads_and(int p) { return infemu_syncthreads_reduce(p, 1); }
static inline int __syncthreads_or(int p) { return infemu_syncthreads_reduce(p, 2); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { infemu_syncwarp(mask); }
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

template <typename T> static inline T infemu_shfl_impl(unsigned mask, T v, int src) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle type");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = infemu_warp_exchange(mask, b, src);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    int lane = infemu_lane();
    return infemu_shfl_impl(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
    int lane = infemu_lane(), s = lane ^ m;
    if ((s & ~(width - 1)) != (lane & ~(width - 1))) s = lane;
    return infemu_shfl_impl(mask, v, s);
}
template <typename T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    int lane = infemu_lane(), s = lane - (int)d;
    if (s < (lane & ~(width - 1))) s = lane;
    return infemu_shfl_impl(mask, v, s);
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    int lane = infemu_lane(), s = lane + (int)d;
    if (s >= (lane & ~(width - 1)) + width) s = lane;
    return infemu_shfl_impl(mask, v, s);
}
static inline unsigned __ballot_sync(unsigned mask, int p) { return infemu_warp_ballot(mask, p); }
static inline int __any_sync(unsigned mask, int p) { return infemu_warp_ballot(mask, p) != 0; }
static inline int __all_sync(unsigned mask, int p) { return infemu_warp_ballot(mask, p) == mask; }
static inline unsigned __activemask(void) { return infemu_warp_ballot(0xffffffffu, 1); }

/* ---- atomics (fibers of one block never run at once; blocks run in turn) -- */
template <typename T> static inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }
template <typename T> static inline T atomicSub(T *p, T v) { T o = *p; *p = o - v; return o; }
template <typename T> static inline T atomicMin(T *p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <typename T> static inline T atomicMax(T *p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <typename T> static inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }
template <typename T> static inline T atomicCAS(T *p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
template <typename T> static inline T atomicOr(T *p, T v) { T o = *p; *p = o | v; return o; }
template <typename T> static inline T atomicAnd(T *p, T v) { T o = *p; *p = o & v; return o; }

/* ---- intrinsics -------------------------------------------------------------- */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
/* glibc declares these names itself, so they are macros here. */
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __powf(a, b) powf(a, b)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
static inline long long __double_as_longlong(double d) { long long u; memcpy(&u, &d, 8); return u; }
static inline double __longlong_as_double(long long u) { double d; memcpy(&d, &u, 8); return d; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
static inline int __clzll(unsigned long long x) { return x ? __builtin_clzll(x) : 64; }
static inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
static inline int __ffsll(unsigned long long x) { return __builtin_ffsll((long long)x); }
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcs(const T *p) { return *p; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }
template <typename T> static inline T __ldlu(const T *p) { return *p; }
template <typename T> static inline void __stcs(T *p, T v) { *p = v; }
template <typename T> static inline void __stcg(T *p, T v) { *p = v; }
template <typename A, typename B> static inline typename std::common_type<A, B>::type min(A a, B b) {
    return a < b ? a : b;
}
template <typename A, typename B> static inline typename std::common_type<A, B>::type max(A a, B b) {
    return a > b ? a : b;
}

/* ---- launches ---------------------------------------------------------------- */
cudaError_t infemu_func_set_attribute(const void *fn, int attr, int value);
template <class T>
static inline cudaError_t cudaFuncSetAttribute(T *fn, enum cudaFuncAttribute attr, int value) {
    return infemu_func_set_attribute(reinterpret_cast<const void *>(fn), (int)attr, value);
}

namespace infemu {

struct launch_cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t st;
};

/* Checks the configuration, then runs body once per thread of every block
 * now, or records it when st is capturing into a graph. */
void launch(const launch_cfg &c, const char *name, const void *fn, std::function<void()> body);
/* Notes a pointer argument of kernel `name`: it must be NULL or device memory. */
void check_arg_pointer(const char *name, int index, const void *p);

template <typename T> static inline void check_arg(const char *name, int index, const T &v) {
    if constexpr (std::is_pointer<T>::value) check_arg_pointer(name, index, (const void *)v);
}

struct launcher {
    launch_cfg c;
    launcher(dim3 g, dim3 b, size_t smem = 0, cudaStream_t st = 0) : c{g, b, smem, st} {}
    template <typename... P, typename... A> void go(const char *name, void (*k)(P...), A &&...a) {
        static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
        std::tuple<typename std::decay<P>::type...> args(
            static_cast<typename std::decay<P>::type>(std::forward<A>(a))...);
        std::apply([name](const auto &...v) {
            int i = 0;
            (check_arg(name, i++, v), ...);
        }, args);
        launch(c, name, reinterpret_cast<const void *>(k), [k, args]() { std::apply(k, args); });
    }
};

} // namespace infemu

#endif
