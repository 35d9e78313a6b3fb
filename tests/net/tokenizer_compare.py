#!/usr/bin/env python3
"""tokenizer_compare.py DIR DSCC FIXTURE_CASES — dscc tokenize / detokenize
against Hugging Face `tokenizers` on the tokenizer.json in DIR (DeepSeek-V3's
real one, from tokenizer_hf.sh).

Strings: the fixture's cases (tests/fixtures/tokenizer/cases.json), a
hand-written list (the first 8 each in its own run) and 400 random mixes of ASCII, CJK,
kana, Hangul, Cyrillic, odd whitespace, emoji and DeepSeek's special
tokens. The mixes and fixture cases go through dscc in chunks of 50 joined
into one text (both implementations see the same text), so the test takes
seconds; each chunk's ids must be identical, and detokenize must give the
exact bytes back. Exits 1 on any mismatch, naming the first few."""
import json
import random
import subprocess
import sys

from tokenizers import Tokenizer


def main():
    d, dscc, fixture = sys.argv[1:4]
    tok = Tokenizer.from_file(d + "/tokenizer.json")
    single = ["Hello world", "def f(x):\n    return x**2  # comment\r\n\tpass", "1234567890 3.14159 1e-9 0x1F",
              "中文字符测试，包括标点。", "ひらがなカタカナ漢字", "한국어 텍스트입니다", "Привет, мир!", "مرحبا بالعالم",
              "👍🏽 👨‍👩‍👧‍👦 🇺🇸", "e\u0301 a\u0308 n\u0303", "   multiple   spaces\n\n\n  ", "\r\n\r\n",
              "a\u0085b\u00a0c\u2003d\u3000e",
              "<｜begin▁of▁sentence｜>You are<｜User｜>Hi<｜Assistant｜><think>x</think><｜end▁of▁sentence｜>",
              "<|not special|> <｜User", "\t\t\tindent", "x" * 3000, " " * 5000 + "a", "ℌ𝔢𝔩𝔩𝔬 𝒲ℴ𝓇𝓁𝒹",
              "The quick brown fox's \"quote\" (paren) [bracket] {brace}", "won't can't I'm", "٣٤٥ ১২৩ ①②③ Ⅻ", ""]
    with open(fixture, encoding="utf-8") as f:
        joined = [c["text"] for c in json.load(f)["cases"]]
    joined += single[8:]  # each run loads the 128k-token file: only 8 strings run alone
    single = single[:8] + [""]
    rng = random.Random(1)
    alpha = [chr(c) for c in list(range(32, 127)) + list(range(0x4e00, 0x4e40)) + list(range(0x3040, 0x3060))
             + list(range(0xac00, 0xac20)) + list(range(0x400, 0x430))
             + [0x85, 0xa0, 0x2028, 0x200b, 0x301, 0x1f600, 0xa, 0xd, 0x9, 0x3000]]
    alpha += ["<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜end▁of▁sentence｜>", "123", "  "]
    for _ in range(400):
        joined.append("".join(rng.choice(alpha) for _ in range(rng.randint(1, 60))))
    texts = single + ["".join(joined[i:i + 50]) for i in range(0, len(joined), 50)]
    bad = 0
    for s in texts:
        ref = tok.encode(s).ids
        out = subprocess.run([dscc, "tokenize", "--tokenizer", d, "-"], input=s.encode(), capture_output=True)
        got = json.loads(out.stdout) if out.returncode == 0 else out.stderr.decode()
        back = subprocess.run([dscc, "detokenize", "--tokenizer", d], input=json.dumps(ref).encode(),
                              capture_output=True)
        if got != ref or back.returncode != 0 or back.stdout != s.encode():
            bad += 1
            if bad <= 5:
                print("MISMATCH", repr(s)[:160], "\n  tokenizers:", ref[:24], "\n  dscc:", got[:24] if isinstance(got, list)
                      else got, "\n  detokenize exact:", back.stdout == s.encode())
    n = len(single) + len(joined)
    print(f"{n} strings in {len(texts)} runs: {bad} runs differ from tokenizers")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
