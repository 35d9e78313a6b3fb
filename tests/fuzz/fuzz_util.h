/* fuzz_util.h — shared by the harnesses whose code under test reads files:
 * a private temporary folder per process (removed at exit), emptied before
 * each input, and the split of one input into several files.
 *
 * Multi-file inputs are the parts of the input between lines holding only
 * FZ_SEP ("\n#---#\n" separates part i from part i+1), so a seed is a
 * readable text file and a mutation that keeps the separators keeps the
 * layout. Header-only: each harness is one program of its own. */
#ifndef DSCC_FUZZ_UTIL_H
#define DSCC_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FZ_SEP "\n#---#\n"
#define FZ_MAX_PARTS 8

typedef struct {
    const uint8_t *data;
    size_t size;
} FzPart;

static char fz_dir_path[4096];

/* Where the harness's diagnostics go: stderr when FUZZ_DIAG is set (to see
 * why a corpus entry is refused), else nowhere. */
static inline FILE *fz_diag_out(void) { return getenv("FUZZ_DIAG") ? stderr : NULL; }

/* Removes every entry of the private folder (the harnesses make no subfolders). */
static inline void fz_clear(void) {
    DIR *dir = opendir(fz_dir_path);
    if (!dir) return;
    struct dirent *e;
    char path[8192];
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", fz_dir_path, e->d_name);
        if (unlink(path) != 0) rmdir(path);
    }
    closedir(dir);
}

static inline void fz_remove_dir(void) {
    fz_clear();
    rmdir(fz_dir_path);
}

/* The private folder, created on first use and emptied on every call. */
static inline const char *fz_dir(void) {
    if (!fz_dir_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fz_dir_path, sizeof fz_dir_path, "%s/dscc-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(fz_dir_path)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fz_remove_dir);
    }
    fz_clear();
    return fz_dir_path;
}

/* Writes the bytes to DIR/name; returns the path (static buffer per slot). */
static inline const char *fz_write(const char *name, const uint8_t *data, size_t size) {
    static char paths[FZ_MAX_PARTS + 2][8192];
    static int slot;
    char *path = paths[slot++ % (FZ_MAX_PARTS + 2)];
    snprintf(path, 8192, "%s/%s", fz_dir_path, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: cannot write the input file");
        abort();
    }
    return path;
}

/* Splits data at each FZ_SEP into at most max parts (the last takes the
 * rest); returns the number of parts (at least 1). */
static inline int fz_split(const uint8_t *data, size_t size, FzPart *parts, int max) {
    const size_t seplen = sizeof FZ_SEP - 1;
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; n + 1 < max && i + seplen <= size; i++)
        if (memcmp(data + i, FZ_SEP, seplen) == 0) {
            parts[n++] = (FzPart){data + start, i - start};
            start = i + seplen;
            i = start - 1;
        }
    parts[n++] = (FzPart){data + start, size - start};
    return n;
}

#endif
