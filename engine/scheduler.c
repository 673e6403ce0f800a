/* scheduler.c - one engine iteration: deadlines and aborts, iteration-level
 * scheduling with priorities, chunked prefill, preemption and prefix caching,
 * one backend forward over the packed batch, then sampling and events.
 *
 * Every sequence is "tokens [0, n_tokens) of which [0, n_computed) have their
 * K/V in the cache". A new request has n_computed = 0 (or the prefix-cache
 * hit); a decoding one has exactly one pending token (the last sampled); a
 * preempted one drops to n_computed = 0 and later recomputes prompt and
 * generated tokens like a longer prompt. Logits are needed only when a
 * sequence's last pending token is computed, and then the next token is
 * sampled - so a recomputation resumes exactly where the sequence stopped.
 *
 * Per step the plan is built in this order, with a token budget of
 * max_num_batched_tokens:
 *   1. running sequences with one pending token (decodes), most urgent first;
 *   2. running sequences with more pending (prompt chunks), most urgent first;
 *   3. waiting requests, most urgent first, while max_num_seqs allows.
 * KV blocks are reserved as tokens are planned. When the pool is full, the
 * least urgent running sequence that is strictly less urgent than the one in
 * need is preempted (and dropped from the plan if it was in it); if there is
 * none, a running sequence preempts itself and a waiting one stays waiting
 * (and so do all less urgent ones, keeping the priority order). An urgent
 * waiting request facing max_num_seqs preempts the same way.
 *
 * Sampling: when the backend can sample on the device and every row of the
 * step is device-samplable (sampler_device_ok), the forward keeps its logits
 * on the device and one backend_cuda_sample call draws every row
 * (sample_on_device); otherwise the logits are copied and each row goes
 * through the CPU sampler (emit_token). Both end in emit_result, which
 * records the token and produces the events.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "engine_internal.h"

int sched_cmp(const eng_req *a, const eng_req *b) {
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    if (a->arrival_us != b->arrival_us) return a->arrival_us < b->arrival_us ? -1 : 1;
    if (a->seqno != b->seqno) return a->seqno < b->seqno ? -1 : 1;
    return 0;
}

static int cmp_ptr(const void *x, const void *y) {
    return sched_cmp(*(eng_req *const *)x, *(eng_req *const *)y);
}

/* ---- deadlines and aborts ---------------------------------------------------- */

static int finish_expired(engine *e, int64_t now) {
    int rc = 0;
    for (int pass = 0; pass < 2; pass++) {
        eng_req **list = pass ? e->running : e->waiting;
        int *n = pass ? &e->n_running : &e->n_waiting;
        for (int i = 0; i < *n;) {
            eng_req *r = list[i];
            engine_finish_reason why = ENGINE_FINISH_NONE;
            if (r->abort_requested) why = ENGINE_FINISH_ABORT;
            else if (r->deadline_us && now >= r->deadline_us) why = ENGINE_FINISH_DEADLINE;
            if (why == ENGINE_FINISH_NONE) {
                i++;
                continue;
            }
            memmove(list + i, list + i + 1, (size_t)(*n - i - 1) * sizeof *list);
            (*n)--;
            /* Held-back bytes (a possible stop-string start) are dropped. */
            int r2 = eng_finish(e, r, why, 0, NULL, -1, -1);
            if (r2 && !rc) rc = r2;
        }
    }
    return rc;
}

/* ---- planning ------------------------------------------------------------------- */

typedef struct plan {
    eng_req **reqs; /* planned sequences, in batch order */
    int n;
    int budget;     /* tokens left */
} plan;

static void plan_drop(plan *p, eng_req *r) {
    if (!r->sched_n) return;
    p->budget += r->sched_n;
    r->sched_n = 0;
    eng_list_remove(p->reqs, &p->n, r);
}

/* Frees r's blocks and moves it from running to the requeue list (merged
 * into the waiting list after planning). On failure nothing changes. */
static int preempt(engine *e, plan *p, eng_req *r, eng_req ***requeue, int *n_rq, int *cap_rq) {
    if (eng_list_push(requeue, n_rq, cap_rq, r)) return INF_ENOMEM;
    plan_drop(p, r);
    kv_seq_release(e->pool, &r->seq);
    r->n_computed = 0;
    r->state = ENG_WAITING;
    r->was_preempted = 1;
    r->victim = 1;
    r->n_preemptions++;
    e->n_preemptions++;
    eng_list_remove(e->running, &e->n_running, r);
    return 0;
}

/* The least urgent running sequence strictly less urgent than r (NULL: none). */
static eng_req *pick_victim(engine *e, const eng_req *r) {
    eng_req *v = NULL;
    for (int i = 0; i < e->n_running; i++) {
        eng_req *c = e->running[i];
        if (c == r || sched_cmp(c, r) <= 0) continue;
        if (!v || sched_cmp(c, v) > 0) v = c;
    }
    return v;
}

static int cmp_i32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* Whether preempting every running sequence less urgent than r would free
 * enough blocks for `need` more: a block comes free only when all of its
 * references belong to those victims. Avoids preemptions that cannot help. */
static int victims_could_free(engine *e, const eng_req *r, int need) {
    int avail = kv_pool_n_available(e->pool);
    if (avail >= need) return 1;
    int n = 0;
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] != r && sched_cmp(e->running[i], r) > 0) n += e->running[i]->seq.n_blocks;
    if (avail + n < need) return 0;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return 1; /* fall back to trying */
    int k = 0;
    for (int i = 0; i < e->n_running; i++) {
        const eng_req *c = e->running[i];
        if (c == r || sched_cmp(c, r) <= 0) continue;
        memcpy(ids + k, c->seq.blocks, (size_t)c->seq.n_blocks * sizeof *ids);
        k += c->seq.n_blocks;
    }
    qsort(ids, (size_t)n, sizeof *ids, cmp_i32);
    int freed = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && ids[j] == ids[i]) j++;
        if (kv_pool_block_refcount(e->pool, ids[i]) == j - i) freed++;
        i = j;
    }
    free(ids);
    return avail + freed >= need;
}

/* Reserves blocks for r to hold n_total tokens, preempting less urgent
 * running sequences as needed. 1: reserved; 0: no room; < 0: error. */
static int reserve(engine *e, plan *p, eng_req *r, int n_total, eng_req ***rq, int *n_rq,
                   int *cap_rq, inf_error *err) {
    if (!victims_could_free(e, r, kv_seq_blocks_needed(e->pool, &r->seq, n_total))) return 0;
    for (;;) {
        inf_error tmp = {0};
        int rc = kv_seq_reserve(e->pool, &r->seq, n_total, &tmp);
        if (rc == 0) return 1;
        if (rc != INF_EFULL) {
            if (err) *err = tmp;
            return rc;
        }
        eng_req *v = pick_victim(e, r);
        if (!v) return 0;
        if (preempt(e, p, v, rq, n_rq, cap_rq))
            return inf_error_set(err, INF_ENOMEM, "out of memory requeueing a preempted request");
    }
}

/* How many of r's pending tokens to plan given the budget (0: none now). */
static int chunk_size(const engine *e, const plan *p, const eng_req *r) {
    int pending = r->n_tokens - r->n_computed;
    int n = pending < p->budget ? pending : p->budget;
    /* Chunking off: a waiting request starts only if all its pending tokens
     * fit this forward. Running ones with several pending tokens are
     * recomputations longer than one forward: they go on in any size. */
    if (!e->cfg.enable_chunked_prefill && n < pending && r->state == ENG_WAITING &&
        pending <= e->cfg.max_num_batched_tokens)
        return 0;
    return n;
}

static int plan_add(plan *p, eng_req *r, int n) {
    r->sched_n = n;
    p->reqs[p->n++] = r;
    p->budget -= n;
    return 0;
}

/* Builds the plan; victims of preemption are appended to e->waiting. */
static int build_plan(engine *e, plan *p, int64_t now, inf_error *err) {
    eng_req **rq = NULL;
    int n_rq = 0, cap_rq = 0, rc = 0;
    for (int i = 0; i < e->n_running; i++) {
        e->running[i]->sched_n = 0;
        e->running[i]->victim = 0;
    }
    for (int i = 0; i < e->n_waiting; i++) {
        e->waiting[i]->sched_n = 0;
        e->waiting[i]->victim = 0;
    }
    /* Snapshot of the running set in urgency order: preemptions edit the
     * running list while we walk it. */
    int n_snap = e->n_running;
    eng_req **snap = e->snap;
    if (n_snap) memcpy(snap, e->running, (size_t)n_snap * sizeof *snap);
    qsort(snap, (size_t)n_snap, sizeof *snap, cmp_ptr);

    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (int i = 0; i < n_snap && !rc && p->budget > 0; i++) {
            eng_req *r = snap[i];
            if (r->victim || r->sched_n) continue;
            int pending = r->n_tokens - r->n_computed;
            if ((pass == 0) != (pending == 1)) continue;
            int n = chunk_size(e, p, r);
            if (n == 0) continue;
            int ok = reserve(e, p, r, r->n_computed + n, &rq, &n_rq, &cap_rq, err);
            if (ok < 0) rc = ok;
            else if (ok) plan_add(p, r, n);
            else if (preempt(e, p, r, &rq, &n_rq, &cap_rq))
                rc = inf_error_set(err, INF_ENOMEM, "out of memory requeueing a request");
        }
    }

    /* Waiting requests, most urgent first. */
    if (!rc) qsort(e->waiting, (size_t)e->n_waiting, sizeof *e->waiting, cmp_ptr);
    int admitted = 0;
    for (int i = 0; i < e->n_waiting && !rc && p->budget > 0; i++) {
        eng_req *w = e->waiting[i];
        /* Full and nobody to displace: stop here (also keeps priority order). */
        if (e->n_running >= e->cfg.max_num_seqs && !pick_victim(e, w)) break;
        int cached = 0;
        if (e->cfg.enable_prefix_caching) {
            cached = kv_seq_match_prefix(e->pool, &w->seq, w->tokens, w->n_tokens, err);
            if (cached < 0) {
                rc = cached;
                break;
            }
        }
        w->n_computed = cached;
        int n = chunk_size(e, p, w);
        int ok = n > 0 ? reserve(e, p, w, cached + n, &rq, &n_rq, &cap_rq, err) : 0;
        /* Blocks first, then a seat: a preemption for max_num_seqs only
         * happens once w is sure to run. */
        if (ok > 0 && e->n_running >= e->cfg.max_num_seqs) {
            eng_req *v = pick_victim(e, w);
            if (!v) ok = 0;
            else if (preempt(e, p, v, &rq, &n_rq, &cap_rq))
                ok = inf_error_set(err, INF_ENOMEM, "out of memory requeueing a request");
        }
        if (ok <= 0) {
            /* Not now: give the matched blocks back, keep the priority order. */
            kv_seq_release(e->pool, &w->seq);
            w->n_computed = 0;
            if (ok < 0) rc = ok;
            break;
        }
        if (e->cfg.enable_prefix_caching) {
            e->prefix_query += (uint64_t)w->n_tokens;
            e->prefix_hit += (uint64_t)cached;
        }
        if (!w->admitted_once) {
            w->admitted_once = 1;
            w->cached_tokens = cached;
        }
        w->state = ENG_RUNNING;
        w->was_preempted = 0;
        if (!w->first_sched_us) w->first_sched_us = now;
        if (eng_list_push(&e->running, &e->n_running, &e->cap_running, w)) {
            kv_seq_release(e->pool, &w->seq);
            w->n_computed = 0;
            w->state = ENG_WAITING;
            rc = inf_error_set(err, INF_ENOMEM, "out of memory admitting a request");
            break;
        }
        plan_add(p, w, n);
        e->waiting[i] = NULL;
        admitted++;
    }
    /* Compact the waiting list (admitted ones were NULLed), then requeue victims. */
    if (admitted) {
        int k = 0;
        for (int i = 0; i < e->n_waiting; i++)
            if (e->waiting[i]) e->waiting[k++] = e->waiting[i];
        e->n_waiting = k;
    }
    for (int i = 0; i < n_rq; i++) {
        if (eng_list_push(&e->waiting, &e->n_waiting, &e->cap_waiting, rq[i])) {
            /* Could not requeue: it gets its final event instead of vanishing. */
            eng_finish(e, rq[i], ENGINE_FINISH_NONE, INF_ENOMEM,
                       "out of memory requeueing the request", -1, -1);
            if (!rc) rc = inf_error_set(err, INF_ENOMEM, "out of memory requeueing a request");
        }
    }
    free(rq);
    return rc;
}

/* ---- sampling and events -------------------------------------------------------- */

/* r failed (code, msg): it leaves the running list with its final ERROR
 * event. Returns 1 (r is freed) or < 0 when even the event failed. */
static int fail_req(engine *e, eng_req *r, int code, const char *msg) {
    eng_list_remove(e->running, &e->n_running, r);
    int r2 = eng_finish(e, r, ENGINE_FINISH_NONE, code, msg, -1, -1);
    return r2 ? r2 : 1;
}

/* Emits the token r's sampler chose (*res, from either path): records it in
 * the sampler, detokenizes, matches stop strings, emits the TOKEN event and,
 * when r is done, its final event. Returns 1 if r finished (it is freed), 0
 * if it goes on, < 0 on engine failure. */
static int emit_result(engine *e, eng_req *r, const sampler_result *res, int64_t now) {
    inf_error err = {0};
    int rc = sampler_accept(r->smp, res->token, &err);
    if (rc) return fail_req(e, r, rc, err.msg);
    int32_t tok = res->token;
    int gram_done = 0;
    if ((rc = eng_gram_accept(e, r, tok, &gram_done, &err))) return fail_req(e, r, rc, err.msg);
    r->tokens[r->n_tokens++] = tok;
    e->generated++;
    int32_t stop_tok = -1;
    sampler_finish fin = sampler_check_finish(r->smp, tok, &stop_tok);
    int armed = sampler_n_generated(r->smp) >= sampler_get_params(r->smp)->min_tokens;

    /* Text: detokenizer -> stop matcher; at the end also both flushes. */
    char *text = NULL;
    size_t text_len = 0, text_cap = 0;
    int stop_index = -1, oom = 0;
#define APPEND(ptr, len)                                                        \
    do {                                                                        \
        if ((len) > 0) {                                                        \
            if (text_len + (len) > text_cap) {                                  \
                size_t nc = (text_len + (len)) * 2 + 16;                        \
                char *nt = realloc(text, nc);                                   \
                if (!nt) { oom = 1; break; }                                    \
                text = nt;                                                      \
                text_cap = nc;                                                  \
            }                                                                   \
            memcpy(text + text_len, (ptr), (len));                              \
            text_len += (len);                                                  \
        }                                                                       \
    } while (0)
    const char *piece = NULL;
    size_t piece_len = 0;
    stop_match_out mo = {0};
    rc = tok_stream_push(r->detok, tok, &piece, &piece_len, &err);
    if (!rc) rc = stop_matcher_feed(r->stop, piece, piece_len, armed, &mo, &err);
    if (!rc) {
        APPEND(mo.text, mo.len);
        stop_index = mo.stop_index;
    }
    engine_finish_reason reason = ENGINE_FINISH_NONE;
    if (!rc) {
        if (stop_index >= 0) reason = ENGINE_FINISH_STOP;
        else if (fin == SAMPLER_FINISH_STOP) reason = ENGINE_FINISH_STOP;
        else if (gram_done) reason = ENGINE_FINISH_STOP; /* complete; only EOS could follow */
        else if (fin == SAMPLER_FINISH_LENGTH || r->n_tokens >= e->cfg.max_model_len)
            reason = ENGINE_FINISH_LENGTH;
    }
    if (!rc && reason != ENGINE_FINISH_NONE && stop_index < 0) {
        /* Release what the detokenizer and the matcher still hold; the
         * detokenizer tail may itself complete a stop string. */
        rc = tok_stream_finish(r->detok, &piece, &piece_len, &err);
        if (!rc) rc = stop_matcher_feed(r->stop, piece, piece_len, armed, &mo, &err);
        if (!rc) {
            APPEND(mo.text, mo.len);
            if (mo.stop_index >= 0) {
                stop_index = mo.stop_index;
                reason = ENGINE_FINISH_STOP;
            } else {
                stop_match_out fo;
                stop_matcher_flush(r->stop, &fo);
                APPEND(fo.text, fo.len);
            }
        }
    }
#undef APPEND
    if (!rc && oom) rc = inf_error_set(&err, INF_ENOMEM, "out of memory for output text");

    eng_event_slot *s = eng_event_new(e, ENGINE_EVENT_TOKEN, r);
    if (!s) {
        free(text);
        return INF_ENOMEM;
    }
    s->token = tok;
    s->ev.n_tokens = 1;
    s->text = text;
    s->ev.text = text;
    s->ev.text_len = text_len;
    if (r->logprobs >= 0) {
        s->logprob = res->logprob;
        s->ev.logprobs = &s->logprob; /* re-pointed when the step returns */
        s->ev.n_top = res->n_top;
        memcpy(s->top, res->top, (size_t)res->n_top * sizeof *s->top);
    }
    if (!r->first_token_us) {
        r->first_token_us = now;
        s->ev.first = 1;
        s->ev.ttft_ms = (double)(now - r->arrival_us) / 1000.0;
    } else {
        s->ev.itl_ms = (double)(now - r->last_token_us) / 1000.0;
    }
    r->last_token_us = now;

    if (rc) return fail_req(e, r, rc, err.msg);
    if (reason == ENGINE_FINISH_NONE) return 0;
    eng_list_remove(e->running, &e->n_running, r);
    int r2 = eng_finish(e, r, reason, 0, NULL, stop_index, stop_index >= 0 ? -1 : stop_tok);
    return r2 ? r2 : 1;
}

/* The host path: samples r's next token from its logits row with the CPU
 * sampler, then emit_result. */
static int emit_token(engine *e, eng_req *r, float *row, int64_t now) {
    inf_error err = {0};
    sampler_result res;
    if (r->gm && r->mask_rc) return fail_req(e, r, r->mask_rc, r->mask_msg);
    int rc = sampler_sample(r->smp, row, e->n_vocab, &res, &err);
    if (rc) return fail_req(e, r, rc, err.msg);
    return emit_result(e, r, &res, now);
}

/* 1 if every row this step samples can be sampled on the device. */
static int step_on_device(const engine *e, eng_req **reqs, int n) {
    if (!e->dev_sampling) return 0;
    int rows = 0;
    for (int s = 0; s < n; s++) {
        if (!e->b_seqs_logits[s]) continue;
        if (!sampler_device_ok(reqs[s]->smp)) return 0;
        if (reqs[s]->gm && !e->dev_masks) return 0;
        rows++;
    }
    return rows > 0;
}

/* The device path, after a forward that kept its logits on the device: one
 * row per sequence with b_seqs_logits (reqs[s] NULL: failed since; its row is
 * sampled greedily and dropped), all sampled by one backend_cuda_sample call,
 * then emit_result for each. Returns < 0 only on engine failure. */
static int sample_on_device(engine *e, eng_req **reqs, int n_seqs) {
    int n = 0, rc = 0;
    size_t cap = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (!e->b_seqs_logits[s]) continue;
        e->d_req[n++] = reqs[s];
        if (reqs[s]) cap += sampler_mods_bound(reqs[s]->smp);
    }
    if (cap > e->cap_d_mods || !e->d_mods) {
        size_t nc = cap * 2 > 64 ? cap * 2 : 64;
        sampler_mod *m = realloc(e->d_mods, nc * sizeof *m);
        if (!m) {
            for (int i = 0; i < n; i++)
                if (e->d_req[i]) {
                    int r2 = fail_req(e, e->d_req[i], INF_ENOMEM, "out of memory for sampling");
                    if (r2 < 0 && !rc) rc = r2;
                }
            return rc;
        }
        e->d_mods = m;
        e->cap_d_mods = nc;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        eng_req *r = e->d_req[i];
        inf_error err = {0};
        if (r && sampler_device_row(r->smp, &e->d_rows[i], e->d_mods + off, cap - off, &err)) {
            int r2 = fail_req(e, r, err.code ? err.code : INF_EINVAL, err.msg);
            if (r2 < 0 && !rc) rc = r2;
            e->d_req[i] = r = NULL;
        }
        if (r && r->gm && r->mask_rc) { /* no valid mask: the row fails like a host row would */
            int r2 = fail_req(e, r, r->mask_rc, r->mask_msg);
            if (r2 < 0 && !rc) rc = r2;
            e->d_req[i] = r = NULL;
        }
        e->d_masks[i] = r && r->gm ? r->mask : NULL;
        if (!r) memset(&e->d_rows[i], 0, sizeof e->d_rows[i]); /* greedy, nothing else */
        off += (size_t)e->d_rows[i].n_mod;
    }
    inf_error err = {0};
    backend_cuda_sample_out out = {e->d_tok, e->d_lp, e->d_status, e->d_top_tok, e->d_top_lp};
    int src = backend_cuda_sample_masked(e->be, e->d_rows, n, e->d_mods, (int)off,
                                         (const uint32_t *const *)e->d_masks, &out, &err);
    /* The tokens exist now (the forward ran asynchronously until here). */
    int64_t now = eng_now_us(e);
    int top = 0;
    for (int i = 0; i < n; i++) {
        eng_req *r = e->d_req[i];
        int nt = e->d_rows[i].n_top;
        top += nt;
        if (!r) continue;
        int r2;
        if (src) {
            r2 = fail_req(e, r, src, err.msg);
        } else if (e->d_status[i]) {
            r2 = fail_req(e, r, INF_EINVAL,
                          e->d_status[i] == 1 ? "a logit is NaN or +inf; logits must be finite or -inf"
                                              : "every token is masked (all logits are -inf)");
        } else {
            sampler_result res;
            res.token = e->d_tok[i];
            res.logprob = e->d_lp[i];
            res.n_top = nt;
            for (int k = 0; k < nt; k++) {
                res.top[k].token = e->d_top_tok[top - nt + k];
                res.top[k].logprob = e->d_top_lp[top - nt + k];
            }
            e->device_rows++;
            r2 = emit_result(e, r, &res, now);
        }
        if (r2 < 0 && !rc) rc = r2;
    }
    return rc;
}

/* ---- the step ------------------------------------------------------------------- */

/* Every planned request fails with the forward's error (one final event each). */
static int fail_plan(engine *e, plan *p, int code, const char *msg) {
    int rc = 0;
    for (int i = 0; i < p->n; i++) {
        eng_req *r = p->reqs[i];
        eng_list_remove(e->running, &e->n_running, r);
        int r2 = eng_finish(e, r, ENGINE_FINISH_NONE, code, msg, -1, -1);
        if (r2 && !rc) rc = r2;
    }
    p->n = 0;
    return rc;
}

int sched_step(engine *e, inf_error *err) {
    int64_t now = eng_now_us(e);
    int rc = finish_expired(e, now);
    if (rc) return inf_error_set(err, rc, "out of memory for events");
    if (e->n_running == 0 && e->n_waiting == 0) return 0;

    plan p = {e->plan, 0, e->cfg.max_num_batched_tokens};
    rc = build_plan(e, &p, now, err);
    if (rc || p.n == 0) {
        /* A failed plan still holds reserved blocks; they belong to running
         * sequences and stay consistent, so only the error is reported. */
        return rc;
    }

    /* Pack the batch in plan order (decodes first). */
    int nt = 0;
    for (int s = 0; s < p.n; s++) {
        eng_req *r = p.reqs[s];
        e->b_seqs[s].blocks = r->seq.blocks;
        e->b_seqs[s].n_blocks = r->seq.n_blocks;
        e->b_seqs_logits[s] = r->n_computed + r->sched_n == r->n_tokens;
        for (int j = 0; j < r->sched_n; j++) {
            int pos = r->n_computed + j;
            e->b_tokens[nt] = r->tokens[pos];
            e->b_pos[nt] = pos;
            e->b_seq[nt] = s;
            e->b_need[nt] = pos == r->n_tokens - 1;
            nt++;
        }
    }
    backend_batch bt = {nt, e->b_tokens, e->b_pos, e->b_seq, e->b_need, p.n, e->b_seqs};
    inf_error ferr = {0};
    /* Device sampling when every row allows it: the logits stay there. */
    int on_dev = step_on_device(e, p.reqs, p.n);
    /* The next masks of the constrained rows are computed while the forward runs. */
    eng_gram_masks_start(e, p.reqs, e->b_seqs_logits, p.n);
    int frc = backend_forward(e->be, &bt, on_dev ? NULL : e->logits, &ferr);
    eng_gram_masks_wait(e);
    e->n_steps++;
    /* Tokens exist once the forward is done: TTFT and inter-token latency
     * are measured to here, not to the start of the step. */
    now = eng_now_us(e);
    if (frc) {
        rc = fail_plan(e, &p, frc, ferr.msg);
        return rc ? inf_error_set(err, rc, "out of memory for events") : 0;
    }

    /* Bookkeeping first (all sequences), then sampling, which may free some. */
    for (int s = 0; s < p.n; s++) {
        eng_req *r = p.reqs[s];
        for (int j = 0; j < r->sched_n; j++) {
            if (r->n_computed + j < r->n_prompt) e->prompt_computed++;
            else if (r->n_computed + j < r->n_tokens - 1) e->recomputed++;
        }
        r->n_computed += r->sched_n;
        r->sched_n = 0;
        if (e->cfg.enable_prefix_caching) {
            inf_error cerr = {0};
            int crc = kv_seq_commit_full_blocks(e->pool, &r->seq, r->tokens, r->n_computed, &cerr);
            if (crc) {
                /* Cannot happen with a consistent pool; fail just this request. */
                eng_list_remove(e->running, &e->n_running, r);
                int r2 = eng_finish(e, r, ENGINE_FINISH_NONE, crc, cerr.msg, -1, -1);
                if (r2 && !rc) rc = r2;
                p.reqs[s] = NULL;
            }
        }
    }
    if (on_dev) {
        rc = sample_on_device(e, p.reqs, p.n);
        if (rc) return inf_error_set(err, rc, "out of memory for events");
        return 0;
    }
    /* Logits rows follow batch order: one per sequence whose pending tokens
     * all got computed. Keep going after a failure so no sequence is left
     * computed but unsampled. */
    int li = 0;
    for (int s = 0; s < p.n; s++) {
        eng_req *r = p.reqs[s];
        if (!e->b_seqs_logits[s]) continue;
        float *row = e->logits + (size_t)li++ * (size_t)e->n_vocab;
        if (!r) continue; /* failed above; its row is skipped */
        e->host_rows++;
        int er = emit_token(e, r, row, now);
        if (er < 0 && !rc) rc = er;
    }
    if (rc) return inf_error_set(err, rc, "out of memory for events");
    return 0;
}
