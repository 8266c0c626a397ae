// worldctl's offline subcommands: they work on a data directory with no
// server running (docs/operations.md "Offline tools").
//
//   worldctl wal verify   --data-dir DIR
//   worldctl wal dump     --data-dir DIR [--from-lsn A] [--to-lsn B] [--entity ID]
//   worldctl snapshot info --data-dir DIR | --file PATH
//   worldctl restore      --data-dir DIR (--to-lsn N | --to-time T) --out NEWDIR
//
// Exit codes: 0 OK; 1 damage found or the operation failed; 2 usage;
// 4 (wal verify) the log is sound but ends in a torn tail that recovery will cut.
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "engine/batch_generated.h"
#include "engine/schema_codec.h"
#include "tools/worldctl.h"
#include "wal/world.h"

namespace worlddb {
namespace {

namespace fs = std::filesystem;

// Exit codes are tools/worldctl.h's; 1 (kExitServerError) doubles as
// "damage found / operation failed" offline.
constexpr int kExitOk = worldctl::kExitOk, kExitFailed = worldctl::kExitServerError,
              kExitTornTail = worldctl::kExitTornTail;
using worldctl::JsonString;

std::string JsonDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// "2026-11-23T04:05:06.123456Z"
std::string FormatTime(uint64_t us) {
  const time_t secs = static_cast<time_t>(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06" PRIu64 "Z", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000);
  return buf;
}

// Accepts microseconds since the Unix epoch, or UTC as YYYY-MM-DDTHH:MM:SS[.ffffff][Z].
std::optional<uint64_t> ParseTime(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    return std::strtoull(s.c_str(), nullptr, 10);
  }
  struct tm tm = {};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return std::nullopt;
  uint64_t frac = 0;
  if (*end == '.') {
    ++end;
    int digits = 0;
    while (*end >= '0' && *end <= '9') {
      if (digits < 6) frac = frac * 10 + static_cast<uint64_t>(*end - '0'), ++digits;
      ++end;
    }
    while (digits < 6) frac *= 10, ++digits;
  }
  if (*end == 'Z') ++end;
  if (*end != '\0') return std::nullopt;
  const time_t secs = timegm(&tm);
  if (secs < 0) return std::nullopt;
  return static_cast<uint64_t>(secs) * 1000000 + frac;
}

std::string CellsJson(const flatbuffers::Vector<flatbuffers::Offset<fb::Cell>>* cells) {
  std::string out = "{";
  if (cells) {
    for (uint32_t i = 0; i < cells->size(); ++i) {
      const fb::Cell* c = cells->Get(i);
      if (i) out += ",";
      out += JsonString(c->column()->string_view()) + ":";
      switch (c->type()) {
        case fb::ColumnType_Bool:
          out += c->i() ? "true" : "false";
          break;
        case fb::ColumnType_I32:
        case fb::ColumnType_I64:
          out += std::to_string(c->i());
          break;
        case fb::ColumnType_F32:
        case fb::ColumnType_F64:
          out += JsonDouble(c->f());
          break;
        case fb::ColumnType_String:
          out += c->s() ? JsonString(c->s()->string_view()) : "\"\"";
          break;
        default:
          out += "null";
      }
    }
  }
  return out + "}";
}

// The operations of a batch as JSON members; with `entity`, only that
// entity's. Returns false when the batch does not mention `entity`.
bool BatchJson(const fb::WriteBatch& b, std::optional<uint64_t> entity, std::string* out) {
  auto want = [&](uint64_t id) { return !entity || *entity == id; };
  bool any = false;
  std::string s;
  auto section = [&](const char* name, const std::string& items) {
    if (!items.empty()) s += std::string(",\"") + name + "\":[" + items + "]";
  };
  std::string items;
  if (b.upserts()) {
    for (const fb::Upsert* u : *b.upserts()) {
      if (!want(u->id())) continue;
      if (!items.empty()) items += ",";
      items += "{\"id\":" + std::to_string(u->id()) +
               ",\"kind\":" + JsonString(u->kind()->string_view()) +
               ",\"x\":" + JsonDouble(u->x()) + ",\"y\":" + JsonDouble(u->y()) +
               ",\"z\":" + JsonDouble(u->z()) + ",\"cells\":" + CellsJson(u->cells()) + "}";
    }
  }
  any |= !items.empty();
  section("upserts", items);
  items.clear();
  if (b.moves()) {
    for (const fb::Move* m : *b.moves()) {
      if (!want(m->id())) continue;
      if (!items.empty()) items += ",";
      items += "{\"id\":" + std::to_string(m->id()) + ",\"x\":" + JsonDouble(m->x()) +
               ",\"y\":" + JsonDouble(m->y()) + ",\"z\":" + JsonDouble(m->z()) + "}";
    }
  }
  any |= !items.empty();
  section("moves", items);
  items.clear();
  if (b.sets()) {
    for (const fb::SetColumns* c : *b.sets()) {
      if (!want(c->id())) continue;
      if (!items.empty()) items += ",";
      items += "{\"id\":" + std::to_string(c->id()) + ",\"cells\":" + CellsJson(c->cells()) + "}";
    }
  }
  any |= !items.empty();
  section("sets", items);
  items.clear();
  if (b.deletes()) {
    for (uint64_t id : *b.deletes()) {
      if (!want(id)) continue;
      if (!items.empty()) items += ",";
      items += std::to_string(id);
    }
  }
  any |= !items.empty();
  section("deletes", items);
  *out = s;
  return any || !entity;
}

std::string RecordJson(const wal::Record& r, std::optional<uint64_t> entity, bool* include) {
  std::string head =
      "{\"lsn\":" + std::to_string(r.lsn) + ",\"time\":" + JsonString(FormatTime(r.timestamp_us)) +
      ",\"time_us\":" + std::to_string(r.timestamp_us) +
      ",\"segment\":" + JsonString(fs::path(std::string(r.segment)).filename().string()) +
      ",\"offset\":" + std::to_string(r.offset) + ",\"bytes\":" + std::to_string(r.payload.size());
  *include = true;
  if (r.type == RecordType::kSchemaChange) {
    *include = !entity;
    auto d = DecodeSchemaChange(r.payload.data(), r.payload.size());
    if (!d.ok())
      return head + ",\"type\":\"schema_change\",\"error\":" + JsonString(d.status().message()) +
             "}";
    std::string cols;
    for (const ColumnDef& c : d.value().kind.columns) {
      if (!cols.empty()) cols += ",";
      cols += "{\"name\":" + JsonString(c.name) +
              ",\"type\":" + JsonString(ColumnTypeName(c.type)) +
              ",\"default\":" + JsonString(ValueToString(c.default_value)) + "}";
    }
    std::string drops;
    for (const std::string& n : d.value().drop) drops += (drops.empty() ? "" : ",") + JsonString(n);
    return head + ",\"type\":\"schema_change\",\"" + (d.value().create ? "create" : "alter") +
           "\":" + JsonString(d.value().kind.name) + ",\"add_columns\":[" + cols +
           "],\"drop_columns\":[" + drops + "]}";
  }
  flatbuffers::Verifier v(r.payload.data(), r.payload.size(), 16, 1u << 26);
  if (!fb::VerifyWriteBatchBuffer(v)) {
    return head + ",\"type\":\"write_batch\",\"error\":\"not a valid WriteBatch FlatBuffer\"}";
  }
  std::string ops;
  *include = BatchJson(*fb::GetWriteBatch(r.payload.data()), entity, &ops);
  return head + ",\"type\":\"write_batch\"" + ops + "}";
}

int WalVerify(const std::string& data_dir) {
  wal::ScanOptions so;
  so.dirs = {wal::World::WalDir(data_dir)};
  so.from_lsn = 0;  // wherever the log begins
  uint64_t schema_changes = 0, batches = 0;
  auto scan = wal::ScanLog(so, [&](const wal::Record& r) {
    (r.type == RecordType::kSchemaChange ? schema_changes : batches)++;
    return Status::Ok();
  });
  if (!scan.ok()) {
    std::fprintf(stderr, "wal verify: DAMAGED: %s\n", scan.status().message().c_str());
    return kExitFailed;
  }
  const wal::ScanResult& s = scan.value();
  std::printf("wal verify: %s: %" PRIu64 " records (%" PRIu64 " write batches, %" PRIu64
              " schema changes), LSN %" PRIu64 "..%" PRIu64 ", %" PRIu64
              " payload bytes; every checksum and LSN checked\n",
              so.dirs[0].c_str(), s.records, batches, schema_changes, s.first_lsn, s.last_lsn,
              s.bytes);
  if (s.torn_tail) {
    std::printf("wal verify: torn tail: %" PRIu64 " bytes at %s offset %" PRIu64
                " (an incomplete last write; recovery cuts it off)\n",
                s.torn_tail->bytes_dropped, s.torn_tail->segment.c_str(), s.torn_tail->offset);
    return kExitTornTail;
  }
  return kExitOk;
}

int WalDump(const std::string& data_dir, uint64_t from, uint64_t to,
            std::optional<uint64_t> entity) {
  wal::ScanOptions so;
  so.dirs = {wal::World::WalDir(data_dir)};
  if (fs::exists(wal::World::ArchiveDir(data_dir))) {
    so.dirs.push_back(wal::World::ArchiveDir(data_dir));
  }
  so.from_lsn = from;
  so.to_lsn = to;
  auto scan = wal::ScanLog(so, [&](const wal::Record& r) {
    bool include = true;
    const std::string line = RecordJson(r, entity, &include);
    if (include) std::printf("%s\n", line.c_str());
    return Status::Ok();
  });
  if (!scan.ok()) {
    std::fprintf(stderr, "wal dump: %s\n", scan.status().message().c_str());
    return kExitFailed;
  }
  return kExitOk;
}

void PrintSnapshot(const wal::SnapshotInfo& s) {
  std::printf("%s\n  lsn %" PRIu64 "  time %s  entities %" PRIu64 "  kinds %" PRIu64
              "  bytes %" PRIu64 "  shards at write %u\n",
              s.path.c_str(), s.lsn, FormatTime(s.timestamp_us).c_str(), s.entities,
              static_cast<uint64_t>(s.kinds), s.bytes, static_cast<unsigned>(s.shards_at_write));
}

int SnapshotInfoCommand(const std::string& data_dir, const std::string& file) {
  std::vector<std::string> paths;
  if (!file.empty()) {
    paths.push_back(file);
  } else {
    auto list = wal::ListSnapshots(wal::World::SnapshotDir(data_dir));
    if (!list.ok()) {
      std::fprintf(stderr, "snapshot info: %s\n", list.status().message().c_str());
      return kExitFailed;
    }
    for (const wal::SnapshotInfo& s : list.value()) paths.push_back(s.path);
    if (paths.empty())
      std::printf("no snapshots in %s\n", wal::World::SnapshotDir(data_dir).c_str());
  }
  int rc = kExitOk;
  for (const std::string& p : paths) {
    auto info = wal::ReadSnapshotInfo(p, /*verify_all_blocks=*/true);
    if (!info.ok()) {
      std::printf("%s\n  DAMAGED: %s\n", p.c_str(), info.status().message().c_str());
      rc = kExitFailed;
      continue;
    }
    PrintSnapshot(info.value());
    std::printf("  every block checksum verified\n");
  }
  return rc;
}

// Builds the world as of `to_lsn` or `to_time` from the newest snapshot at or
// before it plus the log (and the archive), and writes it as a new data
// directory holding one snapshot, which a server starts from.
int Restore(const std::string& data_dir, std::optional<uint64_t> to_lsn,
            std::optional<uint64_t> to_time, const std::string& out) {
  if (fs::exists(out) && !fs::is_empty(out)) {
    std::fprintf(stderr, "restore: %s exists and is not empty; name a new directory\n",
                 out.c_str());
    return kExitFailed;
  }
  auto list = wal::ListSnapshots(wal::World::SnapshotDir(data_dir));
  if (!list.ok()) {
    std::fprintf(stderr, "restore: %s\n", list.status().message().c_str());
    return kExitFailed;
  }
  auto engine = Engine::Open(EngineOptions{});
  if (!engine.ok()) return kExitFailed;
  uint64_t lsn = 0, time_us = 0;
  for (const wal::SnapshotInfo& s : list.value()) {  // newest first
    if ((to_lsn && s.lsn > *to_lsn) || (to_time && s.timestamp_us > *to_time)) continue;
    wal::SnapshotInfo info;
    Status st = wal::LoadSnapshot(s.path, engine.value().get(), &info);
    if (!st.ok()) {
      std::fprintf(stderr, "restore: %s\n", st.message().c_str());
      return kExitFailed;
    }
    std::fprintf(stderr, "restore: starting from snapshot %s (LSN %" PRIu64 ")\n", s.path.c_str(),
                 info.lsn);
    lsn = info.lsn;
    time_us = info.timestamp_us;
    break;
  }
  wal::ScanOptions so;
  so.dirs = {wal::World::WalDir(data_dir)};
  if (fs::exists(wal::World::ArchiveDir(data_dir))) {
    so.dirs.push_back(wal::World::ArchiveDir(data_dir));
  }
  so.from_lsn = lsn + 1;
  if (to_lsn) so.to_lsn = *to_lsn;
  bool stopped = false;
  uint64_t replayed = 0;
  Engine* e = engine.value().get();
  auto scan = wal::ScanLog(so, [&](const wal::Record& r) -> Status {
    if (stopped) return Status::Ok();
    if (to_time && r.timestamp_us > *to_time) {
      stopped = true;
      return Status::Ok();
    }
    auto applied = e->Replay(r.type, r.payload.data(), r.payload.size());
    if (!applied.ok()) {
      return Status::Corruption("record LSN " + std::to_string(r.lsn) +
                                " does not apply: " + applied.status().message());
    }
    lsn = r.lsn;
    time_us = r.timestamp_us;
    ++replayed;
    return Status::Ok();
  });
  if (!scan.ok()) {
    std::fprintf(stderr, "restore: %s\n", scan.status().message().c_str());
    return kExitFailed;
  }
  if (to_lsn && lsn < *to_lsn) {
    std::fprintf(stderr,
                 "restore: LSN %" PRIu64 " is past the end of the log (last LSN %" PRIu64 ")\n",
                 *to_lsn, lsn);
    return kExitFailed;
  }
  std::error_code ec;
  fs::create_directories(wal::World::SnapshotDir(out), ec);
  fs::create_directories(wal::World::WalDir(out), ec);
  if (ec) {
    std::fprintf(stderr, "restore: cannot create %s: %s\n", out.c_str(), ec.message().c_str());
    return kExitFailed;
  }
  wal::SnapshotOptions sopt;
  sopt.lsn_without_log = lsn;
  auto taken = wal::TakeSnapshot(*e, wal::World::SnapshotDir(out), sopt);
  if (!taken.ok()) {
    std::fprintf(stderr, "restore: writing the snapshot failed: %s\n",
                 taken.status().message().c_str());
    return kExitFailed;
  }
  std::printf("restored %s as of LSN %" PRIu64 " (%s), %" PRIu64 " entities, %" PRIu64
              " log records replayed, into %s\n",
              data_dir.c_str(), lsn, time_us ? FormatTime(time_us).c_str() : "empty world",
              static_cast<uint64_t>(e->size()), replayed, out.c_str());
  return kExitOk;
}

}  // namespace

namespace worldctl {

void AddOfflineCommands(CLI::App& app, int* exit_code) {
  static std::string data_dir = "./data", file, out, to_time;
  static uint64_t from_lsn = 0, to_lsn = UINT64_MAX, entity = 0, restore_lsn = 0;

  CLI::App* walcmd =
      app.add_subcommand("wal", "offline: inspect the write-ahead log of a data directory");
  walcmd->require_subcommand(1);
  CLI::App* verify =
      walcmd->add_subcommand("verify", "check every record's checksum and LSN continuity");
  verify->add_option("--data-dir", data_dir, "data directory")->capture_default_str();
  verify->callback([exit_code] { *exit_code = WalVerify(data_dir); });

  CLI::App* dump = walcmd->add_subcommand("dump", "print records as JSON lines");
  dump->add_option("--data-dir", data_dir, "data directory")->capture_default_str();
  dump->add_option("--from-lsn", from_lsn, "first LSN (default: the first the log holds)");
  dump->add_option("--to-lsn", to_lsn, "last LSN (inclusive)");
  CLI::Option* entity_opt = dump->add_option("--entity", entity, "only records touching this id");
  dump->callback([exit_code, entity_opt] {
    *exit_code = WalDump(data_dir, from_lsn, to_lsn,
                         entity_opt->count() ? std::optional<uint64_t>(entity) : std::nullopt);
  });

  // `snapshot` alone takes one on a server (tools/worldctl.cc); `snapshot
  // info` reads files.
  CLI::App* snap = app.get_subcommand("snapshot");
  CLI::App* info = snap->add_subcommand("info", "offline: list snapshots and verify every block");
  info->add_option("--data-dir", data_dir, "data directory")->capture_default_str();
  info->add_option("--file", file, "one snapshot file instead");
  info->callback([exit_code] { *exit_code = SnapshotInfoCommand(data_dir, file); });

  CLI::App* restore = app.add_subcommand(
      "restore", "offline: write a new data directory holding the world as of an LSN or a time");
  restore->add_option("--data-dir", data_dir, "data directory to restore from")
      ->capture_default_str();
  CLI::Option* lsn_opt = restore->add_option("--to-lsn", restore_lsn, "last LSN to include");
  CLI::Option* time_opt = restore->add_option(
      "--to-time", to_time,
      "include records committed at or before this UTC time (2026-11-23T04:05:06Z, or microseconds "
      "since the epoch)");
  lsn_opt->excludes(time_opt);
  restore->add_option("--out", out, "the new data directory")->required();
  restore->callback([exit_code, lsn_opt, time_opt] {
    if (!lsn_opt->count() && !time_opt->count()) {
      std::fprintf(stderr, "restore: give --to-lsn N or --to-time T\n");
      *exit_code = 2;
      return;
    }
    std::optional<uint64_t> t;
    if (time_opt->count()) {
      t = ParseTime(to_time);
      if (!t) {
        std::fprintf(stderr,
                     "restore: --to-time \"%s\" is not a UTC time like 2026-11-23T04:05:06Z or a "
                     "number of microseconds since the epoch\n",
                     to_time.c_str());
        *exit_code = 2;
        return;
      }
    }
    *exit_code = Restore(
        data_dir, lsn_opt->count() ? std::optional<uint64_t>(restore_lsn) : std::nullopt, t, out);
  });
}

}  // namespace worldctl
}  // namespace worlddb
