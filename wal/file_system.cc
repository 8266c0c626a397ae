#include "wal/file_system.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

namespace worlddb::wal {

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string ErrnoText(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

namespace {

Status Errno(const std::string& what, const std::string& path, int err) {
  return Status::IOError(path + ": " + what + ": " + ErrnoText(err));
}

// Writes all of [p, p+n) at offset with pwrite (only used to zero-fill a new
// segment, off the append path).
int PwriteAll(int fd, const uint8_t* p, size_t n, uint64_t off) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return 0;
}

// Creates `path` (truncating it) with `bytes` reserved as `how` says, synced;
// returns the open descriptor.
Result<int> CreateReserved(const std::string& path, uint64_t bytes, Preallocate how) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create log segment", path, errno);
  int err = 0;
  if (how == Preallocate::kFallocate && bytes > 0) {
    if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0) err = errno;
  } else if (how == Preallocate::kZeroFill && bytes > 0) {
    static const std::vector<uint8_t> zeros(size_t{1} << 20, 0);
    for (uint64_t off = 0; off < bytes && err == 0; off += zeros.size()) {
      err = PwriteAll(fd, zeros.data(), std::min<uint64_t>(zeros.size(), bytes - off), off);
    }
  }
  // The size and block map must be durable before appends rely on them
  // needing only a data sync.
  if (err == 0 && how != Preallocate::kNone && ::fdatasync(fd) != 0) err = errno;
  if (err != 0) {
    ::close(fd);
    return Errno("preallocate " + std::to_string(bytes) + " bytes", path, err);
  }
  return fd;
}

// The production LogIo: one io_uring owned by the log thread. A chain of ops
// is one submission of linked SQEs; the thread waits for all completions.
class UringLogIo final : public LogIo {
 public:
  static constexpr unsigned kEntries = 64;

  ~UringLogIo() override {
    for (auto& [h, fd] : fds_) ::close(fd);
    if (ring_ok_) io_uring_queue_exit(&ring_);
  }

  Status Init(std::span<const std::span<uint8_t>> buffers) {
    const int r = io_uring_queue_init(kEntries, &ring_, 0);
    if (r < 0) return Status::IOError("io_uring_queue_init: " + ErrnoText(-r));
    ring_ok_ = true;
    if (!buffers.empty()) {
      std::vector<iovec> iov;
      for (auto b : buffers) iov.push_back({b.data(), b.size()});
      // Registration can fail under a small RLIMIT_MEMLOCK on old kernels;
      // the writes then go unregistered, which is slower but correct.
      fixed_ =
          io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size())) == 0;
    }
    return Status::Ok();
  }

  Result<int> OpenSegment(const std::string& path, uint64_t bytes, Preallocate how) override {
    auto fd = CreateReserved(path, bytes, how);
    if (!fd.ok()) return fd.status();
    return Adopt(*fd);
  }

  Result<int> OpenPrepared(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open prepared log segment", path, errno);
    return Adopt(fd);
  }

  void Run(int handle, std::span<IoOp> ops) override {
    const auto it = fds_.find(handle);
    size_t i = 0;
    if (it == fds_.end()) {
      for (auto& op : ops) op.result = -EBADF;
      return;
    }
    const int fd = it->second;
    bool failed = false;
    while (i < ops.size()) {
      if (failed) {
        ops[i++].result = -ECANCELED;
        continue;
      }
      // One linked chain per ring-full; chains longer than the ring are split
      // (each piece still runs only after the previous one succeeded).
      const size_t n = std::min<size_t>(ops.size() - i, kEntries);
      for (size_t k = 0; k < n; ++k) {
        IoOp& op = ops[i + k];
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (op.kind == IoOp::Kind::kSync) {
          io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        } else if (op.kind == IoOp::Kind::kWriteback) {
          io_uring_prep_sync_file_range(sqe, fd, static_cast<unsigned>(op.len), op.offset,
                                        SYNC_FILE_RANGE_WRITE);
        } else if (fixed_ && op.buf_index >= 0) {
          io_uring_prep_write_fixed(sqe, fd, op.data, static_cast<unsigned>(op.len), op.offset,
                                    op.buf_index);
        } else {
          io_uring_prep_write(sqe, fd, op.data, static_cast<unsigned>(op.len), op.offset);
        }
        if (k + 1 < n) sqe->flags |= IOSQE_IO_LINK;
        io_uring_sqe_set_data64(sqe, i + k);
      }
      int r = io_uring_submit_and_wait(&ring_, static_cast<unsigned>(n));
      size_t seen = 0;
      if (r < 0) {
        for (size_t k = 0; k < n; ++k) ops[i + k].result = r;
        failed = true;
        i += n;
        continue;
      }
      while (seen < n) {
        io_uring_cqe* cqe = nullptr;
        r = io_uring_wait_cqe(&ring_, &cqe);
        if (r == -EINTR) continue;
        if (r < 0) {
          // Cannot happen with a healthy ring; treat as failure of the rest.
          for (size_t k = 0; k < n; ++k) ops[i + k].result = r;
          seen = n;
          break;
        }
        const uint64_t idx = io_uring_cqe_get_data64(cqe);
        ops[idx].result = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        ++seen;
      }
      for (size_t k = 0; k < n; ++k) {
        const IoOp& op = ops[i + k];
        if (op.result < 0 ||
            (op.kind == IoOp::Kind::kWrite && static_cast<size_t>(op.result) != op.len)) {
          failed = true;
        }
      }
      i += n;
    }
  }

  int Adopt(int fd) {
    const int h = next_handle_++;
    fds_[h] = fd;
    return h;
  }

  Status CloseSegment(int handle) override {
    const auto it = fds_.find(handle);
    if (it == fds_.end()) return Status::Ok();
    const int r = ::close(it->second);
    fds_.erase(it);
    if (r != 0) return Status::IOError("close log segment: " + ErrnoText(errno));
    return Status::Ok();
  }

 private:
  io_uring ring_{};
  bool ring_ok_ = false;
  bool fixed_ = false;
  int next_handle_ = 1;
  std::map<int, int> fds_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixReadableFile() override { ::close(fd_); }
  uint64_t Size() const override { return size_; }
  Status Read(uint64_t offset, size_t n, uint8_t* dst) override {
    while (n > 0) {
      const ssize_t r = ::pread(fd_, dst, n, static_cast<off_t>(offset));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Errno("read at offset " + std::to_string(offset), path_, errno);
      }
      if (r == 0) {
        return Status::IOError(path_ + ": unexpected end of file at offset " +
                               std::to_string(offset));
      }
      dst += r;
      n -= static_cast<size_t>(r);
      offset += static_cast<uint64_t>(r);
    }
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<LogIo>> NewLogIo(
      std::span<const std::span<uint8_t>> fixed_buffers) override {
    auto io = std::make_unique<UringLogIo>();
    WORLDDB_RETURN_IF_ERROR(io->Init(fixed_buffers));
    return std::unique_ptr<LogIo>(std::move(io));
  }

  Result<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return Errno("stat", path, e);
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<ReadableFile>(
        std::make_unique<PosixReadableFile>(path, fd, static_cast<uint64_t>(st.st_size)));
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    std::error_code ec;
    std::vector<std::string> names;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) {
      if (ec == std::errc::no_such_file_or_directory) {
        return Status::NotFound(dir + ": log directory does not exist");
      }
      return Status::IOError(dir + ": list directory: " + ec.message());
    }
    for (const auto& e : it) names.push_back(e.path().filename().string());
    return names;
  }

  Status CreateDir(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IOError(dir + ": create directory: " + ec.message());
    return Status::Ok();
  }

  Status SyncDir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("open directory", dir, errno);
    const int r = ::fsync(fd);
    const int e = errno;
    ::close(fd);
    if (r != 0) return Errno("fsync directory", dir, e);
    return Status::Ok();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Errno("rename to " + to, from, errno);
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Errno("remove", path, errno);
    return Status::Ok();
  }

  Status Truncate(const std::string& path, uint64_t size) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open for truncate", path, errno);
    int err = 0;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) err = errno;
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    ::close(fd);
    if (err != 0) return Errno("truncate to " + std::to_string(size) + " bytes", path, err);
    return Status::Ok();
  }

  Status PrepareFile(const std::string& path, uint64_t bytes, Preallocate how) override {
    auto fd = CreateReserved(path, bytes, how);
    if (!fd.ok()) return fd.status();
    ::close(*fd);
    return Status::Ok();
  }

  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Errno("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }
};

}  // namespace

FileSystem* FileSystem::Default() {
  static PosixFileSystem* fs = new PosixFileSystem();
  return fs;
}

}  // namespace worlddb::wal
