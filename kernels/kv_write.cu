/* kv_write.cu - stores the new tokens' K and V rows in the paged cache. */
#include "infk_common.cuh"

/* Grid: tokens; threads over kv_dim, K and V together. */
__global__ void kv_write_kernel(const float *qkv, long stride, long k_off, long v_off, int kv_dim,
                                const int32_t *slot, void *kc, void *vc, int kv_dt) {
    int t = blockIdx.x;
    const float *k = qkv + (size_t)t * stride + k_off, *v = qkv + (size_t)t * stride + v_off;
    size_t o = (size_t)slot[t] * kv_dim;
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
        infk_st(kc, (long)(o + i), kv_dt, k[i]);
        infk_st(vc, (long)(o + i), kv_dt, v[i]);
    }
}

int infk_kv_write(const float *qkv, long stride, long k_off, long v_off, int kv_dim, int n,
                  const int32_t *slot, void *k_cache, void *v_cache, int kv_dt, cudaStream_t st,
                  inf_error *err) {
    if (n <= 0) return 0;
    int threads = kv_dim >= 256 ? 256 : 64;
    kv_write_kernel<<<n, threads, 0, st>>>(qkv, stride, k_off, v_off, kv_dim, slot, k_cache,
                                           v_cache, kv_dt);
    INFK_LAUNCH_CHECK("kv_write", st, err);
    return 0;
}
