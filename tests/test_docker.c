/* test_docker.c - suite "docker": what can be checked of docker/ without a
 * Docker engine (none runs here), and the generated configuration reference.
 *
 *   - docker/docker-compose.yml through a real Compose parser
 *     (`docker-compose config -q`, Debian's docker-compose 1.29, per profile)
 *     and yamllint -s; a structural check of what the cluster must contain;
 *   - docker/Dockerfile and docker/Dockerfile.cpu through a small linter of
 *     our own (hadolint is not packaged): multi-stage, every base image
 *     pinned to a tag (ARG defaults resolved), CUDA devel -> runtime of the
 *     same version, PORTABLE=1, non-root USER and a HEALTHCHECK on /readyz in
 *     the final stage, apt without recommends;
 *   - docs/config.md holds exactly what `bin/inferno-worker --help-markdown`
 *     prints (below its marker line), so the reference cannot go stale.
 *
 * A missing tool prints SKIP with the package to install.
 */
#include <CUnit/CUnit.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define COMPOSE "docker/docker-compose.yml"

static int have(const char *path) { return access(path, X_OK) == 0; }

/* ---- Dockerfile linter ------------------------------------------------------ */

typedef struct df_lint {
    int n_from;
    char first_image[256], last_image[256];
    int final_user_nonroot, final_healthcheck_readyz, portable, apt_no_recommends_missing;
    char err[512];
} df_lint;

/* Replaces ${NAME} / $NAME with the ARG defaults seen before the first FROM. */
static void df_subst(const char *in, char *out, size_t cap, char args[][2][128], int n_args) {
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < cap;) {
        if (*p == '$') {
            int brace = p[1] == '{';
            const char *s = p + 1 + brace, *e = s;
            while (isalnum((unsigned char)*e) || *e == '_') e++;
            const char *val = NULL;
            for (int i = 0; i < n_args; i++)
                if (strlen(args[i][0]) == (size_t)(e - s) && !strncmp(args[i][0], s, (size_t)(e - s))) val = args[i][1];
            if (val) {
                o += (size_t)snprintf(out + o, cap - o, "%s", val);
                p = e + (brace && *e == '}');
                continue;
            }
        }
        out[o++] = *p++;
    }
    out[o < cap ? o : cap - 1] = '\0';
}

/* Lints Dockerfile text; 0 when clean, else -1 with l->err naming the rule. */
static int df_lint_text(const char *text, df_lint *l) {
    memset(l, 0, sizeof *l);
    char args[16][2][128];
    int n_args = 0;
    char stages[8][64];
    int n_stages = 0;
    /* join continuation lines */
    size_t tl = strlen(text);
    char *joined = malloc(tl + 1);
    size_t j = 0;
    for (size_t i = 0; i < tl; i++) {
        if (text[i] == '\\' && text[i + 1] == '\n') { i++; continue; }
        joined[j++] = text[i];
    }
    joined[j] = '\0';
    int rc = 0;
    for (char *save = NULL, *line = strtok_r(joined, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
        while (isspace((unsigned char)*line)) line++;
        if (!*line || *line == '#') continue;
        char kw[16] = "";
        int off = 0;
        sscanf(line, "%15s %n", kw, &off);
        for (char *k = kw; *k; k++) *k = (char)toupper((unsigned char)*k);
        const char *rest = line + off;
        if (!strcmp(kw, "ARG") && l->n_from == 0 && n_args < 16) {
            const char *eq = strchr(rest, '=');
            if (eq) {
                snprintf(args[n_args][0], 128, "%.*s", (int)(eq - rest), rest);
                snprintf(args[n_args][1], 128, "%.127s", eq + 1);
                n_args++;
            }
        } else if (!strcmp(kw, "FROM")) {
            char img[256], alias[64] = "", as[8] = "";
            char sub[512];
            df_subst(rest, sub, sizeof sub, args, n_args);
            const char *r = sub;
            if (!strncmp(r, "--platform=", 11)) r = strchr(r, ' ') ? strchr(r, ' ') + 1 : r;
            if (sscanf(r, "%255s %7s %63s", img, as, alias) < 1) { snprintf(l->err, sizeof l->err, "empty FROM"); rc = -1; break; }
            int is_stage = 0;
            for (int s = 0; s < n_stages; s++)
                if (!strcmp(stages[s], img)) is_stage = 1;
            const char *colon = strrchr(img, ':'), *slash = strrchr(img, '/');
            int pinned = strchr(img, '@') || (colon && (!slash || colon > slash) && strcmp(colon + 1, "latest") && colon[1]);
            if (!is_stage && (!pinned || strchr(img, '$'))) {
                snprintf(l->err, sizeof l->err, "FROM %s: base image not pinned to a tag (or uses latest / an unset ARG)", img);
                rc = -1;
                break;
            }
            if (alias[0] && n_stages < 8) snprintf(stages[n_stages++], 64, "%s", alias);
            if (!l->n_from) snprintf(l->first_image, sizeof l->first_image, "%s", img);
            snprintf(l->last_image, sizeof l->last_image, "%s", img);
            l->n_from++;
            l->final_user_nonroot = 0;
            l->final_healthcheck_readyz = 0;
        } else if (!strcmp(kw, "USER")) {
            char u[64] = "";
            sscanf(rest, "%63s", u);
            l->final_user_nonroot = strcmp(u, "root") && strcmp(u, "0") && strncmp(u, "0:", 2) && strncmp(u, "root:", 5);
        } else if (!strcmp(kw, "HEALTHCHECK")) {
            l->final_healthcheck_readyz = strstr(rest, "/readyz") != NULL && strstr(rest, "CMD") != NULL;
        } else if (!strcmp(kw, "RUN")) {
            if (strstr(rest, "make ") && strstr(rest, "PORTABLE=1")) l->portable = 1;
            if (strstr(rest, "apt-get install") && !strstr(rest, "--no-install-recommends")) l->apt_no_recommends_missing = 1;
        } else if (!strcmp(kw, "ADD") && strstr(rest, "http")) {
            snprintf(l->err, sizeof l->err, "ADD of a URL (use curl in RUN, checked)");
            rc = -1;
        }
    }
    free(joined);
    if (rc) return rc;
    if (l->n_from < 2) snprintf(l->err, sizeof l->err, "not multi-stage (%d FROM)", l->n_from);
    else if (!l->final_user_nonroot) snprintf(l->err, sizeof l->err, "final stage runs as root (no USER, or USER root/0)");
    else if (!l->final_healthcheck_readyz) snprintf(l->err, sizeof l->err, "final stage has no HEALTHCHECK CMD on /readyz");
    else if (!l->portable) snprintf(l->err, sizeof l->err, "no `make ... PORTABLE=1` build");
    else if (l->apt_no_recommends_missing) snprintf(l->err, sizeof l->err, "apt-get install without --no-install-recommends");
    return l->err[0] ? -1 : 0;
}

static void test_linter_rejects(void) {
    df_lint l;
    const char *good = "ARG V=1.2\nFROM img:${V} AS b\nRUN make PORTABLE=1\nFROM img:${V}\nUSER 1000\n"
                       "HEALTHCHECK CMD curl -f http://x/readyz\n";
    CU_ASSERT_EQUAL(df_lint_text(good, &l), 0);
    if (l.err[0]) fprintf(stderr, "\n    %s\n", l.err);
    const char *bad[] = {
        "FROM img AS b\nRUN make PORTABLE=1\nFROM img:1\nUSER 1000\nHEALTHCHECK CMD curl /readyz\n", /* untagged */
        "FROM img:latest AS b\nRUN make PORTABLE=1\nFROM img:1\nUSER 1000\nHEALTHCHECK CMD curl /readyz\n",
        "FROM img:${UNSET} AS b\nRUN make PORTABLE=1\nFROM img:1\nUSER 1000\nHEALTHCHECK CMD curl /readyz\n",
        "FROM img:1 AS b\nRUN make PORTABLE=1\nFROM img:1\nUSER root\nHEALTHCHECK CMD curl /readyz\n",
        "FROM img:1 AS b\nRUN make PORTABLE=1\nUSER 1000\nHEALTHCHECK CMD curl /readyz\nFROM img:1\n", /* final stage */
        "FROM img:1 AS b\nRUN make PORTABLE=1\nFROM img:1\nUSER 1000\nHEALTHCHECK CMD curl /healthz\n",
        "FROM img:1\nRUN make PORTABLE=1\nUSER 1000\nHEALTHCHECK CMD curl /readyz\n", /* single stage */
        "FROM img:1 AS b\nRUN make\nFROM img:1\nUSER 1000\nHEALTHCHECK CMD curl /readyz\n",
        "FROM img:1 AS b\nRUN apt-get install -y x && make PORTABLE=1\nFROM img:1\nUSER 1000\nHEALTHCHECK CMD curl /readyz\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = df_lint_text(bad[i], &l);
        CU_ASSERT_NOT_EQUAL(rc, 0);
        if (rc == 0) fprintf(stderr, "\n    linter accepted bad case %zu\n", i);
    }
}

static void lint_file(const char *path, df_lint *l) {
    char *text = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    int rc = df_lint_text(text, l);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n    %s: %s\n", path, l->err);
    free(text);
}

static void test_dockerfiles(void) {
    df_lint l;
    lint_file("docker/Dockerfile", &l);
    /* NVIDIA devel image -> the runtime image of the same CUDA version and OS */
    CU_ASSERT_PTR_NOT_NULL(strstr(l.first_image, "nvidia/cuda:") && strstr(l.first_image, "-devel-"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.last_image, "nvidia/cuda:") && strstr(l.last_image, "-runtime-"));
    char a[256], b[256];
    snprintf(a, sizeof a, "%s", l.first_image);
    snprintf(b, sizeof b, "%s", l.last_image);
    char *da = strstr(a, "-devel-"), *rb = strstr(b, "-runtime-");
    if (da && rb) {
        *da = '\0';
        *rb = '\0';
        CU_ASSERT_STRING_EQUAL(a, b); /* version */
        CU_ASSERT_STRING_EQUAL(da + 7, rb + 9); /* OS */
    }
    char *t = tu_read_file("docker/Dockerfile", NULL);
    CU_ASSERT_PTR_NOT_NULL(t && strstr(t, "CUDA=1"));
    free(t);
    lint_file("docker/Dockerfile.cpu", &l);
    CU_ASSERT_STRING_EQUAL(l.first_image, "debian:bookworm-slim");
    CU_ASSERT_STRING_EQUAL(l.last_image, "debian:bookworm-slim");
    t = tu_read_file("docker/Dockerfile.cpu", NULL);
    CU_ASSERT_PTR_NOT_NULL(t && strstr(t, "CUDA=0"));
    free(t);
    /* the build context leaves out build outputs and the git history */
    char *ign = tu_read_file(".dockerignore", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ign);
    CU_ASSERT_PTR_NOT_NULL(strstr(ign, "\nbuild\n") && strstr(ign, "\nbin\n") && strstr(ign, ".git\n"));
    free(ign);
}

/* ---- Compose ------------------------------------------------------------------ */

static int run_cmd(char *const argv[], char **out) {
    *out = NULL;
    return tu_run_capture(argv, out);
}

static void test_compose_structure(void) {
    char *y = tu_read_file(COMPOSE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    static const char *must[] = {
        "image: apache/kafka:",               /* official image */
        "KAFKA_PROCESS_ROLES: broker,controller", /* KRaft, no ZooKeeper */
        "inferno.requests.high", "inferno.requests.normal", "inferno.requests.low", "inferno.requests.dlq",
        "kafka-topics.sh", "condition: service_completed_successfully",
        "image: redis:", ":/models:ro",
        "worker-cpu-1:", "worker-cpu-2:", "worker-gpu-1:", "worker-gpu-2:", "profiles: [\"cpu\"]",
        "profiles: [\"gpu\"]", "driver: nvidia", "capabilities: [gpu]", "dockerfile: docker/Dockerfile.cpu",
        "dockerfile: docker/Dockerfile\n", "loadgen:", "/usr/local/bin/inferno-loadgen",
        "INFERNO_METRICS_ADDR: 0.0.0.0:9400",
    };
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        if (!strstr(y, must[i])) {
            CU_FAIL("docker-compose.yml lacks a required part");
            fprintf(stderr, "\n    %s: no '%s'\n", COMPOSE, must[i]);
        }
    CU_ASSERT_PTR_NULL(strstr(y, "zookeeper"));
    CU_ASSERT_PTR_NULL(strstr(y, ":latest"));
    free(y);
}

static void test_compose_parses(void) {
    if (!have("/usr/bin/docker-compose")) {
        tu_skip("docker-compose not installed (Debian package docker-compose; tools/bootstrap.sh installs it)");
        return;
    }
    char *out = NULL;
    char *q[] = {"/usr/bin/docker-compose", "-f", COMPOSE, "config", "-q", NULL};
    int rc = run_cmd(q, &out);
    CU_ASSERT_EQUAL(rc, 0);
    free(out);
    /* each profile resolves to the services it must start */
    static const char *profiles[] = {"cpu", "gpu"};
    static const char *want[2][6] = {{"kafka", "kafka-init", "redis", "worker-cpu-1", "worker-cpu-2", "loadgen"},
                                     {"kafka", "kafka-init", "redis", "worker-gpu-1", "worker-gpu-2", "loadgen"}};
    for (int p = 0; p < 2; p++) {
        char *sv[] = {"/usr/bin/docker-compose", "-f", COMPOSE, "--profile", (char *)profiles[p], "config",
                      "--services", NULL};
        rc = run_cmd(sv, &out);
        CU_ASSERT_EQUAL(rc, 0);
        for (int i = 0; i < 6 && out; i++) {
            char needle[64];
            snprintf(needle, sizeof needle, "%s\n", want[p][i]);
            int found = !strncmp(out, needle, strlen(needle));
            for (const char *s = out; !found && (s = strstr(s, needle)); s++) found = s[-1] == '\n';
            if (!found) {
                CU_FAIL("a service is missing from a profile");
                fprintf(stderr, "\n    profile %s: no service %s in:\n%s\n", profiles[p], want[p][i], out);
            }
        }
        free(out);
    }
    /* the parser is real: a misspelt key fails */
    char *y = tu_read_file(COMPOSE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    const char *bad = tu_tmpfile("bad-compose.yml");
    FILE *f = fopen(bad, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char *at = strstr(y, "    healthcheck:");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    fwrite(y, 1, (size_t)(at - y), f);
    fputs("    healthchek:", f);
    fputs(at + strlen("    healthcheck:"), f);
    fclose(f);
    free(y);
    char *qb[] = {"/usr/bin/docker-compose", "-f", (char *)bad, "config", "-q", NULL};
    rc = run_cmd(qb, &out);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    free(out);
}

static void test_compose_yamllint(void) {
    if (!have("/usr/bin/yamllint")) {
        tu_skip("yamllint not installed (Debian package yamllint; tools/bootstrap.sh installs it)");
        return;
    }
    char *out = NULL;
    char *argv[] = {"/usr/bin/yamllint", "-s", "-c", "docker/yamllint.yml", COMPOSE, NULL};
    int rc = run_cmd(argv, &out);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n%s\n", out ? out : "");
    free(out);
}

/* ---- docs/config.md ---------------------------------------------------------------- */

#define CONFIG_MARKER "<!-- generated by bin/inferno-worker --help-markdown: do not edit below -->\n"

static void test_config_reference(void) {
    const char *bin = tu_bin("inferno-worker");
    if (!have(bin)) {
        tu_skip("%s not built", bin);
        return;
    }
    char *out = NULL;
    char *argv[] = {(char *)bin, "--help-markdown", NULL};
    CU_ASSERT_EQUAL_FATAL(tu_run_capture(argv, &out), 0);
    char *doc = tu_read_file("docs/config.md", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    char *gen = strstr(doc, CONFIG_MARKER);
    CU_ASSERT_PTR_NOT_NULL(gen);
    if (gen && out) {
        gen += strlen(CONFIG_MARKER);
        if (strcmp(gen, out) != 0) {
            CU_FAIL("docs/config.md is stale");
            fprintf(stderr, "\n    docs/config.md differs from `bin/inferno-worker --help-markdown`; regenerate:\n"
                            "    { sed '/^<!-- generated by/q' docs/config.md; bin/inferno-worker --help-markdown; }"
                            " > /tmp/config.md && mv /tmp/config.md docs/config.md\n");
        }
        /* every flag of --help is in the reference */
        char *help = NULL;
        char *hv[] = {(char *)bin, "--help", NULL};
        CU_ASSERT_EQUAL(tu_run_capture(hv, &help), 0);
        int flags = 0;
        for (char *p = help; p && (p = strstr(p, "--")); p += 2) {
            char name[64];
            if (sscanf(p + 2, "%63[a-z0-9-]", name) != 1 || !strcmp(name, "help") || !strcmp(name, "help-markdown") ||
                !strcmp(name, "version"))
                continue;
            char needle[80];
            snprintf(needle, sizeof needle, "`--%s ", name);
            if (!strstr(gen, needle)) {
                CU_FAIL("a flag is missing from docs/config.md");
                fprintf(stderr, "\n    --%s\n", name);
            }
            flags++;
        }
        CU_ASSERT(flags > 30);
        free(help);
    }
    free(doc);
    free(out);
}

void test_register_docker(void) {
    CU_pSuite s = CU_add_suite("docker", NULL, NULL);
    CU_add_test(s, "dockerfile_linter_rejects", test_linter_rejects);
    CU_add_test(s, "dockerfiles_lint", test_dockerfiles);
    CU_add_test(s, "compose_structure", test_compose_structure);
    CU_add_test(s, "compose_parses", test_compose_parses);
    CU_add_test(s, "compose_yamllint", test_compose_yamllint);
    CU_add_test(s, "config_reference_fresh", test_config_reference);
}
