#!/usr/bin/env bash
# scripts/pip_check.sh: proves `pip install .` builds and installs a working `modeenvoy`.
# Installs into a throwaway virtual environment (with the machine's site packages, so the
# build requirements set-up installed are used offline), then imports the installed package
# from outside the source tree and checks it against tiktoken.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv --system-site-packages "$work/venv"
# A private build dir keeps the wheel build away from the developer's build trees.
"$work/venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps \
  --config-settings=build-dir="$work/build" "$repo"
cd "$work"
MODEENVOY_TOKENIZER_DIR="$repo/.data/tokenizers" TIKTOKEN_CACHE_DIR="$repo/.data/tiktoken-cache" \
"$work/venv/bin/python" - "$repo" <<'PY'
import sys
import modeenvoy
import tiktoken

repo = sys.argv[1]
assert not modeenvoy.__file__.startswith(repo), f"imported from the source tree: {modeenvoy.__file__}"
req = modeenvoy.parse_chat_request(
    '{"model":"demo","messages":[{"role":"user","content":"hi"}],"x_extra":{"k":[1,2]}}')
assert '"x_extra":{"k":[1,2]}' in req.to_json(), req.to_json()
try:
    modeenvoy.parse_chat_request('{"model":"demo","messages":[{"role":"bot","content":"x"}]}')
    raise AssertionError("invalid role accepted")
except modeenvoy.Error as e:
    assert e.status_code == 400 and e.param == "messages[0].role", (e.status_code, e.param)
text = "Hello, wörld! 你好 🤖 <|endoftext|>"
for name in ("cl100k_base", "o200k_base"):
    ours, ref = modeenvoy.get_encoding(name), tiktoken.get_encoding(name)
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
print(f"pip-check: modeenvoy {modeenvoy.__version__} installed from {modeenvoy.__file__}")
PY
