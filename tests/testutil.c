/* testutil.c - helpers shared by the CUnit suites (see testutil.h). */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *rot_buf(void) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next];
    next = (next + 1) % 8;
    return b;
}

const char *tu_shared_dir(void) {
    static char path[4096];
    static int done;
    if (!done) {
        done = 1;
        const char *env = getenv("INFERNO_SHARED");
        const char *cand = env && *env ? env : "../shared";
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISDIR(st.st_mode))
            snprintf(path, sizeof path, "%s", cand);
    }
    return path[0] ? path : NULL;
}

const char *tu_shared_file(const char *rel) {
    const char *dir = tu_shared_dir();
    if (!dir) return NULL;
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", dir, rel);
    struct stat st;
    return stat(b, &st) == 0 ? b : NULL;
}

void tu_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "\n    SKIP: ");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    va_end(ap);
    fflush(stdout);
}

static char tmp_root[256];

static void rm_tmp(void) {
    if (!tmp_root[0]) return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) { /* best effort */ }
}

const char *tu_tmpdir(void) {
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/inferno-tests.XXXXXX");
        if (!mkdtemp(tmp_root)) {
            perror("mkdtemp");
            abort();
        }
        atexit(rm_tmp);
    }
    return tmp_root;
}

const char *tu_tmpfile(const char *name) {
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", tu_tmpdir(), name);
    return b;
}

const char *tu_bin(const char *name) {
    const char *dir = getenv("INFERNO_BIN");
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", dir && *dir ? dir : "bin", name);
    return b;
}

int tu_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int tu_run_capture(char *const argv[], char **out) {
    int pfd[2];
    if (out) *out = NULL;
    if (pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(pfd[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(pfd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (out) *out = buf; else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

uint64_t tu_rand_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float tu_rand_uniform(uint64_t *s, float lo, float hi) {
    double u = (double)(tu_rand_u64(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

char *tu_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}
