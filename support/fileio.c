/* fileio.c — the one place files are opened for input and written as output.
 *
 * Inputs must be regular files: they are opened with O_NONBLOCK (so a FIFO
 * with no writer cannot hang the open) and fstat()ed before a byte is read,
 * and callers give a size limit. Outputs replace only what is theirs: a
 * regular file (or a new one) is written to a temporary beside it and renamed
 * over it, a symlink is followed to its final target and the target is
 * replaced, and a character device or FIFO (/dev/null, /dev/stdout's pipe) is
 * written in place: never turned into a regular file. */
#include "support/support.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- inputs ------------------------------------------------------------ */

static const char *kind_name(unsigned mode) {
    switch (mode & S_IFMT) {
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    default: return "not a plain file";
    }
}

FileStatus file_open_in(const char *path, int64_t max, FileIn *f) {
    memset(f, 0, sizeof *f);
    f->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    if (f->fd < 0 || fstat(f->fd, &sb) != 0) {
        f->err = errno;
        if (f->fd >= 0) close(f->fd);
        f->fd = -1;
        return FILE_ERRNO;
    }
    f->mode = (unsigned)sb.st_mode;
    f->size = (int64_t)sb.st_size;
    FileStatus st = !S_ISREG(sb.st_mode) ? FILE_NOT_REGULAR : max >= 0 && f->size > max ? FILE_TOO_BIG : FILE_OK;
    if (st != FILE_OK) {
        close(f->fd);
        f->fd = -1;
        return st;
    }
    /* reads of a regular file never block; clear the flag all the same */
    int fl = fcntl(f->fd, F_GETFL);
    if (fl >= 0) fcntl(f->fd, F_SETFL, fl & ~O_NONBLOCK);
    return FILE_OK;
}

const char *file_status_text(FileStatus st, const FileIn *f, int64_t max, char *buf, size_t n) {
    switch (st) {
    case FILE_OK: snprintf(buf, n, "ok"); break;
    case FILE_ERRNO: snprintf(buf, n, "cannot read: %s", strerror(f->err)); break;
    case FILE_NOT_REGULAR: snprintf(buf, n, "is not a regular file (%s)", kind_name(f->mode)); break;
    case FILE_TOO_BIG:
        snprintf(buf, n, "is %" PRId64 " bytes, over the limit of %" PRId64 " MiB for this input", f->size, max >> 20);
        break;
    }
    return buf;
}

int file_open_checked(DiagEngine *d, const char *path, int64_t max, int64_t *size) {
    FileIn f;
    FileStatus st = file_open_in(path, max, &f);
    if (st != FILE_OK) {
        char why[160];
        diag_error(d, ((SrcLoc){path, 0, 0}), "%s", file_status_text(st, &f, max, why, sizeof why));
        return -1;
    }
    if (size) *size = f.size;
    return f.fd;
}

size_t file_read_fd(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

char *read_file_text(Arena *a, DiagEngine *d, const char *path, size_t *len_out) {
    const char *name = arena_strdup(a, path);
    int64_t size;
    int fd = file_open_checked(d, name, FILE_TEXT_MAX, &size);
    if (fd < 0) return NULL;
    char *text = arena_alloc(a, (size_t)size + 1);
    errno = 0;
    size_t got = file_read_fd(fd, text, (size_t)size);
    int err = errno;
    close(fd);
    if (got < (size_t)size && err) {
        diag_error(d, ((SrcLoc){name, 0, 0}), "cannot read: %s", strerror(err));
        return NULL;
    }
    text[got] = 0; /* a file that shrank since fstat is read as it is now */
    if (len_out) *len_out = got;
    return text;
}

char *read_stream_text(Arena *a, DiagEngine *d, FILE *f, const char *name, size_t *len_out) {
    StrBuf sb;
    sb_init(&sb);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && sb.len <= (size_t)FILE_TEXT_MAX) sb_putn(&sb, buf, n);
    bool bad = ferror(f), big = sb.len > (size_t)FILE_TEXT_MAX;
    int err = errno;
    char *text = NULL;
    if (big) diag_error(d, ((SrcLoc){name, 0, 0}), "is over the limit of %lld MiB for this input", (long long)(FILE_TEXT_MAX >> 20));
    else if (bad) diag_error(d, ((SrcLoc){name, 0, 0}), "cannot read: %s", strerror(err));
    else text = arena_strndup(a, sb.data ? sb.data : "", sb.len);
    if (text && len_out) *len_out = sb.len;
    sb_free(&sb);
    return text;
}

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
