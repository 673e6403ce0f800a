/* fuzz_gguf.c - libFuzzer target for the GGUF reader (make fuzz).
 *
 * Parses the input with gguf_open_memory; when it is accepted, touches every
 * byte the reader hands out (keys, strings, array elements) and dequantizes
 * the first row (bounded) of every tensor, so that any extent the reader
 * failed to check shows up as an out-of-bounds read under ASan. The input is
 * copied into an exactly-sized heap buffer so ASan sees its end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

static volatile uint64_t sink;

static void touch(const char *p, uint64_t n) {
    uint64_t h = 0;
    for (uint64_t i = 0; i < n; i++) h = h * 31 + (unsigned char)p[i];
    sink += h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    gguf_file *f = NULL;
    inf_error err = {0};
    if (gguf_open_memory(&f, copy, size, "fuzz", &err) != 0) {
        /* a failure must always come with a message */
        if (!err.msg[0]) abort();
        free(copy);
        return 0;
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kvs[i];
        touch(kv->key.ptr, kv->key.len);
        if (kv->type == GGUF_VT_STRING) touch(kv->v.str.ptr, kv->v.str.len);
        if (kv->type != GGUF_VT_ARRAY) continue;
        for (uint64_t j = 0; j < kv->arr_n; j++) {
            if (kv->arr_type == GGUF_VT_STRING) touch(kv->arr_strs[j].ptr, kv->arr_strs[j].len);
            else sink += (uint64_t)gguf_arr_get_i64(kv, j) + (uint64_t)(gguf_arr_get_f64(kv, j) != 0);
        }
    }
    uint32_t u32;
    float f32;
    char buf[64];
    gguf_get_u32(f, "general.alignment", &u32, NULL);
    gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &f32, NULL);
    gguf_get_cstr(f, "general.architecture", buf, sizeof buf, NULL);

    float *row = malloc(8192 * sizeof(float));
    for (uint64_t i = 0; row && i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (gguf_find_tensor(f, t->name) != t) abort(); /* names are unique */
        size_t blck = quant_block_size(t->type);
        if (!quant_type_supported(t->type) || !blck) abort(); /* reader admits only these */
        uint64_t n = t->ne[0] < 8192 ? t->ne[0] : 8192 / blck * blck;
        quant_dequantize_row(t->type, t->data, row, (size_t)n);
        for (uint64_t j = 0; j < n; j++) sink += row[j] != 0.0f;
        /* the last row too: it ends exactly at the tensor's last byte */
        int ok;
        size_t rb = quant_row_bytes(t->type, t->ne[0], &ok);
        if (!ok || t->nbytes % rb) abort();
        const uint8_t *last = (const uint8_t *)t->data + (t->nbytes - rb);
        quant_dequantize_row(t->type, last + rb - quant_row_bytes(t->type, n, &ok), row, (size_t)n);
    }
    free(row);
    gguf_close(f);
    free(copy);
    return 0;
}
