/* backend.h - the compute backend interface shared by the CPU and CUDA engines.
 *
 * One call runs the model over a flat batch of tokens drawn from many
 * sequences. Each token names its sequence; each sequence brings its KV block
 * table (block ids handed out by kvcache.h; the backend owns the K/V storage
 * those ids index). For every token the backend first writes its K/V at its
 * position, then attends causally over positions [0, pos] of its sequence, so
 * a sequence's tokens in one batch must have consecutive positions and the
 * positions before them must already be in the cache.
 */
#ifndef INF_BACKEND_H
#define INF_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "model.h"
#include "status.h"

typedef enum backend_kv_type { BACKEND_KV_F16 = 0, BACKEND_KV_F32 = 1 } backend_kv_type;

typedef struct backend_config {
    int n_threads;          /* CPU: <= 0 means all cores */
    size_t kv_cache_bytes;  /* KV budget; the number of blocks follows from it */
    int kv_block_size;      /* tokens per block (default 16) */
    backend_kv_type kv_type;
    int max_batch_tokens;   /* largest n_tokens a forward call may get (scratch sizing) */
    double gpu_memory_fraction; /* CUDA: share of free memory for the KV cache (0: use kv_cache_bytes) */
    const char *cpu_isa;    /* CPU kernels: "auto" (NULL: the best cpuid allows), "scalar",
                               "avx2", "avxvnni", "avx512"; a set the CPU lacks is refused */
    int kv_prefault;        /* CPU: 1 = touch every page of the KV cache at creation (see
                               engine_config.kv_prefault); the GPU cache is device memory */
    int rope_n_ctx;         /* context per sequence the rope tables are made for: LongRoPE
                               (phi3) takes its long factors when it exceeds the original
                               context, as llama.cpp does; <= 0: the model's context_length */
} backend_config;

/* Defaults: all cores, 256 MiB KV, blocks of 16, F16 KV, 512-token batches. */
backend_config backend_config_default(void);

typedef struct backend_seq {
    const int32_t *blocks; /* block table: block i holds positions [i*bs, (i+1)*bs) */
    int n_blocks;          /* must cover every position written by this batch */
} backend_seq;

typedef struct backend_batch {
    int n_tokens;
    const int32_t *tokens;      /* [n_tokens] token ids */
    const int32_t *positions;   /* [n_tokens] position of each token in its sequence */
    const int32_t *seq_index;   /* [n_tokens] index into seqs */
    const uint8_t *need_logits; /* [n_tokens] 1: produce logits for this token */
    int n_seqs;
    const backend_seq *seqs;
} backend_batch;

typedef struct backend backend;

typedef struct backend_vtbl {
    const char *name;
    int (*forward)(backend *b, const backend_batch *batch, float *logits, inf_error *err);
    void (*free)(backend *b);
} backend_vtbl;

/* Common part every backend embeds first. Read-only for callers. */
struct backend {
    const backend_vtbl *vt;
    model_desc desc;
    int n_kv_blocks;    /* blocks of KV storage available */
    int kv_block_size;
    int max_batch_tokens;
    char device[128];   /* human-readable device description */
    /* 1: the backend can keep a forward's logits where they were computed
     * (backend_forward with logits == NULL) and sample them there
     * (backend_cuda_sample, cuda_backend.h). 0 for the CPU backend. */
    int device_sampling;
};

/* Runs the batch; logits receives n_vocab floats for each token whose
 * need_logits is set, in batch order. Validates token ids, positions and block
 * tables first (INF_EINVAL with a message; nothing is computed then).
 * logits == NULL is allowed only when b->device_sampling is set: the logits
 * rows then stay on the device (nothing is copied, and the call may return
 * before the device is done) for one backend_cuda_sample call, which must
 * come before the next forward. Other backends reject NULL with INF_EINVAL. */
int backend_forward(backend *b, const backend_batch *batch, float *logits, inf_error *err);

/* Frees the backend (weights, KV storage, threads). NULL is a no-op. */
void backend_free(backend *b);

/* Checks a batch against the backend's limits (shared by all backends). */
int backend_validate_batch(const backend *b, const backend_batch *batch, inf_error *err);

/* CPU backend over an open GGUF file, which must outlive the backend (weights
 * are used in place from the mapping where their type allows). */
int backend_cpu_create(backend **out, const gguf_file *f, const backend_config *cfg,
                       inf_error *err);

/* CUDA backend over an open GGUF file (weights are copied to the device; the
 * file must still outlive the backend). The KV cache takes
 * cfg->gpu_memory_fraction of the device memory free after weights and
 * workspace (kv_cache_bytes when that fraction is 0). Fails with
 * INF_EUNSUPPORTED naming the reason when there is no usable device or the
 * program was built without CUDA; INF_ENOMEM naming what did not fit. */
int backend_cuda_create(backend **out, const gguf_file *f, const backend_config *cfg,
                        inf_error *err);

/* CPU backend: bytes of its KV cache (K and V, every layer) in *total and
 * how many of them are resident in RAM now (mincore), the return value. For
 * tests and diagnostics; 0 (and *total 0) for another backend. */
size_t backend_cpu_kv_resident(const backend *b, size_t *total);

/* 1 if a CUDA device the backend can use is present (why gets its name);
 * 0 otherwise, with the reason in why (cap bytes, may be NULL). */
int backend_cuda_available(char *why, size_t cap);

#endif
