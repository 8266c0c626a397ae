#include "wal/snapshot_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "engine/schema_codec.h"
#include "wal/snapshot_format.h"

namespace worlddb::wal {
namespace {

// Written by the child into a MAP_SHARED page, read by the parent after
// waitpid. Plain fields: the child is single-threaded and the parent reads
// only after the child exited.
struct ChildReport {
  uint32_t done;    // 1 when the file is written and fsynced
  int32_t error;    // errno of the failed call, 0 if none
  uint64_t offset;  // file offset the failed call was at
  uint64_t entities, blocks, bytes;
  char what[256];  // what failed, NUL-terminated
};

// Everything the child needs, built by the parent before the fork so that the
// child allocates nothing.
struct Plan {
  int dir_fd = -1;
  int sock = -1;  // child's end: receives the LSN
  ChildReport* report = nullptr;
  std::vector<uint8_t> header;  // kFileHeaderBytes, LSN and totals filled by the child
  std::vector<uint8_t> schema;  // the schema section
  std::vector<std::vector<ColumnType>> types;  // per kind
  std::unique_ptr<uint8_t[]> buffer;
  size_t buffer_bytes = 0;
  std::vector<const Shard*> shards;
};

template <class T>
void Put(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

size_t FixedBytes(ColumnType t) {
  switch (t) {
    case ColumnType::kBool:
      return 1;
    case ColumnType::kI32:
    case ColumnType::kF32:
    case ColumnType::kString:  // its u32 length
      return 4;
    case ColumnType::kI64:
    case ColumnType::kF64:
      return 8;
  }
  return 8;
}

// ---- The child: no allocation, no locks, only syscalls and plain loops ----

void CopyText(char* dst, size_t cap, const char* a, const char* b = "") {
  size_t n = 0;
  for (const char* s : {a, b}) {
    while (*s && n + 1 < cap) dst[n++] = *s++;
  }
  dst[n] = '\0';
}

[[noreturn]] void ChildFail(ChildReport* r, const char* what, const char* name, uint64_t offset,
                            int err) {
  CopyText(r->what, sizeof r->what, what, name);
  r->error = err;
  r->offset = offset;
  _exit(1);
}

// "snapshot-<20 digits>.wdb.tmp" into buf (at least 40 bytes).
void FormatTmpName(uint64_t lsn, char* buf) {
  const char* prefix = "snapshot-";
  size_t n = 0;
  while (*prefix) buf[n++] = *prefix++;
  for (size_t i = 0; i < kSnapshotNameDigits; ++i) {
    buf[n + kSnapshotNameDigits - 1 - i] = static_cast<char>('0' + lsn % 10);
    lsn /= 10;
  }
  n += kSnapshotNameDigits;
  const char* suffix = ".wdb.tmp";
  while (*suffix) buf[n++] = *suffix++;
  buf[n] = '\0';
}

void WriteAll(int fd, const uint8_t* p, size_t n, uint64_t offset, ChildReport* r,
              const char* name) {
  while (n > 0) {
    const ssize_t w = pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      ChildFail(r, "write to ", name, offset, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

// Fills plan.buffer with one block of rows [r0, r1) of `kind` in `shard`.
// Returns its size.
size_t BuildBlock(const Plan& plan, uint32_t shard_index, uint16_t kind, uint32_t r0, uint32_t r1) {
  const Table& table = plan.shards[shard_index]->table(kind);
  const QuadTree& tree = plan.shards[shard_index]->tree(kind);
  const std::vector<ColumnType>& types = plan.types[kind];
  const uint32_t rows = r1 - r0;
  uint8_t* const base = plan.buffer.get();
  size_t p = kBlockHeaderBytes;
  for (ColumnType t : types) base[p++] = static_cast<uint8_t>(t);
  while (p % 8) base[p++] = 0;
  const size_t payload_start = p;
  auto pad = [&] {
    while (p % 8) base[p++] = 0;
  };
  for (uint32_t r = r0; r < r1; ++r, p += 8) Put(base + p, table.id(r));
  for (uint32_t r = r0; r < r1; ++r, p += 8) Put(base + p, tree.X(r));
  for (uint32_t r = r0; r < r1; ++r, p += 8) Put(base + p, tree.Y(r));
  for (uint32_t r = r0; r < r1; ++r, p += 8) Put(base + p, table.z(r));
  for (size_t c = 0; c < types.size(); ++c) {
    const Column& col = table.column(c);
    switch (types[c]) {
      case ColumnType::kBool:
        for (uint32_t r = r0; r < r1; ++r) base[p++] = col.GetBool(r) ? 1 : 0;
        break;
      case ColumnType::kI32:
        for (uint32_t r = r0; r < r1; ++r, p += 4) Put(base + p, col.GetI32(r));
        break;
      case ColumnType::kI64:
        for (uint32_t r = r0; r < r1; ++r, p += 8) Put(base + p, col.GetI64(r));
        break;
      case ColumnType::kF32:
        for (uint32_t r = r0; r < r1; ++r, p += 4) Put(base + p, col.GetF32(r));
        break;
      case ColumnType::kF64:
        for (uint32_t r = r0; r < r1; ++r, p += 8) Put(base + p, col.GetF64(r));
        break;
      case ColumnType::kString:
        for (uint32_t r = r0; r < r1; ++r, p += 4) {
          Put(base + p, static_cast<uint32_t>(col.GetString(r).size()));
        }
        pad();
        for (uint32_t r = r0; r < r1; ++r) {
          const std::string& s = col.GetString(r);
          std::memcpy(base + p, s.data(), s.size());
          p += s.size();
        }
        break;
    }
    pad();
  }
  Put<uint32_t>(base + 8, kSnapshotBlockMagic);
  Put<uint16_t>(base + 12, kind);
  Put<uint16_t>(base + 14, static_cast<uint16_t>(types.size()));
  Put<uint32_t>(base + 16, rows);
  Put<uint32_t>(base + 20, shard_index);
  Put<uint64_t>(base + 24, p - payload_start);
  Put<uint64_t>(base, XXH3_64bits(base + 8, p - 8));
  return p;
}

// How many rows from r0 fit in one block (at least 1 unless even one row
// does not fit, then 0).
uint32_t RowsThatFit(const Plan& plan, const Table& table, uint16_t kind, uint32_t r0) {
  const std::vector<ColumnType>& types = plan.types[kind];
  size_t fixed = 32;  // id, x, y, z
  for (ColumnType t : types) fixed += FixedBytes(t);
  // Header, types and up to 7 bytes of padding after every section.
  const size_t overhead = kBlockHeaderBytes + Pad8(types.size()) + 8 * (4 + 2 * types.size());
  const uint32_t limit = std::min<uint32_t>(kSnapshotBlockRows, table.size() - r0);
  size_t used = overhead;
  uint32_t n = 0;
  for (; n < limit; ++n) {
    size_t row = fixed;
    for (size_t c = 0; c < types.size(); ++c) {
      if (types[c] == ColumnType::kString) row += table.column(c).GetString(r0 + n).size();
    }
    if (used + row > plan.buffer_bytes) break;
    used += row;
  }
  return n;
}

[[noreturn]] void ChildMain(const Plan& plan) {
  ChildReport* rep = plan.report;
  uint64_t lsn = 0;
  size_t got = 0;
  while (got < sizeof lsn) {
    const ssize_t n = read(plan.sock, reinterpret_cast<char*>(&lsn) + got, sizeof lsn - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3);  // the parent gave up (no LSN): write nothing
    got += static_cast<size_t>(n);
  }
  char name[64];
  FormatTmpName(lsn, name);
  const int fd = openat(plan.dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) ChildFail(rep, "create ", name, 0, errno);
  uint64_t off = kFileHeaderBytes;
  WriteAll(fd, plan.schema.data(), plan.schema.size(), off, rep, name);
  off += plan.schema.size();
  uint64_t entities = 0, blocks = 0, chain = 0;
  for (uint32_t s = 0; s < plan.shards.size(); ++s) {
    for (uint16_t k = 0; k < plan.types.size(); ++k) {
      const Table& table = plan.shards[s]->table(k);
      for (uint32_t r0 = 0; r0 < table.size();) {
        const uint32_t n = RowsThatFit(plan, table, k, r0);
        if (n == 0) ChildFail(rep, "a row larger than the write buffer in ", name, off, 0);
        const size_t bytes = BuildBlock(plan, s, k, r0, r0 + n);
        WriteAll(fd, plan.buffer.get(), bytes, off, rep, name);
        uint64_t checksum;
        std::memcpy(&checksum, plan.buffer.get(), 8);
        chain = XXH3_64bits_withSeed(&checksum, 8, chain);
        off += bytes;
        ++blocks;
        entities += n;
        r0 += n;
      }
    }
  }
  uint8_t footer[kFooterBytes];
  std::memcpy(footer, kSnapshotFooterMagic, 8);
  Put(footer + 8, entities);
  Put(footer + 16, blocks);
  Put(footer + 24, chain);
  Put(footer + 32, off);
  Put(footer + 40, XXH3_64bits(footer, kFooterBytes - 8));
  WriteAll(fd, footer, kFooterBytes, off, rep, name);
  const uint64_t total = off + kFooterBytes;
  // The header last: it carries the LSN and totals.
  uint8_t header[kFileHeaderBytes];
  std::memcpy(header, plan.header.data(), kFileHeaderBytes);
  Put(header + kOffLsn, lsn);
  Put(header + kOffEntities, entities);
  Put(header + kOffBlocks, blocks);
  Put(header + kHeaderChecksumOffset, XXH3_64bits(header, kHeaderChecksumOffset));
  WriteAll(fd, header, kFileHeaderBytes, 0, rep, name);
  if (fsync(fd) != 0) ChildFail(rep, "fsync of ", name, total, errno);
  if (close(fd) != 0) ChildFail(rep, "close of ", name, total, errno);
  rep->entities = entities;
  rep->blocks = blocks;
  rep->bytes = total;
  rep->done = 1;
  _exit(0);
}

// ---- The parent ---------------------------------------------------------------

std::mutex busy_mu;
std::unordered_set<const Engine*> busy;  // engines with a snapshot in progress

uint64_t NowUs(bool wall) {
  const auto t = wall ? std::chrono::system_clock::now().time_since_epoch()
                      : std::chrono::steady_clock::now().time_since_epoch();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(t).count());
}

std::string Errno(int err) { return err ? std::string(": ") + std::strerror(err) : ""; }

// Bytes of the block buffer `schema` needs: kSnapshotBufferBytes, or more
// when one row of a kind with long strings would not fit.
size_t BufferBytesFor(const Schema& schema) {
  size_t largest_row = 0;
  for (const KindDef& def : schema.kinds()) {
    size_t row =
        32 + kBlockHeaderBytes + Pad8(def.columns.size()) + 8 * (4 + 2 * def.columns.size());
    for (const ColumnDef& c : def.columns) {
      row += FixedBytes(c.type) + (c.type == ColumnType::kString ? c.max_length : 0);
    }
    largest_row = std::max(largest_row, row);
  }
  return std::max(kSnapshotBufferBytes, largest_row);
}

// Zero-filled, so the pages exist before the fork.
void Reserve(Plan* plan, size_t bytes) {
  if (plan->buffer_bytes >= bytes) return;
  plan->buffer = std::make_unique<uint8_t[]>(bytes);
  plan->buffer_bytes = bytes;
}

// Runs after the cut's ticket is taken, while later writes wait for the
// barrier: only cheap work here (the buffer was reserved before, from the
// schema of that moment; a schema change in between may need a larger one).
Status Prepare(const Schema& schema, uint64_t ticket, const Engine& engine, Plan* plan) {
  plan->types.clear();
  plan->schema.clear();
  for (const KindDef& def : schema.kinds()) {
    const std::vector<uint8_t> fb = EncodeCreateKind(def);
    const size_t at = plan->schema.size();
    plan->schema.resize(at + Pad8(4 + fb.size()), 0);
    Put(plan->schema.data() + at, static_cast<uint32_t>(fb.size()));
    std::memcpy(plan->schema.data() + at + 4, fb.data(), fb.size());
    std::vector<ColumnType> types;
    for (const ColumnDef& c : def.columns) types.push_back(c.type);
    plan->types.push_back(std::move(types));
  }
  Reserve(plan, BufferBytesFor(schema));
  plan->header.assign(kFileHeaderBytes, 0);
  uint8_t* h = plan->header.data();
  std::memcpy(h, kSnapshotMagic, 8);
  Put<uint32_t>(h + kOffVersion, kSnapshotVersion);
  Put<uint32_t>(h + kOffHeaderBytes, kFileHeaderBytes);
  Put<uint64_t>(h + kOffTicket, ticket);
  const Rect& w = engine.options().world;
  Put(h + kOffWorld, w.min_x);
  Put(h + kOffWorld + 8, w.min_y);
  Put(h + kOffWorld + 16, w.max_x);
  Put(h + kOffWorld + 24, w.max_y);
  Put<uint32_t>(h + kOffShards, engine.shard_count());
  Put<uint32_t>(h + kOffKinds, static_cast<uint32_t>(schema.kinds().size()));
  Put<uint64_t>(h + kOffSchemaBytes, plan->schema.size());
  Put<uint64_t>(h + kOffSchemaChecksum, XXH3_64bits(plan->schema.data(), plan->schema.size()));
  return Status::Ok();
}

class Cleanup {
 public:
  explicit Cleanup(Plan* p, int parent_sock) : p_(p), parent_sock_(parent_sock) {}
  ~Cleanup() {
    if (p_->dir_fd >= 0) close(p_->dir_fd);
    if (p_->sock >= 0) close(p_->sock);
    if (parent_sock_ >= 0) close(parent_sock_);
    if (p_->report) munmap(p_->report, sizeof(ChildReport));
  }
  int& parent_sock() { return parent_sock_; }

 private:
  Plan* p_;
  int parent_sock_;
};

Status WaitChild(pid_t pid, int* status) {
  for (;;) {
    if (waitpid(pid, status, 0) == pid) return Status::Ok();
    if (errno != EINTR)
      return Status::IOError("waitpid for the snapshot child failed" + Errno(errno));
  }
}

Result<SnapshotInfo> Take(Engine& engine, const std::string& dir, const SnapshotOptions& options) {
  const uint64_t start_us = NowUs(false);
  Plan plan;
  int socks[2] = {-1, -1};
  Cleanup cleanup(&plan, -1);
  plan.dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (plan.dir_fd < 0) {
    return Status::IOError("snapshot directory " + dir + " cannot be opened" + Errno(errno));
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) != 0) {
    return Status::IOError("socketpair for the snapshot child failed" + Errno(errno));
  }
  cleanup.parent_sock() = socks[0];
  plan.sock = socks[1];
  void* page =
      mmap(nullptr, sizeof(ChildReport), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED)
    return Status::IOError("mmap of the child's report page failed" + Errno(errno));
  plan.report = static_cast<ChildReport*>(page);
  std::memset(plan.report, 0, sizeof(ChildReport));

  Reserve(&plan, BufferBytesFor(*engine.schema()));
  uint64_t timestamp_us = 0, fork_us = 0;
  pid_t pid = -1;
  Engine::CheckpointHooks hooks;
  hooks.prepare = [&](const Schema& schema, uint64_t ticket) {
    return Prepare(schema, ticket, engine, &plan);
  };
  hooks.at_cut = [&](std::span<const Shard* const> shards) -> Status {
    plan.shards.assign(shards.begin(), shards.end());
    timestamp_us = NowUs(true);
    Put(plan.header.data() + kOffTimestamp, timestamp_us);
    const uint64_t fork_start = NowUs(false);
    const pid_t parent = getpid();
    pid = fork();
    if (pid == 0) {
      // The child must not outlive its parent (it holds the parent's files),
      // and must see EOF on the socket when the parent dies before sending
      // the LSN, so it closes the parent's end.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(4);
      close(cleanup.parent_sock());
      ChildMain(plan);  // never returns
    }
    fork_us = NowUs(false) - fork_start;
    if (pid < 0) return Status::IOError("fork for the snapshot failed" + Errno(errno));
    return Status::Ok();
  };
  Result<Engine::CheckpointResult> cut = engine.Checkpoint(hooks);
  close(plan.sock);
  plan.sock = -1;
  if (!cut.ok()) {
    if (pid > 0) {
      close(cleanup.parent_sock());  // the child reads EOF and exits without a file
      cleanup.parent_sock() = -1;
      int st;
      (void)WaitChild(pid, &st);
    }
    return cut.status();
  }
  const uint64_t lsn = cut->has_lsn ? cut->lsn : options.lsn_without_log;
  const std::string name = SnapshotFileName(lsn);
  const std::string tmp = name + ".tmp";
  const std::string path = dir + "/" + name;
  auto fail = [&](Status s) -> Status {
    unlinkat(plan.dir_fd, tmp.c_str(), 0);
    return s;
  };
  const ssize_t sent = send(cleanup.parent_sock(), &lsn, sizeof lsn, MSG_NOSIGNAL);
  const int send_err = errno;
  int status = 0;
  WORLDDB_RETURN_IF_ERROR(WaitChild(pid, &status));
  const ChildReport& rep = *plan.report;
  if (sent != static_cast<ssize_t>(sizeof lsn)) {
    return fail(Status::IOError("sending the LSN to the snapshot child failed" + Errno(send_err)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || rep.done != 1) {
    std::string why = rep.what[0] ? std::string(rep.what) : std::string("the child died");
    if (WIFSIGNALED(status)) why += " (killed by signal " + std::to_string(WTERMSIG(status)) + ")";
    return fail(Status::IOError("snapshot " + dir + "/" + tmp + " not written: " + why +
                                " at offset " + std::to_string(rep.offset) + Errno(rep.error)));
  }
  if (CommitLog* log = engine.commit_log()) {
    Status st = log->WaitDurable(lsn);
    if (!st.ok()) {
      return fail(Status::IOError("snapshot at LSN " + std::to_string(lsn) +
                                  " abandoned: the log is not durable up to it: " + st.ToString()));
    }
  }
  if (renameat(plan.dir_fd, tmp.c_str(), plan.dir_fd, name.c_str()) != 0) {
    return fail(
        Status::IOError("renaming " + dir + "/" + tmp + " to " + name + " failed" + Errno(errno)));
  }
  if (fsync(plan.dir_fd) != 0) {
    return Status::IOError("fsync of directory " + dir + " after writing " + name + " failed" +
                           Errno(errno));
  }
  SnapshotInfo info;
  info.path = path;
  info.lsn = lsn;
  info.ticket = cut->ticket;
  info.timestamp_us = timestamp_us;
  info.entities = rep.entities;
  info.kinds = plan.types.size();
  info.bytes = rep.bytes;
  info.shards_at_write = engine.shard_count();
  info.pause_us = cut->pause_us;
  info.fork_us = fork_us;
  info.duration_us = NowUs(false) - start_us;
  return info;
}

}  // namespace

Result<SnapshotInfo> TakeSnapshot(Engine& engine, const std::string& dir,
                                  const SnapshotOptions& options) {
  {
    std::lock_guard<std::mutex> lock(busy_mu);
    if (!busy.insert(&engine).second) {
      return Status::Unavailable(
          "a snapshot of this engine is already being taken; try again when it finishes");
    }
  }
  Result<SnapshotInfo> r = Take(engine, dir, options);
  std::lock_guard<std::mutex> lock(busy_mu);
  busy.erase(&engine);
  return r;
}

}  // namespace worlddb::wal
