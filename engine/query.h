// Queries and their columnar results.
//
// A query selects entities by shape (circle, rectangle, k nearest), optionally
// narrowed to one kind and by column predicates (AND), and returns ids,
// positions and the projected columns as a few contiguous arrays.
//
// Rules (docs/ARCHITECTURE.md "Queries"):
//   * Shapes follow index/geometry.h: circles and rectangles are closed.
//   * Predicates and projections name columns of `kind`, so they need a kind.
//     A predicate's value must have the column's type.
//   * kNearest returns the k matching entities nearest to the centre, ordered by
//     (distance, id); `limit` further caps it. kCircle with order_by_distance
//     orders the same way; without it the order is unspecified and, with a
//     limit, which `limit` matching entities come back is unspecified.
//   * count_only returns only `count` (the number matching, ignoring limit).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "engine/value.h"
#include "index/geometry.h"

namespace worlddb {

enum class CompareOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };
const char* CompareOpName(CompareOp op);

struct Predicate {
  std::string column;
  CompareOp op = CompareOp::kEq;
  Value value;
};

enum class Shape : uint8_t { kCircle, kRect, kNearest };

struct Query {
  Shape shape = Shape::kCircle;
  double x = 0, y = 0;  // centre (kCircle, kNearest)
  double radius = 0;    // kCircle
  Rect rect;            // kRect
  uint32_t k = 0;       // kNearest
  std::string kind;     // empty: every kind
  std::vector<Predicate> where;
  std::vector<std::string> columns;  // projection
  uint64_t limit = 0;                // 0: no limit
  bool order_by_distance = false;    // kCircle
  bool count_only = false;

  static Query Circle(double cx, double cy, double r) {
    Query q;
    q.shape = Shape::kCircle;
    q.x = cx;
    q.y = cy;
    q.radius = r;
    return q;
  }
  static Query InRect(const Rect& r) {
    Query q;
    q.shape = Shape::kRect;
    q.rect = r;
    return q;
  }
  static Query Nearest(double cx, double cy, uint32_t k) {
    Query q;
    q.shape = Shape::kNearest;
    q.x = cx;
    q.y = cy;
    q.k = k;
    return q;
  }
};

// One projected column of a result; the vector alternative matches the
// column's type (bool is stored as uint8_t).
using ColumnData = std::variant<std::vector<uint8_t>, std::vector<int32_t>, std::vector<int64_t>,
                                std::vector<float>, std::vector<double>, std::vector<std::string>>;

struct ResultColumn {
  std::string name;
  ColumnType type = ColumnType::kBool;
  ColumnData data;
};

struct QueryResult {
  // Rows matching. When `truncated`, a limit stopped the scan and count is only
  // a lower bound; kNearest counts the rows returned.
  uint64_t count = 0;
  bool truncated = false;
  std::vector<uint64_t> ids;
  std::vector<uint16_t> kinds;  // kind id of each row (Schema::kind(id).name)
  std::vector<double> x, y, z;
  std::vector<double> distance;  // kCircle / kNearest: distance to the centre
  std::vector<ResultColumn> columns;

  size_t rows() const { return ids.size(); }
  // Empties everything, columns included.
  void Clear();
  // Empties every row, keeping the vectors' capacity and the columns' names
  // and types (their data emptied): a result reused for queries with the same
  // projection allocates nothing once it has held the largest answer.
  void ClearRows();
  // Makes `columns` hold exactly `like`'s names and types, empty. Columns that
  // already match keep their buffers; otherwise they are rebuilt.
  void SetProjection(const std::vector<ResultColumn>& like);
};

// Entity counts per cell of an nx x ny grid laid over `rect`. A point (x, y)
// inside the closed rect falls in cell
//   ix = min(nx - 1, floor((x - min_x) * nx / (max_x - min_x)))  (likewise iy)
// so points on the max edges count in the last cell. counts[iy * nx + ix].
struct DensityQuery {
  Rect rect;
  uint32_t nx = 0, ny = 0;
  std::string kind;
  std::vector<Predicate> where;
};

struct DensityResult {
  uint32_t nx = 0, ny = 0;
  std::vector<uint64_t> counts;
  uint64_t total = 0;
};

}  // namespace worlddb
