/* cpu_ops_impl.h - internal contract between cpu_ops.c (dispatch, matmul
 * driver, portable scalar kernels) and cpu_ops_avx2.c (AVX2/FMA/F16C kernels).
 * Not part of the public API.
 */
#ifndef INF_CPU_OPS_IMPL_H
#define INF_CPU_OPS_IMPL_H

#include <stddef.h>
#include <stdint.h>

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
} cpu_act;

/* Computes y[t][r] for r in [r0, r0+nr), t in [t0, t0+nt), nr <= rm, nt <= rn
 * of the kernel set. Every output is accumulated in exactly the same order
 * whatever tile it falls in, so results do not depend on the work split. */
typedef void (*cpu_tile_fn)(const cpu_weight *w, int64_t r0, int nr, const cpu_act *a, int t0,
                            int nt, float *y, long y_stride);

typedef struct cpu_kernels {
    const char *name;
    /* Tiles per weight type, indexed by CPU_KT_*; rm x rn: the largest tile
     * for batches (n_tok > 1), rm1 x 1 for one token (decode); rm, rm1 <= 8,
     * rn <= 4. */
    cpu_tile_fn tile[5];
    int rm[5], rn[5], rm1[5];
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
} cpu_kernels;

enum { CPU_KT_F32, CPU_KT_F16, CPU_KT_BF16, CPU_KT_Q8_0, CPU_KT_Q4_0 };

/* The AVX2 set, or NULL when this CPU lacks AVX2/FMA/F16C. */
const cpu_kernels *cpu_kernels_avx2(void);

/* Portable conversions shared by the scalar kernels and the bench. */
float cpu_f16_scalar_to_f32(inf_f16 h);
inf_f16 cpu_f32_to_f16_scalar(float f);

#endif
