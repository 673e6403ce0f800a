/* sampler_params.c - defaults, validation and list ownership of sampler_params
 * (see sampler.h). */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

sampler_params sampler_params_default(void) {
    sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_k = -1;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.min_tokens = 0;
    p.max_tokens = 16;
    p.logprobs = -1;
    return p;
}

/* lo/hi inclusive unless the *_open flag says otherwise; NaN fails every
 * comparison and so is rejected along with +-inf. */
static int check_range(const char *name, float v, float lo, int lo_open, float hi,
                       inf_error *err) {
    int ok = isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
    if (ok) return 0;
    return inf_error_set(err, INF_EINVAL, "%s must be in %c%g, %g], got %g", name,
                         lo_open ? '(' : '[', (double)lo, (double)hi, (double)v);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int validate_logit_bias(const sampler_params *p, int n_vocab, inf_error *err) {
    if (p->n_logit_bias == 0) return 0;
    if (!p->logit_bias)
        return inf_error_set(err, INF_EINVAL, "logit_bias is NULL but n_logit_bias is %zu",
                             p->n_logit_bias);
    if (p->n_logit_bias > SAMPLER_MAX_LOGIT_BIAS)
        return inf_error_set(err, INF_EINVAL, "logit_bias may have at most %d entries, got %zu",
                             SAMPLER_MAX_LOGIT_BIAS, p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const sampler_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return inf_error_set(err, INF_EINVAL,
                                 "logit_bias token id must be in [0, %d), got %d", n_vocab,
                                 (int)b->token);
        if (!(isfinite(b->bias) && b->bias >= -100.0f && b->bias <= 100.0f))
            return inf_error_set(err, INF_EINVAL,
                                 "logit_bias value must be in [-100, 100], got %g for token %d",
                                 (double)b->bias, (int)b->token);
    }
    /* A JSON object cannot repeat a key; a repeat here is a caller bug. */
    int32_t *ids = malloc(p->n_logit_bias * sizeof *ids);
    if (!ids) return inf_error_set(err, INF_ENOMEM, "out of memory validating logit_bias");
    for (size_t i = 0; i < p->n_logit_bias; i++) ids[i] = p->logit_bias[i].token;
    qsort(ids, p->n_logit_bias, sizeof *ids, cmp_i32);
    int rc = 0;
    for (size_t i = 1; i < p->n_logit_bias; i++)
        if (ids[i] == ids[i - 1]) {
            rc = inf_error_set(err, INF_EINVAL, "logit_bias lists token %d more than once",
                               (int)ids[i]);
            break;
        }
    free(ids);
    return rc;
}

static int validate_stop(const sampler_params *p, int n_vocab, inf_error *err) {
    if (p->n_stop_token_ids > 0 && !p->stop_token_ids)
        return inf_error_set(err, INF_EINVAL, "stop_token_ids is NULL but n_stop_token_ids is %zu",
                             p->n_stop_token_ids);
    if (p->n_stop_token_ids > SAMPLER_MAX_STOP_TOKENS)
        return inf_error_set(err, INF_EINVAL, "stop_token_ids may have at most %d entries, got %zu",
                             SAMPLER_MAX_STOP_TOKENS, p->n_stop_token_ids);
    for (size_t i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] < 0 || p->stop_token_ids[i] >= n_vocab)
            return inf_error_set(err, INF_EINVAL, "stop_token_ids entries must be in [0, %d), got %d",
                                 n_vocab, (int)p->stop_token_ids[i]);
    if (p->n_stop > 0 && !p->stop)
        return inf_error_set(err, INF_EINVAL, "stop is NULL but n_stop is %zu", p->n_stop);
    if (p->n_stop > SAMPLER_MAX_STOP)
        return inf_error_set(err, INF_EINVAL, "stop may have at most %d strings, got %zu",
                             SAMPLER_MAX_STOP, p->n_stop);
    for (size_t i = 0; i < p->n_stop; i++) {
        if (!p->stop[i] || !p->stop[i][0])
            return inf_error_set(err, INF_EINVAL, "stop strings must be non-empty (entry %zu)", i);
        size_t len = strnlen(p->stop[i], SAMPLER_MAX_STOP_LEN + 1);
        if (len > SAMPLER_MAX_STOP_LEN)
            return inf_error_set(err, INF_EINVAL,
                                 "stop strings must be at most %d bytes (entry %zu is longer)",
                                 SAMPLER_MAX_STOP_LEN, i);
    }
    return 0;
}

int sampler_params_validate(const sampler_params *p, int n_vocab, inf_error *err) {
    if (!p) return inf_error_set(err, INF_EINVAL, "sampler params are NULL");
    if (n_vocab <= 0)
        return inf_error_set(err, INF_EINVAL, "n_vocab must be >= 1, got %d", n_vocab);
    int rc;
    if ((rc = check_range("temperature", p->temperature, 0.0f, 0, SAMPLER_TEMPERATURE_MAX, err)))
        return rc;
    if (p->top_k < -1)
        return inf_error_set(err, INF_EINVAL, "top_k must be -1 or 0 (off) or >= 1, got %d",
                             p->top_k);
    if ((rc = check_range("top_p", p->top_p, 0.0f, 1, 1.0f, err))) return rc;
    if ((rc = check_range("min_p", p->min_p, 0.0f, 0, 1.0f, err))) return rc;
    if ((rc = check_range("repetition_penalty", p->repetition_penalty, 0.0f, 1,
                          SAMPLER_REPETITION_MAX, err)))
        return rc;
    if ((rc = check_range("presence_penalty", p->presence_penalty, -2.0f, 0, 2.0f, err)))
        return rc;
    if ((rc = check_range("frequency_penalty", p->frequency_penalty, -2.0f, 0, 2.0f, err)))
        return rc;
    if ((rc = validate_logit_bias(p, n_vocab, err))) return rc;
    if ((rc = validate_stop(p, n_vocab, err))) return rc;
    if (p->max_tokens < 1)
        return inf_error_set(err, INF_EINVAL, "max_tokens must be >= 1, got %d", p->max_tokens);
    if (p->min_tokens < 0 || p->min_tokens > p->max_tokens)
        return inf_error_set(err, INF_EINVAL, "min_tokens must be in [0, max_tokens=%d], got %d",
                             p->max_tokens, p->min_tokens);
    if (p->logprobs < -1 || p->logprobs > SAMPLER_MAX_LOGPROBS)
        return inf_error_set(err, INF_EINVAL, "logprobs must be -1 (none) or in [0, %d], got %d",
                             SAMPLER_MAX_LOGPROBS, p->logprobs);
    return 0;
}

void sampler_params_free(sampler_params *p) {
    if (!p) return;
    if (p->stop) {
        for (size_t i = 0; i < p->n_stop; i++) free(p->stop[i]);
        free(p->stop);
    }
    free(p->stop_token_ids);
    free(p->logit_bias);
    p->stop = NULL;
    p->n_stop = 0;
    p->stop_token_ids = NULL;
    p->n_stop_token_ids = 0;
    p->logit_bias = NULL;
    p->n_logit_bias = 0;
}

int sampler_params_copy(sampler_params *dst, const sampler_params *src, inf_error *err) {
    *dst = *src;
    dst->logit_bias = NULL;
    dst->stop_token_ids = NULL;
    dst->stop = NULL;
    dst->n_logit_bias = dst->n_stop_token_ids = dst->n_stop = 0;
    if (src->n_logit_bias) {
        dst->logit_bias = malloc(src->n_logit_bias * sizeof *dst->logit_bias);
        if (!dst->logit_bias) goto oom;
        memcpy(dst->logit_bias, src->logit_bias, src->n_logit_bias * sizeof *dst->logit_bias);
        dst->n_logit_bias = src->n_logit_bias;
    }
    if (src->n_stop_token_ids) {
        dst->stop_token_ids = malloc(src->n_stop_token_ids * sizeof *dst->stop_token_ids);
        if (!dst->stop_token_ids) goto oom;
        memcpy(dst->stop_token_ids, src->stop_token_ids,
               src->n_stop_token_ids * sizeof *dst->stop_token_ids);
        dst->n_stop_token_ids = src->n_stop_token_ids;
    }
    if (src->n_stop) {
        dst->stop = calloc(src->n_stop, sizeof *dst->stop);
        if (!dst->stop) goto oom;
        dst->n_stop = src->n_stop;
        for (size_t i = 0; i < src->n_stop; i++) {
            if (!src->stop[i]) continue; /* validate reports it */
            dst->stop[i] = strdup(src->stop[i]);
            if (!dst->stop[i]) goto oom;
        }
    }
    return 0;
oom:
    sampler_params_free(dst);
    return inf_error_set(err, INF_ENOMEM, "out of memory copying sampler params");
}

/* Makes room for one more element. Reallocates every time (lists are short)
 * so it works on lists the caller malloc'd to any size. */
static int grow(void **arr, size_t n, size_t elem) {
    void *q = realloc(*arr, (n + 1) * elem);
    if (!q) return -1;
    *arr = q;
    return 0;
}

int sampler_params_add_stop(sampler_params *p, const char *s, inf_error *err) {
    if (!s || !s[0]) return inf_error_set(err, INF_EINVAL, "stop strings must be non-empty");
    if (strnlen(s, SAMPLER_MAX_STOP_LEN + 1) > SAMPLER_MAX_STOP_LEN)
        return inf_error_set(err, INF_EINVAL, "stop strings must be at most %d bytes",
                             SAMPLER_MAX_STOP_LEN);
    if (p->n_stop >= SAMPLER_MAX_STOP)
        return inf_error_set(err, INF_EINVAL, "stop may have at most %d strings", SAMPLER_MAX_STOP);
    char *c = strdup(s);
    if (!c || grow((void **)&p->stop, p->n_stop, sizeof *p->stop)) {
        free(c);
        return inf_error_set(err, INF_ENOMEM, "out of memory adding a stop string");
    }
    p->stop[p->n_stop++] = c;
    return 0;
}

int sampler_params_add_stop_token(sampler_params *p, int32_t token, inf_error *err) {
    if (p->n_stop_token_ids >= SAMPLER_MAX_STOP_TOKENS)
        return inf_error_set(err, INF_EINVAL, "stop_token_ids may have at most %d entries",
                             SAMPLER_MAX_STOP_TOKENS);
    if (grow((void **)&p->stop_token_ids, p->n_stop_token_ids, sizeof *p->stop_token_ids))
        return inf_error_set(err, INF_ENOMEM, "out of memory adding a stop token id");
    p->stop_token_ids[p->n_stop_token_ids++] = token;
    return 0;
}

int sampler_params_add_logit_bias(sampler_params *p, int32_t token, float bias, inf_error *err) {
    if (p->n_logit_bias >= SAMPLER_MAX_LOGIT_BIAS)
        return inf_error_set(err, INF_EINVAL, "logit_bias may have at most %d entries",
                             SAMPLER_MAX_LOGIT_BIAS);
    if (grow((void **)&p->logit_bias, p->n_logit_bias, sizeof *p->logit_bias))
        return inf_error_set(err, INF_ENOMEM, "out of memory adding a logit_bias entry");
    p->logit_bias[p->n_logit_bias].token = token;
    p->logit_bias[p->n_logit_bias].bias = bias;
    p->n_logit_bias++;
    return 0;
}
