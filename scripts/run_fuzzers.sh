#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD/tests/fuzz for a fixed number of inputs from a fixed
# seed (deterministic for a given binary, independent of machine speed), each from a scratch
# corpus that starts with the target's seeds in tests/fuzz/corpus/<target>/ (if any). Any crash, sanitizer report or failed check fails the run.
#   scripts/run_fuzzers.sh build-fuzz            (make fuzz does this)
# FUZZ_RUNS_SCALE multiplies the input counts (e.g. 10 for a longer local session).
set -euo pipefail
build=$(cd "${1:?usage: run_fuzzers.sh BUILD_DIR}" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
scale=${FUZZ_RUNS_SCALE:-1}
export MODEENVOY_TOKENIZER_DIR=${MODEENVOY_TOKENIZER_DIR:-$repo/.data/tokenizers}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# target, inputs, max input length
targets=(
  "tokenizer_fuzzer 1000000 4096"
  "bpe_fuzzer 200000 512"
  "chat_request_fuzzer 1000000 4096"
  "framing_fuzzer 500000 4096"
)
for t in "${targets[@]}"; do
  read -r name runs max_len <<<"$t"
  bin=$build/tests/fuzz/$name
  [[ -x $bin ]] || { echo "fuzz: $bin not built" >&2; exit 1; }
  mkdir -p "$work/$name"
  if [[ -d $repo/tests/fuzz/corpus/$name ]]; then cp "$repo/tests/fuzz/corpus/$name"/* "$work/$name"/; fi
  start=$(date +%s)
  if ! (cd "$work" && "$bin" "$work/$name" -seed=1 -runs=$((runs * scale)) -max_len="$max_len" \
        -print_final_stats=1 >"$work/$name.log" 2>&1); then
    tail -n 60 "$work/$name.log" >&2
    echo "fuzz: $name failed (log above; the crashing input is in the log as Base64)" >&2
    exit 1
  fi
  echo "fuzz: $name: $((runs * scale)) inputs in $(( $(date +%s) - start )) s, no findings"
done
