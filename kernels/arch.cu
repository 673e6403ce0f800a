/* arch.cu - kernels for the steps only some architectures take: QK-norm
 * (qwen3, gemma3), GeGLU and the embedding scale (gemma), final-logit
 * soft-capping (gemma2). */
#include "infk_common.cuh"

/* One block per (token, head); the head is at most 256 floats. */
__global__ void head_rmsnorm_kernel(float *x, long stride, long off, int n_heads, int hd,
                                    const float *w, float eps) {
    __shared__ float red[32];
    int t = blockIdx.x / n_heads, h = blockIdx.x % n_heads;
    float *v = x + (size_t)t * stride + off + (size_t)h * hd;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) ss += v[i] * v[i];
    ss = infk_block_sum(ss, red);
    float scale = rsqrtf(ss / (float)hd + eps);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) v[i] = v[i] * scale * w[i];
}

int infk_head_rmsnorm(float *x, int n, long stride, long off, int n_heads, int head_dim,
                      const float *w, float eps, cudaStream_t st, inf_error *err) {
    if (n <= 0 || n_heads <= 0) return 0;
    head_rmsnorm_kernel<<<(unsigned)(n * n_heads), 64, 0, st>>>(x, stride, off, n_heads, head_dim,
                                                                 w, eps);
    INFK_LAUNCH_CHECK("head_rmsnorm", st, err);
    return 0;
}

static unsigned grid_of(size_t total) {
    size_t b = (total + 255) / 256;
    return (unsigned)(b > 65535 * 4 ? 65535 * 4 : b < 1 ? 1 : b);
}

__global__ void geglu_kernel(const float *gu, long stride, int n_ff, int n, void *out, int out_dt) {
    size_t total = (size_t)n * n_ff;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / n_ff, j = i % n_ff;
        float g = gu[t * stride + j], u = gu[t * stride + n_ff + j];
        /* tanh approximation, as ggml_gelu and the CPU backend */
        float ge = 0.5f * g * (1.0f + tanhf(0.79788456080286535588f * g * (1.0f + 0.044715f * g * g)));
        infk_st(out, (long)i, out_dt, ge * u);
    }
}

int infk_geglu(const float *gu, long stride, int n_ff, int n, void *out, int out_dt,
               cudaStream_t st, inf_error *err) {
    if (n <= 0) return 0;
    geglu_kernel<<<grid_of((size_t)n * n_ff), 256, 0, st>>>(gu, stride, n_ff, n, out, out_dt);
    INFK_LAUNCH_CHECK("geglu", st, err);
    return 0;
}

__global__ void scale_kernel(float *x, size_t count, float s) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

int infk_scale(float *x, size_t count, float s, cudaStream_t st, inf_error *err) {
    if (!count) return 0;
    scale_kernel<<<grid_of(count), 256, 0, st>>>(x, count, s);
    INFK_LAUNCH_CHECK("scale", st, err);
    return 0;
}

__global__ void softcap_kernel(float *x, size_t count, float cap) {
    float inv = 1.0f / cap;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = cap * tanhf(x[i] * inv);
}

int infk_softcap(float *x, size_t count, float cap, cudaStream_t st, inf_error *err) {
    if (!count) return 0;
    softcap_kernel<<<grid_of(count), 256, 0, st>>>(x, count, cap);
    INFK_LAUNCH_CHECK("softcap", st, err);
    return 0;
}
