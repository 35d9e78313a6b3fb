/* test_run_text.c — the text side of `dscc run` (tools/dscc/run_text.c):
 * whole UTF-8 characters only when streaming, a stop string never shown
 * (even split over tokens), host sampling (greedy, top-k 1, top-p, the
 * distribution at temperature 1, the same seed the same draws), the
 * precision a config.json declares, and JSON text kept valid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tools/dscc/run_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_utf8_complete(void **state) {
    (void)state;
    assert_int_equal(run_utf8_complete("abc", 3), 3);
    assert_int_equal(run_utf8_complete("a\xC3", 2), 1);            /* é's lead alone */
    assert_int_equal(run_utf8_complete("a\xC3\xA9", 3), 3);
    assert_int_equal(run_utf8_complete("a\xE4\xB8", 3), 1);         /* 3-byte character, 2 of its bytes */
    assert_int_equal(run_utf8_complete("a\xF0\x9F\x98", 4), 1);     /* emoji, 3 of 4 bytes */
    assert_int_equal(run_utf8_complete("a\xF0\x9F\x98\x80", 5), 5);
}

/* Streams pieces into a memory file; returns what was shown. */
static char *stream(const char *stop, const char *const *pieces, int n, bool *stopped, char *mid, int at) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    RunStream s;
    run_stream_init(&s, stop, f);
    for (int i = 0; i < n; i++) {
        run_stream_add(&s, pieces[i], strlen(pieces[i]));
        if (i == at) {
            fflush(f);
            memcpy(mid, buf, len + 1);
        }
    }
    *stopped = s.stopped;
    run_stream_finish(&s);
    run_stream_free(&s);
    fclose(f);
    return buf;
}

static void test_stream(void **state) {
    (void)state;
    char mid[64];
    bool stopped;
    const char *p1[] = {"x\xE4", "\xB8", "\xAD!"}; /* 中 over three tokens */
    char *out = stream(NULL, p1, 3, &stopped, mid, 1);
    assert_string_equal(mid, "x"); /* never half a character */
    assert_string_equal(out, "x\xE4\xB8\xAD!");
    assert_false(stopped);
    free(out);
    const char *p2[] = {"Hello", " EN", "D of", " text"}; /* the stop string "END" split over tokens */
    out = stream("END", p2, 4, &stopped, mid, 1);
    assert_string_equal(mid, "Hello "); /* "EN" held back: it might begin END */
    assert_string_equal(out, "Hello ");
    assert_true(stopped);
    free(out);
    const char *p3[] = {"a E", "Nb"}; /* a prefix that turns out not to be the stop */
    out = stream("END", p3, 2, &stopped, mid, 0);
    assert_string_equal(out, "a ENb");
    assert_false(stopped);
    free(out);
}

static void test_sampling(void **state) {
    (void)state;
    float lg[4] = {0.5f, 2.0f, 1.9f, -1.0f};
    RunSampler s;
    run_sampler_init(&s, 0, 1, 0, 7, 0);
    assert_int_equal(run_sample(&s, lg, 4), 1); /* temperature 0: argmax */
    run_sampler_init(&s, 1.5, 1, 1, 7, 0);
    for (int i = 0; i < 50; i++) assert_int_equal(run_sample(&s, lg, 4), 1); /* top-k 1: argmax */
    run_sampler_init(&s, 1, 0.3, 0, 7, 0);
    for (int i = 0; i < 50; i++) assert_int_equal(run_sample(&s, lg, 4), 1); /* top-p below the top mass */
    run_sampler_free(&s);
    /* Temperature 1 over [0, log 3]: token 1 three times in four. */
    float two[2] = {0.0f, 1.0986123f};
    run_sampler_init(&s, 1, 1, 0, 11, 3);
    int ones = 0, n = 20000;
    for (int i = 0; i < n; i++) ones += (int)run_sample(&s, two, 2);
    assert_true(ones > n * 0.73 && ones < n * 0.77);
    run_sampler_free(&s);
    /* top-k 2 never picks the two least likely; same seed, same draws; another seed, other draws. */
    RunSampler a, b, c;
    run_sampler_init(&a, 2, 1, 2, 5, 0);
    run_sampler_init(&b, 2, 1, 2, 5, 0);
    run_sampler_init(&c, 2, 1, 2, 6, 0);
    int differ = 0;
    for (int i = 0; i < 64; i++) {
        int64_t x = run_sample(&a, lg, 4), y = run_sample(&b, lg, 4), z = run_sample(&c, lg, 4);
        assert_true(x == 1 || x == 2);
        assert_int_equal(x, y);
        differ += x != z;
    }
    assert_true(differ > 0);
    run_sampler_free(&a);
    run_sampler_free(&b);
    run_sampler_free(&c);
}

static void test_config_and_json(void **state) {
    (void)state;
    Arena *ar = arena_new();
    DiagEngine *d = diag_new(ar, stderr);
    assert_int_equal(run_config_fp8(ar, d, DSCC_SOURCE_DIR "/tests/fixtures/tiny_fp8/config.json"), 1);
    assert_int_equal(run_config_fp8(ar, d, DSCC_SOURCE_DIR "/tests/fixtures/tiny_bf16/config.json"), 0);
    assert_int_equal(run_config_fp8(ar, d, DSCC_SOURCE_DIR "/tests/fixtures/tiny_bf16/tokens.npy"), -1);
    arena_free(ar);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int32_t p[2] = {1, 2}, g[1] = {3};
    RunTimings t = {.load_s = 1};
    assert_true(run_print_json(f, p, 2, g, 1, "a\xE4\xB8 b\xFF", "eos", &t));
    fclose(f);
    assert_non_null(strstr(buf, "\"prompt_ids\":[1,2],\"output_ids\":[3],\"text\":\"a\xEF\xBF\xBD b\xEF\xBF\xBD\",\"stop_reason\":\"eos\""));
    assert_non_null(strstr(buf, "\"timings\":{\"load_s\":1,"));
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_complete),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_config_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
