// worldctl capacity against a real server: load a world of several kinds and
// column types through the client library, then compare the estimate with
// what the server reports (StatsReply.memory_bytes, the engine's own
// accounting), with the log bytes a run of moves wrote, and with the size of
// a snapshot; each within 15%. Also the command's flags, file and errors.
// GCC 12 at -O2 with the sanitizers reports -Wmaybe-uninitialized inside
// <regex> (std::function in its NFA), not in this file; -Werror builds would
// fail on it. Set before any include so that the headers are covered.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "wal/capacity.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/batch_builder.h"
#include "gtest/gtest.h"
#include "net/client.h"
#include "tests/child_process.h"

namespace worlddb {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kServerBinary = std::string(WORLDDB_BINARY_DIR) + "/net/worlddb";
const std::string kWorldctl = std::string(WORLDDB_BINARY_DIR) + "/tools/worldctl";

struct CmdResult {
  int code = -1;
  std::string out;
};

CmdResult Sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The number after "key": in a JSON text (the first occurrence).
double JsonNumber(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return NAN;
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

class CapacityTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kServerBinary)) << kServerBinary;
    ASSERT_TRUE(fs::exists(kWorldctl)) << kWorldctl;
    root_ =
        fs::temp_directory_path() / ("worlddb_capacity_" + std::to_string(getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    fs::remove_all(root_);
  }

  void StartServer(std::vector<std::string> args) {
    const fs::path log = root_ / "server.log";
    args.insert(args.begin(), kServerBinary);
    pid_ = test_util::SpawnLogged(args, log);
    ASSERT_GE(pid_, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      const std::string text = ReadFile(log);
      std::smatch m;
      if (std::regex_search(text, m, std::regex(R"(listening on [^ ]*:(\d+))"))) {
        port_ = static_cast<uint16_t>(std::stoi(m[1].str()));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "worlddb did not start:\n" << ReadFile(log);
  }
  // Resident set of the server, from /proc (for the report; not asserted).
  uint64_t ServerRssBytes() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
  }

  fs::path root_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

void ExpectWithin(double estimate, double actual, double tolerance, const std::string& what) {
  ASSERT_GT(actual, 0) << what;
  const double err = std::abs(estimate - actual) / actual;
  std::printf("[ capacity ] %-34s estimate %14.0f  actual %14.0f  error %5.1f%%\n", what.c_str(),
              estimate, actual, 100 * err);
  EXPECT_LE(err, tolerance) << what << ": estimate " << estimate << ", actual " << actual;
}

// 200,000 entities of three kinds with every column type, loaded in batches
// of 10,000 through the client library into a 2-shard server.
TEST_F(CapacityTest, EstimateMatchesARealLoadedServer) {
  constexpr uint32_t kShards = 2, kStringBytes = 24, kLoadBatch = 10000, kMoveBatch = 1000;
  StartServer({"--port", "0", "--data-dir", (root_ / "data").string(), "--shards",
               std::to_string(kShards), "--durability", "interval:50", "--snapshot-interval-s", "0",
               "--snapshot-log-bytes", "0"});
  net::ClientOptions co;
  co.io_timeout_ms = 120000;
  auto client = net::Client::Connect("127.0.0.1", port_, co);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  net::Client& c = *client.value();

  struct Kind {
    KindDef def;
    uint64_t entities;
  };
  const std::vector<Kind> kinds = {
      {{"player",
        {{"hp", ColumnType::kI32, int32_t{100}},
         {"gold", ColumnType::kI64, int64_t{0}},
         {"speed", ColumnType::kF32, 1.0f},
         {"mana", ColumnType::kF64, 0.0},
         {"alive", ColumnType::kBool, true},
         {"name", ColumnType::kString, std::string(), 32}}},
       120000},
      {{"npc",
        {{"level", ColumnType::kI32, int32_t{1}}, {"tag", ColumnType::kString, std::string(), 64}}},
       50000},
      {{"tree", {}}, 30000},
  };
  wal::WorldLoad load;
  load.shards = kShards;
  load.avg_string_bytes = kStringBytes;
  load.load_batch = kLoadBatch;
  load.move_batch = kMoveBatch;
  for (const Kind& k : kinds) {
    ASSERT_TRUE(c.CreateKind(k.def).ok()) << k.def.name;
    load.kinds.push_back({k.def, k.entities, 20});
  }

  // Load: ids spread (a game's ids are not dense), positions uniform,
  // strings of exactly kStringBytes bytes.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> coord(0, 10000);
  uint64_t next_id = 1;
  std::vector<uint64_t> player_ids;
  for (const Kind& k : kinds) {
    for (uint64_t done = 0; done < k.entities; done += kLoadBatch) {
      BatchBuilder b;
      for (uint64_t i = done; i < std::min(k.entities, done + kLoadBatch); ++i) {
        const uint64_t id = next_id++ * 7919;
        if (k.def.name == "player") player_ids.push_back(id);
        Cells cells;
        for (const ColumnDef& col : k.def.columns) {
          if (col.type == ColumnType::kString) {
            std::string s(kStringBytes, 'a');
            s[0] = static_cast<char>('a' + i % 26);
            cells.emplace_back(col.name, s);
          } else if (col.type == ColumnType::kI32) {
            cells.emplace_back(col.name, static_cast<int32_t>(i));
          }
        }
        b.Upsert(id, k.def.name, coord(rng), coord(rng), 0, cells);
      }
      auto applied = c.Apply(b.Finish());
      ASSERT_TRUE(applied.ok()) << applied.status().ToString();
    }
  }

  auto estimate = wal::EstimateCapacity(load);
  ASSERT_TRUE(estimate.ok()) << estimate.status().ToString();
  auto stats = c.Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_EQ(stats->entities, 200000u);
  ExpectWithin(estimate->memory_bytes, static_cast<double>(stats->memory_bytes), 0.15,
               "memory (engine accounting)");
  std::printf("[ capacity ] server RSS %.1f MiB (engine accounting %.1f MiB)\n",
              static_cast<double>(ServerRssBytes()) / (1 << 20),
              static_cast<double>(stats->memory_bytes) / (1 << 20));

  // Log bandwidth: 100 batches of 1,000 moves of players.
  const uint64_t log_before = stats->log_bytes;
  constexpr int kMoveBatches = 100;
  for (int r = 0; r < kMoveBatches; ++r) {
    BatchBuilder b;
    for (uint32_t i = 0; i < kMoveBatch; ++i) {
      b.Move(player_ids[(static_cast<size_t>(r) * kMoveBatch + i) % player_ids.size()], coord(rng),
             coord(rng));
    }
    auto applied = c.Apply(b.Finish());
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  }
  stats = c.Stats();
  ASSERT_TRUE(stats.ok());
  const double moves = double{kMoveBatches} * kMoveBatch;
  ExpectWithin(estimate->log_bytes_per_move * moves,
               static_cast<double>(stats->log_bytes - log_before), 0.15,
               "log bytes for 100k moves");

  // Snapshot size.
  auto snap = c.Snapshot();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  ExpectWithin(estimate->snapshot_bytes, static_cast<double>(snap->bytes), 0.15, "snapshot bytes");

  // The command prints the same estimate.
  std::string flags = "--shards 2 --string-bytes 24 --load-batch 10000 --move-batch 1000";
  flags +=
      " --kind 'player 120000 20 hp:i32 gold:i64 speed:f32 mana:f64 alive:bool name:string:32'";
  flags += " --kind 'npc 50000 20 level:i32 tag:string:64' --kind 'tree 30000 20'";
  CmdResult r = Sh(kWorldctl + " capacity --json " + flags);
  ASSERT_EQ(r.code, 0) << r.out;
  const size_t total = r.out.find("\"total\":{\"entities\"");
  ASSERT_NE(total, std::string::npos) << r.out;
  // (The flags' columns default to zero, the test's kinds not: only the
  // snapshot's schema section differs, by a few bytes.)
  EXPECT_NEAR(JsonNumber(r.out.substr(total), "memory_bytes"), estimate->memory_bytes, 1.0)
      << r.out;
  EXPECT_NEAR(JsonNumber(r.out.substr(total), "snapshot_bytes"), estimate->snapshot_bytes,
              0.001 * estimate->snapshot_bytes)
      << r.out;
}

TEST_F(CapacityTest, DescriptionFileFlagsAndErrors) {
  const fs::path file = root_ / "world.toml";
  std::ofstream(file) << "# a world\n"
                         "shards = 2\n"
                         "string_bytes = 24   # average\n"
                         "move_batch = 1_000\n"
                         "\n"
                         "[[kind]]\n"
                         "name = \"player\"\n"
                         "entities = 100000\n"
                         "moves_per_s = 20\n"
                         "columns = [\"hp:i32\", \"name:string:32\", 'alive:bool']\n"
                         "\n"
                         "[[kind]]\n"
                         "name = 'tree'\n"
                         "entities = 500000\n";
  CmdResult r = Sh(kWorldctl + " capacity --file " + file.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("player"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tree"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 shards, strings 24 bytes"), std::string::npos) << r.out;
  // A flag overrides the file; --kind adds a kind.
  r = Sh(kWorldctl + " capacity --json --file " + file.string() +
         " --shards 1 --kind 'npc 10 0 level:i32'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"shards\":1,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"kind\":\"npc\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"moves_per_s\":2000000.0"), std::string::npos) << r.out;
  // The file is valid TOML (python's tomllib reads it too).
  if (Sh("python3 -c 'import tomllib'").code == 0) {
    CmdResult t =
        Sh("python3 -c 'import sys, tomllib; d = tomllib.load(open(sys.argv[1], "
           "\"rb\")); print(len(d[\"kind\"]), d[\"move_batch\"])' " +
           file.string());
    EXPECT_EQ(t.out, "2 1000\n");
  }

  const std::pair<std::string, std::string> bad[] = {
      {"capacity", "at least one kind"},
      {"capacity --kind 'player'", "NAME ENTITIES"},
      {"capacity --kind 'player 10 x'", "moves per entity"},
      {"capacity --kind 'player -5 1'", "entities"},
      {"capacity --kind 'player 10 1 hp:int'", "unknown column type 'int'"},
      {"capacity --kind 'player 10 1 hp:i32:8'", "MAX_LENGTH is for strings"},
      {"capacity --kind '1bad 10 1'", "1bad"},
      {"capacity --kind 'a 10 1' --kind 'a 5 1'", "already exists"},
      {"capacity --kind 'a 10 1' --shards 0", "shards"},
      {"capacity --file /nonexistent/world.toml", "/nonexistent/world.toml"},
  };
  for (const auto& [args, want] : bad) {
    r = Sh(kWorldctl + " " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << args << "\n" << r.out;
  }
  const std::pair<std::string, std::string> bad_files[] = {
      {"shardz = 2\n", "line 1: unknown key 'shardz'"},
      {"[[kind]]\nname = 'a'\nentities = 1\ncolour = 'red'\n", "line 4: unknown key 'colour'"},
      {"[[kind]]\nentities = 1\n", "without a name"},
      {"[world]\n", "only [[kind]]"},
      {"shards = 'two'\n", "shards must be a number"},
      {"[[kind]]\nname = 'a'\nentities = 1\ncolumns = [\"x:i32\"\n",
       "line 4: Error while parsing array"},
      {"shards = 1.5\n", "line 1: shards must be a whole number"},
      {"[[kind]]\nname = 'a'\nentities = -3\n", "line 3: entities must be >= 0"},
      {"[[kind]]\nname = 'a'\nentities = 1\ncolumns = [1]\n", "line 4: columns must be an array"},
      {"kind = 3\n", "line 1: kind must be [[kind]] tables"},
      {"shards = 2\nshards = 3\n", "line 2:"},  // TOML refuses a key given twice
  };
  for (const auto& [text, want] : bad_files) {
    std::ofstream(file) << text;
    r = Sh(kWorldctl + " capacity --file " + file.string());
    EXPECT_EQ(r.code, 2) << text << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << text << r.out;
  }
}

}  // namespace
}  // namespace worlddb
