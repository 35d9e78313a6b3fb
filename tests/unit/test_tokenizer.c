/* test_tokenizer.c — runtime/tokenizer.c against Hugging Face `tokenizers`.
 *
 * tests/fixtures/tokenizer/ holds a small byte-level BPE trained with
 * DeepSeek-V3's configuration and the ids `tokenizers` gives for ~160
 * strings (tools/make_tokenizer_fixture.py): every one must encode to the
 * same ids and decode back to the same bytes. Then the errors: invalid UTF-8
 * of each kind, unknown ids, and tokenizer.json variants this tokenizer does
 * not implement (written into a private temporary folder), each refused
 * with a message naming the field. Last, 1 MB of mixed text is timed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/tokenizer.h"

#define FIXTURE DSCC_SOURCE_DIR "/tests/fixtures/tokenizer"

typedef struct {
    Arena *a;
    DiagEngine *d;
    RtTokenizer *t;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, NULL);
    f->t = rt_tok_load(f->d, FIXTURE);
    if (!f->t) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    rt_tok_free(f->t);
    arena_free(f->a);
    free(f);
    return 0;
}

static cJSON *load_json(Arena *a, const char *path) {
    size_t len;
    char *text = read_file_text(a, diag_new(a, stderr), path, &len);
    assert_non_null(text);
    cJSON *j = cJSON_ParseWithLength(text, len);
    assert_non_null(j);
    return j;
}

/* The last error reported to d ("" when none), its file name first. */
static const char *last_error(const DiagEngine *d) {
    static char buf[1024];
    buf[0] = '\0';
    for (const Diag *g = diag_first(d); g; g = g->next)
        if (g->level == DIAG_ERROR) snprintf(buf, sizeof buf, "%s: %s", g->loc.file ? g->loc.file : "", g->msg);
    return buf;
}

/* Every fixture case: ids equal to tokenizers', decode restores the bytes. */
static void test_cases_match_tokenizers(void **state) {
    Fx *f = *state;
    cJSON *root = load_json(f->a, FIXTURE "/cases.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    assert_true(cJSON_GetArraySize(cases) >= 100);
    int checked = 0, nonempty_ids = 0;
    for (const cJSON *c = cases->child; c; c = c->next, checked++) {
        const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "ids");
        int32_t *ids;
        size_t n;
        assert_true(rt_tok_encode(f->t, f->d, text, strlen(text), &ids, &n));
        bool same = n == (size_t)cJSON_GetArraySize(want);
        size_t i = 0;
        for (const cJSON *w = want->child; same && w; w = w->next, i++) same = ids[i] == w->valueint;
        if (!same) {
            fprintf(stderr, "case %d (%.60s): %zu ids, tokenizers has %d; first ids", checked, text, n,
                    cJSON_GetArraySize(want));
            for (size_t k = 0; k < n && k < 12; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n");
        }
        assert_true(same);
        nonempty_ids += n > 0;
        StrBuf sb;
        sb_init(&sb);
        assert_true(rt_tok_decode(f->t, f->d, ids, n, &sb));
        assert_int_equal(sb.len, strlen(text));
        assert_memory_equal(sb.len ? sb.data : "", text, sb.len);
        sb_free(&sb);
        free(ids);
    }
    assert_true(nonempty_ids >= checked - 1); /* only "" has no ids */
    assert_int_equal(diag_error_count(f->d), 0);
    cJSON_Delete(root);
}

/* Special tokens cut out of the text, bos/eos/template from the config. */
static void test_special_tokens_and_config(void **state) {
    Fx *f = *state;
    const char *bos = "<｜begin▁of▁sentence｜>", *eos = "<｜end▁of▁sentence｜>";
    assert_int_equal(rt_tok_bos(f->t), 0);
    assert_int_equal(rt_tok_eos(f->t), 1);
    assert_string_equal(rt_tok_bos_text(f->t), bos);
    assert_string_equal(rt_tok_eos_text(f->t), eos);
    assert_non_null(rt_tok_chat_template(f->t));
    assert_non_null(strstr(rt_tok_chat_template(f->t), "namespace(is_first=false"));
    int32_t *ids;
    size_t n, len;
    const char *text = "a<｜User｜>b<think>";
    assert_true(rt_tok_encode(f->t, f->d, text, strlen(text), &ids, &n));
    assert_int_equal(n, 4);
    const char *p = rt_tok_piece(f->t, ids[1], &len);
    assert_non_null(p);
    assert_int_equal(len, strlen("<｜User｜>"));
    assert_memory_equal(p, "<｜User｜>", len);
    p = rt_tok_piece(f->t, ids[3], &len);
    assert_int_equal(len, 7);
    assert_memory_equal(p, "<think>", 7);
    free(ids);
    assert_true(rt_tok_max_id(f->t) > 1900);
}

/* Each kind of invalid UTF-8 is an error naming the byte offset. */
static void test_invalid_utf8(void **state) {
    Fx *f = *state;
    static const struct {
        const char *bytes, *offset;
    } bad[] = {
        {"ab\x80", "byte 2"},             /* lone continuation byte */
        {"x\xc0\xaf", "byte 1"},          /* overlong '/' */
        {"\xe0\x80\xaf", "byte 0"},       /* overlong, three bytes */
        {"ok \xed\xa0\x80", "byte 3"},    /* UTF-16 surrogate D800 */
        {"\xe4\xb8", "byte 0"},           /* truncated 中 */
        {"abc\xf0\x9f\x98", "byte 3"},    /* truncated emoji */
        {"\xf4\x90\x80\x80", "byte 0"},   /* above U+10FFFF */
        {"\xf8\x88\x80\x80\x80", "byte 0"}, /* five-byte form */
        {"\xff", "byte 0"},
        {"\xc3(", "byte 0"},              /* lead byte, then no continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 7;
        int before = diag_error_count(f->d);
        assert_false(rt_tok_encode(f->t, f->d, bad[i].bytes, strlen(bad[i].bytes), &ids, &n));
        assert_null(ids);
        assert_int_equal(n, 0);
        assert_int_equal(diag_error_count(f->d), before + 1);
        assert_non_null(strstr(last_error(f->d), "not valid UTF-8"));
        assert_non_null(strstr(last_error(f->d), bad[i].offset));
    }
    /* a NUL byte is text like any other */
    int32_t *ids;
    size_t n;
    assert_true(rt_tok_encode(f->t, f->d, "a\0b", 3, &ids, &n));
    StrBuf sb;
    sb_init(&sb);
    assert_true(rt_tok_decode(f->t, f->d, ids, n, &sb));
    assert_int_equal(sb.len, 3);
    assert_memory_equal(sb.data, "a\0b", 3);
    sb_free(&sb);
    free(ids);
}

static void test_unknown_id(void **state) {
    Fx *f = *state;
    int32_t max = rt_tok_max_id(f->t);
    int32_t bad[][3] = {{5, max + 1, 6}, {-1, 5, 6}, {5, 6, INT32_MAX}};
    const char *pos[] = {"position 1", "position 0", "position 2"};
    for (int i = 0; i < 3; i++) {
        StrBuf sb;
        sb_init(&sb);
        assert_false(rt_tok_decode(f->t, f->d, bad[i], 3, &sb));
        assert_non_null(strstr(last_error(f->d), "is not in the tokenizer"));
        assert_non_null(strstr(last_error(f->d), pos[i]));
        sb_free(&sb);
    }
    size_t len = 99;
    assert_null(rt_tok_piece(f->t, max + 1, &len));
    assert_null(rt_tok_piece(f->t, -3, &len));
    assert_non_null(rt_tok_piece(f->t, max, &len));
}

/* ---- configurations this tokenizer must refuse ------------------------------ */

typedef struct {
    const char *what;   /* the change, for the failure message */
    const char *path;   /* dotted path of the member to replace ("" = whole file) */
    const char *json;   /* its new value (NULL = delete it) */
    const char *expect; /* a substring the error must contain */
} Variant;

/* The object holding the last member of dotted `path` (numbers index arrays). */
static cJSON *parent_of(cJSON *root, const char *path, const char **last) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *o = root;
    char *s = buf, *dot;
    while ((dot = strchr(s, '.'))) {
        *dot = '\0';
        o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(s)) : cJSON_GetObjectItemCaseSensitive(o, s);
        assert_non_null(o);
        s = dot + 1;
    }
    *last = path + (s - buf);
    return o;
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_bad_configurations(void **state) {
    Fx *f = *state;
    static const Variant vs[] = {
        {"NFC normalizer", "normalizer", "{\"type\":\"NFC\"}", "normalizer"},
        {"non-empty normalizer Sequence", "normalizer", "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"}]}",
         "normalizer"},
        {"WordPiece decoder", "decoder", "{\"type\":\"WordPiece\"}", "decoder"},
        {"Unigram model", "model.type", "\"Unigram\"", "model.type"},
        {"byte_fallback", "model.byte_fallback", "true", "byte_fallback"},
        {"dropout", "model.dropout", "0.1", "dropout"},
        {"subword prefix", "model.continuing_subword_prefix", "\"##\"", "continuing_subword_prefix"},
        {"ignore_merges", "model.ignore_merges", "true", "model.ignore_merges"},
        {"TemplateProcessing", "post_processor", "{\"type\":\"TemplateProcessing\",\"single\":[]}",
         "post_processor: only ByteLevel (or none) is supported; TemplateProcessing would add tokens"},
        {"no pre_tokenizer", "pre_tokenizer", NULL, "pre_tokenizer"},
        {"Whitespace pre_tokenizer", "pre_tokenizer", "{\"type\":\"Whitespace\"}", "pre_tokenizer"},
        {"Split Removed", "pre_tokenizer.pretokenizers.0.behavior", "\"Removed\"", "pre_tokenizer 0"},
        {"Split inverted", "pre_tokenizer.pretokenizers.1.invert", "true", "pre_tokenizer 1"},
        {"Split of a String", "pre_tokenizer.pretokenizers.2.pattern", "{\"String\":\" \"}", "pre_tokenizer 2"},
        {"bad regex", "pre_tokenizer.pretokenizers.1.pattern", "{\"Regex\":\"[a-\"}", "regex does not compile"},
        {"ByteLevel with its regex", "pre_tokenizer.pretokenizers.3.use_regex", "true", "use_regex"},
        {"ByteLevel prefix space", "pre_tokenizer.pretokenizers.3.add_prefix_space", "true", "add_prefix_space"},
        {"no ByteLevel", "pre_tokenizer.pretokenizers.3", NULL, "must end in ByteLevel"},
        {"vocab not an object", "model.vocab", "[1,2]", "model.vocab"},
        {"negative id", "model.vocab.a", "-4", "model.vocab: token a"},
        {"fractional id", "model.vocab.a", "4.5", "model.vocab: token a"},
        {"byte without token", "model.vocab.Ā", NULL, "byte 0x00 has no token"},
        {"merges not an array", "model.merges", "{}", "model.merges"},
        {"merge of unknown tokens", "model.merges.0", "[\"qqq\",\"zzz\"]", "model.merges[0]"},
        {"merge of three strings", "model.merges.0", "\"a b c\"", "model.merges[0]"},
        {"added token lstrip", "added_tokens.0.lstrip", "true", "lstrip"},
        {"added token without content", "added_tokens.1.content", "\"\"", "added_tokens[1]"},
        {"added token far id", "added_tokens.2.id", "99999999", "added_tokens[2]"},
        {"added_tokens not an array", "added_tokens", "7", "added_tokens"},
    };
    char dir[] = "/tmp/dscc_tok_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        cJSON *root = load_json(f->a, FIXTURE "/tokenizer.json");
        const char *last;
        cJSON *parent = parent_of(root, vs[i].path, &last);
        if (cJSON_IsArray(parent) && vs[i].json)
            cJSON_ReplaceItemInArray(parent, atoi(last), cJSON_Parse(vs[i].json));
        else if (cJSON_IsArray(parent))
            cJSON_DeleteItemFromArray(parent, atoi(last));
        else {
            cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
            if (vs[i].json) cJSON_AddItemToObject(parent, last, cJSON_Parse(vs[i].json));
        }
        char *text = cJSON_PrintUnformatted(root);
        write_text(path, text);
        free(text);
        cJSON_Delete(root);
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, NULL);
        RtTokenizer *t = rt_tok_load(d, dir);
        if (t || !strstr(last_error(d), vs[i].expect) || !strstr(last_error(d), "tokenizer.json"))
            fprintf(stderr, "variant '%s': %s; error: %s\n", vs[i].what, t ? "loaded" : "refused", last_error(d));
        assert_null(t);
        assert_non_null(strstr(last_error(d), vs[i].expect));
        assert_non_null(strstr(last_error(d), "tokenizer.json"));
        arena_free(a);
    }
    /* not JSON, then no file at all */
    write_text(path, "{\"model\": ");
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    assert_null(rt_tok_load(d, dir));
    assert_non_null(strstr(last_error(d), "not valid JSON"));
    unlink(path);
    assert_null(rt_tok_load(d, dir));
    assert_non_null(strstr(last_error(d), "cannot read"));
    arena_free(a);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- speed ---------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 MB of mixed text (every fixture case, shuffled pieces of scripts, long
 * runs of spaces and digits) tokenizes in well under a second; the bound
 * asserted is loose so a loaded CI machine does not fail it. */
static void test_one_megabyte(void **state) {
    Fx *f = *state;
    cJSON *root = load_json(f->a, FIXTURE "/cases.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    StrBuf sb;
    sb_init(&sb);
    unsigned seed = 12345;
    int nc = cJSON_GetArraySize(cases);
    while (sb.len < (1u << 20)) {
        seed = seed * 1103515245u + 12345u;
        const char *t = cJSON_GetArrayItem(cases, (int)(seed >> 8) % nc)->child->valuestring;
        sb_puts(&sb, t);
        if ((seed >> 4) % 29 == 0)
            for (int k = 0; k < 2000; k++) sb_putc(&sb, ' ');
        if ((seed >> 4) % 31 == 0)
            for (int k = 0; k < 1000; k++) sb_putc(&sb, (char)('0' + k % 10));
    }
    int32_t *ids;
    size_t n;
    double t0 = now_s();
    assert_true(rt_tok_encode(f->t, f->d, sb.data, sb.len, &ids, &n));
    double t1 = now_s();
    StrBuf back;
    sb_init(&back);
    assert_true(rt_tok_decode(f->t, f->d, ids, n, &back));
    double t2 = now_s();
    printf("tokenized %zu bytes into %zu ids in %.3f s (%.1f MB/s); decoded in %.3f s\n", sb.len, n, t1 - t0,
           sb.len / 1e6 / (t1 - t0), t2 - t1);
    assert_int_equal(back.len, sb.len);
    assert_memory_equal(back.data, sb.data, sb.len);
    assert_true(n > sb.len / 16 && n < sb.len);
    assert_true(t1 - t0 < 5.0);
    free(ids);
    sb_free(&back);
    sb_free(&sb);
    cJSON_Delete(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_match_tokenizers), cmocka_unit_test(test_special_tokens_and_config),
        cmocka_unit_test(test_invalid_utf8),           cmocka_unit_test(test_unknown_id),
        cmocka_unit_test(test_bad_configurations),     cmocka_unit_test(test_one_megabyte),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
