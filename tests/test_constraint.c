/* test_constraint.c - structured output end to end on random-weights models:
 * the translators (choice trie, regex, JSON Schema) against hand-picked
 * strings and exact error messages; the engine with constrained and free
 * requests mixed in one batch (free rows give the tokens they give alone,
 * constrained rows are accepted by their grammar), through preemption and
 * recompute and with the prefix cache, the compiled-constraint cache; and
 * tests/constraint/run.py: a corpus of schemas, regexes and ../shared
 * grammars at temperature 1.0 with several seeds checked by independent
 * Python checkers (python3-jsonschema, re.fullmatch, an Earley parser). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constraint.h"
#include "engine.h"
#include "grammar.h"
#include "model_random.h"
#include "testutil.h"

static char g_model[1024];

static int suite_init(void) {
    model_random_opts o = {0};
    inf_error err = {0};
    if (model_random_preset(&o, "tiny", &err)) return 1;
    o.seed = 11;
    snprintf(g_model, sizeof g_model, "%s", tu_tmpfile("constraint_model.gguf"));
    if (model_random_write(g_model, &o, &err)) {
        fprintf(stderr, "model_random_write: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static grammar *compile(const constraint_spec *s, inf_error *err) {
    char *gbnf = NULL;
    grammar *g = NULL;
    if (constraint_to_gbnf(s, &gbnf, err)) return NULL;
    if (gbnf && grammar_parse(&g, gbnf, 0, err)) fprintf(stderr, "GBNF:\n%s\n", gbnf);
    free(gbnf);
    return g;
}

static int acc(const grammar *g, const char *s) { return grammar_accepts(g, s, strlen(s), NULL); }

static void test_choice_regex(void) {
    const char *ch[] = {"neg", "negative", "neutral", "positive", "\xc3\xa9t\xc3\xa9"};
    constraint_spec s = {CONSTRAINT_CHOICE, NULL, 0, ch, 5};
    inf_error err = {0};
    grammar *g = compile(&s, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(acc(g, ch[i]), 1);
    CU_ASSERT_EQUAL(acc(g, "ne"), 0);
    CU_ASSERT_EQUAL(acc(g, "negat"), 0);
    CU_ASSERT_EQUAL(acc(g, "positives"), 0);
    grammar_free(g);

    constraint_spec r = {CONSTRAINT_REGEX, "^(ab|c)+[x-z]?\\d{2}$", 0, NULL, 0};
    g = compile(&r, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL(acc(g, "abcab12"), 1);
    CU_ASSERT_EQUAL(acc(g, "cz00"), 1);
    CU_ASSERT_EQUAL(acc(g, "ab1"), 0);
    CU_ASSERT_EQUAL(acc(g, "12"), 0);
    grammar_free(g);

    const struct { const char *re; int code; const char *msg; } bad[] = {
        {"a(?=b)", INF_EUNSUPPORTED, "regex: at offset 3: lookaround is not supported"},
        {"(a)\\1", INF_EUNSUPPORTED, "regex: at offset 4: backreferences are not supported"},
        {"a\\bc", INF_EUNSUPPORTED, "regex: at offset 2: word boundaries (\\b, \\B) are not supported"},
        {"a(b", INF_EFORMAT, "regex: at offset 3: missing ')'"},
        {"*a", INF_EFORMAT, "regex: at offset 0: nothing to repeat"},
        {"[a-", INF_EFORMAT, "regex: at offset 3: unterminated character class"},
        {"a^b", INF_EUNSUPPORTED, "regex: at offset 1: ^ is supported only at the start"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        constraint_spec b = {CONSTRAINT_REGEX, bad[i].re, 0, NULL, 0};
        char *gbnf = NULL;
        inf_error e2 = {0};
        CU_ASSERT_EQUAL(constraint_to_gbnf(&b, &gbnf, &e2), bad[i].code);
        if (strcmp(e2.msg, bad[i].msg)) fprintf(stderr, "\n%s: got '%s'\n", bad[i].re, e2.msg);
        CU_ASSERT_STRING_EQUAL(e2.msg, bad[i].msg);
        free(gbnf);
    }
}

static void test_schema_strings(void) {
    const char *schema =
        "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":-12,\"maximum\":305},"
        "\"s\":{\"type\":\"string\",\"maxLength\":2},\"e\":{\"enum\":[\"a\",1]}},\"required\":[\"n\"],"
        "\"additionalProperties\":{\"type\":\"boolean\"}}";
    constraint_spec s = {CONSTRAINT_JSON_SCHEMA, schema, 0, NULL, 0};
    inf_error err = {0};
    grammar *g = compile(&s, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL(acc(g, "{\"n\":305}"), 1);
    CU_ASSERT_EQUAL(acc(g, "{ \"n\": -12, \"s\": \"ab\", \"e\": 1, \"x\": true}"), 1);
    CU_ASSERT_EQUAL(acc(g, "{\"n\":306}"), 0);
    CU_ASSERT_EQUAL(acc(g, "{\"n\":-13}"), 0);
    CU_ASSERT_EQUAL(acc(g, "{\"n\":07}"), 0);
    CU_ASSERT_EQUAL(acc(g, "{\"s\":\"a\"}"), 0);            /* n is required */
    CU_ASSERT_EQUAL(acc(g, "{\"n\":1,\"s\":\"abc\"}"), 0);  /* maxLength */
    CU_ASSERT_EQUAL(acc(g, "{\"n\":1,\"n\":true}"), 0);     /* an extra key never repeats a declared one */
    CU_ASSERT_EQUAL(acc(g, "{\"n\":1,\"nn\":true}"), 1);
    grammar_free(g);
    /* response_format text constrains nothing; a bad type is named */
    constraint_spec t = {CONSTRAINT_RESPONSE_FORMAT, "{\"type\":\"text\"}", 0, NULL, 0};
    char *gbnf = (char *)1;
    CU_ASSERT_EQUAL(constraint_to_gbnf(&t, &gbnf, &err), 0);
    CU_ASSERT_PTR_NULL(gbnf);
    constraint_spec t2 = {CONSTRAINT_RESPONSE_FORMAT, "{\"type\":\"xml\"}", 0, NULL, 0};
    CU_ASSERT_EQUAL(constraint_to_gbnf(&t2, &gbnf, &err), INF_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg,
                           "response_format: type must be \"text\", \"json_object\" or \"json_schema\", got \"xml\"");
}

/* ---- engine ---- */

typedef struct out {
    int32_t toks[512];
    int n;
    char text[8192];
    size_t len;
    engine_finish_reason reason;
    int err;
    int preempt;
} out;

typedef struct rq {
    const char *id;
    const constraint_spec *c;
    uint64_t seed;
    int max_tokens;
} rq;

static void run(engine *e, const rq *q, out *o, int n) {
    for (int i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof o[i]);
        sampler_params p = sampler_params_default();
        p.temperature = 1.0f;
        p.has_seed = 1;
        p.seed = q[i].seed;
        p.max_tokens = q[i].max_tokens;
        engine_request r = engine_request_default();
        r.id = q[i].id;
        r.prompt = "Once upon a time";
        r.params = &p;
        r.user = &o[i];
        r.constraint = q[i].c;
        inf_error err = {0};
        int rc = engine_add(e, &r, &err);
        if (rc) fprintf(stderr, "engine_add: %s\n", err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
    }
    for (int guard = 0; engine_has_work(e) && guard < 100000; guard++) {
        const engine_event *ev;
        int nev;
        inf_error err = {0};
        CU_ASSERT_EQUAL_FATAL(engine_step(e, &ev, &nev, &err), 0);
        CU_ASSERT_EQUAL(engine_check_invariants(e, &err), 0);
        for (int k = 0; k < nev; k++) {
            out *x = ev[k].user;
            if (ev[k].type == ENGINE_EVENT_TOKEN) {
                for (int t = 0; t < ev[k].n_tokens && x->n < 512; t++) x->toks[x->n++] = ev[k].tokens[t];
                if (ev[k].text_len && x->len + ev[k].text_len < sizeof x->text) {
                    memcpy(x->text + x->len, ev[k].text, ev[k].text_len);
                    x->len += ev[k].text_len;
                }
            } else if (ev[k].type == ENGINE_EVENT_FINISHED) {
                x->reason = ev[k].reason;
                x->preempt = ev[k].n_preemptions;
            } else {
                x->err = ev[k].code;
                fprintf(stderr, "error event: %s\n", ev[k].message);
            }
        }
    }
}

static engine *open_engine(size_t kv_bytes, int prefix) {
    engine_config c = engine_config_default();
    c.backend = "cpu";
    c.n_threads = 1;
    c.seed = 1;
    c.kv_cache_bytes = kv_bytes;
    c.enable_prefix_caching = prefix;
    engine *e = NULL;
    inf_error err = {0};
    if (engine_open(&e, &c, g_model, &err)) fprintf(stderr, "engine_open: %s\n", err.msg);
    return e;
}

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":50},"
    "\"b\":{\"type\":\"string\",\"maxLength\":6},\"c\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},"
    "\"maxItems\":3}},\"required\":[\"a\",\"b\",\"c\"]}";

static void check_valid(const constraint_spec *c, const out *o) {
    if (o->reason != ENGINE_FINISH_STOP) return;
    inf_error err = {0};
    grammar *g = compile(c, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    int ok = grammar_accepts(g, o->text, o->len, NULL);
    if (ok != 1) fprintf(stderr, "\nnot accepted: '%.*s'\n", (int)o->len, o->text);
    CU_ASSERT_EQUAL(ok, 1);
    grammar_free(g);
}

static void test_mixed_batch(void) {
    constraint_spec js = {CONSTRAINT_JSON_SCHEMA, SCHEMA, 0, NULL, 0};
    constraint_spec re = {CONSTRAINT_REGEX, "[a-z]{3,8}( [a-z]{2,5}){1,3}\\.", 0, NULL, 0};
    rq q[6] = {{"free1", NULL, 5, 40}, {"js1", &js, 6, 120}, {"free2", NULL, 7, 40},
               {"re1", &re, 8, 60},   {"js2", &js, 9, 120},  {"free3", NULL, 10, 40}};
    out mixed[6], alone[6];
    engine *e = open_engine(0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    run(e, q, mixed, 6);
    engine_stats st;
    engine_stats_get(e, &st);
    CU_ASSERT(st.constrained_rows > 0);
    CU_ASSERT_EQUAL(st.constraint_compiles, 2);   /* js twice, compiled once */
    CU_ASSERT_EQUAL(st.constraint_cache_hits, 1);
    engine_close(e);
    int n_stop = 0;
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(mixed[i].err, 0);
        if (!q[i].c) continue;
        check_valid(q[i].c, &mixed[i]);
        n_stop += mixed[i].reason == ENGINE_FINISH_STOP;
    }
    CU_ASSERT(n_stop >= 2);
    /* Each request alone, on a fresh engine: the same tokens. */
    for (int i = 0; i < 6; i++) {
        e = open_engine(0, 1);
        run(e, &q[i], &alone[i], 1);
        engine_close(e);
        CU_ASSERT_EQUAL(alone[i].n, mixed[i].n);
        CU_ASSERT(!memcmp(alone[i].toks, mixed[i].toks, (size_t)mixed[i].n * sizeof(int32_t)));
        CU_ASSERT_EQUAL(alone[i].reason, mixed[i].reason);
    }
}

static void test_preemption(void) {
    constraint_spec js = {CONSTRAINT_JSON_SCHEMA, SCHEMA, 0, NULL, 0};
    rq q[8];
    char ids[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof ids[i], "p%d", i);
        q[i] = (rq){ids[i], i % 2 ? NULL : &js, (uint64_t)(100 + i), 100};
    }
    out big[8], small[8];
    engine *e = open_engine(0, 0);
    run(e, q, big, 8);
    engine_close(e);
    /* A KV budget that forces preemption and recompute (and prefix reuse). */
    e = open_engine((size_t)12 * 16 * 2 * 5 * 32 * 2, 1); /* 12 blocks of 16 tokens, F16 K+V */
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    run(e, q, small, 8);
    engine_stats st;
    engine_stats_get(e, &st);
    engine_close(e);
    if (!st.n_preemptions) fprintf(stderr, "\nnote: no preemption happened\n");
    CU_ASSERT(st.n_preemptions > 0);
    for (int i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(small[i].err, 0);
        CU_ASSERT_EQUAL(small[i].n, big[i].n);
        CU_ASSERT(!memcmp(small[i].toks, big[i].toks, (size_t)big[i].n * sizeof(int32_t)));
        if (q[i].c) check_valid(q[i].c, &small[i]);
    }
}

static void test_bad_constraint(void) {
    engine *e = open_engine(0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    constraint_spec g = {CONSTRAINT_GRAMMAR, "root ::= \"a\" b\n", 0, NULL, 0};
    engine_request r = engine_request_default();
    r.id = "bad";
    r.prompt = "x";
    r.constraint = &g;
    inf_error err = {0};
    CU_ASSERT_EQUAL(engine_add(e, &r, &err), INF_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "request 'bad': grammar: line 1, column 14: undefined rule 'b'");
    CU_ASSERT_FALSE(engine_has_work(e));
    engine_close(e);
}

static void test_corpus(void) {
    const char *shared = tu_shared_dir();
    if (!shared) {
        tu_skip("../shared absent: the corpus needs ../shared/grammars");
        return;
    }
    if (system("python3 -c 'import jsonschema' 2>/dev/null") != 0) {
        tu_skip("python3-jsonschema is not installed (make deps)");
        return;
    }
    char bin[1024];
    snprintf(bin, sizeof bin, "%s", tu_bin("inferno-model"));
    char *slash = strrchr(bin, '/');
    if (slash) *slash = 0;
    char *argv[] = {"/usr/bin/python3", "tests/constraint/run.py", bin, (char *)shared, (char *)tu_tmpfile("constraint_run"), NULL};
    char *outp = NULL;
    int rc = tu_run_capture(argv, &outp);
    fprintf(stderr, "\n%s", outp ? outp : "");
    CU_ASSERT_EQUAL(rc, 0);
    free(outp);
}

void test_register_constraint(void) {
    CU_pSuite s = CU_add_suite("constraint", suite_init, NULL);
    CU_add_test(s, "choice trie and regex: accepted strings, refused features", test_choice_regex);
    CU_add_test(s, "JSON Schema: bounds, required, extra keys; response_format", test_schema_strings);
    CU_add_test(s, "mixed batch: free rows as alone, constrained rows valid, cache", test_mixed_batch);
    CU_add_test(s, "preemption and recompute keep constrained outputs", test_preemption);
    CU_add_test(s, "an invalid grammar fails engine_add with its message", test_bad_constraint);
    CU_add_test(s, "corpus at temperature 1 vs python checkers", test_corpus);
}
