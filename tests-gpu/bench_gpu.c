/* bench_gpu.c - main() of bin/inferno-bench-gpu (make bench-gpu): a roofline
 * table for the CUDA backend.
 *
 * Measures the device's read bandwidth (a pure-read kernel, and a D2D copy)
 * and cuBLAS F16/BF16 peak (a large GEMM), then for random 1B and 8B models
 * (F16 and BF16): decode step time at batch 1, 8, 32, 128 (context 512 per
 * sequence) against its floor (weights + KV bytes read / bandwidth), and
 * prefill tokens/s for 512- and 2048-token prompts against theirs (FLOPs /
 * GEMM peak), with the percentage of the floor reached. A decode step is
 * timed as the engine runs it with device sampling: the forward keeps its
 * logits on the GPU and backend_cuda_sample draws every row (temperature 0.7,
 * top_p 0.9: the heaviest filter path) so only the tokens come back; the
 * last column is the same forward copying every logits row to the host
 * instead (what host sampling needs, before any CPU sampling time).
 *
 *   inferno-bench-gpu [--models 1b,8b] [--types f16,bf16] [--dir DIR] [--quick] [--smoke]
 *
 * --smoke: the tiny random model, small buffers, short contexts and one rep:
 * proves every path of the benchmark runs (make test-cuda-emu runs it on the
 * CUDA emulator); its figures mean nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cuda_backend.h"
#include "gguf.h"
#include "model_random.h"
#include "quant.h"

#ifdef INF_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "infk.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double g_bw, g_bw_copy, g_peak[2]; /* bytes/s; FLOP/s for F16, BF16 */
static int g_smoke;

static int measure_device(void) {
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    size_t bytes = fr / 4 > ((size_t)4 << 30) ? ((size_t)4 << 30) : (fr / 4) & ~(size_t)15;
    if (g_smoke) bytes = (size_t)1 << 20;
    void *a = NULL, *b = NULL;
    uint32_t *sink = NULL;
    if (cudaMalloc(&a, bytes) || cudaMalloc(&b, bytes) || cudaMalloc((void **)&sink, 4)) return -1;
    cudaMemset(a, 1, bytes);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    inf_error err = {0};
    float ms;
    for (int i = 0; i < 2; i++) infk_read_bw(a, bytes, sink, 0, &err);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < 10; i++) infk_read_bw(a, bytes, sink, 0, &err);
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1);
    g_bw = 10.0 * bytes / (ms * 1e-3);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < 10; i++) cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1);
    g_bw_copy = 10.0 * 2 * bytes / (ms * 1e-3);
    cudaFree(b);
    /* GEMM peak */
    int n = g_smoke ? 128 : 8192;
    cublasHandle_t h;
    cublasCreate(&h);
    void *A = a, *B = (uint8_t *)a + (size_t)n * n * 2, *C = NULL;
    cudaMalloc(&C, (size_t)n * n * 4);
    float one = 1, zero = 0;
    for (int t = 0; t < 2; t++) {
        cudaDataType_t dt = t ? CUDA_R_16BF : CUDA_R_16F;
        cudaMemset(a, 0, (size_t)n * n * 4);
        for (int i = 0; i < 2; i++)
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, A, dt, n, B, dt, n, &zero, C,
                         CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        cudaEventRecord(e0, 0);
        for (int i = 0; i < 10; i++)
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, A, dt, n, B, dt, n, &zero, C,
                         CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
        g_peak[t] = 10.0 * 2.0 * n * (double)n * n / (ms * 1e-3);
    }
    cublasDestroy(h);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(C);
    cudaFree(a);
    cudaFree(sink);
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

static void row(const char *model, const char *dt, const char *test, double meas, const char *unit,
                double floor, double pct, double with_copy) {
    printf("| %-4s | %-4s | %-22s | %12.3f %-8s | %12.3f | %6.1f%% |", model, dt, test, meas, unit,
           floor, pct);
    if (with_copy > 0) printf(" %10.3f ms |\n", with_copy);
    else printf(" %13s |\n", "");
}

/* One decode step the engine's way: forward without the logits copy, then
 * device sampling of every row. */
static int step_sampled(backend *b, const backend_batch *bt, backend_cuda_sample_row *rows,
                        int32_t *tok, float *lp, inf_error *err) {
    int rc = backend_forward(b, bt, NULL, err);
    backend_cuda_sample_out out = {tok, lp, NULL, NULL, NULL};
    if (!rc) rc = backend_cuda_sample(b, rows, bt->n_tokens, NULL, 0, &out, err);
    return rc;
}

static int bench_model(const char *preset, int type, const char *dir, int quick) {
    char path[1024];
    snprintf(path, sizeof path, "%s/inferno-bench-%s-%s.gguf", dir, preset, quant_type_name(type));
    inf_error err = {0};
    FILE *fp = fopen(path, "rb");
    if (fp) fclose(fp);
    else {
        model_random_opts o;
        model_random_preset(&o, preset, &err);
        o.type = type;
        fprintf(stderr, "writing %s ...\n", path);
        if (model_random_write(path, &o, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return -1;
        }
    }
    gguf_file *f = NULL;
    if (gguf_open(&f, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    backend_config cfg = backend_config_default();
    cfg.gpu_memory_fraction = 0;
    cfg.max_batch_tokens = 2048;
    const int C = g_smoke ? 64 : 512;
    int is8b = strcmp(preset, "8b") == 0;
    cfg.kv_cache_bytes = g_smoke ? (size_t)64 << 20 : (size_t)(is8b ? 10 : 3) << 30;
    backend *b = NULL;
    if (backend_cuda_create(&b, f, &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        gguf_close(f);
        return -1;
    }
    const model_desc *d = &b->desc;
    backend_cuda_stats st;
    backend_cuda_stats_get(b, &st, &err);
    size_t es = 2; /* F16 / BF16 */
    double embd = d->tied_embeddings ? 0 : (double)d->n_vocab * d->n_embd * es; /* gathered, not read whole */
    double kv_tok = 2.0 * d->n_layer * d->n_head_kv * d->head_dim * 2; /* f16 K+V per position */
    int bs = b->kv_block_size, nb = (C + 1 + 2048 + bs - 1) / bs;
    int V = (int)d->n_vocab;
    static const int batches[4] = {1, 8, 32, 128};
    float *logits = malloc((size_t)2048 * V * sizeof(float));
    int32_t *tabs = malloc((size_t)128 * nb * 4);
    for (int i = 0; i < 128 * nb; i++) tabs[i] = i % b->n_kv_blocks;
    backend_seq seqs[128];
    for (int s = 0; s < 128; s++) seqs[s] = (backend_seq){tabs + (size_t)s * nb, nb};
    const char *dtn = quant_type_name(type);
    for (int bi = 0; bi < (g_smoke ? 2 : 4); bi++) {
        int B = batches[bi];
        if ((size_t)B * ((C + bs) / bs) > (size_t)b->n_kv_blocks) continue;
        int32_t tok[128], pos[128], si[128];
        uint8_t need[128];
        for (int s = 0; s < B; s++) {
            tok[s] = (s * 131) % V;
            pos[s] = C;
            si[s] = s;
            need[s] = 1;
            seqs[s].blocks = tabs + (size_t)s * ((C + bs) / bs);
            seqs[s].n_blocks = (C + bs) / bs;
        }
        backend_batch bt = {B, tok, pos, si, need, B, seqs};
        backend_cuda_sample_row rows[128];
        int32_t stok[128];
        float slp[128];
        for (int s = 0; s < B; s++)
            rows[s] = (backend_cuda_sample_row){0.7f, 0.9f, 0.0f, -1, 1.0f, 0.0f, 0.0f,
                                                (double)(s + 1) / (B + 2), 0, 0, 0};
        int reps = g_smoke ? 1 : quick ? 5 : 30, rc = 0;
        for (int i = 0; i < 3 && !rc; i++) rc = step_sampled(b, &bt, rows, stok, slp, &err);
        double t0 = now();
        for (int i = 0; i < reps && !rc; i++) rc = step_sampled(b, &bt, rows, stok, slp, &err);
        double dt = (now() - t0) / reps;
        for (int i = 0; i < 3 && !rc; i++) rc = backend_forward(b, &bt, logits, &err);
        t0 = now();
        for (int i = 0; i < reps && !rc; i++) rc = backend_forward(b, &bt, logits, &err);
        double dt_copy = (now() - t0) / reps;
        if (rc) {
            fprintf(stderr, "decode: %s\n", err.msg);
            break;
        }
        double bytes = st.weight_bytes - embd + (double)B * (C + 1) * kv_tok;
        double floor = bytes / g_bw;
        char name[64];
        snprintf(name, sizeof name, "decode step, batch %d", B);
        row(preset, dtn, name, dt * 1e3, "ms", floor * 1e3, 100.0 * floor / dt, dt_copy * 1e3);
    }
    for (int P = g_smoke ? 64 : 512; P <= (g_smoke ? 256 : 2048); P *= 4) {
        int32_t *tok = malloc(P * 4), *pos = malloc(P * 4), *si = calloc(P, 4);
        uint8_t *need = calloc(P, 1);
        for (int i = 0; i < P; i++) {
            tok[i] = (i * 977) % V;
            pos[i] = i;
        }
        need[P - 1] = 1;
        seqs[0].blocks = tabs;
        seqs[0].n_blocks = (P + bs - 1) / bs;
        backend_batch bt = {P, tok, pos, si, need, 1, seqs};
        backend_forward(b, &bt, logits, &err);
        int reps = g_smoke ? 1 : quick ? 2 : 5, rc = 0;
        double t0 = now();
        for (int i = 0; i < reps && !rc; i++) rc = backend_forward(b, &bt, logits, &err);
        double dt = (now() - t0) / reps;
        if (rc) fprintf(stderr, "prefill: %s\n", err.msg);
        double mat = 0; /* matrix params excluding the embedding table */
        double hd = d->head_dim;
        mat = (double)d->n_layer * ((double)d->n_embd * (d->n_head + 2.0 * d->n_head_kv) * hd +
                                    (double)d->n_head * hd * d->n_embd + 3.0 * d->n_embd * d->n_ff);
        double flops = 2.0 * P * mat + 2.0 * d->n_embd * V /* one logits row */ +
                       4.0 * d->n_layer * d->n_head * hd * ((double)P * (P + 1) / 2);
        double floor = flops / g_peak[type == GGML_TYPE_BF16];
        char name[64];
        snprintf(name, sizeof name, "prefill %d tok (tok/s)", P);
        row(preset, dtn, name, P / dt, "tok/s", P / floor, 100.0 * floor / dt, 0);
        free(tok), free(pos), free(si), free(need);
    }
    free(logits);
    free(tabs);
    backend_free(b);
    gguf_close(f);
    return 0;
}

/* 1 if tok is one of the comma-separated items of list. */
static int has_tok(const char *list, const char *tok) {
    size_t n = strlen(tok);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, tok, n)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

int main(int argc, char **argv) {
    char why[256];
    if (!backend_cuda_available(why, sizeof why)) {
        printf("SKIP: inferno-bench-gpu: %s\n", why);
        return 0;
    }
    const char *models = "1b,8b", *types = "f16,bf16", *dir = "/tmp";
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--smoke")) g_smoke = quick = 1;
        else {
            fprintf(stderr, "usage: %s [--models 1b,8b] [--types f16,bf16] [--dir DIR] [--quick] [--smoke]\n", argv[0]);
            return 2;
        }
    }
    if (measure_device()) {
        fprintf(stderr, "device measurement failed\n");
        return 1;
    }
    printf("device: %s\n", why);
    printf("read bandwidth %.0f GB/s (read kernel), %.0f GB/s (D2D copy, read+write); "
           "cuBLAS peak F16 %.0f TFLOP/s, BF16 %.0f TFLOP/s\n\n",
           g_bw / 1e9, g_bw_copy / 1e9, g_peak[0] / 1e12, g_peak[1] / 1e12);
    printf("floors: decode = (weights + KV read) / read bandwidth; prefill = FLOPs / cuBLAS peak\n");
    printf("decode: forward + device sampling (temperature 0.7, top_p 0.9), logits kept on the GPU;\n"
           "last column: the forward copying every logits row to the host instead\n");
    printf("| model | type | test | measured | floor | of floor | with logits copy |\n"
           "|---|---|---|---|---|---|---|\n");
    const char *presets[3] = {"1b", "8b", "tiny"};
    int tps[2] = {GGML_TYPE_F16, GGML_TYPE_BF16};
    const char *tnames[2] = {"f16", "bf16"};
    int rc = 0;
    if (g_smoke) models = "tiny", types = "f16";
    for (int m = 0; m < 3; m++) {
        if (!has_tok(models, presets[m])) continue;
        for (int t = 0; t < 2; t++)
            if (has_tok(types, tnames[t])) rc |= bench_model(presets[m], tps[t], dir, quick);
    }
    return rc ? 1 : 0;
}

#else

int main(void) {
    printf("SKIP: inferno-bench-gpu: built without CUDA\n");
    return 0;
}

#endif
