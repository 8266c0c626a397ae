// The log's byte format (wal/log_format.h): names, headers, records.
#include <gtest/gtest.h>

#include <vector>

#include "wal/log_format.h"

namespace worlddb::wal {
namespace {

TEST(WalFormat, SegmentNameRoundTrips) {
  for (uint64_t lsn : {uint64_t{0}, uint64_t{1}, uint64_t{42}, UINT64_MAX}) {
    const std::string name = SegmentName(lsn);
    EXPECT_EQ(name.size(), kSegmentNameLength);
    uint64_t back = 7;
    ASSERT_TRUE(ParseSegmentName(name, &back)) << name;
    EXPECT_EQ(back, lsn);
  }
  EXPECT_EQ(SegmentName(42), "wal-00000000000000000042.log");
}

TEST(WalFormat, ParseSegmentNameRejectsOtherFiles) {
  uint64_t v = 0;
  for (const char* bad :
       {"", "wal-1.log", "wal-0000000000000000004x.log", "wal-00000000000000000042.tmp",
        "xal-00000000000000000042.log", "wal-00000000000000000042.log.bak",
        "wal-99999999999999999999.log" /* above 2^64 */, "snapshot-1.snap"}) {
    EXPECT_FALSE(ParseSegmentName(bad, &v)) << bad;
  }
}

TEST(WalFormat, SegmentHeaderRoundTrips) {
  uint8_t h[kSegmentHeaderBytes];
  EncodeSegmentHeader(123456789, h);
  SegmentHeader out;
  std::string why;
  ASSERT_TRUE(DecodeSegmentHeader(h, &out, &why)) << why;
  EXPECT_EQ(out.first_lsn, 123456789u);
}

TEST(WalFormat, SegmentHeaderDetectsEveryBitFlip) {
  uint8_t h[kSegmentHeaderBytes];
  EncodeSegmentHeader(77, h);
  for (size_t bit = 0; bit < kSegmentHeaderBytes * 8; ++bit) {
    h[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    SegmentHeader out;
    std::string why;
    EXPECT_FALSE(DecodeSegmentHeader(h, &out, &why)) << "bit " << bit;
    EXPECT_FALSE(why.empty());
    h[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
}

TEST(WalFormat, SegmentHeaderNamesBadMagic) {
  uint8_t h[kSegmentHeaderBytes] = {'N', 'O', 'P', 'E'};
  SegmentHeader out;
  std::string why;
  EXPECT_FALSE(DecodeSegmentHeader(h, &out, &why));
  EXPECT_NE(why.find("magic"), std::string::npos) << why;
}

TEST(WalFormat, FramedSizePadsToEight) {
  EXPECT_EQ(FramedSize(0), kRecordHeaderBytes);
  EXPECT_EQ(FramedSize(1), kRecordHeaderBytes + 8);
  EXPECT_EQ(FramedSize(8), kRecordHeaderBytes + 8);
  EXPECT_EQ(FramedSize(9), kRecordHeaderBytes + 16);
}

TEST(WalFormat, RecordRoundTripsWithZeroPadding) {
  for (size_t len : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{13}, size_t{4096}}) {
    std::vector<uint8_t> payload(len);
    for (size_t i = 0; i < len; ++i) payload[i] = static_cast<uint8_t>(i * 31 + 1);
    std::vector<uint8_t> out(FramedSize(len), 0xAB);
    EncodeRecord(9, RecordType::kSchemaChange, 1234, payload, out.data());
    const RecordHeader h = ParseRecordHeader(out.data());
    EXPECT_EQ(h.length, len);
    EXPECT_EQ(h.type, 2);
    EXPECT_EQ(h.lsn, 9u);
    EXPECT_EQ(h.timestamp_us, 1234u);
    EXPECT_EQ(h.checksum, RecordChecksum(out.data(), out.data() + kRecordHeaderBytes, len));
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), out.begin() + kRecordHeaderBytes));
    EXPECT_TRUE(
        IsZero(out.data() + kRecordHeaderBytes + len, out.size() - kRecordHeaderBytes - len))
        << "padding must be zero for len " << len;
  }
}

TEST(WalFormat, ChecksumCoversEveryHeaderFieldAndPayload) {
  std::vector<uint8_t> payload = {1, 2, 3, 4, 5};
  std::vector<uint8_t> rec(FramedSize(payload.size()));
  EncodeRecord(5, RecordType::kWriteBatch, 99, payload, rec.data());
  const uint64_t sum = ParseRecordHeader(rec.data()).checksum;
  // Every bit after the checksum field up to the end of the payload.
  for (size_t bit = 64; bit < (kRecordHeaderBytes + payload.size()) * 8; ++bit) {
    rec[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    const uint32_t len = std::min<uint32_t>(ParseRecordHeader(rec.data()).length, 5);
    EXPECT_NE(RecordChecksum(rec.data(), rec.data() + kRecordHeaderBytes, len), sum)
        << "bit " << bit;
    rec[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
}

TEST(WalFormat, IsZeroHandlesUnalignedRanges) {
  std::vector<uint8_t> v(100, 0);
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; start + n <= v.size(); n += 7) {
      EXPECT_TRUE(IsZero(v.data() + start, n));
    }
  }
  for (size_t pos = 0; pos < v.size(); ++pos) {
    v[pos] = 1;
    EXPECT_FALSE(IsZero(v.data(), v.size())) << pos;
    EXPECT_TRUE(IsZero(v.data(), pos)) << pos;
    v[pos] = 0;
  }
}

}  // namespace
}  // namespace worlddb::wal
