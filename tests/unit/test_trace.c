/* test_trace.c — the streamed Chrome trace (runtime/trace.h): steps
 * written as they come, the cap and its note, names claimed once, JSON
 * that parses back, errors for a path that cannot be written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/trace.h"

/* A step of two events, "NAME" and "NAME kernel", at ts. */
static cJSON *step(const char *name, double ts) {
    cJSON *a = cJSON_CreateArray(), *e = rt_trace_event(name, "X", 0, 2);
    cJSON_AddNumberToObject(e, "ts", ts);
    cJSON_AddNumberToObject(e, "dur", 10);
    cJSON_AddItemToArray(a, e);
    char k[64];
    snprintf(k, sizeof k, "%s kernel \"quoted\"\n", name); /* escaped by cJSON */
    e = rt_trace_event(k, "X", 0, 0);
    cJSON_AddNumberToObject(e, "ts", ts + 1);
    cJSON_AddNumberToObject(e, "dur", 5);
    cJSON_AddItemToArray(a, e);
    return a;
}

static cJSON *read_back(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

static void test_trace_steps_and_cap(void **state) {
    (void)state;
    char dir[] = "/tmp/dscc_trace_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.json", dir);
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtTrace *t = rt_trace_open(path, 2, d);
    assert_non_null(t);
    assert_true(rt_trace_claim_names(t));
    assert_false(rt_trace_claim_names(t));
    const char *names[] = {"prefill", "decode 1", "decode 2", "decode 3"};
    int traced = 0;
    for (int i = 0; i < 4; i++)
        if (rt_trace_begin_step(t)) {
            assert_true(rt_trace_now_us(t) >= 0);
            assert_true(rt_trace_write(t, step(names[i], 100.0 * i), d));
            traced++;
        }
    assert_int_equal(traced, 2);
    rt_trace_close(t, d);
    assert_int_equal(diag_error_count(d), 0);
    cJSON *root = read_back(path);
    assert_non_null(root);
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
    assert_int_equal(cJSON_GetArraySize(evs), 4);
    assert_string_equal(cJSON_GetArrayItem(evs, 2)->child->valuestring, "decode 1");
    assert_string_equal(cJSON_GetArrayItem(evs, 3)->child->valuestring, "decode 1 kernel \"quoted\"\n");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "otherData");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(m, "steps_traced")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(m, "steps_left_out")->valueint, 2);
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(m, "note");
    assert_non_null(note);
    assert_non_null(strstr(note->valuestring, "only the first 2 steps"));
    assert_non_null(strstr(note->valuestring, "--trace-steps"));
    cJSON_Delete(root);
    /* under the cap: no note; no steps at all still parses */
    t = rt_trace_open(path, 0, d);
    assert_non_null(t);
    assert_true(rt_trace_begin_step(t));
    assert_true(rt_trace_write(t, step("prefill", 0), d));
    rt_trace_close(t, d);
    root = read_back(path);
    assert_non_null(root);
    m = cJSON_GetObjectItemCaseSensitive(root, "otherData");
    assert_null(cJSON_GetObjectItemCaseSensitive(m, "note"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(m, "trace_steps")->valueint, RT_TRACE_STEPS);
    cJSON_Delete(root);
    rt_trace_close(rt_trace_open(path, 0, d), d);
    root = read_back(path);
    assert_non_null(root);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "traceEvents")), 0);
    cJSON_Delete(root);
    unlink(path);
    rmdir(dir);
    arena_free(a);
}

static void test_trace_unwritable(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    assert_null(rt_trace_open("/nonexistent-dir/t.json", 0, d));
    assert_int_equal(diag_error_count(d), 1);
    assert_non_null(strstr(diag_first(d)->msg, "cannot write the trace '/nonexistent-dir/t.json'"));
    rt_trace_close(NULL, d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_steps_and_cap),
        cmocka_unit_test(test_trace_unwritable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
