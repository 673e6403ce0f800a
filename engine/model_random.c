/* model_random.c - deterministic random-weights llama GGUF writer (see model_random.h). */
#include "model_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

int model_random_preset(model_random_opts *o, const char *preset, inf_error *err) {
    memset(o, 0, sizeof *o);
    o->type = GGML_TYPE_F16;
    o->rope_freq_base = 10000.0f;
    o->arch = "llama";
    o->seed = 1;
    if (strcmp(preset, "tiny") == 0) {
        *o = (model_random_opts){5, 64, 8, 4, 172, 512, 512, GGML_TYPE_F32, 0, 0, "llama",
                                 10000.0f, NULL, 1};
    } else if (strcmp(preset, "small") == 0) {
        *o = (model_random_opts){4, 256, 8, 2, 704, 1024, 2048, GGML_TYPE_F16, 0, 0, "llama",
                                 10000.0f, NULL, 1};
    } else if (strcmp(preset, "1b") == 0) {
        *o = (model_random_opts){16, 2048, 32, 8, 8192, 128256, 131072, GGML_TYPE_F16, 1, 0,
                                 "llama", 500000.0f, NULL, 1};
    } else if (strcmp(preset, "8b") == 0) {
        *o = (model_random_opts){32, 4096, 32, 8, 14336, 128256, 8192, GGML_TYPE_F16, 0, 0,
                                 "llama", 500000.0f, NULL, 1};
    } else {
        return inf_error_set(err, INF_EINVAL, "unknown preset '%s' (tiny, small, 1b, 8b)", preset);
    }
    return 0;
}

static const char *const arch_names[] = {"llama", "mistral", "qwen2", "qwen3",
                                         "gemma2", "gemma3", "phi3"};

void model_random_arch_defaults(const model_random_opts *o, model_random_arch_opts *a) {
    memset(a, 0, sizeof *a);
    const char *arch = o->arch ? o->arch : "llama";
    if (strcmp(arch, "gemma2") == 0) {
        a->n_swa = 4096;
        a->attn_softcap = 50.0f;
        a->final_softcap = 30.0f;
    } else if (strcmp(arch, "gemma3") == 0) {
        a->n_swa = 512;
    } else if (strcmp(arch, "phi3") == 0) {
        a->longrope = 1;
        a->rope_orig_ctx = o->n_ctx / 4 ? o->n_ctx / 4 : 1;
    }
}

int model_random_arch(model_random_opts *o, model_random_arch_opts *a, const char *arch,
                      inf_error *err) {
    size_t i = 0;
    while (i < sizeof arch_names / sizeof arch_names[0] && strcmp(arch, arch_names[i])) i++;
    if (i == sizeof arch_names / sizeof arch_names[0])
        return inf_error_set(err, INF_EINVAL,
                             "unknown architecture '%s' (llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3)",
                             arch);
    o->arch = arch_names[i];
    o->qkv_bias = strcmp(arch, "qwen2") == 0;
    if (strcmp(arch, "gemma2") == 0 || strcmp(arch, "gemma3") == 0) o->tied = 1;
    if (strcmp(arch, "gemma3") == 0) o->rope_freq_base = 1000000.0f;
    model_random_arch_defaults(o, a);
    return 0;
}

static int is_gemma(const model_random_opts *o) {
    return strcmp(o->arch, "gemma2") == 0 || strcmp(o->arch, "gemma3") == 0;
}

static uint32_t head_dim(const model_random_opts *o, const model_random_arch_opts *x) {
    return x->head_dim ? x->head_dim : o->n_embd / o->n_head;
}

/* splitmix64: fast, seedable, good enough for weights. */
static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

typedef struct fill_ctx {
    const model_random_opts *o;
    const model_random_arch_opts *x;
    float *row;
    size_t row_cap;
} fill_ctx;

/* Norm weights near 1, biases small, matrices uniform with std ~ 1/sqrt(fan_in)
 * so activations keep a sane scale through many layers. */
static int fill_tensor(void *vctx, const char *name, void *dst, uint64_t nbytes) {
    fill_ctx *fc = vctx;
    uint64_t st = hash_name(name, fc->o->seed);
    int is_norm = strstr(name, "norm") != NULL, is_bias = strstr(name, ".bias") != NULL;
    int is_factors = strncmp(name, "rope_factors_", 13) == 0;
    int type = (is_norm || is_bias || is_factors) ? GGML_TYPE_F32 : fc->o->type;
    uint64_t cols;
    if (is_norm || is_bias || is_factors) cols = nbytes / 4; /* 1-D */
    else if (strstr(name, "ffn_down")) cols = fc->o->n_ff;
    else if (strstr(name, "attn_output")) cols = (uint64_t)head_dim(fc->o, fc->x) * fc->o->n_head;
    else cols = fc->o->n_embd;
    int ok = 1;
    size_t rb = quant_row_bytes(type, cols, &ok);
    if (!ok || rb == 0 || nbytes % rb) return INF_EINVAL;
    if (fc->row_cap < cols) {
        float *n = realloc(fc->row, cols * sizeof(float));
        if (!n) return INF_ENOMEM;
        fc->row = n;
        fc->row_cap = cols;
    }
    float a = is_norm ? 0.1f : is_bias ? 0.02f : sqrtf(3.0f / (float)cols);
    /* LongRoPE factors divide frequencies: >= 1, the long ones up to ~8
     * (real Phi-3 long factors grow from 1 to about 20 with the dimension). */
    float fmax = strstr(name, "long") ? 7.0f : 0.5f;
    for (uint64_t r = 0; r < nbytes / rb; r++) {
        for (uint64_t i = 0; i < cols; i++) {
            float u = (float)((mix(&st) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
            fc->row[i] = is_factors ? 1.0f + fmax * (float)i / (float)cols * (0.5f + 0.5f * u)
                       : is_norm ? 1.0f + a * u : a * u;
        }
        int rc = quant_quantize_row(type, fc->row, (uint8_t *)dst + r * rb, cols);
        if (rc) return rc;
    }
    return 0;
}

/* Synthetic SentencePiece vocabulary: specials, 256 byte tokens, then letter
 * strings with and without the U+2581 word marker, shortest first. */
static int synthetic_vocab(gguf_writer *w, uint32_t n_vocab) {
    char **toks = calloc(n_vocab, sizeof *toks);
    uint64_t *lens = calloc(n_vocab, sizeof *lens);
    float *scores = calloc(n_vocab, sizeof *scores);
    int32_t *types = calloc(n_vocab, sizeof *types);
    int rc = INF_ENOMEM;
    if (!toks || !lens || !scores || !types) goto out;
    static const char *specials[3] = {"<unk>", "<s>", "</s>"};
    static const char alpha[] = "etaoinshrdlcumwfgypbvkjxqz";
    uint32_t n = 0;
    for (int i = 0; i < 3 && n < n_vocab; i++, n++) {
        toks[n] = strdup(specials[i]);
        types[n] = i == 0 ? 2 : 3;
    }
    for (int b = 0; b < 256 && n < n_vocab; b++, n++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        toks[n] = strdup(buf);
        types[n] = 6;
    }
    for (int len = 1; n < n_vocab && len <= 6; len++) {
        uint64_t combos = 1;
        for (int i = 0; i < len; i++) combos *= 26;
        for (uint64_t c = 0; c < combos && n < n_vocab; c++) {
            for (int marker = 1; marker >= 0 && n < n_vocab; marker--) {
                char buf[32];
                int p = 0;
                if (marker) { memcpy(buf, "\xe2\x96\x81", 3); p = 3; }
                uint64_t v = c;
                for (int i = 0; i < len; i++) { buf[p++] = alpha[v % 26]; v /= 26; }
                buf[p] = '\0';
                toks[n] = strdup(buf);
                types[n] = 1;
                scores[n] = -(float)n;
                n++;
            }
        }
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (!toks[i]) goto out;
        lens[i] = strlen(toks[i]);
    }
    rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (!rc) rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, lens, n_vocab);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n_vocab);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n_vocab);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
out:
    if (toks)
        for (uint32_t i = 0; i < n_vocab; i++) free(toks[i]);
    free(toks);
    free(lens);
    free(scores);
    free(types);
    return rc;
}

/* general.file_type holds llama.cpp's llama_ftype, not the ggml tensor type:
 * the numbers differ for Q8_0 and BF16, and other readers label files by it. */
static uint32_t llama_ftype(int type) {
    switch (type) {
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q4_0: return 2;
    case GGML_TYPE_Q4_1: return 3;
    case GGML_TYPE_Q8_0: return 7;
    case GGML_TYPE_Q5_0: return 8;
    case GGML_TYPE_Q5_1: return 9;
    case GGML_TYPE_Q4_K: return 14; /* Q4_K_S: every matrix Q4_K */
    case GGML_TYPE_Q5_K: return 16; /* Q5_K_S */
    case GGML_TYPE_Q6_K: return 18;
    case GGML_TYPE_BF16: return 32;
    default: return 0; /* all F32 */
    }
}

static int set_arch_kvs(gguf_writer *w, const model_random_opts *o,
                        const model_random_arch_opts *x) {
    char key[128];
    const char *a = o->arch;
    int rc = gguf_writer_set_str(w, "general.architecture", a);
#define KU(suffix, val)                                              \
    if (!rc) {                                                       \
        snprintf(key, sizeof key, "%s.%s", a, suffix);               \
        rc = gguf_writer_set_u32(w, key, (val));                     \
    }
    if (!rc) rc = gguf_writer_set_str(w, "general.name", "inferno random model");
    if (!rc) rc = gguf_writer_set_u32(w, "general.file_type", llama_ftype(o->type));
    KU("block_count", o->n_layer)
    KU("embedding_length", o->n_embd)
    KU("feed_forward_length", o->n_ff)
    KU("attention.head_count", o->n_head)
    KU("attention.head_count_kv", o->n_head_kv)
#define KF(suffix, val)                                              \
    if (!rc) {                                                       \
        snprintf(key, sizeof key, "%s.%s", a, suffix);               \
        rc = gguf_writer_set_f32(w, key, (val));                     \
    }
    int gemma = is_gemma(o);
    uint32_t hd = head_dim(o, x);
    KU("context_length", o->n_ctx)
    /* The gemma converters write no rope.dimension_count (n_rot = head dim). */
    if (!gemma) KU("rope.dimension_count", hd)
    if (gemma || hd != o->n_embd / o->n_head) {
        KU("attention.key_length", hd)
        KU("attention.value_length", hd)
    }
    KU("vocab_size", o->n_vocab)
    KF("attention.layer_norm_rms_epsilon", gemma ? 1e-6f : 1e-5f)
    /* gemma2's converter writes no rope base (llama.cpp's default 10000). */
    if (strcmp(a, "gemma2")) KF("rope.freq_base", o->rope_freq_base)
    if (gemma) KU("attention.sliding_window", x->n_swa)
    if (strcmp(a, "gemma2") == 0) {
        KF("attn_logit_softcapping", x->attn_softcap)
        KF("final_logit_softcapping", x->final_softcap)
    }
    if (strcmp(a, "phi3") == 0) {
        KU("attention.sliding_window", 0) /* the converter's "no window" (llama.cpp ignores it) */
        KU("rope.scaling.original_context_length", x->rope_orig_ctx ? x->rope_orig_ctx : o->n_ctx)
        if (x->longrope) {
            /* convert_hf_to_gguf.py Phi3MiniModel: sqrt(1 + ln(scale) / ln(orig)) */
            double orig = x->rope_orig_ctx ? x->rope_orig_ctx : o->n_ctx, scale = o->n_ctx / orig;
            KF("rope.scaling.attn_factor",
               scale > 1.0 ? (float)sqrt(1.0 + log(scale) / log(orig)) : 1.0f)
        }
    }
    if (x->rope_scaling) {
        if (!rc) {
            snprintf(key, sizeof key, "%s.rope.scaling.type", a);
            rc = gguf_writer_set_str(w, key, x->rope_scaling);
        }
        KF("rope.scaling.factor", x->rope_scaling_factor)
        if (strcmp(x->rope_scaling, "yarn") == 0 && strcmp(a, "phi3"))
            KU("rope.scaling.original_context_length", x->rope_orig_ctx ? x->rope_orig_ctx : o->n_ctx)
    }
#undef KU
#undef KF
    return rc;
}

static int add_t(gguf_writer *w, const char *name, int type, uint64_t ne0, uint64_t ne1,
                 fill_ctx *fc) {
    uint64_t ne[2] = {ne0, ne1};
    return gguf_writer_add_tensor(w, name, type, ne1 ? 2 : 1, ne, NULL, fill_tensor, fc);
}

static int add_tensors(gguf_writer *w, const model_random_opts *o,
                       const model_random_arch_opts *x, fill_ctx *fc) {
    uint64_t E = o->n_embd, hd = head_dim(o, x), Q = hd * o->n_head, KV = hd * o->n_head_kv, F = o->n_ff;
    int T = o->type, rc = 0;
    int phi3 = strcmp(o->arch, "phi3") == 0, gemma = is_gemma(o);
    int qk_norm = strcmp(o->arch, "qwen3") == 0 || strcmp(o->arch, "gemma3") == 0;
    if (phi3 && x->longrope) {
        /* Phi3MiniModel.generate_extra_tensors: these come first */
        rc = add_t(w, "rope_factors_long.weight", GGML_TYPE_F32, hd / 2, 0, fc);
        if (!rc) rc = add_t(w, "rope_factors_short.weight", GGML_TYPE_F32, hd / 2, 0, fc);
    }
    if (!rc) rc = add_t(w, "token_embd.weight", T, E, o->n_vocab, fc);
    char name[128];
    for (uint32_t l = 0; l < o->n_layer && !rc; l++) {
#define ADD(suffix, type, a, b)                                      \
    if (!rc) {                                                       \
        snprintf(name, sizeof name, "blk.%u.%s", l, suffix);         \
        rc = add_t(w, name, type, a, b, fc);                         \
    }
        ADD("attn_norm.weight", GGML_TYPE_F32, E, 0)
        if (phi3) {
            ADD("attn_qkv.weight", T, E, Q + 2 * KV)
        } else {
            ADD("attn_q.weight", T, E, Q)
            ADD("attn_k.weight", T, E, KV)
            ADD("attn_v.weight", T, E, KV)
        }
        if (o->qkv_bias) {
            ADD("attn_q.bias", GGML_TYPE_F32, Q, 0)
            ADD("attn_k.bias", GGML_TYPE_F32, KV, 0)
            ADD("attn_v.bias", GGML_TYPE_F32, KV, 0)
        }
        if (qk_norm) {
            ADD("attn_q_norm.weight", GGML_TYPE_F32, hd, 0)
            ADD("attn_k_norm.weight", GGML_TYPE_F32, hd, 0)
        }
        ADD("attn_output.weight", T, Q, E)
        if (gemma) ADD("post_attention_norm.weight", GGML_TYPE_F32, E, 0)
        ADD("ffn_norm.weight", GGML_TYPE_F32, E, 0)
        if (phi3) {
            ADD("ffn_up.weight", T, E, 2 * F) /* [gate; up] */
        } else {
            ADD("ffn_gate.weight", T, E, F)
            ADD("ffn_up.weight", T, E, F)
        }
        ADD("ffn_down.weight", T, F, E)
        if (gemma) ADD("post_ffw_norm.weight", GGML_TYPE_F32, E, 0)
#undef ADD
    }
    if (!rc) rc = add_t(w, "output_norm.weight", GGML_TYPE_F32, E, 0, fc);
    /* llama.cpp's gemma2 never reads output.weight: an extra tensor fails its load */
    if (!rc && !o->tied && strcmp(o->arch, "gemma2")) rc = add_t(w, "output.weight", T, E, o->n_vocab, fc);
    return rc;
}

int model_random_write(const char *path, const model_random_opts *o, inf_error *err) {
    return model_random_write_arch(path, o, NULL, err);
}

int model_random_write_arch(const char *path, const model_random_opts *in,
                            const model_random_arch_opts *xin, inf_error *err) {
    model_random_opts o = *in;
    if (!o.arch) o.arch = "llama";
    model_random_arch_opts x;
    if (xin) x = *xin;
    else model_random_arch_defaults(&o, &x);
    if (o.n_head == 0 || (!x.head_dim && o.n_embd % o.n_head) || o.n_head_kv == 0 ||
        o.n_head % o.n_head_kv || o.n_layer == 0 || o.n_ff == 0 || head_dim(&o, &x) % 2 ||
        (strcmp(o.arch, "phi3") == 0 && head_dim(&o, &x) * o.n_head != o.n_embd) ||
        (is_gemma(&o) && x.n_swa == 0))
        return inf_error_set(err, INF_EINVAL,
                             "random model dims invalid: n_embd %u, n_head %u, n_head_kv %u, "
                             "head_dim %u (even; phi3: n_head * head_dim == n_embd; gemma: a "
                             "sliding window)",
                             o.n_embd, o.n_head, o.n_head_kv, head_dim(&o, &x));
    int t = o.type;
    if (!quant_type_supported(t) || t == GGML_TYPE_Q8_1 || t == GGML_TYPE_Q8_K)
        return inf_error_set(err, INF_EINVAL,
                             "random model type must be f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, "
                             "q4_k, q5_k or q6_k");
    size_t blck = quant_block_size(t);
    if (blck > 1 && (o.n_embd % blck || o.n_ff % blck || (head_dim(&o, &x) * o.n_head) % blck))
        return inf_error_set(err, INF_EINVAL, "%s random models need n_embd and n_ff divisible by %zu",
                             quant_type_name(t), blck);
    gguf_writer *w = gguf_writer_new();
    if (!w) return inf_error_set(err, INF_ENOMEM, "out of memory");
    gguf_file *vf = NULL;
    int rc = 0;
    if (o.vocab_from) {
        rc = gguf_open(&vf, o.vocab_from, err);
        const gguf_kv *toks = NULL;
        if (!rc) rc = gguf_get_arr(vf, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks, err);
        if (!rc) {
            o.n_vocab = (uint32_t)toks->arr_n;
            rc = set_arch_kvs(w, &o, &x);
        }
        if (!rc) rc = gguf_writer_copy_kvs(w, vf, "tokenizer.");
    } else {
        rc = set_arch_kvs(w, &o, &x);
        if (!rc) rc = synthetic_vocab(w, o.n_vocab);
    }
    fill_ctx fc = {&o, &x, NULL, 0};
    if (!rc) rc = add_tensors(w, &o, &x, &fc);
    if (rc && (!err || !err->msg[0])) inf_error_set(err, rc, "building random model failed");
    if (!rc) rc = gguf_writer_write(w, path, err);
    free(fc.row);
    gguf_writer_free(w);
    gguf_close(vf);
    return rc;
}
