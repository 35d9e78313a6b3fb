/* test_nvrtc_progress.c — the NVRTC pool's progress line: on a terminal
 * (a pseudo-terminal stands in for one) standard error gets
 * "\rNVRTC: compiled k/n modules" for every k up to n, then the line is
 * cleared; on anything else (a file) nothing is written. No cache is used,
 * so nothing is written outside memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codegen/codegen.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSRC 3

/* Compiles NSRC trivial kernels with standard error on fd; what the
 * library wrote there stays in fd. */
static void compile_with_stderr(int fd) {
    static const CgSource src[NSRC] = {
        {"k0", "extern \"C\" __global__ void k0(float *x) { x[0] = 0; }", {0}},
        {"k1", "extern \"C\" __global__ void k1(float *x) { x[0] = 1; }", {0}},
        {"k2", "extern \"C\" __global__ void k2(float *x) { x[0] = 2; }", {0}},
    };
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    CgBinary bins[NSRC];
    CgOptions o = {.cache_dir = "", .threads = 2};
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    int fails = cg_compile(a, d, src, NSRC, &o, bins);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(fails, 0);
    for (int i = 0; i < NSRC; i++) cg_binary_free(&bins[i]);
    arena_free(a);
}

static void test_progress_on_a_terminal(void **st) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) skip();
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    assert_true(slave >= 0);
    assert_true(isatty(slave));
    compile_with_stderr(slave);
    char buf[4096];
    size_t len = 0;
    fcntl(master, F_SETFL, O_NONBLOCK);
    for (ssize_t r; len < sizeof buf - 1 && (r = read(master, buf + len, sizeof buf - 1 - len)) > 0;) len += (size_t)r;
    buf[len] = 0;
    close(slave);
    close(master);
    /* the last count is the total, each one starts the line again, and the
     * line is blanked at the end */
    assert_non_null(strstr(buf, "\rNVRTC: compiled 3/3 modules"));
    const char *last = strstr(buf, "3/3 modules");
    assert_non_null(strstr(last, "\r          "));
    assert_int_equal(buf[len - 1], '\r');
    assert_null(strchr(buf, '\n'));
}

static void test_no_progress_elsewhere(void **st) {
    FILE *f = tmpfile();
    assert_non_null(f);
    compile_with_stderr(fileno(f));
    fseek(f, 0, SEEK_END);
    assert_int_equal(ftell(f), 0);
    fclose(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_on_a_terminal),
        cmocka_unit_test(test_no_progress_elsewhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
