/* pull.h - fetching a GGUF model over HTTP(S) into a local folder
 * (`inferno-model pull`, and the worker's --model URL).
 *
 *   pull_opts o = pull_opts_default();
 *   o.url = "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf";
 *   o.dir = cache_dir;                 // e.g. from pull_default_dir()
 *   pull_result r;
 *   if (pull_model(&o, &r, &err) == 0) load(r.path);
 *
 * URLs: http://, https://, and hf://ORG/REPO[@REV]/PATH as shorthand for
 * https://huggingface.co/ORG/REPO/resolve/REV/PATH (REV defaults to main).
 *
 * Files in the folder: the model is downloaded into NAME.part (an existing
 * .part is resumed with an HTTP Range request), checked (GGUF magic, the
 * expected SHA-256 when one is given), then renamed to NAME atomically, so
 * NAME only ever exists complete. NAME is derived from the URL (pull_file_name).
 * A .part is kept after a dropped connection, a write error or disk full (the
 * next pull resumes it) and removed when its content is known to be wrong
 * (not a GGUF, digest mismatch), since resuming it could only reproduce the
 * wrong bytes. Concurrent pulls of the same NAME (two workers on one host)
 * serialise on an advisory lock (flock) of the .part.
 *
 * No function here reads the environment: the cache folder and any
 * Hugging Face token come from the caller (pull_default_dir takes the values
 * of XDG_CACHE_HOME and HOME). Errors follow engine/status.h: 0 or a negative
 * INF_E* code with err->msg set. Thread-safety: functions share no state;
 * pull_model may run in several threads at once, but libcurl's global init
 * (done on first use) is not thread-safe: call pull_global_init() once before
 * starting threads that pull.
 */
#ifndef INF_PULL_H
#define INF_PULL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define PULL_SHA256_HEX 65 /* 64 lowercase hex digits and the NUL */
#define PULL_PATH_MAX 4096

/* Progress and event lines (resuming, retrying, reusing); msg has no newline. */
typedef void (*pull_log_fn)(void *arg, const char *msg);

typedef struct pull_opts {
    const char *url;        /* http(s):// or hf:// (required) */
    const char *sha256;     /* expected digest, 64 hex digits in either case; NULL/"" = not checked */
    const char *dir;        /* destination folder, created (with parents) if missing (required) */
    const char *hf_token;   /* sent as "Authorization: Bearer" when the URL is on
                               https://huggingface.co/ (not to other hosts, nor to redirect
                               targets on other hosts); NULL/"" = none */
    const char *user_agent; /* NULL: "inferno-pull" */
    int progress;           /* 1: a progress bar on stderr (the caller checks it is a TTY) */
    int max_retries;        /* failed attempts in a row (no byte gained) before giving up */
    int retry_delay_ms;     /* pause before the first retry, doubled per retry up to 8x */
    int connect_timeout_s;
    int stall_timeout_s;    /* an attempt that receives nothing for this long is dropped (retried) */
    pull_log_fn log;        /* NULL: silent */
    void *log_arg;
} pull_opts;

/* Defaults: max_retries 5, retry_delay_ms 1000, connect_timeout_s 30,
 * stall_timeout_s 60, everything else NULL/0. */
pull_opts pull_opts_default(void);

typedef struct pull_result {
    char path[PULL_PATH_MAX];        /* the complete local file */
    char sha256[PULL_SHA256_HEX];    /* its digest; "" when a cached file was reused unchecked */
    uint64_t bytes;                  /* its size */
    int reused;                      /* 1: it was already in the folder, nothing downloaded */
    int requests;                    /* HTTP transfers made (retries included) */
} pull_result;

/* Makes sure the model of o->url is complete in o->dir and fills *res.
 * An existing NAME is reused without any request when no digest is expected,
 * or when its digest matches (it is hashed); with a different digest it is
 * downloaded again. Errors (err->msg says which, with the URL): INF_EINVAL
 * (bad URL or digest text), INF_ENOTFOUND (HTTP 404/410), INF_EIO (other HTTP
 * status, transport failure after the retries, write error, "disk full"),
 * INF_EFORMAT (the body is not a GGUF file; "sha256 mismatch ... expected E,
 * got G"). Blocks for the whole download. */
int pull_model(const pull_opts *o, pull_result *res, inf_error *err);

/* 1 when s is a URL pull_model takes (http://, https://, hf://), else 0. */
int pull_is_url(const char *s);

/* Writes the http(s) URL that s stands for into out (hf:// mapped, others
 * copied). INF_EINVAL for a malformed hf:// URL or another scheme, INF_ERANGE
 * when out is too small. */
int pull_resolve_url(const char *s, char *out, size_t cap, inf_error *err);

/* The local file name for a resolved URL: the last path segment without the
 * query (characters outside [A-Za-z0-9._-] become '_'), with the first 12 hex
 * digits of the URL's SHA-256 before its extension, so equal file names from
 * different repositories do not collide: "model-1a2b3c4d5e6f.gguf". */
int pull_file_name(const char *url, char *out, size_t cap, inf_error *err);

/* The default cache folder: XDG_CACHE_HOME/inferno/models when xdg_cache_home
 * is set and absolute (as the XDG spec requires), else HOME/.cache/inferno/models.
 * Pass the variables' values (NULL when unset). INF_EINVAL when neither is usable. */
int pull_default_dir(const char *xdg_cache_home, const char *home, char *out, size_t cap, inf_error *err);

/* libcurl's process-wide init; idempotent but not thread-safe itself. 0 or INF_EIO. */
int pull_global_init(inf_error *err);

/* ---- SHA-256 (pull_sha256.c) --------------------------------------------- */

typedef struct pull_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} pull_sha256;

void pull_sha256_init(pull_sha256 *s);
void pull_sha256_update(pull_sha256 *s, const void *data, size_t len);
/* Writes the digest as lowercase hex; s must be re-initialised to be reused. */
void pull_sha256_final(pull_sha256 *s, char hex[PULL_SHA256_HEX]);

/* Digest of a whole file (read in 1 MiB chunks); *bytes (may be NULL) gets its size. */
int pull_sha256_file(const char *path, char hex[PULL_SHA256_HEX], uint64_t *bytes, inf_error *err);

#endif
