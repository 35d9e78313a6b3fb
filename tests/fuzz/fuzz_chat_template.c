/* fuzz_chat_template.c — libFuzzer harness for runtime/chat_template.c: the
 * input is a chat template, rendered for a fixed conversation (system,
 * user, assistant with </think>, a none content) with and without the
 * generation prompt. Whatever it holds must render or give an error at a
 * chat_template line:col: never a crash, a hang, or a NULL without saying why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/chat_template.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *tpl = malloc(size + 1);
    memcpy(tpl, data, size);
    tpl[size] = '\0'; /* a NUL inside ends the template, as in a C string */
    static const RtChatMessage msgs[] = {
        {"system", "Be brief."}, {"user", "Hi {{ x }} {% if %}"}, {"assistant", "<think>t</think>Hello"}, {"tool", NULL}};
    for (int agp = 0; agp < 2; agp++) {
        Arena *a = arena_new();
        DiagEngine *d = diag_new(a, fz_diag_out());
        char *out = rt_chat_render(d, tpl, msgs, 4, "<s>", "</s>", agp);
        if (!out && diag_error_count(d) == 0) abort(); /* no failure without an error */
        if (out && diag_error_count(d) != 0) abort();
        for (const Diag *g = diag_first(d); g; g = g->next)
            if (!g->loc.file || strcmp(g->loc.file, "chat_template") != 0 || g->loc.line < 1 || g->loc.col < 1) abort();
        free(out);
        arena_free(a);
    }
    free(tpl);
    return 0;
}
