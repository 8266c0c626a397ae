// LoadTarget: one zone server's connection to the system under test, as
// worldload (tools/worldload.h) drives it. Two implementations: WorldDbTarget
// (the worlddb server through net::Client) and RedisTarget (Redis GEO through
// hiredis). Both are pipelined and non-blocking: Send*() queues a logical
// request and returns; its callback runs inside Poll() on the caller's thread.
//
// Contract
//   * Requests on one target are executed by the server in the order they were
//     sent, and their callbacks run in that order; a query sees every write
//     sent before it on the same target.
//   * A logical request may be several server commands (Redis: a move batch is
//     one GEOADD per kind, an area-of-interest query with a projection is a
//     GEOSEARCH followed by one HMGET per member); in_flight() counts logical
//     requests, the callback runs once, after the last of them.
//   * Errors are Status values; a broken connection fails every pending request.
//   * Entities have a kind (kKindNames) and the columns kColumnNames, the same
//     for both kinds; results carry projected cells as text (ColumnText), so the
//     model check compares one representation for both systems.
//
// Thread safety: none; one thread per target.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/status.h"

namespace worlddb::load {

inline constexpr const char* kKindNames[2] = {"player", "npc"};
inline constexpr int kPlayer = 0, kNpc = 1;
inline constexpr const char* kColumnNames[4] = {"hp", "level", "speed", "name"};

// One entity as loaded. name is derived from id and kind (EntityName).
struct EntityInit {
  uint64_t id = 0;
  int kind = kNpc;
  double x = 0, y = 0;
  int32_t hp = 0, level = 0;
  float speed = 0;  // metres per second
};
std::string EntityName(uint64_t id, int kind);
// The text form of a column value (ints in decimal, the f32 with 9 significant
// digits, which round-trips, strings as they are).
std::string ColumnText(const EntityInit& e, int column);
// Index of a column name in kColumnNames, or -1.
int ColumnIndex(const std::string& name);

struct Move {
  uint64_t id = 0;
  int kind = kNpc;
  double x = 0, y = 0;
};

// One area-of-interest query: a circle (k == 0) or the k nearest (k > 0),
// always narrowed to one kind, with a projection (indices into kColumnNames).
struct AoiQuery {
  double x = 0, y = 0;
  double radius = 0;
  uint32_t k = 0;
  int kind = kPlayer;
  std::vector<int> columns;
};

// Rows of an answer, filled only when the caller asks (result checks).
struct AoiRows {
  std::vector<uint64_t> ids;
  std::vector<double> x, y;
  std::vector<std::vector<std::string>> cells;  // [projected column][row]
};

using WriteDone = std::function<void(const Status&)>;
// rows: the number of rows returned; `out` is non-null when rows were asked for.
using AoiDone = std::function<void(const Status&, uint64_t rows, AoiRows* out)>;

class LoadTarget {
 public:
  virtual ~LoadTarget() = default;
  // What a result may differ from the exact planar answer by, in metres
  // (0 for WorldDB; Redis' geohash precision, see tools/redis_geo.h).
  virtual double position_tolerance() const = 0;
  // Prepares an empty world (kinds, keys), synchronously. With `flush` an
  // existing world is cleared first; without it a non-empty one is an error.
  virtual Status Prepare(bool flush) = 0;
  // with_columns: the projection reads columns (Redis writes hashes only then).
  virtual void SendLoad(std::span<const EntityInit> rows, bool with_columns, WriteDone done) = 0;
  virtual void SendMoves(std::span<const Move> moves, WriteDone done) = 0;
  virtual void SendAoi(const AoiQuery& q, bool want_rows, AoiDone done) = 0;
  // Writes what is queued and runs the callbacks of the replies that arrived,
  // waiting up to timeout_ms (0: not at all) for the first.
  virtual Status Poll(int timeout_ms) = 0;
  virtual int fd() const = 0;
  virtual size_t in_flight() const = 0;
  virtual bool wants_write() const = 0;
  // Extra server commands issued beyond one per logical request (Redis kNN
  // re-issues with a doubled radius); 0 for WorldDB.
  virtual uint64_t reissued() const { return 0; }
};

// "worlddb://HOST:PORT" (or HOST:PORT) or "redis://HOST:PORT". knn_start_radius:
// Redis' first kNN radius; aoi_batch: WorldDB's queries per QueryBatch
// (tools/worlddb_target.h; Redis sends one command per query regardless).
Result<std::unique_ptr<LoadTarget>> ConnectTarget(const std::string& url, const std::string& token,
                                                  double knn_start_radius, size_t aoi_batch);

}  // namespace worlddb::load
