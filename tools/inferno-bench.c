/* inferno-bench - CPU benchmarks printed as tables (make bench).
 *
 *   inferno-bench [--quick] [--models DIR] [--only single|concurrency|constraint]
 *                 [--cpu-isa auto|scalar|avx2|avxvnni|avx512] [--model FILE]...
 *   inferno-bench --file F.gguf [--threads N] [--reps R] [--pp 128] [--tg 32] [--cpu-isa ISA]
 *   inferno-bench --file F.gguf [--threads N] --batched NPL,PP,TG [--cpu-isa ISA]
 *   inferno-bench --floors [--threads N]
 *
 * The last three print one JSON object each (tools/bench_file.c); they are
 * the engine half of tools/bench-vs-llama.py (make bench LLAMA_BIN=DIR).
 *
 * single:      prefill and decode tokens/s per model, at 1 thread and all
 *              threads, beside the machine's measured memory bandwidth and the
 *              decode floor it implies (weight bytes read per token / bandwidth).
 * constraint:  decode step time with 0, 1 and 8 of 8 rows under a JSON-Schema
 *              object or json.gbnf (tools/bench_constraint.c).
 * concurrency: aggregate generated tokens/s through the engine's scheduler at
 *              1, 4, 16 and 64 concurrent requests, without and with a shared
 *              512-token system prompt (prefix caching).
 * Random models are written once into --models (default build/bench-models).
 * Every figure is a median over repeated runs in this one process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "bench_util.h"
#include "cpu_ops.h"
#include "gguf.h"
#include "model.h"
#include "model_random.h"
#include "quant.h"
#include "threadpool.h"

typedef struct bench_opts {
    int quick;
    const char *models_dir;
    const char *only;
    const char *cpu_isa;   /* kernel set for every run (NULL: auto) */
    const char *files[8];  /* --model: benchmark these instead of the random models */
    int n_files;
} bench_opts;

/* Writes the random model `name` once (cached across runs). */
static int ensure_model(const bench_opts *o, const char *preset, int type, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s-%s.gguf", o->models_dir, preset, quant_type_name(type));
    struct stat st;
    if (stat(path, &st) == 0) return 0;
    mkdir(o->models_dir, 0755);
    model_random_opts mo;
    inf_error err = {0};
    model_random_preset(&mo, preset, &err);
    mo.type = type;
    fprintf(stderr, "bench: writing %s ...\n", path);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (model_random_write(tmp, &mo, &err) || rename(tmp, path)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Bytes a decode step streams: every matrix once plus the output projection. */
static double weight_bytes_per_token(const gguf_file *f) {
    double total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (strcmp(t->name, "token_embd.weight") == 0) continue; /* one row read */
        total += (double)t->nbytes;
    }
    if (!gguf_find_tensor(f, "output.weight")) total += (double)gguf_find_tensor(f, "token_embd.weight")->nbytes;
    return total;
}

typedef struct single_result {
    double prefill_tps, decode_tps;
} single_result;

/* --cpu-isa, for every backend this program creates. */
static const char *g_cpu_isa;

/* One sequence: prefill n_prompt tokens in one batch, then n_decode greedy steps. */
static int run_single(const char *path, int threads, int n_prompt, int n_decode, int reps,
                      single_result *r, double *wbytes) {
    inf_error err = {0};
    gguf_file *f = NULL;
    backend *b = NULL;
    if (gguf_open(&f, path, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return -1; }
    backend_config cfg = backend_config_default();
    cfg.n_threads = threads;
    cfg.kv_cache_bytes = (size_t)256 << 20;
    cfg.max_batch_tokens = n_prompt;
    cfg.cpu_isa = g_cpu_isa;
    if (backend_cpu_create(&b, f, &cfg, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        gguf_close(f);
        return -1;
    }
    *wbytes = weight_bytes_per_token(f);
    int V = (int)b->desc.n_vocab, bs = b->kv_block_size;
    int n_total = n_prompt + n_decode, nb = (n_total + bs - 1) / bs;
    int32_t *blocks = malloc(sizeof(int32_t) * nb), *toks = malloc(sizeof(int32_t) * n_total);
    int32_t *pos = malloc(sizeof(int32_t) * n_total), *si = calloc(n_total, sizeof(int32_t));
    uint8_t *need = calloc(n_total, 1);
    float *logits = malloc(sizeof(float) * V);
    double *pre = malloc(sizeof(double) * reps), *dec = malloc(sizeof(double) * reps * n_decode);
    for (int i = 0; i < nb; i++) blocks[i] = i % b->n_kv_blocks;
    uint64_t seed = 42;
    for (int i = 0; i < n_total; i++) { toks[i] = (int32_t)(bench_rand(&seed) % (uint64_t)V); pos[i] = i; }
    backend_seq seq = {blocks, nb};
    int rc = 0, nd = 0;
    for (int rep = 0; rep < reps && !rc; rep++) {
        need[n_prompt - 1] = 1;
        backend_batch bt = {n_prompt, toks, pos, si, need, 1, &seq};
        double t0 = bench_now();
        rc = backend_forward(b, &bt, logits, &err);
        pre[rep] = n_prompt / (bench_now() - t0);
        need[n_prompt - 1] = 0;
        for (int s = 0; s < n_decode && !rc; s++) {
            int p = n_prompt + s;
            uint8_t one = 1;
            backend_batch db = {1, toks + p, pos + p, si, &one, 1, &seq};
            t0 = bench_now();
            rc = backend_forward(b, &db, logits, &err);
            dec[nd++] = 1.0 / (bench_now() - t0);
        }
    }
    if (rc) fprintf(stderr, "bench: %s\n", err.msg);
    r->prefill_tps = bench_median(pre, reps);
    r->decode_tps = bench_median(dec, nd);
    free(blocks); free(toks); free(pos); free(si); free(need); free(logits); free(pre); free(dec);
    backend_free(b);
    gguf_close(f);
    return rc;
}

static void bench_single(const bench_opts *o, double bw_1, double bw_all, int ncpu) {
    const char *names[9];
    char paths[9][1024];
    int n = 0;
    const char *stories = "../shared/models/stories260K.gguf";
    if (o->n_files) {
        for (int i = 0; i < o->n_files; i++) {
            snprintf(paths[n], 1024, "%s", o->files[i]);
            names[n++] = o->files[i];
        }
    } else {
        if (access(stories, R_OK) == 0) { snprintf(paths[n], 1024, "%s", stories); names[n++] = "stories260K (F32)"; }
        else printf("(stories260K skipped: ../shared absent)\n");
        static const int types[4] = {GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K};
        static const char *tnames[4] = {"random 1B F16", "random 1B Q8_0", "random 1B Q4_0", "random 1B Q4_K"};
        const char *preset = o->quick ? "small" : "1b";
        for (int t = 0; t < 4; t++) {
            if (ensure_model(o, preset, types[t], paths[n], 1024)) continue;
            names[n++] = o->quick ? quant_type_name(types[t]) : tnames[t];
        }
    }
    int n_prompt = o->quick ? 64 : 128, n_decode = o->quick ? 16 : 24, reps = o->quick ? 2 : 3;
    printf("\n## Single stream (prompt %d tokens, %d decode steps, median of %d runs)\n\n",
           n_prompt, n_decode, reps);
    printf("| model | threads | prefill tok/s | decode tok/s | decode floor tok/s | %% of floor |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    int thread_counts[2] = {1, ncpu};
    for (int m = 0; m < n; m++) {
        for (int k = 0; k < (ncpu > 1 ? 2 : 1); k++) {
            single_result r;
            double wb = 0;
            if (run_single(paths[m], thread_counts[k], n_prompt, n_decode, reps, &r, &wb)) continue;
            double bw = thread_counts[k] == 1 ? bw_1 : bw_all;
            double floor_tps = bw * 1e9 / wb;
            printf("| %s | %d | %.1f | %.2f | %.2f | %.0f%% |\n", names[m], thread_counts[k],
                   r.prefill_tps, r.decode_tps, floor_tps, 100.0 * r.decode_tps / floor_tps);
            fflush(stdout);
        }
    }
}

int main(int argc, char **argv) {
    bench_opts o = {0, "build/bench-models", NULL, NULL, {0}, 0};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--file") == 0 || strcmp(argv[i], "--floors") == 0) return bench_file_main(argc, argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) o.quick = 1;
        else if (strcmp(argv[i], "--models") == 0 && i + 1 < argc) o.models_dir = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) o.only = argv[++i];
        else if (strcmp(argv[i], "--cpu-isa") == 0 && i + 1 < argc) o.cpu_isa = argv[++i];
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc && o.n_files < 8) o.files[o.n_files++] = argv[++i];
        else {
            fprintf(stderr, "usage: inferno-bench [--quick] [--models DIR] [--only single|concurrency|constraint]\n"
                            "                     [--cpu-isa auto|scalar|avx2|avxvnni|avx512] [--model FILE]...\n"
                            "       inferno-bench --file F.gguf [--threads N] [--reps R] [--pp N] [--tg N] [--batched NPL,PP,TG]\n"
                            "       inferno-bench --floors [--threads N]\n");
            return 2;
        }
    }
    inf_error ierr = {0};
    if (cpu_ops_select(o.cpu_isa, &ierr)) {
        fprintf(stderr, "inferno-bench: %s\n", ierr.msg);
        return 2;
    }
    g_cpu_isa = o.cpu_isa;
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    double bw_1 = bench_memory_bandwidth(1), bw_all = bench_memory_bandwidth(ncpu);
    printf("# inferno-bench\n\ncpu cores: %d; memory read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads); "
           "cpu kernels: %s\n", ncpu, bw_1, bw_all, ncpu, cpu_ops_describe());
    if (!o.only || strcmp(o.only, "single") == 0) bench_single(&o, bw_1, bw_all, ncpu);
    if (!o.only || strcmp(o.only, "concurrency") == 0) bench_concurrency(o.models_dir, o.quick);
    if (!o.only || strcmp(o.only, "constraint") == 0) bench_constraint(o.models_dir, o.quick);
    return 0;
}
