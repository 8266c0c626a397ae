// Engine: the world — a schema and N shards, each owned by its own thread.
//
// Threading model (docs/ARCHITECTURE.md "Concurrency"):
//   * Entities are partitioned over shards by a hash of their id. Each shard's
//     data is touched only by its thread, so the store needs no lock; work
//     reaches a shard through its lock-free MPSC queue (engine/mpsc_queue.h).
//   * Any number of client threads may call any method at once. Calls block
//     until the shards answered; no mutex sits on the write or query path
//     (only CreateKind/AlterKind serialize among themselves).
//   * Every write and schema change takes a ticket from one atomic counter;
//     every shard applies them in ticket order, so all shards see the same
//     sequence of changes (the future write-ahead log's LSN order).
//   * A write batch is applied in two phases: each shard validates its part
//     (Shard::Prepare), and the batch is committed on every shard only if every
//     shard accepted it; otherwise it is dropped everywhere and Apply returns
//     the error. An invalid batch leaves the world untouched.
//
// Guarantees:
//   * A query never sees a torn entity: a shard runs a query between two
//     writes, never inside one.
//   * A query issued after Apply() returned sees all of that batch.
//   * A query running concurrently with a multi-shard batch may see the batch
//     on some shards and not yet on others (per-shard atomicity, no global
//     snapshot). Within one shard it sees all or none of the batch.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/batch_generated.h"
#include "engine/commit_log.h"
#include "engine/constants.h"
#include "engine/query.h"
#include "engine/schema.h"
#include "engine/shard.h"
#include "engine/status.h"

namespace worlddb {

struct EngineOptions {
  Rect world{kDefaultWorldMin, kDefaultWorldMin, kDefaultWorldMax, kDefaultWorldMax};
  uint32_t shards = 1;
  // Largest WriteBatch accepted by Apply(bytes), and the FlatBuffers verifier's
  // table budget (one table per upsert, cell and set).
  size_t max_batch_bytes = size_t{1} << 30;
  size_t max_batch_tables = size_t{1} << 26;
};

class Engine {
  struct QueryTask;
  struct Message;

 public:
  // Checks the options (world finite and non-empty, 1..256 shards).
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  ~Engine();  // Stops the shard threads; callers must have returned.
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineOptions& options() const { return options_; }
  uint32_t shard_count() const { return static_cast<uint32_t>(shards_.size()); }
  uint32_t ShardOf(uint64_t id) const;

  // ---- Durability ----
  // Every accepted change goes through `log` before it is acknowledged (see
  // engine/commit_log.h). Set once, before the first write; not owned; null
  // means durability "none".
  void SetCommitLog(CommitLog* log) { log_ = log; }
  // Applies a logged record during recovery, without logging it again.
  Result<WriteStats> Replay(RecordType type, const uint8_t* data, size_t size);
  // The log installed by SetCommitLog, or null.
  CommitLog* commit_log() const { return log_; }

  // ---- Consistent cut (snapshots: wal/snapshot_writer.h) ----
  // Checkpoint takes a ticket like a write; every shard, reaching it in ticket
  // order, parks (spin, then futex) until all shards have arrived and
  // `at_cut` has run on the calling thread. While parked, the world holds
  // exactly the changes of tickets below the cut, and no shard touches its
  // data (so at_cut may read every Shard, or fork). Queries and writes queue
  // meanwhile: at_cut's duration is the pause every request sees.
  // `prepare` runs first (shards still running) with the schema in force at
  // the cut. Afterwards the ticket is passed to the commit log (Mark), whose
  // answer is the cut's LSN. The ticket is always passed through shards and
  // log, even when a hook fails; the hook's error is then returned.
  struct CheckpointHooks {
    std::function<Status(const Schema& schema, uint64_t ticket)> prepare;
    std::function<Status(std::span<const Shard* const> shards)> at_cut;
  };
  struct CheckpointResult {
    uint64_t ticket = 0;
    bool has_lsn = false;   // false without a commit log
    uint64_t lsn = 0;       // records 1..lsn are exactly the changes before the cut
    uint64_t pause_us = 0;  // first shard parked -> shards released
  };
  Result<CheckpointResult> Checkpoint(const CheckpointHooks& hooks);

  // ---- Schema ----
  std::shared_ptr<const Schema> schema() const;
  Status CreateKind(KindDef def);
  Status AlterKind(const std::string& kind, std::vector<ColumnDef> add,
                   const std::vector<std::string>& drop);
  // Verifies and applies a SchemaChange FlatBuffer (engine/batch.fbs).
  Status ApplySchemaChange(const uint8_t* data, size_t size);

  // ---- Writes ----
  // Verifies `data` as a WriteBatch, then applies it whole or not at all, and
  // returns once it is as durable as the commit log promises.
  // `ack` may ask for less durability than the log's mode (engine/commit_log.h).
  Result<WriteStats> Apply(const uint8_t* data, size_t size, Ack ack = Ack::kMode);
  // Apply for several batches at once (the server's pipelined writes of one
  // connection): each is verified and handed to the shards before any is
  // waited for, so the shards go from one to the next without waking the
  // caller in between, and the caller waits once. The batches are applied in
  // order, each whole or not at all, as by consecutive Apply calls:
  // (*results)[i] is what Apply(batches[i], ack) would have returned and
  // (*tickets)[i] its ticket (0 when refused before it took one). Both are
  // replaced. One difference from consecutive calls: when the log fails
  // (commit_log.h), the batches already handed to the shards behind the
  // failing one are applied in memory and get the log's error, like it,
  // rather than being refused before applying; none is acknowledged.
  void ApplyMany(std::span<const std::span<const uint8_t>> batches, Ack ack,
                 std::vector<Result<WriteStats>>* results, std::vector<uint64_t>* tickets);
  // Returns once every write applied before the call is as durable as `ack`
  // asks (CommitLog::WaitAll); OK at once without a log. Writes applied with
  // Ack::kQueued and then this wait get what `ack` promises.
  Status WaitForLog(Ack ack);
  // Ticket of the last write or schema change issued.
  uint64_t last_ticket() const { return next_ticket_.load(std::memory_order_acquire) - 1; }

  // ---- Queries ----
  Status Run(const Query& q, QueryResult* out);
  // Runs n queries with one hand-off per shard (how the server batches
  // requests). statuses[i] says whether outs[i] holds an answer.
  void RunMany(const Query* queries, size_t n, QueryResult* outs, Status* statuses);
  // RunMany in two halves, for a caller with other work to do while the
  // shards run (the server encodes one round's answers meanwhile): StartMany
  // queues the queries on every shard and returns at once; FinishMany waits
  // for them and fills outs and statuses. Several may be in flight; each
  // shard runs them in the order they were started. Between the two calls,
  // queries, outs and statuses belong to the engine (neither read nor
  // written by the caller), and FinishMany must be called exactly once.
  // outs are overwritten in place, keeping their vectors' capacity: a caller
  // that reuses them (and its InFlight) for the next batch spares the shards
  // an allocation per row vector per query.
  class InFlight {
   public:
    InFlight();
    ~InFlight();  // must not be in flight (asserted)
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    bool active() const { return task_ != nullptr; }

   private:
    friend class Engine;
    std::unique_ptr<QueryTask> task_;
    std::unique_ptr<Message[]> msgs_;  // one per shard
    size_t msgs_size_ = 0;
    const Query* queries_ = nullptr;
    QueryResult* outs_ = nullptr;
    Status* statuses_ = nullptr;
    size_t n_ = 0;
    // With 2+ shards, each shard's answers before the merge, kept from one
    // StartMany to the next so that their vectors keep their capacity.
    std::vector<std::vector<QueryResult>> parts_;
  };
  void StartMany(const Query* queries, size_t n, QueryResult* outs, Status* statuses,
                 InFlight* flight);
  void FinishMany(InFlight* flight);
  Status Density(const DensityQuery& q, DensityResult* out);
  bool Get(uint64_t id, Shard::Entity* out);
  // The entities among `ids` that exist (and are of `kind`, when set), as
  // rows in the order of `ids`, with the projected `columns` (which need a
  // kind); the ids not found (or of another kind) go to `missing`.
  Status GetMany(const std::vector<uint64_t>& ids, const std::string& kind,
                 const std::vector<std::string>& columns, QueryResult* out,
                 std::vector<uint64_t>* missing);

  // ---- Introspection ----
  struct Stats {
    uint64_t entities = 0;
    std::vector<std::pair<std::string, uint64_t>> entities_per_kind;
    ShardMemory memory;
    uint64_t schema_version = 0;
    uint64_t last_ticket = 0;
    // Since Open: write batches applied and refused, operations applied,
    // queries answered (each query of a RunMany counts).
    uint64_t batches_applied = 0, batches_refused = 0, operations_applied = 0, queries = 0;
  };
  Stats GetStats();
  // Per shard, for metrics: messages queued and not yet taken, messages
  // handled, and the time its thread spent handling them (including a
  // snapshot's pause while parked; not the idle spinning, nor waiting for
  // other shards' votes). Reads relaxed atomics: no message to the shards,
  // callable from any thread at any rate.
  struct ShardLoad {
    uint64_t queue_depth = 0, messages = 0, busy_ns = 0;
  };
  std::vector<ShardLoad> ShardLoads() const;
  size_t size();
  ShardMemory Memory();
  std::string CheckInvariants();
  // Runs fn(shard, index) on every shard's own thread and waits.
  void ForEachShard(const std::function<void(Shard&, uint32_t)>& fn);

 private:
  struct Runner;
  struct WriteTask;
  struct StartedWrite;
  struct SchemaTask;
  struct BarrierTask;

  enum class MessageType : uint8_t;
  void SendToAll(MessageType type, uint64_t ticket, void* task, Message* msgs);
  template <class Task>
  void Broadcast(MessageType type, uint64_t ticket, Task* task);
  using SchemaFn =
      std::function<Result<std::shared_ptr<const Schema>>(const Schema&, SchemaChange*)>;
  using EncodeFn = std::function<std::vector<uint8_t>()>;

  explicit Engine(const EngineOptions& options);
  Status ChangeSchema(const SchemaFn& fn, const EncodeFn& encode, bool log);
  Status ApplyDecodedSchemaChange(const uint8_t* data, size_t size, bool log);
  Result<WriteStats> ApplyBatch(const fb::WriteBatch& batch, std::span<const uint8_t> bytes,
                                bool log, Ack ack = Ack::kMode);
  // ApplyBatch in two halves: StartWrite takes the batch's ticket and hands it
  // to every shard (or refuses it, taking no ticket); FinishWrite waits for
  // the shards and passes the ticket to the log. `bytes` must outlive it.
  Status StartWrite(const fb::WriteBatch& batch, std::span<const uint8_t> bytes, bool log,
                    StartedWrite* w);
  Result<WriteStats> FinishWrite(StartedWrite* w, Ack ack);
  static Result<const fb::WriteBatch*> VerifyBatch(const uint8_t* data, size_t size,
                                                   const EngineOptions& o);

  EngineOptions options_;
  CommitLog* log_ = nullptr;
  std::vector<std::unique_ptr<Runner>> shards_;
  alignas(64) std::atomic<uint64_t> next_ticket_{1};

  // Counters for GetStats(): relaxed, one increment per call, not per row.
  std::atomic<uint64_t> batches_applied_{0}, batches_refused_{0}, operations_applied_{0},
      queries_{0};

  mutable std::mutex schema_mu_;  // schema changes and schema() only
  std::shared_ptr<const Schema> schema_;
};

}  // namespace worlddb
