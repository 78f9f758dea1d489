#!/usr/bin/env bash
# Builds the Release configuration (-O3 -DNDEBUG) with the benchmarks, as README's benchmark
# instructions do, without running anything. GCC 12 gives some warnings only at -O3 (false
# -Warray-bounds / -Wrestrict), and our targets build with -Werror, so CI builds this too.
# Usage: scripts/release_build.sh [BUILD_DIR]     (default: build-release)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${1:-build-release}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTWINQ_BENCH=ON \
  -DTWINQ_TESTS=OFF -DTWINQ_FUZZ=OFF
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "release build OK: $BUILD_DIR"
