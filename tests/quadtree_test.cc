// Unit and randomized differential tests of index/quadtree.h.
#include "index/quadtree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace worlddb {
namespace {

using Neighbor = QuadTree::Neighbor;

const Rect kWorld{0, 0, 100, 100};

uint64_t KeyOf(uint32_t row) { return uint64_t{row} * 0x9E3779B97F4A7C15ull; }  // a bijection

std::vector<uint32_t> CircleRows(const QuadTree& t, double cx, double cy, double r) {
  std::vector<uint32_t> out;
  t.VisitCircle(cx, cy, r, [&](uint32_t row, double x, double y) {
    EXPECT_EQ(x, t.X(row));
    EXPECT_EQ(y, t.Y(row));
    out.push_back(row);
    return true;
  });
  EXPECT_EQ(t.CountCircle(cx, cy, r), out.size()) << "circle (" << cx << "," << cy << ") r " << r;
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint32_t> RectRows(const QuadTree& t, const Rect& rect) {
  std::vector<uint32_t> out;
  t.VisitRect(rect, [&](uint32_t row, double, double) {
    out.push_back(row);
    return true;
  });
  EXPECT_EQ(t.CountRect(rect), out.size());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint32_t> AllRows(const QuadTree& t) {
  std::vector<uint32_t> out;
  t.VisitAll([&](uint32_t row, double, double) {
    out.push_back(row);
    return true;
  });
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Neighbor> NearestOf(const QuadTree& t, double cx, double cy, size_t k,
                                bool (*accept)(uint32_t) = nullptr) {
  std::vector<Neighbor> out;
  t.Nearest(
      cx, cy, k, [&](uint32_t row) { return accept == nullptr || accept(row); }, KeyOf, &out);
  return out;
}

// Brute-force model: row -> position.
struct Model {
  std::unordered_map<uint32_t, std::pair<double, double>> pos;

  std::vector<uint32_t> Circle(double cx, double cy, double r) const {
    std::vector<uint32_t> out;
    for (const auto& [row, p] : pos) {
      if (SquaredDistance(p.first, p.second, cx, cy) <= r * r) out.push_back(row);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<uint32_t> InRect(const Rect& rect) const {
    std::vector<uint32_t> out;
    for (const auto& [row, p] : pos) {
      if (rect.Contains(p.first, p.second)) out.push_back(row);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<Neighbor> Nearest(double cx, double cy, size_t k, bool (*accept)(uint32_t)) const {
    std::vector<Neighbor> all;
    for (const auto& [row, p] : pos) {
      if (accept != nullptr && !accept(row)) continue;
      all.push_back(
          {row, SquaredDistance(p.first, p.second, cx, cy), KeyOf(row), p.first, p.second});
    }
    std::sort(all.begin(), all.end(), [](const Neighbor& a, const Neighbor& b) {
      return a.d2 != b.d2 ? a.d2 < b.d2 : a.key < b.key;
    });
    if (all.size() > k) all.resize(k);
    return all;
  }
};

void ExpectSameNeighbors(const std::vector<Neighbor>& got, const std::vector<Neighbor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].row, want[i].row) << "at " << i;
    EXPECT_EQ(got[i].d2, want[i].d2) << "at " << i;
    EXPECT_EQ(got[i].key, want[i].key) << "at " << i;
    EXPECT_EQ(got[i].x, want[i].x) << "at " << i;
    EXPECT_EQ(got[i].y, want[i].y) << "at " << i;
  }
}

// ---- Basics -----------------------------------------------------------------------

TEST(QuadTreeTest, EmptyTree) {
  QuadTree t(kWorld);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.Contains(0));
  EXPECT_FALSE(t.Contains(123456789));
  EXPECT_TRUE(CircleRows(t, 50, 50, 1000).empty());
  EXPECT_TRUE(RectRows(t, kWorld).empty());
  EXPECT_TRUE(AllRows(t).empty());
  EXPECT_TRUE(NearestOf(t, 1, 1, 5).empty());
  EXPECT_EQ(t.LeafCount(), 1u);
  EXPECT_EQ(t.MaxDepth(), 0u);
  EXPECT_EQ(t.CheckInvariants(), "");
}

TEST(QuadTreeTest, InsertRemoveMove) {
  QuadTree t(kWorld);
  t.Insert(7, 10, 20);
  t.Insert(3, 30, 40);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.Contains(7));
  EXPECT_TRUE(t.Contains(3));
  EXPECT_FALSE(t.Contains(4));
  EXPECT_EQ(t.X(7), 10);
  EXPECT_EQ(t.Y(7), 20);
  t.Move(7, 11, 21);
  EXPECT_EQ(t.X(7), 11);
  EXPECT_EQ(t.Y(7), 21);
  EXPECT_EQ(CircleRows(t, 11, 21, 0.5), std::vector<uint32_t>{7});
  t.Remove(7);
  EXPECT_FALSE(t.Contains(7));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(AllRows(t), std::vector<uint32_t>{3});
  t.Insert(7, 90, 90);  // a removed row can come back
  EXPECT_EQ(AllRows(t), (std::vector<uint32_t>{3, 7}));
  EXPECT_EQ(t.CheckInvariants(), "");
}

TEST(QuadTreeTest, RenameMovesRowIdentity) {
  QuadTree t(kWorld);
  for (uint32_t i = 0; i < 200; ++i) t.Insert(i, i % 100, (i * 7) % 100);
  t.Rename(199, 1000);
  EXPECT_FALSE(t.Contains(199));
  EXPECT_TRUE(t.Contains(1000));
  EXPECT_EQ(t.X(1000), 99);
  EXPECT_EQ(t.Y(1000), (199 * 7) % 100);
  t.Remove(5);
  t.Rename(198, 5);  // fill the hole, as a dense table does
  EXPECT_EQ(t.X(5), 98);
  t.Move(5, 1, 1);
  t.Move(1000, 2, 2);
  EXPECT_EQ(CircleRows(t, 1.5, 1.5, 0.8), (std::vector<uint32_t>{5, 1000}));
  EXPECT_EQ(t.size(), 199u);
  EXPECT_EQ(t.CheckInvariants(), "");
}

TEST(QuadTreeTest, ClearResets) {
  QuadTree t(kWorld);
  for (uint32_t i = 0; i < 1000; ++i) t.Insert(i, (i * 37) % 100, (i * 11) % 100);
  const size_t empty_bytes = QuadTree(kWorld).MemoryBytes();
  EXPECT_GT(t.MemoryBytes(), empty_bytes);
  t.Clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.LeafCount(), 1u);
  EXPECT_FALSE(t.Contains(3));
  EXPECT_EQ(t.MemoryBytes(), empty_bytes);
  t.Insert(3, 5, 5);
  EXPECT_EQ(AllRows(t), std::vector<uint32_t>{3});
  EXPECT_EQ(t.CheckInvariants(), "");
}

// ---- Split / merge --------------------------------------------------------------------

TEST(QuadTreeTest, SplitAboveLeafSplit) {
  QuadTree t(kWorld);
  for (uint32_t i = 0; i < kLeafSplit; ++i) t.Insert(i, 1 + (i % 8) * 12, 1 + (i / 8) * 12);
  EXPECT_EQ(t.LeafCount(), 1u);
  t.Insert(kLeafSplit, 55, 55);
  EXPECT_EQ(t.LeafCount(), 4u);
  EXPECT_EQ(t.MaxDepth(), 1u);
  EXPECT_EQ(t.CheckInvariants(), "");
}

TEST(QuadTreeTest, MergeAtLeafMergeWithHysteresis) {
  QuadTree t(kWorld);
  const uint32_t n = kLeafSplit + 1;
  for (uint32_t i = 0; i < n; ++i) t.Insert(i, 1 + (i % 8) * 12, 1 + (i / 8) * 11);
  ASSERT_EQ(t.LeafCount(), 4u);
  // Down to kLeafMerge + 1 entries: still split (hysteresis).
  uint32_t live = n;
  while (live > kLeafMerge + 1) t.Remove(--live);
  EXPECT_EQ(t.LeafCount(), 4u);
  EXPECT_EQ(t.CheckInvariants(), "");
  t.Remove(--live);  // kLeafMerge left: merges
  EXPECT_EQ(t.LeafCount(), 1u);
  EXPECT_EQ(t.size(), kLeafMerge);
  EXPECT_EQ(t.CheckInvariants(), "");
  // Growing back to kLeafSplit does not split.
  for (uint32_t i = live; i < kLeafSplit; ++i) t.Insert(i, 3 + (i % 9) * 10, 3 + (i / 9) * 10);
  EXPECT_EQ(t.LeafCount(), 1u);
}

TEST(QuadTreeTest, OscillationAcrossBoundaryDoesNotChurn) {
  QuadTree t(kWorld);
  // 64 entries in the left half, none in the right half: one leaf.
  for (uint32_t i = 0; i < kLeafSplit; ++i) t.Insert(i, 10 + (i % 8), 10 + (i / 8) * 10);
  ASSERT_EQ(t.LeafCount(), 1u);
  t.Insert(1000, 49.9, 50);  // 65th: the root splits
  const size_t leaves = t.LeafCount();
  ASSERT_EQ(leaves, 4u);
  t.Move(1000, 50.0, 50);  // the first crossing gives the right leaf storage
  t.Move(1000, 49.9, 50);
  const size_t bytes = t.MemoryBytes();
  for (int step = 0; step < 1000; ++step) {
    t.Move(1000, step % 2 == 0 ? 50.0 : 49.9, 50);  // across the mid line x == 50
    ASSERT_EQ(t.LeafCount(), leaves);
  }
  EXPECT_EQ(t.MemoryBytes(), bytes);
  EXPECT_EQ(t.CheckInvariants(), "");
  // An entity alone in a small merged leaf crossing its mid line is in place.
  QuadTree u(kWorld);
  for (uint32_t i = 0; i < 10; ++i) u.Insert(i, 10 + i, 10);
  for (int step = 0; step < 100; ++step) {
    u.Move(0, step % 2 == 0 ? 50.0 : 49.0, 50);
    ASSERT_EQ(u.LeafCount(), 1u);
  }
}

TEST(QuadTreeTest, MoveAcrossLeavesRelocates) {
  QuadTree t(kWorld);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 100);
  for (uint32_t i = 0; i < 2000; ++i) t.Insert(i, u(rng), u(rng));
  ASSERT_GT(t.LeafCount(), 16u);
  for (uint32_t i = 0; i < 2000; ++i) t.Move(i, 100 - t.X(i), 100 - t.Y(i));
  EXPECT_EQ(t.CheckInvariants(), "");
  for (uint32_t i = 0; i < 2000; ++i) t.Move(i, 0.5, 0.5);  // everything into one corner
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(CircleRows(t, 0.5, 0.5, 0).size(), 2000u);
  for (uint32_t i = 0; i < 2000 - kLeafMerge; ++i) t.Remove(i);
  EXPECT_EQ(t.LeafCount(), 1u);  // merged all the way up
  EXPECT_EQ(t.CheckInvariants(), "");
}

TEST(QuadTreeTest, AllCoincidentHitsDepthCap) {
  QuadTree t(kWorld);
  const uint32_t n = 3 * kLeafSplit;
  for (uint32_t i = 0; i < n; ++i) t.Insert(i, 12.5, 37.5);
  EXPECT_EQ(t.MaxDepth(), kMaxDepth);
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(CircleRows(t, 12.5, 37.5, 0).size(), n);
  EXPECT_EQ(RectRows(t, Rect{12.5, 37.5, 12.5, 37.5}).size(), n);
  auto nn = NearestOf(t, 0, 0, 5);
  ASSERT_EQ(nn.size(), 5u);
  for (size_t i = 1; i < nn.size(); ++i) EXPECT_LT(nn[i - 1].key, nn[i].key);
  for (uint32_t i = 0; i < n; ++i) t.Remove(i);
  EXPECT_EQ(t.LeafCount(), 1u);
  EXPECT_EQ(t.MaxDepth(), 0u);
  EXPECT_EQ(t.CheckInvariants(), "");
}

TEST(QuadTreeTest, HugeCoincidentLeafUsesOverflowSlots) {
  // More than 65535 entries in one depth-capped leaf: slots beyond u16.
  QuadTree t(kWorld);
  const uint32_t n = 70000;
  std::vector<uint32_t> rows(n);
  std::vector<double> xs(n, 33.0), ys(n, 66.0);
  for (uint32_t i = 0; i < n; ++i) rows[i] = i;
  t.BulkInsert(rows.data(), xs.data(), ys.data(), n);
  ASSERT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(t.X(n - 1), 33.0);
  t.Move(n - 1, 33.0, 66.0);  // in place, overflow slot
  t.Move(n - 2, 1, 1);        // out of the big leaf
  t.Remove(0);                // swap-remove moves the last entry into slot 0
  t.Rename(n - 3, n + 5);
  t.Insert(n + 6, 33.0, 66.0);
  EXPECT_EQ(t.CheckInvariants(), "");
  // A second batch into the same (non-empty, depth-capped) leaf and elsewhere.
  std::vector<uint32_t> rows2(1000);
  std::vector<double> xs2(1000), ys2(1000);
  for (uint32_t i = 0; i < 1000; ++i) {
    rows2[i] = 2 * n + i;
    xs2[i] = i % 2 == 0 ? 33.0 : i % 100;
    ys2[i] = 66.0;
  }
  t.BulkInsert(rows2.data(), xs2.data(), ys2.data(), rows2.size());
  EXPECT_EQ(t.CheckInvariants(), "");
  for (uint32_t i = 0; i < 1000; ++i) t.Remove(2 * n + i);
  EXPECT_EQ(t.X(n - 2), 1);
  EXPECT_EQ(t.Y(n + 5), 66.0);
  EXPECT_EQ(CircleRows(t, 33, 66, 0).size(), n - 1);
  for (uint32_t i = 1; i < n - 3; ++i) t.Remove(i);
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(t.size(), 4u);  // n-2, n-1, n+5, n+6
}

// ---- Boundaries ---------------------------------------------------------------------------

TEST(QuadTreeTest, CircleEdgeIsInclusive) {
  QuadTree t(kWorld);
  t.Insert(1, 3, 4);
  t.Insert(2, 3, 4.000001);
  t.Insert(3, 5, 0);
  t.Insert(4, 0, 5);
  t.Insert(5, 5.0000001, 0);
  EXPECT_EQ(CircleRows(t, 0, 0, 5), (std::vector<uint32_t>{1, 3, 4}));
  // Same with the circle centred elsewhere (3-4-5 from (10, 10)).
  QuadTree u(kWorld);
  u.Insert(1, 13, 14);
  u.Insert(2, 7, 6);
  u.Insert(3, 10, 15);
  u.Insert(4, 10, 15.0001);
  EXPECT_EQ(CircleRows(u, 10, 10, 5), (std::vector<uint32_t>{1, 2, 3}));
}

TEST(QuadTreeTest, CircleRadiusZero) {
  QuadTree t(kWorld);
  for (uint32_t i = 0; i < 300; ++i) t.Insert(i, (i % 20) * 5.0, (i / 20) * 5.0);
  t.Insert(1000, 25, 25);
  EXPECT_EQ(CircleRows(t, 25, 25, 0), (std::vector<uint32_t>{105, 1000}));
  EXPECT_TRUE(CircleRows(t, 25.5, 25, 0).empty());
}

TEST(QuadTreeTest, PointsOnMidLinesGoToUpperHalf) {
  QuadTree t(kWorld);
  uint32_t row = 0;
  // Enough points to split the root and its children; many on mid lines.
  for (double x : {0.0, 12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5, 100.0}) {
    for (double y : {0.0, 12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5, 100.0}) t.Insert(row++, x, y);
  }
  ASSERT_GT(t.LeafCount(), 1u);
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(RectRows(t, Rect{50, 0, 50, 100}).size(), 9u);  // a vertical line
  EXPECT_EQ(RectRows(t, Rect{0, 50, 100, 50}).size(), 9u);  // a horizontal line
  EXPECT_EQ(RectRows(t, Rect{50, 50, 50, 50}).size(), 1u);  // a point
  EXPECT_EQ(CircleRows(t, 50, 50, 12.5).size(), 5u);
  // Moves onto and off a mid line.
  t.Move(0, 50, 50);
  EXPECT_EQ(t.CheckInvariants(), "");
  t.Move(0, std::nextafter(50.0, 0.0), 50);
  EXPECT_EQ(t.CheckInvariants(), "");
  t.Move(0, 50, std::nextafter(50.0, 0.0));
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(RectRows(t, Rect{50, 0, 50, 100}).size(), 10u);
}

TEST(QuadTreeTest, WorldEdgesAndCornersAreInside) {
  QuadTree t(kWorld);
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0, 100);
  uint32_t row = 0;
  for (; row < 500; ++row) t.Insert(row, u(rng), u(rng));
  const uint32_t c00 = row++, c10 = row++, c01 = row++, c11 = row++;
  t.Insert(c00, 0, 0);
  t.Insert(c10, 100, 0);
  t.Insert(c01, 0, 100);
  t.Insert(c11, 100, 100);
  for (uint32_t i = 0; i < 100; ++i) t.Insert(row++, 100, u(rng));  // right edge
  for (uint32_t i = 0; i < 100; ++i) t.Insert(row++, u(rng), 100);  // top edge
  for (uint32_t i = 0; i < 100; ++i) t.Insert(row++, 100, 100);     // top-right corner, deep
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(RectRows(t, Rect{100, 100, 100, 100}).size(), 101u);
  EXPECT_EQ(RectRows(t, Rect{0, 0, 0, 0}), std::vector<uint32_t>{c00});
  EXPECT_EQ(RectRows(t, Rect{100, 0, 100, 0}), std::vector<uint32_t>{c10});
  EXPECT_EQ(RectRows(t, Rect{0, 100, 0, 100}), std::vector<uint32_t>{c01});
  EXPECT_EQ(RectRows(t, Rect{100, 0, 100, 100}).size(), 202u);
  EXPECT_EQ(RectRows(t, kWorld).size(), t.size());
  EXPECT_EQ(CircleRows(t, 0, 0, 0), std::vector<uint32_t>{c00});
  // Moving along and onto the closed edges stays consistent.
  t.Move(c00, 100, 100);
  t.Move(c11, 0, 0);
  t.Move(c10, 100, 50);
  t.Move(c01, 50, 100);
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(RectRows(t, Rect{0, 0, 0, 0}), std::vector<uint32_t>{c11});
}

TEST(QuadTreeTest, NonDyadicWorldBounds) {
  const Rect world{-7.3, 1e-3, 993.1, 17.77};
  QuadTree t(world);
  Model m;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> ux(world.min_x, world.max_x), uy(world.min_y, world.max_y);
  for (uint32_t i = 0; i < 3000; ++i) {
    double x = ux(rng), y = uy(rng);
    if (i % 7 == 0) x = world.max_x;
    if (i % 11 == 0) y = world.max_y;
    if (i % 13 == 0) x = world.min_x;
    t.Insert(i, x, y);
    m.pos[i] = {x, y};
  }
  EXPECT_EQ(t.CheckInvariants(), "");
  EXPECT_EQ(RectRows(t, world), m.InRect(world));
  EXPECT_EQ(RectRows(t, Rect{world.max_x, world.min_y, world.max_x, world.max_y}),
            m.InRect(Rect{world.max_x, world.min_y, world.max_x, world.max_y}));
  EXPECT_EQ(CircleRows(t, 500, 9, 40), m.Circle(500, 9, 40));
}

TEST(QuadTreeTest, DegenerateRects) {
  QuadTree t(kWorld);
  for (uint32_t i = 0; i < 400; ++i) t.Insert(i, (i % 20) * 5.0, (i / 20) * 5.0);
  EXPECT_EQ(RectRows(t, Rect{10, 0, 10, 100}).size(), 20u);
  EXPECT_EQ(RectRows(t, Rect{0, 35, 100, 35}).size(), 20u);
  EXPECT_EQ(RectRows(t, Rect{10, 35, 10, 35}), std::vector<uint32_t>{7 * 20 + 2});
  EXPECT_TRUE(RectRows(t, Rect{11, 0, 11, 100}).empty());
  EXPECT_TRUE(RectRows(t, Rect{20, 20, 10, 30}).empty());  // inverted: matches nothing
}

// ---- Nearest --------------------------------------------------------------------------------

TEST(QuadTreeTest, NearestBasicAndKLargerThanSize) {
  QuadTree t(kWorld);
  t.Insert(1, 10, 10);
  t.Insert(2, 20, 20);
  t.Insert(3, 30, 30);
  auto nn = NearestOf(t, 0, 0, 10);
  ASSERT_EQ(nn.size(), 3u);
  EXPECT_EQ(nn[0].row, 1u);
  EXPECT_EQ(nn[1].row, 2u);
  EXPECT_EQ(nn[2].row, 3u);
  EXPECT_EQ(nn[0].d2, 200);
  EXPECT_EQ(nn[0].key, KeyOf(1));
  EXPECT_TRUE(NearestOf(t, 0, 0, 0).empty());
  nn = NearestOf(t, 29, 29, 1);
  ASSERT_EQ(nn.size(), 1u);
  EXPECT_EQ(nn[0].row, 3u);
}

TEST(QuadTreeTest, NearestTiesBrokenByKey) {
  QuadTree t(kWorld);
  // Four entries at distance 5 from (50, 50), plus filler to split the tree.
  const std::vector<std::pair<double, double>> ring = {{55, 50}, {50, 55}, {45, 50}, {50, 45}};
  for (uint32_t i = 0; i < 4; ++i) t.Insert(1000 + i, ring[i].first, ring[i].second);
  for (uint32_t i = 0; i < 300; ++i) t.Insert(i, (i % 2 == 0) ? 1 + i * 0.1 : 99 - i * 0.1, 5);
  std::vector<uint32_t> by_key = {1000, 1001, 1002, 1003};
  std::sort(by_key.begin(), by_key.end(),
            [](uint32_t a, uint32_t b) { return KeyOf(a) < KeyOf(b); });
  for (size_t k = 1; k <= 4; ++k) {
    auto nn = NearestOf(t, 50, 50, k);
    ASSERT_EQ(nn.size(), k);
    for (size_t i = 0; i < k; ++i) {
      EXPECT_EQ(nn[i].row, by_key[i]);
      EXPECT_EQ(nn[i].d2, 25);
    }
  }
  // Key order independent of insertion order: reversed keys.
  std::vector<Neighbor> out;
  t.Nearest(
      50, 50, 2, [](uint32_t) { return true; }, [](uint32_t row) { return uint64_t{5000 - row}; },
      &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].row, 1003u);
  EXPECT_EQ(out[1].row, 1002u);
}

TEST(QuadTreeTest, NearestTieInNodeAtExactlyKthDistance) {
  // A (in the query's leaf) and B (on the min edge of the neighbouring leaf)
  // are both at d2 == 25; B has the smaller key, so the node holding B, whose
  // box distance equals the current k-th d2, must still be searched.
  QuadTree t(kWorld);
  // Rows of 10 points in the upper half: 5 per upper quadrant per row, and
  // few enough rows that the upper quadrants do not split again.
  const uint32_t n = 10 * ((kLeafSplit - 2) / 5);
  for (uint32_t i = 0; i < n; ++i) t.Insert(i, 2 + (i % 10) * 10, 70 + (i / 10) * 3);
  const uint32_t a = 500, b = 501;
  t.Insert(a, 40, 25);
  t.Insert(b, 50, 25);
  ASSERT_EQ(t.LeafCount(), 4u);  // A and B in sibling leaves split at x == 50
  std::vector<Neighbor> out;
  const auto key = [&](uint32_t row) { return row == b ? uint64_t{1} : uint64_t{2} + row; };
  t.Nearest(
      45, 25, 1, [](uint32_t) { return true; }, key, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].row, b);
  EXPECT_EQ(out[0].d2, 25);
  t.Nearest(
      50, 25, 2, [](uint32_t) { return true; }, key, &out);  // and the mirror case
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].row, b);
  EXPECT_EQ(out[1].row, a);
}

TEST(QuadTreeTest, NearestWithAcceptFilter) {
  QuadTree t(kWorld);
  for (uint32_t i = 0; i < 1000; ++i) t.Insert(i, (i % 40) * 2.5, (i / 40) * 4.0);
  Model m;
  t.VisitAll([&](uint32_t row, double x, double y) {
    m.pos[row] = {x, y};
    return true;
  });
  const auto odd = [](uint32_t row) { return row % 2 == 1; };
  const auto none = [](uint32_t) { return false; };
  ExpectSameNeighbors(NearestOf(t, 50, 50, 7, odd), m.Nearest(50, 50, 7, odd));
  ExpectSameNeighbors(NearestOf(t, 0, 0, 600, odd), m.Nearest(0, 0, 600, odd));
  EXPECT_TRUE(NearestOf(t, 50, 50, 5, none).empty());
}

TEST(QuadTreeTest, NearestOutsideWorldQueryPoint) {
  QuadTree t(kWorld);
  Model m;
  for (uint32_t i = 0; i < 500; ++i) {
    t.Insert(i, (i * 37) % 100, (i * 53) % 100);
    m.pos[i] = {double((i * 37) % 100), double((i * 53) % 100)};
  }
  ExpectSameNeighbors(NearestOf(t, -1000, 5000, 9), m.Nearest(-1000, 5000, 9, nullptr));
  EXPECT_EQ(CircleRows(t, -10, -10, 20), m.Circle(-10, -10, 20));
}

// ---- Visitors ---------------------------------------------------------------------------------

TEST(QuadTreeTest, VisitorsStopEarly) {
  QuadTree t(kWorld);
  for (uint32_t i = 0; i < 1000; ++i) t.Insert(i, (i % 30) * 3.0, (i / 30) * 3.0);
  int calls = 0;
  const auto stop_after_3 = [&](uint32_t, double, double) { return ++calls < 3; };
  EXPECT_FALSE(t.VisitCircle(50, 50, 100, stop_after_3));
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_FALSE(t.VisitCircle(50, 50, 10, stop_after_3));  // partial leaves
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_FALSE(t.VisitRect(kWorld, stop_after_3));
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_FALSE(t.VisitRect(Rect{10, 10, 20, 20}, stop_after_3));
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_FALSE(t.VisitAll(stop_after_3));
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_TRUE(t.VisitCircle(0, 0, 4, [&](uint32_t, double, double) { return ++calls > 0; }));
  EXPECT_EQ(calls, 3);  // (0,0) (3,0) (0,3); (3,3) is at sqrt(18) > 4
}

// Walks go level by level, and a level wider than the walk's inline list of
// 128 nodes moves to the heap: here thousands of nodes are covered whole and
// hundreds in part at one level. Every entry must come back exactly once.
TEST(QuadTreeTest, WideWalksVisitEveryEntryOnce) {
  QuadTree t(kWorld);
  Model m;
  uint32_t row = 0;
  for (int ix = 0; ix < 300; ++ix) {
    for (int iy = 0; iy < 300; ++iy) {
      const double x = ix / 3.0 + 0.05, y = iy / 3.0 + 0.05;
      t.Insert(row, x, y);
      m.pos[row++] = {x, y};
    }
  }
  ASSERT_GT(t.LeafCount(), 2000u);
  for (const Rect& r : {Rect{0.5, 0.5, 99.5, 99.5}, Rect{0, 0, 100, 50.2}, Rect{33.3, 0, 66.6, 100},
                        Rect{0.1, 0.1, 0.2, 0.2}}) {
    EXPECT_EQ(RectRows(t, r), m.InRect(r)) << r.min_x << "," << r.min_y;
  }
  for (const auto& [cx, cy, r] : {std::tuple{50.0, 50.0, 49.9}, std::tuple{0.0, 0.0, 99.0},
                                  std::tuple{37.1, 61.7, 45.0}, std::tuple{200.0, 50.0, 150.5}}) {
    EXPECT_EQ(CircleRows(t, cx, cy, r), m.Circle(cx, cy, r)) << cx << "," << cy << " r " << r;
  }
}

// ---- Walks start at the enclosing node ------------------------------------------------------
//
// A walk starts at the deepest node whose other quadrants the shape cannot
// reach. These trees are laid out like a game world in the engine's default
// world: entities in [0, 10000]^2 of a world 2^21 m across, so mid lines lie
// at 0, 4096, 8192, 12288, ... and a small query skips ~10 levels.

const Rect kHugeWorld{-1048576, -1048576, 1048576, 1048576};

// A tree in kHugeWorld and its brute-force model, filled alike.
struct HugeWorld {
  QuadTree t{kHugeWorld};
  Model m;
  uint32_t next_row = 0;
  uint32_t Put(double x, double y) {
    t.Insert(next_row, x, y);
    m.pos[next_row] = {x, y};
    return next_row++;
  }
  // 400 entries 100 m apart from (x0, y0), off every mid line: enough for
  // the node [0, 16384)^2 (mid 8192) to split.
  void Grid(double x0, double y0) {
    for (int i = 0; i < 400; ++i) Put(x0 + (i % 20) * 100.0 + 7, y0 + (i / 20) * 100.0 + 7);
  }
};

// A circle whose edge touches a mid line reaches the entries on it: the
// descent must not take the centre's side alone when the distance to the
// line equals r (here 8192 - 8142 = 50 exactly, on both sides of the line).
TEST(QuadTreeTest, EnclosingNodeKeepsEntriesOnTouchedMidLine) {
  HugeWorld w;
  const QuadTree& t = w.t;
  const Model& m = w.m;
  w.Grid(7000, 2000);
  const uint32_t on_line = w.Put(8192, 3000), on_line_y = w.Put(3000, 8192);
  const uint32_t below = w.Put(8142, 3000);
  ASSERT_GT(t.MaxDepth(), 8u);
  // Centre left of the line, edge on it: (8192, 3000) is at exactly r.
  const std::vector<uint32_t> touched = CircleRows(t, 8142, 3000, 50);
  EXPECT_EQ(touched, m.Circle(8142, 3000, 50));
  EXPECT_NE(std::find(touched.begin(), touched.end(), on_line), touched.end());
  EXPECT_NE(std::find(touched.begin(), touched.end(), below), touched.end());
  // Centre right of the line, edge on it: (8142, 3000) is at exactly r.
  EXPECT_EQ(CircleRows(t, 8192 + 50, 3000, 100), m.Circle(8242, 3000, 100));
  // The same across a horizontal mid line.
  EXPECT_EQ(CircleRows(t, 3000, 8142, 50), std::vector<uint32_t>{on_line_y});
  // One ulp short of the line: the line's entry is out of reach.
  EXPECT_EQ(CircleRows(t, std::nextafter(8142.0, 0.0), 3000, 50),
            m.Circle(std::nextafter(8142.0, 0.0), 3000, 50));
  EXPECT_EQ(CircleRows(t, 8192, 3000, 0), std::vector<uint32_t>{on_line});
  // Nearest grows circles through the same walk.
  ExpectSameNeighbors(NearestOf(t, 8142, 3000, 2), m.Nearest(8142, 3000, 2, nullptr));
  ExpectSameNeighbors(NearestOf(t, 8191.5, 3000, 3), m.Nearest(8191.5, 3000, 3, nullptr));
}

// A rect is compared closed: one that ends on a mid line reaches the line's
// entries, which belong to the quadrant beyond it.
TEST(QuadTreeTest, EnclosingNodeKeepsRectEdgeOnMidLine) {
  HugeWorld w;
  w.Grid(7000, 7000);
  for (const auto& [x, y] : {std::pair{8192.0, 3000.0}, std::pair{3000.0, 8192.0},
                             std::pair{8192.0, 8192.0}, std::pair{0.0, 0.0}}) {
    w.Put(x, y);
  }
  for (const Rect& r :
       {Rect{8000, 2900, 8192, 3100}, Rect{8192, 2900, 8300, 3100}, Rect{2900, 8000, 3100, 8192},
        Rect{8192, 8192, 8192, 8192}, Rect{-5, -5, 0, 0}, Rect{0, 0, 5, 5},
        Rect{8100, 8100, 8191.9, 8191.9}, Rect{std::nextafter(8192.0, 9000.0), 2900, 8300, 3100}}) {
    EXPECT_EQ(RectRows(w.t, r), w.m.InRect(r))
        << r.min_x << "," << r.min_y << " " << r.max_x << "," << r.max_y;
  }
  EXPECT_EQ(RectRows(w.t, Rect{8000, 2900, 8192, 3100}).size(), 1u);
}

// Random circles, rects and nearest queries near the mid lines of every
// level, at exact and one-ulp offsets of r from them, against brute force.
TEST(QuadTreeTest, EnclosingNodeDifferentialNearMidLines) {
  HugeWorld w;
  const QuadTree& t = w.t;
  const Model& m = w.m;
  std::mt19937_64 rng(21);
  std::uniform_real_distribution<double> u(0, 10000), unit(0, 1);
  const std::vector<double> lines{0, 512, 1024, 2048, 4096, 6144, 8192, 9216, 10000};
  for (int i = 0; i < 20000; ++i) {
    double x = u(rng), y = u(rng);
    if (i % 50 == 0) x = lines[rng() % lines.size()];
    if (i % 70 == 0) y = lines[rng() % lines.size()];
    w.Put(x, y);
  }
  const auto near_line = [&](double r) {
    const double line = lines[rng() % lines.size()];
    double c = line + (rng() % 2 ? r : -r);
    switch (rng() % 3) {
      case 0:
        c = std::nextafter(c, 0.0);
        break;
      case 1:
        c = std::nextafter(c, 1e9);
        break;
    }
    return c;
  };
  for (int q = 0; q < 3000; ++q) {
    const double r = q % 10 == 0 ? 0 : q % 2 ? 50 : unit(rng) * 300;
    const double cx = rng() % 2 ? near_line(r) : u(rng);
    const double cy = rng() % 2 ? near_line(r) : u(rng);
    ASSERT_EQ(CircleRows(t, cx, cy, r), m.Circle(cx, cy, r)) << cx << "," << cy << " r " << r;
    const Rect rect{rng() % 2 ? lines[rng() % lines.size()] : cx - r, cy - r,
                    rng() % 2 ? lines[rng() % lines.size()] : cx + r, cy + r};
    ASSERT_EQ(RectRows(t, rect), m.InRect(rect));
    if (q % 10 == 0) {
      const size_t k = 1 + rng() % 20;
      ExpectSameNeighbors(NearestOf(t, cx, cy, k), m.Nearest(cx, cy, k, nullptr));
    }
  }
}

// ---- Density grids -------------------------------------------------------------------------

// CountGrid against binning every entry by hand: whole leaves in one cell
// are counted from their nodes, so grids whose cell edges fall on split
// lines, inside leaves and on entries must all agree with the brute force.
TEST(QuadTreeTest, CountGridMatchesBinningEveryEntry) {
  HugeWorld w;
  std::mt19937_64 rng(31);
  std::uniform_real_distribution<double> u(0, 10000), unit(0, 1);
  for (int i = 0; i < 30000; ++i) {
    double x = u(rng), y = u(rng);
    if (i % 40 == 0) x = std::floor(x / 625) * 625;  // on cell edges of 16-cell grids
    if (i % 55 == 0) y = std::floor(y / 512) * 512;  // on split lines
    w.Put(x, y);
  }
  const auto brute = [&](const Rect& r, uint32_t nx, uint32_t ny, bool odd_only) {
    std::vector<uint64_t> want(size_t{nx} * ny, 0);
    const double cw = r.max_x - r.min_x, ch = r.max_y - r.min_y;
    for (const auto& [row, p] : w.m.pos) {
      if (!r.Contains(p.first, p.second) || (odd_only && row % 2 == 0)) continue;
      const uint32_t ix =
          std::min<uint32_t>(nx - 1, static_cast<uint32_t>((p.first - r.min_x) * nx / cw));
      const uint32_t iy =
          std::min<uint32_t>(ny - 1, static_cast<uint32_t>((p.second - r.min_y) * ny / ch));
      ++want[size_t{iy} * nx + ix];
    }
    return want;
  };
  std::vector<Rect> rects = {Rect{0, 0, 10000, 10000}, Rect{0, 0, 8192, 8192},
                             Rect{-1048576, -1048576, 1048576, 1048576},
                             Rect{1000.5, 2000.25, 1100.5, 2100.25}, Rect{4096, 0, 8192, 10000}};
  for (int i = 0; i < 40; ++i) {
    const double x0 = u(rng), y0 = u(rng);
    rects.push_back(Rect{x0, y0, x0 + unit(rng) * 5000 + 1, y0 + unit(rng) * 5000 + 1});
  }
  for (const Rect& r : rects) {
    for (const auto& [nx, ny] : {std::pair{1u, 1u}, std::pair{16u, 16u}, std::pair{64u, 7u},
                                 std::pair{3u, 200u}, std::pair{512u, 512u}}) {
      std::vector<uint64_t> got(size_t{nx} * ny, 0);
      const uint64_t added = w.t.CountGrid(r, nx, ny, got.data());
      const std::vector<uint64_t> want = brute(r, nx, ny, false);
      ASSERT_EQ(got, want) << r.min_x << "," << r.min_y << " " << r.max_x << "," << r.max_y
                           << " grid " << nx << "x" << ny;
      uint64_t sum = 0;
      for (uint64_t c : want) sum += c;
      EXPECT_EQ(added, sum);
      std::vector<uint64_t> odd(size_t{nx} * ny, 0);
      w.t.CountGrid(r, nx, ny, odd.data(), [](uint32_t row) { return row % 2 == 1; });
      ASSERT_EQ(odd, brute(r, nx, ny, true)) << "with a filter";
    }
  }
  // Leaves on the world's closed max edges hold entries on those edges:
  // with a cell edge exactly there, such entries start the next cell.
  HugeWorld edge;
  const double top = kHugeWorld.max_x;
  for (int i = 0; i < 200; ++i) {
    edge.Put(top - (i % 2 ? 0 : 10), i * 5.0);  // x on the edge or 10 m inside
    edge.Put(i * 5.0 + 7, top - (i % 2 ? 0 : 10));
  }
  for (const Rect& r :
       {Rect{top - 1024, 0, top + 1024, 1024}, Rect{0, top - 1024, 1024, top + 1024},
        Rect{top - 1024, top - 1024, top + 1024, top + 1024}}) {
    for (const auto& [nx, ny] : {std::pair{2u, 2u}, std::pair{2u, 1u}, std::pair{1u, 2u}}) {
      std::vector<uint64_t> got(size_t{nx} * ny, 0);
      edge.t.CountGrid(r, nx, ny, got.data());
      std::vector<uint64_t> want(size_t{nx} * ny, 0);
      for (const auto& [row, p] : edge.m.pos) {
        if (!r.Contains(p.first, p.second)) continue;
        const uint32_t ix = std::min<uint32_t>(
            nx - 1, static_cast<uint32_t>((p.first - r.min_x) * nx / (r.max_x - r.min_x)));
        const uint32_t iy = std::min<uint32_t>(
            ny - 1, static_cast<uint32_t>((p.second - r.min_y) * ny / (r.max_y - r.min_y)));
        ++want[size_t{iy} * nx + ix];
      }
      EXPECT_EQ(got, want) << "edge rect " << r.min_x << "," << r.min_y << " grid " << nx << "x"
                           << ny;
    }
  }
  // The grid is added to, not replaced.
  std::vector<uint64_t> twice(4, 0);
  w.t.CountGrid(Rect{0, 0, 10000, 10000}, 2, 2, twice.data());
  w.t.CountGrid(Rect{0, 0, 10000, 10000}, 2, 2, twice.data());
  std::vector<uint64_t> want = brute(Rect{0, 0, 10000, 10000}, 2, 2, false);
  for (uint64_t& c : want) c *= 2;
  EXPECT_EQ(twice, want);
}

// ---- Bulk insert ---------------------------------------------------------------------------

TEST(QuadTreeTest, BulkInsertMatchesIncremental) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 100);
  std::normal_distribution<double> cluster(30, 0.01);
  const size_t n = 20000;
  std::vector<uint32_t> rows(n);
  std::vector<double> xs(n), ys(n);
  for (size_t i = 0; i < n; ++i) {
    rows[i] = static_cast<uint32_t>(n - 1 - i);  // any order
    if (i % 3 == 0) {
      xs[i] = std::clamp(cluster(rng), 0.0, 100.0);
      ys[i] = std::clamp(cluster(rng), 0.0, 100.0);
    } else {
      xs[i] = u(rng);
      ys[i] = u(rng);
    }
    if (i % 101 == 0) xs[i] = 100;
    if (i % 103 == 0) ys[i] = 50;
  }
  QuadTree bulk(kWorld), inc(kWorld), mixed(kWorld);
  bulk.BulkInsert(rows.data(), xs.data(), ys.data(), n);
  for (size_t i = 0; i < n; ++i) inc.Insert(rows[i], xs[i], ys[i]);
  // Non-empty tree: a third incrementally, the rest in two bulk batches.
  const size_t a = n / 3, b = n / 3 + 100;
  for (size_t i = 0; i < a; ++i) mixed.Insert(rows[i], xs[i], ys[i]);
  mixed.BulkInsert(rows.data() + a, xs.data() + a, ys.data() + a, b - a);
  mixed.BulkInsert(rows.data() + b, xs.data() + b, ys.data() + b, n - b);
  for (const QuadTree* t : {&bulk, &inc, &mixed}) {
    ASSERT_EQ(t->CheckInvariants(), "");
    ASSERT_EQ(t->size(), n);
  }
  // With no removals the structure is a function of the point set.
  EXPECT_EQ(bulk.LeafCount(), inc.LeafCount());
  EXPECT_EQ(mixed.LeafCount(), inc.LeafCount());
  EXPECT_EQ(bulk.MaxDepth(), inc.MaxDepth());
  for (int q = 0; q < 50; ++q) {
    const double cx = u(rng), cy = u(rng), r = u(rng) / 4;
    const auto want = CircleRows(inc, cx, cy, r);
    EXPECT_EQ(CircleRows(bulk, cx, cy, r), want);
    EXPECT_EQ(CircleRows(mixed, cx, cy, r), want);
    const Rect rect{cx - r, cy - r / 2, cx + r / 2, cy + r};
    EXPECT_EQ(RectRows(bulk, rect), RectRows(inc, rect));
    EXPECT_EQ(RectRows(mixed, rect), RectRows(inc, rect));
    ExpectSameNeighbors(NearestOf(bulk, cx, cy, 10), NearestOf(inc, cx, cy, 10));
    ExpectSameNeighbors(NearestOf(mixed, cx, cy, 10), NearestOf(inc, cx, cy, 10));
  }
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(bulk.X(rows[i]), xs[i]);
    ASSERT_EQ(bulk.Y(rows[i]), ys[i]);
  }
  // The bulk-built tree keeps working under mutations.
  for (size_t i = 0; i < n; i += 2) bulk.Move(rows[i], u(rng), u(rng));
  for (size_t i = 1; i < n; i += 4) bulk.Remove(rows[i]);
  EXPECT_EQ(bulk.CheckInvariants(), "");
}

TEST(QuadTreeTest, SmallBulkInsertAndEmptyBatch) {
  QuadTree t(kWorld);
  t.BulkInsert(nullptr, nullptr, nullptr, 0);
  const uint32_t rows[3] = {4, 5, 6};
  const double xs[3] = {1, 2, 3}, ys[3] = {1, 2, 100};
  t.BulkInsert(rows, xs, ys, 3);
  EXPECT_EQ(AllRows(t), (std::vector<uint32_t>{4, 5, 6}));
  EXPECT_EQ(t.CheckInvariants(), "");
}

TEST(QuadTreeTest, BulkInsertStoresZAndId) {
  QuadTree t(kWorld);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 100);
  std::vector<uint32_t> rows;
  std::vector<double> xs, ys, zs;
  std::vector<uint64_t> ids;
  for (uint32_t i = 0; i < 5000; ++i) {
    rows.push_back(i);
    xs.push_back(u(rng));
    ys.push_back(u(rng));
    zs.push_back(u(rng) - 50);
    ids.push_back(uint64_t{1} << 40 | i);
  }
  // Two batches: the second lands on a non-empty tree (leaves join the batch).
  t.BulkInsert(rows.data(), xs.data(), ys.data(), zs.data(), ids.data(), 2500);
  t.BulkInsert(rows.data() + 2500, xs.data() + 2500, ys.data() + 2500, zs.data() + 2500,
               ids.data() + 2500, 2500);
  ASSERT_EQ(t.CheckInvariants(), "");
  for (uint32_t i = 0; i < 5000; ++i) {
    ASSERT_EQ(t.Z(i), zs[i]);
    ASSERT_EQ(t.Id(i), ids[i]);
  }
  size_t seen = 0;
  t.VisitRect(Rect{0, 0, 100, 100}, [&](uint32_t row, double x, double y, double z, uint64_t id) {
    EXPECT_EQ(x, xs[row]);
    EXPECT_EQ(y, ys[row]);
    EXPECT_EQ(z, zs[row]);
    EXPECT_EQ(id, ids[row]);
    ++seen;
    return true;
  });
  EXPECT_EQ(seen, 5000u);
  // Nearest with the stored ids as keys hands back z and id too.
  std::vector<Neighbor> nn;
  t.Nearest(
      50, 50, 8, [](uint32_t) { return true; }, QuadTree::StoredId{}, &nn);
  ASSERT_EQ(nn.size(), 8u);
  for (const Neighbor& n : nn) {
    EXPECT_EQ(n.key, ids[n.row]);
    EXPECT_EQ(n.id, ids[n.row]);
    EXPECT_EQ(n.z, zs[n.row]);
  }
  // Without zs/ids the payload is zero.
  QuadTree plain(kWorld);
  plain.BulkInsert(rows.data(), xs.data(), ys.data(), rows.size());
  EXPECT_EQ(plain.Z(17), 0.0);
  EXPECT_EQ(plain.Id(17), 0u);
}

TEST(QuadTreeTest, MemoryBytesTracksContents) {
  QuadTree t(kWorld);
  const size_t empty = t.MemoryBytes();
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 100);
  for (uint32_t i = 0; i < 10000; ++i) t.Insert(i, u(rng), u(rng));
  const size_t full = t.MemoryBytes();
  // 36 bytes per entry (x, y, z, id, row) in well-filled leaves.
  EXPECT_GT(full, empty + 10000 * 36);
  EXPECT_LT(full, empty + 10000 * 64);
  // In-place moves change nothing structural.
  const size_t leaves = t.LeafCount();
  for (uint32_t i = 0; i < 10000; ++i) t.Move(i, t.X(i), t.Y(i));
  EXPECT_EQ(t.MemoryBytes(), full);
  EXPECT_EQ(t.LeafCount(), leaves);
  for (uint32_t i = 0; i < 10000; ++i) t.Remove(i);
  EXPECT_LT(t.MemoryBytes(), full / 2);
  EXPECT_EQ(t.CheckInvariants(), "");
}

// ---- Randomized differential test --------------------------------------------------------------

enum class Layout { kUniform, kClustered, kGrid };

void RunDifferential(Layout layout, uint64_t seed, int ops) {
  const Rect world{-50, 10, 950.5, 1000.25};
  QuadTree t(world);
  Model m;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> ux(world.min_x, world.max_x), uy(world.min_y, world.max_y);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<std::pair<double, double>> centers;
  for (int i = 0; i < 8; ++i) centers.push_back({ux(rng), uy(rng)});
  const auto clamp = [&](double x, double y) {
    return std::make_pair(std::clamp(x, world.min_x, world.max_x),
                          std::clamp(y, world.min_y, world.max_y));
  };
  const auto fresh = [&]() -> std::pair<double, double> {
    switch (layout) {
      case Layout::kUniform:
        if (unit(rng) < 0.01) return {world.max_x, uy(rng)};
        return {ux(rng), uy(rng)};
      case Layout::kClustered: {
        const auto& c = centers[rng() % centers.size()];
        const double s = unit(rng) < 0.5 ? 1e-3 : 5.0;
        std::normal_distribution<double> g(0, s);
        if (unit(rng) < 0.05) return c;  // exact duplicates
        return clamp(c.first + g(rng), c.second + g(rng));
      }
      case Layout::kGrid:
        return {world.min_x + std::floor(unit(rng) * 40) * 25,
                world.min_y + std::floor(unit(rng) * 40) * 25};
    }
    return {0, 0};
  };
  // Each row's stored z and id, which must follow it through moves, splits,
  // merges, removals of other rows and renames.
  std::unordered_map<uint32_t, std::pair<double, uint64_t>> payload;
  uint64_t next_id = 1000;
  const auto check_payload = [&](double cx, double cy, double r) {
    t.VisitCircle(cx, cy, r, [&](uint32_t row, double, double, double z, uint64_t id) {
      const auto& want = payload.at(row);
      EXPECT_EQ(z, want.first) << "row " << row;
      EXPECT_EQ(id, want.second) << "row " << row;
      return true;
    });
  };
  std::vector<uint32_t> live;  // rows present
  uint32_t next_row = 0;
  std::vector<uint32_t> free_rows;  // removed rows, reused
  const auto check_queries = [&]() {
    for (int q = 0; q < 3; ++q) {
      const auto c = fresh();
      const double r = unit(rng) < 0.2 ? 0 : unit(rng) * unit(rng) * 300;
      ASSERT_EQ(CircleRows(t, c.first, c.second, r), m.Circle(c.first, c.second, r));
      check_payload(c.first, c.second, r);
      const Rect rect{c.first - unit(rng) * 100, c.second - unit(rng) * 100,
                      c.first + unit(rng) * 100,
                      c.second + (unit(rng) < 0.1 ? 0 : unit(rng) * 100)};
      ASSERT_EQ(RectRows(t, rect), m.InRect(rect));
      const size_t k = rng() % 3 == 0 ? rng() % 200 : rng() % 8;
      const auto accept = (rng() % 2 == 0) ? +[](uint32_t row) { return row % 3 != 0; } : nullptr;
      ExpectSameNeighbors(NearestOf(t, c.first, c.second, k, accept),
                          m.Nearest(c.first, c.second, k, accept));
    }
  };
  for (int op = 0; op < ops; ++op) {
    const double dice = unit(rng);
    if (live.size() < 200 || dice < 0.3) {
      uint32_t row;
      if (!free_rows.empty() && rng() % 2 == 0) {
        row = free_rows.back();
        free_rows.pop_back();
      } else {
        row = next_row++;
      }
      const auto p = fresh();
      const double z = std::floor(unit(rng) * 1000) - 500;
      t.Insert(row, p.first, p.second, z, next_id);
      payload[row] = {z, next_id++};
      m.pos[row] = p;
      live.push_back(row);
    } else if (dice < 0.6) {  // small move
      const uint32_t row = live[rng() % live.size()];
      auto& p = m.pos[row];
      const double step = layout == Layout::kGrid ? 25.0 : (unit(rng) < 0.5 ? 0.01 : 3.0);
      const auto np =
          clamp(p.first + (unit(rng) - 0.5) * 2 * step, p.second + (unit(rng) - 0.5) * 2 * step);
      if (rng() % 2 == 0) {
        const double z = unit(rng);
        t.Move(row, np.first, np.second, z);
        payload[row].first = z;
      } else {
        t.Move(row, np.first, np.second);  // keeps z
      }
      p = np;
    } else if (dice < 0.72) {  // teleport
      const uint32_t row = live[rng() % live.size()];
      const auto np = fresh();
      const double z = unit(rng);
      t.Move(row, np.first, np.second, z);
      payload[row].first = z;
      m.pos[row] = np;
    } else if (dice < 0.9) {  // remove
      const size_t i = rng() % live.size();
      const uint32_t row = live[i];
      t.Remove(row);
      m.pos.erase(row);
      payload.erase(row);
      live[i] = live.back();
      live.pop_back();
      free_rows.push_back(row);
    } else {  // rename to a fresh or freed row
      const size_t i = rng() % live.size();
      const uint32_t from = live[i];
      uint32_t to;
      if (!free_rows.empty() && rng() % 2 == 0) {
        to = free_rows.back();
        free_rows.pop_back();
      } else {
        to = next_row++;
      }
      t.Rename(from, to);
      m.pos[to] = m.pos[from];
      m.pos.erase(from);
      payload[to] = payload.at(from);
      payload.erase(from);
      live[i] = to;
      free_rows.push_back(from);
    }
    // Shrink phases exercise merges.
    if (op % 20000 == 15000) {
      while (live.size() > 300) {
        const uint32_t row = live.back();
        live.pop_back();
        t.Remove(row);
        m.pos.erase(row);
        payload.erase(row);
        free_rows.push_back(row);
      }
      ASSERT_EQ(t.CheckInvariants(), "");
    }
    if (op % 5000 == 0) {
      ASSERT_EQ(t.CheckInvariants(), "") << "after op " << op;
      ASSERT_EQ(t.size(), m.pos.size());
    }
    if (op % 100 == 0) {
      check_queries();
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  ASSERT_EQ(t.CheckInvariants(), "");
  for (const auto& [row, p] : m.pos) {
    ASSERT_TRUE(t.Contains(row));
    ASSERT_EQ(t.X(row), p.first);
    ASSERT_EQ(t.Y(row), p.second);
    ASSERT_EQ(t.Z(row), payload.at(row).first);
    ASSERT_EQ(t.Id(row), payload.at(row).second);
  }
  check_payload(0, 0, 1e6);
  for (uint32_t row : free_rows) ASSERT_FALSE(t.Contains(row));
  std::vector<uint32_t> want;
  for (const auto& [row, p] : m.pos) want.push_back(row);
  std::sort(want.begin(), want.end());
  ASSERT_EQ(AllRows(t), want);
}

TEST(QuadTreeDifferentialTest, Uniform) { RunDifferential(Layout::kUniform, 1, 100000); }
TEST(QuadTreeDifferentialTest, Clustered) { RunDifferential(Layout::kClustered, 2, 100000); }
TEST(QuadTreeDifferentialTest, Grid) { RunDifferential(Layout::kGrid, 3, 50000); }

}  // namespace
}  // namespace worlddb
