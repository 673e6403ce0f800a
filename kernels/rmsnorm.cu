/* rmsnorm.cu - RMSNorm fused with the residual add (and, with a row list,
 * the gather of the rows that need logits). */
#include "infk_common.cuh"

/* One block per output row. The row is read once into registers-or-L1 by the
 * sum pass and again by the scale pass (rows are at most 64 Ki floats: the
 * second read hits L1/L2). The summation is in f32 per thread, then a tree:
 * closer to the CPU's double sum than a serial f32 loop. */
__global__ void rmsnorm_kernel(float *x, const float *delta, const float *w, const int32_t *rows,
                               int n, float eps, void *out, int out_dt) {
    __shared__ float red[32];
    int i = blockIdx.x;
    size_t r = rows ? (size_t)rows[i] : (size_t)i;
    float *xr = x + r * n;
    const float *dr = delta ? delta + r * n : NULL;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
        float v = xr[c];
        if (dr) {
            v += dr[c];
            xr[c] = v;
        }
        ss += v * v;
    }
    ss = infk_block_sum(ss, red);
    float scale = rsqrtf(ss / (float)n + eps);
    size_t o = (size_t)i * n;
    for (int c = threadIdx.x; c < n; c += blockDim.x)
        infk_st(out, (long)(o + c), out_dt, xr[c] * scale * w[c]);
}

int infk_rmsnorm(float *x, const float *delta, const float *w, const int32_t *rows, int n_rows,
                 int n, float eps, void *out, int out_dt, cudaStream_t st, inf_error *err) {
    if (n_rows <= 0) return 0;
    int threads = n >= 1024 ? 1024 : n >= 256 ? 256 : 64;
    rmsnorm_kernel<<<n_rows, threads, 0, st>>>(x, delta, w, rows, n, eps, out, out_dt);
    INFK_LAUNCH_CHECK("rmsnorm", st, err);
    return 0;
}
