/* runner.c - main() of bin/inferno-tests: runs every registered CUnit suite,
 * or only the suites named on the command line. */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

void tu_register_all(void);

int main(int argc, char **argv) {
    /* Suites kill servers and workers they talk to on purpose: a write to a
     * closed peer must fail with EPIPE, not end the whole run. */
    signal(SIGPIPE, SIG_IGN);
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    tu_register_all();
    if (argc > 1) {
        for (CU_pSuite s = CU_get_registry()->pSuite; s; s = s->pNext) {
            int keep = 0;
            for (int i = 1; i < argc; i++)
                if (strcmp(s->pName, argv[i]) == 0) keep = 1;
            CU_set_suite_active(s, keep);
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
