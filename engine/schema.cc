#include "engine/schema.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "engine/batch_generated.h"
#include "engine/constants.h"

namespace worlddb {

static_assert(static_cast<int>(ColumnType::kBool) == fb::ColumnType_Bool);
static_assert(static_cast<int>(ColumnType::kI32) == fb::ColumnType_I32);
static_assert(static_cast<int>(ColumnType::kI64) == fb::ColumnType_I64);
static_assert(static_cast<int>(ColumnType::kF32) == fb::ColumnType_F32);
static_assert(static_cast<int>(ColumnType::kF64) == fb::ColumnType_F64);
static_assert(static_cast<int>(ColumnType::kString) == fb::ColumnType_String);
static_assert(std::variant_size_v<Value> == 6);

const char* ColumnTypeName(ColumnType t) {
  switch (t) {
    case ColumnType::kBool:
      return "bool";
    case ColumnType::kI32:
      return "i32";
    case ColumnType::kI64:
      return "i64";
    case ColumnType::kF32:
      return "f32";
    case ColumnType::kF64:
      return "f64";
    case ColumnType::kString:
      return "string";
  }
  return "?";
}

std::string ValueToString(const Value& v) {
  char buf[64];
  switch (TypeOf(v)) {
    case ColumnType::kBool:
      return std::get<bool>(v) ? "true" : "false";
    case ColumnType::kI32:
      return std::to_string(std::get<int32_t>(v));
    case ColumnType::kI64:
      return std::to_string(std::get<int64_t>(v));
    case ColumnType::kF32:
      std::snprintf(buf, sizeof buf, "%.9g", std::get<float>(v));
      return buf;
    case ColumnType::kF64:
      std::snprintf(buf, sizeof buf, "%.17g", std::get<double>(v));
      return buf;
    case ColumnType::kString: {
      // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "\"" + s.
      const std::string& s = std::get<std::string>(v);
      std::string out(1, '"');
      out.append(s, 0, 40);
      out += '"';
      if (s.size() > 40) out += "... (" + std::to_string(s.size()) + " bytes)";
      return out;
    }
  }
  return "?";
}

Value ZeroValue(ColumnType t) {
  switch (t) {
    case ColumnType::kBool:
      return false;
    case ColumnType::kI32:
      return int32_t{0};
    case ColumnType::kI64:
      return int64_t{0};
    case ColumnType::kF32:
      return 0.0f;
    case ColumnType::kF64:
      return 0.0;
    case ColumnType::kString:
      return std::string();
  }
  return false;
}

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) {
    return Status::InvalidArgument(std::string(what) + " name must be 1.." +
                                   std::to_string(kMaxNameLength) + " bytes, got " +
                                   std::to_string(name.size()));
  }
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      return Status::InvalidArgument(std::string(what) + " name '" + std::string(name) +
                                     "' may only contain letters, digits and '_'");
    }
  }
  if (name[0] >= '0' && name[0] <= '9') {
    return Status::InvalidArgument(std::string(what) + " name '" + std::string(name) +
                                   "' must not start with a digit");
  }
  static const std::set<std::string_view> kReserved = {"id", "kind", "x", "y", "z", "distance"};
  if (kReserved.count(name)) {
    return Status::InvalidArgument(std::string(what) + " name '" + std::string(name) +
                                   "' is reserved for a built-in field");
  }
  return Status::Ok();
}

namespace {

Status ValidateColumn(const std::string& kind, ColumnDef* c) {
  WORLDDB_RETURN_IF_ERROR(ValidateName("column", c->name));
  const std::string where = "kind '" + kind + "' column '" + c->name + "'";
  if (static_cast<int>(c->type) > static_cast<int>(ColumnType::kString)) {
    return Status::InvalidArgument(where + ": unknown type " +
                                   std::to_string(static_cast<int>(c->type)));
  }
  if (TypeOf(c->default_value) != c->type) {
    return Status::InvalidArgument(where + ": default " + ValueToString(c->default_value) + " is " +
                                   ColumnTypeName(TypeOf(c->default_value)) + ", column is " +
                                   ColumnTypeName(c->type));
  }
  if (c->type == ColumnType::kString) {
    if (c->max_length == 0) c->max_length = kDefaultStringLength;
    if (c->max_length > kMaxStringLength) {
      return Status::InvalidArgument(where + ": max_length " + std::to_string(c->max_length) +
                                     " exceeds " + std::to_string(kMaxStringLength));
    }
    if (std::get<std::string>(c->default_value).size() > c->max_length) {
      return Status::InvalidArgument(where + ": default is longer than max_length " +
                                     std::to_string(c->max_length));
    }
  } else if (c->max_length != 0) {
    return Status::InvalidArgument(where + ": max_length applies to string columns only");
  }
  if (c->type == ColumnType::kF32 && !std::isfinite(std::get<float>(c->default_value))) {
    return Status::InvalidArgument(where + ": default must be finite");
  }
  if (c->type == ColumnType::kF64 && !std::isfinite(std::get<double>(c->default_value))) {
    return Status::InvalidArgument(where + ": default must be finite");
  }
  return Status::Ok();
}

}  // namespace

int Schema::FindKind(std::string_view name) const {
  auto it = kind_index_.find(std::string(name));
  return it == kind_index_.end() ? kNotFound : it->second;
}

int Schema::FindColumn(uint16_t kind, std::string_view name) const {
  const auto& idx = column_index_[kind];
  auto it = idx.find(std::string(name));
  return it == idx.end() ? kNotFound : static_cast<int>(it->second);
}

void Schema::Reindex() {
  kind_index_.clear();
  column_index_.assign(kinds_.size(), {});
  for (size_t k = 0; k < kinds_.size(); ++k) {
    kind_index_[kinds_[k].name] = static_cast<uint16_t>(k);
    for (size_t c = 0; c < kinds_[k].columns.size(); ++c) {
      column_index_[k][kinds_[k].columns[c].name] = static_cast<uint32_t>(c);
    }
  }
}

Result<std::shared_ptr<const Schema>> Schema::WithKind(KindDef def, SchemaChange* change) const {
  WORLDDB_RETURN_IF_ERROR(ValidateName("kind", def.name));
  if (FindKind(def.name) != kNotFound) {
    return Status::AlreadyExists("kind '" + def.name + "' already exists");
  }
  if (kinds_.size() >= kMaxKinds) {
    return Status::ResourceExhausted("a world holds at most " + std::to_string(kMaxKinds) +
                                     " kinds");
  }
  if (def.columns.size() > kMaxColumnsPerKind) {
    return Status::ResourceExhausted(
        "kind '" + def.name + "' has " + std::to_string(def.columns.size()) +
        " columns; the limit is " + std::to_string(kMaxColumnsPerKind));
  }
  std::set<std::string> seen;
  for (ColumnDef& c : def.columns) {
    WORLDDB_RETURN_IF_ERROR(ValidateColumn(def.name, &c));
    if (!seen.insert(c.name).second) {
      return Status::InvalidArgument("kind '" + def.name + "' declares column '" + c.name +
                                     "' twice");
    }
  }
  auto next = std::make_shared<Schema>(*this);
  next->version_ = version_ + 1;
  next->kinds_.push_back(std::move(def));
  next->Reindex();
  change->type = SchemaChange::Type::kCreateKind;
  change->kind = static_cast<uint16_t>(kinds_.size());
  change->dropped.clear();
  change->added = next->kinds_.back().columns.size();
  return std::shared_ptr<const Schema>(std::move(next));
}

Result<std::shared_ptr<const Schema>> Schema::WithAlter(std::string_view name,
                                                        std::vector<ColumnDef> add,
                                                        const std::vector<std::string>& drop,
                                                        SchemaChange* change) const {
  const int kind = FindKind(name);
  if (kind == kNotFound) return Status::NotFound("kind '" + std::string(name) + "' does not exist");
  const KindDef& old = kinds_[kind];
  std::vector<uint32_t> dropped;
  for (const std::string& d : drop) {
    const int c = FindColumn(static_cast<uint16_t>(kind), d);
    if (c == kNotFound) {
      return Status::NotFound("kind '" + old.name + "' has no column '" + d + "' to drop");
    }
    if (std::find(dropped.begin(), dropped.end(), static_cast<uint32_t>(c)) != dropped.end()) {
      return Status::InvalidArgument("column '" + d + "' is dropped twice");
    }
    dropped.push_back(static_cast<uint32_t>(c));
  }
  std::sort(dropped.begin(), dropped.end());
  KindDef next_def;
  next_def.name = old.name;
  for (uint32_t c = 0; c < old.columns.size(); ++c) {
    if (!std::binary_search(dropped.begin(), dropped.end(), c))
      next_def.columns.push_back(old.columns[c]);
  }
  std::set<std::string> seen;
  for (const ColumnDef& c : next_def.columns) seen.insert(c.name);
  for (ColumnDef& c : add) {
    WORLDDB_RETURN_IF_ERROR(ValidateColumn(old.name, &c));
    if (!seen.insert(c.name).second) {
      return Status::AlreadyExists("kind '" + old.name + "' already has a column '" + c.name + "'");
    }
    next_def.columns.push_back(std::move(c));
  }
  if (next_def.columns.size() > kMaxColumnsPerKind) {
    return Status::ResourceExhausted(
        "kind '" + old.name + "' would have " + std::to_string(next_def.columns.size()) +
        " columns; the limit is " + std::to_string(kMaxColumnsPerKind));
  }
  auto next = std::make_shared<Schema>(*this);
  next->version_ = version_ + 1;
  next->kinds_[kind] = std::move(next_def);
  next->Reindex();
  change->type = SchemaChange::Type::kAlterKind;
  change->kind = static_cast<uint16_t>(kind);
  change->dropped = std::move(dropped);
  change->added = add.size();
  return std::shared_ptr<const Schema>(std::move(next));
}

}  // namespace worlddb
