/* quant.c - ggml tensor types: sizes, f16/bf16 conversion, row dequantization
 * and a reference quantizer for every supported type.
 *
 * Everything here is scalar and portable; the SIMD matmul kernels live in
 * cpu_ops and only use this file as the ground truth for block layouts.
 */
#include "quant.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t blck;
    size_t size;
} type_info;

/* Only the types we can dequantize carry a size; others are "known but
 * unsupported" and get a name so error messages can say what they are. */
static const type_info *info_of(int type) {
    static const type_info tab[GGML_TYPE_COUNT_] = {
        [GGML_TYPE_F32] = {"F32", 1, 4},
        [GGML_TYPE_F16] = {"F16", 1, 2},
        [GGML_TYPE_Q4_0] = {"Q4_0", QK4_0, sizeof(block_q4_0)},
        [GGML_TYPE_Q4_1] = {"Q4_1", QK4_1, sizeof(block_q4_1)},
        [GGML_TYPE_Q5_0] = {"Q5_0", QK5_0, sizeof(block_q5_0)},
        [GGML_TYPE_Q5_1] = {"Q5_1", QK5_1, sizeof(block_q5_1)},
        [GGML_TYPE_Q8_0] = {"Q8_0", QK8_0, sizeof(block_q8_0)},
        [GGML_TYPE_Q8_1] = {"Q8_1", 0, 0},
        [GGML_TYPE_Q2_K] = {"Q2_K", 0, 0},
        [GGML_TYPE_Q3_K] = {"Q3_K", 0, 0},
        [GGML_TYPE_Q4_K] = {"Q4_K", QK_K, sizeof(block_q4_K)},
        [GGML_TYPE_Q5_K] = {"Q5_K", QK_K, sizeof(block_q5_K)},
        [GGML_TYPE_Q6_K] = {"Q6_K", QK_K, sizeof(block_q6_K)},
        [GGML_TYPE_Q8_K] = {"Q8_K", 0, 0},
        [GGML_TYPE_BF16] = {"BF16", 1, 2},
    };
    if (type < 0 || type >= GGML_TYPE_COUNT_ || !tab[type].name) return NULL;
    return &tab[type];
}

/* The block structs must match ggml's on-disk sizes byte for byte. */
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

const char *quant_type_name(int type) {
    const type_info *ti = info_of(type);
    return ti ? ti->name : "unknown";
}

int quant_type_from_name(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < GGML_TYPE_COUNT_; t++) {
        const type_info *ti = info_of(t);
        if (!ti) continue;
        const char *a = ti->name, *b = name;
        while (*a && *b && toupper((unsigned char)*a) == toupper((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return t;
    }
    return -1;
}

int quant_type_supported(int type) {
    const type_info *ti = info_of(type);
    return ti && ti->size != 0;
}

size_t quant_block_size(int type) {
    const type_info *ti = info_of(type);
    return ti ? ti->blck : 0;
}

size_t quant_type_size(int type) {
    const type_info *ti = info_of(type);
    return ti ? ti->size : 0;
}

size_t quant_row_bytes(int type, uint64_t n, int *ok) {
    const type_info *ti = info_of(type);
    int good = ti && ti->size && n % ti->blck == 0;
    uint64_t bytes = 0;
    if (good && __builtin_mul_overflow(n / ti->blck, (uint64_t)ti->size, &bytes)) good = 0;
    if (good && bytes > SIZE_MAX) good = 0;
    if (ok) *ok = good;
    return good ? (size_t)bytes : 0;
}

/* ---- scalar conversions ---------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float quant_f16_to_f32(inf_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

inf_f16 quant_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t man = u & 0x7fffff;
    if (exp == 0xff) /* inf stays inf; nan stays a (quiet) nan */
        return (inf_f16)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (inf_f16)(sign | 0x7c00);
    if (e <= 0) {
        /* subnormal half (or underflow to zero): shift the full mantissa so
         * that the result is in units of 2^-24, rounding to nearest even. */
        if (e < -10) return sign;
        uint32_t m = man | 0x800000;
        int shift = 14 - e; /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (inf_f16)(sign | q); /* q may carry into the exponent: still right */
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* carry may reach inf: right */
    return (inf_f16)(sign | q);
}

float quant_bf16_to_f32(inf_bf16 h) { return bits_f32((uint32_t)h << 16); }

inf_bf16 quant_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (inf_bf16)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fff + ((u >> 16) & 1);
    return (inf_bf16)(u >> 16);
}

static float ld_f16(const inf_f16 *p) {
    inf_f16 h;
    memcpy(&h, p, sizeof h);
    return quant_f16_to_f32(h);
}

/* ---- dequantization --------------------------------------------------------- */

static void deq_q4_0(const block_q4_0 *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, y += QK4_0) {
        float d = ld_f16(&b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = ((int)(b[i].qs[j] & 0xf) - 8) * d;
            y[j + QK4_0 / 2] = ((int)(b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const block_q4_1 *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, y += QK4_1) {
        float d = ld_f16(&b[i].d), m = ld_f16(&b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (b[i].qs[j] & 0xf) * d + m;
            y[j + QK4_1 / 2] = (b[i].qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t ld_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void deq_q5_0(const block_q5_0 *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, y += QK5_0) {
        float d = ld_f16(&b[i].d);
        uint32_t qh = ld_u32(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            int x0 = (b[i].qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
            int x1 = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (x0 - 16) * d;
            y[j + QK5_0 / 2] = (x1 - 16) * d;
        }
    }
}

static void deq_q5_1(const block_q5_1 *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, y += QK5_1) {
        float d = ld_f16(&b[i].d), m = ld_f16(&b[i].m);
        uint32_t qh = ld_u32(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            int x0 = (b[i].qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
            int x1 = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = x0 * d + m;
            y[j + QK5_1 / 2] = x1 * d + m;
        }
    }
}

static void deq_q8_0(const block_q8_0 *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, y += QK8_0) {
        float d = ld_f16(&b[i].d);
        for (int j = 0; j < QK8_0; j++) y[j] = b[i].qs[j] * d;
    }
}

/* 6-bit scale and min of sub-block j (0..7) from the 12-byte packed array:
 * sub-blocks 0..3 use the low 6 bits of bytes 0..3 / 4..7; sub-blocks 4..7
 * take 4 low bits from bytes 8..11 and their top 2 bits from the spare high
 * bits of bytes 0..3 (scale) / 4..7 (min). */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void deq_q4_K(const block_q4_K *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++) {
        float d = ld_f16(&b[i].d), dmin = ld_f16(&b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
            uint8_t sc, m;
            scale_min_k4(is, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xf) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void deq_q5_K(const block_q5_K *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++) {
        float d = ld_f16(&b[i].d), dmin = ld_f16(&b[i].dmin);
        const uint8_t *ql = b[i].qs, *qh = b[i].qh;
        unsigned u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            scale_min_k4(is, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

static void deq_q6_K(const block_q6_K *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++) {
        float d = ld_f16(&b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = (int)((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                int q2 = (int)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

void quant_dequantize_row(int type, const void *src, float *dst, size_t n) {
    size_t blck = quant_block_size(type);
    if (!blck || !quant_type_supported(type)) return;
    size_t nb = n / blck;
    switch (type) {
    case GGML_TYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case GGML_TYPE_F16: {
        const uint8_t *p = src;
        for (size_t i = 0; i < n; i++) dst[i] = quant_f16_to_f32((inf_f16)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    }
    case GGML_TYPE_BF16: {
        const uint8_t *p = src;
        for (size_t i = 0; i < n; i++) dst[i] = quant_bf16_to_f32((inf_bf16)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    }
    case GGML_TYPE_Q4_0: deq_q4_0(src, dst, nb); break;
    case GGML_TYPE_Q4_1: deq_q4_1(src, dst, nb); break;
    case GGML_TYPE_Q5_0: deq_q5_0(src, dst, nb); break;
    case GGML_TYPE_Q5_1: deq_q5_1(src, dst, nb); break;
    case GGML_TYPE_Q8_0: deq_q8_0(src, dst, nb); break;
    case GGML_TYPE_Q4_K: deq_q4_K(src, dst, nb); break;
    case GGML_TYPE_Q5_K: deq_q5_K(src, dst, nb); break;
    case GGML_TYPE_Q6_K: deq_q6_K(src, dst, nb); break;
    default: break;
    }
}

/* ---- quantization (ggml reference rounding) ------------------------------- */

static void st_f16(inf_f16 *p, float f) {
    inf_f16 h = quant_f32_to_f16(f);
    memcpy(p, &h, sizeof h);
}

static void quant_q8_0(const float *x, block_q8_0 *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        st_f16(&y[i].d, d);
        for (int j = 0; j < QK8_0; j++) {
            float v = roundf(x[j] * id);
            /* finite inputs stay within +-127; the clamp only keeps nan/inf
             * from reaching an undefined float->int conversion */
            if (!(v >= -127.0f)) v = v != v ? 0.0f : -127.0f;
            if (v > 127.0f) v = 127.0f;
            y[i].qs[j] = (int8_t)v;
        }
    }
}

static void quant_q4_0(const float *x, block_q4_0 *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK4_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        st_f16(&y[i].d, d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            float v0 = x[j] * id + 8.5f, v1 = x[j + QK4_0 / 2] * id + 8.5f;
            /* ggml truncates toward zero and caps at 15; values are >= ~0.5
             * for finite input, the lower clamp only guards nan */
            int q0 = v0 >= 15.0f ? 15 : v0 > 0.0f ? (int)v0 : 0;
            int q1 = v1 >= 15.0f ? 15 : v1 > 0.0f ? (int)v1 : 0;
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Q4_1: the block's [min, max] in 16 steps, x = q*d + m (ggml's rounding:
 * add one half and truncate, q capped at 15). */
static void quant_q4_1(const float *x, block_q4_1 *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK4_1) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < QK4_1; j++) {
            mn = fminf(mn, x[j]);
            mx = fmaxf(mx, x[j]);
        }
        float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        st_f16(&y[i].d, d);
        st_f16(&y[i].m, mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            float v0 = (x[j] - mn) * id + 0.5f, v1 = (x[j + QK4_1 / 2] - mn) * id + 0.5f;
            int q0 = v0 >= 15.0f ? 15 : v0 > 0.0f ? (int)v0 : 0;
            int q1 = v1 >= 15.0f ? 15 : v1 > 0.0f ? (int)v1 : 0;
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static void st_u32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* Q5_0: like Q4_0 with 32 levels: the largest-magnitude value maps to -16. */
static void quant_q5_0(const float *x, block_q5_0 *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        st_f16(&y[i].d, d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            float v0 = x[j] * id + 16.5f, v1 = x[j + QK5_0 / 2] * id + 16.5f;
            int q0 = v0 >= 31.0f ? 31 : v0 > 0.0f ? (int)v0 : 0;
            int q1 = v1 >= 31.0f ? 31 : v1 > 0.0f ? (int)v1 : 0;
            y[i].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + QK5_0 / 2);
        }
        st_u32(y[i].qh, qh);
    }
}

/* Q5_1: like Q4_1 with 32 levels. */
static void quant_q5_1(const float *x, block_q5_1 *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK5_1) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < QK5_1; j++) {
            mn = fminf(mn, x[j]);
            mx = fmaxf(mx, x[j]);
        }
        float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        st_f16(&y[i].d, d);
        st_f16(&y[i].m, mn);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            float v0 = (x[j] - mn) * id + 0.5f, v1 = (x[j + QK5_1 / 2] - mn) * id + 0.5f;
            int q0 = v0 >= 31.0f ? 31 : v0 > 0.0f ? (int)v0 : 0;
            int q1 = v1 >= 31.0f ? 31 : v1 > 0.0f ? (int)v1 : 0;
            y[i].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + QK5_1 / 2);
        }
        st_u32(y[i].qh, qh);
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* nearbyintf that cannot hand an out-of-range or nan float to the int
 * conversion (inputs are finite, this only keeps the conversion defined) */
static int round_i(float v) {
    if (!(v > -1e9f)) return v != v ? 0 : -1000000000;
    if (v > 1e9f) return 1000000000;
    return (int)nearbyintf(v);
}

/* Q4_K / Q5_K share the scheme: 8 sub-blocks of 32 with x = d*sc*q - dmin*m,
 * sc and m 6-bit, d and dmin f16 per super-block. Per sub-block we take the
 * range [min(x, 0), max(x)] (ggml's make_qkx2_quants also starts there; its
 * search for a better scale is left out), quantize the scales and mins to 6
 * bits against the super-block maxima, then the weights against the stored
 * (rounded) scales so the rounding of d and sc is taken into account. */
static void pack_scale_min_k4(uint8_t *q, const uint8_t *ls, const uint8_t *lm) {
    memset(q, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] |= ls[j];
            q[j + 4] |= lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0xf) | (lm[j] & 0xf) << 4);
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void quant_kx(const float *x, int nmax, inf_f16 *dp, inf_f16 *dminp, uint8_t *scales,
                     uint8_t *L) {
    float sc[8], mn[8], max_sc = 0.0f, max_mn = 0.0f;
    for (int j = 0; j < 8; j++) {
        float lo = 0.0f, hi = x[32 * j];
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * j + l]);
            hi = fmaxf(hi, x[32 * j + l]);
        }
        sc[j] = (hi - lo) / (float)nmax;
        mn[j] = -lo;
        max_sc = fmaxf(max_sc, sc[j]);
        max_mn = fmaxf(max_mn, mn[j]);
    }
    float is = max_sc > 0.0f ? 63.0f / max_sc : 0.0f, im = max_mn > 0.0f ? 63.0f / max_mn : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi(round_i(is * sc[j]), 0, 63);
        lm[j] = (uint8_t)clampi(round_i(im * mn[j]), 0, 63);
    }
    st_f16(dp, max_sc / 63.0f);
    st_f16(dminp, max_mn / 63.0f);
    pack_scale_min_k4(scales, ls, lm);
    float d = ld_f16(dp), dmin = ld_f16(dminp);
    for (int j = 0; j < 8; j++) {
        float dd = d * ls[j], dm = dmin * lm[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)(dd != 0.0f ? clampi(round_i((x[32 * j + l] + dm) / dd), 0, nmax) : 0);
    }
}

static void quant_q4_K(const float *x, block_q4_K *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK_K) {
        uint8_t L[QK_K];
        quant_kx(x, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++) y[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

static void quant_q5_K(const float *x, block_q5_K *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK_K) {
        uint8_t L[QK_K];
        quant_kx(x, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int j = 0, bit = 0; j < QK_K; j += 64, bit += 2)
            for (int l = 0; l < 32; l++) {
                int q0 = L[j + l], q1 = L[j + l + 32];
                y[i].qs[j / 2 + l] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
                y[i].qh[l] |= (uint8_t)((q0 >> 4) << bit | (q1 >> 4) << (bit + 1));
            }
    }
}

/* Q6_K: 16 sub-blocks of 16, x = d * sc * (q - 32) with sc int8 and q 6-bit.
 * Each sub-block's largest-magnitude value maps to -32 (as ggml's
 * make_qx_quants starts); the scales are quantized to int8 against the
 * largest one (mapped to -128, clamped at 127), then the weights against the
 * stored scales. */
static void quant_q6_K(const float *x, block_q6_K *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += QK_K) {
        float sc[16], max_sc = 0.0f, amax_sc = 0.0f;
        for (int g = 0; g < 16; g++) {
            float amax = 0.0f, max = 0.0f;
            for (int l = 0; l < 16; l++)
                if (amax < fabsf(x[16 * g + l])) {
                    amax = fabsf(x[16 * g + l]);
                    max = x[16 * g + l];
                }
            sc[g] = max / -32.0f;
            if (fabsf(sc[g]) > amax_sc) {
                amax_sc = fabsf(sc[g]);
                max_sc = sc[g];
            }
        }
        float iscale = max_sc != 0.0f ? -128.0f / max_sc : 0.0f;
        st_f16(&y[i].d, iscale != 0.0f ? 1.0f / iscale : 0.0f);
        float d = ld_f16(&y[i].d);
        uint8_t L[QK_K];
        for (int g = 0; g < 16; g++) {
            y[i].scales[g] = (int8_t)clampi(round_i(iscale * sc[g]), -128, 127);
            float dd = d * y[i].scales[g];
            for (int l = 0; l < 16; l++)
                L[16 * g + l] =
                    (uint8_t)(dd != 0.0f ? clampi(round_i(x[16 * g + l] / dd), -32, 31) + 32 : 32);
        }
        for (int n = 0; n < QK_K; n += 128)
            for (int l = 0; l < 32; l++) {
                int q1 = L[n + l], q2 = L[n + l + 32], q3 = L[n + l + 64], q4 = L[n + l + 96];
                y[i].ql[n / 2 + l] = (uint8_t)((q1 & 15) | (q3 & 15) << 4);
                y[i].ql[n / 2 + l + 32] = (uint8_t)((q2 & 15) | (q4 & 15) << 4);
                y[i].qh[n / 4 + l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
    }
}

int quant_quantize_row(int type, const float *src, void *dst, size_t n) {
    switch (type) {
    case GGML_TYPE_F32: memcpy(dst, src, n * sizeof(float)); return 0;
    case GGML_TYPE_F16: {
        uint8_t *p = dst;
        for (size_t i = 0; i < n; i++) {
            inf_f16 h = quant_f32_to_f16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return 0;
    }
    case GGML_TYPE_BF16: {
        uint8_t *p = dst;
        for (size_t i = 0; i < n; i++) {
            inf_bf16 h = quant_f32_to_bf16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return 0;
    }
    case GGML_TYPE_Q8_0:
        if (n % QK8_0) return INF_EINVAL;
        quant_q8_0(src, dst, n / QK8_0);
        return 0;
    case GGML_TYPE_Q4_0:
        if (n % QK4_0) return INF_EINVAL;
        quant_q4_0(src, dst, n / QK4_0);
        return 0;
    default: break;
    }
    size_t blck = quant_block_size(type);
    if (!blck || !quant_type_supported(type)) return INF_EUNSUPPORTED;
    if (n % blck) return INF_EINVAL;
    size_t nb = n / blck;
    switch (type) {
    case GGML_TYPE_Q4_1: quant_q4_1(src, dst, nb); return 0;
    case GGML_TYPE_Q5_0: quant_q5_0(src, dst, nb); return 0;
    case GGML_TYPE_Q5_1: quant_q5_1(src, dst, nb); return 0;
    case GGML_TYPE_Q4_K: quant_q4_K(src, dst, nb); return 0;
    case GGML_TYPE_Q5_K: quant_q5_K(src, dst, nb); return 0;
    case GGML_TYPE_Q6_K: quant_q6_K(src, dst, nb); return 0;
    default: return INF_EUNSUPPORTED;
    }
}
