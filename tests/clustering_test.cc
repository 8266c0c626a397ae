// Clustering (Shard::ClusterStep) as the engine runs it: passes start on
// their own once a kind is large and has changed enough, run on the shards'
// threads between batches, leave each kind's rows in the Z order of its tree,
// and change no answer. Single steps under queries and writes are covered by
// the engine differential test; the tree's walk by quadtree_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "engine/shard.h"

namespace worlddb {
namespace {

const Rect kWorld{0, 0, 1000, 1000};

// The first `levels` quadrant choices of (x, y) from the root, as the tree
// splits: with every leaf at least `levels` deep, rows in Z order have
// non-decreasing prefixes.
uint64_t ZPrefix(double x, double y, int levels) {
  Rect b = kWorld;
  uint64_t key = 0;
  for (int l = 0; l < levels; ++l) {
    const double mx = (b.min_x + b.max_x) / 2, my = (b.min_y + b.max_y) / 2;
    const uint64_t q = (x >= mx ? 1u : 0u) | (y >= my ? 2u : 0u);
    key = key << 2 | q;
    (q & 1 ? b.min_x : b.max_x) = mx;
    (q & 2 ? b.min_y : b.max_y) = my;
  }
  return key;
}

class ClusteringTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.world = kWorld;
    o.shards = GetParam();
    engine_ = std::move(Engine::Open(o).value());
    ASSERT_TRUE(engine_
                    ->CreateKind({"npc",
                                  {{"hp", ColumnType::kI32, int32_t{100}, 0},
                                   {"name", ColumnType::kString, std::string(), 0}}})
                    .ok());
  }

  // Upserts ids [first, first + n) at random positions; hp and name follow
  // from the id.
  void Insert(uint64_t first, uint64_t n) {
    BatchBuilder b;
    std::uniform_real_distribution<double> u(0, 1000);
    for (uint64_t id = first; id < first + n; ++id) {
      b.Upsert(id, "npc", u(rng_), u(rng_), double(id),
               {{"hp", int32_t(id % 1000)}, {"name", "npc-" + std::to_string(id)}});
    }
    auto bytes = b.Finish();
    const auto applied = engine_->Apply(bytes.data(), bytes.size());
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  }

  bool Clustering() {
    std::atomic<bool> any{false};  // the shards' threads answer at once
    engine_->ForEachShard([&](Shard& s, uint32_t) {
      if (s.clustering()) any = true;
    });
    return any;
  }

  // Waits for the passes in progress to end (the shard threads take steps
  // when idle); false after 60 s.
  bool WaitClustered() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (Clustering()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  // Each shard's rows of kind 0 follow Z order, and each shard holds at least
  // `min_rows` of them.
  void ExpectZOrder(uint32_t min_rows) {
    engine_->ForEachShard([&](Shard& s, uint32_t index) {
      const QuadTree& t = s.tree(0);
      const uint32_t n = s.table(0).size();
      EXPECT_GE(n, min_rows) << "shard " << index;
      for (uint32_t r = 1; r < n; ++r) {
        if (ZPrefix(t.X(r - 1), t.Y(r - 1), 3) > ZPrefix(t.X(r), t.Y(r), 3)) {
          ADD_FAILURE() << "shard " << index << ": row " << r << " comes before row " << r - 1
                        << " in Z order";
          return;
        }
      }
    });
  }

  // ids, positions and projected columns of radius queries, sorted by id.
  std::vector<std::string> Answers() {
    std::vector<std::string> out;
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0, 1000);
    for (int i = 0; i < 40; ++i) {
      Query q = Query::Circle(u(rng), u(rng), 30);
      q.kind = "npc";
      q.columns = {"hp", "name"};
      QueryResult r;
      const Status st = engine_->Run(q, &r);
      EXPECT_TRUE(st.ok()) << st.ToString();
      std::vector<std::string> rows;
      const auto& hp = std::get<std::vector<int32_t>>(r.columns[0].data);
      const auto& name = std::get<std::vector<std::string>>(r.columns[1].data);
      for (size_t j = 0; j < r.rows(); ++j) {
        rows.push_back(std::to_string(r.ids[j]) + " " + std::to_string(r.x[j]) + " " +
                       std::to_string(r.y[j]) + " " + std::to_string(r.z[j]) + " " +
                       std::to_string(hp[j]) + " " + name[j]);
      }
      std::sort(rows.begin(), rows.end());
      for (auto& row : rows) out.push_back(std::move(row));
      out.push_back("--");
    }
    return out;
  }

  std::mt19937_64 rng_{42};
  std::unique_ptr<Engine> engine_;
};

TEST_P(ClusteringTest, SmallKindsAreLeftAlone) {
  Insert(1, 1000);
  EXPECT_FALSE(Clustering());
}

TEST_P(ClusteringTest, PassStartsOnItsOwnAndOrdersRowsWithoutChangingAnswers) {
  // Enough rows that every shard's kind reaches kClusterMinRows.
  const uint64_t n = uint64_t{kClusterMinRows + 2000} * GetParam() * 11 / 10;
  std::vector<std::string> before;
  {
    // Apply without letting a pass finish first: one batch, then the answers
    // (a pass may be under way while they run).
    Insert(1, n);
    before = Answers();
  }
  ASSERT_TRUE(WaitClustered());
  ExpectZOrder(kClusterMinRows);
  EXPECT_EQ(engine_->CheckInvariants(), "");
  EXPECT_EQ(Answers(), before);
  Shard::Entity e;
  ASSERT_TRUE(engine_->Get(12345, &e));
  EXPECT_EQ(std::get<int32_t>(e.columns[0]), 345);
  EXPECT_EQ(std::get<std::string>(e.columns[1]), "npc-12345");
  EXPECT_EQ(e.z, 12345.0);
}

TEST_P(ClusteringTest, ChurnStartsAnotherPass) {
  const uint64_t n = uint64_t{kClusterMinRows + 2000} * GetParam() * 11 / 10;
  Insert(1, n);
  ASSERT_TRUE(WaitClustered());
  // Deletes fill holes with last rows; then half as many again are appended
  // (out of Z order until a new pass, which this batch starts).
  BatchBuilder b;
  for (uint64_t id = 1; id <= n; id += 7) b.Delete(id);
  auto bytes = b.Finish();
  ASSERT_TRUE(engine_->Apply(bytes.data(), bytes.size()).ok());
  Insert(n + 1, n / 2);
  ASSERT_TRUE(WaitClustered());
  ExpectZOrder(kClusterMinRows);
  EXPECT_EQ(engine_->CheckInvariants(), "");
  EXPECT_EQ(engine_->size(), n + n / 2 - (n + 6) / 7);
}

INSTANTIATE_TEST_SUITE_P(Shards, ClusteringTest, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "Shards"; });

}  // namespace
}  // namespace worlddb
