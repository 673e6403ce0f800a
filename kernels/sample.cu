/* sample.cu - token sampling on the device: one block per row, the logits
 * never leave the GPU, only the token (and its logprob) comes back.
 *
 * Same steps and order as the CPU sampler (sampler.c): modifiers (repetition,
 * frequency / presence penalties, logit bias, min_tokens mask), then greedy
 * or temperature + top_k + top_p + min_p, then an inverse-CDF draw with the
 * host's uniform number. Instead of sorting, thresholds are found on the
 * order-preserving integer image of the logits: top_k by an exact 4-pass
 * radix select, top_p and the rank-order draw by a 32-step bisection of a
 * monotone mass function, each step one block-wide reduction (in double,
 * like the CPU's sums). Exact ties at a threshold keep every tied token (the
 * CPU breaks them by id); with continuous logits that does not arise.
 */
#include "infk_common.cuh"

#define SMP_THREADS 1024

/* Monotone map float -> uint32 (larger float, larger key); -inf is smallest
 * of the finite-or-inf values we allow. */
__device__ __forceinline__ uint32_t smp_key(float f) {
    uint32_t b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}

__device__ __forceinline__ float smp_w(float l, float mx, double inv_t) {
    return expf((float)(((double)l - mx) * inv_t));
}

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

/* Block-wide (max value, lowest index at that value). */
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

__global__ void __launch_bounds__(SMP_THREADS)
    sample_kernel(float *logits, int V, const infk_sample_params *params, infk_sample_mod *mods,
                  int32_t *tokens, float *logprobs, int32_t *status) {
    __shared__ double red[32];
    __shared__ float rv[32];
    __shared__ int ri[32];
    __shared__ unsigned hist[256];
    __shared__ int s_bad;
    const infk_sample_params p = params[blockIdx.x];
    float *L = logits + (size_t)blockIdx.x * V;
    int tid = threadIdx.x;
    if (tid == 0) s_bad = 0;

    /* Raw log-sum-exp first: logprobs are of the unmodified distribution. */
    double lse = 0.0;
    if (p.want_logprob) {
        float mv = -INFINITY;
        int mi = 0;
        for (int i = tid; i < V; i += blockDim.x) mv = fmaxf(mv, L[i]);
        smp_block_argmax(mv, mi, rv, ri);
        double s = 0.0;
        for (int i = tid; i < V; i += blockDim.x) s += exp((double)L[i] - mv);
        s = smp_block_sum_d(s, red);
        lse = (double)mv + log(s);
    }
    __syncthreads();
    /* Modifiers (each token at most once per row: no races). */
    for (int k = tid; k < p.n_mod; k += blockDim.x) {
        infk_sample_mod *m = mods + p.mod_off + k;
        float l = L[m->token];
        m->raw = l;
        if (m->rep && p.repetition_penalty != 1.0f)
            l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
        if (m->gen_count) l -= (float)m->gen_count * p.frequency_penalty + p.presence_penalty;
        l += m->bias;
        if (m->mask) l = -INFINITY;
        L[m->token] = l;
    }
    __syncthreads();
    float mx = -INFINITY;
    int am = 0x7fffffff;
    int bad = 0;
    for (int i = tid; i < V; i += blockDim.x) {
        float l = L[i];
        bad |= (l != l) | (l == INFINITY);
        if (l > mx || (l == mx && i < am)) {
            mx = l;
            am = i;
        }
    }
    if (bad) s_bad = 1;
    smp_block_argmax(mx, am, rv, ri);
    if (s_bad || mx == -INFINITY) {
        if (tid == 0) {
            status[blockIdx.x] = s_bad ? 1 : 2;
            tokens[blockIdx.x] = -1;
            logprobs[blockIdx.x] = NAN;
        }
        return;
    }
    int token = am;
    if (p.temperature >= 1e-5f) {
        double inv_t = 1.0 / (double)p.temperature;
        double log_min_p = p.min_p > 0.0f ? log((double)p.min_p) : -INFINITY;
        int use_k = p.top_k > 0 && p.top_k < V, use_p = p.top_p < 1.0f;
        uint32_t kth = 0; /* keep keys >= kth */
        if (use_k) {
            /* k-th largest key among the non-masked: MSB-first radix select. */
            uint32_t prefix = 0, pmask = 0;
            unsigned want = (unsigned)p.top_k;
            unsigned n_finite = 0;
            for (int i = tid; i < V; i += blockDim.x) n_finite += L[i] != -INFINITY;
            n_finite = (unsigned)smp_block_sum_d((double)n_finite, red);
            if (want >= n_finite) {
                use_k = 0;
            } else {
                for (int shift = 24; shift >= 0; shift -= 8) {
                    for (int b = tid; b < 256; b += blockDim.x) hist[b] = 0;
                    __syncthreads();
                    for (int i = tid; i < V; i += blockDim.x) {
                        float l = L[i];
                        uint32_t k = smp_key(l);
                        if (l != -INFINITY && (k & pmask) == prefix) atomicAdd(&hist[(k >> shift) & 255], 1u);
                    }
                    __syncthreads();
                    /* Walk buckets from the top until `want` is reached
                     * (every thread does the same 256-step walk). */
                    unsigned cum = 0;
                    int b = 255;
                    for (; b > 0; b--) {
                        if (cum + hist[b] >= want) break;
                        cum += hist[b];
                    }
                    want -= cum;
                    prefix |= (uint32_t)b << shift;
                    pmask |= 255u << shift;
                    __syncthreads();
                }
                kth = prefix;
            }
        }
        uint32_t thr = use_k ? kth : 0;
        if (use_p) {
            /* Nucleus: keep key k iff the mass strictly above k (within the
             * top_k set) is < top_p * Z. That mass falls as k grows: find the
             * smallest such k by bisection. */
            double z = 0.0;
            for (int i = tid; i < V; i += blockDim.x) {
                float l = L[i];
                if (l != -INFINITY && smp_key(l) >= thr) z += smp_w(l, mx, inv_t);
            }
            z = smp_block_sum_d(z, red);
            double target = (double)p.top_p * z;
            uint64_t lo = thr, hi = 0xffffffffull; /* answer in [lo, hi]; mass(hi) = 0 < target */
            while (lo < hi) {
                uint64_t mid = (lo + hi) >> 1;
                double s = 0.0;
                for (int i = tid; i < V; i += blockDim.x) {
                    float l = L[i];
                    uint32_t k = smp_key(l);
                    if (l != -INFINITY && k >= thr && k > mid) s += smp_w(l, mx, inv_t);
                }
                s = smp_block_sum_d(s, red);
                if (s < target) hi = mid;
                else lo = mid + 1;
            }
            thr = (uint32_t)lo;
        }
        /* Kept: finite, key >= thr, passes min_p. */
#define SMP_KEPT(l) ((l) != -INFINITY && smp_key(l) >= thr && ((double)(l) - mx) * inv_t >= log_min_p)
        double z = 0.0;
        for (int i = tid; i < V; i += blockDim.x) {
            float l = L[i];
            if (SMP_KEPT(l)) z += smp_w(l, mx, inv_t);
        }
        z = smp_block_sum_d(z, red);
        double target = p.u * z;
        if (!use_k && !use_p) {
            /* Id order, as the CPU's full scan: contiguous chunk per thread,
             * exclusive scan of the chunk sums, the owning thread walks. */
            int per = (V + blockDim.x - 1) / blockDim.x, c0 = tid * per, c1 = min(V, c0 + per);
            double cs = 0.0;
            int last = -1;
            for (int i = c0; i < c1; i++)
                if (SMP_KEPT(L[i])) {
                    cs += smp_w(L[i], mx, inv_t);
                    last = i;
                }
            /* Inclusive scan over threads via shared memory (two levels). */
            __shared__ double sc[SMP_THREADS];
            __shared__ int found;
            sc[tid] = cs;
            if (tid == 0) found = 0x7fffffff;
            __syncthreads();
            for (int o = 1; o < (int)blockDim.x; o <<= 1) {
                double v = tid >= o ? sc[tid - o] : 0.0;
                __syncthreads();
                sc[tid] += v;
                __syncthreads();
            }
            double before = sc[tid] - cs;
            if (cs > 0.0 && target < sc[tid] && target >= before) {
                double cum = before;
                int pick = last;
                for (int i = c0; i < c1; i++)
                    if (SMP_KEPT(L[i])) {
                        cum += smp_w(L[i], mx, inv_t);
                        if (target < cum) {
                            pick = i;
                            break;
                        }
                    }
                atomicMin(&found, pick);
            }
            /* Rounding left target at or above the total: the last kept id. */
            int lk = last;
            float lv = (float)lk;
            smp_block_argmax(lv, lk, rv, ri);
            __syncthreads();
            token = found != 0x7fffffff ? found : (int)lv;
        } else {
            /* Rank order: the largest key K whose mass at or above it exceeds
             * target is the drawn token's key. */
            uint64_t lo = thr, hi = 0xffffffffull;
            /* invariant: mass(>= lo) > target unless rounding; find max K. */
            while (lo < hi) {
                uint64_t mid = (lo + hi + 1) >> 1;
                double s = 0.0;
                for (int i = tid; i < V; i += blockDim.x) {
                    float l = L[i];
                    if (SMP_KEPT(l) && smp_key(l) >= mid) s += smp_w(l, mx, inv_t);
                }
                s = smp_block_sum_d(s, red);
                if (s > target) lo = mid;
                else hi = mid - 1;
            }
            /* Lowest id with key lo among the kept; if none has exactly that
             * key (rounding), the smallest kept key. */
            float best = -INFINITY;
            int bi = 0x7fffffff;
            for (int i = tid; i < V; i += blockDim.x) {
                float l = L[i];
                if (!SMP_KEPT(l)) continue;
                uint32_t k = smp_key(l);
                /* prefer exact key; otherwise smallest kept: score = -|k - lo| */
                float sc = k == (uint32_t)lo ? 1.0f : -(float)(k > lo ? k - lo : lo - k);
                if (sc > best || (sc == best && i < bi)) {
                    best = sc;
                    bi = i;
                }
            }
            smp_block_argmax(best, bi, rv, ri);
            token = bi;
        }
#undef SMP_KEPT
    }
    if (tid == 0) {
        tokens[blockIdx.x] = token;
        status[blockIdx.x] = 0;
        float lp = NAN;
        if (p.want_logprob) {
            float raw = L[token];
            for (int k = 0; k < p.n_mod; k++)
                if (mods[p.mod_off + k].token == token) raw = mods[p.mod_off + k].raw;
            lp = (float)((double)raw - lse);
        }
        logprobs[blockIdx.x] = lp;
    }
}

int infk_sample(float *logits, int n_rows, int n_vocab, const infk_sample_params *params,
                infk_sample_mod *mods, int32_t *tokens, float *logprobs, int32_t *status,
                cudaStream_t st, inf_error *err) {
    if (n_rows <= 0) return 0;
    sample_kernel<<<n_rows, SMP_THREADS, 0, st>>>(logits, n_vocab, params, mods, tokens, logprobs,
                                                  status);
    INFK_LAUNCH_CHECK("sample", st, err);
    return 0;
}
