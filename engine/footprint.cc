#include "engine/footprint.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/constants.h"
#include "engine/id_map.h"
#include "index/quadtree.h"

namespace worlddb {
namespace {

// Heap bytes the engine accounts for one string value of `len` bytes set
// into a column whose default is `dflt` (Column::MemoryBytes: capacity + 1
// once the string left its inline buffer).
double StringHeapBytes(const std::string& dflt, size_t len) {
  std::string s = dflt;             // Column::Resize fills new rows with the default
  s.assign(std::string(len, 'x'));  // Column::SetString
  return s.capacity() > 15 ? static_cast<double>(s.capacity() + 1) : 0.0;
}

size_t ValueBytes(ColumnType t) {
  switch (t) {
    case ColumnType::kBool:
      return sizeof(uint8_t);
    case ColumnType::kI32:
      return sizeof(int32_t);
    case ColumnType::kI64:
      return sizeof(int64_t);
    case ColumnType::kF32:
      return sizeof(float);
    case ColumnType::kF64:
      return sizeof(double);
    case ColumnType::kString:
      return sizeof(std::string);
  }
  return 0;
}

uint64_t CeilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// Slots of one shard's id map after `n` entities arrived in batches of `b`.
uint64_t IdMapSlots(uint64_t n, uint64_t b) {
  b = std::max<uint64_t>(b, 1);
  uint64_t size = 0, cap = 0;
  while (size < n) {
    const uint64_t next = size + std::min(b, n - size);
    if (next > IdMap::MaxSize(cap)) cap = IdMap::ReservedCapacity(cap, next);
    // Batches that fit without growth, all at once.
    const uint64_t fit = std::min((n - next) / b, (IdMap::MaxSize(cap) - next) / b);
    size = next + fit * b;
  }
  return cap;
}

// Index bytes per entry for `n` entries in one tree, loaded in batches of `b`.
double IndexBytesPerEntry(uint64_t n, uint64_t b) {
  const uint64_t sample = std::min(n, kIndexSample);
  b = std::clamp<uint64_t>(b, 1, sample);
  QuadTree tree({kDefaultWorldMin, kDefaultWorldMin, kDefaultWorldMax, kDefaultWorldMax});
  std::mt19937_64 rng(42);
  // The spread does not matter for uniform points (the tree adapts to the
  // density); the aoi-1m world's side.
  std::uniform_real_distribution<double> coord(0.0, 10000.0);
  std::vector<uint32_t> rows;
  std::vector<double> xs, ys;
  for (uint64_t done = 0; done < sample;) {
    const uint64_t m = std::min(b, sample - done);
    rows.resize(m);
    xs.resize(m);
    ys.resize(m);
    for (uint64_t i = 0; i < m; ++i) {
      rows[i] = static_cast<uint32_t>(done + i);
      xs[i] = coord(rng);
      ys[i] = coord(rng);
    }
    tree.BulkInsert(rows.data(), xs.data(), ys.data(), m);
    done += m;
  }
  return static_cast<double>(tree.MemoryBytes()) / static_cast<double>(sample);
}

}  // namespace

double TableBytesPerRow(const KindDef& def, uint32_t avg_string_bytes) {
  double bytes = sizeof(uint64_t);  // id (z lives in the index's leaves)
  for (const ColumnDef& c : def.columns) {
    bytes += static_cast<double>(ValueBytes(c.type));
    if (c.type == ColumnType::kString) {
      const uint32_t max_len = c.max_length == 0 ? kDefaultStringLength : c.max_length;
      const std::string* dflt = std::get_if<std::string>(&c.default_value);
      bytes += StringHeapBytes(dflt ? *dflt : std::string(), std::min(avg_string_bytes, max_len));
    }
  }
  return bytes;
}

EntityFootprint MeasureFootprint(const KindDef& def, uint64_t entities, uint64_t world_entities,
                                 const FootprintOptions& options) {
  EntityFootprint f;
  if (entities == 0) return f;
  const uint64_t shards = std::max<uint32_t>(options.shards, 1);
  const uint64_t per_shard = CeilDiv(entities, shards);
  const uint64_t world_per_shard = CeilDiv(std::max(world_entities, entities), shards);
  const uint64_t batch_per_shard = CeilDiv(std::max<uint64_t>(options.load_batch, 1), shards);
  const double n = static_cast<double>(per_shard);

  // Table: whole chunks per shard; out-of-line string bytes per row.
  const double fixed = TableBytesPerRow(def, 0);
  const double strings = TableBytesPerRow(def, options.avg_string_bytes) - fixed;
  const double chunked_rows = static_cast<double>(CeilDiv(per_shard, kChunkRows) * kChunkRows);
  f.table = fixed * chunked_rows / n + strings;

  // Id map: the shard's map holds every kind; this kind pays its share.
  const uint64_t slots = IdMapSlots(world_per_shard, batch_per_shard);
  f.id_map = static_cast<double>(slots) * 16.0 / static_cast<double>(world_per_shard);

  f.index = IndexBytesPerEntry(per_shard, batch_per_shard);
  return f;
}

size_t EncodedMoveBatchBytes(uint32_t moves) {
  BatchBuilder b;
  // Ids and positions vary as in a real tick; a move is a fixed-size struct,
  // so the values do not change the size.
  for (uint32_t i = 0; i < moves; ++i) {
    b.Move(uint64_t{1000003} * i + 17, 0.5 * i, 10000.0 - 0.25 * i, 0);
  }
  return b.Finish().size();
}

}  // namespace worlddb
