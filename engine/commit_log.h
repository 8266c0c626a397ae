// CommitLog: the seam between the engine and durability. The engine hands it
// every change it accepted, in its write order, and acknowledges the change to
// the caller only when Commit() returned OK. wal/ implements it; an engine
// without one runs with durability "none".
//
// Contract
//   * The engine calls Commit() once for every ticket (write batch or schema
//     change), from the thread that issued the change, after every shard
//     decided. Calls for different tickets may arrive concurrently and out of
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

class CommitLog {
 public:
  virtual ~CommitLog() = default;
  virtual Status Commit(uint64_t ticket, RecordType type, std::span<const uint8_t> record) = 0;
  // OK while writes may proceed; otherwise the error that stopped them.
  virtual Status Writable() const = 0;
};

}  // namespace worlddb
