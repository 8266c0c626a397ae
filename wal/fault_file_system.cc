#include "wal/fault_file_system.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace worlddb::wal {

std::string FaultFileSystem::Norm(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string FaultFileSystem::Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

void FaultFileSystem::FailWrite(uint64_t n) {
  std::lock_guard l(mu_);
  fail_write_ = n;
}
void FaultFileSystem::FailSync(uint64_t n) {
  std::lock_guard l(mu_);
  fail_sync_ = n;
}
void FaultFileSystem::FailWriteback(uint64_t n) {
  std::lock_guard l(mu_);
  fail_writeback_ = n;
}
void FaultFileSystem::ShortWrite(uint64_t n) {
  std::lock_guard l(mu_);
  short_write_ = n;
}
void FaultFileSystem::SetSpaceLimit(uint64_t bytes) {
  std::lock_guard l(mu_);
  space_limit_ = bytes;
}
void FaultFileSystem::ClearFaults() {
  std::lock_guard l(mu_);
  fail_write_ = fail_sync_ = fail_writeback_ = short_write_ = 0;
  space_limit_ = UINT64_MAX;
  writes_ = syncs_ = writebacks_ = 0;
}
uint64_t FaultFileSystem::writes() const {
  std::lock_guard l(mu_);
  return writes_;
}
uint64_t FaultFileSystem::writebacks() const {
  std::lock_guard l(mu_);
  return writebacks_;
}
uint64_t FaultFileSystem::syncs() const {
  std::lock_guard l(mu_);
  return syncs_;
}
uint64_t FaultFileSystem::UsedLocked() const {
  uint64_t n = 0;
  for (const auto& [p, f] : files_) n += f.data.size();
  return n;
}
uint64_t FaultFileSystem::used_bytes() const {
  std::lock_guard l(mu_);
  return UsedLocked();
}

void FaultFileSystem::PowerCut() {
  std::lock_guard l(mu_);
  for (auto it = files_.begin(); it != files_.end();) {
    if (!it->second.entry_durable) {
      it = files_.erase(it);
    } else {
      it->second.data = it->second.synced;
      ++it;
    }
  }
}

std::vector<uint8_t> FaultFileSystem::Contents(const std::string& path) const {
  std::lock_guard l(mu_);
  const auto it = files_.find(Norm(path));
  return it == files_.end() ? std::vector<uint8_t>() : it->second.data;
}

void FaultFileSystem::SetContents(const std::string& path, std::vector<uint8_t> bytes) {
  std::lock_guard l(mu_);
  File& f = files_[Norm(path)];
  f.synced = bytes;
  f.data = std::move(bytes);
  f.entry_durable = true;
  dirs_.insert(Parent(Norm(path)));
}

bool FaultFileSystem::Exists(const std::string& path) const {
  std::lock_guard l(mu_);
  return files_.count(Norm(path)) != 0;
}

Result<std::string> FaultFileSystem::OpenSegmentLocked(const std::string& path, uint64_t bytes,
                                                       Preallocate how) {
  const std::string p = Norm(path);
  if (dirs_.count(Parent(p)) == 0) {
    return Status::IOError(p + ": create log segment: " + ErrnoText(ENOENT));
  }
  File& f = files_[p];
  f.data.clear();
  if (how != Preallocate::kNone) {
    if (UsedLocked() + bytes > space_limit_) {
      return Status::IOError(p + ": preallocate " + std::to_string(bytes) +
                             " bytes: " + ErrnoText(ENOSPC));
    }
    f.data.assign(bytes, 0);
    f.synced = f.data;  // preallocation syncs
  }
  return p;
}

void FaultFileSystem::RunLocked(const std::string& path, IoOp& op) {
  const auto it = files_.find(path);
  if (it == files_.end()) {
    op.result = -EBADF;
    return;
  }
  File& f = it->second;
  if (op.kind == IoOp::Kind::kWriteback) {
    // Persists nothing here: what reaches the disk before a sync is the
    // kernel's choice, and PowerCut drops whatever no kSync covered.
    op.result = ++writebacks_ == fail_writeback_ ? -EIO : 0;
    return;
  }
  if (op.kind == IoOp::Kind::kSync) {
    ++syncs_;
    if (syncs_ == fail_sync_) {
      // Like Linux after a failed fsync: the dirty data may be gone for good.
      op.result = -EIO;
      return;
    }
    f.synced = f.data;
    op.result = 0;
    return;
  }
  ++writes_;
  if (writes_ == fail_write_) {
    op.result = -EIO;
    return;
  }
  size_t n = op.len;
  if (writes_ == short_write_) n = op.len / 2;
  const uint64_t end = op.offset + n;
  if (end > f.data.size()) {
    const uint64_t used = UsedLocked();
    const uint64_t growth = end - f.data.size();
    if (used + growth > space_limit_) {
      const uint64_t room = space_limit_ > used ? space_limit_ - used : 0;
      const uint64_t max_end = f.data.size() + room;
      n = max_end > op.offset ? static_cast<size_t>(max_end - op.offset) : 0;
      if (n == 0) {
        op.result = -ENOSPC;
        return;
      }
    }
  }
  if (op.offset + n > f.data.size()) f.data.resize(op.offset + n, 0);
  if (n > 0) std::memcpy(f.data.data() + op.offset, op.data, n);
  op.result = static_cast<int64_t>(n);
}

class FaultFileSystem::Io final : public LogIo {
 public:
  explicit Io(FaultFileSystem* fs) : fs_(fs) {}
  Result<int> OpenSegment(const std::string& path, uint64_t bytes, Preallocate how) override {
    std::lock_guard l(fs_->mu_);
    auto p = fs_->OpenSegmentLocked(path, bytes, how);
    if (!p.ok()) return p.status();
    handles_[next_] = *p;
    return next_++;
  }
  void Run(int handle, std::span<IoOp> ops) override {
    std::lock_guard l(fs_->mu_);
    const auto it = handles_.find(handle);
    bool failed = false;
    for (IoOp& op : ops) {
      if (failed) {
        op.result = -ECANCELED;
        continue;
      }
      if (it == handles_.end()) {
        op.result = -EBADF;
      } else {
        fs_->RunLocked(it->second, op);
      }
      failed = op.result < 0 ||
               (op.kind == IoOp::Kind::kWrite && static_cast<size_t>(op.result) != op.len);
    }
  }
  Result<int> OpenPrepared(const std::string& path) override {
    std::lock_guard l(fs_->mu_);
    if (fs_->files_.count(Norm(path)) == 0) {
      return Status::IOError(path + ": open prepared log segment: " + ErrnoText(ENOENT));
    }
    handles_[next_] = Norm(path);
    return next_++;
  }
  Status CloseSegment(int handle) override {
    handles_.erase(handle);
    return Status::Ok();
  }

 private:
  FaultFileSystem* fs_;
  std::map<int, std::string> handles_;
  int next_ = 1;
};

class FaultFileSystem::Reader final : public ReadableFile {
 public:
  explicit Reader(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  uint64_t Size() const override { return bytes_.size(); }
  Status Read(uint64_t offset, size_t n, uint8_t* dst) override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) {
      return Status::IOError("read past the end of file at offset " + std::to_string(offset));
    }
    if (n > 0) std::memcpy(dst, bytes_.data() + offset, n);
    return Status::Ok();
  }

 private:
  std::vector<uint8_t> bytes_;
};

Result<std::unique_ptr<LogIo>> FaultFileSystem::NewLogIo(std::span<const std::span<uint8_t>>) {
  return std::unique_ptr<LogIo>(std::make_unique<Io>(this));
}

Result<std::unique_ptr<ReadableFile>> FaultFileSystem::OpenReadable(const std::string& path) {
  std::lock_guard l(mu_);
  const auto it = files_.find(Norm(path));
  if (it == files_.end()) return Status::IOError(path + ": open: " + ErrnoText(ENOENT));
  return std::unique_ptr<ReadableFile>(std::make_unique<Reader>(it->second.data));
}

Result<std::vector<std::string>> FaultFileSystem::ListDir(const std::string& dir) {
  std::lock_guard l(mu_);
  const std::string d = Norm(dir);
  if (dirs_.count(d) == 0) return Status::NotFound(dir + ": log directory does not exist");
  std::vector<std::string> names;
  for (const auto& [p, f] : files_) {
    if (Parent(p) == d) names.push_back(p.substr(d.size() + 1));
  }
  return names;
}

Status FaultFileSystem::CreateDir(const std::string& dir) {
  std::lock_guard l(mu_);
  for (std::string d = Norm(dir); !d.empty(); d = Parent(d)) dirs_.insert(d);
  return Status::Ok();
}

Status FaultFileSystem::SyncDir(const std::string& dir) {
  std::lock_guard l(mu_);
  const std::string d = Norm(dir);
  if (dirs_.count(d) == 0) return Status::IOError(dir + ": open directory: " + ErrnoText(ENOENT));
  for (auto& [p, f] : files_) {
    if (Parent(p) == d) f.entry_durable = true;
  }
  return Status::Ok();
}

Status FaultFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard l(mu_);
  const auto it = files_.find(Norm(from));
  if (it == files_.end()) return Status::IOError(from + ": rename: " + ErrnoText(ENOENT));
  if (dirs_.count(Parent(Norm(to))) == 0) {
    return Status::IOError(from + ": rename to " + to + ": " + ErrnoText(ENOENT));
  }
  File f = std::move(it->second);
  files_.erase(it);
  files_[Norm(to)] = std::move(f);
  return Status::Ok();
}

Status FaultFileSystem::Remove(const std::string& path) {
  std::lock_guard l(mu_);
  if (files_.erase(Norm(path)) == 0)
    return Status::IOError(path + ": remove: " + ErrnoText(ENOENT));
  return Status::Ok();
}

Status FaultFileSystem::Truncate(const std::string& path, uint64_t size) {
  std::lock_guard l(mu_);
  const auto it = files_.find(Norm(path));
  if (it == files_.end()) return Status::IOError(path + ": truncate: " + ErrnoText(ENOENT));
  it->second.data.resize(size, 0);
  it->second.synced = it->second.data;
  return Status::Ok();
}

Status FaultFileSystem::PrepareFile(const std::string& path, uint64_t bytes, Preallocate how) {
  std::lock_guard l(mu_);
  auto p = OpenSegmentLocked(path, bytes, how);
  return p.ok() ? Status::Ok() : p.status();
}

Result<uint64_t> FaultFileSystem::FileSize(const std::string& path) {
  std::lock_guard l(mu_);
  const auto it = files_.find(Norm(path));
  if (it == files_.end()) return Status::IOError(path + ": stat: " + ErrnoText(ENOENT));
  return static_cast<uint64_t>(it->second.data.size());
}

}  // namespace worlddb::wal
