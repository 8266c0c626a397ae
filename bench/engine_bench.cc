// Engine-level benchmarks on the aoi-1m workload: the whole store (id map,
// columnar tables, per-shard quadtrees, two-phase batches, shard threads),
// driven through Engine::Apply and Engine::RunMany as a server would.
//
//   BM_Engine_Load      one 1M-upsert batch (bulk load) and 10k-upsert batches
//   BM_Engine_Move      one tick: every entity moved once, batches of 10,000 moves
//   BM_Engine_MoveShuffled the same tick with the moves in a fixed random order
//   BM_Engine_Radius    r = 50 m count queries, 1,000 per hand-off
//   BM_Engine_RadiusRows the same queries returning ids and positions (the server's case)
//   BM_Engine_KNN       k = 16 queries, 1,000 per hand-off
//   BM_Engine_Mixed     one 10,000-move batch then 1,000 radius queries per step:
//                       the 1-shard vs 2-shard ratio is the scaling figure
//
// Batches are encoded before timing starts: the figures are the engine's
// (verification, validation, apply), not the FlatBuffers builder's.
// Memory per entity comes from the engine's own accounting and from jemalloc's
// stats.allocated around the load (they should agree).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "bench/heap_stats.h"
#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "tools/aoi_workload.h"

namespace worlddb::bench {
namespace {

using aoi::AoiWorkload;
using aoi::Distribution;

constexpr size_t kMoveBatch = 10000;
constexpr size_t kQueryBatch = 1000;

const AoiWorkload& Workload(Distribution d) {
  static std::unique_ptr<AoiWorkload> w[2];
  auto& slot = w[d == Distribution::kClustered];
  if (!slot) slot = std::make_unique<AoiWorkload>(d, aoi::kDefaultEntities, aoi::kNumQueries);
  return *slot;
}

using Bytes = std::vector<uint8_t>;

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// With `columns`, each entity also gets values for the two i32 columns of
// NewEngine(.., true), as worldload's entities do (hp, level).
std::vector<Bytes> UpsertBatches(const AoiWorkload& w, size_t per_batch, bool columns = false) {
  std::vector<Bytes> out;
  BatchBuilder b;
  for (size_t first = 0; first < w.n(); first += per_batch) {
    for (size_t i = first; i < std::min(w.n(), first + per_batch); ++i) {
      if (columns) {
        b.Upsert(i + 1, "entity", w.load_xs()[i], w.load_ys()[i], 0,
                 {{"hp", int32_t(i % 100)}, {"level", int32_t(i % 60)}});
      } else {
        b.Upsert(i + 1, "entity", w.load_xs()[i], w.load_ys()[i]);
      }
    }
    out.push_back(b.FinishCopy());
  }
  return out;
}

// Every entity moved once to (xs[i], ys[i]), in id order, or with `shuffled`
// in a fixed random order (a zone server's moves need not follow the order
// the entities were created in).
std::vector<Bytes> MoveBatches(const std::vector<double>& xs, const std::vector<double>& ys,
                               bool shuffled = false) {
  std::vector<uint32_t> order(xs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  if (shuffled) std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  std::vector<Bytes> out;
  BatchBuilder b;
  for (size_t first = 0; first < xs.size(); first += kMoveBatch) {
    for (size_t k = first; k < std::min(xs.size(), first + kMoveBatch); ++k) {
      const uint32_t i = order[k];
      b.Move(i + 1, xs[i], ys[i]);
    }
    out.push_back(b.FinishCopy());
  }
  return out;
}

// One distribution's two ticks: every entity back to its load position, and
// forth to its moved one. Built once per (distribution, order).
struct Ticks {
  std::vector<Bytes> back, forth;
};
const Ticks& MoveTicks(Distribution d, bool shuffled) {
  static std::unique_ptr<Ticks> cache[2][2];
  auto& slot = cache[d == Distribution::kClustered][shuffled];
  if (!slot) {
    const AoiWorkload& w = Workload(d);
    slot = std::make_unique<Ticks>(Ticks{MoveBatches(w.load_xs(), w.load_ys(), shuffled),
                                         MoveBatches(w.moved_xs(), w.moved_ys(), shuffled)});
  }
  return *slot;
}

std::unique_ptr<Engine> NewEngine(uint32_t shards, bool columns = false) {
  EngineOptions o;
  o.shards = shards;
  auto e = std::move(Engine::Open(o).value());
  KindDef kind{"entity", {}};
  if (columns) {
    kind.columns = {{"hp", ColumnType::kI32, int32_t{100}, 0},
                    {"level", ColumnType::kI32, int32_t{1}, 0}};
  }
  if (!e->CreateKind(kind).ok()) std::abort();
  return e;
}

bool ApplyAll(Engine& e, const std::vector<Bytes>& batches) {
  for (const Bytes& b : batches) {
    if (!e.Apply(b.data(), b.size()).ok()) return false;
  }
  return true;
}

// A loaded and moved world per (distribution, shards), kept for the query
// benchmarks; only one is alive at a time.
struct World {
  Distribution dist;
  uint32_t shards;
  bool columns;
  std::unique_ptr<Engine> engine;
};
Engine& LoadedWorld(Distribution d, uint32_t shards, bool columns = false) {
  static World world;
  if (world.engine && world.dist == d && world.shards == shards && world.columns == columns)
    return *world.engine;
  world.engine.reset();
  const AoiWorkload& w = Workload(d);
  world = {d, shards, columns, NewEngine(shards, columns)};
  if (!ApplyAll(*world.engine, UpsertBatches(w, w.n(), columns)) ||
      !ApplyAll(*world.engine, MoveBatches(w.moved_xs(), w.moved_ys()))) {
    std::abort();
  }
  return *world.engine;
}

// Radius queries count only unless `rows`: then they return ids and positions
// as the server's clients ask for them.
std::vector<Query> Queries(const AoiWorkload& w, bool knn, bool rows = false) {
  std::vector<Query> qs;
  for (uint32_t id : knn ? w.knn_query_ids() : w.radius_query_ids()) {
    const double x = w.moved_xs()[id - 1], y = w.moved_ys()[id - 1];
    Query q = knn ? Query::Nearest(x, y, aoi::kKnnK) : Query::Circle(x, y, aoi::kQueryRadius);
    q.count_only = !knn && !rows;
    qs.push_back(q);
  }
  return qs;
}

void BM_Engine_Load(benchmark::State& state, Distribution d, uint32_t shards, size_t per_batch) {
  const AoiWorkload& w = Workload(d);
  const std::vector<Bytes> batches = UpsertBatches(w, per_batch);
  double bytes_per_entity = 0, heap_per_entity = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<Engine> e = NewEngine(shards);
    const size_t heap_before = HeapAllocatedBytes();
    state.ResumeTiming();
    if (!ApplyAll(*e, batches)) state.SkipWithError("load failed");
    state.PauseTiming();
    bytes_per_entity = double(e->Memory().total()) / double(w.n());
    heap_per_entity = double(HeapAllocatedBytes() - heap_before) / double(w.n());
    e.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(int64_t(state.iterations() * w.n()));
  state.counters["bytes_per_entity"] = bytes_per_entity;
  state.counters["heap_bytes_per_entity"] = heap_per_entity;
}

void BM_Engine_Move(benchmark::State& state, Distribution d, uint32_t shards, bool shuffled) {
  const AoiWorkload& w = Workload(d);
  Engine& e = LoadedWorld(d, shards);
  // Alternate post-move -> load -> post-move positions, so the world stays the
  // workload's after an even number of iterations and every move is a real one.
  const std::vector<Bytes>& back = MoveTicks(d, shuffled).back;
  const std::vector<Bytes>& forth = MoveTicks(d, shuffled).forth;
  bool at_moved = true;
  for (auto _ : state) {
    if (!ApplyAll(e, at_moved ? back : forth)) state.SkipWithError("move failed");
    at_moved = !at_moved;
  }
  if (!at_moved && !ApplyAll(e, forth)) state.SkipWithError("restoring the world failed");
  state.SetItemsProcessed(int64_t(state.iterations() * w.n()));
}

void RunQueries(benchmark::State& state, Engine& e, const std::vector<Query>& qs) {
  std::vector<QueryResult> results(kQueryBatch);
  std::vector<Status> statuses(kQueryBatch);
  size_t next = 0;
  uint64_t rows = 0;
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    if (next + kQueryBatch > qs.size()) next = 0;
    e.RunMany(&qs[next], kQueryBatch, results.data(), statuses.data());
    for (size_t i = 0; i < kQueryBatch; ++i) rows += results[i].count;
    next += kQueryBatch;
  }
  benchmark::DoNotOptimize(rows);
  state.SetItemsProcessed(int64_t(state.iterations() * kQueryBatch));
  // CPU time of all threads (the shard threads do the work; the caller
  // waits): unlike the wall-clock rate it holds on a machine shared with
  // other jobs.
  state.counters["cpu_us_per_query"] =
      (ProcessCpuSeconds() - cpu_before) * 1e6 / double(state.iterations() * kQueryBatch);
}

void BM_Engine_Radius(benchmark::State& state, Distribution d, uint32_t shards) {
  static std::vector<Query> qs[2];
  auto& q = qs[d == Distribution::kClustered];
  if (q.empty()) q = Queries(Workload(d), false);
  RunQueries(state, LoadedWorld(d, shards), q);
}

void BM_Engine_RadiusRows(benchmark::State& state, Distribution d, uint32_t shards) {
  static std::vector<Query> qs[2];
  auto& q = qs[d == Distribution::kClustered];
  if (q.empty()) q = Queries(Workload(d), false, true);
  RunQueries(state, LoadedWorld(d, shards), q);
}

// Rows with two projected columns, as worldload's AOI queries ask: each hit's
// row is read in the table, whose row order is unrelated to position.
void BM_Engine_RadiusColumns(benchmark::State& state, Distribution d, uint32_t shards) {
  static std::vector<Query> qs[2];
  auto& q = qs[d == Distribution::kClustered];
  if (q.empty()) {
    q = Queries(Workload(d), false, true);
    for (Query& one : q) {
      one.kind = "entity";
      one.columns = {"hp", "level"};
    }
  }
  RunQueries(state, LoadedWorld(d, shards, true), q);
}

void BM_Engine_KNN(benchmark::State& state, Distribution d, uint32_t shards) {
  static std::vector<Query> qs[2];
  auto& q = qs[d == Distribution::kClustered];
  if (q.empty()) q = Queries(Workload(d), true);
  RunQueries(state, LoadedWorld(d, shards), q);
}

// One step = one 10,000-move batch (a slice of the tick) + 1,000 radius
// queries; items = moves + queries.
void BM_Engine_Mixed(benchmark::State& state, Distribution d, uint32_t shards) {
  const AoiWorkload& w = Workload(d);
  Engine& e = LoadedWorld(d, shards);
  const std::vector<Bytes>& back = MoveTicks(d, false).back;
  const std::vector<Bytes>& forth = MoveTicks(d, false).forth;
  static std::vector<Query> qs_of[2];
  std::vector<Query>& qs = qs_of[d == Distribution::kClustered];
  if (qs.empty()) qs = Queries(w, false);
  std::vector<QueryResult> results(kQueryBatch);
  std::vector<Status> statuses(kQueryBatch);
  size_t step = 0, next_q = 0;
  bool at_moved = true;
  for (auto _ : state) {
    const std::vector<Bytes>& batches = at_moved ? back : forth;
    const Bytes& b = batches[step];
    if (!e.Apply(b.data(), b.size()).ok()) state.SkipWithError("move failed");
    if (++step == batches.size()) step = 0, at_moved = !at_moved;
    if (next_q + kQueryBatch > qs.size()) next_q = 0;
    e.RunMany(&qs[next_q], kQueryBatch, results.data(), statuses.data());
    next_q += kQueryBatch;
  }
  // Restore the post-move world for later benchmarks.
  const std::vector<Bytes>& rest = at_moved ? back : forth;
  bool ok = true;
  for (; step != 0 && step < rest.size(); ++step)
    ok &= e.Apply(rest[step].data(), rest[step].size()).ok();
  if (!at_moved) ok &= ApplyAll(e, forth);
  if (!ok) state.SkipWithError("restoring the world failed");
  state.SetItemsProcessed(int64_t(state.iterations() * (kMoveBatch + kQueryBatch)));
  state.counters["moves_per_s"] =
      benchmark::Counter(double(state.iterations() * kMoveBatch), benchmark::Counter::kIsRate);
  state.counters["queries_per_s"] =
      benchmark::Counter(double(state.iterations() * kQueryBatch), benchmark::Counter::kIsRate);
}

void RegisterAll() {
  for (Distribution d : {Distribution::kUniform, Distribution::kClustered}) {
    const std::string dn(aoi::DistributionName(d));
    for (uint32_t shards : {1u, 2u}) {
      const std::string suffix = "/" + dn + "/shards:" + std::to_string(shards);
      benchmark::RegisterBenchmark(("BM_Engine_Load/bulk" + suffix).c_str(), BM_Engine_Load, d,
                                   shards, size_t{1000000})
          ->Unit(benchmark::kMillisecond)
          ->Iterations(3)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_Load/batch10k" + suffix).c_str(), BM_Engine_Load, d,
                                   shards, size_t{10000})
          ->Unit(benchmark::kMillisecond)
          ->Iterations(3)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_Move" + suffix).c_str(), BM_Engine_Move, d, shards,
                                   false)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_MoveShuffled" + suffix).c_str(), BM_Engine_Move, d,
                                   shards, true)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_Radius" + suffix).c_str(), BM_Engine_Radius, d,
                                   shards)
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(1.0)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_RadiusRows" + suffix).c_str(), BM_Engine_RadiusRows,
                                   d, shards)
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(1.0)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_RadiusColumns" + suffix).c_str(),
                                   BM_Engine_RadiusColumns, d, shards)
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(1.0)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_KNN" + suffix).c_str(), BM_Engine_KNN, d, shards)
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(1.0)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Engine_Mixed" + suffix).c_str(), BM_Engine_Mixed, d, shards)
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(1.0)
          ->UseRealTime();
    }
  }
}

}  // namespace
}  // namespace worlddb::bench

int main(int argc, char** argv) {
  worlddb::bench::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
