// Server: the TCP front of an Engine (docs/protocol.md, docs/ARCHITECTURE.md
// "Server").
//
// Threading model:
//   * One event-loop thread (the caller of Run()) owns the listening socket
//     and every connection: epoll (level-triggered), non-blocking sockets,
//     TCP_NODELAY. It reads, verifies and dispatches requests, and sends a
//     connection's responses once a round leaves kEarlyFlushBytes waiting
//     and at the end of each loop iteration.
//   * Queries from every connection that are ready in one iteration go to the
//     engine's shards in rounds (one Engine::StartMany per round, at most
//     kMaxQueriesPerRound queries); while the shards run a round, the loop
//     encodes the answers of the round before and parses the next.
//   * Blocking requests (write batches, schema changes, snapshots) run on
//     `writer_threads` threads, so the loop never waits for the log and
//     concurrent writes from different connections share one group commit.
//   * Requests on one connection are executed in order: while a connection's
//     blocking request runs, its later requests wait (in its input buffer),
//     so a query pipelined after a write sees that write. Responses come back
//     in request order. Write batches pipelined back to back, already whole
//     in the input, go to the writer thread as one job: applied in order,
//     then one wait for the log (Dispatcher::RunWrites).
//
// Ownership: the Server does not own the Engine (or the TokenTable in
// options), which must outlive it.
// Stop() may be called from any thread and from a signal handler.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "net/auth.h"
#include "net/connection.h"
#include "net/dispatch.h"
#include "net/net_constants.h"
#include "net/request_metrics.h"

namespace worlddb::net {

struct ServerOptions {
  std::string listen = "127.0.0.1";  // IPv4 or IPv6 literal, or "localhost"
  uint16_t port = kDefaultPort;      // 0: an ephemeral port (see Server::port())
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  size_t max_connections = kDefaultMaxConnections;
  uint64_t max_result_rows = kDefaultMaxResultRows;
  size_t max_output_buffer_bytes = kDefaultMaxOutputBufferBytes;
  uint32_t idle_timeout_ms = kDefaultIdleTimeoutSeconds * 1000;  // 0: never
  uint32_t writer_threads = kDefaultWriterThreads;
  // Null: auth off. Not owned.
  const TokenTable* tokens = nullptr;
  // Without auth, only loopback addresses may be listened on unless this is set.
  bool allow_remote_without_auth = false;
  // Hooks (see DispatchOptions): absent snapshot -> NotYetAvailable; absent
  // writable -> always writable.
  std::function<Result<SnapshotResult>()> snapshot;
  std::function<Status()> writable;
  // The log and snapshots for stats (DispatchOptions::durability_state).
  std::function<DurabilityState()> durability_state;
  // Request and connection counters (net/request_metrics.h). Null: none.
  // Not owned; must outlive the Server.
  RequestMetrics* metrics = nullptr;
  // A request slower than this (frame parsed -> response queued) is logged
  // at warn level with its parameters. 0: off.
  uint32_t slow_query_ms = 0;
};

// Checks option values and the remote-without-auth rule; the error names the
// option.
Status ValidateServerOptions(const ServerOptions& options);
bool IsLoopbackAddress(const std::string& address);

class Server {
 public:
  // Validates the options, binds and listens (so port() is known), starts
  // the writer threads. Does not serve until Run().
  static Result<std::unique_ptr<Server>> Start(Engine* engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  // "127.0.0.1:7878" or "[::1]:7878".
  std::string address() const;

  // Serves until Stop(): then stops accepting and reading, finishes the
  // requests already received (and their responses) within
  // kShutdownDrainMillis, closes every connection and returns.
  Status Run();
  // Async-signal-safe.
  void Stop();

  size_t connections() const { return open_connections_.load(std::memory_order_relaxed); }

 private:
  struct Job;
  struct Entry;
  struct Round;

  Server(Engine* engine, ServerOptions options);
  void Accept();
  void ReadFrom(Connection* c);
  void Process(std::vector<Connection*>& active);
  bool ParseFrames(Connection* c, Round* round);
  // Adds the write batches that follow in c's input, whole frames in a row,
  // to `job` (a write batch), up to kMaxGroupedWrites / kMaxGroupedWriteBytes.
  void GatherWrites(Connection* c, Job* job);
  void FinishRound(Round* round);
  // Sends what c's output buffer holds, as far as the socket takes it; a
  // failure marks c to be closed.
  void FlushOutput(Connection* c);
  // Queues a response: appended to c's output now when c has no earlier
  // request unanswered, else kept in `round` (which then must be the round
  // being parsed) to go out in order. `in_order` appends now regardless
  // (FinishRound, answering in request order itself).
  void Respond(Connection* c, const flatbuffers::FlatBufferBuilder& fbb, Round* round,
               bool in_order = false);
  void Submit(std::unique_ptr<Job> job);
  void WriterLoop();
  void DrainCompletions(std::vector<Connection*>* active);
  void UpdateEvents(Connection* c);
  void CloseConnection(Connection* c);
  void MarkActive(Connection* c, std::vector<Connection*>* active);
  // Metrics and the slow-query log for one answered request whose response
  // is `response` (a Response payload); `query`/`result` for queries.
  // `c` may be null (closed meanwhile); `bytes` is the request's size.
  void Record(RequestType type, int64_t start_ns, const uint8_t* response, const Connection* c,
              size_t bytes, const Query* query, const QueryResult* result);
  void RecordCode(RequestType type, int64_t start_ns, fb::ErrorCode code, const Connection* c,
                  size_t bytes, const Query* query, const QueryResult* result);
  void Dropped(DropReason reason) {
    if (options_.metrics) options_.metrics->Dropped(reason);
  }
  bool timed() const { return options_.metrics != nullptr || slow_ns_ > 0; }

  Engine* engine_;
  ServerOptions options_;
  std::unique_ptr<Dispatcher> dispatcher_;
  int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
  uint16_t port_ = 0;
  bool ipv6_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> open_connections_{0};
  int64_t slow_ns_ = 0;

  // Event-loop state.
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  uint64_t next_conn_id_ = 16;
  flatbuffers::FlatBufferBuilder fbb_{1 << 16};
  std::vector<uint64_t> align_scratch_;
  // Rounds (see Process): one being parsed while the other may be running on
  // the shards. Their buffers keep their capacity from round to round.
  std::unique_ptr<Round> rounds_[2];

  // Writer threads.
  std::vector<std::thread> writers_;
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<std::unique_ptr<Job>> jobs_;
  bool writers_stop_ = false;
  std::mutex done_mu_;
  std::vector<std::unique_ptr<Job>> done_;
};

}  // namespace worlddb::net
