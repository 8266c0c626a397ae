#include "net/daemon_metrics.h"

#include <vector>

#ifdef WORLDDB_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace worlddb::net {

namespace {

using T = PrometheusWriter::Type;

double Seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// wal::LogStats keeps log2 buckets: b[k] counts values in [2^k, 2^(k+1))
// (b[0] also 0, the last everything above). As a Prometheus histogram, bucket
// k's inclusive integer bound is 2^(k+1) - 1 (`minus_one`) or, for
// microseconds rendered in seconds, 2^(k+1) us; the last is +Inf.
template <size_t N>
HistogramSnapshot FromLog2(const std::array<uint64_t, N>& b, uint64_t sum, bool minus_one) {
  HistogramSnapshot h;
  for (size_t k = 0; k + 1 < N; ++k) {
    h.bounds.push_back((uint64_t{2} << k) - (minus_one ? 1 : 0));
  }
  h.counts.assign(b.begin(), b.end());
  for (uint64_t c : b) h.count += c;
  h.sum = sum;
  return h;
}

#ifdef WORLDDB_HAVE_JEMALLOC
void RenderJemalloc(PrometheusWriter* w) {
  // stats.* are cached; writing "epoch" refreshes them.
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  mallctl("epoch", &epoch, &len, &epoch, len);
  size_t allocated = 0, active = 0, resident = 0;
  len = sizeof(size_t);
  if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) != 0 ||
      mallctl("stats.active", &active, &len, nullptr, 0) != 0 ||
      mallctl("stats.resident", &resident, &len, nullptr, 0) != 0) {
    return;  // jemalloc built without statistics
  }
  w->Family("worlddb_memory_allocated_bytes", T::kGauge,
            "Bytes allocated by the application (jemalloc stats.allocated).");
  w->Sample("worlddb_memory_allocated_bytes", static_cast<double>(allocated));
  w->Family("worlddb_memory_active_bytes", T::kGauge,
            "Bytes in active pages (jemalloc stats.active), a multiple of the page size.");
  w->Sample("worlddb_memory_active_bytes", static_cast<double>(active));
  w->Family("worlddb_memory_resident_bytes", T::kGauge,
            "Bytes in physically resident pages mapped by the allocator (jemalloc "
            "stats.resident).");
  w->Sample("worlddb_memory_resident_bytes", static_cast<double>(resident));
  w->Family("worlddb_memory_fragmentation_ratio", T::kGauge,
            "active / allocated - 1: the share of active pages not holding live data.");
  w->Sample("worlddb_memory_fragmentation_ratio",
            allocated ? static_cast<double>(active) / static_cast<double>(allocated) - 1.0 : 0.0);
}
#endif

void RenderEngine(Engine& engine, PrometheusWriter* w) {
  const Engine::Stats st = engine.GetStats();
  w->Family("worlddb_entities", T::kGauge, "Entities in the world, by kind.");
  for (const auto& [kind, n] : st.entities_per_kind) {
    w->Sample("worlddb_entities", {{"kind", kind}}, static_cast<double>(n));
  }
  w->Family("worlddb_batches_applied_total", T::kCounter,
            "Write batches applied since start (not counting recovery).");
  w->Sample("worlddb_batches_applied_total", static_cast<double>(st.batches_applied));
  w->Family("worlddb_batches_refused_total", T::kCounter,
            "Write batches refused as invalid since start.");
  w->Sample("worlddb_batches_refused_total", static_cast<double>(st.batches_refused));
  w->Family("worlddb_rows_applied_total", T::kCounter,
            "Operations (upserts, moves, sets, deletes) applied by write batches since start.");
  w->Sample("worlddb_rows_applied_total", static_cast<double>(st.operations_applied));
  w->Family("worlddb_engine_queries_total", T::kCounter,
            "Queries the engine answered (each query of a batched round counts).");
  w->Sample("worlddb_engine_queries_total", static_cast<double>(st.queries));
  w->Family("worlddb_schema_version", T::kGauge, "The schema's version.");
  w->Sample("worlddb_schema_version", static_cast<double>(st.schema_version));
  w->Family("worlddb_engine_memory_bytes", T::kGauge,
            "Capacity of the engine's structures, by part (tables, index, id_map).");
  w->Sample("worlddb_engine_memory_bytes", {{"part", "tables"}},
            static_cast<double>(st.memory.tables));
  w->Sample("worlddb_engine_memory_bytes", {{"part", "index"}},
            static_cast<double>(st.memory.index));
  w->Sample("worlddb_engine_memory_bytes", {{"part", "id_map"}},
            static_cast<double>(st.memory.id_map));

  const std::vector<Engine::ShardLoad> loads = engine.ShardLoads();
  w->Family("worlddb_shard_queue_depth", T::kGauge,
            "Messages waiting in a shard's queue (query rounds, writes, schema changes).");
  for (size_t i = 0; i < loads.size(); ++i) {
    w->Sample("worlddb_shard_queue_depth", {{"shard", std::to_string(i)}},
              static_cast<double>(loads[i].queue_depth));
  }
  w->Family("worlddb_shard_busy_seconds_total", T::kCounter,
            "Seconds a shard's thread spent handling messages (rate() = utilisation).");
  for (size_t i = 0; i < loads.size(); ++i) {
    w->Sample("worlddb_shard_busy_seconds_total", {{"shard", std::to_string(i)}},
              static_cast<double>(loads[i].busy_ns) * 1e-9);
  }
  w->Family("worlddb_shard_messages_total", T::kCounter, "Messages a shard's thread handled.");
  for (size_t i = 0; i < loads.size(); ++i) {
    w->Sample("worlddb_shard_messages_total", {{"shard", std::to_string(i)}},
              static_cast<double>(loads[i].messages));
  }
}

void RenderLog(wal::LogWriter& log, PrometheusWriter* w) {
  const wal::LogStats s = log.stats();
  w->Family("worlddb_log_bytes_total", T::kCounter, "Framed log bytes written since start.");
  w->Sample("worlddb_log_bytes_total", static_cast<double>(log.bytes_written()));
  w->Family("worlddb_log_records_total", T::kCounter, "Log records sequenced since start.");
  w->Sample("worlddb_log_records_total", static_cast<double>(s.records));
  w->Family("worlddb_log_flushes_total", T::kCounter,
            "Group commits: write submissions to the log since start.");
  w->Sample("worlddb_log_flushes_total", static_cast<double>(s.flushes));
  w->Family("worlddb_log_segments_created_total", T::kCounter, "Log segments created.");
  w->Sample("worlddb_log_segments_created_total", static_cast<double>(s.segments_created));
  w->Family("worlddb_log_last_lsn", T::kGauge, "Last LSN assigned.");
  w->Sample("worlddb_log_last_lsn", static_cast<double>(log.last_lsn()));
  w->Family("worlddb_log_durable_lsn", T::kGauge, "Last LSN fdatasync'ed.");
  w->Sample("worlddb_log_durable_lsn", static_cast<double>(log.durable_lsn()));
  w->Family("worlddb_log_fsync_seconds", T::kHistogram,
            "Latency of one group commit's write+fdatasync submission (log2 buckets).");
  w->Histogram("worlddb_log_fsync_seconds", {}, FromLog2(s.sync_us, s.sync_us_sum, false), 1e-6);
  w->Family("worlddb_log_group_commit_records", T::kHistogram,
            "Records carried by one group commit (log2 buckets).");
  w->Histogram("worlddb_log_group_commit_records", {},
               FromLog2(s.group_records, s.group_records_sum, true));
}

void RenderWorld(wal::World& world, double recovery_seconds,
                 std::chrono::system_clock::time_point started, PrometheusWriter* w) {
  const Status writable = world.Writable();
  w->Family("worlddb_writable", T::kGauge,
            "1 while writes are accepted; 0 after the log failed (disk full, I/O error).");
  w->Sample("worlddb_writable", writable.ok() ? 1 : 0);
  if (!writable.ok()) {
    w->Family("worlddb_writes_stopped_info", T::kGauge, "Why writes are refused (label reason).");
    w->Sample("worlddb_writes_stopped_info", {{"reason", writable.ToString()}}, 1);
  }
  RenderEngine(world.engine(), w);
  if (wal::LogWriter* log = world.log()) RenderLog(*log, w);

  const auto snap = world.last_snapshot();
  const double now = Seconds(std::chrono::system_clock::now());
  w->Family("worlddb_snapshot_age_seconds", T::kGauge,
            "Seconds since the newest snapshot's cut (since start when there is none).");
  w->Sample("worlddb_snapshot_age_seconds",
            snap ? now - static_cast<double>(snap->timestamp_us) * 1e-6 : now - Seconds(started));
  if (snap) {
    w->Family("worlddb_snapshot_size_bytes", T::kGauge, "Size of the newest snapshot file.");
    w->Sample("worlddb_snapshot_size_bytes", static_cast<double>(snap->bytes));
    w->Family("worlddb_snapshot_duration_seconds", T::kGauge,
              "How long taking the newest snapshot took (0 when it was loaded at start).");
    w->Sample("worlddb_snapshot_duration_seconds", static_cast<double>(snap->duration_us) * 1e-6);
    w->Family("worlddb_snapshot_pause_seconds", T::kGauge,
              "How long the newest snapshot parked the shards (0 when loaded at start).");
    w->Sample("worlddb_snapshot_pause_seconds", static_cast<double>(snap->pause_us) * 1e-6);
    w->Family("worlddb_snapshot_lsn", T::kGauge, "LSN of the newest snapshot.");
    w->Sample("worlddb_snapshot_lsn", static_cast<double>(snap->lsn));
  }
  const Status snap_error = world.last_snapshot_error();
  w->Family("worlddb_snapshot_failing", T::kGauge,
            "1 when the last background snapshot failed (label error), else 0.");
  if (snap_error.ok()) {
    w->Sample("worlddb_snapshot_failing", 0);
  } else {
    w->Sample("worlddb_snapshot_failing", {{"error", snap_error.ToString()}}, 1);
  }

  const wal::RecoveryReport& rec = world.recovery();
  w->Family("worlddb_recovery_seconds", T::kGauge,
            "Seconds the start spent opening the data directory (snapshot load and log replay).");
  w->Sample("worlddb_recovery_seconds", recovery_seconds);
  w->Family("worlddb_recovery_records_replayed", T::kGauge, "Log records replayed at start.");
  w->Sample("worlddb_recovery_records_replayed", static_cast<double>(rec.records_replayed));
}

}  // namespace

Status Readiness(bool recovered, const Status& writable) {
  if (!recovered) return Status::Unavailable("recovering the data directory");
  if (!writable.ok()) return Status::Unavailable("writes are stopped: " + writable.ToString());
  return Status::Ok();
}

DaemonMetrics::DaemonMetrics() : started_(std::chrono::system_clock::now()) {}

void DaemonMetrics::SetWorld(wal::World* world, double recovery_seconds) {
  recovery_seconds_ = recovery_seconds;
  world_.store(world, std::memory_order_release);
}

Status DaemonMetrics::Ready() const {
  wal::World* world = world_.load(std::memory_order_acquire);
  return Readiness(world != nullptr, world ? world->Writable() : Status::Ok());
}

std::string DaemonMetrics::Render() const {
  PrometheusWriter w;
  wal::World* world = world_.load(std::memory_order_acquire);
  w.Family("worlddb_start_time_seconds", T::kGauge, "When the process started (Unix time).");
  w.Sample("worlddb_start_time_seconds", Seconds(started_));
  w.Family("worlddb_ready", T::kGauge,
           "1 when /readyz answers 200: recovered and accepting writes.");
  w.Sample("worlddb_ready", Ready().ok() ? 1 : 0);
  requests_.Render(&w);
  if (world) RenderWorld(*world, recovery_seconds_, started_, &w);
#ifdef WORLDDB_HAVE_JEMALLOC
  RenderJemalloc(&w);
#endif
  return w.Take();
}

}  // namespace worlddb::net
