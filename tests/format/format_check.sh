#!/usr/bin/env bash
# The clang-format check (ctest `clang_format`): every C++ file of the project (not the build
# trees, not ANTLR's generated code, which is written into the build tree) is formatted as
# .clang-format says (Google base). Prints the offending files and the command that fixes them.
# Usage: format_check.sh SOURCE_DIR
set -uo pipefail
cd "${1:?usage: format_check.sh SOURCE_DIR}" || exit 2
if ! command -v clang-format >/dev/null; then
  echo "format_check: clang-format is not installed (scripts/setup.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(find api bench cmake engine examples fuzz include index jobs tests tools \
                       \( -name '*.cc' -o -name '*.h' \) -type f | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "format_check: no files found under $PWD" >&2
  exit 1
fi
# One run over every file; each violation is reported as "FILE:LINE:COL: error: ...".
out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1)
status=$?
mapfile -t bad < <(printf '%s\n' "$out" | grep -o '^[^:]*:[0-9]*:[0-9]*: error' | cut -d: -f1 |
                    sort -u)
if [ $status -ne 0 ] && [ ${#bad[@]} -eq 0 ]; then
  printf '%s\n' "$out" >&2
  echo "format_check: clang-format failed" >&2
  exit 1
fi
if [ ${#bad[@]} -ne 0 ]; then
  echo "format_check: ${#bad[@]} of ${#files[@]} files are not clang-formatted:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "format_check: ${#files[@]} files clang-formatted"
