/* stopstr.h - stop-string matching on streamed text (OpenAI "stop").
 *
 * The caller feeds the text of each new token (a byte delta) as it is
 * detokenized. The matcher says how many bytes may be sent to the client now:
 * it holds back the longest tail that could still grow into a stop string, so
 * no byte of a stop string is ever emitted, however the string is split across
 * deltas. When a stop string completes, the output ends right before it (the
 * stop string itself is not emitted) and generation should stop.
 *
 * If several stop strings occur, the one that completes first in the text
 * wins (ties: the one starting first), so the result does not depend on how
 * the text was split into deltas. Matching is on raw bytes.
 */
#ifndef INF_STOPSTR_H
#define INF_STOPSTR_H

#include <stddef.h>

#include "status.h"

typedef struct stop_matcher stop_matcher;

typedef struct stop_match_out {
    /* Bytes that may be emitted now, in order after those of earlier calls.
     * Points into the matcher; valid until the next call on it. */
    const char *text;
    size_t len;
    /* -1: no stop string matched (yet); otherwise the index of the stop
     * string that matched: generation should end. Sticky once set. */
    int stop_index;
} stop_match_out;

/* Creates a matcher for stops[0..n_stops) (copied; each non-empty). n_stops
 * may be 0, then text passes straight through. Free with stop_matcher_free. */
int stop_matcher_create(stop_matcher **out, const char *const *stops, size_t n_stops,
                        inf_error *err);

/* Frees the matcher. NULL is a no-op. */
void stop_matcher_free(stop_matcher *m);

/* Feeds the next len bytes of text. armed = 0 disables matching (vLLM does
 * not match stop strings before min_tokens tokens were generated) while still
 * holding back a possible stop-string start, so that a stop string completing
 * once armed is still caught whole. After a match every further feed emits
 * nothing. */
int stop_matcher_feed(stop_matcher *m, const char *delta, size_t len, int armed,
                      stop_match_out *out, inf_error *err);

/* End of generation: releases the held-back bytes (none after a match). */
void stop_matcher_flush(stop_matcher *m, stop_match_out *out);

/* Number of bytes currently held back (not yet emitted). */
size_t stop_matcher_held(const stop_matcher *m);

#endif
