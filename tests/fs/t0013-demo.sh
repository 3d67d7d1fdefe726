#!/bin/bash
# `tidesync demo DIR`: two SQLite databases, a state store and a mount at
# DIR/mnt in the background; ls, cat, a vim edit and `echo wait > run`
# move rows; the printed text says how to unmount.
. "$(dirname "$0")/lib.sh"

D=$WORK/demo
out=$("$TIDESYNC" demo "$D" 2>&1) || fail "tidesync demo: $out"
DM=$D/mnt
mountpoint -q "$DM" || fail "the demo is not mounted"
pid=$(pgrep -f "mount $DM --state" | head -1)
[ -n "$pid" ] || fail "no daemon for the demo"
stop_demo() {
	mountpoint -q "$DM" && { fusermount3 -u "$DM" || fusermount3 -u -z "$DM"; }
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -TERM "$pid"
}
trap 'st=$?; stop_demo; ts_cleanup $st' EXIT
expect_match "$out" "fusermount3 -u $DM" "the demo says how to unmount"
expect_match "$out" "echo wait > integrations/demo/run" "the demo says what to try"

expect_eq "$(tt ls "$DM/integrations")" "demo" "the demo integration"
expect_eq "$(tt ls "$DM/integrations/demo/tasks")" "contacts" "the demo task"
expect_eq "$(tt ls "$DM/connections" | tr '\n' ' ')" "crm.json warehouse.json " "the demo connections"
expect_eq "$(sq "$D/warehouse.db" "select count(*) from people")" "0" "warehouse starts empty"
(cd "$DM" && tt bash -c "echo wait > integrations/demo/run") || fail "demo run: $(tt cat "$DM/errors")"
expect_eq "$(sq "$D/warehouse.db" "select count(*) from people")" "4" "rows moved"
expect_eq "$(sq "$D/warehouse.db" "select full_name from people where email = 'ada@example.org'")" \
	"Ada Lovelace" "mapped name"
tt vim -es -N -u /usr/share/vim/vim90/defaults.vim -i NONE -c "%s/'crm'/'demo'/" -c wq \
	"$DM/integrations/demo/tasks/contacts/mapping.json" || fail "vim edit of the demo mapping"
sq "$D/crm.db" "update contacts set company = 'Navy Research' where email = 'grace@example.org'"
(cd "$DM" && tt bash -c "echo wait > integrations/demo/run") || fail "second demo run"
expect_eq "$(sq "$D/warehouse.db" "select origin from people where email = 'grace@example.org'")" \
	"demo" "the edited mapping applies to changed records"
ok "the demo mounts and syncs"

# running it again only mounts (here: it is mounted already)
out=$("$TIDESYNC" demo "$D" 2>&1) || fail "second tidesync demo: $out"
expect_match "$out" "mounted already" "second demo run"
tt "$TIDESYNC" umount "$DM" || fail "tidesync umount of the demo"
mountpoint -q "$DM" && fail "still mounted after tidesync umount"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the demo daemon did not exit"
grep -q "stopped" "$D/tidesync.log" || fail "the demo log: $(cat "$D/tidesync.log")"
ok "tidesync umount ends the demo daemon"
