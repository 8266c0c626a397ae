// worldctl capacity: memory, log bandwidth and snapshot size of a world
// described by its kinds, column types, entity counts and move rates
// (wal/capacity.h computes; this file parses the description and prints).
//
// The description comes from flags, from a file (--file), or both (flags
// set the world-wide numbers over the file's, and --kind adds kinds):
//
//   worldctl capacity --shards 2 --string-bytes 24
//       --kind 'player 100000 20 hp:i32 name:string:32 alive:bool'
//       --kind 'tree 500000 0'
//
// --kind 'NAME ENTITIES MOVES_PER_ENTITY_PER_S [COLUMN:TYPE[:MAX_LENGTH]]...'
//
// The file is TOML, read with toml++ (Debian's libtomlplusplus: a maintained
// parser rather than one of ours): top-level keys, then one [[kind]] table
// per kind:
//
//   shards = 2            # engine shards (default 1)
//   string_bytes = 24     # assumed average string length (default 16)
//   move_batch = 1000     # moves per write batch (default 1000)
//   load_batch = 10000    # entities per write batch while loading (default 10000)
//
//   [[kind]]
//   name = "player"
//   entities = 100000
//   moves_per_s = 20      # per entity
//   columns = ["hp:i32", "name:string:32", "alive:bool"]
//
// Output: one row per kind and a total (aligned table), or --json.
#include <toml++/toml.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/constants.h"
#include "engine/schema.h"
#include "tools/worldctl.h"
#include "wal/capacity.h"

namespace worlddb::worldctl {
namespace {

struct CapacityArgs {
  std::string file;
  std::vector<std::string> kinds;
  uint32_t shards = 1, string_bytes = 16, move_batch = 1000;
  uint64_t load_batch = 10000;
};

Result<ColumnType> TypeNamed(const std::string& s) {
  static const std::map<std::string, ColumnType> kTypes = {
      {"bool", ColumnType::kBool}, {"i32", ColumnType::kI32}, {"i64", ColumnType::kI64},
      {"f32", ColumnType::kF32},   {"f64", ColumnType::kF64}, {"string", ColumnType::kString}};
  auto it = kTypes.find(s);
  if (it == kTypes.end()) {
    return Status::InvalidArgument("unknown column type '" + s +
                                   "' (bool, i32, i64, f32, f64, string)");
  }
  return it->second;
}

// "name:type[:max_length]"
Result<ColumnDef> ColumnSpec(const std::string& spec) {
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  std::string p;
  while (std::getline(ss, p, ':')) parts.push_back(p);
  if (parts.size() < 2 || parts.size() > 3) {
    return Status::InvalidArgument("column '" + spec + "' must be NAME:TYPE[:MAX_LENGTH]");
  }
  ColumnDef c;
  c.name = parts[0];
  auto t = TypeNamed(parts[1]);
  if (!t.ok()) return Status::InvalidArgument("column '" + spec + "': " + t.status().message());
  c.type = t.value();
  c.default_value = ZeroValue(c.type);
  if (parts.size() == 3) {
    char* end = nullptr;
    const unsigned long len = std::strtoul(parts[2].c_str(), &end, 10);
    if (c.type != ColumnType::kString || parts[2].empty() || *end != '\0' || len == 0 ||
        len > kMaxStringLength) {
      return Status::InvalidArgument("column '" + spec + "': MAX_LENGTH is for strings, 1.." +
                                     std::to_string(kMaxStringLength));
    }
    c.max_length = static_cast<uint32_t>(len);
  }
  return c;
}

Result<double> Number(const std::string& what, const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v) || v < 0) {
    return Status::InvalidArgument(what + " '" + s + "' is not a number >= 0");
  }
  return v;
}

Result<uint64_t> Count(const std::string& what, const std::string& s) {
  auto v = Number(what, s);
  if (!v.ok()) return v.status();
  if (v.value() != std::floor(v.value()) || v.value() > 1e15) {
    return Status::InvalidArgument(what + " '" + s + "' is not a whole number up to 10^15");
  }
  return static_cast<uint64_t>(v.value());
}

// --kind 'NAME ENTITIES MOVES_PER_S [COLUMN:TYPE[:MAXLEN]]...'
Result<wal::KindLoad> KindFlag(const std::string& text) {
  std::stringstream ss(text);
  std::vector<std::string> w;
  std::string word;
  while (ss >> word) w.push_back(word);
  if (w.size() < 3) {
    return Status::InvalidArgument("--kind '" + text +
                                   "' must be 'NAME ENTITIES MOVES_PER_ENTITY_PER_S "
                                   "[COLUMN:TYPE[:MAX_LENGTH]]...'");
  }
  wal::KindLoad k;
  k.def.name = w[0];
  auto n = Count("entities", w[1]);
  if (!n.ok()) return n.status();
  k.entities = n.value();
  auto m = Number("moves per entity per second", w[2]);
  if (!m.ok()) return m.status();
  k.moves_per_entity_per_s = m.value();
  for (size_t i = 3; i < w.size(); ++i) {
    auto c = ColumnSpec(w[i]);
    if (!c.ok()) return c.status();
    k.def.columns.push_back(c.value());
  }
  return k;
}

// ---- The description file (TOML, read by toml++) ----

// Walks a parsed description; every error names the file, the line and the
// key. Numbers may be TOML integers or floats where a count is whole.
class DescriptionReader {
 public:
  DescriptionReader(std::string origin, wal::WorldLoad* out, std::map<std::string, bool>* set)
      : origin_(std::move(origin)), out_(out), set_(set) {}

  Status Read(const std::string& path) {
    toml::table root;
    try {
      root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      line_ = static_cast<int>(e.source().begin.line);
      return Err(std::string(e.description()));
    }
    for (auto&& [key, node] : root) {
      Locate(node);
      const std::string k(key.str());
      if (k == "kind") {
        const toml::array* kinds = node.as_array();
        if (!kinds || !kinds->is_array_of_tables()) {
          return Err("kind must be [[kind]] tables");
        }
        for (const toml::node& t : *kinds) WORLDDB_RETURN_IF_ERROR(Kind(*t.as_table()));
        continue;
      }
      if (node.is_table()) return Err("only [[kind]] tables are known, not [" + k + "]");
      WORLDDB_RETURN_IF_ERROR(TopKey(k, node));
    }
    return Status::Ok();
  }

 private:
  void Locate(const toml::node& n) { line_ = static_cast<int>(n.source().begin.line); }
  Status Err(const std::string& what) const {
    return Status::InvalidArgument(origin_ + " line " + std::to_string(line_) + ": " + what);
  }
  Result<double> Num(const std::string& key, const toml::node& v) const {
    if (auto i = v.as_integer()) {
      if (i->get() < 0) return Err(key + " must be >= 0");
      return static_cast<double>(i->get());
    }
    if (auto f = v.as_floating_point()) {
      if (!std::isfinite(f->get()) || f->get() < 0) return Err(key + " must be a number >= 0");
      return f->get();
    }
    return Err(key + " must be a number");
  }
  template <class T>
  Status Whole(const std::string& key, const toml::node& v, T* out, uint64_t min, uint64_t max) {
    auto n = Num(key, v);
    if (!n.ok()) return n.status();
    const double d = n.value();
    if (d != std::floor(d) || d < double(min) || d > double(max)) {
      return Err(key + " must be a whole number in " + std::to_string(min) + ".." +
                 std::to_string(max));
    }
    *out = static_cast<T>(d);
    (*set_)[key] = true;
    return Status::Ok();
  }
  Status TopKey(const std::string& key, const toml::node& v) {
    if (key == "shards") return Whole(key, v, &out_->shards, 1, 256);
    if (key == "string_bytes") return Whole(key, v, &out_->avg_string_bytes, 0, kMaxStringLength);
    if (key == "move_batch") return Whole(key, v, &out_->move_batch, 1, 10000000);
    if (key == "load_batch") return Whole(key, v, &out_->load_batch, 1, uint64_t{1} << 32);
    return Err("unknown key '" + key +
               "' (shards, string_bytes, move_batch, load_batch, [[kind]])");
  }
  Status Kind(const toml::table& t) {
    Locate(t);
    wal::KindLoad& k = out_->kinds.emplace_back();
    if (!t.contains("name")) return Err("a [[kind]] without a name");
    for (auto&& [key, v] : t) {
      Locate(v);
      const std::string name(key.str());
      if (name == "name") {
        const auto* str = v.as_string();
        if (!str) return Err("name must be a string");
        k.def.name = str->get();
      } else if (name == "entities") {
        WORLDDB_RETURN_IF_ERROR(Whole(name, v, &k.entities, 0, uint64_t{1000000000000000}));
      } else if (name == "moves_per_s") {
        auto n = Num(name, v);
        if (!n.ok()) return n.status();
        k.moves_per_entity_per_s = n.value();
      } else if (name == "columns") {
        const toml::array* cols = v.as_array();
        if (!cols) return Err("columns must be an array of \"NAME:TYPE\"");
        for (const toml::node& c : *cols) {
          const auto* spec = c.as_string();
          if (!spec) return Err("columns must be an array of \"NAME:TYPE\"");
          auto col = ColumnSpec(spec->get());
          if (!col.ok()) return Err(col.status().message());
          k.def.columns.push_back(col.value());
        }
      } else {
        return Err("unknown key '" + name + "' in [[kind]] (name, entities, moves_per_s, columns)");
      }
    }
    if (!t.contains("entities")) {
      Locate(t);
      return Err("kind '" + k.def.name + "' has no entities");
    }
    return Status::Ok();
  }

  std::string origin_;
  wal::WorldLoad* out_;
  std::map<std::string, bool>* set_;
  int line_ = 0;
};

// ---- Output ----

std::string Bytes(double b) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, kUnits[u]);
  return buf;
}

std::string Fixed(double v, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Rate(double v) {
  char buf[48];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f G", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
  } else if (v >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.1f k", v / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows) {
    w.resize(std::max(w.size(), r.size()));
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      // Text left-aligned, numbers right-aligned (all but the first column).
      const std::string pad(w[i] - r[i].size(), ' ');
      line += i == 0 ? r[i] + pad : pad + r[i];
      if (i + 1 < r.size()) line += "  ";
    }
    std::cout << line << "\n";
  }
}

void Print(const wal::WorldLoad& load, const wal::CapacityEstimate& e, bool json) {
  if (json) {
    std::string out = "{\"shards\":" + std::to_string(load.shards) +
                      ",\"string_bytes\":" + std::to_string(load.avg_string_bytes) +
                      ",\"move_batch\":" + std::to_string(load.move_batch) +
                      ",\"load_batch\":" + std::to_string(load.load_batch) +
                      ",\"log_bytes_per_move\":" + Fixed(e.log_bytes_per_move, 3) + ",\"kinds\":[";
    for (size_t i = 0; i < e.kinds.size(); ++i) {
      const wal::KindEstimate& k = e.kinds[i];
      out += std::string(i ? "," : "") + "{\"kind\":" + JsonString(k.kind) +
             ",\"entities\":" + std::to_string(k.entities) +
             ",\"bytes_per_entity\":{\"id_map\":" + Fixed(k.per_entity.id_map, 2) +
             ",\"table\":" + Fixed(k.per_entity.table, 2) +
             ",\"index\":" + Fixed(k.per_entity.index, 2) +
             ",\"total\":" + Fixed(k.per_entity.total(), 2) +
             "},\"memory_bytes\":" + Fixed(k.memory_bytes, 0) +
             ",\"moves_per_s\":" + Fixed(k.moves_per_s, 1) +
             ",\"log_bytes_per_s\":" + Fixed(k.log_bytes_per_s, 0) +
             ",\"snapshot_bytes\":" + Fixed(k.snapshot_bytes, 0) + "}";
    }
    out += "],\"total\":{\"entities\":";
    uint64_t n = 0;
    for (const auto& k : e.kinds) n += k.entities;
    out += std::to_string(n) + ",\"memory_bytes\":" + Fixed(e.memory_bytes, 0) +
           ",\"moves_per_s\":" + Fixed(e.moves_per_s, 1) +
           ",\"log_bytes_per_s\":" + Fixed(e.log_bytes_per_s, 0) +
           ",\"log_bytes_per_day\":" + Fixed(e.log_bytes_per_s * 86400, 0) +
           ",\"snapshot_bytes\":" + Fixed(e.snapshot_bytes, 0) + "}}";
    std::cout << out << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows = {{"kind", "entities", "id_map B", "table B",
                                                 "index B", "B/entity", "memory", "moves/s",
                                                 "log/s", "snapshot"}};
  uint64_t n = 0;
  for (const wal::KindEstimate& k : e.kinds) {
    n += k.entities;
    rows.push_back({k.kind, std::to_string(k.entities), Fixed(k.per_entity.id_map, 1),
                    Fixed(k.per_entity.table, 1), Fixed(k.per_entity.index, 1),
                    Fixed(k.per_entity.total(), 1), Bytes(k.memory_bytes), Rate(k.moves_per_s),
                    Bytes(k.log_bytes_per_s), Bytes(k.snapshot_bytes)});
  }
  rows.push_back({"total", std::to_string(n), "", "", "",
                  n ? Fixed(e.memory_bytes / static_cast<double>(n), 1) : "0",
                  Bytes(e.memory_bytes), Rate(e.moves_per_s), Bytes(e.log_bytes_per_s),
                  Bytes(e.snapshot_bytes)});
  PrintTable(rows);
  std::cout << "\n"
            << load.shards << " shard" << (load.shards == 1 ? "" : "s") << ", strings "
            << load.avg_string_bytes << " bytes on average; memory is the engine's own "
            << "(tables + id map + index), RSS adds the allocator's slack\n"
            << "log: " << Fixed(e.log_bytes_per_move, 1) << " bytes per move in batches of "
            << load.move_batch << ", " << Bytes(e.log_bytes_per_s * 86400)
            << " per day; snapshot: whole file (also the disk a snapshot takes)\n";
}

}  // namespace

void AddCapacityCommand(CLI::App& app, const bool* json, int* exit_code) {
  auto a = std::make_shared<CapacityArgs>();
  CLI::App* sub = app.add_subcommand(
      "capacity", "offline: estimate memory, log bandwidth and snapshot size of a described world");
  sub->add_option("--file", a->file, "world description (TOML, see docs/operations.md)");
  sub->add_option("--kind", a->kinds,
                  "'NAME ENTITIES MOVES_PER_ENTITY_PER_S [COLUMN:TYPE[:MAX_LENGTH]]...', "
                  "repeatable");
  CLI::Option* shards = sub->add_option("--shards", a->shards, "engine shards")
                            ->check(CLI::Range(1u, 256u))
                            ->capture_default_str();
  CLI::Option* strings =
      sub->add_option("--string-bytes", a->string_bytes, "assumed average string length")
          ->check(CLI::Range(0u, kMaxStringLength))
          ->capture_default_str();
  CLI::Option* move_batch =
      sub->add_option("--move-batch", a->move_batch, "moves per write batch (one log record)")
          ->check(CLI::Range(1u, 10000000u))
          ->capture_default_str();
  CLI::Option* load_batch =
      sub->add_option("--load-batch", a->load_batch, "entities per write batch while loading")
          ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32))
          ->capture_default_str();
  sub->callback([=] {
    auto fail = [&](const std::string& msg) {
      std::cerr << "worldctl: capacity: " << msg << "\n";
      *exit_code = kExitUsage;
    };
    wal::WorldLoad load;
    std::map<std::string, bool> from_file;
    if (!a->file.empty()) {
      if (!std::ifstream(a->file)) return fail("cannot read --file " + a->file);
      Status s = DescriptionReader(a->file, &load, &from_file).Read(a->file);
      if (!s.ok()) return fail(s.message());
    }
    // Flags given on the command line win over the file.
    if (shards->count() || !from_file.count("shards")) load.shards = a->shards;
    if (strings->count() || !from_file.count("string_bytes"))
      load.avg_string_bytes = a->string_bytes;
    if (move_batch->count() || !from_file.count("move_batch")) load.move_batch = a->move_batch;
    if (load_batch->count() || !from_file.count("load_batch")) load.load_batch = a->load_batch;
    for (const std::string& k : a->kinds) {
      auto kl = KindFlag(k);
      if (!kl.ok()) return fail(kl.status().message());
      load.kinds.push_back(kl.value());
    }
    if (load.kinds.empty()) return fail("describe at least one kind (--kind or --file)");
    auto e = wal::EstimateCapacity(load);
    if (!e.ok()) return fail(e.status().message());
    Print(load, e.value(), *json);
    *exit_code = kExitOk;
  });
}

}  // namespace worlddb::worldctl
