#!/bin/bash
# The whole layout: README, errors, connections/, integrations/NAME/ with
# its fixed entries, modes, sizes and times, stable inode numbers, and the
# same tree after unmounting and mounting again.
. "$(dirname "$0")/lib.sh"

ts_mount

expect_eq "$(tt ls "$MNT" | tr '\n' ' ')" "README connections errors integrations " "root entries"
tt grep -q 'integrations/NAME/' "$MNT/README" || fail "README describes the layout"
expect_eq "$(stat -c %A "$MNT/README")" "-r--r--r--" "README mode"
expect_eq "$(stat -c %s "$MNT/errors")" "0" "errors starts empty"
expect_eq "$(tt ls "$MNT/integrations" | wc -l)" "0" "no integrations yet"
ok "root"

make_sources
tt mkdir "$MNT/integrations/sales" || fail "mkdir integrations/sales"
d=$MNT/integrations/sales
expect_eq "$(tt ls "$d" | tr '\n' ' ')" \
	"conflicts integration.json parameters run runs schedule.json status tasks " "integration entries"
expect_eq "$(tt ls "$d/parameters" | tr '\n' ' ')" "InitTrackingObjects LastSyncTime " "parameters"
expect_eq "$(stat -c '%A' "$d" "$d/tasks" "$d/parameters" | tr '\n' ' ')" \
	"drwxr-xr-x drwxr-xr-x drwxr-xr-x " "directory modes"
expect_eq "$(stat -c '%A' "$d/integration.json" "$d/schedule.json" "$d/run" "$d/status" | tr '\n' ' ')" \
	"-rw-r--r-- -rw-r--r-- -rw-r--r-- -r--r--r-- " "file modes"
expect_eq "$(stat -c '%A' "$d/runs" "$d/conflicts" | tr '\n' ' ')" "dr-xr-xr-x dr-xr-xr-x " "read-only dirs"
# defaults are valid documents
expect_eq "$(json_get "$d/integration.json" .conflict_policy)" "source_wins" "default conflict_policy"
expect_eq "$(json_get "$d/integration.json" .max_delete_percent)" "50" "default max_delete_percent"
expect_eq "$(json_get "$d/schedule.json" .enabled)" "false" "default schedule"
expect_eq "$(tt cat "$d/parameters/LastSyncTime")" "" "LastSyncTime empty"
expect_eq "$(tt cat "$d/parameters/InitTrackingObjects")" "true" "InitTrackingObjects default"
expect_eq "$(json_get "$d/status" .state)" "idle" "status state"
expect_eq "$(tt cat "$d/run")" "idle" "run reads the state"
expect_eq "$(tt ls "$d/runs" | wc -l)" "0" "no runs yet"
# sizes match contents (stat and cat agree)
for f in integration.json schedule.json parameters/InitTrackingObjects; do
	expect_eq "$(stat -c %s "$d/$f")" "$(tt cat "$d/$f" | wc -c)" "size of $f"
done
# times: the integration's mtime, not 1970
[ "$(stat -c %Y "$d/integration.json")" -gt 1600000000 ] || fail "integration.json mtime"
ok "integration layout, modes, sizes"

tt mkdir "$d/tasks/orders" || fail "mkdir tasks/orders"
expect_eq "$(tt ls "$d/tasks/orders" | tr '\n' ' ')" "mapping.json task.json " "task entries"
expect_eq "$(json_get "$d/tasks/orders/mapping.json" '.to_target | length')" "0" "default mapping"
expect_eq "$(json_get "$d/tasks/orders/task.json" .source_object)" "" "default task"
ok "task layout"

expect_eq "$(tt ls "$MNT/connections" | tr '\n' ' ')" "crm.json wh.json " "connections"
expect_eq "$(json_get "$MNT/connections/crm.json" .type)" "sqlite" "connection content"
ok "connections"

# runs/ and latest.json after a run; a run file is read-only
make_integration demo
tt bash -c "echo wait > '$MNT/integrations/demo/run'" || fail "echo wait > run: $(last_error)"
expect_eq "$(tt ls "$MNT/integrations/demo/runs" | tr '\n' ' ')" "1.json latest.json " "runs/"
expect_eq "$(json_get "$MNT/integrations/demo/runs/latest.json" .id)" "1" "latest.json"
expect_eq "$(stat -c %A "$MNT/integrations/demo/runs/1.json")" "-r--r--r--" "run file mode"
expect_fail 'denied|not permitted' tt bash -c "echo x > '$MNT/integrations/demo/runs/1.json'"
expect_fail 'denied|not permitted' tt bash -c "echo x > '$MNT/integrations/demo/status'"
ok "runs/"

# stable inode numbers, and the same tree after a remount
snapshot() {
	(cd "$MNT" && tt find . -path ./errors -prune -o -path '*/status' -prune -o \
		-path '*/run' -prune -o -printf '%p %i %m %y\n' | sort)
	(cd "$MNT" && tt find . -name '*.json' -exec md5sum {} + | sort)
}
before=$(snapshot)
ts_umount
ts_mount
after=$(snapshot)
expect_eq "$after" "$before" "tree after a remount"
ok "unmount and mount again: same tree, same inode numbers"
