/* test_stopstr.c - stop-string matcher against a whole-text strstr reference
 * over random texts, stop sets and delta splits. */
#include <stdlib.h>
#include <string.h>

#include "stopstr.h"
#include "testutil.h"

static void feed_str(stop_matcher *m, const char *d, int armed, char *acc, stop_match_out *o) {
    CU_ASSERT_EQUAL(stop_matcher_feed(m, d, strlen(d), armed, o, NULL), 0);
    strncat(acc, o->text, o->len);
}

static void test_stop_basic(void) {
    const char *stops[] = {"END", "\n\n"};
    stop_matcher *m;
    CU_ASSERT_EQUAL_FATAL(stop_matcher_create(&m, stops, 2, NULL), 0);
    char acc[256] = "";
    stop_match_out o;
    feed_str(m, "Hello wor", 1, acc, &o);
    CU_ASSERT_STRING_EQUAL(acc, "Hello wor");
    feed_str(m, "ld E", 1, acc, &o);
    CU_ASSERT_STRING_EQUAL(acc, "Hello world ");
    CU_ASSERT_EQUAL(stop_matcher_held(m), 1);
    feed_str(m, "N", 1, acc, &o);
    CU_ASSERT_EQUAL(o.len, 0);
    feed_str(m, "D and more", 1, acc, &o);
    CU_ASSERT_EQUAL(o.stop_index, 0);
    CU_ASSERT_STRING_EQUAL(acc, "Hello world ");
    feed_str(m, "later", 1, acc, &o); /* nothing after a match */
    CU_ASSERT_EQUAL(o.len, 0);
    CU_ASSERT_EQUAL(o.stop_index, 0);
    stop_matcher_flush(m, &o);
    CU_ASSERT_EQUAL(o.len, 0);
    stop_matcher_free(m);

    /* No match: held bytes come out with the next delta or at flush. */
    CU_ASSERT_EQUAL_FATAL(stop_matcher_create(&m, stops, 2, NULL), 0);
    acc[0] = 0;
    feed_str(m, "a\n", 1, acc, &o);
    CU_ASSERT_STRING_EQUAL(acc, "a");
    feed_str(m, "b EN", 1, acc, &o);
    CU_ASSERT_STRING_EQUAL(acc, "a\nb ");
    stop_matcher_flush(m, &o);
    strncat(acc, o.text, o.len);
    CU_ASSERT_STRING_EQUAL(acc, "a\nb EN");
    CU_ASSERT_EQUAL(o.stop_index, -1);
    stop_matcher_free(m);

    /* Unarmed (before min_tokens): a whole stop string passes through. */
    CU_ASSERT_EQUAL_FATAL(stop_matcher_create(&m, stops, 2, NULL), 0);
    acc[0] = 0;
    feed_str(m, "xENDy", 0, acc, &o);
    feed_str(m, "\n", 0, acc, &o);
    feed_str(m, "\nz", 1, acc, &o); /* held "\n" + "\n" completes once armed */
    CU_ASSERT_STRING_EQUAL(acc, "xENDy");
    CU_ASSERT_EQUAL(o.stop_index, 1);
    stop_matcher_free(m);
}

/* Random texts, stop sets and splits against a whole-text strstr reference. */
static void test_stop_random(void) {
    uint64_t st = 99;
    for (int iter = 0; iter < 3000; iter++) {
        char text[80], stops_buf[3][8];
        const char *stops[3];
        int tl = (int)(tu_rand_u64(&st) % 64), ns = 1 + (int)(tu_rand_u64(&st) % 3);
        for (int i = 0; i < tl; i++) text[i] = (char)('a' + tu_rand_u64(&st) % 3);
        text[tl] = 0;
        size_t maxlen = 0;
        for (int k = 0; k < ns; k++) {
            int sl = 1 + (int)(tu_rand_u64(&st) % 5);
            for (int i = 0; i < sl; i++) stops_buf[k][i] = (char)('a' + tu_rand_u64(&st) % 3);
            stops_buf[k][sl] = 0;
            stops[k] = stops_buf[k];
            if ((size_t)sl > maxlen) maxlen = (size_t)sl;
        }
        /* Reference: the occurrence that ends first, ties to the earlier start. */
        long cut = -1, end = -1;
        for (int k = 0; k < ns; k++) {
            const char *h = strstr(text, stops[k]);
            if (!h) continue;
            long pos = h - text, e = pos + (long)strlen(stops[k]);
            if (end < 0 || e < end || (e == end && pos < cut)) {
                cut = pos;
                end = e;
            }
        }
        stop_matcher *m;
        CU_ASSERT_EQUAL_FATAL(stop_matcher_create(&m, stops, (size_t)ns, NULL), 0);
        char out[80] = "";
        size_t olen = 0;
        int at = 0, idx = -1;
        stop_match_out o;
        while (at < tl && idx < 0) {
            int d = (int)(tu_rand_u64(&st) % 7); /* 0: an empty delta */
            if (d > tl - at) d = tl - at;
            CU_ASSERT_EQUAL(stop_matcher_feed(m, text + at, (size_t)d, 1, &o, NULL), 0);
            memcpy(out + olen, o.text, o.len);
            olen += o.len;
            at += d;
            idx = o.stop_index;
            if (idx < 0) {
                /* Emitted + held is all text so far; held is the longest
                 * suffix that is a proper prefix of a stop string. */
                size_t held = stop_matcher_held(m), want = 0;
                CU_ASSERT_EQUAL(olen + held, (size_t)at);
                CU_ASSERT_EQUAL(memcmp(out, text, olen), 0);
                for (int k = 0; k < ns; k++)
                    for (size_t q = 1; q < strlen(stops[k]) && q <= (size_t)at; q++)
                        if (memcmp(text + at - q, stops[k], q) == 0 && q > want) want = q;
                CU_ASSERT_EQUAL(held, want);
                CU_ASSERT(held < maxlen);
            }
        }
        if (idx < 0) {
            stop_matcher_flush(m, &o);
            memcpy(out + olen, o.text, o.len);
            olen += o.len;
        }
        if (cut < 0) {
            CU_ASSERT_EQUAL(idx, -1);
            CU_ASSERT_EQUAL(olen, (size_t)tl);
        } else {
            CU_ASSERT_FATAL(idx >= 0);
            CU_ASSERT_EQUAL(olen, (size_t)cut);
            CU_ASSERT_EQUAL((long)(cut + strlen(stops[idx])), end);
            CU_ASSERT_EQUAL(memcmp(text + cut, stops[idx], strlen(stops[idx])), 0);
        }
        CU_ASSERT_EQUAL(memcmp(out, text, olen), 0);
        stop_matcher_free(m);
    }
}

void test_register_stopstr(void) {
    CU_pSuite s = CU_add_suite("stopstr", NULL, NULL);
    CU_add_test(s, "split deltas, hold-back, flush, armed", test_stop_basic);
    CU_add_test(s, "random texts and splits vs strstr", test_stop_random);
}
