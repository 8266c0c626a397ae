// Fault injection through FaultFileSystem: fail the N-th write, the N-th
// sync, make the N-th write short, or fill the disk, for EVERY N of a short
// run. After the fault the log refuses writes for good, and recovery (after
// a process crash or a power cut) finds a clean prefix of the log holding
// every acknowledged record.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "wal/fault_file_system.h"
#include "wal/log_reader.h"
#include "wal/log_writer.h"

namespace worlddb::wal {
namespace {

const std::string kDir = "/data/log";

std::vector<uint8_t> Payload(uint64_t ticket) {
  std::vector<uint8_t> v(40 + ticket % 90);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(ticket + i);
  return v;
}

enum class Cut { kProcessCrash, kPowerCut };

struct Run {
  bool opened = false;
  uint64_t commits = 0;
  std::vector<bool> acked;  // by ticket - 1
  bool failed = false;
};

// Commits `n` records (every 5th ticket empty) from `threads` threads.
Run Drive(FaultFileSystem& /*fs*/, const LogOptions& o, uint64_t n, int threads) {
  Run run;
  run.acked.assign(n, false);
  auto w = LogWriter::Open(o, 0, 1);
  if (!w.ok()) {
    EXPECT_EQ(w.status().code(), StatusCode::kIOError) << w.status().ToString();
    return run;
  }
  run.opened = true;
  std::atomic<uint64_t> next{1};
  std::mutex mu;
  std::vector<std::thread> ts;
  for (int k = 0; k < threads; ++k) {
    ts.emplace_back([&] {
      for (uint64_t t; (t = next.fetch_add(1)) <= n;) {
        const auto p = t % 5 == 0 ? std::vector<uint8_t>() : Payload(t);
        const Status s = (*w)->Commit(t, RecordType::kWriteBatch, p);
        std::lock_guard l(mu);
        if (s.ok()) {
          run.acked[t - 1] = !p.empty();
        } else {
          run.failed = true;
          EXPECT_EQ(s.code(), StatusCode::kIOError) << s.ToString();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  const Status writable = (*w)->Writable();
  // In interval mode a background sync can fail after every Commit returned:
  // the log stops without any caller having seen the error.
  if (run.failed || (!writable.ok() && o.mode == SyncMode::kInterval)) {
    EXPECT_FALSE(writable.ok());
    EXPECT_NE(writable.message().find(kDir), std::string::npos) << writable.message();
    EXPECT_NE(writable.message().find("restart"), std::string::npos) << writable.message();
    // Never again: later commits fail too, without touching the disk.
    EXPECT_FALSE((*w)->Commit(n + 1, RecordType::kWriteBatch, Payload(n + 1)).ok());
    EXPECT_FALSE((*w)->Flush().ok());
  } else {
    EXPECT_TRUE(writable.ok()) << writable.ToString();
  }
  return run;
}

// Recovery must find a prefix of the non-empty records, in ticket order,
// that holds every acknowledged one; then a new writer continues the log.
void CheckRecovery(FaultFileSystem& fs, const Run& run, uint64_t n, bool must_keep_acked) {
  std::vector<uint64_t> order;  // tickets of non-empty records
  for (uint64_t t = 1; t <= n; ++t) {
    if (t % 5 != 0) order.push_back(t);
  }
  ScanOptions so;
  so.dirs = {kDir};
  so.fs = &fs;
  so.repair_tail = true;
  size_t i = 0;
  auto r = ScanLog(so, [&](const Record& rec) {
    EXPECT_LT(i, order.size());
    if (i >= order.size()) return Status::Corruption("too many records");
    EXPECT_EQ(rec.lsn, i + 1);
    const auto want = Payload(order[i]);
    EXPECT_TRUE(std::equal(rec.payload.begin(), rec.payload.end(), want.begin(), want.end()))
        << "LSN " << rec.lsn;
    ++i;
    return Status::Ok();
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  if (must_keep_acked) {
    for (size_t k = i; k < order.size(); ++k) {
      EXPECT_FALSE(run.acked[order[k] - 1]) << "acknowledged ticket " << order[k] << " was lost";
    }
  }
  // The operator fixed the disk and restarted: the log continues.
  fs.ClearFaults();
  LogOptions o;
  o.dir = kDir;
  o.fs = &fs;
  o.preallocate = false;
  auto w = LogWriter::Open(o, r->last_lsn, 1000);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Commit(1000, RecordType::kWriteBatch, Payload(1000)).ok());
  ASSERT_TRUE((*w)->Close().ok());
  uint64_t count = 0;
  so.repair_tail = false;
  auto again = ScanLog(so, [&](const Record&) {
    ++count;
    return Status::Ok();
  });
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(count, i + 1);
}

struct Plan {
  SyncMode mode;
  int threads;
  Cut cut;
};

LogOptions SmallLog(FaultFileSystem* fs, SyncMode mode) {
  LogOptions o;
  o.dir = kDir;
  o.fs = fs;
  o.mode = mode;
  o.segment_bytes = 4096;  // several rotations in a short run
  o.group_buffer_bytes = 4096;
  o.interval_ms = 1;
  o.preallocate = false;  // the spare is prepared by a thread: N would not be deterministic
  return o;
}

constexpr uint64_t kCommits = 120;

// Counts the writes and syncs of a clean run, so every N can be tried.
std::pair<uint64_t, uint64_t> CleanRunOps(SyncMode mode) {
  FaultFileSystem fs;
  Run run = Drive(fs, SmallLog(&fs, mode), kCommits, 1);
  EXPECT_FALSE(run.failed);
  return {fs.writes(), fs.syncs()};
}

void ForEveryN(const std::function<void(FaultFileSystem&, uint64_t)>& inject, uint64_t limit,
               const Plan& p) {
  for (uint64_t n = 1; n <= limit; ++n) {
    SCOPED_TRACE("N = " + std::to_string(n));
    FaultFileSystem fs;
    inject(fs, n);
    Run run = Drive(fs, SmallLog(&fs, p.mode), kCommits, p.threads);
    if (p.cut == Cut::kPowerCut) fs.PowerCut();
    // kInterval acknowledges before the sync: a power cut may lose acked
    // records (documented), never the order or the checksums.
    const bool keep = p.mode == SyncMode::kAlways || p.cut == Cut::kProcessCrash;
    CheckRecovery(fs, run, kCommits, keep);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

class WalFaultTest : public ::testing::TestWithParam<Plan> {};

TEST_P(WalFaultTest, FailTheNthWrite) {
  const auto [writes, syncs] = CleanRunOps(GetParam().mode);
  ASSERT_GT(writes, 5u);
  ForEveryN([](FaultFileSystem& fs, uint64_t n) { fs.FailWrite(n); }, writes + 1, GetParam());
}

TEST_P(WalFaultTest, FailTheNthSync) {
  const auto [writes, syncs] = CleanRunOps(GetParam().mode);
  ASSERT_GT(syncs, 2u);
  ForEveryN([](FaultFileSystem& fs, uint64_t n) { fs.FailSync(n); }, syncs + 1, GetParam());
}

TEST_P(WalFaultTest, ShortNthWrite) {
  const auto [writes, syncs] = CleanRunOps(GetParam().mode);
  ForEveryN([](FaultFileSystem& fs, uint64_t n) { fs.ShortWrite(n); }, writes, GetParam());
}

TEST_P(WalFaultTest, DiskFullAfterKBytes) {
  FaultFileSystem clean;
  Drive(clean, SmallLog(&clean, GetParam().mode), kCommits, 1);
  const uint64_t total = clean.used_bytes();
  ForEveryN([total](FaultFileSystem& fs, uint64_t k) { fs.SetSpaceLimit((k - 1) * total / 40); },
            41, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Plans, WalFaultTest,
                         ::testing::Values(Plan{SyncMode::kAlways, 1, Cut::kProcessCrash},
                                           Plan{SyncMode::kAlways, 1, Cut::kPowerCut},
                                           Plan{SyncMode::kAlways, 4, Cut::kPowerCut},
                                           Plan{SyncMode::kInterval, 1, Cut::kProcessCrash},
                                           Plan{SyncMode::kInterval, 4, Cut::kPowerCut}),
                         [](const ::testing::TestParamInfo<Plan>& p) {
                           return std::string(p.param.mode == SyncMode::kAlways ? "Always"
                                                                                : "Interval") +
                                  std::to_string(p.param.threads) + "Threads" +
                                  (p.param.cut == Cut::kPowerCut ? "PowerCut" : "ProcessCrash");
                         });

TEST(WalFault, EnospcErrorSaysTheDiskIsFull) {
  FaultFileSystem fs;
  LogOptions o = SmallLog(&fs, SyncMode::kAlways);
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  fs.SetSpaceLimit(fs.used_bytes() + 100);
  Status s;
  for (uint64_t t = 1; t < 50 && s.ok(); ++t)
    s = (*w)->Commit(t, RecordType::kWriteBatch, Payload(t));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("disk full"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("offset"), std::string::npos) << s.message();
}

// In "interval", the log starts writeback every kWritebackBytes; a failed
// writeback stops the log like a failed fdatasync (its error may not be
// reported again), and nothing after it is acknowledged.
TEST(WalFault, FailedWritebackStopsTheLog) {
  FaultFileSystem fs;
  LogOptions o = SmallLog(&fs, SyncMode::kInterval);
  o.segment_bytes = 4 * kWritebackBytes;
  o.interval_ms = 60'000;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  fs.FailWriteback(1);
  const std::vector<uint8_t> big(kWritebackBytes / 4, 7);
  Status s;
  uint64_t t = 1;
  for (; t <= 16 && s.ok(); ++t) s = (*w)->Commit(t, RecordType::kWriteBatch, big, Ack::kWritten);
  ASSERT_FALSE(s.ok()) << "no writeback was issued for " << t - 1 << " records of 1 MiB";
  EXPECT_NE(s.message().find("sync_file_range"), std::string::npos) << s.message();
  EXPECT_FALSE((*w)->Writable().ok());
  EXPECT_FALSE((*w)->Commit(t, RecordType::kWriteBatch, big).ok());
}

TEST(WalFault, WritebackIsNotDurability) {
  for (SyncMode mode : {SyncMode::kAlways, SyncMode::kInterval}) {
    FaultFileSystem fs;
    LogOptions o = SmallLog(&fs, mode);
    o.segment_bytes = 4 * kWritebackBytes;
    o.interval_ms = 60'000;
    auto w = LogWriter::Open(o, 0, 1);
    ASSERT_TRUE(w.ok());
    const std::vector<uint8_t> big(kWritebackBytes / 4, 7);
    for (uint64_t t = 1; t <= 9; ++t) {
      ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, big, Ack::kWritten).ok());
    }
    if (mode == SyncMode::kAlways) {
      EXPECT_EQ(fs.writebacks(), 0u) << "every commit syncs: nothing to start early";
      continue;
    }
    EXPECT_GE(fs.writebacks(), 2u);
    EXPECT_EQ((*w)->durable_lsn(), 0u);
    fs.PowerCut();
    ScanOptions so;
    so.dirs = {kDir};
    so.fs = &fs;
    so.repair_tail = true;
    uint64_t survived = 0;
    auto r = ScanLog(so, [&](const Record&) {
      ++survived;
      return Status::Ok();
    });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(survived, 0u) << "records survived a power cut without a sync";
  }
}

TEST(WalFault, FailedSyncIsNeverRetriedAsSuccess) {
  FaultFileSystem fs;
  LogOptions o = SmallLog(&fs, SyncMode::kAlways);
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  fs.FailSync(fs.syncs() + 1);
  const Status s = (*w)->Commit(1, RecordType::kWriteBatch, Payload(1));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("fdatasync"), std::string::npos) << s.message();
  const uint64_t syncs = fs.syncs();
  EXPECT_FALSE((*w)->Flush().ok());
  EXPECT_FALSE((*w)->WaitDurable(1).ok());
  EXPECT_EQ(fs.syncs(), syncs) << "no sync after the failed one";
  EXPECT_EQ((*w)->durable_lsn(), 0u);
}

TEST(WalFault, MarkAndEmptyCommitsFailAfterTheLogStopped) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(SmallLog(&fs, SyncMode::kAlways), 0, 1);
  ASSERT_TRUE(w.ok());
  fs.FailWrite(fs.writes() + 1);
  ASSERT_FALSE((*w)->Commit(1, RecordType::kWriteBatch, Payload(1)).ok());
  EXPECT_FALSE((*w)->Commit(2, RecordType::kWriteBatch, {}).ok());
  EXPECT_FALSE((*w)->Mark(3).ok());
}

}  // namespace
}  // namespace worlddb::wal
