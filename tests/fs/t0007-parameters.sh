#!/bin/bash
# Parameters: LastSyncTime is reset by `: >`, `truncate -s0`, `echo -n >`
# and a python empty write, set by an ISO-8601 time (normalized), and
# anything else is EBADMSG; InitTrackingObjects takes true and false.
. "$(dirname "$0")/lib.sh"

ts_mount
tt mkdir "$MNT/integrations/p" || fail mkdir
P=$MNT/integrations/p/parameters
last() { sq "$STATE" "select last_sync from integrations where name = 'p'"; }
init() { sq "$STATE" "select init_tracking from integrations where name = 'p'"; }

echo 2026-11-26T10:00:00Z > "$P/LastSyncTime" || fail "set LastSyncTime"
expect_eq "$(last)" "2026-11-26T10:00:00Z" "echo sets LastSyncTime"
expect_eq "$(tt cat "$P/LastSyncTime")" "2026-11-26T10:00:00Z" "LastSyncTime reads back"
expect_eq "$(stat -c %s "$P/LastSyncTime")" "21" "LastSyncTime size"
: > "$P/LastSyncTime"
expect_eq "$(last)" "" ": > resets"
echo 2026-11-26T11:00:00+01:00 > "$P/LastSyncTime" || fail "set with an offset"
expect_eq "$(last)" "2026-11-26T10:00:00Z" "an offset is normalized to UTC"
expect_ok tt truncate -s0 "$P/LastSyncTime"
expect_eq "$(last)" "" "truncate -s0 resets"
echo 2026-11-27 > "$P/LastSyncTime" || fail "a date alone"
expect_eq "$(last)" "2026-11-27T00:00:00Z" "a date alone is midnight"
echo -n > "$P/LastSyncTime"
expect_eq "$(last)" "" "echo -n > resets"
echo 2026-11-27T08:00:00Z > "$P/LastSyncTime"
tt python3 -c "open('$P/LastSyncTime', 'w').close()" || fail "python empty write"
expect_eq "$(last)" "" "python's empty write resets"
ok "LastSyncTime: set and reset"

echo 2026-11-26T10:00:00Z > "$P/LastSyncTime"
expect_fail 'Bad message' tt bash -c "echo yesterday > '$P/LastSyncTime'"
expect_match "$(last_error)" '^integrations/p/parameters/LastSyncTime: .*yesterday' "reason"
expect_fail 'Bad message' tt bash -c "echo 2026-13-45T99:00:00Z > '$P/LastSyncTime'"
expect_fail 'Bad message' tt bash -c "echo '2026-11-26 10:00 extra' > '$P/LastSyncTime'"
expect_eq "$(last)" "2026-11-26T10:00:00Z" "invalid times leave it"
ok "LastSyncTime: anything else is EBADMSG"

expect_eq "$(init)" "1" "InitTrackingObjects starts true"
echo false > "$P/InitTrackingObjects" || fail "false"
expect_eq "$(init) $(tt cat "$P/InitTrackingObjects")" "0 false" "set false"
echo true > "$P/InitTrackingObjects" || fail "true"
expect_eq "$(init) $(tt cat "$P/InitTrackingObjects")" "1 true" "set true"
expect_fail 'Bad message' tt bash -c "echo yes > '$P/InitTrackingObjects'"
expect_fail 'Bad message' tt bash -c "echo 'true false' > '$P/InitTrackingObjects'"
: > "$P/InitTrackingObjects"
expect_match "$(last_error)" 'InitTrackingObjects: ' "empty InitTrackingObjects reported"
expect_eq "$(init)" "1" "invalid values leave it"
ok "InitTrackingObjects"
