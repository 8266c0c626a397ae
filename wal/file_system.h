// FileSystem: the I/O seam of the write-ahead log. Everything the log writer
// and reader do to disk goes through it, so tests can inject faults
// (wal/fault_file_system.h) into the very code paths production runs.
//
//   * FileSystem::Default() is the real disk: POSIX calls for directories and
//     reads, and io_uring (liburing) for the writer's appends and fdatasync.
//   * The writer never calls write()/fdatasync() itself: it hands a LogIo a
//     chain of IoOps (writes then an optional sync) that the implementation
//     runs as linked submissions (IOSQE_IO_LINK): an op runs only if every
//     earlier op of the chain completed in full. The uring LogIo submits the
//     chain in one io_uring_submit; the fault LogIo completes it synchronously
//     with injected results. Either way the writer's logic is the same.
//
// Ownership: Default() is a process-wide object that lives forever. A LogIo
// is owned by its caller and used by one thread at a time (the log thread);
// buffers registered with NewLogIo must outlive it. FileSystem methods may
// be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/status.h"

namespace worlddb::wal {

// How a new segment's blocks are reserved before records are written.
enum class Preallocate : uint8_t {
  kNone = 0,       // the file grows with every append
  kFallocate = 1,  // fallocate(): blocks reserved, but as unwritten extents
  kZeroFill = 2,   // written with zeros and synced: appends overwrite blocks
};

struct IoOp {
  // kWriteback starts writing [offset, offset + len) to the device without
  // waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE): not a durability
  // point, only less left for the next kSync to write.
  enum class Kind : uint8_t { kWrite, kSync, kWriteback };
  Kind kind = Kind::kWrite;
  uint64_t offset = 0;            // kWrite, kWriteback: file offset
  const uint8_t* data = nullptr;  // kWrite: bytes (must stay valid until Run returns)
  size_t len = 0;
  int buf_index = -1;  // kWrite: index of a registered buffer holding data, or -1
  // Filled by Run: bytes written (kWrite), 0 (kSync), or -errno. An op after
  // one that failed or was short gets -ECANCELED and was not executed.
  int64_t result = 0;
};

class LogIo {
 public:
  virtual ~LogIo() = default;
  // Creates `path` (replacing any file of that name) for writing and
  // reserves `bytes` as `how` says; returns a handle for Run.
  virtual Result<int> OpenSegment(const std::string& path, uint64_t bytes, Preallocate how) = 0;
  // Opens an existing file (prepared with FileSystem::PrepareFile) for
  // writing without truncating it.
  virtual Result<int> OpenPrepared(const std::string& path) = 0;
  // Runs `ops` on the segment, in order, as one linked chain; fills results.
  virtual void Run(int handle, std::span<IoOp> ops) = 0;
  virtual Status CloseSegment(int handle) = 0;
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  virtual uint64_t Size() const = 0;
  // Reads exactly n bytes at offset into dst, or fails.
  virtual Status Read(uint64_t offset, size_t n, uint8_t* dst) = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // The real disk (POSIX + io_uring).
  static FileSystem* Default();

  // `fixed_buffers` are registered with the kernel where the implementation
  // can (io_uring_register_buffers); IoOp::buf_index refers to them.
  virtual Result<std::unique_ptr<LogIo>> NewLogIo(
      std::span<const std::span<uint8_t>> fixed_buffers) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) = 0;
  // Names (not paths) of the entries in `dir`; NotFound if it does not exist.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // Creates `dir` and missing parents; OK if it exists.
  virtual Status CreateDir(const std::string& dir) = 0;
  // fsync of the directory itself: makes created, renamed and removed entries durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // Cuts `path` to `size` bytes and fsyncs it.
  virtual Status Truncate(const std::string& path, uint64_t size) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Creates (or replaces) `path` with `bytes` reserved as `how` says, synced:
  // the log's next segment, prepared ahead of use off the append path.
  virtual Status PrepareFile(const std::string& path, uint64_t bytes, Preallocate how) = 0;
};

// "dir/name" (no doubled slash).
std::string JoinPath(const std::string& dir, const std::string& name);
// "Input/output error (errno 5)"
std::string ErrnoText(int err);

}  // namespace worlddb::wal
