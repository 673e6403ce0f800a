/* test_sampler.c - the sampler against naive double-precision references
 * (sorting, softmax) and statistical checks. Stop strings: test_stopstr.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "testutil.h"

/* ---- helpers and independent references ---- */

static void rand_logits(uint64_t *st, float *l, int n, float lo, float hi) {
    for (int i = 0; i < n; i++) l[i] = tu_rand_uniform(st, lo, hi);
}

static sampler *mk(const sampler_params *p, int n_vocab, const int32_t *eos, size_t n_eos,
                   const int32_t *prompt, size_t n_prompt) {
    sampler *s = NULL;
    inf_error e = {0};
    int rc = sampler_create(&s, p, n_vocab, eos, n_eos, prompt, n_prompt, 12345, &e);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return s;
}

/* Samples from a copy of logits (sample trashes its input). */
static sampler_result sample_copy(sampler *s, const float *logits, int n) {
    float *c = malloc((size_t)n * sizeof *c);
    memcpy(c, logits, (size_t)n * sizeof *c);
    sampler_result r;
    memset(&r, 0, sizeof r);
    inf_error e = {0};
    CU_ASSERT_EQUAL(sampler_sample(s, c, n, &r, &e), 0);
    free(c);
    return r;
}

typedef struct rk {
    double l;
    int id;
} rk;

static int cmp_rk(const void *a, const void *b) {
    const rk *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Tokens ranked by logit (desc), ties to the lower id. */
static rk *ranked(const float *l, int n) {
    rk *r = malloc((size_t)n * sizeof *r);
    for (int i = 0; i < n; i++) {
        r[i].l = l[i];
        r[i].id = i;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_rk);
    return r;
}

/* Reference filter: prob[id] of the kept set (0 for removed), all in double.
 * Returns the kept count. */
static int ref_filter(const float *l, int n, double T, int top_k, double top_p, double min_p,
                      double *prob) {
    rk *r = ranked(l, n);
    int k = (top_k > 0 && top_k < n) ? top_k : n;
    double *w = malloc((size_t)n * sizeof *w), z = 0;
    for (int i = 0; i < k; i++) z += (w[i] = exp((r[i].l - r[0].l) / T));
    int m = 0;
    double cum = 0;
    while (m < k && cum / z < top_p) cum += w[m++];
    int kept = 0;
    double zk = 0;
    for (int i = 0; i < n; i++) prob[i] = 0;
    for (int i = 0; i < m; i++)
        if (w[i] >= min_p) {
            prob[r[i].id] = w[i];
            zk += w[i];
            kept++;
        }
    for (int i = 0; i < n; i++) prob[i] /= zk;
    free(w);
    free(r);
    return kept;
}

/* A top_p strictly between two consecutive cumulative masses (after top_k):
 * keeps ranks 0..j. j moves down until rank j's own mass is >= 1e-5, so
 * float rounding of p and of the sums cannot move the boundary. */
static double mid_top_p(const float *l, int n, double T, int top_k, int j) {
    rk *r = ranked(l, n);
    int k = (top_k > 0 && top_k < n) ? top_k : n;
    double z = 0, before = 0;
    for (int i = 0; i < k; i++) z += exp((r[i].l - r[0].l) / T);
    while (j > 0 && exp((r[j].l - r[0].l) / T) / z < 1e-5) j--;
    for (int i = 0; i < j; i++) before += exp((r[i].l - r[0].l) / T);
    double upto = before + exp((r[j].l - r[0].l) / T);
    free(r);
    return (before / z + upto / z) / 2; /* cum before j < p <= cum through j */
}

/* A min_p between the relative probabilities of ranks a and a+1 (a moves
 * down to a pair whose logits differ clearly); 0 if there is none. */
static double mid_min_p(const float *l, int n, double T, int a) {
    rk *r = ranked(l, n);
    while (a >= 0 && r[a].l - r[a + 1].l < 1e-3) a--;
    double mp = 0;
    if (a >= 0) mp = sqrt(exp((r[a].l - r[0].l) / T) * exp((r[a + 1].l - r[0].l) / T));
    free(r);
    return mp;
}

/* ---- parameters ---- */

#define EXPECT_BAD(setup, name)                                                        \
    do {                                                                               \
        sampler_params p = sampler_params_default();                                   \
        setup;                                                                         \
        inf_error e = {0};                                                             \
        CU_ASSERT_EQUAL(sampler_params_validate(&p, 100, &e), INF_EINVAL);             \
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, name));                                   \
        sampler *sx = NULL;                                                            \
        CU_ASSERT_EQUAL(sampler_create(&sx, &p, 100, NULL, 0, NULL, 0, 1, NULL), INF_EINVAL); \
        CU_ASSERT_PTR_NULL(sx);                                                        \
        sampler_params_free(&p);                                                       \
    } while (0)

#define EXPECT_OK(setup)                                                               \
    do {                                                                               \
        sampler_params p = sampler_params_default();                                   \
        setup;                                                                         \
        inf_error e = {0};                                                             \
        CU_ASSERT_EQUAL(sampler_params_validate(&p, 100, &e), 0);                      \
        sampler_params_free(&p);                                                       \
    } while (0)

static char **str_list(int n, const char *s) {
    char **v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = strdup(s);
    return v;
}

static void test_params(void) {
    EXPECT_OK((void)0);
    EXPECT_OK(p.temperature = 0);
    EXPECT_OK(p.temperature = 100);
    EXPECT_OK(p.top_k = 0);
    EXPECT_OK(p.top_k = 1000);
    EXPECT_OK(p.top_p = 1e-6f);
    EXPECT_OK(p.min_p = 1);
    EXPECT_OK(p.repetition_penalty = 10);
    EXPECT_OK(p.presence_penalty = -2; p.frequency_penalty = 2);
    EXPECT_OK(sampler_params_add_logit_bias(&p, 99, -100, NULL);
              sampler_params_add_logit_bias(&p, 0, 100, NULL));
    EXPECT_OK(p.min_tokens = 16);
    EXPECT_OK(p.logprobs = 20);
    EXPECT_OK(p.logprobs = 0);

    EXPECT_BAD(p.temperature = -0.1f, "temperature");
    EXPECT_BAD(p.temperature = 100.5f, "temperature");
    EXPECT_BAD(p.temperature = NAN, "temperature");
    EXPECT_BAD(p.temperature = INFINITY, "temperature");
    EXPECT_BAD(p.top_k = -2, "top_k");
    EXPECT_BAD(p.top_p = 0, "top_p");
    EXPECT_BAD(p.top_p = 1.5f, "top_p");
    EXPECT_BAD(p.top_p = NAN, "top_p");
    EXPECT_BAD(p.min_p = -0.01f, "min_p");
    EXPECT_BAD(p.min_p = 1.01f, "min_p");
    EXPECT_BAD(p.repetition_penalty = 0, "repetition_penalty");
    EXPECT_BAD(p.repetition_penalty = 10.5f, "repetition_penalty");
    EXPECT_BAD(p.repetition_penalty = -INFINITY, "repetition_penalty");
    EXPECT_BAD(p.presence_penalty = 2.01f, "presence_penalty");
    EXPECT_BAD(p.presence_penalty = NAN, "presence_penalty");
    EXPECT_BAD(p.frequency_penalty = -2.5f, "frequency_penalty");
    EXPECT_BAD(sampler_params_add_logit_bias(&p, 100, 1, NULL), "logit_bias");
    EXPECT_BAD(sampler_params_add_logit_bias(&p, -1, 1, NULL), "logit_bias");
    EXPECT_BAD(sampler_params_add_logit_bias(&p, 5, 100.5f, NULL), "logit_bias");
    EXPECT_BAD(sampler_params_add_logit_bias(&p, 5, NAN, NULL), "logit_bias");
    EXPECT_BAD(sampler_params_add_logit_bias(&p, 5, 1, NULL);
               sampler_params_add_logit_bias(&p, 6, 1, NULL);
               sampler_params_add_logit_bias(&p, 5, 2, NULL), "logit_bias");
    EXPECT_BAD(sampler_params_add_stop_token(&p, 100, NULL), "stop_token_ids");
    EXPECT_BAD(sampler_params_add_stop_token(&p, -3, NULL), "stop_token_ids");
    EXPECT_BAD(p.stop = str_list(1, ""); p.n_stop = 1, "stop");
    EXPECT_BAD(p.stop = str_list(SAMPLER_MAX_STOP + 1, "x"); p.n_stop = SAMPLER_MAX_STOP + 1,
               "stop");
    char longs[SAMPLER_MAX_STOP_LEN + 2];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    EXPECT_BAD(p.stop = str_list(1, longs); p.n_stop = 1, "stop");
    longs[SAMPLER_MAX_STOP_LEN] = 0; /* exactly the limit is fine */
    EXPECT_OK(p.stop = str_list(1, longs); p.n_stop = 1);
    EXPECT_BAD(p.max_tokens = 0, "max_tokens");
    EXPECT_BAD(p.min_tokens = -1, "min_tokens");
    EXPECT_BAD(p.min_tokens = 17, "min_tokens");
    EXPECT_BAD(p.logprobs = 21, "logprobs");
    EXPECT_BAD(p.logprobs = -2, "logprobs");

    /* The message states the range and the value, as documented. */
    sampler_params p = sampler_params_default();
    p.top_p = 1.5f;
    inf_error e = {0};
    sampler_params_validate(&p, 100, &e);
    CU_ASSERT_STRING_EQUAL(e.msg, "top_p must be in (0, 1], got 1.5");

    /* The add helpers refuse what can never be valid. */
    for (int i = 0; i < SAMPLER_MAX_STOP; i++)
        CU_ASSERT_EQUAL(sampler_params_add_stop(&p, "s", NULL), 0);
    CU_ASSERT_EQUAL(sampler_params_add_stop(&p, "s", &e), INF_EINVAL);
    CU_ASSERT_EQUAL(sampler_params_add_stop(&p, "", &e), INF_EINVAL);
    /* Copies are deep: freeing the original leaves the copy intact. */
    sampler_params q;
    p.top_p = 0.5f;
    CU_ASSERT_EQUAL(sampler_params_copy(&q, &p, NULL), 0);
    sampler_params_free(&p);
    CU_ASSERT_EQUAL(q.n_stop, SAMPLER_MAX_STOP);
    CU_ASSERT_STRING_EQUAL(q.stop[SAMPLER_MAX_STOP - 1], "s");
    CU_ASSERT_EQUAL(sampler_params_validate(&q, 100, NULL), 0);
    sampler_params_free(&q);

    /* create checks the ids it is given too. */
    p = sampler_params_default();
    sampler *s = NULL;
    int32_t bad = 100;
    CU_ASSERT_EQUAL(sampler_create(&s, &p, 100, &bad, 1, NULL, 0, 1, &e), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "eos"));
    CU_ASSERT_EQUAL(sampler_create(&s, &p, 100, NULL, 0, &bad, 1, 1, &e), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "prompt"));
}

/* ---- greedy, seeds ---- */

static void test_greedy(void) {
    uint64_t st = 1;
    enum { N = 1000 };
    float l[N];
    for (int rep = 0; rep < 10; rep++) {
        rand_logits(&st, l, N, -5, 5);
        int am = 0;
        for (int i = 1; i < N; i++)
            if (l[i] > l[am]) am = i;
        sampler_params p = sampler_params_default();
        p.temperature = rep % 2 ? 0.0f : 1e-6f; /* below the epsilon is greedy too */
        sampler *s = mk(&p, N, NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(sample_copy(s, l, N).token, am);
        /* Ties go to the lowest id. */
        int lo = (am + 37) % N, hi = (am + 500) % N;
        if (lo > hi) {
            int t = lo;
            lo = hi;
            hi = t;
        }
        l[lo] = l[hi] = l[am] + 1;
        CU_ASSERT_EQUAL(sample_copy(s, l, N).token, lo);
        sampler_free(s);
    }
}

/* 300 steps of a penalized request; between steps other samplers run. */
static void run_seq(uint64_t seed, int interleave, int32_t *out, int n) {
    enum { V = 50 };
    sampler_params p = sampler_params_default();
    p.has_seed = 1;
    p.seed = seed;
    p.frequency_penalty = 0.3f;
    p.top_p = 0.9f;
    p.max_tokens = n;
    int32_t prompt[] = {1, 2, 3};
    sampler *s = mk(&p, V, NULL, 0, prompt, 3);
    sampler_params po = sampler_params_default();
    po.has_seed = 1;
    po.seed = seed ^ 77;
    sampler *o1 = mk(&po, V, NULL, 0, NULL, 0);
    po.has_seed = 0;
    sampler *o2 = mk(&po, V, NULL, 0, NULL, 0);
    uint64_t lst = 99;
    float l[V];
    for (int i = 0; i < n; i++) {
        if (interleave)
            for (int j = 0; j < 1 + i % 3; j++) {
                float x[V];
                rand_logits(&lst, x, V, -1, 1);
                sample_copy(j % 2 ? o1 : o2, x, V);
            }
        uint64_t ls = 1000 + (uint64_t)i; /* the request's logits: same in every run */
        rand_logits(&ls, l, V, -2, 2);
        out[i] = sample_copy(s, l, V).token;
        sampler_accept(s, out[i], NULL);
    }
    sampler_free(s);
    sampler_free(o1);
    sampler_free(o2);
}

static void test_seed(void) {
    enum { N = 300 };
    int32_t a[N], b[N], c[N];
    run_seq(42, 0, a, N);
    run_seq(42, 1, b, N);
    run_seq(43, 0, c, N);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    int diff = 0;
    for (int i = 0; i < N; i++) diff += a[i] != c[i];
    CU_ASSERT(diff > N / 4);
}

/* ---- filters ---- */

/* Candidate set and probabilities equal the reference for many configs. */
static void check_cands(const float *l, int n, double T, int top_k, double top_p,
                        double min_p) {
    sampler_params p = sampler_params_default();
    p.temperature = (float)T;
    p.top_k = top_k;
    p.top_p = (float)top_p;
    p.min_p = (float)min_p;
    sampler *s = mk(&p, n, NULL, 0, NULL, 0);
    double *ref = malloc((size_t)n * sizeof *ref);
    int kept = ref_filter(l, n, T, top_k, p.top_p, p.min_p, ref);
    float *c = malloc((size_t)n * sizeof *c), *probs = malloc((size_t)n * sizeof *probs);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    memcpy(c, l, (size_t)n * sizeof *c);
    int m = -1;
    CU_ASSERT_EQUAL(sampler_candidates(s, c, n, ids, probs, &m, NULL), 0);
    CU_ASSERT_EQUAL(m, kept);
    int bad = 0;
    for (int i = 0; i < m; i++) {
        if (ref[ids[i]] == 0 || fabs(probs[i] - ref[ids[i]]) > 1e-5) bad++;
        ref[ids[i]] = 0; /* a repeated id now counts as bad */
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(ref);
    free(c);
    free(probs);
    free(ids);
    sampler_free(s);
}

static void test_filter_sets(void) {
    uint64_t st = 7;
    static const int sizes[] = {8, 64, 1000, 100000};
    static const double temps[] = {0.5, 1.0, 2.0};
    for (int cfg = 0; cfg < 48; cfg++) {
        int n = sizes[cfg % 4];
        double T = temps[(cfg / 4) % 3];
        float *l = malloc((size_t)n * sizeof *l);
        rand_logits(&st, l, n, -4, 4);
        if (cfg % 3 == 0) /* many exact ties: the id tie-break must match */
            for (int i = 0; i < n; i++) l[i] = roundf(l[i] * 2) / 2;
        int top_k = (int)(tu_rand_u64(&st) % 5);
        top_k = top_k == 0 ? -1 : top_k == 1 ? 1 : top_k == 2 ? 3 : top_k == 3 ? n / 4 : n + 5;
        int kk = (top_k > 0 && top_k < n) ? top_k : n;
        double top_p = 1, min_p = 0;
        if (cfg & 1) {
            /* Big vocabularies reach a nucleus of thousands (several select
             * rounds); small ones a random rank. */
            int j = n >= 1000 && kk == n ? n / 10 + (int)(tu_rand_u64(&st) % 200)
                                         : (int)(tu_rand_u64(&st) % (unsigned)kk);
            top_p = mid_top_p(l, n, T, top_k, j);
        }
        if (cfg & 2) {
            int lim = kk < 20 ? kk : 20;
            if (lim > 1) min_p = mid_min_p(l, n, T, (int)(tu_rand_u64(&st) % (unsigned)(lim - 1)));
        }
        check_cands(l, n, T, top_k, top_p, min_p);
        free(l);
    }
}

/* Nuclei of every size on mid-sized vocabularies: the chunked partial sort
 * behind top_p must give the exact reference set wherever the cut falls. */
static void test_top_p_nucleus(void) {
    uint64_t st = 21;
    for (int cfg = 0; cfg < 60; cfg++) {
        int n = 200 + (int)(tu_rand_u64(&st) % 4000);
        double T = 1 + cfg % 3;
        float *l = malloc((size_t)n * sizeof *l);
        rand_logits(&st, l, n, -3, 3);
        if (cfg % 2) /* ties */
            for (int i = 0; i < n; i++) l[i] = roundf(l[i] * 4) / 4;
        int j = (int)(tu_rand_u64(&st) % (unsigned)n);
        check_cands(l, n, T, -1, mid_top_p(l, n, T, -1, j), 0);
        free(l);
    }
}

/* Sampled tokens stay inside the reference set and reach every member. */
static void test_filter_draws(void) {
    uint64_t st = 11;
    enum { V = 32, DRAWS = 20000 };
    for (int cfg = 0; cfg < 6; cfg++) {
        float l[V];
        rand_logits(&st, l, V, -2, 2);
        int top_k = cfg % 3 == 0 ? 10 : -1;
        double top_p = cfg % 3 == 1 ? mid_top_p(l, V, 1.0, top_k, 6) : 1.0;
        double min_p = cfg % 3 == 2 ? mid_min_p(l, V, 1.0, 8) : 0.0;
        if (cfg >= 3) top_p = mid_top_p(l, V, 1.0, top_k, 8); /* combined filters */
        double ref[V];
        int kept = ref_filter(l, V, 1.0, top_k, (float)top_p, (float)min_p, ref);
        double pmin = 1;
        for (int i = 0; i < V; i++)
            if (ref[i] > 0 && ref[i] < pmin) pmin = ref[i];
        CU_ASSERT(pmin * DRAWS > 20); /* misses would then be vanishingly unlikely */
        sampler_params p = sampler_params_default();
        p.top_k = top_k;
        p.top_p = (float)top_p;
        p.min_p = (float)min_p;
        p.has_seed = 1;
        p.seed = (uint64_t)cfg;
        sampler *s = mk(&p, V, NULL, 0, NULL, 0);
        int hits[V] = {0}, outside = 0, seen = 0;
        for (int d = 0; d < DRAWS; d++) {
            int t = sample_copy(s, l, V).token;
            if (ref[t] == 0) outside++;
            hits[t]++;
        }
        for (int i = 0; i < V; i++) seen += hits[i] > 0;
        CU_ASSERT_EQUAL(outside, 0);
        CU_ASSERT_EQUAL(seen, kept);
        sampler_free(s);
    }
}

/* Chi-square critical values at p = 0.001 for 1..15 degrees of freedom. */
static const double chi2_crit[16] = {0,     10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32,
                                     26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12, 37.70};

static void chi2_check(const float *l, int n, double T, int top_k, double top_p, double min_p,
                       uint64_t seed) {
    enum { DRAWS = 20000 };
    double ref[16];
    int kept = ref_filter(l, n, T, top_k, (float)top_p, (float)min_p, ref);
    CU_ASSERT_FATAL(kept >= 2 && kept <= 16);
    sampler_params p = sampler_params_default();
    p.temperature = (float)T;
    p.top_k = top_k;
    p.top_p = (float)top_p;
    p.min_p = (float)min_p;
    p.has_seed = 1;
    p.seed = seed;
    sampler *s = mk(&p, n, NULL, 0, NULL, 0);
    int cnt[16] = {0};
    for (int d = 0; d < DRAWS; d++) cnt[sample_copy(s, l, n).token]++;
    double chi2 = 0;
    for (int i = 0; i < n; i++) {
        if (ref[i] == 0) {
            CU_ASSERT_EQUAL(cnt[i], 0);
            continue;
        }
        double e = ref[i] * DRAWS;
        chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
    }
    CU_ASSERT(chi2 < chi2_crit[kept - 1]);
    sampler_free(s);
}

static void test_chi2(void) {
    uint64_t st = 2024;
    float l8[8], l16[16];
    rand_logits(&st, l8, 8, -2, 2);
    chi2_check(l8, 8, 0.7, -1, 1, 0, 5); /* plain temperature: full-vocab draw path */
    rand_logits(&st, l16, 16, -2, 2);
    chi2_check(l16, 16, 1.3, -1, 1, mid_min_p(l16, 16, 1.3, 9), 6); /* min_p only */
    chi2_check(l16, 16, 0.9, 12, mid_top_p(l16, 16, 0.9, 12, 7), 0, 7); /* top_k + top_p */
    chi2_check(l16, 16, 1.0, -1, mid_top_p(l16, 16, 1.0, -1, 10), 0, 8); /* top_p alone */
}

/* ---- penalties, bias, min_tokens ---- */

static void test_penalties(void) {
    enum { V = 20 };
    uint64_t st = 5;
    float raw[V];
    rand_logits(&st, raw, V, -3, 3);
    int32_t prompt[] = {1, 3, 3, 5, 12};
    int32_t gen[] = {3, 8, 8, 5, 8, 14};
    for (int variant = 0; variant < 2; variant++) {
        sampler_params p = sampler_params_default();
        p.repetition_penalty = variant ? 1.0f : 1.5f;
        p.presence_penalty = 0.4f;
        p.frequency_penalty = -0.3f;
        sampler_params_add_logit_bias(&p, 7, 2.5f, NULL);
        sampler_params_add_logit_bias(&p, 3, -1.0f, NULL);
        sampler *s = mk(&p, V, NULL, 0, prompt, 5);
        for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++)
            CU_ASSERT_EQUAL(sampler_accept(s, gen[i], NULL), 0);
        CU_ASSERT_EQUAL(sampler_n_generated(s), 6);
        float l[V];
        memcpy(l, raw, sizeof l);
        sampler_result r;
        CU_ASSERT_EQUAL(sampler_sample(s, l, V, &r, NULL), 0);
        for (int t = 0; t < V; t++) {
            int cnt = 0, seen = 0;
            for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++) cnt += gen[i] == t;
            for (size_t i = 0; i < 5; i++) seen |= prompt[i] == t;
            double ref = raw[t];
            if (seen || cnt) ref = ref > 0 ? ref / p.repetition_penalty : ref * p.repetition_penalty;
            ref -= cnt * (double)p.frequency_penalty + (cnt > 0) * (double)p.presence_penalty;
            if (t == 7) ref += 2.5;
            if (t == 3) ref -= 1.0;
            if (ref == raw[t]) CU_ASSERT_EQUAL(l[t], raw[t]); /* untouched: bit-exact */
            CU_ASSERT(fabs(l[t] - ref) <= 1e-5 * (1 + fabs(ref)));
        }
        sampler_free(s);
        sampler_params_free(&p);
    }
}

static void test_logit_bias(void) {
    enum { V = 100 };
    uint64_t st = 8;
    float l[V];
    rand_logits(&st, l, V, -3, 3);
    rk *r = ranked(l, V);
    sampler_params p = sampler_params_default();
    p.temperature = 0;
    sampler_params_add_logit_bias(&p, r[0].id, -100, NULL);
    sampler *s = mk(&p, V, NULL, 0, NULL, 0);
    CU_ASSERT_EQUAL(sample_copy(s, l, V).token, r[1].id);
    sampler_free(s);
    sampler_params_free(&p);
    sampler_params_add_logit_bias(&p, r[V - 1].id, 100, NULL);
    p.temperature = 1; /* +100 makes every other token ~e^-94 as likely */
    s = mk(&p, V, NULL, 0, NULL, 0);
    for (int i = 0; i < 50; i++) CU_ASSERT_EQUAL(sample_copy(s, l, V).token, r[V - 1].id);
    sampler_free(s);
    sampler_params_free(&p);
    free(r);
}

static void test_min_tokens_finish(void) {
    enum { V = 10 };
    float l[V] = {0, 1, 2, 3, 8, 5, 1, 0, 0, 9}; /* EOS 9 best, stop token 4 next */
    int32_t eos = 9;
    sampler_params p = sampler_params_default();
    p.temperature = 0;
    p.min_tokens = 3;
    p.max_tokens = 6;
    sampler_params_add_stop_token(&p, 4, NULL);
    sampler *s = mk(&p, V, &eos, 1, NULL, 0);
    int32_t stop_tok = 0;
    for (int i = 0; i < 3; i++) {
        float c[V];
        memcpy(c, l, sizeof c);
        sampler_result r;
        CU_ASSERT_EQUAL(sampler_sample(s, c, V, &r, NULL), 0);
        CU_ASSERT_EQUAL(r.token, 5);
        CU_ASSERT(c[9] == -INFINITY && c[4] == -INFINITY);
        sampler_accept(s, r.token, NULL);
        CU_ASSERT_EQUAL(sampler_check_finish(s, r.token, &stop_tok), SAMPLER_FINISH_NONE);
    }
    /* Reached: EOS is allowed again and stops. */
    CU_ASSERT_EQUAL(sample_copy(s, l, V).token, 9);
    sampler_accept(s, 9, NULL);
    CU_ASSERT_EQUAL(sampler_check_finish(s, 9, &stop_tok), SAMPLER_FINISH_STOP);
    CU_ASSERT_EQUAL(stop_tok, -1);
    CU_ASSERT_EQUAL(sampler_check_finish(s, 4, &stop_tok), SAMPLER_FINISH_STOP);
    CU_ASSERT_EQUAL(stop_tok, 4);
    CU_ASSERT_STRING_EQUAL(sampler_finish_name(SAMPLER_FINISH_STOP), "stop");
    sampler_free(s);

    /* A forced EOS before min_tokens does not stop; ignore_eos neither masks
     * nor stops on EOS; max_tokens gives "length" exactly at the limit. */
    p.ignore_eos = 1;
    s = mk(&p, V, &eos, 1, NULL, 0);
    float c[V];
    memcpy(c, l, sizeof c);
    sampler_result r;
    sampler_sample(s, c, V, &r, NULL);
    CU_ASSERT_EQUAL(r.token, 9);
    CU_ASSERT_EQUAL(c[9], 9.0f);
    for (int i = 1; i <= 6; i++) {
        sampler_accept(s, 9, NULL);
        CU_ASSERT_EQUAL(sampler_check_finish(s, 9, NULL),
                        i < 6 ? SAMPLER_FINISH_NONE : SAMPLER_FINISH_LENGTH);
    }
    CU_ASSERT_STRING_EQUAL(sampler_finish_name(SAMPLER_FINISH_LENGTH), "length");
    sampler_free(s);
    p.ignore_eos = 0;
    s = mk(&p, V, &eos, 1, NULL, 0);
    sampler_accept(s, 9, NULL);
    CU_ASSERT_EQUAL(sampler_check_finish(s, 9, NULL), SAMPLER_FINISH_NONE);
    sampler_free(s);
    sampler_params_free(&p);
}

/* ---- logprobs ---- */

static void test_logprobs(void) {
    enum { V = 16, BIG = 5000 };
    uint64_t st = 3;
    float l[V];
    rand_logits(&st, l, V, -4, 4);
    l[2] = l[11]; /* a tie in the top list orders by id */
    double mx = -INFINITY, z = 0, ref[V];
    for (int i = 0; i < V; i++) mx = fmax(mx, l[i]);
    for (int i = 0; i < V; i++) z += exp(l[i] - mx);
    for (int i = 0; i < V; i++) ref[i] = l[i] - mx - log(z);
    rk *rr = ranked(l, V);
    sampler_params p = sampler_params_default();
    p.logprobs = V;
    p.temperature = 0.5f;
    p.repetition_penalty = 2;
    p.presence_penalty = 1;
    /* Force the least likely raw token: its reported logprob must stay raw. */
    int weak = rr[V - 1].id;
    sampler_params_add_logit_bias(&p, weak, 100, NULL);
    int32_t prompt[] = {weak, 0, 1};
    sampler *s = mk(&p, V, NULL, 0, prompt, 3);
    sampler_accept(s, weak, NULL);
    sampler_result r = sample_copy(s, l, V);
    CU_ASSERT_EQUAL(r.token, weak);
    CU_ASSERT(fabs(r.logprob - ref[weak]) < 1e-5);
    CU_ASSERT_EQUAL(r.n_top, V);
    double sum = 0;
    for (int i = 0; i < r.n_top; i++) {
        CU_ASSERT_EQUAL(r.top[i].token, rr[i].id);
        CU_ASSERT(fabs(r.top[i].logprob - ref[rr[i].id]) < 1e-5);
        sum += exp(r.top[i].logprob);
    }
    CU_ASSERT(fabs(sum - 1) < 1e-5);
    sampler_free(s);
    sampler_params_free(&p);
    free(rr);

    /* Big vocabulary, top 5; logprobs 0 and -1. */
    float *lb = malloc(BIG * sizeof *lb);
    rand_logits(&st, lb, BIG, -10, 10);
    rr = ranked(lb, BIG);
    p = sampler_params_default();
    p.logprobs = 5;
    s = mk(&p, BIG, NULL, 0, NULL, 0);
    r = sample_copy(s, lb, BIG);
    CU_ASSERT_EQUAL(r.n_top, 5);
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(r.top[i].token, rr[i].id);
    for (int i = 1; i < 5; i++) CU_ASSERT(r.top[i].logprob <= r.top[i - 1].logprob);
    CU_ASSERT(fabs((r.top[0].logprob - r.top[1].logprob) - (rr[0].l - rr[1].l)) < 1e-4);
    sampler_free(s);
    p.logprobs = 0;
    s = mk(&p, BIG, NULL, 0, NULL, 0);
    r = sample_copy(s, lb, BIG);
    CU_ASSERT_EQUAL(r.n_top, 0);
    CU_ASSERT(isfinite(r.logprob) && r.logprob < 0);
    sampler_free(s);
    p.logprobs = -1;
    s = mk(&p, BIG, NULL, 0, NULL, 0);
    r = sample_copy(s, lb, BIG);
    CU_ASSERT_EQUAL(r.n_top, 0);
    CU_ASSERT(isnan(r.logprob));
    sampler_free(s);
    free(rr);
    free(lb);
}

static void test_errors(void) {
    sampler_params p = sampler_params_default();
    sampler *s = mk(&p, 4, NULL, 0, NULL, 0);
    float l[4] = {0, NAN, 1, 2};
    sampler_result r;
    inf_error e = {0};
    CU_ASSERT_EQUAL(sampler_sample(s, l, 4, &r, &e), INF_EINVAL);
    float l2[4] = {0, 1, 2, 3};
    CU_ASSERT_EQUAL(sampler_sample(s, l2, 3, &r, &e), INF_EINVAL);
    CU_ASSERT_EQUAL(sampler_accept(s, 4, &e), INF_EINVAL);
    sampler_free(s);
    /* Every token masked by min_tokens is an error, not a made-up token. */
    int32_t eos = 0;
    p.min_tokens = 1;
    sampler_params_add_stop_token(&p, 1, NULL);
    s = mk(&p, 2, &eos, 1, NULL, 0);
    float l3[2] = {1, 2};
    CU_ASSERT_EQUAL(sampler_sample(s, l3, 2, &r, &e), INF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "masked"));
    sampler_free(s);
    sampler_params_free(&p);
}

void test_register_sampler(void) {
    CU_pSuite s = CU_add_suite("sampler", NULL, NULL);
    CU_add_test(s, "params validate / copy", test_params);
    CU_add_test(s, "greedy argmax, ties to low id", test_greedy);
    CU_add_test(s, "seed reproducible, batch-independent", test_seed);
    CU_add_test(s, "top_k/top_p/min_p sets vs reference", test_filter_sets);
    CU_add_test(s, "top_p nucleus of any size", test_top_p_nucleus);
    CU_add_test(s, "draws stay in set, reach all", test_filter_draws);
    CU_add_test(s, "chi-square vs softmax", test_chi2);
    CU_add_test(s, "penalties exact", test_penalties);
    CU_add_test(s, "logit bias", test_logit_bias);
    CU_add_test(s, "min_tokens and finish", test_min_tokens_finish);
    CU_add_test(s, "logprobs raw log-softmax", test_logprobs);
    CU_add_test(s, "bad logits / masked", test_errors);
}
