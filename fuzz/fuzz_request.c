/* fuzz_request.c - libFuzzer target for the request decoder (make fuzz).
 *
 * Every framing inf_avro_decode accepts (Confluent, single-object, bare),
 * with registered writer schemas (ours, an older and a newer producer's:
 * request_schemas.h) and without, under default and small limits; the first
 * input bytes choose (layout in request_schemas.h). The body is copied into
 * an exactly-sized heap buffer so ASan sees its end.
 *
 * Checked beyond "no crash, no leak": a failure has a known code and a
 * message (naming the id when a Confluent id is unregistered: the DLQ reason
 * depends on it) and meta.request_id is empty or valid; a success passes
 * inf_request_validate and survives encode -> decode unchanged.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_codec.h"
#include "request_schemas.h"

static inf_avro_registry *g_reg[4]; /* [full registry][small limits] */
static uint64_t g_fp[3];            /* ours, old, new */

static void die(const char *what, const inf_error *err) {
    fprintf(stderr, "fuzz_request: %s: %s\n", what, err ? err->msg : "");
    abort();
}

static void init(void) {
    inf_error err = {0};
    const char *json[3] = {inf_avro_request_schema_json(), FZ_SCHEMA_OLD, FZ_SCHEMA_NEW};
    for (int i = 0; i < 3; i++)
        if (inf_avro_schema_fingerprint(json[i], NULL, &g_fp[i], &err)) die("fingerprint", &err);
    /* small enough that a few bytes reach each bound; depth 4 is the least
     * that admits our schema (record > union > array > int: prompt_token_ids) */
    inf_avro_limits small = {.max_message_bytes = 256, .max_string_bytes = 32, .max_items = 8,
                             .max_depth = 4};
    for (int r = 0; r < 4; r++) {
        if (inf_avro_registry_create(&g_reg[r], &err)) die("registry", &err);
        if (r & 2) inf_avro_registry_set_limits(g_reg[r], &small);
        if (!(r & 1)) continue;
        const int32_t ids[3] = {FZ_ID_OURS, FZ_ID_OLD, FZ_ID_NEW};
        for (int i = 0; i < 3; i++)
            if (inf_avro_registry_add(g_reg[r], json[i], ids[i], NULL, &err)) die("register", &err);
    }
}

static int str_same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_chat(const inf_request *a, const inf_request *b) {
    if ((a->messages != NULL) != (b->messages != NULL) || a->n_messages != b->n_messages ||
        (a->choice != NULL) != (b->choice != NULL) || a->n_choice != b->n_choice ||
        a->add_generation_prompt != b->add_generation_prompt || !str_same(a->tools, b->tools) ||
        !str_same(a->chat_template_kwargs, b->chat_template_kwargs) ||
        !str_same(a->response_format, b->response_format) || !str_same(a->grammar, b->grammar) ||
        !str_same(a->regex, b->regex))
        return 0;
    for (size_t i = 0; i < a->n_messages; i++) {
        const inf_chat_message *x = &a->messages[i], *y = &b->messages[i];
        if (!str_same(x->role, y->role) || !str_same(x->content, y->content) || !str_same(x->name, y->name) ||
            !str_same(x->tool_call_id, y->tool_call_id) || !str_same(x->tool_calls, y->tool_calls) ||
            !str_same(x->reasoning_content, y->reasoning_content))
            return 0;
    }
    for (size_t i = 0; i < a->n_choice; i++)
        if (!str_same(a->choice[i], b->choice[i])) return 0;
    return 1;
}

/* Field by field; floats bit for bit (the codec copies them exactly). */
static int same(const inf_request *a, const inf_request *b) {
    if (!same_chat(a, b)) return 0;
    if (strcmp(a->request_id, b->request_id) || !str_same(a->prompt, b->prompt) ||
        !str_same(a->reply_stream, b->reply_stream) ||
        (a->prompt_token_ids != NULL) != (b->prompt_token_ids != NULL) ||
        a->n_prompt_token_ids != b->n_prompt_token_ids || a->n_stop != b->n_stop ||
        a->n_stop_token_ids != b->n_stop_token_ids || a->n_logit_bias != b->n_logit_bias ||
        a->n_metadata != b->n_metadata)
        return 0;
    if (a->n_prompt_token_ids &&
        memcmp(a->prompt_token_ids, b->prompt_token_ids, a->n_prompt_token_ids * sizeof(int32_t)))
        return 0;
    if (a->n_stop_token_ids &&
        memcmp(a->stop_token_ids, b->stop_token_ids, a->n_stop_token_ids * sizeof(int32_t)))
        return 0;
    for (size_t i = 0; i < a->n_stop; i++)
        if (strcmp(a->stop[i], b->stop[i])) return 0;
    for (size_t i = 0; i < a->n_logit_bias; i++)
        if (a->logit_bias[i].token_id != b->logit_bias[i].token_id ||
            memcmp(&a->logit_bias[i].bias, &b->logit_bias[i].bias, sizeof(float)))
            return 0;
    for (size_t i = 0; i < a->n_metadata; i++)
        if (strcmp(a->metadata[i].key, b->metadata[i].key) ||
            strcmp(a->metadata[i].value, b->metadata[i].value))
            return 0;
    const float fa[7] = {a->temperature, a->top_p, a->min_p, a->repetition_penalty,
                         a->presence_penalty, a->frequency_penalty, 0};
    const float fb[7] = {b->temperature, b->top_p, b->min_p, b->repetition_penalty,
                         b->presence_penalty, b->frequency_penalty, 0};
    return !memcmp(fa, fb, sizeof fa) && a->max_tokens == b->max_tokens &&
           a->min_tokens == b->min_tokens && a->top_k == b->top_k && a->has_seed == b->has_seed &&
           (!a->has_seed || a->seed == b->seed) && a->ignore_eos == b->ignore_eos &&
           a->has_logprobs == b->has_logprobs && (!a->has_logprobs || a->logprobs == b->logprobs) &&
           a->has_priority == b->has_priority && (!a->has_priority || a->priority == b->priority) &&
           a->has_deadline_ms == b->has_deadline_ms &&
           (!a->has_deadline_ms || a->deadline_ms == b->deadline_ms) && a->stream == b->stream;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_reg[0]) init();
    if (size < 1) return 0;
    int mode = data[0], frame = mode & 3;
    const inf_avro_registry *reg = g_reg[(mode & FZ_MODE_FULL_REG ? 1 : 0) | (mode & FZ_MODE_SMALL_LIMITS ? 2 : 0)];
    data++, size--;
    uint8_t hdr[10];
    size_t hn = 0;
    if (frame == FZ_FRAME_CONFLUENT || frame == FZ_FRAME_SINGLE) {
        if (size < 1) return 0;
        int w = data[0];
        data++, size--;
        if (frame == FZ_FRAME_CONFLUENT) {
            static const int32_t ids[3] = {FZ_ID_OURS, FZ_ID_OLD, FZ_ID_NEW};
            int32_t id = w < 3 ? ids[w] : 1000 + w;
            hdr[0] = 0;
            for (int i = 0; i < 4; i++) hdr[1 + i] = (uint8_t)((uint32_t)id >> (24 - 8 * i));
            hn = 5;
        } else {
            uint64_t fp = w < 3 ? g_fp[w] : 0x9E3779B97F4A7C15ull * (uint64_t)w;
            hdr[0] = 0xC3;
            hdr[1] = 0x01;
            for (int i = 0; i < 8; i++) hdr[2 + i] = (uint8_t)(fp >> (8 * i));
            hn = 10;
        }
    }
    size_t len = hn + size;
    uint8_t *msg = malloc(len ? len : 1);
    if (!msg) return 0;
    memcpy(msg, hdr, hn);
    if (size) memcpy(msg + hn, data, size);

    inf_request req;
    inf_avro_meta meta;
    inf_error err = {0};
    int rc = inf_avro_decode(reg, msg, len, &req, &meta, &err);
    if (getenv("FUZZ_VERBOSE")) /* to check what seeds reach: FUZZ_VERBOSE=1 fuzz_request -runs=0 DIR */
        fprintf(stderr, "mode %d: rc %d %s\n", mode, rc, rc ? err.msg : req.request_id);
    if (meta.request_id[0] && !inf_request_id_valid(meta.request_id)) die("meta.request_id invalid", NULL);
    if (rc) {
        if (rc != INF_EFORMAT && rc != INF_ERANGE) die("unexpected status", &err);
        if (!err.msg[0]) die("a failure without a message", NULL);
        int32_t sid = meta.schema_id; /* also from a verbatim 00 header */
        int registered = (mode & FZ_MODE_FULL_REG) && (sid == FZ_ID_OURS || sid == FZ_ID_OLD || sid == FZ_ID_NEW);
        char want[64];
        snprintf(want, sizeof want, "unknown Confluent schema id %" PRId32, sid);
        if (meta.framing == INF_AVRO_FRAMING_CONFLUENT && len >= 5 && (strstr(err.msg, want) != NULL) == registered)
            die("the reason must name an unregistered Confluent id (only then)", &err);
        free(msg);
        return 0;
    }
    if (inf_request_validate(&req, &err)) die("decoded request does not validate", &err);
    if (strcmp(meta.request_id, req.request_id)) die("meta.request_id differs", NULL);

    /* Our schema can hold anything decoded: re-encode, decode, compare. */
    uint8_t *again = NULL;
    size_t alen = 0;
    if (inf_avro_encode(g_reg[0], &req, INF_AVRO_FRAMING_BARE, 0, &again, &alen, &err))
        die("re-encode", &err);
    inf_request back;
    if (inf_avro_decode(g_reg[0], again, alen, &back, NULL, &err)) die("re-decode", &err);
    if (!same(&req, &back)) die("encode/decode changed the request", NULL);
    inf_request_free(&back);
    inf_request_free(&req);
    free(again);
    free(msg);
    return 0;
}
