/* gw_auth.c - see gw_auth.h. */
#include "gw_auth.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 512

typedef struct slot {
    char *key;
    size_t len;
    double tokens, last_s;
    int streams;
} slot;

struct gw_auth {
    pthread_mutex_t mu;
    slot *slots;
    int n_keys, n_slots;
    double rps;
    int burst, max_streams;
};

int gw_ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
    /* loop over b's length always; a shorter a is read as zeros */
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(x ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

static int add_key(gw_auth *a, const char *k, size_t n, const char *where, inf_error *err) {
    if (n > KEY_MAX) return inf_error_set(err, INF_EINVAL, "%s: API key longer than %d bytes", where, KEY_MAX);
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)k[i]) || !isprint((unsigned char)k[i]))
            return inf_error_set(err, INF_EINVAL, "%s: API keys must be printable without blanks", where);
    slot *s = realloc(a->slots, (size_t)(a->n_keys + 1) * sizeof *s);
    if (!s) return inf_error_set(err, INF_ENOMEM, "out of memory");
    a->slots = s;
    memset(&s[a->n_keys], 0, sizeof *s);
    if (!(s[a->n_keys].key = strndup(k, n))) return inf_error_set(err, INF_ENOMEM, "out of memory");
    s[a->n_keys].len = n;
    a->n_keys++;
    return 0;
}

static int load_file(gw_auth *a, const char *path, inf_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return inf_error_set(err, INF_EIO, "--api-keys-file %s: %s", path, strerror(errno));
    char line[KEY_MAX + 64], where[600];
    int no = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        no++;
        snprintf(where, sizeof where, "%s:%d", path, no);
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1])) n--;
        if (!n || *s == '#') continue;
        rc = add_key(a, s, n, where, err);
    }
    fclose(f);
    return rc;
}

int gw_auth_create(gw_auth **out, const gw_auth_config *cfg, inf_error *err) {
    *out = NULL;
    gw_auth *a = calloc(1, sizeof *a);
    if (!a) return inf_error_set(err, INF_ENOMEM, "out of memory");
    pthread_mutex_init(&a->mu, NULL);
    a->rps = cfg->rps;
    a->burst = cfg->burst > 0 ? cfg->burst : 1;
    a->max_streams = cfg->max_streams;
    int rc = 0;
    if (cfg->keys_file && *cfg->keys_file) rc = load_file(a, cfg->keys_file, err);
    if (!rc && cfg->keys_csv && *cfg->keys_csv) {
        const char *p = cfg->keys_csv;
        while (!rc && *p) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            while (n && isspace((unsigned char)*p)) { p++; n--; }
            while (n && isspace((unsigned char)p[n - 1])) n--;
            if (n) rc = add_key(a, p, n, "--api-keys", err);
            p = c ? c + 1 : p + strlen(p);
        }
    }
    if (!rc && a->n_keys == 0) { /* one anonymous slot */
        if (!(a->slots = calloc(1, sizeof *a->slots))) rc = inf_error_set(err, INF_ENOMEM, "out of memory");
    }
    if (rc) {
        gw_auth_free(a);
        return rc;
    }
    a->n_slots = a->n_keys ? a->n_keys : 1;
    for (int i = 0; i < a->n_slots; i++) a->slots[i].tokens = a->burst;
    *out = a;
    return 0;
}

void gw_auth_free(gw_auth *a) {
    if (!a) return;
    for (int i = 0; i < a->n_keys; i++) {
        memset(a->slots[i].key, 0, a->slots[i].len);
        free(a->slots[i].key);
    }
    free(a->slots);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int gw_auth_n_keys(const gw_auth *a) { return a->n_keys; }

int gw_auth_check(gw_auth *a, const char *h) {
    if (!a->n_keys) return 0;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return -1;
    const char *tok = h + 7;
    while (*tok == ' ') tok++;
    size_t n = strlen(tok);
    while (n && tok[n - 1] == ' ') n--;
    int found = -1;
    for (int i = 0; i < a->n_keys; i++) { /* no early exit */
        int eq = gw_ct_equal(tok, n, a->slots[i].key, a->slots[i].len);
        found = eq && found < 0 ? i : found;
    }
    return found;
}

int gw_auth_admit(gw_auth *a, int si, int n, double now, double *retry) {
    *retry = 0;
    if (si < 0 || si >= a->n_slots) si = 0;
    pthread_mutex_lock(&a->mu);
    slot *s = &a->slots[si];
    int rc = GW_ADMIT_OK;
    if (a->max_streams > 0 && s->streams + n > a->max_streams) {
        rc = GW_ADMIT_STREAMS;
        *retry = 1;
    } else if (a->rps > 0) {
        if (s->last_s > 0) s->tokens = fmin(a->burst, s->tokens + (now - s->last_s) * a->rps);
        s->last_s = now;
        if (s->tokens < 1) {
            rc = GW_ADMIT_RATE;
            *retry = (1 - s->tokens) / a->rps;
        } else {
            s->tokens -= 1;
        }
    }
    if (rc == GW_ADMIT_OK) s->streams += n;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void gw_auth_release(gw_auth *a, int si, int n) {
    if (si < 0 || si >= a->n_slots) si = 0;
    pthread_mutex_lock(&a->mu);
    a->slots[si].streams -= n;
    if (a->slots[si].streams < 0) a->slots[si].streams = 0;
    pthread_mutex_unlock(&a->mu);
}
