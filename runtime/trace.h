/* trace.h — Chrome trace JSON (chrome://tracing, Perfetto) written as a
 * run goes, and NVTX ranges for Nsight Systems.
 *
 * RtTrace streams: each step's events are written (cJSON, one object a
 * line) when the step ends and then freed, so memory stays that of one
 * step however long a generation runs. At most max_steps steps are
 * written; later steps are counted, not traced, and the metadata closing
 * the file ("otherData") says so. Times are microseconds of the host's
 * monotonic clock from the first step. Several executors (the
 * draft and verify models of speculative decoding) may share one.
 *
 * rt_nvtx_push / rt_nvtx_pop mark ranges on the calling thread through the
 * header-only nvtx3 of the CUDA toolkit: they cost a check of a function
 * pointer when no tool is attached, and nothing in a build without nvtx3
 * (DSCC_HAVE_NVTX undefined). */
#ifndef DSCC_RUNTIME_TRACE_H
#define DSCC_RUNTIME_TRACE_H

#include "support/support.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

#define RT_TRACE_STEPS 256 /* steps written by default */

typedef struct RtTrace RtTrace;

/* Creates (truncates) path and writes the file's head; max_steps < 1 takes
 * RT_TRACE_STEPS. NULL after reporting (the path cannot be written). */
RtTrace *rt_trace_open(const char *path, int max_steps, DiagEngine *d);
/* Writes the metadata and the file's end, closes, frees (NULL ok). A
 * failed write is a warning: the run it traced goes on. */
void rt_trace_close(RtTrace *t, DiagEngine *d);

/* Microseconds since the first rt_trace_begin_step (before it: since rt_trace_open). */
double rt_trace_now_us(const RtTrace *t);
/* Whether the step about to run is traced: true for the first max_steps
 * steps, then false (and the step is counted as left out). */
bool rt_trace_begin_step(RtTrace *t);
/* True the first time it is asked: the caller writes the process and
 * thread names. */
bool rt_trace_claim_names(RtTrace *t);
/* Writes the events of a cJSON array (each an object; the array is
 * deleted) and flushes. False after a warning (the trace stops there). */
bool rt_trace_write(RtTrace *t, cJSON *events, DiagEngine *d);

/* An event {"name", "ph", "pid", "tid"} (cJSON_Delete or an array owns it). */
cJSON *rt_trace_event(const char *name, const char *ph, int pid, int tid);

/* Whether this build marks NVTX ranges. */
bool rt_nvtx_built(void);
void rt_nvtx_push(const char *name);
void rt_nvtx_pop(void);

#endif
