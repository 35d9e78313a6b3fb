/* test_codegen.c — NVRTC compilation and the kernel cache, on any machine
 * (NVRTC needs no GPU): a real kernel becomes an sm_90a cubin holding its
 * symbol, a second compile comes from the cache, a damaged cache entry is
 * recompiled, a changed source misses, and a compile error names the
 * kernel, its location and NVRTC's log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_and_cache),
        cmocka_unit_test(test_compile_error_has_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
