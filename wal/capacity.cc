#include "wal/capacity.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/constants.h"
#include "engine/schema_codec.h"
#include "wal/log_format.h"
#include "wal/snapshot_format.h"

namespace worlddb::wal {
namespace {

// Payload bytes of one value in a snapshot block (strings: the u32 length;
// their bytes are added separately).
size_t SnapshotValueBytes(ColumnType t) {
  switch (t) {
    case ColumnType::kBool:
      return 1;
    case ColumnType::kI32:
    case ColumnType::kF32:
      return 4;
    case ColumnType::kI64:
    case ColumnType::kF64:
      return 8;
    case ColumnType::kString:
      return 4;
  }
  return 0;
}

// One block of `rows` rows.
double BlockBytes(const KindDef& def, uint64_t rows, uint32_t avg_string_bytes) {
  double bytes = static_cast<double>(kBlockHeaderBytes + Pad8(def.columns.size()));
  bytes += 4.0 * static_cast<double>(Pad8(rows * 8));  // ids, x, y, z
  for (const ColumnDef& c : def.columns) {
    bytes += static_cast<double>(Pad8(rows * SnapshotValueBytes(c.type)));
    if (c.type == ColumnType::kString) {
      const uint32_t max_len = c.max_length == 0 ? kDefaultStringLength : c.max_length;
      bytes += static_cast<double>(Pad8(rows * std::min(avg_string_bytes, max_len)));
    }
  }
  return bytes;
}

}  // namespace

uint64_t LogBytesPerMoveBatch(uint32_t moves) { return FramedSize(EncodedMoveBatchBytes(moves)); }

double SnapshotBlockBytes(const KindDef& def, uint64_t rows, uint32_t avg_string_bytes) {
  if (rows == 0) return 0;
  // Rows per block: a table chunk, fewer if a block would pass the writer's
  // buffer (long strings).
  uint64_t per_block = kSnapshotBlockRows;
  while (per_block > 1 &&
         BlockBytes(def, per_block, avg_string_bytes) > static_cast<double>(kSnapshotBufferBytes)) {
    per_block /= 2;
  }
  const uint64_t full = rows / per_block, rest = rows % per_block;
  return static_cast<double>(full) * BlockBytes(def, per_block, avg_string_bytes) +
         (rest ? BlockBytes(def, rest, avg_string_bytes) : 0.0);
}

Result<CapacityEstimate> EstimateCapacity(const WorldLoad& load) {
  if (load.shards < 1 || load.shards > 256) {
    return Status::InvalidArgument("shards " + std::to_string(load.shards) + ": must be 1..256");
  }
  if (load.move_batch < 1) return Status::InvalidArgument("move batch must be at least 1");
  if (load.load_batch < 1) return Status::InvalidArgument("load batch must be at least 1");
  if (load.kinds.empty()) return Status::InvalidArgument("no kinds described");
  // The schema's own checks: names, column types and defaults, max lengths.
  std::shared_ptr<const Schema> s = std::make_shared<Schema>();
  for (const KindLoad& k : load.kinds) {
    SchemaChange change;
    auto next = s->WithKind(k.def, &change);
    if (!next.ok())
      return Status::InvalidArgument("kind '" + k.def.name + "': " + next.status().message());
    s = next.value();
    if (!std::isfinite(k.moves_per_entity_per_s) || k.moves_per_entity_per_s < 0) {
      return Status::InvalidArgument("kind '" + k.def.name +
                                     "': moves per entity per second must be a finite number >= 0");
    }
  }
  uint64_t world_entities = 0;
  for (const KindLoad& k : load.kinds) world_entities += k.entities;

  CapacityEstimate e;
  e.log_bytes_per_move =
      static_cast<double>(LogBytesPerMoveBatch(load.move_batch)) / load.move_batch;
  FootprintOptions fo;
  fo.shards = load.shards;
  fo.avg_string_bytes = load.avg_string_bytes;
  fo.load_batch = load.load_batch;
  double schema_bytes = 0;
  for (const KindLoad& k : load.kinds) {
    KindEstimate ke;
    ke.kind = k.def.name;
    ke.entities = k.entities;
    ke.per_entity = MeasureFootprint(k.def, k.entities, world_entities, fo);
    ke.memory_bytes = ke.per_entity.total() * static_cast<double>(k.entities);
    ke.moves_per_s = k.moves_per_entity_per_s * static_cast<double>(k.entities);
    ke.log_bytes_per_s = ke.moves_per_s * e.log_bytes_per_move;
    // Blocks per shard: the shards hold the kind's entities evenly.
    const uint64_t per_shard = k.entities / load.shards, extra = k.entities % load.shards;
    ke.snapshot_bytes = static_cast<double>(load.shards - extra) *
                            SnapshotBlockBytes(k.def, per_shard, load.avg_string_bytes) +
                        static_cast<double>(extra) *
                            SnapshotBlockBytes(k.def, per_shard + 1, load.avg_string_bytes);
    schema_bytes += static_cast<double>(Pad8(4 + EncodeCreateKind(k.def).size()));
    e.memory_bytes += ke.memory_bytes;
    e.moves_per_s += ke.moves_per_s;
    e.log_bytes_per_s += ke.log_bytes_per_s;
    e.snapshot_bytes += ke.snapshot_bytes;
    e.kinds.push_back(std::move(ke));
  }
  e.snapshot_bytes += static_cast<double>(kFileHeaderBytes + kFooterBytes) + schema_bytes;
  return e;
}

}  // namespace worlddb::wal
