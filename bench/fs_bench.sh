#!/bin/bash
# fs_bench.sh - latencies of the mounted filesystem, as a person sees them
# (wall time of the whole command, process start included):
#   cat status                     median of 50
#   a committed mapping.json save  median of 30 (cp; validated with a deep
#                                  check against two SQLite databases)
#   ls -l integrations/            median of 10, with 1,000 integrations
#                                  (and of 5 after the kernel's 1 s caches expired)
# usage: bench/fs_bench.sh [path/to/tidesync]   (default: build/tidesync)
set -u -o pipefail
T=${1:-${TIDESYNC:-build/tidesync}}
T=$(realpath "$T")
W=$(mktemp -d /var/tmp/tidesync-bench.XXXXXX)
M=$W/mnt
trap 'fusermount3 -u "$M" 2>/dev/null; wait; rm -rf "$W"' EXIT

mkdir -p "$M" "$W/tree/integrations" "$W/tree/connections"
sqlite3 "$W/crm.db" "create table contacts (id integer primary key, first_name text, last_name text, email text)"
sqlite3 "$W/wh.db" "create table people (id integer primary key, full_name text, email text)"
printf '{"type": "sqlite", "path": "%s"}\n' "$W/crm.db" > "$W/tree/connections/crm.json"
printf '{"type": "sqlite", "path": "%s"}\n' "$W/wh.db" > "$W/tree/connections/wh.json"
for i in $(seq -w 1 1000); do
	mkdir "$W/tree/integrations/int$i"
	echo '{"source": "crm", "target": "wh"}' > "$W/tree/integrations/int$i/integration.json"
done
mkdir -p "$W/tree/integrations/int0001/tasks/contacts"
echo '{"source_object": "contacts", "target_object": "people"}' \
	> "$W/tree/integrations/int0001/tasks/contacts/task.json"
"$T" --state "$W/state.db" import "$W/tree" > /dev/null || exit 1
"$T" mount "$M" --state "$W/state.db" -f 2> "$W/log" &
for _ in $(seq 1 100); do mountpoint -q "$M" && break; sleep 0.05; done
mountpoint -q "$M" || { cat "$W/log"; exit 1; }

# median_ms N CMD...: median wall time of N runs, in milliseconds
median_ms() {
	local n=$1 i t0 t1
	shift
	for i in $(seq 1 "$n"); do
		t0=$(date +%s%N)
		"$@" > /dev/null || { echo "failed: $*" >&2; exit 1; }
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000))
	done | sort -n | awk '{a[NR] = $1} END {printf "%.2f ms", a[int((NR + 1) / 2)] / 1000}'
}

D=$M/integrations/int0001
printf '{"to_target": {"full_name": "first_name + %s + last_name", "email": "email"},\n "to_source": {"email": "email"}}\n' "' '" > "$W/m1.json"
save() { cp "$W/m1.json" "$D/tasks/contacts/mapping.json"; }

echo "cat status:                        $(median_ms 50 cat "$D/status")"
echo "committed mapping.json save (cp):  $(median_ms 30 save)"
echo "ls -l integrations/ (1,000):       $(median_ms 10 ls -l "$M/integrations")"
# the kernel keeps entries and attributes for 1 s: measure past that too
cold_ls() { sleep 1.2; t0=$(date +%s%N); ls -l "$M/integrations" > /dev/null; t1=$(date +%s%N); echo $(((t1 - t0) / 1000)); }
cold=$(for i in 1 2 3 4 5; do cold_ls; done | sort -n | awk '{a[NR] = $1} END {printf "%.2f ms", a[3] / 1000}')
echo "  same, kernel caches expired:     $cold"
echo "for scale, /bin/true:              $(median_ms 50 /bin/true)"
