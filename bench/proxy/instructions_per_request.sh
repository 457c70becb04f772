#!/usr/bin/env bash
# bench/proxy/instructions_per_request.sh: the example proxy's CPU instructions per request,
# counted by callgrind, so the figure does not depend on the machine's load (compare builds
# with this, not with wall-clock CPU time on a shared machine).
#
#   bench/proxy/instructions_per_request.sh GATEWAY_BINARY [EMULATOR_BINARY]
#
# Starts the provider emulator (--chunks 20, as run_proxy_bench.sh does) and the gateway
# under `valgrind --tool=callgrind` with --threads 1 and run_proxy_bench.sh's configuration,
# sends N1 and then, in a second gateway process, N2 identical requests one after another on
# one keep-alive connection, and prints (N2-run Ir - N1-run Ir) / (N2 - N1): start-up,
# warm-up and shutdown cancel out. Both request kinds: bench/proxy/chat.json (whole reply)
# and chat_stream.json (20-chunk stream). All threads' instructions count (the loop thread,
# libcurl, the kernel's side is not included).
# EMULATOR_BINARY defaults to the one beside GATEWAY_BINARY's build dir.
# Environment: N1 (200), N2 (2200), KINDS ("whole stream"), KEEP (dir to keep callgrind
# outputs in, for callgrind_annotate; default: a temporary dir, removed), FILTERS (the
# configuration's "filters" array, default [] (none); e.g.
# '[{"type":"headers","config":{"response":{"set":{"x-gw":"1"}}}}]' puts a response filter in
# the chain, which makes the engine keep what it needs for the outcome's usage).
# Output: one line per kind: "KIND ir_per_request=X runs=N1:IR1,N2:IR2".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
gateway=${1:?usage: instructions_per_request.sh GATEWAY_BINARY [EMULATOR_BINARY]}
emulator=${2:-$(dirname "$gateway")/../emulator/modeenvoy-emulator}
N1=${N1:-200}
N2=${N2:-2200}
KINDS=${KINDS:-whole stream}
FILTERS=${FILTERS:-[]}
command -v valgrind >/dev/null || { echo "instructions_per_request: needs valgrind" >&2; exit 2; }
for b in "$gateway" "$emulator"; do
  [[ -x $b ]] || { echo "instructions_per_request: $b is not built" >&2; exit 2; }
done

work=$(mktemp -d /tmp/modeenvoy-ir.XXXXXX)
out_dir=${KEEP:-$work}
mkdir -p "$out_dir"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_port_file() {  # FILE PID
  for _ in $(seq 600); do
    [[ -s $1 ]] && { cat "$1"; return; }
    kill -0 "$2" 2>/dev/null || { echo "instructions_per_request: process $2 exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "instructions_per_request: no port in $1" >&2; exit 1
}

"$emulator" --port 0 --port-file "$work/emu.port" --chunks 20 >"$work/emulator.log" 2>&1 &
pids+=($!)
emu_port=$(wait_port_file "$work/emu.port" "${pids[0]}")
cat >"$work/gateway.json" <<EOF
{
  "listen": {"address": "127.0.0.1", "port": 0},
  "providers": {"emulator": {"type": "openai", "base_url": "http://127.0.0.1:$emu_port/v1"}},
  "models": {"gpt-4o-mini": {"provider": "emulator"}},
  "filters": $FILTERS
}
EOF

# Sends N requests with BODY on one keep-alive connection; every reply must be a 200 with
# the expected content.
send() {  # PORT N BODY
  python3 - "$@" <<'PY'
import http.client, sys
port, n, body = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "rb").read()
stream = b'"stream":true' in body.replace(b" ", b"")
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(n):
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    want = b"data: [DONE]" if stream else b'"chat.completion"'
    if r.status != 200 or want not in data:
        sys.exit(f"request {i}: HTTP {r.status}: {data[:300]!r}")
conn.close()
PY
}

measure() {  # KIND N -> prints total Ir of one gateway process serving N requests
  local kind=$1 n=$2 body=$here/chat.json pid port file
  [[ $kind == stream ]] && body=$here/chat_stream.json
  file=$out_dir/callgrind.$kind.$n.out
  rm -f "$work/gw.port"
  valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no \
    "$gateway" --config "$work/gateway.json" --threads 1 --port 0 \
    --port-file "$work/gw.port" >"$work/gateway.$kind.$n.log" 2>&1 &
  pid=$!; pids+=("$pid")
  port=$(wait_port_file "$work/gw.port" "$pid")
  send "$port" "$n" "$body"
  kill -TERM "$pid"
  wait "$pid" || true
  sed -n 's/^summary: //p; s/^totals: //p' "$file" | head -1
}

for kind in $KINDS; do
  ir1=$(measure "$kind" "$N1")
  ir2=$(measure "$kind" "$N2")
  python3 -c "import sys; a, b, n1, n2 = map(int, sys.argv[1:]); \
print(f'$kind ir_per_request={(b - a) / (n2 - n1):.0f} runs={n1}:{a},{n2}:{b}')" \
    "$ir1" "$ir2" "$N1" "$N2"
done
