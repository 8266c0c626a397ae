// Shard: one partition of the world — a Table and a QuadTree per kind, and an
// IdMap — driven by exactly one thread.
//
// Writes are two-phase so that a batch spread over several shards is applied
// whole or not at all: Prepare() validates this shard's part of a batch
// against the shard's current state and changes nothing; the engine then calls
// Commit() (every shard's Prepare succeeded) or Abandon(). Between Prepare and
// Commit/Abandon the shard may answer queries (which see the state before the
// batch) but takes no other write.
//
// Thread safety: none. The engine gives each shard to one thread; tests and
// single-core benchmarks drive a Shard directly.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch_generated.h"
#include "engine/id_map.h"
#include "engine/query.h"
#include "engine/schema.h"
#include "engine/status.h"
#include "engine/table.h"
#include "index/quadtree.h"

namespace worlddb {

// Which operations of a WriteBatch belong to one shard: indices into each
// section, or every operation when `all` is set (a single-shard engine).
struct BatchPart {
  bool all = true;
  std::vector<uint32_t> upserts, moves, sets, deletes;
  void Clear();
};

// What a committed batch did.
struct WriteStats {
  uint64_t created = 0, replaced = 0, moved = 0, set = 0, deleted = 0;
  uint64_t delete_missing = 0;  // deletes of ids that did not exist (a no-op)
  WriteStats& operator+=(const WriteStats& o);
};

// Memory held by a shard's structures, in bytes (capacities, not sizes).
struct ShardMemory {
  size_t tables = 0, index = 0, id_map = 0;
  size_t total() const { return tables + index + id_map; }
};

class Shard {
 public:
  Shard(const Rect& world, std::shared_ptr<const Schema> schema);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  const Schema& schema() const { return *schema_; }
  const Rect& world() const { return world_; }
  size_t size() const { return id_map_.size(); }

  Status Prepare(const fb::WriteBatch& batch, const BatchPart& part);
  WriteStats Commit(const fb::WriteBatch& batch, const BatchPart& part);
  void Abandon() { ReleaseScratch(); }

  // Switches to `next`, replaying `change` on the tables. `next` must be the
  // schema this shard has plus exactly `change`.
  void ApplySchema(std::shared_ptr<const Schema> next, const SchemaChange& change);

  // Runs each of queries[0, n) whose valid[i] is Ok over this shard into
  // results[i], replacing what it held but keeping its vectors' capacity (a
  // result reused for the same projection allocates nothing); statuses[i]
  // gets its status and truncated[i] whether a limit stopped its scan early
  // (others keep their status; truncated is 0). For the engine's merge,
  // `distance` holds SQUARED distances here (the engine takes square roots
  // after merging). A query that shares kind, predicates and projection
  // with the one compiled before it (every query of a QueryBatch) reuses
  // that compilation.
  void RunMany(const Query* queries, const Status* valid, size_t n, QueryResult* results,
               Status* statuses, uint8_t* truncated) const;
  // Adds this shard's counts into `out`, which the caller sized nx * ny.
  Status Density(const DensityQuery& q, DensityResult* out) const;
  // Checks a query's arguments without running it (shape, k, radius, names).
  static Status CheckQuery(const Query& q);
  static Status CheckDensity(const DensityQuery& q);

  // Reads one entity (tests and tools). False if the id is absent.
  struct Entity {
    uint16_t kind;
    double x, y, z;
    std::vector<Value> columns;
  };
  bool Get(uint64_t id, Entity* out) const;
  // Appends the entities among ids[0, n) that exist (and are of `kind`, when
  // set) to `out` as rows, with the projected `columns`; found[i] says which.
  // Projected columns need a kind, as in queries.
  Status GetMany(const uint64_t* ids, size_t n, const std::string& kind,
                 const std::vector<std::string>& columns, QueryResult* out,
                 std::vector<uint8_t>* found) const;
  // Entities per kind id.
  std::vector<uint64_t> CountByKind() const;

  // Read access for snapshots: const and allocation-free, so a forked child
  // may walk a frozen shard. Kind ids are 0..kind_count()-1 (the schema's);
  // x and y of table row r are tree(kind).X(r) / Y(r).
  size_t kind_count() const { return kinds_.size(); }
  const Table& table(uint16_t kind) const;
  const QuadTree& tree(uint16_t kind) const;

  ShardMemory Memory() const;
  std::string CheckInvariants() const;

 private:
  struct KindStore;
  struct CompiledQuery;

  // True iff ValidatePosition would return Ok.
  bool PositionOk(double x, double y, double z) const {
    return std::isfinite(x) && std::isfinite(y) && std::isfinite(z) && world_.Contains(x, y);
  }
  Status ValidatePosition(const char* section, uint32_t index, uint64_t id, double x, double y,
                          double z) const;
  Status ValidateCells(const char* section, uint32_t index, uint64_t id, uint16_t kind,
                       const flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>* cells) const;
  void WriteCells(uint16_t kind, uint32_t row,
                  const flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>* cells);
  void RemoveEntity(uint16_t kind, uint32_t row);
  void ReleaseScratch();
  Status Compile(const std::string& kind, const std::vector<Predicate>& where,
                 const std::vector<std::string>& columns, CompiledQuery* cq) const;
  Status Compile(const Query& q, CompiledQuery* cq) const;
  void Run(const Query& q, const CompiledQuery& cq, QueryResult* out, bool* truncated) const;
  void SetProjection(const CompiledQuery& cq, QueryResult* out) const;

  Rect world_;
  std::shared_ptr<const Schema> schema_;
  std::vector<std::unique_ptr<KindStore>> kinds_;
  IdMap id_map_;

  // Prepare's findings, reused by Commit (valid only between the two).
  std::vector<uint64_t> move_locs_, set_locs_;
  std::vector<uint64_t> move_hashes_;  // HashId of each move's id, in part order
  std::vector<uint16_t> upsert_kinds_;
  // Duplicate-id detection within one batch: open addressing, cleared in O(1)
  // by bumping the generation.
  struct SeenSlot {
    uint64_t id;
    uint32_t generation;
    uint32_t op;  // section << 29 | index, to name the first occurrence
  };
  std::vector<SeenSlot> seen_;
  uint32_t seen_generation_ = 0;
};

}  // namespace worlddb
