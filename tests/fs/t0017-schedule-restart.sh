#!/bin/bash
# A schedule survives a daemon restart, and the restart makes at most one
# catch-up run for all the slots missed while the daemon was down (not a
# burst); then the normal rhythm goes on.  A restart that missed no slot
# makes no run.
. "$(dirname "$0")/lib.sh"

sqs() { sqlite3 -batch -noheader -cmd '.timeout 5000' "$STATE" "$1"; }
runs_since() {
	sqs "select count(*) from runs r join integrations i on i.id = r.integration_id
	     where i.name = 'timed' and strftime('%s', r.started) >= '$1'"
}
at_phase() {
	local s
	for _ in $(seq 1 400); do
		s=$(($(date +%s) % $1))
		[ "$s" -ge "$2" ] && [ "$s" -le "$3" ] && return 0
		sleep 0.1
	done
	fail "the clock never reached phase $2..$3 of $1 s"
}

ts_mount
make_sources
make_integration timed
I=$MNT/integrations/timed
echo '{"every": "15s", "timezone": "Europe/Berlin"}' > "$I/schedule.json" ||
	fail "save schedule: $(last_error)"
for _ in $(seq 1 80); do [ "$(runs_since 0)" -ge 1 ] && break; sleep 0.5; done
expect_eq "$(runs_since 0)" "1" "a first scheduled run"
for _ in $(seq 1 50); do [ "$(json_get "$I/status" .state)" = idle ] && break; sleep 0.1; done
ts_umount
ok "a scheduled run before the restart"

# down for two to three slots
sleep 32
at_phase 15 3 5 # the next slot is 10 s away
mounted=$(date +%s)
ts_mount
expect_eq "$(json_get "$I/schedule.json" .every)" "15s" "the schedule after the restart"
expect_eq "$(json_get "$I/schedule.json" .timezone)" "Europe/Berlin" "its zone"
sleep 7
expect_eq "$(runs_since "$mounted")" "1" "runs in the 7 s after the restart (one catch-up)"
next=$(json_get "$I/status" .next_run)
ne=$(date -u -d "$next" +%s) || fail "next_run '$next' is not a time"
[ $((ne % 15)) -eq 0 ] && [ "$ne" -gt "$mounted" ] || fail "next_run $next after the restart"
grep -q 'scheduled run queued' "$DAEMON_LOG" || fail "the catch-up run is not logged"
# then the rhythm goes on: the next slot runs once more
for _ in $(seq 1 40); do [ "$(runs_since "$mounted")" -ge 2 ] && break; sleep 0.5; done
expect_eq "$(runs_since "$mounted")" "2" "the slot after the catch-up"
expect_eq "$(sqs "select count(*) from runs where result <> 'succeeded'")" "0" "all runs succeeded"
ok "restart after missed slots: one catch-up run, then the next slot"

# a restart between two slots, missing none: no run
for _ in $(seq 1 50); do [ "$(json_get "$I/status" .state)" = idle ] && break; sleep 0.1; done
at_phase 15 2 4
ts_umount
ts_mount
down=$(date +%s)
sleep 5
expect_eq "$(runs_since "$down")" "0" "runs after a restart that missed no slot"
ok "a restart that missed no slot makes no run"
