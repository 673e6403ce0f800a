/* avro_canon.c - CRC-64-AVRO fingerprints, Parsing Canonical Form, and the
 * reader-schema projection used to work around avro-c's missing support for
 * reader defaults (see avro_codec.h). avro-c 1.11.1 has neither fingerprints
 * nor canonical forms, so both are built here from the parsed schema tree,
 * following the "Parsing Canonical Form for Schemas" rules of the Avro spec:
 * full names, only name/type/fields/symbols/items/values/size attributes, in
 * that order, primitives as bare strings, no whitespace. */
#include "avro_codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ull

uint64_t inf_avro_crc64(const void *data, size_t len) {
    /* Bitwise form of the spec's table-driven loop: feeding a byte and doing
     * eight reflected shift/xor steps equals one table lookup. Schemas are
     * small, so no table (and no mutable global to initialise). */
    const uint8_t *p = data;
    uint64_t fp = CRC64_AVRO_EMPTY;
    for (size_t i = 0; i < len; i++) {
        fp ^= p[i];
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (fp & 1)));
    }
    return fp;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JSON string; Avro names and symbols never need escaping, but stay correct
 * for whatever avro-c accepted. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_str(b, e);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Named types already written (later occurrences are written as names). */
typedef struct seen_set {
    char **names;
    size_t n, cap;
} seen_set;

static int seen_has(const seen_set *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0) return 1;
    return 0;
}

static int seen_add(seen_set *s, const char *name) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **q = realloc(s->names, cap * sizeof *q);
        if (!q) return -1;
        s->names = q;
        s->cap = cap;
    }
    if (!(s->names[s->n] = strdup(name))) return -1;
    s->n++;
    return 0;
}

static void seen_free(seen_set *s) {
    for (size_t i = 0; i < s->n; i++) free(s->names[i]);
    free(s->names);
}

static void full_name(avro_schema_t s, char *out, size_t cap) {
    const char *ns = avro_schema_namespace(s);
    const char *nm = avro_schema_name(s);
    if (ns && *ns)
        snprintf(out, cap, "%s.%s", ns, nm ? nm : "");
    else
        snprintf(out, cap, "%s", nm ? nm : "");
}

static avro_schema_t deref(avro_schema_t s) {
    while (s && avro_typeof(s) == AVRO_LINK) s = avro_schema_link_target(s);
    return s;
}

static int is_named(avro_schema_t s) {
    int t = avro_typeof(s);
    return t == AVRO_RECORD || t == AVRO_ENUM || t == AVRO_FIXED;
}

/* Writer counterpart of a reader schema inside a (possibly union) writer
 * type: same kind, and same full name for named kinds. */
static avro_schema_t match_writer(avro_schema_t r, avro_schema_t w) {
    if (!w) return NULL;
    w = deref(w);
    if (avro_typeof(w) == AVRO_UNION && avro_typeof(r) != AVRO_UNION) {
        size_t n = avro_schema_union_size(w);
        for (size_t i = 0; i < n; i++) {
            avro_schema_t m = match_writer(r, avro_schema_union_branch(w, (int)i));
            if (m) return m;
        }
        return NULL;
    }
    if (avro_typeof(w) != avro_typeof(r)) return NULL;
    /* avro-c compares unqualified names when resolving, so do we. */
    if (is_named(r) && strcmp(avro_schema_name(r), avro_schema_name(w)) != 0) return NULL;
    return w;
}

typedef struct emit_ctx {
    sbuf b;
    seen_set seen;
    bool (*has_default)(const char *record, const char *field);
    inf_error *err;
    int rc;
    int depth;
} emit_ctx;

/* Writes reader schema r canonically; when w (the writer counterpart) is
 * given, record fields absent from w are left out. */
static void emit(emit_ctx *c, avro_schema_t r, avro_schema_t w) {
    if (c->rc) return;
    if (++c->depth > 256) {
        c->rc = inf_error_set(c->err, INF_EFORMAT, "schema nests deeper than 256 levels");
        return;
    }
    char fn[512];
    if (avro_typeof(r) == AVRO_LINK) {
        full_name(deref(r), fn, sizeof fn);
        sb_json_str(&c->b, fn);
        c->depth--;
        return;
    }
    if (w) w = match_writer(r, w);
    if (is_named(r)) {
        full_name(r, fn, sizeof fn);
        if (seen_has(&c->seen, fn)) {
            sb_json_str(&c->b, fn);
            c->depth--;
            return;
        }
        if (seen_add(&c->seen, fn) != 0) {
            c->rc = inf_error_set(c->err, INF_ENOMEM, "out of memory building a canonical form");
            return;
        }
    }
    switch (avro_typeof(r)) {
    case AVRO_STRING: sb_str(&c->b, "\"string\""); break;
    case AVRO_BYTES: sb_str(&c->b, "\"bytes\""); break;
    case AVRO_INT32: sb_str(&c->b, "\"int\""); break;
    case AVRO_INT64: sb_str(&c->b, "\"long\""); break;
    case AVRO_FLOAT: sb_str(&c->b, "\"float\""); break;
    case AVRO_DOUBLE: sb_str(&c->b, "\"double\""); break;
    case AVRO_BOOLEAN: sb_str(&c->b, "\"boolean\""); break;
    case AVRO_NULL: sb_str(&c->b, "\"null\""); break;
    case AVRO_RECORD: {
        sb_str(&c->b, "{\"name\":");
        sb_json_str(&c->b, fn);
        sb_str(&c->b, ",\"type\":\"record\",\"fields\":[");
        size_t n = avro_schema_record_size(r);
        int first = 1;
        for (size_t i = 0; i < n && !c->rc; i++) {
            const char *fname = avro_schema_record_field_name(r, (int)i);
            avro_schema_t ftype = avro_schema_record_field_get_by_index(r, (int)i);
            avro_schema_t wtype = NULL;
            if (w) {
                /* avro_schema_record_field_get returns garbage for a
                 * missing name, so look the index up first. */
                int wi = avro_schema_record_field_get_index(w, fname);
                if (wi >= 0) wtype = avro_schema_record_field_get_by_index(w, wi);
                if (!wtype) {
                    if (c->has_default && c->has_default(fn, fname)) continue;
                    c->rc = inf_error_set(c->err, INF_EFORMAT,
                                          "writer schema lacks field %s.%s, which has no default",
                                          fn, fname);
                    return;
                }
            }
            if (!first) sb_str(&c->b, ",");
            first = 0;
            sb_str(&c->b, "{\"name\":");
            sb_json_str(&c->b, fname);
            sb_str(&c->b, ",\"type\":");
            emit(c, ftype, wtype);
            sb_str(&c->b, "}");
        }
        sb_str(&c->b, "]}");
        break;
    }
    case AVRO_ENUM: {
        sb_str(&c->b, "{\"name\":");
        sb_json_str(&c->b, fn);
        sb_str(&c->b, ",\"type\":\"enum\",\"symbols\":[");
        int n = avro_schema_enum_number_of_symbols(r);
        for (int i = 0; i < n; i++) {
            if (i) sb_str(&c->b, ",");
            sb_json_str(&c->b, avro_schema_enum_get(r, i));
        }
        sb_str(&c->b, "]}");
        break;
    }
    case AVRO_FIXED: {
        char num[32];
        snprintf(num, sizeof num, "%" PRId64, avro_schema_fixed_size(r));
        sb_str(&c->b, "{\"name\":");
        sb_json_str(&c->b, fn);
        sb_str(&c->b, ",\"type\":\"fixed\",\"size\":");
        sb_str(&c->b, num);
        sb_str(&c->b, "}");
        break;
    }
    case AVRO_ARRAY:
        sb_str(&c->b, "{\"type\":\"array\",\"items\":");
        emit(c, avro_schema_array_items(r), w ? avro_schema_array_items(w) : NULL);
        sb_str(&c->b, "}");
        break;
    case AVRO_MAP:
        sb_str(&c->b, "{\"type\":\"map\",\"values\":");
        emit(c, avro_schema_map_values(r), w ? avro_schema_map_values(w) : NULL);
        sb_str(&c->b, "}");
        break;
    case AVRO_UNION: {
        sb_str(&c->b, "[");
        size_t n = avro_schema_union_size(r);
        avro_schema_t wu = w ? deref(w) : NULL;
        for (size_t i = 0; i < n && !c->rc; i++) {
            if (i) sb_str(&c->b, ",");
            avro_schema_t br = avro_schema_union_branch(r, (int)i);
            avro_schema_t wb = NULL;
            if (wu) {
                /* A writer union is matched branch by branch; a plain writer
                 * type is the counterpart of the branch of its own kind. */
                avro_schema_t rb = deref(br);
                if (avro_typeof(wu) == AVRO_UNION) {
                    size_t m = avro_schema_union_size(wu);
                    for (size_t k = 0; k < m && !wb; k++)
                        wb = match_writer(rb, avro_schema_union_branch(wu, (int)k));
                } else {
                    wb = match_writer(rb, wu);
                }
            }
            emit(c, br, wb);
        }
        sb_str(&c->b, "]");
        break;
    }
    default:
        c->rc = inf_error_set(c->err, INF_EUNSUPPORTED, "unsupported Avro schema type %d",
                              (int)avro_typeof(r));
        return;
    }
    c->depth--;
}

static int run_emit(avro_schema_t r, avro_schema_t w,
                    bool (*has_default)(const char *, const char *), char **out,
                    inf_error *err) {
    emit_ctx c;
    memset(&c, 0, sizeof c);
    c.has_default = has_default;
    c.err = err;
    *out = NULL;
    if (!r) return inf_error_set(err, INF_EINVAL, "no schema given");
    emit(&c, r, w);
    seen_free(&c.seen);
    if (!c.rc && c.b.oom) c.rc = inf_error_set(err, INF_ENOMEM, "out of memory building a canonical form");
    if (c.rc) {
        free(c.b.p);
        return c.rc;
    }
    *out = c.b.p;
    return 0;
}

int inf_avro_canonical_form(avro_schema_t schema, char **out, inf_error *err) {
    return run_emit(schema, NULL, NULL, out, err);
}

int inf_avro_project_reader(avro_schema_t writer, avro_schema_t reader,
                            bool (*has_default)(const char *record, const char *field),
                            char **out, inf_error *err) {
    if (!writer) return inf_error_set(err, INF_EINVAL, "no writer schema given");
    return run_emit(reader, writer, has_default, out, err);
}

int inf_avro_schema_fingerprint(const char *schema_json, char **canonical_out,
                                uint64_t *fingerprint_out, inf_error *err) {
    if (canonical_out) *canonical_out = NULL;
    if (!schema_json) return inf_error_set(err, INF_EINVAL, "no schema text given");
    avro_schema_t s;
    if (avro_schema_from_json_length(schema_json, strlen(schema_json), &s) != 0)
        return inf_error_set(err, INF_EFORMAT, "invalid Avro schema: %s", avro_strerror());
    char *pcf = NULL;
    int rc = inf_avro_canonical_form(s, &pcf, err);
    avro_schema_decref(s);
    if (rc) return rc;
    if (fingerprint_out) *fingerprint_out = inf_avro_crc64(pcf, strlen(pcf));
    if (canonical_out)
        *canonical_out = pcf;
    else
        free(pcf);
    return 0;
}

/* ---- resolution compatibility -------------------------------------------
 * avro-c's resolver has crashing and double-freeing error paths (nested
 * records with mismatched fields, some unions), so it is only ever handed
 * pairs this check accepted. Stricter than the spec in one way: every
 * branch of a writer union must resolve, not just the branches used. */

typedef struct compat_ctx {
    avro_schema_t stack_w[64], stack_r[64];
    int depth;
    inf_error *err;
} compat_ctx;

static int promotable(int w, int r) {
    if (w == r) return 1;
    switch (w) {
    case AVRO_INT32: return r == AVRO_INT64 || r == AVRO_FLOAT || r == AVRO_DOUBLE;
    case AVRO_INT64: return r == AVRO_FLOAT || r == AVRO_DOUBLE;
    case AVRO_FLOAT: return r == AVRO_DOUBLE;
    case AVRO_STRING: return r == AVRO_BYTES;
    case AVRO_BYTES: return r == AVRO_STRING;
    default: return 0;
    }
}

static int compat(compat_ctx *c, avro_schema_t w, avro_schema_t r, const char *where);

/* A non-union writer against a reader that may be a union. */
static int compat_to_reader(compat_ctx *c, avro_schema_t w, avro_schema_t r, const char *where) {
    if (avro_typeof(r) != AVRO_UNION) return compat(c, w, r, where);
    size_t n = avro_schema_union_size(r);
    for (size_t i = 0; i < n; i++) {
        compat_ctx probe = *c;
        probe.err = NULL;
        if (compat(&probe, w, deref(avro_schema_union_branch(r, (int)i)), where)) return 1;
    }
    inf_error_set(c->err, INF_EFORMAT, "%s: writer type %s matches no branch of the reader union", where,
                  avro_schema_type_name(w));
    return 0;
}

static int compat(compat_ctx *c, avro_schema_t w, avro_schema_t r, const char *where) {
    w = deref(w);
    r = deref(r);
    for (int i = 0; i < c->depth; i++)
        if (c->stack_w[i] == w && c->stack_r[i] == r) return 1; /* recursive type, already being checked */
    if (c->depth >= 64) {
        inf_error_set(c->err, INF_EFORMAT, "%s: schema nests too deeply", where);
        return 0;
    }
    if (avro_typeof(w) == AVRO_UNION) {
        size_t n = avro_schema_union_size(w);
        for (size_t i = 0; i < n; i++)
            if (!compat_to_reader(c, deref(avro_schema_union_branch(w, (int)i)), r, where)) return 0;
        return 1;
    }
    if (avro_typeof(r) == AVRO_UNION) return compat_to_reader(c, w, r, where);
    int tw = avro_typeof(w), tr = avro_typeof(r);
    if (!promotable(tw, tr)) {
        inf_error_set(c->err, INF_EFORMAT, "%s: writer type %s cannot be read as %s", where,
                      avro_schema_type_name(w), avro_schema_type_name(r));
        return 0;
    }
    if (is_named(r) && strcmp(avro_schema_name(w), avro_schema_name(r)) != 0) {
        inf_error_set(c->err, INF_EFORMAT, "%s: writer type %s does not match reader type %s", where,
                      avro_schema_name(w), avro_schema_name(r));
        return 0;
    }
    c->stack_w[c->depth] = w;
    c->stack_r[c->depth] = r;
    c->depth++;
    int ok = 1;
    char sub[256];
    switch (tr) {
    case AVRO_FIXED:
        if (avro_schema_fixed_size(w) != avro_schema_fixed_size(r)) {
            inf_error_set(c->err, INF_EFORMAT, "%s: fixed sizes differ", where);
            ok = 0;
        }
        break;
    case AVRO_ARRAY:
        snprintf(sub, sizeof sub, "%s[]", where);
        ok = compat(c, avro_schema_array_items(w), avro_schema_array_items(r), sub);
        break;
    case AVRO_MAP:
        snprintf(sub, sizeof sub, "%s{}", where);
        ok = compat(c, avro_schema_map_values(w), avro_schema_map_values(r), sub);
        break;
    case AVRO_RECORD: {
        size_t n = avro_schema_record_size(r);
        for (size_t i = 0; i < n && ok; i++) {
            const char *fname = avro_schema_record_field_name(r, (int)i);
            snprintf(sub, sizeof sub, "%s.%s", where, fname);
            int wi = avro_schema_record_field_get_index(w, fname);
            if (wi < 0) {
                inf_error_set(c->err, INF_EFORMAT, "%s: missing from the writer schema", sub);
                ok = 0;
                break;
            }
            ok = compat(c, avro_schema_record_field_get_by_index(w, wi),
                        avro_schema_record_field_get_by_index(r, (int)i), sub);
        }
        break;
    }
    default: break;
    }
    c->depth--;
    return ok;
}

int inf_avro_check_resolvable(avro_schema_t writer, avro_schema_t reader, inf_error *err) {
    compat_ctx c;
    memset(&c, 0, sizeof c);
    c.err = err;
    if (!writer || !reader) return inf_error_set(err, INF_EINVAL, "no schema given");
    char where[256];
    snprintf(where, sizeof where, "%s", avro_schema_type_name(deref(reader)));
    if (is_named(deref(reader))) full_name(deref(reader), where, sizeof where);
    return compat(&c, writer, reader, where) ? 0 : (err ? err->code : INF_EFORMAT);
}
