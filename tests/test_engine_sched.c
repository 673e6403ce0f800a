/* test_engine_sched.c - engine scheduling policy and request lifecycle:
 * priorities and preemption victims, aging, abort and deadlines, validation
 * and duplicate ids, stop strings / stop tokens / length, adds and aborts from
 * another thread, closing with work in flight. Fixture: test_engine.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_engine.h"

/* Saturated engine (max_num_seqs 2): urgent requests added later get their
 * first token before the waiting less urgent ones, immediately (they take a
 * seat from the least urgent running one). */
static void test_priority_order(void) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.max_num_seqs = 2;
    c.max_num_batched_tokens = 32;
    c.aging_ms = 0;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    enum { N = 7 };
    spec s[N];
    outcome o[N];
    memset(s, 0, sizeof s);
    uint64_t st = 99;
    for (int i = 0; i < N; i++) {
        int urgent = i >= 5;
        snprintf(s[i].id, sizeof s[i].id, "%s%d", urgent ? "hi" : "lo", i);
        s[i].n_prompt = 8;
        et_rand_prompt(&st, s[i].prompt, 8);
        s[i].max_tokens = urgent ? 5 : 12;
        s[i].ignore_eos = 1;
        s[i].priority = urgent ? 0 : 5;
        s[i].add_step = urgent ? 3 : 0;
    }
    et_run(e, &clk, s, o, N);
    CU_ASSERT_EQUAL(et_compare_ref(s, o, N), 0);
    /* lo0, lo1 ran from step 0; lo2..lo4 waited. The urgent ones start at
     * step 3 and finish before any waiting low one starts. */
    CU_ASSERT_EQUAL(o[0].first_step, 0);
    CU_ASSERT_EQUAL(o[1].first_step, 0);
    for (int h = 5; h < N; h++) {
        CU_ASSERT_EQUAL(o[h].first_step, 3);
        for (int l = 2; l < 5; l++) CU_ASSERT(o[h].final_step < o[l].first_step);
    }
    /* Both running low ones were preempted (lower priority, not urgent). */
    CU_ASSERT(o[0].n_preempt + o[1].n_preempt == 2);
    for (int h = 5; h < N; h++) CU_ASSERT_EQUAL(o[h].n_preempt, 0);
    engine_close(e);
}

/* Victim choice: the least urgent running one (latest arrival among equals),
 * and only for a strictly more urgent request. */
static void test_preempt_victim_choice(void) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.max_num_seqs = 3;
    c.max_num_batched_tokens = 32;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    enum { N = 6 };
    static const int prio[N] = {3, 5, 5, 0, 4, 5};
    static const int add[N] = {0, 0, 1, 3, 5, 7};
    spec s[N];
    outcome o[N];
    memset(s, 0, sizeof s);
    uint64_t st = 17;
    for (int i = 0; i < N; i++) {
        snprintf(s[i].id, sizeof s[i].id, "v%d", i);
        s[i].n_prompt = 6;
        et_rand_prompt(&st, s[i].prompt, 6);
        s[i].max_tokens = 20;
        s[i].ignore_eos = 1;
        s[i].priority = prio[i];
        s[i].add_step = add[i];
    }
    et_run(e, &clk, s, o, N);
    CU_ASSERT_EQUAL(et_compare_ref(s, o, N), 0);
    /* v3 (p0) takes v2's seat (p5, arrived last); v4 (p4) takes v1's (p5);
     * v5 (p5) displaces nobody and waits. */
    CU_ASSERT_EQUAL(o[0].n_preempt, 0);
    CU_ASSERT_EQUAL(o[1].n_preempt, 1);
    CU_ASSERT_EQUAL(o[2].n_preempt, 1);
    CU_ASSERT_EQUAL(o[3].n_preempt, 0);
    CU_ASSERT_EQUAL(o[4].n_preempt, 0);
    CU_ASSERT_EQUAL(o[5].n_preempt, 0);
    CU_ASSERT_EQUAL(o[3].first_step, 3);
    CU_ASSERT_EQUAL(o[4].first_step, 5);
    CU_ASSERT(o[5].first_step > o[0].final_step);
    engine_close(e);
}

/* A low-priority request while urgent ones keep arriving (one every 2 steps,
 * each 2 tokens, one seat): with aging it runs before every urgent request
 * whose key (priority * aging_ms + arrival_ms) exceeds its own, and after all
 * of those with a smaller key; without aging it starves. */
static void run_aging(int64_t aging_ms, outcome *low, int *n_hi_before, int *n_hi_after_wrong) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.max_num_seqs = 1;
    c.max_num_batched_tokens = 16;
    c.aging_ms = aging_ms;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    enum { NH = 90 };
    static spec s[NH + 1];
    static outcome o[NH + 1];
    memset(s, 0, sizeof s);
    uint64_t st = 3;
    snprintf(s[0].id, sizeof s[0].id, "low");
    s[0].n_prompt = 5;
    et_rand_prompt(&st, s[0].prompt, 5);
    s[0].max_tokens = 3;
    s[0].ignore_eos = 1;
    s[0].priority = 10;
    s[0].add_step = 1;
    for (int i = 1; i <= NH; i++) {
        snprintf(s[i].id, sizeof s[i].id, "hi%d", i);
        s[i].n_prompt = 4;
        et_rand_prompt(&st, s[i].prompt, 4);
        s[i].max_tokens = 2;
        s[i].ignore_eos = 1;
        s[i].priority = 0;
        s[i].add_step = 2 * (i - 1);
    }
    et_run(e, &clk, s, o, NH + 1);
    *low = o[0];
    *n_hi_before = 0;
    *n_hi_after_wrong = 0;
    /* add step k happens at fake time T0 + k ms */
    int64_t low_key = 10 * aging_ms + 1;
    for (int i = 1; i <= NH; i++) {
        int64_t key = aging_ms ? s[i].add_step : 0;
        if (o[i].first_step < o[0].first_step) (*n_hi_before)++;
        if (aging_ms && key > low_key && o[i].first_step < o[0].first_step) (*n_hi_after_wrong)++;
        if (aging_ms && key < low_key && o[i].first_step > o[0].first_step) (*n_hi_after_wrong)++;
    }
    engine_close(e);
}

static void test_aging(void) {
    outcome low;
    int before = 0, wrong = 0;
    run_aging(5, &low, &before, &wrong);
    /* key 51: the urgent requests added at steps 0..50 (26 of them) go first. */
    CU_ASSERT_EQUAL(before, 26);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(low.reason, ENGINE_FINISH_LENGTH);
    /* Without aging every urgent request goes first: it runs only at the end. */
    run_aging(0, &low, &before, &wrong);
    CU_ASSERT_EQUAL(before, 90);
}

static void test_abort_and_deadline(void) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.max_num_seqs = 2;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    enum { N = 7 };
    spec s[N];
    outcome o[N];
    memset(s, 0, sizeof s);
    uint64_t st = 8;
    for (int i = 0; i < N; i++) {
        snprintf(s[i].id, sizeof s[i].id, "a%d", i);
        s[i].n_prompt = 20;
        et_rand_prompt(&st, s[i].prompt, 20);
        s[i].max_tokens = 40;
        s[i].ignore_eos = 1;
        s[i].priority = i;
    }
    int64_t t0_ms = T0_US / 1000;
    s[0].abort_step = 5;              /* running, aborted */
    s[1].deadline_ms = t0_ms + 7;     /* running, deadline */
    s[2].abort_step = 3;              /* waiting, aborted */
    s[3].deadline_ms = t0_ms + 4;     /* waiting, deadline */
    s[4].deadline_ms = t0_ms - 1;     /* already past at add */
    /* a5, a6 complete normally */
    run_result rr = et_run(e, &clk, s, o, N);
    CU_ASSERT_EQUAL(o[0].reason, ENGINE_FINISH_ABORT);
    CU_ASSERT_EQUAL(o[0].final_step, 5);
    CU_ASSERT(o[0].n_toks > 0);
    CU_ASSERT_EQUAL(o[1].reason, ENGINE_FINISH_DEADLINE);
    CU_ASSERT_EQUAL(o[1].final_step, 7);
    CU_ASSERT(o[1].n_toks > 0);
    CU_ASSERT_EQUAL(o[2].reason, ENGINE_FINISH_ABORT);
    CU_ASSERT_EQUAL(o[2].n_toks, 0);
    CU_ASSERT_EQUAL(o[3].reason, ENGINE_FINISH_DEADLINE);
    CU_ASSERT_EQUAL(o[3].n_toks, 0);
    CU_ASSERT_EQUAL(o[3].final_step, 4);
    CU_ASSERT_EQUAL(o[4].reason, ENGINE_FINISH_DEADLINE);
    CU_ASSERT_EQUAL(o[4].final_step, 0);
    CU_ASSERT_EQUAL(o[5].reason, ENGINE_FINISH_LENGTH);
    CU_ASSERT_EQUAL(o[6].reason, ENGINE_FINISH_LENGTH);
    CU_ASSERT_EQUAL(o[5].n_toks, 40);
    CU_ASSERT_EQUAL(rr.stats.n_finished, (uint64_t)N);
    /* Truncated outputs are prefixes of the full greedy output. */
    int32_t ref[64];
    int k = et_ref_generate(s[0].prompt, 20, 40, 1, ref);
    CU_ASSERT(o[0].n_toks <= k);
    CU_ASSERT_EQUAL(memcmp(o[0].toks, ref, (size_t)o[0].n_toks * sizeof *ref), 0);
    /* Nothing to abort any more. */
    CU_ASSERT_EQUAL(engine_abort(e, "a0"), INF_ENOTFOUND);
    CU_ASSERT_EQUAL(engine_abort(e, "never"), INF_ENOTFOUND);
    engine_close(e);
}

static void test_validation_and_duplicates(void) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.max_model_len = 100;
    c.enable_chunked_prefill = 0;
    c.max_num_batched_tokens = 64;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(engine_get_config(e)->max_model_len, 100);
    spec ok;
    memset(&ok, 0, sizeof ok);
    uint64_t st = 11;
    snprintf(ok.id, sizeof ok.id, "dup");
    ok.n_prompt = 10;
    et_rand_prompt(&st, ok.prompt, 10);
    ok.max_tokens = 5;
    ok.ignore_eos = 1;
    outcome o1, o2, junk;
    memset(&o1, 0, sizeof o1);
    inf_error err = {0};
    CU_ASSERT_EQUAL(et_add(e, &ok, &o1, 0, &err), 0);
    /* Duplicate while waiting (still in the inbox). */
    CU_ASSERT_EQUAL(et_add(e, &ok, &junk, 0, &err), INF_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "dup"));
    const engine_event *ev;
    int nev, steps = 0;
    CU_ASSERT_EQUAL(engine_step(e, &ev, &nev, &err), 0);
    et_take_events(ev, nev, 0);
    /* ... and while running. */
    CU_ASSERT_EQUAL(et_add(e, &ok, &junk, 0, &err), INF_EEXIST);

    /* Invalid requests: the error names the problem, nothing is enqueued. */
    sampler_params bad = sampler_params_default();
    bad.top_p = 1.5f;
    spec b = ok;
    snprintf(b.id, sizeof b.id, "bad-params");
    b.params = &bad;
    CU_ASSERT_EQUAL(et_add(e, &b, &junk, 0, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "top_p"));
    b = ok;
    snprintf(b.id, sizeof b.id, "too-long");
    b.n_prompt = 100;
    et_rand_prompt(&st, b.prompt, 100);
    CU_ASSERT_EQUAL(et_add(e, &b, &junk, 0, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_model_len"));
    b.n_prompt = 70; /* fits the model, not one batch, chunking off */
    CU_ASSERT_EQUAL(et_add(e, &b, &junk, 0, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_num_batched_tokens"));
    b.n_prompt = 0;
    CU_ASSERT_EQUAL(et_add(e, &b, &junk, 0, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "empty"));
    b.n_prompt = 3;
    b.prompt[1] = NV + 5;
    CU_ASSERT_EQUAL(et_add(e, &b, &junk, 0, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "vocabulary"));
    b = ok;
    memset(b.id, 'x', sizeof b.id - 1);
    b.id[sizeof b.id - 1] = 0;
    char longid[200];
    memset(longid, 'y', 129);
    longid[129] = 0;
    engine_request q = engine_request_default();
    q.id = longid;
    q.prompt = "hello";
    CU_ASSERT_EQUAL(engine_add(e, &q, &err), INF_EINVAL);
    q.id = "";
    CU_ASSERT_EQUAL(engine_add(e, &q, &err), INF_EINVAL);
    CU_ASSERT_EQUAL(engine_n_inflight(e), 1);

    while (engine_has_work(e) && steps++ < 100) {
        CU_ASSERT_EQUAL(engine_step(e, &ev, &nev, &err), 0);
        et_take_events(ev, nev, steps);
        CU_ASSERT_EQUAL(et_check_inv(e), 0);
    }
    CU_ASSERT_EQUAL(o1.n_final, 1);
    CU_ASSERT_EQUAL(o1.n_toks, 5);
    /* Finished: the id may come again, and gives the same output. */
    memset(&o2, 0, sizeof o2);
    CU_ASSERT_EQUAL(et_add(e, &ok, &o2, 0, &err), 0);
    while (engine_has_work(e) && steps++ < 200) {
        CU_ASSERT_EQUAL(engine_step(e, &ev, &nev, &err), 0);
        et_take_events(ev, nev, steps);
    }
    CU_ASSERT_EQUAL(o2.n_final, 1);
    CU_ASSERT_EQUAL(memcmp(o1.toks, o2.toks, sizeof o1.toks), 0);
    CU_ASSERT_EQUAL(o2.usage.cached_tokens, 0); /* 15 tokens in all: no full block to cache */

    /* Text prompt: tokenized with BOS, counted in usage. */
    spec t;
    memset(&t, 0, sizeof t);
    snprintf(t.id, sizeof t.id, "text");
    t.text = "the cat sat on the mat";
    t.max_tokens = 3;
    t.ignore_eos = 1;
    outcome ot;
    memset(&ot, 0, sizeof ot);
    CU_ASSERT_EQUAL(et_add(e, &t, &ot, 0, &err), 0);
    while (engine_has_work(e) && steps++ < 300) {
        CU_ASSERT_EQUAL(engine_step(e, &ev, &nev, &err), 0);
        et_take_events(ev, nev, steps);
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CU_ASSERT_EQUAL(tok_encode(engine_tokenizer(e), t.text, strlen(t.text), 1, 0, &ids, &n_ids, NULL), 0);
    CU_ASSERT_EQUAL(ot.usage.prompt_tokens, (int)n_ids);
    CU_ASSERT_EQUAL(ot.n_toks, 3);
    free(ids);
    engine_close(e);
}

static void test_stop_and_length(void) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    spec s;
    memset(&s, 0, sizeof s);
    uint64_t st = 21;
    snprintf(s.id, sizeof s.id, "base");
    s.n_prompt = 12;
    et_rand_prompt(&st, s.prompt, 12);
    sampler_params p = sampler_params_default();
    p.temperature = 0;
    p.max_tokens = 24;
    p.ignore_eos = 1;
    p.logprobs = 2;
    /* Keep the text ASCII without NULs (byte tokens 0x00 and >= 0x80 banned),
     * so it decodes the same streamed or whole and a stop string is a C string. */
    CU_ASSERT_EQUAL(sampler_params_add_logit_bias(&p, 3, -100, NULL), 0);
    for (int b = 0x80; b <= 0xFF; b++)
        CU_ASSERT_EQUAL(sampler_params_add_logit_bias(&p, 3 + b, -100, NULL), 0);
    s.params = &p;
    outcome base;
    et_run(e, &clk, &s, &base, 1);
    CU_ASSERT_EQUAL(base.reason, ENGINE_FINISH_LENGTH);
    CU_ASSERT_EQUAL(base.n_toks, 24);
    CU_ASSERT_EQUAL(base.stop_index, -1);
    CU_ASSERT(base.logprob0 <= 0);
    CU_ASSERT_EQUAL(base.n_top0, 2);
    CU_ASSERT(base.logprob0 <= base.top_lp0 + 1e-6f); /* top[0] is the most likely */
    CU_ASSERT(base.top_lp0 <= 0);
    /* The streamed text is the decode of the tokens (nothing held back at the end). */
    char *dec = NULL;
    size_t dec_len = 0;
    CU_ASSERT_EQUAL(tok_decode(engine_tokenizer(e), base.toks, 24, 0, &dec, &dec_len, NULL), 0);
    CU_ASSERT_EQUAL(dec_len, base.text_len);
    CU_ASSERT(dec && memcmp(dec, base.text, dec_len) == 0);
    CU_ASSERT_FATAL(base.text_len >= 8);

    /* A stop string from the middle of that text: output ends right before
     * its first occurrence. */
    char stop[8];
    size_t at = base.text_len / 2;
    memcpy(stop, base.text + at, 3);
    stop[3] = 0;
    char *first = memmem(base.text, base.text_len, stop, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    sampler_params ps;
    CU_ASSERT_EQUAL(sampler_params_copy(&ps, &p, NULL), 0);
    CU_ASSERT_EQUAL(sampler_params_add_stop(&ps, "qqqqqqqqqqqqqq", NULL), 0);
    CU_ASSERT_EQUAL(sampler_params_add_stop(&ps, stop, NULL), 0);
    spec s2 = s;
    snprintf(s2.id, sizeof s2.id, "stopstr");
    s2.params = &ps;
    outcome o2;
    et_run(e, &clk, &s2, &o2, 1);
    CU_ASSERT_EQUAL(o2.reason, ENGINE_FINISH_STOP);
    CU_ASSERT_EQUAL(o2.stop_index, 1);
    CU_ASSERT_EQUAL(o2.text_len, (size_t)(first - base.text));
    CU_ASSERT_EQUAL(memcmp(o2.text, base.text, o2.text_len), 0);
    CU_ASSERT(o2.n_toks < 24);
    CU_ASSERT_EQUAL(memcmp(o2.toks, base.toks, (size_t)o2.n_toks * sizeof(int32_t)), 0);
    sampler_params_free(&ps);

    /* A stop token id: the first occurrence of base's 6th token ends it. */
    int32_t stop_tok = base.toks[5];
    int idx = 0;
    while (base.toks[idx] != stop_tok) idx++;
    sampler_params pt = p;
    pt.stop_token_ids = &stop_tok;
    pt.n_stop_token_ids = 1;
    spec s3 = s;
    snprintf(s3.id, sizeof s3.id, "stoptok");
    s3.params = &pt;
    outcome o3;
    et_run(e, &clk, &s3, &o3, 1);
    CU_ASSERT_EQUAL(o3.reason, ENGINE_FINISH_STOP);
    CU_ASSERT_EQUAL(o3.stop_token, stop_tok);
    CU_ASSERT_EQUAL(o3.n_toks, idx + 1);
    CU_ASSERT_EQUAL(o3.usage.completion_tokens, idx + 1);

    /* max_model_len ends generation with "length" too. */
    engine_close(e);
    c.max_model_len = 20;
    e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    spec s4 = s;
    snprintf(s4.id, sizeof s4.id, "ctx");
    outcome o4;
    et_run(e, &clk, &s4, &o4, 1);
    CU_ASSERT_EQUAL(o4.reason, ENGINE_FINISH_LENGTH);
    CU_ASSERT_EQUAL(o4.n_toks, 20 - 12);
    free(dec);
    sampler_params_free(&p);
    engine_close(e);
}

/* ---- threads ------------------------------------------------------------------- */

enum { TN = 40 };

typedef struct thread_ctx {
    engine *e;
    spec *s;
    outcome *o;
    int add_rc[TN];
    int abort_rc[TN];
    volatile int done;
} thread_ctx;

static void *adder(void *arg) {
    thread_ctx *t = arg;
    for (int i = 0; i < TN; i++) {
        inf_error err = {0};
        t->add_rc[i] = et_add(t->e, &t->s[i], &t->o[i], 0, &err);
        if (i % 5 == 4) t->abort_rc[i - 2] = engine_abort(t->e, t->s[i - 2].id);
        if (i % 7 == 0) {
            /* A duplicate while in flight (or just finished): never a crash. */
            outcome junk;
            int rc = et_add(t->e, &t->s[i], &junk, 0, &err);
            if (rc == 0) t->add_rc[i] = 1000; /* finished already; junk gets events */
        }
    }
    __atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_threads(void) {
    engine_config c = engine_config_default(); /* real clock */
    c.n_threads = 1;
    c.kv_cache_bytes = 20 * BLOCK_BYTES;
    c.max_num_seqs = 4;
    c.max_num_batched_tokens = 32;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    static spec s[TN];
    static outcome o[TN];
    memset(s, 0, sizeof s);
    memset(o, 0, sizeof o);
    uint64_t st = 55;
    for (int i = 0; i < TN; i++) {
        snprintf(s[i].id, sizeof s[i].id, "t%d", i);
        s[i].n_prompt = 5 + (int)(tu_rand_u64(&st) % 30);
        et_rand_prompt(&st, s[i].prompt, s[i].n_prompt);
        s[i].max_tokens = 6;
        s[i].ignore_eos = 1;
        s[i].priority = (int)(tu_rand_u64(&st) % 3);
    }
    thread_ctx t = {.e = e, .s = s, .o = o};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, adder, &t), 0);
    int step = 0, bad = 0;
    while (!__atomic_load_n(&t.done, __ATOMIC_SEQ_CST) || engine_has_work(e)) {
        const engine_event *ev;
        int nev;
        inf_error err = {0};
        if (engine_step(e, &ev, &nev, &err)) bad++;
        for (int i = 0; i < nev; i++) {
            outcome *oo = ev[i].user;
            if (oo < o || oo >= o + TN) continue; /* a duplicate accepted late */
            if (ev[i].type == ENGINE_EVENT_TOKEN) oo->n_toks++;
            else {
                oo->n_final++;
                oo->reason = ev[i].reason;
            }
        }
        if (et_check_inv(e)) bad++;
        if (++step > 200000) break;
    }
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(bad, 0);
    for (int i = 0; i < TN; i++) {
        CU_ASSERT_EQUAL(t.add_rc[i] == 1000 ? 0 : t.add_rc[i], 0);
        CU_ASSERT_EQUAL(o[i].n_final, 1);
        int aborted = i % 5 == 2 && t.abort_rc[i] == 0;
        if (o[i].reason == ENGINE_FINISH_ABORT) {
            CU_ASSERT(aborted);
        } else {
            CU_ASSERT_EQUAL(o[i].n_toks, 6);
        }
    }
    engine_stats st2;
    engine_stats_get(e, &st2);
    CU_ASSERT_EQUAL(st2.kv_blocks_used, 0);
    engine_close(e);
}

/* Closing with requests in flight frees them (leaks show under ASan). */
static void test_close_in_flight(void) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    spec s[3];
    outcome o[3];
    memset(s, 0, sizeof s);
    uint64_t st = 1;
    for (int i = 0; i < 3; i++) {
        snprintf(s[i].id, sizeof s[i].id, "c%d", i);
        s[i].n_prompt = 30;
        et_rand_prompt(&st, s[i].prompt, 30);
        s[i].max_tokens = 50;
        CU_ASSERT_EQUAL(et_add(e, &s[i], &o[i], 0, NULL), 0);
    }
    const engine_event *ev;
    int nev;
    CU_ASSERT_EQUAL(engine_step(e, &ev, &nev, NULL), 0);
    CU_ASSERT_EQUAL(nev, 2); /* 30 + 30 + 4 of the third prompt */
    CU_ASSERT_EQUAL(engine_n_inflight(e), 3);
    engine_close(e);
    /* Bad configurations are refused with a message. */
    inf_error err = {0};
    c.max_num_seqs = 100;
    c.max_num_batched_tokens = 50;
    CU_ASSERT_EQUAL(engine_open(&e, &c, et_model, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_num_batched_tokens"));
    c = et_config(&clk);
    c.backend = "tpu";
    CU_ASSERT_EQUAL(engine_open(&e, &c, et_model, &err), INF_EUNSUPPORTED);
}

void test_register_engine_sched(void) {
    CU_pSuite s = CU_add_suite("engine_sched", et_suite_init, et_suite_clean);
    CU_add_test(s, "urgent requests overtake waiting ones", test_priority_order);
    CU_add_test(s, "preemption victim choice", test_preempt_victim_choice);
    CU_add_test(s, "aging admits a low-priority request (bound)", test_aging);
    CU_add_test(s, "abort and deadline, waiting and running", test_abort_and_deadline);
    CU_add_test(s, "validation errors and duplicate ids", test_validation_and_duplicates);
    CU_add_test(s, "stop strings, stop tokens, length, logprobs", test_stop_and_length);
    CU_add_test(s, "adds and aborts from another thread", test_threads);
    CU_add_test(s, "close with requests in flight; bad configs", test_close_in_flight);
}
