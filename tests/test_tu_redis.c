/* test_tu_redis.c - a private redis-server for tests (API in tu_redis.h),
 * and the suite "tu_redis" that checks the helper itself. The file is named
 * test_*.c so that the Makefile links it into bin/inferno-tests as is. */
#include "tu_redis.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "testutil.h"

#define TU_REDIS_MAX_ARGS 64

struct tu_redis {
    int port;
    pid_t pid;
    char dir[512];
    char url[64];
    char log[600];
    char *extra[TU_REDIS_MAX_ARGS];
    int n_extra;
    struct tu_redis *next_live; /* registry for the at-exit safety net */
};

/* Servers not yet freed, so a test that aborts half-way (CU_ASSERT_FATAL
 * longjmps past its cleanup) does not leave a redis-server running. */
static struct tu_redis *live_list;
static int atexit_done;

static void kill_all_at_exit(void) {
    for (struct tu_redis *r = live_list; r; r = r->next_live)
        if (r->pid > 0) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
            r->pid = 0;
        }
}

static void registry_add(struct tu_redis *r) {
    if (!atexit_done) {
        atexit(kill_all_at_exit);
        atexit_done = 1;
    }
    r->next_live = live_list;
    live_list = r;
}

static void registry_remove(struct tu_redis *r) {
    for (struct tu_redis **p = &live_list; *p; p = &(*p)->next_live)
        if (*p == r) {
            *p = r->next_live;
            return;
        }
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *server_path(void) {
    if (access("/usr/bin/redis-server", X_OK) == 0) return "/usr/bin/redis-server";
    return "redis-server";
}

int tu_redis_available(void) {
    char *argv[] = {(char *)server_path(), "--version", NULL};
    char *out = NULL;
    int rc = tu_run_capture(argv, &out);
    int ok = rc == 0 && out && strstr(out, "Redis server");
    free(out);
    return ok;
}

/* fork/exec the server; the child gets its own log file and dies with us. */
static pid_t spawn(struct tu_redis *r) {
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[TU_REDIS_MAX_ARGS + 20];
    int n = 0;
    argv[n++] = server_path();
    argv[n++] = "--port"; argv[n++] = port;
    argv[n++] = "--bind"; argv[n++] = "127.0.0.1";
    argv[n++] = "--save"; argv[n++] = "";
    argv[n++] = "--appendonly"; argv[n++] = "no";
    argv[n++] = "--daemonize"; argv[n++] = "no";
    argv[n++] = "--dir"; argv[n++] = r->dir;
    argv[n++] = "--protected-mode"; argv[n++] = "no";
    for (int i = 0; i < r->n_extra; i++) argv[n++] = r->extra[i];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int ping_ok(int port) {
    struct timeval tv = {0, 300 * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c) return 0;
    int ok = 0;
    if (!c->err) {
        redisSetTimeout(c, tv);
        redisReply *rep = redisCommand(c, "PING");
        /* NOAUTH also proves the server is up (ACL configs disabling default). */
        ok = rep && ((rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0) ||
                     (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOAUTH", 6) == 0));
        if (rep) freeReplyObject(rep);
    }
    redisFree(c);
    return ok;
}

/* Starts the process and waits for PING; 0 ok, -1 failed (child reaped). */
static int launch(struct tu_redis *r) {
    r->pid = spawn(r);
    if (r->pid <= 0) {
        r->pid = 0;
        return -1;
    }
    double deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) { /* exited: bad args or port busy */
            r->pid = 0;
            return -1;
        }
        if (ping_ok(r->port)) return 0;
        sleep_ms(20);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    return -1;
}

tu_redis *tu_redis_start(const char *const *extra_args) {
    struct tu_redis *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    for (int i = 0; extra_args && extra_args[i]; i++) {
        if (r->n_extra >= TU_REDIS_MAX_ARGS) {
            fprintf(stderr, "tu_redis_start: too many extra arguments\n");
            tu_redis_free(r);
            return NULL;
        }
        r->extra[r->n_extra++] = strdup(extra_args[i]);
    }
    snprintf(r->dir, sizeof r->dir, "%s/redis.XXXXXX", tu_tmpdir());
    if (!mkdtemp(r->dir)) {
        perror("tu_redis_start: mkdtemp");
        tu_redis_free(r);
        return NULL;
    }
    snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);
    registry_add(r);
    /* The free port can be taken by someone else before the server binds it:
     * try a few ports. */
    for (int attempt = 0; attempt < 4; attempt++) {
        r->port = tu_free_port();
        if (r->port <= 0) continue;
        snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
        if (launch(r) == 0) return r;
    }
    char *log = tu_read_file(r->log, NULL);
    fprintf(stderr, "tu_redis_start: redis-server did not come up; log:\n%s\n", log ? log : "(none)");
    free(log);
    tu_redis_free(r);
    return NULL;
}

static int stop_with(struct tu_redis *r, int sig) {
    if (!r || r->pid <= 0) return 0;
    kill(r->pid, sig);
    double deadline = now_ms() + 5000;
    int reaped = 0;
    while (now_ms() < deadline) {
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            reaped = 1;
            break;
        }
        sleep_ms(10);
    }
    if (!reaped) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = 0;
    return 0;
}

int tu_redis_stop(tu_redis *r) { return stop_with(r, SIGTERM); }

int tu_redis_kill(tu_redis *r) { return stop_with(r, SIGKILL); }

int tu_redis_restart(tu_redis *r) {
    if (!r) return -1;
    if (r->pid > 0) tu_redis_stop(r);
    /* A just-closed port can linger briefly; redis binds with SO_REUSEADDR,
     * but a client of ours could have grabbed it as an ephemeral port. */
    double deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        if (launch(r) == 0) return 0;
        sleep_ms(100);
    }
    return -1;
}

void tu_redis_free(tu_redis *r) {
    if (!r) return;
    tu_redis_stop(r);
    registry_remove(r);
    if (r->dir[0]) {
        unlink(r->log);
        char dump[600];
        snprintf(dump, sizeof dump, "%s/dump.rdb", r->dir);
        unlink(dump);
        /* --appendonly yes (a suite passing it) leaves appendonlydir/ */
        snprintf(dump, sizeof dump, "%s/appendonlydir", r->dir);
        DIR *d = opendir(dump);
        for (struct dirent *de; d && (de = readdir(d));) {
            if (de->d_name[0] == '.') continue;
            char f[900];
            snprintf(f, sizeof f, "%s/%s", dump, de->d_name);
            unlink(f);
        }
        if (d) closedir(d);
        rmdir(dump);
        rmdir(r->dir);
    }
    for (int i = 0; i < r->n_extra; i++) free(r->extra[i]);
    free(r);
}

int tu_redis_port(const tu_redis *r) { return r ? r->port : -1; }
pid_t tu_redis_pid(const tu_redis *r) { return r ? r->pid : 0; }
int tu_redis_running(const tu_redis *r) { return r && r->pid > 0; }
const char *tu_redis_url(const tu_redis *r) { return r ? r->url : ""; }
const char *tu_redis_log(const tu_redis *r) { return r ? r->log : ""; }

redisContext *tu_redis_connect(const tu_redis *r) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c) return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

redisReply *tu_redis_cmd(const tu_redis *r, const char *fmt, ...) {
    redisContext *c = tu_redis_connect(r);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

/* ---- the helper -------------------------------------------------------- */

static void test_helper(void) {
    tu_redis *s = tu_redis_start(NULL);
    CU_ASSERT_FATAL(s != NULL);
    int port = tu_redis_port(s);
    pid_t pid = tu_redis_pid(s);
    CU_ASSERT(pid > 0);
    CU_ASSERT(tu_redis_running(s));
    redisReply *rep = tu_redis_cmd(s, "SET k v");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    CU_ASSERT_EQUAL(tu_redis_stop(s), 0);
    CU_ASSERT(!tu_redis_running(s));
    CU_ASSERT_PTR_NULL(tu_redis_connect(s));
    CU_ASSERT_EQUAL(tu_redis_restart(s), 0);
    CU_ASSERT_EQUAL(tu_redis_port(s), port);
    CU_ASSERT(tu_redis_pid(s) != pid && tu_redis_pid(s) > 0);
    rep = tu_redis_cmd(s, "EXISTS k"); /* no persistence: data is gone */
    CU_ASSERT(rep && rep->integer == 0);
    freeReplyObject(rep);
    tu_redis_free(s);
}

void test_register_tu_redis(void) {
    CU_pSuite s = CU_add_suite("tu_redis", NULL, NULL);
    CU_add_test(s, "start, stop, restart on the same port", test_helper);
}
