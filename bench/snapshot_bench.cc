// Snapshot benchmark on the aoi-1m world (tools/aoi_workload.h): 1M
// position-only entities plus a kind with typed columns, on 2 shards.
//
// Per run it measures
//   * the snapshot: total time, MB/s, and the pause the shards see (barrier
//     reached -> released, Engine::Checkpoint's pause_us);
//   * what a concurrent client sees: one thread issuing, back to back, a
//     batch of 100 moves then one r = 50 m radius query, timing each call.
//     Its max and p99.9 latency while the snapshot runs are reported against
//     the same client's figures in an equally long window right after it
//     (no snapshot, child gone), in the same run;
//   * the load time of the snapshot into a fresh 2-shard engine.
// and prints the median of --runs runs.
//
//   ./build/bench/snapshot_bench --runs 3 --dir /tmp
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "tools/aoi_workload.h"
#include "wal/snapshot_reader.h"
#include "wal/snapshot_writer.h"

namespace worlddb::bench {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

struct Op {
  int64_t start_ns, latency_ns;
};

struct Window {
  double max_us = 0, p999_us = 0;
  size_t ops = 0;
};

Window Stats(const std::vector<Op>& ops, int64_t from, int64_t to) {
  std::vector<int64_t> lat;
  for (const Op& o : ops) {
    if (o.start_ns >= from && o.start_ns < to) lat.push_back(o.latency_ns);
  }
  Window w;
  w.ops = lat.size();
  if (lat.empty()) return w;
  std::sort(lat.begin(), lat.end());
  w.max_us = lat.back() / 1e3;
  w.p999_us = lat[std::min(lat.size() - 1, lat.size() * 999 / 1000)] / 1e3;
  return w;
}

// Resident memory of this process: fork's page-table copy grows with it.
size_t RssMb() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  size_t pages = 0, rss = 0;
  if (std::fscanf(f, "%zu %zu", &pages, &rss) != 2) rss = 0;
  std::fclose(f);
  return rss * 4096 >> 20;
}

struct RunResult {
  double snapshot_ms, mb_per_s, pause_ms, fork_ms, load_ms;
  Window before, during;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace
}  // namespace worlddb::bench

int main(int argc, char** argv) {
  using namespace worlddb;
  using namespace worlddb::bench;
  CLI::App app{"Snapshot time, pause and client latency on the aoi-1m world"};
  size_t entities = aoi::kDefaultEntities, typed = 100000;
  uint32_t shards = 2;
  int runs = 3;
  std::string dir = std::filesystem::temp_directory_path().string();
  app.add_option("--entities", entities, "position-only entities (aoi-1m)")
      ->check(CLI::Range(1, 1 << 26));
  app.add_option("--typed", typed, "extra entities of a kind with 4 typed columns");
  app.add_option("--shards", shards, "engine shards")->check(CLI::Range(1, 256));
  app.add_option("--runs", runs, "runs; the median is reported")->check(CLI::Range(1, 100));
  app.add_option("--dir", dir, "directory for the snapshot files")->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);

  const aoi::AoiWorkload w(aoi::Distribution::kUniform, entities, 1000);
  EngineOptions o;
  o.shards = shards;
  auto engine = std::move(Engine::Open(o).value());
  if (!engine->CreateKind({"entity", {}}).ok() ||
      !engine
           ->CreateKind({"unit",
                         {{"hp", ColumnType::kI32, int32_t{100}, 0},
                          {"level", ColumnType::kI64, int64_t{1}, 0},
                          {"speed", ColumnType::kF32, 1.0f, 0},
                          {"name", ColumnType::kString, std::string(), 32}}})
           .ok()) {
    std::fprintf(stderr, "schema setup failed\n");
    return 1;
  }
  {
    BatchBuilder b;
    for (size_t i = 0; i < w.n(); ++i) b.Upsert(i + 1, "entity", w.load_xs()[i], w.load_ys()[i]);
    auto bytes = b.Finish();
    if (!engine->Apply(bytes.data(), bytes.size()).ok()) return 1;
    std::mt19937_64 rng(1);
    for (size_t i = 0; i < typed; ++i) {
      b.Upsert((uint64_t{1} << 40) + i, "unit", double(rng() % 10000), double(rng() % 10000), 0,
               {{"hp", int32_t(rng() % 1000)},
                {"level", int64_t(rng() % 60)},
                {"speed", float(rng() % 100) / 10},
                {"name", "unit-" + std::to_string(i)}});
    }
    bytes = b.Finish();
    if (!engine->Apply(bytes.data(), bytes.size()).ok()) return 1;
  }
  // The client's move batches: 100 entities each, alternating between the
  // load and the moved positions so that every batch is valid.
  std::vector<std::vector<uint8_t>> moves;
  {
    BatchBuilder b;
    for (size_t first = 0; first + 100 <= w.n() && moves.size() < 2000; first += 100) {
      for (size_t i = first; i < first + 100; ++i) b.Move(i + 1, w.moved_xs()[i], w.moved_ys()[i]);
      moves.push_back(b.FinishCopy());
      for (size_t i = first; i < first + 100; ++i) b.Move(i + 1, w.load_xs()[i], w.load_ys()[i]);
      moves.push_back(b.FinishCopy());
    }
  }
  std::printf("world: %zu + %zu entities, %u shards, RSS %zu MB\n", w.n(), typed, shards, RssMb());
  std::printf("%4s %10s %8s %9s %8s %9s | %14s %14s | %14s %14s\n", "run", "snap_ms", "MB/s",
              "pause_ms", "fork_ms", "load_ms", "before_max_us", "during_max_us", "before_p999_us",
              "during_p999_us");
  std::vector<RunResult> results;
  for (int run = 0; run < runs; ++run) {
    std::vector<Op> ops;
    ops.reserve(1 << 22);
    std::atomic<bool> stop{false};
    std::thread client([&] {
      size_t m = 0;
      Query q = Query::Circle(0, 0, aoi::kQueryRadius);
      q.count_only = true;
      QueryResult r;
      while (!stop.load(std::memory_order_relaxed) && ops.size() + 2 < ops.capacity()) {
        const auto t0 = Clock::now();
        (void)engine->Apply(moves[m].data(), moves[m].size());
        const auto t1 = Clock::now();
        q.x = w.load_xs()[(m * 7919) % w.n()];
        q.y = w.load_ys()[(m * 7919) % w.n()];
        (void)engine->Run(q, &r);
        const auto t2 = Clock::now();
        ops.push_back({Ns(t0), Ns(t1) - Ns(t0)});
        ops.push_back({Ns(t1), Ns(t2) - Ns(t1)});
        m = (m + 1) % moves.size();
      }
    });
    // Warm up, then the snapshot, then the baseline window.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto before_start = Clock::now();
    auto info = wal::TakeSnapshot(*engine, dir, {.lsn_without_log = uint64_t(run + 1)});
    const auto snap_end = Clock::now();
    // The equally long "before" window is measured after the snapshot (the
    // child's writes are done), so both windows see the same client.
    const auto settle_start = Clock::now();
    std::this_thread::sleep_for(snap_end - before_start);
    const auto settle_end = Clock::now();
    stop = true;
    client.join();
    if (!info.ok()) {
      std::fprintf(stderr, "snapshot failed: %s\n", info.status().ToString().c_str());
      return 1;
    }
    RunResult rr;
    rr.snapshot_ms = info->duration_us / 1e3;
    rr.mb_per_s = info->bytes / 1e6 / (info->duration_us / 1e6);
    rr.pause_ms = info->pause_us / 1e3;
    rr.fork_ms = info->fork_us / 1e3;
    rr.during = Stats(ops, Ns(before_start), Ns(snap_end));
    rr.before = Stats(ops, Ns(settle_start), Ns(settle_end));
    auto fresh = std::move(Engine::Open(o).value());
    const auto l0 = Clock::now();
    Status st = wal::LoadSnapshot(info->path, fresh.get(), nullptr);
    rr.load_ms = std::chrono::duration<double, std::milli>(Clock::now() - l0).count();
    if (!st.ok()) {
      std::fprintf(stderr, "load failed: %s\n", st.ToString().c_str());
      return 1;
    }
    std::filesystem::remove(info->path);
    std::printf(
        "%4d %10.1f %8.1f %9.3f %8.3f %9.1f | %14.0f %14.0f | %14.0f %14.0f   (%zu MB, ops "
        "%zu/%zu)\n",
        run, rr.snapshot_ms, rr.mb_per_s, rr.pause_ms, rr.fork_ms, rr.load_ms, rr.before.max_us,
        rr.during.max_us, rr.before.p999_us, rr.during.p999_us,
        static_cast<size_t>(info->bytes >> 20), rr.before.ops, rr.during.ops);
    results.push_back(rr);
  }
  auto med = [&](auto f) {
    std::vector<double> v;
    for (const RunResult& r : results) v.push_back(f(r));
    return Median(v);
  };
  const double bmax = med([](const RunResult& r) { return r.before.max_us; });
  const double dmax = med([](const RunResult& r) { return r.during.max_us; });
  const double bp = med([](const RunResult& r) { return r.before.p999_us; });
  const double dp = med([](const RunResult& r) { return r.during.p999_us; });
  std::printf(
      "median: snapshot %.1f ms (%.1f MB/s), pause %.3f ms (fork %.3f ms), load %.1f ms; client "
      "max %.0f us "
      "during vs %.0f us before (x%.2f), p99.9 %.0f us during vs %.0f us before (x%.2f)\n",
      med([](const RunResult& r) { return r.snapshot_ms; }),
      med([](const RunResult& r) { return r.mb_per_s; }),
      med([](const RunResult& r) { return r.pause_ms; }),
      med([](const RunResult& r) { return r.fork_ms; }),
      med([](const RunResult& r) { return r.load_ms; }), dmax, bmax, dmax / bmax, dp, bp, dp / bp);
  return 0;
}
