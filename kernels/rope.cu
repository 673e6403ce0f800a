/* rope.cu - rotary position embedding on q and k in place, normal and neox
 * pairing, from the per-pair inverse frequency table the CPU backend builds. */
#include "infk_common.cuh"

/* Grid: (token, head of q then k). Threads over the n_rot/2 pairs. The angle
 * is computed in double like the CPU table (pos * inv_freq reaches 1e5
 * radians on long contexts, where an f32 product loses the phase). */
__global__ void rope_kernel(float *qkv, long stride, long q_off, int n_head, long k_off,
                            int head_dim, int n_rot, int neox, const int32_t *pos,
                            const float *inv_freq, float mscale) {
    int t = blockIdx.x, h = blockIdx.y;
    float *v = qkv + (size_t)t * stride +
               (h < n_head ? q_off + (long)h * head_dim : k_off + (long)(h - n_head) * head_dim);
    int half = n_rot / 2;
    double p = (double)pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        double th = p * (double)inv_freq[i];
        float s, c;
        /* f32 sin/cos of the exactly reduced angle: as accurate as the CPU's
         * (float)cos(theta) without a double-precision sincos per pair. */
        double red = th - 6.283185307179586 * floor(th / 6.283185307179586);
        sincosf((float)red, &s, &c);
        s *= mscale;
        c *= mscale;
        int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        float x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * c - x1 * s;
        v[i1] = x0 * s + x1 * c;
    }
}

int infk_rope(float *qkv, int n, long stride, long q_off, int n_head, long k_off, int n_head_kv,
              int head_dim, int n_rot, int neox, const int32_t *pos, const float *inv_freq,
              cudaStream_t st, inf_error *err) {
    return infk_rope_ms(qkv, n, stride, q_off, n_head, k_off, n_head_kv, head_dim, n_rot, neox, pos,
                        inv_freq, 1.0f, st, err);
}

int infk_rope_ms(float *qkv, int n, long stride, long q_off, int n_head, long k_off, int n_head_kv,
                 int head_dim, int n_rot, int neox, const int32_t *pos, const float *inv_freq,
                 float mscale, cudaStream_t st, inf_error *err) {
    if (n <= 0 || n_rot < 2) return 0;
    dim3 grid((unsigned)n, (unsigned)(n_head + n_head_kv));
    int threads = n_rot / 2 >= 64 ? 64 : 32;
    rope_kernel<<<grid, threads, 0, st>>>(qkv, stride, q_off, n_head, k_off, head_dim, n_rot, neox,
                                          pos, inv_freq, mscale);
    INFK_LAUNCH_CHECK("rope", st, err);
    return 0;
}
