// WorldLoad: the zone-server simulation behind `worldload` (docs/worldload.md).
//
// Z zone servers, each one LoadTarget connection, own contiguous id slices of
// N entities (ids 1..N; P of them, spread evenly over the ids, are players,
// the rest NPCs) placed as aoi.md §3 places them (uniform or clustered). Each
// tick every zone server sends the moves of its entities (each moves with
// probability move_fraction, a random-walk step of speed / tick_rate metres in
// a uniformly random direction of 4,096 evenly spaced ones, clamped to the world) in batches, then
// one area-of-interest query per player it owns: a circle of `radius` (or the k nearest) around the
// player, narrowed to one kind, projecting some columns.
//
// Modes
//   * fixed rate (open loop): tick t starts at t / tick_rate seconds whether or
//     not earlier requests came back; its moves are sent at the tick's start
//     and its queries spread evenly over the tick. Latency is measured from
//     the scheduled time, so a server that falls behind shows it as latency
//     (no coordinated omission). A zone server that still has max_ticks_behind
//     ticks unanswered skips the tick (counted as missed).
//   * max throughput (closed loop): ticks run back to back in lock step, each
//     in two phases timed separately (all zones' moves, then all zones'
//     queries), with write_in_flight move batches or in_flight queries
//     outstanding per connection; latency is measured from the send.
//
// Result checks: worldload knows every position it wrote. A sampled fraction
// of the queries asks for rows and compares them with its model: the rows
// that must be there, those that must not, each row's position and projected
// cells. A query is compared with the state the server must have had: for its
// own zone the moves sent before it (same connection, executed in order), for
// other zones anything between the moves acknowledged when it was sent and
// the moves sent when its answer arrived; an entity whose possible positions
// straddle the circle may be either way. In max-throughput mode every move is
// acknowledged before any query, so the comparison is exact (WorldDB: bit for
// bit; Redis: up to its geohash precision, tools/redis_geo.h).
//
// Thread safety: none; Run() uses the calling thread only (the client and the
// server share the machine: one core each).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/status.h"
#include "tools/aoi_workload.h"
#include "tools/latency_histogram.h"
#include "tools/load_target.h"

namespace worlddb::load {

struct WorldLoadOptions {
  std::string target = "worlddb://127.0.0.1:7878";
  std::string token;
  size_t entities = 1000000;
  size_t zones = 4;
  size_t players = 10000;
  double radius = 50;     // metres
  double tick_rate = 10;  // ticks per second (fixed-rate mode)
  aoi::Distribution dist = aoi::Distribution::kUniform;
  bool max_throughput = false;
  double duration_s = 10;  // run length when ticks == 0
  uint64_t ticks = 0;
  size_t batch = 1000;  // moves (and load upserts) per write request
  // WorldDB: up to this many consecutive area-of-interest queries of a zone
  // go out as one QueryBatch request (1: one QueryRequest per query).
  size_t aoi_batch = 256;
  size_t in_flight = 1024;      // max-throughput mode: queries per connection
  size_t write_in_flight = 8;   // max-throughput mode: move batches per connection
  size_t load_in_flight = 8;    // write requests per connection during the load
  size_t max_ticks_behind = 2;  // fixed-rate mode
  double move_fraction = 1.0;   // chance that an entity moves in a tick
  double player_speed = 5.0;    // m/s, players: uniform in [speed / 2, speed)
  double npc_speed = 1.5;       // m/s, NPCs: uniform in [0, speed)
  int aoi_kind = kPlayer;
  std::vector<int> columns = {0, 1};  // indices into kColumnNames
  uint32_t knn = 0;                   // 0: radius queries; k: k-nearest queries
  double knn_start_radius = 32;       // Redis kNN: first radius (aoi.md §7)
  double check_fraction = 0.01;       // queries compared with the model
  double check_budget = 0.05;         // at most this share of the run spent checking
  uint64_t seed = 1;                  // the walk, speeds, samples (positions: aoi.md)
  bool flush = false;                 // Redis: FLUSHDB first
  bool progress = true;               // one line per second on stderr
  // Test hook: after the load, the model believes every Nth entity of the
  // queried kind sits 3 radii east of where it was written (0: off).
  uint64_t corrupt_model_every = 0;
};

// One operation's figures.
struct OpReport {
  uint64_t requests = 0;  // write requests (batches) or queries
  uint64_t items = 0;     // entities moved, or rows returned
  double seconds = 0;     // time the rate is over
  LatencyHistogram latency;
  double rate() const { return seconds > 0 ? double(items) / seconds : 0; }
  double request_rate() const { return seconds > 0 ? double(requests) / seconds : 0; }
};

// One second of the run.
struct TimelinePoint {
  double t = 0;  // seconds since the run started (end of the interval)
  double ticks_per_s = 0, writes_per_s = 0, queries_per_s = 0;
  double aoi_p50_ms = 0, aoi_p99_ms = 0, move_p99_ms = 0;
};

struct WorldLoadReport {
  WorldLoadOptions options;
  std::string target_kind;  // "worlddb" or "redis"
  uint64_t loaded = 0;
  double load_seconds = 0;
  OpReport moves, aoi;
  double run_seconds = 0;
  uint64_t ticks_scheduled = 0;  // per zone server
  uint64_t zone_ticks_completed = 0, zone_ticks_missed = 0;
  uint64_t errors = 0;
  std::vector<std::string> error_samples;
  uint64_t checks = 0, checks_failed = 0;
  std::vector<std::string> mismatch_samples;
  uint64_t reissued = 0;
  std::vector<TimelinePoint> timeline;

  double ticks_per_s() const {
    return run_seconds > 0 ? double(zone_ticks_completed) / double(options.zones) / run_seconds : 0;
  }
  std::string Text() const;
  std::string Json() const;
};

class WorldLoad {
 public:
  explicit WorldLoad(WorldLoadOptions options);
  ~WorldLoad();
  // Connects, loads the world, runs the ticks, returns the report. Fails only
  // when the run cannot go on (connection lost, the load refused); request
  // errors and mismatches are counted in the report.
  Result<WorldLoadReport> Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace worlddb::load
