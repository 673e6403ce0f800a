/* avro_codec.c - schema registry, framing detection, decode and encode of
 * inferno.v1.InferenceRequest (see avro_codec.h, docs/protocol.md).
 *
 * Decode path: bound the size -> pick the writer schema from the framing ->
 * inf_avro_scan (bounds every length) -> avro-c reads into a generic value of
 * the writer schema -> a resolved reader presents it as our reader schema ->
 * copy into inf_request -> inf_request_validate.
 *
 * avro-c 1.11.1's resolved reader refuses reader fields the writer lacks
 * (it has no default support), so each writer gets a projected reader schema
 * without those fields; the defaults come from inf_request_init instead. */
#include "avro_codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Must describe the same schema as schemas/inference_request.avsc (docs
 * stripped); the avro suite compares their canonical forms. */
static const char REQUEST_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\",\"fields\":["
    "{\"name\":\"request_id\",\"type\":\"string\"},"
    "{\"name\":\"prompt\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"prompt_token_ids\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"int\"}],\"default\":null},"
    "{\"name\":\"max_tokens\",\"type\":\"int\",\"default\":256},"
    "{\"name\":\"min_tokens\",\"type\":\"int\",\"default\":0},"
    "{\"name\":\"temperature\",\"type\":\"float\",\"default\":1.0},"
    "{\"name\":\"top_k\",\"type\":\"int\",\"default\":-1},"
    "{\"name\":\"top_p\",\"type\":\"float\",\"default\":1.0},"
    "{\"name\":\"min_p\",\"type\":\"float\",\"default\":0.0},"
    "{\"name\":\"repetition_penalty\",\"type\":\"float\",\"default\":1.0},"
    "{\"name\":\"presence_penalty\",\"type\":\"float\",\"default\":0.0},"
    "{\"name\":\"frequency_penalty\",\"type\":\"float\",\"default\":0.0},"
    "{\"name\":\"seed\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"stop\",\"type\":{\"type\":\"array\",\"items\":\"string\"},\"default\":[]},"
    "{\"name\":\"stop_token_ids\",\"type\":{\"type\":\"array\",\"items\":\"int\"},\"default\":[]},"
    "{\"name\":\"ignore_eos\",\"type\":\"boolean\",\"default\":false},"
    "{\"name\":\"logprobs\",\"type\":[\"null\",\"int\"],\"default\":null},"
    "{\"name\":\"logit_bias\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
    "\"name\":\"LogitBias\",\"fields\":[{\"name\":\"token_id\",\"type\":\"int\"},"
    "{\"name\":\"bias\",\"type\":\"float\"}]}},\"default\":[]},"
    "{\"name\":\"priority\",\"type\":[\"null\",\"int\"],\"default\":null},"
    "{\"name\":\"deadline_ms\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"reply_stream\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"stream\",\"type\":\"boolean\",\"default\":true},"
    "{\"name\":\"metadata\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{}}"
    "]}";

const char *inf_avro_request_schema_json(void) { return REQUEST_SCHEMA; }

typedef struct reg_entry {
    avro_schema_t writer;
    avro_schema_t projected;
    avro_value_iface_t *writer_iface;
    avro_value_iface_t *resolver;
    uint64_t fp;
} reg_entry;

typedef struct id_map {
    int32_t id;
    size_t entry;
} id_map;

struct inf_avro_registry {
    avro_schema_t reader;
    avro_value_iface_t *reader_iface; /* for encoding */
    reg_entry *e;                     /* e[0] is our own schema */
    size_t n, cap;
    id_map *ids;
    size_t n_ids, cap_ids;
    inf_avro_limits lim;
};

/* Every top-level field but request_id has a default; LogitBias fields do not. */
static bool has_default(const char *record, const char *field) {
    return strcmp(record, INF_AVRO_REQUEST_SCHEMA_NAME) == 0 && strcmp(field, "request_id") != 0;
}

static void entry_free(reg_entry *e) {
    if (e->resolver) avro_value_iface_decref(e->resolver);
    if (e->writer_iface) avro_value_iface_decref(e->writer_iface);
    if (e->projected) avro_schema_decref(e->projected);
    if (e->writer) avro_schema_decref(e->writer);
}

/* Builds the entry for a parsed writer schema (takes its reference). */
static int entry_make(const inf_avro_registry *reg, avro_schema_t writer, reg_entry *e,
                      inf_error *err) {
    memset(e, 0, sizeof *e);
    e->writer = writer;
    char *pcf = NULL, *proj = NULL;
    int rc = inf_avro_canonical_form(writer, &pcf, err);
    if (rc) goto fail;
    e->fp = inf_avro_crc64(pcf, strlen(pcf));
    if ((rc = inf_avro_project_reader(writer, reg->reader, has_default, &proj, err))) goto fail;
    if (avro_schema_from_json_length(proj, strlen(proj), &e->projected) != 0) {
        e->projected = NULL;
        rc = inf_error_set(err, INF_EFORMAT, "projected reader schema did not parse: %s", avro_strerror());
        goto fail;
    }
    if ((rc = inf_avro_check_resolvable(writer, e->projected, err))) {
        inf_error_wrap(err, rc, "writer schema is not compatible with %s", INF_AVRO_REQUEST_SCHEMA_NAME);
        goto fail;
    }
    if (!(e->writer_iface = avro_generic_class_from_schema(writer))) {
        rc = inf_error_set(err, INF_EFORMAT, "writer schema unusable: %s", avro_strerror());
        goto fail;
    }
    if (!(e->resolver = avro_resolved_reader_new(writer, e->projected))) {
        rc = inf_error_set(err, INF_EFORMAT, "writer schema is not compatible with %s: %s",
                           INF_AVRO_REQUEST_SCHEMA_NAME, avro_strerror());
        goto fail;
    }
    free(pcf);
    free(proj);
    return 0;
fail:
    free(pcf);
    free(proj);
    entry_free(e);
    memset(e, 0, sizeof *e);
    return rc;
}

int inf_avro_registry_create(inf_avro_registry **out, inf_error *err) {
    *out = NULL;
    inf_avro_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return inf_error_set(err, INF_ENOMEM, "out of memory creating the schema registry");
    inf_avro_registry_set_limits(reg, NULL);
    int rc;
    if (avro_schema_from_json_length(REQUEST_SCHEMA, strlen(REQUEST_SCHEMA), &reg->reader) != 0) {
        reg->reader = NULL;
        rc = inf_error_set(err, INF_EFORMAT, "built-in request schema did not parse: %s", avro_strerror());
        goto fail;
    }
    if (!(reg->reader_iface = avro_generic_class_from_schema(reg->reader))) {
        rc = inf_error_set(err, INF_EFORMAT, "built-in request schema unusable: %s", avro_strerror());
        goto fail;
    }
    if (!(reg->e = calloc(4, sizeof *reg->e))) {
        rc = inf_error_set(err, INF_ENOMEM, "out of memory creating the schema registry");
        goto fail;
    }
    reg->cap = 4;
    if ((rc = entry_make(reg, avro_schema_incref(reg->reader), &reg->e[0], err))) goto fail;
    reg->n = 1;
    *out = reg;
    return 0;
fail:
    inf_avro_registry_free(reg);
    return rc;
}

void inf_avro_registry_free(inf_avro_registry *reg) {
    if (!reg) return;
    for (size_t i = 0; i < reg->n; i++) entry_free(&reg->e[i]);
    free(reg->e);
    free(reg->ids);
    if (reg->reader_iface) avro_value_iface_decref(reg->reader_iface);
    if (reg->reader) avro_schema_decref(reg->reader);
    free(reg);
}

void inf_avro_registry_set_limits(inf_avro_registry *reg, const inf_avro_limits *lim) {
    inf_avro_limits l = {0};
    if (lim) l = *lim;
    if (!l.max_message_bytes) l.max_message_bytes = INF_AVRO_DEFAULT_MAX_MESSAGE;
    if (!l.max_string_bytes) l.max_string_bytes = INF_AVRO_DEFAULT_MAX_STRING;
    if (!l.max_items) l.max_items = INF_AVRO_DEFAULT_MAX_ITEMS;
    if (l.max_depth <= 0) l.max_depth = INF_AVRO_DEFAULT_MAX_DEPTH;
    reg->lim = l;
}

inf_avro_limits inf_avro_registry_limits(const inf_avro_registry *reg) { return reg->lim; }

uint64_t inf_avro_registry_reader_fingerprint(const inf_avro_registry *reg) { return reg->e[0].fp; }

static const reg_entry *find_fp(const inf_avro_registry *reg, uint64_t fp, size_t *idx) {
    for (size_t i = 0; i < reg->n; i++)
        if (reg->e[i].fp == fp) {
            if (idx) *idx = i;
            return &reg->e[i];
        }
    return NULL;
}

static const reg_entry *find_id(const inf_avro_registry *reg, int32_t id) {
    for (size_t i = 0; i < reg->n_ids; i++)
        if (reg->ids[i].id == id) return &reg->e[reg->ids[i].entry];
    return NULL;
}

int inf_avro_registry_add(inf_avro_registry *reg, const char *schema_json, int32_t confluent_id,
                          uint64_t *fingerprint_out, inf_error *err) {
    if (!reg || !schema_json) return inf_error_set(err, INF_EINVAL, "registry and schema text are required");
    avro_schema_t w;
    if (avro_schema_from_json_length(schema_json, strlen(schema_json), &w) != 0)
        return inf_error_set(err, INF_EFORMAT, "invalid Avro schema: %s", avro_strerror());
    char *pcf = NULL;
    int rc = inf_avro_canonical_form(w, &pcf, err);
    if (rc) {
        avro_schema_decref(w);
        return rc;
    }
    uint64_t fp = inf_avro_crc64(pcf, strlen(pcf));
    free(pcf);
    if (fingerprint_out) *fingerprint_out = fp;
    size_t idx;
    if (find_fp(reg, fp, &idx)) {
        avro_schema_decref(w);
    } else {
        if (reg->n == reg->cap) {
            reg_entry *q = realloc(reg->e, reg->cap * 2 * sizeof *q);
            if (!q) {
                avro_schema_decref(w);
                return inf_error_set(err, INF_ENOMEM, "out of memory registering a schema");
            }
            reg->e = q;
            reg->cap *= 2;
        }
        if ((rc = entry_make(reg, w, &reg->e[reg->n], err))) return rc;
        idx = reg->n++;
    }
    if (confluent_id < 0) return 0;
    const reg_entry *prev = find_id(reg, confluent_id);
    if (prev) {
        if (prev == &reg->e[idx]) return 0;
        return inf_error_set(err, INF_EEXIST, "schema id %" PRId32 " is already registered for another schema",
                             confluent_id);
    }
    if (reg->n_ids == reg->cap_ids) {
        size_t cap = reg->cap_ids ? reg->cap_ids * 2 : 8;
        id_map *q = realloc(reg->ids, cap * sizeof *q);
        if (!q) return inf_error_set(err, INF_ENOMEM, "out of memory registering a schema id");
        reg->ids = q;
        reg->cap_ids = cap;
    }
    reg->ids[reg->n_ids++] = (id_map){confluent_id, idx};
    return 0;
}

int inf_avro_registry_add_file(inf_avro_registry *reg, const char *path, int32_t confluent_id,
                               uint64_t *fingerprint_out, inf_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return inf_error_set(err, INF_EIO, "cannot open schema file %s", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                rc = inf_error_set(err, INF_EFORMAT, "schema file %s is larger than 16 MiB", path);
                break;
            }
            char *q = realloc(text, cap);
            if (!q) {
                rc = inf_error_set(err, INF_ENOMEM, "out of memory reading %s", path);
                break;
            }
            text = q;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    if (!rc && ferror(f)) rc = inf_error_set(err, INF_EIO, "error reading schema file %s", path);
    fclose(f);
    if (!rc) {
        text[len] = '\0';
        rc = inf_avro_registry_add(reg, text, confluent_id, fingerprint_out, err);
        if (rc) inf_error_wrap(err, rc, "schema file %s", path);
    }
    free(text);
    return rc;
}

int inf_avro_frame(inf_avro_framing framing, int32_t confluent_id, uint64_t fingerprint,
                   const void *body, size_t body_len, uint8_t **out, size_t *out_len, inf_error *err) {
    *out = NULL;
    *out_len = 0;
    size_t hdr = framing == INF_AVRO_FRAMING_CONFLUENT ? 5 : framing == INF_AVRO_FRAMING_SINGLE_OBJECT ? 10 : 0;
    if (framing != INF_AVRO_FRAMING_BARE && !hdr)
        return inf_error_set(err, INF_EINVAL, "unknown framing %d", (int)framing);
    uint8_t *b = malloc(hdr + body_len + 1);
    if (!b) return inf_error_set(err, INF_ENOMEM, "out of memory framing a message");
    if (framing == INF_AVRO_FRAMING_CONFLUENT) {
        uint32_t id = (uint32_t)confluent_id;
        b[0] = 0;
        for (int i = 0; i < 4; i++) b[1 + i] = (uint8_t)(id >> (24 - 8 * i));
    } else if (framing == INF_AVRO_FRAMING_SINGLE_OBJECT) {
        b[0] = 0xC3;
        b[1] = 0x01;
        for (int i = 0; i < 8; i++) b[2 + i] = (uint8_t)(fingerprint >> (8 * i));
    }
    if (body_len) memcpy(b + hdr, body, body_len);
    *out = b;
    *out_len = hdr + body_len;
    return 0;
}

/* avro value <-> inf_request, defined at the end of this file. */
static int extract(avro_value_t *rv, inf_request *out, inf_error *err);
static int fill(avro_value_t *v, const inf_request *req, inf_error *err);

int inf_avro_decode(const inf_avro_registry *reg, const void *buf, size_t len, inf_request *out,
                    inf_avro_meta *meta, inf_error *err) {
    inf_avro_meta local;
    if (!meta) meta = &local;
    memset(meta, 0, sizeof *meta);
    meta->schema_id = -1;
    inf_request_init(out);
    if (!reg || (!buf && len)) return inf_error_set(err, INF_EINVAL, "inf_avro_decode: no registry or buffer");
    const uint8_t *b = buf;
    if (len == 0) return inf_error_set(err, INF_EFORMAT, "empty request message");
    if (len > reg->lim.max_message_bytes)
        return inf_error_set(err, INF_EFORMAT, "request message of %zu bytes exceeds the %zu-byte limit", len,
                             reg->lim.max_message_bytes);
    const reg_entry *e = &reg->e[0];
    size_t hdr = 0;
    bool unknown_id = false; /* Confluent id not registered: read with our schema */
    if (b[0] == 0x00) {
        meta->framing = INF_AVRO_FRAMING_CONFLUENT;
        if (len < 5) return inf_error_set(err, INF_EFORMAT, "Confluent-framed message shorter than its 5-byte header");
        meta->schema_id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]);
        const reg_entry *f = find_id(reg, meta->schema_id);
        if (f) e = f; /* unregistered ids are tried with our current schema */
        unknown_id = !f;
        hdr = 5;
    } else if (b[0] == 0xC3) {
        meta->framing = INF_AVRO_FRAMING_SINGLE_OBJECT;
        if (len < 2 || b[1] != 0x01)
            return inf_error_set(err, INF_EFORMAT, "bad single-object magic (expected C3 01)");
        if (len < 10) return inf_error_set(err, INF_EFORMAT, "single-object message shorter than its 10-byte header");
        uint64_t fp = 0;
        for (int i = 0; i < 8; i++) fp |= (uint64_t)b[2 + i] << (8 * i);
        meta->fingerprint = fp;
        if (!(e = find_fp(reg, fp, NULL)))
            return inf_error_set(err, INF_EFORMAT,
                                 "unknown writer schema fingerprint 0x%016" PRIx64 " (register its .avsc)", fp);
        hdr = 10;
    } else {
        meta->framing = INF_AVRO_FRAMING_BARE;
    }
    meta->fingerprint = e->fp;
    const uint8_t *body = b + hdr;
    size_t body_len = len - hdr;

    int rc = inf_avro_scan(e->writer, body, body_len, &reg->lim, meta->request_id, err);
    if (!inf_request_id_valid(meta->request_id)) meta->request_id[0] = '\0';
    if (rc) goto finish;

    avro_value_t wv, rv;
    if (avro_generic_value_new(e->writer_iface, &wv) != 0)
        return inf_error_set(err, INF_ENOMEM, "cannot allocate an Avro value: %s", avro_strerror());
    if (avro_resolved_reader_new_value(e->resolver, &rv) != 0) {
        avro_value_decref(&wv);
        return inf_error_set(err, INF_ENOMEM, "cannot allocate an Avro value: %s", avro_strerror());
    }
    avro_resolved_reader_set_source(&rv, &wv);
    avro_reader_t rd = avro_reader_memory((const char *)body, (int64_t)body_len);
    if (!rd) {
        rc = inf_error_set(err, INF_ENOMEM, "cannot create an Avro reader");
    } else {
        if (avro_value_read(rd, &wv) != 0)
            rc = inf_error_set(err, INF_EFORMAT, "malformed Avro message: %s", avro_strerror());
        else
            rc = extract(&rv, out, err);
        avro_reader_free(rd);
    }
    avro_value_decref(&rv);
    avro_value_decref(&wv);
    if (!rc) rc = inf_request_validate(out, err);
finish:
    /* The producer's unregistered schema is the likely cause of any failure
     * here: the reason (it ends up in the DLQ record) names the id so an
     * operator can register it. */
    if (rc && unknown_id)
        inf_error_wrap(err, rc, "unknown Confluent schema id %" PRId32 " (read with the current schema)",
                       meta->schema_id);
    if (rc) {
        if (err && out->request_id[0] && inf_request_id_valid(out->request_id) && !strstr(err->msg, out->request_id))
            inf_error_wrap(err, rc, "request %s", out->request_id);
        inf_request_free(out);
    }
    return rc;
}

int inf_avro_encode(const inf_avro_registry *reg, const inf_request *req, inf_avro_framing framing,
                    int32_t confluent_id, uint8_t **out, size_t *out_len, inf_error *err) {
    *out = NULL;
    *out_len = 0;
    if (!reg || !req) return inf_error_set(err, INF_EINVAL, "inf_avro_encode: no registry or request");
    avro_value_t v;
    if (avro_generic_value_new(reg->reader_iface, &v) != 0)
        return inf_error_set(err, INF_ENOMEM, "cannot allocate an Avro value: %s", avro_strerror());
    int rc = fill(&v, req, err);
    size_t size = 0;
    if (!rc && avro_value_sizeof(&v, &size) != 0)
        rc = inf_error_set(err, INF_EFORMAT, "cannot size the request: %s", avro_strerror());
    char *body = NULL;
    if (!rc && !(body = malloc(size ? size : 1))) rc = inf_error_set(err, INF_ENOMEM, "out of memory encoding");
    if (!rc) {
        avro_writer_t w = avro_writer_memory(body, (int64_t)size);
        if (!w || avro_value_write(w, &v) != 0)
            rc = inf_error_set(err, INF_EFORMAT, "cannot encode the request: %s", avro_strerror());
        if (w) avro_writer_free(w);
    }
    avro_value_decref(&v);
    if (!rc) rc = inf_avro_frame(framing, confluent_id, reg->e[0].fp, body, size, out, out_len, err);
    free(body);
    return rc;
}

/* ---- avro value -> inf_request ---------------------------------------- */

static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
            cp > 0x10FFFF)
            return 0;
        i += k + 1;
    }
    return 1;
}

static int bad(inf_error *err, const char *field) {
    return inf_error_set(err, INF_EFORMAT, "cannot read field %s: %s", field, avro_strerror());
}

/* Copies an Avro string (avro-c sizes include the NUL) into a new C string;
 * embedded NULs and invalid UTF-8 are rejected so C consumers stay exact. */
static int copy_str(avro_value_t *v, const char *field, char **out, inf_error *err) {
    const char *p = NULL;
    size_t sz = 0;
    if (avro_value_get_string(v, &p, &sz) != 0) return bad(err, field);
    size_t n = (p && sz) ? sz - 1 : 0;
    if (n && memchr(p, '\0', n))
        return inf_error_set(err, INF_EFORMAT, "field %s contains a NUL byte", field);
    if (n && !utf8_valid((const unsigned char *)p, n))
        return inf_error_set(err, INF_EFORMAT, "field %s is not valid UTF-8", field);
    char *s = malloc(n + 1);
    if (!s) return inf_error_set(err, INF_ENOMEM, "out of memory copying field %s", field);
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

/* 1 when the union holds a non-null branch (stored in *br), 0 for null. */
static int opt_branch(avro_value_t *u, const char *field, avro_value_t *br, inf_error *err) {
    if (avro_value_get_current_branch(u, br) != 0) return bad(err, field);
    return avro_value_get_type(br) == AVRO_NULL ? 0 : 1;
}

static int copy_ints(avro_value_t *arr, const char *field, int32_t **out, size_t *n, inf_error *err) {
    size_t cnt;
    if (avro_value_get_size(arr, &cnt) != 0) return bad(err, field);
    int32_t *a = malloc((cnt ? cnt : 1) * sizeof *a);
    if (!a) return inf_error_set(err, INF_ENOMEM, "out of memory copying field %s", field);
    for (size_t i = 0; i < cnt; i++) {
        avro_value_t el;
        if (avro_value_get_by_index(arr, i, &el, NULL) != 0 || avro_value_get_int(&el, &a[i]) != 0) {
            free(a);
            return bad(err, field);
        }
    }
    *out = a;
    *n = cnt;
    return 0;
}

static int get_i32(avro_value_t *rec, const char *name, int32_t *dst, inf_error *err) {
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return 0; /* keep default */
    return avro_value_get_int(&f, dst) == 0 ? 0 : bad(err, name);
}

static int get_f32(avro_value_t *rec, const char *name, float *dst, inf_error *err) {
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return 0;
    return avro_value_get_float(&f, dst) == 0 ? 0 : bad(err, name);
}

static int get_bool(avro_value_t *rec, const char *name, bool *dst, inf_error *err) {
    avro_value_t f;
    int b;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return 0;
    if (avro_value_get_boolean(&f, &b) != 0) return bad(err, name);
    *dst = b != 0;
    return 0;
}

/* Optional int/long: union {null, int|long}. */
static int get_opt_num(avro_value_t *rec, const char *name, bool *has, int32_t *i32, int64_t *i64,
                       inf_error *err) {
    avro_value_t f, br;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return 0;
    int r = opt_branch(&f, name, &br, err);
    if (r <= 0) return r;
    if ((i32 ? avro_value_get_int(&br, i32) : avro_value_get_long(&br, i64)) != 0) return bad(err, name);
    *has = true;
    return 0;
}

static int extract(avro_value_t *rv, inf_request *r, inf_error *err) {
    avro_value_t f, br;
    int rc;
    char *s = NULL;
    if (avro_value_get_by_name(rv, "request_id", &f, NULL) != 0) return bad(err, "request_id");
    if ((rc = copy_str(&f, "request_id", &s, err))) return rc;
    size_t idlen = strlen(s);
    if (idlen > INF_REQUEST_ID_MAX) {
        free(s);
        return inf_error_set(err, INF_EFORMAT, "request_id must be 1-%d characters of [A-Za-z0-9._:-]",
                             INF_REQUEST_ID_MAX);
    }
    memcpy(r->request_id, s, idlen + 1);
    free(s);

    if (avro_value_get_by_name(rv, "prompt", &f, NULL) == 0) {
        if ((rc = opt_branch(&f, "prompt", &br, err)) < 0) return rc;
        if (rc && (rc = copy_str(&br, "prompt", &r->prompt, err))) return rc;
    }
    if (avro_value_get_by_name(rv, "prompt_token_ids", &f, NULL) == 0) {
        if ((rc = opt_branch(&f, "prompt_token_ids", &br, err)) < 0) return rc;
        if (rc && (rc = copy_ints(&br, "prompt_token_ids", &r->prompt_token_ids, &r->n_prompt_token_ids, err)))
            return rc;
    }
    if ((rc = get_i32(rv, "max_tokens", &r->max_tokens, err)) || (rc = get_i32(rv, "min_tokens", &r->min_tokens, err)) ||
        (rc = get_f32(rv, "temperature", &r->temperature, err)) || (rc = get_i32(rv, "top_k", &r->top_k, err)) ||
        (rc = get_f32(rv, "top_p", &r->top_p, err)) || (rc = get_f32(rv, "min_p", &r->min_p, err)) ||
        (rc = get_f32(rv, "repetition_penalty", &r->repetition_penalty, err)) ||
        (rc = get_f32(rv, "presence_penalty", &r->presence_penalty, err)) ||
        (rc = get_f32(rv, "frequency_penalty", &r->frequency_penalty, err)) ||
        (rc = get_opt_num(rv, "seed", &r->has_seed, NULL, &r->seed, err)) ||
        (rc = get_bool(rv, "ignore_eos", &r->ignore_eos, err)) ||
        (rc = get_opt_num(rv, "logprobs", &r->has_logprobs, &r->logprobs, NULL, err)) ||
        (rc = get_opt_num(rv, "priority", &r->has_priority, &r->priority, NULL, err)) ||
        (rc = get_opt_num(rv, "deadline_ms", &r->has_deadline_ms, NULL, &r->deadline_ms, err)) ||
        (rc = get_bool(rv, "stream", &r->stream, err)))
        return rc;

    if (avro_value_get_by_name(rv, "stop", &f, NULL) == 0) {
        size_t n;
        if (avro_value_get_size(&f, &n) != 0) return bad(err, "stop");
        if (n && !(r->stop = calloc(n, sizeof *r->stop))) return inf_error_set(err, INF_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            avro_value_t el;
            if (avro_value_get_by_index(&f, i, &el, NULL) != 0) return bad(err, "stop");
            if ((rc = copy_str(&el, "stop", &r->stop[i], err))) return rc;
            r->n_stop = i + 1;
        }
    }
    if (avro_value_get_by_name(rv, "stop_token_ids", &f, NULL) == 0 &&
        (rc = copy_ints(&f, "stop_token_ids", &r->stop_token_ids, &r->n_stop_token_ids, err)))
        return rc;
    if (avro_value_get_by_name(rv, "logit_bias", &f, NULL) == 0) {
        size_t n;
        if (avro_value_get_size(&f, &n) != 0) return bad(err, "logit_bias");
        if (n && !(r->logit_bias = calloc(n, sizeof *r->logit_bias)))
            return inf_error_set(err, INF_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            avro_value_t el, x;
            if (avro_value_get_by_index(&f, i, &el, NULL) != 0 ||
                avro_value_get_by_name(&el, "token_id", &x, NULL) != 0 ||
                avro_value_get_int(&x, &r->logit_bias[i].token_id) != 0 ||
                avro_value_get_by_name(&el, "bias", &x, NULL) != 0 ||
                avro_value_get_float(&x, &r->logit_bias[i].bias) != 0)
                return bad(err, "logit_bias");
            r->n_logit_bias = i + 1;
        }
    }
    if (avro_value_get_by_name(rv, "reply_stream", &f, NULL) == 0) {
        if ((rc = opt_branch(&f, "reply_stream", &br, err)) < 0) return rc;
        if (rc && (rc = copy_str(&br, "reply_stream", &r->reply_stream, err))) return rc;
    }
    if (avro_value_get_by_name(rv, "metadata", &f, NULL) == 0) {
        size_t n;
        if (avro_value_get_size(&f, &n) != 0) return bad(err, "metadata");
        if (n && !(r->metadata = calloc(n, sizeof *r->metadata)))
            return inf_error_set(err, INF_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            avro_value_t el;
            const char *key = NULL;
            if (avro_value_get_by_index(&f, i, &el, &key) != 0 || !key) return bad(err, "metadata");
            r->n_metadata = i + 1;
            if (!(r->metadata[i].key = strdup(key))) return inf_error_set(err, INF_ENOMEM, "out of memory");
            if (!utf8_valid((const unsigned char *)key, strlen(key)))
                return inf_error_set(err, INF_EFORMAT, "a metadata key is not valid UTF-8");
            if ((rc = copy_str(&el, "metadata", &r->metadata[i].value, err))) return rc;
        }
    }
    return 0;
}

/* ---- inf_request -> avro value ---------------------------------------- */

static int fbad(inf_error *err, const char *field) {
    return inf_error_set(err, INF_EFORMAT, "cannot set field %s: %s", field, avro_strerror());
}

/* Selects the union branch of field `name` (0 = null, 1 = value). */
static int set_opt(avro_value_t *rec, const char *name, bool present, avro_value_t *br, inf_error *err) {
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0 || avro_value_set_branch(&f, present ? 1 : 0, br) != 0 ||
        (!present && avro_value_set_null(br) != 0))
        return fbad(err, name);
    return 0;
}

static int set_ints(avro_value_t *arr, const char *name, const int32_t *a, size_t n, inf_error *err) {
    for (size_t i = 0; i < n; i++) {
        avro_value_t el;
        if (avro_value_append(arr, &el, NULL) != 0 || avro_value_set_int(&el, a[i]) != 0) return fbad(err, name);
    }
    return 0;
}

static int fill(avro_value_t *v, const inf_request *r, inf_error *err) {
    avro_value_t f, br;
    int rc;
#define FIELD(name) if (avro_value_get_by_name(v, name, &f, NULL) != 0) return fbad(err, name)
#define SET(name, call) do { FIELD(name); if ((call) != 0) return fbad(err, name); } while (0)
    SET("request_id", avro_value_set_string(&f, r->request_id));
    if ((rc = set_opt(v, "prompt", r->prompt != NULL, &br, err))) return rc;
    if (r->prompt && avro_value_set_string(&br, r->prompt) != 0) return fbad(err, "prompt");
    if ((rc = set_opt(v, "prompt_token_ids", r->prompt_token_ids != NULL, &br, err))) return rc;
    if (r->prompt_token_ids &&
        (rc = set_ints(&br, "prompt_token_ids", r->prompt_token_ids, r->n_prompt_token_ids, err)))
        return rc;
    SET("max_tokens", avro_value_set_int(&f, r->max_tokens));
    SET("min_tokens", avro_value_set_int(&f, r->min_tokens));
    SET("temperature", avro_value_set_float(&f, r->temperature));
    SET("top_k", avro_value_set_int(&f, r->top_k));
    SET("top_p", avro_value_set_float(&f, r->top_p));
    SET("min_p", avro_value_set_float(&f, r->min_p));
    SET("repetition_penalty", avro_value_set_float(&f, r->repetition_penalty));
    SET("presence_penalty", avro_value_set_float(&f, r->presence_penalty));
    SET("frequency_penalty", avro_value_set_float(&f, r->frequency_penalty));
    if ((rc = set_opt(v, "seed", r->has_seed, &br, err))) return rc;
    if (r->has_seed && avro_value_set_long(&br, r->seed) != 0) return fbad(err, "seed");
    FIELD("stop");
    for (size_t i = 0; i < r->n_stop; i++) {
        avro_value_t el;
        if (avro_value_append(&f, &el, NULL) != 0 || avro_value_set_string(&el, r->stop[i]) != 0)
            return fbad(err, "stop");
    }
    FIELD("stop_token_ids");
    if ((rc = set_ints(&f, "stop_token_ids", r->stop_token_ids, r->n_stop_token_ids, err))) return rc;
    SET("ignore_eos", avro_value_set_boolean(&f, r->ignore_eos));
    if ((rc = set_opt(v, "logprobs", r->has_logprobs, &br, err))) return rc;
    if (r->has_logprobs && avro_value_set_int(&br, r->logprobs) != 0) return fbad(err, "logprobs");
    FIELD("logit_bias");
    for (size_t i = 0; i < r->n_logit_bias; i++) {
        avro_value_t el, x;
        if (avro_value_append(&f, &el, NULL) != 0 || avro_value_get_by_name(&el, "token_id", &x, NULL) != 0 ||
            avro_value_set_int(&x, r->logit_bias[i].token_id) != 0 ||
            avro_value_get_by_name(&el, "bias", &x, NULL) != 0 || avro_value_set_float(&x, r->logit_bias[i].bias) != 0)
            return fbad(err, "logit_bias");
    }
    if ((rc = set_opt(v, "priority", r->has_priority, &br, err))) return rc;
    if (r->has_priority && avro_value_set_int(&br, r->priority) != 0) return fbad(err, "priority");
    if ((rc = set_opt(v, "deadline_ms", r->has_deadline_ms, &br, err))) return rc;
    if (r->has_deadline_ms && avro_value_set_long(&br, r->deadline_ms) != 0) return fbad(err, "deadline_ms");
    if ((rc = set_opt(v, "reply_stream", r->reply_stream != NULL, &br, err))) return rc;
    if (r->reply_stream && avro_value_set_string(&br, r->reply_stream) != 0) return fbad(err, "reply_stream");
    SET("stream", avro_value_set_boolean(&f, r->stream));
    FIELD("metadata");
    for (size_t i = 0; i < r->n_metadata; i++) {
        avro_value_t el;
        if (avro_value_add(&f, r->metadata[i].key, &el, NULL, NULL) != 0 ||
            avro_value_set_string(&el, r->metadata[i].value) != 0)
            return fbad(err, "metadata");
    }
#undef SET
#undef FIELD
    return 0;
}
