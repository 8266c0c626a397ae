#include "wal/log_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "wal/log_reader.h"

namespace worlddb::wal {

namespace {

constexpr const char* kStopped =
    "; the log stopped accepting writes: fix the disk, then restart the server (every "
    "acknowledged write is in the log; writes that got this error were not acknowledged)";

uint64_t NowMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

size_t Log2Bucket(uint64_t v, size_t buckets) {
  const size_t b = v == 0 ? 0 : static_cast<size_t>(std::bit_width(v) - 1);
  return std::min(b, buckets - 1);
}

}  // namespace

// One caller of Commit/Mark/WaitDurable/Flush, on its own stack. It sleeps
// once, until `done`: the thread that sequences its ticket either finishes
// it (mark, empty record, kQueued) or moves it straight to the list the log
// thread wakes from, so an appender is woken once per commit.
struct LogWriter::Waiter {
  uint64_t ticket = 0;
  RecordType type = RecordType::kWriteBatch;
  std::span<const uint8_t> record;
  Ack ack = Ack::kMode;
  bool mark = false;
  uint64_t lsn = 0;
  // Waiting for written/durable.
  uint64_t need = 0;
  bool need_durable = false;
  bool done = false;
  Status st;
  std::condition_variable cv;
};

void LogWriter::AlignedFree::operator()(uint8_t* p) const { std::free(p); }

LogWriter::LogWriter(const LogOptions& o, FileSystem* fs, uint64_t last_lsn, uint64_t first_ticket)
    : o_(o),
      fs_(fs),
      next_ticket_(first_ticket),
      last_lsn_(last_lsn),
      written_lsn_(last_lsn),
      durable_lsn_(last_lsn) {}

Result<std::unique_ptr<LogWriter>> LogWriter::Open(const LogOptions& o, uint64_t last_lsn,
                                                   uint64_t first_ticket) {
  if (o.dir.empty()) return Status::InvalidArgument("log directory is empty");
  if (o.segment_bytes < kMinSegmentBytes) {
    return Status::InvalidArgument("segment size " + std::to_string(o.segment_bytes) +
                                   " bytes is below the minimum of " +
                                   std::to_string(kMinSegmentBytes));
  }
  if (o.group_buffer_bytes < 4096 || o.group_buffer_bytes % 4096 != 0 ||
      o.group_buffer_bytes > (size_t{1} << 30)) {
    return Status::InvalidArgument("group buffer size " + std::to_string(o.group_buffer_bytes) +
                                   " must be a multiple of 4096 between 4 KiB and 1 GiB");
  }
  if (o.mode == SyncMode::kInterval && o.interval_ms == 0) {
    return Status::InvalidArgument("sync interval must be at least 1 ms");
  }
  if (last_lsn == UINT64_MAX) return Status::InvalidArgument("last_lsn is out of range");
  FileSystem* fs = o.fs != nullptr ? o.fs : FileSystem::Default();
  std::unique_ptr<LogWriter> w(new LogWriter(o, fs, last_lsn, first_ticket));
  WORLDDB_RETURN_IF_ERROR(w->Start());
  return w;
}

Status LogWriter::Start() {
  WORLDDB_RETURN_IF_ERROR(fs_->CreateDir(o_.dir));
  std::vector<std::span<uint8_t>> spans;
  for (size_t i = 0; i < kGroupBuffers; ++i) {
    void* p = std::aligned_alloc(4096, o_.group_buffer_bytes);
    if (p == nullptr) return Status::ResourceExhausted("cannot allocate the log's group buffers");
    bufs_.emplace_back(static_cast<uint8_t*>(p));
    spans.emplace_back(bufs_.back().get(), o_.group_buffer_bytes);
    free_bufs_.push_back(static_cast<int>(i));
  }
  auto io = fs_->NewLogIo(spans);
  if (!io.ok()) return io.status();
  io_ = std::move(io.value());
  spare_path_ = JoinPath(o_.dir, kSpareSegmentName);
  if (o_.preallocate) {
    // A restart must not wait for segment_bytes of zeros to be written: the
    // spare a previous run prepared (and left at Close) becomes the first
    // segment; without one, the first segment starts unreserved and the
    // helper prepares the next.
    auto spare_size = fs_->FileSize(spare_path_);
    if (spare_size.ok() && *spare_size == o_.segment_bytes) spare_ = Spare::kReady;
    prep_thread_ = std::thread([this] { PrepareLoop(); });
  }
  WORLDDB_RETURN_IF_ERROR(OpenSegment(last_lsn_ + 1));
  last_sync_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void LogWriter::WantSpare() {
  std::lock_guard l(prep_mu_);
  if (spare_ == Spare::kNone || spare_ == Spare::kFailed) {
    spare_ = Spare::kWanted;
    prep_cv_.notify_one();
  }
}

// Prepares the next segment while the current one takes records, so that
// rotation costs a rename instead of reserving segment_bytes.
void LogWriter::PrepareLoop() {
  std::unique_lock l(prep_mu_);
  while (true) {
    prep_cv_.wait(l, [&] { return prep_stop_ || spare_ == Spare::kWanted; });
    if (prep_stop_) return;
    l.unlock();
    const Status s = fs_->PrepareFile(spare_path_, o_.segment_bytes, o_.preallocate_method);
    l.lock();
    spare_ = s.ok() ? Spare::kReady : Spare::kFailed;
    if (!s.ok()) {
      // Not fatal: the next segment is created without preallocation, and a
      // real lack of space shows up as a failed append.
      std::lock_guard m(mu_);
      ++stats_.spare_failures;
    }
  }
}

LogWriter::~LogWriter() { (void)Close(); }

// ---- Appenders ----

Status LogWriter::Commit(uint64_t ticket, RecordType type, std::span<const uint8_t> record,
                         Ack ack) {
  Waiter w;
  w.ticket = ticket;
  w.type = type;
  w.record = record;
  w.ack = ack;
  std::unique_lock l(mu_);
  return Enqueue(l, &w);
}

Result<uint64_t> LogWriter::Mark(uint64_t ticket) {
  Waiter w;
  w.ticket = ticket;
  w.mark = true;
  std::unique_lock l(mu_);
  WORLDDB_RETURN_IF_ERROR(Enqueue(l, &w));
  return w.lsn;
}

Status LogWriter::Enqueue(std::unique_lock<std::mutex>& l, Waiter* w) {
  if (!failed_.ok()) return failed_;
  if (w->ticket < next_ticket_ || parked_.count(w->ticket) != 0) {
    return Status::InvalidArgument(
        "ticket " + std::to_string(w->ticket) +
        " was already passed to the log (next ticket: " + std::to_string(next_ticket_) + ")");
  }
  parked_[w->ticket] = w;
  if (!sequencing_) Drain(l);
  while (!w->done) w->cv.wait(l);
  return w->st;
}

void LogWriter::Drain(std::unique_lock<std::mutex>& l) {
  sequencing_ = true;
  while (failed_.ok()) {
    const auto it = parked_.find(next_ticket_);
    if (it == parked_.end()) break;
    Waiter* x = it->second;
    parked_.erase(it);
    if (!x->record.empty()) {
      const Status s = Append(l, x);
      if (!s.ok()) {
        Fail(s);  // finishes every parked and waiting caller, not x
        x->st = failed_;
        x->done = true;
        x->cv.notify_one();
        break;
      }
    } else if (x->mark) {
      x->lsn = last_lsn_;
    }
    ++next_ticket_;
    if (x->record.empty() || x->ack == Ack::kQueued) {
      x->done = true;
      x->cv.notify_one();
      continue;
    }
    x->need = x->lsn;
    x->need_durable = x->ack == Ack::kMode && o_.mode == SyncMode::kAlways;
    waiting_.push_back(x);  // the log thread finishes it
  }
  sequencing_ = false;
}

void LogWriter::SealOpen() {
  if (open_.has_value() && open_->size > 0) queue_.push_back(std::move(*open_));
  open_.reset();
}

Status LogWriter::Append(std::unique_lock<std::mutex>& l, Waiter* w) {
  const uint64_t len = w->record.size();
  if (len > kMaxPayloadBytes) {
    return Status::InvalidArgument("record of " + std::to_string(len) +
                                   " bytes is larger than the log's limit of " +
                                   std::to_string(kMaxPayloadBytes) + kStopped);
  }
  const uint64_t framed = FramedSize(len);
  const uint64_t lsn = last_lsn_ + 1;
  uint64_t new_segment = 0;
  if (seg_records_ > 0 && seg_pos_ + framed > o_.segment_bytes) {
    SealOpen();
    new_segment = lsn;
    seg_pos_ = kSegmentHeaderBytes;
    seg_records_ = 0;
  }
  // Never decreasing, so restore-by-time can binary-search the log.
  const uint64_t ts = std::max(last_ts_, NowMicros());
  last_ts_ = ts;
  if (framed > o_.group_buffer_bytes) {
    SealOpen();
    Chunk c;
    c.heap.reset(new (std::nothrow) uint8_t[framed]);
    if (c.heap == nullptr) {
      return Status::ResourceExhausted("cannot allocate " + std::to_string(framed) +
                                       " bytes for a log record" + kStopped);
    }
    c.data = c.heap.get();
    EncodeRecord(lsn, w->type, ts, w->record, c.data);
    c.size = framed;
    c.offset = seg_pos_;
    c.new_segment = new_segment;
    c.last_lsn = lsn;
    c.records = 1;
    queue_.push_back(std::move(c));
  } else {
    if (open_.has_value() && open_->size + framed > o_.group_buffer_bytes) SealOpen();
    if (!open_.has_value()) {
      if (free_bufs_.empty() && log_idle_) work_cv_.notify_one();
      while (free_bufs_.empty() && failed_.ok()) space_cv_.wait(l);
      if (!failed_.ok()) return failed_;
      Chunk c;
      c.buf = free_bufs_.back();
      free_bufs_.pop_back();
      c.data = bufs_[static_cast<size_t>(c.buf)].get();
      c.offset = seg_pos_;
      c.new_segment = new_segment;
      open_ = std::move(c);
    }
    EncodeRecord(lsn, w->type, ts, w->record, open_->data + open_->size);
    open_->size += framed;
    open_->last_lsn = lsn;
    ++open_->records;
  }
  seg_pos_ += framed;
  ++seg_records_;
  last_lsn_ = lsn;
  w->lsn = lsn;
  ++stats_.records;
  stats_.bytes += framed;
  if (log_idle_) work_cv_.notify_one();
  return Status::Ok();
}

Status LogWriter::WaitFor(std::unique_lock<std::mutex>& l, uint64_t lsn, bool durable) {
  if ((durable ? durable_lsn_ : written_lsn_) >= lsn) return Status::Ok();
  if (!failed_.ok()) return failed_;
  Waiter w;
  w.need = lsn;
  w.need_durable = durable;
  waiting_.push_back(&w);
  if (log_idle_) work_cv_.notify_one();
  while (!w.done) w.cv.wait(l);
  return w.st;
}

void LogWriter::WakeWaiters() {
  size_t keep = 0;
  for (Waiter* w : waiting_) {
    if ((w->need_durable ? durable_lsn_ : written_lsn_) >= w->need) {
      w->done = true;
      w->cv.notify_one();
    } else {
      waiting_[keep++] = w;
    }
  }
  waiting_.resize(keep);
}

void LogWriter::Fail(const Status& s) {
  if (!failed_.ok()) return;
  failed_ = s;
  failed_flag_.store(true, std::memory_order_release);
  for (auto& [t, w] : parked_) {
    w->st = failed_;
    w->done = true;
    w->cv.notify_one();
  }
  parked_.clear();
  for (Waiter* w : waiting_) {
    w->st = failed_;
    w->done = true;
    w->cv.notify_one();
  }
  waiting_.clear();
  space_cv_.notify_all();
  work_cv_.notify_all();
}

Status LogWriter::WaitDurable(uint64_t lsn) {
  std::unique_lock l(mu_);
  if (lsn > last_lsn_) {
    return Status::InvalidArgument("LSN " + std::to_string(lsn) +
                                   " was not assigned yet (last LSN: " + std::to_string(last_lsn_) +
                                   ")");
  }
  return WaitFor(l, lsn, o_.mode == SyncMode::kAlways);
}

Status LogWriter::WaitAll(Ack ack) {
  if (ack == Ack::kQueued) return Status::Ok();
  std::unique_lock l(mu_);
  return WaitFor(l, last_lsn_, ack == Ack::kMode && o_.mode == SyncMode::kAlways);
}

Status LogWriter::Writable() const {
  if (!failed_flag_.load(std::memory_order_acquire)) return Status::Ok();
  std::lock_guard l(mu_);
  return failed_;
}

uint64_t LogWriter::last_lsn() const {
  std::lock_guard l(mu_);
  return last_lsn_;
}
uint64_t LogWriter::written_lsn() const {
  std::lock_guard l(mu_);
  return written_lsn_;
}
uint64_t LogWriter::durable_lsn() const {
  std::lock_guard l(mu_);
  return durable_lsn_;
}
uint64_t LogWriter::bytes_written() const {
  std::lock_guard l(mu_);
  return bytes_written_;
}
LogStats LogWriter::stats() const {
  std::lock_guard l(mu_);
  return stats_;
}

Status LogWriter::Flush() {
  std::unique_lock l(mu_);
  if (!failed_.ok()) return failed_;
  const uint64_t target = last_lsn_;
  flush_target_ = std::max(flush_target_, target);
  work_cv_.notify_one();
  return WaitFor(l, target, true);
}

Status LogWriter::Close() {
  {
    std::lock_guard l(mu_);
    if (closed_) return Status::Ok();
  }
  Status s = thread_.joinable() ? Flush() : Status::Ok();
  {
    std::lock_guard l(mu_);
    stop_ = true;
    work_cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (cur_handle_ >= 0) {
    const Status c = io_->CloseSegment(cur_handle_);
    if (s.ok()) s = c;
    cur_handle_ = -1;
  }
  if (prep_thread_.joinable()) {
    {
      std::lock_guard p(prep_mu_);
      prep_stop_ = true;
      prep_cv_.notify_one();
    }
    prep_thread_.join();
    // A ready spare stays for the next Open; a half-prepared one goes.
    if (spare_ != Spare::kReady) (void)fs_->Remove(spare_path_);
  }
  std::lock_guard l(mu_);
  closed_ = true;
  Fail(Status::Unavailable("the log " + o_.dir + " is closed"));
  return s;
}

// ---- The log thread ----

void LogWriter::Loop() {
  const auto interval = std::chrono::milliseconds(o_.interval_ms);
  std::unique_lock l(mu_);
  while (true) {
    bool sync = false;
    while (true) {
      if (!failed_.ok()) {
        if (stop_) return;
        work_cv_.wait(l);
        continue;
      }
      const bool have_data = !queue_.empty() || (open_.has_value() && open_->size > 0);
      const bool unsynced = written_lsn_ > durable_lsn_;
      const auto now = std::chrono::steady_clock::now();
      const bool due = o_.mode == SyncMode::kInterval && now >= last_sync_ + interval;
      // Syncing with records gathered costs no more than syncing without.
      sync = o_.mode == SyncMode::kAlways || flush_target_ > durable_lsn_ || due;
      if (have_data || (unsynced && sync)) break;
      if (stop_) return;
      log_idle_ = true;
      if (o_.mode == SyncMode::kInterval && unsynced) {
        work_cv_.wait_until(l, last_sync_ + interval);
      } else {
        work_cv_.wait(l);
      }
      log_idle_ = false;
    }
    SealOpen();
    std::vector<Chunk> chunks;
    chunks.reserve(queue_.size());
    uint64_t last = written_lsn_;
    uint32_t records = 0;
    for (auto& c : queue_) {
      last = std::max(last, c.last_lsn);
      records += c.records;
      chunks.push_back(std::move(c));
    }
    queue_.clear();
    l.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    const Status s = WriteChunks(chunks, sync);
    const auto t1 = std::chrono::steady_clock::now();
    l.lock();
    uint64_t bytes = 0;
    for (auto& c : chunks) {
      bytes += c.size;
      if (c.buf >= 0) free_bufs_.push_back(c.buf);
    }
    space_cv_.notify_all();
    if (!s.ok()) {
      Fail(s);
      continue;
    }
    written_lsn_ = last;
    bytes_written_ += bytes;
    if (!chunks.empty()) {
      ++stats_.flushes;
      ++stats_.group_records[Log2Bucket(records, stats_.group_records.size())];
      stats_.group_records_sum += records;
    }
    if (sync) {
      durable_lsn_ = last;
      last_sync_ = t1;
      ++stats_.syncs;
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count();
      ++stats_.sync_us[Log2Bucket(static_cast<uint64_t>(us), stats_.sync_us.size())];
      stats_.sync_us_sum += static_cast<uint64_t>(us);
    }
    WakeWaiters();
  }
}

Status LogWriter::RunOps(std::vector<IoOp>& ops) {
  if (ops.empty()) return Status::Ok();
  io_->Run(cur_handle_, ops);
  for (const IoOp& op : ops) {
    if (op.kind == IoOp::Kind::kSync) {
      if (op.result < 0) {
        return Status::IOError(cur_path_ + ": fdatasync failed: " +
                               ErrnoText(static_cast<int>(-op.result)) + kStopped);
      }
      continue;
    }
    if (op.kind == IoOp::Kind::kWriteback) {
      // Treated like a failed fdatasync: the error may not be reported again.
      if (op.result < 0) {
        return Status::IOError(cur_path_ + ": sync_file_range failed: " +
                               ErrnoText(static_cast<int>(-op.result)) + kStopped);
      }
      continue;
    }
    if (op.result < 0) {
      return Status::IOError(cur_path_ + ": write of " + std::to_string(op.len) +
                             " bytes at offset " + std::to_string(op.offset) +
                             " failed: " + ErrnoText(static_cast<int>(-op.result)) + kStopped);
    }
    if (static_cast<size_t>(op.result) != op.len) {
      return Status::IOError(cur_path_ + ": short write at offset " + std::to_string(op.offset) +
                             ": " + std::to_string(op.result) + " of " + std::to_string(op.len) +
                             " bytes written (disk full?)" + kStopped);
    }
  }
  return Status::Ok();
}

Status LogWriter::OpenSegment(uint64_t first_lsn) {
  if (cur_handle_ >= 0) {
    WORLDDB_RETURN_IF_ERROR(io_->CloseSegment(cur_handle_));
    cur_handle_ = -1;
  }
  const std::string path = JoinPath(o_.dir, SegmentName(first_lsn));
  bool from_spare = false;
  if (prep_thread_.joinable()) {
    std::lock_guard p(prep_mu_);
    if (spare_ == Spare::kReady) {
      spare_ = Spare::kNone;
      from_spare = fs_->Rename(spare_path_, path).ok();
    }
  }
  // Without a ready spare the segment is created unreserved rather than
  // stall every appender while segment_bytes of zeros are written.
  auto h = from_spare ? io_->OpenPrepared(path) : io_->OpenSegment(path, 0, Preallocate::kNone);
  if (!h.ok()) return Status::IOError(h.status().message() + kStopped);
  cur_handle_ = *h;
  cur_path_ = path;
  EncodeSegmentHeader(first_lsn, seg_header_);
  std::vector<IoOp> ops(2);
  ops[0].kind = IoOp::Kind::kWrite;
  ops[0].data = seg_header_;
  ops[0].len = kSegmentHeaderBytes;
  ops[1].kind = IoOp::Kind::kSync;
  WORLDDB_RETURN_IF_ERROR(RunOps(ops));
  const Status d = fs_->SyncDir(o_.dir);
  if (!d.ok()) return Status::IOError(d.message() + kStopped);
  cur_dirty_ = false;
  cur_end_ = writeback_from_ = kSegmentHeaderBytes;
  {
    std::lock_guard l(mu_);
    cur_segment_first_ = first_lsn;
    ++stats_.segments_created;
    if (from_spare) ++stats_.segments_from_spare;
  }
  if (o_.preallocate && prep_thread_.joinable()) WantSpare();
  return Status::Ok();
}

Status LogWriter::WriteChunks(std::vector<Chunk>& chunks, bool sync) {
  std::vector<IoOp> ops;
  ops.reserve(chunks.size() + 2);
  for (Chunk& c : chunks) {
    if (c.new_segment != 0) {
      // Everything in the segment being closed is synced before the next one
      // takes records: a later LSN is never durable before an earlier one.
      if (cur_dirty_) ops.push_back(IoOp{IoOp::Kind::kSync});
      WORLDDB_RETURN_IF_ERROR(RunOps(ops));
      ops.clear();
      WORLDDB_RETURN_IF_ERROR(OpenSegment(c.new_segment));
    }
    IoOp op;
    op.kind = IoOp::Kind::kWrite;
    op.offset = c.offset;
    op.data = c.data;
    op.len = c.size;
    op.buf_index = c.buf;
    ops.push_back(op);
    cur_dirty_ = true;
    cur_end_ = c.offset + c.size;
  }
  // In kInterval, a sync (each interval, and the one that closes a segment
  // while every appender waits) would otherwise find up to a whole
  // segment dirty: start writing it back as it fills.
  if (!sync && o_.mode == SyncMode::kInterval && cur_end_ >= writeback_from_ + kWritebackBytes) {
    IoOp op;
    op.kind = IoOp::Kind::kWriteback;
    op.offset = writeback_from_;
    op.len = cur_end_ - writeback_from_;
    ops.push_back(op);
    writeback_from_ = cur_end_;
  }
  if (sync && cur_dirty_) ops.push_back(IoOp{IoOp::Kind::kSync});
  WORLDDB_RETURN_IF_ERROR(RunOps(ops));
  if (sync) {
    cur_dirty_ = false;
    writeback_from_ = cur_end_;
  }
  return Status::Ok();
}

// ---- Segment maintenance ----

Result<std::vector<SegmentInfo>> LogWriter::Segments() const {
  uint64_t cur = 0, written = 0;
  {
    std::lock_guard l(mu_);
    cur = cur_segment_first_;
    written = written_lsn_;
  }
  auto list = ListSegments(o_.dir, fs_);
  if (!list.ok()) return list.status();
  std::vector<SegmentInfo> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const SegmentFile& s = (*list)[i];
    SegmentInfo info;
    info.path = s.path;
    info.first_lsn = s.first_lsn;
    info.bytes = s.bytes;
    info.current = s.first_lsn == cur;
    info.last_lsn =
        i + 1 < list->size() ? (*list)[i + 1].first_lsn - 1 : std::max(written, s.first_lsn - 1);
    out.push_back(std::move(info));
  }
  return out;
}

Status LogWriter::RemoveSegmentsBelow(uint64_t lsn, const std::string& archive_dir) {
  std::lock_guard m(maint_mu_);
  uint64_t cur = 0;
  {
    std::lock_guard l(mu_);
    cur = cur_segment_first_;
  }
  auto list = ListSegments(o_.dir, fs_);
  if (!list.ok()) return list.status();
  if (!archive_dir.empty()) WORLDDB_RETURN_IF_ERROR(fs_->CreateDir(archive_dir));
  bool changed = false;
  Status st;
  // Oldest first, so that the log stays a contiguous run of segments even if
  // this stops half way.
  for (size_t i = 0; i + 1 < list->size(); ++i) {
    const SegmentFile& s = (*list)[i];
    if (s.first_lsn >= cur || (*list)[i + 1].first_lsn - 1 > lsn) break;
    st = archive_dir.empty() ? fs_->Remove(s.path)
                             : fs_->Rename(s.path, JoinPath(archive_dir, s.name));
    if (!st.ok()) break;
    changed = true;
  }
  if (changed) {
    // The archive's entry must be durable before the log's disappears.
    if (!archive_dir.empty()) WORLDDB_RETURN_IF_ERROR(fs_->SyncDir(archive_dir));
    WORLDDB_RETURN_IF_ERROR(fs_->SyncDir(o_.dir));
  }
  return st;
}

}  // namespace worlddb::wal
