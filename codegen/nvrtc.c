/* nvrtc.c — NVRTC compilation to cubin, parallel, behind a disk cache.
 *
 * Each compile runs on its own NVRTC program (NVRTC is thread-safe per
 * program), so a pool of pthreads takes sources from a shared counter.
 * Diagnostics are collected per source and reported in source order after
 * the pool finishes, so output does not interleave. */
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

typedef struct {
    const CgSource *src;
    CgBinary *bins;
    char **errors; /* per source, malloc'd message or NULL */
    int n;
    atomic_int next;
    const char *arch, *dir;
    int version;
} Job;

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* The cache path of a source: DIR/<name>-<xxh128 of everything that shapes the cubin>.cubin */
static char *cache_path(const Job *j, const CgSource *s) {
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, s->source, strlen(s->source) + 1);
    XXH3_128bits_update(st, j->arch, strlen(j->arch) + 1);
    XXH3_128bits_update(st, &j->version, sizeof j->version);
    XXH3_128bits_update(st, DSCC_CUDA_INCLUDE, sizeof DSCC_CUDA_INCLUDE);
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    return fmt("%s/%s-%016llx%016llx.cubin", j->dir, s->name, (unsigned long long)h.high64, (unsigned long long)h.low64);
}

static bool read_cached(const char *path, CgBinary *b) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b->data = n > 4 ? malloc((size_t)n) : NULL;
    bool ok = b->data && fread(b->data, 1, (size_t)n, f) == (size_t)n && memcmp(b->data, "\177ELF", 4) == 0;
    fclose(f);
    if (!ok) { /* unreadable or not a cubin: compile again and overwrite */
        free(b->data);
        b->data = NULL;
        return false;
    }
    b->size = (size_t)n;
    b->from_cache = true;
    return true;
}

static void write_cached(const char *path, const CgBinary *b) {
    file_write(path, &(FileChunk){b->data, b->size}, 1); /* a cache that cannot be written is only slower */
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
        char *path = j->dir ? cache_path(j, s) : NULL;
        if (path && read_cached(path, b)) {
            free(path);
            continue;
        }
        j->errors[i] = compile_one(j, s, b);
        if (!j->errors[i] && path) write_cached(path, b);
        free(path);
    }
    return NULL;
}

int cg_compile(Arena *a, DiagEngine *d, const CgSource *src, int n, const CgOptions *o, CgBinary *bins) {
    Job j = {.src = src, .bins = bins, .n = n, .arch = o && o->arch ? o->arch : "sm_90a", .version = cg_nvrtc_version()};
    atomic_init(&j.next, 0);
    j.errors = calloc((size_t)n + 1, sizeof(char *));
    const char *dir = cg_cache_dir(a, o);
    if (dir && make_dirs(dir)) j.dir = dir;
    else if (dir) diag_warning(d, ((SrcLoc){dir, 0, 0}), "cannot create the kernel cache directory (%s); compiling without it", strerror(errno));
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
    int failed = 0;
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
