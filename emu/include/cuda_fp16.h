/* cuda_fp16.h (emulator) - __half / __half2 for the kernel sources compiled as
 * C++ on the CPU. Conversions are IEEE round-to-nearest-even through the
 * compiler's _Float16, independent of the engine's own converters. */
#ifndef INFEMU_CUDA_FP16_H
#define INFEMU_CUDA_FP16_H

#include <string.h>

#include "cuda_runtime.h"

struct __half {
    unsigned short __x;
};
struct alignas(4) __half2 {
    __half x, y;
};

static inline __half __float2half_rn(float f) {
    _Float16 h = (_Float16)f;
    __half r;
    memcpy(&r.__x, &h, 2);
    return r;
}
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) {
    _Float16 v;
    memcpy(&v, &h.__x, 2);
    return (float)v;
}
static inline float2 __half22float2(__half2 h) {
    float2 r;
    r.x = __half2float(h.x);
    r.y = __half2float(h.y);
    return r;
}
static inline __half2 __floats2half2_rn(float a, float b) {
    __half2 r;
    r.x = __float2half_rn(a);
    r.y = __float2half_rn(b);
    return r;
}
static inline __half2 __float22half2_rn(float2 f) { return __floats2half2_rn(f.x, f.y); }
static inline __half __ushort_as_half(unsigned short u) {
    __half r;
    r.__x = u;
    return r;
}
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }

#endif
