/* test_gpu_barrier.c — named barriers (bar.sync / bar.arrive id, count:
 * codegen/kernels/hopper.cuh's hp_bar_sync, hp_bar_arrive), what the
 * producer / consumer pipelines (mla_decode.cuh, attn_prefill_wgmma.cuh)
 * synchronise with, on a GPU or the emulated device (ctest
 * emu.test_gpu_barrier); without either it exits 77 (skipped).
 *  - a ring of two slots, one warp filling it and one warp summing it,
 *    "full" and "empty" barriers per slot: the exact sums, on even and odd
 *    blocks (the emulator runs their threads in opposite orders);
 *  - on the emulated device only (a GPU would hang or race): the same ring
 *    without the "full" barriers gives wrong sums or runs a phase ahead
 *    (the control: a missing wait shows), and a launch fails naming the fault for a
 *    count one arrival disagrees on, a barrier that can never complete
 *    (deadlock), barrier 0 (__syncthreads'), a count no multiple of 32 and
 *    a thread arriving twice in one phase (a producer a phase ahead).
 * Each case runs in a child process: a failed launch poisons the context. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "runtime/cuda.h"
#include "tests/unit/testutil.h"

#define ROUNDS 16
#define BLOCKS 4 /* the emulator starves warp (block / 2) % warps: blocks 2, 3 starve warp 1 */

/* after codegen/kernels/args.cuh (Args) and hopper.cuh (hp_bar_sync, hp_bar_arrive), as a kernel file takes them */
static const char *SRC =
    "// warp 0 fills a ring of two slots, warp 1 sums it: slot s full at barrier 1 + s, empty at 3 + s;\n"
    "// sym[0] == 0: no \"full\" barrier (the missing wait)\n"
    "extern \"C\" __global__ void __launch_bounds__(64) ring(Args a) {\n"
    "    __shared__ int slot[2][32];\n"
    "    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;\n"
    "    if (w == 0) {\n"
    "        for (int r = 0; r < 16; r++) {\n"
    "            if (r >= 2) hp_bar_sync(3 + (r & 1), 64);\n"
    "            slot[r & 1][l] = (int)blockIdx.x * 1000 + r * 32 + l;\n"
    "            if (a.sym[0]) hp_bar_arrive(1 + (r & 1), 64);\n"
    "        }\n"
    "        return;\n"
    "    }\n"
    "    long long sum = 0;\n"
    "    for (int r = 0; r < 16; r++) {\n"
    "        if (a.sym[0]) hp_bar_sync(1 + (r & 1), 64);\n"
    "        sum += slot[r & 1][l];\n"
    "        if (r + 2 < 16) hp_bar_arrive(3 + (r & 1), 64);\n"
    "    }\n"
    "    ((long long *)a.t[0])[blockIdx.x * 32 + l] = sum;\n"
    "}\n"
    "// the faults, 128 threads: no set of arrivals completes barrier 1 with its own count\n"
    "extern \"C\" __global__ void __launch_bounds__(128) bad_count(Args a) { hp_bar_sync(1, threadIdx.x < 32 ? 96 : 128); }\n"
    "extern \"C\" __global__ void __launch_bounds__(128) deadlock(Args a) { if (threadIdx.x < 32) hp_bar_sync(2, 64); }\n"
    "extern \"C\" __global__ void __launch_bounds__(128) bad_id(Args a) { hp_bar_sync(0, 64); }\n"
    "extern \"C\" __global__ void __launch_bounds__(128) bad_n(Args a) { hp_bar_arrive(5, 48); }\n"
    "extern \"C\" __global__ void __launch_bounds__(128) twice(Args a) {\n"
    "    if (threadIdx.x < 32) hp_bar_arrive(6, 64), hp_bar_arrive(6, 64);\n"
    "    else if (threadIdx.x < 64) hp_bar_sync(6, 64);\n"
    "}\n";

typedef struct {
    const char *kernel;
    int wait_full; /* ring: sym[0] */
} Case;

/* In a child (tu_child_stderr): compiles the module, launches `kernel` on
 * BLOCKS blocks of 64 threads (the faults: 128) and checks ring's sums. */
static int run_case(void *arg) {
    const Case *c = arg;
    Arena *a = arena_new();
    const CgSource src = {"barriers", arena_printf(a, "%s%s%s", cg_kernel_prelude(a, "args"), cg_kernel_prelude(a, "hopper"), SRC),
                          {"test_gpu_barrier.c", 1, 1}};
    TuModule m;
    TuCase st = tu_module_open(&m, &src, strcmp(c->kernel, "ring") != 0 || !c->wait_full); /* the faults: emulated only */
    arena_free(a);
    if (st != TU_CASE_OK) return st;
    DiagEngine *d = m.d;
    RtCuda *gpu = m.gpu;
    RtKernel *k = rt_cuda_kernel(gpu, d, m.bin.data, c->kernel);
    RtDevPtr out;
    if (!k || !rt_cuda_alloc(gpu, d, sizeof(long long) * 32 * BLOCKS, &out)) return TU_CASE_ERROR;
    CgArgs args = {.sym = {c->wait_full}};
    args.t[0] = out;
    void *p[] = {&args};
    if (!rt_cuda_launch(gpu, d, k, BLOCKS, strcmp(c->kernel, "ring") ? 128 : 64, 0, p) || !rt_cuda_sync(gpu, d)) return TU_CASE_LAUNCH_FAILED;
    long long sums[32 * BLOCKS];
    if (!rt_cuda_download(gpu, d, sums, out, sizeof sums)) return TU_CASE_ERROR;
    int wrong = 0;
    for (int b = 0; b < BLOCKS; b++)
        for (int l = 0; l < 32; l++) {
            long long want = 0;
            for (int r = 0; r < ROUNDS; r++) want += b * 1000 + r * 32 + l;
            wrong += sums[b * 32 + l] != want;
        }
    fprintf(stderr, "%s: %d of %d sums wrong\n", c->kernel, wrong, 32 * BLOCKS);
    tu_module_close(&m);
    return wrong ? TU_CASE_WRONG : TU_CASE_OK;
}

static char g_dir[] = "/tmp/dscc_barrier_XXXXXX";

/* Runs a case in a child; *err: what it wrote on stderr (static). */
static int child(const char *kernel, int wait_full, const char **err) {
    Case c = {kernel, wait_full};
    return tu_child_stderr(run_case, &c, g_dir, err);
}

static void test_ring(void **state) {
    (void)state;
    const char *err;
    int rc = child("ring", 1, &err);
    if (rc != TU_CASE_OK) fprintf(stderr, "%s", err);
    assert_int_equal(rc, TU_CASE_OK);
}

/* Emulated device only: the control and the faults. */
static void test_faults(void **state) {
    (void)state;
    const char *err;
    int rc = child("ring", 0, &err);
    if (rc == TU_CASE_NOT_EMULATED) {
        printf("faults: not on a GPU (it would hang or race), only on the emulated device\n");
        return;
    }
    /* the consumer runs ahead: it sums slots not filled yet, or arrives at "empty" a phase ahead */
    bool shown = rc == TU_CASE_WRONG || (rc == TU_CASE_LAUNCH_FAILED && strstr(err, "arrives twice in one phase"));
    if (!shown) fprintf(stderr, "%s", err);
    assert_true(shown);
    static const struct {
        const char *kernel, *want;
    } faults[] = {{"bad_count", "named barrier 1: this thread arrives expecting"},
                  {"deadlock", "deadlock: named barrier 2 waits for 64 threads, 32 arrived"},
                  {"bad_id", "named barrier id outside 1..15"},
                  {"bad_n", "named barrier count not a multiple of 32"},
                  {"twice", "named barrier 6: this thread arrives twice in one phase"}};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        rc = child(faults[i].kernel, 1, &err);
        if (rc != TU_CASE_LAUNCH_FAILED || !strstr(err, faults[i].want))
            fprintf(stderr, "%s: exit %d, expected a failed launch saying \"%s\"; it said:\n%s", faults[i].kernel, rc, faults[i].want, err);
        assert_int_equal(rc, TU_CASE_LAUNCH_FAILED);
        assert_non_null(strstr(err, faults[i].want));
        assert_non_null(strstr(err, faults[i].kernel));
    }
}

int main(void) {
    if (!mkdtemp(g_dir)) return 1;
    const char *err;
    int rc = child("ring", 1, &err); /* also: is there a Hopper, real or emulated */
    if (rc == TU_CASE_NO_HOPPER) {
        printf("skipped: no Hopper GPU (sm_90), real or emulated\n");
        rmdir(g_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ring), cmocka_unit_test(test_faults)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(g_dir);
    return failed;
}
