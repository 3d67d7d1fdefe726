#!/bin/bash
# Saving with the shell and scripts: echo >, printf >, cat >, cp, tee,
# python, sed -i, `jq ... > tmp && mv tmp f`.  A valid edit is committed;
# an invalid one (bad JSON, unknown key, wrong type, unknown connection, a
# table without a generated key) fails with EBADMSG ("Bad message") where
# the tool can report it, leaves the stored document as it was, and adds
# "path: key: reason" to MOUNT/errors.
. "$(dirname "$0")/lib.sh"

ts_mount
make_sources
make_integration sales
I=$MNT/integrations/sales
T=$I/tasks/contacts
rel=integrations/sales/tasks/contacts

# --- valid edits, one per tool ---
echo '{"source": "crm", "target": "wh", "max_delete_percent": 10}' > "$I/integration.json" ||
	fail "echo > integration.json"
expect_eq "$(stored_integration sales | jq .max_delete_percent)" "10" "echo > committed"
printf '{"source": "crm", "target": "wh", "max_delete_percent": 11}' > "$I/integration.json" ||
	fail "printf >"
expect_eq "$(json_get "$I/integration.json" .max_delete_percent)" "11" "printf > committed"
tt cat > "$I/integration.json" <<< '{"source": "crm", "target": "wh", "max_delete_percent": 12}' ||
	fail "cat >"
expect_eq "$(stored_integration sales | jq .max_delete_percent)" "12" "cat > committed"
echo '{"source": "crm", "target": "wh", "max_delete_percent": 13}' > "$WORK/i.json"
expect_ok tt cp "$WORK/i.json" "$I/integration.json"
expect_eq "$(stored_integration sales | jq .max_delete_percent)" "13" "cp committed"
echo '{"source": "crm", "target": "wh", "max_delete_percent": 14}' | tt tee "$I/integration.json" >/dev/null ||
	fail "tee"
expect_eq "$(stored_integration sales | jq .max_delete_percent)" "14" "tee committed"
tt python3 - "$I/integration.json" <<'PY' || fail "python"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["max_delete_percent"] = 15
with open(p, "w") as f:
    json.dump(d, f, indent=4)
PY
expect_eq "$(stored_integration sales | jq .max_delete_percent)" "15" "python committed"
expect_ok tt sed -i 's/"max_delete_percent": 15/"max_delete_percent": 16/' "$I/integration.json"
expect_eq "$(stored_integration sales | jq .max_delete_percent)" "16" "sed -i committed"
tt jq '.max_delete_percent = 17' "$I/integration.json" > "$I/tmp.json" || fail "jq > tmp"
expect_ok tt mv "$I/tmp.json" "$I/integration.json"
expect_eq "$(stored_integration sales | jq .max_delete_percent)" "17" "jq && mv committed"
expect_eq "$(tt ls "$I" | grep -c tmp)" "0" "no temporary file left"
# a large document in python's 8 KiB chunks
tt python3 - "$T/mapping.json" <<'PY' || fail "python large mapping"
import json, sys
m = {"to_target": {"full_name": "first_name + ' ' + last_name", "email": "email",
                   "origin": "'" + "x" * 20000 + "'"},
     "to_source": {"email": "email"}}
with open(sys.argv[1], "w") as f:
    f.write(json.dumps(m, indent=2))
PY
expect_eq "$(stored_mapping sales contacts | jq -r '.to_target.origin | length')" "20002" "large mapping"
expect_eq "$(error_count)" "0" "no errors so far"
ok "valid edits with echo, printf, cat, cp, tee, python, sed -i, jq+mv"

# --- invalid edits ---
good_int=$(stored_integration sales)
good_task=$(stored_task sales contacts)
good_map=$(stored_mapping sales contacts)
unchanged() {
	expect_eq "$(stored_integration sales)" "$good_int" "$1: integration.json unchanged"
	expect_eq "$(stored_task sales contacts)" "$good_task" "$1: task.json unchanged"
	expect_eq "$(stored_mapping sales contacts)" "$good_map" "$1: mapping.json unchanged"
}

# bad JSON from a shell builtin: the write fails
expect_fail 'Bad message' tt bash -c "echo '{\"source\": crm}' > '$I/integration.json'"
expect_match "$(last_error)" '^integrations/sales/integration.json: .*line 1' "bad JSON reason"
unchanged "bad JSON"
# an unknown key: a complete document, so the write already fails
expect_fail 'Bad message' tt bash -c "echo '{\"source\": \"crm\", \"colour\": 1}' > '$I/integration.json'"
expect_match "$(last_error)" '^integrations/sales/integration.json: colour: ' "unknown key reason"
# a wrong type
expect_fail 'Bad message' tt bash -c "echo '{\"max_delete_percent\": \"ten\"}' > '$I/integration.json'"
expect_match "$(last_error)" 'integration.json: max_delete_percent: ' "wrong type reason"
# a missing connection
expect_fail 'Bad message' tt bash -c "echo '{\"source\": \"crm\", \"target\": \"nowhere\"}' > '$I/integration.json'"
expect_match "$(last_error)" 'integration.json: target: .*nowhere' "missing connection reason"
# a table without a generated key (deep check against the database)
expect_fail 'Bad message' tt bash -c "echo '{\"source_object\": \"contacts\", \"target_object\": \"nokey\"}' > '$T/task.json'"
expect_match "$(last_error)" "^$rel/task.json: target_object: .*nokey" "no generated key reason"
# a mapping naming a field that does not exist
expect_fail 'Bad message' tt bash -c "echo '{\"to_target\": {\"nosuch\": \"email\"}, \"to_source\": {}}' > '$T/mapping.json'"
expect_match "$(last_error)" "^$rel/mapping.json: to_target.nosuch: " "unknown field reason"
unchanged "shell builtins"
ok "invalid saves with echo: EBADMSG at write, reasons in errors"

# other tools see the error at write or close
n=$(error_count)
expect_fail 'Bad message' tt cp /dev/stdin "$I/integration.json" <<< '{"source": 1}'
expect_fail 'Bad message' tt tee "$I/integration.json" <<< '{"source": "crm", "x": 2}'
expect_fail 'Bad message' tt sh -c "/bin/echo '{\"source\":' > '$I/integration.json'"
expect_fail 'Bad message' tt sed -i 's/"crm"/"nowhere"/' "$I/integration.json"
expect_fail 'Bad message' tt python3 -c "
with open('$I/integration.json', 'w') as f: f.write('{\"source\": [1, 2]}')"
tt jq '.source = 5' "$I/integration.json" > "$I/tmp.json" || fail "jq > tmp"
expect_fail 'Bad message' tt mv "$I/tmp.json" "$I/integration.json"
tt rm -f "$I/tmp.json"
expect_eq "$(error_count)" "$((n + 6))" "one error line per refused save"
unchanged "other tools"
ok "invalid saves with cp, tee, /bin/echo, sed -i, python, mv: EBADMSG"

# half a document from a builtin: only the errors file can tell
n=$(error_count)
echo '{"source": "crm",' > "$I/integration.json"
expect_eq "$(error_count)" "$((n + 1))" "truncated document reported"
expect_match "$(last_error)" 'integration.json: line' "truncated document reason"
: > "$I/integration.json"
expect_match "$(last_error)" 'integration.json: .*empty' "empty document reason"
unchanged "silent failures"
ok "silent failures are in errors"

# errors: newest last; `: > errors` clears it
expect_fail 'not permitted' tt bash -c "echo x >> '$MNT/errors'"
: > "$MNT/errors"
expect_eq "$(error_count)" "0" "errors cleared"
ok "errors file"
