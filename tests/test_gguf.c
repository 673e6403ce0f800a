/* test_gguf.c - GGUF reader and writer.
 *
 * The corruption tests build their file byte by byte here, from the format
 * description, recording where each field sits; so they check the reader
 * against the spec rather than against our own writer. The round-trip tests
 * then check that writer and reader agree on every value type.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "testutil.h"

/* ---- a hand-made GGUF image with known field offsets ------------------------ */

typedef struct {
    uint8_t b[2048];
    size_t n;
} img;

static size_t p32(img *m, uint32_t v) {
    size_t at = m->n;
    for (int i = 0; i < 4; i++) m->b[m->n++] = (uint8_t)(v >> (8 * i));
    return at;
}
static size_t p64(img *m, uint64_t v) {
    size_t at = m->n;
    for (int i = 0; i < 8; i++) m->b[m->n++] = (uint8_t)(v >> (8 * i));
    return at;
}
static size_t pstr(img *m, const char *s) {
    size_t at = p64(m, strlen(s));
    memcpy(m->b + m->n, s, strlen(s));
    m->n += strlen(s);
    return at;
}
static void set32(img *m, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) m->b[at + i] = (uint8_t)(v >> (8 * i));
}
static void set64(img *m, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) m->b[at + i] = (uint8_t)(v >> (8 * i));
}

/* Offsets of every field in the reference image. */
typedef struct {
    size_t version, n_tensors, n_kv;
    size_t align_key, align_type, align_val;
    size_t kA_key, kB_keychar, kB_type, bool_val;
    size_t str_len;
    size_t arr_elem_type, arr_count;
    size_t sarr_count, sarr_elem1_len;
    size_t t0_namechar, t0_ndims, t0_ne0, t0_ne1, t0_type, t0_off;
    size_t t1_namelen, t1_ndims, t1_ne0, t1_type, t1_off;
    size_t data;
} layout;

/* kvs: general.alignment u32 32, kA u32, kB bool, s string, arr u32[2], toks str[2];
 * tensors: t0 Q8_0 32x2 at 0, t1 F32 4 at 96 (68 bytes of t0 padded to 32). */
static void build_ref(img *m, layout *L) {
    memset(m, 0, sizeof *m);
    memcpy(m->b, "GGUF", 4);
    m->n = 4;
    L->version = p32(m, 3);
    L->n_tensors = p64(m, 2);
    L->n_kv = p64(m, 6);
    L->align_key = pstr(m, "general.alignment");
    L->align_type = p32(m, 4);
    L->align_val = p32(m, 32);
    L->kA_key = pstr(m, "kA");
    p32(m, 4);
    p32(m, 7);
    L->kB_keychar = pstr(m, "kB") + 8 + 1;
    L->kB_type = p32(m, 7);
    L->bool_val = m->n;
    m->b[m->n++] = 1;
    pstr(m, "s");
    p32(m, 8);
    L->str_len = pstr(m, "abc");
    pstr(m, "arr");
    p32(m, 9);
    L->arr_elem_type = p32(m, 4);
    L->arr_count = p64(m, 2);
    p32(m, 10);
    p32(m, 20);
    pstr(m, "toks");
    p32(m, 9);
    p32(m, 8);
    L->sarr_count = p64(m, 2);
    pstr(m, "x");
    L->sarr_elem1_len = pstr(m, "yz");
    L->t0_namechar = pstr(m, "t0") + 8 + 1;
    L->t0_ndims = p32(m, 2);
    L->t0_ne0 = p64(m, 32);
    L->t0_ne1 = p64(m, 2);
    L->t0_type = p32(m, 8);
    L->t0_off = p64(m, 0);
    L->t1_namelen = pstr(m, "t1");
    L->t1_ndims = p32(m, 1);
    L->t1_ne0 = p64(m, 4);
    L->t1_type = p32(m, 0);
    L->t1_off = p64(m, 96);
    L->data = (m->n + 31) / 32 * 32;
    m->n = L->data;
    /* t0: two Q8_0 blocks with d = 1.0 (0x3c00) and q = i - 16 */
    for (int blk = 0; blk < 2; blk++) {
        m->b[m->n++] = 0x00;
        m->b[m->n++] = 0x3c;
        for (int i = 0; i < 32; i++) m->b[m->n++] = (uint8_t)(int8_t)(i - 16);
    }
    m->n = L->data + 96;
    float v[4] = {1.5f, -2.0f, 0.25f, 1e9f};
    memcpy(m->b + m->n, v, sizeof v);
    m->n += sizeof v;
}

/* Parses an exactly-sized heap copy so ASan catches any read past the end. */
static int parse_copy(const uint8_t *b, size_t n, inf_error *err) {
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, b, n);
    gguf_file *f = NULL;
    int rc = gguf_open_memory(&f, c, n, "ref.gguf", err);
    gguf_close(f);
    free(c);
    return rc;
}

static void test_ref_image_parses(void) {
    img m;
    layout L;
    build_ref(&m, &L);
    gguf_file *f = NULL;
    inf_error err = {0};
    uint8_t *c = malloc(m.n);
    memcpy(c, m.b, m.n);
    int rc = gguf_open_memory(&f, c, m.n, "ref.gguf", &err);
    if (rc) fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(f->version, 3);
    CU_ASSERT_EQUAL(f->n_kv, 6);
    CU_ASSERT_EQUAL(f->n_tensors, 2);
    CU_ASSERT_EQUAL(f->alignment, 32);
    CU_ASSERT_EQUAL(f->data_offset, L.data);
    const gguf_kv *kv;
    CU_ASSERT_EQUAL(gguf_get_arr(f, "toks", GGUF_VT_STRING, &kv, NULL), 0);
    CU_ASSERT_EQUAL(kv->arr_n, 2);
    CU_ASSERT(gguf_str_eq(kv->arr_strs[1], "yz"));
    CU_ASSERT_EQUAL(gguf_get_arr(f, "arr", GGUF_VT_UINT32, &kv, NULL), 0);
    CU_ASSERT_EQUAL(gguf_arr_get_i64(kv, 1), 20);
    const gguf_tensor *t0 = gguf_find_tensor(f, "t0"), *t1 = gguf_find_tensor(f, "t1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
    CU_ASSERT_EQUAL(t0->nbytes, 68);
    CU_ASSERT_EQUAL(t0->n_elements, 64);
    CU_ASSERT_EQUAL(t0->ne[2], 1);
    CU_ASSERT_PTR_EQUAL(t1->data, c + L.data + 96);
    float row[64];
    quant_dequantize_row(t0->type, t0->data, row, 64);
    for (int i = 0; i < 64; i++) CU_ASSERT_EQUAL(row[i], (float)(i % 32 - 16));
    quant_dequantize_row(t1->type, t1->data, row, 4);
    CU_ASSERT_EQUAL(row[1], -2.0f);
    CU_ASSERT_EQUAL(row[3], 1e9f);
    gguf_close(f);
    free(c);
}

static void test_truncation(void) {
    img m;
    layout L;
    build_ref(&m, &L);
    int accepted = 0, no_msg = 0;
    for (size_t n = 0; n < m.n; n++) {
        inf_error err = {0};
        int rc = parse_copy(m.b, n, &err);
        if (rc == 0) accepted++;
        if (rc != 0 && !strstr(err.msg, "ref.gguf")) no_msg++;
    }
    CU_ASSERT_EQUAL(accepted, 0);
    CU_ASSERT_EQUAL(no_msg, 0);
    /* and through the mmap path: a few lengths written to real files */
    size_t lens[] = {0, 3, 4, 23, 24, 100, L.data, m.n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const char *p = tu_tmpfile("trunc.gguf");
        FILE *fp = fopen(p, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fwrite(m.b, 1, lens[i], fp);
        fclose(fp);
        gguf_file *f = NULL;
        inf_error err = {0};
        CU_ASSERT_NOT_EQUAL(gguf_open(&f, p, &err), 0);
        CU_ASSERT_PTR_NULL(f);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "trunc.gguf"));
    }
}

/* Applies one corruption to a fresh reference image and checks the error. */
static void expect_corrupt(const char *what, size_t at, int width, uint64_t val, int code,
                           const char *must1, const char *must2) {
    img m;
    layout L;
    build_ref(&m, &L);
    if (width == 1) m.b[at] = (uint8_t)val;
    else if (width == 4) set32(&m, at, (uint32_t)val);
    else set64(&m, at, val);
    inf_error err = {0};
    int rc = parse_copy(m.b, m.n, &err);
    int ok = rc != 0 && (code == 0 || rc == code) && strstr(err.msg, "ref.gguf") &&
             (!must1 || strstr(err.msg, must1)) && (!must2 || strstr(err.msg, must2));
    if (!ok) fprintf(stderr, "\n  corrupt %s: rc %d msg \"%s\"\n", what, rc, err.msg);
    CU_ASSERT(ok);
}

static void test_corrupt_fields(void) {
    img m;
    layout L;
    build_ref(&m, &L);
    const uint64_t huge = 1ull << 60;
    expect_corrupt("magic", 0, 1, 'X', INF_EFORMAT, "magic", NULL);
    expect_corrupt("version 1", L.version, 4, 1, INF_EUNSUPPORTED, "version", NULL);
    expect_corrupt("version 4", L.version, 4, 4, INF_EUNSUPPORTED, "version", NULL);
    expect_corrupt("big-endian", L.version, 4, 0x03000000, INF_EUNSUPPORTED, "big-endian", NULL);
    expect_corrupt("n_tensors", L.n_tensors, 8, huge, INF_EFORMAT, "n_tensors", NULL);
    expect_corrupt("n_tensors max", L.n_tensors, 8, UINT64_MAX, INF_EFORMAT, "n_tensors", NULL);
    expect_corrupt("n_kv", L.n_kv, 8, huge, INF_EFORMAT, "n_kv", NULL);
    expect_corrupt("n_kv max", L.n_kv, 8, UINT64_MAX, INF_EFORMAT, "n_kv", NULL);
    expect_corrupt("key length", L.kA_key, 8, huge, INF_EFORMAT, "key length", NULL);
    expect_corrupt("key length 0", L.kA_key, 8, 0, INF_EFORMAT, "key length", NULL);
    expect_corrupt("value type", L.kB_type, 4, 13, INF_EFORMAT, "'kB' value type", NULL);
    expect_corrupt("bool value", L.bool_val, 1, 2, INF_EFORMAT, "'kB'", "bool");
    expect_corrupt("string length", L.str_len, 8, huge, INF_EFORMAT, "'s' string length", NULL);
    expect_corrupt("string length +1", L.str_len, 8, 1ull << 20, INF_EFORMAT, "string length", NULL);
    expect_corrupt("array count", L.arr_count, 8, huge, INF_EFORMAT, "'arr' array count", NULL);
    expect_corrupt("array elem type", L.arr_elem_type, 4, 77, INF_EFORMAT, "'arr' array element type", NULL);
    expect_corrupt("nested array", L.arr_elem_type, 4, GGUF_VT_ARRAY, INF_EUNSUPPORTED, "'arr'", "nested");
    expect_corrupt("string array count", L.sarr_count, 8, huge, INF_EFORMAT, "'toks' array count", NULL);
    expect_corrupt("string array element", L.sarr_elem1_len, 8, huge, INF_EFORMAT, "'toks'", "string length");
    expect_corrupt("duplicate key", L.kB_keychar, 1, 'A', INF_EFORMAT, "'kA'", "duplicate");
    expect_corrupt("alignment 0", L.align_val, 4, 0, INF_EFORMAT, "general.alignment", NULL);
    expect_corrupt("alignment 48", L.align_val, 4, 48, INF_EFORMAT, "general.alignment", NULL);
    expect_corrupt("alignment type", L.align_type, 4, GGUF_VT_INT32, INF_EFORMAT, "general.alignment", "type");
    expect_corrupt("alignment 64", L.align_val, 4, 64, INF_EFORMAT, "'t1' offset", NULL);
    expect_corrupt("n_dims 0", L.t0_ndims, 4, 0, INF_EFORMAT, "'t0' n_dims", NULL);
    expect_corrupt("n_dims 5", L.t0_ndims, 4, 5, INF_EFORMAT, "'t0' n_dims", NULL);
    expect_corrupt("n_dims huge", L.t1_ndims, 4, 0xffffffffu, INF_EFORMAT, "'t1' n_dims", NULL);
    expect_corrupt("ne[0] zero", L.t0_ne0, 8, 0, INF_EFORMAT, "'t0' ne[0]", NULL);
    expect_corrupt("ne[0] block", L.t0_ne0, 8, 31, INF_EFORMAT, "'t0' ne[0]", "block size");
    expect_corrupt("ne[0] negative", L.t1_ne0, 8, UINT64_MAX, INF_EFORMAT, "'t1' ne[0]", NULL);
    expect_corrupt("ne[1] overflow", L.t0_ne1, 8, 1ull << 62, INF_EFORMAT, "'t0' ne[1]", "overflow");
    expect_corrupt("ne[1] extent", L.t0_ne1, 8, 1ull << 30, INF_EFORMAT, "'t0' data", "extend past");
    expect_corrupt("ne[0] extent", L.t1_ne0, 8, 9, INF_EFORMAT, "'t1' data", "extend past");
    expect_corrupt("type", L.t0_type, 4, 99, INF_EUNSUPPORTED, "'t0' type", "99");
    expect_corrupt("type Q2_K", L.t1_type, 4, GGML_TYPE_Q2_K, INF_EUNSUPPORTED, "'t1' type", "Q2_K");
    expect_corrupt("offset unaligned", L.t1_off, 8, 97, INF_EFORMAT, "'t1' offset", "alignment");
    expect_corrupt("offset huge", L.t1_off, 8, 1ull << 40, INF_EFORMAT, "'t1' offset", NULL);
    expect_corrupt("offset wrap", L.t1_off, 8, UINT64_MAX - 31, INF_EFORMAT, "'t1' offset", NULL);
    expect_corrupt("tensor name length", L.t1_namelen, 8, huge, INF_EFORMAT, "tensor 1 name length", NULL);
    expect_corrupt("duplicate tensor", L.t0_namechar, 1, '1', INF_EFORMAT, "'t1'", "duplicate");
}

/* A header that claims 2^60 kvs in a 24-byte file must fail without trying
 * to allocate for them (ASan would report an allocation-size-too-big). */
static void test_huge_counts_fail_fast(void) {
    img m;
    memset(&m, 0, sizeof m);
    memcpy(m.b, "GGUF", 4);
    m.n = 4;
    p32(&m, 3);
    p64(&m, 0);
    size_t at = p64(&m, 1ull << 60);
    inf_error err = {0};
    CU_ASSERT_EQUAL(parse_copy(m.b, m.n, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "n_kv"));
    set64(&m, at, 0);
    CU_ASSERT_EQUAL(parse_copy(m.b, m.n, &err), 0); /* and the empty file is fine */
}

static void test_v2_and_errors_on_open(void) {
    img m;
    layout L;
    build_ref(&m, &L);
    set32(&m, L.version, 2);
    gguf_file *f = NULL;
    inf_error err = {0};
    uint8_t *c = malloc(m.n);
    memcpy(c, m.b, m.n);
    CU_ASSERT_EQUAL(gguf_open_memory(&f, c, m.n, "v2", &err), 0);
    if (f) CU_ASSERT_EQUAL(f->version, 2);
    gguf_close(f);
    free(c);
    CU_ASSERT_EQUAL(gguf_open(&f, "/nonexistent/x.gguf", &err), INF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/x.gguf"));
    CU_ASSERT_NOT_EQUAL(gguf_open(&f, tu_tmpdir(), &err), 0);
}

/* ---- writer -> reader round trip -------------------------------------------------- */

typedef struct {
    int calls;
    uint64_t seed;
} fill_ctx;

static int fill_pattern(void *ctx, const char *name, void *dst, uint64_t nbytes) {
    fill_ctx *fc = ctx;
    fc->calls++;
    uint64_t st = fc->seed;
    for (const char *c = name; *c; c++) st = st * 131 + (unsigned char)*c;
    for (uint64_t i = 0; i < nbytes; i++) ((uint8_t *)dst)[i] = (uint8_t)tu_rand_u64(&st);
    return 0;
}

static int fill_fail(void *ctx, const char *name, void *dst, uint64_t nbytes) {
    (void)ctx, (void)name, (void)dst, (void)nbytes;
    return INF_EIO;
}

static void roundtrip_version(uint32_t version) {
    gguf_writer *w = gguf_writer_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(gguf_writer_set_version(w, version), 0);
    uint8_t u8 = 250;
    int8_t i8 = -7;
    uint16_t u16 = 65000;
    int16_t i16 = -32000;
    CU_ASSERT_EQUAL(gguf_writer_set_scalar(w, "u8", GGUF_VT_UINT8, &u8), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_scalar(w, "i8", GGUF_VT_INT8, &i8), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_scalar(w, "u16", GGUF_VT_UINT16, &u16), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_scalar(w, "i16", GGUF_VT_INT16, &i16), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_u32(w, "u32", 4000000000u), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_i32(w, "i32", -2000000000), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_f32(w, "f32", 1e-5f), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_bool(w, "bool", 7), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_str(w, "str", "héllo"), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_u64(w, "u64", UINT64_MAX - 1), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_i64(w, "i64", INT64_MIN + 1), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_f64(w, "f64", 1.0 / 3), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_str(w, "empty", ""), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_u32(w, "replaced", 1), 0);
    CU_ASSERT_EQUAL(gguf_writer_set_u32(w, "replaced", 2), 0);
    /* arrays of every scalar type */
    uint8_t raw[8 * 5];
    uint64_t st = 42;
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (uint8_t)tu_rand_u64(&st);
    uint8_t bools[5] = {0, 1, 1, 0, 1};
    static const gguf_value_type scal[] = {GGUF_VT_UINT8,   GGUF_VT_INT8,   GGUF_VT_UINT16,
                                           GGUF_VT_INT16,   GGUF_VT_UINT32, GGUF_VT_INT32,
                                           GGUF_VT_FLOAT32, GGUF_VT_BOOL,   GGUF_VT_UINT64,
                                           GGUF_VT_INT64,   GGUF_VT_FLOAT64};
    static const size_t scal_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 8, 8};
    char key[32];
    for (size_t k = 0; k < 11; k++) {
        snprintf(key, sizeof key, "arr.%zu", k);
        CU_ASSERT_EQUAL(gguf_writer_set_arr(w, key, scal[k], scal[k] == GGUF_VT_BOOL ? bools : raw, 5), 0);
    }
    CU_ASSERT_EQUAL(gguf_writer_set_arr(w, "arr.empty", GGUF_VT_FLOAT32, NULL, 0), 0);
    const char *strs[4] = {"a", "", "with\0nul", "\xe2\x96\x81tok"};
    uint64_t lens[4] = {1, 0, 8, 6};
    CU_ASSERT_EQUAL(gguf_writer_set_arr_str(w, "arr.str", strs, lens, 4), 0);

    /* tensors: copied data and streamed data, several types */
    float f32data[3 * 5];
    for (int i = 0; i < 15; i++) f32data[i] = tu_rand_uniform(&st, -1, 1);
    uint64_t ne_a[2] = {5, 3}, ne_b[3] = {64, 2, 3}, ne_c[1] = {256}, ne_d[4] = {32, 1, 2, 2};
    fill_ctx fc = {0, 9};
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "a.f32", GGML_TYPE_F32, 2, ne_a, f32data, NULL, NULL), 0);
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "b.q8_0", GGML_TYPE_Q8_0, 3, ne_b, NULL, fill_pattern, &fc), 0);
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "c.q6_k", GGML_TYPE_Q6_K, 1, ne_c, NULL, fill_pattern, &fc), 0);
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "d.f16", GGML_TYPE_F16, 4, ne_d, NULL, fill_pattern, &fc), 0);
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "e.bf16", GGML_TYPE_BF16, 2, ne_a, NULL, fill_pattern, &fc), 0);
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "a.f32", GGML_TYPE_F32, 2, ne_a, f32data, NULL, NULL), INF_EEXIST);

    const char *path = tu_tmpfile(version == 2 ? "rt2.gguf" : "rt3.gguf");
    inf_error err = {0};
    /* the duplicate tensor above is remembered and reported by write */
    CU_ASSERT_EQUAL(gguf_writer_write(w, path, &err), INF_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "a.f32"));
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    gguf_writer_free(w);

    /* rebuild without the mistake (setters are cheap) */
    w = gguf_writer_new();
    gguf_writer_set_version(w, version);
    gguf_writer_set_scalar(w, "u8", GGUF_VT_UINT8, &u8);
    gguf_writer_set_scalar(w, "i8", GGUF_VT_INT8, &i8);
    gguf_writer_set_scalar(w, "u16", GGUF_VT_UINT16, &u16);
    gguf_writer_set_scalar(w, "i16", GGUF_VT_INT16, &i16);
    gguf_writer_set_u32(w, "u32", 4000000000u);
    gguf_writer_set_i32(w, "i32", -2000000000);
    gguf_writer_set_f32(w, "f32", 1e-5f);
    gguf_writer_set_bool(w, "bool", 7);
    gguf_writer_set_str(w, "str", "héllo");
    gguf_writer_set_u64(w, "u64", UINT64_MAX - 1);
    gguf_writer_set_i64(w, "i64", INT64_MIN + 1);
    gguf_writer_set_f64(w, "f64", 1.0 / 3);
    gguf_writer_set_str(w, "empty", "");
    gguf_writer_set_u32(w, "replaced", 1);
    gguf_writer_set_u32(w, "replaced", 2);
    for (size_t k = 0; k < 11; k++) {
        snprintf(key, sizeof key, "arr.%zu", k);
        gguf_writer_set_arr(w, key, scal[k], scal[k] == GGUF_VT_BOOL ? bools : raw, 5);
    }
    gguf_writer_set_arr(w, "arr.empty", GGUF_VT_FLOAT32, NULL, 0);
    gguf_writer_set_arr_str(w, "arr.str", strs, lens, 4);
    gguf_writer_add_tensor(w, "a.f32", GGML_TYPE_F32, 2, ne_a, f32data, NULL, NULL);
    gguf_writer_add_tensor(w, "b.q8_0", GGML_TYPE_Q8_0, 3, ne_b, NULL, fill_pattern, &fc);
    gguf_writer_add_tensor(w, "c.q6_k", GGML_TYPE_Q6_K, 1, ne_c, NULL, fill_pattern, &fc);
    gguf_writer_add_tensor(w, "d.f16", GGML_TYPE_F16, 4, ne_d, NULL, fill_pattern, &fc);
    gguf_writer_add_tensor(w, "e.bf16", GGML_TYPE_BF16, 2, ne_a, NULL, fill_pattern, &fc);
    fc.calls = 0;
    int rc = gguf_writer_write(w, path, &err);
    if (rc) fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(fc.calls, 4); /* once per streamed tensor */
    gguf_writer_free(w);

    gguf_file *f = NULL;
    rc = gguf_open(&f, path, &err);
    if (rc) fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(f->version, version);
    CU_ASSERT_EQUAL(f->n_kv, 14 + 11 + 2);
    CU_ASSERT_EQUAL(f->n_tensors, 5);
    /* order preserved, replaced key stays in its first position */
    CU_ASSERT(gguf_str_eq(f->kvs[0].key, "u8"));
    CU_ASSERT(gguf_str_eq(f->kvs[13].key, "replaced"));
    const gguf_kv *kv = gguf_find_kv(f, "u8");
    CU_ASSERT(kv && kv->type == GGUF_VT_UINT8 && kv->v.u64 == 250);
    kv = gguf_find_kv(f, "i8");
    CU_ASSERT(kv && kv->type == GGUF_VT_INT8 && kv->v.i64 == -7);
    kv = gguf_find_kv(f, "u16");
    CU_ASSERT(kv && kv->type == GGUF_VT_UINT16 && kv->v.u64 == 65000);
    kv = gguf_find_kv(f, "i16");
    CU_ASSERT(kv && kv->type == GGUF_VT_INT16 && kv->v.i64 == -32000);
    kv = gguf_find_kv(f, "u32");
    CU_ASSERT(kv && kv->type == GGUF_VT_UINT32 && kv->v.u64 == 4000000000u);
    kv = gguf_find_kv(f, "i32");
    CU_ASSERT(kv && kv->type == GGUF_VT_INT32 && kv->v.i64 == -2000000000);
    kv = gguf_find_kv(f, "f32");
    CU_ASSERT(kv && kv->type == GGUF_VT_FLOAT32 && kv->v.f64 == (double)1e-5f);
    kv = gguf_find_kv(f, "u64");
    CU_ASSERT(kv && kv->type == GGUF_VT_UINT64 && kv->v.u64 == UINT64_MAX - 1);
    kv = gguf_find_kv(f, "i64");
    CU_ASSERT(kv && kv->type == GGUF_VT_INT64 && kv->v.i64 == INT64_MIN + 1);
    kv = gguf_find_kv(f, "f64");
    CU_ASSERT(kv && kv->type == GGUF_VT_FLOAT64 && kv->v.f64 == 1.0 / 3);

    /* typed getters */
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float fl = 0;
    int b = -1;
    char cbuf[4];
    gguf_str s;
    CU_ASSERT_EQUAL(gguf_get_u32(f, "u8", &u32, &err), 0);
    CU_ASSERT_EQUAL(u32, 250);
    CU_ASSERT_EQUAL(gguf_get_u32(f, "i8", &u32, &err), INF_EFORMAT); /* negative */
    CU_ASSERT_EQUAL(gguf_get_u32(f, "u64", &u32, &err), INF_EFORMAT); /* too big */
    CU_ASSERT_EQUAL(gguf_get_u64(f, "u64", &u64, &err), 0);
    CU_ASSERT_EQUAL(u64, UINT64_MAX - 1);
    CU_ASSERT_EQUAL(gguf_get_i64(f, "i16", &i64, &err), 0);
    CU_ASSERT_EQUAL(i64, -32000);
    CU_ASSERT_EQUAL(gguf_get_i64(f, "u64", &i64, &err), INF_EFORMAT);
    CU_ASSERT_EQUAL(gguf_get_f32(f, "f64", &fl, &err), 0);
    CU_ASSERT_EQUAL(fl, (float)(1.0 / 3));
    CU_ASSERT_EQUAL(gguf_get_bool(f, "bool", &b, &err), 0);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(gguf_get_str(f, "str", &s, &err), 0);
    CU_ASSERT(gguf_str_eq(s, "héllo"));
    CU_ASSERT_EQUAL(gguf_get_cstr(f, "str", cbuf, sizeof cbuf, &err), 0);
    CU_ASSERT_STRING_EQUAL(cbuf, "h\xc3\xa9");
    CU_ASSERT_EQUAL(gguf_get_str(f, "empty", &s, &err), 0);
    CU_ASSERT_EQUAL(s.len, 0);
    CU_ASSERT_EQUAL(gguf_get_u32(f, "replaced", &u32, &err), 0);
    CU_ASSERT_EQUAL(u32, 2);
    CU_ASSERT_EQUAL(gguf_get_str(f, "u32", &s, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'u32'"));
    CU_ASSERT_EQUAL(gguf_get_u32(f, "missing", &u32, &err), INF_ENOTFOUND);
    CU_ASSERT_EQUAL(gguf_get_bool(f, "u8", &b, &err), INF_EFORMAT);

    /* arrays: raw bytes identical, element accessors decode them */
    for (size_t k = 0; k < 11; k++) {
        snprintf(key, sizeof key, "arr.%zu", k);
        const gguf_kv *a = NULL;
        CU_ASSERT_EQUAL_FATAL(gguf_get_arr(f, key, (int)scal[k], &a, &err), 0);
        CU_ASSERT_EQUAL(a->arr_n, 5);
        const uint8_t *src = scal[k] == GGUF_VT_BOOL ? bools : raw;
        CU_ASSERT_EQUAL(memcmp(a->arr_data, src, 5 * scal_size[k]), 0);
        if (scal[k] == GGUF_VT_INT16) {
            int16_t v;
            memcpy(&v, raw + 2 * 3, 2);
            CU_ASSERT_EQUAL(gguf_arr_get_i64(a, 3), v);
        }
        if (scal[k] == GGUF_VT_FLOAT32) {
            float v;
            memcpy(&v, raw + 4 * 2, 4);
            CU_ASSERT(gguf_arr_get_f64(a, 2) == (double)v || v != v);
        }
    }
    CU_ASSERT_EQUAL(gguf_get_arr(f, "arr.0", GGUF_VT_INT8, &kv, &err), INF_EFORMAT);
    CU_ASSERT_EQUAL(gguf_get_arr(f, "arr.empty", -1, &kv, &err), 0);
    CU_ASSERT_EQUAL(kv->arr_n, 0);
    CU_ASSERT_EQUAL(gguf_get_arr(f, "arr.str", GGUF_VT_STRING, &kv, &err), 0);
    CU_ASSERT_EQUAL_FATAL(kv->arr_n, 4);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(kv->arr_strs[i].len, lens[i]);
        CU_ASSERT_EQUAL(memcmp(kv->arr_strs[i].ptr, strs[i], lens[i]), 0);
    }

    /* tensors: shapes, sizes, alignment, and the bytes themselves */
    CU_ASSERT_EQUAL(f->data_offset % 32, 0);
    const gguf_tensor *t = gguf_find_tensor(f, "a.f32");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(t->n_dims == 2 && t->ne[0] == 5 && t->ne[1] == 3 && t->ne[2] == 1 && t->nbytes == 60);
    CU_ASSERT_EQUAL(memcmp(t->data, f32data, sizeof f32data), 0);
    static const struct {
        const char *name;
        uint64_t nbytes, n;
    } exp[] = {{"b.q8_0", 12 * 34, 384}, {"c.q6_k", 210, 256}, {"d.f16", 128 * 2, 128}, {"e.bf16", 30, 15}};
    for (int i = 0; i < 4; i++) {
        t = gguf_find_tensor(f, exp[i].name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(t->nbytes, exp[i].nbytes);
        CU_ASSERT_EQUAL(t->n_elements, exp[i].n);
        CU_ASSERT_EQUAL(((const uint8_t *)t->data - f->base) % 32, 0);
        uint8_t *want = malloc(t->nbytes);
        fill_ctx tmp = {0, 9};
        fill_pattern(&tmp, t->name, want, t->nbytes);
        CU_ASSERT_EQUAL(memcmp(t->data, want, t->nbytes), 0);
        free(want);
    }
    CU_ASSERT_EQUAL(gguf_find_tensor(f, "d.f16")->n_dims, 4);
    CU_ASSERT_PTR_NULL(gguf_find_tensor(f, "nope"));
    gguf_close(f);
}

static void test_roundtrip_v3(void) { roundtrip_version(3); }
static void test_roundtrip_v2(void) { roundtrip_version(2); }

static void test_writer_alignment_and_errors(void) {
    gguf_writer *w = gguf_writer_new();
    CU_ASSERT_EQUAL(gguf_writer_set_u32(w, "general.alignment", 128), 0);
    uint64_t ne[1] = {32};
    float d[32] = {0};
    gguf_writer_add_tensor(w, "x", GGML_TYPE_F32, 1, ne, d, NULL, NULL);
    gguf_writer_add_tensor(w, "y", GGML_TYPE_Q4_0, 1, ne, NULL, fill_pattern, &(fill_ctx){0, 1});
    const char *path = tu_tmpfile("align.gguf");
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, path, &err), 0);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, &err), 0);
    CU_ASSERT_EQUAL(f->alignment, 128);
    CU_ASSERT_EQUAL(f->data_offset % 128, 0);
    CU_ASSERT_EQUAL(gguf_find_tensor(f, "y")->offset, 128);
    gguf_close(f);

    w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 48);
    CU_ASSERT_EQUAL(gguf_writer_write(w, tu_tmpfile("bad.gguf"), &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "general.alignment"));
    gguf_writer_free(w);

    w = gguf_writer_new();
    uint64_t bad_ne[1] = {33};
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "q", GGML_TYPE_Q8_0, 1, bad_ne, d, NULL, NULL), INF_EINVAL);
    CU_ASSERT_EQUAL(gguf_writer_set_version(w, 1), INF_EINVAL);
    CU_ASSERT_NOT_EQUAL(gguf_writer_write(w, tu_tmpfile("bad2.gguf"), &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'q'"));
    gguf_writer_free(w);

    /* a failing fill callback: error names the tensor, no file is left behind */
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "boom", GGML_TYPE_F32, 1, ne, NULL, fill_fail, NULL);
    path = tu_tmpfile("boom.gguf");
    CU_ASSERT_EQUAL(gguf_writer_write(w, path, &err), INF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "boom"));
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    gguf_writer_free(w);
}

/* ---- real files from ../shared ------------------------------------------------------- */

static int open_dir_ggufs(const char *dir, int *opened) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int bad = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".gguf") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        gguf_file *f = NULL;
        inf_error err = {0};
        if (gguf_open(&f, path, &err)) {
            fprintf(stderr, "\n  %s\n", err.msg);
            bad++;
            continue;
        }
        (*opened)++;
        if (f->version != 3 || !gguf_find_kv(f, "tokenizer.ggml.model")) bad++;
        const gguf_kv *tok = NULL;
        if (gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tok, &err) || tok->arr_n < 500)
            bad++;
        gguf_close(f);
    }
    closedir(d);
    return bad;
}

static void test_shared_files_open(void) {
    const char *models = tu_shared_file("models");
    const char *vocab = tu_shared_file("models/vocab");
    if (!models || !vocab) {
        tu_skip("../shared/models not found; real GGUF files not checked");
        return;
    }
    char mdir[4096], vdir[4096];
    snprintf(mdir, sizeof mdir, "%s", models);
    snprintf(vdir, sizeof vdir, "%s", vocab);
    int opened = 0;
    CU_ASSERT_EQUAL(open_dir_ggufs(mdir, &opened), 0);
    CU_ASSERT_EQUAL(open_dir_ggufs(vdir, &opened), 0);
    CU_ASSERT(opened >= 12); /* 2 models + 10 vocabularies */
}

static void test_stories260k_facts(void) {
    const char *path = tu_shared_file("models/stories260K.gguf");
    if (!path) {
        tu_skip("../shared/models/stories260K.gguf not found");
        return;
    }
    gguf_file *f = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, &err), 0);
    CU_ASSERT_EQUAL(f->n_tensors, 48);
    int all_f32 = 1;
    for (uint64_t i = 0; i < f->n_tensors; i++) all_f32 &= f->tensors[i].type == GGML_TYPE_F32;
    CU_ASSERT(all_f32);
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512);
    char arch[32];
    CU_ASSERT_EQUAL(gguf_get_cstr(f, "general.architecture", arch, sizeof arch, &err), 0);
    CU_ASSERT_STRING_EQUAL(arch, "llama");
    uint32_t v = 0;
    CU_ASSERT_EQUAL(gguf_get_u32(f, "llama.embedding_length", &v, &err), 0);
    CU_ASSERT_EQUAL(v, 64);
    CU_ASSERT_EQUAL(gguf_get_u32(f, "llama.block_count", &v, &err), 0);
    CU_ASSERT_EQUAL(v, 5);
    CU_ASSERT_EQUAL(gguf_get_u32(f, "llama.feed_forward_length", &v, &err), 0);
    CU_ASSERT_EQUAL(v, 172);
    float eps = 0;
    CU_ASSERT_EQUAL(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, &err), 0);
    CU_ASSERT(eps > 0.99e-5f && eps < 1.01e-5f);
    const gguf_kv *tok = NULL;
    CU_ASSERT_EQUAL_FATAL(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tok, &err), 0);
    CU_ASSERT_EQUAL(tok->arr_n, 512);
    CU_ASSERT(gguf_str_eq(tok->arr_strs[1], "<s>"));
    CU_ASSERT(gguf_str_eq(tok->arr_strs[3], "<0x00>"));
    /* 292.80 K parameters per llama.cpp's load log */
    uint64_t params = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) params += f->tensors[i].n_elements;
    CU_ASSERT(params >= 292795 && params <= 292805);

    /* copy the metadata through the writer and read it back */
    gguf_writer *w = gguf_writer_new();
    CU_ASSERT_EQUAL(gguf_writer_copy_kvs(w, f, ""), 0);
    CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL), 0);
    const char *out = tu_tmpfile("stories_copy.gguf");
    CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, out, &err), 0);
    gguf_writer_free(w);
    gguf_file *g = NULL;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&g, out, &err), 0);
    CU_ASSERT_EQUAL(g->n_kv, f->n_kv);
    int same = 1;
    for (uint64_t i = 0; i < f->n_kv && i < g->n_kv; i++) {
        const gguf_kv *a = &f->kvs[i], *b = &g->kvs[i];
        same &= a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0;
        same &= a->type == b->type && a->arr_n == b->arr_n && a->arr_type == b->arr_type;
        if (a->type == GGUF_VT_STRING) same &= a->v.str.len == b->v.str.len;
        else if (a->type != GGUF_VT_ARRAY) same &= memcmp(&a->v, &b->v, sizeof a->v) == 0;
        else if (a->arr_type == GGUF_VT_STRING)
            for (uint64_t j = 0; j < a->arr_n; j++)
                same &= a->arr_strs[j].len == b->arr_strs[j].len &&
                        memcmp(a->arr_strs[j].ptr, b->arr_strs[j].ptr, a->arr_strs[j].len) == 0;
    }
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(memcmp(gguf_find_tensor(g, "token_embd.weight")->data, t->data, t->nbytes), 0);
    gguf_close(g);
    gguf_close(f);
}

/* The fuzz seed corpus must stay valid (it is what the fuzzer mutates). */
static void test_seed_corpus_valid(void) {
    DIR *d = opendir("fuzz/corpus/gguf");
    if (!d) {
        tu_skip("fuzz/corpus/gguf not found (run from the repository root)");
        return;
    }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "fuzz/corpus/gguf/%s", e->d_name);
        gguf_file *f = NULL;
        inf_error err = {0};
        int rc = gguf_open(&f, path, &err);
        if (rc) fprintf(stderr, "\n  %s\n", err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        gguf_close(f);
        n++;
    }
    closedir(d);
    CU_ASSERT(n > 0);
}

void test_register_gguf(void) {
    CU_pSuite s = CU_add_suite("gguf", NULL, NULL);
    CU_add_test(s, "hand-built image parses", test_ref_image_parses);
    CU_add_test(s, "every truncation fails", test_truncation);
    CU_add_test(s, "corrupt fields are named", test_corrupt_fields);
    CU_add_test(s, "huge counts fail fast", test_huge_counts_fail_fast);
    CU_add_test(s, "v2 accepted, open errors", test_v2_and_errors_on_open);
    CU_add_test(s, "writer/reader round trip v3", test_roundtrip_v3);
    CU_add_test(s, "writer/reader round trip v2", test_roundtrip_v2);
    CU_add_test(s, "writer alignment and errors", test_writer_alignment_and_errors);
    CU_add_test(s, "shared models and vocabs open", test_shared_files_open);
    CU_add_test(s, "stories260K facts", test_stories260k_facts);
    CU_add_test(s, "fuzz seed corpus valid", test_seed_corpus_valid);
}
