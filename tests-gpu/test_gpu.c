/* test_gpu.c - main() of bin/inferno-test-gpu (make test-gpu): the GPU checks.
 *
 * Suites: gpu_kernels (gpu_kernel_tests.c: every kernel against a CPU
 * reference), gpu_forward (the CUDA backend against the CPU backend on random
 * models of every weight type and on stories260K: logits within tolerance,
 * greedy tokens, batched decode with mixed context lengths, graphs on/off),
 * gpu_engine (the engine on the GPU: preemption and prefix caching give the
 * CPU engine's tokens; device sampling gives the host sampler's tokens on
 * the same logits and the CPU engine's up to explained fp flips), gpu_memcheck (a small model, run under
 * compute-sanitizer by make test-gpu). Without a usable GPU it prints one
 * SKIP line and exits 0. `--has-gpu` only answers by exit status.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "backend.h"
#include "cuda_backend.h"
#include "engine.h"
#include "gguf.h"
#include "grammar.h"
#include "gpu_test.h"
#include "kvcache.h"
#include "model_random.h"
#include "quant.h"
#include "tokenizer.h"
#include "tests/testutil.h"

/* ---- backend pairs ---------------------------------------------------------- */

typedef struct pair {
    gguf_file *f;
    backend *cpu, *gpu;
} pair;

static int open_pair(pair *p, const char *path, int kv_f32) {
    inf_error err = {0};
    memset(p, 0, sizeof *p);
    if (gguf_open(&p->f, path, &err)) {
        fprintf(stderr, "\n  open %s: %s\n", path, err.msg);
        return -1;
    }
    backend_config cfg = backend_config_default();
    cfg.kv_cache_bytes = 32 << 20;
    cfg.gpu_memory_fraction = 0;
    cfg.kv_type = kv_f32 ? BACKEND_KV_F32 : BACKEND_KV_F16;
    cfg.max_batch_tokens = 512;
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

static const char *write_model(const char *name, const char *preset, int type, const char *arch,
                               int tied, int bias) {
    model_random_opts o;
    inf_error err = {0};
    if (model_random_preset(&o, preset, &err)) return NULL;
    o.type = type;
    if (arch) o.arch = arch;
    o.tied = tied;
    o.qkv_bias = bias;
    const char *path = tu_tmpfile(name);
    if (model_random_write(path, &o, &err)) {
        fprintf(stderr, "\n  model_random_write: %s\n", err.msg);
        return NULL;
    }
    return path;
}

/* Runs bt on both; compares n_out logits rows. Returns rel err (inf on failure). */
static double both(pair *p, const backend_batch *bt, float *lc, float *lg) {
    inf_error err = {0};
    int n_out = 0;
    for (int t = 0; t < bt->n_tokens; t++) n_out += bt->need_logits[t];
    size_t n = (size_t)n_out * p->cpu->desc.n_vocab;
    memset(lg, 0xff, n * sizeof(float)); /* poison */
    if (backend_forward(p->cpu, bt, lc, &err)) {
        fprintf(stderr, "\n  cpu forward: %s\n", err.msg);
        return INFINITY;
    }
    if (backend_forward(p->gpu, bt, lg, &err)) {
        fprintf(stderr, "\n  gpu forward: %s\n", err.msg);
        return INFINITY;
    }
    return gpu_rel_err(lg, lc, n, 1e-3);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* A flip is only allowed where the CPU's top two are within `slack`. */
static int flip_ok(const float *lc, int V, int gpu_tok, double slack) {
    int c = argmax(lc, V);
    return c == gpu_tok || fabs(lc[c] - lc[gpu_tok]) <= slack;
}

/* Prefill of n tokens then `steps` greedy single-token steps, one sequence.
 * Returns the number of greedy mismatches the tolerance cannot explain. */
static int greedy_run(pair *p, int n, int steps, double tol, int *exact_mismatch) {
    int V = (int)p->cpu->desc.n_vocab, bs = p->cpu->kv_block_size;
    int total = n + steps;
    int32_t *toks = malloc(total * 4), *pos = malloc(total * 4), *si = calloc(total, 4);
    int32_t blocks[256];
    uint8_t *need = malloc(total);
    uint64_t rng = 7;
    for (int i = 0; i < n; i++) toks[i] = (int32_t)(tu_rand_u64(&rng) % (uint64_t)V);
    for (int i = 0; i < total; i++) {
        pos[i] = i;
        need[i] = 1;
    }
    for (int i = 0; i < 256; i++) blocks[i] = (i * 7 + 3) % 256 < p->gpu->n_kv_blocks ? (i * 7 + 3) % 256 : i;
    backend_seq seq = {blocks, (total + bs - 1) / bs};
    float *lc = malloc((size_t)n * V * 4), *lg = malloc((size_t)n * V * 4);
    int bad = 0;
    *exact_mismatch = 0;
    backend_batch bt = {n, toks, pos, si, need, 1, &seq};
    double e = both(p, &bt, lc, lg);
    if (e >= tol) fprintf(stderr, "\n  prefill rel err %g (tol %g)\n", e, tol);
    CU_ASSERT(e < tol);
    int cur = n;
    for (int s = 0; s < steps; s++) {
        int src = cur - 1;
        const float *rc = s == 0 ? lc + (size_t)(n - 1) * V : lc, *rg = s == 0 ? lg + (size_t)(n - 1) * V : lg;
        int tc = argmax(rc, V), tg = argmax(rg, V);
        if (tc != tg) {
            (*exact_mismatch)++;
            double mx = 0;
            for (int i = 0; i < V; i++) mx = fmax(mx, fabs(rc[i]));
            if (!flip_ok(rc, V, tg, 2 * tol * mx)) bad++;
        }
        toks[cur] = tc; /* follow the CPU so one flip cannot cascade */
        backend_batch d = {1, toks + cur, pos + cur, si, need, 1, &seq};
        (void)src;
        e = both(p, &d, lc, lg);
        if (e >= tol) fprintf(stderr, "\n  decode step %d rel err %g (tol %g)\n", s, e, tol);
        CU_ASSERT(e < tol);
        cur++;
    }
    free(toks), free(pos), free(si), free(need), free(lc), free(lg);
    return bad;
}

/* Greedy decode steps per model: 64, or 12 with INFERNO_GPU_TEST_QUICK set
 * (make test runs the suites on the CPU emulator that way; the prefill tiles
 * and every weight type are still covered, only the run is shorter). */
static int decode_steps(void) { return getenv("INFERNO_GPU_TEST_QUICK") ? 12 : 64; }

static void test_random_models(void) {
    static const struct { const char *preset; int type; const char *arch; int tied, bias; double tol; } m[] = {
        {"tiny", GGML_TYPE_F32, NULL, 0, 0, 5e-2},  /* F32 -> BF16 on the GPU */
        {"tiny", GGML_TYPE_F16, NULL, 0, 0, 1e-2},  /* n_ff 172: generic GEMV path */
        {"small", GGML_TYPE_F16, NULL, 0, 0, 1e-2},
        {"small", GGML_TYPE_BF16, NULL, 0, 0, 5e-2},
        {"small", GGML_TYPE_Q8_0, NULL, 0, 0, 5e-2}, /* the CPU quantizes activations to Q8_0 (the GPU keeps F32): 3-4% seen */
        {"small", GGML_TYPE_Q4_0, NULL, 0, 0, 5e-2},
        {"small", GGML_TYPE_F16, "qwen2", 1, 1, 1e-2}, /* neox rope, biases, tied output */
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        char name[64];
        snprintf(name, sizeof name, "fw_%zu.gguf", i);
        const char *path = write_model(name, m[i].preset, m[i].type, m[i].arch, m[i].tied, m[i].bias);
        CU_ASSERT_PTR_NOT_NULL_FATAL(path);
        for (int kv32 = 0; kv32 < 2; kv32++) {
            pair p;
            CU_ASSERT_EQUAL_FATAL(open_pair(&p, path, kv32), 0);
            int exact = 0;
            /* 40-token prefill: tiles of 16, 16, 8; then 64 greedy steps */
            int bad = greedy_run(&p, 40, decode_steps(), m[i].tol, &exact);
            fprintf(stderr, "\n  %s %s%s kv %s: %d greedy flips (all within the tolerance: %s)",
                    m[i].preset, quant_type_name(m[i].type), m[i].arch ? " qwen2" : "",
                    kv32 ? "f32" : "f16", exact, bad ? "no" : "yes");
            CU_ASSERT_EQUAL(bad, 0);
            close_pair(&p);
        }
    }
}

static void test_stories(void) {
    const char *model = tu_shared_file("models/stories260K.gguf");
    if (!model) {
        tu_skip("../shared/models/stories260K.gguf absent");
        return;
    }
    /* F32 weights kept F32 on the GPU: the tokens must be the CPU's. */
    setenv("INFERNO_CUDA_KEEP_F32", "1", 1);
    pair p;
    int rc = open_pair(&p, model, 1);
    unsetenv("INFERNO_CUDA_KEEP_F32");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    int exact = 0;
    greedy_run(&p, 24, 64, 1e-4, &exact);
    CU_ASSERT_EQUAL(exact, 0);
    close_pair(&p);
    /* default conversion (BF16): logits within tolerance, flips explained */
    CU_ASSERT_EQUAL_FATAL(open_pair(&p, model, 0), 0);
    CU_ASSERT_EQUAL(greedy_run(&p, 24, 64, 5e-2, &exact), 0);
    close_pair(&p);
}

/* 6 sequences with different contexts prefilled together (mixed tiles and
 * single tokens), then batched decode steps (graph bucket 8 with padding),
 * graphs on and off. */
static void test_batched_mixed(void) {
    const char *path = write_model("mixed.gguf", "small", GGML_TYPE_F16, NULL, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    pair p;
    CU_ASSERT_EQUAL_FATAL(open_pair(&p, path, 0), 0);
    int V = (int)p.cpu->desc.n_vocab, bs = p.cpu->kv_block_size;
    enum { S = 6 };
    int lens[S] = {1, 5, 17, 33, 70, 129};
    int32_t tabs[S][16];
    backend_seq seqs[S];
    int next = 0, total = 0;
    for (int s = 0; s < S; s++) {
        for (int b = 0; b < 16; b++) tabs[s][b] = next++;
        seqs[s] = (backend_seq){tabs[s], 16};
        total += lens[s];
    }
    int32_t *toks = malloc(total * 4), *pos = malloc(total * 4), *si = malloc(total * 4);
    uint8_t *need = malloc(total);
    uint64_t rng = 3;
    int t = 0;
    for (int s = 0; s < S; s++)
        for (int i = 0; i < lens[s]; i++, t++) {
            toks[t] = (int32_t)(tu_rand_u64(&rng) % (uint64_t)V);
            pos[t] = i;
            si[t] = s;
            need[t] = i == lens[s] - 1;
        }
    float *lc = malloc((size_t)total * V * 4), *lg = malloc((size_t)total * V * 4);
    backend_batch bt = {total, toks, pos, si, need, S, seqs};
    double e = both(&p, &bt, lc, lg);
    CU_ASSERT(e < 1e-2);
    (void)bs;
    for (int step = 0; step < 12; step++) {
        int32_t dt[S], dp[S], ds[S];
        uint8_t dn[S];
        for (int s = 0; s < S; s++) {
            dt[s] = argmax(lc + (size_t)s * V, V);
            dp[s] = lens[s] + step;
            ds[s] = S - 1 - s; /* batch order differs from sequence order */
            dn[s] = 1;
        }
        /* reorder tokens to match ds */
        int32_t dt2[S], dp2[S];
        for (int s = 0; s < S; s++) {
            dt2[s] = dt[S - 1 - s];
            dp2[s] = dp[S - 1 - s];
        }
        if (step == 6) {
            inf_error err = {0};
            CU_ASSERT_EQUAL(backend_cuda_set_graphs(p.gpu, 0, &err), 0);
        }
        backend_batch d = {S, dt2, dp2, ds, dn, S, seqs};
        e = both(&p, &d, lc, lg);
        if (e >= 1e-2) fprintf(stderr, "\n  batched step %d rel err %g\n", step, e);
        CU_ASSERT(e < 1e-2);
        /* lc rows are in batch order (seq S-1-s): restore seq order for argmax */
        float *tmp = malloc((size_t)S * V * 4);
        for (int s = 0; s < S; s++) memcpy(tmp + (size_t)(S - 1 - s) * V, lc + (size_t)s * V, (size_t)V * 4);
        memcpy(lc, tmp, (size_t)S * V * 4);
        free(tmp);
    }
    backend_cuda_stats st;
    inf_error err = {0};
    CU_ASSERT_EQUAL(backend_cuda_stats_get(p.gpu, &st, &err), 0);
    CU_ASSERT(st.graph_launches >= 6); /* the first 6 decode steps ran as graphs */
    free(toks), free(pos), free(si), free(need), free(lc), free(lg);
    close_pair(&p);
}

/* ---- engine ---------------------------------------------------------------- */

typedef struct eng_out {
    int32_t toks[16][64];
    int n[16];
    engine_stats st;
} eng_out;

static int run_engine(const char *backend_name, const char *path, eng_out *o) {
    engine_config ec = engine_config_default();
    ec.backend = backend_name;
    ec.kv_cache_bytes = 0;
    ec.n_threads = 0;
    ec.seed = 5;
    ec.max_num_seqs = 8;
    ec.max_num_batched_tokens = 64;
    ec.kv_block_size = 8;
    engine *e = NULL;
    inf_error err = {0};
    /* blocks for about 3 sequences of 40+24 tokens: forces preemption */
    ec.kv_cache_bytes = kv_block_bytes(4, 2, 32, 8, 4) * 26;
    ec.kv_type = BACKEND_KV_F32;
    if (engine_open(&e, &ec, path, &err)) {
        fprintf(stderr, "\n  engine_open(%s): %s\n", backend_name, err.msg);
        return -1;
    }
    memset(o, 0, sizeof *o);
    sampler_params sp = sampler_params_default();
    sp.temperature = 0;
    sp.max_tokens = 24;
    sp.ignore_eos = 1;
    for (int r = 0; r < 12; r++) {
        int32_t prompt[48];
        for (int i = 0; i < 48; i++) prompt[i] = i < 32 ? (int32_t)(7 + i * 3) : (int32_t)(100 + r * 17 + i);
        char id[16];
        snprintf(id, sizeof id, "r%d", r);
        engine_request rq = engine_request_default();
        rq.id = id;
        rq.prompt_tokens = prompt;
        rq.n_prompt_tokens = 34 + (r % 5) * 3;
        rq.params = &sp;
        rq.priority = r % 3;
        if (engine_add(e, &rq, &err)) {
            fprintf(stderr, "\n  engine_add: %s\n", err.msg);
            engine_close(e);
            return -1;
        }
    }
    int done = 0;
    for (int step = 0; step < 5000 && done < 12; step++) {
        const engine_event *ev;
        int n = 0;
        if (engine_step(e, &ev, &n, &err)) {
            fprintf(stderr, "\n  engine_step: %s\n", err.msg);
            break;
        }
        for (int i = 0; i < n; i++) {
            int r = atoi(ev[i].id + 1);
            if (ev[i].type == ENGINE_EVENT_TOKEN)
                for (int k = 0; k < ev[i].n_tokens && o->n[r] < 64; k++) o->toks[r][o->n[r]++] = ev[i].tokens[k];
            if (ev[i].type != ENGINE_EVENT_TOKEN) done++;
            CU_ASSERT(ev[i].type != ENGINE_EVENT_ERROR);
        }
        CU_ASSERT_EQUAL(engine_check_invariants(e, &err), 0);
    }
    engine_stats_get(e, &o->st);
    engine_close(e);
    return done == 12 ? 0 : -1;
}

static void test_engine_paths(void) {
    const char *path = write_model("engine.gguf", "small", GGML_TYPE_F32, NULL, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    static eng_out a, b;
    CU_ASSERT_EQUAL_FATAL(run_engine("cpu", path, &a), 0);
    setenv("INFERNO_CUDA_KEEP_F32", "1", 1); /* f32 end to end: greedy tokens must agree */
    int rc = run_engine("cuda", path, &b);
    unsetenv("INFERNO_CUDA_KEEP_F32");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    fprintf(stderr, "\n  engine: %llu preemptions, %llu prefix-hit tokens (cpu %llu, %llu)",
            (unsigned long long)b.st.n_preemptions, (unsigned long long)b.st.prefix_hit_tokens,
            (unsigned long long)a.st.n_preemptions, (unsigned long long)a.st.prefix_hit_tokens);
    CU_ASSERT(b.st.n_preemptions > 0);
    CU_ASSERT(b.st.prefix_hit_tokens > 0);
    for (int r = 0; r < 12; r++) {
        CU_ASSERT_EQUAL(a.n[r], 24);
        CU_ASSERT_EQUAL(b.n[r], 24);
        CU_ASSERT_EQUAL(memcmp(a.toks[r], b.toks[r], sizeof a.toks[r]), 0);
    }
}

/* ---- engine: device sampling ------------------------------------------------------- */

/* Seeded requests covering every sampling parameter. */
#define DS_REQ 12
static void ds_params(sampler_params *sp, int r) {
    static const struct { float t; int k; float p, mp, rep, pres, freq; int lp, min_tok, bias; } c[DS_REQ] = {
        {0, -1, 1, 0, 1, 0, 0, -1, 0, 0},           {0, -1, 1, 0, 1, 0, 0, 5, 0, 0},
        {0.8f, -1, 1, 0, 1, 0, 0, 0, 0, 0},         {1.0f, 40, 1, 0, 1, 0, 0, -1, 0, 0},
        {0.7f, -1, 0.9f, 0, 1, 0, 0, 5, 0, 0},      {1.2f, -1, 1, 0.05f, 1, 0, 0, -1, 0, 0},
        {1.3f, 50, 0.8f, 0.02f, 1, 0, 0, 0, 0, 0},  {0.9f, 20, 1, 0, 1.3f, 0.5f, 0.2f, 0, 0, 0},
        {0.6f, -1, 1, 0, 1, 0, 0, 5, 0, 1},         {1.0f, -1, 1, 0, 1.1f, 0, 0.1f, 0, 8, 1},
        {0, -1, 1, 0, 1.5f, 0, 0, 5, 0, 0},         {1.0f, -1, 0.95f, 0, 1, 0.3f, 0, 5, 0, 0},
    };
    *sp = sampler_params_default();
    sp->temperature = c[r].t;
    sp->top_k = c[r].k;
    sp->top_p = c[r].p;
    sp->min_p = c[r].mp;
    sp->repetition_penalty = c[r].rep;
    sp->presence_penalty = c[r].pres;
    sp->frequency_penalty = c[r].freq;
    sp->logprobs = c[r].lp;
    sp->min_tokens = c[r].min_tok;
    sp->ignore_eos = c[r].min_tok == 0;
    sp->max_tokens = getenv("INFERNO_GPU_TEST_QUICK") ? 12 : 24; /* quick: the emulator in make test */
    sp->has_seed = 1;
    sp->seed = 100 + (uint64_t)r;
    if (c[r].bias) {
        sampler_params_add_logit_bias(sp, 7, 3.0f, NULL);
        sampler_params_add_logit_bias(sp, 300, -2.0f, NULL);
        sampler_params_add_logit_bias(sp, 1000, 1.5f, NULL);
    }
    if (c[r].min_tok) {
        sampler_params_add_stop_token(sp, 9, NULL);
        sampler_params_add_stop_token(sp, 13, NULL);
    }
}

typedef struct ds_out {
    int32_t toks[DS_REQ][32];
    float lp[DS_REQ][32];
    int32_t top[DS_REQ][32][5];
    float top_lp[DS_REQ][32][5];
    int n[DS_REQ];
    int32_t prompt[DS_REQ][48];
    int n_prompt[DS_REQ];
    engine_stats st;
} ds_out;

/* Runs the DS_REQ requests to the end on backend_name (device sampling on
 * or off), with a KV budget that forces preemption. 0 or -1. */
static int ds_run(const char *backend_name, const char *path, int device_sampling, ds_out *o) {
    engine_config ec = engine_config_default();
    ec.backend = backend_name;
    ec.n_threads = 0;
    ec.seed = 5;
    ec.max_num_seqs = 8;
    ec.max_num_batched_tokens = 64;
    ec.kv_block_size = 8;
    ec.kv_cache_bytes = kv_block_bytes(4, 2, 32, 8, 4) * 26;
    ec.kv_type = BACKEND_KV_F32;
    ec.device_sampling = device_sampling;
    engine *e = NULL;
    inf_error err = {0};
    if (engine_open(&e, &ec, path, &err)) {
        fprintf(stderr, "\n  engine_open(%s): %s\n", backend_name, err.msg);
        return -1;
    }
    memset(o, 0, sizeof *o);
    for (int r = 0; r < DS_REQ; r++) {
        sampler_params sp;
        ds_params(&sp, r);
        o->n_prompt[r] = 30 + (r % 5) * 3;
        for (int i = 0; i < o->n_prompt[r]; i++)
            o->prompt[r][i] = i < 24 ? (int32_t)(7 + i * 3) : (int32_t)(100 + r * 17 + i);
        char id[16];
        snprintf(id, sizeof id, "r%d", r);
        engine_request rq = engine_request_default();
        rq.id = id;
        rq.prompt_tokens = o->prompt[r];
        rq.n_prompt_tokens = o->n_prompt[r];
        rq.params = &sp;
        rq.priority = r % 3;
        int rc = engine_add(e, &rq, &err);
        sampler_params_free(&sp);
        if (rc) {
            fprintf(stderr, "\n  engine_add: %s\n", err.msg);
            engine_close(e);
            return -1;
        }
    }
    int done = 0;
    for (int step = 0; step < 5000 && done < DS_REQ; step++) {
        const engine_event *ev;
        int n = 0;
        if (engine_step(e, &ev, &n, &err)) {
            fprintf(stderr, "\n  engine_step: %s\n", err.msg);
            break;
        }
        for (int i = 0; i < n; i++) {
            int r = atoi(ev[i].id + 1);
            if (ev[i].type == ENGINE_EVENT_ERROR) fprintf(stderr, "\n  %s: %s\n", ev[i].id, ev[i].message);
            CU_ASSERT(ev[i].type != ENGINE_EVENT_ERROR);
            if (ev[i].type != ENGINE_EVENT_TOKEN) {
                done++;
                continue;
            }
            for (int k = 0; k < ev[i].n_tokens && o->n[r] < 32; k++) {
                int j = o->n[r]++;
                o->toks[r][j] = ev[i].tokens[k];
                if (ev[i].logprobs) o->lp[r][j] = ev[i].logprobs[k];
                for (int t = 0; t < ev[i].n_top && t < 5; t++) {
                    o->top[r][j][t] = ev[i].top_logprobs[k * ev[i].n_top + t].token;
                    o->top_lp[r][j][t] = ev[i].top_logprobs[k * ev[i].n_top + t].logprob;
                }
            }
        }
        CU_ASSERT_EQUAL(engine_check_invariants(e, &err), 0);
    }
    engine_stats_get(e, &o->st);
    engine_close(e);
    return done == DS_REQ ? 0 : -1;
}

/* Compares two runs' tokens, logprobs and top-5 of request r up to `upto`
 * tokens; returns the first differing token index (or -1). */
static int ds_first_diff(const ds_out *a, const ds_out *b, int r, double lp_tol) {
    int n = a->n[r] < b->n[r] ? a->n[r] : b->n[r];
    for (int j = 0; j < n; j++) {
        if (a->toks[r][j] != b->toks[r][j]) return j;
        sampler_params sp;
        ds_params(&sp, r);
        if (sp.logprobs >= 0) CU_ASSERT(fabsf(a->lp[r][j] - b->lp[r][j]) <= lp_tol);
        for (int t = 0; t < sp.logprobs && t < 5; t++) {
            CU_ASSERT_EQUAL(a->top[r][j][t], b->top[r][j][t]);
            CU_ASSERT(fabsf(a->top_lp[r][j][t] - b->top_lp[r][j][t]) <= lp_tol);
        }
        sampler_params_free(&sp);
    }
    return a->n[r] == b->n[r] ? -1 : n;
}

/* Whether the CPU and GPU picking different tokens at generated index j of
 * request r is explained by fp tolerance: replays the request's sampler to
 * that step (one RNG draw per step, as the engine does), recomputes the
 * step's logits on the CPU and checks that the draw u lies within `slack`
 * of the boundary between the two tokens in the CDF (id order), or that
 * greedy's top two logits are within slack. */
static int ds_flip_explained(const char *path, const ds_out *c, int r, int j, int32_t gpu_tok,
                             double slack) {
    inf_error err = {0};
    gguf_file *f = NULL;
    backend *b = NULL;
    backend_config bc = backend_config_default();
    bc.kv_cache_bytes = 8 << 20;
    bc.kv_type = BACKEND_KV_F32;
    if (gguf_open(&f, path, &err) || backend_cpu_create(&b, f, &bc, &err)) {
        gguf_close(f);
        return 0;
    }
    int n = c->n_prompt[r] + j, V = (int)b->desc.n_vocab;
    int32_t toks[96], pos[96], si[96], blocks[16];
    uint8_t need[96];
    for (int i = 0; i < n; i++) {
        toks[i] = i < c->n_prompt[r] ? c->prompt[r][i] : c->toks[r][i - c->n_prompt[r]];
        pos[i] = i;
        si[i] = 0;
        need[i] = i == n - 1;
    }
    for (int i = 0; i < 16; i++) blocks[i] = i;
    backend_seq seq = {blocks, (n + b->kv_block_size - 1) / b->kv_block_size};
    backend_batch bt = {n, toks, pos, si, need, 1, &seq};
    float *l = malloc((size_t)V * 4);
    int ok = backend_forward(b, &bt, l, &err) == 0;
    /* the engine's EOS ids: eos, then eot when different */
    int32_t eos[2];
    size_t n_eos = 0;
    tokenizer *tk = NULL;
    if (ok && tok_create_ex(&tk, f, TOK_CREATE_PRE_FALLBACK, &err) == 0) {
        int32_t cand[2] = {tok_eos(tk), tok_eot(tk)};
        for (int i = 0; i < 2; i++)
            if (cand[i] >= 0 && cand[i] < V && (n_eos == 0 || eos[0] != cand[i])) eos[n_eos++] = cand[i];
        tok_free(tk);
    }
    sampler_params sp;
    ds_params(&sp, r);
    sampler *s = NULL;
    ok = ok && sampler_create(&s, &sp, V, eos, n_eos, c->prompt[r], (size_t)c->n_prompt[r], 1, &err) == 0;
    sampler_mod *mods = malloc(4096 * sizeof *mods);
    sampler_row row;
    for (int k = 0; ok && k <= j; k++) {
        ok = sampler_device_row(s, &row, mods, 4096, &err) == 0;
        if (ok && k < j) ok = sampler_accept(s, c->toks[r][k], &err) == 0;
    }
    int explained = 0;
    if (ok) {
        int32_t *ids = malloc((size_t)V * 4);
        float *probs = malloc((size_t)V * 4);
        int m = 0;
        /* sampler_candidates applies the same modifiers (it does not draw) */
        if (sampler_candidates(s, l, V, ids, probs, &m, &err) == 0) {
            if (row.temperature < SAMPLER_GREEDY_EPS) {
                explained = fabsf(l[gpu_tok] - l[ids[0]]) <= slack;
            } else {
                /* CDF in id order: the boundary after the lower of the two ids */
                int32_t lo = gpu_tok < c->toks[r][j] ? gpu_tok : c->toks[r][j];
                double cum = 0;
                for (int i = 0; i < V; i++)
                    for (int k = 0; k < m; k++)
                        if (ids[k] == i) {
                            cum += probs[k];
                            if (i == lo) explained = fabs(cum - row.u) <= slack;
                        }
            }
        }
        free(ids), free(probs);
    }
    sampler_free(s);
    sampler_params_free(&sp);
    free(mods), free(l);
    backend_free(b);
    gguf_close(f);
    return explained;
}

static void test_engine_device_sampling(void) {
    const char *path = write_model("engine_ds.gguf", "small", GGML_TYPE_F32, NULL, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    static ds_out cpu, dev, host;
    CU_ASSERT_EQUAL_FATAL(ds_run("cpu", path, 1, &cpu), 0);
    setenv("INFERNO_CUDA_KEEP_F32", "1", 1); /* f32 end to end */
    int rc = ds_run("cuda", path, 1, &dev);
    if (!rc) rc = ds_run("cuda", path, 0, &host);
    unsetenv("INFERNO_CUDA_KEEP_F32");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    uint64_t gen = dev.st.generated_tokens;
    fprintf(stderr, "\n  device run: %llu tokens, %llu device-sampled, %llu host-sampled, %llu preemptions",
            (unsigned long long)gen, (unsigned long long)dev.st.device_sampled_rows,
            (unsigned long long)dev.st.host_sampled_rows, (unsigned long long)dev.st.n_preemptions);
    CU_ASSERT(gen > 0);
    CU_ASSERT_EQUAL(dev.st.device_sampled_rows, gen);
    CU_ASSERT_EQUAL(dev.st.host_sampled_rows, 0);
    CU_ASSERT_EQUAL(host.st.device_sampled_rows, 0);
    CU_ASSERT_EQUAL(host.st.host_sampled_rows, host.st.generated_tokens);
    CU_ASSERT(cpu.st.device_sampled_rows == 0 && cpu.st.host_sampled_rows == cpu.st.generated_tokens);
    /* Same GPU logits, device vs host sampler: identical. */
    for (int r = 0; r < DS_REQ; r++) {
        int d = ds_first_diff(&dev, &host, r, 1e-4);
        if (d >= 0) fprintf(stderr, "\n  request %d: device and host sampling differ at token %d", r, d);
        CU_ASSERT_EQUAL(d, -1);
    }
    /* Against the CPU engine: identical, except where a flip is explained by
     * the CPU and GPU logits differing within fp tolerance (then the rest of
     * that request is not compared: its context differs). */
    int flips = 0;
    for (int r = 0; r < DS_REQ; r++) {
        int d = ds_first_diff(&dev, &cpu, r, 2e-3);
        if (d < 0) continue;
        int ok = d < dev.n[r] && d < cpu.n[r] &&
                 ds_flip_explained(path, &cpu, r, d, dev.toks[r][d], 1e-3);
        fprintf(stderr, "\n  request %d: cpu and gpu differ at token %d (%s)", r, d,
                ok ? "explained by fp tolerance" : "NOT explained");
        CU_ASSERT(ok);
        flips++;
    }
    CU_ASSERT(flips <= 2);
}

/* ---- memcheck (small, run under compute-sanitizer) ----------------------------- */

/* Structured output on the device: constrained rows keep device sampling
 * (the mask goes up with the rows), their outputs are accepted by the
 * grammar, and seeded rows match the host sampler's tokens. */
#define GM_REQ 4
typedef struct gm_out {
    int32_t toks[GM_REQ][96];
    int n[GM_REQ];
    char text[GM_REQ][2048];
    size_t len[GM_REQ];
    int reason[GM_REQ], err[GM_REQ];
    uint64_t dev_rows, constrained;
} gm_out;

static const char *GM_SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":99},"
    "\"b\":{\"type\":\"string\",\"maxLength\":5}},\"required\":[\"a\",\"b\"]}";

static int gm_run(const char *path, int device_sampling, gm_out *o) {
    engine_config ec = engine_config_default();
    ec.backend = "cuda";
    ec.seed = 5;
    ec.max_num_seqs = 8;
    ec.kv_type = BACKEND_KV_F32;
    ec.kv_cache_bytes = (size_t)16 << 20;
    ec.device_sampling = device_sampling;
    engine *e = NULL;
    inf_error err = {0};
    if (engine_open(&e, &ec, path, &err)) {
        fprintf(stderr, "\n  engine_open: %s\n", err.msg);
        return -1;
    }
    memset(o, 0, sizeof *o);
    constraint_spec cs = {CONSTRAINT_JSON_SCHEMA, GM_SCHEMA, 0, NULL, 0};
    static const char *ids[GM_REQ] = {"g0", "f1", "g2", "f3"};
    for (int r = 0; r < GM_REQ; r++) {
        sampler_params sp = sampler_params_default();
        sp.temperature = 1.0f;
        sp.top_k = r == 2 ? 20 : -1;
        sp.has_seed = 1;
        sp.seed = 40 + (uint64_t)r;
        sp.max_tokens = 80;
        engine_request q = engine_request_default();
        q.id = ids[r];
        q.prompt = "Once upon a time";
        q.params = &sp;
        q.user = (void *)(intptr_t)r;
        q.constraint = r % 2 == 0 ? &cs : NULL;
        if (engine_add(e, &q, &err)) {
            fprintf(stderr, "\n  engine_add: %s\n", err.msg);
            engine_close(e);
            return -1;
        }
    }
    while (engine_has_work(e)) {
        const engine_event *ev;
        int n;
        if (engine_step(e, &ev, &n, &err)) break;
        for (int k = 0; k < n; k++) {
            int r = (int)(intptr_t)ev[k].user;
            if (ev[k].type == ENGINE_EVENT_TOKEN) {
                for (int t = 0; t < ev[k].n_tokens && o->n[r] < 96; t++) o->toks[r][o->n[r]++] = ev[k].tokens[t];
                if (ev[k].text_len && o->len[r] + ev[k].text_len < sizeof o->text[r]) {
                    memcpy(o->text[r] + o->len[r], ev[k].text, ev[k].text_len);
                    o->len[r] += ev[k].text_len;
                }
            } else if (ev[k].type == ENGINE_EVENT_FINISHED) {
                o->reason[r] = ev[k].reason;
            } else {
                o->err[r] = ev[k].code;
                fprintf(stderr, "\n  %s: %s\n", ids[r], ev[k].message);
            }
        }
    }
    engine_stats st;
    engine_stats_get(e, &st);
    o->dev_rows = st.device_sampled_rows;
    o->constrained = st.constrained_rows;
    engine_close(e);
    return 0;
}

static void test_engine_grammar_masks(void) {
    const char *path = tu_shared_file("models/stories260K.gguf");
    if (!path) path = write_model("gm-tiny", "tiny", GGML_TYPE_F32, "llama", 0, 0);
    if (!path) {
        CU_FAIL("no model");
        return;
    }
    static gm_out dev, host;
    CU_ASSERT_EQUAL_FATAL(gm_run(path, 1, &dev), 0);
    CU_ASSERT_EQUAL_FATAL(gm_run(path, 0, &host), 0);
    CU_ASSERT(dev.dev_rows > 0);
    CU_ASSERT(dev.constrained > 0);
    CU_ASSERT_EQUAL(host.dev_rows, 0);
    constraint_spec cs = {CONSTRAINT_JSON_SCHEMA, GM_SCHEMA, 0, NULL, 0};
    char *gbnf = NULL;
    grammar *g = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(constraint_to_gbnf(&cs, &gbnf, &err), 0);
    CU_ASSERT_EQUAL_FATAL(grammar_parse(&g, gbnf, 0, &err), 0);
    int same = 0;
    for (int r = 0; r < GM_REQ; r++) {
        CU_ASSERT_EQUAL(dev.err[r], 0);
        if (r % 2 == 0 && dev.reason[r] == ENGINE_FINISH_STOP) {
            int ok = grammar_accepts(g, dev.text[r], dev.len[r], NULL);
            if (ok != 1) fprintf(stderr, "\n  not accepted: %.*s\n", (int)dev.len[r], dev.text[r]);
            CU_ASSERT_EQUAL(ok, 1);
        }
        same += dev.n[r] == host.n[r] && !memcmp(dev.toks[r], host.toks[r], (size_t)dev.n[r] * 4);
    }
    fprintf(stderr, "\n  grammar masks on the device: %d of %d requests token-identical to host sampling\n", same,
            GM_REQ);
    CU_ASSERT(same >= GM_REQ - 1); /* float rounding of the sums may flip one draw */
    grammar_free(g);
    free(gbnf);
}

static void test_memcheck_small(void) {
    const char *path = write_model("memcheck.gguf", "tiny", GGML_TYPE_F16, NULL, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    pair p;
    CU_ASSERT_EQUAL_FATAL(open_pair(&p, path, 0), 0);
    int exact = 0;
    CU_ASSERT_EQUAL(greedy_run(&p, 20, 6, 1e-2, &exact), 0);
    close_pair(&p);
    path = write_model("memcheck_q.gguf", "small", GGML_TYPE_Q4_0, "qwen2", 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    CU_ASSERT_EQUAL_FATAL(open_pair(&p, path, 1), 0);
    CU_ASSERT_EQUAL(greedy_run(&p, 20, 3, 5e-2, &exact), 0);
    close_pair(&p);
}

int main(int argc, char **argv) {
    char why[256] = "";
    int have = backend_cuda_available(why, sizeof why);
    if (argc > 1 && strcmp(argv[1], "--has-gpu") == 0) return have ? 0 : 1;
    if (!have) {
        printf("SKIP: inferno-test-gpu: %s: GPU checks not run\n", why);
        return 0;
    }
    printf("inferno-test-gpu on %s\n", why);
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    gpu_register_kernel_tests();
    gpu_register_emu_tests();
    gpu_register_arch_tests(); /* gpu_arch: qwen3, gemma2/3, phi3, YaRN (test_gpu_arch.c) */
    CU_pSuite s = CU_add_suite("gpu_forward", NULL, NULL);
    CU_add_test(s, "random models, every type: logits and greedy vs cpu", test_random_models);
    CU_add_test(s, "stories260K: 64 greedy tokens equal to cpu", test_stories);
    CU_add_test(s, "mixed prefill + batched decode, graphs on/off", test_batched_mixed);
    s = CU_add_suite("gpu_engine", NULL, NULL);
    CU_add_test(s, "engine on cuda: preemption + prefix cache = cpu tokens", test_engine_paths);
    CU_add_test(s, "engine device sampling = host sampling = cpu engine, every parameter",
                test_engine_device_sampling);
    CU_add_test(s, "grammar masks on the device = host sampling, outputs valid", test_engine_grammar_masks);
    s = CU_add_suite("gpu_memcheck", NULL, NULL);
    CU_add_test(s, "small models forward (for compute-sanitizer)", test_memcheck_small);
    if (argc > 1)
        for (CU_pSuite q = CU_get_registry()->pSuite; q; q = q->pNext) {
            int keep = 0;
            for (int i = 1; i < argc; i++)
                if (strcmp(q->pName, argv[i]) == 0) keep = 1;
            CU_set_suite_active(q, keep);
        }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
