/* gw_openai.c - request bodies: parsing and validation (gw_openai.h). */
#include "gw_openai.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/json.h"

int gw_apierr_set(gw_apierr *e, int status, const char *type, const char *param, const char *code,
                  const char *fmt, ...) {
    if (!e) return -1;
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type ? type : "invalid_request_error");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(param, ...) gw_apierr_set(e, 400, "invalid_request_error", param, NULL, __VA_ARGS__)

int gw_priority_parse(const char *s) {
    if (!s) return -1;
    if (!strcasecmp(s, "high") || !strcmp(s, "0")) return 0;
    if (!strcasecmp(s, "normal") || !strcmp(s, "1")) return 1;
    if (!strcasecmp(s, "low") || !strcmp(s, "2")) return 2;
    return -1;
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void gw_params_free(gw_params *p) {
    if (!p) return;
    free(p->model);
    free_strv(p->prompts, p->n_prompts);
    for (size_t i = 0; p->prompt_ids && i < p->n_prompts; i++) free(p->prompt_ids[i]);
    free(p->prompt_ids);
    free(p->n_prompt_ids);
    for (size_t i = 0; i < p->n_messages; i++) {
        gw_msg *m = &p->messages[i];
        free(m->role);
        free(m->content);
        free(m->name);
        free(m->tool_call_id);
        free(m->tool_calls);
        free(m->reasoning_content);
    }
    free(p->messages);
    free(p->tools);
    free(p->chat_template_kwargs);
    free(p->response_format);
    free(p->grammar);
    free(p->regex);
    free_strv(p->choice, p->n_choice);
    free_strv(p->stop, p->n_stop);
    free(p->stop_token_ids);
    free(p->logit_bias);
    free(p->user);
    memset(p, 0, sizeof *p);
}

/* The JSON text of v (re-serialised compactly), for fields passed through
 * to the worker as JSON text. */
static void write_json(gw_buf *b, const json_value *v) {
    switch (v->type) {
    case JSON_NULL: gw_buf_puts(b, "null"); break;
    case JSON_BOOL: gw_buf_puts(b, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER:
        if (v->number == floor(v->number) && fabs(v->number) < 1e15) gw_buf_printf(b, "%.0f", v->number);
        else gw_buf_printf(b, "%.17g", v->number);
        break;
    case JSON_STRING: gw_buf_json_str(b, v->str, v->len); break;
    case JSON_ARRAY:
        gw_buf_puts(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i) gw_buf_puts(b, ",");
            write_json(b, &v->items[i]);
        }
        gw_buf_puts(b, "]");
        break;
    case JSON_OBJECT:
        gw_buf_puts(b, "{");
        for (size_t i = 0; i < v->n; i++) {
            if (i) gw_buf_puts(b, ",");
            gw_buf_json_str(b, v->keys[i], strlen(v->keys[i]));
            gw_buf_puts(b, ":");
            write_json(b, &v->items[i]);
        }
        gw_buf_puts(b, "}");
        break;
    }
}

static char *json_text(const json_value *v) {
    gw_buf b = {0};
    write_json(&b, v);
    if (b.oom) {
        gw_buf_free(&b);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

/* A string member that may contain NUL bytes: refused (the queue carries C strings). */
static int get_str(const json_value *o, const char *key, char **out, int required, gw_apierr *e) {
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL) {
        if (required) return gw_apierr_set(e, 400, "invalid_request_error", key, "missing_required_parameter",
                                           "Missing required parameter: '%s'.", key);
        return 0;
    }
    if (v->type != JSON_STRING) return BAD(key, "Invalid type for '%s': expected a string.", key);
    if (strlen(v->str) != v->len) return BAD(key, "Invalid value for '%s': strings must not contain NUL.", key);
    if (!(*out = strdup(v->str))) return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return 0;
}

/* A number member within [lo, hi]; absent/null leaves *out. */
static int get_num(const json_value *o, const char *key, double lo, double hi, double *out, gw_apierr *e) {
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_NUMBER || !isfinite(v->number))
        return BAD(key, "Invalid type for '%s': expected a number.", key);
    if (v->number < lo || v->number > hi)
        return BAD(key, "Invalid value for '%s': %g is outside [%g, %g].", key, v->number, lo, hi);
    *out = v->number;
    return 0;
}

static int get_int(const json_value *o, const char *key, double lo, double hi, int *out, gw_apierr *e) {
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_NUMBER || v->number != floor(v->number))
        return BAD(key, "Invalid type for '%s': expected an integer.", key);
    double d = (double)*out;
    if (get_num(o, key, lo, hi, &d, e)) return -1;
    *out = (int)d;
    return 0;
}

static int get_bool(const json_value *o, const char *key, int *out, gw_apierr *e) {
    const json_value *v = json_get(o, key);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_BOOL) return BAD(key, "Invalid type for '%s': expected a boolean.", key);
    *out = v->boolean;
    return 0;
}

/* An array of ints >= 0 (token ids). */
static int int_array(const json_value *v, const char *key, int32_t **out, size_t *n, gw_apierr *e) {
    if (v->type != JSON_ARRAY) return BAD(key, "Invalid type for '%s': expected an array of integers.", key);
    *out = calloc(v->n ? v->n : 1, sizeof **out);
    if (!*out) return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < v->n; i++) {
        const json_value *x = &v->items[i];
        if (x->type != JSON_NUMBER || x->number != floor(x->number) || x->number < 0 || x->number > 2147483647.0)
            return BAD(key, "Invalid value for '%s': item %zu is not a token id (integer >= 0).", key, i);
        (*out)[i] = (int32_t)x->number;
    }
    *n = v->n;
    return 0;
}

static int str_array(const json_value *v, const char *key, size_t max, char ***out, size_t *n, gw_apierr *e) {
    if (v->type == JSON_STRING) {
        if (!(*out = calloc(1, sizeof **out)) || !((*out)[0] = strdup(v->str)))
            return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
        *n = 1;
        return 0;
    }
    if (v->type != JSON_ARRAY) return BAD(key, "Invalid type for '%s': expected a string or an array of strings.", key);
    if (v->n > max) return BAD(key, "Invalid value for '%s': at most %zu items.", key, max);
    if (!(*out = calloc(v->n ? v->n : 1, sizeof **out)))
        return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i].type != JSON_STRING || strlen(v->items[i].str) != v->items[i].len)
            return BAD(key, "Invalid type for '%s': item %zu is not a string.", key, i);
        if (!((*out)[i] = strdup(v->items[i].str)))
            return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
        (*n)++;
    }
    return 0;
}

/* prompt: "text" | ["text", ...] | [id, ...] | [[id, ...], ...]. */
static int parse_prompt(const json_value *v, gw_params *p, gw_apierr *e) {
    if (!v || v->type == JSON_NULL)
        return gw_apierr_set(e, 400, "invalid_request_error", "prompt", "missing_required_parameter",
                             "Missing required parameter: 'prompt'.");
    size_t n = 1;
    int batch = v->type == JSON_ARRAY && v->n > 0 &&
                (v->items[0].type == JSON_STRING || v->items[0].type == JSON_ARRAY);
    if (v->type == JSON_ARRAY && batch) n = v->n;
    if (v->type != JSON_STRING && v->type != JSON_ARRAY)
        return BAD("prompt", "Invalid type for 'prompt': expected a string, an array of strings or token ids.");
    if (v->type == JSON_ARRAY && v->n == 0) return BAD("prompt", "Invalid value for 'prompt': empty array.");
    if (n > 128) return BAD("prompt", "Invalid value for 'prompt': at most 128 prompts in one request.");
    p->prompts = calloc(n, sizeof *p->prompts);
    p->prompt_ids = calloc(n, sizeof *p->prompt_ids);
    p->n_prompt_ids = calloc(n, sizeof *p->n_prompt_ids);
    if (!p->prompts || !p->prompt_ids || !p->n_prompt_ids)
        return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    p->n_prompts = n;
    for (size_t i = 0; i < n; i++) {
        const json_value *x = batch ? &v->items[i] : v;
        if (x->type == JSON_STRING) {
            if (strlen(x->str) != x->len) return BAD("prompt", "Invalid value for 'prompt': NUL byte.");
            if (!x->len) return BAD("prompt", "Invalid value for 'prompt': the prompt is empty.");
            if (!(p->prompts[i] = strdup(x->str))) return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
        } else if (x->type == JSON_ARRAY) {
            if (int_array(x, "prompt", &p->prompt_ids[i], &p->n_prompt_ids[i], e)) return -1;
            if (!p->n_prompt_ids[i]) return BAD("prompt", "Invalid value for 'prompt': empty token list.");
        } else {
            return BAD("prompt", "Invalid type for 'prompt': item %zu is neither a string nor token ids.", i);
        }
    }
    return 0;
}

/* content: "text" | [{"type":"text","text":...}, ...] -> concatenated text. */
static int msg_content(const json_value *v, size_t i, char **out, gw_apierr *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type == JSON_STRING) {
        if (strlen(v->str) != v->len) return BAD(param, "Invalid value for '%s': NUL byte.", param);
        if (!(*out = strdup(v->str))) return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    if (v->type != JSON_ARRAY) return BAD(param, "Invalid type for '%s': expected a string or an array of parts.", param);
    gw_buf b = {0};
    gw_buf_puts(&b, "");
    for (size_t k = 0; k < v->n; k++) {
        const json_value *part = &v->items[k], *ty = json_get(part, "type"), *tx = json_get(part, "text");
        if (!ty || ty->type != JSON_STRING || strcmp(ty->str, "text") || !tx || tx->type != JSON_STRING) {
            gw_buf_free(&b);
            return BAD(param, "Invalid value for '%s': only parts of type 'text' are supported.", param);
        }
        gw_buf_put(&b, tx->str, strlen(tx->str));
    }
    if (b.oom) {
        gw_buf_free(&b);
        return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    *out = b.p;
    return 0;
}

static int parse_messages(const json_value *v, gw_params *p, gw_apierr *e) {
    if (!v || v->type == JSON_NULL)
        return gw_apierr_set(e, 400, "invalid_request_error", "messages", "missing_required_parameter",
                             "Missing required parameter: 'messages'.");
    if (v->type != JSON_ARRAY) return BAD("messages", "Invalid type for 'messages': expected an array.");
    if (v->n == 0) return BAD("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1.");
    if (!(p->messages = calloc(v->n, sizeof *p->messages)))
        return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < v->n; i++) {
        const json_value *m = &v->items[i];
        gw_msg *g = &p->messages[i];
        p->n_messages++;
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (m->type != JSON_OBJECT) return BAD(param, "Invalid type for '%s': expected an object.", param);
        snprintf(param, sizeof param, "messages[%zu].role", i);
        const json_value *role = json_get(m, "role");
        if (!role || role->type != JSON_STRING)
            return gw_apierr_set(e, 400, "invalid_request_error", param, "missing_required_parameter",
                                 "Missing required parameter: '%s'.", param);
        static const char *ROLES[] = {"system", "developer", "user", "assistant", "tool", "function"};
        int ok = 0;
        for (size_t r = 0; r < sizeof ROLES / sizeof ROLES[0]; r++) ok |= !strcmp(role->str, ROLES[r]);
        if (!ok)
            return BAD(param, "Invalid value for '%s': '%s' is not one of system, developer, user, assistant, tool.",
                       param, role->str);
        if (!(g->role = strdup(role->str))) return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
        if (msg_content(json_get(m, "content"), i, &g->content, e)) return -1;
        if (get_str(m, "name", &g->name, 0, e) || get_str(m, "tool_call_id", &g->tool_call_id, 0, e) ||
            get_str(m, "reasoning_content", &g->reasoning_content, 0, e))
            return -1;
        const json_value *tc = json_get(m, "tool_calls");
        if (tc && tc->type != JSON_NULL) {
            if (tc->type != JSON_ARRAY) return BAD("tool_calls", "Invalid type for 'messages[%zu].tool_calls': expected an array.", i);
            if (!(g->tool_calls = json_text(tc))) return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
        }
        if (!g->content && !g->tool_calls && strcmp(g->role, "assistant"))
            return gw_apierr_set(e, 400, "invalid_request_error", "content", "missing_required_parameter",
                                 "Missing required parameter: 'messages[%zu].content'.", i);
    }
    return 0;
}

static int parse_logit_bias(const json_value *v, gw_params *p, gw_apierr *e) {
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_OBJECT) return BAD("logit_bias", "Invalid type for 'logit_bias': expected an object.");
    if (!(p->logit_bias = calloc(v->n ? v->n : 1, sizeof *p->logit_bias)))
        return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < v->n; i++) {
        char *end;
        long id = strtol(v->keys[i], &end, 10);
        if (end == v->keys[i] || *end || id < 0 || id > 2147483647L)
            return BAD("logit_bias", "Invalid key in 'logit_bias': '%s' is not a token id.", v->keys[i]);
        const json_value *b = &v->items[i];
        if (b->type != JSON_NUMBER || b->number < -100 || b->number > 100)
            return BAD("logit_bias", "Invalid value in 'logit_bias' for token %ld: must be a number in [-100, 100].", id);
        p->logit_bias[i].token_id = (int32_t)id;
        p->logit_bias[i].bias = (float)b->number;
        p->n_logit_bias++;
    }
    return 0;
}

/* response_format {type: text | json_object | json_schema}: kept as JSON
 * text for the worker's constraint engine; "text" means no constraint. */
static int parse_response_format(const json_value *v, gw_params *p, gw_apierr *e) {
    if (!v || v->type == JSON_NULL) return 0;
    const json_value *t = v->type == JSON_OBJECT ? json_get(v, "type") : NULL;
    if (!t || t->type != JSON_STRING)
        return BAD("response_format", "Invalid 'response_format': expected an object with a 'type'.");
    if (!strcmp(t->str, "text")) return 0;
    if (strcmp(t->str, "json_object") && strcmp(t->str, "json_schema"))
        return BAD("response_format.type", "Invalid value for 'response_format.type': '%s' is not one of text, "
                   "json_object, json_schema.", t->str);
    if (!strcmp(t->str, "json_schema")) {
        const json_value *js = json_get(v, "json_schema");
        if (!js || js->type != JSON_OBJECT || !json_get(js, "name"))
            return gw_apierr_set(e, 400, "invalid_request_error", "response_format.json_schema.name",
                                 "missing_required_parameter",
                                 "Missing required parameter: 'response_format.json_schema.name'.");
    }
    if (!(p->response_format = json_text(v))) return gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return 0;
}

static int parse_common(const json_value *o, gw_params *p, gw_apierr *e) {
    double d;
    if (get_str(o, "model", &p->model, 0, e)) return -1;
    if (!p->model) return gw_apierr_set(e, 400, "invalid_request_error", "model", "missing_required_parameter",
                                        "you must provide a model parameter");
    if (get_bool(o, "stream", &p->stream, e)) return -1;
    const json_value *so = json_get(o, "stream_options");
    if (so && so->type != JSON_NULL) {
        if (so->type != JSON_OBJECT) return BAD("stream_options", "Invalid type for 'stream_options': expected an object.");
        if (!p->stream) return BAD("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
        if (get_bool(so, "include_usage", &p->include_usage, e)) return -1;
    }
    if (get_int(o, "n", 1, 128, &p->n, e)) return -1;
    const char *mt = p->api == GW_API_CHAT && json_get(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (get_int(o, mt, 1, 1 << 24, &p->max_tokens, e)) return -1;
    d = p->temperature;
    if (get_num(o, "temperature", 0, 2, &d, e)) return -1;
    p->temperature = (float)d;
    d = p->top_p;
    if (get_num(o, "top_p", 0, 1, &d, e)) return -1;
    if (d <= 0) return BAD("top_p", "Invalid value for 'top_p': must be greater than 0 and at most 1.");
    p->top_p = (float)d;
    d = p->presence_penalty;
    if (get_num(o, "presence_penalty", -2, 2, &d, e)) return -1;
    p->presence_penalty = (float)d;
    d = p->frequency_penalty;
    if (get_num(o, "frequency_penalty", -2, 2, &d, e)) return -1;
    p->frequency_penalty = (float)d;
    const json_value *seed = json_get(o, "seed");
    if (seed && seed->type != JSON_NULL) {
        if (seed->type != JSON_NUMBER || seed->number != floor(seed->number) || fabs(seed->number) > 9.2e18)
            return BAD("seed", "Invalid type for 'seed': expected an integer.");
        p->has_seed = 1;
        p->seed = (int64_t)seed->number;
    }
    const json_value *stop = json_get(o, "stop");
    if (stop && stop->type != JSON_NULL && str_array(stop, "stop", 4, &p->stop, &p->n_stop, e)) return -1;
    if (parse_logit_bias(json_get(o, "logit_bias"), p, e)) return -1;
    if (parse_response_format(json_get(o, "response_format"), p, e)) return -1;
    if (get_str(o, "user", &p->user, 0, e)) return -1;
    /* vLLM extensions */
    if (get_int(o, "top_k", -1, 1 << 20, &p->top_k, e)) return -1;
    d = p->min_p;
    if (get_num(o, "min_p", 0, 1, &d, e)) return -1;
    p->min_p = (float)d;
    d = p->repetition_penalty;
    if (get_num(o, "repetition_penalty", 0, 1e9, &d, e)) return -1;
    if (d <= 0) return BAD("repetition_penalty", "Invalid value for 'repetition_penalty': must be greater than 0.");
    p->repetition_penalty = (float)d;
    if (get_int(o, "min_tokens", 0, 1 << 24, &p->min_tokens, e)) return -1;
    if (p->min_tokens > p->max_tokens)
        return BAD("min_tokens", "Invalid value for 'min_tokens': %d is more than max_tokens (%d).", p->min_tokens,
                   p->max_tokens);
    if (get_bool(o, "ignore_eos", &p->ignore_eos, e)) return -1;
    const json_value *sti = json_get(o, "stop_token_ids");
    if (sti && sti->type != JSON_NULL &&
        int_array(sti, "stop_token_ids", &p->stop_token_ids, &p->n_stop_token_ids, e))
        return -1;
    if (get_str(o, "guided_regex", &p->regex, 0, e) || get_str(o, "guided_grammar", &p->grammar, 0, e)) return -1;
    const json_value *gc = json_get(o, "guided_choice");
    if (gc && gc->type != JSON_NULL) {
        if (gc->type != JSON_ARRAY || !gc->n) return BAD("guided_choice", "Invalid 'guided_choice': expected a non-empty array of strings.");
        if (str_array(gc, "guided_choice", 4096, &p->choice, &p->n_choice, e)) return -1;
    }
    const json_value *pr = json_get(o, "priority");
    if (pr && pr->type != JSON_NULL) {
        if (pr->type == JSON_STRING) p->priority = gw_priority_parse(pr->str);
        else if (pr->type == JSON_NUMBER && pr->number == floor(pr->number) && pr->number >= 0 && pr->number <= 2)
            p->priority = (int)pr->number;
        else p->priority = -2;
        if (p->priority < 0)
            return BAD("priority", "Invalid value for 'priority': expected 0 (high), 1 (normal) or 2 (low), or "
                       "\"high\" | \"normal\" | \"low\".");
    }
    return 0;
}

int gw_params_parse(gw_api api, const char *body, size_t len, gw_params *p, gw_apierr *e) {
    memset(p, 0, sizeof *p);
    p->api = api;
    p->n = 1;
    p->max_tokens = api == GW_API_CHAT ? 256 : 16;
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = -1;
    p->repetition_penalty = 1.0f;
    p->logprobs = -1;
    p->priority = -1;
    p->add_generation_prompt = 1;
    json_value v;
    inf_error jerr = {0};
    if (json_parse(body, len, &v, &jerr) != 0)
        return gw_apierr_set(e, 400, "invalid_request_error", NULL, NULL,
                             "We could not parse the JSON body of your request. (%s)", jerr.msg);
    int rc = 0;
    if (v.type != JSON_OBJECT) {
        rc = BAD(NULL, "The request body must be a JSON object.");
        goto out;
    }
    if ((rc = parse_common(&v, p, e))) goto out;
    if (api == GW_API_COMPLETIONS) {
        if ((rc = parse_prompt(json_get(&v, "prompt"), p, e))) goto out;
        if ((rc = get_bool(&v, "echo", &p->echo, e))) goto out;
        const json_value *lp = json_get(&v, "logprobs");
        if (lp && lp->type != JSON_NULL) {
            int k = 0;
            if ((rc = get_int(&v, "logprobs", 0, 20, &k, e))) goto out;
            p->logprobs = k;
        }
    } else {
        if ((rc = parse_messages(json_get(&v, "messages"), p, e))) goto out;
        int want = 0, top = 0;
        if ((rc = get_bool(&v, "logprobs", &want, e)) || (rc = get_int(&v, "top_logprobs", 0, 20, &top, e))) goto out;
        if (json_get(&v, "top_logprobs") && json_get(&v, "top_logprobs")->type != JSON_NULL && !want) {
            rc = BAD("top_logprobs", "Invalid value for 'top_logprobs': 'logprobs' must be set to true.");
            goto out;
        }
        if (want) p->logprobs = top;
        const json_value *tools = json_get(&v, "tools");
        if (tools && tools->type != JSON_NULL) {
            if (tools->type != JSON_ARRAY) {
                rc = BAD("tools", "Invalid type for 'tools': expected an array.");
                goto out;
            }
            if (!(p->tools = json_text(tools))) {
                rc = gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
                goto out;
            }
        }
        const json_value *kw = json_get(&v, "chat_template_kwargs");
        if (kw && kw->type != JSON_NULL) {
            if (kw->type != JSON_OBJECT) {
                rc = BAD("chat_template_kwargs", "Invalid type for 'chat_template_kwargs': expected an object.");
                goto out;
            }
            if (!(p->chat_template_kwargs = json_text(kw))) {
                rc = gw_apierr_set(e, 500, "server_error", NULL, NULL, "out of memory");
                goto out;
            }
        }
        if ((rc = get_bool(&v, "add_generation_prompt", &p->add_generation_prompt, e))) goto out;
    }
    if (!rc && (!!p->response_format + !!p->grammar + !!p->regex + !!p->n_choice) > 1)
        rc = BAD("response_format", "Give at most one of response_format, guided_grammar, guided_regex, "
                 "guided_choice.");
    if (!rc && p->n * (int)(p->n_prompts ? p->n_prompts : 1) > 128)
        rc = BAD("n", "Invalid value for 'n': n times the number of prompts must be at most 128.");
out:
    json_free(&v);
    if (rc) gw_params_free(p);
    return rc;
}
