#!/bin/bash
# What a person sees: vim, nano and emacs driven in tmux.  A valid save is
# committed; an invalid one shows the editor's write error on screen, keeps
# the stored document, and the reason is in MOUNT/errors.
. "$(dirname "$0")/lib.sh"

for t in tmux nano emacs vim; do
	command -v $t >/dev/null || fail "$t is missing (Debian packages: tmux nano emacs-nox vim)"
done
SOCK=tidesync-test-$$
tm() { tmux -L "$SOCK" -f /dev/null "$@"; }
stop_tmux() { tm kill-server 2>/dev/null; }
trap 'st=$?; stop_tmux; ts_cleanup $st' EXIT

ts_mount
make_sources
make_integration sales
T=$MNT/integrations/sales/tasks/contacts
P=$MNT/integrations/sales/parameters
rel=integrations/sales/tasks/contacts

# start NAME CMD...: an editor in a fresh tmux session, 250x30 (long paths)
start() {
	local name=$1
	shift
	tm new-session -d -s "$name" -x 250 -y 30 -- env TERM=xterm HOME="$WORK" "$@" ||
		fail "cannot start $*"
}
screen() { tm capture-pane -p -t "$1"; }
# wait_screen SESSION REGEX: until the screen shows REGEX (10 s)
wait_screen() {
	local i s
	for i in $(seq 1 100); do
		s=$(screen "$1")
		printf '%s' "$s" | grep -Eq -- "$2" && return 0
		sleep 0.1
	done
	fail "$1: the screen never showed /$2/:
$s"
}
keys() { local s=$1; shift; tm send-keys -t "$s" "$@"; sleep 0.2; }
gone() {
	local i
	for i in $(seq 1 50); do
		tm has-session -t "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	fail "$1 did not exit"
}

# ---- vim ----
start vim vim -N -u /usr/share/vim/vim90/defaults.vim -i NONE "$T/mapping.json"
wait_screen vim '"to_target"'
before=$(stored_mapping sales contacts)
keys vim ':%s/"origin"/"colour"/' Enter
keys vim ':w' Enter
wait_screen vim 'E667|E514|E512|Fsync failed|[Ww]rite error'
expect_eq "$(stored_mapping sales contacts)" "$before" "vim: invalid save not stored"
expect_match "$(last_error)" "^$rel/mapping.json: to_target.colour: " "vim: reason in errors"
keys vim ':%s/"colour"/"origin"/' Enter
keys vim ":%s/'crm'/'CRM'/" Enter
keys vim ':w' Enter
wait_screen vim 'written'
expect_eq "$(stored_mapping sales contacts | jq -r .to_target.origin)" "'CRM'" "vim: valid save stored"
keys vim ':q!' Enter
gone vim
tt rm -f "$T/mapping.json~" "$T/mapping.jsoz~"
ok "vim in a terminal"

# ---- nano ----
start nano nano --ignorercfiles "$P/InitTrackingObjects"
wait_screen nano 'true'
keys nano C-k
keys nano 'maybe'
keys nano C-o
keys nano Enter
wait_screen nano 'Error writing .*Bad message'
expect_eq "$(tt cat "$P/InitTrackingObjects")" "true" "nano: invalid save not stored"
expect_match "$(last_error)" "parameters/InitTrackingObjects: .*maybe" "nano: reason in errors"
keys nano C-k
keys nano 'false'
keys nano C-o
keys nano Enter
wait_screen nano 'Wrote 1 line'
expect_eq "$(tt cat "$P/InitTrackingObjects")" "false" "nano: valid save stored"
keys nano C-x
gone nano
start nano2 nano --ignorercfiles "$T/mapping.json"
wait_screen nano2 '"to_target"'
before=$(stored_mapping sales contacts)
keys nano2 'x'
keys nano2 C-o
keys nano2 Enter
wait_screen nano2 'Error writing .*Bad message'
expect_eq "$(stored_mapping sales contacts)" "$before" "nano: bad JSON not stored"
expect_match "$(last_error)" "^$rel/mapping.json: line 1" "nano: JSON reason in errors"
keys nano2 BSpace
# cut line 3 (the first field of to_target, with its comma): still valid
keys nano2 C-_
keys nano2 '3' Enter
keys nano2 C-k
keys nano2 C-o
keys nano2 Enter
wait_screen nano2 'Wrote [0-9]+ lines'
expect_eq "$(stored_mapping sales contacts | jq -r '.to_target | has("full_name")')" "false" \
	"nano: valid JSON save stored"
keys nano2 C-x
gone nano2
ok "nano in a terminal"

# ---- emacs ----
start emacs emacs -nw -Q "$T/mapping.json"
wait_screen emacs '"to_target"'
before=$(stored_mapping sales contacts)
keys emacs 'x'
keys emacs C-x C-s
wait_screen emacs '[Ww]rite error|Bad message'
expect_eq "$(stored_mapping sales contacts)" "$before" "emacs: bad JSON not stored"
expect_match "$(last_error)" "^$rel/mapping.json: line 1" "emacs: reason in errors"
keys emacs BSpace
keys emacs M-g g
keys emacs '3' Enter
keys emacs C-k C-k
keys emacs C-x C-s
wait_screen emacs 'Wrote '
expect_eq "$(stored_mapping sales contacts | jq -r '.to_target | has("email")')" "false" \
	"emacs: valid save stored"
keys emacs C-x C-c
gone emacs
expect_eq "$(tt ls -A "$T" | grep -c '^\.#')" "0" "emacs removed its lock"
ok "emacs in a terminal"
