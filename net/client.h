// Client: one TCP connection to a worlddb server (docs/protocol.md).
//
//   auto c = Client::Connect("127.0.0.1", 7878, {.token = "secret"});
//   if (!c.ok()) ...;                       // names host, port and what failed
//   Result<QueryResult> r = (*c)->Query(Query::Circle(10, 20, 50));
//
// Two ways to use it:
//   * Synchronous: one method per request type. Each sends one request and
//     waits for its response (answers to earlier pipelined requests are
//     delivered on the way).
//   * Pipelined: Send*() queues a request and returns at once; its callback
//     runs, with a view of the verified response, when the response arrives.
//     Responses are matched to requests by request id (the server answers in
//     request order, and a response out of order breaks the connection).
//     Callbacks run only inside Poll(), Drain() or a synchronous call, on the
//     calling thread. MakeFuture() turns a callback into a std::future, which
//     becomes ready during one of those calls.
//
// Errors are Status values, never exceptions: a server error carries the
// server's message (and its code: codes 1..7 map one-to-one onto StatusCode,
// the protocol's own codes are named in the message, and the callback sees the
// raw fb::Error). A lost connection, a timeout or a response that fails the
// FlatBuffers verifier makes the client broken(): every pending and later
// request fails with that Status.
//
// Thread safety: none. One thread uses a Client at a time (use one Client per
// thread; connections are cheap). Callbacks must not call into the Client.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/commit_log.h"
#include "engine/engine.h"
#include "engine/query.h"
#include "engine/schema.h"
#include "engine/status.h"
#include "net/net_constants.h"
#include "net/protocol_generated.h"

namespace worlddb::net {

struct ClientOptions {
  std::string token;              // sent in Hello; empty when the server has no auth
  int connect_timeout_ms = 5000;  // TCP connect and Hello
  int io_timeout_ms = 30000;      // longest wait for progress on a request; 0 = forever
  // Largest response accepted (the receive buffer never grows beyond it).
  // 0: the limit the server announces in its HelloReply (64 MiB until then).
  size_t max_frame_bytes = 0;
};

// A verified response owned by the caller (what futures carry).
class OwnedResponse {
 public:
  OwnedResponse() = default;
  OwnedResponse(const uint8_t* data, size_t size);
  const fb::Response* get() const { return flatbuffers::GetRoot<fb::Response>(storage_.data()); }
  const fb::Response* operator->() const { return get(); }

 private:
  std::vector<uint64_t> storage_;  // 8-byte aligned copy of the payload
};

// What a pipelined request's callback sees: the verified response (also for
// server errors: its body is an fb::Error) and the bytes it lives in, both
// valid only during the call; null / empty when the connection failed.
struct ReplyView {
  const fb::Response* response = nullptr;
  std::span<const uint8_t> bytes;
  const fb::Response* operator->() const { return response; }
  explicit operator bool() const { return response != nullptr; }
};
// `status` is OK or the error (the server's, or the connection's).
using ReplyCallback = std::function<void(const Status& status, const ReplyView& reply)>;

// What ApplyBatch reports.
struct ApplyResult {
  uint64_t created = 0, replaced = 0, moved = 0, set = 0, deleted = 0, delete_missing = 0;
  uint64_t ticket = 0;
};

struct KindsInfo {
  uint64_t schema_version = 0;
  std::vector<KindDef> kinds;  // index = kind id
};

struct ServerStats {
  uint64_t entities = 0;
  std::vector<std::pair<std::string, uint64_t>> per_kind;
  uint64_t schema_version = 0, last_ticket = 0, batches_applied = 0, batches_refused = 0,
           operations_applied = 0, queries = 0, connections = 0;
  bool writable = true;
  std::string not_writable_reason;
  uint64_t memory_bytes = 0;  // the engine's own accounting (tables, id map, index)
  uint64_t uptime_ms = 0;
  std::string durability;
  uint64_t log_last_lsn = 0, log_durable_lsn = 0, log_bytes = 0;
  uint64_t snapshot_lsn = 0, snapshot_time_us = 0, snapshot_bytes = 0;  // 0: none yet
  std::string snapshot_error;
  // Per request type since start (types never asked for are absent).
  struct RequestType {
    std::string type;
    uint64_t requests = 0, errors = 0;
    std::vector<uint64_t> latency_bounds_ns, latency_counts;  // counts: bounds + 1 (overflow)
  };
  std::vector<RequestType> requests;
};

struct SnapshotInfo {
  uint64_t lsn = 0, entities = 0, bytes = 0;
  std::string path;
};

class Client {
 public:
  // Resolves `host`, connects (TCP_NODELAY), says Hello with the protocol
  // version and token. Fails with the server's answer (e.g. a wrong token) or
  // with what went wrong on the way.
  static Result<std::unique_ptr<Client>> Connect(const std::string& host, uint16_t port,
                                                 const ClientOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& role() const { return role_; }  // from HelloReply
  uint32_t server_protocol_version() const { return server_version_; }
  bool broken() const { return !broken_.ok(); }
  const Status& broken_status() const { return broken_; }
  size_t in_flight() const { return pending_.size(); }
  // Queued request bytes the socket has not taken yet (poll for POLLOUT).
  size_t unsent_bytes() const { return out_.size() - out_pos_; }
  int fd() const { return fd_; }

  // ---- Synchronous API ----
  Status Ping();
  Result<ApplyResult> Apply(std::span<const uint8_t> write_batch, Ack ack = Ack::kMode);
  // Rows of the ids found (in the order of `ids`); the others go to `missing`.
  Result<QueryResult> GetByIds(const std::vector<uint64_t>& ids, const std::string& kind = {},
                               const std::vector<std::string>& columns = {},
                               std::vector<uint64_t>* missing = nullptr);
  Result<QueryResult> Query(const worlddb::Query& q);
  Result<QueryResult> Radius(double x, double y, double r) {
    return Query(worlddb::Query::Circle(x, y, r));
  }
  Result<QueryResult> Rect(const worlddb::Rect& rect) {
    return Query(worlddb::Query::InRect(rect));
  }
  Result<QueryResult> Nearest(double x, double y, uint32_t k) {
    return Query(worlddb::Query::Nearest(x, y, k));
  }
  // One query per centre (x[i], y[i]), all shaped like `q` (its own centre
  // is ignored; a rectangle keeps its size): one request, one reply
  // (docs/protocol.md "QueryBatch"). Answers in centre order.
  Result<std::vector<QueryResult>> QueryBatch(const worlddb::Query& q, std::span<const double> x,
                                              std::span<const double> y);
  // q with count_only set: the number of matching entities.
  Result<uint64_t> Count(const worlddb::Query& q);
  Result<DensityResult> Density(const DensityQuery& q);
  Result<KindsInfo> ListKinds();
  // A SchemaChange FlatBuffer (engine/schema_codec.h); returns the new schema version.
  Result<uint64_t> ChangeSchema(std::span<const uint8_t> schema_change);
  Result<uint64_t> CreateKind(const KindDef& def);
  Result<uint64_t> AlterKind(const std::string& kind, const std::vector<ColumnDef>& add,
                             const std::vector<std::string>& drop);
  Result<ServerStats> Stats();
  // Asks the server for a snapshot (admin role); returns once it is written.
  // NotYetAvailable (as Unavailable) from a server embedded without a data
  // directory.
  Result<SnapshotInfo> Snapshot();

  // ---- Pipelined API ----
  // Each queues one request; `done` runs once with its response. Requests are
  // written when the output buffer is large or on Poll/Drain.
  void SendPing(ReplyCallback done);
  void SendApply(std::span<const uint8_t> write_batch, Ack ack, ReplyCallback done);
  void SendQuery(const worlddb::Query& q, ReplyCallback done);
  // The reply's body is a QueryBatchReply (DecodeQueryBatchReply, or
  // read in place).
  void SendQueryBatch(const worlddb::Query& q, std::span<const double> x, std::span<const double> y,
                      ReplyCallback done);
  void SendGetByIds(const std::vector<uint64_t>& ids, const std::string& kind,
                    const std::vector<std::string>& columns, ReplyCallback done);
  void SendDensity(const DensityQuery& q, ReplyCallback done);
  void SendListKinds(ReplyCallback done);
  void SendStats(ReplyCallback done);
  void SendSchemaChange(std::span<const uint8_t> schema_change, ReplyCallback done);
  void SendSnapshot(ReplyCallback done);
  // A callback that fulfils the returned future (with the response, or the error).
  static std::pair<ReplyCallback, std::future<Result<OwnedResponse>>> MakeFuture();

  // Writes queued requests and delivers the responses that arrived, waiting
  // up to `timeout_ms` (0: do not wait) for the first one.
  Status Poll(int timeout_ms);
  // Returns once every request sent so far has completed (or the connection broke).
  Status Drain();
  // Sends raw bytes as they are (tests: garbage, half frames).
  Status SendRawForTest(std::span<const uint8_t> bytes);

 private:
  struct Pending {
    uint64_t request_id;
    ReplyCallback done;
  };
  Client(int fd, const ClientOptions& options);

  flatbuffers::FlatBufferBuilder& StartRequest();
  void FinishRequest(fb::RequestBody type, flatbuffers::Offset<void> body, ReplyCallback done);
  // One synchronous round trip; `on_reply` reads the response's body.
  Status Call(const std::function<void(ReplyCallback)>& send,
              const std::function<Status(const fb::Response&)>& on_reply);
  Status Flush(bool wait);
  Status ReadAvailable(bool* got_any);
  void Deliver(const uint8_t* payload, size_t size);
  void Break(Status why);
  Status Hello();

  int fd_ = -1;
  ClientOptions options_;
  std::string role_;
  uint32_t server_version_ = 0;
  size_t max_frame_bytes_ = 0;  // in force: the option, or the server's limit
  Status broken_;
  uint64_t next_id_ = 1;
  flatbuffers::FlatBufferBuilder fbb_{1024};
  std::vector<uint8_t> out_;  // framed requests not yet written
  size_t out_pos_ = 0;
  std::vector<uint8_t> in_;  // bytes received, not yet parsed
  size_t in_pos_ = 0, in_end_ = 0;
  std::vector<uint64_t> aligned_;  // scratch: payloads not 8-byte aligned in in_
  std::deque<Pending> pending_;
};

// ---- Decoding responses (also for callbacks that want owned values) ----
// The Status a response stands for: OK, or its Error as a Status.
Status ResponseStatus(const fb::Response& r);
// Decodes a QueryReply (ids, kinds, positions, distances, columns); checks
// that the columns have consistent lengths.
Status DecodeQueryReply(const fb::QueryReply& reply, QueryResult* out,
                        std::vector<uint64_t>* missing = nullptr);
// Decodes a QueryBatchReply into one QueryResult per query; checks that the
// per-query row counts add up to the rows the reply holds.
Status DecodeQueryBatchReply(const fb::QueryBatchReply& reply, std::vector<QueryResult>* out);
Result<KindsInfo> DecodeKindsReply(const fb::KindsReply& reply);
Result<Value> DecodeCell(const worlddb::fb::Cell& cell);
const char* ErrorCodeName(fb::ErrorCode code);

}  // namespace worlddb::net
