/* nvrtc.c — NVRTC compilation to cubin, parallel, behind a disk cache.
 *
 * Each compile runs on its own NVRTC program (NVRTC is thread-safe per
 * program), so a pool of pthreads takes sources from a shared counter.
 * Diagnostics are collected per source and reported in source order after
 * the pool finishes, so output does not interleave. A cache entry is served
 * only when its header (key, length, XXH64) matches: anything else is
 * compiled again and counted, never loaded. When standard error is a
 * terminal, the pool shows its progress there (modules done / total) on
 * one line it overwrites and clears at the end; elsewhere it prints none. */
#include "codegen/codegen.h"

#include <errno.h>
#include <nvrtc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#ifndef DSCC_CUDA_INCLUDE
#define DSCC_CUDA_INCLUDE "/usr/local/cuda/include"
#endif

int cg_nvrtc_version(void) {
    int major = 0, minor = 0;
    if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return -1;
    return major * 1000 + minor * 10;
}

const char *cg_cache_dir(Arena *a, const CgOptions *o) {
    if (o && o->cache_dir) return *o->cache_dir ? o->cache_dir : NULL;
    const char *env = getenv("DSCC_CACHE_DIR");
    if (env && *env) return env;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) return arena_printf(a, "%s/dscc", xdg);
    return home && *home ? arena_printf(a, "%s/.cache/dscc", home) : NULL;
}

/* mkdir -p */
static bool make_dirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return false;
            *p = '/';
        }
    return mkdir(buf, 0777) == 0 || errno == EEXIST;
}

/* What reading a cache entry found. */
typedef enum {
    ENTRY_MISS,     /* no entry: compile and store */
    ENTRY_HIT,      /* a whole entry for this key: served */
    ENTRY_BAD,      /* truncated, garbage or another key's: compile, overwrite */
    ENTRY_UNUSABLE, /* a directory, FIFO or unreadable file there: compile, leave it */
} EntryRead;

typedef struct {
    const CgSource *src;
    CgBinary *bins;
    char **errors;   /* per source, malloc'd message or NULL */
    char **unusable; /* per source, why its entry could not be used, or NULL */
    int n;
    atomic_int next;
    const char *arch, *dir;
    int version;
    bool progress;        /* stderr is a terminal: show modules done / total */
    atomic_int done;
    int shown;            /* the count on the line, under lock */
    pthread_mutex_t lock;
} Job;

/* One module more is done: "\rNVRTC: compiled 12/40 modules" on a terminal. */
static void progress_step(Job *j) {
    if (!j->progress) return;
    int k = atomic_fetch_add(&j->done, 1) + 1;
    pthread_mutex_lock(&j->lock);
    if (k > j->shown) { /* workers finish out of order: never show a count go back */
        j->shown = k;
        fprintf(stderr, "\rNVRTC: compiled %d/%d modules", k, j->n);
        fflush(stderr);
    }
    pthread_mutex_unlock(&j->lock);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* The cache key of a source: an xxh128 of everything that shapes the cubin. */
static XXH128_hash_t cache_key(const Job *j, const CgSource *s) {
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, s->source, strlen(s->source) + 1);
    XXH3_128bits_update(st, j->arch, strlen(j->arch) + 1);
    XXH3_128bits_update(st, &j->version, sizeof j->version);
    XXH3_128bits_update(st, DSCC_CUDA_INCLUDE, sizeof DSCC_CUDA_INCLUDE);
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* DIR/<name>-<key>.cubin */
static char *cache_path(const Job *j, const CgSource *s, XXH128_hash_t h) {
    return fmt("%s/%s-%016llx%016llx.cubin", j->dir, s->name, (unsigned long long)h.high64, (unsigned long long)h.low64);
}

/* An entry is a 40-byte header, then the cubin. The header holds the magic,
 * the key (so an entry copied to another key's path is refused), the
 * cubin's length (a truncated entry is refused) and its XXH64 (garbage is
 * refused); all little-endian. */
#define ENTRY_MAGIC "DSCCKC1\n"
#define ENTRY_HEADER 40
#define ENTRY_MAX ((int64_t)1 << 30)

static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void entry_header(unsigned char *h, XXH128_hash_t key, const void *data, size_t n) {
    memcpy(h, ENTRY_MAGIC, 8);
    put64(h + 8, key.high64);
    put64(h + 16, key.low64);
    put64(h + 24, n);
    put64(h + 32, XXH64(data, n, 0));
}

static EntryRead read_cached(const char *path, XXH128_hash_t key, CgBinary *b, char **why) {
    FileIn f;
    FileStatus st = file_open_in(path, ENTRY_MAX, &f);
    if (st == FILE_ERRNO && f.err == ENOENT) return ENTRY_MISS;
    if (st == FILE_TOO_BIG) return ENTRY_BAD;
    if (st != FILE_OK) {
        char buf[160];
        *why = strdup(file_status_text(st, &f, ENTRY_MAX, buf, sizeof buf));
        return ENTRY_UNUSABLE;
    }
    unsigned char *all = f.size > ENTRY_HEADER ? malloc((size_t)f.size) : NULL;
    bool ok = all && file_read_fd(f.fd, all, (size_t)f.size) == (size_t)f.size;
    close(f.fd);
    size_t n = ok ? (size_t)f.size - ENTRY_HEADER : 0;
    unsigned char want[ENTRY_HEADER];
    if (ok) entry_header(want, key, all + ENTRY_HEADER, n);
    if (!ok || memcmp(all, want, ENTRY_HEADER) != 0 || n < 4 || memcmp(all + ENTRY_HEADER, "\177ELF", 4) != 0) {
        free(all);
        return ENTRY_BAD;
    }
    memmove(all, all + ENTRY_HEADER, n);
    b->data = all;
    b->size = n;
    b->from_cache = true;
    return ENTRY_HIT;
}

bool cg_cache_read(const char *path, uint64_t key_hi, uint64_t key_lo, CgBinary *b) {
    memset(b, 0, sizeof *b);
    char *why = NULL;
    EntryRead r = read_cached(path, (XXH128_hash_t){.low64 = key_lo, .high64 = key_hi}, b, &why);
    free(why);
    return r == ENTRY_HIT;
}

static void write_cached(const char *path, XXH128_hash_t key, const CgBinary *b) {
    unsigned char h[ENTRY_HEADER];
    entry_header(h, key, b->data, b->size);
    FileChunk parts[2] = {{h, sizeof h}, {b->data, b->size}};
    file_write(path, parts, 2); /* a cache that cannot be written is only slower */
}

static char *compile_one(const Job *j, const CgSource *s, CgBinary *b) {
    nvrtcProgram prog;
    if (nvrtcCreateProgram(&prog, s->source, s->name, 0, NULL, NULL) != NVRTC_SUCCESS)
        return fmt("NVRTC could not create a program for %s", s->name);
    char arch[64];
    snprintf(arch, sizeof arch, "--gpu-architecture=%s", j->arch);
    const char *opts[] = {arch, "-std=c++17", "-default-device", "-I" DSCC_CUDA_INCLUDE, "-I" DSCC_CUDA_INCLUDE "/cccl"};
    nvrtcResult r = nvrtcCompileProgram(prog, (int)(sizeof opts / sizeof opts[0]), opts);
    size_t loglen = 0;
    nvrtcGetProgramLogSize(prog, &loglen);
    char *log = malloc(loglen + 1);
    log[0] = 0;
    if (loglen > 1) nvrtcGetProgramLog(prog, log);
    char *err = NULL;
    if (r != NVRTC_SUCCESS) {
        err = fmt("NVRTC failed to compile kernel %s (%s):\n%s", s->name, nvrtcGetErrorString(r), log);
    } else if (nvrtcGetCUBINSize(prog, &b->size) != NVRTC_SUCCESS || !(b->data = malloc(b->size)) ||
               nvrtcGetCUBIN(prog, b->data) != NVRTC_SUCCESS) {
        err = fmt("NVRTC produced no cubin for %s (is %s a real architecture?)", s->name, j->arch);
    }
    free(log);
    nvrtcDestroyProgram(&prog);
    return err;
}

static void *worker(void *arg) {
    Job *j = arg;
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) {
        const CgSource *s = &j->src[i];
        CgBinary *b = &j->bins[i];
        memset(b, 0, sizeof *b);
        XXH128_hash_t key = j->dir ? cache_key(j, s) : (XXH128_hash_t){0, 0};
        char *path = j->dir ? cache_path(j, s, key) : NULL;
        EntryRead got = path ? read_cached(path, key, b, &j->unusable[i]) : ENTRY_UNUSABLE;
        if (got == ENTRY_HIT) {
            free(path);
            progress_step(j);
            continue;
        }
        b->cache_rejected = got == ENTRY_BAD;
        j->errors[i] = compile_one(j, s, b);
        if (!j->errors[i] && got != ENTRY_UNUSABLE) write_cached(path, key, b);
        if (j->unusable[i] && path) {
            char *msg = fmt("kernel cache entry %s: %s; compiled without the cache", path, j->unusable[i]);
            free(j->unusable[i]);
            j->unusable[i] = msg;
        }
        free(path);
        progress_step(j);
    }
    return NULL;
}

/* The cache directory, made if missing; NULL (after one warning) when it
 * cannot be used, and the compile goes on without the cache. */
static const char *usable_dir(DiagEngine *d, const char *dir) {
    if (!dir) return NULL;
    struct stat sb;
    if (!make_dirs(dir)) {
        diag_warning(d, ((SrcLoc){dir, 0, 0}), "cannot create the kernel cache directory (%s); compiling without it", strerror(errno));
        return NULL;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        diag_warning(d, ((SrcLoc){dir, 0, 0}), "the kernel cache directory is not a directory; compiling without it");
        return NULL;
    }
    return dir;
}

int cg_compile(Arena *a, DiagEngine *d, const CgSource *src, int n, const CgOptions *o, CgBinary *bins) {
    Job j = {.src = src, .bins = bins, .n = n, .arch = o && o->arch ? o->arch : "sm_90a", .version = cg_nvrtc_version()};
    atomic_init(&j.next, 0);
    atomic_init(&j.done, 0);
    j.progress = n > 0 && isatty(STDERR_FILENO);
    pthread_mutex_init(&j.lock, NULL);
    j.errors = calloc((size_t)n + 1, sizeof(char *));
    j.unusable = calloc((size_t)n + 1, sizeof(char *));
    j.dir = usable_dir(d, cg_cache_dir(a, o));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int t = o && o->threads > 0 ? o->threads : cpus > 0 ? (int)cpus : 1;
    if (t > n) t = n;
    if (t > 64) t = 64;
    pthread_t tid[64];
    int started = 0;
    for (int i = 1; i < t; i++)
        if (pthread_create(&tid[started], NULL, worker, &j) == 0) started++;
    worker(&j);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&j.lock);
    if (j.progress) { /* clear the progress line before any diagnostic or summary */
        fprintf(stderr, "\r%*s\r", 64, "");
        fflush(stderr);
    }
    int failed = 0, unusable = 0;
    for (int i = 0; i < n; i++) /* one warning for the entries that were in the way */
        if (j.unusable[i] && unusable++ == 0) diag_warning(d, ((SrcLoc){0}), "%s", j.unusable[i]);
    if (unusable > 1) diag_note(d, ((SrcLoc){j.dir, 0, 0}), "and %d more kernel cache entries that are not regular files", unusable - 1);
    for (int i = 0; i < n; i++) free(j.unusable[i]);
    free(j.unusable);
    for (int i = 0; i < n; i++)
        if (j.errors[i]) {
            diag_error(d, src[i].loc, "%s", j.errors[i]);
            free(j.errors[i]);
            failed++;
        }
    free(j.errors);
    return failed;
}

void cg_binary_free(CgBinary *b) {
    free(b->data);
    b->data = NULL;
    b->size = 0;
}
