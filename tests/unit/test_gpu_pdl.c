/* test_gpu_pdl.c — programmatic dependent launch (runtime/cuda.h's
 * rt_cuda_launch_pdl, codegen/kernels.h's DSCC_PDL_WAIT), on a GPU or the
 * emulated device (ctest emu.test_gpu_pdl); without either only the
 * codegen part runs.
 *  - codegen: every entry the generator writes gets the wait as its first
 *    statement (line numbers kept, not before a directive, not twice); a
 *    kernel file's entry opts in only by calling it (a call in a comment
 *    does not count); each phase of the tiny FP8 model's program is marked
 *    exactly when its entry waits, and the skinny GEMM, MLA decode and the
 *    gate's kernels do;
 *  - a writer kernel, then a reader launched programmatically that waits on
 *    every path: it sees every value (on a GPU, where the two overlap, the
 *    wait is what orders them); on the emulated device only, a reader one
 *    of whose threads returns before the wait fails its launch naming the
 *    missing griddepcontrol.wait (the check that keeps a kernel that does
 *    not declare the wait from being launched programmatically);
 *  - with DSCC_PDL_EARLY=1 the generator's entries let the next kernel
 *    launch before their wait (the early prologue), still once;
 *  - the tiny FP8 model, a prefill then decode steps (CUDA graphs: captured,
 *    replayed with updated nodes; then launches one by one) with DSCC_PDL=1
 *    (the first pair with DSCC_PDL_EARLY=1 too) and DSCC_PDL=0: the same logits at every step, programmatic launches
 *    only with it on, and as many as the driver was given (the emulated
 *    driver counts them, graph nodes included); DSCC_PDL=2 is refused, and
 *    unset it is on where the driver has it (the default). The pair runs in child processes
 *    before this process initialises CUDA (a real driver refuses a process
 *    forked after that). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "runtime/cuda.h"
#include "tests/unit/testutil.h"

#define FIX DSCC_SOURCE_DIR "/tests/fixtures/tiny_fp8"

/* ---- codegen ------------------------------------------------------------ */

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_prologue(void **state) {
    (void)state;
    setenv("DSCC_PDL_EARLY", "0", 1); /* the plain prologue first, whatever the environment asks */
    Arena *a = arena_new();
    const char *src = "struct Args { int x; };\n"
                      "extern \"C\" __global__ void __launch_bounds__(256) p0(Args a) {  // store\n"
                      "    const int i = 1;\n"
                      "}\n"
                      "extern \"C\" __global__ void p1(Args a) {\n"
                      "#pragma unroll\n"
                      "    for (int i = 0; i < 2; i++) {}\n"
                      "}\n"
                      "extern \"C\" __global__ void p2(Args a) { return; }\n"
                      "extern \"C\" __global__ void p3(Args a) {\n"
                      "    DSCC_PDL_WAIT();\n"
                      "}\n"
                      "#define DSCC_ENTRY g1_file\n"
                      "extern \"C\" __global__ void __launch_bounds__(256, 1) __cluster_dims__(2, 1, 1) DSCC_ENTRY(Args a) {\n"
                      "    // DSCC_PDL_WAIT() only in a comment, \"DSCC_PDL_WAIT()\" in a string\n"
                      "}\n"
                      "#undef DSCC_ENTRY\n"
                      "#define DSCC_ENTRY g2_file\n"
                      "extern \"C\" __global__ void DSCC_ENTRY(Args a) {\n"
                      "    if (a.x) return;\n"
                      "    DSCC_PDL_WAIT ();\n"
                      "}\n";
    char *out = cg_pdl_prologue(a, src, tu_tune());
    assert_int_equal(lines(out), lines(src));
    assert_non_null(strstr(out, "p0(Args a) {  // store\n    " CG_PDL_PROLOGUE " const int i = 1;\n"));
    assert_non_null(strstr(out, "p1(Args a) { " CG_PDL_PROLOGUE " \n#pragma unroll\n")); /* not before the directive */
    assert_non_null(strstr(out, "p2(Args a) { " CG_PDL_PROLOGUE "  return; }"));
    assert_non_null(strstr(out, "p3(Args a) {\n    DSCC_PDL_WAIT();\n}")); /* waits already: unchanged */
    assert_non_null(strstr(out, "DSCC_ENTRY(Args a) {\n    // DSCC_PDL_WAIT() only")); /* kernel files opt in themselves */
    for (int i = 0; i < 4; i++) {
        char fn[8];
        snprintf(fn, sizeof fn, "p%d", i);
        assert_false(cg_kernel_waits(src, fn) && i < 3);
        assert_true(cg_kernel_waits(out, fn));
    }
    assert_false(cg_kernel_waits(out, "g1_file"));
    assert_true(cg_kernel_waits(out, "g2_file"));
    assert_false(cg_kernel_waits(out, "no_such_kernel"));
    assert_string_equal(cg_pdl_prologue(a, out, tu_tune()), out); /* once */
    setenv("DSCC_PDL_EARLY", "1", 1); /* the trigger first: the next kernel may launch before this one waits */
    char *early = cg_pdl_prologue(a, src, tu_tune());
    unsetenv("DSCC_PDL_EARLY");
    assert_int_equal(lines(early), lines(src));
    assert_non_null(strstr(early, "p0(Args a) {  // store\n    " CG_PDL_PROLOGUE_EARLY " const int i = 1;\n"));
    assert_non_null(strstr(early, "p2(Args a) { " CG_PDL_PROLOGUE_EARLY "  return; }"));
    assert_null(strstr(early, CG_PDL_PROLOGUE));
    assert_true(cg_kernel_waits(early, "p1"));
    assert_false(cg_kernel_waits(early, "g1_file"));
    arena_free(a);
}

static const char *PIPE = "shape-infer,fold-constants,dce,fp8-quant,cse,dce,node-limited-routing,fuse";

/* Each phase of the tiny FP8 model is marked exactly when its entry waits; the decode kernels this work opted in do. */
static void test_program_marks(void **state) {
    (void)state;
    TuFixture f;
    tu_fixture_open(&f, FIX);
    IrGraph *g = tu_compile(&f, PIPE, NULL, 0);
    CgProgram *p = cg_generate(f.a, f.d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int phases = 0, marked = 0, skinny = 0, mla = 0, gate = 0;
    char unmarked[512] = "";
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        const char *src = p->modules[ck->module].source;
        for (int ph = 0; ph < ck->nphases; ph++) {
            const CgPhase *f1 = &ck->phases[ph];
            assert_int_equal(f1->pdl, cg_kernel_waits(src, f1->fn));
            phases++, marked += f1->pdl;
            if (!f1->pdl && !strstr(unmarked, f1->fn) && strlen(unmarked) + strlen(f1->fn) + 2 < sizeof unmarked)
                strcat(strcat(unmarked, " "), f1->fn);
            if (strstr(f1->fn, "skinny")) skinny += f1->pdl ? 1 : -1000;
            if (strstr(f1->fn, "mla_decode")) mla += f1->pdl ? 1 : -1000;
            if (strstr(f1->fn, "route_topk")) gate += f1->pdl ? 1 : -1000;
        }
    }
    fprintf(stderr, "tiny FP8 model: %d of %d phases wait (skinny GEMM %d, MLA decode %d, gate %d); launched plainly:%s\n", marked, phases,
            skinny, mla, gate, unmarked);
    assert_true(skinny > 0 && mla >= 0 && gate > 0); /* (MLA's decode kernel only at V3's widths) */
    tu_fixture_close(&f);
}

/* ---- a writer, then a programmatic reader ------------------------------------ */

#define N_VALUES 4096

/* after codegen/kernels/args.cuh (Args, DSCC_PDL_WAIT, DSCC_PDL_LAUNCH_DEPENDENTS), as in a generated module */
static const char *SRC =
    "// t[0][i] = i + 1 after a delay (the reader may start before it ends), its dependents let start at once\n"
    "extern \"C\" __global__ void __launch_bounds__(256) writer(Args a) {\n"
    "    DSCC_PDL_LAUNCH_DEPENDENTS();\n"
    "    const int i = blockIdx.x * 256 + threadIdx.x;\n"
    "    unsigned h = (unsigned)i;\n"
    "    for (int r = 0; r < (int)a.sym[0]; r++) h = h * 1664525u + 1013904223u;\n"
    "    ((int *)a.t[0])[i] = i + 1 + (int)(h & (unsigned)a.sym[2]); // sym[2] is 0: the loop stays\n"
    "}\n"
    "// t[1][i] = t[0][i] * 2, waiting first (threads past sym[1] leave after their wait)\n"
    "extern \"C\" __global__ void __launch_bounds__(256) reader(Args a) {\n"
    "    const int i = blockIdx.x * 256 + threadIdx.x;\n"
    "    DSCC_PDL_WAIT();\n"
    "    if (i >= (int)a.sym[1]) return;\n"
    "    ((int *)a.t[1])[i] = ((const int *)a.t[0])[i] * 2;\n"
    "}\n"
    "// the same, but threads past sym[1] return before the wait (a GPU would not order them)\n"
    "extern \"C\" __global__ void __launch_bounds__(256) early(Args a) {\n"
    "    const int i = blockIdx.x * 256 + threadIdx.x;\n"
    "    if (i >= (int)a.sym[1]) return;\n"
    "    DSCC_PDL_WAIT();\n"
    "    ((int *)a.t[1])[i] = ((const int *)a.t[0])[i] * 2;\n"
    "}\n";

static char g_dir[] = "/tmp/dscc_pdl_XXXXXX";

/* In a child (tu_child_stderr): writer, then `reader` programmatically. */
static int run_pair(void *arg) {
    const char *reader = arg;
    Arena *a = arena_new();
    const CgSource src = {"pdl_pair", arena_printf(a, "%s%s", cg_kernel_prelude(a, "args"), SRC), {"test_gpu_pdl.c", 1, 1}};
    TuModule tm;
    TuCase st = tu_module_open(&tm, &src, strcmp(reader, "reader") != 0); /* early: emulated only */
    arena_free(a);
    if (st != TU_CASE_OK) return st;
    DiagEngine *d = tm.d;
    RtCuda *gpu = tm.gpu;
    RtModule *m = rt_cuda_module(gpu, d, tm.bin.data, "pdl_pair");
    RtKernel *kw = m ? rt_cuda_function(gpu, d, m, "writer") : NULL, *kr = m ? rt_cuda_function(gpu, d, m, reader) : NULL;
    RtDevPtr buf[2];
    if (!kw || !kr || !rt_cuda_alloc(gpu, d, 4 * N_VALUES, &buf[0]) || !rt_cuda_alloc(gpu, d, 4 * N_VALUES, &buf[1])) return TU_CASE_ERROR;
    fprintf(stderr, "%s: programmatic launches %s\n", rt_cuda_device_name(gpu), rt_cuda_has_pdl(gpu) ? "supported" : "not supported");
    int wrong = 0;
    for (int rep = 0; rep < 4; rep++) {
        CgArgs args = {.sym = {2000, N_VALUES - 100}};
        args.t[0] = buf[0], args.t[1] = buf[1];
        void *p[] = {&args};
        if (!rt_cuda_memset0(gpu, d, buf[0], 4 * N_VALUES) || !rt_cuda_memset0(gpu, d, buf[1], 4 * N_VALUES) ||
            !rt_cuda_launch_async(gpu, d, kw, N_VALUES / 256, 256, 0, p) || !rt_cuda_launch_pdl(gpu, d, kr, N_VALUES / 256, 256, 0, p) ||
            !rt_cuda_sync(gpu, d))
            return TU_CASE_LAUNCH_FAILED;
        int got[N_VALUES];
        if (!rt_cuda_download(gpu, d, got, buf[1], sizeof got)) return TU_CASE_ERROR;
        for (int i = 0; i < N_VALUES; i++) wrong += got[i] != (i < N_VALUES - 100 ? 2 * (i + 1) : 0);
    }
    fprintf(stderr, "%s: %d values wrong\n", reader, wrong);
    tu_module_close(&tm);
    return wrong ? TU_CASE_WRONG : TU_CASE_OK;
}

static int child(const char *reader, const char **err) { return tu_child_stderr(run_pair, (void *)reader, g_dir, err); }

static void test_pair(void **state) {
    (void)state;
    const char *err;
    int rc = child("reader", &err);
    if (rc != TU_CASE_OK) fprintf(stderr, "%s", err);
    assert_int_equal(rc, TU_CASE_OK);
    rc = child("early", &err);
    if (rc == TU_CASE_NOT_EMULATED) {
        printf("a missing wait: not on a GPU (it would race), only on the emulated device\n");
        return;
    }
    if (rc != TU_CASE_LAUNCH_FAILED || !strstr(err, "exited without executing griddepcontrol.wait")) fprintf(stderr, "early: exit %d:\n%s", rc, err);
    assert_int_equal(rc, TU_CASE_LAUNCH_FAILED);
    assert_non_null(strstr(err, "griddepcontrol.wait"));
    assert_non_null(strstr(err, "early"));
}

/* ---- the model, with and without ------------------------------------------------ */

typedef void (*LaunchCounts)(long *, long *);

/* The emulated driver's launch counters (NULL on a GPU). */
static LaunchCounts emu_counts(void) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    LaunchCounts fn = NULL;
    if (lib) *(void **)&fn = dlsym(lib, "emuLaunchCounts");
    return fn;
}

#define STEPS 4 /* a prefill, two decode steps in graphs (capture, replay), one without */

/* Runs the steps with DSCC_PDL=pdl (and DSCC_GEMM_TMA=tma, NULL: unset); the logits of each step into lg[step]
 * (malloc'd), the launches per step and how many were programmatic. */
static void run_model(TuFixture *f, IrGraph *g, const RtArray *tok, const char *pdl, const char *tma, bool early, float *lg[STEPS],
                      int64_t *n, int pdl_launches[STEPS], int launches[STEPS]) {
    int64_t B = tok->shape[0], S = tok->shape[1], P = S - (STEPS - 1);
    setenv("DSCC_PDL", pdl, 1);
    if (tma) setenv("DSCC_GEMM_TMA", tma, 1), setenv("DSCC_GEMM_SKINNY", "0", 1);
    if (early) setenv("DSCC_PDL_EARLY", "1", 1);
    CpuWeightSource ws = {rt_checkpoint_read_f32, f->ck};
    GpuOptions go = {.tune = tu_tune(), .max_batch = B, .max_seq = P, .max_ctx = S, .graphs = true};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, f->d);
    unsetenv("DSCC_PDL");
    unsetenv("DSCC_GEMM_TMA");
    unsetenv("DSCC_GEMM_SKINNY");
    unsetenv("DSCC_PDL_EARLY");
    assert_non_null(gx);
    if (strcmp(pdl, "0") == 0) assert_false(gpu_exec_pdl(gx));
    else if (strstr(gpu_exec_device(gx), "mulated")) assert_true(gpu_exec_pdl(gx)); /* the emulated driver has it */
    LaunchCounts counts = emu_counts();
    float *stok = malloc(sizeof(float) * (size_t)(B * S)), *spos = malloc(sizeof(float) * (size_t)(B * S));
    for (int s = 0, t0 = 0; s < STEPS; s++) {
        int64_t len = s == 0 ? P : 1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < len; j++) stok[b * len + j] = tok->data[b * S + t0 + j], spos[b * len + j] = (float)(t0 + j);
        CpuInput in[2] = {{"tokens", 2, {B, len}, stok}, {"positions", 2, {B, len}, spos}};
        if (s == STEPS - 1) gpu_exec_set_graphs(gx, false);
        long l0 = 0, p0 = 0, l1 = 0, p1 = 0;
        if (counts) counts(&l0, &p0);
        assert_true(gpu_exec_run(gx, in, 2, f->d));
        if (counts) counts(&l1, &p1);
        pdl_launches[s] = gpu_exec_last_pdl_launches(gx);
        launches[s] = gpu_exec_last_launches(gx);
        if (counts) { /* what the driver was given, graph nodes included */
            assert_int_equal(l1 - l0, gpu_exec_last_launches(gx) - gpu_exec_last_lib_calls(gx));
            assert_int_equal(p1 - p0, pdl_launches[s]);
        }
        int rk;
        int64_t dims[IR_MAX_RANK];
        const float *out = gpu_exec_output(gx, "logits", &rk, dims);
        assert_non_null(out);
        n[s] = 1;
        for (int i = 0; i < rk; i++) n[s] *= dims[i];
        lg[s] = malloc(sizeof(float) * (size_t)n[s]);
        memcpy(lg[s], out, sizeof(float) * (size_t)n[s]);
        t0 += (int)len;
    }
    GpuGraphStats gs;
    gpu_exec_graph_stats(gx, &gs);
    assert_true(gs.replays >= 1); /* the second decode step replayed the first one's graph */
    free(stok);
    free(spos);
    gpu_exec_free(gx);
}

/* The steps with DSCC_PDL=1 (and DSCC_PDL_EARLY=1 where early: every kernel that can lets the next launch first) and
 * =0 (DSCC_GEMM_TMA=tma): the same bits, as many launches, programmatic ones only with it on; how many launches of
 * the PDL=1 run were plain. */
static int compare_runs(TuFixture *f, IrGraph *g, const RtArray *tok, const char *tma, bool early) {
    float *on[STEPS], *off[STEPS];
    int64_t non[STEPS], noff[STEPS];
    int pon[STEPS], poff[STEPS], lon[STEPS], loff[STEPS], plain = 0;
    run_model(f, g, tok, "1", tma, early, on, non, pon, lon);
    run_model(f, g, tok, "0", tma, false, off, noff, poff, loff);
    for (int s = 0; s < STEPS; s++) {
        fprintf(stderr, "%sstep %d: %d of %d launches programmatic with DSCC_PDL=1%s, %d of %d with 0; %lld logits, the same bits\n",
                tma ? "DSCC_GEMM_TMA=all DSCC_GEMM_SKINNY=0, " : "", s, pon[s], lon[s], early ? " DSCC_PDL_EARLY=1" : "", poff[s], loff[s],
                (long long)non[s]);
        assert_int_equal(non[s], noff[s]);
        assert_int_equal(lon[s], loff[s]);
        assert_memory_equal(on[s], off[s], sizeof(float) * (size_t)non[s]); /* the same kernels in the same order: the same bits */
        assert_int_equal(poff[s], 0);
        if (emu_counts() || pon[0]) assert_true(pon[s] > 0); /* the emulated driver, or a GPU that has them */
        plain += lon[s] - pon[s];
        free(on[s]);
        free(off[s]);
    }
    return plain;
}

static void test_model(void **state) {
    (void)state;
    TuFixture f;
    tu_fixture_open(&f, FIX);
    IrGraph *g = tu_compile(&f, PIPE, NULL, 0);
    RtArray tok;
    tu_read_npy(&f, FIX "/tokens.npy", &tok);
    assert_true(tok.shape[1] > STEPS);
    compare_runs(&f, g, &tok, NULL, true); /* the early trigger (DSCC_PDL_EARLY=1): on a GPU the kernels overlap more */
    /* the TMA GEMM (codegen/kernels/gemm_tma.cuh) does not wait: where it runs (every FP8 linear, the skinny form
     * off), it is launched plainly (the emulated driver fails a programmatic launch of a kernel that does not wait) */
    int plain = compare_runs(&f, g, &tok, "all", false);
    if (emu_counts()) assert_true(plain > 0);
    CpuWeightSource ws = {rt_checkpoint_read_f32, f.ck};
    GpuOptions go = {.tune = tu_tune(), .max_batch = 1, .max_seq = 1, .max_ctx = 2};
    GpuExec *gx = gpu_exec_new(g, &ws, &go, f.d); /* unset: programmatic launches, the default */
    assert_non_null(gx);
    assert_true(gpu_exec_pdl(gx));
    gpu_exec_free(gx);
    free(tok.data);
    tu_fixture_close(&f);
}

int main(void) {
    if (!mkdtemp(g_dir)) return 1;
    const struct CMUnitTest codegen[] = {cmocka_unit_test(test_prologue), cmocka_unit_test(test_program_marks)};
    const struct CMUnitTest pair[] = {cmocka_unit_test(test_pair)};
    const struct CMUnitTest model[] = {cmocka_unit_test(test_model)};
    int failed = cmocka_run_group_tests_name("codegen", codegen, NULL, NULL);
    /* the children first: a process forked after CUDA was initialised in its parent cannot use the driver, so this one
     * initialises it only after them (and its first child says whether there is a Hopper GPU, real or emulated) */
    const char *err;
    int rc = child("reader", &err);
    if (rc == TU_CASE_NO_HOPPER) printf("skipped: no Hopper GPU (sm_90), real or emulated: the device part\n");
    else failed += cmocka_run_group_tests_name("pair", pair, NULL, NULL) + cmocka_run_group_tests_name("model", model, NULL, NULL);
    rmdir(g_dir);
    return failed;
}
