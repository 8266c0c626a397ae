#include "bench/baselines.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside boost's R*-tree reinsert
// (a partial_sort over a boost varray); the file-wide pragma is needed because
// the warning is raised where the template is instantiated, at the end of this
// file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Boost 1.74's geometry still includes a header it deprecated itself; the
// notice would be printed on every build.
#define BOOST_ALLOW_DEPRECATED_HEADERS
#include <boost/geometry.hpp>
#include <boost/geometry/index/rtree.hpp>
#include <boost/iterator/function_output_iterator.hpp>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

namespace worlddb::bench {

namespace {

// Circle queries look at a bounding box of half-side r + kBoxSlack: computing
// cx - r rounds, and without slack a point that passes the exact d2 test could
// sit just outside the rounded box. 1e-9 m is far above the rounding error of
// coordinates up to 1e4 (ulp ~ 2e-12) and far below any spacing that matters.
constexpr double kBoxSlack = 1e-9;

// Keeps the k smallest neighbours (by NeighborLess) seen so far as a max-heap.
class TopK {
 public:
  TopK(size_t k, NeighborList* out) : k_(k), out_(out) { out_->clear(); }
  bool full() const { return out_->size() == k_; }
  // The k-th best so far; only valid when full().
  const Neighbor& worst() const { return out_->front(); }
  void Offer(uint32_t id, double d2) {
    if (k_ == 0) return;
    const Neighbor nb{id, d2};
    if (out_->size() < k_) {
      out_->push_back(nb);
      std::push_heap(out_->begin(), out_->end(), NeighborLess);
    } else if (NeighborLess(nb, out_->front())) {
      std::pop_heap(out_->begin(), out_->end(), NeighborLess);
      out_->back() = nb;
      std::push_heap(out_->begin(), out_->end(), NeighborLess);
    }
  }
  // Leaves the list ordered ascending.
  void Finish() { std::sort_heap(out_->begin(), out_->end(), NeighborLess); }

 private:
  size_t k_;
  NeighborList* out_;
};

}  // namespace

// ---- BruteForceIndex ------------------------------------------------------

void BruteForceIndex::BulkLoad(const double* xs, const double* ys, size_t n) {
  xs_.assign(xs, xs + n);
  ys_.assign(ys, ys + n);
}

size_t BruteForceIndex::RadiusCount(double cx, double cy, double r) const {
  const double r2 = r * r;
  const size_t n = xs_.size();
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = xs_[i] - cx;
    const double dy = ys_[i] - cy;
    count += dx * dx + dy * dy <= r2;
  }
  return count;
}

void BruteForceIndex::RadiusIds(double cx, double cy, double r, std::vector<uint32_t>* out) const {
  out->clear();
  const double r2 = r * r;
  for (size_t i = 0; i < xs_.size(); ++i) {
    const double dx = xs_[i] - cx;
    const double dy = ys_[i] - cy;
    if (dx * dx + dy * dy <= r2) out->push_back(static_cast<uint32_t>(i + 1));
  }
}

size_t BruteForceIndex::RectCount(const Rect& rect) const {
  size_t count = 0;
  // Non-short-circuit & keeps the loop branch-free (and vectorisable); the
  // predicate is Rect::Contains.
  for (size_t i = 0; i < xs_.size(); ++i) {
    const double x = xs_[i], y = ys_[i];
    count += (rect.min_x <= x) & (x <= rect.max_x) & (rect.min_y <= y) & (y <= rect.max_y);
  }
  return count;
}

void BruteForceIndex::RectIds(const Rect& rect, std::vector<uint32_t>* out) const {
  out->clear();
  for (size_t i = 0; i < xs_.size(); ++i) {
    if (rect.Contains(xs_[i], ys_[i])) out->push_back(static_cast<uint32_t>(i + 1));
  }
}

void BruteForceIndex::Nearest(double cx, double cy, size_t k, NeighborList* out) const {
  TopK top(k, out);
  for (size_t i = 0; i < xs_.size(); ++i) {
    const double dx = xs_[i] - cx;
    const double dy = ys_[i] - cy;
    const double d2 = dx * dx + dy * dy;
    // Cheap reject first: once full, almost every point is farther.
    if (top.full() && d2 > top.worst().d2) continue;
    top.Offer(static_cast<uint32_t>(i + 1), d2);
  }
  top.Finish();
}

void BruteForceIndex::Density(const Rect& r, size_t nx, size_t ny,
                              std::vector<uint32_t>* counts) const {
  counts->assign(nx * ny, 0);
  for (size_t i = 0; i < xs_.size(); ++i) {
    if (r.Contains(xs_[i], ys_[i])) ++(*counts)[DensityCell(xs_[i], ys_[i], r, nx, ny)];
  }
}

size_t BruteForceIndex::MemoryBytes() const {
  return (xs_.capacity() + ys_.capacity()) * sizeof(double);
}

// ---- GridIndex ----------------------------------------------------------------

GridIndex::GridIndex(double world_size, double cell_size)
    : cell_size_(cell_size),
      cells_per_side_(static_cast<size_t>(std::ceil(world_size / cell_size))),
      cells_(cells_per_side_ * cells_per_side_) {
  assert(world_size > 0 && cell_size > 0);
}

void GridIndex::BulkLoad(const double* xs, const double* ys, size_t n) {
  assert(n < std::numeric_limits<uint32_t>::max());
  for (auto& cell : cells_) cell.clear();
  cell_of_.resize(n);
  slot_of_.resize(n);
  // Count first so every cell is allocated once at its exact size.
  std::vector<uint32_t> counts(cells_.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    cell_of_[i] = static_cast<uint32_t>(CellOf(xs[i], ys[i]));
    ++counts[cell_of_[i]];
  }
  for (size_t c = 0; c < cells_.size(); ++c) cells_[c].reserve(counts[c]);
  for (size_t i = 0; i < n; ++i) {
    std::vector<Entry>& cell = cells_[cell_of_[i]];
    slot_of_[i] = static_cast<uint32_t>(cell.size());
    cell.push_back({xs[i], ys[i], static_cast<uint32_t>(i + 1)});
  }
}

void GridIndex::Move(uint32_t id, double x, double y) {
  const size_t i = id - 1;
  const uint32_t from = cell_of_[i];
  const uint32_t to = static_cast<uint32_t>(CellOf(x, y));
  if (from == to) {
    Entry& e = cells_[from][slot_of_[i]];
    e.x = x;
    e.y = y;
    return;
  }
  std::vector<Entry>& old_cell = cells_[from];
  const uint32_t slot = slot_of_[i];
  old_cell[slot] = old_cell.back();
  slot_of_[old_cell[slot].id - 1] = slot;
  old_cell.pop_back();
  std::vector<Entry>& new_cell = cells_[to];
  cell_of_[i] = to;
  slot_of_[i] = static_cast<uint32_t>(new_cell.size());
  new_cell.push_back({x, y, id});
}

template <class Visitor>
void GridIndex::VisitRectCells(const Rect& rect, Visitor&& v) const {
  const size_t gx0 = Axis(rect.min_x), gx1 = Axis(rect.max_x);
  const size_t gy0 = Axis(rect.min_y), gy1 = Axis(rect.max_y);
  for (size_t gy = gy0; gy <= gy1; ++gy) {
    for (size_t gx = gx0; gx <= gx1; ++gx) v(cells_[gy * cells_per_side_ + gx]);
  }
}

size_t GridIndex::RadiusCount(double cx, double cy, double r) const {
  const double r2 = r * r;
  const double h = r + kBoxSlack;
  size_t count = 0;
  VisitRectCells(Rect{cx - h, cy - h, cx + h, cy + h}, [&](const std::vector<Entry>& cell) {
    for (const Entry& e : cell) {
      const double dx = e.x - cx;
      const double dy = e.y - cy;
      count += dx * dx + dy * dy <= r2;
    }
  });
  return count;
}

void GridIndex::RadiusIds(double cx, double cy, double r, std::vector<uint32_t>* out) const {
  out->clear();
  const double r2 = r * r;
  const double h = r + kBoxSlack;
  VisitRectCells(Rect{cx - h, cy - h, cx + h, cy + h}, [&](const std::vector<Entry>& cell) {
    for (const Entry& e : cell) {
      const double dx = e.x - cx;
      const double dy = e.y - cy;
      if (dx * dx + dy * dy <= r2) out->push_back(e.id);
    }
  });
}

size_t GridIndex::RectCount(const Rect& rect) const {
  size_t count = 0;
  VisitRectCells(rect, [&](const std::vector<Entry>& cell) {
    for (const Entry& e : cell) count += rect.Contains(e.x, e.y);
  });
  return count;
}

void GridIndex::RectIds(const Rect& rect, std::vector<uint32_t>* out) const {
  out->clear();
  VisitRectCells(rect, [&](const std::vector<Entry>& cell) {
    for (const Entry& e : cell) {
      if (rect.Contains(e.x, e.y)) out->push_back(e.id);
    }
  });
}

void GridIndex::Nearest(double cx, double cy, size_t k, NeighborList* out) const {
  TopK top(k, out);
  if (k == 0) return;
  const long side = static_cast<long>(cells_per_side_);
  const long qx = static_cast<long>(Axis(cx));
  const long qy = static_cast<long>(Axis(cy));
  auto scan = [&](long gx, long gy) {
    for (const Entry& e : cells_[static_cast<size_t>(gy * side + gx)]) {
      const double dx = e.x - cx;
      const double dy = e.y - cy;
      const double d2 = dx * dx + dy * dy;
      if (top.full() && d2 > top.worst().d2) continue;
      top.Offer(e.id, d2);
    }
  };
  constexpr double kInf = std::numeric_limits<double>::infinity();
  for (long ring = 0;; ++ring) {
    const long x0 = qx - ring, x1 = qx + ring, y0 = qy - ring, y1 = qy + ring;
    for (long gy = std::max(0L, y0); gy <= std::min(side - 1, y1); ++gy) {
      if (gy == y0 || gy == y1) {
        for (long gx = std::max(0L, x0); gx <= std::min(side - 1, x1); ++gx) scan(gx, gy);
      } else {
        if (x0 >= 0) scan(x0, gy);
        if (x1 < side) scan(x1, gy);
      }
    }
    // Every cell not searched yet lies beyond one side of the searched block
    // that has cells past it; the nearest such side bounds their distance.
    const double left = x0 > 0 ? cx - static_cast<double>(x0) * cell_size_ : kInf;
    const double right = x1 < side - 1 ? static_cast<double>(x1 + 1) * cell_size_ - cx : kInf;
    const double down = y0 > 0 ? cy - static_cast<double>(y0) * cell_size_ : kInf;
    const double up = y1 < side - 1 ? static_cast<double>(y1 + 1) * cell_size_ - cy : kInf;
    const double bound = std::min(std::min(left, right), std::min(down, up));
    if (bound == kInf) break;  // the whole grid has been searched
    // Strict, with the slack for rounding: an unsearched point at exactly the
    // k-th distance could still win the tie-break on id.
    const double margin = std::max(0.0, bound - kBoxSlack);
    if (top.full() && top.worst().d2 < margin * margin) break;
  }
  top.Finish();
}

void GridIndex::Density(const Rect& r, size_t nx, size_t ny, std::vector<uint32_t>* counts) const {
  counts->assign(nx * ny, 0);
  VisitRectCells(r, [&](const std::vector<Entry>& cell) {
    for (const Entry& e : cell) {
      if (r.Contains(e.x, e.y)) ++(*counts)[DensityCell(e.x, e.y, r, nx, ny)];
    }
  });
}

size_t GridIndex::MemoryBytes() const {
  size_t bytes = cells_.capacity() * sizeof(cells_[0]);
  for (const auto& cell : cells_) bytes += cell.capacity() * sizeof(Entry);
  bytes += (cell_of_.capacity() + slot_of_.capacity()) * sizeof(uint32_t);
  return bytes;
}

// ---- RTreeIndex ------------------------------------------------------------------

namespace bg = boost::geometry;
namespace bgi = boost::geometry::index;

namespace {

using Point = bg::model::point<double, 2, bg::cs::cartesian>;
using Box = bg::model::box<Point>;
using Value = std::pair<Point, uint32_t>;
using Tree = bgi::rtree<Value, bgi::rstar<16>>;

Box ToBox(const Rect& r) { return Box(Point(r.min_x, r.min_y), Point(r.max_x, r.max_y)); }

// Calls f(value) for every value matching `predicate`, without materialising
// the result set (query() with an output iterator is boost's fastest path).
template <class Predicate, class F>
void ForEach(const Tree& tree, const Predicate& predicate, F&& f) {
  tree.query(predicate, boost::make_function_output_iterator(f));
}

}  // namespace

struct RTreeIndex::Impl {
  Tree tree;
  std::vector<double> xs, ys;  // current positions, index id - 1 (Move needs the old one)
};

RTreeIndex::RTreeIndex() : impl_(std::make_unique<Impl>()) {}
RTreeIndex::~RTreeIndex() = default;

void RTreeIndex::BulkLoad(const double* xs, const double* ys, size_t n) {
  impl_->xs.assign(xs, xs + n);
  impl_->ys.assign(ys, ys + n);
  std::vector<Value> values;
  values.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    values.emplace_back(Point(xs[i], ys[i]), static_cast<uint32_t>(i + 1));
  }
  // The range constructor packs (bulk-loads) the tree.
  impl_->tree = Tree(values.begin(), values.end());
}

void RTreeIndex::Move(uint32_t id, double x, double y) {
  double& ox = impl_->xs[id - 1];
  double& oy = impl_->ys[id - 1];
  [[maybe_unused]] const size_t removed = impl_->tree.remove(Value(Point(ox, oy), id));
  assert(removed == 1);
  impl_->tree.insert(Value(Point(x, y), id));
  ox = x;
  oy = y;
}

size_t RTreeIndex::size() const { return impl_->tree.size(); }

size_t RTreeIndex::RadiusCount(double cx, double cy, double r) const {
  const double r2 = r * r;
  const double h = r + kBoxSlack;
  size_t count = 0;
  ForEach(impl_->tree, bgi::intersects(ToBox(Rect{cx - h, cy - h, cx + h, cy + h})),
          [&](const Value& v) {
            const double dx = bg::get<0>(v.first) - cx;
            const double dy = bg::get<1>(v.first) - cy;
            count += dx * dx + dy * dy <= r2;
          });
  return count;
}

void RTreeIndex::RadiusIds(double cx, double cy, double r, std::vector<uint32_t>* out) const {
  out->clear();
  const double r2 = r * r;
  const double h = r + kBoxSlack;
  ForEach(impl_->tree, bgi::intersects(ToBox(Rect{cx - h, cy - h, cx + h, cy + h})),
          [&](const Value& v) {
            const double dx = bg::get<0>(v.first) - cx;
            const double dy = bg::get<1>(v.first) - cy;
            if (dx * dx + dy * dy <= r2) out->push_back(v.second);
          });
}

// boost's intersects(point, box) is closed on every side, as Rect is.
size_t RTreeIndex::RectCount(const Rect& rect) const {
  size_t count = 0;
  ForEach(impl_->tree, bgi::intersects(ToBox(rect)), [&](const Value&) { ++count; });
  return count;
}

void RTreeIndex::RectIds(const Rect& rect, std::vector<uint32_t>* out) const {
  out->clear();
  ForEach(impl_->tree, bgi::intersects(ToBox(rect)),
          [&](const Value& v) { out->push_back(v.second); });
}

void RTreeIndex::Nearest(double cx, double cy, size_t k, NeighborList* out) const {
  out->clear();
  if (k == 0) return;
  // boost ranks by its own comparable distance; d2 is recomputed the WorldDB
  // way so the k-th distance is bit-identical to the other structures'.
  ForEach(impl_->tree, bgi::nearest(Point(cx, cy), static_cast<unsigned>(k)), [&](const Value& v) {
    const double dx = bg::get<0>(v.first) - cx;
    const double dy = bg::get<1>(v.first) - cy;
    out->push_back({v.second, dx * dx + dy * dy});
  });
  std::sort(out->begin(), out->end(), NeighborLess);
}

void RTreeIndex::Density(const Rect& r, size_t nx, size_t ny, std::vector<uint32_t>* counts) const {
  counts->assign(nx * ny, 0);
  ForEach(impl_->tree, bgi::intersects(ToBox(r)), [&](const Value& v) {
    ++(*counts)[DensityCell(bg::get<0>(v.first), bg::get<1>(v.first), r, nx, ny)];
  });
}

size_t RTreeIndex::MemoryBytes() const {
  return (impl_->xs.capacity() + impl_->ys.capacity()) * sizeof(double);
}

}  // namespace worlddb::bench
