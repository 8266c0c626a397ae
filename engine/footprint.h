// Footprint: what one entity costs in the engine's memory, per structure,
// computed from the structures themselves, so capacity planning
// (wal/capacity.h, `worldctl capacity`) follows the code rather than a table
// of constants. The figures are the engine's own accounting (Shard::Memory,
// reported as StatsReply.memory_bytes and as the benchmarks'
// bytes_per_entity): capacities, not sizes, so a half-used chunk counts whole.
//
//   * table: id (8) plus each column's value, in chunks of
//     kChunkRows rows per kind per shard; a string column holds a
//     std::string per row plus, past the inline buffer, its heap capacity
//     (measured by assigning a string of the assumed average length, as the
//     column does);
//   * id map: 16-byte slots at the load IdMap's growth policy leaves after
//     loading the shard's entities in batches of `load_batch`
//     (IdMap::ReservedCapacity, the policy itself);
//   * index: a QuadTree built from a sample of up to kIndexSample uniformly
//     spread points per shard, inserted in batches as the shard inserts new
//     entities (BulkInsert): leaf entries (x, y, z, a copy of the id, the
//     row), nodes, the row map. Clustered
//     worlds cost a few bytes more per entity (docs/benchmarks.md).
//
// Thread safety: pure functions (the sample tree is local).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/schema.h"

namespace worlddb {

struct EntityFootprint {
  double table = 0, id_map = 0, index = 0;  // bytes per entity
  double total() const { return table + id_map + index; }
};

struct FootprintOptions {
  uint32_t shards = 1;
  // Assumed average length in bytes of string values (capped by each
  // column's max_length).
  uint32_t avg_string_bytes = 16;
  // Entities per write batch while the world was loaded (over all shards).
  uint64_t load_batch = 10000;
};

// Points sampled per shard to measure the index (more are extrapolated).
inline constexpr uint64_t kIndexSample = uint64_t{1} << 18;

// Bytes per entity of kind `def` when the world holds `entities` of that kind
// (spread evenly over the shards) and `world_entities` in all (the id map is
// shared by the kinds of a shard). Zero entities: all zero.
EntityFootprint MeasureFootprint(const KindDef& def, uint64_t entities, uint64_t world_entities,
                                 const FootprintOptions& options);

// Bytes of one row of `def` in its table, chunk rounding aside.
double TableBytesPerRow(const KindDef& def, uint32_t avg_string_bytes);

// Bytes of the encoded WriteBatch holding `moves` moves (BatchBuilder), the
// exact payload the log stores and the protocol carries.
size_t EncodedMoveBatchBytes(uint32_t moves);

}  // namespace worlddb
