#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds the consumer (main.cpp) against
# it twice and runs both: with CMake (find_package(natsvisor)) and with plain pkg-config
# (natsvisor.pc). Usage: run.sh BUILD_DIR CONSUMER_SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"

# 1. CMake: find_package(natsvisor) -> natsvisor::natsvisor
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j2 > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/build/consumer"
# The installed command-line tool runs from the prefix and prints its usage.
"$work/prefix/bin/natsvisor" status --help > "$work/cli_help.txt"
grep -q "Usage: natsvisor status" "$work/cli_help.txt" || { cat "$work/cli_help.txt"; exit 1; }

# 2. pkg-config: natsvisor.pc, installed under the prefix's libdir, names that prefix.
pc=$(find "$prefix" -path '*/pkgconfig/natsvisor.pc' | head -n 1)
[[ -n "$pc" ]] || { echo "natsvisor.pc was not installed"; cat "$work/install.log"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")"
pkg-config --validate natsvisor
got=$(pkg-config --variable=prefix natsvisor)
[[ "$got" == "$prefix" ]] || { echo "natsvisor.pc names prefix '$got', not '$prefix'"; exit 1; }
# shellcheck disable=SC2046 # the flags are meant to split
c++ -std=c++17 -O1 -o "$work/consumer_pc" "$src/main.cpp" $(pkg-config --cflags --libs natsvisor) \
  > "$work/pc_build.log" 2>&1 || {
  echo "pkg-config build failed; flags: $(pkg-config --cflags --libs natsvisor)"
  cat "$work/pc_build.log"; exit 1; }
"$work/consumer_pc"
