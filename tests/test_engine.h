/* test_engine.h - fixture shared by the engine suites (test_engine.c,
 * test_engine_sched.c): a small random model, a fake clock, a greedy
 * reference straight on the backend, and a driver that adds requests at
 * given steps, steps the engine until idle and checks the engine invariants
 * after every step. */
#ifndef INF_TEST_ENGINE_H
#define INF_TEST_ENGINE_H

#include <stdint.h>

#include "engine.h"
#include "testutil.h"

#define NV 300          /* vocabulary of the test model */
#define EOS 2
#define MAXTOK 320
#define T0_US 1700000000000000LL /* fake epoch time of step 0 */
#define BLOCK_BYTES 4096         /* K+V of one 16-token block: 2*2 layers*32*16*2 bytes */

extern char et_model[1024]; /* path of the random test model */

typedef struct fclock {
    int64_t now_us;
} fclock;

typedef struct spec {
    char id[40];
    int32_t prompt[200];
    int n_prompt;
    const char *text;      /* text prompt instead of tokens */
    int max_tokens, ignore_eos, priority;
    int add_step;          /* step before which it is added */
    int64_t deadline_ms;
    int abort_step;        /* > 0: engine_abort before this step */
    sampler_params *params; /* optional override (max_tokens/ignore_eos then unused) */
} spec;

typedef struct outcome {
    int32_t toks[MAXTOK];
    int n_toks;
    char text[4096];
    size_t text_len;
    int n_final, n_first, n_token_events;
    engine_finish_reason reason;
    int err_code;
    char err_msg[256];
    engine_usage usage;
    int n_preempt, stop_index;
    int32_t stop_token;
    int first_step, final_step;
    float logprob0, top_lp0;
    int n_top0;
} outcome;

typedef struct run_result {
    int steps;
    int invariant_failures;
    engine_stats stats;
} run_result;

/* Suite init / cleanup: write the model; free the reference backend. */
int et_suite_init(void);
int et_suite_clean(void);

int64_t et_clock_now(void *ctx);
/* Test defaults: 1 thread, 256 KV blocks, 8 seqs, 64-token batches, fake clock. */
engine_config et_config(fclock *clk);
/* engine_open on the test model; NULL (message printed) on failure. */
engine *et_open(const engine_config *c);

/* Greedy continuation straight on the backend: up to max_tokens, ending at
 * EOS unless ignore_eos. Returns the token count. */
int et_ref_generate(const int32_t *prompt, int n, int max_tokens, int ignore_eos, int32_t *out);

/* Adds s (greedy unless s->params) with arrival now_ms; user = o. */
int et_add(engine *e, spec *s, outcome *o, int64_t now_ms, inf_error *err);
/* Folds one step's events into their outcomes (event user pointers). */
void et_take_events(const engine_event *ev, int n, int step);
/* engine_check_invariants, printing the message on failure. */
int et_check_inv(engine *e);
/* Adds specs at their steps (aborts at abort_step), steps until idle (fake
 * clock +1 ms per step), checks invariants each step, one final event per
 * request and no KV block in use at the end. */
run_result et_run(engine *e, fclock *clk, spec *specs, outcome *outs, int n);
void et_rand_prompt(uint64_t *st, int32_t *p, int n);
/* Mismatches of outcomes against et_ref_generate (tokens, reason, usage). */
int et_compare_ref(const spec *specs, const outcome *outs, int n);

#endif
