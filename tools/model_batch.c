/* model_batch.c - `inferno-model generate FILE --batch PROMPTS.jsonl`: every
 * request of the file runs concurrently through the engine's scheduler, each
 * admitted at its arrival_ms offset; one JSON object per finished request,
 * then one summary object. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "json.h"
#include "jsonschema.h"
#include "model_generate.h"
#include "tokenizer.h"

typedef struct batch_req {
    char id[ENGINE_ID_MAX + 1];
    int32_t *prompt;
    size_t n_prompt;
    sampler_params params;
    gen_constraint constraint;
    int priority;
    double arrival_ms;
    int added, done;
    int32_t *ids;
    size_t n_ids, cap_ids;
    char *text;
    size_t text_len, text_cap;
    double ttft_ms;
} batch_req;

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int json_int_field(const json_value *o, const char *k, int *out, inf_error *err) {
    const json_value *v = json_get(o, k);
    if (!v) return 0;
    if (v->type != JSON_NUMBER || v->number != floor(v->number) || fabs(v->number) > 2e9)
        return inf_error_set(err, INF_EINVAL, "field '%s' must be an integer", k);
    *out = (int)v->number;
    return 0;
}

static int json_float_field(const json_value *o, const char *k, float *out, inf_error *err) {
    const json_value *v = json_get(o, k);
    if (!v) return 0;
    if (v->type != JSON_NUMBER) return inf_error_set(err, INF_EINVAL, "field '%s' must be a number", k);
    *out = (float)v->number;
    return 0;
}

/* Sampling fields of one request object, over the command-line defaults. */
static int parse_params(const json_value *o, sampler_params *p, inf_error *err) {
    int rc;
    if ((rc = json_int_field(o, "max_tokens", &p->max_tokens, err)) ||
        (rc = json_int_field(o, "min_tokens", &p->min_tokens, err)) ||
        (rc = json_int_field(o, "top_k", &p->top_k, err)) ||
        (rc = json_int_field(o, "logprobs", &p->logprobs, err)) ||
        (rc = json_float_field(o, "temperature", &p->temperature, err)) ||
        (rc = json_float_field(o, "top_p", &p->top_p, err)) ||
        (rc = json_float_field(o, "min_p", &p->min_p, err)) ||
        (rc = json_float_field(o, "repetition_penalty", &p->repetition_penalty, err)) ||
        (rc = json_float_field(o, "presence_penalty", &p->presence_penalty, err)) ||
        (rc = json_float_field(o, "frequency_penalty", &p->frequency_penalty, err)))
        return rc;
    const json_value *v;
    if ((v = json_get(o, "seed")) && v->type != JSON_NULL) {
        if (v->type != JSON_NUMBER || v->number < 0 || v->number != floor(v->number))
            return inf_error_set(err, INF_EINVAL, "field 'seed' must be a non-negative integer");
        p->has_seed = 1;
        p->seed = (uint64_t)v->number;
    }
    if ((v = json_get(o, "ignore_eos")) && v->type == JSON_BOOL) p->ignore_eos = v->boolean;
    if ((v = json_get(o, "stop"))) {
        if (v->type == JSON_STRING) {
            if ((rc = sampler_params_add_stop(p, v->str, err))) return rc;
        } else if (v->type == JSON_ARRAY) {
            for (size_t i = 0; i < v->n; i++) {
                if (v->items[i].type != JSON_STRING)
                    return inf_error_set(err, INF_EINVAL, "field 'stop' must hold strings");
                if ((rc = sampler_params_add_stop(p, v->items[i].str, err))) return rc;
            }
        }
    }
    if ((v = json_get(o, "stop_token_ids")) && v->type == JSON_ARRAY)
        for (size_t i = 0; i < v->n; i++)
            if ((rc = sampler_params_add_stop_token(p, (int32_t)v->items[i].number, err))) return rc;
    if ((v = json_get(o, "logit_bias")) && v->type == JSON_OBJECT)
        for (size_t i = 0; i < v->n; i++)
            if ((rc = sampler_params_add_logit_bias(p, (int32_t)atol(v->keys[i]),
                                                    (float)v->items[i].number, err)))
                return rc;
    return 0;
}

/* The constraint fields of one request object (at most one of them). */
static int parse_constraint(const json_value *o, gen_constraint *c, inf_error *err) {
    static const char *const names[] = {"response_format", "grammar", "regex", "choice"};
    const json_value *v = NULL;
    int which = -1;
    for (int k = 0; k < 4; k++) {
        const json_value *x = json_get(o, names[k]);
        if (!x || x->type == JSON_NULL) continue;
        if (which >= 0)
            return inf_error_set(err, INF_EINVAL, "fields '%s' and '%s' exclude each other", names[which], names[k]);
        which = k;
        v = x;
    }
    if (which < 0) return 0;
    if (which == 3) {
        if (v->type != JSON_ARRAY || !v->n) return inf_error_set(err, INF_EINVAL, "field 'choice' must be a non-empty array of strings");
        c->choices = calloc(v->n, sizeof *c->choices);
        if (!c->choices) return inf_error_set(err, INF_ENOMEM, "out of memory");
        for (size_t i = 0; i < v->n; i++) {
            if (v->items[i].type != JSON_STRING) return inf_error_set(err, INF_EINVAL, "field 'choice' must hold strings");
            if (!(c->choices[i] = strdup(v->items[i].str))) return inf_error_set(err, INF_ENOMEM, "out of memory");
            c->n_choices++;
        }
        c->spec.kind = CONSTRAINT_CHOICE;
        c->spec.choices = (const char *const *)c->choices;
        c->spec.n_choices = c->n_choices;
        return 0;
    }
    if (which == 0 && v->type == JSON_OBJECT) {
        int rc = jsonschema_value_text(v, &c->text, err);
        if (rc) return rc;
    } else if (v->type == JSON_STRING) {
        if (!(c->text = strndup(v->str, v->len))) return inf_error_set(err, INF_ENOMEM, "out of memory");
    } else {
        return inf_error_set(err, INF_EINVAL, "field '%s' must be a string%s", names[which],
                             which == 0 ? " or an object" : "");
    }
    c->spec.kind = which == 0 ? CONSTRAINT_RESPONSE_FORMAT : which == 1 ? CONSTRAINT_GRAMMAR : CONSTRAINT_REGEX;
    c->spec.text = c->text;
    c->spec.len = strlen(c->text);
    return 0;
}

/* One line of the batch file into r (prompt tokenized like `tokenize`). */
static int parse_line(const engine *e, const char *line, size_t len, int lineno,
                      const sampler_params *defaults, int add_bos, batch_req *r, inf_error *err) {
    json_value o;
    int rc = json_parse(line, len, &o, err);
    if (rc) return inf_error_wrap(err, rc, "line %d", lineno);
    if (o.type != JSON_OBJECT) {
        json_free(&o);
        return inf_error_set(err, INF_EINVAL, "line %d: not a JSON object", lineno);
    }
    rc = sampler_params_copy(&r->params, defaults, err);
    const json_value *v = json_get(&o, "id");
    if (v && v->type == JSON_STRING && v->len <= ENGINE_ID_MAX) snprintf(r->id, sizeof r->id, "%s", v->str);
    else snprintf(r->id, sizeof r->id, "req-%d", lineno);
    if (!rc) rc = parse_params(&o, &r->params, err);
    if (!rc && (rc = parse_constraint(&o, &r->constraint, err))) inf_error_wrap(err, rc, "line %d", lineno);
    if (!rc) rc = json_int_field(&o, "priority", &r->priority, err);
    if (!rc && (v = json_get(&o, "arrival_ms")) && v->type == JSON_NUMBER) r->arrival_ms = v->number;
    if (!rc && (v = json_get(&o, "prompt_ids")) && v->type == JSON_ARRAY) {
        r->prompt = malloc((v->n ? v->n : 1) * sizeof(int32_t));
        if (!r->prompt) rc = inf_error_set(err, INF_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < v->n; i++) r->prompt[i] = (int32_t)v->items[i].number;
        r->n_prompt = v->n;
    } else if (!rc && (v = json_get(&o, "prompt")) && v->type == JSON_STRING) {
        rc = tok_encode(engine_tokenizer(e), v->str, v->len, add_bos, 0, &r->prompt, &r->n_prompt, err);
    } else if (!rc) {
        rc = inf_error_set(err, INF_EINVAL, "line %d: needs \"prompt\" or \"prompt_ids\"", lineno);
    }
    json_free(&o);
    return rc;
}

static void print_ids(const int32_t *ids, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    putchar(']');
}

static void append(batch_req *r, const engine_event *ev) {
    if (r->n_ids + (size_t)ev->n_tokens > r->cap_ids) {
        r->cap_ids = r->cap_ids * 2 + (size_t)ev->n_tokens + 16;
        r->ids = realloc(r->ids, r->cap_ids * sizeof(int32_t));
    }
    if (r->text_len + ev->text_len + 1 > r->text_cap) {
        r->text_cap = r->text_cap * 2 + ev->text_len + 64;
        r->text = realloc(r->text, r->text_cap);
    }
    if (!r->ids || !r->text) return; /* out of memory: keep running, output truncated */
    memcpy(r->ids + r->n_ids, ev->tokens, (size_t)ev->n_tokens * sizeof(int32_t));
    r->n_ids += (size_t)ev->n_tokens;
    if (ev->text_len) memcpy(r->text + r->text_len, ev->text, ev->text_len);
    r->text_len += ev->text_len;
    r->text[r->text_len] = '\0';
}

static void print_result(const batch_req *r, const engine_event *ev) {
    printf("{\"id\":");
    json_write_str(stdout, r->id, strlen(r->id));
    printf(",\"prompt_ids\":");
    print_ids(r->prompt, r->n_prompt);
    if (ev->type == ENGINE_EVENT_ERROR) {
        printf(",\"error\":");
        json_write_str(stdout, ev->message ? ev->message : "", ev->message ? strlen(ev->message) : 0);
        printf("}\n");
        return;
    }
    printf(",\"ids\":");
    print_ids(r->ids, r->n_ids);
    printf(",\"text\":");
    json_write_str(stdout, r->text ? r->text : "", r->text_len);
    printf(",\"finish_reason\":\"%s\",\"ttft_ms\":%.2f,\"queue_ms\":%.2f,\"e2e_ms\":%.2f,"
           "\"preemptions\":%d,\"prompt_tokens\":%d,\"completion_tokens\":%d,\"cached_tokens\":%d}\n",
           engine_finish_name(ev->reason), ev->timings.ttft_ms, ev->timings.queue_ms,
           ev->timings.e2e_ms, ev->n_preemptions, ev->usage.prompt_tokens,
           ev->usage.completion_tokens, ev->usage.cached_tokens);
    fflush(stdout);
}

static void print_add_error(const batch_req *r, const char *msg) {
    printf("{\"id\":");
    json_write_str(stdout, r->id, strlen(r->id));
    printf(",\"error\":");
    json_write_str(stdout, msg, strlen(msg));
    printf("}\n");
}

static int load_batch(engine *e, const char *path, const sampler_params *defaults, int add_bos,
                      batch_req **out, int *n_out, inf_error *err) {
    char *buf;
    size_t len;
    if (gen_read_file(path, &buf, &len)) return inf_error_set(err, INF_EIO, "cannot read %s", path);
    int n = 0, cap = 0, rc = 0, lineno = 0;
    batch_req *reqs = NULL;
    for (char *line = buf; !rc && line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
        lineno++;
        size_t s = 0;
        while (s < ll && (line[s] == ' ' || line[s] == '\t' || line[s] == '\r')) s++;
        if (s < ll) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                batch_req *nr = realloc(reqs, (size_t)cap * sizeof *nr);
                if (!nr) { rc = inf_error_set(err, INF_ENOMEM, "out of memory"); break; }
                reqs = nr;
            }
            memset(&reqs[n], 0, sizeof reqs[n]);
            rc = parse_line(e, line, ll, lineno, defaults, add_bos, &reqs[n], err);
            n++;
        }
        line += ll + 1;
    }
    free(buf);
    *out = reqs;
    *n_out = n;
    return rc;
}

static void free_batch(batch_req *reqs, int n) {
    for (int i = 0; i < n; i++) {
        free(reqs[i].prompt);
        free(reqs[i].ids);
        free(reqs[i].text);
        sampler_params_free(&reqs[i].params);
        gen_constraint_free(&reqs[i].constraint);
    }
    free(reqs);
}

/* Adds every request whose arrival offset has passed. */
static void admit_due(engine *e, batch_req *reqs, int n, int64_t start_ms, double elapsed_ms,
                      const constraint_spec *dflt, int *n_done) {
    for (int i = 0; i < n; i++) {
        batch_req *r = &reqs[i];
        if (r->added || r->arrival_ms > elapsed_ms) continue;
        r->added = 1;
        engine_request q = engine_request_default();
        q.id = r->id;
        q.prompt_tokens = r->prompt;
        q.n_prompt_tokens = (int)r->n_prompt;
        q.params = &r->params;
        q.priority = r->priority;
        q.arrival_ms = start_ms + (int64_t)r->arrival_ms;
        q.user = r;
        q.constraint = r->constraint.spec.kind != CONSTRAINT_NONE ? &r->constraint.spec : dflt;
        inf_error err = {0};
        if (engine_add(e, &q, &err)) {
            print_add_error(r, err.msg);
            r->done = 1;
            (*n_done)++;
        }
    }
}

int gen_batch(engine *e, int json, const char *path, const sampler_params *defaults,
              const constraint_spec *dflt_constraint, int add_bos, inf_error *err) {
    (void)json; /* batch output is always JSON lines */
    batch_req *reqs = NULL;
    int n = 0;
    int rc = load_batch(e, path, defaults, add_bos, &reqs, &n, err);
    if (rc) { free_batch(reqs, n); return rc; }
    int64_t start_ms = wall_ms();
    double t0 = mono_s();
    int n_done = 0;
    uint64_t generated = 0;
    while (n_done < n && !rc) {
        admit_due(e, reqs, n, start_ms, (mono_s() - t0) * 1000.0, dflt_constraint, &n_done);
        if (!engine_has_work(e)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        const engine_event *ev;
        int n_ev;
        if ((rc = engine_step(e, &ev, &n_ev, err))) break;
        for (int k = 0; k < n_ev; k++) {
            batch_req *r = ev[k].user;
            if (ev[k].type == ENGINE_EVENT_TOKEN) {
                append(r, &ev[k]);
                generated += (uint64_t)ev[k].n_tokens;
            } else {
                print_result(r, &ev[k]);
                r->done = 1;
                n_done++;
            }
        }
    }
    double elapsed = mono_s() - t0;
    engine_stats st;
    engine_stats_get(e, &st);
    if (!rc)
        printf("{\"summary\":true,\"requests\":%d,\"elapsed_s\":%.3f,\"generated_tokens\":%llu,"
               "\"generated_tokens_per_s\":%.2f,\"prefix_cache_hit_tokens\":%llu,"
               "\"prefix_cache_hit_rate\":%.4f,\"preemptions\":%llu,\"prompt_tokens_computed\":%llu}\n",
               n, elapsed, (unsigned long long)generated, elapsed > 0 ? generated / elapsed : 0.0,
               (unsigned long long)st.prefix_hit_tokens, st.prefix_hit_rate,
               (unsigned long long)st.n_preemptions, (unsigned long long)st.prompt_tokens_computed);
    free_batch(reqs, n);
    return rc;
}
