// LogWriter: the write-ahead log's appending side, the engine's CommitLog
// (engine/commit_log.h) on the real disk through io_uring, or on any
// FileSystem (wal/file_system.h).
//
// How it works (docs/ARCHITECTURE.md "Write-ahead log"):
//   * Appenders (the engine's client threads) hand records in with their
//     engine ticket, in any order. The thread whose ticket is next sequences
//     every consecutive ticket waiting: assigns dense LSNs to the non-empty
//     records, stamps the commit time, copies the framed record into the
//     current group buffer. Appenders make no system call: they copy and
//     wait on a condition variable.
//   * One log thread takes every filled buffer and writes them as linked
//     io_uring submissions (writes, then fdatasync in mode kAlways) from
//     registered buffers. While one flush is in flight, arriving records
//     gather in the next buffer: many writers share one fdatasync.
//   * A record larger than a group buffer gets a buffer of its own.
//   * Segments rotate when the next record would not fit; a new segment is
//     created at its first LSN, its header synced, and the directory fsynced.
//
// Failure: the first failed or short write or sync (EIO, ENOSPC, ...) stops
// the log for good: Writable() and every waiting and later Commit() return
// the IOError naming the file, offset and errno. Nothing is retried (a failed
// fsync may have dropped the dirty pages; retrying it could report success
// for data that is gone). A record is acknowledged only once it was written
// (and synced, where the ack asks for it) with every record before it.
//
// Thread safety: every method may be called concurrently, except that Close()
// (and the destructor) must not race other calls.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/commit_log.h"
#include "engine/status.h"
#include "wal/file_system.h"
#include "wal/log_format.h"

namespace worlddb::wal {

enum class SyncMode : uint8_t {
  kAlways = 0,    // Commit returns after the record was written and fdatasync'ed
  kInterval = 1,  // Commit returns once written; fdatasync at least every interval_ms
};

// Whether new segments are preallocated by default: bench/wal_bench measured
// it on this machine (docs/benchmarks.md, "Write-ahead log").
inline constexpr bool kDefaultPreallocate = true;
// The next segment is prepared (reserved as PreallocationFor says, synced)
// under this name by a helper thread while the current one fills, and renamed at rotation.
inline constexpr char kSpareSegmentName[] = "wal-spare.tmp";
// In kInterval, the log starts writeback of the current segment every this
// many bytes, so that a sync (above all the one closing a segment, which
// every appender waits for) finds little left to write.
inline constexpr uint64_t kWritebackBytes = uint64_t{4} << 20;

// How each mode reserves a segment's blocks (LogOptions::preallocate_method).
// In kAlways every commit waits for an fdatasync, and one after overwriting
// written blocks journals no extent conversion (92 against 142 us,
// docs/benchmarks.md "Write-ahead log"), so segments are zero-filled ahead
// of use. In kInterval no commit waits for a sync, and zero-filling wrote
// every log byte twice: the spare thread's zeros took 17 % of the server's
// CPU in worldload's logged moves (docs/benchmarks.md "Logged moves").
// fallocate() still reserves the blocks.
constexpr Preallocate PreallocationFor(SyncMode mode) {
  return mode == SyncMode::kAlways ? Preallocate::kZeroFill : Preallocate::kFallocate;
}

struct LogOptions {
  std::string dir;
  SyncMode mode = SyncMode::kAlways;
  uint32_t interval_ms = 10;
  uint64_t segment_bytes = kDefaultSegmentBytes;
  bool preallocate = kDefaultPreallocate;
  Preallocate preallocate_method =
      Preallocate::kZeroFill;                            // when preallocate; see PreallocationFor
  size_t group_buffer_bytes = kDefaultGroupBufferBytes;  // each of kGroupBuffers
  FileSystem* fs = nullptr;                              // null = the real disk through io_uring
};

struct SegmentInfo {
  std::string path;
  uint64_t first_lsn = 0;
  uint64_t last_lsn = 0;  // first_lsn - 1 when it holds no record yet
  uint64_t bytes = 0;     // file size
  bool current = false;   // the segment being written
};

// Counters since Open, for metrics.
struct LogStats {
  uint64_t records = 0;
  uint64_t bytes = 0;    // framed bytes sequenced
  uint64_t flushes = 0;  // write submissions (group commits)
  uint64_t syncs = 0;    // fdatasyncs that covered records
  uint64_t segments_created = 0;
  uint64_t segments_from_spare = 0;  // preallocated ahead of use, renamed in
  uint64_t spare_failures = 0;       // preparing a spare failed (segment made without one)
  // group_records[k]: flushes that carried [2^k, 2^(k+1)) records.
  std::array<uint64_t, 24> group_records{};
  // sync_us[k]: write+fdatasync submissions that took [2^k, 2^(k+1)) us.
  std::array<uint64_t, 32> sync_us{};
  // The sums of the two (Prometheus histograms carry one).
  uint64_t group_records_sum = 0;
  uint64_t sync_us_sum = 0;
};

class LogWriter final : public CommitLog {
 public:
  // Starts a new segment at last_lsn + 1 (replacing a file of that name:
  // recovery guarantees it holds no valid record). The first Commit/Mark
  // carries `first_ticket`.
  static Result<std::unique_ptr<LogWriter>> Open(const LogOptions& o, uint64_t last_lsn,
                                                 uint64_t first_ticket);
  ~LogWriter() override;
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  Status Commit(uint64_t ticket, RecordType type, std::span<const uint8_t> record,
                Ack ack = Ack::kMode) override;
  Result<uint64_t> Mark(uint64_t ticket) override;
  // In kAlways: records 1..lsn synced; in kInterval: written (Flush() syncs).
  Status WaitDurable(uint64_t lsn) override;
  Status WaitAll(Ack ack) override;
  Status Writable() const override;

  uint64_t last_lsn() const;     // last LSN assigned
  uint64_t written_lsn() const;  // last LSN that reached the kernel
  uint64_t durable_lsn() const;  // last LSN fdatasync'ed
  uint64_t bytes_written() const;
  LogStats stats() const;
  const LogOptions& options() const { return o_; }

  // Writes and fdatasyncs everything sequenced so far.
  Status Flush();
  // Flush, then stop the log thread; later calls fail with Unavailable.
  Status Close();

  Result<std::vector<SegmentInfo>> Segments() const;
  // Removes (archive_dir empty) or moves into archive_dir every segment all
  // of whose records have LSN <= lsn, oldest first, never the one being
  // written; then fsyncs the directories.
  Status RemoveSegmentsBelow(uint64_t lsn, const std::string& archive_dir);

 private:
  struct Waiter;
  struct Chunk {
    int buf = -1;  // group buffer index, or -1: `heap` holds the bytes
    std::unique_ptr<uint8_t[]> heap;
    uint8_t* data = nullptr;
    size_t size = 0;
    uint64_t offset = 0;       // in its segment
    uint64_t new_segment = 0;  // nonzero: create segment wal-<new_segment> first
    uint64_t last_lsn = 0;
    uint32_t records = 0;
  };
  struct AlignedFree {
    void operator()(uint8_t* p) const;
  };

  LogWriter(const LogOptions& o, FileSystem* fs, uint64_t last_lsn, uint64_t first_ticket);
  Status Start();
  Status Enqueue(std::unique_lock<std::mutex>& l, Waiter* w);
  void Drain(std::unique_lock<std::mutex>& l);
  Status Append(std::unique_lock<std::mutex>& l, Waiter* w);
  void SealOpen();
  Status WaitFor(std::unique_lock<std::mutex>& l, uint64_t lsn, bool durable);
  void Fail(const Status& s);
  void WakeWaiters();
  void Loop();
  void PrepareLoop();
  void WantSpare();
  // Log thread only (no lock held):
  Status WriteChunks(std::vector<Chunk>& chunks, bool sync);
  Status OpenSegment(uint64_t first_lsn);
  Status RunOps(std::vector<IoOp>& ops);

  const LogOptions o_;
  FileSystem* const fs_;
  std::unique_ptr<LogIo> io_;
  std::vector<std::unique_ptr<uint8_t, AlignedFree>> bufs_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // wakes the log thread
  std::condition_variable space_cv_;  // a group buffer became free
  // Sequencing (appenders).
  uint64_t next_ticket_;
  std::map<uint64_t, Waiter*> parked_;
  bool sequencing_ = false;
  uint64_t last_lsn_;
  uint64_t last_ts_ = 0;
  uint64_t seg_pos_ = kSegmentHeaderBytes;  // next offset in the newest segment
  uint64_t seg_records_ = 0;
  std::optional<Chunk> open_;  // the group buffer being filled
  std::deque<Chunk> queue_;    // sealed, waiting for the log thread
  std::vector<int> free_bufs_;
  // Progress (log thread).
  uint64_t written_lsn_;
  uint64_t durable_lsn_;
  uint64_t bytes_written_ = 0;
  uint64_t cur_segment_first_ = 0;
  uint64_t flush_target_ = 0;
  bool log_idle_ = false;
  std::chrono::steady_clock::time_point last_sync_;
  std::vector<Waiter*> waiting_;
  LogStats stats_;
  Status failed_;
  std::atomic<bool> failed_flag_{false};
  bool stop_ = false;
  bool closed_ = false;
  std::thread thread_;

  // Log thread state.
  int cur_handle_ = -1;
  std::string cur_path_;
  bool cur_dirty_ = false;       // written since the last sync of cur_handle_
  uint64_t cur_end_ = 0;         // end of the last write in cur_handle_
  uint64_t writeback_from_ = 0;  // cur_handle_'s bytes before this were written back or synced
  alignas(8) uint8_t seg_header_[kSegmentHeaderBytes] = {};

  std::mutex maint_mu_;  // RemoveSegmentsBelow

  // The spare segment (when preallocating).
  enum class Spare : uint8_t { kNone, kWanted, kReady, kFailed };
  std::mutex prep_mu_;
  std::condition_variable prep_cv_;
  Spare spare_ = Spare::kNone;
  bool prep_stop_ = false;
  std::string spare_path_;
  std::thread prep_thread_;
};

}  // namespace worlddb::wal
