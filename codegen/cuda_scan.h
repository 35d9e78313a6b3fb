/* cuda_scan.h — reading CUDA C++ source text without a parser: where a
 * comment or literal ends, identifiers, and matching braces. Static inline
 * and self-contained, because two programs read generated sources this
 * way: codegen/kernels.c (which entry points call DSCC_PDL_WAIT) and the
 * emulated NVRTC (tests/emu/emu_nvrtc.c, a preloaded library that does not
 * link dscc_core), which translates them for the host. */
#ifndef DSCC_CODEGEN_CUDA_SCAN_H
#define DSCC_CODEGEN_CUDA_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The end of a comment or literal starting at s[i], or i when none starts there. */
static inline size_t cg_scan_skip_lit(const char *s, size_t i) {
    if (s[i] == '/' && s[i + 1] == '/') {
        while (s[i] && s[i] != '\n') i++;
        return i;
    }
    if (s[i] == '/' && s[i + 1] == '*') {
        const char *e = strstr(s + i + 2, "*/");
        return e ? (size_t)(e - s) + 2 : strlen(s);
    }
    if (s[i] == '"' || s[i] == '\'') {
        char q = s[i++];
        while (s[i] && s[i] != q) i += s[i] == '\\' && s[i + 1] ? 2 : 1;
        return s[i] ? i + 1 : i;
    }
    return i;
}

/* Whether c may be part of an identifier. */
static inline bool cg_scan_ident(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

/* Whether the identifier w starts at s[i] (not inside a longer one). */
static inline bool cg_scan_word_at(const char *s, size_t i, const char *w) {
    size_t n = strlen(w);
    return strncmp(s + i, w, n) == 0 && (i == 0 || !cg_scan_ident(s[i - 1])) && !cg_scan_ident(s[i + n]);
}

/* Where the identifier w first stands in s[a, b) outside comments and literals, or b. */
static inline size_t cg_scan_find_word(const char *s, size_t a, size_t b, const char *w) {
    for (size_t i = a; i < b;) {
        size_t j = cg_scan_skip_lit(s, i);
        if (j != i) {
            i = j;
            continue;
        }
        if (cg_scan_word_at(s, i, w)) return i;
        i++;
    }
    return b;
}

/* The first '{' or ';' at or after s[i] outside comments and literals (a
 * declaration's body or end), or the end of s. */
static inline size_t cg_scan_decl_end(const char *s, size_t i) {
    while (s[i] && s[i] != '{' && s[i] != ';') {
        size_t j = cg_scan_skip_lit(s, i);
        i = j != i ? j : i + 1;
    }
    return i;
}

/* The index after the brace that closes the one at s[i] (comments and literals skipped). */
static inline size_t cg_scan_brace_end(const char *s, size_t i) {
    int depth = 0;
    while (s[i]) {
        size_t j = cg_scan_skip_lit(s, i);
        if (j != i) {
            i = j;
            continue;
        }
        if (s[i] == '{') depth++;
        if (s[i] == '}' && --depth == 0) return i + 1;
        i++;
    }
    return i;
}

#endif
