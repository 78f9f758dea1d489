#!/usr/bin/env bash
# Installs the current build into a temporary prefix (cmake --install), then proves that a
# consumer needs nothing but the installed package:
#   1. the layout: headers, libtwinq.a, the CMake package, twinq.pc, the twinq command;
#   2. the public headers include nothing but <twinq/...> and the standard library;
#   3. examples/ configured and built out of tree with find_package(twinq) only
#      (CMAKE_PREFIX_PATH=prefix), each example run on tests/data/demo.ndjson and its output
#      checked (against the installed twinq command where it can be);
#   4. a one-file compile with pkg-config --cflags --libs twinq.
#
#   tests/install/install_test.sh BUILD_DIR [SOURCE_DIR]
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinq-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix
FLEET=$SRC/tests/data/demo.ndjson
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

echo "== cmake --install $BUILD --prefix $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" || { cat "$TMP/install.log"; fail "cmake --install"; }

# 1. Layout.
LIB=$(find "$PREFIX" -name libtwinq.a | head -1)
[ -n "$LIB" ] || fail "no libtwinq.a installed"
LIBDIR=$(dirname "$LIB")
for f in include/twinq/twinq.h include/twinq/status.h include/twinq/fleet.h \
         include/twinq/condition.h include/twinq/query.h include/twinq/jobs.h bin/twinq; do
  [ -e "$PREFIX/$f" ] || fail "missing $f"
done
for f in cmake/twinq/twinqConfig.cmake cmake/twinq/twinqConfigVersion.cmake \
         cmake/twinq/twinqTargets.cmake pkgconfig/twinq.pc; do
  [ -e "$LIBDIR/$f" ] || fail "missing $LIBDIR/$f"
done
# Only the public headers are installed.
extra=$(find "$PREFIX/include" -type f ! -path "$PREFIX/include/twinq/*" | head -1)
[ -z "$extra" ] || fail "unexpected installed header $extra"

# 2. Public headers: <twinq/...>, "twinq/..." or standard headers only.
bad=$(grep -hE '^\s*#\s*include' "$PREFIX"/include/twinq/*.h |
      grep -vE '#\s*include\s*[<"]twinq/' |
      grep -vE '#\s*include\s*<(cstddef|cstdint|cstdio|functional|memory|optional|string|string_view|type_traits|utility|vector)>' || true)
[ -z "$bad" ] || fail "public headers include non-public headers: $bad"
if grep -lE 'antlr|simdjson|roaring|fmt::|index::|check::|vm::' "$PREFIX"/include/twinq/*.h; then
  fail "a public header names an internal or third-party type"
fi

# The installed command works.
"$PREFIX/bin/twinq" targets --twins "$FLEET" "tags.building = '43'" >"$TMP/tool.out"
[ "$(wc -l <"$TMP/tool.out")" -eq 4 ] || fail "installed twinq targets: $(cat "$TMP/tool.out")"

# 3. The examples, out of tree, with find_package(twinq).
echo "== examples against the installed package"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S "$SRC/examples" -B "$TMP/examples" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$PREFIX" >"$TMP/configure.log" 2>&1 ||
  { cat "$TMP/configure.log"; fail "configuring examples/"; }
cmake --build "$TMP/examples" -j2 >"$TMP/build.log" 2>&1 ||
  { cat "$TMP/build.log"; fail "building examples/"; }
EX=$TMP/examples

# resolve_targets: the ids the installed twinq command gives, after a count line.
COND="tags.building = '43' AND tags.floor >= 2"
"$EX/resolve_targets" "$FLEET" "$COND" >"$TMP/resolve.out"
{ echo "2 device twins match"; "$PREFIX/bin/twinq" targets --twins "$FLEET" "$COND"; } >"$TMP/resolve.want"
diff -u "$TMP/resolve.want" "$TMP/resolve.out" || fail "resolve_targets output"
printf '2 device twins match\ndev-003\ndev-006\n' | diff -u - "$TMP/resolve.out" || fail "resolve_targets ids"
MCOND="FROM devices.modules WHERE moduleId = '\$edgeAgent'"
"$EX/resolve_targets" "$FLEET" "$MCOND" | tail -n +2 >"$TMP/modules.out"
"$PREFIX/bin/twinq" targets --twins "$FLEET" "$MCOND" | diff -u - "$TMP/modules.out" ||
  fail "resolve_targets module ids"
# A bad condition: diagnostics with a caret, exit 2.
set +e
"$EX/resolve_targets" "$FLEET" "STARTWITH(deviceId, 'dev-00')" >/dev/null 2>"$TMP/bad.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "resolve_targets on a bad condition: exit $rc"
cat >"$TMP/bad.want" <<'WANT'
error[E200] <condition>:1:1: unknown function 'STARTWITH'; did you mean 'STARTSWITH'?
 | STARTWITH(deviceId, 'dev-00')
 | ^~~~~~~~~
WANT
diff -u "$TMP/bad.want" "$TMP/bad.err" || fail "resolve_targets diagnostics"

# patch_and_query: nothing before, the patched device after.
"$EX/patch_and_query" "$FLEET" dev-002 >"$TMP/patch.out"
grep -q '^before the patch (version [0-9]*):$' "$TMP/patch.out" || fail "patch_and_query: $(cat "$TMP/patch.out")"
sed -n '2p' "$TMP/patch.out" | grep -q '^after the patch' || fail "patch_and_query saw the patch before it"
[ "$(sed -n '3p' "$TMP/patch.out")" = '  {"deviceId":"dev-002","ring":"canary"}' ] ||
  fail "patch_and_query after: $(cat "$TMP/patch.out")"
[ "$(wc -l <"$TMP/patch.out")" -eq 3 ] || fail "patch_and_query: $(cat "$TMP/patch.out")"
set +e
"$EX/patch_and_query" "$FLEET" no-such-device >/dev/null 2>"$TMP/patch.err"
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q 'not_found' "$TMP/patch.err" || fail "patch_and_query on a missing twin: $rc $(cat "$TMP/patch.err")"

# schedule_job: device count from the installed command; ids ending in 1 fail (offline).
JCOND="tags.location.region = 'US'"
"$PREFIX/bin/twinq" targets --twins "$FLEET" "$JCOND" >"$TMP/job.ids"
N=$(wc -l <"$TMP/job.ids")
F=$(grep -c '1$' "$TMP/job.ids" || true)
[ "$N" -gt 0 ] && [ "$F" -gt 0 ] || fail "demo fleet changed: $N targets, $F ending in 1"
timeout 120 "$EX/schedule_job" "$FLEET" "$JCOND" >"$TMP/job.out"
cat >"$TMP/job.want" <<WANT
scheduled reboot-1: queued
job reboot-1 failed: $N devices, $((N - F)) succeeded, $F failed, 0 running, 0 pending
failed devices: $F
WANT
diff -u "$TMP/job.want" "$TMP/job.out" || fail "schedule_job output"

# 4. pkg-config, one-file compile.
if command -v pkg-config >/dev/null; then
  echo "== pkg-config"
  export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
  [ "$(pkg-config --modversion twinq)" = "0.1.0" ] || fail "pkg-config --modversion"
  # shellcheck disable=SC2046
  g++ -std=c++17 -O1 "$SRC/examples/resolve_targets.cc" -o "$TMP/resolve_pc" \
      $(pkg-config --cflags --libs twinq) || fail "pkg-config compile"
  "$TMP/resolve_pc" "$FLEET" "$COND" | diff -u "$TMP/resolve.want" - || fail "pkg-config build output"
else
  echo "install_test: pkg-config not installed; skipping its check" >&2
fi
echo "install_test: OK"
