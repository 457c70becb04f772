#!/usr/bin/env bash
# bench/gateway/instructions_per_iteration.sh: instructions per Gateway::Handle in gateway_bench,
# counted by callgrind (load-independent, unlike the benchmark's own timings).
#
#   bench/gateway/instructions_per_iteration.sh build-rel/bench/gateway/gateway_bench
#
# Runs each benchmark twice under callgrind, collecting only inside RunGatewayHandle, with two
# --benchmark_min_time values, and prints (Ir_long - Ir_short) / (Handle calls_long -
# Handle calls_short): the cold first iteration and the set-up cancel out.
# Environment: BENCHES ("BM_GatewayHandle BM_GatewayHandleRejected").
set -euo pipefail
bin=${1:?usage: instructions_per_iteration.sh GATEWAY_BENCH_BINARY}
command -v valgrind >/dev/null || { echo "instructions_per_iteration: needs valgrind" >&2; exit 2; }
work=$(mktemp -d /tmp/modeenvoy-bench-ir.XXXXXX)
trap 'rm -rf "$work"' EXIT
for b in ${BENCHES:-BM_GatewayHandle BM_GatewayHandleRejected}; do
  for t in 0.3 1.5; do
    valgrind --tool=callgrind --callgrind-out-file="$work/$b.$t.out" \
      --toggle-collect='*RunGatewayHandle*' \
      "$bin" --benchmark_filter="^$b\$" --benchmark_min_time=$t >/dev/null 2>&1
  done
  python3 - "$work/$b.0.3.out" "$work/$b.1.5.out" "$b" <<'PY'
import re, sys
def read(path):
    raw = open(path).read()
    total = int(re.search(r"^summary: (\d+)", raw, re.M).group(1))
    ids = set(re.findall(r"^c?fn=\((\d+)\) [^\n]*GatewayImpl::Handle\(", raw, re.M))
    calls = sum(int(n) for i in ids
                for n in re.findall(r"^cfn=\(%s\)[^\n]*\ncalls=(\d+)" % i, raw, re.M))
    return total, calls
(a, ca), (b, cb) = read(sys.argv[1]), read(sys.argv[2])
print(f"{sys.argv[3]} ir_per_iteration={(b - a) / (cb - ca):.0f} runs={ca}:{a},{cb}:{b}")
PY
done
