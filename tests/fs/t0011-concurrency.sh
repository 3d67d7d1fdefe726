#!/bin/bash
# Concurrency: two writers on one file, readers during a run, blocked
# `echo wait > run` writers while other shells edit and list: nothing hangs
# and nothing is half-written.
. "$(dirname "$0")/lib.sh"

ts_mount
make_sources
make_integration sales
I=$MNT/integrations/sales
M=$I/tasks/contacts/mapping.json
ms() { date +%s%3N; }
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

# two writers on one file
A='{"to_target": {"email": "email", "origin": "'"'A'"'"}, "to_source": {}}'
B='{"to_target": {"email": "email", "origin": "'"'B'"'"}, "to_source": {"email": "email"}}'
( for i in $(seq 1 40); do printf '%s\n' "$A" | tt cat > "$M" || exit 1; done ) &
w1=$!
( for i in $(seq 1 40); do tt python3 -c "open('$M', 'w').write('''$B''')" || exit 1; done ) &
w2=$!
wait $w1 || fail "writer 1 failed: $(last_error)"
wait $w2 || fail "writer 2 failed: $(last_error)"
final=$(stored_mapping sales contacts | jq -c .)
[ "$final" = "$(jq -c . <<< "$A")" ] || [ "$final" = "$(jq -c . <<< "$B")" ] ||
	fail "after two writers the mapping is '$final'"
expect_eq "$(error_count)" "0" "no errors from two writers"
tt jq -e . "$M" > /dev/null || fail "mapping.json reads as JSON"
ok "two writers on one file"

# put a mapping that syncs back
cat > "$M" <<'EOF2' || fail "restore mapping"
{"to_target": {"full_name": "first_name + ' ' + last_name", "email": "email"}, "to_source": {"email": "email"}}
EOF2

# readers during a run
lock 3
tt bash -c "echo > '$I/run'" || fail "queue a run"
t_end=$(($(ms) + 2000))
reads=0
while [ "$(ms)" -lt "$t_end" ]; do
	tt cat "$I/status" > /dev/null || fail "cat status during a run"
	tt ls "$I/runs" > /dev/null || fail "ls runs during a run"
	tt cat "$I/runs/latest.json" > /dev/null || fail "cat latest.json during a run"
	tt cat "$M" > /dev/null || fail "cat mapping during a run"
	reads=$((reads + 1))
done
expect_eq "$(json_get "$I/status" .state)" "running" "still running"
[ "$reads" -gt 10 ] || fail "only $reads rounds of reads in 2 s"
wait "$LOCK_PID"
ok "readers during a run ($reads rounds in 2 s)"

# blocked waiters while other shells edit
lock 4
for i in $(seq 1 20); do
	tt bash -c "echo wait > '$I/run'" &
	waiters[$i]=$!
done
sleep 0.5
t0=$(ms)
# (not mapping.json: its deep check opens wh.db, which the lock holds)
expect_ok tt sed -i 's/"source"/ "source"/' "$I/integration.json"
expect_ok tt cat "$M"
expect_ok tt mkdir "$MNT/integrations/during"
expect_ok tt ls -l "$MNT/integrations" "$I" "$I/runs"
echo 2026-01-01T00:00:00Z > "$MNT/integrations/during/parameters/LastSyncTime" || fail "write a parameter"
expect_ok tt cat "$I/status"
took=$(($(ms) - t0))
[ "$took" -lt 2000 ] || fail "edits while 20 writers wait took $took ms"
for i in $(seq 1 20); do
	wait "${waiters[$i]}" || fail "waiter $i failed: $(last_error)"
done
wait "$LOCK_PID"
ok "20 blocked echo wait > run; edits meanwhile took $took ms"
