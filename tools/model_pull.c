/* model_pull.c - `inferno-model pull` (see model_pull.h). */
#include "model_pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pull.h"

static void pull_usage(FILE *out) {
    fputs("usage: inferno-model pull URL [--sha256 HEX] [--out DIR] [--retries N] [--quiet]\n"
          "  URL: http(s)://HOST/PATH.gguf, hf://ORG/REPO/FILE.gguf or hf://ORG/REPO@REV/FILE.gguf\n"
          "       (https://huggingface.co/ORG/REPO/resolve/REV/FILE.gguf; REV defaults to main)\n"
          "  --out DIR: destination folder (default $XDG_CACHE_HOME/inferno/models or ~/.cache/inferno/models)\n"
          "  --sha256 HEX: the expected digest; a mismatch is an error and nothing is kept\n"
          "  HF_TOKEN in the environment is sent to huggingface.co as a bearer token (gated models).\n"
          "  Prints the local file's path on stdout. An interrupted pull resumes where it stopped.\n",
          out);
}

static void log_line(void *arg, const char *msg) {
    if (*(int *)arg) fprintf(stderr, "inferno-model: %s\n", msg);
}

int model_pull_main(int argc, char **argv) {
    const char *url = NULL, *sha = NULL, *out = NULL;
    int retries = -1, verbose = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { pull_usage(stdout); return 0; }
        if (!strcmp(a, "--sha256") && v) { sha = v; i++; }
        else if (!strcmp(a, "--out") && v) { out = v; i++; }
        else if (!strcmp(a, "--retries") && v) { retries = atoi(v); i++; }
        else if (!strcmp(a, "--quiet")) verbose = 0;
        else if (!url && a[0] != '-') url = a;
        else {
            fprintf(stderr, "inferno-model: pull: unknown or incomplete option '%s'\n", a);
            pull_usage(stderr);
            return 2;
        }
    }
    if (!url) { pull_usage(stderr); return 2; }
    inf_error err = {0};
    char dir[PULL_PATH_MAX];
    if (out) snprintf(dir, sizeof dir, "%s", out);
    else if (pull_default_dir(getenv("XDG_CACHE_HOME"), getenv("HOME"), dir, sizeof dir, &err)) {
        fprintf(stderr, "inferno-model: %s\n", err.msg);
        return 2;
    }
    pull_opts o = pull_opts_default();
    o.url = url;
    o.sha256 = sha;
    o.dir = dir;
    o.user_agent = "inferno-model";
    o.hf_token = getenv("HF_TOKEN"); /* pull sends it to https://huggingface.co/ only */
    o.progress = verbose && isatty(STDERR_FILENO);
    if (retries >= 0) o.max_retries = retries;
    o.log = log_line;
    o.log_arg = &verbose;
    pull_result r;
    if (pull_model(&o, &r, &err)) {
        fprintf(stderr, "inferno-model: pull: %s\n", err.msg);
        return 1;
    }
    if (verbose)
        fprintf(stderr, "inferno-model: %s %s (%llu bytes%s%s)\n", r.reused ? "already have" : "downloaded", r.path,
                (unsigned long long)r.bytes, r.sha256[0] ? ", sha256 " : "", r.sha256);
    printf("%s\n", r.path);
    return 0;
}
