/* trace.c — the streamed Chrome trace and the NVTX ranges (see trace.h). */
#define _POSIX_C_SOURCE 200809L
#include "runtime/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef DSCC_HAVE_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

struct RtTrace {
    FILE *f;
    char *path;
    double t0;        /* the monotonic clock at open, then at the first step, in us */
    int max_steps;
    int steps, left_out; /* steps written, steps not traced past max_steps */
    long events;
    bool named, failed, started;
};

static double mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

RtTrace *rt_trace_open(const char *path, int max_steps, DiagEngine *d) {
    FILE *f = fopen(path, "w");
    if (!f) {
        diag_error(d, (SrcLoc){0}, "cannot write the trace '%s': %s", path, strerror(errno));
        return NULL;
    }
    RtTrace *t = calloc(1, sizeof *t);
    char *p = strdup(path);
    if (!t || !p || fputs("{\"traceEvents\":[\n", f) == EOF) {
        diag_error(d, (SrcLoc){0}, "cannot write the trace '%s': %s", path, t && p ? strerror(errno) : "out of memory");
        fclose(f);
        free(t);
        free(p);
        return NULL;
    }
    t->f = f;
    t->path = p;
    t->t0 = mono_us();
    t->max_steps = max_steps >= 1 ? max_steps : RT_TRACE_STEPS;
    return t;
}

double rt_trace_now_us(const RtTrace *t) { return mono_us() - t->t0; }

bool rt_trace_begin_step(RtTrace *t) {
    if (!t->steps && !t->left_out && !t->started) t->t0 = mono_us(); /* the time origin: the first step */
    t->started = true;
    if (t->steps < t->max_steps && !t->failed) return true;
    t->left_out++;
    return false;
}

bool rt_trace_claim_names(RtTrace *t) {
    bool first = !t->named;
    t->named = true;
    return first;
}

static void trace_fail(RtTrace *t, DiagEngine *d, int err) {
    if (!t->failed) diag_warning(d, (SrcLoc){0}, "cannot write the trace '%s': %s", t->path, strerror(err ? err : EIO));
    t->failed = true;
}

bool rt_trace_write(RtTrace *t, cJSON *events, DiagEngine *d) {
    bool ok = !t->failed;
    int n = cJSON_GetArraySize(events);
    for (int i = 0; i < n && ok; i++) {
        char *text = cJSON_PrintUnformatted(cJSON_GetArrayItem(events, i));
        ok = text && fprintf(t->f, "%s%s", t->events ? ",\n" : "", text) >= 0;
        if (ok) t->events++;
        cJSON_free(text);
        if (!ok) trace_fail(t, d, text ? errno : ENOMEM);
    }
    cJSON_Delete(events);
    if (ok && fflush(t->f) != 0) {
        trace_fail(t, d, errno);
        ok = false;
    }
    if (ok) t->steps++;
    return ok;
}

cJSON *rt_trace_event(const char *name, const char *ph, int pid, int tid) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "ph", ph);
    cJSON_AddNumberToObject(e, "pid", pid);
    cJSON_AddNumberToObject(e, "tid", tid);
    return e;
}

/* The file's end: otherData says how many steps were traced and, when
 * max_steps was reached, which were left out and how to keep them. */
static cJSON *trace_meta(const RtTrace *t) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "tool", "dscc " DSCC_VERSION);
    cJSON_AddStringToObject(m, "clock", "us of the host's monotonic clock from the first step; a step starts "
                                        "when its first launch is made, its kernels at their CUDA event times in it");
    cJSON_AddNumberToObject(m, "steps_traced", t->steps);
    cJSON_AddNumberToObject(m, "steps_left_out", t->left_out);
    cJSON_AddNumberToObject(m, "trace_steps", t->max_steps);
    if (t->left_out) {
        char note[200];
        snprintf(note, sizeof note, "capped: only the first %d steps are traced, the %d later ones are not (raise --trace-steps)",
                 t->max_steps, t->left_out);
        cJSON_AddStringToObject(m, "note", note);
    }
    return m;
}

void rt_trace_close(RtTrace *t, DiagEngine *d) {
    if (!t) return;
    cJSON *m = trace_meta(t);
    char *text = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    if (!t->failed && (!text || fprintf(t->f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":%s}\n", text) < 0))
        trace_fail(t, d, text ? errno : ENOMEM);
    cJSON_free(text);
    if (fclose(t->f) != 0 && !t->failed) trace_fail(t, d, errno);
    free(t->path);
    free(t);
}

#ifdef DSCC_HAVE_NVTX
bool rt_nvtx_built(void) { return true; }
void rt_nvtx_push(const char *name) { nvtxRangePushA(name); }
void rt_nvtx_pop(void) { nvtxRangePop(); }
#else
bool rt_nvtx_built(void) { return false; }
void rt_nvtx_push(const char *name) { (void)name; }
void rt_nvtx_pop(void) {}
#endif
