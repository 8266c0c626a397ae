// RedisTarget: a LoadTarget on one hiredis connection to Redis (7.x) using
// its GEO commands the way a careful engineer would (pipelined, multi-member
// writes), so the comparison is with Redis at its best:
//   * keys "wl:player" and "wl:npc": one GEO sorted set per kind (the kind
//     filter is the key); member = decimal id; coordinates through RedisGeo
//     (tools/redis_geo.h, aoi.md §7);
//   * "wl:e:<id>": a hash of the entity's columns, written at load only when
//     the projection asks for columns;
//   * load: one multi-member GEOADD per kind per batch, plus one HSET per
//     entity (with columns); moves: one multi-member GEOADD per kind per batch;
//   * radius: GEOSEARCH key FROMLONLAT lon lat BYRADIUS R m (WITHCOORD when the
//     rows are checked), then, with a projection, one HMGET per member,
//     pipelined behind the GEOSEARCH reply;
//   * kNN: GEOSEARCH ... BYRADIUS r m ASC COUNT k, adaptive as aoi.md §7:
//     r starts at `knn_start_radius`, and an answer with fewer than k members
//     is re-issued with r doubled (counted in reissued()) until k come back or
//     r covers the world; exact up to geohash precision.
// The connection is hiredis' synchronous context switched to non-blocking
// (redisBufferWrite / redisBufferRead / redisGetReplyFromReader), so one
// thread drives several connections with poll(), as with WorldDB.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "tools/load_target.h"

struct redisContext;
struct redisReply;

namespace worlddb::load {

class RedisTarget : public LoadTarget {
 public:
  static Result<std::unique_ptr<LoadTarget>> Connect(const std::string& host, uint16_t port,
                                                     double knn_start_radius = 32);
  ~RedisTarget() override;
  double position_tolerance() const override;
  Status Prepare(bool flush) override;
  void SendLoad(std::span<const EntityInit> rows, bool with_columns, WriteDone done) override;
  void SendMoves(std::span<const Move> moves, WriteDone done) override;
  void SendAoi(const AoiQuery& q, bool want_rows, AoiDone done) override;
  Status Poll(int timeout_ms) override;
  int fd() const override;
  size_t in_flight() const override { return in_flight_; }
  bool wants_write() const override;
  uint64_t reissued() const override { return reissued_; }

 private:
  using ReplyHandler = std::function<void(const Status&, redisReply*)>;
  struct Logical;  // one logical request: its callback and outstanding commands
  struct Search;   // one area-of-interest query in progress

  RedisTarget(redisContext* c, double knn_start_radius);
  void Append(const std::vector<std::string>& argv, ReplyHandler on_reply);
  void AppendSearch(std::shared_ptr<Search> s);
  // One synchronous command (Prepare).
  Result<long long> CommandInteger(const std::vector<std::string>& argv);
  void Fail(const Status& s);

  redisContext* c_;
  double knn_start_radius_;
  std::deque<ReplyHandler> pending_;  // one per command, in order
  size_t in_flight_ = 0;
  uint64_t reissued_ = 0;
  Status broken_;
  std::vector<const char*> argv_;  // scratch for redisAppendCommandArgv
  std::vector<size_t> argvlen_;
};

}  // namespace worlddb::load
