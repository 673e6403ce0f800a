/* swiglu.cu - SwiGLU activation, bias add, f32 -> f16/bf16 conversion and
 * the row dequantization of Q8_0/Q4_0 weights for the cuBLAS path. */
#include "infk_common.cuh"

__global__ void swiglu_kernel(const float *gu, long stride, int n_ff, int n, void *out,
                              int out_dt) {
    size_t total = (size_t)n * n_ff;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / n_ff, j = i % n_ff;
        float g = gu[t * stride + j], u = gu[t * stride + n_ff + j];
        infk_st(out, (long)i, out_dt, g / (1.0f + expf(-g)) * u);
    }
}

static unsigned grid_for(size_t total) {
    size_t b = (total + 255) / 256;
    return (unsigned)(b > 65535 * 4 ? 65535 * 4 : b < 1 ? 1 : b);
}

int infk_swiglu(const float *gu, long stride, int n_ff, int n, void *out, int out_dt,
                cudaStream_t st, inf_error *err) {
    if (n <= 0) return 0;
    swiglu_kernel<<<grid_for((size_t)n * n_ff), 256, 0, st>>>(gu, stride, n_ff, n, out, out_dt);
    INFK_LAUNCH_CHECK("swiglu", st, err);
    return 0;
}

__global__ void add_bias_kernel(float *y, long stride, long off, int len, const float *bias,
                                int n) {
    size_t total = (size_t)n * len;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[(i / len) * stride + off + i % len] += bias[i % len];
}

int infk_add_bias(float *y, long stride, long off, int len, const float *bias, int n,
                  cudaStream_t st, inf_error *err) {
    if (n <= 0 || len <= 0) return 0;
    add_bias_kernel<<<grid_for((size_t)n * len), 256, 0, st>>>(y, stride, off, len, bias, n);
    INFK_LAUNCH_CHECK("add_bias", st, err);
    return 0;
}

__global__ void convert_kernel(const float *src, void *dst, int dt, size_t count) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        infk_st(dst, (long)i, dt, src[i]);
}

int infk_convert(const float *src, void *dst, int dst_dt, size_t count, cudaStream_t st,
                 inf_error *err) {
    if (!count) return 0;
    convert_kernel<<<grid_for(count), 256, 0, st>>>(src, dst, dst_dt, count);
    INFK_LAUNCH_CHECK("convert", st, err);
    return 0;
}

/* One thread per 32-weight block: reads its scale once. */
__global__ void dequant_kernel(const void *data, const void *scales, int dt, int64_t cols,
                               int64_t r0, int64_t nr, void *dst, int dst_dt) {
    int64_t nb = cols / 32, total = nr * nb;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = r0 + i / nb, b = i % nb;
        long o = (long)((i / nb) * cols + b * 32);
        for (int j = 0; j < 32; j++)
            infk_st(dst, o + j, dst_dt, infk_w_elem(data, scales, dt, cols, r, b * 32 + j));
    }
}

int infk_dequant_rows(const infk_weight *w, int64_t r0, int64_t nr, void *dst, int dst_dt,
                      cudaStream_t st, inf_error *err) {
    if (nr <= 0) return 0;
    if (w->dt != INFK_Q8_0 && w->dt != INFK_Q4_0)
        return inf_error_set(err, INF_EINVAL, "dequant_rows: %s is not a quant type",
                             infk_dt_name(w->dt));
    dequant_kernel<<<grid_for((size_t)(nr * (w->cols / 32))), 256, 0, st>>>(
        w->data, w->scales, w->dt, w->cols, r0, nr, dst, dst_dt);
    INFK_LAUNCH_CHECK("dequant", st, err);
    return 0;
}
