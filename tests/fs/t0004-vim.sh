#!/bin/bash
# vim in batch mode (-es), with the default backupcopy and with
# backupcopy=yes, no and auto: valid saves are committed and leave no
# scratch files behind; invalid saves make vim exit 1 (E667/E514) and leave
# the stored document as it was, with the reason in MOUNT/errors.
. "$(dirname "$0")/lib.sh"

ts_mount
make_sources
make_integration sales
T=$MNT/integrations/sales/tasks/contacts
rel=integrations/sales/tasks/contacts
DEFAULTS=/usr/share/vim/vim90/defaults.vim
[ -f "$DEFAULTS" ] || DEFAULTS=$(ls /usr/share/vim/vim*/defaults.vim | head -1)
vimx() { tt vim -es -N -u "$DEFAULTS" -i NONE "$@"; }

for bc in default yes no auto; do
	set_bc=()
	[ $bc = default ] || set_bc=(-c "set backupcopy=$bc")
	# valid: swap which name goes first in full_name
	vimx "${set_bc[@]}" -c "%s/first_name + ' ' + last_name/last_name + ' ' + first_name/" -c wq \
		"$T/mapping.json" || fail "vim ($bc) valid save exited $?: $(last_error)"
	expect_eq "$(stored_mapping sales contacts | jq -r .to_target.full_name)" \
		"last_name + ' ' + first_name" "vim ($bc) valid save stored"
	vimx "${set_bc[@]}" -c "%s/last_name + ' ' + first_name/first_name + ' ' + last_name/" -c wq \
		"$T/mapping.json" || fail "vim ($bc) second save exited $?"
	expect_eq "$(stored_mapping sales contacts | jq -r .to_target.full_name)" \
		"first_name + ' ' + last_name" "vim ($bc) second save stored"
	expect_eq "$(tt ls -A "$T" | tr '\n' ' ')" "mapping.json task.json " "vim ($bc) left no scratch files"

	# invalid: a field the target table does not have
	before=$(stored_mapping sales contacts)
	n=$(error_count)
	vimx "${set_bc[@]}" -c '%s/"origin"/"colour"/' -c wq "$T/mapping.json"
	rc=$?
	expect_eq "$rc" "1" "vim ($bc) exit status for an invalid save"
	expect_eq "$(stored_mapping sales contacts)" "$before" "vim ($bc) invalid save not stored"
	expect_eq "$(error_count)" "$((n + 1))" "vim ($bc) one error line"
	expect_match "$(last_error)" "^$rel/mapping.json: to_target.colour: .*colour" "vim ($bc) reason"
	expect_match "$(tt cat "$T/mapping.json")" '"origin"' "vim ($bc) file still shows the old version"
	tt rm -f "$T/mapping.json~" "$T/mapping.jsoz~"
	# invalid JSON
	vimx "${set_bc[@]}" -c '1s/{/{{/' -c wq "$T/mapping.json"
	expect_eq "$?" "1" "vim ($bc) exit status for bad JSON"
	expect_eq "$(stored_mapping sales contacts)" "$before" "vim ($bc) bad JSON not stored"
	expect_match "$(last_error)" "^$rel/mapping.json: line 1" "vim ($bc) bad JSON reason"
	tt rm -f "$T/mapping.json~" "$T/mapping.jsoz~"
	ok "vim backupcopy=$bc"
done

# vim on a parameter: an empty save resets LastSyncTime, a time sets it
P=$MNT/integrations/sales/parameters
vimx -c '%d' -c 'call setline(1, "2026-11-26T10:00:00Z")' -c wq "$P/LastSyncTime" || fail "vim LastSyncTime"
expect_eq "$(tt cat "$P/LastSyncTime")" "2026-11-26T10:00:00Z" "vim set LastSyncTime"
vimx -c '%d' -c wq "$P/LastSyncTime" || fail "vim empty save of LastSyncTime"
expect_eq "$(tt cat "$P/LastSyncTime")" "" "vim empty save resets LastSyncTime"
vimx -c '%d' -c 'call setline(1, "yesterday")' -c wq "$P/LastSyncTime"
expect_eq "$?" "1" "vim invalid LastSyncTime"
expect_match "$(last_error)" 'parameters/LastSyncTime: .*yesterday.*ISO-8601' "LastSyncTime reason"
tt rm -f "$P/LastSyncTime~"
ok "vim on parameters"
