/* cuda_bf16.h (emulator) - __nv_bfloat16 / __nv_bfloat162 for the kernel
 * sources compiled as C++ on the CPU. float -> bf16 rounds to nearest even;
 * NaN stays a quiet NaN. */
#ifndef INFEMU_CUDA_BF16_H
#define INFEMU_CUDA_BF16_H

#include <string.h>

#include "cuda_runtime.h"

struct __nv_bfloat16 {
    unsigned short __x;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) r.__x = (unsigned short)((u >> 16) | 0x40u);
    else r.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 h) {
    unsigned u = (unsigned)h.__x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float2 __bfloat1622float2(__nv_bfloat162 h) {
    float2 r;
    r.x = __bfloat162float(h.x);
    r.y = __bfloat162float(h.y);
    return r;
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    __nv_bfloat162 r;
    r.x = __float2bfloat16_rn(a);
    r.y = __float2bfloat16_rn(b);
    return r;
}

#endif
