#include "net/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <span>

#include "net/frame.h"

namespace worlddb::net {

namespace {

constexpr uint64_t kListenTag = 1;
constexpr uint64_t kWakeTag = 2;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

fb::ErrorCode ResponseCode(const uint8_t* response) {
  const auto* r = flatbuffers::GetRoot<fb::Response>(response);
  if (r->body_type() != fb::ResponseBody_Error) return fb::ErrorCode_Ok;
  return r->body_as_Error()->code();
}

// A query's parameters for the slow-query log.
std::string DescribeQuery(const Query& q, const QueryResult* r) {
  std::string out;
  char buf[160];
  switch (q.shape) {
    case Shape::kCircle:
      std::snprintf(buf, sizeof(buf), "centre (%.17g, %.17g) radius %.17g%s", q.x, q.y, q.radius,
                    q.order_by_distance ? " ordered" : "");
      break;
    case Shape::kRect:
      std::snprintf(buf, sizeof(buf), "rect [%.17g, %.17g, %.17g, %.17g]", q.rect.min_x,
                    q.rect.min_y, q.rect.max_x, q.rect.max_y);
      break;
    case Shape::kNearest:
      std::snprintf(buf, sizeof(buf), "centre (%.17g, %.17g) k %llu", q.x, q.y,
                    static_cast<unsigned long long>(q.k));
      break;
  }
  out = buf;
  out += " kind " + (q.kind.empty() ? std::string("(any)") : q.kind);
  out += ", " + std::to_string(q.where.size()) + " predicates, " +
         std::to_string(q.columns.size()) + " columns";
  if (q.count_only) out += ", count only";
  if (r) {
    out += ", " + std::to_string(r->rows()) + " rows";
    if (q.count_only) out += ", count " + std::to_string(r->count);
  }
  return out;
}

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::string PeerName(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
}

}  // namespace

// Blocking requests of one connection on their way to a writer thread and
// back: one request, or write batches that were pipelined back to back
// (Dispatcher::RunWrites runs them with one wait for the log).
struct Server::Job {
  struct Item {
    std::vector<uint64_t> payload;  // 8-byte aligned copy of the request
    size_t size = 0;
    // For metrics: when the frame was parsed, what it is, how it ended.
    int64_t start_ns = 0;
    RequestType type = RequestType::kInvalid;
    fb::ErrorCode code = fb::ErrorCode_Ok;
    std::span<const uint8_t> bytes() const {
      return {reinterpret_cast<const uint8_t*>(payload.data()), size};
    }
  };
  uint64_t conn_id = 0;
  std::vector<Item> items;
  size_t bytes = 0;               // the items' payloads together
  std::vector<uint8_t> response;  // framed, in request order

  void Add(const uint8_t* data, size_t size, int64_t start_ns, RequestType type) {
    Item& it = items.emplace_back();
    it.payload.resize((size + 7) / 8);
    std::memcpy(it.payload.data(), data, size);
    it.size = size;
    it.start_ns = start_ns;
    it.type = type;
    bytes += size;
  }
};

// One response of a round, in request order: a query's answer (query >= 0),
// a batch's (queries [query, query + batch)), bytes already encoded into the
// arena, or a blocking request to submit.
struct Server::Entry {
  Connection* conn;
  uint64_t request_id;
  int64_t query;  // index into Round::queries, or -1
  size_t arena_off, arena_len;
  Job* job;  // a blocking request to submit once the earlier answers are out
  int64_t start_ns = 0;
  RequestType type = RequestType::kInvalid;
  size_t bytes = 0;
  size_t batch = 0;  // a QueryBatch of this many queries; 0: a single query
};

// Requests gathered from every connection for one Engine::StartMany, and, in
// request order, the responses waiting for them.
struct Server::Round {
  std::vector<Query> queries;  // the first nq are this round's (reused objects)
  size_t nq = 0;
  std::vector<QueryResult> results;
  std::vector<Status> statuses;
  std::vector<Entry> entries;
  std::vector<uint8_t> arena;
  std::vector<std::unique_ptr<Job>> deferred_jobs;
  Engine::InFlight flight;
};

bool IsLoopbackAddress(const std::string& address) {
  if (address == "localhost") return true;
  in_addr a4;
  if (inet_pton(AF_INET, address.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6;
  if (inet_pton(AF_INET6, address.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

Status ValidateServerOptions(const ServerOptions& o) {
  if (o.max_frame_bytes < 64 || o.max_frame_bytes > (size_t{1} << 31) - 1) {
    return Status::InvalidArgument("max frame bytes " + std::to_string(o.max_frame_bytes) +
                                   " must be between 64 and 2147483647");
  }
  if (o.max_connections == 0) return Status::InvalidArgument("max connections must be at least 1");
  if (o.max_result_rows == 0) return Status::InvalidArgument("max result rows must be at least 1");
  if (o.max_output_buffer_bytes < o.max_frame_bytes + kFrameHeaderBytes) {
    return Status::InvalidArgument("max output buffer bytes (" +
                                   std::to_string(o.max_output_buffer_bytes) +
                                   ") must hold at least one maximal frame (max frame bytes " +
                                   std::to_string(o.max_frame_bytes) + " + 4)");
  }
  if (o.writer_threads < 1 || o.writer_threads > kMaxWriterThreads) {
    return Status::InvalidArgument("writer threads must be between 1 and " +
                                   std::to_string(kMaxWriterThreads));
  }
  if (!o.tokens && !o.allow_remote_without_auth && !IsLoopbackAddress(o.listen)) {
    return Status::InvalidArgument(
        "refusing to listen on " + o.listen +
        " (not a loopback address) without auth: give --auth-file, or "
        "--allow-remote-without-auth if anyone who can reach this address may read and write "
        "the world");
  }
  return Status::Ok();
}

Server::Server(Engine* engine, ServerOptions options)
    : engine_(engine), options_(std::move(options)) {
  for (auto& r : rounds_) r = std::make_unique<Round>();
  slow_ns_ = int64_t{options_.slow_query_ms} * 1'000'000;
  DispatchOptions d;
  d.max_result_rows = options_.max_result_rows;
  d.max_frame_bytes = options_.max_frame_bytes;
  d.tokens = options_.tokens;
  d.snapshot = options_.snapshot;
  d.writable = options_.writable;
  d.durability_state = options_.durability_state;
  d.request_metrics = options_.metrics;
  d.connections = [this] { return static_cast<uint64_t>(connections()); };
  dispatcher_ = std::make_unique<Dispatcher>(engine_, std::move(d));
}

Result<std::unique_ptr<Server>> Server::Start(Engine* engine, ServerOptions options) {
  WORLDDB_RETURN_IF_ERROR(ValidateServerOptions(options));
  std::unique_ptr<Server> s(new Server(engine, std::move(options)));
  const std::string host = s->options_.listen == "localhost" ? "127.0.0.1" : s->options_.listen;
  sockaddr_storage ss{};
  socklen_t len = 0;
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_addr = a4;
    sa->sin_port = htons(s->options_.port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_addr = a6;
    sa->sin6_port = htons(s->options_.port);
    len = sizeof(sockaddr_in6);
    s->ipv6_ = true;
  } else {
    return Status::InvalidArgument("listen address `" + s->options_.listen +
                                   "` is not an IPv4 or IPv6 address (or localhost)");
  }
  s->listen_fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->listen_fd_ < 0) return Status::IOError(Errno("socket"));
  int one = 1;
  ::setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return Status::IOError("cannot listen on " + s->options_.listen + " port " +
                           std::to_string(s->options_.port) + ": " + std::strerror(errno));
  }
  if (::listen(s->listen_fd_, 1024) != 0) return Status::IOError(Errno("listen"));
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  s->port_ = bound.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                        : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  s->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (s->epoll_fd_ < 0) return Status::IOError(Errno("epoll_create1"));
  s->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->wake_fd_ < 0) return Status::IOError(Errno("eventfd"));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  if (::epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, s->listen_fd_, &ev) != 0) {
    return Status::IOError(Errno("epoll_ctl"));
  }
  ev.data.u64 = kWakeTag;
  if (::epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, s->wake_fd_, &ev) != 0) {
    return Status::IOError(Errno("epoll_ctl"));
  }
  for (uint32_t i = 0; i < s->options_.writer_threads; ++i) {
    s->writers_.emplace_back([p = s.get()] { p->WriterLoop(); });
  }
  return s;
}

Server::~Server() {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    writers_stop_ = true;
  }
  jobs_cv_.notify_all();
  for (std::thread& t : writers_) t.join();
  conns_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

std::string Server::address() const {
  const std::string host = options_.listen == "localhost" ? "127.0.0.1" : options_.listen;
  return (ipv6_ ? "[" + host + "]" : host) + ":" + std::to_string(port_);
}

void Server::Stop() {
  stopping_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  // write() is async-signal-safe; a full counter still wakes the loop.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

// ---- writer threads ----

void Server::Submit(std::unique_ptr<Job> job) {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    jobs_.push_back(std::move(job));
  }
  jobs_cv_.notify_one();
}

void Server::WriterLoop() {
  flatbuffers::FlatBufferBuilder fbb(1024);
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(jobs_mu_);
      jobs_cv_.wait(lock, [&] { return writers_stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    auto emit = [&](size_t i) {
      if (fbb.GetSize() > options_.max_frame_bytes) {
        Dispatcher::EncodeError(0, fb::ErrorCode_ResourceExhausted,
                                "response exceeds the frame limit", &fbb);
      }
      AppendFrame({fbb.GetBufferPointer(), fbb.GetSize()}, &job->response);
      job->items[i].code = ResponseCode(fbb.GetBufferPointer());
    };
    if (job->items.front().type == RequestType::kWrite) {
      std::vector<std::span<const uint8_t>> writes;
      for (const Job::Item& it : job->items) writes.push_back(it.bytes());
      dispatcher_->RunWrites(writes, &fbb, emit);
    } else {
      const Job::Item& it = job->items.front();
      dispatcher_->RunBlocking(it.bytes().data(), it.size, &fbb);
      emit(0);
    }
    {
      std::lock_guard<std::mutex> lock(done_mu_);
      done_.push_back(std::move(job));
    }
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void Server::DrainCompletions(std::vector<Connection*>* active) {
  std::vector<std::unique_ptr<Job>> done;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done.swap(done_);
  }
  for (auto& job : done) {
    auto it = conns_.find(job->conn_id);
    // Closed meanwhile: the writes still happened, each whole.
    Connection* c = it == conns_.end() ? nullptr : it->second.get();
    if (timed()) {
      for (const Job::Item& i : job->items) {
        RecordCode(i.type, i.start_ns, i.code, c, i.size, nullptr, nullptr);
      }
    }
    if (!c) continue;
    c->AppendRaw(job->response);
    c->busy = false;
    MarkActive(c, active);
  }
}

// ---- event loop ----

void Server::MarkActive(Connection* c, std::vector<Connection*>* active) {
  if (!c->active) {
    c->active = true;
    active->push_back(c);
  }
}

void Server::Accept() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    const int fd =
        ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        spdlog::warn("accept failed: {}", std::strerror(errno));
      }
      return;
    }
    const std::string peer = PeerName(ss);
    if (conns_.size() >= options_.max_connections) {
      flatbuffers::FlatBufferBuilder fbb(256);
      Dispatcher::EncodeError(0, fb::ErrorCode_ResourceExhausted,
                              "too many connections (the server's --max-connections is " +
                                  std::to_string(options_.max_connections) + ")",
                              &fbb);
      std::vector<uint8_t> frame;
      AppendFrame({fbb.GetBufferPointer(), fbb.GetSize()}, &frame);
      [[maybe_unused]] ssize_t n = ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
      ::close(fd);
      if (options_.metrics) options_.metrics->Refused();
      spdlog::warn("refused connection from {}: {} connections open (--max-connections)", peer,
                   conns_.size());
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const uint64_t id = next_conn_id_++;
    auto c = std::make_unique<Connection>(fd, id, peer);
    c->events = EPOLLIN;
    epoll_event ev{};
    ev.events = c->events;
    ev.data.u64 = id;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::warn("connection from {}: epoll_ctl failed: {}", peer, std::strerror(errno));
      continue;
    }
    spdlog::debug("connection {} from {}", id, peer);
    conns_.emplace(id, std::move(c));
    open_connections_.store(conns_.size(), std::memory_order_relaxed);
    if (options_.metrics) {
      options_.metrics->Accepted();
      options_.metrics->SetOpen(conns_.size());
    }
  }
}

void Server::ReadFrom(Connection* c) {
  if (c->read_closed || c->closing) return;
  // Read what is there, but bound the bytes per iteration so that one fast
  // sender cannot starve the others.
  size_t total = 0;
  while (total < 4 * kReadChunkBytes) {
    size_t want = kReadChunkBytes;
    const FrameView v = PeekFrame(c->in_data(), c->in_size(), options_.max_frame_bytes);
    if (v.state == FrameView::State::kNeedMore && c->in_size() >= kFrameHeaderBytes) {
      want = v.frame_bytes() - c->in_size();  // room for the whole frame
    }
    const ssize_t n = c->ReadSome(want);
    if (n > 0) {
      total += static_cast<size_t>(n);
      c->last_active = Connection::Clock::now();
      continue;
    }
    if (n == 0) {
      c->read_closed = true;
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    c->close_reason = std::string("read error: ") + std::strerror(errno);
    c->closing = c->close_now = true;
    Dropped(DropReason::kIoError);
    return;
  }
}

void Server::Respond(Connection* c, const flatbuffers::FlatBufferBuilder& fbb, Round* round,
                     bool in_order) {
  const uint8_t* p = fbb.GetBufferPointer();
  size_t n = fbb.GetSize();
  flatbuffers::FlatBufferBuilder err(0);
  if (n > options_.max_frame_bytes) {
    // The client's reader would refuse it as a broken frame; say why instead.
    const auto* r = flatbuffers::GetRoot<fb::Response>(p);
    Dispatcher::EncodeError(
        r->request_id(), fb::ErrorCode_ResourceExhausted,
        "the response would be " + std::to_string(n) + " bytes, over the frame limit of " +
            std::to_string(options_.max_frame_bytes) + " (--max-frame-bytes); ask for fewer rows",
        &err);
    p = err.GetBufferPointer();
    n = err.GetSize();
  }
  if (in_order || c->round_entries == 0) {
    c->AppendFrame({p, n});
    return;
  }
  // Earlier requests of this connection still wait for their round: keep order.
  const size_t off = round->arena.size();
  AppendFrame({p, n}, &round->arena);
  round->entries.push_back({c, 0, -1, off, round->arena.size() - off, nullptr});
  ++c->round_entries;
}

// Parses and dispatches the complete frames in c's input buffer. Returns true
// when it stopped early with frames left (the round is full).
bool Server::ParseFrames(Connection* c, Round* round) {
  while (!c->busy && !c->closing && !c->close_now) {
    const FrameView v = PeekFrame(c->in_data(), c->in_size(), options_.max_frame_bytes);
    if (v.state == FrameView::State::kNeedMore) return false;
    if (v.state == FrameView::State::kTooLarge) {
      flatbuffers::FlatBufferBuilder fbb(256);
      Dispatcher::EncodeError(0, fb::ErrorCode_BadMessage,
                              "frame of " + std::to_string(v.payload_bytes) +
                                  " bytes exceeds the limit of " +
                                  std::to_string(options_.max_frame_bytes) +
                                  " (--max-frame-bytes); closing the connection",
                              &fbb);
      Respond(c, fbb, round);
      c->DiscardInput();
      c->read_closed = true;
      c->closing = true;
      c->close_reason =
          "broken frame: length " + std::to_string(v.payload_bytes) + " over the limit";
      Dropped(DropReason::kBrokenFrame);
      if (timed()) {
        RecordCode(RequestType::kInvalid, NowNs(), fb::ErrorCode_BadMessage, c, v.payload_bytes,
                   nullptr, nullptr);
      }
      return false;
    }
    if (round->nq >= kMaxQueriesPerRound) return true;
    // A client that does not read: stop answering it; the loop disconnects it.
    if (c->pending_output() > options_.max_output_buffer_bytes) return false;
    const uint8_t* payload =
        AlignPayload(c->in_data() + kFrameHeaderBytes, v.payload_bytes, &align_scratch_);
    // Query objects are reused across rounds so that their strings and
    // vectors keep their capacity.
    const size_t qi = round->nq;
    if (round->queries.size() <= qi) {
      round->queries.resize(qi + 1);
      round->results.resize(qi + 1);
      round->statuses.resize(qi + 1);
    }
    uint64_t rid = 0;
    // One clock read per request, and one when its response is queued.
    const int64_t start_ns = timed() ? NowNs() : 0;
    const fb::Request* verified = nullptr;
    const Dispatcher::Next next = dispatcher_->Begin(payload, v.payload_bytes, &c->session, &fbb_,
                                                     &round->queries[qi], &rid, &verified);
    const RequestType type = RequestTypeOf(verified);
    switch (next) {
      case Dispatcher::Next::kAnswered:
        Respond(c, fbb_, round);
        if (timed()) {
          Record(type, start_ns, fbb_.GetBufferPointer(), c, v.payload_bytes, nullptr, nullptr);
        }
        break;
      case Dispatcher::Next::kQuery:
        round->entries.push_back(
            {c, rid, static_cast<int64_t>(qi), 0, 0, nullptr, start_ns, type, v.payload_bytes});
        ++round->nq;
        ++c->round_entries;
        break;
      case Dispatcher::Next::kBatch: {
        // One query per centre, in consecutive slots: copies of the template
        // (the reused objects keep their capacity), then each moved.
        const size_t n = Dispatcher::BatchSize(*verified);
        if (round->queries.size() < qi + n) {
          round->queries.resize(qi + n);
          round->results.resize(qi + n);
          round->statuses.resize(qi + n);
        }
        for (size_t i = n; i-- > 0;) {
          if (i > 0) round->queries[qi + i] = round->queries[qi];
          Dispatcher::PlaceQuery(*verified, i, &round->queries[qi + i]);
        }
        round->entries.push_back(
            {c, rid, static_cast<int64_t>(qi), 0, 0, nullptr, start_ns, type, v.payload_bytes, n});
        round->nq += n;
        ++c->round_entries;
        break;
      }
      case Dispatcher::Next::kBlocking: {
        auto job = std::make_unique<Job>();
        job->conn_id = c->id();
        job->Add(payload, v.payload_bytes, start_ns, type);
        c->Consume(v.frame_bytes());
        if (type == RequestType::kWrite) GatherWrites(c, job.get());
        c->busy = true;
        if (c->round_entries == 0) {
          Submit(std::move(job));
        } else {
          round->entries.push_back({c, rid, -1, 0, 0, job.get()});
          round->deferred_jobs.push_back(std::move(job));
          ++c->round_entries;
        }
        return false;  // c waits for its job; the frame is consumed
      }
    }
    c->Consume(v.frame_bytes());
  }
  return false;
}

void Server::GatherWrites(Connection* c, Job* job) {
  while (job->items.size() < kMaxGroupedWrites && job->bytes < kMaxGroupedWriteBytes) {
    const FrameView v = PeekFrame(c->in_data(), c->in_size(), options_.max_frame_bytes);
    if (v.state != FrameView::State::kFrame) return;
    const uint8_t* payload =
        AlignPayload(c->in_data() + kFrameHeaderBytes, v.payload_bytes, &align_scratch_);
    if (!dispatcher_->IsWrite(payload, v.payload_bytes)) return;
    const int64_t start_ns = timed() ? NowNs() : 0;
    Query unused;
    uint64_t rid = 0;
    // A write Begin() refuses (a bad ack, a malformed batch) stays in the
    // input and is answered once the job is back, in order.
    if (dispatcher_->Begin(payload, v.payload_bytes, &c->session, &fbb_, &unused, &rid) !=
        Dispatcher::Next::kBlocking) {
      return;
    }
    job->Add(payload, v.payload_bytes, start_ns, RequestType::kWrite);
    c->Consume(v.frame_bytes());
  }
}

void Server::FinishRound(Round* r) {
  if (r->flight.active()) engine_->FinishMany(&r->flight);
  for (const Entry& e : r->entries) {
    Connection* c = e.conn;
    if (e.batch > 0) {
      const auto i = static_cast<size_t>(e.query);
      dispatcher_->FinishBatch(e.request_id, &r->queries[i], &r->statuses[i], &r->results[i],
                               e.batch, &fbb_);
      Respond(c, fbb_, r, /*in_order=*/true);
      if (timed()) {
        Record(e.type, e.start_ns, fbb_.GetBufferPointer(), c, e.bytes, &r->queries[i], nullptr);
      }
    } else if (e.query >= 0) {
      const auto i = static_cast<size_t>(e.query);
      dispatcher_->FinishQuery(e.request_id, r->queries[i], r->statuses[i], r->results[i], &fbb_);
      Respond(c, fbb_, r, /*in_order=*/true);
      if (timed()) {
        Record(e.type, e.start_ns, fbb_.GetBufferPointer(), c, e.bytes, &r->queries[i],
               r->statuses[i].ok() ? &r->results[i] : nullptr);
      }
    } else if (e.job) {
      for (auto& j : r->deferred_jobs) {
        if (j.get() == e.job) Submit(std::move(j));
      }
    } else {
      c->AppendRaw({r->arena.data() + e.arena_off, e.arena_len});
    }
    --c->round_entries;
  }
  r->entries.clear();
  r->arena.clear();
  r->deferred_jobs.clear();
  r->nq = 0;
}

void Server::Process(std::vector<Connection*>& active) {
  // Rounds: every connection contributes its ready frames (queries up to the
  // round's cap) and the round's queries go to the shards at once
  // (StartMany). While they run, this thread answers the round before it:
  // encodes its results and queues its responses (FinishRound), then parses
  // the next one. So the event loop and the shards work at the same time
  // whenever more than one round's worth of requests is waiting.
  // Per connection, responses stay in request order: rounds finish in the
  // order they were parsed, and a response parsed while the connection has
  // earlier requests unanswered (round_entries) waits in its round.
  // Every round is finished before Process returns (connections may close).
  Round* flying = nullptr;
  int next = 0;
  for (;;) {
    Round* r = rounds_[next].get();
    next ^= 1;
    bool more = false;
    for (Connection* c : active) {
      if (c->in_size() >= kFrameHeaderBytes) more |= ParseFrames(c, r);
    }
    if (r->nq > 0) {
      engine_->StartMany(r->queries.data(), r->nq, r->results.data(), r->statuses.data(),
                         &r->flight);
    }
    if (flying) {
      FinishRound(flying);
      // Send what is ready, so that clients read one round's answers while
      // the shards run the next.
      for (Connection* c : active) {
        if (c->pending_output() >= kEarlyFlushBytes) FlushOutput(c);
      }
    }
    flying = r;
    if (!more) break;
  }
  FinishRound(flying);
}

void Server::FlushOutput(Connection* c) {
  if (!c->close_now && c->pending_output() > 0 && !c->Flush()) {
    c->close_reason = std::string("write error: ") + std::strerror(errno);
    c->close_now = true;
    Dropped(DropReason::kIoError);
  }
}

void Server::UpdateEvents(Connection* c) {
  uint32_t want = 0;
  // A busy connection's later requests wait; stop reading once a whole frame
  // and kMaxGroupedWriteBytes are buffered, so that a pipelining client
  // cannot grow our input buffer, yet its next write batches can join one
  // job (GatherWrites) when this one is back.
  const bool input_full = c->in_size() >= kMaxGroupedWriteBytes &&
                          PeekFrame(c->in_data(), c->in_size(), options_.max_frame_bytes).state !=
                              FrameView::State::kNeedMore;
  if (!c->read_closed && !c->closing && !stopping_.load(std::memory_order_relaxed) &&
      !(c->busy && input_full)) {
    want |= EPOLLIN;
  }
  if (c->pending_output() > 0) want |= EPOLLOUT;
  if (want == c->events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c->id();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd(), &ev);
  c->events = want;
}

void Server::CloseConnection(Connection* c) {
  if (!c->close_reason.empty()) {
    spdlog::info("closing connection {} from {}: {}", c->id(), c->peer(), c->close_reason);
  } else {
    spdlog::debug("connection {} from {} closed", c->id(), c->peer());
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd(), nullptr);
  conns_.erase(c->id());
  open_connections_.store(conns_.size(), std::memory_order_relaxed);
  if (options_.metrics) options_.metrics->SetOpen(conns_.size());
}

void Server::Record(RequestType type, int64_t start_ns, const uint8_t* response,
                    const Connection* c, size_t bytes, const Query* query,
                    const QueryResult* result) {
  RecordCode(type, start_ns, ResponseCode(response), c, bytes, query, result);
}

void Server::RecordCode(RequestType type, int64_t start_ns, fb::ErrorCode code, const Connection* c,
                        size_t bytes, const Query* query, const QueryResult* result) {
  const int64_t ns = NowNs() - start_ns;
  const uint64_t elapsed = ns > 0 ? static_cast<uint64_t>(ns) : 0;
  if (options_.metrics) options_.metrics->Observe(type, code, elapsed);
  if (slow_ns_ == 0 || ns < slow_ns_) return;
  if (options_.metrics) options_.metrics->Slow(type);
  const char* status = code == fb::ErrorCode_Ok ? "ok" : fb::EnumNameErrorCode(code);
  spdlog::warn(
      "slow request: {} took {:.3f} ms (--slow-query-ms {}): {}{}request of {} bytes, "
      "status {}, connection {} from {}",
      RequestTypeName(type), static_cast<double>(ns) / 1e6, options_.slow_query_ms,
      query ? DescribeQuery(*query, result) : std::string(), query ? ", " : "", bytes,
      status && *status ? status : "unknown", c ? std::to_string(c->id()) : "(closed)",
      c ? c->peer() : std::string("-"));
}

Status Server::Run() {
  spdlog::info("listening on {}", address());
  std::vector<epoll_event> events(256);
  std::vector<Connection*> active;
  bool draining = false;
  Connection::Clock::time_point drain_deadline{};
  auto last_idle_check = Connection::Clock::now();
  for (;;) {
    int timeout = 1000;
    if (options_.idle_timeout_ms && options_.idle_timeout_ms / 4 < 1000) {
      timeout = static_cast<int>(std::max<uint32_t>(options_.idle_timeout_ms / 4, 1));
    }
    if (draining) timeout = 20;
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) return Status::IOError(Errno("epoll_wait"));
    active.clear();
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        if (!draining) Accept();
        continue;
      }
      if (tag == kWakeTag) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &v, sizeof(v));
        continue;
      }
      auto it = conns_.find(tag);
      if (it == conns_.end()) continue;
      Connection* c = it->second.get();
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (!draining) ReadFrom(c);
        if (draining && (events[i].events & (EPOLLHUP | EPOLLERR))) c->read_closed = true;
      }
      MarkActive(c, &active);
    }
    DrainCompletions(&active);
    if (!draining && stopping_.load(std::memory_order_acquire)) {
      draining = true;
      drain_deadline = Connection::Clock::now() + std::chrono::milliseconds(kShutdownDrainMillis);
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      ::close(listen_fd_);
      listen_fd_ = -1;
      spdlog::info("stopping: no longer accepting; finishing requests in flight on {} connections",
                   conns_.size());
      // The requests already received are finished too.
      for (auto& [id, c] : conns_) MarkActive(c.get(), &active);
    }
    Process(active);
    for (Connection* c : active) {
      c->active = false;
      FlushOutput(c);
      if (c->pending_output() > options_.max_output_buffer_bytes) {
        c->close_reason = "the client does not read its responses (" +
                          std::to_string(c->pending_output()) +
                          " bytes unsent, over --max-output-buffer-bytes)";
        if (!c->close_now) Dropped(DropReason::kSlowReader);
        c->close_now = true;
      }
      const bool done = !c->busy && c->pending_output() == 0 &&
                        PeekFrame(c->in_data(), c->in_size(), options_.max_frame_bytes).state !=
                            FrameView::State::kFrame;
      if (c->close_now || ((c->closing || c->read_closed) && done)) {
        if (c->busy) {
          // Its write still runs; the completion finds no connection and is dropped.
        }
        CloseConnection(c);
        continue;
      }
      UpdateEvents(c);
    }
    const auto now = Connection::Clock::now();
    if (options_.idle_timeout_ms && !draining &&
        now - last_idle_check >= std::chrono::milliseconds(std::min<uint32_t>(
                                     std::max<uint32_t>(options_.idle_timeout_ms / 4, 1), 1000))) {
      last_idle_check = now;
      std::vector<Connection*> idle;
      for (auto& [id, c] : conns_) {
        if (!c->busy && c->pending_output() == 0 &&
            now - c->last_active >= std::chrono::milliseconds(options_.idle_timeout_ms)) {
          idle.push_back(c.get());
        }
      }
      for (Connection* c : idle) {
        c->close_reason =
            "idle for " + std::to_string(options_.idle_timeout_ms) + " ms (--idle-timeout)";
        Dropped(DropReason::kIdle);
        CloseConnection(c);
      }
    }
    if (draining) {
      bool finished = true;
      for (auto& [id, c] : conns_) {
        if (c->busy || c->pending_output() > 0 ||
            PeekFrame(c->in_data(), c->in_size(), options_.max_frame_bytes).state ==
                FrameView::State::kFrame) {
          finished = false;
        }
      }
      if (finished || now >= drain_deadline) {
        if (!finished) spdlog::warn("stopping: drain deadline passed with work unfinished");
        break;
      }
    }
  }
  // Nothing is in flight (or the deadline passed); stop the writers.
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    writers_stop_ = true;
  }
  jobs_cv_.notify_all();
  for (std::thread& t : writers_) t.join();
  writers_.clear();
  const size_t open = conns_.size();
  conns_.clear();
  open_connections_.store(0, std::memory_order_relaxed);
  if (options_.metrics) options_.metrics->SetOpen(0);
  spdlog::info("stopped; closed {} connections", open);
  return Status::Ok();
}

}  // namespace worlddb::net
