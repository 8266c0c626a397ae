#include "wal/log_reader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "wal/log_format.h"

namespace worlddb::wal {

namespace {

// A reusable 4 KiB-aligned buffer: a whole segment is read into it, so every
// record (8-byte aligned in the segment) has an 8-byte aligned payload.
class AlignedBuffer {
 public:
  uint8_t* Reserve(size_t n) {
    if (n > cap_) {
      const size_t cap = (std::max(n, cap_ * 2) + 4095) & ~size_t{4095};
      void* p = std::aligned_alloc(4096, cap);
      if (p == nullptr) return nullptr;
      buf_.reset(static_cast<uint8_t*>(p));
      cap_ = cap;
    }
    return buf_.get();
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> buf_;
  size_t cap_ = 0;
};

std::string DirList(const std::vector<std::string>& dirs) {
  std::string s;
  for (const auto& d : dirs) s += (s.empty() ? "" : ", ") + d;
  return s;
}

bool ValidType(uint8_t t) {
  return t == static_cast<uint8_t>(RecordType::kWriteBatch) ||
         t == static_cast<uint8_t>(RecordType::kSchemaChange);
}

// Whether the record header at `p` (with `avail` bytes from p to the end of
// the segment) is a well-formed record for LSN `expected`; if not, says why.
bool CheckRecord(const uint8_t* p, uint64_t avail, uint64_t expected, std::string* why) {
  const RecordHeader h = ParseRecordHeader(p);
  if (h.length > avail - kRecordHeaderBytes) {
    *why = "record length " + std::to_string(h.length) + " runs past the end of the segment (" +
           std::to_string(avail - kRecordHeaderBytes) + " bytes left)";
    return false;
  }
  if (RecordChecksum(p, p + kRecordHeaderBytes, h.length) != h.checksum) {
    *why = "record checksum mismatch";
    return false;
  }
  if (!ValidType(h.type) || p[13] != 0 || p[14] != 0 || p[15] != 0) {
    *why = "unknown record type " + std::to_string(h.type);
    return false;
  }
  if (h.lsn != expected) {
    *why = "record has LSN " + std::to_string(h.lsn) + " where LSN " + std::to_string(expected) +
           " was expected";
    return false;
  }
  return true;
}

// Whether any valid record with an LSN >= expected starts after `off`: if
// one does, the bad bytes at `off` are damage, not a torn final write.
bool ValidRecordAfter(const uint8_t* buf, uint64_t off, uint64_t size, uint64_t expected) {
  const uint64_t max_lsn = expected + size / kRecordHeaderBytes + 1;
  for (uint64_t p = off + kRecordAlign; p + kRecordHeaderBytes <= size; p += kRecordAlign) {
    const RecordHeader h = ParseRecordHeader(buf + p);
    if (!ValidType(h.type) || h.lsn < expected || h.lsn > max_lsn) continue;
    if (h.length > size - p - kRecordHeaderBytes) continue;
    if (RecordChecksum(buf + p, buf + p + kRecordHeaderBytes, h.length) == h.checksum) {
      return true;
    }
  }
  return false;
}

}  // namespace

Result<std::vector<SegmentFile>> ListSegments(const std::string& dir, FileSystem* fs) {
  if (fs == nullptr) fs = FileSystem::Default();
  auto names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  std::vector<SegmentFile> out;
  for (const auto& name : *names) {
    uint64_t lsn = 0;
    if (!ParseSegmentName(name, &lsn)) continue;
    SegmentFile s;
    s.path = JoinPath(dir, name);
    s.name = name;
    s.first_lsn = lsn;
    auto size = fs->FileSize(s.path);
    if (!size.ok()) return size.status();
    s.bytes = *size;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const SegmentFile& a, const SegmentFile& b) { return a.first_lsn < b.first_lsn; });
  return out;
}

namespace {

class Scanner {
 public:
  Scanner(const ScanOptions& o, const std::function<Status(const Record&)>& fn)
      : o_(o), fn_(fn), fs_(o.fs != nullptr ? o.fs : FileSystem::Default()) {}

  Result<ScanResult> Run() {
    if (o_.to_lsn < o_.from_lsn) {
      return Status::InvalidArgument("to_lsn " + std::to_string(o_.to_lsn) + " is below from_lsn " +
                                     std::to_string(o_.from_lsn));
    }
    WORLDDB_RETURN_IF_ERROR(CollectSegments());
    // from_lsn 0: wherever the log begins (offline tools on a pruned log).
    const uint64_t from = o_.from_lsn == 0 ? (segs_.empty() ? 1 : segs_[0].first_lsn) : o_.from_lsn;
    if (segs_.empty()) {
      if (from > 1) {
        return Status::NotFound("no log segment in " + DirList(o_.dirs) + "; records from LSN " +
                                std::to_string(from) +
                                " on are missing (restore an older snapshot and its log)");
      }
      return res_;
    }
    res_.log_first_lsn = segs_[0].first_lsn;
    if (segs_[0].first_lsn > from) {
      return Status::NotFound(
          "the log in " + DirList(o_.dirs) + " starts at LSN " +
          std::to_string(segs_[0].first_lsn) + " (" + segs_[0].path + "), but LSN " +
          std::to_string(from) + " was asked for: records " + std::to_string(from) + ".." +
          std::to_string(segs_[0].first_lsn - 1) +
          " were removed (add the archive directory, or restore an older snapshot)");
    }
    size_t start = 0;
    while (start + 1 < segs_.size() && segs_[start + 1].first_lsn <= from) ++start;
    expected_ = segs_[start].first_lsn;
    res_.last_lsn = expected_ - 1;
    for (size_t i = start; i < segs_.size() && !done_; ++i) {
      if (segs_[i].first_lsn != expected_) {
        const std::string msg = "LSNs " + std::to_string(expected_) + ".." +
                                std::to_string(segs_[i].first_lsn - 1) +
                                " are missing: the segment before ends at LSN " +
                                std::to_string(expected_ - 1) + " and this one starts at LSN " +
                                std::to_string(segs_[i].first_lsn) + " (a segment was deleted?)";
        WORLDDB_RETURN_IF_ERROR(Damage(segs_[i].path, 0, msg));
        break;
      }
      auto st = ScanSegment(i);
      if (!st.ok()) return st;
    }
    return res_;
  }

 private:
  Status CollectSegments() {
    for (const auto& dir : o_.dirs) {
      auto list = ListSegments(dir, fs_);
      if (!list.ok()) {
        if (list.status().code() == StatusCode::kNotFound) continue;
        return list.status();
      }
      for (auto& s : *list) segs_.push_back(std::move(s));
    }
    std::stable_sort(segs_.begin(), segs_.end(), [](const SegmentFile& a, const SegmentFile& b) {
      return a.first_lsn < b.first_lsn;
    });
    std::vector<SegmentFile> merged;
    for (auto& s : segs_) {
      if (!merged.empty() && merged.back().first_lsn == s.first_lsn) {
        auto same = SameBytes(merged.back(), s);
        if (!same.ok()) return same.status();
        if (!*same) {
          return Status::Corruption("two different segments start at LSN " +
                                    std::to_string(s.first_lsn) + ": " + merged.back().path +
                                    " and " + s.path +
                                    "; move the wrong one out of the way (compare them with "
                                    "worldctl wal dump)");
        }
        continue;
      }
      merged.push_back(std::move(s));
    }
    segs_ = std::move(merged);
    return Status::Ok();
  }

  Result<bool> SameBytes(const SegmentFile& a, const SegmentFile& b) {
    if (a.bytes != b.bytes) return false;
    std::vector<uint8_t> x(a.bytes), y(b.bytes);
    for (auto [seg, v] : {std::pair{&a, &x}, std::pair{&b, &y}}) {
      auto f = fs_->OpenReadable(seg->path);
      if (!f.ok()) return f.status();
      WORLDDB_RETURN_IF_ERROR((*f)->Read(0, v->size(), v->data()));
    }
    return x == y;
  }

  // The strict outcome of damage at (path, offset): an error, or with
  // salvage, the end of the scan.
  Status Damage(const std::string& path, uint64_t offset, const std::string& what) {
    const uint64_t kept = expected_ - 1;
    std::string msg = path + ": offset " + std::to_string(offset) + ": " + what + ". ";
    if (kept >= std::max<uint64_t>(1, res_.log_first_lsn) && kept >= 1) {
      msg += "The log is intact through LSN " + std::to_string(kept) +
             ": run with --salvage to keep records up to LSN " + std::to_string(kept) +
             " and drop the rest, or restore an older snapshot.";
    } else {
      msg += "No record before the damage is intact: restore an older snapshot.";
    }
    if (!o_.salvage) return Status::Corruption(msg);
    res_.salvage = SalvageReport{msg, kept, path, offset};
    done_ = true;
    return Status::Ok();
  }

  Status ScanSegment(size_t i) {
    const SegmentFile& seg = segs_[i];
    const bool last = i + 1 == segs_.size();
    auto file = fs_->OpenReadable(seg.path);
    if (!file.ok()) return file.status();
    const uint64_t size = (*file)->Size();
    uint8_t* buf = buf_.Reserve(std::max<uint64_t>(size, 64));
    if (buf == nullptr) {
      return Status::ResourceExhausted(seg.path + ": cannot allocate " + std::to_string(size) +
                                       " bytes to read the segment");
    }
    WORLDDB_RETURN_IF_ERROR((*file)->Read(0, size, buf));
    ++res_.segments;

    if (size < kSegmentHeaderBytes || IsZero(buf, kSegmentHeaderBytes)) {
      // A crash while the writer created the last segment leaves it short or
      // zero; it held no record yet.
      if (last && (size < kSegmentHeaderBytes || IsZero(buf, size))) {
        return TornTail(seg, 0, size, "segment header was never written");
      }
      return Damage(seg.path, 0,
                    size < kSegmentHeaderBytes
                        ? "segment is " + std::to_string(size) + " bytes, shorter than its header"
                        : "segment header is zero but the segment is not empty");
    }
    SegmentHeader sh;
    std::string why;
    if (!DecodeSegmentHeader(buf, &sh, &why))
      return Damage(seg.path, 0, "bad segment header: " + why);
    if (sh.first_lsn != seg.first_lsn) {
      return Damage(seg.path, 16,
                    "segment header says first LSN " + std::to_string(sh.first_lsn) +
                        " but the file name says " + std::to_string(seg.first_lsn));
    }

    uint64_t off = kSegmentHeaderBytes;
    while (off < size) {
      const uint64_t avail = size - off;
      const uint8_t* p = buf + off;
      if (avail < kRecordHeaderBytes || IsZero(p, kRecordHeaderBytes)) {
        if (IsZero(p, avail)) return Status::Ok();  // end of the written part
        why = avail < kRecordHeaderBytes ? "incomplete record header" : "zero record header";
      } else if (CheckRecord(p, avail, expected_, &why)) {
        const RecordHeader h = ParseRecordHeader(p);
        if (h.lsn >= o_.from_lsn) {
          Record r;
          r.lsn = h.lsn;
          r.type = static_cast<RecordType>(h.type);
          r.timestamp_us = h.timestamp_us;
          r.payload = std::span<const uint8_t>(p + kRecordHeaderBytes, h.length);
          r.segment = seg.path;
          r.offset = off;
          WORLDDB_RETURN_IF_ERROR(fn_(r));
          if (res_.records == 0) res_.first_lsn = h.lsn;
          ++res_.records;
          res_.bytes += h.length;
        }
        res_.last_lsn = h.lsn;
        ++expected_;
        off += FramedSize(h.length);
        if (h.lsn >= o_.to_lsn) {
          done_ = true;
          return Status::Ok();
        }
        continue;
      }
      // Bad bytes at `off`.
      const bool more = ValidRecordAfter(buf, off, size, expected_);
      if (!more && last) return TornTail(seg, off, size - off, why);
      if (!more && segs_[i + 1].first_lsn == expected_) {
        res_.notes.push_back(seg.path + ": offset " + std::to_string(off) + ": " + why +
                             "; a torn tail left by an earlier crash (the next segment continues "
                             "at LSN " +
                             std::to_string(expected_) + ", nothing is missing)");
        return Status::Ok();
      }
      return Damage(seg.path, off,
                    why + (more ? " (valid records follow, so this is not a torn final write)"
                                : " in a segment that is not the last"));
    }
    return Status::Ok();
  }

  Status TornTail(const SegmentFile& seg, uint64_t off, uint64_t dropped, const std::string& why) {
    wal::TornTail t{seg.path, off, dropped, why, false};
    if (o_.repair_tail) {
      if (off == 0) {
        WORLDDB_RETURN_IF_ERROR(fs_->Remove(seg.path));
        const size_t slash = seg.path.rfind('/');
        WORLDDB_RETURN_IF_ERROR(
            fs_->SyncDir(slash == std::string::npos ? "." : seg.path.substr(0, slash)));
      } else {
        WORLDDB_RETURN_IF_ERROR(fs_->Truncate(seg.path, off));
      }
      t.repaired = true;
    }
    res_.torn_tail = std::move(t);
    done_ = true;
    return Status::Ok();
  }

  const ScanOptions& o_;
  const std::function<Status(const Record&)>& fn_;
  FileSystem* fs_;
  std::vector<SegmentFile> segs_;
  AlignedBuffer buf_;
  ScanResult res_;
  uint64_t expected_ = 1;
  bool done_ = false;
};

}  // namespace

Result<ScanResult> ScanLog(const ScanOptions& o, const std::function<Status(const Record&)>& fn) {
  return Scanner(o, fn).Run();
}

}  // namespace worlddb::wal
