/* test_gateway.c - suite "gateway": the gateway's pieces without a network:
 * OpenAI request validation (the parameter named in a 400), response shapes
 * read back with the JSON parser, API keys (file format, constant-time
 * compare), rate and stream limits, UTF-8 hold-back, and that
 * docs/gateway.md carries `inferno-gateway --help-markdown` verbatim. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "gw_buf.h"
#include "gw_openai.h"
#include "testutil.h"
#include "tools/json.h"

static int parse(gw_api api, const char *body, gw_params *p, gw_apierr *e) {
    return gw_params_parse(api, body, strlen(body), p, e);
}

static void test_params(void) {
    gw_params p;
    gw_apierr e;
    CU_ASSERT_EQUAL(parse(GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"hi\",\"unknown_thing\":[1,2]}", &p, &e), 0);
    CU_ASSERT_EQUAL(p.max_tokens, 16); /* OpenAI's completions default */
    CU_ASSERT_EQUAL(p.n, 1);
    CU_ASSERT_EQUAL(p.n_prompts, 1);
    gw_params_free(&p);
    struct { gw_api api; const char *body, *param; int status; } bad[] = {
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"temperature\":5}", "temperature", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"top_p\":0}", "top_p", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"n\":0}", "n", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":\"ten\"}", "max_tokens", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"logit_bias\":{\"7\":200}}", "logit_bias", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"stream_options\":{\"include_usage\":true}}",
         "stream_options", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\",\"priority\":\"urgent\"}", "priority", 400},
        {GW_API_COMPLETIONS, "{\"model\":\"m\"}", "prompt", 400},
        {GW_API_COMPLETIONS, "{\"prompt\":\"x\"}", "model", 400},
        {GW_API_CHAT, "{\"model\":\"m\",\"messages\":[]}", "messages", 400},
        {GW_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role", 400},
        {GW_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":3}",
         "top_logprobs", 400},
        {GW_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                      "\"response_format\":{\"type\":\"yaml\"}}", "response_format.type", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        CU_ASSERT_EQUAL(parse(bad[i].api, bad[i].body, &p, &e), -1);
        CU_ASSERT_EQUAL(e.status, bad[i].status);
        CU_ASSERT_STRING_EQUAL(e.param, bad[i].param);
        if (strcmp(e.param, bad[i].param)) fprintf(stderr, "\n    %s -> param '%s' (%s)\n", bad[i].body, e.param, e.message);
    }
    CU_ASSERT_EQUAL(parse(GW_API_COMPLETIONS, "{not json", &p, &e), -1);
    CU_ASSERT_EQUAL(e.status, 400);
    /* a batch of prompts times n; token prompts */
    CU_ASSERT_EQUAL(parse(GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"],\"n\":3}", &p, &e), 0);
    CU_ASSERT_EQUAL(p.n_prompts, 2);
    gw_params_free(&p);
    CU_ASSERT_EQUAL(parse(GW_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[1,2,3]}", &p, &e), 0);
    CU_ASSERT(p.n_prompts == 1 && p.n_prompt_ids[0] == 3 && p.prompt_ids[0][2] == 3);
    gw_params_free(&p);
    /* chat: parts, vLLM extensions, max_completion_tokens, the queue request */
    CU_ASSERT_EQUAL(parse(GW_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\","
                                       "\"text\":\"be \"},{\"type\":\"text\",\"text\":\"brief\"}]},{\"role\":\"user\","
                                       "\"content\":\"hi\"}],\"max_completion_tokens\":9,\"top_k\":5,\"min_p\":0.1,"
                                       "\"user\":\"u1\",\"logit_bias\":{\"3\":-100},\"seed\":4}", &p, &e), 0);
    CU_ASSERT_STRING_EQUAL(p.messages[0].content, "be brief");
    inf_request r;
    inf_error ierr = {0};
    CU_ASSERT_EQUAL(gw_params_to_request(&p, 0, "gwx-0", 0, &r, &ierr), 0);
    CU_ASSERT_EQUAL(r.max_tokens, 9);
    CU_ASSERT_EQUAL(r.top_k, 5);
    CU_ASSERT_EQUAL(r.n_messages, 2);
    CU_ASSERT_STRING_EQUAL(r.messages[1].role, "user");
    CU_ASSERT(r.n_metadata == 1 && !strcmp(r.metadata[0].key, "user") && !strcmp(r.metadata[0].value, "u1"));
    CU_ASSERT(r.n_logit_bias == 1 && r.logit_bias[0].token_id == 3);
    CU_ASSERT(r.has_seed && r.seed == 4);
    CU_ASSERT_EQUAL(inf_request_validate(&r, &ierr), 0);
    inf_request_free(&r);
    gw_params_free(&p);
}

/* Shapes read back with an independent parser. */
static void test_shapes(void) {
    gw_resp r = {.api = GW_API_CHAT, .id = "chatcmpl-1", .created = 5, .model = "m", .include_usage = 1, .logprobs = -1};
    gw_buf b = {0};
    gw_fmt_chunk_role(&b, &r, 0);
    CU_ASSERT(!strncmp(b.p, "data: {", 7) && b.len > 2 && !strcmp(b.p + b.len - 2, "\n\n"));
    json_value v;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(json_parse(b.p + 6, b.len - 8, &v, &err), 0);
    CU_ASSERT_STRING_EQUAL(json_get(&v, "object")->str, "chat.completion.chunk");
    const json_value *ch = json_get(&v, "choices");
    CU_ASSERT_STRING_EQUAL(json_get(json_get(&ch->items[0], "delta"), "role")->str, "assistant");
    CU_ASSERT_EQUAL(json_get(&v, "usage")->type, JSON_NULL);
    json_free(&v);
    gw_buf_free(&b);
    gw_apierr e;
    gw_apierr_set(&e, 400, "invalid_request_error", "temperature", NULL, "bad \"x\"\n");
    gw_fmt_error(&b, &e);
    CU_ASSERT_EQUAL_FATAL(json_parse(b.p, b.len, &v, &err), 0);
    const json_value *eo = json_get(&v, "error");
    CU_ASSERT_STRING_EQUAL(json_get(eo, "message")->str, "bad \"x\"\n");
    CU_ASSERT_STRING_EQUAL(json_get(eo, "param")->str, "temperature");
    CU_ASSERT_EQUAL(json_get(eo, "code")->type, JSON_NULL);
    json_free(&v);
    gw_buf_free(&b);
    /* invalid UTF-8 in text becomes U+FFFD, the JSON stays valid */
    gw_buf_json_str(&b, "a\xff" "b\xc3", 4);
    CU_ASSERT_EQUAL(json_parse(b.p, b.len, &v, &err), 0);
    CU_ASSERT_STRING_EQUAL(v.str, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
    json_free(&v);
    gw_buf_free(&b);
    CU_ASSERT_EQUAL(gw_utf8_complete_prefix("ab\xc3", 3), 2);
    CU_ASSERT_EQUAL(gw_utf8_complete_prefix("ab\xc3\xa9", 4), 4);
    CU_ASSERT_EQUAL(gw_utf8_complete_prefix("\xe2\x82", 2), 0);
    CU_ASSERT_STRING_EQUAL(gw_finish_reason("deadline"), "length");
}

static void test_auth(void) {
    CU_ASSERT(gw_ct_equal("abc", 3, "abc", 3));
    CU_ASSERT(!gw_ct_equal("abd", 3, "abc", 3));
    CU_ASSERT(!gw_ct_equal("ab", 2, "abc", 3));
    CU_ASSERT(!gw_ct_equal("abcd", 4, "abc", 3));
    const char *path = tu_tmpfile("gw-auth-keys");
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("# comment\n\n  key-one  \nkey-two\n", f);
    fclose(f);
    gw_auth *a = NULL;
    inf_error err = {0};
    gw_auth_config c = {.keys_file = path, .keys_csv = "key-three", .rps = 2, .burst = 2, .max_streams = 3};
    CU_ASSERT_EQUAL_FATAL(gw_auth_create(&a, &c, &err), 0);
    CU_ASSERT_EQUAL(gw_auth_n_keys(a), 3);
    CU_ASSERT_EQUAL(gw_auth_check(a, "Bearer key-one"), 0);
    CU_ASSERT_EQUAL(gw_auth_check(a, "Bearer key-two"), 1);
    CU_ASSERT_EQUAL(gw_auth_check(a, "Bearer key-three"), 2);
    CU_ASSERT_EQUAL(gw_auth_check(a, "Bearer key-on"), -1);
    CU_ASSERT_EQUAL(gw_auth_check(a, "Bearer # comment"), -1);
    CU_ASSERT_EQUAL(gw_auth_check(a, NULL), -1);
    CU_ASSERT_EQUAL(gw_auth_check(a, "Basic key-one"), -1);
    double ra;
    CU_ASSERT_EQUAL(gw_auth_admit(a, 0, 1, 100.0, &ra), GW_ADMIT_OK);
    CU_ASSERT_EQUAL(gw_auth_admit(a, 0, 1, 100.0, &ra), GW_ADMIT_OK);
    CU_ASSERT_EQUAL(gw_auth_admit(a, 0, 1, 100.0, &ra), GW_ADMIT_RATE); /* burst 2 spent */
    CU_ASSERT(ra > 0.4 && ra <= 0.5);
    CU_ASSERT_EQUAL(gw_auth_admit(a, 0, 1, 100.6, &ra), GW_ADMIT_OK);  /* refilled */
    CU_ASSERT_EQUAL(gw_auth_admit(a, 0, 1, 110.0, &ra), GW_ADMIT_STREAMS); /* 3 in progress */
    gw_auth_release(a, 0, 2);
    CU_ASSERT_EQUAL(gw_auth_admit(a, 0, 1, 110.0, &ra), GW_ADMIT_OK);
    CU_ASSERT_EQUAL(gw_auth_admit(a, 1, 1, 110.0, &ra), GW_ADMIT_OK); /* other keys have their own */
    gw_auth_free(a);
    gw_auth_config none = {0};
    CU_ASSERT_EQUAL_FATAL(gw_auth_create(&a, &none, &err), 0);
    CU_ASSERT_EQUAL(gw_auth_check(a, NULL), 0);
    gw_auth_free(a);
}

static void test_docs(void) {
    char *argv[] = {(char *)tu_bin("inferno-gateway"), "--help-markdown", NULL};
    char *md = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(argv, &md), 0);
    char *doc = tu_read_file("docs/gateway.md", NULL);
    CU_ASSERT(doc && md && strstr(doc, md) != NULL);
    if (doc && md && !strstr(doc, md))
        fprintf(stderr, "\n    docs/gateway.md is stale: regenerate it (see the file)\n");
    char *hv[] = {(char *)tu_bin("inferno-gateway"), "--help", NULL};
    char *help = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(hv, &help), 0);
    CU_ASSERT(help && strstr(help, "INFERNO_GATEWAY_API_KEYS_FILE") && strstr(help, "--route"));
    char *bad[] = {(char *)tu_bin("inferno-gateway"), "--no-such-flag", NULL};
    char *o = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(bad, &o), 2);
    free(o);
    free(help);
    free(md);
    free(doc);
}

void test_register_gateway(void) {
    CU_pSuite s = CU_add_suite("gateway", NULL, NULL);
    CU_add_test(s, "request validation names the parameter", test_params);
    CU_add_test(s, "response shapes", test_shapes);
    CU_add_test(s, "API keys and limits", test_auth);
    CU_add_test(s, "docs/gateway.md is --help-markdown", test_docs);
}
