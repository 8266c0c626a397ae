// Plain geometry shared by the index and the engine.
//
// Boundary rules (one rule everywhere, tested in tests/quadtree_test.cc and
// tests/engine_query_test.cc):
//   * A circle query (c, r) matches p iff (p.x-c.x)^2 + (p.y-c.y)^2 <= r^2,
//     evaluated in double exactly as written (no FMA: -ffp-contract=off).
//   * A rectangle query matches p iff min_x <= p.x <= max_x and
//     min_y <= p.y <= max_y (closed on every side).
//   * The world is the closed box [min_x, max_x] x [min_y, max_y]; a position on
//     its edge is inside.
#pragma once

namespace worlddb {

struct Rect {
  double min_x = 0, min_y = 0, max_x = 0, max_y = 0;

  bool Contains(double x, double y) const {
    return min_x <= x && x <= max_x && min_y <= y && y <= max_y;
  }
  bool Valid() const { return min_x <= max_x && min_y <= max_y; }
};

// Squared distance the way every query and every model computes it.
inline double SquaredDistance(double ax, double ay, double bx, double by) {
  const double dx = ax - bx;
  const double dy = ay - by;
  return dx * dx + dy * dy;
}

}  // namespace worlddb
