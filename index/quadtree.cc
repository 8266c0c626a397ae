#include "index/quadtree.h"

#include <cstring>
#include <new>
#include <sstream>

namespace worlddb {

static_assert(kLeafSplit < 0xFE, "slots of splittable leaves fit the row ref's 8 bits");

QuadTree::QuadTree(const Rect& world) : world_(world) { InitRoot(); }

QuadTree::~QuadTree() { FreeAll(); }

void QuadTree::InitRoot() {
  nodes_.clear();
  nodes_.push_back(Node{world_.min_x, world_.min_y, world_.max_x, world_.max_y, kNil, kNil, nullptr,
                        0, 0, 0, static_cast<uint8_t>(kClosedX | kClosedY), 0});
}

void QuadTree::FreeAll() {
  // Walk the live tree (freed groups hold no storage).
  std::vector<uint32_t> stack{0};
  while (!stack.empty()) {
    Node& n = nodes_[stack.back()];
    stack.pop_back();
    if (n.child == kNil) {
      FreeLeafData(n.data, n.cap_class);
      n.data = nullptr;
      n.cap_class = 0;
      n.count = 0;
    } else {
      for (uint32_t q = 0; q < 4; ++q) stack.push_back(n.child + q);
    }
  }
}

void QuadTree::Clear() {
  FreeAll();
  std::vector<Node>().swap(nodes_);
  std::vector<uint32_t>().swap(free_groups_);
  std::vector<std::unique_ptr<Chunk>>().swap(chunks_);
  decltype(overflow_)().swap(overflow_);
  size_ = 0;
  num_chunks_ = 0;
  leaf_bytes_ = 0;
  InitRoot();
}

// ---- Row map ----------------------------------------------------------------------

QuadTree::Loc QuadTree::LocateEscaped(uint32_t row) const {
  const auto it = overflow_.find(row);
  assert(it != overflow_.end());
  return it->second;
}

void QuadTree::EnsureChunk(uint32_t row) {
  const size_t c = row >> kChunkRowsLog2;
  if (c >= chunks_.size()) chunks_.resize(c + 1);
  if (!chunks_[c]) {
    chunks_[c].reset(new Chunk);
    std::fill(std::begin(chunks_[c]->refs), std::end(chunks_[c]->refs), kRefAbsent);
    ++num_chunks_;
  }
}

void QuadTree::SetRefSlow(uint32_t row, uint32_t leaf, uint32_t slot) {
  uint32_t& ref = RefAt(row);
  if (leaf <= kRefMaxLeaf && slot <= kRefMaxSlot) {
    if (ref == kRefEscaped) overflow_.erase(row);
    ref = (leaf << 8) | slot;
  } else {
    ref = kRefEscaped;
    overflow_[row] = Loc{leaf, slot};
  }
}

void QuadTree::ClearRef(uint32_t row) {
  uint32_t& ref = RefAt(row);
  if (ref == kRefEscaped) overflow_.erase(row);
  ref = kRefAbsent;
}

// ---- Leaf storage ---------------------------------------------------------------------

uint8_t QuadTree::ClassFor(uint64_t n) {
  uint32_t c = 0;
  while (c + 1 < kCapTable.n && kCapTable.cap[c] < n) ++c;
  assert(kCapTable.cap[c] >= n);
  return static_cast<uint8_t>(c);
}

void* QuadTree::AllocLeafData(uint8_t cls) {
  const size_t cap = kCapTable.cap[cls];
  if (cap == 0) return nullptr;
  leaf_bytes_ += cap * kEntryBytes;
  // Every size class the capacities come from is a multiple of 32 bytes, so
  // the allocator can honour the alignment without rounding up.
  return ::operator new (cap* kEntryBytes, std::align_val_t{alignof(Entry)});
}

void QuadTree::FreeLeafData(void* data, uint8_t cls) {
  if (data == nullptr) return;
  const size_t bytes = kCapTable.cap[cls] * kEntryBytes;
  leaf_bytes_ -= bytes;
#if defined(__cpp_sized_deallocation)
  ::operator delete (data, bytes, std::align_val_t{alignof(Entry)});  // no size lookup
#else
  ::operator delete (data, std::align_val_t{alignof(Entry)});  // no -fsized-deallocation
#endif
}

void QuadTree::ResizeLeaf(uint32_t leaf, uint8_t cls) {
  Node& n = nodes_[leaf];
  assert(kCapTable.cap[cls] >= n.count);
  Node fresh = n;
  fresh.cap_class = cls;
  fresh.data = AllocLeafData(cls);
  if (n.count > 0) {
    std::memcpy(Entries(fresh), Entries(n), n.count * sizeof(Entry));
    std::memcpy(Rows(fresh), Rows(n), n.count * sizeof(uint32_t));
  }
  FreeLeafData(n.data, n.cap_class);
  n.data = fresh.data;
  n.cap_class = cls;
}

// ---- Nodes -------------------------------------------------------------------------------

uint32_t QuadTree::AllocGroup() {
  if (!free_groups_.empty()) {
    const uint32_t g = free_groups_.back();
    free_groups_.pop_back();
    return g;
  }
  const size_t g = nodes_.size();
  assert(g + 4 < kNil);
  if (g + 4 > nodes_.capacity()) nodes_.reserve(nodes_.capacity() + nodes_.capacity() / 2 + 4);
  nodes_.resize(g + 4);
  return static_cast<uint32_t>(g);
}

uint32_t QuadTree::MakeChildren(uint32_t node) {
  const uint32_t c = AllocGroup();
  Node& n = nodes_[node];
  assert(n.child == kNil && n.data == nullptr && n.count == 0);
  for (uint32_t q = 0; q < 4; ++q) {
    const bool right = (q & 1) != 0, top = (q & 2) != 0;
    uint8_t flags = 0;
    if (right) flags |= n.flags & kClosedX;
    if (top) flags |= n.flags & kClosedY;
    const Rect b = ChildBox(n, q);
    nodes_[c + q] = Node{b.min_x, b.min_y, b.max_x, b.max_y, node,
                         kNil,    nullptr, 0,       0,       static_cast<uint8_t>(n.depth + 1),
                         flags,   0};
  }
  n.child = c;
  return c;
}

uint32_t QuadTree::Descend(uint32_t from, double x, double y) const {
  uint32_t i = from;
  for (;;) {
    const Node& n = nodes_[i];
    if (n.child == kNil) return i;
    const uint32_t q = static_cast<uint32_t>(x >= Mid(n.min_x, n.max_x)) |
                       (static_cast<uint32_t>(y >= Mid(n.min_y, n.max_y)) << 1);
    i = n.child + q;
  }
}

void QuadTree::Append(uint32_t leaf, uint32_t row, double x, double y, double z, uint64_t id) {
  Node* n = &nodes_[leaf];
  if (n->count == Cap(*n)) {
    ResizeLeaf(leaf, static_cast<uint8_t>(n->cap_class + 1));
  }
  const uint32_t slot = n->count++;
  Entries(*n)[slot] = {x, y, z, id};
  Rows(*n)[slot] = row;
  SetRef(row, leaf, slot);
  if (n->count > kLeafSplit && n->depth < kMaxDepth) Split(leaf);
}

void QuadTree::Split(uint32_t leaf) {
  // Detach the entries, turn the leaf into an internal node, deal them out.
  Node old = nodes_[leaf];
  {
    Node& n = nodes_[leaf];
    n.data = nullptr;
    n.count = 0;
    n.cap_class = 0;
  }
  const uint32_t c = MakeChildren(leaf);
  const Node& n = nodes_[leaf];
  const double mx = Mid(n.min_x, n.max_x);
  const double my = Mid(n.min_y, n.max_y);
  const Entry* entries = Entries(old);
  const uint32_t* rows = Rows(old);
  auto quadrant = [&](uint32_t i) {
    return static_cast<uint32_t>(entries[i].x >= mx) |
           (static_cast<uint32_t>(entries[i].y >= my) << 1);
  };
  uint32_t cnt[4] = {0, 0, 0, 0};
  for (uint32_t i = 0; i < old.count; ++i) ++cnt[quadrant(i)];
  for (uint32_t q = 0; q < 4; ++q) {
    Node& ch = nodes_[c + q];
    ch.cap_class = ClassFor(cnt[q]);
    ch.data = AllocLeafData(ch.cap_class);
  }
  for (uint32_t i = 0; i < old.count; ++i) {
    const uint32_t q = quadrant(i);
    Node& ch = nodes_[c + q];
    const uint32_t s = ch.count++;
    CopyEntry(old, i, ch, s);
    SetRef(rows[i], c + q, s);
  }
  FreeLeafData(old.data, old.cap_class);
  for (uint32_t q = 0; q < 4; ++q) {
    const Node& ch = nodes_[c + q];
    if (ch.count > kLeafSplit && ch.depth < kMaxDepth) Split(c + q);
  }
}

void QuadTree::RemoveAt(uint32_t leaf, uint32_t slot) {
  Node& n = nodes_[leaf];
  assert(slot < n.count);
  const uint32_t last = n.count - 1;
  if (slot != last) {
    CopyEntry(n, last, n, slot);
    SetRef(Rows(n)[slot], leaf, slot);
  }
  n.count = last;
  // Shrink with hysteresis: only when the entries would fit two classes down.
  if (n.cap_class >= 2 && n.count <= kCapTable.cap[n.cap_class - 2]) {
    ResizeLeaf(leaf, static_cast<uint8_t>(n.cap_class - 1));
  }
}

void QuadTree::TryMerge(uint32_t leaf) {
  uint32_t p = nodes_[leaf].parent;
  while (p != kNil) {
    const uint32_t c = nodes_[p].child;
    uint32_t total = 0;
    for (uint32_t q = 0; q < 4; ++q) {
      const Node& ch = nodes_[c + q];
      if (ch.child != kNil) return;
      total += ch.count;
    }
    if (total > kLeafMerge) return;
    Node& pn = nodes_[p];
    pn.child = kNil;
    pn.cap_class = ClassFor(total);
    pn.data = AllocLeafData(pn.cap_class);
    pn.count = 0;
    for (uint32_t q = 0; q < 4; ++q) {
      Node& ch = nodes_[c + q];
      const uint32_t* rows = Rows(ch);
      for (uint32_t i = 0; i < ch.count; ++i) {
        const uint32_t s = pn.count++;
        CopyEntry(ch, i, pn, s);
        SetRef(rows[i], p, s);
      }
      FreeLeafData(ch.data, ch.cap_class);
      ch.data = nullptr;
      ch.count = 0;
      ch.cap_class = 0;
      ch.child = kNil;
      ch.parent = kNil;
    }
    free_groups_.push_back(c);
    p = pn.parent;
  }
}

// ---- Mutations --------------------------------------------------------------------------

void QuadTree::Insert(uint32_t row, double x, double y, double z, uint64_t id) {
  EnsureChunk(row);
  assert(!Contains(row));
  Append(Descend(0, x, y), row, x, y, z, id);
  ++size_;
}

void QuadTree::MoveSlow(uint32_t row, Loc loc, double x, double y, double z) {
  const uint32_t leaf = loc.leaf;
  const uint64_t id = Entries(nodes_[leaf])[loc.slot].id;
  RemoveAt(leaf, loc.slot);
  // Climb to the nearest ancestor holding the new position, descend from there.
  uint32_t a = nodes_[leaf].parent;
  while (a != kNil && !InBox(nodes_[a], x, y)) a = nodes_[a].parent;
  assert(a != kNil && "position outside the world");
  if (a == kNil) a = 0;
  Append(Descend(a, x, y), row, x, y, z, id);
  TryMerge(leaf);
}

void QuadTree::Remove(uint32_t row) {
  assert(Contains(row));
  const Loc loc = Locate(row);
  const uint32_t leaf = loc.leaf;
  RemoveAt(leaf, loc.slot);
  ClearRef(row);
  --size_;
  TryMerge(leaf);
}

void QuadTree::Rename(uint32_t from, uint32_t to) {
  assert(Contains(from));
  if (from == to) return;
  EnsureChunk(to);
  assert(!Contains(to));
  const Loc loc = Locate(from);
  Rows(nodes_[loc.leaf])[loc.slot] = to;
  ClearRef(from);
  SetRef(to, loc.leaf, loc.slot);
}

void QuadTree::BulkInsert(const uint32_t* rows, const double* xs, const double* ys,
                          const double* zs, const uint64_t* ids, size_t n) {
  if (n < 4 * size_t{kLeafSplit}) {
    for (size_t i = 0; i < n; ++i)
      Insert(rows[i], xs[i], ys[i], zs ? zs[i] : 0.0, ids ? ids[i] : uint64_t{0});
    return;
  }
  // Two buffers: each level scatters its range into the other one.
  std::unique_ptr<BulkEntry[]> buf(new BulkEntry[2 * n]);  // uninitialised
  Rect box{xs[0], ys[0], xs[0], ys[0]};
  for (size_t i = 0; i < n; ++i) {
    EnsureChunk(rows[i]);
    assert(!Contains(rows[i]));
    buf[i] = BulkEntry{xs[i], ys[i], zs ? zs[i] : 0.0, ids ? ids[i] : uint64_t{0}, rows[i], 0};
    box.min_x = std::min(box.min_x, xs[i]);
    box.max_x = std::max(box.max_x, xs[i]);
    box.min_y = std::min(box.min_y, ys[i]);
    box.max_y = std::max(box.max_y, ys[i]);
  }
  BulkBuild(0, buf.get(), buf.get() + n, n, &box);
  size_ += n;
  // Bulk loads usually size the tree for good: drop the pool's growth slack.
  if (nodes_.capacity() > nodes_.size() + nodes_.size() / 8) nodes_.shrink_to_fit();
}

// Adds e[0, m) under `node`; scratch[0, m) is free space. `box`, when not
// null, bounds the batch (lets the top levels skip partition passes).
void QuadTree::BulkBuild(uint32_t node, BulkEntry* e, BulkEntry* scratch, size_t m,
                         const Rect* box) {
  if (m == 0) return;
  std::vector<BulkEntry> merged;
  if (nodes_[node].child == kNil) {
    Node* n = &nodes_[node];
    if (n->count + m <= kLeafSplit || n->depth >= kMaxDepth) {
      const uint64_t need = n->count + m;
      if (need > Cap(*n)) ResizeLeaf(node, ClassFor(need));
      n = &nodes_[node];
      Entry* ne = Entries(*n);
      uint32_t* nr = Rows(*n);
      for (size_t i = 0; i < m; ++i) {
        const uint32_t s = n->count++;
        ne[s] = {e[i].x, e[i].y, e[i].z, e[i].id};
        nr[s] = e[i].row;
        // Every batch entry's ref is absent (new rows; merged ones were
        // cleared), so write without reading the old ref.
        if (node <= kRefMaxLeaf && s <= kRefMaxSlot) [[likely]] {
          RefAt(e[i].row) = (node << 8) | s;
        } else {
          SetRefSlow(e[i].row, node, s);
        }
      }
      return;
    }
    // Too many for one leaf: the leaf's own entries join the batch.
    if (n->count > 0) {
      const size_t total = n->count + m;
      merged.resize(2 * total);
      for (uint32_t i = 0; i < n->count; ++i) {
        const Entry& ei = Entries(*n)[i];
        merged[i] = {ei.x, ei.y, ei.z, ei.id, Rows(*n)[i], 0};
        ClearRef(Rows(*n)[i]);
      }
      std::copy(e, e + m, merged.begin() + n->count);
      e = merged.data();
      scratch = merged.data() + total;
      m = total;
      box = nullptr;
    }
    FreeLeafData(n->data, n->cap_class);
    n->data = nullptr;
    n->count = 0;
    n->cap_class = 0;
    MakeChildren(node);
  }
  const Node& n = nodes_[node];
  const double mx = Mid(n.min_x, n.max_x);
  const double my = Mid(n.min_y, n.max_y);
  const uint32_t c = n.child;
  if (box != nullptr) {
    // While the whole batch falls in one quadrant, skip the partition passes.
    // (Same comparisons as Descend; x >= mx is monotone in x.)
    const bool lx = box->min_x >= mx, hx = box->max_x >= mx;
    const bool ly = box->min_y >= my, hy = box->max_y >= my;
    if (lx == hx && ly == hy) {
      BulkBuild(c + (static_cast<uint32_t>(lx) | (static_cast<uint32_t>(ly) << 1)), e, scratch, m,
                box);
      return;
    }
  }
  // Branch-free counting scatter by quadrant (the same rule as Descend).
  size_t cnt[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < m; ++i) {
    const uint32_t q =
        static_cast<uint32_t>(e[i].x >= mx) | (static_cast<uint32_t>(e[i].y >= my) << 1);
    e[i].q = q;
    ++cnt[q];
  }
  size_t pos[4] = {0, cnt[0], cnt[0] + cnt[1], cnt[0] + cnt[1] + cnt[2]};
  const size_t start[4] = {pos[0], pos[1], pos[2], pos[3]};
  for (size_t i = 0; i < m; ++i) scratch[pos[e[i].q]++] = e[i];
  for (uint32_t q = 0; q < 4; ++q) {
    BulkBuild(c + q, scratch + start[q], e + start[q], cnt[q], nullptr);
  }
}

std::vector<QuadTree::Neighbor>& QuadTree::NearestScratch() {
  thread_local std::vector<Neighbor> scratch;
  return scratch;
}

// ---- Accounting and checks -------------------------------------------------------------

size_t QuadTree::MemoryBytes() const {
  return sizeof(*this) + nodes_.capacity() * sizeof(Node) +
         free_groups_.capacity() * sizeof(uint32_t) + leaf_bytes_ +
         chunks_.capacity() * sizeof(std::unique_ptr<Chunk>) + num_chunks_ * sizeof(Chunk) +
         overflow_.bucket_count() * sizeof(void*) + overflow_.size() * 32;
}

size_t QuadTree::LeafCount() const {
  size_t leaves = 0;
  std::vector<uint32_t> stack{0};
  while (!stack.empty()) {
    const Node& n = nodes_[stack.back()];
    stack.pop_back();
    if (n.child == kNil) {
      ++leaves;
    } else {
      for (uint32_t q = 0; q < 4; ++q) stack.push_back(n.child + q);
    }
  }
  return leaves;
}

size_t QuadTree::MaxDepth() const {
  size_t depth = 0;
  std::vector<uint32_t> stack{0};
  while (!stack.empty()) {
    const Node& n = nodes_[stack.back()];
    stack.pop_back();
    if (n.child == kNil) {
      depth = std::max<size_t>(depth, n.depth);
    } else {
      for (uint32_t q = 0; q < 4; ++q) stack.push_back(n.child + q);
    }
  }
  return depth;
}

std::string QuadTree::CheckInvariants() const {
  std::ostringstream err;
  const auto fail = [&err]() -> std::ostringstream& { return err; };
  const Node& root = nodes_[0];
  if (root.parent != kNil || root.depth != 0 || root.flags != (kClosedX | kClosedY) ||
      root.min_x != world_.min_x || root.min_y != world_.min_y || root.max_x != world_.max_x ||
      root.max_y != world_.max_y) {
    return "root box/parent/depth/flags wrong";
  }
  size_t entries = 0, reachable = 1, bytes = 0;
  std::vector<uint32_t> stack{0};
  while (!stack.empty() && err.tellp() == 0) {
    const uint32_t idx = stack.back();
    stack.pop_back();
    const Node& n = nodes_[idx];
    if (n.child == kNil) {
      const uint32_t cap = Cap(n);
      bytes += size_t{cap} * kEntryBytes;
      if (n.count > cap) fail() << "leaf " << idx << " count " << n.count << " > cap " << cap;
      if ((cap == 0) != (n.data == nullptr)) fail() << "leaf " << idx << " data/cap mismatch";
      if (n.depth < kMaxDepth && n.count > kLeafSplit)
        fail() << "leaf " << idx << " at depth " << int{n.depth} << " holds " << n.count;
      for (uint32_t i = 0; i < n.count && err.tellp() == 0; ++i) {
        const double x = Entries(n)[i].x, y = Entries(n)[i].y;
        const uint32_t row = Rows(n)[i];
        if (!InBox(n, x, y))
          fail() << "row " << row << " (" << x << "," << y << ") outside leaf " << idx;
        const uint32_t* r = FindRef(row);
        if (r == nullptr || *r == kRefAbsent || Locate(row).leaf != idx || Locate(row).slot != i) {
          fail() << "row map of row " << row << " does not point at leaf " << idx << " slot " << i;
        } else if ((*r == kRefEscaped) != (idx > kRefMaxLeaf || i > kRefMaxSlot)) {
          fail() << "row " << row << " escape marking wrong";
        }
      }
      entries += n.count;
      continue;
    }
    if (n.data != nullptr || n.count != 0) fail() << "internal node " << idx << " holds entries";
    if (n.child >= nodes_.size() || n.child + 4 > nodes_.size()) {
      fail() << "child index out of range at " << idx;
      break;
    }
    const double mx = Mid(n.min_x, n.max_x), my = Mid(n.min_y, n.max_y);
    uint32_t leaf_children = 0, total = 0;
    for (uint32_t q = 0; q < 4; ++q) {
      const Node& ch = nodes_[n.child + q];
      const bool right = (q & 1) != 0, top = (q & 2) != 0;
      const uint8_t flags = static_cast<uint8_t>((right ? (n.flags & kClosedX) : 0) |
                                                 (top ? (n.flags & kClosedY) : 0));
      if (ch.parent != idx || ch.depth != n.depth + 1 || ch.flags != flags ||
          ch.min_x != (right ? mx : n.min_x) || ch.max_x != (right ? n.max_x : mx) ||
          ch.min_y != (top ? my : n.min_y) || ch.max_y != (top ? n.max_y : my)) {
        fail() << "child " << n.child + q << " of " << idx << " has a wrong box/parent/depth/flags";
      }
      if (ch.child == kNil) {
        ++leaf_children;
        total += ch.count;
      }
      stack.push_back(n.child + q);
      ++reachable;
    }
    if (leaf_children == 4 && total <= kLeafMerge)
      fail() << "node " << idx << " has 4 leaf children holding " << total << " (should merge)";
  }
  if (err.tellp() != 0) return err.str();
  if (entries != size_) fail() << "leaves hold " << entries << " entries, size() is " << size_;
  if (bytes != leaf_bytes_) fail() << "leaf bytes " << bytes << " != accounted " << leaf_bytes_;
  if (reachable + 4 * free_groups_.size() != nodes_.size())
    fail() << "node pool: " << reachable << " reachable + " << free_groups_.size()
           << " free groups != " << nodes_.size();
  size_t present = 0, chunks = 0;
  for (const auto& ch : chunks_) {
    if (!ch) continue;
    ++chunks;
    for (const uint32_t r : ch->refs) present += r != kRefAbsent;
  }
  if (present != size_) fail() << "row map holds " << present << " rows, size() is " << size_;
  if (chunks != num_chunks_) fail() << "chunk count mismatch";
  for (const auto& [row, loc] : overflow_) {
    const uint32_t* r = FindRef(row);
    if (r == nullptr || *r != kRefEscaped || (loc.leaf <= kRefMaxLeaf && loc.slot <= kRefMaxSlot))
      fail() << "stale escaped ref for row " << row;
  }
  return err.str();
}

}  // namespace worlddb
