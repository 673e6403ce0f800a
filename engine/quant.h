/* quant.h - ggml tensor types: sizes, f16/bf16 conversion, row dequantization
 * to f32 for every supported type, and quantization for the types we write.
 *
 * Block layouts follow ggml (little-endian):
 *   Q4_0 {f16 d; u8 qs[16]}            32 weights, x = (q - 8) * d
 *   Q4_1 {f16 d, m; u8 qs[16]}         x = q * d + m
 *   Q5_0 {f16 d; u8 qh[4]; u8 qs[16]}  x = (q - 16) * d
 *   Q5_1 {f16 d, m; u8 qh[4]; u8 qs[16]}
 *   Q8_0 {f16 d; i8 qs[32]}            x = q * d
 *   Q4_K / Q5_K / Q6_K: 256-weight super-blocks (see quant.c)
 * Within Q4_0/Q4_1/Q5_*: low nibbles hold weights 0..15, high nibbles 16..31.
 */
#ifndef INF_QUANT_H
#define INF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_COUNT_ = 40 /* upper bound on type ids we index tables with */
} ggml_type;

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK_K 256

typedef uint16_t inf_f16;  /* IEEE half, raw bits */
typedef uint16_t inf_bf16; /* bfloat16, raw bits */

typedef struct {
    inf_f16 d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
typedef struct {
    inf_f16 d, m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
typedef struct {
    inf_f16 d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
typedef struct {
    inf_f16 d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
typedef struct {
    inf_f16 d;
    int8_t qs[QK8_0];
} block_q8_0;
typedef struct {
    inf_f16 d, dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
} block_q4_K;
typedef struct {
    inf_f16 d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    inf_f16 d;
} block_q6_K;

/* Static name ("F32", "Q4_K", ...) or "unknown". */
const char *quant_type_name(int type);

/* Parses a type name case-insensitively ("q8_0", "bf16"); -1 if unknown. */
int quant_type_from_name(const char *name);

/* 1 if `type` is one we can read (dequantize). */
int quant_type_supported(int type);

/* Weights per block (1 for float types); 0 for unsupported types. */
size_t quant_block_size(int type);

/* Bytes per block; 0 for unsupported types. */
size_t quant_type_size(int type);

/* Bytes of a row of n weights; sets *ok=0 (and returns 0) if n is not a
 * multiple of the block size or the type is unsupported. */
size_t quant_row_bytes(int type, uint64_t n, int *ok);

/* Dequantizes n weights (n a multiple of the block size) from src to dst. */
void quant_dequantize_row(int type, const void *src, float *dst, size_t n);

/* Quantizes n floats into dst for every supported type (n a multiple of its
 * block size, else INF_EINVAL). The 32-blocks round as ggml's reference
 * quantizers do; the K-quants take each sub-block's range without ggml's
 * scale search (slightly larger error, same format). INF_EUNSUPPORTED for
 * other types. */
int quant_quantize_row(int type, const float *src, void *dst, size_t n);

/* Scalar f16 / bf16 conversions (round to nearest even). */
float quant_f16_to_f32(inf_f16 h);
inf_f16 quant_f32_to_f16(float f);
float quant_bf16_to_f32(inf_bf16 h);
inf_bf16 quant_f32_to_bf16(float f);

#endif
