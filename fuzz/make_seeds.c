/* make_seeds.c - writes the seed corpus fuzz/corpus/gguf/ with our own writer.
 * Not part of the build; regenerate by hand:
 *   gcc -std=c11 -D_GNU_SOURCE -Iengine fuzz/make_seeds.c engine/gguf.c \
 *       engine/gguf_write.c engine/quant.c engine/status.c -lm -o /tmp/make_seeds
 *   /tmp/make_seeds fuzz/corpus/gguf [../shared/models/stories260K.gguf]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint8_t rnd8(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

/* Random bytes, but with small f16 scales so dequantized values stay finite. */
static int fill_random(void *ctx, const char *name, void *dst, uint64_t nbytes) {
    (void)ctx;
    (void)name;
    uint8_t *p = dst;
    for (uint64_t i = 0; i < nbytes; i++) p[i] = rnd8();
    for (uint64_t i = 1; i < nbytes; i += 2) p[i] &= 0x3b;
    return 0;
}

static void all_kvs(gguf_writer *w) {
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_scalar(w, "t.u8", GGUF_VT_UINT8, &u8);
    gguf_writer_set_scalar(w, "t.i8", GGUF_VT_INT8, &i8);
    gguf_writer_set_scalar(w, "t.u16", GGUF_VT_UINT16, &u16);
    gguf_writer_set_scalar(w, "t.i16", GGUF_VT_INT16, &i16);
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", -2000000000);
    gguf_writer_set_f32(w, "t.f32", 1e-5f);
    gguf_writer_set_bool(w, "t.bool", 1);
    gguf_writer_set_u64(w, "t.u64", 1ull << 40);
    gguf_writer_set_i64(w, "t.i64", -(1ll << 40));
    gguf_writer_set_f64(w, "t.f64", 3.25);
    uint8_t a8[3] = {1, 2, 3};
    int32_t a32[3] = {-1, 0, 1};
    float af[3] = {0.5f, -1.5f, 2.0f};
    uint8_t ab[2] = {0, 1};
    uint64_t a64[2] = {7, 1ull << 63};
    double ad[2] = {1.0 / 3, -2};
    int16_t a16[2] = {-5, 5};
    gguf_writer_set_arr(w, "a.u8", GGUF_VT_UINT8, a8, 3);
    gguf_writer_set_arr(w, "a.i8", GGUF_VT_INT8, a8, 3);
    gguf_writer_set_arr(w, "a.i16", GGUF_VT_INT16, a16, 2);
    gguf_writer_set_arr(w, "a.u16", GGUF_VT_UINT16, a16, 2);
    gguf_writer_set_arr(w, "a.i32", GGUF_VT_INT32, a32, 3);
    gguf_writer_set_arr(w, "a.u32", GGUF_VT_UINT32, a32, 3);
    gguf_writer_set_arr(w, "a.f32", GGUF_VT_FLOAT32, af, 3);
    gguf_writer_set_arr(w, "a.bool", GGUF_VT_BOOL, ab, 2);
    gguf_writer_set_arr(w, "a.u64", GGUF_VT_UINT64, a64, 2);
    gguf_writer_set_arr(w, "a.i64", GGUF_VT_INT64, a64, 2);
    gguf_writer_set_arr(w, "a.f64", GGUF_VT_FLOAT64, ad, 2);
    gguf_writer_set_arr(w, "a.empty", GGUF_VT_UINT32, NULL, 0);
    const char *s[4] = {"<unk>", "", "hello", "\xe2\x96\x81world"};
    uint64_t l[4] = {5, 0, 5, 8};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", s, l, 4);
}

static void all_tensors(gguf_writer *w) {
    static const struct {
        const char *name;
        int type;
        uint32_t nd;
        uint64_t ne[4];
    } ts[] = {
        {"f32", GGML_TYPE_F32, 2, {8, 2, 1, 1}},   {"f16", GGML_TYPE_F16, 3, {4, 2, 2, 1}},
        {"bf16", GGML_TYPE_BF16, 1, {8, 1, 1, 1}}, {"q8_0", GGML_TYPE_Q8_0, 2, {32, 2, 1, 1}},
        {"q4_0", GGML_TYPE_Q4_0, 1, {32, 1, 1, 1}}, {"q4_1", GGML_TYPE_Q4_1, 1, {32, 1, 1, 1}},
        {"q5_0", GGML_TYPE_Q5_0, 1, {32, 1, 1, 1}}, {"q5_1", GGML_TYPE_Q5_1, 1, {32, 1, 1, 1}},
        {"q4_k", GGML_TYPE_Q4_K, 1, {256, 1, 1, 1}}, {"q5_k", GGML_TYPE_Q5_K, 1, {256, 1, 1, 1}},
        {"q6_k", GGML_TYPE_Q6_K, 1, {256, 1, 1, 1}}, {"f32_4d", GGML_TYPE_F32, 4, {2, 1, 2, 2}},
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne, NULL, fill_random, NULL);
}

static void finish(gguf_writer *w, const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    inf_error err = {0};
    if (gguf_writer_write(w, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    gguf_writer_free(w);
    gguf_file *f;
    if (gguf_open(&f, path, &err)) {
        fprintf(stderr, "reading back: %s\n", err.msg);
        exit(1);
    }
    printf("%s: %zu bytes, %llu kvs, %llu tensors\n", path, f->size, (unsigned long long)f->n_kv,
           (unsigned long long)f->n_tensors);
    gguf_close(f);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *dir = argv[1];
    gguf_writer *w = gguf_writer_new();
    all_kvs(w);
    all_tensors(w);
    finish(w, dir, "v3_all.gguf");

    w = gguf_writer_new();
    gguf_writer_set_version(w, 2);
    all_kvs(w);
    all_tensors(w);
    finish(w, dir, "v2_all.gguf");

    w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 64);
    uint64_t ne[2] = {32, 3};
    gguf_writer_add_tensor(w, "a", GGML_TYPE_Q8_0, 2, ne, NULL, fill_random, NULL);
    gguf_writer_add_tensor(w, "b", GGML_TYPE_F16, 2, ne, NULL, fill_random, NULL);
    finish(w, dir, "v3_align64.gguf");

    w = gguf_writer_new();
    finish(w, dir, "v3_empty.gguf");

    w = gguf_writer_new();
    all_kvs(w);
    finish(w, dir, "v3_kv_only.gguf");

    if (argc > 2) {
        /* the real stories260K metadata (vocabulary included) with two small tensors */
        gguf_file *src;
        inf_error err = {0};
        if (gguf_open(&src, argv[2], &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        w = gguf_writer_new();
        gguf_writer_copy_kvs(w, src, "");
        const gguf_tensor *t = gguf_find_tensor(src, "output_norm.weight");
        if (t) gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL);
        uint64_t ne2[2] = {64, 2};
        gguf_writer_add_tensor(w, "blk.0.attn_q.weight", GGML_TYPE_Q4_0, 2, ne2, NULL, fill_random, NULL);
        finish(w, dir, "v3_stories_meta.gguf");
        gguf_close(src);
    }
    return 0;
}
