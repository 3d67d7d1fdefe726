#!/bin/bash
# The daemon stops cleanly on fusermount3 -u and on SIGTERM, canceling a
# running sync at a safe point and recording it; a kill -9 loses nothing
# that was acknowledged, and the run it interrupted is marked failed at
# the next mount.
. "$(dirname "$0")/lib.sh"

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
newrow() {
	sq "$WORK/crm.db" "insert into contacts (first_name, last_name, email) values ('N', 'R$1', 'n$1@example.org')"
}
wait_running() {
	for _ in $(seq 1 100); do
		[ "$(json_get "$MNT/integrations/sales/status" .state)" = running ] && return 0
		sleep 0.05
	done
	fail "the run did not start"
}
result_of_last() { sq "$STATE" "select result from runs order by id desc limit 1"; }

ts_mount
make_sources
make_integration sales
tt bash -c "echo wait > '$MNT/integrations/sales/run'" || fail "first run"

# fusermount3 -u while a run is held up: canceled at a safe point
newrow 1
lock 2
tt bash -c "echo > '$MNT/integrations/sales/run'"
wait_running
expect_ok tt fusermount3 -u "$MNT"
ts_wait_daemon 30
expect_eq "$DAEMON_RC" "0" "exit status after fusermount3 -u"
check_daemon_log
wait "$LOCK_PID"
expect_eq "$(result_of_last)" "canceled" "run recorded at unmount"
ok "fusermount3 -u during a run: canceled and recorded, exit 0"

# SIGTERM while a run is held up
ts_mount
newrow 2
lock 2
tt bash -c "echo > '$MNT/integrations/sales/run'"
wait_running
kill -TERM "$DAEMON_PID"
ts_wait_daemon 30
expect_eq "$DAEMON_RC" "0" "exit status after SIGTERM"
check_daemon_log
wait "$LOCK_PID"
mountpoint -q "$MNT" && fail "still mounted after SIGTERM"
expect_eq "$(result_of_last)" "canceled" "run recorded at SIGTERM"
ok "SIGTERM during a run: canceled and recorded, exit 0"

# SIGTERM with a writer blocked in echo wait > run
ts_mount
newrow 3
lock 2
tt bash -c "echo wait > '$MNT/integrations/sales/run'" 2>/dev/null &
waiter=$!
wait_running
kill -TERM "$DAEMON_PID"
ts_wait_daemon 30
expect_eq "$DAEMON_RC" "0" "exit status after SIGTERM with a waiter"
wait "$waiter" && fail "the waiter succeeded although its run was canceled"
wait "$LOCK_PID"
ok "SIGTERM with a blocked waiter"

# kill -9: everything acknowledged is there after a remount
ts_mount
tt mkdir -p "$MNT/integrations/after/tasks/t" || fail "mkdir after kill"
echo '{"max_delete_percent": 7}' > "$MNT/integrations/after/integration.json" || fail write
echo 2026-05-05T05:05:05Z > "$MNT/integrations/after/parameters/LastSyncTime" || fail write
tt mv "$MNT/integrations/after/tasks/t" "$MNT/integrations/after/tasks/u" || fail mv
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=
fusermount3 -u -z "$MNT"
ts_mount
expect_eq "$(json_get "$MNT/integrations/after/integration.json" .max_delete_percent)" "7" "write kept"
expect_eq "$(tt cat "$MNT/integrations/after/parameters/LastSyncTime")" "2026-05-05T05:05:05Z" \
	"parameter kept"
expect_eq "$(tt ls "$MNT/integrations/after/tasks")" "u" "rename kept"
ok "kill -9 loses nothing acknowledged"

# kill -9 during a run: the next mount marks the run failed
newrow 4
lock 2
tt bash -c "echo > '$MNT/integrations/sales/run'"
wait_running
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=
fusermount3 -u -z "$MNT"
wait "$LOCK_PID"
expect_eq "$(result_of_last)" "running" "run left running by kill -9"
ts_mount
expect_eq "$(json_get "$MNT/integrations/sales/runs/latest.json" .result)" "failed" "stale run failed"
expect_match "$(json_get "$MNT/integrations/sales/runs/latest.json" .error)" 'stopped' "stale run reason"
tt bash -c "echo wait > '$MNT/integrations/sales/run'" || fail "a run after the crash: $(last_error)"
expect_eq "$(sq "$WORK/wh.db" "select count(*) from people where email like 'n%@example.org'")" "4" \
	"the rows of the interrupted runs arrive once"
ok "kill -9 during a run: marked failed, the next run completes the work"
