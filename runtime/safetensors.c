/* safetensors.c — reads safetensors files: u64 little-endian header length
 * N, N bytes of JSON describing each tensor (dtype, shape, data_offsets
 * relative to the data area), then the data.
 *
 * The header is untrusted input: every field is type-checked, every size
 * multiplied with overflow checks, every offset bounded by the file, and
 * tensors may not overlap. Only then do tensors point into the mapping. */
#include "runtime/runtime.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RT_MAX_HEADER (100u * 1024 * 1024)

static const struct {
    const char *name;
    int size;
} dtypes[] = {{"BF16", 2}, {"F16", 2}, {"F32", 4}, {"F8_E4M3", 1}, {"I32", 4}, {"I64", 8}};

const char *rt_dtype_name(RtDType t) { return dtypes[t].name; }
int rt_dtype_size(RtDType t) { return dtypes[t].size; }

static SrcLoc at(const char *path) { return (SrcLoc){path, 0, 0}; }

static int by_name(const void *a, const void *b) {
    return strcmp(((const RtTensor *)a)->name, ((const RtTensor *)b)->name);
}

typedef struct {
    size_t begin, end;
    const char *name;
} Span;

static int by_begin(const void *a, const void *b) {
    const Span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Validates one header entry into t; false after reporting. */
static bool parse_entry(Arena *a, DiagEngine *d, const char *path, const cJSON *e, size_t data_size, RtTensor *t,
                        size_t *begin, int *past_end) {
    const char *nm = e->string;
    t->name = arena_strdup(a, nm);
    if (!cJSON_IsObject(e)) {
        diag_error(d, at(path), "tensor '%s': header entry is not an object", nm);
        return false;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2) {
        diag_error(d, at(path), "tensor '%s': needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" ([begin, end])", nm);
        return false;
    }
    int k = -1;
    for (int i = 0; i < (int)(sizeof dtypes / sizeof dtypes[0]); i++)
        if (strcmp(dt->valuestring, dtypes[i].name) == 0) k = i;
    if (k < 0) {
        diag_error(d, at(path), "tensor '%s': dtype \"%s\" is not supported (BF16, F16, F32, F8_E4M3, I32, I64)", nm, dt->valuestring);
        return false;
    }
    t->dtype = (RtDType)k;
    t->rank = cJSON_GetArraySize(sh);
    if (t->rank > IR_MAX_RANK) {
        diag_error(d, at(path), "tensor '%s': %d dimensions, at most %d supported", nm, t->rank, IR_MAX_RANK);
        return false;
    }
    t->numel = 1;
    for (int i = 0; i < t->rank; i++) {
        const cJSON *v = cJSON_GetArrayItem(sh, i);
        double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (x < 0 || x != floor(x) || x > 9.0e15 || __builtin_mul_overflow(t->numel, (int64_t)x, &t->numel) ||
            t->numel > (int64_t)1 << 50) {
            diag_error(d, at(path), "tensor '%s': shape entry %d is not a valid dimension", nm, i);
            return false;
        }
        t->shape[i] = (int64_t)x;
    }
    double b = cJSON_IsNumber(cJSON_GetArrayItem(of, 0)) ? cJSON_GetArrayItem(of, 0)->valuedouble : -1;
    double en = cJSON_IsNumber(cJSON_GetArrayItem(of, 1)) ? cJSON_GetArrayItem(of, 1)->valuedouble : -1;
    if (b < 0 || en < b || b != floor(b) || en != floor(en) || en > 9.0e15) {
        diag_error(d, at(path), "tensor '%s': data_offsets must be integers with 0 <= begin <= end", nm);
        return false;
    }
    size_t need = (size_t)t->numel * (size_t)dtypes[k].size;
    t->nbytes = (size_t)(en - b);
    if (t->nbytes != need) {
        diag_error(d, at(path), "tensor '%s': data_offsets [%.0f, %.0f] hold %zu bytes but %s%s needs %zu", nm, b, en,
                   t->nbytes, dtypes[k].name, t->rank ? " of the given shape" : "", need);
        return false;
    }
    if ((size_t)en > data_size) {
        /* A truncated file puts every later tensor past the end: say it once. */
        if ((*past_end)++ == 0)
            diag_error(d, at(path), "tensor '%s': data_offsets end %.0f is past the end of the data (%zu bytes; truncated file?)", nm, en, data_size);
        return false;
    }
    *begin = (size_t)b;
    return true;
}

RtSafetensors *rt_safetensors_parse(Arena *a, DiagEngine *d, const char *path, const uint8_t *data, size_t size) {
    if (size < 8) {
        diag_error(d, at(path), "not a safetensors file: %zu bytes, shorter than the 8-byte header length", size);
        return NULL;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n > RT_MAX_HEADER || n > size - 8) {
        diag_error(d, at(path), "header length %llu is %s", (unsigned long long)n,
                   n > RT_MAX_HEADER ? "over the 100 MB limit" : "past the end of the file (truncated file?)");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)data + 8, (size_t)n);
    if (!cJSON_IsObject(root)) {
        diag_error(d, at(path), "the header is not a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    const uint8_t *base = data + 8 + n;
    size_t data_size = size - 8 - (size_t)n;
    RtSafetensors *st = arena_alloc(a, sizeof *st);
    st->path = arena_strdup(a, path);
    int cap = cJSON_GetArraySize(root);
    st->tensors = arena_alloc(a, sizeof(RtTensor) * (size_t)(cap + 1));
    Span *spans = calloc((size_t)cap + 1, sizeof(Span));
    bool ok = true;
    int past_end = 0, nspans = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        RtTensor *t = &st->tensors[st->ntensors];
        size_t b;
        if (!parse_entry(a, d, path, e, data_size, t, &b, &past_end)) { ok = false; continue; }
        t->data = base + b;
        if (t->nbytes) spans[nspans++] = (Span){b, b + t->nbytes, t->name}; /* an empty tensor overlaps nothing */
        st->ntensors++;
    }
    cJSON_Delete(root);
    if (past_end > 1) diag_note(d, at(path), "%d more tensors end past the data", past_end - 1);
    qsort(spans, (size_t)nspans, sizeof(Span), by_begin);
    for (int i = 1; ok && i < nspans; i++)
        if (spans[i].begin < spans[i - 1].end) {
            diag_error(d, at(path), "tensors '%s' and '%s' overlap in the data area", spans[i - 1].name, spans[i].name);
            ok = false;
        }
    free(spans);
    qsort(st->tensors, (size_t)st->ntensors, sizeof(RtTensor), by_name);
    for (int i = 1; ok && i < st->ntensors; i++)
        if (strcmp(st->tensors[i].name, st->tensors[i - 1].name) == 0) {
            diag_error(d, at(path), "tensor '%s' appears twice", st->tensors[i].name);
            ok = false;
        }
    return ok ? st : NULL;
}

RtSafetensors *rt_safetensors_open(Arena *a, DiagEngine *d, const char *path) {
    int64_t fsize;
    int fd = file_open_checked(d, arena_strdup(a, path), -1, &fsize); /* a FIFO or device: an error, not a hang */
    if (fd < 0) return NULL;
    size_t size = (size_t)fsize;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (size && map == MAP_FAILED) {
        diag_error(d, at(path), "cannot map: %s", strerror(errno));
        return NULL;
    }
    RtSafetensors *st = rt_safetensors_parse(a, d, arena_strdup(a, path), map ? map : (const uint8_t *)"", size);
    if (!st) {
        if (map) munmap(map, size);
        return NULL;
    }
    st->map = map;
    st->map_size = size;
    return st;
}

void rt_safetensors_close(RtSafetensors *st) {
    if (st && st->map) munmap(st->map, st->map_size);
    if (st) st->map = NULL;
}

const RtTensor *rt_safetensors_find(const RtSafetensors *st, const char *name) {
    RtTensor key = {.name = name};
    return bsearch(&key, st->tensors, (size_t)st->ntensors, sizeof(RtTensor), by_name);
}

/* ---- conversions ------------------------------------------------------- */

float rt_bf16_decode(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t rt_bf16_encode(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float rt_f16_decode(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

float rt_fp8_e4m3_decode(uint8_t b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    float v = (e == 15 && m == 7) ? NAN : e == 0 ? ldexpf((float)m, -9) : ldexpf((float)(m | 8), e - 10);
    return s ? -v : v;
}

void rt_convert_f32(RtDType t, const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *p = src + i * dtypes[t].size;
        switch (t) {
        case RT_BF16: dst[i] = rt_bf16_decode((uint16_t)(p[0] | p[1] << 8)); break;
        case RT_F16: dst[i] = rt_f16_decode((uint16_t)(p[0] | p[1] << 8)); break;
        case RT_F32: memcpy(&dst[i], p, 4); break;
        case RT_F8_E4M3: dst[i] = rt_fp8_e4m3_decode(p[0]); break;
        case RT_I32: {
            int32_t v;
            memcpy(&v, p, 4);
            dst[i] = (float)v;
            break;
        }
        case RT_I64: {
            int64_t v;
            memcpy(&v, p, 8);
            dst[i] = (float)v;
            break;
        }
        }
    }
}
