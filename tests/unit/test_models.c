/* test_models.c — the driver's model search (tools/dscc/models.c): names to
 * files through DSCC_MODEL_PATH, paths left alone, a checkpoint's
 * model_type to the file whose `model NAME for "TYPE"` lists it (not a
 * mention in a comment, a string or a function body), and the errors that
 * say where it looked. Works inside its own mkdtemp folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tools/dscc/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], dir2[64];

static void put(const char *d, const char *name, const char *text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", d, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **st) {
    strcpy(dir, "/tmp/dscc_models_XXXXXX");
    strcpy(dir2, "/tmp/dscc_models2_XXXXXX");
    if (!mkdtemp(dir) || !mkdtemp(dir2)) return -1;
    /* decoys first in name order: the type only in a comment, a string, a body */
    put(dir, "a_decoy.dsl",
        "// model fake for \"llama\";\n/* model fake for \"llama\"; */\nparam s: str = \"model x for \\\"llama\\\"\";\n"
        "fn f() { model y for \"llama\"; }\n");
    put(dir, "b_real.dsl", "param n: int = 1; // before the declaration\nmodel real for \"qwen2\", \"llama\";\ndim B;\n");
    put(dir, "c_other.dsl", "model other for \"mistral\";\n");
    put(dir, "notes.txt", "model notes for \"gemma\";\n");
    put(dir2, "b_real.dsl", "model shadowed for \"llama\";\n");
    return 0;
}

static int teardown(void **st) {
    const char *names[] = {"a_decoy.dsl", "b_real.dsl", "c_other.dsl", "notes.txt"};
    char p[256];
    for (int i = 0; i < 4; i++) snprintf(p, sizeof p, "%s/%s", dir, names[i]), unlink(p);
    snprintf(p, sizeof p, "%s/b_real.dsl", dir2), unlink(p);
    rmdir(dir);
    rmdir(dir2);
    return 0;
}

/* The text of d's first diagnostic, or "". */
static const char *first_msg(DiagEngine *d) { return diag_first(d) ? diag_first(d)->msg : ""; }

static void test_names_and_paths(void **st) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    setenv("DSCC_MODEL_PATH", dir, 1);
    const char *p = driver_resolve_model(a, d, "b_real");
    assert_non_null(p);
    char want[4200];
    char real[4096];
    assert_non_null(realpath(dir, real));
    snprintf(want, sizeof want, "%s/b_real.dsl", real);
    assert_string_equal(p, want);
    /* paths are left alone, existing or not */
    assert_string_equal(driver_resolve_model(a, d, "x/b_real"), "x/b_real");
    assert_string_equal(driver_resolve_model(a, d, "nothere.dsl"), "nothere.dsl");
    assert_int_equal(diag_error_count(d), 0);
    /* an unknown name names where it looked and what is there */
    assert_null(driver_resolve_model(a, d, "missing"));
    assert_int_equal(diag_error_count(d), 1);
    assert_non_null(strstr(first_msg(d), "model 'missing' not found: no missing.dsl in "));
    assert_non_null(strstr(first_msg(d), real));
    assert_non_null(strstr(first_msg(d), "(models there: a_decoy, b_real, c_other"));
    /* the first directory of the path wins */
    char both[200];
    snprintf(both, sizeof both, "%s:/nonexistent:%s", dir2, dir);
    setenv("DSCC_MODEL_PATH", both, 1);
    p = driver_resolve_model(a, d, "b_real");
    assert_non_null(p);
    assert_non_null(strstr(p, "dscc_models2_"));
    unsetenv("DSCC_MODEL_PATH");
    arena_free(a);
}

static void test_model_type(void **st) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    setenv("DSCC_MODEL_PATH", dir, 1);
    const char *p = driver_find_model_for_type(a, d, "llama");
    assert_non_null(p);
    assert_non_null(strstr(p, "/b_real.dsl")); /* not the decoys before it */
    p = driver_find_model_for_type(a, d, "qwen2");
    assert_non_null(p);
    assert_non_null(strstr(p, "/b_real.dsl"));
    p = driver_find_model_for_type(a, d, "mistral");
    assert_non_null(p);
    assert_non_null(strstr(p, "/c_other.dsl"));
    assert_int_equal(diag_error_count(d), 0);
    /* a .txt is not a model; an unknown type lists what is declared */
    assert_null(driver_find_model_for_type(a, d, "gemma"));
    assert_int_equal(diag_error_count(d), 1);
    assert_non_null(strstr(first_msg(d), "no model for model_type 'gemma'"));
    assert_non_null(strstr(first_msg(d), "real for \"qwen2\", real for \"llama\", other for \"mistral\""));
    /* the shipped model declares its checkpoints' type */
    setenv("DSCC_MODEL_PATH", DSCC_SOURCE_DIR "/models", 1);
    p = driver_find_model_for_type(a, d, "deepseek_v3");
    assert_non_null(p);
    assert_non_null(strstr(p, "/models/deepseek_v3.dsl"));
    unsetenv("DSCC_MODEL_PATH");
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_paths),
        cmocka_unit_test(test_model_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
