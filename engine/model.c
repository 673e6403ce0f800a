/* model.c - llama-family model description from GGUF metadata (see model.h). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Reads "<arch>.<suffix>" as u32; required keys fail with a message naming the key. */
static int arch_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t *out,
                    int required, inf_error *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_u32(f, key, out, err);
    if (rc == INF_ENOTFOUND) {
        if (!required) return 0;
        return inf_error_set(err, INF_EFORMAT, "%s: missing metadata key '%s'", f->path, key);
    }
    return rc;
}

static int arch_f32(const gguf_file *f, const char *arch, const char *suffix, float *out,
                    inf_error *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(f, key, out, err);
    return rc == INF_ENOTFOUND ? 0 : rc;
}

const gguf_tensor *model_tensor(const gguf_file *f, int layer, const char *suffix) {
    char name[256];
    if (layer < 0) snprintf(name, sizeof name, "%s", suffix);
    else snprintf(name, sizeof name, "blk.%d.%s", layer, suffix);
    return gguf_find_tensor(f, name);
}

/* Checks that tensor `name` exists (unless optional) and is ne0 x ne1 (ne1 == 0: 1-D). */
static int expect_tensor(const gguf_file *f, int layer, const char *suffix, uint64_t ne0,
                         uint64_t ne1, int optional, inf_error *err) {
    const gguf_tensor *t = model_tensor(f, layer, suffix);
    char name[256];
    if (layer < 0) snprintf(name, sizeof name, "%s", suffix);
    else snprintf(name, sizeof name, "blk.%d.%s", layer, suffix);
    if (!t) {
        if (optional) return 0;
        return inf_error_set(err, INF_EFORMAT, "%s: missing tensor '%s'", f->path, name);
    }
    int want_dims = ne1 ? 2 : 1;
    uint64_t got1 = t->n_dims >= 2 ? t->ne[1] : 1;
    if ((int)t->n_dims != want_dims || t->ne[0] != ne0 || (ne1 && got1 != ne1))
        return inf_error_set(err, INF_EFORMAT,
                             "%s: tensor '%s' has shape [%llu, %llu] (%u dims), expected [%llu, %llu]",
                             f->path, name, (unsigned long long)t->ne[0],
                             (unsigned long long)got1, t->n_dims, (unsigned long long)ne0,
                             (unsigned long long)(ne1 ? ne1 : 1));
    if (!quant_type_supported(t->type))
        return inf_error_set(err, INF_EUNSUPPORTED, "%s: tensor '%s' has unsupported type %s (%d)",
                             f->path, name, quant_type_name(t->type), t->type);
    return 0;
}

static int read_arch(model_desc *d, const gguf_file *f, inf_error *err) {
    int rc = gguf_get_cstr(f, "general.architecture", d->arch, sizeof d->arch, err);
    if (rc == INF_ENOTFOUND)
        return inf_error_set(err, INF_EFORMAT, "%s: missing metadata key 'general.architecture'",
                             f->path);
    if (rc) return rc;
    static const struct { const char *name; model_arch id; } archs[] = {
        {"llama", MODEL_ARCH_LLAMA},   {"mistral", MODEL_ARCH_LLAMA}, {"qwen2", MODEL_ARCH_QWEN2},
        {"qwen3", MODEL_ARCH_QWEN3},   {"gemma2", MODEL_ARCH_GEMMA2}, {"gemma3", MODEL_ARCH_GEMMA3},
        {"phi3", MODEL_ARCH_PHI3}};
    size_t i = 0;
    while (i < sizeof archs / sizeof archs[0] && strcmp(d->arch, archs[i].name)) i++;
    if (i == sizeof archs / sizeof archs[0])
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "%s: architecture '%s' is not supported (llama, mistral, qwen2, qwen3, "
                             "gemma2, gemma3, phi3)",
                             f->path, d->arch);
    d->arch_id = archs[i].id;
    if (gguf_get_cstr(f, "general.name", d->name, sizeof d->name, NULL) != 0) d->name[0] = '\0';
    return 0;
}

static int read_rope_scaling(model_desc *d, const gguf_file *f, inf_error *err) {
    char key[160], type[32] = "";
    snprintf(key, sizeof key, "%s.rope.scaling.type", d->arch);
    int rc = gguf_get_cstr(f, key, type, sizeof type, err);
    if (rc && rc != INF_ENOTFOUND) return rc;
    d->rope_scaling_factor = 1.0f;
    float factor = 0.0f;
    if ((rc = arch_f32(f, d->arch, "rope.scaling.factor", &factor, err))) return rc;
    if (factor == 0.0f && (rc = arch_f32(f, d->arch, "rope.scale_linear", &factor, err)))
        return rc;
    if (strcmp(type, "none") == 0) {
        d->rope_scaling = MODEL_ROPE_SCALING_NONE; /* llama.cpp: "none" never scales */
    } else if (type[0] == '\0') {
        d->rope_scaling = factor > 0.0f && factor != 1.0f ? MODEL_ROPE_SCALING_LINEAR
                                                             : MODEL_ROPE_SCALING_NONE;
    } else if (strcmp(type, "linear") == 0) {
        d->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
    } else if (strcmp(type, "yarn") == 0) {
        d->rope_scaling = MODEL_ROPE_SCALING_YARN;
    } else {
        return inf_error_set(err, INF_EUNSUPPORTED, "%s: '%s' = '%s' is not supported", f->path,
                             key, type);
    }
    if (d->rope_scaling != MODEL_ROPE_SCALING_NONE) {
        if (!(factor > 0.0f) || !isfinite(factor))
            return inf_error_set(err, INF_EFORMAT, "%s: rope scaling factor must be > 0, got %g",
                                 f->path, factor);
        d->rope_scaling_factor = factor;
    }
    d->rope_orig_ctx = 0;
    return arch_u32(f, d->arch, "rope.scaling.original_context_length", &d->rope_orig_ctx, 0, err);
}

static int read_dims(model_desc *d, const gguf_file *f, inf_error *err) {
    int rc;
    if ((rc = arch_u32(f, d->arch, "block_count", &d->n_layer, 1, err)) ||
        (rc = arch_u32(f, d->arch, "embedding_length", &d->n_embd, 1, err)) ||
        (rc = arch_u32(f, d->arch, "feed_forward_length", &d->n_ff, 1, err)) ||
        (rc = arch_u32(f, d->arch, "attention.head_count", &d->n_head, 1, err)))
        return rc;
    d->n_head_kv = d->n_head;
    if ((rc = arch_u32(f, d->arch, "attention.head_count_kv", &d->n_head_kv, 0, err))) return rc;
    if (d->n_layer == 0 || d->n_layer > 1024 || d->n_embd == 0 || d->n_embd > 65536 ||
        d->n_ff == 0 || d->n_ff > 1u << 20 || d->n_head == 0 || d->n_head > 1024)
        return inf_error_set(err, INF_EFORMAT,
                             "%s: implausible dims n_layer=%u n_embd=%u n_ff=%u n_head=%u", f->path,
                             d->n_layer, d->n_embd, d->n_ff, d->n_head);
    if (d->n_head_kv == 0 || d->n_head % d->n_head_kv != 0)
        return inf_error_set(err, INF_EFORMAT,
                             "%s: attention.head_count_kv=%u must divide head_count=%u", f->path,
                             d->n_head_kv, d->n_head);
    d->head_dim = d->n_embd / d->n_head;
    if ((rc = arch_u32(f, d->arch, "attention.key_length", &d->head_dim, 0, err))) return rc;
    uint32_t vlen = d->head_dim;
    if ((rc = arch_u32(f, d->arch, "attention.value_length", &vlen, 0, err))) return rc;
    if (d->head_dim == 0 || d->head_dim > 1024 || vlen != d->head_dim)
        return inf_error_set(err, INF_EUNSUPPORTED, "%s: head dim %u (value length %u) unsupported",
                             f->path, d->head_dim, vlen);
    d->n_rot = d->head_dim;
    if ((rc = arch_u32(f, d->arch, "rope.dimension_count", &d->n_rot, 0, err))) return rc;
    if (d->n_rot == 0 || d->n_rot > d->head_dim || d->n_rot % 2)
        return inf_error_set(err, INF_EFORMAT, "%s: rope.dimension_count=%u invalid for head dim %u",
                             f->path, d->n_rot, d->head_dim);
    d->n_ctx_train = 2048;
    if ((rc = arch_u32(f, d->arch, "context_length", &d->n_ctx_train, 0, err))) return rc;
    d->rms_eps = 1e-5f;
    char key[160];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", d->arch);
    if ((rc = gguf_get_f32(f, key, &d->rms_eps, err)) == INF_ENOTFOUND)
        return inf_error_set(err, INF_EFORMAT, "%s: missing metadata key '%s'", f->path, key);
    if (rc) return rc;
    if (!(d->rms_eps > 0.0f) || d->rms_eps > 1.0f)
        return inf_error_set(err, INF_EFORMAT, "%s: '%s' = %g out of range (0, 1]", f->path, key,
                             d->rms_eps);
    d->rope_freq_base = 10000.0f;
    if ((rc = arch_f32(f, d->arch, "rope.freq_base", &d->rope_freq_base, err))) return rc;
    if (!(d->rope_freq_base > 0.0f) || !isfinite(d->rope_freq_base))
        return inf_error_set(err, INF_EFORMAT, "%s: rope.freq_base %g must be > 0", f->path,
                             d->rope_freq_base);
    /* llama.cpp's llama_model_rope_type: every architecture here but llama is NeoX. */
    d->rope_neox = d->arch_id != MODEL_ARCH_LLAMA;
    return read_rope_scaling(d, f, err);
}

/* What each architecture's graph does beyond llama's, from the keys its
 * converter writes and the constants llama.cpp's loader sets
 * (llama-model.cpp load_hparams). */
static int read_features(model_desc *d, const gguf_file *f, inf_error *err) {
    int rc;
    d->embd_scale = 1.0f;
    d->attn_scale = 1.0f / sqrtf((float)d->head_dim);
    d->rope_freq_base_swa = d->rope_freq_base;
    d->rope_attn_factor = 1.0f;
    d->yarn_beta_fast = 32.0f;
    d->yarn_beta_slow = 1.0f;
    d->swa_pattern = 1;
    if ((rc = arch_f32(f, d->arch, "rope.scaling.attn_factor", &d->rope_attn_factor, err))) return rc;
    if (!(d->rope_attn_factor > 0.0f) || !isfinite(d->rope_attn_factor))
        return inf_error_set(err, INF_EFORMAT, "%s: %s.rope.scaling.attn_factor %g must be > 0",
                             f->path, d->arch, d->rope_attn_factor);
    int gemma = d->arch_id == MODEL_ARCH_GEMMA2 || d->arch_id == MODEL_ARCH_GEMMA3;
    d->has_qk_norm = d->arch_id == MODEL_ARCH_QWEN3 || d->arch_id == MODEL_ARCH_GEMMA3;
    d->has_post_norms = gemma;
    d->ffn_gelu = gemma;
    d->fused_qkv = d->fused_gate_up = d->arch_id == MODEL_ARCH_PHI3;
    if (gemma) {
        d->embd_scale = sqrtf((float)d->n_embd);
        /* query_pre_attn_scalar: llama.cpp keys it on the 27B layer count. */
        uint32_t big = d->arch_id == MODEL_ARCH_GEMMA2 ? 46 : 62;
        if (d->n_layer == big) d->attn_scale = 1.0f / sqrtf((float)(d->n_embd / d->n_head));
        d->swa_pattern = d->arch_id == MODEL_ARCH_GEMMA2 ? 2 : 6;
        d->n_swa = d->arch_id == MODEL_ARCH_GEMMA2 ? 4096 : 0;
        if ((rc = arch_u32(f, d->arch, "attention.sliding_window", &d->n_swa,
                           d->arch_id == MODEL_ARCH_GEMMA3, err)))
            return rc;
        if (d->n_swa == 0)
            return inf_error_set(err, INF_EFORMAT, "%s: %s.attention.sliding_window must be > 0",
                                 f->path, d->arch);
    }
    if (d->arch_id == MODEL_ARCH_GEMMA2) {
        d->attn_softcap = 50.0f; /* llama.cpp's defaults when the keys are absent */
        d->final_softcap = 30.0f;
        if ((rc = arch_f32(f, d->arch, "attn_logit_softcapping", &d->attn_softcap, err)) ||
            (rc = arch_f32(f, d->arch, "final_logit_softcapping", &d->final_softcap, err)))
            return rc;
        if (!(d->attn_softcap > 0.0f) || !(d->final_softcap > 0.0f) ||
            !isfinite(d->attn_softcap) || !isfinite(d->final_softcap))
            return inf_error_set(err, INF_EFORMAT, "%s: gemma2 soft-capping values %g, %g must be > 0",
                                 f->path, d->attn_softcap, d->final_softcap);
    }
    if (d->arch_id == MODEL_ARCH_GEMMA3) {
        /* Local layers: base 10000 and no scaling (llama.cpp sets both). */
        d->rope_freq_base_swa = 10000.0f;
    }
    return 0;
}

int model_layer_is_swa(const model_desc *d, int l) {
    if (d->n_swa == 0 || d->swa_pattern <= 1) return 0;
    return (uint32_t)l % d->swa_pattern < d->swa_pattern - 1;
}

/* Vocabulary size: token_embd's second dimension is the truth the forward pass uses. */
static int read_vocab(model_desc *d, const gguf_file *f, inf_error *err) {
    const gguf_tensor *emb = model_tensor(f, -1, "token_embd.weight");
    if (!emb)
        return inf_error_set(err, INF_EFORMAT, "%s: missing tensor 'token_embd.weight'", f->path);
    if (emb->n_dims != 2 || emb->ne[0] != d->n_embd || emb->ne[1] == 0 || emb->ne[1] > 1u << 24)
        return inf_error_set(err, INF_EFORMAT,
                             "%s: tensor 'token_embd.weight' shape [%llu, %llu] does not match "
                             "n_embd=%u", f->path, (unsigned long long)emb->ne[0],
                             (unsigned long long)(emb->n_dims > 1 ? emb->ne[1] : 1), d->n_embd);
    d->n_vocab = (uint32_t)emb->ne[1];
    uint32_t meta_vocab = 0;
    int rc = arch_u32(f, d->arch, "vocab_size", &meta_vocab, 0, err);
    if (rc) return rc;
    if (meta_vocab && meta_vocab != d->n_vocab)
        return inf_error_set(err, INF_EFORMAT, "%s: %s.vocab_size=%u but token_embd has %u rows",
                             f->path, d->arch, meta_vocab, d->n_vocab);
    return 0;
}

static int check_tensors(model_desc *d, const gguf_file *f, inf_error *err) {
    uint64_t E = d->n_embd, Q = (uint64_t)d->n_head * d->head_dim;
    uint64_t KV = (uint64_t)d->n_head_kv * d->head_dim, F = d->n_ff, V = d->n_vocab;
    int rc;
    d->tied_embeddings = model_tensor(f, -1, "output.weight") == NULL;
    if ((rc = expect_tensor(f, -1, "token_embd.weight", E, V, 0, err)) ||
        (rc = expect_tensor(f, -1, "output_norm.weight", E, 0, 0, err)) ||
        (rc = expect_tensor(f, -1, "output.weight", E, V, 1, err)))
        return rc;
    d->has_rope_freq_factors = model_tensor(f, -1, "rope_freqs.weight") != NULL;
    if (d->has_rope_freq_factors &&
        (rc = expect_tensor(f, -1, "rope_freqs.weight", d->n_rot / 2, 0, 0, err)))
        return rc;
    d->has_longrope = model_tensor(f, -1, "rope_factors_long.weight") != NULL ||
                      model_tensor(f, -1, "rope_factors_short.weight") != NULL;
    if (d->has_longrope &&
        ((rc = expect_tensor(f, -1, "rope_factors_long.weight", d->n_rot / 2, 0, 0, err)) ||
         (rc = expect_tensor(f, -1, "rope_factors_short.weight", d->n_rot / 2, 0, 0, err))))
        return rc;
    if (d->has_longrope && d->has_rope_freq_factors)
        return inf_error_set(err, INF_EFORMAT,
                             "%s: both rope_freqs and rope_factors_long/short are present", f->path);
    if (d->fused_qkv && Q != E)
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "%s: fused attn_qkv needs n_head * head_dim == n_embd (%llu != %llu)",
                             f->path, (unsigned long long)Q, (unsigned long long)E);
    d->has_qkv_bias = model_tensor(f, 0, "attn_q.bias") != NULL;
    if (d->has_qkv_bias && d->fused_qkv)
        return inf_error_set(err, INF_EUNSUPPORTED, "%s: q/k/v biases with a fused attn_qkv",
                             f->path);
    for (uint32_t l = 0; l < d->n_layer; l++) {
        int L = (int)l;
        if ((rc = expect_tensor(f, L, "attn_norm.weight", E, 0, 0, err)) ||
            (rc = expect_tensor(f, L, "attn_output.weight", Q, E, 0, err)) ||
            (rc = expect_tensor(f, L, "ffn_norm.weight", E, 0, 0, err)) ||
            (rc = expect_tensor(f, L, "ffn_down.weight", F, E, 0, err)))
            return rc;
        if (d->fused_qkv) rc = expect_tensor(f, L, "attn_qkv.weight", E, Q + 2 * KV, 0, err);
        else if (!(rc = expect_tensor(f, L, "attn_q.weight", E, Q, 0, err)) &&
                 !(rc = expect_tensor(f, L, "attn_k.weight", E, KV, 0, err)))
            rc = expect_tensor(f, L, "attn_v.weight", E, KV, 0, err);
        if (rc) return rc;
        if (d->fused_gate_up) rc = expect_tensor(f, L, "ffn_up.weight", E, 2 * F, 0, err);
        else if (!(rc = expect_tensor(f, L, "ffn_gate.weight", E, F, 0, err)))
            rc = expect_tensor(f, L, "ffn_up.weight", E, F, 0, err);
        if (rc) return rc;
        if (d->has_qk_norm &&
            ((rc = expect_tensor(f, L, "attn_q_norm.weight", d->head_dim, 0, 0, err)) ||
             (rc = expect_tensor(f, L, "attn_k_norm.weight", d->head_dim, 0, 0, err))))
            return rc;
        if (d->has_post_norms &&
            ((rc = expect_tensor(f, L, "post_attention_norm.weight", E, 0, 0, err)) ||
             (rc = expect_tensor(f, L, "post_ffw_norm.weight", E, 0, 0, err))))
            return rc;
        if (d->has_qkv_bias &&
            ((rc = expect_tensor(f, L, "attn_q.bias", Q, 0, 0, err)) ||
             (rc = expect_tensor(f, L, "attn_k.bias", KV, 0, 0, err)) ||
             (rc = expect_tensor(f, L, "attn_v.bias", KV, 0, 0, err))))
            return rc;
    }
    return 0;
}

int model_desc_from_gguf(model_desc *d, const gguf_file *f, inf_error *err) {
    memset(d, 0, sizeof *d);
    int rc;
    if ((rc = read_arch(d, f, err)) || (rc = read_dims(d, f, err)) ||
        (rc = read_features(d, f, err)) || (rc = read_vocab(d, f, err)) ||
        (rc = check_tensors(d, f, err)))
        return rc;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        d->n_params += f->tensors[i].n_elements;
        d->n_bytes += f->tensors[i].nbytes;
    }
    return 0;
}

int model_weight_type(const gguf_file *f) {
    const gguf_tensor *t = model_tensor(f, 0, "attn_q.weight");
    if (!t) t = model_tensor(f, 0, "attn_qkv.weight"); /* fused (phi3) */
    return t ? t->type : -1;
}
