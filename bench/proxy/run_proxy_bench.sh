#!/usr/bin/env bash
# bench/proxy/run_proxy_bench.sh: the example proxy (modeenvoy-gateway) against a plain nginx
# reverse proxy (and optionally LiteLLM), side by side in one run, all on loopback, all in
# front of the same provider emulator, for the same requests (bench/proxy/chat*.json, sent by
# wrk through bench/proxy/chat.lua).
#
#   make bench                                   # builds build-release (this script builds nothing)
#   scripts/setup.sh --bench                     # installs wrk and nginx (or see below)
#   bench/proxy/run_proxy_bench.sh [BUILD_DIR] [--with-litellm] [--out FILE]
#                                  [--also-gateway BINARY]
#
# BUILD_DIR (default build-release, relative to the current dir or the repo) must hold
# examples/proxy/modeenvoy-gateway and examples/emulator/modeenvoy-emulator.
# Targets, each measured RUNS times, rounds interleaved so that drifting machine load hits all:
#   direct          wrk -> emulator                                  (baseline)
#   nginx-w1/-w2    wrk -> nginx, 1 or 2 worker processes -> emulator (keep-alive upstream pool)
#   gateway-t1/-t2  wrk -> modeenvoy-gateway --threads 1 or 2 -> emulator
#   litellm         wrk -> LiteLLM proxy, 1 worker -> emulator      (only with --with-litellm)
#   other-t1/-t2    wrk -> BINARY --threads 1 or 2 -> emulator  (only with --also-gateway: an
#                   other build of modeenvoy-gateway, for before/after comparisons; adds ~40%)
# Requests: a non-streaming chat completion and a streamed one (20 content chunks, unpaced).
# Passes: throughput (CONNS connections, DURATION s per run, every target) and unloaded latency
# (1 connection, LAT_DURATION s per run, the single-worker targets).
# Reports medians over the runs of req/s, p50 and p99, the added p50 over the direct baseline,
# the gateway/nginx throughput ratio, and each proxy's CPU time per request.
# Pinning (PIN=1, default, with >= 2 CPUs): wrk on CPU 0, the emulator on CPU 1, the proxy
# under test unpinned; PIN=0 pins nothing.
# Environment: DURATION (7), LAT_DURATION (3), RUNS (3), CONNS (32), WARMUP (1), PIN (1).
# Default run: about 4.5 minutes; --with-litellm adds its install (once, cached in
# /tmp/modeenvoy-bench-litellm-venv) and about a minute of runs.
# Exit: 0 done, 1 a target failed its sanity check, 2 usage or missing tools/binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

DURATION=${DURATION:-7}
LAT_DURATION=${LAT_DURATION:-3}
RUNS=${RUNS:-3}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-1}
PIN=${PIN:-1}

build_arg=build-release
with_litellm=0
out=""
other_gateway=""
while (($#)); do
  case $1 in
    --with-litellm) with_litellm=1 ;;
    --out) out=${2:?--out needs a file}; shift ;;
    --also-gateway) other_gateway=${2:?--also-gateway needs a binary}; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    -*) echo "run_proxy_bench: unknown flag $1" >&2; exit 2 ;;
    *) build_arg=$1 ;;
  esac
  shift
done

log() { printf 'bench: %s\n' "$*" >&2; }

# --- Tools and binaries (nothing is installed or built here) --------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
for tool in curl python3; do command -v $tool >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "run_proxy_bench: missing ${missing[*]}. Install with:" >&2
  echo "  apt-get install -y ${missing[*]}      (or: scripts/setup.sh --bench)" >&2
  exit 2
fi
if [[ -d $build_arg ]]; then build=$(cd "$build_arg" && pwd)
elif [[ -d $repo/$build_arg ]]; then build=$repo/$build_arg
else
  echo "run_proxy_bench: no build dir $build_arg; build it with: make bench" >&2
  exit 2
fi
gateway_bin=$build/examples/proxy/modeenvoy-gateway
emulator_bin=$build/examples/emulator/modeenvoy-emulator
for b in "$gateway_bin" "$emulator_bin" ${other_gateway:+"$other_gateway"}; do
  if [[ ! -x $b ]]; then
    echo "run_proxy_bench: $b not built; run: make bench" >&2
    echo "  (or: cmake --build $build --target modeenvoy-gateway modeenvoy-emulator)" >&2
    exit 2
  fi
done
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
[[ $build_type == Release ]] || log "warning: $build is a '${build_type:-unknown}' build, not Release"

ncpu=$(nproc)
pin_wrk=() pin_emu=()
if [[ $PIN == 1 ]] && ((ncpu >= 2)) && command -v taskset >/dev/null; then
  pin_wrk=(taskset -c 0) pin_emu=(taskset -c 1)
  pinning="wrk on CPU 0, emulator on CPU 1, proxies unpinned"
else
  pinning="none"
fi

# --- Processes: every one we start is recorded and stopped by PID ---------------------------
work=$(mktemp -d /tmp/modeenvoy-proxy-bench.XXXXXX)
chmod 755 "$work"  # nginx workers run as nobody
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port_file() {  # FILE PID NAME
  for _ in $(seq 100); do
    [[ -s $1 ]] && { cat "$1"; return; }
    kill -0 "$2" 2>/dev/null || { echo "run_proxy_bench: $3 exited early" >&2; exit 1; }
    sleep 0.1
  done
  echo "run_proxy_bench: $3 did not start" >&2; exit 1
}
wait_http() {  # URL PID NAME [TRIES]
  for _ in $(seq "${4:-100}"); do
    curl -s -o /dev/null --max-time 1 "$1" && return
    kill -0 "$2" 2>/dev/null || { echo "run_proxy_bench: $3 exited early" >&2; exit 1; }
    sleep 0.1
  done
  echo "run_proxy_bench: $3 did not answer at $1" >&2; exit 1
}

declare -A url pid_of
# Every request carries this key (bench/proxy/chat.lua): LiteLLM refuses to start without a
# master key and checks it; the emulator, nginx and the gateway (no auth filter) ignore it.
bench_key=sk-modeenvoy-bench-4f9c2a7e81d34b6c9e05a1f7d2c8b3e6
targets=()

# The provider emulator: 20 content chunks per stream, no pacing, no added latency.
"${pin_emu[@]}" "$emulator_bin" --port 0 --port-file "$work/emu.port" --chunks 20 \
  >"$work/emulator.log" 2>&1 &
emu_pid=$!; pids+=("$emu_pid")
emu_port=$(wait_port_file "$work/emu.port" "$emu_pid" emulator)
url[direct]=http://127.0.0.1:$emu_port; pid_of[direct]=$emu_pid; targets+=(direct)

for w in 1 2; do
  port=$(free_port)
  mkdir -p "$work/nginx-w$w"
  sed -e "s|@WORKERS@|$w|" -e "s|@PORT@|$port|" -e "s|@UPSTREAM_PORT@|$emu_port|" \
      -e "s|@DIR@|$work/nginx-w$w|g" "$here/nginx.conf.in" >"$work/nginx-w$w/nginx.conf"
  nginx -p "$work/nginx-w$w" -c "$work/nginx-w$w/nginx.conf" -g 'daemon off;' \
    >"$work/nginx-w$w/stdout.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_http "http://127.0.0.1:$port/v1/models" "$pid" "nginx-w$w"
  url[nginx-w$w]=http://127.0.0.1:$port; pid_of[nginx-w$w]=$pid; targets+=("nginx-w$w")
done

cat >"$work/gateway.json" <<EOF
{
  "listen": {"address": "127.0.0.1", "port": 0},
  "providers": {"emulator": {"type": "openai", "base_url": "http://127.0.0.1:$emu_port/v1"}},
  "models": {"gpt-4o-mini": {"provider": "emulator"}}
}
EOF
start_gateway() {  # NAME BINARY THREADS
  "$2" --config "$work/gateway.json" --threads "$3" --port 0 \
    --port-file "$work/$1.port" >"$work/$1.log" 2>&1 &
  pid=$!; pids+=("$pid")
  port=$(wait_port_file "$work/$1.port" "$pid" "$1")
  url[$1]=http://127.0.0.1:$port; pid_of[$1]=$pid; targets+=("$1")
}
for t in 1 2; do start_gateway "gateway-t$t" "$gateway_bin" "$t"; done
if [[ -n $other_gateway ]]; then
  for t in 1 2; do start_gateway "other-t$t" "$other_gateway" "$t"; done
fi

litellm_note=""
if ((with_litellm)); then
  venv=/tmp/modeenvoy-bench-litellm-venv
  if [[ ! -x $venv/bin/litellm ]]; then
    log "installing litellm[proxy] into $venv (throwaway venv, PyPI)"
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
             'litellm[proxy]'; } >"$work/litellm-install.log" 2>&1; then
      litellm_note="LiteLLM skipped: installation failed ($(tail -1 "$work/litellm-install.log"))"
      rm -rf "$venv"
    fi
  fi
  if [[ -x $venv/bin/litellm ]]; then
    port=$(free_port)
    cat >"$work/litellm.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$emu_port/v1
      api_key: unused
litellm_settings:
  telemetry: false
general_settings:
  master_key: $bench_key
EOF
    # No per-request access log (nginx and the gateway write none either).
    echo '{"version": 1, "disable_existing_loggers": false,
           "loggers": {"uvicorn.access": {"level": "WARNING"}}}' >"$work/litellm-log.json"
    # The local model price map: no fetch from outside at start-up.
    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
      "$venv/bin/litellm" --config "$work/litellm.yaml" --host 127.0.0.1 --port "$port" \
      --num_workers 1 --log_config "$work/litellm-log.json" >"$work/litellm.log" 2>&1 &
    pid=$!; pids+=("$pid")
    if (wait_http "http://127.0.0.1:$port/health/liveliness" "$pid" litellm 600); then
      url[litellm]=http://127.0.0.1:$port; pid_of[litellm]=$pid; targets+=(litellm)
      litellm_note="LiteLLM $("$venv/bin/pip" show litellm 2>/dev/null | sed -n 's/^Version: //p'), 1 worker"
    else
      kill -TERM "$pid" 2>/dev/null || true
      litellm_note="LiteLLM skipped: it did not start ($(grep -v '^ *$' "$work/litellm.log" | tail -1 | cut -c1-200))"
      log "$litellm_note"
    fi
  fi
fi

# --- Sanity: every target answers both requests like the emulator does -----------------------
for t in "${targets[@]}"; do
  whole=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' \
            -H "Authorization: Bearer $bench_key" \
            --data-binary "@$here/chat.json" "${url[$t]}/v1/chat/completions")
  code=${whole##*$'\n'}
  if [[ $code != 200 ]] || ! grep -q '"chat.completion"' <<<"$whole"; then
    echo "run_proxy_bench: $t: non-streaming request failed (HTTP $code): ${whole:0:300}" >&2; exit 1
  fi
  stream=$(curl -sN -H 'Content-Type: application/json' -H "Authorization: Bearer $bench_key" \
             --data-binary "@$here/chat_stream.json" \
             "${url[$t]}/v1/chat/completions")
  chunks=$(grep -c '"chat.completion.chunk"' <<<"$stream" || true)
  if ! grep -q '^data: \[DONE\]' <<<"$stream" || ((chunks < 22)); then
    echo "run_proxy_bench: $t: stream incomplete ($chunks chunks): ${stream:0:300}" >&2; exit 1
  fi
  log "$t at ${url[$t]}: ok (whole reply and a $chunks-chunk stream)"
done

# --- Runs --------------------------------------------------------------------------------------
# CPU ticks (user+system) of a process and its children that are still running (nginx workers).
cpu_ticks() {
  local total=0 p s
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    s=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null | tr ' ' '+') || continue
    [[ -n $s ]] && total=$((total + s))
  done
  echo "$total"
}
results=$work/results.tsv
printf 'pass\ttarget\tkind\trun\trequests\trps\tp50_us\tp99_us\terrors\tproxy_cpu_s\n' >"$results"

run_wrk() {  # PASS TARGET KIND RUN CONNS SECONDS
  local pass=$1 t=$2 kind=$3 run=$4 c=$5 d=$6 body=$here/chat.json before after line
  [[ $kind == stream ]] && body=$here/chat_stream.json
  before=$(cpu_ticks "${pid_of[$t]}")
  line=$(BENCH_BODY=$body "${pin_wrk[@]}" wrk -t1 -c"$c" -d"${d}s" --timeout 10s \
           -s "$here/chat.lua" "${url[$t]}" | grep '^RESULT' || true)
  after=$(cpu_ticks "${pid_of[$t]}")
  [[ -n $line ]] || { echo "run_proxy_bench: wrk gave no result for $t/$kind" >&2; exit 1; }
  [[ $run == warmup ]] && return
  python3 - "$line" "$pass" "$t" "$kind" "$run" "$((after - before))" "$(getconf CLK_TCK)" \
    >>"$results" <<'PY'
import sys
line, pass_, t, kind, run, ticks, hz = sys.argv[1:]
kv = dict(p.split("=") for p in line.split()[1:])
errors = sum(int(v) for k, v in kv.items() if k.startswith("errors_"))
print("\t".join([pass_, t, kind, run, kv["requests"], kv["rps"], kv["p50_us"], kv["p99_us"],
                 str(errors), "%.3f" % (int(ticks) / int(hz))]))
PY
  log "$(printf '%-10s %-11s %-6s run %s: %s' "$pass" "$t" "$kind" "$run" "$(tail -1 "$results" | cut -f5-)")"
}

lat_targets=()
for t in "${targets[@]}"; do
  case $t in direct|nginx-w1|gateway-t1|other-t1|litellm) lat_targets+=("$t") ;; esac
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
start_s=$SECONDS
log "warming up (${WARMUP}s per target and request)"
for t in "${targets[@]}"; do
  for kind in whole stream; do run_wrk warmup "$t" "$kind" warmup "$CONNS" "$WARMUP"; done
done
for run in $(seq "$RUNS"); do
  for kind in whole stream; do
    for t in "${targets[@]}"; do run_wrk throughput "$t" "$kind" "$run" "$CONNS" "$DURATION"; done
    for t in "${lat_targets[@]}"; do run_wrk latency "$t" "$kind" "$run" 1 "$LAT_DURATION"; done
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Report ------------------------------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
report=$(python3 - "$results" <<PY
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda xs: statistics.median(xs)
def stats(pass_, t, kind):
    rs = [r for r in rows if r["pass"] == pass_ and r["target"] == t and r["kind"] == kind]
    if not rs: return None
    return dict(rps=med([float(r["rps"]) for r in rs]),
                p50=med([float(r["p50_us"]) for r in rs]),
                p99=med([float(r["p99_us"]) for r in rs]),
                errors=sum(int(r["errors"]) for r in rs),
                cpu=med([float(r["proxy_cpu_s"]) * 1e6 / int(r["requests"]) for r in rs]),
                n=len(rs))
names = {"direct": "wrk → emulator (baseline)", "nginx-w1": "nginx, 1 worker",
         "nginx-w2": "nginx, 2 workers", "gateway-t1": "modeenvoy-gateway --threads 1",
         "gateway-t2": "modeenvoy-gateway --threads 2",
         "other-t1": "other gateway build --threads 1", "other-t2": "other gateway build --threads 2",
         "litellm": "LiteLLM proxy, 1 worker"}
peer = {"gateway-t1": "nginx-w1", "gateway-t2": "nginx-w2", "other-t1": "nginx-w1",
        "other-t2": "nginx-w2"}
targets = [t for t in names if any(r["target"] == t for r in rows)]
kinds = {"whole": "non-streaming", "stream": "streaming, 20 chunks"}
out = []
for pass_, title in (("throughput", "Throughput pass: $CONNS connections, ${DURATION} s per run"),
                     ("latency", "Latency pass: 1 connection, ${LAT_DURATION} s per run")):
    out.append(f"#### {title} (medians of $RUNS runs)\n")
    out.append("| request | target | req/s | p50 µs | p99 µs | added p50 µs | req/s vs nginx | CPU µs/req |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for kind, kname in kinds.items():
        base = stats(pass_, "direct", kind)
        for t in targets:
            s = stats(pass_, t, kind)
            if s is None: continue
            added = "—" if t == "direct" else f"{s['p50'] - base['p50']:+.0f}"
            ratio = "—"
            if t in peer and stats(pass_, peer[t], kind):
                ratio = f"{s['rps'] / stats(pass_, peer[t], kind)['rps']:.2f}"
            cpu = f"{s['cpu']:.1f}" + (" (emulator)" if t == "direct" else "")
            err = f" ({s['errors']} errors)" if s["errors"] else ""
            out.append(f"| {kname} | {names[t]}{err} | {s['rps']:.0f} | {s['p50']:.0f} | "
                       f"{s['p99']:.0f} | {added} | {ratio} | {cpu} |")
    out.append("")
print("\n".join(out))
PY
)
elapsed=$((SECONDS - start_s))
{
  echo "Machine: $ncpu CPUs ($cpu_model), $(uname -sr); load average at start $load_start, at end $load_end"
  echo "Versions: modeenvoy checkout $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- lib include examples 2>/dev/null || echo ' with uncommitted changes') (the build's sources may be older; ${build_type:-?} build), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)${litellm_note:+, $litellm_note}"
  [[ -z $other_gateway ]] || echo "Other gateway build: $other_gateway"
  echo "Pinning: $pinning. Runs took ${elapsed}s."
  echo
  echo "$report"
} | tee "${out:-/dev/null}"
[[ -z $out ]] || cp "$results" "${out%.*}.tsv"
