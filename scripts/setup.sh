#!/usr/bin/env bash
# Installs every build and test dependency of twinq from Debian 12 packages.
# Quick when everything is already installed: apt is only touched when a package is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build git pkg-config
  antlr4 default-jre-headless libantlr4-runtime-dev uuid-dev
  libsimdjson-dev libfmt-dev libgtest-dev libgmock-dev
  clang libclang-rt-14-dev clang-format
  libbenchmark-dev libedit-dev libroaring-dev libjemalloc-dev
  python3 expect
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
