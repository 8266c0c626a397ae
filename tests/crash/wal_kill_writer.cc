// The process tests/wal_kill_test.cc kills: opens (and so recovers) a world,
// then applies the kill workload's batches one after another, appending the
// number of each acknowledged batch to the acks file (a plain write(2): what
// must survive is the kernel's copy, because only the process dies).
//
//   wal_kill_writer DATA_DIR ACKS_FILE SEED DURABILITY [MAX_BATCHES]
//
// Snapshots are triggered every 8 KiB of log and segments are 256 KiB, so
// kills land during rotations and snapshots too.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/crash/kill_workload.h"
#include "wal/world.h"

using namespace worlddb;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s DATA_DIR ACKS_FILE SEED DURABILITY [MAX_BATCHES]\n", argv[0]);
    return 2;
  }
  const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  const uint64_t max_batches = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : UINT64_MAX;
  auto durability = wal::Durability::Parse(argv[4]);
  if (!durability.ok()) {
    std::fprintf(stderr, "%s\n", durability.status().ToString().c_str());
    return 2;
  }
  wal::WorldOptions o;
  o.data_dir = argv[1];
  o.durability = durability.value();
  o.segment_bytes = 256 << 10;
  o.snapshot_log_bytes = 8 << 10;
  o.snapshot_interval_s = 0;
  auto opened = wal::World::Open(o);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  wal::World& world = *opened.value();
  const int acks = ::open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (acks < 0) return 1;
  uint64_t last = world.recovery().last_lsn;  // record 1 is the kind, record j+1 batch j
  if (last == 0) {
    Status st = world.engine().CreateKind(kill_test::UnitKind());
    if (!st.ok()) {
      std::fprintf(stderr, "create kind: %s\n", st.ToString().c_str());
      return 1;
    }
    last = 1;
  }
  kill_test::Model scratch;
  BatchBuilder b;
  for (uint64_t j = last; j < max_batches; ++j) {
    kill_test::MakeBatch(seed, j, &b, &scratch);
    auto bytes = b.Finish();
    auto applied = world.engine().Apply(bytes.data(), bytes.size());
    if (!applied.ok()) {
      std::fprintf(stderr, "batch %llu: %s\n", static_cast<unsigned long long>(j),
                   applied.status().ToString().c_str());
      return 1;
    }
    // Snapshots by command too: the background trigger polls, and most
    // writers live for less than its period.
    if (j % 40 == 0) {
      auto snap = world.Snapshot();
      if (!snap.ok()) {
        std::fprintf(stderr, "snapshot after batch %llu: %s\n", static_cast<unsigned long long>(j),
                     snap.status().ToString().c_str());
        return 1;
      }
    }
    const std::string line = std::to_string(j) + "\n";
    if (::write(acks, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
  }
  return world.Close().ok() ? 0 : 1;
}
