/* test_engine.c - the engine on a small random model: batched outputs equal
 * each request alone (chunked or whole prompts, prefix caching on or off),
 * preemption under KV pressure, shared prefixes, and the real stories260K.
 *
 * The independent truth for greedy outputs is a plain loop over the backend
 * (one sequence, whole prompt, argmax with ties to the lowest id), never the
 * scheduler. Every test drives the engine through a common driver that checks
 * the engine invariants (KV pool included) after every step, counts final
 * events per request, and at the end requires that no KV block is in use.
 * Scheduling policy tests are in test_engine_sched.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gguf.h"
#include "model_random.h"
#include "quant.h"
#include "test_engine.h"

char et_model[1024];

int et_suite_init(void) {
    if (et_model[0]) return 0; /* the other engine suite wrote it already */
    model_random_opts o = {0};
    o.n_layer = 2;
    o.n_embd = 64;
    o.n_head = 4;
    o.n_head_kv = 2;
    o.n_ff = 128;
    o.n_vocab = NV;
    o.n_ctx = 512;
    o.type = GGML_TYPE_F16;
    o.arch = "llama";
    o.rope_freq_base = 10000.0f;
    o.seed = 7;
    snprintf(et_model, sizeof et_model, "%s", tu_tmpfile("engine_model.gguf"));
    inf_error err = {0};
    if (model_random_write(et_model, &o, &err)) {
        fprintf(stderr, "model_random_write: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* ---- fake clock ------------------------------------------------------------ */

int64_t et_clock_now(void *ctx) { return ((fclock *)ctx)->now_us; }

engine_config et_config(fclock *clk) {
    engine_config c = engine_config_default();
    c.n_threads = 1;
    c.kv_cache_bytes = 256 * BLOCK_BYTES;
    c.max_num_seqs = 8;
    c.max_num_batched_tokens = 64;
    c.clock_us = et_clock_now;
    c.clock_ctx = clk;
    c.seed = 99;
    return c;
}

engine *et_open(const engine_config *c) {
    engine *e = NULL;
    inf_error err = {0};
    if (engine_open(&e, c, et_model, &err)) fprintf(stderr, "\nengine_open: %s\n", err.msg);
    return e;
}

/* ---- reference: greedy loop straight on the backend -------------------------- */

static backend *g_ref_be;
static gguf_file *g_ref_file;

static int ref_open(void) {
    if (g_ref_be) return 0;
    inf_error err = {0};
    if (gguf_open(&g_ref_file, et_model, &err)) return -1;
    backend_config bc = backend_config_default();
    bc.n_threads = 1;
    bc.kv_cache_bytes = 40 * BLOCK_BYTES;
    bc.max_batch_tokens = 512;
    return backend_cpu_create(&g_ref_be, g_ref_file, &bc, &err);
}

int et_suite_clean(void) {
    backend_free(g_ref_be);
    gguf_close(g_ref_file);
    g_ref_be = NULL;
    g_ref_file = NULL;
    return 0;
}

static int32_t argmax(const float *l) {
    int32_t b = 0;
    for (int32_t i = 1; i < NV; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Greedy continuation of prompt: up to max_tokens, ending at EOS unless
 * ignore_eos. Returns the number of tokens written to out. */
int et_ref_generate(const int32_t *prompt, int n, int max_tokens, int ignore_eos,
                        int32_t *out) {
    CU_ASSERT_EQUAL_FATAL(ref_open(), 0);
    int32_t blocks[40], pos[512], seqi[512], toks[512];
    uint8_t need[512];
    for (int i = 0; i < 40; i++) blocks[i] = i;
    backend_seq s = {blocks, 40};
    float *logits = malloc(NV * sizeof(float));
    for (int i = 0; i < n; i++) {
        toks[i] = prompt[i];
        pos[i] = i;
        seqi[i] = 0;
        need[i] = i == n - 1;
    }
    backend_batch bt = {n, toks, pos, seqi, need, 1, &s};
    CU_ASSERT_EQUAL_FATAL(backend_forward(g_ref_be, &bt, logits, NULL), 0);
    int k = 0;
    for (;;) {
        int32_t t = argmax(logits);
        out[k++] = t;
        if ((t == EOS && !ignore_eos) || k == max_tokens) break;
        toks[0] = t;
        pos[0] = n + k - 1;
        need[0] = 1;
        backend_batch b1 = {1, toks, pos, seqi, need, 1, &s};
        CU_ASSERT_EQUAL_FATAL(backend_forward(g_ref_be, &b1, logits, NULL), 0);
    }
    free(logits);
    return k;
}

/* ---- driver ------------------------------------------------------------------- */




int et_add(engine *e, spec *s, outcome *o, int64_t now_ms, inf_error *err) {
    sampler_params p = sampler_params_default();
    p.temperature = 0;
    p.max_tokens = s->max_tokens;
    p.ignore_eos = s->ignore_eos;
    engine_request q = engine_request_default();
    q.id = s->id;
    if (s->text) q.prompt = s->text;
    else {
        q.prompt_tokens = s->prompt;
        q.n_prompt_tokens = s->n_prompt;
    }
    q.params = s->params ? s->params : &p;
    q.priority = s->priority;
    q.deadline_ms = s->deadline_ms;
    q.arrival_ms = now_ms;
    q.user = o;
    return engine_add(e, &q, err);
}

void et_take_events(const engine_event *ev, int n, int step) {
    for (int i = 0; i < n; i++) {
        outcome *o = ev[i].user;
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        CU_ASSERT_EQUAL(o->n_final, 0); /* nothing after the final event */
        if (ev[i].type == ENGINE_EVENT_TOKEN) {
            o->n_token_events++;
            if (ev[i].first) {
                o->n_first++;
                o->first_step = step;
                if (ev[i].logprobs) {
                    o->logprob0 = ev[i].logprobs[0];
                    o->n_top0 = ev[i].n_top;
                    o->top_lp0 = ev[i].n_top ? ev[i].top_logprobs[0].logprob : 1.0f;
                }
            }
            for (int k = 0; k < ev[i].n_tokens && o->n_toks < MAXTOK; k++)
                o->toks[o->n_toks++] = ev[i].tokens[k];
            CU_ASSERT(o->text_len + ev[i].text_len <= sizeof o->text);
            if (ev[i].text_len && o->text_len + ev[i].text_len <= sizeof o->text) {
                memcpy(o->text + o->text_len, ev[i].text, ev[i].text_len);
                o->text_len += ev[i].text_len;
            }
        } else {
            o->n_final++;
            o->final_step = step;
            if (ev[i].type == ENGINE_EVENT_FINISHED) {
                o->reason = ev[i].reason;
                o->usage = ev[i].usage;
                o->n_preempt = ev[i].n_preemptions;
                o->stop_index = ev[i].stop_index;
                o->stop_token = ev[i].stop_token;
                CU_ASSERT_EQUAL(ev[i].text_len, 0); /* text comes in TOKEN events */
            } else {
                o->err_code = ev[i].code;
                snprintf(o->err_msg, sizeof o->err_msg, "%s", ev[i].message);
            }
        }
    }
}

int et_check_inv(engine *e) {
    inf_error err = {0};
    int rc = engine_check_invariants(e, &err);
    if (rc) printf("\n  invariant: %s\n", err.msg);
    return rc;
}

/* Adds specs at their steps, steps until idle, checking invariants each step. */
run_result et_run(engine *e, fclock *clk, spec *specs, outcome *outs, int n) {
    run_result rr = {0};
    memset(outs, 0, (size_t)n * sizeof *outs);
    for (int i = 0; i < n; i++) outs[i].first_step = outs[i].final_step = -1;
    int max_add = 0;
    for (int i = 0; i < n; i++)
        if (specs[i].add_step > max_add) max_add = specs[i].add_step;
    for (int step = 0; step < 5000; step++) {
        for (int i = 0; i < n; i++) {
            if (specs[i].add_step == step) {
                inf_error err = {0};
                int rc = et_add(e, &specs[i], &outs[i], clk->now_us / 1000, &err);
                if (rc) printf("\n  add %s: %s\n", specs[i].id, err.msg);
                CU_ASSERT_EQUAL(rc, 0);
            }
            if (specs[i].abort_step == step && step > 0)
                engine_abort(e, specs[i].id);
        }
        if (step > max_add && !engine_has_work(e)) break;
        const engine_event *ev;
        int nev;
        inf_error err = {0};
        int rc = engine_step(e, &ev, &nev, &err);
        CU_ASSERT_EQUAL(rc, 0);
        et_take_events(ev, nev, step);
        if (et_check_inv(e)) rr.invariant_failures++;
        clk->now_us += 1000;
        rr.steps = step + 1;
    }
    CU_ASSERT_FALSE(engine_has_work(e));
    CU_ASSERT_EQUAL(rr.invariant_failures, 0);
    engine_stats_get(e, &rr.stats);
    CU_ASSERT_EQUAL(rr.stats.kv_blocks_used, 0);
    CU_ASSERT_EQUAL(rr.stats.n_running, 0);
    CU_ASSERT_EQUAL(rr.stats.n_waiting, 0);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(outs[i].n_final, 1);
        CU_ASSERT(outs[i].n_first <= 1);
    }
    return rr;
}

void et_rand_prompt(uint64_t *st, int32_t *p, int n) {
    for (int i = 0; i < n; i++) p[i] = 3 + (int32_t)(tu_rand_u64(st) % (NV - 3));
}

/* Checks every outcome against the reference; returns mismatches. */
int et_compare_ref(const spec *specs, const outcome *outs, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int32_t ref[MAXTOK];
        int k = et_ref_generate(specs[i].prompt, specs[i].n_prompt, specs[i].max_tokens,
                             specs[i].ignore_eos, ref);
        int same = outs[i].n_toks == k && memcmp(outs[i].toks, ref, (size_t)k * sizeof *ref) == 0;
        if (!same) {
            printf("\n  %s: %d tokens vs %d in the reference\n", specs[i].id, outs[i].n_toks, k);
            bad++;
        }
        engine_finish_reason want =
            (k > 0 && ref[k - 1] == EOS && !specs[i].ignore_eos) ? ENGINE_FINISH_STOP
                                                                  : ENGINE_FINISH_LENGTH;
        if (outs[i].reason != want) bad++;
        if (outs[i].usage.completion_tokens != k || outs[i].usage.prompt_tokens != specs[i].n_prompt)
            bad++;
        if (outs[i].n_token_events != k) bad++;
    }
    return bad;
}

/* 10 requests, different lengths and arrival steps, some sharing a prefix. */
static int mixed_specs(spec *s, uint64_t seed) {
    uint64_t st = seed;
    int n = 10;
    int32_t shared[40];
    et_rand_prompt(&st, shared, 40);
    memset(s, 0, (size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) {
        snprintf(s[i].id, sizeof s[i].id, "req-%d", i);
        s[i].n_prompt = 3 + (int)(tu_rand_u64(&st) % 60);
        et_rand_prompt(&st, s[i].prompt, s[i].n_prompt);
        if (i % 3 == 0 && s[i].n_prompt > 20) memcpy(s[i].prompt, shared, 20 * sizeof(int32_t));
        if (i % 3 == 1) {
            s[i].n_prompt = 40 + i;
            memcpy(s[i].prompt, shared, 40 * sizeof(int32_t));
        }
        s[i].max_tokens = 4 + (int)(tu_rand_u64(&st) % 21);
        s[i].ignore_eos = i % 2;
        s[i].add_step = (int)(tu_rand_u64(&st) % 12);
    }
    return n;
}
/* ---- tests -------------------------------------------------------------------- */

static void run_mixed(int chunked, int prefix, int batch_tokens) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.enable_chunked_prefill = chunked;
    c.enable_prefix_caching = prefix;
    c.max_num_batched_tokens = batch_tokens;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    spec s[10];
    outcome o[10];
    int n = mixed_specs(s, 1234);
    run_result rr = et_run(e, &clk, s, o, n);
    CU_ASSERT_EQUAL(et_compare_ref(s, o, n), 0);
    uint64_t prompt_total = 0, cached = 0;
    for (int i = 0; i < n; i++) {
        prompt_total += (uint64_t)s[i].n_prompt;
        cached += (uint64_t)o[i].usage.cached_tokens;
    }
    /* No preemption here, so every prompt token is computed or cached, once. */
    CU_ASSERT_EQUAL(rr.stats.n_preemptions, 0);
    CU_ASSERT_EQUAL(rr.stats.prompt_tokens_computed + cached, prompt_total);
    if (!prefix) CU_ASSERT_EQUAL(cached, 0);
    engine_close(e);
}

static void test_batch_equals_alone(void) {
    run_mixed(1, 0, 16);  /* chunked, small batches force chunking */
    run_mixed(1, 1, 16);
    run_mixed(0, 0, 64);  /* whole prompts */
    run_mixed(0, 1, 64);
}

/* The scheduler really interleaves: some step computes tokens of several
 * sequences, and a long prompt is split while others decode. */
static void test_chunking_interleaves(void) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.max_num_batched_tokens = 16;
    c.enable_prefix_caching = 0;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    spec s[2];
    outcome o[2];
    memset(s, 0, sizeof s);
    uint64_t st = 5;
    snprintf(s[0].id, sizeof s[0].id, "short");
    s[0].n_prompt = 4;
    s[0].max_tokens = 30;
    s[0].ignore_eos = 1;
    snprintf(s[1].id, sizeof s[1].id, "long");
    s[1].n_prompt = 150;
    s[1].max_tokens = 3;
    s[1].ignore_eos = 1;
    s[1].add_step = 2;
    s[1].priority = -1; /* more urgent, still behind the decode */
    et_rand_prompt(&st, s[0].prompt, s[0].n_prompt);
    et_rand_prompt(&st, s[1].prompt, s[1].n_prompt);
    et_run(e, &clk, s, o, 2);
    CU_ASSERT_EQUAL(et_compare_ref(s, o, 2), 0);
    /* 150 prompt tokens in chunks of at most 15 (one slot goes to the
     * decode): >= 10 steps; the short request decoded one token in each. */
    CU_ASSERT_EQUAL(o[1].first_step, 2 + 9);
    CU_ASSERT(o[0].n_toks == 30);
    CU_ASSERT(o[0].final_step == 29); /* one token per step, never stalled */
    engine_close(e);

    /* Chunking off: a 64-token prompt needs the whole batch, so it waits
     * for the decoding request to finish and then runs in one forward. */
    clk.now_us = T0_US;
    c.enable_chunked_prefill = 0;
    c.max_num_batched_tokens = 64;
    e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    s[1].n_prompt = 64;
    et_run(e, &clk, s, o, 2);
    CU_ASSERT_EQUAL(et_compare_ref(s, o, 2), 0);
    CU_ASSERT_EQUAL(o[0].final_step, 29);
    CU_ASSERT_EQUAL(o[1].first_step, 30);
    engine_close(e);
}

static void run_preempt(int prefix, int *preemptions) {
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.kv_cache_bytes = 12 * BLOCK_BYTES; /* 192 token slots for 8 x ~50 tokens */
    c.enable_prefix_caching = prefix;
    c.max_num_batched_tokens = 32;
    engine *e = et_open(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    spec s[8];
    outcome o[8];
    memset(s, 0, sizeof s);
    uint64_t st = 77;
    for (int i = 0; i < 8; i++) {
        snprintf(s[i].id, sizeof s[i].id, "p%d", i);
        s[i].n_prompt = 10 + 3 * i;
        et_rand_prompt(&st, s[i].prompt, s[i].n_prompt);
        s[i].max_tokens = 30 + i;
        s[i].ignore_eos = 1;
        s[i].priority = i % 3;
        s[i].add_step = i / 3;
    }
    run_result rr = et_run(e, &clk, s, o, 8);
    CU_ASSERT_EQUAL(et_compare_ref(s, o, 8), 0);
    int sum = 0;
    for (int i = 0; i < 8; i++) sum += o[i].n_preempt;
    CU_ASSERT(rr.stats.n_preemptions > 0);
    CU_ASSERT_EQUAL((uint64_t)sum, rr.stats.n_preemptions);
    if (rr.stats.n_preemptions > 0) CU_ASSERT(rr.stats.recomputed_tokens > 0 || prefix);
    *preemptions = sum;
    engine_close(e);
}

static void test_preemption_keeps_outputs(void) {
    int a = 0, b = 0;
    run_preempt(0, &a);
    run_preempt(1, &b);
    CU_ASSERT(a > 0);
    CU_ASSERT(b > 0);
}

/* Seeded sampling: the same tokens with and without preemptions. */
static void test_preemption_seeded_sampling(void) {
    outcome alone[6], squeezed[6];
    spec s[6];
    sampler_params p[6];
    memset(s, 0, sizeof s);
    uint64_t st = 4242;
    for (int i = 0; i < 6; i++) {
        snprintf(s[i].id, sizeof s[i].id, "s%d", i);
        s[i].n_prompt = 12 + 5 * i;
        et_rand_prompt(&st, s[i].prompt, s[i].n_prompt);
        p[i] = sampler_params_default();
        p[i].temperature = 0.9f;
        p[i].top_k = 40;
        p[i].has_seed = 1;
        p[i].seed = 1000 + (uint64_t)i;
        p[i].max_tokens = 40;
        p[i].ignore_eos = 1;
        p[i].repetition_penalty = 1.1f;
        s[i].params = &p[i];
    }
    for (int pass = 0; pass < 2; pass++) {
        fclock clk = {T0_US};
        engine_config c = et_config(&clk);
        c.enable_prefix_caching = 0;
        if (pass) c.kv_cache_bytes = 10 * BLOCK_BYTES;
        engine *e = et_open(&c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        if (pass == 0) {
            for (int i = 0; i < 6; i++) et_run(e, &clk, &s[i], &alone[i], 1);
        } else {
            run_result rr = et_run(e, &clk, s, squeezed, 6);
            CU_ASSERT(rr.stats.n_preemptions > 0);
        }
        engine_close(e);
    }
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(alone[i].n_toks, 40);
        CU_ASSERT_EQUAL(squeezed[i].n_toks, 40);
        CU_ASSERT_EQUAL(memcmp(alone[i].toks, squeezed[i].toks, sizeof alone[i].toks), 0);
        CU_ASSERT_EQUAL(alone[i].text_len, squeezed[i].text_len);
    }
}

static void test_prefix_sharing(void) {
    enum { N = 5, PREFIX = 48, BS = 16 };
    spec s[N];
    memset(s, 0, sizeof s);
    uint64_t st = 31337;
    int32_t shared[PREFIX];
    et_rand_prompt(&st, shared, PREFIX);
    uint64_t total = 0;
    for (int i = 0; i < N; i++) {
        snprintf(s[i].id, sizeof s[i].id, "x%d", i);
        memcpy(s[i].prompt, shared, sizeof shared);
        int extra = 1 + i * 4; /* x0 shares 48 + 1: still matches 48 (< 49) */
        et_rand_prompt(&st, s[i].prompt + PREFIX, extra);
        s[i].n_prompt = PREFIX + extra;
        s[i].max_tokens = 6;
        s[i].ignore_eos = 1;
        s[i].add_step = i == 0 ? 0 : 10; /* x0 first, the rest later, together */
        total += (uint64_t)s[i].n_prompt;
    }
    uint64_t computed[2];
    for (int prefix = 0; prefix < 2; prefix++) {
        fclock clk = {T0_US};
        engine_config c = et_config(&clk);
        c.enable_prefix_caching = prefix;
        engine *e = et_open(&c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        outcome o[N];
        run_result rr = et_run(e, &clk, s, o, N);
        CU_ASSERT_EQUAL(et_compare_ref(s, o, N), 0);
        computed[prefix] = rr.stats.prompt_tokens_computed;
        CU_ASSERT_EQUAL(o[0].usage.cached_tokens, 0);
        for (int i = 1; i < N; i++)
            CU_ASSERT_EQUAL(o[i].usage.cached_tokens, prefix ? PREFIX / BS * BS : 0);
        if (prefix) {
            CU_ASSERT_EQUAL(rr.stats.prefix_hit_tokens, (uint64_t)(N - 1) * PREFIX);
            CU_ASSERT(rr.stats.prefix_hit_rate > 0.5);
        }
        engine_close(e);
    }
    CU_ASSERT_EQUAL(computed[0], total);
    CU_ASSERT_EQUAL(computed[1], total - (uint64_t)(N - 1) * PREFIX);
}


/* Random configurations (tiny KV pools, small batches, few seats, random
 * priorities, chunking and prefix caching on or off, random aborts and
 * deadlines): the engine never hangs, invariants hold at every step, each
 * request gets one final event, completed outputs equal the reference and
 * cut ones are prefixes of it. */
static void test_random_configs(void) {
    enum { N = 12 };
    uint64_t st = 2024;
    int total_preempt = 0;
    for (int round = 0; round < 8; round++) {
        fclock clk = {T0_US};
        engine_config c = et_config(&clk);
        c.kv_cache_bytes = (size_t)(8 + tu_rand_u64(&st) % 24) * BLOCK_BYTES;
        c.max_num_seqs = 1 + (int)(tu_rand_u64(&st) % 6);
        c.max_num_batched_tokens = c.max_num_seqs + 4 + (int)(tu_rand_u64(&st) % 60);
        c.enable_chunked_prefill = round % 2 == 0;
        if (!c.enable_chunked_prefill && c.max_num_batched_tokens < 60)
            c.max_num_batched_tokens = 60;
        c.enable_prefix_caching = (round / 2) % 2 == 0;
        c.aging_ms = (int64_t)(tu_rand_u64(&st) % 3) * 4;
        engine *e = et_open(&c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        spec sp[N];
        outcome o[N];
        memset(sp, 0, sizeof sp);
        int32_t shared[32];
        et_rand_prompt(&st, shared, 32);
        for (int i = 0; i < N; i++) {
            snprintf(sp[i].id, sizeof sp[i].id, "r%d-%d", round, i);
            sp[i].n_prompt = 1 + (int)(tu_rand_u64(&st) % 60);
            et_rand_prompt(&st, sp[i].prompt, sp[i].n_prompt);
            if (tu_rand_u64(&st) % 2 && sp[i].n_prompt > 32) memcpy(sp[i].prompt, shared, sizeof shared);
            sp[i].max_tokens = 1 + (int)(tu_rand_u64(&st) % 40);
            sp[i].ignore_eos = (int)(tu_rand_u64(&st) % 2);
            sp[i].priority = (int)(tu_rand_u64(&st) % 4);
            sp[i].add_step = (int)(tu_rand_u64(&st) % 30);
            int fate = (int)(tu_rand_u64(&st) % 8);
            if (fate == 0) sp[i].abort_step = sp[i].add_step + 1 + (int)(tu_rand_u64(&st) % 20);
            if (fate == 1)
                sp[i].deadline_ms = T0_US / 1000 + sp[i].add_step + (int64_t)(tu_rand_u64(&st) % 20);
        }
        run_result rr = et_run(e, &clk, sp, o, N);
        CU_ASSERT(rr.steps < 5000);
        total_preempt += (int)rr.stats.n_preemptions;
        for (int i = 0; i < N; i++) {
            int32_t ref[MAXTOK];
            int k = et_ref_generate(sp[i].prompt, sp[i].n_prompt, sp[i].max_tokens, sp[i].ignore_eos, ref);
            int cut = o[i].reason == ENGINE_FINISH_ABORT || o[i].reason == ENGINE_FINISH_DEADLINE;
            CU_ASSERT_EQUAL(o[i].err_code, 0);
            CU_ASSERT(cut ? o[i].n_toks <= k : o[i].n_toks == k);
            CU_ASSERT(o[i].n_toks <= k && memcmp(o[i].toks, ref, (size_t)o[i].n_toks * sizeof *ref) == 0);
            if (!cut) CU_ASSERT(o[i].reason == ENGINE_FINISH_STOP || o[i].reason == ENGINE_FINISH_LENGTH);
        }
        engine_close(e);
    }
    CU_ASSERT(total_preempt > 0);
}

/* The real tiny model: text in, llama.cpp's greedy text out, for several
 * requests batched together (three share the prompt, so prefix caching and
 * batching both take part). */
static void test_stories260k(void) {
    const char *path = tu_shared_file("models/stories260K.gguf");
    if (!path) {
        tu_skip("../shared/models/stories260K.gguf not found");
        return;
    }
    fclock clk = {T0_US};
    engine_config c = et_config(&clk);
    c.kv_cache_bytes = 4 << 20;
    engine *e = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(engine_open(&e, &c, path, &err), 0);
    static const char *prompts[4] = {"Once upon a time", "Once upon a time", "Once upon a time",
                                     "Tom and"};
    outcome o[4];
    memset(o, 0, sizeof o);
    sampler_params p = sampler_params_default();
    p.temperature = 0;
    p.max_tokens = 12;
    for (int i = 0; i < 4; i++) {
        engine_request q = engine_request_default();
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        q.id = id;
        q.prompt = prompts[i];
        q.params = &p;
        q.user = &o[i];
        q.arrival_ms = T0_US / 1000 + i;
        CU_ASSERT_EQUAL(engine_add(e, &q, &err), 0);
        const engine_event *ev;
        int nev;
        CU_ASSERT_EQUAL(engine_step(e, &ev, &nev, &err), 0); /* staggered arrivals */
        et_take_events(ev, nev, i);
    }
    for (int step = 4; engine_has_work(e) && step < 100; step++) {
        const engine_event *ev;
        int nev;
        CU_ASSERT_EQUAL(engine_step(e, &ev, &nev, &err), 0);
        et_take_events(ev, nev, step);
        CU_ASSERT_EQUAL(et_check_inv(e), 0);
    }
    static const char want[] = ", there was a little girl named Lily";
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(o[i].n_final, 1);
        CU_ASSERT(o[i].text_len >= sizeof want - 1 && memcmp(o[i].text, want, sizeof want - 1) == 0);
        CU_ASSERT_EQUAL(o[i].usage.prompt_tokens, 5); /* BOS 403 407 261 378 */
    }
    CU_ASSERT_EQUAL(o[3].n_final, 1);
    engine_close(e);
}

void test_register_engine(void) {
    CU_pSuite s = CU_add_suite("engine", et_suite_init, et_suite_clean);
    CU_add_test(s, "10 requests batched equal each alone (chunked/whole, prefix on/off)",
                test_batch_equals_alone);
    CU_add_test(s, "chunked prefill interleaves with decoding", test_chunking_interleaves);
    CU_add_test(s, "KV pressure preempts; outputs unchanged", test_preemption_keeps_outputs);
    CU_add_test(s, "seeded sampling unchanged by preemption", test_preemption_seeded_sampling);
    CU_add_test(s, "shared prefix is computed once", test_prefix_sharing);
    CU_add_test(s, "random configurations, aborts and deadlines", test_random_configs);
    CU_add_test(s, "stories260K greedy text through the engine", test_stories260k);
}
