/* test_pull.c - suites "pull" and "pull_worker": tools/pull.h against a
 * local HTTP server (tests/pull_server.py, python3 http.server on a free
 * loopback port, started and stopped by PID here): a plain download with its
 * digest (truth: sha256sum of the served file), resume after a dropped
 * connection and of a leftover .part (the server logs the Range requests),
 * a server that ignores Range (200), 416 for a complete or too long .part, a
 * wrong digest, a body that is not a GGUF, 404 and 5xx, cache reuse without
 * a request, the CLI (and a write error under `ulimit -f`), hf:// mapping,
 * SHA-256 against Python's hashlib; and (pull_worker) bin/inferno-worker
 * started with an http:// --model serving one request. */
#include "test_worker_harness.h"

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>

#include "tools/pull.h"

static pid_t srv_pid;
static int srv_port;
static char srv_root[512], srv_log[512], served[600], truth[PULL_SHA256_HEX];
static int srv_ok;

static int copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *d = tu_read_file(from, &n);
    if (!d) return -1;
    FILE *f = fopen(to, "wb");
    int rc = f && fwrite(d, 1, n, f) == n ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(d);
    return rc;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* sha256sum's digest of a file ("" on failure). */
static void sha256sum_of(const char *path, char out[PULL_SHA256_HEX]) {
    char *argv[] = {"/usr/bin/sha256sum", (char *)path, NULL};
    char *o = NULL;
    out[0] = '\0';
    if (tu_run_capture(argv, &o) == 0 && o && strlen(o) >= 64) snprintf(out, PULL_SHA256_HEX, "%.64s", o);
    free(o);
}

static int srv_start(void) {
    srv_ok = 0;
    const char *model = wh_model();
    if (!model) return -1;
    snprintf(srv_root, sizeof srv_root, "%s", tu_tmpfile("pull-srv"));
    snprintf(srv_log, sizeof srv_log, "%s", tu_tmpfile("pull-srv.log"));
    snprintf(served, sizeof served, "%s/model.gguf", srv_root);
    mkdir(srv_root, 0755);
    unlink(srv_log);
    char page[600];
    snprintf(page, sizeof page, "%s/page.html", srv_root);
    if (copy_file(model, served) || write_text(page, "<!DOCTYPE html><html><body>not a model</body></html>\n"))
        return -1;
    sha256sum_of(served, truth);
    if (strlen(truth) != 64 || access("/usr/bin/python3", X_OK) != 0) return -1;
    srv_port = tu_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", srv_port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        execl("/usr/bin/python3", "python3", "tests/pull_server.py", "--root", srv_root, "--port", port, "--log",
              srv_log, (char *)NULL);
        _exit(127);
    }
    srv_pid = pid;
    for (int i = 0; i < 500; i++) { /* 10 s */
        char *log = tu_read_file(srv_log, NULL);
        int ready = log && strstr(log, "READY");
        free(log);
        if (ready) { srv_ok = 1; return 0; }
        if (waitpid(pid, NULL, WNOHANG) == pid) { srv_pid = 0; return -1; }
        wh_sleep_ms(20);
    }
    return -1;
}

static void srv_stop(void) {
    if (srv_pid > 0) {
        kill(srv_pid, SIGTERM);
        wh_wait_exit(srv_pid, 5000);
        srv_pid = 0;
    }
}

static const char *url(const char *path) {
    static char buf[4][256];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 256, "http://127.0.0.1:%d%s", srv_port, path);
    return b;
}

/* Lines of the server log containing needle. */
static int log_count(const char *needle) {
    char *t = tu_read_file(srv_log, NULL);
    int n = 0;
    for (char *p = t; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    free(t);
    return n;
}

/* A fresh, empty folder under the run's tmpdir. */
static const char *fresh_dir(const char *name) {
    const char *d = tu_tmpfile(name);
    mkdir(d, 0755);
    return d;
}

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int same_as_served(const char *path) {
    size_t a = 0, b = 0;
    char *x = tu_read_file(path, &a), *y = tu_read_file(served, &b);
    int same = x && y && a == b && memcmp(x, y, a) == 0;
    free(x);
    free(y);
    return same;
}

static int pull(const char *u, const char *dir, const char *sha, pull_result *r, inf_error *err) {
    pull_opts o = pull_opts_default();
    o.url = u;
    o.dir = dir;
    o.sha256 = sha;
    o.retry_delay_ms = 20;
    o.max_retries = 2;
    o.stall_timeout_s = 10;
    return pull_model(&o, r, err);
}

/* dir/<name of u>.part holding `len` bytes: the served file's head, or junk. */
static int make_part(const char *dir, const char *u, size_t len, int junk) {
    char name[256], path[1024];
    if (pull_file_name(u, name, sizeof name, NULL)) return -1;
    snprintf(path, sizeof path, "%s/%s.part", dir, name);
    size_t n = 0;
    char *d = tu_read_file(served, &n);
    if (!d) return -1;
    FILE *f = fopen(path, "wb");
    int rc = f ? 0 : -1;
    for (size_t i = 0; f && i < len; i++) fputc(junk ? 'x' : (i < n ? d[i] : 'y'), f);
    if (f) fclose(f);
    free(d);
    return rc;
}

#define NEED_SRV()                                                          \
    do {                                                                    \
        if (!srv_ok) {                                                      \
            tu_skip("test HTTP server unavailable (python3 and sha256sum)"); \
            return;                                                         \
        }                                                                   \
    } while (0)

static int suite_init(void) {
    if (srv_start() != 0) fprintf(stderr, "\n    pull: the test HTTP server did not start\n");
    return 0;
}

static int suite_clean(void) {
    srv_stop();
    return 0;
}

/* ---- unit level ----------------------------------------------------------- */

static void test_sha256(void) {
    static const struct { const char *in, *hex; } V[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        pull_sha256 h;
        char hex[PULL_SHA256_HEX];
        pull_sha256_init(&h);
        pull_sha256_update(&h, V[i].in, strlen(V[i].in));
        pull_sha256_final(&h, hex);
        CU_ASSERT_STRING_EQUAL(hex, V[i].hex);
    }
    if (access("/usr/bin/python3", X_OK) != 0) { tu_skip("python3 missing: hashlib comparison"); return; }
    /* lengths around the padding boundaries, and larger than one read chunk */
    static const size_t L[] = {1, 55, 56, 57, 63, 64, 65, 119, 120, 1000, 65537, (1u << 20) + 3};
    uint64_t seed = 42;
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        const char *path = tu_tmpfile("sha-input.bin");
        unsigned char *d = malloc(L[i]);
        for (size_t k = 0; k < L[i]; k++) d[k] = (unsigned char)tu_rand_u64(&seed);
        FILE *f = fopen(path, "wb");
        CU_ASSERT_FATAL(f != NULL);
        fwrite(d, 1, L[i], f);
        fclose(f);
        char *argv[] = {"/usr/bin/python3", "-c",
                        "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
                        (char *)path, NULL};
        char *py = NULL, file_hex[PULL_SHA256_HEX], inc_hex[PULL_SHA256_HEX];
        CU_ASSERT_EQUAL(tu_run_capture(argv, &py), 0);
        uint64_t bytes = 0;
        CU_ASSERT_EQUAL(pull_sha256_file(path, file_hex, &bytes, NULL), 0);
        CU_ASSERT_EQUAL(bytes, L[i]);
        /* the same bytes in odd-sized updates */
        pull_sha256 h;
        pull_sha256_init(&h);
        for (size_t k = 0, step = 1; k < L[i]; k += step, step = step * 3 % 97 + 1)
            pull_sha256_update(&h, d + k, k + step > L[i] ? L[i] - k : step);
        pull_sha256_final(&h, inc_hex);
        CU_ASSERT(py && strncmp(py, file_hex, 64) == 0);
        CU_ASSERT_STRING_EQUAL(inc_hex, file_hex);
        if (!py || strncmp(py, file_hex, 64))
            fprintf(stderr, "\n    length %zu: hashlib %s, ours %s\n", L[i], py ? py : "?", file_hex);
        free(py);
        free(d);
    }
}

static void test_urls(void) {
    char out[512];
    inf_error err = {0};
    CU_ASSERT_EQUAL(pull_resolve_url("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", out,
                                     sizeof out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/"
                                "qwen2.5-0.5b-instruct-q4_k_m.gguf");
    CU_ASSERT_EQUAL(pull_resolve_url("hf://org/repo@v1.2/sub/dir/m.gguf", out, sizeof out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "https://huggingface.co/org/repo/resolve/v1.2/sub/dir/m.gguf");
    CU_ASSERT_EQUAL(pull_resolve_url("hf://org/repo@0123abcd/m.gguf", out, sizeof out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "https://huggingface.co/org/repo/resolve/0123abcd/m.gguf");
    CU_ASSERT_EQUAL(pull_resolve_url("http://h:1/a.gguf?x=1", out, sizeof out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "http://h:1/a.gguf?x=1");
    const char *bad[] = {"hf://org/repo", "hf://org/repo/", "hf:///repo/m.gguf", "hf://org/repo@/m.gguf",
                         "hf://org/../m.gguf", "hf://org/repo/a/../m.gguf", "hf://org/repo/m.gguf?x",
                         "hf://org/re po/m.gguf", "hf://org/repo/dir/", "ftp://h/m.gguf", "m.gguf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = pull_resolve_url(bad[i], out, sizeof out, &err);
        CU_ASSERT_EQUAL(rc, INF_EINVAL);
        if (rc != INF_EINVAL) fprintf(stderr, "\n    accepted %s -> %s\n", bad[i], out);
    }
    CU_ASSERT_EQUAL(pull_resolve_url("hf://org/repo/m.gguf", out, 20, &err), INF_ERANGE);
    CU_ASSERT(pull_is_url("https://x/y") && pull_is_url("http://x/y") && pull_is_url("hf://a/b/c"));
    CU_ASSERT(!pull_is_url("/models/m.gguf") && !pull_is_url("m.gguf") && !pull_is_url(NULL));
    /* file names: the URL's last segment, its hash before the extension */
    char n1[256], n2[256], n3[256];
    CU_ASSERT_EQUAL(pull_file_name("https://huggingface.co/a/b/resolve/main/M-Q4_K_M.gguf", n1, sizeof n1, &err), 0);
    CU_ASSERT_EQUAL(pull_file_name("https://huggingface.co/c/d/resolve/main/M-Q4_K_M.gguf", n2, sizeof n2, &err), 0);
    CU_ASSERT(strncmp(n1, "M-Q4_K_M-", 9) == 0 && strlen(n1) == 9 + 12 + 5 && !strcmp(n1 + 21, ".gguf"));
    CU_ASSERT(strcmp(n1, n2) != 0);
    CU_ASSERT_EQUAL(pull_file_name("http://h/x/we%20ird name.gguf?sig=abc", n3, sizeof n3, &err), 0);
    CU_ASSERT(strncmp(n3, "we_20ird_name-", 14) == 0 && strstr(n3, ".gguf") && !strchr(n3, '?'));
    CU_ASSERT_EQUAL(pull_file_name("http://h", n3, sizeof n3, &err), 0);
    CU_ASSERT(strncmp(n3, "model-", 6) == 0);
    CU_ASSERT_EQUAL(pull_file_name("http://h/..", n3, sizeof n3, &err), 0);
    CU_ASSERT(n3[0] != '.');
    /* the cache folder */
    CU_ASSERT_EQUAL(pull_default_dir("/x/cache", "/home/u", out, sizeof out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "/x/cache/inferno/models");
    CU_ASSERT_EQUAL(pull_default_dir("relative", "/home/u", out, sizeof out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "/home/u/.cache/inferno/models");
    CU_ASSERT_EQUAL(pull_default_dir(NULL, NULL, out, sizeof out, &err), INF_EINVAL);
}

/* ---- against the server -------------------------------------------------- */

static void test_plain_and_reuse(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-plain");
    pull_result r;
    inf_error err = {0};
    int before = log_count("/f/model.gguf ");
    int rc = pull(url("/f/model.gguf"), dir, truth, &r, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) { fprintf(stderr, "\n    %s\n", err.msg); return; }
    CU_ASSERT_STRING_EQUAL(r.sha256, truth);
    CU_ASSERT(same_as_served(r.path));
    CU_ASSERT_EQUAL(r.reused, 0);
    CU_ASSERT_EQUAL(r.requests, 1);
    CU_ASSERT_EQUAL(dir_entries(dir), 1); /* no .part left */
    CU_ASSERT_EQUAL(log_count("/f/model.gguf range=- status=200"), before + 1);
    /* again: reused, no request; with the digest (hashed) and without */
    pull_result r2;
    CU_ASSERT_EQUAL(pull(url("/f/model.gguf"), dir, truth, &r2, &err), 0);
    CU_ASSERT_EQUAL(r2.reused, 1);
    CU_ASSERT_EQUAL(r2.requests, 0);
    CU_ASSERT_STRING_EQUAL(r2.path, r.path);
    CU_ASSERT_STRING_EQUAL(r2.sha256, truth);
    CU_ASSERT_EQUAL(pull(url("/f/model.gguf"), dir, NULL, &r2, &err), 0);
    CU_ASSERT_EQUAL(r2.reused, 1);
    CU_ASSERT_EQUAL(log_count("/f/model.gguf "), before + 1);
    /* upper-case digest text is the same digest */
    char upper[PULL_SHA256_HEX];
    for (int i = 0; i < 65; i++) upper[i] = (char)toupper((unsigned char)truth[i]);
    CU_ASSERT_EQUAL(pull(url("/f/model.gguf"), dir, upper, &r2, &err), 0);
    CU_ASSERT_EQUAL(log_count("/f/model.gguf "), before + 1);
    CU_ASSERT_EQUAL(pull(url("/f/model.gguf"), dir, "12ab", &r2, &err), INF_EINVAL);
}

static void test_resume_after_drop(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-drop");
    pull_result r;
    inf_error err = {0};
    int rc = pull(url("/drop/300000/model.gguf"), dir, truth, &r, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT(same_as_served(r.path));
    CU_ASSERT_EQUAL(r.requests, 2);
    CU_ASSERT_EQUAL(log_count("/drop/300000/model.gguf range=- status=200"), 1);
    CU_ASSERT_EQUAL(log_count("/drop/300000/model.gguf range=bytes=300000- status=206"), 1);
    CU_ASSERT_EQUAL(dir_entries(dir), 1);
}

static void test_resume_part(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-part");
    const char *u = url("/f/model.gguf");
    CU_ASSERT_EQUAL_FATAL(make_part(dir, u, 123457, 0), 0);
    pull_result r;
    inf_error err = {0};
    int rc = pull(u, dir, truth, &r, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT(same_as_served(r.path));
    CU_ASSERT_EQUAL(r.requests, 1);
    CU_ASSERT_EQUAL(log_count("/f/model.gguf range=bytes=123457- status=206"), 1);
    CU_ASSERT_EQUAL(dir_entries(dir), 1);
}

static void test_server_ignores_range(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-norange");
    const char *u = url("/norange/model.gguf");
    CU_ASSERT_EQUAL_FATAL(make_part(dir, u, 5000, 1), 0); /* junk: must be thrown away, not kept */
    pull_result r;
    inf_error err = {0};
    int rc = pull(u, dir, truth, &r, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT(same_as_served(r.path));
    CU_ASSERT_EQUAL(log_count("/norange/model.gguf range=bytes=5000- status=200"), 1);
}

static void test_range_416(void) {
    NEED_SRV();
    struct stat st;
    CU_ASSERT_FATAL(stat(served, &st) == 0);
    /* a .part that is already complete: 416, then checked and renamed */
    const char *dir = fresh_dir("pull-416");
    const char *u = url("/f/model.gguf");
    CU_ASSERT_EQUAL_FATAL(make_part(dir, u, (size_t)st.st_size, 0), 0);
    char range[64];
    snprintf(range, sizeof range, "range=bytes=%lld- status=416", (long long)st.st_size);
    int n416 = log_count(range);
    pull_result r;
    inf_error err = {0};
    int rc = pull(u, dir, truth, &r, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT(same_as_served(r.path));
    CU_ASSERT_EQUAL(r.requests, 1);
    CU_ASSERT_EQUAL(log_count(range), n416 + 1);
    /* a .part longer than the file: 416, then the whole file again */
    dir = fresh_dir("pull-416-long");
    CU_ASSERT_EQUAL_FATAL(make_part(dir, u, (size_t)st.st_size + 10, 0), 0);
    rc = pull(u, dir, truth, &r, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT(same_as_served(r.path));
    CU_ASSERT_EQUAL(r.requests, 2);
    CU_ASSERT_EQUAL(dir_entries(dir), 1);
}

static void test_wrong_digest(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-digest");
    char wrong[PULL_SHA256_HEX];
    snprintf(wrong, sizeof wrong, "%s", truth);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    pull_result r;
    inf_error err = {0};
    CU_ASSERT_EQUAL(pull(url("/f/model.gguf"), dir, wrong, &r, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "sha256 mismatch"));
    char both[200];
    snprintf(both, sizeof both, "expected %s, got %s", wrong, truth);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, both));
    CU_ASSERT_EQUAL(dir_entries(dir), 0); /* neither the model nor its .part */
}

static void test_not_gguf(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-html");
    pull_result r;
    inf_error err = {0};
    CU_ASSERT_EQUAL(pull(url("/f/page.html"), dir, NULL, &r, &err), INF_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "is not a GGUF file"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HTML"));
    CU_ASSERT_EQUAL(dir_entries(dir), 0);
}

static void test_http_errors(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-errors");
    pull_result r;
    inf_error err = {0};
    CU_ASSERT_EQUAL(pull(url("/f/missing.gguf"), dir, NULL, &r, &err), INF_ENOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HTTP 404 from http://127.0.0.1:"));
    CU_ASSERT_EQUAL(log_count("/f/missing.gguf range=- status=404"), 1); /* no retry for a 404 */
    /* 503: retried (max_retries 2: three attempts), then a clear error */
    CU_ASSERT_EQUAL(pull(url("/status/503"), dir, NULL, &r, &err), INF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HTTP 503"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "gave up after 3 attempts"));
    CU_ASSERT_EQUAL(log_count("/status/503 "), 3);
    CU_ASSERT_EQUAL(pull(url("/status/403"), dir, NULL, &r, &err), INF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HTTP 403"));
    /* nobody listening */
    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d/m.gguf", tu_free_port());
    CU_ASSERT_EQUAL(pull(dead, dir, NULL, &r, &err), INF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "gave up"));
    /* leftovers: empty .part files of the failed transfers at most, no model */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') CU_ASSERT(strstr(e->d_name, ".part") != NULL);
    if (d) closedir(d);
}

static void test_cli(void) {
    NEED_SRV();
    const char *dir = fresh_dir("pull-cli");
    char *argv[] = {(char *)tu_bin("inferno-model"), "pull", (char *)url("/f/model.gguf"), "--sha256", truth,
                    "--out", (char *)dir, "--quiet", NULL};
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(argv, &out), 0);
    char name[256], want[1024];
    CU_ASSERT_EQUAL_FATAL(pull_file_name(url("/f/model.gguf"), name, sizeof name, NULL), 0);
    snprintf(want, sizeof want, "%s/%s\n", dir, name);
    CU_ASSERT(out && strcmp(out, want) == 0);
    free(out);
    /* a write error (the file size limit: EFBIG) is reported, the .part kept
     * and resumed by the next pull */
    const char *dir2 = fresh_dir("pull-cli-fsize");
    const char *u = url("/f/model.gguf");
    char *sh[] = {"/bin/bash", "-c", "trap '' XFSZ; ulimit -f 200; exec \"$0\" pull \"$1\" --out \"$2\" 2>&1",
                  (char *)tu_bin("inferno-model"), (char *)u, (char *)dir2, NULL};
    out = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(sh, &out), 1);
    CU_ASSERT(out && strstr(out, "File too large"));
    if (!out || !strstr(out, "File too large")) fprintf(stderr, "\n    %s\n", out ? out : "");
    free(out);
    char part[1024];
    snprintf(part, sizeof part, "%s/%s.part", dir2, name);
    struct stat st;
    CU_ASSERT(stat(part, &st) == 0 && st.st_size == 200 * 1024);
    char *again[] = {(char *)tu_bin("inferno-model"), "pull", (char *)u, "--out", (char *)dir2, "--quiet", NULL};
    out = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(again, &out), 0);
    free(out);
    CU_ASSERT_EQUAL(log_count("/f/model.gguf range=bytes=204800- status=206"), 1);
    snprintf(part, sizeof part, "%s/%s", dir2, name);
    CU_ASSERT(same_as_served(part));
    /* usage errors */
    char *bad[] = {(char *)tu_bin("inferno-model"), "pull", NULL};
    out = NULL;
    CU_ASSERT_EQUAL(tu_run_capture(bad, &out), 2);
    free(out);
}

/* ---- pull_worker: the worker's --model URL --------------------------------- */

static wh H;
static int H_ok;

static int worker_suite_init(void) {
    H_ok = 0;
    if (srv_start() != 0) return 0;
    if (wh_setup(&H, 1, 0) != 0) return 0;
    H_ok = 1;
    return 0;
}

static int worker_suite_clean(void) {
    wh_teardown(&H);
    srv_stop();
    return 0;
}

static void test_worker_url_model(void) {
    NEED_SRV();
    WH_NEED_ENV(H_ok);
    snprintf(H.model, sizeof H.model, "%s", url("/f/model.gguf"));
    const char *dir = fresh_dir("pull-worker-cache");
    const char *extra[] = {"--model-cache-dir", dir, "--model-sha256", truth, NULL};
    CU_ASSERT_EQUAL_FATAL(wh_worker_start_ready(&H, "pull-w0", extra), 0);
    CU_ASSERT_EQUAL(wh_send_simple(&H, WH_TOPIC_N, "pull-req-1", "once upon a time", 8), 0);
    wh_stream s;
    int rc = wh_wait_final(&H, "pull-req-1", 30000, &s);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0) {
        CU_ASSERT_EQUAL(s.n_done, 1);
        CU_ASSERT_EQUAL(s.n_error, 0);
        CU_ASSERT(s.n_ids > 0);
        wh_stream_free(&s);
    } else {
        wh_print_log(&H, 0, 30);
    }
    CU_ASSERT(wh_log_count(&H, 0, "model: downloaded") == 1);
    CU_ASSERT_EQUAL(wh_worker_stop(&H, 0, 20000), 0);
    /* a wrong digest: the worker does not start, and says why */
    char wrong[PULL_SHA256_HEX];
    snprintf(wrong, sizeof wrong, "%s", truth);
    wrong[63] = wrong[63] == 'a' ? 'b' : 'a';
    const char *extra2[] = {"--model-cache-dir", fresh_dir("pull-worker-cache2"), "--model-sha256", wrong, NULL};
    int i = wh_worker_start(&H, "pull-w1", extra2);
    CU_ASSERT_FATAL(i >= 0);
    CU_ASSERT_EQUAL(wh_wait_exit(H.workers[i].pid, 30000), 1);
    H.workers[i].pid = 0;
    CU_ASSERT(wh_log_count(&H, i, "sha256 mismatch") == 1);
}

void test_register_pull(void) {
    CU_pSuite s = CU_add_suite("pull", suite_init, suite_clean);
    CU_add_test(s, "sha256 against known vectors and hashlib", test_sha256);
    CU_add_test(s, "hf:// mapping, file names, cache folder", test_urls);
    CU_add_test(s, "plain download with digest, then reuse", test_plain_and_reuse);
    CU_add_test(s, "resume after a dropped connection", test_resume_after_drop);
    CU_add_test(s, "resume a leftover .part", test_resume_part);
    CU_add_test(s, "server ignores Range (200)", test_server_ignores_range);
    CU_add_test(s, "416 for a complete or too long .part", test_range_416);
    CU_add_test(s, "wrong digest", test_wrong_digest);
    CU_add_test(s, "not a GGUF", test_not_gguf);
    CU_add_test(s, "HTTP errors and retries", test_http_errors);
    CU_add_test(s, "inferno-model pull", test_cli);
    CU_pSuite w = CU_add_suite("pull_worker", worker_suite_init, worker_suite_clean);
    CU_add_test(w, "worker --model http:// URL", test_worker_url_model);
}
