#!/bin/bash
# Many integrations (1,000) and a long run history stay fast to list.
. "$(dirname "$0")/lib.sh"

# 1,000 integrations through import (one transaction), then the mount
mkdir -p "$WORK/tree/integrations"
for i in $(seq -w 1 1000); do
	mkdir "$WORK/tree/integrations/int$i"
	echo '{"max_delete_percent": 40}' > "$WORK/tree/integrations/int$i/integration.json"
done
expect_ok "$TIDESYNC" --state "$STATE" import "$WORK/tree"
ts_mount
ms() { date +%s%3N; }
t0=$(ms)
n=$(tt ls -l "$MNT/integrations" | grep -c '^d')
took=$(($(ms) - t0))
expect_eq "$n" "1000" "ls -l integrations"
[ "$took" -lt 3000 ] || fail "ls -l of 1,000 integrations took $took ms"
t0=$(ms)
tt cat "$MNT/integrations/int0500/integration.json" > /dev/null || fail cat
tt mkdir "$MNT/integrations/int1001" || fail "mkdir among 1,000"
[ $(($(ms) - t0)) -lt 1000 ] || fail "cat + mkdir took $(($(ms) - t0)) ms"
ok "1,000 integrations: ls -l in $took ms"

# a long run history: 300 runs of a small integration
make_sources
make_integration busy
t0=$(ms)
for i in $(seq 1 300); do
	tt bash -c "echo wait > '$MNT/integrations/busy/run'" || fail "run $i: $(last_error)"
done
runs_took=$(($(ms) - t0))
t0=$(ms)
n=$(tt ls -l "$MNT/integrations/busy/runs" | grep -c 'json$')
took=$(($(ms) - t0))
expect_eq "$n" "301" "runs listed (300 and latest.json)"
[ "$took" -lt 3000 ] || fail "ls -l of 300 runs took $took ms"
t0=$(ms)
expect_eq "$(json_get "$MNT/integrations/busy/status" .last_run.id)" \
	"$(json_get "$MNT/integrations/busy/runs/latest.json" .id)" "status and latest agree"
[ $(($(ms) - t0)) -lt 1000 ] || fail "status + latest took $(($(ms) - t0)) ms"
ok "300 runs (${runs_took} ms): ls -l runs/ in $took ms"
