#!/usr/bin/env bash
# The README's first command: installs what is missing, builds Release, and runs
# the main job. Until the server exists that is worlddb_demo on the aoi-1m
# world (extra arguments go to it, e.g. --dist clustered --shards 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target worlddb_demo
exec ./build/tools/worlddb_demo "$@"
