#!/usr/bin/env bash
# Builds the unit tests with AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer in
# build-asan/ (TWINQ_SANITIZE=ON) and runs all of them. Fails on any sanitizer report (every
# UBSan finding aborts: -fno-sanitize-recover; LeakSanitizer reports at exit), on a failing
# test, or when no test ran.
#
#   scripts/asan.sh [BUILD_DIR] [GTEST_FILTER]      (defaults: build-asan, every test)
#
# Environment: JOBS (build parallelism, default 2). On a fresh machine, run scripts/setup.sh (or
# scripts/test.sh) first: it installs the compiler, CMake, Ninja and the libraries.
#
# Not part of CI (.ci/run) yet: it would add the instrumented build of the unit tests to every run
# (on a 2-core machine, about half an hour while other work ran; the 282 tests then take about two
# minutes). The fuzzers, which CI runs, are built with ASan and UBSan under clang (scripts/fuzz.sh). Debian's shared libraries (libroaring, libsimdjson, libfmt, gtest, the ANTLR
# runtime) are not instrumented: ASan still sees every allocation and every access our code makes
# into them, but not the accesses they make themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${1:-build-asan}
FILTER=${2:-*}
JOBS=${JOBS:-2}

mkdir -p "$BUILD_DIR"
echo "asan.sh: configuring $BUILD_DIR (TWINQ_SANITIZE=ON)"
if ! cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWINQ_SANITIZE=ON \
     -DTWINQ_FUZZ=OFF >"$BUILD_DIR/configure.log" 2>&1; then
  cat "$BUILD_DIR/configure.log" >&2
  echo "asan.sh: configure failed" >&2
  exit 2
fi
echo "asan.sh: building twinq_unit_tests"
cmake --build "$BUILD_DIR" -j"$JOBS" --target twinq_unit_tests

LOG="$BUILD_DIR/asan-tests.log"
echo "asan.sh: running $FILTER (log: $LOG)"
status=0
ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 strict_string_checks=1 ${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}" \
  "$BUILD_DIR/tests/twinq_unit_tests" --gtest_filter="$FILTER" --gtest_color=no >"$LOG" 2>&1 ||
  status=$?
tail -n 40 "$LOG"
if [ "$status" -ne 0 ]; then
  echo "asan.sh: FAILED (exit status $status)" >&2
  exit 1
fi
if grep -Eq "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LOG"; then
  echo "asan.sh: FAILED (sanitizer report)" >&2
  exit 1
fi
if ! grep -Eq '^\[  PASSED  \] [1-9][0-9]* tests?\.' "$LOG"; then
  echo "asan.sh: FAILED (no test ran)" >&2
  exit 1
fi
echo "asan.sh: OK"
