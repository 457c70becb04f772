#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD/tests/fuzz for a fixed number of inputs from a fixed
# seed (deterministic for a given binary, independent of machine speed), each from a scratch
# corpus directory holding the target's seeds: those in tests/fuzz/corpus/<target>/ and those
# written below. Any crash, sanitizer report or failed check fails the run.
#   scripts/run_fuzzers.sh build-fuzz            (make fuzz does this)
# FUZZ_RUNS_SCALE multiplies the input counts (e.g. 10 for a longer local session).
set -euo pipefail
build=$(cd "${1:?usage: run_fuzzers.sh BUILD_DIR}" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
scale=${FUZZ_RUNS_SCALE:-1}
export MODEENVOY_TOKENIZER_DIR=${MODEENVOY_TOKENIZER_DIR:-$repo/.data/tokenizers}
shared=${MODEENVOY_SHARED_DATA:-$repo/../shared/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Seeds (never committed): framing_fuzzer gets Kong's recorded Bedrock AWS EventStream bytes
# behind a first byte of 2 or 6 (= EventStream, see tests/fuzz/framing_fuzzer.cc), when present.
kong=$shared/provider-fixtures/kong/spec/fixtures/ai-proxy
mkdir -p "$work/framing_fuzzer"
if [[ -f $kong/unit/streaming-chunk-formats/aws/input.bin ]]; then
  { printf '\x02'; cat "$kong/unit/streaming-chunk-formats/aws/input.bin"; } \
    >"$work/framing_fuzzer/seed-kong-aws"
fi
if [[ -f $kong/bedrock/chunks/chunk-1.txt ]]; then
  { printf '\x06'; for i in 1 2 3; do base64 -d "$kong/bedrock/chunks/chunk-$i.txt"; done; } \
    >"$work/framing_fuzzer/seed-kong-bedrock"
fi

# embeddings_fuzzer gets the recorded OpenAI and Cohere embeddings responses, when present.
mkdir -p "$work/embeddings_fuzzer"
fixtures=$shared/provider-fixtures
for f in vercel-ai/packages/openai/src/embedding/__fixtures__/openai-embedding.json \
         vercel-ai/packages/cohere/src/__fixtures__/cohere-embedding.json \
         kong/spec/fixtures/ai-proxy/openai/llm-v1-embeddings/responses/good.json; do
  if [[ -f $fixtures/$f ]]; then cp "$fixtures/$f" "$work/embeddings_fuzzer/seed-${f//\//_}"; fi
done

# target, inputs, max input length
targets=(
  "tokenizer_fuzzer 600000 4096"   # also compares 3 block-mask splitters per input: CI time
  "bpe_fuzzer 200000 512"
  "chat_request_fuzzer 1000000 4096"
  "framing_fuzzer 500000 4096"
  "anthropic_fuzzer 200000 4096"
  "embeddings_fuzzer 300000 8192"
  "messages_ingress_fuzzer 200000 4096"
  "openai_responses_fuzzer 200000 4096"
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
