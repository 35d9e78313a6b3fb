/* test_emu_nccl.c — the emulated NCCL (emu_nccl.c) under runtime/nccl.c,
 * with ranks as forked processes on emulated CUDA devices (emu_cuda.c).
 * Run by CTest with LD_LIBRARY_PATH at build/emu and DSCC_EMU_NCCL_DIR at
 * a folder of the build tree (this test makes its own directory inside it
 * and checks that every rendezvous was removed); exits 77 without them.
 *
 * Checked: all-to-allv of bytes with uneven and zero blocks, three rounds,
 * on 2 and 4 ranks, every byte and the guard after the blocks; a send that
 * must read what a memset queued before it on the same stream wrote, and a
 * copy and a memset queued after a receive that must see the bytes it
 * brought (the stream is held back by a peer that sends only when told);
 * two streams ordered by an event and a group whose send and receive are on
 * different streams; a CUDA graph holding a grouped exchange and a copy on
 * a second stream that joined the capture, launched three times;
 * all-reduce on 4 ranks in bf16 (sum, in place), f16 (max), i32 (min) and
 * f32 (average), exact; a receive larger than the matching send
 * (ncclInvalidUsage, both sizes named); a rank that exits mid-exchange
 * (the others fail within seconds with ncclRemoteError naming it, through
 * the emulator alone: no heartbeat); and a deadline whose abort (the
 * watchdog's thread) frees the stream held by a receive that never comes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/nccl.h"

#define MAXR 4

static char g_dir[4096]; /* this run's rendezvous folder */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    int failed;
    double seconds; /* how long the provoked failure took */
    char msg[700];
} Report;

typedef enum { MODE_A2AV, MODE_ORDER, MODE_EVENTS, MODE_GRAPH, MODE_REDUCE, MODE_MISMATCH, MODE_DEATH, MODE_ABORT } Mode;

typedef struct { /* the driver calls runtime/cuda.c does not make */
    int (*stream_create)(void **, unsigned);
    int (*memset_async)(RtDevPtr, unsigned char, size_t, void *);
    int (*dtoh_async)(void *, RtDevPtr, size_t, void *);
    int (*dtod_async)(RtDevPtr, RtDevPtr, size_t, void *);
    int (*event_create)(void **, unsigned);
    int (*event_record)(void *, void *);
    int (*stream_wait_event)(void *, void *, unsigned);
    int (*stream_query)(void *);
    int (*event_query)(void *);
    int (*stream_sync)(void *);
} Drv;

typedef struct {
    Mode mode;
    int rank, size;
    RtNcclId id;
    int go_in, go_out; /* rank 0 tells rank 1 when to send */
    Arena *a;
    DiagEngine *d;
    RtCuda *cu;
    RtNccl *n;
    RtNcclComm *c;
    Drv drv;
    Report rep;
} Rank;

static bool flunk(Rank *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool flunk(Rank *k, const char *fmt, ...) {
    if (k->rep.failed) return false;
    k->rep.failed = 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(k->rep.msg, sizeof k->rep.msg, fmt, ap);
    va_end(ap);
    const Diag *e = diag_first(k->d);
    if (e && n > 0 && (size_t)n < sizeof k->rep.msg) snprintf(k->rep.msg + n, sizeof k->rep.msg - (size_t)n, ": %s", e->msg);
    return false;
}

static bool load_drv(Rank *k) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) return flunk(k, "libcuda.so.1 is not loaded");
    *(void **)&k->drv.stream_create = dlsym(lib, "cuStreamCreate");
    *(void **)&k->drv.memset_async = dlsym(lib, "cuMemsetD8Async");
    *(void **)&k->drv.dtoh_async = dlsym(lib, "cuMemcpyDtoHAsync_v2");
    *(void **)&k->drv.dtod_async = dlsym(lib, "cuMemcpyDtoDAsync_v2");
    *(void **)&k->drv.event_create = dlsym(lib, "cuEventCreate");
    *(void **)&k->drv.event_record = dlsym(lib, "cuEventRecord");
    *(void **)&k->drv.stream_wait_event = dlsym(lib, "cuStreamWaitEvent");
    *(void **)&k->drv.stream_query = dlsym(lib, "cuStreamQuery");
    *(void **)&k->drv.event_query = dlsym(lib, "cuEventQuery");
    *(void **)&k->drv.stream_sync = dlsym(lib, "cuStreamSynchronize");
    void **f = (void **)&k->drv;
    for (size_t i = 0; i < sizeof k->drv / sizeof(void *); i++)
        if (!f[i]) return flunk(k, "the driver lacks entry point %zu of Drv", i);
    return true;
}

static void *new_stream(Rank *k) {
    void *s = NULL;
    if (k->drv.stream_create(&s, 0) != 0) flunk(k, "cuStreamCreate");
    return s;
}

static RtDevPtr dev_alloc(Rank *k, size_t bytes, unsigned char fill) {
    RtDevPtr p = 0;
    unsigned char *h = malloc(bytes);
    memset(h, fill, bytes);
    if (!rt_cuda_alloc(k->cu, k->d, bytes, &p) || !rt_cuda_upload(k->cu, k->d, p, h, bytes)) p = 0, flunk(k, "alloc");
    free(h);
    return p;
}

static unsigned char pattern(int from, int to, int round, size_t i) { return (unsigned char)(from * 31 + to * 17 + round * 5 + i * 7 + (i >> 8)); }

static void tell(int fd) {
    if (write(fd, "g", 1) != 1) _exit(3);
}

static bool hear(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    char c;
    return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 1;
}

/* What rank s sends rank t in round r: uneven sizes, a zero block in every row, self included. */
static size_t a2a_bytes(int s, int t, int r) { return (s + 2 * t + r) % 3 == 0 ? 0 : 1 + (size_t)((s * 13 + t * 7 + r * 5) % 97) * 311; }

static bool check_bytes(Rank *k, const unsigned char *got, size_t n, int from, int round, size_t block_off, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != pattern(from, k->rank, round, i))
            return flunk(k, "%s, round %d: byte %zu of the %zu from rank %d is %u, want %u (block at %zu)", what, round, i, n, from, got[i],
                        pattern(from, k->rank, round, i), block_off);
    return true;
}

static bool a2av_round(Rank *k, void *s, int round) {
    size_t v[4][MAXR], sent = 0, got = 0;
    for (int p = 0; p < k->size; p++) {
        v[0][p] = a2a_bytes(k->rank, p, round), v[1][p] = sent, sent += v[0][p];
        v[2][p] = a2a_bytes(p, k->rank, round), v[3][p] = got, got += v[2][p];
    }
    unsigned char *h = malloc(sent + got + 64);
    for (int p = 0; p < k->size; p++)
        for (size_t i = 0; i < v[0][p]; i++) h[v[1][p] + i] = pattern(k->rank, p, round, i);
    RtDevPtr sb = dev_alloc(k, sent + 1, 0), rb = dev_alloc(k, got + 64, 0xee);
    bool ok = sb && rb && (!sent || rt_cuda_upload(k->cu, k->d, sb, h, sent)) &&
              rt_nccl_all_to_allv(k->c, k->d, sb, v[0], v[1], rb, v[2], v[3], RT_NCCL_U8, s) &&
              k->drv.dtoh_async(h, rb, got + 64, s) == 0 && rt_nccl_wait(k->c, k->d, s, "all-to-allv", 20000);
    if (!ok) flunk(k, "all-to-allv round %d", round);
    for (int p = 0; ok && p < k->size; p++) ok = check_bytes(k, h + v[3][p], v[2][p], p, round, v[3][p], "all-to-allv");
    for (size_t i = got; ok && i < got + 64; i++)
        if (h[i] != 0xee) ok = flunk(k, "all-to-allv round %d wrote past its blocks (byte %zu)", round, i);
    free(h);
    return ok;
}

/* The stream is held by a receive until rank 0 lets rank 1 send: what follows it is queued. */
static bool order_rank0(Rank *k) {
    const size_t N = 100003;
    void *s = new_stream(k);
    RtDevPtr a = dev_alloc(k, N, 0), b = dev_alloc(k, N, 0x33);
    unsigned char *h = malloc(N);
    memset(h, 0, N);
    bool ok = s && a && b && rt_nccl_recv(k->c, k->d, a, N, RT_NCCL_U8, 1, s) && k->drv.memset_async(b, 0x5a, N, s) == 0 &&
              rt_nccl_send(k->c, k->d, b, N, RT_NCCL_U8, 1, s) && k->drv.dtoh_async(h, a, N, s) == 0 &&
              k->drv.memset_async(a, 0x11, N, s) == 0;
    if (!ok) flunk(k, "posting");
    if (ok && k->drv.stream_query(s) != 600) ok = flunk(k, "the stream was done before the peer sent");
    tell(k->go_out);
    if (ok && !rt_nccl_wait(k->c, k->d, s, "order", 20000)) ok = flunk(k, "wait");
    if (ok) ok = check_bytes(k, h, N, 1, 0, 0, "a copy queued after the receive");
    unsigned char *h2 = malloc(N);
    if (ok && !rt_cuda_download(k->cu, k->d, h2, a, N)) ok = flunk(k, "download");
    for (size_t i = 0; ok && i < N; i++)
        if (h2[i] != 0x11) ok = flunk(k, "the memset queued after the receive did not come last (byte %zu is %u)", i, h2[i]);
    free(h);
    free(h2);
    return ok;
}

/* Rank 1 of MODE_ORDER and MODE_EVENTS: sends its pattern when told, gets back what rank 0 sends. */
static bool peer_rank1(Rank *k, unsigned char want) {
    const size_t N = 100003;
    void *s = new_stream(k);
    unsigned char *h = malloc(N);
    for (size_t i = 0; i < N; i++) h[i] = pattern(1, 0, 0, i);
    RtDevPtr a = dev_alloc(k, N, 0), b = dev_alloc(k, N, 0);
    bool ok = s && a && b && rt_cuda_upload(k->cu, k->d, a, h, N);
    if (ok && !hear(k->go_in, 20000)) ok = flunk(k, "rank 0 never said go");
    ok = ok && rt_nccl_send(k->c, k->d, a, N, RT_NCCL_U8, 0, s) && rt_nccl_recv(k->c, k->d, b, N, RT_NCCL_U8, 0, s) &&
         rt_nccl_wait(k->c, k->d, s, "peer", 20000) && rt_cuda_download(k->cu, k->d, h, b, N);
    if (!ok) flunk(k, "exchange");
    for (size_t i = 0; ok && i < N; i++)
        if (h[i] != (want ? want : pattern(1, 0, 0, i)))
            ok = flunk(k, "byte %zu rank 0 sent is %u, want %u", i, h[i], want ? want : pattern(1, 0, 0, i));
    free(h);
    return ok;
}

/* Receive on s1, an event, s2 waits for it and sends a copy back: the echo must be the bytes received. */
static bool events_rank0(Rank *k) {
    const size_t N = 100003;
    void *s1 = new_stream(k), *s2 = new_stream(k), *ev = NULL;
    RtDevPtr a = dev_alloc(k, N, 0), b = dev_alloc(k, N, 0x44);
    bool ok = s1 && s2 && a && b && k->drv.event_create(&ev, 0) == 0 && rt_nccl_recv(k->c, k->d, a, N, RT_NCCL_U8, 1, s1) &&
              k->drv.event_record(ev, s1) == 0 && k->drv.stream_wait_event(s2, ev, 0) == 0 && k->drv.dtod_async(b, a, N, s2) == 0 &&
              rt_nccl_send(k->c, k->d, b, N, RT_NCCL_U8, 1, s2);
    if (!ok) flunk(k, "posting");
    if (ok && (k->drv.event_query(ev) != 600 || k->drv.stream_query(s2) != 600)) ok = flunk(k, "the event or the second stream was done early");
    tell(k->go_out);
    if (ok && !(rt_nccl_wait(k->c, k->d, s2, "events", 20000) && k->drv.event_query(ev) == 0)) ok = flunk(k, "wait");
    return ok;
}

/* A group whose send and receive are on different streams, on both ranks. */
static bool split_group(Rank *k) {
    const size_t N = 5000;
    void *s1 = new_stream(k), *s2 = new_stream(k);
    unsigned char *h = malloc(N);
    for (size_t i = 0; i < N; i++) h[i] = pattern(k->rank, 1 - k->rank, 9, i);
    RtDevPtr a = dev_alloc(k, N, 0), b = dev_alloc(k, N, 0);
    bool ok = s1 && s2 && a && b && rt_cuda_upload(k->cu, k->d, a, h, N) && rt_nccl_group_start(k->c, k->d) &&
              rt_nccl_send(k->c, k->d, a, N, RT_NCCL_U8, 1 - k->rank, s1) && rt_nccl_recv(k->c, k->d, b, N, RT_NCCL_U8, 1 - k->rank, s2) &&
              rt_nccl_group_end(k->c, k->d, "split group") && rt_nccl_wait(k->c, k->d, s2, "split group", 20000) &&
              rt_nccl_wait(k->c, k->d, s1, "split group", 20000) && rt_cuda_download(k->cu, k->d, h, b, N);
    if (!ok) flunk(k, "split group");
    for (size_t i = 0; ok && i < N; i++)
        if (h[i] != pattern(1 - k->rank, k->rank, 9, i)) ok = flunk(k, "split group: byte %zu", i);
    free(h);
    return ok;
}

/* A CUDA graph captured on the runtime's stream: a grouped exchange, then a copy on a second stream
 * that joins the capture through an event and rejoins it; launched three times, each with new bytes. */
static bool graph_rounds(Rank *k) {
    const size_t N = 3001;
    void *s = rt_cuda_stream(k->cu), *s2 = new_stream(k), *ev = NULL, *ev2 = NULL;
    RtDevPtr a = dev_alloc(k, N, 0), b = dev_alloc(k, N, 0), c = dev_alloc(k, N, 0);
    RtGraph *g = NULL;
    int peer = 1 - k->rank;
    bool ok = s2 && a && b && c && k->drv.event_create(&ev, 0) == 0 && k->drv.event_create(&ev2, 0) == 0 &&
              rt_cuda_capture_begin(k->cu, k->d) && rt_nccl_group_start(k->c, k->d) && rt_nccl_send(k->c, k->d, a, N, RT_NCCL_U8, peer, s) &&
              rt_nccl_recv(k->c, k->d, b, N, RT_NCCL_U8, peer, s) && rt_nccl_group_end(k->c, k->d, "captured exchange") &&
              k->drv.event_record(ev, s) == 0 && k->drv.stream_wait_event(s2, ev, 0) == 0 && k->drv.dtod_async(c, b, N, s2) == 0 &&
              k->drv.event_record(ev2, s2) == 0 && k->drv.stream_wait_event(s, ev2, 0) == 0;
    if (!rt_cuda_capture_end(k->cu, k->d, &g) || !ok) return flunk(k, "capture");
    if (k->drv.stream_query(s) != 0) return flunk(k, "the capture ran something");
    unsigned char *h = malloc(N);
    for (int round = 0; ok && round < 3; round++) {
        for (size_t i = 0; i < N; i++) h[i] = pattern(k->rank, peer, round, i);
        ok = rt_cuda_upload(k->cu, k->d, a, h, N) && rt_cuda_graph_launch(k->cu, k->d, g) &&
             rt_nccl_wait(k->c, k->d, s, "the graph", 20000) && rt_cuda_download(k->cu, k->d, h, c, N);
        if (!ok) flunk(k, "graph launch %d", round);
        else ok = check_bytes(k, h, N, peer, round, 0, "graph");
    }
    free(h);
    return ok;
}

/* Small integers (and quarters) every type holds exactly, so every result is exact. */
static int small(int r, size_t i) { return (int)((r * 7 + i * 3) % 19) - 9; }

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16); /* exact for the values here */
}

static uint16_t to_f16(float f) { /* exact for the values here: quarters below 64 */
    if (f == 0) return 0;
    uint16_t s = f < 0 ? 0x8000 : 0;
    float a = f < 0 ? -f : f;
    int e = 0;
    while (a >= 2) a /= 2, e++;
    while (a < 1) a *= 2, e--;
    return (uint16_t)(s | (uint16_t)((e + 15) << 10) | (uint16_t)((a - 1) * 1024));
}

/* Sum in bf16 (in place), max in f16, min in i32, average in f32, each checked against the host. */
static bool reductions(Rank *k, void *s) {
    enum { N = 1000 };
    uint16_t bf[N], hf[N];
    int32_t i32[N];
    float f32[N];
    for (size_t i = 0; i < N; i++) {
        int v = small(k->rank, i);
        bf[i] = to_bf16((float)v), hf[i] = to_f16((float)v / 4), i32[i] = v * 1000003, f32[i] = (float)v;
    }
    RtDevPtr d = dev_alloc(k, 5 * 4 * N, 0);
    bool ok = d && rt_cuda_upload(k->cu, k->d, d, bf, sizeof bf) && rt_cuda_upload(k->cu, k->d, d + 4 * N, hf, sizeof hf) &&
              rt_cuda_upload(k->cu, k->d, d + 8 * N, i32, sizeof i32) && rt_cuda_upload(k->cu, k->d, d + 12 * N, f32, sizeof f32) &&
              rt_nccl_all_reduce(k->c, k->d, d, d, N, RT_NCCL_BF16, RT_NCCL_SUM, s) &&
              rt_nccl_all_reduce(k->c, k->d, d + 4 * N, d + 6 * N, N, RT_NCCL_F16, RT_NCCL_MAX, s) &&
              rt_nccl_all_reduce(k->c, k->d, d + 8 * N, d + 16 * N, N, RT_NCCL_I32, RT_NCCL_MIN, s) &&
              rt_nccl_all_reduce(k->c, k->d, d + 12 * N, d + 12 * N, N, RT_NCCL_F32, RT_NCCL_AVG, s) &&
              rt_nccl_wait(k->c, k->d, s, "all-reduce", 20000) && rt_cuda_download(k->cu, k->d, bf, d, sizeof bf) &&
              rt_cuda_download(k->cu, k->d, hf, d + 6 * N, sizeof hf) && rt_cuda_download(k->cu, k->d, i32, d + 16 * N, sizeof i32) &&
              rt_cuda_download(k->cu, k->d, f32, d + 12 * N, sizeof f32);
    if (!ok) return flunk(k, "all-reduce");
    for (size_t i = 0; i < N; i++) {
        int sum = 0, max = -100, min = 100;
        for (int r = 0; r < k->size; r++) {
            int v = small(r, i);
            sum += v, max = v > max ? v : max, min = v < min ? v : min;
        }
        if (bf[i] != to_bf16((float)sum)) return flunk(k, "bf16 sum [%zu] = 0x%04x, want %d", i, bf[i], sum);
        if (hf[i] != to_f16((float)max / 4)) return flunk(k, "f16 max [%zu] = 0x%04x, want %g", i, hf[i], max / 4.0);
        if (i32[i] != min * 1000003) return flunk(k, "i32 min [%zu] = %d, want %d", i, i32[i], min * 1000003);
        if (f32[i] != (float)sum / (float)k->size) return flunk(k, "f32 avg [%zu] = %g, want %g", i, f32[i], (double)sum / k->size);
    }
    return true;
}

/* Provoked failures: the wait must fail; the report is its error and how long it took. */
static void expect_failure(Rank *k, void *s, const char *what, int timeout_ms) {
    double t0 = now_s();
    if (rt_nccl_wait(k->c, k->d, s, what, timeout_ms)) {
        flunk(k, "%s: the wait succeeded", what);
        return;
    }
    k->rep.seconds = now_s() - t0;
    const Diag *e = diag_first(k->d);
    snprintf(k->rep.msg, sizeof k->rep.msg, "%s", e ? e->msg : "(no diagnostic)");
}

static void scenario(Rank *k) {
    void *s = k->c ? new_stream(k) : NULL;
    RtDevPtr buf = s ? dev_alloc(k, 4096, 0) : 0;
    switch (k->mode) {
    case MODE_A2AV:
        for (int r = 0; r < 3 && a2av_round(k, s, r); r++) continue;
        break;
    case MODE_ORDER:
        if (k->rank == 0) order_rank0(k);
        else peer_rank1(k, 0x5a);
        break;
    case MODE_EVENTS:
        if (k->rank == 0 ? events_rank0(k) : peer_rank1(k, 0)) split_group(k);
        break;
    case MODE_GRAPH:
        graph_rounds(k);
        break;
    case MODE_REDUCE:
        reductions(k, s);
        break;
    case MODE_MISMATCH: /* rank 0 sends 1000 bytes, rank 1 expects 1200 */
        if (k->rank == 0 && !(rt_nccl_send(k->c, k->d, buf, 1000, RT_NCCL_U8, 1, s) && rt_nccl_wait(k->c, k->d, s, "send", 20000)))
            flunk(k, "the send");
        if (k->rank == 1 && rt_nccl_recv(k->c, k->d, buf, 300, RT_NCCL_F32, 0, s)) expect_failure(k, s, "the short recv", 20000);
        break;
    case MODE_DEATH: /* after an all-reduce (every rank is in), rank 2 leaves without a word before an all-to-all */
        if (!rt_nccl_all_reduce(k->c, k->d, buf, buf, 4, RT_NCCL_F32, RT_NCCL_MAX, s) || !rt_nccl_wait(k->c, k->d, s, "all-reduce", 20000)) {
            flunk(k, "the all-reduce");
            break;
        }
        if (k->rank == 2) _exit(0);
        if (!rt_nccl_all_to_all(k->c, k->d, buf, buf + 2048, 16, RT_NCCL_F32, s)) flunk(k, "posting");
        else expect_failure(k, s, "the all-to-all", 20000);
        break;
    case MODE_ABORT: /* rank 1 never sends: the deadline's abort must free rank 0's stream */
        if (k->rank == 1) {
            if (!hear(k->go_in, 20000)) flunk(k, "rank 0 never said it was done");
            break;
        }
        if (!rt_nccl_recv(k->c, k->d, buf, 1024, RT_NCCL_U8, 1, s)) {
            flunk(k, "posting");
            break;
        }
        expect_failure(k, s, "the recv", 800);
        double t0 = now_s();
        if (k->drv.stream_sync(s) != 0 || now_s() - t0 > 2.0) flunk(k, "the stream stayed held after the abort (%.2f s)", now_s() - t0);
        tell(k->go_out);
        break;
    }
}

static void rank_main(Rank *k, int report) {
    k->a = arena_new();
    k->d = diag_new(k->a, NULL);
    k->cu = rt_cuda_open(k->d, k->rank);
    k->n = k->cu ? rt_nccl_open(k->d) : NULL;
    if (!k->n || !load_drv(k)) flunk(k, "setup");
    else if (!(k->c = rt_nccl_comm_init_rank(k->n, k->d, &k->id, k->rank, k->size, NULL, 20000))) flunk(k, "comm init");
    else scenario(k);
    if (k->c) {
        if (k->rep.failed || k->mode >= MODE_MISMATCH) rt_nccl_comm_abort(k->c);
        else if (!rt_nccl_comm_destroy(k->c, k->d)) flunk(k, "destroy");
    }
    if (write(report, &k->rep, sizeof k->rep) != (ssize_t)sizeof k->rep) _exit(3);
    _exit(0);
}

/* ---- the test side ------------------------------------------------------------ */

static void run(Mode mode, int size, Report *rep) {
    void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    int (*get_id)(RtNcclId *) = lib ? (int (*)(RtNcclId *))dlsym(lib, "ncclGetUniqueId") : NULL;
    assert_non_null(get_id);
    RtNcclId id;
    assert_int_equal(get_id(&id), 0);
    int go[2], rp[MAXR][2];
    pid_t pid[MAXR];
    assert_int_equal(pipe(go), 0);
    for (int r = 0; r < size; r++) {
        assert_int_equal(pipe(rp[r]), 0);
        pid[r] = fork();
        assert_true(pid[r] >= 0);
        if (pid[r] == 0) {
            close(rp[r][0]);
            Rank k = {.mode = mode, .rank = r, .size = size, .id = id, .go_in = go[0], .go_out = go[1]};
            rank_main(&k, rp[r][1]);
        }
        close(rp[r][1]);
    }
    close(go[0]), close(go[1]);
    for (int r = 0; r < size; r++) {
        memset(&rep[r], 0, sizeof rep[r]);
        struct pollfd p = {rp[r][0], POLLIN, 0};
        if (mode == MODE_DEATH && r == 2) { /* it writes nothing */
        } else if (poll(&p, 1, 60000) != 1 || read(rp[r][0], &rep[r], sizeof rep[r]) != (ssize_t)sizeof rep[r]) {
            kill(pid[r], SIGKILL);
            rep[r].failed = 1;
            snprintf(rep[r].msg, sizeof rep[r].msg, "no report within 60 s");
        }
        int st;
        waitpid(pid[r], &st, 0);
        close(rp[r][0]);
    }
    DIR *d = opendir(g_dir); /* every rendezvous directory removed by its last rank */
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) fail_msg("left behind in %s: %s", g_dir, e->d_name);
    closedir(d);
}

static void expect_ok(Report *rep, int size) {
    for (int r = 0; r < size; r++) {
        if (rep[r].failed) print_error("rank %d: %s\n", r, rep[r].msg);
        assert_false(rep[r].failed);
    }
}

static void test_a2av_2(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_A2AV, 2, rep);
    expect_ok(rep, 2);
}

static void test_a2av_4(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_A2AV, 4, rep);
    expect_ok(rep, 4);
}

static void test_stream_order(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_ORDER, 2, rep);
    expect_ok(rep, 2);
}

static void test_two_streams(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_EVENTS, 2, rep);
    expect_ok(rep, 2);
}

static void test_graph(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_GRAPH, 2, rep);
    expect_ok(rep, 2);
}

static void test_all_reduce(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_REDUCE, 4, rep);
    expect_ok(rep, 4);
}

static void test_size_mismatch(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_MISMATCH, 2, rep);
    expect_ok(rep, 2);
    print_message("rank 1: %s\n", rep[1].msg);
    assert_non_null(strstr(rep[1].msg, "ncclInvalidUsage"));
    assert_non_null(strstr(rep[1].msg, "1200 bytes from rank 0 matched a send of 1000 bytes"));
}

static void test_rank_exits(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_DEATH, 4, rep);
    for (int r = 0; r < 4; r++) {
        if (r == 2) continue;
        expect_ok(&rep[r], 1);
        print_message("rank %d after %.2f s: %s\n", r, rep[r].seconds, rep[r].msg);
        assert_true(rep[r].seconds < 5.0);
        assert_non_null(strstr(rep[r].msg, "ncclRemoteError"));
        assert_non_null(strstr(rep[r].msg, "rank 2 exited"));
    }
}

static void test_abort_frees_stream(void **state) {
    (void)state;
    Report rep[MAXR];
    run(MODE_ABORT, 2, rep);
    expect_ok(rep, 2);
    print_message("rank 0 after %.2f s: %s\n", rep[0].seconds, rep[0].msg);
    assert_true(rep[0].seconds >= 0.7 && rep[0].seconds < 5.0);
    assert_string_equal(rep[0].msg, "rank 0: the recv did not finish within 0.8 s");
}

int main(void) {
    const char *base = getenv("DSCC_EMU_NCCL_DIR");
    void *cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL), *nccl = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!base || !*base || !cu || !nccl || !dlsym(cu, "cuLaunchHostFunc") || !dlsym(nccl, "ncclCommInitRankConfig")) {
        printf("skipped: needs the emulated libcuda.so.1 and libnccl.so.2 (LD_LIBRARY_PATH) and DSCC_EMU_NCCL_DIR\n");
        return 77;
    }
    dlclose(cu); /* no CUDA in this process before the ranks fork */
    snprintf(g_dir, sizeof g_dir, "%s/test-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        perror(g_dir);
        return 1;
    }
    setenv("DSCC_EMU_NCCL_DIR", g_dir, 1);
    setenv("DSCC_EMU_DEVICES", "4", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a2av_2),        cmocka_unit_test(test_a2av_4),      cmocka_unit_test(test_stream_order),
        cmocka_unit_test(test_two_streams),   cmocka_unit_test(test_graph),
        cmocka_unit_test(test_all_reduce),    cmocka_unit_test(test_size_mismatch), cmocka_unit_test(test_rank_exits),
        cmocka_unit_test(test_abort_frees_stream),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(g_dir);
    return rc;
}
