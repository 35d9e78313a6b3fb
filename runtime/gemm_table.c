/* gemm_table.c — the measured GEMM paths table (see gemm_table.h): its
 * text form, read strictly (a bad line is an error at FILE:LINE, never
 * skipped: a table that silently lost entries would choose by the rule
 * without saying so), and the choice it makes. */
#include "runtime/gemm_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The words of one line (comment removed), at most `cap`; how many. */
static int split_words(char *line, char **w, int cap) {
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(line, " \t\r", &save); p; p = strtok_r(NULL, " \t\r", &save)) {
        if (n == cap) return cap + 1;
        w[n++] = p;
    }
    return n;
}

static bool parse_int(const char *s, int64_t lo, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo) return false;
    *v = x;
    return true;
}

/* A time in microseconds, or '-' (-1). */
static bool parse_us(const char *s, double *v) {
    if (strcmp(s, "-") == 0) {
        *v = -1;
        return true;
    }
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !(x >= 0) || x > 1e12) return false;
    *v = x;
    return true;
}

/* One entry from its 8 or 9 words (nw); NULL when fine, else what is wrong. */
static const char *parse_entry(char **w, int nw, RtGemmEntry *e) {
    if (strcmp(w[0], "fp8") && strcmp(w[0], "bf16")) return "the kind must be 'fp8' or 'bf16'";
    e->kind = strcmp(w[0], "fp8") == 0 ? RT_GEMM_FP8 : RT_GEMM_BF16;
    if (!parse_int(w[1], 1, &e->n) || !parse_int(w[2], 1, &e->k)) return "N and K must be positive integers";
    if (!parse_int(w[3], 1, &e->mlo) || !parse_int(w[4], 1, &e->mhi) || e->mhi < e->mlo) return "M_LO and M_HI must be integers with 1 <= M_LO <= M_HI";
    if (strcmp(w[5], "generated") && strcmp(w[5], "cublaslt") && strcmp(w[5], "tma")) return "the choice must be 'generated', 'cublaslt' or 'tma'";
    e->choice = strcmp(w[5], "generated") == 0 ? RT_GEMM_GENERATED : strcmp(w[5], "tma") == 0 ? RT_GEMM_TMA : RT_GEMM_CUBLASLT;
    e->tma_us = -1;
    if (!parse_us(w[6], &e->gen_us) || !parse_us(w[7], &e->lib_us) || (nw == 9 && !parse_us(w[8], &e->tma_us)))
        return "the times must be microseconds (>= 0) or '-'";
    if ((e->choice == RT_GEMM_GENERATED ? e->gen_us : e->choice == RT_GEMM_TMA ? e->tma_us : e->lib_us) < 0) return "the chosen path has no time";
    return NULL;
}

/* The entry before e's that overlaps it (same kind and shape), or NULL. */
static const RtGemmEntry *overlap(const RtGemmTable *t, const RtGemmEntry *e) {
    for (int i = 0; i < t->n; i++) {
        const RtGemmEntry *o = &t->e[i];
        if (o->kind == e->kind && o->n == e->n && o->k == e->k && o->mlo <= e->mhi && e->mlo <= o->mhi) return o;
    }
    return NULL;
}

/* Line `ln` (NUL-terminated, modified) into t; false after reporting. */
static bool parse_line(RtGemmTable *t, char *line, const char *file, int ln, int *arch_line, DiagEngine *d) {
    char *w[10];
    int nw = split_words(line, w, 9);
    SrcLoc at = {file, ln, 1};
    if (nw == 0) return true;
    if (strcmp(w[0], "arch") == 0) {
        int64_t v;
        if (nw != 2 || !parse_int(w[1], 1, &v) || v > 1000) {
            diag_error(d, at, "GEMM table: expected 'arch N' with N a compute capability such as 90");
            return false;
        }
        if (*arch_line) {
            diag_error(d, at, "GEMM table: a second 'arch' line (the first is line %d)", *arch_line);
            return false;
        }
        t->arch = (int)v, *arch_line = ln;
        return true;
    }
    if (nw != 8 && nw != 9) {
        diag_error(d, at, "GEMM table: expected 'KIND N K M_LO M_HI CHOICE GEN_US LIB_US [TMA_US]' (8 or 9 words), found %s%d",
                   nw > 9 ? "more than " : "", nw > 9 ? 9 : nw);
        return false;
    }
    RtGemmEntry e;
    const char *why = parse_entry(w, nw, &e);
    if (why) {
        diag_error(d, at, "GEMM table: %s", why);
        return false;
    }
    const RtGemmEntry *o = overlap(t, &e);
    if (o) {
        diag_error(d, at, "GEMM table: rows %lld..%lld of %s %lld x %lld overlap rows %lld..%lld of an earlier line", (long long)e.mlo,
                   (long long)e.mhi, w[0], (long long)e.n, (long long)e.k, (long long)o->mlo, (long long)o->mhi);
        return false;
    }
    RtGemmEntry *ne = realloc(t->e, sizeof *t->e * (size_t)(t->n + 1));
    if (!ne) {
        diag_error(d, at, "GEMM table: out of memory");
        return false;
    }
    t->e = ne;
    t->e[t->n++] = e;
    return true;
}

RtGemmTable *rt_gemm_table_parse(const char *text, size_t len, const char *file, DiagEngine *d) {
    RtGemmTable *t = calloc(1, sizeof *t);
    char *buf = malloc(len + 1);
    if (!t || !buf) {
        diag_error(d, (SrcLoc){file, 0, 0}, "GEMM table: out of memory");
        free(t), free(buf);
        return NULL;
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    int ln = 0, arch_line = 0;
    bool ok = true;
    for (char *p = buf; ok && p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        if (nl) *nl = 0;
        ln++;
        if (strlen(p) != (size_t)((nl ? nl : buf + len) - p)) {
            diag_error(d, (SrcLoc){file, ln, 1}, "GEMM table: a NUL byte in the line");
            ok = false;
        } else ok = parse_line(t, p, file, ln, &arch_line, d);
        p = nl ? nl + 1 : buf + len;
    }
    free(buf);
    if (!ok) {
        rt_gemm_table_free(t);
        return NULL;
    }
    return t;
}

RtGemmTable *rt_gemm_table_load(const char *path, DiagEngine *d) {
    Arena *a = arena_new();
    size_t len = 0;
    char *text = read_file_text(a, d, path, &len);
    RtGemmTable *t = text ? rt_gemm_table_parse(text, len, path, d) : NULL;
    arena_free(a);
    return t;
}

void rt_gemm_table_free(RtGemmTable *t) {
    if (!t) return;
    free(t->e);
    free(t);
}

RtGemmChoice rt_gemm_table_pick(const RtGemmTable *t, RtGemmKind kind, int64_t M, int64_t N, int64_t K) {
    for (int i = 0; t && i < t->n; i++) {
        const RtGemmEntry *e = &t->e[i];
        if (e->kind == kind && e->n == N && e->k == K && e->mlo <= M && M <= e->mhi) return e->choice;
    }
    return RT_GEMM_RULE;
}

bool rt_gemm_use_cublaslt(const RtGemmTable *t, RtGemmKind kind, int64_t M, int64_t N, int64_t K, bool has_algorithm) {
    RtGemmChoice c = rt_gemm_table_pick(t, kind, M, N, K);
    return has_algorithm && c != RT_GEMM_GENERATED && c != RT_GEMM_TMA;
}

bool rt_gemm_use_tma(const RtGemmTable *t, int64_t M, int64_t N, int64_t K) {
    RtGemmChoice c = rt_gemm_table_pick(t, RT_GEMM_FP8, M, N, K);
    return c == RT_GEMM_TMA || (c == RT_GEMM_RULE && M >= RT_GEMM_TMA_MIN_M);
}

RtGemmTable *rt_gemm_table_open(int sm, const char *path, DiagEngine *d, bool explain, bool *bad) {
    *bad = false;
    if (path && strcmp(path, "none") == 0) return NULL;
    bool user = path && *path;
    RtGemmTable *t = user ? rt_gemm_table_load(path, d)
                          : rt_gemm_table_parse(rt_gemm_table_default, strlen(rt_gemm_table_default), "runtime/gemm_table.txt (built in)", d);
    if (!t) {
        *bad = true;
        if (user && explain) diag_note(d, (SrcLoc){0}, "DSCC_GEMM_TABLE names the GEMM table; DSCC_GEMM_TABLE=none runs without one");
        return NULL;
    }
    if (t->arch && t->arch != sm) {
        if (user && explain) diag_warning(d, (SrcLoc){path, 0, 0}, "GEMM table measured on sm_%d, this GPU is sm_%d: not used", t->arch, sm);
        rt_gemm_table_free(t);
        return NULL;
    }
    return t;
}

static void put_us(FILE *f, double us) {
    if (us < 0) fputs(" -", f);
    else fprintf(f, " %.2f", us);
}

void rt_gemm_table_write_entry(FILE *f, const RtGemmEntry *e) {
    fprintf(f, "%s %lld %lld %lld %lld %s", e->kind == RT_GEMM_FP8 ? "fp8" : "bf16", (long long)e->n, (long long)e->k, (long long)e->mlo,
            (long long)e->mhi, e->choice == RT_GEMM_GENERATED ? "generated" : e->choice == RT_GEMM_TMA ? "tma" : "cublaslt");
    put_us(f, e->gen_us);
    put_us(f, e->lib_us);
    if (e->choice == RT_GEMM_TMA || e->tma_us > 0) put_us(f, e->tma_us);
    fputc('\n', f);
}
