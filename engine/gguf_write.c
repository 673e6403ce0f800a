/* gguf_write.c - GGUF v3 (or v2) writer (see gguf.h).
 *
 * Metadata values are serialized when they are set, so writing the header is
 * a plain concatenation. Tensor bytes are produced one tensor at a time by
 * the caller's fill callback into a single reusable buffer, so memory use is
 * bounded by the largest tensor, not the model.
 */
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val; /* encoded value (everything after the type field) */
    size_t val_len;
} wkv;

typedef struct {
    char name[256];
    int type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes;
    uint64_t offset;
    const void *data;
    gguf_fill_fn fill;
    void *ctx;
} wtensor;

struct gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_t, cap_t;
    uint32_t version;
    int status;        /* first setter failure, reported by gguf_writer_write */
    char status_msg[256];
};

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->version = 3;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    free(w->kvs);
    free(w->ts);
    free(w);
}

int gguf_writer_set_version(gguf_writer *w, uint32_t version) {
    if (!w || (version != 2 && version != 3)) return INF_EINVAL;
    w->version = version;
    return 0;
}

/* Records the first failure so gguf_writer_write can report it. */
static int fail_why(gguf_writer *w, int code, const char *what, const char *key, const char *why) {
    if (w && !w->status) {
        w->status = code;
        snprintf(w->status_msg, sizeof w->status_msg, "%s '%s': %s", what, key ? key : "(null)", why);
    }
    return code;
}

static int fail(gguf_writer *w, int code, const char *what, const char *key) {
    return fail_why(w, code, what, key, code == INF_ENOMEM ? "out of memory" : "invalid argument");
}

/* ---- encoding buffer ---------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(buf *b, uint32_t v) {
    uint8_t e[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, e, 4);
}

static void put_u64(buf *b, uint64_t v) {
    uint8_t e[8];
    for (int i = 0; i < 8; i++) e[i] = (uint8_t)(v >> (8 * i));
    put(b, e, 8);
}

static void put_str(buf *b, const char *s, uint64_t n) {
    put_u64(b, n);
    put(b, s, (size_t)n);
}

/* Stores (or replaces) key with an already-encoded value; takes ownership of b. */
static int store(gguf_writer *w, const char *key, uint32_t type, buf *b) {
    if (b->oom) {
        free(b->p);
        return fail(w, INF_ENOMEM, "kv", key);
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(w->kvs[i].val);
            w->kvs[i].type = type;
            w->kvs[i].val = b->p;
            w->kvs[i].val_len = b->len;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *nk = realloc(w->kvs, cap * sizeof *nk);
        if (!nk) {
            free(b->p);
            return fail(w, INF_ENOMEM, "kv", key);
        }
        w->kvs = nk;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(b->p);
        return fail(w, INF_ENOMEM, "kv", key);
    }
    w->kvs[w->n_kv++] = (wkv){k, type, b->p, b->len};
    return 0;
}

static int check_key(gguf_writer *w, const char *key) {
    if (!w) return INF_EINVAL;
    if (!key || !*key) return fail(w, INF_EINVAL, "kv", key);
    return 0;
}

int gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_value_type type,
                           const void *value) {
    int rc = check_key(w, key);
    if (rc) return rc;
    size_t n = gguf_value_type_size(type);
    if (!n || !value) return fail(w, INF_EINVAL, "kv", key);
    /* values are given in host order; x86/arm64 hosts are little-endian */
    buf b = {0};
    put(&b, value, n);
    return store(w, key, (uint32_t)type, &b);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    return gguf_writer_set_scalar(w, key, GGUF_VT_UINT32, &v);
}
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    return gguf_writer_set_scalar(w, key, GGUF_VT_INT32, &v);
}
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) {
    return gguf_writer_set_scalar(w, key, GGUF_VT_UINT64, &v);
}
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v) {
    return gguf_writer_set_scalar(w, key, GGUF_VT_INT64, &v);
}
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    return gguf_writer_set_scalar(w, key, GGUF_VT_FLOAT32, &v);
}
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v) {
    return gguf_writer_set_scalar(w, key, GGUF_VT_FLOAT64, &v);
}
int gguf_writer_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v ? 1 : 0;
    return gguf_writer_set_scalar(w, key, GGUF_VT_BOOL, &b);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    int rc = check_key(w, key);
    if (rc) return rc;
    if (!v) return fail(w, INF_EINVAL, "kv", key);
    buf b = {0};
    put_str(&b, v, strlen(v));
    return store(w, key, GGUF_VT_STRING, &b);
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_value_type elem_type,
                        const void *data, uint64_t n) {
    int rc = check_key(w, key);
    if (rc) return rc;
    size_t sz = gguf_value_type_size(elem_type);
    if (!sz || (n && !data) || n > SIZE_MAX / sz) return fail(w, INF_EINVAL, "kv", key);
    buf b = {0};
    put_u32(&b, (uint32_t)elem_type);
    put_u64(&b, n);
    put(&b, data, (size_t)n * sz);
    return store(w, key, GGUF_VT_ARRAY, &b);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                            const uint64_t *lens, uint64_t n) {
    int rc = check_key(w, key);
    if (rc) return rc;
    if (n && (!strs || !lens)) return fail(w, INF_EINVAL, "kv", key);
    buf b = {0};
    put_u32(&b, GGUF_VT_STRING);
    put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        if (lens[i] && !strs[i]) {
            free(b.p);
            return fail(w, INF_EINVAL, "kv", key);
        }
        put_str(&b, strs[i], lens[i]);
    }
    return store(w, key, GGUF_VT_ARRAY, &b);
}

/* Re-encodes one parsed scalar from the reader's widened union. */
static void put_scalar_kv(buf *b, gguf_value_type t, const gguf_kv *kv) {
    uint8_t e[8];
    uint64_t u = kv->v.u64;
    if (t == GGUF_VT_FLOAT32) {
        float f = (float)kv->v.f64;
        uint32_t x;
        memcpy(&x, &f, 4);
        u = x;
    } else if (t == GGUF_VT_FLOAT64) {
        memcpy(&u, &kv->v.f64, 8);
    }
    size_t n = gguf_value_type_size(t);
    for (size_t i = 0; i < n; i++) e[i] = (uint8_t)(u >> (8 * i));
    put(b, e, n);
}

int gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src, const char *prefix) {
    if (!w) return INF_EINVAL;
    if (!src) return fail(w, INF_EINVAL, "copy_kvs", prefix);
    size_t plen = prefix ? strlen(prefix) : 0;
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const gguf_kv *kv = &src->kvs[i];
        if (kv->key.len < plen || memcmp(kv->key.ptr, prefix, plen) != 0) continue;
        char *key = strndup(kv->key.ptr, (size_t)kv->key.len);
        if (!key) return fail(w, INF_ENOMEM, "copy_kvs", prefix);
        buf b = {0};
        if (kv->type == GGUF_VT_STRING) {
            put_str(&b, kv->v.str.ptr, kv->v.str.len);
        } else if (kv->type == GGUF_VT_ARRAY) {
            put_u32(&b, (uint32_t)kv->arr_type);
            put_u64(&b, kv->arr_n);
            if (kv->arr_type == GGUF_VT_STRING)
                for (uint64_t j = 0; j < kv->arr_n; j++)
                    put_str(&b, kv->arr_strs[j].ptr, kv->arr_strs[j].len);
            else
                put(&b, kv->arr_data, (size_t)(kv->arr_n * gguf_value_type_size(kv->arr_type)));
        } else {
            put_scalar_kv(&b, kv->type, kv);
        }
        int rc = store(w, key, (uint32_t)kv->type, &b);
        free(key);
        if (rc) return rc;
    }
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                           const uint64_t *ne, const void *data, gguf_fill_fn fill, void *ctx) {
    if (!w) return INF_EINVAL;
    if (!name || !*name || strlen(name) >= sizeof w->ts[0].name || n_dims < 1 ||
        n_dims > GGUF_MAX_DIMS || !ne || (!data) == (!fill) || !quant_type_supported(type))
        return fail(w, INF_EINVAL, "tensor", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->ts[i].name, name) == 0) return fail_why(w, INF_EEXIST, "tensor", name, "duplicate name");
    wtensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.type = type;
    t.n_dims = n_dims;
    uint64_t n = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (!t.ne[d] || __builtin_mul_overflow(n, t.ne[d], &n) || n > (uint64_t)INT64_MAX)
            return fail(w, INF_EINVAL, "tensor", name);
    }
    int ok;
    size_t row = quant_row_bytes(type, t.ne[0], &ok);
    if (!ok || __builtin_mul_overflow((uint64_t)row, n / t.ne[0], &t.nbytes))
        return fail(w, INF_EINVAL, "tensor", name);
    t.data = data;
    t.fill = fill;
    t.ctx = ctx;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *nt = realloc(w->ts, cap * sizeof *nt);
        if (!nt) return fail(w, INF_ENOMEM, "tensor", name);
        w->ts = nt;
        w->cap_t = cap;
    }
    w->ts[w->n_t++] = t;
    return 0;
}

/* ---- writing -------------------------------------------------------------------- */

static int write_all(FILE *fp, const void *p, size_t n) { return fwrite(p, 1, n, fp) == n ? 0 : -1; }

static int write_pad(FILE *fp, uint64_t n) {
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (write_all(fp, zeros, k)) return -1;
        n -= k;
    }
    return 0;
}

static int get_alignment(const gguf_writer *w, uint64_t *align, inf_error *err) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0) continue;
        uint32_t a = 0;
        if (w->kvs[i].type == GGUF_VT_UINT32) {
            const uint8_t *p = w->kvs[i].val;
            a = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        }
        if (a == 0 || (a & (a - 1)))
            return inf_error_set(err, INF_EINVAL,
                                 "gguf writer: kv 'general.alignment' must be a uint32 power of two");
        *align = a;
    }
    return 0;
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

int gguf_writer_write(gguf_writer *w, const char *path, inf_error *err) {
    if (!w || !path) return inf_error_set(err, INF_EINVAL, "gguf_writer_write: NULL argument");
    if (w->status)
        return inf_error_set(err, w->status, "gguf writer for %s: an earlier call failed: %s", path,
                             w->status_msg);
    uint64_t align;
    int rc = get_alignment(w, &align, err);
    if (rc) return rc;

    buf h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, w->version);
    put_u64(&h, w->n_t);
    put_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kvs[i].key, strlen(w->kvs[i].key));
        put_u32(&h, w->kvs[i].type);
        put(&h, w->kvs[i].val, w->kvs[i].val_len);
    }
    uint64_t off = 0, max_fill = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->ts[i];
        t->offset = off;
        if (t->fill && t->nbytes > max_fill) max_fill = t->nbytes;
        if (__builtin_add_overflow(off, t->nbytes, &off) || off > UINT64_MAX - align) {
            free(h.p);
            return inf_error_set(err, INF_ERANGE, "gguf writer for %s: total tensor size overflows",
                                 path);
        }
        off = pad_to(off, align);
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&h, t->ne[d]);
        put_u32(&h, (uint32_t)t->type);
        put_u64(&h, t->offset);
    }
    if (h.oom) {
        free(h.p);
        return inf_error_set(err, INF_ENOMEM, "gguf writer for %s: out of memory for the header", path);
    }

    uint8_t *scratch = NULL;
    if (max_fill) {
        if (max_fill > SIZE_MAX || !(scratch = malloc((size_t)max_fill))) {
            free(h.p);
            return inf_error_set(err, INF_ENOMEM,
                                 "gguf writer for %s: out of memory for a %llu-byte tensor buffer",
                                 path, (unsigned long long)max_fill);
        }
    }

    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = inf_error_set(err, INF_EIO, "gguf writer: cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fp, h.p, h.len) || write_pad(fp, pad_to(h.len, align) - h.len)) goto io_error;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        const void *src = t->data;
        if (t->fill) {
            rc = t->fill(t->ctx, t->name, scratch, t->nbytes);
            if (rc) {
                if (rc > 0) rc = INF_EIO;
                rc = inf_error_set(err, rc, "gguf writer for %s: producing tensor '%s' failed (%s)", path,
                                   t->name, inf_status_name(rc));
                fclose(fp);
                unlink(tmp);
                goto out;
            }
            src = scratch;
        }
        if (write_all(fp, src, (size_t)t->nbytes)) goto io_error;
        if (i + 1 < w->n_t && write_pad(fp, w->ts[i + 1].offset - t->offset - t->nbytes)) goto io_error;
    }
    if (fflush(fp) || fsync(fileno(fp))) goto io_error;
    if (fclose(fp)) {
        fp = NULL;
        goto io_error;
    }
    fp = NULL;
    if (rename(tmp, path)) {
        rc = inf_error_set(err, INF_EIO, "gguf writer: cannot rename %s to %s: %s", tmp, path,
                           strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
    goto out;
io_error:
    rc = inf_error_set(err, INF_EIO, "gguf writer: writing %s failed: %s", tmp, strerror(errno));
    if (fp) fclose(fp);
    unlink(tmp);
out:
    free(scratch);
    free(h.p);
    return rc;
}
