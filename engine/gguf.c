/* gguf.c - GGUF v2/v3 reader (see gguf.h).
 *
 * The file is untrusted input. Parsing goes through a bounds-checked cursor;
 * every count is bounded by the bytes that remain before anything is
 * allocated for it, so a header claiming 2^60 entries fails at once instead
 * of attempting a huge allocation. Errors name the file, the field and the
 * reason in one sentence.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
/* Smallest possible encodings, used to bound counts by the remaining bytes. */
#define MIN_KV_BYTES 14     /* key length (8) + key (>=1) + value type (4) + value (>=1) */
#define MIN_TENSOR_BYTES 29 /* name length (8) + name (>=1) + n_dims (4) + ne (8) + type (4) + offset (8) */

typedef struct {
    const uint8_t *p;
    size_t size;
    size_t pos;
    const char *file; /* for messages */
    inf_error *err;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Formats an untrusted name for a message: printable ASCII only, truncated. */
static const char *safe_name(const char *s, uint64_t len, char *buf, size_t cap) {
    size_t n = 0;
    for (uint64_t i = 0; i < len && n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[n++] = (ch >= 0x20 && ch < 0x7f && ch != '\'') ? (char)ch : '?';
    }
    if (len > n && n + 4 >= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* "truncated" message for a field that needs `need` bytes at the cursor. */
static int truncated(cursor *c, const char *field, uint64_t need) {
    return inf_error_set(c->err, INF_EFORMAT,
                         "%s: %s: file truncated (needs %llu bytes at offset %zu, only %zu left)",
                         c->file, field, (unsigned long long)need, c->pos, left(c));
}

static int rd_u32(cursor *c, uint32_t *v, const char *field) {
    *v = 0;
    if (left(c) < 4) return truncated(c, field, 4);
    *v = le32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *field) {
    *v = 0;
    if (left(c) < 8) return truncated(c, field, 8);
    *v = le64(c->p + c->pos);
    c->pos += 8;
    return 0;
}

/* Reads a u64-length-prefixed string; `field` names the length field. */
static int rd_str(cursor *c, gguf_str *s, const char *field) {
    uint64_t len = 0;
    int rc = rd_u64(c, &len, field);
    if (rc) return rc;
    if (len > left(c))
        return inf_error_set(c->err, INF_EFORMAT,
                             "%s: %s: %llu exceeds the %zu bytes left in the file", c->file,
                             field, (unsigned long long)len, left(c));
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return 0;
}

size_t gguf_value_type_size(gguf_value_type t) {
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_INT8:
    case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16:
    case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32:
    case GGUF_VT_INT32:
    case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64:
    case GGUF_VT_INT64:
    case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

/* Decodes one little-endian scalar of type t into the kv union. */
static void decode_scalar(gguf_kv *kv, uint32_t t, const uint8_t *p) {
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_BOOL: kv->v.u64 = p[0]; break;
    case GGUF_VT_INT8: kv->v.i64 = (int8_t)p[0]; break;
    case GGUF_VT_UINT16: kv->v.u64 = (uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_VT_INT16: kv->v.i64 = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_VT_UINT32: kv->v.u64 = le32(p); break;
    case GGUF_VT_INT32: kv->v.i64 = (int32_t)le32(p); break;
    case GGUF_VT_FLOAT32: {
        float f;
        uint32_t u = le32(p);
        memcpy(&f, &u, 4);
        kv->v.f64 = f;
        break;
    }
    case GGUF_VT_UINT64: kv->v.u64 = le64(p); break;
    case GGUF_VT_INT64: kv->v.i64 = (int64_t)le64(p); break;
    case GGUF_VT_FLOAT64: {
        uint64_t u = le64(p);
        memcpy(&kv->v.f64, &u, 8);
        break;
    }
    default: break;
    }
}

/* ---- duplicate detection: a small open-addressing set of indices ---------- */

typedef struct {
    uint32_t *slot; /* index+1, 0 = empty */
    size_t mask;
} name_set;

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int set_init(name_set *s, uint64_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    s->slot = calloc(cap, sizeof *s->slot);
    s->mask = cap - 1;
    return s->slot ? 0 : INF_ENOMEM;
}

/* Inserts index idx (named ptr/len); returns the earlier index if the name is
 * already present, else -1. names(i) gives the stored name of index i. */
static int64_t set_insert(name_set *s, const char *ptr, uint64_t len, uint32_t idx,
                          const gguf_str *(*names)(const void *, uint32_t), const void *ctx) {
    size_t h = (size_t)hash_bytes(ptr, len) & s->mask;
    while (s->slot[h]) {
        const gguf_str *o = names(ctx, s->slot[h] - 1);
        if (o->len == len && memcmp(o->ptr, ptr, len) == 0) return s->slot[h] - 1;
        h = (h + 1) & s->mask;
    }
    s->slot[h] = idx + 1;
    return -1;
}

static const gguf_str *kv_name(const void *ctx, uint32_t i) { return &((const gguf_kv *)ctx)[i].key; }
static const gguf_str *str_name(const void *ctx, uint32_t i) { return &((const gguf_str *)ctx)[i]; }

/* ---- parsing ----------------------------------------------------------------- */

static int parse_kv(cursor *c, gguf_kv *kv, uint64_t idx) {
    char field[160], nm[80];
    snprintf(field, sizeof field, "kv %llu key length", (unsigned long long)idx);
    int rc = rd_str(c, &kv->key, field);
    if (rc) return rc;
    if (kv->key.len == 0)
        return inf_error_set(c->err, INF_EFORMAT, "%s: kv %llu key length: key is empty", c->file,
                             (unsigned long long)idx);
    safe_name(kv->key.ptr, kv->key.len, nm, sizeof nm);

    uint32_t t = 0;
    snprintf(field, sizeof field, "kv '%s' value type", nm);
    if ((rc = rd_u32(c, &t, field))) return rc;
    if (t > GGUF_VT_FLOAT64)
        return inf_error_set(c->err, INF_EFORMAT, "%s: kv '%s' value type: unknown type id %u",
                             c->file, nm, t);
    kv->type = (gguf_value_type)t;

    if (t == GGUF_VT_STRING) {
        snprintf(field, sizeof field, "kv '%s' string length", nm);
        return rd_str(c, &kv->v.str, field);
    }
    if (t != GGUF_VT_ARRAY) {
        size_t sz = gguf_value_type_size((gguf_value_type)t);
        snprintf(field, sizeof field, "kv '%s' value", nm);
        if (left(c) < sz) return truncated(c, field, sz);
        if (t == GGUF_VT_BOOL && c->p[c->pos] > 1)
            return inf_error_set(c->err, INF_EFORMAT, "%s: kv '%s' value: bool is %u, not 0 or 1",
                                 c->file, nm, c->p[c->pos]);
        decode_scalar(kv, t, c->p + c->pos);
        c->pos += sz;
        return 0;
    }

    uint32_t et = 0;
    uint64_t n = 0;
    snprintf(field, sizeof field, "kv '%s' array element type", nm);
    if ((rc = rd_u32(c, &et, field))) return rc;
    if (et == GGUF_VT_ARRAY)
        return inf_error_set(c->err, INF_EUNSUPPORTED,
                             "%s: kv '%s' array element type: nested arrays are not supported",
                             c->file, nm);
    if (et > GGUF_VT_FLOAT64)
        return inf_error_set(c->err, INF_EFORMAT,
                             "%s: kv '%s' array element type: unknown type id %u", c->file, nm, et);
    snprintf(field, sizeof field, "kv '%s' array count", nm);
    if ((rc = rd_u64(c, &n, field))) return rc;
    kv->arr_type = (gguf_value_type)et;
    kv->arr_n = n;
    if (et == GGUF_VT_STRING) {
        if (n > left(c) / 8)
            return inf_error_set(c->err, INF_EFORMAT,
                                 "%s: kv '%s' array count: %llu strings cannot fit in the %zu bytes left",
                                 c->file, nm, (unsigned long long)n, left(c));
        if (n) {
            kv->arr_strs = malloc((size_t)n * sizeof *kv->arr_strs);
            if (!kv->arr_strs)
                return inf_error_set(c->err, INF_ENOMEM, "%s: kv '%s': out of memory for %llu strings",
                                     c->file, nm, (unsigned long long)n);
        }
        for (uint64_t i = 0; i < n; i++) {
            /* vocabularies have 100k+ strings: format the field name only on failure */
            if (left(c) >= 8) {
                uint64_t len = le64(c->p + c->pos);
                if (len <= left(c) - 8) {
                    kv->arr_strs[i].ptr = (const char *)c->p + c->pos + 8;
                    kv->arr_strs[i].len = len;
                    c->pos += 8 + (size_t)len;
                    continue;
                }
            }
            snprintf(field, sizeof field, "kv '%s' array element %llu string length", nm,
                     (unsigned long long)i);
            return rd_str(c, &kv->arr_strs[i], field);
        }
        kv->arr_data = NULL; /* string elements are in arr_strs */
        return 0;
    }
    size_t sz = gguf_value_type_size((gguf_value_type)et);
    if (n > left(c) / sz)
        return inf_error_set(c->err, INF_EFORMAT,
                             "%s: kv '%s' array count: %llu elements of %zu bytes exceed the %zu bytes left",
                             c->file, nm, (unsigned long long)n, sz, left(c));
    kv->arr_data = c->p + c->pos;
    if (et == GGUF_VT_BOOL) {
        for (uint64_t i = 0; i < n; i++)
            if (c->p[c->pos + i] > 1)
                return inf_error_set(c->err, INF_EFORMAT,
                                     "%s: kv '%s' array element %llu: bool is %u, not 0 or 1", c->file,
                                     nm, (unsigned long long)i, c->p[c->pos + i]);
    }
    c->pos += (size_t)(n * sz);
    return 0;
}

static int parse_tensor_info(cursor *c, gguf_tensor *t, uint64_t idx) {
    char field[160], nm[80];
    gguf_str name;
    snprintf(field, sizeof field, "tensor %llu name length", (unsigned long long)idx);
    int rc = rd_str(c, &name, field);
    if (rc) return rc;
    safe_name(name.ptr, name.len, nm, sizeof nm);
    if (name.len == 0 || name.len >= sizeof t->name)
        return inf_error_set(c->err, INF_EFORMAT,
                             "%s: tensor %llu name length: %llu is outside 1..%zu", c->file,
                             (unsigned long long)idx, (unsigned long long)name.len,
                             sizeof t->name - 1);
    if (memchr(name.ptr, 0, (size_t)name.len))
        return inf_error_set(c->err, INF_EFORMAT, "%s: tensor '%s' name: contains a NUL byte",
                             c->file, nm);
    memcpy(t->name, name.ptr, (size_t)name.len);
    t->name[name.len] = '\0';

    snprintf(field, sizeof field, "tensor '%s' n_dims", nm);
    if ((rc = rd_u32(c, &t->n_dims, field))) return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return inf_error_set(c->err, INF_EFORMAT, "%s: tensor '%s' n_dims: %u is outside 1..%d",
                             c->file, nm, t->n_dims, GGUF_MAX_DIMS);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        snprintf(field, sizeof field, "tensor '%s' ne[%u]", nm, d);
        if ((rc = rd_u64(c, &t->ne[d], field))) return rc;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return inf_error_set(c->err, INF_EFORMAT,
                                 "%s: tensor '%s' ne[%u]: dimension %llu is not in 1..2^63-1",
                                 c->file, nm, d, (unsigned long long)t->ne[d]);
    }
    uint32_t type = 0;
    snprintf(field, sizeof field, "tensor '%s' type", nm);
    if ((rc = rd_u32(c, &type, field))) return rc;
    if (!quant_type_supported((int)type))
        return inf_error_set(c->err, INF_EUNSUPPORTED,
                             "%s: tensor '%s' type: unsupported ggml type id %u (%s)", c->file, nm,
                             type, quant_type_name((int)type));
    t->type = (int)type;
    snprintf(field, sizeof field, "tensor '%s' offset", nm);
    if ((rc = rd_u64(c, &t->offset, field))) return rc;

    uint64_t n = t->ne[0];
    for (uint32_t d = 1; d < t->n_dims; d++)
        if (__builtin_mul_overflow(n, t->ne[d], &n) || n > (uint64_t)INT64_MAX)
            return inf_error_set(c->err, INF_EFORMAT,
                                 "%s: tensor '%s' ne[%u]: element count overflows 2^63", c->file,
                                 nm, d);
    t->n_elements = n;
    size_t blck = quant_block_size(t->type);
    if (t->ne[0] % blck)
        return inf_error_set(c->err, INF_EFORMAT,
                             "%s: tensor '%s' ne[0]: %llu is not a multiple of the %s block size %zu",
                             c->file, nm, (unsigned long long)t->ne[0], quant_type_name(t->type), blck);
    uint64_t rows = n / t->ne[0];
    uint64_t row_bytes;
    if (__builtin_mul_overflow(t->ne[0] / blck, (uint64_t)quant_type_size(t->type), &row_bytes) ||
        __builtin_mul_overflow(row_bytes, rows, &t->nbytes))
        return inf_error_set(c->err, INF_EFORMAT, "%s: tensor '%s' ne: byte size overflows 2^64",
                             c->file, nm);
    return 0;
}

static int parse(gguf_file *f, inf_error *err) {
    cursor c = {f->base, f->size, 0, f->path, err};
    const char *file = f->path;
    int rc;

    if (f->size < 4 || memcmp(f->base, GGUF_MAGIC, 4) != 0)
        return inf_error_set(err, INF_EFORMAT, "%s: header magic: not a GGUF file (expected \"GGUF\")",
                             file);
    c.pos = 4;
    if ((rc = rd_u32(&c, &f->version, "header version"))) return rc;
    uint32_t v = f->version;
    uint32_t swapped = __builtin_bswap32(v);
    if ((v & 0xffff) == 0 && swapped >= 1 && swapped <= 3)
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "%s: header version: big-endian GGUF not supported (byte-swapped version %u)",
                             file, swapped);
    if (v != 2 && v != 3)
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "%s: header version: GGUF version %u is not supported (only 2 and 3)",
                             file, v);
    if ((rc = rd_u64(&c, &f->n_tensors, "header n_tensors"))) return rc;
    if ((rc = rd_u64(&c, &f->n_kv, "header n_kv"))) return rc;
    if (f->n_tensors > left(&c) / MIN_TENSOR_BYTES || f->n_tensors >= UINT32_MAX)
        return inf_error_set(err, INF_EFORMAT,
                             "%s: header n_tensors: %llu tensors cannot fit in the %zu bytes left",
                             file, (unsigned long long)f->n_tensors, left(&c));
    if (f->n_kv > left(&c) / MIN_KV_BYTES || f->n_kv >= UINT32_MAX ||
        f->n_kv * MIN_KV_BYTES + f->n_tensors * MIN_TENSOR_BYTES > left(&c))
        return inf_error_set(err, INF_EFORMAT,
                             "%s: header n_kv: %llu key-value pairs (and %llu tensors) cannot fit in the %zu bytes left",
                             file, (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors,
                             left(&c));

    if (f->n_kv) {
        f->kvs = calloc((size_t)f->n_kv, sizeof *f->kvs);
        if (!f->kvs) return inf_error_set(err, INF_ENOMEM, "%s: out of memory for %llu kvs", file,
                                          (unsigned long long)f->n_kv);
    }
    name_set set = {0};
    if ((rc = set_init(&set, f->n_kv))) return inf_error_set(err, rc, "%s: out of memory", file);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if ((rc = parse_kv(&c, &f->kvs[i], i))) break;
        int64_t prev = set_insert(&set, f->kvs[i].key.ptr, f->kvs[i].key.len, (uint32_t)i, kv_name, f->kvs);
        if (prev >= 0) {
            char nm[80];
            rc = inf_error_set(err, INF_EFORMAT, "%s: kv %llu '%s': duplicate key (also kv %lld)", file,
                               (unsigned long long)i,
                               safe_name(f->kvs[i].key.ptr, f->kvs[i].key.len, nm, sizeof nm),
                               (long long)prev);
            break;
        }
    }
    free(set.slot);
    if (rc) return rc;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_VT_UINT32)
            return inf_error_set(err, INF_EFORMAT,
                                 "%s: kv 'general.alignment': must be of type uint32 (found type %d)",
                                 file, (int)al->type);
        if (al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1)))
            return inf_error_set(err, INF_EFORMAT,
                                 "%s: kv 'general.alignment': %llu is not a nonzero power of two", file,
                                 (unsigned long long)al->v.u64);
        f->alignment = al->v.u64;
    }

    if (f->n_tensors) {
        f->tensors = calloc((size_t)f->n_tensors, sizeof *f->tensors);
        if (!f->tensors)
            return inf_error_set(err, INF_ENOMEM, "%s: out of memory for %llu tensors", file,
                                 (unsigned long long)f->n_tensors);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((rc = parse_tensor_info(&c, &f->tensors[i], i))) return rc;

    /* tensor names: duplicates are checked through a temporary gguf_str view */
    gguf_str *names = NULL;
    if (f->n_tensors) {
        names = malloc((size_t)f->n_tensors * sizeof *names);
        if (!names || set_init(&set, f->n_tensors)) {
            free(names);
            return inf_error_set(err, INF_ENOMEM, "%s: out of memory", file);
        }
        for (uint64_t i = 0; i < f->n_tensors && !rc; i++) {
            names[i].ptr = f->tensors[i].name;
            names[i].len = strlen(f->tensors[i].name);
            int64_t prev = set_insert(&set, names[i].ptr, names[i].len, (uint32_t)i, str_name, names);
            if (prev >= 0) {
                char nm[80];
                rc = inf_error_set(err, INF_EFORMAT,
                                   "%s: tensor '%s' name: duplicate tensor name (tensors %lld and %llu)",
                                   file, safe_name(names[i].ptr, names[i].len, nm, sizeof nm),
                                   (long long)prev, (unsigned long long)i);
            }
        }
        free(set.slot);
        free(names);
        if (rc) return rc;
    }

    /* c.pos <= size, so rounding up cannot overflow a 64-bit value */
    uint64_t hdr_end = c.pos;
    f->data_offset = (hdr_end + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors && f->data_offset > f->size)
        return inf_error_set(err, INF_EFORMAT,
                             "%s: data section: starts at %llu, past the end of the %zu-byte file",
                             file, (unsigned long long)f->data_offset, f->size);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        char nm[80];
        safe_name(t->name, strlen(t->name), nm, sizeof nm);
        if (t->offset % f->alignment)
            return inf_error_set(err, INF_EFORMAT,
                                 "%s: tensor '%s' offset: %llu is not a multiple of the alignment %llu",
                                 file, nm, (unsigned long long)t->offset,
                                 (unsigned long long)f->alignment);
        uint64_t avail = f->size - f->data_offset;
        if (t->offset > avail)
            return inf_error_set(err, INF_EFORMAT,
                                 "%s: tensor '%s' offset: %llu is past the end of the %llu-byte data section",
                                 file, nm, (unsigned long long)t->offset, (unsigned long long)avail);
        if (t->nbytes > avail - t->offset)
            return inf_error_set(err, INF_EFORMAT,
                                 "%s: tensor '%s' data: %llu bytes (ne x %s) at offset %llu extend past the end of the %llu-byte data section",
                                 file, nm, (unsigned long long)t->nbytes, quant_type_name(t->type),
                                 (unsigned long long)t->offset, (unsigned long long)avail);
        t->data = f->base + f->data_offset + t->offset;
    }
    return 0;
}

/* ---- open / close -------------------------------------------------------------- */

static void free_parsed(gguf_file *f) {
    if (f->kvs)
        for (uint64_t i = 0; i < f->n_kv; i++) free(f->kvs[i].arr_strs);
    free(f->kvs);
    free(f->tensors);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    free_parsed(f);
    if (f->mapped && f->size) munmap((void *)f->base, f->size);
    free(f);
}

static int open_common(gguf_file *f, gguf_file **out, inf_error *err) {
    int rc = parse(f, err);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int gguf_open_memory(gguf_file **out, const void *buf, size_t len, const char *name,
                     inf_error *err) {
    if (!out || (!buf && len)) return inf_error_set(err, INF_EINVAL, "gguf_open_memory: NULL argument");
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return inf_error_set(err, INF_ENOMEM, "gguf_open_memory: out of memory");
    snprintf(f->path, sizeof f->path, "%s", name ? name : "<memory>");
    static const uint8_t empty[1];
    f->base = buf ? buf : empty;
    f->size = len;
    f->mapped = 0;
    return open_common(f, out, err);
}

int gguf_open(gguf_file **out, const char *path, inf_error *err) {
    if (!out || !path) return inf_error_set(err, INF_EINVAL, "gguf_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return inf_error_set(err, INF_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return inf_error_set(err, INF_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return inf_error_set(err, INF_EIO, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        /* too small to map usefully: let the parser give the precise message */
        uint8_t small[24];
        ssize_t n = pread(fd, small, sizeof small, 0);
        close(fd);
        gguf_file *tmp = NULL;
        int rc = gguf_open_memory(&tmp, small, n > 0 ? (size_t)n : 0, path, err);
        gguf_close(tmp);
        return rc ? rc : inf_error_set(err, INF_EFORMAT, "%s: file too small", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return inf_error_set(err, INF_EUNSUPPORTED, "%s: file too large to map", path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return inf_error_set(err, INF_EIO, "%s: mmap failed: %s", path, strerror(e));
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        munmap(m, (size_t)st.st_size);
        return inf_error_set(err, INF_ENOMEM, "%s: out of memory", path);
    }
    snprintf(f->path, sizeof f->path, "%s", path);
    f->base = m;
    f->size = (size_t)st.st_size;
    f->mapped = 1;
    return open_common(f, out, err);
}

/* ---- lookups -------------------------------------------------------------------- */

int gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kvs[i].key, key)) return &f->kvs[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static int is_uint(gguf_value_type t) {
    return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 || t == GGUF_VT_UINT64;
}
static int is_sint(gguf_value_type t) {
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}

static int type_error(const gguf_file *f, const char *key, const char *want, const gguf_kv *kv,
                      inf_error *err) {
    return inf_error_set(err, INF_EFORMAT, "%s: kv '%s': expected %s, found value type %d", f->path,
                         key, want, (int)kv->type);
}

/* Looks up key and converts any integer value to the range [lo, hi]. */
static int get_int(const gguf_file *f, const char *key, int64_t lo, uint64_t hi, uint64_t *u,
                   int64_t *s, int *neg, inf_error *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return inf_error_set(err, INF_ENOTFOUND, "%s: kv '%s' not found", f ? f->path : "?", key);
    if (is_uint(kv->type)) {
        if (kv->v.u64 > hi) goto range;
        *u = kv->v.u64;
        *s = (int64_t)(kv->v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : kv->v.u64);
        *neg = 0;
        return 0;
    }
    if (is_sint(kv->type)) {
        if (kv->v.i64 < lo || (kv->v.i64 >= 0 && (uint64_t)kv->v.i64 > hi)) goto range;
        *s = kv->v.i64;
        *u = (uint64_t)kv->v.i64;
        *neg = kv->v.i64 < 0;
        return 0;
    }
    return type_error(f, key, "an integer", kv, err);
range:
    return inf_error_set(err, INF_EFORMAT, "%s: kv '%s': value does not fit the requested type",
                         f->path, key);
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, inf_error *err) {
    uint64_t u;
    int64_t s;
    int neg, rc = get_int(f, key, 0, UINT32_MAX, &u, &s, &neg, err);
    if (!rc) *out = (uint32_t)u;
    return rc;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, inf_error *err) {
    uint64_t u;
    int64_t s;
    int neg, rc = get_int(f, key, 0, UINT64_MAX, &u, &s, &neg, err);
    if (!rc) *out = u;
    return rc;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, inf_error *err) {
    uint64_t u;
    int64_t s;
    int neg, rc = get_int(f, key, INT64_MIN, (uint64_t)INT64_MAX, &u, &s, &neg, err);
    if (!rc) *out = s;
    return rc;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, inf_error *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return inf_error_set(err, INF_ENOTFOUND, "%s: kv '%s' not found", f ? f->path : "?", key);
    if (kv->type == GGUF_VT_FLOAT32 || kv->type == GGUF_VT_FLOAT64) *out = (float)kv->v.f64;
    else if (is_uint(kv->type)) *out = (float)kv->v.u64;
    else if (is_sint(kv->type)) *out = (float)kv->v.i64;
    else return type_error(f, key, "a number", kv, err);
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, inf_error *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return inf_error_set(err, INF_ENOTFOUND, "%s: kv '%s' not found", f ? f->path : "?", key);
    if (kv->type != GGUF_VT_BOOL) return type_error(f, key, "a bool", kv, err);
    *out = kv->v.u64 != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, inf_error *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return inf_error_set(err, INF_ENOTFOUND, "%s: kv '%s' not found", f ? f->path : "?", key);
    if (kv->type != GGUF_VT_STRING) return type_error(f, key, "a string", kv, err);
    *out = kv->v.str;
    return 0;
}

int gguf_get_cstr(const gguf_file *f, const char *key, char *buf, size_t cap, inf_error *err) {
    gguf_str s = {0};
    int rc = gguf_get_str(f, key, &s, err);
    if (rc) return rc;
    if (!cap) return 0;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(buf, s.ptr, n);
    buf[n] = '\0';
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, int elem_type, const gguf_kv **out,
                 inf_error *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return inf_error_set(err, INF_ENOTFOUND, "%s: kv '%s' not found", f ? f->path : "?", key);
    if (kv->type != GGUF_VT_ARRAY) return type_error(f, key, "an array", kv, err);
    if (elem_type >= 0 && (int)kv->arr_type != elem_type)
        return inf_error_set(err, INF_EFORMAT,
                             "%s: kv '%s': expected an array of value type %d, found element type %d",
                             f->path, key, elem_type, (int)kv->arr_type);
    *out = kv;
    return 0;
}

/* Decodes element i of a scalar array into a temporary kv (elements may be unaligned). */
static gguf_kv arr_elem(const gguf_kv *kv, uint64_t i) {
    gguf_kv tmp;
    memset(&tmp, 0, sizeof tmp);
    size_t sz = gguf_value_type_size(kv->arr_type);
    if (sz && kv->arr_data && i < kv->arr_n)
        decode_scalar(&tmp, kv->arr_type, (const uint8_t *)kv->arr_data + i * sz);
    return tmp;
}

double gguf_arr_get_f64(const gguf_kv *kv, uint64_t i) {
    gguf_kv e = arr_elem(kv, i);
    if (kv->arr_type == GGUF_VT_FLOAT32 || kv->arr_type == GGUF_VT_FLOAT64) return e.v.f64;
    if (is_sint(kv->arr_type)) return (double)e.v.i64;
    return (double)e.v.u64;
}

int64_t gguf_arr_get_i64(const gguf_kv *kv, uint64_t i) {
    gguf_kv e = arr_elem(kv, i);
    if (kv->arr_type == GGUF_VT_FLOAT32 || kv->arr_type == GGUF_VT_FLOAT64) {
        double d = e.v.f64;
        /* saturate: a float-to-int conversion out of range is undefined */
        if (!(d == d)) return 0;
        if (d >= 9.2233720368547758e18) return INT64_MAX;
        if (d <= -9.2233720368547758e18) return INT64_MIN;
        return (int64_t)d;
    }
    if (is_sint(kv->arr_type)) return e.v.i64;
    return (int64_t)e.v.u64;
}
