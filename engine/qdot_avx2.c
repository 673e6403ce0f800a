/* qdot_avx2.c - AVX2 fused dequantize-dot tiles for Q4_1, Q5_0, Q5_1 (against
 * Q8_0-style activations) and Q4_K, Q5_K, Q6_K (against Q8_K), see
 * cpu_ops_impl.h. Every function carries the target attribute, so the file
 * builds without -mavx2 and runs only after cpuid said yes.
 *
 * The integer part of every block is computed exactly as in qdot_scalar.c
 * (maddubs pairs stay far below int16 saturation: |u8 * s8| pairs are at most
 * 2 * 63 * 127 = 16002); only the float accumulation differs (8 lanes).
 * Both the AVX2 and the AVX-512 kernel sets use these tiles.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu_ops_impl.h"
#include "quant.h"

#if defined(__x86_64__) || defined(__i386__)

#define TGT __attribute__((target("avx2,fma,f16c")))
#define AI static inline __attribute__((always_inline)) TGT

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

AI float h2f(inf_f16 h) { return _cvtsh_ss(h); }

/* 16 bytes of nibbles -> 32 bytes: low nibbles (weights 0..15) then high
 * nibbles (16..31), the 32-block order. */
AI __m256i nibbles32(const uint8_t *qs) {
    __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi32(raw, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(0x0f));
}

/* bit j of the 32-bit little-endian word at p -> byte j = 0x10 or 0 */
AI __m256i bits32_to_0x10(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x),
                                    _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL,
                                                       0x0303030303030303LL));
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* sum over pairs of u8 * s8 -> 8 int32 lanes */
AI __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* ---- 32-blocks -------------------------------------------------------------- */

AI float dot_q4_1(const block_q4_1 *x, long nb, const int8_t *q, const float *d, const float *m) {
    __m256 acc = _mm256_setzero_ps();
    float macc = 0.0f;
    for (long b = 0; b < nb; b++, q += 32) {
        __m256i p = dot_us(nibbles32(x[b].qs), _mm256_loadu_si256((const __m256i *)q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(x[b].d) * d[b]), acc);
        macc += h2f(x[b].m) * m[b];
    }
    return hsum8(acc) - macc;
}

AI float dot_q5_1(const block_q5_1 *x, long nb, const int8_t *q, const float *d, const float *m) {
    __m256 acc = _mm256_setzero_ps();
    float macc = 0.0f;
    for (long b = 0; b < nb; b++, q += 32) {
        __m256i w = _mm256_or_si256(nibbles32(x[b].qs), bits32_to_0x10(x[b].qh));
        __m256i p = dot_us(w, _mm256_loadu_si256((const __m256i *)q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(x[b].d) * d[b]), acc);
        macc += h2f(x[b].m) * m[b];
    }
    return hsum8(acc) - macc;
}

/* Q5_0: signed weights (q - 16); maddubs needs one unsigned operand, so take
 * |w| and move w's sign onto the activation (exact). */
AI float dot_q5_0(const block_q5_0 *x, long nb, const int8_t *q, const float *d) {
    __m256 acc = _mm256_setzero_ps();
    for (long b = 0; b < nb; b++, q += 32) {
        __m256i w = _mm256_sub_epi8(_mm256_or_si256(nibbles32(x[b].qs), bits32_to_0x10(x[b].qh)),
                                    _mm256_set1_epi8(16));
        __m256i a = _mm256_loadu_si256((const __m256i *)q);
        __m256i p = dot_us(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(x[b].d) * d[b]), acc);
    }
    return hsum8(acc);
}

/* ---- K-quants against Q8_K -------------------------------------------------- */

/* sum_j mins[j] * (bs[2j] + bs[2j+1]) for the 8 sub-blocks of 32 */
AI int k4_mins(const uint8_t *mins8, const int16_t *bs) {
    __m256i b = _mm256_loadu_si256((const __m256i *)bs);
    __m128i s = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    __m128i mn = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mins8));
    __m128i p = _mm_madd_epi16(mn, s);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4e));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xb1));
    return _mm_cvtsi128_si32(p);
}

/* Q4_K (hbit = 0) and Q5_K (qh != NULL): per 64 weights, 32 bytes hold the
 * low (sub-block 2j) and high (2j+1) nibbles; Q5_K adds bit 2j / 2j+1 of
 * qh[l] as the fifth bit. */
AI float dot_kx(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales, inf_f16 dh,
                inf_f16 dminh, const int8_t *q, float da, const int16_t *bs, float *mterm) {
    uint8_t sm[16];
    cpu_unpack_scales_k4(scales, sm);
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    __m256i sumi = _mm256_setzero_si256();
    __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
        __m256i wl = _mm256_and_si256(raw, lo4), wh = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
        if (qh) {
            const __m256i one = _mm256_set1_epi8(1);
            /* bit k of every byte, moved to bit 4 (srli_epi16 keeps each
             * byte's own bit k in bit 0 after the mask) */
            wl = _mm256_or_si256(wl, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4));
            wh = _mm256_or_si256(wh, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4));
        }
        __m256i pl = _mm256_maddubs_epi16(wl, _mm256_loadu_si256((const __m256i *)(q + 64 * j)));
        __m256i ph = _mm256_maddubs_epi16(wh, _mm256_loadu_si256((const __m256i *)(q + 64 * j + 32)));
        pl = _mm256_madd_epi16(pl, _mm256_set1_epi16(sm[2 * j]));
        ph = _mm256_madd_epi16(ph, _mm256_set1_epi16(sm[2 * j + 1]));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    *mterm = da * h2f(dminh) * (float)k4_mins(sm + 8, bs);
    return da * h2f(dh) * (float)hsum_i32(sumi);
}

AI float dot_q4_K(const block_q4_K *x, long nb, const int8_t *q, const float *d, const int16_t *bs) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += QK_K, bs += QK_K / 16) {
        float mt, v = dot_kx(x[b].qs, NULL, x[b].scales, x[b].d, x[b].dmin, q, d[b], bs, &mt);
        s += v - mt;
    }
    return s;
}

AI float dot_q5_K(const block_q5_K *x, long nb, const int8_t *q, const float *d, const int16_t *bs) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += QK_K, bs += QK_K / 16) {
        float mt, v = dot_kx(x[b].qs, x[b].qh, x[b].scales, x[b].d, x[b].dmin, q, d[b], bs, &mt);
        s += v - mt;
    }
    return s;
}

/* Q6_K: u = 6-bit unsigned value; per 128 weights, 64 bytes of ql and 32 of
 * qh give four 32-vectors (weights n+0.., n+32.., n+64.., n+96..), each two
 * 16-groups with their own int8 scale; the -32 offset comes off through the
 * activation's per-16 sums. */
AI float dot_q6_K(const block_q6_K *x, long nb, const int8_t *q, const float *d, const int16_t *bs) {
    const __m256i lo4 = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += QK_K, bs += QK_K / 16) {
        const int8_t *sc = x[b].scales;
        __m256i sumi = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = x[b].ql + 64 * n, *qh = x[b].qh + 32 * n;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i u[4];
            u[0] = _mm256_or_si256(_mm256_and_si256(l0, lo4), _mm256_slli_epi16(_mm256_and_si256(h, three), 4));
            u[1] = _mm256_or_si256(_mm256_and_si256(l1, lo4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), three), 4));
            u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), three), 4));
            u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), three), 4));
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(u[k], _mm256_loadu_si256((const __m256i *)(q + 128 * n + 32 * k)));
                /* low 128 bits: group 8n+2k, high: 8n+2k+1 */
                __m256i scv = _mm256_setr_m128i(_mm_set1_epi16(sc[8 * n + 2 * k]), _mm_set1_epi16(sc[8 * n + 2 * k + 1]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
            }
        }
        __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)),
                                         _mm256_loadu_si256((const __m256i *)bs));
        int total = hsum_i32(sumi) - 32 * hsum_i32(corr);
        s += d[b] * h2f(x[b].d) * (float)total;
    }
    return s;
}

/* ---- tiles ------------------------------------------------------------------- */

#define ROW(r) ((const void *)((const uint8_t *)w->data + (size_t)(r0 + (r)) * w->row_bytes))
#define TOK(t)                                                                            \
    const int8_t *q = a->q + (long)(t0 + (t)) * a->q_stride;                              \
    const float *d = a->d + (long)(t0 + (t)) * a->d_stride;                               \
    const float *m = a->m ? a->m + (long)(t0 + (t)) * a->d_stride : NULL;                 \
    const int16_t *bs = a->bsums ? a->bsums + (long)(t0 + (t)) * a->bs_stride : NULL;     \
    (void)m;                                                                              \
    (void)bs;                                                                             \
    float *yt = y + (long)(t0 + (t)) * ys + r0;

#define TILE(NAME, CALL)                                        \
    TGT void NAME(CPU_TILE_ARGS) {                              \
        for (int t = 0; t < nt; t++) {                          \
            TOK(t)                                              \
            for (int r = 0; r < nr; r++) yt[r] = CALL;          \
        }                                                       \
    }

TILE(cpu_av_tile_q4_1, dot_q4_1(ROW(r), w->cols / 32, q, d, m))
TILE(cpu_av_tile_q5_0, dot_q5_0(ROW(r), w->cols / 32, q, d))
TILE(cpu_av_tile_q5_1, dot_q5_1(ROW(r), w->cols / 32, q, d, m))
TILE(cpu_av_tile_q4_K, dot_q4_K(ROW(r), w->cols / QK_K, q, d, bs))
TILE(cpu_av_tile_q5_K, dot_q5_K(ROW(r), w->cols / QK_K, q, d, bs))
TILE(cpu_av_tile_q6_K, dot_q6_K(ROW(r), w->cols / QK_K, q, d, bs))

#else

/* Not x86: the AVX2 set is never selected (cpu_kernels_avx2 returns NULL),
 * these only keep the table building. */
void cpu_av_tile_q4_1(CPU_TILE_ARGS) { cpu_sc_tile_q4_1(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q5_0(CPU_TILE_ARGS) { cpu_sc_tile_q5_0(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q5_1(CPU_TILE_ARGS) { cpu_sc_tile_q5_1(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q4_K(CPU_TILE_ARGS) { cpu_sc_tile_q4_K(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q5_K(CPU_TILE_ARGS) { cpu_sc_tile_q5_K(w, r0, nr, a, t0, nt, y, ys); }
void cpu_av_tile_q6_K(CPU_TILE_ARGS) { cpu_sc_tile_q6_K(w, r0, nr, a, t0, nt, y, ys); }

#endif
