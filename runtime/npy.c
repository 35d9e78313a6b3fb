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

/* Reads the whole file (a regular file: a FIFO or device is an error, never
 * a hang); NULL after reporting. */
static unsigned char *slurp(DiagEngine *d, const char *path, size_t *size) {
    int64_t n;
    int fd = file_open_checked(d, path, -1, &n);
    if (fd < 0) return NULL;
    unsigned char *buf = malloc((size_t)n + 1);
    errno = 0;
    *size = buf ? file_read_fd(fd, buf, (size_t)n) : 0;
    int err = buf ? errno : ENOMEM;
    close(fd);
    if (!buf || (*size < (size_t)n && err)) {
        diag_error(d, at(path), "cannot read: %s", strerror(err));
        free(buf);
        return NULL;
    }
    return buf;
}

/* The preamble: magic, version 1.0 (2-byte header length) or 2.0 / 3.0
 * (4-byte); the header's start and length, or false after reporting. */
static bool read_preamble(DiagEngine *d, const char *path, const unsigned char *f, size_t size, size_t *start, size_t *hlen) {
    if (size < 10 || memcmp(f, "\x93NUMPY", 6) != 0 || f[6] < 1 || f[6] > 3 || f[7] != 0 || (f[6] > 1 && size < 12)) {
        diag_error(d, at(path), "not a NumPy .npy file");
        return false;
    }
    *start = f[6] == 1 ? 10 : 12;
    *hlen = f[8] | (size_t)f[9] << 8;
    if (f[6] > 1) *hlen |= (size_t)f[10] << 16 | (size_t)f[11] << 24;
    if (*hlen > size - *start) {
        diag_error(d, at(path), "header length %zu is past the end of the file (%zu bytes; truncated file?)", *hlen, size);
        return false;
    }
    if (*hlen > 1 << 20) {
        diag_error(d, at(path), "header length %zu is over the 1 MiB limit", *hlen);
        return false;
    }
    return true;
}

/* Converts the raw elements to floats; false when an integer is beyond 2^24. */
static bool convert(RtArray *out, const unsigned char *raw, int size) {
    bool ok = true;
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
    return ok;
}

bool rt_npy_read(DiagEngine *d, const char *path, RtArray *out) {
    memset(out, 0, sizeof *out);
    size_t fsize, start, hlen;
    unsigned char *file = slurp(d, path, &fsize);
    if (!file) return false;
    if (!read_preamble(d, path, file, fsize, &start, &hlen)) {
        free(file);
        return false;
    }
    char *hdr = strndup((const char *)file + start, hlen);
    const char *descr = hdr ? dict_value(hdr, "descr") : NULL, *fo = hdr ? dict_value(hdr, "fortran_order") : NULL;
    int size = 0;
    if (descr) {
        if (!strncmp(descr, "'<i4'", 5)) size = 4, out->was_int = true;
        else if (!strncmp(descr, "'<i8'", 5)) size = 8, out->was_int = true;
        else if (!strncmp(descr, "'<f4'", 5)) size = 4;
    }
    bool ok = size && fo && strncmp(fo, "False", 5) == 0 && parse_shape(dict_value(hdr, "shape"), out);
    if (!ok) diag_error(d, at(path), "unsupported .npy: need a C-order int32, int64 or float32 array (header: %.120s)", hdr ? hdr : "");
    free(hdr);
    size_t avail = fsize - start - hlen;
    if (ok && (uint64_t)out->numel > avail / (size_t)size) {
        diag_error(d, at(path), "truncated .npy: expected %lld elements", (long long)out->numel);
        ok = false;
    }
    if (ok && !(out->data = malloc(sizeof(float) * (size_t)(out->numel + 1)))) {
        diag_error(d, at(path), "out of host memory for %lld elements", (long long)out->numel);
        ok = false;
    }
    if (ok && !convert(out, file + start + hlen, size)) {
        diag_error(d, at(path), "integer values beyond 2^24 are not supported");
        ok = false;
    }
    free(file);
    if (!ok) {
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
