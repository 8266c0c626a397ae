// TakeSnapshot: writes the whole world at one LSN to `dir` while writes and
// queries go on (file format: wal/snapshot_format.h).
//
// How: Engine::Checkpoint parks every shard at one ticket; while they are
// parked the calling thread fork()s, then releases them, so the pause every
// request sees is the fork (page-table copy). The commit log's Mark gives the
// cut's LSN, which the parent sends to the child. The child — a frozen,
// single-threaded copy of the world — streams the file straight from the
// shards' memory into snapshot-<lsn>.wdb.tmp using only a buffer the parent
// preallocated and write/pwrite/fsync/close (no malloc, no locks: another
// thread may have held any lock at fork time), and _exit()s. The parent waits
// for it (waitpid, on the caller's thread), waits until the log is durable up
// to the LSN (WaitDurable), and only then renames the file to its final name
// and fsyncs the directory — so a snapshot file never runs ahead of the log.
// On any failure the temporary file is removed and the Status says what
// failed (the child reports its error through a shared page).
//
// Thread safety: any thread; one snapshot per engine at a time — a second
// concurrent call on the same engine fails at once with kUnavailable.
// Requires a POSIX fork(); the process's other threads keep running.
#pragma once

#include <cstdint>
#include <string>

#include "engine/engine.h"
#include "wal/snapshot_reader.h"

namespace worlddb::wal {

struct SnapshotOptions {
  // The LSN written into the file (and its name) when the engine has no
  // commit log; ignored otherwise (the log's Mark decides).
  uint64_t lsn_without_log = 0;
};

// Blocks the caller until the snapshot is durable (file and directory
// fsynced, log durable up to its LSN). `dir` must exist.
Result<SnapshotInfo> TakeSnapshot(Engine& engine, const std::string& dir,
                                  const SnapshotOptions& options);

}  // namespace worlddb::wal
