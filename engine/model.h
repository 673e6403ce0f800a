/* model.h - llama-family model description read from GGUF metadata, and the
 * tensor-shape checks every backend relies on.
 *
 * Supported architectures (keys and tensor names as llama.cpp's converter
 * writes them; docs/models.md lists them): "llama" (also Mistral-style
 * models, which GGUF stores as llama), "mistral", "qwen2" (NeoX rope, q/k/v
 * biases, usually tied output), "qwen3" (per-head RMSNorm on q and k before
 * rope), "gemma2" and "gemma3" (scaled embeddings, GeGLU, post-attention and
 * post-FFN norms, sliding-window layers; gemma2 soft-caps attention and final
 * logits; gemma3 has QK-norm and its own rope base on local layers) and
 * "phi3" (fused qkv and gate-up tensors, LongRoPE factors). Anything else is
 * rejected with a message naming it.
 *
 * Everything here is what the GGUF means as llama.cpp reads it: gemma norm
 * weights are stored as 1 + w by the converter, so every norm is a plain
 * RMSNorm times the stored weight; gemma's query_pre_attn_scalar is not in
 * GGUF and follows llama.cpp's rule (1/sqrt(head_dim), or 1/sqrt(n_embd /
 * n_head) for the 27B layer counts); phi3's sliding_window key is ignored, as
 * llama.cpp does.
 */
#ifndef INF_MODEL_H
#define INF_MODEL_H

#include <stdint.h>

#include "gguf.h"
#include "status.h"

typedef enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE = 0,
    MODEL_ROPE_SCALING_LINEAR = 1,
    MODEL_ROPE_SCALING_YARN = 2
} model_rope_scaling;

typedef enum model_arch {
    MODEL_ARCH_LLAMA = 0, /* also "mistral" */
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_QWEN3,
    MODEL_ARCH_GEMMA2,
    MODEL_ARCH_GEMMA3,
    MODEL_ARCH_PHI3
} model_arch;

/* Rope of one layer kind (global or sliding-window), as llama.cpp's
 * ggml_rope_ext computes it: theta_i = pos * freq[i], and both cos and sin
 * multiplied by mscale. YaRN's per-dimension interpolation/extrapolation mix
 * is constant per dimension, so it folds into freq; its magnitude correction
 * and LongRoPE's attention factor are mscale. */
typedef struct model_rope {
    double freq_base, freq_scale; /* freq_scale = 1 / scaling factor (1: none) */
    double mscale;
} model_rope;

typedef struct model_desc {
    char arch[32];
    model_arch arch_id;
    char name[128];
    uint32_t n_layer, n_embd, n_head, n_head_kv, n_ff;
    uint32_t head_dim; /* per-head q/k/v width (attention.key_length or n_embd/n_head) */
    uint32_t n_rot;    /* rotated dims per head (rope.dimension_count or head_dim) */
    uint32_t n_vocab, n_ctx_train;
    float rms_eps;
    int rope_neox; /* 0: adjacent pairs (llama), 1: half split (qwen2) */
    float rope_freq_base;
    model_rope_scaling rope_scaling;
    float rope_scaling_factor;     /* 1 when none */
    uint32_t rope_orig_ctx;        /* yarn: original context length */
    int has_rope_freq_factors;     /* rope_freqs.weight present (llama 3.1 style) */
    int tied_embeddings;           /* no output.weight: reuse token_embd.weight */
    int has_qkv_bias;              /* blk.N.attn_{q,k,v}.bias present */
    /* architecture features (all 0 / 1.0 for llama) */
    int has_qk_norm;               /* blk.N.attn_{q,k}_norm.weight [head_dim] (qwen3, gemma3) */
    int has_post_norms;            /* blk.N.post_attention_norm / post_ffw_norm (gemma2/3) */
    int fused_qkv;                 /* blk.N.attn_qkv.weight [n_embd, q + 2 kv] (phi3) */
    int fused_gate_up;             /* blk.N.ffn_up.weight holds [gate; up], 2 n_ff rows (phi3) */
    int ffn_gelu;                  /* GeGLU, tanh-approximated GELU (gemma) instead of SwiGLU */
    float embd_scale;              /* embeddings times this (sqrt(n_embd) for gemma), else 1 */
    float attn_scale;              /* q.k multiplier before soft-capping and softmax */
    float attn_softcap;            /* scores = c * tanh(scores / c); 0: none (gemma2) */
    float final_softcap;           /* the same on the logits; 0: none (gemma2) */
    uint32_t n_swa;                /* sliding window: a local layer's query at p sees keys
                                      [p - n_swa + 1, p]; 0: no local layers */
    uint32_t swa_pattern;          /* layer l is local iff l % swa_pattern < swa_pattern - 1 */
    float rope_freq_base_swa;      /* local layers' rope base (gemma3: 10000) */
    float rope_attn_factor;        /* <arch>.rope.scaling.attn_factor (phi3 LongRoPE), else 1 */
    int has_longrope;              /* rope_factors_long / rope_factors_short tensors (phi3) */
    float yarn_beta_fast, yarn_beta_slow; /* YaRN ramp bounds (llama.cpp defaults 32, 1) */
    uint64_t n_params;             /* elements of all tensors */
    uint64_t n_bytes;              /* bytes of all tensor data */
} model_desc;

/* Fills d from f's metadata and tensor list, checking that every tensor the
 * forward pass needs exists with the right shape. Errors name the missing or
 * malformed key/tensor. */
int model_desc_from_gguf(model_desc *d, const gguf_file *f, inf_error *err);

/* Finds a tensor "blk.<layer>.<suffix>" (layer < 0: just <suffix>); NULL if absent. */
const gguf_tensor *model_tensor(const gguf_file *f, int layer, const char *suffix);

/* 1 if layer l uses the sliding window (see n_swa, swa_pattern). */
int model_layer_is_swa(const model_desc *d, int l);

/* Rope tables for global (swa = 0) or local (swa = 1) layers, for a context
 * of n_ctx tokens per sequence (phi3 picks rope_factors_long when n_ctx
 * exceeds the original context, as llama.cpp does; n_ctx <= 0 means the
 * model's context_length): freq gets n_rot/2 per-pair frequencies with
 * scaling, YaRN ramp and rope_freqs / LongRoPE factors applied, *r the
 * layer kind's parameters. freq is caller-owned (n_rot/2 doubles). */
int model_rope_table(const model_desc *d, const gguf_file *f, int swa, int n_ctx, double *freq,
                     model_rope *r, inf_error *err);

/* Dominant weight type of the model's matrices (the type of blk.0.attn_q.weight). */
int model_weight_type(const gguf_file *f);

#endif
