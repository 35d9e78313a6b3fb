/* testutil.h — scaffolding the unit tests share: a checkpoint fixture
 * (its arena, diagnostics and open checkpoint), models/deepseek_v3.dsl
 * compiled against it, one forward on the CPU executor; a kernel test's
 * module on device 0, cases in child processes; and ranks as forked
 * processes on loopback ports. Every helper asserts (cmocka) on
 * what it needs, so a test reads as what it checks. */
#ifndef DSCC_TESTUTIL_H
#define DSCC_TESTUTIL_H

#include <sys/types.h>

#include "codegen/codegen.h"
#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"

/* ---- a test's arena (a cmocka fixture) ------------------------------- */

/* An arena and its diagnostics (quiet): a test's state, or the start of a
 * larger one. */
typedef struct {
    Arena *a;
    DiagEngine *d;
} TuArena;
/* The message of the last error reported to d, or "" when there is none. */
const char *tu_last_error(const DiagEngine *d);
/* cmocka setup: a calloc'd TuArena into *state. */
int tu_arena_setup(void **state);
/* cmocka teardown of a calloc'd state whose first member is its Arena *
 * (a TuArena, or a struct that begins with one): frees the arena, then the
 * state. */
int tu_arena_teardown(void **state);

/* ---- a checkpoint fixture --------------------------------------------- */

typedef struct {
    Arena *a;
    DiagEngine *d; /* prints to stderr */
    RtCheckpoint *ck;
} TuFixture;

void tu_fixture_open(TuFixture *f, const char *dir);
void tu_fixture_close(TuFixture *f);
/* An .npy file into out (its data malloc'd). */
void tu_read_npy(TuFixture *f, const char *path, RtArray *out);
/* models/deepseek_v3.dsl with the checkpoint's config.json and the settings
 * "name=value", verified, then through pipeline (NULL: none) with the
 * verifier after each pass. */
IrGraph *tu_compile(TuFixture *f, const char *pipeline, const char *const *sets, int nsets);
/* DSL text src (`name` in diagnostics) through the passes of pipeline with
 * the switches as the environment holds them now (tu_tune): a test's small
 * graph, asserted to compile and pass. */
IrGraph *tu_compile_src(Arena *a, DiagEngine *d, const char *name, const char *src, const char *pipeline);
/* The CPU executor of g on the checkpoint's weights. */
CpuExec *tu_exec(TuFixture *f, const IrGraph *g, const CpuOptions *o);
/* One forward of the token ids tok [B, T] at positions 0..T-1. */
void tu_forward(TuFixture *f, CpuExec *x, const RtArray *tok);
/* A malloc'd copy of output `name` of x's last run; its element count in *n. */
float *tu_output_copy(CpuExec *x, const char *name, int64_t *n);

/* Asserts that the file at path holds exactly want. */
void tu_expect_file(const char *path, const char *want);

/* ---- a module on device 0 (testutil_gpu.c: built with codegen) -------- */

/* How a kernel test's case ends (the exit status of its child process). */
typedef enum {
    TU_CASE_OK,                /* the values are right */
    TU_CASE_WRONG,             /* some are wrong */
    TU_CASE_LAUNCH_FAILED,     /* a launch or the sync after it failed (the emulator names the fault) */
    TU_CASE_ERROR,             /* anything else failed: the compile, an allocation, a copy */
    TU_CASE_NO_HOPPER = 77,    /* no device 0, or no sm_90 (real or emulated) */
    TU_CASE_NOT_EMULATED = 78, /* a case for the emulated device only, on a GPU */
} TuCase;
/* A kernel test's device and the module it compiled for it. */
typedef struct {
    Arena *a;
    DiagEngine *d; /* prints to stderr */
    RtCuda *gpu;
    bool emulated; /* the emulated device (tests/emu) */
    CgBinary bin;
} TuModule;
/* Opens device 0 and compiles src for it with the tests' kernel cache
 * (ctest's DSCC_CACHE_DIR; none without it): TU_CASE_OK, or why not
 * (TU_CASE_NOT_EMULATED for a GPU where emulated_only). */
TuCase tu_module_open(TuModule *m, const CgSource *src, bool emulated_only);
void tu_module_close(TuModule *m);
/* Runs fn(arg) in a child process whose stderr goes to a file in dir (a
 * failed launch poisons a process's CUDA context: each case gets its own);
 * the child's exit status (tu_wait's), and in *err what it wrote (up to
 * 8 KB, static: valid until the next call; the file is removed). */
int tu_child_stderr(int (*fn)(void *), void *arg, const char *dir, const char **err);

/* ---- ranks as processes ----------------------------------------------- */

int tu_free_port(void); /* a TCP port free right now on loopback */
double tu_now_s(void);  /* monotonic seconds */
/* ||got - want|| / ||want|| in double (asserts want is not all zero) */
double tu_rel_l2(const float *got, const float *want, int64_t n);
/* max |got - want| over max |want|, in double */
double tu_rel_maxdiff(const float *got, const float *want, size_t n);
/* Asserts that got[n] is within rel L2 `bound` of the .npy file at ref_path
 * (n values) and, when V > 0, that each row of V has the reference's argmax;
 * prints both figures under `what`. */
void tu_expect_npy(const float *got, const char *ref_path, int64_t n, int64_t V, double bound, const char *what);
/* Forks a child that runs fn(arg) and _exits with what it returns; the
 * child's pid (asserted). */
pid_t tu_fork(int (*fn)(void *), void *arg);
/* Waits for pid: its exit status, 128 + the signal that killed it, or -1. */
int tu_wait(pid_t pid);

/* Whether device 0 is a Hopper GPU (sm_90, real or emulated); when it is
 * not, prints "skipped: <why>" and the test's main returns 77 (CTest's skip). */
bool tu_hopper(void);

/* The seed of a test's random weights and inputs: DSCC_TEST_SEED, or the
 * clock (different data each run), printed once so a failure can be rerun. */
uint64_t tu_test_seed(void);
/* The DSCC_* switches (support/tune.def) as the environment holds them now:
 * a test main is the program's entry, so it reads them for the library, and
 * afresh at each use since tests setenv as they go (one static struct,
 * refilled each call: call it after the setenv, at the library call). A bad
 * BOOL switch (tune_check) ends the test program, exit status 2. */
const DsccTune *tu_tune(void);
/* The GPU's stored value of node n for a CPU-side comparison (cpu_exec's
 * per-node hook): NULL for inputs and weights and for values a fused kernel
 * never stores; otherwise asserts that it holds nc elements. */
const float *tu_gpu_value(GpuExec *gx, const IrNode *n, int64_t nc);
/* A kernel test's comparison of the two executors, as cpu_exec's per-node
 * hook (CpuOptions .after_node = tu_take_gpu, .hook_ctx = a TuGpuCmp): after
 * the CPU computes a node whose value the GPU stored, check(ctx, n, gv, c,
 * nc) with the GPU's values gv and the CPU's c; then the CPU continues from
 * the GPU's (c = gv), so that each op is judged on its own inputs. */
typedef struct {
    const IrGraph *g;
    GpuExec *gx;
    void (*check)(void *ctx, const IrNode *n, const float *gv, const float *c, int64_t nc);
    void *ctx; /* the check's */
} TuGpuCmp;
void tu_take_gpu(void *cmp, int id, float *c, int64_t nc);
/* rows x K values uniform in [-1, 1) from the LCG state *rng, every fifth
 * row (2, 7, ...) 40x larger, each rounded to bf16 (a GEMM input that
 * exercises per-row activation scales). */
void tu_bf16_rows(float *x, int64_t rows, int64_t K, uint64_t *rng);

#endif
