#!/usr/bin/env bash
# The README's first command: installs what is missing, builds Release, and
# starts the server in the foreground: `worlddb` on 127.0.0.1:7878 with its
# data in ./data and durability "always" (extra arguments go to it, e.g.
# --durability interval:10 --shards 2; `worlddb --help` lists them all).
# SIGINT (Ctrl-C) or SIGTERM stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target worlddb worldctl
exec ./build/net/worlddb "$@"
