/* model_pull.h - `inferno-model pull URL [--sha256 HEX] [--out DIR]`: the
 * command-line layer over pull_model (tools/pull.h). It reads the
 * environment (XDG_CACHE_HOME, HOME, HF_TOKEN), which the library does not. */
#ifndef INF_MODEL_PULL_H
#define INF_MODEL_PULL_H

/* Entry point: argv after "pull". Prints the local path on stdout (one line)
 * and the digest and size on stderr; returns the process exit code (0, 1 for
 * a failed pull, 2 for a usage error). */
int model_pull_main(int argc, char **argv);

#endif
