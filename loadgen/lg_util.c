/* lg_util.c - see lg_util.h. */
#include "lg_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int lg_samples_add(lg_samples *s, double x) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        double *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return INF_ENOMEM;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = x;
    return 0;
}

void lg_samples_free(lg_samples *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double lg_percentile(lg_samples *s, double p) {
    if (s->n == 0) return NAN;
    qsort(s->v, s->n, sizeof *s->v, cmp_d);
    if (p <= 0) return s->v[0];
    if (p >= 100) return s->v[s->n - 1];
    double rank = p / 100.0 * (double)(s->n - 1);
    size_t lo = (size_t)rank;
    double frac = rank - (double)lo;
    if (lo + 1 >= s->n) return s->v[s->n - 1];
    return s->v[lo] + frac * (s->v[lo + 1] - s->v[lo]);
}

double lg_mean(const lg_samples *s) {
    if (s->n == 0) return NAN;
    double t = 0;
    for (size_t i = 0; i < s->n; i++) t += s->v[i];
    return t / (double)s->n;
}

uint64_t lg_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double lg_uniform(uint64_t *state) { return (double)(lg_rand(state) >> 11) * (1.0 / 9007199254740992.0); }

double lg_exp_interval(uint64_t *state, double rate) {
    double u = lg_uniform(state);
    return -log(1.0 - u) / rate;
}

static const char *const WORDS[] = {
    "the", "time", "people", "year", "way", "day", "man", "thing", "woman", "life", "child", "world", "school",
    "state", "family", "student", "group", "country", "problem", "hand", "part", "place", "case", "week",
    "company", "system", "program", "question", "work", "number", "night", "point", "home", "water", "room",
    "mother", "area", "money", "story", "fact", "month", "lot", "right", "study", "book", "eye", "job", "word",
    "side", "kind", "head", "house", "friend", "father", "power", "hour", "game", "line", "end", "member", "law",
    "car", "city", "name", "team", "minute", "idea", "kid", "body", "face", "good", "new", "first", "last",
    "long", "great", "little", "own", "other", "old", "big", "high", "small", "large", "next", "early", "young",
    "is", "was", "had", "said", "went", "made", "saw", "came", "took", "gave", "once", "upon", "and", "then",
    "happy", "sun", "tree", "dog", "cat", "bird", "play", "park", "ball", "red", "blue", "sky", "toy", "girl",
    "boy", "fun", "run", "jump", "look", "find", "help", "love", "nice", "big", "very", "with", "from",
};

size_t lg_make_prompt(uint64_t *state, int n_words, char *out, size_t cap) {
    size_t n = 0, nw = sizeof WORDS / sizeof WORDS[0];
    if (cap == 0) return 0;
    out[0] = '\0';
    for (int i = 0; i < n_words; i++) {
        const char *w = WORDS[lg_rand(state) % nw];
        size_t l = strlen(w);
        if (n + l + 2 > cap) break;
        if (n) out[n++] = ' ';
        memcpy(out + n, w, l);
        n += l;
        out[n] = '\0';
    }
    return n;
}

int lg_parse_mix(const char *s, double w[3], inf_error *err) {
    w[0] = w[1] = w[2] = 0;
    const char *p = s;
    int k = 0;
    for (; k < 3; k++) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || !isfinite(x) || x < 0)
            return inf_error_set(err, INF_EINVAL, "--priority-mix '%s': expected high:normal:low weights, e.g. 1:2:7", s);
        w[k] = x;
        if (*end == '\0') break;
        if (*end != ':' || k == 2)
            return inf_error_set(err, INF_EINVAL, "--priority-mix '%s': expected high:normal:low weights, e.g. 1:2:7", s);
        p = end + 1;
    }
    double t = w[0] + w[1] + w[2];
    if (t <= 0) return inf_error_set(err, INF_EINVAL, "--priority-mix '%s': the weights sum to 0", s);
    for (int i = 0; i < 3; i++) w[i] /= t;
    return 0;
}

int lg_pick(uint64_t *state, const double w[3]) {
    double u = lg_uniform(state);
    if (u < w[0]) return 0;
    if (u < w[0] + w[1]) return 1;
    if (w[2] > 0) return 2;
    return w[1] > 0 ? 1 : 0; /* rounding at the top end */
}

int lg_count_ids(const char *ids) {
    int n = 0, in = 0;
    for (const char *p = ids; p && *p; p++) {
        if (*p == ' ') in = 0;
        else if (!in) { in = 1; n++; }
    }
    return n;
}
