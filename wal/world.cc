#include "wal/world.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

namespace worlddb::wal {

namespace fs = std::filesystem;

namespace {

// Data directories open in this process. The fcntl lock below keeps other
// processes out but does not conflict within one process, so a second Open
// of the same directory here is refused by this registry.
std::mutex open_dirs_mu;
std::set<std::string>& OpenDirs() {
  static auto* dirs = new std::set<std::string>();
  return *dirs;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Status MakeDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create directory " + dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

std::string RecoveryReport::ToString() const {
  std::string s;
  if (snapshot) {
    s += "loaded snapshot " + snapshot->path + " (LSN " + std::to_string(snapshot->lsn) + ", " +
         std::to_string(snapshot->entities) + " entities) in " +
         std::to_string(static_cast<int>(load_seconds * 1000)) + " ms; ";
  } else {
    s += "no snapshot; ";
  }
  s += "replayed " + std::to_string(records_replayed) + " log records (" +
       std::to_string(bytes_replayed) + " bytes) in " +
       std::to_string(static_cast<int>(replay_seconds * 1000)) + " ms; last LSN " +
       std::to_string(last_lsn);
  if (torn_tail) {
    s += "; cut a torn tail of " + std::to_string(torn_tail->bytes_dropped) + " bytes at " +
         torn_tail->segment + " offset " + std::to_string(torn_tail->offset);
  }
  if (!skipped_snapshots.empty()) s += "; skipped damaged snapshots: " + skipped_snapshots;
  if (!salvaged.empty()) s += "; SALVAGED: " + salvaged;
  return s;
}

// ---- World --------------------------------------------------------------------

World::World(const WorldOptions& options) : options_(options) {}

Result<std::unique_ptr<World>> World::Open(const WorldOptions& options) {
  if (options.snapshots_kept < 1) {
    return Status::InvalidArgument("snapshots_kept must be at least 1");
  }
  std::unique_ptr<World> w(new World(options));
  WORLDDB_RETURN_IF_ERROR(MakeDir(options.data_dir));
  // One process per data directory: a second server (or an online restore
  // into a live directory) would interleave two logs.
  std::error_code ec;
  const std::string canonical = fs::canonical(options.data_dir, ec).string();
  if (ec) return Status::IOError("cannot resolve " + options.data_dir + ": " + ec.message());
  {
    std::lock_guard<std::mutex> lock(open_dirs_mu);
    if (!OpenDirs().insert(canonical).second) {
      return Status::Unavailable("data directory " + options.data_dir +
                                 " is already open in this process");
    }
  }
  w->registered_dir_ = canonical;
  const std::string lock = options.data_dir + "/LOCK";
  w->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (w->lock_fd_ < 0) {
    return Status::IOError("cannot open " + lock + ": " + std::strerror(errno));
  }
  // A POSIX record lock, not flock(): it belongs to this process and is not
  // inherited by a forked snapshot child, so the directory is free as soon
  // as this process is gone.
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(w->lock_fd_, F_SETLK, &fl) != 0) {
    return Status::Unavailable("data directory " + options.data_dir +
                               " is in use by another process (" + lock + " is locked)");
  }
  WORLDDB_RETURN_IF_ERROR(MakeDir(WalDir(options.data_dir)));
  WORLDDB_RETURN_IF_ERROR(MakeDir(SnapshotDir(options.data_dir)));
  if (options.archive) WORLDDB_RETURN_IF_ERROR(MakeDir(ArchiveDir(options.data_dir)));

  auto engine = Engine::Open(options.engine);
  if (!engine.ok()) return engine.status();
  w->engine_ = std::move(engine.value());
  WORLDDB_RETURN_IF_ERROR(w->Recover());

  if (options.durability.mode != Durability::Mode::kNone) {
    LogOptions lo;
    lo.dir = WalDir(options.data_dir);
    lo.mode = options.durability.mode == Durability::Mode::kAlways ? SyncMode::kAlways
                                                                   : SyncMode::kInterval;
    lo.interval_ms = options.durability.interval_ms;
    lo.segment_bytes = options.segment_bytes;
    lo.preallocate_method = PreallocationFor(lo.mode);
    auto log = LogWriter::Open(lo, w->recovery_.last_lsn, w->engine_->last_ticket() + 1);
    if (!log.ok()) return log.status();
    w->log_ = std::move(log.value());
    w->engine_->SetCommitLog(w->log_.get());
  }
  w->base_lsn_ = w->recovery_.last_lsn;
  w->base_ticket_ = w->engine_->last_ticket();
  w->last_snapshot_ = w->recovery_.snapshot;
  w->last_snapshot_time_ = std::chrono::steady_clock::now();
  if (options.snapshot_interval_s > 0 || options.snapshot_log_bytes > 0) {
    World* self = w.get();
    w->snapshot_thread_ = std::thread([self] { self->SnapshotLoop(); });
  }
  return w;
}

Status World::Recover() {
  const auto start = std::chrono::steady_clock::now();
  auto snapshots = ListSnapshots(SnapshotDir(options_.data_dir));
  if (!snapshots.ok()) return snapshots.status();
  for (const SnapshotInfo& candidate : snapshots.value()) {
    SnapshotInfo info;
    Status st = LoadSnapshot(candidate.path, engine_.get(), &info);
    if (st.ok()) {
      recovery_.snapshot = info;
      break;
    }
    if (!options_.salvage) {
      return Status::Corruption(st.message() +
                                "; to start from the next older snapshot and the log, move this "
                                "file aside or start with --salvage");
    }
    recovery_.skipped_snapshots += (recovery_.skipped_snapshots.empty() ? "" : "; ") +
                                   candidate.path + " (" + st.message() + ")";
    // A failed load verified before applying anything, but start clean anyway.
    auto fresh = Engine::Open(options_.engine);
    if (!fresh.ok()) return fresh.status();
    engine_ = std::move(fresh.value());
  }
  recovery_.load_seconds = SecondsSince(start);

  const auto replay_start = std::chrono::steady_clock::now();
  const uint64_t snapshot_lsn = recovery_.snapshot ? recovery_.snapshot->lsn : 0;
  // No segment at all after a snapshot: durability "none", or a directory
  // written by `worldctl restore`. (A logged world always keeps the segment
  // being written, so a log that lost segments is caught by the scan.)
  auto segments = ListSegments(WalDir(options_.data_dir));
  if (!segments.ok()) return segments.status();
  if (segments.value().empty()) {
    recovery_.last_lsn = snapshot_lsn;
    return Status::Ok();
  }
  ScanOptions so;
  so.dirs = {WalDir(options_.data_dir)};
  so.from_lsn = snapshot_lsn + 1;
  so.salvage = options_.salvage;
  so.repair_tail = true;
  Engine* engine = engine_.get();
  uint64_t records = 0, bytes = 0;
  auto scan = ScanLog(so, [&](const Record& r) -> Status {
    auto applied = engine->Replay(r.type, r.payload.data(), r.payload.size());
    if (!applied.ok()) {
      return Status::Corruption(
          "log record LSN " + std::to_string(r.lsn) + " at " + std::string(r.segment) + " offset " +
          std::to_string(r.offset) +
          " does not apply to the recovered world: " + applied.status().message());
    }
    ++records;
    bytes += r.payload.size();
    return Status::Ok();
  });
  if (!scan.ok()) return scan.status();
  recovery_.records_replayed = records;
  recovery_.bytes_replayed = bytes;
  recovery_.last_lsn = std::max(snapshot_lsn, scan.value().last_lsn);
  recovery_.torn_tail = scan.value().torn_tail;
  if (scan.value().salvage) {
    const SalvageReport& sv = *scan.value().salvage;
    recovery_.salvaged =
        sv.damage + " (kept records through LSN " + std::to_string(sv.kept_through_lsn) + ")";
    WORLDDB_RETURN_IF_ERROR(SetSalvagedLogAside(sv));
  }
  recovery_.replay_seconds = SecondsSince(replay_start);
  return Status::Ok();
}

// Makes a salvage permanent, so that the new log continues the kept prefix:
// the damaged segment is copied to NAME.salvaged and cut at the damage, and
// every later segment is renamed to NAME.salvaged (nothing is deleted; the
// reader ignores these names).
Status World::SetSalvagedLogAside(const SalvageReport& sv) {
  std::error_code ec;
  const fs::path damaged(sv.segment);
  fs::copy_file(damaged, damaged.string() + ".salvaged", fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::IOError("salvage: cannot copy " + sv.segment + ": " + ec.message());
  fs::resize_file(damaged, sv.offset, ec);
  if (ec) return Status::IOError("salvage: cannot cut " + sv.segment + ": " + ec.message());
  auto segments = ListSegments(WalDir(options_.data_dir));
  if (!segments.ok()) return segments.status();
  for (const SegmentFile& seg : segments.value()) {
    if (seg.path <= damaged.string()) continue;  // names sort by first LSN
    fs::rename(seg.path, seg.path + ".salvaged", ec);
    if (ec) return Status::IOError("salvage: cannot set " + seg.path + " aside: " + ec.message());
  }
  recovery_.salvaged +=
      "; the damaged log from there on was set aside as *.salvaged in " + WalDir(options_.data_dir);
  return Status::Ok();
}

World::~World() {
  (void)Close();
  engine_.reset();  // stop the shards before the log they write to
  log_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (!registered_dir_.empty()) {
    std::lock_guard<std::mutex> lock(open_dirs_mu);
    OpenDirs().erase(registered_dir_);
  }
}

Status World::Close() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (closed_) return Status::Ok();
    closed_ = true;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  if (!log_) return Status::Ok();
  Status flushed = log_->Flush();
  Status closed = log_->Close();
  return flushed.ok() ? closed : flushed;
}

Status World::Writable() const { return log_ ? log_->Writable() : Status::Ok(); }

std::optional<SnapshotInfo> World::last_snapshot() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return last_snapshot_;
}

Status World::last_snapshot_error() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return last_error_;
}

uint64_t World::LsnWithoutLog() const {
  return base_lsn_ + (engine_->last_ticket() - base_ticket_);
}

Result<SnapshotInfo> World::Snapshot() {
  std::lock_guard<std::mutex> one_at_a_time(snapshot_mu_);
  SnapshotOptions so;
  so.lsn_without_log = LsnWithoutLog();
  const uint64_t log_bytes = log_ ? log_->bytes_written() : 0;
  auto taken = TakeSnapshot(*engine_, SnapshotDir(options_.data_dir), so);
  if (!taken.ok()) return taken.status();
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    last_snapshot_ = taken.value();
    log_bytes_at_snapshot_ = log_bytes;
    last_snapshot_time_ = std::chrono::steady_clock::now();
  }
  WORLDDB_RETURN_IF_ERROR(Prune(taken.value()));
  return taken;
}

// Keeps the newest snapshots_kept snapshots, and retires the log segments the
// oldest kept snapshot no longer needs.
Status World::Prune(const SnapshotInfo& newest) {
  auto snapshots = ListSnapshots(SnapshotDir(options_.data_dir));
  if (!snapshots.ok()) return snapshots.status();
  const std::vector<SnapshotInfo>& all = snapshots.value();  // newest first
  uint64_t oldest_kept_lsn = newest.lsn;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i < options_.snapshots_kept) {
      oldest_kept_lsn = std::min(oldest_kept_lsn, all[i].lsn);
      continue;
    }
    std::error_code ec;
    fs::remove(all[i].path, ec);
    if (ec)
      return Status::IOError("cannot remove old snapshot " + all[i].path + ": " + ec.message());
  }
  if (!log_) return Status::Ok();
  const std::string archive = options_.archive ? ArchiveDir(options_.data_dir) : std::string();
  WORLDDB_RETURN_IF_ERROR(log_->RemoveSegmentsBelow(oldest_kept_lsn, archive));
  if (!options_.archive || (options_.archive_max_age_s == 0 && options_.archive_max_bytes == 0)) {
    return Status::Ok();
  }
  // Archive retention: oldest segments first (names sort by first LSN).
  struct Archived {
    fs::path path;
    uint64_t bytes;
    fs::file_time_type mtime;
  };
  std::vector<Archived> segments;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(archive, ec)) {
    if (!e.is_regular_file() || e.path().extension() != ".log") continue;
    segments.push_back({e.path(), static_cast<uint64_t>(e.file_size()), e.last_write_time()});
  }
  if (ec) return Status::IOError("cannot list " + archive + ": " + ec.message());
  std::sort(segments.begin(), segments.end(),
            [](const Archived& a, const Archived& b) { return a.path < b.path; });
  uint64_t total = 0;
  for (const Archived& a : segments) total += a.bytes;
  const auto now = fs::file_time_type::clock::now();
  for (const Archived& a : segments) {
    const bool too_old = options_.archive_max_age_s > 0 &&
                         now - a.mtime > std::chrono::seconds(options_.archive_max_age_s);
    const bool too_big = options_.archive_max_bytes > 0 && total > options_.archive_max_bytes;
    if (!too_old && !too_big) break;
    fs::remove(a.path, ec);
    if (ec) return Status::IOError("cannot remove archived segment " + a.path.string());
    total -= a.bytes;
  }
  return Status::Ok();
}

void World::SnapshotLoop() {
  std::unique_lock<std::mutex> lock(state_mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (stopping_) break;
    const bool by_time = options_.snapshot_interval_s > 0 &&
                         std::chrono::steady_clock::now() - last_snapshot_time_ >=
                             std::chrono::seconds(options_.snapshot_interval_s);
    const bool by_size =
        options_.snapshot_log_bytes > 0 && log_ &&
        log_->bytes_written() - log_bytes_at_snapshot_ >= options_.snapshot_log_bytes;
    if (!by_time && !by_size) continue;
    if (log_ && !log_->Writable().ok()) continue;  // nothing new can be made durable
    lock.unlock();
    auto taken = Snapshot();
    lock.lock();
    last_error_ = taken.ok() ? Status::Ok() : taken.status();
    if (!taken.ok()) {
      // Try again at the next trigger rather than in a tight loop.
      last_snapshot_time_ = std::chrono::steady_clock::now();
      if (log_) log_bytes_at_snapshot_ = log_->bytes_written();
    }
  }
}

}  // namespace worlddb::wal
