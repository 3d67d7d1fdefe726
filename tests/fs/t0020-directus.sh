#!/bin/bash
# A cloud application configured only with shell commands over the mount:
# a REST connection to the real Directus of the "directus" ctest fixture
# ($TS_DIRECTUS_STATE) and a PostgreSQL connection (the "pg" fixture,
# $TS_PG_CONNINFO_FILE), an integration, a task and its mapping written
# with cat/echo, runs with `echo wait > run`.  Checks: rows move both ways
# (inserts, updates, deletes; read back through Directus's API as admin and
# with psql), the token reads "***" and shows nowhere, a collection without
# created/modified fields is refused at the save of task.json with "Bad
# message" and a reason naming the missing field, and a run with nothing
# changed reports zero operations.
. "$(dirname "$0")/lib.sh"

: "${TS_DIRECTUS_STATE:?TS_DIRECTUS_STATE must name the state file of the Directus fixture (ctest sets it)}"
: "${TS_PG_CONNINFO_FILE:?TS_PG_CONNINFO_FILE must name the PostgreSQL fixture (ctest sets it)}"
[ -f "$TS_DIRECTUS_STATE" ] || fail "no Directus state file $TS_DIRECTUS_STATE (fixture directus)"
[ -f "$TS_PG_CONNINFO_FILE" ] || fail "no PostgreSQL conninfo file $TS_PG_CONNINFO_FILE (fixture pg)"
command -v curl >/dev/null || fail "curl is missing"
command -v psql >/dev/null || fail "psql is missing"

DX_URL=$(jq -r .url "$TS_DIRECTUS_STATE")
ADMIN=$(jq -r .admin_token "$TS_DIRECTUS_STATE")
SYNC_TOKEN=$(jq -r .sync_token "$TS_DIRECTUS_STATE")
HUMAN=$(jq -r .human_token "$TS_DIRECTUS_STATE")
POLICY=$(jq -r .policy "$TS_DIRECTUS_STATE")
[ -n "$SYNC_TOKEN" ] && [ "$SYNC_TOKEN" != null ] || fail "the Directus state has no sync_token"

# dx TOKEN METHOD PATH [JSON]: one Directus call; prints the body, fails the
# test on an HTTP error.
dx() {
	local out code
	out=$(mktemp "$WORK/dx.XXXXXX")
	code=$(curl -s -m 30 -o "$out" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
		-H 'Content-Type: application/json' ${4:+--data "$4"} "$DX_URL$3") || code=000
	[ "${code:0:1}" = 2 ] || fail "directus $2 $3 -> HTTP $code: $(head -c 400 "$out")"
	cat "$out"
	rm -f "$out"
}

# dx_collection NAME FIELDS-JSON: creates a collection as admin and grants
# the test policy (the sync user's) create/read/update/delete on it.
dx_collection() {
	local perms
	dx "$ADMIN" POST /collections \
		"{\"collection\": \"$1\", \"schema\": {}, \"meta\": {}, \"fields\": $2}" >/dev/null
	perms=$(jq -cn --arg p "$POLICY" --arg c "$1" '[("create", "read", "update", "delete") |
		{policy: $p, collection: $c, action: ., fields: ["*"], permissions: {}, validation: {}}]')
	dx "$ADMIN" POST /permissions "$perms" >/dev/null
}

ID_FIELD='{"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}}'
TRACKED='{"field": "date_created", "type": "timestamp", "meta": {"special": ["date-created"]}},
 {"field": "date_updated", "type": "timestamp", "meta": {"special": ["date-updated"]}},
 {"field": "user_created", "type": "uuid", "meta": {"special": ["user-created"]}},
 {"field": "user_updated", "type": "uuid", "meta": {"special": ["user-updated"]}}'
DATA='{"field": "name", "type": "string"}, {"field": "email", "type": "string"},
 {"field": "qty", "type": "integer"}'

# Fresh names per run: the fixture's Directus is shared by the whole ctest run.
P=fs$$
COLL=${P}_contacts
NOTIMES=${P}_notimes
ONLYCREATED=${P}_onlycreated
dx_collection "$COLL" "[$ID_FIELD, $TRACKED, $DATA]"
dx_collection "$NOTIMES" "[$ID_FIELD, $DATA]"
dx_collection "$ONLYCREATED" "[$ID_FIELD, $DATA,
 {\"field\": \"date_created\", \"type\": \"timestamp\", \"meta\": {\"special\": [\"date-created\"]}}]"

# items of the collection as "name:email:qty", sorted by email (as admin)
dx_items() {
	dx "$ADMIN" GET "/items/$COLL?limit=-1&sort=email&fields=name,email,qty" |
		jq -r '[.data[] | "\(.name):\(.email):\(.qty)"] | join(",")'
}
dx_create() { dx "$HUMAN" POST "/items/$COLL" "$1" | jq -r .data.id; }
dx_id_of() { dx "$ADMIN" GET "/items/$COLL?filter%5Bemail%5D%5B_eq%5D=$1&fields=id" | jq -r '.data[0].id'; }

# A fresh PostgreSQL database in the fixture's cluster.
PG_BASE=$(cat "$TS_PG_CONNINFO_FILE")
DB=t_fs_directus_$$
PGOPTIONS='-c client_min_messages=warning' psql "$PG_BASE" -v ON_ERROR_STOP=1 -qAt \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null ||
	fail "cannot create database $DB"
PG="$PG_BASE dbname=$DB"
pq() { psql "$PG" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
pg_rows() { pq "SELECT coalesce(string_agg(full_name||':'||email||':'||qty, ',' ORDER BY email), '') FROM people"; }
pq "CREATE TABLE people (id serial PRIMARY KEY, full_name text, email text, qty integer)"

# Data on both sides before the first run: two items made by another
# Directus user, one row in the database.
dx_create '{"name": "Ada", "email": "ada@example.org", "qty": 1}' >/dev/null
dx_create '{"name": "Grace", "email": "grace@example.org", "qty": 2}' >/dev/null
pq "INSERT INTO people (full_name, email, qty) VALUES ('Alan', 'alan@example.org', 3)"

ts_mount
C=$MNT/connections
I=$MNT/integrations/cms2pg
RUN=$I/run
latest() { json_get "$I/runs/latest.json" "$1"; }

# ---- connections, with cat > file ----
tt bash -c "cat > '$C/cms.json'" <<EOF || fail "create connections/cms.json: $(last_error)"
{"type": "rest", "preset": "directus", "url": "$DX_URL", "token": "$SYNC_TOKEN"}
EOF
tt bash -c "cat > '$C/pg.json'" <<EOF || fail "create connections/pg.json: $(last_error)"
{"type": "postgres", "conninfo": "$PG"}
EOF
expect_eq "$(json_get "$C/cms.json" .token)" "***" "token read back"
expect_eq "$(json_get "$C/cms.json" .url)" "$DX_URL" "url read back"
tt grep -qF "$SYNC_TOKEN" "$C/cms.json" && fail "the token shows in connections/cms.json"
expect_eq "$(stored_connection cms | jq -r .token)" "$SYNC_TOKEN" "stored token"
expect_eq "$(stat -c %a "$C/cms.json")" "600" "mode of a file with a token"
# writing the masked text back (with a change elsewhere) keeps the token
tt sed -i 's/"preset"/ "preset"/' "$C/cms.json" || fail "sed -i cms.json: $(last_error)"
expect_eq "$(stored_connection cms | jq -r .token)" "$SYNC_TOKEN" "token kept after writing *** back"
ok "connections written with cat; the token reads ***"

# ---- the integration, task and mapping ----
tt mkdir "$I" || fail "mkdir integrations/cms2pg"
tt bash -c "echo '{\"source\": \"cms\", \"target\": \"pg\"}' > '$I/integration.json'" ||
	fail "write integration.json: $(last_error)"
tt mkdir "$I/tasks/contacts" || fail "mkdir tasks/contacts"
T=$I/tasks/contacts
tt bash -c "cat > '$T/task.json'" <<EOF || fail "write task.json: $(last_error)"
{"source_object": "$COLL", "target_object": "public.people", "match_on": {"email": "email"}}
EOF
tt bash -c "cat > '$T/mapping.json'" <<'EOF' || fail "write mapping.json: $(last_error)"
{"to_target": {"full_name": "name", "email": "email", "qty": "qty"},
 "to_source": {"name": "full_name", "email": "email", "qty": "qty"}}
EOF
expect_eq "$(stored_task cms2pg contacts | jq -r .source_object)" "$COLL" "stored task"
expect_eq "$(json_get "$T/mapping.json" .to_source.name)" "full_name" "mapping read back"
ok "integration, task and mapping written with shell commands"

# ---- a collection without created/modified time fields is refused ----
nerr=$(error_count)
tt mkdir "$I/tasks/bad" || fail "mkdir tasks/bad"
expect_fail 'Bad message' tt bash -c "cat > '$I/tasks/bad/task.json'" <<EOF
{"source_object": "$NOTIMES", "target_object": "public.people"}
EOF
BAD=integrations/cms2pg/tasks/bad/task.json
expect_match "$(last_error)" \
	"^$BAD: source_object: collection '$NOTIMES' has no created-time field \\(a field with special date-created\\)$" \
	"reason for a collection without times"
expect_fail 'Bad message' tt bash -c "cat > '$I/tasks/bad/task.json'" <<EOF
{"source_object": "$ONLYCREATED", "target_object": "public.people"}
EOF
expect_match "$(last_error)" \
	"^$BAD: source_object: collection '$ONLYCREATED' has no modified-time field \\(a field with special date-updated\\)$" \
	"reason for a collection without a modified time"
expect_eq "$(error_count)" "$((nerr + 2))" "one line in errors per refused save"
expect_eq "$(stored_task cms2pg bad | jq -r .source_object)" "" "the refused task is not stored"
# on an existing task, the previous version stays in force
expect_fail 'Bad message' tt sed -i "s/$COLL/$NOTIMES/" "$T/task.json"
expect_match "$(last_error)" \
	"^integrations/cms2pg/tasks/contacts/task.json: source_object: collection '$NOTIMES' has no created-time field" \
	"reason for an edit of a good task"
expect_eq "$(stored_task cms2pg contacts | jq -r .source_object)" "$COLL" "previous task kept"
expect_eq "$(json_get "$T/task.json" .source_object)" "$COLL" "previous task shown"
tt rmdir "$I/tasks/bad" || fail "rmdir tasks/bad"
ok "collections without created/modified fields refused at save, naming the field"

# ---- first run: both ways ----
tt bash -c "echo wait > '$RUN'" || fail "first echo wait > run: $(last_error) $(tt cat "$I/runs/latest.json")"
expect_eq "$(latest .result)" "succeeded" "first run result"
expect_eq "$(latest .tasks.contacts.to_target.inserted)" "2" "first run: inserted into PostgreSQL"
expect_eq "$(latest .tasks.contacts.to_source.inserted)" "1" "first run: inserted into Directus"
expect_eq "$(pg_rows)" "Ada:ada@example.org:1,Alan:alan@example.org:3,Grace:grace@example.org:2" \
	"PostgreSQL after the first run"
expect_eq "$(dx_items)" "Ada:ada@example.org:1,Alan:alan@example.org:3,Grace:grace@example.org:2" \
	"Directus after the first run"
[ -n "$(tt cat "$I/parameters/LastSyncTime")" ] || fail "LastSyncTime set by the run"
ok "echo wait > run copies rows both ways"

# ---- changes on both sides: update, insert, delete each way ----
dx "$HUMAN" PATCH "/items/$COLL/$(dx_id_of ada@example.org)" '{"qty": 10}' >/dev/null
dx_create '{"name": "Barbara", "email": "barbara@example.org", "qty": 4}' >/dev/null
dx "$HUMAN" DELETE "/items/$COLL/$(dx_id_of grace@example.org)" >/dev/null
pq "UPDATE people SET full_name = 'Alan T' WHERE email = 'alan@example.org'"
pq "INSERT INTO people (full_name, email, qty) VALUES ('Edsger', 'edsger@example.org', 5)"
tt bash -c "echo wait > '$RUN'" || fail "second echo wait > run: $(last_error) $(tt cat "$I/runs/latest.json")"
expect_eq "$(latest .result)" "succeeded" "second run result"
expect_eq "$(latest '.tasks.contacts.to_target | "\(.inserted) \(.updated) \(.deleted) \(.failed)"')" \
	"1 1 1 0" "second run to PostgreSQL (inserted updated deleted failed)"
expect_eq "$(latest '.tasks.contacts.to_source | "\(.inserted) \(.updated) \(.deleted) \(.failed)"')" \
	"1 1 0 0" "second run to Directus (inserted updated deleted failed)"
want="Ada:ada@example.org:10,Alan T:alan@example.org:3,Barbara:barbara@example.org:4,Edsger:edsger@example.org:5"
expect_eq "$(pg_rows)" "$want" "PostgreSQL after the second run"
expect_eq "$(dx_items)" "$want" "Directus after the second run"
# and a delete in the database reaches Directus
pq "DELETE FROM people WHERE email = 'edsger@example.org'"
tt bash -c "echo wait > '$RUN'" || fail "third echo wait > run: $(last_error)"
expect_eq "$(latest .tasks.contacts.to_source.deleted)" "1" "delete to Directus"
want="Ada:ada@example.org:10,Alan T:alan@example.org:3,Barbara:barbara@example.org:4"
expect_eq "$(dx_items)" "$want" "Directus after a delete in PostgreSQL"
expect_eq "$(pg_rows)" "$want" "PostgreSQL after the third run"
ok "updates, inserts and deletes go both ways"

# ---- nothing changed: zero operations ----
tt bash -c "echo wait > '$RUN'" || fail "idle echo wait > run: $(last_error)"
expect_eq "$(latest .result)" "succeeded" "idle run result"
expect_eq "$(latest '[.tasks[] | (.to_target, .to_source) | .inserted, .updated, .deleted, .failed] | add')" \
	"0" "operations of a run with nothing changed"
expect_eq "$(latest '[.tasks[].conflicts // 0] | add')" "0" "conflicts of a run with nothing changed"
expect_eq "$(dx_items)" "$want" "Directus after the idle run"
expect_eq "$(pg_rows)" "$want" "PostgreSQL after the idle run"
ok "a run with nothing changed reports zero operations"

# ---- the token shows nowhere ----
tt grep -rqF "$SYNC_TOKEN" "$MNT" 2>/dev/null && fail "the token shows in the mount"
grep -qF "$SYNC_TOKEN" "$DAEMON_LOG" && fail "the token shows in the daemon's log"
expect_ok "$TIDESYNC" --state "$STATE" export "$WORK/exp"
grep -rqF "$SYNC_TOKEN" "$WORK/exp" && fail "the token shows in an export"
ok "the token shows nowhere (mount, errors, runs, log, export)"

ts_umount
# tidy the shared fixtures (only on success: a failure leaves them to look at)
for c in "$COLL" "$NOTIMES" "$ONLYCREATED"; do dx "$ADMIN" DELETE "/collections/$c" >/dev/null; done
psql "$PG_BASE" -qAt -c "DROP DATABASE IF EXISTS $DB" >/dev/null
