// Randomized differential test: the engine against the brute-force model of
// tests/engine_model.h.
//
// For 1, 2 and 3 shards and three worlds (uniform; clustered, with clusters on
// the quadtree's split lines and clamped onto the world's edges; coincident,
// hundreds of entities on the very same points), a fixed-seed generator drives
// both the engine and the model through hundreds of rounds of random write
// batches (upserts incl. kind changes, small and large moves, sets, deletes
// incl. missing ids, and ~10% batches with one deliberate fault), schema
// changes, queries of every shape and option, density grids and point reads,
// and compares every answer exactly: batch validity, error code and write
// counts; ids, kinds, positions, distances and projected values bit for bit;
// counts, truncation flags and density counts.
//
// WORLDDB_TEST_SCALE (default 1) scales the number of rounds, e.g. 0.25 under
// sanitizers or 10 for a soak run; WORLDDB_TEST_SEED=n runs other seeds.
#include <gtest/gtest.h>

#include <bit>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "tests/engine_model.h"

namespace worlddb {
namespace {

using model::Op;

constexpr double kWorldMax = 1000.0;
const Rect kWorld{0, 0, kWorldMax, kWorldMax};

double TestScale() {
  const char* s = std::getenv("WORLDDB_TEST_SCALE");
  if (!s || !*s) return 1.0;
  const double v = std::strtod(s, nullptr);
  return v > 0 ? v : 1.0;
}

// ---------------------------------------------------------------------------
// Printing, for failure messages
// ---------------------------------------------------------------------------

std::string Num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string Describe(const Query& q) {
  std::ostringstream o;
  switch (q.shape) {
    case Shape::kCircle:
      o << "Circle(" << Num(q.x) << ", " << Num(q.y) << ", r=" << Num(q.radius) << ")";
      break;
    case Shape::kRect:
      o << "Rect([" << Num(q.rect.min_x) << ", " << Num(q.rect.max_x) << "] x ["
        << Num(q.rect.min_y) << ", " << Num(q.rect.max_y) << "])";
      break;
    case Shape::kNearest:
      o << "Nearest(" << Num(q.x) << ", " << Num(q.y) << ", k=" << q.k << ")";
      break;
    default:
      o << "Shape(" << static_cast<int>(q.shape) << ")";
  }
  o << " kind='" << q.kind << "'";
  for (const Predicate& p : q.where) {
    o << " where " << p.column << " " << static_cast<int>(p.op) << " " << ValueToString(p.value)
      << "(" << ColumnTypeName(TypeOf(p.value)) << ")";
  }
  if (!q.columns.empty()) {
    o << " columns=";
    for (const auto& c : q.columns) o << c << ",";
  }
  o << " limit=" << q.limit << " order_by_distance=" << q.order_by_distance
    << " count_only=" << q.count_only;
  return o.str();
}

std::string Describe(const DensityQuery& q) {
  std::ostringstream o;
  o << "Density([" << Num(q.rect.min_x) << ", " << Num(q.rect.max_x) << "] x [" << Num(q.rect.min_y)
    << ", " << Num(q.rect.max_y) << "], " << q.nx << " x " << q.ny << ") kind='" << q.kind << "'";
  for (const Predicate& p : q.where) {
    o << " where " << p.column << " " << static_cast<int>(p.op) << " " << ValueToString(p.value);
  }
  return o.str();
}

std::string Describe(const std::vector<Op>& ops) {
  std::ostringstream o;
  o << ops.size() << " ops:";
  size_t shown = 0;
  for (const Op& op : ops) {
    if (++shown > 40) {
      o << " ...";
      break;
    }
    switch (op.type) {
      case Op::Type::kUpsert:
        o << " upsert(" << op.id << ", '" << op.kind << "', " << Num(op.x) << ", " << Num(op.y)
          << ", " << Num(op.z);
        for (const auto& [name, v] : op.cells) o << ", " << name << "=" << ValueToString(v);
        o << ")";
        break;
      case Op::Type::kMove:
        o << " move(" << op.id << ", " << Num(op.x) << ", " << Num(op.y) << ", " << Num(op.z)
          << ")";
        break;
      case Op::Type::kSet:
        o << " set(" << op.id;
        for (const auto& [name, v] : op.cells) o << ", " << name << "=" << ValueToString(v);
        o << ")";
        break;
      case Op::Type::kDelete:
        o << " delete(" << op.id << ")";
        break;
    }
  }
  return o.str();
}

// The value in row `i` of a projected column.
Value CellAt(const ResultColumn& c, size_t i) {
  return std::visit(
      [&](const auto& v) -> Value {
        using T = typename std::decay_t<decltype(v)>::value_type;
        if constexpr (std::is_same_v<T, uint8_t>)
          return v[i] != 0;
        else
          return v[i];
      },
      c.data);
}

size_t ColumnSize(const ResultColumn& c) {
  return std::visit([](const auto& v) { return v.size(); }, c.data);
}

// ---------------------------------------------------------------------------
// Comparison of one query answer with the model's expectation ("" if equal)
// ---------------------------------------------------------------------------

std::string CompareRow(const QueryResult& r, size_t i, const model::Row& m, bool with_distance) {
  std::ostringstream o;
  o << "row " << i << " (id " << r.ids[i] << "): ";
  if (r.ids[i] != m.id) return o.str() + "id differs, model has " + std::to_string(m.id);
  if (r.kinds[i] != m.kind)
    return o.str() + "kind " + std::to_string(r.kinds[i]) + " vs model " + std::to_string(m.kind);
  if (!model::SameNumber(r.x[i], m.x) || !model::SameNumber(r.y[i], m.y) ||
      !model::SameNumber(r.z[i], m.z)) {
    return o.str() + "position (" + Num(r.x[i]) + ", " + Num(r.y[i]) + ", " + Num(r.z[i]) +
           ") vs model (" + Num(m.x) + ", " + Num(m.y) + ", " + Num(m.z) + ")";
  }
  if (with_distance &&
      std::bit_cast<uint64_t>(r.distance[i]) != std::bit_cast<uint64_t>(std::sqrt(m.d2))) {
    return o.str() + "distance " + Num(r.distance[i]) + " vs model " + Num(std::sqrt(m.d2));
  }
  for (size_t c = 0; c < m.columns.size(); ++c) {
    const Value got = CellAt(r.columns[c], i);
    if (!model::SameValue(got, m.columns[c])) {
      return o.str() + "column '" + r.columns[c].name + "' = " + ValueToString(got) + " vs model " +
             ValueToString(m.columns[c]);
    }
  }
  return "";
}

std::string CompareAnswer(const Query& q, const model::Expected& ex, const QueryResult& r,
                          const model::Model& world) {
  std::ostringstream o;
  const size_t rows = r.ids.size();
  if (ex.count_only) {
    if (r.count != ex.count) o << "count " << r.count << " vs model " << ex.count << "; ";
    if (rows || !r.x.empty() || !r.distance.empty() || !r.columns.empty())
      o << "count_only returned rows; ";
    if (r.truncated) o << "count_only says truncated; ";
    return o.str();
  }
  // Shape of the result.
  if (r.kinds.size() != rows || r.x.size() != rows || r.y.size() != rows || r.z.size() != rows) {
    return "parallel arrays differ in length";
  }
  if (r.distance.size() != (ex.with_distance ? rows : 0)) {
    return "distance has " + std::to_string(r.distance.size()) + " entries for " +
           std::to_string(rows) + " rows";
  }
  if (r.columns.size() != q.columns.size()) {
    return "result has " + std::to_string(r.columns.size()) + " columns, query projects " +
           std::to_string(q.columns.size());
  }
  const int kind = world.FindKind(q.kind);
  for (size_t c = 0; c < q.columns.size(); ++c) {
    const ColumnDef* def = world.FindColumn(kind, q.columns[c]);
    if (r.columns[c].name != q.columns[c] || r.columns[c].type != def->type ||
        r.columns[c].data.index() != static_cast<size_t>(def->type)) {
      return "column " + std::to_string(c) + " is '" + r.columns[c].name + "' of type " +
             ColumnTypeName(r.columns[c].type) + ", expected '" + q.columns[c] + "' of type " +
             ColumnTypeName(def->type);
    }
    if (ColumnSize(r.columns[c]) != rows)
      return "column '" + q.columns[c] + "' has the wrong number of values";
  }
  // Count and truncation.
  if (ex.count_lower_bound) {
    if (r.count < ex.limit || r.count > ex.count) {
      o << "count " << r.count << " outside [limit " << ex.limit << ", matches " << ex.count
        << "]; ";
    }
  } else if (r.count != ex.count) {
    o << "count " << r.count << " vs model " << ex.count << "; ";
  }
  if (ex.truncated == model::Expected::Truncated::kNo && r.truncated)
    o << "truncated but should not be; ";
  if (ex.truncated == model::Expected::Truncated::kYes && !r.truncated)
    o << "not truncated but should be; ";
  if (!o.str().empty()) return o.str();
  // Rows.
  if (ex.ordered) {
    if (rows != ex.rows.size()) {
      o << rows << " rows vs model " << ex.rows.size() << "; first ids got/model:";
      for (size_t i = 0; i < std::min<size_t>(10, std::max(rows, ex.rows.size())); ++i) {
        o << " " << (i < rows ? std::to_string(r.ids[i]) : "-") << "/"
          << (i < ex.rows.size() ? std::to_string(ex.rows[i].id) : "-");
      }
      return o.str();
    }
    for (size_t i = 0; i < rows; ++i) {
      std::string e = CompareRow(r, i, ex.rows[i], ex.with_distance);
      if (!e.empty()) {
        if (r.ids[i] != ex.rows[i].id) {
          e += " (model d2 " + Num(ex.rows[i].d2) + ", engine distance " +
               (ex.with_distance ? Num(r.distance[i]) : "-") + ")";
        }
        return e;
      }
    }
    return "";
  }
  const size_t want = ex.exact ? ex.rows.size() : ex.limit;
  if (rows != want) {
    return std::to_string(rows) + " rows, expected " + std::to_string(want) + " (" +
           std::to_string(ex.rows.size()) + " match)";
  }
  std::map<uint64_t, size_t> index;
  for (size_t i = 0; i < ex.rows.size(); ++i) index[ex.rows[i].id] = i;
  std::set<uint64_t> seen;
  for (size_t i = 0; i < rows; ++i) {
    if (!seen.insert(r.ids[i]).second) return "id " + std::to_string(r.ids[i]) + " returned twice";
    auto it = index.find(r.ids[i]);
    if (it == index.end()) return "id " + std::to_string(r.ids[i]) + " does not match the query";
    const std::string e = CompareRow(r, i, ex.rows[it->second], ex.with_distance);
    if (!e.empty()) return e;
  }
  return "";
}

// ---------------------------------------------------------------------------
// The test harness: one engine, one model, one random stream
// ---------------------------------------------------------------------------

// kChurn: a uniform world whose population swings between ~13,000 and ~2,500
// (mostly one kind), so tables grow past and give back storage chunks and
// quadtree leaves split and merge in bulk.
enum class WorldShape { kUniform, kClustered, kCoincident, kChurn };

struct Config {
  uint32_t shards;
  WorldShape world;
  uint64_t seed;
};

std::string ConfigName(const ::testing::TestParamInfo<Config>& info) {
  const char* w = info.param.world == WorldShape::kUniform      ? "Uniform"
                  : info.param.world == WorldShape::kClustered  ? "Clustered"
                  : info.param.world == WorldShape::kCoincident ? "Coincident"
                                                                : "Churn";
  return std::string(w) + "_" + std::to_string(info.param.shards) + "Shards";
}

// Coordinates where the quadtree splits or the world ends, and their neighbours.
const std::vector<double>& SpecialCoords() {
  static const std::vector<double> v = {
      0.0,
      kWorldMax,
      500.0,
      250.0,
      750.0,
      125.0,
      375.0,
      625.0,
      875.0,
      62.5,
      937.5,
      31.25,
      968.75,
      std::nextafter(500.0, 0.0),
      std::nextafter(500.0, kWorldMax),
      std::nextafter(250.0, 0.0),
      std::nextafter(kWorldMax, 0.0),
      std::nextafter(0.0, 1.0),
      -0.0,
      0.1,
      1e-300,
      999.9999999,
  };
  return v;
}

class Harness {
 public:
  explicit Harness(const Config& cfg) : cfg_(cfg), rng_(cfg.seed), model_(kWorld) {}

  void Run(int rounds) {
    const auto start = std::chrono::steady_clock::now();
    Setup();
    if (::testing::Test::HasFailure()) return;
    for (int round = 0; round < rounds; ++round) {
      SCOPED_TRACE("round " + std::to_string(round) + " (seed " + std::to_string(cfg_.seed) + ")");
      Round(round);
      if (::testing::Test::HasFailure()) return;
    }
    CheckWholeWorld();
    EXPECT_EQ(engine_->CheckInvariants(), "");
    EXPECT_EQ(engine_->size(), model_.size());
    // The generator must have reached the interesting cases.
    if (rounds >= 150) {
      EXPECT_GT(stats_.refused, 0u);
      EXPECT_GT(stats_.applied, 0u);
      EXPECT_GT(stats_.truncated, 0u);
      EXPECT_GT(stats_.query_errors, 0u);
      EXPECT_GT(stats_.nonempty, stats_.queries / 4);
      EXPECT_GT(stats_.alters, 0u);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "[ stats    ] %u shards: %d rounds, %zu entities at the end; batches %zu applied / %zu "
        "refused "
        "(%zu ops); queries %zu (%zu non-empty, %zu truncated, %zu refused); densities %zu; alters "
        "%zu; "
        "%.2f s\n",
        cfg_.shards, rounds, model_.size(), stats_.applied, stats_.refused, stats_.ops,
        stats_.queries, stats_.nonempty, stats_.truncated, stats_.query_errors, stats_.densities,
        stats_.alters, secs);
  }

 private:
  struct Stats {
    size_t applied = 0, refused = 0, ops = 0, queries = 0, nonempty = 0, truncated = 0,
           query_errors = 0, densities = 0, alters = 0;
  };

  // ---- Random draws ----

  double U(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  int64_t Int(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  double Normal(double sigma) { return std::normal_distribution<double>(0.0, sigma)(rng_); }
  template <class T>
  const T& OneOf(const std::vector<T>& v) {
    return v[Pick(v.size())];
  }
  static double Clamp(double v) { return std::min(kWorldMax, std::max(0.0, v)); }
  double Special() { return OneOf(SpecialCoords()); }

  const model::Entity& RandomEntity() { return *model_.Find(OneOf(live_)); }

  std::pair<double, double> Pos() {
    const double r = U(0, 1);
    if (r < 0.05 && !live_.empty()) {  // exactly where another entity is
      const model::Entity& e = RandomEntity();
      return {e.x, e.y};
    }
    if (r < 0.12)
      return {Chance(0.6) ? Special() : U(0, kWorldMax), Chance(0.6) ? Special() : U(0, kWorldMax)};
    switch (cfg_.world) {
      case WorldShape::kUniform:
      case WorldShape::kChurn:
        return {U(0, kWorldMax), U(0, kWorldMax)};
      case WorldShape::kClustered: {
        const auto& c = OneOf(centres_);
        const double sigma = OneOf(std::vector<double>{0.5, 8, 40});
        return {Clamp(c.first + Normal(sigma)), Clamp(c.second + Normal(sigma))};
      }
      case WorldShape::kCoincident: {
        // Heavily skewed onto a few points, the first one above all.
        auto p = Chance(0.45) ? hot_[0] : OneOf(hot_);
        if (Chance(0.15)) {
          p.first = Clamp(p.first + (Chance(0.5) ? Normal(0.5) : (Chance(0.5) ? 1e-9 : -1e-9)));
          p.second = Clamp(p.second + (Chance(0.5) ? Normal(0.5) : 0.0));
        }
        if (Chance(0.1)) p = {U(0, kWorldMax), U(0, kWorldMax)};
        return p;
      }
    }
    return {0, 0};
  }

  double Z() {
    const double r = U(0, 1);
    if (r < 0.6) return 0.0;
    if (r < 0.9) return U(-100, 100);
    return OneOf(std::vector<double>{-0.0, 1e300, -1e300, 5e-324, 0.5, -1e-7});
  }

  static const std::vector<std::string>& ValidStrings() {
    static const std::vector<std::string> v = {
        "",
        "a",
        "b",
        "orc",
        "Orc",
        "orc2",
        "zz",
        "\xC3\xA9lan",
        "\xF0\x9F\x98\x80",
        "\xE6\x97\xA5\xE6\x9C\xAC",
        "abcdefghijkl",
        std::string("a\0b", 3),
        "\x7F",
        "\xEF\xBF\xBF",
        "\xF4\x8F\xBF\xBF",
        "\xED\x9F\xBF",
        "t",
    };
    return v;
  }
  static const std::vector<std::string>& InvalidUtf8() {
    static const std::vector<std::string> v = {
        "\xFF",       "\xC0\x80", "\xC1\xBF",     "\xED\xA0\x80",         "\xF4\x90\x80\x80",
        "ab\xE2\x82", "\x80",     "\xE0\x80\x80", "\xF8\x88\x80\x80\x80", "\xF0\x8F\xBF\xBF",
        "x\xC3",
    };
    return v;
  }

  // A value of type `t`, from pools that make ties and equality predicates likely.
  Value RandomValue(ColumnType t, uint32_t max_length = kDefaultStringLength) {
    switch (t) {
      case ColumnType::kBool:
        return Chance(0.5);
      case ColumnType::kI32:
        if (Chance(0.5))
          return OneOf(std::vector<int32_t>{-5, 0, 1, 50, 100, INT32_MIN, INT32_MAX});
        return static_cast<int32_t>(Int(0, 200));
      case ColumnType::kI64:
        if (Chance(0.4)) return OneOf(std::vector<int64_t>{INT64_MIN, INT64_MAX, 0, 1, -1, 7});
        return Int(0, 100);
      case ColumnType::kF32:
        if (Chance(0.5)) {
          return OneOf(std::vector<float>{0.0f, -0.0f, 1.5f, 2.25f, 0.1f, FLT_MAX, -FLT_MAX,
                                          FLT_MIN, std::numeric_limits<float>::denorm_min(),
                                          1e-3f});
        }
        return Chance(0.5) ? static_cast<float>(std::round(U(-10, 10) * 4) / 4)
                           : static_cast<float>(U(-10, 10));
      case ColumnType::kF64:
        if (Chance(0.5))
          return OneOf(
              std::vector<double>{0.0, -0.0, 0.5, 2.5, 0.1, 1e300, -1e300, 5e-324, DBL_MAX});
        return Chance(0.5) ? std::round(U(-10, 10) * 4) / 4 : U(-10, 10);
      case ColumnType::kString: {
        if (Chance(0.7)) {
          for (int tries = 0; tries < 8; ++tries) {
            const std::string& s = OneOf(ValidStrings());
            if (s.size() <= max_length) return s;
          }
        }
        std::string s(static_cast<size_t>(Int(0, std::min<uint32_t>(max_length, 16))), 'a');
        for (char& c : s) c = static_cast<char>('a' + Pick(3));
        return s;
      }
    }
    return false;
  }
  Value RandomValue(const ColumnDef& c) { return RandomValue(c.type, c.max_length); }

  // A value of any type but `t`.
  Value WrongTypeValue(ColumnType t) {
    const int other = (static_cast<int>(t) + 1 + static_cast<int>(Pick(5))) % 6;
    return RandomValue(static_cast<ColumnType>(other), 8);
  }

  // Valid cells for kind `k`: a random subset of its columns, in random order.
  Cells RandomCells(int k) {
    const auto& cols = model_.kinds()[k].columns;
    std::vector<size_t> order(cols.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng_);
    const size_t n = Chance(0.2) ? 0 : Pick(cols.size() + 1);
    Cells cells;
    for (size_t i = 0; i < n; ++i)
      cells.emplace_back(cols[order[i]].name, RandomValue(cols[order[i]]));
    return cells;
  }

  uint64_t SpecialId() {
    return OneOf(std::vector<uint64_t>{0, UINT64_MAX, uint64_t{1} << 63, UINT64_MAX - 1, 1});
  }

  // A live id not yet named in this batch, or false.
  bool LiveId(const std::unordered_set<uint64_t>& used, uint64_t* id) {
    if (live_.empty()) return false;
    for (int tries = 0; tries < 16; ++tries) {
      *id = OneOf(live_);
      if (!used.count(*id)) return true;
    }
    return false;
  }
  // An id no entity has and not yet named in this batch.
  uint64_t AbsentId(const std::unordered_set<uint64_t>& used) {
    for (;;) {
      const uint64_t id = Chance(0.03)
                              ? SpecialId()
                              : static_cast<uint64_t>(Int(1, static_cast<int64_t>(id_space_)));
      if (!model_.Find(id) && !used.count(id)) return id;
    }
  }

  std::string RandomKindName() {
    if (cfg_.world == WorldShape::kChurn && Chance(0.85)) return model_.kinds()[0].name;
    return model_.kinds()[Pick(model_.kinds().size())].name;
  }

  // ---- Writes ----

  Op NewUpsert(uint64_t id) {
    const auto [x, y] = Pos();
    const std::string kind = RandomKindName();
    return Op::Upsert(id, kind, x, y, Z(), RandomCells(model_.FindKind(kind)));
  }

  Op RandomMove(uint64_t id) {
    const model::Entity& e = *model_.Find(id);
    const double r = U(0, 1);
    if (r < 0.08) return Op::Move(id, e.x, e.y, e.z);  // to where it is
    if (r < 0.6) {
      const double s = Chance(0.8) ? 1.0 : 0.001;
      return Op::Move(id, Clamp(e.x + Normal(s)), Clamp(e.y + Normal(s)), Chance(0.8) ? e.z : Z());
    }
    const auto [x, y] = Pos();
    return Op::Move(id, x, y, Z());
  }

  std::vector<Op> RandomBatch(size_t n) {
    std::vector<Op> ops;
    std::unordered_set<uint64_t> used;
    const bool grow = model_.size() < target_;
    double p_create = grow ? 0.2 : 0.07, p_delete = grow ? 0.07 : 0.2;
    const double p_replace = 0.08, p_set = 0.2;
    if (model_.size() + 300 < target_) p_create = 0.8, p_delete = 0.02;
    if (model_.size() > target_ + 300) p_create = 0.02, p_delete = 0.8;
    for (size_t i = 0; i < n; ++i) {
      const double r = U(0, 1);
      uint64_t id = 0;
      if (r < p_create || live_.empty()) {
        id = AbsentId(used);
        ops.push_back(NewUpsert(id));
      } else if (r < p_create + p_replace) {
        if (!LiveId(used, &id)) continue;
        ops.push_back(NewUpsert(id));  // may change the kind
      } else if (r < p_create + p_replace + p_delete) {
        if (Chance(0.15) || !LiveId(used, &id)) id = AbsentId(used);
        ops.push_back(Op::Delete(id));
      } else if (r < p_create + p_replace + p_delete + p_set) {
        if (!LiveId(used, &id)) continue;
        ops.push_back(Op::Set(id, RandomCells(model_.FindKind(model_.Find(id)->kind))));
      } else {
        if (!LiveId(used, &id)) continue;
        ops.push_back(RandomMove(id));
      }
      used.insert(id);
    }
    return ops;
  }

  // Adds one invalid operation to `ops` (at a random place).
  void InjectFault(std::vector<Op>* ops) {
    std::unordered_set<uint64_t> used;
    for (const Op& op : *ops) used.insert(op.id);
    static const std::vector<double> kOutside = {-1e-9,
                                                 -0.5,
                                                 kWorldMax + 1e-9,
                                                 std::nextafter(kWorldMax, 2 * kWorldMax),
                                                 std::nextafter(0.0, -1.0),
                                                 1e308,
                                                 -1e308,
                                                 -1000.0,
                                                 2000.0};
    static const std::vector<double> kNonFinite = {std::numeric_limits<double>::quiet_NaN(),
                                                   std::numeric_limits<double>::infinity(),
                                                   -std::numeric_limits<double>::infinity()};
    Op bad;
    uint64_t id = 0;
    const bool have_live = LiveId(used, &id);
    for (bool done = false; !done;) {
      done = true;
      switch (Pick(11)) {
        case 0:  // an id named twice
          if (ops->empty()) ops->push_back(NewUpsert(AbsentId(used)));
          bad = (*ops)[Pick(ops->size())];
          if (Chance(0.5)) bad = Op::Delete(bad.id);
          break;
        case 1: {  // a position outside the world
          bad = have_live && Chance(0.5) ? RandomMove(id) : NewUpsert(AbsentId(used));
          (Chance(0.5) ? bad.x : bad.y) = OneOf(kOutside);
          break;
        }
        case 2: {  // a coordinate that is not finite
          bad = have_live && Chance(0.5) ? RandomMove(id) : NewUpsert(AbsentId(used));
          const size_t axis = Pick(3);
          (axis == 0 ? bad.x : axis == 1 ? bad.y : bad.z) = OneOf(kNonFinite);
          break;
        }
        case 3: {  // an unknown column
          const std::string col =
              OneOf(std::vector<std::string>{"nope", "x", "id", "HP", "hp ", "power"});
          bad = have_live && Chance(0.5) ? Op::Set(id, {})
                                         : Op::Upsert(AbsentId(used), "player", 1, 1, 0);
          const int k = bad.type == Op::Type::kSet ? model_.FindKind(model_.Find(id)->kind)
                                                   : model_.FindKind("player");
          if (model_.FindColumn(k, col)) {  // e.g. "power" of an npc: not a fault
            done = false;
            break;
          }
          bad.cells.emplace_back(col, int32_t{1});
          break;
        }
        case 4:    // a value of the wrong type
        case 5:    // a bad string
        case 6:    // a float that is not finite
        case 7: {  // a column named twice
          const int which = static_cast<int>(Pick(4));
          bad = have_live && Chance(0.5) ? Op::Set(id, {}) : NewUpsert(AbsentId(used));
          const int k =
              model_.FindKind(bad.type == Op::Type::kSet ? model_.Find(id)->kind : bad.kind);
          const auto& cols = model_.kinds()[k].columns;
          std::vector<const ColumnDef*> fit;
          for (const ColumnDef& c : cols) {
            const bool ok =
                which == 0 || which == 3 || (which == 1 && c.type == ColumnType::kString) ||
                (which == 2 && (c.type == ColumnType::kF32 || c.type == ColumnType::kF64));
            if (ok) fit.push_back(&c);
          }
          if (fit.empty()) {
            done = false;
            break;
          }
          const ColumnDef& c = *fit[Pick(fit.size())];
          bad.cells.clear();
          if (Chance(0.5)) bad.cells = RandomCells(k);
          for (size_t i = 0; i < bad.cells.size(); ++i) {
            if (bad.cells[i].first == c.name)
              bad.cells.erase(bad.cells.begin() + static_cast<ptrdiff_t>(i));
          }
          Value v;
          if (which == 0) {
            v = WrongTypeValue(c.type);
          } else if (which == 1) {
            v = Chance(0.5) ? OneOf(InvalidUtf8()) : std::string(c.max_length + 1 + Pick(3), 'q');
          } else if (which == 2) {
            const double nf = OneOf(kNonFinite);
            v = c.type == ColumnType::kF32 ? Value(static_cast<float>(nf)) : Value(nf);
          } else {
            v = RandomValue(c);
          }
          bad.cells.insert(bad.cells.begin() + static_cast<ptrdiff_t>(Pick(bad.cells.size() + 1)),
                           {c.name, v});
          if (which == 3)
            bad.cells.insert(bad.cells.begin() + static_cast<ptrdiff_t>(Pick(bad.cells.size() + 1)),
                             {c.name, RandomValue(c)});
          break;
        }
        case 8:  // move or set of an entity that does not exist
          bad = Chance(0.5) ? Op::Move(AbsentId(used), 1, 2, 3) : Op::Set(AbsentId(used), {});
          break;
        case 9:  // an unknown kind
          bad = NewUpsert(AbsentId(used));
          bad.kind = OneOf(std::vector<std::string>{"ghost", "", "Player", "player "});
          bad.cells.clear();
          break;
        case 10:  // a string one byte too long, made of two-byte characters
          bad = NewUpsert(AbsentId(used));
          if (bad.kind != "player" || !model_.FindColumn(model_.FindKind("player"), "name")) {
            done = false;
            break;
          }
          bad.cells = {
              {"name", std::string("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9") + "a"}};
          break;
      }
    }
    ops->insert(ops->begin() + static_cast<ptrdiff_t>(Pick(ops->size() + 1)), bad);
  }

  void ApplyBoth(const std::vector<Op>& ops, bool injected) {
    for (const Op& op : ops) {
      switch (op.type) {
        case Op::Type::kUpsert:
          builder_.Upsert(op.id, op.kind, op.x, op.y, op.z, op.cells);
          break;
        case Op::Type::kMove:
          builder_.Move(op.id, op.x, op.y, op.z);
          break;
        case Op::Type::kSet:
          builder_.Set(op.id, op.cells);
          break;
        case Op::Type::kDelete:
          builder_.Delete(op.id);
          break;
      }
    }
    const auto bytes = builder_.Finish();
    const Result<WriteStats> got = engine_->Apply(bytes.data(), bytes.size());
    const model::BatchOutcome want = model_.ApplyBatch(ops);
    stats_.ops += ops.size();
    if (injected) {
      ASSERT_FALSE(want.ok) << "test bug: the model accepts an injected fault: " << Describe(ops);
    }
    ASSERT_EQ(got.ok(), want.ok) << (got.ok() ? std::string("engine accepted")
                                              : got.status().ToString())
                                 << "; model " << (want.ok ? "accepts" : "refuses") << " "
                                 << Describe(ops);
    if (!want.ok) {
      ++stats_.refused;
      if (want.faults == 1) {
        ASSERT_EQ(got.status().code(), want.first_code)
            << got.status().ToString() << " " << Describe(ops);
      }
      return;
    }
    ++stats_.applied;
    const WriteStats& g = got.value();
    const WriteStats& w = want.stats;
    ASSERT_TRUE(g.created == w.created && g.replaced == w.replaced && g.moved == w.moved &&
                g.set == w.set && g.deleted == w.deleted && g.delete_missing == w.delete_missing)
        << "engine created/replaced/moved/set/deleted/delete_missing " << g.created << "/"
        << g.replaced << "/" << g.moved << "/" << g.set << "/" << g.deleted << "/"
        << g.delete_missing << ", model " << w.created << "/" << w.replaced << "/" << w.moved << "/"
        << w.set << "/" << w.deleted << "/" << w.delete_missing << " " << Describe(ops);
    RefreshLive();
  }

  void RefreshLive() {
    live_.clear();
    for (const auto& [id, e] : model_.entities()) live_.push_back(id);
  }

  // ---- Schema changes ----

  void RandomAlter() {
    const std::string kind = RandomKindName();
    const int k = model_.FindKind(kind);
    const auto& cols = model_.kinds()[k].columns;
    static const std::vector<ColumnDef> kOptional = {
        {"mana", ColumnType::kI32, int32_t{7}, 0},
        {"tag", ColumnType::kString, std::string("t"), 4},
        {"shield", ColumnType::kF64, 0.5, 0},
        {"flag", ColumnType::kBool, true, 0},
        {"rank", ColumnType::kI64, int64_t{-3}, 0},
        {"ratio", ColumnType::kF32, 0.25f, 0},
        {"alive", ColumnType::kBool, false, 0},
        {"level", ColumnType::kI64, int64_t{1}, 0},
        {"note", ColumnType::kString, std::string(), 0}};
    std::vector<ColumnDef> add;
    std::vector<std::string> drop;
    const double r = U(0, 1);
    if (r < 0.35 || cols.size() < 2) {  // add one or two columns
      for (int n = 1 + static_cast<int>(Pick(2)); n > 0; --n) {
        const ColumnDef& c = OneOf(kOptional);
        if (model_.FindColumn(k, c.name)) continue;
        bool dup = false;
        for (const ColumnDef& a : add) dup |= a.name == c.name;
        if (!dup) add.push_back(c);
      }
      if (add.empty()) return;
    } else if (r < 0.6) {  // drop one
      drop.push_back(OneOf(cols).name);
    } else if (r < 0.8) {  // drop one and re-add it with another type and default
      const ColumnDef& c = OneOf(cols);
      ColumnDef n;
      n.name = c.name;
      n.type =
          static_cast<ColumnType>((static_cast<int>(c.type) + 1 + static_cast<int>(Pick(5))) % 6);
      n.max_length = n.type == ColumnType::kString ? 12 : 0;
      n.default_value = RandomValue(n.type, 12);
      drop.push_back(c.name);
      add.push_back(n);
    } else {  // refused by both
      switch (Pick(5)) {
        case 0:
          drop.push_back("nope");
          break;
        case 1:
          add.push_back({cols[0].name, ColumnType::kI32, int32_t{0}, 0});
          break;
        case 2:
          add.push_back({"x", ColumnType::kF64, 0.0, 0});
          break;
        case 3:
          add.push_back({"fresh", ColumnType::kI32, int64_t{0}, 0});
          break;
        case 4:
          drop = {cols[0].name, cols[0].name};
          break;
      }
    }
    const Status got = engine_->AlterKind(kind, add, drop);
    const bool want = model_.AlterKind(kind, add, drop);
    ++stats_.alters;
    ASSERT_EQ(got.ok(), want) << "AlterKind(" << kind << "): " << got.ToString();
  }

  // ---- Queries ----

  std::pair<double, double> Centre() {
    const double r = U(0, 1);
    if (r < 0.3 && !live_.empty()) {
      const model::Entity& e = RandomEntity();
      return {e.x, e.y};
    }
    if (r < 0.55) return {U(-50, kWorldMax + 50), U(-50, kWorldMax + 50)};
    if (r < 0.75) return {Special(), Chance(0.5) ? Special() : U(0, kWorldMax)};
    return Pos();
  }

  double Radius(double cx, double cy) {
    const double r = U(0, 1);
    if (r < 0.12) return 0.0;
    if (r < 0.3 && !live_.empty()) {  // exactly the distance to an entity: the boundary
      const model::Entity& e = RandomEntity();
      const double d = std::sqrt(SquaredDistance(e.x, e.y, cx, cy));
      const double t = U(0, 1);
      return t < 0.5 ? d : t < 0.75 ? std::nextafter(d, 0.0) : std::nextafter(d, 1e9);
    }
    if (r < 0.55) return U(0, 30);
    if (r < 0.85) return U(0, 250);
    if (r < 0.97) return U(1000, 3000);
    return OneOf(std::vector<double>{-1.0, -0.0, std::numeric_limits<double>::quiet_NaN(),
                                     std::numeric_limits<double>::infinity(), 1e-300});
  }

  Rect RandomRect(bool for_density) {
    const double r = U(0, 1);
    auto sorted = [](double a, double b, double c, double d) {
      return Rect{std::min(a, b), std::min(c, d), std::max(a, b), std::max(c, d)};
    };
    if (r < 0.25) return sorted(U(-50, 1050), U(-50, 1050), U(-50, 1050), U(-50, 1050));
    if (r < 0.4 && !live_.empty()) {
      const model::Entity& e = RandomEntity();
      if (!for_density && Chance(0.3)) return {e.x, e.y, e.x, e.y};
      const double w = OneOf(std::vector<double>{1e-9, 0.5, 10, 60});
      return {e.x - U(0, w), e.y - U(0, w), e.x + U(0, w), e.y + U(0, w)};
    }
    if (r < 0.55) {
      if (!for_density) {  // degenerate on one axis, on a split line or an entity's coordinate
        const double v = Chance(0.5) || live_.empty() ? Special() : RandomEntity().x;
        const double a = U(-10, 1010), b = U(-10, 1010);
        return Chance(0.5) ? Rect{v, std::min(a, b), v, std::max(a, b)}
                           : Rect{std::min(a, b), v, std::max(a, b), v};
      }
      return sorted(Special(), Special(), Special(), Special());
    }
    if (r < 0.7) return sorted(Special(), Special(), Special(), Special());
    if (r < 0.82) return kWorld;
    if (r < 0.9) return {-1e9, -1e9, 1e9, 1e9};
    if (r < 0.96) return {1000.5, 1000.5, 2000, 2000};  // outside the world
    // Refused: inverted or not finite.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return OneOf(std::vector<Rect>{{10, 10, 5, 20},
                                   {10, 20, 20, 10},
                                   {nan, 0, 10, 10},
                                   {0, 0, std::numeric_limits<double>::infinity(), 10}});
  }

  Value PredicateValue(const ColumnDef& c) {
    if (c.type == ColumnType::kF32 && Chance(0.05)) return std::numeric_limits<float>::quiet_NaN();
    if (c.type == ColumnType::kF64 && Chance(0.05)) return std::numeric_limits<double>::quiet_NaN();
    if (c.type == ColumnType::kString && Chance(0.1))
      return OneOf(std::vector<std::string>{"b", "zzz", "\xC3", "~"});
    return RandomValue(c.type, c.max_length);
  }

  // Kind filter, predicates and projection (with occasional invalid names).
  void RandomFilter(std::string* kind, std::vector<Predicate>* where,
                    std::vector<std::string>* columns) {
    const double r = U(0, 1);
    *kind = r < 0.4 ? "" : r < 0.7 ? "player" : r < 0.96 ? "npc" : "ghost";
    const int k = model_.FindKind(*kind);
    if (k >= 0) {
      const auto& cols = model_.kinds()[k].columns;
      const size_t np = cols.empty() ? 0 : OneOf(std::vector<size_t>{0, 0, 0, 1, 1, 2});
      for (size_t i = 0; i < np; ++i) {
        const ColumnDef& c = OneOf(cols);
        where->push_back({c.name, static_cast<CompareOp>(Pick(6)), PredicateValue(c)});
      }
      if (columns) {
        const size_t nc = cols.empty() ? 0 : OneOf(std::vector<size_t>{0, 0, 1, 2, 3});
        for (size_t i = 0; i < nc; ++i) columns->push_back(OneOf(cols).name);
      }
    }
    if (Chance(0.04)) {  // a name or value the engine must refuse (or, without a kind, any name)
      switch (Pick(4)) {
        case 0:
          where->push_back({"nope", CompareOp::kEq, int32_t{1}});
          break;
        case 1:
          where->push_back({"hp", CompareOp::kEq, std::string("1")});
          break;
        case 2:
          where->push_back({"hp", static_cast<CompareOp>(6 + Pick(3)), int32_t{1}});
          break;
        case 3:
          if (columns) columns->push_back(Chance(0.5) ? "nope" : "hp");
          break;
      }
    }
  }

  Query RandomQuery() {
    Query q;
    const double r = U(0, 1);
    if (r < 0.4) {
      const auto [cx, cy] = Centre();
      q = Query::Circle(cx, cy, Radius(cx, cy));
    } else if (r < 0.7) {
      q = Query::InRect(RandomRect(false));
    } else {
      const auto [cx, cy] = Centre();
      const double t = U(0, 1);
      uint32_t k = static_cast<uint32_t>(Int(1, 50));
      if (t < 0.1)
        k = 1;
      else if (t < 0.2)
        k = static_cast<uint32_t>(model_.size() + Pick(10));
      else if (t < 0.24)
        k = 100000;
      else if (t < 0.26)
        k = kMaxK;
      else if (t < 0.28)
        k = Chance(0.5) ? 0 : kMaxK + 1;
      q = Query::Nearest(cx, cy, k);
      if (Chance(0.02)) q.x = std::numeric_limits<double>::quiet_NaN();
    }
    RandomFilter(&q.kind, &q.where, &q.columns);
    const double l = U(0, 1);
    q.limit = l < 0.55   ? 0
              : l < 0.8  ? static_cast<uint64_t>(Int(1, 20))
              : l < 0.95 ? static_cast<uint64_t>(Int(21, 500))
                         : 1;
    q.order_by_distance = Chance(0.5);
    q.count_only = Chance(0.12);
    return q;
  }

  void Check(const Query& q, const Status& st, const QueryResult& r) {
    const model::Expected ex = model_.Run(q);
    ++stats_.queries;
    ASSERT_EQ(st.ok(), ex.ok) << Describe(q) << ": engine says " << st.ToString();
    if (!ex.ok) {
      ++stats_.query_errors;
      return;
    }
    stats_.nonempty += ex.count_only ? ex.count > 0 : !ex.rows.empty();
    stats_.truncated += r.truncated;
    const std::string e = CompareAnswer(q, ex, r, model_);
    ASSERT_EQ(e, "") << Describe(q);
  }

  void CheckQuery(const Query& q) {
    // Half the time into a result that answered an earlier query.
    QueryResult fresh;
    QueryResult& r = Chance(0.5) ? fresh : reused_one_;
    const Status st = engine_->Run(q, &r);
    Check(q, st, r);
  }

  // The results and InFlights are kept from one call to the next, as the
  // server keeps its rounds': each answer overwrites whatever an earlier
  // query of another shape, kind or projection left in the same result.
  void CheckRunMany(size_t n) {
    std::vector<Query> qs;
    for (size_t i = 0; i < n; ++i) qs.push_back(RandomQuery());
    std::vector<QueryResult>& outs = reused_outs_;
    outs.resize(n);
    std::vector<Status> sts(n);
    if (Chance(0.5)) {
      engine_->RunMany(qs.data(), n, outs.data(), sts.data());
    } else {
      // As the server does: several rounds in flight at once, finished in order.
      const size_t half = n / 2;
      engine_->StartMany(qs.data(), half, outs.data(), sts.data(), &first_);
      engine_->StartMany(qs.data() + half, n - half, outs.data() + half, sts.data() + half,
                         &second_);
      engine_->FinishMany(&first_);
      engine_->FinishMany(&second_);
    }
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE("RunMany query " + std::to_string(i));
      Check(qs[i], sts[i], outs[i]);
      if (::testing::Test::HasFailure()) return;
    }
  }

  void CheckDensity() {
    DensityQuery q;
    q.rect = RandomRect(true);
    const double r = U(0, 1);
    if (r < 0.6) {
      q.nx = static_cast<uint32_t>(Int(1, 64));
      q.ny = static_cast<uint32_t>(Int(1, 64));
    } else if (r < 0.75) {
      q.nx = OneOf(std::vector<uint32_t>{1, 2, 4, 8, 16, 1000});
      q.ny = OneOf(std::vector<uint32_t>{1, 2, 4, 8, 16, 3});
    } else if (r < 0.9) {
      q.nx = q.ny = static_cast<uint32_t>(Int(100, 1000));
    } else {
      q.nx = OneOf(std::vector<uint32_t>{0, 4096, 2048, 3});
      q.ny = OneOf(std::vector<uint32_t>{0, 2048, 2049, 7});
    }
    RandomFilter(&q.kind, &q.where, nullptr);
    DensityResult got;
    const Status st = engine_->Density(q, &got);
    DensityResult want;
    const bool ok = model_.Density(q, &want);
    ++stats_.densities;
    ASSERT_EQ(st.ok(), ok) << Describe(q) << ": engine says " << st.ToString();
    if (!ok) return;
    ASSERT_EQ(got.nx, want.nx) << Describe(q);
    ASSERT_EQ(got.ny, want.ny) << Describe(q);
    ASSERT_EQ(got.total, want.total) << Describe(q);
    ASSERT_EQ(got.counts.size(), want.counts.size()) << Describe(q);
    for (size_t c = 0; c < want.counts.size(); ++c) {
      ASSERT_EQ(got.counts[c], want.counts[c])
          << Describe(q) << ": cell (" << c % q.nx << ", " << c / q.nx << ")";
    }
  }

  void CheckGet(uint64_t id) {
    Shard::Entity got, want;
    const bool found = engine_->Get(id, &got);
    ASSERT_EQ(found, model_.Get(id, &want)) << "Get(" << id << ")";
    if (!found) return;
    ASSERT_EQ(got.kind, want.kind) << "Get(" << id << ")";
    ASSERT_TRUE(model::SameNumber(got.x, want.x) && model::SameNumber(got.y, want.y) &&
                model::SameNumber(got.z, want.z))
        << "Get(" << id << "): (" << Num(got.x) << ", " << Num(got.y) << ", " << Num(got.z)
        << ") vs model (" << Num(want.x) << ", " << Num(want.y) << ", " << Num(want.z) << ")";
    ASSERT_EQ(got.columns.size(), want.columns.size()) << "Get(" << id << ")";
    for (size_t c = 0; c < want.columns.size(); ++c) {
      ASSERT_TRUE(model::SameValue(got.columns[c], want.columns[c]))
          << "Get(" << id << ") column " << c << ": " << ValueToString(got.columns[c])
          << " vs model " << ValueToString(want.columns[c]);
    }
  }

  // Every entity, every column: rectangles over the whole world per kind.
  void CheckWholeWorld() {
    for (const KindDef& kd : model_.kinds()) {
      Query q = Query::InRect(kWorld);
      q.kind = kd.name;
      for (const ColumnDef& c : kd.columns) q.columns.push_back(c.name);
      CheckQuery(q);
    }
    CheckQuery(Query::InRect(kWorld));
  }

  // ---- Driver ----

  void Setup() {
    EngineOptions o;
    o.world = kWorld;
    o.shards = cfg_.shards;
    auto e = Engine::Open(o);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e.value());
    const KindDef player{"player",
                         {{"hp", ColumnType::kI32, int32_t{100}, 0},
                          {"name", ColumnType::kString, std::string("anon"), 12},
                          {"alive", ColumnType::kBool, true, 0},
                          {"speed", ColumnType::kF32, 1.5f, 0}}};
    const KindDef npc{
        "npc", {{"level", ColumnType::kI64, int64_t{1}, 0}, {"power", ColumnType::kF64, 0.5, 0}}};
    for (const KindDef& kd : {player, npc}) {
      const Status st = engine_->CreateKind(kd);
      ASSERT_TRUE(st.ok()) << st.ToString();
      ASSERT_TRUE(model_.CreateKind(kd));
    }
    switch (cfg_.world) {
      case WorldShape::kUniform:
        target_ = 4000;
        break;
      case WorldShape::kClustered:
        target_ = 4000;
        break;
      case WorldShape::kCoincident:
        target_ = 2500;
        break;
      case WorldShape::kChurn:
        target_ = 9000;
        break;
    }
    id_space_ = cfg_.world == WorldShape::kChurn ? 40000 : target_ * 5 / 2;
    centres_ = {{500, 500}, {250, 750}, {kWorldMax, kWorldMax}, {0, 500}, {625, 125}};
    for (int i = 0; i < 4; ++i) centres_.emplace_back(U(0, kWorldMax), U(0, kWorldMax));
    hot_ = {{500, 500}, {kWorldMax, kWorldMax}, {0, 0}, {250, 250}, {0, kWorldMax}, {750, 500},
            {500, 0}};
    for (int i = 0; i < 5; ++i) hot_.emplace_back(U(0, kWorldMax), U(0, kWorldMax));
    // The initial population: one large batch (the bulk-insert path).
    std::vector<Op> ops;
    std::unordered_set<uint64_t> used;
    for (size_t i = 0; i < target_; ++i) {
      const uint64_t id = AbsentId(used);
      used.insert(id);
      ops.push_back(NewUpsert(id));
    }
    ApplyBoth(ops, false);
    ASSERT_EQ(engine_->CheckInvariants(), "");
    CheckWholeWorld();
    SweepEdges();
  }

  // One-operation batches over the edges of the validity rules: strings of
  // bytes around every UTF-8 boundary and lengths around max_length, and
  // positions on and just past the world's edges.
  void SweepEdges() {
    uint64_t player = 0;
    bool found = false;
    for (uint64_t id : live_) {
      if (model_.Find(id)->kind == "player") {
        player = id;
        found = true;
        break;
      }
    }
    ASSERT_TRUE(found);
    std::vector<std::string> strings = ValidStrings();
    for (const std::string& s : InvalidUtf8()) strings.push_back(s);
    for (size_t len : {11, 12, 13}) strings.push_back(std::string(len, 'n'));
    strings.push_back("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9");      // 12 bytes
    strings.push_back("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3");  // 13, cut short
    strings.push_back("abcdefghij\xF0\x9F");                                    // 12, cut short
    static const std::vector<uint8_t> kBytes = {
        0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
        0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFE, 0xFF};
    for (int i = 0; i < 600; ++i) {
      std::string s;
      for (size_t n = 1 + Pick(4); n > 0; --n) s.push_back(static_cast<char>(OneOf(kBytes)));
      strings.push_back(s);
    }
    for (const std::string& s : strings) {
      ApplyBoth({Op::Set(player, {{"name", s}})}, false);
      if (::testing::Test::HasFailure()) return;
    }
    const std::vector<double> coords = {0.0,
                                        -0.0,
                                        kWorldMax,
                                        std::nextafter(kWorldMax, 0.0),
                                        std::nextafter(kWorldMax, 2 * kWorldMax),
                                        std::nextafter(0.0, -1.0),
                                        std::nextafter(0.0, 1.0),
                                        500.0,
                                        -1e-300,
                                        1e300};
    for (double x : coords) {
      for (double y : coords) {
        ApplyBoth({Op::Move(player, x, y, 0)}, false);
        if (::testing::Test::HasFailure()) return;
      }
    }
    CheckGet(player);
  }

  void Round(int round) {
    if (cfg_.world == WorldShape::kChurn) target_ = (round / 50) % 2 == 0 ? 13000 : 2500;
    // One write batch.
    const double r = U(0, 1);
    size_t n = r < 0.02 ? 0 : r < 0.7 ? Pick(20) + 1 : r < 0.95 ? Pick(80) + 20 : Pick(500) + 300;
    if (model_.size() + 300 < target_ || model_.size() > target_ + 300) n = 600 + Pick(600);
    std::vector<Op> ops = RandomBatch(n);
    const bool inject = Chance(0.1);
    if (inject) InjectFault(&ops);
    ApplyBoth(ops, inject);
    if (::testing::Test::HasFailure()) return;
    if (round % 29 == 28) RandomAlter();
    for (int i = 0; i < 4 && !::testing::Test::HasFailure(); ++i) CheckQuery(RandomQuery());
    if (round % 10 == 5) CheckRunMany(6);
    if (round % 3 == 0) CheckDensity();
    for (int i = 0; i < 3 && !live_.empty() && !::testing::Test::HasFailure(); ++i)
      CheckGet(OneOf(live_));
    CheckGet(AbsentId({}));
    if (::testing::Test::HasFailure()) return;
    ASSERT_EQ(engine_->size(), model_.size());
    if (round % 10 == 9) {
      ASSERT_EQ(engine_->CheckInvariants(), "");
    }
    if (round % 50 == 49) CheckWholeWorld();
  }

  Config cfg_;
  std::mt19937_64 rng_;
  model::Model model_;
  std::unique_ptr<Engine> engine_;
  QueryResult reused_one_;                // CheckQuery's, reused
  std::vector<QueryResult> reused_outs_;  // CheckRunMany's, reused
  Engine::InFlight first_, second_;
  BatchBuilder builder_;
  std::vector<uint64_t> live_;  // ids of the model's entities, for random picks
  size_t target_ = 0;           // population the generator steers towards
  size_t id_space_ = 0;         // new ids are drawn from [1, id_space_] (and a few extremes)
  std::vector<std::pair<double, double>> centres_, hot_;
  Stats stats_;
};

class EngineDifferentialTest : public ::testing::TestWithParam<Config> {};

TEST_P(EngineDifferentialTest, MatchesModel) {
  const int rounds = std::max(1, static_cast<int>(std::lround(300 * TestScale())));
  Harness h(GetParam());
  h.Run(rounds);
}

// WORLDDB_TEST_SEED (default 0) shifts every seed, to explore beyond the
// fixed runs; failures print the seed in use.
uint64_t SeedBase() {
  const char* s = std::getenv("WORLDDB_TEST_SEED");
  return 0x5EED'0001 + (s && *s ? std::strtoull(s, nullptr, 10) * 1000 : 0);
}

std::vector<Config> AllConfigs() {
  std::vector<Config> v;
  uint64_t seed = SeedBase();
  for (WorldShape w : {WorldShape::kUniform, WorldShape::kClustered, WorldShape::kCoincident}) {
    for (uint32_t shards : {1u, 2u, 3u}) v.push_back({shards, w, seed++});
  }
  for (uint32_t shards : {1u, 2u}) v.push_back({shards, WorldShape::kChurn, seed++});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Worlds, EngineDifferentialTest, ::testing::ValuesIn(AllConfigs()),
                         ConfigName);

}  // namespace
}  // namespace worlddb
