// The write-ahead log's bytes on disk (docs/wal_format.md says the same in
// prose). All integers are little-endian.
//
// The log is a directory of segment files named `wal-<first LSN, 20 digits>.log`
// (e.g. wal-00000000000000000001.log). A segment is a 32-byte header followed
// by records, each starting at an 8-byte aligned offset:
//
//   Segment header (kSegmentHeaderBytes = 32)
//     0  u8[8]  magic "WORLDWAL"
//     8  u32    format version (kFormatVersion)
//    12  u32    header size in bytes (32)
//    16  u64    first LSN (the LSN of the segment's first record; equals the name)
//    24  u64    XXH3_64bits(bytes 0..23)
//
//   Record (kRecordHeaderBytes = 32, then the payload, then zero padding to 8)
//     0  u64    checksum = XXH3_64bits_withSeed(payload, length,
//                                               XXH3_64bits(header bytes 8..31))
//     8  u32    payload length in bytes
//    12  u8     record type (engine RecordType: 1 WriteBatch, 2 SchemaChange)
//    13  u8[3]  zero
//    16  u64    LSN (dense: every record's LSN is the previous one's plus one)
//    24  u64    commit timestamp, microseconds since the Unix epoch (never
//               decreasing within a log, even if the wall clock steps back)
//    32  payload (the exact FlatBuffers bytes the engine applied)
//        zero padding up to the next multiple of 8
//
// The checksum covers every header field after itself and the payload, so a
// flipped bit anywhere in a record (padding aside) is detected. A header of 32
// zero bytes marks the end of the written part of a segment: segments may be
// preallocated (zero-filled) ahead of use, so a segment may be longer than
// its records and then ends in zeros. A record never spans two segments; a
// record larger than the segment size gets a segment of its own.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "engine/commit_log.h"

namespace worlddb::wal {

inline constexpr char kSegmentMagic[8] = {'W', 'O', 'R', 'L', 'D', 'W', 'A', 'L'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 32;
inline constexpr size_t kRecordHeaderBytes = 32;
inline constexpr size_t kRecordAlign = 8;
// Payload lengths are u32; the engine's largest batch (1 GiB) fits with room.
inline constexpr uint64_t kMaxPayloadBytes = uint64_t{0xFFFFFFFF} - 64;
inline constexpr uint64_t kDefaultSegmentBytes = uint64_t{64} << 20;
inline constexpr uint64_t kMinSegmentBytes = 4096;
inline constexpr size_t kDefaultGroupBufferBytes = size_t{1} << 20;
inline constexpr size_t kGroupBuffers = 4;
// "wal-" + 20 digits + ".log"
inline constexpr size_t kSegmentNameLength = 4 + 20 + 4;

static_assert(kSegmentHeaderBytes % kRecordAlign == 0, "records start 8-byte aligned");
static_assert(kRecordHeaderBytes % kRecordAlign == 0, "payloads start 8-byte aligned");
static_assert(kDefaultSegmentBytes >= kMinSegmentBytes);
static_assert(kDefaultGroupBufferBytes % 4096 == 0, "group buffers are page multiples");

constexpr uint64_t AlignUp8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }
// Bytes a record with `payload_len` payload bytes occupies in a segment.
constexpr uint64_t FramedSize(uint64_t payload_len) {
  return kRecordHeaderBytes + AlignUp8(payload_len);
}

struct SegmentHeader {
  uint64_t first_lsn = 0;
};

struct RecordHeader {
  uint64_t checksum = 0;
  uint32_t length = 0;
  uint8_t type = 0;
  uint64_t lsn = 0;
  uint64_t timestamp_us = 0;
};

inline void PutU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void PutU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t GetU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
static_assert(std::endian::native == std::endian::little, "the format is little-endian");

// "wal-00000000000000000042.log"
std::string SegmentName(uint64_t first_lsn);
// The first LSN a segment file name stands for, or false if `name` is not
// exactly a segment name (other files in the directory are ignored).
bool ParseSegmentName(std::string_view name, uint64_t* first_lsn);

// Writes the 32-byte segment header into `out`.
void EncodeSegmentHeader(uint64_t first_lsn, uint8_t* out);
// Checks magic, version, size and checksum; on failure says which, in words.
bool DecodeSegmentHeader(const uint8_t* in, SegmentHeader* out, std::string* why);

// Writes header + payload + padding into `out`, which must hold
// FramedSize(payload.size()) bytes.
void EncodeRecord(uint64_t lsn, RecordType type, uint64_t timestamp_us,
                  std::span<const uint8_t> payload, uint8_t* out);
// Parses the header at `in` (kRecordHeaderBytes readable).
RecordHeader ParseRecordHeader(const uint8_t* in);
// The checksum a record with this header (bytes 8..31 at `header`) and payload must carry.
uint64_t RecordChecksum(const uint8_t* header, const uint8_t* payload, size_t length);
bool IsZero(const uint8_t* p, size_t n);

}  // namespace worlddb::wal
