/* pull.c - pull_model: URL forms, the folder and file names, reuse, the
 * checks before the atomic rename (see pull.h). The transfer is pull_http.c. */
#include "pull_internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

pull_opts pull_opts_default(void) {
    pull_opts o;
    memset(&o, 0, sizeof o);
    o.max_retries = 5;
    o.retry_delay_ms = 1000;
    o.connect_timeout_s = 30;
    o.stall_timeout_s = 60;
    return o;
}

void pull_logf(const pull_opts *o, const char *fmt, ...) {
    if (!o->log) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->log(o->log_arg, msg);
}

int pull_global_init(inf_error *err) {
    static int done;
    if (done) return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return inf_error_set(err, INF_EIO, "libcurl: global initialisation failed");
    done = 1;
    return 0;
}

int pull_is_url(const char *s) {
    return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 || strncmp(s, "hf://", 5) == 0);
}

/* A path segment of an hf:// URL: non-empty, no "." or "..", no characters
 * that would change the URL's meaning. */
static int hf_segment_ok(const char *s, size_t n) {
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i])) return 0;
    return 1;
}

int pull_resolve_url(const char *s, char *out, size_t cap, inf_error *err) {
    if (!s || !pull_is_url(s))
        return inf_error_set(err, INF_EINVAL, "'%s' is not a model URL (http://, https:// or hf://ORG/REPO/FILE.gguf)",
                             s ? s : "(null)");
    if (strncmp(s, "hf://", 5) != 0) {
        if ((size_t)snprintf(out, cap, "%s", s) >= cap) return inf_error_set(err, INF_ERANGE, "URL too long: %s", s);
        return 0;
    }
    /* hf://ORG/REPO[@REV]/PATH... */
    const char *org = s + 5, *slash1 = strchr(org, '/');
    const char *repo = slash1 ? slash1 + 1 : NULL, *slash2 = repo ? strchr(repo, '/') : NULL;
    const char *path = slash2 ? slash2 + 1 : NULL;
    const char *bad = "hf:// URL '%s' must be hf://ORG/REPO/FILE or hf://ORG/REPO@REV/FILE";
    if (!path || !*path || !hf_segment_ok(org, (size_t)(slash1 - org))) return inf_error_set(err, INF_EINVAL, bad, s);
    const char *at = memchr(repo, '@', (size_t)(slash2 - repo));
    size_t repo_len = (size_t)((at ? at : slash2) - repo);
    const char *rev = at ? at + 1 : "main";
    size_t rev_len = at ? (size_t)(slash2 - rev) : 4;
    if (!hf_segment_ok(repo, repo_len) || !hf_segment_ok(rev, rev_len)) return inf_error_set(err, INF_EINVAL, bad, s);
    for (const char *seg = path; *seg;) {
        const char *e = strchr(seg, '/');
        size_t n = e ? (size_t)(e - seg) : strlen(seg);
        if (!hf_segment_ok(seg, n)) return inf_error_set(err, INF_EINVAL, bad, s);
        seg += n + (e != NULL);
        if (e && !*seg) return inf_error_set(err, INF_EINVAL, bad, s);
    }
    int n = snprintf(out, cap, "https://huggingface.co/%.*s/%.*s/resolve/%.*s/%s", (int)(slash1 - org), org,
                     (int)repo_len, repo, (int)rev_len, rev, path);
    if (n < 0 || (size_t)n >= cap) return inf_error_set(err, INF_ERANGE, "URL too long: %s", s);
    return 0;
}

int pull_file_name(const char *url, char *out, size_t cap, inf_error *err) {
    size_t end = strcspn(url, "?#");
    size_t start = end;
    while (start > 0 && url[start - 1] != '/') start--;
    const char *scheme_end = strstr(url, "://");
    char base[200];
    size_t bl = 0;
    /* no path at all ("http://host"): a generic name */
    if (start == end || (scheme_end && url + start <= scheme_end + 3)) {
        snprintf(base, sizeof base, "model.gguf");
        bl = strlen(base);
    } else {
        for (size_t i = start; i < end && bl + 1 < sizeof base; i++)
            base[bl++] = isalnum((unsigned char)url[i]) || strchr("._-", url[i]) ? url[i] : '_';
        base[bl] = '\0';
        if (base[0] == '.') base[0] = '_'; /* never a hidden file, "." or ".." */
    }
    pull_sha256 h;
    char hex[PULL_SHA256_HEX];
    pull_sha256_init(&h);
    pull_sha256_update(&h, url, strlen(url));
    pull_sha256_final(&h, hex);
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - base) : bl;
    int n = snprintf(out, cap, "%.*s-%.12s%s", (int)stem, base, hex, base + stem);
    if (n < 0 || (size_t)n >= cap) return inf_error_set(err, INF_ERANGE, "file name too long for %s", url);
    return 0;
}

int pull_default_dir(const char *xdg, const char *home, char *out, size_t cap, inf_error *err) {
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(out, cap, "%s/inferno/models", xdg);
    else if (home && home[0] == '/') n = snprintf(out, cap, "%s/.cache/inferno/models", home);
    else return inf_error_set(err, INF_EINVAL, "no cache folder: neither XDG_CACHE_HOME nor HOME is an absolute path "
                                               "(pass a folder explicitly)");
    if (n < 0 || (size_t)n >= cap) return inf_error_set(err, INF_ERANGE, "cache folder path too long");
    return 0;
}

int pull_sha256_file(const char *path, char hex[PULL_SHA256_HEX], uint64_t *bytes, inf_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return inf_error_set(err, INF_EIO, "%s: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) { close(fd); return inf_error_set(err, INF_ENOMEM, "out of memory"); }
    pull_sha256 h;
    pull_sha256_init(&h);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t k = read(fd, buf, CHUNK);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { rc = inf_error_set(err, INF_EIO, "reading %s: %s", path, strerror(errno)); break; }
        if (k == 0) break;
        pull_sha256_update(&h, buf, (size_t)k);
        total += (uint64_t)k;
    }
    free(buf);
    close(fd);
    if (rc) return rc;
    pull_sha256_final(&h, hex);
    if (bytes) *bytes = total;
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *dir, inf_error *err) {
    char p[PULL_PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s", dir) >= sizeof p) return inf_error_set(err, INF_ERANGE, "folder path too long");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return inf_error_set(err, INF_EIO, "creating folder %s: %s", p, strerror(errno));
            *s = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return inf_error_set(err, INF_EIO, "%s is not a folder", dir);
    return 0;
}

static int parse_digest(const char *in, char out[PULL_SHA256_HEX], inf_error *err) {
    out[0] = '\0';
    if (!in || !*in) return 0;
    size_t n = strlen(in);
    if (n != 64) return inf_error_set(err, INF_EINVAL, "sha256 '%s' is not 64 hexadecimal digits", in);
    for (size_t i = 0; i < 64; i++) out[i] = (char)tolower((unsigned char)in[i]);
    out[64] = '\0';
    if (strspn(out, "0123456789abcdef") != 64) {
        out[0] = '\0';
        return inf_error_set(err, INF_EINVAL, "sha256 '%s' is not 64 hexadecimal digits", in);
    }
    return 0;
}

/* Opens and locks the .part file; the loop makes sure the locked inode is
 * still the one at `part` (another process may have renamed or removed it
 * while we waited for the lock). */
static int open_locked(const pull_opts *o, const char *part, int *fd_out, inf_error *err) {
    for (;;) {
        int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return inf_error_set(err, INF_EIO, "creating %s: %s", part, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            pull_logf(o, "waiting for another download of %s", part);
            if (flock(fd, LOCK_EX) != 0) {
                int e = errno;
                close(fd);
                return inf_error_set(err, INF_EIO, "locking %s: %s", part, strerror(e));
            }
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(part, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            *fd_out = fd;
            return 0;
        }
        close(fd);
    }
}

/* The file's first bytes must be the GGUF magic; says what it was instead. */
static int check_gguf(int fd, const char *url, inf_error *err) {
    unsigned char m[16] = {0};
    ssize_t k = pread(fd, m, sizeof m, 0);
    if (k >= 4 && memcmp(m, "GGUF", 4) == 0) return 0;
    int html = k > 0 && (m[0] == '<' || (k > 3 && m[0] == 0xef && m[3] == '<'));
    return inf_error_set(err, INF_EFORMAT, "%s is not a GGUF file (%zd bytes, starting %02x %02x %02x %02x, not 'GGUF')%s",
                         url, k < 0 ? (ssize_t)0 : k, m[0], m[1], m[2], m[3],
                         html ? ": an HTML page - is the URL a download link (Hugging Face: /resolve/, not /blob/)?" : "");
}

static int fill_result(pull_result *res, const char *final, const char *hex, int reused, inf_error *err) {
    struct stat st;
    if (stat(final, &st) != 0) return inf_error_set(err, INF_EIO, "%s: %s", final, strerror(errno));
    snprintf(res->path, sizeof res->path, "%s", final);
    snprintf(res->sha256, sizeof res->sha256, "%s", hex ? hex : "");
    res->bytes = (uint64_t)st.st_size;
    res->reused = reused;
    return 0;
}

/* An existing complete file: reusable? 1 yes (res filled), 0 no, <0 error. */
static int try_reuse(const pull_opts *o, const char *final, const char *want, pull_result *res, inf_error *err) {
    if (access(final, F_OK) != 0) return 0;
    if (!want[0]) return fill_result(res, final, NULL, 1, err) ? -1 : 1;
    char have[PULL_SHA256_HEX];
    int rc = pull_sha256_file(final, have, NULL, err);
    if (rc) return rc;
    if (strcmp(have, want) == 0) return fill_result(res, final, have, 1, err) ? -1 : 1;
    pull_logf(o, "%s has sha256 %s, not the expected %s: downloading it again", final, have, want);
    return 0;
}

int pull_model(const pull_opts *o, pull_result *res, inf_error *err) {
    memset(res, 0, sizeof *res);
    if (!o->dir || !*o->dir) return inf_error_set(err, INF_EINVAL, "pull: no destination folder");
    char want[PULL_SHA256_HEX], url[4096], name[256], final[PULL_PATH_MAX], part[PULL_PATH_MAX];
    int rc = parse_digest(o->sha256, want, err);
    if (!rc) rc = pull_resolve_url(o->url, url, sizeof url, err);
    if (!rc) rc = pull_file_name(url, name, sizeof name, err);
    if (rc) return rc;
    if ((size_t)snprintf(final, sizeof final, "%s/%s", o->dir, name) >= sizeof final ||
        (size_t)snprintf(part, sizeof part, "%s.part", final) >= sizeof part)
        return inf_error_set(err, INF_ERANGE, "path too long in %s", o->dir);
    if ((rc = make_dirs(o->dir, err))) return rc;
    /* the common case (a restart with the model cached) takes no lock and no request */
    int had_final = access(final, F_OK) == 0;
    if ((rc = try_reuse(o, final, want, res, err)) != 0) return rc < 0 ? rc : 0;
    if ((rc = pull_global_init(err))) return rc;
    int fd = -1;
    if ((rc = open_locked(o, part, &fd, err))) return rc;
    /* another process may have finished it while we waited for the lock */
    if (!had_final && (rc = try_reuse(o, final, want, res, err)) != 0) {
        if (rc > 0) unlink(part);
        close(fd);
        return rc < 0 ? rc : 0;
    }
    pull_logf(o, "downloading %s into %s", url, final);
    rc = pull_http_download(o, url, fd, part, &res->requests, err);
    char have[PULL_SHA256_HEX] = "";
    if (!rc && fsync(fd) != 0)
        rc = inf_error_set(err, INF_EIO, "writing %s: %s%s", part, strerror(errno), errno == ENOSPC ? " (disk full)" : "");
    if (!rc && (rc = check_gguf(fd, url, err)) != 0) unlink(part);
    if (!rc) rc = pull_sha256_file(part, have, NULL, err);
    if (!rc && want[0] && strcmp(have, want) != 0) {
        unlink(part);
        rc = inf_error_set(err, INF_EFORMAT, "sha256 mismatch for %s: expected %s, got %s (the download was removed)",
                           url, want, have);
    }
    if (!rc && rename(part, final) != 0)
        rc = inf_error_set(err, INF_EIO, "renaming %s to %s: %s", part, final, strerror(errno));
    if (!rc) {
        /* the rename itself must survive a crash */
        int dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) { fsync(dfd); close(dfd); }
        rc = fill_result(res, final, have, 0, err);
    }
    close(fd);
    return rc;
}
