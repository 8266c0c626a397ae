// Snapshot loading (file format: wal/snapshot_format.h, docs/snapshot_format.md).
//
// Contract
//   * Every check runs before anything is applied: magic, version, header,
//     schema and footer checksums, and (when loading) every block's checksum,
//     layout and values, totals and duplicate ids. A file that fails any of
//     them gives Status::Corruption naming the file, the byte offset and what
//     is wrong; nothing is loaded and nothing crashes.
//   * LoadSnapshot fills a fresh engine (no kinds, no entities, commit log not
//     yet installed): it creates the kinds, then upserts the entities through
//     Engine::Replay in large WriteBatches, so nothing is logged. The engine may
//     have any shard count; positions must lie in its world.
//   * The whole file is read into memory while loading (about 40 bytes per
//     position-only entity).
//
// Thread safety: the functions share no state; call them from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/status.h"

namespace worlddb::wal {

struct SnapshotInfo {
  std::string path;
  uint64_t lsn = 0;
  uint64_t ticket = 0;        // the engine ticket of the cut
  uint64_t timestamp_us = 0;  // wall clock at the cut, microseconds since the epoch
  uint64_t entities = 0;
  uint64_t kinds = 0;
  uint64_t bytes = 0;  // file size
  uint32_t shards_at_write = 0;
  // Filled by TakeSnapshot only.
  uint64_t pause_us = 0;     // how long the shards were parked
  uint64_t fork_us = 0;      // of which the fork() call
  uint64_t duration_us = 0;  // TakeSnapshot's whole call
};

// Reads and checks the header, schema and footer; with verify_all_blocks also
// every block (as LoadSnapshot does).
Result<SnapshotInfo> ReadSnapshotInfo(const std::string& path, bool verify_all_blocks);

// Verifies the whole file, then loads it into `engine` (see the contract).
// `info` (may be null) receives the file's description.
Status LoadSnapshot(const std::string& path, Engine* engine, SnapshotInfo* info);

// The snapshot files (snapshot-<20 digits>.wdb) in `dir`, newest (highest
// LSN) first, unverified: only path, lsn and bytes are set. Temporary files
// (.tmp, crash leftovers) and other names are ignored.
Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& dir);

// "snapshot-00000000000000000042.wdb"
std::string SnapshotFileName(uint64_t lsn);

}  // namespace worlddb::wal
