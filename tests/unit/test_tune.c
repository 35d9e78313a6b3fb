/* test_tune.c — the DSCC_* switch table (support/tune.def) against what
 * reads it and what documents it: tune_read_env fills each switch's own
 * field, tune_check refuses each BOOL switch's bad value, `dscc help tuning`
 * lists every switch, docs/USAGE.md names exactly
 * the table's switches (beside the few environment variables that are no
 * tuning switch), and no library source reads a switch with getenv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"

/* DSCC_ variables USAGE.md documents that are not tuning switches: read by the CLI or the kernel cache where they apply. */
static const char *const not_switches[] = {"DSCC_MODEL_PATH", "DSCC_CACHE_DIR", "DSCC_TIMEOUT"};
#define NNOT (int)(sizeof not_switches / sizeof not_switches[0])

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* The next DSCC_ name in s at or after *at (into name), false at the end. */
static bool next_name(const char *s, size_t *at, char *name, size_t cap) {
    const char *p = strstr(s + *at, "DSCC_");
    if (!p) return false;
    size_t n = 5;
    while (isupper((unsigned char)p[n]) || isdigit((unsigned char)p[n]) || p[n] == '_') n++;
    assert_true(n < cap);
    memcpy(name, p, n);
    name[n] = 0;
    *at = (size_t)(p - s) + n;
    return true;
}

static bool names_in(const char *text, const char *want) {
    char name[64];
    for (size_t at = 0; next_name(text, &at, name, sizeof name);)
        if (strcmp(name, want) == 0) return true;
    return false;
}

/* Every DSCC_ name in USAGE.md is a switch of the table or one of not_switches, and every switch is in USAGE.md. */
static void test_usage_matches_table(void **state) {
    (void)state;
    char *u = slurp(DSCC_SOURCE_DIR "/docs/USAGE.md");
    char name[64];
    for (size_t at = 0; next_name(u, &at, name, sizeof name);) {
        if (!name[5]) continue; /* the prefix alone ("every DSCC_* switch") */
        bool other = false;
        for (int i = 0; i < NNOT; i++) other |= strcmp(name, not_switches[i]) == 0;
        if (!other && !tune_find(name)) fail_msg("docs/USAGE.md names %s, which support/tune.def does not list", name);
    }
    for (int i = 0; i < tune_count; i++)
        if (!names_in(u, tune_table[i].name)) fail_msg("%s (support/tune.def) is not in docs/USAGE.md", tune_table[i].name);
    for (int i = 0; i < NNOT; i++) assert_true(names_in(u, not_switches[i]));
    free(u);
}

/* Each variable lands in its own field: every switch set to its own name reads back as that name; unset reads NULL. */
static void test_read_env(void **state) {
    (void)state;
    assert_true(tune_count >= 40);
    for (int i = 0; i < tune_count; i++) setenv(tune_table[i].name, tune_table[i].name, 1);
    DsccTune t;
    memset(&t, 0xab, sizeof t);
    tune_read_env(&t);
    for (int i = 0; i < tune_count; i++) {
        const char *v = *(const char *const *)((const char *)&t + tune_table[i].offset);
        assert_non_null(v);
        assert_string_equal(v, tune_table[i].name);
        assert_ptr_equal(tune_find(tune_table[i].name), &tune_table[i]);
        assert_non_null(tune_table[i].doc);
        assert_true(*tune_table[i].doc && *tune_table[i].values && *tune_table[i].deflt);
    }
    assert_string_equal(t.mla_qreg, "DSCC_MLA_QREG");
    assert_string_equal(t.expert_tma, "DSCC_EXPERT_TMA");
    assert_string_equal(t.gemm_table, "DSCC_GEMM_TABLE");
    for (int i = 0; i < tune_count; i++) unsetenv(tune_table[i].name);
    tune_read_env(&t);
    for (int i = 0; i < tune_count; i++) assert_null(*(const char *const *)((const char *)&t + tune_table[i].offset));
    assert_null(tune_find("DSCC_NO_SUCH_SWITCH"));
    assert_null(tune_find("MLA_QREG"));
}

/* tune_check: each BOOL switch (values 0|1) alone at a bad value, through the environment as a main reads it, is
 * one error naming it, its value and 0 or 1; 0, 1, empty and unset pass, and the other kinds are left to their
 * readers; tune_on reads what passes. */
static void test_bool_check(void **state) {
    (void)state;
    static const char *const bad[] = {"2", "yes", "on", "10", " 1", "-0"}, *const good[] = {"0", "1", ""};
    Arena *a = arena_new();
    int nbool = 0;
    for (int i = 0; i < tune_count; i++) unsetenv(tune_table[i].name);
    for (int i = 0; i < tune_count; i++) {
        const TuneInfo *e = &tune_table[i];
        DsccTune t;
        if (e->kind != TUNE_BOOL) {
            setenv(e->name, "not a bool", 1);
            tune_read_env(&t);
            assert_true(tune_check(&t, diag_new(a, NULL)));
            unsetenv(e->name);
            continue;
        }
        nbool++;
        assert_string_equal(e->values, "0|1"); /* a switch that takes more is no BOOL: its kind says so */
        const char *v = bad[i % (int)(sizeof bad / sizeof bad[0])];
        setenv(e->name, v, 1);
        tune_read_env(&t);
        DiagEngine *d = diag_new(a, NULL);
        assert_false(tune_check(&t, d));
        assert_int_equal(diag_error_count(d), 1);
        assert_string_equal(diag_first(d)->msg, arena_printf(a, "%s is '%s': expected 0 or 1", e->name, v));
        for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
            setenv(e->name, good[k], 1);
            tune_read_env(&t);
            assert_true(tune_check(&t, diag_new(a, NULL)));
        }
        unsetenv(e->name);
    }
    assert_true(nbool >= 30);
    DsccTune t;
    tune_read_env(&t);
    assert_true(tune_check(&t, diag_new(a, NULL)));
    assert_true(tune_on(NULL, true) && !tune_on(NULL, false) && tune_on("", true) && !tune_on("", false));
    assert_true(tune_on("1", false) && !tune_on("0", true));
    arena_free(a);
}

/* `dscc help tuning`'s text names every switch with its line of doc. */
static void test_help_lists_all(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    tune_print_help(f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    for (int i = 0; i < tune_count; i++) {
        assert_true(names_in(s, tune_table[i].name));
        assert_non_null(strstr(s, tune_table[i].doc));
    }
    free(s);
}

/* No library source reads a DSCC_ variable with getenv but the kernel cache's folder (codegen/nvrtc.c): a new switch
 * goes into support/tune.def and reaches the code through DsccTune. */
static void test_library_reads_no_switch(void **state) {
    (void)state;
    static const char *const dirs[] = {"frontend", "ir", "passes", "codegen", "runtime", "cpu", "support"};
    int files = 0;
    for (size_t k = 0; k < sizeof dirs / sizeof dirs[0]; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", DSCC_SOURCE_DIR, dirs[k]);
        DIR *dir = opendir(path);
        assert_non_null(dir);
        for (struct dirent *e; (e = readdir(dir));) {
            size_t len = strlen(e->d_name);
            if (len < 3 || (strcmp(e->d_name + len - 2, ".c") && strcmp(e->d_name + len - 2, ".h"))) continue;
            snprintf(path, sizeof path, "%s/%s/%s", DSCC_SOURCE_DIR, dirs[k], e->d_name);
            char *s = slurp(path);
            files++;
            for (const char *p = s; (p = strstr(p, "getenv(\"DSCC_")); p++)
                if (strncmp(p, "getenv(\"DSCC_CACHE_DIR\")", 24) != 0)
                    fail_msg("%s/%s reads %.40s: list the switch in support/tune.def and read it from DsccTune", dirs[k], e->d_name, p);
            free(s);
        }
        closedir(dir);
    }
    assert_true(files > 50);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_matches_table),
        cmocka_unit_test(test_read_env),
        cmocka_unit_test(test_bool_check),
        cmocka_unit_test(test_help_lists_all),
        cmocka_unit_test(test_library_reads_no_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
