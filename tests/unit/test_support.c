/* test_support.c — arena, StrBuf and diagnostics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"

static void test_arena_alloc_zeroed_and_aligned(void **state) {
    (void)state;
    Arena *a = arena_new();
    for (int i = 1; i < 5000; i += 37) {
        unsigned char *p = arena_alloc(a, (size_t)i);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (int k = 0; k < i; k++) assert_int_equal(p[k], 0);
        memset(p, 0xab, (size_t)i);
    }
    /* A block larger than a chunk still works and keeps earlier data. */
    char *s = arena_strdup(a, "kept");
    char *big = arena_alloc(a, 1 << 20);
    big[(1 << 20) - 1] = 7;
    assert_string_equal(s, "kept");
    int *arr = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 1000; i++) ARENA_PUSH(a, arr, n, cap, i * 3);
    assert_int_equal(n, 1000);
    for (int i = 0; i < 1000; i++) assert_int_equal(arr[i], i * 3);
    assert_string_equal(arena_printf(a, "%s-%d", "x", 42), "x-42");
    arena_free(a);
}

static void test_strbuf_double_roundtrip(void **state) {
    (void)state;
    const double vals[] = {0.0, 1.0, -2.5, 1e-6, 0.1, 1.0 / 3.0, 6.02214076e23, 40.0, 1e300, 5e-324};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        StrBuf sb;
        sb_init(&sb);
        sb_put_double(&sb, vals[i]);
        assert_true(strtod(sb.data, NULL) == vals[i]);
        assert_non_null(strpbrk(sb.data, ".e"));
        sb_free(&sb);
    }
    StrBuf sb;
    sb_init(&sb);
    sb_put_double(&sb, 1e-6);
    assert_string_equal(sb.data, "1e-06");
    sb_free(&sb);
    sb_init(&sb);
    sb_put_double(&sb, 40.0);
    assert_string_equal(sb.data, "40.0");
    sb_free(&sb);
    sb_init(&sb);
    sb_put_double(&sb, -INFINITY);
    assert_string_equal(sb.data, "-inf");
    sb_free(&sb);
}

static void test_strbuf_quoted(void **state) {
    (void)state;
    StrBuf sb;
    sb_init(&sb);
    sb_put_quoted(&sb, "a\"b\\c\n\x01");
    assert_string_equal(sb.data, "\"a\\\"b\\\\c\\n\\x01\"");
    sb_printf(&sb, "%d", 12345);
    assert_int_equal(sb.len, strlen(sb.data));
    sb_free(&sb);
}

static void test_diag_format_caret(void **state) {
    (void)state;
    Arena *a = arena_new();
    FILE *f = tmpfile();
    DiagEngine *d = diag_new(a, f);
    diag_set_color(d, false);
    const char *src = "line one\n\tlet x = 3;\n";
    diag_add_source(d, "m.dsl", src, strlen(src));
    SrcLoc loc = {"m.dsl", 2, 6};
    diag_error(d, loc, "unknown name '%s'", "x");
    diag_note(d, (SrcLoc){"m.dsl", 1, 1}, "see here");
    assert_int_equal(diag_error_count(d), 1);
    rewind(f);
    char buf[512] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    assert_string_equal(buf, "m.dsl:2:6: error: unknown name 'x'\n"
                             "\tlet x = 3;\n"
                             "\t    ^\n"
                             "m.dsl:1:1: note: see here\n"
                             "line one\n"
                             "^\n");
    const Diag *g = diag_first(d);
    assert_int_equal(g->level, DIAG_ERROR);
    assert_int_equal(g->next->level, DIAG_NOTE);
    fclose(f);
    arena_free(a);
}

static void test_diag_max_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    FILE *f = tmpfile();
    DiagEngine *d = diag_new(a, f);
    diag_set_max_errors(d, 2);
    for (int i = 0; i < 5; i++) diag_error(d, (SrcLoc){0}, "e%d", i);
    assert_int_equal(diag_error_count(d), 5);
    rewind(f);
    char buf[512] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    assert_non_null(strstr(buf, "dscc: error: e1"));
    assert_null(strstr(buf, "e2"));
    assert_non_null(strstr(buf, "too many errors"));
    fclose(f);
    arena_free(a);
}

/* The string map against a plain array: growth from 8 buckets to 64k
 * entries, keys that share prefixes and hashes' low bits, length-bounded
 * lookups, zeroed new values that keep their address as the table grows. */
static void test_strmap(void **state) {
    (void)state;
    Arena *a = arena_new();
    StrMap m;
    strmap_init(&m, a, sizeof(int64_t[3]));
    assert_null(strmap_get(&m, "x")); /* empty: no table yet */
    enum { N = 40000 };
    char **keys = malloc(sizeof(char *) * N);
    int64_t **vals = malloc(sizeof(int64_t *) * N);
    srand(17);
    for (int i = 0; i < N; i++) {
        keys[i] = arena_printf(a, "%s%d", i % 3 ? "v" : "v1", rand() % 1000 * 100000 + i); /* distinct */
        bool fresh = false;
        vals[i] = strmap_put(&m, keys[i], &fresh);
        assert_true(fresh);
        assert_true(vals[i][0] == 0 && vals[i][1] == 0 && vals[i][2] == 0);
        assert_int_equal((uintptr_t)vals[i] % 16, 0);
        vals[i][0] = i, vals[i][2] = -i;
    }
    assert_int_equal(m.count, N);
    for (int i = 0; i < N; i++) {
        int64_t *v = strmap_get(&m, keys[i]);
        assert_ptr_equal(v, vals[i]);
        assert_true(v[0] == i && v[2] == -i);
        bool fresh = true;
        assert_ptr_equal(strmap_put(&m, keys[i], &fresh), v);
        assert_false(fresh);
        char buf[32];
        snprintf(buf, sizeof buf, "%sZZ", keys[i]);
        assert_ptr_equal(strmap_getn(&m, buf, strlen(keys[i])), v);
        assert_null(strmap_get(&m, buf));
        assert_ptr_not_equal(strmap_getn(&m, keys[i], strlen(keys[i]) - 1), v); /* a prefix is another key */
    }
    assert_int_equal(m.count, N);
    assert_null(strmap_get(&m, ""));
    *(int64_t *)strmap_put(&m, "", NULL) = 5; /* the empty key is a key */
    assert_int_equal(*(int64_t *)strmap_get(&m, ""), 5);
    free(keys);
    free(vals);
    arena_free(a);
}

static void test_read_file_missing(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    size_t len;
    assert_null(read_file_text(a, d, "/nonexistent/x.dsl", &len));
    assert_int_equal(diag_error_count(d), 1);
    assert_string_equal(diag_first(d)->loc.file, "/nonexistent/x.dsl");
    assert_non_null(strstr(diag_first(d)->msg, "cannot read"));
    arena_free(a);
}

/* Control bytes from a user's file (in the source line, the message or the
 * file name) are shown as \xNN, and the caret still lines up; tabs stay. */
static void test_diag_escapes_control_bytes(void **state) {
    (void)state;
    Arena *a = arena_new();
    FILE *f = tmpfile();
    DiagEngine *d = diag_new(a, f);
    diag_set_color(d, false);
    const char src[] = "ok\n\tx = \"\033[2J\001\177\" + y;\nz";
    diag_add_source(d, "m\033.dsl", src, sizeof src - 1);
    diag_error(d, ((SrcLoc){"m\033.dsl", 2, 17}), "undefined name 'y' near \"%s\"", "\033[2J\r");
    rewind(f);
    char buf[512] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    assert_string_equal(buf, "m\\x1b.dsl:2:17: error: undefined name 'y' near \"\\x1b[2J\\x0d\"\n"
                             "\tx = \"\\x1b[2J\\x01\\x7f\" + y;\n"
                             "\t                        ^\n");
    for (size_t i = 0; i < n; i++) assert_true((unsigned char)buf[i] >= 0x20 || buf[i] == '\n' || buf[i] == '\t');
    fclose(f);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alloc_zeroed_and_aligned),
        cmocka_unit_test(test_strbuf_double_roundtrip),
        cmocka_unit_test(test_strbuf_quoted),
        cmocka_unit_test(test_diag_format_caret),
        cmocka_unit_test(test_diag_max_errors),
        cmocka_unit_test(test_diag_escapes_control_bytes),
        cmocka_unit_test(test_read_file_missing),
        cmocka_unit_test(test_strmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
