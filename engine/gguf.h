/* gguf.h - reader and writer for GGUF v2/v3 model files.
 *
 * The reader memory-maps the file and trusts nothing in it: every count,
 * length, offset, dimension product and tensor extent is checked against the
 * file size and against overflow before use. A bad file yields INF_EFORMAT
 * (or INF_EUNSUPPORTED) with one message naming the file, the field and the
 * reason. Strings returned point into the mapping (not NUL-terminated) and
 * live as long as the gguf_file.
 */
#ifndef INF_GGUF_H
#define INF_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"
#include "status.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

typedef enum gguf_value_type {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12
} gguf_value_type;

typedef struct gguf_str {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    gguf_value_type type;
    union {
        uint64_t u64; /* all unsigned ints and bool, widened */
        int64_t i64;  /* all signed ints, widened */
        double f64;   /* float32/float64, widened */
        gguf_str str;
    } v;
    /* type == GGUF_VT_ARRAY: */
    gguf_value_type arr_type;  /* element type (never ARRAY: nested arrays are rejected) */
    uint64_t arr_n;            /* element count */
    const void *arr_data;      /* raw little-endian elements for scalar types */
    gguf_str *arr_strs;        /* arr_type == STRING: arr_n strings (owned by the file) */
} gguf_kv;

typedef struct gguf_tensor {
    char name[256];             /* NUL-terminated copy */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    int type;                   /* ggml_type */
    uint64_t offset;            /* relative to the data section */
    uint64_t n_elements;
    uint64_t nbytes;
    const void *data;           /* into the mapping */
} gguf_tensor;

typedef struct gguf_file {
    char path[1024];
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kvs;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset; /* start of the tensor data section in the file */
    const uint8_t *base;  /* mapping (or caller's buffer) */
    size_t size;
    int mapped;           /* 1 if base is our mmap */
} gguf_file;

/* Opens and validates path. On success *out owns the mapping; free with gguf_close. */
int gguf_open(gguf_file **out, const char *path, inf_error *err);

/* Parses an in-memory image (not copied: buf must outlive the gguf_file).
 * `name` is used in error messages. */
int gguf_open_memory(gguf_file **out, const void *buf, size_t len, const char *name,
                     inf_error *err);

/* Frees everything gguf_open allocated and unmaps the file. NULL is a no-op. */
void gguf_close(gguf_file *f);

/* Looks up a metadata key (exact match); NULL if absent. */
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);

/* Typed getters: 0 and *out set on success; INF_ENOTFOUND if absent (out
 * untouched); INF_EFORMAT if present with an incompatible type (message names
 * the key). Integer getters accept any integer type whose value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, inf_error *err);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, inf_error *err);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, inf_error *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, inf_error *err);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, inf_error *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, inf_error *err);

/* Copies a string value into buf (NUL-terminated, truncated to cap-1). */
int gguf_get_cstr(const gguf_file *f, const char *key, char *buf, size_t cap, inf_error *err);

/* Array getter: *out points at the kv; checks that it is an array of elem_type
 * (pass -1 to accept any element type). */
int gguf_get_arr(const gguf_file *f, const char *key, int elem_type, const gguf_kv **out,
                 inf_error *err);

/* Reads element i of a numeric array as double / int64 (i < arr_n checked by caller). */
double gguf_arr_get_f64(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_get_i64(const gguf_kv *kv, uint64_t i);

/* Bytes of one element of a scalar value type; 0 for STRING, ARRAY and unknown ids. */
size_t gguf_value_type_size(gguf_value_type t);

/* Tensor lookup by name; NULL if absent. */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* 1 if s equals the NUL-terminated c. */
int gguf_str_eq(gguf_str s, const char *c);

/* ---- writer ---------------------------------------------------------------- */

typedef struct gguf_writer gguf_writer;

/* Produces the bytes of one tensor: called once per tensor while writing, it
 * must write exactly nbytes to dst. Return 0 or a negative status. */
typedef int (*gguf_fill_fn)(void *ctx, const char *name, void *dst, uint64_t nbytes);

/* Creates an empty writer (GGUF v3, alignment 32). NULL on allocation failure. */
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

/* Metadata setters; keys and strings are copied. Order is preserved; setting
 * an existing key replaces its value in place. They return 0, INF_EINVAL or
 * INF_ENOMEM, and a failure is also remembered and reported by
 * gguf_writer_write. */
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v);
/* Any scalar type (not STRING/ARRAY): `value` points at one raw little-endian
 * element of that type (e.g. a uint16_t for GGUF_VT_UINT16). */
int gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_value_type type,
                           const void *value);
/* Array of scalars of elem_type (raw little-endian elements, copied). */
int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_value_type elem_type,
                        const void *data, uint64_t n);
/* Array of n strings with explicit lengths (copied). */
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                            const uint64_t *lens, uint64_t n);
/* Copies every metadata kv of src whose key starts with prefix (e.g. "tokenizer."). */
int gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src, const char *prefix);

/* Declares a tensor; its bytes come from fill(ctx, name, dst, nbytes) at write
 * time (data==NULL), or are copied from data (fill==NULL). */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                           const uint64_t *ne, const void *data, gguf_fill_fn fill, void *ctx);

/* Selects the GGUF version written: 3 (default) or 2 (the layouts are the
 * same; v2 exists for compatibility tests). INF_EINVAL for other values. */
int gguf_writer_set_version(gguf_writer *w, uint32_t version);

/* Writes the file (streaming tensor data; memory use bounded by the largest
 * tensor). The file appears at `path` only when complete (written to a
 * temporary name, then renamed). A setter that failed earlier (bad argument,
 * out of memory) makes this fail with a message naming it. The data alignment
 * is general.alignment (uint32, a power of two) if set, else 32. */
int gguf_writer_write(gguf_writer *w, const char *path, inf_error *err);

#endif
