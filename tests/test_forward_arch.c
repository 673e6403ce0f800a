/* test_forward_arch.c - the CPU backend on every architecture model.h
 * supports (qwen3, gemma2, gemma3, phi3, YaRN on llama and qwen3) against a
 * naive double-precision reference written from llama.cpp's graphs
 * (llama-model.cpp llm_build_*) and ggml's rope, not from the fast path: it
 * reads the GGUF keys itself, attends over full causal rows with its own
 * window mask and keeps everything in double. Random models from
 * model_random_write_arch, F32 / F16 / Q8_0 and K-quant weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gguf.h"
#include "model.h"
#include "model_random.h"
#include "quant.h"
#include "testutil.h"

/* ---- the reference -------------------------------------------------------- */

typedef struct ref_cfg {
    char arch[32];
    int L, E, H, HK, hd, F, V, n_rot, neox;
    double eps, base, base_swa, scale_global, scale_swa, mscale_global, mscale_swa;
    int n_swa, pattern, yarn, orig_ctx;
    double attn_cap, final_cap, embd_scale, attn_scale;
    int qk_norm, post_norms, gelu, fused;
    double *factors; /* per-pair frequency divisors or NULL */
} ref_cfg;

static uint32_t key_u32(const gguf_file *f, const char *arch, const char *k, uint32_t def) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    uint32_t v = def;
    gguf_get_u32(f, key, &v, NULL);
    return v;
}

static double key_f32(const gguf_file *f, const char *arch, const char *k, double def) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    float v = (float)def;
    if (gguf_get_f32(f, key, &v, NULL)) return def;
    return v;
}

/* Whole tensor as doubles (rows of ne[0]). */
static double *ref_tensor(const gguf_file *f, int layer, const char *suffix) {
    const gguf_tensor *t = model_tensor(f, layer, suffix);
    if (!t) return NULL;
    uint64_t rows = t->n_elements / t->ne[0];
    int ok = 1;
    size_t rb = quant_row_bytes(t->type, t->ne[0], &ok);
    float *row = malloc(t->ne[0] * sizeof(float));
    double *out = malloc(t->n_elements * sizeof(double));
    for (uint64_t r = 0; r < rows; r++) {
        quant_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, row, t->ne[0]);
        for (uint64_t i = 0; i < t->ne[0]; i++) out[r * t->ne[0] + i] = row[i];
    }
    free(row);
    return out;
}

/* The graph's constants from the keys, as llama.cpp's loader sets them. */
static void ref_config(const gguf_file *f, int n_ctx, ref_cfg *c) {
    memset(c, 0, sizeof *c);
    gguf_get_cstr(f, "general.architecture", c->arch, sizeof c->arch, NULL);
    const char *a = c->arch;
    int gemma = !strcmp(a, "gemma2") || !strcmp(a, "gemma3");
    c->L = (int)key_u32(f, a, "block_count", 0);
    c->E = (int)key_u32(f, a, "embedding_length", 0);
    c->H = (int)key_u32(f, a, "attention.head_count", 0);
    c->HK = (int)key_u32(f, a, "attention.head_count_kv", (uint32_t)c->H);
    c->F = (int)key_u32(f, a, "feed_forward_length", 0);
    c->hd = (int)key_u32(f, a, "attention.key_length", (uint32_t)(c->E / c->H));
    c->n_rot = (int)key_u32(f, a, "rope.dimension_count", (uint32_t)c->hd);
    c->V = (int)model_tensor(f, -1, "token_embd.weight")->ne[1];
    c->eps = key_f32(f, a, "attention.layer_norm_rms_epsilon", 1e-5);
    c->neox = strcmp(a, "llama") != 0;
    c->base = key_f32(f, a, "rope.freq_base", 10000.0);
    c->base_swa = !strcmp(a, "gemma3") ? 10000.0 : c->base;
    char type[32] = "";
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    gguf_get_cstr(f, key, type, sizeof type, NULL);
    double factor = key_f32(f, a, "rope.scaling.factor", 1.0);
    c->yarn = !strcmp(type, "yarn");
    c->scale_global = 1.0 / factor;
    c->scale_swa = !strcmp(a, "gemma3") ? 1.0 : c->scale_global;
    c->orig_ctx = (int)key_u32(f, a, "rope.scaling.original_context_length",
                               key_u32(f, a, "context_length", 2048));
    double af = key_f32(f, a, "rope.scaling.attn_factor", 1.0);
    c->mscale_global = af * (c->yarn ? 1.0 + 0.1 * log(factor) : 1.0);
    c->mscale_swa = af; /* gemma3's local layers: freq_scale 1, ln(1) = 0 */
    if (!strcmp(a, "gemma2") || !strcmp(a, "gemma3")) {
        c->pattern = !strcmp(a, "gemma2") ? 2 : 6;
        c->n_swa = (int)key_u32(f, a, "attention.sliding_window", 4096);
    }
    if (!strcmp(a, "gemma2")) {
        c->attn_cap = key_f32(f, a, "attn_logit_softcapping", 50.0);
        c->final_cap = key_f32(f, a, "final_logit_softcapping", 30.0);
    }
    c->embd_scale = gemma ? sqrt((double)c->E) : 1.0;
    c->attn_scale = 1.0 / sqrt((double)c->hd);
    c->qk_norm = !strcmp(a, "qwen3") || !strcmp(a, "gemma3");
    c->post_norms = c->gelu = gemma;
    c->fused = !strcmp(a, "phi3");
    const char *fname = model_tensor(f, -1, "rope_freqs.weight") ? "rope_freqs.weight"
                      : n_ctx > c->orig_ctx ? "rope_factors_long.weight"
                                            : "rope_factors_short.weight";
    c->factors = ref_tensor(f, -1, fname);
}

static void ref_rmsnorm(double *out, const double *x, const double *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

static void ref_matvec(const double *W, const double *x, int rows, int cols, double *y) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int k = 0; k < cols; k++) s += W[(size_t)r * cols + k] * x[k];
        y[r] = s;
    }
}

/* ggml_rope_ext: YaRN mixes extrapolated and interpolated angles per
 * dimension between the correction dims; cos and sin times mscale. */
static void ref_rope(const ref_cfg *c, double *v, int n_heads, int pos, int swa) {
    double base = swa ? c->base_swa : c->base, fs = swa ? c->scale_swa : c->scale_global;
    double ms = swa ? c->mscale_swa : c->mscale_global;
    double lo = 0, hi = 0;
    if (c->yarn) {
        double pi2 = 2 * M_PI;
        lo = floor(c->n_rot * log(c->orig_ctx / (32.0 * pi2)) / (2 * log(base)));
        hi = ceil(c->n_rot * log(c->orig_ctx / (1.0 * pi2)) / (2 * log(base)));
        if (lo < 0) lo = 0;
        if (hi > c->n_rot - 1) hi = c->n_rot - 1;
    }
    for (int h = 0; h < n_heads; h++) {
        double *x = v + (size_t)h * c->hd;
        for (int i = 0; i < c->n_rot / 2; i++) {
            double ext = pos * pow(base, -2.0 * i / c->n_rot);
            if (c->factors) ext /= c->factors[i];
            double th = fs * ext;
            if (c->yarn) {
                double y = (i - lo) / fmax(0.001, hi - lo);
                double mix = 1 - fmin(1, fmax(0, y));
                th = th * (1 - mix) + ext * mix;
            }
            int a = c->neox ? i : 2 * i, b = c->neox ? i + c->n_rot / 2 : 2 * i + 1;
            double x0 = x[a], x1 = x[b];
            x[a] = (x0 * cos(th) - x1 * sin(th)) * ms;
            x[b] = (x0 * sin(th) + x1 * cos(th)) * ms;
        }
    }
}

/* Logits for every position of one sequence: out[n][V]. */
static void ref_forward(const gguf_file *f, int n_ctx, const int32_t *toks, int n, double *out) {
    ref_cfg c;
    ref_config(f, n_ctx, &c);
    int E = c.E, hd = c.hd, H = c.H, HK = c.HK, Q = H * hd, KV = HK * hd, F = c.F, V = c.V;
    double *x = malloc(sizeof(double) * (size_t)n * E), *xb = malloc(sizeof(double) * (E + Q));
    double *q = malloc(sizeof(double) * (size_t)n * Q), *k = malloc(sizeof(double) * (size_t)n * KV);
    double *v = malloc(sizeof(double) * (size_t)n * KV), *att = malloc(sizeof(double) * (size_t)n * Q);
    double *gu = malloc(sizeof(double) * 2 * F), *tmp = malloc(sizeof(double) * (E + Q + 2 * KV));
    double *sc = malloc(sizeof(double) * n);
    double *emb = ref_tensor(f, -1, "token_embd.weight");
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++) x[(size_t)t * E + i] = emb[(size_t)toks[t] * E + i] * c.embd_scale;
    for (int l = 0; l < c.L; l++) {
        int swa = c.pattern && l % c.pattern < c.pattern - 1;
        double *an = ref_tensor(f, l, "attn_norm.weight"), *fn = ref_tensor(f, l, "ffn_norm.weight");
        double *wo = ref_tensor(f, l, "attn_output.weight"), *wd = ref_tensor(f, l, "ffn_down.weight");
        double *wqkv = c.fused ? ref_tensor(f, l, "attn_qkv.weight") : NULL;
        double *wq = wqkv ? wqkv : ref_tensor(f, l, "attn_q.weight");
        double *wk = wqkv ? wqkv + (size_t)Q * E : ref_tensor(f, l, "attn_k.weight");
        double *wv = wqkv ? wqkv + (size_t)(Q + KV) * E : ref_tensor(f, l, "attn_v.weight");
        double *wup = ref_tensor(f, l, "ffn_up.weight");
        double *wg = c.fused ? wup : ref_tensor(f, l, "ffn_gate.weight");
        double *wu = c.fused ? wup + (size_t)F * E : wup;
        double *qn = ref_tensor(f, l, "attn_q_norm.weight"), *kn = ref_tensor(f, l, "attn_k_norm.weight");
        double *pa = ref_tensor(f, l, "post_attention_norm.weight");
        double *pf = ref_tensor(f, l, "post_ffw_norm.weight");
        double *bq = ref_tensor(f, l, "attn_q.bias"), *bk = ref_tensor(f, l, "attn_k.bias");
        double *bv = ref_tensor(f, l, "attn_v.bias");
        for (int t = 0; t < n; t++) {
            double *qt = q + (size_t)t * Q, *kt = k + (size_t)t * KV, *vt = v + (size_t)t * KV;
            ref_rmsnorm(xb, x + (size_t)t * E, an, E, c.eps);
            ref_matvec(wq, xb, Q, E, qt);
            ref_matvec(wk, xb, KV, E, kt);
            ref_matvec(wv, xb, KV, E, vt);
            for (int i = 0; bq && i < Q; i++) qt[i] += bq[i];
            for (int i = 0; bk && i < KV; i++) kt[i] += bk[i];
            for (int i = 0; bv && i < KV; i++) vt[i] += bv[i];
            if (c.qk_norm) {
                for (int h = 0; h < H; h++) ref_rmsnorm(qt + h * hd, qt + h * hd, qn, hd, c.eps);
                for (int h = 0; h < HK; h++) ref_rmsnorm(kt + h * hd, kt + h * hd, kn, hd, c.eps);
            }
            ref_rope(&c, qt, H, t, swa);
            ref_rope(&c, kt, HK, t, swa);
        }
        for (int t = 0; t < n; t++)
            for (int h = 0; h < H; h++) {
                int kh = h / (H / HK);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    sc[j] = -INFINITY;
                    if (swa && t - j >= c.n_swa) continue; /* outside the window */
                    double s = 0;
                    for (int i = 0; i < hd; i++)
                        s += q[(size_t)t * Q + h * hd + i] * k[(size_t)j * KV + kh * hd + i];
                    s *= c.attn_scale;
                    if (c.attn_cap > 0) s = c.attn_cap * tanh(s / c.attn_cap);
                    sc[j] = s;
                    if (s > mx) mx = s;
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = sc[j] == -INFINITY ? 0 : exp(sc[j] - mx));
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int j = 0; j <= t; j++) o += sc[j] / sum * v[(size_t)j * KV + kh * hd + i];
                    att[(size_t)t * Q + h * hd + i] = o;
                }
            }
        for (int t = 0; t < n; t++) {
            double *xt = x + (size_t)t * E;
            ref_matvec(wo, att + (size_t)t * Q, E, Q, tmp);
            if (pa) ref_rmsnorm(tmp, tmp, pa, E, c.eps);
            for (int i = 0; i < E; i++) xt[i] += tmp[i];
            ref_rmsnorm(xb, xt, fn, E, c.eps);
            ref_matvec(wg, xb, F, E, gu);
            ref_matvec(wu, xb, F, E, gu + F);
            for (int i = 0; i < F; i++) {
                double g = gu[i];
                double act = c.gelu ? 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))
                                    : g / (1 + exp(-g));
                gu[i] = act * gu[F + i];
            }
            ref_matvec(wd, gu, E, F, tmp);
            if (pf) ref_rmsnorm(tmp, tmp, pf, E, c.eps);
            for (int i = 0; i < E; i++) xt[i] += tmp[i];
        }
        free(an); free(fn); free(wo); free(wd); free(qn); free(kn); free(pa); free(pf);
        free(bq); free(bk); free(bv); free(wup);
        if (wqkv) free(wqkv);
        else { free(wq); free(wk); free(wv); }
        if (!c.fused) free(wg);
    }
    double *on = ref_tensor(f, -1, "output_norm.weight"), *wout = ref_tensor(f, -1, "output.weight");
    for (int t = 0; t < n; t++) {
        ref_rmsnorm(xb, x + (size_t)t * E, on, E, c.eps);
        double *o = out + (size_t)t * V;
        ref_matvec(wout ? wout : emb, xb, V, E, o);
        for (int i = 0; c.final_cap > 0 && i < V; i++) o[i] = c.final_cap * tanh(o[i] / c.final_cap);
    }
    free(on); free(wout); free(emb); free(x); free(xb); free(q); free(k); free(v); free(att);
    free(gu); free(tmp); free(sc); free(c.factors);
}

/* ---- models and runs -------------------------------------------------------- */

typedef struct arch_case {
    const char *name, *arch;
    uint32_t n_layer, head_dim, n_swa;
    float attn_cap, final_cap;
    const char *scaling;
    float factor;
    uint32_t orig_ctx;
    int rope_n_ctx; /* phi3: > orig: long factors */
} arch_case;

/* Windows of 8 over 21 tokens, caps that bend the scores (random models'
 * scores and logits are O(1)), head dims apart from n_embd / n_head. */
static const arch_case cases[] = {
    {"qwen3", "qwen3", 2, 32, 0, 0, 0, NULL, 0, 0, 0},
    {"gemma2", "gemma2", 2, 0, 8, 2.0f, 3.0f, NULL, 0, 0, 0},
    {"gemma3", "gemma3", 6, 32, 8, 0, 0, "linear", 4.0f, 0, 0},
    {"phi3-long", "phi3", 2, 0, 0, 0, 0, NULL, 0, 64, 256},
    {"phi3-short", "phi3", 2, 0, 0, 0, 0, NULL, 0, 64, 32},
    {"llama-yarn", "llama", 2, 0, 0, 0, 0, "yarn", 4.0f, 32, 0},
    {"qwen3-yarn", "qwen3", 2, 0, 0, 0, 0, "yarn", 8.0f, 16, 0},
};

static const char *write_case(const arch_case *ac, int type, uint32_t E, uint32_t F) {
    model_random_opts o = {ac->n_layer, E, 4, 2, F, 300, 256, type, 0, 0, "llama", 10000.0f, NULL, 7};
    model_random_arch_opts x;
    CU_ASSERT_EQUAL_FATAL(model_random_arch(&o, &x, ac->arch, NULL), 0);
    /* K-quant rows are 256 wide: the 256-wide shapes keep head_dim = n_embd / n_head */
    x.head_dim = E % 256 == 0 ? 0 : ac->head_dim;
    if (ac->n_swa) x.n_swa = ac->n_swa;
    if (ac->attn_cap > 0) x.attn_softcap = ac->attn_cap;
    if (ac->final_cap > 0) x.final_softcap = ac->final_cap;
    x.rope_scaling = ac->scaling;
    x.rope_scaling_factor = ac->factor;
    if (ac->orig_ctx) x.rope_orig_ctx = ac->orig_ctx;
    char name[128];
    snprintf(name, sizeof name, "arch-%s-%s-%u.gguf", ac->name, quant_type_name(type), E);
    const char *path = tu_tmpfile(name);
    inf_error err = {0};
    int rc = model_random_write_arch(path, &o, &x, &err);
    if (rc) fprintf(stderr, "\n  write %s: %s\n", name, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return path;
}

static backend *open_cpu(gguf_file *f, int kv_f32, int rope_n_ctx) {
    backend_config cfg = backend_config_default();
    cfg.kv_cache_bytes = 16 << 20;
    cfg.kv_type = kv_f32 ? BACKEND_KV_F32 : BACKEND_KV_F16;
    cfg.n_threads = 2;
    cfg.max_batch_tokens = 256;
    cfg.rope_n_ctx = rope_n_ctx;
    backend *b = NULL;
    inf_error err = {0};
    if (backend_cpu_create(&b, f, &cfg, &err)) fprintf(stderr, "\n  backend: %s\n", err.msg);
    return b;
}

/* One sequence from position 0 in a single batch, blocks first..; logits per position. */
static float *prefill(backend *b, const int32_t *toks, int n, int first_block) {
    int bs = b->kv_block_size, nb = (n + bs - 1) / bs;
    int32_t blocks[64], pos[256], si[256];
    uint8_t need[256];
    for (int i = 0; i < nb; i++) blocks[i] = first_block + i;
    for (int i = 0; i < n; i++) { pos[i] = i; si[i] = 0; need[i] = 1; }
    backend_seq seq = {blocks, nb};
    backend_batch bt = {n, toks, pos, si, need, 1, &seq};
    float *lg = malloc(sizeof(float) * (size_t)n * b->desc.n_vocab);
    inf_error err = {0};
    int rc = backend_forward(b, &bt, lg, &err);
    if (rc) fprintf(stderr, "\n  forward: %s\n", err.msg);
    CU_ASSERT_EQUAL(rc, 0);
    return lg;
}

static double rel_err(const float *a, const double *ref, size_t n) {
    double md = 0, mr = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double dd = fabs(a[i] - ref[i]);
        if (dd > md || isnan(dd)) md = isnan(dd) ? INFINITY : dd;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}

static void check_case(const arch_case *ac, int type, uint32_t E, uint32_t F, double tol) {
    const char *path = write_case(ac, type, E, F);
    gguf_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, NULL), 0);
    backend *b = open_cpu(f, 1, ac->rope_n_ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    enum { N = 21 };
    int32_t toks[N];
    uint64_t s = 99;
    for (int i = 0; i < N; i++) toks[i] = (int32_t)(tu_rand_u64(&s) % 300);
    float *got = prefill(b, toks, N, 0);
    double *ref = malloc(sizeof(double) * N * 300);
    ref_forward(f, ac->rope_n_ctx ? ac->rope_n_ctx : 256, toks, N, ref);
    double e = rel_err(got, ref, (size_t)N * 300);
    if (!(e <= tol) || getenv("INFERNO_TEST_VERBOSE"))
        fprintf(stderr, "\n  %s %s: rel err %.3g (tol %.3g)", ac->name, quant_type_name(type), e, tol);
    CU_ASSERT(e <= tol);
    free(got);
    free(ref);
    backend_free(b);
    gguf_close(f);
}

/* Tolerances as the llama suite's (test_forward.c): float weights differ
 * from the reference by f32 accumulation order only; Q8_0 quantizes the
 * activations to 8 bits per 32 (4e-2, not 3e-2: QK-norm rescales every head
 * to unit rms, which the quantization error follows; 3.1e-2 seen on
 * qwen3-yarn); K-quants per 256. */
static void test_arch_vs_reference(void) {
    static const struct { int type; double tol; } types[] = {
        {GGML_TYPE_F32, 2e-4}, {GGML_TYPE_F16, 2e-4}, {GGML_TYPE_Q8_0, 4e-2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            check_case(&cases[c], types[t].type, 64, 96, types[t].tol);
}

static void test_arch_vs_reference_k(void) {
    static const int types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            check_case(&cases[c], types[t], 256, 512, 5e-2);
}

/* Decode through the cache (F16 KV, scattered blocks) equals the prefill,
 * on gemma2 (window 8: decode steps cross it) and phi3 (fused tensors). */
static void test_arch_decode_equals_prefill(void) {
    for (int ci = 1; ci <= 3; ci += 2) {
        const char *path = write_case(&cases[ci], GGML_TYPE_F16, 64, 96);
        gguf_file *f = NULL;
        CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, NULL), 0);
        backend *b = open_cpu(f, 0, cases[ci].rope_n_ctx);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        enum { N = 37 };
        int32_t toks[N];
        uint64_t s = 5;
        for (int i = 0; i < N; i++) toks[i] = (int32_t)(tu_rand_u64(&s) % 300);
        float *all = prefill(b, toks, N, 0);
        int32_t blocks[3] = {5, 9, 7};
        float one[300];
        double maxerr = 0, maxref = 0;
        for (int i = 0; i < N; i++) {
            int32_t pos = i, si = 0;
            uint8_t need = 1;
            backend_seq seq = {blocks, 3};
            backend_batch bt = {1, &toks[i], &pos, &si, &need, 1, &seq};
            CU_ASSERT_EQUAL_FATAL(backend_forward(b, &bt, one, NULL), 0);
            for (int j = 0; j < 300; j++) {
                maxerr = fmax(maxerr, fabs(one[j] - all[(size_t)i * 300 + j]));
                maxref = fmax(maxref, fabs(all[(size_t)i * 300 + j]));
            }
        }
        if (!(maxerr <= 1e-3 * maxref)) fprintf(stderr, "\n  %s: decode vs prefill %.3g", cases[ci].name, maxerr);
        CU_ASSERT(maxerr <= 1e-3 * maxref);
        free(all);
        backend_free(b);
        gguf_close(f);
    }
}

/* Two gemma3 sequences of different lengths in one batch give each one's
 * logits alone (the window follows each sequence's positions). */
static void test_arch_batch_equals_alone(void) {
    const char *path = write_case(&cases[2], GGML_TYPE_F32, 64, 96);
    gguf_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, NULL), 0);
    backend *b = open_cpu(f, 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    int32_t ta[30], tb[13];
    uint64_t s = 8;
    for (int i = 0; i < 30; i++) ta[i] = (int32_t)(tu_rand_u64(&s) % 300);
    for (int i = 0; i < 13; i++) tb[i] = (int32_t)(tu_rand_u64(&s) % 300);
    float *la = prefill(b, ta, 30, 0), *lb = prefill(b, tb, 13, 4);
    int32_t tok[43], pos[43], si[43], ba[2] = {10, 11}, bb[1] = {12};
    uint8_t need[43];
    for (int i = 0; i < 43; i++) {
        int first = i < 30;
        tok[i] = first ? ta[i] : tb[i - 30];
        pos[i] = first ? i : i - 30;
        si[i] = first ? 0 : 1;
        need[i] = 1;
    }
    backend_seq seqs[2] = {{ba, 2}, {bb, 1}};
    backend_batch bt = {43, tok, pos, si, need, 2, seqs};
    float *lg = malloc(sizeof(float) * 43 * 300);
    CU_ASSERT_EQUAL_FATAL(backend_forward(b, &bt, lg, NULL), 0);
    double e = 0;
    for (size_t i = 0; i < 30 * 300; i++) e = fmax(e, fabs(lg[i] - la[i]));
    for (size_t i = 0; i < 13 * 300; i++) e = fmax(e, fabs(lg[30 * 300 + i] - lb[i]));
    CU_ASSERT(e <= 1e-4);
    free(la), free(lb), free(lg);
    backend_free(b);
    gguf_close(f);
}

/* What model.c reads: windows, patterns, caps and scales as llama.cpp;
 * gemma3 without its window key is refused by name. */
static void test_arch_desc(void) {
    const char *path = write_case(&cases[1], GGML_TYPE_F32, 64, 96);
    gguf_file *f = NULL;
    model_desc d;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(model_desc_from_gguf(&d, f, &err), 0);
    CU_ASSERT_EQUAL(d.arch_id, MODEL_ARCH_GEMMA2);
    CU_ASSERT_EQUAL(d.n_swa, 8);
    CU_ASSERT(model_layer_is_swa(&d, 0) && !model_layer_is_swa(&d, 1));
    CU_ASSERT(d.attn_softcap == 2.0f && d.final_softcap == 3.0f && d.tied_embeddings && d.rope_neox);
    CU_ASSERT(fabsf(d.embd_scale - 8.0f) < 1e-6f && fabsf(d.attn_scale - 0.25f) < 1e-7f);
    gguf_close(f);
    path = write_case(&cases[2], GGML_TYPE_F32, 64, 96);
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(model_desc_from_gguf(&d, f, &err), 0);
    for (int l = 0; l < 6; l++) CU_ASSERT_EQUAL(model_layer_is_swa(&d, l), l < 5);
    CU_ASSERT(d.has_qk_norm && d.has_post_norms && d.ffn_gelu && d.rope_freq_base_swa == 10000.0f);
    CU_ASSERT(d.rope_freq_base == 1e6f && d.rope_scaling == MODEL_ROPE_SCALING_LINEAR);
    gguf_close(f);
    path = write_case(&cases[3], GGML_TYPE_F32, 64, 96);
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(model_desc_from_gguf(&d, f, &err), 0);
    CU_ASSERT(d.fused_qkv && d.fused_gate_up && d.has_longrope && d.n_swa == 0);
    CU_ASSERT(d.rope_attn_factor > 1.0f); /* sqrt(1 + ln(256/64) / ln(64)) */
    gguf_close(f);
    model_random_opts o;
    model_random_arch_opts x;
    CU_ASSERT_EQUAL(model_random_preset(&o, "tiny", NULL), 0);
    CU_ASSERT_EQUAL(model_random_arch(&o, &x, "gpt2", &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown architecture 'gpt2'"));
}

void test_register_forward_arch(void) {
    CU_pSuite s = CU_add_suite("forward_arch", NULL, NULL);
    CU_add_test(s, "qwen3, gemma2, gemma3, phi3, yarn vs double reference (F32, F16, Q8_0)",
                test_arch_vs_reference);
    CU_add_test(s, "the same with K-quants (Q4_K, Q6_K; 256-wide shapes)", test_arch_vs_reference_k);
    CU_add_test(s, "decode through the cache equals prefill (gemma2 window, phi3)",
                test_arch_decode_equals_prefill);
    CU_add_test(s, "gemma3: two sequences batched equal each alone", test_arch_batch_equals_alone);
    CU_add_test(s, "model_desc: windows, patterns, caps, scales as llama.cpp", test_arch_desc);
}
