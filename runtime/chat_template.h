/* chat_template.h — renders a checkpoint's chat template (the Jinja text of
 * tokenizer_config.json's `chat_template`) for a conversation, exactly as
 * transformers' apply_chat_template renders it with jinja2 (trim_blocks and
 * lstrip_blocks on, newlines normalized, one trailing newline dropped).
 *
 * The subset is what DeepSeek-V3's template needs and a little more: text,
 * {{ expr }}, {# comments #}, {% if/elif/else/endif %}, {% for x in expr %}
 * (with loop.index/index0/first/last/length), {% set x = e %} and
 * {% set ns.attr = e %}, whitespace control ({%- -%} {%+ +%}), strings with
 * Python escapes, integers, none/true/false, + - ~, == != in, not in,
 * and/or/not, `is [not] defined|none`, subscripts (negative list indices),
 * attributes, namespace(k=v, ...) and str.split(sep), with Jinja's scoping
 * (a for loop's body is a fresh scope each iteration). Anything else is
 * refused with an error naming the template's line:col and the construct,
 * never rendered differently from jinja2. */
#ifndef DSCC_RT_CHAT_TEMPLATE_H
#define DSCC_RT_CHAT_TEMPLATE_H

#include "support/support.h"

typedef struct {
    const char *role;    /* "system", "user", "assistant", ... */
    const char *content; /* NULL renders as Jinja's none */
} RtChatMessage;

/* The template rendered with `messages` (the n messages as a list of
 * {role, content} dicts), bos_token, eos_token and add_generation_prompt.
 * A malloc'd NUL-terminated string (free it), or NULL after reporting the
 * error through d at "chat_template:LINE:COL". */
char *rt_chat_render(DiagEngine *d, const char *tpl, const RtChatMessage *messages, size_t n, const char *bos_token,
                     const char *eos_token, bool add_generation_prompt);

#endif
