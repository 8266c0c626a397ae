#include "engine/column.h"

namespace worlddb {

Column::Column(ColumnType type) : type_(type) {}

void Column::Resize(size_t old_rows, size_t rows, const Value& fill) {
  switch (type_) {
    case ColumnType::kBool:
      bools_.Reserve(rows);
      break;
    case ColumnType::kI32:
      i32_.Reserve(rows);
      break;
    case ColumnType::kI64:
      i64_.Reserve(rows);
      break;
    case ColumnType::kF32:
      f32_.Reserve(rows);
      break;
    case ColumnType::kF64:
      f64_.Reserve(rows);
      break;
    case ColumnType::kString:
      strings_.Reserve(rows);
      break;
  }
  for (size_t r = old_rows; r < rows; ++r) Set(r, fill);
}

void Column::Set(size_t row, const Value& v) {
  switch (type_) {
    case ColumnType::kBool:
      bools_[row] = std::get<bool>(v);
      break;
    case ColumnType::kI32:
      i32_[row] = std::get<int32_t>(v);
      break;
    case ColumnType::kI64:
      i64_[row] = std::get<int64_t>(v);
      break;
    case ColumnType::kF32:
      f32_[row] = std::get<float>(v);
      break;
    case ColumnType::kF64:
      f64_[row] = std::get<double>(v);
      break;
    case ColumnType::kString:
      strings_[row] = std::get<std::string>(v);
      break;
  }
}

Value Column::Get(size_t row) const {
  switch (type_) {
    case ColumnType::kBool:
      return bools_[row] != 0;
    case ColumnType::kI32:
      return i32_[row];
    case ColumnType::kI64:
      return i64_[row];
    case ColumnType::kF32:
      return f32_[row];
    case ColumnType::kF64:
      return f64_[row];
    case ColumnType::kString:
      return strings_[row];
  }
  return false;
}

void Column::CopyRow(size_t from, size_t to) {
  switch (type_) {
    case ColumnType::kBool:
      bools_[to] = bools_[from];
      break;
    case ColumnType::kI32:
      i32_[to] = i32_[from];
      break;
    case ColumnType::kI64:
      i64_[to] = i64_[from];
      break;
    case ColumnType::kF32:
      f32_[to] = f32_[from];
      break;
    case ColumnType::kF64:
      f64_[to] = f64_[from];
      break;
    case ColumnType::kString:
      strings_[to].swap(strings_[from]);
      break;
  }
}

void Column::Shrink(size_t rows) {
  switch (type_) {
    case ColumnType::kBool:
      bools_.Shrink(rows);
      break;
    case ColumnType::kI32:
      i32_.Shrink(rows);
      break;
    case ColumnType::kI64:
      i64_.Shrink(rows);
      break;
    case ColumnType::kF32:
      f32_.Shrink(rows);
      break;
    case ColumnType::kF64:
      f64_.Shrink(rows);
      break;
    case ColumnType::kString:
      strings_.Shrink(rows);
      break;
  }
}

size_t Column::MemoryBytes(size_t rows) const {
  switch (type_) {
    case ColumnType::kBool:
      return bools_.MemoryBytes();
    case ColumnType::kI32:
      return i32_.MemoryBytes();
    case ColumnType::kI64:
      return i64_.MemoryBytes();
    case ColumnType::kF32:
      return f32_.MemoryBytes();
    case ColumnType::kF64:
      return f64_.MemoryBytes();
    case ColumnType::kString: {
      size_t heap = 0;  // out-of-line string bytes
      for (size_t r = 0; r < rows; ++r) {
        if (strings_[r].capacity() > 15) heap += strings_[r].capacity() + 1;
      }
      return strings_.MemoryBytes() + heap;
    }
  }
  return 0;
}

}  // namespace worlddb
