// Writers and readers on one engine at once, checking the concurrency
// guarantees stated in engine/engine.h:
//   * no torn entity: every row a query returns has x == y == z, a == x and
//     b == -a, because every write sets all of them together;
//   * read-your-acknowledged-writes: after Apply returned for sequence number
//     s, any later query sees s or newer;
//   * all-or-nothing: entities created by batches that were refused never
//     appear.
// Runs under TSan in CI (label "stress").
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "engine/batch_builder.h"
#include "engine/engine.h"

namespace worlddb {
namespace {

constexpr uint64_t kEntities = 2000;       // ids 1..kEntities, kind "thing"
constexpr uint64_t kPoisonBase = 1 << 20;  // ids created only by refused batches
constexpr int kWriters = 2;
constexpr int kReaders = 2;

int Rounds() {
  const char* s = std::getenv("WORLDDB_STRESS_ROUNDS");
  return s ? std::atoi(s) : 3000;
}

TEST(EngineStressTest, WritersAndReadersKeepTheGuarantees) {
  EngineOptions o;
  o.world = {0, 0, 10000, 10000};
  o.shards = 3;
  auto engine = std::move(Engine::Open(o).value());
  ASSERT_TRUE(engine
                  ->CreateKind({"thing",
                                {{"a", ColumnType::kI64, int64_t{0}, 0},
                                 {"b", ColumnType::kI64, int64_t{0}, 0}}})
                  .ok());
  ASSERT_TRUE(engine->CreateKind({"seq", {{"s", ColumnType::kI64, int64_t{0}, 0}}}).ok());
  {
    BatchBuilder b;
    for (uint64_t id = 1; id <= kEntities; ++id) {
      const double v = double(id);
      b.Upsert(id, "thing", v, v, v, {{"a", int64_t(id)}, {"b", -int64_t(id)}});
    }
    for (int w = 0; w < kWriters; ++w) b.Upsert(kEntities + 1 + w, "seq", 1.0 + w, 1.0, 0);
    auto bytes = b.Finish();
    ASSERT_TRUE(engine->Apply(bytes.data(), bytes.size()).ok());
  }

  std::atomic<int64_t> acked[kWriters];
  for (auto& a : acked) a = 0;
  std::atomic<bool> writers_done{false};
  std::atomic<int> failures{0};
  std::atomic<int> reads{0};
  const int rounds = Rounds();

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(1000 + w);
      BatchBuilder b;
      for (int round = 1; round <= rounds; ++round) {
        // Whole-entity rewrites of a random subset, plus this writer's sequence.
        std::set<uint64_t> ids;
        for (int i = 0; i < 50; ++i) {
          const uint64_t id = 1 + (rng() % kEntities);
          // Writers own disjoint ids; a batch names an id once.
          if ((id % kWriters) != uint64_t(w) || !ids.insert(id).second) continue;
          const int64_t v = int64_t(rng() % 9999) + 1;
          b.Upsert(id, "thing", double(v), double(v), double(v), {{"a", v}, {"b", -v}});
        }
        b.Set(kEntities + 1 + w, {{"s", int64_t(round)}});
        auto bytes = b.Finish();
        auto r = engine->Apply(bytes.data(), bytes.size());
        if (!r.ok()) failures++;
        acked[w].store(round, std::memory_order_release);
        // A refused batch: new poison ids plus a move of a missing entity.
        if (round % 10 == 0) {
          for (int i = 0; i < 20; ++i)
            b.Upsert(kPoisonBase + w * 100000 + round * 20 + i, "thing", 5, 5, 5);
          b.Move(kPoisonBase - 1, 1, 1);
          auto bad = b.Finish();
          if (engine->Apply(bad.data(), bad.size()).ok()) failures++;
        }
      }
    });
  }
  for (int rd = 0; rd < kReaders; ++rd) {
    threads.emplace_back([&, rd] {
      std::mt19937_64 rng(2000 + rd);
      while (!writers_done.load(std::memory_order_acquire)) {
        int64_t before[kWriters];
        for (int w = 0; w < kWriters; ++w) before[w] = acked[w].load(std::memory_order_acquire);
        // Sequence rows must be at least what was acknowledged before the query.
        Query sq = Query::InRect({0, 0, 100, 100});
        sq.kind = "seq";
        sq.columns = {"s"};
        QueryResult sr;
        if (!engine->Run(sq, &sr).ok()) failures++;
        const auto& s = std::get<std::vector<int64_t>>(sr.columns.at(0).data);
        for (size_t i = 0; i < sr.rows(); ++i) {
          const int w = int(sr.ids[i] - kEntities - 1);
          if (s[i] < before[w]) failures++;
        }
        // Torn-entity and poison checks over a random window.
        const double cx = double(rng() % 10000), cy = double(rng() % 10000);
        Query q = Query::Circle(cx, cy, 3000);
        q.kind = "thing";
        q.columns = {"a", "b"};
        QueryResult r;
        if (!engine->Run(q, &r).ok()) failures++;
        const auto& a = std::get<std::vector<int64_t>>(r.columns.at(0).data);
        const auto& b = std::get<std::vector<int64_t>>(r.columns.at(1).data);
        for (size_t i = 0; i < r.rows(); ++i) {
          if (r.ids[i] >= kPoisonBase) failures++;
          if (r.x[i] != r.y[i] || r.z[i] != r.x[i] || double(a[i]) != r.x[i] || b[i] != -a[i])
            failures++;
        }
        reads++;
        QueryResult nn;
        if (!engine->Run(Query::Nearest(cx, cy, 8), &nn).ok()) failures++;
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  writers_done = true;
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(engine->size(), kEntities + kWriters);
  EXPECT_EQ(engine->CheckInvariants(), "");
}

// Schema changes interleaved with writes: every shard switches schema between
// the same two writes, so writes naming the new column succeed right after
// AlterKind returns, on every shard.
TEST(EngineStressTest, SchemaChangesAreOrderedWithWrites) {
  EngineOptions o;
  o.shards = 3;
  auto engine = std::move(Engine::Open(o).value());
  ASSERT_TRUE(engine->CreateKind({"k", {}}).ok());
  {
    BatchBuilder b;  // the ids the loop below sets exist before the writer starts
    for (uint64_t id = 1; id <= 20; ++id) b.Upsert(id, "k", 1, 1);
    auto bytes = b.Finish();
    ASSERT_TRUE(engine->Apply(bytes.data(), bytes.size()).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    BatchBuilder b;
    uint64_t id = 21;
    while (!stop.load()) {
      for (int i = 0; i < 20; ++i, ++id) b.Upsert(id, "k", double(id % 1000), 0);
      auto bytes = b.Finish();
      if (!engine->Apply(bytes.data(), bytes.size()).ok()) failures++;
    }
  });
  for (int c = 0; c < 30; ++c) {
    const std::string col = "c" + std::to_string(c);
    ASSERT_TRUE(engine->AlterKind("k", {{col, ColumnType::kI64, int64_t{c}, 0}}, {}).ok());
    BatchBuilder b;
    for (uint64_t id = 1; id <= 20; ++id) b.Set(id, {{col, int64_t{100 + c}}});
    auto bytes = b.Finish();
    auto r = engine->Apply(bytes.data(), bytes.size());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }
  stop = true;
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(engine->CheckInvariants(), "");
}

}  // namespace
}  // namespace worlddb
