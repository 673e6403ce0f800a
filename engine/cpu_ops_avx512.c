/* cpu_ops_avx512.c - the AVX-512 kernel set: the integer dots of every
 * quantized type on AVX512-VNNI (vpdpbusd on 256-bit vectors through
 * AVX512VL: one instruction per 32 u8 x s8 products instead of maddubs +
 * madd, with no int16 intermediate), everything else shared with the AVX2
 * set. Its own translation unit with per-function target attributes, so a
 * PORTABLE=1 (x86-64-v3) build still contains it; it is chosen only when
 * cpuid reports AVX512 F/BW/VL/VNNI (and the OS saves the zmm state, which
 * __builtin_cpu_supports checks).
 */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "cpu_ops_impl.h"
#include "quant.h"

/* INF_NO_AVX512 (make gpu-pack): the set is left out, so a binary meant for
 * "x86-64-v3 and nothing beyond" holds no EVEX instruction at all. */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(INF_NO_AVX512)

#define TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define DOT_US(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
#define SDOT_ACC(acc, u, s, kv) _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(u, s), kv)
#define QDOT_PREFIX cpu_v5_tile_
#define QDOT_Q80_Q40(x)
#include "qdot_x86.inc"

#define QT_DOT_US(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
#define QT_PREFIX v5_tile_
#include "qtile_x86.inc"

/* ---- K-quants on 512-bit vectors ---------------------------------------------
 * One zmm holds 64 weights: for Q4_K/Q5_K the 32 bytes of a 64-weight group
 * as low nibbles (sub-block 2j) then high nibbles (2j+1), which is exactly
 * the order of the 64 activations q[64j .. 64j+63]; for Q6_K two of the
 * 32-vectors of qdot_x86.inc side by side (four 16-groups). Per 64 weights
 * and token that is one load, one vpmaddubsw and one vpdpwssd (the int16
 * scales broadcast per half, or per 128-bit lane for Q6_K, by one vpermw per
 * 64 weights shared by all tokens). The integer sums are exact and the 16
 * lanes are folded to the 8 of the 256-bit kernels before the float part, so
 * every output equals the AVX2 set's bit for bit. */

/* Q4_K/Q5_K: the 8 scales (int16 lanes 0..7) and 8 mins (8..15) of a
 * super-block, unpacked in registers (cpu_unpack_scales_k4's layout). */
AI __m256i k4_scales16(const uint8_t *packed) {
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t s0 = u[0] & m6, s1 = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    uint32_t n0 = u[1] & m6, n1 = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    return _mm256_cvtepu8_epi16(_mm_setr_epi32((int)s0, (int)s1, (int)n0, (int)n1));
}

/* a zmm of two 256-bit halves */
AI __m512i z2(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

AI void dot_kx5_n(const int NT, const int q5, const void *row, long nb, const int8_t *const *q,
                  const float *const *d, const int16_t *const *bs, float *out) {
    const __m512i lo4 = _mm512_set1_epi8(0x0f), b4 = _mm512_set1_epi8(0x10);
    const __m256i mdup = _mm256_setr_epi16(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    __m256 acc[KNT];
    #pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (long b = 0; b < nb; b++) {
        const block_q4_K *x4 = (const block_q4_K *)row + b;
        const block_q5_K *x5 = (const block_q5_K *)row + b;
        const uint8_t *qs = q5 ? x5->qs : x4->qs, *scales = q5 ? x5->scales : x4->scales;
        inf_f16 dh = q5 ? x5->d : x4->d, dmh = q5 ? x5->dmin : x4->dmin;
        {
            const char *pf = (const char *)(q5 ? (const void *)(x5 + K_PF_BLOCKS) : (const void *)(x4 + K_PF_BLOCKS));
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 128, _MM_HINT_T0);
        }
        const __m256i s16 = k4_scales16(scales);
        const __m512i s16z = _mm512_castsi256_si512(s16);
        const __m512i hb = q5 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x5->qh))
                              : _mm512_setzero_si512();
        __m512i sumi[KNT];
        #pragma GCC unroll 4
        for (int t = 0; t < NT; t++) sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m512i wv = _mm512_and_si512(z2(raw, _mm256_srli_epi16(raw, 4)), lo4);
            if (q5) {
                /* the fifth bit: bit 2j of qh[l] for the low half, 2j+1 for the high */
                const __m512i sel = z2(_mm256_set1_epi8((char)(1 << (2 * j))), _mm256_set1_epi8((char)(1 << (2 * j + 1))));
                wv = _mm512_mask_add_epi8(wv, _mm512_test_epi8_mask(hb, sel), wv, b4);
            }
            const __m512i kv = _mm512_permutexvar_epi16(
                z2(_mm256_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1))), s16z);
            #pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m512i av = _mm512_loadu_si512((const void *)(q[t] + b * QK_K + 64 * j));
                sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(wv, av), kv);
            }
        }
        float dw = h2f(dh), dm = h2f(dmh);
        const __m256i mn = _mm256_permutexvar_epi16(mdup, s16);
        #pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            __m256i si = _mm256_add_epi32(_mm512_castsi512_si256(sumi[t]), _mm512_extracti64x4_epi64(sumi[t], 1));
            __m256i mv = _mm256_madd_epi16(mn, _mm256_loadu_si256((const __m256i *)(bs[t] + b * (QK_K / 16))));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d[t][b] * dw), _mm256_cvtepi32_ps(si), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(d[t][b] * dm), _mm256_cvtepi32_ps(mv), acc[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < NT; t++) out[t] = hsum8(acc[t]);
}

/* Q6_K: u = 6-bit unsigned value, the -32 offset taken off through the
 * activation's per-16 sums, as in qdot_x86.inc. */
AI void dot_q6_5n(const int NT, const block_q6_K *x, long nb, const int8_t *const *q,
                  const float *const *d, const int16_t *const *bs, float *out) {
    const __m512i lo4 = _mm512_set1_epi8(0x0f), three = _mm512_set1_epi8(3);
    const __m512i c01 = z2(_mm256_setzero_si256(), _mm256_set1_epi16(2));
    const __m512i c23 = z2(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
    /* int16 lane i: i / 8, the 128-bit lane it is in */
    const __m512i lane4 = _mm512_setr_epi32(0, 0, 0, 0, 0x10001, 0x10001, 0x10001, 0x10001, 0x20002, 0x20002,
                                            0x20002, 0x20002, 0x30003, 0x30003, 0x30003, 0x30003);
    __m256 acc[KNT];
    #pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (long b = 0; b < nb; b++) {
        const int8_t *sc = x[b].scales;
        {
            const char *pf = (const char *)(x + b + 12);
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 128, _MM_HINT_T0);
            _mm_prefetch(pf + 192, _MM_HINT_T0);
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        const __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i sumi[KNT];
        #pragma GCC unroll 4
        for (int t = 0; t < NT; t++) sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int n = 0; n < 2; n++) {
            __m512i l = _mm512_loadu_si512((const void *)(x[b].ql + 64 * n));
            __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * n)));
            /* [u0 | u1] and [u2 | u3] of qdot_x86.inc: weights 128n + 0..63, 64..127 */
            __m512i u01 = _mm512_or_si512(_mm512_and_si512(l, lo4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, c01), three), 4));
            __m512i u23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), lo4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, c23), three), 4));
            /* 128-bit lane i takes group 8n+i (u01) or 8n+4+i (u23) */
            const __m512i i01 = _mm512_add_epi16(lane4, _mm512_set1_epi16((short)(8 * n)));
            const __m512i k01 = _mm512_permutexvar_epi16(i01, scz);
            const __m512i k23 = _mm512_permutexvar_epi16(_mm512_add_epi16(i01, _mm512_set1_epi16(4)), scz);
            #pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *qt = q[t] + b * QK_K + 128 * n;
                sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(u01, _mm512_loadu_si512((const void *)qt)), k01);
                sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(u23, _mm512_loadu_si512((const void *)(qt + 64))), k23);
            }
        }
        float dw = h2f(x[b].d);
        #pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            __m256i si = _mm256_add_epi32(_mm512_castsi512_si256(sumi[t]), _mm512_extracti64x4_epi64(sumi[t], 1));
            __m256i corr = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(bs[t] + b * (QK_K / 16))));
            __m256i tot = _mm256_sub_epi32(si, _mm256_slli_epi32(corr, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d[t][b] * dw), _mm256_cvtepi32_ps(tot), acc[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < NT; t++) out[t] = hsum8(acc[t]);
}

#define C5_Q4K(N) dot_kx5_n(N, 0, row, nb, q, d, bs, out)
#define C5_Q5K(N) dot_kx5_n(N, 1, row, nb, q, d, bs, out)
#define C5_Q6K(N) dot_q6_5n(N, row, nb, q, d, bs, out)
K_TILE(v5z_tile_q4_K, C5_Q4K)
K_TILE(v5z_tile_q5_K, C5_Q5K)
K_TILE(v5z_tile_q6_K, C5_Q6K)

static cpu_kernels avx512_kernels;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

/* Filled once from the AVX2 set (row kernels, float tiles, activation
 * quantizer), with the VNNI tiles for every quantized type. */
static void avx512_init(void) {
    avx512_kernels = *cpu_kernels_avx2();
    avx512_kernels.name = "avx512+vnni";
    cpu_tile_fn t[CPU_KT_COUNT] = {
        [CPU_KT_Q8_0] = v5_tile_q8_0, [CPU_KT_Q4_0] = v5_tile_q4_0, [CPU_KT_Q4_1] = cpu_v5_tile_q4_1,
        [CPU_KT_Q5_0] = cpu_v5_tile_q5_0, [CPU_KT_Q5_1] = cpu_v5_tile_q5_1, [CPU_KT_Q4_K] = v5z_tile_q4_K,
        [CPU_KT_Q5_K] = v5z_tile_q5_K, [CPU_KT_Q6_K] = v5z_tile_q6_K};
    for (int k = CPU_KT_Q8_0; k < CPU_KT_COUNT; k++) avx512_kernels.tile[k] = t[k];
}

int cpu_avx512_supported(void) {
    __builtin_cpu_init();
    return cpu_kernels_avx2() != NULL && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

const cpu_kernels *cpu_kernels_avx512(void) {
    if (!cpu_avx512_supported()) return NULL;
    pthread_once(&avx512_once, avx512_init);
    return &avx512_kernels;
}

#else

int cpu_avx512_supported(void) { return 0; }
const cpu_kernels *cpu_kernels_avx512(void) { return NULL; }

#endif
