/* bench_hbm.c — which address patterns the HBM serves at its peak: a pure
 * read of a device buffer in each pattern of codegen/kernels/read_pattern.cuh
 * (the grid-stride baseline stream_read.cuh times, a warp or a block per row,
 * contiguous stretches a warp or a block, gemm_skinny2.cuh's 16-row groups,
 * the same with each block's K order rotated, ...), no compute but an XOR
 * fold of every word read. The skinny kernels read their weights at 50-92%
 * of the grid-stride read's rate with the same bytes; this separates their
 * address orders from their arithmetic, and row pitches from each other
 * (o_proj's rows of 16,384 bytes read at 66% of the read, dense down's of
 * 18,432 at 82%, in the same kernel form).
 *
 * Each pattern is timed as bench_gemm times a kernel: 2 untimed runs, then
 * --reps (default 7) repetitions, each after a memset of --flush-mb MiB
 * (default 256: an L2 flush) with CUDA events right around the launch; the
 * median is printed. The grid is --blocks-per-sm CTAs of 256 threads on every
 * SM (the launch bounds ask room for that many), --u the 16-byte loads a lane
 * a round. The buffer (random words) is rows of --row bytes (a list: each
 * size runs at each): by default the LM head's weight (129,280 x 14,336
 * bytes, 1,853.3 MB) and o_proj's (7,168 x 16,384 bytes, 117.4 MB); --mb
 * sizes it instead (MB of 10^6 bytes, rounded down to whole rows). --modes
 * narrows the patterns (mode 0 always runs). One markdown table: pattern,
 * size, row, u, blocks/SM, ms, GB/s and the share of mode 0 at the same
 * size, row, u and blocks/SM. --check: each pattern's fold (the XOR of its
 * warps' words) must equal the host's XOR of every word of the buffer,
 * which holds only when each word was read exactly once; a pattern that
 * misses is named on stderr and the exit status is 1. All instances are one
 * module: one compile. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "codegen/codegen.h"
#include "codegen/kernels.h"
#include "runtime/cuda.h"

enum { NMODES = 9, MAXLIST = 8 };

/* read_pattern.cuh's RP_MODE values */
static const char *const MODE_NAMES[NMODES] = {"0 grid-stride",   "1 warp/row",       "2 block/row", "3 warp stretches",  "4 skinny2 groups",
                                               "5 warp/row runs", "6 block stretches", "7 grid-stride x2", "8 skinny2 rotated"};

typedef struct {
    int64_t sizes[MAXLIST]; /* bytes asked for (rounded down to whole rows) */
    int nsizes;
    int rows[MAXLIST], nrows; /* bytes a row */
    int modes[MAXLIST + 1], nmodes;
    int us[MAXLIST], nu;
    int bs[MAXLIST], nb;
    int64_t flush;
    int reps;
    bool check;
} Opts;

/* The module's kernels: k[b][u][mode] for the lists' indices and RP_MODE (NULL: a mode not asked for). */
typedef struct {
    RtKernel *k[MAXLIST][MAXLIST][NMODES];
} Kernels;

/* Every instance (mode x u x blocks/SM) in one module, compiled once and loaded; false after reporting. */
static bool build(Arena *a, DiagEngine *d, RtCuda *c, const Opts *o, Kernels *ks, CgBinary *bin) {
    char *text = "";
    for (int b = 0; b < o->nb; b++)
        for (int u = 0; u < o->nu; u++)
            for (int i = 0; i < o->nmodes; i++) {
                int m = o->modes[i];
                char mode[8], uu[8], minb[8];
                snprintf(mode, sizeof mode, "%d", m), snprintf(uu, sizeof uu, "%d", o->us[u]), snprintf(minb, sizeof minb, "%d", o->bs[b]);
                CgDefine defs[] = {{"RP_MODE", mode}, {"RP_U", uu}, {"RP_MINB", minb}};
                char *entry = arena_printf(a, "hbm_m%d_u%d_b%d", m, o->us[u], o->bs[b]);
                char *inst = cg_kernel_instance(a, "read_pattern", entry, defs, 3);
                if (!inst) {
                    fprintf(stderr, "bench_hbm: no kernel file read_pattern.cuh\n");
                    return false;
                }
                text = arena_printf(a, "%s%s", text, inst);
            }
    CgSource src = {"bench_hbm", text, {"codegen/kernels/read_pattern.cuh", 0, 0}};
    if (cg_compile(a, d, &src, 1, &(CgOptions){0}, bin) != 0) return false;
    for (int b = 0; b < o->nb; b++)
        for (int u = 0; u < o->nu; u++)
            for (int i = 0; i < o->nmodes; i++)
                if (!(ks->k[b][u][o->modes[i]] = rt_cuda_kernel(c, d, bin->data, arena_printf(a, "hbm_m%d_u%d_b%d", o->modes[i], o->us[u], o->bs[b])))) return false;
    return true;
}

/* The device buffer's state and what timing a pattern needs. */
typedef struct {
    RtCuda *c;
    DiagEngine *d;
    RtDevPtr buf, out, flush;
    int64_t bytes, flush_bytes;
    unsigned host_xor; /* of every word of the buffer */
    unsigned *words;   /* out[] read back, a word a warp of the largest grid */
    RtEvent *e0, *e1;
} Dev;

/* Fills the buffer (`bytes`, whole rows) with random words and keeps their XOR; false after reporting. */
static bool fill(Dev *v, int64_t bytes) {
    size_t n = (size_t)(bytes / 4);
    uint32_t *h = malloc(n * 4);
    if (!h) {
        fprintf(stderr, "bench_hbm: no room for the %lld bytes of the host buffer\n", (long long)bytes);
        return false;
    }
    uint64_t s = 0x9e3779b97f4a7c15ull ^ (uint64_t)bytes;
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = (uint32_t)(s >> 32);
        x ^= h[i];
    }
    bool ok = rt_cuda_upload(v->c, v->d, v->buf, h, n * 4);
    free(h);
    v->host_xor = x;
    return ok;
}

/* The median ms of kernel k over reps repetitions (after 2 untimed runs) on grid CTAs; *fold gets the last
 * run's XOR of its warps' words. -1 after reporting. */
static double time_pattern(Dev *v, RtKernel *k, unsigned grid, int64_t row, int reps, unsigned *fold) {
    struct {
        RtDevPtr p;
        long long n16, row16;
        RtDevPtr out;
    } ra = {v->buf, v->bytes / 16, row / 16, v->out}; /* read_pattern.cuh's struct Args */
    void *args[] = {&ra};
    float t[64];
    bool ok = rt_cuda_launch(v->c, v->d, k, grid, 256, 0, args) && rt_cuda_launch(v->c, v->d, k, grid, 256, 0, args);
    for (int r = 0; r < reps && ok; r++) {
        ok = rt_cuda_memset0(v->c, v->d, v->out, (size_t)grid * 8 * 4) && (v->flush_bytes <= 0 || rt_cuda_memset0(v->c, v->d, v->flush, (size_t)v->flush_bytes)) &&
             rt_cuda_event_record(v->c, v->d, v->e0) && rt_cuda_launch_async(v->c, v->d, k, grid, 256, 0, args) &&
             rt_cuda_event_record(v->c, v->d, v->e1) && rt_cuda_event_ms(v->c, v->d, v->e0, v->e1, &t[r]);
    }
    ok = ok && rt_cuda_download(v->c, v->d, v->words, v->out, (size_t)grid * 8 * 4);
    if (!ok) return -1;
    unsigned x = 0;
    for (unsigned i = 0; i < grid * 8; i++) x ^= v->words[i];
    *fold = x;
    bench_sort_ms(t, reps);
    return t[reps / 2];
}

/* One buffer size and row's lines of the table (bytes: whole rows); the number of patterns whose fold missed, or -1
 * after reporting. */
static int run_size(Dev *v, const Opts *o, const Kernels *ks, int64_t bytes, int64_t row) {
    v->bytes = bytes;
    if (!fill(v, bytes)) return -1;
    int bad = 0;
    for (int b = 0; b < o->nb; b++)
        for (int u = 0; u < o->nu; u++) {
            double base = 0; /* mode 0's ms (the modes' list starts with it) */
            for (int i = 0; i < o->nmodes; i++) {
                int m = o->modes[i];
                unsigned fold = 0, grid = (unsigned)(o->bs[b] * rt_cuda_sms(v->c));
                double ms = time_pattern(v, ks->k[b][u][m], grid, row, o->reps, &fold);
                if (ms < 0) return -1;
                if (m == 0) base = ms;
                bool miss = o->check && fold != v->host_xor;
                printf("| %s | %.1f | %lld | %d | %d | %.4f | %.0f | %.1f%% |%s\n", MODE_NAMES[m], (double)bytes / 1e6, (long long)row, o->us[u],
                       o->bs[b], ms, (double)bytes / (ms * 1e-3) / 1e9, 100.0 * base / ms, o->check ? (miss ? " FAIL |" : " ok |") : "");
                fflush(stdout);
                if (miss)
                    fprintf(stderr, "bench_hbm: pattern %s (%lld bytes, row %lld, u %d, %d blocks/SM) folds to %08x, the buffer's words to %08x\n",
                            MODE_NAMES[m], (long long)bytes, (long long)row, o->us[u], o->bs[b], fold, v->host_xor);
                bad += miss;
            }
        }
    return bad;
}

/* The table over every size; the exit status. */
static int run(const Opts *o) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    Dev v = {.d = d, .flush_bytes = o->flush};
    Kernels ks = {0};
    CgBinary bin = {0};
    int64_t most = 0, bmax = 0;
    for (int s = 0; s < o->nsizes; s++) most = o->sizes[s] > most ? o->sizes[s] : most;
    for (int b = 0; b < o->nb; b++) bmax = o->bs[b] > bmax ? o->bs[b] : bmax;
    int bad = -1;
    v.c = rt_cuda_open(d, 0);
    size_t nwords = v.c ? (size_t)(bmax * rt_cuda_sms(v.c) * 8) : 0;
    if (v.c && (v.words = malloc(nwords * 4)) && build(a, d, v.c, o, &ks, &bin) && rt_cuda_alloc(v.c, d, (size_t)most, &v.buf) &&
        rt_cuda_alloc(v.c, d, nwords * 4, &v.out) && (o->flush <= 0 || rt_cuda_alloc(v.c, d, (size_t)o->flush, &v.flush)) &&
        (v.e0 = rt_cuda_event(v.c, d)) && (v.e1 = rt_cuda_event(v.c, d))) {
        printf("| pattern | MB | row bytes | u | blocks/SM | ms | GB/s | share of mode 0 |%s\n|---|---|---|---|---|---|---|---|%s\n",
               o->check ? " check |" : "", o->check ? "---|" : "");
        bad = 0;
        for (int s = 0; s < o->nsizes && bad >= 0; s++)
            for (int r = 0; r < o->nrows && bad >= 0; r++) { /* each size rounded down to whole rows (main: at least one) */
                int n = run_size(&v, o, &ks, o->sizes[s] - o->sizes[s] % o->rows[r], o->rows[r]);
                bad = n < 0 ? -1 : bad + n;
            }
    }
    if (v.c) {
        rt_cuda_event_free(v.c, v.e0), rt_cuda_event_free(v.c, v.e1);
        rt_cuda_free(v.c, v.buf), rt_cuda_free(v.c, v.out), rt_cuda_free(v.c, v.flush);
    }
    rt_cuda_close(v.c);
    cg_binary_free(&bin);
    free(v.words);
    arena_free(a);
    if (bad > 0) fprintf(stderr, "bench_hbm: %d patterns did not read every word exactly once\n", bad);
    return bad == 0 ? 0 : 1;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_hbm [--check] [--mb M1,M2,...] [--row R1,R2,...] [--modes M1,M2,...] [--u U1,U2,...] [--blocks-per-sm B1,B2,...]\n"
                    "                 [--flush-mb N] [--reps N]\n"
                    "  --check          every pattern must read every 32-bit word of the buffer exactly once (XOR fold vs the host's)\n"
                    "  --mb LIST        buffer sizes in MB of 10^6 bytes, rounded down to whole rows (default the LM head's\n"
                    "                   129,280 x 14,336 bytes and o_proj's 7,168 x 16,384)\n"
                    "  --row LIST       bytes a row, multiples of 16 (default 14336); each size runs with each\n"
                    "  --modes LIST     the patterns, 0..8 (default all; mode 0, the baseline of the share column, always runs)\n"
                    "  --u LIST         16-byte loads a lane a round, 1..16 (default 4,8)\n"
                    "  --blocks-per-sm LIST  CTAs of 256 threads an SM, 1..4 (default 1,2,3,4)\n"
                    "  --flush-mb N     MiB zeroed before each timed repetition, an L2 flush (default 256; 0: none)\n"
                    "  --reps N         timed repetitions, odd, 1..63 (default 7)\n");
    return 2;
}

/* A comma-separated list of up to MAXLIST integers in lo..hi; false when it is not one. */
static bool parse_ints(const char *arg, int *v, int *n, int lo, int hi) {
    *n = 0;
    for (const char *p = arg; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || x < lo || x > hi || *n == MAXLIST) return false;
        v[(*n)++] = (int)x;
        p = *end ? end + 1 : end;
    }
    return *n > 0;
}

/* --mb's list: up to MAXLIST sizes in MB (10^6 bytes), each above 0 and at most 65,536 MB. */
static bool parse_sizes(const char *arg, int64_t *v, int *n) {
    *n = 0;
    for (const char *p = arg; *p;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !(x > 0 && x <= 65536) || *n == MAXLIST) return false;
        v[(*n)++] = (int64_t)(x * 1e6 + 0.5);
        p = *end ? end + 1 : end;
    }
    return *n > 0;
}

/* Whether every row size is a multiple of 16 bytes (the patterns' pieces). */
static bool rows_whole(const int *rows, int n) {
    for (int i = 0; i < n; i++)
        if (rows[i] % 16) return false;
    return true;
}

/* --modes' list (at modes + 1, n of them) with mode 0 first, each mode once; the count. */
static int with_mode0(int *modes, int n) {
    int k = 1;
    modes[0] = 0;
    for (int i = 1; i <= n; i++) {
        bool seen = false;
        for (int j = 0; j < k; j++) seen |= modes[j] == modes[i];
        if (!seen) modes[k++] = modes[i];
    }
    return k;
}

int main(int argc, char **argv) {
    bool modes_given = false;
    Opts o = {.sizes = {129280ll * 14336, 7168ll * 16384}, .nsizes = 2, .rows = {14336}, .nrows = 1, .modes = {0, 1, 2, 3, 4, 5, 6, 7, 8},
              .nmodes = NMODES, .us = {4, 8}, .nu = 2, .bs = {1, 2, 3, 4}, .nb = 4, .flush = 256ll << 20, .reps = 7};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(arg, "--check") == 0) o.check = true;
        else if (!val) return usage();
        else if (strcmp(arg, "--mb") == 0 && parse_sizes(val, o.sizes, &o.nsizes)) i++;
        else if (strcmp(arg, "--u") == 0 && parse_ints(val, o.us, &o.nu, 1, 16)) i++;
        else if (strcmp(arg, "--blocks-per-sm") == 0 && parse_ints(val, o.bs, &o.nb, 1, 4)) i++;
        else if (strcmp(arg, "--row") == 0 && parse_ints(val, o.rows, &o.nrows, 16, 1 << 30) && rows_whole(o.rows, o.nrows)) i++;
        else if (strcmp(arg, "--modes") == 0 && parse_ints(val, o.modes + 1, &o.nmodes, 0, NMODES - 1)) i++, modes_given = true;
        else if (strcmp(arg, "--flush-mb") == 0 && (o.flush = strtoll(val, &end, 10)) >= 0 && o.flush <= 65536 && !*end) o.flush <<= 20, i++;
        else if (strcmp(arg, "--reps") == 0 && (o.reps = (int)strtol(val, &end, 10)) >= 1 && o.reps <= 63 && o.reps % 2 && !*end) i++;
        else return usage();
    }
    if (modes_given) o.nmodes = with_mode0(o.modes, o.nmodes);
    for (int s = 0; s < o.nsizes; s++)
        for (int r = 0; r < o.nrows; r++)
            if (o.sizes[s] < o.rows[r]) {
                fprintf(stderr, "bench_hbm: a buffer of under one row of %d bytes\n", o.rows[r]);
                return 2;
            }
    return run(&o);
}
