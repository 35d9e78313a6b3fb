/* testutil_gpu.c — see testutil.h ("a module on device 0"); built only
 * with codegen (NVRTC), which these helpers compile with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include "runtime/cuda.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TuCase tu_module_open(TuModule *m, const CgSource *src, bool emulated_only) {
    *m = (TuModule){.a = arena_new()};
    m->d = diag_new(m->a, stderr);
    m->gpu = rt_cuda_open(m->d, 0);
    if (!m->gpu || rt_cuda_sm(m->gpu) < 90) return TU_CASE_NO_HOPPER;
    m->emulated = strstr(rt_cuda_device_name(m->gpu), "mulated") != NULL;
    if (emulated_only && !m->emulated) return TU_CASE_NOT_EMULATED;
    CgOptions o = {.cache_dir = getenv("DSCC_CACHE_DIR") ? NULL : ""}; /* the test's cache (ctest's), else none */
    return cg_compile(m->a, m->d, src, 1, &o, &m->bin) == 0 ? TU_CASE_OK : TU_CASE_ERROR;
}

void tu_module_close(TuModule *m) {
    rt_cuda_close(m->gpu);
    cg_binary_free(&m->bin);
    arena_free(m->a);
    *m = (TuModule){0};
}

typedef struct {
    int (*fn)(void *);
    void *arg;
    const char *path;
} ChildCall;

/* In the child: stderr into the file, then the call. */
static int child_call(void *p) {
    const ChildCall *c = p;
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 2) < 0) return 125;
    return c->fn(c->arg);
}

int tu_child_stderr(int (*fn)(void *), void *arg, const char *dir, const char **err) {
    static char text[8192];
    char path[512];
    snprintf(path, sizeof path, "%s/child%d.err", dir, (int)getpid());
    ChildCall c = {fn, arg, path};
    int rc = tu_wait(tu_fork(child_call, &c));
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = 0;
    if (f) fclose(f);
    unlink(path);
    *err = text;
    return rc;
}
