/* infk.h - host launchers of the CUDA kernels (the kernels/ .cu files), callable from C.
 *
 * Every launcher enqueues its kernel(s) on `st` and returns 0, or a negative
 * INF_E* code with the CUDA error string in err (launch failures are caught
 * with cudaGetLastError after each launch; with -DINF_CUDA_DEBUG the launcher
 * also synchronizes, so an asynchronous fault is reported by the kernel that
 * caused it). Launchers allocate nothing: scratch comes from the caller, which
 * keeps them capturable into CUDA graphs. All pointers are device pointers
 * unless named h_*.
 *
 * Data types (infk_dt): activations are F32 between kernels; the inputs of
 * matrix products are F32 (GEMV path) or the weights' compute type (F16 /
 * BF16, cuBLAS path). Q8_0 / Q4_0 weights use the device layout of
 * infk_qweight (quants of all rows first, then the f16 scales), repacked at
 * load so every quant row starts 16-byte aligned for vector loads.
 */
#ifndef INF_INFK_H
#define INF_INFK_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "sampler_mod.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "status.h"

typedef enum infk_dt {
    INFK_F32 = 0,
    INFK_F16 = 1,
    INFK_BF16 = 2,
    INFK_Q8_0 = 3, /* rows of int8 quants, then rows*(cols/32) f16 scales */
    INFK_Q4_0 = 4  /* rows of cols/2 bytes (ggml nibble order per block), then scales */
} infk_dt;

/* Bytes of one element of a float type (0 for the quant types). */
size_t infk_dt_size(int dt);
const char *infk_dt_name(int dt);

/* A weight matrix on the device: rows x cols, row-major. For quant types,
 * data holds rows*qrow bytes of quants followed by the scales (scales ==
 * (uint8_t*)data + rows*qrow, f16, cols/32 per row). */
typedef struct infk_weight {
    int dt;
    int64_t rows, cols;
    const void *data;
    const void *scales; /* quant types only */
} infk_weight;

/* Bytes a weight takes on the device. */
size_t infk_weight_bytes(int dt, int64_t rows, int64_t cols);

/* ---- embed.cu ------------------------------------------------------------ */

/* x[t] = table[tokens[t]] as f32, for t < n. table: n_vocab rows of n_embd in
 * `table` layout (F32/F16/BF16/Q8_0/Q4_0). */
int infk_embed(const infk_weight *table, const int32_t *tokens, int n, float *x, cudaStream_t st,
               inf_error *err);

/* ---- rmsnorm.cu ------------------------------------------------------------ */

/* For each output row i < n_rows: r = rows ? rows[i] : i;
 *   if delta: x[r] += delta[r] (the residual add, written back to x);
 *   out[i] = x[r] / rms(x[r]) * w, stored as out_dt (F32/F16/BF16).
 * Rows are n floats, contiguous. With rows set this is the logits gather. */
int infk_rmsnorm(float *x, const float *delta, const float *w, const int32_t *rows, int n_rows,
                 int n, float eps, void *out, int out_dt, cudaStream_t st, inf_error *err);

/* ---- rope.cu --------------------------------------------------------------- */

/* Rotates, in place, n_head heads at qkv + t*stride + q_off and n_head_kv heads
 * at qkv + t*stride + k_off (head_dim floats each, first n_rot dims rotated)
 * for t < n, at positions pos[t], theta_i = pos * inv_freq[i] (the per-pair
 * table the CPU backend builds: linear scaling and rope_freqs folded in).
 * neox=0: pairs (2i, 2i+1); neox=1: (i, i + n_rot/2). */
int infk_rope(float *qkv, int n, long stride, long q_off, int n_head, long k_off, int n_head_kv,
              int head_dim, int n_rot, int neox, const int32_t *pos, const float *inv_freq,
              cudaStream_t st, inf_error *err);

/* The same with cos and sin multiplied by mscale (YaRN's magnitude
 * correction, LongRoPE's attention factor: ggml_rope_ext's mscale). */
int infk_rope_ms(float *qkv, int n, long stride, long q_off, int n_head, long k_off, int n_head_kv,
                 int head_dim, int n_rot, int neox, const int32_t *pos, const float *inv_freq,
                 float mscale, cudaStream_t st, inf_error *err);

/* ---- arch.cu (steps only some architectures take) --------------------------- */

/* RMSNorm of every head in place (QK-norm): for t < n, h < n_heads, the
 * head_dim floats at x + t*stride + off + h*head_dim become x / rms(x) * w. */
int infk_head_rmsnorm(float *x, int n, long stride, long off, int n_heads, int head_dim,
                      const float *w, float eps, cudaStream_t st, inf_error *err);

/* out[t][i] = gelu_tanh(gu[t*stride + i]) * gu[t*stride + n_ff + i] (GeGLU),
 * out_dt F32/F16/BF16, rows of n_ff. */
int infk_geglu(const float *gu, long stride, int n_ff, int n, void *out, int out_dt,
               cudaStream_t st, inf_error *err);

/* x[i] *= s for i < count. */
int infk_scale(float *x, size_t count, float s, cudaStream_t st, inf_error *err);

/* x[i] = cap * tanh(x[i] / cap) for i < count (final-logit soft-capping). */
int infk_softcap(float *x, size_t count, float cap, cudaStream_t st, inf_error *err);

/* ---- swiglu.cu ------------------------------------------------------------- */

/* out[t][i] = silu(gu[t*stride + i]) * gu[t*stride + n_ff + i], out_dt
 * (F32/F16/BF16), out rows of n_ff. */
int infk_swiglu(const float *gu, long stride, int n_ff, int n, void *out, int out_dt,
                cudaStream_t st, inf_error *err);

/* y[t*stride + off + i] += bias[i] for i < len, t < n. */
int infk_add_bias(float *y, long stride, long off, int len, const float *bias, int n,
                  cudaStream_t st, inf_error *err);

/* dst[i] = (dt) src[i] for i < count (F32 -> F16/BF16/F32). */
int infk_convert(const float *src, void *dst, int dst_dt, size_t count, cudaStream_t st,
                 inf_error *err);

/* Rows [r0, r0+nr) of a Q8_0/Q4_0 weight dequantized to dst (F16/BF16/F32,
 * nr rows of cols). For the cuBLAS path with quantized weights. */
int infk_dequant_rows(const infk_weight *w, int64_t r0, int64_t nr, void *dst, int dst_dt,
                      cudaStream_t st, inf_error *err);

/* ---- kv_write.cu ------------------------------------------------------------ */

/* For t < n: the K row at qkv + t*stride + k_off and the V row at + v_off
 * (kv_dim floats each) are stored at row slot[t] of k_cache / v_cache (one
 * layer: [n_blocks * block_size][kv_dim] elements of kv_dt F16/F32).
 * slot = block_id * block_size + pos % block_size, as the CPU cache. */
int infk_kv_write(const float *qkv, long stride, long k_off, long v_off, int kv_dim, int n,
                  const int32_t *slot, void *k_cache, void *v_cache, int kv_dt, cudaStream_t st,
                  inf_error *err);

/* ---- attention (attn_decode.cu, attn_prefill.cu) ----------------------------- */

typedef struct infk_attn {
    const float *q;     /* q of token t, head h: q + t*q_stride + h*head_dim */
    long q_stride;
    const void *k_cache, *v_cache; /* this layer's [slots][n_head_kv*head_dim] */
    int kv_dt;                     /* INFK_F16 or INFK_F32 */
    int n_head, n_head_kv, head_dim, block_size;
    const int32_t *pos;     /* [token] position; the token attends over [0, pos] */
    const int32_t *tab_off; /* [token] offset of its sequence's block table in blocks */
    const int32_t *blocks;  /* concatenated block tables */
    float scale;            /* q.k multiplier (1/sqrt(head_dim) for most models) */
    void *out;              /* out of token t: out + t*out_stride elements, heads contiguous */
    long out_stride;
    int out_dt;             /* F32/F16/BF16 */
    int window;             /* > 0: the token at pos sees keys [pos - window + 1, pos] only */
    float softcap;          /* > 0: scores become softcap * tanh(score / softcap) */
} infk_attn;

/* Largest head_dim the attention kernels take. */
#define INFK_ATTN_MAX_HEAD_DIM 256

/* One query token per entry of list (token indices; NULL: 0..n-1), each over
 * its own context, split into n_splits parts (split-K over long contexts,
 * combined by a second kernel). partial: n * n_head * n_splits * (head_dim+2)
 * floats of scratch (unused when n_splits == 1). */
int infk_attn_decode(const infk_attn *a, const int32_t *list, int n, int n_splits,
                     float *partial, cudaStream_t st, inf_error *err);

/* Query tiles of up to INFK_PREFILL_TILE tokens: tile i covers tokens
 * tiles[2i] .. tiles[2i]+tiles[2i+1]-1, all of one sequence at consecutive
 * positions. Flash-style: key tiles gathered through the block table, online
 * softmax, causal by position. */
#define INFK_PREFILL_TILE 16
int infk_attn_prefill(const infk_attn *a, const int32_t *tiles, int n_tiles, cudaStream_t st,
                      inf_error *err);

/* Splits infk_attn_decode would like for n tokens on a device with n_sm
 * multiprocessors (1..32): enough blocks to fill the machine at batch 1. */
int infk_attn_decode_splits(int n, int n_head_kv, int n_sm);

/* ---- gemv.cu --------------------------------------------------------------- */

/* Most tokens one infk_gemv call takes (more: call it per group, or cuBLAS). */
#define INFK_GEMV_MAX_TOKENS 8

/* y[t*y_stride + r] = sum_c W[r][c] * x[t*x_stride + c] for t < n (1..8),
 * r < rows. x is F32. One warp per row, 16-byte loads of W, every weight byte
 * read once for all n tokens: the batch-1 decode path, bandwidth-bound. */
int infk_gemv(const infk_weight *w, const float *x, long x_stride, int n, float *y, long y_stride,
              cudaStream_t st, inf_error *err);

/* ---- sample.cu ------------------------------------------------------------- */

/* One row's sampling parameters (see sampler.h for the semantics). */
typedef struct infk_sample_params {
    float temperature; /* < 1e-5: greedy */
    int top_k;         /* <= 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    float repetition_penalty, presence_penalty, frequency_penalty;
    double u;          /* the uniform draw in [0, 1) the host RNG made */
    int want_logprob;  /* 1: logprob (raw log-softmax) of the sampled token */
    int n_top, top_off; /* 0..20 most likely raw tokens, written at top_off */
    int mod_off, n_mod; /* this row's entries in the modifier list */
    int mask_off;       /* -1: no token mask; else the row's first word in masks */
} infk_sample_params;

/* One logit modifier (sampler_mod.h: applied with sampler_mod_apply, as the
 * CPU sampler does). Each token at most once per row. */
typedef struct infk_sample_mod {
    sampler_mod m;
    float raw; /* out: the logit before the modifiers (for the raw logprob) */
} infk_sample_mod;

/* Samples one token per row of logits [n_rows][n_vocab] (modified in place by
 * the modifiers), exactly as the CPU sampler: the kept set is the prefix of
 * the order "larger logit first, ties to the lower id" that top_k, top_p and
 * min_p leave (ties at a cut keep the lower ids), and the draw walks it in id
 * order. tokens[i] and logprobs[i] (NAN unless want_logprob) get the result;
 * with n_top > 0, top_ids / top_lps [top_off, top_off + n_top) get the most
 * likely tokens of the RAW row (before the modifiers), best first, ties by
 * id, with their raw logprobs. status[i]: 0 ok, 1 a logit was NaN/+inf,
 * 2 every token masked. */
int infk_sample(float *logits, int n_rows, int n_vocab, const infk_sample_params *params,
                infk_sample_mod *mods, const uint32_t *masks, int32_t *tokens, float *logprobs, int32_t *status,
                int32_t *top_ids, float *top_lps, cudaStream_t st, inf_error *err);

/* ---- membw.cu ------------------------------------------------------------- */

/* Reads `bytes` (a multiple of 16) from src with 16-byte loads and writes one
 * checksum word to sink: a pure-read kernel for measuring bandwidth. */
int infk_read_bw(const void *src, size_t bytes, uint32_t *sink, cudaStream_t st, inf_error *err);

#ifdef __cplusplus
}
#endif

#endif
