/* bench_constraint.c - the cost of structured output (make bench): decode
 * step time of a batch of 8 with 0, 1 and 8 constrained rows, for a JSON
 * Schema object and for ../shared/grammars/json.gbnf, on stories260K and on
 * the random 1B model (small with --quick). Masks are computed beside the
 * forward (engine_grammar.c), so the overhead column is what is left over. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "engine.h"
#include "model_generate.h"
#include "model_random.h"
#include "quant.h"

#define BC_ROWS 8

static const char *BC_SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":40},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150},\"tags\":{\"type\":\"array\","
    "\"items\":{\"type\":\"string\",\"maxLength\":12},\"maxItems\":8},\"ok\":{\"type\":\"boolean\"}},"
    "\"required\":[\"name\",\"age\",\"tags\",\"ok\"]}";

/* Median time of the steps during which all BC_ROWS rows decode (none is
 * prefilling, none finished), over n_steps decode steps at most. */
static double step_ms(engine *e, const constraint_spec *c, int n_constrained, int n_steps, double *mask_ms) {
    static char ids[BC_ROWS][16];
    sampler_params p = sampler_params_default();
    p.temperature = 1.0f;
    p.has_seed = 1;
    p.max_tokens = n_steps + 4;
    p.ignore_eos = 1;
    for (int i = 0; i < BC_ROWS; i++) {
        snprintf(ids[i], sizeof ids[i], "b%d", i);
        p.seed = (uint64_t)i + 1;
        engine_request r = engine_request_default();
        r.id = ids[i];
        r.prompt = "Once upon a time, there was";
        r.params = &p;
        r.constraint = i < n_constrained ? c : NULL;
        inf_error err = {0};
        if (engine_add(e, &r, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
    }
    double *t = malloc(sizeof(double) * (size_t)(n_steps + 64));
    int n_t = 0, started = 0, finished = 0;
    engine_stats st0;
    engine_stats_get(e, &st0);
    while (engine_has_work(e) && t) {
        const engine_event *ev;
        int nev;
        inf_error err = {0};
        double t0 = bench_now();
        if (engine_step(e, &ev, &nev, &err)) break;
        double dt = bench_now() - t0;
        int fin = 0;
        for (int k = 0; k < nev; k++) {
            if (ev[k].type != ENGINE_EVENT_TOKEN) fin++;
        }
        if (started >= BC_ROWS && !finished && !fin && nev == BC_ROWS && n_t < n_steps + 64) t[n_t++] = dt * 1e3;
        for (int k = 0; k < nev; k++) started += ev[k].type == ENGINE_EVENT_TOKEN && ev[k].first;
        finished += fin;
    }
    engine_stats st;
    engine_stats_get(e, &st);
    *mask_ms = st.constrained_rows > st0.constrained_rows ? (st.mask_ms - st0.mask_ms) / (double)(n_t ? n_t : 1) : 0;
    double m = n_t ? bench_median(t, n_t) : -1;
    free(t);
    return m;
}

static void bench_model(const char *name, const char *path, int n_steps) {
    engine_config cfg = engine_config_default();
    cfg.max_num_seqs = BC_ROWS;
    cfg.kv_cache_bytes = (size_t)256 << 20;
    engine *e = NULL;
    inf_error err = {0};
    if (engine_open(&e, &cfg, path, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return;
    }
    char *gbnf = NULL;
    size_t glen = 0;
    int have_gbnf = gen_read_file("../shared/grammars/json.gbnf", &gbnf, &glen) == 0;
    constraint_spec cs[2] = {{CONSTRAINT_JSON_SCHEMA, BC_SCHEMA, 0, NULL, 0}, {CONSTRAINT_GRAMMAR, gbnf, glen, NULL, 0}};
    const char *cn[2] = {"JSON-schema object", "json.gbnf"};
    double m0 = 0;
    double base = step_ms(e, NULL, 0, n_steps, &m0);
    printf("| %s | none | 0 of %d | %.2f | - | - |\n", name, BC_ROWS, base);
    for (int k = 0; k < 2; k++) {
        if (k == 1 && !have_gbnf) {
            printf("| %s | json.gbnf | (../shared absent) | | | |\n", name);
            continue;
        }
        static const int nc[2] = {1, BC_ROWS};
        for (int j = 0; j < 2; j++) {
            double mm = 0, ms = step_ms(e, &cs[k], nc[j], n_steps, &mm);
            printf("| %s | %s | %d of %d | %.2f | %+.1f%% | %.2f |\n", name, cn[k], nc[j], BC_ROWS, ms,
                   base > 0 ? 100.0 * (ms - base) / base : 0.0, mm);
            fflush(stdout);
        }
    }
    free(gbnf);
    engine_close(e);
}

void bench_constraint(const char *models_dir, int quick) {
    printf("\n## Structured output: decode step time, batch of %d, temperature 1 (median over steps)\n\n", BC_ROWS);
    printf("| model | constraint | constrained rows | step ms | added step time | mask ms per step (beside the forward) |\n");
    printf("|---|---|---:|---:|---:|---:|\n");
    const char *stories = "../shared/models/stories260K.gguf";
    if (access(stories, R_OK) == 0) bench_model("stories260K", stories, quick ? 24 : 64);
    else printf("| stories260K | (../shared absent) | | | | |\n");
    const char *preset = quick ? "small" : "1b";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s-Q8_0.gguf", models_dir, preset);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        mkdir(models_dir, 0755);
        model_random_opts mo;
        model_random_preset(&mo, preset, NULL);
        mo.type = GGML_TYPE_Q8_0;
        inf_error err = {0};
        fprintf(stderr, "bench: writing %s ...\n", path);
        if (model_random_write(path, &mo, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return;
        }
    }
    bench_model(quick ? "random small Q8_0" : "random 1B Q8_0", path, quick ? 12 : 16);
}
