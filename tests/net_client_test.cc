// The client library against a tiny scripted fake server (one connection, one
// thread): framing, hello, pipelining, request-id matching, server errors,
// connection loss, malformed and oversized responses, timeouts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "engine/batch_builder.h"
#include "gtest/gtest.h"
#include "net/client.h"
#include "net/frame.h"

namespace worlddb::net {
namespace {

// Blocking helpers for the fake server's side of the socket.
bool WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// One request as the fake sees it (payload copied 8-byte aligned).
struct Received {
  std::vector<uint64_t> storage;
  const fb::Request* get() const { return flatbuffers::GetRoot<fb::Request>(storage.data()); }
};

bool ReadRequest(int fd, Received* out) {
  uint8_t header[4];
  if (!ReadAll(fd, header, 4)) return false;
  const uint32_t n = DecodeFrameLength(header);
  out->storage.assign((n + 7) / 8 + 1, 0);
  if (!ReadAll(fd, reinterpret_cast<uint8_t*>(out->storage.data()), n)) return false;
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(out->storage.data()), n);
  return v.VerifyBuffer<fb::Request>(nullptr);
}

std::vector<uint8_t> Framed(const flatbuffers::FlatBufferBuilder& fbb) {
  std::vector<uint8_t> out;
  AppendFrame({fbb.GetBufferPointer(), fbb.GetSize()}, &out);
  return out;
}

using BodyFn = std::function<std::pair<fb::ResponseBody, flatbuffers::Offset<void>>(
    flatbuffers::FlatBufferBuilder&)>;

std::vector<uint8_t> Response(uint64_t id, const BodyFn& body) {
  flatbuffers::FlatBufferBuilder fbb;
  auto [type, offset] = body(fbb);
  fbb.Finish(fb::CreateResponse(fbb, id, type, offset));
  return Framed(fbb);
}

std::vector<uint8_t> Pong(uint64_t id) {
  return Response(id, [](flatbuffers::FlatBufferBuilder& f) {
    return std::make_pair(fb::ResponseBody_Pong, fb::CreatePong(f).Union());
  });
}

std::vector<uint8_t> Error(uint64_t id, fb::ErrorCode code, const char* msg) {
  return Response(id, [&](flatbuffers::FlatBufferBuilder& f) {
    return std::make_pair(fb::ResponseBody_Error,
                          fb::CreateError(f, code, f.CreateString(msg)).Union());
  });
}

// A server on 127.0.0.1 that accepts one connection and runs `script` on it.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int fd)> script) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, script = std::move(script)] {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      script(fd);
      ::close(fd);
    });
  }
  ~FakeServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // unblocks accept if no client came
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// Answers the Hello (checking version and token) with role `role`.
bool ServeHello(int fd, const char* role = "admin", const char* want_token = nullptr) {
  Received r;
  if (!ReadRequest(fd, &r) || r.get()->body_type() != fb::RequestBody_Hello) return false;
  const fb::Hello* h = r.get()->body_as_Hello();
  if (h->protocol_version() != kProtocolVersion) return false;
  if (want_token && (!h->token() || h->token()->str() != want_token)) return false;
  auto bytes = Response(r.get()->request_id(), [&](flatbuffers::FlatBufferBuilder& f) {
    return std::make_pair(fb::ResponseBody_HelloReply,
                          fb::CreateHelloReply(f, kProtocolVersion, f.CreateString(role)).Union());
  });
  return WriteAll(fd, bytes.data(), bytes.size());
}

std::unique_ptr<Client> MustConnect(uint16_t port, ClientOptions o = {}) {
  auto c = Client::Connect("127.0.0.1", port, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c.value()) : nullptr;
}

TEST(NetClient, HelloCarriesTokenAndReportsRole) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd, "write", "s3cret"));
    Received r;
    while (ReadRequest(fd, &r)) {
      auto b = Pong(r.get()->request_id());
      WriteAll(fd, b.data(), b.size());
    }
  });
  ClientOptions o;
  o.token = "s3cret";
  auto c = MustConnect(server.port(), o);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->role(), "write");
  EXPECT_EQ(c->server_protocol_version(), kProtocolVersion);
  EXPECT_TRUE(c->Ping().ok());
}

TEST(NetClient, RefusedHelloFailsConnectWithServerMessage) {
  FakeServer server([](int fd) {
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Error(r.get()->request_id(), fb::ErrorCode_Unauthenticated, "unknown token");
    WriteAll(fd, b.data(), b.size());
  });
  auto c = Client::Connect("127.0.0.1", server.port());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("Unauthenticated: unknown token"), std::string::npos)
      << c.status().message();
}

TEST(NetClient, ConnectToClosedPortNamesAddress) {
  // Bind and close a socket to get a port nobody listens on.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  auto c = Client::Connect("127.0.0.1", ntohs(a.sin_port));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kIOError);
  EXPECT_NE(c.status().message().find("127.0.0.1:" + std::to_string(ntohs(a.sin_port))),
            std::string::npos);
}

TEST(NetClient, UnknownHostIsAnError) {
  auto c = Client::Connect("no-such-host.invalid", 1);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("no-such-host.invalid"), std::string::npos);
}

TEST(NetClient, PipelinedRequestsCompleteInOrder) {
  constexpr int kRequests = 3000;
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    // Read everything first, then answer: the client must not deadlock
    // while it has requests queued.
    std::vector<uint64_t> ids;
    Received r;
    for (int i = 0; i < kRequests && ReadRequest(fd, &r); ++i) ids.push_back(r.get()->request_id());
    std::vector<uint8_t> all;
    for (uint64_t id : ids) {
      auto b = Pong(id);
      all.insert(all.end(), b.begin(), b.end());
    }
    WriteAll(fd, all.data(), all.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  std::vector<int> order;
  for (int i = 0; i < kRequests; ++i)
    c->SendPing([&order, i](const Status& s, const ReplyView& r) {
      EXPECT_TRUE(s.ok()) << s.ToString();
      EXPECT_TRUE(r && r->body_type() == fb::ResponseBody_Pong);
      order.push_back(i);
    });
  EXPECT_EQ(c->in_flight(), size_t{kRequests});
  ASSERT_TRUE(c->Drain().ok());
  ASSERT_EQ(order.size(), size_t{kRequests});
  for (int i = 0; i < kRequests; ++i) ASSERT_EQ(order[i], i);
  EXPECT_EQ(c->in_flight(), 0u);
}

TEST(NetClient, FuturesBecomeReadyOnDrain) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto a = Pong(r.get()->request_id());
    WriteAll(fd, a.data(), a.size());
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Error(r.get()->request_id(), fb::ErrorCode_NotFound, "no kind 'orc'");
    WriteAll(fd, b.data(), b.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  auto [cb1, f1] = Client::MakeFuture();
  auto [cb2, f2] = Client::MakeFuture();
  c->SendPing(std::move(cb1));
  c->SendListKinds(std::move(cb2));
  ASSERT_TRUE(c->Drain().ok());
  Result<OwnedResponse> r1 = f1.get();
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1.value()->body_type(), fb::ResponseBody_Pong);
  Result<OwnedResponse> r2 = f2.get();
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r2.status().message(), "server: no kind 'orc'");
}

TEST(NetClient, ServerErrorKeepsConnectionUsable) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto a =
        Error(r.get()->request_id(), fb::ErrorCode_PermissionDenied, "role read may not write");
    WriteAll(fd, a.data(), a.size());
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Pong(r.get()->request_id());
    WriteAll(fd, b.data(), b.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  BatchBuilder batch;
  batch.Delete(1);
  auto applied = c->Apply(batch.Finish());
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(applied.status().message(), "server: PermissionDenied: role read may not write");
  EXPECT_FALSE(c->broken());
  EXPECT_TRUE(c->Ping().ok());
}

TEST(NetClient, ResponseWithWrongRequestIdBreaksConnection) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Pong(r.get()->request_id());  // answers the second request first
    WriteAll(fd, b.data(), b.size());
    ReadRequest(fd, &r);  // until the client hangs up
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  std::vector<Status> got;
  for (int i = 0; i < 2; ++i)
    c->SendPing([&](const Status& s, const ReplyView& r) {
      got.push_back(s);
      EXPECT_FALSE(r);
    });
  Status s = c->Drain();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("was next"), std::string::npos) << s.message();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[0].ok());
  EXPECT_FALSE(got[1].ok());
  EXPECT_TRUE(c->broken());
  EXPECT_EQ(c->Ping().code(), StatusCode::kCorruption);  // fails at once, no I/O
}

TEST(NetClient, ErrorWithRequestIdZeroAnswersTheNextRequest) {
  // What a server sends for a frame it could not parse: it cannot trust the
  // id inside, answers in order with id 0, and keeps the connection.
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto a = Error(0, fb::ErrorCode_BadMessage, "not a valid Request");
    WriteAll(fd, a.data(), a.size());
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Pong(r.get()->request_id());
    WriteAll(fd, b.data(), b.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  Status s = c->Ping();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.message(), "server: BadMessage: not a valid Request");
  EXPECT_FALSE(c->broken());
  EXPECT_TRUE(c->Ping().ok());
}

TEST(NetClient, ConnectionLossFailsPendingRequests) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ReadRequest(fd, &r);  // then hang up without answering
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  Status s = c->Ping();
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find("closed the connection"), std::string::npos) << s.message();
  EXPECT_TRUE(c->broken());
  auto st = c->Stats();
  EXPECT_FALSE(st.ok());
}

TEST(NetClient, GarbageResponseIsCorruption) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    std::vector<uint8_t> junk = {0xff, 0xee, 0xdd, 0xcc, 0x01, 0x02, 0x03, 0x04, 0x05};
    std::vector<uint8_t> framed;
    AppendFrame(junk, &framed);
    WriteAll(fd, framed.data(), framed.size());
    ReadRequest(fd, &r);
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  Status s = c->Ping();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("not a valid Response"), std::string::npos) << s.message();
}

TEST(NetClient, ZeroLengthFrameIsCorruption) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    uint8_t zero[4] = {0, 0, 0, 0};
    WriteAll(fd, zero, 4);
    ReadRequest(fd, &r);
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->Ping().code(), StatusCode::kCorruption);
}

TEST(NetClient, OversizedFrameIsRefusedBeforeReadingIt) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    uint8_t header[4];
    EncodeFrameLength(1u << 20, header);
    WriteAll(fd, header, 4);
    ReadRequest(fd, &r);
  });
  ClientOptions o;
  o.max_frame_bytes = 4096;
  auto c = MustConnect(server.port(), o);
  ASSERT_TRUE(c);
  Status s = c->Ping();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("over the limit"), std::string::npos) << s.message();
}

TEST(NetClient, ServerAnnouncedFrameLimitApplies) {
  FakeServer server([](int fd) {
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto hello = Response(r.get()->request_id(), [](flatbuffers::FlatBufferBuilder& f) {
      return std::make_pair(
          fb::ResponseBody_HelloReply,
          fb::CreateHelloReply(f, kProtocolVersion, f.CreateString("admin"), 1000, 10).Union());
    });
    WriteAll(fd, hello.data(), hello.size());
    ASSERT_TRUE(ReadRequest(fd, &r));
    uint8_t header[4];
    EncodeFrameLength(2000, header);  // over the 1,000 bytes the server announced
    WriteAll(fd, header, 4);
    ReadRequest(fd, &r);
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  Status s = c->Ping();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("2000-byte response, over the limit of 1000"), std::string::npos)
      << s.message();
}

TEST(NetClient, ResponseTrickledOneByteAtATime) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Pong(r.get()->request_id());
    for (uint8_t byte : b) {
      WriteAll(fd, &byte, 1);
      std::this_thread::yield();
    }
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->Ping().ok());
}

TEST(NetClient, WrongBodyTypeIsCorruption) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Pong(r.get()->request_id());  // a Pong for a Stats request
    WriteAll(fd, b.data(), b.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  auto st = c->Stats();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("expected StatsReply"), std::string::npos);
}

TEST(NetClient, NoAnswerTimesOut) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ReadRequest(fd, &r);
    ReadRequest(fd, &r);  // blocks until the client gives up and closes
  });
  ClientOptions o;
  o.io_timeout_ms = 100;
  auto c = MustConnect(server.port(), o);
  ASSERT_TRUE(c);
  Status s = c->Ping();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("no response"), std::string::npos) << s.message();
  c.reset();  // closes the socket so the fake's read returns
}

TEST(NetClient, QueryRequestEncodingAndColumnarReply) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    const fb::QueryRequest* q = r.get()->body_as_QueryRequest();
    ASSERT_TRUE(q);
    ASSERT_EQ(q->shape_type(), fb::Shape_Radius);
    EXPECT_EQ(q->shape_as_Radius()->radius(), 50.0);
    EXPECT_TRUE(q->shape_as_Radius()->order_by_distance());
    EXPECT_EQ(q->kind()->str(), "player");
    ASSERT_EQ(q->where()->size(), 1u);
    EXPECT_EQ(q->where()->Get(0)->op(), fb::CompareOp_Lt);
    EXPECT_EQ(q->where()->Get(0)->value()->i(), 50);
    EXPECT_EQ(q->columns()->Get(0)->str(), "hp");
    EXPECT_EQ(q->limit(), 10u);
    auto b = Response(r.get()->request_id(), [](flatbuffers::FlatBufferBuilder& f) {
      std::vector<uint64_t> ids = {7, 9};
      std::vector<double> xs = {1, 2}, ys = {3, 4}, zs = {0, 0}, ds = {0.5, 1.5};
      std::vector<int32_t> hp = {10, 20};
      std::vector<uint16_t> kinds = {0, 0};
      auto col = fb::CreateResultColumnDirect(f, "hp", worlddb::fb::ColumnType_I32, nullptr, &hp);
      std::vector<flatbuffers::Offset<fb::ResultColumn>> cols = {col};
      auto reply = fb::CreateQueryReplyDirect(f, 2, false, &ids, &kinds, &xs, &ys, &zs, &ds, &cols);
      return std::make_pair(fb::ResponseBody_QueryReply, reply.Union());
    });
    WriteAll(fd, b.data(), b.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  worlddb::Query q = worlddb::Query::Circle(1, 2, 50);
  q.kind = "player";
  q.order_by_distance = true;
  q.where = {{"hp", CompareOp::kLt, int32_t{50}}};
  q.columns = {"hp"};
  q.limit = 10;
  auto r = c->Query(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->count, 2u);
  EXPECT_EQ(r->ids, (std::vector<uint64_t>{7, 9}));
  EXPECT_EQ(r->y, (std::vector<double>{3, 4}));
  EXPECT_EQ(r->distance, (std::vector<double>{0.5, 1.5}));
  ASSERT_EQ(r->columns.size(), 1u);
  EXPECT_EQ(std::get<std::vector<int32_t>>(r->columns[0].data), (std::vector<int32_t>{10, 20}));
}

TEST(NetClient, QueryReplyWithRaggedColumnsIsCorruption) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    auto b = Response(r.get()->request_id(), [](flatbuffers::FlatBufferBuilder& f) {
      std::vector<uint64_t> ids = {7, 9};
      std::vector<double> xs = {1};  // one x for two rows
      auto reply = fb::CreateQueryReplyDirect(f, 2, false, &ids, nullptr, &xs);
      return std::make_pair(fb::ResponseBody_QueryReply, reply.Union());
    });
    WriteAll(fd, b.data(), b.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  auto r = c->Rect({0, 0, 10, 10});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("x has 1 values for 2 rows"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(c->broken());  // the frame was fine, only its content was not
}

TEST(NetClient, ApplyCarriesBatchBytesAligned) {
  FakeServer server([](int fd) {
    ASSERT_TRUE(ServeHello(fd));
    Received r;
    ASSERT_TRUE(ReadRequest(fd, &r));
    const fb::ApplyBatch* a = r.get()->body_as_ApplyBatch();
    ASSERT_TRUE(a && a->batch());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a->batch()->data()) % 8, 0u);
    const worlddb::fb::WriteBatch* wb = a->batch_nested_root();
    ASSERT_TRUE(wb && wb->moves());
    EXPECT_EQ(wb->moves()->Get(0)->id(), 42u);
    auto b = Response(r.get()->request_id(), [](flatbuffers::FlatBufferBuilder& f) {
      return std::make_pair(fb::ResponseBody_ApplyReply,
                            fb::CreateApplyReply(f, 0, 0, 1, 0, 0, 0, 17).Union());
    });
    WriteAll(fd, b.data(), b.size());
  });
  auto c = MustConnect(server.port());
  ASSERT_TRUE(c);
  BatchBuilder batch;
  batch.Move(42, 1, 2);
  auto r = c->Apply(batch.Finish());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->moved, 1u);
  EXPECT_EQ(r->ticket, 17u);
}

}  // namespace
}  // namespace worlddb::net
