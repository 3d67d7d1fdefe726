#!/bin/bash
# The daemon runs schedules: saving schedule.json does not start a run, the
# next slot does, status shows the next scheduled time, and a disabled
# schedule keeps its settings without running.
. "$(dirname "$0")/lib.sh"

ts_mount
make_sources
make_integration timed
I=$MNT/integrations/timed
nruns() { sq "$STATE" "select count(*) from runs"; }

# save far from a slot (:00, :30), so that none falls in the next 6 s
for _ in $(seq 1 300); do
	s=$(($(date +%s) % 30))
	[ "$s" -ge 2 ] && [ "$s" -le 20 ] && break
	sleep 0.1
done
echo '{"enabled": true, "every": "30s"}' > "$I/schedule.json" || fail "save schedule: $(last_error)"
sleep 6 # a scheduler pass
expect_eq "$(nruns)" "0" "saving a schedule starts no run"
next=$(json_get "$I/status" .next_run)
expect_match "$next" '^20[0-9][0-9]-.*T.*:(00|30)Z$' "status shows the next slot"
# the slot comes (at most 30 s away, aligned to :00 and :30)
for _ in $(seq 1 80); do [ "$(nruns)" -ge 1 ] && break; sleep 0.5; done
expect_eq "$(nruns)" "1" "one run at the slot"
for _ in $(seq 1 60); do [ "$(json_get "$I/status" .state)" = idle ] && break; sleep 0.2; done
expect_eq "$(json_get "$I/runs/latest.json" .result)" "succeeded" "the scheduled run"
expect_eq "$(sq "$WORK/wh.db" "select count(*) from people")" "3" "it synced"
ok "every 30s: one run at the next slot ($next)"

echo '{"enabled": false, "every": "30s"}' > "$I/schedule.json" || fail "disable"
expect_eq "$(json_get "$I/schedule.json" .every)" "30s" "settings kept when disabled"
n=$(nruns)
sleep 6
[ "$(json_get "$I/status" '.next_run // "none"')" = none ] || fail "a disabled schedule has a next run"
expect_fail 'Bad message' tt bash -c "echo '{\"every\": \"15x\"}' > '$I/schedule.json'"
expect_match "$(last_error)" 'schedule.json: every: ' "bad schedule reason"
expect_eq "$(nruns)" "$n" "no run while disabled"
ok "disabled schedules do not run; bad ones are refused"
