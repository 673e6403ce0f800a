/* make_request_seeds.c - writes the seed corpus fuzz/corpus/request/ in the
 * input layout of fuzz_request.c (request_schemas.h). Not part of the build;
 * regenerate by hand:
 *   gcc -std=c11 -D_GNU_SOURCE -Iengine -Iqueue fuzz/make_request_seeds.c \
 *       queue/avro_codec.c queue/avro_value.c queue/avro_canon.c queue/avro_scan.c queue/avro_request.c \
 *       engine/status.c -lavro -lm -o /tmp/make_request_seeds
 *   /tmp/make_request_seeds fuzz/corpus/request
 * Bodies in our schema come from inf_avro_encode; those of the older and
 * newer writer schemas are written by hand here (avro-c cannot build values
 * from JSON), matching the avro suite's evolution data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_codec.h"
#include "request_schemas.h"

typedef struct buf {
    uint8_t b[4096];
    size_t n;
} buf;

static void put_long(buf *o, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    do {
        uint8_t c = z & 0x7F;
        z >>= 7;
        o->b[o->n++] = (uint8_t)(c | (z ? 0x80 : 0));
    } while (z);
}

static void put_str(buf *o, const char *s) {
    put_long(o, (int64_t)strlen(s));
    memcpy(o->b + o->n, s, strlen(s));
    o->n += strlen(s);
}

static void put_raw(buf *o, const void *p, size_t n) {
    memcpy(o->b + o->n, p, n); /* x86-64: floats and doubles are already little-endian */
    o->n += n;
}

static void put_float(buf *o, float f) { put_raw(o, &f, 4); }
static void put_double(buf *o, double d) { put_raw(o, &d, 8); }

/* FZ_SCHEMA_OLD: request_id, prompt?, max_tokens, temperature, stop[] */
static void body_old(buf *o) {
    put_str(o, "old-1");
    put_long(o, 1);
    put_str(o, "hi there");
    put_long(o, 7);
    put_float(o, 0.5f);
    put_long(o, 1);
    put_str(o, "x");
    put_long(o, 0);
}

/* FZ_SCHEMA_NEW: tenant, prompt_token_ids?, request_id, beams[], seed?,
 * logit_bias[{note, token_id, bias}], metadata{}, stream, future? */
static void body_new(buf *o) {
    put_str(o, "t1");
    put_long(o, 1);
    put_long(o, 3);
    put_long(o, 1);
    put_long(o, 15043);
    put_long(o, 3186);
    put_long(o, 0);
    put_str(o, "new-2");
    put_long(o, 2);
    put_double(o, 0.5);
    put_double(o, 1.5);
    put_long(o, 0);
    put_long(o, 1);
    put_long(o, 99);
    put_long(o, -1); /* a negative block count: a byte size follows */
    buf item = {.n = 0};
    put_str(&item, "n");
    put_long(&item, 5);
    put_float(&item, -1.5f);
    put_long(o, (int64_t)item.n);
    put_raw(o, item.b, item.n);
    put_long(o, 0);
    put_long(o, 1);
    put_str(o, "k");
    put_str(o, "v");
    put_long(o, 0);
    o->b[o->n++] = 0; /* stream = false */
    put_long(o, 1);
    put_long(o, 1);
    put_str(o, "a");
    put_long(o, 1);
    put_long(o, 0);
}

static const char *g_dir;

static void write_seed(const char *name, const uint8_t *pre, size_t pn, const uint8_t *body, size_t bn) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(pre, 1, pn, f) != pn || (bn && fwrite(body, 1, bn, f) != bn) || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static uint8_t *encode(const inf_avro_registry *reg, const inf_request *r, inf_avro_framing fr,
                       size_t *len) {
    uint8_t *out = NULL;
    inf_error err = {0};
    if (inf_avro_encode(reg, r, fr, FZ_ID_OURS, &out, len, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        exit(1);
    }
    return out;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    inf_avro_registry *reg = NULL;
    inf_error err = {0};
    if (inf_avro_registry_create(&reg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* a request with every field set, and a minimal one with token ids */
    inf_request full, ids;
    inf_request_init(&full);
    strcpy(full.request_id, "req-1:a.B_c");
    full.prompt = strdup("Hello, \xc3\xa9t\xc3\xa9");
    full.max_tokens = 77;
    full.min_tokens = 3;
    full.temperature = 0.7f;
    full.top_k = 40;
    full.top_p = 0.9f;
    full.min_p = 0.05f;
    full.has_seed = true;
    full.seed = -5;
    char *stops[2] = {"\n\n", "END"};
    full.stop = stops;
    full.n_stop = 2;
    int32_t stop_ids[1] = {2};
    full.stop_token_ids = stop_ids;
    full.n_stop_token_ids = 1;
    full.has_logprobs = true;
    full.logprobs = 5;
    inf_logit_bias lb[2] = {{11, -100.0f}, {12, 2.5f}};
    full.logit_bias = lb;
    full.n_logit_bias = 2;
    full.has_priority = true;
    full.priority = 1;
    full.has_deadline_ms = true;
    full.deadline_ms = 1700000000000;
    full.reply_stream = "out:req-1";
    inf_kv md[1] = {{"tenant", "t"}};
    full.metadata = md;
    full.n_metadata = 1;
    inf_request_init(&ids);
    strcpy(ids.request_id, "r2");
    int32_t toks[3] = {1, 403, 407};
    ids.prompt_token_ids = toks;
    ids.n_prompt_token_ids = 3;

    size_t n;
    uint8_t *m;
    const uint8_t W = FZ_MODE_FULL_REG;
    m = encode(reg, &full, INF_AVRO_FRAMING_BARE, &n);
    write_seed("verbatim_bare_full", (uint8_t[]){W | FZ_FRAME_VERBATIM}, 1, m, n);
    write_seed("confluent_ours_full", (uint8_t[]){W | FZ_FRAME_CONFLUENT, 0}, 2, m, n);
    write_seed("confluent_unregistered", (uint8_t[]){W | FZ_FRAME_CONFLUENT, 9}, 2, m, n);
    write_seed("single_ours_plainreg", (uint8_t[]){FZ_FRAME_SINGLE, 0}, 2, m, n);
    write_seed("small_limits_full", (uint8_t[]){W | FZ_MODE_SMALL_LIMITS}, 1, m, n);
    free(m);
    m = encode(reg, &ids, INF_AVRO_FRAMING_BARE, &n);
    write_seed("verbatim_bare_ids", (uint8_t[]){FZ_FRAME_VERBATIM}, 1, m, n);
    write_seed("small_limits_ids", (uint8_t[]){FZ_MODE_SMALL_LIMITS}, 1, m, n);
    free(m);
    m = encode(reg, &ids, INF_AVRO_FRAMING_CONFLUENT, &n);
    write_seed("verbatim_confluent_ids", (uint8_t[]){W | FZ_FRAME_VERBATIM}, 1, m, n);
    free(m);
    m = encode(reg, &ids, INF_AVRO_FRAMING_SINGLE_OBJECT, &n);
    write_seed("verbatim_single_ids", (uint8_t[]){FZ_FRAME_VERBATIM}, 1, m, n);
    free(m);

    inf_request chat;
    inf_request_init(&chat);
    strcpy(chat.request_id, "c3");
    inf_chat_message msgs[2] = {{"system", "Be brief.", NULL, NULL, NULL, NULL},
                                {"assistant", NULL, "bot", "t1", "[{\"id\":\"t1\"}]", "hmm"}};
    chat.messages = msgs;
    chat.n_messages = 2;
    chat.tools = "[]";
    chat.add_generation_prompt = false;
    chat.chat_template_kwargs = "{}";
    char *choice[2] = {"yes", "no"};
    chat.choice = choice;
    chat.n_choice = 2;
    m = encode(reg, &chat, INF_AVRO_FRAMING_BARE, &n);
    write_seed("verbatim_bare_chat", (uint8_t[]){FZ_FRAME_VERBATIM}, 1, m, n);
    free(m);

    buf o = {.n = 0};
    body_old(&o);
    write_seed("confluent_old", (uint8_t[]){W | FZ_FRAME_CONFLUENT, 1}, 2, o.b, o.n);
    write_seed("single_old", (uint8_t[]){W | FZ_FRAME_SINGLE, 1}, 2, o.b, o.n);
    o.n = 0;
    body_new(&o);
    write_seed("confluent_new", (uint8_t[]){W | FZ_FRAME_CONFLUENT, 2}, 2, o.b, o.n);
    write_seed("single_new", (uint8_t[]){W | FZ_FRAME_SINGLE, 2}, 2, o.b, o.n);
    write_seed("single_new_plainreg", (uint8_t[]){FZ_FRAME_SINGLE, 2}, 2, o.b, o.n);

    free(full.prompt);
    inf_avro_registry_free(reg);
    return 0;
}
