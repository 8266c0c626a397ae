#include "engine/table.h"

#include <algorithm>

namespace worlddb {

Table::Table(const KindDef& def, const QuadTree* positions) : positions_(positions) {
  for (const ColumnDef& c : def.columns) columns_.push_back(std::make_unique<Column>(c.type));
}

uint32_t Table::Append(uint64_t id, double z, const KindDef& def) {
  const uint32_t row = size_;
  if (row == reserved_) {
    const uint32_t next = reserved_ + static_cast<uint32_t>(kChunkRows);
    ids_.Reserve(next);
    if (!positions_) z_.Reserve(next);
    for (size_t c = 0; c < columns_.size(); ++c) {
      columns_[c]->Resize(reserved_, next, def.columns[c].default_value);
    }
    reserved_ = next;
  } else {
    ResetColumns(row, def);
  }
  ids_[row] = id;
  if (!positions_) z_[row] = z;
  ++size_;
  return row;
}

void Table::ResetColumns(uint32_t row, const KindDef& def) {
  for (size_t c = 0; c < columns_.size(); ++c) columns_[c]->Set(row, def.columns[c].default_value);
}

uint32_t Table::Remove(uint32_t row) {
  const uint32_t last = size_ - 1;
  uint32_t moved = kNoRow;
  if (row != last) {
    ids_[row] = ids_[last];
    if (!positions_) z_[row] = z_[last];
    for (auto& c : columns_) c->CopyRow(last, row);
    moved = last;
  }
  --size_;
  // Give a chunk back once two are free, so that a count hovering at a chunk
  // boundary does not allocate and free on every insert and delete.
  if (reserved_ - size_ >= 2 * kChunkRows) {
    reserved_ -= static_cast<uint32_t>(kChunkRows);
    ids_.Shrink(reserved_);
    z_.Shrink(reserved_);
    for (auto& c : columns_) c->Shrink(reserved_);
  }
  return moved;
}

void Table::Alter(const std::vector<uint32_t>& dropped, size_t added, const KindDef& def) {
  for (auto it = dropped.rbegin(); it != dropped.rend(); ++it)
    columns_.erase(columns_.begin() + *it);
  for (size_t c = def.columns.size() - added; c < def.columns.size(); ++c) {
    auto col = std::make_unique<Column>(def.columns[c].type);
    col->Resize(0, reserved_, def.columns[c].default_value);
    columns_.push_back(std::move(col));
  }
}

size_t Table::MemoryBytes() const {
  size_t bytes = ids_.MemoryBytes() + z_.MemoryBytes();
  for (const auto& c : columns_) bytes += c->MemoryBytes(size_);
  return bytes;
}

}  // namespace worlddb
