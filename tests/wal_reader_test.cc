// ScanLog (wal/log_reader.h) over hand-built segments in an in-memory file
// system: clean logs, torn tails at every offset, damage in every field,
// gaps, salvage, LSN ranges and archive merging.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "wal/fault_file_system.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"

namespace worlddb::wal {
namespace {

const std::string kDir = "/data/log";
const std::string kArchive = "/data/archive";

// Deterministic payload of varying length (so padding varies) for an LSN.
std::vector<uint8_t> PayloadFor(uint64_t lsn) {
  std::vector<uint8_t> p(1 + (lsn * 7) % 53);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(lsn * 13 + i);
  return p;
}

struct Seg {
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> offsets;  // of each record
};

Seg MakeSegment(uint64_t first, uint64_t count, size_t zero_tail = 0) {
  Seg s;
  s.bytes.resize(kSegmentHeaderBytes);
  EncodeSegmentHeader(first, s.bytes.data());
  for (uint64_t lsn = first; lsn < first + count; ++lsn) {
    const auto p = PayloadFor(lsn);
    s.offsets.push_back(s.bytes.size());
    const size_t at = s.bytes.size();
    s.bytes.resize(at + FramedSize(p.size()));
    EncodeRecord(lsn, lsn % 5 == 0 ? RecordType::kSchemaChange : RecordType::kWriteBatch,
                 1000 + lsn, p, s.bytes.data() + at);
  }
  s.bytes.resize(s.bytes.size() + zero_tail, 0);
  return s;
}

std::string PathOf(uint64_t first, const std::string& dir = kDir) {
  return dir + "/" + SegmentName(first);
}

class WalReaderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.CreateDir(kDir).ok()); }

  Seg Put(uint64_t first, uint64_t count, size_t zero_tail = 0, const std::string& dir = kDir) {
    Seg s = MakeSegment(first, count, zero_tail);
    fs_.SetContents(PathOf(first, dir), s.bytes);
    return s;
  }

  Result<ScanResult> Scan(ScanOptions o = {}) {
    if (o.dirs.empty()) o.dirs = {kDir};
    o.fs = &fs_;
    lsns_.clear();
    return ScanLog(o, [&](const Record& r) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r.payload.data()) % 8, 0u) << "payload alignment";
      const auto want = PayloadFor(r.lsn);
      EXPECT_TRUE(std::equal(r.payload.begin(), r.payload.end(), want.begin(), want.end()))
          << "payload of LSN " << r.lsn;
      EXPECT_EQ(r.timestamp_us, 1000 + r.lsn);
      EXPECT_EQ(r.type, r.lsn % 5 == 0 ? RecordType::kSchemaChange : RecordType::kWriteBatch);
      lsns_.push_back(r.lsn);
      return Status::Ok();
    });
  }

  void Flip(const std::string& path, uint64_t offset, uint8_t mask = 0x10) {
    auto b = fs_.Contents(path);
    ASSERT_LT(offset, b.size());
    b[offset] ^= mask;
    fs_.SetContents(path, b);
  }

  std::vector<uint64_t> Range(uint64_t a, uint64_t b) {
    std::vector<uint64_t> v;
    for (uint64_t i = a; i <= b; ++i) v.push_back(i);
    return v;
  }

  FaultFileSystem fs_;
  std::vector<uint64_t> lsns_;
};

TEST_F(WalReaderTest, EmptyDirectoryIsAnEmptyLog) {
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records, 0u);
  EXPECT_EQ(r->last_lsn, 0u);
  EXPECT_FALSE(r->torn_tail.has_value());
}

TEST_F(WalReaderTest, MissingDirectoryIsAnEmptyLog) {
  ScanOptions o;
  o.dirs = {"/nowhere"};
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records, 0u);
}

TEST_F(WalReaderTest, EmptyDirectoryWithFromLsnIsAnError) {
  ScanOptions o;
  o.from_lsn = 5;
  auto r = Scan(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("LSN 5"), std::string::npos) << r.status().message();
}

TEST_F(WalReaderTest, OtherFilesAreIgnored) {
  Put(1, 3);
  fs_.SetContents(kDir + "/notes.txt", {1, 2, 3});
  fs_.SetContents(kDir + "/wal-00000000000000000009.log.tmp", {1, 2, 3});
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 3));
}

TEST_F(WalReaderTest, EmptySegmentHoldsNoRecord) {
  Put(1, 0);
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->records, 0u);
  EXPECT_EQ(r->last_lsn, 0u);
  EXPECT_FALSE(r->torn_tail.has_value());
}

TEST_F(WalReaderTest, EmptyLastSegmentAfterOthersContinuesTheLog) {
  Put(1, 4);
  Put(5, 0);
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 4));
  EXPECT_EQ(r->last_lsn, 4u);
}

TEST_F(WalReaderTest, ReadsRecordsAcrossSegments) {
  Put(1, 3);
  Put(4, 5);
  Put(9, 2);
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 10));
  EXPECT_EQ(r->first_lsn, 1u);
  EXPECT_EQ(r->last_lsn, 10u);
  EXPECT_EQ(r->records, 10u);
  EXPECT_EQ(r->segments, 3u);
  EXPECT_EQ(r->log_first_lsn, 1u);
}

TEST_F(WalReaderTest, ZeroFilledTailIsACleanEnd) {
  Put(1, 3, 4096);
  Put(4, 3, 4093);  // not a multiple of 8
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 6));
  EXPECT_FALSE(r->torn_tail.has_value());
}

TEST_F(WalReaderTest, RecordOffsetsAndSegmentPathsAreReported) {
  Seg s = Put(1, 3);
  std::vector<uint64_t> offsets;
  ScanOptions o;
  o.dirs = {kDir};
  o.fs = &fs_;
  auto r = ScanLog(o, [&](const Record& rec) {
    offsets.push_back(rec.offset);
    EXPECT_EQ(rec.segment, PathOf(1));
    return Status::Ok();
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(offsets, s.offsets);
}

// The writer crashed at any point while appending the last record: every
// cut is a clean recovery that keeps the prefix and reports the torn tail.
TEST_F(WalReaderTest, CutLastRecordAtEveryByteOffset) {
  const Seg full = MakeSegment(1, 5);
  const uint64_t start = full.offsets.back();
  for (uint64_t cut = start; cut < full.bytes.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    Put(1, 0);  // replaced below
    std::vector<uint8_t> b(full.bytes.begin(), full.bytes.begin() + static_cast<long>(cut));
    fs_.SetContents(PathOf(1), b);
    ScanOptions o;
    o.repair_tail = true;
    auto r = Scan(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (cut >= start + kRecordHeaderBytes + PayloadFor(5).size()) {
      // Only padding is missing: the record is whole (padding is not checksummed).
      EXPECT_EQ(lsns_, Range(1, 5));
      EXPECT_FALSE(r->torn_tail.has_value());
      continue;
    }
    EXPECT_EQ(lsns_, Range(1, 4));
    EXPECT_EQ(r->last_lsn, 4u);
    if (cut == start) {
      EXPECT_FALSE(r->torn_tail.has_value());
      continue;
    }
    ASSERT_TRUE(r->torn_tail.has_value());
    EXPECT_EQ(r->torn_tail->segment, PathOf(1));
    EXPECT_EQ(r->torn_tail->offset, start);
    EXPECT_EQ(r->torn_tail->bytes_dropped, cut - start);
    EXPECT_TRUE(r->torn_tail->repaired);
    EXPECT_EQ(fs_.Contents(PathOf(1)).size(), start) << "repair cuts the tail in place";
    auto again = Scan();
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->torn_tail.has_value());
    EXPECT_EQ(lsns_, Range(1, 4));
  }
}

TEST_F(WalReaderTest, CutLastRecordInPreallocatedSegment) {
  // A torn write into zero-filled space: the tail is partly written bytes
  // then zeros.
  const Seg full = MakeSegment(1, 5);
  const uint64_t start = full.offsets.back();
  for (uint64_t cut = start + 1; cut < start + kRecordHeaderBytes + PayloadFor(5).size(); ++cut) {
    std::vector<uint8_t> b(full.bytes.begin(), full.bytes.begin() + static_cast<long>(cut));
    b.resize(8192, 0);
    fs_.SetContents(PathOf(1), b);
    auto r = Scan();
    ASSERT_TRUE(r.ok()) << cut << ": " << r.status().ToString();
    EXPECT_EQ(lsns_, Range(1, 4));
    ASSERT_TRUE(r->torn_tail.has_value()) << cut;
    EXPECT_EQ(r->torn_tail->offset, start);
  }
}

TEST_F(WalReaderTest, WithoutRepairTheTornTailStaysOnDisk) {
  Seg s = Put(1, 3);
  auto b = s.bytes;
  b.resize(b.size() - 3);
  fs_.SetContents(PathOf(1), b);
  auto r = Scan();
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->torn_tail.has_value());
  EXPECT_FALSE(r->torn_tail->repaired);
  EXPECT_EQ(fs_.Contents(PathOf(1)).size(), b.size());
}

TEST_F(WalReaderTest, CutSegmentHeaderOfLastSegmentIsTornAndRemoved) {
  Put(1, 3);
  Seg s = MakeSegment(4, 0);
  for (size_t cut = 0; cut < kSegmentHeaderBytes; ++cut) {
    fs_.SetContents(
        PathOf(4), std::vector<uint8_t>(s.bytes.begin(), s.bytes.begin() + static_cast<long>(cut)));
    ScanOptions o;
    o.repair_tail = true;
    auto r = Scan(o);
    ASSERT_TRUE(r.ok()) << cut << ": " << r.status().ToString();
    EXPECT_EQ(lsns_, Range(1, 3));
    ASSERT_TRUE(r->torn_tail.has_value());
    EXPECT_EQ(r->torn_tail->offset, 0u);
    EXPECT_FALSE(fs_.Exists(PathOf(4)));
  }
}

TEST_F(WalReaderTest, ZeroHeaderOfPreallocatedLastSegmentIsTorn) {
  Put(1, 3);
  fs_.SetContents(PathOf(4), std::vector<uint8_t>(4096, 0));
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->last_lsn, 3u);
  ASSERT_TRUE(r->torn_tail.has_value());
}

// A flipped bit anywhere in a middle record is damage: refused, naming the
// file and the record's offset, and saying what to do.
TEST_F(WalReaderTest, BitFlipInEveryByteOfAMiddleRecordIsRefused) {
  const Seg s = MakeSegment(1, 5);
  const uint64_t start = s.offsets[2];
  const uint64_t payload_end = start + kRecordHeaderBytes + PayloadFor(3).size();
  for (uint64_t at = start; at < payload_end; ++at) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      SCOPED_TRACE("byte " + std::to_string(at) + " mask " + std::to_string(mask));
      fs_.SetContents(PathOf(1), s.bytes);
      Flip(PathOf(1), at, mask);
      auto r = Scan();
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
      const std::string& m = r.status().message();
      EXPECT_NE(m.find(PathOf(1)), std::string::npos) << m;
      EXPECT_NE(m.find("offset " + std::to_string(start)), std::string::npos) << m;
      EXPECT_NE(m.find("--salvage"), std::string::npos) << m;
      EXPECT_NE(m.find("LSN 2"), std::string::npos) << m;
    }
  }
}

TEST_F(WalReaderTest, BitFlipInTailRecordIsATornTail) {
  const Seg s = Put(1, 5);
  Flip(PathOf(1), s.offsets[4] + kRecordHeaderBytes);
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 4));
  ASSERT_TRUE(r->torn_tail.has_value());
  EXPECT_EQ(r->torn_tail->offset, s.offsets[4]);
}

TEST_F(WalReaderTest, BadRecordAtEndOfNonLastSegmentIsRefused) {
  const Seg a = Put(1, 3);
  Put(4, 3);
  Flip(PathOf(1), a.offsets[2] + 20);
  auto r = Scan();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find(PathOf(1)), std::string::npos) << r.status().message();
}

TEST_F(WalReaderTest, TornTailLeftInOlderSegmentIsFineWhenNextContinues) {
  Seg a = MakeSegment(1, 3);
  a.bytes.insert(a.bytes.end(), {9, 9, 9, 9, 9});  // a torn 4th record
  fs_.SetContents(PathOf(1), a.bytes);
  Put(4, 2);
  auto r = Scan();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 5));
  EXPECT_EQ(r->notes.size(), 1u);
}

TEST_F(WalReaderTest, GarbageAfterZeroHeaderIsRefusedWhenValidRecordsFollow) {
  // Zeros in the middle of a segment followed by a record: a hole, not an end.
  Seg s = MakeSegment(1, 3);
  std::vector<uint8_t> b(s.bytes.begin(), s.bytes.begin() + static_cast<long>(s.offsets[1]));
  b.resize(b.size() + 64, 0);
  b.insert(b.end(), s.bytes.begin() + static_cast<long>(s.offsets[1]), s.bytes.end());
  fs_.SetContents(PathOf(1), b);
  auto r = Scan();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
}

TEST_F(WalReaderTest, DeletedMiddleSegmentIsAGap) {
  Put(1, 3);
  Put(4, 3);
  Put(7, 3);
  ASSERT_TRUE(fs_.Remove(PathOf(4)).ok());
  auto r = Scan();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("4..6"), std::string::npos) << m;
  EXPECT_NE(m.find(PathOf(7)), std::string::npos) << m;
}

TEST_F(WalReaderTest, OverlappingSegmentsAreRefused) {
  Put(1, 5);
  Put(4, 3);  // LSN 4 again
  auto r = Scan();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
}

TEST_F(WalReaderTest, BadSegmentHeaderIsRefused) {
  for (uint64_t at : {uint64_t{0}, uint64_t{9}, uint64_t{17}, uint64_t{25}}) {
    Put(1, 3);
    Put(4, 3);
    Flip(PathOf(4), at);  // the last segment too: a header is not torn by a crash
    auto r = Scan();
    ASSERT_FALSE(r.ok()) << at;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
    EXPECT_NE(r.status().message().find(PathOf(4)), std::string::npos) << r.status().message();
  }
}

TEST_F(WalReaderTest, SegmentHeaderMustMatchItsName) {
  Seg s = MakeSegment(7, 2);
  fs_.SetContents(PathOf(1), s.bytes);
  auto r = Scan();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("file name"), std::string::npos) << r.status().message();
}

TEST_F(WalReaderTest, SalvageKeepsThePrefixBeforeDamage) {
  const Seg s = Put(1, 6);
  Flip(PathOf(1), s.offsets[3] + 3);
  ScanOptions o;
  o.salvage = true;
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 3));
  ASSERT_TRUE(r->salvage.has_value());
  EXPECT_EQ(r->salvage->kept_through_lsn, 3u);
  EXPECT_NE(r->salvage->damage.find(PathOf(1)), std::string::npos);
  EXPECT_EQ(r->last_lsn, 3u);
}

TEST_F(WalReaderTest, SalvageStopsAtAGap) {
  Put(1, 3);
  Put(6, 3);
  ScanOptions o;
  o.salvage = true;
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 3));
  ASSERT_TRUE(r->salvage.has_value());
  EXPECT_EQ(r->salvage->kept_through_lsn, 3u);
}

TEST_F(WalReaderTest, FromAndToLsnSelectARange) {
  Put(1, 4);
  Put(5, 4);
  Put(9, 4);
  ScanOptions o;
  o.from_lsn = 3;
  o.to_lsn = 10;
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(3, 10));
  EXPECT_EQ(r->first_lsn, 3u);
  EXPECT_EQ(r->last_lsn, 10u);
}

TEST_F(WalReaderTest, FromLsnPastTheEndDeliversNothing) {
  Put(1, 4);
  ScanOptions o;
  o.from_lsn = 5;
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(lsns_.empty());
  EXPECT_EQ(r->last_lsn, 4u);
}

TEST_F(WalReaderTest, SegmentsWhollyBelowFromLsnAreNotRead) {
  const Seg a = Put(1, 4);
  Put(5, 4);
  Flip(PathOf(1), a.offsets[1] + 1);  // damage the skipped segment
  ScanOptions o;
  o.from_lsn = 6;
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(6, 8));
  EXPECT_EQ(r->segments, 1u);
}

TEST_F(WalReaderTest, FromLsnBelowTheFirstSegmentNamesTheFirstAvailable) {
  Put(10, 4);
  ScanOptions o;
  o.from_lsn = 3;
  auto r = Scan(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("starts at LSN 10"), std::string::npos)
      << r.status().message();
}

TEST_F(WalReaderTest, LogStartingAfterOneIsFineFromItsFirstLsn) {
  Put(10, 4);
  ScanOptions o;
  o.from_lsn = 10;
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(10, 13));
}

TEST_F(WalReaderTest, ToLsnBelowFromLsnIsInvalid) {
  ScanOptions o;
  o.from_lsn = 5;
  o.to_lsn = 4;
  auto r = Scan(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(WalReaderTest, ArchiveAndLogDirectoriesMerge) {
  ASSERT_TRUE(fs_.CreateDir(kArchive).ok());
  Put(1, 3, 0, kArchive);
  Put(4, 3, 0, kArchive);
  Put(4, 3, 0, kDir);  // the same segment in both: fine
  Put(7, 3, 0, kDir);
  ScanOptions o;
  o.dirs = {kDir, kArchive};
  auto r = Scan(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(lsns_, Range(1, 9));
}

TEST_F(WalReaderTest, DifferingDuplicateSegmentsAreRefused) {
  ASSERT_TRUE(fs_.CreateDir(kArchive).ok());
  Put(1, 3, 0, kArchive);
  Put(1, 4, 0, kDir);
  ScanOptions o;
  o.dirs = {kDir, kArchive};
  auto r = Scan(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("two different segments"), std::string::npos);
}

TEST_F(WalReaderTest, CallbackErrorStopsTheScan) {
  Put(1, 5);
  ScanOptions o;
  o.dirs = {kDir};
  o.fs = &fs_;
  int seen = 0;
  auto r = ScanLog(o, [&](const Record& rec) {
    ++seen;
    return rec.lsn == 2 ? Status::InvalidArgument("stop here") : Status::Ok();
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "stop here");
  EXPECT_EQ(seen, 2);
}

TEST_F(WalReaderTest, ListSegmentsOrdersByFirstLsn) {
  Put(100, 1);
  Put(2, 1);
  Put(30, 1);
  auto l = ListSegments(kDir, &fs_);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 3u);
  EXPECT_EQ((*l)[0].first_lsn, 2u);
  EXPECT_EQ((*l)[1].first_lsn, 30u);
  EXPECT_EQ((*l)[2].first_lsn, 100u);
  EXPECT_EQ((*l)[0].path, PathOf(2));
}

}  // namespace
}  // namespace worlddb::wal
