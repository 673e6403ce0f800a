/* lg_util.h - pieces of bin/inferno-loadgen that are worth testing on their
 * own: latency percentiles, the random prompt words, the priority mix,
 * Poisson inter-arrival times, and parsing a reply-stream entry. */
#ifndef INF_LG_UTIL_H
#define INF_LG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Growable array of samples (milliseconds). */
typedef struct lg_samples {
    double *v;
    size_t n, cap;
} lg_samples;

/* Appends x; INF_ENOMEM on allocation failure. */
int lg_samples_add(lg_samples *s, double x);
void lg_samples_free(lg_samples *s);

/* p-th percentile (0..100) by linear interpolation between closest ranks
 * (sorts s->v in place); NAN when empty. */
double lg_percentile(lg_samples *s, double p);

/* Mean of the samples; NAN when empty. */
double lg_mean(const lg_samples *s);

/* splitmix64 step and a uniform double in [0, 1). */
uint64_t lg_rand(uint64_t *state);
double lg_uniform(uint64_t *state);

/* Exponential inter-arrival time (seconds) of a Poisson process of rate
 * per second (> 0). */
double lg_exp_interval(uint64_t *state, double rate);

/* Writes a prompt of n_words common English words separated by spaces into
 * out (NUL-terminated, truncated at a word boundary to fit cap). Returns the
 * length. */
size_t lg_make_prompt(uint64_t *state, int n_words, char *out, size_t cap);

/* Parses "high:normal:low" weights (non-negative numbers, not all 0; one or
 * two fields mean the rest are 0) into w[3], normalised to sum 1. */
int lg_parse_mix(const char *s, double w[3], inf_error *err);

/* Picks an index 0..2 with the probabilities w. */
int lg_pick(uint64_t *state, const double w[3]);

/* Number of token ids in a space-separated "ids" field ("" = 0). */
int lg_count_ids(const char *ids);

#endif
