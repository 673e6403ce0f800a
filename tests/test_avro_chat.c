/* test_avro_chat.c - the chat and output-constraint fields of the request
 * schema (messages, tools, add_generation_prompt, chat_template_kwargs,
 * response_format, grammar, regex, choice): round trips, python3-avro as an
 * independent encoder, v1 producers (the schema before these fields) in
 * every framing, and the validation rules. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_avro.h"
#include "testutil.h"

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

const char *ta_diff_chat(const inf_request *a, const inf_request *b) {
    if ((a->messages != NULL) != (b->messages != NULL) || a->n_messages != b->n_messages) return "messages";
    for (size_t i = 0; i < a->n_messages; i++) {
        const inf_chat_message *x = &a->messages[i], *y = &b->messages[i];
        if (!str_eq(x->role, y->role) || !str_eq(x->content, y->content) || !str_eq(x->name, y->name) ||
            !str_eq(x->tool_call_id, y->tool_call_id) || !str_eq(x->tool_calls, y->tool_calls) ||
            !str_eq(x->reasoning_content, y->reasoning_content))
            return "messages";
    }
    if (!str_eq(a->tools, b->tools)) return "tools";
    if (a->add_generation_prompt != b->add_generation_prompt) return "add_generation_prompt";
    if (!str_eq(a->chat_template_kwargs, b->chat_template_kwargs)) return "chat_template_kwargs";
    if (!str_eq(a->response_format, b->response_format)) return "response_format";
    if (!str_eq(a->grammar, b->grammar)) return "grammar";
    if (!str_eq(a->regex, b->regex)) return "regex";
    if ((a->choice != NULL) != (b->choice != NULL) || a->n_choice != b->n_choice) return "choice";
    for (size_t i = 0; i < a->n_choice; i++)
        if (!str_eq(a->choice[i], b->choice[i])) return "choice";
    return NULL;
}

static char *dup(const char *s) { return s ? strdup(s) : NULL; }

/* A conversation with every ChatMessage field used and left null. */
static void fill_chat(inf_request *r) {
    inf_request_init(r);
    strcpy(r->request_id, "chat-1");
    r->n_messages = 4;
    r->messages = calloc(4, sizeof *r->messages);
    r->messages[0] = (inf_chat_message){dup("system"), dup("You are terse."), NULL, NULL, NULL, NULL};
    r->messages[1] = (inf_chat_message){dup("user"), dup("Weather in \xc3\x89vian?"), dup("ana"), NULL, NULL, NULL};
    r->messages[2] = (inf_chat_message){
        dup("assistant"), NULL, NULL, NULL,
        dup("[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"wx\",\"arguments\":\"{}\"}}]"),
        dup("The user wants weather.")};
    r->messages[3] = (inf_chat_message){dup("tool"), dup("{\"t\":21}"), NULL, dup("c1"), NULL, NULL};
    r->tools = dup("[{\"type\":\"function\",\"function\":{\"name\":\"wx\",\"parameters\":{}}}]");
    r->chat_template_kwargs = dup("{\"enable_thinking\":false}");
    r->n_choice = 2;
    r->choice = calloc(2, sizeof *r->choice);
    r->choice[0] = dup("yes");
    r->choice[1] = dup("no");
}

static void test_chat_round_trip(void) {
    inf_avro_registry *reg = ta_new_reg();
    inf_request in, out;
    fill_chat(&in);
    inf_error err = {0};
    CU_ASSERT_EQUAL(inf_request_validate(&in, &err), 0);
    inf_avro_framing fr[] = {INF_AVRO_FRAMING_BARE, INF_AVRO_FRAMING_CONFLUENT, INF_AVRO_FRAMING_SINGLE_OBJECT};
    for (int i = 0; i < 3; i++) {
        uint8_t *buf;
        size_t len;
        CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &in, fr[i], 5, &buf, &len, &err), 0);
        int rc = inf_avro_decode(reg, buf, len, &out, NULL, &err);
        if (rc) fprintf(stderr, "\n    decode: %s\n", err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        const char *d = rc ? "decode" : ta_diff_chat(&in, &out);
        if (d) fprintf(stderr, "\n    differs in %s\n", d);
        CU_ASSERT_PTR_NULL(d);
        inf_request_free(&out);
        free(buf);
    }
    inf_request_free(&in);
    inf_avro_registry_free(reg);
}

/* python3-avro writes a chat request with the .avsc; we must read exactly
 * its datum, and our encoder must write python's bytes. */
static void test_chat_python(void) {
    if (!ta_python()) {
        tu_skip("no python3 with the avro module (python3-avro); set INFERNO_PYTHON");
        return;
    }
    static const char script[] =
        "import sys, io, json, avro.schema, avro.io\n"
        "s = avro.schema.parse(open(sys.argv[1]).read())\n"
        "d = {'request_id': 'py-chat', 'messages': [\n"
        "  {'role': 'system', 'content': 'Be brief.'},\n"
        "  {'role': 'user', 'content': 'h\\u00e9llo \\U0001F600', 'name': 'bo'},\n"
        "  {'role': 'assistant', 'content': None, 'tool_calls': '[{\"id\":\"x\"}]',\n"
        "   'reasoning_content': 'think'},\n"
        "  {'role': 'tool', 'content': '42', 'tool_call_id': 'x'}],\n"
        "  'tools': '[]', 'add_generation_prompt': False, 'chat_template_kwargs': '{\"a\":1}',\n"
        "  'response_format': '{\"type\":\"json_object\"}'}\n"
        "for f in s.fields:\n"
        "    if f.name not in d: d[f.name] = f.default\n"
        "for m in d['messages']:\n"
        "    for k in ('content', 'name', 'tool_call_id', 'tool_calls', 'reasoning_content'):\n"
        "        m.setdefault(k, None)\n"
        "b = io.BytesIO(); avro.io.DatumWriter(s).write(d, avro.io.BinaryEncoder(b))\n"
        "print(b.getvalue().hex())\n";
    char *out = ta_py(script, SCHEMA_FILE, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t len;
    uint8_t *raw = ta_unhex(out, &len);
    inf_avro_registry *reg = ta_new_reg();
    inf_request r;
    inf_error err = {0};
    int rc = inf_avro_decode(reg, raw, len, &r, NULL, &err);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NULL(r.prompt);
    CU_ASSERT_EQUAL_FATAL(r.n_messages, 4);
    CU_ASSERT_STRING_EQUAL(r.messages[0].role, "system");
    CU_ASSERT_STRING_EQUAL(r.messages[1].content, "h\xc3\xa9llo \xf0\x9f\x98\x80");
    CU_ASSERT_TRUE(str_eq(r.messages[1].name, "bo"));
    CU_ASSERT_PTR_NULL(r.messages[2].content);
    CU_ASSERT_TRUE(str_eq(r.messages[2].tool_calls, "[{\"id\":\"x\"}]"));
    CU_ASSERT_TRUE(str_eq(r.messages[2].reasoning_content, "think"));
    CU_ASSERT_TRUE(str_eq(r.messages[3].tool_call_id, "x"));
    CU_ASSERT_PTR_NULL(r.messages[3].name);
    CU_ASSERT_TRUE(str_eq(r.tools, "[]"));
    CU_ASSERT_FALSE(r.add_generation_prompt);
    CU_ASSERT_TRUE(str_eq(r.chat_template_kwargs, "{\"a\":1}"));
    CU_ASSERT_TRUE(str_eq(r.response_format, "{\"type\":\"json_object\"}"));
    CU_ASSERT_PTR_NULL(r.grammar);
    CU_ASSERT_PTR_NULL(r.choice);
    uint8_t *mine;
    size_t mlen;
    CU_ASSERT_EQUAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &mine, &mlen, NULL), 0);
    CU_ASSERT_TRUE(mlen == len && memcmp(mine, raw, len) == 0);
    free(mine);
    inf_request_free(&r);
    inf_avro_registry_free(reg);
    free(raw);
    free(out);
}

/* A producer still on the v1 schema (schemas/history/): python3-avro writes
 * with it; the message must decode in all three framings without the
 * producer registering anything, with the new fields at their defaults. */
static void test_v1_producer(void) {
    if (!ta_python()) {
        tu_skip("no python3 with the avro module (python3-avro); set INFERNO_PYTHON");
        return;
    }
    static const char script[] =
        "import sys, io, avro.schema, avro.io\n"
        "s = avro.schema.parse(open(sys.argv[1]).read())\n"
        "d = {f.name: f.default for f in s.fields}\n"
        "d.update({'request_id': 'v1-req', 'prompt': 'once upon', 'max_tokens': 9, 'stop': ['.'],\n"
        "          'metadata': {'k': 'v'}})\n"
        "b = io.BytesIO(); avro.io.DatumWriter(s).write(d, avro.io.BinaryEncoder(b))\n"
        "print(b.getvalue().hex())\n";
    char *out = ta_py(script, SCHEMA_V1_FILE, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t len, n;
    uint8_t *raw = ta_unhex(out, &len);
    char *v1 = tu_read_file(SCHEMA_V1_FILE, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v1);
    uint64_t fp = 0;
    CU_ASSERT_EQUAL(inf_avro_schema_fingerprint(v1, NULL, &fp, NULL), 0);
    inf_avro_registry *reg = ta_new_reg();
    CU_ASSERT_NOT_EQUAL(fp, inf_avro_registry_reader_fingerprint(reg));
    /* Confluent: the id the producer's registry gave v1, registered by the
     * operator as for any other producer schema. */
    inf_error err = {0};
    CU_ASSERT_EQUAL(inf_avro_registry_add(reg, v1, 31, NULL, &err), 0);
    inf_avro_framing fr[] = {INF_AVRO_FRAMING_BARE, INF_AVRO_FRAMING_CONFLUENT, INF_AVRO_FRAMING_SINGLE_OBJECT};
    for (int i = 0; i < 3; i++) {
        uint8_t *msg;
        size_t mlen;
        CU_ASSERT_EQUAL_FATAL(inf_avro_frame(fr[i], 31, fp, raw, len, &msg, &mlen, NULL), 0);
        inf_request r;
        inf_avro_meta meta;
        int rc = inf_avro_decode(reg, msg, mlen, &r, &meta, &err);
        if (rc) fprintf(stderr, "\n    framing %d: %s\n", i, err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(meta.fingerprint, fp);
        CU_ASSERT_TRUE(str_eq(r.prompt, "once upon"));
        CU_ASSERT_EQUAL(r.max_tokens, 9);
        CU_ASSERT_TRUE(r.n_stop == 1 && r.n_metadata == 1);
        CU_ASSERT_PTR_NULL(r.messages);
        CU_ASSERT_TRUE(r.add_generation_prompt);
        CU_ASSERT_PTR_NULL(r.choice);
        inf_request_free(&r);
        free(msg);
    }
    inf_avro_registry_free(reg);
    free(v1);
    free(raw);
    free(out);
}

static int validate_msg(const inf_request *r, char *msg, size_t cap) {
    inf_error err = {0};
    int rc = inf_request_validate(r, &err);
    snprintf(msg, cap, "%s", err.msg);
    return rc;
}

static void test_chat_validation(void) {
    char m[512];
    inf_request r;
    /* messages with a prompt or with token ids */
    for (int k = 0; k < 2; k++) {
        fill_chat(&r);
        if (k == 0) r.prompt = strdup("x");
        else {
            r.prompt_token_ids = calloc(1, sizeof(int32_t));
            r.n_prompt_token_ids = 1;
        }
        CU_ASSERT_EQUAL(validate_msg(&r, m, sizeof m), INF_EFORMAT);
        CU_ASSERT_PTR_NOT_NULL(strstr(m, "more than one of prompt, prompt_token_ids and messages"));
        CU_ASSERT_PTR_NOT_NULL(strstr(m, "chat-1"));
        inf_request_free(&r);
    }
    /* an empty conversation; an empty role */
    fill_chat(&r);
    r.n_messages = 0;
    CU_ASSERT_EQUAL(validate_msg(&r, m, sizeof m), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "empty messages"));
    r.n_messages = 4;
    r.messages[2].role[0] = '\0';
    CU_ASSERT_EQUAL(validate_msg(&r, m, sizeof m), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "messages[2] has an empty role"));
    inf_request_free(&r);
    /* two constraints; an empty choice */
    fill_chat(&r);
    r.grammar = strdup("root ::= \"a\"");
    CU_ASSERT_EQUAL(validate_msg(&r, m, sizeof m), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "more than one of response_format, grammar, regex and choice"));
    free(r.grammar);
    r.grammar = NULL;
    for (size_t i = 0; i < r.n_choice; i++) free(r.choice[i]);
    r.n_choice = 0;
    CU_ASSERT_EQUAL(validate_msg(&r, m, sizeof m), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "empty choice"));
    inf_request_free(&r);
    /* every single constraint alone is accepted, with any input */
    for (int k = 0; k < 3; k++) {
        fill_chat(&r);
        for (size_t i = 0; i < r.n_choice; i++) free(r.choice[i]);
        free(r.choice);
        r.choice = NULL;
        r.n_choice = 0;
        char **f = k == 0 ? &r.response_format : k == 1 ? &r.grammar : &r.regex;
        *f = strdup("x");
        CU_ASSERT_EQUAL(validate_msg(&r, m, sizeof m), 0);
        inf_request_free(&r);
    }
}

/* Decoding an empty messages array or an empty choice array from the wire
 * reaches the same rules (the decoder keeps [] apart from null). */
static void test_chat_wire_empty(void) {
    inf_avro_registry *reg = ta_new_reg();
    for (int k = 0; k < 2; k++) {
        inf_request r;
        fill_chat(&r);
        if (k == 0) r.n_messages = 0; /* encoder writes [] (the array is non-NULL) */
        else r.n_choice = 0;
        uint8_t *buf;
        size_t len;
        CU_ASSERT_EQUAL_FATAL(inf_avro_encode(reg, &r, INF_AVRO_FRAMING_BARE, 0, &buf, &len, NULL), 0);
        if (k == 0) r.n_messages = 4;
        else r.n_choice = 2;
        inf_request_free(&r);
        inf_error err = {0};
        inf_avro_meta meta;
        CU_ASSERT_EQUAL(inf_avro_decode(reg, buf, len, &r, &meta, &err), INF_EFORMAT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, k == 0 ? "empty messages" : "empty choice"));
        CU_ASSERT_STRING_EQUAL(meta.request_id, "chat-1");
        free(buf);
    }
    inf_avro_registry_free(reg);
}

void test_register_avro_chat(void) {
    CU_pSuite s = CU_add_suite("avro_chat", NULL, NULL);
    CU_add_test(s, "chat and constraint fields round trip", test_chat_round_trip);
    CU_add_test(s, "python3-avro encoded chat request", test_chat_python);
    CU_add_test(s, "v1 producers in every framing", test_v1_producer);
    CU_add_test(s, "validation rules", test_chat_validation);
    CU_add_test(s, "empty arrays from the wire", test_chat_wire_empty);
}
