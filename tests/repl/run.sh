#!/usr/bin/env bash
# Scripted REPL sessions. Each NAME.in in this folder is fed on stdin (not a terminal) to
#   twinq ARGS
# and its stdout and stderr together, followed by "[exit N]", must equal NAME.out.
#   ARGS      NAME.args if present (one line, split on blanks; may be empty: the built-in demo
#             fleet), else: repl --twins @DATA@/demo.ndjson
#   NAME.env  extra environment, VAR=value per line (test hooks)
#   NAME.sed  a sed -E script masking output that may legitimately change (applied last)
# Substitutions (in NAME.in and NAME.args, and back in the output): @DATA@ = tests/data,
# @HERE@ = this folder, @TMP@ = a scratch directory (the session's working directory). Times
# such as "1.234 ms" and "0.012 s" become "#.### ms" and "#.### s".
# usage: run.sh PATH/TO/twinq [NAME...]    UPDATE=1 run.sh ... rewrites the .out files
set -u

TWINQ=${1:?usage: run.sh PATH/TO/twinq [NAME...]}
shift
[[ "$TWINQ" == /* ]] || TWINQ="$PWD/$TWINQ"
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$(cd "$HERE/../data" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/twinq_repl.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export HOME="$WORK/home"  # never touch the real history
mkdir -p "$HOME"

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for f in "$HERE"/*.in; do names+=("$(basename "$f" .in)"); done
fi

failures=0
for name in "${names[@]}"; do
  in="$HERE/$name.in"
  expected="$HERE/$name.out"
  tmp="$WORK/$name"
  mkdir -p "$tmp"
  args="repl --twins @DATA@/demo.ndjson"
  [[ -f "$HERE/$name.args" ]] && args=$(head -n 1 "$HERE/$name.args")
  args=${args//@DATA@/$DATA}
  args=${args//@HERE@/$HERE}
  args=${args//@TMP@/$tmp}
  envs=()
  [[ -f "$HERE/$name.env" ]] && mapfile -t envs <"$HERE/$name.env"
  # shellcheck disable=SC2086  # ARGS is split on blanks on purpose
  sed -e "s|@DATA@|$DATA|g" -e "s|@HERE@|$HERE|g" -e "s|@TMP@|$tmp|g" "$in" |
    (cd "$tmp" && env "${envs[@]}" "$TWINQ" $args) >"$WORK/$name.raw" 2>&1
  rc=$?
  echo "[exit $rc]" >>"$WORK/$name.raw"
  sed -E -e "s|$tmp|@TMP@|g" -e "s|$DATA|@DATA@|g" -e "s|$HERE|@HERE@|g" \
    -e 's/[0-9]+\.[0-9]{3} (ms|s)\b/#.### \1/g' "$WORK/$name.raw" >"$WORK/$name.masked"
  if [[ -f "$HERE/$name.sed" ]]; then
    sed -E -f "$HERE/$name.sed" "$WORK/$name.masked" >"$WORK/$name.actual"
  else
    cp "$WORK/$name.masked" "$WORK/$name.actual"
  fi
  if [[ "${UPDATE:-}" == 1 ]]; then
    cp "$WORK/$name.actual" "$expected"
    echo "updated $name.out"
  elif ! diff -u "$expected" "$WORK/$name.actual" >"$WORK/$name.diff" 2>&1; then
    echo "FAIL: $name" >&2
    head -n 80 "$WORK/$name.diff" >&2
    failures=$((failures + 1))
  else
    echo "ok: $name"
  fi
done

if [[ $failures -gt 0 ]]; then
  echo "repl scripts: $failures of ${#names[@]} sessions failed" >&2
  exit 1
fi
echo "repl scripts: all ${#names[@]} sessions passed"
