// Table: the rows of one kind in one shard, stored column by column
// (structure of arrays): entity ids, z, and one Column per declared column.
// x and y live in the kind's QuadTree next to the row number (see
// index/quadtree.h), so the table never duplicates them; a table built with
// its kind's tree (`positions`) reads z there too and keeps no z column (the
// shard's case: the tree's leaves hold z and id for queries).
//
// Rows are dense: removing a row moves the last row into the hole, so scans
// never skip and memory follows the live count. Growth adds one chunk of
// kChunkRows rows per column at a time; nothing is ever copied whole.
//
// Thread safety: none; owned by one shard's thread.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/column.h"
#include "engine/schema.h"
#include "index/quadtree.h"

namespace worlddb {

class Table {
 public:
  static constexpr uint32_t kNoRow = UINT32_MAX;

  // With `positions` (the kind's tree, which must hold every row of this
  // table), z is the tree's: Append ignores its z and set_z must not be used
  // (QuadTree::Move sets z).
  explicit Table(const KindDef& def, const QuadTree* positions = nullptr);

  uint32_t size() const { return size_; }
  uint64_t id(uint32_t row) const { return ids_[row]; }
  double z(uint32_t row) const { return positions_ ? positions_->Z(row) : z_[row]; }
  void set_z(uint32_t row, double z) {
    assert(positions_ == nullptr);
    z_[row] = z;
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
  const QuadTree* positions_;
  uint32_t size_ = 0;
  uint32_t reserved_ = 0;
  ChunkedArray<uint64_t> ids_;
  ChunkedArray<double> z_;
  std::vector<std::unique_ptr<Column>> columns_;
};

}  // namespace worlddb
