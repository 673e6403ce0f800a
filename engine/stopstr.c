/* stopstr.c - stop-string matcher (see stopstr.h).
 *
 * The buffer holds the not-yet-emitted text: the held-back tail from earlier
 * calls plus the new delta. Bytes emitted by a call stay in the buffer until
 * the next call (the caller reads them through out->text) and are dropped
 * then. The held tail is shorter than the longest stop string, so each call
 * costs O(len(delta) + longest stop) per stop string.
 */
#include "stopstr.h"

#include <stdlib.h>
#include <string.h>

struct stop_matcher {
    char **stops;
    size_t *stop_len;
    size_t n_stops;
    char *buf;
    size_t len, cap;
    size_t drop; /* emitted by the last call; dropped at the next */
    int stop_index;
};

int stop_matcher_create(stop_matcher **out, const char *const *stops, size_t n_stops,
                        inf_error *err) {
    *out = NULL;
    if (n_stops && !stops) return inf_error_set(err, INF_EINVAL, "stop strings are NULL");
    for (size_t i = 0; i < n_stops; i++)
        if (!stops[i] || !stops[i][0])
            return inf_error_set(err, INF_EINVAL, "stop strings must be non-empty (entry %zu)", i);
    stop_matcher *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->stop_index = -1;
    if (n_stops) {
        m->stops = calloc(n_stops, sizeof *m->stops);
        m->stop_len = calloc(n_stops, sizeof *m->stop_len);
        if (!m->stops || !m->stop_len) goto oom;
        m->n_stops = n_stops;
        for (size_t i = 0; i < n_stops; i++) {
            m->stops[i] = strdup(stops[i]);
            if (!m->stops[i]) goto oom;
            m->stop_len[i] = strlen(stops[i]);
        }
    }
    *out = m;
    return 0;
oom:
    stop_matcher_free(m);
    return inf_error_set(err, INF_ENOMEM, "out of memory creating a stop matcher");
}

void stop_matcher_free(stop_matcher *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_stops; i++) free(m->stops[i]);
    free(m->stops);
    free(m->stop_len);
    free(m->buf);
    free(m);
}

size_t stop_matcher_held(const stop_matcher *m) { return m->len - m->drop; }

static void compact(stop_matcher *m) {
    if (!m->drop) return;
    memmove(m->buf, m->buf + m->drop, m->len - m->drop);
    m->len -= m->drop;
    m->drop = 0;
}

/* Earliest-completing occurrence of any stop string in the buffer (ties: the
 * earliest start); -1 if none. The first occurrence of each string is its
 * earliest-ending one, as all its occurrences have the same length. */
static int find_stop(const stop_matcher *m, size_t *pos_out) {
    int best = -1;
    size_t best_pos = 0, best_end = 0;
    *pos_out = 0;
    if (!m->len) return -1; /* buf may still be NULL */
    for (size_t i = 0; i < m->n_stops; i++) {
        const char *hit = memmem(m->buf, m->len, m->stops[i], m->stop_len[i]);
        if (!hit) continue;
        size_t pos = (size_t)(hit - m->buf), end = pos + m->stop_len[i];
        if (best < 0 || end < best_end || (end == best_end && pos < best_pos)) {
            best = (int)i;
            best_pos = pos;
            best_end = end;
        }
    }
    *pos_out = best_pos;
    return best;
}

/* Length of the longest suffix of the buffer that is a proper prefix of some
 * stop string: text that a later delta could still turn into a match. */
static size_t hold_len(const stop_matcher *m) {
    size_t best = 0;
    for (size_t i = 0; i < m->n_stops; i++) {
        const char *s = m->stops[i];
        size_t k = m->stop_len[i] - 1;
        if (k > m->len) k = m->len;
        for (; k > best; k--) {
            const char *tail = m->buf + m->len - k;
            if (tail[0] == s[0] && memcmp(tail, s, k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

int stop_matcher_feed(stop_matcher *m, const char *delta, size_t len, int armed,
                      stop_match_out *out, inf_error *err) {
    out->text = m->buf ? m->buf : "";
    out->len = 0;
    out->stop_index = m->stop_index;
    if (m->stop_index >= 0) return 0;
    if (len && !delta) return inf_error_set(err, INF_EINVAL, "text delta is NULL");
    compact(m);
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->len + len) cap *= 2;
        char *b = realloc(m->buf, cap);
        if (!b) return inf_error_set(err, INF_ENOMEM, "out of memory buffering stop-string text");
        m->buf = b;
        m->cap = cap;
    }
    if (len) memcpy(m->buf + m->len, delta, len);
    m->len += len;
    out->text = m->buf ? m->buf : "";
    if (armed) {
        size_t pos;
        int idx = find_stop(m, &pos);
        if (idx >= 0) {
            m->stop_index = idx;
            m->len = pos; /* the stop string and anything after it are dropped */
            m->drop = pos;
            out->len = pos;
            out->stop_index = idx;
            return 0;
        }
    }
    m->drop = m->len - hold_len(m);
    out->len = m->drop;
    return 0;
}

void stop_matcher_flush(stop_matcher *m, stop_match_out *out) {
    out->text = m->buf ? m->buf : "";
    out->len = 0;
    out->stop_index = m->stop_index;
    if (m->stop_index >= 0) return;
    compact(m);
    m->drop = m->len;
    out->len = m->len;
}
