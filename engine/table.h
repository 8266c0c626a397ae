// Table: the rows of one kind in one shard, stored column by column
// (structure of arrays): entity ids, z, and one Column per declared column.
// x and y live in the kind's QuadTree next to the row number (see
// index/quadtree.h), so the table never duplicates them.
//
// Rows are dense: removing a row moves the last row into the hole, so scans
// never skip and memory follows the live count. Growth adds one chunk of
// kChunkRows rows per column at a time; nothing is ever copied whole.
//
// Thread safety: none; owned by one shard's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/column.h"
#include "engine/schema.h"

namespace worlddb {

class Table {
 public:
  static constexpr uint32_t kNoRow = UINT32_MAX;

  explicit Table(const KindDef& def);

  uint32_t size() const { return size_; }
  uint64_t id(uint32_t row) const { return ids_[row]; }
  double z(uint32_t row) const { return z_[row]; }
  void set_z(uint32_t row, double z) { z_[row] = z; }
  // Starts loading row's id and z into the cache (query materialization: rows
  // that are near in space are scattered in the table).
  void Prefetch(uint32_t row) const {
    __builtin_prefetch(&ids_[row]);
    __builtin_prefetch(&z_[row]);
  }
  Column& column(size_t c) { return *columns_[c]; }
  const Column& column(size_t c) const { return *columns_[c]; }
  size_t column_count() const { return columns_.size(); }

  // Appends a row holding every column's default; returns its number.
  uint32_t Append(uint64_t id, double z, const KindDef& def);
  // Resets row's columns to their defaults (an upsert replacing an entity).
  void ResetColumns(uint32_t row, const KindDef& def);
  // Removes `row` by moving the last row into it. Returns the old number of the
  // row that moved (now `row`), or kNoRow if `row` was the last.
  uint32_t Remove(uint32_t row);

  // Replays a schema change: drop columns at `dropped` positions (ascending),
  // then append the last `added` columns of `def` filled with their defaults.
  void Alter(const std::vector<uint32_t>& dropped, size_t added, const KindDef& def);

  size_t MemoryBytes() const;

 private:
  uint32_t size_ = 0;
  uint32_t reserved_ = 0;
  ChunkedArray<uint64_t> ids_;
  ChunkedArray<double> z_;
  std::vector<std::unique_ptr<Column>> columns_;
};

}  // namespace worlddb
