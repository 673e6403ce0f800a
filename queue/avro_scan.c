/* avro_scan.c - bounded pre-scan of untrusted Avro binary (see inf_avro_scan
 * in avro_codec.h). avro-c's decoder trusts lengths and counts from the wire
 * (a 5-byte varint can make it malloc gigabytes or read past the buffer's
 * logical end), so every message is walked here first against the writer
 * schema; avro-c only ever sees input this walk accepted. */
#include "avro_codec.h"

#include <string.h>

typedef struct scan {
    const uint8_t *p, *end;
    const inf_avro_limits *lim;
    size_t items;
    int depth;
    char *id_out;
    inf_error *err;
} scan;

static int fail(scan *s, const char *what) {
    return inf_error_set(s->err, INF_EFORMAT, "malformed Avro message: %s", what);
}

static int rd_varint(scan *s, int64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (s->p >= s->end) return fail(s, "truncated varint");
        uint8_t b = *s->p++;
        if (i == 9 && b > 1) return fail(s, "varint longer than 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
            return 0;
        }
    }
    return fail(s, "varint longer than 10 bytes");
}

static int skip_bytes(scan *s, size_t n, const char *what) {
    if ((size_t)(s->end - s->p) < n) return fail(s, what);
    s->p += n;
    return 0;
}

/* A string/bytes length: non-negative, within the message and the limit. */
static int rd_len(scan *s, size_t *out) {
    int64_t n;
    int rc = rd_varint(s, &n);
    if (rc) return rc;
    if (n < 0) return fail(s, "negative string length");
    if ((uint64_t)n > (uint64_t)(s->end - s->p)) return fail(s, "string length runs past the end");
    if ((uint64_t)n > s->lim->max_string_bytes)
        return inf_error_set(s->err, INF_EFORMAT,
                             "malformed Avro message: string of %lld bytes exceeds the %zu-byte limit",
                             (long long)n, s->lim->max_string_bytes);
    *out = (size_t)n;
    return 0;
}

static int scan_value(scan *s, avro_schema_t sc);

static int scan_blocks(scan *s, avro_schema_t items, int is_map) {
    for (;;) {
        int64_t count;
        int rc = rd_varint(s, &count);
        if (rc) return rc;
        if (count == 0) return 0;
        if (count < 0) {
            if (count == INT64_MIN) return fail(s, "invalid block count");
            count = -count;
            int64_t bsize;
            if ((rc = rd_varint(s, &bsize))) return rc;
            if (bsize < 0 || (uint64_t)bsize > (uint64_t)(s->end - s->p))
                return fail(s, "block size runs past the end");
        }
        if ((uint64_t)count > s->lim->max_items - s->items)
            return inf_error_set(s->err, INF_EFORMAT,
                                 "malformed Avro message: more than %zu array/map items",
                                 s->lim->max_items);
        s->items += (size_t)count;
        for (int64_t i = 0; i < count; i++) {
            if (is_map) {
                size_t klen;
                if ((rc = rd_len(s, &klen))) return rc;
                s->p += klen;
            }
            if ((rc = scan_value(s, items))) return rc;
        }
    }
}

static int scan_record(scan *s, avro_schema_t sc) {
    size_t n = avro_schema_record_size(sc);
    for (size_t i = 0; i < n; i++) {
        avro_schema_t f = avro_schema_record_field_get_by_index(sc, (int)i);
        const uint8_t *start = s->p;
        int rc = scan_value(s, f);
        if (rc) return rc;
        /* Capture request_id as soon as it is read, so a failure later in
         * the message can still be reported to the right requester. */
        if (s->id_out && s->depth == 1 && avro_typeof(f) == AVRO_STRING &&
            strcmp(avro_schema_record_field_name(sc, (int)i), "request_id") == 0) {
            scan t = *s;
            t.p = start;
            t.err = NULL;
            size_t len;
            if (rd_len(&t, &len) == 0 && len <= INF_REQUEST_ID_MAX) {
                memcpy(s->id_out, t.p, len);
                s->id_out[len] = '\0';
            }
        }
    }
    return 0;
}

static int scan_value(scan *s, avro_schema_t sc) {
    while (avro_typeof(sc) == AVRO_LINK) sc = avro_schema_link_target(sc);
    if (++s->depth > s->lim->max_depth)
        return inf_error_set(s->err, INF_EFORMAT,
                             "malformed Avro message: nested deeper than %d levels",
                             s->lim->max_depth);
    int rc = 0;
    int64_t v;
    size_t len;
    switch (avro_typeof(sc)) {
    case AVRO_NULL: break;
    case AVRO_BOOLEAN:
        if (s->p >= s->end) return fail(s, "truncated boolean");
        if (*s->p > 1) return fail(s, "boolean byte is not 0 or 1");
        s->p++;
        break;
    case AVRO_INT32:
        if ((rc = rd_varint(s, &v))) return rc;
        if (v < INT32_MIN || v > INT32_MAX) return fail(s, "int value out of 32-bit range");
        break;
    case AVRO_INT64: rc = rd_varint(s, &v); break;
    case AVRO_FLOAT: rc = skip_bytes(s, 4, "truncated float"); break;
    case AVRO_DOUBLE: rc = skip_bytes(s, 8, "truncated double"); break;
    case AVRO_STRING:
    case AVRO_BYTES:
        if ((rc = rd_len(s, &len))) return rc;
        s->p += len;
        break;
    case AVRO_FIXED: {
        int64_t n = avro_schema_fixed_size(sc);
        if (n < 0) return fail(s, "negative fixed size");
        rc = skip_bytes(s, (size_t)n, "truncated fixed");
        break;
    }
    case AVRO_ENUM:
        if ((rc = rd_varint(s, &v))) return rc;
        if (v < 0 || v >= avro_schema_enum_number_of_symbols(sc)) return fail(s, "enum index out of range");
        break;
    case AVRO_UNION:
        if ((rc = rd_varint(s, &v))) return rc;
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(sc)) return fail(s, "union branch index out of range");
        rc = scan_value(s, avro_schema_union_branch(sc, (int)v));
        break;
    case AVRO_RECORD: rc = scan_record(s, sc); break;
    case AVRO_ARRAY: rc = scan_blocks(s, avro_schema_array_items(sc), 0); break;
    case AVRO_MAP: rc = scan_blocks(s, avro_schema_map_values(sc), 1); break;
    default: return fail(s, "unsupported schema type");
    }
    s->depth--;
    return rc;
}

int inf_avro_scan(avro_schema_t schema, const uint8_t *buf, size_t len,
                  const inf_avro_limits *lim, char *id_out, inf_error *err) {
    inf_avro_limits dflt = {INF_AVRO_DEFAULT_MAX_MESSAGE, INF_AVRO_DEFAULT_MAX_STRING,
                            INF_AVRO_DEFAULT_MAX_ITEMS, INF_AVRO_DEFAULT_MAX_DEPTH};
    if (!lim) lim = &dflt;
    if (!schema || (!buf && len)) return inf_error_set(err, INF_EINVAL, "inf_avro_scan: no schema or buffer");
    if (id_out) id_out[0] = '\0';
    static const uint8_t empty[1];
    if (!buf) buf = empty;
    scan s = {buf, buf + len, lim, 0, 0, id_out, err};
    int rc = scan_value(&s, schema);
    if (rc) return rc;
    if (s.p != s.end)
        return inf_error_set(err, INF_EFORMAT, "malformed Avro message: %zu unexpected bytes after the record",
                             (size_t)(s.end - s.p));
    return 0;
}
