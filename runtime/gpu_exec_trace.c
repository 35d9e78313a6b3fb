/* gpu_exec_trace.c — the CUDA backend's Chrome trace (see
 * gpu_exec_internal.h): each step's name, and the step as trace events
 * placed by the CUDA events recorded around its kernels. */
#ifdef DSCC_HAVE_NVRTC
#include "runtime/gpu_exec_internal.h"

#include "runtime/gpu_trace.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/* ---- the Chrome trace: every step, as it ends ---------------------------- */

/* ms from the step's first event to ev (0 when it cannot be read). */
static double trace_at(GpuExec *x, RtEvent *ev, DiagEngine *d) {
    float ms = 0;
    return rt_cuda_event_ms(x->cu, d, x->step[0], ev, &ms) && ms > 0 ? ms : 0;
}

/* Metadata: the process (device, rank) and the threads (streams, steps). */
static void trace_names(GpuExec *x, cJSON *evs, int pid) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s (rank %d)", rt_cuda_device_name(x->cu), pid);
    cJSON *e = rt_trace_event("process_name", "M", pid, 0);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(e, "args"), "name", buf);
    cJSON_AddItemToArray(evs, e);
    static const char *const tn[RT_CUDA_STREAMS + 1] = {"stream 0 (compute)", "stream 1 (communication)", "steps"};
    for (int t = 0; t <= RT_CUDA_STREAMS; t++) {
        e = rt_trace_event("thread_name", "M", pid, t);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(e, "args"), "name", tn[t]);
        cJSON_AddItemToArray(evs, e);
    }
}

/* The step's name ("prefill", "decode N", "LABEL prefill", "LABEL N";
 * "step N" for a graph without a cache), before it runs. */
void gx_step_name(GpuExec *x, char *buf, size_t n) {
    if (x->sym_t >= 0 && x->len == 0) x->decodes = 0;
    const char *lb = x->trace_label;
    if (x->sym_t < 0) snprintf(buf, n, "%s%sstep %d", lb ? lb : "", lb ? " " : "", x->runs + 1);
    else if (x->len == 0) snprintf(buf, n, "%s%sprefill", lb ? lb : "", lb ? " " : "");
    else snprintf(buf, n, "%s %d", lb ? lb : "decode", x->decodes + 1);
}

/* The step just run as Chrome trace events, written to x->trace: the step
 * a slice on tid RT_CUDA_STREAMS from t0_us (the host clock when its first
 * launch was made: the GPU is idle between steps, each ends with a
 * synchronising read) for its GPU time; each launched kernel an "X" slice
 * on its stream's tid, from the event recorded on that stream just before
 * it to the next one recorded on the same stream (the step's end event
 * for its last kernel), placed by those events in the step, so the two
 * streams' kernels overlap as they ran. A failed write is a warning. */
void gx_write_trace(GpuExec *x, const int64_t *sym, const char *name, double t0_us, DiagEngine *d) {
    int pid = x->dist.size > 1 ? x->dist.rank : 0, nk = x->p->nkernels;
    cJSON *evs = cJSON_CreateArray();
    if (rt_trace_claim_names(x->trace)) trace_names(x, evs, pid);
    int64_t S = x->sym_s >= 0 ? sym[x->sym_s] : 1, B = x->sym_b >= 0 ? sym[x->sym_b] : 1;
    cJSON *e = rt_trace_event(name, "X", pid, RT_CUDA_STREAMS), *a;
    cJSON_AddStringToObject(e, "cat", "step");
    cJSON_AddNumberToObject(e, "ts", t0_us);
    cJSON_AddNumberToObject(e, "dur", x->last_ms * 1e3);
    cJSON_AddItemToObject(e, "args", a = cJSON_CreateObject());
    cJSON_AddNumberToObject(a, "batch", (double)B);
    cJSON_AddNumberToObject(a, "tokens", (double)(B * S));
    cJSON_AddNumberToObject(a, "cached", (double)x->len);
    cJSON_AddNumberToObject(a, "launches", x->launches);
    cJSON_AddItemToArray(evs, e);
    double end_all = trace_at(x, x->ev[nk], d);
    for (int k = 0; k < nk; k++) {
        if (not_launched(x, k)) continue; /* its values are the first run's, or this step does not use them */
        int s = x->kstream[k], j = k + 1;
        while (j < nk && (x->kstream[j] != s || not_launched(x, j))) j++;
        double t0 = trace_at(x, x->ev[k], d), t1 = j < nk ? trace_at(x, x->ev[j], d) : end_all, dur = (t1 > t0 ? t1 - t0 : 0) * 1e3;
        e = rt_trace_event(x->p->kernels[k].name, "X", pid, s);
        cJSON_AddStringToObject(e, "cat", x->comm_node && x->comm_node[k] >= 0 ? "communication" : "kernel");
        cJSON_AddNumberToObject(e, "ts", t0_us + t0 * 1e3);
        cJSON_AddNumberToObject(e, "dur", dur);
        cJSON_AddItemToObject(e, "args", gpu_trace_kernel_args(x->g, x->p, k, sym, dur));
        cJSON_AddItemToArray(evs, e);
    }
    rt_trace_write(x->trace, evs, d);
}
#endif
