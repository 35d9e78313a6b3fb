/* test_codegen.c — NVRTC compilation and the kernel cache, on any machine
 * (NVRTC needs no GPU): a real kernel becomes an sm_90a cubin holding its
 * symbol, a second compile comes from the cache, a damaged (truncated,
 * changed, swapped, garbage) cache entry is recompiled and counted, a
 * directory or FIFO in the cache's way is warned about once, a changed source misses, and a compile error names the
 * kernel, its location and NVRTC's log; the launch rules of split-key
 * attention; which router linears read through their casts; the launches
 * of a two-layer V3 decode step (no scale transpose before a cuBLASLt GEMM,
 * no cast after the LM head). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/gen.h"
#include "codegen/kernels.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "tests/unit/testutil.h"

static const char *AXPY =
    "#include <cuda_bf16.h>\n"
    "extern \"C\" __global__ void axpy_bf16(int n, float a, const __nv_bfloat16 *x, __nv_bfloat16 *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) y[i] = __float2bfloat16(a * __bfloat162float(x[i]) + __bfloat162float(y[i]));\n"
    "}\n";

static bool has_symbol(const CgBinary *b, const char *sym) {
    size_t n = strlen(sym);
    for (size_t i = 0; i + n <= b->size; i++)
        if (memcmp((const char *)b->data + i, sym, n) == 0) return true;
    return false;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static void test_compile_and_cache(void **state) {
    (void)state;
    assert_true(cg_nvrtc_version() >= 12000);
    char dir[] = "/tmp/dscc_cg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgOptions o = {.cache_dir = dir, .threads = 2};
    CgSource src[2] = {{"axpy_bf16", AXPY, {"test.dsl", 1, 1}},
                       {"scale_f32", "extern \"C\" __global__ void scale_f32(float *x, float s) { x[threadIdx.x] *= s; }\n", {0}}};
    CgBinary bins[2];
    assert_int_equal(cg_compile(a, d, src, 2, &o, bins), 0);
    for (int i = 0; i < 2; i++) {
        assert_true(bins[i].size > 1000);
        assert_memory_equal(bins[i].data, "\177ELF", 4);
        assert_false(bins[i].from_cache);
    }
    assert_true(has_symbol(&bins[0], "axpy_bf16"));
    assert_int_equal(count_files(dir), 2);
    size_t size0 = bins[0].size;
    cg_binary_free(&bins[0]);
    cg_binary_free(&bins[1]);
    /* warm: both from the cache, the same bytes */
    assert_int_equal(cg_compile(a, d, src, 2, &o, bins), 0);
    assert_true(bins[0].from_cache && bins[1].from_cache);
    assert_int_equal(bins[0].size, size0);
    cg_binary_free(&bins[0]);
    cg_binary_free(&bins[1]);
    /* a damaged entry is compiled again */
    DIR *dd = opendir(dir);
    for (struct dirent *e; (e = readdir(dd));)
        if (strncmp(e->d_name, "axpy_bf16-", 10) == 0) {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            FILE *f = fopen(p, "wb");
            fputs("garbage", f);
            fclose(f);
        }
    closedir(dd);
    assert_int_equal(cg_compile(a, d, src, 1, &o, bins), 0);
    assert_false(bins[0].from_cache);
    assert_memory_equal(bins[0].data, "\177ELF", 4);
    cg_binary_free(&bins[0]);
    /* another source is another key */
    CgSource other = {"axpy_bf16", "extern \"C\" __global__ void axpy_bf16(float *x) { x[0] = 1.0f; }\n", {0}};
    assert_int_equal(cg_compile(a, d, &other, 1, &o, bins), 0);
    assert_false(bins[0].from_cache);
    cg_binary_free(&bins[0]);
    assert_int_equal(count_files(dir), 3);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    arena_free(a);
}

/* Each embedded kernel file compiles on its own with NVRTC under its entry
 * name, its includes written in; a file with no entry point is a prelude
 * some kernel file includes; the lookup refuses a name that is not a file. */
static void test_kernel_files(void **state) {
    (void)state;
    assert_null(cg_kernel_file("no_such_kernel"));
    Arena *a = arena_new();
    assert_null(cg_kernel_instance(a, "no_such_kernel", "x", NULL, 0));
    DiagEngine *d = diag_new(a, stderr);
    char dir[] = "/tmp/dscc_cgk_XXXXXX";
    assert_non_null(mkdtemp(dir));
    CgOptions o = {.cache_dir = dir, .threads = 2};
    int n = 0;
    for (const CgKernelFile *f = cg_kernel_files; f->name; f++, n++) {
        assert_int_equal(strlen(f->text), f->len);
        if (!strstr(f->text, "DSCC_ENTRY(")) { /* a prelude (hopper.cuh), or what the generator writes itself */
            const char *inc = arena_printf(a, "\n#include \"%s.cuh\"\n", f->name);
            bool used = !strcmp(f->name, "gemm_tile") || !strcmp(f->name, "gemm_tile_helpers") || !strcmp(f->name, "attn_mma"); /* test_fragments_alone */
            for (const CgKernelFile *k = cg_kernel_files; k->name; k++) used |= strstr(k->text, inc) != NULL;
            assert_true(used);
            continue;
        }
        const char *entry = arena_printf(a, "g0_%s", f->name);
        CgSource src = {entry, cg_kernel_instance(a, f->name, entry, NULL, 0), {0}};
        assert_int_equal(strncmp(src.source, "#define DSCC_ENTRY ", 19), 0);
        assert_null(strstr(src.source, "\n#include \"")); /* each include written in */
        CgBinary bin;
        assert_int_equal(cg_compile(a, d, &src, 1, &o, &bin), 0);
        assert_true(has_symbol(&bin, entry));
        cg_binary_free(&bin);
    }
    assert_true(n >= 1);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    arena_free(a);
}

/* One compile of src (entry g0_frag) with NVRTC, failing the test with what where it does not compile. */
static void expect_compiles(Arena *a, DiagEngine *d, const CgOptions *o, const char *src, const char *what) {
    assert_null(strstr(src, "\n#include \""));
    CgSource s = {"g0_frag", src, {0}};
    CgBinary bin;
    if (cg_compile(a, d, &s, 1, o, &bin) != 0) fail_msg("%s does not compile", what);
    assert_true(has_symbol(&bin, "g0_frag"));
    cg_binary_free(&bin);
}

/* The fragment files, a phase's body with no entry point, compile with NVRTC in each of their forms inside a
 * stand-in phase function, the module-scope text before them as the generator writes it: the files compiled alone,
 * as test_kernel_files does the kernel files (the generated modules that take them are test_gpu_ops' and
 * tools/cubins.sh's). gemm_tile.cuh: wgmma and mma.sync, FP8 and BF16, w [O][K] and [K][O], K a multiple of 16
 * and not, gemm_tile_helpers.cuh and mma.cuh before it. attn_mma.cuh: the whole keys and the split form, v its
 * own tile and k's, causal and not, mma.cuh, f2bf and cg_key_splits before it. */
static void test_fragments_alone(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    char dir[] = "/tmp/dscc_cgt_XXXXXX";
    assert_non_null(mkdtemp(dir));
    CgOptions o = {.cache_dir = dir, .threads = 2};
    static const struct { int wgmma, bf16, wt; const char *K; } forms[] = {
        {1, 0, 0, "7168LL"}, {1, 1, 0, "1024LL"}, {1, 1, 1, "256LL"}, {0, 0, 0, "7168LL"}, {0, 1, 1, "256LL"}, {0, 0, 0, "200LL"}};
    for (int f = 0; f < (int)(sizeof forms / sizeof *forms); f++) {
        const CgDefine defs[] = {{"GTL_WGMMA", forms[f].wgmma ? "1" : "0"}, {"GTL_BF16", forms[f].bf16 ? "1" : "0"},
                                 {"GTL_WT", forms[f].wt ? "1" : "0"}, {"GTL_K", forms[f].K}, {"GTL_O", "a.sym[1]"}, {"GTL_X", "0"},
                                 {"GTL_W", "1"}, {"GTL_WS(i)", "((const float *)a.t[2])[i]"},
                                 {"GTL_XS(r, kb)", "((const float *)a.t[3])[(long long)(r) * nkb + (kb)]"}, {"GTL_KB0", "0"}, {"GTL_KB1", "nkb"},
                                 {"GTL_STORE(r, o, v)", "((float *)a.t[4])[(long long)(r) * O + (o)] = (v)"}};
        const char *frag = cg_kernel_fragment(a, "gemm_tile", defs, (int)(sizeof defs / sizeof *defs));
        assert_non_null(frag);
        const char *src = arena_printf(a,
            "%s%s#define GTL_WGMMA %d\n%s#undef GTL_WGMMA\n"
            "extern \"C\" __global__ void __launch_bounds__(256) g0_frag(Args a) {\n"
            "    extern __shared__ __align__(16) unsigned char sm[];\n"
            "    __shared__ int srow[64], yrow[64];\n"
            "    const long long M = a.sym[0], nt = (a.sym[1] + 127) / 128, ot = blockIdx.x %% nt, m0 = blockIdx.x / nt * 64, e = 0;\n"
            "    if (threadIdx.x < 64) srow[threadIdx.x] = yrow[threadIdx.x] = m0 + threadIdx.x < M ? (int)(m0 + threadIdx.x) : -1;\n"
            "    __syncthreads();\n%s}\n",
            cg_kernel_prelude(a, "args"), cg_kernel_prelude(a, "mma"), forms[f].wgmma, cg_kernel_prelude(a, "gemm_tile_helpers"), frag);
        expect_compiles(a, d, &o, src, arena_printf(a, "gemm_tile.cuh, form %d (wgmma %d, bf16 %d, wt %d, K %s)", f, forms[f].wgmma,
                                                    forms[f].bf16, forms[f].wt, forms[f].K));
    }
    static const struct { int split, vk, causal; } attn[] = {{0, 1, 1}, {1, 1, 1}, {0, 0, 0}, {1, 0, 0}};
    for (int f = 0; f < (int)(sizeof attn / sizeof *attn); f++) {
        const CgDefine defs[] = {{"ATM_SPLIT", attn[f].split ? "1" : "0"}, {"ATM_S", "a.sym[1]"}, {"ATM_T", "a.sym[2]"}, {"ATM_HQ", "128LL"},
                                 {"ATM_DK", "576LL"}, {"ATM_DV", "512LL"}, {"ATM_QST", "1168LL"}, {"ATM_KT", "a.cap"},
                                 {"ATM_VT", attn[f].vk ? "a.cap" : "a.sym[2]"}, {"ATM_VS", attn[f].vk ? "576LL" : "512LL"}, {"ATM_V0", "0LL"},
                                 {"ATM_VK", attn[f].vk ? "1" : "0"}, {"ATM_NSTG", attn[f].vk ? "3" : "2"}, {"ATM_NT", "32"}, {"ATM_Q", "0"},
                                 {"ATM_Q1", "1"}, {"ATM_QD0", "512LL"}, {"ATM_K", "2"}, {"ATM_V", attn[f].vk ? "2" : "3"},
                                 {"ATM_LAST", attn[f].causal ? "s + T - S" : "T - 1"},
                                 {"ATM_KEND", attn[f].causal ? "((r0 + 63 < rows ? r0 + 63 : rows - 1) / Hq) + T - S" : "T - 1"},
                                 {"ATM_SCALE", "1.352337748e-01f"}, {"ATM_BN", "a.sym[0]"}, {"ATM_PART", "4"},
                                 {"ATM_STORE(i, v)", "((float *)a.t[5])[i] = (v)"}};
        const char *frag = cg_kernel_fragment(a, "attn_mma", defs, (int)(sizeof defs / sizeof *defs));
        assert_non_null(frag);
        const char *src = arena_printf(a,
            "%s%s__device__ __forceinline__ unsigned short f2bf(float f) { return (unsigned short)(__float_as_uint(f) >> 16); }\n"
            "__device__ __forceinline__ " CG_KEY_SPLITS_FN(CG_QUOTE) "\n"
            "extern \"C\" __global__ void __launch_bounds__(256) g0_frag(Args a) {\n"
            "    extern __shared__ __align__(16) unsigned char sm[];\n%s}\n",
            cg_kernel_prelude(a, "args"), cg_kernel_prelude(a, "mma"), frag);
        expect_compiles(a, d, &o, src, arena_printf(a, "attn_mma.cuh, form %d (split %d, v in k %d, causal %d)", f, attn[f].split,
                                                    attn[f].vk, attn[f].causal));
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    arena_free(a);
}

static void test_compile_error_has_log(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    CgOptions o = {.cache_dir = ""};
    CgSource bad = {"rmsnorm_quant_l3", "extern \"C\" __global__ void k(float *x) { x[0] = undefined_thing; }\n",
                    {"models/deepseek_v3.dsl", 42, 7}};
    CgBinary b;
    assert_int_equal(cg_compile(a, d, &bad, 1, &o, &b), 1);
    const Diag *g = diag_first(d);
    assert_non_null(strstr(g->msg, "NVRTC failed to compile kernel rmsnorm_quant_l3"));
    assert_non_null(strstr(g->msg, "undefined_thing"));
    assert_string_equal(g->loc.file, "models/deepseek_v3.dsl");
    assert_int_equal(g->loc.line, 42);
    arena_free(a);
}

/* The split-key attention of a decode step: how many parts, and which of
 * the attention kernel's three phases the runtime launches for a step. */
/* The tiny model with the FP8 pipeline through fuse: what codegen generates from. */
static IrGraph *tiny_fp8_graph(Arena *a, DiagEngine *d) {
    FeOptions fo = {DSCC_SOURCE_DIR "/models/tiny/config.json", NULL, 0};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(a, d, pass_preset(a, "kernels", &(PassPreset){.fp8 = true}), &pp));
    assert_true(pass_pipeline_run(&pp, g, &ro, d));
    return g;
}

static void test_split_key_launch(void **state) {
    (void)state;
    assert_int_equal(cg_key_splits(1, 1, 128, 1025), 33);   /* batch 1, long context: 33 parts of 32 keys */
    assert_int_equal(cg_key_splits(1, 1, 128, 20), 1);      /* one step of 32 keys: nothing to split */
    assert_int_equal(cg_key_splits(1, 128, 128, 1025), 1);  /* 256 query tiles already fill the GPU */
    assert_int_equal(cg_key_splits(1, 32, 128, 4096), 5);   /* 64 tiles: 5 parts each */
    assert_int_equal(cg_key_splits(1, 65, 128, 4096), 3);   /* 130 tiles, fewer than the SMs */
    assert_int_equal(cg_key_splits(1, 66, 128, 4096), 1);   /* 132 tiles: one per SM already */
    assert_int_equal(cg_key_splits(1, 1, 128, 1 << 20), 64);
    assert_int_equal(cg_key_splits(1024, 1, 128, 1024), 1); /* prefill never splits */
    assert_int_equal(cg_key_splits(1, 2, 8, 96), 3);
    for (int64_t B = 1; B <= 300; B++) /* the parts of a split step always fit the scratch */
        for (int64_t T = 1; T <= 5000; T += 37) {
            int64_t n = cg_key_splits(1, B, 128, T);
            assert_true(n >= 1 && n <= 64 && (n == 1 || n * B * 128 <= CG_KEY_PARTS));
        }

    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = tiny_fp8_graph(a, d);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int sb = ir_graph_find_dim(g, "B"), ss = ir_graph_find_dim(g, "S"), st = ir_graph_find_dim(g, "T");
    assert_true(sb >= 0 && ss >= 0 && st >= 0);
    int seen = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        if (ck->nphases != 3 || ck->phases[0].rule != CG_ITEMS_KEYS_WHOLE) continue;
        seen++;
        assert_int_equal(ck->phases[1].rule, CG_ITEMS_KEYS_SPLIT);
        assert_int_equal(ck->phases[2].rule, CG_ITEMS_KEYS_MERGE);
        /* tiny: 4 heads (one query tile per batch row), value width kv_lora_rank = 32 */
        int64_t sym[IR_MAX_DIM_SYMS] = {0};
        sym[sb] = 2, sym[ss] = 12, sym[st] = 12; /* a prefill: the whole keys only */
        assert_true(cg_phase_items(&ck->phases[0], sym) == 2);
        assert_true(cg_phase_items(&ck->phases[1], sym) == 0 && cg_phase_items(&ck->phases[2], sym) == 0);
        sym[ss] = 1, sym[st] = 20; /* a short decode step: one block of keys, nothing to split */
        assert_true(cg_phase_items(&ck->phases[0], sym) == 2 && cg_phase_items(&ck->phases[1], sym) == 0);
        sym[st] = 200; /* a long one: 7 parts of 32 keys per batch row, merged */
        assert_true(cg_phase_items(&ck->phases[0], sym) == 0);
        assert_true(cg_phase_items(&ck->phases[1], sym) == 2 * 7);
        assert_true(cg_phase_items(&ck->phases[2], sym) == 2 * 4 * 32);
    }
    assert_int_equal(seen, 3); /* one attention per layer */
    /* The grouped expert GEMM's stream form (expert_stream.cuh, opt-in:
     * DSCC_EXPERT_V2=1): a persistent grid of 132 blocks (one an SM) at up
     * to 2048 routed rows, nothing above; its tile phases run only above. */
    setenv("DSCC_EXPERT_V2", "1", 1);
    p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    unsetenv("DSCC_EXPERT_V2");
    assert_non_null(p);
    int streams = 0, above = 0;
    for (int k = 0; k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++) {
            const CgPhase *ph = &p->kernels[k].phases[f];
            int64_t sym[IR_MAX_DIM_SYMS] = {0};
            sym[sb] = 1, sym[ss] = 1; /* a batch-1 decode step: 4 routed rows */
            if (ph->plus && ph->amin == 2048) above++, assert_true(cg_phase_items(ph, sym) == 0);
            if (!strstr(ph->fn, "fp8_expert_stream")) continue;
            streams++;
            assert_true(cg_phase_items(ph, sym) == 132);
            sym[sb] = 4, sym[ss] = 128; /* 2048 routed rows */
            assert_true(cg_phase_items(ph, sym) == 132);
            sym[ss] = 129;
            assert_true(cg_phase_items(ph, sym) == 0);
        }
    assert_int_equal(streams, 2); /* gate and up (one phase over both weights): K = 96; the down's K = 40 is no multiple of 16 */
    assert_int_equal(above, 2);   /* ... and their tile phases */
    /* The tile phase (DSCC_EXPERT_TMA=0: at every row count; by default
     * the TMA form runs above one routed row): ceil(R / 64) tiles plus one
     * per bucket that can have rows (the E experts and the slots of id
     * -1), at most min(E + 1, R) of them. */
    setenv("DSCC_EXPERT_TMA", "0", 1);
    p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    unsetenv("DSCC_EXPERT_TMA");
    assert_non_null(p);
    int experts = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        for (int f = 0; f < ck->nphases; f++) {
            const CgPhase *ph = &ck->phases[f];
            assert_null(strstr(ph->fn, "fp8_expert_stream"));
            if (ph->plus == 0) continue;
            experts++;
            assert_int_equal(ph->plus, 17); /* the tiny model's 16 experts, and id -1 */
            int64_t sym[IR_MAX_DIM_SYMS] = {0}, nt = (ir_dim_eval(ph->b, sym) + ph->db - 1) / ph->db; /* output tiles */
            sym[sb] = 1, sym[ss] = 1; /* a batch-1 decode step: 4 routed rows */
            assert_true(cg_phase_items(ph, sym) == (1 + 4) * nt);
            sym[sb] = 2, sym[ss] = 12; /* 96 routed rows: 2 tiles + 17 buckets */
            assert_true(cg_phase_items(ph, sym) == (2 + 17) * nt);
        }
    }
    assert_int_equal(experts, 4); /* gate and up (one kernel, over both weights' tiles) and down of the two MoE layers */
    arena_free(a);
}

/* Split-K for decode-sized GEMMs: the rule, and the three phases a linear
 * with few output tiles gets (its library form replaces all three). */
static void test_k_split_launch(void **state) {
    (void)state;
    assert_int_equal(cg_k_splits(1, 12, 56), 28);   /* V3 q_a at batch 1: 12 tiles x 28 parts of 2 steps */
    assert_int_equal(cg_k_splits(1, 5, 56), 28);    /* kv_a: 5 tiles, parts of 2 steps at the least */
    assert_int_equal(cg_k_splits(1, 56, 128), 7);   /* o_proj: 392 blocks, ~3 per SM */
    assert_int_equal(cg_k_splits(1, 144, 56), 3);   /* the dense gate: 432 blocks */
    assert_int_equal(cg_k_splits(1, 192, 12), 2);   /* q_b */
    assert_int_equal(cg_k_splits(64, 12, 56), 28);  /* still one row tile */
    assert_int_equal(cg_k_splits(65, 12, 56), 1);   /* two row tiles: the whole K */
    assert_int_equal(cg_k_splits(1, 397, 56), 1);   /* enough output tiles */
    assert_int_equal(cg_k_splits(1, 1010, 56), 1);  /* the LM head */
    assert_int_equal(cg_k_splits(1, 12, 3), 1);     /* too little K */
    for (int64_t nt = 1; nt <= 400; nt++)
        for (int64_t nkb = 1; nkb <= 300; nkb++) { /* parts of at least 2 steps, none empty, at most CG_K_PARTS */
            int64_t n = cg_k_splits(1, nt, nkb), per = (nkb + n - 1) / n;
            assert_true(n >= 1 && n <= CG_K_PARTS && (n == 1 || (per >= 2 && (n - 1) * per < nkb)));
        }
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    static const char src[] = "dim M;\ninput x: bf16[M, 1024];\nweight w: bf16[256, 1024] = \"w\";\noutput y = linear(x, w);\n";
    IrGraph *g = fe_compile_string(a, d, "k.dsl", src, sizeof src - 1, NULL);
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(a, d, "shape-infer,fuse", &pp) && pass_pipeline_run(&pp, g, &ro, d));
    setenv("DSCC_SKINNY_BF16_SPLIT", "0", 1); /* this narrow BF16 linear on gemm_skinny2.cuh (test_gpu_skinny: the default) */
    for (int skinny = 0; skinny < 2; skinny++) { /* the tile alone (no_skinny), then the skinny-M form below it */
        CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune(), .no_skinny = !skinny});
        assert_non_null(p);
        const CgKernel *ck = NULL;
        for (int k = 0; k < p->nkernels; k++)
            if (p->kernels[k].lib.kind == CG_LIB_BF16_GEMM) ck = &p->kernels[k];
        assert_non_null(ck);
        assert_int_equal(ck->lib.span, skinny ? 5 : 3);
        const CgPhase *sk = &ck->phases[ck->lib.phase], *f = sk + (skinny ? 2 : 0);
        assert_int_equal(f[0].rule, CG_ITEMS_K_WHOLE);
        assert_int_equal(f[1].rule, CG_ITEMS_K_SPLIT);
        assert_int_equal(f[2].rule, CG_ITEMS_K_SUM);
        int sm = ir_graph_find_dim(g, "M");
        int64_t sym[IR_MAX_DIM_SYMS] = {0};
        if (skinny) { /* BF16 through gemm_skinny2.cuh at M <= 8 (one launch: 32 groups of 8 rows), gemm_skinny.cuh to 32 */
            assert_true(strstr(sk[0].fn, "linear_bf16_skinny2_m8") && strstr(sk[1].fn, "linear_bf16_skinny_m32"));
            assert_true(strstr(p->modules[ck->module].source, "#define SK_BF16 1\n") != NULL);
            for (int64_t M = 1; M <= 40; M++) {
                sym[sm] = M;
                int64_t n0 = cg_phase_items(&sk[0], sym), n1 = cg_phase_items(&sk[1], sym), t = 0;
                for (int i = 0; i < 3; i++) t += cg_phase_items(&f[i], sym);
                assert_true(M <= 8 ? n0 == 32 && n1 == 0 && t == 0 : M <= CG_SKINNY_M ? n0 == 0 && n1 > 0 && t == 0 : n0 == 0 && n1 == 0 && t > 0);
            }
            sym[sm] = 33; /* above: the tile's K split as without the skinny form */
        } else
            sym[sm] = 1; /* 2 output tiles, 16 steps of 64 bf16: 8 parts of 2 */
        assert_true(cg_phase_items(&f[0], sym) == 0 && cg_phase_items(&f[1], sym) == 8 * 2 && cg_phase_items(&f[2], sym) == 256 * sym[sm]);
        sym[sm] = 100; /* two row tiles: the whole-K tile only */
        assert_true(cg_phase_items(&f[0], sym) == 2 * 2 && cg_phase_items(&f[1], sym) == 0 && cg_phase_items(&f[2], sym) == 0);
    }
    unsetenv("DSCC_SKINNY_BF16_SPLIT");
    arena_free(a);
}

/* An act_scale takes its amax in its group's store pass only when that is
 * safe: its scales read by quantizes of its own input, nothing of another
 * size stored from them (that pass would run first and read unwritten
 * scales). */
static bool merges_act_scale(const char *ir) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = ir_parse(a, d, "act.ir", ir, strlen(ir));
    assert_non_null(g);
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    bool merged = false, alone = false;
    for (int m = 0; m < p->nmodules; m++) {
        merged |= strstr(p->modules[m].source, "act_scale and store") != NULL;
        alone |= strstr(p->modules[m].source, "(Args a) {  // act_scale\n") != NULL;
    }
    assert_true(merged != alone); /* one form or the other */
    arena_free(a);
    return merged;
}

static void test_act_scale_merge(void **state) {
    (void)state;
    assert_true(merges_act_scale("graph @g dims(B) {\n"
                                 "  %0 = input {name=\"x\"} : bf16[B,256]\n"
                                 "  %1 = act_scale %0 {block=128} : f32[B,2] group(0)\n"
                                 "  %2 = quantize %0, %1 {block=128} : fp8e4m3[B,256] group(0)\n"
                                 "  output %2 {name=\"q\"}\n"
                                 "  output %1 {name=\"s\"}\n"
                                 "}\n"));
    assert_false(merges_act_scale("graph @g dims(B) {\n" /* a stored value of the scales' size computed from them */
                                  "  %0 = input {name=\"x\"} : bf16[B,256]\n"
                                  "  %1 = act_scale %0 {block=128} : f32[B,2] group(0)\n"
                                  "  %2 = quantize %0, %1 {block=128} : fp8e4m3[B,256] group(0)\n"
                                  "  %3 = mul %1, %1 : f32[B,2] group(0)\n"
                                  "  output %2 {name=\"q\"}\n"
                                  "  output %3 {name=\"s2\"}\n"
                                  "}\n"));
}

/* The router's linear(cast(x, f32), cast(w, f32)) on bf16-stored x and w
 * reads x and w on the BF16 tile and its casts are not computed; with
 * --storage f32 (x stored as f32, not necessarily bf16 values) the casts
 * are computed and stored and the linear keeps the FP32 tile. By default
 * (and with DSCC_GEMM_F32_LIB=1) the bf16 form also has cuBLASLt's (f32 D)
 * above the skinny form's rows, with =2 at every row count; with =0 none;
 * a malformed value stops codegen. */
static void router_lib(Arena *a, DiagEngine *d, const IrGraph *g, const char *env) {
    if (env) setenv("DSCC_GEMM_F32_LIB", env, 1);
    else unsetenv("DSCC_GEMM_F32_LIB");
    const bool all = env && strcmp(env, "2") == 0;
    for (int wide = 0; wide < 2; wide++) {
        CgGenOptions go = {.tune = tu_tune(), .f32_storage = wide};
        CgProgram *p = cg_generate(a, d, g, &go);
        assert_non_null(p);
        int routers = 0;
        for (int i = 0; i < g->nnodes; i++) {
            const IrNode *n = g->nodes[i];
            if (n->op != IR_OP_LINEAR || n->ops[0]->op != IR_OP_CAST || n->ops[1]->op != IR_OP_CAST) continue;
            routers++;
            const IrNode *x = n->ops[0]->ops[0], *w = n->ops[1]->ops[0];
            assert_int_equal(p->stored[n->ops[0]->id], wide); /* the casts: computed only with f32 storage */
            assert_int_equal(p->stored[n->ops[1]->id], wide);
            assert_true(p->stored[n->id] && (wide || (p->stored[x->id] && p->stored[w->id]))); /* what the tile reads */
            assert_int_equal(p->dtype[n->id], IR_DT_F32);
            bool bf16_tile = false, found = false;
            const CgLib *lib = NULL;
            for (int k = 0; k < p->nkernels; k++) {
                const CgKernel *ck = &p->kernels[k];
                for (int j = 0; j < ck->nnodes; j++) found |= ck->nodes[j] == n->ops[0]->id || ck->nodes[j] == n->ops[1]->id;
                for (int j = 0; j < ck->nnodes; j++)
                    if (ck->nodes[j] == n->id)
                        bf16_tile = strstr(p->modules[ck->module].source, "the bf16 values its f32 operands were cast from") != NULL, lib = &ck->lib;
            }
            assert_int_equal(found, wide);  /* no kernel computes an unread cast */
            assert_int_equal(bf16_tile, !wide);
            /* and cuBLASLt's BF16 GEMM with f32 D where it runs, above the skinny form's rows (bf16 storage only) */
            assert_non_null(lib);
            assert_int_equal(lib->kind, wide ? CG_LIB_NONE : CG_LIB_BF16_GEMM);
            if (!wide) assert_true(lib->y_f32 && (all ? lib->mmin == 0 : lib->mmin > 0 && lib->mmin <= CG_SKINNY_M));
        }
        assert_int_equal(routers, 2); /* the tiny model's two MoE layers */
    }
}

static void test_router_reads_bf16(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    IrGraph *g = tiny_fp8_graph(a, d);
    router_lib(a, d, g, NULL); /* the default: its library form */
    router_lib(a, d, g, "1");
    router_lib(a, d, g, "2");
    setenv("DSCC_GEMM_F32_LIB", "0", 1); /* no library form for the router: the tile */
    CgProgram *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(p);
    int libs = 0;
    for (int k = 0; k < p->nkernels; k++)
        for (int j = 0; j < p->kernels[k].nnodes; j++) {
            const IrNode *n = g->nodes[p->kernels[k].nodes[j]];
            libs += n->op == IR_OP_LINEAR && n->ops[0]->op == IR_OP_CAST && p->kernels[k].lib.kind != CG_LIB_NONE;
        }
    assert_int_equal(libs, 0);
    setenv("DSCC_GEMM_F32_LIB", "on", 1);
    assert_null(cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()}));
    unsetenv("DSCC_GEMM_F32_LIB");
    arena_free(a);
}

/* ---- the cache never serves a bad entry -------------------------------- */

static const char *SCALE = "extern \"C\" __global__ void scale_f32(float *x, float s) { x[threadIdx.x] *= s; }\n";

/* The path of the one cache entry whose name starts with prefix. */
static void entry_of(const char *dir, const char *prefix, char *out, size_t n) {
    DIR *dd = opendir(dir);
    out[0] = 0;
    for (struct dirent *e; dd && (e = readdir(dd));)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) snprintf(out, n, "%s/%s", dir, e->d_name);
    if (dd) closedir(dd);
    assert_true(out[0] != 0);
}

static size_t slurp(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t k = fread(buf, 1, n, f);
    fclose(f);
    return k;
}

static void spit(const char *path, const char *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
}

/* Compiles src[0..n) through dir; checks where each came from. */
static void compile_expect(const char *dir, CgSource *src, int n, const bool *cached, const bool *rejected, int warnings) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    CgOptions o = {.cache_dir = dir, .threads = 2};
    CgBinary bins[2];
    assert_int_equal(cg_compile(a, d, src, n, &o, bins), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(bins[i].from_cache, cached[i]);
        assert_int_equal(bins[i].cache_rejected, rejected[i]);
        assert_memory_equal(bins[i].data, "\177ELF", 4);
        assert_true(has_symbol(&bins[i], src[i].name));
        cg_binary_free(&bins[i]);
    }
    int w = 0;
    for (const Diag *g = diag_first(d); g; g = g->next) w += g->level == DIAG_WARNING;
    assert_int_equal(w, warnings);
    arena_free(a);
}

static void test_cache_rejects_bad_entries(void **state) {
    (void)state;
    char dir[] = "/tmp/dscc_cg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    CgSource src[2] = {{"axpy_bf16", AXPY, {0}}, {"scale_f32", SCALE, {0}}};
    const bool no[2] = {false, false}, yes[2] = {true, true}, first[2] = {true, false}, second[2] = {false, true};
    compile_expect(dir, src, 2, no, no, 0);
    compile_expect(dir, src, 2, yes, no, 0);
    char pa[512], pb[512];
    entry_of(dir, "axpy_bf16-", pa, sizeof pa);
    entry_of(dir, "scale_f32-", pb, sizeof pb);
    static char good[1 << 20], other[1 << 20];
    size_t na = slurp(pa, good, sizeof good), nb = slurp(pb, other, sizeof other);
    assert_true(na > 1000 && na < sizeof good && nb > 1000 && nb < sizeof other);
    /* truncated: compiled again, counted, the entry rewritten whole */
    spit(pa, good, na - 100);
    compile_expect(dir, src, 2, second, first, 0);
    compile_expect(dir, src, 2, yes, no, 0);
    /* one byte of the cubin changed (the length still right) */
    good[na / 2] ^= 0x20;
    spit(pa, good, na);
    good[na / 2] ^= 0x20;
    compile_expect(dir, src, 2, second, first, 0);
    /* swapped: each entry holds the other's whole, valid cubin */
    spit(pa, other, nb);
    spit(pb, good, na);
    compile_expect(dir, src, 2, no, yes, 0);
    compile_expect(dir, src, 2, yes, no, 0);
    /* garbage, and an entry of the format before the header (a bare cubin) */
    spit(pa, "garbage", 7);
    spit(pb, good + 40, na - 40);
    compile_expect(dir, src, 2, no, yes, 0);
    /* a directory at one entry's path and a FIFO with no writer at the
     * other's: one warning, compiled, neither replaced, nothing hangs */
    assert_int_equal(unlink(pa), 0);
    assert_int_equal(mkdir(pa, 0700), 0);
    assert_int_equal(unlink(pb), 0);
    assert_int_equal(mkfifo(pb, 0600), 0);
    compile_expect(dir, src, 2, no, no, 1);
    struct stat sb;
    assert_int_equal(stat(pa, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(stat(pb, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    /* DSCC_CACHE_DIR naming a regular file: one warning, no cache, the file kept */
    char file[600];
    snprintf(file, sizeof file, "%s/not_a_dir", dir);
    spit(file, "keep", 4);
    compile_expect(file, src, 2, no, no, 1);
    assert_int_equal(slurp(file, good, sizeof good), 4);
    assert_memory_equal(good, "keep", 4);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The launches of a decode step of bench_gpu's configuration (two
 * full-width V3 layers, one dense and one MoE) at batch 1 without
 * cuBLASLt (no block-scaled FP8 algorithm at M = 1): every phase with
 * items, but kernels of weights alone (run once, at the first step).
 * 86 before merge-linears and the codegen glue, 53 after them; the
 * skinny-M GEMM (M <= 32) takes 9 of their 10 split-K sums inside the
 * GEMM, so 44 launches remained, one of them a split-K sum; the MoE gate
 * after the router GEMM in one kernel (route_topk.cuh) instead of four,
 * and the LM head writing its f32 logits, leave 40; the BF16 router GEMM's
 * skinny-M form (one launch instead of a K split and its sum) 39. */
/* Launches of kernel k at dims sym: its phases that run, or with
 * cuBLASLt taking its GEMM (lib), the library call in place of the phases
 * it replaces. */
static int kernel_launches(const CgKernel *ck, const int64_t *sym, bool lib, int *sums) {
    int n = 0, span = ck->lib.span > 1 ? ck->lib.span : 1;
    lib = lib && ck->lib.kind != CG_LIB_NONE;
    for (int f = 0; f < ck->nphases; f++) {
        if (lib && f == ck->lib.phase) n++; /* the library call, and nothing before it */
        if (lib && f >= ck->lib.phase && f < ck->lib.phase + span) continue;
        if (cg_phase_items(&ck->phases[f], sym) <= 0) continue;
        n++;
        if (sums) *sums += ck->phases[f].rule == CG_ITEMS_K_SUM;
    }
    return n;
}

/* A two-layer V3 decode step (batch 1, one dense and one MoE layer):
 * launches of the kernels that do not depend on the weights alone and that a cached step uses. No
 * launch converts anything for cuBLASLt: its FP8 GEMMs read the activation
 * scales where their quantize stored them (K-block-major), and taking a
 * GEMM replaces its phases by one call (batch 32, every GEMM of a library
 * form on cuBLASLt: no more launches than the library calls themselves).
 * The LM head's GEMM writes the f32 logits: no cast kernel after it. */
/* bench_gpu's two-layer V3 graph (one dense layer, one MoE, no MTP) through the FP8 "kernels" preset; with plan,
 * also its memory planned at batch 1 (which decides the folds that hold); the program codegen makes of it into *p. */
static IrGraph *v3_step_program(Arena *a, DiagEngine *d, bool plan, CgProgram **p) {
    FeSetting sets[3] = {{"num_hidden_layers", "2"}, {"first_k_dense_replace", "1"}, {"num_nextn_predict_layers", "0"}};
    FeOptions fo = {NULL, sets, 3};
    IrGraph *g = fe_compile_file(a, d, DSCC_SOURCE_DIR "/models/deepseek_v3.dsl", &fo);
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(a, d, pass_preset(a, "kernels", &(PassPreset){.fp8 = true}), &pp));
    assert_true(pass_pipeline_run(&pp, g, &ro, d));
    if (plan) {
        assert_true(pass_pipeline_parse(a, d, "plan-memory{batch=1,seq=1,ctx=4096}", &pp));
        assert_true(pass_pipeline_run(&pp, g, &ro, d));
    }
    *p = cg_generate(a, d, g, &(CgGenOptions){.tune = tu_tune()});
    assert_non_null(*p);
    return g;
}

static void test_decode_launches(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgProgram *p;
    IrGraph *g = v3_step_program(a, d, false, &p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0}, sym32[IR_MAX_DIM_SYMS] = {0};
    for (int s = 0; s < g->ndims; s++) {
        sym[s] = strcmp(g->dim_names[s], "T") == 0 ? 17 : 1;
        sym32[s] = strcmp(g->dim_names[s], "T") == 0 ? 17 : strcmp(g->dim_names[s], "B") == 0 ? 32 : 1;
    }
    bool *wonly = calloc((size_t)g->nnodes + 1, 1); /* a function of the weights alone */
    int *kof = malloc(sizeof(int) * ((size_t)g->nnodes + 1));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        kof[i] = -1;
        wonly[i] = n->op == IR_OP_WEIGHT;
        if (n->op == IR_OP_INPUT || n->op == IR_OP_WEIGHT || n->op == IR_OP_KV_CACHE || n->op == IR_OP_OUTPUT || n->nops == 0) continue;
        wonly[i] = true;
        for (int k = 0; k < n->nops; k++) wonly[i] &= wonly[n->ops[k]->id];
    }
    /* used by a decode step (the runtime's rule): from the roots back, through fresh_select's second
     * operand only (attn_impl=auto: the naive form's kernels run only in a step with nothing cached) */
    bool *used = calloc((size_t)g->nnodes + 1, 1);
    for (int i = g->nnodes - 1; i >= 0; i--) {
        const IrNode *n = g->nodes[i];
        IrOpClass c = ir_op_class(n->op);
        used[i] |= c == IR_CLASS_OUTPUT || c == IR_CLASS_STATE || c == IR_CLASS_COMM;
        for (int k = 0; used[i] && k < n->nops; k++)
            if (n->op != IR_OP_FRESH_SELECT || k == 1) used[n->ops[k]->id] = true;
    }
    int launches = 0, sums = 0, sorts = 0, with_lib = 0, lib_calls = 0, fp8_libs = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        bool once = ck->nnodes > 0, step = false;
        for (int j = 0; j < ck->nnodes; j++) once &= wonly[ck->nodes[j]], kof[ck->nodes[j]] = k, step |= used[ck->nodes[j]];
        if (once || !step) continue;
        launches += kernel_launches(ck, sym, false, &sums);
        for (int f = 0; f < ck->nphases; f++)
            sorts += strstr(p->modules[ck->module].source, "sorted by expert") && f == 0 && cg_phase_items(&ck->phases[f], sym) > 0;
        with_lib += kernel_launches(ck, sym32, true, NULL);
        lib_calls += ck->lib.kind != CG_LIB_NONE;
        if (ck->lib.kind != CG_LIB_FP8_GEMM) continue;
        /* cuBLASLt reads the scales the quantize stored: the fp8_linear's own operand, K-block-major */
        const IrNode *y = NULL;
        for (int j = 0; j < ck->nnodes; j++)
            if (g->nodes[ck->nodes[j]]->op == IR_OP_FP8_LINEAR) y = g->nodes[ck->nodes[j]];
        assert_non_null(y);
        assert_int_equal(ck->slots[ck->lib.xs].node, y->ops[1]->id);
        assert_int_equal(ck->slots[ck->lib.xs].kind, CG_SLOT_VALUE);
        assert_true(y->ops[1]->op == IR_OP_ACT_SCALE && p->kblock[y->ops[1]->id]);
        fp8_libs++;
    }
    /* no kernel of its own casts a linear's result: the LM head's GEMM writes the f32 logits, and so would cuBLASLt */
    int heads = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != IR_OP_CAST || n->ops[0]->op != IR_OP_LINEAR) continue;
        const CgKernel *ck = &p->kernels[kof[i]];
        assert_int_equal(kof[i], kof[n->ops[0]->id]);
        assert_false(p->stored[n->ops[0]->id]);
        assert_true(p->stored[i] && p->dtype[i] == IR_DT_F32);
        assert_true(ck->lib.kind == CG_LIB_BF16_GEMM && ck->lib.y_f32 && ck->slots[ck->lib.y].node == i);
        heads++;
    }
    free(wonly), free(kof), free(used);
    assert_int_equal(heads, 1);
    assert_int_equal(launches, 39); /* 44 before the LM head wrote its f32 logits and the MoE gate was one kernel, 40 before the
                                     * BF16 router GEMM's skinny-M form */
    int gates = 0; /* the MoE layer's gate is the route_topk kernel */
    for (int k = 0; k < p->nkernels; k++)
        for (int f = 0; f < p->kernels[k].nphases; f++) gates += strstr(p->kernels[k].phases[f].fn, "route_topk") != NULL;
    assert_int_equal(gates, 1);
    assert_int_equal(sums, 0); /* the router GEMM's was the last */
    assert_int_equal(sorts, 1); /* one expert sort for the MoE layer */
    /* batch 32 with every GEMM of a library form on cuBLASLt (12, 10 of them FP8; the router's, f32 y from bf16 operands,
     * only above its skinny form's 32 rows): 39 launches, the library calls among them; 57 before (a scale transpose
     * before each FP8 call, the cast after the head, the MoE gate in four), 40 before the router GEMM ran its skinny-M
     * form instead of a K split and its sum */
    assert_int_equal(fp8_libs, 10);
    assert_int_equal(lib_calls, 12);
    assert_int_equal(with_lib, 39);
    arena_free(a);
}

/* The switches of the batch-1 launch work (DSCC_EINSUM_ROPE and DSCC_MLA_DSM defaults since the eleventh session, the
 * others opt-in), all on, each set explicitly: bench_gpu's two-layer V3 program planned at
 * batch 1 (its memory plan decides which folds hold), the launches of a cached decode step of one row (a phase gated
 * at a cached step, CgPhase.cmin, launches nothing there: gpu_exec.c's rule); *kv_gated: phases of the kernels that
 * append to a KV cache gated so. */
static int folded_launches(int *kv_gated) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgProgram *p;
    IrGraph *g = v3_step_program(a, d, true, &p);
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    for (int s = 0; s < g->ndims; s++) sym[s] = strcmp(g->dim_names[s], "T") == 0 ? 17 : 1;
    bool *wonly = calloc((size_t)g->nnodes + 1, 1), *used = calloc((size_t)g->nnodes + 1, 1);
    ir_weights_only(g, wonly);  /* a function of the weights alone: run once, at load */
    ir_step_needs(g, 1, used);  /* read at a cached step (the runtime's rule) */
    int launches = 0;
    *kv_gated = 0;
    for (int k = 0; k < p->nkernels; k++) {
        const CgKernel *ck = &p->kernels[k];
        bool once = true, step = false, cache = false;
        for (int j = 0; j < ck->nnodes; j++)
            once &= wonly[ck->nodes[j]], step |= used[ck->nodes[j]], cache |= g->nodes[ck->nodes[j]]->op == IR_OP_KV_CACHE;
        if (once || !step) continue;
        for (int f = 0; f < ck->nphases; f++) {
            const CgPhase *ph = &ck->phases[f];
            if (cg_phase_items(ph, sym) <= 0) continue;
            if (ph->cmin > 0 && ir_dim_eval(ph->a, sym) <= ph->cmin) {
                *kv_gated += cache;
                continue;
            }
            launches++;
        }
    }
    free(wonly), free(used);
    arena_free(a);
    return launches;
}

/* Batch 1 with every launch-folding switch: 26 launches (30 with none but DSCC_MLA_DSM); DSCC_EINSUM_KV=1 folds both
 * layers' latent row kernels (the kv norm, k_pe's RoPE, the concat, the cache append) into the first einsum: 24. */
static void test_decode_launches_folded(void **state) {
    (void)state;
    static const char *const sw[] = {"DSCC_SKINNY_FOLD", "DSCC_SKINNY_FOLD_HOIST", "DSCC_EINSUM_ROPE", "DSCC_ROUTE_FUSE", "DSCC_MLA_DSM"};
    for (int k = 0; k < 5; k++) setenv(sw[k], "1", 1);
    int kv;
    unsetenv("DSCC_EINSUM_KV");
    assert_int_equal(folded_launches(&kv), 26);
    assert_int_equal(kv, 0);
    setenv("DSCC_EINSUM_KV", "1", 1);
    assert_int_equal(folded_launches(&kv), 24);
    assert_int_equal(kv, 2); /* each layer's latent row kernel, at its cluster form's rows */
    unsetenv("DSCC_EINSUM_KV");
    for (int k = 0; k < 5; k++) unsetenv(sw[k]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_and_cache),
        cmocka_unit_test(test_compile_error_has_log),
        cmocka_unit_test(test_kernel_files),
        cmocka_unit_test(test_fragments_alone),
        cmocka_unit_test(test_cache_rejects_bad_entries),
        cmocka_unit_test(test_split_key_launch),
        cmocka_unit_test(test_router_reads_bf16),
        cmocka_unit_test(test_k_split_launch),
        cmocka_unit_test(test_decode_launches),
        cmocka_unit_test(test_decode_launches_folded),
        cmocka_unit_test(test_act_scale_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
