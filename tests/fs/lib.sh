# lib.sh - shared helpers of the end-to-end tests over a real FUSE mount
# (sourced by tests/fs/tNNNN-*.sh; ctest sets TIDESYNC to the binary).
#
# Each test gets a fresh directory under /var/tmp (editors behave
# differently under /tmp), a fresh state store and a daemon started in the
# foreground in the background.  Every command that touches the mount runs
# under `timeout` (use tt), so a hung mount fails the test instead of
# hanging it.  Teardown in the EXIT trap unmounts (lazily if need be),
# waits for the daemon and checks its exit status and its log for
# sanitizer reports.

set -u -o pipefail

: "${TIDESYNC:?TIDESYNC must name the tidesync binary (ctest sets it)}"
if [ ! -c /dev/fuse ]; then
	echo "FAIL: /dev/fuse is missing: the FUSE tests cannot run here" >&2
	exit 1
fi
if ! command -v fusermount3 >/dev/null; then
	echo "FAIL: fusermount3 is missing (Debian package fuse3)" >&2
	exit 1
fi

T_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "/var/tmp/tidesync-$T_NAME.XXXXXX")
MNT=$WORK/mnt
STATE=$WORK/state.db
DAEMON_LOG=$WORK/daemon.log
DAEMON_PID=
T_FAILED=0
T_COUNT=0

# tt CMD...: run a command that touches the mount, with a deadline.
tt() { timeout -k 5 "${TT_TIMEOUT:-20}" "$@"; }

fail() {
	echo "FAIL: $T_NAME: $*" >&2
	T_FAILED=1
	exit 1
}

ok() {
	T_COUNT=$((T_COUNT + 1))
	echo "ok $T_COUNT - $*"
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# expect_match TEXT REGEX WHAT
expect_match() {
	printf '%s' "$1" | grep -Eq -- "$2" || fail "$3: '$1' does not match /$2/"
}

# expect_fail REGEX CMD...: CMD fails and its stderr matches REGEX.
expect_fail() {
	local re=$1 out rc
	shift
	out=$("$@" 2>&1 >/dev/null)
	rc=$?
	[ $rc -ne 0 ] || fail "'$*' succeeded, expected a failure matching /$re/"
	printf '%s' "$out" | grep -Eq -- "$re" || fail "'$*' failed with '$out', expected /$re/"
}

# expect_ok CMD...: CMD succeeds (its stderr is shown otherwise).
expect_ok() {
	local out
	out=$("$@" 2>&1 >/dev/null) || fail "'$*' failed: $out"
}

# last_error: the newest line of MOUNT/errors.
last_error() { tt tail -n 1 "$MNT/errors"; }

# error_count: lines in MOUNT/errors.
error_count() { tt wc -l < "$MNT/errors"; }

# sq DB SQL: query an SQLite database (the state store or a data source).
sq() { sqlite3 -batch -noheader "$1" "$2"; }

# The stored documents, read from the state store itself (not the mount).
stored_task() { sq "$STATE" "select t.doc from tasks t join integrations i on i.id = t.integration_id where i.name = '$1' and t.name = '$2'"; }
stored_mapping() { sq "$STATE" "select t.mapping from tasks t join integrations i on i.id = t.integration_id where i.name = '$1' and t.name = '$2'"; }
stored_integration() { sq "$STATE" "select doc from integrations where name = '$1'"; }
stored_connection() { sq "$STATE" "select doc from connections where name = '$1'"; }

ts_mount() {
	mkdir -p "$MNT"
	"$TIDESYNC" mount "$MNT" --state "$STATE" -f "$@" 2>>"$DAEMON_LOG" &
	DAEMON_PID=$!
	local i
	for i in $(seq 1 200); do
		mountpoint -q "$MNT" && return 0
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID"
			DAEMON_PID=
			fail "the daemon died before mounting: $(cat "$DAEMON_LOG")"
		fi
		sleep 0.05
	done
	fail "the mount did not appear within 10 s"
}

# ts_wait_daemon SECONDS: waits for the daemon to exit; sets DAEMON_RC.
ts_wait_daemon() {
	local i n=$(($1 * 20))
	DAEMON_RC=
	for i in $(seq 1 "$n"); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		sleep 2
		kill -KILL "$DAEMON_PID" 2>/dev/null
	fi
	wait "$DAEMON_PID"
	DAEMON_RC=$?
	DAEMON_PID=
}

check_daemon_log() {
	if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer' "$DAEMON_LOG"; then
		fail "sanitizer report in the daemon's log: $(grep -E -A20 'Sanitizer|runtime error' "$DAEMON_LOG" | head -40)"
	fi
}

# ts_umount: unmount, wait for the daemon, require exit status 0.
ts_umount() {
	[ -n "$DAEMON_PID" ] || return 0
	tt fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
	ts_wait_daemon 30
	check_daemon_log
	[ "$DAEMON_RC" = 0 ] || fail "the daemon exited with status $DAEMON_RC: $(tail -20 "$DAEMON_LOG")"
}

ts_cleanup() {
	local rc=${1:-$?}
	trap - EXIT
	if [ -n "$DAEMON_PID" ]; then
		if mountpoint -q "$MNT"; then
			fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null
		fi
		ts_wait_daemon 30
		if [ "$DAEMON_RC" != 0 ]; then
			echo "FAIL: $T_NAME: the daemon exited with status $DAEMON_RC" >&2
			rc=1
		fi
		if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$DAEMON_LOG"; then
			echo "FAIL: $T_NAME: sanitizer report in the daemon's log" >&2
			rc=1
		fi
	fi
	# a daemon that died leaves a mount that mountpoint(1) cannot stat
	grep -q " $MNT fuse" /proc/mounts && fusermount3 -u -z "$MNT"
	if [ $rc -ne 0 ] || [ $T_FAILED -ne 0 ]; then
		echo "--- daemon log ($DAEMON_LOG) ---" >&2
		tail -n 60 "$DAEMON_LOG" >&2
		[ -n "${KEEP:-}" ] || rm -rf "$WORK"
		exit 1
	fi
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
	echo "# $T_NAME: $T_COUNT checks passed"
	exit 0
}
trap ts_cleanup EXIT

# Two SQLite data sources: crm.db (contacts, 3 rows) and wh.db (people,
# empty; nokey without a generated key), and connections to them.
make_sources() {
	sq "$WORK/crm.db" "create table contacts (id integer primary key, first_name text,
		last_name text, email text, company text);
		insert into contacts (first_name, last_name, email, company) values
		('Ada', 'Lovelace', 'ada@example.org', 'Engines'),
		('Grace', 'Hopper', 'grace@example.org', 'Navy'),
		('Alan', 'Turing', 'alan@example.org', 'Bletchley');"
	sq "$WORK/wh.db" "create table people (id integer primary key, full_name text,
		email text, origin text);
		create table nokey (name text);"
	printf '{"type": "sqlite", "path": "%s"}\n' "$WORK/crm.db" > "$MNT/connections/crm.json" ||
		fail "cannot create connections/crm.json"
	printf '{"type": "sqlite", "path": "%s"}\n' "$WORK/wh.db" > "$MNT/connections/wh.json" ||
		fail "cannot create connections/wh.json"
}

# make_integration NAME [TASK]: an integration crm -> wh with a task
# (default "contacts") syncing contacts <-> people.
make_integration() {
	local name=$1 task=${2:-contacts} d="$MNT/integrations/$1"
	tt mkdir "$d" || fail "mkdir integrations/$name"
	echo '{"source": "crm", "target": "wh"}' > "$d/integration.json" ||
		fail "write integrations/$name/integration.json"
	tt mkdir "$d/tasks/$task" || fail "mkdir tasks/$task"
	echo '{"source_object": "contacts", "target_object": "people", "match_on": {"email": "email"}}' \
		> "$d/tasks/$task/task.json" || fail "write task.json"
	cat > "$d/tasks/$task/mapping.json" <<-'EOF' || fail "write mapping.json"
	{"to_target": {"full_name": "first_name + ' ' + last_name", "email": "email",
	               "origin": "'crm'"},
	 "to_source": {"first_name": "token(full_name, ' ', 1)",
	               "last_name": "token(full_name, ' ', 2)", "email": "email"}}
	EOF
}

# json_get FILE JQ-FILTER
json_get() { tt jq -r "$2" "$1"; }
