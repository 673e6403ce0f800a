/* gw_auth.h - API keys (bearer tokens) and per-key limits.
 *
 * Keys come from a file (one per line, blank lines and # comments ignored,
 * surrounding blanks trimmed) and/or a comma-separated list; with none,
 * authentication is off and every request shares one anonymous slot for
 * the limits. A presented token is compared with every key in constant time
 * (no early exit on the first differing byte or on a match), so timing does
 * not tell how much of a key was right.
 *
 * Limits per key: a token bucket of rps requests/s (burst tokens), and at
 * most max_streams requests in progress (a fan-out of n counts n).
 *
 * Threads: every call may come from any thread (one mutex).
 */
#ifndef INF_GW_AUTH_H
#define INF_GW_AUTH_H

#include "status.h"

typedef struct gw_auth gw_auth;

typedef struct gw_auth_config {
    const char *keys_file; /* NULL or "": none */
    const char *keys_csv;  /* NULL or "": none */
    double rps;            /* 0: no rate limit */
    int burst;             /* bucket size (>= 1 when rps > 0) */
    int max_streams;       /* 0: no limit */
} gw_auth_config;

/* INF_EIO (file unreadable) or INF_EINVAL (a key with blanks inside, or
 * longer than 512 bytes), naming the file line. */
int gw_auth_create(gw_auth **out, const gw_auth_config *cfg, inf_error *err);
void gw_auth_free(gw_auth *a);

/* Number of keys (0: authentication off). */
int gw_auth_n_keys(const gw_auth *a);

/* The key slot of an "Authorization: Bearer TOKEN" header value (NULL if
 * absent): >= 0, or -1 when authentication is on and the token is missing
 * or wrong. With authentication off: 0. */
int gw_auth_check(gw_auth *a, const char *authorization);

enum { GW_ADMIT_OK = 0, GW_ADMIT_RATE = 1, GW_ADMIT_STREAMS = 2 };

/* Takes one request of n_streams legs for slot: GW_ADMIT_OK (the streams
 * are counted until gw_auth_release), or why not with *retry_after_s. */
int gw_auth_admit(gw_auth *a, int slot, int n_streams, double now_s, double *retry_after_s);

void gw_auth_release(gw_auth *a, int slot, int n_streams);

/* Constant-time equality of two byte strings (exposed for the tests). */
int gw_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
