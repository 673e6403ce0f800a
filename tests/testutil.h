/* testutil.h - helpers shared by the CUnit suites.
 *
 * Each tests/test_<name>.c defines `void test_register_<name>(void)` which adds
 * its suites with CU_add_suite/CU_add_test; the Makefile generates the registry
 * that calls them all, and tests/runner.c runs them (bin/inferno-tests [suite...]).
 */
#ifndef INF_TESTUTIL_H
#define INF_TESTUTIL_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>

/* Path of the shared test-data folder (../shared, or $INFERNO_SHARED), or NULL
 * when it is absent. Static storage; do not free. */
const char *tu_shared_dir(void);

/* Builds "<shared>/<rel>" into a static rotating buffer; NULL if ../shared is
 * absent or the file does not exist. */
const char *tu_shared_file(const char *rel);

/* Prints a clear SKIP line for the current test (CUnit 2.1 has no skip state). */
void tu_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A private temporary directory for this test run, created on first use and
 * removed at exit. Static storage. */
const char *tu_tmpdir(void);

/* Builds "<tmpdir>/<name>" into a static rotating buffer. */
const char *tu_tmpfile(const char *name);

/* Path of a built program, e.g. tu_bin("inferno-model") -> "bin/inferno-model"
 * (honours $INFERNO_BIN for the sanitizer build). Static rotating buffer. */
const char *tu_bin(const char *name);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tu_free_port(void);

/* Runs argv (NULL-terminated), captures stdout into a malloc'd NUL-terminated
 * buffer (*out, caller frees; may be NULL) and returns the exit status
 * (or -1 if it could not run / was killed by a signal). */
int tu_run_capture(char *const argv[], char **out);

/* Deterministic PRNG for tests (splitmix64). */
uint64_t tu_rand_u64(uint64_t *state);
float tu_rand_uniform(uint64_t *state, float lo, float hi);

/* Reads a whole file into a malloc'd buffer (NUL-terminated); returns NULL on error. */
char *tu_read_file(const char *path, size_t *len_out);

#endif
