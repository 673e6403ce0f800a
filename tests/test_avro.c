/* test_avro.c - suite "avro": the InferenceRequest contract (queue/avro_codec).
 * Independent truths: the Avro spec's CRC-64-AVRO test vector, python3-avro
 * (canonical forms, encoding, schema resolution with defaults) and a table
 * CRC-64 written in Python from the spec; properties (round trip, every
 * truncation fails, random corruption never crashes). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avro_codec.h"
#include "testutil.h"

#include "test_avro.h"

#define PCF_FILE "schemas/inference_request.pcf.json"

/* A python3 that can import avro (the pyenv one on PATH may not). */
const char *ta_python(void) {
    static const char *found;
    static int probed;
    if (probed) return found;
    probed = 1;
    const char *env = getenv("INFERNO_PYTHON");
    const char *cands[] = {env, "/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        if (!cands[i] || !*cands[i] || access(cands[i], X_OK) != 0) continue;
        char *argv[] = {(char *)cands[i], "-c", "import avro.schema, avro.io", NULL};
        if (tu_run_capture(argv, NULL) == 0) return found = cands[i];
    }
    return NULL;
}

/* Runs python -c script args..., returns its stdout (caller frees) or NULL. */
char *ta_py(const char *script, const char *a1, const char *a2, const char *a3) {
    const char *p = ta_python();
    if (!p) return NULL;
    char *argv[] = {(char *)p, "-c", (char *)script, (char *)a1, (char *)a2, (char *)a3, NULL};
    char *out = NULL;
    int rc = tu_run_capture(argv, &out);
    if (rc != 0) {
        fprintf(stderr, "python exited %d: %s\n", rc, out ? out : "");
        free(out);
        return NULL;
    }
    return out;
}

uint8_t *ta_unhex(const char *s, size_t *n) {
    size_t len = 0;
    while (s[len] && s[len] != '\n') len++;
    uint8_t *b = malloc(len / 2 + 1);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        b[i] = (uint8_t)v;
    }
    *n = len / 2;
    return b;
}

inf_avro_registry *ta_new_reg(void) {
    inf_avro_registry *reg = NULL;
    inf_error err = {0};
    int rc = inf_avro_registry_create(&reg, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    return reg;
}

/* ---- helpers: requests -------------------------------------------------- */

static void fill_full(inf_request *r) {
    inf_request_init(r);
    strcpy(r->request_id, "req-1:a.B_c");
    r->prompt = strdup("Hello, \xc3\xa9t\xc3\xa9 world");
    r->max_tokens = 77;
    r->min_tokens = 3;
    r->temperature = 0.25f;
    r->top_k = 40;
    r->top_p = 0.9f;
    r->min_p = 0.05f;
    r->repetition_penalty = 1.1f;
    r->presence_penalty = -0.5f;
    r->frequency_penalty = 0.75f;
    r->has_seed = true;
    r->seed = -1234567890123LL;
    r->n_stop = 2;
    r->stop = calloc(2, sizeof *r->stop);
    r->stop[0] = strdup("\n\n");
    r->stop[1] = strdup("END");
    r->n_stop_token_ids = 2;
    r->stop_token_ids = malloc(2 * sizeof(int32_t));
    r->stop_token_ids[0] = 2;
    r->stop_token_ids[1] = 128009;
    r->ignore_eos = true;
    r->has_logprobs = true;
    r->logprobs = 5;
    r->n_logit_bias = 2;
    r->logit_bias = malloc(2 * sizeof *r->logit_bias);
    r->logit_bias[0] = (inf_logit_bias){13, -100.0f};
    r->logit_bias[1] = (inf_logit_bias){99, 2.5f};
    r->has_priority = true;
    r->priority = 2;
    r->has_deadline_ms = true;
    r->deadline_ms = 1700000000123LL;
    r->reply_stream = strdup("inferno:replies:x");
    r->stream = false;
    r->n_metadata = 2;
    r->metadata = calloc(2, sizeof *r->metadata);
    r->metadata[0] = (inf_kv){strdup("tenant"), strdup("acme")};
    r->metadata[1] = (inf_kv){strdup("trace"), strdup("")};
    r->tools = strdup("[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]");
    r->add_generation_prompt = false;
    r->chat_template_kwargs = strdup("{\"enable_thinking\":false}");
    r->regex = strdup("[a-z]+ \\d{2}");
}

static int str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *kv_get(const inf_request *r, const char *k) {
    for (size_t i = 0; i < r->n_metadata; i++)
        if (strcmp(r->metadata[i].key, k) == 0) return r->metadata[i].value;
    return NULL;
}

/* Field-by-field equality; returns the first differing field or NULL. */
static const char *req_diff(const inf_request *a, const inf_request *b) {
    if (strcmp(a->request_id, b->request_id)) return "request_id";
    if (!str_eq(a->prompt, b->prompt)) return "prompt";
    if ((a->prompt_token_ids != NULL) != (b->prompt_token_ids != NULL) ||
        a->n_prompt_token_ids != b->n_prompt_token_ids ||
        (a->n_prompt_token_ids &&
         memcmp(a->prompt_token_ids, b->prompt_token_ids, a->n_prompt_token_ids * sizeof(int32_t))))
        return "prompt_token_ids";
    if (a->max_tokens != b->max_tokens) return "max_tokens";
    if (a->min_tokens != b->min_tokens) return "min_tokens";
    if (a->temperature != b->temperature) return "temperature";
    if (a->top_k != b->top_k) return "top_k";
    if (a->top_p != b->top_p) return "top_p";
    if (a->min_p != b->min_p) return "min_p";
    if (a->repetition_penalty != b->repetition_penalty) return "repetition_penalty";
    if (a->presence_penalty != b->presence_penalty) return "presence_penalty";
    if (a->frequency_penalty != b->frequency_penalty) return "frequency_penalty";
    if (a->has_seed != b->has_seed || (a->has_seed && a->seed != b->seed)) return "seed";
    if (a->n_stop != b->n_stop) return "stop";
    for (size_t i = 0; i < a->n_stop; i++)
        if (strcmp(a->stop[i], b->stop[i])) return "stop";
    if (a->n_stop_token_ids != b->n_stop_token_ids ||
        (a->n_stop_token_ids && memcmp(a->stop_token_ids, b->stop_token_ids, a->n_stop_token_ids * 4)))
        return "stop_token_ids";
    if (a->ignore_eos != b->ignore_eos) return "ignore_eos";
    if (a->has_logprobs != b->has_logprobs || (a->has_logprobs && a->logprobs != b->logprobs)) return "logprobs";
    if (a->n_logit_bias != b->n_logit_bias) return "logit_bias";
    for (size_t i = 0; i < a->n_logit_bias; i++)
        if (a->logit_bias[i].token_id != b->logit_bias[i].token_id || a->logit_bias[i].bias != b->logit_bias[i].bias)
            return "logit_bias";
    if (a->has_priority != b->has_priority || (a->has_priority && a->priority != b->priority)) return "priority";
    if (a->has_deadline_ms != b->has_deadline_ms || (a->has_deadline_ms && a->deadline_ms != b->deadline_ms))
        return "deadline_ms";
    if (!str_eq(a->reply_stream, b->reply_stream)) return "reply_stream";
    if (a->stream != b->stream) return "stream";
    if (a->n_metadata != b->n_metadata) return "metadata";
    for (size_t i = 0; i < a->n_metadata; i++)
        if (!str_eq(a->metadata[i].value, kv_get(b, a->metadata[i].key))) return "metadata";
    return ta_diff_chat(a, b);
}

static void assert_same(const inf_request *a, const inf_request *b) {
    const char *d = req_diff(a, b);
    if (d) fprintf(stderr, "\n    requests differ in %s\n", d);
    CU_ASSERT_PTR_NULL(d);
}

/* ---- CRC-64-AVRO and canonical forms ------------------------------------ */

static void test_crc64_vector(void) {
    /* Avro spec: the fingerprint of the schema "null" (canonical form
     * `"null"`, quotes included) is 7195948357588979594. */
    CU_ASSERT_EQUAL(inf_avro_crc64("\"null\"", 6), 7195948357588979594ull);
    uint64_t fp = 0;
    char *pcf = NULL;
    CU_ASSERT_EQUAL(inf_avro_schema_fingerprint("{\"type\": \"null\"}", &pcf, &fp, NULL), 0);
    CU_ASSERT_STRING_EQUAL(pcf, "\"null\"");
    CU_ASSERT_EQUAL(fp, 7195948357588979594ull);
    free(pcf);
    /* CRC of the empty string is the algorithm's initial value. */
    CU_ASSERT_EQUAL(inf_avro_crc64("", 0), 0xc15d213aa4d7a795ull);
}

static const char PY_CANON[] =
    "import sys, avro.schema\n"
    "EMPTY = 0xc15d213aa4d7a795\n"
    "T = []\n"
    "for i in range(256):\n"
    "    fp = i\n"
    "    for _ in range(8):\n"
    "        fp = (fp >> 1) ^ (EMPTY & -(fp & 1))\n"
    "    T.append(fp)\n"
    "c = avro.schema.parse(open(sys.argv[1]).read()).canonical_form\n"
    "fp = EMPTY\n"
    "for x in c.encode():\n"
    "    fp = (fp >> 8) ^ T[(fp ^ x) & 0xff]\n"
    "print(fp)\n"
    "print(c)\n";

/* Compares our canonical form and fingerprint of a schema with python3-avro. */
static void check_canon_vs_python(const char *schema_json) {
    const char *path = tu_tmpfile("canon.avsc");
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(schema_json, f);
    fclose(f);
    char *out = ta_py(PY_CANON, path, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    unsigned long long pyfp = strtoull(out, NULL, 10);
    char *pycanon = strchr(out, '\n') + 1;
    pycanon[strcspn(pycanon, "\n")] = '\0';
    char *pcf = NULL;
    uint64_t fp = 0;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(inf_avro_schema_fingerprint(schema_json, &pcf, &fp, &err), 0);
    if (strcmp(pcf, pycanon)) fprintf(stderr, "\n    ours:   %s\n    python: %s\n", pcf, pycanon);
    CU_ASSERT_STRING_EQUAL(pcf, pycanon);
    CU_ASSERT_EQUAL(fp, pyfp);
    free(pcf);
    free(out);
}

static void test_canonical_form(void) {
    if (!ta_python()) {
        tu_skip("no python3 with the avro module (python3-avro); set INFERNO_PYTHON");
        return;
    }
    size_t n;
    char *avsc = tu_read_file(SCHEMA_FILE, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(avsc);
    check_canon_vs_python(avsc);
    /* Rules the request schema does not exercise: inherited and explicit
     * namespaces, enums, fixed, maps, named-type references, recursion,
     * attributes to strip, {"type": primitive}. A fixed is referenced only
     * once: python3-avro 1.11.1 re-expands fixed references (the Java
     * reference implementation, like us, writes the name). */
    check_canon_vs_python(
        "{\"type\":\"record\",\"name\":\"Node\",\"namespace\":\"a.b\",\"doc\":\"d\",\"aliases\":[\"X\"],"
        "\"fields\":[{\"name\":\"v\",\"type\":{\"type\":\"int\"},\"default\":1,\"doc\":\"x\"},"
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"c.Color\",\"symbols\":[\"R\",\"G\"]}},"
        "{\"name\":\"e2\",\"type\":\"c.Color\"},"
        "{\"name\":\"h\",\"type\":{\"type\":\"fixed\",\"name\":\"Hash\",\"size\":16}},"
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"c.Color\",\"double\"]}},"
        "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]},"
        "{\"name\":\"b\",\"type\":\"bytes\"},{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":\"long\"}}]}");
    check_canon_vs_python("[\"null\",\"string\",{\"type\":\"array\",\"items\":\"boolean\"}]");

    /* The checked-in canonical form file and the compiled-in schema agree
     * with the .avsc. */
    char *pcf_file = tu_read_file(PCF_FILE, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pcf_file);
    pcf_file[strcspn(pcf_file, "\n")] = '\0';
    char *a = NULL, *b = NULL;
    uint64_t fa = 0, fb = 0;
    CU_ASSERT_EQUAL(inf_avro_schema_fingerprint(avsc, &a, &fa, NULL), 0);
    CU_ASSERT_EQUAL(inf_avro_schema_fingerprint(inf_avro_request_schema_json(), &b, &fb, NULL), 0);
    CU_ASSERT_STRING_EQUAL(a, pcf_file);
    CU_ASSERT_STRING_EQUAL(b, pcf_file);
    inf_avro_registry *reg = ta_new_reg();
    CU_ASSERT_EQUAL(inf_avro_registry_reader_fingerprint(reg), fa);
    inf_avro_registry_free(reg);
    free(a);
    free(b);
    free(pcf_file);
    free(avsc);
}

/* ---- round trips ---------------------------------------------------------- */

static void test_round_trip(void) {
    inf_avro_registry *reg = ta_new_reg();
    inf_request in, out;
    fill_full(&in);
    inf_avro_framing fr[] = {INF_AVRO_FRAMING_BARE, INF_AVRO_FRAMING_CONFLUENT, INF_AVRO_FRAMING_SINGLE_OBJECT};
    for (int i = 0; i < 3; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        inf_error err = {0};
        CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, fr[i], 4242, &buf, &len, &err), 0);
        inf_avro_meta meta;
        int rc = inf_avro_decode(reg, buf, len, &out, &meta, &err);
        if (rc) fprintf(stderr, "\n    decode: %s\n", err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(meta.framing, fr[i]);
        CU_ASSERT_EQUAL(meta.schema_id, fr[i] == INF_AVRO_FRAMING_CONFLUENT ? 4242 : -1);
        CU_ASSERT_EQUAL(meta.fingerprint, inf_avro_registry_reader_fingerprint(reg));
        CU_ASSERT_STRING_EQUAL(meta.request_id, in.request_id);
        if (!rc) assert_same(&in, &out);
        inf_request_free(&out);
        free(buf);
    }
    inf_request_free(&in);

    /* Random requests (token-id prompts, optional fields on and off). */
    uint64_t seed = 12345;
    for (int it = 0; it < 200; it++) {
        inf_request r;
        inf_request_init(&r);
        snprintf(r.request_id, sizeof r.request_id, "r%d-%llx", it, (unsigned long long)tu_rand_u64(&seed));
        r.n_prompt_token_ids = 1 + tu_rand_u64(&seed) % 50;
        r.prompt_token_ids = malloc(r.n_prompt_token_ids * sizeof(int32_t));
        for (size_t k = 0; k < r.n_prompt_token_ids; k++)
            r.prompt_token_ids[k] = (int32_t)(tu_rand_u64(&seed) % 200000);
        r.max_tokens = 1 + (int32_t)(tu_rand_u64(&seed) % 4096);
        r.temperature = tu_rand_uniform(&seed, 0, 2);
        r.top_p = tu_rand_uniform(&seed, 0.01f, 1);
        r.has_seed = tu_rand_u64(&seed) & 1;
        r.seed = (int64_t)tu_rand_u64(&seed);
        r.has_deadline_ms = tu_rand_u64(&seed) & 1;
        r.deadline_ms = (int64_t)(tu_rand_u64(&seed) >> 2);
        r.stream = tu_rand_u64(&seed) & 1;
        uint8_t *buf;
        size_t len;
        inf_avro_framing f = fr[it % 3];
        CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, f, it, &buf, &len, NULL), 0);
        CU_ASSERT_EQUAL(inf_avro_decode(reg, buf, len, &out, NULL, NULL), 0);
        assert_same(&r, &out);
        inf_request_free(&out);
        inf_request_free(&r);
        free(buf);
    }
    inf_avro_registry_free(reg);
}

/* python3-avro encodes datum (JSON) with writer schema W, then resolves it
 * to our schema (applying reader defaults) and re-encodes with ours. */
static const char PY_EVOLVE[] =
    "import sys, io, json, avro.schema, avro.io\n"
    "ours = avro.schema.parse(open(sys.argv[1]).read())\n"
    "w = avro.schema.parse(sys.argv[2])\n"
    "def enc(s, d):\n"
    "    b = io.BytesIO()\n"
    "    avro.io.DatumWriter(s).write(d, avro.io.BinaryEncoder(b))\n"
    "    return b.getvalue()\n"
    "raw = enc(w, json.loads(sys.argv[3]))\n"
    "res = avro.io.DatumReader(w, ours).read(avro.io.BinaryDecoder(io.BytesIO(raw)))\n"
    "print(raw.hex())\n"
    "print(enc(ours, res).hex())\n";

/* Decodes a python-written message (writer schema registered under id 7 and
 * by fingerprint) in both framings and compares with python's resolution. */
static void check_evolution(const char *writer_schema, const char *datum_json, void (*extra)(const inf_request *)) {
    char *out = ta_py(PY_EVOLVE, SCHEMA_FILE, writer_schema, datum_json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t raw_len, res_len;
    uint8_t *raw = ta_unhex(out, &raw_len);
    uint8_t *res = ta_unhex(strchr(out, '\n') + 1, &res_len);
    inf_avro_registry *reg = ta_new_reg();
    inf_error err = {0};
    uint64_t fp = 0;
    int rc = inf_avro_registry_add(reg, writer_schema, 7, &fp, &err);
    if (rc) fprintf(stderr, "\n    add: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_NOT_EQUAL(fp, inf_avro_registry_reader_fingerprint(reg));

    inf_request truth;
    rc = inf_avro_decode(reg, res, res_len, &truth, NULL, &err); /* bare, our schema */
    if (rc) fprintf(stderr, "\n    decode python-resolved: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    if (extra) extra(&truth);
    inf_avro_framing fr[] = {INF_AVRO_FRAMING_CONFLUENT, INF_AVRO_FRAMING_SINGLE_OBJECT};
    for (int i = 0; i < 2; i++) {
        uint8_t *msg;
        size_t len;
        CU_ASSERT_EQUAL_FATAL(inf_avro_frame(fr[i], 7, fp, raw, raw_len, &msg, &len, NULL), 0);
        inf_request got;
        inf_avro_meta meta;
        rc = inf_avro_decode(reg, msg, len, &got, &meta, &err);
        if (rc) fprintf(stderr, "\n    decode evolved: %s\n", err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(meta.fingerprint, fp);
        if (!rc) assert_same(&truth, &got);
        inf_request_free(&got);
        free(msg);
    }
    inf_request_free(&truth);
    inf_avro_registry_free(reg);
    free(raw);
    free(res);
    free(out);
}

static void extra_old(const inf_request *r) {
    /* Spot checks that python applied the defaults we expect. */
    CU_ASSERT_STRING_EQUAL(r->request_id, "old-1");
    CU_ASSERT_EQUAL(r->max_tokens, 7);
    CU_ASSERT_EQUAL(r->top_k, -1);
    CU_ASSERT_TRUE(r->stream);
}

static void test_evolution(void) {
    if (!ta_python()) {
        tu_skip("no python3 with the avro module (python3-avro); set INFERNO_PYTHON");
        return;
    }
    /* Older producer: most optional fields missing, int promoted to long. */
    check_evolution(
        "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\",\"fields\":["
        "{\"name\":\"request_id\",\"type\":\"string\"},{\"name\":\"prompt\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"max_tokens\",\"type\":\"int\"},{\"name\":\"temperature\",\"type\":\"float\"},"
        "{\"name\":\"stop\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}]}",
        "{\"request_id\":\"old-1\",\"prompt\":\"hi there\",\"max_tokens\":7,\"temperature\":0.5,\"stop\":[\"x\"]}",
        extra_old);
    /* Newer producer: extra fields (before, between and after ours), a
     * LogitBias with an extra member, fields in another order. */
    check_evolution(
        "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\",\"fields\":["
        "{\"name\":\"tenant\",\"type\":\"string\"},"
        "{\"name\":\"prompt_token_ids\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"int\"}]},"
        "{\"name\":\"request_id\",\"type\":\"string\"},"
        "{\"name\":\"beams\",\"type\":{\"type\":\"array\",\"items\":\"double\"}},"
        "{\"name\":\"seed\",\"type\":[\"null\",\"long\"]},"
        "{\"name\":\"logit_bias\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"LogitBias\","
        "\"fields\":[{\"name\":\"note\",\"type\":\"string\"},{\"name\":\"token_id\",\"type\":\"int\"},"
        "{\"name\":\"bias\",\"type\":\"float\"}]}}},"
        "{\"name\":\"metadata\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
        "{\"name\":\"stream\",\"type\":\"boolean\"},"
        "{\"name\":\"future\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"long\"}]}]}",
        "{\"tenant\":\"t1\",\"prompt_token_ids\":[1,15043,3186],\"request_id\":\"new-2\",\"beams\":[0.5,1.5],"
        "\"seed\":99,\"logit_bias\":[{\"note\":\"n\",\"token_id\":5,\"bias\":-1.5}],\"metadata\":{\"k\":\"v\"},"
        "\"stream\":false,\"future\":{\"a\":1}}",
        NULL);

    /* Incompatible writers are refused at registration with a reason. */
    inf_avro_registry *reg = ta_new_reg();
    inf_error err = {0};
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg,
                                          "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\","
                                          "\"fields\":[{\"name\":\"prompt\",\"type\":\"string\"}]}",
                                          1, NULL, &err),
                    INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "request_id"));
    CU_ASSERT_NOT_EQUAL(inf_avro_registry_add(reg,
                                              "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"fields\":["
                                              "{\"name\":\"request_id\",\"type\":\"int\"}]}",
                                              2, NULL, &err),
                        0);
    CU_ASSERT_NOT_EQUAL(inf_avro_registry_add(reg, "{not json", 3, NULL, &err), 0);
    /* Mismatches nested in a record inside an array, and a writer union
     * branch the reader cannot take (avro-c's resolver crashes on some of
     * these, so they must be caught before it runs). */
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg,
                                          "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\","
                                          "\"fields\":[{\"name\":\"request_id\",\"type\":\"string\"},{\"name\":\"logit_bias\","
                                          "\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"LogitBias\","
                                          "\"fields\":[{\"name\":\"token_id\",\"type\":\"string\"},{\"name\":\"bias\",\"type\":\"float\"}]}}}]}",
                                          4, NULL, &err),
                    INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "token_id"));
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg,
                                          "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\","
                                          "\"fields\":[{\"name\":\"request_id\",\"type\":\"string\"},"
                                          "{\"name\":\"prompt\",\"type\":[\"null\",\"int\"]}]}",
                                          5, NULL, &err),
                    INF_EFORMAT);
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg,
                                          "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\","
                                          "\"fields\":[{\"name\":\"request_id\",\"type\":\"string\"},"
                                          "{\"name\":\"logit_bias\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
                                          "\"name\":\"LogitBias\",\"fields\":[{\"name\":\"token_id\",\"type\":\"int\"}]}}}]}",
                                          6, NULL, &err),
                    INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bias"));
    /* The same id cannot name two different schemas. */
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg, inf_avro_request_schema_json(), 10, NULL, &err), 0);
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg, inf_avro_request_schema_json(), 10, NULL, &err), 0);
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg,
                                          "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"inferno.v1\","
                                          "\"fields\":[{\"name\":\"request_id\",\"type\":\"string\"}]}",
                                          10, NULL, &err),
                    INF_EEXIST);
    CU_ASSERT_EQUAL(inf_avro_registry_add_file(reg, SCHEMA_FILE, 11, NULL, &err), 0);
    CU_ASSERT_EQUAL(inf_avro_registry_add_file(reg, "schemas/does-not-exist.avsc", 12, NULL, &err), INF_EIO);
    inf_avro_registry_free(reg);
}

/* python3-avro writes with our own schema; decoding it checks our reader
 * against an independent encoder (not just against our own encoder). */
static void test_python_encoded(void) {
    if (!ta_python()) {
        tu_skip("no python3 with the avro module (python3-avro); set INFERNO_PYTHON");
        return;
    }
    size_t n;
    char *avsc = tu_read_file(SCHEMA_FILE, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(avsc);
    const char *datum =
        "{\"request_id\":\"py-1\",\"prompt\":\"Once upon\",\"prompt_token_ids\":null,\"max_tokens\":64,"
        "\"min_tokens\":1,\"temperature\":0.75,\"top_k\":50,\"top_p\":0.5,\"min_p\":0.125,"
        "\"repetition_penalty\":1.25,\"presence_penalty\":0.5,\"frequency_penalty\":-0.25,\"seed\":42,"
        "\"stop\":[\"a\",\"bc\"],\"stop_token_ids\":[7,8,9],\"ignore_eos\":true,\"logprobs\":3,"
        "\"logit_bias\":[{\"token_id\":11,\"bias\":-2.0}],\"priority\":1,\"deadline_ms\":1800000000000,"
        "\"reply_stream\":\"rs\",\"stream\":false,\"metadata\":{\"x\":\"y\"},\"messages\":null,"
        "\"tools\":\"[]\",\"add_generation_prompt\":false,\"chat_template_kwargs\":null,"
        "\"response_format\":null,\"grammar\":\"root ::= \\\"a\\\"\",\"regex\":null,\"choice\":null}";
    char *out = ta_py(PY_EVOLVE, SCHEMA_FILE, avsc, datum);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t len;
    uint8_t *raw = ta_unhex(out, &len);
    inf_avro_registry *reg = ta_new_reg();
    inf_request r;
    inf_error err = {0};
    int rc = inf_avro_decode(reg, raw, len, &r, NULL, &err);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(r.request_id, "py-1");
    CU_ASSERT_STRING_EQUAL(r.prompt, "Once upon");
    CU_ASSERT_PTR_NULL(r.prompt_token_ids);
    CU_ASSERT_EQUAL(r.max_tokens, 64);
    CU_ASSERT_EQUAL(r.min_tokens, 1);
    CU_ASSERT_EQUAL(r.temperature, 0.75f);
    CU_ASSERT_EQUAL(r.top_k, 50);
    CU_ASSERT_EQUAL(r.top_p, 0.5f);
    CU_ASSERT_EQUAL(r.min_p, 0.125f);
    CU_ASSERT_EQUAL(r.repetition_penalty, 1.25f);
    CU_ASSERT_EQUAL(r.presence_penalty, 0.5f);
    CU_ASSERT_EQUAL(r.frequency_penalty, -0.25f);
    CU_ASSERT_TRUE(r.has_seed && r.seed == 42);
    CU_ASSERT_TRUE(r.n_stop == 2 && !strcmp(r.stop[0], "a") && !strcmp(r.stop[1], "bc"));
    CU_ASSERT_TRUE(r.n_stop_token_ids == 3 && r.stop_token_ids[2] == 9);
    CU_ASSERT_TRUE(r.ignore_eos);
    CU_ASSERT_TRUE(r.has_logprobs && r.logprobs == 3);
    CU_ASSERT_TRUE(r.n_logit_bias == 1 && r.logit_bias[0].token_id == 11 && r.logit_bias[0].bias == -2.0f);
    CU_ASSERT_TRUE(r.has_priority && r.priority == 1);
    CU_ASSERT_TRUE(r.has_deadline_ms && r.deadline_ms == 1800000000000LL);
    CU_ASSERT_STRING_EQUAL(r.reply_stream, "rs");
    CU_ASSERT_FALSE(r.stream);
    CU_ASSERT_TRUE(r.n_metadata == 1 && str_eq(kv_get(&r, "x"), "y"));
    CU_ASSERT_PTR_NULL(r.messages);
    CU_ASSERT_TRUE(str_eq(r.tools, "[]"));
    CU_ASSERT_FALSE(r.add_generation_prompt);
    CU_ASSERT_TRUE(str_eq(r.grammar, "root ::= \"a\""));
    CU_ASSERT_PTR_NULL(r.choice);
    /* Our encoder writes the same bytes python does. */
    uint8_t *mine;
    size_t mlen;
    CU_ASSERT_EQUAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &mine, &mlen, NULL), 0);
    CU_ASSERT_TRUE(mlen == len && memcmp(mine, raw, len) == 0);
    free(mine);
    inf_request_free(&r);
    inf_avro_registry_free(reg);
    free(raw);
    free(out);
    free(avsc);
}

/* ---- malformed input ------------------------------------------------------ */

static int decode_rc(inf_avro_registry *reg, const uint8_t *b, size_t n, inf_avro_meta *meta, inf_error *err) {
    inf_request r;
    int rc = inf_avro_decode(reg, b, n, &r, meta, err);
    inf_request_free(&r);
    return rc;
}

static void test_truncation(void) {
    inf_avro_registry *reg = ta_new_reg();
    inf_request in;
    fill_full(&in);
    int n_v1 = 0;
    uint64_t v1_fp = 0;
    size_t n;
    char *v1 = tu_read_file(SCHEMA_V1_FILE, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v1);
    CU_ASSERT_EQUAL(inf_avro_schema_fingerprint(v1, NULL, &v1_fp, NULL), 0);
    free(v1);
    inf_avro_framing fr[] = {INF_AVRO_FRAMING_BARE, INF_AVRO_FRAMING_CONFLUENT, INF_AVRO_FRAMING_SINGLE_OBJECT};
    for (int i = 0; i < 3; i++) {
        uint8_t *buf;
        size_t len;
        CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, fr[i], 1, &buf, &len, NULL), 0);
        for (size_t cut = 0; cut < len; cut++) {
            /* Copy so ASan sees any read past the cut. */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, buf, cut);
            inf_error err = {0};
            inf_avro_meta meta;
            inf_request got;
            int rc = inf_avro_decode(reg, p, cut, &got, &meta, &err);
            if (rc == 0 && fr[i] == INF_AVRO_FRAMING_BARE) {
                /* The one exception: a bare message cut where the v1
                 * schema's fields end is a complete v1 message (bare
                 * messages name no schema; docs/protocol.md), and it must
                 * read as the request without the newer fields. */
                inf_request v1 = in;
                v1.messages = NULL, v1.n_messages = 0, v1.tools = NULL, v1.add_generation_prompt = true;
                v1.chat_template_kwargs = v1.response_format = v1.grammar = v1.regex = NULL;
                v1.choice = NULL, v1.n_choice = 0;
                assert_same(&v1, &got);
                CU_ASSERT_EQUAL(meta.fingerprint, v1_fp);
                n_v1++;
            } else {
                CU_ASSERT_EQUAL(rc, INF_EFORMAT);
                CU_ASSERT(err.msg[0] != '\0');
            }
            inf_request_free(&got);
            /* Once the request_id is complete, errors name it. */
            size_t hdr = fr[i] == INF_AVRO_FRAMING_BARE ? 0 : fr[i] == INF_AVRO_FRAMING_CONFLUENT ? 5 : 10;
            if (cut > hdr + 1 + strlen(in.request_id)) CU_ASSERT_STRING_EQUAL(meta.request_id, in.request_id);
            free(p);
        }
        /* One byte too many is also an error. */
        uint8_t *p = malloc(len + 1);
        memcpy(p, buf, len);
        p[len] = 0;
        CU_ASSERT_EQUAL(decode_rc(reg, p, len + 1, NULL, NULL), INF_EFORMAT);
        free(p);
        free(buf);
    }
    CU_ASSERT_EQUAL(n_v1, 1);
    inf_request_free(&in);
    inf_avro_registry_free(reg);
}

/* Encodes a valid bare message with request_id "x" and a text prompt, then
 * lets the caller splice raw bytes after it (starting at prompt_token_ids). */
static size_t prefix_x_prompt(uint8_t *b) {
    size_t n = 0;
    b[n++] = 2; /* request_id length 1 */
    b[n++] = 'x';
    b[n++] = 2; /* prompt: branch 1 (string) */
    b[n++] = 2;
    b[n++] = 'p';
    return n;
}

static void test_malformed(void) {
    inf_avro_registry *reg = ta_new_reg();
    inf_error err;
    inf_avro_meta meta;
    uint8_t b[64];
    size_t n;

    CU_ASSERT_EQUAL(decode_rc(reg, (const uint8_t *)"", 0, NULL, &err), INF_EFORMAT);
    /* Bad single-object magic, short headers. */
    const uint8_t bad_magic[] = {0xC3, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 2, 'x'};
    CU_ASSERT_EQUAL(decode_rc(reg, bad_magic, sizeof bad_magic, NULL, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "magic"));
    const uint8_t short_conf[] = {0, 0, 0};
    CU_ASSERT_EQUAL(decode_rc(reg, short_conf, sizeof short_conf, NULL, &err), INF_EFORMAT);

    /* Unknown fingerprint: a clear error naming it. */
    inf_request in;
    fill_full(&in);
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, INF_AVRO_FRAMING_SINGLE_OBJECT, 0, &buf, &len, NULL), 0);
    buf[2] ^= 0x55;
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, &meta, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "fingerprint"));
    free(buf);
    /* Unregistered Confluent id: our current schema is tried, and works. */
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, INF_AVRO_FRAMING_CONFLUENT, 987654, &buf, &len, NULL), 0);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, &meta, &err), 0);
    CU_ASSERT_EQUAL(meta.schema_id, 987654);
    free(buf);
    /* ... and when that fails, the reason (the DLQ's) names the id: the
     * producer's schema is the likely cause. Both failure paths: the
     * pre-scan (cut short) and validation (no prompt). */
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, INF_AVRO_FRAMING_CONFLUENT, 42, &buf, &len, NULL), 0);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len - 1, &meta, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown Confluent schema id 42"));
    free(buf);
    inf_request noprompt;
    fill_full(&noprompt);
    free(noprompt.prompt);
    noprompt.prompt = NULL;
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &noprompt, INF_AVRO_FRAMING_CONFLUENT, 42, &buf, &len, NULL), 0);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, &meta, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown Confluent schema id 42"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, noprompt.request_id)); /* still names the request */
    free(buf);
    inf_request_free(&noprompt);

    /* Message size bound. */
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
    inf_avro_limits lim = {.max_message_bytes = len - 1};
    inf_avro_registry_set_limits(reg, &lim);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, NULL, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "limit"));
    inf_avro_registry_set_limits(reg, NULL);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, NULL, &err), 0);
    free(buf);
    inf_request_free(&in);

    /* String length far beyond the message (avro-c would malloc it). */
    const uint8_t huge_str[] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'};
    CU_ASSERT_EQUAL(decode_rc(reg, huge_str, sizeof huge_str, NULL, &err), INF_EFORMAT);
    const uint8_t neg_str[] = {0x01, 'a'};
    CU_ASSERT_EQUAL(decode_rc(reg, neg_str, sizeof neg_str, NULL, &err), INF_EFORMAT);
    const uint8_t long_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CU_ASSERT_EQUAL(decode_rc(reg, long_varint, sizeof long_varint, NULL, &err), INF_EFORMAT);
    /* Huge array count (prompt_token_ids = 2^31 items, 1 byte present). */
    n = prefix_x_prompt(b);
    b[n++] = 2;
    memcpy(b + n, (const uint8_t[]){0x80, 0x80, 0x80, 0x80, 0x10, 0x02}, 6);
    n += 6;
    CU_ASSERT_EQUAL(decode_rc(reg, b, n, &meta, &err), INF_EFORMAT);
    CU_ASSERT_STRING_EQUAL(meta.request_id, "x");
    /* Negative block count with a block size past the end. */
    n = prefix_x_prompt(b);
    b[n++] = 2;
    b[n++] = 0x03; /* count -2 */
    b[n++] = 0x7e; /* size 63 */
    b[n++] = 2;
    b[n++] = 4;
    CU_ASSERT_EQUAL(decode_rc(reg, b, n, NULL, &err), INF_EFORMAT);
    /* Union branch out of range. */
    n = prefix_x_prompt(b);
    b[2] = 4;
    CU_ASSERT_EQUAL(decode_rc(reg, b, n, NULL, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "union"));

    /* Item and string limits. */
    inf_request r;
    inf_request_init(&r);
    strcpy(r.request_id, "lim");
    r.prompt = strdup("0123456789abcdefg"); /* 17 bytes */
    r.n_stop_token_ids = 11;
    r.stop_token_ids = calloc(11, sizeof(int32_t));
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, NULL, &err), 0);
    lim = (inf_avro_limits){.max_items = 10};
    inf_avro_registry_set_limits(reg, &lim);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, NULL, &err), INF_EFORMAT);
    lim = (inf_avro_limits){.max_string_bytes = 16};
    inf_avro_registry_set_limits(reg, &lim);
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, &meta, &err), INF_EFORMAT);
    CU_ASSERT_STRING_EQUAL(meta.request_id, "lim");
    inf_avro_registry_set_limits(reg, NULL);
    free(buf);
    inf_request_free(&r);

    /* Invalid request_ids; none is reported back as an id. */
    const char *bad_ids[] = {"", "has space", "slash/y", "\xc3\xa9t\xc3\xa9", NULL};
    char long_id[INF_REQUEST_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    for (int i = 0; i < 5; i++) {
        inf_request_init(&r);
        r.prompt = strdup("p");
        const char *id = bad_ids[i] ? bad_ids[i] : long_id;
        if (strlen(id) <= INF_REQUEST_ID_MAX) {
            strcpy(r.request_id, id);
            CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
        } else {
            /* Too long for the struct: splice the id into a valid message. */
            strcpy(r.request_id, "z");
            uint8_t *tmp;
            size_t tl;
            CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &tmp, &tl, NULL), 0);
            size_t il = strlen(id);
            buf = malloc(tl + il + 2);
            buf[0] = (uint8_t)(((il << 1) & 0x7f) | 0x80);
            buf[1] = (uint8_t)(il >> 6);
            memcpy(buf + 2, id, il);
            memcpy(buf + 2 + il, tmp + 2, tl - 2);
            len = tl - 2 + 2 + il;
            free(tmp);
        }
        CU_ASSERT_EQUAL(decode_rc(reg, buf, len, &meta, &err), INF_EFORMAT);
        /* A bare message with an empty id starts with 0x00, so it reads as
         * Confluent framing and fails there instead. */
        if (*id) CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "request_id"));
        CU_ASSERT_STRING_EQUAL(meta.request_id, "");
        free(buf);
        inf_request_free(&r);
    }

    /* Both and neither prompt field: an error that names the request. */
    for (int both = 0; both < 2; both++) {
        inf_request_init(&r);
        strcpy(r.request_id, "pp-1");
        if (both) {
            r.prompt = strdup("p");
            r.n_prompt_token_ids = 1;
            r.prompt_token_ids = calloc(1, sizeof(int32_t));
        }
        CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
        CU_ASSERT_EQUAL(decode_rc(reg, buf, len, &meta, &err), INF_EFORMAT);
        CU_ASSERT_STRING_EQUAL(meta.request_id, "pp-1");
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "pp-1"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, both ? "more than one of" : "none of"));
        free(buf);
        inf_request_free(&r);
    }

    /* Out-of-range parameters, NUL bytes and bad UTF-8 in strings. */
    for (int k = 0; k < 5; k++) {
        inf_request_init(&r);
        strcpy(r.request_id, "rng");
        r.prompt = strdup(k == 3 ? "a\xff" "b" : "p");
        if (k == 0) r.temperature = -1;
        if (k == 1) r.top_p = 0;
        if (k == 2) r.min_tokens = r.max_tokens + 1;
        if (k == 4) r.max_tokens = 0;
        CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
        int rc = decode_rc(reg, buf, len, &meta, &err);
        CU_ASSERT_EQUAL(rc, k == 3 ? INF_EFORMAT : INF_ERANGE);
        CU_ASSERT_STRING_EQUAL(meta.request_id, "rng");
        free(buf);
        inf_request_free(&r);
    }
    /* A prompt holding a NUL byte; a boolean byte that is not 0/1 (stream
     * is the tenth byte from the end). */
    inf_request_init(&r);
    strcpy(r.request_id, "x");
    r.prompt = strdup("p");
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
    CU_ASSERT_EQUAL(buf[4], 'p');
    buf[4] = 0;
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, NULL, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "NUL"));
    buf[4] = 'p';
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, NULL, &err), 0);
    /* stream, the empty metadata map, then 8 bytes of the chat and
     * constraint fields at their defaults (add_generation_prompt true = 1) */
    CU_ASSERT_EQUAL(buf[len - 10], 1);
    CU_ASSERT_EQUAL(buf[len - 6], 1);
    buf[len - 10] = 2;
    CU_ASSERT_EQUAL(decode_rc(reg, buf, len, NULL, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "boolean"));
    free(buf);
    inf_request_free(&r);
    inf_avro_registry_free(reg);
}

/* Random corruption of valid messages: errors or valid requests, never a
 * crash, leak or out-of-bounds read (run under ASan). A request that does
 * decode must re-encode. */
static void test_corruption(void) {
    inf_avro_registry *reg = ta_new_reg();
    inf_request in;
    fill_full(&in);
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
    uint64_t seed = 99;
    int ok = 0, bad = 0;
    for (int it = 0; it < 3000; it++) {
        uint8_t *p = malloc(len);
        memcpy(p, buf, len);
        int flips = 1 + (int)(tu_rand_u64(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = tu_rand_u64(&seed) % len;
            p[at] = (it & 1) ? (uint8_t)tu_rand_u64(&seed) : (uint8_t)(p[at] ^ (1u << (tu_rand_u64(&seed) % 8)));
        }
        size_t plen = len - (tu_rand_u64(&seed) % 4 == 0 ? tu_rand_u64(&seed) % len : 0);
        inf_request r;
        inf_error err = {0};
        int rc = inf_avro_decode(reg, p, plen, &r, NULL, &err);
        if (rc == 0) {
            ok++;
            uint8_t *again;
            size_t alen;
            CU_ASSERT_EQUAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &again, &alen, NULL), 0);
            free(again);
            CU_ASSERT_EQUAL(inf_request_validate(&r, NULL), 0);
        } else {
            bad++;
            CU_ASSERT(rc == INF_EFORMAT || rc == INF_ERANGE);
            CU_ASSERT(err.msg[0] != '\0');
        }
        inf_request_free(&r);
        free(p);
    }
    CU_ASSERT(bad > 0);
    free(buf);
    inf_request_free(&in);
    inf_avro_registry_free(reg);
}

void test_register_avro(void) {
    CU_pSuite s = CU_add_suite("avro", NULL, NULL);
    CU_add_test(s, "crc64 spec vector", test_crc64_vector);
    CU_add_test(s, "canonical form vs python3-avro", test_canonical_form);
    CU_add_test(s, "round trip, all framings", test_round_trip);
    CU_add_test(s, "python3-avro encoded", test_python_encoded);
    CU_add_test(s, "schema evolution", test_evolution);
    CU_add_test(s, "every truncation fails", test_truncation);
    CU_add_test(s, "malformed messages", test_malformed);
    CU_add_test(s, "random corruption", test_corruption);
}
