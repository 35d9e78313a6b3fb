/* test_fileio.c — support/fileio.c: outputs replace only what is theirs (a
 * regular file atomically, a symlink's target and not the link, a FIFO and a
 * character device written in place), and inputs are regular files of
 * bounded size, opened without blocking on a FIFO that has no writer. Every
 * test works inside its own mkdtemp folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "support/support.h"
#include "tests/unit/testutil.h"

typedef struct {
    char dir[64];
} Tmp;

static void tmp_make(Tmp *t) {
    snprintf(t->dir, sizeof t->dir, "/tmp/dscc_fileio_XXXXXX");
    assert_non_null(mkdtemp(t->dir));
}

static char *tmp_path(const Tmp *t, const char *name) {
    static char buf[4][128];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 128, "%s/%s", t->dir, name);
    return p;
}

static void tmp_remove(Tmp *t) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* A fresh random text, so no test passes on stale content. */
static void random_text(char *buf, size_t n) {
    static unsigned seed;
    if (!seed) seed = (unsigned)getpid() * 2654435761u;
    for (size_t i = 0; i + 1 < n; i++) buf[i] = (char)('a' + (seed = seed * 1103515245u + 12345u) % 26);
    buf[n - 1] = 0;
}

static int write_text(const char *path, const char *text) {
    return file_write(path, &(FileChunk){text, strlen(text)}, 1);
}

static void test_write_regular_atomic(void **state) {
    (void)state;
    Tmp t;
    tmp_make(&t);
    char a[100], b[50];
    random_text(a, sizeof a);
    random_text(b, sizeof b);
    const char *p = tmp_path(&t, "out.txt");
    FileChunk two[2] = {{a, 40}, {a + 40, strlen(a) - 40}};
    assert_int_equal(file_write(p, two, 2), 0);
    tu_expect_file(p, a);
    /* a replaced file keeps its permissions and leaves no temporary behind */
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(write_text(p, b), 0);
    tu_expect_file(p, b);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", t.dir);
    assert_int_equal(system(cmd), 0);
    /* a directory is not replaced */
    assert_int_equal(mkdir(tmp_path(&t, "sub"), 0700), 0);
    assert_int_equal(write_text(tmp_path(&t, "sub"), b), EISDIR);
    assert_int_equal(stat(tmp_path(&t, "sub"), &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    tmp_remove(&t);
}

static void test_write_through_symlink(void **state) {
    (void)state;
    Tmp t;
    tmp_make(&t);
    char a[80];
    random_text(a, sizeof a);
    assert_int_equal(write_text(tmp_path(&t, "target"), "old"), 0);
    assert_int_equal(symlink("target", tmp_path(&t, "link")), 0);
    /* a chain of two links, one of them absolute */
    assert_int_equal(symlink(tmp_path(&t, "link"), tmp_path(&t, "link2")), 0);
    assert_int_equal(write_text(tmp_path(&t, "link2"), a), 0);
    struct stat sb;
    assert_int_equal(lstat(tmp_path(&t, "link"), &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(lstat(tmp_path(&t, "link2"), &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    tu_expect_file(tmp_path(&t, "target"), a);
    /* a dangling link gets its target created */
    assert_int_equal(symlink("made", tmp_path(&t, "dangling")), 0);
    assert_int_equal(write_text(tmp_path(&t, "dangling"), a), 0);
    assert_int_equal(lstat(tmp_path(&t, "dangling"), &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    tu_expect_file(tmp_path(&t, "made"), a);
    /* a loop of links is an error, not a hang */
    assert_int_equal(symlink("loop_b", tmp_path(&t, "loop_a")), 0);
    assert_int_equal(symlink("loop_a", tmp_path(&t, "loop_b")), 0);
    assert_int_equal(write_text(tmp_path(&t, "loop_a"), a), ELOOP);
    tmp_remove(&t);
}

typedef struct {
    const char *path;
    char got[8192];
    size_t n;
} Reader;

static void *read_fifo(void *arg) {
    Reader *r = arg;
    int fd = open(r->path, O_RDONLY);
    for (ssize_t k; fd >= 0 && (k = read(fd, r->got + r->n, sizeof r->got - 1 - r->n)) > 0;) r->n += (size_t)k;
    if (fd >= 0) close(fd);
    return NULL;
}

static void test_write_fifo_in_place(void **state) {
    (void)state;
    Tmp t;
    tmp_make(&t);
    char a[5000];
    random_text(a, sizeof a);
    Reader r = {.path = tmp_path(&t, "fifo")};
    assert_int_equal(mkfifo(r.path, 0600), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_fifo, &r), 0);
    assert_int_equal(write_text(r.path, a), 0);
    pthread_join(th, NULL);
    assert_int_equal(r.n, strlen(a));
    assert_memory_equal(r.got, a, r.n);
    struct stat sb;
    assert_int_equal(lstat(r.path, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    tmp_remove(&t);
}

/* A null device made in the folder (root only; skipped elsewhere) stays a
 * device: the fix for `-o /dev/null` turning /dev/null into a file. */
static void test_write_char_device_in_place(void **state) {
    (void)state;
    Tmp t;
    tmp_make(&t);
    const char *p = tmp_path(&t, "null");
    if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) != 0) {
        tmp_remove(&t);
        skip();
    }
    assert_int_equal(write_text(p, "discarded"), 0);
    struct stat sb;
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    assert_int_equal(major(sb.st_rdev), 1);
    assert_int_equal(minor(sb.st_rdev), 3);
    tmp_remove(&t);
}

/* Inputs: a FIFO with no writer, a directory and a device are refused at
 * once (the open never blocks), a file over the limit is refused, a regular
 * file is read whole. */
static void test_open_input_checks(void **state) {
    (void)state;
    Tmp t;
    tmp_make(&t);
    FileIn f;
    assert_int_equal(mkfifo(tmp_path(&t, "fifo"), 0600), 0);
    assert_int_equal(file_open_in(tmp_path(&t, "fifo"), -1, &f), FILE_NOT_REGULAR);
    assert_int_equal(f.fd, -1);
    char why[160];
    assert_string_equal(file_status_text(FILE_NOT_REGULAR, &f, -1, why, sizeof why), "is not a regular file (a FIFO)");
    assert_int_equal(file_open_in(t.dir, -1, &f), FILE_NOT_REGULAR);
    assert_string_equal(file_status_text(FILE_NOT_REGULAR, &f, -1, why, sizeof why), "is not a regular file (a directory)");
    assert_int_equal(file_open_in("/dev/zero", -1, &f), FILE_NOT_REGULAR);
    assert_int_equal(file_open_in(tmp_path(&t, "missing"), -1, &f), FILE_ERRNO);
    assert_int_equal(f.err, ENOENT);
    char a[300];
    random_text(a, sizeof a);
    assert_int_equal(write_text(tmp_path(&t, "text"), a), 0);
    assert_int_equal(file_open_in(tmp_path(&t, "text"), 298, &f), FILE_TOO_BIG);
    assert_int_equal(f.size, 299);
    assert_string_equal(file_status_text(FILE_TOO_BIG, &f, 2 << 20, why, sizeof why), "is 299 bytes, over the limit of 2 MiB for this input");
    assert_int_equal(file_open_in(tmp_path(&t, "text"), 299, &f), FILE_OK);
    char back[400] = {0};
    assert_int_equal(file_read_fd(f.fd, back, sizeof back), 299);
    close(f.fd);
    assert_string_equal(back, a);
    /* read_file_text: the whole text, or an error naming the file */
    Arena *ar = arena_new();
    DiagEngine *d = diag_new(ar, NULL);
    size_t len;
    char *txt = read_file_text(ar, d, tmp_path(&t, "text"), &len);
    assert_non_null(txt);
    assert_int_equal(len, 299);
    assert_string_equal(txt, a);
    assert_null(read_file_text(ar, d, tmp_path(&t, "fifo"), &len));
    assert_int_equal(diag_error_count(d), 1);
    assert_string_equal(diag_first(d)->loc.file, tmp_path(&t, "fifo"));
    assert_string_equal(diag_first(d)->msg, "is not a regular file (a FIFO)");
    assert_int_equal(truncate(tmp_path(&t, "text"), FILE_TEXT_MAX + 1), 0);
    assert_null(read_file_text(ar, d, tmp_path(&t, "text"), &len));
    assert_int_equal(diag_error_count(d), 2);
    arena_free(ar);
    tmp_remove(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_regular_atomic),
        cmocka_unit_test(test_write_through_symlink),
        cmocka_unit_test(test_write_fifo_in_place),
        cmocka_unit_test(test_write_char_device_in_place),
        cmocka_unit_test(test_open_input_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
