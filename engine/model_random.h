/* model_random.h - writes random-weights GGUF files, deterministically, so
 * tests and benchmarks get models of any shape (up to 8B) and of every
 * architecture model.h supports without downloading anything. Files follow
 * the GGUF spec and name keys and tensors as llama.cpp's converter does for
 * each architecture (convert_hf_to_gguf.py), so llama.cpp loads them. */
#ifndef INF_MODEL_RANDOM_H
#define INF_MODEL_RANDOM_H

#include <stdint.h>

#include "status.h"

typedef struct model_random_opts {
    uint32_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    int type;               /* ggml_type of the matrices: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
                               Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (n_embd, n_ff whole blocks) */
    int tied;               /* 1: no output.weight */
    int qkv_bias;           /* 1: add attn_{q,k,v}.bias (qwen2 style) */
    const char *arch;       /* "llama" (default), "qwen2", "qwen3", "gemma2", "gemma3", "phi3";
                               model_random_arch sets an architecture with its defaults */
    float rope_freq_base;
    const char *vocab_from; /* GGUF whose tokenizer.* metadata (and vocab size) is copied; NULL: synthetic */
    uint64_t seed;
} model_random_opts;

/* Architecture extras, apart from model_random_opts so that its positional
 * initializers stay valid. model_random_arch_defaults gives an
 * architecture's values; 0 / NULL: none. */
typedef struct model_random_arch_opts {
    uint32_t head_dim;      /* per-head width; 0: n_embd / n_head */
    uint32_t n_swa;         /* gemma2/3: attention.sliding_window */
    float attn_softcap, final_softcap; /* gemma2: attn_/final_logit_softcapping */
    const char *rope_scaling; /* NULL, "linear" or "yarn" (rope.scaling.type) */
    float rope_scaling_factor;
    uint32_t rope_orig_ctx; /* rope.scaling.original_context_length (yarn, phi3) */
    int longrope;           /* phi3: rope_factors_long/short tensors and rope.scaling.attn_factor */
} model_random_arch_opts;

/* Fills o with a preset's dims: "tiny" (stories260K-like), "small" (fast test
 * model), "1b" (Llama-3.2-1B shape), "8b" (Llama-3-8B shape). INF_EINVAL if unknown. */
int model_random_preset(model_random_opts *o, const char *preset, inf_error *err);

/* Sets o->arch to arch with that architecture's usual settings (qwen2:
 * biases; gemma2, gemma3: tied; gemma3: rope base 1e6), keeping the dims,
 * and *a to model_random_arch_defaults. INF_EINVAL if unknown. */
int model_random_arch(model_random_opts *o, model_random_arch_opts *a, const char *arch,
                      inf_error *err);

/* The extras o->arch has by default: gemma2 window 4096 and soft-caps
 * 50 / 30; gemma3 window 512; phi3 LongRoPE with an original context of
 * n_ctx / 4; none for the others. */
void model_random_arch_defaults(const model_random_opts *o, model_random_arch_opts *a);

/* model_random_write with explicit extras (a NULL: the defaults). */
int model_random_write_arch(const char *path, const model_random_opts *o,
                            const model_random_arch_opts *a, inf_error *err);

/* Writes the model to path, with o->arch's default extras. Memory use is bounded by the largest tensor. */
int model_random_write(const char *path, const model_random_opts *o, inf_error *err);

#endif
