#!/usr/bin/env bash
# Runs the unit tests and the query tests under AddressSanitizer (leak checks included) and
# UndefinedBehaviorSanitizer. Fails on any sanitizer report (every UBSan finding aborts:
# -fno-sanitize-recover; LeakSanitizer reports at exit), on a failing test, or when no test ran.
#
#   scripts/asan.sh [BUILD_DIR] [GTEST_FILTER]      (defaults: build-asan, every unit test)
#
# BUILD_DIR is configured with TWINQ_SANITIZE=ON (ASan and UBSan everywhere) and ASAN_CXX, unless
# scripts/fuzz.sh configured it already (TWINQ_LIBFUZZER: clang, ASan and UBSan everywhere, plus
# coverage instrumentation): then its instrumented libraries are used as they are and only the
# tests are compiled. CI runs `scripts/asan.sh build-fuzz` right after scripts/fuzz.sh.
#
# Environment: ASAN_CXX (default clang++; g++ works too), JOBS (build parallelism, default 2).
# On a fresh machine, run scripts/setup.sh (or scripts/test.sh) first: it installs the compilers,
# CMake, Ninja and the libraries.
#
# Debian's shared libraries (libroaring, libsimdjson, libfmt, gtest, the ANTLR runtime) are not
# instrumented: ASan still sees every allocation and every access our code makes into them, but
# not the accesses they make themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${1:-build-asan}
FILTER=${2:-*}
CXX=${ASAN_CXX:-clang++}
JOBS=${JOBS:-2}

mkdir -p "$BUILD_DIR"
if [ -f "$BUILD_DIR/CMakeCache.txt" ] && grep -qx "TWINQ_LIBFUZZER:BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  echo "asan.sh: using the instrumented build in $BUILD_DIR (scripts/fuzz.sh's)"
  CONFIGURE=(cmake -S . -B "$BUILD_DIR" -DTWINQ_TESTS=ON)
else
  CXX_PATH=$(command -v "$CXX") || { echo "asan.sh: no compiler $CXX" >&2; exit 2; }
  CC_PATH=$CXX_PATH
  case "$CXX" in
    *clang++*) CC_PATH=$(command -v "${CXX/clang++/clang}") ;;
    *g++*) CC_PATH=$(command -v "${CXX/g++/gcc}") ;;
  esac
  # A build directory configured with another compiler cannot be reconfigured in place.
  if [ -f "$BUILD_DIR/CMakeCache.txt" ] &&
     ! grep -Eqx "CMAKE_CXX_COMPILER:[A-Z]+=$CXX_PATH" "$BUILD_DIR/CMakeCache.txt"; then
    echo "asan.sh: $BUILD_DIR was configured with another compiler; starting it afresh"
    rm -rf "$BUILD_DIR"
    mkdir -p "$BUILD_DIR"
  fi
  echo "asan.sh: configuring $BUILD_DIR ($CXX, TWINQ_SANITIZE=ON)"
  CONFIGURE=(cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
             -DCMAKE_C_COMPILER="$CC_PATH" -DCMAKE_CXX_COMPILER="$CXX_PATH" -DTWINQ_SANITIZE=ON
             -DTWINQ_TESTS=ON -DTWINQ_FUZZ=OFF)
fi
if ! "${CONFIGURE[@]}" >"$BUILD_DIR/asan-configure.log" 2>&1; then
  cat "$BUILD_DIR/asan-configure.log" >&2
  echo "asan.sh: configure failed" >&2
  exit 2
fi
echo "asan.sh: building twinq_unit_tests and twinq_test_runner"
cmake --build "$BUILD_DIR" -j"$JOBS" --target twinq_unit_tests twinq_test_runner

export ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 strict_string_checks=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}"
LOG="$BUILD_DIR/asan-tests.log"
echo "asan.sh: running the unit tests $FILTER (log: $LOG)"
status=0
"$BUILD_DIR/tests/twinq_unit_tests" --gtest_filter="$FILTER" --gtest_color=no >"$LOG" 2>&1 ||
  status=$?
if [ "$status" -ne 0 ]; then tail -n 80 "$LOG"; else tail -n 3 "$LOG"; fi
QLOG="$BUILD_DIR/asan-queries.log"
echo "asan.sh: running the query tests (log: $QLOG)"
qstatus=0
ctest --test-dir "$BUILD_DIR" -R '^queries/' -j"$JOBS" --output-on-failure >"$QLOG" 2>&1 ||
  qstatus=$?
if [ "$qstatus" -ne 0 ]; then tail -n 80 "$QLOG"; else tail -n 3 "$QLOG"; fi
if [ "$status" -ne 0 ] || [ "$qstatus" -ne 0 ]; then
  echo "asan.sh: FAILED (exit status $status, query tests $qstatus)" >&2
  exit 1
fi
if grep -Eq "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LOG" "$QLOG"; then
  echo "asan.sh: FAILED (sanitizer report)" >&2
  exit 1
fi
if ! grep -Eq '^\[  PASSED  \] [1-9][0-9]* tests?\.' "$LOG" ||
   ! grep -Eq '100% tests passed, 0 tests failed out of [1-9]' "$QLOG"; then
  echo "asan.sh: FAILED (no test ran)" >&2
  exit 1
fi
echo "asan.sh: OK"
