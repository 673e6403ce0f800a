/* cpu_ops_avx2.c - AVX2/FMA/F16C kernels (see cpu_ops_impl.h). Every function
 * carries the target attribute, so this file builds without -mavx2 and is only
 * called after __builtin_cpu_supports() has said yes.
 *
 * Matmul tiles vectorize along the reduction (cols): each of the rm x rn
 * outputs of a tile owns one 8-lane accumulator, the weight vector of a row is
 * loaded (and converted) once per step and reused for every token of the tile,
 * and the lanes are summed once at the end.
 */
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cpu_ops_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#define TGT __attribute__((target("avx2,fma,f16c")))
#define AI static inline __attribute__((always_inline)) TGT

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- float-weight tiles --------------------------------------------------- */

AI __m256 load_w8(int kt, const uint8_t *p) {
    if (kt == CPU_KT_F32) return _mm256_loadu_ps((const float *)p);
    if (kt == CPU_KT_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

AI void tile_fp(int kt, const int RM, const int RN, const cpu_weight *w, int64_t r0,
                const cpu_act *a, int t0, float *y, long ys) {
    const long cols = w->cols, kmain = cols & ~7L;
    const size_t esz = kt == CPU_KT_F32 ? 4 : 2;
    const uint8_t *wr[8];
    const float *xt[4];
    __m256 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++) wr[r] = (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes;
#pragma GCC unroll 4
    for (int t = 0; t < RN; t++) xt[t] = a->x + (long)(t0 + t) * a->x_stride;
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int t = 0; t < RN; t++) acc[r][t] = _mm256_setzero_ps();
    for (long k = 0; k < kmain; k += 8) {
        __m256 xv[4];
#pragma GCC unroll 4
        for (int t = 0; t < RN; t++) {
            xv[t] = _mm256_loadu_ps(xt[t] + k);
            /* Opaque to GCC: otherwise it folds the load into every FMA that
             * uses xv[t] (RM loads per vector instead of one). */
            if (RM * RN + RN < 16) __asm__("" : "+x"(xv[t]));
        }
#pragma GCC unroll 8
        for (int r = 0; r < RM; r++) {
            __m256 wv = load_w8(kt, wr[r] + k * esz);
#pragma GCC unroll 4
            for (int t = 0; t < RN; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (kmain < cols) {
        /* Ragged end (e.g. n_ff = 172): one more step on zero-padded copies. */
        long n = cols - kmain;
        float xb[4][8];
        uint8_t wb[32];
        for (int t = 0; t < RN; t++) {
            memset(xb[t], 0, sizeof xb[t]);
            memcpy(xb[t], xt[t] + kmain, (size_t)n * sizeof(float));
        }
        for (int r = 0; r < RM; r++) {
            memset(wb, 0, sizeof wb);
            memcpy(wb, wr[r] + kmain * esz, (size_t)n * esz);
            __m256 wv = load_w8(kt, wb);
            for (int t = 0; t < RN; t++)
                acc[r][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xb[t]), acc[r][t]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int t = 0; t < RN; t++) y[(long)(t0 + t) * ys + r0 + r] = hsum8(acc[r][t]);
}

/* ---- quantized tiles (qtile_x86.inc) ---------------------------------- */

#define QT_DOT_US(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
#define QT_PREFIX av_tile_
#include "qtile_x86.inc"

/* ---- float tile dispatch ----------------------------------------------- */

#define F_F32(R, T) tile_fp(CPU_KT_F32, R, T, w, r0, a, t0, y, ys)
#define F_F16(R, T) tile_fp(CPU_KT_F16, R, T, w, r0, a, t0, y, ys)
#define F_BF16(R, T) tile_fp(CPU_KT_BF16, R, T, w, r0, a, t0, y, ys)

/* Shapes outside the table (only if rm/rn below were raised) fall back to
 * single-output tiles, which accumulate in the same order. */
static TGT void av_tile_f32(TILE_ARGS) {
    SHAPES(F_F32)
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++) av_tile_f32(w, r0 + r, 1, a, t0 + t, 1, y, ys);
}
static TGT void av_tile_f16(TILE_ARGS) {
    SHAPES(F_F16)
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++) av_tile_f16(w, r0 + r, 1, a, t0 + t, 1, y, ys);
}
static TGT void av_tile_bf16(TILE_ARGS) {
    SHAPES(F_BF16)
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++) av_tile_bf16(w, r0 + r, 1, a, t0 + t, 1, y, ys);
}
/* ---- activation quantization ------------------------------------------------ */

#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static TGT void av_quantize_q8(const float *x, int8_t *q, float *d, float *m, long n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (long b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
                                  _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, vid), RNE));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, vid), RNE));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, vid), RNE));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, vid), RNE));
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        /* packs interleave 128-bit lanes; the permute restores element order */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, perm);
        _mm256_storeu_si256((__m256i *)(q + b * 32), p);
        d[b] = db;
        m[b] = -db * (float)_mm_cvtsi128_si32(s4);
    }
}

/* ---- row kernels --------------------------------------------------------------- */

static TGT float av_dot(const float *a, const float *b, long n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s = fmaf(a[i], b[i], s);
    return s;
}

static TGT void av_axpy(float *y, float a, const float *x, long n) {
    __m256 va = _mm256_set1_ps(a);
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

static TGT void av_rmsnorm(float *out, const float *x, const float *w, long n, float eps) {
    /* Squares summed in double: cheap next to the matmuls, and keeps the scale
     * equal to the scalar path's. */
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), b = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        s0 = _mm256_fmadd_pd(a, a, s0);
        s1 = _mm256_fmadd_pd(b, b, s1);
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double ss = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    __m256 vs = _mm256_set1_ps(scale);
    i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(out + i, v);
    }
    for (; i < n; i++) out[i] = w ? x[i] * scale * w[i] : x[i] * scale;
}

/* exp(x) for x <= ~88: Cody-Waite range reduction x = k ln2 + r and a degree-6
 * polynomial for e^r on |r| <= ln2/2 (relative error ~2e-7); results below
 * 2^-126 flush to 0, which softmax and silu do not mind. */
AI __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.3f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), xc);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    /* below the clamp: exact 0 (covers -INFINITY) */
    return _mm256_and_ps(res, _mm256_cmp_ps(x, lo, _CMP_GE_OQ));
}

static TGT void av_softmax(float *x, long n) {
    float mx = -INFINITY;
    for (long i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) {
        for (long i = 0; i < n; i++) x[i] = 0.0f;
        return;
    }
    /* the normalizer is summed in double: rows can be thousands long */
    __m256 vm = _mm256_set1_ps(mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    __m256d sd = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(sd), _mm256_extractf128_pd(sd, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / sum);
}

static TGT void av_swiglu(float *out, const float *gate, const float *up, long n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(zero, g));
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
        /* exp(-g) overflows for g < -88: silu is then -0, which the clamp in
         * exp8 would turn into g/(1+huge) anyway; keep it exact */
        silu = _mm256_and_ps(silu, _mm256_cmp_ps(g, _mm256_set1_ps(-88.0f), _CMP_GE_OQ));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static TGT void av_f16_to_f32(const inf_f16 *src, float *dst, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

static TGT void av_f32_to_f16(const float *src, inf_f16 *dst, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* One attention head with the K/V rows converted in registers: no call per
 * position (small heads, e.g. head_dim 8, were dominated by the calls). hd a
 * multiple of 8 up to 256; otherwise the row-kernel path. */
static const cpu_kernels avx2_kernels;

AI __m256 kv_load8(const uint8_t *p, int f16) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)) : _mm256_loadu_ps((const float *)p);
}

static TGT void av_attn_head(const float *q, int hd, const cpu_kv_rows *k, const cpu_kv_rows *v, int n,
                             float scale, float *scores, float *out, float *tmp) {
    if (hd % 8 || hd > 256) {
        cpu_attn_head_rows(&avx2_kernels, q, hd, k, v, n, scale, scores, out, tmp);
        return;
    }
    const int nv = hd / 8, esz = k->f16 ? 2 : 4;
    for (int j = 0; j < n; j++) {
        const uint8_t *p = cpu_kv_at(k, j);
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 2 <= nv; i += 2) {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * i), kv_load8(p + (size_t)8 * i * esz, k->f16), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * i + 8), kv_load8(p + (size_t)(8 * i + 8) * esz, k->f16), s1);
        }
        if (i < nv) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * i), kv_load8(p + (size_t)8 * i * esz, k->f16), s0);
        scores[j] = hsum8(_mm256_add_ps(s0, s1)) * scale;
    }
    av_softmax(scores, n);
    const int vsz = v->f16 ? 2 : 4;
    for (int i0 = 0; i0 < nv; i0 += 8) { /* up to 8 output vectors in registers */
        int m = nv - i0 < 8 ? nv - i0 : 8;
        __m256 o[8];
        for (int i = 0; i < 8; i++) o[i] = _mm256_setzero_ps();
        for (int j = 0; j < n; j++) {
            const uint8_t *p = cpu_kv_at(v, j) + (size_t)8 * i0 * vsz;
            __m256 a = _mm256_set1_ps(scores[j]);
            for (int i = 0; i < m; i++) o[i] = _mm256_fmadd_ps(a, kv_load8(p + (size_t)8 * i * vsz, v->f16), o[i]);
        }
        for (int i = 0; i < m; i++) _mm256_storeu_ps(out + 8 * (i0 + i), o[i]);
    }
}

static const cpu_kernels avx2_kernels = {
    .name = "avx2+fma+f16c",
    .tile = {av_tile_f32, av_tile_f16, av_tile_bf16, av_tile_q8_0, av_tile_q4_0, cpu_av_tile_q4_1,
             cpu_av_tile_q5_0, cpu_av_tile_q5_1, cpu_av_tile_q4_K, cpu_av_tile_q5_K, cpu_av_tile_q6_K},
/* Tile shapes (rm x rn) are compile-time tunables for experiments. Float
 * weights: 3x3 (9 accumulators, 3 activation and 1 weight vector: no spills;
 * 2048x2048 F16 x 128 tokens, 1 thread, median of 5 alternating runs: 72 vs
 * 59 GFLOP/s for 4x3). */
#ifndef AV_RM_F
#define AV_RM_F 3
#define AV_RN_F 3
#define AV_RM_Q 4
#define AV_RN_Q 3
#endif
#ifndef AV_RM_Q4
#define AV_RM_Q4 8
#define AV_RN_Q4 3
#endif
#ifndef AV_RM_Q8
#define AV_RM_Q8 8
#define AV_RN_Q8 3
#endif
    .rm = {AV_RM_F, AV_RM_F, AV_RM_F, AV_RM_Q8, AV_RM_Q4, 4, 4, 4, 4, 4, 4},
    .rn = {AV_RN_F, AV_RN_F, AV_RN_F, AV_RN_Q8, AV_RN_Q4, 4, 4, 4, 4, 4, 4},
    .rm1 = {8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8},
    .quantize_q8 = av_quantize_q8,
    .dot = av_dot,
    .axpy = av_axpy,
    .rmsnorm = av_rmsnorm,
    .softmax = av_softmax,
    .swiglu = av_swiglu,
    .f16_to_f32 = av_f16_to_f32,
    .f32_to_f16 = av_f32_to_f16,
    .attn_head = av_attn_head,
};

const cpu_kernels *cpu_kernels_avx2(void) {
    __builtin_cpu_init();
    /* clang's __builtin_cpu_supports has no "f16c": read CPUID.1:ECX[29] */
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
        return &avx2_kernels;
    return NULL;
}

#else

const cpu_kernels *cpu_kernels_avx2(void) { return NULL; }

#endif
