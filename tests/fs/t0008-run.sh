#!/bin/bash
# The run file over SQLite integrations that really sync rows: `echo > run`,
# `echo run > run` and `touch run` queue a run and return at once; `echo
# wait > run` blocks until the run ends and fails with EIO when it failed;
# Ctrl-C on a blocked writer returns at once and the run goes on; `echo
# cancel > run` cancels; a trigger during a run queues exactly one more;
# an unknown command is EINVAL; status shows the state; runs/ fills.
# A run is held up by an exclusive lock on the target database.
. "$(dirname "$0")/lib.sh"

ts_mount
make_sources
make_integration sales
I=$MNT/integrations/sales
RUN=$I/run
state() { json_get "$I/status" .state; }
latest() { json_get "$I/runs/latest.json" "$1"; }
nruns() { sq "$STATE" "select count(*) from runs"; }
# lock SECONDS: hold an exclusive lock on wh.db for that long (background)
lock() {
	rm -f "$WORK/locked"
	python3 -c "
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute('begin exclusive')
open(sys.argv[3], 'w').close()
time.sleep(float(sys.argv[2]))
c.execute('commit')" "$WORK/wh.db" "$1" "$WORK/locked" &
	LOCK_PID=$!
	for _ in $(seq 1 100); do [ -e "$WORK/locked" ] && return 0; sleep 0.05; done
	fail "could not lock wh.db"
}
wait_state() {
	for _ in $(seq 1 300); do [ "$(state)" = "$1" ] && return 0; sleep 0.05; done
	fail "status never became $1 (it is $(state))"
}
ms() { date +%s%3N; }

# a first run copies the rows across
t0=$(ms)
tt bash -c "echo wait > '$RUN'" || fail "echo wait > run: $(last_error)"
expect_eq "$(sq "$WORK/wh.db" "select count(*) from people")" "3" "rows copied"
expect_eq "$(sq "$WORK/wh.db" "select full_name from people where email = 'ada@example.org'")" \
	"Ada Lovelace" "mapped value"
expect_eq "$(latest .result)" "succeeded" "run result"
expect_eq "$(latest .tasks.contacts.to_target.inserted)" "3" "inserted count"
expect_eq "$(json_get "$I/status" '.last_run.id') $(json_get "$I/status" '.last_run.result')" \
	"1 succeeded" "status last_run"
expect_eq "$(tt ls "$I/runs" | tr '\n' ' ')" "1.json latest.json " "runs/"
expect_eq "$(tt cat "$I/parameters/InitTrackingObjects")" "false" "InitTrackingObjects after a run"
[ -n "$(tt cat "$I/parameters/LastSyncTime")" ] || fail "LastSyncTime set by the run"
ok "echo wait > run syncs rows ($(($(ms) - t0)) ms)"

# a change on the target goes back to the source
sq "$WORK/wh.db" "update people set full_name = 'Ada King' where email = 'ada@example.org'"
tt bash -c "echo wait > '$RUN'" || fail "second run: $(last_error)"
expect_eq "$(sq "$WORK/crm.db" "select last_name from contacts where email = 'ada@example.org'")" \
	"King" "change synced back"
ok "two-way"

# queueing returns at once; triggers during a run queue exactly one more
before=$(nruns)
lock 3
t0=$(ms)
tt bash -c "echo > '$RUN'" || fail "echo > run"
[ $(($(ms) - t0)) -lt 1000 ] || fail "echo > run took $(($(ms) - t0)) ms"
wait_state running
expect_eq "$(tt cat "$RUN")" "running" "run reads the state"
expect_ok tt bash -c "echo run > '$RUN'"
expect_ok tt touch "$RUN"
expect_ok tt bash -c "echo > '$RUN'"
expect_eq "$(json_get "$I/status" .queued)" "true" "one more run queued"
[ $(($(ms) - t0)) -lt 2500 ] || fail "triggers during a run took $(($(ms) - t0)) ms"
expect_fail 'busy' tt rmdir "$I"
expect_fail 'busy' tt mv "$I" "$MNT/integrations/other"
wait "$LOCK_PID"
wait_state idle
expect_eq "$(nruns)" "$((before + 2))" "runs after four triggers during one run"
ok "echo > run, echo run > run, touch run: queued once, never stacked"

# echo wait > run blocks until the run ends
lock 2
t0=$(ms)
tt bash -c "echo wait > '$RUN'" || fail "blocked echo wait > run"
took=$(($(ms) - t0))
[ "$took" -ge 1500 ] || fail "echo wait > run returned after $took ms, before the run ended"
expect_eq "$(latest .result)" "succeeded" "waited run result"
wait "$LOCK_PID"
ok "echo wait > run blocks ($took ms)"

# Ctrl-C on the blocked writer: it returns at once, the run goes on
lock 4
tt bash -c "echo > '$RUN'"
wait_state running
t0=$(ms)
timeout -s INT 0.5 /bin/echo wait > "$RUN"
rc=$?
took=$(($(ms) - t0))
[ "$took" -lt 1500 ] || fail "interrupted writer took $took ms"
[ $rc -ne 0 ] || fail "interrupted writer exited 0"
expect_eq "$(state)" "running" "the run goes on after Ctrl-C"
wait "$LOCK_PID"
wait_state idle
expect_eq "$(latest .result)" "succeeded" "the interrupted waiter's run"
ok "Ctrl-C returns at once without canceling ($took ms)"

# cancel stops a run at the next safe point (the engine checks before it
# writes a batch: give it a row to write)
sq "$WORK/crm.db" "insert into contacts (first_name, last_name, email) values ('Barbara', 'Liskov', 'bl@example.org')"
lock 2
tt bash -c "echo > '$RUN'"
wait_state running
expect_ok tt bash -c "echo cancel > '$RUN'"
wait "$LOCK_PID"
wait_state idle
expect_eq "$(latest .result)" "canceled" "canceled run"
expect_eq "$(json_get "$I/status" .last_run.result)" "canceled" "status after cancel"
ok "echo cancel > run"

# a failed run: echo wait > run fails with EIO
sq "$WORK/wh.db" "alter table people rename to people_gone"
expect_fail 'Input/output error' tt bash -c "echo wait > '$RUN'"
expect_eq "$(latest .result)" "failed" "failed run"
expect_match "$(last_error)" '^integrations/sales/run: run [0-9]+ failed: ' "failure in errors"
sq "$WORK/wh.db" "alter table people_gone rename to people"
expect_ok tt bash -c "echo wait > '$RUN'"
ok "a failed run is EIO"

expect_fail 'Invalid argument' tt bash -c "echo launch > '$RUN'"
expect_fail 'Invalid argument' tt bash -c "echo 'run now' > '$RUN'"
expect_eq "$(state)" "idle" "bad commands start nothing"
ok "unknown commands are EINVAL"

n=$(nruns)
expect_eq "$(tt ls "$I/runs" | grep -c '^[0-9]*\.json$')" "$n" "one file per run"
for f in $(tt ls "$I/runs"); do
	tt jq -e '.id and .result and .started' "$I/runs/$f" >/dev/null || fail "runs/$f is not a run document"
done
ok "runs/ holds $n run documents"
