/* cpu_ops.h - CPU compute kernels for the forward pass.
 *
 * Matrix products keep weights in their GGUF type (F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) and use fused dequantize-dot kernels;
 * for quantized weights the activations are first quantized per block as
 * llama.cpp does (Q8_0-style blocks of 32 for the 32-block types, Q8_K blocks
 * of 256 with per-16 sums for the K-quants). The kernel set (scalar, AVX2,
 * AVX-VNNI, AVX-512 VNNI) is chosen at run time from cpuid; all give the same results
 * within rounding. Batched products are tiled so each weight row block is read once
 * per batch, not once per token.
 */
#ifndef INF_CPU_OPS_H
#define INF_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"
#include "status.h"
#include "threadpool.h"

/* A 2-D weight matrix: `rows` output features, each a row of `cols` inputs of
 * `type`, rows contiguous at data + r*row_bytes. Points into the mmap (or into
 * a buffer the backend owns). */
typedef struct cpu_weight {
    int type; /* ggml_type: one cpu_matmul_supports */
    int64_t rows, cols;
    size_t row_bytes;
    const void *data;
} cpu_weight;

/* 1 if matmul supports this weight type directly. */
int cpu_matmul_supports(int type);

/* Kernel sets, lowest first. The best one cpuid allows is chosen once, at
 * first use; a lower one can be forced. */
enum {
    CPU_ISA_AUTO = -1,
    CPU_ISA_SCALAR = 0,
    CPU_ISA_AVX2 = 1,    /* AVX2 + FMA + F16C */
    CPU_ISA_AVXVNNI = 2, /* the AVX2 set with AVX-VNNI integer dots (256-bit) */
    CPU_ISA_AVX512 = 3,  /* AVX512 F/BW/VL + AVX512-VNNI, plus the AVX2 set */
    CPU_ISA_MAX = CPU_ISA_AVX512
};

/* The best set this CPU (and OS) runs. */
int cpu_ops_isa_best(void);
/* 1 if this CPU runs set `isa` (CPU_ISA_SCALAR .. CPU_ISA_MAX). */
int cpu_ops_isa_available(int isa);
/* What set `isa` needs from the CPU, for messages ("AVX512 F/BW/VL/VNNI"). */
const char *cpu_ops_isa_requires(int isa);
/* The set in use. */
int cpu_ops_isa(void);
/* "scalar", "avx2", "avxvnni", "avx512". */
const char *cpu_ops_isa_name(int isa);
/* "auto" (or NULL / "") -> CPU_ISA_AUTO, a set's name -> its id, else -2. */
int cpu_ops_isa_parse(const char *name);

/* Process-wide selection by name ("auto", "scalar", "avx2", "avxvnni",
 * "avx512"):
 * INF_EINVAL for an unknown name, INF_EUNSUPPORTED (naming the best
 * available) for a set this CPU lacks. Not thread-safe against running
 * kernels: call before work starts (engine creation does). */
int cpu_ops_select(const char *name, inf_error *err);

/* Selects by id (CPU_ISA_AUTO: the best); returns the previous id, or -1
 * (nothing changed) if this CPU lacks that set. For tests and benchmarks. */
int cpu_ops_set_isa(int isa);

/* Older switch: 1 = best available SIMD set, 0 = portable scalar. Returns
 * the previous setting (1 if any SIMD set was in use). */
int cpu_ops_set_simd(int enable);
/* 1 if the SIMD kernels are in use. */
int cpu_ops_simd_active(void);
/* Short description of the selected kernels, e.g. "avx2+fma+f16c",
 * "avx2+avxvnni", "avx512+vnni", "scalar". */
const char *cpu_ops_describe(void);

/* Scratch memory the matmul needs for activation quantization; owned by the caller. */
typedef struct cpu_scratch {
    void *buf;
    size_t cap;
} cpu_scratch;
void cpu_scratch_free(cpu_scratch *s);

/* y[t][r] = sum_c w[r][c] * x[t][c] for t < n_tok, r < w->rows.
 * x: n_tok rows of w->cols floats (stride x_stride floats), y: n_tok rows of
 * w->rows floats (stride y_stride). Splits work across the pool. Returns 0, or
 * INF_EUNSUPPORTED / INF_ENOMEM. */
int cpu_matmul(inf_pool *pool, cpu_scratch *scratch, const cpu_weight *w, const float *x,
               long x_stride, int n_tok, float *y, long y_stride);

/* The same for nw weights (nw <= 4 share one pass) that all read x (same
 * cols): y[i] = w[i] x, strides y_stride[i]. Consecutive weights of the same
 * type share one activation quantization and one fork-join; others run as
 * separate cpu_matmul calls. Results equal cpu_matmul's for each weight. */
int cpu_matmul_multi(inf_pool *pool, cpu_scratch *scratch, int nw, const cpu_weight *const *w,
                     const float *x, long x_stride, int n_tok, float *const *y, const long *y_stride);

/* Rows of a paged K or V cache for one head: position j's hd values (F32,
 * or F16 if f16) are at base + (blocks[j / block_size] * block_size +
 * j % block_size) * row_stride bytes. */
typedef struct cpu_kv_rows {
    const uint8_t *base;
    size_t row_stride;
    const int32_t *blocks;
    int block_size;
    int f16;
} cpu_kv_rows;

/* One head of attention over positions [0, n): out = softmax(q.K^T * scale) V.
 * scores: n floats of scratch, tmp: hd floats of scratch. */
void cpu_attn_head(const float *q, int hd, const cpu_kv_rows *k, const cpu_kv_rows *v, int n,
                   float scale, float *scores, float *out, float *tmp);

/* Single-threaded row kernels. */
float cpu_dot_f32(const float *a, const float *b, long n);
void cpu_axpy_f32(float *y, float a, const float *x, long n); /* y += a*x */
/* out = x / rms(x) * w (w may be NULL: no scaling). out may alias x. */
void cpu_rmsnorm(float *out, const float *x, const float *w, long n, float eps);
/* In-place softmax over n values; returns nothing, handles -INFINITY entries. */
void cpu_softmax(float *x, long n);
/* out[i] = silu(gate[i]) * up[i] (out may alias gate). */
void cpu_swiglu(float *out, const float *gate, const float *up, long n);

/* Rotary embedding in place on a vector of n_heads heads of head_dim values,
 * rotating the first n_rot dims of each head, at position pos.
 * neox=0: adjacent pairs (x[2i], x[2i+1]) ("normal", llama);
 * neox=1: halves (x[i], x[i + n_rot/2]) (GPT-NeoX, qwen2).
 * theta_i = pos * freq_scale * base^(-2i/n_rot). */
void cpu_rope(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
              float freq_scale, int neox);

/* f16 <-> f32 row conversions (F16C when available). */
void cpu_f16_to_f32(const inf_f16 *src, float *dst, long n);
void cpu_f32_to_f16(const float *src, inf_f16 *dst, long n);

#endif
