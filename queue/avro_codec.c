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
#include "avro_internal.h"

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
    "{\"name\":\"logit_bias\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"LogitBias\",\"fields\":[{\"name\":\"token_id\",\"type\":\"int\"},{\"name\":\"bias\",\"type\":\"float\"}]}},\"default\":[]},"
    "{\"name\":\"priority\",\"type\":[\"null\",\"int\"],\"default\":null},"
    "{\"name\":\"deadline_ms\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"reply_stream\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"stream\",\"type\":\"boolean\",\"default\":true},"
    "{\"name\":\"metadata\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{}},"
    "{\"name\":\"messages\",\"type\":[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"ChatMessage\",\"fields\":[{\"name\":\"role\",\"type\":\"string\"},{\"name\":\"content\",\"type\":[\"null\",\"string\"],\"default\":null},{\"name\":\"name\",\"type\":[\"null\",\"string\"],\"default\":null},{\"name\":\"tool_call_id\",\"type\":[\"null\",\"string\"],\"default\":null},{\"name\":\"tool_calls\",\"type\":[\"null\",\"string\"],\"default\":null},{\"name\":\"reasoning_content\",\"type\":[\"null\",\"string\"],\"default\":null}]}}],\"default\":null},"
    "{\"name\":\"tools\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"add_generation_prompt\",\"type\":\"boolean\",\"default\":true},"
    "{\"name\":\"chat_template_kwargs\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"response_format\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"grammar\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"regex\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"choice\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"string\"}],\"default\":null}"
    "]}";

/* The schema before messages and the output constraints were added (its
 * fingerprint is schemas/README.md's "v1"). Bare messages carry no schema
 * reference, so a bare message that does not read as the current schema is
 * tried as this one: old producers keep working unchanged. It is also
 * registered, so single-object messages of v1 producers resolve. */
static const char REQUEST_SCHEMA_V1[] =
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

/* Every top-level field but request_id has a default, and every ChatMessage
 * field but role; LogitBias fields have none. */
static bool has_default(const char *record, const char *field) {
    if (strcmp(record, "inferno.v1.ChatMessage") == 0) return strcmp(field, "role") != 0;
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
    avro_schema_t v1;
    if (avro_schema_from_json_length(REQUEST_SCHEMA_V1, strlen(REQUEST_SCHEMA_V1), &v1) != 0) {
        rc = inf_error_set(err, INF_EFORMAT, "built-in v1 request schema did not parse: %s", avro_strerror());
        goto fail;
    }
    if ((rc = entry_make(reg, v1, &reg->e[1], err))) goto fail;
    reg->n = 2;
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


static int read_with(const inf_avro_registry *reg, const reg_entry *e, const uint8_t *body, size_t body_len,
                     inf_request *out, inf_avro_meta *meta, inf_error *err);

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
    const uint8_t *body = b + hdr;
    size_t body_len = len - hdr;
    int rc = read_with(reg, e, body, body_len, out, meta, err);
    if (rc && meta->framing == INF_AVRO_FRAMING_BARE) {
        /* A bare message names no schema: one of a v1 producer does not read
         * as the current schema (it ends before the new fields). Keep the
         * current schema's error unless v1 reads it. */
        inf_avro_meta m1 = *meta;
        inf_request r1;
        inf_request_init(&r1);
        if (read_with(reg, &reg->e[1], body, body_len, &r1, &m1, NULL) == 0) {
            inf_request_free(out);
            *out = r1; /* moves ownership */
            *meta = m1;
            inf_error_clear(err);
            rc = 0;
        } else {
            inf_request_free(&r1);
        }
    }
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

/* Scans, reads and validates body as written with entry e's schema. */
static int read_with(const inf_avro_registry *reg, const reg_entry *e, const uint8_t *body, size_t body_len,
                     inf_request *out, inf_avro_meta *meta, inf_error *err) {
    meta->fingerprint = e->fp;
    int rc = inf_avro_scan(e->writer, body, body_len, &reg->lim, meta->request_id, err);
    if (!inf_request_id_valid(meta->request_id)) meta->request_id[0] = '\0';
    if (rc) return rc;

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
            rc = inf_avro_value_to_request(&rv, out, err);
        avro_reader_free(rd);
    }
    avro_value_decref(&rv);
    avro_value_decref(&wv);
    if (!rc) rc = inf_request_validate(out, err);
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
    int rc = inf_avro_request_to_value(&v, req, err);
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
