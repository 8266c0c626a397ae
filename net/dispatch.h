// Dispatcher: turns one request payload (a Request FlatBuffer, the bytes of
// one frame) into one response payload against an Engine.
//
// Every payload is verified first (flatbuffers::Verifier with the depth and
// table limits of DispatchOptions); bytes that fail get a BadMessage error
// response. Requests are split in three classes so that the server can batch
// and never block its event loop:
//   * inline (hello, ping, get by ids, density, list kinds, stats): answered
//     by Begin() at once;
//   * queries (radius, rectangle, kNN, count): Begin() decodes them into a
//     worlddb::Query; the server runs many of them, from many connections, in
//     one Engine::RunMany and encodes each answer with FinishQuery();
//   * query batches: Begin() decodes the template; BatchSize() and
//     PlaceQuery() make one Query per centre, which run like queries, and
//     FinishBatch() encodes their answers into one reply;
//   * blocking (write batch, create/alter kind, snapshot): they wait for the
//     log, so the server runs them with RunBlocking() on a writer thread.
// Handle() does all three synchronously (tests, the fuzzer).
//
// Ownership and threads: the Dispatcher does not own the Engine, which must
// outlive it. Its methods are const and may be called from any number of
// threads at once; each call uses only its arguments (the caller owns the
// FlatBufferBuilder, Session and scratch storage).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/status.h"
#include "net/auth.h"
#include "net/net_constants.h"
#include "net/protocol_generated.h"
#include "net/request_metrics.h"

namespace worlddb::net {

// What a snapshot hook reports (the SnapshotReply).
struct SnapshotResult {
  uint64_t lsn = 0, entities = 0, bytes = 0;
  std::string path;
};

// The data directory's state, reported by stats (StatsReply, docs/protocol.md).
struct DurabilityState {
  std::string durability;  // "always", "interval:MS", "none"
  uint64_t log_last_lsn = 0, log_durable_lsn = 0, log_bytes = 0;
  uint64_t snapshot_lsn = 0, snapshot_time_us = 0, snapshot_bytes = 0;  // 0: no snapshot yet
  std::string snapshot_error;  // the last background snapshot's failure, or empty
};

struct DispatchOptions {
  uint64_t max_result_rows = kDefaultMaxResultRows;
  size_t max_frame_bytes = kDefaultMaxFrameBytes;  // reported in HelloReply
  uint32_t verifier_max_depth = kVerifierMaxDepth;
  uint32_t verifier_max_tables = kVerifierMaxTables;
  // Null: auth off, every connection may do everything.
  const TokenTable* tokens = nullptr;
  // Absent: snapshot requests get NotYetAvailable.
  std::function<Result<SnapshotResult>()> snapshot;
  // Absent: always writable. Reported by stats; a write is refused with its
  // error before it reaches the engine.
  std::function<Status()> writable;
  // Open connections, for stats. Absent: 0.
  std::function<uint64_t()> connections;
  // The log and snapshots, for stats. Absent: zero / empty.
  std::function<DurabilityState()> durability_state;
  // Request counts and latencies per type, for stats. Null: none. Not owned.
  const RequestMetrics* request_metrics = nullptr;
};

// Per-connection protocol state.
struct Session {
  Role role = Role::kNone;  // with auth off, Begin() treats it as admin
};

// Why the Verifier's alignment checks are not enough: FlatBuffers 2.0.8 checks
// a vector's 4-byte length field, not the alignment of its 8-byte elements.
// Returns `data`, or a copy of it in `storage` when `data` is not 8-byte
// aligned (the verifier checks scalar alignment relative to the buffer start).
const uint8_t* AlignPayload(const uint8_t* data, size_t size, std::vector<uint64_t>* storage);

// The protocol error code for an engine status.
fb::ErrorCode ErrorCodeOf(StatusCode code);

class Dispatcher {
 public:
  Dispatcher(Engine* engine, DispatchOptions options);

  enum class Next : uint8_t {
    kAnswered,  // the response is finished in the builder
    kQuery,     // run `*query` (with others), then FinishQuery
    kBatch,     // `*query` is a batch's template: expand (PlaceQuery), run, FinishBatch
    kBlocking,  // run RunBlocking on a writer thread with the same bytes
  };

  // `data` must be 8-byte aligned (AlignPayload). Verifies, checks auth and
  // roles, and answers inline requests and every error into `fbb` (cleared
  // first). *request_id is the request's id (0 when unreadable). `verified`
  // (optional) receives the request once it passed the verifier, else null
  // (the server's metrics read its type).
  Next Begin(const uint8_t* data, size_t size, Session* session,
             flatbuffers::FlatBufferBuilder* fbb, Query* query, uint64_t* request_id,
             const fb::Request** verified = nullptr) const;

  // Encodes the answer to a query Begin() prepared, given RunMany's status and
  // result for it.
  void FinishQuery(uint64_t request_id, const Query& query, const Status& status,
                   const QueryResult& result, flatbuffers::FlatBufferBuilder* fbb) const;

  // For a request Begin() classified as kBatch (`request` is its `verified`):
  // the number of queries (1..kMaxBatchQueries), and query i made from a copy
  // of the template: `*q` (holding that copy) is moved to the i-th centre.
  static size_t BatchSize(const fb::Request& request);
  static void PlaceQuery(const fb::Request& request, size_t i, Query* q);

  // Encodes the answers to a batch's n queries (in order) into one
  // QueryBatchReply, or into the error of the first query that failed.
  void FinishBatch(uint64_t request_id, const Query* queries, const Status* statuses,
                   const QueryResult* results, size_t n, flatbuffers::FlatBufferBuilder* fbb) const;

  // Runs a request Begin() classified as kBlocking. `data` is the same
  // (aligned) bytes; they are trusted to have passed Begin().
  void RunBlocking(const uint8_t* data, size_t size, flatbuffers::FlatBufferBuilder* fbb) const;

  // Whether `data` (aligned) is a Request whose body is a write batch. The
  // check is shallow (the nested batch is not verified: Begin() does that),
  // so the server can tell a connection's next pipelined write apart before
  // it runs Begin() on it.
  bool IsWrite(const uint8_t* data, size_t size) const;

  // Runs consecutive write batches of one connection in order, each one a
  // request Begin() classified as kBlocking (same aligned bytes). Each batch
  // is applied as soon as the one before it is, and the log is waited for
  // once, after the last: the log keeps ticket order, so that one wait gives
  // every batch the durability it asked for, and a connection's pipelined
  // batches share one group commit instead of each waiting for its own.
  // After the wait, emit(i) is called for each request in order, with its
  // response in `fbb`. A batch that is refused, or whose wait fails, gets its
  // error; the others are unaffected (each is whole or not at all).
  void RunWrites(std::span<const std::span<const uint8_t>> requests,
                 flatbuffers::FlatBufferBuilder* fbb,
                 const std::function<void(size_t)>& emit) const;

  // Everything at once, for tests and the fuzzer: the response payload.
  void Handle(const uint8_t* data, size_t size, Session* session,
              std::vector<uint8_t>* response) const;

  // An error response, e.g. for a frame the server refuses.
  static void EncodeError(uint64_t request_id, fb::ErrorCode code, const std::string& message,
                          flatbuffers::FlatBufferBuilder* fbb);

  const DispatchOptions& options() const { return options_; }

 private:
  void Inline(const fb::Request& req, Session* session, flatbuffers::FlatBufferBuilder* fbb) const;
  Status DecodeQuery(const fb::QueryRequest& q, Query* out) const;
  Status CheckBatch(const fb::QueryBatch& b, const Query& tmpl) const;

  Engine* engine_;
  DispatchOptions options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace worlddb::net
