#include "tools/worldload.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <numbers>
#include <unordered_map>

#include "index/geometry.h"
#include "tools/redis_target.h"
#include "tools/worlddb_target.h"

namespace worlddb::load {

// ---- Entities and targets ----

std::string EntityName(uint64_t id, int kind) {
  return (kind == kPlayer ? "player-" : "npc-") + std::to_string(id);
}

std::string ColumnText(const EntityInit& e, int column) {
  char buf[32];
  switch (column) {
    case 0:
      return std::to_string(e.hp);
    case 1:
      return std::to_string(e.level);
    case 2:
      std::snprintf(buf, sizeof buf, "%.9g", double(e.speed));
      return buf;
    default:
      return EntityName(e.id, e.kind);
  }
}

int ColumnIndex(const std::string& name) {
  for (int c = 0; c < 4; ++c)
    if (name == kColumnNames[c]) return c;
  return -1;
}

Result<std::unique_ptr<LoadTarget>> ConnectTarget(const std::string& url, const std::string& token,
                                                  double knn_start_radius, size_t aoi_batch) {
  std::string rest = url;
  bool redis = false;
  if (rest.rfind("redis://", 0) == 0) {
    redis = true;
    rest = rest.substr(8);
  } else if (rest.rfind("worlddb://", 0) == 0) {
    rest = rest.substr(10);
  }
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
    return Status::InvalidArgument("target \"" + url +
                                   "\": expected worlddb://HOST:PORT or redis://HOST:PORT");
  const std::string host = rest.substr(0, colon);
  char* end = nullptr;
  const unsigned long port = std::strtoul(rest.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port == 0 || port > 65535)
    return Status::InvalidArgument("target \"" + url + "\": bad port");
  if (redis) return RedisTarget::Connect(host, static_cast<uint16_t>(port), knn_start_radius);
  return WorldDbTarget::Connect(host, static_cast<uint16_t>(port), token, aoi_batch);
}

// ---- The simulation ----

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kTwoPi = 2.0 * std::numbers::pi;

// A step's direction is one of kDirectionCount evenly spaced directions,
// drawn uniformly: a table lookup instead of a sin and cos per step, which
// took 28 % of the load generator's time in the move phase (it shares the
// machine with the server under test).
constexpr size_t kDirectionCount = 4096;
struct Direction {
  double dx, dy;
};
const std::array<Direction, kDirectionCount> kDirections = [] {
  std::array<Direction, kDirectionCount> t{};
  for (size_t k = 0; k < kDirectionCount; ++k) {
    const double a = kTwoPi * double(k) / double(kDirectionCount);
    t[k] = {std::cos(a), std::sin(a)};
  }
  return t;
}();
constexpr size_t kMaxSamples = 10;

// The entities passed over before the next mover when each moves with
// probability p < 1 on its own: geometric, P(k) = (1 - p)^k p. One draw per
// mover instead of one per entity, which at --move-fraction 0.01 was ~17 %
// of the machine in query-heavy runs. p = 0: no entity ever moves.
size_t GeometricSkip(aoi::SplitMix64& rng, double p) {
  if (!(p > 0)) return SIZE_MAX;
  // U in [0, 1), so 1 - U in (0, 1] and its log is finite.
  const double k = std::floor(std::log1p(-rng.U()) / std::log1p(-p));
  return k < 1e18 ? static_cast<size_t>(k) : SIZE_MAX;
}

uint64_t Nanos(Clock::time_point from, Clock::time_point to) {
  return to > from ? static_cast<uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count())
                   : 0;
}
double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

struct WorldLoad::Impl {
  // One zone server: its connection, its entities, its progress.
  struct Zone {
    std::unique_ptr<LoadTarget> conn;
    size_t begin = 0, end = 0;      // entity indices (id - 1) it owns
    std::vector<uint32_t> players;  // indices of its players
    aoi::SplitMix64 rng{0};
    // With a move fraction under 1, the entities to pass over before the
    // next mover (GeometricSkip). It carries over from one tick into the
    // next: a Bernoulli process is memoryless.
    size_t skip = 0;
    // Move rounds (one per tick it did not miss): sent = moves of rounds
    // 1..sent are (being) sent; acked = every batch of rounds 1..acked came back.
    uint64_t rounds_sent = 0, rounds_acked = 0;
    struct Round {
      uint64_t round;
      size_t outstanding;  // batches not answered yet
      bool closed;         // every batch of the round was sent
    };
    std::deque<Round> rounds;  // not yet acknowledged, oldest first
    // Fixed-rate mode: ticks started and not yet answered, oldest first.
    struct Tick {
      uint64_t tick;
      size_t outstanding;
    };
    std::deque<Tick> open_ticks;
    struct QueryJob {
      uint64_t tick;
      uint32_t player;
      Clock::time_point at;
    };
    std::deque<QueryJob> queries;  // scheduled, not yet sent
  };

  // What a sampled query is compared against (see worldload.h).
  struct CheckContext {
    size_t zone;
    AoiQuery q;
    std::vector<uint64_t> base;  // per zone: rounds certainly applied when it ran
  };

  WorldLoadOptions o;
  WorldLoadReport report;
  std::vector<Zone> zones;
  // The model: what worldload wrote, indexed id - 1.
  std::vector<double> x, y;
  std::vector<float> speed;
  std::vector<uint8_t> kind, zone_of;
  std::vector<uint32_t> members[2];  // indices of each kind
  double step_scale = 0;             // seconds per tick: a step is speed * step_scale
  std::vector<Move> move_buf;
  std::vector<uint8_t> corrupted;  // test hook: the checks see these 3 radii east

  // Progress and timeline.
  Clock::time_point run_start, next_report;
  LatencyHistogram interval_aoi, interval_move;
  uint64_t interval_moves = 0, interval_queries = 0, interval_zone_ticks = 0;
  Status fatal;
  uint64_t check_ns = 0;  // time spent in Check()
  std::vector<pollfd> fds;

  explicit Impl(WorldLoadOptions options) : o(std::move(options)) {}

  EntityInit Entity(size_t i) const {
    EntityInit e;
    e.id = i + 1;
    e.kind = kind[i];
    e.x = x[i];
    e.y = y[i];
    e.hp = static_cast<int32_t>(1 + (e.id * 7919) % 1000);
    e.level = static_cast<int32_t>(1 + e.id % 60);
    e.speed = speed[i];
    return e;
  }

  void Error(const Status& s) {
    ++report.errors;
    if (report.error_samples.size() < kMaxSamples) report.error_samples.push_back(s.ToString());
  }
  void Mismatch(std::string what) {
    if (report.mismatch_samples.size() < kMaxSamples)
      report.mismatch_samples.push_back(std::move(what));
  }

  // ---- Setup ----

  Status Setup() {
    if (o.entities == 0 || o.entities >= (uint64_t{1} << 32))
      return Status::InvalidArgument("entities must be in [1, 2^32)");
    if (o.zones == 0 || o.zones > o.entities || o.zones > 255)
      return Status::InvalidArgument("zones must be in [1, min(entities, 255)]");
    if (o.players > o.entities) return Status::InvalidArgument("more players than entities");
    if (!(o.tick_rate > 0)) return Status::InvalidArgument("tick rate must be positive");
    for (int c : o.columns)
      if (c < 0 || c > 3) return Status::InvalidArgument("bad column index");
    step_scale = 1.0 / o.tick_rate;
    const size_t n = o.entities;
    aoi::AoiWorkload::InitialPositions(o.dist, n, &x, &y);
    speed.resize(n);
    kind.resize(n);
    zone_of.resize(n);
    aoi::SplitMix64 rng(o.seed * 0x9E3779B97F4A7C15ULL + 77);
    for (size_t i = 0; i < n; ++i) {
      // Players spread evenly over the ids (so over the zones' slices).
      const bool player = (i + 1) * o.players / n > i * o.players / n;
      kind[i] = player ? kPlayer : kNpc;
      const double u = rng.U();
      speed[i] = static_cast<float>(player ? o.player_speed * (0.5 + 0.5 * u) : o.npc_speed * u);
      members[kind[i]].push_back(static_cast<uint32_t>(i));
    }
    zones.resize(o.zones);
    for (size_t z = 0; z < o.zones; ++z) {
      Zone& zone = zones[z];
      zone.begin = z * n / o.zones;
      zone.end = (z + 1) * n / o.zones;
      zone.rng = aoi::SplitMix64(o.seed * 0xBF58476D1CE4E5B9ULL + 1000 + z);
      if (o.move_fraction < 1.0) zone.skip = GeometricSkip(zone.rng, o.move_fraction);
      for (size_t i = zone.begin; i < zone.end; ++i) {
        zone_of[i] = static_cast<uint8_t>(z);
        if (kind[i] == kPlayer) zone.players.push_back(static_cast<uint32_t>(i));
      }
      auto c = ConnectTarget(o.target, o.token, o.knn_start_radius, o.aoi_batch);
      if (!c.ok()) return c.status();
      zone.conn = std::move(c.value());
    }
    report.target_kind = o.target.rfind("redis://", 0) == 0 ? "redis" : "worlddb";
    return zones[0].conn->Prepare(o.flush);
  }

  // ---- I/O ----

  // Waits for I/O (at most until `deadline`), delivers replies, and prints
  // the progress line when a second has passed.
  Status WaitIo(Clock::time_point deadline) {
    fds.clear();  // a member: this runs once per query at fixed rate
    bool any = false;
    for (Zone& z : zones) {
      short ev = 0;
      if (z.conn->in_flight()) ev |= POLLIN;
      if (z.conn->wants_write()) ev |= POLLOUT;
      any |= ev != 0;
      fds.push_back({z.conn->fd(), ev, 0});
    }
    auto now = Clock::now();
    if (deadline > now || !any) {
      const auto wait = std::min<uint64_t>(Nanos(now, deadline), 100'000'000);
      timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                  static_cast<long>(wait % 1'000'000'000)};
      ::ppoll(fds.data(), fds.size(), &ts, nullptr);
    }
    for (size_t i = 0; i < zones.size(); ++i) {
      Zone& z = zones[i];
      if (z.conn->in_flight() || z.conn->wants_write()) {
        Status s = z.conn->Poll(0);
        if (!s.ok()) return Status::IOError("zone " + std::to_string(i) + ": " + s.ToString());
      }
    }
    if (!fatal.ok()) return fatal;
    MaybeReport(Clock::now());
    return Status::Ok();
  }

  void MaybeReport(Clock::time_point now) {
    while (now >= next_report) {
      TimelinePoint p;
      p.t = Seconds(run_start, next_report);
      p.ticks_per_s = double(interval_zone_ticks) / double(o.zones);
      p.writes_per_s = double(interval_moves);
      p.queries_per_s = double(interval_queries);
      p.aoi_p50_ms = double(interval_aoi.Percentile(0.5)) / 1e6;
      p.aoi_p99_ms = double(interval_aoi.Percentile(0.99)) / 1e6;
      p.move_p99_ms = double(interval_move.Percentile(0.99)) / 1e6;
      report.timeline.push_back(p);
      if (o.progress) {
        char target[32];
        if (o.max_throughput)
          std::snprintf(target, sizeof target, "max");
        else
          std::snprintf(target, sizeof target, "%.4g", o.tick_rate);
        std::fprintf(stderr,
                     "[%5.0fs] ticks/s %6.2f / %s  writes/s %10.0f  queries/s %9.0f  "
                     "aoi p99 %8.3f ms  move p99 %8.3f ms  errors %" PRIu64 "  mismatches %" PRIu64
                     "  missed %" PRIu64 "\n",
                     p.t, p.ticks_per_s, target, p.writes_per_s, p.queries_per_s, p.aoi_p99_ms,
                     p.move_p99_ms, report.errors, report.checks_failed, report.zone_ticks_missed);
      }
      interval_aoi.Reset();
      interval_move.Reset();
      interval_moves = interval_queries = interval_zone_ticks = 0;
      next_report += std::chrono::seconds(1);
    }
  }

  // ---- Load ----

  Status Load() {
    std::vector<size_t> cursor(zones.size());
    for (size_t z = 0; z < zones.size(); ++z) cursor[z] = zones[z].begin;
    std::vector<EntityInit> rows;
    const auto t0 = Clock::now();
    run_start = t0;
    next_report = t0 + std::chrono::hours(24 * 365);  // no progress lines while loading
    Status failed;
    for (;;) {
      bool busy = false;
      for (size_t z = 0; z < zones.size(); ++z) {
        Zone& zone = zones[z];
        while (cursor[z] < zone.end && zone.conn->in_flight() < o.load_in_flight) {
          rows.clear();
          const size_t end = std::min(zone.end, cursor[z] + o.batch);
          for (size_t i = cursor[z]; i < end; ++i) rows.push_back(Entity(i));
          const uint64_t count = end - cursor[z];
          cursor[z] = end;
          zone.conn->SendLoad(rows, !o.columns.empty(), [this, count, &failed](const Status& s) {
            if (!s.ok() && failed.ok()) failed = s;
            if (s.ok()) report.loaded += count;
          });
        }
        busy |= cursor[z] < zone.end || zone.conn->in_flight() > 0;
      }
      if (!failed.ok()) return Status::InvalidArgument("load refused: " + failed.ToString());
      if (!busy) break;
      Status s = WaitIo(Clock::now() + std::chrono::milliseconds(100));
      if (!s.ok()) return s;
    }
    report.load_seconds = Seconds(t0, Clock::now());
    if (o.corrupt_model_every) {
      // Only the checks see the shift: moves go on from the true positions,
      // so the server never learns of it.
      corrupted.assign(x.size(), 0);
      const auto& m = members[o.aoi_kind];
      for (size_t j = 0; j < m.size(); j += o.corrupt_model_every) corrupted[m[j]] = 1;
    }
    return Status::Ok();
  }

  // ---- Moves ----

  // Appends the moves of entities [*cursor, zone.end) to move_buf until it
  // holds a batch; advances the model (it holds the latest position sent).
  void NextMoves(Zone& zone, size_t* cursor) {
    move_buf.clear();
    const bool all = o.move_fraction >= 1.0;
    while (*cursor < zone.end && move_buf.size() < o.batch) {
      if (!all) {
        const size_t left = zone.end - *cursor;
        if (zone.skip >= left) {
          zone.skip -= left;
          *cursor = zone.end;
          break;
        }
        *cursor += zone.skip;
        zone.skip = GeometricSkip(zone.rng, o.move_fraction);
      }
      const size_t i = (*cursor)++;
      const Direction& dir = kDirections[std::min(
          kDirectionCount - 1, static_cast<size_t>(zone.rng.U() * double(kDirectionCount)))];
      const double d = double(speed[i]) * step_scale;
      x[i] = aoi::ClampToWorld(x[i] + d * dir.dx);
      y[i] = aoi::ClampToWorld(y[i] + d * dir.dy);
      move_buf.push_back({i + 1, kind[i], x[i], y[i]});
    }
  }

  // Sends move_buf as one batch of the zone's current round; on_done runs
  // after the reply.
  void SendMoveBatch(size_t z, Clock::time_point since, std::function<void()> on_done) {
    Zone& zone = zones[z];
    const uint64_t count = move_buf.size();
    const uint64_t round = zone.rounds.back().round;
    zone.rounds.back().outstanding++;
    zone.conn->SendMoves(
        move_buf, [this, z, count, since, round, on_done = std::move(on_done)](const Status& s) {
          const uint64_t ns = Nanos(since, Clock::now());
          if (s.ok()) {
            report.moves.requests++;
            report.moves.items += count;
            interval_moves += count;
            report.moves.latency.Record(ns);
            interval_move.Record(ns);
          } else {
            Error(s);
          }
          Zone& zn = zones[z];
          // A round with batches outstanding is never popped, so it is still there.
          zn.rounds[round - zn.rounds.front().round].outstanding--;
          Settle(zn);
          if (on_done) on_done();
        });
  }

  void StartRound(Zone& zone) {
    ++zone.rounds_sent;
    zone.rounds.push_back({zone.rounds_sent, 0, false});
  }
  // Every batch of the current round has been sent.
  void CloseRound(Zone& zone) {
    zone.rounds.back().closed = true;
    Settle(zone);
  }
  // rounds_acked: the last round such that it and all before it are closed
  // and answered.
  void Settle(Zone& zone) {
    while (!zone.rounds.empty() && zone.rounds.front().closed &&
           zone.rounds.front().outstanding == 0) {
      zone.rounds_acked = zone.rounds.front().round;
      zone.rounds.pop_front();
    }
  }

  // ---- Queries and checks ----

  void SendQuery(size_t z, uint32_t player, Clock::time_point since,
                 std::function<void()> on_done) {
    Zone& zone = zones[z];
    AoiQuery q;
    q.x = x[player];
    q.y = y[player];
    q.radius = o.radius;
    q.k = o.knn;
    q.kind = o.aoi_kind;
    q.columns = o.columns;
    // Checks scan every entity of the kind, so they get a budget of CPU time
    // (check_budget of the run) lest they slow the load generator down.
    const bool check = o.check_fraction > 0 && zone.rng.U() < o.check_fraction &&
                       double(check_ns) < o.check_budget * 1e9 * Seconds(run_start, Clock::now());
    std::shared_ptr<CheckContext> ctx;
    if (check) {
      ctx = std::make_shared<CheckContext>();
      ctx->zone = z;
      ctx->q = q;
      ctx->base.resize(zones.size());
      for (size_t w = 0; w < zones.size(); ++w)
        ctx->base[w] = w == z ? zones[w].rounds_sent : zones[w].rounds_acked;
    }
    zone.conn->SendAoi(q, check,
                       [this, since, ctx, on_done = std::move(on_done)](
                           const Status& s, uint64_t rows, AoiRows* out) {
                         const uint64_t ns = Nanos(since, Clock::now());
                         if (s.ok()) {
                           report.aoi.requests++;
                           report.aoi.items += rows;
                           interval_queries++;
                           report.aoi.latency.Record(ns);
                           interval_aoi.Record(ns);
                           if (ctx && out) {
                             const auto c0 = Clock::now();
                             Check(*ctx, *out);
                             check_ns += Nanos(c0, Clock::now());
                           }
                         } else {
                           Error(s);
                         }
                         if (on_done) on_done();
                       });
  }

  // Compares one answer with the model (worldload.h: "Result checks").
  void Check(const CheckContext& ctx, const AoiRows& rows) {
    ++report.checks;
    const double tol = zones[0].conn->position_tolerance();
    std::vector<double> zone_slack(zones.size());  // metres per unit of speed
    bool exact = tol == 0;
    for (size_t w = 0; w < zones.size(); ++w) {
      const uint64_t u = zones[w].rounds_sent - ctx.base[w];
      zone_slack[w] = double(u) * step_scale;
      exact &= u == 0;
    }
    auto slack = [&](size_t i) { return zone_slack[zone_of[i]] * double(speed[i]) + tol; };
    const double shift = 3 * o.radius;
    auto mx = [&](size_t i) { return corrupted.empty() || !corrupted[i] ? x[i] : x[i] + shift; };
    auto my = [&](size_t i) { return y[i]; };
    const AoiQuery& q = ctx.q;
    char buf[256];
    auto fail = [&](const char* what) {
      ++report.checks_failed;
      std::snprintf(buf, sizeof buf, "query at (%.3f, %.3f) %s %.1f kind %s: %s", q.x, q.y,
                    q.k ? "k" : "r", q.k ? double(q.k) : q.radius, kKindNames[q.kind], what);
      Mismatch(buf);
    };
    // Every row: a known entity of the kind, where the model says (within the
    // slack), with the model's cells.
    std::unordered_map<uint64_t, size_t> returned;
    for (size_t r = 0; r < rows.ids.size(); ++r) {
      const uint64_t id = rows.ids[r];
      char what[160];
      if (id == 0 || id > o.entities || kind[id - 1] != q.kind) {
        std::snprintf(what, sizeof what, "row %zu: entity %" PRIu64 " is not a %s", r, id,
                      kKindNames[q.kind]);
        return fail(what);
      }
      if (!returned.emplace(id, r).second) {
        std::snprintf(what, sizeof what, "entity %" PRIu64 " returned twice", id);
        return fail(what);
      }
      const size_t i = id - 1;
      const double err = std::hypot(rows.x[r] - mx(i), rows.y[r] - my(i));
      if (exact ? (rows.x[r] != mx(i) || rows.y[r] != my(i)) : err > slack(i) + 1e-6) {
        std::snprintf(what, sizeof what,
                      "entity %" PRIu64 " at (%.6f, %.6f), model (%.6f, %.6f) (allowed %.3f m)", id,
                      rows.x[r], rows.y[r], mx(i), my(i), exact ? 0.0 : slack(i));
        return fail(what);
      }
      const EntityInit e = Entity(i);
      for (size_t c = 0; c < q.columns.size() && c < rows.cells.size(); ++c) {
        const std::string want = ColumnText(e, q.columns[c]);
        if (rows.cells[c][r] != want) {
          std::snprintf(what, sizeof what, "entity %" PRIu64 " %s = %s, model %s", id,
                        kColumnNames[q.columns[c]], rows.cells[c][r].c_str(), want.c_str());
          return fail(what);
        }
      }
      if (rows.cells.size() != q.columns.size()) return fail("projection has the wrong columns");
    }
    const auto& m = members[q.kind];
    char what[200];
    if (q.k == 0) {
      const double r2 = q.radius * q.radius;
      for (uint32_t i : m) {
        bool must_in, must_out;
        if (exact) {
          must_in = SquaredDistance(mx(i), my(i), q.x, q.y) <= r2;
          must_out = !must_in;
        } else {
          const double d = std::sqrt(SquaredDistance(mx(i), my(i), q.x, q.y));
          const double s = slack(i) + 1e-6;
          must_in = d + s < q.radius;
          must_out = d - s > q.radius;
        }
        const bool in = returned.count(i + 1) != 0;
        if ((must_in && !in) || (must_out && in)) {
          std::snprintf(what, sizeof what,
                        "entity %u at distance %.6f (model) is %s the answer (allowed %.3f m)",
                        i + 1, std::sqrt(SquaredDistance(mx(i), my(i), q.x, q.y)),
                        in ? "wrongly in" : "missing from", exact ? 0.0 : slack(i));
          return fail(what);
        }
      }
      return;
    }
    // kNN: the model's k nearest by (squared distance, id).
    std::vector<std::pair<double, uint32_t>> all;
    all.reserve(m.size());
    double max_slack = 0;
    for (uint32_t i : m) {
      all.push_back({SquaredDistance(mx(i), my(i), q.x, q.y), i});
      if (!exact) max_slack = std::max(max_slack, slack(i));
    }
    const size_t k = std::min<size_t>(q.k, all.size());
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    if (rows.ids.size() != k) {
      std::snprintf(what, sizeof what, "%zu rows, expected %zu", rows.ids.size(), k);
      return fail(what);
    }
    if (exact) {
      for (size_t j = 0; j < k; ++j) {
        if (rows.ids[j] != all[j].second + 1) {
          std::snprintf(what, sizeof what, "nearest #%zu is entity %" PRIu64 ", model says %u", j,
                        rows.ids[j], all[j].second + 1);
          return fail(what);
        }
      }
      return;
    }
    const double dk = std::sqrt(all[k - 1].first);
    const double band = 2 * max_slack + 1e-6;
    for (size_t r = 0; r < rows.ids.size(); ++r) {
      const size_t i = rows.ids[r] - 1;
      const double d = std::sqrt(SquaredDistance(mx(i), my(i), q.x, q.y));
      if (d > dk + band) {
        std::snprintf(what, sizeof what,
                      "entity %" PRIu64 " at %.3f m is not among the %zu nearest (k-th at %.3f)",
                      rows.ids[r], d, k, dk);
        return fail(what);
      }
    }
    for (size_t j = 0; j < k; ++j) {
      const double d = std::sqrt(all[j].first);
      if (d < dk - band && !returned.count(all[j].second + 1)) {
        std::snprintf(what, sizeof what, "entity %u at %.3f m (k-th at %.3f) is missing",
                      all[j].second + 1, d, dk);
        return fail(what);
      }
    }
  }

  // ---- Max throughput: lock-step ticks, each a move phase and a query phase ----

  Status RunMax() {
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(o.duration_s));
    double move_s = 0, query_s = 0;
    uint64_t tick = 0;
    while (o.ticks ? tick < o.ticks : (tick == 0 || Clock::now() < end)) {
      ++tick;
      // Move phase.
      auto p0 = Clock::now();
      std::vector<size_t> cursor(zones.size());
      for (size_t z = 0; z < zones.size(); ++z) {
        cursor[z] = zones[z].begin;
        StartRound(zones[z]);
      }
      for (;;) {
        bool busy = false;
        for (size_t z = 0; z < zones.size(); ++z) {
          Zone& zone = zones[z];
          while (cursor[z] < zone.end && zone.conn->in_flight() < o.write_in_flight) {
            NextMoves(zone, &cursor[z]);
            if (!move_buf.empty()) SendMoveBatch(z, Clock::now(), nullptr);
          }
          busy |= cursor[z] < zone.end || zone.conn->in_flight() > 0;
        }
        if (!busy) break;
        Status s = WaitIo(Clock::now() + std::chrono::milliseconds(100));
        if (!s.ok()) return s;
      }
      for (Zone& zone : zones) CloseRound(zone);
      auto p1 = Clock::now();
      move_s += Seconds(p0, p1);
      // Query phase: every move of the tick is acknowledged.
      std::vector<size_t> next(zones.size(), 0);
      for (;;) {
        bool busy = false;
        for (size_t z = 0; z < zones.size(); ++z) {
          Zone& zone = zones[z];
          while (next[z] < zone.players.size() && zone.conn->in_flight() < o.in_flight)
            SendQuery(z, zone.players[next[z]++], Clock::now(), nullptr);
          busy |= next[z] < zone.players.size() || zone.conn->in_flight() > 0;
        }
        if (!busy) break;
        Status s = WaitIo(Clock::now() + std::chrono::milliseconds(100));
        if (!s.ok()) return s;
      }
      query_s += Seconds(p1, Clock::now());
      report.zone_ticks_completed += zones.size();
      interval_zone_ticks += zones.size();
    }
    report.ticks_scheduled = tick;
    report.run_seconds = Seconds(t0, Clock::now());
    report.moves.seconds = move_s;
    report.aoi.seconds = query_s;
    return Status::Ok();
  }

  // ---- Fixed rate: open loop ----

  void TickAnswered(size_t z, uint64_t tick) {
    Zone& zone = zones[z];
    // At most max_ticks_behind entries; missed ticks leave gaps in the numbers.
    for (auto& t : zone.open_ticks) {
      if (t.tick == tick) {
        --t.outstanding;
        break;
      }
    }
    while (!zone.open_ticks.empty() && zone.open_ticks.front().outstanding == 0) {
      zone.open_ticks.pop_front();
      report.zone_ticks_completed++;
      interval_zone_ticks++;
    }
  }

  Status RunFixed() {
    const double period = 1.0 / o.tick_rate;
    const uint64_t ticks =
        o.ticks ? o.ticks : std::max<uint64_t>(1, std::llround(o.duration_s * o.tick_rate));
    report.ticks_scheduled = ticks;
    const auto t0 = Clock::now() + std::chrono::milliseconds(10);
    auto tick_time = [&](uint64_t t) {
      return t0 + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(double(t) * period));
    };
    uint64_t next_tick = 0;
    for (;;) {
      auto now = Clock::now();
      if (next_tick < ticks && now >= tick_time(next_tick)) {
        const uint64_t t = next_tick++;
        const auto at = tick_time(t);
        for (size_t z = 0; z < zones.size(); ++z) {
          Zone& zone = zones[z];
          if (zone.open_ticks.size() >= o.max_ticks_behind) {
            report.zone_ticks_missed++;
            continue;
          }
          // Everything of this tick counts: the move batches now, the queries
          // when they are sent (so the tick stays open until they are).
          zone.open_ticks.push_back({t, 1 + zone.players.size()});
          StartRound(zone);
          size_t cursor = zone.begin;
          while (cursor < zone.end) {
            NextMoves(zone, &cursor);
            if (move_buf.empty()) break;
            zone.open_ticks.back().outstanding++;
            SendMoveBatch(z, at, [this, z, t] { TickAnswered(z, t); });
          }
          CloseRound(zone);
          const size_t nq = zone.players.size();
          for (size_t j = 0; j < nq; ++j) {
            const auto qat =
                at + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(period * double(j) / double(nq)));
            zone.queries.push_back({t, zone.players[j], qat});
          }
          TickAnswered(z, t);  // the "1 +" above: the tick's own sending is done
        }
      }
      // Send the queries that are due.
      now = Clock::now();
      Clock::time_point next_due =
          next_tick < ticks ? tick_time(next_tick) : now + std::chrono::milliseconds(100);
      bool pending = false;
      for (size_t z = 0; z < zones.size(); ++z) {
        Zone& zone = zones[z];
        while (!zone.queries.empty() && zone.queries.front().at <= now) {
          const auto job = zone.queries.front();
          zone.queries.pop_front();
          SendQuery(z, job.player, job.at, [this, z, t = job.tick] { TickAnswered(z, t); });
        }
        if (!zone.queries.empty()) next_due = std::min(next_due, zone.queries.front().at);
        pending |= !zone.queries.empty() || zone.conn->in_flight() > 0 || !zone.open_ticks.empty();
      }
      if (next_tick >= ticks && !pending) break;
      Status s = WaitIo(next_due);
      if (!s.ok()) return s;
      if (next_tick >= ticks && Seconds(tick_time(ticks), Clock::now()) > 120)
        return Status::Unavailable("the server did not answer within 120 s of the last tick");
    }
    report.run_seconds = std::max(Seconds(t0, Clock::now()), double(ticks) * period);
    report.moves.seconds = report.aoi.seconds = report.run_seconds;
    return Status::Ok();
  }

  Result<WorldLoadReport> Run() {
    report.options = o;
    Status s = Setup();
    if (!s.ok()) return s;
    s = Load();
    if (!s.ok()) return s;
    run_start = Clock::now();
    next_report = run_start + std::chrono::seconds(1);
    s = o.max_throughput ? RunMax() : RunFixed();
    if (!s.ok()) return s;
    for (Zone& z : zones) report.reissued += z.conn->reissued();
    return report;
  }
};

// ---- The report ----

namespace {

double Ms(uint64_t ns) { return double(ns) / 1e6; }

std::string JsonEscape(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string OpLine(const char* name, const OpReport& r, const char* unit) {
  char buf[320];
  const LatencyHistogram& h = r.latency;
  std::snprintf(buf, sizeof buf,
                "%-5s %12" PRIu64 " %-8s %12.0f/s %10" PRIu64
                " req %10.0f req/s  %8.3f %8.3f %8.3f "
                "%8.3f %9.3f\n",
                name, r.items, unit, r.rate(), r.requests, r.request_rate(), Ms(h.Percentile(0.5)),
                Ms(h.Percentile(0.9)), Ms(h.Percentile(0.99)), Ms(h.Percentile(0.999)),
                Ms(h.max()));
  return buf;
}

std::string OpJson(const OpReport& r) {
  char buf[512];
  const LatencyHistogram& h = r.latency;
  std::snprintf(buf, sizeof buf,
                "{\"items\": %" PRIu64 ", \"requests\": %" PRIu64
                ", \"seconds\": %.6f, \"items_per_s\": %.1f, \"requests_per_s\": %.1f, "
                "\"latency_ms\": {\"count\": %" PRIu64
                ", \"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, \"p999\": %.4f, \"max\": "
                "%.4f}}",
                r.items, r.requests, r.seconds, r.rate(), r.request_rate(), h.count(),
                Ms(h.Percentile(0.5)), Ms(h.Percentile(0.9)), Ms(h.Percentile(0.99)),
                Ms(h.Percentile(0.999)), Ms(h.max()));
  return buf;
}

}  // namespace

std::string WorldLoadReport::Text() const {
  const WorldLoadOptions& o = options;
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "worldload: %s (%s), %s, N=%zu (%zu players), Z=%zu, %s %s%.4g%s, kind %s, "
                "%s world, AOI queries per request %s\n",
                o.target.c_str(), target_kind.c_str(),
                o.max_throughput ? "max throughput" : "fixed rate", o.entities, o.players, o.zones,
                o.knn ? "kNN k =" : "radius", "", o.knn ? double(o.knn) : o.radius,
                o.knn ? "" : " m", kKindNames[o.aoi_kind],
                std::string(aoi::DistributionName(o.dist)).c_str(),
                target_kind == "redis" ? "1" : ("<= " + std::to_string(o.aoi_batch)).c_str());
  out += buf;
  std::snprintf(buf, sizeof buf, "load: %" PRIu64 " entities in %.2f s (%.0f/s)\n", loaded,
                load_seconds, load_seconds > 0 ? double(loaded) / load_seconds : 0);
  out += buf;
  out +=
      "op           items            rate     requests             p50      p90      p99    "
      "p99.9       max (ms)\n";
  out += OpLine("move", moves, "moved");
  out += OpLine("aoi", aoi, "rows");
  std::snprintf(buf, sizeof buf, "aoi queries: %" PRIu64 " at %.0f/s, %.1f rows per query",
                aoi.requests, aoi.request_rate(),
                aoi.requests ? double(aoi.items) / double(aoi.requests) : 0);
  out += buf;
  if (reissued) {
    std::snprintf(buf, sizeof buf, " (%" PRIu64 " Redis kNN re-issues)", reissued);
    out += buf;
  }
  out += "\n";
  if (o.max_throughput) {
    std::snprintf(buf, sizeof buf,
                  "ticks: %" PRIu64
                  " in %.2f s = %.2f ticks/s (move phases %.2f s, query phases "
                  "%.2f s)\n",
                  ticks_scheduled, run_seconds, ticks_per_s(), moves.seconds, aoi.seconds);
  } else {
    std::snprintf(buf, sizeof buf,
                  "ticks: %" PRIu64 " scheduled per zone at %.4g/s; zone-ticks completed %" PRIu64
                  ", missed %" PRIu64 "; achieved %.2f ticks/s over %.2f s\n",
                  ticks_scheduled, o.tick_rate, zone_ticks_completed, zone_ticks_missed,
                  ticks_per_s(), run_seconds);
  }
  out += buf;
  std::snprintf(buf, sizeof buf,
                "checks: %" PRIu64 " answers compared with the model, %" PRIu64 " mismatches\n",
                checks, checks_failed);
  out += buf;
  for (const std::string& m : mismatch_samples) out += "  mismatch: " + m + "\n";
  std::snprintf(buf, sizeof buf, "errors: %" PRIu64 "\n", errors);
  out += buf;
  for (const std::string& e : error_samples) out += "  error: " + e + "\n";
  return out;
}

std::string WorldLoadReport::Json() const {
  const WorldLoadOptions& o = options;
  std::string out = "{\n";
  char buf[1024];
  std::string columns;
  for (int c : o.columns)
    columns += std::string(columns.empty() ? "" : ", ") + "\"" + kColumnNames[c] + "\"";
  std::snprintf(buf, sizeof buf,
                "  \"target\": %s,\n  \"target_kind\": \"%s\",\n  \"mode\": \"%s\",\n"
                "  \"options\": {\"entities\": %zu, \"zones\": %zu, \"players\": %zu, "
                "\"radius\": %g, \"knn\": %u, \"tick_rate\": %g, \"dist\": \"%s\", "
                "\"batch\": %zu, \"aoi_batch\": %zu, \"in_flight\": %zu, \"write_in_flight\": %zu, "
                "\"move_fraction\": "
                "%g, \"kind\": \"%s\", "
                "\"columns\": [%s], \"seed\": %" PRIu64 ", \"check_fraction\": %g},\n",
                JsonEscape(o.target).c_str(), target_kind.c_str(),
                o.max_throughput ? "max" : "fixed", o.entities, o.zones, o.players, o.radius, o.knn,
                o.tick_rate, std::string(aoi::DistributionName(o.dist)).c_str(), o.batch,
                o.aoi_batch, o.in_flight, o.write_in_flight, o.move_fraction,
                kKindNames[o.aoi_kind], columns.c_str(), o.seed, o.check_fraction);
  out += buf;
  std::snprintf(buf, sizeof buf, "  \"load\": {\"entities\": %" PRIu64 ", \"seconds\": %.6f},\n",
                loaded, load_seconds);
  out += buf;
  out += "  \"moves\": " + OpJson(moves) + ",\n";
  out += "  \"aoi\": " + OpJson(aoi) + ",\n";
  std::snprintf(buf, sizeof buf,
                "  \"run_seconds\": %.6f,\n  \"ticks\": {\"scheduled\": %" PRIu64
                ", \"zone_ticks_completed\": %" PRIu64 ", \"zone_ticks_missed\": %" PRIu64
                ", \"ticks_per_s\": %.3f},\n  \"redis_knn_reissued\": %" PRIu64
                ",\n  \"checks\": %" PRIu64 ",\n  \"mismatches\": %" PRIu64
                ",\n  \"errors\": %" PRIu64 ",\n",
                run_seconds, ticks_scheduled, zone_ticks_completed, zone_ticks_missed,
                ticks_per_s(), reissued, checks, checks_failed, errors);
  out += buf;
  auto list = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + JsonEscape(v[i]);
    return s + "]";
  };
  out += "  \"mismatch_samples\": " + list(mismatch_samples) + ",\n";
  out += "  \"error_samples\": " + list(error_samples) + ",\n";
  out += "  \"timeline\": [";
  for (size_t i = 0; i < timeline.size(); ++i) {
    const TimelinePoint& p = timeline[i];
    std::snprintf(buf, sizeof buf,
                  "%s\n    {\"t\": %.0f, \"ticks_per_s\": %.2f, \"writes_per_s\": %.0f, "
                  "\"queries_per_s\": %.0f, \"aoi_p50_ms\": %.4f, \"aoi_p99_ms\": %.4f, "
                  "\"move_p99_ms\": %.4f}",
                  i ? "," : "", p.t, p.ticks_per_s, p.writes_per_s, p.queries_per_s, p.aoi_p50_ms,
                  p.aoi_p99_ms, p.move_p99_ms);
    out += buf;
  }
  out += "\n  ]\n}\n";
  return out;
}

WorldLoad::WorldLoad(WorldLoadOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
WorldLoad::~WorldLoad() = default;
Result<WorldLoadReport> WorldLoad::Run() { return impl_->Run(); }

}  // namespace worlddb::load
