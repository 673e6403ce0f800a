/* cpu_ops_impl.h - internal contract between cpu_ops.c (dispatch, matmul
 * driver, portable scalar kernels) and cpu_ops_avx2.c (AVX2/FMA/F16C kernels).
 * Not part of the public API.
 */
#ifndef INF_CPU_OPS_IMPL_H
#define INF_CPU_OPS_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu_ops.h"

/* Activations as a tile kernel sees them: f32 rows for float weights, or the
 * Q8_0 quantization (per token: cols int8 values and cols/32 float scales) for
 * quantized weights. Scales are kept in f32 (not f16 as in ggml's block_q8_0)
 * so no conversion is needed in the inner loop. */
typedef struct cpu_act {
    const float *x;
    long x_stride;
    const int8_t *q;
    long q_stride; /* int8 values per token row */
    const float *d;
    const float *m; /* per block: -d * sum(q), lets Q4_0 use unsigned nibbles */
    long d_stride;  /* scales (and m values) per token row */
    /* K-quant weights take Q8_K activations instead (ggml's block_q8_K):
     * d holds one scale per 256 values (q = round(x / d), the largest
     * magnitude mapped to -127), m is unused, and bsums holds the sum of
     * every 16 consecutive q, which the K-quant mins and Q6_K's -32 offset
     * need. */
    const int16_t *bsums;
    long bs_stride; /* int16 sums per token row */
} cpu_act;

/* Computes y[t][r] for r in [r0, r0+nr), t in [t0, t0+nt), nr <= rm, nt <= rn
 * of the kernel set. Every output is accumulated in exactly the same order
 * whatever tile it falls in, so results do not depend on the work split. */
typedef void (*cpu_tile_fn)(const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0,
                            int nt, float *y, long y_stride);

enum {
    CPU_KT_F32,
    CPU_KT_F16,
    CPU_KT_BF16,
    CPU_KT_Q8_0,
    CPU_KT_Q4_0,
    CPU_KT_Q4_1,
    CPU_KT_Q5_0,
    CPU_KT_Q5_1,
    CPU_KT_Q4_K,
    CPU_KT_Q5_K,
    CPU_KT_Q6_K,
    CPU_KT_COUNT
};

/* 1 for the kernel types whose activations are Q8_K (256-blocks). */
static inline int cpu_kt_is_k(int kt) { return kt >= CPU_KT_Q4_K; }

#define CPU_TILE_ARGS \
    const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0, int nt, float *y, long ys

/* qdot_scalar.c: portable tiles for Q4_1 .. Q6_K (the reference the SIMD
 * paths are tested against). */
void cpu_sc_tile_q4_1(CPU_TILE_ARGS);
void cpu_sc_tile_q5_0(CPU_TILE_ARGS);
void cpu_sc_tile_q5_1(CPU_TILE_ARGS);
void cpu_sc_tile_q4_K(CPU_TILE_ARGS);
void cpu_sc_tile_q5_K(CPU_TILE_ARGS);
void cpu_sc_tile_q6_K(CPU_TILE_ARGS);

/* qdot_avx2.c: the same tiles with AVX2 (call only when cpuid has AVX2). */
void cpu_av_tile_q4_1(CPU_TILE_ARGS);
void cpu_av_tile_q5_0(CPU_TILE_ARGS);
void cpu_av_tile_q5_1(CPU_TILE_ARGS);
void cpu_av_tile_q4_K(CPU_TILE_ARGS);
void cpu_av_tile_q5_K(CPU_TILE_ARGS);
void cpu_av_tile_q6_K(CPU_TILE_ARGS);

/* The 8 scales (out[0..7]) and 8 mins (out[8..15]) of a Q4_K/Q5_K
 * super-block from its 12 packed bytes. */
static inline void cpu_unpack_scales_k4(const uint8_t *packed, uint8_t out[16]) {
    uint32_t u[4];
    memcpy(u, packed, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    /* sub-blocks 0..3: low 6 bits of bytes 0..3 (scales) and 4..7 (mins);
     * 4..7: a nibble of bytes 8..11 plus the spare top 2 bits above. */
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    uint32_t mins_lo = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    u[2] = mins_lo;
    u[0] &= m6;
    memcpy(out, u, 16);
}

typedef struct cpu_kernels {
    const char *name;
    /* Tiles per weight type, indexed by CPU_KT_*; rm x rn: the largest tile
     * for batches (n_tok > 1), rm1 x 1 for one token (decode); rm, rm1 <= 8,
     * rn <= 4. */
    cpu_tile_fn tile[CPU_KT_COUNT];
    int rm[CPU_KT_COUNT], rn[CPU_KT_COUNT], rm1[CPU_KT_COUNT];
    /* Quantizes one row of n floats (n % 32 == 0) to int8 + per-32 scales:
     * d = amax/127, q = round-to-nearest-even(x * (1/d)), m = -d * sum(q).
     * Both kernel sets produce bit-identical results. */
    void (*quantize_q8)(const float *x, int8_t *q, float *d, float *m, long n);
    float (*dot)(const float *a, const float *b, long n);
    void (*axpy)(float *y, float a, const float *x, long n);
    void (*rmsnorm)(float *out, const float *x, const float *w, long n, float eps);
    void (*softmax)(float *x, long n);
    void (*swiglu)(float *out, const float *gate, const float *up, long n);
    void (*f16_to_f32)(const inf_f16 *src, float *dst, long n);
    void (*f32_to_f16)(const float *src, inf_f16 *dst, long n);
    /* One attention head (cpu_attn_head). */
    void (*attn_head)(const float *q, int hd, const cpu_kv_rows *k, const cpu_kv_rows *v, int n,
                      float scale, float *scores, float *out, float *tmp);
} cpu_kernels;

/* cpu_attn_head from a set's row kernels (scalar path; SIMD fallback). */
void cpu_attn_head_rows(const cpu_kernels *k, const float *q, int hd, const cpu_kv_rows *kr,
                        const cpu_kv_rows *vr, int n, float scale, float *scores, float *out,
                        float *tmp);
static inline const uint8_t *cpu_kv_at(const cpu_kv_rows *r, int j) {
    size_t slot = (size_t)r->blocks[j / r->block_size] * r->block_size + (size_t)(j % r->block_size);
    return r->base + slot * r->row_stride;
}


/* The AVX2 set, or NULL when this CPU lacks AVX2/FMA/F16C. */
const cpu_kernels *cpu_kernels_avx2(void);
/* The AVX-VNNI set (qdot_avxvnni.c), or NULL when this CPU lacks AVX2 or
 * AVX-VNNI; and whether it has them. */
const cpu_kernels *cpu_kernels_avxvnni(void);
int cpu_avxvnni_supported(void);
/* The AVX-512 set (cpu_ops_avx512.c), or NULL when this CPU lacks AVX2 or
 * AVX512 F/BW/VL/VNNI; and whether it has them. */
const cpu_kernels *cpu_kernels_avx512(void);
int cpu_avx512_supported(void);

/* Portable conversions shared by the scalar kernels and the bench. */
float cpu_f16_scalar_to_f32(inf_f16 h);
inf_f16 cpu_f32_to_f16_scalar(float f);

#endif
