/* attn_common.cuh - K/V row addressing and loads shared by the attention
 * kernels. */
#ifndef INF_ATTN_COMMON_CUH
#define INF_ATTN_COMMON_CUH

#include "infk_common.cuh"

/* Element offset of position j's row (for kv head kvh) in a layer's cache:
 * the block table maps j to (block, j % block_size), as in the CPU cache. */
__device__ __forceinline__ size_t attn_row(const infk_attn &a, const int32_t *tab, int j, int kvh) {
    int bs = a.block_size;
    size_t slot = (size_t)tab[j / bs] * bs + (size_t)(j % bs);
    return slot * (size_t)(a.n_head_kv * a.head_dim) + (size_t)kvh * a.head_dim;
}

__device__ __forceinline__ float attn_ld(const void *p, size_t i, int f16) {
    return f16 ? __half2float(((const __half *)p)[i]) : ((const float *)p)[i];
}

/* NPL consecutive elements starting at element off of a K/V row (off < hd
 * checked per element); one vector load when the whole run is in bounds. */
template <int NPL>
__device__ __forceinline__ void attn_ld_run(const void *base, size_t row, int off, int hd, int f16,
                                            float *v) {
    if (off + NPL <= hd) {
        if (f16) {
            const __half *p = (const __half *)base + row + off;
            if (NPL == 8 && ((uintptr_t)p & 15) == 0) {
                uint4 u = *(const uint4 *)p;
                const __half2 *h = (const __half2 *)&u;
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    float2 f = __half22float2(h[i]);
                    v[2 * i % NPL] = f.x;
                    v[(2 * i + 1) % NPL] = f.y;
                }
                return;
            }
            if (NPL == 4 && ((uintptr_t)p & 7) == 0) {
                uint2 u = *(const uint2 *)p;
                const __half2 *h = (const __half2 *)&u;
                float2 f0 = __half22float2(h[0]), f1 = __half22float2(h[1]);
                v[0] = f0.x;
                v[1 % NPL] = f0.y;
                v[2 % NPL] = f1.x;
                v[3 % NPL] = f1.y;
                return;
            }
        } else {
            const float *p = (const float *)base + row + off;
            if (NPL % 4 == 0 && ((uintptr_t)p & 15) == 0) {
#pragma unroll
                for (int i = 0; i < NPL; i += 4) {
                    float4 f = *(const float4 *)(p + i);
                    v[i] = f.x;
                    v[(i + 1) % NPL] = f.y;
                    v[(i + 2) % NPL] = f.z;
                    v[(i + 3) % NPL] = f.w;
                }
                return;
            }
        }
    }
#pragma unroll
    for (int i = 0; i < NPL; i++) v[i] = off + i < hd ? attn_ld(base, row + off + i, f16) : 0.0f;
}

#endif
