#!/bin/bash
# cloud_bench.sh - issue #4's benchmark: a first sync of N new records
# Directus -> PostgreSQL and N new records PostgreSQL -> Directus with
# `tidesync run` (state set up with `tidesync import`), against a real
# Directus 11.3.5 and a throwaway PostgreSQL that the script starts and
# stops itself (tests/directus/directus.sh, tests/lib/pg-cluster.sh).
#
# Each direction runs twice, on fresh collections/tables and a fresh state:
#   counted  through tests/rest/faultproxy.py (empty plan) in front of
#            Directus, whose /__fault/stats gives the number of HTTP
#            requests tidesync sent, by method and path;
#   timed    straight to Directus: wall time and peak RSS (GNU time);
#            Directus -> PostgreSQL, which takes under a second, is timed
#            three times (medians, as is its curl baseline).
# Beside it, the baseline: the time Directus itself needs to answer the
# same requests sent back to back by one curl process over one kept-alive
# connection (curl --next): the creates as POSTs of 500 records with the
# same values (the preset's batch size, ?fields=id as the connector asks),
# and the reads as the connector's keyset pages of 1000 (same filter, sort
# and field list).  Prints records/s, requests against the minimum the API
# allows (records / batch size + the pages), peak RSS and the time ratios.
#
#   bench/cloud_bench.sh [RECORDS]        (default 10000)
#
# Environment: TIDESYNC (default build/tidesync; use an optimized build),
# TS_DIRECTUS_PORT (else the first free port from 8055).  Needs node/npm
# (Directus is installed from the committed lock file, cached), PostgreSQL
# server binaries, psql, curl, jq, python3, GNU time.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10000}
bin=${TIDESYNC:-$src/build/tidesync}
[ -x "$bin" ] || { echo "build tidesync first (cmake --build build), or set TIDESYNC" >&2; exit 1; }
bin=$(realpath "$bin")
for c in /usr/bin/time curl jq psql python3; do
	command -v "$c" >/dev/null || { echo "cloud_bench.sh: $c is missing" >&2; exit 1; }
done
batch=500 # the Directus preset's write.create.batch_max
page=1000 # the Directus preset's read.page_size

work=$(mktemp -d /var/tmp/ts-cloudbench.XXXXXX)
pgstate=$work/pg.conninfo
dxstate=$work/directus.json
proxy_pid=
cleanup() {
	set +e
	[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
	"$src/tests/directus/directus.sh" stop "$dxstate"
	"$src/tests/lib/pg-cluster.sh" stop "$pgstate"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "cloud_bench.sh: $*" >&2; exit 1; }

echo "starting PostgreSQL and Directus..."
"$src/tests/lib/pg-cluster.sh" start "$pgstate" >/dev/null
"$src/tests/directus/directus.sh" start "$dxstate" >/dev/null
pg_base=$(cat "$pgstate")
dx_url=$(jq -r .url "$dxstate")
admin=$(jq -r .admin_token "$dxstate")
sync_token=$(jq -r .sync_token "$dxstate")
policy=$(jq -r .policy "$dxstate")

python3 "$src/tests/rest/faultproxy.py" "$dx_url" "$work/proxy.port" &
proxy_pid=$!
for _ in $(seq 1 100); do [ -s "$work/proxy.port" ] && break; sleep 0.05; done
[ -s "$work/proxy.port" ] || die "the fault proxy did not start"
proxy_url=http://127.0.0.1:$(cat "$work/proxy.port")
proxy() { curl -sf -X "$1" "$proxy_url/__fault/$2"; }
proxy POST plan '[]' >/dev/null

# api TOKEN METHOD PATH [JSON]: one Directus call, fails on an HTTP error
api() {
	local out=$work/api.out code
	code=$(curl -s -o "$out" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
		-H 'Content-Type: application/json' ${4:+--data "$4"} "$dx_url$3") || code=000
	[ "${code:0:1}" = 2 ] || die "$2 $3 -> HTTP $code: $(head -c 400 "$out")"
	cat "$out"
}

# The records: 8 fields of mixed types, as in bench/sync_bench.sh.
FIELDS='[{"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
 {"field": "date_created", "type": "timestamp", "meta": {"special": ["date-created"]}},
 {"field": "date_updated", "type": "timestamp", "meta": {"special": ["date-updated"]}},
 {"field": "user_created", "type": "uuid", "meta": {"special": ["user-created"]}},
 {"field": "user_updated", "type": "uuid", "meta": {"special": ["user-updated"]}},
 {"field": "name", "type": "string"}, {"field": "email", "type": "string"},
 {"field": "qty", "type": "integer"},
 {"field": "price", "type": "decimal", "schema": {"numeric_precision": 12, "numeric_scale": 2}},
 {"field": "active", "type": "boolean"}, {"field": "born", "type": "date"},
 {"field": "seen", "type": "timestamp", "meta": {}}]'
# the field list the connector asks for when it reads (every field it knows)
READ_FIELDS=id,date_created,date_updated,user_created,user_updated,name,email,qty,price,active,born,seen
PG_DDL="CREATE TABLE items (id bigserial PRIMARY KEY, name text, email text, qty integer,
	price numeric(12,2), active boolean, born date, seen timestamptz)"

collection() { # NAME: a collection the sync user may create/read/update/delete in
	api "$admin" POST /collections "{\"collection\": \"$1\", \"schema\": {}, \"meta\": {}, \"fields\": $FIELDS}" >/dev/null
	api "$admin" POST /permissions "$(jq -cn --arg p "$policy" --arg c "$1" \
		'[("create", "read", "update", "delete") | {policy: $p, collection: $c, action: ., fields: ["*"], permissions: {}, validation: {}}]')" >/dev/null
}
dx_count() {
	api "$admin" GET "/items/$1?aggregate%5Bcount%5D=id" | jq -r '.data[0].count.id // .data[0].count'
}
newdb() { # NAME: a fresh database; prints its conninfo
	PGOPTIONS='-c client_min_messages=warning' psql "$pg_base" -v ON_ERROR_STOP=1 -qAt \
		-c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
	echo "$pg_base dbname=$1"
}

# The N records as CSV (PostgreSQL's source) and as JSON create bodies of
# $batch records each (the creates of the baseline, and how the Directus
# source collection is filled).
echo "generating $n records..."
python3 - "$n" "$batch" "$work" <<'EOF'
import datetime, json, sys
n, batch, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
recs = []
for i in range(1, n + 1):
    seen = t0 + datetime.timedelta(seconds=i * 37)
    recs.append({"name": "name %d" % i, "email": "user%d@example.invalid" % i,
                 "qty": i % 1000, "price": "%d.%02d" % (i % 10000, i % 100),
                 "active": i % 2 == 1,
                 "born": (datetime.date(2000, 1, 1) + datetime.timedelta(days=i % 9000)).isoformat(),
                 "seen": seen.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
with open(work + "/items.csv", "w") as f:
    for r in recs:
        f.write('"%s","%s",%d,%s,%s,%s,%s\n' % (r["name"], r["email"], r["qty"], r["price"],
                "true" if r["active"] else "false", r["born"], r["seen"]))
for k in range(0, n, batch):
    with open("%s/body.%05d.json" % (work, k // batch), "w") as f:
        json.dump(recs[k:k + batch], f, separators=(",", ":"))
EOF
nbodies=$(ls "$work"/body.*.json | wc -l)

# curl_creates COLL: the create requests, back to back, one curl process,
# one connection; prints the seconds.
curl_creates() {
	local args=() b first=1 t0 t1
	for b in "$work"/body.*.json; do
		[ $first = 1 ] || args+=(--next)
		first=0
		args+=(-s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $sync_token"
			-H 'Content-Type: application/json' --data-binary "@$b"
			"$dx_url/items/$1?fields=id")
	done
	t0=$(date +%s.%N)
	curl "${args[@]}" >"$work/codes"
	t1=$(date +%s.%N)
	[ "$(grep -cv '^200$' "$work/codes")" = 0 ] || die "a baseline create failed: $(sort "$work/codes" | uniq -c)"
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}

urlenc() { jq -rn --arg s "$1" '$s | @uri'; }

# curl_pages COLL: the keyset pages of a full read as the connector asks
# them (ids are 1..N in a fresh collection, so each page's last id is
# known in advance); prints the seconds and the number of pages.
curl_pages() {
	local args=() last=0 first=1 f t0 t1 npages=0
	while :; do
		[ $first = 1 ] || args+=(--next)
		first=0
		if [ $last = 0 ]; then
			f=
		else
			f="&filter=$(urlenc "{\"_and\":[{\"id\":{\"_gt\":$last}}]}")"
		fi
		args+=(-s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $sync_token"
			"$dx_url/items/$1?limit=$page&fields=$(urlenc "$READ_FIELDS")&sort=id$f")
		npages=$((npages + 1))
		[ $last -lt "$n" ] && [ $((last + page)) -le "$n" ] || break
		last=$((last + page))
	done
	t0=$(date +%s.%N)
	curl "${args[@]}" >"$work/codes"
	t1=$(date +%s.%N)
	[ "$(grep -cv '^200$' "$work/codes")" = 0 ] || die "a baseline page failed"
	awk -v a="$t0" -v b="$t1" -v p="$npages" 'BEGIN {printf "%.3f %d\n", b - a, p}'
}

# setup_state DIR SRC-CONN-JSON TGT-CONN-JSON SRC-OBJECT TGT-OBJECT
setup_state() {
	local d=$1
	mkdir -p "$d/tree/connections" "$d/tree/integrations/bench/tasks/items"
	echo "$2" >"$d/tree/connections/src.json"
	echo "$3" >"$d/tree/connections/tgt.json"
	echo '{"source": "src", "target": "tgt", "max_delete_percent": 100}' \
		>"$d/tree/integrations/bench/integration.json"
	echo "{\"source_object\": \"$4\", \"target_object\": \"$5\"}" \
		>"$d/tree/integrations/bench/tasks/items/task.json"
	echo '{"to_target": {}, "to_source": {}}' >"$d/tree/integrations/bench/tasks/items/mapping.json"
	"$bin" --state "$d/state.db" import "$d/tree" >/dev/null
}

# run_sync DIR WHAT: tidesync run under GNU time; sets S (seconds) and M (KiB)
run_sync() {
	/usr/bin/time -f '%e %M' -o "$1/time" "$bin" --state "$1/state.db" run --json bench \
		>"$1/run.json" 2>"$1/run.err" || { cat "$1/run.err" "$1/run.json" >&2; die "$2: the run failed"; }
	read -r S M <"$1/time"
}
conn_dx() { jq -cn --arg u "$1" --arg t "$sync_token" '{type: "rest", preset: "directus", url: $u, token: $t}'; }
conn_pg() { jq -cn --arg c "$1" '{type: "postgres", conninfo: $c}'; }

# proxy_stats: "requests GET POST PATCH DELETE", then resets the counters
proxy_stats() {
	proxy GET stats >"$work/stats.json"
	jq -r '"\(.requests) \(.by_method.GET // 0) \(.by_method.POST // 0) \(.by_method.PATCH // 0) \(.by_method.DELETE // 0)"' "$work/stats.json"
	proxy POST reset >/dev/null
}
proxy_items() { # how many of them read or wrote records (/items/...)
	jq -r '[.log[] | select(test("^[A-Z]+ /items/"))] | length' "$work/stats.json"
}
proxy_paths() { # the requests of the counted run, grouped (method and path)
	jq -r '.log | group_by(.) | map("    \(length) x \(.[0])") | .[]' "$work/stats.json"
}

declare -A R
coll_src=bench_src # filled by the baseline creates, then the source of Directus -> PG

# A fresh Directus answers its first requests slowly (caches, prepared
# schema): warm it up before anything is measured.
collection bench_warm
curl_creates bench_warm >/dev/null
n=$batch curl_pages bench_warm >/dev/null

# ---- baseline creates: N records in batches, back to back ----
collection "$coll_src"
echo "baseline: $nbodies creates of $batch records with curl..."
R[b_create1]=$(curl_creates "$coll_src")
[ "$(dx_count "$coll_src")" = "$n" ] || die "the baseline creates left $(dx_count "$coll_src") records"

# ---- Directus -> PostgreSQL (the timed run three times: it is short) ----
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for pass in counted timed1 timed2 timed3; do
	d=$work/dp.$pass
	mkdir -p "$d"
	pg=$(newdb "dp_$pass")
	psql "$pg" -v ON_ERROR_STOP=1 -qAt -c "$PG_DDL"
	url=$dx_url
	[ $pass = counted ] && url=$proxy_url
	setup_state "$d" "$(conn_dx "$url")" "$(conn_pg "$pg")" "$coll_src" items
	proxy POST reset >/dev/null
	echo "Directus -> PostgreSQL, $pass run..."
	run_sync "$d" "Directus -> PostgreSQL ($pass)"
	[ "$(jq -r .tasks.items.to_target.inserted "$d/run.json")" = "$n" ] ||
		die "Directus -> PostgreSQL: $(jq -c .tasks "$d/run.json")"
	[ "$(psql "$pg" -qAt -c 'SELECT count(*) FROM items')" = "$n" ] || die "Directus -> PostgreSQL: wrong row count"
	v=$(psql "$pg" -qAt -c "SELECT price||' '||active||' '||born FROM items WHERE email = 'user7@example.invalid'")
	[ "$v" = "7.07 true 2000-01-08" ] || die "Directus -> PostgreSQL: wrong values '$v'"
	if [ $pass = counted ]; then
		read -r R[dp_req] R[dp_get] R[dp_post] R[dp_patch] R[dp_delete] < <(proxy_stats)
		R[dp_paths]=$(proxy_paths)
		R[dp_items]=$(proxy_items)
		R[dp_proxy_s]=$S
	else
		R[dp_all_s]="${R[dp_all_s]:-} $S" R[dp_all_rss]="${R[dp_all_rss]:-} $M"
	fi
done
echo "baseline: the pages of a full read with curl..."
R[dp_s]=$(echo "${R[dp_all_s]}" | tr ' ' '\n' | grep . | median)
R[dp_rss]=$(echo "${R[dp_all_rss]}" | tr ' ' '\n' | grep . | median)
for _ in 1 2 3; do
	read -r s p < <(curl_pages "$coll_src")
	R[b_all_read]="${R[b_all_read]:-} $s" R[b_pages]=$p
done
R[b_read]=$(echo "${R[b_all_read]}" | tr ' ' '\n' | grep . | median)

# ---- PostgreSQL -> Directus ----
for pass in counted timed; do
	d=$work/pd.$pass
	mkdir -p "$d"
	coll=bench_pd_$pass
	collection "$coll"
	url=$dx_url
	[ $pass = counted ] && url=$proxy_url
	# each pass reads the table from scratch: its own copy of it
	pgp=$(newdb "pd_$pass")
	psql "$pgp" -v ON_ERROR_STOP=1 -qAt -c "$PG_DDL" \
		-c "\\copy items(name,email,qty,price,active,born,seen) FROM '$work/items.csv' CSV"
	setup_state "$d" "$(conn_pg "$pgp")" "$(conn_dx "$url")" items "$coll"
	proxy POST reset >/dev/null
	echo "PostgreSQL -> Directus, $pass run..."
	run_sync "$d" "PostgreSQL -> Directus ($pass)"
	[ "$(jq -r .tasks.items.to_target.inserted "$d/run.json")" = "$n" ] ||
		die "PostgreSQL -> Directus: $(jq -c .tasks "$d/run.json")"
	[ "$(dx_count "$coll")" = "$n" ] || die "PostgreSQL -> Directus: $(dx_count "$coll") records in Directus"
	v=$(api "$admin" GET "/items/$coll?filter%5Bemail%5D%5B_eq%5D=user7@example.invalid&fields=price,active,born" |
		jq -r '.data[0] | "\(.price) \(.active) \(.born)"')
	case $v in "7.07 true 2000-01-08" | "7.07 1 2000-01-08") ;; *) die "PostgreSQL -> Directus: wrong values '$v'" ;; esac
	if [ $pass = counted ]; then
		read -r R[pd_req] R[pd_get] R[pd_post] R[pd_patch] R[pd_delete] < <(proxy_stats)
		R[pd_paths]=$(proxy_paths)
		R[pd_items]=$(proxy_items)
		R[pd_proxy_s]=$S
	else
		R[pd_s]=$S R[pd_rss]=$M
	fi
done
# the creates again, right after the timed run (Directus's own tables grow
# as it works: the baseline is taken in the same conditions as the run)
collection bench_base2
echo "baseline: $nbodies creates of $batch records with curl, again..."
R[b_create2]=$(curl_creates bench_base2)
# the baseline read of PostgreSQL -> Directus: the target collection's one
# (empty) page, as the first run reads it
collection bench_empty
read -r b_empty _ < <(n=0 curl_pages bench_empty)

rate() { awk -v r="$n" -v s="$1" 'BEGIN {printf "%.0f", r / s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
min_dp=${R[b_pages]}                                # the pages of the source read
min_pd=$(( (n + batch - 1) / batch + 1 ))           # the creates + one page of the empty target
b_dp=${R[b_read]}
b_pd=$(awk -v a="${R[b_create1]}" -v c="${R[b_create2]}" -v b="$b_empty" 'BEGIN {printf "%.3f", (a + c) / 2 + b}')

echo
echo "records: $n per direction; Directus 11.3.5 (SQLite) and PostgreSQL on this machine"
echo "Directus -> PostgreSQL (first run)"
printf '  tidesync run          %7ss  %6s rec/s  peak RSS %s MiB  (median of:%s)\n' "${R[dp_s]}" "$(rate "${R[dp_s]}")" "$(mib "${R[dp_rss]}")" "${R[dp_all_s]}"
printf '  curl, same requests   %7ss  (%s GET pages of %s; median of:%s)   tidesync / curl: %s\n' "$b_dp" "${R[b_pages]}" "$page" "${R[b_all_read]}" "$(ratio "${R[dp_s]}" "$b_dp")"
printf '  HTTP requests         %7s   (GET %s, POST %s, PATCH %s, DELETE %s); minimum %s; ratio %s\n' \
	"${R[dp_req]}" "${R[dp_get]}" "${R[dp_post]}" "${R[dp_patch]}" "${R[dp_delete]}" "$min_dp" "$(ratio "${R[dp_req]}" "$min_dp")"
printf '    of which records (/items/...) %s: ratio %s to the minimum; the other %s: whoami, schema, activity-log head\n' \
	"${R[dp_items]}" "$(ratio "${R[dp_items]}" "$min_dp")" "$((R[dp_req] - R[dp_items]))"
printf '  (counted run through the proxy: %ss)\n' "${R[dp_proxy_s]}"
echo "${R[dp_paths]}"
echo "PostgreSQL -> Directus (first run)"
printf '  tidesync run          %7ss  %6s rec/s  peak RSS %s MiB\n' "${R[pd_s]}" "$(rate "${R[pd_s]}")" "$(mib "${R[pd_rss]}")"
printf '  curl, same requests   %7ss  (%s POSTs of %s + 1 GET page; mean of %ss and %ss for the POSTs)   tidesync / curl: %s\n' \
	"$b_pd" "$nbodies" "$batch" "${R[b_create1]}" "${R[b_create2]}" "$(ratio "${R[pd_s]}" "$b_pd")"
printf '  HTTP requests         %7s   (GET %s, POST %s, PATCH %s, DELETE %s); minimum %s; ratio %s\n' \
	"${R[pd_req]}" "${R[pd_get]}" "${R[pd_post]}" "${R[pd_patch]}" "${R[pd_delete]}" "$min_pd" "$(ratio "${R[pd_req]}" "$min_pd")"
printf '    of which records (/items/...) %s: ratio %s to the minimum; the other %s: whoami, schema, activity-log head\n' \
	"${R[pd_items]}" "$(ratio "${R[pd_items]}" "$min_pd")" "$((R[pd_req] - R[pd_items]))"
printf '  (counted run through the proxy: %ss)\n' "${R[pd_proxy_s]}"
echo "${R[pd_paths]}"
