// LogWriter (wal/log_writer.h): records round-trip through the reader, LSNs
// follow ticket order, acks, rotation, reopen, segment removal; mostly on the
// in-memory FaultFileSystem, and on the real disk through io_uring.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/batch_builder.h"
#include "wal/fault_file_system.h"
#include "wal/log_reader.h"
#include "wal/log_writer.h"

namespace worlddb::wal {
namespace {

const std::string kDir = "/data/log";

std::vector<uint8_t> Bytes(uint64_t tag, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(tag * 31 + i * 7 + 1);
  if (n >= 8) std::memcpy(v.data(), &tag, 8);
  return v;
}

struct Got {
  uint64_t lsn;
  RecordType type;
  uint64_t ts;
  std::vector<uint8_t> payload;
};

Result<std::vector<Got>> ReadAll(FileSystem* fs, const std::string& dir, ScanResult* res = nullptr,
                                 bool repair = false) {
  std::vector<Got> out;
  ScanOptions o;
  o.dirs = {dir};
  o.fs = fs;
  o.repair_tail = repair;
  auto r = ScanLog(o, [&](const Record& rec) {
    out.push_back({rec.lsn, rec.type, rec.timestamp_us,
                   std::vector<uint8_t>(rec.payload.begin(), rec.payload.end())});
    return Status::Ok();
  });
  if (!r.ok()) return r.status();
  if (res != nullptr) *res = *r;
  return out;
}

LogOptions Opts(FileSystem* fs, SyncMode mode = SyncMode::kAlways) {
  LogOptions o;
  o.dir = kDir;
  o.fs = fs;
  o.mode = mode;
  o.preallocate = false;  // 64 MiB of zeros per segment in memory: see the Preallocated tests
  return o;
}

TEST(WalWriter, OpenRejectsBadOptions) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs);
  o.dir = "";
  EXPECT_FALSE(LogWriter::Open(o, 0, 1).ok());
  o = Opts(&fs);
  o.segment_bytes = 100;
  EXPECT_EQ(LogWriter::Open(o, 0, 1).status().code(), StatusCode::kInvalidArgument);
  o = Opts(&fs);
  o.group_buffer_bytes = 1000;
  EXPECT_EQ(LogWriter::Open(o, 0, 1).status().code(), StatusCode::kInvalidArgument);
  o = Opts(&fs, SyncMode::kInterval);
  o.interval_ms = 0;
  EXPECT_EQ(LogWriter::Open(o, 0, 1).status().code(), StatusCode::kInvalidArgument);
}

TEST(WalWriter, OpenCreatesTheFirstSegmentDurably) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs), 0, 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  fs.PowerCut();
  EXPECT_TRUE(fs.Exists(kDir + "/" + SegmentName(1)));
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->empty());
}

TEST(WalWriter, RecordsRoundTripThroughTheReader) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs), 0, 1);
  ASSERT_TRUE(w.ok());
  for (uint64_t t = 1; t <= 20; ++t) {
    const auto p = Bytes(t, t * 3);
    ASSERT_TRUE(
        (*w)->Commit(t, t % 4 == 0 ? RecordType::kSchemaChange : RecordType::kWriteBatch, p).ok());
  }
  EXPECT_EQ((*w)->last_lsn(), 20u);
  EXPECT_EQ((*w)->durable_lsn(), 20u);
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 20u);
  uint64_t prev_ts = 0;
  for (uint64_t i = 0; i < 20; ++i) {
    const uint64_t t = i + 1;
    EXPECT_EQ((*got)[i].lsn, t);
    EXPECT_EQ((*got)[i].payload, Bytes(t, t * 3));
    EXPECT_EQ((*got)[i].type, t % 4 == 0 ? RecordType::kSchemaChange : RecordType::kWriteBatch);
    EXPECT_GE((*got)[i].ts, prev_ts);
    prev_ts = (*got)[i].ts;
  }
  EXPECT_GT(prev_ts, uint64_t{1600000000} * 1000000) << "microseconds since the epoch";
}

TEST(WalWriter, EmptyRecordsPassTicketsWithoutAnLsn) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs), 0, 100);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Commit(100, RecordType::kWriteBatch, Bytes(100, 9)).ok());
  ASSERT_TRUE((*w)->Commit(101, RecordType::kWriteBatch, {}).ok());
  ASSERT_TRUE((*w)->Commit(102, RecordType::kWriteBatch, {}).ok());
  ASSERT_TRUE((*w)->Commit(103, RecordType::kWriteBatch, Bytes(103, 9)).ok());
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[1].lsn, 2u);
  EXPECT_EQ((*got)[1].payload, Bytes(103, 9));
}

TEST(WalWriter, MarkReturnsTheLastLsnBeforeItsTicket) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs), 0, 1);
  ASSERT_TRUE(w.ok());
  auto m0 = (*w)->Mark(1);
  ASSERT_TRUE(m0.ok());
  EXPECT_EQ(*m0, 0u);
  ASSERT_TRUE((*w)->Commit(2, RecordType::kWriteBatch, Bytes(2, 5)).ok());
  ASSERT_TRUE((*w)->Commit(3, RecordType::kWriteBatch, {}).ok());
  auto m1 = (*w)->Mark(4);
  ASSERT_TRUE(m1.ok());
  EXPECT_EQ(*m1, 1u);
  ASSERT_TRUE((*w)->Commit(5, RecordType::kWriteBatch, Bytes(5, 5)).ok());
  EXPECT_EQ((*w)->last_lsn(), 2u);
}

TEST(WalWriter, MarkOutOfOrderWaitsForEarlierTickets) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs), 0, 1);
  ASSERT_TRUE(w.ok());
  Result<uint64_t> mark = Status::Unavailable("not run");
  std::thread t([&] { mark = (*w)->Mark(3); });
  std::thread t2([&] { EXPECT_TRUE((*w)->Commit(2, RecordType::kWriteBatch, Bytes(2, 5)).ok()); });
  ASSERT_TRUE((*w)->Commit(1, RecordType::kWriteBatch, Bytes(1, 5)).ok());
  t.join();
  t2.join();
  ASSERT_TRUE(mark.ok());
  EXPECT_EQ(*mark, 2u);
}

TEST(WalWriter, OutOfOrderTicketsGetLsnsInTicketOrder) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs, SyncMode::kInterval), 0, 1);
  ASSERT_TRUE(w.ok());
  const uint64_t n = 400;
  std::vector<uint64_t> tickets(n);
  for (uint64_t i = 0; i < n; ++i) tickets[i] = i + 1;
  // Shuffled within blocks no larger than the thread count: Commit blocks
  // until every earlier ticket arrived, as in the engine, where a ticket is
  // taken just before its call.
  std::mt19937_64 rng(7);
  for (uint64_t b = 0; b < n; b += 8) {
    std::shuffle(tickets.begin() + static_cast<long>(b),
                 tickets.begin() + static_cast<long>(std::min(n, b + 8)), rng);
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k) {
    threads.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) {
        const uint64_t t = tickets[i];
        const auto p = t % 3 == 0 ? std::vector<uint8_t>() : Bytes(t, 8 + t % 40);
        EXPECT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, p).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE((*w)->Flush().ok());
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok());
  uint64_t lsn = 0;
  for (uint64_t t = 1; t <= n; ++t) {
    if (t % 3 == 0) continue;
    ASSERT_LT(lsn, got->size());
    EXPECT_EQ((*got)[lsn].lsn, lsn + 1);
    EXPECT_EQ((*got)[lsn].payload, Bytes(t, 8 + t % 40)) << "ticket " << t;
    ++lsn;
  }
  EXPECT_EQ(lsn, got->size());
}

TEST(WalWriter, ReusedTicketIsRefused) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs), 0, 1);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Commit(1, RecordType::kWriteBatch, Bytes(1, 4)).ok());
  EXPECT_EQ((*w)->Commit(1, RecordType::kWriteBatch, Bytes(1, 4)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE((*w)->Commit(2, RecordType::kWriteBatch, Bytes(2, 4)).ok());
}

TEST(WalWriter, AllThreeAcks) {
  for (SyncMode mode : {SyncMode::kAlways, SyncMode::kInterval}) {
    FaultFileSystem fs;
    LogOptions o = Opts(&fs, mode);
    o.interval_ms = 100000;  // never by the clock: only Flush syncs
    auto w = LogWriter::Open(o, 0, 1);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Commit(1, RecordType::kWriteBatch, Bytes(1, 10), Ack::kQueued).ok());
    EXPECT_GE((*w)->last_lsn(), 1u);
    ASSERT_TRUE((*w)->Commit(2, RecordType::kWriteBatch, Bytes(2, 10), Ack::kWritten).ok());
    EXPECT_GE((*w)->written_lsn(), 2u);
    ASSERT_TRUE((*w)->Commit(3, RecordType::kWriteBatch, Bytes(3, 10), Ack::kMode).ok());
    EXPECT_GE((*w)->written_lsn(), 3u);
    if (mode == SyncMode::kAlways) {
      EXPECT_GE((*w)->durable_lsn(), 3u);
      // What kMode acknowledged survives a power cut.
      fs.PowerCut();
      auto got = ReadAll(&fs, kDir);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(got->size(), 3u);
    } else {
      ASSERT_TRUE((*w)->Flush().ok());
      EXPECT_EQ((*w)->durable_lsn(), 3u);
    }
  }
}

TEST(WalWriter, IntervalModeSyncsWithoutBeingAsked) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs, SyncMode::kInterval);
  o.interval_ms = 2;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Commit(1, RecordType::kWriteBatch, Bytes(1, 10)).ok());
  EXPECT_EQ((*w)->written_lsn(), 1u);
  // No time is asserted: the background sync must simply happen.
  for (int i = 0; i < 10000 && (*w)->durable_lsn() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ((*w)->durable_lsn(), 1u);
  fs.PowerCut();
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 1u);
}

TEST(WalWriter, WaitDurable) {
  FaultFileSystem fs;
  auto w = LogWriter::Open(Opts(&fs, SyncMode::kInterval), 0, 1);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Commit(1, RecordType::kWriteBatch, Bytes(1, 10), Ack::kQueued).ok());
  EXPECT_TRUE((*w)->WaitDurable(1).ok());
  EXPECT_GE((*w)->written_lsn(), 1u);
  EXPECT_EQ((*w)->WaitDurable(2).code(), StatusCode::kInvalidArgument);
}

// Records committed as kQueued, then one WaitAll: the later records' wait
// covers the earlier ones (the server's pipelined writes, RunWrites).
TEST(WalWriter, WaitAllCoversEveryRecordSequencedBefore) {
  for (SyncMode mode : {SyncMode::kAlways, SyncMode::kInterval}) {
    FaultFileSystem fs;
    LogOptions o = Opts(&fs, mode);
    o.interval_ms = 60'000;  // no sync but the ones asked for
    auto w = LogWriter::Open(o, 0, 1);
    ASSERT_TRUE(w.ok());
    for (uint64_t t = 1; t <= 3; ++t) {
      ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 10), Ack::kQueued).ok());
    }
    EXPECT_TRUE((*w)->WaitAll(Ack::kQueued).ok());
    EXPECT_TRUE((*w)->WaitAll(Ack::kWritten).ok());
    EXPECT_EQ((*w)->written_lsn(), 3u);
    ASSERT_TRUE((*w)->Commit(4, RecordType::kWriteBatch, Bytes(4, 10), Ack::kQueued).ok());
    EXPECT_TRUE((*w)->WaitAll(Ack::kMode).ok());
    EXPECT_EQ((*w)->written_lsn(), 4u);
    if (mode == SyncMode::kAlways) {
      EXPECT_EQ((*w)->durable_lsn(), 4u);
      fs.PowerCut();  // what kMode promised in "always" survives it
      auto got = ReadAll(&fs, kDir);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(got->size(), 4u);
    }
  }
}

TEST(WalWriter, RotatesAcrossManySmallSegments) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs);
  o.segment_bytes = 4096;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  for (uint64_t t = 1; t <= 200; ++t) {
    ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 100 + t % 200)).ok());
  }
  auto segs = (*w)->Segments();
  ASSERT_TRUE(segs.ok());
  EXPECT_GT(segs->size(), 5u);
  for (const auto& s : *segs) {
    if (!s.current) {
      EXPECT_LE(s.bytes, 4096u) << s.path;
      EXPECT_GE(s.last_lsn, s.first_lsn) << s.path;
    }
  }
  EXPECT_TRUE(segs->back().current);
  EXPECT_EQ(segs->back().last_lsn, 200u);
  ASSERT_EQ(segs->front().first_lsn, 1u);
  fs.PowerCut();  // every rotation synced the old segment and the directory
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 200u);
  for (uint64_t i = 0; i < 200; ++i)
    EXPECT_EQ((*got)[i].payload, Bytes(i + 1, 100 + (i + 1) % 200));
}

TEST(WalWriter, RecordLargerThanGroupBufferAndSegment) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs);
  o.segment_bytes = 8192;
  o.group_buffer_bytes = 4096;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  const auto small = Bytes(1, 100);
  const auto big = Bytes(2, 3 << 20);
  ASSERT_TRUE((*w)->Commit(1, RecordType::kWriteBatch, small).ok());
  ASSERT_TRUE((*w)->Commit(2, RecordType::kWriteBatch, big).ok());
  ASSERT_TRUE((*w)->Commit(3, RecordType::kWriteBatch, small).ok());
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[1].payload, big);
  auto segs = (*w)->Segments();
  ASSERT_TRUE(segs.ok());
  EXPECT_EQ(segs->size(), 3u) << "the big record gets a segment of its own";
}

TEST(WalWriter, ReopenAfterLastLsnContinues) {
  FaultFileSystem fs;
  {
    auto w = LogWriter::Open(Opts(&fs), 0, 1);
    ASSERT_TRUE(w.ok());
    for (uint64_t t = 1; t <= 10; ++t) {
      ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 20)).ok());
    }
    ASSERT_TRUE((*w)->Close().ok());
    EXPECT_EQ((*w)->Commit(11, RecordType::kWriteBatch, Bytes(11, 20)).code(),
              StatusCode::kUnavailable);
  }
  ScanResult res;
  ASSERT_TRUE(ReadAll(&fs, kDir, &res, true).ok());
  EXPECT_EQ(res.last_lsn, 10u);
  auto w = LogWriter::Open(Opts(&fs), res.last_lsn, 50);
  ASSERT_TRUE(w.ok());
  for (uint64_t t = 50; t < 55; ++t) {
    ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 20)).ok());
  }
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 15u);
  EXPECT_EQ((*got)[14].lsn, 15u);
  EXPECT_EQ((*got)[10].payload, Bytes(50, 20));
  EXPECT_TRUE(fs.Exists(kDir + "/" + SegmentName(11)));
}

TEST(WalWriter, ReopenReplacesASegmentWithoutValidRecords) {
  FaultFileSystem fs;
  ASSERT_TRUE(fs.CreateDir(kDir).ok());
  fs.SetContents(kDir + "/" + SegmentName(1), {1, 2, 3, 4, 5});  // torn creation
  auto w = LogWriter::Open(Opts(&fs), 0, 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Commit(1, RecordType::kWriteBatch, Bytes(1, 20)).ok());
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->size(), 1u);
}

TEST(WalWriter, RemoveSegmentsBelowKeepsTheCurrentOne) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs);
  o.segment_bytes = 4096;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  for (uint64_t t = 1; t <= 100; ++t) {
    ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 200)).ok());
  }
  auto before = (*w)->Segments();
  ASSERT_TRUE(before.ok());
  ASSERT_GT(before->size(), 3u);
  const uint64_t cut = (*before)[2].last_lsn;                // segments 0..2 are wholly <= cut
  ASSERT_TRUE((*w)->RemoveSegmentsBelow(cut + 1, "").ok());  // segment 3 is not whole
  auto after = (*w)->Segments();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), before->size() - 3);
  EXPECT_EQ(after->front().first_lsn, cut + 1);
  // Everything: the current segment stays.
  ASSERT_TRUE((*w)->RemoveSegmentsBelow(UINT64_MAX, "").ok());
  after = (*w)->Segments();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_TRUE(after->front().current);
  ScanOptions so;
  so.dirs = {kDir};
  so.fs = &fs;
  so.from_lsn = after->front().first_lsn;
  uint64_t n = 0;
  ASSERT_TRUE(ScanLog(so, [&](const Record&) {
                ++n;
                return Status::Ok();
              }).ok());
  EXPECT_EQ(after->front().first_lsn + n - 1, 100u);
}

TEST(WalWriter, RemoveSegmentsBelowIntoArchiveKeepsTheWholeLogReadable) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs);
  o.segment_bytes = 4096;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  for (uint64_t t = 1; t <= 100; ++t) {
    ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 200)).ok());
  }
  ASSERT_TRUE((*w)->RemoveSegmentsBelow(60, "/data/archive").ok());
  auto in_log = ListSegments(kDir, &fs);
  auto in_archive = ListSegments("/data/archive", &fs);
  ASSERT_TRUE(in_log.ok() && in_archive.ok());
  EXPECT_FALSE(in_archive->empty());
  EXPECT_LE(in_log->front().first_lsn, 61u);
  fs.PowerCut();  // both directories were synced
  ScanOptions so;
  so.dirs = {kDir, "/data/archive"};
  so.fs = &fs;
  uint64_t n = 0;
  auto r = ScanLog(so, [&](const Record& rec) {
    EXPECT_EQ(rec.lsn, ++n);
    return Status::Ok();
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(n, 100u);
}

TEST(WalWriter, PreallocatedSegmentsComeFromTheSpareAndReadBack) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs);
  o.preallocate = true;
  o.segment_bytes = 8192;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok());
  EXPECT_LT(fs.Contents(kDir + "/" + SegmentName(1)).size(), 8192u)
      << "with no spare yet, the first segment starts unreserved (Open never waits for zeros)";
  for (uint64_t t = 1; t <= 300; ++t) {
    ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 150)).ok());
    // Give the preparer time: this test is about using the spare.
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  const LogStats st = (*w)->stats();
  EXPECT_GT(st.segments_created, 5u);
  EXPECT_GT(st.segments_from_spare, 0u);
  EXPECT_EQ(st.spare_failures, 0u);
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_TRUE(fs.Exists(kDir + "/" + kSpareSegmentName)) << "Close keeps a ready spare";

  // The next start's first segment is that spare: preallocated at once.
  auto again = LogWriter::Open(o, 300, 301);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->stats().segments_from_spare, 1u);
  EXPECT_EQ(fs.Contents(kDir + "/" + SegmentName(301)).size(), 8192u);
  ASSERT_TRUE((*again)->Commit(301, RecordType::kWriteBatch, Bytes(301, 150)).ok());
  ASSERT_TRUE((*again)->Close().ok());
  fs.PowerCut();
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 301u);
  EXPECT_EQ(got->back().payload, Bytes(301, 150));
}

TEST(WalWriter, SpareThatCannotBePreparedIsNotFatal) {
  FaultFileSystem fs;
  LogOptions o = Opts(&fs);
  o.preallocate = true;
  o.segment_bytes = 8192;
  ASSERT_TRUE(fs.CreateDir(kDir).ok());
  // Room for some appends, not for a spare of segment_bytes.
  fs.SetSpaceLimit(6000);
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (int i = 0; i < 10000 && (*w)->stats().spare_failures == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (uint64_t t = 1; t <= 40; ++t) {
    ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, Bytes(t, 100)).ok()) << t;
  }
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_GT((*w)->stats().spare_failures, 0u);
  EXPECT_FALSE(fs.Exists(kDir + "/" + kSpareSegmentName)) << "a failed spare is removed";
  auto got = ReadAll(&fs, kDir);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->size(), 40u);
}

// Random records, empties, acks and segment sizes against a model list.
TEST(WalWriter, RandomizedAgainstAModel) {
  std::mt19937_64 rng(12345);
  for (int round = 0; round < 20; ++round) {
    FaultFileSystem fs;
    LogOptions o = Opts(&fs, rng() % 2 ? SyncMode::kAlways : SyncMode::kInterval);
    o.segment_bytes = 4096 << (rng() % 4);
    o.group_buffer_bytes = 4096 << (rng() % 3);
    o.interval_ms = 1;
    o.preallocate = rng() % 2 == 0;
    std::vector<std::vector<uint8_t>> model;
    uint64_t ticket = 1 + rng() % 1000;
    uint64_t last_lsn = 0;
    for (int session = 0; session < 3; ++session) {
      auto w = LogWriter::Open(o, last_lsn, ticket);
      ASSERT_TRUE(w.ok());
      const int n = static_cast<int>(rng() % 200);
      for (int i = 0; i < n; ++i, ++ticket) {
        const uint64_t kind = rng() % 10;
        if (kind == 0) {
          ASSERT_TRUE((*w)->Commit(ticket, RecordType::kWriteBatch, {}).ok());
        } else if (kind == 1) {
          auto m = (*w)->Mark(ticket);
          ASSERT_TRUE(m.ok());
          EXPECT_EQ(*m, model.size());
        } else {
          const size_t len = kind == 2 ? 5000 + rng() % 20000 : 1 + rng() % 300;
          auto p = Bytes(ticket, len);
          const Ack ack = static_cast<Ack>(rng() % 3);
          ASSERT_TRUE((*w)->Commit(ticket, RecordType::kWriteBatch, p, ack).ok());
          model.push_back(std::move(p));
        }
      }
      ASSERT_TRUE((*w)->Close().ok());
      ScanResult res;
      auto got = ReadAll(&fs, kDir, &res, true);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ(got->size(), model.size());
      for (size_t i = 0; i < model.size(); ++i) {
        ASSERT_EQ((*got)[i].lsn, i + 1);
        ASSERT_EQ((*got)[i].payload, model[i]) << "LSN " << i + 1;
      }
      last_lsn = res.last_lsn;
      EXPECT_EQ(last_lsn, model.size());
    }
  }
}

// ---- The real disk, through io_uring ----

class WalRealDiskTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    dir_ = std::string(WORLDDB_BINARY_DIR) + "/wal_writer_test." + std::to_string(::getpid()) +
           "." + std::to_string(GetParam());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_P(WalRealDiskTest, RoundTripWithRotationAndBatchBytes) {
  LogOptions o;
  o.dir = dir_;
  o.segment_bytes = 64 << 10;
  o.preallocate = GetParam() != 0;
  o.preallocate_method = GetParam() == 2 ? Preallocate::kFallocate : Preallocate::kZeroFill;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::vector<std::vector<uint8_t>> sent;
  std::atomic<uint64_t> ticket{1};
  std::mutex mu;
  std::map<uint64_t, std::vector<uint8_t>> by_ticket;
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      BatchBuilder b;
      for (int i = 0; i < 50; ++i) {
        for (int m = 0; m < 1 + (i * 37 + k) % 200; ++m) b.Move(static_cast<uint64_t>(m), m, i);
        const auto bytes = b.FinishCopy();
        const uint64_t t = ticket.fetch_add(1);
        {
          std::lock_guard l(mu);
          by_ticket[t] = bytes;
        }
        EXPECT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, bytes).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ((*w)->durable_lsn(), 200u);
  EXPECT_GT((*w)->stats().syncs, 0u);
  ASSERT_TRUE((*w)->Close().ok());
  auto got = ReadAll(FileSystem::Default(), dir_);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 200u);
  size_t i = 0;
  for (const auto& [t, bytes] : by_ticket) EXPECT_EQ((*got)[i++].payload, bytes) << t;
  auto segs = ListSegments(dir_);
  ASSERT_TRUE(segs.ok());
  EXPECT_GT(segs->size(), 2u);
}

// "interval" over several kWritebackBytes: sync_file_range through io_uring
// goes with the writes, and everything reads back.
TEST_P(WalRealDiskTest, IntervalStartsWritebackAsSegmentsFill) {
  LogOptions o;
  o.dir = dir_;
  o.mode = SyncMode::kInterval;
  o.interval_ms = 60'000;
  o.segment_bytes = 3 * kWritebackBytes;
  o.preallocate = GetParam() != 0;
  o.preallocate_method = GetParam() == 2 ? Preallocate::kFallocate : Preallocate::kZeroFill;
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  constexpr uint64_t kRecords = 40;
  const std::vector<uint8_t> record(kWritebackBytes / 8, 0x5a);
  for (uint64_t t = 1; t <= kRecords; ++t) {
    ASSERT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, record).ok());
  }
  ASSERT_TRUE((*w)->Close().ok());
  auto got = ReadAll(FileSystem::Default(), dir_);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), kRecords);
  for (const auto& g : *got) EXPECT_EQ(g.payload, record);
}

INSTANTIATE_TEST_SUITE_P(Preallocate, WalRealDiskTest, ::testing::Values(0, 1, 2));

}  // namespace
}  // namespace worlddb::wal
