#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds twinq and runs it. With no arguments it
# runs the demo: a few queries and job conditions over the bundled example fleet. Any arguments
# are passed to the twinq command (e.g. scripts/run.sh query --twins FILE 'SELECT ...').
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
cmake --build build -j"$(nproc)" --target twinq >&2

if [ $# -gt 0 ]; then
  exec build/tools/twinq "$@"
fi
exec bash scripts/demo.sh
