// DaemonMetrics: the daemon's /metrics page and /readyz answer
// (docs/operations.md "Metrics"), gathered at scrape time from what the
// pieces already keep:
//   * RequestMetrics (owned here, filled by the Server's event loop);
//   * the engine: entities per kind, batches and operations applied, memory
//     of its structures (Engine::GetStats, one message to each shard), and
//     per-shard queue depth and busy time (Engine::ShardLoads, no message);
//   * the log (wal::LogStats): bytes, records, group commits, fsync latency;
//   * the world: writable or why not, last snapshot (age, size, duration),
//     the last background snapshot error, recovery time;
//   * jemalloc (mallctl "stats.*" after an "epoch" refresh), when the binary
//     uses it (not under sanitizers).
//
// Lifetime and threads: the HTTP listener calls Render() and Ready() from
// its threads at any time. SetWorld() is called once, after recovery; the
// World must then stay open until the listener is stopped (the daemon stops
// it before closing the world).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "engine/status.h"
#include "net/request_metrics.h"
#include "wal/world.h"

namespace worlddb::net {

// /readyz: ready once recovery finished and while writes are accepted.
// `writable` is the world's Writable() (ignored before recovery).
Status Readiness(bool recovered, const Status& writable);

class DaemonMetrics {
 public:
  DaemonMetrics();
  DaemonMetrics(const DaemonMetrics&) = delete;
  DaemonMetrics& operator=(const DaemonMetrics&) = delete;

  RequestMetrics* requests() { return &requests_; }
  // Recovery finished: serve the world's figures from now on.
  void SetWorld(wal::World* world, double recovery_seconds);

  std::string Render() const;
  Status Ready() const;

 private:
  RequestMetrics requests_;
  const std::chrono::system_clock::time_point started_;
  std::atomic<wal::World*> world_{nullptr};
  double recovery_seconds_ = 0;  // written before world_ is published
};

}  // namespace worlddb::net
