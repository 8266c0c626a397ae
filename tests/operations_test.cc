// Runs the commands docs/operations.md names, as an operator would, so the
// runbooks cannot drift from the program: worldctl's offline subcommands on
// a real data directory (verify, dump, snapshot info, restore by LSN and by
// time), their exit codes on damage, a server started on a restored
// directory; the config file, deploy unit and capacity examples taken from
// the page itself; an upgrade (snapshot, SIGTERM, restart), a crash restart,
// salvage of a damaged segment, connection limits, the memory-pressure steps.
// And a lint: every `worlddb` / `worldctl` command line on the page names
// subcommands and flags the binaries have.
// GCC 12 at -O2 with the sanitizers reports -Wmaybe-uninitialized inside
// <regex> (std::function in its NFA), not in this file; -Werror builds would
// fail on it. Set before any include so that the headers are covered.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/batch_builder.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"
#include "wal/log_format.h"
#include "wal/world.h"

namespace worlddb {
namespace {

namespace fs = std::filesystem;

const std::string kWorldctl = WORLDDB_BINARY_DIR "/tools/worldctl";
const std::string kWorlddb = WORLDDB_BINARY_DIR "/net/worlddb";
// The checkout (tests/CMakeLists.txt).
const std::filesystem::path kSourceDir = WORLDDB_SOURCE_DIR;

struct CmdResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

CmdResult Sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class OperationsTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kWorldctl)) << kWorldctl << " was not built";
    root_ =
        fs::temp_directory_path() / ("worlddb_ops_" + std::to_string(getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    data_ = (root_ / "data").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  // A data directory: kind "unit" (LSN 1), then batch j (LSN j + 1) moves
  // entity 42 to (j, j) and upserts entity 100 + j; a snapshot after LSN 21;
  // `gap_us` between batches so that times separate them.
  void MakeData(int batches, int gap_us = 0) {
    wal::WorldOptions o;
    o.data_dir = data_;
    o.snapshot_interval_s = 0;
    o.snapshot_log_bytes = 0;
    o.archive = true;
    auto w = wal::World::Open(o);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    Engine& e = w.value()->engine();
    ASSERT_TRUE(e.CreateKind({"unit", {{"hp", ColumnType::kI32, int32_t{7}}}}).ok());
    BatchBuilder b;
    b.Upsert(42, "unit", 0, 0);
    auto first = b.Finish();
    ASSERT_TRUE(e.Apply(first.data(), first.size()).ok());  // LSN 2
    for (int j = 2; j <= batches; ++j) {
      b.Move(42, j, j).Upsert(100 + j, "unit", -j, -j);
      auto bytes = b.Finish();
      ASSERT_TRUE(e.Apply(bytes.data(), bytes.size()).ok());
      if (j == 20) {
        ASSERT_TRUE(w.value()->Snapshot().ok());
      }
      if (gap_us) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    }
  }

  fs::path root_;
  std::string data_;
};

TEST_F(OperationsTest, WalVerifyOnASoundLog) {
  MakeData(30);
  CmdResult r = Sh(kWorldctl + " wal verify --data-dir " + data_);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("31 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LSN 1..31"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, WalVerifyReportsATornTailWithExitCode4) {
  MakeData(5);
  fs::path seg;
  for (const auto& e : fs::directory_iterator(fs::path(data_) / "wal")) {
    if (e.path().extension() == ".log") seg = std::max(seg, e.path());
  }
  // A torn final write: the file ends inside a record.
  fs::resize_file(seg, fs::file_size(seg) - 3);
  CmdResult r = Sh(kWorldctl + " wal verify --data-dir " + data_);
  EXPECT_EQ(r.code, 4) << r.out;
  EXPECT_NE(r.out.find("torn tail"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, WalVerifyNamesDamageWithExitCode1) {
  MakeData(5);
  fs::path seg;
  for (const auto& e : fs::directory_iterator(fs::path(data_) / "wal")) {
    if (e.path().extension() == ".log") seg = e.path();
  }
  {
    std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(wal::kSegmentHeaderBytes + wal::kRecordHeaderBytes + 2);
    f.put('\x55');
  }
  CmdResult r = Sh(kWorldctl + " wal verify --data-dir " + data_);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("DAMAGED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(seg.filename().string()), std::string::npos) << r.out;
}

TEST_F(OperationsTest, WalDumpByRangeAndByEntity) {
  MakeData(10);
  CmdResult r = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --from-lsn 2 --to-lsn 3");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_NE(r.out.find("\"lsn\":2,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"upserts\":[{\"id\":42,\"kind\":\"unit\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"moves\":[{\"id\":42,\"x\":2,\"y\":2,"), std::string::npos) << r.out;

  r = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --entity 105");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find("\"id\":105"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"id\":42"), std::string::npos)
      << "only entity 105's operations: " << r.out;

  r = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --from-lsn 1 --to-lsn 1");
  EXPECT_NE(r.out.find("\"type\":\"schema_change\",\"create\":\"unit\""), std::string::npos)
      << r.out;
}

TEST_F(OperationsTest, SnapshotInfoVerifiesAndFlagsDamage) {
  MakeData(25);
  CmdResult r = Sh(kWorldctl + " snapshot info --data-dir " + data_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("lsn 21"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("every block checksum verified"), std::string::npos) << r.out;
  fs::path snap = *fs::directory_iterator(fs::path(data_) / "snapshots");
  {
    std::fstream f(snap, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(fs::file_size(snap) / 2));
    f.put('\x11');
  }
  r = Sh(kWorldctl + " snapshot info --file " + snap.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("DAMAGED"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, RestoreToAnLsnGivesADirectoryTheWorldStartsFrom) {
  MakeData(30);
  const std::string out = (root_ / "at25").string();
  CmdResult r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 25 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("as of LSN 25"), std::string::npos) << r.out;
  // The restored directory is a world as of LSN 25: entity 42 at (24, 24),
  // upserts 102..124.
  wal::WorldOptions o;
  o.data_dir = out;
  auto w = wal::World::Open(o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w.value()->recovery().last_lsn, 25u);
  Shard::Entity e;
  ASSERT_TRUE(w.value()->engine().Get(42, &e));
  EXPECT_EQ(e.x, 24);
  EXPECT_TRUE(w.value()->engine().Get(124, &e));
  EXPECT_FALSE(w.value()->engine().Get(125, &e));
  // Writes go on after the restored LSN.
  BatchBuilder b;
  b.Upsert(9999, "unit", 1, 1);
  auto bytes = b.Finish();
  ASSERT_TRUE(w.value()->engine().Apply(bytes.data(), bytes.size()).ok());
  w.value().reset();
  r = Sh(kWorldctl + " wal verify --data-dir " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("LSN 26..26"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, RestoreBeforeTheSnapshotUsesTheArchivedLog) {
  MakeData(30);
  const std::string out = (root_ / "at5").string();
  CmdResult r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 5 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  wal::WorldOptions o;
  o.data_dir = out;
  auto w = wal::World::Open(o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  Shard::Entity e;
  ASSERT_TRUE(w.value()->engine().Get(42, &e));
  EXPECT_EQ(e.x, 4);
}

TEST_F(OperationsTest, RestoreToATime) {
  MakeData(12, /*gap_us=*/20000);
  // The commit time of LSN 8, from the dump.
  CmdResult d = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --from-lsn 8 --to-lsn 8");
  const size_t at = d.out.find("\"time_us\":");
  ASSERT_NE(at, std::string::npos) << d.out;
  const std::string t = std::to_string(std::stoull(d.out.substr(at + 10)));
  const std::string out = (root_ / "at_time").string();
  CmdResult r =
      Sh(kWorldctl + " restore --data-dir " + data_ + " --to-time " + t + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("as of LSN 8"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, RestoreRefusesBadArgumentsClearly) {
  MakeData(3);
  CmdResult r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-time yesterday --out " +
                   (root_ / "x").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("yesterday"), std::string::npos) << r.out;
  r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 99 --out " +
         (root_ / "y").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("past the end of the log"), std::string::npos) << r.out;
  r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 2 --out " + data_);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("not empty"), std::string::npos) << r.out;
}

// ---- A server started as an operator would ----

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `worlddb ARGS` as a child process, output to a log file; stopped (SIGTERM)
// when destroyed. PR_SET_PDEATHSIG kills it if the test dies.
class Daemon {
 public:
  ~Daemon() { Stop(); }
  // Starts and waits for "listening on"; false (with the log in *why) if the
  // process exits first. Adds --port 0 unless `args` names a port.
  bool Start(const fs::path& log, std::vector<std::string> args, std::string* why) {
    log_ = log;
    args.insert(args.begin(), kWorlddb);
    if (std::find(args.begin(), args.end(), "--port") == args.end()) {
      args.push_back("--port");
      args.push_back("0");
    }
    pid_ = test_util::SpawnLogged(args, log, true);
    const size_t start_at = ReadText(log).size();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = ReadText(log).substr(std::min(start_at, ReadText(log).size()));
      std::smatch m;
      if (std::regex_search(text, m, std::regex(R"(listening on [^ ]*:(\d+))"))) {
        port_ = std::stoi(m[1].str());
        return true;
      }
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        pid_ = -1;
        *why = "worlddb exited with " + std::to_string(exit_code_) + ":\n" + ReadText(log);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    *why = "worlddb did not start:\n" + ReadText(log);
    return false;
  }
  // SIGTERM; the exit code (or -1).
  int Stop() {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return exit_code_;
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  std::string log() const { return ReadText(log_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  fs::path log_;
};

class RunbookTest : public OperationsTest {
 protected:
  // worldctl against the running daemon.
  CmdResult Ctl(const std::string& args, const std::string& stdin_text = "") {
    std::string cmd = kWorldctl + " --port " + std::to_string(d_.port()) + " " + args;
    if (!stdin_text.empty()) {
      const fs::path in = root_ / "stdin.jsonl";
      std::ofstream(in) << stdin_text;
      cmd += " < " + in.string();
    }
    return Sh(cmd);
  }
  void Start(const std::vector<std::string>& args) {
    std::string why;
    ASSERT_TRUE(d_.Start(root_ / "server.log", args, &why)) << why;
  }
  // `n` entities of kind "unit" (hp i32, name string) through worldctl put.
  void Load(int first, int n) {
    std::string lines;
    for (int i = first; i < first + n; ++i) {
      lines += "{\"id\":" + std::to_string(i) +
               ",\"kind\":\"unit\",\"x\":" + std::to_string(i % 1000) +
               ",\"y\":" + std::to_string(i / 1000) + ",\"hp\":" + std::to_string(i % 100) +
               ",\"name\":\"a name long enough to live on the heap " + std::to_string(i) + "\"}\n";
    }
    CmdResult r = Ctl("put --batch 5000", lines);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  Daemon d_;
};

// The page's fenced ```LANG blocks, in order, after the heading `section`.
std::vector<std::string> DocBlocks(const std::string& doc, const std::string& section,
                                   const std::string& lang) {
  std::vector<std::string> out;
  size_t at = doc.find("\n" + section + "\n");
  if (at == std::string::npos) return out;
  const size_t end = doc.find("\n## ", at + section.size() + 2);
  const std::string body = doc.substr(at, end == std::string::npos ? std::string::npos : end - at);
  const std::string open = "```" + lang + "\n";
  for (size_t p = body.find(open); p != std::string::npos; p = body.find(open, p)) {
    const size_t q = body.find("```", p + open.size());
    out.push_back(body.substr(p + open.size(), q - p - open.size()));
    p = q + 3;
  }
  return out;
}

const std::string& Doc() {
  static const std::string doc = ReadText(kSourceDir / "docs" / "operations.md");
  return doc;
}

// Every worlddb / worldctl command line on the page: lines of ```sh blocks
// (a leading "$ " and a trailing "# comment" removed) and `inline code`.
std::vector<std::string> DocCommands() {
  std::vector<std::string> cmds;
  std::istringstream in(Doc());
  std::string line;
  bool in_sh = false;
  const std::regex inline_code(R"(`((worlddb|worldctl) [^`]*)`)");
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      in_sh = !in_sh && line == "```sh";
      continue;
    }
    if (in_sh) {
      std::string c = line.rfind("$ ", 0) == 0 ? line.substr(2) : line;
      const size_t hash = c.find("  #");
      if (hash != std::string::npos) c.resize(hash);
      if (c.rfind("worlddb", 0) == 0 || c.rfind("worldctl", 0) == 0) cmds.push_back(c);
      continue;
    }
    for (auto it = std::sregex_iterator(line.begin(), line.end(), inline_code);
         it != std::sregex_iterator(); ++it) {
      cmds.push_back((*it)[1].str());
    }
  }
  return cmds;
}

std::vector<std::string> Words(const std::string& s) {
  std::vector<std::string> w;
  std::istringstream in(s);
  std::string x;
  while (in >> x) w.push_back(x);
  return w;
}

// The subcommands a help text lists.
std::set<std::string> Subcommands(const std::string& help) {
  std::set<std::string> subs;
  const size_t at = help.find("Subcommands:\n");
  if (at == std::string::npos) return subs;
  std::istringstream in(help.substr(at + 13));
  std::string line;
  while (std::getline(in, line) && !line.empty()) {
    const auto w = Words(line);
    if (!w.empty() && line.rfind("  ", 0) == 0) subs.insert(w[0]);
  }
  return subs;
}

TEST_F(OperationsTest, EveryCommandOnThePageNamesRealSubcommandsAndFlags) {
  const std::vector<std::string> cmds = DocCommands();
  ASSERT_GE(cmds.size(), 30u);
  std::map<std::string, std::string> help_cache;
  auto help = [&](const std::string& bin, const std::string& path) -> const std::string& {
    const std::string key = bin + " " + path;
    if (!help_cache.count(key)) help_cache[key] = Sh(bin + " " + path + " --help").out;
    return help_cache[key];
  };
  int checked = 0;
  for (const std::string& c : cmds) {
    const std::vector<std::string> w = Words(c);
    const std::string bin = w[0] == "worlddb" ? kWorlddb : kWorldctl;
    std::string path;
    size_t i = 1;
    if (w[0] == "worldctl") {
      while (i < w.size() && Subcommands(help(bin, path)).count(w[i])) {
        path += (path.empty() ? "" : " ") + w[i];
        ++i;
      }
      EXPECT_FALSE(path.empty()) << "no subcommand in: " << c;
    }
    const std::string& own = help(bin, path);
    const std::string& top = help(bin, "");
    for (; i < w.size(); ++i) {
      if (w[i].rfind("--", 0) != 0) continue;
      const std::string flag = w[i].substr(0, w[i].find('='));
      const std::regex re("(^|[\\s,])" + flag + "([\\s=,]|$)");
      EXPECT_TRUE(std::regex_search(own, re) || std::regex_search(top, re))
          << flag << " (in `" << c << "`) is not a flag of " << w[0] << " " << path;
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cmds.size()));
}

TEST_F(OperationsTest, ConfigurationExamplesOnThePage) {
  // The example file, as printed on the page.
  const auto blocks = DocBlocks(Doc(), "## Configuration", "toml");
  ASSERT_EQ(blocks.size(), 1u);
  const fs::path file = root_ / "worlddb.toml";
  std::ofstream(file) << blocks[0];
  CmdResult r = Sh(kWorlddb + " --config " + file.string() + " --print-config");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\ndurability = 'interval:10'\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nlog-format = 'json'\n"), std::string::npos) << r.out;
  // worlddb --print-config > worlddb.toml
  r = Sh(kWorlddb + " --print-config > " + file.string());
  ASSERT_EQ(r.code, 0) << r.out;
  // worlddb --config worlddb.toml --port 7900 --print-config
  r = Sh(kWorlddb + " --config " + file.string() + " --port 7900 --print-config");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\nport = 7900\n"), std::string::npos) << r.out;
  // Exit code 2 for a bad setting.
  std::ofstream(file) << "port = 'abc'\n";
  r = Sh(kWorlddb + " --config " + file.string());
  EXPECT_EQ(r.code, 2) << r.out;
}

TEST_F(OperationsTest, CapacityExamplesOnThePage) {
  std::string flags_cmd;
  for (const std::string& c : DocCommands()) {
    if (c.rfind("worldctl capacity --shards", 0) == 0) flags_cmd = c;
  }
  ASSERT_FALSE(flags_cmd.empty());
  CmdResult r = Sh(kWorldctl + flags_cmd.substr(8));
  ASSERT_EQ(r.code, 0) << flags_cmd << "\n" << r.out;
  EXPECT_NE(r.out.find("player"), std::string::npos) << r.out;
  // The page's world.toml, through --file, with and without --json: the same world.
  const auto blocks = DocBlocks(Doc(), "## Capacity planning", "toml");
  ASSERT_EQ(blocks.size(), 1u);
  const fs::path file = root_ / "world.toml";
  std::ofstream(file) << blocks[0];
  CmdResult from_file = Sh(kWorldctl + " capacity --file " + file.string());
  ASSERT_EQ(from_file.code, 0) << from_file.out;
  EXPECT_EQ(from_file.out, r.out) << "the flags and the file on the page describe one world";
  r = Sh(kWorldctl + " capacity --file " + file.string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"total\":{\"entities\":600000"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, DeployUnitVerifiesAndItsCommandLineParses) {
  const fs::path unit = kSourceDir / "tools" / "deploy" / "worlddb.service";
  const std::string text = ReadText(unit);
  ASSERT_FALSE(text.empty()) << unit;
  for (const char* want : {"\nRestart=on-failure\n", "\nKillSignal=SIGTERM\n", "\nUser=worlddb\n",
                           "\nLimitNOFILE=", "\nTimeoutStopSec=", "\nStateDirectory=worlddb\n"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want;
  }
  // TimeoutStopSec covers the server's 10 s drain and the log flush.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(\nTimeoutStopSec=(\d+)\n)")));
  EXPECT_GE(std::stoi(m[1].str()), 30);
  // ExecStart, with the installed paths replaced by the build's and a temp
  // config: the flags parse and the settings are what the unit says.
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(\nExecStart=(\S+) (.*)\n)")));
  std::string args = m[2].str();
  const fs::path config = root_ / "worlddb.toml";
  std::ofstream(config) << "durability = 'interval:10'\n";
  args = std::regex_replace(args, std::regex("/etc/worlddb/worlddb.toml"), config.string());
  CmdResult r = Sh(kWorlddb + " " + args + " --print-config");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\ndata-dir = '/var/lib/worlddb'\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ndurability = 'interval:10'\n"), std::string::npos) << r.out;

  if (Sh("command -v systemd-analyze").code != 0) {
    GTEST_SKIP() << "systemd-analyze not installed: the unit's syntax is not verified";
  }
  // systemd-analyze verify checks that ExecStart's binary exists: point it
  // at the build's.
  const fs::path copy = root_ / "worlddb.service";
  std::ofstream(copy) << std::regex_replace(text, std::regex("/usr/local/bin/worlddb"), kWorlddb);
  r = Sh("systemd-analyze verify " + copy.string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "") << "warnings from systemd-analyze verify";
}

// Deploying and upgrading: ping and stats after the start; a snapshot, a
// clean stop (SIGTERM: exit 0, log flushed) and a start of the "new" binary
// on the same directory with everything still there.
TEST_F(RunbookTest, UpgradeKeepsEverything) {
  const std::string data = (root_ / "data").string();
  Start({"--data-dir", data, "--durability", "interval:10", "--shards", "2"});
  ASSERT_EQ(Ctl("create-kind unit --column hp:i32 --column name:string").code, 0);
  Load(1, 3000);
  CmdResult r = Ctl("ping");
  ASSERT_EQ(r.code, 0) << r.out;
  r = Ctl("snapshot");
  ASSERT_EQ(r.code, 0) << r.out;
  r = Ctl("stats --interval 0");  // p99 since start
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("entities        3000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("writable        yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("snapshot        LSN 2,"), std::string::npos) << r.out;
  // Per request type: the load's writes, with a p99 in milliseconds.
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\nwrite +- +1 +0 +[0-9.]+ ms\n)"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\nsnapshot +- +1 +0 +[0-9.]+ ms\n)")))
      << r.out;
  ASSERT_EQ(d_.Stop(), 0) << d_.log();
  EXPECT_NE(d_.log().find("log flushed; exiting"), std::string::npos) << d_.log();

  Start({"--data-dir", data, "--durability", "interval:10", "--shards", "2"});
  EXPECT_EQ(Ctl("ping").code, 0);
  r = Ctl("--json stats --interval 0.2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"entities\":3000,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"writable\":true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"snapshot\":{\"lsn\":2,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("{\"type\":\"stats\",\"requests\":"), std::string::npos) << r.out;
  r = Ctl("get 1234 --kind unit --columns hp");
  EXPECT_NE(r.out.find("1234  unit  234  1"), std::string::npos) << r.out;
}

// Restart after a crash: SIGKILL, then start as usual; the start-up line
// says what was loaded and replayed; every acknowledged write is there.
TEST_F(RunbookTest, RestartAfterACrash) {
  const std::string data = (root_ / "data").string();
  Start({"--data-dir", data, "--durability", "always"});
  ASSERT_EQ(Ctl("create-kind unit --column hp:i32 --column name:string").code, 0);
  Load(1, 500);
  ASSERT_EQ(Ctl("move 7 1 2").code, 0);
  d_.Kill();
  Start({"--data-dir", data});
  EXPECT_NE(d_.log().find("recovered " + data), std::string::npos) << d_.log();
  EXPECT_NE(d_.log().find("replayed"), std::string::npos) << d_.log();
  CmdResult r = Ctl("--json get 7");
  EXPECT_NE(r.out.find("\"x\":1,\"y\":2"), std::string::npos) << r.out;
  r = Ctl("stats --interval 0");
  EXPECT_NE(r.out.find("entities        500"), std::string::npos) << r.out;
  ASSERT_EQ(d_.Stop(), 0);
  r = Sh(kWorldctl + " wal verify --data-dir " + data);
  EXPECT_EQ(r.code, 0) << r.out;
}

// Corrupted log segment: the server refuses to start naming the file;
// wal verify agrees; --salvage starts with the prefix before the damage.
TEST_F(RunbookTest, CorruptedSegmentRefusedThenSalvaged) {
  const std::string data = (root_ / "data").string();
  Start({"--data-dir", data, "--segment-bytes", "65536", "--snapshot-interval-s", "0",
         "--snapshot-log-bytes", "0"});
  ASSERT_EQ(Ctl("create-kind unit --column hp:i32 --column name:string").code, 0);
  for (int i = 0; i < 6; ++i) Load(1 + i * 100, 100);  // one record each
  for (int i = 0; i < 300; ++i) ASSERT_EQ(Ctl("move 5 " + std::to_string(i) + " 1").code, 0);
  ASSERT_EQ(d_.Stop(), 0);
  // Damage the middle of the first segment (one of the load records).
  fs::path first;
  for (const auto& e : fs::directory_iterator(fs::path(data) / "wal")) {
    if (e.path().extension() == ".log" && (first.empty() || e.path() < first)) first = e.path();
  }
  ASSERT_FALSE(first.empty());
  {
    std::fstream f(first, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4096);
    f.put('\x5a');
  }
  std::string why;
  EXPECT_FALSE(d_.Start(root_ / "server.log", {"--data-dir", data}, &why));
  EXPECT_NE(why.find("Corruption"), std::string::npos) << why;
  EXPECT_NE(why.find(first.filename().string()), std::string::npos) << why;
  EXPECT_NE(why.find("exited with 1"), std::string::npos) << why;
  CmdResult r = Sh(kWorldctl + " wal verify --data-dir " + data);
  EXPECT_EQ(r.code, 1) << r.out;
  Start({"--data-dir", data, "--salvage"});
  EXPECT_NE(d_.log().find("SALVAGED"), std::string::npos) << d_.log();
  EXPECT_EQ(Ctl("ping").code, 0);
}

// Point-in-time restore, then a server on the new directory.
TEST_F(RunbookTest, ServerStartsOnARestoredDirectory) {
  MakeData(30);
  const std::string out = (root_ / "at25").string();
  CmdResult r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 25 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  Start({"--data-dir", out});
  r = Ctl("--json get 42");
  EXPECT_NE(r.out.find("\"x\":24,\"y\":24"), std::string::npos) << r.out;
  r = Ctl("stats --interval 0");
  EXPECT_NE(r.out.find("log             always, LSN 25"), std::string::npos) << r.out;
}

// Slow clients and connection floods: over max-connections a newcomer is
// refused and the others go on; idle connections are closed after
// idle-timeout, which frees the slots.
TEST_F(RunbookTest, ConnectionLimitsProtectTheServer) {
  const fs::path config = root_ / "worlddb.toml";
  std::ofstream(config) << "data-dir = '" << (root_ / "data").string() << "'\n";
  Start({"--config", config.string(), "--max-connections", "3", "--idle-timeout", "1"});
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(d_.port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CmdResult r = Ctl("stats --interval 0");
  EXPECT_EQ(r.code, 1) << "a fourth connection is refused: " << r.out;
  EXPECT_NE(r.out.find("too many connections (the server's --max-connections is 3)"),
            std::string::npos)
      << r.out;
  // The idle ones are closed after about a second; then stats works.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  r = Ctl("stats --interval 0");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("connections     1\n"), std::string::npos) << r.out;
  for (int fd : fds) ::close(fd);
}

// Memory pressure: stats shows memory per entity; deleting entities and
// dropping a column lower it; snapshot + restart packs what is left.
TEST_F(RunbookTest, MemoryPressureSteps) {
  const std::string data = (root_ / "data").string();
  Start({"--data-dir", data, "--durability", "none"});
  ASSERT_EQ(Ctl("create-kind unit --column hp:i32 --column name:string").code, 0);
  Load(1, 20000);
  auto memory = [&] {
    CmdResult s = Ctl("--json stats --interval 0");
    EXPECT_EQ(s.code, 0) << s.out;
    const size_t at = s.out.find("\"memory_bytes\":");
    return at == std::string::npos ? 0.0 : std::strtod(s.out.c_str() + at + 15, nullptr);
  };
  CmdResult r = Ctl("stats");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("bytes per entity"), std::string::npos) << r.out;
  // The plan for these counts.
  const fs::path world = root_ / "world.toml";
  std::ofstream(world) << "string_bytes = 48\n[[kind]]\nname = 'unit'\nentities = 20000\n"
                          "columns = ['hp:i32', 'name:string']\n";
  r = Sh(kWorldctl + " capacity --file " + world.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const double before = memory();
  std::string ids;
  for (int i = 10001; i <= 20000; ++i) ids += "{\"id\":" + std::to_string(i) + "}\n";
  ASSERT_EQ(Ctl("del", ids).code, 0);
  ASSERT_EQ(Ctl("del 1 2 3").code, 0);
  const double after_del = memory();
  EXPECT_LT(after_del, before);
  r = Ctl("alter-kind unit --drop name");
  ASSERT_EQ(r.code, 0) << r.out;
  const double after_drop = memory();
  EXPECT_LT(after_drop, after_del * 0.6) << "the strings were most of it";
  ASSERT_EQ(Ctl("snapshot").code, 0);
  ASSERT_EQ(d_.Stop(), 0);
  Start({"--data-dir", data, "--durability", "none"});
  r = Ctl("stats --interval 0");
  EXPECT_NE(r.out.find("entities        9997"), std::string::npos) << r.out;
  EXPECT_LE(memory(), after_drop);
}

}  // namespace
}  // namespace worlddb
