/* test_gpu_pack.c - the GPU pack (make gpu-pack, docs/cuda.md) proved here,
 * before any GPU sees it.
 *
 * The pack folder is $INFERNO_GPU_PACK or .gpu. `make test` builds it first
 * when nvcc is found (a real CUDA 13 build takes minutes, so it is a
 * prerequisite step of make, not something a suite does); where nvcc or the
 * pack is absent every test here prints SKIP with the reason.
 *
 *  - the packed binaries start under `env -i` with only the pack's library
 *    path and print "SKIP: ... no CUDA device" (so the loader found every
 *    library: nothing leaked in from this machine's environment);
 *  - objdump finds no AVX-512 instruction in them (no zmm register, no
 *    k-mask, no EVEX prefix), and does find them in bin/inferno-tests, which
 *    keeps the AVX-512 CPU set, so the detector itself is proved;
 *  - the pack is under 48 MiB (the device tool carries 64 MiB in all);
 *  - tools/gpu-run.sh --dry-run runs every step with its command line, budget
 *    and report section; binaries from $INFERNO_GPU_RUN_BIN when set (bin-emu
 *    for the CUDA emulator build), else the pack's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define PACK_LIMIT_BYTES (48.0 * 1024 * 1024)

static const char *const PACK_BINS[] = {"inferno-test-gpu", "inferno-bench-gpu"};

static const char *pack_dir(void) {
    const char *p = getenv("INFERNO_GPU_PACK");
    return p && *p ? p : ".gpu";
}

/* Path of a packed binary, or NULL (after a SKIP line) when the pack is absent. */
static const char *pack_bin(const char *name) {
    static char buf[2][1024];
    static int k;
    char *b = buf[k++ & 1];
    snprintf(b, sizeof buf[0], "%s/bin/%s", pack_dir(), name);
    if (access(b, X_OK) != 0) {
        tu_skip("%s absent: run make gpu-pack (make test builds it when nvcc is found)", b);
        return NULL;
    }
    return b;
}

/* Runs a /bin/sh command line; stdout in *out (caller frees). */
static int sh(const char *cmd, char **out) {
    char *const argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    return tu_run_capture(argv, out);
}

static int have_tool(const char *tool) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return sh(cmd, NULL) == 0;
}

static void test_start_in_empty_env(void) {
    for (size_t i = 0; i < sizeof PACK_BINS / sizeof *PACK_BINS; i++) {
        const char *bin = pack_bin(PACK_BINS[i]);
        if (!bin) return;
        char lib[1100], cwd[512];
        CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
        snprintf(lib, sizeof lib, "LD_LIBRARY_PATH=%s%s%s/lib", pack_dir()[0] == '/' ? "" : cwd,
                 pack_dir()[0] == '/' ? "" : "/", pack_dir());
        char *const argv[] = {"/usr/bin/env", "-i", lib, (char *)bin, NULL};
        char *out = NULL;
        int rc = tu_run_capture(argv, &out);
        if (out && strncmp(out, "SKIP", 4) != 0 && rc == 0 && strstr(out, "no CUDA device") == NULL) {
            tu_skip("%s found a GPU here: the no-device start is not checked", PACK_BINS[i]);
            free(out);
            continue;
        }
        if (rc != 0 || !out || !strstr(out, "SKIP: ") || !strstr(out, "no CUDA device"))
            fprintf(stderr, "\n  %s under env -i: exit %d, output: %s", PACK_BINS[i], rc, out ? out : "(none)");
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT(strncmp(out, "SKIP: ", 6) == 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "no CUDA device"));
        free(out);
    }
}

/* Number of AVX-512 instructions objdump shows in path, or -1. The rule is
 * tools/gpu-pack.sh's: a zmm register or a {%kN} mask in the operands, or
 * 0x62 as the first byte (EVEX; 64-bit mode has no other use for it). */
static long avx512_count(const char *path) {
    char cmd[1400], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "objdump -d '%s' | awk -F'\\t' "
             "'NF >= 3 && ($2 ~ /^62 / || $3 ~ /zmm|\\{%%k[0-7]\\}/)' | wc -l", path);
    int rc = sh(cmd, &out);
    long n = rc == 0 && out ? strtol(out, NULL, 10) : -1;
    free(out);
    return n;
}

static void test_no_avx512(void) {
    if (!have_tool("objdump")) {
        tu_skip("objdump not found");
        return;
    }
    for (size_t i = 0; i < sizeof PACK_BINS / sizeof *PACK_BINS; i++) {
        const char *bin = pack_bin(PACK_BINS[i]);
        if (!bin) return;
        long n = avx512_count(bin);
        if (n != 0) fprintf(stderr, "\n  %s: %ld AVX-512 instructions", bin, n);
        CU_ASSERT_EQUAL(n, 0);
    }
    /* The detector sees them where they are: the normal build keeps the
     * AVX-512 set (chosen at run time by cpuid). */
    const char *tests = tu_bin("inferno-tests");
    if (access(tests, R_OK) == 0) CU_ASSERT(avx512_count(tests) > 0);
}

static void test_pack_size(void) {
    if (!pack_bin(PACK_BINS[0])) return;
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "du -sb '%s' | cut -f1", pack_dir());
    CU_ASSERT_EQUAL_FATAL(sh(cmd, &out), 0);
    double bytes = out ? strtod(out, NULL) : 0;
    printf("\n  pack %s: %.1f MiB", pack_dir(), bytes / (1024.0 * 1024));
    CU_ASSERT(bytes > 1e6);
    CU_ASSERT(bytes < PACK_LIMIT_BYTES);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/MANIFEST", pack_dir());
    char *m = tu_read_file(cmd, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "commit: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "-march=x86-64-v3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "lib/libcunit.so"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "lib/libpcre2-8.so"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "shared/models/stories260K.gguf"));
    free(m);
}

static void test_dry_run(void) {
    if (!pack_bin(PACK_BINS[0])) return;
    if (access("tools/gpu-run.sh", X_OK) != 0) {
        tu_skip("tools/gpu-run.sh not found (run from the repository root)");
        return;
    }
    const char *rep = tu_tmpfile("gpu-report");
    const char *bin = getenv("INFERNO_GPU_RUN_BIN");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "GPU_PACK='%s' %s%s%s tools/gpu-run.sh '%s' --dry-run 2>&1", pack_dir(),
             bin && *bin ? "GPU_RUN_BIN='" : "", bin && *bin ? bin : "", bin && *bin ? "'" : "", rep);
    int rc = sh(cmd, &out);
    if (rc != 0) fprintf(stderr, "\n  gpu-run.sh --dry-run: exit %d:\n%s", rc, out ? out : "");
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    /* The summary tables come last: the ratio table is the final one. */
    const char *sum = strstr(out, "## Summary"), *ratio = strstr(out, "### ours / theirs");
    CU_ASSERT(sum && ratio && ratio > sum);
    CU_ASSERT(strstr(out, "| 8b | decode step, batch 32 |") != NULL);
    free(out);

    char path[1200];
    snprintf(path, sizeof path, "%s/report.md", rep);
    char *md = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(md);
    static const char *const want[] = {
        "DRY RUN", "## 1. facts", "## 2. gpu_kernels", "## 3. gpu_forward", "## 4. memcheck",
        "## 5. racecheck", "## 6. bench_gpu", "## 7. baseline", "## Summary",
        "inferno-test-gpu gpu_kernels", "inferno-test-gpu gpu_forward",
        "--tool memcheck --error-exitcode 1", "--tool racecheck --error-exitcode 1",
        "inferno-bench-gpu --models 1b,8b --types bf16,f16", "gpu-baseline.py --models 8b,1b"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        if (!strstr(md, want[i])) fprintf(stderr, "\n  report.md lacks '%s'", want[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(md, want[i]));
    }
    CU_ASSERT_PTR_NULL(strstr(md, ": FAIL"));
    if (!(bin && *bin)) CU_ASSERT_PTR_NULL(strstr(md, ": TIMEOUT")); /* the emulator may time out */
    free(md);

    /* Every step's budget, and their sum inside the 8 minutes. */
    snprintf(path, sizeof path, "%s/steps.tsv", rep);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char name[64], status[16];
    int budget, n = 0, total = 0, xrc;
    double took;
    while (fscanf(f, "%63s %d %lf %15s %d", name, &budget, &took, status, &xrc) == 5) {
        CU_ASSERT(budget > 0);
        CU_ASSERT(took <= budget + 5);
        total += budget;
        n++;
        struct stat st;
        snprintf(path, sizeof path, "%s/%02d-%s.log", rep, n, name);
        CU_ASSERT_EQUAL(stat(path, &st), 0);
    }
    fclose(f);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT(total <= 480);
}

void test_register_gpu_pack(void) {
    CU_pSuite s = CU_add_suite("gpu_pack", NULL, NULL);
    CU_add_test(s, "packed binaries start under env -i and SKIP: no CUDA device", test_start_in_empty_env);
    CU_add_test(s, "no AVX-512 instruction in the packed binaries (objdump)", test_no_avx512);
    CU_add_test(s, "pack under 48 MiB, manifest names its parts", test_pack_size);
    CU_add_test(s, "tools/gpu-run.sh --dry-run: every step, budget and report section", test_dry_run);
}
