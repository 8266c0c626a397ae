#include "engine/batch_builder.h"

namespace worlddb {

void BatchBuilder::Reset() {
  if (!finished_) return;
  fbb_.Clear();
  upserts_.clear();
  moves_.clear();
  sets_.clear();
  deletes_.clear();
  finished_ = false;
}

void BatchBuilder::Reserve(size_t upserts, size_t moves) {
  Reset();
  upserts_.reserve(upserts);
  moves_.reserve(moves);
}

namespace {

flatbuffers::Offset<fb::Cell> EncodeNamedCell(flatbuffers::FlatBufferBuilder& fbb,
                                              flatbuffers::Offset<flatbuffers::String> col,
                                              const Value& value) {
  flatbuffers::Offset<flatbuffers::String> s;
  if (const auto* str = std::get_if<std::string>(&value)) s = fbb.CreateString(*str);
  fb::CellBuilder cb(fbb);
  cb.add_column(col);
  cb.add_type(static_cast<fb::ColumnType>(value.index()));
  switch (TypeOf(value)) {
    case ColumnType::kBool:
      cb.add_i(std::get<bool>(value) ? 1 : 0);
      break;
    case ColumnType::kI32:
      cb.add_i(std::get<int32_t>(value));
      break;
    case ColumnType::kI64:
      cb.add_i(std::get<int64_t>(value));
      break;
    case ColumnType::kF32:
      cb.add_f(std::get<float>(value));
      break;
    case ColumnType::kF64:
      cb.add_f(std::get<double>(value));
      break;
    case ColumnType::kString:
      cb.add_s(s);
      break;
  }
  return cb.Finish();
}

}  // namespace

flatbuffers::Offset<fb::Cell> EncodeCell(flatbuffers::FlatBufferBuilder& fbb,
                                         std::string_view column, const Value& value) {
  return EncodeNamedCell(fbb, fbb.CreateString(column.data(), column.size()), value);
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>> BatchBuilder::BuildCells(
    const Cells& cells) {
  std::vector<flatbuffers::Offset<fb::Cell>> out;
  out.reserve(cells.size());
  for (const auto& [name, value] : cells)
    out.push_back(EncodeNamedCell(fbb_, fbb_.CreateSharedString(name), value));
  return fbb_.CreateVector(out);
}

BatchBuilder& BatchBuilder::Upsert(uint64_t id, std::string_view kind, double x, double y, double z,
                                   const Cells& cells) {
  Reset();
  auto k = fbb_.CreateSharedString(kind.data(), kind.size());
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>> c;
  if (!cells.empty()) c = BuildCells(cells);
  upserts_.push_back(fb::CreateUpsert(fbb_, id, k, x, y, z, c));
  return *this;
}

BatchBuilder& BatchBuilder::Move(uint64_t id, double x, double y, double z) {
  Reset();
  moves_.emplace_back(id, x, y, z);
  return *this;
}

BatchBuilder& BatchBuilder::Set(uint64_t id, const Cells& cells) {
  Reset();
  auto c = BuildCells(cells);
  sets_.push_back(fb::CreateSetColumns(fbb_, id, c));
  return *this;
}

BatchBuilder& BatchBuilder::Delete(uint64_t id) {
  Reset();
  deletes_.push_back(id);
  return *this;
}

std::span<const uint8_t> BatchBuilder::Finish() {
  Reset();
  auto up = upserts_.empty() ? 0 : fbb_.CreateVector(upserts_);
  auto mv = moves_.empty() ? 0 : fbb_.CreateVectorOfStructs(moves_);
  auto st = sets_.empty() ? 0 : fbb_.CreateVector(sets_);
  auto dl = deletes_.empty() ? 0 : fbb_.CreateVector(deletes_);
  fbb_.Finish(fb::CreateWriteBatch(fbb_, up, mv, st, dl));
  finished_ = true;
  return {fbb_.GetBufferPointer(), fbb_.GetSize()};
}

std::vector<uint8_t> BatchBuilder::FinishCopy() {
  auto s = Finish();
  return {s.begin(), s.end()};
}

}  // namespace worlddb
