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
  count = 0;
  truncated = false;
  ids.clear();
  kinds.clear();
  x.clear();
  y.clear();
  z.clear();
  distance.clear();
  columns.clear();
}

}  // namespace worlddb
