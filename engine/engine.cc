#include "engine/engine.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstring>

#include "engine/completion.h"
#include "engine/mpsc_queue.h"
#include "engine/schema_codec.h"

namespace worlddb {

enum class Engine::MessageType : uint8_t {
  kWrite,
  kSchema,
  kQuery,
  kDensity,
  kCall,
  kStop,
  kBarrier
};

struct Engine::Message : QueueNode {
  using Type = MessageType;
  Type type = Type::kStop;
  uint64_t ticket = 0;  // kWrite, kSchema
  void* task = nullptr;
};

struct Engine::WriteTask {
  explicit WriteTask(uint32_t shards)
      : parts(shards), errors(shards), stats(shards), votes_left(shards), done(shards) {}
  const fb::WriteBatch* batch = nullptr;
  std::vector<BatchPart> parts;
  std::vector<Status> errors;
  std::vector<WriteStats> stats;
  std::atomic<uint32_t> votes_left;
  std::atomic<bool> failed{false};
  std::atomic<uint32_t> decision{0};  // 0 pending, 1 commit, 2 abort
  Completion done;
  // Every shard, so that the last voter can wake those asleep on the decision.
  const std::vector<std::unique_ptr<Runner>>* runners = nullptr;
};

// A write batch from StartWrite to FinishWrite: the shards read the task and
// their messages until they counted `task.done` down.
struct Engine::StartedWrite {
  explicit StartedWrite(uint32_t shards) : task(shards), msgs(shards) {}
  WriteTask task;
  std::vector<Message> msgs;
  std::span<const uint8_t> bytes;
  uint64_t ticket = 0;
  bool log = false;
};

struct Engine::SchemaTask {
  explicit SchemaTask(uint32_t shards) : done(shards) {}
  std::shared_ptr<const Schema> next;
  SchemaChange change;
  Completion done;
};

struct Engine::QueryTask {
  explicit QueryTask(uint32_t shards)
      : results(shards), statuses(shards), truncated(shards), done(shards) {}
  // kQuery
  const Query* queries = nullptr;
  const Status* valid = nullptr;  // queries whose static check failed are skipped
  size_t n = 0;
  // One shard writes straight into the caller's results; with more, each
  // writes its own part (results[shard]) and FinishMany merges them.
  QueryResult* direct = nullptr;
  std::vector<std::vector<QueryResult>> results;
  std::vector<std::vector<Status>> statuses;
  std::vector<std::vector<uint8_t>> truncated;
  // kDensity
  const DensityQuery* density = nullptr;
  std::vector<DensityResult> densities;
  // kCall
  const std::function<void(Shard&, uint32_t)>* fn = nullptr;
  Completion done;
};

// A checkpoint's barrier: shards count `arrived` down when they park at the
// ticket, wait for `released`, and count `left` down once they no longer
// touch the task.
struct Engine::BarrierTask {
  explicit BarrierTask(uint32_t shards) : arrived(shards), left(shards), arrive_ns(shards) {}
  Completion arrived;
  std::atomic<uint32_t> released{0};
  Completion left;
  std::vector<int64_t> arrive_ns;  // written by each shard before arrived.Done()
};

namespace {
int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

// One shard and the thread that owns it.
struct Engine::Runner {
  Runner(uint32_t i, const Rect& world, std::shared_ptr<const Schema> schema)
      : index(i), shard(world, std::move(schema)) {}

  // Any thread.
  void Send(Message* m) {
    pushed.fetch_add(1, std::memory_order_relaxed);
    queue.Push(m);
    Ring();
  }
  // Wakes the thread if it sleeps (for a message, or for a write's decision).
  void Ring() {
    if (sleeping.load(std::memory_order_seq_cst)) {
      doorbell.fetch_add(1, std::memory_order_seq_cst);
      FutexWakeAll(&doorbell);
    }
  }

  // The shard's thread.
  void Loop();
  void Handle(Message* m);
  void Advance();
  bool TryFinishWrite();
  void RunQueries(QueryTask* t);

  const uint32_t index;
  Shard shard;
  MpscQueue queue;
  alignas(64) std::atomic<uint32_t> sleeping{0};
  std::atomic<uint32_t> doorbell{0};
  std::thread thread;

  // Load figures for Engine::ShardLoads (metrics): producers count pushes,
  // the shard's thread alone writes `popped` and `busy_ns` (load + store, no
  // read-modify-write). Relaxed: a scrape may see them a little stale.
  alignas(64) std::atomic<uint64_t> pushed{0};
  alignas(64) std::atomic<uint64_t> popped{0};
  std::atomic<uint64_t> busy_ns{0};
  void AddBusy(int64_t since_ns) {
    busy_ns.store(
        busy_ns.load(std::memory_order_relaxed) + static_cast<uint64_t>(SteadyNs() - since_ns),
        std::memory_order_relaxed);
  }

  // Touched only by the shard's thread.
  uint64_t next_ticket = 1;
  std::vector<Message*> stash;  // writes and schema changes that arrived early
  Message* pending = nullptr;   // a prepared write waiting for the other shards' votes
  bool stop = false;
};

void Engine::Runner::Loop() {
  int idle = 0;
  for (;;) {
    if (Message* m = static_cast<Message*>(queue.Pop())) {
      const int64_t t0 = SteadyNs();
      popped.store(popped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      Handle(m);
      AddBusy(t0);
      idle = 0;
      continue;
    }
    if (pending) {
      // Waiting for other shards' votes: keep answering queries meanwhile.
      // Only the commit and what follows it counts as busy, not the wait.
      auto* t = static_cast<WriteTask*>(pending->task);
      if (t->decision.load(std::memory_order_acquire) == 0) {
        if (++idle < 64) {
          CpuRelax();
          continue;
        }
        // Sleep until a message or the decision: the last voter stores the
        // decision, then rings every sleeping shard (seq_cst on both sides,
        // so either it sees `sleeping` or this thread sees the decision).
        // Sleeping rather than yielding matters on a machine with few
        // cores: the other shard is usually still preparing its part, and
        // a yield loop takes the CPU from it and from the event loop.
        const uint32_t bell = doorbell.load(std::memory_order_seq_cst);
        sleeping.store(1, std::memory_order_seq_cst);
        if (queue.Empty() && t->decision.load(std::memory_order_seq_cst) == 0)
          FutexWait(&doorbell, bell);
        sleeping.store(0, std::memory_order_seq_cst);
        idle = 0;
      } else {
        const int64_t t0 = SteadyNs();
        TryFinishWrite();
        Advance();
        AddBusy(t0);
        idle = 0;
      }
      continue;
    }
    if (stop && stash.empty()) return;
    if (++idle < 512) {
      CpuRelax();
      continue;
    }
    // Sleep until a producer rings. The doorbell value is read before the
    // queue is re-checked, so a push that lands in between changes it and
    // FutexWait returns at once.
    const uint32_t bell = doorbell.load(std::memory_order_seq_cst);
    sleeping.store(1, std::memory_order_seq_cst);
    if (queue.Empty()) FutexWait(&doorbell, bell);
    sleeping.store(0, std::memory_order_seq_cst);
    idle = 0;
  }
}

void Engine::Runner::Handle(Message* m) {
  switch (m->type) {
    case Message::Type::kQuery: {
      auto* t = static_cast<QueryTask*>(m->task);
      RunQueries(t);
      t->done.Done();
      break;
    }
    case Message::Type::kDensity: {
      auto* t = static_cast<QueryTask*>(m->task);
      DensityResult& d = t->densities[index];
      d.counts.assign(size_t{t->density->nx} * t->density->ny, 0);
      t->statuses[index].assign(1, shard.Density(*t->density, &d));
      t->done.Done();
      break;
    }
    case Message::Type::kCall: {
      auto* t = static_cast<QueryTask*>(m->task);
      (*t->fn)(shard, index);
      t->done.Done();
      break;
    }
    case Message::Type::kWrite:
    case Message::Type::kSchema:
    case Message::Type::kBarrier:
      stash.push_back(m);
      Advance();
      break;
    case Message::Type::kStop:
      stop = true;
      break;
  }
}

void Engine::Runner::RunQueries(QueryTask* t) {
  QueryResult* results = t->direct;
  if (results == nullptr) {
    t->results[index].resize(t->n);
    results = t->results[index].data();
  }
  std::vector<Status>& statuses = t->statuses[index];
  std::vector<uint8_t>& truncated = t->truncated[index];
  statuses.resize(t->n);
  truncated.resize(t->n);
  shard.RunMany(t->queries, t->valid, t->n, results, statuses.data(), truncated.data());
}

// Takes stashed writes in ticket order until one must wait for votes.
void Engine::Runner::Advance() {
  for (;;) {
    if (pending && !TryFinishWrite()) return;
    auto it = std::find_if(stash.begin(), stash.end(),
                           [&](Message* m) { return m->ticket == next_ticket; });
    if (it == stash.end()) return;
    Message* m = *it;
    *it = stash.back();
    stash.pop_back();
    if (m->type == Message::Type::kSchema) {
      auto* t = static_cast<SchemaTask*>(m->task);
      shard.ApplySchema(t->next, t->change);
      ++next_ticket;
      t->done.Done();
      continue;
    }
    if (m->type == Message::Type::kBarrier) {
      auto* t = static_cast<BarrierTask*>(m->task);
      t->arrive_ns[index] = SteadyNs();
      t->arrived.Done();
      // Parked: spin briefly (the usual pause is a fork, ~ms), then sleep.
      for (int i = 0; i < 256 && t->released.load(std::memory_order_acquire) == 0; ++i) CpuRelax();
      while (t->released.load(std::memory_order_acquire) == 0) FutexWait(&t->released, 0);
      ++next_ticket;
      t->left.Done();  // last touch of the task
      continue;
    }
    auto* t = static_cast<WriteTask*>(m->task);
    Status st = shard.Prepare(*t->batch, t->parts[index]);
    if (!st.ok()) {
      t->errors[index] = std::move(st);
      t->failed.store(true, std::memory_order_release);
    }
    if (t->votes_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      t->decision.store(t->failed.load(std::memory_order_acquire) ? 2 : 1,
                        std::memory_order_seq_cst);
      // The task outlives this: its writer waits for this shard's Done too.
      for (const auto& r : *t->runners) {
        if (r.get() != this) r->Ring();
      }
    }
    pending = m;
  }
}

bool Engine::Runner::TryFinishWrite() {
  auto* t = static_cast<WriteTask*>(pending->task);
  const uint32_t d = t->decision.load(std::memory_order_acquire);
  if (d == 0) return false;
  if (d == 1) {
    t->stats[index] = shard.Commit(*t->batch, t->parts[index]);
  } else {
    shard.Abandon();
  }
  pending = nullptr;
  ++next_ticket;
  t->done.Done();  // last touch of the task
  return true;
}

// ---------------------------------------------------------------------------

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& o) {
  const Rect& w = o.world;
  if (!std::isfinite(w.min_x) || !std::isfinite(w.min_y) || !std::isfinite(w.max_x) ||
      !std::isfinite(w.max_y) || !(w.min_x < w.max_x) || !(w.min_y < w.max_y)) {
    return Status::InvalidArgument("world bounds must be finite with min < max on both axes");
  }
  if (o.shards < 1 || o.shards > 256) {
    return Status::InvalidArgument("shards must be 1..256, got " + std::to_string(o.shards));
  }
  return std::unique_ptr<Engine>(new Engine(o));
}

// Sends msgs[i], a message of `type` about `task`, to shard i. `ticket`
// orders writes and schema changes. The messages must live until the shards
// are done with the task.
void Engine::SendToAll(MessageType type, uint64_t ticket, void* task, Message* msgs) {
  for (size_t i = 0; i < shards_.size(); ++i) {
    msgs[i].type = type;
    msgs[i].ticket = ticket;
    msgs[i].task = task;
    shards_[i]->Send(&msgs[i]);
  }
}

// SendToAll, then waits until every shard has counted `done` down. The
// messages live on this stack frame until the wait returns.
template <class Task>
void Engine::Broadcast(MessageType type, uint64_t ticket, Task* task) {
  std::vector<Message> msgs(shards_.size());
  SendToAll(type, ticket, task, msgs.data());
  task->done.Wait();
}

Engine::Engine(const EngineOptions& options)
    : options_(options), schema_(std::make_shared<Schema>()) {
  for (uint32_t i = 0; i < options_.shards; ++i) {
    shards_.push_back(std::make_unique<Runner>(i, options_.world, schema_));
  }
  for (auto& r : shards_) {
    Runner* runner = r.get();
    r->thread = std::thread([runner] { runner->Loop(); });
  }
}

Engine::~Engine() {
  std::vector<Message> stops(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) shards_[i]->Send(&stops[i]);
  for (auto& r : shards_) r->thread.join();
}

uint32_t Engine::ShardOf(uint64_t id) const {
  // Low 32 bits of the hash: the id map's slot choice uses the high bits.
  return static_cast<uint32_t>((uint64_t{static_cast<uint32_t>(HashId(id))} * shards_.size()) >>
                               32);
}

std::shared_ptr<const Schema> Engine::schema() const {
  std::lock_guard<std::mutex> lock(schema_mu_);
  return schema_;
}

namespace {

// FlatBuffers verifies alignment relative to the buffer's start, so a buffer
// that itself starts off an 8-byte boundary (a network read, a log record at
// any offset) would have its structs and doubles read misaligned. Such input
// is copied into `storage` first.
const uint8_t* Aligned(const uint8_t* data, size_t size, std::vector<uint64_t>* storage) {
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) == 0) return data;
  storage->resize((size + sizeof(uint64_t) - 1) / sizeof(uint64_t));
  if (size) std::memcpy(storage->data(), data, size);
  return reinterpret_cast<const uint8_t*>(storage->data());
}

}  // namespace

Status Engine::ChangeSchema(const SchemaFn& fn, const EncodeFn& encode, bool log) {
  std::lock_guard<std::mutex> lock(schema_mu_);
  if (log && log_) WORLDDB_RETURN_IF_ERROR(log_->Writable());
  SchemaTask task(shard_count());
  auto next = fn(*schema_, &task.change);
  if (!next.ok()) return next.status();  // no ticket taken: nothing to tell the log
  task.next = next.value();
  const uint64_t ticket = next_ticket_.fetch_add(1, std::memory_order_acq_rel);
  Broadcast(MessageType::kSchema, ticket, &task);
  schema_ = task.next;
  if (log && log_) {
    const std::vector<uint8_t> record = encode();
    return log_->Commit(ticket, RecordType::kSchemaChange, record);
  }
  return Status::Ok();
}

Status Engine::CreateKind(KindDef def) {
  return ChangeSchema([&](const Schema& s, SchemaChange* c) { return s.WithKind(def, c); },
                      [&] { return EncodeCreateKind(def); }, /*log=*/true);
}

Status Engine::AlterKind(const std::string& kind, std::vector<ColumnDef> add,
                         const std::vector<std::string>& drop) {
  return ChangeSchema(
      [&](const Schema& s, SchemaChange* c) { return s.WithAlter(kind, add, drop, c); },
      [&] { return EncodeAlterKind(kind, add, drop); }, /*log=*/true);
}

Status Engine::ApplyDecodedSchemaChange(const uint8_t* data, size_t size, bool log) {
  std::vector<uint64_t> storage;
  data = Aligned(data, size, &storage);
  auto decoded = DecodeSchemaChange(data, size);
  if (!decoded.ok()) return decoded.status();
  const DecodedSchemaChange& d = decoded.value();
  const std::span<const uint8_t> bytes(data, size);
  auto encode = [&] { return std::vector<uint8_t>(bytes.begin(), bytes.end()); };
  if (d.create) {
    return ChangeSchema([&](const Schema& s, SchemaChange* c) { return s.WithKind(d.kind, c); },
                        encode, log);
  }
  return ChangeSchema(
      [&](const Schema& s, SchemaChange* c) {
        return s.WithAlter(d.kind.name, d.kind.columns, d.drop, c);
      },
      encode, log);
}

Status Engine::ApplySchemaChange(const uint8_t* data, size_t size) {
  return ApplyDecodedSchemaChange(data, size, /*log=*/true);
}

Result<const fb::WriteBatch*> Engine::VerifyBatch(const uint8_t* data, size_t size,
                                                  const EngineOptions& o) {
  if (size > o.max_batch_bytes) {
    return Status::InvalidArgument("write batch of " + std::to_string(size) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(o.max_batch_bytes));
  }
  flatbuffers::Verifier verifier(data, size, /*max_depth=*/16,
                                 static_cast<flatbuffers::uoffset_t>(o.max_batch_tables));
  if (size < sizeof(flatbuffers::uoffset_t) || !fb::VerifyWriteBatchBuffer(verifier)) {
    return Status::Corruption("write batch of " + std::to_string(size) +
                              " bytes is not a valid WriteBatch FlatBuffer (engine/batch.fbs)");
  }
  const fb::WriteBatch* batch = fb::GetWriteBatch(data);
  // The verifier (FlatBuffers 2.0.8) checks a vector's 4-byte length field
  // but not the alignment of its 8-byte elements; a builder always aligns
  // them, so a misaligned `moves` or `deletes` vector is malformed input.
  auto misaligned = [](const void* p) {
    return reinterpret_cast<uintptr_t>(p) % alignof(uint64_t) != 0;
  };
  if (batch->moves() && misaligned(batch->moves()->Data())) {
    return Status::Corruption(
        "write batch: the moves vector is not 8-byte aligned (malformed FlatBuffer)");
  }
  if (batch->deletes() && misaligned(batch->deletes()->Data())) {
    return Status::Corruption(
        "write batch: the deletes vector is not 8-byte aligned (malformed FlatBuffer)");
  }
  return batch;
}

Result<WriteStats> Engine::Replay(RecordType type, const uint8_t* data, size_t size) {
  if (type == RecordType::kSchemaChange) {
    WORLDDB_RETURN_IF_ERROR(ApplyDecodedSchemaChange(data, size, /*log=*/false));
    return WriteStats{};
  }
  if (type != RecordType::kWriteBatch) {
    return Status::Corruption("unknown record type " + std::to_string(static_cast<int>(type)));
  }
  std::vector<uint64_t> storage;
  data = Aligned(data, size, &storage);
  auto batch = VerifyBatch(data, size, options_);
  if (!batch.ok()) return batch.status();
  return ApplyBatch(*batch.value(), {data, size}, /*log=*/false);
}

Result<WriteStats> Engine::Apply(const uint8_t* data, size_t size, Ack ack) {
  std::vector<uint64_t> storage;
  data = Aligned(data, size, &storage);
  auto batch = VerifyBatch(data, size, options_);
  if (!batch.ok()) return batch.status();
  return ApplyBatch(*batch.value(), {data, size}, /*log=*/true, ack);
}

Status Engine::WaitForLog(Ack ack) { return log_ ? log_->WaitAll(ack) : Status::Ok(); }

void Engine::ApplyMany(std::span<const std::span<const uint8_t>> batches, Ack ack,
                       std::vector<Result<WriteStats>>* results, std::vector<uint64_t>* tickets) {
  struct One {
    std::vector<uint64_t> storage;  // an aligned copy, when the bytes were not
    std::unique_ptr<StartedWrite> w;
    Status refused;
  };
  std::vector<One> ones(batches.size());
  StartedWrite* last = nullptr;
  for (size_t i = 0; i < batches.size(); ++i) {
    One& one = ones[i];
    const size_t size = batches[i].size();
    const uint8_t* data = Aligned(batches[i].data(), size, &one.storage);
    auto batch = VerifyBatch(data, size, options_);
    if (!batch.ok()) {
      one.refused = batch.status();
      continue;
    }
    one.w = std::make_unique<StartedWrite>(shard_count());
    one.refused = StartWrite(*batch.value(), {data, size}, /*log=*/true, one.w.get());
    if (one.refused.ok()) last = one.w.get();
  }
  // One wait for all: every shard finishes tickets in order, so once the
  // last batch is done on every shard, so are the ones before it.
  if (last != nullptr) last->task.done.Wait();
  results->clear();
  tickets->clear();
  for (One& one : ones) {
    if (!one.refused.ok()) {
      results->push_back(std::move(one.refused));
      tickets->push_back(0);
      continue;
    }
    results->push_back(FinishWrite(one.w.get(), ack));
    tickets->push_back(one.w->ticket);
  }
}

Result<WriteStats> Engine::ApplyBatch(const fb::WriteBatch& batch, std::span<const uint8_t> bytes,
                                      bool log, Ack ack) {
  StartedWrite w(shard_count());
  WORLDDB_RETURN_IF_ERROR(StartWrite(batch, bytes, log, &w));
  return FinishWrite(&w, ack);
}

Status Engine::StartWrite(const fb::WriteBatch& batch, std::span<const uint8_t> bytes, bool log,
                          StartedWrite* w) {
  log = log && log_ != nullptr;
  if (log) WORLDDB_RETURN_IF_ERROR(log_->Writable());  // refuse before applying anything
  const uint32_t n = shard_count();
  WriteTask& task = w->task;
  task.batch = &batch;
  task.runners = &shards_;
  if (n > 1) {
    for (BatchPart& p : task.parts) p.all = false;
    if (batch.upserts()) {
      for (uint32_t i = 0; i < batch.upserts()->size(); ++i) {
        task.parts[ShardOf(batch.upserts()->Get(i)->id())].upserts.push_back(i);
      }
    }
    if (batch.moves()) {
      for (uint32_t i = 0; i < batch.moves()->size(); ++i) {
        task.parts[ShardOf(batch.moves()->Get(i)->id())].moves.push_back(i);
      }
    }
    if (batch.sets()) {
      for (uint32_t i = 0; i < batch.sets()->size(); ++i) {
        task.parts[ShardOf(batch.sets()->Get(i)->id())].sets.push_back(i);
      }
    }
    if (batch.deletes()) {
      for (uint32_t i = 0; i < batch.deletes()->size(); ++i) {
        task.parts[ShardOf(batch.deletes()->Get(i))].deletes.push_back(i);
      }
    }
  }
  w->bytes = bytes;
  w->log = log;
  w->ticket = next_ticket_.fetch_add(1, std::memory_order_acq_rel);
  SendToAll(MessageType::kWrite, w->ticket, &task, w->msgs.data());
  return Status::Ok();
}

Result<WriteStats> Engine::FinishWrite(StartedWrite* w, Ack ack) {
  WriteTask& task = w->task;
  task.done.Wait();
  const bool failed = task.failed.load(std::memory_order_acquire);
  if (w->log) {
    // A refused batch is not logged but still passes its ticket to the log.
    Status st = log_->Commit(w->ticket, RecordType::kWriteBatch,
                             failed ? std::span<const uint8_t>() : w->bytes, ack);
    if (!failed && !st.ok()) return st;
  }
  if (failed) {
    batches_refused_.fetch_add(1, std::memory_order_relaxed);
    for (Status& s : task.errors) {
      if (!s.ok()) return std::move(s);
    }
  }
  WriteStats total;
  for (const WriteStats& s : task.stats) total += s;
  batches_applied_.fetch_add(1, std::memory_order_relaxed);
  operations_applied_.fetch_add(
      total.created + total.replaced + total.moved + total.set + total.deleted,
      std::memory_order_relaxed);
  return total;
}

Result<Engine::CheckpointResult> Engine::Checkpoint(const CheckpointHooks& hooks) {
  // The ticket is taken under the schema mutex: every schema change with an
  // earlier ticket has finished (it holds the mutex until every shard applied
  // it), so schema_ is the schema at the cut.
  uint64_t ticket;
  std::shared_ptr<const Schema> schema;
  {
    std::lock_guard<std::mutex> lock(schema_mu_);
    ticket = next_ticket_.fetch_add(1, std::memory_order_acq_rel);
    schema = schema_;
  }
  Status hook = hooks.prepare ? hooks.prepare(*schema, ticket) : Status::Ok();
  const uint32_t n = shard_count();
  BarrierTask task(n);
  std::vector<Message> msgs(n);
  SendToAll(MessageType::kBarrier, ticket, &task, msgs.data());
  task.arrived.Wait();
  if (hook.ok() && hooks.at_cut) {
    std::vector<const Shard*> shards(n);
    for (uint32_t i = 0; i < n; ++i) shards[i] = &shards_[i]->shard;
    hook = hooks.at_cut(shards);
  }
  const int64_t released_ns = SteadyNs();
  task.released.store(1, std::memory_order_release);
  FutexWakeAll(&task.released);
  task.left.Wait();
  CheckpointResult r;
  r.ticket = ticket;
  const int64_t first = *std::min_element(task.arrive_ns.begin(), task.arrive_ns.end());
  r.pause_us = static_cast<uint64_t>(std::max<int64_t>(0, released_ns - first) / 1000);
  if (log_) {
    Result<uint64_t> lsn = log_->Mark(ticket);
    if (!lsn.ok()) return lsn.status();
    r.has_lsn = true;
    r.lsn = lsn.value();
  }
  if (!hook.ok()) return hook;
  return r;
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

namespace {

void AppendRow(const QueryResult& src, size_t r, QueryResult* dst) {
  dst->ids.push_back(src.ids[r]);
  dst->kinds.push_back(src.kinds[r]);
  dst->x.push_back(src.x[r]);
  dst->y.push_back(src.y[r]);
  dst->z.push_back(src.z[r]);
  if (!src.distance.empty()) dst->distance.push_back(src.distance[r]);
  for (size_t c = 0; c < src.columns.size(); ++c) {
    std::visit(
        [&](auto& out) {
          using V = std::decay_t<decltype(out)>;
          out.push_back(std::get<V>(src.columns[c].data)[r]);
        },
        dst->columns[c].data);
  }
}

// Appends every row of `src` to `dst` (whose columns match src's).
void AppendRows(const QueryResult& src, QueryResult* dst) {
  auto append = [](const auto& from, auto* to) { to->insert(to->end(), from.begin(), from.end()); };
  append(src.ids, &dst->ids);
  append(src.kinds, &dst->kinds);
  append(src.x, &dst->x);
  append(src.y, &dst->y);
  append(src.z, &dst->z);
  append(src.distance, &dst->distance);
  for (size_t c = 0; c < src.columns.size(); ++c) {
    std::visit(
        [&](auto& to) { append(std::get<std::decay_t<decltype(to)>>(src.columns[c].data), &to); },
        dst->columns[c].data);
  }
}

// Combines per-shard answers into one (distances still squared).
void Merge(const Query& q, std::vector<QueryResult*>& parts, const std::vector<bool>& truncated,
           QueryResult* out) {
  out->ClearRows();
  bool any_truncated = false;
  uint64_t count = 0, rows = 0;
  for (size_t s = 0; s < parts.size(); ++s) {
    count += parts[s]->count;
    rows += parts[s]->rows();
    any_truncated |= truncated[s];
  }
  // Projected columns are present (maybe empty) in every shard's answer.
  out->SetProjection(parts[0]->columns);
  if (q.count_only) {
    out->count = q.shape == Shape::kNearest ? std::min<uint64_t>(count, q.k) : count;
    return;
  }
  const uint64_t limit = q.limit == 0 ? UINT64_MAX : q.limit;
  const bool ordered =
      q.shape == Shape::kNearest || (q.shape == Shape::kCircle && q.order_by_distance);
  uint64_t keep =
      std::min<uint64_t>(rows, q.shape == Shape::kNearest ? std::min<uint64_t>(q.k, limit) : limit);
  if (!ordered && keep == rows) {
    // Every row of every part, in part order: whole vectors.
    for (const QueryResult* p : parts) AppendRows(*p, out);
  } else {
    struct Ref {
      uint32_t part;
      uint32_t row;
    };
    std::vector<Ref> refs;
    refs.reserve(rows);
    for (uint32_t s = 0; s < parts.size(); ++s) {
      for (uint32_t r = 0; r < parts[s]->rows(); ++r) refs.push_back({s, r});
    }
    if (ordered) {
      auto less = [&](const Ref& a, const Ref& b) {
        const double da = parts[a.part]->distance[a.row], db = parts[b.part]->distance[b.row];
        return da < db || (da == db && parts[a.part]->ids[a.row] < parts[b.part]->ids[b.row]);
      };
      std::partial_sort(refs.begin(), refs.begin() + static_cast<ptrdiff_t>(keep), refs.end(),
                        less);
    }
    for (uint64_t i = 0; i < keep; ++i) AppendRow(*parts[refs[i].part], refs[i].row, out);
  }
  out->truncated = q.shape != Shape::kNearest && (any_truncated || keep < rows);
  out->count = q.shape == Shape::kNearest ? keep : count;
}

void Finish(QueryResult* r) {
  for (double& d : r->distance) d = std::sqrt(d);
}

}  // namespace

Engine::InFlight::InFlight() = default;
Engine::InFlight::~InFlight() { assert(!active() && "Engine::InFlight destroyed in flight"); }

void Engine::RunMany(const Query* queries, size_t n, QueryResult* outs, Status* statuses) {
  InFlight flight;
  StartMany(queries, n, outs, statuses, &flight);
  FinishMany(&flight);
}

void Engine::StartMany(const Query* queries, size_t n, QueryResult* outs, Status* statuses,
                       InFlight* flight) {
  assert(!flight->active());
  queries_.fetch_add(n, std::memory_order_relaxed);
  const uint32_t shards = shard_count();
  for (size_t i = 0; i < n; ++i) statuses[i] = Shard::CheckQuery(queries[i]);
  flight->task_ = std::make_unique<QueryTask>(shards);
  QueryTask& task = *flight->task_;
  task.queries = queries;
  task.valid = statuses;
  task.n = n;
  if (shards == 1) {
    task.direct = outs;
  } else {
    flight->parts_.resize(shards);
    task.results.swap(flight->parts_);
  }
  flight->queries_ = queries;
  flight->outs_ = outs;
  flight->statuses_ = statuses;
  flight->n_ = n;
  // The messages live in the InFlight until the shards are done with them.
  if (flight->msgs_size_ < shards) {
    flight->msgs_ = std::make_unique<Message[]>(shards);
    flight->msgs_size_ = shards;
  }
  SendToAll(MessageType::kQuery, 0, &task, flight->msgs_.get());
}

void Engine::FinishMany(InFlight* flight) {
  assert(flight->active());
  QueryTask& task = *flight->task_;
  task.done.Wait();
  const Query* queries = flight->queries_;
  QueryResult* outs = flight->outs_;
  Status* statuses = flight->statuses_;
  const size_t n = flight->n_;
  const uint32_t shards = shard_count();
  std::vector<QueryResult*> parts(shards);
  std::vector<bool> truncated(shards);
  for (size_t i = 0; i < n; ++i) {
    if (!statuses[i].ok()) continue;
    for (uint32_t s = 0; s < shards && statuses[i].ok(); ++s) {
      if (!task.statuses[s][i].ok()) statuses[i] = task.statuses[s][i];
    }
    if (!statuses[i].ok()) continue;
    if (shards == 1) {
      outs[i].truncated = task.truncated[0][i];  // rows written in place
    } else {
      for (uint32_t s = 0; s < shards; ++s) {
        parts[s] = &task.results[s][i];
        truncated[s] = task.truncated[s][i];
      }
      Merge(queries[i], parts, truncated, &outs[i]);
    }
    Finish(&outs[i]);
  }
  if (shards > 1) flight->parts_.swap(task.results);
  flight->task_.reset();
}

Status Engine::Run(const Query& q, QueryResult* out) {
  Status st;
  RunMany(&q, 1, out, &st);
  return st;
}

Status Engine::Density(const DensityQuery& q, DensityResult* out) {
  WORLDDB_RETURN_IF_ERROR(Shard::CheckDensity(q));
  const uint32_t shards = shard_count();
  QueryTask task(shards);
  task.density = &q;
  task.densities.resize(shards);
  Broadcast(MessageType::kDensity, 0, &task);
  for (uint32_t s = 0; s < shards; ++s) {
    if (!task.statuses[s][0].ok()) return task.statuses[s][0];
  }
  out->nx = q.nx;
  out->ny = q.ny;
  out->counts = std::move(task.densities[0].counts);
  out->total = task.densities[0].total;
  for (uint32_t s = 1; s < shards; ++s) {
    for (size_t c = 0; c < out->counts.size(); ++c) out->counts[c] += task.densities[s].counts[c];
    out->total += task.densities[s].total;
  }
  return Status::Ok();
}

void Engine::ForEachShard(const std::function<void(Shard&, uint32_t)>& fn) {
  const uint32_t shards = shard_count();
  QueryTask task(shards);
  task.fn = &fn;
  Broadcast(MessageType::kCall, 0, &task);
}

bool Engine::Get(uint64_t id, Shard::Entity* out) {
  const uint32_t target = ShardOf(id);
  bool found = false;
  QueryTask task(1);
  const std::function<void(Shard&, uint32_t)> fn = [&](Shard& s, uint32_t) {
    found = s.Get(id, out);
  };
  task.fn = &fn;
  Message msg;
  msg.type = Message::Type::kCall;
  msg.task = &task;
  shards_[target]->Send(&msg);
  task.done.Wait();
  return found;
}

Status Engine::GetMany(const std::vector<uint64_t>& ids, const std::string& kind,
                       const std::vector<std::string>& columns, QueryResult* out,
                       std::vector<uint64_t>* missing) {
  out->Clear();
  missing->clear();
  const uint32_t shards = shard_count();
  // Each shard looks up its own ids; the answer is reassembled in request order.
  std::vector<std::vector<uint64_t>> part_ids(shards);
  std::vector<std::vector<size_t>> part_pos(shards);
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint32_t s = ShardOf(ids[i]);
    part_ids[s].push_back(ids[i]);
    part_pos[s].push_back(i);
  }
  std::vector<QueryResult> parts(shards);
  std::vector<std::vector<uint8_t>> found(shards);
  std::vector<Status> statuses(shards);
  ForEachShard([&](Shard& sh, uint32_t s) {
    statuses[s] =
        sh.GetMany(part_ids[s].data(), part_ids[s].size(), kind, columns, &parts[s], &found[s]);
  });
  for (const Status& st : statuses) WORLDDB_RETURN_IF_ERROR(st);
  // Row r of shard s's answer is the r-th id of its part that was found.
  std::vector<std::pair<uint32_t, uint32_t>> where(ids.size(), {UINT32_MAX, 0});
  for (uint32_t s = 0; s < shards; ++s) {
    uint32_t row = 0;
    for (size_t j = 0; j < part_pos[s].size(); ++j) {
      if (found[s][j]) where[part_pos[s][j]] = {s, row++};
    }
  }
  for (const ResultColumn& c : parts[0].columns) {
    ResultColumn e{c.name, c.type, c.data};
    std::visit([](auto& v) { v.clear(); }, e.data);
    out->columns.push_back(std::move(e));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (where[i].first == UINT32_MAX) {
      missing->push_back(ids[i]);
    } else {
      AppendRow(parts[where[i].first], where[i].second, out);
    }
  }
  out->count = out->ids.size();
  return Status::Ok();
}

Engine::Stats Engine::GetStats() {
  std::vector<std::vector<uint64_t>> per(shard_count());
  std::vector<ShardMemory> mem(shard_count());
  ForEachShard([&](Shard& s, uint32_t i) {
    per[i] = s.CountByKind();
    mem[i] = s.Memory();
  });
  Stats st;
  const std::shared_ptr<const Schema> sc = schema();
  st.schema_version = sc->version();
  st.entities_per_kind.resize(sc->kinds().size());
  for (size_t k = 0; k < sc->kinds().size(); ++k)
    st.entities_per_kind[k].first = sc->kinds()[k].name;
  for (uint32_t i = 0; i < shard_count(); ++i) {
    for (size_t k = 0; k < per[i].size() && k < st.entities_per_kind.size(); ++k) {
      st.entities_per_kind[k].second += per[i][k];
      st.entities += per[i][k];
    }
    st.memory.tables += mem[i].tables;
    st.memory.index += mem[i].index;
    st.memory.id_map += mem[i].id_map;
  }
  st.last_ticket = last_ticket();
  st.batches_applied = batches_applied_.load(std::memory_order_relaxed);
  st.batches_refused = batches_refused_.load(std::memory_order_relaxed);
  st.operations_applied = operations_applied_.load(std::memory_order_relaxed);
  st.queries = queries_.load(std::memory_order_relaxed);
  return st;
}

std::vector<Engine::ShardLoad> Engine::ShardLoads() const {
  std::vector<ShardLoad> out(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    const Runner& r = *shards_[i];
    out[i].messages = r.popped.load(std::memory_order_relaxed);
    const uint64_t pushed = r.pushed.load(std::memory_order_relaxed);
    // Read apart, the two may cross; a depth is never negative.
    out[i].queue_depth = pushed > out[i].messages ? pushed - out[i].messages : 0;
    out[i].busy_ns = r.busy_ns.load(std::memory_order_relaxed);
  }
  return out;
}

size_t Engine::size() {
  std::atomic<size_t> total{0};
  ForEachShard([&](Shard& s, uint32_t) { total += s.size(); });
  return total.load();
}

ShardMemory Engine::Memory() {
  std::vector<ShardMemory> per(shard_count());
  ForEachShard([&](Shard& s, uint32_t i) { per[i] = s.Memory(); });
  ShardMemory m;
  for (const ShardMemory& p : per) {
    m.tables += p.tables;
    m.index += p.index;
    m.id_map += p.id_map;
  }
  return m;
}

std::string Engine::CheckInvariants() {
  std::vector<std::string> errors(shard_count());
  ForEachShard([&](Shard& s, uint32_t i) { errors[i] = s.CheckInvariants(); });
  for (size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i].empty()) return "shard " + std::to_string(i) + ": " + errors[i];
  }
  return "";
}

}  // namespace worlddb
