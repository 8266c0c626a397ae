// Capacity: what a world will cost — memory, log bandwidth and snapshot
// size — for a description of its kinds, column types, entity counts and
// update rates (`worldctl capacity`, docs/operations.md "Capacity planning").
//
//   * memory: engine/footprint.h (the engine's own accounting: tables, id
//     map, index; what StatsReply.memory_bytes reports). The process's RSS
//     adds the allocator's slack, buffers and code on top (docs/benchmarks.md
//     has heap_bytes_per_entity beside bytes_per_entity);
//   * log: moves arrive in WriteBatches of `move_batch` moves; each batch is
//     one log record, FramedSize(encoded batch) bytes (wal/log_format.h), the
//     batch encoded with BatchBuilder as a client would;
//   * snapshot: the file layout of wal/snapshot_format.h — header, the
//     schema section (each kind encoded as the writer does), one block per
//     4,096 rows of a kind in a shard, footer.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/footprint.h"
#include "engine/schema.h"
#include "engine/status.h"

namespace worlddb::wal {

struct KindLoad {
  KindDef def;
  uint64_t entities = 0;
  double moves_per_entity_per_s = 0;  // e.g. 20 for an entity moved every 50 ms tick
};

struct WorldLoad {
  std::vector<KindLoad> kinds;
  uint32_t shards = 1;
  uint32_t avg_string_bytes = 16;  // assumed average length of string values
  uint32_t move_batch = 1000;      // moves per WriteBatch (one log record)
  uint64_t load_batch = 10000;     // entities per WriteBatch when the world was loaded
};

struct KindEstimate {
  std::string kind;
  uint64_t entities = 0;
  EntityFootprint per_entity;  // bytes per entity, by structure
  double memory_bytes = 0;     // per_entity.total() * entities
  double moves_per_s = 0;      // all entities of the kind
  double log_bytes_per_s = 0;  // moves_per_s * log_bytes_per_move
  double snapshot_bytes = 0;   // this kind's blocks
};

struct CapacityEstimate {
  std::vector<KindEstimate> kinds;
  double log_bytes_per_move = 0;  // framed record bytes / move_batch
  double memory_bytes = 0, moves_per_s = 0, log_bytes_per_s = 0;
  double snapshot_bytes = 0;  // the whole file
};

// Checks the description (kind names valid and distinct, columns valid,
// rates finite and >= 0, 1..256 shards, batches >= 1) and estimates.
Result<CapacityEstimate> EstimateCapacity(const WorldLoad& load);

// Framed log bytes of one WriteBatch record of `moves` moves.
uint64_t LogBytesPerMoveBatch(uint32_t moves);

// Bytes of a snapshot block section for `rows` rows of `def` in one shard
// (all its blocks), strings at `avg_string_bytes`.
double SnapshotBlockBytes(const KindDef& def, uint64_t rows, uint32_t avg_string_bytes);

}  // namespace worlddb::wal
