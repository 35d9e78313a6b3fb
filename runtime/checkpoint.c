/* checkpoint.c — a Hugging Face checkpoint directory: one model.safetensors
 * or the shards named by model.safetensors.index.json, and the FP8 weights'
 * 128x128 block scales (NAME_scale_inv). Lookups go through the shards in
 * order; the index is validated against what the shards really hold. */
#include "runtime/runtime.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct RtCheckpoint {
    Arena *arena;
    const char *dir;
    const char *config;
    int nfiles;
    RtSafetensors **files;
};

static SrcLoc at(const char *path) { return (SrcLoc){path, 0, 0}; }

static bool open_shards(RtCheckpoint *c, DiagEngine *d, const char *index_path) {
    size_t len;
    char *text = read_file_text(c->arena, d, index_path, &len);
    if (!text) return false;
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        diag_error(d, at(index_path), "expected an object with a \"weight_map\" object");
        cJSON_Delete(root);
        return false;
    }
    bool ok = true;
    const char **names = arena_alloc(c->arena, sizeof(char *) * (size_t)(cJSON_GetArraySize(map) + 1));
    c->files = arena_alloc(c->arena, sizeof(RtSafetensors *) * (size_t)(cJSON_GetArraySize(map) + 1));
    for (const cJSON *e = map->child; e && ok; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || strstr(e->valuestring, "..") || !*e->valuestring) {
            diag_error(d, at(index_path), "tensor '%s': the shard must be a plain file name in the same directory", e->string);
            ok = false;
            break;
        }
        int k = 0;
        while (k < c->nfiles && strcmp(names[k], e->valuestring) != 0) k++;
        if (k == c->nfiles) {
            const char *p = arena_printf(c->arena, "%s/%s", c->dir, e->valuestring);
            RtSafetensors *st = rt_safetensors_open(c->arena, d, p);
            if (!st) { ok = false; break; }
            names[c->nfiles] = arena_strdup(c->arena, e->valuestring);
            c->files[c->nfiles++] = st;
        }
        if (!rt_safetensors_find(c->files[k], e->string)) {
            diag_error(d, at(index_path), "tensor '%s' is mapped to %s, which does not hold it", e->string, e->valuestring);
            ok = false;
        }
    }
    cJSON_Delete(root);
    return ok;
}

RtCheckpoint *rt_checkpoint_open(Arena *a, DiagEngine *d, const char *dir) {
    struct stat sb;
    const char *where = arena_strdup(a, dir);
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT) diag_error(d, at(where), "the checkpoint folder does not exist");
        else diag_error(d, at(where), "cannot open the checkpoint folder: %s", strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(sb.st_mode)) {
        diag_error(d, at(where), "is not a folder (--weights names a checkpoint folder of safetensors files)");
        return NULL;
    }
    RtCheckpoint *c = arena_alloc(a, sizeof *c);
    c->arena = a;
    c->dir = arena_strdup(a, dir);
    const char *cfg = arena_printf(a, "%s/config.json", dir);
    c->config = access(cfg, R_OK) == 0 ? cfg : NULL;
    const char *index = arena_printf(a, "%s/model.safetensors.index.json", dir);
    const char *single = arena_printf(a, "%s/model.safetensors", dir);
    bool ok;
    if (access(index, R_OK) == 0) {
        ok = open_shards(c, d, index);
    } else if (access(single, R_OK) == 0) {
        c->files = arena_alloc(a, sizeof(RtSafetensors *));
        ok = (c->files[0] = rt_safetensors_open(a, d, single)) != NULL;
        c->nfiles = ok;
    } else {
        diag_error(d, at(dir), "no model.safetensors or model.safetensors.index.json in this directory");
        ok = false;
    }
    if (!ok) {
        rt_checkpoint_close(c);
        return NULL;
    }
    return c;
}

void rt_checkpoint_close(RtCheckpoint *c) {
    for (int i = 0; c && i < c->nfiles; i++) rt_safetensors_close(c->files[i]);
}

const char *rt_checkpoint_config_path(const RtCheckpoint *c) { return c->config; }

int rt_checkpoint_count(const RtCheckpoint *c) {
    int n = 0;
    for (int i = 0; i < c->nfiles; i++) n += c->files[i]->ntensors;
    return n;
}

const RtTensor *rt_checkpoint_find(const RtCheckpoint *c, const char *name, const char **file) {
    for (int i = 0; i < c->nfiles; i++) {
        const RtTensor *t = rt_safetensors_find(c->files[i], name);
        if (t) {
            if (file) *file = c->files[i]->path;
            return t;
        }
    }
    return NULL;
}

static bool dequant_named(RtCheckpoint *c, const RtTensor *t, const char *file, const char *sname, float *dst, DiagEngine *d);

static void shape_text(StrBuf *sb, const int64_t *s, int rank) {
    sb_putc(sb, '[');
    for (int i = 0; i < rank; i++) sb_printf(sb, i ? ",%lld" : "%lld", (long long)s[i]);
    sb_putc(sb, ']');
}

/* Multiplies an FP8 matrix by its block scales: w[i][j] *= s[i/128][j/128].
 * Called from the loaders' worker threads at once, so it allocates nothing
 * from the checkpoint's arena (which is not thread-safe). */
static bool dequant_blocks(RtCheckpoint *c, const RtTensor *t, const char *file, float *dst, DiagEngine *d) {
    size_t nl = strlen(t->name) + sizeof "_scale_inv";
    char *sname = malloc(nl);
    if (!sname) {
        diag_error(d, at(file), "out of host memory reading the block scales of '%s'", t->name);
        return false;
    }
    snprintf(sname, nl, "%s_scale_inv", t->name);
    bool ok = dequant_named(c, t, file, sname, dst, d);
    free(sname);
    return ok;
}

static bool dequant_named(RtCheckpoint *c, const RtTensor *t, const char *file, const char *sname, float *dst, DiagEngine *d) {
    const char *sfile;
    const RtTensor *s = rt_checkpoint_find(c, sname, &sfile);
    if (t->rank != 2) {
        diag_error(d, at(file), "tensor '%s': FP8 weights must be matrices with 128x128 block scales", t->name);
        return false;
    }
    int64_t rb = (t->shape[0] + 127) / 128, cb = (t->shape[1] + 127) / 128;
    if (!s) {
        diag_error(d, at(file), "tensor '%s' is F8_E4M3 but '%s' (its block scales) is missing", t->name, sname);
        return false;
    }
    if (s->rank != 2 || s->shape[0] != rb || s->shape[1] != cb || (s->dtype != RT_F32 && s->dtype != RT_BF16)) {
        diag_error(d, at(sfile), "tensor '%s': expected f32[%lld,%lld] block scales for %s", sname, (long long)rb, (long long)cb, t->name);
        return false;
    }
    float *sc = malloc(sizeof(float) * (size_t)(rb * cb));
    rt_convert_f32(s->dtype, s->data, sc, rb * cb);
    for (int64_t k = 0; k < rb * cb; k++)
        if (!isfinite(sc[k])) { /* a NaN / inf scale makes its whole block non-numbers */
            diag_error(d, at(sfile), "tensor '%s' holds %s at block %lld of %lld", sname, isnan(sc[k]) ? "a NaN" : "an infinity",
                       (long long)k, (long long)(rb * cb));
            free(sc);
            return false;
        }
    for (int64_t i = 0; i < t->shape[0]; i++)
        for (int64_t j = 0; j < t->shape[1]; j++) dst[i * t->shape[1] + j] *= sc[(i / 128) * cb + j / 128];
    free(sc);
    return true;
}

bool rt_checkpoint_read_f32(void *ckpt, const char *name, const IrType *type, float *dst, DiagEngine *d) {
    RtCheckpoint *c = ckpt;
    const char *file;
    const RtTensor *t = rt_checkpoint_find(c, name, &file);
    if (!t) {
        diag_error(d, at(c->dir), "tensor '%s' is missing from the checkpoint", name);
        return false;
    }
    bool same = t->rank == type->rank;
    for (int i = 0; same && i < t->rank; i++) same = ir_dim_is_const(type->dims[i]) && t->shape[i] == type->dims[i].coeff;
    if (!same) {
        StrBuf a, b;
        sb_init(&a);
        sb_init(&b);
        shape_text(&a, t->shape, t->rank);
        ir_type_print(NULL, type, &b);
        diag_error(d, at(file), "tensor '%s' is %s%s in the checkpoint but the model expects %s (does the config match the weights?)",
                   name, rt_dtype_name(t->dtype), a.data, b.data);
        sb_free(&a);
        sb_free(&b);
        return false;
    }
    if (t->dtype == RT_I32 || t->dtype == RT_I64) {
        diag_error(d, at(file), "tensor '%s' is %s; the model expects floating point", name, rt_dtype_name(t->dtype));
        return false;
    }
    rt_convert_f32(t->dtype, t->data, dst, t->numel);
    return t->dtype == RT_F8_E4M3 ? dequant_blocks(c, t, file, dst, d) : true;
}
