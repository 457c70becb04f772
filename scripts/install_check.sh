#!/usr/bin/env bash
# scripts/install_check.sh BUILD_DIR [all|umbrella|tokenizer]: installs the library from
# BUILD_DIR into a scratch prefix, checks that every component has its exported target and
# its .pc file, then builds and runs programs of tests/install/consumer/ against the install
# twice: once through find_package(modeenvoy) and once through pkg-config.
#   umbrella   consumer: everything (modeenvoy::modeenvoy / modeenvoy.pc)
#   tokenizer  tokens_consumer: token counting alone (modeenvoy::tokenizer /
#              modeenvoy-tokenizer.pc); it must need no libcurl, directly (readelf -d), through
#              a library (ldd) or by symbol (nm)
# all (the default) does both. Exits non-zero on any failure.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
mode=${2:-all}
case "$mode" in all|umbrella|tokenizer) ;; *) echo "unknown mode '$mode'" >&2; exit 2 ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
components=(core protocol tokenizer gateway context context_gateway router router_gateway anthropic_ingress
  responses_ingress)

fail() { echo "install-check: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
libdirs=$(find "$prefix" -name 'libmodeenvoy_core.*' -printf '%h\n' | sort -u)
[ -n "$libdirs" ] || fail "no libmodeenvoy_core installed under $prefix"
pcdir=$(find "$prefix" -name modeenvoy.pc -printf '%h\n' | head -n 1)
[ -n "$pcdir" ] || fail "no modeenvoy.pc installed"
targets=$(find "$prefix" -name 'modeenvoyTargets.cmake' | head -n 1)
for c in "${components[@]}"; do
  [ -f "$pcdir/modeenvoy-$c.pc" ] || fail "modeenvoy-$c.pc not installed"
  grep -q "add_library(modeenvoy::$c " "$targets" || fail "modeenvoy::$c not exported"
done
grep -q "add_library(modeenvoy::modeenvoy " "$targets" || fail "modeenvoy::modeenvoy not exported"

# A shared build's programs find the libraries through this (the CMake-built ones also
# carry an RPATH).
export LD_LIBRARY_PATH="$(echo "$libdirs" | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Fails if the executable $1 needs libcurl, directly or through one of its libraries.
check_no_curl() {
  local exe=$1
  if readelf -d "$exe" | grep -E 'NEEDED.*libcurl' >/dev/null; then
    fail "$exe links libcurl directly:"$'\n'"$(readelf -d "$exe" | grep NEEDED)"
  fi
  if ldd "$exe" | grep -E 'libcurl' >/dev/null; then
    fail "$exe loads libcurl through a dependency:"$'\n'"$(ldd "$exe")"
  fi
  if nm "$exe" 2>/dev/null | grep -E ' [TtUuWw] curl_' >/dev/null; then
    fail "$exe refers to libcurl symbols: $(nm "$exe" | grep -E ' curl_' | head -n 3)"
  fi
}

cmake -S "$repo/tests/install/consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
export PKG_CONFIG_PATH="$pcdir"
for c in "${components[@]}"; do
  pkg-config --exists --print-errors "modeenvoy-$c" || fail "modeenvoy-$c.pc does not resolve"
done

if [ "$mode" != tokenizer ]; then
  cmake --build "$work/consumer" --target consumer >/dev/null
  "$work/consumer/consumer"
  # pkg-config consumers get the same flags without CMake.
  # shellcheck disable=SC2046
  c++ -std=c++20 "$repo/tests/install/consumer/consumer.cc" -o "$work/consumer_pc" \
    $(pkg-config --cflags --libs modeenvoy)
  "$work/consumer_pc"
  echo "install-check: find_package and pkg-config consumers of modeenvoy built and ran"
fi

if [ "$mode" != umbrella ]; then
  cmake --build "$work/consumer" --target tokens_consumer >/dev/null
  "$work/consumer/tokens_consumer"
  check_no_curl "$work/consumer/tokens_consumer"
  if pkg-config --libs modeenvoy-tokenizer | grep -E 'curl' >/dev/null; then
    fail "modeenvoy-tokenizer.pc links libcurl: $(pkg-config --libs modeenvoy-tokenizer)"
  fi
  # shellcheck disable=SC2046
  c++ -std=c++20 "$repo/tests/install/consumer/tokens_consumer.cc" \
    -o "$work/tokens_consumer_pc" $(pkg-config --cflags --libs modeenvoy-tokenizer)
  "$work/tokens_consumer_pc"
  check_no_curl "$work/tokens_consumer_pc"
  echo "install-check: tokenizer-only consumers (find_package, pkg-config) built and ran" \
       "and need no libcurl"
fi
