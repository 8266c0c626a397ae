// LogReader: scans the write-ahead log (wal/log_format.h) in LSN order,
// verifying every checksum and the continuity of LSNs, for recovery, offline
// tools (worldctl wal verify/dump) and point-in-time restore.
//
// Outcomes of damage (docs/wal_format.md "Damage"):
//   * A torn tail — the last segment ends in an incomplete or bad record
//     with no valid record after it (a crash during an append) — is cut off
//     in place when `repair_tail` is set, and reported; never an error.
//   * Anything else — a bad record with valid records after it, a bad record
//     in a segment that is not the last, a gap in LSNs, a missing segment, a
//     bad segment header — is Status::Corruption naming the file, the byte
//     offset, what is wrong and what to do. With `salvage`, the scan delivers
//     the valid prefix up to the damage instead and reports what it dropped.
//
// On an error, `fn` may already have seen records before the damage; callers
// that apply records (recovery) discard what they built when the scan fails.
//
// Thread safety: ScanLog and ListSegments are reentrant; concurrent scans of
// one directory are fine, a scan with repair_tail must not race a writer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/commit_log.h"
#include "engine/status.h"
#include "wal/file_system.h"

namespace worlddb::wal {

struct Record {
  uint64_t lsn = 0;
  RecordType type = RecordType::kWriteBatch;
  uint64_t timestamp_us = 0;
  std::span<const uint8_t> payload;  // 8-byte aligned; valid only during the callback
  std::string_view segment;          // path of the segment holding the record
  uint64_t offset = 0;               // byte offset of the record's header in it
};

struct TornTail {
  std::string segment;  // path
  uint64_t offset = 0;  // where the valid part of the segment ends
  uint64_t bytes_dropped = 0;
  std::string why;  // what was wrong with the bytes at `offset`
  bool repaired = false;
};

struct SalvageReport {
  std::string damage;             // the Corruption message a strict scan returns
  uint64_t kept_through_lsn = 0;  // the last LSN delivered from before the damage
  std::string segment;            // where the damage starts: the segment's path
  uint64_t offset = 0;            // and the byte offset in it
};

struct ScanOptions {
  // The log directory, optionally also an archive directory: segments from
  // all are merged by first LSN (a segment present in two with identical
  // bytes is fine). A directory that does not exist holds no segments.
  std::vector<std::string> dirs;
  uint64_t from_lsn =
      1;  // first record delivered (0 = the first the log holds); segments below are not read
  uint64_t to_lsn = UINT64_MAX;  // last record delivered (inclusive); the scan stops there
  bool salvage = false;
  bool repair_tail = false;  // recovery sets it; offline tools do not
  FileSystem* fs = nullptr;  // null = FileSystem::Default()
};

struct ScanResult {
  uint64_t log_first_lsn = 0;  // first LSN the log still holds (0 = no segment)
  uint64_t first_lsn = 0;      // first record delivered (0 = none)
  // Last valid LSN the scan reached; with no record scanned, the LSN before
  // the segment the scan started in (so a writer continues at last_lsn + 1).
  uint64_t last_lsn = 0;
  uint64_t records = 0;   // delivered
  uint64_t bytes = 0;     // payload bytes delivered
  uint64_t segments = 0;  // segments read
  std::optional<TornTail> torn_tail;
  std::optional<SalvageReport> salvage;
  // Things that are fine but worth a log line (e.g. a torn tail left in an
  // older segment that a restarted writer already moved past).
  std::vector<std::string> notes;
};

struct SegmentFile {
  std::string path;
  std::string name;
  uint64_t first_lsn = 0;
  uint64_t bytes = 0;
};

// The segments in `dir`, ordered by first LSN (other files are ignored).
Result<std::vector<SegmentFile>> ListSegments(const std::string& dir, FileSystem* fs = nullptr);

Result<ScanResult> ScanLog(const ScanOptions& o, const std::function<Status(const Record&)>& fn);

}  // namespace worlddb::wal
