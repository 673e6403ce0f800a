/* model_random.h - writes random-weights llama GGUF files, deterministically,
 * so tests and benchmarks get models of any shape (up to 8B) without
 * downloading anything. Files follow the GGUF spec and llama.cpp's tensor
 * naming, so other GGUF readers load them. */
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
    const char *arch;       /* "llama" (default) or "qwen2" */
    float rope_freq_base;
    const char *vocab_from; /* GGUF whose tokenizer.* metadata (and vocab size) is copied; NULL: synthetic */
    uint64_t seed;
} model_random_opts;

/* Fills o with a preset's dims: "tiny" (stories260K-like), "small" (fast test
 * model), "1b" (Llama-3.2-1B shape), "8b" (Llama-3-8B shape). INF_EINVAL if unknown. */
int model_random_preset(model_random_opts *o, const char *preset, inf_error *err);

/* Writes the model to path. Memory use is bounded by the largest tensor. */
int model_random_write(const char *path, const model_random_opts *o, inf_error *err);

#endif
