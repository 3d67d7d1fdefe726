#!/bin/bash
# Directories: mkdir creates integrations and tasks with valid defaults,
# rmdir and rm -r delete them, mv renames them; configuration files cannot
# be deleted or renamed on their own; bad names and places are refused.
. "$(dirname "$0")/lib.sh"

ts_mount
I=$MNT/integrations

expect_ok tt mkdir "$I/alpha"
expect_fail 'File exists' tt mkdir "$I/alpha"
expect_fail 'Invalid argument' tt mkdir "$I/.hidden"
expect_fail 'not permitted' tt mkdir "$MNT/elsewhere"
expect_fail 'not permitted' tt mkdir "$I/alpha/notes"
expect_ok tt mkdir -p "$I/alpha/tasks/one" "$I/alpha/tasks/two"
expect_fail 'File exists' tt mkdir "$I/alpha/tasks/one"
expect_eq "$(tt ls "$I/alpha/tasks" | tr '\n' ' ')" "one two " "tasks"
expect_eq "$(sq "$STATE" "select count(*) from tasks")" "2" "tasks in the store"
ok "mkdir"

# configuration files stay: rm and mv of one are refused
expect_fail 'not permitted' tt rm "$I/alpha/integration.json"
expect_fail 'not permitted' tt rm -f "$I/alpha/tasks/one/task.json"
expect_fail 'not permitted' tt mv "$I/alpha/schedule.json" "$I/alpha/schedule.old"
expect_fail 'not permitted' tt rmdir "$I/alpha/tasks"
expect_fail 'not permitted' tt rm "$I/alpha/parameters/LastSyncTime"
[ -f "$I/alpha/integration.json" ] || fail "integration.json is gone"
expect_eq "$(tt ls "$I/alpha" | wc -l)" "8" "integration entries after refused deletes"
ok "configuration files cannot be deleted or renamed away"

# mv renames, keeping contents and inode numbers
echo '{"max_delete_percent": 20}' > "$I/alpha/integration.json" || fail "edit"
ino=$(stat -c %i "$I/alpha/integration.json")
expect_ok tt mv "$I/alpha" "$I/beta"
expect_eq "$(tt ls "$I" | tr '\n' ' ')" "beta " "after mv"
expect_eq "$(json_get "$I/beta/integration.json" .max_delete_percent)" "20" "content after mv"
expect_eq "$(stat -c %i "$I/beta/integration.json")" "$ino" "inode after mv"
expect_ok tt mv "$I/beta/tasks/one" "$I/beta/tasks/uno"
expect_eq "$(tt ls "$I/beta/tasks" | tr '\n' ' ')" "two uno " "task mv"
tt mkdir "$I/gamma" || fail "mkdir gamma"
expect_fail 'not empty|exists' tt mv -T "$I/beta" "$I/gamma"
# a task moved to another integration: mv copies it and removes the old one
expect_ok tt mv "$I/beta/tasks/two" "$I/gamma/tasks/"
expect_eq "$(tt ls "$I/beta/tasks" | tr '\n' ' ')" "uno " "moved task left beta"
expect_eq "$(tt ls "$I/gamma/tasks" | tr '\n' ' ')" "two " "moved task in gamma"
ok "mv of integrations and tasks"

# rmdir deletes an integration with its fixed entries; rm -r too
expect_ok tt rmdir "$I/gamma"
expect_eq "$(tt ls "$I" | tr '\n' ' ')" "beta " "after rmdir"
expect_ok tt rmdir "$I/beta/tasks/uno"
expect_eq "$(tt ls "$I/beta/tasks" | wc -l)" "0" "after rmdir of a task"
tt mkdir "$I/beta/tasks/three" || fail "mkdir three"
out=$(tt rm -r "$I/beta/tasks/three" 2>&1) || fail "rm -r of a task: $out"
expect_eq "$out" "" "rm -r of a task prints nothing"
tt mkdir "$I/beta/tasks/four" || fail "mkdir four"
out=$(tt rm -r "$I/beta" 2>&1) || fail "rm -r of an integration: $out"
expect_eq "$out" "" "rm -r prints nothing"
expect_eq "$(tt ls "$I" | wc -l)" "0" "after rm -r"
expect_eq "$(sq "$STATE" "select count(*) from integrations") $(sq "$STATE" "select count(*) from tasks")" \
	"0 0" "store after rm -r"
for n in 1 2 3; do tt mkdir -p "$I/x$n/tasks/t" || fail "mkdir -p x$n"; done
expect_ok tt rm -rf "$I/x1" "$I/x2"
expect_ok tt python3 -c "import shutil; shutil.rmtree('$I/x3')"
expect_eq "$(tt ls "$I" | wc -l)" "0" "after rm -rf and shutil.rmtree"
ok "rmdir, rm -r, rm -rf, shutil.rmtree"

# a failed rm -r (here: of the tasks dir alone) leaves the files visible
tt mkdir -p "$I/keep/tasks/t" || fail "mkdir keep"
tt rm -r "$I/keep/tasks" 2>/dev/null && fail "rm -r of tasks/ itself succeeded"
expect_eq "$(tt ls "$I/keep/tasks" | wc -l)" "0" "tasks removed by rm -r tasks"
expect_eq "$(tt ls "$I/keep" | wc -l)" "8" "integration intact"
ok "rm -r of tasks/ removes the tasks, not the directory"

# scratch files live in integration and task directories only
tt mkdir "$I/keep/tasks/t" || fail "mkdir t"
expect_ok tt touch "$I/keep/notes.txt" "$I/keep/tasks/t/.task.json.swp" "$I/keep/parameters/x~"
expect_fail 'denied' tt touch "$I/keep/runs/x" 
expect_fail 'denied' tt touch "$MNT/x"
expect_ok tt rm "$I/keep/notes.txt" "$I/keep/tasks/t/.task.json.swp" "$I/keep/parameters/x~"
ok "scratch files"
