#include "engine/query.h"

namespace worlddb {

const char* CompareOpName(CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return "==";
    case CompareOp::kNe:
      return "!=";
    case CompareOp::kLt:
      return "<";
    case CompareOp::kLe:
      return "<=";
    case CompareOp::kGt:
      return ">";
    case CompareOp::kGe:
      return ">=";
  }
  return "?";
}

void QueryResult::Clear() {
  ClearRows();
  columns.clear();
}

void QueryResult::ClearRows() {
  count = 0;
  truncated = false;
  ids.clear();
  kinds.clear();
  x.clear();
  y.clear();
  z.clear();
  distance.clear();
  for (ResultColumn& c : columns) std::visit([](auto& v) { v.clear(); }, c.data);
}

void QueryResult::SetProjection(const std::vector<ResultColumn>& like) {
  bool same = columns.size() == like.size();
  for (size_t i = 0; same && i < like.size(); ++i) {
    same = columns[i].name == like[i].name && columns[i].type == like[i].type &&
           columns[i].data.index() == like[i].data.index();
  }
  if (same) {
    for (ResultColumn& c : columns) std::visit([](auto& v) { v.clear(); }, c.data);
    return;
  }
  columns.clear();
  for (const ResultColumn& c : like) {
    columns.push_back(
        {c.name, c.type,
         std::visit([](const auto& v) { return ColumnData(std::decay_t<decltype(v)>()); },
                    c.data)});
  }
}

}  // namespace worlddb
