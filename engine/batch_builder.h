// BatchBuilder: builds WriteBatch FlatBuffers (engine/batch.fbs) from C++.
//
//   BatchBuilder b;
//   b.Upsert(7, "player", 10, 20, 0, {{"hp", int32_t{100}}}).Move(8, 11, 21);
//   auto bytes = b.Finish();           // valid until the next call on b
//   engine->Apply(bytes.data(), bytes.size());
//
// The builder does not validate; the engine does (that is the point of
// sending it bytes). Thread safety: none.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/batch_generated.h"
#include "engine/value.h"

namespace worlddb {

using Cells = std::vector<std::pair<std::string, Value>>;

// One Cell holding `value` for `column`, tagged with the value's type (the
// encoding batch.fbs documents). Shared by batches and schema changes.
flatbuffers::Offset<fb::Cell> EncodeCell(flatbuffers::FlatBufferBuilder& fbb,
                                         std::string_view column, const Value& value);

class BatchBuilder {
 public:
  BatchBuilder& Upsert(uint64_t id, std::string_view kind, double x, double y, double z = 0,
                       const Cells& cells = {});
  BatchBuilder& Move(uint64_t id, double x, double y, double z = 0);
  BatchBuilder& Set(uint64_t id, const Cells& cells);
  BatchBuilder& Delete(uint64_t id);
  void Reserve(size_t upserts, size_t moves);

  size_t ops() const { return upserts_.size() + moves_.size() + sets_.size() + deletes_.size(); }
  // Finishes the batch and returns its bytes, valid until the next call on this
  // builder; the builder then starts a new, empty batch.
  std::span<const uint8_t> Finish();
  // Bytes of the last Finish() as an owned copy.
  std::vector<uint8_t> FinishCopy();

 private:
  // Column names repeat across the cells of a batch: each is stored once.
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>> BuildCells(
      const Cells& cells);
  void Reset();

  flatbuffers::FlatBufferBuilder fbb_{1024};
  bool finished_ = false;
  std::vector<flatbuffers::Offset<fb::Upsert>> upserts_;
  std::vector<fb::Move> moves_;
  std::vector<flatbuffers::Offset<fb::SetColumns>> sets_;
  std::vector<uint64_t> deletes_;
};

}  // namespace worlddb
