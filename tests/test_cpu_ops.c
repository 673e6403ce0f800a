/* test_cpu_ops.c - CPU kernels against plain double-precision references.
 *
 * Weights are generated as raw bits (random halves, bfloat16s, Q8_0/Q4_0
 * blocks) and decoded here with our own plain loops, independent of the
 * library's converters (the newer quantized types: the library's quantizer
 * and row dequantizer, checked bit by bit in the quant suite). Every matmul
 * runs on every kernel set this CPU supports (scalar, AVX2, AVX-512) and is
 * checked against the reference and against scalar.
 */
#include <cpuid.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "testutil.h"

#define U24 (1.0 / 16777216.0) /* unit roundoff of float */

/* ---- kernel sets ---------------------------------------------------------------- */

/* The kernel sets this CPU runs, scalar first, into isas[]; returns how many.
 * With `what` set, every set the CPU lacks is reported as a skip (so a path
 * that was not run says so instead of passing silently). */
static int isa_list(int isas[CPU_ISA_MAX + 1], const char *what) {
    int n = 0;
    for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_MAX; isa++) {
        if (cpu_ops_isa_available(isa))
            isas[n++] = isa;
        else if (what)
            tu_skip("%s: the %s kernels were not run (this CPU lacks %s)", what, cpu_ops_isa_name(isa),
                    cpu_ops_isa_requires(isa));
    }
    return n;
}

/* ---- independent reference decoders ------------------------------------- */

static double ref_f16(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    double v;
    if (exp == 31) v = man ? NAN : INFINITY;
    else if (exp == 0) v = ldexp(man, -24);
    else v = ldexp(1024 + man, exp - 25);
    return sign ? -v : v;
}

static double ref_bf16(uint16_t h) {
    int sign = h >> 15, exp = (h >> 7) & 255, man = h & 127;
    double v = exp == 0 ? ldexp(man, -133) : ldexp(128 + man, exp - 134);
    return sign ? -v : v;
}

/* A random finite half with magnitude in [2^(e0-15), 2^(e1-14)). */
static uint16_t rand_half(uint64_t *st, int e0, int e1) {
    uint64_t r = tu_rand_u64(st);
    int e = e0 + (int)(r % (uint64_t)(e1 - e0 + 1));
    return (uint16_t)(((r >> 20) & 1) << 15 | (unsigned)e << 10 | ((r >> 32) & 1023));
}

static int type_size_row(int type, long cols, size_t *row_bytes) {
    switch (type) {
    case GGML_TYPE_F32: *row_bytes = (size_t)cols * 4; return 1;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: *row_bytes = (size_t)cols * 2; return 1;
    case GGML_TYPE_Q8_0: *row_bytes = (size_t)cols / 32 * sizeof(block_q8_0); return cols % 32 == 0;
    case GGML_TYPE_Q4_0: *row_bytes = (size_t)cols / 32 * sizeof(block_q4_0); return cols % 32 == 0;
    }
    int ok = 1;
    *row_bytes = quant_row_bytes(type, (uint64_t)cols, &ok);
    return ok;
}

/* Types whose test weights come from the library's quantizer (random floats
 * quantized, then random bytes stirred into the quants so every code occurs)
 * and whose exact values come from its row dequantizer, itself checked
 * bit by bit in the quant suite. */
static int lib_coded(int type) {
    return type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q5_0 || type == GGML_TYPE_Q5_1 ||
           type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K || type == GGML_TYPE_Q6_K;
}

static void make_lib_weights(int type, long rows, long cols, size_t rb, uint8_t *data, double *wref,
                             uint64_t *st) {
    float *x = malloc(sizeof(float) * (size_t)cols), *dq = malloc(sizeof(float) * (size_t)cols);
    for (long r = 0; r < rows; r++) {
        uint8_t *row = data + (size_t)r * rb;
        for (long c = 0; c < cols; c++) x[c] = tu_rand_uniform(st, -1.0f, 1.0f) * (1.0f + (float)(c % 97) / 20.0f);
        CU_ASSERT_EQUAL_FATAL(quant_quantize_row(type, x, row, (size_t)cols), 0);
        /* Randomize the quant bits (not the f16 scales, which could become
         * inf/nan): every nibble and high bit pattern then occurs, including
         * the extremes the quantizer rarely emits. */
        size_t bsz = quant_type_size(type), nb = rb / bsz;
        for (size_t b = 0; b < nb; b++) {
            uint8_t *blk = row + b * bsz;
            size_t lo = 0, hi = bsz;
            if (type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q5_1) lo = 4;
            else if (type == GGML_TYPE_Q5_0) lo = 2;
            else if (type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K) lo = 16; /* d, dmin, scales */
            else if (type == GGML_TYPE_Q6_K) hi = 192; /* ql, qh; keep scales and d */
            if (tu_rand_u64(st) % 2)
                for (size_t k = lo; k < hi; k++) blk[k] = (uint8_t)tu_rand_u64(st);
            if ((type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K) && tu_rand_u64(st) % 4 == 0)
                for (size_t k = 4; k < 16; k++) blk[k] = (uint8_t)tu_rand_u64(st); /* any 6-bit scales/mins */
            if (type == GGML_TYPE_Q6_K && tu_rand_u64(st) % 4 == 0)
                for (size_t k = 192; k < 208; k++) blk[k] = (uint8_t)tu_rand_u64(st); /* int8 scales incl. -128 */
        }
        quant_dequantize_row(type, row, dq, (size_t)cols);
        for (long c = 0; c < cols; c++) wref[r * cols + c] = dq[c];
    }
    free(x);
    free(dq);
}

/* Fills data with random weights of `type` and wref with their exact values. */
static void make_weights(int type, long rows, long cols, size_t rb, uint8_t *data, double *wref,
                         uint64_t *st) {
    if (lib_coded(type)) {
        make_lib_weights(type, rows, cols, rb, data, wref, st);
        return;
    }
    for (long r = 0; r < rows; r++) {
        uint8_t *row = data + (size_t)r * rb;
        double *wr = wref + r * cols;
        if (type == GGML_TYPE_F32) {
            for (long c = 0; c < cols; c++) {
                float f = tu_rand_uniform(st, -1.0f, 1.0f);
                memcpy(row + c * 4, &f, 4);
                wr[c] = f;
            }
        } else if (type == GGML_TYPE_F16) {
            for (long c = 0; c < cols; c++) {
                uint16_t h = rand_half(st, 10, 15);
                memcpy(row + c * 2, &h, 2);
                wr[c] = ref_f16(h);
            }
        } else if (type == GGML_TYPE_BF16) {
            for (long c = 0; c < cols; c++) {
                uint64_t x = tu_rand_u64(st);
                uint16_t h = (uint16_t)((x & 1) << 15 | (uint16_t)(122 + (x >> 8) % 6) << 7 | ((x >> 16) & 127));
                memcpy(row + c * 2, &h, 2);
                wr[c] = ref_bf16(h);
            }
        } else if (type == GGML_TYPE_Q8_0) {
            for (long b = 0; b < cols / 32; b++) {
                block_q8_0 blk;
                blk.d = rand_half(st, 4, 9);
                for (int j = 0; j < 32; j++) {
                    int q = (int)(tu_rand_u64(st) % 255) - 127;
                    if (tu_rand_u64(st) % 64 == 0) q = -128; /* legal int8, must not saturate */
                    blk.qs[j] = (int8_t)q;
                    wr[b * 32 + j] = q * ref_f16(blk.d);
                }
                memcpy(row + b * sizeof blk, &blk, sizeof blk);
            }
        } else {
            for (long b = 0; b < cols / 32; b++) {
                block_q4_0 blk;
                blk.d = rand_half(st, 6, 11);
                for (int j = 0; j < 16; j++) {
                    blk.qs[j] = (uint8_t)tu_rand_u64(st);
                    wr[b * 32 + j] = ((blk.qs[j] & 15) - 8) * ref_f16(blk.d);
                    wr[b * 32 + 16 + j] = ((blk.qs[j] >> 4) - 8) * ref_f16(blk.d);
                }
                memcpy(row + b * sizeof blk, &blk, sizeof blk);
            }
        }
    }
}

/* The activations as the kernels see them, in double: Q8_0-style blocks of
 * 32 (d = amax/127, q = rne(x * (1/d))) or Q8_K blocks of 256 (the largest
 * magnitude to -127: q = rne(x * (-127/max)), capped at 127, d = 1/that),
 * computed with the same float operations so the q are the kernels' q. */
static void act_dequant(const float *x, long cols, int qb, double *out) {
    for (long b = 0; b < cols / qb; b++) {
        const float *xb = x + b * qb;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < qb; j++)
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        for (int j = 0; j < qb; j++) {
            double v;
            if (qb == 32) {
                float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
                v = nearbyintf(xb[j] * id) * (double)d;
            } else if (amax == 0.0f) {
                v = 0.0;
            } else {
                float is = -127.0f / max, q = nearbyintf(is * xb[j]);
                v = (q > 127.0f ? 127.0f : q) * (double)(1.0f / is);
            }
            out[b * qb + j] = v;
        }
    }
}

typedef struct mm_case {
    int type;
    long rows, cols;
    int n_tok;
} mm_case;

static const int all_types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};

static int is_k(int type) {
    return type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K || type == GGML_TYPE_Q6_K;
}

/* Runs one shape on SIMD/scalar x pool sizes 1/2/3 and checks each result
 * against the double reference; returns nothing, asserts. */
static void check_matmul_case(const mm_case *mc, inf_pool *pools[3], uint64_t *st) {
    size_t rb;
    if (!type_size_row(mc->type, mc->cols, &rb)) return;
    const long rows = mc->rows, cols = mc->cols, xs = cols + 3, ys = rows + 5;
    const int nt = mc->n_tok;
    uint8_t *data = malloc((size_t)rows * rb);
    double *wref = malloc(sizeof(double) * (size_t)(rows * cols));
    float *x = malloc(sizeof(float) * (size_t)(nt * xs));
    float *y[CPU_ISA_MAX + 1][3] = {{0}};
    make_weights(mc->type, rows, cols, rb, data, wref, st);
    for (long i = 0; i < nt * xs; i++) x[i] = tu_rand_uniform(st, -2.0f, 2.0f);
    if (cols >= 64) /* an all-zero activation block (quantization scale 0) */
        for (long c = 32; c < 64; c++) x[c] = 0.0f;
    if (cols >= 512 && nt > 1) /* an all-zero Q8_K block in the second token */
        for (long c = 256; c < 512; c++) x[xs + c] = 0.0f;
    const int quant = mc->type != GGML_TYPE_F32 && mc->type != GGML_TYPE_F16 && mc->type != GGML_TYPE_BF16;
    const int qb = is_k(mc->type) ? 256 : 32; /* activation block */
    cpu_weight w = {.type = mc->type, .rows = rows, .cols = cols, .row_bytes = rb, .data = data};
    cpu_scratch scratch = {0};
    const float sentinel = -12345.5f;

    /* slot 0: scalar; then every SIMD set this CPU runs */
    int isa_prev = cpu_ops_isa(), isa_of[CPU_ISA_MAX + 1];
    const int ns = isa_list(isa_of, NULL);
    for (int s = 0; s < ns; s++) {
        CU_ASSERT_TRUE_FATAL(cpu_ops_set_isa(isa_of[s]) >= 0);
        for (int p = 0; p < 3; p++) {
            y[s][p] = malloc(sizeof(float) * (size_t)(nt * ys));
            for (long i = 0; i < nt * ys; i++) y[s][p][i] = sentinel;
            int rc = cpu_matmul(pools[p], &scratch, &w, x, xs, nt, y[s][p], ys);
            CU_ASSERT_EQUAL_FATAL(rc, 0);
        }
    }
    cpu_ops_set_isa(isa_prev);

    long bad = 0, bad_agree = 0, bad_pad = 0, bad_det = 0;
    long bad_exact = 0;
    double *xq = malloc(sizeof(double) * (size_t)cols);
    for (int t = 0; t < nt; t++) {
        const float *xt = x + t * xs;
        if (quant) act_dequant(xt, cols, qb, xq);
        for (long r = 0; r < rows; r++) {
            const double *wr = wref + r * cols;
            if (quant) {
                /* Against the activations as the kernels quantize them, the
                 * only error left is float rounding of the per-block sums. */
                double e = 0, Sq = 0;
                for (long c = 0; c < cols; c++) {
                    e += wr[c] * xq[c];
                    Sq += fabs(wr[c] * xq[c]);
                }
                double tq = (4.0 * (double)cols / 32 + 2.0 * ((double)cols / 8 + 1) + 16) * U24 * 1.01 * 3 * Sq;
                for (int s = 0; s < ns; s++) {
                    double v = y[s][0][t * ys + r];
                    if (!(fabs(v - e) <= tq + 1e-30) && bad_exact++ < 3)
                        printf("\n  type %d %ldx%ld ntok %d %s: y[%d][%ld] = %.9g, exact-act ref %.9g, tol %.3g",
                               mc->type, rows, cols, nt, cpu_ops_isa_name(isa_of[s]), t, r, v, e, tq);
                }
            }
            double ref = 0, S = 0, qerr = 0;
            for (long c = 0; c < cols; c++) {
                ref += wr[c] * xt[c];
                S += fabs(wr[c] * xt[c]);
            }
            double tol;
            if (quant) {
                /* x is replaced by d*q with d = amax/127 per block of qb values
                 * (32, or 256 for Q8_K), so each |x - d*q| <= d/2 (plus a few
                 * ulp of x/d); the integer dots are exact and the few float
                 * ops per block (up to 4 for the K mins) add (4*nb+8) ulp of
                 * the magnitudes involved. The K-quant mins term subtracts two
                 * large sums, so its operands' magnitude (3x the plain sum S
                 * is a safe cover) bounds the rounding. */
                for (long b = 0; b < cols / qb; b++) {
                    double amax = 0, sw = 0;
                    for (int j = 0; j < qb; j++) {
                        amax = fmax(amax, fabs(xt[b * qb + j]));
                        sw += fabs(wr[b * qb + j]);
                    }
                    qerr += 0.5001 * amax / 127.0 * sw;
                }
                tol = qerr + (4.0 * (double)cols / 32 + 8) * U24 * 1.01 * (3 * S + qerr);
            } else {
                /* 8 lanes of sequential sums: at most 2 roundings per term + hsum */
                tol = (2.0 * ((double)cols / 8 + 1) + 8) * U24 * 1.01 * S;
            }
            for (int s = 0; s < ns; s++) {
                double v = y[s][0][t * ys + r];
                if (!(fabs(v - ref) <= tol + 1e-30)) {
                    if (bad++ < 3)
                        printf("\n  type %d %ldx%ld ntok %d %s: y[%d][%ld] = %.9g, ref %.9g, tol %.3g",
                               mc->type, rows, cols, nt, cpu_ops_isa_name(isa_of[s]), t, r, v, ref, tol);
                }
            }
            /* Every path sees identical quantized activations, so each SIMD
             * path differs from scalar only by float accumulation order. */
            double accum = (2.0 * ((double)cols / 8 + 1) + 4.0 * cols / 32 + 16) * U24 * 1.01 * (3 * S + qerr);
            for (int s = 1; s < ns; s++)
                if (!(fabs((double)y[0][0][t * ys + r] - y[s][0][t * ys + r]) <= 2 * accum + 1e-30)) bad_agree++;
        }
        for (long r = rows; r < ys; r++)
            for (int s = 0; s < ns; s++)
                if (y[s][0][t * ys + r] != sentinel) bad_pad++;
    }
    for (int s = 0; s < ns; s++)
        for (int p = 1; p < 3; p++)
            if (memcmp(y[s][0], y[s][p], sizeof(float) * (size_t)(nt * ys)) != 0) bad_det++;
    /* The VNNI sets (AVX-VNNI, AVX-512) compute the same exact integer block
     * sums as the AVX2 set and then the same float operations in the same
     * order: their results equal AVX2's bit for bit. */
    long bad_same = 0;
    for (int s = 2; s < ns; s++)
        if (isa_of[1] == CPU_ISA_AVX2 && memcmp(y[1][0], y[s][0], sizeof(float) * (size_t)(nt * ys)) != 0) {
            if (bad_same++ < 2)
                printf("\n  type %d %ldx%ld ntok %d: %s differs from avx2", mc->type, rows, cols, nt,
                       cpu_ops_isa_name(isa_of[s]));
        }
    CU_ASSERT_EQUAL(bad_same, 0);
    free(xq);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(bad_exact, 0);
    CU_ASSERT_EQUAL(bad_agree, 0);
    CU_ASSERT_EQUAL(bad_pad, 0);
    CU_ASSERT_EQUAL(bad_det, 0);
    for (int s = 0; s < ns; s++)
        for (int p = 0; p < 3; p++) free(y[s][p]);
    cpu_scratch_free(&scratch);
    free(data);
    free(wref);
    free(x);
}

static void test_matmul_all_types(void) {
    int isas[CPU_ISA_MAX + 1];
    isa_list(isas, "matmul");
    inf_pool *pools[3] = {NULL, NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(inf_pool_create(&pools[1], 2, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(inf_pool_create(&pools[2], 3, NULL), 0);
    static const struct {
        long rows, cols;
        int n_tok;
    } shapes[] = {
        {1, 32, 1},    {5, 64, 3},     {13, 96, 17},  {67, 4096, 1}, {9, 4096, 3},
        {31, 512, 17}, {1000, 256, 5}, {300, 256, 1}, {3, 7, 2},     {19, 172, 3},
        {6, 33, 1},    {11, 8, 4},     {7, 768, 8},   {37, 1280, 3}, {3, 2304, 17},
        {257, 512, 1}, {9, 256, 8},
    };
    uint64_t st = 42;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++) {
            mm_case mc = {all_types[k], shapes[i].rows, shapes[i].cols, shapes[i].n_tok};
            check_matmul_case(&mc, pools, &st);
        }
    inf_pool_free(pools[1]);
    inf_pool_free(pools[2]);
}

/* cpu_matmul_multi (shared activations, one fork-join) equals one
 * cpu_matmul per weight, bit for bit, with a type change inside the list. */
static void test_matmul_multi(void) {
    inf_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(inf_pool_create(&pool, 2, NULL), 0);
    static const int types[] = {GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    static const int ntoks[] = {1, 3, 7};
    uint64_t st = 7;
    const long cols = 512, xs = cols + 5;
    const long rows[4] = {67, 13, 130, 9};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ni = 0; ni < sizeof ntoks / sizeof ntoks[0]; ni++) {
            const int nt = ntoks[ni];
            /* weights 0..2 of types[ti], weight 3 of the next type */
            cpu_weight w[4];
            const cpu_weight *wp[4];
            float *y1[4], *y2[4];
            long yst[4];
            uint8_t *data[4];
            for (int i = 0; i < 4; i++) {
                int type = i < 3 ? types[ti] : types[(ti + 1) % (sizeof types / sizeof types[0])];
                size_t rb;
                CU_ASSERT_TRUE_FATAL(type_size_row(type, cols, &rb));
                data[i] = malloc((size_t)rows[i] * rb);
                double *wref = malloc(sizeof(double) * (size_t)(rows[i] * cols));
                make_weights(type, rows[i], cols, rb, data[i], wref, &st);
                free(wref);
                w[i] = (cpu_weight){.type = type, .rows = rows[i], .cols = cols, .row_bytes = rb, .data = data[i]};
                wp[i] = &w[i];
                yst[i] = rows[i] + 3;
                y1[i] = calloc((size_t)(nt * yst[i]), sizeof(float));
                y2[i] = calloc((size_t)(nt * yst[i]), sizeof(float));
            }
            float *x = malloc(sizeof(float) * (size_t)(nt * xs));
            for (long i = 0; i < nt * xs; i++) x[i] = tu_rand_uniform(&st, -2.0f, 2.0f);
            cpu_scratch sc = {0};
            for (int i = 0; i < 4; i++)
                CU_ASSERT_EQUAL(cpu_matmul(pool, &sc, &w[i], x, xs, nt, y1[i], yst[i]), 0);
            CU_ASSERT_EQUAL(cpu_matmul_multi(pool, &sc, 4, wp, x, xs, nt, y2, yst), 0);
            for (int i = 0; i < 4; i++) {
                int same = 1;
                for (int t = 0; t < nt; t++)
                    for (long r = 0; r < rows[i]; r++)
                        if (memcmp(&y1[i][t * yst[i] + r], &y2[i][t * yst[i] + r], sizeof(float))) same = 0;
                if (!same) fprintf(stderr, "matmul_multi: type %d n_tok %d weight %d differs\n", types[ti], nt, i);
                CU_ASSERT_TRUE(same);
                free(y1[i]);
                free(y2[i]);
                free(data[i]);
            }
            free(x);
            cpu_scratch_free(&sc);
        }
    inf_pool_free(pool);
}

static void test_matmul_errors(void) {
    uint8_t buf[64 * 34] = {0};
    float x[256] = {0}, y[4] = {0};
    cpu_weight w = {.type = GGML_TYPE_Q2_K, .rows = 1, .cols = 256, .row_bytes = 84, .data = buf};
    CU_ASSERT_EQUAL(cpu_matmul(NULL, NULL, &w, x, 256, 1, y, 1), INF_EUNSUPPORTED);
    CU_ASSERT_FALSE(cpu_matmul_supports(GGML_TYPE_Q2_K));
    CU_ASSERT_FALSE(cpu_matmul_supports(GGML_TYPE_Q3_K));
    /* K-quant rows must be whole super-blocks. */
    cpu_weight k = {.type = GGML_TYPE_Q4_K, .rows = 1, .cols = 128, .row_bytes = 72, .data = buf};
    CU_ASSERT_EQUAL(cpu_matmul(NULL, NULL, &k, x, 128, 1, y, 1), INF_EINVAL);
    for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++)
        CU_ASSERT_TRUE(cpu_matmul_supports(all_types[k]));
    /* Q8_0 rows must be whole blocks. */
    cpu_weight q = {.type = GGML_TYPE_Q8_0, .rows = 1, .cols = 48, .row_bytes = 51, .data = buf};
    CU_ASSERT_EQUAL(cpu_matmul(NULL, NULL, &q, x, 48, 1, y, 1), INF_EINVAL);
    /* No scratch given: the call manages its own. */
    q.cols = 64;
    q.row_bytes = 68;
    CU_ASSERT_EQUAL(cpu_matmul(NULL, NULL, &q, x, 64, 1, y, 1), 0);
    CU_ASSERT_EQUAL(y[0], 0.0f);
}

/* ---- row kernels ------------------------------------------------------------- */

static void fill(float *v, long n, uint64_t *st, float lo, float hi) {
    for (long i = 0; i < n; i++) v[i] = tu_rand_uniform(st, lo, hi);
}

static const long row_sizes[] = {1, 7, 8, 9, 33, 64, 1000, 4099};
#define N_ROW_SIZES (sizeof row_sizes / sizeof row_sizes[0])

static void test_dot_axpy(void) {
    uint64_t st = 7;
    float *a = malloc(4099 * sizeof(float)), *b = malloc(4099 * sizeof(float)),
          *y = malloc(4099 * sizeof(float)), *y0 = malloc(4099 * sizeof(float));
    int prev = cpu_ops_isa(), isas[CPU_ISA_MAX + 1], nisa = isa_list(isas, "dot/axpy");
    for (int s = 0; s < nisa; s++) {
        cpu_ops_set_isa(isas[s]);
        CU_ASSERT_EQUAL(cpu_dot_f32(a, b, 0), 0.0f);
        for (size_t k = 0; k < N_ROW_SIZES; k++) {
            long n = row_sizes[k];
            fill(a, n, &st, -1, 1);
            fill(b, n, &st, -1, 1);
            double ref = 0, S = 0;
            for (long i = 0; i < n; i++) {
                ref += (double)a[i] * b[i];
                S += fabs((double)a[i] * b[i]);
            }
            double got = cpu_dot_f32(a, b, n);
            CU_ASSERT(fabs(got - ref) <= (2.0 * (n / 8 + 1) + 8) * U24 * S + 1e-30);
            fill(y0, n, &st, -1, 1);
            memcpy(y, y0, (size_t)n * sizeof(float));
            float alpha = tu_rand_uniform(&st, -3, 3);
            cpu_axpy_f32(y, alpha, a, n);
            long bad = 0;
            for (long i = 0; i < n; i++) {
                double r = y0[i] + (double)alpha * a[i];
                if (fabs(y[i] - r) > 2 * U24 * (fabs(y0[i]) + fabs(alpha * a[i]))) bad++;
            }
            CU_ASSERT_EQUAL(bad, 0);
        }
    }
    cpu_ops_set_isa(prev);
    free(a);
    free(b);
    free(y);
    free(y0);
}

static void test_rmsnorm(void) {
    uint64_t st = 9;
    float *x = malloc(4099 * sizeof(float)), *w = malloc(4099 * sizeof(float)),
          *out = malloc(4099 * sizeof(float));
    int prev = cpu_ops_isa(), isas[CPU_ISA_MAX + 1], nisa = isa_list(isas, "rmsnorm");
    for (int s = 0; s < nisa; s++) {
        cpu_ops_set_isa(isas[s]);
        for (size_t k = 0; k < N_ROW_SIZES; k++) {
            long n = row_sizes[k];
            for (int use_w = 0; use_w < 2; use_w++) {
                fill(x, n, &st, -3, 3);
                fill(w, n, &st, 0.5f, 1.5f);
                double ss = 0;
                for (long i = 0; i < n; i++) ss += (double)x[i] * x[i];
                double scale = 1.0 / sqrt(ss / n + 1e-5);
                long bad = 0;
                /* once out-of-place, once in place (out aliases x) */
                float *dst = use_w ? x : out;
                float *xc = malloc((size_t)n * sizeof(float));
                memcpy(xc, x, (size_t)n * sizeof(float));
                cpu_rmsnorm(dst, x, use_w ? w : NULL, n, 1e-5f);
                for (long i = 0; i < n; i++) {
                    double r = xc[i] * scale * (use_w ? w[i] : 1.0);
                    if (fabs(dst[i] - r) > 8 * U24 * fabs(r) + 1e-30) bad++;
                }
                CU_ASSERT_EQUAL(bad, 0);
                free(xc);
            }
        }
    }
    cpu_ops_set_isa(prev);
    free(x);
    free(w);
    free(out);
}

static void test_softmax(void) {
    uint64_t st = 11;
    float *x = malloc(4099 * sizeof(float));
    double *ref = malloc(4099 * sizeof(double));
    int prev = cpu_ops_isa(), isas[CPU_ISA_MAX + 1], nisa = isa_list(isas, "softmax");
    for (int s = 0; s < nisa; s++) {
        cpu_ops_set_isa(isas[s]);
        for (size_t k = 0; k < N_ROW_SIZES; k++) {
            long n = row_sizes[k];
            fill(x, n, &st, -30, 30);
            for (long i = 0; i < n; i += 3) x[i] = -INFINITY; /* masked (causal) entries */
            if (n == 1) x[0] = 5.0f;
            double mx = -INFINITY, sum = 0;
            for (long i = 0; i < n; i++) mx = fmax(mx, x[i]);
            for (long i = 0; i < n; i++) sum += ref[i] = exp((double)x[i] - mx);
            cpu_softmax(x, n);
            long bad = 0;
            double total = 0;
            for (long i = 0; i < n; i++) {
                double r = ref[i] / sum;
                total += x[i];
                if (!(fabs(x[i] - r) <= 2e-6 * r + 1e-12)) bad++;
                if (i % 3 == 0 && n > 1 && x[i] != 0.0f) bad++;
            }
            CU_ASSERT_EQUAL(bad, 0);
            CU_ASSERT_DOUBLE_EQUAL(total, 1.0, 1e-5);
        }
        /* Everything masked: no NaNs, all weights zero. */
        for (int i = 0; i < 20; i++) x[i] = -INFINITY;
        cpu_softmax(x, 20);
        for (int i = 0; i < 20; i++) CU_ASSERT_EQUAL(x[i], 0.0f);
    }
    cpu_ops_set_isa(prev);
    free(x);
    free(ref);
}

static void test_swiglu(void) {
    uint64_t st = 13;
    float *g = malloc(4099 * sizeof(float)), *u = malloc(4099 * sizeof(float)),
          *out = malloc(4099 * sizeof(float));
    int prev = cpu_ops_isa(), isas[CPU_ISA_MAX + 1], nisa = isa_list(isas, "swiglu");
    for (int s = 0; s < nisa; s++) {
        cpu_ops_set_isa(isas[s]);
        for (size_t k = 0; k < N_ROW_SIZES; k++) {
            long n = row_sizes[k];
            fill(g, n, &st, -20, 20);
            fill(u, n, &st, -2, 2);
            if (n > 8) {
                g[1] = -100.0f; /* exp(-g) overflows float */
                g[2] = 95.0f;
                g[3] = 0.0f;
            }
            float *gc = malloc((size_t)n * sizeof(float));
            memcpy(gc, g, (size_t)n * sizeof(float));
            float *dst = (k & 1) ? g : out; /* alternate in-place (out aliases gate) */
            cpu_swiglu(dst, g, u, n);
            long bad = 0;
            for (long i = 0; i < n; i++) {
                double r = gc[i] / (1.0 + exp(-(double)gc[i])) * u[i];
                if (!(fabs(dst[i] - r) <= 1e-6 * fabs(r) + 1e-30)) bad++;
            }
            CU_ASSERT_EQUAL(bad, 0);
            free(gc);
        }
    }
    cpu_ops_set_isa(prev);
    free(g);
    free(u);
    free(out);
}

static void test_rope(void) {
    uint64_t st = 17;
    const int n_heads = 3, head_dim = 16;
    float x[48], x0[48];
    static const struct {
        int n_rot, pos;
        float base, scale;
    } cfg[] = {{16, 0, 10000, 1}, {16, 7, 10000, 1}, {8, 5000, 10000, 1}, {16, 123, 500000, 0.25f},
               {12, 31, 10000, 1}};
    for (int neox = 0; neox < 2; neox++)
        for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
            fill(x0, 48, &st, -2, 2);
            memcpy(x, x0, sizeof x);
            int n_rot = cfg[c].n_rot, half = n_rot / 2;
            cpu_rope(x, n_heads, head_dim, n_rot, cfg[c].pos, cfg[c].base, cfg[c].scale, neox);
            long bad = 0;
            for (int h = 0; h < n_heads; h++) {
                const float *a = x0 + h * head_dim;
                const float *b = x + h * head_dim;
                for (int i = 0; i < half; i++) {
                    double th = cfg[c].pos * (double)cfg[c].scale * pow(cfg[c].base, -2.0 * i / n_rot);
                    int j0 = neox ? i : 2 * i, j1 = neox ? i + half : 2 * i + 1;
                    double r0 = a[j0] * cos(th) - a[j1] * sin(th);
                    double r1 = a[j0] * sin(th) + a[j1] * cos(th);
                    double tol = 4e-7 * (fabs(a[j0]) + fabs(a[j1]));
                    if (fabs(b[j0] - r0) > tol || fabs(b[j1] - r1) > tol) bad++;
                }
                for (int j = n_rot; j < head_dim; j++)
                    if (b[j] != a[j]) bad++; /* dims past n_rot untouched */
            }
            CU_ASSERT_EQUAL(bad, 0);
        }
}

/* ---- f16 conversions ------------------------------------------------------------ */

static void test_f16_convert(void) {
    uint16_t *h = malloc(65536 * sizeof(uint16_t)), *h2 = malloc(65536 * sizeof(uint16_t));
    float *f = malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    int prev = cpu_ops_isa(), isas[CPU_ISA_MAX + 1], nisa = isa_list(isas, "f16 conversions");
    for (int s = 0; s < nisa; s++) {
        cpu_ops_set_isa(isas[s]);
        cpu_f16_to_f32(h, f, 65536);
        long bad = 0;
        for (int i = 0; i < 65536; i++) {
            double r = ref_f16(h[i]);
            if (isnan(r) ? !isnan(f[i]) : (double)f[i] != r || !signbit(f[i]) != !signbit(r)) bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        cpu_f32_to_f16(f, h2, 65536);
        bad = 0;
        for (int i = 0; i < 65536; i++) {
            if (isnan(f[i]) ? ref_f16(h2[i]) == ref_f16(h2[i]) : h2[i] != h[i]) bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);

        /* Round to nearest, ties to even: midpoints between neighbours and
         * random values, checked against the decoded neighbours. */
        uint64_t st = 23;
        bad = 0;
        for (int i = 0; i < 20000; i++) {
            float v;
            uint16_t lo = (uint16_t)(tu_rand_u64(&st) % 0x7bff); /* finite, below max */
            double a = ref_f16(lo), b = ref_f16((uint16_t)(lo + 1));
            if (i & 1)
                v = (float)((a + b) / 2); /* exact in float */
            else
                v = (float)(a + (b - a) * tu_rand_uniform(&st, 0, 1));
            if (tu_rand_u64(&st) & 1) v = -v;
            uint16_t got;
            cpu_f32_to_f16(&v, &got, 1);
            double dv = fabs((double)v), dl = fabs(dv - a), dh = fabs(dv - b);
            uint16_t want = dl < dh ? lo : dh < dl ? (uint16_t)(lo + 1) : (lo & 1) ? (uint16_t)(lo + 1) : lo;
            if (v < 0) want |= 0x8000;
            if (got != want) bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        float big[4] = {65519.0f, 65520.0f, 1e9f, -70000.0f};
        uint16_t hb[4];
        cpu_f32_to_f16(big, hb, 4);
        CU_ASSERT_EQUAL(hb[0], 0x7bff);
        CU_ASSERT_EQUAL(hb[1], 0x7c00);
        CU_ASSERT_EQUAL(hb[2], 0x7c00);
        CU_ASSERT_EQUAL(hb[3], 0xfc00);
    }
    cpu_ops_set_isa(prev);
    free(h);
    free(h2);
    free(f);
}

static void test_isa_selection(void) {
    int prev = cpu_ops_isa();
    inf_error err = {0};
    CU_ASSERT_EQUAL(cpu_ops_select("scalar", &err), 0);
    CU_ASSERT_EQUAL(cpu_ops_isa(), CPU_ISA_SCALAR);
    CU_ASSERT_EQUAL(cpu_ops_select("auto", &err), 0);
    CU_ASSERT_EQUAL(cpu_ops_isa(), cpu_ops_isa_best());
    CU_ASSERT_EQUAL(cpu_ops_select("sse9", &err), INF_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "cpu isa 'sse9' is unknown (use auto, scalar, avx2, avxvnni or avx512)");
    int has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                 __builtin_cpu_supports("avx2");
    if (has512) {
        CU_ASSERT_EQUAL(cpu_ops_select("avx512", &err), 0);
        CU_ASSERT_STRING_EQUAL(cpu_ops_describe(), "avx512+vnni");
    } else {
        CU_ASSERT_EQUAL(cpu_ops_select("avx512", &err), INF_EUNSUPPORTED);
        char want[128];
        snprintf(want, sizeof want, "cpu isa 'avx512' is not available on this CPU (best available: %s)",
                 cpu_ops_isa_name(cpu_ops_isa_best()));
        CU_ASSERT_STRING_EQUAL(err.msg, want);
        tu_skip("no AVX512 F/BW/VL/VNNI on this CPU: the AVX-512 kernels were not run");
    }
    /* AVX-VNNI: the VEX form, its own cpuid bit (CPUID.(7,1):EAX[4]) */
    unsigned ea = 0, eb = 0, ec = 0, ed = 0;
    int hasvnni = __get_cpuid_count(7, 1, &ea, &eb, &ec, &ed) && (ea & (1u << 4)) &&
                  cpu_ops_isa_available(CPU_ISA_AVX2);
    CU_ASSERT_EQUAL(cpu_ops_isa_available(CPU_ISA_AVXVNNI), hasvnni);
    if (hasvnni) {
        CU_ASSERT_EQUAL(cpu_ops_select("avxvnni", &err), 0);
        CU_ASSERT_STRING_EQUAL(cpu_ops_describe(), "avx2+avxvnni");
    } else {
        CU_ASSERT_EQUAL(cpu_ops_select("avxvnni", &err), INF_EUNSUPPORTED);
        tu_skip("no AVX-VNNI on this CPU: the AVX-VNNI kernels were not run");
    }
    /* auto is the highest set available */
    int best = CPU_ISA_SCALAR;
    for (int i = CPU_ISA_SCALAR; i <= CPU_ISA_MAX; i++)
        if (cpu_ops_isa_available(i)) best = i;
    CU_ASSERT_EQUAL(cpu_ops_isa_best(), best);
    CU_ASSERT_EQUAL(cpu_ops_isa_parse("avxvnni"), CPU_ISA_AVXVNNI);
    CU_ASSERT_EQUAL(cpu_ops_set_isa(prev) >= 0, 1);
}

static void test_simd_selection(void) {
    int prev = cpu_ops_set_simd(0);
    CU_ASSERT_FALSE(cpu_ops_simd_active());
    CU_ASSERT_STRING_EQUAL(cpu_ops_describe(), "scalar");
    cpu_ops_set_simd(1);
    unsigned ea, eb, ec, ed;
    int f16c = __get_cpuid(1, &ea, &eb, &ec, &ed) && (ec & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) {
        CU_ASSERT_TRUE(cpu_ops_simd_active());
    } else {
        tu_skip("no AVX2/FMA/F16C on this CPU: only the scalar path was tested");
    }
    cpu_ops_set_simd(prev);
}

void test_register_cpu_ops(void) {
    CU_pSuite s = CU_add_suite("cpu_ops", NULL, NULL);
    CU_add_test(s, "simd selection", test_simd_selection);
    CU_add_test(s, "isa selection by name", test_isa_selection);
    CU_add_test(s, "matmul every type vs double reference", test_matmul_all_types);
    CU_add_test(s, "matmul of several weights at once", test_matmul_multi);
    CU_add_test(s, "matmul errors", test_matmul_errors);
    CU_add_test(s, "dot and axpy", test_dot_axpy);
    CU_add_test(s, "rmsnorm", test_rmsnorm);
    CU_add_test(s, "softmax", test_softmax);
    CU_add_test(s, "swiglu", test_swiglu);
    CU_add_test(s, "rope normal and neox", test_rope);
    CU_add_test(s, "f16 conversions", test_f16_convert);
}
