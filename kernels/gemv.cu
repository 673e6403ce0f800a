/* gemv.cu - y = W x for 1..8 tokens: the decode path for every weight type.
 *
 * Decode at small batch is bound by reading the weights once, so the kernel
 * is built around the loads: one warp per output row, each lane issuing
 * 16-byte streaming loads (__ldcs: read once, keep them out of L1), several
 * in flight before any arithmetic; the activations (a few KiB) stay in L1/L2.
 * Every weight byte is read once for all tokens of the call. Quant types read
 * the repacked layout (quants contiguous per row, scales apart), so a 16-byte
 * load is 16 Q8_0 weights or one whole 32-weight Q4_0 block.
 */
#include "infk_common.cuh"

#define GEMV_WARPS 8 /* rows per block */
#define GEMV_UNROLL 4 /* 16-byte loads in flight per lane */

/* Elements covered by one 16-byte load. */
template <int DT> struct gemv_traits;
template <> struct gemv_traits<INFK_F32> { enum { EPL = 4 }; };
template <> struct gemv_traits<INFK_F16> { enum { EPL = 8 }; };
template <> struct gemv_traits<INFK_BF16> { enum { EPL = 8 }; };
template <> struct gemv_traits<INFK_Q8_0> { enum { EPL = 16 }; };
template <> struct gemv_traits<INFK_Q4_0> { enum { EPL = 32 }; };

/* The EPL weights of one load as floats. */
template <int DT>
__device__ __forceinline__ void gemv_unpack(uint4 v, float d, float *w) {
    if (DT == INFK_F32) {
        w[0] = __uint_as_float(v.x);
        w[1] = __uint_as_float(v.y);
        w[2] = __uint_as_float(v.z);
        w[3] = __uint_as_float(v.w);
    } else if (DT == INFK_F16) {
        const __half2 *h = (const __half2 *)&v;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __half22float2(h[i]);
            w[2 * i] = f.x;
            w[2 * i + 1] = f.y;
        }
    } else if (DT == INFK_BF16) {
        const __nv_bfloat162 *h = (const __nv_bfloat162 *)&v;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __bfloat1622float2(h[i]);
            w[2 * i] = f.x;
            w[2 * i + 1] = f.y;
        }
    } else if (DT == INFK_Q8_0) {
        const int8_t *q = (const int8_t *)&v;
#pragma unroll
        for (int i = 0; i < 16; i++) w[i] = (float)q[i] * d;
    } else {
        const uint8_t *q = (const uint8_t *)&v;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            w[i] = (float)((q[i] & 15) - 8) * d;
            w[i + 16] = (float)((q[i] >> 4) - 8) * d;
        }
    }
}

template <int DT, int NT>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(const uint8_t *__restrict__ data, const __half *__restrict__ scales, int64_t rows,
                int64_t cols, const float *__restrict__ x, long x_stride, float *__restrict__ y,
                long y_stride) {
    const int EPL = gemv_traits<DT>::EPL;
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    /* Bytes per row: EPL elements per 16 bytes. */
    const uint4 *wr = (const uint4 *)(data + (size_t)r * (size_t)(cols / EPL) * 16);
    const __half *sr = (DT == INFK_Q8_0 || DT == INFK_Q4_0) ? scales + r * (cols / 32) : NULL;
    int64_t nv = cols / EPL; /* 16-byte vectors per row */
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    for (int64_t v0 = lane; v0 < nv; v0 += 32 * GEMV_UNROLL) {
        uint4 wv[GEMV_UNROLL];
        float dv[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            int64_t v = v0 + (int64_t)u * 32;
            wv[u] = v < nv ? __ldcs(wr + v) : make_uint4(0, 0, 0, 0);
            dv[u] = (sr && v < nv) ? __half2float(sr[(v * EPL) / 32]) : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            int64_t v = v0 + (int64_t)u * 32;
            if (v >= nv) break;
            float w[EPL];
            gemv_unpack<DT>(wv[u], dv[u], w);
            int64_t c = v * EPL;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const float4 *xv = (const float4 *)(x + t * x_stride + c);
                float s = 0.0f;
#pragma unroll
                for (int i = 0; i < EPL / 4; i++) {
                    float4 xx = xv[i];
                    s += w[4 * i] * xx.x + w[4 * i + 1] * xx.y + w[4 * i + 2] * xx.z +
                         w[4 * i + 3] * xx.w;
                }
                acc[t] += s;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float s = infk_warp_sum(acc[t]);
        if (lane == 0) y[t * y_stride + r] = s;
    }
}

/* Any layout, any width: lanes stride over the columns one element at a time.
 * For rows whose width does not allow aligned 16-byte loads (tiny models). */
template <int NT>
__global__ void gemv_generic_kernel(const void *data, const void *scales, int dt, int64_t rows,
                                    int64_t cols, const float *x, long x_stride, float *y,
                                    long y_stride) {
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) {
        float w = infk_w_elem(data, scales, dt, cols, r, c);
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] += w * x[t * x_stride + c];
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float s = infk_warp_sum(acc[t]);
        if (lane == 0) y[t * y_stride + r] = s;
    }
}

template <int DT, int NT>
static void launch_nt(const infk_weight *w, const float *x, long xs, float *y, long ys,
                      unsigned grid, cudaStream_t st) {
    gemv_kernel<DT, NT><<<grid, GEMV_WARPS * 32, 0, st>>>(
        (const uint8_t *)w->data, (const __half *)w->scales, w->rows, w->cols, x, xs, y, ys);
}

template <int DT>
static void launch_dt(const infk_weight *w, const float *x, long xs, int n, float *y, long ys,
                      unsigned grid, cudaStream_t st) {
    switch (n) {
    case 1: launch_nt<DT, 1>(w, x, xs, y, ys, grid, st); break;
    case 2: launch_nt<DT, 2>(w, x, xs, y, ys, grid, st); break;
    case 3: launch_nt<DT, 3>(w, x, xs, y, ys, grid, st); break;
    case 4: launch_nt<DT, 4>(w, x, xs, y, ys, grid, st); break;
    case 5: launch_nt<DT, 5>(w, x, xs, y, ys, grid, st); break;
    case 6: launch_nt<DT, 6>(w, x, xs, y, ys, grid, st); break;
    case 7: launch_nt<DT, 7>(w, x, xs, y, ys, grid, st); break;
    default: launch_nt<DT, 8>(w, x, xs, y, ys, grid, st); break;
    }
}

template <int NT>
static void launch_generic(const infk_weight *w, const float *x, long xs, float *y, long ys,
                           unsigned grid, cudaStream_t st) {
    gemv_generic_kernel<NT><<<grid, GEMV_WARPS * 32, 0, st>>>(w->data, w->scales, w->dt, w->rows,
                                                              w->cols, x, xs, y, ys);
}

int infk_gemv(const infk_weight *w, const float *x, long x_stride, int n, float *y, long y_stride,
              cudaStream_t st, inf_error *err) {
    if (n <= 0) return 0;
    if (n > INFK_GEMV_MAX_TOKENS)
        return inf_error_set(err, INF_EINVAL, "gemv takes at most %d tokens, got %d",
                             INFK_GEMV_MAX_TOKENS, n);
    unsigned grid = (unsigned)infk_cdiv((long)w->rows, GEMV_WARPS);
    /* Vector path: every row and every x row must start 16-byte aligned. */
    int epl = w->dt == INFK_F32 ? 4 : w->dt == INFK_Q8_0 ? 16 : w->dt == INFK_Q4_0 ? 32 : 8;
    int vec = w->cols % epl == 0 && w->cols % 4 == 0 && (n == 1 || x_stride % 4 == 0) &&
              ((uintptr_t)x & 15) == 0 && ((uintptr_t)w->data & 15) == 0;
    if (!vec) {
        switch (n) {
        case 1: launch_generic<1>(w, x, x_stride, y, y_stride, grid, st); break;
        case 2: launch_generic<2>(w, x, x_stride, y, y_stride, grid, st); break;
        case 3: launch_generic<3>(w, x, x_stride, y, y_stride, grid, st); break;
        case 4: launch_generic<4>(w, x, x_stride, y, y_stride, grid, st); break;
        case 5: launch_generic<5>(w, x, x_stride, y, y_stride, grid, st); break;
        case 6: launch_generic<6>(w, x, x_stride, y, y_stride, grid, st); break;
        case 7: launch_generic<7>(w, x, x_stride, y, y_stride, grid, st); break;
        default: launch_generic<8>(w, x, x_stride, y, y_stride, grid, st); break;
        }
    } else {
        switch (w->dt) {
        case INFK_F32: launch_dt<INFK_F32>(w, x, x_stride, n, y, y_stride, grid, st); break;
        case INFK_F16: launch_dt<INFK_F16>(w, x, x_stride, n, y, y_stride, grid, st); break;
        case INFK_BF16: launch_dt<INFK_BF16>(w, x, x_stride, n, y, y_stride, grid, st); break;
        case INFK_Q8_0: launch_dt<INFK_Q8_0>(w, x, x_stride, n, y, y_stride, grid, st); break;
        case INFK_Q4_0: launch_dt<INFK_Q4_0>(w, x, x_stride, n, y, y_stride, grid, st); break;
        default:
            return inf_error_set(err, INF_EINVAL, "gemv: unknown weight type %d", w->dt);
        }
    }
    INFK_LAUNCH_CHECK("gemv", st, err);
    return 0;
}
