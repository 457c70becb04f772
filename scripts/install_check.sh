#!/usr/bin/env bash
# scripts/install_check.sh BUILD_DIR: installs the library from BUILD_DIR into a scratch
# prefix, then builds and runs tests/install/consumer/ against it twice: once through
# find_package(modeenvoy) and once through pkg-config. Exits non-zero on any failure.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$repo/tests/install/consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer"

# pkg-config consumers get the same flags without CMake.
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
c++ -std=c++20 "$repo/tests/install/consumer/consumer.cc" -o "$work/consumer_pc" \
  $(pkg-config --cflags --libs modeenvoy)
"$work/consumer_pc"
echo "install-check: find_package and pkg-config consumers built and ran"
