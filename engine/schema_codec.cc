#include "engine/schema_codec.h"

#include "engine/batch_builder.h"
#include "engine/batch_generated.h"

namespace worlddb {
namespace {

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::ColumnDef>>> EncodeColumns(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<ColumnDef>& columns) {
  std::vector<flatbuffers::Offset<fb::ColumnDef>> out;
  for (const ColumnDef& c : columns) {
    auto cell = EncodeCell(fbb, c.name, c.default_value);
    out.push_back(fb::CreateColumnDef(fbb, fbb.CreateString(c.name),
                                      static_cast<fb::ColumnType>(c.type), cell, c.max_length));
  }
  return fbb.CreateVector(out);
}

std::vector<uint8_t> Finish(flatbuffers::FlatBufferBuilder& fbb,
                            flatbuffers::Offset<fb::SchemaChange> root) {
  fbb.Finish(root);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

Result<Value> DecodeValue(const fb::Cell& cell, const std::string& where) {
  switch (cell.type()) {
    case fb::ColumnType_Bool:
      if (cell.i() != 0 && cell.i() != 1)
        return Status::InvalidArgument(where + ": bool must be 0 or 1");
      return Value(cell.i() == 1);
    case fb::ColumnType_I32:
      if (cell.i() < INT32_MIN || cell.i() > INT32_MAX)
        return Status::InvalidArgument(where + ": does not fit in i32");
      return Value(static_cast<int32_t>(cell.i()));
    case fb::ColumnType_I64:
      return Value(cell.i());
    case fb::ColumnType_F32:
      return Value(static_cast<float>(cell.f()));
    case fb::ColumnType_F64:
      return Value(cell.f());
    case fb::ColumnType_String:
      return Value(cell.s() ? cell.s()->str() : std::string());
  }
  return Status::InvalidArgument(where + ": unknown value type " +
                                 std::to_string(static_cast<int>(cell.type())));
}

Result<std::vector<ColumnDef>> DecodeColumns(
    const flatbuffers::Vector<flatbuffers::Offset<fb::ColumnDef>>* columns) {
  std::vector<ColumnDef> out;
  if (!columns) return out;
  for (const fb::ColumnDef* c : *columns) {
    ColumnDef def;
    def.name = c->name()->str();
    if (c->type() > fb::ColumnType_String) {
      return Status::InvalidArgument("column '" + def.name + "': unknown type " +
                                     std::to_string(int(c->type())));
    }
    def.type = static_cast<ColumnType>(c->type());
    auto v = DecodeValue(*c->default_value(), "column '" + def.name + "' default");
    if (!v.ok()) return v.status();
    def.default_value = std::move(v.value());
    def.max_length = c->max_length();
    out.push_back(std::move(def));
  }
  return out;
}

}  // namespace

std::vector<uint8_t> EncodeCreateKind(const KindDef& def) {
  flatbuffers::FlatBufferBuilder fbb;
  auto cols = EncodeColumns(fbb, def.columns);
  auto create = fb::CreateCreateKind(fbb, fbb.CreateString(def.name), cols);
  return Finish(fbb, fb::CreateSchemaChange(fbb, create, 0));
}

std::vector<uint8_t> EncodeAlterKind(const std::string& kind, const std::vector<ColumnDef>& add,
                                     const std::vector<std::string>& drop) {
  flatbuffers::FlatBufferBuilder fbb;
  auto cols = EncodeColumns(fbb, add);
  auto drops = fbb.CreateVectorOfStrings(drop);
  auto alter = fb::CreateAlterKind(fbb, fbb.CreateString(kind), cols, drops);
  return Finish(fbb, fb::CreateSchemaChange(fbb, 0, alter));
}

Result<DecodedSchemaChange> DecodeSchemaChange(const uint8_t* data, size_t size) {
  flatbuffers::Verifier verifier(data, size, /*max_depth=*/16, /*max_tables=*/100000);
  if (size < sizeof(flatbuffers::uoffset_t) || !verifier.VerifyBuffer<fb::SchemaChange>(nullptr)) {
    return Status::Corruption("schema change of " + std::to_string(size) +
                              " bytes is not a valid SchemaChange FlatBuffer (engine/batch.fbs)");
  }
  const auto* sc = flatbuffers::GetRoot<fb::SchemaChange>(data);
  if ((sc->create() != nullptr) == (sc->alter() != nullptr)) {
    return Status::InvalidArgument("a schema change holds exactly one of create and alter");
  }
  DecodedSchemaChange out;
  if (sc->create()) {
    out.create = true;
    out.kind.name = sc->create()->name()->str();
    auto cols = DecodeColumns(sc->create()->columns());
    if (!cols.ok()) return cols.status();
    out.kind.columns = std::move(cols.value());
  } else {
    out.kind.name = sc->alter()->name()->str();
    auto cols = DecodeColumns(sc->alter()->add());
    if (!cols.ok()) return cols.status();
    out.kind.columns = std::move(cols.value());
    if (sc->alter()->drop()) {
      for (const flatbuffers::String* d : *sc->alter()->drop()) out.drop.push_back(d->str());
    }
  }
  return out;
}

}  // namespace worlddb
