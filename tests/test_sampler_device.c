/* test_sampler_device.c - suite "sampler_device": the host side of device
 * sampling, without a GPU.
 *
 *   - sampler_device_row (the row + modifier list the CUDA kernel gets, and
 *     the uniform number it draws) applied by a naive reference written here
 *     (full sort, prefix filters, draw in id order; float arithmetic where the
 *     sampler's contract fixes it) gives sampler_sample's token at every step
 *     of seeded requests, for every sampling parameter, including exact ties
 *     at the top_k / top_p cuts (lower ids kept) and min_tokens masks;
 *   - the raw top-N logprobs sampler_sample reports match the reference;
 *   - sampler_device_ok refuses very long penalty histories;
 *   - the CPU backend refuses a NULL logits buffer, and the engine on the CPU
 *     samples every row on the host and validates gpu_memory_fraction.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "engine.h"
#include "gguf.h"
#include "model_random.h"
#include "sampler.h"
#include "testutil.h"

/* ---- the naive reference of one device row ---------------------------------- */

typedef struct ref_tok {
    float l;
    int id;
} ref_tok;

static int ref_cmp(const void *a, const void *b) {
    const ref_tok *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static float ref_w(float l, float mx, double inv_t) {
    return expf((float)(((double)l - mx) * inv_t));
}

/* Applies row + mods to a copy of raw and samples with row->u. Also fills
 * *lp (the token's raw logprob) and top[0..row->n_top) (raw, best first). */
static int ref_sample(const float *raw, int V, const sampler_row *row, const sampler_mod *mods,
                      float *lp, sampler_logprob *top) {
    float *l = malloc((size_t)V * sizeof *l);
    memcpy(l, raw, (size_t)V * sizeof *l);
    for (int k = 0; k < row->n_mod; k++) {
        const sampler_mod *m = &mods[k];
        float x = l[m->token];
        /* one IEEE single operation at a time, as the contract says */
        if (m->rep && row->repetition_penalty != 1.0f)
            x = x > 0 ? (float)((double)x / row->repetition_penalty)
                      : (float)((double)x * row->repetition_penalty);
        if (m->gen_count) {
            float pen = (float)((double)m->gen_count * row->frequency_penalty);
            pen = (float)((double)pen + row->presence_penalty);
            x = (float)((double)x - pen);
        }
        if (m->bias != 0) x = (float)((double)x + m->bias);
        if (m->mask) x = -INFINITY;
        l[m->token] = x;
    }
    /* raw log-softmax and top-N */
    double mxr = -INFINITY, s = 0;
    for (int i = 0; i < V; i++) mxr = fmax(mxr, raw[i]);
    for (int i = 0; i < V; i++) s += exp((double)raw[i] - mxr);
    double lse = mxr + log(s);
    ref_tok *r = malloc((size_t)V * sizeof *r);
    for (int i = 0; i < V; i++) r[i] = (ref_tok){raw[i], i};
    qsort(r, (size_t)V, sizeof *r, ref_cmp);
    for (int k = 0; k < row->n_top; k++) top[k] = (sampler_logprob){r[k].id, (float)(r[k].l - lse)};
    /* rank the modified logits; -inf never kept */
    int m = 0;
    for (int i = 0; i < V; i++)
        if (l[i] != -INFINITY) r[m++] = (ref_tok){l[i], i};
    qsort(r, (size_t)m, sizeof *r, ref_cmp);
    int tok;
    if (row->temperature < SAMPLER_GREEDY_EPS) {
        tok = r[0].id;
    } else {
        double inv_t = 1.0 / row->temperature, mx = r[0].l;
        int keep = row->top_k > 0 && row->top_k < m ? row->top_k : m;
        if (row->top_p < 1.0f) {
            double z = 0, cum = 0;
            for (int i = 0; i < keep; i++) z += ref_w(r[i].l, (float)mx, inv_t);
            int j = 0;
            while (j < keep && cum < (double)row->top_p * z) cum += ref_w(r[j++].l, (float)mx, inv_t);
            keep = j;
        }
        if (row->min_p > 0) {
            int j = 0;
            while (j < keep && ((double)r[j].l - mx) * inv_t >= log((double)row->min_p)) j++;
            keep = j;
        }
        /* the kept prefix, drawn in id order */
        char *in = calloc((size_t)V, 1);
        double z = 0;
        for (int i = 0; i < keep; i++) {
            in[r[i].id] = 1;
            z += ref_w(r[i].l, (float)mx, inv_t);
        }
        double target = row->u * z, cum = 0;
        tok = -1;
        for (int i = 0; i < V && tok < 0; i++)
            if (in[i]) {
                cum += ref_w(l[i], (float)mx, inv_t);
                if (target < cum) tok = i;
            }
        for (int i = V - 1; tok < 0 && i >= 0; i--)
            if (in[i]) tok = i;
        free(in);
    }
    *lp = (float)((double)raw[tok] - lse);
    free(r);
    free(l);
    return tok;
}

/* ---- row extraction against sampler_sample ---------------------------------------- */

typedef struct rcase {
    const char *name;
    float temp;
    int top_k;
    float top_p, min_p, rep, pres, freq;
    int logprobs, min_tokens, bias, ignore_eos, ties;
} rcase;

static const rcase CASES[] = {
    {"greedy", 0, -1, 1, 0, 1, 0, 0, -1, 0, 0, 0, 0},
    {"greedy+logprobs 5", 0, -1, 1, 0, 1, 0, 0, 5, 0, 0, 0, 0},
    {"temperature", 0.8f, -1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0},
    {"top_k", 1.0f, 40, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0},
    {"top_p", 0.7f, -1, 0.9f, 0, 1, 0, 0, 5, 0, 0, 0, 0},
    {"min_p", 1.1f, -1, 1, 0.05f, 1, 0, 0, -1, 0, 0, 0, 0},
    {"top_k+top_p+min_p", 1.3f, 50, 0.8f, 0.02f, 1, 0, 0, 5, 0, 0, 0, 0},
    {"penalties", 0.9f, 20, 1, 0, 1.3f, 0.5f, 0.2f, 0, 0, 0, 0, 0},
    {"penalties greedy", 0, -1, 1, 0, 1.5f, 1.0f, 0.3f, 5, 0, 0, 0, 0},
    {"rep only", 1.0f, -1, 0.95f, 0, 0.8f, 0, 0, -1, 0, 0, 0, 0},
    {"presence only", 1.0f, -1, 1, 0, 1, -1.5f, 0, -1, 0, 0, 0, 0},
    {"logit bias", 0.6f, -1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0},
    {"min_tokens", 1.0f, -1, 1, 0, 1.2f, 0, 0.1f, 5, 6, 1, 0, 0},
    {"min_tokens ignore_eos", 0, -1, 1, 0, 1, 0, 0, 0, 6, 0, 1, 0},
    {"ties top_k", 1.0f, 7, 1, 0, 1, 0, 0, 3, 0, 0, 0, 1},
    {"ties top_p", 1.0f, -1, 0.35f, 0, 1, 0, 0, 3, 0, 0, 0, 1},
    {"ties top_k+top_p", 2.0f, 9, 0.5f, 0, 1, 0, 0, 0, 0, 0, 0, 1},
    {"ties greedy", 0, -1, 1, 0, 1, 0, 0, 5, 0, 0, 0, 1},
};

/* Logits of step `step`: random, or (ties) a few levels with many tokens each. */
static void step_logits(float *l, int V, int ties, uint64_t *rng) {
    for (int i = 0; i < V; i++) {
        if (ties) {
            int lvl = (int)(tu_rand_u64(rng) % 6);
            l[i] = lvl == 5 ? 3.0f : lvl == 4 ? 2.5f : (float)lvl * 0.25f - 1.0f;
        } else {
            l[i] = tu_rand_uniform(rng, -8, 8);
        }
    }
}

static void test_row_matches_sample(void) {
    const int V = 997;
    int32_t eos[2] = {2, 5};
    int32_t prompt[12] = {3, 4, 5, 11, 11, 17, 4, 900, 901, 3, 40, 41};
    for (size_t ci = 0; ci < sizeof CASES / sizeof *CASES; ci++) {
        const rcase *c = &CASES[ci];
        sampler_params sp = sampler_params_default();
        sp.temperature = c->temp;
        sp.top_k = c->top_k;
        sp.top_p = c->top_p;
        sp.min_p = c->min_p;
        sp.repetition_penalty = c->rep;
        sp.presence_penalty = c->pres;
        sp.frequency_penalty = c->freq;
        sp.logprobs = c->logprobs;
        sp.min_tokens = c->min_tokens;
        sp.ignore_eos = c->ignore_eos;
        sp.max_tokens = 64;
        sp.has_seed = 1;
        sp.seed = 1000 + ci;
        inf_error err = {0};
        if (c->bias || c->min_tokens) {
            sampler_params_add_logit_bias(&sp, 11, 2.5f, &err);
            sampler_params_add_logit_bias(&sp, 5, -1.0f, &err);  /* also EOS */
            sampler_params_add_logit_bias(&sp, 600, 7.0f, &err); /* not in the history */
        }
        if (c->min_tokens) {
            sampler_params_add_stop_token(&sp, 7, &err);
            sampler_params_add_stop_token(&sp, 5, &err); /* duplicates an EOS id */
            sampler_params_add_stop_token(&sp, 7, &err); /* and itself */
        }
        sampler *a = NULL, *b = NULL;
        CU_ASSERT_EQUAL_FATAL(sampler_create(&a, &sp, V, eos, 2, prompt, 12, 1, &err), 0);
        CU_ASSERT_EQUAL_FATAL(sampler_create(&b, &sp, V, eos, 2, prompt, 12, 2, &err), 0);
        float *raw = malloc((size_t)V * 4), *tmp = malloc((size_t)V * 4);
        sampler_mod *mods = malloc(4096 * sizeof *mods);
        uint64_t rng = 77 + ci;
        int mism = 0;
        for (int step = 0; step < 24; step++) {
            step_logits(raw, V, c->ties, &rng);
            memcpy(tmp, raw, (size_t)V * 4);
            sampler_result res;
            CU_ASSERT_EQUAL_FATAL(sampler_sample(a, tmp, V, &res, &err), 0);
            CU_ASSERT_FATAL(sampler_mods_bound(b) <= 4096);
            CU_ASSERT(sampler_device_ok(b));
            sampler_row row;
            CU_ASSERT_EQUAL_FATAL(sampler_device_row(b, &row, mods, 4096, &err), 0);
            /* each token at most once in the list */
            for (int i = 0; i < row.n_mod; i++)
                for (int j = i + 1; j < row.n_mod; j++) CU_ASSERT(mods[i].token != mods[j].token);
            CU_ASSERT_EQUAL(row.want_logprob, c->logprobs >= 0);
            CU_ASSERT_EQUAL(row.n_top, c->logprobs > 0 ? c->logprobs : 0);
            float lp = 0;
            sampler_logprob top[SAMPLER_MAX_LOGPROBS];
            int tok = ref_sample(raw, V, &row, mods, &lp, top);
            if (tok != res.token) {
                mism++;
                fprintf(stderr, "\n  %s step %d: reference %d, sampler_sample %d", c->name, step, tok,
                        res.token);
            }
            if (c->logprobs >= 0) {
                CU_ASSERT(fabsf(lp - res.logprob) < 1e-4f);
            } else {
                CU_ASSERT(isnan(res.logprob));
            }
            CU_ASSERT_EQUAL(res.n_top, row.n_top);
            for (int k = 0; k < res.n_top; k++) {
                CU_ASSERT_EQUAL(res.top[k].token, top[k].token);
                CU_ASSERT(fabsf(res.top[k].logprob - top[k].logprob) < 1e-4f);
            }
            /* both go on with the sampler's token: same history, same RNG */
            CU_ASSERT_EQUAL(sampler_accept(a, res.token, &err), 0);
            CU_ASSERT_EQUAL(sampler_accept(b, res.token, &err), 0);
        }
        CU_ASSERT_EQUAL(mism, 0);
        free(raw), free(tmp), free(mods);
        sampler_free(a);
        sampler_free(b);
        sampler_params_free(&sp);
    }
}

/* The list's content: history with counts, bias, masks, merged per token. */
static void test_row_contents(void) {
    const int V = 50;
    sampler_params sp = sampler_params_default();
    sp.repetition_penalty = 1.2f;
    sp.frequency_penalty = 0.5f;
    sp.min_tokens = 2;
    inf_error err = {0};
    sampler_params_add_logit_bias(&sp, 4, 1.5f, &err);
    sampler_params_add_logit_bias(&sp, 30, -2.0f, &err);
    sampler_params_add_stop_token(&sp, 31, &err);
    int32_t eos = 30, prompt[3] = {4, 9, 4};
    sampler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(sampler_create(&s, &sp, V, &eos, 1, prompt, 3, 5, &err), 0);
    sampler_accept(s, 9, &err);
    sampler_mod m[16];
    sampler_row row;
    CU_ASSERT_EQUAL(sampler_mods_bound(s), 2u + 2u + 2u);
    CU_ASSERT_EQUAL(sampler_device_row(s, &row, m, 3, &err), INF_EINVAL); /* too small */
    CU_ASSERT_EQUAL_FATAL(sampler_device_row(s, &row, m, 16, &err), 0);
    CU_ASSERT_EQUAL(row.n_mod, 4); /* 4, 9 (history), 30 (bias + EOS mask), 31 (stop mask) */
    int seen = 0;
    for (int i = 0; i < row.n_mod; i++) {
        const sampler_mod *x = &m[i];
        if (x->token == 4) CU_ASSERT(x->rep && x->gen_count == 0 && x->bias == 1.5f && !x->mask);
        if (x->token == 9) CU_ASSERT(x->rep && x->gen_count == 1 && x->bias == 0 && !x->mask);
        if (x->token == 30) CU_ASSERT(!x->rep && x->bias == -2.0f && x->mask);
        if (x->token == 31) CU_ASSERT(!x->rep && x->bias == 0 && x->mask);
        seen |= 1 << (x->token == 4 ? 0 : x->token == 9 ? 1 : x->token == 30 ? 2 : 3);
    }
    CU_ASSERT_EQUAL(seen, 15);
    CU_ASSERT(row.u >= 0 && row.u < 1);
    /* armed after min_tokens: the masks go */
    sampler_accept(s, 9, &err);
    CU_ASSERT_EQUAL_FATAL(sampler_device_row(s, &row, m, 16, &err), 0);
    CU_ASSERT_EQUAL(row.n_mod, 3);
    for (int i = 0; i < row.n_mod; i++) CU_ASSERT(!m[i].mask);
    sampler_free(s);
    sampler_params_free(&sp);
}

static void test_device_ok_limit(void) {
    const int V = 40000;
    int32_t *prompt = malloc(20000 * sizeof *prompt);
    for (int i = 0; i < 20000; i++) prompt[i] = i;
    sampler_params sp = sampler_params_default();
    inf_error err = {0};
    sampler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(sampler_create(&s, &sp, V, NULL, 0, prompt, 20000, 1, &err), 0);
    CU_ASSERT(sampler_device_ok(s)); /* no penalty: the prompt is not even kept */
    sampler_free(s);
    sp.repetition_penalty = 1.1f;
    CU_ASSERT_EQUAL_FATAL(sampler_create(&s, &sp, V, NULL, 0, prompt, 20000, 1, &err), 0);
    CU_ASSERT(sampler_mods_bound(s) == 20000);
    CU_ASSERT(!sampler_device_ok(s));
    sampler_free(s);
    CU_ASSERT_EQUAL_FATAL(sampler_create(&s, &sp, V, NULL, 0, prompt, SAMPLER_DEVICE_MAX_MODS, 1, &err), 0);
    CU_ASSERT(sampler_device_ok(s));
    sampler_accept(s, 39999, &err);
    CU_ASSERT(!sampler_device_ok(s));
    sampler_free(s);
    free(prompt);
}

/* ---- backend and engine on the CPU --------------------------------------------------- */

static const char *tiny_model(void) {
    const char *path = tu_tmpfile("sdev.gguf");
    model_random_opts o = {2, 64, 4, 2, 96, 300, 256, GGML_TYPE_F32, 0, 0, "llama", 10000.0f, NULL, 5};
    return model_random_write(path, &o, NULL) ? NULL : path;
}

static void test_cpu_rejects_null_logits(void) {
    const char *path = tiny_model();
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    gguf_file *f = NULL;
    backend *b = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, &err), 0);
    backend_config cfg = backend_config_default();
    cfg.kv_cache_bytes = 1 << 20;
    cfg.n_threads = 1;
    CU_ASSERT_EQUAL_FATAL(backend_cpu_create(&b, f, &cfg, &err), 0);
    CU_ASSERT_EQUAL(b->device_sampling, 0);
    int32_t tok = 1, pos = 0, si = 0, blk = 0;
    uint8_t need = 1;
    backend_seq seq = {&blk, 1};
    backend_batch bt = {1, &tok, &pos, &si, &need, 1, &seq};
    CU_ASSERT_EQUAL(backend_forward(b, &bt, NULL, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "logits"));
    float *logits = malloc(300 * sizeof *logits);
    CU_ASSERT_EQUAL(backend_forward(b, &bt, logits, &err), 0);
    free(logits);
    backend_free(b);
    gguf_close(f);
}

static void test_engine_host_rows(void) {
    const char *path = tiny_model();
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    engine_config c = engine_config_default();
    c.backend = "cpu";
    c.n_threads = 1;
    c.kv_cache_bytes = 1 << 20;
    engine *e = NULL;
    inf_error err = {0};
    c.gpu_memory_fraction = 1.5;
    CU_ASSERT_EQUAL(engine_open(&e, &c, path, &err), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "gpu_memory_fraction"));
    c.gpu_memory_fraction = 0; /* default */
    CU_ASSERT_EQUAL_FATAL(engine_open(&e, &c, path, &err), 0);
    CU_ASSERT_EQUAL(engine_get_config(e)->device_sampling, 0); /* the CPU cannot */
    CU_ASSERT_DOUBLE_EQUAL(engine_get_config(e)->gpu_memory_fraction, 0.9, 1e-12);
    sampler_params sp = sampler_params_default();
    sp.max_tokens = 5;
    sp.ignore_eos = 1;
    int32_t prompt[4] = {1, 2, 3, 4};
    for (int r = 0; r < 3; r++) {
        char id[8];
        snprintf(id, sizeof id, "r%d", r);
        engine_request rq = engine_request_default();
        rq.id = id;
        rq.prompt_tokens = prompt;
        rq.n_prompt_tokens = 4;
        rq.params = &sp;
        CU_ASSERT_EQUAL(engine_add(e, &rq, &err), 0);
    }
    for (int i = 0; i < 100 && engine_has_work(e); i++) {
        const engine_event *ev;
        int n;
        CU_ASSERT_EQUAL_FATAL(engine_step(e, &ev, &n, &err), 0);
    }
    engine_stats st;
    engine_stats_get(e, &st);
    CU_ASSERT_EQUAL(st.generated_tokens, 15u);
    CU_ASSERT_EQUAL(st.host_sampled_rows, 15u);
    CU_ASSERT_EQUAL(st.device_sampled_rows, 0u);
    engine_close(e);
}

void test_register_sampler_device(void) {
    CU_pSuite s = CU_add_suite("sampler_device", NULL, NULL);
    CU_add_test(s, "device row + naive reference = sampler_sample, every parameter", test_row_matches_sample);
    CU_add_test(s, "modifier list: history, bias, masks merged per token", test_row_contents);
    CU_add_test(s, "long penalty histories stay on the host", test_device_ok_limit);
    CU_add_test(s, "cpu backend rejects NULL logits", test_cpu_rejects_null_logits);
    CU_add_test(s, "engine on cpu: host rows counted, gpu_memory_fraction checked", test_engine_host_rows);
}
