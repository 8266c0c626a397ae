// World: one data directory brought to life — the engine, recovered from the
// newest snapshot and the log after it, with the write-ahead log attached and
// snapshots taken in the background. The server and the tools open the world
// through this class and nothing else.
//
// Data directory layout (docs/operations.md "Data directory"):
//   DIR/LOCK              locked (fcntl F_SETLK) while a process has the world open
//   DIR/wal/              log segments wal-<first LSN>.log (wal/log_format.h)
//   DIR/snapshots/        snapshot-<LSN>.wdb (wal/snapshot_format.h)
//   DIR/archive/          segments below the newest snapshot, when archiving
//
// Recovery (Open):
//   1. the newest snapshot is verified (every block checksum) and loaded; a
//      damaged one stops the start, naming the file and offset, unless
//      `salvage` is set, in which case the next older valid one is used;
//   2. the log after the snapshot's LSN is replayed; a torn tail (an
//      incomplete last write) is cut off and reported; any other damage stops
//      the start (or, with `salvage`, ends recovery at the last valid record);
//   3. the log writer opens a new segment after the last replayed LSN.
//
// Durability: see wal/log_writer.h and docs/wal_format.md. With durability
// "none" nothing is logged; snapshots (on command or on the interval) are then
// the only way the world survives a restart.
//
// Thread safety: engine() may be used from any thread, as Engine allows.
// Snapshot() may be called from any thread; snapshots never overlap (a second
// caller waits for the first). Close() and the destructor must not race with
// other calls.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "engine/engine.h"
#include "engine/status.h"
#include "wal/durability.h"
#include "wal/log_reader.h"
#include "wal/log_writer.h"
#include "wal/snapshot_reader.h"
#include "wal/snapshot_writer.h"

namespace worlddb::wal {

struct WorldOptions {
  std::string data_dir = "./data";
  Durability durability;
  EngineOptions engine;
  uint64_t segment_bytes = uint64_t{64} << 20;
  // Keep the valid prefix of a damaged log, or fall back to an older snapshot,
  // instead of refusing to start. What was dropped is reported.
  bool salvage = false;

  // Snapshot triggers (0 = off): log bytes written since the last snapshot,
  // and seconds since the last snapshot (or since start).
  uint64_t snapshot_log_bytes = uint64_t{1} << 30;
  uint32_t snapshot_interval_s = 3600;
  // Snapshots kept in DIR/snapshots (the newest ones); at least 1.
  uint32_t snapshots_kept = 2;
  // After a snapshot, log segments wholly below its LSN are deleted, or moved
  // to DIR/archive when `archive` is set, where point-in-time restore can read
  // them. Archived segments are deleted once older than archive_max_age_s or
  // beyond archive_max_bytes (oldest first; 0 = no limit).
  bool archive = false;
  uint32_t archive_max_age_s = 0;
  uint64_t archive_max_bytes = 0;
};

// What Open found and did; logged by the server, shown by worldctl.
struct RecoveryReport {
  std::optional<SnapshotInfo> snapshot;  // the snapshot loaded, if any
  std::string skipped_snapshots;         // damaged snapshots passed over (salvage)
  uint64_t records_replayed = 0;
  uint64_t bytes_replayed = 0;
  uint64_t last_lsn = 0;  // the world is exactly records 1..last_lsn
  std::optional<TornTail> torn_tail;
  std::string salvaged;  // what salvage dropped, if anything
  double load_seconds = 0, replay_seconds = 0;

  std::string ToString() const;
};

class World {
 public:
  static Result<std::unique_ptr<World>> Open(const WorldOptions& options);
  ~World();  // Close(), then stops the engine.
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  Engine& engine() { return *engine_; }
  const WorldOptions& options() const { return options_; }
  const RecoveryReport& recovery() const { return recovery_; }
  // Null with durability "none".
  LogWriter* log() { return log_.get(); }

  // Takes a snapshot now and returns once it is durable; then prunes old
  // snapshots and log segments as configured.
  Result<SnapshotInfo> Snapshot();
  // OK while writes are accepted; otherwise why not (a failed log).
  Status Writable() const;
  // The newest snapshot taken or loaded, if any.
  std::optional<SnapshotInfo> last_snapshot() const;
  // Why the last background snapshot failed (OK when it did not).
  Status last_snapshot_error() const;

  // Stops the snapshot thread and flushes the log (write + fdatasync). Later
  // writes fail. Idempotent.
  Status Close();

  static std::string WalDir(const std::string& data_dir) { return data_dir + "/wal"; }
  static std::string SnapshotDir(const std::string& data_dir) { return data_dir + "/snapshots"; }
  static std::string ArchiveDir(const std::string& data_dir) { return data_dir + "/archive"; }

 private:
  explicit World(const WorldOptions& options);
  Status Recover();
  Status SetSalvagedLogAside(const SalvageReport& salvage);
  Status Prune(const SnapshotInfo& snapshot);
  void SnapshotLoop();
  uint64_t LsnWithoutLog() const;

  const WorldOptions options_;
  int lock_fd_ = -1;
  std::string registered_dir_;  // canonical path, in the in-process registry
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<LogWriter> log_;
  RecoveryReport recovery_;

  // Without a log, snapshots number themselves after the recovered LSN, one
  // per ticket taken since.
  uint64_t base_lsn_ = 0, base_ticket_ = 0;

  std::mutex snapshot_mu_;  // one snapshot at a time
  mutable std::mutex state_mu_;
  std::optional<SnapshotInfo> last_snapshot_;                 // guarded by state_mu_
  uint64_t log_bytes_at_snapshot_ = 0;                        // guarded by state_mu_
  std::chrono::steady_clock::time_point last_snapshot_time_;  // guarded by state_mu_
  std::condition_variable stop_cv_;
  Status last_error_;      // guarded by state_mu_
  bool stopping_ = false;  // guarded by state_mu_
  bool closed_ = false;
  std::thread snapshot_thread_;
};

}  // namespace worlddb::wal
