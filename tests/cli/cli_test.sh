#!/usr/bin/env bash
# End-to-end test of the twinq command: gen -> index build / info -> query and targets give the
# same output with --twins and --index; corrupted, truncated, foreign and missing index files are
# refused with exit 1 and a clear message.
# usage: cli_test.sh PATH/TO/twinq
set -u

TWINQ=${1:?usage: cli_test.sh PATH/TO/twinq}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/twinq_cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILURES=0

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

# run NAME CMD...: runs CMD, keeping stdout, stderr and the exit code in $WORK/NAME.{out,err,rc}.
run() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  echo $? >"$WORK/$name.rc"
}

# expect_rc NAME RC: the exit code of run NAME was RC.
expect_rc() {
  local got
  got=$(cat "$WORK/$1.rc")
  if [[ "$got" != "$2" ]]; then
    fail "$1: exit code $got, expected $2; stderr: $(head -c 400 "$WORK/$1.err")"
    return 1
  fi
}

# expect_err NAME TEXT: stderr of run NAME contains TEXT (fixed string).
expect_err() {
  if ! grep -qF -- "$2" "$WORK/$1.err"; then
    fail "$1: stderr does not contain '$2'; stderr: $(head -c 400 "$WORK/$1.err")"
  fi
}

# flip_byte FILE OFFSET: inverts the bits of one byte in place.
flip_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\$(printf %03o $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ---- a fleet and its index ----
run gen "$TWINQ" gen --devices 400 --seed 7 -o "$WORK/fleet.ndjson"
expect_rc gen 0 || { echo "cannot generate a fleet" >&2; exit 1; }

run build "$TWINQ" index build --twins "$WORK/fleet.ndjson" -o "$WORK/fleet.twinq"
expect_rc build 0 || { echo "cannot build an index" >&2; exit 1; }
expect_err build "400 devices"
expect_err build "columns"
expect_err build "bytes"
if [[ $(wc -l <"$WORK/build.err") != 1 ]]; then fail "build: summary is not one line"; fi
if [[ -e "$WORK/fleet.twinq.tmp" ]]; then fail "build: left a temporary file behind"; fi

run info "$TWINQ" index info --index "$WORK/fleet.twinq"
expect_rc info 0
for text in "400 devices" "format version 3, fleet version" "devices: rows 400, live 400" \
            "modules: rows" "index memory" "document memory"; do
  grep -qF -- "$text" "$WORK/info.out" || fail "info: stdout does not contain '$text'"
done

# ---- --twins and --index give identical output ----
QUERIES=(
  "SELECT * FROM devices WHERE tags.floor > 15"
  "SELECT deviceId, tags.building AS b FROM devices WHERE STARTSWITH(tags.building, '1')"
  "SELECT * FROM devices.modules WHERE moduleId = '\$edgeHub'"
  "SELECT tags.region AS region, COUNT() AS n FROM devices GROUP BY tags.region"
  "SELECT COUNT() AS n FROM devices WHERE properties.reported.batteryLevel < 20"
)
i=0
for q in "${QUERIES[@]}"; do
  i=$((i + 1))
  run "q${i}_twins" "$TWINQ" query --twins "$WORK/fleet.ndjson" "$q"
  run "q${i}_index" "$TWINQ" query --index "$WORK/fleet.twinq" "$q"
  expect_rc "q${i}_twins" 0
  expect_rc "q${i}_index" 0
  cmp -s "$WORK/q${i}_twins.out" "$WORK/q${i}_index.out" || fail "query differs: $q"
  [[ $(wc -c <"$WORK/q${i}_twins.out") -gt 10 ]] || fail "query result is empty: $q"
done

# Paging: the same page and the same continuation token.
run page_twins "$TWINQ" query --twins "$WORK/fleet.ndjson" --page-size 7 "SELECT * FROM devices"
run page_index "$TWINQ" query --index "$WORK/fleet.twinq" --page-size 7 "SELECT * FROM devices"
expect_rc page_twins 0
expect_rc page_index 0
cmp -s "$WORK/page_twins.out" "$WORK/page_index.out" || fail "paged query differs"
cmp -s "$WORK/page_twins.err" "$WORK/page_index.err" || fail "continuation token differs"
expect_err page_index "continuation: "

CONDITIONS=(
  "*"
  "tags.building = '1' AND tags.floor >= 2"
  "NOT (tags.environment = 'production')"
  "FROM devices.modules WHERE properties.reported.status = 'running'"
)
i=0
for c in "${CONDITIONS[@]}"; do
  i=$((i + 1))
  run "t${i}_twins" "$TWINQ" targets --twins "$WORK/fleet.ndjson" "$c"
  run "t${i}_index" "$TWINQ" targets --index "$WORK/fleet.twinq" "$c"
  expect_rc "t${i}_twins" 0
  expect_rc "t${i}_index" 0
  cmp -s "$WORK/t${i}_twins.out" "$WORK/t${i}_index.out" || fail "targets differ: $c"
done
[[ $(wc -l <"$WORK/t1_index.out") == 400 ]] || fail "targets '*' does not list 400 devices"

# ---- option errors ----
run both "$TWINQ" targets --twins "$WORK/fleet.ndjson" --index "$WORK/fleet.twinq" "*"
expect_rc both 1
[[ -s "$WORK/both.out" ]] && fail "both: printed results anyway"
run no_source "$TWINQ" targets "*"
expect_rc no_source 1
run build_no_out "$TWINQ" index build --twins "$WORK/fleet.ndjson"
expect_rc build_no_out 1 && expect_err build_no_out "-o"
run no_sub "$TWINQ" index
expect_rc no_sub 1
run bad_sub "$TWINQ" index frobnicate
expect_rc bad_sub 1 && expect_err bad_sub "unknown subcommand 'frobnicate'"
run info_bad_arg "$TWINQ" index info --index "$WORK/fleet.twinq" --bogus
expect_rc info_bad_arg 1 && expect_err info_bad_arg "unexpected argument '--bogus'"
run help "$TWINQ" index --help
expect_rc help 0

# ---- bad inputs to index build ----
run build_missing "$TWINQ" index build --twins "$WORK/nope.ndjson" -o "$WORK/x.twinq"
expect_rc build_missing 1 && expect_err build_missing "nope.ndjson: cannot read"
printf '{"deviceId":"a"}\n{"deviceId":}\n' >"$WORK/bad.ndjson"
run build_malformed "$TWINQ" index build --twins "$WORK/bad.ndjson" -o "$WORK/x.twinq"
expect_rc build_malformed 1 && expect_err build_malformed "bad.ndjson:2"
[[ -e "$WORK/x.twinq" ]] && fail "build_malformed: wrote an index anyway"
run build_unwritable "$TWINQ" index build --twins "$WORK/fleet.ndjson" -o "$WORK/no/such/dir/x.twinq"
expect_rc build_unwritable 1 && expect_err build_unwritable "cannot write"
# index build keeps the documents in its input until it has saved: an input that is the output
# itself, or the temporary file the save writes first, must still give the same index.
cp "$WORK/fleet.ndjson" "$WORK/self"
run build_self "$TWINQ" index build --twins "$WORK/self" -o "$WORK/self"
expect_rc build_self 0
cmp -s "$WORK/self" "$WORK/fleet.twinq" || fail "build_self: the index differs from fleet.twinq"
cp "$WORK/fleet.ndjson" "$WORK/other.twinq.tmp"
run build_tmp "$TWINQ" index build --twins "$WORK/other.twinq.tmp" -o "$WORK/other.twinq"
expect_rc build_tmp 0
cmp -s "$WORK/other.twinq" "$WORK/fleet.twinq" || fail "build_tmp: the index differs from fleet.twinq"

# ---- corrupted, truncated, foreign and missing index files ----
SIZE=$(wc -c <"$WORK/fleet.twinq")

# check_refused NAME FILE TEXT: query, targets and index info all exit 1 naming the problem.
check_refused() {
  local name=$1 file=$2 text=$3
  run "${name}_query" "$TWINQ" query --index "$file" "SELECT * FROM devices"
  expect_rc "${name}_query" 1 && expect_err "${name}_query" "$text"
  expect_err "${name}_query" "twinq query: $file"
  [[ -s "$WORK/${name}_query.out" ]] && fail "${name}_query: printed results anyway"
  run "${name}_targets" "$TWINQ" targets --index "$file" "*"
  expect_rc "${name}_targets" 1 && expect_err "${name}_targets" "$text"
  [[ -s "$WORK/${name}_targets.out" ]] && fail "${name}_targets: printed results anyway"
  run "${name}_info" "$TWINQ" index info --index "$file"
  expect_rc "${name}_info" 1 && expect_err "${name}_info" "$text"
}

head -c $((SIZE - 13)) "$WORK/fleet.twinq" >"$WORK/truncated.twinq"
check_refused truncated "$WORK/truncated.twinq" "truncated"

head -c 20 "$WORK/fleet.twinq" >"$WORK/header_only.twinq"
check_refused header_only "$WORK/header_only.twinq" "not a twinq index file"

cp "$WORK/fleet.twinq" "$WORK/flipped.twinq"
flip_byte "$WORK/flipped.twinq" $((SIZE / 2))
check_refused flipped "$WORK/flipped.twinq" "checksum mismatch: the file is corrupted"

cp "$WORK/fleet.twinq" "$WORK/flipped_last.twinq"
flip_byte "$WORK/flipped_last.twinq" $((SIZE - 1))
check_refused flipped_last "$WORK/flipped_last.twinq" "checksum mismatch"

cp "$WORK/fleet.twinq" "$WORK/flipped_magic.twinq"
flip_byte "$WORK/flipped_magic.twinq" 0
check_refused flipped_magic "$WORK/flipped_magic.twinq" "not a twinq index file"

cp "$WORK/fleet.twinq" "$WORK/trailing.twinq"
printf 'x' >>"$WORK/trailing.twinq"
check_refused trailing "$WORK/trailing.twinq" "trailing bytes"

: >"$WORK/empty.twinq"
check_refused empty "$WORK/empty.twinq" "not a twinq index file"

check_refused ndjson "$WORK/fleet.ndjson" "not a twinq index file"

check_refused missing "$WORK/missing.twinq" "cannot read"

mkdir "$WORK/dir.twinq"
check_refused directory "$WORK/dir.twinq" "Is a directory"

# The good file still works after all that.
run final "$TWINQ" targets --index "$WORK/fleet.twinq" "*"
expect_rc final 0

if [[ $FAILURES -ne 0 ]]; then
  echo "$FAILURES failure(s)" >&2
  exit 1
fi
echo "cli_test: all checks passed"
