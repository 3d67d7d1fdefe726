#!/bin/bash
# `tidesync export` writes the mounted layout as plain files; `cp -r` of
# such a tree into a fresh mount recreates the integrations; `tidesync
# import` validates every file and reports each problem as
# "file: key: reason" without changing anything.
. "$(dirname "$0")/lib.sh"

ts_mount
make_sources
make_integration sales
make_integration support tickets
echo '{"enabled": true, "every": "15m"}' > "$MNT/integrations/sales/schedule.json" || fail schedule
ts_umount

EXP=$WORK/export
expect_ok "$TIDESYNC" --state "$STATE" export "$EXP"
expect_eq "$(cd "$EXP" && find . -type f | sort | tr '\n' ' ')" \
"./connections/crm.json ./connections/wh.json ./integrations/sales/integration.json \
./integrations/sales/schedule.json ./integrations/sales/tasks/contacts/mapping.json \
./integrations/sales/tasks/contacts/task.json ./integrations/support/integration.json \
./integrations/support/schedule.json ./integrations/support/tasks/tickets/mapping.json \
./integrations/support/tasks/tickets/task.json " "exported files"
ok "export"

# the export reads exactly like the mount
ts_mount
for f in connections/crm.json integrations/sales/integration.json integrations/sales/schedule.json \
	integrations/sales/tasks/contacts/mapping.json; do
	expect_eq "$(tt cat "$MNT/$f")" "$(cat "$EXP/$f")" "$f as exported"
done
ts_umount
ok "exported files read like the mount"

# cp -r into a fresh mount over another store
STATE=$WORK/state2.db
MNT2=$MNT
ts_mount
expect_ok tt cp -r "$EXP/connections" "$EXP/integrations" "$MNT/"
expect_eq "$(tt ls "$MNT/integrations" | tr '\n' ' ')" "sales support " "integrations copied"
expect_eq "$(stored_mapping sales contacts)" "$(sq "$WORK/state.db" "select t.mapping from tasks t join integrations i on i.id = t.integration_id where i.name = 'sales' and t.name = 'contacts'")" \
	"mapping copied"
expect_eq "$(json_get "$MNT/integrations/sales/schedule.json" .every)" "15m" "schedule copied"
expect_eq "$(error_count)" "0" "no errors while copying"
tt bash -c "echo wait > '$MNT/integrations/sales/run'" || fail "run of the copy: $(last_error)"
ok "cp -r of an export into the mount"

# export of the copy is identical
ts_umount
expect_ok "$TIDESYNC" --state "$STATE" export "$WORK/export2"
expect_ok diff -r "$EXP" "$WORK/export2"
ok "round trip"

# import: every problem reported, nothing changed
cp -r "$EXP" "$WORK/bad"
echo '{"source": "crm", "target": "wh", "colour": 1}' > "$WORK/bad/integrations/sales/integration.json"
echo '{"to_target": {"full_name": "' > "$WORK/bad/integrations/sales/tasks/contacts/mapping.json"
echo '{"source_object": "contacts", "target_object": "nokey"}' > "$WORK/bad/integrations/support/tasks/tickets/task.json"
echo '{"every": "15x"}' > "$WORK/bad/integrations/support/schedule.json"
touch "$WORK/bad/integrations/support/notes.txt"
mkdir -p "$WORK/bad/integrations/new"
echo '{"source": "nowhere"}' > "$WORK/bad/integrations/new/integration.json"
out=$("$TIDESYNC" --state "$WORK/state3.db" import "$WORK/bad" 2>&1) && fail "import of a bad tree succeeded"
for re in 'integrations/sales/integration.json: colour: ' \
	'integrations/sales/tasks/contacts/mapping.json: .*line' \
	'integrations/support/tasks/tickets/task.json: target_object: .*nokey' \
	'integrations/support/schedule.json: every: ' \
	'integrations/support/notes.txt: unknown file' \
	'integrations/new/integration.json: source: .*nowhere' \
	'6 problems, nothing imported'; do
	expect_match "$out" "$re" "import report"
done
expect_eq "$(sq "$WORK/state3.db" "select count(*) from integrations") $(sq "$WORK/state3.db" "select count(*) from connections")" \
	"0 0" "nothing imported"
expect_ok "$TIDESYNC" --state "$WORK/state3.db" import "$EXP"
expect_eq "$(sq "$WORK/state3.db" "select count(*) from integrations") $(sq "$WORK/state3.db" "select count(*) from tasks")" \
	"2 2" "a good tree imports"
ok "import validates every file"

# export prunes what no longer exists and keeps foreign files
mkdir -p "$EXP/.git" && touch "$EXP/.git/keep" "$EXP/NOTES"
STATE=$WORK/state3.db
ts_mount
expect_ok tt rm -r "$MNT/integrations/support"
ts_umount
expect_ok "$TIDESYNC" --state "$STATE" export "$EXP"
[ -e "$EXP/integrations/support" ] && fail "export kept a deleted integration"
[ -e "$EXP/.git/keep" ] && [ -e "$EXP/NOTES" ] || fail "export removed foreign files"
ok "export prunes deleted integrations only"
