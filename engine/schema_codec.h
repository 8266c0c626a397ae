// Encoding of schema changes as SchemaChange FlatBuffers (engine/batch.fbs),
// for the write-ahead log and the protocol, and decoding of untrusted bytes
// back into KindDef / alter arguments with a Status naming what was wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/schema.h"
#include "engine/status.h"

namespace worlddb {

struct DecodedSchemaChange {
  bool create = false;
  KindDef kind;                   // create: the kind; alter: name and added columns
  std::vector<std::string> drop;  // alter only
};

std::vector<uint8_t> EncodeCreateKind(const KindDef& def);
std::vector<uint8_t> EncodeAlterKind(const std::string& kind, const std::vector<ColumnDef>& add,
                                     const std::vector<std::string>& drop);
// Verifies and decodes. Checks the encoding only (a default's tag matches the
// declared type, exactly one of create/alter); names and limits are checked by
// Schema when the change is applied.
Result<DecodedSchemaChange> DecodeSchemaChange(const uint8_t* data, size_t size);

}  // namespace worlddb
