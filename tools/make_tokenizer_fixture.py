#!/usr/bin/env python3
"""make_tokenizer_fixture.py — a small tokenizer of DeepSeek-V3's kind, with
reference ids from Hugging Face `tokenizers` and reference chat renderings
from `jinja2`, for tests/unit/test_tokenizer.c and test_chat_template.c.

Trains a byte-level BPE (vocabulary ~2,000) with exactly DeepSeek-V3's
configuration: no normalizer (an empty Sequence), the pre-tokenizer Sequence
of its three Split regexes (Isolated) ending in ByteLevel without its own
regex, ByteLevel post-processor and decoder, special tokens first (ids 0-2,
normalized false, as DeepSeek's) and the chat tokens added after the
vocabulary with normalized true (as DeepSeek's `<｜User｜>`, `<think>` ...).
The training text is written below (several scripts, code, numbers), so the
fixture depends on nothing but the installed `tokenizers`.

Writes under OUT (default tests/fixtures/tokenizer):
  tokenizer.json         the trained tokenizer
  tokenizer_config.json  bos/eos and DeepSeek-V3's chat_template (the
                         template text of DeepSeek-V3's tokenizer_config.json)
  cases.json             {"cases": [{"text", "ids"}...]}: tokenizers' ids
  chat.json              {"renders": [{"template", "messages", "bos_token",
                         "eos_token", "add_generation_prompt", "expected"}]}:
                         what jinja2 renders, in the environment transformers'
                         apply_chat_template uses (trim_blocks, lstrip_blocks)

Needs `pip install tokenizers jinja2`. Deterministic: the same versions give
the same files (tokenizers 0.23, jinja2 3.1 made the committed ones).
"""
import argparse
import json
import os
import random

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# DeepSeek-V3's pre-tokenizer regexes, as its tokenizer.json has them.
SPLITS = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]
BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
# added after the vocabulary, normalized true (DeepSeek-V3's ids 128798 ...)
CHAT_TOKENS = ["<think>", "</think>", "<｜User｜>", "<｜Assistant｜>", "<|EOT|>", "<｜tool▁calls▁begin｜>",
               "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁outputs▁begin｜>",
               "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>", "<｜tool▁sep｜>"]

# DeepSeek-V3's chat_template, character for character from its tokenizer_config.json.
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}"
    "{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    "{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{%- else %}{{'<｜Assistant｜>' + message['content'] + "
    "'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + "
    "'\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- endif %}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + "
    "'<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + "
    "'\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}"
    "{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}{{'<｜tool▁output▁begin｜>' + message['content'] + "
    "'<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}"
    "{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}"
)

TRAIN_TEXT = """
The quick brown fox jumps over the lazy dog. A compiler turns a model graph into kernels;
the runtime runs them on one GPU or many. Tokens are pieces of words, numbers and spaces.
def forward(self, x):
    h = self.norm(x)  # RMSNorm
    return self.proj(h) + x
for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }
if __name__ == "__main__":
    print("Hello, world!", 3.14159, 1e-9, 0x1F, [1, 2, 3], {'k': "v"})
2024-12-26 10:30:00 version 3.0.1 costs $5.99 or 42% of 1,234,567.
中文字符测试，包括标点。深度求索发布了新的语言模型，它可以回答问题、编写代码和翻译文本。
今天天气很好，我们去公园散步吧。机器学习和人工智能正在改变世界。
ひらがなとカタカナと漢字を使います。日本語の文章は読みやすいです。東京は大きな都市です。
한국어 텍스트입니다. 안녕하세요, 만나서 반갑습니다. 서울은 한국의 수도입니다.
Привет, мир! Это пример текста на русском языке. Москва — столица России.
مرحبا بالعالم. هذا نص باللغة العربية. القاهرة مدينة كبيرة.
Γειά σου Κόσμε. Ελληνικά γράμματα: α β γ δ ε.
Ünïcödé àccénts: café, naïve, résumé, São Paulo, Zürich, Ærøskøbing, Łódź.
नमस्ते दुनिया। यह हिंदी में एक वाक्य है।
สวัสดีชาวโลก ภาษาไทย
emoji: 👍🏽 👨‍👩‍👧‍👦 🇺🇸 😀 🎉 ❤️ ✨
math: Ω≈ç√∫˜µ≤≥÷ ∑ ∏ ∞ ∂ ∇ ⊗ ℝ
"""

WORDS = ("model token layer expert attention kernel tensor weight cache batch sequence vector matrix "
         "gradient compile runtime device memory stream graph node value shape route scale block "
         "深度 学习 模型 数据 计算 语言 文本 代码 東京 日本 言葉 世界 한국 서울 사람 시간 "
         "мир язык текст модель данные время человек слово "
         "عالم لغة نص نموذج بيانات وقت").split()


def training_corpus():
    rng = random.Random(7)
    lines = [TRAIN_TEXT] * 3
    for _ in range(1500):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        sep = rng.choice([" ", " ", " ", ", ", "  ", "\t"])
        num = str(rng.randint(0, 10 ** rng.randint(1, 9)))
        lines.append(sep.join(words) + rng.choice([". ", "! ", "? ", "\n", "\r\n"]) + num)
    return lines


def build_tokenizer(vocab_size):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), "isolated", invert=False) for r in SPLITS]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    from tokenizers import AddedToken
    tok.add_tokens([AddedToken(t, normalized=True, special=False) for t in CHAT_TOKENS])
    return tok


def test_strings():
    cases = [
        "", "Hello world", "x", "  leading and trailing  ",
        "def f(x):\n    return x**2  # comment\r\n\tpass", "for (int i = 0; i < n; i++) { s += a[i]; }",
        "1234567890 3.14159 1e-9 0x1F 1,000,000 007", "٣٤٥ ১২৩ ①②③ Ⅻ ²³",
        "中文字符测试，包括标点。", "ひらがなカタカナ漢字", "半角ｶﾀｶﾅ and 全角ＡＢＣ",
        "한국어 텍스트입니다", "Привет, мир!", "مرحبا بالعالم", "שלום עולם",
        "👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️", "e\u0301 a\u0308 n\u0303 \u0301alone", "   multiple   spaces\n\n\n  ",
        "\r\n\r\n", "line\r\nbreaks\rand\nmore\n", "a\u0085b\u00a0c\u2003d\u3000e\u2028f\u200bg",
        "\t\t\tindent", " " * 300 + "a", "x" * 500,
        BOS + "You are" + "<｜User｜>Hi<｜Assistant｜><think>x</think>" + EOS,
        "<｜User｜><｜User｜>" + PAD, "<|not special|> <｜User <think", "a<think>b</think>c<|EOT|>d",
        "Ω≈ç√∫˜µ≤≥÷", "ℌ𝔢𝔩𝔩𝔬 𝒲ℴ𝓇𝓁𝒹", "¡™£¢∞§¶•ªº–≠",
        "The quick brown fox's \"quote\" (paren) [bracket] {brace}", "a-b_c.d/e\\f", "won't can't I'm",
        "\x01\x1f\x7f control", "tab\tsep\tvalues", "url: https://example.com/a?b=c&d=e#f",
    ]
    rng = random.Random(1)
    alpha = [chr(c) for c in list(range(32, 127)) + list(range(0x4e00, 0x4e40)) + list(range(0x3040, 0x3060))
             + list(range(0xac00, 0xac20)) + list(range(0x400, 0x430)) + list(range(0x600, 0x620))
             + [0x85, 0xa0, 0x2028, 0x200b, 0x301, 0x1f600, 0x1f3fd, 0x200d, 0xa, 0xd, 0x9, 0x3000]]
    alpha += [BOS, EOS, "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "123", "  ", "\r\n"]
    for _ in range(120):
        cases.append("".join(rng.choice(alpha) for _ in range(rng.randint(1, 60))))
    return cases


def chat_renders():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    convs = [
        [{"role": "user", "content": "Hello!"}],
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "1+1?"}],
        [{"role": "system", "content": "First."}, {"role": "system", "content": "Second."},
         {"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
         {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"},
         {"role": "assistant", "content": "Red."}, {"role": "user", "content": "中文呢？"}],
        [{"role": "user", "content": "Think."},
         {"role": "assistant", "content": "<think>step 1\nstep 2</think>\n\nThe answer is 4."},
         {"role": "user", "content": "And twice that?"}],
        [{"role": "user", "content": "a</think>b"},
         {"role": "assistant", "content": "x</think>y</think>z"}],
        [{"role": "user", "content": "quotes ' \" and \\ backslash\n\ttab {{ not a tag }} {% neither %}"}],
        [{"role": "assistant", "content": ""}, {"role": "user", "content": ""}],
        [{"role": "user", "content": "What is 6*7?"}, {"role": "tool", "content": "42"},
         {"role": "tool", "content": "forty-two"}, {"role": "assistant", "content": "It is 42."},
         {"role": "user", "content": "Thanks"}, {"role": "tool", "content": "done"}],
        [{"role": "user", "content": "\r\nwindows\r\nlines\r"}, {"role": "narrator", "content": "ignored"}],
        [],
    ]
    out = []
    for conv in convs:
        for agp in (True, False):
            exp = env.from_string(CHAT_TEMPLATE).render(messages=conv, bos_token=BOS, eos_token=EOS,
                                                         add_generation_prompt=agp)
            out.append({"template": "deepseek_v3", "messages": conv, "bos_token": BOS, "eos_token": EOS,
                        "add_generation_prompt": agp, "expected": exp})
    # small templates for whitespace control, trim_blocks/lstrip_blocks, scoping, literals and operators
    others = [
        "{% for m in messages %}\n  {{ m.role }}: {{ m['content'] }}\n{% endfor %}\n",
        "A  {%- if true -%}  B  {%- endif -%}  C\n  {%+ if true %}D{% endif %}\r\nE{# comment #}\nF\n\n",
        "{% set x = 'outer' %}{% for m in messages %}{% set x = m.role %}[{{ x }}]{% endfor %}{{ x }}",
        "{{ 'a\\tb\\x41\\u00e9\\U0001F600\\101\\q' }}|{{ \"it's\" }}|{{ none }}|{{ true }}|{{ false }}|{{ 42 }}|{{ -7 }}",
        "{{ undefined_thing }}|{{ bos_token is defined }}|"
        "{{ nothing is defined }}|{{ nothing is none }}|{{ none is none }}",
        "{{ 'a' == 'a' }}{{ 'a' != 'a' }}{{ 1 == 1 }}{{ none == none }}{{ 'b' in 'abc' }}{{ 'z' not in 'abc' }}"
        "{{ 'role' in messages[0] }}{{ 'tool_calls' in messages[0] }}{{ '' or 'fallback' }}{{ 'first' and 'second' }}"
        "{{ not '' }}{{ not 'x' }}",
        "{% set ns = namespace(n='', k=true) %}{% for m in messages %}{% set ns.n = ns.n + m.content + ',' %}"
        "{% endfor %}{{ ns.n }}{{ ns['k'] }}{{ 'a/b/c'.split('/')[-1] }}{{ 'a/b/c'.split('/')[0] }}"
        "{{ 'abc'.split('x')[-1] }}{{ messages[-1]['role'] }}",
        "{% if messages %}yes{% elif bos_token %}no{% else %}never{% endif %}"
        "{% if not messages %}empty{% elif bos_token == 'B' %}bos{% else %}else{% endif %}",
        "{% set x = 0 %}{% for m in messages %}{{ x }}{% set x = loop.index %}{{ x }}{% endfor %}{{ x }}"
        "{% for m in messages %}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}"
        "{% endfor %}{% set m = 'outer' %}{% for m in messages %}{% endfor %}{{ m }}",
        "{% for k in messages[0] %}{{ k }}={{ messages[0][k] }};{% endfor %}{{ messages[5] is defined }}"
        "{{ messages[0].nothing is defined }}{{ none.x is defined }}{{ 'a' ~ 1 ~ none ~ true }}"
        "{{ 1 + 2 - 4 }}{{ 'x' 'y' }}{{ not not 'z' }}{{ (1 == 1) == true }}{{ messages == messages }}",
        "  {% if true %}\n\u3000 {% endif %}|\n  {# note #}\n  x \u3000{%- if true %}y{% endif %}\t\n"
        "{{- ' z ' -}}\n\n  {%+ if true +%}\n w{% endif %}",
        "{{ messages[0].nothing ~ 'x' ~ undefined_y }}|{{ messages[0].nothing }}|{{ 'a' in messages[0].nothing }}"
        "|{{ messages[0].nothing is none }}|{{ (messages[0].nothing) is defined == false }}",
        "{%- for m in messages -%}\n    {%- if m.role == 'user' -%}\n        U:{{ m.content }}\n"
        "    {%- else -%}\n        A:{{ m.content }}\n    {%- endif -%}\n{%- endfor -%}\n",
    ]
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    for tpl in others:
        exp = env.from_string(tpl).render(messages=conv, bos_token="B", eos_token="E", add_generation_prompt=False)
        out.append({"template": tpl, "messages": conv, "bos_token": "B", "eos_token": "E",
                    "add_generation_prompt": False, "expected": exp})
    return out, jinja2.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tokenizer"))
    ap.add_argument("--vocab-size", type=int, default=2000)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tok = build_tokenizer(args.vocab_size)
    tok.save(os.path.join(args.out, "tokenizer.json"), pretty=False)
    config = {"add_bos_token": False, "add_eos_token": False,
              "bos_token": {"__type": "AddedToken", "content": BOS, "lstrip": False, "normalized": True,
                            "rstrip": False, "single_word": False},
              "eos_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": True,
                            "rstrip": False, "single_word": False},
              "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 131072,
              "tokenizer_class": "LlamaTokenizerFast", "chat_template": CHAT_TEMPLATE}
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    reloaded = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
    cases = []
    for s in test_strings():
        ids = reloaded.encode(s).ids
        assert reloaded.decode(ids, skip_special_tokens=False) == s, repr(s)
        cases.append({"text": s, "ids": ids})
    with open(os.path.join(args.out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    renders, jv = chat_renders()
    with open(os.path.join(args.out, "chat.json"), "w", encoding="utf-8") as f:
        json.dump({"jinja2": jv, "renders": renders}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    import tokenizers
    print(f"{args.out}: vocabulary {reloaded.get_vocab_size()}, {len(cases)} cases (tokenizers "
          f"{tokenizers.__version__}), {len(renders)} chat renders (jinja2 {jv})")


if __name__ == "__main__":
    main()
