/* model_generate.c - `inferno-model generate` (see model_generate.h). Both
 * modes drive the engine (engine.h), so the CLI exercises exactly the code the
 * worker runs: tokenizer, scheduler, paged KV cache, sampler, detokenizer. */
#include "model_generate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu_ops.h"
#include "engine.h"
#include "json.h"
#include "tokenizer.h"

#define GEN_DEFAULT_MAX_TOKENS 128

void gen_print_json_str(FILE *out, const char *s, size_t len) { json_write_str(out, s, len); }

int gen_read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) { free(buf); return -1; }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out,
                     inf_error *err) {
    char *e;
    if (!v) return inf_error_set(err, INF_EINVAL, "%s needs a value", flag);
    errno = 0;
    double d = strtod(v, &e);
    if (*e || e == v || errno || !isfinite(d) || d < lo || d > hi)
        return inf_error_set(err, INF_EINVAL, "%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
    *out = d;
    return 0;
}

int gen_parse_sampling_flag(int argc, char **argv, int *i, sampler_params *p, inf_error *err) {
    const char *f = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    double d = 0;
    int rc;
    /* Ranges here only keep the conversion sane; sampler_params_validate
     * gives the real, named range errors. */
#define NUM(name, field, cast)                                                  \
    if (strcmp(f, name) == 0) {                                                 \
        if ((rc = parse_num(f, v, -1e18, 1e18, &d, err))) return rc;            \
        p->field = (cast)d;                                                     \
        (*i)++;                                                                 \
        return 1;                                                               \
    }
    NUM("--temperature", temperature, float)
    NUM("--top-k", top_k, int)
    NUM("--top-p", top_p, float)
    NUM("--min-p", min_p, float)
    NUM("--repetition-penalty", repetition_penalty, float)
    NUM("--presence-penalty", presence_penalty, float)
    NUM("--frequency-penalty", frequency_penalty, float)
    NUM("--min-tokens", min_tokens, int)
    NUM("--max-tokens", max_tokens, int)
    NUM("--logprobs", logprobs, int)
#undef NUM
    if (strcmp(f, "--seed") == 0) {
        if ((rc = parse_num(f, v, 0, 1.8e19, &d, err))) return rc;
        p->has_seed = 1;
        p->seed = strtoull(v, NULL, 10);
        (*i)++;
        return 1;
    }
    if (strcmp(f, "--ignore-eos") == 0) {
        p->ignore_eos = 1;
        return 1;
    }
    if (strcmp(f, "--stop") == 0) {
        if (!v) return inf_error_set(err, INF_EINVAL, "--stop needs a value");
        (*i)++;
        return (rc = sampler_params_add_stop(p, v, err)) ? rc : 1;
    }
    if (strcmp(f, "--stop-token") == 0) {
        if ((rc = parse_num(f, v, 0, 2147483647.0, &d, err))) return rc;
        (*i)++;
        return (rc = sampler_params_add_stop_token(p, (int32_t)d, err)) ? rc : 1;
    }
    if (strcmp(f, "--logit-bias") == 0) {
        const char *colon = v ? strchr(v, ':') : NULL;
        char *e1, *e2;
        long tok = colon ? strtol(v, &e1, 10) : 0;
        double bias = colon ? strtod(colon + 1, &e2) : 0;
        if (!colon || e1 != colon || *e2 || tok < 0 || tok > 2147483647L)
            return inf_error_set(err, INF_EINVAL, "--logit-bias wants TOKEN:BIAS, got '%s'", v ? v : "");
        (*i)++;
        return (rc = sampler_params_add_logit_bias(p, (int32_t)tok, (float)bias, err)) ? rc : 1;
    }
    return 0;
}

/* ---- constraint flags ---- */

void gen_constraint_free(gen_constraint *c) {
    free(c->text);
    for (size_t i = 0; i < c->n_choices; i++) free(c->choices[i]);
    free(c->choices);
    memset(c, 0, sizeof *c);
}

static int set_kind(gen_constraint *c, constraint_kind k, const char *flag, inf_error *err) {
    if (c->spec.kind != CONSTRAINT_NONE && c->spec.kind != k)
        return inf_error_set(err, INF_EINVAL, "%s: only one of --json-schema, --json-object, --grammar, --regex, "
                                              "--choice may be given", flag);
    c->spec.kind = k;
    return 0;
}

int gen_parse_constraint_flag(int argc, char **argv, int *i, gen_constraint *c, inf_error *err) {
    const char *f = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int rc;
    if (!strcmp(f, "--json-object")) {
        if ((rc = set_kind(c, CONSTRAINT_JSON_OBJECT, f, err))) return rc;
        return 1;
    }
    if (!strcmp(f, "--json-schema") || !strcmp(f, "--grammar")) {
        if (!v) return inf_error_set(err, INF_EINVAL, "%s needs a FILE", f);
        if ((rc = set_kind(c, f[2] == 'j' ? CONSTRAINT_JSON_SCHEMA : CONSTRAINT_GRAMMAR, f, err))) return rc;
        size_t len;
        free(c->text);
        c->text = NULL;
        if (gen_read_file(v, &c->text, &len)) return inf_error_set(err, INF_EIO, "%s: cannot read %s", f, v);
        c->spec.text = c->text;
        c->spec.len = len;
        ++*i;
        return 1;
    }
    if (!strcmp(f, "--regex")) {
        if (!v) return inf_error_set(err, INF_EINVAL, "--regex needs a value");
        if ((rc = set_kind(c, CONSTRAINT_REGEX, f, err))) return rc;
        free(c->text);
        if (!(c->text = strdup(v))) return inf_error_set(err, INF_ENOMEM, "out of memory");
        c->spec.text = c->text;
        c->spec.len = strlen(v);
        ++*i;
        return 1;
    }
    if (!strcmp(f, "--choice")) {
        if ((rc = set_kind(c, CONSTRAINT_CHOICE, f, err))) return rc;
        int k = *i + 1;
        if (k >= argc || !strncmp(argv[k], "--", 2)) return inf_error_set(err, INF_EINVAL, "--choice needs TEXT...");
        for (; k < argc && strncmp(argv[k], "--", 2); k++) {
            char **q = realloc(c->choices, (c->n_choices + 1) * sizeof *q);
            if (!q) return inf_error_set(err, INF_ENOMEM, "out of memory");
            c->choices = q;
            if (!(c->choices[c->n_choices] = strdup(argv[k]))) return inf_error_set(err, INF_ENOMEM, "out of memory");
            c->n_choices++;
        }
        c->spec.choices = (const char *const *)c->choices;
        c->spec.n_choices = c->n_choices;
        *i = k - 1;
        return 1;
    }
    return 0;
}

typedef struct gen_opts {
    const char *model, *prompt, *prompt_file, *batch;
    int json, no_bos, parse_special;
    gen_constraint constraint;
    engine_config ecfg;
    sampler_params params;
} gen_opts;

static void gen_usage(FILE *out) {
    fputs("usage: inferno-model generate FILE [--file PROMPTFILE | PROMPT] [options]\n"
          "       inferno-model generate FILE --batch PROMPTS.jsonl [--json] [options]\n"
          "sampling (defaults as vLLM / OpenAI):\n"
          "  --max-tokens N (128)  --min-tokens N (0)  --temperature T (1; 0 = greedy)\n"
          "  --top-k K (-1 off)  --top-p P (1)  --min-p P (0)  --seed S\n"
          "  --repetition-penalty R (1)  --presence-penalty P (0)  --frequency-penalty F (0)\n"
          "  --stop STR (repeatable)  --stop-token ID (repeatable)  --logit-bias ID:BIAS (repeatable)\n"
          "  --ignore-eos  --logprobs N (0..20)\n"
          "prompt: --no-bos (do not add BOS)  --parse-special (recognise special-token texts)\n"
          "engine: --threads N (all cores)  --kv-cache-mb MB (256)  --kv-type f16|f32 (f16)\n"
          "  --max-num-seqs N (64)  --max-batched-tokens N (512)  --max-model-len N (model's)\n"
          "  --no-prefix-cache  --no-chunked-prefill  --cpu-isa auto|scalar|avx2|avxvnni|avx512 (auto)\n"
          "structured output (one of): --json-schema SCHEMA.json  --json-object  --grammar FILE.gbnf\n"
          "  --regex RE (matched in full)  --choice TEXT... (the texts up to the next option)\n"
          "output: --json (one JSON object; with --batch one per request plus a summary)\n"
          "batch file: one JSON object per line: id, prompt | prompt_ids, sampling fields\n"
          "  (max_tokens, temperature, top_k, top_p, min_p, seed, stop, stop_token_ids, ...),\n"
          "  priority (lower = more urgent), arrival_ms (offset from the start),\n"
          "  response_format (object or JSON text, OpenAI shape), grammar, regex, choice (array)\n",
          out);
}

static int parse_engine_flag(int argc, char **argv, int *i, engine_config *c, inf_error *err) {
    const char *f = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    double d;
    int rc;
    if (strcmp(f, "--no-prefix-cache") == 0) { c->enable_prefix_caching = 0; return 1; }
    if (strcmp(f, "--no-chunked-prefill") == 0) { c->enable_chunked_prefill = 0; return 1; }
    if (strcmp(f, "--cpu-isa") == 0) {
        if (!v || cpu_ops_isa_parse(v) == -2)
            return inf_error_set(err, INF_EINVAL, "--cpu-isa must be auto, scalar, avx2, avxvnni or avx512");
        c->cpu_isa = v;
        (*i)++;
        return 1;
    }
    if (strcmp(f, "--kv-type") == 0) {
        if (!v || (strcmp(v, "f16") && strcmp(v, "f32")))
            return inf_error_set(err, INF_EINVAL, "--kv-type must be f16 or f32");
        c->kv_type = strcmp(v, "f32") == 0 ? BACKEND_KV_F32 : BACKEND_KV_F16;
        (*i)++;
        return 1;
    }
    static const char *names[] = {"--threads", "--kv-cache-mb", "--max-num-seqs",
                                  "--max-batched-tokens", "--max-model-len"};
    for (int k = 0; k < 5; k++) {
        if (strcmp(f, names[k])) continue;
        if ((rc = parse_num(f, v, k == 0 ? -1 : 1, k == 1 ? 1 << 20 : 1 << 24, &d, err))) return rc;
        (*i)++;
        if (k == 0) c->n_threads = (int)d;
        if (k == 1) c->kv_cache_bytes = (size_t)d << 20;
        if (k == 2) c->max_num_seqs = (int)d;
        if (k == 3) c->max_num_batched_tokens = (int)d;
        if (k == 4) c->max_model_len = (int)d;
        return 1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, gen_opts *o, inf_error *err) {
    memset(o, 0, sizeof *o);
    o->ecfg = engine_config_default();
    o->params = sampler_params_default();
    o->params.max_tokens = GEN_DEFAULT_MAX_TOKENS;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int rc = gen_parse_sampling_flag(argc, argv, &i, &o->params, err);
        if (rc < 0) return rc;
        if (rc) continue;
        if ((rc = parse_engine_flag(argc, argv, &i, &o->ecfg, err)) < 0) return rc;
        if (rc) continue;
        if ((rc = gen_parse_constraint_flag(argc, argv, &i, &o->constraint, err)) < 0) return rc;
        if (rc) continue;
        if (strcmp(a, "--json") == 0) o->json = 1;
        else if (strcmp(a, "--no-bos") == 0) o->no_bos = 1;
        else if (strcmp(a, "--parse-special") == 0) o->parse_special = 1;
        else if (strcmp(a, "--file") == 0 && i + 1 < argc) o->prompt_file = argv[++i];
        else if (strcmp(a, "--batch") == 0 && i + 1 < argc) o->batch = argv[++i];
        else if (a[0] == '-' && a[1] != '\0') return inf_error_set(err, INF_EINVAL, "unknown option '%s'", a);
        else if (!o->model) o->model = a;
        else if (!o->prompt) o->prompt = a;
        else return inf_error_set(err, INF_EINVAL, "unexpected argument '%s'", a);
    }
    if (!o->model) return inf_error_set(err, INF_EINVAL, "missing model FILE");
    if (!o->batch && !o->prompt && !o->prompt_file)
        return inf_error_set(err, INF_EINVAL, "missing PROMPT (or --file PROMPTFILE, or --batch)");
    return 0;
}

static void print_ids(FILE *out, const int32_t *ids, size_t n) {
    fputc('[', out);
    for (size_t i = 0; i < n; i++) fprintf(out, i ? ",%d" : "%d", ids[i]);
    fputc(']', out);
}

/* ---- single prompt --------------------------------------------------------- */

typedef struct gen_acc {
    int32_t *ids;
    size_t n, cap;
    char *text;
    size_t text_len, text_cap;
} gen_acc;

static int acc_add(gen_acc *a, const engine_event *ev) {
    if (a->n + (size_t)ev->n_tokens > a->cap) {
        size_t cap = (a->cap ? a->cap * 2 : 64) + (size_t)ev->n_tokens;
        int32_t *n = realloc(a->ids, cap * sizeof *n);
        if (!n) return INF_ENOMEM;
        a->ids = n;
        a->cap = cap;
    }
    memcpy(a->ids + a->n, ev->tokens, (size_t)ev->n_tokens * sizeof(int32_t));
    a->n += (size_t)ev->n_tokens;
    if (a->text_len + ev->text_len + 1 > a->text_cap) {
        size_t cap = (a->text_cap ? a->text_cap * 2 : 256) + ev->text_len;
        char *n = realloc(a->text, cap);
        if (!n) return INF_ENOMEM;
        a->text = n;
        a->text_cap = cap;
    }
    if (ev->text_len) memcpy(a->text + a->text_len, ev->text, ev->text_len);
    a->text_len += ev->text_len;
    a->text[a->text_len] = '\0';
    return 0;
}

static void acc_free(gen_acc *a) {
    free(a->ids);
    free(a->text);
}

static int run_single(engine *e, gen_opts *o, const int32_t *prompt, size_t n_prompt, inf_error *err) {
    engine_request r = engine_request_default();
    r.id = "cli";
    r.prompt_tokens = prompt;
    r.n_prompt_tokens = (int)n_prompt;
    r.params = &o->params;
    r.constraint = o->constraint.spec.kind != CONSTRAINT_NONE ? &o->constraint.spec : NULL;
    int rc = engine_add(e, &r, err);
    if (rc) return rc;
    gen_acc acc = {0};
    double t0 = now_s(), t_first = 0, t_end = 0;
    const char *finish = "none";
    int done = 0;
    while (!done) {
        const engine_event *ev;
        int n_ev;
        if ((rc = engine_step(e, &ev, &n_ev, err))) break;
        for (int k = 0; k < n_ev; k++) {
            if (ev[k].type == ENGINE_EVENT_TOKEN) {
                if (ev[k].first) t_first = now_s();
                if ((rc = acc_add(&acc, &ev[k]))) break;
                if (!o->json && ev[k].text_len) {
                    fwrite(ev[k].text, 1, ev[k].text_len, stdout);
                    fflush(stdout);
                }
            } else if (ev[k].type == ENGINE_EVENT_FINISHED) {
                finish = engine_finish_name(ev[k].reason);
                done = 1;
            } else {
                rc = inf_error_set(err, ev[k].code, "%s", ev[k].message);
                done = 1;
            }
        }
        if (rc) break;
    }
    t_end = now_s();
    if (!rc) {
        double prefill_s = t_first > 0 ? t_first - t0 : t_end - t0;
        double decode_s = t_end - (t_first > 0 ? t_first : t_end);
        double ptps = prefill_s > 0 ? (double)n_prompt / prefill_s : 0;
        double dtps = acc.n > 1 && decode_s > 0 ? (double)(acc.n - 1) / decode_s : 0;
        if (o->json) {
            printf("{\"prompt_ids\":");
            print_ids(stdout, prompt, n_prompt);
            printf(",\"ids\":");
            print_ids(stdout, acc.ids, acc.n);
            printf(",\"text\":");
            json_write_str(stdout, acc.text ? acc.text : "", acc.text_len);
            printf(",\"finish_reason\":\"%s\",\"prompt_tokens_per_s\":%.2f,\"decode_tokens_per_s\":%.2f}\n",
                   finish, ptps, dtps);
        } else {
            printf("\n");
            fprintf(stderr, "\n[%s] prompt %zu tokens, generated %zu tokens, finish %s; "
                            "prefill %.1f tok/s, decode %.2f tok/s\n",
                    engine_device(e), n_prompt, acc.n, finish, ptps, dtps);
        }
    }
    acc_free(&acc);
    return rc;
}

int gen_batch(engine *e, int json, const char *path, const sampler_params *defaults,
              const constraint_spec *dflt_constraint, int add_bos, inf_error *err);

int gen_main(int argc, char **argv) {
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        gen_usage(stdout);
        return 0;
    }
    gen_opts o;
    inf_error err = {0};
    int rc = parse_args(argc, argv, &o, &err);
    if (rc) {
        fprintf(stderr, "inferno-model generate: %s\n", err.msg);
        gen_usage(stderr);
        sampler_params_free(&o.params);
        gen_constraint_free(&o.constraint);
        return 2;
    }
    char *text = NULL;
    size_t text_len = o.prompt ? strlen(o.prompt) : 0;
    if (o.prompt_file && gen_read_file(o.prompt_file, &text, &text_len)) {
        fprintf(stderr, "inferno-model generate: cannot read %s\n", o.prompt_file);
        sampler_params_free(&o.params);
        gen_constraint_free(&o.constraint);
        return 1;
    }
    engine *e = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = engine_open(&e, &o.ecfg, o.model, &err);
    if (!rc && o.batch) {
        rc = gen_batch(e, o.json, o.batch, &o.params,
                       o.constraint.spec.kind != CONSTRAINT_NONE ? &o.constraint.spec : NULL, !o.no_bos, &err);
    } else if (!rc) {
        rc = tok_encode(engine_tokenizer(e), text ? text : o.prompt, text_len, !o.no_bos,
                        o.parse_special, &ids, &n_ids, &err);
        if (!rc) rc = run_single(e, &o, ids, n_ids, &err);
    }
    if (rc) fprintf(stderr, "inferno-model generate: %s\n", err.msg);
    free(ids);
    free(text);
    engine_close(e);
    sampler_params_free(&o.params);
    gen_constraint_free(&o.constraint);
    return rc ? 1 : 0;
}
