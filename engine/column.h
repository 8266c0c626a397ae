// Column: one typed column of a table, stored in fixed-size chunks of
// kChunkRows values so that growth allocates one chunk and never copies the
// rows already stored.
//
// Thread safety: none; owned by one shard.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/constants.h"
#include "engine/value.h"

namespace worlddb {

// A chunked array of T (the building block of every column,
// and of the table's id and z columns).
template <class T>
class ChunkedArray {
 public:
  T& operator[](size_t row) { return chunks_[row >> kChunkRowsLog2][row & (kChunkRows - 1)]; }
  const T& operator[](size_t row) const {
    return chunks_[row >> kChunkRowsLog2][row & (kChunkRows - 1)];
  }
  // Makes room for rows [0, rows).
  void Reserve(size_t rows) {
    while (chunks_.size() * kChunkRows < rows) chunks_.push_back(std::make_unique<T[]>(kChunkRows));
  }
  // Frees chunks wholly above `rows`.
  void Shrink(size_t rows) {
    const size_t keep = (rows + kChunkRows - 1) / kChunkRows;
    if (chunks_.size() > keep) chunks_.resize(keep);
  }
  size_t MemoryBytes() const { return chunks_.size() * kChunkRows * sizeof(T); }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
};

class Column {
 public:
  explicit Column(ColumnType type);
  Column(const Column&) = delete;
  Column& operator=(const Column&) = delete;
  ColumnType type() const { return type_; }

  // Grow to `rows` rows, new rows holding `fill` (which has this column's type).
  void Resize(size_t old_rows, size_t rows, const Value& fill);
  void Set(size_t row, const Value& v);
  Value Get(size_t row) const;
  // Copies row `from` over row `to` (dense tables fill holes with their last row).
  void CopyRow(size_t from, size_t to);
  void Shrink(size_t rows);
  size_t MemoryBytes(size_t rows) const;

  // Typed access for predicates and projections.
  bool GetBool(size_t r) const { return bools_[r] != 0; }
  int32_t GetI32(size_t r) const { return i32_[r]; }
  int64_t GetI64(size_t r) const { return i64_[r]; }
  float GetF32(size_t r) const { return f32_[r]; }
  double GetF64(size_t r) const { return f64_[r]; }
  const std::string& GetString(size_t r) const { return strings_[r]; }
  void SetBool(size_t r, bool v) { bools_[r] = v; }
  void SetI32(size_t r, int32_t v) { i32_[r] = v; }
  void SetI64(size_t r, int64_t v) { i64_[r] = v; }
  void SetF32(size_t r, float v) { f32_[r] = v; }
  void SetF64(size_t r, double v) { f64_[r] = v; }
  void SetString(size_t r, const char* data, size_t size) { strings_[r].assign(data, size); }

 private:
  ColumnType type_;
  // Exactly one of these is used, by type_ (short strings stay inline in
  // their std::string).
  ChunkedArray<uint8_t> bools_;
  ChunkedArray<int32_t> i32_;
  ChunkedArray<int64_t> i64_;
  ChunkedArray<float> f32_;
  ChunkedArray<double> f64_;
  ChunkedArray<std::string> strings_;
};

}  // namespace worlddb
