/* bench_engine.c - aggregate throughput through the engine's scheduler at
 * several concurrency levels (inferno-bench's concurrency table). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "engine.h"
#include "model_random.h"
#include "quant.h"

typedef struct conc_result {
    double gen_tps, elapsed_s, ttft_p50_ms;
    uint64_t hit_tokens, computed_prompt;
    int errors;
} conc_result;

/* Submits n requests at once (after an optional warm-up request that shares
 * the system prompt) and steps until all finish. */
static int run_level(engine *e, int n, int sys_len, int uniq_len, int max_tokens, conc_result *out) {
    const model_desc *d = engine_model_desc(e);
    /* A different seed per level: repeating the previous level's prompts
     * would turn into prefix-cache hits and flatter the figures. */
    uint64_t seed = 7 + (uint64_t)n * 1000 + (uint64_t)sys_len;
    int32_t *sys = malloc(sizeof(int32_t) * (size_t)(sys_len + 1));
    for (int i = 0; i < sys_len; i++) sys[i] = (int32_t)(3 + bench_rand(&seed) % (d->n_vocab - 3));
    int plen = sys_len + uniq_len;
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)plen * (size_t)(n + 1));
    for (int r = 0; r <= n; r++) {
        memcpy(prompts + (size_t)r * plen, sys, sizeof(int32_t) * (size_t)sys_len);
        for (int i = 0; i < uniq_len; i++)
            prompts[(size_t)r * plen + sys_len + i] = (int32_t)(3 + bench_rand(&seed) % (d->n_vocab - 3));
    }
    sampler_params p = sampler_params_default();
    p.temperature = 0;
    p.max_tokens = max_tokens;
    p.ignore_eos = 1;
    double *ttft = calloc((size_t)n, sizeof(double));
    int rc = 0, n_ttft = 0, done = 0, total = n + (sys_len > 0);
    engine_stats st0;
    engine_stats_get(e, &st0);
    uint64_t generated = 0;
    double t0 = 0;
    for (int r = (sys_len > 0 ? -1 : 0); r < n && !rc; r++) {
        char id[32];
        snprintf(id, sizeof id, "b%d", r);
        engine_request q = engine_request_default();
        q.id = id;
        q.prompt_tokens = prompts + (size_t)(r + 1) * plen;
        q.n_prompt_tokens = plen;
        q.params = &p;
        inf_error err = {0};
        if ((rc = engine_add(e, &q, &err))) { fprintf(stderr, "bench: %s\n", err.msg); break; }
        if (r == -1) { /* warm the prefix cache with the system prompt first */
            while (engine_has_work(e)) {
                const engine_event *ev;
                int ne;
                if ((rc = engine_step(e, &ev, &ne, &err))) break;
                for (int k = 0; k < ne; k++) done += ev[k].type != ENGINE_EVENT_TOKEN;
            }
            engine_stats_get(e, &st0);
        }
    }
    t0 = bench_now();
    while (!rc && done < total) {
        const engine_event *ev;
        int ne;
        inf_error err = {0};
        if ((rc = engine_step(e, &ev, &ne, &err))) { fprintf(stderr, "bench: %s\n", err.msg); break; }
        for (int k = 0; k < ne; k++) {
            if (ev[k].type == ENGINE_EVENT_TOKEN) {
                generated += (uint64_t)ev[k].n_tokens;
                if (ev[k].first && n_ttft < n) ttft[n_ttft++] = ev[k].ttft_ms;
            } else {
                done++;
                if (ev[k].type == ENGINE_EVENT_ERROR) out->errors++;
            }
        }
    }
    out->elapsed_s = bench_now() - t0;
    out->gen_tps = generated / out->elapsed_s;
    out->ttft_p50_ms = bench_median(ttft, n_ttft);
    engine_stats st;
    engine_stats_get(e, &st);
    out->hit_tokens = st.prefix_hit_tokens - st0.prefix_hit_tokens;
    out->computed_prompt = st.prompt_tokens_computed - st0.prompt_tokens_computed;
    free(sys); free(prompts); free(ttft);
    return rc;
}

void bench_concurrency(const char *models_dir, int quick) {
    const char *preset = quick ? "small" : "1b";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s-Q8_0.gguf", models_dir, preset);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        mkdir(models_dir, 0755);
        model_random_opts mo;
        model_random_preset(&mo, preset, NULL);
        mo.type = GGML_TYPE_Q8_0;
        inf_error err = {0};
        fprintf(stderr, "bench: writing %s ...\n", path);
        if (model_random_write(path, &mo, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return; }
    }
    engine_config cfg = engine_config_default();
    cfg.kv_cache_bytes = (size_t)1 << 30;
    cfg.max_num_seqs = 64;
    cfg.max_num_batched_tokens = 512;
    engine *e = NULL;
    inf_error err = {0};
    if (engine_open(&e, &cfg, path, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return; }
    int uniq = 32, max_tokens = quick ? 8 : 16, sys = 512;
    printf("\n## Engine throughput, random %s Q8_0 (%s), greedy, %d new tokens per request\n\n",
           quick ? "small" : "1B", engine_device(e), max_tokens);
    printf("| concurrent requests | shared system prompt | prompt tokens each | generated tok/s | "
           "median TTFT ms | prompt tokens computed | prefix-cache hit tokens | elapsed s |\n");
    printf("|---:|---|---:|---:|---:|---:|---:|---:|\n");
    static const int levels[4] = {1, 4, 16, 64};
    for (int with_sys = 0; with_sys < 2; with_sys++) {
        for (int l = 0; l < 4; l++) {
            conc_result r = {0};
            int sl = with_sys ? sys : 0;
            if (run_level(e, levels[l], sl, with_sys ? 16 : uniq, max_tokens, &r)) continue;
            printf("| %d | %s | %d | %.2f | %.0f | %llu | %llu | %.1f |\n", levels[l],
                   with_sys ? "512 tokens" : "none", sl + (with_sys ? 16 : uniq), r.gen_tps,
                   r.ttft_p50_ms, (unsigned long long)r.computed_prompt,
                   (unsigned long long)r.hit_tokens, r.elapsed_s);
            fflush(stdout);
        }
    }
    engine_close(e);
}
