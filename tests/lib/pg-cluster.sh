#!/bin/bash
# pg-cluster.sh start|stop STATEFILE - a throwaway PostgreSQL 15 cluster for
# the tests.  start: initdb into a fresh directory under /var/tmp (run as
# the postgres user when we are root: initdb refuses root), listen on a
# unix socket only, and write a libpq conninfo for it to STATEFILE.
# stop: stop the cluster named in STATEFILE and remove its directory.
set -euo pipefail
cmd=${1:?usage: pg-cluster.sh start|stop STATEFILE}
state=${2:?usage: pg-cluster.sh start|stop STATEFILE}

bindir=${TS_PG_BINDIR:-}
if [ -z "$bindir" ]; then
	for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && { bindir=$d; break; }
	done
fi
[ -n "$bindir" ] || { echo "pg-cluster.sh: no PostgreSQL server binaries found (install postgresql-15)" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
start)
	if [ -f "$state" ]; then "$0" stop "$state" || true; fi
	dir=$(mktemp -d /var/tmp/ts-pg.XXXXXX)
	chmod 755 "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses='' -c unix_socket_directories='$dir' -c port=5433 -c fsync=off -c max_connections=200 -c max_prepared_transactions=0" \
		start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	echo "host=$dir port=5433 user=postgres dbname=postgres" >"$state"
	echo "PostgreSQL test cluster up: $(cat "$state")"
	;;
stop)
	[ -f "$state" ] || exit 0
	dir=$(sed -n 's/^host=\([^ ]*\) .*/\1/p' "$state")
	if [ -n "$dir" ] && [ -d "$dir/data" ]; then
		as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$dir"
	fi
	rm -f "$state"
	;;
*) echo "usage: pg-cluster.sh start|stop STATEFILE" >&2; exit 2 ;;
esac
