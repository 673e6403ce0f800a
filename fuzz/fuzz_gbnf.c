/* fuzz_gbnf.c - libFuzzer target for the GBNF parser and the matcher
 * (make fuzz FUZZ_TARGETS=gbnf).
 *
 * The input is split at the first NUL byte: the grammar text, then bytes
 * fed to a matcher of the grammar when it compiled. Checked beyond "no
 * crash, no leak": a failure has a known code and a message starting with
 * "grammar", and grammar_accepts agrees with a matcher fed byte by byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    char *text = malloc(glen + 1);
    if (!text) return 0;
    memcpy(text, data, glen);
    text[glen] = 0;
    grammar *g = NULL;
    inf_error err = {0};
    int rc = glen ? grammar_parse(&g, text, glen, &err) : INF_EINVAL;
    if (rc && glen) {
        if (rc != INF_EFORMAT && rc != INF_EINVAL && rc != INF_ERANGE && rc != INF_ENOMEM) abort();
        if (strncmp(err.msg, "grammar", 7)) abort();
    }
    if (!rc && g) {
        const uint8_t *in = nul ? nul + 1 : data + size;
        size_t n = (size_t)(data + size - in);
        grammar_matcher *m = NULL;
        if (!grammar_matcher_create(&m, g, NULL)) {
            size_t ok = 0;
            int dead = 0;
            for (size_t i = 0; i < n && !dead; i++) {
                int r = grammar_matcher_accept_bytes(m, in + i, 1, NULL);
                if (r) dead = 1;
                else ok++;
            }
            int whole = grammar_accepts(g, (const char *)in, n, NULL);
            if (whole >= 0 && !dead && whole != grammar_matcher_can_end(m)) abort();
            if (whole == 1 && dead) abort();
            grammar_matcher_free(m);
        }
        grammar_free(g);
    }
    free(text);
    return 0;
}
