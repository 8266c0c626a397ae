#!/usr/bin/env bash
# The README's second command: installs what is missing, then builds and runs
# the whole suite three times:
#   1. Release, warnings as errors: every test (benchmarks are built, not run);
#   2. ASan + UBSan: every test;
#   3. TSan: the concurrent stress tests (ctest label "stress").
# Build trees: build-release/, build-asan/, build-tsan/. Set WORLDDB_TEST_ONLY
# to release, asan or tsan to run one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=$(nproc)
only=${WORLDDB_TEST_ONLY:-}

run() {  # name, ctest args, cmake args...
  local name=$1 ctest_args=$2
  shift 2
  [ -z "$only" ] || [ "$only" = "$name" ] || return 0
  echo "=== $name: configure and build ==="
  cmake -S . -B "build-$name" -G Ninja -DWORLDDB_WERROR=ON "$@" >/dev/null
  cmake --build "build-$name" -j"$jobs"
  echo "=== $name: test ==="
  # shellcheck disable=SC2086
  (cd "build-$name" && ctest -j"$jobs" --output-on-failure --no-tests=error $ctest_args)
}

run release "" -DCMAKE_BUILD_TYPE=Release
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  run asan "" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWORLDDB_SANITIZE=address,undefined -DWORLDDB_BUILD_BENCH=OFF
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run tsan "-L stress" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWORLDDB_SANITIZE=thread -DWORLDDB_BUILD_BENCH=OFF
echo "=== all test runs passed ==="
