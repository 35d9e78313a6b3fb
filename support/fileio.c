/* fileio.c — the one place output files are written.
 *
 * Outputs replace only what is theirs: a
 * regular file (or a new one) is written to a temporary beside it and renamed
 * over it, a symlink is followed to its final target and the target is
 * replaced, and a character device or FIFO (/dev/null, /dev/stdout's pipe) is
 * written in place: never turned into a regular file. */
#include "support/support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- outputs ----------------------------------------------------------- */

static int write_fd(int fd, const FileChunk *c, int n) {
    for (int i = 0; i < n; i++)
        for (size_t off = 0; off < c[i].len;) {
            ssize_t w = write(fd, (const char *)c[i].data + off, c[i].len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return w < 0 ? errno : EIO;
            off += (size_t)w;
        }
    return 0;
}

/* Follows symlinks from path to the file they finally name (which need not
 * exist yet). Returns a malloc'd path, or NULL with errno set. */
static char *final_target(const char *path, struct stat *sb, bool *exists) {
    char *cur = strdup(path);
    for (int hops = 0; cur; hops++) {
        if (lstat(cur, sb) != 0) {
            if (errno != ENOENT) break;
            *exists = false;
            return cur;
        }
        if (!S_ISLNK(sb->st_mode)) {
            *exists = true;
            return cur;
        }
        if (hops == 40) {
            errno = ELOOP;
            break;
        }
        char link[4096];
        ssize_t k = readlink(cur, link, sizeof link - 1);
        if (k < 0) break;
        link[k] = 0;
        const char *slash = strrchr(cur, '/');
        size_t dirlen = link[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = malloc(dirlen + (size_t)k + 1);
        if (next) {
            memcpy(next, cur, dirlen);
            memcpy(next + dirlen, link, (size_t)k + 1);
        }
        free(cur);
        cur = next;
    }
    int err = errno;
    free(cur);
    errno = err ? err : ENOMEM;
    return NULL;
}

/* Writes a new file beside target and renames it over target. */
static int write_replace(const char *target, const struct stat *old, const FileChunk *c, int n) {
    static atomic_uint counter;
    size_t len = strlen(target) + 48;
    char *tmp = malloc(len);
    if (!tmp) return ENOMEM;
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(tmp, len, "%s.tmp.%ld.%u", target, (long)getpid(), atomic_fetch_add(&counter, 1));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int err = errno;
        free(tmp);
        return err;
    }
    int err = write_fd(fd, c, n);
    if (!err && old) fchmod(fd, old->st_mode & 07777); /* keep a replaced file's permissions */
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, target) != 0) err = errno;
    if (err) unlink(tmp);
    free(tmp);
    return err;
}

int file_write(const char *path, const FileChunk *chunks, int n) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return EISDIR;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* a device or FIFO, perhaps behind a link (/dev/stdout): written in
         * place, as a shell's > would */
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        int err = fd < 0 ? errno : write_fd(fd, chunks, n);
        if (fd >= 0 && close(fd) != 0 && !err) err = errno;
        return err;
    }
    bool exists = false;
    char *target = final_target(path, &sb, &exists);
    if (!target) return errno;
    int err = exists && !S_ISREG(sb.st_mode) ? EEXIST : write_replace(target, exists ? &sb : NULL, chunks, n);
    free(target);
    return err;
}
