/* fuzz_tokenizer.c — libFuzzer harness for runtime/tokenizer.c: the input is
 * text for the small DeepSeek-style tokenizer of tests/fixtures/tokenizer.
 * Valid UTF-8 must encode, every id must be in the tokenizer, and decoding
 * must give back exactly the input bytes; invalid UTF-8 must be refused
 * with an error and no ids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

#ifndef DSCC_SOURCE_DIR
#define DSCC_SOURCE_DIR "."
#endif

static RtTokenizer *tok;
static Arena *tok_arena;

static void unload(void) {
    rt_tok_free(tok);
    arena_free(tok_arena);
}

/* Whether s[0..n) is UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF): written apart from the tokenizer's own check. */
static bool valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!len || i + len > n) return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return false;
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) || (c == 0xf0 && s[i + 1] < 0x90) ||
            (c == 0xf4 && s[i + 1] > 0x8f))
            return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) {
        tok_arena = arena_new();
        tok = rt_tok_load(diag_new(tok_arena, stderr), DSCC_SOURCE_DIR "/tests/fixtures/tokenizer");
        if (!tok) abort();
        atexit(unload);
    }
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, fz_diag_out());
    int32_t *ids;
    size_t n;
    bool ok = rt_tok_encode(tok, d, (const char *)data, size, &ids, &n);
    if (ok != valid_utf8(data, size) || ok != (diag_error_count(d) == 0)) abort();
    if (ok) {
        StrBuf sb;
        sb_init(&sb);
        if (!rt_tok_decode(tok, d, ids, n, &sb) || sb.len != size || (size && memcmp(sb.data, data, size) != 0)) abort();
        if (n > size) abort(); /* at least one byte per id */
        sb_free(&sb);
    } else if (ids || n) {
        abort();
    }
    free(ids);
    arena_free(a);
    return 0;
}
