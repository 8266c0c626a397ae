// Server: in-process on an ephemeral port, driven through raw sockets.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <thread>

#include "engine/batch_builder.h"
#include "net/server.h"
#include "net_socket.h"

namespace worlddb::net {
namespace {

using namespace worlddb::net::testing;

class ServerTest : public ::testing::Test {
 protected:
  void TearDown() override { StopServer(); }

  void StartServer(ServerOptions o = {}) {
    EngineOptions eo;
    eo.world = {-10000, -10000, 10000, 10000};
    eo.shards = 2;
    engine_ = std::move(Engine::Open(eo).value());
    ASSERT_TRUE(engine_->CreateKind(PlayerKind()).ok());
    o.port = 0;
    o.writer_threads = 2;
    auto s = Server::Start(engine_.get(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s.value());
    thread_ = std::thread([this] { run_status_ = server_->Run(); });
  }
  void StopServer() {
    if (!server_) return;
    server_->Stop();
    thread_.join();
    EXPECT_TRUE(run_status_.ok()) << run_status_.ToString();
    server_.reset();
  }
  uint16_t port() const { return server_->port(); }

  // Players ids [first, first + n) at (id % 5000, 0).
  static std::vector<uint8_t> Players(uint64_t first, int n) {
    BatchBuilder b;
    for (int i = 0; i < n; ++i) b.Upsert(first + i, "player", double((first + i) % 5000), 0);
    auto s = b.Finish();
    return {s.begin(), s.end()};
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  Status run_status_;
};

TEST_F(ServerTest, PingOverTcp) {
  StartServer();
  RawConn c(port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.Send(Ping(11)));
  auto r = c.Read();
  ASSERT_TRUE(r && r->valid());
  EXPECT_EQ((*r)->request_id(), 11u);
  EXPECT_EQ((*r)->body_type(), fb::ResponseBody_Pong);
}

TEST_F(ServerTest, PipelinedResponsesComeInRequestOrder) {
  StartServer();
  RawConn c(port());
  std::vector<uint8_t> all;
  std::vector<fb::ResponseBody> expect;
  uint64_t id = 1;
  for (int round = 0; round < 50; ++round) {
    auto add = [&](const std::vector<uint8_t>& req, fb::ResponseBody type) {
      AppendFrame(req, &all);
      expect.push_back(type);
    };
    add(Radius(id++, 0, 0, 100), fb::ResponseBody_QueryReply);
    add(Ping(id++), fb::ResponseBody_Pong);
    add(Apply(id++, Players(1000 * round + 1, 10)), fb::ResponseBody_ApplyReply);
    add(Nearest(id++, 5, 0, 3), fb::ResponseBody_QueryReply);
    add(Stats(id++), fb::ResponseBody_StatsReply);
    add(Rectangle(id++, 0, -1, 10, 1), fb::ResponseBody_QueryReply);
    add(Get(id++, {1, 2}), fb::ResponseBody_QueryReply);
  }
  ASSERT_TRUE(c.SendRaw(all));
  for (uint64_t i = 1; i < id; ++i) {
    auto r = c.Read();
    ASSERT_TRUE(r && r->valid()) << "response " << i;
    ASSERT_EQ((*r)->request_id(), i);
    ASSERT_EQ((*r)->body_type(), expect[i - 1]) << "request " << i << ": " << r->message();
  }
}

TEST_F(ServerTest, AQueryPipelinedAfterAWriteSeesIt) {
  StartServer();
  RawConn c(port());
  std::vector<uint8_t> all;
  for (int i = 0; i < 20; ++i) {
    AppendFrame(Apply(2 * i + 1, Players(100 * i + 1, 5)), &all);
    AppendFrame(Get(2 * i + 2, {uint64_t(100 * i + 5)}), &all);
  }
  ASSERT_TRUE(c.SendRaw(all));
  for (int i = 0; i < 20; ++i) {
    auto w = c.Read();
    ASSERT_TRUE(w && w->code() == fb::ErrorCode_Ok);
    auto g = c.Read();
    ASSERT_TRUE(g && g->valid());
    ASSERT_EQ((*g)->body_type(), fb::ResponseBody_QueryReply) << g->message();
    EXPECT_EQ((*g)->body_as_QueryReply()->ids()->size(), 1u) << "write " << i << " not visible";
  }
}

// More queries than one round holds, from two connections at once, with
// inline requests and a write among them: the server runs one round on the
// shards while it answers the round before, and neither order nor
// read-your-writes may suffer.
TEST_F(ServerTest, ResponsesStayInOrderAcrossOverlappingRounds) {
  StartServer();
  RawConn pre(port());
  ASSERT_TRUE(pre.Send(Apply(1, Players(1, 10))));  // x = 1..10
  ASSERT_TRUE(pre.Read());
  constexpr int kQueries = 3 * int{kMaxQueriesPerRound} + 7;
  struct Expect {
    fb::ResponseBody type;
    uint64_t min_count;  // queries: rows at least (the other connection's write may land)
  };
  RawConn conns[2] = {RawConn(port()), RawConn(port())};
  std::vector<Expect> expect[2];
  for (int k = 0; k < 2; ++k) {
    std::vector<uint8_t> all;
    uint64_t id = 1;
    bool written = false;
    for (int i = 0; i < kQueries; ++i) {
      if (i == kQueries / 2) {  // entity 5050 + k at x = 50 + k, inside the circle
        AppendFrame(Apply(id++, Players(5050 + k, 1)), &all);
        expect[k].push_back({fb::ResponseBody_ApplyReply, 0});
        written = true;
      }
      AppendFrame(Radius(id++, 0, 0, 100), &all);
      expect[k].push_back({fb::ResponseBody_QueryReply, written ? 11u : 10u});
      if (i % 7 == 0) {
        AppendFrame(Ping(id++), &all);
        expect[k].push_back({fb::ResponseBody_Pong, 0});
      }
      if (i % 11 == 0) {
        AppendFrame(Get(id++, {uint64_t(5050 + k)}), &all);
        expect[k].push_back({fb::ResponseBody_QueryReply, written ? 1u : 0u});
      }
      if (i % 97 == 3) {  // a batch larger than a round on its own
        const std::vector<double> centres(kMaxQueriesPerRound + 44, 0.0);
        AppendFrame(Batch(id++, {}, RadiusShape(100), centres, centres), &all);
        expect[k].push_back({fb::ResponseBody_QueryBatchReply, written ? 11u : 10u});
      }
    }
    ASSERT_TRUE(conns[k].SendRaw(all));
  }
  for (int k = 0; k < 2; ++k) {
    for (size_t i = 0; i < expect[k].size(); ++i) {
      auto r = conns[k].Read();
      ASSERT_TRUE(r && r->valid()) << "connection " << k << " response " << i;
      ASSERT_EQ((*r)->request_id(), i + 1) << "connection " << k;
      ASSERT_EQ((*r)->body_type(), expect[k][i].type) << "connection " << k << " request " << i;
      if (const auto* q = (*r)->body_as_QueryReply()) {
        EXPECT_GE(q->ids()->size(), expect[k][i].min_count)
            << "connection " << k << " request " << i << " missed an earlier write";
      }
      if (const auto* b = (*r)->body_as_QueryBatchReply()) {
        ASSERT_EQ(b->rows()->size(), kMaxQueriesPerRound + 44);
        for (uint32_t j = 0; j < b->rows()->size(); ++j) {
          EXPECT_GE(b->rows()->Get(j), expect[k][i].min_count)
              << "connection " << k << " request " << i << " (batch query " << j
              << ") missed an earlier write";
        }
      }
    }
  }
}

TEST_F(ServerTest, AFrameSentByteByByteIsReassembled) {
  StartServer();
  RawConn c(port());
  auto frame = RawConn::Frame(Radius(3, 0, 0, 1));
  for (uint8_t b : frame) ASSERT_TRUE(c.SendRaw({b}));
  auto r = c.Read();
  ASSERT_TRUE(r && r->valid());
  EXPECT_EQ((*r)->request_id(), 3u);
}

TEST_F(ServerTest, ALargeWriteBatchIsApplied) {
  StartServer();
  RawConn c(port());
  ASSERT_TRUE(c.Send(Apply(1, Players(1, 100000))));
  auto r = c.Read();
  ASSERT_TRUE(r && r->valid());
  ASSERT_EQ((*r)->body_type(), fb::ResponseBody_ApplyReply) << r->message();
  EXPECT_EQ((*r)->body_as_ApplyReply()->created(), 100000u);
}

TEST_F(ServerTest, ABrokenFrameClosesOnlyThatConnection) {
  StartServer();
  RawConn bad(port()), good(port());
  ASSERT_TRUE(good.Send(Ping(1)));
  ASSERT_TRUE(good.Read());
  ASSERT_TRUE(bad.SendRaw({0xff, 0xff, 0xff, 0xff, 1, 2, 3}));
  auto r = bad.Read();
  ASSERT_TRUE(r && r->valid());
  EXPECT_EQ(r->code(), fb::ErrorCode_BadMessage);
  EXPECT_NE(r->message().find("exceeds the limit"), std::string::npos) << r->message();
  EXPECT_TRUE(bad.WaitClosed());
  ASSERT_TRUE(good.Send(Ping(2)));
  auto p = good.Read();
  ASSERT_TRUE(p && p->valid());
  EXPECT_EQ((*p)->request_id(), 2u);
}

TEST_F(ServerTest, AGarbagePayloadGetsAnErrorAndTheConnectionGoesOn) {
  StartServer();
  RawConn c(port());
  ASSERT_TRUE(c.Send({1, 2, 3, 4, 5, 6, 7, 8, 9}));
  ASSERT_TRUE(c.Send({}));  // a zero-length frame
  ASSERT_TRUE(c.Send(Ping(5)));
  auto g = c.Read();
  ASSERT_TRUE(g && g->valid());
  EXPECT_EQ(g->code(), fb::ErrorCode_BadMessage);
  auto z = c.Read();
  ASSERT_TRUE(z && z->valid());
  EXPECT_EQ(z->code(), fb::ErrorCode_BadMessage);
  auto p = c.Read();
  ASSERT_TRUE(p && p->valid());
  EXPECT_EQ((*p)->request_id(), 5u);
}

// Write batches pipelined back to back run as one job (applied in order, one
// wait for the log), with requests the job cannot take among them: a batch
// the engine refuses (inside the job), one with a bad ack and one with
// garbage bytes (which Begin() answers, ending the job). Each gets its own
// answer, in order, and a query after them sees every applied batch.
TEST_F(ServerTest, PipelinedWritesKeepTheirOwnOutcomesAndOrder) {
  StartServer();
  RawConn c(port());
  std::vector<uint8_t> all;
  std::vector<fb::ErrorCode> expect;
  std::vector<uint64_t> applied;
  for (uint64_t i = 1; i <= 60; ++i) {
    if (i == 10) {
      BatchBuilder b;
      b.Upsert(900000, "player", 1e9, 0);  // out of the world
      AppendFrame(Apply(i, b.Finish()), &all);
      expect.push_back(fb::ErrorCode_InvalidArgument);
    } else if (i == 20) {
      AppendFrame(Apply(i, Players(100 * i, 3), /*ack=*/3), &all);
      expect.push_back(fb::ErrorCode_InvalidArgument);
    } else if (i == 30) {
      AppendFrame(Apply(i, std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}), &all);
      expect.push_back(fb::ErrorCode_BadMessage);
    } else {
      AppendFrame(Apply(i, Players(100 * i, 3), static_cast<uint8_t>(i % 3)), &all);
      expect.push_back(fb::ErrorCode_Ok);
      for (uint64_t k = 0; k < 3; ++k) applied.push_back(100 * i + k);
    }
  }
  AppendFrame(Get(61, applied), &all);
  ASSERT_TRUE(c.SendRaw(all));
  for (uint64_t i = 1; i <= 60; ++i) {
    auto r = c.Read();
    ASSERT_TRUE(r && r->valid()) << "response " << i;
    // A request that fails the verifier is answered with id 0 (unreadable).
    ASSERT_EQ((*r)->request_id(), i == 30 ? 0 : i);
    EXPECT_EQ(r->code(), expect[i - 1]) << "request " << i << ": " << r->message();
  }
  auto g = c.Read();
  ASSERT_TRUE(g && g->valid());
  ASSERT_EQ((*g)->request_id(), 61u);
  ASSERT_EQ((*g)->body_type(), fb::ResponseBody_QueryReply) << g->message();
  EXPECT_EQ((*g)->body_as_QueryReply()->ids()->size(), applied.size());
  EXPECT_EQ(engine_->size(), applied.size());
}

TEST_F(ServerTest, AnInvalidWriteChangesNothingAndOthersGoOn) {
  StartServer();
  RawConn c(port());
  BatchBuilder b;
  b.Upsert(1, "player", 1, 1).Upsert(2, "player", 1e9, 1);  // out of the world
  ASSERT_TRUE(c.Send(Apply(1, b.Finish())));
  auto r = c.Read();
  ASSERT_TRUE(r && r->valid());
  EXPECT_EQ(r->code(), fb::ErrorCode_InvalidArgument) << r->message();
  EXPECT_EQ(engine_->size(), 0u);
  ASSERT_TRUE(c.Send(Apply(2, Players(1, 3))));
  EXPECT_EQ(c.Read()->code(), fb::ErrorCode_Ok);
  EXPECT_EQ(engine_->size(), 3u);
}

TEST_F(ServerTest, AClientThatDoesNotReadIsDisconnectedAtTheOutputCap) {
  ServerOptions o;
  o.max_frame_bytes = 1 << 20;
  o.max_output_buffer_bytes = 2 << 20;
  StartServer(o);
  {
    RawConn w(port());
    ASSERT_TRUE(w.Send(Apply(1, Players(1, 5000))));
    ASSERT_TRUE(w.Read());
  }
  RawConn slow(port(), /*rcvbuf=*/4096);
  // Each answer is ~5000 rows (~200 KB); never read them.
  std::vector<uint8_t> all;
  for (int i = 0; i < 200; ++i) AppendFrame(Rectangle(i + 1, -1, -1, 6000, 1), &all);
  slow.SendRaw(all);  // may fail part way once the server closes
  EXPECT_TRUE(slow.WaitClosed()) << "the server kept buffering for a client that does not read";
  RawConn other(port());
  ASSERT_TRUE(other.Send(Ping(9)));
  EXPECT_TRUE(other.Read());
}

TEST_F(ServerTest, AResponseOverTheFrameLimitBecomesAnError) {
  ServerOptions o;
  o.max_frame_bytes = 64 << 10;
  o.max_output_buffer_bytes = 1 << 20;
  StartServer(o);
  RawConn c(port());
  ASSERT_TRUE(c.Send(Apply(1, Players(1, 1000))));  // ~40 KB request
  ASSERT_TRUE(c.Read());
  ASSERT_TRUE(c.Send(Rectangle(2, -1, -1, 2000, 1)));  // ~50 KB per 1000 rows... x2
  ASSERT_TRUE(c.Send(Apply(3, Players(1001, 1000))));
  ASSERT_TRUE(c.Send(Rectangle(4, -1, -1, 2000, 1)));
  auto small = c.Read();
  ASSERT_TRUE(small && small->valid());
  ASSERT_TRUE(c.Read());
  auto big = c.Read();
  ASSERT_TRUE(big && big->valid());
  EXPECT_EQ((*big)->request_id(), 4u);
  EXPECT_EQ(big->code(), fb::ErrorCode_ResourceExhausted) << big->message();
  ASSERT_TRUE(c.Send(Ping(5)));
  EXPECT_TRUE(c.Read());
}

TEST_F(ServerTest, AnIdleConnectionIsClosed) {
  ServerOptions o;
  o.idle_timeout_ms = 100;
  StartServer(o);
  RawConn c(port());
  ASSERT_TRUE(c.Send(Ping(1)));
  ASSERT_TRUE(c.Read());
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(ServerTest, AnActiveConnectionIsNotIdle) {
  ServerOptions o;
  o.idle_timeout_ms = 2000;
  StartServer(o);
  RawConn c(port());
  // Traffic more often than the timeout keeps it open.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.Send(Ping(i)));
    auto r = c.Read();
    ASSERT_TRUE(r) << "closed at ping " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST_F(ServerTest, ConnectionsOverTheLimitAreRefused) {
  ServerOptions o;
  o.max_connections = 2;
  StartServer(o);
  RawConn a(port()), b(port());
  ASSERT_TRUE(a.Send(Ping(1)));
  ASSERT_TRUE(a.Read());
  ASSERT_TRUE(b.Send(Ping(1)));
  ASSERT_TRUE(b.Read());
  RawConn c(port());
  auto r = c.Read();
  ASSERT_TRUE(r && r->valid());
  EXPECT_EQ(r->code(), fb::ErrorCode_ResourceExhausted);
  EXPECT_NE(r->message().find("too many connections"), std::string::npos);
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(ServerTest, AHalfClosedClientGetsItsAnswers) {
  StartServer();
  RawConn c(port());
  ASSERT_TRUE(c.Send(Apply(1, Players(1, 10))));
  ASSERT_TRUE(c.Send(Radius(2, 0, 0, 100)));
  ::shutdown(c.fd(), SHUT_WR);
  auto w = c.Read();
  ASSERT_TRUE(w && w->code() == fb::ErrorCode_Ok);
  auto q = c.Read();
  ASSERT_TRUE(q && q->valid());
  EXPECT_EQ((*q)->body_as_QueryReply()->ids()->size(), 10u);
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(ServerTest, AuthOverTcp) {
  auto tokens = TokenTable::Parse("reader read\nwriter write\n", "t").value();
  ServerOptions o;
  o.tokens = &tokens;
  StartServer(o);
  RawConn c(port());
  ASSERT_TRUE(c.Send(Ping(1)));
  EXPECT_EQ(c.Read()->code(), fb::ErrorCode_Unauthenticated);
  ASSERT_TRUE(c.Send(Hello(2, "wrong")));
  EXPECT_EQ(c.Read()->code(), fb::ErrorCode_Unauthenticated);
  ASSERT_TRUE(c.Send(Hello(3, "reader")));
  EXPECT_EQ(c.Read()->code(), fb::ErrorCode_Ok);
  ASSERT_TRUE(c.Send(Apply(4, Players(1, 1))));
  EXPECT_EQ(c.Read()->code(), fb::ErrorCode_PermissionDenied);
  ASSERT_TRUE(c.Send(Hello(5, "writer")));
  EXPECT_EQ(c.Read()->code(), fb::ErrorCode_Ok);
  ASSERT_TRUE(c.Send(Apply(6, Players(1, 1))));
  EXPECT_EQ(c.Read()->code(), fb::ErrorCode_Ok);
  // Another connection starts unauthenticated.
  RawConn d(port());
  ASSERT_TRUE(d.Send(Radius(1, 0, 0, 1)));
  EXPECT_EQ(d.Read()->code(), fb::ErrorCode_Unauthenticated);
}

TEST_F(ServerTest, StopFinishesRequestsInFlight) {
  StartServer();
  RawConn c(port());
  std::vector<uint8_t> all;
  for (int i = 0; i < 50; ++i) AppendFrame(Apply(i + 1, Players(1000 * i + 1, 100)), &all);
  ASSERT_TRUE(c.SendRaw(all));
  // Wait until the server has started on them, then stop it.
  while (engine_->size() == 0) std::this_thread::yield();
  server_->Stop();
  int answered = 0;
  while (auto r = c.Read()) {
    ASSERT_EQ(r->code(), fb::ErrorCode_Ok);
    ++answered;
  }
  thread_.join();
  server_.reset();
  // Every request the server had received was finished and answered; no
  // write was applied without its answer being sent.
  EXPECT_GT(answered, 0);
  EXPECT_EQ(engine_->size(), size_t(answered) * 100);
}

TEST_F(ServerTest, RemoteWithoutAuthIsRefused) {
  EngineOptions eo;
  auto engine = std::move(Engine::Open(eo).value());
  ServerOptions o;
  o.listen = "0.0.0.0";
  o.port = 0;
  auto s = Server::Start(engine.get(), o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--allow-remote-without-auth"), std::string::npos);
  o.allow_remote_without_auth = true;
  EXPECT_TRUE(Server::Start(engine.get(), o).ok());
}

TEST_F(ServerTest, ABadListenAddressIsNamed) {
  EngineOptions eo;
  auto engine = std::move(Engine::Open(eo).value());
  ServerOptions o;
  o.listen = "not-an-address";
  o.allow_remote_without_auth = true;
  auto s = Server::Start(engine.get(), o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not-an-address"), std::string::npos);
}

// The daemon binary: --port 0 prints the bound port; SIGTERM exits 0.
TEST(DaemonTest, ServesOnAnEphemeralPortAndExitsZeroOnSigterm) {
  int err_pipe[2];
  ASSERT_EQ(::pipe(err_pipe), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(err_pipe[1], 2);
    ::close(err_pipe[0]);
    const std::string bin = std::string(WORLDDB_BINARY_DIR) + "/net/worlddb";
    ::execl(bin.c_str(), bin.c_str(), "--port", "0", "--shards", "1", "--data-dir", "/tmp",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  FILE* err = ::fdopen(err_pipe[0], "r");
  char line[4096];
  int port = 0;
  while (port == 0 && std::fgets(line, sizeof(line), err)) {
    const char* at = std::strstr(line, "listening on 127.0.0.1:");
    if (at) port = std::atoi(at + std::strlen("listening on 127.0.0.1:"));
  }
  ASSERT_GT(port, 0) << "no `listening on 127.0.0.1:PORT` line";
  {
    RawConn c(static_cast<uint16_t>(port));
    ASSERT_TRUE(c.Send(Hello(1)));
    auto r = c.Read();
    ASSERT_TRUE(r && r->valid());
    EXPECT_EQ((*r)->body_type(), fb::ResponseBody_HelloReply);
  }
  ::kill(pid, SIGTERM);
  while (std::fgets(line, sizeof(line), err)) {
  }
  std::fclose(err);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace worlddb::net

namespace worlddb::net {
namespace {

using namespace worlddb::net::testing;

// Many 32 KB write frames, one in flight at a time, then 8 at a time.
TEST_F(ServerTest, ManyLargeWritesInSequence) {
  StartServer();
  RawConn c(port());
  ASSERT_TRUE(c.Send(Apply(1, Players(1, 1000))));
  ASSERT_TRUE(c.Read());
  uint64_t id = 2;
  for (int round = 0; round < 300; ++round) {
    BatchBuilder b;
    for (int i = 1; i <= 1000; ++i) b.Move(i, (i + round) % 100, round % 100);
    auto s = b.Finish();
    const std::vector<uint8_t> batch(s.begin(), s.end());
    const int in_flight = round < 150 ? 1 : 8;
    std::vector<uint8_t> all;
    for (int k = 0; k < in_flight; ++k) AppendFrame(Apply(id + k, batch), &all);
    ASSERT_TRUE(c.SendRaw(all));
    for (int k = 0; k < in_flight; ++k) {
      auto r = c.Read(20000);
      ASSERT_TRUE(r && r->valid()) << "round " << round << " response " << k;
      ASSERT_EQ((*r)->request_id(), id + k);
    }
    id += in_flight;
  }
}

}  // namespace
}  // namespace worlddb::net

namespace worlddb::net {
namespace {

// Runs the daemon with `args` (it must exit by itself); its exit code and output.
std::pair<int, std::string> RunDaemon(const std::string& args) {
  const std::string cmd = std::string(WORLDDB_BINARY_DIR) + "/net/worlddb " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(DaemonTest, UnknownConfigKeyIsRefused) {
  const std::string path = ::testing::TempDir() + "worlddb_bad.toml";
  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("port = 0\nmax-result-rowz = 5\n", f);
  std::fclose(f);
  auto [code, out] = RunDaemon("--config " + path);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("max-result-rowz"), std::string::npos) << out;
}

TEST(DaemonTest, RemoteWithoutAuthRefusesToStart) {
  auto [code, out] = RunDaemon("--listen 0.0.0.0 --port 0");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--allow-remote-without-auth"), std::string::npos) << out;
}

TEST(DaemonTest, BadDurabilityIsRefused) {
  auto [code, out] = RunDaemon("--durability sometimes");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("sometimes"), std::string::npos) << out;
}

TEST(DaemonTest, MissingTokenFileIsRefused) {
  auto [code, out] = RunDaemon("--port 0 --auth-file /nonexistent/tokens");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("/nonexistent/tokens"), std::string::npos) << out;
}

}  // namespace
}  // namespace worlddb::net
