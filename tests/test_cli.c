/* test_cli.c - the stable command-line interfaces of bin/inferno-model:
 * info, tokenize, random, generate (--json and --batch), checked against
 * llama.cpp's reference outputs in ../shared and against the library. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "testutil.h"

/* Value of "key: value" in info output, or NULL (static buffer). */
static const char *info_value(const char *out, const char *key) {
    static char buf[256];
    size_t kl = strlen(key);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':' && p[kl + 1] == ' ') {
            const char *v = p + kl + 2, *e = strchr(v, '\n');
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= sizeof buf) n = sizeof buf - 1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            return buf;
        }
    }
    return NULL;
}

static int have_bin(void) {
    FILE *f = fopen(tu_bin("inferno-model"), "r");
    if (!f) {
        tu_skip("bin/inferno-model not built (run make)");
        return 0;
    }
    fclose(f);
    return 1;
}

/* info on stories260K prints its real dims (llama.cpp's load log, shared/models/README.md). */
static void test_info_stories(void) {
    const char *model = tu_shared_file("models/stories260K.gguf");
    if (!model) { tu_skip("../shared absent: stories260K info check skipped"); return; }
    if (!have_bin()) return;
    char *argv[] = {(char *)tu_bin("inferno-model"), "info", (char *)model, NULL};
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(argv, &out), 0);
    static const char *expect[][2] = {{"architecture", "llama"}, {"n_layer", "5"}, {"n_embd", "64"},
                                      {"n_head", "8"}, {"n_head_kv", "4"}, {"n_ff", "172"},
                                      {"n_vocab", "512"}, {"n_ctx_train", "2048"},
                                      {"parameters", "292800"}, {"rope_type", "normal"}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        const char *v = info_value(out, expect[i][0]);
        CU_ASSERT_PTR_NOT_NULL(v);
        if (v) CU_ASSERT_STRING_EQUAL(v, expect[i][1]);
    }
    free(out);
}

/* random writes a model whose info matches the requested dims; a bad file
 * gives a clear error and a non-zero exit, not a crash. */
static void test_random_and_info(void) {
    if (!have_bin()) return;
    const char *path = tu_tmpfile("cli-random.gguf");
    char *argv[] = {(char *)tu_bin("inferno-model"), "random", (char *)path, "--preset", "tiny",
                    "--type", "q8_0", "--layers", "3", "--embd", "96", "--heads", "6",
                    "--kv-heads", "2", "--ff", "160", "--vocab", "400", "--seed", "5", NULL};
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(argv, NULL), 0);
    char *iargv[] = {(char *)tu_bin("inferno-model"), "info", (char *)path, NULL};
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(iargv, &out), 0);
    CU_ASSERT_STRING_EQUAL(info_value(out, "n_layer"), "3");
    CU_ASSERT_STRING_EQUAL(info_value(out, "n_embd"), "96");
    CU_ASSERT_STRING_EQUAL(info_value(out, "n_head_kv"), "2");
    CU_ASSERT_STRING_EQUAL(info_value(out, "n_vocab"), "400");
    CU_ASSERT_STRING_EQUAL(info_value(out, "weight_type"), "Q8_0");
    free(out);
    /* Same seed, same bytes: the writer is deterministic. */
    const char *path2 = tu_tmpfile("cli-random2.gguf");
    argv[2] = (char *)path2;
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(argv, NULL), 0);
    size_t l1, l2;
    char *a = tu_read_file(path, &l1), *b = tu_read_file(path2, &l2);
    CU_ASSERT(a && b && l1 == l2 && memcmp(a, b, l1) == 0);
    /* A truncated copy is rejected with an error naming the file. */
    FILE *f = fopen(path2, "wb");
    fwrite(a, 1, l1 / 3, f);
    fclose(f);
    char *bad[] = {(char *)tu_bin("inferno-model"), "info", (char *)path2, NULL};
    CU_ASSERT_EQUAL(tu_run_capture(bad, NULL), 1);
    free(a);
    free(b);
}

/* quantize rewrites every matrix in the asked type (q4_k_m: the Q4_K/Q6_K
 * mix), keeps 1-D tensors and metadata, and each tensor dequantizes close to
 * its source; a type it cannot write is refused by name. */
static void test_quantize(void) {
    if (!have_bin()) return;
    const char *src = tu_tmpfile("cli-q-src.gguf"), *dst = tu_tmpfile("cli-q-dst.gguf");
    char *rargv[] = {(char *)tu_bin("inferno-model"), "random", (char *)src, "--preset", "tiny",
                     "--type", "f16", "--layers", "8", "--embd", "256", "--heads", "4",
                     "--kv-heads", "2", "--ff", "512", "--vocab", "300", NULL};
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(rargv, NULL), 0);
    char *qargv[] = {(char *)tu_bin("inferno-model"), "quantize", (char *)src, (char *)dst, "q4_k_m", NULL};
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(qargv, NULL), 0);
    gguf_file *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&a, src, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(gguf_open(&b, dst, NULL), 0);
    CU_ASSERT_EQUAL(a->n_tensors, b->n_tensors);
    int n_q4k = 0, n_q6k = 0, bad = 0;
    float *x = malloc(512 * sizeof(float)), *y = malloc(512 * sizeof(float));
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        const gguf_tensor *tb = &b->tensors[i], *ta = gguf_find_tensor(a, tb->name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ta);
        n_q4k += tb->type == GGML_TYPE_Q4_K;
        n_q6k += tb->type == GGML_TYPE_Q6_K;
        if (ta->n_dims == 1) CU_ASSERT_EQUAL(tb->type, ta->type);
        int ok = 1;
        size_t ra = quant_row_bytes(ta->type, ta->ne[0], &ok), rb = quant_row_bytes(tb->type, tb->ne[0], &ok);
        double e2 = 0, x2 = 0;
        for (uint64_t r = 0; r < ta->n_elements / ta->ne[0]; r++) {
            quant_dequantize_row(ta->type, (const uint8_t *)ta->data + r * ra, x, ta->ne[0]);
            quant_dequantize_row(tb->type, (const uint8_t *)tb->data + r * rb, y, tb->ne[0]);
            for (uint64_t c = 0; c < ta->ne[0]; c++) {
                e2 += ((double)x[c] - y[c]) * ((double)x[c] - y[c]);
                x2 += (double)x[c] * x[c];
            }
        }
        if (!(sqrt(e2 / x2) <= 0.1)) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* 8 layers: attn_v and ffn_down of layers 0, 3, 6, 7 (llama.cpp's rule), output.weight */
    CU_ASSERT_EQUAL(n_q6k, 9);
    CU_ASSERT(n_q4k > 0);
    free(x);
    free(y);
    gguf_close(a);
    gguf_close(b);
    char *bargv[] = {(char *)tu_bin("inferno-model"), "quantize", (char *)src, (char *)dst, "q2_k", NULL};
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(bargv, &out), 1);
    free(out);
}

/* tokenize prints llama.cpp's ids (with BOS) for the reference prompts. */
static void test_tokenize_matches_llamacpp(void) {
    char model[4096], bin[4096];
    const char *m = tu_shared_file("models/stories260K.gguf");
    const char *tsv = tu_shared_file("ref/stories260K_greedy.tsv");
    if (!m || !tsv) { tu_skip("../shared absent: tokenize CLI check skipped"); return; }
    if (!have_bin()) return;
    /* tu_* paths live in a rotating buffer: keep our own copies across the loop. */
    snprintf(model, sizeof model, "%s", m);
    snprintf(bin, sizeof bin, "%s", tu_bin("inferno-model"));
    char *text = tu_read_file(tsv, NULL), *save = NULL;
    int rows = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || strncmp(line, "prompt_json", 11) == 0) continue;
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        char *tab3 = tab2 ? strchr(tab2 + 1, '\t') : NULL;
        if (!tab3) continue;
        *tab1 = *tab3 = '\0';
        /* The prompts are JSON strings without escapes except \" and \n: write the decoded text to a file. */
        char prompt[4096];
        size_t n = 0;
        for (const char *p = line + 1; *p && *p != '"' && n + 1 < sizeof prompt; p++) {
            if (*p == '\\' && p[1]) { p++; prompt[n++] = *p == 'n' ? '\n' : *p; }
            else prompt[n++] = *p;
        }
        const char *pf = tu_tmpfile("cli-prompt.txt");
        FILE *f = fopen(pf, "wb");
        fwrite(prompt, 1, n, f);
        fclose(f);
        char *argv[] = {bin, "tokenize", model, "--file", (char *)pf, NULL};
        char *out = NULL;
        CU_ASSERT_EQUAL(tu_run_capture(argv, &out), 0);
        if (out) {
            char *nl = strchr(out, '\n');
            if (nl) *nl = '\0';
            if (strchr(prompt, '\\') == NULL) CU_ASSERT_STRING_EQUAL(out, tab2 + 1);
        }
        free(out);
        rows++;
    }
    CU_ASSERT(rows >= 8);
    free(text);
}

/* generate --json reproduces llama.cpp's 64 greedy ids for "Once upon a time". */
static void test_generate_json(void) {
    const char *model = tu_shared_file("models/stories260K.gguf");
    if (!model) { tu_skip("../shared absent: generate reference check skipped"); return; }
    if (!have_bin()) return;
    char *argv[] = {(char *)tu_bin("inferno-model"), "generate", (char *)model, "--temperature", "0",
                    "--max-tokens", "64", "--threads", "2", "--json", "Once upon a time", NULL};
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(argv, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"prompt_ids\":[1,403,407,261,378]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"ids\":[432,383,286,261,376,298,315,421,395,317,426,338,401,396,267,337,410,408,419,292,411,322,265,282,295,433,426,385,328,432,358,394,261,370,432,352,266,268,388,426,338,391,266,267,337,335,312,432,398,312,286,267,414,270,333,415,426,13,438,310,439,419,357,336]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"finish_reason\":\"length\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Lily's mom said\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"decode_tokens_per_s\":"));
    free(out);
    /* Invalid parameters are rejected with the parameter's name. */
    char *bad[] = {(char *)tu_bin("inferno-model"), "generate", (char *)model, "--top-p", "1.5", "x", NULL};
    CU_ASSERT_NOT_EQUAL(tu_run_capture(bad, NULL), 0);
}

/* --batch: every request of the file, run concurrently, gives the greedy ids
 * each gives alone (llama.cpp's reference for the shared prompts). */
static void test_generate_batch(void) {
    const char *model = tu_shared_file("models/stories260K.gguf");
    if (!model) { tu_skip("../shared absent: batch check skipped"); return; }
    if (!have_bin()) return;
    const char *jf = tu_tmpfile("cli-batch.jsonl");
    FILE *f = fopen(jf, "w");
    fputs("{\"id\":\"a\",\"prompt\":\"Once upon a time\",\"max_tokens\":64,\"temperature\":0,\"priority\":1}\n"
          "{\"id\":\"b\",\"prompt\":\"The little dog\",\"max_tokens\":64,\"temperature\":0,\"arrival_ms\":5}\n"
          "{\"id\":\"c\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0,\"stop\":[\"girl\"]}\n"
          "{\"id\":\"d\",\"prompt\":\"x\",\"top_p\":2}\n", f);
    fclose(f);
    char *argv[] = {(char *)tu_bin("inferno-model"), "generate", (char *)model, "--batch", (char *)jf,
                    "--max-batched-tokens", "16", "--max-num-seqs", "4", "--threads", "2", NULL};
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(argv, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"ids\":[432,383,286,261,376,298,315,421,395,317,426,338,401,396,267,337,410,408,419,292,411,322,265,282,295,433,426,385,328,432,358,394,261,370,432,352,266,268,388,426,338,391,266,267,337,335,312,432,398,312,286,267,414,270,333,415,426,13,438,310,439,419,357,336]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"ids\":[286,261,376,298,315,421,395,317,426,338,401,396,267,337,335,311,267,422,419,269,311,267,422,419,426,385,328,432,358,394,261,370,268,414,444,335,261,370,268,414,444,426,359,413,286,261,370,432,352,266,268,388,426,338,391,266,267,337,335,312,432,398,358,279]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"text\":\", there was a little \",\"finish_reason\":\"stop\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "top_p"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"summary\":true"));
    free(out);
}

void test_register_cli(void) {
    CU_pSuite s = CU_add_suite("cli", NULL, NULL);
    CU_add_test(s, "info prints stories260K's real dims", test_info_stories);
    CU_add_test(s, "random writes what info reads; deterministic; bad file rejected", test_random_and_info);
    CU_add_test(s, "quantize q4_k_m: the mix, close to the source, bad type refused", test_quantize);
    CU_add_test(s, "tokenize equals llama.cpp prompt ids", test_tokenize_matches_llamacpp);
    CU_add_test(s, "generate --json equals llama.cpp greedy", test_generate_json);
    CU_add_test(s, "generate --batch runs concurrently with identical greedy output", test_generate_batch);
}
