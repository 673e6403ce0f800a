/* test_grammar.c - GBNF parser and stack-set matcher: syntax, errors,
 * UTF-8 classes, repetition, acceptance of hand-picked strings, and the
 * ../shared/grammars files compile. */
#include <stdlib.h>
#include <string.h>

#include "grammar.h"
#include "testutil.h"

static grammar *must_parse(const char *text) {
    grammar *g = NULL;
    inf_error err = {0};
    int rc = grammar_parse(&g, text, 0, &err);
    if (rc) fprintf(stderr, "parse failed: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return g;
}

static int acc(const grammar *g, const char *s) { return grammar_accepts(g, s, strlen(s), NULL); }

static void test_basic(void) {
    grammar *g = must_parse("root ::= \"ab\" [c-e]+ (\"x\" | \"yz\")? # comment\n");
    CU_ASSERT_EQUAL(acc(g, "abc"), 1);
    CU_ASSERT_EQUAL(acc(g, "abcdex"), 1);
    CU_ASSERT_EQUAL(acc(g, "abeyz"), 1);
    CU_ASSERT_EQUAL(acc(g, "ab"), 0);
    CU_ASSERT_EQUAL(acc(g, "abcy"), 0);
    CU_ASSERT_EQUAL(acc(g, "abcf"), 0);
    grammar_free(g);

    g = must_parse("root ::= a{2,3} b{2} c{,2} d{1,}\na ::= \"a\"\nb ::= \"b\"\nc ::= \"c\"\nd ::= \"d\"\n");
    CU_ASSERT_EQUAL(acc(g, "aabbd"), 1);
    CU_ASSERT_EQUAL(acc(g, "aaabbccddd"), 1);
    CU_ASSERT_EQUAL(acc(g, "abbd"), 0);
    CU_ASSERT_EQUAL(acc(g, "aaaabbd"), 0);
    CU_ASSERT_EQUAL(acc(g, "aabbcccd"), 0);
    CU_ASSERT_EQUAL(acc(g, "aabb"), 0);
    grammar_free(g);

    /* Multi-line alternatives inside parentheses, empty alternative. */
    g = must_parse("root ::= (\n  \"x\" |\n  \"y\"\n) ws\nws ::= | \" \"\n");
    CU_ASSERT_EQUAL(acc(g, "x"), 1);
    CU_ASSERT_EQUAL(acc(g, "y "), 1);
    CU_ASSERT_EQUAL(acc(g, "y  "), 0);
    grammar_free(g);
}

static void test_utf8(void) {
    grammar *g = must_parse("root ::= [^a]* \"\\u00e9\" [\\u4e00-\\u9fff] .\n");
    CU_ASSERT_EQUAL(acc(g, "\xc3\xa9\xe4\xb8\x80z"), 1);           /* é 一 z */
    CU_ASSERT_EQUAL(acc(g, "b\xf0\x9f\x98\x80\xc3\xa9\xe9\xbf\xbf\xc3\xa9"), 1); /* b 😀 é 鿿 é */
    CU_ASSERT_EQUAL(acc(g, "a\xc3\xa9\xe4\xb8\x80z"), 0);
    CU_ASSERT_EQUAL(acc(g, "\xc3\xa9\xe3\x80\x80z"), 0);           /* U+3000 outside the range */
    CU_ASSERT_EQUAL(acc(g, "\xed\xa0\x80\xc3\xa9\xe4\xb8\x80z"), 0); /* a surrogate is never valid */
    CU_ASSERT_EQUAL(acc(g, "\xc0\x80\xc3\xa9\xe4\xb8\x80z"), 0);   /* overlong */
    grammar_free(g);

    /* A character split across two feeds. */
    g = must_parse("root ::= \"\xe6\x97\xa5\" [0-9]\n");
    grammar_matcher *m;
    CU_ASSERT_EQUAL_FATAL(grammar_matcher_create(&m, g, NULL), 0);
    CU_ASSERT_EQUAL(grammar_matcher_accept_bytes(m, "\xe6", 1, NULL), 0);
    CU_ASSERT_EQUAL(grammar_matcher_can_end(m), 0);
    CU_ASSERT_EQUAL(grammar_matcher_accept_bytes(m, "\x97\xa5" "7", 3, NULL), 0);
    CU_ASSERT_EQUAL(grammar_matcher_done(m), 1);
    inf_error err = {0};
    CU_ASSERT_EQUAL(grammar_matcher_accept_bytes(m, "1", 1, &err), INF_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "grammar rejects byte 0x31 at output offset 4");
    grammar_matcher_free(m);
    grammar_free(g);
}

static void expect_error(const char *text, int code, const char *msg) {
    grammar *g = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL(grammar_parse(&g, text, 0, &err), code);
    CU_ASSERT_PTR_NULL(g);
    if (strcmp(err.msg, msg)) fprintf(stderr, "got '%s'\nwant '%s'\n", err.msg, msg);
    CU_ASSERT_STRING_EQUAL(err.msg, msg);
}

static void test_errors(void) {
    expect_error("root ::= foo\n", INF_EINVAL, "grammar: line 1, column 10: undefined rule 'foo'");
    expect_error("a ::= \"x\"\n", INF_EINVAL, "grammar: no rule named 'root'");
    expect_error("root ::= \"x\"\nroot ::= \"y\"\n", INF_EINVAL, "grammar: rule 'root' is defined twice");
    expect_error("root ::= root \"x\" | \"y\"\n", INF_EINVAL, "grammar: rule 'root' is left-recursive");
    expect_error("root ::= a\na ::= b? a \"x\"\nb ::= \"b\"\n", INF_EINVAL, "grammar: rule 'a' is left-recursive");
    expect_error("root = \"x\"\n", INF_EFORMAT, "grammar: line 1, column 6: expecting ::=");
    expect_error("root ::= \"x\n", INF_EFORMAT, "grammar: line 2, column 1: unexpected end of input in a literal");
    expect_error("root ::= [z-a]\n", INF_EFORMAT, "grammar: line 1, column 14: character range is reversed");
    expect_error("root ::= \"\\q\"\n", INF_EFORMAT, "grammar: line 1, column 11: unknown escape");
    expect_error("root ::= \"x\"{3,2}\n", INF_EFORMAT,
                 "grammar: line 1, column 17: repetition maximum is below its minimum");
    expect_error("root ::= * \"x\"\n", INF_EFORMAT,
                 "grammar: line 1, column 12: expecting an item before the repetition operator");
    expect_error("root ::= (\"x\"\n", INF_EFORMAT, "grammar: line 2, column 1: expecting ')'");
    expect_error("root ::= \"x\" )\n", INF_EFORMAT, "grammar: line 1, column 14: expecting newline or end");
    expect_error("root ::= \"x\"{20000}\n", INF_ERANGE, "grammar: repetition count above 10000");
}

static void test_shared(void) {
    const char *names[] = {"json", "json_arr", "arithmetic", "c", "chess", "english", "japanese", "list"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[256];
        snprintf(path, sizeof path, "grammars/%s.gbnf", names[i]);
        const char *full = tu_shared_file(path);
        size_t len;
        char *text = full ? tu_read_file(full, &len) : NULL;
        if (!text) {
            fprintf(stderr, "skip: %s absent\n", path);
            continue;
        }
        grammar *g = NULL;
        inf_error err = {0};
        int rc = grammar_parse(&g, text, len, &err);
        if (rc) fprintf(stderr, "%s: %s\n", path, err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        if (!strcmp(names[i], "json")) {
            CU_ASSERT_EQUAL(acc(g, "{\"a\": [1, 2.5e3, \"x\\u00e9\", true, null, {}]}"), 1);
            CU_ASSERT_EQUAL(acc(g, "{\"a\": [1,]}"), 0);
        }
        if (!strcmp(names[i], "arithmetic")) {
            CU_ASSERT_EQUAL(acc(g, "x1+3=(a+2*b)\n"), 1);
            CU_ASSERT_EQUAL(acc(g, "x1=(a+2*b\n"), 0);
        }
        grammar_free(g);
        free(text);
    }
}

void test_register_grammar(void) {
    CU_pSuite s = CU_add_suite("grammar", NULL, NULL);
    CU_add_test(s, "literals, classes, repetition, groups", test_basic);
    CU_add_test(s, "UTF-8 classes, split characters", test_utf8);
    CU_add_test(s, "syntax and semantic errors", test_errors);
    CU_add_test(s, "../shared/grammars compile", test_shared);
}
