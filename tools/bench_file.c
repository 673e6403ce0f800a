/* bench_file.c - inferno-bench's one-file modes, the engine half of the
 * side-by-side bench against llama.cpp (tools/bench-vs-llama.py runs these
 * as child processes, alternating with llama-bench / llama-batched-bench on
 * the same GGUF file, and measures each child's peak RSS).
 *
 *   --file F --threads N [--reps R] [--pp 128] [--tg 32]
 *       load, then the llama-bench tests: ppN (one batch of N tokens from an
 *       empty KV cache, logits of the last one) and tgN (N single-token
 *       steps from position 0); one warm-up run of each first, as llama-bench
 *       does; tok/s is the mean over R timed runs (llama-bench's avg_ts).
 *   --file F --threads N --batched NPL,PP,TG
 *       NPL concurrent requests of PP random prompt tokens and TG greedy
 *       tokens each through the engine (scheduler, sampler, paged KV), as
 *       llama-batched-bench -npl NPL -npp PP -ntg TG; tok/s is generated
 *       tokens over the whole run, prompts included.
 *   --floors --threads N
 *       the machine's read bandwidth and peak F32 / int8 throughput on N
 *       threads: the floors the tables compare against.
 * Each prints one JSON object on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bench_util.h"
#include "cpu_ops.h"
#include "cpu_bench.h"
#include "engine.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "threadpool.h"

/* VmRSS / VmHWM of this process in KiB (0 when /proc is absent). */
static long proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') { v = atol(line + kl + 1); break; }
    fclose(f);
    return v;
}

/* Weight bytes a decode step streams (every matrix once; the embedding table
 * only as the output projection when tied) and multiply-adds per token of
 * the weight matmuls (attention's own work is left out: at these context
 * lengths it is under 1 %). */
static void file_costs(const gguf_file *f, double *bytes, double *macs) {
    *bytes = *macs = 0;
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (t == emb || t->n_dims < 2) continue;
        *bytes += (double)t->nbytes;
        *macs += (double)t->n_elements;
    }
    if (emb && !gguf_find_tensor(f, "output.weight")) {
        *bytes += (double)emb->nbytes;
        *macs += (double)emb->n_elements;
    }
}

static void print_common(const gguf_file *f, int threads, double load_s) {
    double bytes, macs;
    file_costs(f, &bytes, &macs);
    printf("\"file\":\"%s\",\"weight_type\":\"%s\",\"threads\":%d,\"load_s\":%.4f,"
           "\"weight_bytes_per_token\":%.0f,\"macs_per_token\":%.0f",
           f->path, quant_type_name(model_weight_type(f)), threads, load_s, bytes, macs);
}

static int file_single(const char *path, int threads, int reps, int n_pp, int n_tg) {
    inf_error err = {0};
    gguf_file *f = NULL;
    backend *b = NULL;
    double t0 = bench_now();
    if (gguf_open(&f, path, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    backend_config cfg = backend_config_default();
    cfg.n_threads = threads;
    cfg.kv_cache_bytes = (size_t)256 << 20;
    cfg.max_batch_tokens = n_pp > 0 ? n_pp : 1;
    if (backend_cpu_create(&b, f, &cfg, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        gguf_close(f);
        return 1;
    }
    double load_s = bench_now() - t0;
    long rss_load = proc_status_kb("VmRSS");
    int V = (int)b->desc.n_vocab, bs = b->kv_block_size;
    int n_max = n_pp > n_tg ? n_pp : n_tg, nb = (n_max + bs - 1) / bs;
    int32_t *blocks = malloc(sizeof(int32_t) * nb), *toks = malloc(sizeof(int32_t) * n_max);
    int32_t *pos = malloc(sizeof(int32_t) * n_max), *si = calloc(n_max, sizeof(int32_t));
    uint8_t *need = calloc(n_max, 1);
    float *logits = malloc(sizeof(float) * V);
    for (int i = 0; i < nb; i++) blocks[i] = i % b->n_kv_blocks;
    uint64_t seed = 42;
    for (int i = 0; i < n_max; i++) { toks[i] = (int32_t)(bench_rand(&seed) % (uint64_t)V); pos[i] = i; }
    backend_seq seq = {blocks, nb};
    double pp_sum = 0, tg_sum = 0;
    int rc = 0;
    /* rep -1 is the warm-up */
    for (int rep = -1; rep < reps && !rc && n_pp > 0; rep++) {
        memset(need, 0, (size_t)n_max);
        need[n_pp - 1] = 1;
        backend_batch bt = {n_pp, toks, pos, si, need, 1, &seq};
        double s0 = bench_now();
        rc = backend_forward(b, &bt, logits, &err);
        if (rep >= 0) pp_sum += n_pp / (bench_now() - s0);
    }
    for (int rep = -1; rep < reps && !rc && n_tg > 0; rep++) {
        int n = rep < 0 ? 1 : n_tg; /* llama-bench warms tg up with one token */
        double s0 = bench_now();
        for (int s = 0; s < n && !rc; s++) {
            uint8_t one = 1;
            backend_batch db = {1, toks + s, pos + s, si, &one, 1, &seq};
            rc = backend_forward(b, &db, logits, &err);
        }
        if (rep >= 0) tg_sum += n_tg / (bench_now() - s0);
    }
    if (rc) fprintf(stderr, "bench: %s\n", err.msg);
    else {
        printf("{\"mode\":\"single\",");
        print_common(f, threads, load_s);
        printf(",\"device\":\"%s\",\"reps\":%d,\"n_pp\":%d,\"n_tg\":%d,\"pp_tps\":%.4f,\"tg_tps\":%.4f,"
               "\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n",
               b->vt->name, reps, n_pp, n_tg, n_pp > 0 ? pp_sum / reps : 0, n_tg > 0 ? tg_sum / reps : 0,
               rss_load, proc_status_kb("VmHWM"));
    }
    free(blocks); free(toks); free(pos); free(si); free(need); free(logits);
    backend_free(b);
    gguf_close(f);
    return rc ? 1 : 0;
}

/* Runs n requests of plen random tokens and max_tokens greedy tokens each to
 * completion; returns generated tokens (or -1) and the elapsed seconds. */
static long run_requests(engine *e, int n, int plen, int max_tokens, uint64_t seed, double *elapsed) {
    const model_desc *d = engine_model_desc(e);
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)plen * (size_t)n);
    for (long i = 0; i < (long)plen * n; i++) prompts[i] = (int32_t)(3 + bench_rand(&seed) % (d->n_vocab - 3));
    sampler_params p = sampler_params_default();
    p.temperature = 0;
    p.max_tokens = max_tokens;
    p.ignore_eos = 1;
    inf_error err = {0};
    long generated = 0;
    int done = 0, rc = 0;
    double t0 = bench_now();
    for (int r = 0; r < n && !rc; r++) {
        char id[32];
        snprintf(id, sizeof id, "b%d", r);
        engine_request q = engine_request_default();
        q.id = id;
        q.prompt_tokens = prompts + (size_t)r * plen;
        q.n_prompt_tokens = plen;
        q.params = &p;
        rc = engine_add(e, &q, &err);
    }
    while (!rc && done < n) {
        const engine_event *ev;
        int ne;
        if ((rc = engine_step(e, &ev, &ne, &err))) break;
        for (int k = 0; k < ne; k++) {
            if (ev[k].type == ENGINE_EVENT_TOKEN) generated += ev[k].n_tokens;
            else if (ev[k].type == ENGINE_EVENT_ERROR) rc = -1;
            else done++;
        }
    }
    *elapsed = bench_now() - t0;
    free(prompts);
    if (rc) fprintf(stderr, "bench: %s\n", err.msg[0] ? err.msg : "a request failed");
    return rc ? -1 : generated;
}

static int file_batched(const char *path, int threads, int npl, int pp, int tg) {
    engine_config cfg = engine_config_default();
    cfg.n_threads = threads;
    cfg.kv_cache_bytes = (size_t)256 << 20;
    cfg.max_num_seqs = npl;
    cfg.max_num_batched_tokens = npl * pp > 512 ? npl * pp : 512;
    cfg.enable_prefix_caching = 0;
    cfg.seed = 1;
    engine *e = NULL;
    inf_error err = {0};
    double t0 = bench_now();
    if (engine_open(&e, &cfg, path, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    double load_s = bench_now() - t0, el = 0;
    long rss_load = proc_status_kb("VmRSS");
    /* warm-up: one 16-token prompt, as llama-batched-bench does */
    if (run_requests(e, 1, 16, 1, 5, &el) < 0) { engine_close(e); return 1; }
    long gen = run_requests(e, npl, pp, tg, 77, &el);
    if (gen < 0) { engine_close(e); return 1; }
    gguf_file *f = NULL;
    if (gguf_open(&f, path, &err)) { fprintf(stderr, "bench: %s\n", err.msg); engine_close(e); return 1; }
    printf("{\"mode\":\"batched\",");
    print_common(f, threads, load_s);
    printf(",\"device\":\"%s\",\"npl\":%d,\"pp\":%d,\"tg\":%d,\"generated\":%ld,\"elapsed_s\":%.4f,"
           "\"gen_tps\":%.4f,\"total_tps\":%.4f,\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n",
           engine_device(e), npl, pp, tg, gen, el, gen / el, (gen + (double)npl * pp) / el, rss_load,
           proc_status_kb("VmHWM"));
    gguf_close(f);
    engine_close(e);
    return 0;
}

static int floors(int threads) {
    inf_pool *pool = NULL;
    if (inf_pool_create(&pool, threads, NULL)) return 1;
    double bw = cpu_bench_memory_bandwidth(pool, (size_t)1 << 30, 1.0);
    const char *fisa = NULL, *iisa = NULL;
    double f32 = cpu_bench_peak_gflops(pool, 0, 0.5, &fisa);
    double i8 = cpu_bench_peak_gflops(pool, 1, 0.5, &iisa);
    inf_pool_free(pool);
    printf("{\"mode\":\"floors\",\"threads\":%d,\"bw_gbps\":%.3f,\"f32_gflops\":%.2f,\"f32_isa\":\"%s\","
           "\"int8_gops\":%.2f,\"int8_isa\":\"%s\"}\n",
           threads, bw > 0 ? bw : 0, f32, fisa, i8, iisa);
    return 0;
}

int bench_file_main(int argc, char **argv) {
    const char *file = NULL, *batched = NULL, *isa = NULL;
    int threads = 0, reps = 1, n_pp = 128, n_tg = 32, do_floors = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--file") == 0 && v) file = v, i++;
        else if (strcmp(a, "--threads") == 0 && v) threads = atoi(v), i++;
        else if (strcmp(a, "--reps") == 0 && v) reps = atoi(v), i++;
        else if (strcmp(a, "--pp") == 0 && v) n_pp = atoi(v), i++;
        else if (strcmp(a, "--tg") == 0 && v) n_tg = atoi(v), i++;
        else if (strcmp(a, "--batched") == 0 && v) batched = v, i++;
        else if (strcmp(a, "--floors") == 0) do_floors = 1;
        else if (strcmp(a, "--cpu-isa") == 0 && v) isa = v, i++;
        else {
            fprintf(stderr, "inferno-bench: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (reps < 1 || n_pp < 0 || n_tg < 0 || (n_pp == 0 && n_tg == 0)) {
        fprintf(stderr, "inferno-bench: bad --reps / --pp / --tg\n");
        return 2;
    }
    inf_error ierr = {0};
    if (cpu_ops_select(isa, &ierr)) { /* a forced lower kernel set (the AVX2-only comparison) */
        fprintf(stderr, "inferno-bench: %s\n", ierr.msg);
        return 2;
    }
    if (do_floors) return floors(threads);
    if (!file) { fprintf(stderr, "inferno-bench: --file FILE is needed\n"); return 2; }
    if (batched) {
        int npl, pp, tg;
        if (sscanf(batched, "%d,%d,%d", &npl, &pp, &tg) != 3 || npl < 1 || pp < 1 || tg < 1) {
            fprintf(stderr, "inferno-bench: --batched takes NPL,PP,TG\n");
            return 2;
        }
        return file_batched(file, threads, npl, pp, tg);
    }
    return file_single(file, threads, reps, n_pp, n_tg);
}
