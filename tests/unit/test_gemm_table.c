/* test_gemm_table.c — the measured GEMM paths table (runtime/gemm_table.h):
 * its text form read back as written, each kind of bad line an error at
 * FILE:LINE, the choice per kind, shape and M with the rule where it has
 * no entry, and the built-in table; and codegen's side of the choice: an
 * FP8 linear's skinny-M phase runs at M <= CG_SKINNY_M and its tile only
 * above, with M a run-time symbol, and its TMA phase (gemm_tma.cuh) is there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/gen.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/gemm_table.h"
#include "tests/unit/testutil.h"

static const char GOOD[] = "# measured\n"
                           "arch 90\n"
                           "\n"
                           "fp8 576 7168 1 1 generated 3.10 -   # M = 1: cuBLASLt has no algorithm\n"
                           "fp8 576 7168 2 32 generated 3.50 5.25\n"
                           "fp8 576 7168 33 64 cublaslt 9.00 8.00\n"
                           "\tbf16 576 7168 1 64 cublaslt 4 3.5\r\n"
                           "fp8 24576 1536 1 4096 generated 10 12\n"
                           "fp8 7168 2048 512 4096 tma 30 25 20.5  # the TMA kernel's time: a 9th word";

static void test_parse_and_pick(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtGemmTable *t = rt_gemm_table_parse(GOOD, strlen(GOOD), "good.txt", d);
    assert_non_null(t);
    assert_int_equal(diag_error_count(d), 0);
    assert_int_equal(t->arch, 90);
    assert_int_equal(t->n, 6);
    assert_true(t->e[0].kind == RT_GEMM_FP8 && t->e[0].n == 576 && t->e[0].k == 7168 && t->e[0].mlo == 1 && t->e[0].mhi == 1);
    assert_true(t->e[0].gen_us == 3.10 && t->e[0].lib_us < 0);
    assert_true(t->e[3].kind == RT_GEMM_BF16 && t->e[3].lib_us == 3.5);
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_FP8, 1, 576, 7168), RT_GEMM_GENERATED);
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_FP8, 32, 576, 7168), RT_GEMM_GENERATED);
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_FP8, 33, 576, 7168), RT_GEMM_CUBLASLT);
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_FP8, 64, 576, 7168), RT_GEMM_CUBLASLT);
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_FP8, 65, 576, 7168), RT_GEMM_RULE);  /* past the entries */
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_FP8, 8, 7168, 576), RT_GEMM_RULE);   /* N and K swapped: another shape */
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_BF16, 8, 576, 7168), RT_GEMM_CUBLASLT); /* the kind decides too */
    assert_int_equal(rt_gemm_table_pick(t, RT_GEMM_BF16, 65, 576, 7168), RT_GEMM_RULE);
    assert_int_equal(rt_gemm_table_pick(NULL, RT_GEMM_FP8, 1, 576, 7168), RT_GEMM_RULE);
    /* the decision: the table's choice where cuBLASLt can run it, the rule (cuBLASLt) where it has no entry */
    assert_false(rt_gemm_use_cublaslt(t, RT_GEMM_FP8, 16, 576, 7168, true));
    assert_true(rt_gemm_use_cublaslt(t, RT_GEMM_FP8, 48, 576, 7168, true));
    assert_false(rt_gemm_use_cublaslt(t, RT_GEMM_FP8, 48, 576, 7168, false)); /* no algorithm: never cuBLASLt */
    assert_true(rt_gemm_use_cublaslt(t, RT_GEMM_FP8, 128, 576, 7168, true));  /* no entry: the rule */
    assert_true(rt_gemm_use_cublaslt(NULL, RT_GEMM_FP8, 128, 576, 7168, true));
    assert_false(rt_gemm_use_cublaslt(NULL, RT_GEMM_FP8, 128, 576, 7168, false));
    /* the TMA kernel: where the table chooses it (then not cuBLASLt), else the rule from M = RT_GEMM_TMA_MIN_M */
    assert_true(t->e[5].choice == RT_GEMM_TMA && t->e[5].tma_us == 20.5 && t->e[0].tma_us < 0);
    assert_true(rt_gemm_use_tma(t, 1024, 7168, 2048));
    assert_false(rt_gemm_use_cublaslt(t, RT_GEMM_FP8, 1024, 7168, 2048, true));
    assert_false(rt_gemm_use_tma(t, 1024, 24576, 1536)); /* the table's generated */
    assert_false(rt_gemm_use_tma(t, 48, 576, 7168));
    assert_true(rt_gemm_use_tma(t, RT_GEMM_TMA_MIN_M, 576, 7168));      /* no entry: the rule */
    assert_false(rt_gemm_use_tma(NULL, RT_GEMM_TMA_MIN_M - 1, 576, 7168));
    rt_gemm_table_free(t);
    arena_free(a);
}

/* The error `text` gets: at file "bad.txt", line `line`, containing `what`. */
static void expect_error(const char *text, int line, const char *what) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtGemmTable *t = rt_gemm_table_parse(text, strlen(text), "bad.txt", d);
    if (t) fprintf(stderr, "accepted: %s\n", text);
    assert_null(t);
    const Diag *g = diag_first(d);
    assert_non_null(g);
    if (!strstr(g->msg, what) || g->loc.line != line) fprintf(stderr, "line %d: %s\n", g->loc.line, g->msg);
    assert_string_equal(g->loc.file, "bad.txt");
    assert_int_equal(g->loc.line, line);
    assert_non_null(strstr(g->msg, what));
    arena_free(a);
}

static void test_bad_lines(void **state) {
    (void)state;
    expect_error("fp8 576 7168 1 1 generated 3.1\n", 1, "8 or 9 words");
    expect_error("# c\nfp8 576 7168 1 1 generated 3.1 - 2 extra\n", 2, "more than 9");
    expect_error("fp8 576 7168 1 4 tma 3.1 2\n", 1, "no time");       /* the TMA kernel chosen with no time of its own */
    expect_error("fp8 576 7168 1 4 tma 3.1 2 fast\n", 1, "microseconds");
    expect_error("\n\nfp9 576 7168 1 1 generated 3.1 -\n", 3, "'fp8' or 'bf16'");
    expect_error("fp8 576x 7168 1 1 generated 3.1 -\n", 1, "N and K");
    expect_error("fp8 0 7168 1 1 generated 3.1 -\n", 1, "N and K");
    expect_error("fp8 576 7168 8 4 generated 3.1 -\n", 1, "M_LO <= M_HI");
    expect_error("fp8 576 7168 0 4 generated 3.1 -\n", 1, "M_LO <= M_HI");
    expect_error("fp8 576 7168 1 4 cuBLAS 3.1 -\n", 1, "'generated', 'cublaslt' or 'tma'");
    expect_error("fp8 576 7168 1 4 generated fast -\n", 1, "microseconds");
    expect_error("fp8 576 7168 1 4 generated -3 -\n", 1, "microseconds");
    expect_error("fp8 576 7168 1 4 cublaslt 3.1 -\n", 1, "no time");
    expect_error("fp8 576 7168 1 4 generated 3 4\nfp8 576 7168 4 8 generated 3 4\n", 2, "overlap rows 1..4");
    expect_error("arch 90\narch 100\n", 2, "second 'arch'");
    expect_error("arch sm_90\n", 1, "arch N");
    static const char nul[] = "fp8 576 7168 1 4 generated 3 4\nbf16 1 1 1 1 generated\0 1 1\n";
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    assert_null(rt_gemm_table_parse(nul, sizeof nul - 1, "bad.txt", d));
    assert_true(diag_first(d)->loc.line == 2 && strstr(diag_first(d)->msg, "NUL"));
    arena_free(a);
}

/* A fresh temporary folder in dir (a mkdtemp template) and its table.txt, in path, open for writing. */
static FILE *table_file(char *dir, char path[128]) {
    assert_non_null(mkdtemp(dir));
    snprintf(path, 128, "%s/table.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    return f;
}

/* Written entries read back; a file that is not there is an error naming it. */
static void test_write_and_load(void **state) {
    (void)state;
    char dir[] = "/tmp/dscc_gemm_table_XXXXXX", path[128];
    FILE *f = table_file(dir, path);
    RtGemmEntry e[3] = {{RT_GEMM_FP8, 2112, 7168, 1, 1, RT_GEMM_GENERATED, 4.25, -1, -1},
                        {RT_GEMM_BF16, 129280, 7168, 2, 64, RT_GEMM_CUBLASLT, 1000.5, 990.25, -1},
                        {RT_GEMM_FP8, 7168, 2048, 256, 4096, RT_GEMM_TMA, 40.5, 35.25, 30.75}};
    fputs("arch 90\n", f);
    for (int i = 0; i < 3; i++) rt_gemm_table_write_entry(f, &e[i]);
    assert_int_equal(fclose(f), 0);
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtGemmTable *t = rt_gemm_table_load(path, d);
    assert_non_null(t);
    assert_int_equal(t->n, 3);
    assert_true(t->e[2].tma_us == 30.75 && t->e[0].tma_us < 0);
    for (int i = 0; i < 3; i++) {
        assert_true(t->e[i].kind == e[i].kind && t->e[i].n == e[i].n && t->e[i].k == e[i].k && t->e[i].mlo == e[i].mlo);
        assert_true(t->e[i].mhi == e[i].mhi && t->e[i].choice == e[i].choice && t->e[i].gen_us == e[i].gen_us && t->e[i].lib_us == e[i].lib_us);
    }
    rt_gemm_table_free(t);
    assert_int_equal(unlink(path), 0);
    assert_null(rt_gemm_table_load(path, d));
    const Diag *g = diag_first(d);
    assert_true(diag_error_count(d) == 1 && ((g->loc.file && strstr(g->loc.file, "table.txt")) || strstr(g->msg, "table.txt")));
    assert_int_equal(rmdir(dir), 0);
    arena_free(a);
}

/* rt_gemm_table_open: DSCC_GEMM_TABLE=none, the built-in table, and a user's table measured on another architecture
 * (not used: a warning only where the opener explains) or one that does not read (an error, and the note on
 * DSCC_GEMM_TABLE=none where it explains). */
static void test_open(void **state) {
    (void)state;
    char dir[] = "/tmp/dscc_gemm_table_XXXXXX", path[128];
    FILE *f = table_file(dir, path);
    fputs("arch 80\nfp8 7168 2048 1 8 generated 4.5 5.5\n", f);
    assert_int_equal(fclose(f), 0);
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    bool bad = true;
    setenv("DSCC_GEMM_TABLE", "none", 1);
    assert_null(rt_gemm_table_open(90, tu_tune()->gemm_table, d, true, &bad));
    assert_false(bad);
    unsetenv("DSCC_GEMM_TABLE");
    RtGemmTable *t = rt_gemm_table_open(90, tu_tune()->gemm_table, d, true, &bad);
    assert_true(t && !bad && t->arch == 90);
    rt_gemm_table_free(t);
    setenv("DSCC_GEMM_TABLE", path, 1);
    t = rt_gemm_table_open(80, tu_tune()->gemm_table, d, true, &bad);
    assert_true(t && !bad && t->n == 1);
    rt_gemm_table_free(t);
    assert_null(rt_gemm_table_open(90, tu_tune()->gemm_table, d, false, &bad));
    assert_true(!bad && diag_first(d) == NULL);
    assert_null(rt_gemm_table_open(90, tu_tune()->gemm_table, d, true, &bad));
    assert_false(bad);
    assert_int_equal(diag_error_count(d), 0);
    assert_non_null(diag_first(d));
    assert_non_null(strstr(diag_first(d)->msg, "measured on sm_80, this GPU is sm_90: not used"));
    assert_int_equal(unlink(path), 0);
    assert_null(rt_gemm_table_open(90, tu_tune()->gemm_table, d, true, &bad));
    assert_true(bad && diag_error_count(d) == 1);
    assert_non_null(strstr(diag_first(d)->next->next->msg, "DSCC_GEMM_TABLE=none runs without one"));
    unsetenv("DSCC_GEMM_TABLE");
    assert_int_equal(rmdir(dir), 0);
    arena_free(a);
}

static void test_builtin(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtGemmTable *t = rt_gemm_table_parse(rt_gemm_table_default, strlen(rt_gemm_table_default), "gemm_table.txt", d);
    assert_non_null(t);
    assert_int_equal(t->arch, 90); /* measured on H100/H200-class GPUs */
    rt_gemm_table_free(t);
    arena_free(a);
}

/* Items of each phase of the program's fp8_linear kernel at M rows: skinny (runs only up to CG_SKINNY_M) and tile. */
static void items_at(const CgKernel *ck, int sm, int64_t M, int64_t *skinny, int64_t *tile) {
    int64_t sym[IR_MAX_DIM_SYMS] = {0};
    sym[sm] = M;
    *skinny = *tile = 0;
    for (int ph = ck->lib.phase; ph < ck->lib.phase + ck->lib.span; ph++) {
        int64_t n = cg_phase_items(&ck->phases[ph], sym);
        if (strstr(ck->phases[ph].fn, "skinny")) *skinny += n;
        else *tile += n;
    }
}

static void test_skinny_choice(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    static const char src[] = "dim M;\ninput x: bf16[M, 1536];\nweight w: bf16[2112, 1536] = \"w\";\noutput y = silu(linear(x, w));\n";
    IrGraph *g = fe_compile_string(a, d, "k.dsl", src, sizeof src - 1, NULL);
    assert_non_null(g);
    PassPipeline pp;
    PassRunOptions ro = {.tune = tu_tune()};
    assert_true(pass_pipeline_parse(a, d, "shape-infer,fp8-quant,fuse", &pp) && pass_pipeline_run(&pp, g, &ro, d));
    for (int off = 0; off < 2; off++) {
        CgGenOptions o = {.tune = tu_tune(), .no_skinny = off == 1};
        CgProgram *p = cg_generate(a, d, g, &o);
        assert_non_null(p);
        const CgKernel *ck = NULL;
        for (int k = 0; k < p->nkernels; k++)
            if (p->kernels[k].lib.kind == CG_LIB_FP8_GEMM) ck = &p->kernels[k];
        assert_non_null(ck);
        assert_int_equal(ck->lib.span, off ? 4 : 6); /* cuBLASLt replaces the two skinny phases and the TMA phase too */
        int tph = ck->lib.phase + (off ? 0 : 2); /* the TMA phase, after the two skinny ones: 128 x 128 tiles, 384 threads, above CG_SKINNY_M */
        assert_non_null(ck->phases[tph].tma);
        assert_true(ck->phases[tph].tma->span == 3 && ck->phases[tph].tma->N == 2112 && ck->phases[tph].tma->K == 1536);
        assert_true(strstr(ck->phases[tph].fn, "fp8_linear_tma") != NULL);
        const char *text = p->modules[ck->module].source;
        /* gemm_skinny.cuh's two instances, the one for M <= 8 in its pipelined form (264 groups; gemm_skinny2.cuh is
         * opt-in for FP8: DSCC_SKINNY_V2=1) */
        assert_true((strstr(text, "#define DSCC_ENTRY p0_fp8_linear_skinny_pipe_m8\n") != NULL) == !off);
        assert_true((strstr(text, "#define DSCC_ENTRY p1_fp8_linear_skinny_m32\n") != NULL) == !off);
        int sm = ir_graph_find_dim(g, "M");
        int64_t skinny, tile;
        /* 2112 outputs: one 8-row group a warp, 264 blocks; the tile splits K at small M */
        for (int64_t M = 1; M <= 80; M++) {
            items_at(ck, sm, M, &skinny, &tile);
            if (off || M > CG_SKINNY_M) assert_true(skinny == 0 && tile > 0);
            else assert_true(skinny == 264 && tile == 0);
        }
    }
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_and_pick), cmocka_unit_test(test_bad_lines),
                                       cmocka_unit_test(test_write_and_load), cmocka_unit_test(test_open), cmocka_unit_test(test_builtin),
                                       cmocka_unit_test(test_skinny_choice)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
