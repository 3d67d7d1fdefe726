#!/bin/bash
# directus.sh - a real Directus 11.3.5 on 127.0.0.1 for the tests.
#
#   directus.sh install           npm ci of the committed lock file (cached)
#   directus.sh start STATEFILE   install, bootstrap and start a fresh Directus
#                                 (SQLite file in a temp dir), then setup
#   directus.sh setup STATEFILE   test collections, a policy, two users
#   directus.sh stop STATEFILE    stop it and remove its directory
#   directus.sh env STATEFILE     print the state as shell assignments
#
# The install lives outside the source tree, in
# ${TS_DIRECTUS_HOME:-$XDG_CACHE_HOME/tidesync}/directus-<lock hash>, so
# that a second install (another build directory, the next CI run on the
# same machine) is instant and the tree holds no node_modules.  Native
# modules (sqlite3, isolated-vm, argon2) are compiled: their prebuilt-binary
# hosts are pointed at a closed loopback port so they fail at once.
#
# STATEFILE is JSON: {"url", "admin_token", "sync_token", "human_token",
# "sync_user", "human_user", "policy", "pid", "dir"}.  Tests find it through
# $TS_DIRECTUS_STATE.  The port is $TS_DIRECTUS_PORT, else the first free
# one from 8055 up (several build trees may run their tests at once).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}
state=${2:-}
closed=http://127.0.0.1:9

usage() {
	echo "usage: directus.sh install | start STATEFILE | setup STATEFILE | stop STATEFILE | env STATEFILE" >&2
	exit 2
}
die() { echo "directus.sh: $*" >&2; exit 1; }

lockhash=$(sha256sum "$here/package-lock.json" | cut -c1-16)
cachedir=${TS_DIRECTUS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tidesync}
instdir=$cachedir/directus-$lockhash
runjs=$instdir/node_modules/@directus/api/dist/cli/run.js

do_install() {
	mkdir -p "$cachedir"
	if [ -f "$instdir/.installed" ] && [ -f "$runjs" ]; then
		return 0
	fi
	# One install at a time per cache directory (two build trees starting
	# their fixtures together must not both run npm ci in one directory).
	exec 9>"$cachedir/.install-$lockhash.lock"
	flock 9
	if [ -f "$instdir/.installed" ] && [ -f "$runjs" ]; then
		exec 9>&-
		return 0
	fi
	rm -rf "$instdir"
	mkdir -p "$instdir"
	cp "$here/package.json" "$here/package-lock.json" "$instdir/"
	local t0=$SECONDS
	echo "directus.sh: installing Directus into $instdir (npm ci, compiles native modules)" >&2
	if ! (cd "$instdir" &&
		npm_config_sqlite3_binary_host=$closed \
		npm_config_isolated_vm_binary_host=$closed \
		npm_config_update_notifier=false \
		npm ci --no-audit --no-fund --loglevel=error >"$instdir/npm-ci.log" 2>&1); then
		tail -n 40 "$instdir/npm-ci.log" >&2
		die "npm ci failed (full log: $instdir/npm-ci.log)"
	fi
	[ -f "$runjs" ] || die "npm ci succeeded but $runjs is missing"
	# The native modules must load: a missing binary would only show at start.
	(cd "$instdir" && node -e 'require("sqlite3"); require("argon2"); require("isolated-vm")') ||
		die "a native module of the install does not load"
	echo "$((SECONDS - t0))" >"$instdir/.installed"
	echo "directus.sh: installed in $((SECONDS - t0)) s" >&2
	exec 9>&-
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
	if [ -n "${TS_DIRECTUS_PORT:-}" ]; then
		port_free "$TS_DIRECTUS_PORT" || die "port $TS_DIRECTUS_PORT is in use"
		echo "$TS_DIRECTUS_PORT"
		return
	fi
	local p
	for p in $(seq 8055 8155); do
		if port_free "$p"; then echo "$p"; return; fi
	done
	die "no free port between 8055 and 8155"
}

rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

jget() { jq -r "$1" "$state"; }

# The environment of one Directus instance (written to DIR/env so that
# bootstrap and start see the same settings).
write_env() {
	local dir=$1 port=$2 admin_token=$3
	cat >"$dir/env" <<EOF
HOST=127.0.0.1
PORT=$port
PUBLIC_URL=http://127.0.0.1:$port
DB_CLIENT=sqlite3
DB_FILENAME=$dir/data.db
KEY=$(rand)
SECRET=$(rand)
ADMIN_EMAIL=admin@example.com
ADMIN_PASSWORD=$(rand)
ADMIN_TOKEN=$admin_token
TELEMETRY=false
TELEMETRY_URL=$closed
COMPLIANCE_URL=$closed
MARKETPLACE_REGISTRY=$closed
CACHE_ENABLED=false
RATE_LIMITER_ENABLED=false
WEBSOCKETS_ENABLED=false
STORAGE_LOCATIONS=local
STORAGE_LOCAL_ROOT=$dir/uploads
EXTENSIONS_PATH=$dir/extensions
EXTENSIONS_AUTO_RELOAD=false
LOG_LEVEL=warn
LOG_STYLE=raw
EOF
}

do_start() {
	[ -n "$state" ] || usage
	if [ -f "$state" ]; then "$0" stop "$state" || true; fi
	do_install
	local dir port admin_token pid url deadline
	dir=$(mktemp -d "${TMPDIR:-/var/tmp}/ts-directus.XXXXXX")
	mkdir -p "$dir/uploads" "$dir/extensions"
	port=$(pick_port)
	admin_token=admin-$(rand)
	url=http://127.0.0.1:$port
	write_env "$dir" "$port" "$admin_token"
	# Directus reads its settings from the environment; `set -a` exports them.
	(
		set -a
		. "$dir/env"
		set +a
		cd "$instdir"
		node "$runjs" bootstrap >"$dir/bootstrap.log" 2>&1
	) || { cat "$dir/bootstrap.log" >&2; rm -rf "$dir"; die "bootstrap failed"; }
	(
		set -a
		. "$dir/env"
		set +a
		cd "$instdir"
		exec setsid node "$runjs" start >"$dir/server.log" 2>&1 </dev/null
	) &
	pid=$!
	jq -n --arg url "$url" --arg admin "$admin_token" --arg dir "$dir" --argjson pid "$pid" \
		'{url: $url, admin_token: $admin, pid: $pid, dir: $dir}' >"$state"
	deadline=$((SECONDS + ${TS_DIRECTUS_START_TIMEOUT:-90}))
	until [ "$(curl -s -m 2 "$url/server/ping" 2>/dev/null)" = pong ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$dir/server.log" >&2
			"$0" stop "$state" || true
			die "directus exited during start"
		fi
		if [ $SECONDS -ge $deadline ]; then
			cat "$dir/server.log" >&2
			"$0" stop "$state" || true
			die "directus did not answer $url/server/ping in time"
		fi
		sleep 0.3
	done
	# Directus gives a timestamp field without "meta" a half-built one and
	# then rejects it: every timestamp field above carries a "meta".
	if ! "$0" setup "$state"; then
		"$0" stop "$state" || true
		die "setup failed"
	fi
	echo "Directus test server up: $url (state in $state)"
}

do_stop() {
	[ -n "$state" ] || usage
	[ -f "$state" ] || exit 0
	local pid dir
	pid=$(jq -r '.pid // empty' "$state" 2>/dev/null || true)
	dir=$(jq -r '.dir // empty' "$state" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		# setsid made node a process-group leader: end the group (node and
		# anything it spawned), only this one.
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	case $dir in
	*/ts-directus.*) rm -rf "$dir" ;;
	esac
	rm -f "$state"
}

# api METHOD PATH [JSON] - one admin call; fails loudly on an HTTP error.
api() {
	local method=$1 path=$2 body=${3:-} out code
	out=$(mktemp)
	code=$(curl -s -o "$out" -w '%{http_code}' -X "$method" \
		-H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
		${body:+--data "$body"} "$URL$path") || code=000
	if [ "${code:0:1}" != 2 ]; then
		echo "directus.sh: $method $path -> HTTP $code: $(head -c 600 "$out")" >&2
		rm -f "$out"
		return 1
	fi
	cat "$out"
	rm -f "$out"
}

# The test collections.  `items` is the main one: every kind of value the
# connector maps, a unique field (to make one record of a batch fail), and
# the four tracking fields.  `no_times` has no tracking field at all,
# `only_created` lacks the modified-time one.  Tests may create more
# collections with the admin token and grant them through the policy.
collection_items='{
 "collection": "items",
 "schema": {}, "meta": {"singleton": false},
 "fields": [
  {"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}, "meta": {"hidden": true}},
  {"field": "name", "type": "string"},
  {"field": "email", "type": "string", "schema": {"is_unique": true}},
  {"field": "amount", "type": "decimal", "schema": {"numeric_precision": 12, "numeric_scale": 2}},
  {"field": "ratio", "type": "float"},
  {"field": "qty", "type": "integer"},
  {"field": "big", "type": "bigInteger"},
  {"field": "active", "type": "boolean"},
  {"field": "born", "type": "date"},
  {"field": "seen_at", "type": "timestamp", "meta": {}},
  {"field": "local_at", "type": "dateTime"},
  {"field": "notes", "type": "text"},
  {"field": "meta", "type": "json"},
  {"field": "date_created", "type": "timestamp", "meta": {"special": ["date-created"]}},
  {"field": "date_updated", "type": "timestamp", "meta": {"special": ["date-updated"]}},
  {"field": "user_created", "type": "uuid", "meta": {"special": ["user-created"]}},
  {"field": "user_updated", "type": "uuid", "meta": {"special": ["user-updated"]}}
 ]}'
collection_no_times='{
 "collection": "no_times", "schema": {}, "meta": {},
 "fields": [
  {"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
  {"field": "name", "type": "string"}
 ]}'
collection_only_created='{
 "collection": "only_created", "schema": {}, "meta": {},
 "fields": [
  {"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
  {"field": "name", "type": "string"},
  {"field": "date_created", "type": "timestamp", "meta": {"special": ["date-created"]}}
 ]}'
collection_people='{
 "collection": "people", "schema": {}, "meta": {},
 "fields": [
  {"field": "id", "type": "uuid", "schema": {"is_primary_key": true}, "meta": {"special": ["uuid"]}},
  {"field": "full_name", "type": "string"},
  {"field": "email", "type": "string"},
  {"field": "date_created", "type": "timestamp", "meta": {"special": ["date-created"]}},
  {"field": "date_updated", "type": "timestamp", "meta": {"special": ["date-updated"]}},
  {"field": "user_created", "type": "uuid", "meta": {"special": ["user-created"]}},
  {"field": "user_updated", "type": "uuid", "meta": {"special": ["user-updated"]}}
 ]}'

# grant POLICY COLLECTION ACTION... - permissions with no row filter, all fields.
grant() {
	local policy=$1 coll=$2 action body=
	shift 2
	for action in "$@"; do
		body=${body:+$body,}$(jq -cn --arg p "$policy" --arg c "$coll" --arg a "$action" \
			'{policy: $p, collection: $c, action: $a, fields: ["*"], permissions: {}, validation: {}}')
	done
	api POST /permissions "[$body]" >/dev/null
}

do_setup() {
	[ -n "$state" ] || usage
	[ -f "$state" ] || die "no state file $state (run start first)"
	URL=$(jget .url)
	ADMIN_TOKEN=$(jget .admin_token)
	local c policy role sync_id human_id sync_token human_token
	for c in "$collection_items" "$collection_no_times" "$collection_only_created" \
		"$collection_people"; do
		api POST /collections "$c" >/dev/null
	done
	policy=$(api POST /policies '{"name": "tidesync tests", "admin_access": false, "app_access": false}' |
		jq -r .data.id)
	for c in directus_activity directus_fields directus_collections directus_relations; do
		grant "$policy" "$c" read
	done
	grant "$policy" directus_users read
	for c in items no_times only_created people; do
		grant "$policy" "$c" create read update delete
	done
	role=$(api POST /roles "$(jq -cn --arg p "$policy" \
		'{name: "tidesync tests", policies: [{policy: $p}]}')" | jq -r .data.id)
	sync_token=sync-$(rand)
	human_token=human-$(rand)
	sync_id=$(api POST /users "$(jq -cn --arg r "$role" --arg t "$sync_token" \
		'{email: "sync@example.com", first_name: "Sync", role: $r, token: $t, status: "active"}')" |
		jq -r .data.id)
	human_id=$(api POST /users "$(jq -cn --arg r "$role" --arg t "$human_token" \
		'{email: "human@example.com", first_name: "Human", role: $r, token: $t, status: "active"}')" |
		jq -r .data.id)
	local tmp
	tmp=$(mktemp "$state.XXXXXX")
	jq --arg st "$sync_token" --arg ht "$human_token" --arg su "$sync_id" --arg hu "$human_id" \
		--arg p "$policy" --arg r "$role" \
		'. + {sync_token: $st, human_token: $ht, sync_user: $su, human_user: $hu, policy: $p, role: $r}' \
		"$state" >"$tmp"
	mv "$tmp" "$state"
	# The sync user must see its own collections; a policy mistake shows here.
	[ "$(curl -s -H "Authorization: Bearer $sync_token" "$URL/users/me" | jq -r .data.id)" = "$sync_id" ] ||
		die "the sync user's token does not work"
	curl -sf -H "Authorization: Bearer $sync_token" "$URL/items/items" >/dev/null ||
		die "the sync user cannot read collection items"
}

do_env() {
	[ -f "$state" ] || die "no state file $state"
	jq -r 'to_entries[] | "DIRECTUS_\(.key | ascii_upcase)=\(.value | tostring | @sh)"' "$state"
}

case $cmd in
install) do_install ;;
start) do_start ;;
setup) do_setup ;;
stop) do_stop ;;
env) do_env ;;
*) usage ;;
esac
