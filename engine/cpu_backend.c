/* cpu_backend.c - the llama-family forward pass on the CPU over a paged KV
 * cache (implements backend.h). One forward serves every architecture
 * model.h accepts: the per-architecture steps (QK-norm, post norms, GeGLU,
 * soft-capping, sliding windows, fused tensors) are switched by the
 * model_desc flags, in the order llama.cpp's graphs apply them.
 *
 * Matrices stay in their GGUF type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q4_K, Q5_K, Q6_K) and are used in place from the mapping; a file with
 * any other matrix type is refused at load. Every matrix product runs over the whole
 * flat batch at once, so weights are streamed once per step, not per token.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "cpu_arch.h"
#include "cpu_ops.h"
#include "quant.h"
#include "threadpool.h"

typedef struct cpu_layer {
    const float *attn_norm, *ffn_norm;
    const float *bq, *bk, *bv;         /* NULL without biases */
    const float *q_norm, *k_norm;      /* [head_dim], NULL without QK-norm */
    const float *post_attn, *post_ffn; /* [n_embd], NULL without post norms */
    cpu_weight wq, wk, wv, wo, wg, wu, wd; /* fused tensors: row views into one */
    int swa;                           /* sliding-window layer */
} cpu_layer;

typedef struct cpu_backend {
    backend base;
    const gguf_file *file;
    inf_pool *pool;
    cpu_scratch scratch;
    cpu_layer *layers;
    const gguf_tensor *tok_embd;
    cpu_weight output;
    const float *out_norm;
    /* Rope per layer kind [0 global, 1 local]: n_rot/2 frequencies each
     * (scaling, YaRN ramp and freq factors applied) and the cos/sin factor. */
    float *inv_freq[2];
    float mscale[2];
    int rope_n_ctx;

    void **owned; /* buffers allocated for converted tensors */
    int n_owned, cap_owned;

    /* KV storage: per layer, [n_blocks][block_size][kv_dim] elements of kv_elem bytes. */
    backend_kv_type kv_type;
    size_t kv_elem;
    size_t kv_layer_bytes;
    uint8_t *k_cache, *v_cache;

    /* Activations for up to max_batch_tokens tokens. */
    float *x, *xb, *q, *k, *v, *att_out, *gate, *up;
    float *rope_cs[2]; /* per layer kind, per token: n_rot/2 (cos, sin) pairs */
    float *att_tmp;   /* per thread: scores for up to att_cap positions + head_dim tmp */
    long att_cap;
} cpu_backend;

/* Remembers a buffer the backend must free. */
static int own(cpu_backend *c, void *p) {
    if (c->n_owned == c->cap_owned) {
        int cap = c->cap_owned ? c->cap_owned * 2 : 64;
        void **n = realloc(c->owned, (size_t)cap * sizeof *n);
        if (!n) return INF_ENOMEM;
        c->owned = n;
        c->cap_owned = cap;
    }
    c->owned[c->n_owned++] = p;
    return 0;
}

/* A 1-D tensor as f32: in place if already F32, else a converted copy we own. */
static int load_vec(cpu_backend *c, const gguf_tensor *t, const float **out, inf_error *err) {
    if (!t) {
        *out = NULL;
        return 0;
    }
    if (t->type == GGML_TYPE_F32) {
        *out = t->data;
        return 0;
    }
    float *buf = malloc(t->n_elements * sizeof(float));
    if (!buf || own(c, buf)) {
        free(buf);
        return inf_error_set(err, INF_ENOMEM, "out of memory converting tensor '%s'", t->name);
    }
    quant_dequantize_row(t->type, t->data, buf, t->n_elements);
    *out = buf;
    return 0;
}

/* A 2-D weight for cpu_matmul, used in place from the mapping: every type
 * the kernels support computes in its own format (no F32 expansion, so
 * resident memory stays near the file size); any other type is refused by
 * name. */
static int load_mat(cpu_backend *c, const gguf_tensor *t, cpu_weight *w, inf_error *err) {
    (void)c;
    w->rows = (int64_t)t->ne[1];
    w->cols = (int64_t)t->ne[0];
    int ok = 1;
    size_t rb = quant_row_bytes(t->type, t->ne[0], &ok);
    if (!cpu_matmul_supports(t->type) || !ok)
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "tensor '%s' has type %s (%d), which the CPU backend cannot compute "
                             "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                             t->name, quant_type_name(t->type), t->type);
    w->type = t->type;
    w->row_bytes = rb;
    w->data = t->data;
    return 0;
}

static int load_layers(cpu_backend *c, inf_error *err) {
    const model_desc *d = &c->base.desc;
    c->layers = calloc(d->n_layer, sizeof *c->layers);
    if (!c->layers) return inf_error_set(err, INF_ENOMEM, "out of memory for layers");
    int64_t Q = (int64_t)d->n_head * d->head_dim, KV = (int64_t)d->n_head_kv * d->head_dim;
    for (uint32_t l = 0; l < d->n_layer; l++) {
        cpu_layer *L = &c->layers[l];
        const gguf_file *f = c->file;
        int li = (int)l, rc;
        L->swa = model_layer_is_swa(d, li);
        if ((rc = load_vec(c, model_tensor(f, li, "attn_norm.weight"), &L->attn_norm, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "ffn_norm.weight"), &L->ffn_norm, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "attn_q.bias"), &L->bq, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "attn_k.bias"), &L->bk, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "attn_v.bias"), &L->bv, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "attn_q_norm.weight"), &L->q_norm, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "attn_k_norm.weight"), &L->k_norm, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "post_attention_norm.weight"), &L->post_attn, err)) ||
            (rc = load_vec(c, model_tensor(f, li, "post_ffw_norm.weight"), &L->post_ffn, err)) ||
            (rc = load_mat(c, model_tensor(f, li, "attn_output.weight"), &L->wo, err)) ||
            (rc = load_mat(c, model_tensor(f, li, "ffn_down.weight"), &L->wd, err)))
            return rc;
        if (d->fused_qkv) {
            /* phi3: rows [q | k | v] of one tensor, used in place as three views */
            if ((rc = load_mat(c, model_tensor(f, li, "attn_qkv.weight"), &L->wq, err))) return rc;
            L->wk = L->wv = L->wq;
            L->wq.rows = Q;
            L->wk.rows = L->wv.rows = KV;
            L->wk.data = (const uint8_t *)L->wq.data + (size_t)Q * L->wq.row_bytes;
            L->wv.data = (const uint8_t *)L->wk.data + (size_t)KV * L->wq.row_bytes;
        } else if ((rc = load_mat(c, model_tensor(f, li, "attn_q.weight"), &L->wq, err)) ||
                   (rc = load_mat(c, model_tensor(f, li, "attn_k.weight"), &L->wk, err)) ||
                   (rc = load_mat(c, model_tensor(f, li, "attn_v.weight"), &L->wv, err))) {
            return rc;
        }
        if (d->fused_gate_up) {
            /* phi3: ffn_up is [gate; up] (llama.cpp's swiglu splits it in halves) */
            if ((rc = load_mat(c, model_tensor(f, li, "ffn_up.weight"), &L->wg, err))) return rc;
            L->wg.rows = L->wu.rows = d->n_ff;
            L->wu = L->wg;
            L->wu.data = (const uint8_t *)L->wg.data + (size_t)d->n_ff * L->wg.row_bytes;
        } else if ((rc = load_mat(c, model_tensor(f, li, "ffn_gate.weight"), &L->wg, err)) ||
                   (rc = load_mat(c, model_tensor(f, li, "ffn_up.weight"), &L->wu, err))) {
            return rc;
        }
    }
    return 0;
}

/* Rotation frequencies per pair for each layer kind (model_rope_table:
 * scaling, YaRN and per-dimension factors folded in), so the hot loop is
 * one multiply. */
static int init_rope(cpu_backend *c, inf_error *err) {
    const model_desc *d = &c->base.desc;
    int half = (int)d->n_rot / 2;
    double *fr = malloc((size_t)(half > 0 ? half : 1) * sizeof(double));
    if (!fr) return inf_error_set(err, INF_ENOMEM, "out of memory for rope table");
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        model_rope r;
        c->inv_freq[k] = malloc((size_t)(half > 0 ? half : 1) * sizeof(float));
        if (!c->inv_freq[k]) rc = inf_error_set(err, INF_ENOMEM, "out of memory for rope table");
        if (!rc) rc = model_rope_table(d, c->file, k, c->rope_n_ctx, fr, &r, err);
        if (rc) break;
        for (int i = 0; i < half; i++) c->inv_freq[k][i] = (float)fr[i];
        c->mscale[k] = (float)r.mscale;
    }
    free(fr);
    return rc;
}

/* Activation rows are read with 32-byte vector loads; glibc's large malloc
 * returns addresses 16 mod 64, so half the loads would straddle cache lines
 * (measured: F16 prefill 30-40% slower). Cache-line aligned, size rounded up
 * as aligned_alloc requires. */
static float *act_alloc(size_t n_floats) {
    size_t bytes = (n_floats * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* Writes one byte per page (zero, which calloc's pages already hold) so the
 * kernel backs every page now. volatile: the stores must not be dropped as
 * redundant after calloc. */
static void prefault(uint8_t *p, size_t bytes) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (page == 0 || page > (1u << 24)) page = 4096;
    volatile uint8_t *v = p;
    for (size_t off = 0; off < bytes; off += page) v[off] = 0;
    if (bytes) v[bytes - 1] = 0;
}

/* Bytes of [p, p + bytes) resident in RAM (mincore over the whole pages
 * the range touches); 0 when it cannot be told. */
static size_t resident_bytes(const uint8_t *p, size_t bytes) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (!p || !bytes || page == 0) return 0;
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(page - 1), hi = (uintptr_t)p + bytes;
    size_t pages = (hi - lo + page - 1) / page;
    unsigned char *vec = malloc(pages);
    if (!vec) return 0;
    size_t n = 0;
    if (mincore((void *)lo, hi - lo, vec) == 0)
        for (size_t i = 0; i < pages; i++) n += vec[i] & 1;
    free(vec);
    n *= page;
    return n > bytes ? bytes : n;
}

static int alloc_buffers(cpu_backend *c, const backend_config *cfg, inf_error *err) {
    const model_desc *d = &c->base.desc;
    size_t T = (size_t)c->base.max_batch_tokens;
    size_t qd = (size_t)d->n_head * d->head_dim, kvd = (size_t)d->n_head_kv * d->head_dim;
    size_t wide = d->n_embd > qd ? d->n_embd : qd;
    c->x = act_alloc(T * d->n_embd);
    c->xb = act_alloc(T * wide);
    c->q = act_alloc(T * qd);
    c->k = act_alloc(T * kvd);
    c->v = act_alloc(T * kvd);
    c->att_out = act_alloc(T * qd);
    c->gate = act_alloc(T * d->n_ff);
    c->up = act_alloc(T * d->n_ff);
    c->rope_cs[0] = act_alloc(T * d->n_rot);
    c->rope_cs[1] = d->n_swa ? act_alloc(T * d->n_rot) : NULL;
    if (!c->x || !c->xb || !c->q || !c->k || !c->v || !c->att_out || !c->gate || !c->up ||
        !c->rope_cs[0] || (d->n_swa && !c->rope_cs[1]))
        return inf_error_set(err, INF_ENOMEM, "out of memory for activations (%zu tokens)", T);

    c->kv_type = cfg->kv_type;
    c->kv_elem = cfg->kv_type == BACKEND_KV_F32 ? 4 : 2;
    size_t per_block = (size_t)cfg->kv_block_size * kvd * c->kv_elem; /* one of K or V, one layer */
    size_t per_block_all = per_block * 2 * d->n_layer;
    size_t n_blocks = cfg->kv_cache_bytes / per_block_all;
    if (n_blocks < 1)
        return inf_error_set(err, INF_ENOMEM,
                             "KV cache budget of %zu bytes is smaller than one block (%zu bytes)",
                             cfg->kv_cache_bytes, per_block_all);
    if (n_blocks > (size_t)1 << 30) n_blocks = (size_t)1 << 30;
    c->base.n_kv_blocks = (int)n_blocks;
    c->kv_layer_bytes = per_block * n_blocks;
    c->k_cache = calloc(d->n_layer, c->kv_layer_bytes);
    c->v_cache = calloc(d->n_layer, c->kv_layer_bytes);
    if (!c->k_cache || !c->v_cache)
        return inf_error_set(err, INF_ENOMEM, "out of memory for a %zu-byte KV cache",
                             2 * d->n_layer * c->kv_layer_bytes);
    if (cfg->kv_prefault) {
        prefault(c->k_cache, d->n_layer * c->kv_layer_bytes);
        prefault(c->v_cache, d->n_layer * c->kv_layer_bytes);
    }
    return 0;
}


static void cpu_free(backend *b) {
    cpu_backend *c = (cpu_backend *)b;
    inf_pool_free(c->pool);
    cpu_scratch_free(&c->scratch);
    for (int i = 0; i < c->n_owned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->layers);
    free(c->inv_freq[0]);
    free(c->inv_freq[1]);
    free(c->k_cache);
    free(c->v_cache);
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att_out);
    free(c->gate);
    free(c->up);
    free(c->rope_cs[0]);
    free(c->rope_cs[1]);
    free(c->att_tmp);
    free(c);
}

/* ---- forward ------------------------------------------------------------- */

/* Rotates n_heads heads of one token by the precomputed (cos, sin) pairs. */
static void apply_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * c - x1 * s;
            v[i1] = x0 * s + x1 * c;
        }
    }
}

/* (cos, sin) per token and pair, times the layer kind's mscale (ggml
 * scales both by YaRN's / LongRoPE's attention factor). */
static void rope_tables(cpu_backend *c, const backend_batch *bt) {
    int half = (int)c->base.desc.n_rot / 2;
    for (int k = 0; k < 2; k++) {
        if (!c->rope_cs[k]) continue;
        double ms = c->mscale[k];
        for (int t = 0; t < bt->n_tokens; t++) {
            float *cs = c->rope_cs[k] + (size_t)t * 2 * half;
            for (int i = 0; i < half; i++) {
                double theta = (double)bt->positions[t] * (double)c->inv_freq[k][i];
                cs[2 * i] = (float)(cos(theta) * ms);
                cs[2 * i + 1] = (float)(sin(theta) * ms);
            }
        }
    }
}

/* Address of the K or V row for (layer, seq, pos). */
static uint8_t *kv_row(const cpu_backend *c, uint8_t *cache, int layer, const backend_seq *s,
                       int pos) {
    size_t kvd = (size_t)c->base.desc.n_head_kv * c->base.desc.head_dim;
    int bs = c->base.kv_block_size;
    size_t slot = (size_t)s->blocks[pos / bs] * bs + (size_t)(pos % bs);
    return cache + (size_t)layer * c->kv_layer_bytes + slot * kvd * c->kv_elem;
}

static void store_kv(cpu_backend *c, int layer, const backend_batch *bt) {
    size_t kvd = (size_t)c->base.desc.n_head_kv * c->base.desc.head_dim;
    for (int t = 0; t < bt->n_tokens; t++) {
        const backend_seq *s = &bt->seqs[bt->seq_index[t]];
        uint8_t *kd = kv_row(c, c->k_cache, layer, s, bt->positions[t]);
        uint8_t *vd = kv_row(c, c->v_cache, layer, s, bt->positions[t]);
        if (c->kv_type == BACKEND_KV_F32) {
            memcpy(kd, c->k + t * kvd, kvd * sizeof(float));
            memcpy(vd, c->v + t * kvd, kvd * sizeof(float));
        } else {
            cpu_f32_to_f16(c->k + t * kvd, (inf_f16 *)kd, (long)kvd);
            cpu_f32_to_f16(c->v + t * kvd, (inf_f16 *)vd, (long)kvd);
        }
    }
}

typedef struct attn_job {
    cpu_backend *c;
    const backend_batch *bt;
    int layer;
} attn_job;

/* One (token, head) pair: softmax(q.K^T * scale) V over positions [0, pos]
 * (sliding-window layers: the last n_swa of them; soft-capped scores where
 * the model says so). */
static void attend_one(cpu_backend *c, const backend_batch *bt, int layer, int t, int h,
                       float *scores, float *tmp) {
    const model_desc *d = &c->base.desc;
    int hd = (int)d->head_dim, group = (int)(d->n_head / d->n_head_kv), kvh = h / group;
    const backend_seq *s = &bt->seqs[bt->seq_index[t]];
    size_t kvd = (size_t)d->n_head_kv * hd, head_off = (size_t)kvh * hd * c->kv_elem;
    size_t layer_off = (size_t)layer * c->kv_layer_bytes;
    int f16 = c->kv_type == BACKEND_KV_F16;
    cpu_kv_rows kr = {c->k_cache + layer_off + head_off, kvd * c->kv_elem, s->blocks, c->base.kv_block_size, f16};
    cpu_kv_rows vr = {c->v_cache + layer_off + head_off, kvd * c->kv_elem, s->blocks, c->base.kv_block_size, f16};
    const float *q = c->q + (size_t)t * d->n_head * hd + (size_t)h * hd;
    float *out = c->att_out + (size_t)t * d->n_head * hd + (size_t)h * hd;
    int n = bt->positions[t] + 1;
    int lo = c->layers[layer].swa && n > (int)d->n_swa ? n - (int)d->n_swa : 0;
    if (lo == 0 && d->attn_softcap == 0.0f)
        cpu_attn_head(q, hd, &kr, &vr, n, d->attn_scale, scores, out, tmp);
    else
        cpu_arch_attn_head(q, hd, &kr, &vr, lo, n, d->attn_scale, d->attn_softcap, scores, out, tmp);
}

static void attn_worker(void *ctx, int ith, int nth) {
    attn_job *job = ctx;
    cpu_backend *c = job->c;
    int n_head = (int)c->base.desc.n_head;
    long lo, hi;
    inf_pool_range((long)job->bt->n_tokens * n_head, ith, nth, &lo, &hi);
    float *scores = c->att_tmp + (size_t)ith * (c->att_cap + c->base.desc.head_dim);
    float *tmp = scores + c->att_cap;
    for (long i = lo; i < hi; i++)
        attend_one(c, job->bt, job->layer, (int)(i / n_head), (int)(i % n_head), scores, tmp);
}

static int ensure_att_tmp(cpu_backend *c, const backend_batch *bt, inf_error *err) {
    long need = 0;
    for (int t = 0; t < bt->n_tokens; t++)
        if (bt->positions[t] + 1 > need) need = bt->positions[t] + 1;
    if (need <= c->att_cap) return 0;
    long cap = need < 1024 ? 1024 : need + need / 2;
    size_t per = (size_t)cap + c->base.desc.head_dim;
    float *n = realloc(c->att_tmp, per * inf_pool_size(c->pool) * sizeof(float));
    if (!n) return inf_error_set(err, INF_ENOMEM, "out of memory for attention scores");
    c->att_tmp = n;
    c->att_cap = cap;
    return 0;
}

static void add_bias(float *y, const float *bias, int n_tok, long dim) {
    if (!bias) return;
    for (int t = 0; t < n_tok; t++)
        for (long i = 0; i < dim; i++) y[t * dim + i] += bias[i];
}

static int mm(cpu_backend *c, const cpu_weight *w, const float *x, int n, float *y) {
    return cpu_matmul(c->pool, &c->scratch, w, x, (long)w->cols, n, y, (long)w->rows);
}

static int layer_forward(cpu_backend *c, int l, const backend_batch *bt, inf_error *err) {
    const model_desc *d = &c->base.desc;
    const cpu_layer *L = &c->layers[l];
    int n = bt->n_tokens, hd = (int)d->head_dim;
    long E = d->n_embd, Q = (long)d->n_head * hd, KV = (long)d->n_head_kv * hd, F = d->n_ff;
    int rc;
    for (int t = 0; t < n; t++) cpu_rmsnorm(c->xb + t * E, c->x + t * E, L->attn_norm, E, d->rms_eps);
    {
        /* one activation quantization and one fork-join for all three */
        const cpu_weight *ws[3] = {&L->wq, &L->wk, &L->wv};
        float *ys[3] = {c->q, c->k, c->v};
        long yst[3] = {(long)L->wq.rows, (long)L->wk.rows, (long)L->wv.rows};
        if ((rc = cpu_matmul_multi(c->pool, &c->scratch, 3, ws, c->xb, E, n, ys, yst)))
            return inf_error_set(err, rc, "layer %d: attention projection failed", l);
    }
    add_bias(c->q, L->bq, n, Q);
    add_bias(c->k, L->bk, n, KV);
    add_bias(c->v, L->bv, n, KV);
    if (L->q_norm) {
        /* QK-norm (qwen3, gemma3): RMSNorm of every head before rope */
        for (long i = 0; i < (long)n * d->n_head; i++)
            cpu_rmsnorm(c->q + i * hd, c->q + i * hd, L->q_norm, hd, d->rms_eps);
        for (long i = 0; i < (long)n * d->n_head_kv; i++)
            cpu_rmsnorm(c->k + i * hd, c->k + i * hd, L->k_norm, hd, d->rms_eps);
    }
    const float *rope_cs = c->rope_cs[L->swa];
    for (int t = 0; t < n; t++) {
        const float *cs = rope_cs + (size_t)t * d->n_rot;
        apply_rope(c->q + t * Q, (int)d->n_head, hd, (int)d->n_rot, cs, d->rope_neox);
        apply_rope(c->k + t * KV, (int)d->n_head_kv, hd, (int)d->n_rot, cs, d->rope_neox);
    }
    store_kv(c, l, bt);
    attn_job job = {c, bt, l};
    inf_pool_run(c->pool, attn_worker, &job);
    if ((rc = mm(c, &L->wo, c->att_out, n, c->xb)))
        return inf_error_set(err, rc, "layer %d: attention output failed", l);
    if (L->post_attn)
        for (int t = 0; t < n; t++) cpu_rmsnorm(c->xb + t * E, c->xb + t * E, L->post_attn, E, d->rms_eps);
    for (long i = 0; i < n * E; i++) c->x[i] += c->xb[i];

    for (int t = 0; t < n; t++) cpu_rmsnorm(c->xb + t * E, c->x + t * E, L->ffn_norm, E, d->rms_eps);
    {
        const cpu_weight *ws[2] = {&L->wg, &L->wu};
        float *ys[2] = {c->gate, c->up};
        long yst[2] = {(long)L->wg.rows, (long)L->wu.rows};
        if ((rc = cpu_matmul_multi(c->pool, &c->scratch, 2, ws, c->xb, E, n, ys, yst)))
            return inf_error_set(err, rc, "layer %d: feed-forward failed", l);
    }
    for (int t = 0; t < n; t++) {
        if (d->ffn_gelu) cpu_arch_geglu(c->gate + t * F, c->gate + t * F, c->up + t * F, F);
        else cpu_swiglu(c->gate + t * F, c->gate + t * F, c->up + t * F, F);
    }
    if ((rc = mm(c, &L->wd, c->gate, n, c->xb)))
        return inf_error_set(err, rc, "layer %d: feed-forward down failed", l);
    if (L->post_ffn)
        for (int t = 0; t < n; t++) cpu_rmsnorm(c->xb + t * E, c->xb + t * E, L->post_ffn, E, d->rms_eps);
    for (long i = 0; i < n * E; i++) c->x[i] += c->xb[i];
    return 0;
}

static int cpu_forward(backend *b, const backend_batch *bt, float *logits, inf_error *err) {
    cpu_backend *c = (cpu_backend *)b;
    const model_desc *d = &b->desc;
    long E = d->n_embd;
    if (!logits) return inf_error_set(err, INF_EINVAL, "the cpu backend needs a logits buffer");
    int rc = ensure_att_tmp(c, bt, err);
    if (rc) return rc;
    int ok = 1;
    size_t erow = quant_row_bytes(c->tok_embd->type, E, &ok);
    for (int t = 0; t < bt->n_tokens; t++)
        quant_dequantize_row(c->tok_embd->type,
                             (const uint8_t *)c->tok_embd->data + (size_t)bt->tokens[t] * erow,
                             c->x + t * E, (size_t)E);
    if (d->embd_scale != 1.0f)
        for (long i = 0; i < (long)bt->n_tokens * E; i++) c->x[i] *= d->embd_scale;
    rope_tables(c, bt);
    for (uint32_t l = 0; l < d->n_layer; l++)
        if ((rc = layer_forward(c, (int)l, bt, err))) return rc;
    int n_out = 0;
    for (int t = 0; t < bt->n_tokens; t++) {
        if (!bt->need_logits[t]) continue;
        cpu_rmsnorm(c->xb + n_out * E, c->x + t * E, c->out_norm, E, d->rms_eps);
        n_out++;
    }
    if (n_out && (rc = cpu_matmul(c->pool, &c->scratch, &c->output, c->xb, E, n_out, logits,
                                  (long)d->n_vocab)))
        return inf_error_set(err, rc, "output projection failed");
    if (d->final_softcap > 0.0f) cpu_arch_softcap(logits, (long)n_out * d->n_vocab, d->final_softcap);
    return 0;
}

static const backend_vtbl cpu_vtbl = {"cpu", cpu_forward, cpu_free};

int backend_cpu_create(backend **out, const gguf_file *f, const backend_config *cfg,
                       inf_error *err) {
    *out = NULL;
    if (cfg->kv_block_size <= 0 || cfg->kv_block_size > 1024 || cfg->max_batch_tokens <= 0)
        return inf_error_set(err, INF_EINVAL, "invalid backend config (block size %d, batch %d)",
                             cfg->kv_block_size, cfg->max_batch_tokens);
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) return inf_error_set(err, INF_ENOMEM, "out of memory");
    c->base.vt = &cpu_vtbl;
    c->file = f;
    c->base.kv_block_size = cfg->kv_block_size;
    c->base.max_batch_tokens = cfg->max_batch_tokens;
    c->rope_n_ctx = cfg->rope_n_ctx;
    /* The kernel set is process-wide: chosen here, before any kernel runs. */
    int rc = cpu_ops_select(cfg->cpu_isa, err);
    if (!rc) rc = model_desc_from_gguf(&c->base.desc, f, err);
    if (!rc) rc = inf_pool_create(&c->pool, cfg->n_threads, err);
    if (!rc) rc = load_layers(c, err);
    if (!rc) rc = init_rope(c, err);
    if (!rc) rc = load_vec(c, model_tensor(f, -1, "output_norm.weight"), &c->out_norm, err);
    if (!rc) {
        c->tok_embd = model_tensor(f, -1, "token_embd.weight");
        if (!quant_type_supported(c->tok_embd->type))
            rc = inf_error_set(err, INF_EUNSUPPORTED,
                               "tensor 'token_embd.weight' has type %s (%d), which the CPU backend "
                               "cannot read", quant_type_name(c->tok_embd->type), c->tok_embd->type);
    }
    if (!rc) {
        const gguf_tensor *o = model_tensor(f, -1, "output.weight");
        rc = load_mat(c, o ? o : c->tok_embd, &c->output, err);
    }
    if (!rc) rc = alloc_buffers(c, cfg, err);
    if (rc) {
        cpu_free(&c->base);
        return rc;
    }
    snprintf(c->base.device, sizeof c->base.device, "cpu (%d threads, %s)",
             inf_pool_size(c->pool), cpu_ops_describe());
    *out = &c->base;
    return 0;
}

size_t backend_cpu_kv_resident(const backend *b, size_t *total) {
    *total = 0;
    if (!b || b->vt != &cpu_vtbl) return 0;
    const cpu_backend *c = (const cpu_backend *)b;
    size_t n = (size_t)c->base.desc.n_layer * c->kv_layer_bytes;
    *total = 2 * n;
    return resident_bytes(c->k_cache, n) + resident_bytes(c->v_cache, n);
}
