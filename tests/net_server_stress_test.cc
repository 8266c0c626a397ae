// Several connections writing and querying one server at once (run under
// TSan in CI): pipelined writers on disjoint ids, pipelined readers, and a
// client sending garbage. Every response must come back, in request order,
// and the final state must be exactly the writers' last batches.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "engine/batch_builder.h"
#include "net/server.h"
#include "net_socket.h"

namespace worlddb::net {
namespace {

using namespace worlddb::net::testing;

constexpr int kWriters = 3, kReaders = 3;
constexpr int kEntitiesPerWriter = 200;
constexpr int kRounds = 20, kBatchesPerRound = 5;
constexpr int kReaderRounds = 40, kQueriesPerRound = 10;

std::vector<uint8_t> Moves(int writer, int step) {
  BatchBuilder b;
  for (int i = 0; i < kEntitiesPerWriter; ++i) {
    const uint64_t id = uint64_t(writer) * 10000 + i + 1;
    b.Move(id, double(i), double(writer * 100 + step % 50), double(step));
  }
  auto s = b.Finish();
  return {s.begin(), s.end()};
}

TEST(ServerStressTest, ConcurrentPipelinedWritersAndReaders) {
  EngineOptions eo;
  eo.world = {-1000, -1000, 1000, 1000};
  eo.shards = 2;
  auto engine = std::move(Engine::Open(eo).value());
  ASSERT_TRUE(engine->CreateKind(PlayerKind()).ok());
  ServerOptions so;
  so.port = 0;
  so.writer_threads = 2;
  auto started = Server::Start(engine.get(), so);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<Server> server = std::move(started.value());
  std::thread loop([&] { ASSERT_TRUE(server->Run().ok()); });
  const uint16_t port = server->port();

  std::atomic<int> failures{0};
  auto fail = [&](const std::string& what) {
    ADD_FAILURE() << what;
    failures.fetch_add(1);
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      RawConn c(port);
      BatchBuilder b;
      for (int i = 0; i < kEntitiesPerWriter; ++i) {
        b.Upsert(uint64_t(w) * 10000 + i + 1, "player", 0, 0);
      }
      if (!c.Send(Apply(1, b.Finish()))) return fail("send");
      auto r = c.Read();
      if (!r || r->code() != fb::ErrorCode_Ok) return fail("create failed");
      uint64_t id = 2;
      int step = 0;
      for (int round = 0; round < kRounds; ++round) {
        std::vector<uint8_t> all;
        const uint64_t first = id;
        for (int k = 0; k < kBatchesPerRound; ++k) {
          AppendFrame(Apply(id++, Moves(w, ++step), uint8_t(k % 3)), &all);
          AppendFrame(Get(id++, {uint64_t(w) * 10000 + 1}), &all);
        }
        if (!c.SendRaw(all)) return fail("send");
        for (uint64_t i = first; i < id; ++i) {
          auto a = c.Read();
          if (!a || !a->valid()) return fail("writer lost its connection");
          if ((*a)->request_id() != i) return fail("writer: response out of order");
          if (a->code() != fb::ErrorCode_Ok) return fail("writer: " + a->message());
        }
      }
    });
  }
  for (int q = 0; q < kReaders; ++q) {
    threads.emplace_back([&, q] {
      RawConn c(port);
      uint64_t id = 1;
      for (int round = 0; round < kReaderRounds; ++round) {
        std::vector<uint8_t> all;
        const uint64_t first = id;
        for (int k = 0; k < kQueriesPerRound; ++k) {
          QueryOpts o;
          o.kind = "player";
          o.columns = {"hp"};
          switch ((k + q) % 4) {
            case 0:
              AppendFrame(Radius(id++, 50, 100, 50, o), &all);
              break;
            case 1:
              AppendFrame(Nearest(id++, 10, 200, 16, o), &all);
              break;
            case 2:
              AppendFrame(Rectangle(id++, 0, 0, 300, 300), &all);
              break;
            default:
              AppendFrame(Stats(id++), &all);
          }
        }
        if (!c.SendRaw(all)) return fail("send");
        for (uint64_t i = first; i < id; ++i) {
          auto a = c.Read();
          if (!a || !a->valid()) return fail("reader lost its connection");
          if ((*a)->request_id() != i) return fail("reader: response out of order");
          if (a->code() != fb::ErrorCode_Ok) return fail("reader: " + a->message());
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 20; ++i) {
      RawConn c(port);
      c.SendRaw({0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4});
      c.WaitClosed(10000);
      RawConn g(port);
      g.Send({9, 9, 9, 9, 9, 9, 9, 9, 9});
      auto r = g.Read();
      if (!r || r->code() != fb::ErrorCode_BadMessage) return fail("garbage not answered");
    }
  });
  for (std::thread& t : threads) t.join();

  // Every writer's last batch is the state.
  RawConn c(port);
  for (int w = 0; w < kWriters; ++w) {
    std::vector<uint64_t> ids;
    for (int i = 0; i < kEntitiesPerWriter; ++i) ids.push_back(uint64_t(w) * 10000 + i + 1);
    ASSERT_TRUE(c.Send(Get(w + 1, ids)));
    auto r = c.Read();
    ASSERT_TRUE(r && r->valid());
    const fb::QueryReply* q = (*r)->body_as_QueryReply();
    ASSERT_NE(q, nullptr) << r->message();
    ASSERT_EQ(q->ids()->size(), size_t(kEntitiesPerWriter));
    const int last = kRounds * kBatchesPerRound;
    for (int i = 0; i < kEntitiesPerWriter; ++i) {
      EXPECT_EQ(q->x()->Get(i), double(i));
      EXPECT_EQ(q->y()->Get(i), double(w * 100 + last % 50));
      EXPECT_EQ(q->z()->Get(i), double(last));
    }
  }
  server->Stop();
  loop.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(engine->CheckInvariants(), "");
}

}  // namespace
}  // namespace worlddb::net
