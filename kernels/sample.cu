/* sample.cu - token sampling on the device: one block per row, the logits
 * never leave the GPU; only the token, its logprob and the top-N
 * alternatives come back.
 *
 * Same steps, order and tie rules as the CPU sampler (sampler.c,
 * sampler_filter.c):
 *   1. raw log-softmax normalizer and the top-N raw tokens (N rounds of a
 *      block argmax below the previous pick in the order "larger logit
 *      first, ties to the lower id");
 *   2. the modifier list, applied with sampler_mod_apply (sampler_mod.h, the
 *      CPU's own arithmetic: no FMA contraction);
 *   3. greedy (argmax, lowest id on ties), or temperature + top_k + top_p +
 *      min_p, which keep a prefix of that order, described as "key > thr, or
 *      key == thr and id <= lim" on the order-preserving integer image (key)
 *      of the logits: top_k by an exact 4-pass radix select, top_p by a
 *      32-step bisection of the monotone mass function (block sums in
 *      double, like the CPU's); on exact ties at a cut, lim is the id of the
 *      last tied token the CPU keeps (per-thread id chunks, a block prefix
 *      count, the owning thread walks its chunk);
 *   4. the inverse-CDF draw in id order with the host RNG's uniform number
 *      (chunk sums, a block exclusive scan, the owning thread walks).
 */
#include "infk_common.cuh"

#include <limits.h>

#include "sampler_mod.h"

#define SMP_THREADS 1024

typedef struct smp_shared {
    double red[32];
    float rv[32];
    int ri[32];
    int iscan[32];
    double dscan[32];
    unsigned hist[256];
    int bad, found, claim, last, pick;
    float rawv;
} smp_shared;

/* Monotone map float -> uint32 (larger float, larger key); -inf maps below
 * every finite value. */
__device__ __forceinline__ uint32_t smp_key(float f) {
    uint32_t b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}

/* Inverse of smp_key. */
__device__ __forceinline__ float smp_unkey(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? k & 0x7fffffffu : ~k);
}

/* The CPU sampler's weight exp((l - mx) / T), as it computes it. */
__device__ __forceinline__ float smp_w(float l, float mx, double inv_t) {
    return expf((float)(((double)l - mx) * inv_t));
}

/* Block-wide sum; every thread gets it. */
__device__ double smp_block_sum_d(double v, double *red) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.0;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block-wide (max value, lowest index at that value); every thread gets it. */
__device__ void smp_block_argmax(float &v, int &i, float *rv, int *ri) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) {
            v = ov;
            i = oi;
        }
    }
    __syncthreads();
    if (lane == 0) {
        rv[wid] = v;
        ri[wid] = i;
    }
    __syncthreads();
    v = rv[0];
    i = ri[0];
    for (int k = 1; k < (int)(blockDim.x >> 5); k++)
        if (rv[k] > v || (rv[k] == v && ri[k] < i)) {
            v = rv[k];
            i = ri[k];
        }
}

/* Block-wide exclusive prefix sum in thread order; *total gets the sum.
 * ws: 32 entries of shared memory. */
template <typename T>
__device__ T smp_block_excl_scan(T v, T *ws, T *total) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    T x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        T y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    T excl = __shfl_up_sync(0xffffffffu, x, 1);
    if (lane == 0) excl = 0;
    __syncthreads();
    if (lane == 31) ws[wid] = x;
    __syncthreads();
    if (wid == 0) {
        T w = lane < nw ? ws[lane] : (T)0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            T y = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += y;
        }
        if (lane < nw) ws[lane] = w;
    }
    __syncthreads();
    *total = ws[nw - 1];
    return (wid ? ws[wid - 1] : (T)0) + excl;
}

/* This thread's chunk [*c0, *c1) of ids: contiguous chunks in thread order,
 * so a block scan over threads is a scan in id order. */
__device__ __forceinline__ void smp_chunk(int V, int *c0, int *c1) {
    int per = (V + blockDim.x - 1) / blockDim.x;
    *c0 = min(V, (int)threadIdx.x * per);
    *c1 = min(V, *c0 + per);
}

/* Whether token i (logit l) is a finite token of key K with id <= lim. */
__device__ __forceinline__ int smp_tied(float l, int i, uint32_t K, int lim) {
    return l != -INFINITY && smp_key(l) == K && i <= lim;
}

/* The id of the nth (1-based) token in id order with smp_tied(L[i], i, K, lim);
 * every thread gets it (-1 if there are fewer). */
__device__ int smp_nth_tied(const float *L, int V, uint32_t K, int lim, int nth, smp_shared *sh) {
    int c0, c1, cnt = 0, total;
    smp_chunk(V, &c0, &c1);
    for (int i = c0; i < c1; i++) cnt += smp_tied(L[i], i, K, lim);
    if (threadIdx.x == 0) sh->pick = -1;
    int before = smp_block_excl_scan<int>(cnt, sh->iscan, &total);
    if (nth > before && nth <= before + cnt) {
        int k = before;
        for (int i = c0; i < c1; i++)
            if (smp_tied(L[i], i, K, lim) && ++k == nth) {
                sh->pick = i;
                break;
            }
    }
    __syncthreads();
    int r = sh->pick;
    __syncthreads();
    return r;
}

/* In the prefix "key > thr, or key == thr and id <= lim" (finite l). */
#define SMP_IN(k, i) ((k) > thr || ((k) == thr && (i) <= lim))

/* Temperature + top_k + top_p + min_p on the modified row L (max mx, no NaN),
 * then the draw. Returns the token (the same in every thread). */
__device__ int smp_draw(const float *L, int V, const infk_sample_params &p, float mx,
                        smp_shared *sh) {
    int tid = threadIdx.x;
    double inv_t = 1.0 / (double)p.temperature;
    double log_min_p = p.min_p > 0.0f ? log((double)p.min_p) : -INFINITY;
    int use_k = p.top_k > 0 && p.top_k < V, use_p = p.top_p < 1.0f;
    uint32_t thr = 0; /* every finite key is > 0 */
    int lim = INT_MAX;
    if (use_k) {
        /* k-th best key among the finite tokens: MSB-first radix select; on
         * exit `want` is how many tokens of that key the k best include. */
        unsigned want = (unsigned)p.top_k, n_finite = 0;
        for (int i = tid; i < V; i += blockDim.x) n_finite += L[i] != -INFINITY;
        n_finite = (unsigned)smp_block_sum_d((double)n_finite, sh->red);
        if (want < n_finite) {
            uint32_t prefix = 0, pmask = 0;
            for (int shift = 24; shift >= 0; shift -= 8) {
                for (int b = tid; b < 256; b += blockDim.x) sh->hist[b] = 0;
                __syncthreads();
                for (int i = tid; i < V; i += blockDim.x) {
                    float l = L[i];
                    uint32_t k = smp_key(l);
                    if (l != -INFINITY && (k & pmask) == prefix) atomicAdd(&sh->hist[(k >> shift) & 255], 1u);
                }
                __syncthreads();
                /* Walk buckets from the top until `want` is reached (every
                 * thread does the same 256-step walk). */
                unsigned cum = 0;
                int b = 255;
                for (; b > 0; b--) {
                    if (cum + sh->hist[b] >= want) break;
                    cum += sh->hist[b];
                }
                want -= cum;
                prefix |= (uint32_t)b << shift;
                pmask |= 255u << shift;
                __syncthreads();
            }
            double n_at = 0;
            for (int i = tid; i < V; i += blockDim.x) n_at += smp_tied(L[i], i, prefix, INT_MAX);
            n_at = smp_block_sum_d(n_at, sh->red);
            thr = prefix;
            /* Ties at the k-th key: the CPU keeps the lowest ids. */
            if ((double)want < n_at) lim = smp_nth_tied(L, V, prefix, INT_MAX, (int)want, sh);
        }
    }
    if (use_p) {
        /* Nucleus: a token is kept iff the mass ranked above it is < top_p of
         * the total. The smallest key K with mass(key > K) < target is the
         * cut; among the tokens of key K (id order) the first n_keep stay. */
        double z = 0.0;
        for (int i = tid; i < V; i += blockDim.x) {
            float l = L[i];
            if (l != -INFINITY && SMP_IN(smp_key(l), i)) z += smp_w(l, mx, inv_t);
        }
        z = smp_block_sum_d(z, sh->red);
        double target = (double)p.top_p * z;
        uint64_t lo = thr, hi = smp_key(mx); /* mass above key(mx) is 0 < target */
        while (lo < hi) {
            uint64_t mid = (lo + hi) >> 1;
            double s = 0.0;
            for (int i = tid; i < V; i += blockDim.x) {
                float l = L[i];
                uint32_t k = smp_key(l);
                if (l != -INFINITY && k > mid && SMP_IN(k, i)) s += smp_w(l, mx, inv_t);
            }
            s = smp_block_sum_d(s, sh->red);
            if (s < target) hi = mid;
            else lo = mid + 1;
        }
        uint32_t K = (uint32_t)lo;
        int lim_k = K == thr ? lim : INT_MAX;
        double gt = 0.0, n_at = 0.0;
        for (int i = tid; i < V; i += blockDim.x) {
            float l = L[i];
            uint32_t k = smp_key(l);
            if (l == -INFINITY || !SMP_IN(k, i)) continue;
            if (k > K) gt += smp_w(l, mx, inv_t);
            else if (k == K && i <= lim_k) n_at += 1.0;
        }
        gt = smp_block_sum_d(gt, sh->red);
        n_at = smp_block_sum_d(n_at, sh->red);
        /* Tied token j (0-based) stays iff gt + j * w < target. */
        double w = smp_w(smp_unkey(K), mx, inv_t);
        double x = ceil((target - gt) / w);
        long keep = !(x >= 1.0) ? 1 : x > n_at ? (long)n_at : (long)x; /* w = 0: x = inf */
        while (keep > 1 && gt + (double)(keep - 1) * w >= target) keep--;
        while (keep < (long)n_at && gt + (double)keep * w < target) keep++;
        thr = K;
        lim = (double)keep < n_at ? smp_nth_tied(L, V, K, lim_k, (int)keep, sh) : lim_k;
    }
    /* Kept: finite, in the prefix, passes min_p. */
#define SMP_KEPT(l, i)                                                                   \
    ((l) != -INFINITY && SMP_IN(smp_key(l), i) && ((double)(l) - mx) * inv_t >= log_min_p)
    double z = 0.0;
    for (int i = tid; i < V; i += blockDim.x) {
        float l = L[i];
        if (SMP_KEPT(l, i)) z += smp_w(l, mx, inv_t);
    }
    z = smp_block_sum_d(z, sh->red);
    double target = p.u * z;
    /* Id order: chunk sums, exclusive scan; the first thread whose range
     * reaches past target walks its chunk. */
    int c0, c1, last = -1;
    smp_chunk(V, &c0, &c1);
    double cs = 0.0, total;
    for (int i = c0; i < c1; i++) {
        float l = L[i];
        if (SMP_KEPT(l, i)) {
            cs += smp_w(l, mx, inv_t);
            last = i;
        }
    }
    if (tid == 0) {
        sh->claim = INT_MAX;
        sh->last = -1;
        sh->found = -1;
    }
    double before = smp_block_excl_scan<double>(cs, sh->dscan, &total);
    if (cs > 0.0 && target < before + cs) atomicMin(&sh->claim, tid);
    if (last >= 0) atomicMax(&sh->last, last);
    __syncthreads();
    if (tid == sh->claim) {
        double cum = before;
        int pick = last;
        for (int i = c0; i < c1; i++) {
            float l = L[i];
            if (!SMP_KEPT(l, i)) continue;
            cum += smp_w(l, mx, inv_t);
            if (target < cum) {
                pick = i;
                break;
            }
        }
        sh->found = pick;
    }
    __syncthreads();
    /* Rounding left target at or above the total: the last kept id. */
    int token = sh->claim != INT_MAX ? sh->found : sh->last;
    __syncthreads();
    return token;
#undef SMP_KEPT
}

__global__ void __launch_bounds__(SMP_THREADS)
    sample_kernel(float *logits, int V, const infk_sample_params *params, infk_sample_mod *mods,
                  const uint32_t *masks, int32_t *tokens, float *logprobs, int32_t *status, int32_t *top_ids,
                  float *top_lps) {
    __shared__ smp_shared sh;
    const infk_sample_params p = params[blockIdx.x];
    float *L = logits + (size_t)blockIdx.x * V;
    int tid = threadIdx.x;
    if (tid == 0) sh.bad = 0;

    /* 1. Raw log-sum-exp (as the CPU: float exp terms, double sum) and the
     * raw top-N: logprobs are of the unmodified distribution. */
    double lse = 0.0;
    if (p.want_logprob || p.n_top > 0) {
        float mv = -INFINITY;
        int mi = 0;
        for (int i = tid; i < V; i += blockDim.x) mv = fmaxf(mv, L[i]);
        smp_block_argmax(mv, mi, sh.rv, sh.ri);
        double s = 0.0;
        if (mv != -INFINITY)
            for (int i = tid; i < V; i += blockDim.x) s += (double)expf(L[i] - mv);
        s = smp_block_sum_d(s, sh.red);
        lse = mv == -INFINITY ? -INFINITY : (double)mv + log(s);
        float pv = INFINITY;
        int pi = -1;
        for (int r = 0; r < p.n_top; r++) {
            float bv = -INFINITY;
            int bi = INT_MAX;
            for (int i = tid; i < V; i += blockDim.x) {
                float l = L[i];
                int below = l < pv || (l == pv && i > pi); /* NaN never is */
                if (below && (l > bv || (l == bv && i < bi))) {
                    bv = l;
                    bi = i;
                }
            }
            smp_block_argmax(bv, bi, sh.rv, sh.ri);
            if (tid == 0) {
                top_ids[p.top_off + r] = bi == INT_MAX ? -1 : bi;
                top_lps[p.top_off + r] = (float)((double)bv - lse);
            }
            pv = bv;
            pi = bi;
        }
    }
    __syncthreads();
    /* 2. Modifiers (each token at most once per row: no races). */
    for (int k = tid; k < p.n_mod; k += blockDim.x) {
        infk_sample_mod *m = mods + p.mod_off + k;
        float l = L[m->m.token];
        m->raw = l;
        L[m->m.token] = sampler_mod_apply(l, &m->m, p.repetition_penalty, p.presence_penalty,
                                          p.frequency_penalty);
    }
    __syncthreads();
    /* 2b. The grammar mask (sampler_set_allowed): after the modifiers, as
     * the CPU sampler applies it. */
    if (p.mask_off >= 0) {
        const uint32_t *mw = masks + p.mask_off;
        for (int i = tid; i < V; i += blockDim.x)
            if (!((mw[i >> 5] >> (i & 31)) & 1u)) L[i] = -INFINITY;
        __syncthreads();
    }
    /* 3. Checks and the argmax. */
    float mx = -INFINITY;
    int am = INT_MAX, bad = 0;
    for (int i = tid; i < V; i += blockDim.x) {
        float l = L[i];
        bad |= (l != l) | (l == INFINITY);
        if (l > mx || (l == mx && i < am)) {
            mx = l;
            am = i;
        }
    }
    if (bad) sh.bad = 1;
    smp_block_argmax(mx, am, sh.rv, sh.ri);
    if (sh.bad || mx == -INFINITY) { /* uniform: sh.bad was written before the argmax's barriers */
        if (tid == 0) {
            status[blockIdx.x] = sh.bad ? 1 : 2;
            tokens[blockIdx.x] = -1;
            logprobs[blockIdx.x] = NAN;
        }
        return;
    }
    int token = p.temperature >= 1e-5f ? smp_draw(L, V, p, mx, &sh) : am;
    /* The sampled token's raw logit: the array, or its modifier's raw. */
    if (tid == 0) sh.rawv = L[token];
    __syncthreads();
    if (p.want_logprob)
        for (int k = tid; k < p.n_mod; k += blockDim.x)
            if (mods[p.mod_off + k].m.token == token) sh.rawv = mods[p.mod_off + k].raw;
    __syncthreads();
    if (tid == 0) {
        tokens[blockIdx.x] = token;
        status[blockIdx.x] = 0;
        logprobs[blockIdx.x] = p.want_logprob ? (float)((double)sh.rawv - lse) : NAN;
    }
}

int infk_sample(float *logits, int n_rows, int n_vocab, const infk_sample_params *params,
                infk_sample_mod *mods, const uint32_t *masks, int32_t *tokens, float *logprobs, int32_t *status,
                int32_t *top_ids, float *top_lps, cudaStream_t st, inf_error *err) {
    if (n_rows <= 0) return 0;
    sample_kernel<<<n_rows, SMP_THREADS, 0, st>>>(logits, n_vocab, params, mods, masks, tokens, logprobs,
                                                  status, top_ids, top_lps);
    INFK_LAUNCH_CHECK("sample", st, err);
    return 0;
}
