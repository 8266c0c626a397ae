// worlddb_demo: builds a world of N entities in the engine, moves every entity
// once, runs the workload's radius and kNN queries, and prints what it did,
// how fast, and whether the answers match ../shared/workloads/aoi.md §8.
//
//   worlddb_demo [--entities N] [--dist uniform|clustered] [--shards S]
//                [--queries Q] [--batch B]
//
// Exit status: 0 if every figure was produced and (for N = 1,000,000 and the
// full query lists) the checksums match; 1 on a mismatch; 2 on bad flags.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <thread>

#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "tools/aoi_workload.h"

namespace worlddb {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Fail(const Status& s, const char* what) {
  std::fprintf(stderr, "worlddb_demo: %s failed: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

int Main(int argc, char** argv) {
  CLI::App app{"Builds, moves and queries an aoi-1m world in WorldDB's engine."};
  size_t entities = aoi::kDefaultEntities;
  std::string dist_name = "uniform";
  uint32_t shards = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
  size_t queries = aoi::kNumQueries;
  size_t batch = 10000;
  app.add_option("--entities", entities, "entities in the world")
      ->check(CLI::Range(size_t{1}, size_t{1} << 31));
  app.add_option("--dist", dist_name, "uniform or clustered")
      ->check(CLI::IsMember({"uniform", "clustered"}));
  app.add_option("--shards", shards, "engine shards (one thread each)")
      ->check(CLI::Range(1u, 256u));
  app.add_option("--queries", queries, "radius and kNN queries to run")
      ->check(CLI::Range(size_t{1}, aoi::kNumQueries));
  app.add_option("--batch", batch, "operations per write batch and queries per hand-off")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  CLI11_PARSE(app, argc, argv);

  const auto dist =
      dist_name == "clustered" ? aoi::Distribution::kClustered : aoi::Distribution::kUniform;
  std::printf("worlddb_demo: %zu %s entities, %u shard(s), batches of %zu\n", entities,
              dist_name.c_str(), shards, batch);
  const aoi::AoiWorkload w(dist, entities, queries);

  EngineOptions opts;
  opts.shards = shards;
  auto opened = Engine::Open(opts);
  if (!opened.ok()) Fail(opened.status(), "open");
  std::unique_ptr<Engine> engine = std::move(opened.value());
  if (Status s = engine->CreateKind({"entity", {}}); !s.ok()) Fail(s, "create kind");

  // Load.
  BatchBuilder b;
  auto t0 = Clock::now();
  for (size_t first = 0; first < entities; first += batch) {
    const size_t last = std::min(entities, first + batch);
    for (size_t i = first; i < last; ++i) b.Upsert(i + 1, "entity", w.load_xs()[i], w.load_ys()[i]);
    auto bytes = b.Finish();
    auto r = engine->Apply(bytes.data(), bytes.size());
    if (!r.ok()) Fail(r.status(), "load");
  }
  const double load_s = Seconds(t0);
  const ShardMemory mem = engine->Memory();
  std::printf("  load    %9zu entities  %7.3f s  %8.2f M entities/s\n", entities, load_s,
              entities / load_s / 1e6);
  std::printf("  memory  %.1f bytes/entity (tables %.1f, index %.1f, id map %.1f)\n",
              double(mem.total()) / entities, double(mem.tables) / entities,
              double(mem.index) / entities, double(mem.id_map) / entities);

  // Move: one tick, every entity once.
  t0 = Clock::now();
  for (size_t first = 0; first < entities; first += batch) {
    const size_t last = std::min(entities, first + batch);
    for (size_t i = first; i < last; ++i) b.Move(i + 1, w.moved_xs()[i], w.moved_ys()[i]);
    auto bytes = b.Finish();
    auto r = engine->Apply(bytes.data(), bytes.size());
    if (!r.ok()) Fail(r.status(), "move");
  }
  const double move_s = Seconds(t0);
  std::printf("  move    %9zu entities  %7.3f s  %8.2f M moves/s\n", entities, move_s,
              entities / move_s / 1e6);

  // Radius and kNN queries, handed to the shards `batch` at a time.
  auto run = [&](const std::vector<uint32_t>& ids, bool knn, uint64_t* count_sum,
                 double* dist_sum) {
    std::vector<Query> qs;
    std::vector<QueryResult> rs;
    std::vector<Status> st;
    for (size_t first = 0; first < ids.size(); first += batch) {
      const size_t last = std::min(ids.size(), first + batch);
      qs.clear();
      for (size_t i = first; i < last; ++i) {
        const double x = w.moved_xs()[ids[i] - 1], y = w.moved_ys()[ids[i] - 1];
        Query q = knn ? Query::Nearest(x, y, aoi::kKnnK) : Query::Circle(x, y, aoi::kQueryRadius);
        q.count_only = !knn;
        qs.push_back(q);
      }
      rs.assign(qs.size(), {});
      st.assign(qs.size(), {});
      engine->RunMany(qs.data(), qs.size(), rs.data(), st.data());
      for (size_t i = 0; i < qs.size(); ++i) {
        if (!st[i].ok()) Fail(st[i], knn ? "kNN" : "radius");
        *count_sum += rs[i].count;
        if (knn && !rs[i].distance.empty()) *dist_sum += rs[i].distance.back();
      }
    }
  };
  uint64_t radius_sum = 0, knn_count = 0;
  double unused = 0, knn_sum = 0;
  t0 = Clock::now();
  run(w.radius_query_ids(), false, &radius_sum, &unused);
  const double radius_s = Seconds(t0);
  std::printf(
      "  radius  %9zu queries   %7.3f s  %8.1f k queries/s  (r = 50 m, %.2f results/query)\n",
      queries, radius_s, queries / radius_s / 1e3, double(radius_sum) / queries);
  t0 = Clock::now();
  run(w.knn_query_ids(), true, &knn_count, &knn_sum);
  const double knn_s = Seconds(t0);
  std::printf("  kNN     %9zu queries   %7.3f s  %8.1f k queries/s  (k = 16)\n", queries, knn_s,
              queries / knn_s / 1e3);

  std::printf("  checksums: radius count sum %" PRIu64 ", kNN 16th-distance sum %.6f\n", radius_sum,
              knn_sum);
  if (entities == aoi::kDefaultEntities && queries == aoi::kNumQueries) {
    const bool uniform = dist == aoi::Distribution::kUniform;
    const uint64_t want_count = uniform ? 7921942 : 54311467;
    const double want_knn = uniform ? 2170552.293952 : 1567778.049514;
    const bool ok = radius_sum == want_count && std::fabs(knn_sum - want_knn) < 5e-7;
    std::printf("  reference (aoi.md §8): %" PRIu64 ", %.6f -> %s\n", want_count, want_knn,
                ok ? "match" : "MISMATCH");
    if (!ok) return 1;
  }
  if (std::string e = engine->CheckInvariants(); !e.empty()) {
    std::fprintf(stderr, "worlddb_demo: invariant check failed: %s\n", e.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace worlddb

int main(int argc, char** argv) { return worlddb::Main(argc, argv); }
