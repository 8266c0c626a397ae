#include "wal/log_format.h"

#include <xxhash.h>

#include <cstdio>

namespace worlddb::wal {

std::string SegmentName(uint64_t first_lsn) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "wal-%020llu.log", static_cast<unsigned long long>(first_lsn));
  return buf;
}

bool ParseSegmentName(std::string_view name, uint64_t* first_lsn) {
  if (name.size() != kSegmentNameLength || name.substr(0, 4) != "wal-" ||
      name.substr(24) != ".log") {
    return false;
  }
  uint64_t v = 0;
  for (size_t i = 4; i < 24; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;  // 20 digits can exceed 2^64
    v = v * 10 + d;
  }
  *first_lsn = v;
  return true;
}

void EncodeSegmentHeader(uint64_t first_lsn, uint8_t* out) {
  std::memcpy(out, kSegmentMagic, 8);
  PutU32(out + 8, kFormatVersion);
  PutU32(out + 12, static_cast<uint32_t>(kSegmentHeaderBytes));
  PutU64(out + 16, first_lsn);
  PutU64(out + 24, XXH3_64bits(out, 24));
}

bool DecodeSegmentHeader(const uint8_t* in, SegmentHeader* out, std::string* why) {
  if (std::memcmp(in, kSegmentMagic, 8) != 0) {
    *why = "bad magic (not a WorldDB log segment)";
    return false;
  }
  if (GetU64(in + 24) != XXH3_64bits(in, 24)) {
    *why = "segment header checksum mismatch";
    return false;
  }
  if (GetU32(in + 8) != kFormatVersion) {
    *why = "unsupported format version " + std::to_string(GetU32(in + 8)) + " (this build reads " +
           std::to_string(kFormatVersion) + ")";
    return false;
  }
  if (GetU32(in + 12) != kSegmentHeaderBytes) {
    *why = "segment header size " + std::to_string(GetU32(in + 12)) + " is not " +
           std::to_string(kSegmentHeaderBytes);
    return false;
  }
  out->first_lsn = GetU64(in + 16);
  return true;
}

uint64_t RecordChecksum(const uint8_t* header, const uint8_t* payload, size_t length) {
  return XXH3_64bits_withSeed(payload, length, XXH3_64bits(header + 8, kRecordHeaderBytes - 8));
}

void EncodeRecord(uint64_t lsn, RecordType type, uint64_t timestamp_us,
                  std::span<const uint8_t> payload, uint8_t* out) {
  PutU32(out + 8, static_cast<uint32_t>(payload.size()));
  out[12] = static_cast<uint8_t>(type);
  out[13] = out[14] = out[15] = 0;
  PutU64(out + 16, lsn);
  PutU64(out + 24, timestamp_us);
  if (!payload.empty()) std::memcpy(out + kRecordHeaderBytes, payload.data(), payload.size());
  const size_t pad = AlignUp8(payload.size()) - payload.size();
  if (pad != 0) std::memset(out + kRecordHeaderBytes + payload.size(), 0, pad);
  PutU64(out, RecordChecksum(out, out + kRecordHeaderBytes, payload.size()));
}

RecordHeader ParseRecordHeader(const uint8_t* in) {
  RecordHeader h;
  h.checksum = GetU64(in);
  h.length = GetU32(in + 8);
  h.type = in[12];
  h.lsn = GetU64(in + 16);
  h.timestamp_us = GetU64(in + 24);
  return h;
}

bool IsZero(const uint8_t* p, size_t n) {
  // Word at a time: preallocated segments end in megabytes of zeros.
  size_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(p + i) & 7) != 0; ++i) {
    if (p[i] != 0) return false;
  }
  for (; i + 8 <= n; i += 8) {
    if (GetU64(p + i) != 0) return false;
  }
  for (; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace worlddb::wal
