// CommitLog: the seam between the engine and durability. The engine hands it
// every change it accepted, in its write order, and acknowledges the change to
// the caller only when Commit() returned OK. wal/ implements it; an engine
// without one runs with durability "none".
//
// Contract
//   * The engine calls Commit() or Mark() once for every ticket (write batch,
//     schema change, snapshot barrier), from the thread that issued it, after
//     every shard reached it. Calls for different tickets may arrive concurrently and out of
//     order; the implementation persists records in ticket order.
//   * An empty `record` means the change was refused: nothing is logged, the
//     call only lets later tickets through.
//   * Commit() returns once the record is as durable as the implementation's
//     mode promises, or the error saying why it cannot be; it never reports
//     success for a record it could not persist.
//   * The engine applies a change to memory before Commit() (so that
//     validation stays in the shards and group commit can gather concurrent
//     batches). If Commit() fails, the caller gets the error and the change is
//     not acknowledged, although queries may already see it; Writable() then
//     fails and the engine refuses further writes before applying them. After
//     a restart only acknowledged (logged) changes exist.
//
// Thread safety: implementations must accept concurrent calls.
#pragma once

#include <cstdint>
#include <span>

#include "engine/status.h"

namespace worlddb {

enum class RecordType : uint8_t {
  kWriteBatch = 1,    // a WriteBatch FlatBuffer (engine/batch.fbs)
  kSchemaChange = 2,  // a SchemaChange FlatBuffer (engine/batch.fbs)
};

// How durable a change must be before Commit() returns. A request may ask for
// less than the log's mode, never for more.
enum class Ack : uint8_t {
  kMode = 0,     // what the log's mode promises (e.g. after fdatasync in "always")
  kWritten = 1,  // once the record reached the kernel (survives a process crash)
  kQueued = 2,   // once the record has its place in the log (lost if the process dies first)
};

class CommitLog {
 public:
  virtual ~CommitLog() = default;
  virtual Status Commit(uint64_t ticket, RecordType type, std::span<const uint8_t> record,
                        Ack ack = Ack::kMode) = 0;
  // Passes `ticket` through like an empty Commit and returns the LSN of the
  // last record logged before it: what the engine applied before that ticket
  // is exactly records 1..LSN. The snapshot barrier uses it.
  virtual Result<uint64_t> Mark(uint64_t ticket) = 0;
  // Returns once records 1..lsn are as durable as the mode promises, or the
  // error that stopped the log.
  virtual Status WaitDurable(uint64_t lsn) = 0;
  // Returns once every record sequenced before the call is as durable as
  // `ack` asks (kQueued: at once), or the error that stopped the log. So
  // Commit(..., Ack::kQueued) followed by WaitAll(ack) gives the record what
  // Commit(..., ack) would have; consecutive records of one caller then share
  // one wait (the server's writes of one connection).
  virtual Status WaitAll(Ack ack) = 0;
  // OK while writes may proceed; otherwise the error that stopped them.
  virtual Status Writable() const = 0;
};

}  // namespace worlddb
