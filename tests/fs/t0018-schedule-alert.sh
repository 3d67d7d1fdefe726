#!/bin/bash
# Failure alerts: --alert-command runs (without a shell, with the
# integration's name and the run file's path) when a scheduled run fails,
# at most once per --alert-cooldown; a manual run's failure does not alert;
# a failing alert command is logged.  Bad mount options are refused.
. "$(dirname "$0")/lib.sh"

sqs() { sqlite3 -batch -noheader -cmd '.timeout 5000' "$STATE" "$1"; }
failed_runs() { sqs "select count(*) from runs where result = 'failed'"; }
alerts() { if [ -e "$WORK/alerts" ]; then wc -l < "$WORK/alerts"; else echo 0; fi; }

# options are checked before mounting
mkdir -p "$MNT"
expect_fail "alert-command '$WORK/nope': no such file" \
	"$TIDESYNC" mount "$MNT" --state "$STATE" -f --alert-command "$WORK/nope"
touch "$WORK/plain"
expect_fail "not executable" "$TIDESYNC" mount "$MNT" --state "$STATE" --alert-command "$WORK/plain"
expect_fail "max-runs '0': expected a number from 1" \
	"$TIDESYNC" mount "$MNT" --state "$STATE" --max-runs 0
expect_fail "alert-cooldown 'soon'" "$TIDESYNC" mount "$MNT" --state "$STATE" --alert-cooldown soon
help=$("$TIDESYNC" mount --help) || fail "mount --help"
expect_match "$help" '--max-runs N' "mount --help names --max-runs"
expect_match "$help" '--alert-command PATH' "mount --help names --alert-command"
mountpoint -q "$MNT" && fail "a refused mount mounted"
ok "bad --alert-command, --max-runs and --alert-cooldown are refused; --help shows them"

# The alert command: a name with a space and a quote, to show no shell
# splits or interprets the arguments; it reads the run file through the
# mount and exits 3, which the daemon logs.
cat > "$WORK/on fail's.sh" <<EOS
#!/bin/sh
printf '%s|%s|%s\n' "\$#" "\$1" "\$2" >> "$WORK/alerts"
timeout 10 cat "\$2" > "$WORK/alert-run.json"
exit 3
EOS
chmod +x "$WORK/on fail's.sh"
ts_mount --alert-command "$WORK/on fail's.sh" --alert-cooldown 40
make_sources
make_integration broken
I=$MNT/integrations/broken
tt bash -c "echo wait > '$I/run'" || fail "the first run: $(last_error)"
mv "$WORK/crm.db" "$WORK/crm.db.away" # the source is gone: runs fail now

expect_fail 'Input/output error' tt bash -c "echo wait > '$I/run'"
sleep 1
expect_eq "$(alerts)" "0" "alerts after a manual run failed"
ok "a failed manual run raises no alert"

# save between slots: failures at the slots T, T+15, T+30, T+45
for _ in $(seq 1 200); do
	s=$(($(date +%s) % 15))
	[ "$s" -ge 2 ] && [ "$s" -le 6 ] && break
	sleep 0.1
done
echo '{"every": "15s"}' > "$I/schedule.json" || fail "save schedule: $(last_error)"
base=$(failed_runs)
for _ in $(seq 1 80); do [ "$(alerts)" -ge 1 ] && break; sleep 0.25; done
expect_eq "$(alerts)" "1" "alerts after the first scheduled failure"
IFS='|' read -r argc name runfile < "$WORK/alerts"
expect_eq "$argc" "2" "the alert command's argument count"
expect_eq "$name" "broken" "the alert's integration"
id=$(sqs "select max(id) from runs where result = 'failed'")
expect_eq "$runfile" "$MNT/integrations/broken/runs/$id.json" "the alert's run file"
for _ in $(seq 1 40); do [ -s "$WORK/alert-run.json" ] && break; sleep 0.25; done
expect_eq "$(jq -r .result "$WORK/alert-run.json")" "failed" "the run file read by the alert command"
expect_eq "$(jq -r .id "$WORK/alert-run.json")" "$id" "the run file's id"
for _ in $(seq 1 20); do grep -q 'alert command failed: exit status 3' "$DAEMON_LOG" && break; sleep 0.25; done
grep -q 'integrations/broken: the alert command failed: exit status 3' "$DAEMON_LOG" ||
	fail "the alert command's exit status 3 is not logged"
ok "a scheduled failure runs the alert command once: broken, $runfile"

# the next two slots fail too, within the 40 s cooldown: no alert
for _ in $(seq 1 200); do [ "$(failed_runs)" -ge $((base + 3)) ] && break; sleep 0.25; done
expect_eq "$(failed_runs)" "$((base + 3))" "failed scheduled runs"
sleep 1
expect_eq "$(alerts)" "1" "alerts within the cooldown"
grep -q 'no alert, the last one was' "$DAEMON_LOG" || fail "the suppressed alert is not logged"
ok "two more failures within the cooldown: no more alerts"

# the slot 45 s after the first is past the cooldown: one more alert
for _ in $(seq 1 120); do [ "$(alerts)" -ge 2 ] && break; sleep 0.25; done
expect_eq "$(alerts)" "2" "alerts once the cooldown passed"
expect_eq "$(sqs "select count(*) from runs where result = 'running'")" "0" "runs left running"
echo '{"enabled": false, "every": "15s"}' > "$I/schedule.json" || fail "disable"
ok "after the cooldown the next failure alerts again"
