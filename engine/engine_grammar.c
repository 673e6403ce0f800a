/* engine_grammar.c - structured output inside the engine: compiling a
 * request's constraint (through the engine's constraint cache), the token
 * trie of the engine's vocabulary, the per-step masks and advancing a
 * request's matcher over its sampled tokens.
 *
 * Masks beside the forward: the state a mask depends on is fixed once the
 * previous token was accepted, so sched_step hands the step's constrained
 * rows to one mask thread right before backend_forward and joins it right
 * after; the forward (on the calling thread and the backend's pool) and the
 * masks overlap. Preemption and recompute do not touch the matcher: the
 * generated tokens it has read stay generated, so a recomputed sequence
 * resumes with the same state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"

typedef struct eng_mask_pool {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    eng_req **jobs;
    int n_jobs, cap_jobs;
    int pending; /* 1: jobs posted and not yet done */
    int quit;
    int started;
    double ms;   /* time of the last batch */
} eng_mask_pool;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int eng_gram_init(engine *e, inf_error *err) {
    int rc = constraint_cache_create(&e->ccache, 0, err);
    if (rc) return rc;
    pthread_mutex_init(&e->gmu, NULL);
    return 0;
}

void eng_gram_close(engine *e) {
    if (!e->ccache) return;
    eng_mask_pool *p = e->mpool;
    if (p) {
        if (p->started) {
            pthread_mutex_lock(&p->mu);
            p->quit = 1;
            pthread_cond_signal(&p->cv_job);
            pthread_mutex_unlock(&p->mu);
            pthread_join(p->th, NULL);
        }
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv_job);
        pthread_cond_destroy(&p->cv_done);
        free(p->jobs);
        free(p);
    }
    grammar_vocab_free(e->gvocab);
    constraint_cache_free(e->ccache);
    pthread_mutex_destroy(&e->gmu);
    e->ccache = NULL;
}

static int get_vocab(engine *e, const grammar_vocab **out, inf_error *err) {
    int rc = 0;
    pthread_mutex_lock(&e->gmu);
    if (!e->gvocab) {
        /* EOS as the sampler knows it: these are the tokens that end generation. */
        grammar_vocab_config vc = {0, e->eos_ids, (size_t)e->n_eos};
        rc = grammar_vocab_create(&e->gvocab, e->tok, &vc, err);
    }
    *out = e->gvocab;
    pthread_mutex_unlock(&e->gmu);
    return rc;
}

int eng_gram_attach(engine *e, eng_req *r, const constraint_spec *c, inf_error *err) {
    grammar *g = NULL;
    const grammar_vocab *v;
    int rc = constraint_cache_get(e->ccache, c, &g, err);
    if (rc || !g) return rc; /* NULL: the spec constrains nothing ({"type":"text"}) */
    if ((rc = get_vocab(e, &v, err))) goto out;
    if ((rc = grammar_matcher_create(&r->gm, g, err))) goto out;
    r->mask = malloc(grammar_mask_words(v) * sizeof *r->mask);
    if (!r->mask) {
        rc = inf_error_set(err, INF_ENOMEM, "out of memory for a token mask");
        goto out;
    }
    sampler_set_allowed(r->smp, r->mask);
    r->mask_rc = INF_ESTATE; /* no mask computed yet */
out:
    grammar_free(g); /* the matcher holds its own reference */
    return rc;
}

void eng_gram_req_free(eng_req *r) {
    grammar_matcher_free(r->gm);
    free(r->mask);
    r->gm = NULL;
    r->mask = NULL;
}

static void compute_one(engine *e, eng_req *r) {
    inf_error err = {0};
    int n = 0;
    r->mask_rc = grammar_matcher_fill_mask(r->gm, e->gvocab, r->mask, &n, &err);
    r->mask_n_allowed = n;
    if (!r->mask_rc && n == 0)
        r->mask_rc = inf_error_set(&err, INF_EINVAL,
                                   "grammar: no token can continue the output here (the grammar cannot be "
                                   "completed with this vocabulary)");
    if (r->mask_rc) snprintf(r->mask_msg, sizeof r->mask_msg, "%s", err.msg);
}

static void *mask_main(void *arg) {
    engine *e = arg;
    eng_mask_pool *p = e->mpool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->pending && !p->quit) pthread_cond_wait(&p->cv_job, &p->mu);
        if (p->quit) break;
        pthread_mutex_unlock(&p->mu);
        double t0 = now_ms();
        for (int i = 0; i < p->n_jobs; i++) compute_one(e, p->jobs[i]);
        double dt = now_ms() - t0;
        pthread_mutex_lock(&p->mu);
        p->ms = dt;
        p->pending = 0;
        pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void eng_gram_masks_start(engine *e, eng_req **reqs, const uint8_t *sample, int n) {
    if (!e->mpool) {
        eng_mask_pool *p = calloc(1, sizeof *p);
        if (p) {
            pthread_mutex_init(&p->mu, NULL);
            pthread_cond_init(&p->cv_job, NULL);
            pthread_cond_init(&p->cv_done, NULL);
            e->mpool = p;
        }
    }
    eng_mask_pool *p = e->mpool;
    int n_jobs = 0;
    for (int i = 0; i < n; i++)
        if (reqs[i] && reqs[i]->gm && sample[i]) n_jobs++;
    if (!n_jobs) return;
    if (p && n_jobs > p->cap_jobs) {
        eng_req **q = realloc(p->jobs, (size_t)n_jobs * sizeof *q);
        if (q) {
            p->jobs = q;
            p->cap_jobs = n_jobs;
        }
    }
    if (p && !p->started && n_jobs <= p->cap_jobs)
        p->started = pthread_create(&p->th, NULL, mask_main, e) == 0;
    if (!p || !p->started || n_jobs > p->cap_jobs) {
        /* No thread: compute them here, before the forward. */
        double t0 = now_ms();
        for (int i = 0; i < n; i++)
            if (reqs[i] && reqs[i]->gm && sample[i]) compute_one(e, reqs[i]);
        e->mask_ms += now_ms() - t0;
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->n_jobs = 0;
    for (int i = 0; i < n; i++)
        if (reqs[i] && reqs[i]->gm && sample[i]) p->jobs[p->n_jobs++] = reqs[i];
    p->pending = 1;
    pthread_cond_signal(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
}

void eng_gram_masks_wait(engine *e) {
    eng_mask_pool *p = e->mpool;
    if (!p || !p->started) return;
    pthread_mutex_lock(&p->mu);
    int had = p->n_jobs > 0;
    while (p->pending) pthread_cond_wait(&p->cv_done, &p->mu);
    if (had) e->mask_ms += p->ms;
    p->n_jobs = 0;
    pthread_mutex_unlock(&p->mu);
}

int eng_gram_accept(engine *e, eng_req *r, int32_t tok, int *done, inf_error *err) {
    *done = 0;
    if (!r->gm) return 0;
    e->constrained_rows++;
    int rc = grammar_matcher_accept_token(r->gm, e->gvocab, tok, err);
    if (rc) return rc;
    *done = grammar_matcher_done(r->gm);
    r->mask_rc = INF_ESTATE; /* the mask is stale until the next job */
    return 0;
}
