/* test_quant.c - ggml types: f16/bf16 conversion for every bit pattern,
 * dequantization of every supported type against a double-precision
 * reference decoded here from the block layouts (plain per-weight bit
 * arithmetic, no shared code with quant.c), and quantization properties of
 * the ggml reference quantizers for Q8_0 / Q4_0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "testutil.h"

/* ---- independent references ------------------------------------------------- */

static double ref_f16(unsigned h) {
    int s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp(m, -24);
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static double ref_bf16(unsigned h) {
    int s = (h >> 15) & 1, e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 255) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp(m, -133);
    else v = ldexp(128 + m, e - 134);
    return s ? -v : v;
}

static void test_f16_all_patterns(void) {
    int bad = 0;
    for (unsigned h = 0; h < 65536; h++) {
        double r = ref_f16(h);
        float got = quant_f16_to_f32((inf_f16)h);
        if (isnan(r)) {
            if (!isnan(got)) bad++;
            if (!isnan(quant_f16_to_f32(quant_f32_to_f16(got)))) bad++;
            continue;
        }
        if ((double)got != r || !signbit(got) != !signbit(r)) bad++;
        if (quant_f32_to_f16(got) != h) bad++; /* exact values convert back exactly */
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_bf16_all_patterns(void) {
    int bad = 0;
    for (unsigned h = 0; h < 65536; h++) {
        double r = ref_bf16(h);
        float got = quant_bf16_to_f32((inf_bf16)h);
        if (isnan(r)) {
            if (!isnan(got) || !isnan(quant_bf16_to_f32(quant_f32_to_bf16(got)))) bad++;
            continue;
        }
        if ((double)got != r || !signbit(got) != !signbit(r)) bad++;
        if (quant_f32_to_bf16(got) != h) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* Round-to-nearest-even at every boundary between adjacent positive codes:
 * the exact midpoint goes to the even code, one ulp either side goes to the
 * nearer code. Infinity acts as the code after the largest finite value,
 * i.e. its "value" is the next power of two. */
static void check_rounding(unsigned max_finite, unsigned inf_code, double (*ref)(unsigned),
                           unsigned (*conv)(float), int *bad) {
    for (unsigned h = 0; h <= max_finite; h++) {
        double lo = ref(h);
        double hi = h + 1 == inf_code ? 2 * ref(h) - ref(h - 1) : ref(h + 1);
        double mid = (lo + hi) / 2; /* exact in double, and representable as float */
        float fm = (float)mid;
        if ((double)fm != mid) {
            (*bad)++;
            continue;
        }
        unsigned even = (h & 1) ? h + 1 : h;
        for (int sgn = 0; sgn < 2; sgn++) {
            unsigned sb = sgn ? 0x8000u : 0;
            float m = sgn ? -fm : fm;
            if (conv(m) != (even | sb)) (*bad)++;
            float below = nextafterf(fm, 0.0f), above = nextafterf(fm, INFINITY);
            if (conv(sgn ? -below : below) != (h | sb)) (*bad)++;
            if (conv(sgn ? -above : above) != ((h + 1) | sb)) (*bad)++;
        }
    }
}

static unsigned conv_f16(float f) { return quant_f32_to_f16(f); }
static unsigned conv_bf16(float f) { return quant_f32_to_bf16(f); }

static void test_f16_rounding(void) {
    int bad = 0;
    check_rounding(0x7bff, 0x7c00, ref_f16, conv_f16, &bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(quant_f32_to_f16(1e10f), 0x7c00);
    CU_ASSERT_EQUAL(quant_f32_to_f16(-INFINITY), 0xfc00);
    CU_ASSERT_EQUAL(quant_f32_to_f16(1e-10f), 0x0000);
    CU_ASSERT_EQUAL(quant_f32_to_f16(-1e-10f), 0x8000);
    CU_ASSERT(isnan(quant_f16_to_f32(quant_f32_to_f16(NAN))));
}

static void test_bf16_rounding(void) {
    int bad = 0;
    check_rounding(0x7f7f, 0x7f80, ref_bf16, conv_bf16, &bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(isnan(quant_bf16_to_f32(quant_f32_to_bf16(NAN))));
}

/* ---- dequantization against a per-weight reference ------------------------ */

static unsigned rd16(const uint8_t *p) { return p[0] | (unsigned)p[1] << 8; }

/* A random f16 with moderate magnitude (2^-14 .. 2^6) and random sign. */
static unsigned rand_f16(uint64_t *st) {
    uint64_t r = tu_rand_u64(st);
    unsigned e = 1 + (unsigned)(r % 20), m = (unsigned)(r >> 8) & 1023, s = (unsigned)(r >> 20) & 1;
    return s << 15 | e << 10 | m;
}

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Reference value of weight i of one block; *mag is a bound on the magnitude
 * of the terms, used to scale the tolerance for float rounding. */
static double ref_weight(int type, const uint8_t *b, int i, double *mag) {
    switch (type) {
    case GGML_TYPE_Q4_0: {
        int q = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
        double d = ref_f16(rd16(b));
        *mag = fabs(d) * 8;
        return (q - 8) * d;
    }
    case GGML_TYPE_Q4_1: {
        int q = i < 16 ? (b[4 + i] & 15) : (b[4 + i - 16] >> 4);
        double d = ref_f16(rd16(b)), m = ref_f16(rd16(b + 2));
        *mag = fabs(d) * 15 + fabs(m);
        return q * d + m;
    }
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q5_1: {
        int has_m = type == GGML_TYPE_Q5_1;
        const uint8_t *qh = b + (has_m ? 4 : 2), *qs = qh + 4;
        int lo = i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4);
        int hb = (qh[i / 8] >> (i % 8)) & 1;
        int q = lo + 16 * hb;
        double d = ref_f16(rd16(b));
        if (!has_m) {
            *mag = fabs(d) * 16;
            return (q - 16) * d;
        }
        double m = ref_f16(rd16(b + 2));
        *mag = fabs(d) * 31 + fabs(m);
        return q * d + m;
    }
    case GGML_TYPE_Q8_0: {
        double d = ref_f16(rd16(b));
        *mag = fabs(d) * 128;
        return (int8_t)b[2 + i] * d;
    }
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K: {
        const uint8_t *sc = b + 4;
        int chunk = i / 64, w = i % 64, sub = 2 * chunk + (w >= 32);
        int s, m;
        if (sub < 4) {
            s = sc[sub] % 64;
            m = sc[sub + 4] % 64;
        } else {
            s = (sc[sub + 4] % 16) + 16 * (sc[sub - 4] / 64);
            m = (sc[sub + 4] / 16) + 16 * (sc[sub] / 64);
        }
        int q;
        const uint8_t *qs = b + (type == GGML_TYPE_Q4_K ? 16 : 48);
        int byte = qs[32 * chunk + w % 32];
        q = w < 32 ? byte % 16 : byte / 16;
        if (type == GGML_TYPE_Q5_K) q += 16 * ((b[16 + w % 32] >> sub) & 1);
        double d = ref_f16(rd16(b)), dmin = ref_f16(rd16(b + 2));
        *mag = fabs(d * s * q) + fabs(dmin * m);
        return d * s * q - dmin * m;
    }
    case GGML_TYPE_Q6_K: {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        double d = ref_f16(rd16(b + 208));
        int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
        int lbyte = ql[64 * half + l + 32 * (quarter & 1)];
        int low = quarter < 2 ? lbyte % 16 : lbyte / 16;
        int high = (qh[32 * half + l] >> (2 * quarter)) & 3;
        int s = sc[8 * half + l / 16 + 2 * quarter];
        int q = low + 16 * high - 32;
        *mag = fabs(d * s * q);
        return d * s * q;
    }
    }
    *mag = 0;
    return 0;
}

/* Offsets of the f16 fields of each block type, to keep them finite. */
static void sanitize_block(int type, uint8_t *b, uint64_t *st) {
    switch (type) {
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K: put16(b + 2, rand_f16(st)); /* fall through */
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q8_0: put16(b, rand_f16(st)); break;
    case GGML_TYPE_Q6_K: put16(b + 208, rand_f16(st)); break;
    }
}

static void check_dequant(int type, size_t expect_bytes, size_t expect_blck) {
    CU_ASSERT_EQUAL_FATAL(quant_type_size(type), expect_bytes);
    CU_ASSERT_EQUAL_FATAL(quant_block_size(type), expect_blck);
    enum { NB = 12 };
    uint8_t *raw = malloc(NB * expect_bytes);
    float *out = malloc(NB * expect_blck * sizeof(float));
    uint64_t st = 0x1234 + (uint64_t)type;
    int bad = 0;
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < NB * expect_bytes; i++) raw[i] = (uint8_t)tu_rand_u64(&st);
        for (int k = 0; k < NB; k++) sanitize_block(type, raw + k * expect_bytes, &st);
        quant_dequantize_row(type, raw, out, NB * expect_blck);
        for (int k = 0; k < NB; k++) {
            for (size_t i = 0; i < expect_blck; i++) {
                double mag;
                double r = ref_weight(type, raw + k * expect_bytes, (int)i, &mag);
                double got = out[k * expect_blck + i];
                if (fabs(got - r) > 1e-6 * mag + 1e-30) {
                    if (bad < 5)
                        fprintf(stderr, "\n  %s block %d weight %zu: got %.9g want %.9g\n",
                                quant_type_name(type), k, i, got, r);
                    bad++;
                }
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(raw);
    free(out);
}

static void test_deq_q4_0(void) { check_dequant(GGML_TYPE_Q4_0, 18, 32); }
static void test_deq_q4_1(void) { check_dequant(GGML_TYPE_Q4_1, 20, 32); }
static void test_deq_q5_0(void) { check_dequant(GGML_TYPE_Q5_0, 22, 32); }
static void test_deq_q5_1(void) { check_dequant(GGML_TYPE_Q5_1, 24, 32); }
static void test_deq_q8_0(void) { check_dequant(GGML_TYPE_Q8_0, 34, 32); }
static void test_deq_q4_k(void) { check_dequant(GGML_TYPE_Q4_K, 144, 256); }
static void test_deq_q5_k(void) { check_dequant(GGML_TYPE_Q5_K, 176, 256); }
static void test_deq_q6_k(void) { check_dequant(GGML_TYPE_Q6_K, 210, 256); }

static void test_deq_float_types(void) {
    uint64_t st = 77;
    uint8_t raw[2 * 64];
    float out[64];
    for (int i = 0; i < 128; i++) raw[i] = (uint8_t)tu_rand_u64(&st);
    quant_dequantize_row(GGML_TYPE_F16, raw, out, 64);
    int bad = 0;
    for (int i = 0; i < 64; i++) {
        double r = ref_f16(rd16(raw + 2 * i));
        if (isnan(r) ? !isnan(out[i]) : (double)out[i] != r) bad++;
    }
    quant_dequantize_row(GGML_TYPE_BF16, raw, out, 64);
    for (int i = 0; i < 64; i++) {
        double r = ref_bf16(rd16(raw + 2 * i));
        if (isnan(r) ? !isnan(out[i]) : (double)out[i] != r) bad++;
    }
    float src[16];
    for (int i = 0; i < 16; i++) src[i] = tu_rand_uniform(&st, -3, 3);
    quant_dequantize_row(GGML_TYPE_F32, src, out, 16);
    CU_ASSERT_EQUAL(memcmp(src, out, sizeof src), 0);
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- quantization ------------------------------------------------------------ */

static void test_quantize_q8_0(void) {
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(N / 32 * 34);
    uint64_t st = 99;
    for (int i = 0; i < N; i++) x[i] = tu_rand_uniform(&st, -1, 1) * (float)(1 + i / 32);
    for (int i = 0; i < 32; i++) x[32 + i] = 0.0f; /* an all-zero block */
    CU_ASSERT_EQUAL_FATAL(quant_quantize_row(GGML_TYPE_Q8_0, x, q, N), 0);
    quant_dequantize_row(GGML_TYPE_Q8_0, q, y, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        const uint8_t *blk = q + b * 34;
        double amax = 0;
        for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[b * 32 + j]));
        double d = amax / 127, d16 = ref_f16(rd16(blk));
        if (fabs(d16 - d) > d * 0x1p-11) bad++; /* d stored as the nearest f16 */
        int maxq = 0;
        for (int j = 0; j < 32; j++) {
            int qi = (int8_t)blk[2 + j];
            if (abs(qi) > maxq) maxq = abs(qi);
            /* q is x/d rounded to nearest */
            if (d > 0 && fabs(x[b * 32 + j] / d - qi) > 0.5 + 1e-5) bad++;
            if (fabs(x[b * 32 + j] - y[b * 32 + j]) > d * (0.5 + 127 * 0x1p-11) + 1e-7) bad++;
        }
        if (amax > 0 && maxq != 127) bad++;
        if (amax == 0 && (d16 != 0 || maxq != 0)) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(x);
    free(y);
    free(q);
}

static void test_quantize_q4_0(void) {
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(N / 32 * 18);
    uint64_t st = 1234;
    for (int i = 0; i < N; i++) x[i] = tu_rand_uniform(&st, -1, 1) * (float)(1 + i / 32);
    CU_ASSERT_EQUAL_FATAL(quant_quantize_row(GGML_TYPE_Q4_0, x, q, N), 0);
    quant_dequantize_row(GGML_TYPE_Q4_0, q, y, N);
    int bad = 0, clamped = 0;
    double sq = 0, sqx = 0;
    for (int b = 0; b < N / 32; b++) {
        const uint8_t *blk = q + b * 18;
        double amax = 0, smax = 0;
        for (int j = 0; j < 32; j++)
            if (fabs(x[b * 32 + j]) > amax) amax = fabs(x[b * 32 + j]), smax = x[b * 32 + j];
        double d = smax / -8, d16 = ref_f16(rd16(blk));
        if (fabs(d16 - d) > fabs(d) * 0x1p-11) bad++;
        for (int j = 0; j < 32; j++) {
            int qi = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
            double t = x[b * 32 + j] / d + 8;
            if (qi == 15 && t > 15.5) clamped++;
            else if (fabs(t - qi) > 0.5 + 1e-5) bad++; /* nearest level */
            if (fabs(x[b * 32 + j] - y[b * 32 + j]) > fabs(d) * (1 + 8 * 0x1p-11) + 1e-7) bad++;
            sq += (x[b * 32 + j] - y[b * 32 + j]) * (double)(x[b * 32 + j] - y[b * 32 + j]);
            sqx += (double)x[b * 32 + j] * x[b * 32 + j];
        }
        /* the largest-magnitude weight is represented exactly by level 0 */
        for (int j = 0; j < 32; j++)
            if (x[b * 32 + j] == smax) {
                int qi = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
                if (qi != 0) bad++;
            }
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* 4-bit quantization of uniform data: relative rms error well under 10% */
    CU_ASSERT(sqrt(sq / sqx) < 0.1);
    (void)clamped;
    free(x);
    free(y);
    free(q);
}

static void test_quantize_float_types(void) {
    float x[40], y[40];
    uint8_t buf[160];
    uint64_t st = 5;
    for (int i = 0; i < 40; i++) x[i] = tu_rand_uniform(&st, -100, 100);
    CU_ASSERT_EQUAL(quant_quantize_row(GGML_TYPE_F16, x, buf, 40), 0);
    quant_dequantize_row(GGML_TYPE_F16, buf, y, 40);
    int bad = 0;
    for (int i = 0; i < 40; i++)
        if (fabs(x[i] - y[i]) > fabs(x[i]) * 0x1p-11) bad++;
    CU_ASSERT_EQUAL(quant_quantize_row(GGML_TYPE_BF16, x, buf, 40), 0);
    quant_dequantize_row(GGML_TYPE_BF16, buf, y, 40);
    for (int i = 0; i < 40; i++)
        if (fabs(x[i] - y[i]) > fabs(x[i]) * 0x1p-8) bad++;
    CU_ASSERT_EQUAL(quant_quantize_row(GGML_TYPE_F32, x, buf, 40), 0);
    CU_ASSERT_EQUAL(memcmp(buf, x, sizeof x), 0);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(quant_quantize_row(GGML_TYPE_Q2_K, x, buf, 32), INF_EUNSUPPORTED);
    CU_ASSERT_EQUAL(quant_quantize_row(GGML_TYPE_Q6_K, x, buf, 32), INF_EINVAL);
}

/* Every quantizer round-trips through the library's dequantizer (itself
 * checked above against the bit-level references) with the error its bit
 * width allows: RMS error over RMS of uniform data below the bound (a b-bit
 * uniform grid over the block range gives about 1.15 / 2^b), an all-zero
 * block comes back as zeros, and the bytes written are exactly a row. */
static void test_quantize_all_types(void) {
    static const struct { int type; double rms; } cases[] = {
        {GGML_TYPE_Q4_0, 0.10}, {GGML_TYPE_Q4_1, 0.09}, {GGML_TYPE_Q5_0, 0.05},
        {GGML_TYPE_Q5_1, 0.045}, {GGML_TYPE_Q8_0, 0.006}, {GGML_TYPE_Q4_K, 0.09},
        {GGML_TYPE_Q5_K, 0.045}, {GGML_TYPE_Q6_K, 0.025}};
    enum { N = 1024 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *q = malloc(N * 2 + 64);
    uint64_t st = 17;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int t = cases[c].type, ok = 1;
        size_t rb = quant_row_bytes(t, N, &ok);
        CU_ASSERT_FATAL(ok);
        for (int i = 0; i < N; i++) x[i] = tu_rand_uniform(&st, -1.0f, 1.0f) * (1.0f + (float)(i / 256));
        for (int i = 256; i < 512; i++) x[i] = 0.0f; /* a zero super-block */
        for (int i = 512; i < 544; i++) x[i] = fabsf(x[i]) + 0.5f; /* a positive-only block */
        memset(q, 0xa5, N * 2 + 64);
        CU_ASSERT_EQUAL_FATAL(quant_quantize_row(t, x, q, N), 0);
        CU_ASSERT_EQUAL(q[rb], 0xa5);
        quant_dequantize_row(t, q, y, N);
        double e2 = 0, x2 = 0;
        int zero_bad = 0;
        for (int i = 0; i < N; i++) {
            e2 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            x2 += (double)x[i] * x[i];
            if (i >= 256 && i < 512 && y[i] != 0.0f) zero_bad++;
        }
        double r = sqrt(e2 / x2);
        if (!(r <= cases[c].rms)) printf("\n  %s: rms rel err %.4f > %.4f", quant_type_name(t), r, cases[c].rms);
        CU_ASSERT(r <= cases[c].rms);
        CU_ASSERT_EQUAL(zero_bad, 0);
    }
    free(x);
    free(y);
    free(q);
}

static void test_type_table(void) {
    static const struct {
        int type;
        const char *name;
        size_t blck, size;
    } t[] = {{GGML_TYPE_F32, "F32", 1, 4},        {GGML_TYPE_F16, "F16", 1, 2},
             {GGML_TYPE_BF16, "BF16", 1, 2},      {GGML_TYPE_Q4_0, "Q4_0", 32, 18},
             {GGML_TYPE_Q4_1, "Q4_1", 32, 20},    {GGML_TYPE_Q5_0, "Q5_0", 32, 22},
             {GGML_TYPE_Q5_1, "Q5_1", 32, 24},    {GGML_TYPE_Q8_0, "Q8_0", 32, 34},
             {GGML_TYPE_Q4_K, "Q4_K", 256, 144},  {GGML_TYPE_Q5_K, "Q5_K", 256, 176},
             {GGML_TYPE_Q6_K, "Q6_K", 256, 210}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        CU_ASSERT_STRING_EQUAL(quant_type_name(t[i].type), t[i].name);
        CU_ASSERT_EQUAL(quant_type_supported(t[i].type), 1);
        CU_ASSERT_EQUAL(quant_block_size(t[i].type), t[i].blck);
        CU_ASSERT_EQUAL(quant_type_size(t[i].type), t[i].size);
        int ok = 0;
        CU_ASSERT_EQUAL(quant_row_bytes(t[i].type, t[i].blck * 3, &ok), t[i].size * 3);
        CU_ASSERT_EQUAL(ok, 1);
        if (t[i].blck > 1) {
            CU_ASSERT_EQUAL(quant_row_bytes(t[i].type, t[i].blck + 1, &ok), 0);
            CU_ASSERT_EQUAL(ok, 0);
        }
    }
    CU_ASSERT_EQUAL(quant_type_from_name("q8_0"), GGML_TYPE_Q8_0);
    CU_ASSERT_EQUAL(quant_type_from_name("Bf16"), GGML_TYPE_BF16);
    CU_ASSERT_EQUAL(quant_type_from_name("q7_0"), -1);
    CU_ASSERT_EQUAL(quant_type_supported(GGML_TYPE_Q2_K), 0);
    CU_ASSERT_EQUAL(quant_type_supported(-1), 0);
    CU_ASSERT_EQUAL(quant_type_supported(1000), 0);
    CU_ASSERT_STRING_EQUAL(quant_type_name(1000), "unknown");
    int ok = 1;
    CU_ASSERT_EQUAL(quant_row_bytes(GGML_TYPE_F32, UINT64_MAX / 2, &ok), 0);
    CU_ASSERT_EQUAL(ok, 0);
}

void test_register_quant(void) {
    CU_pSuite s = CU_add_suite("quant", NULL, NULL);
    CU_add_test(s, "type table", test_type_table);
    CU_add_test(s, "f16 all 65536 patterns", test_f16_all_patterns);
    CU_add_test(s, "bf16 all 65536 patterns", test_bf16_all_patterns);
    CU_add_test(s, "f32->f16 round to nearest even", test_f16_rounding);
    CU_add_test(s, "f32->bf16 round to nearest even", test_bf16_rounding);
    CU_add_test(s, "dequant F32/F16/BF16", test_deq_float_types);
    CU_add_test(s, "dequant Q4_0", test_deq_q4_0);
    CU_add_test(s, "dequant Q4_1", test_deq_q4_1);
    CU_add_test(s, "dequant Q5_0", test_deq_q5_0);
    CU_add_test(s, "dequant Q5_1", test_deq_q5_1);
    CU_add_test(s, "dequant Q8_0", test_deq_q8_0);
    CU_add_test(s, "dequant Q4_K", test_deq_q4_k);
    CU_add_test(s, "dequant Q5_K", test_deq_q5_k);
    CU_add_test(s, "dequant Q6_K", test_deq_q6_k);
    CU_add_test(s, "quantize Q8_0", test_quantize_q8_0);
    CU_add_test(s, "quantize Q4_0", test_quantize_q4_0);
    CU_add_test(s, "quantize F32/F16/BF16", test_quantize_float_types);
    CU_add_test(s, "quantize every quantized type: round trip", test_quantize_all_types);
}
