/* test_jinja.c - the chat-template interpreter against Debian's python3-jinja2
 * set up as Hugging Face sets it up. tests/jinja_ref.py renders every case with
 * jinja2 at test time; nothing expected here comes from our own output.
 *
 *   jinja_chat:     every template in ../shared/chat_templates x the
 *                   conversations of jinja_ref.py, through `inferno-model
 *                   chat-render` (byte-identical, or refused where jinja2 refuses,
 *                   with raise_exception's message)
 *   jinja_features: the interpreter's features, rendered in process
 *   jinja_bounds:   hostile templates end in an error, not a crash
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "jinja.h"
#include "testutil.h"

#define REF_NOW "1764700000"

static const char *ref_dir(void) {
    static char dir[1024];
    static int state; /* 0 not tried, 1 ok, -1 failed */
    if (state) return state > 0 ? dir : NULL;
    state = -1;
    const char *tpl = tu_shared_file("chat_templates");
    if (!tpl) return NULL;
    if (access("/usr/bin/python3", X_OK) || system("/usr/bin/python3 -c 'import jinja2' 2>/dev/null")) return NULL;
    snprintf(dir, sizeof dir, "%s", tu_tmpfile("jinja_ref"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/jinja_ref.py '%s' '%s' %s", dir, tpl, REF_NOW);
    if (system(cmd)) return NULL;
    state = 1;
    return dir;
}

/* Splits a line into tab-separated fields in place. */
static int fields(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') { *p = 0; f[n++] = p + 1; }
    return n;
}

static char *file_or_null(const char *p, size_t *n) { return strcmp(p, "-") ? tu_read_file(p, n) : NULL; }

static void test_chat_templates(void) {
    const char *d = ref_dir();
    if (!d) { tu_skip("../shared/chat_templates or Debian's python3-jinja2 missing"); return; }
    char path[1200];
    snprintf(path, sizeof path, "%s/chat/cases.tsv", d);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[8192];
    int n = 0, same = 0, refused = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c[9];
        if (fields(line, c, 9) != 9) continue;
        n++;
        char *argv[32];
        int a = 0;
        argv[a++] = (char *)tu_bin("inferno-model");
        argv[a++] = "chat-render";
        argv[a++] = "--template"; argv[a++] = c[1];
        argv[a++] = "--messages"; argv[a++] = c[2];
        argv[a++] = "--bos"; argv[a++] = "<|bos|>";
        argv[a++] = "--eos"; argv[a++] = "<|eos|>";
        argv[a++] = "--now"; argv[a++] = REF_NOW;
        if (strcmp(c[3], "-")) { argv[a++] = "--tools"; argv[a++] = c[3]; }
        if (!strcmp(c[4], "0")) argv[a++] = "--no-generation-prompt";
        char var[4096];
        if (strcmp(c[5], "-")) { /* the conversations' vars: one {"k": v} member */
            char *js = tu_read_file(c[5], NULL);
            char *k1 = js ? strchr(js, '"') : NULL, *k2 = k1 ? strchr(k1 + 1, '"') : NULL;
            char *colon = k2 ? strchr(k2, ':') : NULL;
            if (colon) {
                size_t vl = strlen(colon + 1);
                if (vl && colon[vl] == '}') colon[vl] = 0;
                snprintf(var, sizeof var, "%.*s=%s", (int)(k2 - k1 - 1), k1 + 1, colon + 1);
                argv[a++] = "--var";
                argv[a++] = var;
            }
            free(js);
        }
        argv[a] = NULL;
        char *out = NULL;
        int rc = tu_run_capture(argv, &out);
        if (strcmp(c[6], "-")) {
            size_t en;
            char *exp = tu_read_file(c[6], &en);
            int ok = rc == 0 && out && strlen(out) == en && memcmp(out, exp, en) == 0;
            if (!ok) fprintf(stderr, "\n  %s: differs from jinja2 (rc %d)\n", c[0], rc);
            CU_ASSERT(ok);
            same += ok;
            free(exp);
        } else {
            if (rc == 0) fprintf(stderr, "\n  %s: jinja2 refused (%s) but we rendered\n", c[0], c[8]);
            CU_ASSERT(rc != 0);
            refused += rc != 0;
        }
        free(out);
    }
    fclose(f);
    fprintf(stderr, "\n  chat templates: %d cases, %d byte-identical, %d refused as jinja2 refuses\n", n, same, refused);
    CU_ASSERT(n >= 300);
}

/* raise_exception's message reaches the caller verbatim (in process: stderr of
 * the tool is not captured by tu_run_capture). */
static void test_refusal_message(void) {
    const char *tp = tu_shared_file("chat_templates/google-gemma-2-2b-it.jinja");
    if (!tp) { tu_skip("../shared/chat_templates missing"); return; }
    size_t n;
    char *src = tu_read_file(tp, &n);
    jinja_template *t = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(jinja_template_create(&t, src, n, &err), 0);
    const char *msgs = "[{\"role\": \"system\", \"content\": \"x\"}, {\"role\": \"user\", \"content\": \"hi\"}]";
    chat_render_args a = {.messages_json = msgs, .messages_json_len = strlen(msgs), .add_generation_prompt = true};
    char *out = NULL;
    size_t ol;
    CU_ASSERT_EQUAL(chat_render(t, &a, &out, &ol, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "System role not supported"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "template line 1"));
    /* structured messages with bad tool_calls JSON: the error names the field */
    chat_message m[2] = {{.role = "user", .content = "hi"}, {.role = "assistant", .tool_calls = "[{oops"}};
    chat_render_args b = {.messages = m, .n_messages = 2};
    CU_ASSERT_EQUAL(chat_render(t, &b, &out, &ol, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "messages[1].tool_calls"));
    chat_render_args c = {.messages = m, .n_messages = 1, .kwargs_json = "{\"messages\": 1}"};
    CU_ASSERT_EQUAL(chat_render(t, &c, &out, &ol, &err), INF_EINVAL);
    chat_render_args d2 = {.messages = m, .n_messages = 1, .kwargs_json = "[1]"};
    CU_ASSERT_EQUAL(chat_render(t, &d2, &out, &ol, &err), INF_EFORMAT);
    jinja_template_destroy(t);
    free(src);
}

typedef struct vars_acc { jinja_var v[32]; char *own[64]; int n, no; } vars_acc;
static int add_var(void *ctx, const char *name, const char *json, size_t len) {
    vars_acc *a = ctx;
    if (a->n >= 32) return -1;
    char *nm = strdup(name), *js = strndup(json, len);
    a->own[a->no++] = nm;
    a->own[a->no++] = js;
    a->v[a->n++] = (jinja_var){.name = nm, .json = js, .json_len = len};
    return 0;
}

static void test_features(void) {
    const char *d = ref_dir();
    if (!d) { tu_skip("../shared/chat_templates or Debian's python3-jinja2 missing"); return; }
    char path[1200];
    snprintf(path, sizeof path, "%s/features/cases.tsv", d);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[8192];
    int n = 0, ok_n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c[6];
        if (fields(line, c, 6) != 6) continue;
        n++;
        size_t sl, vl, el = 0;
        char *src = tu_read_file(c[1], &sl), *vj = tu_read_file(c[2], &vl), *exp = file_or_null(c[3], &el);
        vars_acc acc = {0};
        inf_error err = {0};
        CU_ASSERT_EQUAL(jinja_json_members(vj, vl, add_var, &acc, &err), 0);
        jinja_template *t = NULL;
        char *out = NULL;
        size_t ol = 0;
        int rc = jinja_template_create(&t, src, sl, &err);
        if (!rc) {
            jinja_render_args ra = {.vars = acc.v, .n_vars = (size_t)acc.n, .now = (time_t)atoll(REF_NOW)};
            rc = jinja_render(t, &ra, &out, &ol, &err);
        }
        int ok;
        if (exp) ok = rc == 0 && ol == el && memcmp(out, exp, el) == 0;
        else ok = rc != 0 && (strcmp(c[4], "raise") || strstr(err.msg, c[5]));
        if (!ok)
            fprintf(stderr, "\n  %s: %s (jinja2: %s; ours: rc %d %s)\n", c[0], src, exp ? exp : c[5], rc,
                    rc ? err.msg : out);
        CU_ASSERT(ok);
        ok_n += ok;
        jinja_template_destroy(t);
        free(out);
        free(src);
        free(vj);
        free(exp);
        for (int i = 0; i < acc.no; i++) free(acc.own[i]);
    }
    fclose(f);
    fprintf(stderr, "\n  interpreter features: %d cases, %d as jinja2\n", n, ok_n);
}

/* Hostile templates: every bound ends the render with an error. */
static void test_bounds(void) {
    static const char *bad[] = {
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{{ 'x' * 1000000000 }}",
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        jinja_template *t = NULL;
        inf_error err = {0};
        CU_ASSERT_EQUAL_FATAL(jinja_template_create(&t, bad[i], strlen(bad[i]), &err), 0);
        jinja_render_args ra = {.limits = {.max_output = 1 << 20, .max_memory = 32 << 20, .max_steps = 2000000}};
        char *out = NULL;
        CU_ASSERT(jinja_render(t, &ra, &out, NULL, &err) != 0);
        CU_ASSERT_PTR_NULL(out);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "template"));
        jinja_template_destroy(t);
    }
    /* nesting beyond the parser's bound */
    char deep[4000];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 500; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 500; i++) deep[k++] = ')';
    k += (size_t)snprintf(deep + k, sizeof deep - k, " }}");
    jinja_template *t = NULL;
    inf_error err = {0};
    CU_ASSERT(jinja_template_create(&t, deep, k, &err) != 0);
    CU_ASSERT_PTR_NULL(t);
}

void test_register_jinja(void) {
    CU_pSuite s = CU_add_suite("jinja", NULL, NULL);
    CU_add_test(s, "chat templates x conversations vs python3-jinja2 (chat-render)", test_chat_templates);
    CU_add_test(s, "refusals carry the template's message; bad JSON fields named", test_refusal_message);
    CU_add_test(s, "interpreter features vs python3-jinja2", test_features);
    CU_add_test(s, "recursion, loops, output, memory and nesting bounds", test_bounds);
}
