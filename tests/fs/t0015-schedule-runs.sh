#!/bin/bash
# A 15-second schedule over the mount: saving it starts no run, runs then
# happen at every slot (aligned to :00, :15, :30, :45, 15 s apart), status
# shows the next slot; disabling stops the runs across a slot, enabling
# again starts no run at the save and resumes at the next slot.
. "$(dirname "$0")/lib.sh"

# sqs SQL: the state store, waiting for the daemon's writes if need be
sqs() { sqlite3 -batch -noheader -cmd '.timeout 5000' "$STATE" "$1"; }
# runs_of NAME [CONDITION]
runs_of() {
	sqs "select count(*) from runs r join integrations i on i.id = r.integration_id
	     where i.name = '$1' ${2:+and $2}"
}
# at_phase M LO HI: wait until the clock's seconds modulo M are in LO..HI
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
make_integration quick
I=$MNT/integrations/quick

at_phase 15 2 5 # just after a slot: the save is not near one
echo '{"every": "15s"}' > "$I/schedule.json" || fail "save schedule: $(last_error)"
saved=$(date +%s)
# the scheduler sees a saved schedule within 5 s
for _ in $(seq 1 70); do
	next=$(json_get "$I/status" '.next_run // empty')
	[ -n "$next" ] && break
	sleep 0.1
done
expect_eq "$(runs_of quick)" "0" "saving a schedule starts no run"
ne=$(date -u -d "$next" +%s) || fail "next_run '$next' is not a time"
[ $((ne % 15)) -eq 0 ] || fail "next_run $next is not on a 15 s slot"
[ "$ne" -gt "$saved" ] && [ "$ne" -le $((saved + 15)) ] ||
	fail "next_run $next is not the first slot after the save ($(date -u -d "@$saved"))"
ok "saving every 15s starts no run; status next_run is the next slot ($next)"

for _ in $(seq 1 90); do
	[ "$(runs_of quick "r.result = 'succeeded'")" -ge 2 ] && break
	sleep 0.5
done
expect_eq "$(runs_of quick "r.result = 'succeeded'")" "2" "two scheduled runs succeeded"
expect_eq "$(runs_of quick "r.result <> 'succeeded'")" "0" "no other run"
mapfile -t starts < <(sqs "select strftime('%s', r.started) from runs r join integrations i
	on i.id = r.integration_id where i.name = 'quick' order by r.id")
for s in "${starts[@]}"; do
	[ $((s % 15)) -le 4 ] || fail "a run started at $(date -u -d "@$s" +%T), not at a slot"
done
gap=$((starts[1] - starts[0]))
[ "$gap" -ge 13 ] && [ "$gap" -le 17 ] || fail "runs $gap s apart, expected 15"
[ "${starts[0]}" -ge "$ne" ] || fail "the first run started before next_run"
expect_eq "$(sq "$WORK/wh.db" "select count(*) from people")" "3" "the runs synced"
expect_eq "$(json_get "$I/runs/latest.json" .result)" "succeeded" "runs/latest.json"
for _ in $(seq 1 50); do [ "$(json_get "$I/status" .state)" = idle ] && break; sleep 0.1; done
expect_eq "$(json_get "$I/status" .last_run.result)" "succeeded" "status last_run"
ok "runs happen at the slots, $gap s apart"

echo '{"enabled": false, "every": "15s"}' > "$I/schedule.json" || fail "disable: $(last_error)"
n=$(runs_of quick)
sleep 17 # a slot passes
expect_eq "$(runs_of quick)" "$n" "no run while disabled"
expect_eq "$(json_get "$I/status" '.next_run // "none"')" "none" "no next_run while disabled"
expect_eq "$(json_get "$I/schedule.json" .every)" "15s" "settings kept while disabled"
ok "disabled: no run across a slot, settings kept"

at_phase 15 2 5
echo '{"enabled": true, "every": "15s"}' > "$I/schedule.json" || fail "enable: $(last_error)"
sleep 6 # the scheduler has seen it
expect_eq "$(runs_of quick)" "$n" "enabling starts no run"
[ "$(json_get "$I/status" '.next_run // "none"')" != none ] || fail "no next_run once enabled"
for _ in $(seq 1 50); do [ "$(runs_of quick)" -gt "$n" ] && break; sleep 0.5; done
expect_eq "$(runs_of quick)" "$((n + 1))" "one run at the next slot after enabling"
ok "enabled again: runs resume at the next slot"
