/* test_cuda_build.c - the CUDA backend's behaviour on a machine without a
 * usable GPU (the case `make test` runs in): availability reports a reason,
 * backend "cuda" fails with a clear error, "auto" falls back to the CPU and
 * still generates. On a machine with a GPU the no-GPU checks are skipped
 * (make test-gpu covers that machine). */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "engine.h"
#include "model_random.h"
#include "testutil.h"

static const char *small_model(void) {
    static char path[512];
    if (path[0]) return path;
    model_random_opts o;
    inf_error err = {0};
    if (model_random_preset(&o, "tiny", &err)) return NULL;
    o.type = GGML_TYPE_F16;
    snprintf(path, sizeof path, "%s", tu_tmpfile("cuda_build_tiny.gguf"));
    if (model_random_write(path, &o, &err)) {
        fprintf(stderr, "model_random_write: %s\n", err.msg);
        path[0] = '\0';
        return NULL;
    }
    return path;
}

static void test_available_reason(void) {
    char why[256] = "";
    int ok = backend_cuda_available(why, sizeof why);
    CU_ASSERT(why[0] != '\0'); /* a device name or a reason, never empty */
    if (ok) {
        tu_skip("a CUDA device is present (%s): no-GPU checks skipped", why);
        return;
    }
    CU_ASSERT(strstr(why, "CUDA") != NULL || strstr(why, "cuda") != NULL);
    CU_ASSERT_EQUAL(backend_cuda_available(NULL, 0), 0);
}

static void test_cuda_backend_refused(void) {
    if (backend_cuda_available(NULL, 0)) {
        tu_skip("a CUDA device is present");
        return;
    }
    const char *path = small_model();
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    gguf_file *f = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(gguf_open(&f, path, &err), 0);
    backend_config cfg = backend_config_default();
    backend *b = (backend *)1;
    int rc = backend_cuda_create(&b, f, &cfg, &err);
    CU_ASSERT_EQUAL(rc, INF_EUNSUPPORTED);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT(strstr(err.msg, "CUDA") != NULL);
    gguf_close(f);

    engine_config ec = engine_config_default();
    ec.backend = "cuda";
    engine *e = (engine *)1;
    inf_error err2 = {0};
    rc = engine_open(&e, &ec, path, &err2);
    CU_ASSERT_EQUAL(rc, INF_EUNSUPPORTED);
    CU_ASSERT_PTR_NULL(e);
    CU_ASSERT(strstr(err2.msg, "CUDA") != NULL);
    CU_ASSERT(strstr(err2.msg, path) != NULL); /* names the model it was opening */

    ec.backend = "tpu";
    CU_ASSERT_EQUAL(engine_open(&e, &ec, path, &err2), INF_EUNSUPPORTED);
    CU_ASSERT(strstr(err2.msg, "tpu") != NULL);
}

static void test_auto_falls_back(void) {
    if (backend_cuda_available(NULL, 0)) {
        tu_skip("a CUDA device is present: auto picks it");
        return;
    }
    const char *path = small_model();
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    engine_config ec = engine_config_default();
    ec.backend = "auto";
    ec.n_threads = 2;
    ec.seed = 7;
    engine *e = NULL;
    inf_error err = {0};
    CU_ASSERT_EQUAL_FATAL(engine_open(&e, &ec, path, &err), 0);
    CU_ASSERT(strncmp(engine_device(e), "cpu", 3) == 0);
    engine_request r = engine_request_default();
    int32_t prompt[4] = {1, 5, 9, 11};
    sampler_params sp = sampler_params_default();
    sp.temperature = 0;
    sp.max_tokens = 5;
    r.id = "fallback";
    r.prompt_tokens = prompt;
    r.n_prompt_tokens = 4;
    r.params = &sp;
    CU_ASSERT_EQUAL_FATAL(engine_add(e, &r, &err), 0);
    int generated = 0, finished = 0;
    for (int step = 0; step < 100 && !finished; step++) {
        const engine_event *ev;
        int n = 0;
        CU_ASSERT_EQUAL_FATAL(engine_step(e, &ev, &n, &err), 0);
        for (int i = 0; i < n; i++) {
            if (ev[i].type == ENGINE_EVENT_TOKEN) generated += ev[i].n_tokens;
            if (ev[i].type == ENGINE_EVENT_FINISHED) finished = 1;
            CU_ASSERT(ev[i].type != ENGINE_EVENT_ERROR);
        }
    }
    CU_ASSERT(finished);
    CU_ASSERT_EQUAL(generated, 5);
    engine_close(e);
}

void test_register_cuda_build(void) {
    CU_pSuite s = CU_add_suite("cuda_build", NULL, NULL);
    CU_add_test(s, "backend_cuda_available gives a reason", test_available_reason);
    CU_add_test(s, "backend cuda refused with a clear error", test_cuda_backend_refused);
    CU_add_test(s, "backend auto falls back to cpu and generates", test_auto_falls_back);
}
