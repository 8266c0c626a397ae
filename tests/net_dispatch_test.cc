// Dispatcher: every request type and every error path, against a real Engine,
// without sockets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <thread>

#include "engine/batch_builder.h"
#include "engine/schema_codec.h"
#include "net/auth.h"
#include "net/client.h"
#include "net/daemon_options.h"
#include "net/dispatch.h"
#include "net/frame.h"
#include "net_requests.h"

namespace worlddb::net {
namespace {

using namespace worlddb::net::testing;

class DispatchTest : public ::testing::Test {
 protected:
  void SetUp() override { Open({}); }

  void Open(DispatchOptions o) {
    EngineOptions eo;
    eo.world = {-1000, -1000, 1000, 1000};
    eo.shards = 2;
    engine_ = std::move(Engine::Open(eo).value());
    ASSERT_TRUE(engine_->CreateKind(PlayerKind()).ok());
    dispatcher_ = std::make_unique<Dispatcher>(engine_.get(), std::move(o));
  }

  Reply Call(const std::vector<uint8_t>& request) {
    std::vector<uint8_t> out;
    dispatcher_->Handle(request.data(), request.size(), &session_, &out);
    Reply r(out);
    EXPECT_TRUE(r.valid()) << "the response must pass the verifier";
    return r;
  }

  // Players 1..n at (i, 0), hp = i.
  void AddPlayers(int n) {
    BatchBuilder b;
    for (int i = 1; i <= n; ++i) b.Upsert(i, "player", i, 0, 0, {{"hp", int32_t{i}}});
    Reply r = Call(Apply(1, b.Finish()));
    ASSERT_EQ(r.code(), fb::ErrorCode_Ok) << r.message();
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Dispatcher> dispatcher_;
  Session session_;
};

TEST_F(DispatchTest, PingEchoesTheRequestId) {
  Reply r = Call(Ping(0xfeedbeefcafe));
  EXPECT_EQ(r->request_id(), 0xfeedbeefcafeu);
  EXPECT_EQ(r->body_type(), fb::ResponseBody_Pong);
}

TEST_F(DispatchTest, GarbageIsBadMessage) {
  const std::vector<uint8_t> garbage = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  Reply r = Call(garbage);
  EXPECT_EQ(r.code(), fb::ErrorCode_BadMessage);
  EXPECT_EQ(r->request_id(), 0u);
  EXPECT_NE(r.message().find("not a valid Request"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, EmptyAndTinyPayloadsAreBadMessage) {
  EXPECT_EQ(Call({}).code(), fb::ErrorCode_BadMessage);
  EXPECT_EQ(Call({0, 0, 0}).code(), fb::ErrorCode_BadMessage);
}

TEST_F(DispatchTest, RequestWithoutBodyIsBadMessage) {
  flatbuffers::FlatBufferBuilder b;
  fb::RequestBuilder rb(b);
  rb.add_request_id(9);
  b.Finish(rb.Finish());
  Reply r = Call({b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()});
  EXPECT_EQ(r.code(), fb::ErrorCode_BadMessage);
  EXPECT_EQ(r->request_id(), 9u);
}

TEST_F(DispatchTest, UnknownBodyTypeIsBadMessage) {
  auto req = Ping(3);
  // Rewrite the union type byte: find the request table's body_type field.
  uint32_t table;
  std::memcpy(&table, req.data(), 4);
  int32_t to_vtable;
  std::memcpy(&to_vtable, req.data() + table, 4);
  uint16_t field;
  std::memcpy(&field, req.data() + table - to_vtable + fb::Request::VT_BODY_TYPE, 2);
  ASSERT_NE(field, 0);
  req[table + field] = 200;
  Reply r = Call(req);
  EXPECT_EQ(r.code(), fb::ErrorCode_BadMessage);
}

// Regression (found by net_request_fuzzer): a union type set without its
// table passes the FlatBuffers verifier; the dispatcher read through null.
TEST_F(DispatchTest, ShapeTypeWithoutItsTableIsInvalidArgument) {
  for (fb::Shape type : {fb::Shape_Radius, fb::Shape_Rectangle, fb::Shape_Nearest}) {
    auto req = Query(5, {}, [&](flatbuffers::FlatBufferBuilder&) {
      return std::pair{type, flatbuffers::Offset<void>()};
    });
    Reply r = Call(req);
    EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument) << fb::EnumNameShape(type);
    EXPECT_NE(r.message().find("shape table is missing"), std::string::npos) << r.message();
  }
}

TEST_F(DispatchTest, MisalignedPayloadIsCopiedAndAnswered) {
  auto req = Radius(5, 0, 0, 10);
  std::vector<uint8_t> shifted(req.size() + 1);
  std::memcpy(shifted.data() + 1, req.data(), req.size());
  std::vector<uint8_t> out;
  dispatcher_->Handle(shifted.data() + 1, req.size(), &session_, &out);
  Reply r(out);
  ASSERT_TRUE(r.valid());
  EXPECT_EQ(r->body_type(), fb::ResponseBody_QueryReply);
}

TEST_F(DispatchTest, HelloReportsVersionRoleAndLimits) {
  Reply r = Call(Hello(1));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_HelloReply);
  EXPECT_EQ(r->body_as_HelloReply()->protocol_version(), kProtocolVersion);
  EXPECT_EQ(r->body_as_HelloReply()->role()->str(), "admin");
  EXPECT_EQ(r->body_as_HelloReply()->max_frame_bytes(), kDefaultMaxFrameBytes);
  EXPECT_EQ(r->body_as_HelloReply()->max_result_rows(), kDefaultMaxResultRows);
}

TEST_F(DispatchTest, HelloWithAnotherVersionIsUnsupported) {
  Reply r = Call(Hello(1, "", 2));
  EXPECT_EQ(r.code(), fb::ErrorCode_UnsupportedVersion);
  EXPECT_NE(r.message().find("version 1"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, ApplyBatchReportsCounts) {
  BatchBuilder b;
  b.Upsert(1, "player", 1, 2).Upsert(2, "player", 3, 4);
  Reply r = Call(Apply(7, b.Finish()));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_ApplyReply) << r.message();
  EXPECT_EQ(r->request_id(), 7u);
  EXPECT_EQ(r->body_as_ApplyReply()->created(), 2u);
  EXPECT_GT(r->body_as_ApplyReply()->ticket(), 0u);
  EXPECT_EQ(engine_->size(), 2u);
}

TEST_F(DispatchTest, ApplyBatchIsAllOrNothing) {
  AddPlayers(3);
  BatchBuilder b;
  b.Upsert(10, "player", 1, 1).Move(999, 1, 1);  // 999 does not exist
  Reply r = Call(Apply(2, b.Finish()));
  EXPECT_EQ(r.code(), fb::ErrorCode_NotFound) << r.message();
  EXPECT_NE(r.message().find("999"), std::string::npos) << r.message();
  EXPECT_EQ(engine_->size(), 3u);
}

TEST_F(DispatchTest, ApplyBatchWithUnknownKindNamesIt) {
  BatchBuilder b;
  b.Upsert(1, "dragon", 1, 1);
  Reply r = Call(Apply(2, b.Finish()));
  EXPECT_NE(r.code(), fb::ErrorCode_Ok);
  EXPECT_NE(r.message().find("dragon"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, ApplyBatchWithGarbageNestedBytesIsRefused) {
  Reply r = Call(Apply(2, std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(r.code(), fb::ErrorCode_BadMessage) << r.message();
  EXPECT_EQ(engine_->size(), 0u);
}

TEST_F(DispatchTest, ApplyBatchWithoutBatchIsInvalid) {
  auto req = MakeRequest(3, [](flatbuffers::FlatBufferBuilder& b) {
    return std::pair{fb::RequestBody_ApplyBatch, fb::CreateApplyBatch(b).Union()};
  });
  EXPECT_EQ(Call(req).code(), fb::ErrorCode_InvalidArgument);
}

TEST_F(DispatchTest, ApplyBatchWithUnknownAckIsInvalid) {
  BatchBuilder b;
  b.Upsert(1, "player", 1, 1);
  Reply r = Call(Apply(2, b.Finish(), 3));
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("ack 3"), std::string::npos) << r.message();
  EXPECT_EQ(engine_->size(), 0u);
}

// What RunWrites asks of the log: every batch committed as kQueued, then one
// WaitAll for the most any applied batch asked for; WaitAll fails on demand.
class ScriptedLog : public CommitLog {
 public:
  Status Commit(uint64_t, RecordType, std::span<const uint8_t> record, Ack ack) override {
    std::lock_guard<std::mutex> l(mu);
    if (!record.empty()) commits.push_back(ack);
    return Status::Ok();
  }
  Result<uint64_t> Mark(uint64_t) override { return uint64_t{0}; }
  Status WaitDurable(uint64_t) override { return Status::Ok(); }
  Status WaitAll(Ack ack) override {
    std::lock_guard<std::mutex> l(mu);
    waits.push_back(ack);
    return wait_error;
  }
  Status Writable() const override { return Status::Ok(); }

  std::mutex mu;
  std::vector<Ack> commits, waits;
  Status wait_error;
};

struct WritesRun {
  std::vector<Reply> replies;
  size_t players = 0;
};

// Runs `requests` through one RunWrites against an engine logging to `log`.
WritesRun RunWrites(ScriptedLog* log, const std::vector<std::vector<uint8_t>>& requests) {
  EngineOptions eo;
  eo.world = {-1000, -1000, 1000, 1000};
  auto engine = std::move(Engine::Open(eo).value());
  EXPECT_TRUE(engine->CreateKind(PlayerKind()).ok());
  engine->SetCommitLog(log);
  Dispatcher d(engine.get(), {});
  std::vector<std::span<const uint8_t>> spans(requests.begin(), requests.end());
  flatbuffers::FlatBufferBuilder fbb;
  WritesRun run;
  d.RunWrites(spans, &fbb, [&](size_t i) {
    EXPECT_EQ(i, run.replies.size());
    run.replies.emplace_back(fbb.GetBufferPointer(), fbb.GetSize());
  });
  run.players = engine->size();
  return run;
}

std::vector<uint8_t> OnePlayer(uint64_t request_id, uint64_t id, uint8_t ack) {
  BatchBuilder b;
  b.Upsert(id, "player", 1, 1);
  return Apply(request_id, b.Finish(), ack);
}

TEST(DispatchRunWrites, EachBatchIsQueuedAndOneWaitAsksForTheMostAnyAskedFor) {
  ScriptedLog log;
  BatchBuilder refused;
  refused.Move(999, 1, 1);  // no such entity
  auto run = RunWrites(&log, {OnePlayer(1, 1, 2), OnePlayer(2, 2, 1), Apply(3, refused.Finish(), 0),
                              OnePlayer(4, 3, 2)});
  ASSERT_EQ(run.replies.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(run.replies[i].valid());
    EXPECT_EQ(run.replies[i]->request_id(), i + 1);
    EXPECT_EQ(run.replies[i].code(), i == 2 ? fb::ErrorCode_NotFound : fb::ErrorCode_Ok)
        << run.replies[i].message();
  }
  EXPECT_EQ(run.players, 3u);
  EXPECT_EQ(log.commits, std::vector<Ack>(3, Ack::kQueued));
  // The refused batch asked for the mode, but nothing of it is logged.
  EXPECT_EQ(log.waits, std::vector<Ack>{Ack::kWritten});
}

TEST(DispatchRunWrites, BatchesThatAskOnlyForQueuedDoNotWait) {
  ScriptedLog log;
  auto run = RunWrites(&log, {OnePlayer(1, 1, 2), OnePlayer(2, 2, 2)});
  ASSERT_EQ(run.replies.size(), 2u);
  EXPECT_EQ(run.replies[1].code(), fb::ErrorCode_Ok);
  EXPECT_EQ(log.commits.size(), 2u);
  EXPECT_TRUE(log.waits.empty());
}

TEST(DispatchRunWrites, AFailedWaitFailsTheBatchesThatNeededIt) {
  ScriptedLog log;
  log.wait_error = Status::IOError("wal-1.log: fdatasync failed: Input/output error");
  auto run = RunWrites(&log, {OnePlayer(1, 1, 0), OnePlayer(2, 2, 2), OnePlayer(3, 3, 1)});
  ASSERT_EQ(run.replies.size(), 3u);
  EXPECT_EQ(log.waits, std::vector<Ack>{Ack::kMode});
  EXPECT_NE(run.replies[0].code(), fb::ErrorCode_Ok);
  EXPECT_NE(run.replies[0].message().find("fdatasync failed"), std::string::npos)
      << run.replies[0].message();
  EXPECT_EQ(run.replies[1].code(), fb::ErrorCode_Ok);  // asked only to be queued
  EXPECT_NE(run.replies[2].code(), fb::ErrorCode_Ok);
}

// Each reply carries its own batch's ticket, also while other writer threads
// take tickets: it used to be read back as the engine's last ticket, which
// another thread's batch could have taken in between (two replies with one
// ticket, and one batch's ticket in none).
TEST(DispatchRunWrites, ConcurrentWritersEachGetTheirOwnBatchesTicket) {
  EngineOptions eo;
  eo.world = {-1000, -1000, 1000, 1000};
  auto engine = std::move(Engine::Open(eo).value());
  ASSERT_TRUE(engine->CreateKind(PlayerKind()).ok());
  const Dispatcher d(engine.get(), {});
  constexpr uint64_t kPerThread = 400;
  std::vector<uint64_t> tickets[2];
  auto writer = [&](int t) {
    flatbuffers::FlatBufferBuilder fbb;
    for (uint64_t i = 0; i < kPerThread; ++i) {
      const std::vector<uint8_t> req = OnePlayer(i + 1, 1 + t * kPerThread + i, 2);
      const std::span<const uint8_t> one[] = {req};
      d.RunWrites(one, &fbb, [&](size_t) {
        Reply r(fbb.GetBufferPointer(), fbb.GetSize());
        ASSERT_EQ(r.code(), fb::ErrorCode_Ok) << r.message();
        tickets[t].push_back(r->body_as_ApplyReply()->ticket());
      });
    }
  };
  std::thread other(writer, 1);
  writer(0);
  other.join();
  std::vector<uint64_t> all = tickets[0];
  all.insert(all.end(), tickets[1].begin(), tickets[1].end());
  std::sort(all.begin(), all.end());
  // Tickets 1 (the kind) .. 1 + 2 * kPerThread: every batch's exactly once.
  std::vector<uint64_t> expected(2 * kPerThread);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = i + 2;
  EXPECT_EQ(all, expected);
  // And in each thread's order of sending.
  EXPECT_TRUE(std::is_sorted(tickets[0].begin(), tickets[0].end()));
  EXPECT_TRUE(std::is_sorted(tickets[1].begin(), tickets[1].end()));
}

TEST_F(DispatchTest, ApplyBatchWithQueuedAckWorksWithoutALog) {
  BatchBuilder b;
  b.Upsert(1, "player", 1, 1);
  EXPECT_EQ(Call(Apply(2, b.Finish(), 2)).code(), fb::ErrorCode_Ok);
}

TEST_F(DispatchTest, RadiusReturnsColumnarRowsWithProjection) {
  AddPlayers(10);
  QueryOpts o;
  o.kind = "player";
  o.columns = {"hp", "name"};
  o.order_by_distance = true;
  Reply r = Call(Radius(4, 0, 0, 3.5, o));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  const fb::QueryReply* q = r->body_as_QueryReply();
  ASSERT_EQ(q->ids()->size(), 3u);
  EXPECT_EQ(q->ids()->Get(0), 1u);
  EXPECT_EQ(q->ids()->Get(2), 3u);
  EXPECT_EQ(q->x()->Get(1), 2.0);
  EXPECT_EQ(q->distance()->Get(2), 3.0);
  ASSERT_EQ(q->columns()->size(), 2u);
  EXPECT_EQ(q->columns()->Get(0)->name()->str(), "hp");
  EXPECT_EQ(q->columns()->Get(0)->i32()->Get(2), 3);
  EXPECT_EQ(q->columns()->Get(1)->s()->Get(0)->str(), "anon");
  EXPECT_EQ(q->count(), 3u);
  EXPECT_FALSE(q->truncated());
}

TEST_F(DispatchTest, RadiusWithPredicate) {
  AddPlayers(10);
  QueryOpts o;
  o.kind = "player";
  o.where_column = "hp";
  o.where_op = fb::CompareOp_Gt;
  o.where_value = int32_t{7};
  Reply r = Call(Radius(4, 0, 0, 100, o));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  EXPECT_EQ(r->body_as_QueryReply()->ids()->size(), 3u);
}

TEST_F(DispatchTest, PredicateOfTheWrongTypeIsRefused) {
  QueryOpts o;
  o.kind = "player";
  o.where_column = "hp";
  o.where_value = std::string("x");
  Reply r = Call(Radius(4, 0, 0, 100, o));
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("hp"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, UnknownKindIsNamed) {
  QueryOpts o;
  o.kind = "dragon";
  Reply r = Call(Radius(4, 0, 0, 10, o));
  EXPECT_EQ(r.code(), fb::ErrorCode_NotFound);
  EXPECT_NE(r.message().find("dragon"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, UnknownColumnIsNamed) {
  QueryOpts o;
  o.kind = "player";
  o.columns = {"mana"};
  Reply r = Call(Radius(4, 0, 0, 10, o));
  EXPECT_EQ(r.code(), fb::ErrorCode_NotFound);
  EXPECT_NE(r.message().find("mana"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, NegativeRadiusIsInvalid) {
  EXPECT_EQ(Call(Radius(4, 0, 0, -1)).code(), fb::ErrorCode_InvalidArgument);
}

TEST_F(DispatchTest, QueryWithoutShapeIsInvalid) {
  auto req = MakeRequest(3, [](flatbuffers::FlatBufferBuilder& b) {
    return std::pair{fb::RequestBody_QueryRequest, fb::CreateQueryRequest(b).Union()};
  });
  Reply r = Call(req);
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("shape"), std::string::npos);
}

TEST_F(DispatchTest, RectangleHasNoDistances) {
  AddPlayers(10);
  Reply r = Call(Rectangle(4, 2, -1, 4, 1));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  EXPECT_EQ(r->body_as_QueryReply()->ids()->size(), 3u);
  EXPECT_EQ(r->body_as_QueryReply()->distance(), nullptr);
}

TEST_F(DispatchTest, NearestIsOrderedByDistance) {
  AddPlayers(10);
  Reply r = Call(Nearest(4, 5.1, 0, 3));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  const auto* ids = r->body_as_QueryReply()->ids();
  ASSERT_EQ(ids->size(), 3u);
  EXPECT_EQ(ids->Get(0), 5u);
  EXPECT_EQ(ids->Get(1), 6u);
  EXPECT_EQ(ids->Get(2), 4u);
}

TEST_F(DispatchTest, CountOnlyReturnsTheCount) {
  AddPlayers(10);
  QueryOpts o;
  o.count_only = true;
  Reply r = Call(Radius(4, 0, 0, 5.5, o));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  EXPECT_EQ(r->body_as_QueryReply()->count(), 5u);
  EXPECT_EQ(r->body_as_QueryReply()->ids()->size(), 0u);
}

// ---- Query batches ----

// The batch's per-query answers, decoded (a failed decode fails the test).
std::vector<QueryResult> BatchAnswers(const Reply& r) {
  std::vector<QueryResult> out;
  const fb::QueryBatchReply* b = r->body_as_QueryBatchReply();
  EXPECT_NE(b, nullptr) << r.message();
  if (b) {
    EXPECT_TRUE(DecodeQueryBatchReply(*b, &out).ok());
  }
  return out;
}

QueryResult SingleAnswer(const Reply& r) {
  QueryResult out;
  const fb::QueryReply* q = r->body_as_QueryReply();
  EXPECT_NE(q, nullptr) << r.message();
  if (q) {
    EXPECT_TRUE(DecodeQueryReply(*q, &out).ok());
  }
  return out;
}

void ExpectSameAnswer(const QueryResult& a, const QueryResult& b, const std::string& what) {
  EXPECT_EQ(a.count, b.count) << what;
  EXPECT_EQ(a.truncated, b.truncated) << what;
  EXPECT_EQ(a.ids, b.ids) << what;
  EXPECT_EQ(a.kinds, b.kinds) << what;
  EXPECT_EQ(a.x, b.x) << what;
  EXPECT_EQ(a.y, b.y) << what;
  EXPECT_EQ(a.z, b.z) << what;
  EXPECT_EQ(a.distance, b.distance) << what;
  ASSERT_EQ(a.columns.size(), b.columns.size()) << what;
  for (size_t c = 0; c < a.columns.size(); ++c) {
    EXPECT_EQ(a.columns[c].name, b.columns[c].name) << what;
    EXPECT_EQ(a.columns[c].type, b.columns[c].type) << what;
    EXPECT_TRUE(a.columns[c].data == b.columns[c].data) << what << ", column " << c;
  }
}

// Randomized differential test: every query of a batch must get exactly the
// answer the same query gets alone, for each shape, with projections,
// predicates, limits and counts.
TEST_F(DispatchTest, BatchAnswersEqualTheSameQueriesSentAlone) {
  std::mt19937_64 rng(20261123);
  std::uniform_real_distribution<double> pos(-150, 150);
  BatchBuilder w;
  for (int i = 1; i <= 2000; ++i) {
    w.Upsert(i, "player", pos(rng), pos(rng), i % 7,
             {{"hp", int32_t(i % 101)}, {"name", "p" + std::to_string(i)}});
  }
  ASSERT_EQ(Call(Apply(1, w.Finish())).code(), fb::ErrorCode_Ok);
  std::vector<double> xs, ys;
  for (int i = 0; i < 60; ++i) {
    xs.push_back(pos(rng) * 1.2);  // some centres outside every entity
    ys.push_back(pos(rng) * 1.2);
  }
  struct Case {
    std::string name;
    QueryOpts o;
    std::function<std::vector<uint8_t>(double, double, const QueryOpts&)> single;
    std::function<std::vector<uint8_t>(const QueryOpts&)> batch;
  };
  QueryOpts proj;
  proj.kind = "player";
  proj.columns = {"hp", "name"};
  QueryOpts ordered = proj;
  ordered.order_by_distance = true;
  QueryOpts filtered;
  filtered.kind = "player";
  filtered.where_column = "hp";
  filtered.where_op = fb::CompareOp_Lt;
  filtered.where_value = int32_t{50};
  filtered.columns = {"name"};
  QueryOpts limited;
  limited.limit = 3;
  QueryOpts counted;
  counted.count_only = true;
  auto radius = [&](double r) {
    return Case{"radius " + std::to_string(r),
                {},
                [r](double x, double y, const QueryOpts& o) { return Radius(2, x, y, r, o); },
                [&, r](const QueryOpts& o) {
                  return Batch(3, o, RadiusShape(r, o.order_by_distance), xs, ys);
                }};
  };
  std::vector<Case> cases;
  for (const QueryOpts& o : {proj, ordered, filtered, limited, counted, QueryOpts{}}) {
    Case c = radius(25);
    c.o = o;
    cases.push_back(c);
    cases.push_back({"rectangle 40x20", o,
                     [](double x, double y, const QueryOpts& q) {
                       return Rectangle(2, x - 20, y - 10, x + 20, y + 10, q);
                     },
                     [&](const QueryOpts& q) {
                       // The template's position is ignored, its size is kept.
                       return Batch(3, q, RectangleShape(500, 500, 540, 520), xs, ys);
                     }});
    cases.push_back({"nearest 7", o,
                     [](double x, double y, const QueryOpts& q) { return Nearest(2, x, y, 7, q); },
                     [&](const QueryOpts& q) { return Batch(3, q, NearestShape(7), xs, ys); }});
  }
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    Reply br = Call(c.batch(c.o));
    ASSERT_EQ(br->body_type(), fb::ResponseBody_QueryBatchReply) << c.name << ": " << br.message();
    EXPECT_EQ(br->request_id(), 3u);
    const std::vector<QueryResult> got = BatchAnswers(br);
    ASSERT_EQ(got.size(), xs.size()) << c.name;
    uint64_t rows = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const QueryResult want = SingleAnswer(Call(c.single(xs[i], ys[i], c.o)));
      ExpectSameAnswer(
          got[i], want,
          "case " + std::to_string(ci) + " (" + c.name + "), query " + std::to_string(i));
      rows += want.rows();
    }
    EXPECT_EQ(br->body_as_QueryBatchReply()->result()->count(), rows) << c.name;
    if (!c.o.count_only) {
      EXPECT_GT(rows, 0u) << c.name << ": the test must see rows";
    }
  }
}

TEST_F(DispatchTest, EmptyBatchGetsAnEmptyReply) {
  Reply r = Call(Batch(5, {}, RadiusShape(10), {}, {}));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryBatchReply) << r.message();
  EXPECT_EQ(r->request_id(), 5u);
  EXPECT_TRUE(BatchAnswers(r).empty());
}

TEST_F(DispatchTest, BatchWithoutATemplateIsInvalid) {
  Reply r = Call(Batch(5, {}, RadiusShape(10), {1}, {1}, /*with_template=*/false));
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("template"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, BatchTemplateWithoutAShapeIsInvalid) {
  auto no_shape = [](flatbuffers::FlatBufferBuilder&) {
    return std::pair{fb::Shape_NONE, flatbuffers::Offset<void>()};
  };
  Reply r = Call(Batch(5, {}, no_shape, {1}, {1}));
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("shape"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, BatchCentresOfDifferentLengthsAreInvalid) {
  Reply r = Call(Batch(5, {}, RadiusShape(10), {1, 2, 3}, {1, 2}));
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("x has 3 centres, y has 2"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, BatchOverTheQueryLimitIsInvalid) {
  std::vector<double> xs(kMaxBatchQueries + 1, 0.0);
  Reply r = Call(Batch(5, {}, RadiusShape(10), xs, xs));
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("exceeds the limit of " + std::to_string(kMaxBatchQueries)),
            std::string::npos)
      << r.message();
  xs.pop_back();
  EXPECT_EQ(Call(Batch(6, {}, RadiusShape(10), xs, xs)).code(), fb::ErrorCode_Ok);
}

TEST_F(DispatchTest, BatchWithANonFiniteCentreIsInvalidAndNamesIt) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    Reply r = Call(Batch(5, {}, RadiusShape(10), {0, 1, 2}, {0, 1, bad}));
    EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
    EXPECT_NE(r.message().find("centre 2 is not finite"), std::string::npos) << r.message();
  }
}

TEST_F(DispatchTest, BatchWithAnUnknownKindIsNotFoundAndNamesIt) {
  QueryOpts o;
  o.kind = "dragon";
  Reply r = Call(Batch(5, o, RadiusShape(10), {0, 1}, {0, 1}));
  EXPECT_EQ(r.code(), fb::ErrorCode_NotFound);
  EXPECT_NE(r.message().find("query 0 of the batch"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("dragon"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, BatchWithANegativeRadiusIsInvalid) {
  EXPECT_EQ(Call(Batch(5, {}, RadiusShape(-1), {0}, {0})).code(), fb::ErrorCode_InvalidArgument);
}

TEST_F(DispatchTest, RectangleBatchMovedOutOfTheDoublesIsInvalidPerQuery) {
  // A finite template 1e308 wide, moved to x = 1e308: its max corner is inf.
  Reply r = Call(Batch(5, {}, RectangleShape(-5e307, 0, 5e307, 1), {0, 1.7e308}, {0, 0}));
  EXPECT_EQ(r.code(), fb::ErrorCode_InvalidArgument);
  EXPECT_NE(r.message().find("query 1 of the batch"), std::string::npos) << r.message();
}

TEST_F(DispatchTest, RectangleBatchKeepsTheTemplateSizeAroundEachCentre) {
  AddPlayers(10);  // at (1, 0) .. (10, 0)
  Reply r = Call(Batch(5, {}, RectangleShape(100, 100, 104, 102), {3, 9.5}, {0, 0}));
  const auto got = BatchAnswers(r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rows(), 5u);  // x in [1, 5]
  EXPECT_EQ(got[1].rows(), 3u);  // x in [7.5, 11.5]
  EXPECT_TRUE(got[0].distance.empty());
}

// A hand-made Request (id `id`) whose body of `type` is a table with one
// vector of 8-byte scalars, field `field` (0 or 1), holding `value`; the
// vector's data starts at an offset that is 4 but not 8 modulo 8, which the
// 2.0.8 verifier lets through.
std::vector<uint8_t> MisalignedVectorRequest(fb::RequestBody type, uint64_t id, int field,
                                             uint64_t value) {
  std::vector<uint8_t> b(68, 0);
  auto u16 = [&](size_t at, uint16_t v) { std::memcpy(&b[at], &v, 2); };
  auto u32 = [&](size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); };
  auto u64 = [&](size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); };
  u32(0, 16);  // root: Request table at 16
  // Request vtable at 4: size 10, table 20, request_id @8, body_type @4, body @16.
  u16(4, 10), u16(6, 20), u16(8, 8), u16(10, 4), u16(12, 16);
  u32(16, 12);  // soffset to the vtable (16 - 4)
  b[20] = static_cast<uint8_t>(type);
  u64(24, id);                                          // request_id
  u32(32, 12);                                          // body -> 44
  u16(36, static_cast<uint16_t>(4 + 2 * (field + 1)));  // body vtable at 36
  u16(38, 8);                                           // table size
  u16(40 + 2 * static_cast<size_t>(field), 4);          // the vector @4
  u32(44, 8);                                           // soffset (44 - 36)
  u32(48, 8);                                           // vector -> 56
  u32(56, 1);                                           // one value, data at 60 (4 mod 8)
  u64(60, value);
  return b;
}

// QueryBatch.x (field 1) misaligned: reading it as doubles in place would be
// a misaligned access.
std::vector<uint8_t> MisalignedBatchCentres() {
  return MisalignedVectorRequest(fb::RequestBody_QueryBatch, 78, 1, 0x3ff0000000000000ULL);  // 1.0
}

TEST_F(DispatchTest, MisalignedBatchCentresAreRefusedNotRead) {
  Reply r = Call(MisalignedBatchCentres());
  EXPECT_EQ(r.code(), fb::ErrorCode_BadMessage) << r.message();
  EXPECT_NE(r.message().find("not 8-byte aligned"), std::string::npos) << r.message();
  EXPECT_EQ(r->request_id(), 78u);
}

class DispatchLimitTest : public DispatchTest {
 protected:
  void SetUp() override {
    DispatchOptions o;
    o.max_result_rows = 5;
    Open(std::move(o));
    AddPlayers(10);
  }
};

TEST_F(DispatchLimitTest, ResultOverTheRowCapIsTooManyRows) {
  Reply r = Call(Radius(4, 0, 0, 100));
  EXPECT_EQ(r.code(), fb::ErrorCode_TooManyRows);
  EXPECT_NE(r.message().find("more than 5 rows"), std::string::npos) << r.message();
}

TEST_F(DispatchLimitTest, ResultAtTheRowCapIsAnswered) {
  Reply r = Call(Radius(4, 0, 0, 5));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  EXPECT_EQ(r->body_as_QueryReply()->ids()->size(), 5u);
}

TEST_F(DispatchLimitTest, ARequestedLimitTruncatesInstead) {
  QueryOpts o;
  o.limit = 4;
  Reply r = Call(Radius(4, 0, 0, 100, o));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  EXPECT_EQ(r->body_as_QueryReply()->ids()->size(), 4u);
  EXPECT_TRUE(r->body_as_QueryReply()->truncated());
}

TEST_F(DispatchLimitTest, ALimitOverTheCapStillErrs) {
  QueryOpts o;
  o.limit = 6;
  EXPECT_EQ(Call(Radius(4, 0, 0, 100, o)).code(), fb::ErrorCode_TooManyRows);
}

TEST_F(DispatchLimitTest, CountOnlyIgnoresTheCap) {
  QueryOpts o;
  o.count_only = true;
  Reply r = Call(Rectangle(4, -100, -100, 100, 100, o));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  EXPECT_EQ(r->body_as_QueryReply()->count(), 10u);
}

TEST_F(DispatchLimitTest, NearestKOverTheCapIsTooManyRows) {
  EXPECT_EQ(Call(Nearest(4, 0, 0, 6)).code(), fb::ErrorCode_TooManyRows);
  EXPECT_EQ(Call(Nearest(4, 0, 0, 4000000000u)).code(), fb::ErrorCode_TooManyRows);
  QueryOpts o;
  o.limit = 5;
  EXPECT_EQ(Call(Nearest(4, 0, 0, 6, o)).code(), fb::ErrorCode_Ok);
}

TEST_F(DispatchLimitTest, BatchRowsOverTheCapTogetherAreTooManyRows) {
  // Players at (1, 0) .. (10, 0); the cap is 5 rows per reply.
  Reply r = Call(Batch(4, {}, RadiusShape(1), {2, 8}, {0, 0}));  // 3 + 3 rows
  EXPECT_EQ(r.code(), fb::ErrorCode_TooManyRows);
  EXPECT_NE(r.message().find("the batch's rows together"), std::string::npos) << r.message();
  Reply ok = Call(Batch(4, {}, RadiusShape(0.5), {2, 8}, {0, 0}));  // 1 + 1 rows
  ASSERT_EQ(ok->body_type(), fb::ResponseBody_QueryBatchReply) << ok.message();
}

TEST_F(DispatchLimitTest, OneBatchQueryOverTheCapIsTooManyRows) {
  EXPECT_EQ(Call(Batch(4, {}, RadiusShape(100), {0}, {0})).code(), fb::ErrorCode_TooManyRows);
}

TEST_F(DispatchLimitTest, NearestBatchOverTheCapIsRefusedBeforeItRuns) {
  Reply r = Call(Batch(4, {}, NearestShape(2), {0, 1, 2}, {0, 0, 0}));  // 6 rows
  EXPECT_EQ(r.code(), fb::ErrorCode_TooManyRows);
  QueryOpts counted;
  counted.count_only = true;
  EXPECT_EQ(Call(Batch(4, counted, NearestShape(2), {0, 1, 2}, {0, 0, 0})).code(),
            fb::ErrorCode_Ok);
}

TEST_F(DispatchLimitTest, GetByIdsOverTheCapIsTooManyRows) {
  EXPECT_EQ(Call(Get(4, {1, 2, 3, 4, 5, 6})).code(), fb::ErrorCode_TooManyRows);
}

// Builders do not align an empty vector's (unread) data: an empty ids list
// must be answered, not refused as misaligned.
TEST_F(DispatchTest, GetByIdsWithNoIdsIsAnEmptyAnswer) {
  for (const std::string& kind : {std::string(), std::string("player")}) {
    Reply r = Call(Get(4, {}, kind));
    ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << kind << ": " << r.message();
    EXPECT_EQ(r->body_as_QueryReply()->ids()->size(), 0u);
  }
}

TEST_F(DispatchTest, GetByIdsListsMissingIds) {
  AddPlayers(3);
  Reply r = Call(Get(4, {3, 42, 1}, "player", {"hp"}));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_QueryReply) << r.message();
  const fb::QueryReply* q = r->body_as_QueryReply();
  ASSERT_EQ(q->ids()->size(), 2u);
  EXPECT_EQ(q->ids()->Get(0), 3u);
  EXPECT_EQ(q->ids()->Get(1), 1u);
  EXPECT_EQ(q->columns()->Get(0)->i32()->Get(0), 3);
  ASSERT_EQ(q->missing()->size(), 1u);
  EXPECT_EQ(q->missing()->Get(0), 42u);
}

TEST_F(DispatchTest, GetByIdsWithAColumnButNoKindIsRefused) {
  EXPECT_NE(Call(Get(4, {1}, "", {"hp"})).code(), fb::ErrorCode_Ok);
}

std::vector<uint8_t> MisalignedGetByIds() {
  return MisalignedVectorRequest(fb::RequestBody_GetByIds, 77, 0, 1);  // ids = {1}
}

TEST_F(DispatchTest, MisalignedIdsVectorIsRefusedNotRead) {
  AddPlayers(1);
  Reply r = Call(MisalignedGetByIds());
  EXPECT_EQ(r.code(), fb::ErrorCode_BadMessage) << r.message();
  EXPECT_NE(r.message().find("not 8-byte aligned"), std::string::npos) << r.message();
  EXPECT_EQ(r->request_id(), 77u);
}

TEST_F(DispatchTest, DensityCountsPerCell) {
  AddPlayers(10);
  Reply r = Call(Density(4, 0, -1, 10, 1, 2, 1));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_DensityReply) << r.message();
  const fb::DensityReply* d = r->body_as_DensityReply();
  EXPECT_EQ(d->nx(), 2u);
  ASSERT_EQ(d->counts()->size(), 2u);
  EXPECT_EQ(d->counts()->Get(0), 4u);  // x = 1..4
  EXPECT_EQ(d->counts()->Get(1), 6u);  // x = 5..10
  EXPECT_EQ(d->total(), 10u);
}

// Found by net_request_fuzzer: finite corners whose width (or width times the
// cell count) overflows made a cell index out of inf (UBSan: undefined).
TEST_F(DispatchTest, DensityRectangleWhoseWidthOverflowsIsInvalid) {
  EXPECT_EQ(Call(Density(4, -1.5e308, -1, 1.5e308, 1, 2, 1)).code(), fb::ErrorCode_InvalidArgument);
  EXPECT_EQ(Call(Density(4, -1, -1.5e308, 1, 1.5e308, 1, 2)).code(), fb::ErrorCode_InvalidArgument);
  // Width finite, width x nx not.
  EXPECT_EQ(Call(Density(4, -5e307, -1, 5e307, 1, 4, 1)).code(), fb::ErrorCode_InvalidArgument);
  // Wide but representable: answered.
  EXPECT_EQ(Call(Density(4, -1e300, -1e300, 1e300, 1e300, 4, 4)).code(), fb::ErrorCode_Ok);
}

TEST_F(DispatchTest, DensityWithZeroCellsIsInvalid) {
  EXPECT_EQ(Call(Density(4, 0, 0, 1, 1, 0, 1)).code(), fb::ErrorCode_InvalidArgument);
}

TEST_F(DispatchTest, CreateKindThenListKinds) {
  KindDef tree{"tree", {{"age", ColumnType::kF64, 1.5, 0}}};
  Reply r = Call(SchemaChange(4, EncodeCreateKind(tree)));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_SchemaReply) << r.message();
  EXPECT_EQ(r->body_as_SchemaReply()->schema_version(), engine_->schema()->version());
  Reply k = Call(ListKinds(5));
  ASSERT_EQ(k->body_type(), fb::ResponseBody_KindsReply);
  const auto* kinds = k->body_as_KindsReply()->kinds();
  ASSERT_EQ(kinds->size(), 2u);
  EXPECT_EQ(kinds->Get(1)->name()->str(), "tree");
  EXPECT_EQ(kinds->Get(1)->columns()->Get(0)->name()->str(), "age");
  EXPECT_EQ(kinds->Get(1)->columns()->Get(0)->default_value()->f(), 1.5);
  EXPECT_EQ(kinds->Get(0)->columns()->Get(1)->max_length(), 32u);
}

TEST_F(DispatchTest, CreateExistingKindIsAlreadyExists) {
  Reply r = Call(SchemaChange(4, EncodeCreateKind(PlayerKind())));
  EXPECT_EQ(r.code(), fb::ErrorCode_AlreadyExists) << r.message();
}

TEST_F(DispatchTest, AlterKindAddsAndDropsColumns) {
  Reply r = Call(SchemaChange(
      4, EncodeAlterKind("player", {{"mana", ColumnType::kI64, int64_t{5}, 0}}, {"name"})));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_SchemaReply) << r.message();
  const KindDef& k = engine_->schema()->kind(0);
  ASSERT_EQ(k.columns.size(), 2u);
  EXPECT_EQ(k.columns[1].name, "mana");
}

TEST_F(DispatchTest, GarbageSchemaChangeIsRefused) {
  EXPECT_NE(Call(SchemaChange(4, std::vector<uint8_t>{9, 9, 9, 9, 9, 9, 9, 9})).code(),
            fb::ErrorCode_Ok);
}

TEST_F(DispatchTest, StatsCountEntitiesPerKind) {
  AddPlayers(4);
  Reply r = Call(Stats(4));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_StatsReply);
  const fb::StatsReply* s = r->body_as_StatsReply();
  EXPECT_EQ(s->entities(), 4u);
  EXPECT_EQ(s->per_kind()->Get(0)->kind()->str(), "player");
  EXPECT_EQ(s->per_kind()->Get(0)->entities(), 4u);
  EXPECT_EQ(s->batches_applied(), 1u);
  EXPECT_TRUE(s->writable());
  EXPECT_GT(s->memory_bytes(), 0u);
}

TEST_F(DispatchTest, SnapshotWithoutAHookIsNotYetAvailable) {
  EXPECT_EQ(Call(Snapshot(4)).code(), fb::ErrorCode_NotYetAvailable);
}

class DispatchHookTest : public DispatchTest {
 protected:
  void SetUp() override {
    DispatchOptions o;
    o.snapshot = [] { return Result<SnapshotResult>(SnapshotResult{42, 7, 1000, "/d/snap-42"}); };
    o.writable = [this] { return writable_; };
    o.connections = [] { return uint64_t{3}; };
    Open(std::move(o));
  }
  Status writable_;
};

TEST_F(DispatchHookTest, SnapshotCallsTheHook) {
  Reply r = Call(Snapshot(4));
  ASSERT_EQ(r->body_type(), fb::ResponseBody_SnapshotReply) << r.message();
  EXPECT_EQ(r->body_as_SnapshotReply()->lsn(), 42u);
  EXPECT_EQ(r->body_as_SnapshotReply()->path()->str(), "/d/snap-42");
}

TEST_F(DispatchHookTest, NotWritableRefusesWritesAndShowsInStats) {
  writable_ = Status::IOError("disk full");
  BatchBuilder b;
  b.Upsert(1, "player", 1, 1);
  Reply r = Call(Apply(4, b.Finish()));
  EXPECT_EQ(r.code(), fb::ErrorCode_IOError);
  EXPECT_NE(r.message().find("disk full"), std::string::npos);
  EXPECT_EQ(engine_->size(), 0u);
  Reply s = Call(Stats(5));
  EXPECT_FALSE(s->body_as_StatsReply()->writable());
  EXPECT_NE(s->body_as_StatsReply()->not_writable_reason()->str().find("disk full"),
            std::string::npos);
  EXPECT_EQ(s->body_as_StatsReply()->connections(), 3u);
}

TEST_F(DispatchTest, VerifierTableLimitRefusesLargeMessages) {
  DispatchOptions o;
  o.verifier_max_tables = 4;
  Open(std::move(o));
  QueryOpts q;
  q.kind = "player";
  q.columns = {"hp"};
  q.where_column = "hp";
  q.where_value = int32_t{1};
  EXPECT_EQ(Call(Radius(4, 0, 0, 1, q)).code(), fb::ErrorCode_BadMessage);
}

// ---- auth ----

class DispatchAuthTest : public DispatchTest {
 protected:
  void SetUp() override {
    tokens_ = TokenTable::Parse("r-token read\nw-token write\na-token admin\n", "test").value();
    DispatchOptions o;
    o.tokens = &tokens_;
    Open(std::move(o));
  }
  TokenTable tokens_ = TokenTable::Parse("x read", "x").value();
};

TEST_F(DispatchAuthTest, EverythingButHelloIsRefusedBeforeHello) {
  Reply r = Call(Ping(4));
  EXPECT_EQ(r.code(), fb::ErrorCode_Unauthenticated);
  EXPECT_EQ(r->request_id(), 4u);
  EXPECT_EQ(Call(Radius(5, 0, 0, 1)).code(), fb::ErrorCode_Unauthenticated);
  EXPECT_EQ(Call(Batch(5, {}, RadiusShape(1), {0}, {0})).code(), fb::ErrorCode_Unauthenticated);
  BatchBuilder b;
  b.Upsert(1, "player", 1, 1);
  EXPECT_EQ(Call(Apply(6, b.Finish())).code(), fb::ErrorCode_Unauthenticated);
  EXPECT_EQ(engine_->size(), 0u);
}

TEST_F(DispatchAuthTest, WrongOrMissingTokenIsUnauthenticated) {
  EXPECT_EQ(Call(Hello(1, "w-tokeN")).code(), fb::ErrorCode_Unauthenticated);
  EXPECT_EQ(Call(Hello(1)).code(), fb::ErrorCode_Unauthenticated);
  EXPECT_EQ(Call(Ping(2)).code(), fb::ErrorCode_Unauthenticated);
}

TEST_F(DispatchAuthTest, ReadRoleMayQueryButNotWrite) {
  Reply h = Call(Hello(1, "r-token"));
  ASSERT_EQ(h->body_type(), fb::ResponseBody_HelloReply) << h.message();
  EXPECT_EQ(h->body_as_HelloReply()->role()->str(), "read");
  EXPECT_EQ(Call(Radius(2, 0, 0, 1)).code(), fb::ErrorCode_Ok);
  BatchBuilder b;
  b.Upsert(1, "player", 1, 1);
  Reply r = Call(Apply(3, b.Finish()));
  EXPECT_EQ(r.code(), fb::ErrorCode_PermissionDenied);
  EXPECT_NE(r.message().find("write role"), std::string::npos) << r.message();
  EXPECT_EQ(engine_->size(), 0u);
}

TEST_F(DispatchAuthTest, WriteRoleMayWriteButNotChangeTheSchema) {
  ASSERT_EQ(Call(Hello(1, "w-token")).code(), fb::ErrorCode_Ok);
  BatchBuilder b;
  b.Upsert(1, "player", 1, 1);
  EXPECT_EQ(Call(Apply(3, b.Finish())).code(), fb::ErrorCode_Ok);
  EXPECT_EQ(Call(SchemaChange(4, EncodeCreateKind({"tree", {}}))).code(),
            fb::ErrorCode_PermissionDenied);
  EXPECT_EQ(Call(Snapshot(5)).code(), fb::ErrorCode_PermissionDenied);
}

TEST_F(DispatchAuthTest, AdminMayChangeTheSchema) {
  ASSERT_EQ(Call(Hello(1, "a-token")).code(), fb::ErrorCode_Ok);
  EXPECT_EQ(Call(SchemaChange(4, EncodeCreateKind({"tree", {}}))).code(), fb::ErrorCode_Ok);
}

TEST_F(DispatchAuthTest, AFailedHelloDropsAnEarlierRole) {
  ASSERT_EQ(Call(Hello(1, "a-token")).code(), fb::ErrorCode_Ok);
  EXPECT_EQ(Call(Hello(2, "nope")).code(), fb::ErrorCode_Unauthenticated);
  EXPECT_EQ(Call(Ping(3)).code(), fb::ErrorCode_Unauthenticated);
}

// ---- token file and daemon options ----

TEST(TokenTableTest, ParsesRolesCommentsAndBlankLines) {
  auto t = TokenTable::Parse("# tokens\n\nabc read\r\n  def   admin  \n", "f");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->Lookup("abc"), Role::kRead);
  EXPECT_EQ(t->Lookup("def"), Role::kAdmin);
  EXPECT_EQ(t->Lookup("ab"), std::nullopt);
  EXPECT_EQ(t->Lookup("abcd"), std::nullopt);
  EXPECT_EQ(t->Lookup(""), std::nullopt);
}

TEST(TokenTableTest, RefusesBadLinesNamingTheLine) {
  auto unknown_role = TokenTable::Parse("a read\nb root\n", "tokens.txt");
  ASSERT_FALSE(unknown_role.ok());
  EXPECT_NE(unknown_role.status().message().find("tokens.txt line 2"), std::string::npos);
  EXPECT_NE(unknown_role.status().message().find("root"), std::string::npos);
  EXPECT_FALSE(TokenTable::Parse("a\n", "f").ok());
  EXPECT_FALSE(TokenTable::Parse("a read extra\n", "f").ok());
  EXPECT_FALSE(TokenTable::Parse("a read\na write\n", "f").ok());
  EXPECT_FALSE(TokenTable::Parse("# only a comment\n", "f").ok());
  EXPECT_FALSE(TokenTable::Parse(std::string(300, 'x') + " read\n", "f").ok());
}

TEST(TokenTableTest, MissingFileIsAnIOError) {
  auto t = TokenTable::Load("/nonexistent/tokens");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kIOError);
}

TEST(TokenTableTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", std::string_view("abc\0", 4)));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

// The durability text itself is parsed by wal::Durability (tests/world_test.cc).
TEST(DaemonOptionsTest, DurabilityAndDataDirectorySettingsReachTheWorld) {
  DaemonOptions o;
  o.durability_text = "interval:25";
  o.snapshots_kept = 3;
  o.archive = true;
  ASSERT_TRUE(FinishDaemonOptions(&o).ok());
  const wal::WorldOptions w = o.ToWorldOptions();
  EXPECT_EQ(w.durability.mode, wal::Durability::Mode::kInterval);
  EXPECT_EQ(w.durability.interval_ms, 25u);
  EXPECT_EQ(w.snapshots_kept, 3u);
  EXPECT_TRUE(w.archive);
  EXPECT_EQ(w.data_dir, "./data");

  o.durability_text = "sometimes";
  Status st = FinishDaemonOptions(&o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--durability"), std::string::npos) << st.message();
  o.durability_text = "always";
  o.snapshots_kept = 0;
  EXPECT_FALSE(FinishDaemonOptions(&o).ok());
  o.snapshots_kept = 1;
  o.segment_bytes = 100;
  st = FinishDaemonOptions(&o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--segment-bytes 100"), std::string::npos) << st.message();
}

TEST(DaemonOptionsTest, DefaultShardsLeaveTheEventLoopACore) {
  EXPECT_EQ(DefaultShards(0), 1u);  // unknown
  EXPECT_EQ(DefaultShards(1), 1u);
  EXPECT_EQ(DefaultShards(2), 1u);
  EXPECT_EQ(DefaultShards(3), 2u);
  EXPECT_EQ(DefaultShards(16), 15u);
  EXPECT_EQ(DefaultShards(1000), 256u);
  DaemonOptions o;
  ASSERT_TRUE(FinishDaemonOptions(&o).ok());
  EXPECT_EQ(o.shards, DefaultShards(std::thread::hardware_concurrency()));
}

TEST(DaemonOptionsTest, RemoteWithoutAuthNeedsTheFlag) {
  DaemonOptions o;
  o.listen = "0.0.0.0";
  Status s = FinishDaemonOptions(&o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--allow-remote-without-auth"), std::string::npos);
  o.allow_remote_without_auth = true;
  EXPECT_TRUE(FinishDaemonOptions(&o).ok());
  DaemonOptions a;
  a.listen = "10.1.2.3";
  a.auth_file = "tokens";
  EXPECT_TRUE(FinishDaemonOptions(&a).ok());
}

TEST(DaemonOptionsTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackAddress("127.8.9.10"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackAddress("::"));
  EXPECT_FALSE(IsLoopbackAddress("example.com"));
}

TEST(DaemonOptionsTest, RefusesBadValues) {
  DaemonOptions o;
  o.log_format = "xml";
  EXPECT_FALSE(FinishDaemonOptions(&o).ok());
  DaemonOptions f;
  f.max_output_buffer_bytes = f.max_frame_bytes - 1;
  EXPECT_FALSE(FinishDaemonOptions(&f).ok());
  DaemonOptions s;
  s.shards = 300;
  EXPECT_FALSE(FinishDaemonOptions(&s).ok());
}

}  // namespace
}  // namespace worlddb::net

// ---- seed corpus of tests/fuzz/net_request_fuzzer.cc ----
// Writes one file per request type (and a pipelined stream) when
// WORLDDB_WRITE_NET_SEEDS names a directory; otherwise skipped.
namespace worlddb::net {
namespace {

using namespace worlddb::net::testing;

// Frames by push_back: GCC 12 reports a false -Wstringop-overflow when
// AppendFrame's resize is inlined here.
void AddFrame(const std::vector<uint8_t>& payload, std::vector<uint8_t>* out) {
  const auto n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(n >> (8 * i)));
  out->insert(out->end(), payload.begin(), payload.end());
}

TEST(NetRequestSeeds, Write) {
  const char* dir = std::getenv("WORLDDB_WRITE_NET_SEEDS");
  if (!dir) GTEST_SKIP() << "set WORLDDB_WRITE_NET_SEEDS=tests/fuzz/corpus/net_request";
  BatchBuilder b;
  b.Upsert(30, "player", 1, 2, 0, {{"hp", int32_t{5}}, {"name", std::string("orc")}})
      .Move(1, 3, 4)
      .Set(2, {{"hp", int32_t{9}}})
      .Delete(3);
  const auto batch_span = b.Finish();
  const std::vector<uint8_t> batch(batch_span.begin(), batch_span.end());
  QueryOpts proj;
  proj.kind = "player";
  proj.columns = {"hp", "name"};
  proj.where_column = "hp";
  proj.where_op = fb::CompareOp_Lt;
  proj.where_value = int32_t{10};
  proj.order_by_distance = true;
  QueryOpts count;
  count.count_only = true;
  QueryOpts limit;
  limit.limit = 3;
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds = {
      {"hello", Hello(1)},
      {"hello_token", Hello(1, "writer")},
      {"ping", Ping(2)},
      {"apply", Apply(3, batch)},
      {"apply_queued", Apply(3, batch, 2)},
      {"create_kind",
       SchemaChange(4, EncodeCreateKind({"tree", {{"age", ColumnType::kF64, 1.5, 0}}}))},
      {"alter_kind",
       SchemaChange(
           5, EncodeAlterKind("player", {{"mana", ColumnType::kI64, int64_t{1}, 0}}, {"name"}))},
      {"get", Get(6, {1, 2, 99}, "player", {"hp"})},
      {"radius", Radius(7, 0, 0, 10, proj)},
      {"radius_count", Radius(8, 0, 0, 10, count)},
      {"rectangle", Rectangle(9, -5, -5, 5, 5, limit)},
      {"nearest", Nearest(10, 0, 0, 4, proj)},
      {"density", Density(11, -10, -10, 10, 10, 4, 4, "player")},
      {"list_kinds", ListKinds(12)},
      {"stats", Stats(13)},
      {"snapshot", Snapshot(14)},
      {"batch_radius", Batch(15, proj, RadiusShape(10, true), {0, 1, 2}, {0, -1, 3})},
      {"batch_rectangle", Batch(16, limit, RectangleShape(0, 0, 4, 2), {0, 5}, {0, 5})},
      {"batch_nearest", Batch(17, count, NearestShape(3), {1}, {1})},
  };
  std::vector<uint8_t> pipeline{0};       // auth off
  std::vector<uint8_t> pipeline_auth{1};  // auth on: hello as admin first
  AddFrame(Hello(1, "admin"), &pipeline_auth);
  for (const auto& [name, req] : seeds) {
    std::vector<uint8_t> file{0};  // first byte: auth off
    AddFrame(req, &file);
    AddFrame(req, &pipeline);
    AddFrame(req, &pipeline_auth);
    std::FILE* f = std::fopen((std::string(dir) + "/" + name).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(file.data(), 1, file.size(), f);
    std::fclose(f);
  }
  for (const auto& [name, bytes] : {std::pair{std::string("pipeline"), pipeline},
                                    std::pair{std::string("pipeline_auth"), pipeline_auth},
                                    std::pair{std::string("regression_misaligned_get_ids"),
                                              [] {
                                                std::vector<uint8_t> f{0};
                                                AddFrame(MisalignedGetByIds(), &f);
                                                return f;
                                              }()},
                                    std::pair{std::string("misaligned_batch_centres"), [] {
                                                std::vector<uint8_t> f{0};
                                                AddFrame(MisalignedBatchCentres(), &f);
                                                return f;
                                              }()}}) {
    std::FILE* f = std::fopen((std::string(dir) + "/" + name).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
}

}  // namespace
}  // namespace worlddb::net
