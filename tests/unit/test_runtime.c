/* test_runtime.c — safetensors parsing and validation, dtype conversions,
 * FP8 block dequantization, sharded checkpoints, .npy round trips. Files
 * are written by the test itself into a fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "frontend/frontend.h"
#include "runtime/runtime.h"
#include "tests/unit/testutil.h"

typedef struct {
    char dir[64];
    Arena *a;
    DiagEngine *d;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dscc_rt_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->a = arena_new();
    f->d = diag_new(f->a, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    arena_free(f->a);
    free(f);
    return 0;
}

/* Writes a safetensors file: header JSON text, then data. */
static void write_st(Fx *f, const char *name, const char *header, const void *data, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "wb");
    uint64_t len = strlen(header);
    fwrite(&len, 8, 1, fp);
    fwrite(header, 1, len, fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

static void test_conversions(void **state) {
    (void)state;
    assert_true(rt_bf16_decode(0x3f80) == 1.0f);
    assert_true(rt_bf16_decode(0xc040) == -3.0f);
    assert_true(rt_f16_decode(0x3c00) == 1.0f);
    assert_true(rt_f16_decode(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
    assert_true(rt_f16_decode(0xfc00) == -INFINITY);
    assert_true(rt_fp8_e4m3_decode(0x7e) == 448.0f);   /* max finite */
    assert_true(isnan(rt_fp8_e4m3_decode(0x7f)));
    assert_true(rt_fp8_e4m3_decode(0x01) == ldexpf(1, -9)); /* smallest subnormal */
    assert_true(rt_fp8_e4m3_decode(0x38) == 1.0f);
    assert_true(rt_fp8_e4m3_decode(0xb9) == -1.125f);
    assert_true(signbit(rt_fp8_e4m3_decode(0x80)) && rt_fp8_e4m3_decode(0x80) == 0.0f);
}

static void test_fp8_block_dequant_and_shape_checks(void **state) {
    Fx *f = *state;
    /* w: F8_E4M3 [130, 200] -> 2x2 blocks of scales 1, 2, 3, 4 (in row-major block order). */
    enum { O = 130, I = 200 };
    size_t wn = O * I, sn = 4;
    uint8_t *buf = malloc(wn + sn * 4 + 8);
    for (size_t i = 0; i < wn; i++) buf[i] = 0x38; /* 1.0 */
    float sc[4] = {1, 2, 3, 4};
    memcpy(buf + wn, sc, sizeof sc);
    char hdr[512];
    snprintf(hdr, sizeof hdr,
             "{\"w.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [%d, %d], \"data_offsets\": [0, %zu]},"
             " \"w.weight_scale_inv\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [%zu, %zu]},"
             " \"__metadata__\": {\"format\": \"pt\"}}", O, I, wn, wn, wn + 16);
    write_st(f, "model.safetensors", hdr, buf, wn + 16);
    RtCheckpoint *c = rt_checkpoint_open(f->a, f->d, f->dir);
    assert_non_null(c);
    assert_int_equal(rt_checkpoint_count(c), 2);
    IrType t = {.dtype = IR_DT_BF16, .rank = 2, .dims = {ir_dim_const(O), ir_dim_const(I)}};
    float *w = malloc(sizeof(float) * wn);
    assert_true(rt_checkpoint_read_f32(c, "w.weight", &t, w, f->d));
    assert_true(w[0] == 1.0f);                     /* block (0,0) */
    assert_true(w[127 * I + 128] == 2.0f);         /* block (0,1) */
    assert_true(w[128 * I + 127] == 3.0f);         /* block (1,0) */
    assert_true(w[129 * I + 199] == 4.0f);         /* block (1,1), the ragged corner */
    /* shape from a config that disagrees */
    IrType bad = {.dtype = IR_DT_BF16, .rank = 2, .dims = {ir_dim_const(128), ir_dim_const(I)}};
    assert_false(rt_checkpoint_read_f32(c, "w.weight", &bad, w, f->d));
    assert_non_null(strstr(tu_last_error(f->d), "tensor 'w.weight' is F8_E4M3[130,200] in the checkpoint but the model expects bf16[128,200]"));
    assert_false(rt_checkpoint_read_f32(c, "nope.weight", &t, w, f->d));
    assert_non_null(strstr(tu_last_error(f->d), "tensor 'nope.weight' is missing from the checkpoint"));
    rt_checkpoint_close(c);
    /* FP8 without its scales */
    snprintf(hdr, sizeof hdr, "{\"w.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [%d, %d], \"data_offsets\": [0, %zu]}}", O, I, wn);
    write_st(f, "model.safetensors", hdr, buf, wn);
    c = rt_checkpoint_open(f->a, f->d, f->dir);
    assert_false(rt_checkpoint_read_f32(c, "w.weight", &t, w, f->d));
    assert_non_null(strstr(tu_last_error(f->d), "tensor 'w.weight' is F8_E4M3 but 'w.weight_scale_inv' (its block scales) is missing"));
    rt_checkpoint_close(c);
    free(w);
    free(buf);
}

/* Builds an executor for `src` over the checkpoint in f->dir; returns the
 * first error's message (NULL when it loaded) and its line. */
static const char *load_error(Fx *f, const char *src, int *line) {
    f->d = diag_new(f->a, NULL);
    IrGraph *g = fe_compile_string(f->a, f->d, "w.dsl", src, strlen(src), NULL);
    assert_non_null(g);
    RtCheckpoint *c = rt_checkpoint_open(f->a, f->d, f->dir);
    assert_non_null(c);
    CpuWeightSource ws = {rt_checkpoint_read_f32, c};
    CpuOptions o = {.threads = 1};
    CpuExec *x = cpu_exec_new(g, &ws, &o, f->d);
    rt_checkpoint_close(c);
    if (x) {
        cpu_exec_free(x);
        return NULL;
    }
    const Diag *e = diag_first(f->d);
    while (e && e->level != DIAG_ERROR) e = e->next;
    assert_non_null(e);
    *line = e->loc.line;
    return e->msg;
}

/* A NaN or an infinity in a checkpoint tensor, in an FP8 weight's codes or
 * in its weight_scale_inv is an error naming the tensor, found while the
 * weights load (for the CPU executor and, through cpu_weight_slice, the
 * CUDA one), never NaN logits later. */
static void test_non_finite_weights(void **state) {
    Fx *f = *state;
    float table[8] = {0.5f, -1, 2, 0.25f, 3, NAN, 1, -2}, ok8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint16_t norm[2] = {0x3f80, 0xff80}; /* bf16 1.0, -inf */
    uint8_t codes[4] = {0x38, 0x38, 0x7f, 0x38}, good_codes[4] = {0x38, 0x40, 0x30, 0x38}; /* 0x7f: E4M3 NaN */
    float one = 1.0f, inf = INFINITY;
    uint8_t buf[96];
    size_t at = 0;
    memcpy(buf + at, table, 32), at += 32;
    memcpy(buf + at, ok8, 32), at += 32;
    memcpy(buf + at, norm, 4), at += 4;
    memcpy(buf + at, codes, 4), at += 4;
    memcpy(buf + at, &one, 4), at += 4;
    memcpy(buf + at, good_codes, 4), at += 4;
    memcpy(buf + at, &inf, 4), at += 4;
    const char *hdr =
        "{\"table\": {\"dtype\": \"F32\", \"shape\": [4, 2], \"data_offsets\": [0, 32]},"
        " \"good\": {\"dtype\": \"F32\", \"shape\": [4, 2], \"data_offsets\": [32, 64]},"
        " \"norm\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [64, 68]},"
        " \"v.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [2, 2], \"data_offsets\": [68, 72]},"
        " \"v.weight_scale_inv\": {\"dtype\": \"F32\", \"shape\": [1, 1], \"data_offsets\": [72, 76]},"
        " \"s.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [2, 2], \"data_offsets\": [76, 80]},"
        " \"s.weight_scale_inv\": {\"dtype\": \"F32\", \"shape\": [1, 1], \"data_offsets\": [80, 84]}}";
    write_st(f, "model.safetensors", hdr, buf, at);
    const char *head = "dim B, S;\ninput tokens: i32[B, S];\n";
    char src[512];
    int line = 0;
    snprintf(src, sizeof src, "%sweight t: f32[4, 2] = \"good\";\noutput logits = embedding(t, tokens);\n", head);
    assert_null(load_error(f, src, &line)); /* finite values load */
    snprintf(src, sizeof src, "%sweight t: f32[4, 2] = \"table\";\noutput logits = embedding(t, tokens);\n", head);
    assert_string_equal(load_error(f, src, &line), "weight tensor 'table' holds a NaN at element 5 of 8");
    assert_int_equal(line, 3);
    snprintf(src, sizeof src, "%sweight t: f32[4, 2] = \"good\";\nweight n: bf16[2] = \"norm\";\n"
             "output logits = rmsnorm(embedding(t, tokens), cast(n, f32), eps=0.5);\n", head);
    assert_string_equal(load_error(f, src, &line), "weight tensor 'norm' holds -inf at element 1 of 2");
    assert_int_equal(line, 4);
    /* an FP8 checkpoint weight, dequantized to a bf16 model weight and kept
     * as E4M3 codes for an fp8e4m3 one */
    snprintf(src, sizeof src, "%sweight t: f32[4, 2] = \"good\";\nweight v: bf16[2, 2] = \"v.weight\";\n"
             "output logits = linear(embedding(t, tokens), cast(v, f32));\n", head);
    assert_string_equal(load_error(f, src, &line), "weight tensor 'v.weight' holds a NaN at element 2 of 4");
    snprintf(src, sizeof src, "%sweight t: f32[4, 2] = \"good\";\nweight v: fp8e4m3[2, 2] = \"v.weight\";\n"
             "output logits = linear(embedding(t, tokens), cast(v, f32));\n", head);
    assert_string_equal(load_error(f, src, &line), "weight tensor 'v.weight' holds a NaN at element 2 of 4");
    /* finite codes, an infinite block scale: named as the scale tensor */
    snprintf(src, sizeof src, "%sweight t: f32[4, 2] = \"good\";\nweight w: bf16[2, 2] = \"s.weight\";\n"
             "output logits = linear(embedding(t, tokens), cast(w, f32));\n", head);
    assert_string_equal(load_error(f, src, &line), "tensor 's.weight_scale_inv' holds an infinity at block 0 of 1");
}

static void test_corrupt_headers(void **state) {
    Fx *f = *state;
    static const struct { const char *hdr; size_t data; const char *msg; } cases[] = {
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8, "tensor 'a': data_offsets end 16 is past the end of the data (8 bytes; truncated file?)"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 12]}}", 16, "tensor 'a': data_offsets [0, 12] hold 12 bytes but F32 of the given shape needs 16"},
        {"{\"a\": {\"dtype\": \"Q4_K\", \"shape\": [4], \"data_offsets\": [0, 2]}}", 16, "tensor 'a': dtype \"Q4_K\" is not supported"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 16, "tensors 'a' and 'b' overlap in the data area"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 16, "tensor 'a': shape entry 0 is not a valid dimension"},
        {"{\"a\": {\"dtype\": \"F32\"}}", 16, "tensor 'a': needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\""},
        {"[1, 2, 3]", 16, "the header is not a JSON object"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offs", 16, "the header is not a JSON object"},
    };
    uint8_t zeros[16] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(f, "model.safetensors", cases[i].hdr, zeros, cases[i].data);
        char path[256];
        snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
        assert_null(rt_safetensors_open(f->a, f->d, path));
        if (!strstr(tu_last_error(f->d), cases[i].msg)) fail_msg("case %zu: got '%s'", i, tu_last_error(f->d));
        assert_string_equal(diag_first(f->d)->loc.file, path);
    }
    /* header length past the end */
    char path[256];
    snprintf(path, sizeof path, "%s/short.safetensors", f->dir);
    FILE *fp = fopen(path, "wb");
    uint64_t len = 1000;
    fwrite(&len, 8, 1, fp);
    fputs("{}", fp);
    fclose(fp);
    assert_null(rt_safetensors_open(f->a, f->d, path));
    assert_string_equal(tu_last_error(f->d), "header length 1000 is past the end of the file (truncated file?)");
}

static void test_shards(void **state) {
    Fx *f = *state;
    float one[2] = {1.5f, -2.0f}, two[3] = {3, 4, 5};
    write_st(f, "part-1.safetensors", "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", one, 8);
    write_st(f, "part-2.safetensors", "{\"y\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12]}}", two, 12);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"metadata\": {\"total_size\": 20}, \"weight_map\": {\"x\": \"part-1.safetensors\", \"y\": \"part-2.safetensors\"}}", fp);
    fclose(fp);
    RtCheckpoint *c = rt_checkpoint_open(f->a, f->d, f->dir);
    assert_non_null(c);
    IrType t = {.dtype = IR_DT_F32, .rank = 1, .dims = {ir_dim_const(3)}};
    float out[3];
    assert_true(rt_checkpoint_read_f32(c, "y", &t, out, f->d));
    assert_true(out[0] == 3 && out[2] == 5);
    rt_checkpoint_close(c);
    fp = fopen(path, "w");
    fputs("{\"weight_map\": {\"x\": \"part-2.safetensors\"}}", fp);
    fclose(fp);
    assert_null(rt_checkpoint_open(f->a, f->d, f->dir));
    assert_string_equal(tu_last_error(f->d), "tensor 'x' is mapped to part-2.safetensors, which does not hold it");
    fp = fopen(path, "w");
    fputs("{\"weight_map\": {\"x\": \"../elsewhere.safetensors\"}}", fp);
    fclose(fp);
    assert_null(rt_checkpoint_open(f->a, f->d, f->dir));
    assert_non_null(strstr(tu_last_error(f->d), "the shard must be a plain file name"));
}

static void test_npy_roundtrip(void **state) {
    Fx *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/x.npy", f->dir);
    float v[6] = {1, -2.5f, 3, 4, 5e-3f, 6};
    int64_t shape[2] = {2, 3};
    assert_true(rt_npy_write_f32(f->d, path, v, 2, shape));
    RtArray arr;
    assert_true(rt_npy_read(f->d, path, &arr));
    assert_int_equal(arr.rank, 2);
    assert_int_equal(arr.shape[1], 3);
    assert_false(arr.was_int);
    for (int i = 0; i < 6; i++) assert_true(arr.data[i] == v[i]);
    free(arr.data);
    FILE *fp = fopen(path, "wb");
    fputs("not numpy at all", fp);
    fclose(fp);
    assert_false(rt_npy_read(f->d, path, &arr));
    assert_string_equal(tu_last_error(f->d), "not a NumPy .npy file");
}

/* The loaders read FP8 weights from a pool of threads: every expert weight
 * of the FP8 fixture read by 8 threads at once (each its own diagnostics)
 * must come out as read alone, with no error. */
typedef struct {
    RtCheckpoint *ck;
    int first, step, bad;
} ConcJob;

static const char *conc_name(char *buf, size_t n, int i) {
    snprintf(buf, n, "model.layers.%d.mlp.experts.%d.%s_proj.weight", 1 + i / 48 % 2, i / 3 % 16, (const char *[]){"gate", "up", "down"}[i % 3]);
    return buf;
}

static IrType conc_type(const char *name) {
    IrType t = {.dtype = IR_DT_F32, .rank = 2};
    bool down = strstr(name, "down") != NULL;
    t.dims[0] = ir_dim_const(down ? 96 : 40);
    t.dims[1] = ir_dim_const(down ? 40 : 96);
    return t;
}

static void *conc_reader(void *arg) {
    ConcJob *j = arg;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    float *v = malloc(sizeof(float) * 96 * 40);
    for (int rep = 0; rep < 20; rep++)
        for (int i = j->first; i < 96; i += j->step) {
            char name[128];
            conc_name(name, sizeof name, i);
            IrType t = conc_type(name);
            if (!rt_checkpoint_read_f32(j->ck, name, &t, v, d)) j->bad++;
        }
    free(v);
    arena_free(a);
    return NULL;
}

static void test_concurrent_fp8_reads(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtCheckpoint *ck = rt_checkpoint_open(a, d, DSCC_SOURCE_DIR "/tests/fixtures/tiny_fp8");
    assert_non_null(ck);
    float *serial = malloc(sizeof(float) * 96 * 40 * 96), *v = malloc(sizeof(float) * 96 * 40);
    for (int i = 0; i < 96; i++) {
        char name[128];
        conc_name(name, sizeof name, i);
        IrType t = conc_type(name);
        assert_true(rt_checkpoint_read_f32(ck, name, &t, serial + (size_t)i * 96 * 40, d));
    }
    pthread_t th[8];
    ConcJob jobs[8];
    for (int k = 0; k < 8; k++) {
        jobs[k] = (ConcJob){ck, k, 8, 0};
        assert_int_equal(pthread_create(&th[k], NULL, conc_reader, &jobs[k]), 0);
    }
    for (int k = 0; k < 8; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(jobs[k].bad, 0);
    }
    for (int i = 0; i < 96; i++) { /* and the values read alone did not change */
        char name[128];
        conc_name(name, sizeof name, i);
        IrType t = conc_type(name);
        assert_true(rt_checkpoint_read_f32(ck, name, &t, v, d));
        assert_memory_equal(v, serial + (size_t)i * 96 * 40, sizeof(float) * 96 * 40);
    }
    free(serial);
    free(v);
    rt_checkpoint_close(ck);
    arena_free(a);
}

/* Tensors with no elements hold no bytes: valid, and overlapping nothing,
 * wherever their (empty) data_offsets sit. */
static void test_zero_length_tensors(void **state) {
    Fx *f = *state;
    float v[2] = {1.5f, -2.0f};
    write_st(f, "model.safetensors",
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
             "\"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}, "
             "\"m\": {\"dtype\": \"BF16\", \"shape\": [3, 0], \"data_offsets\": [4, 4]}, "
             "\"z\": {\"dtype\": \"I64\", \"shape\": [0, 7], \"data_offsets\": [8, 8]}}",
             v, sizeof v);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
    RtSafetensors *st = rt_safetensors_open(f->a, f->d, path);
    assert_non_null(st);
    assert_int_equal(diag_error_count(f->d), 0);
    assert_int_equal(st->ntensors, 4);
    const RtTensor *e = rt_safetensors_find(st, "m");
    assert_non_null(e);
    assert_int_equal(e->numel, 0);
    assert_int_equal(e->nbytes, 0);
    const RtTensor *a = rt_safetensors_find(st, "a");
    float got[2];
    memcpy(got, a->data, 8);
    assert_true(got[0] == v[0] && got[1] == v[1]);
    rt_safetensors_close(st);
}

/* Writes an .npy of format version `ver`: a header for int32 [b, t], then
 * nids ids; the header length field may lie (hlen_override > 0). */
static void write_npy(const char *path, int ver, const int32_t *ids, int b, int t, int nids, uint32_t hlen_override) {
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<i4', 'fortran_order': False, 'shape': (%d, %d), }", b, t);
    int pre = ver == 1 ? 10 : 12, pad = (64 - (pre + n + 1) % 64) % 64;
    uint32_t hl = hlen_override ? hlen_override : (uint32_t)(n + pad + 1);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite("\x93NUMPY", 1, 6, fp);
    fputc(ver, fp);
    fputc(0, fp);
    for (int i = 0; i < (ver == 1 ? 2 : 4); i++) fputc((int)(hl >> (8 * i)) & 255, fp);
    fwrite(hdr, 1, (size_t)n, fp);
    for (int i = 0; i < pad; i++) fputc(' ', fp);
    fputc('\n', fp);
    fwrite(ids, 4, (size_t)nids, fp);
    fclose(fp);
}

static void test_npy_versions_and_lengths(void **state) {
    Fx *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/t.npy", f->dir);
    int32_t ids[6];
    for (int i = 0; i < 6; i++) ids[i] = (int32_t)(rand() % 100000);
    for (int ver = 1; ver <= 3; ver++) {
        write_npy(path, ver, ids, 2, 3, 6, 0);
        RtArray arr;
        assert_true(rt_npy_read(f->d, path, &arr));
        assert_int_equal(arr.rank, 2);
        assert_int_equal(arr.shape[0], 2);
        assert_int_equal(arr.shape[1], 3);
        assert_true(arr.was_int);
        for (int i = 0; i < 6; i++) assert_true(arr.data[i] == (float)ids[i]);
        free(arr.data);
    }
    RtArray arr;
    write_npy(path, 2, ids, 2, 3, 6, 70000);
    assert_false(rt_npy_read(f->d, path, &arr));
    assert_string_equal(tu_last_error(f->d), "header length 70000 is past the end of the file (152 bytes; truncated file?)");
    write_npy(path, 1, ids, 2, 3, 6, 65535);
    assert_false(rt_npy_read(f->d, path, &arr));
    assert_string_equal(tu_last_error(f->d), "header length 65535 is past the end of the file (152 bytes; truncated file?)");
    /* data cut short is still "truncated", an empty array is read as such */
    write_npy(path, 1, ids, 4, 3, 6, 0);
    assert_false(rt_npy_read(f->d, path, &arr));
    assert_string_equal(tu_last_error(f->d), "truncated .npy: expected 12 elements");
    write_npy(path, 3, ids, 1, 0, 0, 0);
    assert_true(rt_npy_read(f->d, path, &arr));
    assert_int_equal(arr.numel, 0);
    assert_int_equal(arr.shape[1], 0);
    free(arr.data);
}

/* --weights naming a folder that does not exist, or a file */
static void test_checkpoint_folder_messages(void **state) {
    Fx *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/nonexistent", f->dir);
    assert_null(rt_checkpoint_open(f->a, f->d, path));
    assert_string_equal(tu_last_error(f->d), "the checkpoint folder does not exist");
    write_st(f, "model.safetensors", "{}", NULL, 0);
    snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
    assert_null(rt_checkpoint_open(f->a, f->d, path));
    assert_string_equal(tu_last_error(f->d), "is not a folder (--weights names a checkpoint folder of safetensors files)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions),
        cmocka_unit_test_setup_teardown(test_fp8_block_dequant_and_shape_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_finite_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_npy_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_length_tensors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_npy_versions_and_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_folder_messages, setup, teardown),
        cmocka_unit_test(test_concurrent_fp8_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
