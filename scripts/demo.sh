#!/usr/bin/env bash
# A short tour of twinq over the bundled example fleet (tests/data/demo.ndjson).
set -uo pipefail
cd "$(dirname "$0")/.."
T=build/tools/twinq
F=tests/data/demo.ndjson

run() {
  local shown="" a
  for a in "$@"; do
    case "$a" in
      *[[:space:]\'\$\*]*) a=${a//\"/\\\"}; shown+=" \"${a//\$/\\\$}\"" ;;
      *) shown+=" $a" ;;
    esac
  done
  echo
  echo "\$ twinq${shown}"
  "$T" "$@" 2>&1
}

echo "twinq demo: 12 device twins and 9 module twins in $F"
run targets --twins "$F" "tags.building = '43' AND tags.floor >= 2"
run targets --twins "$F" "FROM devices.modules WHERE moduleId = '\$edgeAgent'"
run query --twins "$F" "SELECT deviceId, properties.reported.batteryLevel AS battery FROM devices WHERE properties.reported.batteryLevel < 40"
run query --twins "$F" "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status"
run parse --condition "NOT tags.floor = 1 AND deviceId IN ['dev-001', 'dev-002']"
run targets --twins "$F" "STARTWITH(deviceId, 'dev-00')"
echo
echo "More: build/tools/twinq --help"
