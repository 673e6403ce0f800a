/* model_quantize.c - GGUF requantization (see model_quantize.h). */
#include "model_quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gguf.h"
#include "quant.h"
#include "threadpool.h"

typedef struct qz_ctx {
    const gguf_file *src;
    inf_pool *pool;
    int base, mix, n_layer; /* what was asked: pick_type gives each tensor's type */
    /* the tensor being filled */
    const gguf_tensor *t;
    int type;
    size_t src_rb, dst_rb;
    uint8_t *dst;
    int rc;
} qz_ctx;

/* llama.cpp's rule for which layers of a K mix get more bits. */
static int more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

static int layer_of(const char *name) {
    int l = -1;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

/* The type for one tensor under the requested type or mix. */
static int pick_type(const gguf_tensor *t, int base, int mix, int n_layer) {
    if (t->n_dims < 2 || t->ne[1] <= 1) return t->type;
    int want = base;
    if (mix) {
        int l = layer_of(t->name);
        if (strcmp(t->name, "output.weight") == 0) want = GGML_TYPE_Q6_K;
        else if (l >= 0 && (strstr(t->name, "attn_v.") || strstr(t->name, "ffn_down.")) && more_bits(l, n_layer))
            want = GGML_TYPE_Q6_K;
    }
    static const int fallback[] = {GGML_TYPE_Q8_0, GGML_TYPE_F16};
    if (t->ne[0] % quant_block_size(want) == 0) return want;
    for (int i = 0; i < 2; i++)
        if (t->ne[0] % quant_block_size(fallback[i]) == 0) return fallback[i];
    return GGML_TYPE_F32;
}

static void qz_worker(void *vctx, int ith, int nth) {
    qz_ctx *c = vctx;
    const gguf_tensor *t = c->t;
    uint64_t rows = t->n_elements / t->ne[0];
    long lo, hi;
    inf_pool_range((long)rows, ith, nth, &lo, &hi);
    float *row = malloc(sizeof(float) * t->ne[0]);
    if (!row) {
        c->rc = INF_ENOMEM;
        return;
    }
    for (long r = lo; r < hi; r++) {
        quant_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * c->src_rb, row, t->ne[0]);
        int rc = quant_quantize_row(c->type, row, c->dst + (size_t)r * c->dst_rb, t->ne[0]);
        if (rc) c->rc = rc;
    }
    free(row);
}

static int qz_fill(void *vctx, const char *name, void *dst, uint64_t nbytes) {
    qz_ctx *c = vctx;
    c->t = gguf_find_tensor(c->src, name);
    if (!c->t) return INF_EINVAL;
    int ok = 1;
    c->src_rb = quant_row_bytes(c->t->type, c->t->ne[0], &ok);
    c->dst_rb = (size_t)(nbytes / (c->t->n_elements / c->t->ne[0]));
    c->type = pick_type(c->t, c->base, c->mix, c->n_layer);
    if (quant_row_bytes(c->type, c->t->ne[0], &ok) != c->dst_rb) return INF_EINVAL;
    c->dst = dst;
    c->rc = 0;
    inf_pool_run(c->pool, qz_worker, c);
    return c->rc;
}

static uint32_t ftype_of(int base, int mix) {
    if (mix) return base == GGML_TYPE_Q4_K ? 15 : 17; /* Q4_K_M, Q5_K_M */
    switch (base) {
    case GGML_TYPE_F32: return 0;
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q4_0: return 2;
    case GGML_TYPE_Q4_1: return 3;
    case GGML_TYPE_Q8_0: return 7;
    case GGML_TYPE_Q5_0: return 8;
    case GGML_TYPE_Q5_1: return 9;
    case GGML_TYPE_Q4_K: return 14;
    case GGML_TYPE_Q5_K: return 16;
    case GGML_TYPE_Q6_K: return 18;
    case GGML_TYPE_BF16: return 32;
    default: return 0;
    }
}

int model_quantize(const char *in_path, const char *out_path, const char *type, int n_threads,
                   inf_error *err) {
    int mix = 0, base;
    if (strcasecmp(type, "q4_k_m") == 0) mix = 1, base = GGML_TYPE_Q4_K;
    else if (strcasecmp(type, "q5_k_m") == 0) mix = 1, base = GGML_TYPE_Q5_K;
    else base = quant_type_from_name(type);
    if (base < 0 || !quant_type_supported(base) || base == GGML_TYPE_Q8_1 || base == GGML_TYPE_Q8_K)
        return inf_error_set(err, INF_EINVAL,
                             "quantize: type '%s' is not one we can write (f32, f16, bf16, q8_0, q4_0, "
                             "q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m, q5_k_m)", type);
    gguf_file *f = NULL;
    int rc = gguf_open(&f, in_path, err);
    if (rc) return rc;
    qz_ctx c = {.src = f, .base = base, .mix = mix};
    gguf_writer *w = gguf_writer_new();
    if (!w) rc = inf_error_set(err, INF_ENOMEM, "out of memory");
    if (!rc) rc = inf_pool_create(&c.pool, n_threads, err);
    if (!rc) rc = gguf_writer_copy_kvs(w, f, "");
    if (!rc) rc = gguf_writer_set_u32(w, "general.file_type", ftype_of(base, mix));
    int n_layer = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        int l = layer_of(f->tensors[i].name);
        if (l + 1 > n_layer) n_layer = l + 1;
    }
    c.n_layer = n_layer;
    for (uint64_t i = 0; i < f->n_tensors && !rc; i++) {
        const gguf_tensor *t = &f->tensors[i];
        int tt = pick_type(t, base, mix, n_layer);
        if (tt == t->type)
            rc = gguf_writer_add_tensor(w, t->name, tt, t->n_dims, t->ne, t->data, NULL, NULL);
        else
            rc = gguf_writer_add_tensor(w, t->name, tt, t->n_dims, t->ne, NULL, qz_fill, &c);
    }
    if (rc && (!err || !err->msg[0])) inf_error_set(err, rc, "quantize: building %s failed", out_path);
    if (!rc) rc = gguf_writer_write(w, out_path, err);
    gguf_writer_free(w);
    inf_pool_free(c.pool);
    gguf_close(f);
    return rc;
}
