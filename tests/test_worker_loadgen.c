/* test_worker_loadgen.c - suite "loadgen_util": the measurable pieces of
 * bin/inferno-loadgen (percentiles, priority mix, Poisson gaps, prompts,
 * counting ids of a token entry). The program itself runs against a worker
 * in suite worker_e2e ("loadgen --json"). */
#include <CUnit/CUnit.h>
#include <math.h>
#include <string.h>

#include "loadgen/lg_util.h"
#include "testutil.h"

static void test_percentiles(void) {
    lg_samples s = {0};
    CU_ASSERT(isnan(lg_percentile(&s, 50)));
    for (int i = 100; i >= 1; i--) CU_ASSERT_EQUAL(lg_samples_add(&s, i), 0);
    CU_ASSERT_DOUBLE_EQUAL(lg_percentile(&s, 0), 1, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(lg_percentile(&s, 50), 50.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(lg_percentile(&s, 90), 90.1, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(lg_percentile(&s, 99), 99.01, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(lg_percentile(&s, 100), 100, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(lg_mean(&s), 50.5, 1e-9);
    lg_samples_free(&s);
    lg_samples_add(&s, 7);
    CU_ASSERT_DOUBLE_EQUAL(lg_percentile(&s, 99), 7, 1e-9);
    lg_samples_free(&s);
}

static void test_mix_and_pick(void) {
    double w[3];
    inf_error err = {0};
    CU_ASSERT_EQUAL(lg_parse_mix("1:2:7", w, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(w[0], 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(w[2], 0.7, 1e-12);
    CU_ASSERT_EQUAL(lg_parse_mix("3", w, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(w[0], 1, 1e-12);
    CU_ASSERT(lg_parse_mix("0:0:0", w, &err) < 0);
    CU_ASSERT(lg_parse_mix("1:x:2", w, &err) < 0);
    CU_ASSERT(lg_parse_mix("1:2:3:4", w, &err) < 0);
    CU_ASSERT(lg_parse_mix("-1:2", w, &err) < 0);
    /* picks follow the weights */
    CU_ASSERT_EQUAL(lg_parse_mix("1:2:7", w, &err), 0);
    uint64_t st = 42;
    int n[3] = {0};
    for (int i = 0; i < 20000; i++) n[lg_pick(&st, w)]++;
    CU_ASSERT(n[0] > 1700 && n[0] < 2300);
    CU_ASSERT(n[1] > 3600 && n[1] < 4400);
    CU_ASSERT(n[2] > 13400 && n[2] < 14600);
    CU_ASSERT_EQUAL(lg_parse_mix("0:1:0", w, &err), 0);
    for (int i = 0; i < 1000; i++) CU_ASSERT_EQUAL(lg_pick(&st, w), 1);
}

static void test_poisson_prompt_ids(void) {
    uint64_t st = 7;
    double sum = 0;
    for (int i = 0; i < 20000; i++) {
        double g = lg_exp_interval(&st, 50.0);
        CU_ASSERT(g >= 0);
        sum += g;
    }
    CU_ASSERT(fabs(sum / 20000 - 0.02) < 0.002); /* mean 1/rate */
    char buf[64];
    size_t n = lg_make_prompt(&st, 1000, buf, sizeof buf);
    CU_ASSERT_EQUAL(n, strlen(buf));
    CU_ASSERT(n > 0 && n < sizeof buf && buf[n - 1] != ' ');
    n = lg_make_prompt(&st, 5, buf, sizeof buf);
    int spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += buf[i] == ' ';
    CU_ASSERT_EQUAL(spaces, 4);
    CU_ASSERT_EQUAL(lg_count_ids(""), 0);
    CU_ASSERT_EQUAL(lg_count_ids(NULL), 0);
    CU_ASSERT_EQUAL(lg_count_ids("17"), 1);
    CU_ASSERT_EQUAL(lg_count_ids("17 4242 9"), 3);
}

void test_register_worker_loadgen(void) {
    CU_pSuite s = CU_add_suite("loadgen_util", NULL, NULL);
    CU_add_test(s, "percentiles", test_percentiles);
    CU_add_test(s, "priority mix", test_mix_and_pick);
    CU_add_test(s, "poisson gaps, prompts, ids", test_poisson_prompt_ids);
}
