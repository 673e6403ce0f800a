/* model.h - llama-family model description read from GGUF metadata, and the
 * tensor-shape checks every backend relies on.
 *
 * Supported architectures: "llama" (also Mistral-style models, which GGUF
 * stores as llama), "mistral", and "qwen2" (NeoX rope, q/k/v biases, usually
 * tied output). Anything else is rejected with a message naming it.
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

typedef struct model_desc {
    char arch[32];
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
    uint64_t n_params;             /* elements of all tensors */
    uint64_t n_bytes;              /* bytes of all tensor data */
} model_desc;

/* Fills d from f's metadata and tensor list, checking that every tensor the
 * forward pass needs exists with the right shape. Errors name the missing or
 * malformed key/tensor. */
int model_desc_from_gguf(model_desc *d, const gguf_file *f, inf_error *err);

/* Finds a tensor "blk.<layer>.<suffix>" (layer < 0: just <suffix>); NULL if absent. */
const gguf_tensor *model_tensor(const gguf_file *f, int layer, const char *suffix);

/* Dominant weight type of the model's matrices (the type of blk.0.attn_q.weight). */
int model_weight_type(const gguf_file *f);

#endif
