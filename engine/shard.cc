#include "engine/shard.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>

#include "engine/constants.h"
#include "engine/utf8.h"

namespace worlddb {

struct Shard::KindStore {
  // The table reads z from the tree (the leaves hold it for queries).
  KindStore(const KindDef& def, const Rect& world) : table(def, &tree), tree(world) {}
  Table table;
  QuadTree tree;
};

namespace {

constexpr uint32_t kSectionUpsert = 0, kSectionMove = 1, kSectionSet = 2, kSectionDelete = 3;
const char* const kSectionNames[] = {"upserts", "moves", "sets", "deletes"};

std::string Num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// -0.0 becomes +0.0 (x + 0.0 does exactly that and nothing else). FlatBuffers
// omits a table field equal to its default and 0.0 == -0.0, so an upsert's
// -0.0 arrives as +0.0 while a move's (a struct) keeps its sign; storing the
// canonical zero makes the stored state the same whichever way it came.
double Canonical(double v) { return v + 0.0; }

std::string OpName(const char* section, uint32_t index, uint64_t id) {
  return std::string(section) + "[" + std::to_string(index) + "] (entity " + std::to_string(id) +
         ")";
}

template <class Fn>
void ForEachIndex(bool all, const std::vector<uint32_t>& indices, uint32_t total, Fn&& fn) {
  if (all) {
    for (uint32_t i = 0; i < total; ++i) fn(i);
  } else {
    for (uint32_t i : indices) fn(i);
  }
}

// Calls fn(k) for k in [0, n) until it returns false, and prefetch(k) kAhead
// steps earlier: the per-id hash lookups are independent cache misses, and
// issuing them ahead lets them overlap.
constexpr size_t kAhead = 16;
template <class Prefetch, class Fn>
bool ForEachAhead(size_t n, Prefetch&& prefetch, Fn&& fn) {
  for (size_t k = 0; k < std::min(n, kAhead); ++k) prefetch(k);
  for (size_t k = 0; k < n; ++k) {
    if (k + kAhead < n) prefetch(k + kAhead);
    if (!fn(k)) return false;
  }
  return true;
}

// Calls fn(index, id) for each operation of one section in this part, and
// prefetch(id) kAhead operations earlier.
template <class IdOf, class Prefetch, class Fn>
bool ForEachIdPrefetched(bool all, const std::vector<uint32_t>& indices, uint32_t total,
                         IdOf&& id_of, Prefetch&& prefetch, Fn&& fn) {
  auto index_at = [&](size_t k) { return all ? static_cast<uint32_t>(k) : indices[k]; };
  return ForEachAhead(
      all ? total : indices.size(), [&](size_t k) { prefetch(id_of(index_at(k))); },
      [&](size_t k) {
        const uint32_t i = index_at(k);
        return fn(i, id_of(i));
      });
}

template <class T>
uint32_t SizeOf(const flatbuffers::Vector<T>* v) {
  return v ? v->size() : 0;
}

}  // namespace

void BatchPart::Clear() {
  upserts.clear();
  moves.clear();
  sets.clear();
  deletes.clear();
}

WriteStats& WriteStats::operator+=(const WriteStats& o) {
  created += o.created;
  replaced += o.replaced;
  moved += o.moved;
  set += o.set;
  deleted += o.deleted;
  delete_missing += o.delete_missing;
  return *this;
}

Shard::Shard(const Rect& world, std::shared_ptr<const Schema> schema)
    : world_(world), schema_(std::move(schema)) {
  for (const KindDef& def : schema_->kinds())
    kinds_.push_back(std::make_unique<KindStore>(def, world_));
}

Shard::~Shard() = default;

const Table& Shard::table(uint16_t kind) const { return kinds_[kind]->table; }
const QuadTree& Shard::tree(uint16_t kind) const { return kinds_[kind]->tree; }

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

Status Shard::ValidatePosition(const char* section, uint32_t index, uint64_t id, double x, double y,
                               double z) const {
  const char* axis = nullptr;
  double bad = 0;
  if (!std::isfinite(x))
    axis = "x", bad = x;
  else if (!std::isfinite(y))
    axis = "y", bad = y;
  else if (!std::isfinite(z))
    axis = "z", bad = z;
  if (axis) {
    return Status::InvalidArgument(OpName(section, index, id) + ": " + axis + " = " + Num(bad) +
                                   " is not finite");
  }
  if (!world_.Contains(x, y)) {
    return Status::InvalidArgument(OpName(section, index, id) + ": position (" + Num(x) + ", " +
                                   Num(y) + ") is outside the world [" + Num(world_.min_x) + ", " +
                                   Num(world_.max_x) + "] x [" + Num(world_.min_y) + ", " +
                                   Num(world_.max_y) + "]");
  }
  return Status::Ok();
}

Status Shard::ValidateCells(const char* section, uint32_t index, uint64_t id, uint16_t kind,
                            const flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>* cells) const {
  if (!cells) return Status::Ok();
  const KindDef& def = schema_->kind(kind);
  uint64_t seen_small = 0;  // columns named so far (bitmap for the first 64)
  for (uint32_t c = 0; c < cells->size(); ++c) {
    const fb::Cell* cell = cells->Get(c);
    const std::string name = cell->column()->str();
    const std::string where = OpName(section, index, id) + " column '" + name + "'";
    const int col = schema_->FindColumn(kind, name);
    if (col == Schema::kNotFound) {
      return Status::NotFound(where + ": kind '" + def.name + "' has no such column");
    }
    const bool duplicate =
        col < 64 ? (seen_small >> col) & 1
                 : std::any_of(cells->begin(), cells->begin() + c,
                               [&](const fb::Cell* o) { return o->column()->str() == name; });
    if (duplicate) return Status::InvalidArgument(where + ": named twice in one operation");
    if (col < 64) seen_small |= uint64_t{1} << col;
    const ColumnDef& cd = def.columns[col];
    const ColumnType given = static_cast<ColumnType>(cell->type());
    if (given != cd.type) {
      const bool known = cell->type() <= fb::ColumnType_String;
      return Status::InvalidArgument(where + ": value of type " +
                                     (known ? ColumnTypeName(given) : "unknown") + " for a " +
                                     ColumnTypeName(cd.type) + " column");
    }
    switch (cd.type) {
      case ColumnType::kBool:
        if (cell->i() != 0 && cell->i() != 1) {
          return Status::InvalidArgument(where + ": bool must be 0 or 1, got " +
                                         std::to_string(cell->i()));
        }
        break;
      case ColumnType::kI32:
        if (cell->i() < INT32_MIN || cell->i() > INT32_MAX) {
          return Status::InvalidArgument(where + ": " + std::to_string(cell->i()) +
                                         " does not fit in i32");
        }
        break;
      case ColumnType::kI64:
        break;
      case ColumnType::kF32:
        if (!std::isfinite(cell->f()) || std::fabs(cell->f()) > std::numeric_limits<float>::max()) {
          return Status::InvalidArgument(where + ": " + Num(cell->f()) + " is not a finite f32");
        }
        break;
      case ColumnType::kF64:
        if (!std::isfinite(cell->f())) {
          return Status::InvalidArgument(where + ": " + Num(cell->f()) + " is not finite");
        }
        break;
      case ColumnType::kString: {
        const size_t len = cell->s() ? cell->s()->size() : 0;
        if (len > cd.max_length) {
          return Status::InvalidArgument(where + ": string of " + std::to_string(len) +
                                         " bytes exceeds max_length " +
                                         std::to_string(cd.max_length));
        }
        if (len && !IsValidUtf8(cell->s()->data(), len)) {
          return Status::InvalidArgument(where + ": string is not valid UTF-8");
        }
        break;
      }
    }
  }
  return Status::Ok();
}

Status Shard::Prepare(const fb::WriteBatch& b, const BatchPart& part) {
  const uint32_t n_up = SizeOf(b.upserts()), n_mv = SizeOf(b.moves()), n_set = SizeOf(b.sets()),
                 n_del = SizeOf(b.deletes());
  const size_t ops =
      part.all ? size_t{n_up} + n_mv + n_set + n_del
               : part.upserts.size() + part.moves.size() + part.sets.size() + part.deletes.size();
  // Duplicate ids: every id of this shard's part goes through `seen_`.
  // Sized for this batch: a table left large by a bulk load would turn every
  // later small batch's checks into cache misses.
  size_t cap = 64;
  while (cap < 2 * ops) cap <<= 1;
  if (seen_.size() < cap || seen_.size() > 4 * cap) {
    seen_.assign(cap, SeenSlot{0, 0, 0});
    seen_.shrink_to_fit();
    seen_generation_ = 0;
  }
  if (++seen_generation_ == 0) {  // wrapped: clear for real
    std::fill(seen_.begin(), seen_.end(), SeenSlot{0, 0, 0});
    seen_generation_ = 1;
  }
  const size_t mask = seen_.size() - 1;
  Status dup;
  auto check_dup = [&](uint32_t section, uint32_t index, uint64_t id, uint64_t hash) {
    size_t i = hash & mask;
    for (;;) {
      SeenSlot& s = seen_[i];
      if (s.generation != seen_generation_) {
        s = SeenSlot{id, seen_generation_, (section << 29) | index};
        return true;
      }
      if (s.id == id) {
        dup = Status::InvalidArgument("entity " + std::to_string(id) +
                                      " appears twice in one batch: " + kSectionNames[s.op >> 29] +
                                      "[" + std::to_string(s.op & ((1u << 29) - 1)) + "] and " +
                                      kSectionNames[section] + "[" + std::to_string(index) +
                                      "]; a batch may name an id once");
        return false;
      }
      i = (i + 1) & mask;
    }
  };

  // Pass 1: duplicate ids, over every section.
  auto seen_prefetch = [&](uint64_t id) { __builtin_prefetch(&seen_[HashId(id) & mask]); };
  auto upsert_id = [&](uint32_t i) { return b.upserts()->Get(i)->id(); };
  auto move_id = [&](uint32_t i) { return b.moves()->Get(i)->id(); };
  auto set_id = [&](uint32_t i) { return b.sets()->Get(i)->id(); };
  auto delete_id = [&](uint32_t i) { return b.deletes()->Get(i); };
  auto dup_in = [&](uint32_t section) {
    return [&, section](uint32_t i, uint64_t id) { return check_dup(section, i, id, HashId(id)); };
  };
  // Moves are most batches' bulk: each id is hashed once, here, for the
  // duplicate check, the id map's prefetch and its lookup below.
  move_hashes_.clear();
  ForEachIndex(part.all, part.moves, n_mv,
               [&](uint32_t i) { move_hashes_.push_back(HashId(move_id(i))); });
  auto move_index = [&](size_t k) { return part.all ? static_cast<uint32_t>(k) : part.moves[k]; };
  auto moves_dup_free = [&] {
    return ForEachAhead(
        move_hashes_.size(), [&](size_t k) { __builtin_prefetch(&seen_[move_hashes_[k] & mask]); },
        [&](size_t k) {
          const uint32_t i = move_index(k);
          return check_dup(kSectionMove, i, move_id(i), move_hashes_[k]);
        });
  };
  if (!ForEachIdPrefetched(part.all, part.upserts, n_up, upsert_id, seen_prefetch,
                           dup_in(kSectionUpsert)) ||
      !moves_dup_free() ||
      !ForEachIdPrefetched(part.all, part.sets, n_set, set_id, seen_prefetch,
                           dup_in(kSectionSet)) ||
      !ForEachIdPrefetched(part.all, part.deletes, n_del, delete_id, seen_prefetch,
                           dup_in(kSectionDelete))) {
    return dup;
  }

  // Pass 2: each operation against the schema and the shard's state.
  Status st;
  upsert_kinds_.clear();
  move_locs_.clear();
  set_locs_.clear();

  // Upserts: kind exists, position valid, cells valid for the kind.
  const flatbuffers::String* last_kind_name = nullptr;
  int last_kind = Schema::kNotFound;
  ForEachIndex(part.all, part.upserts, n_up, [&](uint32_t i) {
    if (!st.ok()) return;
    const fb::Upsert* u = b.upserts()->Get(i);
    const flatbuffers::String* kn = u->kind();
    if (!(last_kind_name && kn->size() == last_kind_name->size() &&
          std::memcmp(kn->data(), last_kind_name->data(), kn->size()) == 0)) {
      last_kind = schema_->FindKind(kn->string_view());
      last_kind_name = kn;
    }
    if (last_kind == Schema::kNotFound) {
      st = Status::NotFound(OpName("upserts", i, u->id()) + ": kind '" + kn->str() +
                            "' does not exist");
      return;
    }
    st = ValidatePosition("upserts", i, u->id(), u->x(), u->y(), u->z());
    if (st.ok())
      st = ValidateCells("upserts", i, u->id(), static_cast<uint16_t>(last_kind), u->cells());
    upsert_kinds_.push_back(static_cast<uint16_t>(last_kind));
  });
  if (!st.ok()) return st;

  // Moves: entity exists, position valid. Remember where it lives for Commit.
  ForEachAhead(
      move_hashes_.size(), [&](size_t k) { id_map_.PrefetchHashed(move_hashes_[k]); },
      [&](size_t k) {
        const uint32_t i = move_index(k);
        const fb::Move* m = b.moves()->Get(i);
        const uint64_t* loc = id_map_.FindHashed(m->id(), move_hashes_[k]);
        if (!loc) {
          st = Status::NotFound(OpName("moves", i, m->id()) + ": entity does not exist");
          return false;
        }
        move_locs_.push_back(*loc);
        // The common case inline; ValidatePosition (out of line) names what
        // is wrong.
        if (PositionOk(m->x(), m->y(), m->z())) [[likely]]
          return true;
        st = ValidatePosition("moves", i, m->id(), m->x(), m->y(), m->z());
        return st.ok();
      });
  if (!st.ok()) return st;

  auto map_prefetch = [&](uint64_t id) { id_map_.Prefetch(id); };

  // Sets: entity exists, cells valid for its kind.
  ForEachIdPrefetched(
      part.all, part.sets, n_set, set_id, map_prefetch, [&](uint32_t i, uint64_t id) {
        const uint64_t* loc = id_map_.Find(id);
        if (!loc) {
          st = Status::NotFound(OpName("sets", i, id) + ": entity does not exist");
          return false;
        }
        st = ValidateCells("sets", i, id, IdMap::Unpack(*loc).kind, b.sets()->Get(i)->cells());
        set_locs_.push_back(*loc);
        return st.ok();
      });
  // Deletes: only the duplicate rule (a missing id is a counted no-op).
  return st;
}

void Shard::WriteCells(uint16_t kind, uint32_t row,
                       const flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>* cells) {
  if (!cells) return;
  Table& t = kinds_[kind]->table;
  for (const fb::Cell* cell : *cells) {
    const int col = schema_->FindColumn(kind, cell->column()->string_view());
    Column& c = t.column(static_cast<size_t>(col));
    switch (c.type()) {
      case ColumnType::kBool:
        c.SetBool(row, cell->i() != 0);
        break;
      case ColumnType::kI32:
        c.SetI32(row, static_cast<int32_t>(cell->i()));
        break;
      case ColumnType::kI64:
        c.SetI64(row, cell->i());
        break;
      case ColumnType::kF32:
        c.SetF32(row, static_cast<float>(Canonical(cell->f())));
        break;
      case ColumnType::kF64:
        c.SetF64(row, Canonical(cell->f()));
        break;
      case ColumnType::kString:
        if (cell->s())
          c.SetString(row, cell->s()->data(), cell->s()->size());
        else
          c.SetString(row, "", 0);
        break;
    }
  }
}

void Shard::RemoveEntity(uint16_t kind, uint32_t row) {
  KindStore& ks = *kinds_[kind];
  id_map_.Erase(ks.table.id(row));
  ks.tree.Remove(row);
  const uint32_t moved = ks.table.Remove(row);
  if (moved != Table::kNoRow) {
    ks.tree.Rename(moved, row);
    *id_map_.Find(ks.table.id(row)) = IdMap::Pack({kind, row});
  }
}

void Shard::ReleaseScratch() {
  // Scratch sized for a huge batch (a bulk load) would otherwise stay for the
  // life of the shard; small batches keep theirs to avoid reallocating.
  constexpr size_t kKeepBytes = size_t{1} << 20;
  if (seen_.size() * sizeof(SeenSlot) > kKeepBytes) std::vector<SeenSlot>().swap(seen_);
  if (move_locs_.capacity() * sizeof(uint64_t) > kKeepBytes)
    std::vector<uint64_t>().swap(move_locs_);
  if (move_hashes_.capacity() * sizeof(uint64_t) > kKeepBytes)
    std::vector<uint64_t>().swap(move_hashes_);
  if (set_locs_.capacity() * sizeof(uint64_t) > kKeepBytes) std::vector<uint64_t>().swap(set_locs_);
  if (upsert_kinds_.capacity() * sizeof(uint16_t) > kKeepBytes)
    std::vector<uint16_t>().swap(upsert_kinds_);
}

WriteStats Shard::Commit(const fb::WriteBatch& b, const BatchPart& part) {
  WriteStats ws;
  const uint32_t n_up = SizeOf(b.upserts()), n_mv = SizeOf(b.moves()), n_set = SizeOf(b.sets()),
                 n_del = SizeOf(b.deletes());

  // Moves and sets first: their rows were looked up by Prepare and stay valid
  // until a delete or a kind-changing upsert renumbers rows below.
  // Three-stage prefetch, each stage reading what the one before loaded: the
  // row's ref in the tree's row map 3 * kAhead moves ahead, its leaf's node
  // 2 * kAhead ahead, its entry kAhead ahead. (Moves in row order find their
  // refs in sequence; in any other order each ref is a miss of its own.)
  size_t k = 0;
  enum Stage { kRef, kNode, kEntry };
  auto prefetch_move = [&](size_t at, Stage stage) {
    if (at >= move_locs_.size()) return;
    const IdMap::Location l = IdMap::Unpack(move_locs_[at]);
    const QuadTree& t = kinds_[l.kind]->tree;
    if (stage == kRef)
      t.PrefetchRef(l.row);
    else if (stage == kNode)
      t.PrefetchNode(l.row);
    else
      t.PrefetchEntry(l.row);
  };
  for (size_t a = 0; a < 3 * kAhead; ++a) prefetch_move(a, kRef);
  for (size_t a = 0; a < 2 * kAhead; ++a) prefetch_move(a, kNode);
  for (size_t a = 0; a < kAhead; ++a) prefetch_move(a, kEntry);
  ForEachIndex(part.all, part.moves, n_mv, [&](uint32_t i) {
    prefetch_move(k + 3 * kAhead, kRef);
    prefetch_move(k + 2 * kAhead, kNode);
    prefetch_move(k + kAhead, kEntry);
    const fb::Move* m = b.moves()->Get(i);
    const IdMap::Location loc = IdMap::Unpack(move_locs_[k++]);
    KindStore& ks = *kinds_[loc.kind];
    ks.tree.Move(loc.row, Canonical(m->x()), Canonical(m->y()), Canonical(m->z()));
  });
  ws.moved = k;
  k = 0;
  ForEachIndex(part.all, part.sets, n_set, [&](uint32_t i) {
    const IdMap::Location loc = IdMap::Unpack(set_locs_[k++]);
    WriteCells(loc.kind, loc.row, b.sets()->Get(i)->cells());
  });
  ws.set = k;

  ForEachIndex(part.all, part.deletes, n_del, [&](uint32_t i) {
    const uint64_t* loc = id_map_.Find(b.deletes()->Get(i));
    if (!loc) {
      ++ws.delete_missing;
      return;
    }
    const IdMap::Location l = IdMap::Unpack(*loc);
    RemoveEntity(l.kind, l.row);
    ++ws.deleted;
  });

  // Upserts in two passes: first replace existing entities (which may remove
  // rows), then create the new ones, whose index entries are bulk-inserted per
  // kind at the end.
  std::vector<uint32_t> creations;
  uint64_t recreated = 0;
  k = 0;
  auto upsert_id = [&](uint32_t i) { return b.upserts()->Get(i)->id(); };
  auto map_prefetch = [&](uint64_t id) { id_map_.Prefetch(id); };
  ForEachIdPrefetched(
      part.all, part.upserts, n_up, upsert_id, map_prefetch, [&](uint32_t i, uint64_t id) {
        const fb::Upsert* u = b.upserts()->Get(i);
        const uint16_t kind = upsert_kinds_[k++];
        uint64_t* loc = id_map_.Find(id);
        if (loc) {
          const IdMap::Location l = IdMap::Unpack(*loc);
          if (l.kind == kind) {
            KindStore& ks = *kinds_[kind];
            ks.tree.Move(l.row, Canonical(u->x()), Canonical(u->y()), Canonical(u->z()));
            ks.table.ResetColumns(l.row, schema_->kind(kind));
            WriteCells(kind, l.row, u->cells());
            ++ws.replaced;
            return true;
          }
          RemoveEntity(l.kind, l.row);  // the kind changed: re-created below
          ++ws.replaced;
          ++recreated;
        }
        creations.push_back(k - 1);
        return true;
      });
  ws.created = creations.size() - recreated;
  if (!creations.empty()) {
    id_map_.Reserve(id_map_.size() + creations.size());
    struct Pending {
      std::vector<uint32_t> rows;
      std::vector<double> xs, ys, zs;
      std::vector<uint64_t> ids;
    };
    std::vector<Pending> pending(kinds_.size());
    // The id map was reserved above, so prefetched slots stay where they are.
    ForEachIdPrefetched(
        false, creations, 0,
        [&](uint32_t pos) { return upsert_id(part.all ? pos : part.upserts[pos]); }, map_prefetch,
        [&](uint32_t pos, uint64_t) {
          const uint32_t i = part.all ? pos : part.upserts[pos];
          const fb::Upsert* u = b.upserts()->Get(i);
          const uint16_t kind = upsert_kinds_[pos];
          KindStore& ks = *kinds_[kind];
          const uint32_t row = ks.table.Append(u->id(), Canonical(u->z()), schema_->kind(kind));
          WriteCells(kind, row, u->cells());
          id_map_.Insert(u->id(), {kind, row});
          Pending& p = pending[kind];
          p.rows.push_back(row);
          p.xs.push_back(Canonical(u->x()));
          p.ys.push_back(Canonical(u->y()));
          p.zs.push_back(Canonical(u->z()));
          p.ids.push_back(u->id());
          return true;
        });
    for (size_t kind = 0; kind < pending.size(); ++kind) {
      const Pending& p = pending[kind];
      if (!p.rows.empty())
        kinds_[kind]->tree.BulkInsert(p.rows.data(), p.xs.data(), p.ys.data(), p.zs.data(),
                                      p.ids.data(), p.rows.size());
    }
  }
  ReleaseScratch();
  return ws;
}

void Shard::ApplySchema(std::shared_ptr<const Schema> next, const SchemaChange& change) {
  schema_ = std::move(next);
  const KindDef& def = schema_->kind(change.kind);
  if (change.type == SchemaChange::Type::kCreateKind) {
    kinds_.push_back(std::make_unique<KindStore>(def, world_));
  } else {
    kinds_[change.kind]->table.Alter(change.dropped, change.added, def);
  }
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

struct Shard::CompiledQuery {
  struct Pred {
    const Column* column;
    CompareOp op;
    Value value;
  };
  int kind = -1;  // -1: every kind
  std::vector<Pred> preds;
  std::vector<int> columns;

  template <class T>
  static bool Compare(CompareOp op, const T& a, const T& b) {
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
  bool Matches(uint32_t row) const {
    for (const Pred& p : preds) {
      bool ok = false;
      switch (p.column->type()) {
        case ColumnType::kBool:
          ok = Compare(p.op, p.column->GetBool(row), std::get<bool>(p.value));
          break;
        case ColumnType::kI32:
          ok = Compare(p.op, p.column->GetI32(row), std::get<int32_t>(p.value));
          break;
        case ColumnType::kI64:
          ok = Compare(p.op, p.column->GetI64(row), std::get<int64_t>(p.value));
          break;
        case ColumnType::kF32:
          ok = Compare(p.op, p.column->GetF32(row), std::get<float>(p.value));
          break;
        case ColumnType::kF64:
          ok = Compare(p.op, p.column->GetF64(row), std::get<double>(p.value));
          break;
        case ColumnType::kString:
          ok = Compare(p.op, p.column->GetString(row), std::get<std::string>(p.value));
          break;
      }
      if (!ok) return false;
    }
    return true;
  }
};

Status Shard::CheckQuery(const Query& q) {
  switch (q.shape) {
    case Shape::kCircle:
      if (!std::isfinite(q.x) || !std::isfinite(q.y)) {
        return Status::InvalidArgument("circle centre (" + Num(q.x) + ", " + Num(q.y) +
                                       ") is not finite");
      }
      if (!(q.radius >= 0) || !std::isfinite(q.radius)) {
        return Status::InvalidArgument("radius " + Num(q.radius) + " must be finite and >= 0");
      }
      break;
    case Shape::kRect:
      if (!std::isfinite(q.rect.min_x) || !std::isfinite(q.rect.min_y) ||
          !std::isfinite(q.rect.max_x) || !std::isfinite(q.rect.max_y)) {
        return Status::InvalidArgument("rectangle corners must be finite");
      }
      if (!q.rect.Valid()) {
        return Status::InvalidArgument("rectangle [" + Num(q.rect.min_x) + ", " +
                                       Num(q.rect.max_x) + "] x [" + Num(q.rect.min_y) + ", " +
                                       Num(q.rect.max_y) + "] is inverted (min > max)");
      }
      break;
    case Shape::kNearest:
      if (!std::isfinite(q.x) || !std::isfinite(q.y)) {
        return Status::InvalidArgument("kNN centre (" + Num(q.x) + ", " + Num(q.y) +
                                       ") is not finite");
      }
      if (q.k == 0) return Status::InvalidArgument("kNN needs k >= 1, got k = 0");
      if (q.k > kMaxK) {
        return Status::InvalidArgument("k = " + std::to_string(q.k) + " exceeds the limit " +
                                       std::to_string(kMaxK));
      }
      break;
    default:
      return Status::InvalidArgument("unknown query shape " +
                                     std::to_string(static_cast<int>(q.shape)));
  }
  if (q.where.size() > kMaxPredicates) {
    return Status::InvalidArgument(std::to_string(q.where.size()) +
                                   " predicates exceed the limit " +
                                   std::to_string(kMaxPredicates));
  }
  return Status::Ok();
}

Status Shard::CheckDensity(const DensityQuery& q) {
  const Rect& r = q.rect;
  if (!std::isfinite(r.min_x) || !std::isfinite(r.min_y) || !std::isfinite(r.max_x) ||
      !std::isfinite(r.max_y)) {
    return Status::InvalidArgument("density rectangle corners must be finite");
  }
  if (!(r.min_x < r.max_x) || !(r.min_y < r.max_y)) {
    return Status::InvalidArgument("density rectangle [" + Num(r.min_x) + ", " + Num(r.max_x) +
                                   "] x [" + Num(r.min_y) + ", " + Num(r.max_y) +
                                   "] must have min < max on both axes");
  }
  if (q.nx == 0 || q.ny == 0) {
    return Status::InvalidArgument("density grid " + std::to_string(q.nx) + " x " +
                                   std::to_string(q.ny) + " needs at least one cell per axis");
  }
  // A cell index is floor((x - min_x) * nx / width): with finite corners the
  // width, or the width times the cell count, can still overflow to inf, and
  // converting inf to an index is undefined (found by net_request_fuzzer).
  const double w = r.max_x - r.min_x, h = r.max_y - r.min_y;
  if (!std::isfinite(w * q.nx) || !std::isfinite(h * q.ny)) {
    return Status::InvalidArgument(
        "density rectangle too large: its width or height times the cell count overflows a "
        "double; ask for a smaller rectangle");
  }
  if (uint64_t{q.nx} * q.ny > kMaxDensityCells) {
    return Status::ResourceExhausted("density grid " + std::to_string(q.nx) + " x " +
                                     std::to_string(q.ny) + " has more than " +
                                     std::to_string(kMaxDensityCells) + " cells");
  }
  if (q.where.size() > kMaxPredicates) {
    return Status::InvalidArgument(std::to_string(q.where.size()) +
                                   " predicates exceed the limit " +
                                   std::to_string(kMaxPredicates));
  }
  return Status::Ok();
}

Status Shard::Compile(const std::string& kind, const std::vector<Predicate>& where,
                      const std::vector<std::string>& columns, CompiledQuery* cq) const {
  cq->kind = -1;
  cq->preds.clear();
  cq->columns.clear();
  if (!kind.empty()) {
    cq->kind = schema_->FindKind(kind);
    if (cq->kind == Schema::kNotFound)
      return Status::NotFound("kind '" + kind + "' does not exist");
  } else if (!where.empty() || !columns.empty()) {
    return Status::InvalidArgument(
        "predicates and projected columns name columns of one kind: set the query's kind");
  }
  for (const Predicate& p : where) {
    const int c = schema_->FindColumn(static_cast<uint16_t>(cq->kind), p.column);
    if (c == Schema::kNotFound) {
      return Status::NotFound("predicate: kind '" + kind + "' has no column '" + p.column + "'");
    }
    const ColumnType t = schema_->kind(static_cast<uint16_t>(cq->kind)).columns[c].type;
    if (TypeOf(p.value) != t) {
      return Status::InvalidArgument(
          "predicate on '" + p.column + "': value " + ValueToString(p.value) + " is " +
          ColumnTypeName(TypeOf(p.value)) + ", column is " + ColumnTypeName(t));
    }
    if (static_cast<int>(p.op) > static_cast<int>(CompareOp::kGe)) {
      return Status::InvalidArgument("predicate on '" + p.column + "': unknown operator");
    }
    cq->preds.push_back({&kinds_[cq->kind]->table.column(c), p.op, p.value});
  }
  for (const std::string& name : columns) {
    const int c = schema_->FindColumn(static_cast<uint16_t>(cq->kind), name);
    if (c == Schema::kNotFound) {
      return Status::NotFound("projection: kind '" + kind + "' has no column '" + name + "'");
    }
    cq->columns.push_back(c);
  }
  return Status::Ok();
}

namespace {

struct Hit {
  double d2;
  uint64_t id;
  uint32_t row;
  uint16_t kind;
  double x, y, z;
};

// One field of each hit, appended to `out`, two hits per step through plain
// registers. (GCC vectorizes a simple loop over this strided field through
// the stack, two 8-byte stores then one 16-byte load, a failed store forward
// per pair of hits: ~10 % of a 79-row radius query in perf.)
template <class T, T Hit::*Field>
void AppendField(const std::vector<Hit>& hits, std::vector<T>* out) {
  const size_t base = out->size(), n = hits.size();
  out->resize(base + n);
  T* dst = out->data() + base;
  const Hit* h = hits.data();
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const T a = h[i].*Field, b = h[i + 1].*Field;
    dst[i] = a;
    dst[i + 1] = b;
  }
  if (i < n) dst[i] = h[i].*Field;
}

// The column's values of the hits' rows, appended to `data`. Rows are in
// insertion order, unrelated to position, so each is likely a cache miss:
// one switch per column and a tight loop over independent loads lets the
// CPU keep many misses in flight (a per-row switch and push_back did not).
template <typename T, typename Get>
void Gather(const std::vector<Hit>& hits, Get get, std::vector<T>* out) {
  const size_t base = out->size();
  out->resize(base + hits.size());
  T* dst = out->data() + base;
  for (const Hit& h : hits) *dst++ = get(h.row);
}

void GatherColumn(const Column& c, const std::vector<Hit>& hits, ColumnData* data) {
  switch (c.type()) {
    case ColumnType::kBool:
      Gather(
          hits, [&](uint32_t r) { return static_cast<uint8_t>(c.GetBool(r)); },
          &std::get<0>(*data));
      break;
    case ColumnType::kI32:
      Gather(
          hits, [&](uint32_t r) { return c.GetI32(r); }, &std::get<1>(*data));
      break;
    case ColumnType::kI64:
      Gather(
          hits, [&](uint32_t r) { return c.GetI64(r); }, &std::get<2>(*data));
      break;
    case ColumnType::kF32:
      Gather(
          hits, [&](uint32_t r) { return c.GetF32(r); }, &std::get<3>(*data));
      break;
    case ColumnType::kF64:
      Gather(
          hits, [&](uint32_t r) { return c.GetF64(r); }, &std::get<4>(*data));
      break;
    case ColumnType::kString: {
      auto& v = std::get<5>(*data);
      v.reserve(v.size() + hits.size());
      for (const Hit& h : hits) v.push_back(c.GetString(h.row));
      break;
    }
  }
}

bool HitLess(const Hit& a, const Hit& b) { return a.d2 < b.d2 || (a.d2 == b.d2 && a.id < b.id); }

void AppendColumn(const Column& c, uint32_t row, ColumnData* data) {
  switch (c.type()) {
    case ColumnType::kBool:
      std::get<0>(*data).push_back(c.GetBool(row));
      break;
    case ColumnType::kI32:
      std::get<1>(*data).push_back(c.GetI32(row));
      break;
    case ColumnType::kI64:
      std::get<2>(*data).push_back(c.GetI64(row));
      break;
    case ColumnType::kF32:
      std::get<3>(*data).push_back(c.GetF32(row));
      break;
    case ColumnType::kF64:
      std::get<4>(*data).push_back(c.GetF64(row));
      break;
    case ColumnType::kString:
      std::get<5>(*data).push_back(c.GetString(row));
      break;
  }
}

ColumnData EmptyColumnData(ColumnType t) {
  switch (t) {
    case ColumnType::kBool:
      return std::vector<uint8_t>();
    case ColumnType::kI32:
      return std::vector<int32_t>();
    case ColumnType::kI64:
      return std::vector<int64_t>();
    case ColumnType::kF32:
      return std::vector<float>();
    case ColumnType::kF64:
      return std::vector<double>();
    case ColumnType::kString:
      return std::vector<std::string>();
  }
  return std::vector<uint8_t>();
}

}  // namespace

// out->columns: the projection's names and types, empty. A result reused for
// the same projection keeps its buffers (Engine::RunQueries hands the caller's
// results from one round to the next).
void Shard::SetProjection(const CompiledQuery& cq, QueryResult* out) const {
  if (cq.columns.empty()) {
    out->columns.clear();
    return;
  }
  const KindDef& def = schema_->kind(static_cast<uint16_t>(cq.kind));
  bool same = out->columns.size() == cq.columns.size();
  for (size_t i = 0; same && i < cq.columns.size(); ++i) {
    const ColumnDef& d = def.columns[cq.columns[i]];
    same = out->columns[i].type == d.type && out->columns[i].name == d.name;
  }
  if (same) return;  // emptied by ClearRows
  out->columns.clear();
  for (int c : cq.columns) {
    out->columns.push_back(
        {def.columns[c].name, def.columns[c].type, EmptyColumnData(def.columns[c].type)});
  }
}

Status Shard::Compile(const Query& q, CompiledQuery* cq) const {
  static const std::vector<std::string> kNoColumns;
  return Compile(q.kind, q.where, q.count_only ? kNoColumns : q.columns, cq);
}

namespace {
// True if a and b compile alike: same kind, predicates and projection.
bool SameSpec(const Query& a, const Query& b) {
  if (a.count_only != b.count_only || a.kind != b.kind || a.where.size() != b.where.size() ||
      (!a.count_only && a.columns != b.columns)) {
    return false;
  }
  for (size_t i = 0; i < a.where.size(); ++i) {
    const Predicate &p = a.where[i], &o = b.where[i];
    if (p.op != o.op || p.column != o.column || !(p.value == o.value)) return false;
  }
  return true;
}
}  // namespace

void Shard::RunMany(const Query* queries, const Status* valid, size_t n, QueryResult* results,
                    Status* statuses, uint8_t* truncated) const {
  // Compiling looks the kind and columns up by name; a QueryBatch's queries
  // share all of that, and for small answers the lookups were ~14 % of the
  // shard thread's samples (players' AOI, 1.8 rows).
  CompiledQuery cq;
  Status compiled;
  const Query* spec = nullptr;  // the query cq was compiled from
  for (size_t i = 0; i < n; ++i) {
    truncated[i] = 0;
    if (!valid[i].ok()) continue;
    const Query& q = queries[i];
    if (spec == nullptr || !SameSpec(q, *spec)) {
      compiled = Compile(q, &cq);
      spec = &q;
    }
    if (!compiled.ok()) {
      statuses[i] = compiled;
      continue;
    }
    bool tr = false;
    Run(q, cq, &results[i], &tr);
    statuses[i] = Status::Ok();
    truncated[i] = tr;
  }
}

void Shard::Run(const Query& q, const CompiledQuery& cq, QueryResult* out, bool* truncated) const {
  *truncated = false;
  out->ClearRows();
  SetProjection(cq, out);
  const bool with_distance = q.shape != Shape::kRect;
  const uint16_t first_kind = cq.kind < 0 ? 0 : static_cast<uint16_t>(cq.kind);
  const uint16_t end_kind =
      cq.kind < 0 ? static_cast<uint16_t>(kinds_.size()) : static_cast<uint16_t>(cq.kind + 1);

  if (q.count_only) {
    uint64_t n = 0;
    for (uint16_t kd = first_kind; kd < end_kind; ++kd) {
      const QuadTree& tree = kinds_[kd]->tree;
      auto count = [&](uint32_t row, double, double) {
        n += cq.Matches(row);
        return true;
      };
      // Without a filter the tree counts leaves covered whole from their
      // nodes, reading no entry.
      if (q.shape == Shape::kCircle && cq.preds.empty())
        n += tree.CountCircle(q.x, q.y, q.radius);
      else if (q.shape == Shape::kCircle)
        tree.VisitCircle(q.x, q.y, q.radius, count);
      else if (q.shape == Shape::kRect && cq.preds.empty())
        n += tree.CountRect(q.rect);
      else if (q.shape == Shape::kRect)
        tree.VisitRect(q.rect, count);
      else {
        std::vector<QuadTree::Neighbor> nn;
        tree.Nearest(
            q.x, q.y, q.k, [&](uint32_t row) { return cq.preds.empty() || cq.Matches(row); },
            QuadTree::StoredId{}, &nn);
        n += nn.size();
      }
    }
    if (q.shape == Shape::kNearest) n = std::min<uint64_t>(n, q.k);
    out->count += n;
    return;
  }

  // Gather hits from the trees alone: leaves hold x, y, z and the entity id
  // next to the row, so a query without projected columns or predicates
  // never touches the table (its rows are unrelated to position: reading id
  // and z there cost ~160 cache misses for an 80-row radius query).
  constexpr size_t kKeepHits = size_t{1} << 16;  // scratch kept between queries
  thread_local std::vector<Hit> scratch;
  std::vector<Hit>& hits = scratch;
  if (hits.capacity() > kKeepHits) std::vector<Hit>().swap(hits);  // after a huge query
  hits.clear();
  const uint64_t limit = q.limit == 0 ? UINT64_MAX : q.limit;
  const bool ordered =
      q.shape == Shape::kNearest || (q.shape == Shape::kCircle && q.order_by_distance);
  for (uint16_t kd = first_kind; kd < end_kind && !*truncated; ++kd) {
    const KindStore& ks = *kinds_[kd];
    if (q.shape == Shape::kNearest) {
      thread_local std::vector<QuadTree::Neighbor> nn;
      ks.tree.Nearest(
          q.x, q.y, q.k, [&](uint32_t row) { return cq.preds.empty() || cq.Matches(row); },
          QuadTree::StoredId{}, &nn);
      for (const auto& n : nn) hits.push_back({n.d2, n.key, n.row, kd, n.x, n.y, n.z});
      continue;
    }
    auto visit = [&](uint32_t row, double x, double y, double z, uint64_t id) {
      if (!cq.preds.empty() && !cq.Matches(row)) return true;
      hits.push_back({with_distance ? SquaredDistance(x, y, q.x, q.y) : 0.0, id, row, kd, x, y, z});
      if (!ordered && hits.size() >= limit) {
        *truncated = true;
        return false;
      }
      return true;
    };
    if (q.shape == Shape::kCircle)
      ks.tree.VisitCircle(q.x, q.y, q.radius, visit);
    else
      ks.tree.VisitRect(q.rect, visit);
  }
  if (ordered) {
    const uint64_t keep = std::min<uint64_t>(
        q.shape == Shape::kNearest ? std::min<uint64_t>(q.k, limit) : limit, hits.size());
    if (q.shape == Shape::kCircle)
      out->count += hits.size();
    else
      out->count += keep;
    std::partial_sort(hits.begin(), hits.begin() + static_cast<ptrdiff_t>(keep), hits.end(),
                      HitLess);
    if (keep < hits.size()) *truncated = q.shape == Shape::kCircle;
    hits.resize(keep);
  } else {
    out->count += hits.size();
  }

  AppendField<uint64_t, &Hit::id>(hits, &out->ids);
  AppendField<uint16_t, &Hit::kind>(hits, &out->kinds);
  AppendField<double, &Hit::x>(hits, &out->x);
  AppendField<double, &Hit::y>(hits, &out->y);
  AppendField<double, &Hit::z>(hits, &out->z);
  if (with_distance) AppendField<double, &Hit::d2>(hits, &out->distance);
  if (!cq.columns.empty()) {
    const Table& t = kinds_[cq.kind]->table;
    for (size_t i = 0; i < cq.columns.size(); ++i) {
      const Column& c = t.column(cq.columns[i]);
      GatherColumn(c, hits, &out->columns[i].data);
    }
  }
}

Status Shard::Density(const DensityQuery& q, DensityResult* out) const {
  CompiledQuery cq;
  WORLDDB_RETURN_IF_ERROR(Compile(q.kind, q.where, {}, &cq));
  const uint16_t first_kind = cq.kind < 0 ? 0 : static_cast<uint16_t>(cq.kind);
  const uint16_t end_kind =
      cq.kind < 0 ? static_cast<uint16_t>(kinds_.size()) : static_cast<uint16_t>(cq.kind + 1);
  uint64_t* counts = out->counts.data();
  uint64_t total = 0;
  for (uint16_t kd = first_kind; kd < end_kind; ++kd) {
    const QuadTree& tree = kinds_[kd]->tree;
    if (cq.preds.empty()) {
      total += tree.CountGrid(q.rect, q.nx, q.ny, counts);
    } else {
      total +=
          tree.CountGrid(q.rect, q.nx, q.ny, counts, [&](uint32_t row) { return cq.Matches(row); });
    }
  }
  out->total += total;
  return Status::Ok();
}

bool Shard::Get(uint64_t id, Entity* out) const {
  const uint64_t* loc = id_map_.Find(id);
  if (!loc) return false;
  const IdMap::Location l = IdMap::Unpack(*loc);
  const KindStore& ks = *kinds_[l.kind];
  out->kind = l.kind;
  out->x = ks.tree.X(l.row);
  out->y = ks.tree.Y(l.row);
  out->z = ks.tree.Z(l.row);
  out->columns.clear();
  for (size_t c = 0; c < ks.table.column_count(); ++c)
    out->columns.push_back(ks.table.column(c).Get(l.row));
  return true;
}

Status Shard::GetMany(const uint64_t* ids, size_t n, const std::string& kind,
                      const std::vector<std::string>& columns, QueryResult* out,
                      std::vector<uint8_t>* found) const {
  CompiledQuery cq;
  WORLDDB_RETURN_IF_ERROR(Compile(kind, {}, columns, &cq));
  if (!cq.columns.empty() && out->columns.size() != cq.columns.size()) {
    const KindDef& def = schema_->kind(static_cast<uint16_t>(cq.kind));
    out->columns.clear();
    for (int c : cq.columns) {
      out->columns.push_back(
          {def.columns[c].name, def.columns[c].type, EmptyColumnData(def.columns[c].type)});
    }
  }
  found->assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t* loc = id_map_.Find(ids[i]);
    if (!loc) continue;
    const IdMap::Location l = IdMap::Unpack(*loc);
    if (cq.kind >= 0 && l.kind != cq.kind) continue;
    const KindStore& ks = *kinds_[l.kind];
    (*found)[i] = 1;
    out->ids.push_back(ids[i]);
    out->kinds.push_back(l.kind);
    out->x.push_back(ks.tree.X(l.row));
    out->y.push_back(ks.tree.Y(l.row));
    out->z.push_back(ks.tree.Z(l.row));
    for (size_t c = 0; c < cq.columns.size(); ++c) {
      AppendColumn(ks.table.column(cq.columns[c]), l.row, &out->columns[c].data);
    }
  }
  out->count = out->ids.size();
  return Status::Ok();
}

std::vector<uint64_t> Shard::CountByKind() const {
  std::vector<uint64_t> counts;
  for (const auto& ks : kinds_) counts.push_back(ks->table.size());
  return counts;
}

ShardMemory Shard::Memory() const {
  ShardMemory m;
  for (const auto& ks : kinds_) {
    m.tables += ks->table.MemoryBytes();
    m.index += ks->tree.MemoryBytes();
  }
  m.id_map = id_map_.MemoryBytes();
  return m;
}

std::string Shard::CheckInvariants() const {
  size_t rows = 0;
  for (size_t kd = 0; kd < kinds_.size(); ++kd) {
    const KindStore& ks = *kinds_[kd];
    std::string e = ks.tree.CheckInvariants();
    if (!e.empty()) return "kind " + std::to_string(kd) + " index: " + e;
    if (ks.tree.size() != ks.table.size())
      return "kind " + std::to_string(kd) + ": index and table sizes differ";
    for (uint32_t r = 0; r < ks.table.size(); ++r) {
      const uint64_t* loc = id_map_.Find(ks.table.id(r));
      if (!loc || IdMap::Unpack(*loc).kind != kd || IdMap::Unpack(*loc).row != r) {
        return "kind " + std::to_string(kd) + " row " + std::to_string(r) + ": id map disagrees";
      }
      if (!ks.tree.Contains(r))
        return "kind " + std::to_string(kd) + " row " + std::to_string(r) + ": not indexed";
      if (ks.tree.Id(r) != ks.table.id(r)) {
        return "kind " + std::to_string(kd) + " row " + std::to_string(r) +
               ": the index's copy of the id disagrees with the table";
      }
    }
    rows += ks.table.size();
  }
  if (rows != id_map_.size())
    return "id map holds " + std::to_string(id_map_.size()) + " ids for " + std::to_string(rows) +
           " rows";
  return "";
}

}  // namespace worlddb
