#!/bin/bash
# sync_bench.sh - issue #2's benchmark: first sync of N rows (8 columns of
# mixed types) SQLite -> PostgreSQL and PostgreSQL -> SQLite beside the
# baselines measured in the same run (psql \copy and sqlite3 .import of the
# same rows as CSV), an incremental run with 1% changed rows (right after
# the first sync, and again after a checkpoint, each beside PostgreSQL's
# own UPDATE of as many rows: the floor), seven such runs in a row (the
# mean, which includes folding the pair delta), and a run with nothing
# changed.
# Prints rows/s, seconds and peak RSS; medians of REPS.
#
#   bench/sync_bench.sh [ROWS] [REPS]      (defaults 1000000 3)
#
# Needs: build/tidesync, PostgreSQL 15 server binaries, sqlite3, GNU time.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rows=${1:-1000000}
reps=${2:-3}
changes=$((rows / 100))
bin=${TIDESYNC:-$src/build/tidesync}
[ -x "$bin" ] || { echo "build tidesync first (cmake --build build)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "install GNU time (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/ts-bench.XXXXXX)
pgstate=$work/pg.conninfo
cleanup() { "$src/tests/lib/pg-cluster.sh" stop "$pgstate" || true; rm -rf "$work"; }
trap cleanup EXIT
"$src/tests/lib/pg-cluster.sh" start "$pgstate" >/dev/null
pg=$(cat "$pgstate")
# psql itself, not Debian's wrapper (/usr/bin/psql, a Perl script that
# takes ~20 ms to start): the baselines time PostgreSQL, not Perl.
psql=psql
for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
	[ -x "$d/psql" ] && { psql=$d/psql; break; }
done
psql_() { "$psql" "$pg" -v ON_ERROR_STOP=1 -qAt "$@"; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# runs a command under GNU time; prints "seconds maxrss_kib".  A timed step
# starts from a quiet machine: PostgreSQL's checkpoint and the kernel's
# writeback of the step before (a million rows) would otherwise land in it.
# warm: without the checkpoint, as when runs follow each other; after one,
# PostgreSQL writes a full page image for the first change of every page, so
# 10,000 updates spread over a million rows cost it about twice as much.
quiesce() { psql_ -c CHECKPOINT; sync; }
run_timed() {
	local t0=$EPOCHREALTIME t1
	/usr/bin/time -f '%M' -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; return 1; }
	t1=$EPOCHREALTIME # (GNU time's %e has 10 ms steps: too coarse for the short runs)
	awk -v a="$t0" -v b="$t1" -v m="$(cat "$work/time")" 'BEGIN {printf "%.3f %s\n", b - a, m}'
}
timed() { quiesce; run_timed "$@"; }
warm() { sync; run_timed "$@"; }
# PostgreSQL's own UPDATE of `changes` rows spread like the bench's changes
# (every 100th from $1, rows no run touched), in one statement and without
# the capture trigger, as tidesync writes: the floor of an incremental run.
pg_update() { "$psql" "$pg" -v ON_ERROR_STOP=1 -qAt -c "BEGIN" -c "SELECT set_config('tidesync.applying', '1', true)" \
	-c "UPDATE items SET qty = qty + 1 WHERE id = ANY (ARRAY(SELECT generate_series($1, $rows, 100)))" -c "COMMIT"; }
export -f pg_update
export pg rows psql

SQ_DDL="CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, email TEXT, qty INTEGER, price NUMERIC, active BOOLEAN, born DATE, seen TIMESTAMPTZ)"
PG_DDL="CREATE TABLE items (id bigserial PRIMARY KEY, name text, email text, qty integer, price numeric(12,2), active boolean, born date, seen timestamptz)"

echo "generating $rows rows..."
sqlite3 "$work/gen.db" "$SQ_DDL;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < $rows)
INSERT INTO items(name,email,qty,price,active,born,seen)
SELECT 'name '||i, 'user'||i||'@example.invalid', i % 1000, printf('%d.%02d', i % 10000, i % 100),
       i % 2, date('2000-01-01', '+'||(i % 9000)||' days'),
       strftime('%Y-%m-%d %H:%M:%S+00:00', 946684800 + i * 37, 'unixepoch') FROM n;"
sqlite3 -csv "$work/gen.db" "SELECT name,email,qty,price,CASE active WHEN 1 THEN 'true' ELSE 'false' END,born,seen FROM items" >"$work/items.csv"

setup_state() { # $1 dir, $2 src conn json, $3 tgt conn json
	local d=$1
	mkdir -p "$d/tree/connections" "$d/tree/integrations/bench/tasks/items" "$d/tree/integrations/bench/parameters"
	echo "$2" >"$d/tree/connections/src.json"
	echo "$3" >"$d/tree/connections/tgt.json"
	echo '{"source": "src", "target": "tgt", "max_delete_percent": 100}' >"$d/tree/integrations/bench/integration.json"
	echo '{"source_object": "items", "target_object": "items"}' >"$d/tree/integrations/bench/tasks/items/task.json"
	echo '{"to_target": {}, "to_source": {}}' >"$d/tree/integrations/bench/tasks/items/mapping.json"
	"$bin" --state "$d/state.db" import "$d/tree" >/dev/null
}

declare -A R
add() { R[$1]="${R[$1]:-} $2"; }

for rep in $(seq 1 "$reps"); do
	echo "repetition $rep of $reps"
	# baselines
	psql_ -c "DROP TABLE IF EXISTS items; $PG_DDL"
	read -r s m < <(timed "$psql" "$pg" -v ON_ERROR_STOP=1 -c "\\copy items(name,email,qty,price,active,born,seen) FROM '$work/items.csv' CSV")
	add copy_s "$s"
	rm -f "$work/imp.db"
	sqlite3 "$work/imp.db" "$SQ_DDL"
	read -r s m < <(timed sqlite3 "$work/imp.db" ".mode csv" ".import $work/items.csv items_csv")
	add import_s "$s"

	# SQLite -> PostgreSQL
	d=$work/sq2pg.$rep
	mkdir -p "$d"
	cp "$work/gen.db" "$d/src.db"
	psql_ -c "DROP TABLE IF EXISTS items; DROP SCHEMA IF EXISTS tidesync CASCADE; $PG_DDL"
	setup_state "$d" "{\"type\":\"sqlite\",\"path\":\"$d/src.db\"}" "{\"type\":\"postgres\",\"conninfo\":\"$pg\"}"
	read -r s m < <(timed "$bin" --state "$d/state.db" run bench)
	add sq2pg_s "$s"; add sq2pg_rss "$m"
	[ "$(psql_ -c 'SELECT count(*) FROM items')" = "$rows" ] || { echo "sq2pg: wrong row count" >&2; exit 1; }
	# incremental, warm: right after the first sync; then its floor
	sqlite3 "$d/src.db" "UPDATE items SET qty = qty + 1 WHERE id % 100 = 0"
	read -r s m < <(warm "$bin" --state "$d/state.db" run bench)
	add sq2pg_inc_s "$s"; add sq2pg_inc_rss "$m"
	grep -q "to_target: 0 inserted, $changes updated" "$work/out" || { cat "$work/out"; echo "incremental run did not update $changes rows" >&2; exit 1; }
	read -r s m < <(warm bash -c 'pg_update 50')
	add pg_update_s "$s"
	# incremental after a checkpoint (other rows); then its floor
	sqlite3 "$d/src.db" "UPDATE items SET qty = qty + 1 WHERE id % 100 = 20"
	read -r s m < <(timed "$bin" --state "$d/state.db" run bench)
	add sq2pg_incc_s "$s"
	grep -q "to_target: 0 inserted, $changes updated" "$work/out" || { cat "$work/out"; echo "incremental run did not update $changes rows" >&2; exit 1; }
	read -r s m < <(timed bash -c 'pg_update 70')
	add pg_updatec_s "$s"
	read -r s m < <(timed "$bin" --state "$d/state.db" run bench)
	add sq2pg_nop_s "$s"; add sq2pg_nop_rss "$m"
	# steady state: 7 warm runs in a row, 1% other rows each.  At a million
	# rows the pair delta then passes 65,536 rows once and is folded back
	# into the pairs, which one run of about every 6.5 pays for
	# (docs/architecture.md): the mean is the cost per run over time, the
	# single runs above are not.
	tot=0
	for k in 1 2 3 4 5 6 7; do
		sqlite3 "$d/src.db" "UPDATE items SET qty = qty + 1 WHERE id % 100 = $((30 + k))"
		read -r s m < <(warm "$bin" --state "$d/state.db" run bench)
		tot=$(awk -v a="$tot" -v b="$s" 'BEGIN {print a + b}')
		add sq2pg_seq_max_s "$s"
	done
	add sq2pg_seq_s "$(awk -v t="$tot" 'BEGIN {printf "%.3f", t / 7}')"

	# PostgreSQL -> SQLite (the PostgreSQL table filled above is the source)
	d=$work/pg2sq.$rep
	mkdir -p "$d"
	sqlite3 "$d/tgt.db" "$SQ_DDL"
	psql_ -c "DROP SCHEMA IF EXISTS tidesync CASCADE"
	setup_state "$d" "{\"type\":\"postgres\",\"conninfo\":\"$pg\"}" "{\"type\":\"sqlite\",\"path\":\"$d/tgt.db\"}"
	read -r s m < <(timed "$bin" --state "$d/state.db" run bench)
	add pg2sq_s "$s"; add pg2sq_rss "$m"
	[ "$(sqlite3 "$d/tgt.db" 'SELECT count(*) FROM items')" = "$rows" ] || { echo "pg2sq: wrong row count" >&2; exit 1; }
	psql_ -c "UPDATE items SET qty = qty + 1 WHERE id % 100 = 0"
	read -r s m < <(warm "$bin" --state "$d/state.db" run bench)
	add pg2sq_inc_s "$s"; add pg2sq_inc_rss "$m"
	read -r s m < <(timed "$bin" --state "$d/state.db" run bench)
	add pg2sq_nop_s "$s"; add pg2sq_nop_rss "$m"
	rm -rf "$work"/sq2pg.* "$work"/pg2sq.*
done

med() { echo "${R[$1]}" | tr ' ' '\n' | grep . | median; }
rate() { awk -v r="$rows" -v s="$1" 'BEGIN {printf "%.0f", r / s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f%%", 100 * a / b}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

c=$(med copy_s); i=$(med import_s)
a=$(med sq2pg_s); b=$(med pg2sq_s)
echo
echo "rows: $rows, repetitions: $reps (medians)"
printf '%-40s %8.3fs %10s rows/s\n' "baseline psql \\copy" "$c" "$(rate "$c")"
printf '%-40s %8.3fs %10s rows/s\n' "baseline sqlite3 .import" "$i" "$(rate "$i")"
printf '%-40s %8.3fs %10s rows/s  peak RSS %s MiB  rate vs \\copy %s\n' "first sync SQLite -> PostgreSQL" "$a" "$(rate "$a")" "$(mib "$(med sq2pg_rss)")" "$(ratio "$c" "$a")"
printf '%-40s %8.3fs %10s rows/s  peak RSS %s MiB  rate vs .import %s\n' "first sync PostgreSQL -> SQLite" "$b" "$(rate "$b")" "$(mib "$(med pg2sq_rss)")" "$(ratio "$i" "$b")"
x=$(med sq2pg_inc_s); y=$(med pg2sq_inc_s)
printf '%-40s %8.3fs  peak RSS %s MiB  %s of the first sync\n' "incremental $changes changes SQ -> PG" "$x" "$(mib "$(med sq2pg_inc_rss)")" "$(pct "$x" "$a")"
u=$(med pg_update_s)
printf '%-40s %8.3fs  %s of the first sync (the floor; the run takes %sx this)\n' "  PostgreSQL's own UPDATE of those rows" "$u" "$(pct "$u" "$a")" "$(ratio "$x" "$u")"
xc=$(med sq2pg_incc_s); uc=$(med pg_updatec_s)
printf '%-40s %8.3fs  %s of the first sync\n' "  the same after a checkpoint" "$xc" "$(pct "$xc" "$a")"
printf '%-40s %8.3fs  %s of the first sync (the floor; the run takes %sx this)\n' "  PostgreSQL's own UPDATE after one" "$uc" "$(pct "$uc" "$a")" "$(ratio "$xc" "$uc")"
xs=$(med sq2pg_seq_s); xm=$(echo "${R[sq2pg_seq_max_s]}" | tr ' ' '\n' | grep . | sort -g | tail -1)
printf '%-40s %8.3fs  %s of the first sync (the slowest, folding: %.3fs)\n' "  7 runs in a row, mean" "$xs" "$(pct "$xs" "$a")" "$xm"
printf '%-40s %8.3fs  peak RSS %s MiB  %s of the first sync\n' "incremental $changes changes PG -> SQ" "$y" "$(mib "$(med pg2sq_inc_rss)")" "$(pct "$y" "$b")"
printf '%-40s %8.3fs  peak RSS %s MiB\n' "nothing changed SQ -> PG" "$(med sq2pg_nop_s)" "$(mib "$(med sq2pg_nop_rss)")"
printf '%-40s %8.3fs  peak RSS %s MiB\n' "nothing changed PG -> SQ" "$(med pg2sq_nop_s)" "$(mib "$(med pg2sq_nop_rss)")"
