#!/bin/bash
# run-all.sh - the whole test suite, as CI runs it, from a clean clone:
#   1. installs the Debian packages (contrib/install-deps.sh)
#   2. builds with -Werror and runs every test with ctest (real PostgreSQL,
#      real SQLite files, a real Directus, real FUSE mounts)
#   3. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and
#      runs the suite again (the daemon's sanitizer reports fail the tests)
#   4. runs the engine's unit tests under valgrind (no leaks allowed)
#   5. fuzzes the expression parser for a bounded time (clang libFuzzer)
# Environment: TS_JOBS (default 2), TS_SKIP_ASAN=1, TS_SKIP_FUZZ=1,
# TS_FUZZ_SECONDS (default 60).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
jobs=${TS_JOBS:-2}
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "installing packages"
contrib/install-deps.sh

step "building (RelWithDebInfo, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

step "tests"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900

if [ "${TS_SKIP_ASAN:-0}" != 1 ]; then
	step "building with ASan + UBSan"
	CC=${CC_SAN:-gcc} cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTS_ASAN=ON -DTS_UBSAN=ON >/dev/null
	cmake --build build-asan -j"$jobs"
	step "tests under ASan + UBSan"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		TS_PROPERTY_ROUNDS=300 \
		ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 1800 -LE nosan
fi

step "unit tests under valgrind"
vg_fail=0
for t in $(ctest --test-dir build -N -L unit | sed -n 's/^ *Test *#[0-9]*: //p'); do
	bin=$(find build/tests -type f -name "$t" -perm -u+x | head -1)
	[ -n "$bin" ] || { echo "no binary for unit test $t"; vg_fail=1; continue; }
	echo "valgrind $t"
	if ! TS_PG_CONNINFO_FILE=/nonexistent valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$bin" >"build/valgrind-$t.log" 2>&1; then
		cat "build/valgrind-$t.log"
		vg_fail=1
	fi
done
[ $vg_fail = 0 ] || { echo "valgrind found errors"; exit 1; }

if [ "${TS_SKIP_FUZZ:-0}" != 1 ] && [ -f tests/fuzz/CMakeLists.txt ]; then
	step "fuzzing the expression language (${TS_FUZZ_SECONDS:-60}s)"
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTS_FUZZ=ON -DTS_WERROR=ON >/dev/null
	cmake --build build-fuzz -j"$jobs" --target expr_fuzz
	mkdir -p build-fuzz/corpus
	seeds=()
	[ -d tests/fuzz/corpus ] && seeds+=(tests/fuzz/corpus)
	dict=()
	[ -f tests/fuzz/expr.dict ] && dict+=(-dict=tests/fuzz/expr.dict)
	# a crash makes libFuzzer exit non-zero (and set -e stops here)
	build-fuzz/tests/fuzz/expr_fuzz "${dict[@]}" -max_total_time="${TS_FUZZ_SECONDS:-60}" -timeout=5 \
		-print_final_stats=1 build-fuzz/corpus "${seeds[@]}" >build-fuzz/fuzz.log 2>&1 ||
		{ tail -40 build-fuzz/fuzz.log; echo "the fuzzer found a crash"; exit 1; }
	grep -E "stat::number_of_executed_units|Done" build-fuzz/fuzz.log | tail -2
fi

step "all tests passed"
