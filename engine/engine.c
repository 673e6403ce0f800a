/* engine.c - engine lifecycle, request intake (thread-safe inbox and id set),
 * events and stats. Scheduling and the forward pass live in scheduler.c. */
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine_internal.h"

engine_config engine_config_default(void) {
    engine_config c = {0};
    c.backend = "auto";
    c.n_threads = 0;
    c.kv_cache_bytes = 0;
    c.kv_block_size = KV_DEFAULT_BLOCK_SIZE;
    c.kv_type = BACKEND_KV_F16;
    c.max_num_seqs = 64;
    c.max_num_batched_tokens = 512;
    c.max_model_len = 0;
    c.enable_chunked_prefill = 1;
    c.enable_prefix_caching = 1;
    c.aging_ms = 1000;
    c.gpu_memory_fraction = 0.9;
    c.device_sampling = 1;
    return c;
}

engine_request engine_request_default(void) {
    engine_request r = {0};
    r.add_special = 1;
    return r;
}

const char *engine_finish_name(engine_finish_reason r) {
    switch (r) {
    case ENGINE_FINISH_STOP: return "stop";
    case ENGINE_FINISH_LENGTH: return "length";
    case ENGINE_FINISH_ABORT: return "abort";
    case ENGINE_FINISH_DEADLINE: return "deadline";
    default: return "none";
    }
}

int64_t eng_now_us(const engine *e) {
    if (e->cfg.clock_us) return e->cfg.clock_us(e->cfg.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- small helpers ------------------------------------------------------- */

int eng_list_push(eng_req ***arr, int *n, int *cap, eng_req *r) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        eng_req **na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na) return INF_ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = r;
    return 0;
}

/* Order-preserving removal (the lists are short and order helps debugging). */
void eng_list_remove(eng_req **arr, int *n, eng_req *r) {
    for (int i = 0; i < *n; i++)
        if (arr[i] == r) {
            memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
            (*n)--;
            return;
        }
}

static uint64_t id_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* mu held. The id's node, or NULL. */
static eng_id_node *ids_find(const engine *e, const char *id, uint64_t h) {
    for (eng_id_node *n = e->ids[h & (e->ids_cap - 1)]; n; n = n->next)
        if (n->hash == h && strcmp(n->id, id) == 0) return n;
    return NULL;
}

/* mu held. Grows the table at load 1 so chains stay short. */
static int ids_insert(engine *e, const char *id, uint64_t h, uint64_t seqno) {
    if (e->n_inflight + 1 > e->ids_cap) {
        size_t nc = e->ids_cap * 2;
        eng_id_node **nt = calloc(nc, sizeof *nt);
        if (!nt) return INF_ENOMEM;
        for (size_t i = 0; i < e->ids_cap; i++)
            for (eng_id_node *n = e->ids[i], *nx; n; n = nx) {
                nx = n->next;
                n->next = nt[n->hash & (nc - 1)];
                nt[n->hash & (nc - 1)] = n;
            }
        free(e->ids);
        e->ids = nt;
        e->ids_cap = nc;
    }
    size_t len = strlen(id);
    eng_id_node *n = malloc(sizeof *n + len + 1);
    if (!n) return INF_ENOMEM;
    n->hash = h;
    n->seqno = seqno;
    memcpy(n->id, id, len + 1);
    n->next = e->ids[h & (e->ids_cap - 1)];
    e->ids[h & (e->ids_cap - 1)] = n;
    e->n_inflight++;
    return 0;
}

void eng_ids_remove(engine *e, const char *id) {
    uint64_t h = id_hash(id);
    pthread_mutex_lock(&e->mu);
    for (eng_id_node **p = &e->ids[h & (e->ids_cap - 1)]; *p; p = &(*p)->next)
        if ((*p)->hash == h && strcmp((*p)->id, id) == 0) {
            eng_id_node *n = *p;
            *p = n->next;
            free(n);
            e->n_inflight--;
            break;
        }
    pthread_mutex_unlock(&e->mu);
}

void eng_req_free(engine *e, eng_req *r) {
    if (!r) return;
    if (e && e->pool) kv_seq_release(e->pool, &r->seq);
    kv_seq_free(&r->seq);
    eng_gram_req_free(r);
    sampler_free(r->smp);
    stop_matcher_free(r->stop);
    tok_stream_free(r->detok);
    free(r->tokens);
    free(r);
}

/* ---- events --------------------------------------------------------------- */

static void events_reset(engine *e) {
    for (int i = 0; i < e->n_ev; i++) {
        free(e->ev[i].text);
        free(e->ev[i].message);
    }
    e->n_ev = 0;
}

eng_event_slot *eng_event_new(engine *e, engine_event_type type, const eng_req *r) {
    if (e->n_ev == e->cap_ev) {
        int nc = e->cap_ev ? e->cap_ev * 2 : 32;
        eng_event_slot *n = realloc(e->ev, (size_t)nc * sizeof *n);
        if (!n) return NULL;
        e->ev = n;
        e->cap_ev = nc;
    }
    eng_event_slot *s = &e->ev[e->n_ev++];
    memset(s, 0, sizeof *s);
    s->ev.type = type;
    memcpy(s->ev.id, r->id, sizeof s->ev.id);
    s->ev.user = r->user;
    s->ev.stop_index = -1;
    s->ev.stop_token = -1;
    return s;
}

static double ms_between(int64_t from_us, int64_t to_us) {
    return (double)(to_us - from_us) / 1000.0;
}

int eng_finish(engine *e, eng_req *r, engine_finish_reason reason, int code, const char *msg,
               int stop_index, int32_t stop_token) {
    int64_t now = eng_now_us(e);
    eng_event_slot *s = eng_event_new(e, code ? ENGINE_EVENT_ERROR : ENGINE_EVENT_FINISHED, r);
    int rc = 0;
    if (!s) {
        rc = INF_ENOMEM;
    } else if (code) {
        s->ev.code = code;
        s->message = strdup(msg && msg[0] ? msg : inf_status_name(code));
        s->ev.message = s->message ? s->message : "out of memory";
        e->n_errors++;
    } else {
        s->ev.reason = reason;
        s->ev.stop_index = stop_index;
        s->ev.stop_token = stop_token;
        e->n_finished++;
    }
    if (s) {
        s->ev.usage.prompt_tokens = r->n_prompt;
        s->ev.usage.completion_tokens = r->n_tokens - r->n_prompt;
        s->ev.usage.cached_tokens = r->cached_tokens;
        s->ev.timings.queue_ms = r->first_sched_us ? ms_between(r->arrival_us, r->first_sched_us) : -1;
        s->ev.timings.ttft_ms = r->first_token_us ? ms_between(r->arrival_us, r->first_token_us) : -1;
        s->ev.timings.e2e_ms = ms_between(r->arrival_us, now);
        s->ev.n_preemptions = r->n_preemptions;
    }
    /* Free the blocks before the id: a re-add of the id must find them free. */
    kv_seq_release(e->pool, &r->seq);
    eng_ids_remove(e, r->id);
    eng_req_free(e, r);
    return rc;
}

/* ---- open / close ---------------------------------------------------------- */

static int resolve_config(engine_config *c, inf_error *err) {
    if (!c->backend) c->backend = "auto";
    if (strcmp(c->backend, "cpu") != 0 && strcmp(c->backend, "auto") != 0 &&
        strcmp(c->backend, "cuda") != 0)
        return inf_error_set(err, INF_EUNSUPPORTED,
                             "backend '%s' is not available (use \"cpu\", \"cuda\" or \"auto\")",
                             c->backend);
    if (c->kv_block_size == 0) c->kv_block_size = KV_DEFAULT_BLOCK_SIZE;
    if (c->max_num_seqs == 0) c->max_num_seqs = 64;
    if (c->max_num_batched_tokens == 0) c->max_num_batched_tokens = 512;
    if (c->max_num_seqs < 1)
        return inf_error_set(err, INF_EINVAL, "max_num_seqs must be >= 1, got %d", c->max_num_seqs);
    if (c->max_num_batched_tokens < c->max_num_seqs)
        return inf_error_set(err, INF_EINVAL,
                             "max_num_batched_tokens (%d) must be >= max_num_seqs (%d) so every "
                             "running sequence can decode in one step",
                             c->max_num_batched_tokens, c->max_num_seqs);
    if (c->kv_block_size < 1 || c->kv_block_size > 1024)
        return inf_error_set(err, INF_EINVAL, "kv_block_size must be in [1, 1024], got %d",
                             c->kv_block_size);
    if (c->max_model_len < 0)
        return inf_error_set(err, INF_EINVAL, "max_model_len must be >= 0, got %d", c->max_model_len);
    if (c->aging_ms < 0 || c->aging_ms > 1000000000)
        return inf_error_set(err, INF_EINVAL, "aging_ms must be in [0, 1e9], got %lld",
                             (long long)c->aging_ms);
    if (c->kv_type != BACKEND_KV_F16 && c->kv_type != BACKEND_KV_F32)
        return inf_error_set(err, INF_EINVAL, "kv_type must be f16 or f32");
    if (!(c->gpu_memory_fraction >= 0 && c->gpu_memory_fraction <= 1))
        return inf_error_set(err, INF_EINVAL, "gpu_memory_fraction must be in (0, 1], got %g",
                             c->gpu_memory_fraction);
    if (c->gpu_memory_fraction == 0) c->gpu_memory_fraction = 0.9;
    return 0;
}

int engine_open(engine **out, const engine_config *cfg_in, const char *model_path, inf_error *err) {
    *out = NULL;
    engine_config cfg = cfg_in ? *cfg_in : engine_config_default();
    int rc = resolve_config(&cfg, err);
    if (rc) return rc;
    engine *e = calloc(1, sizeof *e);
    if (!e) return inf_error_set(err, INF_ENOMEM, "out of memory creating the engine");
    e->cfg = cfg;
    pthread_mutex_init(&e->mu, NULL);
    e->ids_cap = 64;
    e->ids = calloc(e->ids_cap, sizeof *e->ids);
    if (!e->ids) {
        rc = inf_error_set(err, INF_ENOMEM, "out of memory creating the engine");
        goto fail;
    }
    if ((rc = gguf_open(&e->file, model_path, err))) goto fail;
    backend_config bc = backend_config_default();
    bc.n_threads = cfg.n_threads;
    if (cfg.kv_cache_bytes) bc.kv_cache_bytes = cfg.kv_cache_bytes;
    bc.kv_block_size = cfg.kv_block_size;
    bc.kv_type = cfg.kv_type;
    bc.max_batch_tokens = cfg.max_num_batched_tokens;
    bc.kv_prefault = cfg.kv_prefault;
    bc.cpu_isa = cfg.cpu_isa;
    bc.rope_n_ctx = cfg.max_model_len; /* LongRoPE picks its factors from it (0: n_ctx_train) */
    /* Backend choice: "cuda" requires a usable GPU, "auto" takes one when
     * present, "cpu" never does. An explicit KV budget is honoured on the GPU
     * too (otherwise the GPU cache takes gpu_memory_fraction of free memory). */
    bc.gpu_memory_fraction = cfg.kv_cache_bytes ? 0 : cfg.gpu_memory_fraction;
    char why[256] = "";
    int want_cuda = strcmp(cfg.backend, "cuda") == 0 ||
                    (strcmp(cfg.backend, "auto") == 0 && backend_cuda_available(why, sizeof why));
    rc = want_cuda ? backend_cuda_create(&e->be, e->file, &bc, err)
                   : backend_cpu_create(&e->be, e->file, &bc, err);
    if (rc) {
        inf_error_wrap(err, rc, "%s", model_path);
        goto fail;
    }
    e->desc = e->be->desc;
    e->n_vocab = (int)e->desc.n_vocab;
    e->block_size = e->be->kv_block_size;
    if ((rc = tok_create_ex(&e->tok, e->file, TOK_CREATE_PRE_FALLBACK, err))) {
        inf_error_wrap(err, rc, "%s: tokenizer", model_path);
        goto fail;
    }
    if (e->be->n_kv_blocks < 1) {
        rc = inf_error_set(err, INF_EINVAL, "the KV cache budget holds no block");
        goto fail;
    }
    if ((rc = kv_pool_create(&e->pool, e->be->n_kv_blocks, e->block_size, err))) goto fail;
    int64_t cap_tokens = (int64_t)e->be->n_kv_blocks * e->block_size;
    int64_t mml = cfg.max_model_len > 0 ? cfg.max_model_len
                  : e->desc.n_ctx_train ? (int64_t)e->desc.n_ctx_train : 2048;
    if (mml > cap_tokens) mml = cap_tokens;
    if (mml > INT32_MAX / 2) mml = INT32_MAX / 2;
    e->cfg.max_model_len = (int)mml;
    if (e->cfg.max_model_len < 2) {
        rc = inf_error_set(err, INF_EINVAL, "max_model_len %d leaves no room to generate",
                           e->cfg.max_model_len);
        goto fail;
    }
    int32_t cand[2] = {tok_eos(e->tok), tok_eot(e->tok)};
    for (int i = 0; i < 2; i++)
        if (cand[i] >= 0 && cand[i] < e->n_vocab && (e->n_eos == 0 || e->eos_ids[0] != cand[i]))
            e->eos_ids[e->n_eos++] = cand[i];
    int T = cfg.max_num_batched_tokens, S = cfg.max_num_seqs;
    e->b_tokens = malloc((size_t)T * sizeof *e->b_tokens);
    e->b_pos = malloc((size_t)T * sizeof *e->b_pos);
    e->b_seq = malloc((size_t)T * sizeof *e->b_seq);
    e->b_need = malloc((size_t)T);
    e->b_seqs = malloc((size_t)S * sizeof *e->b_seqs);
    e->b_seqs_logits = malloc((size_t)S);
    e->plan = malloc((size_t)S * sizeof *e->plan);
    e->snap = malloc((size_t)S * sizeof *e->snap);
    e->logits = malloc((size_t)S * (size_t)e->n_vocab * sizeof *e->logits);
    if (!e->b_tokens || !e->b_pos || !e->b_seq || !e->b_need || !e->b_seqs || !e->b_seqs_logits || !e->plan || !e->snap ||
        !e->logits) {
        rc = inf_error_set(err, INF_ENOMEM, "out of memory for batch buffers");
        goto fail;
    }
    const char *ds = getenv("INFERNO_DEVICE_SAMPLING");
    e->dev_sampling = cfg.device_sampling && e->be->device_sampling && !(ds && ds[0] == '0');
    e->cfg.device_sampling = e->dev_sampling;
    if (e->dev_sampling) {
        e->d_rows = malloc((size_t)S * sizeof *e->d_rows);
        e->d_req = malloc((size_t)S * sizeof *e->d_req);
        e->d_masks = calloc((size_t)S, sizeof *e->d_masks);
        e->dev_masks = 1; /* the device kernel applies per-row token masks */
        e->d_tok = malloc((size_t)S * sizeof *e->d_tok);
        e->d_status = malloc((size_t)S * sizeof *e->d_status);
        e->d_lp = malloc((size_t)S * sizeof *e->d_lp);
        e->d_top_tok = malloc((size_t)S * SAMPLER_MAX_LOGPROBS * sizeof *e->d_top_tok);
        e->d_top_lp = malloc((size_t)S * SAMPLER_MAX_LOGPROBS * sizeof *e->d_top_lp);
        if (!e->d_rows || !e->d_req || !e->d_masks || !e->d_tok || !e->d_status || !e->d_lp || !e->d_top_tok ||
            !e->d_top_lp) {
            rc = inf_error_set(err, INF_ENOMEM, "out of memory for device sampling buffers");
            goto fail;
        }
    }
    if ((rc = eng_gram_init(e, err))) goto fail;
    e->last_stats_us = eng_now_us(e);
    *out = e;
    return 0;
fail:
    engine_close(e);
    return rc;
}

void engine_close(engine *e) {
    if (!e) return;
    for (eng_req *r = e->inbox_head, *nx; r; r = nx) {
        nx = r->next;
        eng_req_free(e, r);
    }
    for (eng_abort *a = e->aborts, *nx; a; a = nx) {
        nx = a->next;
        free(a);
    }
    for (int i = 0; i < e->n_waiting; i++) eng_req_free(e, e->waiting[i]);
    for (int i = 0; i < e->n_running; i++) eng_req_free(e, e->running[i]);
    free(e->waiting);
    free(e->running);
    eng_gram_close(e);
    if (e->ids) {
        for (size_t i = 0; i < e->ids_cap; i++)
            for (eng_id_node *n = e->ids[i], *nx; n; n = nx) {
                nx = n->next;
                free(n);
            }
        free(e->ids);
    }
    events_reset(e);
    free(e->ev);
    free(e->ev_flat);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_need);
    free(e->b_seqs);
    free(e->b_seqs_logits);
    free(e->plan);
    free(e->snap);
    free(e->logits);
    free(e->d_rows);
    free(e->d_req);
    free(e->d_masks);
    free(e->d_mods);
    free(e->d_tok);
    free(e->d_status);
    free(e->d_lp);
    free(e->d_top_tok);
    free(e->d_top_lp);
    kv_pool_free(e->pool);
    tok_free(e->tok);
    backend_free(e->be);
    gguf_close(e->file);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

const tokenizer *engine_tokenizer(const engine *e) { return e->tok; }
const model_desc *engine_model_desc(const engine *e) { return &e->desc; }
const engine_config *engine_get_config(const engine *e) { return &e->cfg; }
const char *engine_device(const engine *e) { return e->be->device; }
const char *engine_backend_name(const engine *e) { return e->be->vt->name; }

/* ---- add / abort ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t request_entropy(engine *e) {
    pthread_mutex_lock(&e->mu);
    uint64_t ctr = e->entropy_ctr++;
    pthread_mutex_unlock(&e->mu);
    if (e->cfg.seed) {
        uint64_t s = e->cfg.seed ^ (ctr * 0xD1B54A32D192ED03ull);
        return splitmix(&s);
    }
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        /* No OS entropy: still distinct per request and per run. */
        uint64_t s = (uint64_t)eng_now_us(e) ^ (ctr << 32) ^ (uint64_t)(uintptr_t)&v;
        v = splitmix(&s);
    }
    return v;
}

/* Tokens of the prompt into r->tokens (with room for max_tokens more). */
static int load_prompt(engine *e, eng_req *r, const engine_request *q, int max_tokens,
                       inf_error *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (q->prompt_tokens) {
        if (q->n_prompt_tokens <= 0)
            return inf_error_set(err, INF_EINVAL, "request '%s': the prompt is empty", r->id);
        n = (size_t)q->n_prompt_tokens;
        for (size_t i = 0; i < n; i++)
            if (q->prompt_tokens[i] < 0 || q->prompt_tokens[i] >= e->n_vocab)
                return inf_error_set(err, INF_EINVAL,
                                     "request '%s': prompt token %zu is %d, outside the "
                                     "vocabulary [0, %d)",
                                     r->id, i, (int)q->prompt_tokens[i], e->n_vocab);
    } else {
        if (!q->prompt)
            return inf_error_set(err, INF_EINVAL, "request '%s': no prompt (text or tokens)", r->id);
        size_t len = q->prompt_len ? q->prompt_len : strlen(q->prompt);
        int rc = tok_encode(e->tok, q->prompt, len, q->add_special, q->parse_special, &ids, &n, err);
        if (rc) return inf_error_wrap(err, rc, "request '%s': tokenizing the prompt", r->id);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= e->n_vocab) {
                free(ids);
                return inf_error_set(err, INF_EINVAL,
                                     "request '%s': the tokenizer produced id %d, outside the "
                                     "model's vocabulary [0, %d)",
                                     r->id, (int)ids[i], e->n_vocab);
            }
        if (n == 0)
            return inf_error_set(err, INF_EINVAL, "request '%s': the prompt is empty", r->id);
    }
    int mml = e->cfg.max_model_len;
    if (n >= (size_t)mml) {
        free(ids);
        return inf_error_set(err, INF_EINVAL,
                             "request '%s': the prompt has %zu tokens but max_model_len is %d "
                             "(the prompt must leave room for at least one generated token)",
                             r->id, n, mml);
    }
    if (!e->cfg.enable_chunked_prefill && n > (size_t)e->cfg.max_num_batched_tokens) {
        free(ids);
        return inf_error_set(err, INF_EINVAL,
                             "request '%s': the prompt has %zu tokens, more than "
                             "max_num_batched_tokens %d, and chunked prefill is off",
                             r->id, n, e->cfg.max_num_batched_tokens);
    }
    int64_t cap = (int64_t)n + max_tokens;
    if (cap > mml) cap = mml;
    r->tokens = malloc((size_t)cap * sizeof *r->tokens);
    if (!r->tokens) {
        free(ids);
        return inf_error_set(err, INF_ENOMEM, "out of memory for a prompt of %zu tokens", n);
    }
    memcpy(r->tokens, ids ? ids : q->prompt_tokens, n * sizeof *r->tokens);
    free(ids);
    r->n_tokens = r->n_prompt = (int)n;
    r->cap = (int)cap;
    return 0;
}

int engine_add(engine *e, const engine_request *q, inf_error *err) {
    if (!e || !q) return inf_error_set(err, INF_EINVAL, "engine_add: NULL argument");
    size_t idlen = q->id ? strnlen(q->id, ENGINE_ID_MAX + 1) : 0;
    if (idlen == 0 || idlen > ENGINE_ID_MAX)
        return inf_error_set(err, INF_EINVAL, "request id must be 1..%d bytes, got %s",
                             ENGINE_ID_MAX, idlen ? "a longer one" : "an empty one");
    sampler_params defaults = sampler_params_default();
    const sampler_params *p = q->params ? q->params : &defaults;
    int rc = sampler_params_validate(p, e->n_vocab, err);
    if (rc) return inf_error_wrap(err, rc, "request '%s'", q->id);

    eng_req *r = calloc(1, sizeof *r);
    if (!r) return inf_error_set(err, INF_ENOMEM, "out of memory for a request");
    memcpy(r->id, q->id, idlen);
    kv_seq_init(&r->seq);
    r->user = q->user;
    r->priority = q->priority;
    r->logprobs = p->logprobs;
    if (q->arrival_ms < 0 || q->arrival_ms > INT64_MAX / 4000 || q->deadline_ms > INT64_MAX / 4000) {
        rc = inf_error_set(err, INF_EINVAL,
                           "request '%s': arrival_ms and deadline_ms must be epoch milliseconds",
                           r->id);
        goto fail;
    }
    int64_t now = eng_now_us(e);
    r->arrival_us = q->arrival_ms ? q->arrival_ms * 1000 : now;
    r->deadline_us = q->deadline_ms > 0 ? q->deadline_ms * 1000 : 0;
    int64_t arrival_ms = r->arrival_us / 1000;
    r->key = e->cfg.aging_ms > 0 ? (int64_t)q->priority * e->cfg.aging_ms + arrival_ms
                                 : (int64_t)q->priority;
    if ((rc = load_prompt(e, r, q, p->max_tokens, err))) goto fail;
    rc = sampler_create(&r->smp, p, e->n_vocab, e->eos_ids, (size_t)e->n_eos, r->tokens,
                        (size_t)r->n_prompt, request_entropy(e), err);
    if (rc) {
        inf_error_wrap(err, rc, "request '%s'", r->id);
        goto fail;
    }
    if ((rc = stop_matcher_create(&r->stop, (const char *const *)p->stop, p->n_stop, err)))
        goto fail;
    if ((rc = tok_stream_create(&r->detok, e->tok, 0, err))) goto fail;
    if (q->constraint && q->constraint->kind != CONSTRAINT_NONE &&
        (rc = eng_gram_attach(e, r, q->constraint, err))) {
        inf_error_wrap(err, rc, "request '%s'", r->id);
        goto fail;
    }

    uint64_t h = id_hash(r->id);
    pthread_mutex_lock(&e->mu);
    if (ids_find(e, r->id, h)) {
        pthread_mutex_unlock(&e->mu);
        rc = inf_error_set(err, INF_EEXIST, "request '%s' is already in flight", r->id);
        goto fail;
    }
    r->seqno = e->next_seqno;
    if ((rc = ids_insert(e, r->id, h, r->seqno))) {
        pthread_mutex_unlock(&e->mu);
        inf_error_set(err, rc, "out of memory registering request '%s'", r->id);
        goto fail;
    }
    e->next_seqno++;
    r->state = ENG_INBOX;
    if (e->inbox_tail) e->inbox_tail->next = r;
    else e->inbox_head = r;
    e->inbox_tail = r;
    e->n_inbox++;
    pthread_mutex_unlock(&e->mu);
    return 0;
fail:
    eng_req_free(NULL, r);
    return rc;
}

int engine_abort(engine *e, const char *id) {
    if (!e || !id) return INF_EINVAL;
    size_t len = strnlen(id, ENGINE_ID_MAX + 1);
    if (len == 0 || len > ENGINE_ID_MAX) return INF_ENOTFOUND;
    eng_abort *a = calloc(1, sizeof *a);
    if (!a) return INF_ENOMEM;
    pthread_mutex_lock(&e->mu);
    /* Abort that very request: if it finishes first and the id is re-added
     * before the next step, the newcomer must not be hit. */
    eng_id_node *n = ids_find(e, id, id_hash(id));
    int found = n != NULL;
    if (found) {
        a->seqno = n->seqno;
        a->next = e->aborts;
        e->aborts = a;
    }
    pthread_mutex_unlock(&e->mu);
    if (!found) {
        free(a);
        return INF_ENOTFOUND;
    }
    return 0;
}

int engine_has_work(engine *e) { return engine_n_inflight(e) > 0; }

int engine_n_inflight(engine *e) {
    pthread_mutex_lock(&e->mu);
    int n = (int)e->n_inflight;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- step -------------------------------------------------------------------- */

static eng_req *find_req(engine *e, uint64_t seqno) {
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i]->seqno == seqno) return e->running[i];
    for (int i = 0; i < e->n_waiting; i++)
        if (e->waiting[i]->seqno == seqno) return e->waiting[i];
    return NULL;
}

/* Moves the inbox into the waiting list and marks aborted requests. */
static int drain_inbox(engine *e, inf_error *err) {
    pthread_mutex_lock(&e->mu);
    eng_req *head = e->inbox_head;
    eng_abort *aborts = e->aborts;
    e->inbox_head = e->inbox_tail = NULL;
    e->aborts = NULL;
    e->n_inbox = 0;
    pthread_mutex_unlock(&e->mu);
    int rc = 0;
    for (eng_req *r = head, *nx; r; r = nx) {
        nx = r->next;
        r->next = NULL;
        r->state = ENG_WAITING;
        if (!rc && eng_list_push(&e->waiting, &e->n_waiting, &e->cap_waiting, r)) {
            rc = inf_error_set(err, INF_ENOMEM, "out of memory queueing requests");
        }
        if (rc) {
            /* Keep the one-final-event promise even here. */
            eng_finish(e, r, ENGINE_FINISH_NONE, INF_ENOMEM, "out of memory queueing the request",
                       -1, -1);
        }
    }
    for (eng_abort *a = aborts, *nx; a; a = nx) {
        nx = a->next;
        eng_req *r = find_req(e, a->seqno);
        if (r) r->abort_requested = 1;
        free(a);
    }
    return rc;
}

int engine_step(engine *e, const engine_event **events, int *n_events, inf_error *err) {
    *events = NULL;
    *n_events = 0;
    events_reset(e);
    int rc = drain_inbox(e, err);
    if (!rc) rc = sched_step(e, err);
    if (e->n_ev > e->cap_flat) {
        engine_event *nf = realloc(e->ev_flat, (size_t)e->n_ev * sizeof *nf);
        if (!nf) return inf_error_set(err, INF_ENOMEM, "out of memory for events");
        e->ev_flat = nf;
        e->cap_flat = e->n_ev;
    }
    /* Slots may have moved while growing; their inline storage is final now. */
    for (int i = 0; i < e->n_ev; i++) {
        eng_event_slot *s = &e->ev[i];
        if (s->ev.type == ENGINE_EVENT_TOKEN) {
            s->ev.tokens = &s->token;
            if (s->ev.logprobs) {
                s->ev.logprobs = &s->logprob;
                s->ev.top_logprobs = s->top;
            }
        }
        e->ev_flat[i] = s->ev;
    }
    *events = e->ev_flat;
    *n_events = e->n_ev;
    return rc;
}

/* ---- stats / checks ------------------------------------------------------------ */

void engine_stats_get(engine *e, engine_stats *st) {
    memset(st, 0, sizeof *st);
    st->n_running = e->n_running;
    pthread_mutex_lock(&e->mu);
    st->n_waiting = e->n_waiting + e->n_inbox;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_waiting; i++) st->n_preempted_waiting += e->waiting[i]->was_preempted;
    st->n_preemptions = e->n_preemptions;
    kv_stats ks;
    kv_pool_stats(e->pool, &ks);
    st->kv_blocks_used = ks.n_used;
    st->kv_blocks_total = ks.n_blocks;
    st->kv_blocks_cached = ks.n_cached;
    st->prefix_query_tokens = e->prefix_query;
    st->prefix_hit_tokens = e->prefix_hit;
    st->prefix_hit_rate = e->prefix_query ? (double)e->prefix_hit / (double)e->prefix_query : 0;
    st->prompt_tokens_computed = e->prompt_computed;
    st->recomputed_tokens = e->recomputed;
    st->generated_tokens = e->generated;
    st->n_steps = e->n_steps;
    st->device_sampled_rows = e->device_rows;
    st->host_sampled_rows = e->host_rows;
    st->n_finished = e->n_finished;
    st->n_errors = e->n_errors;
    st->constrained_rows = e->constrained_rows;
    st->mask_ms = e->mask_ms;
    if (e->ccache) constraint_cache_counts(e->ccache, &st->constraint_cache_hits, &st->constraint_compiles);
    int64_t now = eng_now_us(e);
    double dt = (double)(now - e->last_stats_us) / 1e6;
    if (dt > 0) {
        st->prompt_tokens_per_s = (double)(e->prompt_computed - e->last_prompt_computed) / dt;
        st->generated_tokens_per_s = (double)(e->generated - e->last_generated) / dt;
    }
    e->last_stats_us = now;
    e->last_prompt_computed = e->prompt_computed;
    e->last_generated = e->generated;
}

int engine_check_invariants(engine *e, inf_error *err) {
    if (e->n_running > e->cfg.max_num_seqs)
        return inf_error_set(err, INF_ESTATE, "%d sequences running, max_num_seqs is %d",
                             e->n_running, e->cfg.max_num_seqs);
    const kv_seq **seqs = malloc(((size_t)e->n_running + 1) * sizeof *seqs);
    if (!seqs) return inf_error_set(err, INF_ENOMEM, "out of memory checking invariants");
    int bs = e->block_size, rc = 0;
    for (int i = 0; i < e->n_running && !rc; i++) {
        const eng_req *r = e->running[i];
        seqs[i] = &r->seq;
        if (r->state != ENG_RUNNING)
            rc = inf_error_set(err, INF_ESTATE, "request '%s' is in the running list in state %d",
                               r->id, (int)r->state);
        else if (r->n_computed < 0 || r->n_computed > r->n_tokens || r->n_tokens > r->cap)
            rc = inf_error_set(err, INF_ESTATE, "request '%s': %d computed of %d tokens (cap %d)",
                               r->id, r->n_computed, r->n_tokens, r->cap);
        else if ((int64_t)r->seq.n_blocks * bs < r->n_computed)
            rc = inf_error_set(err, INF_ESTATE, "request '%s': %d blocks cannot hold %d tokens",
                               r->id, r->seq.n_blocks, r->n_computed);
        else if (r->n_tokens > e->cfg.max_model_len)
            rc = inf_error_set(err, INF_ESTATE, "request '%s' has %d tokens > max_model_len %d",
                               r->id, r->n_tokens, e->cfg.max_model_len);
    }
    for (int i = 0; i < e->n_waiting && !rc; i++) {
        const eng_req *r = e->waiting[i];
        if (r->state != ENG_WAITING || r->seq.n_blocks != 0 || r->n_computed != 0)
            rc = inf_error_set(err, INF_ESTATE,
                               "waiting request '%s' (state %d) holds %d blocks, %d computed",
                               r->id, (int)r->state, r->seq.n_blocks, r->n_computed);
    }
    if (!rc) rc = kv_pool_check(e->pool, seqs, e->n_running, err);
    free(seqs);
    if (!rc) {
        pthread_mutex_lock(&e->mu);
        size_t inflight = e->n_inflight, inbox = (size_t)e->n_inbox;
        pthread_mutex_unlock(&e->mu);
        /* Adds racing with this check only raise n_inflight, and only with inbox. */
        if (inflight < (size_t)(e->n_running + e->n_waiting) ||
            inflight > (size_t)(e->n_running + e->n_waiting) + inbox)
            rc = inf_error_set(err, INF_ESTATE,
                               "%zu ids in flight but %d running, %d waiting, %zu in the inbox",
                               inflight, e->n_running, e->n_waiting, inbox);
    }
    return rc;
}
