/* gw_request.c - one leg of an OpenAI request as an inferno.v1
 * InferenceRequest (gw_params_to_request, gw_openai.h). */
#include "gw_openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s, int *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

int gw_params_to_request(const gw_params *p, size_t prompt_index, const char *request_id, int64_t deadline_ms,
                         inf_request *r, inf_error *err) {
    inf_request_init(r);
    int oom = 0;
    snprintf(r->request_id, sizeof r->request_id, "%s", request_id);
    if (p->api == GW_API_COMPLETIONS) {
        if (p->prompts[prompt_index]) {
            r->prompt = dup_or_null(p->prompts[prompt_index], &oom);
        } else {
            size_t n = p->n_prompt_ids[prompt_index];
            if ((r->prompt_token_ids = malloc(n * sizeof *r->prompt_token_ids)))
                memcpy(r->prompt_token_ids, p->prompt_ids[prompt_index], n * sizeof *r->prompt_token_ids);
            else oom = 1;
            r->n_prompt_token_ids = n;
        }
    }
    if (gw_chat_to_request(p, r, err)) {
        inf_request_free(r);
        return INF_ENOMEM;
    }
    r->max_tokens = p->max_tokens;
    r->min_tokens = p->min_tokens;
    r->temperature = p->temperature;
    r->top_k = p->top_k;
    r->top_p = p->top_p;
    r->min_p = p->min_p;
    r->repetition_penalty = p->repetition_penalty;
    r->presence_penalty = p->presence_penalty;
    r->frequency_penalty = p->frequency_penalty;
    r->has_seed = p->has_seed;
    r->seed = p->seed;
    if (p->n_stop) {
        if ((r->stop = calloc(p->n_stop, sizeof *r->stop))) {
            for (size_t i = 0; i < p->n_stop; i++)
                if ((r->stop[i] = dup_or_null(p->stop[i], &oom))) r->n_stop++;
        } else oom = 1;
    }
    if (p->n_stop_token_ids) {
        if ((r->stop_token_ids = malloc(p->n_stop_token_ids * sizeof *r->stop_token_ids))) {
            memcpy(r->stop_token_ids, p->stop_token_ids, p->n_stop_token_ids * sizeof *r->stop_token_ids);
            r->n_stop_token_ids = p->n_stop_token_ids;
        } else oom = 1;
    }
    r->ignore_eos = p->ignore_eos;
    if (p->logprobs >= 0) {
        r->has_logprobs = true;
        r->logprobs = p->logprobs;
    }
    if (p->n_logit_bias) {
        if ((r->logit_bias = malloc(p->n_logit_bias * sizeof *r->logit_bias))) {
            memcpy(r->logit_bias, p->logit_bias, p->n_logit_bias * sizeof *r->logit_bias);
            r->n_logit_bias = p->n_logit_bias;
        } else oom = 1;
    }
    if (deadline_ms > 0) {
        r->has_deadline_ms = true;
        r->deadline_ms = deadline_ms;
    }
    /* the reply comes back to the gateway: one token entry per flush window either way */
    r->stream = true;
    if (p->user) {
        if ((r->metadata = calloc(1, sizeof *r->metadata)) && (r->metadata[0].key = strdup("user")) &&
            (r->metadata[0].value = strdup(p->user)))
            r->n_metadata = 1;
        else oom = 1;
    }
    if (oom) {
        inf_request_free(r);
        return inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    return 0;
}
