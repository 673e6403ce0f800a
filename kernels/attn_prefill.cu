/* attn_prefill.cu - varlen causal prefill attention over the paged cache.
 *
 * Flash-style: a block takes one query tile (up to 16 consecutive tokens of
 * one sequence) and one head, walks the sequence's keys in tiles of 32
 * gathered through the block table into shared memory, and keeps an online
 * softmax per query row, so the score matrix never exists in memory and
 * every K/V tile is read once per (query tile, head). Causality is by
 * position: query i sees keys 0..pos_i (sliding-window layers: the last
 * `window` of them), scores soft-capped first where the model says so.
 * CUDA cores in f32 (no tensor-core MMA yet: see docs/cuda.md).
 *
 * Thread layout (128 threads): thread tid serves query row i = tid / 8; for
 * scores it owns key columns tid%8 + 8c (c < 4), for the output the head dims
 * tid%8 + 8k (k < NACC). The 8 threads of a row are 8 consecutive lanes, so
 * row max / sum are three shuffles.
 */
#include "attn_common.cuh"

#define PF_Q INFK_PREFILL_TILE /* 16 query rows */
#define PF_K 32                /* keys per tile */
#define PF_THREADS 128

template <int NACC>
__global__ void __launch_bounds__(PF_THREADS)
    attn_prefill_kernel(infk_attn a, const int32_t *tiles) {
    INFK_DYN_SHARED(float, sm);
    int hd = a.head_dim, kp = hd + 1; /* padded key pitch: no bank conflicts */
    float *qs = sm;                   /* [PF_Q][hd] */
    float *ks = qs + PF_Q * hd;       /* [PF_K][hd+1], K then V */
    float *ps = ks + PF_K * kp;       /* [PF_Q][PF_K] */
    int t0 = tiles[2 * blockIdx.x], cnt = tiles[2 * blockIdx.x + 1], h = blockIdx.y;
    int kvh = h / (a.n_head / a.n_head_kv), f16 = a.kv_dt == INFK_F16;
    int tid = threadIdx.x, i = tid >> 3, c8 = tid & 7;
    const int32_t *tab = a.blocks + a.tab_off[t0];
    int kmax = a.pos[t0 + cnt - 1];
    int my_pos = i < cnt ? a.pos[t0 + i] : -1;
    /* sliding window: no query of the tile sees a key below kmin */
    int kmin = a.window > 0 && a.pos[t0] - a.window + 1 > 0 ? a.pos[t0] - a.window + 1 : 0;
    int my_lo = a.window > 0 ? my_pos - a.window + 1 : 0;

    for (int e = tid; e < PF_Q * hd; e += PF_THREADS) {
        int r = e / hd, d = e % hd;
        qs[e] = r < cnt ? a.q[(size_t)(t0 + r) * a.q_stride + (size_t)h * hd + d] * a.scale : 0.0f;
    }
    float m = -INFINITY, l = 0.0f, acc[NACC];
#pragma unroll
    for (int k = 0; k < NACC; k++) acc[k] = 0.0f;

    for (int kt = kmin; kt <= kmax; kt += PF_K) {
        __syncthreads(); /* previous V tile and ps consumed */
        for (int e = tid; e < PF_K * hd; e += PF_THREADS) {
            int j = e / hd, d = e % hd, jp = kt + j;
            ks[j * kp + d] = jp <= kmax ? attn_ld(a.k_cache, attn_row(a, tab, jp, kvh) + d, f16) : 0.0f;
        }
        __syncthreads();
        float s[PF_K / 8], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < PF_K / 8; c++) {
            int j = c8 + 8 * c, jp = kt + j;
            float v = -INFINITY;
            if (jp <= my_pos && jp >= my_lo) {
                v = 0.0f;
                for (int d = 0; d < hd; d++) v += qs[i * hd + d] * ks[j * kp + d];
                if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
            }
            s[c] = v;
            mx = fmaxf(mx, v);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
        float mn = fmaxf(m, mx), corr = mn == -INFINITY ? 1.0f : __expf(m - mn), rs = 0.0f;
#pragma unroll
        for (int c = 0; c < PF_K / 8; c++) {
            float p = s[c] == -INFINITY ? 0.0f : __expf(s[c] - mn);
            ps[i * PF_K + c8 + 8 * c] = p;
            rs += p;
        }
        rs += __shfl_xor_sync(0xffffffffu, rs, 1);
        rs += __shfl_xor_sync(0xffffffffu, rs, 2);
        rs += __shfl_xor_sync(0xffffffffu, rs, 4);
        l = l * corr + rs;
        m = mn;
        __syncthreads(); /* scores done with K */
        for (int e = tid; e < PF_K * hd; e += PF_THREADS) {
            int j = e / hd, d = e % hd, jp = kt + j;
            ks[j * kp + d] = jp <= kmax ? attn_ld(a.v_cache, attn_row(a, tab, jp, kvh) + d, f16) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < NACC; k++) {
            int d = c8 + 8 * k;
            float o = acc[k] * corr;
            if (d < hd)
                for (int j = 0; j < PF_K; j++) o += ps[i * PF_K + j] * ks[j * kp + d];
            acc[k] = o;
        }
    }
    if (i < cnt) {
#pragma unroll
        for (int k = 0; k < NACC; k++) {
            int d = c8 + 8 * k;
            if (d < hd)
                infk_st(a.out, (long)((size_t)(t0 + i) * a.out_stride + (size_t)h * hd + d), a.out_dt,
                        l > 0.0f ? acc[k] / l : 0.0f);
        }
    }
}

template <int NACC>
static int launch(const infk_attn *a, const int32_t *tiles, int n_tiles, cudaStream_t st,
                  inf_error *err) {
    size_t smem = (size_t)(PF_Q * a->head_dim + PF_K * (a->head_dim + 1) + PF_Q * PF_K) * sizeof(float);
    static size_t granted = 48 * 1024; /* per instance: raise the limit once */
    if (smem > granted) {
        cudaCheck(cudaFuncSetAttribute(attn_prefill_kernel<NACC>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                  err);
        granted = smem;
    }
    dim3 grid((unsigned)n_tiles, (unsigned)a->n_head);
    attn_prefill_kernel<NACC><<<grid, PF_THREADS, smem, st>>>(*a, tiles);
    INFK_LAUNCH_CHECK("attn_prefill", st, err);
    return 0;
}

int infk_attn_prefill(const infk_attn *a, const int32_t *tiles, int n_tiles, cudaStream_t st,
                      inf_error *err) {
    if (n_tiles <= 0) return 0;
    int hd = a->head_dim;
    if (hd > INFK_ATTN_MAX_HEAD_DIM || hd < 1 || a->n_head % a->n_head_kv)
        return inf_error_set(err, INF_EINVAL, "attn_prefill: head_dim %d (max %d)", hd,
                             INFK_ATTN_MAX_HEAD_DIM);
    if (hd <= 8) return launch<1>(a, tiles, n_tiles, st, err);
    if (hd <= 16) return launch<2>(a, tiles, n_tiles, st, err);
    if (hd <= 32) return launch<4>(a, tiles, n_tiles, st, err);
    if (hd <= 64) return launch<8>(a, tiles, n_tiles, st, err);
    if (hd <= 128) return launch<16>(a, tiles, n_tiles, st, err);
    return launch<32>(a, tiles, n_tiles, st, err);
}
