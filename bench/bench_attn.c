/* bench_attn.c — the prefill attention kernel alone at MLA's naive shape
 * (128 heads, d_qk 192 = 128 + 64, d_v 128, causal, nothing cached), its
 * forms side by side in one process on one GPU: FlashAttention-2 style on
 * mma.sync (codegen/kernels/attn_prefill.cuh, DSCC_ATTN_WGMMA=0), the
 * wgmma form (attn_prefill_wgmma.cuh) with its consumers' ping-pong (the
 * default) and without (DSCC_ATTN_WGMMA=2). k and v are read where MLA's
 * naive form leaves them, as gen_attn.c's defines for V3 say: k's first
 * 128 columns and v from kv_b's output [B, S, 128 x 256], the rotary key
 * from the cache's rows of 576 (column 512, head stride 0); q [B, S, 128,
 * 192] bf16, out f32. No weights, no graph: random bf16 inputs uploaded
 * once; per form 2 warm-up runs, then --reps (default 20) launches timed by
 * events right around each; the median and best time and TFLOPS (2 B H
 * (S (S + 1) / 2) (192 + 128) FLOPs: the causal keys only) per form, and
 * each form's output against the first's (other sums' orders: within 2e-2
 * of max(1, |x|)). Run on the GPU machine:
 *   build/bench_attn [--batch B] [--seq S] [--heads H] [--reps N]
 * The emulated device (tests/emu) runs `--seq 130 --heads 2 --reps 1`. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "runtime/cuda.h"

typedef struct {
    const char *label, *file, *pingpong;
    unsigned threads;
} Form;

static const Form FORMS[] = {{"mma.sync, FlashAttention-2 style (DSCC_ATTN_WGMMA=0)", "attn_prefill", NULL, 256},
                             {"wgmma, ping-pong (default)", "attn_prefill_wgmma", "1", 384},
                             {"wgmma, no ping-pong (DSCC_ATTN_WGMMA=2)", "attn_prefill_wgmma", "0", 384}};
enum { NF = (int)(sizeof FORMS / sizeof *FORMS), DK = 192, DN = 128, DV = 128 };
/* the forms' dynamic shared memory (gen_attn.c's ATTN_PREFILL_SMEM and ATTN_WGMMA_SMEM at d_qk 192, d_v 128) */
static size_t form_smem(const Form *f) {
    return f->pingpong ? 1024 + 2 * 3 * 8192 + 2 * (3 + 2) * 128 * 128 + 64 : 128 * (DK * 2 + 16) + 3 * 64 * (DK * 2 + 16 + DV * 2 + 16);
}

/* Form f's source at (B, S, H): slots 0 q, 1 kv_b's output, 2 the cache rows, 3 out. */
static CgSource source(Arena *a, const Form *f, long long B, long long S, long long H) {
    const char *bs = arena_printf(a, "%lldLL", B), *ss = arena_printf(a, "%lldLL", S), *hs = arena_printf(a, "%lldLL", H);
    CgDefine d[] = {{"ATTN_B", bs},
                    {"ATTN_S", ss},
                    {"ATTN_T", ss},
                    {"ATTN_HQ", hs},
                    {"ATTN_HK", hs},
                    {"ATTN_DK", "192LL"},
                    {"ATTN_DV", "128LL"},
                    {"ATTN_KD0", "128LL"},
                    {"ATTN_Q", "((const unsigned short *)a.t[0])"},
                    {"ATTN_Q1", "((const unsigned short *)a.t[0])"},
                    {"ATTN_QD0", "192LL"},
                    {"ATTN_STORE(i, v)", "(((float *)a.t[3])[i] = (v))"},
                    {"ATTN_CAUSAL", "1"},
                    {"ATTN_SCALE", "0.0721687836f"},
                    {"ATTN_K", "((const unsigned short *)a.t[1])"},
                    {"ATTN_KT", ss},
                    {"ATTN_KRS", arena_printf(a, "%lldLL", H * (DN + DV))},
                    {"ATTN_KHS", arena_printf(a, "%dLL", DN + DV)},
                    {"ATTN_K0", "0LL"},
                    {"ATTN_K1", "((const unsigned short *)a.t[2])"},
                    {"ATTN_K1T", ss},
                    {"ATTN_K1RS", "576LL"},
                    {"ATTN_K1HS", "0LL"},
                    {"ATTN_K10", "512LL"},
                    {"ATTN_V", "((const unsigned short *)a.t[1])"},
                    {"ATTN_VT", ss},
                    {"ATTN_VRS", arena_printf(a, "%lldLL", H * (DN + DV))},
                    {"ATTN_VHS", arena_printf(a, "%dLL", DN + DV)},
                    {"ATTN_V0", arena_printf(a, "%dLL", DN)},
                    {"AW_PINGPONG", f->pingpong ? f->pingpong : "1"}};
    const int nd = (int)(sizeof d / sizeof *d) - (f->pingpong ? 0 : 1);
    /* after args.cuh and mma.cuh, as a generated module with the attention begins (the argument block, codegen/gen.h's
     * CgArgs; the mma.sync form's helpers, cg_mma_helpers) */
    const char *text = arena_printf(a, "%s%s%s", cg_kernel_prelude(a, "args"), cg_kernel_prelude(a, "mma"),
                                    cg_kernel_instance(a, f->file, "attn_bench", d, nd));
    return (CgSource){"attn_bench", text, {arena_printf(a, "codegen/kernels/%s.cuh", f->file), 0, 0}};
}

static bool parse_args(int argc, char **argv, long long *B, long long *S, long long *H, int *reps) {
    for (int i = 1; i < argc; i++) {
        long long *dst = !strcmp(argv[i], "--batch") ? B : !strcmp(argv[i], "--seq") ? S : !strcmp(argv[i], "--heads") ? H : NULL;
        if ((dst || !strcmp(argv[i], "--reps")) && i + 1 < argc) {
            char *end;
            long long x = strtoll(argv[++i], &end, 10);
            if (*end || x < 1 || x > (dst == S ? 1 << 16 : 4096)) {
                fprintf(stderr, "bench_attn: %s takes a positive integer within bounds, not '%s'\n", argv[i - 1], argv[i]);
                return false;
            }
            if (dst) *dst = x;
            else *reps = (int)x;
            continue;
        }
        fprintf(stderr, "usage: bench_attn [--batch B] [--seq S] [--heads H] [--reps N]\n");
        return false;
    }
    return true;
}

int main(int argc, char **argv) {
    long long B = 1, S = 1024, H = 128;
    int reps = 20;
    if (!parse_args(argc, argv, &B, &S, &H, &reps)) return 2;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtCuda *gpu = rt_cuda_open(d, 0);
    if (!gpu) return 3;
    const long long grid = B * H * ((S + 127) / 128);
    const size_t nq = (size_t)(B * S * H * DK), nkv = (size_t)(B * S * H * (DN + DV)), nr = (size_t)(B * S * 576), no = (size_t)(B * S * H * DV);
    uint16_t *q = malloc(nq * 2), *kv = malloc(nkv * 2), *rows = malloc(nr * 2);
    float *out = malloc(no * 4), *first = malloc(no * 4), *ms = malloc(sizeof(float) * (size_t)reps);
    RtDevPtr dq, dkv, dr, dout;
    if (!q || !kv || !rows || !out || !first || !ms) return 3;
    uint64_t rng = 88172645463325252ull;
    bench_fill_bf16(q, nq, &rng), bench_fill_bf16(kv, nkv, &rng), bench_fill_bf16(rows, nr, &rng);
    if (!rt_cuda_alloc(gpu, d, nq * 2, &dq) || !rt_cuda_alloc(gpu, d, nkv * 2, &dkv) || !rt_cuda_alloc(gpu, d, nr * 2, &dr) ||
        !rt_cuda_alloc(gpu, d, no * 4, &dout) || !rt_cuda_upload(gpu, d, dq, q, nq * 2) || !rt_cuda_upload(gpu, d, dkv, kv, nkv * 2) ||
        !rt_cuda_upload(gpu, d, dr, rows, nr * 2))
        return 3;
    const double flops = 2.0 * (double)B * (double)H * ((double)S * (double)(S + 1) / 2.0) * (DK + DV);
    printf("prefill attention kernel alone: batch %lld, %lld positions (causal, none cached), %lld heads, d_qk 192 / d_v 128, "
           "%lld blocks, %d runs each\n\n", B, S, H, grid, reps);
    printf("| form | median ms | TFLOPS | best ms | TFLOPS | output as the first |\n|---|---|---|---|---|---|\n");
    int status = 0;
    for (int fi = 0; fi < NF; fi++) {
        const Form *f = &FORMS[fi];
        CgSource src = source(a, f, B, S, H);
        CgBinary bin = {0};
        RtKernel *k;
        if (!bench_kernels(a, d, gpu, &src, 1, &bin, &k)) return 3;
        RtEvent *e0 = rt_cuda_event(gpu, d), *e1 = rt_cuda_event(gpu, d);
        if (!e0 || !e1) return 3;
        CgArgs args = {.t = {dq, dkv, dr, dout}};
        void *p[] = {&args};
        for (int r = -2; r < reps; r++) {
            if (!rt_cuda_event_record(gpu, d, e0) || !rt_cuda_launch_async(gpu, d, k, (unsigned)grid, f->threads, form_smem(f), p) ||
                !rt_cuda_event_record(gpu, d, e1))
                return 3;
            float t;
            if (!rt_cuda_event_ms(gpu, d, e0, e1, &t)) return 3;
            if (r >= 0) ms[r] = t;
        }
        if (!rt_cuda_download(gpu, d, fi ? out : first, dout, no * 4)) return 3;
        double worst = 0;
        for (size_t i = 0; fi && i < no; i++) {
            const double e = fabs((double)out[i] - (double)first[i]) / (fabs((double)first[i]) > 1.0 ? fabs((double)first[i]) : 1.0);
            if (!(e <= worst)) worst = e;
        }
        char as[64];
        snprintf(as, sizeof as, fi == 0 ? "(the first)" : worst <= 2e-2 ? "max diff %.1e" : "DIFFERS (max diff %.1e)", worst);
        bench_sort_ms(ms, reps);
        const double med = ms[reps / 2], best = ms[0];
        printf("| %s | %.4f | %.1f | %.4f | %.1f | %s |\n", f->label, med, flops / (med * 1e-3) / 1e12, best, flops / (best * 1e-3) / 1e12, as);
        fflush(stdout); /* a later form that hangs leaves these lines behind */
        if (!(worst <= 2e-2)) fprintf(stderr, "bench_attn: %s: outputs differ from the first form's by up to %.2e\n", f->label, worst);
        status |= !(worst <= 2e-2);
        rt_cuda_event_free(gpu, e0);
        rt_cuda_event_free(gpu, e1);
        cg_binary_free(&bin);
    }
    rt_cuda_close(gpu);
    free(q), free(kv), free(rows), free(out), free(first), free(ms);
    arena_free(a);
    return status;
}
