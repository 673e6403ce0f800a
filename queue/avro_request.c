/* avro_request.c - the inf_request value type: defaults, release, and the
 * semantic rules of the request contract (docs/protocol.md). */
#include "avro_codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void inf_request_init(inf_request *req) {
    memset(req, 0, sizeof *req);
    /* Must match the defaults in schemas/inference_request.avsc; the avro
     * suite checks them against python3-avro's reading of the file. */
    req->max_tokens = 256;
    req->min_tokens = 0;
    req->temperature = 1.0f;
    req->top_k = -1;
    req->top_p = 1.0f;
    req->min_p = 0.0f;
    req->repetition_penalty = 1.0f;
    req->presence_penalty = 0.0f;
    req->frequency_penalty = 0.0f;
    req->ignore_eos = false;
    req->stream = true;
    req->add_generation_prompt = true;
}

void inf_request_free(inf_request *req) {
    if (!req) return;
    free(req->prompt);
    free(req->prompt_token_ids);
    for (size_t i = 0; i < req->n_stop; i++) free(req->stop[i]);
    free(req->stop);
    free(req->stop_token_ids);
    free(req->logit_bias);
    free(req->reply_stream);
    for (size_t i = 0; i < req->n_metadata; i++) {
        free(req->metadata[i].key);
        free(req->metadata[i].value);
    }
    free(req->metadata);
    for (size_t i = 0; i < req->n_messages; i++) {
        inf_chat_message *m = &req->messages[i];
        free(m->role);
        free(m->content);
        free(m->name);
        free(m->tool_call_id);
        free(m->tool_calls);
        free(m->reasoning_content);
    }
    free(req->messages);
    free(req->tools);
    free(req->chat_template_kwargs);
    free(req->response_format);
    free(req->grammar);
    free(req->regex);
    for (size_t i = 0; i < req->n_choice; i++) free(req->choice[i]);
    free(req->choice);
    inf_request_init(req);
}

bool inf_request_id_valid(const char *s) {
    if (!s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok || n >= INF_REQUEST_ID_MAX) return false;
    }
    return n >= 1;
}

static int range(inf_error *err, const char *fmt, double v) {
    return inf_error_set(err, INF_ERANGE, fmt, v);
}

int inf_request_validate(const inf_request *r, inf_error *err) {
    if (!inf_request_id_valid(r->request_id))
        return inf_error_set(err, INF_EFORMAT,
                             "request_id must be 1-%d characters of [A-Za-z0-9._:-]",
                             INF_REQUEST_ID_MAX);
    int n_inputs = (r->prompt != NULL) + (r->prompt_token_ids != NULL) + (r->messages != NULL);
    if (n_inputs == 0)
        return inf_error_set(err, INF_EFORMAT, "request %s sets none of prompt, prompt_token_ids and messages",
                             r->request_id);
    if (n_inputs > 1)
        return inf_error_set(err, INF_EFORMAT,
                             "request %s sets more than one of prompt, prompt_token_ids and messages", r->request_id);
    if (r->messages && r->n_messages == 0)
        return inf_error_set(err, INF_EFORMAT, "request %s has an empty messages array", r->request_id);
    for (size_t i = 0; i < r->n_messages; i++)
        if (!r->messages[i].role || !r->messages[i].role[0])
            return inf_error_set(err, INF_EFORMAT, "request %s: messages[%zu] has an empty role", r->request_id, i);
    int n_constraints = (r->response_format != NULL) + (r->grammar != NULL) + (r->regex != NULL) + (r->choice != NULL);
    if (n_constraints > 1)
        return inf_error_set(err, INF_EFORMAT,
                             "request %s sets more than one of response_format, grammar, regex and choice",
                             r->request_id);
    if (r->choice && r->n_choice == 0)
        return inf_error_set(err, INF_EFORMAT, "request %s has an empty choice array", r->request_id);
    if (r->prompt_token_ids && r->n_prompt_token_ids == 0)
        return inf_error_set(err, INF_EFORMAT, "request %s has an empty prompt_token_ids", r->request_id);
    for (size_t i = 0; i < r->n_prompt_token_ids; i++)
        if (r->prompt_token_ids[i] < 0) return range(err, "prompt_token_ids holds a negative id (%g)", r->prompt_token_ids[i]);
    if (r->max_tokens < 1) return range(err, "max_tokens must be at least 1, got %g", r->max_tokens);
    if (r->min_tokens < 0 || r->min_tokens > r->max_tokens)
        return range(err, "min_tokens must be between 0 and max_tokens, got %g", r->min_tokens);
    if (!isfinite(r->temperature) || r->temperature < 0)
        return range(err, "temperature must be finite and >= 0, got %g", r->temperature);
    if (r->top_k < -1) return range(err, "top_k must be -1 (off), 0 (off) or positive, got %g", r->top_k);
    if (!(r->top_p > 0 && r->top_p <= 1)) return range(err, "top_p must be in (0, 1], got %g", r->top_p);
    if (!(r->min_p >= 0 && r->min_p <= 1)) return range(err, "min_p must be in [0, 1], got %g", r->min_p);
    if (!isfinite(r->repetition_penalty) || r->repetition_penalty <= 0)
        return range(err, "repetition_penalty must be finite and > 0, got %g", r->repetition_penalty);
    if (!(r->presence_penalty >= -2 && r->presence_penalty <= 2))
        return range(err, "presence_penalty must be in [-2, 2], got %g", r->presence_penalty);
    if (!(r->frequency_penalty >= -2 && r->frequency_penalty <= 2))
        return range(err, "frequency_penalty must be in [-2, 2], got %g", r->frequency_penalty);
    for (size_t i = 0; i < r->n_stop_token_ids; i++)
        if (r->stop_token_ids[i] < 0) return range(err, "stop_token_ids holds a negative id (%g)", r->stop_token_ids[i]);
    if (r->has_logprobs && (r->logprobs < 0 || r->logprobs > 20))
        return range(err, "logprobs must be in [0, 20], got %g", r->logprobs);
    for (size_t i = 0; i < r->n_logit_bias; i++) {
        if (r->logit_bias[i].token_id < 0)
            return range(err, "logit_bias names a negative token id (%g)", r->logit_bias[i].token_id);
        if (!(r->logit_bias[i].bias >= -100 && r->logit_bias[i].bias <= 100))
            return range(err, "logit_bias values must be in [-100, 100], got %g", r->logit_bias[i].bias);
    }
    if (r->has_deadline_ms && r->deadline_ms < 0)
        return range(err, "deadline_ms must be >= 0, got %g", (double)r->deadline_ms);
    if (r->reply_stream && (r->reply_stream[0] == '\0' || strlen(r->reply_stream) > 256))
        return inf_error_set(err, INF_EFORMAT, "request %s: reply_stream must be 1-256 bytes", r->request_id);
    return 0;
}
