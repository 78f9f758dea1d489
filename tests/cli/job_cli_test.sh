#!/usr/bin/env bash
# End-to-end test of `twinq job` (docs/jobs.md): twin-update and method jobs on a twins file and
# an index file, on a fake clock (--clock) so that every output is deterministic; the job state
# file (--jobs) between runs: get, list (filters, paging), devices, cancel, run; the updated
# fleet (-o); validation errors with their exit codes.
# usage: job_cli_test.sh PATH/TO/twinq
set -u

TWINQ=${1:?usage: job_cli_test.sh PATH/TO/twinq}
DATA=$(cd "$(dirname "$0")/../data" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/twinq_job_cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
CLOCK=2026-01-01T00:00:00Z

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

run() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  echo $? >"$WORK/$name.rc"
}

expect_rc() {
  local got
  got=$(cat "$WORK/$1.rc")
  if [[ "$got" != "$2" ]]; then
    fail "$1: exit code $got, expected $2; stderr: $(head -c 600 "$WORK/$1.err")"
    return 1
  fi
}

expect_out() {  # NAME TEXT: stdout contains TEXT
  if ! grep -qF -- "$2" "$WORK/$1.out"; then
    fail "$1: stdout does not contain '$2'; stdout: $(head -c 600 "$WORK/$1.out")"
  fi
}

expect_err() {  # NAME TEXT: stderr contains TEXT
  if ! grep -qF -- "$2" "$WORK/$1.err"; then
    fail "$1: stderr does not contain '$2'; stderr: $(head -c 600 "$WORK/$1.err")"
  fi
}

expect_same() {  # NAME FILE: stdout equals FILE
  if ! diff -u "$2" "$WORK/$1.out" >"$WORK/$1.diff"; then
    fail "$1: unexpected stdout: $(head -c 800 "$WORK/$1.diff")"
  fi
}

STATE="$WORK/state.json"

# ---- a twin-update job on a twins file, the fleet written back ----
run twin "$TWINQ" job schedule-twin-update --twins "$DATA/demo.ndjson" --clock $CLOCK \
  --jobs "$STATE" -o "$WORK/updated.ndjson" --id ring1 \
  --condition "tags.building = '43'" --patch '{"tags":{"ring":"canary"}}' --no-progress
expect_rc twin 0
cat >"$WORK/twin.expected" <<'JSON'
{"jobId":"ring1","queryCondition":"tags.building = '43'","createdTime":"2026-01-01T00:00:00.0000000Z","startTime":"2026-01-01T00:00:00.0000000Z","endTime":"2026-01-01T00:00:00.0000000Z","maxExecutionTimeInSeconds":3600,"type":"scheduleUpdateTwin","updateTwin":{"deviceId":null,"etag":"*","tags":{"ring":"canary"}},"status":"completed","deviceJobStatistics":{"deviceCount":4,"failedCount":0,"succeededCount":4,"runningCount":0,"pendingCount":0}}
JSON
expect_same twin "$WORK/twin.expected"
expect_err twin "job ring1 completed: 4 devices, 4 succeeded, 0 failed"
expect_err twin "targets resolved in"

run targets_before "$TWINQ" targets --twins "$DATA/demo.ndjson" "tags.building = '43'"
run targets_after "$TWINQ" targets --twins "$WORK/updated.ndjson" "tags.ring = 'canary'"
expect_rc targets_after 0
expect_same targets_after "$WORK/targets_before.out"
# Each patched twin's version went up by one (the index's patch path).
run version_before "$TWINQ" query --twins "$DATA/demo.ndjson" \
  "SELECT deviceId, version FROM devices WHERE tags.building = '43'"
run version_after "$TWINQ" query --twins "$WORK/updated.ndjson" \
  "SELECT deviceId, version FROM devices WHERE tags.ring = 'canary'"
perl -pe 's/"version":(\d+)/"\"version\":" . ($1 + 1)/e' "$WORK/version_before.out" >"$WORK/version.expected"
expect_same version_after "$WORK/version.expected"
if [[ $(grep -c deviceId "$WORK/version_after.out") != 4 ]]; then fail "version_after: not 4 twins"; fi

# ---- the state file: get, list, devices ----
run get "$TWINQ" job get --jobs "$STATE" ring1
expect_rc get 0
expect_same get "$WORK/twin.expected"
run get_missing "$TWINQ" job get --jobs "$STATE" nope
expect_rc get_missing 1
expect_err get_missing "JobNotFound: no job with id 'nope'"
run devices "$TWINQ" job devices --jobs "$STATE" "jobId = 'ring1' AND deviceId = 'dev-003'"
expect_rc devices 0
expect_out devices '{"deviceId":"dev-003","jobId":"ring1","jobType":"scheduleUpdateTwin","status":"completed"'
if [[ $(grep -c deviceId "$WORK/devices.out") != 1 ]]; then fail "devices: expected one record"; fi
run devices_bad "$TWINQ" job devices --jobs "$STATE" "SELECT deviceId FROM devices.jobs"
expect_rc devices_bad 2
expect_err devices_bad "E214"

# ---- a method job on an index file: offline devices fail with 404103 ----
run build "$TWINQ" index build --twins "$DATA/demo.ndjson" -o "$WORK/demo.twinq"
expect_rc build 0
run method "$TWINQ" job schedule-method --index "$WORK/demo.twinq" --clock $CLOCK --jobs "$STATE" \
  --id reboot1 --condition "tags.floor >= 2" --method reboot --payload '{"delay":5}' \
  --sim-offline 0.5 --sim-seed 3 --sim-latency 100-300 --concurrency 1 --no-progress
expect_rc method 4  # some devices were offline: the job failed
expect_out method '"status":"failed"'
expect_out method '"cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}'
run offline "$TWINQ" job devices --jobs "$STATE" "jobId = 'reboot1' AND status = 'failed'"
expect_rc offline 0
expect_out offline '"error":{"code":"DeviceNotOnline","errorCode":404103,"description":"Device not online."}'
run answered "$TWINQ" job devices --jobs "$STATE" \
  "jobId = 'reboot1' AND outcome.deviceMethodResponse.status = 200"
expect_out answered '"outcome":{"deviceMethodResponse":{"status":200,"payload":{"delay":5}}}'
N_FAILED=$(grep -c deviceId "$WORK/offline.out")
N_OK=$(grep -c deviceId "$WORK/answered.out")
expect_out method "\"failedCount\":$N_FAILED,\"succeededCount\":$N_OK,"
if [[ $N_FAILED -eq 0 || $N_OK -eq 0 ]]; then fail "method: expected both outcomes"; fi

# A silent device: 504101 after responseTimeoutInSeconds (virtual time: 5 s later).
run silent "$TWINQ" job schedule-method --twins "$DATA/demo.ndjson" --clock $CLOCK \
  --id ping --condition "deviceId = 'dev-001'" --method ping --response-timeout 5 \
  --sim-silent 1 --no-progress
expect_rc silent 4
expect_out silent '"endTime":"2026-01-01T00:00:05.0000000Z"'

# ---- list: filters and paging ----
run list "$TWINQ" job list --jobs "$STATE"
expect_rc list 0
if [[ $(grep -c jobId "$WORK/list.out") != 2 ]]; then fail "list: expected 2 jobs"; fi
run list_type "$TWINQ" job list --jobs "$STATE" --type scheduleDeviceMethod
expect_out list_type '"jobId":"reboot1"'
if grep -q ring1 "$WORK/list_type.out"; then fail "list_type: the twin job is listed"; fi
run list_status "$TWINQ" job list --jobs "$STATE" --status completed
expect_out list_status '"jobId":"ring1"'
run list_old "$TWINQ" job list --jobs "$STATE" --type scheduleTwinUpdate
expect_rc list_old 1
expect_err list_old "did you mean 'scheduleUpdateTwin'?"
run page1 "$TWINQ" job list --jobs "$STATE" --page-size 1
expect_out page1 '"jobId":"ring1"'
TOKEN=$(sed -n 's/^continuation: //p' "$WORK/page1.err")
if [[ -z "$TOKEN" ]]; then fail "page1: no continuation token"; fi
run page2 "$TWINQ" job list --jobs "$STATE" --page-size 1 --continuation "$TOKEN"
expect_out page2 '"jobId":"reboot1"'
if grep -q continuation "$WORK/page2.err"; then fail "page2: a token after the last page"; fi

# ---- a job for later: scheduled, run when due, or cancelled ----
run later "$TWINQ" job schedule-twin-update --twins "$DATA/demo.ndjson" --clock $CLOCK \
  --jobs "$STATE" --id later1 --condition "*" --patch '{"tags":{"wave":2}}' --start +3600
expect_rc later 0
expect_out later '"status":"scheduled"'
expect_err later "is scheduled for 2026-01-01T01:00:00.0000000Z"
run later_nostate "$TWINQ" job schedule-twin-update --twins "$DATA/demo.ndjson" --clock $CLOCK \
  --id later2 --condition "*" --patch '{"tags":{"wave":2}}' --start +3600
expect_rc later_nostate 1
expect_err later_nostate "keep it with --jobs"
run early "$TWINQ" job run --twins "$DATA/demo.ndjson" --clock $CLOCK --jobs "$STATE"
expect_rc early 0
expect_err early "no job is due"
cp "$STATE" "$WORK/state_copy.json"
run due "$TWINQ" job run --twins "$DATA/demo.ndjson" --clock 2026-01-01T01:00:00Z \
  --jobs "$STATE" -o "$WORK/wave.twinq" --progress
expect_rc due 0
expect_out due '"jobId":"later1"'
expect_out due '"status":"completed"'
expect_err due "later1 [##############################] 100.0%"
run wave "$TWINQ" query --index "$WORK/wave.twinq" "SELECT COUNT() AS n FROM devices WHERE tags.wave = 2"
run all "$TWINQ" query --index "$WORK/wave.twinq" "SELECT COUNT() AS n FROM devices"
expect_same wave "$WORK/all.out"
run cancel "$TWINQ" job cancel --jobs "$WORK/state_copy.json" later1
expect_rc cancel 0
expect_out cancel '"status":"cancelled"'
run cancel_again "$TWINQ" job cancel --jobs "$WORK/state_copy.json" later1
expect_rc cancel_again 1
expect_err cancel_again "InvalidOperation: job 'later1' is already cancelled"
run cancelled_list "$TWINQ" job list --jobs "$WORK/state_copy.json" --status cancelled
expect_out cancelled_list '"jobId":"later1"'

# ---- requests refused ----
run dup "$TWINQ" job schedule-twin-update --twins "$DATA/demo.ndjson" --jobs "$STATE" \
  --id ring1 --condition "*" --patch '{"tags":{"a":"b"}}'
expect_rc dup 2
expect_err dup "JobAlreadyExists: a job with id 'ring1' already exists"
run old_type "$TWINQ" job schedule --twins "$DATA/demo.ndjson" --request \
  '{"jobId":"x","type":"scheduleTwinUpdate","updateTwin":{"etag":"*","tags":{"a":"b"}},"queryCondition":"*","startTime":"2026-01-01T00:00:00Z","maxExecutionTimeInSeconds":60}'
expect_rc old_type 2
expect_err old_type "'scheduleTwinUpdate' is an old spelling that is not accepted; use 'scheduleUpdateTwin'"
run bad_cond "$TWINQ" job schedule-twin-update --twins "$DATA/demo.ndjson" --id c1 \
  --condition "tags.floor > 2 AND STARTWITH(deviceId, 'a')" --patch '{"tags":{"a":"b"}}'
expect_rc bad_cond 2
expect_err bad_cond "error[E200] <queryCondition>:1:20: unknown function 'STARTWITH'"
expect_err bad_cond " |                    ^~~~~~~~~"
run charset "$TWINQ" job schedule-twin-update --twins "$DATA/demo.ndjson" --clock $CLOCK --id c2 \
  --condition "deviceId = 'dev-001'" --patch '{"tags":{"site":"b43:f2"}}'
expect_rc charset 2
expect_err charset "updateTwin.tags.site"
expect_err charset "':'"
run charset_off "$TWINQ" job schedule-twin-update --twins "$DATA/demo.ndjson" --clock $CLOCK \
  --id c2 --condition "deviceId = 'dev-001'" --patch '{"tags":{"site":"b43:f2"}}' \
  --no-charset-rule
expect_rc charset_off 0
run bad_time "$TWINQ" job schedule-method --twins "$DATA/demo.ndjson" --id t1 --condition "*" \
  --method m --start 2026-02-30T00:00:00Z
expect_rc bad_time 2
expect_err bad_time "day 30 is out of range for 2026-02"
run bad_timeout "$TWINQ" job schedule-method --twins "$DATA/demo.ndjson" --id t1 --condition "*" \
  --method m --response-timeout 301
expect_rc bad_timeout 2
expect_err bad_timeout "responseTimeoutInSeconds must be an integer from 5 to 300, not 301"
run no_state "$TWINQ" job list
expect_rc no_state 1
expect_err no_state "needs --jobs STATE"
run no_fleet "$TWINQ" job schedule-method --id t1 --condition "*" --method m
expect_rc no_fleet 1
run bad_sub "$TWINQ" job frobnicate
expect_rc bad_sub 1
expect_err bad_sub "unknown subcommand 'frobnicate'"

if [[ $FAILURES -ne 0 ]]; then
  echo "$FAILURES failure(s)" >&2
  exit 1
fi
echo "job_cli_test: all checks passed"
