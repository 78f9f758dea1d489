#!/usr/bin/env bash
# Builds every fuzzer with clang + libFuzzer + ASan/UBSan in build-fuzz/ and runs each one.
#
#   scripts/fuzz.sh [SECONDS] [LIBFUZZER_FLAG...]
#
# SECONDS (default 60) is the time per fuzzer. Extra arguments go to every fuzzer after the
# default flags (the last occurrence of a flag wins), e.g. scripts/fuzz.sh 300 -max_len=9000.
# They must be flags: a directory there would become the corpus libFuzzer writes into.
# Each build-fuzz/fuzz/fuzz_<name> binary is found generically and runs on a fresh scratch copy
# of its seed corpus fuzz/corpus/<name>/ (if that folder exists); new units stay in the scratch
# copy, build-fuzz/corpus/<name>/. The long limit-testing inputs of tests/regress/<name>/ are not
# seeds (they slow libFuzzer about tenfold); ctest replays them. Crash, leak, timeout and OOM
# inputs go to build-fuzz/artifacts/<fuzzer>/, logs to build-fuzz/logs/<fuzzer>.log.
# Prints one summary line per fuzzer. Exits 1 if any fuzzer failed, 2 on a usage or build error.
# The build is configured with the tests too (none is built here): scripts/asan.sh build-fuzz
# then compiles only the tests against the same instrumented libraries.
# Environment: JOBS (build parallelism, default 2).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
SECONDS_PER_FUZZER=${1:-60}
shift || true
EXTRA_FLAGS=("$@")
BUILD=$ROOT/build-fuzz
JOBS=${JOBS:-2}

bad_flag=0
for f in "${EXTRA_FLAGS[@]}"; do [[ $f == -* ]] || bad_flag=1; done
if ! [[ $SECONDS_PER_FUZZER =~ ^[0-9]+$ ]] || [ $bad_flag -ne 0 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [LIBFUZZER_FLAG...]" >&2
  exit 2
fi

echo "fuzz.sh: configuring and building $BUILD (clang, libFuzzer, ASan+UBSan)"
mkdir -p "$BUILD"
if ! CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DTWINQ_LIBFUZZER=ON -DTWINQ_TESTS=ON \
     -DTWINQ_TOOLS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1; then
  cat "$BUILD/configure.log" >&2
  echo "fuzz.sh: configure failed" >&2
  exit 2
fi
if ! cmake --build "$BUILD" --target all_fuzzers -- -j"$JOBS"; then
  echo "fuzz.sh: build failed" >&2
  exit 2
fi

mapfile -t FUZZERS < <(find "$BUILD/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x | sort)
if [ ${#FUZZERS[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzzers found in $BUILD/fuzz" >&2
  exit 2
fi

mkdir -p "$BUILD/logs" "$BUILD/artifacts" "$BUILD/corpus"
# UBSan findings already abort (-fno-sanitize-recover); ask for their stack traces.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# Last value of a libFuzzer final stat, e.g. stat::number_of_executed_units.
final_stat() { grep -a "^stat::$1:" "$2" | tail -1 | awk '{print $2}'; }

failed=0
summary=()
for bin in "${FUZZERS[@]}"; do
  fuzzer=$(basename "$bin")
  short=${fuzzer#fuzz_}
  log=$BUILD/logs/$fuzzer.log
  artifacts=$BUILD/artifacts/$fuzzer
  corpus=$BUILD/corpus/$short
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "fuzz/corpus/$short" ]; then cp -R "fuzz/corpus/$short/." "$corpus/"; fi
  echo "fuzz.sh: $fuzzer for ${SECONDS_PER_FUZZER}s ($(find "$corpus" -type f | wc -l) seeds," \
       "log $log)"
  "$bin" -max_total_time="$SECONDS_PER_FUZZER" -dict=fuzz/twinq.dict -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${EXTRA_FLAGS[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  found=$(find "$artifacts" -type f | sort)
  execs=$(final_stat number_of_executed_units "$log")
  rate=$(final_stat average_exec_per_sec "$log")
  rss=$(final_stat peak_rss_mb "$log")
  cov=$(grep -a -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  if [ $rc -eq 0 ] && [ -z "$found" ] && ! grep -a -q -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    result="ok"
  else
    result="FAILED (exit $rc)"
    failed=1
    reason=$(grep -a -m1 -E '^==[0-9]+==ERROR|runtime error:|^fuzz_[a-z_]+: |ERROR: libFuzzer' "$log")
    [ -n "$reason" ] && result+=": $reason"
    [ -n "$found" ] && result+="; artifacts: $(echo "$found" | tr '\n' ' ')"
  fi
  line="$fuzzer: ${execs:-?} execs, ${rate:-?} exec/s, cov ${cov:-?}, peak RSS ${rss:-?} MB, $result"
  summary+=("$line")
  echo "$line"
done

echo "fuzz.sh: summary (${SECONDS_PER_FUZZER}s each)"
printf '  %s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
  echo "fuzz.sh: FAILED; see build-fuzz/logs/ and fuzz/README.md (minimise, add to tests/regress/)" >&2
  exit 1
fi
echo "fuzz.sh: all fuzzers clean"
