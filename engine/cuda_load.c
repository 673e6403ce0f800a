/* cuda_load.c - CUDA backend: weights from the GGUF mapping to the device.
 *
 * Types on the device: F16 and BF16 matrices stay as they are; F32 ones
 * become BF16 (or stay F32 with INFERNO_CUDA_KEEP_F32=1); Q8_0 and Q4_0 stay
 * quantized, repacked so each row's quants are contiguous and 16-byte
 * aligned with the f16 scales apart (decode reads them with fused
 * dequantizing GEMV kernels: docs/cuda.md has the bytes argument); any other
 * type is dequantized to the compute type. Tensors stream from the mmap
 * through two pinned staging buffers (convert one while the other copies),
 * with a progress bar on a TTY.
 */
#ifdef INF_HAVE_CUDA

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda_internal.h"
#include "model.h"
#include "quant.h"

#define STAGE_BYTES ((size_t)32 << 20)

typedef struct loader {
    cuda_backend *c;
    uint8_t *stage[2];
    cudaEvent_t ev[2];
    int cur;
    size_t done, total;
    int tty, last_pct;
    float *row; /* host f32 row scratch */
    size_t row_cap;
} loader;

int cuda_alloc(cuda_backend *c, void **p, size_t bytes, const char *what, inf_error *err) {
    *p = NULL;
    if (c->n_allocs == c->cap_allocs) {
        int cap = c->cap_allocs ? c->cap_allocs * 2 : 256;
        void **n = realloc(c->allocs, (size_t)cap * sizeof *n);
        if (!n) return inf_error_set(err, INF_ENOMEM, "out of host memory");
        c->allocs = n;
        c->cap_allocs = cap;
    }
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        /* MiB with 3 decimals: small tensors must not read "needs 0.3, 0.3 free". */
        return inf_error_set(err, INF_ENOMEM,
                             "out of GPU memory: %s needs %.3f MiB, %.3f MiB free of %.1f MiB "
                             "(%.1f MiB of weights already loaded): %s",
                             what, bytes / 1048576.0, fr / 1048576.0, tot / 1048576.0,
                             c->weight_bytes / 1048576.0, cudaGetErrorString(e));
    }
    c->allocs[c->n_allocs++] = *p;
    return 0;
}

static void progress(loader *L, size_t add) {
    L->done += add;
    if (!L->tty || !L->total) return;
    int pct = (int)(100.0 * L->done / L->total);
    if (pct == L->last_pct) return;
    L->last_pct = pct;
    char bar[41];
    for (int i = 0; i < 40; i++) bar[i] = i < pct * 40 / 100 ? '#' : ' ';
    bar[40] = '\0';
    fprintf(stderr, "\rloading weights [%s] %3d%% %.2f/%.2f GiB", bar, pct,
            L->done / 1073741824.0, L->total / 1073741824.0);
}

/* Next staging buffer, once its previous copy has finished. */
static int stage_next(loader *L, uint8_t **buf, inf_error *err) {
    L->cur ^= 1;
    CUDA_CHECK(cudaEventSynchronize(L->ev[L->cur]), err);
    *buf = L->stage[L->cur];
    return 0;
}

static int stage_copy(loader *L, void *dst, const void *src, size_t n, inf_error *err) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, L->c->st), err);
    return 0;
}

static int stage_done(loader *L, inf_error *err) {
    CUDA_CHECK(cudaEventRecord(L->ev[L->cur], L->c->st), err);
    return 0;
}

static int want_row(loader *L, size_t cols, inf_error *err) {
    if (L->row_cap >= cols) return 0;
    float *n = realloc(L->row, cols * sizeof(float));
    if (!n) return inf_error_set(err, INF_ENOMEM, "out of host memory");
    L->row = n;
    L->row_cap = cols;
    return 0;
}

/* Device type for a matrix made of these parts. */
static int matrix_dt(const cuda_backend *c, const gguf_tensor *const *parts, int n) {
    int t = parts[0]->type;
    for (int i = 1; i < n; i++)
        if (parts[i]->type != t) return c->act_dt;
    if (t == GGML_TYPE_Q8_0) return INFK_Q8_0;
    if (t == GGML_TYPE_Q4_0) return INFK_Q4_0;
    return c->act_dt;
}

/* Converts rows [r0, r0+nr) of a part to device layout dt: float rows into
 * dst, or quants into dst and scales into sdst. */
static int convert_rows(loader *L, const gguf_tensor *t, int dt, uint64_t r0, uint64_t nr,
                        uint8_t *dst, uint8_t *sdst, inf_error *err) {
    uint64_t cols = t->ne[0];
    int ok = 1;
    size_t rb = quant_row_bytes(t->type, cols, &ok);
    const uint8_t *src = (const uint8_t *)t->data + r0 * rb;
    if (dt == INFK_Q8_0 || dt == INFK_Q4_0) {
        uint64_t nb = cols / 32;
        size_t qb = dt == INFK_Q8_0 ? 32 : 16;
        for (uint64_t r = 0; r < nr; r++)
            for (uint64_t b = 0; b < nb; b++) {
                const uint8_t *blk = src + r * rb + b * (2 + qb);
                memcpy(sdst + (r * nb + b) * 2, blk, 2);
                memcpy(dst + (r * nb + b) * qb, blk + 2, qb);
            }
        return 0;
    }
    int same = (dt == INFK_F16 && t->type == GGML_TYPE_F16) ||
               (dt == INFK_BF16 && t->type == GGML_TYPE_BF16) ||
               (dt == INFK_F32 && t->type == GGML_TYPE_F32);
    if (same) {
        memcpy(dst, src, nr * rb);
        return 0;
    }
    int rc = want_row(L, cols, err);
    if (rc) return rc;
    size_t es = infk_dt_size(dt);
    for (uint64_t r = 0; r < nr; r++) {
        quant_dequantize_row(t->type, src + r * rb, L->row, cols);
        uint8_t *d = dst + r * cols * es;
        for (uint64_t i = 0; i < cols; i++) {
            if (dt == INFK_F32) memcpy(d + i * 4, &L->row[i], 4);
            else {
                uint16_t h = dt == INFK_F16 ? quant_f32_to_f16(L->row[i]) : quant_f32_to_bf16(L->row[i]);
                memcpy(d + i * 2, &h, 2);
            }
        }
    }
    return 0;
}

/* Uploads the row-concatenation of parts as one device matrix. */
static int load_matrix(loader *L, const gguf_tensor *const *parts, int n_parts, infk_weight *w,
                       inf_error *err) {
    cuda_backend *c = L->c;
    int dt = matrix_dt(c, parts, n_parts);
    int64_t cols = (int64_t)parts[0]->ne[0], rows = 0;
    for (int i = 0; i < n_parts; i++) rows += (int64_t)(parts[i]->n_dims >= 2 ? parts[i]->ne[1] : 1);
    size_t bytes = infk_weight_bytes(dt, rows, cols);
    void *d;
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'%s (%s, %lld x %lld)", parts[0]->name,
             n_parts > 1 ? " and its fused partners" : "", infk_dt_name(dt), (long long)rows,
             (long long)cols);
    int rc = cuda_alloc(c, &d, bytes, what, err);
    if (rc) return rc;
    int quant = dt == INFK_Q8_0 || dt == INFK_Q4_0;
    size_t qrow = quant ? (size_t)cols / (dt == INFK_Q8_0 ? 1 : 2) : (size_t)cols * infk_dt_size(dt);
    size_t srow = quant ? (size_t)cols / 32 * 2 : 0;
    uint8_t *ddata = d, *dscales = quant ? ddata + (size_t)rows * qrow : NULL;
    uint64_t rows_per = STAGE_BYTES / (qrow + srow);
    int64_t base = 0;
    for (int p = 0; p < n_parts; p++) {
        const gguf_tensor *t = parts[p];
        uint64_t prow = t->n_dims >= 2 ? t->ne[1] : 1;
        for (uint64_t r0 = 0; r0 < prow; r0 += rows_per) {
            uint64_t nr = prow - r0 < rows_per ? prow - r0 : rows_per;
            uint8_t *buf = NULL;
            if ((rc = stage_next(L, &buf, err))) return rc;
            uint8_t *sbuf = buf + nr * qrow;
            if ((rc = convert_rows(L, t, dt, r0, nr, buf, sbuf, err))) return rc;
            if ((rc = stage_copy(L, ddata + (size_t)(base + r0) * qrow, buf, nr * qrow, err)))
                return rc;
            if (quant &&
                (rc = stage_copy(L, dscales + (size_t)(base + r0) * srow, sbuf, nr * srow, err)))
                return rc;
            if ((rc = stage_done(L, err))) return rc;
            progress(L, nr * (qrow + srow));
        }
        base += (int64_t)prow;
    }
    w->dt = dt;
    w->rows = rows;
    w->cols = cols;
    w->data = ddata;
    w->scales = dscales;
    c->weight_bytes += bytes;
    if (quant && cols > c->max_quant_cols) c->max_quant_cols = cols;
    return 0;
}

/* A 1-D tensor as f32 on the device (NULL stays NULL). */
static int load_vec(loader *L, const gguf_tensor *t, float **out, inf_error *err) {
    *out = NULL;
    if (!t) return 0;
    int rc = want_row(L, t->n_elements, err);
    if (rc) return rc;
    quant_dequantize_row(t->type, t->data, L->row, t->n_elements);
    if ((rc = cuda_alloc(L->c, (void **)out, t->n_elements * sizeof(float), t->name, err))) return rc;
    CUDA_CHECK(cudaMemcpy(*out, L->row, t->n_elements * sizeof(float), cudaMemcpyHostToDevice), err);
    L->c->weight_bytes += t->n_elements * sizeof(float);
    return 0;
}

static int load_all(loader *L, inf_error *err) {
    cuda_backend *c = L->c;
    const gguf_file *f = c->file;
    const model_desc *d = &c->base.desc;
    int rc;
    for (uint32_t l = 0; l < d->n_layer; l++) {
        cuda_layer *Y = &c->layers[l];
        int li = (int)l;
        /* Fused tensors (phi3) already are the [q; k; v] and [gate; up] row
         * concatenations the device matrices are. */
        const gguf_tensor *qkv[3] = {model_tensor(f, li, "attn_q.weight"),
                                     model_tensor(f, li, "attn_k.weight"),
                                     model_tensor(f, li, "attn_v.weight")};
        int n_qkv = 3, n_gu = 2;
        if (d->fused_qkv) {
            qkv[0] = model_tensor(f, li, "attn_qkv.weight");
            n_qkv = 1;
        }
        const gguf_tensor *o[1] = {model_tensor(f, li, "attn_output.weight")};
        const gguf_tensor *gu[2] = {model_tensor(f, li, "ffn_gate.weight"),
                                    model_tensor(f, li, "ffn_up.weight")};
        if (d->fused_gate_up) {
            gu[0] = gu[1];
            n_gu = 1;
        }
        Y->swa = model_layer_is_swa(d, li);
        const gguf_tensor *dn[1] = {model_tensor(f, li, "ffn_down.weight")};
        if ((rc = load_vec(L, model_tensor(f, li, "attn_norm.weight"), &Y->attn_norm, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "ffn_norm.weight"), &Y->ffn_norm, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "attn_q.bias"), &Y->bq, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "attn_k.bias"), &Y->bk, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "attn_v.bias"), &Y->bv, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "attn_q_norm.weight"), &Y->q_norm, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "attn_k_norm.weight"), &Y->k_norm, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "post_attention_norm.weight"), &Y->post_attn, err)) ||
            (rc = load_vec(L, model_tensor(f, li, "post_ffw_norm.weight"), &Y->post_ffn, err)) ||
            (rc = load_matrix(L, qkv, n_qkv, &Y->wqkv, err)) || (rc = load_matrix(L, o, 1, &Y->wo, err)) ||
            (rc = load_matrix(L, gu, n_gu, &Y->wgu, err)) || (rc = load_matrix(L, dn, 1, &Y->wd, err)))
            return rc;
    }
    const gguf_tensor *emb[1] = {model_tensor(f, -1, "token_embd.weight")};
    if ((rc = load_matrix(L, emb, 1, &c->tok_embd, err))) return rc;
    const gguf_tensor *out[1] = {model_tensor(f, -1, "output.weight")};
    if (out[0]) {
        if ((rc = load_matrix(L, out, 1, &c->output, err))) return rc;
    } else {
        c->output = c->tok_embd;
    }
    return load_vec(L, model_tensor(f, -1, "output_norm.weight"), &c->out_norm, err);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cuda_load_weights(cuda_backend *c, const backend_config *cfg, inf_error *err) {
    const model_desc *d = &c->base.desc;
    const char *keep = getenv("INFERNO_CUDA_KEEP_F32");
    int wt = model_weight_type(c->file);
    c->act_dt = wt == GGML_TYPE_BF16 ? INFK_BF16
                : wt == GGML_TYPE_F32 ? (keep && keep[0] == '1' ? INFK_F32 : INFK_BF16)
                                      : INFK_F16;
    c->layers = calloc(d->n_layer, sizeof *c->layers);
    if (!c->layers) return inf_error_set(err, INF_ENOMEM, "out of host memory for layers");
    loader L = {0};
    L.c = c;
    L.tty = isatty(2);
    L.last_pct = -1;
    L.total = 0;
    for (uint64_t i = 0; i < c->file->n_tensors; i++) L.total += c->file->tensors[i].nbytes;
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        cudaError_t e = cudaHostAlloc((void **)&L.stage[i], STAGE_BYTES, cudaHostAllocWriteCombined);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&L.ev[i], cudaEventDisableTiming);
        if (e != cudaSuccess) rc = cuda_fail(e, "pinned staging buffer", err);
    }
    double t0 = now_s();
    if (!rc) rc = load_all(&L, err);
    if (!rc) {
        cudaError_t e = cudaStreamSynchronize(c->st);
        if (e != cudaSuccess) rc = cuda_fail(e, "weight upload", err);
    }
    c->load_seconds = now_s() - t0;
    for (int i = 0; i < 2; i++) {
        if (L.ev[i]) {
            cudaEventSynchronize(L.ev[i]);
            cudaEventDestroy(L.ev[i]);
        }
        if (L.stage[i]) cudaFreeHost(L.stage[i]);
    }
    free(L.row);
    if (L.tty) {
        if (!rc)
            fprintf(stderr, "\rloaded %.2f GiB of weights in %.2f s (%.2f GB/s)%*s\n",
                    c->weight_bytes / 1073741824.0, c->load_seconds,
                    c->weight_bytes / 1e9 / (c->load_seconds > 0 ? c->load_seconds : 1e-9), 30, "");
        else
            fprintf(stderr, "\n");
    }
    if (rc) return rc;
    /* Rope tables per layer kind exactly as cpu_backend.c builds them. */
    int half = (int)d->n_rot / 2;
    size_t cnt = (size_t)(half > 0 ? half : 1);
    double *fr = malloc(cnt * sizeof(double));
    float *inv = malloc(cnt * sizeof(float));
    if (!fr || !inv) rc = inf_error_set(err, INF_ENOMEM, "out of host memory for the rope table");
    for (int k = 0; k < 2 && !rc; k++) {
        model_rope r;
        rc = model_rope_table(d, c->file, k, cfg->rope_n_ctx, fr, &r, err);
        if (rc) break;
        for (int i = 0; i < half; i++) inv[i] = (float)fr[i];
        c->mscale[k] = (float)r.mscale;
        rc = cuda_alloc(c, (void **)&c->inv_freq[k], cnt * sizeof(float), "rope table", err);
        if (!rc && half > 0) {
            cudaError_t e = cudaMemcpy(c->inv_freq[k], inv, (size_t)half * sizeof(float),
                                       cudaMemcpyHostToDevice);
            if (e != cudaSuccess) rc = cuda_fail(e, "rope table upload", err);
        }
    }
    free(fr);
    free(inv);
    return rc;
}

#endif /* INF_HAVE_CUDA */
