#!/usr/bin/env bash
# Installs every Debian package that building, testing and benchmarking WorldDB
# need. Idempotent: when everything is present it only checks and returns.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  clang libclang-rt-14-dev            # libFuzzer targets and sanitizer runtimes
  libjemalloc-dev liburing-dev libxxhash-dev
  flatbuffers-compiler libflatbuffers-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost-dev                        # boost::geometry R-tree, benchmark baseline only
  libcli11-dev                        # command-line flags (and config files) of the tools
  libtomlplusplus-dev                 # TOML world descriptions (worldctl capacity --file)
  libspdlog-dev                       # the server's log lines
  libcpp-httplib-dev                  # the metrics/health HTTP listener
  libhiredis-dev redis-server         # worldload's Redis GEO target and its comparison
  prometheus                          # the metrics test scrapes worlddb with a real Prometheus
  gnuplot-nox                         # worldload --plot
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
