/* test_gpu_arch.c - suite gpu_arch: the CUDA forward against the CPU one on
 * every architecture model.h supports beyond llama/qwen2 (qwen3 QK-norm,
 * gemma2 soft-caps and windows, gemma3 5:1 local layers with their own rope,
 * phi3 fused tensors and LongRoPE, YaRN): a 40-token prefill (prefill tiles
 * that start inside the window), then greedy decode steps through the
 * decode graphs (split-K over the window), and a mixed batch. The CPU
 * backend is itself checked against the double reference (forward_arch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "backend.h"
#include "gguf.h"
#include "gpu_test.h"
#include "model_random.h"
#include "quant.h"
#include "tests/testutil.h"

typedef struct gcase {
    const char *name, *arch;
    int type;
    uint32_t n_layer, head_dim, n_swa;
    float attn_cap, final_cap;
    const char *scaling;
    float factor;
    uint32_t orig_ctx;
    double tol;
} gcase;

/* F16 weights: the GPU keeps them, the CPU computes them in f32: 1e-2 as
 * gpu_forward's F16 models. Q8_0: the CPU quantizes activations. */
static const gcase cases[] = {
    {"qwen3", "qwen3", GGML_TYPE_F16, 2, 32, 0, 0, 0, NULL, 0, 0, 1e-2},
    {"gemma2", "gemma2", GGML_TYPE_F16, 2, 0, 8, 2.0f, 3.0f, NULL, 0, 0, 1e-2},
    {"gemma2-q8", "gemma2", GGML_TYPE_Q8_0, 2, 0, 8, 2.0f, 3.0f, NULL, 0, 0, 5e-2},
    {"gemma3", "gemma3", GGML_TYPE_F16, 6, 32, 8, 0, 0, "linear", 4.0f, 0, 1e-2},
    {"phi3", "phi3", GGML_TYPE_F16, 2, 0, 0, 0, 0, NULL, 0, 64, 1e-2},
    {"llama-yarn", "llama", GGML_TYPE_F16, 2, 0, 0, 0, 0, "yarn", 4.0f, 16, 1e-2},
};

static const char *write_case(const gcase *g) {
    model_random_opts o = {g->n_layer, 64, 4, 2, 96, 300, 256, g->type, 0, 0, "llama", 10000.0f, NULL, 3};
    model_random_arch_opts x;
    if (model_random_arch(&o, &x, g->arch, NULL)) return NULL;
    x.head_dim = g->head_dim;
    if (g->n_swa) x.n_swa = g->n_swa;
    if (g->attn_cap > 0) x.attn_softcap = g->attn_cap;
    if (g->final_cap > 0) x.final_softcap = g->final_cap;
    x.rope_scaling = g->scaling;
    x.rope_scaling_factor = g->factor;
    if (g->orig_ctx) x.rope_orig_ctx = g->orig_ctx;
    char name[96];
    snprintf(name, sizeof name, "ga_%s.gguf", g->name);
    const char *path = tu_tmpfile(name);
    inf_error err = {0};
    if (model_random_write_arch(path, &o, &x, &err)) {
        fprintf(stderr, "\n  write: %s\n", err.msg);
        return NULL;
    }
    return path;
}

typedef struct pair {
    gguf_file *f;
    backend *cpu, *gpu;
} pair;

static int open_pair(pair *p, const char *path, int kv_f32) {
    inf_error err = {0};
    memset(p, 0, sizeof *p);
    if (gguf_open(&p->f, path, &err)) return -1;
    backend_config cfg = backend_config_default();
    cfg.kv_cache_bytes = 8 << 20;
    cfg.gpu_memory_fraction = 0;
    cfg.kv_type = kv_f32 ? BACKEND_KV_F32 : BACKEND_KV_F16;
    cfg.max_batch_tokens = 128;
    cfg.n_threads = 0;
    if (backend_cpu_create(&p->cpu, p->f, &cfg, &err) || backend_cuda_create(&p->gpu, p->f, &cfg, &err)) {
        fprintf(stderr, "\n  backend: %s\n", err.msg);
        backend_free(p->cpu);
        gguf_close(p->f);
        return -1;
    }
    return 0;
}

static void close_pair(pair *p) {
    backend_free(p->cpu);
    backend_free(p->gpu);
    gguf_close(p->f);
}

static double both(pair *p, const backend_batch *bt, float *lc, float *lg) {
    inf_error err = {0};
    int n_out = 0;
    for (int t = 0; t < bt->n_tokens; t++) n_out += bt->need_logits[t];
    if (backend_forward(p->cpu, bt, lc, &err) || backend_forward(p->gpu, bt, lg, &err)) {
        fprintf(stderr, "\n  forward: %s\n", err.msg);
        return INFINITY;
    }
    return gpu_rel_err(lg, lc, (size_t)n_out * p->cpu->desc.n_vocab, 1e-3);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Prefill 40, then 10 greedy steps (following the CPU), one sequence. */
static void run_case(const gcase *g, int kv_f32) {
    const char *path = write_case(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    pair p;
    CU_ASSERT_EQUAL_FATAL(open_pair(&p, path, kv_f32), 0);
    enum { N = 40, STEPS = 10, T = N + STEPS };
    int V = (int)p.cpu->desc.n_vocab;
    int32_t toks[T], pos[T], si[T] = {0}, blocks[8] = {6, 2, 7, 0, 5, 1, 4, 3};
    uint8_t need[T];
    uint64_t rng = 11;
    for (int i = 0; i < T; i++) {
        toks[i] = (int32_t)(tu_rand_u64(&rng) % (uint64_t)V);
        pos[i] = i;
        need[i] = 1;
    }
    backend_seq seq = {blocks, 8};
    float *lc = malloc(sizeof(float) * N * V), *lg = malloc(sizeof(float) * N * V);
    backend_batch bt = {N, toks, pos, si, need, 1, &seq};
    double e = both(&p, &bt, lc, lg), worst = e;
    int flips = 0;
    for (int s = 0; s < STEPS; s++) {
        const float *rc = s == 0 ? lc + (size_t)(N - 1) * V : lc, *rg = s == 0 ? lg + (size_t)(N - 1) * V : lg;
        if (argmax(rc, V) != argmax(rg, V)) flips++;
        toks[N + s] = (int32_t)argmax(rc, V);
        backend_batch d = {1, toks + N + s, pos + N + s, si, need, 1, &seq};
        e = both(&p, &d, lc, lg);
        worst = fmax(worst, e);
    }
    fprintf(stderr, "\n  %s kv %s: worst rel err %.3g (tol %.3g), %d greedy flips", g->name,
            kv_f32 ? "f32" : "f16", worst, g->tol, flips);
    CU_ASSERT(worst < g->tol);
    free(lc);
    free(lg);
    close_pair(&p);
}

static void test_arch_models(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int kv32 = 0; kv32 < 2; kv32++) run_case(&cases[i], kv32);
}

/* gemma3: three sequences (a prefill over the window, a short prefill, a
 * decode token) in one batch, then batched decode steps. */
static void test_arch_mixed(void) {
    const char *path = write_case(&cases[3]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    pair p;
    CU_ASSERT_EQUAL_FATAL(open_pair(&p, path, 0), 0);
    int V = (int)p.cpu->desc.n_vocab;
    enum { S = 3 };
    int lens[S] = {29, 5, 1};
    int32_t tabs[S][4] = {{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}};
    backend_seq seqs[S] = {{tabs[0], 4}, {tabs[1], 4}, {tabs[2], 4}};
    int32_t toks[35], pos[35], si[35];
    uint8_t need[35];
    uint64_t rng = 5;
    int t = 0;
    for (int s = 0; s < S; s++)
        for (int i = 0; i < lens[s]; i++, t++) {
            toks[t] = (int32_t)(tu_rand_u64(&rng) % (uint64_t)V);
            pos[t] = i;
            si[t] = s;
            need[t] = i == lens[s] - 1;
        }
    float *lc = malloc(sizeof(float) * S * V), *lg = malloc(sizeof(float) * S * V);
    backend_batch bt = {t, toks, pos, si, need, S, seqs};
    double e = both(&p, &bt, lc, lg);
    CU_ASSERT(e < 1e-2);
    for (int step = 0; step < 6; step++) {
        int32_t dt[S], dp[S], ds[S];
        uint8_t dn[S];
        for (int s = 0; s < S; s++) {
            dt[s] = argmax(lc + (size_t)s * V, V);
            dp[s] = lens[s] + step;
            ds[s] = s;
            dn[s] = 1;
        }
        backend_batch d = {S, dt, dp, ds, dn, S, seqs};
        e = both(&p, &d, lc, lg);
        if (e >= 1e-2) fprintf(stderr, "\n  mixed step %d rel err %g", step, e);
        CU_ASSERT(e < 1e-2);
    }
    free(lc);
    free(lg);
    close_pair(&p);
}

void gpu_register_arch_tests(void) {
    CU_pSuite s = CU_add_suite("gpu_arch", NULL, NULL);
    CU_add_test(s, "qwen3, gemma2, gemma3, phi3, yarn: prefill + decode vs cpu", test_arch_models);
    CU_add_test(s, "gemma3 mixed batch over the window, batched decode", test_arch_mixed);
}
