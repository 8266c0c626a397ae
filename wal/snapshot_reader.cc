#include "wal/snapshot_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "engine/batch_generated.h"
#include "engine/schema_codec.h"
#include "engine/utf8.h"
#include "wal/snapshot_format.h"

namespace worlddb::wal {
namespace {

constexpr const char* kAdvice =
    "; the file is damaged: use an older snapshot, or start without snapshots from the full log";

template <class T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016" PRIx64, v);
  return buf;
}

std::string Num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// One block as verified: where its columns are, for the apply pass.
struct BlockRef {
  uint16_t kind;
  uint32_t rows;
  const uint8_t* ids;
  const uint8_t* x;
  const uint8_t* y;
  const uint8_t* z;
  std::vector<const uint8_t*> columns;       // per column: its values (strings: lengths)
  std::vector<const uint8_t*> string_bytes;  // per column: strings' bytes (else null)
};

struct Parsed {
  SnapshotInfo info;
  Rect world;
  std::vector<std::vector<uint8_t>> kind_records;  // SchemaChange FlatBuffers
  std::vector<KindDef> kinds;
  std::vector<BlockRef> blocks;
  uint64_t blocks_in_footer = 0;
  uint64_t blocks_begin = 0;
  uint64_t footer_offset = 0;
};

class Checker {
 public:
  explicit Checker(const std::string& path) : path_(path) {}
  Status Bad(uint64_t offset, const std::string& what) const {
    return Status::Corruption("snapshot " + path_ + ": at byte offset " + std::to_string(offset) +
                              ": " + what + kAdvice);
  }

 private:
  const std::string& path_;
};

// Reads [offset, offset + n) of fd into out.
Status ReadAt(int fd, const std::string& path, uint64_t offset, size_t n, uint8_t* out) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      return Status::IOError("reading snapshot " + path + " at offset " +
                             std::to_string(offset + got) + " failed: " + std::strerror(errno));
    }
    if (r == 0) {
      return Status::Corruption("snapshot " + path + ": at byte offset " +
                                std::to_string(offset + got) + ": unexpected end of file" +
                                kAdvice);
    }
    got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status CheckHeader(const Checker& c, const uint8_t* h, uint64_t file_size, Parsed* p) {
  if (std::memcmp(h, kSnapshotMagic, 8) != 0) {
    return c.Bad(0, "bad magic (not a WorldDB snapshot file)");
  }
  const uint32_t version = Get<uint32_t>(h + kOffVersion);
  if (version != kSnapshotVersion) {
    return c.Bad(kOffVersion, "format version " + std::to_string(version) +
                                  " is not supported (this build reads version " +
                                  std::to_string(kSnapshotVersion) + ")");
  }
  const uint64_t stored = Get<uint64_t>(h + kHeaderChecksumOffset);
  const uint64_t computed = XXH3_64bits(h, kHeaderChecksumOffset);
  if (stored != computed) {
    return c.Bad(kHeaderChecksumOffset, "header checksum mismatch (stored " + Hex(stored) +
                                            ", computed " + Hex(computed) + ")");
  }
  if (Get<uint32_t>(h + kOffHeaderBytes) != kFileHeaderBytes) {
    return c.Bad(kOffHeaderBytes, "header size " +
                                      std::to_string(Get<uint32_t>(h + kOffHeaderBytes)) +
                                      " is not " + std::to_string(kFileHeaderBytes));
  }
  SnapshotInfo& i = p->info;
  i.lsn = Get<uint64_t>(h + kOffLsn);
  i.ticket = Get<uint64_t>(h + kOffTicket);
  i.timestamp_us = Get<uint64_t>(h + kOffTimestamp);
  p->world = Rect{Get<double>(h + kOffWorld), Get<double>(h + kOffWorld + 8),
                  Get<double>(h + kOffWorld + 16), Get<double>(h + kOffWorld + 24)};
  i.shards_at_write = Get<uint32_t>(h + kOffShards);
  i.kinds = Get<uint32_t>(h + kOffKinds);
  i.entities = Get<uint64_t>(h + kOffEntities);
  p->blocks_in_footer = Get<uint64_t>(h + kOffBlocks);
  i.bytes = file_size;
  const uint64_t schema_bytes = Get<uint64_t>(h + kOffSchemaBytes);
  if (i.kinds > kMaxKinds) {
    return c.Bad(kOffKinds, std::to_string(i.kinds) + " kinds exceed the limit of " +
                                std::to_string(kMaxKinds));
  }
  if (schema_bytes % 8 != 0 || schema_bytes > file_size - kFileHeaderBytes - kFooterBytes) {
    return c.Bad(kOffSchemaBytes, "schema section of " + std::to_string(schema_bytes) +
                                      " bytes does not fit a file of " + std::to_string(file_size) +
                                      " bytes (truncated?)");
  }
  p->blocks_begin = kFileHeaderBytes + schema_bytes;
  p->footer_offset = file_size - kFooterBytes;
  return Status::Ok();
}

Status CheckSchema(const Checker& c, const uint8_t* h, const uint8_t* s, Parsed* p) {
  const uint64_t n = Get<uint64_t>(h + kOffSchemaBytes);
  const uint64_t stored = Get<uint64_t>(h + kOffSchemaChecksum);
  const uint64_t computed = XXH3_64bits(s, n);
  if (stored != computed) {
    return c.Bad(kFileHeaderBytes, "schema section checksum mismatch (stored " + Hex(stored) +
                                       ", computed " + Hex(computed) + ")");
  }
  std::shared_ptr<const Schema> schema = std::make_shared<Schema>();
  uint64_t off = 0;
  for (uint64_t k = 0; k < p->info.kinds; ++k) {
    const uint64_t at = kFileHeaderBytes + off;
    if (n - off < 4) return c.Bad(at, "schema section ends before kind " + std::to_string(k));
    const uint32_t len = Get<uint32_t>(s + off);
    if (len > n - off - 4) {
      return c.Bad(at, "kind " + std::to_string(k) + ": record of " + std::to_string(len) +
                           " bytes runs past the schema section");
    }
    // Copied: FlatBuffers wants its buffer aligned, and the loader replays it.
    std::vector<uint8_t> rec(s + off + 4, s + off + 4 + len);
    auto decoded = DecodeSchemaChange(rec.data(), rec.size());
    if (!decoded.ok()) {
      return c.Bad(at, "kind " + std::to_string(k) + ": " + decoded.status().message());
    }
    if (!decoded->create) return c.Bad(at, "kind " + std::to_string(k) + " is not a CreateKind");
    SchemaChange change;
    auto next = schema->WithKind(decoded->kind, &change);
    if (!next.ok()) {
      return c.Bad(at, "kind " + std::to_string(k) + ": " + next.status().message());
    }
    schema = next.value();
    p->kinds.push_back(schema->kind(static_cast<uint16_t>(k)));
    p->kind_records.push_back(std::move(rec));
    off += Pad8(4 + size_t{len});
  }
  if (off != n) {
    return c.Bad(kFileHeaderBytes + off,
                 std::to_string(n - off) + " bytes left over after the last kind in the schema");
  }
  return Status::Ok();
}

Status CheckFooter(const Checker& c, const uint8_t* f, Parsed* p) {
  const uint64_t at = p->footer_offset;
  if (std::memcmp(f, kSnapshotFooterMagic, 8) != 0) {
    return c.Bad(at, "bad footer magic (the file is truncated or was not finished)");
  }
  const uint64_t stored = Get<uint64_t>(f + 40);
  const uint64_t computed = XXH3_64bits(f, 40);
  if (stored != computed) {
    return c.Bad(at + 40, "footer checksum mismatch (stored " + Hex(stored) + ", computed " +
                              Hex(computed) + ")");
  }
  if (Get<uint64_t>(f + 32) != at) {
    return c.Bad(at + 32, "footer says it starts at " + std::to_string(Get<uint64_t>(f + 32)) +
                              " (truncated or extended file?)");
  }
  if (Get<uint64_t>(f + 8) != p->info.entities || Get<uint64_t>(f + 16) != p->blocks_in_footer) {
    return c.Bad(at + 8, "footer totals (" + std::to_string(Get<uint64_t>(f + 8)) + " entities, " +
                             std::to_string(Get<uint64_t>(f + 16)) +
                             " blocks) differ from the header's (" +
                             std::to_string(p->info.entities) + ", " +
                             std::to_string(p->blocks_in_footer) + ")");
  }
  return Status::Ok();
}

// Verifies every block in data[blocks_begin, footer_offset) and records where
// its columns are. `world`: the box every position must lie in.
Status CheckBlocks(const Checker& c, const uint8_t* data, const Rect& world, Parsed* p) {
  uint64_t off = p->blocks_begin;
  uint64_t entities = 0, chain = 0;
  std::vector<uint64_t> ids;
  ids.reserve(std::min<uint64_t>(p->info.entities, (p->footer_offset - off) / 32));
  while (off < p->footer_offset) {
    const uint64_t left = p->footer_offset - off;
    const std::string bname = "block " + std::to_string(p->blocks.size());
    if (left < kBlockHeaderBytes) return c.Bad(off, bname + ": header runs into the footer");
    const uint8_t* b = data + off;
    if (Get<uint32_t>(b + 8) != kSnapshotBlockMagic)
      return c.Bad(off + 8, bname + ": bad block magic");
    const uint64_t payload = Get<uint64_t>(b + 24);
    const uint16_t kind = Get<uint16_t>(b + 12);
    const uint16_t ncols = Get<uint16_t>(b + 14);
    const uint32_t rows = Get<uint32_t>(b + 16);
    const uint64_t types_bytes = Pad8(ncols);
    if (payload > left - kBlockHeaderBytes || types_bytes > left - kBlockHeaderBytes - payload) {
      return c.Bad(off + 24, bname + ": payload of " + std::to_string(payload) +
                                 " bytes runs past the end of the blocks (truncated?)");
    }
    const uint64_t block_bytes = kBlockHeaderBytes + types_bytes + payload;
    const uint64_t stored = Get<uint64_t>(b);
    const uint64_t computed = XXH3_64bits(b + 8, block_bytes - 8);
    if (stored != computed) {
      return c.Bad(off, bname + ": checksum mismatch (stored " + Hex(stored) + ", computed " +
                            Hex(computed) + ")");
    }
    chain = XXH3_64bits_withSeed(&stored, 8, chain);
    // The checksum matched: what follows are checks of a well-formed writer's
    // invariants (a file written by a buggy or hostile program).
    if (kind >= p->kinds.size()) {
      return c.Bad(off + 12, bname + ": kind id " + std::to_string(kind) + " but the schema has " +
                                 std::to_string(p->kinds.size()) + " kinds");
    }
    const KindDef& def = p->kinds[kind];
    const std::string where = bname + " (kind '" + def.name + "')";
    if (ncols != def.columns.size()) {
      return c.Bad(off + 14, where + ": " + std::to_string(ncols) + " columns, the kind has " +
                                 std::to_string(def.columns.size()));
    }
    if (rows == 0 || rows > kSnapshotBlockRows) {
      return c.Bad(off + 16, where + ": row count " + std::to_string(rows) + " is not in 1.." +
                                 std::to_string(kSnapshotBlockRows));
    }
    for (uint16_t k = 0; k < ncols; ++k) {
      if (b[kBlockHeaderBytes + k] != static_cast<uint8_t>(def.columns[k].type)) {
        return c.Bad(off + kBlockHeaderBytes + k,
                     where + ": column '" + def.columns[k].name + "' has type tag " +
                         std::to_string(b[kBlockHeaderBytes + k]) + ", the schema says " +
                         ColumnTypeName(def.columns[k].type));
      }
    }
    const uint8_t* pl = b + kBlockHeaderBytes + types_bytes;
    const uint64_t pl_off = off + kBlockHeaderBytes + types_bytes;
    BlockRef ref;
    ref.kind = kind;
    ref.rows = rows;
    uint64_t q = 0;  // position within the payload
    // Claims the next n bytes (then padding to 8) of the payload. q may pass
    // `payload` only through the last part's padding; the final size check
    // refuses that, and no later claim may start beyond the payload.
    auto take = [&](uint64_t n, const char* what, const uint8_t** at) -> Status {
      if (q > payload || n > payload - q) {
        return c.Bad(pl_off + std::min(q, payload),
                     where + ": " + what + " run past the block's payload");
      }
      *at = pl + q;
      q += Pad8(n);
      return Status::Ok();
    };
    WORLDDB_RETURN_IF_ERROR(take(8ull * rows, "ids", &ref.ids));
    WORLDDB_RETURN_IF_ERROR(take(8ull * rows, "x values", &ref.x));
    WORLDDB_RETURN_IF_ERROR(take(8ull * rows, "y values", &ref.y));
    WORLDDB_RETURN_IF_ERROR(take(8ull * rows, "z values", &ref.z));
    for (uint32_t r = 0; r < rows; ++r) {
      const double x = Get<double>(ref.x + 8 * r), y = Get<double>(ref.y + 8 * r),
                   z = Get<double>(ref.z + 8 * r);
      const uint64_t id = Get<uint64_t>(ref.ids + 8 * r);
      if (!std::isfinite(x) || !std::isfinite(y) || !std::isfinite(z) || !world.Contains(x, y)) {
        return c.Bad(ref.x - data + 8 * r, where + ": entity " + std::to_string(id) +
                                               " has position (" + Num(x) + ", " + Num(y) + ", " +
                                               Num(z) + "), not finite or outside the world");
      }
      ids.push_back(id);
    }
    for (uint16_t k = 0; k < ncols; ++k) {
      const ColumnDef& cd = def.columns[k];
      const uint8_t* col = nullptr;
      const uint8_t* strings = nullptr;
      const std::string cname = where + " column '" + cd.name + "'";
      switch (cd.type) {
        case ColumnType::kBool:
          WORLDDB_RETURN_IF_ERROR(take(rows, "bool values", &col));
          for (uint32_t r = 0; r < rows; ++r) {
            if (col[r] > 1)
              return c.Bad(col - data + r, cname + ": bool byte " + std::to_string(col[r]));
          }
          break;
        case ColumnType::kI32:
          WORLDDB_RETURN_IF_ERROR(take(4ull * rows, "i32 values", &col));
          break;
        case ColumnType::kI64:
          WORLDDB_RETURN_IF_ERROR(take(8ull * rows, "i64 values", &col));
          break;
        case ColumnType::kF32:
          WORLDDB_RETURN_IF_ERROR(take(4ull * rows, "f32 values", &col));
          for (uint32_t r = 0; r < rows; ++r) {
            if (!std::isfinite(Get<float>(col + 4 * r))) {
              return c.Bad(col - data + 4 * r, cname + ": f32 value is not finite");
            }
          }
          break;
        case ColumnType::kF64:
          WORLDDB_RETURN_IF_ERROR(take(8ull * rows, "f64 values", &col));
          for (uint32_t r = 0; r < rows; ++r) {
            if (!std::isfinite(Get<double>(col + 8 * r))) {
              return c.Bad(col - data + 8 * r, cname + ": f64 value is not finite");
            }
          }
          break;
        case ColumnType::kString: {
          WORLDDB_RETURN_IF_ERROR(take(4ull * rows, "string lengths", &col));
          uint64_t total = 0;
          for (uint32_t r = 0; r < rows; ++r) {
            const uint32_t len = Get<uint32_t>(col + 4 * r);
            if (len > cd.max_length) {
              return c.Bad(col - data + 4 * r, cname + ": string of " + std::to_string(len) +
                                                   " bytes exceeds max_length " +
                                                   std::to_string(cd.max_length));
            }
            total += len;
          }
          WORLDDB_RETURN_IF_ERROR(take(total, "string bytes", &strings));
          uint64_t s = 0;
          for (uint32_t r = 0; r < rows; ++r) {
            const uint32_t len = Get<uint32_t>(col + 4 * r);
            if (len && !IsValidUtf8(reinterpret_cast<const char*>(strings + s), len)) {
              return c.Bad(strings - data + s, cname + ": string is not valid UTF-8");
            }
            s += len;
          }
          break;
        }
      }
      ref.columns.push_back(col);
      ref.string_bytes.push_back(strings);
    }
    if (q != payload) {
      return c.Bad(off + 24, where + ": payload is " + std::to_string(payload) +
                                 " bytes, its columns take " + std::to_string(q));
    }
    entities += rows;
    p->blocks.push_back(std::move(ref));
    off += block_bytes;
  }
  const uint64_t f = p->footer_offset;
  if (p->blocks.size() != p->blocks_in_footer || entities != p->info.entities) {
    return c.Bad(f + 8, "the footer counts " + std::to_string(p->info.entities) + " entities in " +
                            std::to_string(p->blocks_in_footer) + " blocks, the file holds " +
                            std::to_string(entities) + " in " + std::to_string(p->blocks.size()));
  }
  if (Get<uint64_t>(data + f + 24) != chain) {
    return c.Bad(f + 24,
                 "the chain of block checksums differs from the footer's (blocks missing, "
                 "repeated or reordered)");
  }
  std::sort(ids.begin(), ids.end());
  const auto dup = std::adjacent_find(ids.begin(), ids.end());
  if (dup != ids.end()) {
    return c.Bad(p->blocks_begin, "entity " + std::to_string(*dup) + " appears twice");
  }
  return Status::Ok();
}

// Opens `path`, checks header, schema and footer; with `all`, reads the whole
// file into *whole and checks every block against `world` (the file's own
// world when null).
Status Parse(const std::string& path, bool all, const Rect* world, std::vector<uint64_t>* whole,
             Parsed* p) {
  const Checker c(path);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open snapshot " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return Status::IOError("cannot stat snapshot " + path + ": " + std::strerror(errno));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  p->info.path = path;
  if (size < kFileHeaderBytes + kFooterBytes) {
    return c.Bad(size, "the file is " + std::to_string(size) +
                           " bytes, shorter than a header and a footer (truncated?)");
  }
  if (size % 8 != 0) {
    return c.Bad(size, "the file size " + std::to_string(size) +
                           " is not a multiple of 8 (truncated or extended?)");
  }
  std::vector<uint64_t> local;
  std::vector<uint64_t>& buf = whole ? *whole : local;
  const uint8_t* h;
  const uint8_t* s;
  const uint8_t* f;
  if (all) {
    buf.resize(size / 8);
    uint8_t* d = reinterpret_cast<uint8_t*>(buf.data());
    WORLDDB_RETURN_IF_ERROR(ReadAt(fd, path, 0, size, d));
    WORLDDB_RETURN_IF_ERROR(CheckHeader(c, d, size, p));
    h = d;
    s = d + kFileHeaderBytes;
    f = d + p->footer_offset;
  } else {
    uint8_t header[kFileHeaderBytes];
    WORLDDB_RETURN_IF_ERROR(ReadAt(fd, path, 0, kFileHeaderBytes, header));
    WORLDDB_RETURN_IF_ERROR(CheckHeader(c, header, size, p));
    const uint64_t schema_bytes = Get<uint64_t>(header + kOffSchemaBytes);
    buf.resize((kFileHeaderBytes + schema_bytes + kFooterBytes) / 8);
    uint8_t* d = reinterpret_cast<uint8_t*>(buf.data());
    std::memcpy(d, header, kFileHeaderBytes);
    WORLDDB_RETURN_IF_ERROR(ReadAt(fd, path, kFileHeaderBytes, schema_bytes, d + kFileHeaderBytes));
    WORLDDB_RETURN_IF_ERROR(
        ReadAt(fd, path, p->footer_offset, kFooterBytes, d + kFileHeaderBytes + schema_bytes));
    h = d;
    s = d + kFileHeaderBytes;
    f = d + kFileHeaderBytes + schema_bytes;
  }
  WORLDDB_RETURN_IF_ERROR(CheckSchema(c, h, s, p));
  WORLDDB_RETURN_IF_ERROR(CheckFooter(c, f, p));
  if (all) {
    WORLDDB_RETURN_IF_ERROR(CheckBlocks(c, h, world ? *world : p->world, p));
  }
  return Status::Ok();
}

// Upserts every verified block into the engine, in WriteBatches of about
// kBatchEntities entities.
Status Apply(const Parsed& p, Engine* engine) {
  constexpr size_t kBatchEntities = 1 << 16;
  flatbuffers::FlatBufferBuilder fbb(size_t{16} << 20);
  std::vector<flatbuffers::Offset<fb::Upsert>> upserts;
  std::vector<flatbuffers::Offset<fb::Cell>> cells;
  auto flush = [&]() -> Status {
    if (upserts.empty()) return Status::Ok();
    auto vec = fbb.CreateVector(upserts);
    fb::WriteBatchBuilder wb(fbb);
    wb.add_upserts(vec);
    fbb.Finish(wb.Finish());
    auto r = engine->Replay(RecordType::kWriteBatch, fbb.GetBufferPointer(), fbb.GetSize());
    fbb.Clear();
    upserts.clear();
    return r.status();
  };
  for (const BlockRef& b : p.blocks) {
    const KindDef& def = p.kinds[b.kind];
    if (upserts.size() + b.rows > kBatchEntities) WORLDDB_RETURN_IF_ERROR(flush());
    const auto kind_name = fbb.CreateSharedString(def.name);
    std::vector<flatbuffers::Offset<flatbuffers::String>> col_names;
    for (const ColumnDef& cd : def.columns) col_names.push_back(fbb.CreateSharedString(cd.name));
    std::vector<uint64_t> str_pos(def.columns.size(), 0);
    for (uint32_t r = 0; r < b.rows; ++r) {
      cells.clear();
      for (size_t k = 0; k < def.columns.size(); ++k) {
        const uint8_t* col = b.columns[k];
        const auto type = static_cast<fb::ColumnType>(def.columns[k].type);
        int64_t i = 0;
        double f = 0;
        flatbuffers::Offset<flatbuffers::String> s;
        switch (def.columns[k].type) {
          case ColumnType::kBool:
            i = col[r];
            break;
          case ColumnType::kI32:
            i = Get<int32_t>(col + 4 * r);
            break;
          case ColumnType::kI64:
            i = Get<int64_t>(col + 8 * r);
            break;
          case ColumnType::kF32:
            f = Get<float>(col + 4 * r);
            break;
          case ColumnType::kF64:
            f = Get<double>(col + 8 * r);
            break;
          case ColumnType::kString: {
            const uint32_t len = Get<uint32_t>(col + 4 * r);
            s = fbb.CreateString(reinterpret_cast<const char*>(b.string_bytes[k] + str_pos[k]),
                                 len);
            str_pos[k] += len;
            break;
          }
        }
        cells.push_back(fb::CreateCell(fbb, col_names[k], type, i, f, s));
      }
      flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>> cell_vec;
      if (!cells.empty()) cell_vec = fbb.CreateVector(cells);
      upserts.push_back(fb::CreateUpsert(fbb, Get<uint64_t>(b.ids + 8 * r), kind_name,
                                         Get<double>(b.x + 8 * r), Get<double>(b.y + 8 * r),
                                         Get<double>(b.z + 8 * r), cell_vec));
    }
  }
  return flush();
}

}  // namespace

std::string SnapshotFileName(uint64_t lsn) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "snapshot-%020" PRIu64 ".wdb", lsn);
  return buf;
}

Result<SnapshotInfo> ReadSnapshotInfo(const std::string& path, bool verify_all_blocks) {
  Parsed p;
  std::vector<uint64_t> whole;
  WORLDDB_RETURN_IF_ERROR(Parse(path, verify_all_blocks, nullptr, &whole, &p));
  return p.info;
}

Status LoadSnapshot(const std::string& path, Engine* engine, SnapshotInfo* info) {
  if (!engine->schema()->kinds().empty() || engine->size() != 0) {
    return Status::InvalidArgument("loading snapshot " + path +
                                   ": the engine must be fresh (no kinds, no entities)");
  }
  Parsed p;
  std::vector<uint64_t> whole;
  WORLDDB_RETURN_IF_ERROR(Parse(path, /*all=*/true, &engine->options().world, &whole, &p));
  // Everything is verified: from here on a failure is not the file's fault.
  for (size_t k = 0; k < p.kind_records.size(); ++k) {
    auto r = engine->Replay(RecordType::kSchemaChange, p.kind_records[k].data(),
                            p.kind_records[k].size());
    if (!r.ok()) {
      return Status::Corruption("loading snapshot " + path + ": creating kind '" + p.kinds[k].name +
                                "' failed: " + r.status().message() +
                                "; the engine is partly loaded and must be discarded");
    }
  }
  Status st = Apply(p, engine);
  if (!st.ok()) {
    return Status::Corruption("loading snapshot " + path + ": " + st.message() +
                              "; the engine is partly loaded and must be discarded");
  }
  if (info) *info = p.info;
  return Status::Ok();
}

Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d)
    return Status::IOError("cannot list snapshot directory " + dir + ": " + std::strerror(errno));
  std::vector<SnapshotInfo> out;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    constexpr size_t kLen = 9 + kSnapshotNameDigits + 4;  // snapshot-<digits>.wdb
    if (name.size() != kLen || name.compare(0, 9, "snapshot-") != 0 ||
        name.compare(kLen - 4, 4, ".wdb") != 0) {
      continue;
    }
    const std::string digits = name.substr(9, kSnapshotNameDigits);
    if (!std::all_of(digits.begin(), digits.end(),
                     [](char ch) { return ch >= '0' && ch <= '9'; })) {
      continue;
    }
    errno = 0;
    const unsigned long long lsn = std::strtoull(digits.c_str(), nullptr, 10);
    if (errno == ERANGE) continue;
    SnapshotInfo info;
    info.path = dir + "/" + name;
    info.lsn = lsn;
    struct stat st;
    if (stat(info.path.c_str(), &st) == 0) info.bytes = static_cast<uint64_t>(st.st_size);
    out.push_back(std::move(info));
  }
  closedir(d);
  std::sort(out.begin(), out.end(),
            [](const SnapshotInfo& a, const SnapshotInfo& b) { return a.lsn > b.lsn; });
  return out;
}

}  // namespace worlddb::wal
