// Restart time of a data directory: the aoi-1m world in a snapshot, then M
// logged moves after it (default 10M: ten ticks of the whole world, in
// 1,000-move batches, i.e. 10,000 log records), recovered by World::Open.
// Reports load and replay times, the replay rate in records/s, moves/s and
// MB/s, and, as the baseline measured in the same run, the time to apply the
// same batches to an engine straight from memory (no disk, no checksums).
//
//   recovery_bench [--dir DIR] [--moves N] [--runs R] [--shards S]
//
// The data directory is built once (durability interval, so building is not
// fdatasync-bound; recovery reads the same bytes whatever the mode), then
// recovered R times, each in a fresh World.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "CLI/CLI.hpp"
#include "engine/batch_builder.h"
#include "tools/aoi_workload.h"
#include "wal/world.h"

using namespace worlddb;
namespace fs = std::filesystem;

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"recovery_bench: restart time of a 1M-entity world with logged moves"};
  std::string dir = "/work/recovery_bench_data";
  uint64_t moves = 10'000'000;
  int runs = 3;
  uint32_t shards = 2;
  app.add_option("--dir", dir, "scratch data directory (deleted first)")->capture_default_str();
  app.add_option("--moves", moves, "logged moves after the snapshot")->capture_default_str();
  app.add_option("--runs", runs, "recoveries to time")->capture_default_str();
  app.add_option("--shards", shards, "engine shards")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  aoi::AoiWorkload w(aoi::Distribution::kUniform, aoi::kDefaultEntities, 0);
  const size_t n = w.n();
  std::vector<std::vector<uint8_t>> move_batches;
  {
    std::vector<double> xs = w.load_xs(), ys = w.load_ys();
    BatchBuilder b;
    uint64_t made = 0;
    while (made < moves) {
      aoi::AoiWorkload::MoveTick(&xs, &ys);
      for (size_t first = 0; first < n && made < moves; first += 1000) {
        for (size_t i = first; i < std::min(n, first + 1000) && made < moves; ++i, ++made) {
          b.Move(i + 1, xs[i], ys[i]);
        }
        move_batches.push_back(b.FinishCopy());
      }
    }
  }
  uint64_t log_bytes = 0;
  for (const auto& m : move_batches) log_bytes += m.size();

  fs::remove_all(dir);
  wal::WorldOptions o;
  o.data_dir = dir;
  o.durability = wal::Durability::Parse("interval:100").value();
  o.engine.shards = shards;
  o.snapshot_interval_s = 0;
  o.snapshot_log_bytes = 0;
  {
    auto world = wal::World::Open(o);
    if (!world.ok()) {
      std::fprintf(stderr, "%s\n", world.status().ToString().c_str());
      return 1;
    }
    Engine& e = world.value()->engine();
    BatchBuilder b;
    for (size_t i = 0; i < n; ++i) b.Upsert(i + 1, "entity", w.load_xs()[i], w.load_ys()[i]);
    if (!e.CreateKind({"entity", {}}).ok()) return 1;
    auto bytes = b.Finish();
    if (!e.Apply(bytes.data(), bytes.size()).ok()) return 1;
    auto snap = world.value()->Snapshot();
    if (!snap.ok()) {
      std::fprintf(stderr, "snapshot: %s\n", snap.status().ToString().c_str());
      return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    for (const auto& m : move_batches) {
      auto applied = e.Apply(m.data(), m.size(), Ack::kQueued);
      if (!applied.ok()) {
        std::fprintf(stderr, "apply: %s\n", applied.status().ToString().c_str());
        return 1;
      }
    }
    if (!world.value()->Close().ok()) return 1;
    std::printf(
        "built: snapshot of %zu entities, then %llu moves in %zu records (%.1f MB) "
        "logged in %.2f s\n",
        n, static_cast<unsigned long long>(moves), move_batches.size(), log_bytes / 1e6,
        Seconds(start));
  }

  // Baseline: the same batches applied from memory to a loaded engine.
  std::vector<double> baseline, total, load, replay;
  for (int r = 0; r < runs; ++r) {
    {
      EngineOptions eo;
      eo.shards = shards;
      auto e = Engine::Open(eo).value();
      (void)e->CreateKind({"entity", {}});
      BatchBuilder b;
      for (size_t i = 0; i < n; ++i) b.Upsert(i + 1, "entity", w.load_xs()[i], w.load_ys()[i]);
      auto bytes = b.Finish();
      (void)e->Apply(bytes.data(), bytes.size());
      const auto start = std::chrono::steady_clock::now();
      for (const auto& m : move_batches)
        (void)e->Replay(RecordType::kWriteBatch, m.data(), m.size());
      baseline.push_back(Seconds(start));
    }
    const auto start = std::chrono::steady_clock::now();
    auto world = wal::World::Open(o);
    const double t = Seconds(start);
    if (!world.ok()) {
      std::fprintf(stderr, "recover: %s\n", world.status().ToString().c_str());
      return 1;
    }
    const wal::RecoveryReport& rep = world.value()->recovery();
    if (world.value()->engine().size() != n || rep.records_replayed != move_batches.size()) {
      std::fprintf(stderr, "recovered the wrong world: %s\n", rep.ToString().c_str());
      return 1;
    }
    total.push_back(t);
    load.push_back(rep.load_seconds);
    replay.push_back(rep.replay_seconds);
    std::printf(
        "run %d: restart %.3f s (snapshot load %.3f s, log replay %.3f s); in-memory apply "
        "of the same batches %.3f s\n",
        r + 1, t, rep.load_seconds, rep.replay_seconds, baseline.back());
  }
  const double rp = Median(replay);
  std::printf("\nmedian of %d: restart %.3f s = snapshot load %.3f s + replay %.3f s\n", runs,
              Median(total), Median(load), rp);
  std::printf(
      "replay: %.0f records/s, %.1f M moves/s, %.0f MB/s of log; in-memory apply %.3f s "
      "(replay / apply = %.2fx)\n",
      move_batches.size() / rp, moves / rp / 1e6, log_bytes / rp / 1e6, Median(baseline),
      rp / Median(baseline));
  fs::remove_all(dir);
  return 0;
}
