// QuadTree: the spatial index of one kind's table in one shard.
//
// Contract
//   * Entries are (row, x, y, z, id). `row` is the owner's dense row number (a
//     table row); `z` and `id` (the entity id) are payload the tree only
//     stores and hands back (0 when the caller does not give them); it never
//     sees kinds or columns.
//   * The tree keeps each entry's x, y, z and id next to its row in the leaf,
//     so a query scans contiguous memory and needs nothing else to return
//     positions and ids; it is the only copy of x and y (the table keeps id, z
//     and the columns; the leaf's id and z are copies the owner keeps equal:
//     Move() takes z, Rename() keeps both). Owners read back with
//     X()/Y()/Z()/Id().
//   * Bucket leaves split above kLeafSplit entries and merge below kLeafMerge
//     (engine/constants.h). A Move() that stays inside its leaf is an O(1)
//     in-place update; any other move relocates the entry through the nearest
//     common ancestor.
//   * Nodes cover half-open boxes [min, mid) / [mid, max) split at the centre;
//     the world box itself is closed, so points on the world's max edges go to
//     the last cell. Query predicates are in index/geometry.h.
//   * Preconditions (checked by the engine before it calls, asserted in debug
//     builds): positions are finite and inside the world; Insert takes a row not
//     present; Move/Remove/X/Y take a row present.
//
// Thread safety: none. A tree is owned by one shard and touched only by that
// shard's thread. Const methods do not mutate (several readers may share a
// tree as long as no writer runs).
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/constants.h"
#include "index/geometry.h"

namespace worlddb {

namespace quadtree_detail {
// Bytes per leaf entry: x, y, z (f64), id (u64) and row (u32).
inline constexpr size_t kEntryBytes = 3 * sizeof(double) + sizeof(uint64_t) + sizeof(uint32_t);
// Leaf capacities (entries): the allocator's size classes (four per doubling,
// from 160 bytes) divided by kEntryBytes, so a leaf allocation is nearly all
// payload. cap[0] == 0 means "no storage".
struct CapTable {
  uint32_t cap[160];
  uint32_t n;
};
constexpr CapTable MakeCapTable() {
  CapTable t{};
  t.cap[t.n++] = 0;
  for (uint64_t base = 128;; base *= 2) {
    for (uint64_t i = 1; i <= 4; ++i) {
      const uint64_t c = (base + base * i / 4) / kEntryBytes;
      if (c > UINT32_MAX || t.n == 160) return t;
      if (c > t.cap[t.n - 1]) t.cap[t.n++] = static_cast<uint32_t>(c);
    }
  }
}
inline constexpr CapTable kCapTable = MakeCapTable();
}  // namespace quadtree_detail

class QuadTree {
 public:
  struct Neighbor {
    uint32_t row;
    double d2;     // squared distance to the query point
    uint64_t key;  // tie-break key supplied by the caller (the entity id)
    double x, y;   // the entry's position
    double z = 0;  // the entry's stored z and id
    uint64_t id = 0;
  };
  // Pass as Nearest()'s `key` to tie-break by the stored ids.
  struct StoredId {};

  explicit QuadTree(const Rect& world);
  ~QuadTree();
  QuadTree(const QuadTree&) = delete;
  QuadTree& operator=(const QuadTree&) = delete;

  void Insert(uint32_t row, double x, double y, double z = 0, uint64_t id = 0);
  // Inserts n entries; faster than n Insert() calls (builds leaves by
  // partitioning rather than by descending once per entry). zs and ids may
  // be null (zeros).
  void BulkInsert(const uint32_t* rows, const double* xs, const double* ys, size_t n) {
    BulkInsert(rows, xs, ys, nullptr, nullptr, n);
  }
  void BulkInsert(const uint32_t* rows, const double* xs, const double* ys, const double* zs,
                  const uint64_t* ids, size_t n);
  // Moves row to (x, y); the 4-argument form also sets its z.
  void Move(uint32_t row, double x, double y);
  void Move(uint32_t row, double x, double y, double z);
  void Remove(uint32_t row);
  // The owner moved row `from` to row `to` (dense tables fill a hole with their
  // last row). `to` must not be present; afterwards `from` is not present.
  void Rename(uint32_t from, uint32_t to);
  void Clear();

  // Hints for a caller about to Move() many rows (the engine's move batches):
  // PrefetchRef(row) starts loading row's entry in the row map; a few moves
  // later PrefetchNode(row) reads it and starts loading the node of row's
  // leaf; a few moves after that PrefetchEntry(row) loads row's x, y and z
  // from that leaf. None changes anything; all take a row present.
  void PrefetchRef(uint32_t row) const;
  void PrefetchNode(uint32_t row) const;
  void PrefetchEntry(uint32_t row) const;

  bool Contains(uint32_t row) const;
  double X(uint32_t row) const;
  double Y(uint32_t row) const;
  double Z(uint32_t row) const;
  uint64_t Id(uint32_t row) const;
  size_t size() const;

  // Visitors are called as v(uint32_t row, double x, double y), or, if they
  // take them, v(uint32_t row, double x, double y, double z, uint64_t id),
  // and return true to go on or false to stop. Return false iff a visitor
  // stopped the walk. Entries come in no particular order (not even the
  // same order for two shapes covering the same entries).
  template <class Visitor>
  bool VisitCircle(double cx, double cy, double r, Visitor&& v) const;
  template <class Visitor>
  bool VisitRect(const Rect& rect, Visitor&& v) const;
  template <class Visitor>
  bool VisitAll(Visitor&& v) const;

  // The number of entries VisitCircle / VisitRect would visit. Leaves the
  // shape covers whole are counted from their nodes: their entries are not
  // read.
  size_t CountCircle(double cx, double cy, double r) const;
  size_t CountRect(const Rect& rect) const;

  // A density grid: adds to counts[iy * nx + ix] each entry inside `rect`
  // (closed) for which accept(row) is true (every entry when accept is
  // omitted), binned as ix = min(nx - 1, (uint32_t)((x - rect.min_x) * nx /
  // w)), w = rect.max_x - rect.min_x (same for y), and returns how many it
  // added. The caller checks w * nx and h * ny are finite and positive.
  // Without accept, a leaf inside `rect` whose box lies in one cell is
  // counted from its node, its entries unread; exact, as the binning is
  // monotone in x and y, so a leaf whose entries' bounds (EntryBounds: the
  // box less its open max edges) have corners in one cell has all its
  // entries there.
  template <class Accept = std::nullptr_t>
  uint64_t CountGrid(const Rect& rect, uint32_t nx, uint32_t ny, uint64_t* counts,
                     Accept&& accept = nullptr) const;

  // The k entries nearest to (cx, cy) among those for which accept(row) is
  // true, ordered by (d2, key(row)) ascending; `out` is replaced. With
  // key = StoredId{} the key is the entry's stored id.
  template <class Accept, class Key>
  void Nearest(double cx, double cy, size_t k, Accept&& accept, Key&& key,
               std::vector<Neighbor>* out) const;

  // Bytes held by nodes, leaves and the row map (for memory accounting).
  size_t MemoryBytes() const;
  size_t LeafCount() const;
  size_t MaxDepth() const;
  // Full structural check for tests: every entry in the right leaf, leaf sizes
  // within limits where splittable, row map consistent. Empty string if fine.
  std::string CheckInvariants() const;

 private:
  // Layout (see index/README.md):
  //   * nodes_ is a pool of Node addressed by u32; node 0 is the root and the
  //     children of a node are 4 consecutive nodes (quadrant q = (x >= mid_x) |
  //     ((y >= mid_y) << 1)). Freed child groups go to free_groups_.
  //   * A leaf owns one 32-byte-aligned allocation of capacity `cap` entries
  //     laid out as entries[cap] ({x, y, z, id}, 32 bytes) | rows[cap] (u32).
  //     Capacities follow kCapTable (the allocator's size classes divided by
  //     36 bytes), so leaves stay well filled.
  //   * The row map is chunked (kChunkRows refs per chunk, allocated lazily);
  //     a ref is one u32: leaf << 8 | slot. A location that does not fit
  //     (slot >= 255, only in a depth-capped leaf of coincident points, or a
  //     node index >= 2^24) is stored as kRefEscaped and lives in overflow_.
  static constexpr uint32_t kNil = UINT32_MAX;
  static constexpr uint32_t kRefAbsent = 0xFFFFFFFF;
  static constexpr uint32_t kRefEscaped = 0xFF;  // slot byte 0xFF, leaf bits 0
  static constexpr uint32_t kRefMaxLeaf = 0xFFFFFF;
  static constexpr uint32_t kRefMaxSlot = 0xFE;
  static constexpr uint8_t kClosedX = 1;  // max_x is the world's closed edge
  static constexpr uint8_t kClosedY = 2;
  static constexpr size_t kEntryBytes = quadtree_detail::kEntryBytes;
  // DFS stack bound: each level leaves at most 3 siblings behind.
  static constexpr size_t kStackSize = 4 * (size_t{kMaxDepth} + 4);

  // One cache line per node: a walk prefetches each node it will visit with
  // one prefetch, and never waits for a second line.
  struct alignas(64) Node {
    double min_x, min_y, max_x, max_y;  // [min, max) or [min, max] per flags
    uint32_t parent;                    // kNil for the root
    uint32_t child;                     // first of 4 children; kNil for a leaf
    void* data;                         // leaf storage, nullptr when cap == 0
    uint32_t count;                     // leaf entries
    uint8_t cap_class;                  // index into kCapTable
    uint8_t depth;
    uint8_t flags;  // kClosedX | kClosedY
    uint8_t unused;
  };
  struct Chunk {
    uint32_t refs[kChunkRows];
  };
  struct Loc {
    uint32_t leaf, slot;
  };
  static constexpr const auto& kCapTable = quadtree_detail::kCapTable;

  // The visitor CountCircle and CountRect pass to Walk, which counts
  // instead of visiting.
  struct Counter {
    size_t n = 0;
    bool WholeLeaf(const Node& leaf) {
      n += leaf.count;
      return true;
    }
  };
  struct HeapItem {
    double d2;
    uint32_t node;
  };
  struct BulkEntry {
    double x, y, z;
    uint64_t id;
    uint32_t row;
    uint32_t q;  // quadrant scratch
  };

  static uint32_t Cap(const Node& n) { return kCapTable.cap[n.cap_class]; }
  // A leaf entry's x, y, z and id in 32 bytes, two to a cache line (leaf data
  // are 32-byte aligned): an in-leaf move writes one line, and a hit reads
  // its coordinates and id from the line its test already loaded.
  struct alignas(32) Entry {
    double x, y, z;
    uint64_t id;
  };
  static Entry* Entries(const Node& n) { return static_cast<Entry*>(n.data); }
  static uint32_t* Rows(const Node& n) {
    return reinterpret_cast<uint32_t*>(static_cast<Entry*>(n.data) + Cap(n));
  }
  static_assert(sizeof(Entry) == 32 && kEntryBytes == sizeof(Entry) + sizeof(uint32_t));
  // Copies entry `from` of leaf a to slot `to` of leaf b (b may be a).
  static void CopyEntry(const Node& a, uint32_t from, const Node& b, uint32_t to) {
    Entries(b)[to] = Entries(a)[from];
    Rows(b)[to] = Rows(a)[from];
  }
  // Calls a visitor on leaf entry i (see VisitCircle).
  template <class Visitor>
  static bool Call(Visitor& v, const Node& n, uint32_t i) {
    const Entry& e = Entries(n)[i];
    if constexpr (std::is_invocable_v<Visitor&, uint32_t, double, double, double, uint64_t>) {
      return v(Rows(n)[i], e.x, e.y, e.z, e.id);
    } else {
      return v(Rows(n)[i], e.x, e.y);
    }
  }
  static bool InBox(const Node& n, double x, double y) {
    return x >= n.min_x && y >= n.min_y &&
           (x < n.max_x || ((n.flags & kClosedX) != 0 && x <= n.max_x)) &&
           (y < n.max_y || ((n.flags & kClosedY) != 0 && y <= n.max_y));
  }
  static double Mid(double a, double b) { return (a + b) / 2; }
  static Rect BoxOf(const Node& n) { return Rect{n.min_x, n.min_y, n.max_x, n.max_y}; }
  // The smallest closed box holding every point of n's half-open box: its
  // max edges are one ulp below the box's, except on the world's closed
  // edges.
  static Rect EntryBounds(const Node& n) {
    return Rect{n.min_x, n.min_y,
                (n.flags & kClosedX) != 0 ? n.max_x : std::nextafter(n.max_x, n.min_x),
                (n.flags & kClosedY) != 0 ? n.max_y : std::nextafter(n.max_y, n.min_y)};
  }
  // The box of child q of n, bit for bit the box MakeChildren gives it (both
  // use this), so a walk can test children without loading them.
  static Rect ChildBox(const Node& n, uint32_t q) {
    const double mx = Mid(n.min_x, n.max_x), my = Mid(n.min_y, n.max_y);
    const bool right = (q & 1) != 0, top = (q & 2) != 0;
    return Rect{right ? mx : n.min_x, top ? my : n.min_y, right ? n.max_x : mx, top ? n.max_y : my};
  }
  // Smallest squared distance from (cx, cy) to box b, computed so that it
  // never exceeds SquaredDistance(p, c) for a point p in the box (IEEE
  // rounding is monotone).
  static double BoxMinD2(const Rect& b, double cx, double cy) {
    double dx = 0, dy = 0;
    if (cx < b.min_x)
      dx = b.min_x - cx;
    else if (cx > b.max_x)
      dx = cx - b.max_x;
    if (cy < b.min_y)
      dy = b.min_y - cy;
    else if (cy > b.max_y)
      dy = cy - b.max_y;
    return dx * dx + dy * dy;
  }
  // Largest squared distance from (cx, cy) to box b; never below
  // SquaredDistance(p, c) for a point p in the box.
  static double BoxMaxD2(const Rect& b, double cx, double cy) {
    const double ax = b.min_x - cx, bx = b.max_x - cx;
    const double ay = b.min_y - cy, by = b.max_y - cy;
    const double dx = (ax < 0 ? -ax : ax) > (bx < 0 ? -bx : bx) ? ax : bx;
    const double dy = (ay < 0 ? -ay : ay) > (by < 0 ? -by : by) ? ay : by;
    return dx * dx + dy * dy;
  }
  static bool NeighborLess(const Neighbor& a, const Neighbor& b) {
    if (a.d2 != b.d2) return a.d2 < b.d2;
    if (a.key != b.key) return a.key < b.key;
    return a.row < b.row;
  }

  uint32_t& RefAt(uint32_t row) const {
    return chunks_[row >> kChunkRowsLog2]->refs[row & (kChunkRows - 1)];
  }
  const uint32_t* FindRef(uint32_t row) const {
    const size_t c = row >> kChunkRowsLog2;
    if (c >= chunks_.size() || !chunks_[c]) return nullptr;
    return &chunks_[c]->refs[row & (kChunkRows - 1)];
  }
  // Location of a present row.
  Loc Locate(uint32_t row) const {
    const uint32_t ref = RefAt(row);
    if ((ref & 0xFF) != kRefEscaped) [[likely]]
      return Loc{ref >> 8, ref & 0xFF};
    return LocateEscaped(row);
  }
  Loc LocateEscaped(uint32_t row) const;
  void EnsureChunk(uint32_t row);
  void SetRef(uint32_t row, uint32_t leaf, uint32_t slot) {
    uint32_t& ref = RefAt(row);
    if (leaf <= kRefMaxLeaf && slot <= kRefMaxSlot && ref != kRefEscaped) [[likely]] {
      ref = (leaf << 8) | slot;
    } else {
      SetRefSlow(row, leaf, slot);
    }
  }
  void SetRefSlow(uint32_t row, uint32_t leaf, uint32_t slot);
  void ClearRef(uint32_t row);

  void InitRoot();
  void FreeAll();
  void* AllocLeafData(uint8_t cls);
  void FreeLeafData(void* data, uint8_t cls);
  void ResizeLeaf(uint32_t leaf, uint8_t cls);
  static uint8_t ClassFor(uint64_t n);
  uint32_t AllocGroup();
  uint32_t MakeChildren(uint32_t node);
  uint32_t Descend(uint32_t from, double x, double y) const;
  void Append(uint32_t leaf, uint32_t row, double x, double y, double z, uint64_t id);
  void Split(uint32_t leaf);
  void RemoveAt(uint32_t leaf, uint32_t slot);
  void TryMerge(uint32_t leaf);
  void MoveSlow(uint32_t row, Loc loc, double x, double y, double z);
  void BulkBuild(uint32_t node, BulkEntry* e, BulkEntry* scratch, size_t m, const Rect* box);
  static std::vector<Neighbor>& NearestScratch();

  template <class Visitor>
  bool VisitSubtree(uint32_t node, Visitor& v) const;

  // How a node's box relates to a query's shape: misses it, lies inside it
  // (every entry matches, no per-entry test), or neither.
  enum class Cover : uint8_t { kNone, kAll, kSome };
  // Visits the entries of a shape below node `start`: cover(box) classifies
  // boxes, match(x, y) tests the entries of leaves the shape covers in part.
  // Every entry the shape can match must lie under `start`.
  template <class CoverFn, class Match, class Visitor>
  bool Walk(uint32_t start, CoverFn&& cover, Match&& match, Visitor& v) const;
  // The deepest node that holds every entry a shape can match, found by
  // descending while only(mid_x, mid_y) names the one quadrant (0..3) the
  // shape can reach, or -1 when it may reach more. A query is small against
  // the world (the default world is 2^21 m across, a 50 m circle sits ~13
  // levels down), and skipping the levels above this node skips testing 4
  // children per level only to keep one. `only` must be conservative: it
  // names a quadrant only when cover() would call the other three kNone.
  template <class Only>
  uint32_t Enclosing(Only&& only) const;

  void PrefetchNodeAt(uint32_t idx) const { __builtin_prefetch(&nodes_[idx]); }

  // One level of a walk: node indices, inline up to kInline, then on the heap.
  class NodeList {
   public:
    NodeList() = default;
    NodeList(const NodeList&) = delete;
    NodeList& operator=(const NodeList&) = delete;
    void push_back(uint32_t idx) {
      if (size_ == cap_) Grow();
      data_[size_++] = idx;
    }
    void clear() { size_ = 0; }
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    uint32_t operator[](size_t i) const { return data_[i]; }

   private:
    static constexpr size_t kInline = 128;
    void Grow() {
      if (data_ == inline_) heap_.assign(inline_, inline_ + size_);
      heap_.resize(2 * cap_);
      data_ = heap_.data();
      cap_ = heap_.size();
    }
    uint32_t inline_[kInline];
    std::vector<uint32_t> heap_;
    uint32_t* data_ = inline_;
    size_t size_ = 0;
    size_t cap_ = kInline;
  };

  // Tests entries [0, count) with match(i) and calls visit(i) on the hits.
  // Tests run branch-free into a list of hit slots first, then the visitor
  // runs over the list: about half of a leaf's entries match a typical query,
  // so a branch per entry would mispredict on every other one.
  template <class Match, class Visit>
  static bool ScanLeaf(uint32_t count, Match&& match, Visit&& visit) {
    constexpr uint32_t kStep = 64;
    uint32_t hits[kStep];
    for (uint32_t base = 0; base < count; base += kStep) {
      const uint32_t end = count - base < kStep ? count : base + kStep;
      uint32_t m = 0;
      for (uint32_t i = base; i < end; ++i) {
        hits[m] = i;
        m += match(i) ? 1 : 0;
      }
      for (uint32_t j = 0; j < m; ++j) {
        if (!visit(hits[j])) return false;
      }
    }
    return true;
  }

  // Leaves a walk will scan, with their data prefetched as they are found;
  // `whole` marks the leaves the shape covers whole (no per-entry test).
  // Add() returns true when the batch is full: scan it and empty it.
  struct LeafBatch {
    static constexpr uint32_t kMax = 16;
    uint32_t leaves[kMax];
    bool whole[kMax];
    uint32_t size = 0;
    bool Add(uint32_t idx, const Node& n, bool covered_whole) {
      // The first 4 entries: two lines.
      const Entry* e = Entries(n);
      __builtin_prefetch(e);
      __builtin_prefetch(e + 2);
      leaves[size] = idx;
      whole[size++] = covered_whole;
      return size == kMax;
    }
  };

  Rect world_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> free_groups_;
  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::unordered_map<uint32_t, Loc> overflow_;  // escaped row refs
  size_t size_ = 0;
  size_t num_chunks_ = 0;
  size_t leaf_bytes_ = 0;
};

// ---- Inline hot paths ----------------------------------------------------------

inline size_t QuadTree::size() const { return size_; }

inline bool QuadTree::Contains(uint32_t row) const {
  const uint32_t* r = FindRef(row);
  return r != nullptr && *r != kRefAbsent;
}

inline double QuadTree::X(uint32_t row) const {
  assert(Contains(row));
  const Loc loc = Locate(row);
  return Entries(nodes_[loc.leaf])[loc.slot].x;
}

inline double QuadTree::Y(uint32_t row) const {
  assert(Contains(row));
  const Loc loc = Locate(row);
  return Entries(nodes_[loc.leaf])[loc.slot].y;
}

inline double QuadTree::Z(uint32_t row) const {
  assert(Contains(row));
  const Loc loc = Locate(row);
  return Entries(nodes_[loc.leaf])[loc.slot].z;
}

inline uint64_t QuadTree::Id(uint32_t row) const {
  assert(Contains(row));
  const Loc loc = Locate(row);
  return Entries(nodes_[loc.leaf])[loc.slot].id;
}

inline void QuadTree::PrefetchRef(uint32_t row) const { __builtin_prefetch(&RefAt(row)); }

inline void QuadTree::PrefetchNode(uint32_t row) const { PrefetchNodeAt(Locate(row).leaf); }

inline void QuadTree::PrefetchEntry(uint32_t row) const {
  const Loc loc = Locate(row);
  const Node& n = nodes_[loc.leaf];
  __builtin_prefetch(Entries(n) + loc.slot, 1);
}

inline void QuadTree::Move(uint32_t row, double x, double y) {
  assert(Contains(row));
  const Loc loc = Locate(row);
  Node& n = nodes_[loc.leaf];
  Entry& e = Entries(n)[loc.slot];
  if (InBox(n, x, y)) [[likely]] {
    e.x = x;
    e.y = y;
    return;
  }
  MoveSlow(row, loc, x, y, e.z);
}

inline void QuadTree::Move(uint32_t row, double x, double y, double z) {
  assert(Contains(row));
  const Loc loc = Locate(row);
  Node& n = nodes_[loc.leaf];
  if (InBox(n, x, y)) [[likely]] {
    Entry& e = Entries(n)[loc.slot];
    e.x = x;
    e.y = y;
    e.z = z;
    return;
  }
  MoveSlow(row, loc, x, y, z);
}

// ---- Queries ---------------------------------------------------------------------

template <class Visitor>
bool QuadTree::VisitSubtree(uint32_t node, Visitor& v) const {
  uint32_t stack[kStackSize];
  size_t sp = 0;
  stack[sp++] = node;
  while (sp > 0) {
    const Node& n = nodes_[stack[--sp]];
    if (n.child == kNil) {
      for (uint32_t i = 0, e = n.count; i < e; ++i) {
        if (!Call(v, n, i)) return false;
      }
    } else {
      for (uint32_t q = 0; q < 4; ++q) stack[sp++] = n.child + 3 - q;
    }
  }
  return true;
}

template <class Visitor>
bool QuadTree::VisitAll(Visitor&& v) const {
  return VisitSubtree(0, v);
}

template <class Only>
uint32_t QuadTree::Enclosing(Only&& only) const {
  uint32_t idx = 0;
  for (;;) {
    const Node& n = nodes_[idx];
    if (n.child == kNil) return idx;
    const int q = only(Mid(n.min_x, n.max_x), Mid(n.min_y, n.max_y));
    if (q < 0) return idx;
    idx = n.child + static_cast<uint32_t>(q);
  }
}

template <class CoverFn, class Match, class Visitor>
bool QuadTree::Walk(uint32_t start, CoverFn&& cover, Match&& match, Visitor& v) const {
  // Leaves are gathered first and their data prefetched, then scanned: a
  // query touches ~10 leaves whose data are separate allocations, and their
  // cache misses overlap instead of being paid one after another. Leaves the
  // shape covers whole are visited without per-entry tests (and, when
  // counting, without reading their entries at all).
  constexpr bool kCount = std::is_same_v<std::remove_cvref_t<Visitor>, Counter>;
  LeafBatch batch;
  auto scan = [&]() {
    for (uint32_t j = 0; j < batch.size; ++j) {
      const Node& n = nodes_[batch.leaves[j]];
      if constexpr (kCount) {  // only leaves covered in part are batched
        const Entry* e = Entries(n);
        size_t m = 0;
        for (uint32_t i = 0, end = n.count; i < end; ++i) m += match(e[i].x, e[i].y) ? 1 : 0;
        v.n += m;
      } else if (batch.whole[j]) {
        for (uint32_t i = 0, e = n.count; i < e; ++i) {
          if (!Call(v, n, i)) return false;
        }
      } else {
        const Entry* e = Entries(n);
        if (!ScanLeaf(
                n.count, [&](uint32_t i) { return match(e[i].x, e[i].y); },
                [&](uint32_t i) { return Call(v, n, i); })) {
          return false;
        }
      }
    }
    batch.size = 0;
    return true;
  };
  // Level by level rather than depth first: the nodes of the next level are
  // prefetched as they are found, so their cache misses overlap (a
  // depth-first walk waits for each node in turn; that wait was ~40 % of a
  // radius query in the 1 M-entity tree). Children are tested on boxes
  // computed from the parent's, so children the shape misses are never
  // loaded. level[cur][1] holds the current level's nodes the shape covers
  // whole (all of their subtree is visited), level[cur][0] those it covers
  // in part.
  NodeList level[2][2];
  const Cover root = cover(BoxOf(nodes_[start]));
  if (root == Cover::kNone) return true;
  level[0][root == Cover::kAll].push_back(start);
  for (uint32_t cur = 0; !level[cur][0].empty() || !level[cur][1].empty(); cur ^= 1) {
    NodeList* next = level[cur ^ 1];
    next[0].clear();
    next[1].clear();
    for (const bool whole : {true, false}) {
      const NodeList& nodes = level[cur][whole];
      for (size_t i = 0, e = nodes.size(); i < e; ++i) {
        const uint32_t idx = nodes[i];
        const Node& n = nodes_[idx];
        if (n.child == kNil) {
          if constexpr (requires { v.WholeLeaf(n); }) {
            // The visitor may take a leaf covered whole from its node
            // (Counter always does, CountGrid when it lies in one cell).
            if (whole && v.WholeLeaf(n)) continue;
          }
          if (n.count > 0 && batch.Add(idx, n, whole) && !scan()) return false;
          continue;
        }
        for (uint32_t q = 0; q < 4; ++q) {
          const Cover c = whole ? Cover::kAll : cover(ChildBox(n, q));
          if (c == Cover::kNone) continue;
          PrefetchNodeAt(n.child + q);
          next[c == Cover::kAll].push_back(n.child + q);
        }
      }
    }
  }
  return scan();
}

template <class Visitor>
bool QuadTree::VisitCircle(double cx, double cy, double r, Visitor&& v) const {
  const double rr = r * r;
  // A side of a mid line is out of reach when the centre's distance to the
  // line, squared, exceeds r^2: BoxMinD2 of each box on that side is at
  // least that square (it adds the other axis' non-negative square), so
  // cover() would call them kNone. NaNs compare false: no descent.
  const uint32_t start = Enclosing([&](double mx, double my) {
    const double dx = cx - mx, dy = cy - my;
    if (!(dx * dx > rr && dy * dy > rr)) return -1;
    return static_cast<int>(cx >= mx) | (static_cast<int>(cy >= my) << 1);
  });
  return Walk(
      start,
      [&](const Rect& b) {
        if (!(BoxMinD2(b, cx, cy) <= rr)) return Cover::kNone;
        // Every point of the box passes the exact test (monotone rounding).
        return BoxMaxD2(b, cx, cy) <= rr ? Cover::kAll : Cover::kSome;
      },
      [&](double x, double y) { return SquaredDistance(x, y, cx, cy) <= rr; }, v);
}

template <class Visitor>
bool QuadTree::VisitRect(const Rect& rect, Visitor&& v) const {
  // cover() calls the boxes right of a mid line kNone when the rect ends
  // before it, those left of it when the rect starts after it (boxes are
  // compared closed).
  const uint32_t start = Enclosing([&](double mx, double my) {
    const int qx = rect.max_x < mx ? 0 : rect.min_x > mx ? 1 : -1;
    const int qy = rect.max_y < my ? 0 : rect.min_y > my ? 1 : -1;
    if (qx < 0 || qy < 0) return -1;
    return qx | (qy << 1);
  });
  return Walk(
      start,
      [&](const Rect& b) {
        if (!(rect.min_x <= b.max_x && b.min_x <= rect.max_x && rect.min_y <= b.max_y &&
              b.min_y <= rect.max_y)) {
          return Cover::kNone;
        }
        return rect.min_x <= b.min_x && b.max_x <= rect.max_x && rect.min_y <= b.min_y &&
                       b.max_y <= rect.max_y
                   ? Cover::kAll
                   : Cover::kSome;
      },
      [&](double x, double y) { return rect.Contains(x, y); }, v);
}

template <class Accept>
uint64_t QuadTree::CountGrid(const Rect& rect, uint32_t nx, uint32_t ny, uint64_t* counts,
                             Accept&& accept) const {
  constexpr bool kEvery = std::is_null_pointer_v<std::remove_cvref_t<Accept>>;
  struct Grid {
    const Rect& r;
    uint32_t nx, ny;
    double w, h;
    uint64_t* counts;
    Accept& accept;
    double cell_w = w / nx, cell_h = h / ny;
    uint64_t added = 0;
    uint32_t Ix(double x) const {
      return std::min<uint32_t>(nx - 1, static_cast<uint32_t>((x - r.min_x) * nx / w));
    }
    uint32_t Iy(double y) const {
      return std::min<uint32_t>(ny - 1, static_cast<uint32_t>((y - r.min_y) * ny / h));
    }
    bool WholeLeaf(const Node& leaf) {
      if constexpr (!kEvery) return false;
      const Rect b = EntryBounds(leaf);
      const uint32_t count = leaf.count;
      // A box wider than a cell straddles one (rounding aside: declining is
      // always safe), so fine grids skip the divisions below.
      if (b.max_x - b.min_x > cell_w || b.max_y - b.min_y > cell_h) return false;
      const uint32_t ix = Ix(b.min_x);
      if (ix != Ix(b.max_x)) return false;
      const uint32_t iy = Iy(b.min_y);
      if (iy != Iy(b.max_y)) return false;
      counts[size_t{iy} * nx + ix] += count;
      added += count;
      return true;
    }
    bool operator()(uint32_t row, double x, double y) {
      if constexpr (!kEvery) {
        if (!accept(row)) return true;
      }
      ++counts[size_t{Iy(y)} * nx + Ix(x)];
      ++added;
      return true;
    }
  };
  const double w = rect.max_x - rect.min_x, h = rect.max_y - rect.min_y;
  Grid g{rect, nx, ny, w, h, counts, accept, w / nx, h / ny};
  VisitRect(rect, g);
  return g.added;
}

inline size_t QuadTree::CountCircle(double cx, double cy, double r) const {
  Counter c;
  VisitCircle(cx, cy, r, c);
  return c.n;
}

inline size_t QuadTree::CountRect(const Rect& rect) const {
  Counter c;
  VisitRect(rect, c);
  return c.n;
}

template <class Accept, class Key>
void QuadTree::Nearest(double cx, double cy, size_t k, Accept&& accept, Key&& key,
                       std::vector<Neighbor>* out) const {
  out->clear();
  if (k == 0 || size_ == 0) return;
  // An expanding circle rather than best-first search: for the small k of
  // area-of-interest queries one prefetched, branch-free circle scan beats a
  // priority queue of nodes. Exact: once the circle of radius r holds at
  // least k accepted entries, every entry outside it is farther (d2 > r^2)
  // than the k-th inside, ties included (the circle is closed).
  std::vector<Neighbor> cand;
  cand.swap(NearestScratch());  // swap, so a nested call stays correct
  // First radius: the one that would hold ~1.5 k entries at the density of
  // the leaf under the centre, plus the centre's distance to the world.
  const Node& leaf = nodes_[Descend(0, cx, cy)];
  const double area = (leaf.max_x - leaf.min_x) * (leaf.max_y - leaf.min_y);
  double r = leaf.count > 0
                 ? std::sqrt(1.5 * static_cast<double>(k) * area / (3.14159 * leaf.count))
                 : std::sqrt(area);
  r += std::sqrt(BoxMinD2(BoxOf(nodes_[0]), cx, cy));
  if (!(r > 0)) r = 1;
  const double everything = BoxMaxD2(BoxOf(nodes_[0]), cx, cy);  // r^2 past this holds all entries
  for (;;) {
    cand.clear();
    VisitCircle(cx, cy, r, [&](uint32_t row, double x, double y, double z, uint64_t id) {
      if (accept(row)) cand.push_back({row, SquaredDistance(x, y, cx, cy), 0, x, y, z, id});
      return true;
    });
    if (cand.size() >= k || r * r >= everything) break;
    // Grow by the shortfall (count grows with r^2), at least doubling.
    const double want = 1.5 * static_cast<double>(k) / static_cast<double>(cand.size() + 1);
    r *= std::max(2.0, std::sqrt(want));
  }
  if (cand.size() > k) {
    // Keep everything up to the k-th distance (ties at it included), so that
    // keys are fetched only for the few entries that can be in the answer.
    std::nth_element(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(k - 1), cand.end(),
                     [](const Neighbor& a, const Neighbor& b) { return a.d2 < b.d2; });
    const double kth = cand[k - 1].d2;
    cand.erase(
        std::partition(cand.begin(), cand.end(), [kth](const Neighbor& n) { return n.d2 <= kth; }),
        cand.end());
  }
  for (Neighbor& n : cand) {
    if constexpr (std::is_same_v<std::decay_t<Key>, StoredId>) {
      n.key = n.id;
    } else {
      n.key = static_cast<uint64_t>(key(n.row));
    }
  }
  const size_t keep = std::min(k, cand.size());
  std::partial_sort(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(keep), cand.end(),
                    NeighborLess);
  out->assign(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(keep));
  cand.swap(NearestScratch());
}

}  // namespace worlddb
