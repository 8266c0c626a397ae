// Engine::GetMany and Engine::GetStats.
#include <gtest/gtest.h>

#include "engine/batch_builder.h"
#include "engine/engine.h"

namespace worlddb {
namespace {

class EngineApiTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.world = {0, 0, 1000, 1000};
    o.shards = GetParam();
    engine_ = std::move(Engine::Open(o).value());
    ASSERT_TRUE(engine_->CreateKind({"player", {{"hp", ColumnType::kI32, int32_t{100}, 0}}}).ok());
    ASSERT_TRUE(engine_->CreateKind({"npc", {{"level", ColumnType::kI64, int64_t{1}, 0}}}).ok());
    BatchBuilder b;
    for (uint64_t id = 1; id <= 100; ++id) {
      if (id % 2) {
        b.Upsert(id, "player", double(id), double(id), double(-int64_t(id)), {{"hp", int32_t(id)}});
      } else {
        b.Upsert(id, "npc", double(id), 1, 0);
      }
    }
    auto bytes = b.Finish();
    ASSERT_TRUE(engine_->Apply(bytes.data(), bytes.size()).ok());
  }
  std::unique_ptr<Engine> engine_;
};

TEST_P(EngineApiTest, GetManyKeepsRequestOrderAndReportsMissing) {
  QueryResult r;
  std::vector<uint64_t> missing;
  ASSERT_TRUE(engine_->GetMany({7, 500, 2, 99, 7000, 1}, "", {}, &r, &missing).ok());
  EXPECT_EQ(r.ids, (std::vector<uint64_t>{7, 2, 99, 1}));
  EXPECT_EQ(r.x, (std::vector<double>{7, 2, 99, 1}));
  EXPECT_EQ(r.z[0], -7);
  EXPECT_EQ(missing, (std::vector<uint64_t>{500, 7000}));
  EXPECT_EQ(r.count, 4u);
}

TEST_P(EngineApiTest, GetManyWithKindAndProjection) {
  QueryResult r;
  std::vector<uint64_t> missing;
  ASSERT_TRUE(engine_->GetMany({3, 4, 5}, "player", {"hp"}, &r, &missing).ok());
  EXPECT_EQ(r.ids, (std::vector<uint64_t>{3, 5}));
  ASSERT_EQ(r.columns.size(), 1u);
  EXPECT_EQ(r.columns[0].name, "hp");
  EXPECT_EQ(std::get<std::vector<int32_t>>(r.columns[0].data), (std::vector<int32_t>{3, 5}));
  EXPECT_EQ(missing, (std::vector<uint64_t>{4}));  // an npc, not a player
}

TEST_P(EngineApiTest, GetManyEmptyAndAllMissing) {
  QueryResult r;
  std::vector<uint64_t> missing;
  ASSERT_TRUE(engine_->GetMany({}, "player", {"hp"}, &r, &missing).ok());
  EXPECT_TRUE(r.ids.empty());
  ASSERT_EQ(r.columns.size(), 1u);  // the projected column is present, empty
  ASSERT_TRUE(engine_->GetMany({1000, 1001}, "", {}, &r, &missing).ok());
  EXPECT_TRUE(r.ids.empty());
  EXPECT_EQ(missing.size(), 2u);
}

TEST_P(EngineApiTest, GetManyErrors) {
  QueryResult r;
  std::vector<uint64_t> missing;
  EXPECT_EQ(engine_->GetMany({1}, "", {"hp"}, &r, &missing).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->GetMany({1}, "dragon", {}, &r, &missing).code(), StatusCode::kNotFound);
  EXPECT_EQ(engine_->GetMany({1}, "player", {"mana"}, &r, &missing).code(), StatusCode::kNotFound);
}

TEST_P(EngineApiTest, StatsCountEntitiesBatchesAndQueries) {
  BatchBuilder b;
  b.Move(1, 5, 5).Move(2, 6, 6).Delete(3);
  auto bytes = b.Finish();
  ASSERT_TRUE(engine_->Apply(bytes.data(), bytes.size()).ok());
  b.Move(999, 1, 1);  // refused
  bytes = b.Finish();
  ASSERT_FALSE(engine_->Apply(bytes.data(), bytes.size()).ok());
  QueryResult r;
  ASSERT_TRUE(engine_->Run(Query::Circle(5, 5, 10), &r).ok());

  const Engine::Stats st = engine_->GetStats();
  EXPECT_EQ(st.entities, 99u);
  ASSERT_EQ(st.entities_per_kind.size(), 2u);
  EXPECT_EQ(st.entities_per_kind[0], (std::pair<std::string, uint64_t>{"player", 49}));
  EXPECT_EQ(st.entities_per_kind[1], (std::pair<std::string, uint64_t>{"npc", 50}));
  EXPECT_EQ(st.batches_applied, 2u);
  EXPECT_EQ(st.batches_refused, 1u);
  EXPECT_EQ(st.operations_applied, 100u + 3u);
  EXPECT_EQ(st.queries, 1u);
  EXPECT_EQ(st.schema_version, 2u);
  EXPECT_EQ(st.last_ticket, 5u);  // 2 kinds + 3 batches
  EXPECT_GT(st.memory.total(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Shards, EngineApiTest, ::testing::Values(1u, 3u),
                         [](const ::testing::TestParamInfo<uint32_t>& p) {
                           return "shards" + std::to_string(p.param);
                         });

}  // namespace
}  // namespace worlddb
