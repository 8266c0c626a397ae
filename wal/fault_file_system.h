// FaultFileSystem: an in-memory FileSystem for tests that injects the disk
// failures the log must survive, through the same LogIo seam the io_uring
// implementation serves (wal/file_system.h).
//
//   * Faults on the log's writes and syncs (counted from 1 over every LogIo
//     op since the last ClearFaults): fail the N-th write or sync with EIO,
//     make the N-th write short (half its bytes), or run out of space after a
//     total of K bytes (ENOSPC: a write that does not fit writes what fits).
//   * Each file keeps what was written (what reached "the kernel") apart from
//     what was last synced. PowerCut() drops everything unsynced, including
//     files whose directory entry was never synced; a process crash needs no
//     call (the kernel keeps what it was given).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "wal/file_system.h"

namespace worlddb::wal {

class FaultFileSystem final : public FileSystem {
 public:
  FaultFileSystem() = default;

  void FailWrite(uint64_t n);          // the n-th write returns -EIO (0 = never)
  void FailSync(uint64_t n);           // the n-th sync returns -EIO (0 = never)
  void FailWriteback(uint64_t n);      // the n-th writeback returns -EIO (0 = never)
  void ShortWrite(uint64_t n);         // the n-th write writes half its bytes
  void SetSpaceLimit(uint64_t bytes);  // UINT64_MAX = unlimited
  void ClearFaults();
  uint64_t writes() const;      // write ops seen
  uint64_t syncs() const;       // sync ops seen
  uint64_t writebacks() const;  // writeback ops seen
  uint64_t used_bytes() const;

  void PowerCut();
  // Test access to the bytes of a file (what was written, synced or not).
  std::vector<uint8_t> Contents(const std::string& path) const;
  // Creates or replaces a file with durable contents.
  void SetContents(const std::string& path, std::vector<uint8_t> bytes);
  bool Exists(const std::string& path) const;

  Result<std::unique_ptr<LogIo>> NewLogIo(
      std::span<const std::span<uint8_t>> fixed_buffers) override;
  Result<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  Status CreateDir(const std::string& dir) override;
  Status SyncDir(const std::string& dir) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status Truncate(const std::string& path, uint64_t size) override;
  Result<uint64_t> FileSize(const std::string& path) override;
  Status PrepareFile(const std::string& path, uint64_t bytes, Preallocate how) override;

 private:
  class Io;
  class Reader;
  struct File {
    std::vector<uint8_t> data;
    std::vector<uint8_t> synced;
    bool entry_durable = false;
  };
  static std::string Parent(const std::string& path);
  static std::string Norm(const std::string& path);
  uint64_t UsedLocked() const;
  // The LogIo ops, under mu_.
  Result<std::string> OpenSegmentLocked(const std::string& path, uint64_t bytes, Preallocate how);
  void RunLocked(const std::string& path, IoOp& op);

  mutable std::mutex mu_;
  std::map<std::string, File> files_;
  std::set<std::string> dirs_;
  uint64_t fail_write_ = 0, fail_sync_ = 0, fail_writeback_ = 0, short_write_ = 0;
  uint64_t space_limit_ = UINT64_MAX;
  uint64_t writes_ = 0, syncs_ = 0, writebacks_ = 0;
};

}  // namespace worlddb::wal
