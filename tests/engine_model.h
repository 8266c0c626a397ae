// A brute-force reference model of the engine, for differential tests
// (tests/engine_differential_test.cc).
//
// The model is deliberately naive: the world is a std::map from id to entity,
// every column is a Value in a std::map keyed by name, every query scans every
// entity and sorts. It shares no code with the engine beyond the plain types
// (Value, Query, KindDef, WriteStats) and index/geometry.h (SquaredDistance and
// the closed-rectangle rule, which are the specification). Write batches are
// the model's own list of operations, not FlatBuffers; the test builds the
// engine's batch from the same list.
//
// Rules implemented here (engine/batch.fbs, engine/engine.h, engine/query.h):
//   * A batch is applied whole or not at all. It is refused when an id appears
//     in more than one operation, or when any operation is invalid: upsert of
//     an unknown kind; a position that is not finite or outside the closed
//     world; move or set of an id that does not exist; a cell naming an unknown
//     column, a column twice, a value of the wrong type, a non-finite float, or
//     a string longer than the column's max_length or not valid UTF-8.
//   * upsert creates or replaces the entity whole (unnamed columns take their
//     defaults; the kind may change); move sets x, y, z; set writes cells;
//     delete removes, and a missing id is a counted no-op.
//   * Queries: closed circle ((x-cx)^2 + (y-cy)^2 <= r^2 via SquaredDistance),
//     closed rectangle, k nearest by (d2, id); kind filter; predicates ANDed
//     with the C++ operators on the column's type; projection; limit;
//     order_by_distance (circles); count_only (ignores limit; kNN counts at
//     most k).
//   * Density: counts per cell with ix = min(nx-1, floor((x-min_x)*nx/(max_x-min_x))).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/constants.h"
#include "engine/query.h"
#include "engine/schema.h"
#include "engine/shard.h"
#include "engine/status.h"
#include "engine/value.h"
#include "index/geometry.h"

namespace worlddb::model {

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

// Bit-exact equality, except that 0.0 and -0.0 are equal: FlatBuffers does
// not store a table field equal to its default (0.0 == -0.0), so an upsert's
// -0.0 coordinate or cell value reaches the engine as +0.0 (a Move, a struct,
// keeps it). The two compare equal everywhere, so either is a correct answer.
inline bool SameNumber(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b) || (a == 0 && b == 0);
}
inline bool SameNumber(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b) || (a == 0 && b == 0);
}

inline bool SameValue(const Value& a, const Value& b) {
  if (a.index() != b.index()) return false;
  if (const float* f = std::get_if<float>(&a)) return SameNumber(*f, std::get<float>(b));
  if (const double* d = std::get_if<double>(&a)) return SameNumber(*d, std::get<double>(b));
  return a == b;
}

// UTF-8 well-formedness, straight from the Unicode standard's table of
// well-formed byte sequences (Table 3-7).
inline bool WellFormedUtf8(const std::string& s) {
  auto in = [](unsigned char c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
  size_t i = 0;
  const size_t n = s.size();
  auto at = [&](size_t k) -> unsigned char { return static_cast<unsigned char>(s[k]); };
  while (i < n) {
    const unsigned char c = at(i);
    if (c <= 0x7F) {
      i += 1;
    } else if (in(c, 0xC2, 0xDF)) {
      if (i + 1 >= n || !in(at(i + 1), 0x80, 0xBF)) return false;
      i += 2;
    } else if (in(c, 0xE0, 0xEF)) {
      if (i + 2 >= n) return false;
      const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      if (!in(at(i + 1), lo, hi) || !in(at(i + 2), 0x80, 0xBF)) return false;
      i += 3;
    } else if (in(c, 0xF0, 0xF4)) {
      if (i + 3 >= n) return false;
      const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      if (!in(at(i + 1), lo, hi) || !in(at(i + 2), 0x80, 0xBF) || !in(at(i + 3), 0x80, 0xBF))
        return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

template <class T>
bool CompareWith(CompareOp op, const T& a, const T& b) {
  switch (op) {
    case CompareOp::kEq:
      return a == b;
    case CompareOp::kNe:
      return a != b;
    case CompareOp::kLt:
      return a < b;
    case CompareOp::kLe:
      return a <= b;
    case CompareOp::kGt:
      return a > b;
    case CompareOp::kGe:
      return a >= b;
  }
  return false;
}

// `column <op> value`, both of the same type.
inline bool Matches(const Value& column, CompareOp op, const Value& value) {
  return std::visit(
      [&](const auto& c) -> bool {
        using T = std::decay_t<decltype(c)>;
        return CompareWith<T>(op, c, std::get<T>(value));
      },
      column);
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

struct Op {
  enum class Type : uint8_t { kUpsert, kMove, kSet, kDelete };
  Type type = Type::kUpsert;
  uint64_t id = 0;
  std::string kind;                                  // kUpsert
  double x = 0, y = 0, z = 0;                        // kUpsert, kMove
  std::vector<std::pair<std::string, Value>> cells;  // kUpsert, kSet

  static Op Upsert(uint64_t id, std::string kind, double x, double y, double z,
                   std::vector<std::pair<std::string, Value>> cells = {}) {
    Op o;
    o.type = Type::kUpsert;
    o.id = id;
    o.kind = std::move(kind);
    o.x = x, o.y = y, o.z = z;
    o.cells = std::move(cells);
    return o;
  }
  static Op Move(uint64_t id, double x, double y, double z) {
    Op o;
    o.type = Type::kMove;
    o.id = id;
    o.x = x, o.y = y, o.z = z;
    return o;
  }
  static Op Set(uint64_t id, std::vector<std::pair<std::string, Value>> cells) {
    Op o;
    o.type = Type::kSet;
    o.id = id;
    o.cells = std::move(cells);
    return o;
  }
  static Op Delete(uint64_t id) {
    Op o;
    o.type = Type::kDelete;
    o.id = id;
    return o;
  }
};

struct Entity {
  std::string kind;
  double x = 0, y = 0, z = 0;
  std::map<std::string, Value> columns;
};

struct BatchOutcome {
  bool ok = true;
  size_t faults = 0;                        // invalid operations + repeated ids
  StatusCode first_code = StatusCode::kOk;  // code of a fault (exact when faults == 1)
  WriteStats stats;                         // when ok
};

// One row of an answer.
struct Row {
  uint64_t id = 0;
  uint16_t kind = 0;
  double x = 0, y = 0, z = 0;
  double d2 = 0;               // squared distance to the centre (circle, kNN)
  std::vector<Value> columns;  // the projection, in query order
};

// What a query must return.
struct Expected {
  bool ok = false;
  bool count_only = false;
  bool ordered = false;        // rows in exactly this order (else: as a set)
  bool with_distance = false;  // circle and kNN carry distances
  // When `exact`, the result's rows are exactly `rows`. Otherwise (an
  // unordered query whose limit cut it short) the result holds `limit` rows,
  // any subset of `rows` (the full answer).
  bool exact = true;
  uint64_t limit = 0;
  std::vector<Row> rows;
  // count: exact unless count_lower_bound, then in [limit, count].
  uint64_t count = 0;
  bool count_lower_bound = false;
  enum class Truncated { kNo, kYes, kEither } truncated = Truncated::kNo;
};

class Model {
 public:
  explicit Model(const Rect& world) : world_(world) {}

  const Rect& world() const { return world_; }
  const std::vector<KindDef>& kinds() const { return kinds_; }
  const std::map<uint64_t, Entity>& entities() const { return entities_; }
  size_t size() const { return entities_.size(); }

  int FindKind(const std::string& name) const {
    for (size_t k = 0; k < kinds_.size(); ++k) {
      if (kinds_[k].name == name) return static_cast<int>(k);
    }
    return -1;
  }
  const ColumnDef* FindColumn(int kind, const std::string& name) const {
    for (const ColumnDef& c : kinds_[kind].columns) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }
  const Entity* Find(uint64_t id) const {
    auto it = entities_.find(id);
    return it == entities_.end() ? nullptr : &it->second;
  }

  // ---- Schema ----

  static bool ValidName(const std::string& name) {
    if (name.empty() || name.size() > kMaxNameLength) return false;
    if (name[0] >= '0' && name[0] <= '9') return false;
    for (char c : name) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
        return false;
    }
    for (const char* r : {"id", "kind", "x", "y", "z", "distance"}) {
      if (name == r) return false;
    }
    return true;
  }

  // Checks a column definition and fills in the default string length.
  static bool ValidColumn(ColumnDef* c) {
    if (!ValidName(c->name)) return false;
    if (static_cast<int>(c->type) > static_cast<int>(ColumnType::kString)) return false;
    if (TypeOf(c->default_value) != c->type) return false;
    if (c->type == ColumnType::kString) {
      if (c->max_length == 0) c->max_length = kDefaultStringLength;
      if (c->max_length > kMaxStringLength) return false;
      if (std::get<std::string>(c->default_value).size() > c->max_length) return false;
    } else if (c->max_length != 0) {
      return false;
    }
    if (c->type == ColumnType::kF32 && !std::isfinite(std::get<float>(c->default_value)))
      return false;
    if (c->type == ColumnType::kF64 && !std::isfinite(std::get<double>(c->default_value)))
      return false;
    return true;
  }

  bool CreateKind(KindDef def) {
    if (!ValidName(def.name) || FindKind(def.name) >= 0) return false;
    if (kinds_.size() >= kMaxKinds || def.columns.size() > kMaxColumnsPerKind) return false;
    std::set<std::string> names;
    for (ColumnDef& c : def.columns) {
      if (!ValidColumn(&c) || !names.insert(c.name).second) return false;
    }
    kinds_.push_back(std::move(def));
    return true;
  }

  // Drops first, then adds (so a dropped column may come back with a new type).
  bool AlterKind(const std::string& kind, std::vector<ColumnDef> add,
                 const std::vector<std::string>& drop) {
    const int k = FindKind(kind);
    if (k < 0) return false;
    std::set<std::string> dropped;
    for (const std::string& d : drop) {
      if (!FindColumn(k, d) || !dropped.insert(d).second) return false;
    }
    KindDef next{kinds_[k].name, {}};
    std::set<std::string> names;
    for (const ColumnDef& c : kinds_[k].columns) {
      if (!dropped.count(c.name)) {
        next.columns.push_back(c);
        names.insert(c.name);
      }
    }
    for (ColumnDef& c : add) {
      if (!ValidColumn(&c) || !names.insert(c.name).second) return false;
      next.columns.push_back(c);
    }
    if (next.columns.size() > kMaxColumnsPerKind) return false;
    kinds_[k] = std::move(next);
    for (auto& [id, e] : entities_) {
      if (e.kind != kind) continue;
      for (const std::string& d : drop) e.columns.erase(d);
      for (const ColumnDef& c : add) e.columns[c.name] = c.default_value;
    }
    return true;
  }

  // ---- Writes ----

  BatchOutcome ApplyBatch(const std::vector<Op>& ops) {
    BatchOutcome out;
    auto fault = [&](StatusCode code) {
      if (out.faults++ == 0) out.first_code = code;
    };
    // An id may be named once per batch.
    std::map<uint64_t, int> uses;
    for (const Op& op : ops) {
      if (++uses[op.id] == 2) fault(StatusCode::kInvalidArgument);
    }
    // Every operation against the state before the batch.
    for (const Op& op : ops) {
      const Entity* e = Find(op.id);
      switch (op.type) {
        case Op::Type::kUpsert: {
          const int k = FindKind(op.kind);
          if (k < 0)
            fault(StatusCode::kNotFound);
          else if (!PositionOk(op.x, op.y, op.z))
            fault(StatusCode::kInvalidArgument);
          else if (StatusCode c = CellsFault(k, op.cells); c != StatusCode::kOk)
            fault(c);
          break;
        }
        case Op::Type::kMove:
          if (!e)
            fault(StatusCode::kNotFound);
          else if (!PositionOk(op.x, op.y, op.z))
            fault(StatusCode::kInvalidArgument);
          break;
        case Op::Type::kSet:
          if (!e)
            fault(StatusCode::kNotFound);
          else if (StatusCode c = CellsFault(FindKind(e->kind), op.cells); c != StatusCode::kOk)
            fault(c);
          break;
        case Op::Type::kDelete:
          break;
      }
    }
    if (out.faults) {
      out.ok = false;
      return out;
    }
    // Ids are distinct, so the order of application does not matter.
    for (const Op& op : ops) {
      auto it = entities_.find(op.id);
      switch (op.type) {
        case Op::Type::kUpsert: {
          Entity e;
          e.kind = op.kind;
          e.x = op.x, e.y = op.y, e.z = op.z;
          for (const ColumnDef& c : kinds_[FindKind(op.kind)].columns)
            e.columns[c.name] = c.default_value;
          for (const auto& [name, v] : op.cells) e.columns[name] = v;
          if (it == entities_.end())
            ++out.stats.created;
          else
            ++out.stats.replaced;
          entities_[op.id] = std::move(e);
          break;
        }
        case Op::Type::kMove:
          it->second.x = op.x, it->second.y = op.y, it->second.z = op.z;
          ++out.stats.moved;
          break;
        case Op::Type::kSet:
          for (const auto& [name, v] : op.cells) it->second.columns[name] = v;
          ++out.stats.set;
          break;
        case Op::Type::kDelete:
          if (it == entities_.end()) {
            ++out.stats.delete_missing;
          } else {
            entities_.erase(it);
            ++out.stats.deleted;
          }
          break;
      }
    }
    return out;
  }

  // ---- Reads ----

  // The entity as Engine::Get reports it (columns in schema order).
  bool Get(uint64_t id, Shard::Entity* out) const {
    const Entity* e = Find(id);
    if (!e) return false;
    const int k = FindKind(e->kind);
    out->kind = static_cast<uint16_t>(k);
    out->x = e->x, out->y = e->y, out->z = e->z;
    out->columns.clear();
    for (const ColumnDef& c : kinds_[k].columns) out->columns.push_back(e->columns.at(c.name));
    return true;
  }

  Expected Run(const Query& q) const {
    Expected ex;
    int kind = -1;
    if (!QueryValid(q, &kind)) return ex;
    ex.ok = true;
    ex.count_only = q.count_only;
    ex.with_distance = q.shape != Shape::kRect;
    ex.limit = q.limit;

    // The full answer: every matching entity.
    std::vector<Row> all;
    for (const auto& [id, e] : entities_) {
      if (kind >= 0 && e.kind != q.kind) continue;
      const double d2 = SquaredDistance(e.x, e.y, q.x, q.y);
      bool in_shape = true;
      if (q.shape == Shape::kCircle)
        in_shape = d2 <= q.radius * q.radius;
      else if (q.shape == Shape::kRect)
        in_shape = q.rect.Contains(e.x, e.y);
      if (!in_shape || !PredicatesHold(e, q.where)) continue;
      Row r;
      r.id = id;
      r.kind = static_cast<uint16_t>(FindKind(e.kind));
      r.x = e.x, r.y = e.y, r.z = e.z;
      r.d2 = q.shape == Shape::kRect ? 0.0 : d2;
      if (!q.count_only) {
        for (const std::string& c : q.columns) r.columns.push_back(e.columns.at(c));
      }
      all.push_back(std::move(r));
    }
    std::sort(all.begin(), all.end(), [&](const Row& a, const Row& b) {
      if (q.shape == Shape::kRect) return a.id < b.id;
      return a.d2 < b.d2 || (a.d2 == b.d2 && a.id < b.id);
    });
    const uint64_t matches = all.size();
    const uint64_t limit = q.limit == 0 ? UINT64_MAX : q.limit;

    if (q.count_only) {
      ex.count = q.shape == Shape::kNearest ? std::min<uint64_t>(matches, q.k) : matches;
      return ex;
    }
    if (q.shape == Shape::kNearest) {
      ex.ordered = true;
      all.resize(std::min<uint64_t>({matches, q.k, limit}));
      ex.count = all.size();
    } else if (q.shape == Shape::kCircle && q.order_by_distance) {
      ex.ordered = true;
      all.resize(std::min<uint64_t>(matches, limit));
      ex.count = matches;
      ex.truncated = matches > limit ? Expected::Truncated::kYes : Expected::Truncated::kNo;
    } else if (matches < limit) {
      ex.count = matches;
    } else if (matches == limit) {
      // The scan may have stopped at the last match without knowing it was.
      ex.count = matches;
      ex.truncated = Expected::Truncated::kEither;
    } else {
      ex.exact = false;
      ex.count = matches;
      ex.count_lower_bound = true;
      ex.truncated = Expected::Truncated::kYes;
    }
    ex.rows = std::move(all);
    return ex;
  }

  // Fills `out` and returns true, or returns false when the engine must refuse
  // the query.
  bool Density(const DensityQuery& q, DensityResult* out) const {
    const Rect& r = q.rect;
    if (!std::isfinite(r.min_x) || !std::isfinite(r.min_y) || !std::isfinite(r.max_x) ||
        !std::isfinite(r.max_y))
      return false;
    if (!(r.min_x < r.max_x) || !(r.min_y < r.max_y)) return false;
    if (q.nx == 0 || q.ny == 0 || uint64_t{q.nx} * q.ny > kMaxDensityCells) return false;
    if (q.where.size() > kMaxPredicates) return false;
    int kind = -1;
    if (!NamesValid(q.kind, q.where, {}, &kind)) return false;
    out->nx = q.nx;
    out->ny = q.ny;
    out->counts.assign(size_t{q.nx} * q.ny, 0);
    out->total = 0;
    for (const auto& [id, e] : entities_) {
      if (kind >= 0 && e.kind != q.kind) continue;
      if (!r.Contains(e.x, e.y) || !PredicatesHold(e, q.where)) continue;
      const double fx = std::floor((e.x - r.min_x) * q.nx / (r.max_x - r.min_x));
      const double fy = std::floor((e.y - r.min_y) * q.ny / (r.max_y - r.min_y));
      const uint64_t ix = std::min<uint64_t>(q.nx - 1, static_cast<uint64_t>(fx));
      const uint64_t iy = std::min<uint64_t>(q.ny - 1, static_cast<uint64_t>(fy));
      ++out->counts[iy * q.nx + ix];
      ++out->total;
    }
    return true;
  }

 private:
  bool PositionOk(double x, double y, double z) const {
    return std::isfinite(x) && std::isfinite(y) && std::isfinite(z) && world_.Contains(x, y);
  }

  // The first problem with `cells` for kind `k`, or kOk.
  StatusCode CellsFault(int k, const std::vector<std::pair<std::string, Value>>& cells) const {
    std::set<std::string> named;
    for (const auto& [name, v] : cells) {
      const ColumnDef* c = FindColumn(k, name);
      if (!c) return StatusCode::kNotFound;
      if (!named.insert(name).second) return StatusCode::kInvalidArgument;
      if (TypeOf(v) != c->type) return StatusCode::kInvalidArgument;
      if (const float* f = std::get_if<float>(&v); f && !std::isfinite(*f))
        return StatusCode::kInvalidArgument;
      if (const double* d = std::get_if<double>(&v); d && !std::isfinite(*d))
        return StatusCode::kInvalidArgument;
      if (const std::string* s = std::get_if<std::string>(&v)) {
        if (s->size() > c->max_length || !WellFormedUtf8(*s)) return StatusCode::kInvalidArgument;
      }
    }
    return StatusCode::kOk;
  }

  bool PredicatesHold(const Entity& e, const std::vector<Predicate>& where) const {
    for (const Predicate& p : where) {
      if (!Matches(e.columns.at(p.column), p.op, p.value)) return false;
    }
    return true;
  }

  // Kind, predicates and projection name things that exist, with the right types.
  bool NamesValid(const std::string& kind, const std::vector<Predicate>& where,
                  const std::vector<std::string>& columns, int* kind_out) const {
    *kind_out = -1;
    if (kind.empty()) return where.empty() && columns.empty();
    const int k = FindKind(kind);
    if (k < 0) return false;
    for (const Predicate& p : where) {
      const ColumnDef* c = FindColumn(k, p.column);
      if (!c || TypeOf(p.value) != c->type) return false;
      if (static_cast<int>(p.op) > static_cast<int>(CompareOp::kGe)) return false;
    }
    for (const std::string& name : columns) {
      if (!FindColumn(k, name)) return false;
    }
    *kind_out = k;
    return true;
  }

  bool QueryValid(const Query& q, int* kind) const {
    switch (q.shape) {
      case Shape::kCircle:
        if (!std::isfinite(q.x) || !std::isfinite(q.y) || !std::isfinite(q.radius) ||
            !(q.radius >= 0))
          return false;
        break;
      case Shape::kRect:
        if (!std::isfinite(q.rect.min_x) || !std::isfinite(q.rect.min_y) ||
            !std::isfinite(q.rect.max_x) || !std::isfinite(q.rect.max_y) ||
            !(q.rect.min_x <= q.rect.max_x) || !(q.rect.min_y <= q.rect.max_y))
          return false;
        break;
      case Shape::kNearest:
        if (!std::isfinite(q.x) || !std::isfinite(q.y) || q.k == 0 || q.k > kMaxK) return false;
        break;
      default:
        return false;
    }
    if (q.where.size() > kMaxPredicates) return false;
    // count_only queries project nothing, so their projection is not checked.
    return NamesValid(q.kind, q.where, q.count_only ? std::vector<std::string>{} : q.columns, kind);
  }

  Rect world_;
  std::vector<KindDef> kinds_;
  std::map<uint64_t, Entity> entities_;
};

}  // namespace worlddb::model
