#!/bin/bash
# demo.sh - the main job: install what is needed, build, and mount a demo
# integration between two SQLite databases at ./demo/mnt.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/contrib/install-deps.sh"
cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$src/build" -j"$(nproc)" --target tidesync
exec "$src/build/tidesync" demo "${1:-./demo}"
