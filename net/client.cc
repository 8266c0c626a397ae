#include "net/client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <variant>

#include "engine/batch_builder.h"
#include "engine/schema_codec.h"
#include "net/frame.h"

namespace worlddb::net {
namespace {

constexpr size_t kMinReadBuffer = size_t{256} << 10;
// Requests are written once this many bytes are queued (and on Poll/Drain).
constexpr size_t kFlushBytes = size_t{256} << 10;
// Response size limit until the server's HelloReply names its own.
constexpr size_t kFrameLimitBeforeHello = size_t{64} << 20;

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

StatusCode ToStatusCode(fb::ErrorCode code) {
  switch (code) {
    case fb::ErrorCode_InvalidArgument:
    case fb::ErrorCode_Unauthenticated:
    case fb::ErrorCode_PermissionDenied:
    case fb::ErrorCode_UnsupportedVersion:
      return StatusCode::kInvalidArgument;
    case fb::ErrorCode_NotFound:
      return StatusCode::kNotFound;
    case fb::ErrorCode_AlreadyExists:
      return StatusCode::kAlreadyExists;
    case fb::ErrorCode_ResourceExhausted:
    case fb::ErrorCode_TooManyRows:
      return StatusCode::kResourceExhausted;
    case fb::ErrorCode_Corruption:
    case fb::ErrorCode_BadMessage:
      return StatusCode::kCorruption;
    case fb::ErrorCode_IOError:
      return StatusCode::kIOError;
    default:
      return StatusCode::kUnavailable;
  }
}

Status MakeStatus(StatusCode code, std::string msg) {
  switch (code) {
    case StatusCode::kOk:
      return Status::Ok();
    case StatusCode::kInvalidArgument:
      return Status::InvalidArgument(std::move(msg));
    case StatusCode::kNotFound:
      return Status::NotFound(std::move(msg));
    case StatusCode::kAlreadyExists:
      return Status::AlreadyExists(std::move(msg));
    case StatusCode::kResourceExhausted:
      return Status::ResourceExhausted(std::move(msg));
    case StatusCode::kCorruption:
      return Status::Corruption(std::move(msg));
    case StatusCode::kIOError:
      return Status::IOError(std::move(msg));
    case StatusCode::kUnavailable:
      return Status::Unavailable(std::move(msg));
  }
  return Status::Unavailable(std::move(msg));
}

Status WrongBody(const fb::Response& r, const char* expected) {
  return Status::Corruption(std::string("server answered with ") +
                            fb::EnumNameResponseBody(r.body_type()) + ", expected " + expected);
}

template <class T>
bool SizeIs(const flatbuffers::Vector<T>* v, size_t n) {
  return v == nullptr ? n == 0 : v->size() == n;
}

template <class T>
void CopyVector(const flatbuffers::Vector<T>* v, std::vector<T>* out) {
  out->clear();
  if (v) out->assign(v->begin(), v->end());
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Predicate>>> EncodeWhere(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<Predicate>& where) {
  if (where.empty()) return 0;
  std::vector<flatbuffers::Offset<fb::Predicate>> out;
  out.reserve(where.size());
  for (const Predicate& p : where) {
    auto column = fbb.CreateString(p.column);
    auto cell = EncodeCell(fbb, p.column, p.value);
    out.push_back(fb::CreatePredicate(fbb, column, static_cast<fb::CompareOp>(p.op), cell));
  }
  return fbb.CreateVector(out);
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> EncodeNames(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<std::string>& names) {
  if (names.empty()) return 0;
  return fbb.CreateVectorOfStrings(names);
}

// Nested FlatBuffers (write batches, schema changes) are placed 8-byte aligned
// so that the server can read them in place.
flatbuffers::Offset<flatbuffers::Vector<uint8_t>> EncodeNested(flatbuffers::FlatBufferBuilder& fbb,
                                                               std::span<const uint8_t> bytes) {
  fbb.ForceVectorAlignment(bytes.size(), 1, 8);
  return fbb.CreateVector(bytes.data(), bytes.size());
}

}  // namespace

const char* ErrorCodeName(fb::ErrorCode code) {
  const char* name = fb::EnumNameErrorCode(code);
  return (name && *name) ? name : "UnknownError";
}

Status ResponseStatus(const fb::Response& r) {
  if (r.body_type() == fb::ResponseBody_NONE)
    return Status::Corruption("server sent a response without a body");
  if (r.body_type() != fb::ResponseBody_Error) return Status::Ok();
  const fb::Error* e = r.body_as_Error();
  std::string msg = e->message() ? e->message()->str() : std::string();
  const auto code = static_cast<uint16_t>(e->code());
  if (code == fb::ErrorCode_Ok) return Status::Corruption("server sent an error with code Ok");
  // Codes 1..7 are StatusCode; the protocol's own ones are named in the message.
  if (code >= 100) msg = std::string(ErrorCodeName(e->code())) + ": " + msg;
  return MakeStatus(ToStatusCode(e->code()), "server: " + msg);
}

OwnedResponse::OwnedResponse(const uint8_t* data, size_t size) : storage_((size + 7) / 8) {
  if (size) std::memcpy(storage_.data(), data, size);
}

Result<Value> DecodeCell(const worlddb::fb::Cell& cell) {
  switch (cell.type()) {
    case worlddb::fb::ColumnType_Bool:
      return Value(cell.i() != 0);
    case worlddb::fb::ColumnType_I32:
      if (cell.i() < INT32_MIN || cell.i() > INT32_MAX)
        return Status::Corruption("an i32 value does not fit in 32 bits");
      return Value(static_cast<int32_t>(cell.i()));
    case worlddb::fb::ColumnType_I64:
      return Value(cell.i());
    case worlddb::fb::ColumnType_F32:
      return Value(static_cast<float>(cell.f()));
    case worlddb::fb::ColumnType_F64:
      return Value(cell.f());
    case worlddb::fb::ColumnType_String:
      return Value(cell.s() ? cell.s()->str() : std::string());
  }
  return Status::Corruption("unknown value type " + std::to_string(int(cell.type())));
}

Status DecodeQueryReply(const fb::QueryReply& reply, QueryResult* out,
                        std::vector<uint64_t>* missing) {
  out->Clear();
  out->count = reply.count();
  out->truncated = reply.truncated();
  CopyVector(reply.ids(), &out->ids);
  const size_t n = out->ids.size();
  // Positions, kinds and distances are either absent or one per row.
  auto check = [&](auto* v, const char* what) -> Status {
    if (v && v->size() != n)
      return Status::Corruption(std::string("query reply: ") + what + " has " +
                                std::to_string(v->size()) + " values for " + std::to_string(n) +
                                " rows");
    return Status::Ok();
  };
  WORLDDB_RETURN_IF_ERROR(check(reply.kinds(), "kinds"));
  WORLDDB_RETURN_IF_ERROR(check(reply.x(), "x"));
  WORLDDB_RETURN_IF_ERROR(check(reply.y(), "y"));
  WORLDDB_RETURN_IF_ERROR(check(reply.z(), "z"));
  WORLDDB_RETURN_IF_ERROR(check(reply.distance(), "distance"));
  CopyVector(reply.kinds(), &out->kinds);
  CopyVector(reply.x(), &out->x);
  CopyVector(reply.y(), &out->y);
  CopyVector(reply.z(), &out->z);
  CopyVector(reply.distance(), &out->distance);
  if (reply.columns()) {
    for (const fb::ResultColumn* c : *reply.columns()) {
      ResultColumn col;
      col.name = c->name() ? c->name()->str() : std::string();
      if (c->type() > worlddb::fb::ColumnType_String)
        return Status::Corruption("query reply: column '" + col.name + "' has an unknown type");
      col.type = static_cast<ColumnType>(c->type());
      bool sized = false;
      switch (col.type) {
        case ColumnType::kBool: {
          std::vector<uint8_t> v;
          CopyVector(c->b(), &v);
          sized = SizeIs(c->b(), n);
          col.data = std::move(v);
          break;
        }
        case ColumnType::kI32: {
          std::vector<int32_t> v;
          CopyVector(c->i32(), &v);
          sized = SizeIs(c->i32(), n);
          col.data = std::move(v);
          break;
        }
        case ColumnType::kI64: {
          std::vector<int64_t> v;
          CopyVector(c->i64(), &v);
          sized = SizeIs(c->i64(), n);
          col.data = std::move(v);
          break;
        }
        case ColumnType::kF32: {
          std::vector<float> v;
          CopyVector(c->f32(), &v);
          sized = SizeIs(c->f32(), n);
          col.data = std::move(v);
          break;
        }
        case ColumnType::kF64: {
          std::vector<double> v;
          CopyVector(c->f64(), &v);
          sized = SizeIs(c->f64(), n);
          col.data = std::move(v);
          break;
        }
        case ColumnType::kString: {
          std::vector<std::string> v;
          if (c->s())
            for (const flatbuffers::String* s : *c->s()) v.push_back(s->str());
          sized = SizeIs(c->s(), n);
          col.data = std::move(v);
          break;
        }
      }
      if (!sized)
        return Status::Corruption("query reply: column '" + col.name +
                                  "' does not have one value per row");
      out->columns.push_back(std::move(col));
    }
  }
  if (missing) CopyVector(reply.missing(), missing);
  return Status::Ok();
}

Status DecodeQueryBatchReply(const fb::QueryBatchReply& reply, std::vector<QueryResult>* out) {
  out->clear();
  const size_t n = reply.rows() ? reply.rows()->size() : 0;
  if ((reply.counts() ? reply.counts()->size() : 0) != n ||
      (reply.truncated() ? reply.truncated()->size() : 0) != n) {
    return Status::Corruption("query batch reply: rows, counts and truncated differ in length");
  }
  QueryResult all;
  if (reply.result()) WORLDDB_RETURN_IF_ERROR(DecodeQueryReply(*reply.result(), &all));
  uint64_t total = 0;
  for (uint32_t i = 0; i < n; ++i) total += reply.rows()->Get(i);
  if (total != all.rows()) {
    return Status::Corruption("query batch reply: the queries' row counts add up to " +
                              std::to_string(total) + ", the result holds " +
                              std::to_string(all.rows()) + " rows");
  }
  out->resize(n);
  size_t off = 0;
  for (uint32_t i = 0; i < n; ++i) {
    QueryResult& r = (*out)[i];
    const size_t m = reply.rows()->Get(i);
    r.count = reply.counts()->Get(i);
    r.truncated = reply.truncated()->Get(i) != 0;
    auto slice = [&](const auto& from, auto* to) {
      if (!from.empty()) to->assign(from.begin() + off, from.begin() + off + m);
    };
    slice(all.ids, &r.ids);
    slice(all.kinds, &r.kinds);
    slice(all.x, &r.x);
    slice(all.y, &r.y);
    slice(all.z, &r.z);
    slice(all.distance, &r.distance);
    for (const ResultColumn& c : all.columns) {
      ResultColumn col{c.name, c.type, {}};
      col.data = std::visit(
          [&](const auto& v) -> ColumnData {
            return std::decay_t<decltype(v)>(v.begin() + off, v.begin() + off + m);
          },
          c.data);
      r.columns.push_back(std::move(col));
    }
    off += m;
  }
  return Status::Ok();
}

Result<KindsInfo> DecodeKindsReply(const fb::KindsReply& reply) {
  KindsInfo info;
  info.schema_version = reply.schema_version();
  if (!reply.kinds()) return info;
  for (const fb::KindInfo* k : *reply.kinds()) {
    KindDef def;
    def.name = k->name() ? k->name()->str() : std::string();
    if (k->columns()) {
      for (const worlddb::fb::ColumnDef* c : *k->columns()) {
        ColumnDef col;
        col.name = c->name()->str();
        if (c->type() > worlddb::fb::ColumnType_String)
          return Status::Corruption("kinds reply: column '" + col.name + "' has an unknown type");
        col.type = static_cast<ColumnType>(c->type());
        Result<Value> v = DecodeCell(*c->default_value());
        if (!v.ok()) return v.status();
        col.default_value = std::move(v.value());
        col.max_length = c->max_length();
        def.columns.push_back(std::move(col));
      }
    }
    info.kinds.push_back(std::move(def));
  }
  return info;
}

// ---- Connection ----

Client::Client(int fd, const ClientOptions& options) : fd_(fd), options_(options) {
  in_.resize(kMinReadBuffer);
  max_frame_bytes_ = options.max_frame_bytes ? options.max_frame_bytes : kFrameLimitBeforeHello;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<Client>> Client::Connect(const std::string& host, uint16_t port,
                                                const ClientOptions& options) {
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addrs);
  if (gai != 0)
    return Status::IOError("cannot resolve host '" + host + "': " + ::gai_strerror(gai));
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* a = addrs; a != nullptr && fd < 0; a = a->ai_next) {
    int s = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (s < 0) {
      last_error = Errno("socket");
      continue;
    }
    int rc = ::connect(s, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      rc = ::poll(&p, 1, options.connect_timeout_ms);
      if (rc == 0) {
        last_error =
            "connect timed out after " + std::to_string(options.connect_timeout_ms) + " ms";
        ::close(s);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
      if (rc < 0) err = errno;
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last_error = Errno("connect");
      ::close(s);
      continue;
    }
    int one = 1;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd = s;
  }
  ::freeaddrinfo(addrs);
  if (fd < 0) return Status::IOError("cannot connect to " + where + ": " + last_error);
  std::unique_ptr<Client> c(new Client(fd, options));
  Status s = c->Hello();
  if (!s.ok()) return MakeStatus(s.code(), "hello to " + where + " failed: " + s.message());
  return c;
}

Status Client::Hello() {
  const int saved = options_.io_timeout_ms;
  options_.io_timeout_ms = options_.connect_timeout_ms;
  Status s = Call(
      [&](ReplyCallback done) {
        auto& fbb = StartRequest();
        auto token = options_.token.empty() ? 0 : fbb.CreateString(options_.token);
        FinishRequest(fb::RequestBody_Hello, fb::CreateHello(fbb, kProtocolVersion, token).Union(),
                      std::move(done));
      },
      [&](const fb::Response& r) {
        const fb::HelloReply* h = r.body_as_HelloReply();
        if (!h) return WrongBody(r, "HelloReply");
        server_version_ = h->protocol_version();
        if (options_.max_frame_bytes == 0 && h->max_frame_bytes() > 0)
          max_frame_bytes_ =
              static_cast<size_t>(std::min<uint64_t>(h->max_frame_bytes(), uint64_t{1} << 31));
        role_ = h->role() ? h->role()->str() : std::string();
        return Status::Ok();
      });
  options_.io_timeout_ms = saved;
  return s;
}

flatbuffers::FlatBufferBuilder& Client::StartRequest() {
  fbb_.Clear();
  return fbb_;
}

void Client::FinishRequest(fb::RequestBody type, flatbuffers::Offset<void> body,
                           ReplyCallback done) {
  const uint64_t id = next_id_++;
  fbb_.Finish(fb::CreateRequest(fbb_, id, type, body));
  pending_.push_back({id, std::move(done)});
  if (broken()) return;  // failed at the next Poll/Drain
  AppendFrame({fbb_.GetBufferPointer(), fbb_.GetSize()}, &out_);
  if (out_.size() - out_pos_ >= kFlushBytes) {
    Status s = Flush(false);
    (void)s;  // a failure broke the connection; the next Poll reports it
  }
}

void Client::Break(Status why) {
  if (broken_.ok()) broken_ = std::move(why);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  std::deque<Pending> failed;
  failed.swap(pending_);
  for (Pending& p : failed) p.done(broken_, ReplyView{});
}

Status Client::Flush(bool wait) {
  while (out_pos_ < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
    if (n > 0) {
      out_pos_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait) break;
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, options_.io_timeout_ms > 0 ? options_.io_timeout_ms : -1) == 0) {
        Break(Status::Unavailable("server did not accept data for " +
                                  std::to_string(options_.io_timeout_ms) + " ms"));
        return broken_;
      }
      continue;
    }
    Break(Status::IOError("connection lost while sending: " + std::string(std::strerror(errno))));
    return broken_;
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  return Status::Ok();
}

Status Client::ReadAvailable(bool* got_any) {
  for (;;) {
    // Make room: drop parsed bytes, then grow for a frame larger than the buffer.
    if (in_pos_ > 0 && (in_end_ == in_.size() || in_pos_ == in_end_)) {
      std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
      in_end_ -= in_pos_;
      in_pos_ = 0;
    }
    if (in_end_ == in_.size()) in_.resize(in_.size() * 2);
    const size_t room = in_.size() - in_end_;
    ssize_t n = ::recv(fd_, in_.data() + in_end_, room, 0);
    if (n == 0) {
      Break(Status::IOError("server closed the connection"));
      return broken_;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Ok();
      Break(
          Status::IOError("connection lost while receiving: " + std::string(std::strerror(errno))));
      return broken_;
    }
    in_end_ += static_cast<size_t>(n);
    for (;;) {
      FrameView f = PeekFrame(in_.data() + in_pos_, in_end_ - in_pos_, max_frame_bytes_);
      if (f.state == FrameView::State::kTooLarge) {
        Break(Status::Corruption("server announced a " + std::to_string(f.payload_bytes) +
                                 "-byte response, over the limit of " +
                                 std::to_string(max_frame_bytes_)));
        return broken_;
      }
      if (f.state == FrameView::State::kNeedMore) {
        if (in_end_ - in_pos_ >= kFrameHeaderBytes && f.frame_bytes() > in_.size()) {
          // Grow once to hold the whole frame.
          std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
          in_end_ -= in_pos_;
          in_pos_ = 0;
          in_.resize(f.frame_bytes());
        }
        break;
      }
      Deliver(in_.data() + in_pos_ + kFrameHeaderBytes, f.payload_bytes);
      *got_any = true;
      in_pos_ += f.frame_bytes();
      if (broken()) return broken_;
    }
    if (static_cast<size_t>(n) < room) return Status::Ok();  // drained the socket
  }
}

void Client::Deliver(const uint8_t* payload, size_t size) {
  // FlatBuffers reads scalars in place: a payload not 8-byte aligned in the
  // receive buffer is copied first.
  if (reinterpret_cast<uintptr_t>(payload) % 8 != 0) {
    aligned_.resize((size + 7) / 8);
    if (size) std::memcpy(aligned_.data(), payload, size);
    payload = reinterpret_cast<const uint8_t*>(aligned_.data());
  }
  flatbuffers::Verifier verifier(payload, size, kVerifierMaxDepth, uint32_t{1} << 26);
  if (size < sizeof(flatbuffers::uoffset_t) || !verifier.VerifyBuffer<fb::Response>(nullptr)) {
    Break(Status::Corruption("server sent a " + std::to_string(size) +
                             "-byte response that is not a valid Response"));
    return;
  }
  const fb::Response* r = flatbuffers::GetRoot<fb::Response>(payload);
  if (pending_.empty()) {
    Break(Status::Corruption("server sent a response (request id " +
                             std::to_string(r->request_id()) + ") with no request in flight"));
    return;
  }
  // The server answers every frame in order; one it could not parse gets an
  // error with request id 0 (it cannot trust the id inside), which therefore
  // answers the next request. Any other id out of order means replies can no
  // longer be matched.
  const bool unparsed = r->request_id() == 0 && r->body_type() == fb::ResponseBody_Error;
  if (r->request_id() != pending_.front().request_id && !unparsed) {
    Break(Status::Corruption("server answered request " + std::to_string(r->request_id()) +
                             " but request " + std::to_string(pending_.front().request_id) +
                             " was next"));
    return;
  }
  Pending p = std::move(pending_.front());
  pending_.pop_front();
  p.done(ResponseStatus(*r), ReplyView{r, {payload, size}});
}

Status Client::Poll(int timeout_ms) {
  if (broken()) {
    Break(broken_);
    return broken_;
  }
  WORLDDB_RETURN_IF_ERROR(Flush(false));
  bool got = false;
  WORLDDB_RETURN_IF_ERROR(ReadAvailable(&got));
  if (got || timeout_ms == 0 || (pending_.empty() && out_.empty())) return Status::Ok();
  pollfd p{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
  if (::poll(&p, 1, timeout_ms) < 0 && errno != EINTR) {
    Break(Status::IOError(Errno("poll")));
    return broken_;
  }
  WORLDDB_RETURN_IF_ERROR(Flush(false));
  return ReadAvailable(&got);
}

Status Client::Drain() {
  using Clock = std::chrono::steady_clock;
  auto last_progress = Clock::now();
  while (!pending_.empty() || broken()) {
    if (broken()) {
      Break(broken_);
      return broken_;
    }
    const size_t before = pending_.size();
    const size_t out_before = out_.size() - out_pos_;
    WORLDDB_RETURN_IF_ERROR(Poll(options_.io_timeout_ms > 0 ? options_.io_timeout_ms : -1));
    if (pending_.size() != before || out_.size() - out_pos_ != out_before) {
      last_progress = Clock::now();
    } else if (options_.io_timeout_ms > 0 &&
               Clock::now() - last_progress >= std::chrono::milliseconds(options_.io_timeout_ms)) {
      Break(Status::Unavailable("no response from the server within " +
                                std::to_string(options_.io_timeout_ms) + " ms"));
      return broken_;
    }
  }
  return Status::Ok();
}

Status Client::Call(const std::function<void(ReplyCallback)>& send,
                    const std::function<Status(const fb::Response&)>& on_reply) {
  Status result = Status::Unavailable("no answer");
  bool done = false;
  send([&](const Status& s, const ReplyView& r) {
    done = true;
    result = s.ok() ? on_reply(*r.response) : s;
  });
  // Wait for this request only; the earlier ones complete on the way.
  Status s = Flush(true);
  while (s.ok() && !done) s = Drain();
  return result;
}

Status Client::SendRawForTest(std::span<const uint8_t> bytes) {
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  return Flush(true);
}

std::pair<ReplyCallback, std::future<Result<OwnedResponse>>> Client::MakeFuture() {
  auto promise = std::make_shared<std::promise<Result<OwnedResponse>>>();
  auto future = promise->get_future();
  ReplyCallback cb = [promise](const Status& s, const ReplyView& r) {
    if (!s.ok()) {
      promise->set_value(s);
    } else {
      promise->set_value(OwnedResponse(r.bytes.data(), r.bytes.size()));
    }
  };
  return {std::move(cb), std::move(future)};
}

// ---- Requests ----

void Client::SendPing(ReplyCallback done) {
  auto& fbb = StartRequest();
  FinishRequest(fb::RequestBody_Ping, fb::CreatePing(fbb).Union(), std::move(done));
}

void Client::SendApply(std::span<const uint8_t> batch, Ack ack, ReplyCallback done) {
  auto& fbb = StartRequest();
  auto bytes = EncodeNested(fbb, batch);
  FinishRequest(fb::RequestBody_ApplyBatch,
                fb::CreateApplyBatch(fbb, bytes, static_cast<uint8_t>(ack)).Union(),
                std::move(done));
}

void Client::SendSchemaChange(std::span<const uint8_t> change, ReplyCallback done) {
  auto& fbb = StartRequest();
  auto bytes = EncodeNested(fbb, change);
  FinishRequest(fb::RequestBody_SchemaChangeRequest,
                fb::CreateSchemaChangeRequest(fbb, bytes).Union(), std::move(done));
}

namespace {

flatbuffers::Offset<fb::QueryRequest> EncodeQuery(flatbuffers::FlatBufferBuilder& fbb,
                                                  const worlddb::Query& q) {
  flatbuffers::Offset<void> shape;
  fb::Shape shape_type = fb::Shape_NONE;
  switch (q.shape) {
    case Shape::kCircle:
      shape = fb::CreateRadius(fbb, q.x, q.y, q.radius, q.order_by_distance).Union();
      shape_type = fb::Shape_Radius;
      break;
    case Shape::kRect:
      shape =
          fb::CreateRectangle(fbb, q.rect.min_x, q.rect.min_y, q.rect.max_x, q.rect.max_y).Union();
      shape_type = fb::Shape_Rectangle;
      break;
    case Shape::kNearest:
      shape = fb::CreateNearest(fbb, q.x, q.y, q.k).Union();
      shape_type = fb::Shape_Nearest;
      break;
  }
  auto kind = q.kind.empty() ? 0 : fbb.CreateString(q.kind);
  auto where = EncodeWhere(fbb, q.where);
  auto columns = EncodeNames(fbb, q.columns);
  return fb::CreateQueryRequest(fbb, shape_type, shape, kind, where, columns, q.limit,
                                q.count_only);
}

}  // namespace

void Client::SendQuery(const worlddb::Query& q, ReplyCallback done) {
  auto& fbb = StartRequest();
  auto body = EncodeQuery(fbb, q);
  FinishRequest(fb::RequestBody_QueryRequest, body.Union(), std::move(done));
}

void Client::SendQueryBatch(const worlddb::Query& q, std::span<const double> x,
                            std::span<const double> y, ReplyCallback done) {
  auto& fbb = StartRequest();
  auto xs = fbb.CreateVector(x.data(), x.size());
  auto ys = fbb.CreateVector(y.data(), y.size());
  auto query = EncodeQuery(fbb, q);
  FinishRequest(fb::RequestBody_QueryBatch, fb::CreateQueryBatch(fbb, query, xs, ys).Union(),
                std::move(done));
}

void Client::SendGetByIds(const std::vector<uint64_t>& ids, const std::string& kind,
                          const std::vector<std::string>& columns, ReplyCallback done) {
  auto& fbb = StartRequest();
  auto id_vec = fbb.CreateVector(ids);
  auto k = kind.empty() ? 0 : fbb.CreateString(kind);
  auto cols = EncodeNames(fbb, columns);
  FinishRequest(fb::RequestBody_GetByIds, fb::CreateGetByIds(fbb, id_vec, k, cols).Union(),
                std::move(done));
}

void Client::SendDensity(const DensityQuery& q, ReplyCallback done) {
  auto& fbb = StartRequest();
  auto kind = q.kind.empty() ? 0 : fbb.CreateString(q.kind);
  auto where = EncodeWhere(fbb, q.where);
  auto body = fb::CreateDensityRequest(fbb, q.rect.min_x, q.rect.min_y, q.rect.max_x, q.rect.max_y,
                                       q.nx, q.ny, kind, where);
  FinishRequest(fb::RequestBody_DensityRequest, body.Union(), std::move(done));
}

void Client::SendListKinds(ReplyCallback done) {
  auto& fbb = StartRequest();
  FinishRequest(fb::RequestBody_ListKinds, fb::CreateListKinds(fbb).Union(), std::move(done));
}

void Client::SendStats(ReplyCallback done) {
  auto& fbb = StartRequest();
  FinishRequest(fb::RequestBody_StatsRequest, fb::CreateStatsRequest(fbb).Union(), std::move(done));
}

void Client::SendSnapshot(ReplyCallback done) {
  auto& fbb = StartRequest();
  FinishRequest(fb::RequestBody_Snapshot, fb::CreateSnapshot(fbb).Union(), std::move(done));
}

// ---- Synchronous calls ----

Status Client::Ping() {
  return Call(
      [&](ReplyCallback d) { SendPing(std::move(d)); },
      [](const fb::Response& r) { return r.body_as_Pong() ? Status::Ok() : WrongBody(r, "Pong"); });
}

Result<ApplyResult> Client::Apply(std::span<const uint8_t> batch, Ack ack) {
  ApplyResult out;
  Status s = Call([&](ReplyCallback d) { SendApply(batch, ack, std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::ApplyReply* a = r.body_as_ApplyReply();
                    if (!a) return WrongBody(r, "ApplyReply");
                    out = {a->created(), a->replaced(),       a->moved(), a->set(),
                           a->deleted(), a->delete_missing(), a->ticket()};
                    return Status::Ok();
                  });
  if (!s.ok()) return s;
  return out;
}

Result<QueryResult> Client::GetByIds(const std::vector<uint64_t>& ids, const std::string& kind,
                                     const std::vector<std::string>& columns,
                                     std::vector<uint64_t>* missing) {
  QueryResult out;
  Status s = Call([&](ReplyCallback d) { SendGetByIds(ids, kind, columns, std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::QueryReply* q = r.body_as_QueryReply();
                    if (!q) return WrongBody(r, "QueryReply");
                    return DecodeQueryReply(*q, &out, missing);
                  });
  if (!s.ok()) return s;
  return out;
}

Result<QueryResult> Client::Query(const worlddb::Query& query) {
  QueryResult out;
  Status s = Call([&](ReplyCallback d) { SendQuery(query, std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::QueryReply* q = r.body_as_QueryReply();
                    if (!q) return WrongBody(r, "QueryReply");
                    return DecodeQueryReply(*q, &out);
                  });
  if (!s.ok()) return s;
  return out;
}

Result<std::vector<QueryResult>> Client::QueryBatch(const worlddb::Query& q,
                                                    std::span<const double> x,
                                                    std::span<const double> y) {
  std::vector<QueryResult> out;
  Status s = Call([&](ReplyCallback d) { SendQueryBatch(q, x, y, std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::QueryBatchReply* b = r.body_as_QueryBatchReply();
                    if (!b) return WrongBody(r, "QueryBatchReply");
                    return DecodeQueryBatchReply(*b, &out);
                  });
  if (!s.ok()) return s;
  return out;
}

Result<uint64_t> Client::Count(const worlddb::Query& query) {
  worlddb::Query q = query;
  q.count_only = true;
  uint64_t count = 0;
  Status s = Call([&](ReplyCallback d) { SendQuery(q, std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::QueryReply* reply = r.body_as_QueryReply();
                    if (!reply) return WrongBody(r, "QueryReply");
                    count = reply->count();
                    return Status::Ok();
                  });
  if (!s.ok()) return s;
  return count;
}

Result<DensityResult> Client::Density(const DensityQuery& query) {
  DensityResult out;
  Status s = Call([&](ReplyCallback d) { SendDensity(query, std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::DensityReply* reply = r.body_as_DensityReply();
                    if (!reply) return WrongBody(r, "DensityReply");
                    out.nx = reply->nx();
                    out.ny = reply->ny();
                    out.total = reply->total();
                    if (!SizeIs(reply->counts(), uint64_t{out.nx} * out.ny))
                      return Status::Corruption("density reply: counts do not fill the grid");
                    CopyVector(reply->counts(), &out.counts);
                    return Status::Ok();
                  });
  if (!s.ok()) return s;
  return out;
}

Result<KindsInfo> Client::ListKinds() {
  KindsInfo out;
  Status s = Call([&](ReplyCallback d) { SendListKinds(std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::KindsReply* reply = r.body_as_KindsReply();
                    if (!reply) return WrongBody(r, "KindsReply");
                    Result<KindsInfo> k = DecodeKindsReply(*reply);
                    if (!k.ok()) return k.status();
                    out = std::move(k.value());
                    return Status::Ok();
                  });
  if (!s.ok()) return s;
  return out;
}

Result<uint64_t> Client::ChangeSchema(std::span<const uint8_t> change) {
  uint64_t version = 0;
  Status s = Call([&](ReplyCallback d) { SendSchemaChange(change, std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::SchemaReply* reply = r.body_as_SchemaReply();
                    if (!reply) return WrongBody(r, "SchemaReply");
                    version = reply->schema_version();
                    return Status::Ok();
                  });
  if (!s.ok()) return s;
  return version;
}

Result<uint64_t> Client::CreateKind(const KindDef& def) {
  std::vector<uint8_t> bytes = EncodeCreateKind(def);
  return ChangeSchema(bytes);
}

Result<uint64_t> Client::AlterKind(const std::string& kind, const std::vector<ColumnDef>& add,
                                   const std::vector<std::string>& drop) {
  std::vector<uint8_t> bytes = EncodeAlterKind(kind, add, drop);
  return ChangeSchema(bytes);
}

Result<ServerStats> Client::Stats() {
  ServerStats out;
  Status s = Call([&](ReplyCallback d) { SendStats(std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::StatsReply* st = r.body_as_StatsReply();
                    if (!st) return WrongBody(r, "StatsReply");
                    out.entities = st->entities();
                    if (st->per_kind())
                      for (const fb::KindCount* k : *st->per_kind())
                        out.per_kind.emplace_back(k->kind() ? k->kind()->str() : "", k->entities());
                    out.schema_version = st->schema_version();
                    out.last_ticket = st->last_ticket();
                    out.batches_applied = st->batches_applied();
                    out.batches_refused = st->batches_refused();
                    out.operations_applied = st->operations_applied();
                    out.queries = st->queries();
                    out.connections = st->connections();
                    out.writable = st->writable();
                    if (st->not_writable_reason())
                      out.not_writable_reason = st->not_writable_reason()->str();
                    out.memory_bytes = st->memory_bytes();
                    out.uptime_ms = st->uptime_ms();
                    if (st->durability()) out.durability = st->durability()->str();
                    out.log_last_lsn = st->log_last_lsn();
                    out.log_durable_lsn = st->log_durable_lsn();
                    out.log_bytes = st->log_bytes();
                    out.snapshot_lsn = st->snapshot_lsn();
                    out.snapshot_time_us = st->snapshot_time_us();
                    out.snapshot_bytes = st->snapshot_bytes();
                    if (st->snapshot_error()) out.snapshot_error = st->snapshot_error()->str();
                    if (st->requests()) {
                      for (const fb::RequestTypeStats* t : *st->requests()) {
                        ServerStats::RequestType rt;
                        if (t->type()) rt.type = t->type()->str();
                        rt.requests = t->requests();
                        rt.errors = t->errors();
                        if (t->latency_bounds_ns())
                          rt.latency_bounds_ns.assign(t->latency_bounds_ns()->begin(),
                                                      t->latency_bounds_ns()->end());
                        if (t->latency_counts())
                          rt.latency_counts.assign(t->latency_counts()->begin(),
                                                   t->latency_counts()->end());
                        if (rt.latency_counts.size() != rt.latency_bounds_ns.size() + 1) {
                          return Status::Corruption("stats: request type " + rt.type +
                                                    ": latency counts do not match the bounds");
                        }
                        out.requests.push_back(std::move(rt));
                      }
                    }
                    return Status::Ok();
                  });
  if (!s.ok()) return s;
  return out;
}

Result<SnapshotInfo> Client::Snapshot() {
  SnapshotInfo out;
  Status s = Call([&](ReplyCallback d) { SendSnapshot(std::move(d)); },
                  [&](const fb::Response& r) {
                    const fb::SnapshotReply* reply = r.body_as_SnapshotReply();
                    if (!reply) return WrongBody(r, "SnapshotReply");
                    out = {reply->lsn(), reply->entities(), reply->bytes(),
                           reply->path() ? reply->path()->str() : std::string()};
                    return Status::Ok();
                  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace worlddb::net
