/* fuzz_checkpoint.c — libFuzzer harness for a checkpoint directory: the
 * safetensors index with its shards. The input's parts (fuzz_util.h's
 * separator) become files in a private temporary folder: part 0 is
 * model.safetensors.index.json and part i the shard s<i>.safetensors; an
 * input of one part is a lone model.safetensors. The directory must open or
 * give errors; every tensor of an opened checkpoint is then read as f32
 * (FP8 ones with their block scales) into a buffer of exactly its size,
 * once with its own shape and once with a wrong one, which must be refused. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "tests/fuzz/fuzz_util.h"

#define MAX_READ ((int64_t)1 << 20) /* f32 values read per tensor */

/* Reads the tensors of `shard` that the checkpoint serves from `path` (the
 * first shard holding a name wins; shards the index does not name are not
 * opened). A lone model.safetensors must serve all of its tensors. */
static void read_all(RtCheckpoint *ck, const RtSafetensors *shard, const char *path, bool all, DiagEngine *d) {
    for (int i = 0; i < shard->ntensors; i++) {
        const char *file = NULL;
        const RtTensor *t = rt_checkpoint_find(ck, shard->tensors[i].name, &file);
        if (all && !t) abort();
        if (!t || strcmp(file, path) != 0 || t->numel > MAX_READ) continue;
        IrType type = {.dtype = IR_DT_F32, .rank = t->rank};
        for (int k = 0; k < t->rank; k++) type.dims[k] = ir_dim_const(t->shape[k]);
        float *dst = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
        int before = diag_error_count(d);
        bool ok = rt_checkpoint_read_f32(ck, t->name, &type, dst, d);
        if (ok != (diag_error_count(d) == before)) abort();
        type.rank = t->rank + 1; /* another shape: always refused */
        type.dims[t->rank] = ir_dim_const(1);
        if (type.rank <= IR_MAX_RANK && rt_checkpoint_read_f32(ck, t->name, &type, dst, d)) abort();
        free(dst);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fz_dir();
    FzPart parts[FZ_MAX_PARTS];
    int n = fz_split(data, size, parts, FZ_MAX_PARTS);
    if (n == 1) fz_write("model.safetensors", parts[0].data, parts[0].size);
    else fz_write("model.safetensors.index.json", parts[0].data, parts[0].size);
    for (int i = 1; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%d.safetensors", i);
        fz_write(name, parts[i].data, parts[i].size);
    }
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, fz_diag_out());
    RtCheckpoint *ck = rt_checkpoint_open(a, d, dir);
    if (!ck && diag_error_count(d) == 0) abort();
    for (int i = n == 1 ? 0 : 1; ck && i < n; i++) {
        /* The shard's own tensor list, from a parse of the same bytes. */
        uint8_t *copy = malloc(parts[i].size ? parts[i].size : 1);
        memcpy(copy, parts[i].data, parts[i].size);
        Arena *sa = arena_new();
        DiagEngine *sd = diag_new(sa, NULL);
        RtSafetensors *st = rt_safetensors_parse(sa, sd, "shard", copy, parts[i].size);
        char path[8192];
        if (n == 1) snprintf(path, sizeof path, "%s/model.safetensors", dir);
        else snprintf(path, sizeof path, "%s/s%d.safetensors", dir, i);
        if (st) read_all(ck, st, path, n == 1, d);
        arena_free(sa);
        free(copy);
    }
    rt_checkpoint_close(ck);
    arena_free(a);
    return 0;
}
