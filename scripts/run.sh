#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds twinq and runs it. With no arguments it
# opens the REPL on the built-in demo fleet (50,000 generated device twins with modules). Any
# arguments are passed to the twinq command (e.g. scripts/run.sh query --twins FILE 'SELECT ...';
# scripts/demo.sh shows a short non-interactive tour).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
cmake --build build -j"$(nproc)" --target twinq >&2

exec build/tools/twinq "$@"
