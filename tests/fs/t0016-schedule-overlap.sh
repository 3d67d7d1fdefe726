#!/bin/bash
# Slow runs (the engine's task_start failpoint sleeps 8 s before each
# task) under a 5-second schedule: a slot that finds the previous run still
# going is recorded in runs/ as "skipped", and an integration never runs
# twice at once.  Then --max-runs 2 with three scheduled integrations: never
# more than two runs at once, the third waits "queued" and starts when a
# slot frees.
. "$(dirname "$0")/lib.sh"

sqs() { sqlite3 -batch -noheader -cmd '.timeout 5000' "$STATE" "$1"; }
runs_of() {
	sqs "select count(*) from runs r join integrations i on i.id = r.integration_id
	     where i.name = '$1' ${2:+and $2}"
}

export TIDESYNC_FAILPOINT=task_start=sleep:8
ts_mount --max-runs 2
unset TIDESYNC_FAILPOINT
make_sources
make_integration slow
S=$MNT/integrations/slow

echo '{"every": "5s"}' > "$S/schedule.json" || fail "save schedule: $(last_error)"
most=0
for _ in $(seq 1 160); do
	r=$(runs_of slow "r.result = 'running'")
	[ "$r" -gt "$most" ] && most=$r
	[ "$(runs_of slow "r.result = 'skipped'")" -ge 1 ] &&
		[ "$(runs_of slow "r.result = 'succeeded'")" -ge 2 ] && break
	sleep 0.25
done
[ "$(runs_of slow "r.result = 'skipped'")" -ge 1 ] || fail "no skipped run recorded"
[ "$(runs_of slow "r.result = 'succeeded'")" -ge 2 ] || fail "fewer than two runs succeeded"
[ "$most" -le 1 ] || fail "$most runs of one integration at once"
expect_eq "$(runs_of slow "r.result not in ('running', 'succeeded', 'skipped')")" "0" \
	"only succeeded, skipped and running runs"
# the real runs never overlap: each starts after the one before ended
overlaps=$(sqs "select count(*) from runs a join runs b on b.id > a.id
	where a.result = 'succeeded' and b.result in ('succeeded', 'running')
	and b.started < a.finished")
expect_eq "$overlaps" "0" "overlapping runs"
# each succeeded run took at least the 8 s of the failpoint
expect_eq "$(sqs "select count(*) from runs where result = 'succeeded'
	and strftime('%s', finished) - strftime('%s', started) < 7")" "0" "fast runs"
skip=$(sqs "select max(id) from runs where result = 'skipped'")
expect_eq "$(json_get "$S/runs/$skip.json" .result)" "skipped" "runs/$skip.json"
expect_match "$(json_get "$S/runs/$skip.json" .error)" "still going" "the skip's reason"
[ "$(json_get "$S/runs/$skip.json" .started)" != null ] || fail "a skipped run has no time"
grep -q 'integrations/slow: scheduled run skipped' "$DAEMON_LOG" || fail "the skip is not logged"
ok "slow runs: skipped slots recorded ($(runs_of slow "r.result = 'skipped'") skipped," \
	"$(runs_of slow "r.result = 'succeeded'") succeeded), never two at once"

echo '{"enabled": false, "every": "5s"}' > "$S/schedule.json" || fail "disable: $(last_error)"
tt bash -c "echo cancel > '$S/run'" || fail "cancel"
for _ in $(seq 1 100); do [ "$(json_get "$S/status" .state)" = idle ] && break; sleep 0.2; done
expect_eq "$(json_get "$S/status" .state)" "idle" "slow is idle after cancel"

# three integrations, each its own data, each every 10 s, at most 2 at once
for n in a b c; do
	sq "$WORK/src_$n.db" "create table contacts (id integer primary key, email text);
		insert into contacts (email) values ('$n@example.org');"
	sq "$WORK/dst_$n.db" "create table people (id integer primary key, email text);"
	printf '{"type": "sqlite", "path": "%s"}\n' "$WORK/src_$n.db" > "$MNT/connections/src_$n.json" ||
		fail "connection src_$n: $(last_error)"
	printf '{"type": "sqlite", "path": "%s"}\n' "$WORK/dst_$n.db" > "$MNT/connections/dst_$n.json" ||
		fail "connection dst_$n: $(last_error)"
	d=$MNT/integrations/p$n
	tt mkdir -p "$d/tasks/t" || fail "mkdir p$n"
	echo "{\"source\": \"src_$n\", \"target\": \"dst_$n\"}" > "$d/integration.json" ||
		fail "integration p$n: $(last_error)"
	echo '{"source_object": "contacts", "target_object": "people", "match_on": {"email": "email"}}' \
		> "$d/tasks/t/task.json" || fail "task p$n: $(last_error)"
	echo '{"to_target": {"email": "email"}, "to_source": {"email": "email"}}' \
		> "$d/tasks/t/mapping.json" || fail "mapping p$n: $(last_error)"
done
# save all three between two slots, so the same slot finds them all due
for _ in $(seq 1 200); do
	s=$(($(date +%s) % 10))
	[ "$s" -ge 1 ] && [ "$s" -le 3 ] && break
	sleep 0.1
done
for n in a b c; do
	echo '{"every": "10s"}' > "$MNT/integrations/p$n/schedule.json" ||
		fail "schedule p$n: $(last_error)"
done
most=0 queued=0
for _ in $(seq 1 160); do
	r=$(sqs "select count(*) from runs where result = 'running'")
	[ "$r" -gt "$most" ] && most=$r
	for n in a b c; do
		# waiting for a slot while two others run
		[ "$(tt cat "$MNT/integrations/p$n/run")" = queued ] && [ "$r" = 2 ] &&
			queued=$((queued + 1))
	done
	done_all=1
	for n in a b c; do
		[ "$(runs_of "p$n" "r.result = 'succeeded'")" -ge 1 ] || done_all=0
	done
	[ $done_all = 1 ] && break
	sleep 0.25
done
[ $done_all = 1 ] || fail "not every integration ran: $(sqs "select integration_id, result from runs")"
[ "$most" -le 2 ] || fail "$most runs at once with --max-runs 2"
expect_eq "$most" "2" "two runs at once (the limit is used)"
[ "$queued" -gt 0 ] || fail "no integration was ever seen queued while two ran"
# the first runs: the last to start began only when one of the others ended
mapfile -t firsts < <(sqs "select strftime('%s', r.started), strftime('%s', r.finished)
	from runs r join integrations i on i.id = r.integration_id
	where r.id in (select min(id) from runs where result = 'succeeded' group by integration_id)
	and i.name in ('pa', 'pb', 'pc') order by r.started, r.id")
expect_eq "${#firsts[@]}" "3" "first runs of pa, pb, pc"
IFS='|' read -r s1 f1 <<< "${firsts[0]}"
IFS='|' read -r s2 f2 <<< "${firsts[1]}"
IFS='|' read -r s3 _ <<< "${firsts[2]}"
[ "$s2" -lt $((s1 + 4)) ] || fail "the first two runs did not start together ($s1, $s2)"
freed=$f1
[ "$f2" -lt "$freed" ] && freed=$f2
[ "$s3" -ge "$freed" ] || fail "the third run started at $s3, before a slot freed at $freed"
for n in a b c; do
	expect_eq "$(sq "$WORK/dst_$n.db" "select email from people")" "$n@example.org" "p$n synced"
done
overlaps=$(sqs "select count(*) from runs a join runs b on b.id > a.id
	and a.integration_id = b.integration_id
	where a.result = 'succeeded' and b.result in ('succeeded', 'running')
	and b.started < a.finished")
expect_eq "$overlaps" "0" "one integration twice at once"
ok "--max-runs 2: at most two runs at once, the third queued then ran"
for n in a b c; do
	echo '{"enabled": false, "every": "10s"}' > "$MNT/integrations/p$n/schedule.json" ||
		fail "disable p$n"
	tt bash -c "echo cancel > '$MNT/integrations/p$n/run'"
done
