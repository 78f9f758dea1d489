#!/usr/bin/env bash
# Builds the unit tests with ThreadSanitizer in build-tsan/ and runs the concurrency stress tests
# (*Stress*: readers taking snapshots while a writer applies batches, jobs and API calls side by
# side), the job manager's tests (JobManagerTest.*: a twin job's pipelined helper thread, method
# jobs' worker pools) and the splice tests (TwinSpliceFleetTest.*: splices and merges on two
# threads). Fails on any ThreadSanitizer report (halt_on_error=1), on a failing test, or when no
# test ran.
#
#   scripts/tsan.sh [BUILD_DIR]        (default: build-tsan)
#
# Environment: TSAN_CXX (default g++; the unit tests compile with clang++ 14 too: scripts/asan.sh
# builds them with it),
# JOBS (build parallelism, default 2).
#
# Notes. libroaring, libsimdjson, libfmt, gtest and the ANTLR runtime are Debian's uninstrumented
# shared libraries: TSan sees the calls into them but not their memory accesses, which is enough
# here (the index's own synchronisation is in instrumented code; the stress test itself catches
# races inside libroaring by their effects: wrong answers or crashes).
# libstdc++ 12's std::atomic<std::shared_ptr> (Fleet's published state) guards its pointer with a
# lock bit in the reference-count word, which TSan does not recognise as a lock, so a snapshot()
# followed by a publication is reported as a race on that pointer inside std::_Sp_atomic
# (google/sanitizers#1558; GCC 13 annotated it for TSan). The stress test marks the Fleet object's
# own bytes as a benign race (AnnotateBenignRaceSized), which is cheap and keeps every race on the
# published tables visible. As a safety net for other tests, a suppression for std::_Sp_atomic
# frames is passed too (slow: TSan symbolises each suppressed report), and with clang an
# ignorelist leaves the plain accesses of std::_Sp_atomic uninstrumented (its atomic operations,
# and so the happens-before they carry, are still seen).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${1:-build-tsan}
CXX=${TSAN_CXX:-g++}
JOBS=${JOBS:-2}
CXX_PATH=$(command -v "$CXX") || { echo "tsan.sh: no compiler $CXX" >&2; exit 2; }

mkdir -p "$BUILD_DIR"
# A build directory configured with another compiler cannot be reconfigured in place.
if [ -f "$BUILD_DIR/CMakeCache.txt" ] &&
   ! grep -Eqx "CMAKE_CXX_COMPILER:[A-Z]+=$CXX_PATH" "$BUILD_DIR/CMakeCache.txt"; then
  echo "tsan.sh: $BUILD_DIR was configured with another compiler; starting it afresh"
  rm -rf "$BUILD_DIR"
  mkdir -p "$BUILD_DIR"
fi

SUPP="$PWD/$BUILD_DIR/tsan.supp"
cat >"$SUPP" <<'EOF'
# libstdc++ 12 std::atomic<std::shared_ptr>: a lock bit TSan cannot see (see scripts/tsan.sh).
race:std::_Sp_atomic
EOF
FLAGS="-fsanitize=thread"
if "$CXX" --version | grep -q clang; then
  IGNORE="$PWD/$BUILD_DIR/tsan.ignore"
  cat >"$IGNORE" <<'EOF'
# libstdc++ 12 std::atomic<std::shared_ptr>: a lock bit TSan cannot see (see scripts/tsan.sh).
fun:*_Sp_atomic*
EOF
  FLAGS="$FLAGS -fsanitize-ignorelist=$IGNORE"
fi

echo "tsan.sh: configuring $BUILD_DIR ($CXX $FLAGS)"
if ! cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DCMAKE_CXX_COMPILER="$CXX_PATH" -DCMAKE_CXX_FLAGS="$FLAGS" \
     -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DTWINQ_FUZZ=OFF >"$BUILD_DIR/configure.log" 2>&1; then
  cat "$BUILD_DIR/configure.log" >&2
  echo "tsan.sh: configure failed" >&2
  exit 2
fi
echo "tsan.sh: building twinq_unit_tests"
cmake --build "$BUILD_DIR" -j"$JOBS" --target twinq_unit_tests

LOG="$BUILD_DIR/tsan-stress.log"
FILTER='*Stress*:JobManagerTest.*:TwinSpliceFleetTest.*'
echo "tsan.sh: running $FILTER (log: $LOG)"
status=0
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$SUPP ${TSAN_OPTIONS:-}" \
  "$BUILD_DIR/tests/twinq_unit_tests" --gtest_filter="$FILTER" --gtest_color=no >"$LOG" 2>&1 ||
  status=$?
cat "$LOG"
if [ "$status" -ne 0 ]; then
  echo "tsan.sh: FAILED (exit status $status)" >&2
  exit 1
fi
if grep -q "WARNING: ThreadSanitizer" "$LOG"; then
  echo "tsan.sh: FAILED (ThreadSanitizer report)" >&2
  exit 1
fi
if ! grep -Eq '^\[  PASSED  \] [1-9][0-9]* tests?\.' "$LOG"; then
  echo "tsan.sh: FAILED (no test ran)" >&2
  exit 1
fi
echo "tsan.sh: OK"
