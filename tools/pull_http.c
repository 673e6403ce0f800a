/* pull_http.c - the libcurl side of pull_model: one file, many attempts
 * (Range resume, 200/206/416 handling, retries, progress bar). */
#include "pull_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* State of one attempt (one curl_easy_perform). */
typedef struct xfer {
    const pull_opts *o;
    CURL *c;
    int fd;
    const char *part;
    int64_t off;         /* bytes in the file now */
    int64_t start_off;   /* ... when the attempt began */
    int started;         /* the final response's body (or its end) was seen */
    int discard;         /* not a 200/206: the body is not the file */
    int restarted;       /* a 200 answered our Range: the file was truncated */
    int bad_range;       /* a 206 for another offset than asked */
    int64_t cr_start, cr_total; /* Content-Range of the current response (-1: none) */
    int64_t total;       /* expected size of the whole file (-1: unknown) */
    int write_errno;     /* a write to the file failed */
    char space_msg[256]; /* the free-space check failed */
    double last_progress;
    int progress_shown;
} xfer;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {}
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg) {
    xfer *x = arg;
    size_t len = sz * n;
    char line[256];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, k);
    line[k] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) { /* a new response (redirects: several) */
        x->cr_start = x->cr_total = -1;
    } else if (strncasecmp(line, "Content-Range:", 14) == 0) {
        const char *v = line + 14;
        while (*v == ' ' || *v == '\t') v++;
        long long a = -1, b = -1, t = -1;
        if (sscanf(v, "bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
            x->cr_start = a;
            x->cr_total = t;
        } else if (sscanf(v, "bytes */%lld", &t) == 1) {
            x->cr_total = t;
        }
    }
    return len;
}

static int mib_free(int fd, int64_t need, const char *part, char *msg, size_t cap) {
    struct statvfs v;
    if (need <= 0 || fstatvfs(fd, &v) != 0) return 0;
    int64_t avail = (int64_t)v.f_bavail * (int64_t)v.f_frsize;
    if (avail >= need) return 0;
    snprintf(msg, cap, "disk full: %s needs %.1f MiB more and its file system has %.1f MiB free", part,
             need / 1048576.0, avail / 1048576.0);
    return -1;
}

/* The first byte of the final response's body (or its end, for an empty
 * body): decide what the body is. Returns -1 to abort the transfer. */
static int body_start(xfer *x) {
    x->started = 1;
    long code = 0;
    curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200) {
        if (x->off > 0) {
            /* The server ignored Range: the body is the whole file again. */
            if (ftruncate(x->fd, 0) != 0) { x->write_errno = errno; return -1; }
            pull_logf(x->o, "the server ignored the Range request (HTTP 200): starting %s over", x->part);
            x->off = x->start_off = 0;
            x->restarted = 1;
        }
        curl_off_t cl = -1;
        curl_easy_getinfo(x->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        x->total = cl;
    } else if (code == 206) {
        if (x->cr_start != x->off) {
            x->bad_range = 1;
            return -1;
        }
        x->total = x->cr_total;
    } else {
        x->discard = 1;
        return 0;
    }
    if (x->total > 0 && mib_free(x->fd, x->total - x->off, x->part, x->space_msg, sizeof x->space_msg))
        return -1;
    return 0;
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
    xfer *x = arg;
    size_t len = sz * n;
    if (!x->started && body_start(x) != 0) return 0;
    if (x->discard) return len;
    for (size_t done = 0; done < len;) {
        ssize_t w = pwrite(x->fd, p + done, len - done, (off_t)x->off);
        if (w < 0) {
            if (errno == EINTR) continue;
            x->write_errno = errno;
            return 0; /* curl stops with CURLE_WRITE_ERROR */
        }
        done += (size_t)w;
        x->off += w;
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    xfer *x = arg;
    double now = mono_s();
    if (!x->o->progress || now - x->last_progress < 0.25 || x->discard || !x->started) return 0;
    x->last_progress = now;
    curl_off_t speed = 0;
    curl_easy_getinfo(x->c, CURLINFO_SPEED_DOWNLOAD_T, &speed);
    double have = (double)x->off / 1048576.0;
    if (x->total > 0) {
        double pct = 100.0 * (double)x->off / (double)x->total;
        int bar = (int)(pct / 100.0 * 30);
        char b[31];
        for (int i = 0; i < 30; i++) b[i] = i < bar ? '#' : '.';
        b[30] = '\0';
        fprintf(stderr, "\r[%s] %5.1f%% %.1f/%.1f MiB %.1f MiB/s   ", b, pct, have, x->total / 1048576.0,
                speed / 1048576.0);
    } else {
        fprintf(stderr, "\r%.1f MiB %.1f MiB/s   ", have, speed / 1048576.0);
    }
    x->progress_shown = 1;
    return 0;
}

static int retryable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static int retryable_status(long code) { return code == 408 || code == 429 || (code >= 500 && code <= 599); }

static int setup(xfer *x, const char *url, struct curl_slist *hdr, char *errbuf) {
    const pull_opts *o = x->o;
    CURL *c = x->c;
    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, o->user_agent ? o->user_agent : "inferno-pull") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)(o->connect_timeout_s > 0 ? o->connect_timeout_s : 30))
           != CURLE_OK;
    /* a connection that stays silent is as good as dropped: retry it */
    bad |= curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(o->stall_timeout_s > 0 ? o->stall_timeout_s : 60))
           != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    /* the model bytes must arrive as stored: no transparent decompression */
    bad |= curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L) != CURLE_OK;
    return bad ? -1 : 0;
}

/* One attempt. Returns 0 when the file is complete, 1 to retry, <0 error. */
static int attempt(xfer *x, const char *url, struct curl_slist *hdr, long *code_out, char *why, size_t why_cap,
                   inf_error *err) {
    char errbuf[CURL_ERROR_SIZE] = "";
    char range[48];
    curl_easy_reset(x->c);
    if (setup(x, url, hdr, errbuf) != 0) return inf_error_set(err, INF_EIO, "libcurl refused an option");
    if (x->off > 0) {
        snprintf(range, sizeof range, "%" PRId64 "-", x->off);
        curl_easy_setopt(x->c, CURLOPT_RANGE, range);
    }
    CURLcode rc = curl_easy_perform(x->c);
    long code = 0;
    curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &code);
    *code_out = code;
    if (!x->started && rc == CURLE_OK) (void)body_start(x); /* an empty body: decide what it was all the same */
    if (x->o->progress && x->progress_shown) {
        on_progress(x, 0, 0, 0, 0);
        fputc('\n', stderr);
        x->progress_shown = 0;
    }
    if (x->space_msg[0]) return inf_error_set(err, INF_EIO, "%s", x->space_msg);
    if (x->write_errno)
        return inf_error_set(err, INF_EIO, "writing %s: %s%s", x->part, strerror(x->write_errno),
                             x->write_errno == ENOSPC || x->write_errno == EDQUOT ? " (disk full)" : "");
    if (x->bad_range) {
        /* a 206 for bytes we did not ask for: start over, once per attempt */
        if (ftruncate(x->fd, 0) != 0) return inf_error_set(err, INF_EIO, "truncating %s: %s", x->part, strerror(errno));
        x->off = 0;
        snprintf(why, why_cap, "the server answered Range %" PRId64 "- with bytes from %" PRId64, x->start_off,
                 x->cr_start);
        return 1;
    }
    if (code == 416 && x->start_off > 0) {
        if (x->cr_total == x->start_off) return 0; /* the .part already holds everything */
        /* the .part is longer than the file (it changed on the server): start over */
        pull_logf(x->o, "%s: HTTP 416 for bytes %" PRId64 "- (file size %" PRId64 "): starting %s over", url,
                  x->start_off, x->cr_total, x->part);
        if (ftruncate(x->fd, 0) != 0) return inf_error_set(err, INF_EIO, "truncating %s: %s", x->part, strerror(errno));
        x->off = 0;
        snprintf(why, why_cap, "HTTP 416");
        return 1;
    }
    if (rc == CURLE_OK && (code == 200 || code == 206)) {
        if (x->total >= 0 && x->off != x->total) {
            snprintf(why, why_cap, "got %" PRId64 " of %" PRId64 " bytes", x->off, x->total);
            return 1;
        }
        return 0;
    }
    if (rc != CURLE_OK && retryable_curl(rc)) {
        snprintf(why, why_cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return 1;
    }
    if (rc == CURLE_OK && retryable_status(code)) {
        snprintf(why, why_cap, "HTTP %ld", code);
        return 1;
    }
    if (rc == CURLE_OK && code >= 300)
        return inf_error_set(err, code == 404 || code == 410 ? INF_ENOTFOUND : INF_EIO, "HTTP %ld from %s%s", code,
                             url, code == 401 || code == 403 ? " (a gated or private model needs HF_TOKEN)" : "");
    if (rc != CURLE_OK)
        return inf_error_set(err, INF_EIO, "downloading %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return inf_error_set(err, INF_EIO, "downloading %s: unexpected HTTP %ld", url, code);
}

int pull_http_download(const pull_opts *o, const char *url, int fd, const char *part, int *requests,
                       inf_error *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) return inf_error_set(err, INF_EIO, "%s: %s", part, strerror(errno));
    CURL *c = curl_easy_init();
    if (!c) return inf_error_set(err, INF_ENOMEM, "libcurl: cannot create a handle");
    struct curl_slist *hdr = NULL;
    char auth[1024];
    /* a credential for Hugging Face only, never for whatever host a URL names
     * (curl itself drops it on a redirect to another host, e.g. the CDN) */
    if (o->hf_token && *o->hf_token && strncmp(url, "https://huggingface.co/", 23) == 0) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->hf_token);
        hdr = curl_slist_append(hdr, auth);
        if (!hdr) { curl_easy_cleanup(c); return inf_error_set(err, INF_ENOMEM, "out of memory"); }
    }
    int64_t off = st.st_size;
    if (off > 0) pull_logf(o, "resuming %s at byte %" PRId64, part, off);
    int failures = 0, rc;
    int delay = o->retry_delay_ms > 0 ? o->retry_delay_ms : 0;
    for (;;) {
        xfer x = {.o = o, .c = c, .fd = fd, .part = part, .off = off, .start_off = off, .cr_start = -1,
                  .cr_total = -1, .total = -1};
        long code = 0;
        char why[CURL_ERROR_SIZE + 64] = "";
        (*requests)++;
        rc = attempt(&x, url, hdr, &code, why, sizeof why, err);
        int gained = x.off > x.start_off || x.restarted;
        off = x.off;
        if (rc <= 0) break;
        failures = gained ? 1 : failures + 1;
        if (failures > o->max_retries) {
            rc = inf_error_set(err, INF_EIO, "downloading %s: %s (gave up after %d attempts in a row without progress; "
                               "%s keeps %" PRId64 " bytes for the next try)", url, why, failures, part, off);
            break;
        }
        int pause = delay;
        for (int i = 1; i < failures && pause < 8 * delay; i++) pause *= 2;
        pull_logf(o, "%s: %s; retrying from byte %" PRId64 " in %d ms", url, why, off, pause);
        sleep_ms(pause);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return rc;
}
