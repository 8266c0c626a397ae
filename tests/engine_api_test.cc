// Engine::GetMany, Engine::GetStats, Engine::ApplyMany, and results reused
// across RunMany calls.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/engine.h"

namespace worlddb {
namespace {

// A commit log for the ApplyMany tests: records nothing, fails nothing;
// each test overrides what it watches.
class NullLog : public CommitLog {
 public:
  Status Commit(uint64_t, RecordType, std::span<const uint8_t>, Ack) override {
    return Status::Ok();
  }
  Result<uint64_t> Mark(uint64_t) override { return uint64_t{0}; }
  Status WaitDurable(uint64_t) override { return Status::Ok(); }
  Status WaitAll(Ack) override { return Status::Ok(); }
  Status Writable() const override { return Status::Ok(); }
};

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
  // A fresh engine (not engine_) with this test's shard count, writing to
  // `log`, with an empty kind "npc" whose record the log has already seen;
  // nullptr (and a failure) if the kind could not be created.
  std::unique_ptr<Engine> OpenLogged(CommitLog* log) {
    EngineOptions o;
    o.shards = GetParam();
    auto engine = std::move(Engine::Open(o).value());
    engine->SetCommitLog(log);
    const Status st = engine->CreateKind({"npc", {}});
    EXPECT_TRUE(st.ok()) << st.ToString();
    return st.ok() ? std::move(engine) : nullptr;
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

// RunMany overwrites the caller's results in place (keeping their capacity);
// what a result held for an earlier query must never leak into the next.
TEST_P(EngineApiTest, ReusedResultsTakeEachQuerysProjection) {
  std::vector<QueryResult> outs(2);
  std::vector<Status> sts(2);
  auto run = [&](Query a, Query b) {
    const Query qs[2] = {std::move(a), std::move(b)};
    engine_->RunMany(qs, 2, outs.data(), sts.data());
    ASSERT_TRUE(sts[0].ok()) << sts[0].ToString();
    ASSERT_TRUE(sts[1].ok()) << sts[1].ToString();
  };
  // Within 20 m of the origin: players 1, 3, .., 13 at (id, id); npcs 2, .., 18 at (id, 1).
  Query players = Query::Circle(0, 0, 20);
  players.kind = "player";
  players.columns = {"hp"};
  Query npcs = Query::Circle(0, 0, 20);
  npcs.kind = "npc";
  npcs.columns = {"level"};
  auto expect_players = [](const QueryResult& r) {
    ASSERT_EQ(r.rows(), 7u);
    ASSERT_EQ(r.columns.size(), 1u);
    EXPECT_EQ(r.columns[0].name, "hp");
    const auto& hp = std::get<std::vector<int32_t>>(r.columns[0].data);
    ASSERT_EQ(hp.size(), 7u);
    for (size_t i = 0; i < 7; ++i) {
      EXPECT_EQ(r.ids[i] % 2, 1u);
      EXPECT_EQ(hp[i], static_cast<int32_t>(r.ids[i]));  // hp = id
    }
  };
  ASSERT_NO_FATAL_FAILURE(run(players, npcs));
  expect_players(outs[0]);
  EXPECT_EQ(outs[1].rows(), 9u);
  EXPECT_EQ(std::get<std::vector<int64_t>>(outs[1].columns[0].data), std::vector<int64_t>(9, 1));

  // Swapped: each result now answers the other projection (another type).
  ASSERT_NO_FATAL_FAILURE(run(npcs, players));
  ASSERT_EQ(outs[0].columns.size(), 1u);
  EXPECT_EQ(outs[0].columns[0].name, "level");
  EXPECT_EQ(outs[0].columns[0].type, ColumnType::kI64);
  EXPECT_EQ(std::get<std::vector<int64_t>>(outs[0].columns[0].data), std::vector<int64_t>(9, 1));
  expect_players(outs[1]);

  // Fewer rows, no projection, then a count: nothing left over.
  Query few = Query::Circle(2, 1, 0.5);  // npc 2 alone
  Query count = Query::Circle(0, 0, 20);
  count.count_only = true;
  ASSERT_NO_FATAL_FAILURE(run(few, count));
  EXPECT_EQ(outs[0].ids, (std::vector<uint64_t>{2}));
  EXPECT_EQ(outs[0].x, (std::vector<double>{2}));
  EXPECT_EQ(outs[0].distance.size(), 1u);
  EXPECT_TRUE(outs[0].columns.empty());
  EXPECT_EQ(outs[1].count, 16u);
  EXPECT_EQ(outs[1].rows(), 0u);
  EXPECT_TRUE(outs[1].x.empty());
  EXPECT_TRUE(outs[1].distance.empty());
  EXPECT_TRUE(outs[1].columns.empty());
}

// A shard compiles a query once for a run of queries with the same kind,
// predicates and projection (a QueryBatch's). Queries that differ in any
// of those, however slightly, must each get their own answer, and a failed
// compilation must neither leak into nor survive past its run.
TEST_P(EngineApiTest, RunManyCompilesEachKindPredicateAndProjection) {
  auto with = [](Query q, std::string kind, std::vector<std::string> cols,
                 std::vector<Predicate> where = {}) {
    q.kind = std::move(kind);
    q.columns = std::move(cols);
    q.where = std::move(where);
    return q;
  };
  const Query near = Query::Circle(10, 10, 15), far = Query::Circle(60, 60, 25);
  Query count = with(near, "player", {"hp"});
  count.count_only = true;
  const std::vector<Query> qs = {
      with(near, "player", {"hp"}),
      with(far, "player", {"hp"}),
      with(far, "player", {"hp"}, {{"hp", CompareOp::kGe, int32_t{55}}}),
      with(far, "player", {"hp"}, {{"hp", CompareOp::kGe, int32_t{65}}}),  // another value
      with(far, "player", {"hp"}, {{"hp", CompareOp::kGt, int32_t{65}}}),  // another operator
      with(far, "player", {"hp"}, {{"hp", CompareOp::kGt, int64_t{65}}}),  // another type: error
      with(far, "player", {"hp"}, {{"hp", CompareOp::kGt, int32_t{65}}}),
      with(far, "npc", {"level"}),
      with(far, "dragon", {}),  // no such kind
      with(near, "dragon", {}),
      Query::Circle(1, 1, -1),  // refused before the shards
      with(near, "player", {"hp"}),
      count,
      with(near, "player", {"hp"}),
      with(near, "player", {"mana"}),  // no such column
      with(near, "player", {}),
      with(near, "npc", {}),  // another kind alone
      with(near, "dragon", {}),
      with(Query::InRect({0, 0, 30, 30}), "npc", {"level"}),
      with(far, "", {}),
      with(Query::Nearest(50, 50, 3), "player", {"hp"}),
      with(Query::Nearest(50, 50, 3), "npc", {"level"}),
  };
  std::vector<QueryResult> outs(qs.size());
  std::vector<Status> sts(qs.size());
  engine_->RunMany(qs.data(), qs.size(), outs.data(), sts.data());
  size_t failed = 0;
  for (size_t i = 0; i < qs.size(); ++i) {
    QueryResult want;
    const Status st = engine_->Run(qs[i], &want);
    ASSERT_EQ(sts[i].code(), st.code()) << "query " << i << ": " << sts[i].ToString();
    EXPECT_EQ(sts[i].ToString(), st.ToString()) << "query " << i;
    if (!st.ok()) {
      ++failed;
      continue;
    }
    EXPECT_EQ(outs[i].ids, want.ids) << "query " << i;
    EXPECT_EQ(outs[i].count, want.count) << "query " << i;
    EXPECT_EQ(outs[i].distance, want.distance) << "query " << i;
    ASSERT_EQ(outs[i].columns.size(), want.columns.size()) << "query " << i;
    for (size_t c = 0; c < want.columns.size(); ++c) {
      EXPECT_EQ(outs[i].columns[c].name, want.columns[c].name) << "query " << i;
      EXPECT_EQ(outs[i].columns[c].data, want.columns[c].data) << "query " << i;
    }
  }
  EXPECT_EQ(failed, 6u);  // the int64 predicate, dragons thrice, the negative radius, mana
  // The answers differ where the specs do (so the comparison above can fail).
  EXPECT_NE(outs[2].ids, outs[3].ids);
  EXPECT_NE(outs[3].ids, outs[4].ids);
  EXPECT_EQ(outs[4].ids, outs[6].ids);
  EXPECT_NE(outs[1].ids, outs[2].ids);
  EXPECT_EQ(outs[12].rows(), 0u);
  EXPECT_GT(outs[12].count, 0u);
  EXPECT_TRUE(outs[15].columns.empty());
  EXPECT_NE(outs[15].ids, outs[16].ids);
}

// The point of answering in place: a result reused for the same query keeps
// its buffers, so the shards allocate nothing for it.
TEST_P(EngineApiTest, ReusedResultsKeepTheirBuffers) {
  Query q = Query::Circle(0, 0, 30);  // players 1, 3, .., 21
  q.kind = "player";
  q.columns = {"hp"};
  QueryResult out;
  Status st;
  Engine::InFlight flight;
  engine_->StartMany(&q, 1, &out, &st, &flight);
  engine_->FinishMany(&flight);
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(out.rows(), 11u);
  const uint64_t* ids = out.ids.data();
  const double* x = out.x.data();
  const int32_t* hp = std::get<std::vector<int32_t>>(out.columns[0].data).data();
  engine_->StartMany(&q, 1, &out, &st, &flight);
  engine_->FinishMany(&flight);
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(out.rows(), 11u);
  EXPECT_EQ(out.ids.data(), ids);
  EXPECT_EQ(out.x.data(), x);
  EXPECT_EQ(std::get<std::vector<int32_t>>(out.columns[0].data).data(), hp);
}

// ApplyMany sends every batch before waiting for any: the answers must be
// those of consecutive Apply calls, a batch seeing the ones before it.
TEST_P(EngineApiTest, ApplyManyAppliesInOrderAsConsecutiveApplies) {
  auto batch = [](auto&& fill) {
    BatchBuilder b;
    fill(b);
    return b.FinishCopy();
  };
  const auto create = batch([](BatchBuilder& b) { b.Upsert(1000, "player", 500, 500); });
  const std::vector<uint8_t> garbage = {1, 2, 3, 4, 5, 6, 7, 8};
  const auto move1 = batch([](BatchBuilder& b) { b.Move(1000, 600, 600); });  // needs `create`
  const auto missing = batch([](BatchBuilder& b) { b.Move(99999, 1, 1); });
  const auto move2 = batch([](BatchBuilder& b) { b.Move(1000, 700, 700); });
  // An unaligned copy of move2 too: ApplyMany aligns each batch it is given.
  std::vector<uint8_t> unaligned(move2.size() + 1);
  std::memcpy(unaligned.data() + 1, move2.data(), move2.size());
  const std::span<const uint8_t> batches[] = {
      create, garbage, move1, missing, move2, {unaligned.data() + 1, move2.size()}};
  std::vector<Result<WriteStats>> results;
  std::vector<uint64_t> tickets;
  const uint64_t before = engine_->last_ticket();
  engine_->ApplyMany(batches, Ack::kMode, &results, &tickets);
  ASSERT_EQ(results.size(), 6u);
  ASSERT_EQ(tickets.size(), 6u);
  ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
  EXPECT_EQ(results[0].value().created, 1u);
  EXPECT_EQ(results[1].status().code(), StatusCode::kCorruption);  // not a WriteBatch
  EXPECT_EQ(tickets[1], 0u);                                       // refused before a ticket
  ASSERT_TRUE(results[2].ok()) << results[2].status().ToString();
  EXPECT_EQ(results[2].value().moved, 1u);
  EXPECT_FALSE(results[3].ok());  // refused by the shards: takes a ticket, changes nothing
  EXPECT_NE(results[3].status().ToString().find("99999"), std::string::npos)
      << results[3].status().ToString();
  ASSERT_TRUE(results[4].ok()) << results[4].status().ToString();
  ASSERT_TRUE(results[5].ok()) << results[5].status().ToString();
  EXPECT_EQ(tickets[0], before + 1);
  EXPECT_EQ(tickets[2], before + 2);
  EXPECT_EQ(tickets[3], before + 3);
  EXPECT_EQ(tickets[4], before + 4);
  EXPECT_EQ(tickets[5], before + 5);
  Shard::Entity e;
  ASSERT_TRUE(engine_->Get(1000, &e));
  EXPECT_EQ(e.x, 700);
  EXPECT_EQ(e.y, 700);

  engine_->ApplyMany({}, Ack::kMode, &results, &tickets);  // nothing: both emptied
  EXPECT_TRUE(results.empty());
  EXPECT_TRUE(tickets.empty());
}

// Every ticket ApplyMany took reaches the log once, with the batch's bytes,
// or empty for the refused batch (which lets later tickets through).
TEST_P(EngineApiTest, ApplyManyPassesEachTicketToTheLogOnce) {
  class RecordingLog : public NullLog {
   public:
    Status Commit(uint64_t ticket, RecordType, std::span<const uint8_t> record, Ack) override {
      std::lock_guard<std::mutex> lock(mu);
      commits.emplace_back(ticket, std::vector<uint8_t>(record.begin(), record.end()));
      return Status::Ok();
    }
    std::mutex mu;
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> commits;
  } log;
  auto engine = OpenLogged(&log);
  ASSERT_NE(engine, nullptr);
  log.commits.clear();  // the kind's record
  BatchBuilder b;
  b.Upsert(1, "npc", 10, 10);
  b.Upsert(3, "npc", 30, 30);
  const auto ok1 = b.FinishCopy();
  b.Move(424242, 1, 1);
  const auto refused = b.FinishCopy();
  b.Move(3, 31, 31);
  const auto ok2 = b.FinishCopy();
  const std::span<const uint8_t> batches[] = {ok1, refused, ok2};
  std::vector<Result<WriteStats>> results;
  std::vector<uint64_t> tickets;
  engine->ApplyMany(batches, Ack::kQueued, &results, &tickets);
  EXPECT_TRUE(results[0].ok());
  EXPECT_FALSE(results[1].ok());
  EXPECT_TRUE(results[2].ok());
  ASSERT_EQ(log.commits.size(), 3u);
  EXPECT_EQ(log.commits[0], std::make_pair(tickets[0], ok1));
  EXPECT_EQ(log.commits[1], std::make_pair(tickets[1], std::vector<uint8_t>{}));
  EXPECT_EQ(log.commits[2], std::make_pair(tickets[2], ok2));
}

// The log fails at the second batch: it and the one already handed to the
// shards behind it get the log's error (applied in memory, not
// acknowledged); the first is acknowledged. (engine.h, ApplyMany.)
TEST_P(EngineApiTest, ApplyManyWhenTheLogFailsMidway) {
  class FailingLog : public NullLog {
   public:
    Status Commit(uint64_t ticket, RecordType, std::span<const uint8_t>, Ack) override {
      std::lock_guard<std::mutex> lock(mu);
      if (ticket >= fail_from) stopped = true;
      return stopped ? Status::IOError("wal: disk gone") : Status::Ok();
    }
    Status Writable() const override {
      std::lock_guard<std::mutex> lock(mu);
      return stopped ? Status::IOError("wal: disk gone") : Status::Ok();
    }
    mutable std::mutex mu;
    uint64_t fail_from = UINT64_MAX;
    bool stopped = false;
  } log;
  auto engine = OpenLogged(&log);
  ASSERT_NE(engine, nullptr);
  log.fail_from = engine->last_ticket() + 2;  // the second batch's ticket
  BatchBuilder b;
  std::vector<std::vector<uint8_t>> bytes;
  for (uint64_t id = 1; id <= 3; ++id) {
    b.Upsert(id, "npc", double(id), double(id));
    bytes.push_back(b.FinishCopy());
  }
  const std::span<const uint8_t> batches[] = {bytes[0], bytes[1], bytes[2]};
  std::vector<Result<WriteStats>> results;
  std::vector<uint64_t> tickets;
  engine->ApplyMany(batches, Ack::kMode, &results, &tickets);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok());
  for (size_t i = 1; i < 3; ++i) {
    ASSERT_FALSE(results[i].ok());
    EXPECT_EQ(results[i].status().code(), StatusCode::kIOError);
  }
  Shard::Entity e;
  EXPECT_TRUE(engine->Get(3, &e));  // in memory, though not acknowledged
  // Later writes are refused before they are applied.
  b.Upsert(4, "npc", 4, 4);
  const auto after = b.FinishCopy();
  EXPECT_FALSE(engine->Apply(after.data(), after.size()).ok());
  EXPECT_FALSE(engine->Get(4, &e));
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
