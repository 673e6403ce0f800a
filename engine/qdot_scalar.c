/* qdot_scalar.c - portable fused dequantize-dot tiles for Q4_1, Q5_0, Q5_1
 * (against Q8_0-style activations) and Q4_K, Q5_K, Q6_K (against Q8_K
 * activations), see cpu_ops_impl.h.
 *
 * Each output is one dot product computed block by block the way ggml's
 * reference dots do it: the integer part of a block is exact, then one or two
 * float operations fold it into the running sum. The SIMD paths compute the
 * same integers, so they differ from these only in float rounding.
 */
#include <string.h>

#include "cpu_ops_impl.h"
#include "quant.h"

static float f16(inf_f16 h) { return cpu_f16_scalar_to_f32(h); }

static uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- 32-blocks: y = sum_b d_w*d_a*sum(q*a) [+ m_w * d_a*sum(a)] ---------- */

static float dot_q4_1(const block_q4_1 *x, long nb, const int8_t *q, const float *d, const float *m) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += 32) {
        int isum = 0;
        for (int j = 0; j < 16; j++) isum += (x[b].qs[j] & 15) * q[j] + (x[b].qs[j] >> 4) * q[j + 16];
        /* m[b] = -d_a * sum(a): the min term is m_w * d_a * sum(a) */
        s += f16(x[b].d) * d[b] * (float)isum - f16(x[b].m) * m[b];
    }
    return s;
}

static float dot_q5_0(const block_q5_0 *x, long nb, const int8_t *q, const float *d) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += 32) {
        uint32_t qh = ld32(x[b].qh);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int w0 = ((x[b].qs[j] & 15) | (int)((qh >> j) & 1) << 4) - 16;
            int w1 = ((x[b].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
            isum += w0 * q[j] + w1 * q[j + 16];
        }
        s += f16(x[b].d) * d[b] * (float)isum;
    }
    return s;
}

static float dot_q5_1(const block_q5_1 *x, long nb, const int8_t *q, const float *d, const float *m) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += 32) {
        uint32_t qh = ld32(x[b].qh);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int w0 = (x[b].qs[j] & 15) | (int)((qh >> j) & 1) << 4;
            int w1 = (x[b].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            isum += w0 * q[j] + w1 * q[j + 16];
        }
        s += f16(x[b].d) * d[b] * (float)isum - f16(x[b].m) * m[b];
    }
    return s;
}

/* ---- super-blocks of 256 against Q8_K ------------------------------------ */

/* Q4_K / Q5_K: sum_j sc_j * sum(q*a over sub-block j) * d * d_a
 *            - sum_j m_j * (sum of a over sub-block j) * dmin * d_a,
 * the second sum taken from the activation's per-16 sums. Both integer sums
 * fit easily in int32 (|.| < 63 * 31 * 127 * 256). */
static float dot_q4_K(const block_q4_K *x, long nb, const int8_t *q, const float *d, const int16_t *bs) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += QK_K, bs += QK_K / 16) {
        uint8_t sm[16];
        cpu_unpack_scales_k4(x[b].scales, sm);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 4; j++) {
            const uint8_t *qs = x[b].qs + 32 * j;
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++) {
                lo += (qs[l] & 15) * q[64 * j + l];
                hi += (qs[l] >> 4) * q[64 * j + 32 + l];
            }
            sumi += sm[2 * j] * lo + sm[2 * j + 1] * hi;
        }
        for (int j = 0; j < 8; j++) summ += sm[8 + j] * (bs[2 * j] + bs[2 * j + 1]);
        s += d[b] * f16(x[b].d) * (float)sumi - d[b] * f16(x[b].dmin) * (float)summ;
    }
    return s;
}

static float dot_q5_K(const block_q5_K *x, long nb, const int8_t *q, const float *d, const int16_t *bs) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += QK_K, bs += QK_K / 16) {
        uint8_t sm[16];
        cpu_unpack_scales_k4(x[b].scales, sm);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 4; j++) {
            const uint8_t *qs = x[b].qs + 32 * j, *qh = x[b].qh;
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++) {
                int w0 = (qs[l] & 15) | ((qh[l] >> (2 * j)) & 1) << 4;
                int w1 = (qs[l] >> 4) | ((qh[l] >> (2 * j + 1)) & 1) << 4;
                lo += w0 * q[64 * j + l];
                hi += w1 * q[64 * j + 32 + l];
            }
            sumi += sm[2 * j] * lo + sm[2 * j + 1] * hi;
        }
        for (int j = 0; j < 8; j++) summ += sm[8 + j] * (bs[2 * j] + bs[2 * j + 1]);
        s += d[b] * f16(x[b].d) * (float)sumi - d[b] * f16(x[b].dmin) * (float)summ;
    }
    return s;
}

/* Q6_K: the 6-bit values are summed unsigned (0..63) and the -32 offset is
 * taken off with the per-16 activation sums: sum_g sc_g*(sum(u*a) - 32*bs_g). */
static float dot_q6_K(const block_q6_K *x, long nb, const int8_t *q, const float *d, const int16_t *bs) {
    float s = 0.0f;
    for (long b = 0; b < nb; b++, q += QK_K, bs += QK_K / 16) {
        const uint8_t *ql = x[b].ql, *qh = x[b].qh;
        const int8_t *sc = x[b].scales;
        int sumi = 0;
        for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32) {
            int g[8] = {0}; /* per 16-group sums of u*a within this 128 */
            for (int l = 0; l < 32; l++) {
                int u1 = (ql[l] & 15) | (qh[l] & 3) << 4;
                int u2 = (ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4;
                int u3 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                int u4 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                int h = l / 16;
                g[0 + h] += u1 * q[n + l];
                g[2 + h] += u2 * q[n + 32 + l];
                g[4 + h] += u3 * q[n + 64 + l];
                g[6 + h] += u4 * q[n + 96 + l];
            }
            for (int k = 0; k < 8; k++) sumi += sc[n / 16 + k] * g[k];
        }
        int corr = 0;
        for (int k = 0; k < 16; k++) corr += sc[k] * bs[k];
        sumi -= 32 * corr;
        s += d[b] * f16(x[b].d) * (float)sumi;
    }
    return s;
}

/* ---- tiles ------------------------------------------------------------------- */

#define ROW(r) ((const void *)((const uint8_t *)w->data + (size_t)(r0 + (r)) * w->row_bytes))
#define TOK(t)                                                     \
    const int8_t *q = a->q + (long)(t0 + (t)) * a->q_stride;       \
    const float *d = a->d + (long)(t0 + (t)) * a->d_stride;        \
    const float *m = a->m ? a->m + (long)(t0 + (t)) * a->d_stride : NULL; \
    const int16_t *bs = a->bsums ? a->bsums + (long)(t0 + (t)) * a->bs_stride : NULL; \
    (void)m;                                                       \
    (void)bs;                                                      \
    float *yt = y + (long)(t0 + (t)) * ys + r0;

void cpu_sc_tile_q4_1(CPU_TILE_ARGS) {
    for (int t = 0; t < nt; t++) {
        TOK(t)
        for (int r = 0; r < nr; r++) yt[r] = dot_q4_1(ROW(r), w->cols / 32, q, d, m);
    }
}

void cpu_sc_tile_q5_0(CPU_TILE_ARGS) {
    for (int t = 0; t < nt; t++) {
        TOK(t)
        for (int r = 0; r < nr; r++) yt[r] = dot_q5_0(ROW(r), w->cols / 32, q, d);
    }
}

void cpu_sc_tile_q5_1(CPU_TILE_ARGS) {
    for (int t = 0; t < nt; t++) {
        TOK(t)
        for (int r = 0; r < nr; r++) yt[r] = dot_q5_1(ROW(r), w->cols / 32, q, d, m);
    }
}

void cpu_sc_tile_q4_K(CPU_TILE_ARGS) {
    for (int t = 0; t < nt; t++) {
        TOK(t)
        for (int r = 0; r < nr; r++) yt[r] = dot_q4_K(ROW(r), w->cols / QK_K, q, d, bs);
    }
}

void cpu_sc_tile_q5_K(CPU_TILE_ARGS) {
    for (int t = 0; t < nt; t++) {
        TOK(t)
        for (int r = 0; r < nr; r++) yt[r] = dot_q5_K(ROW(r), w->cols / QK_K, q, d, bs);
    }
}

void cpu_sc_tile_q6_K(CPU_TILE_ARGS) {
    for (int t = 0; t < nt; t++) {
        TOK(t)
        for (int r = 0; r < nr; r++) yt[r] = dot_q6_K(ROW(r), w->cols / QK_K, q, d, bs);
    }
}
