/* test_chat_template.c — runtime/chat_template.c against jinja2.
 *
 * tests/fixtures/tokenizer/chat.json holds what jinja2 renders (in the
 * environment transformers' apply_chat_template uses) for DeepSeek-V3's real
 * chat template, read here through the fixture's tokenizer_config.json, over
 * conversations with system, user, assistant (with and without </think>)
 * and tool messages, add_generation_prompt true and false; and for small
 * templates that exercise whitespace control, scoping, literals and
 * operators. Every rendering must be byte-identical. Then every construct
 * outside the subset must be refused with its line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/chat_template.h"
#include "runtime/tokenizer.h"

#define FIXTURE DSCC_SOURCE_DIR "/tests/fixtures/tokenizer"

/* The last error of d as "file:line:col: message", or "". */
static const char *last_error(const DiagEngine *d) {
    static char buf[1024];
    buf[0] = '\0';
    for (const Diag *g = diag_first(d); g; g = g->next)
        if (g->level == DIAG_ERROR)
            snprintf(buf, sizeof buf, "%s:%d:%d: %s", g->loc.file ? g->loc.file : "", g->loc.line, g->loc.col, g->msg);
    return buf;
}

static void test_renders_match_jinja2(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtTokenizer *tok = rt_tok_load(d, FIXTURE);
    assert_non_null(tok);
    const char *deepseek = rt_tok_chat_template(tok);
    assert_non_null(deepseek);
    size_t len;
    char *text = read_file_text(a, d, FIXTURE "/chat.json", &len);
    assert_non_null(text);
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *renders = cJSON_GetObjectItemCaseSensitive(root, "renders");
    assert_true(cJSON_GetArraySize(renders) >= 30);
    int i = 0, ds = 0;
    for (const cJSON *r = renders->child; r; r = r->next, i++) {
        const char *tpl = cJSON_GetObjectItemCaseSensitive(r, "template")->valuestring;
        bool is_ds = strcmp(tpl, "deepseek_v3") == 0;
        ds += is_ds;
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r, "messages");
        size_t n = (size_t)cJSON_GetArraySize(msgs), k = 0;
        RtChatMessage *m = calloc(n + 1, sizeof *m);
        for (const cJSON *e = msgs->child; e; e = e->next, k++) {
            m[k].role = cJSON_GetObjectItemCaseSensitive(e, "role")->valuestring;
            m[k].content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        }
        const char *bos = cJSON_GetObjectItemCaseSensitive(r, "bos_token")->valuestring;
        const char *eos = cJSON_GetObjectItemCaseSensitive(r, "eos_token")->valuestring;
        if (is_ds) {
            assert_string_equal(bos, rt_tok_bos_text(tok));
            assert_string_equal(eos, rt_tok_eos_text(tok));
        }
        bool agp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "add_generation_prompt"));
        const char *want = cJSON_GetObjectItemCaseSensitive(r, "expected")->valuestring;
        char *got = rt_chat_render(d, is_ds ? deepseek : tpl, m, n, bos, eos, agp);
        if (!got || strcmp(got, want) != 0)
            fprintf(stderr, "render %d (%s, %zu messages, add_generation_prompt %d):\n  got  %s\n  want %s\n", i,
                    is_ds ? "deepseek_v3" : tpl, n, agp, got ? got : "(error)", want);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
        free(m);
    }
    assert_true(ds >= 20);
    assert_int_equal(diag_error_count(d), 0);
    cJSON_Delete(root);
    rt_tok_free(tok);
    arena_free(a);
}

/* The DeepSeek template with a none content fails as jinja2's does
 * (str + None is a TypeError), and add_generation_prompt is a real flag. */
static void test_deepseek_edge_cases(void **state) {
    (void)state;
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtTokenizer *tok = rt_tok_load(d, FIXTURE);
    assert_non_null(tok);
    const char *tpl = rt_tok_chat_template(tok);
    RtChatMessage none_user[] = {{"user", NULL}};
    assert_null(rt_chat_render(d, tpl, none_user, 1, "<s>", "</s>", true));
    assert_non_null(strstr(last_error(d), "cannot add a string and a none"));
    assert_non_null(strstr(last_error(d), "chat_template:1:"));
    RtChatMessage none_asst[] = {{"assistant", NULL}};
    assert_null(rt_chat_render(d, tpl, none_asst, 1, "<s>", "</s>", true));
    assert_non_null(strstr(last_error(d), "'in' a none is not supported"));
    RtChatMessage conv[] = {{"system", "S"}, {"user", "U"}, {"assistant", "<think>t</think>A"}};
    char *yes = rt_chat_render(d, tpl, conv, 3, "<s>", "</s>", true);
    char *no = rt_chat_render(d, tpl, conv, 2, "<s>", "</s>", false);
    assert_string_equal(yes, "<s>S<｜User｜>U<｜Assistant｜>A<｜end▁of▁sentence｜><｜Assistant｜>");
    assert_string_equal(no, "<s>S<｜User｜>U");
    free(yes);
    free(no);
    rt_tok_free(tok);
    arena_free(a);
}

/* Constructs outside the subset: refused, naming line:col and the construct. */
static void test_unsupported_constructs(void **state) {
    (void)state;
    static const struct {
        const char *tpl, *where, *msg;
    } bad[] = {
        {"{{ x | upper }}", ":1:6:", "filters ('|') are not supported"},
        {"ok\n{% macro m() %}{% endmacro %}", ":2:4:", "the statement 'macro' is not supported"},
        {"{% raw %}x{% endraw %}", ":1:4:", "the statement 'raw' is not supported"},
        {"a\n  {{ 1.5 }}", ":2:6:", "only decimal integer literals"},
        {"x{% if true %}", ":1:2:", "this block has no {% endif %}"},
        {"{% for m in messages %}{% if 1 %}{% endfor %}", ":1:37:", "the statement 'endfor' is not inside its block"},
        {"{% for a, b in messages %}{% endfor %}", ":1:9:", "unpacking several loop variables"},
        {"{% for m in messages %}{% else %}{% endfor %}", ":1:27:", "{% for %} ... {% else %} is not supported"},
        {"{% for m in messages if m %}{% endfor %}", ":1:22:", "conditional expressions"},
        {"{{ messages[0:1] }}", ":1:14:", "slices are not supported"},
        {"{{ 'a' if true else 'b' }}", ":1:8:", "conditional expressions"},
        {"{{ [1, 2] }}", ":1:4:", "list literals are not supported"},
        {"{{ {'a': 1} }}", ":1:4:", "dict literals are not supported"},
        {"{{ (1, 2) }}", ":1:6:", "tuples are not supported"},
        {"\n\n   {{ messages }}", ":3:7:", "printing a list is not supported"},
        {"{{ 'x'.upper() }}", ":1:13:", "calling 'upper' is not supported"},
        {"{{ 'x'.upper }}", ":1:8:", "the attribute 'upper' of a string is not supported"},
        {"{{ nothing + 'x' }}", ":1:12:", "'nothing' is undefined"},
        {"{{ messages[0]['tool_calls'] + 'x' }}", ":1:30:", "the dict has no key 'tool_calls'"},
        {"{{ messages[0].keys }}", ":1:16:", "the dict method 'keys' is not supported"},
        {"{{ nothing.x }}", ":1:12:", "'nothing' is undefined"},
        {"{% set x = 1 %}{% set x.y = 1 %}", ":1:16:", "cannot assign the attribute 'y' of 'x': not a namespace"},
        {"{% set x %}a{% endset %}", ":1:10:", "block assignments"},
        {"{% set a, b = 1, 2 %}", ":1:9:", "assigning several variables"},
        {"{{ 'a' < 'b' }}", ":1:8:", "the comparison '<' is not supported"},
        {"{{ 1 == 1 == 1 }}", ":1:11:", "chained comparisons are not supported"},
        {"{{ 'a' * 3 }}", ":1:8:", "the operator '*' is not supported"},
        {"{{ +1 }}", ":1:4:", "unary '+' is not supported"},
        {"{{ 'abc'.split('') }}", ":1:15:", "split(): empty separator"},
        {"{{ 'abc'.split() }}", ":1:15:", "only split(separator) is supported"},
        {"{{ 'unterminated }}", ":1:4:", "string literal not closed"},
        {"{{ '\\x4' }}", ":1:4:", "truncated \\x escape"},
        {"{{ '\\ud800' }}", ":1:4:", "is not a character"},
        {"{{ '\\N{DASH}' }}", ":1:4:", "N{name}"},
        {"{{ '\\0' }}", ":1:4:", "NUL character"},
        {"ab {# open comment", ":1:4:", "comment not closed"},
        {"{{ x ", ":1:1:", "{{ tag not closed"},
        {"{% if true %}{% endif", ":1:14:", "{% tag not closed"},
        {"{{ ) }}", ":1:4:", "unexpected ')'"},
        {"{{ x $ y }}", ":1:6:", "unexpected character"},
        {"{% endif %}", ":1:4:", "the statement 'endif' is not inside its block"},
        {"{% %}", ":1:4:", "expected a statement name, got the end of the tag"},
        {"{{ }}", ":1:4:", "expected an expression, got the end of the tag"},
        {"{{ x y }}", ":1:6:", "expected the end of the tag, got 'y'"},
        {"{{ raise_exception('bad role') }}", ":1:19:", "the template raised an exception: bad role"},
        {"{{ namespace }}", ":1:4:", "'namespace' is supported only as namespace(...)"},
        {"{{ namespace(1) }}", ":1:13:", "keyword arguments only"},
        {"{% for m in 'abc' %}{% endfor %}", ":1:13:", "looping over a string is not supported"},
        {"{% for m in messages %}{{ loop.cycle }}{% endfor %}", ":1:32:", "loop.cycle is not supported"},
        {"{{ 'a' + 1 }}", ":1:8:", "cannot add a string and a int"},
        {"{{ 1 in 'abc' }}", ":1:6:", "'in <string>' requires a string"},
        {"{{ x is string }}", ":1:9:", "the test 'string' is not supported"},
        {"{{ x is none is defined }}", ":1:14:", "a second test after 'is none'"},
        {"{{ x is defined in 'S' }}", ":1:17:", "'in' after 'is defined' (Jinja reads it as the test's argument)"},
        {"{{ x is none 'a' }}", ":1:14:", "a string after 'is none'"},
        {"{{ messages[0].nothing ~ 'x' }}{{ 1 + nothing }}", ":1:37:", "'nothing' is undefined"},
        {"{{ 99999999999999999999 }}", ":1:4:", "integer literal too large"},
        {"{{ 'a' }}\xff", ":1:10:", "not valid UTF-8"},
        {"{{ messages | length }}", ":1:13:", "filters"},
    };
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, NULL);
    RtChatMessage m[] = {{"user", "hi"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int before = diag_error_count(d);
        char *out = rt_chat_render(d, bad[i].tpl, m, 1, "<s>", "</s>", false);
        const char *err = last_error(d);
        if (out || !strstr(err, bad[i].where) || !strstr(err, bad[i].msg))
            fprintf(stderr, "template %zu '%s': %s; error: %s\n", i, bad[i].tpl, out ? "rendered" : "refused", err);
        assert_null(out);
        assert_int_equal(diag_error_count(d), before + 1);
        assert_non_null(strstr(err, "chat_template:"));
        assert_non_null(strstr(err, bad[i].where));
        assert_non_null(strstr(err, bad[i].msg));
    }
    /* nesting past the limit is an error, not a stack overflow */
    StrBuf sb;
    sb_init(&sb);
    sb_puts(&sb, "{{ ");
    for (int i = 0; i < 5000; i++) sb_putc(&sb, '(');
    sb_putc(&sb, '1');
    for (int i = 0; i < 5000; i++) sb_putc(&sb, ')');
    sb_puts(&sb, " }}");
    assert_null(rt_chat_render(d, sb.data, m, 1, "", "", false));
    assert_non_null(strstr(last_error(d), "nested more than"));
    sb.len = 0;
    sb_puts(&sb, "{{ 'a'");
    for (int i = 0; i < 20000; i++) sb_puts(&sb, " + 'a'");
    sb_puts(&sb, " }}");
    assert_null(rt_chat_render(d, sb.data, m, 1, "", "", false));
    assert_non_null(strstr(last_error(d), "expression nested more than"));
    sb.len = 0;
    for (int i = 0; i < 300; i++) sb_puts(&sb, "{% if true %}");
    assert_null(rt_chat_render(d, sb.data, m, 1, "", "", false));
    assert_non_null(strstr(last_error(d), "nested more than"));
    sb_free(&sb);
    /* doubling a string past the size limit stops with an error */
    RtChatMessage many[40];
    for (int i = 0; i < 40; i++) many[i] = (RtChatMessage){"user", "0123456789"};
    assert_null(rt_chat_render(d, "{% set ns = namespace(s='x') %}{% for m in messages %}{% set ns.s = ns.s + ns.s %}"
                                  "{% endfor %}{{ ns.s }}",
                               many, 40, "", "", false));
    assert_non_null(strstr(last_error(d), "longer than"));
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renders_match_jinja2),
        cmocka_unit_test(test_deepseek_edge_cases),
        cmocka_unit_test(test_unsupported_constructs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
