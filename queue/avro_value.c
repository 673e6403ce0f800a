/* avro_value.c - the generic Avro value of inferno.v1.InferenceRequest
 * <-> struct inf_request: every field copied out on decode (strings checked
 * for NUL bytes and UTF-8) and set on encode. avro_codec.c does the framing,
 * the schema registry and the resolution around it. */
#include "avro_codec.h"
#include "avro_internal.h"

#include <stdlib.h>
#include <string.h>

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

/* Optional string: union {null, string}; absent or null leaves *out NULL. */
static int get_opt_str(avro_value_t *rec, const char *name, char **out, inf_error *err) {
    avro_value_t f, br;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return 0;
    int r = opt_branch(&f, name, &br, err);
    if (r <= 0) return r;
    return copy_str(&br, name, out, err);
}

/* messages: union {null, array of ChatMessage}. Fields a writer's
 * ChatMessage lacks (an older or trimmed producer schema) stay NULL. */
static int get_messages(avro_value_t *rv, inf_request *r, inf_error *err) {
    avro_value_t f, br;
    if (avro_value_get_by_name(rv, "messages", &f, NULL) != 0) return 0;
    int rc = opt_branch(&f, "messages", &br, err);
    if (rc <= 0) return rc;
    size_t n;
    if (avro_value_get_size(&br, &n) != 0) return bad(err, "messages");
    /* calloc(n or 1): an empty array stays distinguishable from null */
    if (!(r->messages = calloc(n ? n : 1, sizeof *r->messages)))
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        avro_value_t el, x;
        inf_chat_message *m = &r->messages[i];
        r->n_messages = i + 1;
        if (avro_value_get_by_index(&br, i, &el, NULL) != 0 || avro_value_get_by_name(&el, "role", &x, NULL) != 0)
            return bad(err, "messages.role");
        if ((rc = copy_str(&x, "messages.role", &m->role, err)) ||
            (rc = get_opt_str(&el, "content", &m->content, err)) || (rc = get_opt_str(&el, "name", &m->name, err)) ||
            (rc = get_opt_str(&el, "tool_call_id", &m->tool_call_id, err)) ||
            (rc = get_opt_str(&el, "tool_calls", &m->tool_calls, err)) ||
            (rc = get_opt_str(&el, "reasoning_content", &m->reasoning_content, err)))
            return rc;
    }
    return 0;
}

int inf_avro_value_to_request(avro_value_t *rv, inf_request *r, inf_error *err) {
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
    if ((rc = get_messages(rv, r, err))) return rc;
    if ((rc = get_opt_str(rv, "tools", &r->tools, err)) ||
        (rc = get_bool(rv, "add_generation_prompt", &r->add_generation_prompt, err)) ||
        (rc = get_opt_str(rv, "chat_template_kwargs", &r->chat_template_kwargs, err)) ||
        (rc = get_opt_str(rv, "response_format", &r->response_format, err)) ||
        (rc = get_opt_str(rv, "grammar", &r->grammar, err)) || (rc = get_opt_str(rv, "regex", &r->regex, err)))
        return rc;
    if (avro_value_get_by_name(rv, "choice", &f, NULL) == 0) {
        if ((rc = opt_branch(&f, "choice", &br, err)) < 0) return rc;
        if (rc) {
            size_t n;
            if (avro_value_get_size(&br, &n) != 0) return bad(err, "choice");
            /* calloc(n or 1): an empty array stays distinguishable from null */
            if (!(r->choice = calloc(n ? n : 1, sizeof *r->choice)))
                return inf_error_set(err, INF_ENOMEM, "out of memory");
            for (size_t i = 0; i < n; i++) {
                avro_value_t el;
                if (avro_value_get_by_index(&br, i, &el, NULL) != 0) return bad(err, "choice");
                if ((rc = copy_str(&el, "choice", &r->choice[i], err))) return rc;
                r->n_choice = i + 1;
            }
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

static int set_opt_str(avro_value_t *rec, const char *name, const char *s, inf_error *err) {
    avro_value_t br;
    int rc = set_opt(rec, name, s != NULL, &br, err);
    if (rc || !s) return rc;
    return avro_value_set_string(&br, s) == 0 ? 0 : fbad(err, name);
}

static int set_ints(avro_value_t *arr, const char *name, const int32_t *a, size_t n, inf_error *err) {
    for (size_t i = 0; i < n; i++) {
        avro_value_t el;
        if (avro_value_append(arr, &el, NULL) != 0 || avro_value_set_int(&el, a[i]) != 0) return fbad(err, name);
    }
    return 0;
}

int inf_avro_request_to_value(avro_value_t *v, const inf_request *r, inf_error *err) {
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
    if ((rc = set_opt(v, "messages", r->messages != NULL, &br, err))) return rc;
    for (size_t i = 0; r->messages && i < r->n_messages; i++) {
        const inf_chat_message *m = &r->messages[i];
        avro_value_t el, x;
        if (avro_value_append(&br, &el, NULL) != 0 || avro_value_get_by_name(&el, "role", &x, NULL) != 0 ||
            avro_value_set_string(&x, m->role ? m->role : "") != 0)
            return fbad(err, "messages");
        if ((rc = set_opt_str(&el, "content", m->content, err)) || (rc = set_opt_str(&el, "name", m->name, err)) ||
            (rc = set_opt_str(&el, "tool_call_id", m->tool_call_id, err)) ||
            (rc = set_opt_str(&el, "tool_calls", m->tool_calls, err)) ||
            (rc = set_opt_str(&el, "reasoning_content", m->reasoning_content, err)))
            return rc;
    }
    if ((rc = set_opt_str(v, "tools", r->tools, err))) return rc;
    SET("add_generation_prompt", avro_value_set_boolean(&f, r->add_generation_prompt));
    if ((rc = set_opt_str(v, "chat_template_kwargs", r->chat_template_kwargs, err)) ||
        (rc = set_opt_str(v, "response_format", r->response_format, err)) ||
        (rc = set_opt_str(v, "grammar", r->grammar, err)) || (rc = set_opt_str(v, "regex", r->regex, err)))
        return rc;
    if ((rc = set_opt(v, "choice", r->choice != NULL, &br, err))) return rc;
    for (size_t i = 0; r->choice && i < r->n_choice; i++) {
        avro_value_t el;
        if (avro_value_append(&br, &el, NULL) != 0 || avro_value_set_string(&el, r->choice[i]) != 0)
            return fbad(err, "choice");
    }
#undef SET
#undef FIELD
    return 0;
}
