// In-process baseline indexes that WorldDB's QuadTree is measured against:
// a boost R*-tree, a uniform grid and a brute-force scan.
//
// Contract (the same for all three, so one benchmark template drives them):
//   * Entities are (id, x, y) with dense ids 1..n, loaded in one BulkLoad();
//     Move(id, x, y) replaces the position of a loaded id. There is no
//     insert/remove of single entities: the aoi-1m workload has none.
//   * Query semantics are WorldDB's (index/geometry.h): a circle matches p iff
//     dx*dx + dy*dy <= r*r in double; rectangles are closed on every side.
//   * Nearest(k) returns the min(k, size()) nearest entities ordered by
//     (d2, id) ascending. Where several entities tie at the k-th distance the
//     grid and the brute force keep the smallest ids (as QuadTree does with
//     key = id); the R-tree keeps whichever boost returns, so its id list can
//     differ from the others at ties, but never its k-th distance.
//   * Density counts the entities inside the closed rect `r` into an nx * ny
//     grid, row-major (index iy * nx + ix), with DensityCell() below. The rect
//     must have positive width and height.
//   * The grid requires positions inside [0, world_size]^2 (the workload's
//     world); the R-tree and the brute force accept any finite position.
//
// Thread safety: none; const methods do not mutate.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "index/geometry.h"

namespace worlddb::bench {

// Index of the density cell of a point inside the closed rect `r`. The formula
// is fixed so every structure bins a point on a cell edge the same way.
inline size_t DensityCell(double x, double y, const Rect& r, size_t nx, size_t ny) {
  const size_t ix = std::min(
      nx - 1, static_cast<size_t>((x - r.min_x) * static_cast<double>(nx) / (r.max_x - r.min_x)));
  const size_t iy = std::min(
      ny - 1, static_cast<size_t>((y - r.min_y) * static_cast<double>(ny) / (r.max_y - r.min_y)));
  return iy * nx + ix;
}

struct Neighbor {
  uint32_t id;
  double d2;  // squared distance to the query point
};
using NeighborList = std::vector<Neighbor>;

// Orders neighbours by (d2, id): the heaps below keep the k smallest.
inline bool NeighborLess(const Neighbor& a, const Neighbor& b) {
  return a.d2 < b.d2 || (a.d2 == b.d2 && a.id < b.id);
}

// Flat arrays scanned in full by every query: the floor any index must beat.
class BruteForceIndex {
 public:
  void BulkLoad(const double* xs, const double* ys, size_t n);
  void Move(uint32_t id, double x, double y) {
    xs_[id - 1] = x;
    ys_[id - 1] = y;
  }
  size_t size() const { return xs_.size(); }

  size_t RadiusCount(double cx, double cy, double r) const;
  void RadiusIds(double cx, double cy, double r, std::vector<uint32_t>* out) const;
  size_t RectCount(const Rect& rect) const;
  void RectIds(const Rect& rect, std::vector<uint32_t>* out) const;
  void Nearest(double cx, double cy, size_t k, NeighborList* out) const;
  void Density(const Rect& r, size_t nx, size_t ny, std::vector<uint32_t>* counts) const;
  size_t MemoryBytes() const;

 private:
  std::vector<double> xs_, ys_;  // index id - 1
};

// A uniform grid of square cells over [0, world_size]^2. Each cell is a vector
// of (x, y, id); an id -> (cell, slot) table makes Move O(1): a move within a
// cell rewrites the entry, any other move swap-removes it from the old cell
// and appends it to the new one.
class GridIndex {
 public:
  explicit GridIndex(double world_size = 10000.0, double cell_size = 50.0);

  void BulkLoad(const double* xs, const double* ys, size_t n);
  void Move(uint32_t id, double x, double y);
  size_t size() const { return cell_of_.size(); }

  size_t RadiusCount(double cx, double cy, double r) const;
  void RadiusIds(double cx, double cy, double r, std::vector<uint32_t>* out) const;
  size_t RectCount(const Rect& rect) const;
  void RectIds(const Rect& rect, std::vector<uint32_t>* out) const;
  // Searches square rings of cells around the query's cell until every cell
  // not yet searched is provably farther than the k-th best found.
  void Nearest(double cx, double cy, size_t k, NeighborList* out) const;
  void Density(const Rect& r, size_t nx, size_t ny, std::vector<uint32_t>* counts) const;
  size_t MemoryBytes() const;

 private:
  struct Entry {
    double x, y;
    uint32_t id;
  };

  // Cell coordinate of v on one axis, clamped to the grid.
  size_t Axis(double v) const {
    if (!(v > 0)) return 0;
    return std::min(cells_per_side_ - 1, static_cast<size_t>(v / cell_size_));
  }
  size_t CellOf(double x, double y) const { return Axis(y) * cells_per_side_ + Axis(x); }

  template <class Visitor>
  void VisitRectCells(const Rect& rect, Visitor&& v) const;

  double cell_size_;
  size_t cells_per_side_;
  std::vector<std::vector<Entry>> cells_;  // row-major, index gy * side + gx
  std::vector<uint32_t> cell_of_;          // index id - 1
  std::vector<uint32_t> slot_of_;          // index id - 1
};

// boost::geometry::index::rtree<pair<point, id>, rstar<16>>, bulk-loaded with
// the packing constructor. Move is remove + insert (an R-tree has no cheaper
// update), which needs the old position: the index keeps a copy by id.
class RTreeIndex {
 public:
  RTreeIndex();
  ~RTreeIndex();
  RTreeIndex(const RTreeIndex&) = delete;
  RTreeIndex& operator=(const RTreeIndex&) = delete;

  void BulkLoad(const double* xs, const double* ys, size_t n);
  void Move(uint32_t id, double x, double y);
  size_t size() const;

  size_t RadiusCount(double cx, double cy, double r) const;
  void RadiusIds(double cx, double cy, double r, std::vector<uint32_t>* out) const;
  size_t RectCount(const Rect& rect) const;
  void RectIds(const Rect& rect, std::vector<uint32_t>* out) const;
  void Nearest(double cx, double cy, size_t k, NeighborList* out) const;
  void Density(const Rect& r, size_t nx, size_t ny, std::vector<uint32_t>* counts) const;
  // boost does not report its allocation; this counts the position copy only.
  // The benchmark measures the tree with the allocator's statistics instead.
  size_t MemoryBytes() const;

 private:
  struct Impl;  // keeps boost.geometry out of every includer
  std::unique_ptr<Impl> impl_;
};

}  // namespace worlddb::bench
