/* constraint.c - constraint specs -> GBNF, response_format, the choice trie
 * and the compiled-grammar cache (constraint.h). */
#include "constraint.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gtext.h"
#include "jsonschema.h"
#include "regex.h"
#include "tools/json.h"

const char *constraint_kind_name(constraint_kind k) {
    switch (k) {
    case CONSTRAINT_GRAMMAR: return "grammar";
    case CONSTRAINT_JSON_SCHEMA: return "json_schema";
    case CONSTRAINT_JSON_OBJECT: return "json_object";
    case CONSTRAINT_REGEX: return "regex";
    case CONSTRAINT_CHOICE: return "choice";
    case CONSTRAINT_RESPONSE_FORMAT: return "response_format";
    default: return "none";
    }
}

/* ---- choice: a trie over code points ---- */

static size_t cp_len(unsigned char c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct choice_job {
    size_t lo, hi, depth;
    int id;
} choice_job;

/* Rule c<id> for the strings s[lo..hi) (sorted, sharing their first depth
 * bytes): one alternative per distinct next character, "" if one ends here. */
static void choice_rule(gtext *t, char **s, size_t lo, size_t hi, size_t depth, int id, int *next_id,
                        choice_job **jobs, size_t *n_jobs, size_t *cap_jobs) {
    gtext_printf(t, "c%d ::= ", id);
    int first = 1;
    size_t i = lo;
    if (s[i][depth] == 0) {
        gtext_puts(t, "\"\"");
        first = 0;
        i++;
    }
    while (i < hi) {
        size_t l = cp_len((unsigned char)s[i][depth]), j = i + 1;
        while (j < hi && !memcmp(s[j] + depth, s[i] + depth, l)) j++;
        /* Longest common prefix of s[i..j) from depth, whole characters. */
        size_t p = depth + l;
        for (;;) {
            unsigned char c = (unsigned char)s[i][p];
            if (!c) break;
            size_t cl = cp_len(c), k;
            for (k = i + 1; k < j; k++)
                if (memcmp(s[k] + p, s[i] + p, cl)) break;
            if (k < j) break;
            p += cl;
        }
        if (!first) gtext_puts(t, " | ");
        first = 0;
        gtext_literal(t, s[i] + depth, p - depth);
        if (!(j == i + 1 && s[i][p] == 0)) {
            int cid = (*next_id)++;
            gtext_printf(t, " c%d", cid);
            if (*n_jobs == *cap_jobs) {
                size_t cap = *cap_jobs ? 2 * *cap_jobs : 16;
                choice_job *q = realloc(*jobs, cap * sizeof *q);
                if (!q) {
                    t->failed = 1;
                    return;
                }
                *jobs = q;
                *cap_jobs = cap;
            }
            (*jobs)[(*n_jobs)++] = (choice_job){i, j, p, cid};
        }
        i = j;
    }
    gtext_puts(t, "\n");
}

static int choice_gbnf(const constraint_spec *spec, char **gbnf, inf_error *err) {
    if (!spec->choices || spec->n_choices == 0)
        return inf_error_set(err, INF_EINVAL, "choice: the list is empty");
    char **s = malloc(spec->n_choices * sizeof *s);
    if (!s) return inf_error_set(err, INF_ENOMEM, "choice: out of memory");
    for (size_t i = 0; i < spec->n_choices; i++) {
        if (!spec->choices[i] || !gtext_valid_utf8(spec->choices[i], strlen(spec->choices[i]))) {
            free(s);
            return inf_error_set(err, INF_EINVAL, "choice: entry %zu is not valid UTF-8", i);
        }
        s[i] = (char *)spec->choices[i];
    }
    qsort(s, spec->n_choices, sizeof *s, cmp_str);
    size_t n = 1;
    for (size_t i = 1; i < spec->n_choices; i++)
        if (strcmp(s[i], s[n - 1])) s[n++] = s[i];
    gtext t;
    gtext_init(&t);
    gtext_puts(&t, "root ::= c0\n");
    choice_job *jobs = NULL;
    size_t n_jobs = 0, cap_jobs = 0;
    int next_id = 1;
    choice_rule(&t, s, 0, n, 0, 0, &next_id, &jobs, &n_jobs, &cap_jobs);
    for (size_t k = 0; k < n_jobs && !t.failed; k++) {
        choice_job j = jobs[k];
        choice_rule(&t, s, j.lo, j.hi, j.depth, j.id, &next_id, &jobs, &n_jobs, &cap_jobs);
    }
    free(jobs);
    free(s);
    return gtext_take(&t, gbnf, err);
}

/* ---- response_format ---- */

static int response_format_gbnf(const char *text, size_t len, char **gbnf, inf_error *err) {
    json_value v;
    inf_error jerr = {0};
    if (json_parse(text, len, &v, &jerr))
        return inf_error_set(err, INF_EFORMAT, "response_format: not valid JSON: %s", jerr.msg);
    int rc = 0;
    const json_value *type = v.type == JSON_OBJECT ? json_get(&v, "type") : NULL;
    if (!type || type->type != JSON_STRING) {
        rc = inf_error_set(err, INF_EINVAL, "response_format: must be an object with a string \"type\"");
    } else if (!strcmp(type->str, "text")) {
        *gbnf = NULL;
    } else if (!strcmp(type->str, "json_object")) {
        *gbnf = strdup(jsonschema_any_object_gbnf());
        if (!*gbnf) rc = inf_error_set(err, INF_ENOMEM, "response_format: out of memory");
    } else if (!strcmp(type->str, "json_schema")) {
        const json_value *js = json_get(&v, "json_schema");
        const json_value *schema = js && js->type == JSON_OBJECT ? json_get(js, "schema") : NULL;
        if (!js || js->type != JSON_OBJECT)
            rc = inf_error_set(err, INF_EINVAL, "response_format: type json_schema needs a \"json_schema\" object");
        else if (!schema)
            rc = inf_error_set(err, INF_EINVAL, "response_format: json_schema has no \"schema\"");
        else
            rc = jsonschema_value_to_gbnf(schema, gbnf, err);
    } else {
        rc = inf_error_set(err, INF_EINVAL,
                           "response_format: type must be \"text\", \"json_object\" or \"json_schema\", got \"%.64s\"",
                           type->str);
    }
    json_free(&v);
    return rc;
}

int constraint_to_gbnf(const constraint_spec *spec, char **gbnf, inf_error *err) {
    *gbnf = NULL;
    size_t len = spec->text ? (spec->len ? spec->len : strlen(spec->text)) : 0;
    int needs_text = spec->kind == CONSTRAINT_GRAMMAR || spec->kind == CONSTRAINT_JSON_SCHEMA ||
                     spec->kind == CONSTRAINT_REGEX || spec->kind == CONSTRAINT_RESPONSE_FORMAT;
    if (needs_text && !spec->text)
        return inf_error_set(err, INF_EINVAL, "%s: no text", constraint_kind_name(spec->kind));
    switch (spec->kind) {
    case CONSTRAINT_NONE: return 0;
    case CONSTRAINT_GRAMMAR:
        *gbnf = strndup(spec->text, len);
        return *gbnf ? 0 : inf_error_set(err, INF_ENOMEM, "grammar: out of memory");
    case CONSTRAINT_JSON_SCHEMA: return jsonschema_to_gbnf(spec->text, len, gbnf, err);
    case CONSTRAINT_JSON_OBJECT:
        *gbnf = strdup(jsonschema_any_object_gbnf());
        return *gbnf ? 0 : inf_error_set(err, INF_ENOMEM, "json_object: out of memory");
    case CONSTRAINT_REGEX: {
        gtext t;
        gtext_init(&t);
        regex_gbnf_opts o = {"root", 0, 0};
        int rc = regex_to_gbnf(spec->text, len, &o, &t, err);
        if (rc) {
            gtext_free(&t);
            return rc;
        }
        return gtext_take(&t, gbnf, err);
    }
    case CONSTRAINT_CHOICE: return choice_gbnf(spec, gbnf, err);
    case CONSTRAINT_RESPONSE_FORMAT: return response_format_gbnf(spec->text, len, gbnf, err);
    }
    return inf_error_set(err, INF_EINVAL, "constraint kind %d is unknown", (int)spec->kind);
}

/* ---- the cache ---- */

typedef struct cc_entry {
    uint64_t hash;
    char *key;
    size_t key_len;
    grammar *g;
} cc_entry;

struct constraint_cache {
    pthread_mutex_t mu;
    cc_entry *e; /* ring of max entries */
    size_t max, n, head;
    uint64_t hits, misses;
};

int constraint_cache_create(constraint_cache **out, size_t max_entries, inf_error *err) {
    constraint_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->max = max_entries ? max_entries : 64;
        c->e = calloc(c->max, sizeof *c->e);
    }
    if (!c || !c->e) {
        free(c);
        *out = NULL;
        return inf_error_set(err, INF_ENOMEM, "out of memory for the constraint cache");
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

void constraint_cache_free(constraint_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->max; i++) {
        free(c->e[i].key);
        grammar_free(c->e[i].g);
    }
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The cache key: the kind, then the text or the length-prefixed choices. */
static int make_key(const constraint_spec *spec, gtext *k) {
    gtext_printf(k, "%d:", (int)spec->kind);
    if (spec->kind == CONSTRAINT_CHOICE) {
        for (size_t i = 0; i < spec->n_choices; i++) {
            size_t l = spec->choices[i] ? strlen(spec->choices[i]) : 0;
            gtext_printf(k, "%zu:", l);
            if (l) gtext_put(k, spec->choices[i], l);
        }
    } else if (spec->text) {
        gtext_put(k, spec->text, spec->len ? spec->len : strlen(spec->text));
    }
    return k->failed ? -1 : 0;
}

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

int constraint_cache_get(constraint_cache *c, const constraint_spec *spec, grammar **out, inf_error *err) {
    *out = NULL;
    if (spec->kind == CONSTRAINT_NONE) return 0;
    if (spec->kind == CONSTRAINT_CHOICE && (!spec->choices || !spec->n_choices))
        return inf_error_set(err, INF_EINVAL, "choice: the list is empty");
    gtext k;
    gtext_init(&k);
    if (make_key(spec, &k)) {
        gtext_free(&k);
        return inf_error_set(err, INF_ENOMEM, "out of memory for a constraint");
    }
    uint64_t h = fnv(k.s, k.len);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->max; i++) {
        cc_entry *e = &c->e[i];
        if (e->key && e->hash == h && e->key_len == k.len && !memcmp(e->key, k.s, k.len)) {
            *out = e->g ? grammar_ref(e->g) : NULL;
            c->hits++;
            pthread_mutex_unlock(&c->mu);
            gtext_free(&k);
            return 0;
        }
    }
    c->misses++;
    pthread_mutex_unlock(&c->mu);
    /* Compile outside the lock: a big schema must not stall other lookups. */
    char *gbnf = NULL;
    grammar *g = NULL;
    int rc = constraint_to_gbnf(spec, &gbnf, err);
    if (!rc && gbnf) rc = grammar_parse(&g, gbnf, strlen(gbnf), err);
    free(gbnf);
    if (rc) {
        gtext_free(&k);
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    cc_entry *e = &c->e[c->head];
    free(e->key);
    grammar_free(e->g);
    e->hash = h;
    e->key_len = k.len;
    e->key = k.s;
    e->g = g ? grammar_ref(g) : NULL;
    c->head = (c->head + 1) % c->max;
    if (c->n < c->max) c->n++;
    pthread_mutex_unlock(&c->mu);
    *out = g;
    return 0;
}

void constraint_cache_counts(constraint_cache *c, uint64_t *hits, uint64_t *misses) {
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
