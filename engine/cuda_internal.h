/* cuda_internal.h - state of the CUDA backend shared by cuda_backend.c
 * (forward, graphs, KV) and cuda_load.c (weights). Private to those files.
 * Only compiled with INF_HAVE_CUDA. */
#ifndef INF_CUDA_INTERNAL_H
#define INF_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "infk.h"

/* cudaCheck for host code: returns an INF_E* code naming the call. */
int cuda_fail(cudaError_t e, const char *what, inf_error *err);
#define CUDA_CHECK(call, err)                                        \
    do {                                                             \
        cudaError_t e_ = (call);                                     \
        if (e_ != cudaSuccess) return cuda_fail(e_, #call, err);     \
    } while (0)
int cublas_fail(cublasStatus_t s, const char *what, inf_error *err);
#define CUBLAS_CHECK(call, err)                                           \
    do {                                                                  \
        cublasStatus_t s_ = (call);                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(s_, #call, err); \
    } while (0)

typedef struct cuda_layer {
    float *attn_norm, *ffn_norm;
    float *bq, *bk, *bv; /* NULL without biases */
    float *q_norm, *k_norm;      /* [head_dim], NULL without QK-norm */
    float *post_attn, *post_ffn; /* [n_embd], NULL without post norms */
    int swa;                     /* sliding-window layer */
    infk_weight wqkv;    /* [wq; wk; wv] rows concatenated: one product per layer */
    infk_weight wo;
    infk_weight wgu;     /* [w_gate; w_up] */
    infk_weight wd;
} cuda_layer;

#define CUDA_N_BUCKETS 9 /* decode graph batch sizes 1, 2, 4, ..., 256 */

typedef struct cuda_backend {
    backend base;
    const gguf_file *file;
    int dev, n_sm;
    cudaStream_t st;
    cublasHandle_t blas;
    void *blas_ws;
    int act_dt;  /* GEMM input / float weight type: F16, BF16 or F32 */
    int kv_dt;   /* INFK_F16 or INFK_F32 */

    /* weights */
    cuda_layer *layers;
    infk_weight tok_embd, output; /* output may alias tok_embd (tied) */
    float *out_norm;
    float *inv_freq[2]; /* rope per layer kind [global, local] (model_rope_table) */
    float mscale[2];
    void **allocs;
    int n_allocs, cap_allocs;
    size_t weight_bytes;
    double load_seconds;
    int64_t max_quant_cols; /* 0 when no quantized matrix */

    /* KV: per layer [n_kv_blocks + 1][block_size][kv_dim]; the extra block is
     * the write target of padding tokens in decode graphs. */
    void *k_cache, *v_cache;
    size_t kv_layer_elems;
    int trash_block;

    /* activations for up to cap_tokens tokens */
    int cap_tokens;
    float *x, *delta, *qkv, *gu, *logits, *partial;
    void *xb, *att, *act, *deq;
    size_t deq_bytes;
    int max_splits;

    /* batch metadata: one pinned host image, one device copy, fixed regions */
    int32_t *h_meta, *d_meta;
    size_t meta_cap; /* ints */
    size_t blocks_cap;
    int32_t *d_tokens, *d_pos, *d_slot, *d_tab, *d_rows, *d_list, *d_tiles, *d_blocks;
    int32_t *h_mark; /* host scratch, n_seqs marks */
    int h_mark_cap;

    /* decode graphs */
    int use_graphs;
    cudaGraphExec_t graphs[CUDA_N_BUCKETS];
    uint64_t n_graph_launches, n_graph_captures;

    /* last forward's logits rows on the device, not yet sampled (0: none) */
    int last_n_out;
    int pending;   /* a forward with logits == NULL was left running */
    /* device sampling: pinned host and device buffers of smp_cap bytes each */
    void *d_smp, *h_smp;
    size_t smp_cap;
} cuda_backend;

/* Loads every weight onto the device (cuda_load.c). */
int cuda_load_weights(cuda_backend *c, const backend_config *cfg, inf_error *err);

/* cudaMalloc remembered for cuda_free; the error names `what`. */
int cuda_alloc(cuda_backend *c, void **p, size_t bytes, const char *what, inf_error *err);

#endif
