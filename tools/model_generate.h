/* model_generate.h - `inferno-model generate`: one prompt streamed to stdout,
 * or a JSONL batch of requests run concurrently through the engine. */
#ifndef INF_MODEL_GENERATE_H
#define INF_MODEL_GENERATE_H

#include <stddef.h>
#include <stdio.h>

#include "constraint.h"
#include "sampler.h"
#include "status.h"

/* Entry point: argv after "generate". Returns the process exit code. */
int gen_main(int argc, char **argv);

/* Reads a whole file byte-exact into a malloc'd NUL-terminated buffer (caller frees). */
int gen_read_file(const char *path, char **out, size_t *len);

/* Writes bytes as a JSON string literal. */
void gen_print_json_str(FILE *out, const char *s, size_t len);

/* Parses one sampling flag (argv[*i], value argv[*i+1]) into p, advancing *i
 * past a consumed value. Returns 1 if the flag was a sampling flag, 0 if not,
 * negative with err set on a bad value. */
int gen_parse_sampling_flag(int argc, char **argv, int *i, sampler_params *p, inf_error *err);

/* A request's output constraint with its own storage (CLI flags, batch
 * lines). spec points into text / choices. */
typedef struct gen_constraint {
    constraint_spec spec;
    char *text;
    char **choices;
    size_t n_choices;
} gen_constraint;

/* Parses one constraint flag (--json-schema FILE, --json-object, --grammar
 * FILE, --regex RE, --choice TEXT... (the texts up to the next option;
 * repeatable)) into c. Returns 1 if it was one, 0 if not, negative with err
 * set on a bad value (a second constraint kind, an unreadable file). */
int gen_parse_constraint_flag(int argc, char **argv, int *i, gen_constraint *c, inf_error *err);

void gen_constraint_free(gen_constraint *c);

#endif
