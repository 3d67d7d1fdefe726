#!/bin/bash
# Secrets: connection files show "***" for passwords and tokens (also the
# password inside a conninfo), writing "***" back keeps the stored secret,
# a new value replaces it, and files holding secrets are mode 0600.
. "$(dirname "$0")/lib.sh"

ts_mount
C=$MNT/connections

cat > "$C/pg.json" <<'EOF2' || fail "create pg.json: $(last_error)"
{"type": "postgres", "conninfo": "host=/run/postgresql dbname=shop user=sync password=inline-secret",
 "password": "top-secret"}
EOF2
expect_eq "$(stored_connection pg | jq -r .password)" "top-secret" "stored password"
expect_eq "$(json_get "$C/pg.json" .password)" "***" "password masked"
expect_match "$(json_get "$C/pg.json" .conninfo)" 'password=\*\*\*' "conninfo password masked"
tt grep -q secret "$C/pg.json" && fail "a secret shows in pg.json"
expect_eq "$(stat -c %a "$C/pg.json")" "600" "mode of a file with secrets"
ok "secrets read as ***"

# write the masked text back with a change elsewhere: the secrets stay
tt sed -i 's/dbname=shop/dbname=store/' "$C/pg.json" || fail "sed -i pg.json: $(last_error)"
expect_eq "$(stored_connection pg | jq -r .password)" "top-secret" "password kept"
expect_eq "$(stored_connection pg | jq -r .conninfo)" \
	"host=/run/postgresql dbname=store user=sync password=inline-secret" "conninfo password kept"
# a new value replaces the secret
tt jq '.password = "new-secret"' "$C/pg.json" > "$C/tmp" || fail "jq"
expect_ok tt mv "$C/tmp" "$C/pg.json"
expect_eq "$(stored_connection pg | jq -r .password)" "new-secret" "password replaced"
expect_eq "$(json_get "$C/pg.json" .password)" "***" "new password masked"
ok "*** keeps the stored secret; a new value replaces it"

# a token of a REST connection; a connection without secrets is 0644
echo '{"type": "rest", "preset": "directus", "url": "http://127.0.0.1:8055", "token": "tok-123"}' \
	> "$C/cms.json" || fail "create cms.json: $(last_error)"
expect_eq "$(json_get "$C/cms.json" .token)" "***" "token masked"
expect_eq "$(stat -c %a "$C/cms.json")" "600" "mode with a token"
echo "{\"type\": \"sqlite\", \"path\": \"$WORK/x.db\"}" > "$C/lite.json" || fail "create lite.json"
expect_eq "$(stat -c %a "$C/lite.json")" "644" "mode without secrets"
ok "tokens, modes"

# "***" where nothing is stored is refused; so is a bad connection
expect_fail 'Bad message' tt bash -c "echo '{\"type\": \"rest\", \"preset\": \"directus\", \"url\": \"http://x\", \"token\": \"***\"}' > '$C/new.json'"
expect_match "$(last_error)" '^connections/new.json: token: ' "*** without a stored secret"
tt rm -f "$C/new.json"
expect_fail 'Bad message' tt bash -c "echo '{\"type\": \"nosuchdb\"}' > '$C/bad.json'"
expect_match "$(last_error)" '^connections/bad.json: type: ' "unknown type"
tt rm -f "$C/bad.json"
expect_eq "$(sq "$STATE" "select count(*) from connections where name in ('new', 'bad')")" "0" \
	"refused connections not stored"
ok "invalid connections refused"

# export leaves secrets out; delete and in-use refusal
expect_ok "$TIDESYNC" --state "$STATE" export "$WORK/exp"
grep -rqE "top-secret|new-secret|inline-secret" "$WORK/exp" && fail "a secret in the export"
grep -rq tok-123 "$WORK/exp" && fail "a token in the export"
expect_eq "$(jq -r .password "$WORK/exp/connections/pg.json")" "***" "export masks"
tt mkdir "$MNT/integrations/uses" || fail mkdir
echo '{"source": "lite", "target": "lite"}' > "$MNT/integrations/uses/integration.json" || fail "use lite"
expect_fail 'busy' tt rm "$C/lite.json"
expect_ok tt rm "$C/cms.json"
expect_eq "$(tt ls "$C" | tr '\n' ' ')" "lite.json pg.json " "after delete"
ok "export without secrets; rm deletes an unused connection"
