/* cuda_backend.c - the llama-family forward pass on an NVIDIA GPU over a
 * paged KV cache (implements backend.h; kernels in kernels/, launchers in
 * kernels/infk.h, weights loaded by cuda_load.c).
 *
 * One forward: the batch metadata (tokens, positions, cache slots, block
 * tables, logits rows, attention work lists) goes up in one pinned copy; the
 * layers run as kernels on one stream; only the logits rows that were asked
 * for come back. Matrix products: the GEMV kernels for up to 8 tokens (decode;
 * weight-bandwidth bound, every type incl. fused Q8_0/Q4_0 dequantization),
 * cuBLAS GemmEx (F16/BF16 in, F32 accumulate and out) above that, with Q8_0 /
 * Q4_0 matrices dequantized chunk by chunk into a scratch first. Pure decode
 * steps (one token per sequence) run as a CUDA graph captured once per batch
 * bucket (1, 2, 4, ... 256 tokens, padded with tokens that write to a hidden
 * cache block), so small models are not bound by launch overhead.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_backend.h"

#ifndef INF_HAVE_CUDA

int backend_cuda_available(char *why, size_t cap) {
    if (why && cap) snprintf(why, cap, "built without CUDA (nvcc was not found or CUDA=0)");
    return 0;
}

int backend_cuda_create(backend **out, const gguf_file *f, const backend_config *cfg,
                        inf_error *err) {
    (void)f;
    (void)cfg;
    *out = NULL;
    return inf_error_set(err, INF_EUNSUPPORTED,
                         "the CUDA backend is not available: built without CUDA");
}

int backend_cuda_stats_get(const backend *b, backend_cuda_stats *st, inf_error *err) {
    (void)b;
    (void)st;
    return inf_error_set(err, INF_EUNSUPPORTED, "built without CUDA");
}

int backend_cuda_set_graphs(backend *b, int enable, inf_error *err) {
    (void)b;
    (void)enable;
    return inf_error_set(err, INF_EUNSUPPORTED, "built without CUDA");
}

int backend_cuda_sample(backend *b, const backend_cuda_sample_row *rows, int n,
                        const backend_cuda_sample_mod *mods, int n_mods,
                        const backend_cuda_sample_out *out, inf_error *err) {
    (void)b, (void)rows, (void)n, (void)mods, (void)n_mods, (void)out;
    return inf_error_set(err, INF_EUNSUPPORTED, "built without CUDA");
}

int backend_cuda_sample_masked(backend *b, const backend_cuda_sample_row *rows, int n,
                               const backend_cuda_sample_mod *mods, int n_mods, const uint32_t *const *masks,
                               const backend_cuda_sample_out *out, inf_error *err) {
    (void)b, (void)rows, (void)n, (void)mods, (void)n_mods, (void)masks, (void)out;
    return inf_error_set(err, INF_EUNSUPPORTED, "built without CUDA");
}

#else /* INF_HAVE_CUDA */

#include "cuda_internal.h"
#include "kvcache.h"

#define GEMV_MAX INFK_GEMV_MAX_TOKENS
#define GRAPH_MAX 256
#define BLAS_WS_BYTES ((size_t)32 << 20)
#define DEQ_BYTES ((size_t)64 << 20)

static const int g_buckets[CUDA_N_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

int cuda_fail(cudaError_t e, const char *what, inf_error *err) {
    return inf_error_set(err, e == cudaErrorMemoryAllocation ? INF_ENOMEM : INF_EIO,
                         "CUDA: %s failed: %s (%s)", what, cudaGetErrorString(e),
                         cudaGetErrorName(e));
}

int cublas_fail(cublasStatus_t s, const char *what, inf_error *err) {
    return inf_error_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? INF_ENOMEM : INF_EIO,
                         "cuBLAS: %s failed: %s", what, cublasGetStatusString(s));
}

int backend_cuda_available(char *why, size_t cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why && cap)
            snprintf(why, cap, "no CUDA device: %s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found 0 devices");
        cudaGetLastError();
        return 0;
    }
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        if (why && cap) snprintf(why, cap, "no CUDA device: cannot query device 0");
        return 0;
    }
    if (p.major < 8) {
        if (why && cap)
            snprintf(why, cap, "CUDA device 0 (%s) is sm_%d%d; the kernels are built for sm_80 and sm_90",
                     p.name, p.major, p.minor);
        return 0;
    }
    if (why && cap) snprintf(why, cap, "%s (sm_%d%d)", p.name, p.major, p.minor);
    return 1;
}

/* ---- lifetime ------------------------------------------------------------ */

static void free_graphs(cuda_backend *c) {
    for (int i = 0; i < CUDA_N_BUCKETS; i++)
        if (c->graphs[i]) {
            cudaGraphExecDestroy(c->graphs[i]);
            c->graphs[i] = NULL;
        }
}

static void cuda_free(backend *b) {
    cuda_backend *c = (cuda_backend *)b;
    if (c->st) cudaStreamSynchronize(c->st);
    free_graphs(c);
    for (int i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i]);
    free(c->allocs);
    cudaFree(c->d_meta);
    cudaFree(c->d_smp);
    if (c->h_smp) cudaFreeHost(c->h_smp);
    if (c->h_meta) cudaFreeHost(c->h_meta);
    if (c->blas) cublasDestroy(c->blas);
    if (c->st) cudaStreamDestroy(c->st);
    free(c->layers);
    free(c->h_mark);
    free(c);
}

/* (Re)allocates the metadata image for blocks_cap block-table entries; the
 * device addresses change, so captured graphs are dropped. */
static int meta_alloc(cuda_backend *c, size_t blocks_cap, inf_error *err) {
    size_t T = (size_t)c->cap_tokens;
    size_t need = T * 8 + blocks_cap; /* tokens pos slot tab rows list tiles(2) + blocks */
    free_graphs(c);
    if (c->h_meta) cudaFreeHost(c->h_meta);
    cudaFree(c->d_meta);
    c->h_meta = NULL;
    c->d_meta = NULL;
    CUDA_CHECK(cudaHostAlloc((void **)&c->h_meta, need * sizeof(int32_t), cudaHostAllocDefault), err);
    CUDA_CHECK(cudaMalloc((void **)&c->d_meta, need * sizeof(int32_t)), err);
    c->meta_cap = need;
    c->blocks_cap = blocks_cap;
    int32_t *d = c->d_meta;
    c->d_tokens = d;
    c->d_pos = d + T;
    c->d_slot = d + 2 * T;
    c->d_tab = d + 3 * T;
    c->d_rows = d + 4 * T;
    c->d_list = d + 5 * T;
    c->d_tiles = d + 6 * T;
    c->d_blocks = d + 8 * T;
    return 0;
}

static int alloc_work(cuda_backend *c, const backend_config *cfg, inf_error *err) {
    const model_desc *d = &c->base.desc;
    size_t T = (size_t)c->cap_tokens;
    size_t E = d->n_embd, hd = d->head_dim, Q = d->n_head * hd, KV = d->n_head_kv * hd;
    size_t F = d->n_ff, V = d->n_vocab, wide = E > Q ? E : Q;
    int rc;
    c->max_splits = 32;
    size_t part_rows = T + 2 * (size_t)c->n_sm + 32;
    if ((rc = cuda_alloc(c, (void **)&c->x, T * E * 4, "activations (x)", err)) ||
        (rc = cuda_alloc(c, (void **)&c->delta, T * E * 4, "activations (residual)", err)) ||
        (rc = cuda_alloc(c, (void **)&c->qkv, T * (Q + 2 * KV) * 4, "activations (qkv)", err)) ||
        (rc = cuda_alloc(c, (void **)&c->gu, T * 2 * F * 4, "activations (ffn)", err)) ||
        (rc = cuda_alloc(c, (void **)&c->xb, T * wide * 4, "activations (normed)", err)) ||
        (rc = cuda_alloc(c, (void **)&c->att, T * Q * 4, "activations (attention)", err)) ||
        (rc = cuda_alloc(c, (void **)&c->act, T * F * 4, "activations (swiglu)", err)) ||
        (rc = cuda_alloc(c, (void **)&c->logits, T * V * 4, "logits", err)) ||
        (rc = cuda_alloc(c, (void **)&c->partial, part_rows * d->n_head * (hd + 2) * 4,
                         "attention split scratch", err)) ||
        (rc = cuda_alloc(c, &c->blas_ws, BLAS_WS_BYTES, "cuBLAS workspace", err)))
        return rc;
    if (c->max_quant_cols) {
        c->deq_bytes = DEQ_BYTES;
        if ((size_t)c->max_quant_cols * 4 > c->deq_bytes) c->deq_bytes = (size_t)c->max_quant_cols * 4;
        if ((rc = cuda_alloc(c, &c->deq, c->deq_bytes, "dequantization scratch", err))) return rc;
    }
    CUBLAS_CHECK(cublasSetWorkspace(c->blas, c->blas_ws, BLAS_WS_BYTES), err);
    size_t bcap = (size_t)cfg->max_batch_tokens * 4 + 4096;
    if ((rc = meta_alloc(c, bcap, err))) return rc;

    /* KV cache from what is left. */
    c->kv_dt = cfg->kv_type == BACKEND_KV_F32 ? INFK_F32 : INFK_F16;
    size_t es = infk_dt_size(c->kv_dt);
    size_t per_block = kv_block_bytes((int)d->n_layer, (int)d->n_head_kv, (int)hd,
                                      c->base.kv_block_size, es);
    size_t budget = cfg->kv_cache_bytes;
    size_t fr = 0, tot = 0;
    CUDA_CHECK(cudaMemGetInfo(&fr, &tot), err);
    if (cfg->gpu_memory_fraction > 0) {
        if (cfg->gpu_memory_fraction > 1)
            return inf_error_set(err, INF_EINVAL, "gpu_memory_fraction must be in (0, 1], got %g",
                                 cfg->gpu_memory_fraction);
        budget = (size_t)((double)fr * cfg->gpu_memory_fraction);
    }
    size_t nb = per_block ? budget / per_block : 0;
    if (nb > ((size_t)1 << 30)) nb = (size_t)1 << 30;
    if (nb < 1)
        return inf_error_set(err, INF_ENOMEM,
                             "KV cache: %.1f MiB budget (%.1f MiB free on the GPU after %.1f MiB "
                             "of weights) holds no block of %.2f MiB",
                             budget / 1048576.0, fr / 1048576.0, c->weight_bytes / 1048576.0,
                             per_block / 1048576.0);
    /* Same block count as the CPU backend for the same budget; one more
     * block, hidden from the pool, is the write target of graph padding. */
    c->base.n_kv_blocks = (int)nb;
    c->trash_block = (int)nb;
    c->kv_layer_elems = (nb + 1) * (size_t)c->base.kv_block_size * KV;
    size_t all = c->kv_layer_elems * d->n_layer * es;
    if ((rc = cuda_alloc(c, &c->k_cache, all, "KV cache (K)", err)) ||
        (rc = cuda_alloc(c, &c->v_cache, all, "KV cache (V)", err)))
        return rc;
    CUDA_CHECK(cudaMemset(c->k_cache, 0, all), err);
    CUDA_CHECK(cudaMemset(c->v_cache, 0, all), err);
    return 0;
}

/* ---- forward ------------------------------------------------------------ */

typedef struct plan {
    int n;         /* tokens run (padded in graph mode) */
    int n_out;     /* logits rows computed */
    int all_decode;/* every token is its sequence's only one: decode kernel for all */
    int graph;     /* graph mode: logits row t belongs to token t (padded rows too) */
    int n_list, n_tiles;
} plan;

static int gemm(cuda_backend *c, const void *w, int wdt, int64_t rows, int64_t cols, const void *x,
                int n, float *y, long ys, inf_error *err) {
    static const float one = 1.0f, zero = 0.0f;
    cudaDataType_t t = wdt == INFK_F16 ? CUDA_R_16F : wdt == INFK_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)cols, &one, w, t,
                              (int)cols, x, t, (int)cols, &zero, y, CUDA_R_32F, (int)ys,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 err);
    return 0;
}

/* y[n][ys] = x[n][cols] W^T. x is F32 when n <= GEMV_MAX, else act_dt. */
static int matmul(cuda_backend *c, const infk_weight *w, const void *x, int n, float *y, long ys,
                  inf_error *err) {
    if (n <= GEMV_MAX) return infk_gemv(w, (const float *)x, (long)w->cols, n, y, ys, c->st, err);
    if (w->dt != INFK_Q8_0 && w->dt != INFK_Q4_0)
        return gemm(c, w->data, w->dt, w->rows, w->cols, x, n, y, ys, err);
    int64_t chunk = (int64_t)(c->deq_bytes / ((size_t)w->cols * infk_dt_size(c->act_dt)));
    for (int64_t r0 = 0; r0 < w->rows; r0 += chunk) {
        int64_t nr = w->rows - r0 < chunk ? w->rows - r0 : chunk;
        int rc = infk_dequant_rows(w, r0, nr, c->deq, c->act_dt, c->st, err);
        if (!rc) rc = gemm(c, c->deq, c->act_dt, nr, w->cols, x, n, y + r0, ys, err);
        if (rc) return rc;
    }
    return 0;
}

/* The whole forward on the device for a prepared plan (capturable). */
static int run_body(cuda_backend *c, const plan *p, inf_error *err) {
    const model_desc *d = &c->base.desc;
    int n = p->n, hd = (int)d->head_dim, rc;
    long E = d->n_embd, Q = (long)d->n_head * hd, KV = (long)d->n_head_kv * hd, F = d->n_ff;
    long QKV = Q + 2 * KV;
    int xdt = n <= GEMV_MAX ? INFK_F32 : c->act_dt;
    size_t kv_es = infk_dt_size(c->kv_dt);
    if ((rc = infk_embed(&c->tok_embd, c->d_tokens, n, c->x, c->st, err))) return rc;
    if (d->embd_scale != 1.0f && (rc = infk_scale(c->x, (size_t)n * E, d->embd_scale, c->st, err)))
        return rc;
    for (uint32_t l = 0; l < d->n_layer; l++) {
        const cuda_layer *L = &c->layers[l];
        if ((rc = infk_rmsnorm(c->x, l ? c->delta : NULL, L->attn_norm, NULL, n, (int)E, d->rms_eps,
                               c->xb, xdt, c->st, err)) ||
            (rc = matmul(c, &L->wqkv, c->xb, n, c->qkv, QKV, err)))
            return rc;
        if (L->bq && ((rc = infk_add_bias(c->qkv, QKV, 0, (int)Q, L->bq, n, c->st, err)) ||
                      (rc = infk_add_bias(c->qkv, QKV, Q, (int)KV, L->bk, n, c->st, err)) ||
                      (rc = infk_add_bias(c->qkv, QKV, Q + KV, (int)KV, L->bv, n, c->st, err))))
            return rc;
        if (L->q_norm &&
            ((rc = infk_head_rmsnorm(c->qkv, n, QKV, 0, (int)d->n_head, hd, L->q_norm, d->rms_eps,
                                     c->st, err)) ||
             (rc = infk_head_rmsnorm(c->qkv, n, QKV, Q, (int)d->n_head_kv, hd, L->k_norm, d->rms_eps,
                                     c->st, err))))
            return rc;
        uint8_t *kc = (uint8_t *)c->k_cache + (size_t)l * c->kv_layer_elems * kv_es;
        uint8_t *vc = (uint8_t *)c->v_cache + (size_t)l * c->kv_layer_elems * kv_es;
        if ((rc = infk_rope_ms(c->qkv, n, QKV, 0, (int)d->n_head, Q, (int)d->n_head_kv, hd,
                               (int)d->n_rot, d->rope_neox, c->d_pos, c->inv_freq[L->swa],
                               c->mscale[L->swa], c->st, err)) ||
            (rc = infk_kv_write(c->qkv, QKV, Q, Q + KV, (int)KV, n, c->d_slot, kc, vc, c->kv_dt,
                                c->st, err)))
            return rc;
        infk_attn a = {c->qkv, QKV, kc, vc, c->kv_dt, (int)d->n_head, (int)d->n_head_kv, hd,
                       c->base.kv_block_size, c->d_pos, c->d_tab, c->d_blocks,
                       d->attn_scale, c->att, Q, xdt, L->swa ? (int)d->n_swa : 0, d->attn_softcap};
        if (p->all_decode) {
            int s = infk_attn_decode_splits(n, (int)d->n_head_kv, c->n_sm);
            rc = infk_attn_decode(&a, NULL, n, s, c->partial, c->st, err);
        } else {
            int s = infk_attn_decode_splits(p->n_list, (int)d->n_head_kv, c->n_sm);
            rc = infk_attn_decode(&a, c->d_list, p->n_list, s, c->partial, c->st, err);
            if (!rc) rc = infk_attn_prefill(&a, c->d_tiles, p->n_tiles, c->st, err);
        }
        if (rc) return rc;
        if ((rc = matmul(c, &L->wo, c->att, n, c->delta, E, err))) return rc;
        /* post norms (gemma): normalize the branch output in place before the residual add */
        if (L->post_attn && (rc = infk_rmsnorm(c->delta, NULL, L->post_attn, NULL, n, (int)E,
                                               d->rms_eps, c->delta, INFK_F32, c->st, err)))
            return rc;
        if ((rc = infk_rmsnorm(c->x, c->delta, L->ffn_norm, NULL, n, (int)E, d->rms_eps, c->xb, xdt,
                               c->st, err)) ||
            (rc = matmul(c, &L->wgu, c->xb, n, c->gu, 2 * F, err)) ||
            (rc = d->ffn_gelu ? infk_geglu(c->gu, 2 * F, (int)F, n, c->act, xdt, c->st, err)
                              : infk_swiglu(c->gu, 2 * F, (int)F, n, c->act, xdt, c->st, err)) ||
            (rc = matmul(c, &L->wd, c->act, n, c->delta, E, err)))
            return rc;
        if (L->post_ffn && (rc = infk_rmsnorm(c->delta, NULL, L->post_ffn, NULL, n, (int)E,
                                              d->rms_eps, c->delta, INFK_F32, c->st, err)))
            return rc;
    }
    int odt = p->n_out <= GEMV_MAX ? INFK_F32 : c->act_dt;
    if ((rc = infk_rmsnorm(c->x, c->delta, c->out_norm, c->d_rows, p->n_out, (int)E, d->rms_eps,
                           c->xb, odt, c->st, err)))
        return rc;
    if ((rc = matmul(c, &c->output, c->xb, p->n_out, c->logits, (long)d->n_vocab, err))) return rc;
    if (d->final_softcap > 0.0f)
        rc = infk_softcap(c->logits, (size_t)p->n_out * d->n_vocab, d->final_softcap, c->st, err);
    return rc;
}

static int bucket_of(const cuda_backend *c, int n) {
    for (int i = 0; i < CUDA_N_BUCKETS; i++)
        if (g_buckets[i] >= n) return g_buckets[i] <= c->cap_tokens ? i : -1;
    return -1;
}

/* Fills the host metadata image; returns the ints to upload. */
static int build_meta(cuda_backend *c, const backend_batch *bt, int graph_n, plan *p,
                      size_t *n_ints, inf_error *err) {
    size_t T = (size_t)c->cap_tokens;
    int n = bt->n_tokens, bs = c->base.kv_block_size;
    size_t need_blocks = 1;
    for (int s = 0; s < bt->n_seqs; s++) need_blocks += (size_t)bt->seqs[s].n_blocks;
    if (need_blocks > c->blocks_cap) {
        int rc = meta_alloc(c, need_blocks + need_blocks / 2, err);
        if (rc) return rc;
    }
    int32_t *m = c->h_meta;
    int32_t *tokens = m, *pos = m + T, *slot = m + 2 * T, *tab = m + 3 * T, *rows = m + 4 * T;
    int32_t *list = m + 5 * T, *tiles = m + 6 * T, *blocks = m + 8 * T;
    /* Block tables, then the padding table (the hidden block). */
    if (c->h_mark_cap < bt->n_seqs) {
        int32_t *nm = realloc(c->h_mark, (size_t)bt->n_seqs * sizeof *nm);
        if (!nm) return inf_error_set(err, INF_ENOMEM, "out of host memory");
        c->h_mark = nm;
        c->h_mark_cap = bt->n_seqs;
    }
    size_t off = 0;
    for (int s = 0; s < bt->n_seqs; s++) {
        c->h_mark[s] = (int32_t)off;
        memcpy(blocks + off, bt->seqs[s].blocks, (size_t)bt->seqs[s].n_blocks * sizeof(int32_t));
        off += (size_t)bt->seqs[s].n_blocks;
    }
    int32_t pad_tab = (int32_t)off;
    blocks[off++] = c->trash_block;
    for (int t = 0; t < n; t++) {
        const backend_seq *s = &bt->seqs[bt->seq_index[t]];
        tokens[t] = bt->tokens[t];
        pos[t] = bt->positions[t];
        slot[t] = s->blocks[pos[t] / bs] * bs + pos[t] % bs;
        tab[t] = c->h_mark[bt->seq_index[t]];
    }
    p->n_out = 0;
    if (graph_n) {
        for (int t = n; t < graph_n; t++) {
            tokens[t] = 0;
            pos[t] = 0;
            slot[t] = c->trash_block * bs;
            tab[t] = pad_tab;
        }
        for (int t = 0; t < graph_n; t++) rows[t] = t;
        p->n = graph_n;
        p->n_out = graph_n;
        p->all_decode = 1;
        p->graph = 1;
        p->n_list = p->n_tiles = 0;
    } else {
        p->graph = 0;
        for (int t = 0; t < n; t++)
            if (bt->need_logits[t]) rows[p->n_out++] = t;
        p->n = n;
        p->n_list = p->n_tiles = 0;
        /* Runs of one sequence at consecutive positions: single tokens go to
         * the decode kernel, longer runs to prefill tiles. */
        for (int t = 0; t < n;) {
            int e = t + 1;
            while (e < n && bt->seq_index[e] == bt->seq_index[t] && pos[e] == pos[e - 1] + 1) e++;
            if (e - t == 1) {
                list[p->n_list++] = t;
            } else {
                for (int u = t; u < e; u += INFK_PREFILL_TILE) {
                    tiles[2 * p->n_tiles] = u;
                    tiles[2 * p->n_tiles + 1] = e - u < INFK_PREFILL_TILE ? e - u : INFK_PREFILL_TILE;
                    p->n_tiles++;
                }
            }
            t = e;
        }
        p->all_decode = p->n_tiles == 0;
    }
    *n_ints = 8 * T + off;
    return 0;
}

/* 1 if every token is the only one of its sequence in the batch. */
static int pure_decode(cuda_backend *c, const backend_batch *bt) {
    if (bt->n_tokens != bt->n_seqs) return 0;
    for (int s = 0; s < bt->n_seqs; s++) c->h_mark[s] = 0;
    for (int t = 0; t < bt->n_tokens; t++)
        if (c->h_mark[bt->seq_index[t]]++) return 0;
    return 1;
}

static int run_graph(cuda_backend *c, int bi, const plan *p, inf_error *err) {
    if (!c->graphs[bi]) {
        cudaGraph_t g = NULL;
        CUDA_CHECK(cudaStreamBeginCapture(c->st, cudaStreamCaptureModeThreadLocal), err);
        int rc = run_body(c, p, err);
        cudaError_t e = cudaStreamEndCapture(c->st, &g);
        if (rc) {
            if (g) cudaGraphDestroy(g);
            return rc;
        }
        if (e != cudaSuccess) return cuda_fail(e, "decode graph capture", err);
        e = cudaGraphInstantiate(&c->graphs[bi], g, 0);
        cudaGraphDestroy(g);
        if (e != cudaSuccess) {
            c->graphs[bi] = NULL;
            return cuda_fail(e, "decode graph instantiation", err);
        }
        c->n_graph_captures++;
    }
    CUDA_CHECK(cudaGraphLaunch(c->graphs[bi], c->st), err);
    c->n_graph_launches++;
    return 0;
}

/* Runs the forward; logits stay on the device (c->logits, rows as planned).
 * no_graph: run it eagerly even when it is a pure decode step. */
static int forward_device(cuda_backend *c, const backend_batch *bt, plan *p, int no_graph,
                          inf_error *err) {
    if (c->pending) {
        /* The previous forward was left running (logits == NULL): the pinned
         * metadata image may still be read by its upload. */
        c->pending = 0;
        cudaError_t e = cudaStreamSynchronize(c->st);
        if (e != cudaSuccess) return cuda_fail(e, "previous forward", err);
    }
    if (c->h_mark_cap < bt->n_seqs) {
        int32_t *nm = realloc(c->h_mark, (size_t)bt->n_seqs * sizeof *nm);
        if (!nm) return inf_error_set(err, INF_ENOMEM, "out of host memory");
        c->h_mark = nm;
        c->h_mark_cap = bt->n_seqs;
    }
    int bi = -1;
    if (c->use_graphs && !no_graph && bt->n_tokens <= GRAPH_MAX && pure_decode(c, bt))
        bi = bucket_of(c, bt->n_tokens);
    size_t n_ints = 0;
    int rc = build_meta(c, bt, bi >= 0 ? g_buckets[bi] : 0, p, &n_ints, err);
    if (rc) return rc;
    CUDA_CHECK(cudaMemcpyAsync(c->d_meta, c->h_meta, n_ints * sizeof(int32_t),
                               cudaMemcpyHostToDevice, c->st),
               err);
    rc = bi >= 0 ? run_graph(c, bi, p, err) : run_body(c, p, err);
    c->last_n_out = rc ? 0 : p->n_out;
    return rc;
}

/* backend_forward: with logits, copies the wanted rows down and waits; with
 * logits == NULL leaves them on the device for backend_cuda_sample and
 * returns without waiting. */
static int cuda_forward(backend *b, const backend_batch *bt, float *logits, inf_error *err) {
    cuda_backend *c = (cuda_backend *)b;
    plan p;
    int all = 1;
    for (int t = 0; t < bt->n_tokens && all; t++) all = bt->need_logits[t] != 0;
    /* A decode graph computes a row per token; kept on the device, row i must
     * be the i-th wanted one, so graphs only when every token is wanted. */
    int rc = forward_device(c, bt, &p, !logits && !all, err);
    if (rc) return rc;
    if (!logits) {
        c->last_n_out = p.graph ? bt->n_tokens : p.n_out;
        c->pending = 1;
        return 0;
    }
    size_t row = (size_t)b->desc.n_vocab * sizeof(float);
    if (p.graph) {
        /* Every (padded) row was computed: copy the wanted ones, as runs. */
        int out = 0;
        for (int t = 0; t < bt->n_tokens;) {
            if (!bt->need_logits[t]) {
                t++;
                continue;
            }
            int e = t;
            while (e < bt->n_tokens && bt->need_logits[e]) e++;
            CUDA_CHECK(cudaMemcpyAsync(logits + (size_t)out * b->desc.n_vocab,
                                       c->logits + (size_t)t * b->desc.n_vocab, (size_t)(e - t) * row,
                                       cudaMemcpyDeviceToHost, c->st),
                       err);
            out += e - t;
            t = e;
        }
        /* Device sampling reads rows 0..n_out-1: right only if all are wanted. */
        c->last_n_out = out == bt->n_tokens ? out : 0;
    } else if (p.n_out) {
        CUDA_CHECK(cudaMemcpyAsync(logits, c->logits, (size_t)p.n_out * row, cudaMemcpyDeviceToHost,
                                   c->st),
                   err);
    }
    cudaError_t e = cudaStreamSynchronize(c->st);
    if (e != cudaSuccess) return cuda_fail(e, "forward", err);
    return 0;
}

static const backend_vtbl cuda_vtbl = {"cuda", cuda_forward, cuda_free};

int backend_cuda_create(backend **out, const gguf_file *f, const backend_config *cfg,
                        inf_error *err) {
    *out = NULL;
    char why[256];
    if (!backend_cuda_available(why, sizeof why))
        return inf_error_set(err, INF_EUNSUPPORTED, "the CUDA backend is not available: %s", why);
    if (cfg->kv_block_size <= 0 || cfg->kv_block_size > 1024 || cfg->max_batch_tokens <= 0)
        return inf_error_set(err, INF_EINVAL, "invalid backend config (block size %d, batch %d)",
                             cfg->kv_block_size, cfg->max_batch_tokens);
    cuda_backend *c = calloc(1, sizeof *c);
    if (!c) return inf_error_set(err, INF_ENOMEM, "out of memory");
    c->base.vt = &cuda_vtbl;
    c->base.device_sampling = 1;
    c->file = f;
    c->base.kv_block_size = cfg->kv_block_size;
    c->base.max_batch_tokens = cfg->max_batch_tokens;
    c->cap_tokens = cfg->max_batch_tokens;
    const char *g = getenv("INFERNO_CUDA_GRAPHS");
    c->use_graphs = !(g && g[0] == '0');
#ifdef INF_CUDA_DEBUG
    c->use_graphs = 0; /* the debug launch check synchronizes: not capturable */
#endif
    int rc = model_desc_from_gguf(&c->base.desc, f, err);
    const model_desc *d = &c->base.desc;
    if (!rc && (d->head_dim > INFK_ATTN_MAX_HEAD_DIM || d->n_rot > d->head_dim))
        rc = inf_error_set(err, INF_EUNSUPPORTED, "%s: head_dim %u exceeds the CUDA kernels' %d",
                           f->path, d->head_dim, INFK_ATTN_MAX_HEAD_DIM);
    struct cudaDeviceProp prop;
    if (!rc) {
        cudaError_t e = cudaGetDevice(&c->dev);
        if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, c->dev);
        if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking);
        if (e != cudaSuccess) rc = cuda_fail(e, "device setup", err);
    }
    if (!rc) {
        c->n_sm = prop.multiProcessorCount;
        cublasStatus_t s = cublasCreate(&c->blas);
        if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(c->blas, c->st);
        if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
        if (s != CUBLAS_STATUS_SUCCESS) rc = cublas_fail(s, "cublasCreate", err);
    }
    if (!rc) rc = cuda_load_weights(c, cfg, err);
    if (!rc) rc = alloc_work(c, cfg, err);
    if (rc) {
        cuda_free(&c->base);
        return rc;
    }
    snprintf(c->base.device, sizeof c->base.device, "cuda:%d %.64s (sm_%d%d, %.0f GiB, %s weights)",
             c->dev, prop.name, prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0,
             infk_dt_name(c->act_dt));
    *out = &c->base;
    return 0;
}

/* ---- extras (cuda_backend.h) ---------------------------------------------- */

static cuda_backend *as_cuda(const backend *b, inf_error *err) {
    if (!b || b->vt != &cuda_vtbl) {
        inf_error_set(err, INF_EINVAL, "not a CUDA backend");
        return NULL;
    }
    return (cuda_backend *)b;
}

int backend_cuda_stats_get(const backend *b, backend_cuda_stats *st, inf_error *err) {
    cuda_backend *c = as_cuda(b, err);
    if (!c) return INF_EINVAL;
    memset(st, 0, sizeof *st);
    st->weight_bytes = (double)c->weight_bytes;
    st->load_seconds = c->load_seconds;
    st->kv_bytes = 2.0 * (double)c->kv_layer_elems * c->base.desc.n_layer * infk_dt_size(c->kv_dt);
    st->graph_captures = c->n_graph_captures;
    st->graph_launches = c->n_graph_launches;
    st->act_dt = c->act_dt;
    return 0;
}

int backend_cuda_set_graphs(backend *b, int enable, inf_error *err) {
    cuda_backend *c = as_cuda(b, err);
    if (!c) return INF_EINVAL;
#ifdef INF_CUDA_DEBUG
    enable = 0;
#endif
    if (c->pending) cudaStreamSynchronize(c->st); /* a graph may still run */
    if (!enable) free_graphs(c);
    c->use_graphs = enable;
    return 0;
}

/* Grows the pinned host and the device sampling buffers to `need` bytes. */
static int smp_reserve(cuda_backend *c, size_t need, inf_error *err) {
    if (need <= c->smp_cap) return 0;
    size_t cap = need * 2;
    cudaFree(c->d_smp);
    if (c->h_smp) cudaFreeHost(c->h_smp);
    c->d_smp = NULL;
    c->h_smp = NULL;
    c->smp_cap = 0;
    CUDA_CHECK(cudaMalloc(&c->d_smp, cap), err);
    CUDA_CHECK(cudaHostAlloc(&c->h_smp, cap, cudaHostAllocDefault), err);
    c->smp_cap = cap;
    return 0;
}

int backend_cuda_sample(backend *b, const backend_cuda_sample_row *rows, int n,
                        const backend_cuda_sample_mod *mods, int n_mods,
                        const backend_cuda_sample_out *out, inf_error *err) {
    return backend_cuda_sample_masked(b, rows, n, mods, n_mods, NULL, out, err);
}

int backend_cuda_sample_masked(backend *b, const backend_cuda_sample_row *rows, int n,
                               const backend_cuda_sample_mod *mods, int n_mods, const uint32_t *const *masks,
                               const backend_cuda_sample_out *out, inf_error *err) {
    cuda_backend *c = as_cuda(b, err);
    if (!c) return INF_EINVAL;
    if (n != c->last_n_out || n <= 0)
        return inf_error_set(err, INF_ESTATE,
                             "device sampling needs the %d unsampled logits rows of the last forward, "
                             "got %d rows",
                             c->last_n_out, n);
    int off = 0, n_top = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].n_mod < 0 || rows[i].n_top < 0 || rows[i].n_top > 20 ||
            rows[i].n_top > (int)b->desc.n_vocab)
            return inf_error_set(err, INF_EINVAL, "row %d: %d modifiers, %d top logprobs", i,
                                 rows[i].n_mod, rows[i].n_top);
        off += rows[i].n_mod;
        n_top += rows[i].n_top;
    }
    if (off != n_mods)
        return inf_error_set(err, INF_EINVAL, "rows name %d modifiers, %d given", off, n_mods);
    if (n_top && (!out->top_tokens || !out->top_logprobs))
        return inf_error_set(err, INF_EINVAL, "rows ask for top logprobs but there is nowhere to put them");
    for (int i = 0; i < n_mods; i++)
        if (mods[i].token < 0 || mods[i].token >= (int32_t)b->desc.n_vocab)
            return inf_error_set(err, INF_EINVAL, "modifier %d: token %d outside the vocabulary", i,
                                 (int)mods[i].token);
    /* One buffer each side: [params][mods] go up, [tokens][status][logprobs]
     * [top ids][top logprobs] come down, each in one copy. */
    size_t pb = (size_t)n * sizeof(infk_sample_params), mb0 = (size_t)n_mods * sizeof(infk_sample_mod);
    size_t words = ((size_t)b->desc.n_vocab + 31) / 32, n_masked = 0;
    for (int i = 0; masks && i < n; i++) n_masked += masks[i] != NULL;
    /* [params][mods][masks] go up in one copy; the mask words follow the mods. */
    size_t mb = mb0 + n_masked * words * 4;
    mb = (mb + 7) & ~(size_t)7; /* keep the download part 8-byte aligned */
    size_t db = (size_t)n * 12 + (size_t)n_top * 8;
    int rc = smp_reserve(c, pb + mb + db, err);
    if (rc) return rc;
    uint8_t *h = c->h_smp, *d = c->d_smp;
    infk_sample_params *hp = (infk_sample_params *)h;
    infk_sample_mod *hm = (infk_sample_mod *)(h + pb);
    off = 0;
    n_top = 0;
    uint32_t *hw = (uint32_t *)(h + pb + mb0);
    int mask_off = 0;
    for (int i = 0; i < n; i++) {
        const backend_cuda_sample_row *r = &rows[i];
        int mo = -1;
        if (masks && masks[i]) {
            mo = mask_off;
            memcpy(hw + mask_off, masks[i], words * 4);
            mask_off += (int)words;
        }
        hp[i] = (infk_sample_params){r->temperature, r->top_k, r->top_p, r->min_p,
                                     r->repetition_penalty, r->presence_penalty,
                                     r->frequency_penalty, r->u, r->want_logprob, r->n_top, n_top,
                                     off, r->n_mod, mo};
        off += r->n_mod;
        n_top += r->n_top;
    }
    for (int i = 0; i < n_mods; i++) hm[i] = (infk_sample_mod){mods[i], 0.0f};
    int32_t *d_tok = (int32_t *)(d + pb + mb), *d_st = d_tok + n, *d_top = d_st + 2 * n;
    float *d_lp = (float *)(d_st + n), *d_tlp = (float *)(d_top + n_top);
    cudaError_t e = cudaMemcpyAsync(d, h, pb + mb, cudaMemcpyHostToDevice, c->st);
    if (e != cudaSuccess) rc = cuda_fail(e, "sampling upload", err);
    if (!rc)
        rc = infk_sample(c->logits, n, (int)b->desc.n_vocab, (const infk_sample_params *)d,
                         (infk_sample_mod *)(d + pb), (const uint32_t *)(d + pb + mb0), d_tok, d_lp, d_st, d_top, d_tlp, c->st, err);
    if (!rc) {
        e = cudaMemcpyAsync(h + pb + mb, d + pb + mb, db, cudaMemcpyDeviceToHost, c->st);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->st);
        if (e != cudaSuccess) rc = cuda_fail(e, "device sampling", err);
    }
    c->pending = 0;
    c->last_n_out = 0; /* the logits are modified now */
    if (rc) return rc;
    const int32_t *h_tok = (const int32_t *)(h + pb + mb), *h_st = h_tok + n, *h_top = h_st + 2 * n;
    const float *h_lp = (const float *)(h_st + n), *h_tlp = (const float *)(h_top + n_top);
    memcpy(out->tokens, h_tok, (size_t)n * 4);
    memcpy(out->logprobs, h_lp, (size_t)n * 4);
    if (out->status) memcpy(out->status, h_st, (size_t)n * 4);
    if (n_top) {
        memcpy(out->top_tokens, h_top, (size_t)n_top * 4);
        memcpy(out->top_logprobs, h_tlp, (size_t)n_top * 4);
    }
    for (int i = 0; !out->status && i < n; i++)
        if (h_st[i])
            return inf_error_set(err, INF_EINVAL, "row %d: %s", i,
                                 h_st[i] == 1 ? "a logit is NaN or +inf" : "every token is masked");
    return 0;
}

#endif /* INF_HAVE_CUDA */
