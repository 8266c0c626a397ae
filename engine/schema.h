// Schema: the kinds of entity the world knows and the typed columns of each.
//
// A Schema object is immutable; every change (create kind, alter kind) makes a
// new Schema with version + 1. The engine publishes new versions in its write
// order, so every shard switches schema between the same two writes.
// Kind ids are positions in kinds() and never change (kinds are not dropped);
// column positions within a kind shift when a column is dropped.
//
// Thread safety: immutable after construction; share freely via
// std::shared_ptr<const Schema>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/status.h"
#include "engine/value.h"

namespace worlddb {

struct ColumnDef {
  std::string name;
  ColumnType type = ColumnType::kI64;
  Value default_value = int64_t{0};  // must have `type`
  uint32_t max_length = 0;           // strings only: bytes; 0 = kDefaultStringLength
};

struct KindDef {
  std::string name;
  std::vector<ColumnDef> columns;
};

// What changed between two schema versions, as shards need to replay it.
struct SchemaChange {
  enum class Type { kCreateKind, kAlterKind } type = Type::kCreateKind;
  uint16_t kind = 0;
  std::vector<uint32_t> dropped;  // column positions in the old kind, ascending
  size_t added = 0;               // new columns appended at the end
};

class Schema {
 public:
  static constexpr int kNotFound = -1;

  Schema() = default;

  uint64_t version() const { return version_; }
  const std::vector<KindDef>& kinds() const { return kinds_; }
  const KindDef& kind(uint16_t id) const { return kinds_[id]; }
  int FindKind(std::string_view name) const;
  int FindColumn(uint16_t kind, std::string_view name) const;

  // The schema after creating `def`, or why not.
  Result<std::shared_ptr<const Schema>> WithKind(KindDef def, SchemaChange* change) const;
  // The schema after adding and dropping columns of kind `name`, or why not.
  // Drops are applied before adds, so a column may be re-added with a new type.
  Result<std::shared_ptr<const Schema>> WithAlter(std::string_view name, std::vector<ColumnDef> add,
                                                  const std::vector<std::string>& drop,
                                                  SchemaChange* change) const;

 private:
  void Reindex();

  uint64_t version_ = 0;
  std::vector<KindDef> kinds_;
  std::unordered_map<std::string, uint16_t> kind_index_;
  std::vector<std::unordered_map<std::string, uint32_t>> column_index_;
};

// Names of kinds and columns: 1..kMaxNameLength of [A-Za-z0-9_], not starting
// with a digit. "id", "kind", "x", "y", "z" and "distance" are reserved for the
// built-in fields a query result carries.
Status ValidateName(std::string_view what, std::string_view name);

}  // namespace worlddb
