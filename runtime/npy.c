/* npy.c — NumPy .npy files (format versions 1 to 3): the magic, a version,
 * a little-endian header length, a Python-literal dict with 'descr',
 * 'fortran_order' and 'shape', then the raw data in C order. Only the
 * dtypes the CLI exchanges are accepted: <i4, <i8, <f4 in, <f4 out. */
#include "runtime/runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static SrcLoc at(const char *path) { return (SrcLoc){path, 0, 0}; }

/* Finds 'key': in the header dict and returns the text after the colon. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

static bool parse_shape(const char *p, RtArray *out) {
    if (!p || *p != '(') return false;
    p++;
    out->rank = 0;
    out->numel = 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || out->rank == IR_MAX_RANK || __builtin_mul_overflow(out->numel, v, &out->numel)) return false;
        out->shape[out->rank++] = v;
        p = end;
    }
    return *p == ')';
}

bool rt_npy_read(DiagEngine *d, const char *path, RtArray *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error(d, at(path), "cannot read: %s", strerror(errno));
        return false;
    }
    unsigned char pre[10];
    bool ok = fread(pre, 1, 10, f) == 10 && memcmp(pre, "\x93NUMPY", 6) == 0 && pre[6] >= 1 && pre[6] <= 3;
    uint32_t hlen = 0;
    if (ok && pre[6] == 1) hlen = pre[8] | (uint32_t)pre[9] << 8;
    else if (ok) {
        unsigned char more[2];
        ok = fread(more, 1, 2, f) == 2;
        hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)more[0] << 16 | (uint32_t)more[1] << 24;
    }
    if (!ok || hlen > 1 << 20) {
        diag_error(d, at(path), "not a NumPy .npy file");
        fclose(f);
        return false;
    }
    char *hdr = calloc(hlen + 1, 1);
    ok = fread(hdr, 1, hlen, f) == hlen;
    const char *descr = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order");
    int size = 0;
    if (ok && descr) {
        if (!strncmp(descr, "'<i4'", 5)) size = 4, out->was_int = true;
        else if (!strncmp(descr, "'<i8'", 5)) size = 8, out->was_int = true;
        else if (!strncmp(descr, "'<f4'", 5)) size = 4;
    }
    if (!ok || !size || !fo || strncmp(fo, "False", 5) != 0 || !parse_shape(dict_value(hdr, "shape"), out)) {
        diag_error(d, at(path), "unsupported .npy: need a C-order int32, int64 or float32 array (header: %.120s)", hdr);
        free(hdr);
        fclose(f);
        return false;
    }
    free(hdr);
    unsigned char *raw = malloc((size_t)(out->numel * size) + 1);
    out->data = malloc(sizeof(float) * (size_t)(out->numel + 1));
    ok = raw && out->data && fread(raw, (size_t)size, (size_t)out->numel, f) == (size_t)out->numel;
    fclose(f);
    if (!ok) {
        diag_error(d, at(path), "truncated .npy: expected %lld elements", (long long)out->numel);
        free(raw);
        free(out->data);
        out->data = NULL;
        return false;
    }
    for (int64_t i = 0; i < out->numel; i++) {
        if (size == 8) {
            int64_t v;
            memcpy(&v, raw + i * 8, 8);
            out->data[i] = (float)v;
            ok &= v >= -(1 << 24) && v <= 1 << 24;
        } else if (out->was_int) {
            int32_t v;
            memcpy(&v, raw + i * 4, 4);
            out->data[i] = (float)v;
            ok &= v >= -(1 << 24) && v <= 1 << 24;
        } else {
            memcpy(&out->data[i], raw + i * 4, 4);
        }
    }
    free(raw);
    if (!ok) {
        diag_error(d, at(path), "integer values beyond 2^24 are not supported");
        free(out->data);
        out->data = NULL;
    }
    return ok;
}

bool rt_npy_write_f32(DiagEngine *d, const char *path, const float *data, int rank, const int64_t *shape) {
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, rank == 1 ? "%lld,)" : i + 1 < rank ? "%lld, " : "%lld)", (long long)shape[i]);
        numel *= shape[i];
    }
    if (rank == 0) n += snprintf(hdr + n, sizeof hdr - (size_t)n, ")");
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, ", }");
    int total = 10 + n + 1, pad = (64 - total % 64) % 64; /* header padded to 64 bytes, ends in \n */
    char head[10 + sizeof hdr + 64];
    uint16_t hl = (uint16_t)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 255), (unsigned char)(hl >> 8)};
    memcpy(head, pre, 10);
    memcpy(head + 10, hdr, (size_t)n);
    memset(head + 10 + n, ' ', (size_t)pad);
    head[10 + n + pad] = '\n';
    FileChunk parts[2] = {{head, (size_t)(10 + n + pad + 1)}, {data, sizeof(float) * (size_t)numel}};
    int err = file_write(path, parts, 2);
    if (err) diag_error(d, at(path), "cannot write: %s", strerror(err));
    return err == 0;
}
