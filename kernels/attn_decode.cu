/* attn_decode.cu - paged-attention decode: one query token per entry, over
 * its sequence's cached positions [0, pos], read through the block table.
 *
 * A block serves one token and one KV head together with (up to 8 of) the
 * query heads sharing it (GQA), so each K/V row is read once per group. Each
 * warp walks every 4th key of the block's split with online softmax; lanes
 * hold consecutive head dims (one vector load per row). Long contexts are
 * split across blocks (split-K, flash-decoding style): each split writes its
 * unnormalized output with its max and sum, and a second kernel combines
 * them, so batch 1 still fills the GPU. Sliding-window layers walk only
 * the window's keys; soft-capped scores are capped before the softmax.
 */
#include "attn_common.cuh"

#define DEC_WARPS 4
#define DEC_GROUP 8 /* query heads per block */

template <int NPL>
__global__ void __launch_bounds__(DEC_WARPS * 32)
    attn_decode_kernel(infk_attn a, const int32_t *list, int n_splits, float *partial) {
    __shared__ float qs[DEC_GROUP][INFK_ATTN_MAX_HEAD_DIM];
    __shared__ float ws_m[DEC_WARPS][DEC_GROUP], ws_l[DEC_WARPS][DEC_GROUP];
    __shared__ float ws_acc[DEC_WARPS][DEC_GROUP][INFK_ATTN_MAX_HEAD_DIM];
    int idx = blockIdx.x, t = list ? list[idx] : idx;
    int G = a.n_head / a.n_head_kv, ngc = (G + DEC_GROUP - 1) / DEC_GROUP;
    int kvh = blockIdx.y / ngc, h0 = kvh * G + (blockIdx.y % ngc) * DEC_GROUP;
    int ng = min(DEC_GROUP, kvh * G + G - h0);
    int hd = a.head_dim, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int f16 = a.kv_dt == INFK_F16;
    int n = a.pos[t] + 1, s = blockIdx.z;
    /* sliding window: keys [n - window, n) only; the splits share that range */
    int lo = a.window > 0 && n > a.window ? n - a.window : 0;
    int chunk = (n - lo + n_splits - 1) / n_splits, j0 = lo + s * chunk, j1 = min(n, j0 + chunk);
    const int32_t *tab = a.blocks + a.tab_off[t];

    for (int i = threadIdx.x; i < ng * hd; i += blockDim.x)
        qs[i / hd][i % hd] = a.q[(size_t)t * a.q_stride + (size_t)(h0 + i / hd) * hd + i % hd] * a.scale;
    __syncthreads();

    float m[DEC_GROUP], l[DEC_GROUP], acc[DEC_GROUP][NPL];
#pragma unroll
    for (int g = 0; g < DEC_GROUP; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < NPL; i++) acc[g][i] = 0.0f;
    }
    int off = lane * NPL;
    for (int j = j0 + w; j < j1; j += DEC_WARPS) {
        size_t row = attn_row(a, tab, j, kvh);
        float kv[NPL], vv[NPL];
        attn_ld_run<NPL>(a.k_cache, row, off, hd, f16, kv);
        attn_ld_run<NPL>(a.v_cache, row, off, hd, f16, vv);
#pragma unroll
        for (int g = 0; g < DEC_GROUP; g++) {
            if (g >= ng) break;
            float d = 0.0f;
#pragma unroll
            for (int i = 0; i < NPL; i++) d += off + i < hd ? qs[g][off + i] * kv[i] : 0.0f;
            d = infk_warp_sum(d);
            if (a.softcap > 0.0f) d = a.softcap * tanhf(d / a.softcap);
            float mn = fmaxf(m[g], d), corr = __expf(m[g] - mn), p = __expf(d - mn);
            l[g] = l[g] * corr + p;
#pragma unroll
            for (int i = 0; i < NPL; i++) acc[g][i] = acc[g][i] * corr + p * vv[i];
            m[g] = mn;
        }
    }
    /* Combine the warps. */
#pragma unroll
    for (int g = 0; g < DEC_GROUP; g++) {
        if (g >= ng) break;
        if (lane == 0) {
            ws_m[w][g] = m[g];
            ws_l[w][g] = l[g];
        }
#pragma unroll
        for (int i = 0; i < NPL; i++)
            if (off + i < hd) ws_acc[w][g][off + i] = acc[g][i];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < ng * hd; i += blockDim.x) {
        int g = i / hd, d = i % hd;
        float M = -INFINITY;
        for (int k = 0; k < DEC_WARPS; k++) M = fmaxf(M, ws_m[k][g]);
        float L = 0.0f, o = 0.0f;
        if (M != -INFINITY)
            for (int k = 0; k < DEC_WARPS; k++) {
                float e = __expf(ws_m[k][g] - M);
                L += ws_l[k][g] * e;
                o += ws_acc[k][g][d] * e;
            }
        int h = h0 + g;
        if (n_splits == 1) {
            infk_st(a.out, (long)((size_t)t * a.out_stride + (size_t)h * hd + d), a.out_dt,
                    L > 0.0f ? o / L : 0.0f);
        } else {
            float *p = partial + ((size_t)(idx * a.n_head + h) * n_splits + s) * (hd + 2);
            p[d] = o;
            if (d == 0) {
                p[hd] = M;
                p[hd + 1] = L;
            }
        }
    }
}

/* Grid (entry, head); threads over head dims. */
__global__ void attn_combine_kernel(infk_attn a, const int32_t *list, int n_splits,
                                    const float *partial) {
    int idx = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
    int t = list ? list[idx] : idx;
    const float *p = partial + (size_t)(idx * a.n_head + h) * n_splits * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_splits; s++) M = fmaxf(M, p[s * (hd + 2) + hd]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float L = 0.0f, o = 0.0f;
        for (int s = 0; s < n_splits; s++) {
            const float *q = p + s * (hd + 2);
            if (q[hd] == -INFINITY) continue; /* empty split */
            float e = __expf(q[hd] - M);
            L += q[hd + 1] * e;
            o += q[d] * e;
        }
        infk_st(a.out, (long)((size_t)t * a.out_stride + (size_t)h * hd + d), a.out_dt,
                L > 0.0f ? o / L : 0.0f);
    }
}

int infk_attn_decode_splits(int n, int n_head_kv, int n_sm) {
    int blocks = n * n_head_kv, want = 2 * n_sm;
    if (blocks <= 0) return 1; /* no decode tokens in this batch */
    int s = blocks >= want ? 1 : (want + blocks - 1) / blocks;
    return s < 1 ? 1 : s > 32 ? 32 : s;
}

int infk_attn_decode(const infk_attn *a, const int32_t *list, int n, int n_splits,
                     float *partial, cudaStream_t st, inf_error *err) {
    if (n <= 0) return 0;
    if (a->head_dim > INFK_ATTN_MAX_HEAD_DIM || a->head_dim < 1 || n_splits < 1 ||
        a->n_head % a->n_head_kv)
        return inf_error_set(err, INF_EINVAL, "attn_decode: head_dim %d (max %d), %d splits",
                             a->head_dim, INFK_ATTN_MAX_HEAD_DIM, n_splits);
    int G = a->n_head / a->n_head_kv, ngc = (G + DEC_GROUP - 1) / DEC_GROUP;
    dim3 grid((unsigned)n, (unsigned)(a->n_head_kv * ngc), (unsigned)n_splits);
    int hd = a->head_dim;
    if (hd <= 32) attn_decode_kernel<1><<<grid, DEC_WARPS * 32, 0, st>>>(*a, list, n_splits, partial);
    else if (hd <= 64) attn_decode_kernel<2><<<grid, DEC_WARPS * 32, 0, st>>>(*a, list, n_splits, partial);
    else if (hd <= 128) attn_decode_kernel<4><<<grid, DEC_WARPS * 32, 0, st>>>(*a, list, n_splits, partial);
    else attn_decode_kernel<8><<<grid, DEC_WARPS * 32, 0, st>>>(*a, list, n_splits, partial);
    INFK_LAUNCH_CHECK("attn_decode", st, err);
    if (n_splits > 1) {
        attn_combine_kernel<<<dim3((unsigned)n, (unsigned)a->n_head), 64, 0, st>>>(*a, list, n_splits,
                                                                                  partial);
        INFK_LAUNCH_CHECK("attn_combine", st, err);
    }
    return 0;
}
